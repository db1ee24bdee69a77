//! From a trace to numbers an engineer can trust: per function and counter,
//! how many calls, what each cost (inclusive and self), and how that cost
//! is spread, with every call that could not be used counted by reason.
//!
//! The module is pure: [`analyze`] takes a [`TraceReader`] over any
//! [`Read`] and returns an [`Analysis`].
//!
//! # Method
//!
//! 1. **Order.** Samples of one thread can appear out of time order in the
//!    file (each CPU's ring is drained in turn). Records are kept pending,
//!    grouped by thread; when a chunk ends a recording round, those stamped
//!    at or before the latest time seen up to the previous round end are
//!    released, sorted by time (stable: ties keep file order). The end of
//!    the trace releases everything. `Lost` and `Exit` events are ordered
//!    the same way; an event applies after the records of its own time.
//! 2. **Pairing.** Per thread, a shadow stack of open frames matches each
//!    return with its entry, so nesting and recursion of any depth work. A
//!    probed function called, directly or not, from another probed
//!    function is its child in the call tree. On a return of probe `p`:
//!    - `p` on top of the stack: a complete call;
//!    - `p` deeper in the stack: the frames above it were skipped by
//!      longjmp or exception unwinding and count as [`Reason::Unwound`]
//!      for their functions, then `p` completes;
//!    - `p` not in the stack: [`Reason::ReturnWithoutEntry`] (attached
//!      mid-call, or the entry was lost).
//!
//!    Frames still open at the end of the trace, or when an `Exit` event
//!    ends their thread, count as [`Reason::EntryWithoutReturn`]. A `Lost`
//!    event on CPU `c` at time `t` marks every frame open at `t` in every
//!    thread whose last record (at or before `t`) was on `c`; those calls
//!    count as [`Reason::LostRecords`] when they complete. This is
//!    conservative: the lost records may have belonged to other threads,
//!    and a thread's records after a migration are not checked.
//! 3. **Flags** on complete calls: [`Reason::Migrated`] (entry CPU differs
//!    from return CPU, in a trace whose counters are per CPU: not with
//!    `follow: "per-thread"`, whose counters are the task's own and read
//!    exactly across a migration), [`Reason::Multiplexed`] (the group's
//!    `time_running` advanced less than its `time_enabled` between entry
//!    and return, so a counter was not on the PMU the whole call), and
//!    [`Reason::ContextSwitched`] (the trace has the `context-switches`
//!    software counter, alias `cs`, and it moved during the call). Values
//!    are **never scaled** by `time_enabled / time_running`: a multiplexed
//!    call is only flagged. By default flagged calls are used and counted
//!    once per flag in [`FunctionStats::flagged`]; with
//!    [`AnalysisOptions::strict`] they are left out and counted once, under
//!    their first flag in [`Reason::ALL`] order, in
//!    [`FunctionStats::discarded`].
//! 4. **Calibration.** When the trace header holds a calibration profile
//!    (`docs/calibration.md`) and [`AnalysisOptions::baseline`] names a
//!    statistic (the median by default), the probes' cost is taken out of
//!    every call, TAU's way: a call of probe `p` loses `own[p]`, the
//!    baseline of its instruction class, and, for every probed call
//!    completed or unwound inside it at any depth, that call's descendant
//!    cost (what its probes add to its callers). Costs are rounded to whole
//!    units once per probe and counter, so each subtracted term is off by
//!    at most half a unit. Flags are computed on raw deltas; negative
//!    calibrated values are kept, not clamped. An unwound call's probes
//!    count whole although its return probe never fired: its descendant
//!    cost may be over-subtracted by the return half. Each function and
//!    counter also keeps its raw values ([`CounterStats::raw_sum`],
//!    [`CounterStats::raw_mean`], [`CounterStats::raw_p50`]) and says
//!    whether its calibrated median is [`CounterStats::within_noise`].
//!
//! # Definitions
//!
//! - **Inclusive delta** of a call and counter: value at return minus
//!   value at entry (wrapping, as a signed 64-bit number).
//! - **Self delta**: the inclusive delta minus the inclusive deltas of the
//!   call's *direct* probed children that completed, whatever their flags.
//!   An unwound child's partial cost is unknown and stays in the parent's
//!   self delta.
//! - **Calibrated** inclusive delta: raw inclusive delta − own cost − the
//!   descendant costs of the probed calls inside; the self delta is then
//!   taken from calibrated inclusive deltas, so no probe cost is
//!   subtracted twice.
//! - **Within noise**: [`perfunc_calibrate::within_noise`] of the
//!   calibrated p50 against the baseline of the function's class: `|p50| <
//!   2 MAD`, or the distribution-free confidence interval of the median at
//!   level `1 - NOISE_ALPHA` (`perfunc_calibrate::median_ci`, only while
//!   the values are exact) contains 0.
//! - **Mean** is `sum / used`; **stddev** is the sample standard deviation
//!   (divisor `n - 1`, 0 for a single call), computed in two passes over
//!   the kept values, and with Welford's update beyond the exact limit.
//!   Sums are exact (128-bit integers) until converted to `f64` for the
//!   report.
//! - **Percentiles** use the nearest-rank rule: `pX` is the value of rank
//!   `ceil(X / 100 * n)` (at least 1) among the `n` used values sorted
//!   ascending. They are exact while a function and counter has at most
//!   [`AnalysisOptions::exact_limit`] used calls (default
//!   [`EXACT_LIMIT`]). Beyond it the values move to an HDR histogram of 3
//!   significant digits over `value - offset`, where `offset` is the
//!   smallest value seen at the switch; later values below the offset are
//!   recorded as the offset (clamped). The percentiles then have a relative
//!   error of at most [`PERCENTILE_RELATIVE_ERROR`] of `value - offset`,
//!   are clamped to the exact minimum and maximum, and
//!   [`CounterStats::exact`] is false. Sum, mean, min and max stay exact.
//!
//! # Parallelism
//!
//! The reader runs on the calling thread. While it reads and orders one
//! round, the previous round is paired on a rayon pool of
//! [`AnalysisOptions::threads`] threads, one task per trace thread, and
//! the values are merged into per-function stores, one task per function,
//! in thread-id order; the final statistics take one task per function
//! and counter. The result does not depend on the pool size. On the
//! 2-core development machine `analyze` reads 20 to 30 M records/s (3
//! counters; see the ignored `throughput` test), and 15 to 25 M records/s
//! when calibrating (the raw values get a second store). Without a
//! profile the calibration costs a few untaken branches per call.
//!
//! # Memory
//!
//! The analysis holds at most: two rounds of pending records (`32 + 8 * N`
//! bytes each for `N` counters) plus the round being paired; the open
//! frames of every thread (`40 + 16 * N` bytes each, `40 + 24 * N` when
//! calibrating); per function and counter, up to `exact_limit` values of 8
//! bytes (8 MiB at the default [`EXACT_LIMIT`]) or one HDR histogram (tens
//! of KiB), twice when calibrating (calibrated and raw values); per thread
//! and distinct call path, about `80 + 32 * N` bytes (`80 + 48 * N` when
//! calibrating); and, per thread and function, the counts. None of it grows with the number of calls, so
//! traces larger than RAM stream through. (A trace written without round
//! ends is one round: it is held whole until its end.)

