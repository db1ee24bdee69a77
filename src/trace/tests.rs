//! Whole-trace tests: writer and reader together, truncation, corruption.

use super::format::{ChunkHeader, ChunkKind};
use super::*;
use crate::events::{CounterKind, CounterSpec, Unit};

/// A header with `ncounters` counters and two probes.
pub(super) fn header(ncounters: usize) -> TraceHeader {
    let counters = [
        "LLC-load-misses",
        "LLC-store-misses",
        "LLC-prefetch-misses",
        "task-clock",
    ]
    .iter()
    .cycle()
    .take(ncounters)
    .enumerate()
    .map(|(i, name)| CounterSpec {
        name: (*name).to_string(),
        kind: CounterKind::HwCache,
        type_: 3,
        config: 0x10002 + i as u64,
        config1: 0,
        config2: 0,
        exclude_user: false,
        exclude_kernel: true,
        unit: Unit::Count,
    })
    .collect();
    let probe = |id: u32, function: &str| ProbeSite {
        key: None,
        id,
        function: function.to_string(),
        raw_name: format!("_ZN5bench{}E", function.len()),
        binary: "/usr/local/bin/bench".to_string(),
        build_id: Some("5f3c1e0a".to_string()),
        addr: 0x1130 + 0x40 * u64::from(id),
        offset: 0x130 + 0x40 * u64::from(id),
        size: 0x40,
        class: "push-rbp".to_string(),
        kind: ProbeKind::Uprobe,
    };
    TraceHeader {
        callchains: false,
        follow: None,
        counter_decision: None,
        key_column: false,
        perfunc_version: "0.1.0".to_string(),
        created_unix_ns: 1_700_000_000_123_456_789,
        command_line: vec![
            "perfunc".into(),
            "record".into(),
            "--".into(),
            "./bench".into(),
        ],
        target: Target::Command {
            argv: vec!["./bench".into(), "-n".into(), "3".into()],
        },
        kernel_release: "6.1.0-13-amd64".to_string(),
        cpu_model: "Intel(R) Xeon(R) CPU @ 2.20GHz".to_string(),
        ncpus: 2,
        clock: "CLOCK_MONOTONIC".to_string(),
        counters,
        probes: vec![probe(0, "bench::parse"), probe(1, "bench::hash")],
        calibration: None,
    }
}

/// Sample `i` of a synthetic recording with `n` counters.
fn owned_sample(i: u64, n: usize) -> OwnedSample {
    OwnedSample {
        key: 0,
        time: 1_000 + 10 * i,
        pid: 4_000 + (i % 3) as u32,
        tid: 4_100 + (i % 5) as u32,
        probe: (i % 2) as u32,
        cpu: (i % 2) as u16,
        kind: if i % 2 == 0 {
            RecordKind::Entry
        } else {
            RecordKind::Return
        },
        time_enabled: 500 + i,
        time_running: 400 + i,
        values: (0..n as u64).map(|j| i * 1_000 + j).collect(),
    }
}

fn all_events() -> Vec<Event> {
    vec![
        Event::Comm {
            time: 5,
            pid: 4000,
            tid: 4000,
            name: "bench".into(),
        },
        Event::Fork {
            time: 6,
            pid: 4000,
            ppid: 3999,
            tid: 4101,
            ptid: 4000,
        },
        Event::Lost {
            time: 7,
            cpu: 1,
            count: 12,
        },
        Event::Exit {
            time: 8,
            pid: 4000,
            ppid: 3999,
            tid: 4101,
            ptid: 4000,
        },
    ]
}

fn footer() -> Footer {
    Footer {
        duration_ns: 9_876_543,
        samples: 0,
        lost: 12,
        exit: Some(ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        }),
        interrupted: false,
    }
}

