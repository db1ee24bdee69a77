//! Comparing two recordings: did a change make a function cost more or
//! less, and can that be told apart from run-to-run noise?
//!
//! # Method
//!
//! Each trace is analyzed as `perfunc report` would (same pairing, flags
//! and calibration), and the used calls' inclusive values (calibrated when
//! the trace holds a profile) are kept per function and counter: all of
//! them up to [`DiffOptions::sample_limit`] calls, a uniform random sample
//! of that many beyond it (reservoir sampling, seeded, so the result is
//! reproducible). Functions are matched by name and counters by name.
//!
//! Calls of one run are not independent samples of what changes between
//! runs: the CPU a run lands on, the clock frequency and what else runs
//! beside it move all of its calls together. So the unit of the test is
//! the run wherever the traces allow it. Per function and counter, the
//! first rule that applies decides ([`Test`]):
//!
//! 1. **Within probe noise**: both calibrated medians of a counter that is
//!    not exact per call (see 2) cannot be told apart from 0 ([`crate::analysis::CounterStats::within_noise`]): no test,
//!    [`Verdict::Inconclusive`], and only the absolute difference of the
//!    medians (a percentage of a near-zero median means nothing).
//! 2. **Calls** ([`Test::Calls`]): a counter that is exact per call
//!    ([`exact_per_call`]: page faults, and user-space instructions or
//!    branches), however many runs: the two-sided Mann–Whitney U test of
//!    the calls ([`stats::mann_whitney`]) and the change of the median with
//!    a bootstrap interval ([`stats::median_change`]). Such calls do not
//!    share a run's state, and the run medians of a count tie, which would
//!    cost the run test its power (16 against 20 pages in 4 runs a side
//!    could not give the run test a p below 0.029, whatever the change).
//! 3. **Runs** ([`Test::Runs`]): both traces hold at least
//!    [`stats::min_calls`]`(alpha)` runs of the function (4 at 0.05;
//!    `record --repeat`): the Mann–Whitney U test of the per-run medians
//!    ([`stats::mann_whitney`]), and as the change their Hodges–Lehmann
//!    shift with the interval that inverts the same test
//!    ([`stats::hodges_lehmann`]), relative to the median of the base
//!    runs' medians. A change stands out only when it stands above the
//!    run-to-run spread, and a run slowed by what else ran on the machine
//!    moves neither the test nor the change much.
//! 4. **Time-like counter, too few runs on a side**: the run-to-run noise is
//!    unknown, so [`Verdict::Inconclusive`] with that reason, unless the
//!    median changed by a factor of [`ONE_RUN_FACTOR`] or more, more than
//!    runs of the same build here ever differ (docs/diff.md), and so did
//!    the raw median, the same way (a calibrated median is what is left
//!    after the probes' cost, and its ratio can explode when the raw values
//!    barely move); then the calls are tested as in 2
//!    ([`Test::CallsBeyondFloor`]), and the verdict is shown but not gated
//!    on ([`Diff::regressions`]).
//!
//! The p-values of every test of the diff are adjusted by
//! Benjamini–Hochberg ([`stats::benjamini_hochberg`]) into q-values, so
//! that among the differences called significant the expected share of
//! false ones is at most `alpha`. A function with fewer calls on a side
//! than [`stats::min_calls`]`(alpha)` is not tested by calls.
//!
//! **Verdict**: [`Verdict::Regressed`] / [`Verdict::Improved`] when
//! `q < alpha`, the change is at least the threshold up / down (with an
//! undefined relative change: by the sign of the difference) and the
//! intervals, at confidence `1 − alpha`, exclude 0 on the same side (the
//! relative one where the base allows a ratio, and the one of the absolute
//! difference; at least one must exist); [`Verdict::Unchanged`] otherwise.
//! So a significant change never has an interval that straddles 0.

mod collect;
mod output;
pub mod stats;

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

pub use collect::Run;
pub use output::write_diff;

use crate::analysis::{AnalysisError, AnalysisOptions, CalibrationInfo, CounterStats, EXACT_LIMIT};
use crate::events::{CounterSpec, Unit, PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE};
use crate::trace::TraceReader;