mod compensation;
mod engine;
pub mod model;
mod order;
mod pair;
mod stats;
#[cfg(test)]
mod tests;

use std::io::Read;

use globset::{Glob, GlobSetBuilder};
use perfunc_calibrate::Statistic;

pub use model::*;
pub use order::IDLE_TID_BASE;

use crate::trace::{TraceError, TraceHeader, TraceReader};

/// Used calls per function and counter whose values are kept for exact
/// percentiles; beyond it an HDR histogram takes over.
pub const EXACT_LIMIT: usize = 1 << 20;

/// Relative error of percentiles taken from the HDR histogram (3
/// significant digits), relative to the distance of the value from the
/// histogram's offset.
pub const PERCENTILE_RELATIVE_ERROR: f64 = 0.001;

/// Significant digits of the HDR histograms.
const HDR_SIGNIFICANT_DIGITS: u8 = 3;

/// The noise test's confidence interval of a calibrated median is at level
/// `1 - NOISE_ALPHA` (95 %).
pub const NOISE_ALPHA: f64 = 0.05;

/// What to analyze and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AnalysisOptions {
    /// Leave flagged calls (migrated, multiplexed, context-switched) out of
    /// the statistics, as the LTTng analysis did. Always so for a
    /// system-wide trace, unless [`AnalysisOptions::keep_flagged`].
    pub strict: bool,
    /// Keep flagged calls of a system-wide trace, whose counters are per
    /// CPU (their deltas span another CPU's or another task's counts).
    pub keep_flagged: bool,
    /// Analyze only this thread.
    pub tid: Option<u32>,
    /// Globs on the probe's function name (`*` crosses `::`); only matching
    /// functions are reported. Empty: all. Pairing still sees every probe,
    /// so self deltas subtract every probed child, matched or not.
    pub functions: Vec<String>,
    /// Used calls per function and counter kept for exact percentiles.
    pub exact_limit: usize,
    /// Size of the rayon pool; `None` for rayon's default.
    pub threads: Option<usize>,
    /// Skip damaged chunks and analyze every whole chunk around them,
    /// instead of failing (`--salvage`); the skipped byte ranges are in
    /// [`TraceSummary::damaged`].
    pub salvage: bool,
    /// The baseline statistic subtracted from every call when the trace
    /// holds a calibration profile (`--baseline`); `None` reports raw
    /// values. Default: the median.
    pub baseline: Option<Statistic>,
    /// Keep one call tree per thread ([`CallPath::tid`] set) instead of
    /// merging the threads' trees.
    pub tree_per_thread: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            strict: false,
            keep_flagged: false,
            tid: None,
            functions: Vec::new(),
            exact_limit: EXACT_LIMIT,
            threads: None,
            salvage: false,
            baseline: Some(Statistic::Median),
            tree_per_thread: false,
        }
    }
}

