//! One run's per-call values, kept for the tests of a diff.

use std::collections::BTreeMap;
use std::io::Read;

use super::stats::Rng;
use super::{DiffOptions, RunSummary};
use crate::analysis::{analyze_calls, Analysis, AnalysisError, Call, CounterStats, FunctionStats};
use crate::trace::TraceReader;

/// A run: its analysis, and per function the inclusive values (calibrated
/// when the analysis is) of its used calls, one column per counter.
#[derive(Debug, Clone)]
pub struct Run {
    path: String,
    analysis: Analysis,
    values: BTreeMap<u32, Vec<Vec<i64>>>,
}

/// The kept values of one function: a reservoir of at most `limit` calls.
struct Reservoir {
    seen: u64,
    columns: Vec<Vec<i64>>,
}

/// Analyzes the trace and keeps the used calls' values: every call up to
/// `opts.sample_limit` per function, a uniform random sample of that many
/// beyond (Vitter's algorithm R, seeded so runs are reproducible).
pub(super) fn collect<R: Read>(
    path: &str,
    reader: TraceReader<R>,
    opts: &DiffOptions,
) -> Result<Run, AnalysisError> {
    let ncounters = reader.header().counters.len();
    let limit = opts.sample_limit.max(1);
    let mut rng = Rng::seeded(0x7065_7266_756e_6364);
    let mut kept: BTreeMap<u32, Reservoir> = BTreeMap::new();
    let analysis = analyze_calls(reader, &opts.analysis, |call: &Call| {
        if !call.used {
            return;
        }
        let r = kept.entry(call.probe).or_insert_with(|| Reservoir {
            seen: 0,
            columns: vec![Vec::new(); ncounters],
        });
        r.seen += 1;
        let slot = if r.seen <= limit as u64 {
            None
        } else {
            let j = rng.next_u64() % r.seen;
            match usize::try_from(j) {
                Ok(j) if j < limit => Some(j),
                _ => return,
            }
        };
        for (column, &value) in r.columns.iter_mut().zip(&call.inclusive) {
            match slot {
                None => column.push(value),
                Some(j) => column[j] = value,
            }
        }
    })?;
    let values = kept.into_iter().map(|(p, r)| (p, r.columns)).collect();
    Ok(Run::new(path, analysis, values))
}

impl Run {
    /// A run of `analysis` with the kept `values` (per probe, one column
    /// per counter).
    pub(crate) fn new(
        path: &str,
        analysis: Analysis,
        values: BTreeMap<u32, Vec<Vec<i64>>>,
    ) -> Self {
        Self {
            path: path.to_owned(),
            analysis,
            values,
        }
    }

    /// The analysis of the run.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Name and probe of every function with used calls.
    pub(super) fn functions(&self) -> impl Iterator<Item = (&str, u32)> {
        self.analysis
            .functions
            .iter()
            .filter(|f| f.used > 0)
            .map(|f| (f.name.as_str(), f.probe))
    }

    fn function(&self, probe: u32) -> &FunctionStats {
        self.analysis
            .functions
            .iter()
            .find(|f| f.probe == probe)
            .expect("probe of a listed function")
    }

    pub(super) fn function_name(&self, probe: u32) -> &str {
        &self.function(probe).name
    }

    pub(super) fn used(&self, probe: u32) -> u64 {
        self.function(probe).used
    }

    pub(super) fn stats(&self, probe: u32, counter: usize) -> &CounterStats {
        &self.function(probe).counters[counter]
    }

    /// The kept values of `probe` and `counter` (empty when none).
    pub(super) fn values(&self, probe: u32, counter: usize) -> &[i64] {
        self.values
            .get(&probe)
            .and_then(|columns| columns.get(counter))
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn spec(&self, counter: usize) -> &crate::events::CounterSpec {
        &self.analysis.trace.counters[counter]
    }

    pub(super) fn counter_names(&self) -> impl Iterator<Item = &str> {
        self.analysis.trace.counters.iter().map(|c| c.name.as_str())
    }

    pub(super) fn counter_name(&self, index: usize) -> &str {
        &self.analysis.trace.counters[index].name
    }

    pub(super) fn counter_index(&self, name: &str) -> Option<usize> {
        self.counter_names().position(|n| n == name)
    }

    /// The statistics of `probe` and `counter`, to change (tests).
    #[cfg(test)]
    pub(super) fn stats_mut(&mut self, probe: u32, counter: usize) -> &mut CounterStats {
        let f = self
            .analysis
            .functions
            .iter_mut()
            .find(|f| f.probe == probe)
            .expect("probe of a listed function");
        &mut f.counters[counter]
    }

    /// Renames counter `index` (tests of counter matching).
    #[cfg(test)]
    pub(super) fn rename_counter(&mut self, index: usize, name: &str) {
        self.analysis.trace.counters[index].name = name.to_owned();
        for f in &mut self.analysis.functions {
            f.counters[index].name = name.to_owned();
        }
    }

    pub(super) fn summary(&self) -> RunSummary {
        let a = &self.analysis;
        RunSummary {
            trace: self.path.clone(),
            command: a.trace.command.clone(),
            counters: self.counter_names().map(str::to_owned).collect(),
            functions: self.functions().count(),
            lost: a.trace.lost,
            calibration: a.calibration.clone(),
            runs: a.trace.runs,
        }
    }
}
