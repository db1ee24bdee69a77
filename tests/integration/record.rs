//! Recording real probes: exact call counts, threads, Rust names, page
//! faults.

use std::collections::{BTreeMap, BTreeSet};

use perfunc::trace::{RecordKind, TraceEnd};

use crate::common::*;

#[test]
fn loop_calls_are_counted_exactly() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "task-clock,page-faults",
        &["pf_leaf"],
        &[bin, "loop", "10000"],
    );
    let t = trace(&path);
    assert_eq!(counts(&t, "pf_leaf"), (10_000, 10_000));
    assert!(matches!(t.end, TraceEnd::Complete(ref f) if f.lost == 0 && f.samples == 20_000));
    assert_eq!(t.header.counters.len(), 2);
    // Each CPU's records are in time order in the file; records of
    // different CPUs interleave (docs/trace-format.md, "Rounds and record
    // order").
    let cpus: BTreeSet<u16> = t.samples.iter().map(|s| s.cpu).collect();
    for cpu in cpus {
        let times: Vec<u64> = t
            .samples
            .iter()
            .filter(|s| s.cpu == cpu)
            .map(|s| s.time)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "cpu {cpu}");
    }
    // In time order, entries and returns alternate on the one thread.
    for (i, s) in by_time(&t).iter().enumerate() {
        let want = if i % 2 == 0 {
            RecordKind::Entry
        } else {
            RecordKind::Return
        };
        assert_eq!(s.kind, want, "record {i}");
    }
}

/// The samples in time order (the file holds each CPU's in order).
fn by_time(t: &perfunc::trace::Trace) -> Vec<&perfunc::trace::OwnedSample> {
    let mut samples: Vec<_> = t.samples.iter().collect();
    samples.sort_by_key(|s| s.time);
    samples
}

#[test]
fn recursion_keeps_every_call() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(&dir, "task-clock", &["pf_fib"], &[bin, "fib", "20"]);
    let t = trace(&path);
    assert_eq!(counts(&t, "pf_fib"), (21_891, 21_891));
    // The nesting depth never goes below zero and ends at zero.
    let mut depth: i64 = 0;
    let mut max = 0;
    for s in by_time(&t) {
        depth += if s.kind == RecordKind::Entry { 1 } else { -1 };
        assert!(depth >= 0);
        max = max.max(depth);
    }
    assert_eq!((depth, max), (0, 20));
}

#[test]
fn nested_calls_are_all_recorded() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "page-faults",
        &["pf_outer", "pf_middle", "pf_touch"],
        &[bin, "nested", "5"],
    );
    let t = trace(&path);
    assert_eq!(counts(&t, "pf_outer"), (5, 5));
    assert_eq!(counts(&t, "pf_middle"), (15, 15));
    assert_eq!(counts(&t, "pf_touch"), (20, 20));
}

#[test]
fn page_faults_of_a_call_are_exact() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "page-faults,task-clock",
        &["pf_touch16", "pf_leaf"],
        &[bin, "pages", "50"],
    );
    let t = trace(&path);
    assert_eq!(counts(&t, "pf_touch16"), (50, 50));
    // The first return probe hit of a process faults in the page of the
    // kernel's uprobe trampoline: pf_leaf, called once before, takes it.
    let deltas = |id| -> Vec<u64> {
        by_time(&t)
            .into_iter()
            .filter(|s| s.probe == id)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|pair| {
                assert_eq!(
                    (pair[0].kind, pair[1].kind),
                    (RecordKind::Entry, RecordKind::Return)
                );
                pair[1].values[0] - pair[0].values[0]
            })
            .collect()
    };
    assert_eq!(deltas(probe_id(&t, "pf_leaf")), vec![1]);
    assert_eq!(deltas(probe_id(&t, "pf_touch16")), vec![16; 50]);
}

#[test]
fn threads_created_later_are_followed() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(&dir, "task-clock", &["pf_leaf"], &[bin, "threads", "1000"]);
    let t = trace(&path);
    let mut per_tid: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for s in &t.samples {
        let e = per_tid.entry(s.tid).or_default();
        match s.kind {
            RecordKind::Entry => e.0 += 1,
            RecordKind::Return => e.1 += 1,
        }
    }
    let pid = t.samples[0].pid;
    let mut calls: Vec<(usize, usize)> = per_tid.values().copied().collect();
    calls.sort();
    assert_eq!(
        calls,
        vec![(1, 1), (1000, 1000), (1000, 1000)],
        "{per_tid:?}"
    );
    assert!(t.samples.iter().all(|s| s.pid == pid));
    assert!(per_tid.contains_key(&pid), "the main thread called once");
}

