//! Pairing of one thread's records with a shadow stack of open frames, and
//! the thread's share of the statistics.

use super::compensation::Compensation;
use super::order::{EventKind, IntMap, Rec, TimedEvent, FIXED_WORDS};
use super::{Call, CallFlags, Reason, ViolationKind};

/// Parent of the outermost frames in the path trie.
const ROOT: u32 = u32::MAX;

/// What pairing needs to know about the whole trace.
#[derive(Debug)]
pub(super) struct PairConfig {
    /// Counters per record.
    pub ncounters: usize,
    /// Whether records carry a key (returns match entries of the same
    /// probe and key).
    pub keyed: bool,
    /// Leave flagged calls out.
    pub strict: bool,
    /// Index of the `context-switches` counter, if recorded.
    pub switches: Option<usize>,
    /// Per probe: whether it is reported.
    pub wanted: Vec<bool>,
    /// Whether to keep every complete call as a [`Call`].
    pub keep_calls: bool,
    /// The probes' costs to take out, when calibrating.
    pub compensation: Option<Compensation>,
    /// Whether the counters are the task's own (`--follow per-thread`): a
    /// call that migrated then reads one counter at both ends, exactly,
    /// and is not flagged.
    pub per_task: bool,
}

impl PairConfig {
    /// Words per pending record.
    pub(super) fn stride(&self) -> usize {
        FIXED_WORDS + self.ncounters + usize::from(self.keyed)
    }

    /// Why a complete call with `flags` is left out, if it is.
    fn discard_reason(&self, flags: CallFlags) -> Option<Reason> {
        if flags.contains(CallFlags::LOST_RECORDS) {
            return Some(Reason::LostRecords);
        }
        if self.strict {
            return flags.reasons().next();
        }
        None
    }

    fn wanted(&self, probe: u32) -> bool {
        self.wanted[probe as usize]
    }
}

/// A call that broke an invariant, before its names are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawViolation {
    pub kind: ViolationKind,
    pub probe: u32,
    pub start: u64,
    pub counter: usize,
    pub delta: i64,
    pub children: i64,
}

/// One thread's calls that broke an invariant.
#[derive(Debug, Default)]
pub(super) struct ThreadViolations {
    pub negative_delta: u64,
    pub below_children: u64,
    /// The earliest.
    pub first: Option<RawViolation>,
}

impl ThreadViolations {
    fn add(&mut self, v: RawViolation) {
        match v.kind {
            ViolationKind::NegativeDelta => self.negative_delta += 1,
            ViolationKind::BelowChildren => self.below_children += 1,
        }
        if self.first.is_none_or(|f| v.start < f.start) {
            self.first = Some(v);
        }
    }
}

/// One thread's calls of one function.
#[derive(Debug, Default)]
pub(super) struct FuncAcc {
    pub calls: u64,
    pub used: u64,
    /// Indexed by `Reason as usize`.
    pub discarded: [u64; Reason::ALL.len()],
    pub flagged: [u64; Reason::ALL.len()],
    /// Per counter.
    pub self_sum: Vec<i128>,
    /// Per counter, the inclusive deltas of this round's used calls, not
    /// yet merged into the function's stores.
    pub inclusive: Vec<Vec<i64>>,
    /// Per counter, their raw deltas, when calibrating (empty otherwise).
    pub raw: Vec<Vec<i64>>,
    /// Entry time of this round's first used call: what tells the run of
    /// this round's values (a task runs in one run only).
    pub first_start: u64,
    /// Whether the probe is in the thread's `touched` list.
    touched: bool,
}

/// Used calls per call path node of one thread.
#[derive(Debug, Default)]
pub(super) struct NodeAcc {
    pub calls: u64,
    pub inclusive: Vec<i128>,
    pub self_: Vec<i128>,
    /// Raw inclusive sums, when calibrating (empty otherwise).
    pub raw: Vec<i128>,
}

