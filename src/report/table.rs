//! The table: aligned, human units, fits a 100-column terminal.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::human::format_value;
use super::ReportWriter;
use crate::analysis::{Analysis, CalibrationInfo, CounterStats, FunctionStats, Reason, RunSpread};
use crate::events::Unit;
use perfunc_calibrate::Source;

/// The table writer.
pub struct Table;

const COLUMNS: [&str; 8] = ["SUM", "SELF", "MEAN", "SD", "P50", "P90", "P99", "MAX"];
const LABEL: usize = 21;
const WIDTH: usize = 9;

fn reasons(map: &BTreeMap<Reason, u64>) -> String {
    map.iter()
        .map(|(r, n)| format!("{} {n}", r.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn calls(n: u64) -> String {
    format!("{n} call{}", if n == 1 { "" } else { "s" })
}

fn write_header(a: &Analysis, out: &mut dyn Write) -> io::Result<()> {
    let t = &a.trace;
    writeln!(out, "perfunc report: {}", t.command)?;
    let counters: Vec<String> = t
        .counters
        .iter()
        .map(|c| match c.unit {
            Unit::Nanoseconds => format!("{} (ns)", c.name),
            Unit::Count => c.name.clone(),
        })
        .collect();
    writeln!(
        out,
        "counters: {} | {}{} | {} record{}, {} lost | {} thread{}",
        counters.join(", "),
        if t.complete { "" } else { "at least " },
        format_value(t.duration_ns as f64, Unit::Nanoseconds),
        t.records,
        if t.records == 1 { "" } else { "s" },
        t.lost,
        t.threads,
        if t.threads == 1 { "" } else { "s" }
    )?;
    writeln!(out, "{}", calibration_line(a))?;
    if let Some(time) = &t.run_time {
        writeln!(
            out,
            "{} runs: {} per run (median), {} run to run; RUNS: the median of the runs' medians",
            t.runs,
            format_value(time.median, Unit::Nanoseconds),
            spread(time, Unit::Nanoseconds),
        )?;
    }
    if !a.violations.is_empty() {
        writeln!(out, "{}", a.violations)?;
    }
    if !t.damaged.is_empty() {
        let bytes: u64 = t.damaged.iter().map(|d| d.end - d.start).sum();
        writeln!(
            out,
            "salvaged: the trace is damaged in {} range{} ({bytes} bytes skipped); \
             this reports the whole chunks around them",
            t.damaged.len(),
            if t.damaged.len() == 1 { "" } else { "s" }
        )?;
        for damage in &t.damaged {
            writeln!(out, "  damaged {damage}")?;
        }
    }
    if t.damaged.is_empty() && !t.complete {
        writeln!(
            out,
            "incomplete trace: the recording did not finish; {} bytes lost at its end",
            t.bytes_lost
        )?;
    }
    let discarded: u64 = a.discarded.values().sum();
    if discarded > 0 {
        writeln!(
            out,
            "left out of the statistics: {} ({}){}",
            calls(discarded),
            reasons(&a.discarded),
            match (a.strict, t.system_wide) {
                (true, true) =>
                    "; system-wide: calls that migrated or were switched out \
                                  are left out (--keep-flagged keeps them)",
                (true, false) => "; --strict",
                (false, _) => "",
            }
        )?;
    }
    let mut flagged = BTreeMap::new();
    for f in &a.functions {
        for (r, n) in &f.flagged {
            *flagged.entry(*r).or_insert(0) += n;
        }
    }
    if !flagged.is_empty() {
        writeln!(
            out,
            "flagged but kept (--strict leaves them out): {}",
            reasons(&flagged)
        )?;
    }
    Ok(())
}

/// Where the profile comes from: measured in the run, or how old the
/// cached one is, how loaded the machine was and how noisy its baselines.
fn profile_line(a: &Analysis, info: &CalibrationInfo) -> String {
    let machine = format!(
        "{}, {}",
        info.profile.kernel_release, info.profile.cpu_model
    );
    let noise = || {
        let parts: Vec<String> = info
            .noise
            .iter()
            .filter_map(|n| {
                let unit = a.trace.counters.iter().find(|c| c.name == n.counter)?.unit;
                Some(if n.min_mad == n.max_mad {
                    format!("{} {}", n.counter, format_value(n.min_mad, unit))
                } else {
                    format!(
                        "{} {}–{}",
                        n.counter,
                        format_value(n.min_mad, unit),
                        format_value(n.max_mad, unit)
                    )
                })
            })
            .collect();
        parts.join(", ")
    };
    let load = info
        .loadavg
        .map_or(String::new(), |l| format!(", load {l:.2}"));
    match info.source {
        Source::InRun => {
            let mut line = format!(
                "calibration profile: measured in this run, in the command's process as it \
                 started{load}\n  {machine}\n  classes {} ({} calls each)",
                info.in_run_classes.join(", "),
                info.calls_per_round,
            );
            if !info.cached_classes.is_empty() {
                line.push_str(&format!(
                    "; {} cached{}",
                    info.cached_classes.join(", "),
                    info.cached_age_s
                        .map_or(String::new(), |s| format!(", {} old", age(s)))
                ));
            }
            line
        }
        Source::Calibrate => format!(
            "calibration profile: cached, measured {} before this recording{load}, \
             {} × {} calls\n  {machine}; baseline MAD {}\n  it may not fit this run: \
             `perfunc calibrate` measures it anew",
            age(info.age_s),
            info.rounds,
            info.calls_per_round,
            noise()
        ),
    }
}

/// `seconds` as the two largest of days, hours, minutes, seconds.
fn age(seconds: i64) -> String {
    if seconds < 0 {
        return "(in the future: the clock went back)".to_owned();
    }
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (1.., _, _) => format!("{d} d {h} h"),
        (0, 1.., _) => format!("{h} h {m} min"),
        (0, 0, 1..) => format!("{m} min {s} s"),
        _ => format!("{s} s"),
    }
}

/// Whether, and how, the values are calibrated (two or three lines: a
/// CPU model name alone can take half the width).
fn calibration_line(a: &Analysis) -> String {
    match &a.calibration {
        Some(info) => format!(
            "calibrated: subtracting the {} probe cost per call; raw values: --baseline off\n{}",
            info.statistic,
            profile_line(a, info)
        ),
        None if a.trace.has_profile => {
            "not calibrated (--baseline off): values include the probes' cost".to_owned()
        }
        None => "not calibrated: the trace holds no calibration profile; \
                 values include the probes' cost"
            .to_owned(),
    }
}

/// How a row's values are to be read, as markers at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Percentiles from a histogram.
    Approximate,
    /// The calibrated median cannot be told apart from 0.
    WithinNoise,
    /// A calibrated mean or median below 0, outside the noise.
    Negative,
}

impl Mark {
    const ALL: [Mark; 3] = [Mark::Approximate, Mark::WithinNoise, Mark::Negative];

    fn symbol(self) -> &'static str {
        match self {
            Mark::Approximate => "~",
            Mark::WithinNoise => "≈",
            Mark::Negative => "<0",
        }
    }

    fn footer(self) -> String {
        match self {
            Mark::Approximate => format!(
                "percentiles from a histogram (relative error {}), not exact",
                crate::analysis::PERCENTILE_RELATIVE_ERROR
            ),
            Mark::WithinNoise => {
                "the median (P50) is within the probes' noise: cannot be told apart from 0"
                    .to_owned()
            }
            Mark::Negative => "calibration subtracted more than was measured: the probes' cost \
                               varies from call to call"
                .to_owned(),
        }
    }

    /// The marks of counter `c` of function `f`, in [`Mark::ALL`] order.
    fn of(a: &Analysis, f: &FunctionStats, c: &CounterStats) -> Vec<Mark> {
        let mut marks = Vec::new();
        if !c.exact {
            marks.push(Mark::Approximate);
        }
        if a.calibration.is_some() && f.used > 0 {
            if c.within_noise == Some(true) {
                marks.push(Mark::WithinNoise);
            } else if c.mean < 0.0 || c.p50 < 0.0 {
                marks.push(Mark::Negative);
            }
        }
        marks
    }
}

