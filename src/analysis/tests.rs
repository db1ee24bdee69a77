//! Golden analyses of hand-built traces: each fixture states its expected
//! numbers with `assert_eq!`, and the whole analysis is pinned with an
//! insta snapshot under `snapshots/`.

use std::collections::BTreeMap;

use super::order::Orderer;
use super::*;
use crate::events::{parse_counter, NoPmus};
use perfunc_calibrate::{Profile, ProfileKey, Statistic};

use crate::trace::{
    Event, Footer, OwnedSample, ProbeKind, ProbeSite, RecordKind, SampleIn, Target, TraceWriter,
};

const OUTER: u32 = 0;
const MIDDLE: u32 = 1;
const LEAF: u32 = 2;

fn header(counters: &[&str], functions: &[&str]) -> TraceHeader {
    TraceHeader {
        callchains: false,
        follow: None,
        counter_decision: None,
        key_column: false,
        perfunc_version: "0.1.0".into(),
        created_unix_ns: 0,
        command_line: vec!["perfunc".into(), "record".into()],
        target: Target::Command {
            argv: vec!["./app".into(), "--small".into()],
        },
        kernel_release: "6.1.0".into(),
        cpu_model: "test cpu".into(),
        ncpus: 2,
        clock: "CLOCK_MONOTONIC".into(),
        counters: counters
            .iter()
            .map(|name| parse_counter(name, &NoPmus).unwrap())
            .collect(),
        probes: functions
            .iter()
            .enumerate()
            .map(|(i, function)| ProbeSite {
                key: None,
                id: i as u32,
                function: (*function).into(),
                raw_name: (*function).into(),
                binary: "/usr/bin/app".into(),
                build_id: None,
                addr: 0x1000 + 0x100 * i as u64,
                offset: 0x1000 + 0x100 * i as u64,
                size: 0x80,
                class: "push-rbp".into(),
                kind: ProbeKind::Uprobe,
            })
            .collect(),
        calibration: None,
    }
}

/// Deltas of one class and counter: `(class, counter, deltas)`.
type Deltas<'a> = (&'a str, &'a str, &'a [f64]);

/// A calibration profile measured on the fixtures' kernel and CPU, from
/// the own deltas of each class and the nesting target's deltas.
fn profile(own: &[Deltas<'_>], nested: &[Deltas<'_>]) -> Profile {
    let owned = |list: &[Deltas<'_>]| -> Vec<(String, String, Vec<f64>)> {
        list.iter()
            .map(|(class, counter, v)| ((*class).into(), (*counter).into(), v.to_vec()))
            .collect()
    };
    let key = ProfileKey {
        kernel_release: "6.1.0".into(),
        cpu_model: "test cpu".into(),
        counters: vec!["instructions".into()],
        mechanism: "tracefs-uprobe".into(),
    };
    let mut profile = Profile::from_deltas(key, 0, 1_000, 3, owned(own));
    profile.set_nested(owned(nested));
    profile
}

/// `header` with the probes' instruction classes and a stored profile.
fn with_profile(mut header: TraceHeader, classes: &[&str], profile: &Profile) -> TraceHeader {
    for (probe, class) in header.probes.iter_mut().zip(classes) {
        probe.class = (*class).into();
    }
    header.calibration = Some(serde_json::from_str(&profile.to_json()).unwrap());
    header
}

/// Three nested functions, for most fixtures.
const APP: [&str; 3] = ["app::outer", "app::middle", "app::leaf"];

/// A sample on thread 1, CPU 0, whose counter group ran the whole time.
fn sample(kind: RecordKind, time: u64, probe: u32, values: &[u64]) -> SampleIn<'_> {
    SampleIn {
        key: 0,
        time,
        pid: 1,
        tid: 1,
        probe,
        cpu: 0,
        kind,
        time_enabled: time,
        time_running: time,
        values,
    }
}

fn entry(time: u64, probe: u32, values: &[u64]) -> SampleIn<'_> {
    sample(RecordKind::Entry, time, probe, values)
}

fn exit(time: u64, probe: u32, values: &[u64]) -> SampleIn<'_> {
    sample(RecordKind::Return, time, probe, values)
}

/// Builds a trace in memory.
struct Fixture {
    writer: TraceWriter<Vec<u8>>,
    last_time: u64,
}

impl Fixture {
    fn new(counters: &[&str], functions: &[&str]) -> Self {
        Self::with_header(&header(counters, functions))
    }

    fn with_header(header: &TraceHeader) -> Self {
        Self {
            writer: TraceWriter::new(Vec::new(), header).unwrap(),
            last_time: 0,
        }
    }

    fn push(&mut self, s: SampleIn<'_>) -> &mut Self {
        self.last_time = self.last_time.max(s.time);
        self.writer.push_sample(&s).unwrap();
        self
    }

    fn event(&mut self, e: Event) -> &mut Self {
        self.writer.push_event(&e).unwrap();
        self
    }

    /// Ends a recording round.
    fn round(&mut self) -> &mut Self {
        self.writer.flush().unwrap();
        self
    }

    fn finish(self, lost: u64) -> Vec<u8> {
        let footer = Footer {
            duration_ns: self.last_time,
            samples: self.writer.samples_written(),
            lost,
            exit: None,
            interrupted: false,
        };
        self.writer.finish(&footer).unwrap()
    }
}

fn options() -> AnalysisOptions {
    AnalysisOptions::default()
}

fn strict() -> AnalysisOptions {
    AnalysisOptions {
        strict: true,
        ..options()
    }
}

fn run(bytes: &[u8], opts: &AnalysisOptions) -> Analysis {
    analyze(TraceReader::new(bytes).unwrap(), opts).unwrap()
}

fn calls(bytes: &[u8], opts: &AnalysisOptions) -> (Analysis, Vec<Call>) {
    let mut calls = Vec::new();
    let analysis = analyze_calls(TraceReader::new(bytes).unwrap(), opts, |c| {
        calls.push(c.clone())
    })
    .unwrap();
    (analysis, calls)
}

fn func<'a>(analysis: &'a Analysis, name: &str) -> &'a FunctionStats {
    analysis
        .functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the analysis"))
}

fn counts(pairs: &[(Reason, u64)]) -> BTreeMap<Reason, u64> {
    pairs.iter().copied().collect()
}

/// A call path, its calls, inclusive and self sums.
type PathRow = (Vec<u32>, u64, Vec<f64>, Vec<f64>);

/// The rows of the call tree, by path.
fn tree(analysis: &Analysis) -> Vec<PathRow> {
    analysis
        .tree
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                p.calls,
                p.inclusive.clone(),
                p.self_.clone(),
            )
        })
        .collect()
}

/// outer → middle → leaf, then outer → leaf; instructions and page faults.
fn nesting() -> Vec<u8> {
    nesting_in(&header(&["instructions", "page-faults"], &APP))
}

/// [`nesting`] under `header` (instructions and page faults, [`APP`]).
fn nesting_in(header: &TraceHeader) -> Vec<u8> {
    let mut f = Fixture::with_header(header);
    f.push(entry(10, OUTER, &[100, 0]))
        .push(entry(20, MIDDLE, &[130, 1]))
        .push(entry(30, LEAF, &[150, 1]))
        .push(exit(40, LEAF, &[175, 3]))
        .push(exit(50, MIDDLE, &[200, 4]))
        .push(entry(60, LEAF, &[210, 4]))
        .push(exit(70, LEAF, &[220, 4]))
        .push(exit(80, OUTER, &[300, 6]));
    f.finish(0)
}

#[test]
fn nesting_gives_exact_inclusive_and_self() {
    let a = run(&nesting(), &options());
    let outer = &func(&a, "app::outer").counters;
    assert_eq!((outer[0].sum, outer[0].self_sum), (200.0, 120.0));
    assert_eq!((outer[1].sum, outer[1].self_sum), (6.0, 3.0));
    let middle = &func(&a, "app::middle").counters;
    assert_eq!((middle[0].sum, middle[0].self_sum), (70.0, 45.0));
    assert_eq!((middle[1].sum, middle[1].self_sum), (3.0, 1.0));
    let leaf = func(&a, "app::leaf");
    assert_eq!((leaf.calls, leaf.used), (2, 2));
    let c = &leaf.counters[0];
    assert_eq!((c.sum, c.mean, c.min, c.max), (35.0, 17.5, 10.0, 25.0));
    assert_eq!((c.p50, c.p90, c.p99), (10.0, 25.0, 25.0));
    assert_eq!(c.stddev, 112.5f64.sqrt());
    assert_eq!((c.self_sum, c.self_mean), (35.0, 17.5));
    assert!(c.exact);
    assert_eq!(
        tree(&a),
        [
            (vec![0], 1, vec![200.0, 6.0], vec![120.0, 3.0]),
            (vec![0, 1], 1, vec![70.0, 3.0], vec![45.0, 1.0]),
            (vec![0, 1, 2], 1, vec![25.0, 2.0], vec![25.0, 2.0]),
            (vec![0, 2], 1, vec![10.0, 0.0], vec![10.0, 0.0]),
        ]
    );
    assert_eq!(a.trace.command, "./app --small");
    assert_eq!((a.trace.records, a.trace.threads), (8, 1));
    assert_eq!((a.trace.duration_ns, a.trace.complete), (80, true));
    assert!(a.discarded.is_empty());
    insta::assert_yaml_snapshot!("nesting", a);
}

