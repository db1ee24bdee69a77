use std::collections::BTreeMap;

use super::*;
use crate::events::Unit;
use crate::report::tests::nested;

/// A run of functions given as (name, page-fault values, task-clock
/// values), with means from the values.
fn run(path: &str, functions: &[(&str, Vec<i64>, Vec<i64>)]) -> Run {
    let mut analysis = nested();
    let template = analysis.functions[0].clone();
    let mut values = BTreeMap::new();
    analysis.functions = functions
        .iter()
        .enumerate()
        .map(|(probe, (name, faults, clock))| {
            let mut f = template.clone();
            f.probe = probe as u32;
            f.name = (*name).to_owned();
            f.used = faults.len() as u64;
            f.calls = f.used;
            for (c, v) in f.counters.iter_mut().zip([faults, clock]) {
                c.mean = v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
            }
            values.insert(probe as u32, vec![faults.clone(), clock.clone()]);
            f
        })
        .collect();
    Run::new(path, analysis, values)
}

/// n values spread around `center` (±5 %), in a fixed pattern.
fn spread(n: usize, center: i64) -> Vec<i64> {
    (0..n as i64)
        .map(|i| center + (i * 37 % 101 - 50) * center / 1000)
        .collect()
}

/// Gives `function`'s `counter` (0 page-faults, 1 task-clock) per-run
/// medians, as a `record --repeat` trace has.
fn with_runs(mut run: Run, function: &str, counter: usize, medians: &[f64]) -> Run {
    let probe = run
        .analysis()
        .functions
        .iter()
        .find(|f| f.name == function)
        .unwrap()
        .probe;
    run.stats_mut(probe, counter).runs = crate::analysis::RunSpread::of(medians.to_vec());
    run
}

fn table_of(diff: &Diff) -> String {
    let mut out = Vec::new();
    write_diff(diff, crate::report::Format::Table, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn counter<'a>(diff: &'a Diff, function: &str, name: &str) -> &'a CounterDiff {
    diff.functions
        .iter()
        .find(|f| f.name == function)
        .and_then(|f| f.counters.iter().find(|c| c.name == name))
        .unwrap()
}

#[test]
fn sixteen_to_twenty_pages_is_a_25_percent_regression() {
    let base = run("a", &[("touch", vec![16; 200], spread(200, 10_000))]);
    let new = run("b", &[("touch", vec![20; 200], spread(200, 10_000))]);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let faults = counter(&diff, "touch", "page-faults");
    assert_eq!(faults.verdict, Verdict::Regressed);
    assert_eq!(faults.change, Some(0.25));
    assert_eq!((faults.ci_low, faults.ci_high), (Some(0.25), Some(0.25)));
    assert_eq!((faults.base_median, faults.new_median), (16.0, 20.0));
    assert_eq!((faults.base_mean, faults.new_mean), (16.0, 20.0));
    assert!(faults.q_value.unwrap() < 1e-10);
    assert_eq!(faults.test, Some(Test::Calls));
    // A time with one run per side is not tested at all.
    let clock = counter(&diff, "touch", "task-clock");
    assert_eq!(clock.verdict, Verdict::Inconclusive);
    assert_eq!(
        clock.reason.as_deref(),
        Some("one run per side: run-to-run noise unknown; record with --repeat 4 or more")
    );
    assert_eq!(clock.change, Some(0.0));
    assert_eq!((clock.test, clock.p_value), (None, None));
    // No interval for a change that is not tested.
    assert_eq!((clock.ci_low, clock.ci_high), (None, None));
    assert_eq!((clock.difference_low, clock.difference_high), (None, None));
    assert_eq!(
        diff.regressions(0.25),
        [("touch", "page-faults", Some(0.25))]
    );
    assert!(diff.regressions(0.26).is_empty());
}

