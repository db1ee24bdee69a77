//! Kernel functions through kprobes and kretprobes, for real: exact call
//! counts against bpftrace, page faults taken inside kernel functions,
//! nesting under user functions, globs, and cleanup. The host's kernel
//! has no kprobes, so these run in the guests of `tests/vm/run`, which set
//! PERFUNC_VM=1: there a kernel without kprobes is a failure.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{
    counts, definitions_left_by, first_line, function, json_report, perfunc, probes_available,
    run_expect, trace, workloads,
};

/// Whether kprobes can be placed here.
fn kprobes() -> bool {
    if !probes_available() {
        return false;
    }
    // A recording mounts tracefs when it is missing.
    let bin = workloads().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let out = out.to_str().unwrap();
    let args = ["record", "--calibration", "off", "-q", "-e", "task-clock"];
    run_expect(
        &[
            &args[..],
            &["-o", out, "-f", "pf_leaf", "--", bin, "loop", "1"],
        ]
        .concat(),
        0,
    );
    let has = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| Path::new(root).join("kprobe_events").exists());
    if !has {
        assert!(
            std::env::var("PERFUNC_VM").as_deref() != Ok("1"),
            "PERFUNC_VM=1 and the guest kernel has no kprobes"
        );
        eprintln!("skipped: this kernel has no kprobes (tests/vm/run runs these in guests)");
    }
    has
}