#[test]
fn calls_carry_depth_descendants_and_deltas() {
    let (a, calls) = calls(&nesting(), &options());
    assert_eq!(a, run(&nesting(), &options()));
    let shape: Vec<_> = calls
        .iter()
        .map(|c| (c.probe, c.depth, c.descendants, c.start, c.end))
        .collect();
    assert_eq!(
        shape,
        [
            (LEAF, 2, 0, 30, 40),
            (MIDDLE, 1, 1, 20, 50),
            (LEAF, 1, 0, 60, 70),
            (OUTER, 0, 3, 10, 80),
        ]
    );
    assert_eq!(calls[3].inclusive, [200, 6]);
    assert_eq!(calls[3].self_, [120, 3]);
    assert!(calls.iter().all(|c| c.tid == 1 && c.flags.is_empty()));
}

/// Naive `fib(n)` with one instruction of its own per call; returns the
/// inclusive instructions of every call, in return order.
fn fib(f: &mut Fixture, n: u64, clock: &mut u64, counter: &mut u64) -> Vec<u64> {
    *clock += 1;
    let start = *counter;
    f.push(entry(*clock, 0, &[start]));
    *counter += 1;
    let mut costs = Vec::new();
    if n >= 2 {
        costs.extend(fib(f, n - 1, clock, counter));
        costs.extend(fib(f, n - 2, clock, counter));
    }
    *clock += 1;
    f.push(exit(*clock, 0, &[*counter]));
    costs.push(*counter - start);
    costs
}

#[test]
fn recursion_of_any_depth_pairs() {
    let mut f = Fixture::new(&["instructions"], &["fib"]);
    let mut costs = fib(&mut f, 20, &mut 0, &mut 1_000);
    let (a, calls) = calls(&f.finish(0), &options());
    let fib = func(&a, "fib");
    assert_eq!((fib.calls, fib.used), (21_891, 21_891));
    let c = &fib.counters[0];
    assert_eq!(
        (c.sum, c.min, c.max),
        (costs.iter().sum::<u64>() as f64, 1.0, 21_891.0)
    );
    assert_eq!((c.self_sum, c.self_mean), (21_891.0, 1.0));
    costs.sort_unstable();
    let nearest = |q: usize| costs[(q * costs.len()).div_ceil(100) - 1] as f64;
    assert_eq!(
        (c.p50, c.p90, c.p99),
        (nearest(50), nearest(90), nearest(99))
    );
    assert_eq!(a.tree.len(), 20);
    assert_eq!(a.tree[19].path, [0; 20]);
    assert_eq!(calls.iter().map(|c| c.depth).max(), Some(19));
    let outermost = calls.last().unwrap();
    assert_eq!((outermost.depth, outermost.descendants), (0, 21_890));
    insta::assert_yaml_snapshot!("recursion", a);
}

/// A return without entry and entries without return, one ended by the
/// end of the trace and one by its thread's exit.
fn unmatched() -> Vec<u8> {
    let mut f = Fixture::new(&["instructions"], &["a", "b"]);
    let other = |s: SampleIn<'static>| SampleIn {
        tid: 2,
        cpu: 1,
        ..s
    };
    f.push(exit(5, 1, &[50]))
        .push(entry(10, 0, &[100]))
        .push(other(entry(12, 1, &[0])))
        .push(entry(20, 1, &[110]))
        .push(exit(30, 1, &[130]))
        .event(Event::Exit {
            time: 40,
            pid: 1,
            ppid: 0,
            tid: 2,
            ptid: 1,
        });
    f.finish(0)
}

#[test]
fn unmatched_calls_are_counted_by_reason() {
    let a = run(&unmatched(), &options());
    let fa = func(&a, "a");
    assert_eq!((fa.calls, fa.used), (1, 0));
    assert_eq!(fa.discarded, counts(&[(Reason::EntryWithoutReturn, 1)]));
    assert_eq!((fa.counters[0].sum, fa.counters[0].p50), (0.0, 0.0));
    let fb = func(&a, "b");
    assert_eq!((fb.calls, fb.used), (3, 1));
    assert_eq!(
        fb.discarded,
        counts(&[
            (Reason::ReturnWithoutEntry, 1),
            (Reason::EntryWithoutReturn, 1)
        ])
    );
    assert_eq!(fb.counters[0].sum, 20.0);
    assert_eq!(
        a.discarded,
        counts(&[
            (Reason::ReturnWithoutEntry, 1),
            (Reason::EntryWithoutReturn, 2)
        ])
    );
    assert_eq!(tree(&a), [(vec![0, 1], 1, vec![20.0], vec![20.0])]);
    assert_eq!(a.trace.threads, 2);
    insta::assert_yaml_snapshot!("unmatched", a);
}

#[test]
fn an_exit_ends_the_open_frames_of_its_thread_only() {
    let mut f = Fixture::new(&["instructions"], &["a", "b"]);
    let other = |s: SampleIn<'static>| SampleIn { tid: 2, ..s };
    f.push(entry(10, 0, &[0]))
        .push(other(entry(11, 1, &[0])))
        .event(Event::Exit {
            time: 20,
            pid: 1,
            ppid: 0,
            tid: 2,
            ptid: 1,
        })
        .push(other(exit(30, 1, &[5])))
        .push(exit(40, 0, &[9]));
    let a = run(&f.finish(0), &options());
    assert_eq!(func(&a, "a").counters[0].sum, 9.0);
    let fb = func(&a, "b");
    assert_eq!(
        fb.discarded,
        counts(&[
            (Reason::ReturnWithoutEntry, 1),
            (Reason::EntryWithoutReturn, 1)
        ])
    );
}

#[test]
fn a_return_deeper_in_the_stack_unwinds_the_frames_above() {
    let mut f = Fixture::new(&["instructions"], &APP);
    f.push(entry(10, OUTER, &[0]))
        .push(entry(20, LEAF, &[10]))
        .push(exit(30, LEAF, &[15]))
        .push(entry(40, MIDDLE, &[20]))
        .push(entry(50, LEAF, &[30]))
        .push(exit(60, OUTER, &[100]))
        .push(entry(70, MIDDLE, &[100]))
        .push(exit(80, MIDDLE, &[110]));
    let (a, calls) = calls(&f.finish(0), &options());
    let outer = func(&a, "app::outer");
    assert_eq!(
        (outer.counters[0].sum, outer.counters[0].self_sum),
        (100.0, 95.0)
    );
    for name in ["app::middle", "app::leaf"] {
        let stats = func(&a, name);
        assert_eq!((stats.calls, stats.used), (2, 1), "{name}");
        assert_eq!(stats.discarded, counts(&[(Reason::Unwound, 1)]), "{name}");
    }
    assert_eq!(func(&a, "app::middle").counters[0].sum, 10.0);
    assert_eq!(func(&a, "app::leaf").counters[0].sum, 5.0);
    let outer_call = calls.iter().find(|c| c.probe == OUTER).unwrap();
    assert_eq!(outer_call.descendants, 3);
    assert_eq!(
        calls.last().unwrap().depth,
        0,
        "the stack is clean after the skip"
    );
    assert_eq!(a.discarded, counts(&[(Reason::Unwound, 2)]));
    insta::assert_yaml_snapshot!("longjmp", a);
}