/// With one run on a side, a time-like counter gets a verdict only when its
/// median changed by more than this factor either way (×3 or ÷3): beyond
/// what runs of the same build differ by on the machines perfunc is
/// developed on (up to ×1.5 for the median task-clock, docs/diff.md).
pub const ONE_RUN_FACTOR: f64 = 3.0;

/// How to compare.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Significance level of the verdicts, after the multiple-testing
    /// correction.
    pub alpha: f64,
    /// Smallest relative change of the median that counts as a regression
    /// or an improvement (0.01 for 1 %).
    pub threshold: f64,
    /// Compare only this counter.
    pub counter: Option<String>,
    /// Calls per function kept for the tests; a uniform sample beyond it.
    pub sample_limit: usize,
    /// How each trace is analyzed.
    pub analysis: AnalysisOptions,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            threshold: 0.01,
            counter: None,
            sample_limit: EXACT_LIMIT,
            analysis: AnalysisOptions::default(),
        }
    }
}

/// The verdict on one function and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The counter went up, significantly and by at least the threshold.
    Regressed,
    /// The counter went down, significantly and by at least the threshold.
    Improved,
    /// No significant change of at least the threshold.
    Unchanged,
    /// Not tested, or not testable: [`CounterDiff::reason`] says why.
    Inconclusive,
}

/// The test behind a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    /// Mann–Whitney U on the per-run medians, the change their
    /// Hodges–Lehmann shift: both sides hold enough runs
    /// ([`Diff::min_calls`]).
    Runs,
    /// Mann–Whitney U on the calls, for a counter exact per call.
    Calls,
    /// Mann–Whitney U on the calls of a time-like counter with one run on
    /// a side, whose median changed by more than [`ONE_RUN_FACTOR`].
    CallsBeyondFloor,
}

impl Test {
    /// The name used in JSON, CSV and the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Test::Runs => "runs",
            Test::Calls => "calls",
            Test::CallsBeyondFloor => "calls-beyond-floor",
        }
    }

    /// Whether `--fail-on-regression` gates on this test's verdicts: the
    /// run-level test, and the call-level one of exact counters.
    pub fn gates(self) -> bool {
        matches!(self, Test::Runs | Test::Calls)
    }
}

/// How many runs of a function each side holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Runs of the base trace that called the function.
    pub base: usize,
    /// Runs of the new trace that called the function.
    pub new: usize,
}

impl Verdict {
    /// The name used in JSON, CSV and the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Which run a function was seen in, when only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Only the base run.
    Base,
    /// Only the new run.
    New,
}

/// One counter of one function in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterDiff {
    /// The counter's name.
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Runs that called the function on each side (1 for a trace
    /// recorded without `--repeat`).
    pub runs: RunCounts,
    /// Median per call in the base run.
    pub base_median: f64,
    /// Median per call in the new run.
    pub new_median: f64,
    /// Mean per call in the base run.
    pub base_mean: f64,
    /// Mean per call in the new run.
    pub new_mean: f64,
    /// With [`Test::Runs`]: the median of the base runs' medians per call.
    pub base_run_median: Option<f64>,
    /// With [`Test::Runs`]: the standard deviation of the base runs'
    /// medians.
    pub base_run_stddev: Option<f64>,
    /// With [`Test::Runs`]: the median of the new runs' medians per call.
    pub new_run_median: Option<f64>,
    /// With [`Test::Runs`]: the standard deviation of the new runs'
    /// medians.
    pub new_run_stddev: Option<f64>,
    /// The absolute change, new − base: for [`Test::Runs`] the
    /// Hodges–Lehmann shift of the run medians (the median of their
    /// differences), otherwise the difference of the medians per call.
    pub difference: f64,
    /// Lower bound of the difference's interval (confidence `1 − alpha`):
    /// the Hodges–Lehmann interval for [`Test::Runs`], a bootstrap
    /// otherwise; `None` when not tested or the data cannot bound it.
    pub difference_low: Option<f64>,
    /// Upper bound of the difference's interval.
    pub difference_high: Option<f64>,
    /// The same change relative to the base (0.25 for +25 %); `None` when
    /// the base is 0 and the new value is not, or the base is within the
    /// probes' noise.
    pub change: Option<f64>,
    /// Lower bound of the change's interval (confidence `1 − alpha`).
    pub ci_low: Option<f64>,
    /// Upper bound of the change's interval.
    pub ci_high: Option<f64>,
    /// The test used (`None` when not tested).
    pub test: Option<Test>,
    /// The test's p-value (`None` when not tested).
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q-value (`None` when not tested).
    pub q_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is inconclusive (`None` otherwise).
    pub reason: Option<String>,
}