/// tracefs cuts a uprobe definition at white space and `#`: perfunc names
/// such a binary through a symlink of its own, removed when the probes are
/// placed.
#[test]
fn a_binary_whose_path_has_spaces_or_a_hash_is_probed() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // perfunc's symlinks go to TMPDIR: this test's own, empty at the end.
    let tmp = tempfile::tempdir().unwrap();
    for name in ["with space", "with#hash", "tab\tand # both"] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let bin = sub.join("workloads");
        std::fs::copy(workloads(), &bin).unwrap();
        let out = dir.path().join("t.perfunc");
        let status = perfunc()
            .args(["record", "--calibration", "off", "-q", "-e", "page-faults"])
            .args(["-f", "pf_touch16", "-o", out.to_str().unwrap(), "--"])
            .arg(&bin)
            .args(["pages", "7"])
            .env("TMPDIR", tmp.path())
            .status()
            .unwrap();
        assert!(status.success(), "{name}");
        assert_eq!(counts(&trace(&out), "pf_touch16"), (7, 7), "{name}");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn rust_functions_are_found_by_demangled_name() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = rust_fixture().to_str().unwrap();
    let path = record(
        &dir,
        "task-clock",
        &["rust_fixture::shapes::*"],
        &[bin, "300"],
    );
    let t = trace(&path);
    assert_eq!(t.header.probes.len(), 1);
    assert_eq!(t.header.probes[0].function, "rust_fixture::shapes::area");
    assert!(t.header.probes[0].raw_name.starts_with("_ZN"));
    assert_eq!(counts(&t, "rust_fixture::shapes::area"), (300, 300));
}

#[test]
fn a_million_calls_lose_nothing() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = dir.path().join("t.perfunc");
    // Under emulation (the VM tier's guests run perfunc and the target on
    // one host thread) perfunc drains the ring far slower than the target
    // fills it: the 2 million records need a ring that holds them all.
    let ring = if std::env::var("PERFUNC_VM").as_deref() == Ok("1") {
        "256M"
    } else {
        "32M"
    };
    let args = [
        "record",
        "--calibration",
        "off",
        "-q",
        "-m",
        ring,
        "-e",
        "task-clock,page-faults,context-switches",
        "-o",
        out.to_str().unwrap(),
        "-f",
        "pf_leaf",
        "--",
        bin,
        "loop",
        "1000000",
    ];
    run_expect(&args, 0);
    let t = trace(&out);
    let TraceEnd::Complete(footer) = &t.end else {
        panic!("incomplete trace")
    };
    assert_eq!(footer.lost, 0);
    assert_eq!(counts(&t, "pf_leaf"), (1_000_000, 1_000_000));
}

#[test]
fn attach_to_a_running_process() {
    if !probes_available() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let mut target = std::process::Command::new(workloads())
        .args(["slow", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(target.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "{line}");
    let pid = target.id().to_string();
    let perfunc_out = run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-p",
            &pid,
            "--duration",
            "1s",
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    // The target goes on after perfunc detached.
    assert!(target.try_wait().unwrap().is_none(), "{perfunc_out:?}");
    target.kill().unwrap();
    target.wait().unwrap();
    let t = trace(&out);
    let (entries, returns) = counts(&t, "pf_leaf");
    // About 1,000 on this host; under emulation (the VM tier's guests,
    // where every probe hit costs far more) as few as 70 were seen.
    assert!(entries >= 20, "{entries} calls in 1 s of a 1 ms loop");
    assert!(
        entries.abs_diff(returns) <= 1,
        "{entries} entries, {returns} returns"
    );
    assert!(t.samples.iter().all(|s| s.pid == target.id()));
}

#[test]
fn script_prints_one_line_per_record() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "task-clock,page-faults",
        &["pf_leaf"],
        &[bin, "loop", "3"],
    );
    let out = run_expect(&["script", "-i", path.to_str().unwrap()], 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" pf_leaf ")).collect();
    assert_eq!(lines.len(), 6, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[4],
            if i % 2 == 0 { "entry" } else { "return" },
            "{line}"
        );
        assert!(words[5].starts_with("task-clock="), "{line}");
        assert!(words[6].starts_with("page-faults="), "{line}");
    }
    let tids: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(tids.len(), 1);
}

#[test]
fn shared_library_functions_are_probed() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "task-clock",
        &["libc.so.6:getppid"],
        &[bin, "libc", "250"],
    );
    let t = trace(&path);
    assert_eq!(counts(&t, "getppid"), (250, 250));
    let site = &t.header.probes[0];
    assert!(site.binary.contains("libc.so.6"), "{}", site.binary);
    assert!(site.build_id.is_some());
}

