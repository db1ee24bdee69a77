//! Call chains: the callers of a probed function, recorded with
//! `--callchain`, resolved, and drawn above it in the flamegraph.

use std::path::{Path, PathBuf};

use crate::common::{
    chains, function, json_report, probes_available, record, run_expect, rust_fixture_debug,
    workloads, Chains,
};

/// Records `cc_probed` (or `LIB:cc_probed`) of `bin` with `mode` and
/// returns the folded stacks of the flamegraph.
fn folded(dir: &Path, bin: &Path, function: &str, mode: &str, extra: &[&str]) -> String {
    folded_of(dir, bin, &["-f", function], mode, extra, &["50"])
}

/// Records `probes` of `bin ARGS` (task-clock, and `--callchain mode`
/// unless `mode` is empty) into DIR/c.perfunc and returns its path.
fn record_chains(
    dir: &Path,
    bin: &Path,
    probes: &[&str],
    mode: &str,
    bin_args: &[&str],
) -> PathBuf {
    let trace = dir.join("c.perfunc");
    let mut args = vec!["record", "-q", "--calibration", "off", "-e", "task-clock"];
    if !mode.is_empty() {
        args.extend(["--callchain", mode]);
    }
    args.extend(["-o", trace.to_str().unwrap()]);
    args.extend(probes);
    args.extend(["--", bin.to_str().unwrap()]);
    args.extend(bin_args);
    run_expect(&args, 0);
    trace
}

/// Records `probes` of `bin ARGS` with `--callchain mode` and returns the
/// folded stacks (`flamegraph` with `extra`).
fn folded_of(
    dir: &Path,
    bin: &Path,
    probes: &[&str],
    mode: &str,
    extra: &[&str],
    bin_args: &[&str],
) -> String {
    let trace = record_chains(dir, bin, probes, mode, bin_args);
    let folded = dir.join("c.folded");
    let mut graph = vec![
        "flamegraph",
        "-i",
        trace.to_str().unwrap(),
        "--folded",
        folded.to_str().unwrap(),
    ];
    graph.extend(extra);
    run_expect(&graph, 0);
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
    let bin = chains(Chains::FramePointers);
    let trace = record_chains(dir.path(), &bin, &["-f", "cc_probed"], "", &["3"]);
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
    let lib = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chains_lib.c"),
    )
    .unwrap();
    let defined = 1 + lib
        .lines()
        .position(|l| l.starts_with("NOINLINE long cc_probed("))
        .unwrap();
    assert!(
        source.ends_with(&format!("tests/fixtures/chains_lib.c:{defined}")),
        "{source}, defined at line {defined}"
    );
}

/// `pf_touch` is declared over two lines: `--lines` names the line of its
/// name (DW_AT_decl_line), not the line of its first instruction.
#[test]
fn report_lines_give_where_a_function_is_defined() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = workloads();
    let trace = record(
        &dir,
        "task-clock",
        &["pf_touch"],
        &[bin.to_str().unwrap(), "touch", "2"],
    );
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workloads.c"),
    )
    .unwrap();
    let defined = 1 + source
        .lines()
        .position(|l| l.starts_with("pf_touch("))
        .unwrap();
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
    let at = function(&report, "pf_touch")["source"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        at.ends_with(&format!("tests/fixtures/workloads.c:{defined}")),
        "{at}, defined at line {defined}"
    );
    let first_insn = std::process::Command::new("addr2line")
        .args(["-e", bin.to_str().unwrap()])
        .arg(format!("{:#x}", symbol_address(bin, "pf_touch")))
        .output()
        .unwrap();
    let first_insn = String::from_utf8_lossy(&first_insn.stdout);
    assert!(
        !first_insn.trim().ends_with(&format!(":{defined}")),
        "the fixture must have its first instruction on another line: {first_insn}"
    );
}

