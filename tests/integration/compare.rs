//! `perfunc flamegraph` and `perfunc diff` on real recordings.

use std::path::Path;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::common::{probes_available, record, run_expect, workloads};

/// The `<title>` texts of an SVG's frames; panics unless it parses as XML.
fn svg_titles(path: &Path) -> Vec<String> {
    let svg = std::fs::read(path).unwrap();
    let mut reader = Reader::from_reader(svg.as_slice());
    let (mut titles, mut in_title, mut buf) = (Vec::new(), false, Vec::new());
    loop {
        match reader
            .read_event_into(&mut buf)
            .expect("the SVG parses as XML")
        {
            Event::Start(e) if e.name().as_ref() == b"title" => in_title = true,
            Event::End(e) if e.name().as_ref() == b"title" => in_title = false,
            Event::Text(t) if in_title => titles.push(t.decode().unwrap().into_owned()),
            Event::Eof => return titles,
            _ => {}
        }
        buf.clear();
    }
}

#[test]
fn flamegraph_of_nested_page_faults_is_exact() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let trace = record(
        &dir,
        "page-faults,task-clock",
        &["pf_outer", "pf_middle", "pf_touch", "pf_leaf"],
        &[bin, "nested", "4"],
    );
    let folded = dir.path().join("out.folded");
    let svg = dir.path().join("out.svg");
    run_expect(
        &[
            "flamegraph",
            "-i",
            trace.to_str().unwrap(),
            "--counter",
            "page-faults",
            "--folded",
            folded.to_str().unwrap(),
            "-o",
            svg.to_str().unwrap(),
        ],
        0,
    );
    // Per outer call: 2 pages in outer → toucher, 3 × 4 in outer → middle
    // → toucher; pf_leaf takes the return probe's one-time page fault.
    assert_eq!(
        std::fs::read_to_string(&folded).unwrap(),
        "workloads;pf_leaf 1\n\
         workloads;pf_outer 0\n\
         workloads;pf_outer;pf_middle 0\n\
         workloads;pf_outer;pf_middle;pf_touch 48\n\
         workloads;pf_outer;pf_touch 8\n"
    );
    let titles = svg_titles(&svg);
    for expected in [
        "workloads (57 page-faults, 100.00%)",
        "pf_outer: 4 calls, 56 page-faults in all, 14 per call",
        "pf_middle: 12 calls, 48 page-faults in all, 4 per call",
        "pf_touch: 16 calls, 56 page-faults in all, 3.50 per call",
        "pf_leaf: 1 call, 1 page-faults in all, 1 per call",
    ] {
        assert_eq!(
            titles.iter().filter(|t| *t == expected).count(),
            if expected.starts_with("pf_touch") {
                2
            } else {
                1
            },
            "{expected} in {titles:?}"
        );
    }
}

#[test]
fn flamegraph_per_thread_has_a_tower_per_thread() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let trace = record(
        &dir,
        "page-faults,task-clock",
        &["pf_leaf"],
        &[bin, "threads", "50"],
    );
    let folded = dir.path().join("out.folded");
    let out = run_expect(
        &[
            "flamegraph",
            "-i",
            trace.to_str().unwrap(),
            "--counter",
            "task-clock",
            "--per-thread",
            "--folded",
            folded.to_str().unwrap(),
        ],
        0,
    );
    assert!(!dir.path().join("flamegraph.svg").exists());
    let text = std::fs::read_to_string(&folded).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let mut tids: Vec<&str> = lines
        .iter()
        .map(|l| {
            let frames: Vec<&str> = l.split(';').collect();
            assert_eq!(frames[0], "workloads");
            assert!(frames[2].starts_with("pf_leaf "), "{l}");
            frames[1]
        })
        .collect();
    tids.dedup();
    assert_eq!(tids.len(), 3, "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 stacks"));
}

/// Records `touch CALLS PAGES` (pf_touch probed, and pf_leaf to take the
/// return probe's one-time page fault) into a new directory.
fn record_touch(pages: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads().to_str().unwrap();
    let trace = record(
        &dir,
        "page-faults,task-clock",
        &["pf_touch", "pf_leaf"],
        &[bin, "touch", "100", pages],
    );
    let trace = trace.to_str().unwrap().to_owned();
    (dir, trace)
}

#[test]
fn diff_finds_the_page_fault_regression_and_gates_on_it() {
    if !probes_available() {
        return;
    }
    let (base_dir, base) = record_touch("16");
    let (new_dir, new) = record_touch("20");
    let svg = new_dir.path().join("diff.svg");
    let out = run_expect(
        &[
            "diff",
            &base,
            &new,
            "--format",
            "json",
            "--counter",
            "page-faults",
            "--fail-on-regression",
            "20",
            "--flamegraph",
            svg.to_str().unwrap(),
        ],
        3,
    );
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let touch = diff["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "pf_touch")
        .unwrap();
    assert_eq!(
        (touch["base_calls"].as_u64(), touch["new_calls"].as_u64()),
        (Some(100), Some(100))
    );
    let faults = &touch["counters"]["page-faults"];
    assert_eq!(faults["verdict"], "regressed");
    assert_eq!(faults["change"], 0.25);
    let (low, high) = (
        faults["ci_low"].as_f64().unwrap(),
        faults["ci_high"].as_f64().unwrap(),
    );
    assert!(low <= 0.25 && 0.25 <= high, "{faults}");
    assert_eq!(
        (faults["base_mean"].as_f64(), faults["new_mean"].as_f64()),
        (Some(16.0), Some(20.0))
    );
    assert!(faults["q_value"].as_f64().unwrap() < 1e-10);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("regression: pf_touch page-faults +25.0%")
    );
    let titles = svg_titles(&svg);
    assert!(
        titles.contains(&"pf_touch (2,000 page-faults, 99.95%; +19.99%)".to_owned()),
        "{titles:?}"
    );
    // Below the gate's percentage: exit 0, same verdict.
    let out = run_expect(
        &[
            "diff",
            &base,
            &new,
            "--counter",
            "page-faults",
            "--fail-on-regression",
            "30",
        ],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("regressed"));
    drop(base_dir);
}