/// One function in both runs (or in one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDiff {
    /// Demangled name.
    pub name: String,
    /// Used calls in the base run.
    pub base_calls: u64,
    /// Used calls in the new run.
    pub new_calls: u64,
    /// Set when the function was called in one run only (no counters are
    /// compared then).
    pub only_in: Option<Side>,
    /// One entry per counter compared, in the base trace's order.
    pub counters: Vec<CounterDiff>,
}

/// What a diff says about each run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The trace file.
    pub trace: String,
    /// The recorded command.
    pub command: String,
    /// The trace's counters.
    pub counters: Vec<String>,
    /// Functions with used calls.
    pub functions: usize,
    /// Records lost by the kernel.
    pub lost: u64,
    /// How the values were calibrated (`None`: raw values).
    pub calibration: Option<CalibrationInfo>,
    /// Runs of the command in the trace (`record --repeat`).
    pub runs: u32,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// The base run.
    pub base: RunSummary,
    /// The new run.
    pub new: RunSummary,
    /// The significance level.
    pub alpha: f64,
    /// The change threshold (a fraction).
    pub threshold: f64,
    /// The confidence level of the intervals, `1 − alpha`.
    pub confidence: f64,
    /// Calls a side below which the calls are not tested, and runs per
    /// side below which the runs are not: the fewest with which two samples
    /// of equal size can reach `alpha` at all ([`stats::min_calls`]).
    pub min_calls: u64,
    /// Counters of one run only, not compared.
    pub unmatched_counters: Vec<String>,
    /// Every function of either run: functions in both runs first, by
    /// name, then the others by name.
    pub functions: Vec<FunctionDiff>,
}

impl Diff {
    /// Significant regressions whose change is at least `fraction`
    /// (`--fail-on-regression`), as (function, counter, change): only
    /// verdicts of a test that gates ([`Test::gates`]).
    pub fn regressions(&self, fraction: f64) -> Vec<(&str, &str, Option<f64>)> {
        self.functions
            .iter()
            .flat_map(|f| {
                f.counters
                    .iter()
                    .filter(move |c| {
                        c.verdict == Verdict::Regressed
                            && c.test.is_some_and(Test::gates)
                            && c.change.is_none_or(|x| x >= fraction)
                    })
                    .map(move |c| (f.name.as_str(), c.name.as_str(), c.change))
            })
            .collect()
    }
}

/// Everything that can go wrong comparing two runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A trace could not be analyzed.
    #[error("failed to analyze {path}")]
    Analysis {
        /// The trace.
        path: String,
        /// Why.
        #[source]
        source: AnalysisError,
    },
    /// `--counter` named a counter not in both traces.
    #[error("`{name}` is not a counter of both traces; they share {shared}")]
    UnknownCounter {
        /// What was asked for.
        name: String,
        /// The counters both traces have.
        shared: String,
    },
    /// The traces have no counter in common.
    #[error(
        "the traces have no counter in common (base: {base}; new: {new}); \
         record both with the same -e"
    )]
    NoSharedCounter {
        /// The base trace's counters.
        base: String,
        /// The new trace's counters.
        new: String,
    },
}

/// Reads and analyzes one run for [`compare`]; `path` names it in the
/// result and in errors.
///
/// # Errors
///
/// [`DiffError::Analysis`] when the trace cannot be analyzed.
pub fn load<R: Read>(
    path: &str,
    reader: TraceReader<R>,
    opts: &DiffOptions,
) -> Result<Run, DiffError> {
    collect::collect(path, reader, opts).map_err(|source| DiffError::Analysis {
        path: path.to_owned(),
        source,
    })
}