fn on_cpu(cpu: u16, s: SampleIn<'_>) -> SampleIn<'_> {
    SampleIn { cpu, ..s }
}

#[test]
fn migrated_calls_are_flagged_or_dropped_with_strict() {
    let mut f = Fixture::new(&["instructions"], &["f"]);
    f.push(entry(10, 0, &[0]))
        .push(on_cpu(1, exit(20, 0, &[7])))
        .push(on_cpu(1, entry(30, 0, &[7])))
        .push(on_cpu(1, exit(40, 0, &[10])));
    let bytes = f.finish(0);
    let a = run(&bytes, &options());
    let stats = func(&a, "f");
    assert_eq!((stats.calls, stats.used), (2, 2));
    assert_eq!(stats.flagged, counts(&[(Reason::Migrated, 1)]));
    assert_eq!(stats.counters[0].sum, 10.0);
    let s = run(&bytes, &strict());
    let stats = func(&s, "f");
    assert_eq!((stats.calls, stats.used), (2, 1));
    assert_eq!(stats.discarded, counts(&[(Reason::Migrated, 1)]));
    assert!(stats.flagged.is_empty());
    assert_eq!(stats.counters[0].sum, 3.0);
    insta::assert_yaml_snapshot!("migrated", (a, s));
}

#[test]
fn multiplexed_calls_are_flagged_and_never_scaled() {
    let mut f = Fixture::new(&["instructions"], &["f"]);
    let running = |time_running, s: SampleIn<'static>| SampleIn { time_running, ..s };
    f.push(entry(1_000, 0, &[0]))
        .push(running(1_060, exit(1_100, 0, &[50])))
        .push(running(1_060, entry(1_200, 0, &[50])))
        .push(running(1_160, exit(1_300, 0, &[80])));
    let (a, calls) = calls(&f.finish(0), &options());
    let stats = func(&a, "f");
    assert_eq!((stats.calls, stats.used), (2, 2));
    assert_eq!(stats.flagged, counts(&[(Reason::Multiplexed, 1)]));
    assert_eq!((stats.counters[0].max, stats.counters[0].min), (50.0, 30.0));
    assert_eq!(calls[0].flags, CallFlags::MULTIPLEXED);
    assert_eq!(calls[1].flags, CallFlags::NONE);
    insta::assert_yaml_snapshot!("multiplexed", a);
}

#[test]
fn context_switched_calls_are_flagged() {
    let mut f = Fixture::new(&["instructions", "cs"], &["f"]);
    f.push(entry(10, 0, &[0, 4]))
        .push(exit(20, 0, &[9, 5]))
        .push(entry(30, 0, &[9, 5]))
        .push(exit(40, 0, &[12, 5]));
    let a = run(&f.finish(0), &options());
    assert_eq!(a.trace.counters[1].name, "context-switches");
    let stats = func(&a, "f");
    assert_eq!(stats.flagged, counts(&[(Reason::ContextSwitched, 1)]));
    assert_eq!((stats.used, stats.counters[1].sum), (2, 1.0));
    insta::assert_yaml_snapshot!("context_switched", a);
}

/// Thread 1 on CPU 0 and thread 2 on CPU 1 each open `f`; records are lost
/// on CPU 0 while both are open; thread 1 then calls `g`.
fn lost(footer_lost: u64) -> Vec<u8> {
    let mut f = Fixture::new(&["instructions"], &["f", "g"]);
    let other = |s: SampleIn<'static>| SampleIn {
        tid: 2,
        cpu: 1,
        ..s
    };
    f.push(entry(10, 0, &[0]))
        .push(other(entry(12, 0, &[0])))
        .event(Event::Lost {
            time: 15,
            cpu: 0,
            count: 7,
        })
        .push(entry(16, 1, &[5]))
        .push(exit(18, 1, &[8]))
        .push(exit(20, 0, &[10]))
        .push(other(exit(22, 0, &[20])));
    f.finish(footer_lost)
}

#[test]
fn lost_records_discard_the_calls_open_on_their_cpu() {
    let a = run(&lost(7), &options());
    let stats = func(&a, "f");
    assert_eq!((stats.calls, stats.used), (2, 1));
    assert_eq!(stats.discarded, counts(&[(Reason::LostRecords, 1)]));
    assert_eq!(stats.counters[0].sum, 20.0, "thread 2's call, on CPU 1");
    let g = func(&a, "g");
    assert_eq!((g.used, g.counters[0].sum), (1, 3.0));
    assert_eq!(a.trace.lost, 7);
    assert_eq!(a.discarded, counts(&[(Reason::LostRecords, 1)]));
    assert_eq!(run(&lost(0), &options()).trace.lost, 7, "from the events");
    insta::assert_yaml_snapshot!("lost_records", a);
}

#[test]
fn strict_counts_each_call_once_under_its_first_flag() {
    let mut f = Fixture::new(&["instructions", "context-switches"], &["f"]);
    let running = |time_running, s: SampleIn<'static>| SampleIn { time_running, ..s };
    f.push(entry(10, 0, &[0, 0]))
        .push(exit(20, 0, &[1, 0]))
        .push(entry(30, 0, &[1, 0]))
        .push(on_cpu(1, exit(40, 0, &[3, 0])))
        .push(on_cpu(1, entry(50, 0, &[3, 0])))
        .push(running(55, exit(60, 0, &[6, 0])))
        .push(entry(70, 0, &[6, 0]))
        .push(exit(80, 0, &[10, 1]));
    let bytes = f.finish(0);
    let a = run(&bytes, &options());
    let stats = func(&a, "f");
    assert_eq!((stats.calls, stats.used), (4, 4));
    assert_eq!(
        stats.flagged,
        counts(&[
            (Reason::Migrated, 2),
            (Reason::Multiplexed, 1),
            (Reason::ContextSwitched, 1)
        ])
    );
    assert!(a.discarded.is_empty() && !a.strict);
    let s = run(&bytes, &strict());
    let stats = func(&s, "f");
    assert_eq!((stats.calls, stats.used), (4, 1));
    assert_eq!(
        stats.discarded,
        counts(&[(Reason::Migrated, 2), (Reason::ContextSwitched, 1)])
    );
    assert_eq!(stats.counters[0].sum, 1.0);
    assert_eq!(s.tree[0].calls, 1);
    assert!(s.strict);
    insta::assert_yaml_snapshot!("strict_vs_default", (a, s));
}

#[test]
fn page_faults_of_nested_touchers_add_up() {
    // outer touches 2 fresh pages through toucher(2), then calls middle 3
    // times, each of which calls toucher(4).
    let mut f = Fixture::new(&["page-faults"], &["outer", "middle", "toucher"]);
    let (mut time, mut faults) = (0, 0);
    let mut at = |f: &mut Fixture, kind, probe, touched: u64| {
        time += 10;
        faults += touched;
        f.push(sample(kind, time, probe, &[faults]));
    };
    for _ in 0..3 {
        at(&mut f, RecordKind::Entry, OUTER, 0);
        at(&mut f, RecordKind::Entry, LEAF, 0);
        at(&mut f, RecordKind::Return, LEAF, 2);
        for _ in 0..3 {
            at(&mut f, RecordKind::Entry, MIDDLE, 0);
            at(&mut f, RecordKind::Entry, LEAF, 0);
            at(&mut f, RecordKind::Return, LEAF, 4);
            at(&mut f, RecordKind::Return, MIDDLE, 0);
        }
        at(&mut f, RecordKind::Return, OUTER, 0);
    }
    let a = run(&f.finish(0), &options());
    let outer = func(&a, "outer");
    let c = &outer.counters[0];
    assert_eq!((outer.used, c.min, c.max, c.self_sum), (3, 14.0, 14.0, 0.0));
    let middle = func(&a, "middle");
    let c = &middle.counters[0];
    assert_eq!((middle.used, c.min, c.max, c.self_sum), (9, 4.0, 4.0, 0.0));
    let toucher = func(&a, "toucher");
    let c = &toucher.counters[0];
    assert_eq!((toucher.used, c.mean, c.self_mean), (12, 3.5, 3.5));
    assert_eq!((c.min, c.p50, c.max), (2.0, 4.0, 4.0));
}

#[test]
fn records_out_of_order_across_rounds_pair_by_time() {
    // Thread 1 enters A on CPU 0, calls B on CPU 1, returns to A on CPU 0.
    // Round 1 drains CPU 1 first; A's return is written in round 2.
    let mut f = Fixture::new(&["instructions"], &["A", "B", "C"]);
    f.push(on_cpu(1, entry(20, 1, &[30])))
        .push(on_cpu(1, exit(30, 1, &[40])))
        .push(entry(10, 0, &[0]))
        .round()
        .push(exit(40, 0, &[100]))
        .push(entry(50, 2, &[100]))
        .round()
        .push(exit(60, 2, &[105]));
    let a = run(&f.finish(0), &options());
    assert!(a.discarded.is_empty());
    let fa = func(&a, "A");
    assert_eq!((fa.counters[0].sum, fa.counters[0].self_sum), (100.0, 90.0));
    assert_eq!(
        a.tree.iter().map(|p| p.path.clone()).collect::<Vec<_>>(),
        [vec![0], vec![0, 1], vec![2]]
    );
    assert_eq!(func(&a, "A").flagged, BTreeMap::new());
    assert_eq!(func(&a, "B").flagged, counts(&[]));
}

