//! Criterion benchmarks of the pure parts: reading a trace and analyzing
//! it (pairing, statistics) with 1 and 2 worker threads, and analyzing a
//! trace of calls that never return (longjmps). Throughput is in
//! records. Run with `cargo bench --bench main`; figures in
//! docs/performance.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perfunc::analysis::{analyze, AnalysisOptions};
use perfunc::events::{parse_counter, NoPmus};
use perfunc::trace::{
    ProbeKind, ProbeSite, RecordKind, SampleIn, Target, TraceHeader, TraceReader, TraceWriter,
};

/// Calls of the outer function per thread; each makes 3 nested calls.
const OUTER_CALLS: u64 = 62_500;
const THREADS: u32 = 4;

fn header() -> TraceHeader {
    let site = |id: u32, name: &str| ProbeSite {
        key: None,
        id,
        function: name.to_owned(),
        raw_name: name.to_owned(),
        binary: "/bench".to_owned(),
        build_id: None,
        addr: 0x1000 * u64::from(id + 1),
        offset: 0x1000 * u64::from(id + 1),
        size: 16,
        class: "push-rbp".to_owned(),
        kind: ProbeKind::Uprobe,
    };
    TraceHeader {
        callchains: false,
        follow: None,
        counter_decision: None,
        key_column: false,
        perfunc_version: "bench".to_owned(),
        created_unix_ns: 0,
        command_line: vec![],
        target: Target::Command {
            argv: vec!["bench".to_owned()],
        },
        kernel_release: "bench".to_owned(),
        cpu_model: "bench".to_owned(),
        ncpus: 2,
        clock: "CLOCK_MONOTONIC".to_owned(),
        counters: ["task-clock", "page-faults", "context-switches"]
            .iter()
            .map(|n| parse_counter(n, &NoPmus).unwrap())
            .collect(),
        probes: vec![site(0, "outer"), site(1, "middle"), site(2, "leaf")],
        calibration: None,
    }
}

/// A trace of `THREADS` threads, each calling outer → middle → leaf with
/// three middles per outer: 14 records per outer call and thread.
fn trace() -> (Vec<u8>, u64) {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    let mut records = 0;
    let mut time = 0u64;
    let mut values = [0u64; 3];
    for call in 0..OUTER_CALLS {
        for tid in 0..THREADS {
            let mut push = |probe, kind, w: &mut TraceWriter<Vec<u8>>| {
                time += 100;
                values[0] += 150 + (time % 7);
                values[1] += u64::from(probe == 2 && kind == RecordKind::Entry);
                w.push_sample(&SampleIn {
                    key: 0,
                    time,
                    pid: 1,
                    tid: 100 + tid,
                    probe,
                    cpu: (tid % 2) as u16,
                    kind,
                    time_enabled: time,
                    time_running: time,
                    values: &values,
                })
                .unwrap();
                records += 1;
            };
            push(0, RecordKind::Entry, &mut w);
            for _ in 0..3 {
                push(1, RecordKind::Entry, &mut w);
                push(2, RecordKind::Entry, &mut w);
                push(2, RecordKind::Return, &mut w);
                push(1, RecordKind::Return, &mut w);
            }
            push(0, RecordKind::Return, &mut w);
        }
        if call % 1_000 == 999 {
            w.flush().unwrap();
        }
    }
    (w.finish(&Default::default()).unwrap(), records)
}

/// Calls of a function left by longjmp in the `longjmp` benchmark.
const LONGJMPS: u64 = 1_000_000;

/// One thread's `LONGJMPS` calls of `leaf` that never return, as a probed
/// `outer` that calls `setjmp` and then `leaf`, which jumps back: after
/// each, a return of `middle` whose entry is not on the stack. `outer`
/// returns at the end, unwinding every `leaf`.
fn longjmp_trace() -> (Vec<u8>, u64) {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    let mut records = 0;
    let mut time = 0u64;
    let mut push = |probe, kind, w: &mut TraceWriter<Vec<u8>>| {
        time += 100;
        let values = [time, 0, 0];
        w.push_sample(&SampleIn {
            key: 0,
            time,
            pid: 1,
            tid: 100,
            probe,
            cpu: 0,
            kind,
            time_enabled: time,
            time_running: time,
            values: &values,
        })
        .unwrap();
        records += 1;
        if records % 50_000 == 0 {
            w.flush().unwrap();
        }
    };
    push(0, RecordKind::Entry, &mut w);
    for _ in 0..LONGJMPS {
        push(2, RecordKind::Entry, &mut w);
        push(1, RecordKind::Return, &mut w);
    }
    push(0, RecordKind::Return, &mut w);
    (w.finish(&Default::default()).unwrap(), records)
}

fn longjmp_bench(c: &mut Criterion) {
    let (bytes, records) = longjmp_trace();
    let mut group = c.benchmark_group("longjmp");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("analyze", LONGJMPS), |b| {
        b.iter(|| {
            let reader = TraceReader::new(bytes.as_slice()).unwrap();
            black_box(analyze(reader, &AnalysisOptions::default()).unwrap())
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (bytes, records) = trace();
    let mut group = c.benchmark_group("trace");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    group.bench_function("read", |b| {
        b.iter(|| {
            let mut reader = TraceReader::new(bytes.as_slice()).unwrap();
            let mut n = 0;
            while let Some(chunk) = reader.next_chunk().unwrap() {
                if let perfunc::trace::Chunk::Samples(block) = chunk {
                    n += block.iter().map(|s| s.value(0)).sum::<u64>();
                }
            }
            black_box(n)
        })
    });
    for threads in [1, 2] {
        group.bench_with_input(BenchmarkId::new("analyze", threads), &threads, |b, &t| {
            b.iter(|| {
                let mut opts = AnalysisOptions::default();
                opts.threads = Some(t);
                let reader = TraceReader::new(bytes.as_slice()).unwrap();
                black_box(analyze(reader, &opts).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(trace_benches, benches, longjmp_bench);
criterion_main!(trace_benches);
