//! CSV: one row per function and counter, full precision.

use std::io::{self, Write};

use super::ReportWriter;
use crate::analysis::{Analysis, FunctionStats};

/// The CSV writer.
pub struct Csv;

const HEADER: [&str; 26] = [
    "function",
    "binary",
    "calls",
    "used",
    "discarded",
    "flagged",
    "counter",
    "unit",
    "sum",
    "mean",
    "stddev",
    "min",
    "p50",
    "p90",
    "p99",
    "max",
    "self_sum",
    "self_mean",
    "exact",
    "raw_sum",
    "raw_mean",
    "raw_p50",
    "within_noise",
    "runs",
    "run_median",
    "run_stddev",
];

impl ReportWriter for Csv {
    fn write(
        &self,
        _analysis: &Analysis,
        functions: &[&FunctionStats],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut w = ::csv::Writer::from_writer(out);
        w.write_record(HEADER).map_err(io_error)?;
        for f in functions {
            let discarded: u64 = f.discarded.values().sum();
            let flagged: u64 = f.flagged.values().sum();
            for c in &f.counters {
                let unit = match c.unit {
                    crate::events::Unit::Count => "count",
                    crate::events::Unit::Nanoseconds => "ns",
                };
                let mut row = vec![
                    f.name.clone(),
                    f.binary.clone(),
                    f.calls.to_string(),
                    f.used.to_string(),
                    discarded.to_string(),
                    flagged.to_string(),
                    c.name.clone(),
                    unit.to_owned(),
                ];
                row.extend(
                    [
                        c.sum,
                        c.mean,
                        c.stddev,
                        c.min,
                        c.p50,
                        c.p90,
                        c.p99,
                        c.max,
                        c.self_sum,
                        c.self_mean,
                    ]
                    .iter()
                    .map(f64::to_string),
                );
                row.push(c.exact.to_string());
                row.extend(
                    [c.raw_sum, c.raw_mean, c.raw_p50]
                        .iter()
                        .map(f64::to_string),
                );
                row.push(c.within_noise.map_or_else(String::new, |b| b.to_string()));
                match &c.runs {
                    Some(runs) => row.extend([
                        runs.medians.len().to_string(),
                        runs.median.to_string(),
                        runs.stddev.to_string(),
                    ]),
                    None => row.extend([String::new(), String::new(), String::new()]),
                }
                w.write_record(&row).map_err(io_error)?;
            }
        }
        w.flush()
    }
}

/// The I/O error inside a CSV writer's error, with its kind (a closed pipe
/// stays `BrokenPipe`), or the CSV error itself.
fn io_error(err: ::csv::Error) -> io::Error {
    match err.into_kind() {
        ::csv::ErrorKind::Io(err) => err,
        kind => io::Error::other(format!("CSV: {kind:?}")),
    }
}
