//! How the target's tasks are followed (`--follow`): per-thread groups
//! with each new task held at birth (the default, and the only way on
//! kernels before 6.12), and inherited per-CPU groups where the kernel
//! has them. Exact counts through threads, forks, exec and job control,
//! and exact values across CPU migration.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use perfunc::trace::RecordKind;

use crate::common::{
    counts, first_line, function, json_report, perfunc, probes_available, run_expect, trace,
    workloads,
};

/// Records `functions` on `cmd` with `--follow follow` into DIR/NAME.
fn record_follow(
    dir: &tempfile::TempDir,
    follow: &str,
    counters: &str,
    functions: &[&str],
    cmd: &[&str],
) -> std::path::PathBuf {
    let out = dir.path().join(format!("{follow}.perfunc"));
    let mut args = vec![
        "record",
        "--calibration",
        "off",
        "-q",
        "--follow",
        follow,
        "-e",
        counters,
        "-o",
        out.to_str().unwrap(),
    ];
    for f in functions {
        args.extend(["-f", f]);
    }
    args.push("--");
    args.extend(cmd);
    run_expect(&args, 0);
    out
}

/// Whether this kernel opens `inherit` with `PERF_SAMPLE_READ` (6.12+).
fn inherit_supported() -> bool {
    perfunc::probe::kernel_inherits_sample_read()
}

#[test]
fn the_default_follows_per_thread_and_says_so() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = dir.path().join("t.perfunc");
    let args = ["record", "--calibration", "off", "-q", "-e", "task-clock"];
    let rest = [
        "-o",
        out.to_str().unwrap(),
        "-f",
        "pf_leaf",
        "--",
        bin,
        "loop",
        "10",
    ];
    run_expect(&[&args[..], &rest[..]].concat(), 0);
    assert_eq!(trace(&out).header.follow.as_deref(), Some("per-thread"));
}

#[test]
fn both_ways_count_every_call_of_threads_created_later() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let modes: &[&str] = if inherit_supported() {
        &["per-thread", "inherit"]
    } else {
        &["per-thread"]
    };
    for follow in modes {
        let path = record_follow(
            &dir,
            follow,
            "task-clock",
            &["pf_leaf"],
            &[bin, "threads", "1000"],
        );
        let t = trace(&path);
        assert_eq!(t.header.follow.as_deref(), Some(*follow));
        let mut per_tid: BTreeMap<u32, usize> = BTreeMap::new();
        for s in t.samples.iter().filter(|s| s.kind == RecordKind::Return) {
            *per_tid.entry(s.tid).or_default() += 1;
        }
        let mut calls: Vec<usize> = per_tid.values().copied().collect();
        calls.sort();
        assert_eq!(calls, [1, 1000, 1000], "{follow}: {per_tid:?}");
        assert_eq!(counts(&t, "pf_leaf"), (2001, 2001), "{follow}");
    }
}

#[test]
fn forked_and_executed_processes_are_followed() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    // A shell that runs the fixture, forks it into the background, waits,
    // then execs it: 100 + (1 + 10 × 0) + 7 calls of pf_leaf, in three
    // processes, none of them perfunc's own child but the shell.
    let script = format!("{bin} loop 100; {bin} nested 10 & wait; exec {bin} loop 7");
    let leaf = format!("{bin}:pf_leaf");
    let outer = format!("{bin}:pf_outer");
    let path = record_follow(
        &dir,
        "per-thread",
        "task-clock,page-faults",
        &[&leaf, &outer],
        &["sh", "-c", &script],
    );
    let t = trace(&path);
    assert_eq!(counts(&t, "pf_leaf"), (108, 108));
    assert_eq!(counts(&t, "pf_outer"), (10, 10));
    let pids: std::collections::BTreeSet<u32> = t.samples.iter().map(|s| s.pid).collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    // pf_outer's page faults are exact in the forked process too.
    let r = json_report(&path);
    let faults = &function(&r, "pf_outer")["counters"]["page-faults"];
    assert_eq!(
        (faults["min"].as_f64(), faults["max"].as_f64()),
        (Some(14.0), Some(14.0))
    );
}

