//! Kernel probes on real tracepoints: system calls (per task and
//! system-wide), a begin/end tracepoint pair, nesting under user functions,
//! and the error where kprobes are missing.

use std::path::Path;

use perfunc::trace::RecordKind;

use crate::common::{
    counts, function, json_report, probes_available, record, run, run_expect, trace, workloads,
};

/// Whether this kernel has system-call tracepoints. With CI=true (where
/// FACTS.md says it has them) their absence fails the test.
fn syscall_tracepoints() -> bool {
    if !probes_available() {
        return false;
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let has = mounts.lines().any(|l| l.contains("tracefs"))
        && ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .any(|root| {
                Path::new(root)
                    .join("events/syscalls/sys_enter_getppid")
                    .exists()
            });
    if !has {
        // A recording mounts tracefs; check again after one.
        let dir = tempfile::tempdir().unwrap();
        let bin = workloads().to_str().unwrap();
        record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "1"]);
        if Path::new("/sys/kernel/tracing/events/syscalls/sys_enter_getppid").exists() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the kernel has no syscalls:sys_enter_* tracepoints"
        );
        eprintln!("skipped: no system call tracepoints (CONFIG_FTRACE_SYSCALLS)");
    }
    true
}

/// Records with `-k` specs (and `-f` patterns) into DIR/k.perfunc.
fn record_kernel(dir: &Path, extra: &[&str], cmd: &[&str]) -> std::path::PathBuf {
    let out = dir.join("k.perfunc");
    let mut args = vec![
        "record",
        "--calibration",
        "off",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    args.push("--");
    args.extend(cmd);
    run_expect(&args, 0);
    out
}

#[test]
fn every_getppid_call_is_one_pair() {
    if !syscall_tracepoints() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_kernel(
        dir.path(),
        &["-e", "task-clock,page-faults", "-k", "syscall:getppid"],
        &[bin, "libc", "1000"],
    );
    let t = trace(&path);
    let site = &t.header.probes[0];
    assert_eq!(
        (
            site.function.as_str(),
            site.binary.as_str(),
            site.class.as_str()
        ),
        ("syscall:getppid", "[kernel]", "tracepoint")
    );
    assert_eq!(counts(&t, "syscall:getppid"), (1000, 1000));
    let r = json_report(&path);
    let f = function(&r, "syscall:getppid");
    assert_eq!(
        (f["calls"].as_u64(), f["used"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(f["counters"]["page-faults"]["max"], 0.0);
    assert!(f["counters"]["task-clock"]["p50"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_syscall_is_the_child_of_the_user_function_that_makes_it() {
    if !syscall_tracepoints() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_kernel(
        dir.path(),
        &[
            "-e",
            "page-faults,task-clock",
            "-f",
            "pf_read16",
            "-f",
            "pf_leaf",
            "-k",
            "syscall:pread64",
        ],
        &[bin, "pread", "40"],
    );
    let r = json_report(&path);
    // pf_read16 touches 2 pages itself; pread() copies 16 pages into an
    // untouched buffer, faulting them in from the kernel.
    let outer = function(&r, "pf_read16");
    let faults = &outer["counters"]["page-faults"];
    assert_eq!(outer["used"], 40);
    assert_eq!(
        (faults["min"].as_f64(), faults["max"].as_f64()),
        (Some(18.0), Some(18.0))
    );
    assert_eq!(faults["self_sum"], 80.0);
    let tree = r["tree"].as_array().unwrap();
    let nested = tree
        .iter()
        .find(|p| p["path"] == serde_json::json!(["pf_read16", "syscall:pread64"]))
        .unwrap_or_else(|| panic!("no pf_read16 → pread64 path in {tree:?}"));
    assert_eq!(nested["calls"], 40);
    assert_eq!(nested["inclusive"]["page-faults"], 640.0);
    assert_eq!(nested["self"]["page-faults"], 640.0);
    // Self and inclusive add up: 40 × 18 = 40 × 2 + 640.
    assert_eq!(faults["sum"], 720.0);
    // Outside pf_read16: the dynamic loader's own preads fault nothing,
    // the fixture's unprobed warm-up read copies 16 fresh pages.
    let syscall = function(&r, "syscall:pread64");
    let outside = syscall["used"].as_u64().unwrap() - 40;
    assert_eq!(
        syscall["counters"]["page-faults"]["sum"], 656.0,
        "{outside} others"
    );
}

#[test]
fn system_wide_softirq_pairs_are_recorded() {
    if !syscall_tracepoints() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_kernel(
        dir.path(),
        &[
            "-a",
            "-e",
            "page-faults,cpu-clock",
            "-k",
            "tp:irq:softirq_entry/softirq_exit",
            "-k",
            "syscall:getppid",
        ],
        &[bin, "libc", "500"],
    );
    let t = trace(&path);
    assert!(t
        .header
        .counters
        .iter()
        .any(|c| c.name == "context-switches"));
    let r = json_report(&path);
    assert_eq!(r["trace"]["strict"], true);
    assert!(r["trace"]["command"]
        .as_str()
        .unwrap()
        .starts_with("system-wide: "));
    let getppid = function(&r, "syscall:getppid");
    assert!(getppid["calls"].as_u64().unwrap() >= 500, "{getppid}");
    // A UDP datagram to itself over loopback is received in a NET_RX
    // softirq (vec 3): 200 datagrams, at least 200 such softirqs, begin
    // and end matched by `vec`.
    let path = record_kernel(
        dir.path(),
        &[
            "-a",
            "-e",
            "page-faults",
            "-k",
            "tp:irq:softirq_entry/softirq_exit:vec",
        ],
        &[bin, "udp", "200"],
    );
    let t = trace(&path);
    assert!(t.header.key_column);
    assert_eq!(t.header.probes[0].key.as_deref(), Some("vec"));
    let net_rx = |kind| {
        t.samples
            .iter()
            .filter(|s| s.kind == kind && s.key == 3)
            .count()
    };
    let (entries, returns) = (net_rx(RecordKind::Entry), net_rx(RecordKind::Return));
    assert!(entries >= 200, "{entries} NET_RX softirqs");
    assert!(
        entries.abs_diff(returns) <= 2,
        "{entries} entries, {returns} returns"
    );
    let r = json_report(&path);
    let softirq = function(&r, "tp:irq:softirq_entry/softirq_exit");
    assert!(softirq["used"].as_u64().unwrap() >= 200, "{softirq}");
    assert_eq!(softirq["counters"]["page-faults"]["max"], 0.0);
}

#[test]
fn kernel_functions_without_kprobes_get_a_clear_error() {
    if !probes_available() {
        return;
    }
    if Path::new("/sys/kernel/tracing/kprobe_events").exists() {
        eprintln!("skipped: this kernel has kprobes");
        return;
    }
    let bin = workloads().to_str().unwrap();
    let out = run(&[
        "record",
        "--calibration",
        "off",
        "-k",
        "vfs_rea*",
        "--",
        bin,
        "loop",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot probe the kernel function vfs_read"),
        "{err}"
    );
    assert!(err.contains("CONFIG_KPROBES"), "{err}");
    assert!(err.contains("-k syscall:NAME"), "{err}");
}

#[test]
fn unknown_syscalls_and_tracepoints_are_named_with_suggestions() {
    if !syscall_tracepoints() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    for (spec, expected) in [
        ("syscall:getppidd", "did you mean syscall:getppid"),
        (
            "tp:irq:softirq_entry/softirq_exit:vecc",
            "has no field 'vecc'; did you mean vec?",
        ),
        (
            "tp:irq:softirq_entry/softirq_exitt",
            "did you mean irq:softirq_exit",
        ),
        ("tp:irqq:a/b", "there is no tracepoint subsystem `irqq`"),
    ] {
        let out = run(&[
            "record",
            "--calibration",
            "off",
            "-k",
            spec,
            "--",
            bin,
            "loop",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{spec}: {err}");
    }
}

/// System-wide uprobes: the counters of every group advance, the second
/// group of a CPU included (a member opened disabled would read 0 there).
#[test]
fn system_wide_uprobe_groups_count_exactly() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A copy of its own: system-wide, the probes would also fire in other
    // tests running the shared fixture at the same time.
    let copy = dir.path().join("workloads");
    std::fs::copy(workloads(), &copy).unwrap();
    let counters = ["-a", "-e", "page-faults,cpu-clock", "-f", "pf_leaf"];
    let mut args = counters.to_vec();
    args.extend(["-f", "pf_touch16"]);
    let path = record_kernel(dir.path(), &args, &[copy.to_str().unwrap(), "pages", "30"]);
    let r = json_report(&path);
    let touch = function(&r, "pf_touch16");
    // Calls that migrated or were switched out (other tests run meanwhile)
    // are left out and counted; the others took exactly 16 faults.
    let discarded: u64 = touch["discarded"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(touch["calls"], 30);
    assert_eq!(touch["used"].as_u64().unwrap() + discarded, 30, "{touch}");
    assert!(touch["used"].as_u64().unwrap() >= 20, "{touch}");
    let faults = &touch["counters"]["page-faults"];
    assert_eq!(
        (faults["min"].as_f64(), faults["max"].as_f64()),
        (Some(16.0), Some(16.0))
    );
    assert!(touch["counters"]["cpu-clock"]["min"].as_f64().unwrap() > 0.0);
}
