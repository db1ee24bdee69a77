//! The command line: clap definitions, and the commands built on the
//! library. Flags are turned into the library's own option types here, so
//! the rest of perfunc never sees clap.

mod calibrate;
mod demo;
mod diff;
mod flamegraph;
mod kernel;
mod list;
mod record;
mod report;
mod script;
mod units;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

/// Exit status for a usage error (bad flags), as clap uses.
pub const EXIT_USAGE: i32 = 2;

/// perfunc: what each function costs in hardware terms, call by call.
#[derive(Debug, Parser)]
#[command(name = "perfunc", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record per-call counter values at the entry and return of functions.
    Record(RecordArgs),
    /// List functions of a binary that can be probed, or the counters that
    /// open on this machine.
    List(ListArgs),
    /// Per-function statistics of a trace: calls, inclusive and self costs, spread
    ///
    /// For each probed function: its calls, and per counter the sum, the
    /// self part (without its probed children), mean, SD, P50/P90/P99 and
    /// max over its calls, less what the probes themselves cost when the
    /// trace holds a calibration profile (--baseline off for raw values).
    /// ≈ marks a median that cannot be told apart from 0. Each format is
    /// documented in docs/report-format.md.
    ///
    /// Examples:
    ///
    ///   perfunc report -i app.perfunc                              # table, by the first counter's sum
    ///   perfunc report -i app.perfunc --sort page-faults --self --top 10
    ///   perfunc report -i app.perfunc --function 'parse_*' --tid 1234 --lines
    ///   perfunc report -i app.perfunc --format json > report.json   # or csv
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Print a trace, one line per record.
    Script(ScriptArgs),
    /// Draw the probed call tree as a flamegraph weighted by a counter
    ///
    /// Each frame is a probed function under its probed callers (and, with
    /// call chains in the trace, under the unprobed callers that led to
    /// it). A frame's width is the sum of the counter over its calls,
    /// calibrated when the trace holds a calibration profile; the part
    /// not covered by the frames above it is the function's self cost.
    /// Hovering a frame shows the function's calls, total and mean per
    /// call, over all its call paths.
    ///
    /// Examples:
    ///
    ///   perfunc flamegraph -i app.perfunc                          # flamegraph.svg by the first counter
    ///   perfunc flamegraph -i app.perfunc --counter LLC-load-misses -o misses.svg
    ///   perfunc flamegraph -i app.perfunc --per-thread --folded app.folded
    #[command(verbatim_doc_comment)]
    Flamegraph(FlamegraphArgs),
    /// Compare two traces function by function: changes of the median with confidence intervals, significance tests and verdicts
    ///
    /// Each function and counter the two traces share gets its change from
    /// base to new, with its interval, the test behind it and a verdict.
    /// Times need several runs a side (record --repeat); docs/diff.md says
    /// which test each counter gets and how many runs a verdict needs.
    ///
    /// Examples:
    ///
    ///   perfunc diff base.perfunc new.perfunc                      # table
    ///   perfunc diff base.perfunc new.perfunc --counter LLC-load-misses --threshold 2
    ///   perfunc diff base.perfunc new.perfunc --fail-on-regression 5   # exit 3 on a regression (CI)
    ///   perfunc diff base.perfunc new.perfunc --flamegraph diff.svg
    #[command(verbatim_doc_comment)]
    Diff(DiffArgs),
    /// Measure what the probes cost on this machine, per class of probed
    /// instruction, and cache the profile recordings use.
    Calibrate(CalibrateArgs),
    /// Record a workload built into perfunc and print its report.
    Demo(DemoArgs),
    /// The demo's workload (run by `perfunc demo` in a child process).
    #[command(hide = true, name = "__workload")]
    Workload {
        /// Calls of the outer demo function.
        #[arg(default_value_t = 200)]
        iterations: u32,
    },
    /// The calibration workload (run by `perfunc calibrate`).
    #[command(hide = true, name = "__calibrate-workload")]
    CalibrateWorkload {
        /// Calls of each calibration target per round.
        calls: u64,
        /// Rounds, each in a child process of its own.
        #[arg(default_value_t = 1)]
        rounds: u32,
    },
}

