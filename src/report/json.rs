//! JSON, documented in docs/report-format.md. Fields are only ever added.

use std::collections::BTreeMap;
use std::io::{self, Write};

use indexmap::IndexMap;
use serde::Serialize;

use super::ReportWriter;
use crate::analysis::{
    Analysis, CalibrationInfo, CounterStats, FunctionStats, RunSpread, Violations,
};
use crate::trace::Damage;

/// The JSON writer.
pub struct Json;

#[derive(Serialize)]
struct Report<'a> {
    trace: TraceView<'a>,
    functions: Vec<FunctionView<'a>>,
    tree: Vec<PathView>,
    /// Calls that broke an invariant of counting; absent when none did.
    #[serde(skip_serializing_if = "Violations::is_empty")]
    violations: &'a Violations,
}

#[derive(Serialize)]
struct TraceView<'a> {
    command: &'a str,
    counters: Vec<&'a str>,
    duration_ns: u64,
    records: u64,
    lost: u64,
    threads: u64,
    complete: bool,
    bytes_lost: u64,
    strict: bool,
    discarded: BTreeMap<&'static str, u64>,
    /// With `--salvage`: what was damaged, in words (the first range).
    #[serde(skip_serializing_if = "Option::is_none")]
    salvaged: Option<String>,
    /// With `--salvage`: every damaged byte range skipped.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    damaged: &'a [Damage],
    has_profile: bool,
    system_wide: bool,
    calibration: Option<&'a CalibrationInfo>,
    /// Runs of the command (`record --repeat`; 1 without).
    runs: u32,
    /// With two or more runs: each run's time and their spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    run_time: Option<&'a RunSpread>,
}

#[derive(Serialize)]
struct FunctionView<'a> {
    name: &'a str,
    binary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    calls: u64,
    used: u64,
    discarded: BTreeMap<&'static str, u64>,
    flagged: BTreeMap<&'static str, u64>,
    counters: IndexMap<&'a str, CounterView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    callers: Vec<CallerView<'a>>,
}

#[derive(Serialize)]
struct CallerView<'a> {
    stack: &'a [String],
    calls: u64,
    sum: IndexMap<String, f64>,
}

#[derive(Serialize)]
struct CounterView {
    unit: crate::events::Unit,
    sum: f64,
    mean: f64,
    stddev: f64,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    self_sum: f64,
    self_mean: f64,
    exact: bool,
    raw_sum: f64,
    raw_mean: f64,
    raw_p50: f64,
    within_noise: Option<bool>,
    /// Each run's median and their spread (`record --repeat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<RunSpread>,
}

#[derive(Serialize)]
struct PathView {
    path: Vec<String>,
    calls: u64,
    inclusive: IndexMap<String, f64>,
    #[serde(rename = "self")]
    self_: IndexMap<String, f64>,
    raw_inclusive: IndexMap<String, f64>,
}

fn by_name<T: Copy>(map: &BTreeMap<crate::analysis::Reason, T>) -> BTreeMap<&'static str, T> {
    map.iter().map(|(r, n)| (r.name(), *n)).collect()
}

fn counter(c: &CounterStats) -> CounterView {
    CounterView {
        unit: c.unit,
        sum: c.sum,
        mean: c.mean,
        stddev: c.stddev,
        min: c.min,
        p50: c.p50,
        p90: c.p90,
        p99: c.p99,
        max: c.max,
        self_sum: c.self_sum,
        self_mean: c.self_mean,
        exact: c.exact,
        raw_sum: c.raw_sum,
        raw_mean: c.raw_mean,
        raw_p50: c.raw_p50,
        within_noise: c.within_noise,
        runs: c.runs.clone(),
    }
}

impl ReportWriter for Json {
    fn write(
        &self,
        a: &Analysis,
        functions: &[&FunctionStats],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let names: Vec<&str> = a.trace.counters.iter().map(|c| c.name.as_str()).collect();
        let probe_name = |id: u32| {
            a.functions
                .iter()
                .find(|f| f.probe == id)
                .map_or_else(|| format!("probe {id}"), |f| f.name.clone())
        };
        let per_counter = |values: &[f64]| -> IndexMap<String, f64> {
            names
                .iter()
                .zip(values)
                .map(|(n, v)| ((*n).to_owned(), *v))
                .collect()
        };
        let report = Report {
            trace: TraceView {
                command: &a.trace.command,
                counters: names.clone(),
                duration_ns: a.trace.duration_ns,
                records: a.trace.records,
                lost: a.trace.lost,
                threads: a.trace.threads,
                complete: a.trace.complete,
                bytes_lost: a.trace.bytes_lost,
                strict: a.strict,
                discarded: by_name(&a.discarded),
                salvaged: a.trace.damaged.first().map(ToString::to_string),
                damaged: &a.trace.damaged,
                has_profile: a.trace.has_profile,
                system_wide: a.trace.system_wide,
                calibration: a.calibration.as_ref(),
                runs: a.trace.runs,
                run_time: a.trace.run_time.as_ref(),
            },
            functions: functions
                .iter()
                .map(|f| FunctionView {
                    name: &f.name,
                    binary: &f.binary,
                    source: f.source.as_deref(),
                    calls: f.calls,
                    used: f.used,
                    discarded: by_name(&f.discarded),
                    flagged: by_name(&f.flagged),
                    counters: f
                        .counters
                        .iter()
                        .map(|c| (c.name.as_str(), counter(c)))
                        .collect(),
                    callers: f
                        .callers
                        .iter()
                        .map(|c| CallerView {
                            stack: &c.stack,
                            calls: c.calls,
                            sum: per_counter(&c.sum),
                        })
                        .collect(),
                })
                .collect(),
            tree: a
                .tree
                .iter()
                .map(|p| PathView {
                    path: p.path.iter().map(|&id| probe_name(id)).collect(),
                    calls: p.calls,
                    inclusive: per_counter(&p.inclusive),
                    self_: per_counter(&p.self_),
                    raw_inclusive: per_counter(&p.raw_inclusive),
                })
                .collect(),
            violations: &a.violations,
        };
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)
    }
}
