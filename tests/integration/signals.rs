//! Probes are removed on every way out: Ctrl-C, SIGTERM, a crashing
//! target; and what was recorded stays readable.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use perfunc::trace::TraceEnd;

use crate::common::*;

/// The size of the trace being written for `out`: until the recording
/// ends it is `.NAME.<pid>.<n>.tmp` beside `out`.
fn recording_size(out: &Path) -> u64 {
    let prefix = format!(".{}.", out.file_name().unwrap().to_str().unwrap());
    std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".tmp")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Starts `perfunc record` on the slow workload and waits until samples
/// have reached the trace file.
fn start_slow_recording(out: &Path) -> Child {
    let child = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-o",
        ])
        .arg(out)
        .args(["--", workloads().to_str().unwrap(), "slow", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while recording_size(out) < 4096 {
        assert!(Instant::now() < deadline, "no samples after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop_with(signal: i32) {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let mut child = start_slow_recording(&out);
    let pid = child.id();
    assert!(
        !probes_left_by(pid).is_empty(),
        "probes are in place while recording"
    );
    // SAFETY-free: the libc crate's kill via the perfunc library helper.
    perfunc::probe::sys::kill(pid as i32, signal).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + signal));
    assert_eq!(probes_left_by(pid), Vec::<String>::new());
    assert_eq!(recording_size(&out), 0, "the temporary file is left");
    let t = trace(&out);
    let TraceEnd::Complete(footer) = &t.end else {
        panic!("the trace was not finished")
    };
    assert!(footer.interrupted);
    let (entries, returns) = counts(&t, "pf_leaf");
    assert!(entries > 0 && entries.abs_diff(returns) <= 1);
}

#[test]
fn ctrl_c_removes_probes_and_keeps_the_trace() {
    stop_with(libc::SIGINT);
}

#[test]
fn sigterm_removes_probes_and_keeps_the_trace() {
    stop_with(libc::SIGTERM);
}

#[test]
fn a_crashing_target_is_reported_and_cleaned_up() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let child = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_crash",
            "-f",
            "pf_leaf",
            "-o",
        ])
        .arg(&out)
        .args(["--", workloads().to_str().unwrap(), "crash"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(128 + libc::SIGSEGV), "{stderr}");
    assert!(stderr.contains("SIGSEGV"), "{stderr}");
    assert_eq!(probes_left_by(pid), Vec::<String>::new());
    let t = trace(&out);
    // The crash happened between entry and return.
    assert_eq!(counts(&t, "pf_crash"), (1, 0));
    assert_eq!(counts(&t, "pf_leaf"), (1, 1));
    let TraceEnd::Complete(footer) = &t.end else {
        panic!("incomplete")
    };
    assert_eq!(footer.exit.unwrap().signal, Some(libc::SIGSEGV));
}

#[test]
fn a_truncated_trace_reads_up_to_its_last_whole_chunk() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    // Many records make several chunks.
    let out = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "100000"]);
    let full = std::fs::read(&out).unwrap();
    let cut = full.len() * 2 / 3;
    std::fs::write(&out, &full[..cut]).unwrap();
    let t = trace(&out);
    let TraceEnd::Truncated {
        last_whole_chunk_end,
        bytes_lost,
    } = t.end
    else {
        panic!("a cut trace must read as truncated")
    };
    assert_eq!(last_whole_chunk_end + bytes_lost, cut as u64);
    assert!(!t.samples.is_empty());
    let script = run_expect(&["script", "-i", out.to_str().unwrap()], 0);
    let stderr = String::from_utf8_lossy(&script.stderr);
    assert!(stderr.contains("incomplete"), "{stderr}");
    assert!(stderr.contains(&bytes_lost.to_string()), "{stderr}");
}

#[test]
fn a_full_disk_stops_the_target_and_names_the_file() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "perfunc-test"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a 256 KiB tmpfs");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let out = mnt.join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    // A call count no other test uses, to find the target afterwards.
    let calls = "3000017";
    let child = perfunc()
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
        .args(["--", bin, "loop", calls])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("failed to write {}", out.display())),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    // The command perfunc started is gone, and so are the probes.
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("{bin} loop {calls}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "target left running: {:?}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert_eq!(probes_left_by(pid), Vec::<String>::new());
    // What was written reads, salvaged.
    let report = run(&["report", "--salvage", "-i", out.to_str().unwrap()]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
}

#[test]
fn ctrl_c_during_a_long_set_up_stops_at_once_and_leaves_no_probe() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    // Every function of libc: thousands of probes, seconds to place.
    let mut child = perfunc()
        .args(["record", "--calibration", "off", "-q", "-e", "task-clock"])
        .args(["-f", "libc.so.6:*", "-o"])
        .arg(&out)
        .args(["--", bin, "loop", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the first probes are in place. Reading libc's symbols
    // and placing the first probes takes about a minute in a software-
    // emulated guest running other tests beside this one.
    let vm = std::env::var("PERFUNC_VM").as_deref() == Ok("1");
    let deadline = Instant::now() + Duration::from_secs(if vm { 600 } else { 60 });
    while probes_left_by(pid).len() < 20 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("record ended ({status}) before 20 probes were seen: {err}");
        }
        assert!(Instant::now() < deadline, "no probe placed in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    perfunc::probe::sys::kill(pid as i32, libc::SIGINT).unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let limit = Duration::from_secs(if vm { 30 } else { 10 });
        assert!(
            sent.elapsed() < limit,
            "still setting up {limit:?} after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("while setting up the probes"), "{err}");
    assert_eq!(probes_left_by(pid), Vec::<String>::new());
    assert!(!out.exists());
}

/// A `record --repeat` of many short runs, stopped by `signal` while it
/// runs: the runs done are kept, in a complete trace, the probes removed
/// and the commands of the runs not started never run.
#[test]
fn ctrl_c_between_repeated_runs_keeps_the_runs_done() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
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
            "--repeat",
            "500",
            "-o",
        ])
        .arg(&out)
        .args(["--", workloads().to_str().unwrap(), "loop", "10"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while recording_size(&out) < 8192 {
        assert!(Instant::now() < deadline, "no runs after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    perfunc::probe::sys::kill(pid as i32, libc::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT));
    assert_eq!(probes_left_by(pid), Vec::<String>::new());
    let t = trace(&out);
    let TraceEnd::Complete(footer) = &t.end else {
        panic!("the trace was not finished")
    };
    assert!(footer.interrupted);
    let r = json_report(&out);
    let runs = r["trace"]["runs"].as_u64().unwrap();
    assert!((2..500).contains(&runs), "{runs} runs");
    // Ten calls in every run that ended, none in a run never started.
    let used = function(&r, "pf_leaf")["used"].as_u64().unwrap();
    assert!(
        used >= (runs - 1) * 10 && used <= runs * 10,
        "{used} in {runs}"
    );
}

#[test]
fn duration_bounds_every_repeated_run_together() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let started = Instant::now();
    let result = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "--repeat",
            "3",
            "--duration",
            "1s",
            "-o",
        ])
        .arg(&out)
        .args(["--", workloads().to_str().unwrap(), "slow", "60"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    // Stopped by the duration, not failed: no "not repeated".
    assert!(!stderr.contains("not repeated"), "{stderr}");
    let r = json_report(&out);
    assert_eq!(r["trace"]["runs"], 1);
}

/// The host PIDs of the processes in PID namespace `ns` and their PIDs
/// there (`NSpid`'s last field).
fn processes_of_namespace(ns: &str) -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|l| l.to_string_lossy() == format!("pid:[{ns}]"))
        })
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let inner = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            Some((pid, inner.split_whitespace().last()?.to_owned()))
        })
        .collect()
}