/// Records into DIR/k.perfunc with `extra` options on `cmd`.
fn record_in(dir: &Path, extra: &[&str], cmd: &[&str]) -> std::path::PathBuf {
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

/// bpftrace's count of `vfs_read` calls made by `cmd`'s process.
fn bpftrace_vfs_reads(cmd: &str) -> u64 {
    let out = Command::new("bpftrace")
        .args([
            "-e",
            "kprobe:vfs_read /pid == cpid/ { @calls = count(); } END { print(@calls); clear(@calls); }",
            "-c",
            cmd,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("bpftrace (Debian's bpftrace package) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bpftrace failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("@calls: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in bpftrace's output: {text}"))
}

#[test]
fn vfs_read_calls_equal_bpftraces_count() {
    if !kprobes() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, vec![b'a'; 100_000]).unwrap();
    std::fs::write(&b, "b\n").unwrap();
    // A full path: bpftrace refuses a name that PATH resolves twice
    // (/bin and /usr/bin on a merged /usr).
    let cmd = ["/usr/bin/cat", a.to_str().unwrap(), b.to_str().unwrap()];
    let path = record_in(dir.path(), &["-e", "task-clock", "-k", "vfs_read"], &cmd);
    let t = trace(&path);
    let (entries, returns) = counts(&t, "vfs_read");
    let expected = bpftrace_vfs_reads(&cmd.join(" "));
    // cat reads each file until a read returns 0, and the dynamic loader
    // reads libc: at least 5.
    assert!(expected >= 5, "bpftrace counted {expected}");
    assert_eq!((entries as u64, returns as u64), (expected, expected));
    assert_eq!(t.header.probes[0].kind, perfunc::trace::ProbeKind::Kprobe);
}

#[test]
fn pread_faults_land_in_the_kernel_functions_that_copy_to_user_space() {
    if !kprobes() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_in(
        dir.path(),
        &[
            "-e",
            "page-faults,task-clock",
            "-f",
            "pf_read16",
            // Called first, it takes the fault of the uprobe trampoline
            // page, which the first return probe hit of a process maps.
            "-f",
            "pf_leaf",
            "-k",
            "vfs_read",
            // Where a tmpfs file's pages are copied into the user buffer
            // (the fixture's file is in /tmp: in the guests an overlay
            // whose upper layer is a tmpfs).
            "-k",
            "shmem_file_read_iter",
        ],
        &[bin, "pread", "20"],
    );
    let r = json_report(&path);
    let tree = r["tree"].as_array().unwrap();
    let path_of = |names: &[&str]| {
        tree.iter()
            .find(|p| p["path"] == serde_json::json!(names))
            .unwrap_or_else(|| panic!("no path {names:?} in {tree:?}"))
    };
    // pf_read16 → pread64 → vfs_read: 16 fresh pages of the user buffer
    // are faulted in while the page cache is copied into them.
    let read = path_of(&["pf_read16", "vfs_read"]);
    assert_eq!(read["calls"], 20);
    assert_eq!(read["inclusive"]["page-faults"], 320.0);
    // Every one of them inside the copy, none in vfs_read itself.
    let copies: Vec<&serde_json::Value> = tree
        .iter()
        .filter(|p| {
            let path = p["path"].as_array().unwrap();
            path.len() == 3
                && path[..2]
                    == [
                        serde_json::json!("pf_read16"),
                        serde_json::json!("vfs_read"),
                    ]
        })
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["calls"], 20);
    assert_eq!(copies[0]["inclusive"]["page-faults"], 320.0);
    assert_eq!(copies[0]["self"]["page-faults"], 320.0);
    assert_eq!(read["self"]["page-faults"], 0.0);
    // And inclusive = self + children one level up: 20 × (2 + 16).
    let outer = function(&r, "pf_read16");
    assert_eq!(outer["used"], 20);
    assert_eq!(outer["counters"]["page-faults"]["sum"], 360.0);
    assert_eq!(outer["counters"]["page-faults"]["self_sum"], 40.0);
}

/// The kprobe tests that look at all of `kprobe_events` run one at a time.
static KPROBE_EVENTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The kernel functions `-k 'vfs_*'` probes on this kernel.
const GLOB: &str = "vfs_*";

#[test]
fn a_glob_of_kernel_functions_is_placed_and_removed() {
    if !kprobes() {
        return;
    }
    let _alone = KPROBE_EVENTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record_in(
        dir.path(),
        &["-e", "task-clock", "-k", GLOB],
        &[bin, "pread", "3"],
    );
    let t = trace(&path);
    let n = t.header.probes.len();
    assert!(n >= 50, "only {n} functions match {GLOB}");
    assert!(t.header.probes.iter().any(|p| p.function == "vfs_read"));
    // The fixture's three preads, at least.
    let (entries, returns) = counts(&t, "vfs_read");
    assert!(entries >= 3 && entries == returns, "{entries} {returns}");
    let left: Vec<String> = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events")
        .unwrap()
        .lines()
        .filter(|l| l.contains("perfunc_"))
        .map(str::to_owned)
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn kprobes_of_a_killed_perfunc_are_removed_by_the_next_run() {
    if !kprobes() {
        return;
    }
    let _alone = KPROBE_EVENTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.perfunc");
    let bin = workloads().to_str().unwrap();
    let mut child = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-k",
            GLOB,
        ])
        .arg("-o")
        .arg(&out)
        .args(["--", bin, "slow", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The target starts once every probe is in place, and says so.
    let ready = first_line(&mut child);
    assert!(ready.starts_with("ready"), "{ready:?}");
    assert!(!definitions_left_by(pid, "kprobe_events").is_empty());
    perfunc::probe::sys::kill(pid as i32, libc::SIGKILL).unwrap();
    child.wait().unwrap();
    // Its target runs on, untraced; stop it.
    let _ = Command::new("pkill")
        .args(["-f", &format!("{bin} slow 60")])
        .status();
    // SIGKILL leaves the definitions behind. The next perfunc to start
    // removes them: this recording, or that of a test running beside
    // this one (so they are not asserted to be there now).
    record_in(
        dir.path(),
        &["-e", "task-clock", "-k", "vfs_read"],
        &[bin, "loop", "1"],
    );
    assert_eq!(
        definitions_left_by(pid, "kprobe_events"),
        Vec::<String>::new()
    );
}