/// Compares two runs function by function and counter by counter.
///
/// # Errors
///
/// [`DiffError::UnknownCounter`] when `opts.counter` is not in both
/// traces; [`DiffError::NoSharedCounter`] when they share none.
pub fn compare(base: &Run, new: &Run, opts: &DiffOptions) -> Result<Diff, DiffError> {
    let pairs = shared_counters(base, new, opts)?;
    let min_calls = stats::min_calls(opts.alpha) as u64;
    let confidence = 1.0 - opts.alpha;
    let mut functions = Vec::new();
    let names: BTreeMap<&str, (Option<u32>, Option<u32>)> = names(base, new);
    for (&name, &(b, n)) in &names {
        let (Some(b), Some(n)) = (b, n) else { continue };
        let (base_calls, new_calls) = (base.used(b), new.used(n));
        let counters = pairs
            .iter()
            .map(|&(bi, ni)| compare_counter(base, new, (b, bi), (n, ni), min_calls, opts.alpha))
            .collect();
        functions.push(FunctionDiff {
            name: name.to_owned(),
            base_calls,
            new_calls,
            only_in: None,
            counters,
        });
    }
    adjust(&mut functions, opts);
    for (&name, &(b, n)) in &names {
        let (side, base_calls, new_calls) = match (b, n) {
            (Some(b), None) => (Side::Base, base.used(b), 0),
            (None, Some(n)) => (Side::New, 0, new.used(n)),
            _ => continue,
        };
        functions.push(FunctionDiff {
            name: name.to_owned(),
            base_calls,
            new_calls,
            only_in: Some(side),
            counters: Vec::new(),
        });
    }
    let unmatched_counters = base
        .counter_names()
        .filter(|name| new.counter_index(name).is_none())
        .chain(
            new.counter_names()
                .filter(|name| base.counter_index(name).is_none()),
        )
        .map(str::to_owned)
        .collect();
    Ok(Diff {
        base: base.summary(),
        new: new.summary(),
        alpha: opts.alpha,
        threshold: opts.threshold,
        confidence,
        min_calls,
        unmatched_counters,
        functions,
    })
}

/// Counter positions (base, new) to compare, in the base trace's order.
fn shared_counters(
    base: &Run,
    new: &Run,
    opts: &DiffOptions,
) -> Result<Vec<(usize, usize)>, DiffError> {
    let pairs: Vec<(usize, usize)> = base
        .counter_names()
        .enumerate()
        .filter_map(|(bi, name)| new.counter_index(name).map(|ni| (bi, ni)))
        .collect();
    let list = |names: &mut dyn Iterator<Item = &str>| names.collect::<Vec<_>>().join(", ");
    if pairs.is_empty() {
        return Err(DiffError::NoSharedCounter {
            base: list(&mut base.counter_names()),
            new: list(&mut new.counter_names()),
        });
    }
    let Some(wanted) = &opts.counter else {
        return Ok(pairs);
    };
    let chosen: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|&(bi, _)| base.counter_name(bi) == wanted)
        .collect();
    if chosen.is_empty() {
        return Err(DiffError::UnknownCounter {
            name: wanted.clone(),
            shared: list(&mut pairs.iter().map(|&(bi, _)| base.counter_name(bi))),
        });
    }
    Ok(chosen)
}

/// Every function name of either run, with its probe in each.
fn names<'a>(base: &'a Run, new: &'a Run) -> BTreeMap<&'a str, (Option<u32>, Option<u32>)> {
    let mut names: BTreeMap<&str, (Option<u32>, Option<u32>)> = BTreeMap::new();
    for (name, probe) in base.functions() {
        names.entry(name).or_default().0 = Some(probe);
    }
    for (name, probe) in new.functions() {
        names.entry(name).or_default().1 = Some(probe);
    }
    names
}

/// Whether a counter is exact per call in perfunc's setting, so that the
/// calls of one run can be tested against those of another: the same work
/// gives the same count whatever the machine does beside it. Page faults
/// (all, minor; not major faults, which depend on the page cache),
/// alignment and emulation faults, and instructions and branches counted in
/// user space only (`:u`: without the kernel's interrupt handling). Time,
/// cycles, cache misses, context switches and the rest vary from run to
/// run.
pub fn exact_per_call(spec: &CounterSpec) -> bool {
    match spec.type_ {
        PERF_TYPE_SOFTWARE => matches!(spec.config, 2 | 5 | 7 | 8),
        PERF_TYPE_HARDWARE => matches!(spec.config, 1 | 4) && spec.exclude_kernel,
        _ => false,
    }
}

