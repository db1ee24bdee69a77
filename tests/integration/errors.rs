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

/// A stripped binary without a debug file: the error says so, and where
/// the debug file was looked for.
#[test]
fn a_stripped_binary_is_named_as_such_with_where_debug_symbols_were_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("stripped");
    std::fs::copy(workloads(), &bin).unwrap();
    let status = std::process::Command::new("strip")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    let build_id = perfunc::symbols::read_build_id(&bin).unwrap().unwrap();
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    let expected = format!(
        "no function matches `pf_leaf` in {0}; {0} is stripped (no .symtab: only its dynamic \
         symbols were searched) and no separate debug file was found (looked for \
         /usr/lib/debug/.build-id/{1}/{2}.debug); install its debug symbols (Debian: the \
         -dbgsym package) or probe an unstripped build",
        bin.display(),
        &hex[..2],
        &hex[2..]
    );
    let bin = bin.to_str().unwrap();
    for args in [
        &["list", bin, "pf_leaf"][..],
        &[
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
        ],
    ] {
        let err = stderr_of(args, 1);
        assert!(
            err.contains(&expected),
            "{args:?}:\n{err}\nexpected: {expected}"
        );
    }
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
        11,
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

/// `report --top 0` would print an empty table: a usage error instead.
#[test]
fn report_top_0_is_a_usage_error() {
    let err = stderr_of(&["report", "--top", "0"], 2);
    assert_eq!(
        err.lines().next().unwrap(),
        "error: invalid value '0' for '--top <N>': `0` is not a number of functions \
         to show (1 or more; without --top, all)"
    );
}

