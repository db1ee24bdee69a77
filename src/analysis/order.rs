//! Puts records back in time order, round by round, and hands them out
//! grouped by thread.
//!
//! A pending record is `4 + N` words: time, time_enabled, time_running,
//! probe/cpu/kind packed, then the `N` counter values.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;

use crate::trace::{Chunk, Event, RecordKind, SampleBlock, TraceError, TraceReader};

/// Words of a pending record before its counter values.
pub(super) const FIXED_WORDS: usize = 4;

/// One pending record, read in place: the fixed words, the counter
/// values, and the key when the trace has a key column.
#[derive(Clone, Copy)]
pub(super) struct Rec<'a>(&'a [u64], bool);

impl<'a> Rec<'a> {
    pub(super) fn new(words: &'a [u64], keyed: bool) -> Self {
        Self(words, keyed)
    }

    /// The key field's value (0 without a key column).
    pub(super) fn key(self) -> u64 {
        if self.1 {
            self.0[self.0.len() - 1]
        } else {
            0
        }
    }

    pub(super) fn time(self) -> u64 {
        self.0[0]
    }

    pub(super) fn enabled(self) -> u64 {
        self.0[1]
    }

    pub(super) fn running(self) -> u64 {
        self.0[2]
    }

    pub(super) fn probe(self) -> u32 {
        self.0[3] as u32
    }

    pub(super) fn cpu(self) -> u16 {
        (self.0[3] >> 32) as u16
    }

    pub(super) fn is_entry(self) -> bool {
        self.0[3] >> 48 == 0
    }

    pub(super) fn values(self) -> &'a [u64] {
        &self.0[FIXED_WORDS..self.0.len() - usize::from(self.1)]
    }
}

/// A fast hasher for integer keys (the FxHash step).
#[derive(Default, Clone, Copy)]
pub(super) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.add(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    /// A key's high half reaches only the product's high half, and the
    /// hash table picks buckets by the low bits: folded down, keys that
    /// differ only in their high half, like the call-path trie's (parent
    /// node, probe), do not all probe one bucket (which made a trie of
    /// 100,000 nested frames take seconds).
    fn finish(&self) -> u64 {
        self.0 ^ self.0 >> 32
    }
}

impl IntHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A hash map keyed by integers.
pub(super) type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// A non-sample record that pairing needs, in time order with the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    /// Records were lost on this CPU.
    Lost { cpu: u32 },
    /// This thread exited.
    Exit { tid: u32 },
    /// A run of a `record --repeat` recording started.
    Run,
    /// A damaged part of the trace was skipped (`--salvage`): what
    /// happened in it is unknown, so no call open before it may be paired
    /// with a return after it.
    Gap,
}

/// An event and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimedEvent {
    pub time: u64,
    pub kind: EventKind,
}

/// The released records of one thread, in time order.
#[derive(Debug, Default)]
pub(super) struct ThreadRecords {
    pub tid: u32,
    pub words: Vec<u64>,
}

/// What one round releases: records by thread (sorted by tid) and events,
/// each in time order.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub threads: Vec<ThreadRecords>,
    pub events: Vec<TimedEvent>,
}

/// One thread's records not yet released.
#[derive(Debug)]
struct Pending {
    tid: u32,
    /// Records read before the last round end, sorted: every one is at or
    /// before the next round end's cutoff, so they leave whole, uncopied.
    older: Vec<u64>,
    /// Records read since.
    current: Vec<u64>,
    /// The latest time in `current`.
    last_time: u64,
    /// Whether `current` is in time order.
    sorted: bool,
}

impl Pending {
    /// Takes the records stamped at or before `cutoff`, in time order.
    fn release(&mut self, cutoff: u64, stride: usize, spare: &mut Vec<Vec<u64>>) -> Vec<u64> {
        if !self.sorted {
            sort_by_time(&mut self.current, stride);
        }
        let count = released(&self.current, stride, cutoff) * stride;
        let mut out = std::mem::take(&mut self.older);
        if count > 0 {
            let in_order = out.len() < stride || out[out.len() - stride] <= self.current[0];
            out.extend_from_slice(&self.current[..count]);
            self.current.drain(..count);
            if !in_order {
                sort_by_time(&mut out, stride);
            }
        }
        let fresh = spare.pop().unwrap_or_default();
        self.older = std::mem::replace(&mut self.current, fresh);
        self.last_time = 0;
        self.sorted = true;
        out
    }
}

