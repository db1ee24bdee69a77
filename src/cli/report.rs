//! `perfunc report`: per-function statistics of a trace.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::ReportArgs;
use crate::analysis::{self, Analysis, AnalysisOptions};
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
    let mut analysis = analyze_file(&args.input, &opts)?;
    if args.lines {
        let file = File::open(&args.input)
            .with_context(|| format!("failed to open {}", args.input.display()))?;
        let header = TraceReader::new(BufReader::new(file))?.header().clone();
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

/// Fills in each function's source location from its binary's line
/// tables (kernel probes have none).
fn add_sources(analysis: &mut Analysis, header: &TraceHeader) {
    let mut symbolizer = Symbolizer::new();
    for f in &mut analysis.functions {
        let Some(site) = header.probes.get(f.probe as usize) else {
            continue;
        };
        if site.kind == ProbeKind::Uprobe {
            f.source = symbolizer.location(Path::new(&site.binary), site.addr);
        }
    }
}

/// Analyzes the trace in `path`.
pub fn analyze_file(path: &Path, opts: &AnalysisOptions) -> anyhow::Result<Analysis> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let reader = TraceReader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("failed to read {}", path.display()))?;
    let analysis = analysis::analyze(reader, opts)
        .with_context(|| format!("failed to analyze {}", path.display()))?;
    Ok(analysis)
}

/// Prints the table report of `analysis` to stdout.
pub fn print_table(analysis: &Analysis) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    report::write_report(analysis, Format::Table, &ReportOptions::default(), &mut out)?;
    out.flush()?;
    Ok(())
}
