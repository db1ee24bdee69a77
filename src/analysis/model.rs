//! What the analysis produces: per-function statistics and the call tree.
//! The report writers (table, JSON, CSV), the flamegraph and the diff take
//! these types.

use std::collections::BTreeMap;

use perfunc_calibrate::{ProfileKey, Source, Statistic};
use serde::Serialize;

use crate::events::{CounterSpec, Unit};
use crate::trace::Damage;

/// Why a call is left out of the statistics (or, for flags, why it may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A return with no entry: perfunc attached mid-call, or the entry was
    /// lost.
    ReturnWithoutEntry,
    /// An entry with no return: the thread or process ended (exit, crash)
    /// or the recording stopped first.
    EntryWithoutReturn,
    /// A frame skipped by longjmp or exception unwinding: a return matched
    /// an entry deeper in the stack, so the frames above it never returned.
    Unwound,
    /// The kernel dropped records on this call's CPU while it was open.
    LostRecords,
    /// Flag: the entry and return ran on different CPUs.
    Migrated,
    /// Flag: a counter did not run the whole time (the PMU multiplexed
    /// it): time_running < time_enabled between entry and return. Values are
    /// not scaled.
    Multiplexed,
    /// Flag: the thread was switched out during the call (a context switch
    /// counter moved, or switch records say so).
    ContextSwitched,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 7] = [
        Reason::ReturnWithoutEntry,
        Reason::EntryWithoutReturn,
        Reason::Unwound,
        Reason::LostRecords,
        Reason::Migrated,
        Reason::Multiplexed,
        Reason::ContextSwitched,
    ];

    /// Whether this is a flag on a complete call (kept unless `--strict`)
    /// rather than a call that cannot be paired at all.
    pub fn is_flag(self) -> bool {
        matches!(
            self,
            Reason::Migrated | Reason::Multiplexed | Reason::ContextSwitched
        )
    }

    /// The name used in JSON, CSV and the table.
    pub fn name(self) -> &'static str {
        match self {
            Reason::ReturnWithoutEntry => "return_without_entry",
            Reason::EntryWithoutReturn => "entry_without_return",
            Reason::Unwound => "unwound",
            Reason::LostRecords => "lost_records",
            Reason::Migrated => "migrated",
            Reason::Multiplexed => "multiplexed",
            Reason::ContextSwitched => "context_switched",
        }
    }
}

/// Statistics of one counter over the used calls of one function. When
/// the analysis is calibrated ([`Analysis::calibration`]), every value but
/// the `raw_*` ones is calibrated: the probes' cost is taken out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterStats {
    /// The counter's name as in the trace header.
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Sum of the inclusive deltas.
    pub sum: f64,
    /// Mean inclusive delta.
    pub mean: f64,
    /// Sample standard deviation of the inclusive delta (0 for one call).
    pub stddev: f64,
    /// Smallest inclusive delta.
    pub min: f64,
    /// Median inclusive delta.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest inclusive delta.
    pub max: f64,
    /// Sum of the self deltas (inclusive minus the inclusive deltas of the
    /// direct probed children).
    pub self_sum: f64,
    /// Mean self delta.
    pub self_mean: f64,
    /// Whether the percentiles are exact (false: from an HDR histogram,
    /// see [`crate::analysis::PERCENTILE_RELATIVE_ERROR`]).
    pub exact: bool,
    /// Sum of the raw (uncalibrated) inclusive deltas; `sum` when not
    /// calibrated.
    pub raw_sum: f64,
    /// Mean raw inclusive delta; `mean` when not calibrated.
    pub raw_mean: f64,
    /// Median raw inclusive delta (same rule and exactness as `p50`);
    /// `p50` when not calibrated.
    pub raw_p50: f64,
    /// Whether the calibrated median cannot be told apart from 0, by
    /// [`perfunc_calibrate::within_noise`] against the baseline of the
    /// function's instruction class, with the median's confidence interval
    /// when the values are exact. `None` when not calibrated, without used
    /// calls, or when the profile has no baseline for the class and counter.
    pub within_noise: Option<bool>,
    /// Across the runs of a `record --repeat` trace: each run's median
    /// and their spread. `None` for a trace of one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<RunSpread>,
}

/// One counter of one function across the runs of a trace
/// (`record --repeat`): what varies from run to run, which the calls of
/// one run cannot tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpread {
    /// The median per call of each run that called the function, in run
    /// order (calibrated when the analysis is).
    pub medians: Vec<f64>,
    /// The median of `medians`.
    pub median: f64,
    /// The sample standard deviation of `medians` (0 for one run).
    pub stddev: f64,
}