/// `list --events` on this machine: why counters fail comes first, each
/// reason once, as errno names (never "No such file or directory (os
/// error 2)" on every row); every row points at its reason and the
/// columns line up under their headers.
#[test]
fn unavailable_counters_are_explained() {
    if !probes_available() {
        return;
    }
    let out = run_expect(&["list", "--events"], 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("os error"), "{text}");
    let (reasons, table) = match text.split_once("\n\nCOUNTER ") {
        Some((reasons, rest)) => (reasons, format!("COUNTER {rest}")),
        None => ("", text.clone()),
    };
    let reasons: Vec<&str> = reasons.lines().collect();
    if let Some((first, listed)) = reasons.split_first() {
        assert_eq!(*first, "Counters that do not open here, and why:", "{text}");
        for (i, reason) in listed.iter().enumerate() {
            assert!(reason.starts_with(&format!("  [{}] ", i + 1)), "{text}");
            assert_eq!(
                listed.iter().filter(|r| r[5..] == reason[5..]).count(),
                1,
                "a reason given twice: {text}"
            );
        }
    }
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let column = |name: &str| header.find(name).unwrap();
    let (kind, unit, status) = (column("KIND"), column("UNIT"), column("STATUS"));
    assert!(
        header.starts_with("COUNTER ") && header.ends_with("STATUS"),
        "{header}"
    );
    let mut rows = 0;
    for row in lines {
        rows += 1;
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(row.find(fields[1]), Some(kind), "KIND misaligned: {row}");
        assert_eq!(&row[unit..unit + fields[2].len()], fields[2], "UNIT: {row}");
        assert_eq!(row[unit + fields[2].len()..status].trim(), "", "{row}");
        let state = &row[status..];
        if state != "ok" {
            let n: usize = state
                .strip_prefix("unavailable: ")
                .and_then(|s| s.split_once(" ["))
                .and_then(|(errno, n)| {
                    assert!(errno.starts_with('E'), "an errno name: {row}");
                    n.strip_suffix(']')?.parse().ok()
                })
                .unwrap_or_else(|| panic!("a status: {row}"));
            assert!(
                (1..reasons.len()).contains(&n),
                "reason [{n}] listed: {text}"
            );
        }
    }
    assert_eq!(rows, perfunc::events::known_counters().len(), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .expect(&text)
    };
    assert!(row("task-clock").ends_with(" software  nanoseconds  ok"));
    let has_pmu = std::path::Path::new("/sys/bus/event_source/devices/cpu").exists();
    assert_eq!(row("LLC-load-misses").ends_with("  ok"), has_pmu, "{text}");
    if !has_pmu {
        // Every hardware counter fails for the one reason, given first.
        assert!(
            reasons[1].starts_with("  [1] ENOENT (2): this machine exposes no hardware PMU"),
            "{text}"
        );
        for name in ["cpu-cycles", "LLC-load-misses", "dTLB-load-misses"] {
            assert!(
                row(name).ends_with("  count        unavailable: ENOENT [1]"),
                "{text}"
            );
        }
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

/// Where each chunk of the trace in `bytes` starts, with the pf_leaf calls
/// that the records from that chunk on complete (entries and returns
/// paired in order, as the workload is one thread).
fn chunks_and_calls(bytes: &[u8]) -> (Vec<u64>, Vec<u64>) {
    use perfunc::trace::{Chunk, RecordKind, TraceReader};
    let mut reader = TraceReader::new(bytes).unwrap();
    let leaf = reader
        .header()
        .probes
        .iter()
        .find(|p| p.function == "pf_leaf")
        .unwrap()
        .id;
    let mut starts = vec![reader.offset()];
    let mut kinds = Vec::new();
    let mut first_record = vec![0];
    while let Some(chunk) = reader.next_chunk().unwrap() {
        if let Chunk::Samples(block) = &chunk {
            let of_leaf = block.iter().filter(|s| s.probe() == leaf);
            kinds.extend(of_leaf.map(|s| s.kind()));
        }
        starts.push(reader.offset());
        first_record.push(kinds.len());
    }
    let calls_from = |from: usize| {
        let mut open = false;
        let mut calls = 0;
        for kind in &kinds[from..] {
            match kind {
                RecordKind::Entry => open = true,
                RecordKind::Return if open => {
                    open = false;
                    calls += 1;
                }
                RecordKind::Return => {}
            }
        }
        calls
    };
    (starts, first_record.into_iter().map(calls_from).collect())
}

#[test]
fn salvage_resynchronises_after_a_flipped_byte_in_the_first_chunk() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let out = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "200000"]);
    let path = out.to_str().unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let (starts, calls_from) = chunks_and_calls(&bytes);
    assert_eq!(calls_from[0], 200_000, "the undamaged trace has every call");
    assert!(starts.len() > 4, "a multi-chunk trace: {starts:?}");
    let (first, second) = (starts[0], starts[1]);

    let mut damaged = bytes.clone();
    damaged[first as usize + 2] ^= 0x01;
    std::fs::write(&out, &damaged).unwrap();
    let err = stderr_of(&["report", "-i", path], 1);
    assert!(
        err.contains(&format!("corrupt chunk at byte {first}")),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &run_expect(&["report", "--salvage", "--format", "json", "-i", path], 0).stdout,
    )
    .unwrap();
    let leaf = function(&report, "pf_leaf");
    assert_eq!(
        leaf["used"], calls_from[1],
        "every call of the later chunks: {leaf}"
    );
    assert!(
        calls_from[1] >= 180_000,
        "at least 90% back: {}",
        calls_from[1]
    );
    let damage = &report["trace"]["damaged"];
    assert_eq!(damage[0]["start"], first, "{damage}");
    assert_eq!(damage[0]["end"], second, "{damage}");
    assert_eq!(damage.as_array().unwrap().len(), 1, "{damage}");
    let table = run_expect(&["report", "--salvage", "-i", path], 0);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("damaged bytes {first}..{second} ")),
        "{text}"
    );
    let script = run_expect(&["script", "--salvage", "-i", path], 0);
    let lines = String::from_utf8_lossy(&script.stdout);
    let records = lines.lines().filter(|l| l.contains(" pf_leaf ")).count();
    assert_eq!(serde_json::json!(records), report["trace"]["records"]);
    let warning = String::from_utf8_lossy(&script.stderr);
    assert!(
        warning.contains(&format!("skipped bytes {first}..{second} ")),
        "{warning}"
    );
    let svg = dir.path().join("f.svg");
    let flame = run_expect(
        &[
            "flamegraph",
            "--salvage",
            "-i",
            path,
            "-o",
            svg.to_str().unwrap(),
        ],
        0,
    );
    let warning = String::from_utf8_lossy(&flame.stderr);
    assert!(
        warning.contains(&format!("skipped bytes {first}..{second} ")),
        "{warning}"
    );

    // A damaged length field in a complete trace is corruption, not a
    // recording cut short.
    let mut damaged = bytes.clone();
    let at = first as usize + 8;
    damaged[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&out, &damaged).unwrap();
    let err = stderr_of(&["report", "-i", path], 1);
    assert!(
        err.contains(&format!("corrupt chunk at byte {first}")),
        "{err}"
    );
    assert!(err.contains("length field"), "{err}");
}

