//! Report output pinned with snapshots, on a hand-built analysis.

use std::collections::BTreeMap;

use super::*;
use perfunc_calibrate::{ProfileKey, Statistic};

use crate::analysis::{CalibrationInfo, CallPath, CounterStats, Reason, RunSpread, TraceSummary};
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
        raw_sum: v[0],
        raw_mean: v[1],
        raw_p50: v[4],
        within_noise: None,
        runs: None,
    }
}

/// A call path whose raw sums are its inclusive sums (not calibrated).
fn path(path: Vec<u32>, calls: u64, inclusive: Vec<f64>, self_: Vec<f64>) -> CallPath {
    CallPath {
        tid: None,
        path,
        calls,
        raw_inclusive: inclusive.clone(),
        inclusive,
        self_,
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
        callers: Vec::new(),
        source: None,
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
            runs: 1,
            run_time: None,
            complete: true,
            bytes_lost: 0,
            damaged: Vec::new(),
            has_profile: false,
            system_wide: false,
        },
        functions: vec![outer, middle, toucher],
        tree: vec![
            path(vec![0], 5, vec![70.0, 81_200.0], vec![0.0, 3_100.0]),
            path(vec![0, 1], 15, vec![60.0, 45_000.0], vec![0.0, 15_000.0]),
            path(
                vec![0, 1, 2],
                15,
                vec![60.0, 30_000.0],
                vec![60.0, 30_000.0],
            ),
            path(vec![0, 2], 5, vec![10.0, 10_000.0], vec![10.0, 10_000.0]),
        ],
        discarded,
        strict: false,
        calibration: None,
        violations: Default::default(),
    }
}

/// [`nested`] calibrated by the median. Task clock: pf_outer well above
/// the noise; pf_middle within it; pf_touch below 0, outside it. The
/// profile has no page-fault baseline.
pub(crate) fn calibrated() -> Analysis {
    let mut a = nested();
    a.trace.has_profile = true;
    a.calibration = Some(CalibrationInfo {
        statistic: Statistic::Median,
        profile: ProfileKey {
            kernel_release: "6.18.0".into(),
            cpu_model: "Test CPU".into(),
            counters: vec!["page-faults".into(), "task-clock".into()],
            mechanism: "tracefs-uprobe".into(),
        },
        rounds: 5,
        calls_per_round: 10_000,
        source: perfunc_calibrate::Source::Calibrate,
        age_s: 3 * 86_400 + 4 * 3_600 + 59,
        loadavg: Some(0.52),
        in_run_classes: Vec::new(),
        cached_classes: vec!["push-rbp".into(), "ret".into()],
        cached_age_s: Some(3 * 86_400 + 4 * 3_600 + 59),
        noise: vec![crate::analysis::BaselineNoise {
            counter: "task-clock".into(),
            min_mad: 30.0,
            max_mad: 371.0,
        }],
    });
    let outer = &mut a.functions[0].counters[1];
    (outer.raw_sum, outer.raw_mean, outer.raw_p50) = (134_700.0, 26_940.0, 26_600.0);
    outer.within_noise = Some(false);
    a.functions[1].counters[1] = CounterStats {
        raw_sum: 48_000.0,
        raw_mean: 3_200.0,
        raw_p50: 3_150.0,
        within_noise: Some(true),
        ..stats(
            "task-clock",
            Unit::Nanoseconds,
            [
                4_500.0, 300.0, 200.0, 100.0, 250.0, 600.0, 700.0, 700.0, 1_500.0, 100.0,
            ],
        )
    };
    a.functions[2].counters[1] = CounterStats {
        raw_sum: 25_000.0,
        raw_mean: 1_250.0,
        raw_p50: 1_280.0,
        within_noise: Some(false),
        exact: false,
        ..stats(
            "task-clock",
            Unit::Nanoseconds,
            [
                -3_000.0, -150.0, 150.0, -400.0, -120.0, 60.0, 200.0, 200.0, -3_000.0, -150.0,
            ],
        )
    };
    for path in &mut a.tree {
        path.raw_inclusive[1] += 1_400.0 * path.calls as f64;
    }
    a
}

fn render(format: Format, opts: &ReportOptions) -> String {
    render_analysis(&nested(), format, opts)
}