/// `perfunc record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Counters to read at every entry and return, comma-separated (perf's
    /// names: LLC-load-misses, task-clock, page-faults, rNNNN, pmu/event/...).
    /// Default: LLC-load-misses,LLC-store-misses,LLC-prefetch-misses, or
    /// task-clock,page-faults,context-switches where there is no CPU PMU.
    #[arg(short = 'e', long = "event", value_name = "COUNTERS")]
    events: Vec<String>,

    /// Functions to probe: a glob over demangled or raw names, or
    /// LIB:PATTERN for a shared library the program loads
    /// (e.g. 'parse_*', 'mycrate::*', 'libc.so.6:malloc').
    #[arg(short = 'f', long = "function", value_name = "PATTERN")]
    functions: Vec<String>,

    /// Kernel code to probe: `syscall:NAME` (a system call, from its
    /// sys_enter/sys_exit tracepoints), `tp:SUBSYSTEM:BEGIN/END[:KEY]` (a
    /// pair of tracepoints, e.g. tp:irq:softirq_entry/softirq_exit:vec,
    /// optionally matched by a field), or a kernel function glob (kprobes,
    /// e.g. 'vfs_read', 'ext4_*').
    #[arg(short = 'k', long = "kernel", value_name = "SPEC")]
    kernel: Vec<String>,

    /// Record every task on every CPU (one event per CPU), while the
    /// command runs, or until --duration or Ctrl-C. Calls that migrate or
    /// are switched out are left out of reports (their counts are shown).
    #[arg(short = 'a', long = "all-cpus", conflicts_with = "pid")]
    all_cpus: bool,

    /// The trace file to write.
    #[arg(
        short = 'o',
        long,
        value_name = "FILE",
        default_value = "perfunc.trace"
    )]
    output: PathBuf,

    /// Attach to this running process (and all its threads) instead of
    /// starting a command.
    #[arg(short = 'p', long, value_name = "PID", conflicts_with = "command")]
    pid: Option<i32>,

    /// Stop after this long (e.g. 10, 2.5s, 500ms, 1m). A command perfunc
    /// started then gets SIGTERM.
    #[arg(long, value_name = "TIME", value_parser = units::parse_duration)]
    duration: Option<std::time::Duration>,

    /// Run the command N times, one after the other, under the same
    /// probes (like `perf stat -r`), into one trace whose every call
    /// carries its run: reports then give each function's median per run
    /// and their spread, and the command's time per run. --duration
    /// bounds all runs together. Stops repeating when a run fails or on
    /// Ctrl-C.
    #[arg(
        short = 'r',
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with_all = ["pid", "all_cpus"]
    )]
    repeat: u32,

    /// Ring buffer per CPU with --follow inherit and -a, per thread with
    /// --follow per-thread, where each task after the first gets at most
    /// 4M (e.g. 32M, 256K); a power of two is used.
    #[arg(short = 'm', long, value_name = "SIZE", default_value = "32M", value_parser = units::parse_size)]
    buffer_size: usize,

    /// No progress line and no summary.
    #[arg(short, long)]
    quiet: bool,

    /// Probe costs to store with the trace for `perfunc report` to
    /// subtract: `auto` (measured in the command's own process just before
    /// it starts; with -p, -a or kernel probes, the cached profile for this
    /// machine and counters, measured once when missing), `cached` (that
    /// profile only), `off`, or a profile file.
    #[arg(long, value_name = "auto|cached|off|FILE", default_value = "auto")]
    calibration: calibrate::CalibrationMode,

    /// Record each probed call's callers: `fp` (the kernel walks frame
    /// pointers) or `dwarf` (a copy of the user stack, unwound with the
    /// binaries' CFI: works without frame pointers).
    #[arg(long, value_name = "fp|dwarf", value_parser = parse_callchain_mode)]
    callchain: Option<CallchainMode>,

    /// Bytes of user stack copied at each entry with --callchain dwarf.
    #[arg(long, value_name = "SIZE", default_value = "8K", value_parser = parse_stack_size)]
    stack_size: u32,

    /// How the threads and processes the target creates are followed:
    /// `inherit` (counter groups per CPU, inherited by every new task:
    /// Linux 6.12 and later), `per-thread` (groups per task, each new task
    /// held at birth until its groups are open: every kernel; counters
    /// follow a task across CPUs, exactly), or `auto` (per-thread, unless
    /// ptrace is disabled). See docs/kernel.md.
    #[arg(
        long,
        value_name = "auto|inherit|per-thread",
        value_enum,
        default_value = "auto"
    )]
    follow: FollowMode,

    /// Probe a leading `endbr64` itself instead of the instruction after it
    /// (stepping over it is cheaper; see docs/calibration.md).
    #[arg(long)]
    no_endbr64_skip: bool,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// `perfunc list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the known counters and whether each opens on this machine.
    #[arg(long, conflicts_with_all = ["binary", "patterns"])]
    events: bool,

    /// List kernel functions (from /proc/kallsyms) matching the patterns;
    /// with --tracepoints, tracepoints (SUBSYSTEM:EVENT) instead, and with
    /// --syscalls, the system calls `-k syscall:NAME` can probe.
    #[arg(long, conflicts_with = "events")]
    kernel: bool,

    /// With --kernel: list tracepoints.
    #[arg(long, requires = "kernel", conflicts_with = "syscalls")]
    tracepoints: bool,

    /// With --kernel: list system calls.
    #[arg(long, requires = "kernel")]
    syscalls: bool,

    /// The ELF binary whose functions to list.
    #[arg(required_unless_present_any = ["events", "kernel"])]
    binary: Option<PathBuf>,

    /// Globs (or LIB:PATTERN) to filter functions; all functions by default.
    patterns: Vec<String>,
}