/// A finished trace of `nsamples` samples and the events of [`all_events`].
fn write_trace(header: &TraceHeader, nsamples: u64, chunk_bytes: usize) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), header)
        .unwrap()
        .with_chunk_bytes(chunk_bytes);
    for i in 0..nsamples {
        w.push_sample(&owned_sample(i, header.counters.len()).as_sample_in())
            .unwrap();
        if i % 7 == 3 {
            w.push_event(&all_events()[(i / 7) as usize % 4]).unwrap();
        }
    }
    let samples = w.samples_written();
    w.finish(&Footer {
        samples,
        ..footer()
    })
    .unwrap()
}

/// A chunk with a valid checksum around any payload.
fn raw_chunk(kind: u16, count: u32, payload: &[u8]) -> Vec<u8> {
    let header = ChunkHeader::with_flags(ChunkKind::from_code(kind), count, payload, 0).unwrap();
    [&header.encode()[..], payload].concat()
}

/// Offset where each whole chunk ends, and the samples read up to there.
fn chunk_ends(bytes: &[u8]) -> Vec<(u64, usize)> {
    let mut reader = TraceReader::new(bytes).unwrap();
    let mut ends = vec![(reader.offset(), 0)];
    let mut samples = 0;
    while let Some(chunk) = reader.next_chunk().unwrap() {
        if let Chunk::Samples(block) = &chunk {
            samples += block.len();
        }
        ends.push((reader.offset(), samples));
    }
    ends
}

fn header_len(header: &TraceHeader) -> usize {
    FILE_HEADER_LEN + serde_json::to_vec(header).unwrap().len()
}

#[test]
fn round_trip_keeps_every_value() {
    let mut header = header(3);
    header.calibration =
        Some(serde_json::json!({"uprobe": {"push-rbp": {"median": [41.5, 3, 0]}}}));
    let samples: Vec<_> = (0..6).map(|i| owned_sample(i, 3)).collect();
    let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
    for s in &samples {
        w.push_sample(&s.as_sample_in()).unwrap();
    }
    for e in &all_events() {
        w.push_event(e).unwrap();
    }
    let footer = Footer {
        samples: 6,
        ..footer()
    };
    let bytes = w.finish(&footer).unwrap();

    let trace = read_all(&bytes[..]).unwrap();
    assert_eq!(trace.header, header);
    assert_eq!(trace.samples, samples);
    assert_eq!(trace.samples[5].values, [5000, 5001, 5002]);
    assert_eq!(trace.samples[5].kind, RecordKind::Return);
    assert_eq!(trace.events, all_events());
    assert_eq!(trace.end, TraceEnd::Complete(footer));
}

#[test]
fn a_key_column_round_trips_after_the_values() {
    let mut header = header(2);
    header.probes[1].key = Some("vec".into());
    header.key_column = true;
    let samples: Vec<_> = (0..4)
        .map(|i| OwnedSample {
            key: 3 + i,
            ..owned_sample(i, 2)
        })
        .collect();
    let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
    for s in &samples {
        w.push_sample(&s.as_sample_in()).unwrap();
    }
    let bytes = w.finish(&footer()).unwrap();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let Some(Chunk::Samples(block)) = reader.next_chunk().unwrap() else {
        panic!("no samples chunk")
    };
    // 40 fixed bytes, 2 values, the key.
    assert_eq!(block.ncounters(), 2);
    let row = block.get(2);
    assert_eq!(
        (row.key(), row.values().collect::<Vec<_>>()),
        (5, vec![2000, 2001])
    );
    let trace = read_all(&bytes[..]).unwrap();
    assert_eq!(trace.header, header);
    assert_eq!(trace.samples, samples);
    // Without the header's key column the same rows do not parse.
    header.key_column = false;
    let text = serde_json::to_vec(&header).unwrap();
    let mut plain = bytes[..FILE_HEADER_LEN].to_vec();
    plain[12..16].copy_from_slice(&(text.len() as u32).to_le_bytes());
    plain[16..20].copy_from_slice(&crc32fast::hash(&text).to_le_bytes());
    plain.extend(&text);
    plain.extend(
        &bytes[header_len(&TraceHeader {
            key_column: true,
            ..header.clone()
        })..],
    );
    assert!(read_all(&plain[..]).is_err());
}