/// Slots of the direct-mapped cache in front of the trie's map.
const CACHE_SLOTS: usize = 256;

/// Call paths of one thread as a trie of probe ids.
#[derive(Debug)]
pub(super) struct Trie {
    /// Per node: parent node ([`ROOT`] for outermost) and probe.
    nodes: Vec<(u32, u32)>,
    children: IntMap<u64, u32>,
    /// Recent (parent, probe) keys and their nodes; most entries hit here.
    cache: Vec<(u64, u32)>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            children: IntMap::default(),
            cache: vec![(u64::MAX, 0); CACHE_SLOTS],
        }
    }
}

impl Trie {
    fn child(&mut self, parent: u32, probe: u32) -> u32 {
        let key = u64::from(parent) << 32 | u64::from(probe);
        let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
        if self.cache[slot].0 == key {
            return self.cache[slot].1;
        }
        let next = self.nodes.len() as u32;
        let node = *self.children.entry(key).or_insert(next);
        if node == next {
            self.nodes.push((parent, probe));
        }
        self.cache[slot] = (key, node);
        node
    }

    /// Probe ids from the outermost frame to `node`.
    pub(super) fn path(&self, mut node: u32) -> Vec<u32> {
        let mut path = Vec::new();
        while node != ROOT {
            let (parent, probe) = self.nodes[node as usize];
            path.push(probe);
            node = parent;
        }
        path.reverse();
        path
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    probe: u32,
    /// The key field's value at the entry (0 without a key column).
    key: u64,
    node: u32,
    start: u64,
    enabled: u64,
    running: u64,
    cpu: u16,
    /// Whether records were lost while it was open (set when it is popped;
    /// see [`Thread::lost_below`]).
    lost: bool,
    descendants: u32,
}

/// One thread: its open frames and its share of the statistics.
#[derive(Debug, Default)]
pub(super) struct Thread {
    pub tid: u32,
    frames: Vec<Frame>,
    /// Per probe, its open frames: a return of a probe without any is
    /// answered without searching the stack.
    open: Vec<u32>,
    /// Per (probe, key), its open frames, when records carry a key.
    open_keys: IntMap<(u32, u64), u32>,
    /// The frames below this height were open when records were lost: a
    /// lost event marks the whole stack at once, and a frame is marked
    /// when popped.
    lost_below: usize,
    /// Frames looked at by the searches of returns, to test that each is
    /// looked at once.
    #[cfg(test)]
    pub searched: u64,
    /// Entry values of the open frames, `ncounters` per frame.
    entry: Vec<u64>,
    /// Sums of the direct children's inclusive deltas, per open frame.
    children: Vec<i64>,
    /// When calibrating, the sums of the direct children's raw deltas, per
    /// open frame (`children` holds the raw sums otherwise).
    raw_children: Vec<i64>,
    /// Calls that broke an invariant of counting.
    pub violations: ThreadViolations,
    /// When calibrating, per open frame and counter: the descendant costs
    /// of the probed calls completed or unwound inside it, at any depth.
    nested_costs: Vec<i64>,
    last_cpu: Option<u16>,
    /// When calibrating, the raw deltas of the call being completed.
    raw: Vec<i64>,
    inclusive: Vec<i64>,
    self_: Vec<i64>,
    pub trie: Trie,
    /// Per probe, created on the first call.
    pub funcs: Vec<Option<Box<FuncAcc>>>,
    /// Probes with values to merge this round.
    pub touched: Vec<u32>,
    /// Per trie node.
    pub nodes: Vec<NodeAcc>,
    /// Complete calls of this round, when kept.
    pub calls: Vec<Call>,
}

impl Thread {
    pub(super) fn new(tid: u32, cfg: &PairConfig) -> Self {
        Self {
            tid,
            raw: vec![0; cfg.ncounters],
            inclusive: vec![0; cfg.ncounters],
            self_: vec![0; cfg.ncounters],
            funcs: (0..cfg.wanted.len()).map(|_| None).collect(),
            open: vec![0; cfg.wanted.len()],
            ..Self::default()
        }
    }