/// `perfunc script`.
#[derive(Debug, Args)]
pub struct ScriptArgs {
    /// The trace to print.
    #[arg(short, long, value_name = "FILE", default_value = "perfunc.trace")]
    input: PathBuf,

    /// Read a damaged trace instead of failing: skip each damaged chunk,
    /// go on at the next whole one, and list the damaged byte ranges on
    /// stderr.
    #[arg(long)]
    salvage: bool,
}

/// `perfunc report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The trace to analyze.
    #[arg(short, long, value_name = "FILE", default_value = "perfunc.trace")]
    input: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Sort by this counter's sum (default: the first counter).
    #[arg(long, value_name = "COUNTER")]
    sort: Option<String>,

    /// Sort by self cost (without the probed children) instead of inclusive.
    #[arg(long = "self")]
    by_self: bool,

    /// Show only the first N functions (N at least 1).
    #[arg(long, value_name = "N", value_parser = parse_top)]
    top: Option<usize>,

    /// Only this thread's calls. A thread that hit no probe is an error
    /// that lists the threads that did.
    #[arg(long, value_name = "TID")]
    tid: Option<u32>,

    /// Only functions matching this glob (repeatable). Patterns that match
    /// none of the trace's probed functions are an error that names the
    /// closest ones; patterns whose functions were never called (in the
    /// --tid thread) an error that names the functions that were.
    #[arg(long = "function", value_name = "PATTERN")]
    functions: Vec<String>,

    /// Show where each probed function is in its source (file:line), from
    /// the binaries' line tables.
    #[arg(long)]
    lines: bool,

    /// Read a damaged trace instead of failing: skip each damaged chunk,
    /// go on at the next whole one, and list the damaged byte ranges.
    #[arg(long)]
    salvage: bool,

    #[command(flatten)]
    analysis: AnalysisArgs,
}