/// The PID namespaces of the probe groups of perfuncs that are PID 1 of
/// their namespace.
fn namespaces_of_pid_1_groups() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string("/sys/kernel/tracing/uprobe_events")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let group = l.split_whitespace().next()?.split_once(':')?.1;
            let group = group.split_once('/')?.0;
            Some(group.strip_prefix("perfunc_1_")?.to_owned())
        })
        .collect()
}

/// Two perfuncs that are both PID 1, each of a PID namespace of its own
/// (`unshare -p`), record at once without colliding in tracefs; one killed
/// with SIGKILL leaves its group, which the next perfunc run in the initial
/// namespace removes, and the other's it leaves.
#[test]
fn perfuncs_of_two_pid_namespaces_do_not_collide_and_a_dead_one_is_cleaned_up() {
    if !probes_available() {
        return;
    }
    let own = std::fs::read_link("/proc/self/ns/pid").unwrap();
    if own.to_string_lossy() != "pid:[4026531836]" {
        eprintln!("skipped: not in the initial PID namespace");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = namespaces_of_pid_1_groups();
    let start = |name: &str| {
        let out = dir.path().join(name);
        let child = std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
            .arg(env!("CARGO_BIN_EXE_perfunc"))
            .args(["record", "--calibration", "off", "-q", "-e", "task-clock"])
            .args(["-f", "pf_leaf", "-o"])
            .arg(&out)
            .args(["--", workloads().to_str().unwrap(), "slow", "60"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        (child, out)
    };
    let (mut a, _) = start("a.perfunc");
    let (mut b, b_out) = start("b.perfunc");
    let deadline = Instant::now() + Duration::from_secs(60);
    let groups = loop {
        let now: Vec<String> = namespaces_of_pid_1_groups()
            .difference(&before)
            .cloned()
            .collect();
        if now.len() == 2 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "two groups of PID 1 expected: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Which group is whose: the namespace of each unshare's child.
    let ns_of = |unshare: &Child| {
        groups
            .iter()
            .find(|ns| {
                processes_of_namespace(ns).iter().any(|(pid, _)| {
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                        s.rsplit(')')
                            .next()
                            .and_then(|r| r.split_whitespace().nth(1))
                            == Some(&unshare.id().to_string())
                    })
                })
            })
            .cloned()
            .expect("each unshare's perfunc has a group")
    };
    let (a_ns, b_ns) = (ns_of(&a), ns_of(&b));
    assert_ne!(a_ns, b_ns);
    // SIGKILL a's unshare: its child, PID 1 of a's namespace, gets SIGKILL
    // too, and so does everything in that namespace.
    perfunc::probe::sys::kill(a.id() as i32, libc::SIGKILL).unwrap();
    a.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_of_namespace(&a_ns).is_empty() {
        assert!(
            Instant::now() < deadline,
            "namespace {a_ns} still has processes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(namespaces_of_pid_1_groups().contains(&a_ns));
    let t = dir.path().join("c.perfunc");
    let bin = workloads().to_str().unwrap();
    run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-o",
            t.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "3",
        ],
        0,
    );
    let left = namespaces_of_pid_1_groups();
    assert!(!left.contains(&a_ns), "{left:?}");
    assert!(left.contains(&b_ns), "{left:?}");
    // b stops on SIGINT as any perfunc does, and removes its own probes.
    let b_perfunc = processes_of_namespace(&b_ns)
        .into_iter()
        .find(|(_, inner)| inner == "1")
        .unwrap()
        .0;
    perfunc::probe::sys::kill(b_perfunc, libc::SIGINT).unwrap();
    b.wait().unwrap();
    assert!(!namespaces_of_pid_1_groups().contains(&b_ns));
    assert!(matches!(trace(&b_out).end, TraceEnd::Complete(_)));
}