#[test]
fn a_shift_below_the_threshold_is_unchanged_and_above_it_improved() {
    let medians = [10_000.0, 10_100.0, 9_900.0, 10_050.0, 9_950.0];
    let shifted = |factor: f64| medians.map(|m| m * factor);
    let of = |path: &str, medians: &[f64]| {
        let r = run(path, &[("f", vec![1; 400], spread(400, 10_000))]);
        with_runs(r, "f", 1, medians)
    };
    let base = of("a", &medians);
    let small = of("b", &shifted(0.995));
    let large = of("c", &shifted(0.9));
    let opts = DiffOptions::default();
    let diff = compare(&base, &small, &opts).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (Some(Test::Runs), Verdict::Unchanged));
    assert_eq!(c.runs, RunCounts { base: 5, new: 5 });
    let diff = compare(&base, &large, &opts).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (Some(Test::Runs), Verdict::Improved));
    assert!((c.change.unwrap() + 0.1).abs() < 1e-12, "{c:?}");
    assert!((c.difference + 1_000.0).abs() < 1e-9, "{c:?}");
    assert!(
        c.ci_low.unwrap() < -0.1 && c.ci_high.unwrap() > -0.1 && c.ci_high.unwrap() < 0.0,
        "{c:?}"
    );
    assert_eq!(
        (c.base_run_median, c.new_run_median),
        (Some(10_000.0), Some(9_000.0))
    );
    let table = table_of(&diff);
    assert!(table.contains("10.0 µs ±0.8% (5 runs)"), "{table}");
    assert!(
        table.contains("test runs: Mann–Whitney U on the per-run medians"),
        "{table}"
    );
}

#[test]
fn runs_that_spread_more_than_the_change_are_unchanged() {
    // -4 % on average, with runs that differ by ±10 %.
    let base = [10_000.0, 11_000.0, 9_000.0, 10_500.0, 9_500.0];
    let new = [9_600.0, 10_600.0, 8_600.0, 10_100.0, 9_100.0].map(|m| m + 10.0);
    let b = with_runs(
        run("a", &[("f", vec![1; 50], spread(50, 10_000))]),
        "f",
        1,
        &base,
    );
    let n = with_runs(
        run("b", &[("f", vec![1; 50], spread(50, 9_000))]),
        "f",
        1,
        &new,
    );
    let diff = compare(&b, &n, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (Some(Test::Runs), Verdict::Unchanged));
    assert!(c.p_value.unwrap() > 0.3, "{c:?}");
    assert!(c.ci_low.unwrap() < 0.0 && c.ci_high.unwrap() > 0.0, "{c:?}");
}