/// How `report`, `flamegraph` and `diff` analyze a trace.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Leave flagged calls (migrated, multiplexed, context-switched) out of
    /// the statistics.
    #[arg(long)]
    strict: bool,

    /// Keep the flagged calls of a system-wide (-a) trace, which are left
    /// out by default.
    #[arg(long, conflicts_with = "strict")]
    keep_flagged: bool,

    /// The probe-cost statistic subtracted from each call (from the
    /// calibration profile stored in the trace), or `off` for raw values.
    #[arg(long, value_name = "median|trimmed|mean|off", default_value = "median", value_parser = parse_baseline)]
    baseline: Baseline,

    /// Worker threads for pairing and aggregation (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

impl AnalysisArgs {
    /// The analysis options these flags ask for.
    fn options(&self) -> crate::analysis::AnalysisOptions {
        crate::analysis::AnalysisOptions {
            strict: self.strict,
            keep_flagged: self.keep_flagged,
            threads: self.threads,
            baseline: self.baseline.0,
            ..crate::analysis::AnalysisOptions::default()
        }
    }
}

/// `perfunc flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// The trace to draw.
    #[arg(short, long, value_name = "FILE", default_value = "perfunc.trace")]
    input: PathBuf,

    /// The counter that weighs the frames (default: the first).
    #[arg(long, value_name = "NAME")]
    counter: Option<String>,

    /// The SVG to write (default: flamegraph.svg, unless only --folded is
    /// given).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Also write the folded stacks (`a;b;c VALUE` per line) here.
    #[arg(long, value_name = "FILE")]
    folded: Option<PathBuf>,

    /// Only this thread's calls. A thread that hit no probe is an error
    /// that lists the threads that did.
    #[arg(long, value_name = "TID", conflicts_with = "per_thread")]
    tid: Option<u32>,

    /// One tower per thread, under a `tid N` frame.
    #[arg(long)]
    per_thread: bool,

    /// With call chains in the trace (record --callchain): show inlined
    /// functions as frames of their own.
    #[arg(long)]
    inline: bool,

    /// Read a damaged trace instead of failing: skip each damaged chunk,
    /// go on at the next whole one, and list the damaged byte ranges on
    /// stderr.
    #[arg(long)]
    salvage: bool,

    #[command(flatten)]
    analysis: AnalysisArgs,
}

/// `perfunc diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The trace of the base run.
    base: PathBuf,

    /// The trace of the new run.
    new: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Compare only this counter (default: every counter both traces have).
    #[arg(long, value_name = "NAME")]
    counter: Option<String>,

    /// Significance level, after the Benjamini–Hochberg correction over
    /// all function × counter tests.
    #[arg(long, value_name = "ALPHA", default_value_t = 0.05, value_parser = parse_alpha)]
    alpha: f64,

    /// Smallest change of the median, in percent, that counts as a
    /// regression or an improvement.
    #[arg(long, value_name = "PCT", default_value_t = 1.0, value_parser = parse_percent)]
    threshold: f64,

    /// Exit with status 3 when a significant regression of at least PCT
    /// percent is found (for CI gates).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    fail_on_regression: Option<f64>,

    /// Also draw a differential flamegraph here: widths from the new run,
    /// red where a frame's cost grew, blue where it shrank (--counter, or
    /// the first shared counter).
    #[arg(long, value_name = "FILE")]
    flamegraph: Option<PathBuf>,

    /// Scale the base run's flamegraph to the new run's total first.
    #[arg(long, requires = "flamegraph")]
    normalize: bool,

    #[command(flatten)]
    analysis: AnalysisArgs,
}

/// `--follow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FollowMode {
    /// `per-thread`, unless ptrace is disabled; then `inherit`.
    Auto,
    /// Per-CPU groups inherited by new tasks.
    Inherit,
    /// Per-task groups, new tasks held at birth.
    PerThread,
}

