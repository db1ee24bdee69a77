//! Calibration as a recording sees it: the key a profile is cached under,
//! the cache, and the per-class deltas of a calibration trace. Measuring
//! is `perfunc calibrate` (src/cli/calibrate.rs); the model and the
//! compensation arithmetic are the `perfunc-calibrate` crate.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;

use perfunc_calibrate::{Profile, ProfileKey, Statistic};

use crate::events::CounterSpec;
use crate::trace::{Chunk, OwnedSample, RecordKind, TraceError, TraceHeader, TraceReader};

/// The probe mechanisms a profile was measured with: uprobes placed
/// through tracefs, and system-call tracepoint pairs (class
/// [`TRACEPOINT_CLASS`]).
pub const MECHANISM: &str = "tracefs-uprobe+tracepoint";

/// The class of tracepoint-pair probes (system calls and `tp:` pairs) in
/// profiles and trace headers.
pub const TRACEPOINT_CLASS: &str = "tracepoint";

/// The system call whose tracepoint pair calibration measures: it does
/// almost nothing (reads one field of the task), so its delta is the
/// probes' cost.
pub const CALIBRATION_SYSCALL: &str = "getppid";

/// The calibration targets compiled into perfunc.
pub const TARGET_PATTERN: &str = "perfunc_cal_*";

/// The nesting target's symbol.
pub const NEST_SYMBOL: &str = "perfunc_cal_nest";

/// The key of a profile for `counters` on this kernel and CPU.
pub fn key(counters: &[CounterSpec], kernel_release: &str, cpu_model: &str) -> ProfileKey {
    ProfileKey {
        kernel_release: kernel_release.to_owned(),
        cpu_model: cpu_model.to_owned(),
        counters: counters.iter().map(|c| c.name.clone()).collect(),
        mechanism: MECHANISM.to_owned(),
    }
}

/// Where profiles are cached: `$XDG_CACHE_HOME/perfunc`, else
/// `$HOME/.cache/perfunc`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("perfunc"))
}

/// Raw deltas of a calibration trace: `(class, counter, deltas)`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CalibrationDeltas {
    /// Deltas of each target, by its class.
    pub own: Vec<(String, String, Vec<f64>)>,
    /// Deltas of the nesting target, by the class of the target inside it.
    pub nested: Vec<(String, String, Vec<f64>)>,
}

struct Open {
    probe: u32,
    values: Vec<u64>,
    child_class: Option<String>,
}

/// Pairs the entries and returns of a calibration trace (the targets do
/// not nest except inside the nesting target) and collects the deltas.
pub fn deltas<R: Read>(mut reader: TraceReader<R>) -> Result<CalibrationDeltas, TraceError> {
    let header = reader.header().clone();
    let mut samples = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        if let Chunk::Samples(block) = chunk {
            samples.extend(block.iter().map(crate::trace::OwnedSample::from));
        }
    }
    let counters: Vec<String> = header.counters.iter().map(|c| c.name.clone()).collect();
    Ok(deltas_of(
        samples,
        |probe| {
            header
                .probes
                .get(probe as usize)
                .map(|p| (p.raw_name.as_str(), p.class.as_str()))
        },
        &counters,
    ))
}

/// Pairs calibration samples, whose probe `p` is the symbol and class
/// `site(p)`, and collects the deltas of `counters` (the samples' values,
/// in order). A sample of a probe `site` does not know is left out.
pub fn deltas_of<'a>(
    mut samples: Vec<OwnedSample>,
    site: impl Fn(u32) -> Option<(&'a str, &'a str)>,
    counters: &[String],
) -> CalibrationDeltas {
    samples.sort_by_key(|s| (s.tid, s.time));
    let mut own: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut nested: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut stacks: HashMap<u32, Vec<Open>> = HashMap::new();
    for s in samples {
        let Some((raw_name, class)) = site(s.probe) else {
            continue;
        };
        let stack = stacks.entry(s.tid).or_default();
        match s.kind {
            RecordKind::Entry => stack.push(Open {
                probe: s.probe,
                values: s.values,
                child_class: None,
            }),
            RecordKind::Return => {
                let Some(open) = stack.pop() else { continue };
                if open.probe != s.probe {
                    // Not a calibration call shape: drop what is open.
                    stack.clear();
                    continue;
                }
                let (into, key_class) = if raw_name == NEST_SYMBOL {
                    match &open.child_class {
                        Some(child) => (&mut nested, child.clone()),
                        None => continue,
                    }
                } else {
                    (&mut own, class.to_owned())
                };
                for (counter, (end, start)) in
                    counters.iter().zip(s.values.iter().zip(&open.values))
                {
                    into.entry((key_class.clone(), counter.clone()))
                        .or_default()
                        .push(end.wrapping_sub(*start) as i64 as f64);
                }
                if let Some(parent) = stack.last_mut() {
                    parent.child_class = Some(class.to_owned());
                }
            }
        }
    }
    let flatten = |m: BTreeMap<(String, String), Vec<f64>>| {
        m.into_iter()
            .map(|((class, counter), v)| (class, counter, v))
            .collect()
    };
    CalibrationDeltas {
        own: flatten(own),
        nested: flatten(nested),
    }
}

/// The 1-minute load average (`/proc/loadavg`), if it can be read.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the probes of each probe site cost, per counter: the `own` and
/// `descendant` terms of the compensation, looked up by the class of the
/// probed instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCosts {
    /// `own[probe][counter]`: subtracted from the probe's own calls.
    pub own: Vec<Vec<f64>>,
    /// `descendant[probe][counter]`: subtracted from every probed call a
    /// call of this probe is nested in.
    pub descendant: Vec<Vec<f64>>,
    /// The baseline summaries, `[probe][counter]`, for the noise test.
    pub baselines: Vec<Vec<Option<perfunc_calibrate::Summary>>>,
    /// The statistic used.
    pub statistic: Statistic,
}

