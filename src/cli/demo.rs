//! `perfunc demo`: records the workload built into perfunc and shows what
//! was recorded, with nothing to install or build.

use anyhow::Context;

use super::record::{select_counters, Plan};
use super::report::{analyze_file, print_table};
use super::DemoArgs;
use crate::analysis::AnalysisOptions;
use crate::probe::RecordTarget;

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
    if !keep {
        // One left by a killed perfunc of the same pid would be kept as .old.
        let _ = std::fs::remove_file(&output);
    }
    let (counters, counter_decision) = select_counters(&args.events)?;
    let plan = Plan {
        counters,
        counter_decision,
        functions: vec![DEMO_FUNCTIONS.to_owned()],
        kernel: Vec::new(),
        target: RecordTarget::Command(vec![
            exe.into_os_string(),
            "__workload".into(),
            ITERATIONS.into(),
        ]),
        output: output.clone(),
        buffer_bytes: 32 << 20,
        duration: None,
        repeat: 1,
        quiet: false,
        calibration: super::calibrate::CalibrationMode::Auto,
        skip_endbr64: true,
        callchain: crate::probe::Callchain::None,
        follow: crate::probe::Follow::Auto,
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

/// Prints the report of the demo's trace.
fn summarize(path: &std::path::Path) -> anyhow::Result<()> {
    let analysis = analyze_file(path, &AnalysisOptions::default())?;
    print_table(&analysis)
}
