//! Golden analyses of hand-built traces: each fixture states its expected
//! numbers with `assert_eq!`, and the whole analysis is pinned with an
//! insta snapshot under `snapshots/`.

use std::collections::BTreeMap;

use super::order::Orderer;
use super::*;
use crate::events::{parse_counter, NoPmus};
use crate::trace::{
    Event, Footer, OwnedSample, ProbeKind, ProbeSite, RecordKind, SampleIn, Target, TraceWriter,
};

const OUTER: u32 = 0;
const MIDDLE: u32 = 1;
const LEAF: u32 = 2;

fn header(counters: &[&str], functions: &[&str]) -> TraceHeader {
    TraceHeader {
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

/// Three nested functions, for most fixtures.
const APP: [&str; 3] = ["app::outer", "app::middle", "app::leaf"];

/// A sample on thread 1, CPU 0, whose counter group ran the whole time.
fn sample(kind: RecordKind, time: u64, probe: u32, values: &[u64]) -> SampleIn<'_> {
    SampleIn {
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
    let mut f = Fixture::new(&["instructions", "page-faults"], &APP);
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
    let mut orderer = Orderer::new(0, None);
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
/// records left for the next round. Returns the trace and the calls made.
fn busy_trace(calls_per_thread: usize) -> (Vec<u8>, u64) {
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
    let mut f = Fixture::new(&["instructions", "page-faults"], &names);
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
    let (bytes, made) = busy_trace(3_000);
    let opts = |threads| AnalysisOptions {
        threads: Some(threads),
        exact_limit: 500,
        ..options()
    };
    let (one, one_calls) = calls(&bytes, &opts(1));
    let (two, two_calls) = calls(&bytes, &opts(2));
    assert_eq!(one, two);
    assert_eq!(one_calls, two_calls);
    assert!(one.discarded.is_empty(), "{:?}", one.discarded);
    assert_eq!(one.functions.iter().map(|f| f.used).sum::<u64>(), made);
    assert_eq!(one_calls.len() as u64, made);
    assert!(one.functions.iter().any(|f| !f.counters[0].exact));
    let tree_calls: u64 = one.tree.iter().map(|p| p.calls).sum();
    assert_eq!(tree_calls, made);
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
    assert_eq!(a.trace.duration_ns, 0);
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

/// Records/s of `analyze` on 4 M records with 3 counters, one thread
/// calling a three-level tree, a round every 10 000 records:
/// `cargo test --release --lib analysis::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run it in release mode"]
fn throughput() {
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
    let counters = ["LLC-load-misses", "LLC-store-misses", "LLC-prefetch-misses"];
    let mut f = Fixture::new(&counters, &APP);
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
    let bytes = f.finish(0);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let a = run(&bytes, &options());
        let rate = records as f64 / start.elapsed().as_secs_f64();
        assert_eq!(a.functions.iter().map(|f| f.used).sum::<u64>(), records / 2);
        best = best.max(rate);
    }
    println!("analyze: {:.1} M records/s (best of 5)", best / 1e6);
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
    assert!(opts.functions.is_empty());
}