#[test]
fn a_time_of_one_run_gets_a_verdict_only_beyond_the_floor_and_does_not_gate() {
    let base = run("a", &[("f", vec![1; 100], spread(100, 10_000))]);
    let twice = run("b", &[("f", vec![1; 100], spread(100, 20_000))]);
    let diff = compare(&base, &twice, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(table_of(&diff).contains(
        "inconclusive: one run per side: run-to-run noise unknown; record with --repeat 4 or more"
    ));
    // ×4, calibrated and raw: tested, not gated.
    let mut four = run("c", &[("f", vec![1; 100], spread(100, 40_000))]);
    let raw = base.stats(0, 1).raw_p50;
    four.stats_mut(0, 1).raw_p50 = raw * 4.0;
    let diff = compare(&base, &four, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!(
        (c.test, c.verdict),
        (Some(Test::CallsBeyondFloor), Verdict::Regressed)
    );
    assert!(diff.regressions(0.01).is_empty());
    // ×4 calibrated, but the raw median moved by a third: what is left
    // after the probes' cost, not tested.
    four.stats_mut(0, 1).raw_p50 = raw * 1.3;
    let diff = compare(&base, &four, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (None, Verdict::Inconclusive));
    // One side repeated, the other not: still one run on a side.
    let repeated = with_runs(base.clone(), "f", 1, &[10_000.0, 10_100.0]);
    let diff = compare(&repeated, &twice, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!(
        c.reason.as_deref(),
        Some("one run in new: run-to-run noise unknown; record with --repeat 4 or more")
    );
}

#[test]
fn values_within_probe_noise_are_inconclusive_with_their_absolute_change() {
    let base = run("a", &[("f", vec![1; 100], spread(100, 20))]);
    let new = run("b", &[("f", vec![1; 100], spread(100, 400))]);
    let (mut base, mut new) = (
        with_runs(base, "f", 1, &[20.0, 21.0, 19.0, 20.0, 22.0]),
        with_runs(new, "f", 1, &[400.0, 410.0, 390.0, 400.0, 405.0]),
    );
    base.stats_mut(0, 1).within_noise = Some(true);
    new.stats_mut(0, 1).within_noise = Some(true);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert_eq!(c.reason.as_deref(), Some("within probe noise"));
    assert_eq!((c.change, c.test, c.q_value), (None, None, None));
    assert_eq!(c.difference, 380.0);
    let table = table_of(&diff);
    assert!(table.contains("+380 ns"), "{table}");
    assert!(
        table.contains("inconclusive: within probe noise"),
        "{table}"
    );
    // Only the base within noise: tested, the change absolute.
    new.stats_mut(0, 1).within_noise = Some(false);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (Some(Test::Runs), Verdict::Regressed));
    assert_eq!((c.change, c.ci_low), (None, None));
    assert_eq!(c.difference, 380.0);
    assert_eq!(
        (c.difference_low, c.difference_high),
        (Some(370.0), Some(390.0))
    );
    let table = table_of(&diff);
    assert!(table.contains("[+370 ns, +390 ns]"), "{table}");
    // Runs that overlap: the absolute interval straddles 0, no verdict.
    let new = with_runs(new, "f", 1, &[15.0, 30.0, 18.0, 25.0, 21.0]);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (Some(Test::Runs), Verdict::Unchanged));
    assert!(c.difference_low.unwrap() < 0.0, "{c:?}");
}

#[test]
fn a_verdict_needs_the_interval_on_its_side() {
    let mut c = CounterDiff {
        name: "task-clock".into(),
        unit: Unit::Nanoseconds,
        runs: RunCounts { base: 5, new: 5 },
        base_median: 100.0,
        new_median: 120.0,
        base_mean: 100.0,
        new_mean: 120.0,
        base_run_median: Some(100.0),
        base_run_stddev: Some(1.0),
        new_run_median: Some(120.0),
        new_run_stddev: Some(1.0),
        difference: 20.0,
        difference_low: Some(-2.0),
        difference_high: Some(40.0),
        change: Some(0.2),
        ci_low: Some(-0.01),
        ci_high: Some(0.4),
        test: Some(Test::Runs),
        p_value: Some(0.01),
        q_value: Some(0.01),
        verdict: Verdict::Unchanged,
        reason: None,
    };
    let opts = DiffOptions::default();
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
    c.ci_low = Some(0.01);
    // The absolute interval straddles 0 still.
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
    c.difference_low = Some(1.0);
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Regressed);
    assert_eq!(verdict(&c, 0.05, &opts), Verdict::Unchanged);
    // A base within noise has no relative change or interval: the
    // absolute one decides, and no interval at all is no verdict.
    (c.change, c.ci_low, c.ci_high) = (None, None, None);
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Regressed);
    c.difference_low = Some(-1.0);
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
    c.difference_low = None;
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
    c.difference_high = None;
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
    // Down: the upper bounds must be below 0.
    (c.difference, c.difference_low, c.difference_high) = (-20.0, Some(-40.0), Some(-1.0));
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Improved);
    c.difference_high = Some(1.0);
    assert_eq!(verdict(&c, 0.01, &opts), Verdict::Unchanged);
}