fn render_analysis(a: &Analysis, format: Format, opts: &ReportOptions) -> String {
    let mut out = Vec::new();
    write_report(a, format, opts, &mut out).unwrap();
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
        "the trace has no counter `cycles`; its counters are page-faults, task-clock"
    );
}

/// The row of `counter` under function `function` in a table.
fn row<'a>(table: &'a str, function: &str, counter: &str) -> &'a str {
    table
        .lines()
        .skip_while(|l| !l.starts_with(function))
        .find(|l| l.trim_start().starts_with(counter))
        .unwrap_or_else(|| panic!("no {counter} row under {function}:\n{table}"))
}

#[test]
fn table_calibrated() {
    let text = render_analysis(&calibrated(), Format::Table, &ReportOptions::default());
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    assert!(
        text.contains(
            "\ncalibrated: subtracting the median probe cost per call; raw values: --baseline off\n\
             calibration profile: cached, measured 3 d 4 h before this recording, load 0.52, \
             5 × 10000 calls\n  6.18.0, Test CPU; baseline MAD task-clock 30 ns–371 ns\n  \
             it may not fit this run: `perfunc calibrate` measures it anew\n"
        ),
        "{text}"
    );
    assert!(row(&text, "pf_outer", "task-clock").ends_with("19.0 µs"));
    assert!(row(&text, "pf_middle", "task-clock").ends_with(" ≈"));
    let touch = row(&text, "pf_touch", "task-clock");
    assert!(
        touch.ends_with(" ~ <0") && touch.contains("-3.00 µs"),
        "{touch}"
    );
    assert!(row(&text, "pf_touch", "page-faults").ends_with(" 4"));
    let footer: Vec<&str> = text.lines().rev().take(3).collect();
    assert_eq!(
        footer,
        [
            "<0 calibration subtracted more than was measured: the probes' cost varies from \
             call to call",
            "≈ the median (P50) is within the probes' noise: cannot be told apart from 0",
            "~ percentiles from a histogram (relative error 0.001), not exact",
        ]
    );
    insta::assert_snapshot!(text);
}

#[test]
fn table_says_why_values_are_not_calibrated() {
    let mut off = nested();
    off.trace.has_profile = true;
    let text = render_analysis(&off, Format::Table, &ReportOptions::default());
    assert!(text.contains("\nnot calibrated (--baseline off): values include the probes' cost\n"));
    let text = render(Format::Table, &ReportOptions::default());
    assert!(text.contains(
        "\nnot calibrated: the trace holds no calibration profile; values include the probes' \
         cost\n"
    ));
    // Negative raw values are not calibration's doing: no marker.
    let mut negative = nested();
    negative.functions[0].counters[1].mean = -5.0;
    let text = render_analysis(&negative, Format::Table, &ReportOptions::default());
    assert!(!text.contains("<0"), "{text}");
}

#[test]
fn json_calibrated() {
    let text = render_analysis(&calibrated(), Format::Json, &ReportOptions::default());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let calibration = &value["trace"]["calibration"];
    assert_eq!(calibration["statistic"], "median");
    assert_eq!(calibration["profile"]["cpu_model"], "Test CPU");
    assert_eq!(value["trace"]["has_profile"], true);
    let touch = &value["functions"][1]["counters"]["task-clock"];
    assert_eq!(value["functions"][1]["name"], "pf_touch");
    assert_eq!(
        (touch["mean"].as_f64(), touch["raw_mean"].as_f64()),
        (Some(-150.0), Some(1_250.0))
    );
    assert_eq!(touch["within_noise"], false);
    assert_eq!(
        value["functions"][2]["counters"]["task-clock"]["within_noise"],
        true
    );
    assert_eq!(
        value["functions"][2]["counters"]["page-faults"]["within_noise"],
        serde_json::Value::Null
    );
    assert_eq!(value["tree"][0]["raw_inclusive"]["task-clock"], 88_200.0);
    insta::assert_snapshot!(text);
}

#[test]
fn csv_calibrated() {
    let text = render_analysis(&calibrated(), Format::Csv, &ReportOptions::default());
    let mut reader = ::csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<::csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let cells = |i: usize| {
        [
            "function",
            "counter",
            "mean",
            "raw_mean",
            "raw_p50",
            "within_noise",
        ]
        .map(|name| rows[i][column(name)].to_owned())
    };
    assert_eq!(cells(0), ["pf_outer", "page-faults", "14", "14", "14", ""]);
    assert_eq!(
        cells(3),
        ["pf_touch", "task-clock", "-150", "1250", "1280", "false"]
    );
    assert_eq!(
        cells(5),
        ["pf_middle", "task-clock", "300", "3200", "3150", "true"]
    );
}

