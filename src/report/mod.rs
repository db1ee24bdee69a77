//! Report writers: one per output format behind one trait. They take an
//! [`Analysis`] and write to any [`Write`]; choosing, sorting and cutting
//! the functions is shared.

mod csv;
pub mod flame;
mod human;
mod json;
mod table;

use std::io::{self, Write};

use crate::analysis::{Analysis, FunctionStats};
use crate::events::CounterSpec;

pub use human::{format_value, format_value_signed};

/// The output formats of `perfunc report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table in human units, for a terminal.
    #[default]
    Table,
    /// JSON, documented in docs/report-format.md.
    Json,
    /// CSV, one row per function and counter.
    Csv,
}

/// Which functions to show, in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportOptions {
    /// Sort by this counter (default: the trace's first counter).
    pub sort: Option<String>,
    /// Sort by the self sum instead of the inclusive sum.
    pub by_self: bool,
    /// Show at most this many functions.
    pub top: Option<usize>,
}

/// A report a user asked for that cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A counter was named (`--sort`, `--counter`) that the trace does not
    /// have.
    #[error("the trace has no counter `{name}`; its counters are {available}")]
    UnknownCounter {
        /// What was asked for.
        name: String,
        /// The counters there are.
        available: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A report format.
pub trait ReportWriter {
    /// Writes `functions` (already chosen and sorted) of `analysis`.
    fn write(
        &self,
        analysis: &Analysis,
        functions: &[&FunctionStats],
        out: &mut dyn Write,
    ) -> io::Result<()>;
}

/// The writer for `format`.
pub fn writer(format: Format) -> Box<dyn ReportWriter> {
    match format {
        Format::Table => Box::new(table::Table),
        Format::Json => Box::new(json::Json),
        Format::Csv => Box::new(csv::Csv),
    }
}

/// The functions to report, sorted (largest first) and cut as `opts` says.
pub fn select<'a>(
    analysis: &'a Analysis,
    opts: &ReportOptions,
) -> Result<Vec<&'a FunctionStats>, ReportError> {
    let index = match &opts.sort {
        None => 0,
        Some(name) => counter_index(&analysis.trace.counters, name)?,
    };
    let key = |f: &FunctionStats| {
        f.counters
            .get(index)
            .map_or(0.0, |c| if opts.by_self { c.self_sum } else { c.sum })
    };
    let mut functions: Vec<&FunctionStats> = analysis.functions.iter().collect();
    functions.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.probe.cmp(&b.probe)));
    if let Some(top) = opts.top {
        functions.truncate(top);
    }
    Ok(functions)
}

/// The position of the counter `name` among a trace's `counters`.
///
/// # Errors
///
/// [`ReportError::UnknownCounter`], listing the trace's counters.
pub fn counter_index(counters: &[CounterSpec], name: &str) -> Result<usize, ReportError> {
    counters
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ReportError::UnknownCounter {
            name: name.to_owned(),
            available: counters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Chooses, sorts and writes the report.
pub fn write_report(
    analysis: &Analysis,
    format: Format,
    opts: &ReportOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let functions = select(analysis, opts)?;
    writer(format).write(analysis, &functions, out)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