/// Everything that can go wrong analyzing a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The trace could not be read.
    #[error("failed to read the trace")]
    Trace(#[from] TraceError),

    /// A function pattern is not a valid glob.
    #[error("invalid function pattern \"{pattern}\"; use a glob such as \"parse*\" or \"app::*\"")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What the glob parser said.
        #[source]
        source: globset::Error,
    },

    /// No recorded function matches the function patterns.
    #[error(
        "no function in the trace matches {}{}",
        quoted(patterns),
        match closest.as_slice() {
            [] => format!("; its functions: {}", listed(functions, 10)),
            near => format!("; did you mean {}?", quoted(near)),
        }
    )]
    NoFunctionMatches {
        /// The patterns as given.
        patterns: Vec<String>,
        /// The recorded functions closest to them, most similar first.
        closest: Vec<String>,
        /// Every recorded function, in probe order, once each.
        functions: Vec<String>,
    },

    /// The thread asked for hit no probe in the trace.
    #[error(
        "thread {tid} hit no probe in this trace; the threads that did: {}",
        listed(threads, 10)
    )]
    NoSuchThread {
        /// The thread id asked for.
        tid: u32,
        /// The threads with samples, in ascending order.
        threads: Vec<u32>,
    },

    /// Function patterns matched probes, but none of those functions was
    /// called (in the thread asked for).
    #[error(
        "no call of a function matching {}{}; {}",
        quoted(patterns),
        match tid {
            Some(tid) => format!(" in thread {tid}"),
            None => " (probed, but never called)".to_owned(),
        },
        match (called.as_slice(), tid) {
            ([], Some(_)) => "it called no probed function".to_owned(),
            ([], None) => "no probed function was called".to_owned(),
            (called, Some(_)) => format!("the functions it called: {}", listed(called, 10)),
            (called, None) => format!("the functions called: {}", listed(called, 10)),
        }
    )]
    NoCallMatches {
        /// The patterns as given.
        patterns: Vec<String>,
        /// The thread asked for, if any.
        tid: Option<u32>,
        /// The functions with calls (in that thread), most calls first,
        /// once each.
        called: Vec<String>,
    },

    /// The rayon thread pool could not be started.
    #[error("failed to start the analysis thread pool; retry with fewer threads")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),

    /// The calibration profile stored in the trace cannot be read.
    #[error(
        "failed to read the calibration profile stored in the trace; \
         report raw values with --baseline off"
    )]
    Profile(#[source] perfunc_calibrate::CalibrationError),
}

/// Flags of a complete call, as a small bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CallFlags(u8);

impl CallFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// Entry and return ran on different CPUs.
    pub const MIGRATED: Self = Self(1);
    /// A counter did not run the whole call (`time_running < time_enabled`).
    pub const MULTIPLEXED: Self = Self(2);
    /// The `context-switches` counter moved during the call.
    pub const CONTEXT_SWITCHED: Self = Self(4);
    /// Records were lost on the call's CPU while it was open; such a call
    /// is never used.
    pub const LOST_RECORDS: Self = Self(8);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags as reasons, in [`Reason::ALL`] order.
    pub fn reasons(self) -> impl Iterator<Item = Reason> {
        [
            (Self::LOST_RECORDS, Reason::LostRecords),
            (Self::MIGRATED, Reason::Migrated),
            (Self::MULTIPLEXED, Reason::Multiplexed),
            (Self::CONTEXT_SWITCHED, Reason::ContextSwitched),
        ]
        .into_iter()
        .filter(move |(flag, _)| self.contains(*flag))
        .map(|(_, reason)| reason)
    }
}