    /// Whether a frame is open.
    pub(super) fn is_open(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Pairs a round of this thread's records (in time order) with the
    /// round's events; an event applies after the records of its time.
    pub(super) fn process(&mut self, cfg: &PairConfig, words: &[u64], events: &[TimedEvent]) {
        let stride = cfg.stride();
        let mut rest = words;
        for event in events {
            let before = rest
                .chunks_exact(stride)
                .take_while(|rec| Rec::new(rec, cfg.keyed).time() <= event.time)
                .count();
            let (now, later) = rest.split_at(before * stride);
            self.records(cfg, now);
            self.apply(cfg, event.kind);
            rest = later;
        }
        self.records(cfg, rest);
    }

    fn records(&mut self, cfg: &PairConfig, words: &[u64]) {
        for rec in words.chunks_exact(cfg.stride()) {
            let rec = Rec::new(rec, cfg.keyed);
            if rec.is_entry() {
                self.enter(cfg, rec);
            } else {
                self.leave(cfg, rec);
            }
            self.last_cpu = Some(rec.cpu());
        }
    }

    fn apply(&mut self, cfg: &PairConfig, event: EventKind) {
        match event {
            EventKind::Lost { cpu } => {
                if self.last_cpu.map(u32::from) == Some(cpu) {
                    self.lost_below = self.frames.len();
                }
            }
            EventKind::Exit { tid } => {
                if tid == self.tid {
                    self.close(cfg);
                }
            }
            // The returns of the open calls may be in the damaged range, and
            // a return after it may belong to a call entered inside it.
            EventKind::Gap => self.abandon(cfg, Reason::LostRecords),
            EventKind::Run => {}
        }
    }

    /// Ends every open frame as an entry without return.
    pub(super) fn close(&mut self, cfg: &PairConfig) {
        self.abandon(cfg, Reason::EntryWithoutReturn);
    }

    /// Ends every open frame, counting it under `reason`.
    fn abandon(&mut self, cfg: &PairConfig, reason: Reason) {
        while let Some(frame) = self.frames.pop() {
            self.discard(cfg, frame.probe, reason);
        }
        self.open.iter_mut().for_each(|n| *n = 0);
        self.open_keys.clear();
        self.lost_below = 0;
        self.entry.clear();
        self.children.clear();
        self.raw_children.clear();
        self.nested_costs.clear();
    }

    fn enter(&mut self, cfg: &PairConfig, rec: Rec<'_>) {
        let parent = self.frames.last().map_or(ROOT, |f| f.node);
        let node = self.trie.child(parent, rec.probe());
        self.open[rec.probe() as usize] += 1;
        if cfg.keyed {
            *self.open_keys.entry((rec.probe(), rec.key())).or_insert(0) += 1;
        }
        self.frames.push(Frame {
            probe: rec.probe(),
            key: rec.key(),
            node,
            start: rec.time(),
            enabled: rec.enabled(),
            running: rec.running(),
            cpu: rec.cpu(),
            lost: false,
            descendants: 0,
        });
        self.entry.extend_from_slice(rec.values());
        self.children.resize(self.entry.len(), 0);
        if cfg.compensation.is_some() {
            self.nested_costs.resize(self.entry.len(), 0);
            self.raw_children.resize(self.entry.len(), 0);
        }
    }

    fn leave(&mut self, cfg: &PairConfig, rec: Rec<'_>) {
        let (probe, key) = (rec.probe(), rec.key());
        if !self.has_open(cfg, probe, key) {
            self.discard(cfg, probe, Reason::ReturnWithoutEntry);
            return;
        }
        // Every frame searched past is unwound: the search and the pops
        // cost one step per frame entered.
        let at = self
            .frames
            .iter()
            .rposition(|f| f.probe == probe && f.key == key)
            .expect("the open counts have a frame of the probe and key");
        #[cfg(test)]
        {
            self.searched += (self.frames.len() - at) as u64;
        }
        while self.frames.len() > at + 1 {
            let frame = self.pop(cfg);
            self.discard(cfg, frame.probe, Reason::Unwound);
        }
        self.complete(cfg, rec);
    }

    /// Whether a frame of `probe` with `key` is open.
    fn has_open(&self, cfg: &PairConfig, probe: u32, key: u64) -> bool {
        self.open[probe as usize] > 0
            && (!cfg.keyed || self.open_keys.get(&(probe, key)).is_some_and(|&n| n > 0))
    }

    /// Pops the top frame, counting it (and, when calibrating, its probes'
    /// cost) among its parent's descendants. Inlined into the pairing
    /// loop, with the calibrating work out of line (measured: 2 % fewer
    /// instructions without a profile).
    #[inline(always)]
    fn pop(&mut self, cfg: &PairConfig) -> Frame {
        let mut frame = self.frames.pop().expect("a frame is open");
        let height = self.frames.len();
        if height < self.lost_below {
            frame.lost = true;
            self.lost_below = height;
        }
        self.open[frame.probe as usize] -= 1;
        if cfg.keyed {
            if let Some(n) = self.open_keys.get_mut(&(frame.probe, frame.key)) {
                *n -= 1;
                if *n == 0 {
                    self.open_keys.remove(&(frame.probe, frame.key));
                }
            }
        }
        let base = height * cfg.ncounters;
        if let Some(parent) = self.frames.last_mut() {
            parent.descendants += 1 + frame.descendants;
            if let Some(comp) = &cfg.compensation {
                self.carry_costs(comp, frame.probe, base);
            }
        }
        self.entry.truncate(base);
        self.children.truncate(base);
        self.raw_children.truncate(base);
        self.nested_costs.truncate(base);
        frame
    }

    /// Adds the descendant cost of a call of `probe`, and the costs nested
    /// in it, to its parent frame; the call's frame started at `base`.
    #[inline(never)]
    fn carry_costs(&mut self, comp: &Compensation, probe: u32, base: usize) {
        let n = comp.ncounters();
        let (sums, popped) = self.nested_costs[base - n..].split_at_mut(n);
        for ((sum, &cost), &inner) in sums.iter_mut().zip(comp.descendant(probe)).zip(&*popped) {
            *sum = sum.wrapping_add(cost).wrapping_add(inner);
        }
    }

    /// Keeps the raw deltas of the top frame's call (its entry values at
    /// `base`) and takes the probes' cost out of its inclusive and self
    /// deltas: its own, and that of the probed calls nested in it.
    #[inline(never)]
    fn compensate(&mut self, comp: &Compensation, base: usize) {
        self.raw.copy_from_slice(&self.inclusive);
        let probe = self.frames[self.frames.len() - 1].probe;
        let nested = &self.nested_costs[base..base + self.raw.len()];
        for (j, (&own, &nested)) in comp.own(probe).iter().zip(nested).enumerate() {
            let cost = own.wrapping_add(nested);
            self.inclusive[j] = self.inclusive[j].wrapping_sub(cost);
            self.self_[j] = self.self_[j].wrapping_sub(cost);
        }
    }

    /// The raw deltas of the call just completed.
    fn raw<'a>(&'a self, cfg: &PairConfig) -> &'a [i64] {
        if cfg.compensation.is_some() {
            &self.raw
        } else {
            &self.inclusive
        }
    }