/// `--callchain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallchainMode {
    /// Frame pointers.
    Fp,
    /// Stack copies unwound with CFI.
    Dwarf,
}

fn parse_callchain_mode(text: &str) -> Result<CallchainMode, String> {
    match text {
        "fp" => Ok(CallchainMode::Fp),
        "dwarf" => Ok(CallchainMode::Dwarf),
        _ => Err(format!(
            "`{text}`: give fp (frame pointers) or dwarf (stack copies)"
        )),
    }
}

fn parse_stack_size(text: &str) -> Result<u32, String> {
    let bytes = units::parse_size(text)?;
    let max = crate::trace::MAX_USER_STACK & !7;
    if bytes == 0 || bytes > max {
        return Err(format!("the stack copy must be 8 to {max} bytes"));
    }
    Ok((bytes as u32 + 7) & !7)
}

fn parse_top(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of functions to show (1 or more; without --top, all)"
        )),
    }
}

fn parse_alpha(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(a) if a > 0.0 && a < 1.0 => Ok(a),
        _ => Err(format!(
            "`{text}` is not a significance level between 0 and 1 (e.g. 0.05)"
        )),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p >= 0.0 && p.is_finite() => Ok(p),
        _ => Err(format!("`{text}` is not a percentage (e.g. 1 or 2.5)")),
    }
}

/// `perfunc calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Counters to calibrate (default as for `record`); a profile holds
    /// one counter set.
    #[arg(short = 'e', long = "event", value_name = "COUNTERS")]
    events: Vec<String>,

    /// Calls of each target per round.
    #[arg(long, value_name = "N", default_value_t = calibrate::DEFAULT_CALLS)]
    calls: u64,

    /// Rounds, each in a fresh process.
    #[arg(long, value_name = "N", default_value_t = calibrate::DEFAULT_ROUNDS)]
    rounds: u32,

    /// Write the profile here instead of the cache.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `perfunc demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Counters to read (default as for `record`).
    #[arg(short = 'e', long = "event", value_name = "COUNTERS")]
    events: Vec<String>,

    /// Keep the trace in this file instead of a temporary one.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `--baseline`: a statistic, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline(Option<perfunc_calibrate::Statistic>);

fn parse_baseline(text: &str) -> Result<Baseline, String> {
    match text {
        "off" => Ok(Baseline(None)),
        other => other
            .parse()
            .map(|s| Baseline(Some(s)))
            .map_err(|e: perfunc_calibrate::CalibrationError| e.to_string()),
    }
}

/// Parses `args` and runs the command. Returns the process exit status.
pub fn run<I, T>(args: I) -> anyhow::Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(message) = forgotten_dashes(&args, &e) {
                eprint!("{message}");
                return Ok(EXIT_USAGE);
            }
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return Ok(code);
        }
    };
    match cli.command {
        Command::Record(args) if args.functions.is_empty() && args.kernel.is_empty() => {
            eprint!("{NOTHING_TO_PROBE}");
            Ok(EXIT_USAGE)
        }
        Command::Record(args) => record::run(&args),
        Command::List(args) => list::run(&args).map(|()| 0),
        Command::Report(args) => report::run(&args).map(|()| 0),
        Command::Script(args) => script::run(&args).map(|()| 0),
        Command::Flamegraph(args) => flamegraph::run(&args).map(|()| 0),
        Command::Diff(args) => diff::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Workload { iterations } => {
            crate::demo::workload(iterations);
            Ok(0)
        }
        Command::CalibrateWorkload { calls, rounds } => calibrate::workload(calls, rounds),
    }
}

/// The usage error of a `record` with neither `-f` nor `-k`.
const NOTHING_TO_PROBE: &str = "error: nothing to probe: give -f for functions of a program or \
library, -k for kernel code, or both, e.g.

  perfunc record -f 'parse_*' -f 'libc.so.6:malloc' -- ./app
  perfunc record -k vfs_read -k syscall:openat -- cat /etc/hostname

