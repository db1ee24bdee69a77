//! From an [`Analysis`] to flamegraph input: folded stacks of the probed
//! call tree weighted by one counter's self cost, with labels and
//! tooltips. Drawing is the perfunc-flamegraph crate's.

use std::collections::HashMap;

use perfunc_flamegraph::{Folded, SvgOptions, Tooltip};

use super::human::format_value;
use crate::analysis::{Analysis, Call};
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
    let names = Names::new(analysis);
    let mut folded = Folded::new();
    for path in &analysis.tree {
        let mut frames = Vec::with_capacity(path.path.len() + 2);
        if root == Root::Process {
            frames.push(process.clone());
            if let Some(tid) = path.tid {
                frames.push(format!("tid {tid}"));
            }
        }
        frames.extend(path.path.iter().map(|&probe| names.get(probe)));
        // Sums of whole units, exact in f64 up to 2^53.
        folded.add(&frames, path.self_[counter].round() as i128);
    }
    folded
}

/// Every call of a trace with its caller chain, to stack the calls under
/// their callers ([`CallerTree::folded`]).
#[derive(Debug, Default)]
pub struct CallerTree {
    calls: Vec<CallerRec>,
    /// (tid, entry time) to an index into `calls`.
    index: HashMap<(u32, u64), usize>,
}

#[derive(Debug)]
struct CallerRec {
    tid: u32,
    probe: u32,
    chain: Option<u32>,
    parent: Option<u64>,
    /// The self cost drawn (0 for calls left out of the statistics).
    value: i128,
}

impl CallerTree {
    /// Adds a call: its chain (an id of [`Chains`]), and the self cost to
    /// draw (`None` for a call left out of the statistics, which still
    /// places the calls made inside it).
    pub fn push(&mut self, call: &Call, chain: Option<u32>, value: Option<i128>) {
        self.index.insert((call.tid, call.start), self.calls.len());
        self.calls.push(CallerRec {
            tid: call.tid,
            probe: call.probe,
            chain,
            parent: call.parent.map(|(_, start)| start),
            value: value.unwrap_or(0),
        });
    }

    /// The folded stacks: each call's self cost at `process;[tid N;]
    /// callers;function`. The callers are the call's chain; a call without
    /// one (a kernel probe) takes those of the probed call it ran in, and
    /// that call; one without either sits on the process (or thread)
    /// frame.
    pub fn folded(&self, analysis: &Analysis, chains: &Chains, per_thread: bool) -> Folded {
        let names = Names::new(analysis);
        let mut derived: HashMap<usize, Vec<String>> = HashMap::new();
        let mut sums: HashMap<(Option<u32>, Vec<String>, u32), i128> = HashMap::new();
        let mut by_chain: HashMap<(Option<u32>, Option<u32>, u32), i128> = HashMap::new();
        for (i, c) in self.calls.iter().enumerate() {
            let tid = per_thread.then_some(c.tid);
            if c.chain.is_some() || c.parent.is_none() {
                *by_chain.entry((tid, c.chain, c.probe)).or_default() += c.value;
            } else {
                let callers = self.callers(i, &names, chains, &mut derived);
                *sums.entry((tid, callers, c.probe)).or_default() += c.value;
            }
        }
        let process = process_name(&analysis.trace.command);
        let mut folded = Folded::new();
        let mut add = |tid: Option<u32>, callers: &[String], probe: u32, value: i128| {
            let mut frames = vec![process.clone()];
            frames.extend(tid.map(|t| format!("tid {t}")));
            frames.extend(callers.iter().cloned());
            frames.push(names.get(probe));
            folded.add(&frames, value);
        };
        for ((tid, chain, probe), value) in by_chain {
            add(
                tid,
                chain.map_or(&[][..], |id| chains.stack(id)),
                probe,
                value,
            );
        }
        for ((tid, callers, probe), value) in sums {
            add(tid, &callers, probe, value);
        }
        folded
    }

    /// The callers of call `i`, outermost first.
    fn callers(
        &self,
        i: usize,
        names: &Names<'_>,
        chains: &Chains,
        memo: &mut HashMap<usize, Vec<String>>,
    ) -> Vec<String> {
        let c = &self.calls[i];
        if let Some(id) = c.chain {
            return chains.stack(id).to_vec();
        }
        let Some(&parent) = c.parent.and_then(|start| self.index.get(&(c.tid, start))) else {
            return Vec::new();
        };
        if let Some(hit) = memo.get(&parent) {
            return hit.clone();
        }
        let mut callers = self.callers(parent, names, chains, memo);
        callers.push(names.get(self.calls[parent].probe));
        memo.insert(parent, callers.clone());
        callers
    }
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
            "probes' cost subtracted ({} baseline, {} on {})",
            info.statistic,
            match info.source {
                perfunc_calibrate::Source::InRun => "measured in the run",
                perfunc_calibrate::Source::Calibrate => "cached profile",
            },
            info.profile.kernel_release
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

/// The functions' names by probe, looked up once per frame drawn.
struct Names<'a>(HashMap<u32, &'a str>);

impl<'a> Names<'a> {
    fn new(analysis: &'a Analysis) -> Self {
        let mut names = HashMap::new();
        for f in &analysis.functions {
            names.entry(f.probe).or_insert(f.name.as_str());
        }
        Self(names)
    }

    fn get(&self, probe: u32) -> String {
        self.0
            .get(&probe)
            .map_or_else(|| format!("probe {probe}"), |&name| name.to_owned())
    }
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
        folded.to_string()
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
                 (median baseline, cached profile on 6.18.0); 1 call paths with a \
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