/// The profile stored in a trace header, if any.
pub fn profile_of(
    header: &TraceHeader,
) -> Option<Result<Profile, perfunc_calibrate::CalibrationError>> {
    let value = header.calibration.as_ref()?;
    Some(Profile::from_json(&value.to_string()))
}

impl ProbeCosts {
    /// The costs of every probe of `header` under `profile`. A class or
    /// counter the profile does not hold costs 0 (and has no baseline).
    pub fn new(header: &TraceHeader, profile: &Profile, statistic: Statistic) -> ProbeCosts {
        let per_probe = |f: &dyn Fn(&str, &str) -> Option<f64>| -> Vec<Vec<f64>> {
            header
                .probes
                .iter()
                .map(|p| {
                    header
                        .counters
                        .iter()
                        .map(|c| f(&p.class, &c.name).unwrap_or(0.0))
                        .collect()
                })
                .collect()
        };
        ProbeCosts {
            own: per_probe(&|class, counter| profile.own_cost(class, counter, statistic)),
            descendant: per_probe(&|class, counter| {
                profile.descendant_cost(class, counter, statistic)
            }),
            baselines: header
                .probes
                .iter()
                .map(|p| {
                    header
                        .counters
                        .iter()
                        .map(|c| {
                            profile
                                .baseline(&p.class, &c.name)
                                .map(|b| b.summary.clone())
                        })
                        .collect()
                })
                .collect(),
            statistic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{parse_counter, NoPmus};
    use crate::trace::{ProbeKind, ProbeSite, SampleIn, Target, TraceWriter};

    fn site(id: u32, raw: &str, class: &str) -> ProbeSite {
        ProbeSite {
            key: None,
            id,
            function: raw.to_owned(),
            raw_name: raw.to_owned(),
            binary: "/usr/bin/perfunc".to_owned(),
            build_id: None,
            addr: 0,
            offset: 0,
            size: 1,
            class: class.to_owned(),
            kind: ProbeKind::Uprobe,
        }
    }

    fn header() -> TraceHeader {
        TraceHeader {
            callchains: false,
            follow: None,
            counter_decision: None,
            key_column: false,
            perfunc_version: "0".into(),
            created_unix_ns: 0,
            command_line: vec![],
            target: Target::Command { argv: vec![] },
            kernel_release: "6.18".into(),
            cpu_model: "cpu".into(),
            ncpus: 1,
            clock: "CLOCK_MONOTONIC".into(),
            counters: vec![parse_counter("task-clock", &NoPmus).unwrap()],
            probes: vec![
                site(0, "perfunc_cal_push_rbp", "push-rbp"),
                site(1, "perfunc_cal_ret", "ret"),
                site(2, NEST_SYMBOL, "push-rbp"),
            ],
            calibration: None,
        }
    }

    /// (probe, kind, time, value) on one thread.
    fn trace(records: &[(u32, RecordKind, u64, u64)]) -> Vec<u8> {
        let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
        for &(probe, kind, time, value) in records {
            w.push_sample(&SampleIn {
                key: 0,
                time,
                pid: 1,
                tid: 1,
                probe,
                cpu: 0,
                kind,
                time_enabled: 0,
                time_running: 0,
                values: &[value],
            })
            .unwrap();
        }
        w.finish(&Default::default()).unwrap()
    }

    #[test]
    fn deltas_by_class_and_nested_by_inner_class() {
        use RecordKind::{Entry, Return};
        let bytes = trace(&[
            (0, Entry, 1, 100),
            (0, Return, 2, 1_500),
            (1, Entry, 3, 2_000),
            (1, Return, 4, 14_000),
            // nest around ret: 20,000 - 16,000
            (2, Entry, 5, 16_000),
            (1, Entry, 6, 17_000),
            (1, Return, 7, 29_000),
            (2, Return, 8, 31_000),
        ]);
        let d = deltas(TraceReader::new(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(
            d.own,
            vec![
                ("push-rbp".into(), "task-clock".into(), vec![1_400.0]),
                ("ret".into(), "task-clock".into(), vec![12_000.0, 12_000.0]),
            ]
        );
        assert_eq!(
            d.nested,
            vec![("ret".into(), "task-clock".into(), vec![15_000.0])]
        );
    }

    #[test]
    fn probe_costs_follow_the_class_of_each_probe() {
        let h = header();
        let k = key(&h.counters, "6.18", "cpu");
        let mut profile = Profile::from_deltas(
            k,
            0,
            3,
            1,
            vec![
                (
                    "push-rbp".to_string(),
                    "task-clock".to_string(),
                    vec![1_000.0, 1_400.0, 1_500.0],
                ),
                ("ret".to_string(), "task-clock".to_string(), vec![12_000.0]),
            ],
        );
        profile.set_nested(vec![(
            "ret".to_string(),
            "task-clock".to_string(),
            vec![16_400.0],
        )]);
        let costs = ProbeCosts::new(&h, &profile, Statistic::Median);
        assert_eq!(
            costs.own,
            vec![vec![1_400.0], vec![12_000.0], vec![1_400.0]]
        );
        // ret nested: 16,400 - the nest's own 1,400; push-rbp: its own cost.
        assert_eq!(
            costs.descendant,
            vec![vec![1_400.0], vec![15_000.0], vec![1_400.0]]
        );
    }

    #[test]
    fn key_names_the_counters_and_mechanism() {
        let k = key(&header().counters, "6.18.44", "Some CPU");
        assert_eq!(k.counters, vec!["task-clock".to_owned()]);
        assert_eq!(k.mechanism, "tracefs-uprobe+tracepoint");
    }
}
