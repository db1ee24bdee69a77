//! Decoding the records perf writes into the ring buffers, and moving them
//! into the trace.
//!
//! The layout is fixed by the attributes perfunc opens its events with
//! (see `session.rs`): samples carry `IDENTIFIER | TID | TIME | CPU | READ`
//! with a group read of `TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING`, then,
//! per event, `CALLCHAIN` (`--callchain fp`) or `REGS_USER | STACK_USER`
//! (`--callchain dwarf`) on entry events; every other record (lost, fork,
//! exit, comm, `MMAP2`) carries the `sample_id_all` trailer `TID | TIME |
//! CPU | IDENTIFIER`. The events of a tracepoint pair matched by a key field
//! also carry `RAW` (after the group read), from which the key is read.

use std::collections::HashMap;

use crate::kernel::Field;
use crate::trace::{Event, RecordKind, SampleIn};

const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_COMM: u32 = 3;
const PERF_RECORD_EXIT: u32 = 4;
const PERF_RECORD_FORK: u32 = 7;
const PERF_RECORD_SAMPLE: u32 = 9;
const PERF_RECORD_MMAP2: u32 = 10;
const PERF_RECORD_LOST_SAMPLES: u32 = 13;

/// Bytes of the `sample_id_all` trailer: tid/pid, time, cpu/res, identifier.
const SAMPLE_ID_TRAILER: usize = 32;

/// Call chain entries at or above this are context markers
/// (`PERF_CONTEXT_USER` and the like), not addresses.
const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;

/// What an entry sample carries beyond the counters, besides the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Extra {
    /// Nothing.
    #[default]
    None,
    /// `CALLCHAIN`: the user call chain.
    Callchain,
    /// `REGS_USER` (ip, sp, bp) and `STACK_USER`.
    UserStack,
}

/// The `sample_regs_user` mask perfunc asks for: x86-64's BP (6), SP (7)
/// and IP (8), returned in that order.
pub const USER_REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);

/// One decoded record.
#[derive(Debug, PartialEq)]
pub enum Decoded<'a> {
    /// A probe hit with the group's counter values.
    Sample(SampleIn<'a>),
    /// A side-band event (lost, fork, exit, comm).
    Event(Event),
    /// A record type perfunc does not keep.
    Other,
}

/// Maps kernel event ids to probe ids and decodes records.
#[derive(Debug, Default)]
pub struct Decoder {
    ids: HashMap<u64, Registered>,
    values: Vec<u64>,
    /// The call chain or stack of the last sample, until taken.
    extra: Option<Event>,
}

