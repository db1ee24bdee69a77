//! `perfunc diff`: two runs compared function by function.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::flamegraph::write_file;
use super::DiffArgs;
use crate::diff::{self, DiffOptions, Run};
use crate::report::flame::{self, Root};
use crate::trace::TraceReader;

/// Exit status when `--fail-on-regression` finds a regression.
pub const EXIT_REGRESSION: i32 = 3;

/// Runs `perfunc diff`; returns the exit status.
pub fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    let opts = DiffOptions {
        alpha: args.alpha,
        threshold: args.threshold / 100.0,
        counter: args.counter.clone(),
        analysis: args.analysis.options(),
        ..DiffOptions::default()
    };
    let base = load(&args.base, &opts)?;
    let new = load(&args.new, &opts)?;
    super::report::warn_violations(base.analysis());
    super::report::warn_violations(new.analysis());
    let result = diff::compare(&base, &new, &opts)?;
    let mut out = BufWriter::new(io::stdout().lock());
    diff::write_diff(&result, args.format, &mut out)?;
    out.flush()?;
    if let Some(path) = &args.flamegraph {
        differential_flamegraph(&base, &new, args, path)?;
    }
    let Some(pct) = args.fail_on_regression else {
        return Ok(0);
    };
    let text = |change: Option<f64>| {
        change.map_or_else(|| "from 0".to_owned(), |c| format!("{:+.1}%", c * 100.0))
    };
    let regressions = result.regressions(pct / 100.0);
    for (function, counter, change) in &regressions {
        eprintln!(
            "perfunc: regression: {function} {counter} {}",
            text(*change)
        );
    }
    for f in &result.functions {
        for c in &f.counters {
            if c.verdict == diff::Verdict::Regressed && c.test.is_some_and(|t| !t.gates()) {
                eprintln!(
                    "perfunc: not gated: {} {} {} (too few runs; beyond ×{} per call): \
                     record both with --repeat to gate on it",
                    f.name,
                    c.name,
                    text(c.change),
                    diff::ONE_RUN_FACTOR
                );
            }
        }
    }
    Ok(if regressions.is_empty() {
        0
    } else {
        EXIT_REGRESSION
    })
}

fn load(path: &Path, opts: &DiffOptions) -> anyhow::Result<Run> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let reader = TraceReader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(diff::load(&path.display().to_string(), reader, opts)?)
}

/// Writes the differential flamegraph of `args.counter` (or the first
/// counter of the base trace that the new one has).
fn differential_flamegraph(
    base: &Run,
    new: &Run,
    args: &DiffArgs,
    path: &Path,
) -> anyhow::Result<()> {
    let (b, n) = (base.analysis(), new.analysis());
    let index_in = |a: &crate::analysis::Analysis, name: &str| {
        a.trace.counters.iter().position(|c| c.name == name)
    };
    let name = match &args.counter {
        Some(name) => name.clone(),
        None => b
            .trace
            .counters
            .iter()
            .map(|c| c.name.clone())
            .find(|name| index_in(n, name).is_some())
            .context("the traces have no counter in common")?,
    };
    let (bi, ni) = index_in(b, &name)
        .zip(index_in(n, &name))
        .with_context(|| format!("`{name}` is not a counter of both traces"))?;
    let base_folded = flame::folded(b, bi, Root::None);
    let new_folded = flame::folded(n, ni, Root::None);
    let mut svg_opts = flame::svg_options(n, ni, &new_folded);
    svg_opts.title = format!("{} → {} — {name}", args.base.display(), args.new.display());
    // inferno's own tooltips say each frame's change; keep them.
    svg_opts.tooltips.clear();
    if let Some(subtitle) = &mut svg_opts.subtitle {
        subtitle.push_str("; red: grew, blue: shrank (tooltips: change as a share of the total)");
    }
    write_file(path, |out| {
        Ok(perfunc_flamegraph::write_differential_svg(
            &base_folded,
            &new_folded,
            &svg_opts,
            args.normalize,
            out,
        )?)
    })?;
    eprintln!("perfunc: wrote {}", path.display());
    Ok(())
}