/// Records read but not yet released, and what the reader has seen.
#[derive(Debug)]
pub(super) struct Orderer {
    stride: usize,
    keyed: bool,
    tid_filter: Option<u32>,
    pending: Vec<Pending>,
    index: IntMap<u32, usize>,
    /// The tid of the last sample and its pending slot (`None`: filtered).
    last: Option<(u32, Option<usize>)>,
    events: Vec<TimedEvent>,
    seen_max: Option<u64>,
    /// The earliest sample time seen.
    seen_min: Option<u64>,
    /// The latest time seen up to the previous round end.
    watermark: Option<u64>,
    spare: Vec<Vec<u64>>,
    /// Sample records read.
    pub records: u64,
    /// Records lost according to `Lost` events.
    pub lost: u64,
    /// Threads with samples.
    pub tids: HashSet<u32>,
    /// `Run` events read (0 for a recording without `--repeat`).
    pub runs: u32,
    /// Per run: its command's pid, its start and the exit of that pid.
    pub run_times: Vec<(u32, u64, Option<u64>)>,
    /// Whether the trace has ended.
    pub ended: bool,
    /// Damaged ranges of the trace already handled as gaps.
    gaps: usize,
}

impl Orderer {
    /// The time from the first sample to the last, in ns (0 without
    /// samples): how long a trace without a footer was recording at least.
    pub fn span_ns(&self) -> u64 {
        match (self.seen_min, self.seen_max) {
            (Some(min), Some(max)) => max - min,
            _ => 0,
        }
    }

    pub(super) fn new(ncounters: usize, keyed: bool, tid_filter: Option<u32>) -> Self {
        Self {
            stride: FIXED_WORDS + ncounters + usize::from(keyed),
            keyed,
            tid_filter,
            pending: Vec::new(),
            index: IntMap::default(),
            last: None,
            events: Vec::new(),
            seen_max: None,
            seen_min: None,
            watermark: None,
            spare: Vec::new(),
            records: 0,
            lost: 0,
            tids: HashSet::new(),
            runs: 0,
            run_times: Vec::new(),
            ended: false,
            gaps: 0,
        }
    }

    /// Reads chunks up to the end of a round (or of the trace) and returns
    /// what that releases. When the reader skipped a damaged range
    /// (salvage mode) before the chunk it returned, everything read before
    /// the range is released first, followed by a [`EventKind::Gap`].
    pub(super) fn read_round<R: Read>(
        &mut self,
        reader: &mut TraceReader<R>,
    ) -> Result<Batch, TraceError> {
        loop {
            let chunk = reader.next_chunk()?;
            let gap = reader.damage().len() > self.gaps;
            self.gaps = reader.damage().len();
            let mut batch = if gap { Some(self.release_gap()) } else { None };
            match chunk {
                None => {
                    self.ended = true;
                    // After a gap's release nothing is pending.
                    return Ok(batch.unwrap_or_else(|| self.release(Some(u64::MAX))));
                }
                Some(Chunk::Samples(block)) => {
                    self.push_samples(&block);
                    reader.recycle(Chunk::Samples(block));
                }
                Some(Chunk::Events(events)) => self.push_events(&events),
                Some(Chunk::Footer(_)) => {}
            }
            if let Some(batch) = batch.take() {
                return Ok(batch);
            }
            if reader.round_end() {
                let cutoff = std::mem::replace(&mut self.watermark, self.seen_max);
                return Ok(self.release(cutoff));
            }
        }
    }

    /// Releases every pending record and event, then a gap: the records
    /// after a damaged range follow the gap, whatever their times.
    fn release_gap(&mut self) -> Batch {
        let mut batch = self.release(Some(u64::MAX));
        batch.events.push(TimedEvent {
            time: u64::MAX,
            kind: EventKind::Gap,
        });
        self.watermark = self.seen_max;
        batch
    }

    /// Gives the buffers of a processed batch back for reuse.
    pub(super) fn recycle(&mut self, batch: Batch) {
        self.spare.extend(batch.threads.into_iter().map(|mut t| {
            t.words.clear();
            t.words
        }));
    }