/// Why a time-like counter without enough runs on a side is not tested.
fn runs_reason(runs: RunCounts, min_runs: u64) -> String {
    let advice = format!("record with --repeat {min_runs} or more");
    match (runs.base, runs.new) {
        (1, 1) => format!("one run per side: run-to-run noise unknown; {advice}"),
        (1, _) => format!("one run in base: run-to-run noise unknown; {advice}"),
        (_, 1) => format!("one run in new: run-to-run noise unknown; {advice}"),
        (b, n) => format!("{b} and {n} runs: the run test needs ≥ {min_runs} per side; {advice}"),
    }
}

/// Whether a relative change is beyond [`ONE_RUN_FACTOR`] either way:
/// at least ×3 or at most ÷3.
fn beyond_floor(change: f64) -> bool {
    change >= ONE_RUN_FACTOR - 1.0 || change <= 1.0 / ONE_RUN_FACTOR - 1.0
}

/// Whether both a calibrated and a raw change are beyond the floor, the
/// same way.
fn both_beyond_floor(calibrated: f64, raw: f64) -> bool {
    beyond_floor(calibrated) && beyond_floor(raw) && (calibrated > 0.0) == (raw > 0.0)
}

/// `difference` relative to `base`: `None` when the base is 0 and the
/// difference is not (0 when both are).
fn relative(difference: f64, base: f64) -> Option<f64> {
    if base != 0.0 {
        Some(difference / base.abs())
    } else {
        (difference == 0.0).then_some(0.0)
    }
}

/// One counter of one function, before the multiple-testing correction
/// (`q_value` holds the raw p-value until [`adjust`]).
fn compare_counter(
    base: &Run,
    new: &Run,
    (bp, bi): (u32, usize),
    (np, ni): (u32, usize),
    min_calls: u64,
    alpha: f64,
) -> CounterDiff {
    let confidence = 1.0 - alpha;
    let (b, n) = (base.values(bp, bi), new.values(np, ni));
    let (bs, ns) = (base.stats(bp, bi), new.stats(np, ni));
    let base_median = stats::median(&mut b.to_vec());
    let new_median = stats::median(&mut n.to_vec());
    let run_count = |s: &CounterStats| s.runs.as_ref().map_or(1, |r| r.medians.len());
    let runs = RunCounts {
        base: run_count(bs),
        new: run_count(ns),
    };
    let exact = exact_per_call(base.spec(bi));
    let noisy = |s: &CounterStats| !exact && s.within_noise == Some(true);
    let mut d = CounterDiff {
        name: bs.name.clone(),
        unit: bs.unit,
        runs,
        base_median,
        new_median,
        base_mean: bs.mean,
        new_mean: ns.mean,
        base_run_median: None,
        base_run_stddev: None,
        new_run_median: None,
        new_run_stddev: None,
        difference: new_median - base_median,
        difference_low: None,
        difference_high: None,
        change: None,
        ci_low: None,
        ci_high: None,
        test: None,
        p_value: None,
        q_value: None,
        verdict: Verdict::Inconclusive,
        reason: None,
    };
    if noisy(bs) && noisy(ns) {
        d.reason = Some("within probe noise".to_owned());
        return d;
    }
    // Exact counters are tested per call whatever the runs: their calls do
    // not share a run's state, and run medians of whole pages or
    // instructions tie, which costs the run test its power.
    if let (Some(br), Some(nr), false) = (&bs.runs, &ns.runs, exact) {
        if br.medians.len().min(nr.medians.len()) as u64 >= min_calls {
            let keys = |m: &[f64]| m.iter().map(|&x| stats::order_key(x)).collect::<Vec<_>>();
            let test = stats::mann_whitney(&keys(&br.medians), &keys(&nr.medians));
            let shift =
                stats::hodges_lehmann(&br.medians, &nr.medians, alpha).expect("runs on both sides");
            d.base_run_median = Some(br.median);
            d.new_run_median = Some(nr.median);
            d.base_run_stddev = Some(br.stddev);
            d.new_run_stddev = Some(nr.stddev);
            d.difference = shift.shift;
            d.difference_low = Some(shift.low).filter(|x| x.is_finite());
            d.difference_high = Some(shift.high).filter(|x| x.is_finite());
            if !noisy(bs) {
                d.change = relative(shift.shift, br.median);
                if br.median != 0.0 {
                    let scale = br.median.abs();
                    d.ci_low = d.difference_low.map(|x| x / scale);
                    d.ci_high = d.difference_high.map(|x| x / scale);
                }
            }
            d.test = Some(Test::Runs);
            d.p_value = Some(test.p_value);
            d.q_value = d.p_value;
            d.verdict = Verdict::Unchanged;
            return d;
        }
    }
    let seed = seed_of(&bs.name, base.function_name(bp));
    if let Some(c) = stats::median_change(b, n, confidence, seed) {
        d.difference_low = Some(c.low);
        d.difference_high = Some(c.high);
        if !noisy(bs) {
            d.change = c
                .relative
                .map(|r| r.change)
                .or_else(|| relative(d.difference, base_median));
            d.ci_low = c.relative.map(|r| r.low).filter(|x| x.is_finite());
            d.ci_high = c.relative.map(|r| r.high).filter(|x| x.is_finite());
        }
    }
    let enough = base.used(bp).min(new.used(np)) >= min_calls && !b.is_empty() && !n.is_empty();
    if !enough {
        untested(&mut d);
        d.reason = Some(format!("needs ≥ {min_calls} calls a side"));
        return d;
    }
    let test = if exact {
        Test::Calls
    } else if d.change.is_some_and(|calibrated| {
        relative(ns.raw_p50 - bs.raw_p50, bs.raw_p50)
            .is_some_and(|raw| both_beyond_floor(calibrated, raw))
    }) {
        Test::CallsBeyondFloor
    } else {
        untested(&mut d);
        d.reason = Some(runs_reason(runs, min_calls));
        return d;
    };
    d.test = Some(test);
    d.p_value = Some(stats::mann_whitney(b, n).p_value);
    d.q_value = d.p_value;
    d.verdict = Verdict::Unchanged;
    d
}