#[test]
fn a_call_that_migrates_reads_one_counter_exactly() {
    if !probes_available() {
        return;
    }
    if perfunc::probe::sys::online_cpus().len() < 2 {
        eprintln!("skipped: one CPU, nothing to migrate to");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_follow(
        &dir,
        "per-thread",
        "page-faults,task-clock",
        &["pf_migrate", "pf_leaf"],
        &[bin, "migrate", "50", "8"],
    );
    let t = trace(&path);
    // Every call returned on another CPU than it entered on.
    let id = crate::common::probe_id(&t, "pf_migrate");
    let mut entered = BTreeMap::new();
    let mut moved = 0;
    for s in t.samples.iter().filter(|s| s.probe == id) {
        match s.kind {
            RecordKind::Entry => {
                entered.insert(s.tid, s.cpu);
            }
            RecordKind::Return => moved += usize::from(entered[&s.tid] != s.cpu),
        }
    }
    assert_eq!(moved, 50);
    // 8 pages before the move and 8 after: 16 faults, every call kept.
    let r = json_report(&path);
    let f = function(&r, "pf_migrate");
    assert_eq!(f["used"], 50);
    let faults = &f["counters"]["page-faults"];
    assert_eq!(
        (faults["min"].as_f64(), faults["max"].as_f64()),
        (Some(16.0), Some(16.0))
    );
    assert!(f["counters"]["task-clock"]["min"].as_f64().unwrap() > 0.0);
    assert_eq!(f["flagged"], serde_json::json!({}), "{f}");
    // Inherited per-CPU counters cannot do that: every call subtracts two
    // CPUs' counters, and is flagged.
    if inherit_supported() {
        let path = record_follow(
            &dir,
            "inherit",
            "page-faults,task-clock",
            &["pf_migrate", "pf_leaf"],
            &[bin, "migrate", "50", "8"],
        );
        let r = json_report(&path);
        let f = function(&r, "pf_migrate");
        assert_eq!(f["flagged"]["migrated"], 50, "{f}");
    }
}

#[test]
fn a_stopped_and_continued_target_loses_nothing() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    let mut child = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
        ])
        .arg("-o")
        .arg(&out)
        .args(["--", bin, "slow", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = first_line(&mut child);
    let target: i32 = ready
        .trim()
        .strip_prefix("ready ")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    perfunc::probe::sys::kill(target, libc::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let state = std::fs::read_to_string(format!("/proc/{target}/stat")).unwrap();
    let state = state
        .rsplit_once(')')
        .unwrap()
        .1
        .trim_start()
        .chars()
        .next();
    assert!(matches!(state, Some('T' | 't')), "{state:?}");
    perfunc::probe::sys::kill(target, libc::SIGCONT).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(counts(&trace(&out), "pf_leaf"), (1000, 1000));
}

#[test]
fn an_attached_process_runs_on_untraced() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    let mut target = Command::new(bin)
        .args(["slow", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Attach once the target runs.
    first_line(&mut target);
    let pid = target.id().to_string();
    let args = [
        "record",
        "--calibration",
        "off",
        "-q",
        "-e",
        "task-clock",
        "-f",
        "pf_leaf",
    ];
    let rest = ["-o", out.to_str().unwrap(), "-p", &pid, "--duration", "1"];
    run_expect(&[&args[..], &rest[..]].concat(), 0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("TracerPid:\t0\n"), "{status}");
    assert!(target.wait().unwrap().success());
    let (entries, returns) = counts(&trace(&out), "pf_leaf");
    // A call a millisecond for a second (fewer under emulation), and at
    // most one call cut at each end.
    assert!(
        entries >= 100 && entries.abs_diff(returns) <= 1,
        "{entries} {returns}"
    );
}