impl RunSpread {
    /// The spread of `medians`; `None` without any.
    pub fn of(medians: Vec<f64>) -> Option<RunSpread> {
        if medians.is_empty() {
            return None;
        }
        let mut sorted = medians.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev = if n < 2 {
            0.0
        } else {
            (sorted.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Some(RunSpread {
            medians,
            median,
            stddev,
        })
    }

    /// `stddev` relative to `median` (0.031 for ±3.1 %); `None` when the
    /// median is 0.
    pub fn relative(&self) -> Option<f64> {
        (self.median != 0.0).then(|| self.stddev / self.median.abs())
    }
}

/// Statistics of one probed function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionStats {
    /// Probe id in the trace header.
    pub probe: u32,
    /// Demangled name, as the user matched it.
    pub name: String,
    /// The binary it is in.
    pub binary: String,
    /// Calls seen: complete calls plus calls that could not be paired.
    pub calls: u64,
    /// Calls in the statistics.
    pub used: u64,
    /// Calls left out, by reason (only reasons with a count).
    pub discarded: BTreeMap<Reason, u64>,
    /// Calls kept but flagged (only without `--strict`), by flag.
    pub flagged: BTreeMap<Reason, u64>,
    /// One entry per counter, in the trace header's order.
    pub counters: Vec<CounterStats>,
    /// Where the function is in its source (`file:line`), when asked for
    /// (`perfunc report --lines`) and the binary has line tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The caller chains of the used calls (traces recorded with
    /// `--callchain`), most calls first; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<CallerStats>,
}

/// The used calls of a function that came through one caller chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerStats {
    /// The callers, outermost first (the direct caller last).
    pub stack: Vec<String>,
    /// Used calls through this chain.
    pub calls: u64,
    /// Sum of their inclusive deltas per counter (calibrated when the
    /// analysis is).
    pub sum: Vec<f64>,
}

/// One node of the call tree: a probed function under a path of probed
/// callers within a thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallPath {
    /// The thread, when the analysis keeps one tree per thread
    /// ([`crate::analysis::AnalysisOptions::tree_per_thread`]); `None` for
    /// the tree merged across threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    /// Probe ids from the outermost probed caller to this function.
    pub path: Vec<u32>,
    /// Used calls along this path.
    pub calls: u64,
    /// Sum of inclusive deltas per counter (calibrated when the analysis
    /// is).
    pub inclusive: Vec<f64>,
    /// Sum of self deltas per counter (from calibrated values when the
    /// analysis is calibrated).
    pub self_: Vec<f64>,
    /// Sum of raw inclusive deltas per counter; `inclusive` when not
    /// calibrated.
    pub raw_inclusive: Vec<f64>,
}

/// What the trace says about itself, for the report header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// The recorded command line (or `pid N`).
    pub command: String,
    /// The counters.
    pub counters: Vec<CounterSpec>,
    /// Recording time in ns; for a trace without a footer (a killed
    /// recording), from its first sample to its last.
    pub duration_ns: u64,
    /// Sample records read.
    pub records: u64,
    /// Records the kernel dropped.
    pub lost: u64,
    /// Threads that hit a probe.
    pub threads: u64,
    /// Runs of the command (`record --repeat`); 1 for a recording without.
    pub runs: u32,
    /// With two or more runs: the time each run's command took, from its
    /// release to its exit (runs whose exit is not in the trace left out),
    /// and their spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_time: Option<RunSpread>,
    /// Whether the trace ended with its footer.
    pub complete: bool,
    /// Bytes lost at the end of an incomplete trace.
    pub bytes_lost: u64,
    /// With `--salvage`: the damaged byte ranges skipped, in file order
    /// (the whole chunks around them were analyzed).
    pub damaged: Vec<Damage>,
    /// Whether the trace header holds a calibration profile (used or not).
    pub has_profile: bool,
    /// Whether the recording was system-wide (`-a`): per-CPU counters,
    /// flagged calls left out by default.
    pub system_wide: bool,
}

