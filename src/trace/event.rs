//! Event records: variable-size, tagged: lost records, process lifecycle,
//! memory mappings, and the call chains or user stacks of entry samples. Each is `u16 tag, u16 len, body[len]`; readers skip tags
//! they do not know by `len`, and ignore bytes past the fields they know.

use super::error::TraceError;
use super::format::{le_u16, le_u32, le_u64, EVENT_HEADER_LEN};

const TAG_LOST: u16 = 1;
const TAG_FORK: u16 = 2;
const TAG_EXIT: u16 = 3;
const TAG_COMM: u16 = 4;
const TAG_MMAP: u16 = 5;
const TAG_CALLCHAIN: u16 = 6;
const TAG_USER_STACK: u16 = 7;
const TAG_RUN: u16 = 8;

/// Body bytes of a `Lost` event.
const LOST_LEN: usize = 20;
/// Body bytes of a `Fork` or `Exit` event.
const TASK_LEN: usize = 24;
/// Body bytes of a `Comm` event before its name.
const COMM_FIXED_LEN: usize = 16;
/// Body bytes of an `Mmap` event before its path.
const MMAP_FIXED_LEN: usize = 40;
/// Body bytes of a `Callchain` event before its addresses.
const CALLCHAIN_FIXED_LEN: usize = 16;
/// Body bytes of a `UserStack` event before its stack bytes.
const USER_STACK_FIXED_LEN: usize = 40;
/// Body bytes of a `Run` event: time, index, pid.
const RUN_LEN: usize = 16;

/// The largest user stack copy an event holds (its body length is a `u16`).
pub const MAX_USER_STACK: usize = u16::MAX as usize - USER_STACK_FIXED_LEN;

/// A non-sample record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The kernel dropped `count` records on `cpu` (ring buffer full).
    Lost {
        /// Time in ns on the header's clock.
        time: u64,
        /// CPU whose ring lost them.
        cpu: u32,
        /// Records lost.
        count: u64,
    },
    /// A process or thread was created.
    Fork {
        /// Time in ns on the header's clock.
        time: u64,
        /// Process id of the new task.
        pid: u32,
        /// Process id of its parent.
        ppid: u32,
        /// Thread id of the new task.
        tid: u32,
        /// Thread id of its parent.
        ptid: u32,
    },
    /// A process or thread exited.
    Exit {
        /// Time in ns on the header's clock.
        time: u64,
        /// Process id of the task.
        pid: u32,
        /// Process id of its parent.
        ppid: u32,
        /// Thread id of the task.
        tid: u32,
        /// Thread id of its parent.
        ptid: u32,
    },
    /// A task got a new name (exec or prctl).
    Comm {
        /// Time in ns on the header's clock.
        time: u64,
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// The new name.
        name: String,
    },
    /// A file was mapped executable into a process (`PERF_RECORD_MMAP2`, or
    /// /proc/PID/maps when attaching): what call chains are resolved
    /// against.
    Mmap {
        /// Time in ns on the header's clock.
        time: u64,
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// First mapped address.
        start: u64,
        /// Bytes mapped.
        len: u64,
        /// File offset of `start`.
        pgoff: u64,
        /// The file (`[vdso]` and the like for special mappings).
        path: String,
    },
    /// The user call chain of the entry sample of thread `tid` at `time`
    /// (`--callchain fp`): the probed function's address, then the return
    /// addresses of its callers, innermost first.
    Callchain {
        /// Time of the entry sample.
        time: u64,
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// Instruction addresses, innermost first.
        ips: Vec<u64>,
    },
    /// The user registers and a copy of the user stack at the entry sample
    /// of thread `tid` at `time` (`--callchain dwarf`), unwound later.
    UserStack {
        /// Time of the entry sample.
        time: u64,
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// Instruction pointer.
        ip: u64,
        /// Stack pointer: the address of `stack[0]`.
        sp: u64,
        /// Frame pointer register (%rbp).
        bp: u64,
        /// The stack from `sp` upwards.
        stack: Vec<u8>,
    },
    /// Run `index` (from 0) of a `record --repeat` recording starts: its
    /// command is released at `time`, after the run before it has ended
    /// (its command exited, what it left behind detached, its groups
    /// drained and closed), so each record belongs to the last run that
    /// started at or before it.
    Run {
        /// Time in ns on the header's clock.
        time: u64,
        /// The run's index, from 0.
        index: u32,
        /// Process id of the run's command.
        pid: u32,
    },
}

