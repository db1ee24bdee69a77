//! `perfunc diff` of repeated recordings (`record --repeat`): the run as the
//! unit of the test. These measure time, so they run here, one at a time,
//! with nothing else of the suite beside them.

use serde_json::Value;

use super::one_at_a_time;
use crate::common::*;

/// Records `cmd` `repeat` times into one trace in a new directory.
fn record_runs(
    counters: &str,
    functions: &[&str],
    repeat: u32,
    cmd: &[&str],
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc").to_str().unwrap().to_owned();
    let repeat = repeat.to_string();
    let mut args = vec![
        "record",
        "--calibration",
        "off",
        "-q",
        "-r",
        &repeat,
        "-e",
        counters,
        "-o",
        &out,
    ];
    for f in functions {
        args.extend(["-f", f]);
    }
    args.push("--");
    args.extend(cmd);
    run_expect(&args, 0);
    (dir, out)
}

fn diff(base: &str, new: &str, extra: &[&str], status: i32) -> Value {
    let mut args = vec!["diff", base, new, "--format", "json"];
    args.extend(extra);
    let out = run_expect(&args, status);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn counter<'a>(diff: &'a Value, function: &str, name: &str) -> &'a Value {
    let f = diff["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == function)
        .unwrap_or_else(|| panic!("no {function} in {diff}"));
    &f["counters"][name]
}

/// Every (function, counter, verdict) of a diff that is `regressed` or
/// `improved`.
fn findings(diff: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for f in diff["functions"].as_array().unwrap() {
        let Some(counters) = f["counters"].as_object() else {
            continue;
        };
        for (name, c) in counters {
            if c["verdict"] == "regressed" || c["verdict"] == "improved" {
                found.push(format!(
                    "{} {name} {} {}",
                    f["name"], c["verdict"], c["change"]
                ));
            }
        }
    }
    found
}

/// Ten pairs of `--repeat 5` recordings of the same build: across all
/// functions and counters of the ten diffs, at most one verdict (the false
/// discovery rate the test promises at alpha 0.05, with room).
///
/// Each run takes about half a second: the host slows these VMs for
/// periods of 0.5 s to seconds (docs/diff.md), and runs much shorter than
/// that share one period, so that a recording's runs agree with each
/// other and not with the next recording's.
#[test]
fn identical_repeated_recordings_give_at_most_one_verdict_in_ten_diffs() {
    let _one = one_at_a_time();
    if !probes_available() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    let (mut found, mut tests) = (Vec::new(), 0);
    for _ in 0..10 {
        let cmd = [bin, "touch", "10000", "16"];
        let fs = ["pf_touch", "pf_leaf"];
        let (_a, base) = record_runs("task-clock,page-faults", &fs, 5, &cmd);
        let (_b, new) = record_runs("task-clock,page-faults", &fs, 5, &cmd);
        let d = diff(&base, &new, &[], 0);
        for (f, c, test) in [
            ("pf_touch", "task-clock", "runs"),
            ("pf_touch", "page-faults", "calls"),
        ] {
            let c = counter(&d, f, c);
            assert_eq!(c["test"], test, "{c}");
            assert_eq!(
                (c["runs"]["base"].as_u64(), c["runs"]["new"].as_u64()),
                (Some(5), Some(5))
            );
        }
        tests += d["functions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["counters"].as_object().unwrap().values())
            .filter(|c| !c["q_value"].is_null())
            .count();
        found.extend(findings(&d));
    }
    eprintln!("{tests} tests in 10 diffs; verdicts: {found:?}");
    assert!(found.len() <= 1, "{found:?}");
}

/// A function touching 16 fresh pages against one touching 20, five runs
/// a side: page faults regressed by exactly a quarter, through the call
/// test (page faults are exact per call), and `--fail-on-regression`
/// gates on it.
#[test]
fn twenty_pages_for_sixteen_regress_by_a_quarter_over_runs() {
    let _one = one_at_a_time();
    if !probes_available() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    let fs = ["pf_touch", "pf_leaf"];
    let (_a, base) = record_runs(
        "page-faults,task-clock",
        &fs,
        5,
        &[bin, "touch", "50", "16"],
    );
    let (_b, new) = record_runs(
        "page-faults,task-clock",
        &fs,
        5,
        &[bin, "touch", "50", "20"],
    );
    let d = diff(&base, &new, &["--fail-on-regression", "20"], 3);
    let faults = counter(&d, "pf_touch", "page-faults");
    assert_eq!(faults["verdict"], "regressed", "{faults}");
    // Exact per call: the calls are the unit, whatever the runs.
    assert_eq!(faults["test"], "calls");
    assert_eq!(faults["change"], 0.25);
    assert_eq!(faults["difference"], 4.0);
    let (low, high) = (
        faults["ci_low"].as_f64().unwrap(),
        faults["ci_high"].as_f64().unwrap(),
    );
    assert!(low <= 0.25 && 0.25 <= high && low > 0.0, "{faults}");
    assert!(faults["difference_low"].as_f64().unwrap() > 0.0, "{faults}");
    assert_eq!(
        (
            faults["runs"]["base"].as_u64(),
            faults["runs"]["new"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(d["functions"][1]["base_calls"], 250);
}

/// pf_work(25) does 1.618 times the work of pf_work(24) (fib_plain's calls:
/// 242,785 against 150,049): five runs a side find task-clock regressed,
/// by the run test, with an interval above 0 that holds the change.
///
/// How close the change comes to +61.8 % is a measurement of time on a
/// shared host, and is measured by `benches/diff_accuracy.sh`, not here:
/// the host slows these VMs by 20–40 % for 0.5 s to seconds at a time
/// (docs/diff.md), and one pair of recordings can land in different
/// periods. Three pairs, alternating base and new, must all find the
/// regression.
#[test]
fn sixty_two_percent_more_work_is_found_by_the_run_test() {
    let _one = one_at_a_time();
    if !probes_available() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    let fs = ["pf_work"];
    for _ in 0..3 {
        let (_a, base) = record_runs("task-clock", &fs, 5, &[bin, "work", "50", "24"]);
        let (_b, new) = record_runs("task-clock", &fs, 5, &[bin, "work", "50", "25"]);
        let d = diff(&base, &new, &["--fail-on-regression", "10"], 3);
        let clock = counter(&d, "pf_work", "task-clock");
        eprintln!("pf_work(24) → pf_work(25): {clock}");
        assert_eq!(clock["verdict"], "regressed", "{clock}");
        assert_eq!(clock["test"], "runs");
        let change = clock["change"].as_f64().unwrap();
        let (low, high) = (
            clock["ci_low"].as_f64().unwrap(),
            clock["ci_high"].as_f64().unwrap(),
        );
        assert!(low > 0.0 && low <= change && change <= high, "{clock}");
    }
}