#[test]
fn streaming_reader_sees_samples_then_events_then_footer() {
    let header = header(3);
    let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
    w.push_sample(&owned_sample(0, 3).as_sample_in()).unwrap();
    w.push_event(&all_events()[0]).unwrap();
    let bytes = w.finish(&footer()).unwrap();
    let samples_chunk = 20 + 64;
    let events_chunk = 20 + 4 + 16 + 5;
    let footer_chunk = 20 + serde_json::to_vec(&footer()).unwrap().len();
    assert_eq!(
        bytes.len(),
        header_len(&header) + samples_chunk + events_chunk + footer_chunk
    );

    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), &header);
    assert_eq!(reader.offset(), header_len(&header) as u64);
    let Some(Chunk::Samples(block)) = reader.next_chunk().unwrap() else {
        panic!("expected samples")
    };
    assert_eq!(block.len(), 1);
    assert_eq!(OwnedSample::from(block.get(0)), owned_sample(0, 3));
    assert_eq!(
        reader.next_chunk().unwrap(),
        Some(Chunk::Events(vec![all_events()[0].clone()]))
    );
    assert_eq!(reader.end(), None);
    assert_eq!(reader.next_chunk().unwrap(), Some(Chunk::Footer(footer())));
    assert_eq!(
        reader.end(),
        None,
        "the end is known once nothing follows the footer"
    );
    assert_eq!(reader.next_chunk().unwrap(), None);
    assert_eq!(reader.end(), Some(&TraceEnd::Complete(footer())));
    assert_eq!(reader.next_chunk().unwrap(), None);
    assert_eq!(reader.offset(), bytes.len() as u64);
}

#[test]
fn many_small_chunks_read_back_in_order() {
    let header = header(3);
    let bytes = write_trace(&header, 1_000, 3 * record_size(3));
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let (mut blocks, mut samples, mut events) = (0, 0, Vec::new());
    while let Some(chunk) = reader.next_chunk().unwrap() {
        match &chunk {
            Chunk::Samples(block) => {
                assert!(block.len() <= 3);
                for s in block.iter() {
                    assert_eq!(OwnedSample::from(s), owned_sample(samples, 3));
                    samples += 1;
                }
                blocks += 1;
            }
            Chunk::Events(chunk_events) => events.extend(chunk_events.iter().cloned()),
            Chunk::Footer(footer) => assert_eq!(footer.samples, 1_000),
        }
        reader.recycle(chunk);
    }
    assert_eq!((blocks, samples), (334, 1_000));
    assert_eq!(events.len(), 143);
    assert_eq!(events[..4], all_events()[..]);
    assert!(matches!(reader.end(), Some(TraceEnd::Complete(_))));
}