#[test]
fn rounds_release_what_the_previous_round_end_covers() {
    let mut f = Fixture::new(&[], &["A"]);
    f.push(entry(20, 0, &[]))
        .push(entry(10, 0, &[]))
        .round()
        .push(exit(40, 0, &[]))
        .push(on_cpu(1, exit(15, 0, &[])))
        .round()
        .push(exit(50, 0, &[]));
    let bytes = f.finish(0);
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let mut orderer = Orderer::new(0, false, None);
    let mut times = Vec::new();
    while !orderer.ended {
        let batch = orderer.read_round(&mut reader).unwrap();
        let round: Vec<u64> = batch
            .threads
            .iter()
            .flat_map(|t| t.words.chunks(4).map(|w| w[0]))
            .collect();
        times.push(round);
    }
    assert_eq!(times, [vec![], vec![10, 15, 20], vec![40, 50]]);
    assert_eq!((orderer.records, orderer.tids.len()), (5, 1));
}

/// A deterministic pseudo-random sequence.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Four threads calling five functions at random depths, mostly on their
/// own CPU, written round by round with CPU 1 drained first and late CPU 0
/// records left for the next round, with `profile` stored in the header.
/// Returns the trace and the calls made.
fn busy_trace(calls_per_thread: usize, profile: Option<&Profile>) -> (Vec<u8>, u64) {
    let names = ["f0", "f1", "f2", "f3", "f4"];
    let mut rng = Lcg(7);
    let mut records: Vec<OwnedSample> = Vec::new();
    let mut made = 0;
    for tid in 1..=4u32 {
        let (mut time, mut value, mut stack) = (0u64, [0u64; 2], Vec::new());
        let mut cpu = (tid % 2) as u16;
        let mut left = calls_per_thread;
        while left > 0 || !stack.is_empty() {
            time += 1 + rng.below(5);
            value[0] += rng.below(1_000);
            value[1] += rng.below(3);
            if rng.below(50) == 0 {
                cpu ^= 1;
            }
            let open = left > 0 && (stack.is_empty() || (stack.len() < 6 && rng.below(2) == 0));
            let (probe, kind) = if open {
                left -= 1;
                made += 1;
                stack.push(rng.below(5) as u32);
                (*stack.last().unwrap(), RecordKind::Entry)
            } else {
                (stack.pop().unwrap(), RecordKind::Return)
            };
            records.push(OwnedSample {
                key: 0,
                time,
                pid: 1,
                tid,
                probe,
                cpu,
                kind,
                time_enabled: time,
                time_running: time,
                values: value.to_vec(),
            });
        }
    }
    let window = 200;
    let written_in = |r: &OwnedSample| {
        r.time / window + u64::from(r.cpu == 0 && r.time % window > window * 3 / 4)
    };
    records.sort_by_key(|r| (written_in(r), std::cmp::Reverse(r.cpu), r.time));
    let mut h = header(&["instructions", "page-faults"], &names);
    if let Some(profile) = profile {
        h = with_profile(h, &["push-rbp"; 5], profile);
    }
    let mut f = Fixture::with_header(&h);
    let mut round = 0;
    for r in &records {
        if written_in(r) != round {
            f.round();
            round = written_in(r);
        }
        f.push(r.as_sample_in());
    }
    (f.finish(0), made)
}

#[test]
fn one_and_two_threads_give_the_same_analysis() {
    // push-rbp: 100 instructions (median) and 0 page faults per probe pair.
    let profile = profile(
        &[
            ("push-rbp", "instructions", &[90.0, 100.0, 120.0]),
            ("push-rbp", "page-faults", &[0.0, 0.0, 1.0]),
        ],
        &[],
    );
    for profile in [None, Some(&profile)] {
        let (bytes, made) = busy_trace(3_000, profile);
        let opts = |threads| AnalysisOptions {
            threads: Some(threads),
            exact_limit: 500,
            ..options()
        };
        let (one, one_calls) = calls(&bytes, &opts(1));
        let (two, two_calls) = calls(&bytes, &opts(2));
        assert_eq!(one, two);
        assert_eq!(one_calls, two_calls);
        assert_eq!(one.calibration.is_some(), profile.is_some());
        assert!(one.discarded.is_empty(), "{:?}", one.discarded);
        assert_eq!(one.functions.iter().map(|f| f.used).sum::<u64>(), made);
        assert_eq!(one_calls.len() as u64, made);
        assert!(one.functions.iter().any(|f| !f.counters[0].exact));
        let tree_calls: u64 = one.tree.iter().map(|p| p.calls).sum();
        assert_eq!(tree_calls, made);
        let cost = if profile.is_some() { 100 } else { 0 };
        for c in &one_calls {
            let nested = i64::from(c.descendants);
            assert_eq!(c.inclusive[0], c.raw[0] - cost - cost * nested, "{c:?}");
            assert_eq!(c.inclusive[1], c.raw[1], "{c:?}");
        }
    }
}

#[test]
fn hdr_percentiles_stay_within_the_stated_error() {
    let mut f = Fixture::new(&["instructions"], &["f"]);
    let mut rng = Lcg(42);
    let mut value = 0;
    for i in 0..5_000u64 {
        let cost = if i == 0 {
            1_000
        } else {
            1_000 + rng.below(1_000_000)
        };
        f.push(entry(2 * i, 0, &[value]));
        value += cost;
        f.push(exit(2 * i + 1, 0, &[value]));
    }
    let bytes = f.finish(0);
    let exact = &run(&bytes, &options()).functions[0].counters[0];
    let hdr_opts = AnalysisOptions {
        exact_limit: 100,
        ..options()
    };
    let hdr = &run(&bytes, &hdr_opts).functions[0].counters[0];
    assert!(exact.exact && !hdr.exact);
    assert_eq!(
        (hdr.sum, hdr.mean, hdr.min, hdr.max),
        (exact.sum, exact.mean, exact.min, exact.max)
    );
    assert!((hdr.stddev - exact.stddev).abs() <= 1e-9 * exact.stddev);
    let offset = 1_000.0;
    for (h, e) in [
        (hdr.p50, exact.p50),
        (hdr.p90, exact.p90),
        (hdr.p99, exact.p99),
    ] {
        assert!(
            (h - e).abs() <= PERCENTILE_RELATIVE_ERROR * (e - offset),
            "{h} vs {e}"
        );
    }
}

#[test]
fn function_globs_select_the_report_but_not_the_pairing() {
    let opts = AnalysisOptions {
        functions: vec!["*::mid*".into()],
        ..options()
    };
    let a = run(&nesting(), &opts);
    assert_eq!(a.functions.len(), 1);
    let middle = &a.functions[0];
    assert_eq!(
        (middle.name.as_str(), middle.counters[0].self_sum),
        ("app::middle", 45.0)
    );
    assert_eq!(
        tree(&a),
        [(vec![0, 1], 1, vec![70.0, 3.0], vec![45.0, 1.0])]
    );
    let bad = AnalysisOptions {
        functions: vec!["app::[".into()],
        ..options()
    };
    let err = analyze(TraceReader::new(&nesting()[..]).unwrap(), &bad).unwrap_err();
    assert!(matches!(&err, AnalysisError::BadPattern { pattern, .. } if pattern == "app::["));
    assert_eq!(
        err.to_string(),
        "invalid function pattern \"app::[\"; use a glob such as \"parse*\" or \"app::*\""
    );
}

#[test]
fn a_tid_filter_keeps_one_thread() {
    let opts = AnalysisOptions {
        tid: Some(2),
        ..options()
    };
    let a = run(&unmatched(), &opts);
    assert_eq!(a.functions.len(), 1);
    let fb = &a.functions[0];
    assert_eq!((fb.name.as_str(), fb.calls), ("b", 1));
    assert_eq!(fb.discarded, counts(&[(Reason::EntryWithoutReturn, 1)]));
    assert_eq!(
        (a.trace.records, a.trace.threads),
        (5, 2),
        "the trace as a whole"
    );
}

