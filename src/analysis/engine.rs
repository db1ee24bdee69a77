//! Drives an analysis: reads a round while the previous one is paired on
//! the pool, merges the values, and builds the [`Analysis`].

use std::collections::BTreeMap;
use std::io::Read;

use rayon::prelude::*;

use super::compensation::Compensation;
use super::order::{Batch, EventKind, Orderer};
use super::pair::{PairConfig, RawViolation, Thread};
use super::stats::{Summary, ValueStore};
use super::{
    select_functions, Analysis, AnalysisError, AnalysisOptions, Call, CallPath, CounterStats,
    FunctionStats, Reason, RunSpread, TraceSummary, Violation, Violations,
};
use crate::events::CounterSpec;
use crate::trace::{Target, TraceEnd, TraceHeader, TraceReader};

/// `perf_event_attr` type and config of the `context-switches` counter.
const CONTEXT_SWITCHES: (u32, u64) = (1, 3);

/// Runs an analysis; `on_call` receives every complete call of a reported
/// function.
pub(super) fn run<R: Read>(
    reader: TraceReader<R>,
    opts: &AnalysisOptions,
    mut on_call: Option<&mut dyn FnMut(&Call)>,
) -> Result<Analysis, AnalysisError> {
    let header = reader.header().clone();
    let cfg = PairConfig {
        ncounters: header.counters.len(),
        keyed: header.key_column,
        // Per-CPU counters (system-wide) cannot follow a call to another
        // CPU or through a context switch: flagged calls are left out
        // unless asked for.
        strict: opts.strict
            || (matches!(header.target, Target::SystemWide { .. }) && !opts.keep_flagged),
        switches: header.counters.iter().position(is_context_switches),
        wanted: select_functions(&opts.functions, &header)?,
        keep_calls: on_call.is_some(),
        compensation: Compensation::new(&header, opts.baseline)?,
        per_task: header.follow.as_deref() == Some("per-thread"),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.unwrap_or(0))
        .build()
        .map_err(AnalysisError::ThreadPool)?;
    let mut reader = reader.salvage(opts.salvage);
    let mut orderer = Orderer::new(cfg.ncounters, cfg.keyed, opts.tid);
    let mut pairing = Pairing::new(cfg, opts.exact_limit);
    let mut batch = orderer.read_round(&mut reader)?;
    while !orderer.ended {
        let next = pool.in_place_scope(|scope| {
            scope.spawn(|_| pairing.process(&batch));
            orderer.read_round(&mut reader)
        });
        pairing.deliver(&mut on_call);
        orderer.recycle(std::mem::replace(&mut batch, next?));
    }
    pool.install(|| pairing.process(&batch));
    pairing.deliver(&mut on_call);
    let end = reader
        .end()
        .cloned()
        .expect("the orderer saw the trace end");
    if let Some(tid) = opts.tid.filter(|tid| !orderer.tids.contains(tid)) {
        let mut threads: Vec<u32> = orderer.tids.iter().copied().collect();
        threads.sort_unstable();
        return Err(AnalysisError::NoSuchThread { tid, threads });
    }
    let mut trace = summarize(&header, &orderer, &end);
    trace.damaged = reader.damage().to_vec();
    Ok(pool.install(|| pairing.finish(&header, trace, opts.tree_per_thread)))
}

/// The run a call entered at `start` belongs to: the last one started at
/// or before it (0 before the first, or without runs).
fn run_of(starts: &[u64], start: u64) -> u32 {
    starts.partition_point(|&t| t <= start).saturating_sub(1) as u32
}

fn is_context_switches(spec: &CounterSpec) -> bool {
    (spec.type_, spec.config) == CONTEXT_SWITCHES
}

fn summarize(header: &TraceHeader, orderer: &Orderer, end: &TraceEnd) -> TraceSummary {
    let (duration_ns, lost, complete, bytes_lost) = match end {
        TraceEnd::Complete(footer) => (footer.duration_ns, footer.lost.max(orderer.lost), true, 0),
        TraceEnd::Truncated { bytes_lost, .. } => {
            (orderer.span_ns(), orderer.lost, false, *bytes_lost)
        }
    };
    TraceSummary {
        command: match &header.target {
            Target::Command { argv } => argv.join(" "),
            Target::Attach { pid } => format!("pid {pid}"),
            Target::SystemWide { argv } if argv.is_empty() => "system-wide".to_owned(),
            Target::SystemWide { argv } => format!("system-wide: {}", argv.join(" ")),
        },
        counters: header.counters.clone(),
        duration_ns,
        records: orderer.records,
        lost,
        threads: orderer.tids.len() as u64,
        runs: orderer.runs.max(1),
        run_time: (orderer.runs > 1)
            .then(|| {
                RunSpread::of(
                    orderer
                        .run_times
                        .iter()
                        .filter_map(|&(_, start, end)| Some((end? - start) as f64))
                        .collect(),
                )
            })
            .flatten(),
        complete,
        bytes_lost,
        damaged: Vec::new(),
        has_profile: header.calibration.is_some(),
        system_wide: matches!(header.target, Target::SystemWide { .. }),
    }
}

