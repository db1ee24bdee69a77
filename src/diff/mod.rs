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
//! Per function and counter:
//!
//! - **Medians** are the lower middle values of the kept values (the
//!   nearest-rank p50 of the report); **means** are exact over all calls.
//! - **Change** is the relative change of the median, `new / base − 1`,
//!   with a 95 % bootstrap confidence interval ([`stats::median_change`]).
//!   When the base median is 0 the ratio is undefined: the change is 0 if
//!   the new median is 0 too, and absent otherwise.
//! - **p-value**: the two-sided Mann–Whitney U test of the two runs'
//!   values ([`stats::mann_whitney`]): do calls of one run tend to cost
//!   more than calls of the other? It assumes nothing about the
//!   distributions, which for probe deltas are skewed and heavy-tailed.
//! - **q-value**: the p-values of all function × counter tests of the diff
//!   adjusted by Benjamini–Hochberg ([`stats::benjamini_hochberg`]), so
//!   that among the differences called significant the expected share of
//!   false ones is at most `alpha`, however many functions are compared.
//! - **Verdict**: [`Verdict::Inconclusive`] when either run has fewer
//!   calls than [`stats::min_calls`]`(alpha)`, the fewest with which two
//!   runs of equal size can reach `alpha` at all; [`Verdict::Regressed`] / [`Verdict::Improved`]
//!   when `q < alpha` and the change is at least the threshold up / down
//!   (with an undefined change: when `q < alpha`, by the direction of the
//!   medians); [`Verdict::Unchanged`] otherwise.

mod collect;
mod output;
pub mod stats;

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

pub use collect::Run;
pub use output::write_diff;

use crate::analysis::{AnalysisError, AnalysisOptions, CalibrationInfo, EXACT_LIMIT};
use crate::events::Unit;
use crate::trace::TraceReader;

/// The confidence level of the change's interval.
pub const CONFIDENCE: f64 = 0.95;

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
    /// Too few calls in a run to test.
    Inconclusive,
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
    /// Median per call in the base run.
    pub base_median: f64,
    /// Median per call in the new run.
    pub new_median: f64,
    /// Mean per call in the base run.
    pub base_mean: f64,
    /// Mean per call in the new run.
    pub new_mean: f64,
    /// Relative change of the median (0.25 for +25 %); `None` when the
    /// base median is 0 and the new one is not.
    pub change: Option<f64>,
    /// Lower bound of the change's 95 % confidence interval.
    pub ci_low: Option<f64>,
    /// Upper bound of the change's 95 % confidence interval.
    pub ci_high: Option<f64>,
    /// Mann–Whitney p-value (`None` when inconclusive).
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q-value (`None` when inconclusive).
    pub q_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
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
    /// Calls per run below which a test is inconclusive.
    pub min_calls: u64,
    /// Counters of one run only, not compared.
    pub unmatched_counters: Vec<String>,
    /// Every function of either run: functions in both runs first, by
    /// name, then the others by name.
    pub functions: Vec<FunctionDiff>,
}

impl Diff {
    /// Significant regressions whose change is at least `fraction`
    /// (`--fail-on-regression`), as (function, counter, change).
    pub fn regressions(&self, fraction: f64) -> Vec<(&str, &str, Option<f64>)> {
        self.functions
            .iter()
            .flat_map(|f| {
                f.counters
                    .iter()
                    .filter(move |c| {
                        c.verdict == Verdict::Regressed && c.change.is_none_or(|x| x >= fraction)
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
    let mut functions = Vec::new();
    let names: BTreeMap<&str, (Option<u32>, Option<u32>)> = names(base, new);
    for (&name, &(b, n)) in &names {
        let (Some(b), Some(n)) = (b, n) else { continue };
        let (base_calls, new_calls) = (base.used(b), new.used(n));
        let counters = pairs
            .iter()
            .map(|&(bi, ni)| compare_counter(base, new, (b, bi), (n, ni), min_calls))
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

/// One counter of one function, before the multiple-testing correction
/// (`q_value` holds the raw p-value until [`adjust`]).
fn compare_counter(
    base: &Run,
    new: &Run,
    (bp, bi): (u32, usize),
    (np, ni): (u32, usize),
    min_calls: u64,
) -> CounterDiff {
    let (b, n) = (base.values(bp, bi), new.values(np, ni));
    let (bs, ns) = (base.stats(bp, bi), new.stats(np, ni));
    let base_median = stats::median(&mut b.to_vec());
    let new_median = stats::median(&mut n.to_vec());
    let seed = seed_of(&bs.name, base.function_name(bp));
    let interval = stats::median_change(b, n, CONFIDENCE, seed);
    let change = match interval {
        Some(c) => Some(c.change),
        None if base_median == 0.0 && new_median == 0.0 => Some(0.0),
        None => None,
    };
    let enough = base.used(bp).min(new.used(np)) >= min_calls && !b.is_empty() && !n.is_empty();
    let p_value = enough.then(|| stats::mann_whitney(b, n).p_value);
    CounterDiff {
        name: bs.name.clone(),
        unit: bs.unit,
        base_median,
        new_median,
        base_mean: bs.mean,
        new_mean: ns.mean,
        change,
        ci_low: interval.map(|c| c.low).filter(|x| x.is_finite()),
        ci_high: interval.map(|c| c.high).filter(|x| x.is_finite()),
        p_value,
        q_value: p_value,
        verdict: if enough {
            Verdict::Unchanged
        } else {
            Verdict::Inconclusive
        },
    }
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
        None => c.new_median > c.base_median,
    };
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