#[test]
fn dropped_records_are_counted_never_lost_silently() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    // A ring of two pages per CPU cannot keep up with a tight loop.
    let result = run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-m",
            "8K",
            "-f",
            "pf_leaf",
            "-o",
            out.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "200000",
        ],
        0,
    );
    let t = trace(&out);
    let TraceEnd::Complete(footer) = &t.end else {
        panic!("incomplete trace")
    };
    let lost_events: u64 = t
        .events
        .iter()
        .map(|e| match e {
            perfunc::trace::Event::Lost { count, .. } => *count,
            _ => 0,
        })
        .sum();
    // Every probe hit is either in the trace or counted as lost (the lost
    // events may count a few side-band records, such as an exit, too).
    assert_eq!(t.samples.len() as u64 + footer.lost, 400_000);
    assert!(
        lost_events >= footer.lost,
        "{lost_events} < {}",
        footer.lost
    );
    if footer.lost > 0 {
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.contains(&format!(
                "{} probe hits were counted by the kernel but not recorded",
                footer.lost
            )),
            "{stderr}"
        );
    }
}

#[test]
fn the_demo_records_its_workload() {
    if !probes_available() {
        return;
    }
    let out = run_expect(&["demo"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for f in ["perfunc::demo::handle_request", "perfunc::demo::checksum"] {
        assert!(stdout.contains(f), "{stdout}");
    }
}

#[test]
fn the_report_of_nested_page_faults_is_exact() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(
        &dir,
        "page-faults",
        &["pf_outer", "pf_middle", "pf_touch", "pf_leaf"],
        &[bin, "nested", "7"],
    );
    for threads in ["1", "2"] {
        let out = run_expect(
            &[
                "report",
                "--format",
                "json",
                "--threads",
                threads,
                "-i",
                path.to_str().unwrap(),
            ],
            0,
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let stats = |name: &str| {
            let f = report["functions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap()
                .clone();
            (
                f["used"].as_u64().unwrap(),
                f["counters"]["page-faults"].clone(),
            )
        };
        // outer: 2 pages through pf_touch(2), then 3 × middle → pf_touch(4).
        let (calls, outer) = stats("pf_outer");
        assert_eq!(calls, 7);
        assert_eq!(
            (outer["min"].as_f64(), outer["max"].as_f64()),
            (Some(14.0), Some(14.0))
        );
        assert_eq!(outer["self_sum"], 0.0);
        let (calls, middle) = stats("pf_middle");
        assert_eq!(calls, 21);
        assert_eq!(
            (middle["min"].as_f64(), middle["max"].as_f64()),
            (Some(4.0), Some(4.0))
        );
        assert_eq!(middle["self_sum"], 0.0);
        let (calls, touch) = stats("pf_touch");
        assert_eq!(calls, 28);
        assert_eq!(touch["mean"], 3.5);
        assert_eq!(touch["self_sum"], 98.0);
    }
}

#[test]
fn probes_in_a_library_the_target_never_loads_are_named_at_exit() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    let o = run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "libm.so.6:sin",
            "-f",
            "pf_leaf",
            "-o",
            out.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "3",
        ],
        0,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: no probe fired in ")
            && err.contains("libm.so.6 (sin): the target never loaded it"),
        "{err}"
    );
    assert!(
        !err.contains("no probe fired in ") || !err.contains("pf_leaf"),
        "{err}"
    );
}

#[test]
fn the_default_counters_are_decided_one_by_one_and_the_decision_is_kept() {
    if !probes_available() {
        return;
    }
    let has_pmu = std::path::Path::new("/sys/bus/event_source/devices/cpu").exists();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    let output = perfunc()
        .args([
            "record",
            "--calibration",
            "off",
            "-q",
            "-f",
            "pf_leaf",
            "-o",
        ])
        .arg(&out)
        .args(["--", bin, "loop", "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    let header = trace(&out).header;
    let decision = header.counter_decision.expect("a decision in the header");
    let counted: Vec<&str> = header.counters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(decision.counted, counted);
    if has_pmu {
        // A machine with a PMU: whatever was decided is what was counted.
        assert!(
            !decision.fallback || err.contains(&decision.summary),
            "{err}"
        );
        return;
    }
    // No PMU (these machines): no cache counter opens, the software set is
    // counted, and one line says so, also with -q.
    assert!(decision.fallback);
    assert_eq!(counted, ["task-clock", "page-faults", "context-switches"]);
    assert!(
        err.contains(
            "perfunc: counting task-clock, page-faults, context-switches: no cache counter \
             opens here (LLC-load-misses, LLC-store-misses, LLC-prefetch-misses: ENOENT, no \
             hardware PMU, as in most VMs)"
        ),
        "{err}"
    );
    assert_eq!(decision.summary.lines().count(), 1);
}

#[test]
fn explicit_counters_carry_no_default_decision() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "3"]);
    assert!(trace(&out).header.counter_decision.is_none());
}