/// Drops the intervals of a change that is not tested: a bootstrap of the
/// calls of one run knows nothing of the run-to-run noise that keeps it
/// from a verdict, and would look surer than the verdict.
fn untested(d: &mut CounterDiff) {
    (d.ci_low, d.ci_high) = (None, None);
    (d.difference_low, d.difference_high) = (None, None);
}

/// Replaces the raw p-values in `q_value` by Benjamini–Hochberg q-values
/// across every tested function and counter, and sets the verdicts.
fn adjust(functions: &mut [FunctionDiff], opts: &DiffOptions) {
    let tested = || {
        functions
            .iter()
            .flat_map(|f| &f.counters)
            .filter_map(|c| c.p_value)
    };
    let q = stats::benjamini_hochberg(&tested().collect::<Vec<_>>());
    let mut q = q.into_iter();
    for c in functions.iter_mut().flat_map(|f| &mut f.counters) {
        if c.p_value.is_none() {
            continue;
        }
        let q_value = q.next().expect("one q-value per test");
        c.q_value = Some(q_value);
        c.verdict = verdict(c, q_value, opts);
    }
}

fn verdict(c: &CounterDiff, q_value: f64, opts: &DiffOptions) -> Verdict {
    if q_value >= opts.alpha {
        return Verdict::Unchanged;
    }
    let up = match c.change {
        Some(change) if change >= opts.threshold => true,
        Some(change) if change <= -opts.threshold => false,
        Some(_) => return Verdict::Unchanged,
        None if c.difference == 0.0 => return Verdict::Unchanged,
        None => c.difference > 0.0,
    };
    // The intervals must agree: all of each known one on the side of the
    // change, and at least one known (a change the data cannot bound is no
    // verdict).
    let bounds = if up {
        [c.ci_low, c.difference_low]
    } else {
        [c.ci_high.map(|x| -x), c.difference_high.map(|x| -x)]
    };
    let agrees = bounds.iter().any(Option::is_some) && bounds.iter().flatten().all(|&x| x > 0.0);
    if !agrees {
        return Verdict::Unchanged;
    }
    if up {
        Verdict::Regressed
    } else {
        Verdict::Improved
    }
}

/// A seed per function and counter (FNV-1a of both names), so that each
/// test's bootstrap is reproducible and independent of the others.
fn seed_of(counter: &str, function: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in function.bytes().chain([0]).chain(counter.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests;