For more information, try 'perfunc record --help'.
";

/// `perfunc record -f outer ./mem`: a word clap did not expect, where
/// putting `--` before it makes a command line that parses. Returns the
/// error to print instead of clap's, with the corrected line.
fn forgotten_dashes(args: &[OsString], error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument
        || args.get(1).is_none_or(|a| a != "record")
        || args.iter().any(|a| a == "--")
    {
        return None;
    }
    let Some(ContextValue::String(word)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    if word.starts_with('-') {
        return None;
    }
    let fixed = (2..args.len())
        .filter(|&i| args[i] == word.as_str())
        .map(|i| {
            let mut fixed = args[..i].to_vec();
            fixed.push("--".into());
            fixed.extend_from_slice(&args[i..]);
            fixed
        })
        .find(|fixed| match Cli::try_parse_from(fixed) {
            Ok(Cli {
                command: Command::Record(r),
            }) => !r.functions.is_empty() || !r.kernel.is_empty(),
            _ => false,
        })?;
    let line: Vec<String> = std::iter::once("perfunc".to_owned())
        .chain(fixed[1..].iter().map(|a| shell_quote(&a.to_string_lossy())))
        .collect();
    Some(format!(
        "error: unexpected argument '{word}' found: the command to record goes after `--`:\n\n  \
         {}\n\nFor more information, try 'perfunc record --help'.\n",
        line.join(" ")
    ))
}

/// `word` as a shell reads it back: bare when that is safe, else quoted.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The analysis commands all have a long `--help` beside the short
    /// `-h`, so that each says more than its one-line options.
    #[test]
    fn analysis_commands_have_long_help() {
        let mut cli = Cli::command();
        for name in ["report", "diff", "flamegraph"] {
            let command = cli.find_subcommand_mut(name).unwrap();
            let long = command.render_long_help().to_string();
            let short = command.render_help().to_string();
            assert!(
                long.contains("Print help (see a summary with '-h')"),
                "{name}: {long}"
            );
            assert!(long.len() > short.len() + 200, "{name}: {long}");
        }
        let flamegraph = cli.find_subcommand_mut("flamegraph").unwrap();
        let long = flamegraph.render_long_help().to_string();
        assert!(long.contains("Examples:"), "{long}");
    }

    /// `report`, `diff` and `flamegraph --help` are laid out alike: the
    /// one-line summary, a paragraph, examples that parse, then each
    /// option with its help on lines of its own.
    #[test]
    fn analysis_help_has_a_summary_examples_that_parse_and_long_options() {
        for name in ["report", "diff", "flamegraph"] {
            let mut cli = Cli::command();
            let command = cli.find_subcommand_mut(name).unwrap();
            let long = command.render_long_help().to_string();
            let short = command.render_help().to_string();
            let summary = short.lines().next().unwrap();
            assert!(
                long.starts_with(&format!("{summary}\n\n")),
                "{name}: {long}"
            );
            let (before, options) = long.split_once("\nOptions:\n").unwrap();
            let (_, examples) = before.split_once("\nExamples:\n\n").expect(&long);
            let examples: Vec<&str> = examples
                .lines()
                .take_while(|l| l.starts_with("  perfunc "))
                .collect();
            assert!(examples.len() >= 3, "{name}: {long}");
            for example in examples {
                // Up to a comment or a redirection; single quotes only.
                let line = example.split(" #").next().unwrap();
                let line = line.split(" > ").next().unwrap();
                let argv: Vec<&str> = line
                    .split_whitespace()
                    .map(|w| w.trim_matches('\''))
                    .collect();
                assert_eq!(argv[1], name, "{example}");
                if let Err(err) = Cli::try_parse_from(&argv) {
                    panic!("{name}: the example {example:?} does not parse: {err}");
                }
            }
            // Each option's help on its own line under it, not beside it.
            assert!(
                options.contains("  -h, --help\n          Print help (see a summary with '-h')\n"),
                "{name}: {options}"
            );
        }
    }

    #[test]
    fn record_takes_a_command_after_dashes() {
        let cli = Cli::try_parse_from([
            "perfunc",
            "record",
            "-e",
            "task-clock",
            "-f",
            "f*",
            "-f",
            "g",
            "--",
            "./app",
            "-x",
        ])
        .unwrap();
        let Command::Record(args) = cli.command else {
            panic!("not record")
        };
        assert_eq!(args.functions, ["f*", "g"]);
        assert_eq!(
            args.command,
            [OsString::from("./app"), OsString::from("-x")]
        );
        assert_eq!(args.buffer_size, 32 << 20);
    }

    #[test]
    fn pid_and_command_conflict() {
        let err = Cli::try_parse_from(["perfunc", "record", "-f", "f", "-p", "1", "--", "ls"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    fn dashes_hint(args: &[&str]) -> Option<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let error = Cli::try_parse_from(&args).unwrap_err();
        forgotten_dashes(&args, &error)
    }

    #[test]
    fn a_command_without_dashes_gets_the_corrected_line() {
        assert_eq!(
            dashes_hint(&["perfunc", "record", "-f", "outer", "./mem", "-x", "it's"]).unwrap(),
            "error: unexpected argument './mem' found: the command to record goes after `--`:\n\n  \
             perfunc record -f outer -- ./mem -x 'it'\\''s'\n\n\
             For more information, try 'perfunc record --help'.\n"
        );
        // The first `outer` is the value of -f: `--` goes before the second.
        assert_eq!(
            dashes_hint(&[
                "perfunc",
                "record",
                "-e",
                "task-clock",
                "-f",
                "p*",
                "p*",
                "1"
            ])
            .unwrap()
            .lines()
            .nth(2),
            Some("  perfunc record -e task-clock -f 'p*' -- 'p*' 1")
        );
        // Not for options, nor for other commands, nor when `--` is there.
        assert_eq!(
            dashes_hint(&["perfunc", "record", "-f", "x", "--nope"]),
            None
        );
        assert_eq!(dashes_hint(&["perfunc", "script", "x"]), None);
        assert_eq!(
            dashes_hint(&["perfunc", "record", "-f", "x", "-p", "1", "./mem", "--", "y"]),
            None
        );
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run(["perfunc", "record"]).unwrap(), EXIT_USAGE);
        assert_eq!(
            run(["perfunc", "record", "-f", "outer", "./mem"]).unwrap(),
            EXIT_USAGE
        );
        assert_eq!(run(["perfunc", "--version"]).unwrap(), 0);
    }

    #[test]
    fn neither_functions_nor_kernel_code_is_a_usage_error_with_examples() {
        assert_eq!(
            run(["perfunc", "record", "--", "./app"]).unwrap(),
            EXIT_USAGE
        );
        // Each example parses, and -k alone is enough.
        for example in NOTHING_TO_PROBE
            .lines()
            .filter(|l| l.starts_with("  perfunc"))
        {
            let words: Vec<String> = example
                .split_whitespace()
                .map(|w| w.trim_matches('\'').to_owned())
                .collect();
            let cli = Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{example}: {e}"));
            let Command::Record(r) = cli.command else {
                panic!("{example}")
            };
            assert!(!r.functions.is_empty() || !r.kernel.is_empty(), "{example}");
        }
        assert!(Cli::try_parse_from(["perfunc", "record", "-k", "vfs_read", "--", "true"]).is_ok());
        // A forgotten `--` with nothing to probe gets this error, not a
        // corrected line that would fail the same way.
        assert_eq!(dashes_hint(&["perfunc", "record", "./app"]), None);
    }
}