/// `msr/tsc/`, the one non-software counter of a machine without a PMU,
/// counts per call: the msr PMU refuses every exclude bit, so none is set
/// without a modifier.
#[test]
fn msr_tsc_counts_each_call() {
    if !probes_available() || !std::path::Path::new("/sys/bus/event_source/devices/msr").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = record(
        &dir,
        "msr/tsc/,task-clock",
        &["pf_leaf"],
        &[bin, "loop", "50"],
    );
    let report = json_report(&out);
    let leaf = function(&report, "pf_leaf");
    assert_eq!(leaf["calls"], 50);
    let tsc = &leaf["counters"]["msr/tsc/"];
    let ns = &leaf["counters"]["task-clock"];
    assert!(tsc["min"].as_f64().unwrap() > 0.0, "{tsc}");
    // TSC ticks per task-clock nanosecond: the TSC's frequency in GHz.
    let ghz = tsc["sum"].as_f64().unwrap() / ns["sum"].as_f64().unwrap();
    assert!((0.5..10.0).contains(&ghz), "{ghz} GHz: {leaf}");
}

#[test]
fn json_counters_keep_the_order_they_were_recorded_in() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = record(
        &dir,
        "task-clock,page-faults",
        &["pf_leaf"],
        &[bin, "loop", "3"],
    );
    let json = run_expect(
        &["report", "--format", "json", "-i", out.to_str().unwrap()],
        0,
    );
    let text = String::from_utf8(json.stdout).unwrap();
    let at = |key: &str| text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
    // Per-function statistics and the call tree's sums.
    assert!(at("\"task-clock\": {") < at("\"page-faults\": {"), "{text}");
    let tree = &text[at("\"tree\"")..];
    assert!(
        tree.find("\"task-clock\"") < tree.find("\"page-faults\""),
        "{tree}"
    );
}

#[test]
fn repeat_runs_the_command_n_times_and_gives_every_call_its_run() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.perfunc");
    let bin = workloads().to_str().unwrap();
    let rec = run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-e",
            "page-faults,task-clock",
            "-f",
            "pf_touch16",
            "-f",
            "pf_leaf",
            "--repeat",
            "4",
            "-o",
            out.to_str().unwrap(),
            "--",
            bin,
            "pages",
            "30",
        ],
        0,
    );
    let stderr = String::from_utf8_lossy(&rec.stderr);
    assert!(stderr.contains(" in 4 runs in "), "{stderr}");
    let script = run_expect(&["script", "-i", out.to_str().unwrap()], 0);
    let runs: Vec<String> = String::from_utf8_lossy(&script.stdout)
        .lines()
        .filter_map(|l| l.split_once(" RUN ").map(|(_, i)| i.to_owned()))
        .collect();
    assert_eq!(runs, ["0", "1", "2", "3"]);
    let r = json_report(&out);
    assert_eq!(r["trace"]["runs"], 4);
    assert_eq!(
        r["trace"]["run_time"]["medians"].as_array().unwrap().len(),
        4
    );
    // 30 calls of pf_touch16 per run, 16 page faults each, in every run.
    let touch = function(&r, "pf_touch16");
    assert_eq!(touch["used"], 120);
    let faults = &touch["counters"]["page-faults"];
    assert_eq!(faults["sum"], 1920.0);
    assert_eq!(
        faults["runs"]["medians"],
        serde_json::json!([16.0, 16.0, 16.0, 16.0])
    );
    assert_eq!(faults["runs"]["stddev"], 0.0);
    // pf_leaf: the first call of each run takes the probes' one-time fault.
    let leaf = function(&r, "pf_leaf");
    assert_eq!(leaf["used"], 4);
    assert_eq!(
        leaf["counters"]["page-faults"]["runs"]["medians"],
        serde_json::json!([1.0, 1.0, 1.0, 1.0])
    );
    let task = &touch["counters"]["task-clock"]["runs"];
    assert_eq!(task["medians"].as_array().unwrap().len(), 4);
}

#[test]
fn repeat_stops_at_a_run_that_fails() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.perfunc");
    let bin = workloads().to_str().unwrap();
    let rec = run_expect(
        &[
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            "pf_crash",
            "--repeat",
            "3",
            "-o",
            out.to_str().unwrap(),
            "--",
            bin,
            "crash",
        ],
        128 + libc::SIGSEGV,
    );
    let stderr = String::from_utf8_lossy(&rec.stderr);
    assert!(
        stderr.contains("perfunc: run 1 of 3 was killed by signal 11: not repeated"),
        "{stderr}"
    );
    let script = run_expect(&["script", "-i", out.to_str().unwrap()], 0);
    let text = String::from_utf8_lossy(&script.stdout);
    assert_eq!(text.matches(" RUN ").count(), 1, "{text}");
}