/// Runs perfunc, killing it if it has not exited within `limit`: a
/// regression would read `/dev/zero` until memory runs out.
fn run_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = perfunc()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run perfunc");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("perfunc {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_device_or_directory_is_refused_as_a_binary() {
    let limit = std::time::Duration::from_secs(10);
    let cases: [(&[&str], &str, &str); 3] = [
        (&["list", "/dev/zero"], "/dev/zero", "a character device"),
        (&["list", "/"], "/", "a directory"),
        (
            &[
                "record",
                "--calibration",
                "off",
                "-e",
                "task-clock",
                "-f",
                "/dev/zero:foo",
                "-o",
                "/dev/null",
                "--",
                "true",
            ],
            "/dev/zero",
            "a character device",
        ),
    ];
    for (args, path, kind) in cases {
        let out = run_within(args, limit);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{path} is {kind}, not a regular file")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_libc_function_named_without_its_library_gets_the_library_spec() {
    let bin = workloads().to_str().unwrap();
    let record_args = |function: &str, out: &str| -> Vec<String> {
        let args = [
            "record",
            "--calibration",
            "off",
            "-q",
            "-e",
            "task-clock",
            "-f",
            function,
            "-o",
            out,
            "--",
            bin,
            "libc",
            "3",
        ];
        args.map(str::to_owned).to_vec()
    };
    fn as_strs(args: &[String]) -> Vec<&str> {
        args.iter().map(String::as_str).collect()
    }
    let err = stderr_of(&as_strs(&record_args("getppid", "/dev/null")), 1);
    assert_eq!(
        err,
        format!(
            "perfunc: error: no function matches `getppid` in {bin}: it imports `getppid` \
             from libc.so.6; probe it there with -f 'libc.so.6:getppid'\n"
        )
    );
    if !probes_available() {
        return;
    }
    // The suggested spec records the calls.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let args = record_args("libc.so.6:getppid", out.to_str().unwrap());
    run_expect(&as_strs(&args), 0);
    assert_eq!(counts(&trace(&out), "getppid"), (3, 3));
}

#[test]
fn a_command_without_dashes_is_shown_with_them() {
    let err = stderr_of(
        &["record", "-e", "task-clock", "-f", "outer", "./mem", "4"],
        2,
    );
    assert_eq!(
        err,
        "error: unexpected argument './mem' found: the command to record goes after `--`:\n\n  \
         perfunc record -e task-clock -f outer -- ./mem 4\n\n\
         For more information, try 'perfunc record --help'.\n"
    );
}

#[test]
fn a_counter_that_cannot_open_is_named_before_calibration() {
    if !probes_available() || std::path::Path::new("/sys/bus/event_source/devices/cpu").exists() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    for args in [
        &[
            "record",
            "-e",
            "cycles",
            "-f",
            "pf_leaf",
            "-o",
            "/nonexistent/t",
            "--",
            bin,
        ][..],
        &["calibrate", "-e", "task-clock,cycles"][..],
    ] {
        let out = run_expect(args, 1);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("measuring what the probes cost"), "{err}");
        assert!(!err.contains("calibration failed"), "{err}");
        assert!(
            err.starts_with(
                "perfunc: error: cannot open counter cpu-cycles (hardware, type 0, config 0x0): \
                 ENOENT (2): this machine exposes no hardware PMU"
            ),
            "{err}"
        );
    }
}

#[test]
fn record_without_anything_to_probe_says_f_or_k_with_examples() {
    let out = run_expect(&["record", "--", "true"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "error: nothing to probe: give -f for functions of a program or library, -k for \
         kernel code, or both, e.g.\n\n  perfunc record -f 'parse_*' -f 'libc.so.6:malloc' -- \
         ./app\n  perfunc record -k vfs_read -k syscall:openat -- cat /etc/hostname\n\nFor more \
         information, try 'perfunc record --help'.\n"
    );
}

/// `report --function` and `--tid` (and `flamegraph --tid`) that select
/// no call are errors, exit 1, naming what there is instead of printing
/// an empty table.
#[test]
fn report_filters_that_match_nothing_say_so_and_exit_1() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    // pf_fib is probed but never called in loop mode.
    let out = record(
        &dir,
        "task-clock",
        &["pf_leaf", "pf_fib"],
        &[bin, "loop", "10"],
    );
    let path = out.to_str().unwrap();
    let tid = trace(&out).samples[0].tid;
    let failed = format!("perfunc: error: failed to analyze {path}: ");
    let err = stderr_of(&["report", "-i", path, "--function", "pf_leef"], 1);
    assert_eq!(
        err,
        format!("{failed}no function in the trace matches 'pf_leef'; did you mean 'pf_leaf'?\n")
    );
    let err = stderr_of(&["report", "-i", path, "--function", "nosuch*"], 1);
    assert_eq!(
        err,
        format!(
            "{failed}no function in the trace matches 'nosuch*'; its functions: pf_leaf, pf_fib\n"
        )
    );
    let err = stderr_of(&["report", "-i", path, "--function", "pf_fib"], 1);
    assert_eq!(
        err,
        format!(
            "{failed}no call of a function matching 'pf_fib' (probed, but never called); \
             the functions called: pf_leaf\n"
        )
    );
    let tid_arg = tid.to_string();
    let err = stderr_of(
        &[
            "report",
            "-i",
            path,
            "--tid",
            &tid_arg,
            "--function",
            "pf_f*",
        ],
        1,
    );
    assert_eq!(
        err,
        format!(
            "{failed}no call of a function matching 'pf_f*' in thread {tid}; \
             the functions it called: pf_leaf\n"
        )
    );
    let no_thread =
        format!("{failed}thread 1 hit no probe in this trace; the threads that did: {tid}\n");
    assert_eq!(
        stderr_of(&["report", "-i", path, "--tid", "1"], 1),
        no_thread
    );
    let svg = dir.path().join("t.svg");
    let svg = svg.to_str().unwrap();
    assert_eq!(
        stderr_of(&["flamegraph", "-i", path, "--tid", "1", "-o", svg], 1),
        no_thread
    );
    assert!(!std::path::Path::new(svg).exists());
    // The filters that match report as before.
    let out = run_expect(
        &[
            "report",
            "-i",
            path,
            "--tid",
            &tid_arg,
            "--function",
            "pf_l*",
        ],
        0,
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("\npf_leaf  (10 calls)\n"), "{table}");
}

/// `pf_locked` starts with `lock incl (%rdi)`, on which the kernel places
/// no uprobe: `list` marks it, a glob skips it with a warning, naming it
/// fails before any probe is placed.
#[test]
fn functions_the_kernel_refuses_to_probe_are_marked_skipped_or_refused() {
    if !probes_available() {
        return;
    }
    let bin = workloads().to_str().unwrap();
    let list = run_expect(&["list", bin, "pf_l*"], 0);
    let list = String::from_utf8_lossy(&list.stdout);
    let locked = list
        .lines()
        .find(|l| l.ends_with(" pf_locked"))
        .expect(&list);
    assert!(locked.contains(" refused "), "{list}");
    assert!(
        list.contains("\nrefused: the kernel places no uprobe"),
        "{list}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.perfunc");
    let out = out.to_str().unwrap();
    let record_f = |pattern: &str, code: i32| {
        run_expect(
            &[
                "record",
                "--calibration",
                "off",
                "-q",
                "-e",
                "task-clock",
                "-o",
                out,
                "-f",
                pattern,
                "--",
                bin,
                "loop",
                "3",
            ],
            code,
        )
    };
    let skipped = record_f("pf_l*", 0);
    let err = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        err.contains(
            "skipping 1 function the kernel refuses to probe, for the prefix or \
                      instruction where the probes go: pf_locked (a lock prefix)"
        ),
        "{err}"
    );
    let report = json_report(std::path::Path::new(out));
    assert_eq!(function(&report, "pf_leaf")["calls"], 3);
    let named = record_f("pf_locked", 1);
    let err = String::from_utf8_lossy(&named.stderr);
    assert!(
        err.contains("the kernel refuses a uprobe on pf_locked in ")
            && err.contains("the instruction its probes go on has a lock prefix"),
        "{err}"
    );
}