#[test]
fn a_tid_filter_on_a_thread_without_samples_names_the_threads_there_are() {
    let opts = AnalysisOptions {
        tid: Some(7),
        ..options()
    };
    let err = analyze(TraceReader::new(&unmatched()[..]).unwrap(), &opts).unwrap_err();
    assert!(matches!(&err, AnalysisError::NoSuchThread { tid: 7, threads } if threads == &[1, 2]));
    assert_eq!(
        err.to_string(),
        "thread 7 hit no probe in this trace; the threads that did: 1, 2"
    );
}

#[test]
fn function_globs_that_match_nothing_suggest_the_closest_names() {
    let near = AnalysisOptions {
        functions: vec!["app::midle*".into()],
        ..options()
    };
    let err = analyze(TraceReader::new(&nesting()[..]).unwrap(), &near).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no function in the trace matches 'app::midle*'; \
         did you mean 'app::middle', 'app::leaf' or 'app::outer'?"
    );
    let far = AnalysisOptions {
        functions: vec!["zzz".into(), "qqq*".into()],
        ..options()
    };
    let err = analyze(TraceReader::new(&nesting()[..]).unwrap(), &far).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no function in the trace matches 'zzz' or 'qqq*'; \
         its functions: app::outer, app::middle, app::leaf"
    );
}

/// The error for patterns whose functions were probed but not called
/// names the functions called, most calls first, once each.
#[test]
fn no_call_matches_names_the_functions_called() {
    let unfiltered = run(&nesting(), &options());
    let opts = AnalysisOptions {
        functions: vec!["app::zzz*".into(), "app::q".into()],
        ..options()
    };
    assert_eq!(
        no_call_matches(&opts, &unfiltered).to_string(),
        "no call of a function matching 'app::zzz*' or 'app::q' (probed, but never called); \
         the functions called: app::leaf, app::middle, app::outer"
    );
    let in_thread = AnalysisOptions {
        tid: Some(9),
        ..opts.clone()
    };
    assert_eq!(
        no_call_matches(&in_thread, &unfiltered).to_string(),
        "no call of a function matching 'app::zzz*' or 'app::q' in thread 9; \
         the functions it called: app::leaf, app::middle, app::outer"
    );
    let mut nothing = unfiltered.clone();
    nothing.functions.clear();
    assert_eq!(
        no_call_matches(&opts, &nothing).to_string(),
        "no call of a function matching 'app::zzz*' or 'app::q' (probed, but never called); \
         no probed function was called"
    );
}

#[test]
fn a_truncated_attach_trace_is_summarized() {
    let mut h = header(&["instructions"], &["f"]);
    h.target = Target::Attach { pid: 4242 };
    let mut f = Fixture::with_header(&h);
    f.push(entry(10, 0, &[0])).push(exit(20, 0, &[5])).round();
    f.push(entry(30, 0, &[5])).round();
    let whole = f.writer.bytes_written() as usize;
    f.push(exit(40, 0, &[9]));
    let written = f.finish(0);
    // Cut 30 bytes into the chunk that holds the last return.
    let cut = &written[..whole + 30];
    let a = run(cut, &options());
    assert_eq!(a.trace.command, "pid 4242");
    assert!(!a.trace.complete);
    // First sample at 10, last one read at 30.
    assert_eq!(a.trace.duration_ns, 20);
    assert_eq!(a.trace.bytes_lost, 30);
    let stats = func(&a, "f");
    assert_eq!((stats.calls, stats.used), (2, 1));
    assert_eq!(stats.discarded, counts(&[(Reason::EntryWithoutReturn, 1)]));
}

#[test]
fn a_trace_without_counters_still_counts_calls() {
    let mut f = Fixture::new(&[], &APP);
    f.push(entry(10, OUTER, &[]))
        .push(entry(20, LEAF, &[]))
        .push(exit(30, LEAF, &[]))
        .push(exit(40, MIDDLE, &[]));
    let a = run(&f.finish(0), &options());
    let names: Vec<_> = a
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.calls, f.used))
        .collect();
    assert_eq!(
        names,
        [
            ("app::outer", 1, 0),
            ("app::middle", 1, 0),
            ("app::leaf", 1, 1)
        ]
    );
    assert!(a.functions.iter().all(|f| f.counters.is_empty()));
    assert_eq!(tree(&a), [(vec![0, 2], 1, vec![], vec![])]);
}

/// The classes of [`APP`] and a profile for them, in instructions: own
/// costs push-rbp 3, endbr64 5, ret 7; descendant costs (nest − the
/// nest's own push-rbp 3) endbr64 6, ret 9, push-rbp its own 3.
const APP_CLASSES: [&str; 3] = ["push-rbp", "endbr64", "ret"];

fn app_profile() -> Profile {
    profile(
        &[
            ("push-rbp", "instructions", &[3.0]),
            ("endbr64", "instructions", &[5.0]),
            ("ret", "instructions", &[7.0]),
        ],
        &[
            ("endbr64", "instructions", &[9.0]),
            ("ret", "instructions", &[12.0]),
        ],
    )
}

fn app_header(counters: &[&str]) -> TraceHeader {
    with_profile(header(counters, &APP), &APP_CLASSES, &app_profile())
}

#[test]
fn calibration_subtracts_own_and_descendant_costs() {
    let bytes = nesting_in(&app_header(&["instructions", "page-faults"]));
    let (a, calls) = calls(&bytes, &options());
    // Raw instructions: leaf 25, middle 70, leaf 10, outer 200. Calibrated:
    // leaf 25 - 7 = 18; middle 70 - 5 - 9 (its leaf) = 56; leaf 10 - 7 = 3;
    // outer 200 - 3 - (6 + 9 + 9) = 173. Self: middle 56 - 18 = 38, outer
    // 173 - 56 - 3 = 114. The profile has no page-fault baseline: raw.
    let deltas: Vec<_> = calls
        .iter()
        .map(|c| (c.probe, c.raw.clone(), c.inclusive.clone(), c.self_.clone()))
        .collect();
    assert_eq!(
        deltas,
        [
            (LEAF, vec![25, 2], vec![18, 2], vec![18, 2]),
            (MIDDLE, vec![70, 3], vec![56, 3], vec![38, 1]),
            (LEAF, vec![10, 0], vec![3, 0], vec![3, 0]),
            (OUTER, vec![200, 6], vec![173, 6], vec![114, 3]),
        ]
    );
    let outer = &func(&a, "app::outer").counters[0];
    assert_eq!(
        (outer.sum, outer.self_sum, outer.p50),
        (173.0, 114.0, 173.0)
    );
    assert_eq!(
        (outer.raw_sum, outer.raw_mean, outer.raw_p50),
        (200.0, 200.0, 200.0)
    );
    let leaf = &func(&a, "app::leaf").counters;
    let c = &leaf[0];
    assert_eq!(
        (c.sum, c.mean, c.min, c.max, c.p50),
        (21.0, 10.5, 3.0, 18.0, 3.0)
    );
    assert_eq!((c.raw_sum, c.raw_mean, c.raw_p50), (35.0, 17.5, 10.0));
    // A baseline with no spread: only an exact 0 is noise.
    assert_eq!(c.within_noise, Some(false));
    assert_eq!((leaf[1].sum, leaf[1].raw_sum), (2.0, 2.0));
    assert_eq!(leaf[1].within_noise, None, "no page-fault baseline");
    assert_eq!(
        tree(&a),
        [
            (vec![0], 1, vec![173.0, 6.0], vec![114.0, 3.0]),
            (vec![0, 1], 1, vec![56.0, 3.0], vec![38.0, 1.0]),
            (vec![0, 1, 2], 1, vec![18.0, 2.0], vec![18.0, 2.0]),
            (vec![0, 2], 1, vec![3.0, 0.0], vec![3.0, 0.0]),
        ]
    );
    let raw_tree: Vec<_> = a.tree.iter().map(|p| p.raw_inclusive.clone()).collect();
    assert_eq!(
        raw_tree,
        [
            vec![200.0, 6.0],
            vec![70.0, 3.0],
            vec![25.0, 2.0],
            vec![10.0, 0.0]
        ]
    );
    let info = a.calibration.as_ref().unwrap();
    assert_eq!(info.statistic, Statistic::Median);
    assert_eq!(
        (
            info.profile.kernel_release.as_str(),
            info.rounds,
            info.calls_per_round
        ),
        ("6.1.0", 3, 1_000)
    );
    assert!(a.trace.has_profile);
    insta::assert_yaml_snapshot!("calibrated_nesting", a);
}

