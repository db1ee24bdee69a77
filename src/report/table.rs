//! The table: aligned, human units, fits a 100-column terminal.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::human::format_value;
use super::ReportWriter;
use crate::analysis::{Analysis, FunctionStats, Reason};
use crate::events::Unit;

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
        "counters: {} | {} | {} records, {} lost | {} thread{}",
        counters.join(", "),
        format_value(t.duration_ns as f64, Unit::Nanoseconds),
        t.records,
        t.lost,
        t.threads,
        if t.threads == 1 { "" } else { "s" }
    )?;
    if let Some(what) = &t.salvaged {
        writeln!(
            out,
            "salvaged: the trace is corrupt ({what}); this reports the whole chunks before it"
        )?;
    } else if !t.complete {
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
            if a.strict { "; --strict" } else { "" }
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

fn write_function(f: &FunctionStats, out: &mut dyn Write) -> io::Result<()> {
    let mut line = format!("{}  ({}", f.name, calls(f.calls));
    let discarded: u64 = f.discarded.values().sum();
    if discarded > 0 {
        line += &format!("; {discarded} left out: {}", reasons(&f.discarded));
    }
    let flagged: u64 = f.flagged.values().sum();
    if flagged > 0 {
        line += &format!("; flagged: {}", reasons(&f.flagged));
    }
    writeln!(out, "{line})")?;
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
        if !c.exact {
            row += " ~";
        }
        writeln!(out, "{row}")?;
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
            write_function(f, out)?;
        }
        if functions
            .iter()
            .any(|f| f.counters.iter().any(|c| !c.exact))
        {
            writeln!(
                out,
                "~ percentiles from a histogram (relative error {}), not exact",
                crate::analysis::PERCENTILE_RELATIVE_ERROR
            )?;
        }
        Ok(())
    }
}