/// Caller chains shown per function; the JSON has them all.
const CALLERS_SHOWN: usize = 3;

/// The function's most frequent caller chains, direct caller first:
/// `  ← chain_b ← chain_a ← main  (50 calls, 2.10 ms task-clock)`.
fn write_callers(f: &FunctionStats, out: &mut dyn Write) -> io::Result<()> {
    for c in f.callers.iter().take(CALLERS_SHOWN) {
        let mut chain: Vec<&str> = c.stack.iter().rev().map(String::as_str).collect();
        if chain.is_empty() {
            chain.push("(no caller)");
        }
        let cost = f
            .counters
            .first()
            .zip(c.sum.first())
            .map(|(counter, &sum)| {
                format!(", {} {}", format_value(sum, counter.unit), counter.name)
            })
            .unwrap_or_default();
        writeln!(out, "  ← {}  ({}{cost})", chain.join(" ← "), calls(c.calls))?;
    }
    if f.callers.len() > CALLERS_SHOWN {
        writeln!(
            out,
            "  ← … {} more caller chains (--format json lists them)",
            f.callers.len() - CALLERS_SHOWN
        )?;
    }
    Ok(())
}

/// `±3.1%` of the median, or `±1.20 µs` when the median is 0.
fn spread(runs: &RunSpread, unit: Unit) -> String {
    match runs.relative() {
        Some(r) => format!("±{:.1}%", r * 100.0),
        None => format!("±{}", format_value(runs.stddev, unit)),
    }
}