/// What a kernel event id stands for.
#[derive(Debug, Clone)]
struct Registered {
    probe: u32,
    kind: RecordKind,
    /// The key field in the event's raw data (the event samples `RAW`).
    key: Option<Field>,
    /// What else the event samples.
    extra: Extra,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Decoder {
    /// Registers the kernel id of a probe event, with the field its key
    /// is read from when the event samples `RAW`.
    pub fn add_id(&mut self, kernel_id: u64, probe: u32, kind: RecordKind, key: Option<Field>) {
        self.add_id_with(kernel_id, probe, kind, key, Extra::None);
    }

    /// As [`Decoder::add_id`], for an event that also samples `extra`.
    pub fn add_id_with(
        &mut self,
        kernel_id: u64,
        probe: u32,
        kind: RecordKind,
        key: Option<Field>,
        extra: Extra,
    ) {
        let registered = Registered {
            probe,
            kind,
            key,
            extra,
        };
        self.ids.insert(kernel_id, registered);
    }

    /// The call chain or user stack event of the sample decoded last, if
    /// it had one; to be written after the sample.
    pub fn take_extra(&mut self) -> Option<Event> {
        self.extra.take()
    }

    /// Decodes the body (what follows the 8-byte header) of a record of
    /// type `ty`. Returns `None` for a record too short for its type, which
    /// the kernel never writes.
    pub fn decode<'s>(&'s mut self, ty: u32, body: &[u8]) -> Option<Decoded<'s>> {
        match ty {
            PERF_RECORD_SAMPLE => self.sample(body),
            PERF_RECORD_MMAP2 => {
                let (pid, tid) = (u32_at(body, 0)?, u32_at(body, 4)?);
                let (start, len, pgoff) = (u64_at(body, 8)?, u64_at(body, 16)?, u64_at(body, 24)?);
                let end = body.len().checked_sub(SAMPLE_ID_TRAILER)?;
                let raw = body.get(64..end)?;
                let path_len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                let (time, _) = trailer(body)?;
                Some(Decoded::Event(Event::Mmap {
                    time,
                    pid,
                    tid,
                    start,
                    len,
                    pgoff,
                    path: String::from_utf8_lossy(&raw[..path_len]).into_owned(),
                }))
            }
            PERF_RECORD_LOST => {
                let lost = u64_at(body, 8)?;
                let (time, cpu) = trailer(body)?;
                Some(Decoded::Event(Event::Lost {
                    time,
                    cpu,
                    count: lost,
                }))
            }
            PERF_RECORD_LOST_SAMPLES => {
                let lost = u64_at(body, 0)?;
                let (time, cpu) = trailer(body)?;
                Some(Decoded::Event(Event::Lost {
                    time,
                    cpu,
                    count: lost,
                }))
            }
            PERF_RECORD_FORK | PERF_RECORD_EXIT => {
                let (pid, ppid, tid, ptid) = (
                    u32_at(body, 0)?,
                    u32_at(body, 4)?,
                    u32_at(body, 8)?,
                    u32_at(body, 12)?,
                );
                let time = u64_at(body, 16)?;
                Some(Decoded::Event(if ty == PERF_RECORD_FORK {
                    Event::Fork {
                        time,
                        pid,
                        ppid,
                        tid,
                        ptid,
                    }
                } else {
                    Event::Exit {
                        time,
                        pid,
                        ppid,
                        tid,
                        ptid,
                    }
                }))
            }
            PERF_RECORD_COMM => {
                let (pid, tid) = (u32_at(body, 0)?, u32_at(body, 4)?);
                let end = body.len().checked_sub(SAMPLE_ID_TRAILER)?;
                let raw = body.get(8..end)?;
                let name_len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                let (time, _) = trailer(body)?;
                Some(Decoded::Event(Event::Comm {
                    time,
                    pid,
                    tid,
                    name: String::from_utf8_lossy(&raw[..name_len]).into_owned(),
                }))
            }
            _ => Some(Decoded::Other),
        }
    }

    fn sample<'s>(&'s mut self, body: &[u8]) -> Option<Decoded<'s>> {
        let id = u64_at(body, 0)?;
        let pid = u32_at(body, 8)?;
        let tid = u32_at(body, 12)?;
        let time = u64_at(body, 16)?;
        let cpu = u32_at(body, 24)?;
        let nr = u64_at(body, 32)? as usize;
        let time_enabled = u64_at(body, 40)?;
        let time_running = u64_at(body, 48)?;
        let Some(event) = self.ids.get(&id) else {
            return Some(Decoded::Other);
        };
        let (probe, kind, extra) = (event.probe, event.kind, event.extra);
        // After the group read: CALLCHAIN, RAW, REGS_USER, STACK_USER, each
        // when sampled.
        let mut at = nr.checked_mul(8)?.checked_add(56)?;
        let mut ips = Vec::new();
        if extra == Extra::Callchain {
            let n = u64_at(body, at)? as usize;
            let ips_bytes = body.get(at + 8..at.checked_add(n.checked_mul(8)?)?.checked_add(8)?)?;
            ips.extend(
                ips_bytes
                    .chunks_exact(8)
                    .filter_map(|w| u64_at(w, 0))
                    .filter(|&ip| ip < PERF_CONTEXT_MAX),
            );
            at += 8 + ips_bytes.len();
        }
        let key = match &event.key {
            None => 0,
            Some(field) => {
                let size = u32_at(body, at)? as usize;
                let raw = body.get(at + 4..(at + 4).checked_add(size)?)?;
                at += 4 + size;
                field.read(raw)? as u64
            }
        };
        self.extra = match extra {
            Extra::None => None,
            Extra::Callchain => Some(Event::Callchain {
                time,
                pid,
                tid,
                ips,
            }),
            Extra::UserStack => user_stack(body, at, (time, pid, tid)),
        };
        // Group values: entry probe count, return probe count, counters.
        self.values.clear();
        for i in 2..nr {
            self.values.push(u64_at(body, 56 + 8 * i)?);
        }
        Some(Decoded::Sample(SampleIn {
            time,
            pid,
            tid,
            probe,
            cpu: cpu as u16,
            kind,
            time_enabled,
            time_running,
            values: &self.values,
            key,
        }))
    }
}

