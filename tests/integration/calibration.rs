//! Which calibration a recording stores: measured in the command's own
//! process as it starts (`--calibration auto` with a command and
//! functions), the cached profile (`cached`, or where the run cannot
//! measure: kernel probes' classes), and what the report says of each.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// `perfunc ARGS` with the calibration cache in `cache`; its status must
/// be 0.
fn perfunc_in(cache: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_perfunc"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perfunc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The classes of a profile's baselines (`baselines` or `nested`).
fn classes(profile: &Value, list: &str) -> BTreeSet<String> {
    profile[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["class"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_command_is_calibrated_in_its_own_process_for_the_classes_it_probes() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    perfunc_in(
        dir.path(),
        &[
            "record",
            "-q",
            "-e",
            "page-faults,task-clock",
            "-f",
            "pf_touch16",
            "-f",
            "pf_leaf",
            "-o",
            out.to_str().unwrap(),
            "--",
            bin,
            "pages",
            "50",
        ],
    );
    let t = trace(&out);
    // The burst's probes are not the trace's: only the two functions.
    let probed: Vec<&str> = t
        .header
        .probes
        .iter()
        .map(|p| p.function.as_str())
        .collect();
    assert_eq!(probed, ["pf_touch16", "pf_leaf"]);
    assert_eq!(counts(&t, "pf_touch16"), (50, 50));
    let profile = t
        .header
        .calibration
        .clone()
        .expect("a profile in the header");
    assert_eq!(profile["source"], "in-run");
    assert_eq!(profile["calls_per_round"], 1000);
    assert_eq!(profile["rounds"], 1);
    // The classes of the probed functions, and the nesting target's.
    let mut expected: BTreeSet<String> = t.header.probes.iter().map(|p| p.class.clone()).collect();
    expected.insert("push-rbp".into());
    assert_eq!(classes(&profile, "baselines"), expected);
    assert_eq!(classes(&profile, "nested"), expected);
    // 1,000 calls of each target alone and 1,000 inside the nesting target.
    for b in profile["baselines"].as_array().unwrap() {
        assert_eq!(b["summary"]["n"], 2000, "{b}");
        assert!(b.get("cached").is_none(), "{b}");
        if b["counter"] == "page-faults" {
            assert_eq!(b["summary"]["median"], 0.0, "{b}");
        }
    }
    // Nothing was cached: the run measured all it needed.
    assert!(!dir.path().join("perfunc").exists());

    let report = json_report(&out);
    let c = &report["trace"]["calibration"];
    assert_eq!(c["source"], "in-run", "{c}");
    assert_eq!(c["age_s"], 0, "{c}");
    assert_eq!(c["cached_classes"], serde_json::json!([]), "{c}");
    let pf = &function(&report, "pf_touch16")["counters"]["page-faults"];
    assert_eq!(
        (pf["p50"].as_f64(), pf["min"].as_f64()),
        (Some(16.0), Some(16.0))
    );
    let table = perfunc_in(dir.path(), &["report", "-i", out.to_str().unwrap()]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("calibration profile: measured in this run, in the command's process"),
        "{table}"
    );
}

#[test]
fn cached_calibration_says_how_old_it_is_and_kernel_classes_come_from_the_cache() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let cached = dir.path().join("c.perfunc");
    perfunc_in(
        dir.path(),
        &[
            "record",
            "-q",
            "--calibration",
            "cached",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-o",
            cached.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "10",
        ],
    );
    let profile = trace(&cached).header.calibration.unwrap();
    assert_eq!(profile["source"], "calibrate");
    assert!(profile["loadavg"].as_f64().is_some(), "{profile}");
    let c = &json_report(&cached)["trace"]["calibration"];
    assert_eq!(c["source"], "calibrate", "{c}");
    assert_eq!(c["in_run_classes"], serde_json::json!([]), "{c}");
    assert!(c["age_s"].as_i64().unwrap() >= 0, "{c}");
    assert_eq!(c["noise"][0]["counter"], "task-clock", "{c}");
    let table = perfunc_in(dir.path(), &["report", "-i", cached.to_str().unwrap()]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("calibration profile: cached, measured "),
        "{table}"
    );
    assert!(table.contains("baseline MAD task-clock "), "{table}");

    // A function and a system call: the function's classes measured in
    // the run, the system call's tracepoint class from the cache (made
    // above).
    let mixed = dir.path().join("m.perfunc");
    perfunc_in(
        dir.path(),
        &[
            "record",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-k",
            "syscall:getppid",
            "-o",
            mixed.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "10",
        ],
    );
    let profile = trace(&mixed).header.calibration.unwrap();
    assert_eq!(profile["source"], "in-run");
    let from_cache: BTreeSet<String> = profile["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["cached"] == true)
        .map(|b| b["class"].as_str().unwrap().to_owned())
        .collect();
    assert!(from_cache.contains("tracepoint"), "{profile}");
    assert!(!from_cache.contains("push-rbp"), "{profile}");
    let c = &json_report(&mixed)["trace"]["calibration"];
    assert!(
        c["cached_classes"]
            .as_array()
            .unwrap()
            .contains(&"tracepoint".into()),
        "{c}"
    );
}