#[test]
fn calibrated_recursion_subtracts_every_nested_probe() {
    // fib: one instruction of its own per call; push-rbp probes cost 3 as
    // own and descendant cost. A call with d descendants has raw d + 1, so
    // its calibrated inclusive value is (d + 1) - 3 - 3d = -2 (d + 1), and
    // every self value is 1 - 3 = -2: negative, and kept.
    let cost = profile(&[("push-rbp", "instructions", &[3.0])], &[]);
    let h = with_profile(header(&["instructions"], &["fib"]), &["push-rbp"], &cost);
    let mut f = Fixture::with_header(&h);
    fib(&mut f, 10, &mut 0, &mut 1_000);
    let (a, calls) = calls(&f.finish(0), &options());
    assert_eq!(calls.len(), 177);
    for c in &calls {
        assert_eq!(c.raw[0], i64::from(c.descendants) + 1);
        assert_eq!((c.inclusive[0], c.self_[0]), (-2 * c.raw[0], -2), "{c:?}");
    }
    let c = &func(&a, "fib").counters[0];
    assert_eq!((c.self_sum, c.self_mean), (-354.0, -2.0));
    assert_eq!((c.min, c.max, c.p50), (-354.0, -2.0, -2.0));
    assert_eq!((c.raw_sum, c.raw_p50), (-c.sum / 2.0, 1.0));
    assert_eq!(c.within_noise, Some(false));
}

#[test]
fn an_unwound_frame_leaves_its_probes_cost_to_its_parent() {
    let mut f = Fixture::with_header(&app_header(&["instructions"]));
    f.push(entry(10, OUTER, &[0]))
        .push(entry(20, LEAF, &[10]))
        .push(exit(30, LEAF, &[15]))
        .push(entry(40, MIDDLE, &[20]))
        .push(entry(50, LEAF, &[30]))
        .push(exit(60, OUTER, &[100]))
        .push(entry(70, MIDDLE, &[100]))
        .push(exit(80, MIDDLE, &[110]));
    let (a, calls) = calls(&f.finish(0), &options());
    // outer: 100 - 3 - (leaf 9 + unwound middle 6 + the unwound leaf in it
    // 9) = 73; its self adds back its one complete child, leaf 5 - 7 = -2.
    let deltas: Vec<_> = calls
        .iter()
        .map(|c| (c.probe, c.raw[0], c.inclusive[0], c.self_[0]))
        .collect();
    assert_eq!(
        deltas,
        [(LEAF, 5, -2, -2), (OUTER, 100, 73, 75), (MIDDLE, 10, 5, 5)]
    );
    assert_eq!(func(&a, "app::leaf").counters[0].sum, -2.0);
    assert_eq!(
        func(&a, "app::middle").discarded,
        counts(&[(Reason::Unwound, 1)])
    );
}

#[test]
fn the_statistic_chooses_the_cost_subtracted() {
    // 150 deltas of 10, 48 of 20, 2 slow ones of 1,000: median 10; trimmed
    // mean (p1..p99: the first 198) 2,460 / 198 = 12.4 -> 12; mean 22.3 -> 22.
    let mut deltas = vec![10.0; 150];
    deltas.extend([20.0; 48]);
    deltas.extend([1_000.0; 2]);
    let cost = profile(&[("push-rbp", "instructions", &deltas)], &[]);
    let h = with_profile(header(&["instructions"], &["f"]), &["push-rbp"], &cost);
    let mut f = Fixture::with_header(&h);
    f.push(entry(10, 0, &[0])).push(exit(20, 0, &[100]));
    let bytes = f.finish(0);
    let mut seen = Vec::new();
    for statistic in Statistic::ALL {
        let opts = AnalysisOptions {
            baseline: Some(statistic),
            ..options()
        };
        let a = run(&bytes, &opts);
        assert_eq!(a.calibration.unwrap().statistic, statistic);
        let c = &a.functions[0].counters[0];
        assert_eq!((c.raw_sum, c.raw_mean, c.raw_p50), (100.0, 100.0, 100.0));
        seen.push(c.sum);
    }
    assert_eq!(seen, [90.0, 88.0, 78.0]);
}

#[test]
fn without_a_baseline_statistic_the_values_stay_raw() {
    let bytes = nesting_in(&app_header(&["instructions", "page-faults"]));
    let opts = AnalysisOptions {
        baseline: None,
        ..options()
    };
    let (a, calls) = calls(&bytes, &opts);
    let plain = run(&nesting(), &options());
    assert_eq!((&a.calibration, &plain.calibration), (&None, &None));
    assert_eq!(
        (a.trace.has_profile, plain.trace.has_profile),
        (true, false)
    );
    assert_eq!((&a.functions, &a.tree), (&plain.functions, &plain.tree));
    assert!(calls.iter().all(|c| c.raw == c.inclusive));
    let c = &func(&a, "app::outer").counters[0];
    assert_eq!((c.sum, c.raw_sum, c.within_noise), (200.0, 200.0, None));
}

/// Calls `(probe, raw instructions)` in turn, of `f` and `g` (push-rbp)
/// and `h` (mov, no baseline), under a push-rbp baseline of median 100 and
/// MAD 5.
fn noise_trace(raw: &[(u32, u64)]) -> Vec<u8> {
    let cost = profile(
        &[(
            "push-rbp",
            "instructions",
            &[90.0, 110.0, 100.0, 95.0, 105.0],
        )],
        &[],
    );
    let h = with_profile(
        header(&["instructions"], &["f", "g", "h"]),
        &["push-rbp", "push-rbp", "mov"],
        &cost,
    );
    let mut f = Fixture::with_header(&h);
    let (mut time, mut value) = (0, 0);
    for &(probe, cost) in raw {
        f.push(entry(time, probe, &[value]));
        value += cost;
        f.push(exit(time + 1, probe, &[value]));
        time += 2;
    }
    f.finish(0)
}

#[test]
fn within_noise_tells_a_call_at_the_baseline_from_one_far_above() {
    let a = run(&noise_trace(&[(0, 100), (1, 1_100), (2, 50)]), &options());
    let noise = |name| func(&a, name).counters[0].within_noise;
    let f = &func(&a, "f").counters[0];
    assert_eq!((f.sum, f.raw_sum), (0.0, 100.0));
    assert_eq!(noise("f"), Some(true), "a call that costs the baseline");
    assert_eq!(noise("g"), Some(false), "1,000 is far above 2 MAD (10)");
    assert_eq!(noise("h"), None, "no baseline for the mov class");
    assert_eq!(func(&a, "h").counters[0].sum, 50.0, "nothing subtracted");
}

#[test]
fn within_noise_uses_the_median_confidence_interval_when_exact() {
    // f: calibrated -50 -40 -30 20 30 40 50 60 70 80: the median (30) is
    // beyond 2 MAD, but its 95 % interval (-40, 70) crosses 0. g: the same
    // shifted by 100: its interval (60, 170) does not.
    let spread = [-50, -40, -30, 20, 30, 40, 50, 60, 70, 80];
    let calls: Vec<(u32, u64)> = [0u32, 1]
        .into_iter()
        .flat_map(|probe| {
            spread
                .iter()
                .map(move |v| (probe, (v + 100 + 100 * i64::from(probe)) as u64))
        })
        .collect();
    let bytes = noise_trace(&calls);
    let a = run(&bytes, &options());
    let f = &func(&a, "f").counters[0];
    assert_eq!(
        (f.p50, f.raw_p50, f.within_noise),
        (30.0, 130.0, Some(true))
    );
    assert_eq!(func(&a, "g").counters[0].within_noise, Some(false));
    let hdr = AnalysisOptions {
        exact_limit: 4,
        ..options()
    };
    let a = run(&bytes, &hdr);
    let f = &func(&a, "f").counters[0];
    assert!(!f.exact);
    assert_eq!(f.within_noise, Some(false), "no interval from a histogram");
}

