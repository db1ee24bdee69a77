//! A diff as a table, JSON or CSV (the formats of `perfunc report`).

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use super::{CounterDiff, Diff, RunSummary, Side};
use crate::report::{format_value, Format};

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

const CSV_HEADER: [&str; 14] = [
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

const TABLE_HEADER: [&str; 8] = [
    "function",
    "counter",
    "calls",
    "median base → new",
    "change",
    "95% CI",
    "q",
    "verdict",
];

fn table(diff: &Diff, out: &mut dyn Write) -> io::Result<()> {
    for (label, run) in [("base", &diff.base), ("new ", &diff.new)] {
        let values = if run.calibration.is_some() {
            "calibrated"
        } else {
            "raw"
        };
        writeln!(out, "{label}: {} ({}), {values}", run.trace, run.command)?;
    }
    let tests = diff
        .functions
        .iter()
        .flat_map(|f| &f.counters)
        .filter(|c| c.q_value.is_some())
        .count();
    writeln!(
        out,
        "significant: q < {} (Benjamini–Hochberg over {tests} tests) and |change| ≥ {}",
        diff.alpha,
        percent(diff.threshold)
    )?;
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
    let mut rows: Vec<[String; 8]> = vec![TABLE_HEADER.map(str::to_owned)];
    for f in &diff.functions {
        let calls = format!("{}/{}", f.base_calls, f.new_calls);
        if let Some(side) = f.only_in {
            let note = format!("only in {}", side_name(side));
            rows.push([
                f.name.clone(),
                String::new(),
                calls,
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                note,
            ]);
            continue;
        }
        for c in &f.counters {
            rows.push([
                f.name.clone(),
                c.name.clone(),
                calls.clone(),
                format!(
                    "{} → {}",
                    format_value(c.base_median, c.unit),
                    format_value(c.new_median, c.unit)
                ),
                c.change.map(signed_percent).unwrap_or_else(|| "-".into()),
                match (c.ci_low, c.ci_high) {
                    (Some(lo), Some(hi)) => {
                        format!("[{}, {}]", signed_percent(lo), signed_percent(hi))
                    }
                    _ => "-".into(),
                },
                c.q_value.map(q_text).unwrap_or_else(|| "-".into()),
                verdict_text(c, diff.min_calls),
            ]);
        }
    }
    write_aligned(&rows, out)
}

fn write_aligned(rows: &[[String; 8]], out: &mut dyn Write) -> io::Result<()> {
    let mut widths = [0usize; 8];
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

fn verdict_text(c: &CounterDiff, min_calls: u64) -> String {
    match c.verdict {
        super::Verdict::Inconclusive => {
            format!("inconclusive (needs ≥ {min_calls} calls per run)")
        }
        v => v.as_str().to_owned(),
    }
}

fn percent(fraction: f64) -> String {
    format!("{}%", fraction * 100.0)
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