    fn push_samples(&mut self, block: &SampleBlock) {
        self.records += block.len() as u64;
        for s in block.iter() {
            let time = s.time();
            self.seen(time);
            let Some(slot) = self.slot(thread_key(s.tid(), s.cpu())) else {
                continue;
            };
            let pending = &mut self.pending[slot];
            if time < pending.last_time {
                pending.sorted = false;
            }
            pending.last_time = pending.last_time.max(time);
            let kind = u64::from(s.kind() == RecordKind::Return);
            let meta = u64::from(s.probe()) | u64::from(s.cpu()) << 32 | kind << 48;
            let words = &mut pending.current;
            words.extend_from_slice(&[time, s.time_enabled(), s.time_running(), meta]);
            words.extend(s.values());
            if self.keyed {
                words.push(s.key());
            }
        }
    }

    /// The pending slot of `tid`, created on first sight; `None` if the
    /// thread is filtered out.
    fn slot(&mut self, tid: u32) -> Option<usize> {
        if let Some((last_tid, slot)) = self.last {
            if last_tid == tid {
                return slot;
            }
        }
        self.tids.insert(tid);
        let slot = match self.tid_filter {
            Some(only) if only != tid => None,
            _ => Some(*self.index.entry(tid).or_insert_with(|| {
                self.pending.push(Pending {
                    tid,
                    older: Vec::new(),
                    current: Vec::new(),
                    last_time: 0,
                    sorted: true,
                });
                self.pending.len() - 1
            })),
        };
        self.last = Some((tid, slot));
        slot
    }

    fn push_events(&mut self, events: &[Event]) {
        for event in events {
            let (time, kind) = match *event {
                Event::Lost { time, cpu, count } => {
                    self.lost += count;
                    (time, EventKind::Lost { cpu })
                }
                Event::Exit { time, pid, tid, .. } => {
                    if pid == tid {
                        let mut runs = self.run_times.iter_mut().rev();
                        if let Some(run) = runs.find(|r| r.0 == pid && r.2.is_none()) {
                            run.2 = Some(time);
                        }
                    }
                    (time, EventKind::Exit { tid })
                }
                Event::Run { time, pid, .. } => {
                    self.runs += 1;
                    self.run_times.push((pid, time, None));
                    (time, EventKind::Run)
                }
                Event::Fork { .. }
                | Event::Comm { .. }
                | Event::Mmap { .. }
                | Event::Callchain { .. }
                | Event::UserStack { .. } => continue,
            };
            self.seen(time);
            self.events.push(TimedEvent { time, kind });
        }
    }

    fn seen(&mut self, time: u64) {
        self.seen_max = Some(self.seen_max.map_or(time, |max| max.max(time)));
        self.seen_min = Some(self.seen_min.map_or(time, |min| min.min(time)));
    }

    /// Releases every pending record and event stamped at or before
    /// `cutoff` (none for `None`).
    fn release(&mut self, cutoff: Option<u64>) -> Batch {
        let Some(cutoff) = cutoff else {
            return Batch::default();
        };
        let stride = self.stride;
        let mut threads = Vec::new();
        for pending in &mut self.pending {
            let words = pending.release(cutoff, stride, &mut self.spare);
            if words.is_empty() {
                self.spare.push(words);
            } else {
                threads.push(ThreadRecords {
                    tid: pending.tid,
                    words,
                });
            }
        }
        threads.sort_unstable_by_key(|t| t.tid);
        self.events.sort_by_key(|e| e.time);
        let split = self.events.partition_point(|e| e.time <= cutoff);
        let events = self.events.drain(..split).collect();
        Batch { threads, events }
    }
}

/// Sorts records of `stride` words by time, keeping file order for equal
/// times.
fn sort_by_time(words: &mut Vec<u64>, stride: usize) {
    let mut order: Vec<(u64, usize)> = words
        .chunks_exact(stride)
        .enumerate()
        .map(|(i, rec)| (rec[0], i))
        .collect();
    // Stable and unstable agree on unique keys; the stable sort finds the
    // sorted runs that each CPU's records form.
    order.sort();
    let mut sorted = Vec::with_capacity(words.len());
    for (_, i) in order {
        sorted.extend_from_slice(&words[i * stride..(i + 1) * stride]);
    }
    *words = sorted;
}