    /// Completes the top frame with its return record.
    fn complete(&mut self, cfg: &PairConfig, rec: Rec<'_>) {
        let n = cfg.ncounters;
        let base = (self.frames.len() - 1) * n;
        for (j, &value) in rec.values().iter().enumerate() {
            let inclusive = value.wrapping_sub(self.entry[base + j]) as i64;
            self.inclusive[j] = inclusive;
            self.self_[j] = inclusive.wrapping_sub(self.children[base + j]);
        }
        if let Some(comp) = &cfg.compensation {
            self.compensate(comp, base);
        }
        let broken = self.check(cfg, base);
        let frame = self.pop(cfg);
        if !self.frames.is_empty() {
            let parent = &mut self.children[base - n..base];
            for (sum, &inclusive) in parent.iter_mut().zip(&self.inclusive) {
                *sum = sum.wrapping_add(inclusive);
            }
            if cfg.compensation.is_some() {
                let parent = &mut self.raw_children[base - n..base];
                for (sum, &raw) in parent.iter_mut().zip(&self.raw) {
                    *sum = sum.wrapping_add(raw);
                }
            }
        }
        if let Some((kind, counter, delta, children)) = broken {
            let migrated = frame.cpu != rec.cpu() && !cfg.per_task;
            if !frame.lost && !migrated {
                self.violations.add(RawViolation {
                    kind,
                    probe: frame.probe,
                    start: frame.start,
                    counter,
                    delta,
                    children,
                });
            }
        }
        if !cfg.wanted(frame.probe) {
            return;
        }
        let flags = self.flags(cfg, &frame, rec);
        self.settle(cfg, &frame, flags);
        if cfg.keep_calls {
            self.calls.push(Call {
                probe: frame.probe,
                tid: self.tid,
                depth: self.frames.len() as u32,
                run: 0,
                start: frame.start,
                end: rec.time(),
                raw: self.raw(cfg).to_vec(),
                inclusive: self.inclusive.clone(),
                self_: self.self_.clone(),
                descendants: frame.descendants,
                flags,
                used: cfg.discard_reason(flags).is_none(),
                parent: self.frames.last().map(|f| (f.probe, f.start)),
            });
        }
    }