impl std::ops::BitOr for CallFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for CallFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// One paired call, for later consumers (flamegraph, diff, calibration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Probe id in the trace header.
    pub probe: u32,
    /// Thread id.
    pub tid: u32,
    /// Open probed frames below this call in its thread (0: outermost).
    pub depth: u32,
    /// The run of a `record --repeat` trace the call belongs to, from 0
    /// (0 in a trace of one run).
    pub run: u32,
    /// Entry time, ns on the trace's clock.
    pub start: u64,
    /// Return time, ns on the trace's clock.
    pub end: u64,
    /// Raw inclusive delta per counter, in the header's order: value at
    /// return minus value at entry.
    pub raw: Vec<i64>,
    /// Inclusive delta per counter: calibrated when the analysis is,
    /// `raw` otherwise.
    pub inclusive: Vec<i64>,
    /// Self delta per counter, from the inclusive deltas.
    pub self_: Vec<i64>,
    /// Probed calls nested inside, at any depth (complete or unwound).
    pub descendants: u32,
    /// Why the call may be left out.
    pub flags: CallFlags,
    /// Whether the call is in the statistics (not left out for its flags).
    pub used: bool,
    /// The probed call this one ran in, if any: its probe and entry time.
    pub parent: Option<(u32, u64)>,
}

/// Analyzes a trace: pairs every thread's entries and returns, and reports
/// per-function statistics, the call tree and what was left out and why.
///
/// # Errors
///
/// [`AnalysisError::BadPattern`] for an invalid function glob,
/// [`AnalysisError::ThreadPool`] if the pool cannot start,
/// [`AnalysisError::Profile`] if the trace's calibration profile cannot be
/// read (with a baseline statistic asked for),
/// [`AnalysisError::Trace`] if the trace is damaged or cannot be read.
pub fn analyze<R: Read>(
    reader: TraceReader<R>,
    opts: &AnalysisOptions,
) -> Result<Analysis, AnalysisError> {
    engine::run(reader, opts, None)
}

/// As [`analyze`], and hands every complete call of a reported function
/// to `on_call`, on the calling thread: round by round, within a round by
/// thread id, within a thread in return order. Calls that could not be
/// paired are only counted.
///
/// # Errors
///
/// As [`analyze`].
pub fn analyze_calls<R: Read, F: FnMut(&Call)>(
    reader: TraceReader<R>,
    opts: &AnalysisOptions,
    mut on_call: F,
) -> Result<Analysis, AnalysisError> {
    engine::run(reader, opts, Some(&mut on_call))
}

/// Which probes of `header` the patterns select: one flag per probe.
fn select_functions(patterns: &[String], header: &TraceHeader) -> Result<Vec<bool>, AnalysisError> {
    if patterns.is_empty() {
        return Ok(vec![true; header.probes.len()]);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|source| AnalysisError::BadPattern {
            pattern: pattern.clone(),
            source,
        })?;
        builder.add(glob);
    }
    let set = builder
        .build()
        .map_err(|source| AnalysisError::BadPattern {
            pattern: patterns.join(","),
            source,
        })?;
    let wanted: Vec<bool> = header
        .probes
        .iter()
        .map(|probe| set.is_match(&probe.function))
        .collect();
    if !wanted.contains(&true) {
        let mut closest = Vec::new();
        for pattern in patterns {
            let bare = pattern.trim_matches(|c| matches!(c, '*' | '?'));
            let near =
                crate::kernel::closest(bare, header.probes.iter().map(|p| p.function.as_str()));
            for name in near {
                if !closest.iter().any(|c: &String| c == name) {
                    closest.push(name.to_owned());
                }
            }
        }
        let mut functions: Vec<String> = Vec::new();
        for probe in &header.probes {
            if !functions.contains(&probe.function) {
                functions.push(probe.function.clone());
            }
        }
        return Err(AnalysisError::NoFunctionMatches {
            patterns: patterns.to_vec(),
            closest,
            functions,
        });
    }
    Ok(wanted)
}

/// The error for `opts`' function patterns when they matched probes but
/// the analysis found no call of those functions: it names the functions
/// that `unfiltered` (the same trace under the same options without the
/// patterns) has calls of, most calls first.
pub fn no_call_matches(opts: &AnalysisOptions, unfiltered: &Analysis) -> AnalysisError {
    let mut functions: Vec<&FunctionStats> = unfiltered
        .functions
        .iter()
        .filter(|f| f.calls > 0)
        .collect();
    functions.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
    let mut called: Vec<String> = Vec::new();
    for f in functions {
        if !called.contains(&f.name) {
            called.push(f.name.clone());
        }
    }
    AnalysisError::NoCallMatches {
        patterns: opts.functions.clone(),
        tid: opts.tid,
        called,
    }
}

/// The first `max` of `items` joined by commas, then how many more.
fn listed<T: std::fmt::Display>(items: &[T], max: usize) -> String {
    let shown: Vec<String> = items.iter().take(max).map(T::to_string).collect();
    match items.len().saturating_sub(max) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// `names` quoted and joined: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