#[test]
fn an_exact_counter_is_tested_by_calls_whatever_the_runs() {
    // Four runs a side of 16 and of 20 pages: the run medians tie, and
    // four runs could not reach p < 0.029; the calls are exact.
    let of = |path: &str, pages: i64| {
        let r = run(path, &[("touch", vec![pages; 120], spread(120, 10_000))]);
        with_runs(r, "touch", 0, &[pages as f64; 4])
    };
    let diff = compare(&of("a", 16), &of("b", 20), &DiffOptions::default()).unwrap();
    let c = counter(&diff, "touch", "page-faults");
    assert_eq!((c.test, c.verdict), (Some(Test::Calls), Verdict::Regressed));
    assert_eq!(
        (c.change, c.ci_low, c.ci_high),
        (Some(0.25), Some(0.25), Some(0.25))
    );
    assert_eq!(
        (c.difference_low, c.difference_high),
        (Some(4.0), Some(4.0))
    );
    assert_eq!(
        diff.regressions(0.25),
        [("touch", "page-faults", Some(0.25))]
    );
}

#[test]
fn a_time_beyond_the_floor_raw_the_other_way_is_not_tested() {
    let base = run("a", &[("f", vec![1; 100], spread(100, 10_000))]);
    let mut four = run("b", &[("f", vec![1; 100], spread(100, 40_000))]);
    let raw = base.stats(0, 1).raw_p50;
    four.stats_mut(0, 1).raw_p50 = raw / 4.0;
    let diff = compare(&base, &four, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.test, c.verdict), (None, Verdict::Inconclusive));
    assert_eq!((c.difference_low, c.difference_high), (None, None));
    four.stats_mut(0, 1).raw_p50 = raw * 3.0;
    let diff = compare(&base, &four, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "task-clock");
    assert_eq!(c.test, Some(Test::CallsBeyondFloor));
}

#[test]
fn too_few_calls_are_inconclusive_and_not_tested() {
    let base = run("a", &[("f", vec![1, 1, 1], vec![10, 11, 12])]);
    let new = run("b", &[("f", vec![9, 9, 9], vec![90, 91, 92])]);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    assert_eq!(diff.min_calls, 4);
    for c in &diff.functions[0].counters {
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert_eq!((c.p_value, c.q_value), (None, None));
    }
    let mut table = Vec::new();
    write_diff(&diff, crate::report::Format::Table, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("inconclusive: needs ≥ 4 calls a side"),
        "{table}"
    );
}

#[test]
fn q_values_correct_over_every_test() {
    // Two functions, two counters of which one is tested per call: two
    // tests, one clear difference.
    let base = run(
        "a",
        &[
            ("f", vec![16; 50], spread(50, 1_000)),
            ("g", vec![2; 50], spread(50, 1_000)),
        ],
    );
    let new = run(
        "b",
        &[
            ("f", vec![20; 50], spread(50, 1_000)),
            ("g", vec![2; 50], spread(50, 1_000)),
        ],
    );
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let f = counter(&diff, "f", "page-faults");
    let p = f.p_value.unwrap();
    assert_eq!(f.q_value, Some(p * 2.0));
    assert_eq!(counter(&diff, "g", "page-faults").q_value, Some(1.0));
    for name in ["f", "g"] {
        assert_eq!(counter(&diff, name, "task-clock").q_value, None);
    }
}

#[test]
fn functions_of_one_run_are_listed_as_such() {
    let base = run(
        "a",
        &[
            ("both", vec![1; 10], vec![5; 10]),
            ("gone", vec![1; 7], vec![5; 7]),
        ],
    );
    let new = run(
        "b",
        &[
            ("both", vec![1; 10], vec![5; 10]),
            ("added", vec![1; 3], vec![5; 3]),
        ],
    );
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let summary: Vec<_> = diff
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.base_calls, f.new_calls, f.only_in))
        .collect();
    assert_eq!(
        summary,
        [
            ("both", 10, 10, None),
            ("added", 0, 3, Some(Side::New)),
            ("gone", 7, 0, Some(Side::Base)),
        ]
    );
}