/// Everything on the pairing side: threads, value stores, kept calls.
struct Pairing {
    cfg: PairConfig,
    exact_limit: usize,
    threads: BTreeMap<u32, Thread>,
    /// Per probe, per counter.
    stores: Vec<Vec<CounterStore>>,
    calls: Vec<Call>,
    /// The start times of the runs released so far, in order.
    run_starts: Vec<u64>,
}

/// The values of one function and counter.
#[derive(Debug, Default)]
struct CounterStore {
    /// The inclusive deltas (calibrated when calibrating).
    values: ValueStore,
    /// The raw inclusive deltas, when calibrating.
    raw: Option<ValueStore>,
    /// The inclusive deltas of each run, in a trace with runs.
    runs: Vec<ValueStore>,
}

impl CounterStore {
    fn new(calibrating: bool) -> Self {
        Self {
            values: ValueStore::default(),
            raw: calibrating.then(ValueStore::default),
            runs: Vec::new(),
        }
    }

    /// The median of each run that has values.
    fn run_medians(&mut self) -> Option<RunSpread> {
        if self.runs.is_empty() {
            return None;
        }
        let medians = self
            .runs
            .iter_mut()
            .map(|run| run.summary(false))
            .filter(|s| s.count > 0)
            .map(|s| s.percentiles[0])
            .collect();
        RunSpread::of(medians)
    }

    /// The summaries of the values and of the raw values; with the median's
    /// confidence interval when calibrating, for the noise test.
    fn summaries(&mut self) -> (Summary, Option<Summary>) {
        let calibrating = self.raw.is_some();
        let raw = self.raw.as_mut().map(|raw| raw.summary(false));
        (self.values.summary(calibrating), raw)
    }
}

impl Pairing {
    fn new(cfg: PairConfig, exact_limit: usize) -> Self {
        let calibrating = cfg.compensation.is_some();
        let stores = (0..cfg.wanted.len())
            .map(|_| {
                (0..cfg.ncounters)
                    .map(|_| CounterStore::new(calibrating))
                    .collect()
            })
            .collect();
        Self {
            cfg,
            exact_limit,
            threads: BTreeMap::new(),
            stores,
            calls: Vec::new(),
            run_starts: Vec::new(),
        }
    }

