//! Call chains: the callers of a probed function, recorded with
//! `--callchain`, resolved, and drawn above it in the flamegraph.

use std::path::Path;

use crate::common::{chains, probes_available, run_expect, Chains};

/// Records `cc_probed` (or `LIB:cc_probed`) of `bin` with `mode` and
/// returns the folded stacks of the flamegraph.
fn folded(dir: &Path, bin: &Path, function: &str, mode: &str, extra: &[&str]) -> String {
    let trace = dir.join("c.perfunc");
    let folded = dir.join("c.folded");
    let mut args = vec![
        "record",
        "-q",
        "--calibration",
        "off",
        "-e",
        "task-clock",
        "--callchain",
        mode,
        "-f",
        function,
        "-o",
        trace.to_str().unwrap(),
    ];
    args.extend(extra);
    args.extend(["--", bin.to_str().unwrap(), "50"]);
    run_expect(&args, 0);
    run_expect(
        &[
            "flamegraph",
            "-i",
            trace.to_str().unwrap(),
            "--folded",
            folded.to_str().unwrap(),
        ],
        0,
    );
    std::fs::read_to_string(folded).unwrap()
}

/// The frames of the one stack that ends in `cc_probed`, from `main` on.
fn from_main(folded: &str) -> Vec<String> {
    let lines: Vec<&str> = folded.lines().collect();
    assert_eq!(lines.len(), 1, "one call path: {folded}");
    let (stack, _value) = lines[0].rsplit_once(' ').unwrap();
    let frames: Vec<&str> = stack.split(';').collect();
    let main = frames
        .iter()
        .position(|f| *f == "main")
        .unwrap_or_else(|| panic!("no main in {stack}"));
    frames[main..].iter().map(|f| f.to_string()).collect()
}

const EXPECTED: [&str; 4] = ["main", "chain_a", "chain_b", "cc_probed"];

#[test]
fn frame_pointer_chains_match_the_calls_exactly() {
    if !probes_available() {
        return;
    }
    for variant in [Chains::FramePointers, Chains::NoPie] {
        let dir = tempfile::tempdir().unwrap();
        let text = folded(dir.path(), &chains(variant), "cc_probed", "fp", &[]);
        assert_eq!(from_main(&text), EXPECTED, "{variant:?}: {text}");
        assert!(text.starts_with("chains-"), "{text}");
    }
}

#[test]
fn chains_cross_into_a_shared_library() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = folded(
        dir.path(),
        &chains(Chains::Shared),
        "libchain.so:cc_probed",
        "fp",
        &[],
    );
    assert_eq!(from_main(&text), EXPECTED, "{text}");
}

/// Without frame pointers the kernel's walk has nothing to follow (here it
/// returns no caller at all): the chain may be short, never wrong.
#[test]
fn frame_pointer_chains_without_frame_pointers_are_cut_not_wrong() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = folded(
        dir.path(),
        &chains(Chains::NoFramePointers),
        "cc_probed",
        "fp",
        &[],
    );
    for line in text.lines() {
        let (stack, _) = line.rsplit_once(' ').unwrap();
        let frames: Vec<&str> = stack.split(';').skip(1).collect();
        assert_eq!(frames.last(), Some(&"cc_probed"), "{line}");
        let callers = &frames[..frames.len() - 1];
        let known: Vec<&&str> = callers.iter().filter(|f| !f.starts_with('[')).collect();
        for pair in known.windows(2) {
            let (outer, inner) = (pair[0], pair[1]);
            let expected_inner = EXPECTED
                .iter()
                .position(|e| e == outer)
                .and_then(|i| EXPECTED.get(i + 1));
            assert_eq!(expected_inner, Some(inner), "wrong frame order in {line}");
        }
        // Whatever callers there are end in the direct caller.
        if let Some(last) = known.last() {
            assert_eq!(**last, "chain_b", "{line}");
        }
    }
}

#[test]
fn report_lines_name_the_source() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("l.perfunc");
    let bin = chains(Chains::FramePointers);
    run_expect(
        &[
            "record",
            "-q",
            "--calibration",
            "off",
            "-e",
            "task-clock",
            "-f",
            "cc_probed",
            "-o",
            trace.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
            "3",
        ],
        0,
    );
    let out = run_expect(
        &[
            "report",
            "--lines",
            "--format",
            "json",
            "-i",
            trace.to_str().unwrap(),
        ],
        0,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = report["functions"][0]["source"].as_str().unwrap();
    assert!(
        source.ends_with("tests/fixtures/chains_lib.c:9"),
        "{source}"
    );
}