/// The `UserStack` event of `REGS_USER` and `STACK_USER` at `at`; `None`
/// when the sample has no user registers (it hit in a kernel thread).
fn user_stack(body: &[u8], mut at: usize, (time, pid, tid): (u64, u32, u32)) -> Option<Event> {
    let abi = u64_at(body, at)?;
    at += 8;
    if abi == 0 {
        return None;
    }
    // In mask order: BP, SP, IP.
    let (bp, sp, ip) = (
        u64_at(body, at)?,
        u64_at(body, at + 8)?,
        u64_at(body, at + 16)?,
    );
    at += 24;
    let size = usize::try_from(u64_at(body, at)?).ok()?;
    let data = body.get(at + 8..(at + 8).checked_add(size)?)?;
    // The bytes the kernel really copied (the rest of `size` is zeros).
    let dyn_size = if size == 0 {
        0
    } else {
        (u64_at(body, at + 8 + size)? as usize).min(size)
    };
    Some(Event::UserStack {
        time,
        pid,
        tid,
        ip,
        sp,
        bp,
        stack: data[..dyn_size].to_vec(),
    })
}

/// (time, cpu) from the `sample_id_all` trailer at the end of `body`.
fn trailer(body: &[u8]) -> Option<(u64, u32)> {
    let start = body.len().checked_sub(SAMPLE_ID_TRAILER)?;
    Some((u64_at(body, start + 8)?, u32_at(body, start + 16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u64]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn pid_tid(pid: u32, tid: u32) -> u64 {
        u64::from(pid) | (u64::from(tid) << 32)
    }

    #[test]
    fn decodes_a_group_sample() {
        let mut d = Decoder::default();
        d.add_id(77, 3, RecordKind::Return, None);
        // id, pid/tid, time, cpu, nr, enabled, running, values[nr]
        let body = words(&[77, pid_tid(10, 11), 5000, 1, 5, 900, 800, 1, 1, 42, 43, 44]);
        let Some(Decoded::Sample(s)) = d.decode(PERF_RECORD_SAMPLE, &body) else {
            panic!("not a sample")
        };
        assert_eq!((s.pid, s.tid, s.time, s.cpu, s.probe), (10, 11, 5000, 1, 3));
        assert_eq!(s.kind, RecordKind::Return);
        assert_eq!((s.time_enabled, s.time_running), (900, 800));
        assert_eq!(s.values, &[42, 43, 44]);
    }

    #[test]
    fn reads_the_key_from_raw_data() {
        let mut d = Decoder::default();
        let vec = Field {
            name: "vec".into(),
            offset: 8,
            size: 4,
            signed: false,
        };
        d.add_id(5, 0, RecordKind::Entry, Some(vec));
        let mut body = words(&[5, pid_tid(0, 0), 700, 1, 3, 10, 10, 1, 0, 99]);
        // RAW: size 12, common fields (8 bytes), then vec = 3.
        body.extend(12u32.to_le_bytes());
        body.extend([0u8; 8]);
        body.extend(3u32.to_le_bytes());
        let Some(Decoded::Sample(s)) = d.decode(PERF_RECORD_SAMPLE, &body) else {
            panic!("not a sample")
        };
        assert_eq!((s.key, s.values), (3, &[99][..]));
        // A raw payload too short for the field: not a sample perfunc can use.
        body.truncate(body.len() - 4);
        assert_eq!(d.decode(PERF_RECORD_SAMPLE, &body), None);
    }

    #[test]
    fn unknown_ids_are_skipped() {
        let mut d = Decoder::default();
        let body = words(&[99, pid_tid(1, 1), 1, 0, 2, 0, 0, 1, 0]);
        assert_eq!(d.decode(PERF_RECORD_SAMPLE, &body), Some(Decoded::Other));
    }

    #[test]
    fn decodes_lost_and_task_records() {
        let mut d = Decoder::default();
        let trailer = [pid_tid(0, 0), 123, 1, 0];
        let mut body = words(&[5, 17]);
        body.extend(words(&trailer));
        assert_eq!(
            d.decode(PERF_RECORD_LOST, &body),
            Some(Decoded::Event(Event::Lost {
                time: 123,
                cpu: 1,
                count: 17
            }))
        );
        let mut body = words(&[pid_tid(10, 9), pid_tid(12, 11), 321]);
        body.extend(words(&trailer));
        assert_eq!(
            d.decode(PERF_RECORD_FORK, &body),
            Some(Decoded::Event(Event::Fork {
                time: 321,
                pid: 10,
                ppid: 9,
                tid: 12,
                ptid: 11
            }))
        );
        let mut body = words(&[pid_tid(10, 12)]);
        body.extend_from_slice(b"worker\0\0");
        body.extend(words(&trailer));
        assert_eq!(
            d.decode(PERF_RECORD_COMM, &body),
            Some(Decoded::Event(Event::Comm {
                time: 123,
                pid: 10,
                tid: 12,
                name: "worker".into()
            }))
        );
    }

    #[test]
    fn short_records_are_rejected() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(PERF_RECORD_SAMPLE, &[0; 12]), None);
    }
}
