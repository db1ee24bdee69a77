//! From an [`Analysis`] to flamegraph input: folded stacks of the probed
//! call tree weighted by one counter's self cost, with labels and
//! tooltips. Drawing is the perfunc-flamegraph crate's.

use std::collections::HashMap;

use perfunc_flamegraph::{Folded, SvgOptions, Tooltip};

use super::human::format_value;
use crate::analysis::Analysis;
use crate::callchain::Chains;
use crate::events::Unit;

/// The frame(s) under which the probed functions are stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// One frame for the process (the recorded command's name), and one
    /// per thread (`tid N`) when the tree was kept per thread.
    Process,
    /// No frame of perfunc's own (the differential flamegraph of two runs,
    /// whose commands may differ).
    None,
}

/// The call tree of `analysis` as folded stacks: each path of probed
/// functions weighted by the sum of `counter`'s self deltas of its calls
/// (calibrated when the analysis is), so that every frame's width is its
/// inclusive cost.
pub fn folded(analysis: &Analysis, counter: usize, root: Root) -> Folded {
    let process = process_name(&analysis.trace.command);
    let mut folded = Folded::new();
    for path in &analysis.tree {
        let mut frames = Vec::with_capacity(path.path.len() + 2);
        if root == Root::Process {
            frames.push(process.clone());
            if let Some(tid) = path.tid {
                frames.push(format!("tid {tid}"));
            }
        }
        frames.extend(
            path.path
                .iter()
                .map(|&probe| function_name(analysis, probe)),
        );
        // Sums of whole units, exact in f64 up to 2^53.
        folded.add(&frames, path.self_[counter].round() as i128);
    }
    folded
}

/// Self cost per thread (with a per-thread tree), caller chain (an id of
/// [`Chains`]) and probe: what [`folded_with_callers`] draws.
pub type CallerSums = HashMap<(Option<u32>, Option<u32>, u32), i128>;

/// As [`folded`], with the callers each call's chain recorded above each
/// probed function, probed or not: `process;[tid N;]caller;...;function`.
/// Calls without a chain sit directly on the process (or thread) frame.
pub fn folded_with_callers(analysis: &Analysis, sums: &CallerSums, chains: &Chains) -> Folded {
    let process = process_name(&analysis.trace.command);
    let mut folded = Folded::new();
    for (&(tid, chain, probe), &value) in sums {
        let mut frames = vec![process.clone()];
        frames.extend(tid.map(|t| format!("tid {t}")));
        if let Some(id) = chain {
            frames.extend(chains.stack(id).iter().cloned());
        }
        frames.push(function_name(analysis, probe));
        folded.add(&frames, value);
    }
    folded
}

/// Title, subtitle, unit and per-function tooltips for a flamegraph of
/// `counter`.
pub fn svg_options(analysis: &Analysis, counter: usize, folded: &Folded) -> SvgOptions {
    let spec = &analysis.trace.counters[counter];
    let unit = spec.unit;
    let mut subtitle = format!(
        "frame width: inclusive {} ({}); {}",
        spec.name,
        unit_name(unit),
        calibration_note(analysis)
    );
    let clamped = folded.clamped();
    if clamped.stacks > 0 {
        subtitle.push_str(&format!(
            "; {} call paths with a negative calibrated self cost (together {}) drawn as 0",
            clamped.stacks,
            format_value(clamped.total as f64, unit)
        ));
    }
    SvgOptions {
        title: format!("{} — {}", analysis.trace.command, spec.name),
        subtitle: Some(subtitle),
        count_name: match unit {
            Unit::Nanoseconds => format!("ns of {}", spec.name),
            Unit::Count => spec.name.clone(),
        },
        tooltips: tooltips(analysis, counter),
        width: None,
    }
}

/// One tooltip per function: its used calls, total inclusive cost and
/// mean per call, over all its call paths.
fn tooltips(analysis: &Analysis, counter: usize) -> Vec<Tooltip> {
    let spec = &analysis.trace.counters[counter];
    let (unit, name) = (spec.unit, &spec.name);
    analysis
        .functions
        .iter()
        .filter_map(|f| {
            let c = f.counters.get(counter)?;
            let text = format!(
                "{}: {} call{}, {} {name} in all, {} per call",
                f.name,
                f.used,
                if f.used == 1 { "" } else { "s" },
                format_value(c.sum, unit),
                format_value(c.mean, unit),
            );
            Some(Tooltip {
                function: f.name.clone(),
                text,
            })
        })
        .collect()
}