#[test]
fn counter_selection_and_errors() {
    let base = run("a", &[("f", vec![1; 10], vec![5; 10])]);
    let new = run("b", &[("f", vec![1; 10], vec![5; 10])]);
    let opts = DiffOptions {
        counter: Some("task-clock".into()),
        ..DiffOptions::default()
    };
    let diff = compare(&base, &new, &opts).unwrap();
    assert_eq!(diff.functions[0].counters.len(), 1);
    assert_eq!(diff.functions[0].counters[0].name, "task-clock");
    let opts = DiffOptions {
        counter: Some("cycles".into()),
        ..DiffOptions::default()
    };
    let err = compare(&base, &new, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`cycles` is not a counter of both traces; they share page-faults, task-clock"
    );
}

#[test]
fn zero_base_median() {
    let base = run("a", &[("f", vec![0; 40], vec![0; 40])]);
    let mut faults = vec![0; 40];
    faults.extend([3; 60]);
    let new = run("b", &[("f", faults, vec![0; 100])]);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let c = counter(&diff, "f", "page-faults");
    assert_eq!(c.change, None);
    assert_eq!(c.verdict, Verdict::Regressed);
    assert_eq!(diff.regressions(0.5).len(), 1);
    let c = counter(&diff, "f", "task-clock");
    assert_eq!((c.change, c.verdict), (Some(0.0), Verdict::Inconclusive));
}

#[test]
fn json_names_every_field() {
    let base = run("a.trace", &[("touch", vec![16; 20], vec![100; 20])]);
    let new = run("b.trace", &[("touch", vec![20; 20], vec![100; 20])]);
    let diff = compare(&base, &new, &DiffOptions::default()).unwrap();
    let mut out = Vec::new();
    write_diff(&diff, crate::report::Format::Json, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["base"]["trace"], "a.trace");
    assert_eq!(v["new"]["command"], "/tmp/workloads nested 5");
    let f = &v["functions"][0];
    assert_eq!(
        (f["name"].as_str(), f["base_calls"].as_u64()),
        (Some("touch"), Some(20))
    );
    let c = &f["counters"]["page-faults"];
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "base_median",
        "new_median",
        "base_mean",
        "new_mean",
        "change",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "verdict",
        "runs",
        "test",
        "reason",
        "difference",
        "base_run_median",
        "new_run_stddev",
        "difference_low",
        "difference_high",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(c["verdict"], "regressed");
    assert_eq!(c["change"], 0.25);
    assert_eq!(
        (c["test"].as_str(), c["runs"]["base"].as_u64()),
        (Some("calls"), Some(1))
    );
    assert_eq!(v["confidence"], 0.95);
    let clock = &f["counters"]["task-clock"];
    assert_eq!(
        clock["reason"],
        "one run per side: run-to-run noise unknown; record with --repeat 4 or more"
    );
    let mut out = Vec::new();
    write_diff(&diff, crate::report::Format::Csv, &mut out).unwrap();
    let csv = String::from_utf8(out).unwrap();
    assert!(
        csv.lines().any(
            |l| l.starts_with("touch,page-faults,20,20,16,20,16,20,0.25,0.25,0.25,")
                && l.ends_with(",regressed,1,1,,,,,4,calls,,4,4")
        ),
        "{csv}"
    );
    let header = csv.lines().next().unwrap();
    assert_eq!(header.split(',').count(), 25, "{header}");
    assert!(csv.lines().all(|l| l.split(',').count() == 25), "{csv}");
}

#[test]
fn counters_of_one_trace_only_are_named_once() {
    let base = run("a", &[("f", vec![1; 10], vec![5; 10])]);
    let mut new = run("b", &[("f", vec![1; 10], vec![5; 10])]);
    new.rename_counter(1, "cpu-clock");
    let opts = DiffOptions {
        counter: Some("page-faults".into()),
        ..DiffOptions::default()
    };
    let diff = compare(&base, &new, &opts).unwrap();
    assert_eq!(diff.unmatched_counters, ["task-clock", "cpu-clock"]);
    assert_eq!(diff.functions[0].counters.len(), 1);
}
