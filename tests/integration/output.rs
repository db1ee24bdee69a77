//! Output files: a failed recording leaves the trace already at `-o` as it
//! was, outputs replace a symlink rather than write through it, and the
//! calibration cache is used only in a directory no one else controls.

use std::path::Path;
use std::process::Command;

use perfunc::trace::TraceEnd;

use crate::common::*;

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn record_args<'a>(out: &'a str, extra: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "record",
        "--calibration",
        "off",
        "-q",
        "-e",
        "task-clock",
        "-o",
        out,
    ];
    args.extend(extra);
    args.push("--");
    args.extend(cmd);
    args
}

#[test]
fn a_failed_recording_leaves_the_trace_at_o_byte_identical() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let path = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "1000"]);
    let before = std::fs::read(&path).unwrap();
    let out = path.to_str().unwrap();
    let failures: [&[&str]; 2] = [
        // Fails resolving the function, before any probe.
        &["-f", "no_such_function_xyz"],
        // Fails mapping the ring buffers, once the probes are placed.
        &["-f", "pf_leaf", "-m", "100G"],
    ];
    for extra in failures {
        let args = record_args(out, extra, &[bin, "loop", "1000"]);
        let result = run(&args);
        assert_ne!(result.status.code(), Some(0), "{args:?}");
        let after = std::fs::read(&path).unwrap();
        assert!(
            after == before,
            "{args:?} changed the old trace ({} bytes, was {}):\n{}",
            after.len(),
            before.len(),
            String::from_utf8_lossy(&result.stderr)
        );
        // No temp file and no .old: nothing was recorded.
        assert_eq!(entries(dir.path()), ["t.perfunc"], "{args:?}");
    }
}

#[test]
fn record_replaces_a_symlink_at_o_and_keeps_the_previous_as_old() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"root's precious file").unwrap();
    let link = dir.path().join("t.perfunc");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let bin = workloads().to_str().unwrap();
    let out = link.to_str().unwrap();
    let result = run_expect(
        &record_args(out, &["-f", "pf_leaf"], &[bin, "loop", "100"]),
        0,
    );
    assert!(
        std::fs::read(&victim).unwrap() == b"root's precious file",
        "the link's target was written"
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(counts(&trace(&link), "pf_leaf"), (100, 100));
    let old = dir.path().join("t.perfunc.old");
    assert_eq!(std::fs::read_link(&old).unwrap(), victim);
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains(&format!("kept the previous {out} as {}", old.display())),
        "{err}"
    );

    // The flamegraph too replaces a link rather than following it.
    let svg = dir.path().join("flame.svg");
    std::os::unix::fs::symlink(&victim, &svg).unwrap();
    run_expect(&["flamegraph", "-i", out, "-o", svg.to_str().unwrap()], 0);
    assert!(
        std::fs::read(&victim).unwrap() == b"root's precious file",
        "the link's target was written"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn concurrent_recordings_to_one_output_each_leave_a_whole_trace() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.perfunc");
    let bin = workloads().to_str().unwrap();
    let out = path.to_str().unwrap();
    let args = record_args(out, &["-f", "pf_leaf"], &[bin, "loop", "20000"]);
    let children: Vec<_> = (0..2)
        .map(|_| perfunc().args(&args).spawn().unwrap())
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for name in ["t.perfunc", "t.perfunc.old"] {
        let t = trace(&dir.path().join(name));
        assert!(matches!(t.end, TraceEnd::Complete(_)), "{name}");
        assert_eq!(counts(&t, "pf_leaf"), (20_000, 20_000), "{name}");
    }
    assert_eq!(entries(dir.path()), ["t.perfunc", "t.perfunc.old"]);
}

/// `perfunc calibrate` (into the cache) with `XDG_CACHE_HOME=cache`.
fn calibrate_into(cache: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perfunc"))
        .env("XDG_CACHE_HOME", cache)
        .args([
            "calibrate",
            "-e",
            "task-clock",
            "--calls",
            "20",
            "--rounds",
            "1",
        ])
        .output()
        .unwrap()
}

#[test]
fn the_calibration_cache_is_not_used_through_a_symlink_or_when_others_can_write_it() {
    if !probes_available() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();

    // A fresh cache directory is created private.
    let cache = dir.path().join("fresh");
    let result = calibrate_into(&cache);
    assert!(result.status.success(), "{result:?}");
    let meta = std::fs::symlink_metadata(cache.join("perfunc")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(entries(&cache.join("perfunc")).len(), 1);

    // A planted symlink: refused, and its target gets nothing.
    let cache = dir.path().join("planted");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("perfunc")).unwrap();
    let result = calibrate_into(&cache);
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to use the calibration cache"),
        "{err}"
    );
    assert!(err.contains("symlink"), "{err}");
    assert!(entries(&elsewhere).is_empty(), "{err}");

    // A directory others can write: refused.
    let cache = dir.path().join("open");
    std::fs::create_dir_all(cache.join("perfunc")).unwrap();
    std::fs::set_permissions(
        cache.join("perfunc"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let result = calibrate_into(&cache);
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(err.contains("others can write it"), "{err}");
    assert!(entries(&cache.join("perfunc")).is_empty(), "{err}");

    // A recording that uses the cache warns of the planted one, measures,
    // and stores nothing.
    let bin = workloads().to_str().unwrap();
    let trace_path = dir.path().join("t.perfunc");
    let out = Command::new(env!("CARGO_BIN_EXE_perfunc"))
        .env("XDG_CACHE_HOME", dir.path().join("planted"))
        .args([
            "record",
            "--calibration",
            "cached",
            "-e",
            "task-clock",
            "-f",
            "pf_leaf",
            "-o",
            trace_path.to_str().unwrap(),
            "--",
            bin,
            "loop",
            "10",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("not using the calibration cache"), "{err}");
    assert!(entries(&elsewhere).is_empty(), "{err}");
    assert!(trace(&trace_path).header.calibration.is_some());
}

/// `perfunc report | head` is not an error: a closed stdout ends the
/// report quietly with status 0, in every format, as `script` does.
#[test]
fn a_closed_pipe_ends_reports_and_scripts_with_status_0() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let trace = record(&dir, "task-clock", &["pf_leaf"], &[bin, "loop", "10"]);
    let trace = trace.to_str().unwrap();
    for args in [
        vec!["report", "-i", trace],
        vec!["report", "--format", "json", "-i", trace],
        vec!["report", "--format", "csv", "-i", trace],
        vec!["script", "-i", trace],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = perfunc().args(&args).stdout(writer).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