    /// The first invariant the top frame's call breaks (its entry values
    /// at `base`): a negative raw delta, or, with the task's own counters,
    /// a raw delta below its children's. As (kind, counter, delta,
    /// children's sum).
    fn check(&self, cfg: &PairConfig, base: usize) -> Option<(ViolationKind, usize, i64, i64)> {
        let children = if cfg.compensation.is_some() {
            &self.raw_children[base..base + cfg.ncounters]
        } else {
            &self.children[base..base + cfg.ncounters]
        };
        let raw = self.raw(cfg);
        raw.iter()
            .zip(children)
            .enumerate()
            .find_map(|(j, (&delta, &children))| {
                if delta < 0 {
                    Some((ViolationKind::NegativeDelta, j, delta, children))
                } else if cfg.per_task && delta < children {
                    Some((ViolationKind::BelowChildren, j, delta, children))
                } else {
                    None
                }
            })
    }

    fn flags(&self, cfg: &PairConfig, frame: &Frame, rec: Rec<'_>) -> CallFlags {
        let mut flags = CallFlags::NONE;
        if frame.lost {
            flags |= CallFlags::LOST_RECORDS;
        }
        if frame.cpu != rec.cpu() && !cfg.per_task {
            flags |= CallFlags::MIGRATED;
        }
        let enabled = rec.enabled().wrapping_sub(frame.enabled);
        let running = rec.running().wrapping_sub(frame.running);
        if running < enabled {
            flags |= CallFlags::MULTIPLEXED;
        }
        if cfg.switches.is_some_and(|j| self.raw(cfg)[j] > 0) {
            flags |= CallFlags::CONTEXT_SWITCHED;
        }
        flags
    }

    fn func(&mut self, probe: u32) -> &mut FuncAcc {
        self.funcs[probe as usize].get_or_insert_with(Box::default)
    }

    /// Counts a call that could not be used.
    fn discard(&mut self, cfg: &PairConfig, probe: u32, reason: Reason) {
        if cfg.wanted(probe) {
            let func = self.func(probe);
            func.calls += 1;
            func.discarded[reason as usize] += 1;
        }
    }