#[test]
fn a_profile_that_cannot_be_read_fails_unless_the_baseline_is_off() {
    let mut h = app_header(&["instructions", "page-faults"]);
    h.calibration.as_mut().unwrap()["version"] = 9.into();
    let bytes = nesting_in(&h);
    let err = analyze(TraceReader::new(&bytes[..]).unwrap(), &options()).unwrap_err();
    assert!(matches!(err, AnalysisError::Profile(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "failed to read the calibration profile stored in the trace; \
         report raw values with --baseline off"
    );
    let off = AnalysisOptions {
        baseline: None,
        ..options()
    };
    assert_eq!(
        run(&bytes, &off).functions,
        run(&nesting(), &options()).functions
    );
}

/// Records/s of `analyze` on 4 M records with 3 counters, one thread
/// calling a three-level tree, a round every 10 000 records, without and
/// with a calibration profile:
/// `cargo test --release --lib analysis::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run it in release mode"]
fn throughput() {
    let counters = ["LLC-load-misses", "LLC-store-misses", "LLC-prefetch-misses"];
    let plain = header(&counters, &APP);
    let deltas: Vec<(&str, &str, &[f64])> = APP_CLASSES
        .iter()
        .zip([&[1.0][..], &[2.0], &[3.0]])
        .flat_map(|(&class, cost)| counters.map(|counter| (class, counter, cost)))
        .collect();
    let calibrated = with_profile(plain.clone(), &APP_CLASSES, &profile(&deltas, &[]));
    for (what, header) in [("analyze", plain), ("analyze, calibrated", calibrated)] {
        let (bytes, records) = throughput_trace(&header);
        let mut best = 0.0f64;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let a = run(&bytes, &options());
            let rate = records as f64 / start.elapsed().as_secs_f64();
            assert_eq!(a.functions.iter().map(|f| f.used).sum::<u64>(), records / 2);
            best = best.max(rate);
        }
        println!("{what}: {:.1} M records/s (best of 5)", best / 1e6);
    }
}

/// The trace of [`throughput`] under `header` (3 counters, [`APP`]), and
/// its number of records.
fn throughput_trace(header: &TraceHeader) -> (Vec<u8>, u64) {
    let pattern = [
        (OUTER, RecordKind::Entry),
        (MIDDLE, RecordKind::Entry),
        (LEAF, RecordKind::Entry),
        (LEAF, RecordKind::Return),
        (LEAF, RecordKind::Entry),
        (LEAF, RecordKind::Return),
        (MIDDLE, RecordKind::Return),
        (OUTER, RecordKind::Return),
    ];
    let mut f = Fixture::with_header(header);
    let (mut time, mut values) = (0u64, [0u64; 3]);
    let records = 4_000_000u64;
    for i in 0..records {
        let (probe, kind) = pattern[(i % 8) as usize];
        time += 3;
        values = [
            values[0] + time % 7,
            values[1] + time % 5,
            values[2] + time % 3,
        ];
        f.push(sample(kind, time, probe, &values));
        if (i + 1) % 10_000 == 0 {
            f.round();
        }
    }
    (f.finish(0), records)
}

#[test]
fn call_flags_list_their_reasons_in_report_order() {
    let flags = CallFlags::CONTEXT_SWITCHED | CallFlags::MIGRATED | CallFlags::LOST_RECORDS;
    assert_eq!(
        flags.reasons().collect::<Vec<_>>(),
        [
            Reason::LostRecords,
            Reason::Migrated,
            Reason::ContextSwitched
        ]
    );
    assert!(flags.contains(CallFlags::MIGRATED) && !flags.contains(CallFlags::MULTIPLEXED));
    assert!(CallFlags::default().is_empty());
}

#[test]
fn defaults() {
    let opts = AnalysisOptions::default();
    assert_eq!(
        (opts.strict, opts.tid, opts.exact_limit, opts.threads),
        (false, None, 1 << 20, None)
    );
    assert_eq!(opts.baseline, Some(Statistic::Median));
    assert!(opts.functions.is_empty());
}

/// A system-wide trace: softirq-like pairs in the idle task (tid 0) of two
/// CPUs at once, a migrated call and a context-switched call in thread 7.
fn system_wide() -> Vec<u8> {
    let mut h = header(
        &["page-faults", "context-switches"],
        &["tp:irq:softirq_entry/softirq_exit"],
    );
    h.target = Target::SystemWide { argv: Vec::new() };
    let mut f = Fixture::with_header(&h);
    let idle = |cpu, s: SampleIn<'static>| SampleIn {
        tid: 0,
        pid: 0,
        cpu,
        ..s
    };
    let t7 = |cpu, s: SampleIn<'static>| SampleIn {
        tid: 7,
        pid: 7,
        cpu,
        ..s
    };
    // Interleaved on CPUs 0 and 1, both in tid 0: paired per CPU.
    f.push(idle(0, entry(10, 0, &[0, 0])))
        .push(idle(1, entry(11, 0, &[100, 0])))
        .push(idle(0, exit(20, 0, &[2, 0])))
        .push(idle(1, exit(21, 0, &[103, 0])))
        // Thread 7: migrated (entry on CPU 0, return on CPU 1) ...
        .push(t7(0, entry(30, 0, &[10, 0])))
        .push(t7(1, exit(40, 0, &[500, 3])))
        // ... then switched out during the call.
        .push(t7(1, entry(50, 0, &[500, 3])))
        .push(t7(1, exit(60, 0, &[505, 4])));
    f.finish(0)
}

#[test]
fn system_wide_pairs_idle_per_cpu_and_leaves_flagged_calls_out() {
    let bytes = system_wide();
    let a = run(&bytes, &options());
    assert!(
        a.strict,
        "flagged calls are left out of a system-wide trace"
    );
    assert_eq!(a.trace.command, "system-wide");
    let stats = func(&a, "tp:irq:softirq_entry/softirq_exit");
    assert_eq!((stats.calls, stats.used), (4, 2));
    assert_eq!(
        stats.discarded,
        counts(&[(Reason::Migrated, 1), (Reason::ContextSwitched, 1)])
    );
    // The two idle pairs: 2 and 3 page faults, not 103 − 0 and 2 − 100.
    assert_eq!(
        (
            stats.counters[0].min,
            stats.counters[0].max,
            stats.counters[0].sum
        ),
        (2.0, 3.0, 5.0)
    );
    assert_eq!(
        a.trace.threads, 3,
        "tid 0 on two CPUs counts as two threads"
    );
    let kept = run(
        &bytes,
        &AnalysisOptions {
            keep_flagged: true,
            ..options()
        },
    );
    let stats = func(&kept, "tp:irq:softirq_entry/softirq_exit");
    assert!(!kept.strict);
    assert_eq!(stats.used, 4);
    assert_eq!(
        stats.flagged,
        counts(&[(Reason::Migrated, 1), (Reason::ContextSwitched, 2)])
    );
}

/// A pair matched by a key: the end of key 3 closes the begin of key 3,
/// not the begin of key 1 opened after it (whose end was lost: unwound).
#[test]
fn keyed_pairs_match_by_probe_and_key() {
    let mut h = header(&["page-faults"], &["tp:irq:softirq_entry/softirq_exit"]);
    h.probes[0].key = Some("vec".into());
    h.key_column = true;
    let mut f = Fixture::with_header(&h);
    let key = |key, s: SampleIn<'static>| SampleIn { key, ..s };
    f.push(key(3, entry(10, 0, &[0])))
        .push(key(1, entry(20, 0, &[5])))
        .push(key(3, exit(30, 0, &[7])))
        .push(key(1, entry(40, 0, &[7])))
        .push(key(1, exit(50, 0, &[8])));
    let (a, calls) = calls(&f.finish(0), &options());
    let stats = func(&a, "tp:irq:softirq_entry/softirq_exit");
    assert_eq!((stats.calls, stats.used), (3, 2));
    assert_eq!(stats.discarded, counts(&[(Reason::Unwound, 1)]));
    let deltas: Vec<(u64, i64)> = calls.iter().map(|c| (c.start, c.raw[0])).collect();
    assert_eq!(deltas, [(10, 7), (40, 1)]);
}

/// Offsets where the chunks of `bytes` start (the last: the footer).
fn chunk_starts(bytes: &[u8]) -> Vec<usize> {
    let mut reader = TraceReader::new(bytes).unwrap();
    let mut starts = vec![reader.offset() as usize];
    while reader.next_chunk().unwrap().is_some() {
        starts.push(reader.offset() as usize);
    }
    starts.pop();
    starts
}