/// What the values are: calibrated, and how, or raw, and why.
pub fn calibration_note(analysis: &Analysis) -> String {
    match (&analysis.calibration, analysis.trace.has_profile) {
        (Some(info), _) => format!(
            "probes' cost subtracted ({} baseline, calibrated on {})",
            info.statistic, info.profile.kernel_release
        ),
        (None, true) => "raw values (--baseline off)".to_owned(),
        (None, false) => "raw values (the trace holds no calibration profile)".to_owned(),
    }
}

/// The name of the recorded program: the last path component of the
/// command's first word (or `pid N` for an attached process).
pub fn process_name(command: &str) -> String {
    if command.starts_with("pid ") {
        return command.to_owned();
    }
    if command.starts_with("system-wide") {
        return "system-wide".to_owned();
    }
    let program = command.split_whitespace().next().unwrap_or(command);
    program.rsplit('/').next().unwrap_or(program).to_owned()
}

fn function_name(analysis: &Analysis, probe: u32) -> String {
    analysis
        .functions
        .iter()
        .find(|f| f.probe == probe)
        .map_or_else(|| format!("probe {probe}"), |f| f.name.clone())
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Nanoseconds => "ns",
        Unit::Count => "count",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{calibrated, nested};

    fn text(folded: &Folded) -> String {
        let mut out = Vec::new();
        folded.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn folded_page_faults_of_the_nested_tree() {
        let a = nested();
        assert_eq!(
            text(&folded(&a, 0, Root::Process)),
            "workloads;pf_outer 0\n\
             workloads;pf_outer;pf_middle 0\n\
             workloads;pf_outer;pf_middle;pf_touch 60\n\
             workloads;pf_outer;pf_touch 10\n"
        );
        assert_eq!(
            text(&folded(&a, 1, Root::None)),
            "pf_outer 3100\n\
             pf_outer;pf_middle 15000\n\
             pf_outer;pf_middle;pf_touch 30000\n\
             pf_outer;pf_touch 10000\n"
        );
    }

    #[test]
    fn per_thread_trees_get_a_thread_frame() {
        let mut a = nested();
        let mut second = a.tree.clone();
        for path in &mut a.tree {
            path.tid = Some(7);
        }
        for path in &mut second {
            path.tid = Some(9);
        }
        a.tree.extend(second);
        let folded = folded(&a, 0, Root::Process);
        let lines = text(&folded);
        assert!(lines.contains("workloads;tid 7;pf_outer;pf_touch 10\n"));
        assert!(lines.contains("workloads;tid 9;pf_outer;pf_middle;pf_touch 60\n"));
        assert_eq!(folded.total(), 140);
    }

    #[test]
    fn labels_name_the_command_counter_and_calibration() {
        let a = nested();
        let opts = svg_options(&a, 0, &folded(&a, 0, Root::Process));
        assert_eq!(opts.title, "/tmp/workloads nested 5 — page-faults");
        assert_eq!(
            opts.subtitle.as_deref(),
            Some(
                "frame width: inclusive page-faults (count); \
                 raw values (the trace holds no calibration profile)"
            )
        );
        assert_eq!(opts.count_name, "page-faults");
        assert_eq!(
            opts.tooltips[0],
            Tooltip {
                function: "pf_outer".into(),
                text: "pf_outer: 5 calls, 70 page-faults in all, 14 per call".into(),
            }
        );
    }

    #[test]
    fn calibrated_labels_and_clamped_paths() {
        let mut a = calibrated();
        a.tree[3].self_[1] = -250.0;
        let folded = folded(&a, 1, Root::Process);
        let opts = svg_options(&a, 1, &folded);
        assert_eq!(opts.count_name, "ns of task-clock");
        assert_eq!(
            opts.subtitle.as_deref(),
            Some(
                "frame width: inclusive task-clock (ns); probes' cost subtracted \
                 (median baseline, calibrated on 6.18.0); 1 call paths with a \
                 negative calibrated self cost (together -250 ns) drawn as 0"
            )
        );
    }

    #[test]
    fn process_names() {
        assert_eq!(process_name("/usr/bin/app --x 1"), "app");
        assert_eq!(process_name("./app"), "app");
        assert_eq!(process_name("pid 42"), "pid 42");
        assert_eq!(process_name("system-wide: ./app x"), "system-wide");
    }
}