#[test]
fn truncation_at_every_offset_reads_the_whole_chunks_before_it() {
    let header = header(2);
    let bytes = write_trace(&header, 14, 4 * record_size(2));
    let ends = chunk_ends(&bytes);
    assert_eq!(ends.len(), 7, "4 samples chunks, 1 events chunk, 1 footer");
    assert_eq!(ends[0].0, header_len(&header) as u64);
    for cut in header_len(&header)..bytes.len() {
        let trace = read_all(&bytes[..cut]).unwrap();
        let &(last_end, nsamples) = ends
            .iter()
            .rev()
            .find(|(end, _)| *end <= cut as u64)
            .unwrap();
        let expected = TraceEnd::Truncated {
            last_whole_chunk_end: last_end,
            bytes_lost: cut as u64 - last_end,
        };
        assert_eq!(trace.end, expected, "cut at {cut}");
        assert_eq!(trace.samples.len(), nsamples, "cut at {cut}");
        assert_eq!(
            trace.samples,
            (0..nsamples as u64)
                .map(|i| owned_sample(i, 2))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn truncation_inside_the_file_header_is_an_error() {
    let header = header(1);
    let bytes = write_trace(&header, 2, 1 << 10);
    let len = header_len(&header);
    assert!(matches!(
        TraceReader::new(&bytes[..0]),
        Err(TraceError::Empty)
    ));
    for cut in 1..len {
        let err = TraceReader::new(&bytes[..cut]).unwrap_err();
        let needed = if cut < FILE_HEADER_LEN {
            FILE_HEADER_LEN
        } else {
            len
        } as u64;
        assert!(
            matches!(err, TraceError::TruncatedHeader { len, needed: n } if len == cut as u64 && n == needed),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn flipped_payload_byte_is_reported_at_its_chunk() {
    let header = header(3);
    let bytes = write_trace(&header, 10, 4 * record_size(3));
    let ends = chunk_ends(&bytes);
    for pair in ends.windows(2) {
        let (start, end) = (pair[0].0 as usize, pair[1].0 as usize);
        let mut damaged = bytes.clone();
        damaged[(start + 20 + end) / 2] ^= 0x04;
        let mut reader = TraceReader::new(&damaged[..]).unwrap();
        let err = loop {
            match reader.next_chunk() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("damage in chunk at {start} went unnoticed"),
                Err(err) => break err,
            }
        };
        let TraceError::CorruptChunk { offset, reason } = &err else {
            panic!("{err}")
        };
        assert_eq!(*offset, start as u64);
        assert!(
            reason.starts_with("checksum of the chunk is 0x"),
            "{reason}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("corrupt chunk at byte {start}: ")),
            "{err}"
        );
    }
}

#[test]
fn bad_magic_newer_version_and_empty_file() {
    let err = TraceReader::new(&b"#!/bin/sh\necho hello\n"[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a perfunc trace: it starts with \"#!/bin/s\" instead of \"PERFUNC\\0\""
    );
    let mut bytes = write_trace(&header(0), 0, 64);
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = TraceReader::new(&bytes[..]).unwrap_err();
    assert!(
        matches!(
            err,
            TraceError::UnsupportedVersion {
                found: 2,
                supported: FORMAT_VERSION
            }
        ),
        "{err}"
    );
    let err = TraceReader::new(&b""[..]).unwrap_err();
    assert_eq!(err.to_string(), "empty file, not a perfunc trace");
}

#[test]
fn bad_chunk_magic_names_the_offset() {
    let header = header(1);
    let mut bytes = write_trace(&header, 1, 1 << 10);
    let at = header_len(&header);
    bytes[at..at + 4].copy_from_slice(b"JUNK");
    let err = read_all(&bytes[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt chunk at byte {at}: found \"JUNK\" where the chunk magic \"PFCK\" was expected")
    );
}

/// A trace of `header(1)` with `chunks` between the file header and footer.
fn trace_with_chunks(chunks: &[Vec<u8>]) -> Vec<u8> {
    let finished = write_trace(&header(1), 0, 1 << 10);
    let at = header_len(&header(1));
    [&finished[..at], &chunks.concat(), &finished[at..]].concat()
}

#[test]
fn unknown_event_tags_and_chunk_kinds_are_skipped() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&[77, 0, 5, 0, 1, 2, 3, 4, 5]);
    payload.extend_from_slice(&[1, 0, 20, 0]);
    payload.extend_from_slice(
        &[
            &9u64.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &3u64.to_le_bytes(),
        ]
        .concat(),
    );
    let bytes = trace_with_chunks(&[
        raw_chunk(2, 2, &payload),
        raw_chunk(40, 1, b"from the future"),
    ]);
    let trace = read_all(&bytes[..]).unwrap();
    assert_eq!(
        trace.events,
        [Event::Lost {
            time: 9,
            cpu: 1,
            count: 3
        }]
    );
    assert!(matches!(trace.end, TraceEnd::Complete(_)));
}

#[test]
fn chunk_and_sample_flags_are_ignored_but_checksummed() {
    // time 7, ids 0, kind 1 (return), row flags 0xff, times and the one value 0.
    let row = [&7u64.to_le_bytes()[..], &[0; 14], &[1, 0xff], &[0; 24]].concat();
    let mut header = ChunkHeader::with_flags(ChunkKind::Samples, 1, &row, 0).unwrap();
    header.flags = 0x8001;
    header.crc = header.checksum(&row);
    let chunk = [&header.encode()[..], &row].concat();
    assert_eq!(chunk[6..8], [0x01, 0x80]);
    let trace = read_all(&trace_with_chunks(std::slice::from_ref(&chunk))[..]).unwrap();
    assert_eq!(
        (trace.samples[0].time, trace.samples[0].kind),
        (7, RecordKind::Return)
    );

    let mut damaged = chunk;
    damaged[6] = 0;
    let err = read_all(&trace_with_chunks(&[damaged])[..]).unwrap_err();
    assert!(err.to_string().contains("checksum of the chunk"), "{err}");
}

#[test]
fn samples_payload_must_be_count_rows() {
    let bytes = trace_with_chunks(&[raw_chunk(1, 2, &[0; 48])]);
    let err = read_all(&bytes[..]).unwrap_err();
    let at = header_len(&header(1));
    assert_eq!(
        err.to_string(),
        format!(
            "corrupt chunk at byte {at}: samples payload is 48 bytes where 2 rows of 48 bytes (96 bytes) were expected"
        )
    );
}

#[test]
fn events_body_past_the_payload_is_corrupt() {
    let bytes = trace_with_chunks(&[raw_chunk(2, 1, &[1, 0, 20, 0, 0, 0])]);
    let err = read_all(&bytes[..]).unwrap_err();
    let at = header_len(&header(1));
    assert_eq!(
        err.to_string(),
        format!("corrupt chunk at byte {at}: event 0 of 1 at payload byte 0 runs past the 6-byte payload")
    );
}

#[test]
fn nothing_may_follow_the_footer() {
    let mut bytes = write_trace(&header(1), 3, 1 << 10);
    let len = bytes.len();
    bytes.extend_from_slice(&raw_chunk(2, 0, &[]));
    let err = read_all(&bytes[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt chunk at byte {len}: found data after the footer chunk, where the trace was expected to end")
    );
}

#[test]
fn footer_must_hold_one_json_footer() {
    let at = header_len(&header(1));
    let bytes = trace_with_chunks(&[raw_chunk(3, 2, b"{}")]);
    let err = read_all(&bytes[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt chunk at byte {at}: footer chunk has count 2 where 1 was expected")
    );
    let bytes = trace_with_chunks(&[raw_chunk(3, 1, b"[1, 2]")]);
    let err = read_all(&bytes[..]).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "corrupt chunk at byte {at}: the footer JSON does not describe a footer: "
        )),
        "{err}"
    );
}

#[test]
fn trace_without_footer_ending_at_a_chunk_boundary_loses_nothing() {
    let header = header(3);
    let mut bytes = Vec::new();
    let mut w = TraceWriter::new(&mut bytes, &header).unwrap();
    w.push_sample(&owned_sample(0, 3).as_sample_in()).unwrap();
    w.flush().unwrap();
    w.push_sample(&owned_sample(1, 3).as_sample_in()).unwrap();
    let written = w.bytes_written();
    drop(w);
    let trace = read_all(&bytes[..]).unwrap();
    assert_eq!(
        trace.samples,
        [owned_sample(0, 3)],
        "the unflushed sample is lost, as in a kill"
    );
    assert_eq!(
        trace.end,
        TraceEnd::Truncated {
            last_whole_chunk_end: written,
            bytes_lost: 0
        }
    );
}

#[test]
fn flush_marks_the_end_of_a_round() {
    let header = header(1);
    let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
    let values = vec![0u64; header.counters.len()];
    let sample = |time| SampleIn {
        key: 0,
        time,
        pid: 1,
        tid: 1,
        probe: 0,
        cpu: 0,
        kind: RecordKind::Entry,
        time_enabled: 0,
        time_running: 0,
        values: &values,
    };
    w.push_sample(&sample(1)).unwrap();
    w.flush().unwrap();
    w.push_sample(&sample(2)).unwrap();
    w.push_event(&Event::Lost {
        time: 3,
        cpu: 0,
        count: 1,
    })
    .unwrap();
    w.flush().unwrap();
    w.push_sample(&sample(4)).unwrap();
    let bytes = w.finish(&Footer::default()).unwrap();

    let mut r = TraceReader::new(bytes.as_slice()).unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = r.next_chunk().unwrap() {
        let kind = match chunk {
            Chunk::Samples(_) => "samples",
            Chunk::Events(_) => "events",
            Chunk::Footer(_) => "footer",
        };
        seen.push((kind, r.round_end()));
    }
    assert_eq!(
        seen,
        [
            ("samples", true),
            ("samples", false),
            ("events", true),
            ("samples", false),
            ("footer", false)
        ]
    );
    assert!(r.round_end());
}

#[test]
fn a_round_whose_chunks_already_went_out_still_ends() {
    let header = header(1);
    let mut w = TraceWriter::new(Vec::new(), &header)
        .unwrap()
        .with_chunk_bytes(1);
    let values = [0u64];
    let s = SampleIn {
        key: 0,
        time: 1,
        pid: 1,
        tid: 1,
        probe: 0,
        cpu: 0,
        kind: RecordKind::Entry,
        time_enabled: 0,
        time_running: 0,
        values: &values,
    };
    w.push_sample(&s).unwrap();
    w.flush().unwrap();
    w.flush().unwrap();
    let bytes = w.finish(&Footer::default()).unwrap();
    let mut r = TraceReader::new(bytes.as_slice()).unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = r.next_chunk().unwrap() {
        if let Chunk::Samples(block) = chunk {
            seen.push((block.len(), r.round_end()));
        }
    }
    // The full chunk, then one empty chunk that ends its round; a second
    // flush with nothing new writes nothing.
    assert_eq!(seen, [(1, false), (0, true)]);
}

/// Returns its bytes one at a time, so the search for a chunk header has
/// to read ahead across many reads.
struct OneByte<'a>(&'a [u8]);

impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((&first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = first;
        self.0 = rest;
        Ok(1)
    }
}

/// What a salvage-mode reader gets from `r`.
fn salvage<R: std::io::Read>(r: R) -> (Vec<OwnedSample>, Vec<Event>, Vec<Damage>, TraceEnd) {
    let mut reader = TraceReader::new(r).unwrap().salvage(true);
    let (mut samples, mut events) = (Vec::new(), Vec::new());
    while let Some(chunk) = reader.next_chunk().unwrap() {
        match chunk {
            Chunk::Samples(block) => samples.extend(block.iter().map(OwnedSample::from)),
            Chunk::Events(chunk_events) => events.extend(chunk_events),
            Chunk::Footer(_) => {}
        }
    }
    let end = reader.end().cloned().unwrap();
    (samples, events, reader.damage().to_vec(), end)
}

/// The samples `0..n` without those of `skip`.
fn samples_but(n: u64, ncounters: usize, skip: std::ops::Range<usize>) -> Vec<OwnedSample> {
    (0..n)
        .filter(|&i| !skip.contains(&(i as usize)))
        .map(|i| owned_sample(i, ncounters))
        .collect()
}

#[test]
fn salvage_resyncs_after_a_flipped_byte_in_the_first_chunk_magic() {
    let header = header(2);
    let bytes = write_trace(&header, 40, 4 * record_size(2));
    let ends = chunk_ends(&bytes);
    let (first, second) = (ends[0].0, ends[1].0);
    assert_eq!(ends[1].1, 4, "the first chunk holds samples 0..4");
    let mut damaged = bytes.clone();
    damaged[first as usize + 1] ^= 0x01;
    assert!(read_all(&damaged[..]).is_err(), "without salvage: an error");
    for (samples, events, damage, end) in [salvage(&damaged[..]), salvage(OneByte(&damaged))] {
        assert_eq!(
            samples,
            samples_but(40, 2, 0..4),
            "every later chunk is read"
        );
        assert_eq!(events, read_all(&bytes[..]).unwrap().events);
        assert_eq!(
            damage,
            [Damage {
                start: first,
                end: second,
                reason: "found \"PGCK\" where the chunk magic \"PFCK\" was expected".into(),
            }]
        );
        assert!(matches!(
            end,
            TraceEnd::Complete(Footer { samples: 40, .. })
        ));
    }
}

#[test]
fn salvage_skips_a_middle_chunk_whose_checksum_fails_and_keeps_both_sides() {
    let header = header(3);
    let bytes = write_trace(&header, 30, 4 * record_size(3));
    let ends = chunk_ends(&bytes);
    let (start, end) = (ends[3].0, ends[4].0);
    let lost = ends[3].1..ends[4].1;
    assert_eq!(lost.len(), 4, "chunk 3 is a samples chunk");
    // A flipped byte, and a payload full of chunk magic that the search
    // must not take for a header.
    let mut flipped = bytes.clone();
    flipped[(start + end) as usize / 2] ^= 0x40;
    let mut magic = bytes.clone();
    for (i, byte) in magic[start as usize + 20..end as usize]
        .iter_mut()
        .enumerate()
    {
        *byte = CHUNK_MAGIC[i % 4];
    }
    for damaged in [flipped, magic] {
        let err = read_all(&damaged[..]).unwrap_err();
        assert!(
            matches!(err, TraceError::CorruptChunk { offset, .. } if offset == start),
            "{err}"
        );
        let (samples, _, damage, trace_end) = salvage(&damaged[..]);
        assert_eq!(samples, samples_but(30, 3, lost.clone()));
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert_eq!((damage[0].start, damage[0].end), (start, end));
        assert!(
            damage[0].reason.starts_with("checksum of the chunk is 0x"),
            "{damage:?}"
        );
        assert_eq!(
            damage[0].to_string(),
            format!(
                "bytes {start}..{end} ({} bytes): {}",
                end - start,
                damage[0].reason
            )
        );
        assert!(matches!(trace_end, TraceEnd::Complete(_)));
    }
}

#[test]
fn salvage_lists_every_damaged_range() {
    let header = header(1);
    let bytes = write_trace(&header, 30, 4 * record_size(1));
    let ends = chunk_ends(&bytes);
    let mut damaged = bytes.clone();
    for k in [0, 2, 3, 5] {
        damaged[ends[k].0 as usize + 20] ^= 0xff;
    }
    let (samples, _, damage, _) = salvage(&damaged[..]);
    let ranges: Vec<_> = damage.iter().map(|d| (d.start, d.end)).collect();
    // Chunks 2 and 3 are next to each other: the search from 2 steps over
    // 3 as well, since it is not whole either.
    assert_eq!(
        ranges,
        [
            (ends[0].0, ends[1].0),
            (ends[2].0, ends[4].0),
            (ends[5].0, ends[6].0)
        ]
    );
    let kept: Vec<_> = [1, 4]
        .iter()
        .chain(&(6..ends.len() - 1).collect::<Vec<_>>())
        .flat_map(|&k| ends[k].1..ends[k + 1].1)
        .map(|i| owned_sample(i as u64, 1))
        .collect();
    assert_eq!(samples, kept);
}

#[test]
fn a_damaged_length_in_a_complete_trace_is_corruption_not_truncation() {
    let header = header(2);
    let bytes = write_trace(&header, 20, 4 * record_size(2));
    let ends = chunk_ends(&bytes);
    let at = ends[0].0 as usize;
    let mut damaged = bytes.clone();
    damaged[at + 8..at + 12].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    let err = read_all(&damaged[..]).unwrap_err();
    let TraceError::CorruptChunk { offset, reason } = &err else {
        panic!("{err}")
    };
    assert_eq!(*offset, at as u64);
    let left = bytes.len() - at - 20;
    assert_eq!(
        reason,
        &format!(
            "its length field says 16711680 bytes of payload, more than the {left} left in the file, \
             yet a whole chunk starts at byte {}; the length field is damaged",
            ends[1].0
        )
    );
    assert!(
        err.to_string()
            .starts_with(&format!("corrupt chunk at byte {at}: ")),
        "{err}"
    );
    let (samples, _, damage, end) = salvage(&damaged[..]);
    assert_eq!(samples, samples_but(20, 2, 0..4));
    assert_eq!((damage[0].start, damage[0].end), (at as u64, ends[1].0));
    assert!(matches!(end, TraceEnd::Complete(_)));
}

#[test]
fn salvage_of_a_damaged_footer_ends_the_trace_at_it() {
    let header = header(1);
    let bytes = write_trace(&header, 10, 4 * record_size(1));
    let ends = chunk_ends(&bytes);
    let footer_at = ends[ends.len() - 2].0;
    let mut damaged = bytes.clone();
    damaged[footer_at as usize] = b'Q';
    let (samples, _, damage, end) = salvage(&damaged[..]);
    assert_eq!(samples, samples_but(10, 1, 0..0));
    assert_eq!(
        (damage[0].start, damage[0].end),
        (footer_at, bytes.len() as u64)
    );
    assert_eq!(
        end,
        TraceEnd::Truncated {
            last_whole_chunk_end: footer_at,
            bytes_lost: bytes.len() as u64 - footer_at,
        }
    );
    // Data after a whole footer is damage too; the trace is complete.
    let mut extra = bytes.clone();
    extra.extend_from_slice(b"junk");
    let (samples, _, damage, end) = salvage(&extra[..]);
    assert_eq!(samples.len(), 10);
    let len = bytes.len() as u64;
    assert_eq!((damage[0].start, damage[0].end), (len, len + 4));
    assert!(matches!(end, TraceEnd::Complete(_)));
}

#[test]
fn salvage_of_an_undamaged_trace_reads_it_all() {
    let header = header(3);
    let bytes = write_trace(&header, 25, 4 * record_size(3));
    let (samples, events, damage, end) = salvage(&bytes[..]);
    let trace = read_all(&bytes[..]).unwrap();
    assert_eq!(
        (samples, events, end),
        (trace.samples, trace.events, trace.end)
    );
    assert!(damage.is_empty());
    // A cut-short trace is still just truncated.
    let cut = &bytes[..bytes.len() - 30];
    let (_, _, damage, end) = salvage(cut);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(end, read_all(cut).unwrap().end);
}

#[test]
fn salvage_after_any_flipped_byte_loses_exactly_its_chunk() {
    let header = header(1);
    let bytes = write_trace(&header, 30, 4 * record_size(1));
    let ends = chunk_ends(&bytes);
    let footer_at = ends[ends.len() - 2].0;
    let all = read_all(&bytes[..]).unwrap();
    for at in ends[0].0..bytes.len() as u64 {
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 0x20;
        let k = ends.iter().rposition(|&(start, _)| start <= at).unwrap();
        let (start, end) = (ends[k].0, ends[k + 1].0);
        let (samples, _, damage, trace_end) = salvage(&damaged[..]);
        let ranges: Vec<_> = damage.iter().map(|d| (d.start, d.end)).collect();
        let lost = ends[k].1..ends[k + 1].1;
        assert_eq!(samples, samples_but(30, 1, lost), "flipped byte {at}");
        if start == footer_at {
            // Nothing follows the footer: with its length grown past the
            // end it reads as a footer cut short, which it may well be.
            let grown = (start + 8..start + 12).contains(&at) && ranges.is_empty();
            assert!(grown || ranges == [(start, end)], "flipped byte {at}");
            assert!(
                matches!(trace_end, TraceEnd::Truncated { last_whole_chunk_end, .. } if last_whole_chunk_end == footer_at),
                "flipped byte {at}: {trace_end:?}"
            );
        } else {
            assert_eq!(ranges, [(start, end)], "flipped byte {at}");
            assert_eq!(trace_end, all.end, "flipped byte {at}");
        }
    }
}
