//! Report output pinned with snapshots, on a hand-built analysis.

use std::collections::BTreeMap;

use super::*;
use crate::analysis::{CallPath, CounterStats, Reason, TraceSummary};
use crate::events::{parse_counter, NoPmus, Unit};

fn stats(name: &str, unit: Unit, v: [f64; 10]) -> CounterStats {
    CounterStats {
        name: name.to_owned(),
        unit,
        sum: v[0],
        mean: v[1],
        stddev: v[2],
        min: v[3],
        p50: v[4],
        p90: v[5],
        p99: v[6],
        max: v[7],
        self_sum: v[8],
        self_mean: v[9],
        exact: true,
    }
}

/// The nested page-toucher: outer (5 calls) → middle ×3 → toucher(4),
/// and outer → toucher(2) directly.
pub(crate) fn nested() -> Analysis {
    let counters = vec![
        parse_counter("page-faults", &NoPmus).unwrap(),
        parse_counter("task-clock", &NoPmus).unwrap(),
    ];
    let function = |probe, name: &str, calls, used, c: Vec<CounterStats>| FunctionStats {
        probe,
        name: name.to_owned(),
        binary: "/tmp/workloads".to_owned(),
        calls,
        used,
        discarded: BTreeMap::new(),
        flagged: BTreeMap::new(),
        counters: c,
    };
    let mut outer = function(
        0,
        "pf_outer",
        6,
        5,
        vec![
            stats(
                "page-faults",
                Unit::Count,
                [70.0, 14.0, 0.0, 14.0, 14.0, 14.0, 14.0, 14.0, 0.0, 0.0],
            ),
            stats(
                "task-clock",
                Unit::Nanoseconds,
                [
                    81_200.0, 16_240.0, 1_100.5, 15_000.0, 15_900.0, 17_000.0, 19_000.0, 19_000.0,
                    3_100.0, 620.0,
                ],
            ),
        ],
    );
    outer.discarded.insert(Reason::EntryWithoutReturn, 1);
    let middle = function(
        1,
        "pf_middle",
        15,
        15,
        vec![
            stats(
                "page-faults",
                Unit::Count,
                [60.0, 4.0, 0.0, 4.0, 4.0, 4.0, 4.0, 4.0, 0.0, 0.0],
            ),
            stats(
                "task-clock",
                Unit::Nanoseconds,
                [
                    45_000.0, 3_000.0, 200.0, 2_800.0, 2_950.0, 3_300.0, 3_500.0, 3_500.0,
                    15_000.0, 1_000.0,
                ],
            ),
        ],
    );
    let mut toucher = function(
        2,
        "pf_touch",
        20,
        20,
        vec![
            stats(
                "page-faults",
                Unit::Count,
                [70.0, 3.5, 0.88852, 2.0, 4.0, 4.0, 4.0, 4.0, 70.0, 3.5],
            ),
            stats(
                "task-clock",
                Unit::Nanoseconds,
                [
                    40_000.0, 2_000.0, 150.0, 1_700.0, 1_950.0, 2_200.0, 2_400.0, 2_400.0,
                    40_000.0, 2_000.0,
                ],
            ),
        ],
    );
    toucher.flagged.insert(Reason::Migrated, 2);
    toucher.counters[1].exact = false;
    let mut discarded = BTreeMap::new();
    discarded.insert(Reason::EntryWithoutReturn, 1);
    Analysis {
        trace: TraceSummary {
            command: "/tmp/workloads nested 5".to_owned(),
            counters,
            duration_ns: 12_345_678,
            records: 82,
            lost: 0,
            threads: 1,
            complete: true,
            bytes_lost: 0,
            salvaged: None,
        },
        functions: vec![outer, middle, toucher],
        tree: vec![
            CallPath {
                path: vec![0],
                calls: 5,
                inclusive: vec![70.0, 81_200.0],
                self_: vec![0.0, 3_100.0],
            },
            CallPath {
                path: vec![0, 1],
                calls: 15,
                inclusive: vec![60.0, 45_000.0],
                self_: vec![0.0, 15_000.0],
            },
            CallPath {
                path: vec![0, 1, 2],
                calls: 15,
                inclusive: vec![60.0, 30_000.0],
                self_: vec![60.0, 30_000.0],
            },
            CallPath {
                path: vec![0, 2],
                calls: 5,
                inclusive: vec![10.0, 10_000.0],
                self_: vec![10.0, 10_000.0],
            },
        ],
        discarded,
        strict: false,
    }
}

fn render(format: Format, opts: &ReportOptions) -> String {
    let mut out = Vec::new();
    write_report(&nested(), format, opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn table() {
    let text = render(Format::Table, &ReportOptions::default());
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn table_sorted_by_self_task_clock_top_2() {
    let opts = ReportOptions {
        sort: Some("task-clock".into()),
        by_self: true,
        top: Some(2),
    };
    let text = render(Format::Table, &opts);
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pf_"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["pf_touch", "pf_middle"]);
}

#[test]
fn json() {
    let text = render(Format::Json, &ReportOptions::default());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let outer = &value["functions"][0];
    assert_eq!(outer["name"], "pf_outer");
    assert_eq!(outer["calls"], 6);
    assert_eq!(outer["used"], 5);
    assert_eq!(outer["discarded"]["entry_without_return"], 1);
    assert_eq!(outer["counters"]["page-faults"]["mean"], 14.0);
    assert_eq!(outer["counters"]["page-faults"]["self_mean"], 0.0);
    assert_eq!(
        value["tree"][2]["path"],
        serde_json::json!(["pf_outer", "pf_middle", "pf_touch"])
    );
    insta::assert_snapshot!(text);
}

#[test]
fn csv() {
    let text = render(Format::Csv, &ReportOptions::default());
    let mut reader = ::csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<::csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 6, "one row per function and counter");
    assert_eq!(&rows[0][0], "pf_outer");
    assert_eq!(&rows[0][6], "page-faults");
    assert_eq!(&rows[0][9], "14");
    insta::assert_snapshot!(text);
}

#[test]
fn unknown_sort_counter_lists_the_counters() {
    let opts = ReportOptions {
        sort: Some("cycles".into()),
        ..ReportOptions::default()
    };
    let err = write_report(&nested(), Format::Table, &opts, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot sort by `cycles`: the trace's counters are page-faults, task-clock"
    );
}
