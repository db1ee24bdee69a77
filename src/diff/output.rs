//! A diff as a table, JSON or CSV (the formats of `perfunc report`).

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use super::{CounterDiff, Diff, RunSummary, Side, Test, Verdict};
use crate::events::Unit;
use crate::report::{format_value, format_value_signed, Format};

/// Writes `diff` in `format`.
///
/// # Errors
///
/// When writing fails.
pub fn write_diff(diff: &Diff, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => table(diff, out),
        Format::Json => json(diff, out),
        Format::Csv => csv(diff, out),
    }
}

#[derive(Serialize)]
struct JsonDiff<'a> {
    base: &'a RunSummary,
    new: &'a RunSummary,
    alpha: f64,
    threshold: f64,
    confidence: f64,
    min_calls: u64,
    unmatched_counters: &'a [String],
    functions: Vec<JsonFunction<'a>>,
}

#[derive(Serialize)]
struct JsonFunction<'a> {
    name: &'a str,
    base_calls: u64,
    new_calls: u64,
    only_in: Option<Side>,
    counters: BTreeMap<&'a str, &'a CounterDiff>,
}

fn json(diff: &Diff, out: &mut dyn Write) -> io::Result<()> {
    let view = JsonDiff {
        base: &diff.base,
        new: &diff.new,
        alpha: diff.alpha,
        threshold: diff.threshold,
        confidence: diff.confidence,
        min_calls: diff.min_calls,
        unmatched_counters: &diff.unmatched_counters,
        functions: diff
            .functions
            .iter()
            .map(|f| JsonFunction {
                name: &f.name,
                base_calls: f.base_calls,
                new_calls: f.new_calls,
                only_in: f.only_in,
                counters: f.counters.iter().map(|c| (c.name.as_str(), c)).collect(),
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &view)?;
    writeln!(out)
}

const CSV_HEADER: [&str; 25] = [
    "function",
    "counter",
    "base_calls",
    "new_calls",
    "base_median",
    "new_median",
    "base_mean",
    "new_mean",
    "change",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "verdict",
    "base_runs",
    "new_runs",
    "base_run_median",
    "base_run_stddev",
    "new_run_median",
    "new_run_stddev",
    "difference",
    "test",
    "reason",
    "difference_low",
    "difference_high",
];

fn csv(diff: &Diff, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    let num = |v: Option<f64>| v.map(number).unwrap_or_default();
    for f in &diff.functions {
        let calls = [f.base_calls.to_string(), f.new_calls.to_string()];
        if let Some(side) = f.only_in {
            let only = format!("only_in_{}", side_name(side));
            let mut row = vec![f.name.clone(), String::new()];
            row.extend(calls.clone());
            row.extend(std::iter::repeat_n(String::new(), 9));
            row.push(only);
            row.extend(std::iter::repeat_n(String::new(), 11));
            w.write_record(&row)?;
            continue;
        }
        for c in &f.counters {
            w.write_record([
                f.name.clone(),
                c.name.clone(),
                calls[0].clone(),
                calls[1].clone(),
                c.base_median.to_string(),
                c.new_median.to_string(),
                c.base_mean.to_string(),
                c.new_mean.to_string(),
                num(c.change),
                num(c.ci_low),
                num(c.ci_high),
                num(c.p_value),
                num(c.q_value),
                c.verdict.as_str().to_owned(),
                c.runs.base.to_string(),
                c.runs.new.to_string(),
                num(c.base_run_median),
                num(c.base_run_stddev),
                num(c.new_run_median),
                num(c.new_run_stddev),
                number(c.difference),
                c.test.map(|t| t.as_str().to_owned()).unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
                num(c.difference_low),
                num(c.difference_high),
            ])?;
        }
    }
    w.flush()
}

/// A number as CSV text: shortest round-trip decimal, in scientific
/// notation below 1e-6 (p-values can be 1e-300).
fn number(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-6 {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Base => "base",
        Side::New => "new",
    }
}

const COLUMNS: usize = 10;

fn table(diff: &Diff, out: &mut dyn Write) -> io::Result<()> {
    for (label, run) in [("base", &diff.base), ("new ", &diff.new)] {
        let values = if run.calibration.is_some() {
            "calibrated"
        } else {
            "raw"
        };
        let runs = if run.runs > 1 {
            format!(", {} runs", run.runs)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{label}: {} ({}), {values}{runs}",
            run.trace, run.command
        )?;
    }
    let tests = diff
        .functions
        .iter()
        .flat_map(|f| &f.counters)
        .filter(|c| c.q_value.is_some())
        .count();
    let level = percent(diff.confidence);
    writeln!(
        out,
        "significant: q < {} (Benjamini–Hochberg over {tests} tests), |change| ≥ {} \
         and the {level} interval on the side of the change",
        diff.alpha,
        percent(diff.threshold)
    )?;
    let used: Vec<Test> = [Test::Runs, Test::Calls, Test::CallsBeyondFloor]
        .into_iter()
        .filter(|t| {
            diff.functions
                .iter()
                .flat_map(|f| &f.counters)
                .any(|c| c.test == Some(*t))
        })
        .collect();
    for t in used {
        let text = match t {
            Test::Runs => {
                "Mann–Whitney U on the per-run medians, change: their Hodges–Lehmann shift; \
                 base/new: median of the run medians ± their spread"
            }
            Test::Calls => {
                "Mann–Whitney U on the calls (a counter exact per call); base/new: median"
            }
            Test::CallsBeyondFloor => {
                "Mann–Whitney U on the calls (too few runs a side for the run test), \
                 the median changed ×3 or more, raw too; base/new: median \
                 (not gated by --fail-on-regression)"
            }
        };
        writeln!(out, "test {}: {text}", t.as_str())?;
    }
    if diff.base.calibration.is_some() != diff.new.calibration.is_some() {
        writeln!(
            out,
            "warning: one run is calibrated and the other is not; \
             compare with --baseline off for raw values on both sides"
        )?;
    }
    if !diff.unmatched_counters.is_empty() {
        writeln!(
            out,
            "not compared (in one run only): {}",
            diff.unmatched_counters.join(", ")
        )?;
    }
    writeln!(out)?;
    let interval = format!("{level} CI");
    let header = [
        "function",
        "counter",
        "calls",
        "base",
        "new",
        "change",
        interval.as_str(),
        "q",
        "test",
        "verdict",
    ];
    let mut rows: Vec<[String; COLUMNS]> = vec![header.map(str::to_owned)];
    for f in &diff.functions {
        let calls = format!("{}/{}", f.base_calls, f.new_calls);
        if let Some(side) = f.only_in {
            let mut row: [String; COLUMNS] = Default::default();
            row[0] = f.name.clone();
            row[2] = calls;
            row[COLUMNS - 1] = format!("only in {}", side_name(side));
            rows.push(row);
            continue;
        }
        for c in &f.counters {
            rows.push([
                f.name.clone(),
                c.name.clone(),
                calls.clone(),
                side_value(
                    c.base_run_median,
                    c.base_run_stddev,
                    c.base_median,
                    c.runs.base,
                    c.unit,
                ),
                side_value(
                    c.new_run_median,
                    c.new_run_stddev,
                    c.new_median,
                    c.runs.new,
                    c.unit,
                ),
                match c.change {
                    Some(change) => signed_percent(change),
                    None => format_value_signed(c.difference, c.unit),
                },
                match (
                    c.change,
                    c.ci_low,
                    c.ci_high,
                    c.difference_low,
                    c.difference_high,
                ) {
                    (Some(_), Some(lo), Some(hi), _, _) => {
                        format!("[{}, {}]", signed_percent(lo), signed_percent(hi))
                    }
                    // An absolute change gets an absolute interval.
                    (None, _, _, Some(lo), Some(hi)) => format!(
                        "[{}, {}]",
                        format_value_signed(lo, c.unit),
                        format_value_signed(hi, c.unit)
                    ),
                    _ => "-".into(),
                },
                c.q_value.map(q_text).unwrap_or_else(|| "-".into()),
                c.test.map_or("-", Test::as_str).to_owned(),
                verdict_text(c),
            ]);
        }
    }
    write_aligned(&rows, out)
}

/// One side's value: the median of the run medians ± their spread for
/// the run test, the median per call otherwise.
fn side_value(
    run_median: Option<f64>,
    run_stddev: Option<f64>,
    median: f64,
    runs: usize,
    unit: Unit,
) -> String {
    let (Some(median), Some(stddev)) = (run_median, run_stddev) else {
        return format_value(median, unit);
    };
    let spread = if median != 0.0 {
        format!("±{:.1}%", stddev / median.abs() * 100.0)
    } else {
        format!("±{}", format_value(stddev, unit))
    };
    format!("{} {spread} ({runs} runs)", format_value(median, unit))
}

fn write_aligned(rows: &[[String; COLUMNS]], out: &mut dyn Write) -> io::Result<()> {
    let mut widths = [0usize; COLUMNS];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn verdict_text(c: &CounterDiff) -> String {
    match (&c.reason, c.verdict) {
        (Some(reason), Verdict::Inconclusive) => format!("inconclusive: {reason}"),
        (_, v) => v.as_str().to_owned(),
    }
}

fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 1e6).round() / 1e4)
}

fn signed_percent(fraction: f64) -> String {
    format!("{:+.1}%", fraction * 100.0)
}

fn q_text(q: f64) -> String {
    if q == 0.0 {
        "0".to_owned()
    } else if q < 1e-4 {
        format!("{q:.0e}")
    } else {
        format!("{q:.4}")
    }
}
