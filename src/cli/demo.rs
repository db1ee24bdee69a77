//! `perfunc demo`: records the workload built into perfunc and shows what
//! was recorded, with nothing to install or build.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;

use anyhow::Context;

use super::record::{select_counters, Plan};
use super::DemoArgs;
use crate::probe::RecordTarget;
use crate::trace::{Chunk, RecordKind, TraceReader};

/// The demo's functions, as demangled Rust names.
const DEMO_FUNCTIONS: &str = "perfunc::demo::*";
/// Requests the workload handles.
const ITERATIONS: &str = "200";

/// Runs `perfunc demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find perfunc's own executable")?;
    let (output, keep) = match &args.output {
        Some(path) => (path.clone(), true),
        None => (
            std::env::temp_dir().join(format!("perfunc-demo-{}.trace", std::process::id())),
            false,
        ),
    };
    let plan = Plan {
        counters: select_counters(&args.events)?,
        functions: vec![DEMO_FUNCTIONS.to_owned()],
        target: RecordTarget::Command(vec![
            exe.into_os_string(),
            "__workload".into(),
            ITERATIONS.into(),
        ]),
        output: output.clone(),
        buffer_bytes: 32 << 20,
        duration: None,
        quiet: false,
    };
    eprintln!(
        "perfunc: demo: recording {} requests of the built-in workload, probing {DEMO_FUNCTIONS}",
        ITERATIONS
    );
    let outcome = plan.record();
    let status = outcome.map(|o| o.report(&plan));
    let summary = status.as_ref().ok().map(|_| summarize(&output));
    if !keep {
        let _ = std::fs::remove_file(&output);
    }
    let status = status?;
    summary.context("no trace to summarize")??;
    Ok(status)
}

/// Prints, per function, the calls recorded and the mean of each counter
/// over entry/return pairs of the same thread.
fn summarize(path: &std::path::Path) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut reader = TraceReader::new(BufReader::new(file))?;
    let header = reader.header().clone();
    let mut entries: BTreeMap<u32, u64> = BTreeMap::new();
    let mut returns: BTreeMap<u32, u64> = BTreeMap::new();
    while let Some(chunk) = reader.next_chunk()? {
        if let Chunk::Samples(block) = chunk {
            for s in block.iter() {
                let map = match s.kind() {
                    RecordKind::Entry => &mut entries,
                    RecordKind::Return => &mut returns,
                };
                *map.entry(s.probe()).or_default() += 1;
            }
        }
    }
    println!(
        "counters: {}",
        header
            .counters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{:>10} {:>10}  FUNCTION", "ENTRIES", "RETURNS");
    for probe in &header.probes {
        println!(
            "{:>10} {:>10}  {}",
            entries.get(&probe.id).copied().unwrap_or(0),
            returns.get(&probe.id).copied().unwrap_or(0),
            probe.function
        );
    }
    Ok(())
}