#[test]
fn salvage_never_pairs_a_call_across_a_damaged_range() {
    let mut f = Fixture::new(&["instructions"], &APP);
    f.push(entry(10, OUTER, &[100]))
        .push(entry(20, LEAF, &[110]))
        .push(exit(30, LEAF, &[115]))
        .round();
    f.push(exit(40, OUTER, &[150]))
        .push(entry(50, OUTER, &[160]))
        .round();
    f.push(entry(60, LEAF, &[170]))
        .push(exit(70, LEAF, &[172]))
        .push(exit(80, OUTER, &[200]))
        .round();
    let mut bytes = f.finish(0);
    let starts = chunk_starts(&bytes);
    assert_eq!(starts.len(), 4, "three samples chunks and the footer");
    bytes[starts[1] + 20] ^= 0x01;
    let salvage = AnalysisOptions {
        salvage: true,
        ..options()
    };
    let (a, calls) = calls(&bytes, &salvage);
    assert_eq!(
        a.trace
            .damaged
            .iter()
            .map(|d| (d.start, d.end))
            .collect::<Vec<_>>(),
        [(starts[1] as u64, starts[2] as u64)]
    );
    assert_eq!(a.trace.records, 6, "the records on both sides");
    assert!(a.trace.complete);
    let outer = func(&a, "app::outer");
    assert_eq!((outer.calls, outer.used), (2, 0));
    assert_eq!(
        outer.discarded,
        counts(&[(Reason::ReturnWithoutEntry, 1), (Reason::LostRecords, 1)]),
        "the call open at the damage is not paired with the return after it"
    );
    let leaf = func(&a, "app::leaf");
    assert_eq!((leaf.calls, leaf.used), (2, 2));
    let depths: Vec<_> = calls.iter().map(|c| (c.start, c.depth)).collect();
    assert_eq!(
        depths,
        [(20, 1), (60, 0)],
        "the second leaf is not nested in a stale outer"
    );
    let err = analyze(TraceReader::new(&bytes[..]).unwrap(), &options()).unwrap_err();
    assert!(
        matches!(&err, AnalysisError::Trace(TraceError::CorruptChunk { offset, .. }) if *offset == starts[1] as u64),
        "{err}"
    );
}

/// Calls that never return (a longjmp out of each): 100,000 frames left
/// open under a caller, each followed by a return whose entry is not on
/// the stack, then the caller's return, which unwinds them all; then
/// 100,000 more at the outermost level, each followed by another such
/// return and, with `completed`, by a call that completes above them.
fn abandoned(n: u64, completed: bool, mut push: impl FnMut(u64, u32, bool)) {
    let mut time = 0;
    let mut next = move |probe: u32, entry: bool, push: &mut dyn FnMut(u64, u32, bool)| {
        time += 10;
        push(time, probe, entry);
    };
    next(MIDDLE, true, &mut push);
    for _ in 0..n {
        next(OUTER, true, &mut push);
        next(LEAF, false, &mut push);
    }
    next(MIDDLE, false, &mut push);
    for _ in 0..n {
        next(OUTER, true, &mut push);
        next(LEAF, false, &mut push);
        if completed {
            next(LEAF, true, &mut push);
            next(LEAF, false, &mut push);
        }
    }
}

const ABANDONED: u64 = 100_000;

#[test]
fn frames_that_never_return_are_each_searched_past_once() {
    use super::pair::{PairConfig, Thread};
    let cfg = PairConfig {
        ncounters: 1,
        keyed: false,
        strict: false,
        switches: None,
        wanted: vec![true; 3],
        keep_calls: false,
        compensation: None,
        per_task: false,
    };
    let mut words = Vec::new();
    abandoned(ABANDONED, true, |time, probe, entry| {
        let kind = u64::from(!entry) << 48;
        words.extend([time, time, time, u64::from(probe) | kind, time]);
    });
    let mut thread = Thread::new(1, &cfg);
    thread.process(&cfg, &words, &[]);
    // The caller's return looks at the frames above it and its own; each
    // completed call at its own frame only; returns without an entry at
    // none (each looked at the whole stack before).
    assert_eq!(thread.searched, ABANDONED + 1 + ABANDONED);
    thread.close(&cfg);
    let discarded = |probe: u32, reason: Reason| {
        thread.funcs[probe as usize].as_ref().unwrap().discarded[reason as usize]
    };
    assert_eq!(discarded(OUTER, Reason::Unwound), ABANDONED);
    assert_eq!(discarded(OUTER, Reason::EntryWithoutReturn), ABANDONED);
    assert_eq!(discarded(LEAF, Reason::ReturnWithoutEntry), 2 * ABANDONED);
    let used = |probe: u32| thread.funcs[probe as usize].as_ref().unwrap().used;
    assert_eq!((used(MIDDLE), used(LEAF), used(OUTER)), (1, ABANDONED, 0));
}

/// Without completed calls above the abandoned frames: with them, the call
/// tree holds a path as deep as the open stack for each.
#[test]
fn frames_that_never_return_are_counted_in_the_analysis() {
    let mut f = Fixture::new(&["instructions"], &APP);
    let mut records = 0;
    abandoned(ABANDONED, false, |time, probe, is_entry| {
        let values = [time];
        if is_entry {
            f.push(entry(time, probe, &values));
        } else {
            f.push(exit(time, probe, &values));
        }
        records += 1;
        if records % 4096 == 0 {
            f.round();
        }
    });
    let a = run(&f.finish(0), &options());
    assert_eq!(a.trace.records, 4 * ABANDONED + 2);
    let outer = func(&a, "app::outer");
    assert_eq!((outer.calls, outer.used), (2 * ABANDONED, 0));
    assert_eq!(
        outer.discarded,
        counts(&[
            (Reason::EntryWithoutReturn, ABANDONED),
            (Reason::Unwound, ABANDONED)
        ])
    );
    let leaf = func(&a, "app::leaf");
    assert_eq!((leaf.calls, leaf.used), (2 * ABANDONED, 0));
    assert_eq!(
        leaf.discarded,
        counts(&[(Reason::ReturnWithoutEntry, 2 * ABANDONED)])
    );
    let middle = func(&a, "app::middle");
    assert_eq!((middle.calls, middle.used), (1, 1));
    // The unwound frames' costs stay in the caller's self cost.
    let sum = 20.0 * ABANDONED as f64 + 10.0;
    assert_eq!(middle.counters[0].sum, sum);
    assert_eq!(tree(&a), [(vec![MIDDLE], 1, vec![sum], vec![sum])]);
}

fn per_thread_header(counters: &[&str], functions: &[&str]) -> TraceHeader {
    TraceHeader {
        follow: Some("per-thread".into()),
        ..header(counters, functions)
    }
}

#[test]
fn a_negative_raw_delta_is_a_violation_with_its_example() {
    let mut f = Fixture::with_header(&per_thread_header(&["instructions"], &["f", "g"]));
    f.push(entry(10, 0, &[100])).push(exit(20, 0, &[90]));
    f.push(entry(30, 1, &[90])).push(exit(40, 1, &[95])).round();
    let a = run(&f.finish(0), &options());
    assert_eq!(
        (a.violations.negative_delta, a.violations.below_children),
        (1, 0)
    );
    assert_eq!(
        a.violations.first,
        Some(Violation {
            kind: ViolationKind::NegativeDelta,
            function: "f".into(),
            tid: 1,
            start: 10,
            counter: "instructions".into(),
            delta: -10,
            children: 0,
        })
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["violations"]["negative_delta"], 1);
}

#[test]
fn a_call_below_its_childrens_sum_is_a_violation_with_the_tasks_own_counters() {
    let trace = |h: &TraceHeader| {
        let mut f = Fixture::with_header(h);
        f.push(entry(0, 0, &[0]))
            .push(entry(1, 1, &[1]))
            .push(exit(2, 1, &[50]))
            .push(exit(3, 0, &[10]))
            .round();
        f.finish(0)
    };
    let a = run(
        &trace(&per_thread_header(&["instructions"], &["outer", "inner"])),
        &options(),
    );
    assert_eq!(
        (a.violations.negative_delta, a.violations.below_children),
        (0, 1)
    );
    let first = a.violations.first.unwrap();
    assert_eq!(
        (
            first.kind,
            first.function.as_str(),
            first.delta,
            first.children
        ),
        (ViolationKind::BelowChildren, "outer", 10, 49)
    );
    // Per-CPU counters: the children may have run on other CPUs, whose
    // counts a call's own delta does not cover.
    let a = run(
        &trace(&header(&["instructions"], &["outer", "inner"])),
        &options(),
    );
    assert!(a.violations.is_empty(), "{:?}", a.violations);
}

#[test]
fn a_clean_trace_has_no_violation_and_none_in_json() {
    let a = run(&nesting(), &options());
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    let json = serde_json::to_value(&a).unwrap();
    assert!(json.get("violations").is_none(), "{json}");
}

#[test]
fn a_migrated_call_with_per_cpu_counters_is_not_checked() {
    let mut f = Fixture::new(&["instructions"], &["f"]);
    f.push(entry(10, 0, &[100]))
        .push(SampleIn {
            cpu: 1,
            ..exit(20, 0, &[5])
        })
        .round();
    let a = run(&f.finish(0), &options());
    assert!(a.violations.is_empty(), "{:?}", a.violations);
}