    /// Counts a complete call of a reported function, and adds it to the
    /// statistics unless its flags leave it out.
    fn settle(&mut self, cfg: &PairConfig, frame: &Frame, flags: CallFlags) {
        if let Some(reason) = cfg.discard_reason(flags) {
            self.discard(cfg, frame.probe, reason);
            return;
        }
        let n = cfg.ncounters;
        let calibrating = cfg.compensation.is_some();
        let func = self.funcs[frame.probe as usize].get_or_insert_with(Box::default);
        if func.self_sum.len() != n {
            func.inclusive = vec![Vec::new(); n];
            func.self_sum = vec![0; n];
            if calibrating {
                func.raw = vec![Vec::new(); n];
            }
        }
        if !func.touched {
            func.touched = true;
            func.first_start = frame.start;
            self.touched.push(frame.probe);
        }
        func.calls += 1;
        func.used += 1;
        if !flags.is_empty() {
            for reason in flags.reasons() {
                func.flagged[reason as usize] += 1;
            }
        }
        for j in 0..n {
            func.inclusive[j].push(self.inclusive[j]);
            func.self_sum[j] += i128::from(self.self_[j]);
        }
        if calibrating {
            for (values, &raw) in func.raw.iter_mut().zip(&self.raw) {
                values.push(raw);
            }
        }
        let node = frame.node as usize;
        if self.nodes.len() <= node {
            self.nodes.resize_with(node + 1, NodeAcc::default);
        }
        let acc = &mut self.nodes[node];
        if acc.inclusive.len() != n {
            acc.inclusive = vec![0; n];
            acc.self_ = vec![0; n];
            if calibrating {
                acc.raw = vec![0; n];
            }
        }
        acc.calls += 1;
        for j in 0..n {
            acc.inclusive[j] += i128::from(self.inclusive[j]);
            acc.self_[j] += i128::from(self.self_[j]);
        }
        if calibrating {
            for (sum, &raw) in acc.raw.iter_mut().zip(&self.raw) {
                *sum += i128::from(raw);
            }
        }
    }

    /// Forgets this round's values once merged.
    pub(super) fn end_round(&mut self) {
        for probe in self.touched.drain(..) {
            if let Some(func) = &mut self.funcs[probe as usize] {
                func.inclusive.iter_mut().for_each(Vec::clear);
                func.raw.iter_mut().for_each(Vec::clear);
                func.touched = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_discriminants_follow_all() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
    }

    #[test]
    fn trie_interns_paths() {
        let mut trie = Trie::default();
        let a = trie.child(ROOT, 4);
        let ab = trie.child(a, 7);
        assert_eq!(trie.child(ROOT, 4), a);
        assert_eq!(trie.child(a, 7), ab);
        let b = trie.child(ROOT, 7);
        assert_eq!((a, ab, b), (0, 1, 2));
        assert_eq!(trie.path(ab), [4, 7]);
        assert_eq!(trie.path(b), [7]);
    }

    #[test]
    fn strict_discards_under_the_first_flag() {
        let mut cfg = PairConfig {
            keyed: false,
            ncounters: 0,
            strict: false,
            switches: None,
            wanted: vec![true],
            keep_calls: false,
            compensation: None,
            per_task: false,
        };
        let flags = CallFlags::MULTIPLEXED | CallFlags::CONTEXT_SWITCHED;
        assert_eq!(cfg.discard_reason(flags), None);
        assert_eq!(
            cfg.discard_reason(flags | CallFlags::LOST_RECORDS),
            Some(Reason::LostRecords)
        );
        cfg.strict = true;
        assert_eq!(cfg.discard_reason(flags), Some(Reason::Multiplexed));
        assert_eq!(cfg.discard_reason(CallFlags::NONE), None);
    }
}
