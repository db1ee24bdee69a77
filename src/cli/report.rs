//! `perfunc report`: per-function statistics of a trace.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::ReportArgs;
use std::collections::HashMap;

use crate::analysis::{self, Analysis, AnalysisOptions, CallerStats};
use crate::callchain::{self, Chains};
use crate::report::{self, Format, ReportOptions};
use crate::symbolize::Symbolizer;
use crate::trace::{ProbeKind, TraceHeader, TraceReader};

/// Runs `perfunc report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let opts = AnalysisOptions {
        tid: args.tid,
        functions: args.functions.clone(),
        salvage: args.salvage,
        ..args.analysis.options()
    };
    // A damaged trace fails in the analysis below, which names the damage.
    let chains =
        callchain::collect(open_trace(&args.input)?, false, args.salvage).unwrap_or_default();
    let mut analysis = if chains.is_empty() {
        analyze_file(&args.input, &opts)?
    } else {
        analyze_with_callers(&args.input, &opts, &chains)?
    };
    check_calls_matched(&args.input, &opts, &analysis)?;
    if args.lines {
        let header = open_trace(&args.input)?.header().clone();
        add_sources(&mut analysis, &header);
    }
    let report_opts = ReportOptions {
        sort: args.sort.clone(),
        by_self: args.by_self,
        top: args.top,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    report::write_report(&analysis, args.format, &report_opts, &mut out)?;
    out.flush()?;
    Ok(())
}

/// With `--function`, a trace whose matching functions were probed but
/// never called (in the `--tid` thread) is an error naming the functions
/// that were, instead of an empty report.
fn check_calls_matched(
    path: &Path,
    opts: &AnalysisOptions,
    analysis: &Analysis,
) -> anyhow::Result<()> {
    if opts.functions.is_empty() || analysis.functions.iter().any(|f| f.calls > 0) {
        return Ok(());
    }
    let all = AnalysisOptions {
        functions: Vec::new(),
        ..opts.clone()
    };
    let unfiltered = analysis::analyze(open_trace(path)?, &all)
        .with_context(|| format!("failed to analyze {}", path.display()))?;
    Err(analysis::no_call_matches(opts, &unfiltered))
        .with_context(|| format!("failed to analyze {}", path.display()))
}

/// Fills in each function's source location from its binary's line
/// tables (kernel probes have none).
fn add_sources(analysis: &mut Analysis, header: &TraceHeader) {
    let mut symbolizer = Symbolizer::new();
    for f in &mut analysis.functions {
        let Some(site) = header.probes.get(f.probe as usize) else {
            continue;
        };
        if site.kind == ProbeKind::Uprobe {
            f.source = symbolizer.definition(Path::new(&site.binary), site.addr);
        }
    }
}

/// Analyzes the trace in `path`, with each function's caller chains.
fn analyze_with_callers(
    path: &Path,
    opts: &AnalysisOptions,
    chains: &Chains,
) -> anyhow::Result<Analysis> {
    let reader = open_trace(path)?;
    let n = reader.header().counters.len();
    let mut sums: HashMap<(u32, u32), (u64, Vec<i128>)> = HashMap::new();
    let mut analysis = analysis::analyze_calls(reader, opts, |call| {
        let Some(chain) = chains.chain(call.tid, call.start) else {
            return;
        };
        if call.used {
            let (calls, sum) = sums
                .entry((call.probe, chain))
                .or_insert_with(|| (0, vec![0; n]));
            *calls += 1;
            for (s, &v) in sum.iter_mut().zip(&call.inclusive) {
                *s += i128::from(v);
            }
        }
    })
    .with_context(|| format!("failed to analyze {}", path.display()))?;
    for ((probe, chain), (calls, sum)) in sums {
        if let Some(f) = analysis.functions.iter_mut().find(|f| f.probe == probe) {
            f.callers.push(CallerStats {
                stack: chains.stack(chain).to_vec(),
                calls,
                sum: sum.into_iter().map(|s| s as f64).collect(),
            });
        }
    }
    for f in &mut analysis.functions {
        f.callers
            .sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.stack.cmp(&b.stack)));
    }
    warn_violations(&analysis);
    Ok(analysis)
}

/// Opens a trace for reading.
pub fn open_trace(path: &Path) -> anyhow::Result<TraceReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    TraceReader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("failed to read {}", path.display()))
}

/// Analyzes the trace in `path`.
pub fn analyze_file(path: &Path, opts: &AnalysisOptions) -> anyhow::Result<Analysis> {
    let reader = open_trace(path)?;
    let analysis = analysis::analyze(reader, opts)
        .with_context(|| format!("failed to analyze {}", path.display()))?;
    warn_violations(&analysis);
    Ok(analysis)
}

/// Says on stderr, whatever the output format, that calls broke an
/// invariant of counting.
pub fn warn_violations(analysis: &Analysis) {
    if !analysis.violations.is_empty() {
        eprintln!("perfunc: {}", analysis.violations);
    }
}

/// Prints the table report of `analysis` to stdout.
pub fn print_table(analysis: &Analysis) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    report::write_report(analysis, Format::Table, &ReportOptions::default(), &mut out)?;
    out.flush()?;
    Ok(())
}