/// The address of `name` in the symbol table of `bin`.
fn symbol_address(bin: &Path, name: &str) -> u64 {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(bin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .unwrap()
}

/// Stack copies unwound with the binaries' CFI: exact without frame
/// pointers too, through a PIE, fixed addresses and a shared library, down
/// to the program's entry point.
#[test]
fn dwarf_chains_are_exact_with_or_without_frame_pointers() {
    if !probes_available() {
        return;
    }
    for variant in [
        Chains::NoFramePointers,
        Chains::FramePointers,
        Chains::NoPie,
        Chains::Shared,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let function = if variant == Chains::Shared {
            "libchain.so:cc_probed"
        } else {
            "cc_probed"
        };
        let text = folded(dir.path(), &chains(variant), function, "dwarf", &[]);
        assert_eq!(from_main(&text), EXPECTED, "{variant:?}: {text}");
        let (stack, _) = text.trim_end().rsplit_once(' ').unwrap();
        assert!(
            stack.split(';').nth(1) == Some("_start"),
            "{variant:?}: {text}"
        );
        assert!(!text.contains(perfunc::callchain::CUT_FRAME), "{text}");
    }
}

#[test]
fn dwarf_and_frame_pointer_chains_agree() {
    if !probes_available() {
        return;
    }
    let bin = chains(Chains::FramePointers);
    let fp = folded(
        tempfile::tempdir().unwrap().path(),
        &bin,
        "cc_probed",
        "fp",
        &[],
    );
    let dwarf = folded(
        tempfile::tempdir().unwrap().path(),
        &bin,
        "cc_probed",
        "dwarf",
        &[],
    );
    // The kernel's walk stops at libc's frameless entry code; CFI goes on
    // to _start. From main inwards they agree.
    assert_eq!(
        from_main(&fp),
        from_main(&dwarf),
        "fp: {fp}\ndwarf: {dwarf}"
    );
}

#[test]
fn inlined_rust_functions_are_frames_with_inline() {
    if !probes_available() {
        return;
    }
    let bin = rust_fixture_debug();
    let probe = ["-f", "rust_fixture::shapes::area"];
    let dir = tempfile::tempdir().unwrap();
    let inline = folded_of(dir.path(), bin, &probe, "fp", &["--inline"], &["20"]);
    assert!(
        inline.contains(
            "rust_fixture::main;rust_fixture::shapes::doubled_area;rust_fixture::shapes::area "
        ),
        "{inline}"
    );
    let plain = folded_of(dir.path(), bin, &probe, "fp", &[], &["20"]);
    assert!(
        plain.contains("rust_fixture::main;rust_fixture::shapes::area "),
        "{plain}"
    );
}

/// A system call has no chain of its own: it sits under the chain of the
/// probed function it ran in.
#[test]
fn kernel_probes_sit_under_their_probed_caller() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let probes = [
        "-f",
        "pf_read16",
        "-k",
        "syscall:pread64",
        "-e",
        "page-faults",
    ];
    let extra = ["--counter", "page-faults"];
    let text = folded_of(
        dir.path(),
        workloads(),
        &probes,
        "fp",
        &extra,
        &["pread", "10"],
    );
    let line = text
        .lines()
        .find(|l| l.contains("pf_read16;syscall:pread64 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with(";main;pf_read16;syscall:pread64 160"),
        "{line}"
    );
}

/// `perfunc report` lists each function's caller chains with their calls
/// and cost.
#[test]
fn report_lists_the_caller_chains() {
    if !probes_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = chains(Chains::NoFramePointers);
    let trace = record_chains(dir.path(), &bin, &["-f", "cc_probed"], "dwarf", &["30"]);
    let report = json_report(&trace);
    let f = function(&report, "cc_probed");
    let callers = f["callers"].as_array().unwrap();
    assert_eq!(callers.len(), 1, "{callers:?}");
    assert_eq!(callers[0]["calls"], 30);
    let stack: Vec<&str> = callers[0]["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        stack[stack.len() - 3..],
        ["main", "chain_a", "chain_b"],
        "{stack:?}"
    );
    assert_eq!(
        callers[0]["sum"]["task-clock"],
        f["counters"]["task-clock"]["sum"]
    );
    let table = run_expect(&["report", "-i", trace.to_str().unwrap()], 0);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("  ← chain_b ← chain_a ← main ← "), "{table}");
}