    /// Pairs one round, one task per thread, then merges its values.
    fn process(&mut self, batch: &Batch) {
        // A run's start is released no later than its first record: its
        // time is before all of them.
        self.run_starts.extend(
            batch
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Run))
                .map(|e| e.time),
        );
        for records in &batch.threads {
            self.threads
                .entry(records.tid)
                .or_insert_with(|| Thread::new(records.tid, &self.cfg));
        }
        let with_events = !batch.events.is_empty();
        let mut released = batch.threads.iter().peekable();
        let mut jobs: Vec<(&mut Thread, &[u64])> = Vec::new();
        for (tid, thread) in &mut self.threads {
            let words = released
                .next_if(|r| r.tid == *tid)
                .map_or(&[][..], |r| &r.words[..]);
            if !words.is_empty() || (with_events && thread.is_open()) {
                jobs.push((thread, words));
            }
        }
        let cfg = &self.cfg;
        jobs.par_iter_mut()
            .for_each(|(thread, words)| thread.process(cfg, words, &batch.events));
        merge_values(&mut self.stores, &jobs, self.exact_limit, &self.run_starts);
        jobs.par_iter_mut()
            .for_each(|(thread, _)| thread.end_round());
        if cfg.keep_calls {
            let starts = &self.run_starts;
            for (thread, _) in &mut jobs {
                for call in &mut thread.calls {
                    call.run = run_of(starts, call.start);
                }
                self.calls.append(&mut thread.calls);
            }
        }
    }

    /// Hands the kept calls of the last round to `on_call`.
    fn deliver(&mut self, on_call: &mut Option<&mut dyn FnMut(&Call)>) {
        if let Some(on_call) = on_call {
            self.calls.drain(..).for_each(|call| on_call(&call));
        }
    }

    /// Ends the open frames and builds the analysis.
    fn finish(mut self, header: &TraceHeader, trace: TraceSummary, per_thread: bool) -> Analysis {
        for thread in self.threads.values_mut() {
            thread.close(&self.cfg);
        }
        let totals = self.totals();
        let flat: Vec<(Summary, Option<Summary>, Option<RunSpread>)> = self
            .stores
            .par_iter_mut()
            .flat_map(|stores| stores.par_iter_mut())
            .map(|store| {
                let (values, raw) = store.summaries();
                (values, raw, store.run_medians())
            })
            .collect();
        let n = self.cfg.ncounters;
        let summaries = (0..self.stores.len()).map(|p| &flat[p * n..(p + 1) * n]);
        let mut discarded = BTreeMap::new();
        let mut functions = Vec::new();
        for ((probe, total), summaries) in header.probes.iter().zip(totals).zip(summaries) {
            if total.calls == 0 {
                continue;
            }
            for (reason, count) in reasons(&total.discarded) {
                *discarded.entry(reason).or_insert(0) += count;
            }
            functions.push(FunctionStats {
                source: None,
                callers: Vec::new(),
                probe: probe.id,
                name: probe.function.clone(),
                binary: probe.binary.clone(),
                calls: total.calls,
                used: total.used,
                discarded: reasons(&total.discarded).collect(),
                flagged: reasons(&total.flagged).collect(),
                counters: self.counter_stats(
                    probe.id,
                    &header.counters,
                    summaries,
                    &total,
                    trace.runs,
                ),
            });
        }
        Analysis {
            trace,
            functions,
            tree: self.tree(per_thread),
            discarded,
            strict: self.cfg.strict,
            calibration: self.cfg.compensation.as_ref().map(|c| c.info.clone()),
            violations: self.violations(header),
        }
    }

    /// The calls of every thread that broke an invariant, with the
    /// earliest as the example.
    fn violations(&self, header: &TraceHeader) -> Violations {
        let mut all = Violations::default();
        let mut first: Option<(u32, RawViolation)> = None;
        for (&tid, thread) in &self.threads {
            let v = &thread.violations;
            all.negative_delta += v.negative_delta;
            all.below_children += v.below_children;
            if let Some(f) = v.first {
                if first.is_none_or(|(_, e)| f.start < e.start) {
                    first = Some((tid, f));
                }
            }
        }
        all.first = first.map(|(tid, f)| Violation {
            kind: f.kind,
            function: header
                .probes
                .get(f.probe as usize)
                .map_or_else(|| format!("probe {}", f.probe), |p| p.function.clone()),
            tid,
            start: f.start,
            counter: header.counters[f.counter].name.clone(),
            delta: f.delta,
            children: f.children,
        });
        all
    }

    /// The statistics of each counter of `probe`'s used calls.
    fn counter_stats(
        &self,
        probe: u32,
        specs: &[CounterSpec],
        summaries: &[(Summary, Option<Summary>, Option<RunSpread>)],
        total: &Total,
        trace_runs: u32,
    ) -> Vec<CounterStats> {
        let noise = |j: usize, s: &Summary| {
            let comp = self.cfg.compensation.as_ref().filter(|_| total.used > 0)?;
            comp.within_noise(probe, j, s.percentiles[0], s.median_ci)
        };
        specs
            .iter()
            .zip(summaries)
            .zip(&total.self_sum)
            .enumerate()
            .map(|(j, ((spec, (s, raw, runs)), &self_sum))| {
                let raw = raw.as_ref().unwrap_or(s);
                let self_sum = self_sum as f64;
                CounterStats {
                    name: spec.name.clone(),
                    unit: spec.unit,
                    sum: s.sum as f64,
                    mean: s.mean,
                    stddev: s.stddev,
                    min: s.min as f64,
                    p50: s.percentiles[0],
                    p90: s.percentiles[1],
                    p99: s.percentiles[2],
                    max: s.max as f64,
                    self_sum,
                    self_mean: if total.used == 0 {
                        0.0
                    } else {
                        self_sum / total.used as f64
                    },
                    exact: s.exact,
                    raw_sum: raw.sum as f64,
                    raw_mean: raw.mean,
                    raw_p50: raw.percentiles[0],
                    within_noise: noise(j, s),
                    runs: runs.clone().filter(|_| trace_runs > 1),
                }
            })
            .collect()
    }

    /// Per probe, the counts and self sums of every thread.
    fn totals(&self) -> Vec<Total> {
        let n = self.cfg.ncounters;
        let mut totals: Vec<Total> = (0..self.cfg.wanted.len())
            .map(|_| Total {
                self_sum: vec![0; n],
                ..Total::default()
            })
            .collect();
        for thread in self.threads.values() {
            for (total, func) in totals.iter_mut().zip(&thread.funcs) {
                let Some(func) = func else { continue };
                total.calls += func.calls;
                total.used += func.used;
                add(&mut total.discarded, &func.discarded);
                add(&mut total.flagged, &func.flagged);
                add(&mut total.self_sum, &func.self_sum);
            }
        }
        totals
    }

    /// Used calls by call path, sorted by thread (with `per_thread`) and
    /// path; across threads otherwise.
    fn tree(&self, per_thread: bool) -> Vec<CallPath> {
        let n = self.cfg.ncounters;
        let calibrating = self.cfg.compensation.is_some();
        let mut paths: BTreeMap<(Option<u32>, Vec<u32>), PathSums> = BTreeMap::new();
        for (&tid, thread) in &self.threads {
            let key_tid = per_thread.then_some(tid);
            for (node, acc) in thread.nodes.iter().enumerate() {
                if acc.calls == 0 {
                    continue;
                }
                let sums = paths
                    .entry((key_tid, thread.trie.path(node as u32)))
                    .or_insert_with(|| PathSums {
                        calls: 0,
                        inclusive: vec![0; n],
                        self_: vec![0; n],
                        raw: vec![0; n],
                    });
                sums.calls += acc.calls;
                add(&mut sums.inclusive, &acc.inclusive);
                add(&mut sums.self_, &acc.self_);
                add(
                    &mut sums.raw,
                    if calibrating {
                        &acc.raw
                    } else {
                        &acc.inclusive
                    },
                );
            }
        }
        let floats = |sums: &[i128]| sums.iter().map(|&v| v as f64).collect();
        paths
            .into_iter()
            .map(|((tid, path), sums)| CallPath {
                tid,
                path,
                calls: sums.calls,
                inclusive: floats(&sums.inclusive),
                self_: floats(&sums.self_),
                raw_inclusive: floats(&sums.raw),
            })
            .collect()
    }
}