#[test]
fn a_trace_without_footer_shows_its_span_as_at_least_and_one_record_singular() {
    let mut a = nested();
    a.trace.complete = false;
    a.trace.records = 1;
    let text = render_analysis(&a, Format::Table, &ReportOptions::default());
    assert!(
        text.contains(
            "counters: page-faults, task-clock (ns) | at least 12.3 ms | 1 record, 0 lost | 1 thread\n"
        ),
        "{text}"
    );
}

#[test]
fn the_table_says_loudly_when_calls_broke_an_invariant() {
    use crate::analysis::{Violation, ViolationKind, Violations};
    let mut broken = nested();
    broken.violations = Violations {
        negative_delta: 0,
        below_children: 2,
        first: Some(Violation {
            kind: ViolationKind::BelowChildren,
            function: "pf_outer".into(),
            tid: 7,
            start: 1500,
            counter: "page-faults".into(),
            delta: 3,
            children: 5,
        }),
    };
    let text = render_analysis(&broken, Format::Table, &ReportOptions::default());
    assert!(
        text.contains(
            "\nBUG: 2 calls broke an invariant of counting (0 with a negative raw delta, 2 below \
             the sum of their probed children's); the first: pf_outer (tid 7, entry at 1500 ns): \
             page-faults 3, its children 5; these values cannot be trusted: please report it, \
             with the trace\n"
        ),
        "{text}"
    );
    let clean = render_analysis(&nested(), Format::Table, &ReportOptions::default());
    assert!(!clean.contains("BUG"), "{clean}");
    let json: serde_json::Value = serde_json::from_str(&render_analysis(
        &broken,
        Format::Json,
        &ReportOptions::default(),
    ))
    .unwrap();
    assert_eq!(json["violations"]["below_children"], 2);
    assert_eq!(json["violations"]["first"]["kind"], "below_children");
    assert_eq!(json["violations"]["first"]["children"], 5);
    let clean: serde_json::Value = serde_json::from_str(&render_analysis(
        &nested(),
        Format::Json,
        &ReportOptions::default(),
    ))
    .unwrap();
    assert!(clean.get("violations").is_none(), "{clean}");
}

#[test]
fn runs_of_a_repeated_recording_are_shown_per_counter_and_for_the_command() {
    let mut a = nested();
    a.trace.runs = 3;
    a.trace.run_time = RunSpread::of(vec![2.0e6, 2.2e6, 1.8e6]);
    a.functions[0].counters[1].runs = RunSpread::of(vec![10_000.0, 10_500.0, 9_500.0]);
    let text = render_analysis(&a, Format::Table, &ReportOptions::default());
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    assert!(
        text.contains(
            "3 runs: 2.00 ms per run (median), ±10.0% run to run; \
             RUNS: the median of the runs' medians"
        ),
        "{text}"
    );
    let runs: Vec<&str> = text.lines().filter(|l| l.contains("RUNS ")).collect();
    assert_eq!(runs.len(), 1, "{text}");
    assert!(runs[0].ends_with("10.0 µs  ±5.0% (3 runs)"), "{runs:?}");
    // Under the P50 column.
    let head = text.lines().find(|l| l.starts_with("FUNCTION")).unwrap();
    let end = |line: &str, text: &str| {
        line[..line.find(text).unwrap()].chars().count() + text.chars().count()
    };
    assert_eq!(end(runs[0], "10.0 µs"), end(head, "P50"));
    let json = render_analysis(&a, Format::Json, &ReportOptions::default());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["trace"]["runs"], 3);
    assert_eq!(v["trace"]["run_time"]["median"], 2.0e6);
    let task = &v["functions"][0]["counters"]["task-clock"]["runs"];
    assert_eq!(
        task["medians"],
        serde_json::json!([10_000.0, 10_500.0, 9_500.0])
    );
    assert_eq!(task["stddev"], 500.0);
    assert!(v["functions"][0]["counters"]["page-faults"]
        .get("runs")
        .is_none());
}