/// How the values of a calibrated analysis were compensated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationInfo {
    /// The baseline statistic subtracted (`median`, `trimmed` or `mean`).
    pub statistic: Statistic,
    /// What the profile was measured for: kernel release, CPU model,
    /// counters and probe mechanism.
    pub profile: ProfileKey,
    /// Rounds of the calibration.
    pub rounds: u32,
    /// Calls of each calibration target per round.
    pub calls_per_round: u64,
    /// Where the profile was measured: in the recorded command's process
    /// just before it started (`in-run`), or by `perfunc calibrate` and
    /// cached (`calibrate`).
    pub source: Source,
    /// Seconds from the profile's measurement to the recording's start
    /// (0 for an in-run profile; negative if the clock went back).
    pub age_s: i64,
    /// The 1-minute load average when the profile was measured, if known.
    pub loadavg: Option<f64>,
    /// The classes measured in the run (empty for a cached profile).
    pub in_run_classes: Vec<String>,
    /// The classes taken from a cached profile: all of a cached one's, or
    /// those an in-run profile could not measure (system calls, kernel
    /// functions).
    pub cached_classes: Vec<String>,
    /// Seconds from the measurement of those cached baselines to the
    /// recording's start, if any were used.
    pub cached_age_s: Option<i64>,
    /// Per counter, the smallest and largest MAD of the profile's
    /// baselines: the noise a calibrated median is judged against.
    pub noise: Vec<BaselineNoise>,
}

/// The noise of a profile's baselines of one counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineNoise {
    /// The counter.
    pub counter: String,
    /// The smallest MAD of its baselines.
    pub min_mad: f64,
    /// The largest.
    pub max_mad: f64,
}

/// What is wrong with a call that breaks an invariant of counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A counter's raw delta (return minus entry) is negative: counters
    /// only count up.
    NegativeDelta,
    /// A counter's raw delta is below the sum of the raw deltas of the
    /// probed calls made inside the call: their intervals are inside its.
    BelowChildren,
}

/// One call that broke an invariant, as an example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// What it broke.
    pub kind: ViolationKind,
    /// The probed function.
    pub function: String,
    /// The thread.
    pub tid: u32,
    /// Entry time, ns on the trace's clock.
    pub start: u64,
    /// The counter.
    pub counter: String,
    /// The call's raw delta of that counter.
    pub delta: i64,
    /// The sum of its probed children's raw deltas (0 for
    /// [`ViolationKind::NegativeDelta`] without children).
    pub children: i64,
}

/// Calls whose raw values break what counting guarantees: within one
/// counter instance a count never goes down, and a call's count covers its
/// children's. Such a call is a bug (of perfunc or of the kernel), never
/// noise; calls that read two counter instances (migrated with per-CPU
/// counters) or lost records are not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Violations {
    /// Calls with a negative raw delta.
    pub negative_delta: u64,
    /// Calls with a raw delta below their children's.
    pub below_children: u64,
    /// The earliest such call.
    pub first: Option<Violation>,
}

impl Violations {
    /// Whether no call broke an invariant.
    pub fn is_empty(&self) -> bool {
        self.negative_delta == 0 && self.below_children == 0
    }

    /// Calls that broke an invariant.
    pub fn calls(&self) -> u64 {
        self.negative_delta + self.below_children
    }
}

impl std::fmt::Display for Violations {
    /// One line: how many calls broke which invariant, and the first.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.calls();
        write!(
            f,
            "BUG: {n} call{} broke an invariant of counting ({} with a negative raw delta, \
             {} below the sum of their probed children's)",
            if n == 1 { "" } else { "s" },
            self.negative_delta,
            self.below_children
        )?;
        if let Some(v) = &self.first {
            write!(
                f,
                "; the first: {} (tid {}, entry at {} ns): {} {}",
                v.function, v.tid, v.start, v.counter, v.delta
            )?;
            if v.kind == ViolationKind::BelowChildren {
                write!(f, ", its children {}", v.children)?;
            }
        }
        write!(
            f,
            "; these values cannot be trusted: please report it, with the trace"
        )
    }
}

/// The analysis of one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// About the trace.
    pub trace: TraceSummary,
    /// One entry per probed function with at least one call, in probe order.
    pub functions: Vec<FunctionStats>,
    /// The call tree, sorted by thread (when kept per thread) and path.
    pub tree: Vec<CallPath>,
    /// Calls left out of the statistics across all functions, by reason.
    pub discarded: BTreeMap<Reason, u64>,
    /// Whether flagged calls were left out (`--strict`).
    pub strict: bool,
    /// `Some` when the probes' cost was taken out of the values.
    pub calibration: Option<CalibrationInfo>,
    /// Calls that broke an invariant of counting (none, unless perfunc or
    /// the kernel has a bug); absent from JSON when there are none.
    #[serde(skip_serializing_if = "Violations::is_empty")]
    pub violations: Violations,
}