/// The used calls along one call path (in one thread, or across threads).
struct PathSums {
    calls: u64,
    inclusive: Vec<i128>,
    self_: Vec<i128>,
    raw: Vec<i128>,
}

/// Appends the round's values of every job to the stores, one task per
/// probe, in thread-id order so the result does not depend on the pool.
fn merge_values(
    stores: &mut [Vec<CounterStore>],
    jobs: &[(&mut Thread, &[u64])],
    limit: usize,
    run_starts: &[u64],
) {
    let mut work: Vec<(u32, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, (thread, _))| thread.touched.iter().map(move |&probe| (probe, i)))
        .collect();
    work.sort_unstable();
    let mut groups = work.chunk_by(|a, b| a.0 == b.0).peekable();
    let mut tasks = Vec::new();
    for (probe, store) in stores.iter_mut().enumerate() {
        if let Some(group) = groups.next_if(|g| g[0].0 as usize == probe) {
            tasks.push((store, group));
        }
    }
    tasks.into_par_iter().for_each(|(store, group)| {
        for &(probe, job) in group {
            let func = jobs[job].0.funcs[probe as usize]
                .as_ref()
                .expect("a touched probe has calls");
            let run = (!run_starts.is_empty()).then(|| run_of(run_starts, func.first_start));
            for (j, store) in store.iter_mut().enumerate() {
                store.values.extend(&func.inclusive[j], limit);
                if let Some(run) = run.map(|r| r as usize) {
                    if store.runs.len() <= run {
                        store.runs.resize_with(run + 1, ValueStore::default);
                    }
                    store.runs[run].extend(&func.inclusive[j], limit);
                }
                if let Some(raw) = &mut store.raw {
                    raw.extend(&func.raw[j], limit);
                }
            }
        }
    });
}

/// One function's counts across threads.
#[derive(Debug, Default)]
struct Total {
    calls: u64,
    used: u64,
    discarded: [u64; Reason::ALL.len()],
    flagged: [u64; Reason::ALL.len()],
    self_sum: Vec<i128>,
}

fn add<T: Copy + std::ops::AddAssign>(sums: &mut [T], values: &[T]) {
    for (sum, &value) in sums.iter_mut().zip(values) {
        *sum += value;
    }
}

/// The reasons with a count.
fn reasons(counts: &[u64; Reason::ALL.len()]) -> impl Iterator<Item = (Reason, u64)> + '_ {
    Reason::ALL
        .into_iter()
        .zip(counts.iter().copied())
        .filter(|&(_, count)| count > 0)
}
