//! `perfunc flamegraph`: the probed call tree as a flamegraph.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use perfunc_flamegraph::Folded;

use super::report::{analyze_file, open_trace};
use super::FlamegraphArgs;
use crate::analysis::{self, Analysis, AnalysisOptions};
use crate::callchain::{self, Chains};
use crate::events::CounterSpec;
use crate::output::AtomicOutput;
use crate::report::flame::{self, CallerTree, Root};
use crate::report::{counter_index, format_value};

/// Runs `perfunc flamegraph`.
pub fn run(args: &FlamegraphArgs) -> anyhow::Result<()> {
    let opts = AnalysisOptions {
        tid: args.tid,
        tree_per_thread: args.per_thread,
        salvage: args.salvage,
        ..args.analysis.options()
    };
    // A damaged trace fails in the analysis below, which names the damage.
    let chains =
        callchain::collect(open_trace(&args.input)?, args.inline, args.salvage).unwrap_or_default();
    let (analysis, counter, folded) = if chains.is_empty() {
        let analysis = analyze_file(&args.input, &opts)?;
        let counter = chosen_counter(&analysis.trace.counters, args.counter.as_deref())?;
        let folded = flame::folded(&analysis, counter, Root::Process);
        (analysis, counter, folded)
    } else {
        with_callers(args, &opts, &chains)?
    };
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
        "perfunc: wrote {} ({} stacks, {} {} in all)",
        written.join(" and "),
        folded.stacks().count(),
        format_value(folded.total() as f64, spec.unit),
        spec.name,
    );
    for damage in &analysis.trace.damaged {
        eprintln!(
            "perfunc: warning: {} is damaged, skipped {damage}",
            args.input.display()
        );
    }
    let s = chains.stats;
    if s.cut > 0 || s.unknown_frames > 0 {
        eprintln!(
            "perfunc: {} of {} call chains were cut at an address that cannot be a return \
             address (shown under {}); {} return addresses had no symbol",
            s.cut,
            s.chains,
            callchain::CUT_FRAME,
            s.unknown_frames
        );
    }
    Ok(())
}

/// The counter `--counter` names, or the first.
fn chosen_counter(counters: &[CounterSpec], name: Option<&str>) -> anyhow::Result<usize> {
    Ok(name
        .map(|n| counter_index(counters, n))
        .transpose()?
        .unwrap_or(0))
}

/// The analysis, the counter and the folded stacks with each call's
/// callers from `chains`.
fn with_callers(
    args: &FlamegraphArgs,
    opts: &AnalysisOptions,
    chains: &Chains,
) -> anyhow::Result<(Analysis, usize, Folded)> {
    let reader = open_trace(&args.input)?;
    let counter = chosen_counter(&reader.header().counters, args.counter.as_deref())?;
    let mut tree = CallerTree::default();
    let analysis = analysis::analyze_calls(reader, opts, |call| {
        let chain = chains.chain(call.tid, call.start);
        let value = call.used.then(|| i128::from(call.self_[counter]));
        tree.push(call, chain, value);
    })
    .with_context(|| format!("failed to analyze {}", args.input.display()))?;
    super::report::warn_violations(&analysis);
    let folded = tree.folded(&analysis, chains, args.per_thread);
    Ok((analysis, counter, folded))
}

/// Writes `path` with `write`, naming the file on failure. The file is
/// written beside `path` and renamed into place only when whole (see
/// [`AtomicOutput`]): a failure leaves the file there as it was, and a
/// symlink at `path` is replaced, not followed.
pub(super) fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = AtomicOutput::create(path)?;
    let mut out = BufWriter::new(file.file());
    write(&mut out)
        .and_then(|()| Ok(out.flush()?))
        .with_context(|| format!("failed to write {}", path.display()))?;
    drop(out);
    file.replace()
        .with_context(|| format!("failed to write {}", path.display()))
}
