//! Bad input gets a clear error.

use crate::common::*;

fn stderr_of(args: &[&str], code: i32) -> String {
    String::from_utf8(run_expect(args, code).stderr).unwrap()
}

#[test]
fn a_missing_function_lists_the_closest_names() {
    let bin = workloads().to_str().unwrap();
    let err = stderr_of(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "pf_leef",
            "-o",
            "/dev/null",
            "--",
            bin,
            "loop",
            "1",
        ],
        1,
    );
    assert!(err.contains("pf_leef"), "{err}");
    assert!(err.contains("pf_leaf"), "{err}");
}

#[test]
fn list_shows_functions_with_their_class() {
    let bin = workloads().to_str().unwrap();
    let out = run_expect(&["list", bin, "pf_*"], 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let leaf = text.lines().find(|l| l.ends_with(" pf_leaf")).expect(&text);
    assert!(leaf.contains("push-rbp"), "{leaf}");
    assert!(leaf.contains("emulated"), "{leaf}");
    assert_eq!(
        text.lines().filter(|l| l.contains(" pf_")).count(),
        9,
        "{text}"
    );
}

#[test]
fn an_unknown_counter_is_named() {
    let err = stderr_of(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "LLC-lod-misses",
            "-f",
            "x",
            "--",
            "true",
        ],
        1,
    );
    assert!(err.contains("LLC-lod-misses"), "{err}");
    assert!(err.contains("LLC-load-misses"), "{err}");
}

#[test]
fn a_dead_pid_is_reported() {
    let err = stderr_of(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "x",
            "-p",
            "999999999",
        ],
        1,
    );
    assert!(err.contains("999999999"), "{err}");
}

#[test]
fn a_missing_command_is_reported() {
    let err = stderr_of(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "x",
            "--",
            "/nonexistent/app",
        ],
        1,
    );
    assert!(err.contains("/nonexistent/app"), "{err}");
}

#[test]
fn a_trace_that_is_not_one_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, b"this is not a trace at all").unwrap();
    let err = stderr_of(&["script", "-i", path.to_str().unwrap()], 1);
    assert!(
        err.contains("not a perfunc trace") || err.contains("magic"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    run_expect(&["record", "-f"], 2);
}

#[test]
fn unavailable_counters_are_explained() {
    if !probes_available() {
        return;
    }
    let out = run_expect(&["list", "--events"], 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let task_clock = text
        .lines()
        .find(|l| l.starts_with("task-clock "))
        .expect(&text);
    assert!(task_clock.ends_with("ok"), "{task_clock}");
    let has_pmu = std::path::Path::new("/sys/bus/event_source/devices/cpu").exists();
    let llc = text
        .lines()
        .find(|l| l.starts_with("LLC-load-misses "))
        .expect(&text);
    assert_eq!(llc.ends_with("ok"), has_pmu, "{llc}");
    if !has_pmu {
        assert!(text.contains("ENOENT"), "{text}");
    }
}

#[test]
fn without_privileges_the_error_names_what_is_needed() {
    if perfunc::probe::sys::euid() != 0 || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root (to drop privileges) and setpriv");
        return;
    }
    let bin = workloads().to_str().unwrap();
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_perfunc"))
        .args([
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-o",
            "/dev/null",
            "--",
            bin,
            "loop",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("root"), "{err}");
    assert!(err.contains("CAP_PERFMON"), "{err}");
    assert!(err.contains("perf_event_paranoid"), "{err}");
}

#[test]
fn a_corrupt_trace_names_the_offset_and_salvage_reads_before_it() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "100000"]);
    let mut bytes = std::fs::read(&out).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&out, &bytes).unwrap();
    let err = stderr_of(&["report", "-i", out.to_str().unwrap()], 1);
    assert!(err.contains("byte"), "{err}");
    let salvaged = run_expect(&["report", "--salvage", "-i", out.to_str().unwrap()], 0);
    let text = String::from_utf8_lossy(&salvaged.stdout);
    assert!(text.contains("salvaged"), "{text}");
    assert!(text.contains("pf_leaf"), "{text}");
}