fn write_function(a: &Analysis, f: &FunctionStats, out: &mut dyn Write) -> io::Result<()> {
    let mut line = format!("{}  ({}", f.name, calls(f.calls));
    let discarded: u64 = f.discarded.values().sum();
    if discarded > 0 {
        line += &format!("; {discarded} left out: {}", reasons(&f.discarded));
    }
    let flagged: u64 = f.flagged.values().sum();
    if flagged > 0 {
        line += &format!("; flagged: {}", reasons(&f.flagged));
    }
    line.push(')');
    if let Some(source) = &f.source {
        line += &format!("  at {source}");
    }
    writeln!(out, "{line}")?;
    write_callers(f, out)?;
    for c in &f.counters {
        let mut row = format!("  {:<w$}", c.name, w = LABEL - 2);
        for v in [
            c.sum, c.self_sum, c.mean, c.stddev, c.p50, c.p90, c.p99, c.max,
        ] {
            let text = if f.used == 0 {
                "-".to_owned()
            } else {
                format_value(v, c.unit)
            };
            row += &format!("{text:>WIDTH$}");
        }
        for mark in Mark::of(a, f, c) {
            row += " ";
            row += mark.symbol();
        }
        writeln!(out, "{row}")?;
        if let Some(runs) = &c.runs {
            writeln!(
                out,
                "    RUNS {:>w$}  {} ({} run{})",
                format_value(runs.median, c.unit),
                spread(runs, c.unit),
                runs.medians.len(),
                if runs.medians.len() == 1 { "" } else { "s" },
                w = LABEL + WIDTH * 5 - "    RUNS ".len()
            )?;
        }
    }
    Ok(())
}

impl ReportWriter for Table {
    fn write(
        &self,
        analysis: &Analysis,
        functions: &[&FunctionStats],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        write_header(analysis, out)?;
        writeln!(out)?;
        let mut head = format!("{:<LABEL$}", "FUNCTION / COUNTER");
        for c in COLUMNS {
            head += &format!("{c:>WIDTH$}");
        }
        writeln!(out, "{head}")?;
        for f in functions {
            write_function(analysis, f, out)?;
        }
        let used: Vec<Mark> = functions
            .iter()
            .flat_map(|f| f.counters.iter().flat_map(|c| Mark::of(analysis, f, c)))
            .collect();
        for mark in Mark::ALL.into_iter().filter(|m| used.contains(m)) {
            writeln!(out, "{} {}", mark.symbol(), mark.footer())?;
        }
        Ok(())
    }
}