/// Appends the record of `e` to `out`; on error `out` is unchanged.
pub(crate) fn encode_event(out: &mut Vec<u8>, e: &Event) -> Result<(), TraceError> {
    let start = out.len();
    out.extend_from_slice(&[0; EVENT_HEADER_LEN]);
    let tag = encode_body(out, e);
    let body_len = out.len() - start - EVENT_HEADER_LEN;
    let Ok(len) = u16::try_from(body_len) else {
        out.truncate(start);
        return Err(TraceError::TooLarge {
            what: "event body",
            len: body_len,
            max: u16::MAX.into(),
        });
    };
    out[start..start + 2].copy_from_slice(&tag.to_le_bytes());
    out[start + 2..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends the body of `e` and returns its tag.
fn encode_body(out: &mut Vec<u8>, e: &Event) -> u16 {
    match e {
        Event::Lost { time, cpu, count } => {
            out.extend_from_slice(&time.to_le_bytes());
            out.extend_from_slice(&cpu.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            TAG_LOST
        }
        Event::Fork {
            time,
            pid,
            ppid,
            tid,
            ptid,
        } => {
            encode_task(out, *time, [*pid, *ppid, *tid, *ptid]);
            TAG_FORK
        }
        Event::Exit {
            time,
            pid,
            ppid,
            tid,
            ptid,
        } => {
            encode_task(out, *time, [*pid, *ppid, *tid, *ptid]);
            TAG_EXIT
        }
        Event::Comm {
            time,
            pid,
            tid,
            name,
        } => {
            out.extend_from_slice(&time.to_le_bytes());
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&tid.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            TAG_COMM
        }
        Event::Mmap {
            time,
            pid,
            tid,
            start,
            len,
            pgoff,
            path,
        } => {
            encode_head(out, *time, *pid, *tid);
            for word in [start, len, pgoff] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(path.as_bytes());
            TAG_MMAP
        }
        Event::Callchain {
            time,
            pid,
            tid,
            ips,
        } => {
            encode_head(out, *time, *pid, *tid);
            for ip in ips {
                out.extend_from_slice(&ip.to_le_bytes());
            }
            TAG_CALLCHAIN
        }
        Event::UserStack {
            time,
            pid,
            tid,
            ip,
            sp,
            bp,
            stack,
        } => {
            encode_head(out, *time, *pid, *tid);
            for word in [ip, sp, bp] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(stack);
            TAG_USER_STACK
        }
        Event::Run { time, index, pid } => {
            encode_head(out, *time, *index, *pid);
            TAG_RUN
        }
    }
}

/// time, pid, tid: the head of the per-task events.
fn encode_head(out: &mut Vec<u8>, time: u64, pid: u32, tid: u32) {
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&pid.to_le_bytes());
    out.extend_from_slice(&tid.to_le_bytes());
}

fn encode_task(out: &mut Vec<u8>, time: u64, ids: [u32; 4]) {
    out.extend_from_slice(&time.to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
}

/// Decodes the `count` records of an events payload from the chunk at byte
/// `offset`, skipping unknown tags.
pub(crate) fn decode_events(
    payload: &[u8],
    count: u32,
    offset: u64,
) -> Result<Vec<Event>, TraceError> {
    let corrupt = |reason| TraceError::CorruptChunk { offset, reason };
    let mut events = Vec::with_capacity((count as usize).min(payload.len() / EVENT_HEADER_LEN));
    let mut pos = 0;
    for i in 0..count {
        let (tag, body) = split_record(payload, pos).ok_or_else(|| {
            corrupt(format!(
                "event {i} of {count} at payload byte {pos} runs past the {}-byte payload",
                payload.len()
            ))
        })?;
        if let Some(event) = decode_body(tag, body).map_err(|need| {
            corrupt(format!(
                "event {i} (tag {tag}) has a {}-byte body where at least {need} bytes were expected",
                body.len()
            ))
        })? {
            events.push(event);
        }
        pos += EVENT_HEADER_LEN + body.len();
    }
    if pos != payload.len() {
        return Err(corrupt(format!(
            "events payload is {} bytes where its {count} events end at byte {pos}",
            payload.len()
        )));
    }
    Ok(events)
}

/// The tag and body of the record at `pos`, if it fits in `payload`.
fn split_record(payload: &[u8], pos: usize) -> Option<(u16, &[u8])> {
    let header = payload.get(pos..pos + EVENT_HEADER_LEN)?;
    let body_start = pos + EVENT_HEADER_LEN;
    let body = payload.get(body_start..body_start + usize::from(le_u16(header, 2)))?;
    Some((le_u16(header, 0), body))
}

/// The event of a body: `Ok(None)` for an unknown tag, `Err(n)` if the body
/// is shorter than the `n` bytes its tag needs.
fn decode_body(tag: u16, body: &[u8]) -> Result<Option<Event>, usize> {
    let need = match tag {
        TAG_LOST => LOST_LEN,
        TAG_FORK | TAG_EXIT => TASK_LEN,
        TAG_COMM => COMM_FIXED_LEN,
        TAG_MMAP => MMAP_FIXED_LEN,
        TAG_CALLCHAIN => CALLCHAIN_FIXED_LEN,
        TAG_USER_STACK => USER_STACK_FIXED_LEN,
        TAG_RUN => RUN_LEN,
        _ => return Ok(None),
    };
    if body.len() < need {
        return Err(need);
    }
    let time = le_u64(body, 0);
    let event = match tag {
        TAG_LOST => Event::Lost {
            time,
            cpu: le_u32(body, 8),
            count: le_u64(body, 12),
        },
        TAG_FORK => Event::Fork {
            time,
            pid: le_u32(body, 8),
            ppid: le_u32(body, 12),
            tid: le_u32(body, 16),
            ptid: le_u32(body, 20),
        },
        TAG_EXIT => Event::Exit {
            time,
            pid: le_u32(body, 8),
            ppid: le_u32(body, 12),
            tid: le_u32(body, 16),
            ptid: le_u32(body, 20),
        },
        TAG_COMM => Event::Comm {
            time,
            pid: le_u32(body, 8),
            tid: le_u32(body, 12),
            name: String::from_utf8_lossy(&body[COMM_FIXED_LEN..]).into_owned(),
        },
        TAG_MMAP => Event::Mmap {
            time,
            pid: le_u32(body, 8),
            tid: le_u32(body, 12),
            start: le_u64(body, 16),
            len: le_u64(body, 24),
            pgoff: le_u64(body, 32),
            path: String::from_utf8_lossy(&body[MMAP_FIXED_LEN..]).into_owned(),
        },
        TAG_CALLCHAIN => Event::Callchain {
            time,
            pid: le_u32(body, 8),
            tid: le_u32(body, 12),
            ips: body[CALLCHAIN_FIXED_LEN..]
                .chunks_exact(8)
                .map(|w| le_u64(w, 0))
                .collect(),
        },
        TAG_RUN => Event::Run {
            time,
            index: le_u32(body, 8),
            pid: le_u32(body, 12),
        },
        _ => Event::UserStack {
            time,
            pid: le_u32(body, 8),
            tid: le_u32(body, 12),
            ip: le_u64(body, 16),
            sp: le_u64(body, 24),
            bp: le_u64(body, 32),
            stack: body[USER_STACK_FIXED_LEN..].to_vec(),
        },
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            encode_event(&mut out, e).unwrap();
        }
        out
    }

    #[test]
    fn layout_of_each_tag() {
        let lost = encode(&[Event::Lost {
            time: 1,
            cpu: 2,
            count: 3,
        }]);
        assert_eq!(
            lost,
            [
                &[1, 0, 20, 0][..],
                &[1, 0, 0, 0, 0, 0, 0, 0],
                &[2, 0, 0, 0],
                &[3, 0, 0, 0, 0, 0, 0, 0]
            ]
            .concat()
        );
        let fork = encode(&[Event::Fork {
            time: 9,
            pid: 1,
            ppid: 2,
            tid: 3,
            ptid: 4,
        }]);
        assert_eq!(
            fork,
            [
                &[2, 0, 24, 0][..],
                &[9, 0, 0, 0, 0, 0, 0, 0],
                &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]
            ]
            .concat()
        );
        let exit = encode(&[Event::Exit {
            time: 9,
            pid: 1,
            ppid: 2,
            tid: 3,
            ptid: 4,
        }]);
        assert_eq!(exit[..4], [3, 0, 24, 0]);
        assert_eq!(exit[4..], fork[4..]);
        let comm = encode(&[Event::Comm {
            time: 5,
            pid: 6,
            tid: 7,
            name: "ab".into(),
        }]);
        assert_eq!(
            comm,
            [
                &[4, 0, 18, 0][..],
                &[5, 0, 0, 0, 0, 0, 0, 0],
                &[6, 0, 0, 0, 7, 0, 0, 0],
                b"ab"
            ]
            .concat()
        );
    }

    #[test]
    fn every_tag_round_trips() {
        let events = vec![
            Event::Lost {
                time: u64::MAX,
                cpu: 3,
                count: 1 << 40,
            },
            Event::Fork {
                time: 10,
                pid: 100,
                ppid: 1,
                tid: 101,
                ptid: 100,
            },
            Event::Exit {
                time: 20,
                pid: 100,
                ppid: 1,
                tid: 101,
                ptid: 100,
            },
            Event::Comm {
                time: 30,
                pid: 100,
                tid: 100,
                name: "bench-ünï".into(),
            },
            Event::Comm {
                time: 31,
                pid: 100,
                tid: 100,
                name: String::new(),
            },
            Event::Run {
                time: 40,
                index: 4,
                pid: u32::MAX,
            },
        ];
        assert_eq!(decode_events(&encode(&events), 6, 0).unwrap(), events);
    }

    #[test]
    fn unknown_tags_are_skipped_and_longer_bodies_accepted() {
        let mut payload = vec![99, 0, 3, 0, 0xaa, 0xbb, 0xcc];
        payload.extend_from_slice(&[1, 0, 21, 0]);
        payload.extend_from_slice(
            &encode(&[Event::Lost {
                time: 1,
                cpu: 2,
                count: 3,
            }])[4..],
        );
        payload.push(0xff);
        let events = decode_events(&payload, 2, 0).unwrap();
        assert_eq!(
            events,
            [Event::Lost {
                time: 1,
                cpu: 2,
                count: 3
            }]
        );
    }

    #[test]
    fn body_past_the_payload_is_corrupt() {
        let payload = encode(&[Event::Fork {
            time: 9,
            pid: 1,
            ppid: 2,
            tid: 3,
            ptid: 4,
        }]);
        let err = decode_events(&payload[..27], 1, 500).unwrap_err();
        assert_eq!(err.to_string(), "corrupt chunk at byte 500: event 0 of 1 at payload byte 0 runs past the 27-byte payload");
        let err = decode_events(&payload, 2, 500).unwrap_err();
        assert_eq!(err.to_string(), "corrupt chunk at byte 500: event 1 of 2 at payload byte 28 runs past the 28-byte payload");
    }

    #[test]
    fn short_bodies_and_trailing_bytes_are_corrupt() {
        let err = decode_events(&[1, 0, 2, 0, 0, 0], 1, 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 8: event 0 (tag 1) has a 2-byte body where at least 20 bytes were expected"
        );
        let mut payload = encode(&[Event::Lost {
            time: 1,
            cpu: 2,
            count: 3,
        }]);
        payload.push(0);
        let err = decode_events(&payload, 1, 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 8: events payload is 25 bytes where its 1 events end at byte 24"
        );
    }

    #[test]
    fn oversized_comm_is_rejected_and_leaves_the_buffer_alone() {
        let mut out = vec![1, 2, 3];
        let e = Event::Comm {
            time: 0,
            pid: 0,
            tid: 0,
            name: "x".repeat(70_000),
        };
        let err = encode_event(&mut out, &e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event body is 70016 bytes, more than the 65535 the trace format allows; shorten it"
        );
        assert_eq!(out, [1, 2, 3]);
    }
}