/// How many leading records (sorted by time) are stamped at or before
/// `cutoff`.
fn released(words: &[u64], stride: usize, cutoff: u64) -> usize {
    let (mut lo, mut hi) = (0, words.len() / stride);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if words[mid * stride] <= cutoff {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Thread ids of idle tasks start here: every CPU's idle task has tid 0,
/// and what a system-wide recording sees in it (softirqs, interrupts on
/// an idle CPU) must be paired per CPU, so the analysis keys it as
/// `IDLE_TID_BASE + cpu` (pid_max is at most 2^22, far below).
pub const IDLE_TID_BASE: u32 = 0xffff_0000;

/// The thread a sample belongs to for pairing: its tid, or its CPU's idle
/// task.
pub(super) fn thread_key(tid: u32, cpu: u16) -> u32 {
    if tid == 0 {
        IDLE_TID_BASE + u32::from(cpu)
    } else {
        tid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differing_in_their_high_half_spread_over_buckets() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IntHasher>::default();
        // The trie's keys: (parent node) << 32 | probe, one probe.
        let buckets: HashSet<u64> = (0..4096u64)
            .map(|parent| build.hash_one(parent << 32 | 7) & 0xfff)
            .collect();
        assert!(buckets.len() > 2048, "{} of 4096 buckets", buckets.len());
        let tids: HashSet<u64> = (0..4096u32)
            .map(|tid| build.hash_one(tid) & 0xfff)
            .collect();
        assert!(tids.len() > 2048, "{} of 4096 buckets", tids.len());
    }

    fn words(times: &[u64]) -> Vec<u64> {
        times
            .iter()
            .enumerate()
            .flat_map(|(i, &t)| [t, i as u64])
            .collect()
    }

    #[test]
    fn sort_is_stable_by_time() {
        let mut w = words(&[30, 10, 20, 10]);
        sort_by_time(&mut w, 2);
        assert_eq!(w, [10, 1, 10, 3, 20, 2, 30, 0]);
    }

    #[test]
    fn released_counts_records_at_or_before_the_cutoff() {
        let w = words(&[10, 20, 20, 30]);
        assert_eq!(released(&w, 2, 5), 0);
        assert_eq!(released(&w, 2, 20), 3);
        assert_eq!(released(&w, 2, 30), 4);
        assert_eq!(released(&[], 2, 30), 0);
    }

    #[test]
    fn pending_releases_older_records_whole_and_sorts_late_ones_in() {
        let mut pending = Pending {
            tid: 1,
            older: Vec::new(),
            current: words(&[10, 30, 20]),
            last_time: 30,
            sorted: false,
        };
        let mut spare = Vec::new();
        assert!(pending.release(5, 2, &mut spare).is_empty());
        assert_eq!(pending.older, [10, 0, 20, 2, 30, 1]);
        pending.current = words(&[15, 40]);
        assert_eq!(
            pending.release(20, 2, &mut spare),
            [10, 0, 15, 0, 20, 2, 30, 1],
            "every older record leaves, with the late 15 sorted in"
        );
        assert_eq!(pending.older, [40, 1]);
        assert_eq!(pending.release(u64::MAX, 2, &mut spare), [40, 1]);
        assert!(pending.older.is_empty() && pending.current.is_empty());
    }

    #[test]
    fn rec_unpacks_the_meta_word() {
        let meta = 7 | 3 << 32 | 1 << 48;
        let words = [100, 50, 40, meta, 9, 8];
        let rec = Rec::new(&words, false);
        assert_eq!((rec.time(), rec.enabled(), rec.running()), (100, 50, 40));
        assert_eq!((rec.probe(), rec.cpu(), rec.is_entry()), (7, 3, false));
        assert_eq!(rec.values(), [9, 8]);
        assert!(Rec::new(&[0, 0, 0, 7, 1], false).is_entry());
        let keyed = Rec::new(&[0, 0, 0, 7, 1, 2, 9], true);
        assert_eq!((keyed.values(), keyed.key()), (&[1, 2][..], 9));
    }
}
