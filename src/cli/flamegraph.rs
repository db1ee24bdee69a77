//! `perfunc flamegraph`: the probed call tree as a flamegraph.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::report::analyze_file;
use super::FlamegraphArgs;
use crate::analysis::AnalysisOptions;
use crate::report::flame::{self, Root};
use crate::report::{counter_index, format_value};

/// Runs `perfunc flamegraph`.
pub fn run(args: &FlamegraphArgs) -> anyhow::Result<()> {
    let opts = AnalysisOptions {
        strict: args.strict,
        tid: args.tid,
        threads: args.threads,
        baseline: args.baseline.0,
        tree_per_thread: args.per_thread,
        ..AnalysisOptions::default()
    };
    let analysis = analyze_file(&args.input, &opts)?;
    let counter = match &args.counter {
        Some(name) => counter_index(&analysis, name)?,
        None => 0,
    };
    let folded = flame::folded(&analysis, counter, Root::Process);
    if let Some(path) = &args.folded {
        write_file(path, |out| Ok(folded.write_to(out)?))?;
    }
    let svg = match (&args.output, &args.folded) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(PathBuf::from("flamegraph.svg")),
    };
    if let Some(path) = &svg {
        let svg_opts = flame::svg_options(&analysis, counter, &folded);
        write_file(path, |out| {
            Ok(perfunc_flamegraph::write_svg(&folded, &svg_opts, out)?)
        })?;
    }
    let spec = &analysis.trace.counters[counter];
    let written: Vec<String> = [args.folded.as_ref(), svg.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    eprintln!(
        "perfunc: wrote {} ({} call paths, {} {} in all)",
        written.join(" and "),
        analysis.tree.len(),
        format_value(folded.total() as f64, spec.unit),
        spec.name,
    );
    Ok(())
}

/// Creates `path` and writes it with `write`, naming the file on failure.
pub(super) fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    write(&mut out)
        .and_then(|()| Ok(out.flush()?))
        .with_context(|| format!("failed to write {}", path.display()))
}
