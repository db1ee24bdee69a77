//! Shared helpers: building fixtures, running perfunc, reading traces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use perfunc::trace::{read_all, RecordKind, Trace};

/// The perfunc binary under test.
pub fn perfunc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfunc"))
}

fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run_build(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler for {what}: {e}"));
    assert!(
        out.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `tests/fixtures/SOURCE` into the fixtures directory as `name`
/// with the compiler named by `env` (default `default`) and `flags`.
fn build(env: &str, default: &str, flags: &[&str], source_name: &str, name: &str) -> PathBuf {
    let out = fixtures_dir().join(name);
    let tmp = out.with_extension("tmp");
    run_build(
        Command::new(std::env::var(env).unwrap_or_else(|_| default.into()))
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .arg(source(source_name)),
        source_name,
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The C workloads (tests/fixtures/workloads.c), built once per test run.
pub fn workloads() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let flags = [
            "-O2",
            "-g",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-fcf-protection=none",
            "-pthread",
            // Bind every symbol at start: a lazy PLT binding would add a
            // GOT page fault to the first call of a function.
            "-Wl,-z,now",
        ];
        build("CC", "gcc", &flags, "workloads.c", "workloads")
    })
}

/// Empty functions of every instruction class (tests/fixtures/classes.c).
pub fn classes() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let flags = [
            "-O2",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
            "-fcf-protection=none",
            "-Wl,-z,now",
        ];
        build("CC", "gcc", &flags, "classes.c", "classes")
    })
}

/// The Rust fixture (tests/fixtures/rust_fixture.rs).
pub fn rust_fixture() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let flags = ["-O", "--edition", "2021", "--crate-name", "rust_fixture"];
        build("RUSTC", "rustc", &flags, "rust_fixture.rs", "rust_fixture")
    })
}

/// Whether real probes can run here. Under CI=true, where FACTS.md says
/// uprobes and tracepoints exist, their absence fails the test.
pub fn probes_available() -> bool {
    let root = perfunc::probe::sys::euid() == 0;
    let uprobe_pmu = Path::new("/sys/bus/event_source/devices/uprobe").exists();
    if root && uprobe_pmu {
        return true;
    }
    let why = if root {
        "the kernel has no uprobe PMU (CONFIG_UPROBE_EVENTS)"
    } else {
        "probes need root"
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {why}: these tests must run");
    }
    eprintln!("skipped: {why}");
    false
}

/// The first line a child prints on its piped stdout: the fixture's
/// `slow` mode says `ready PID` once it runs (after perfunc's probes are
/// in place, when perfunc started it).
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
        &mut line,
    )
    .unwrap();
    line
}

/// Runs perfunc and returns its output, asserting nothing.
pub fn run(args: &[&str]) -> Output {
    perfunc().args(args).output().expect("run perfunc")
}

/// Runs perfunc, asserting it exits with `code`.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "perfunc {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Reads a whole trace.
pub fn trace(path: &Path) -> Trace {
    let file = std::fs::File::open(path).unwrap();
    read_all(std::io::BufReader::new(file)).unwrap()
}

/// Entries and returns of the probe named `function`.
pub fn counts(trace: &Trace, function: &str) -> (usize, usize) {
    let id = probe_id(trace, function);
    let of = |kind| {
        trace
            .samples
            .iter()
            .filter(|s| s.probe == id && s.kind == kind)
            .count()
    };
    (of(RecordKind::Entry), of(RecordKind::Return))
}

/// The id of the probe on `function`.
pub fn probe_id(trace: &Trace, function: &str) -> u32 {
    trace
        .header
        .probes
        .iter()
        .find(|p| p.function == function)
        .unwrap_or_else(|| panic!("no probe on {function} in {:?}", trace.header.probes))
        .id
}

/// The uprobe definitions in tracefs that belong to the perfunc process
/// `pid`.
pub fn probes_left_by(pid: u32) -> Vec<String> {
    definitions_left_by(pid, "uprobe_events")
}

/// The definitions in tracefs file `file` (`uprobe_events`,
/// `kprobe_events`) that belong to the perfunc process `pid`.
pub fn definitions_left_by(pid: u32, file: &str) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let root = mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"tracefs")).then(|| PathBuf::from(f[1]))
        })
        .expect("tracefs is mounted after a recording");
    let events = std::fs::read_to_string(root.join(file)).unwrap();
    // perfunc_<PID>_<PID namespace>/
    let group = format!(":perfunc_{pid}_");
    events
        .lines()
        .filter(|l| l.contains(&group))
        .map(str::to_owned)
        .collect()
}

/// Records `functions` on `cmd` into DIR/t.perfunc (quiet, no
/// calibration), asserting success; returns the trace's path.
pub fn record(
    dir: &tempfile::TempDir,
    counters: &str,
    functions: &[&str],
    cmd: &[&str],
) -> std::path::PathBuf {
    let out = dir.path().join("t.perfunc");
    let mut args = vec![
        "record",
        "--calibration",
        "off",
        "-q",
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

/// The call-chain fixture (tests/fixtures/chains.c) in one of its
/// variants, built once per test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chains {
    /// Frame pointers, PIE.
    FramePointers,
    /// Frame pointers, not PIE (fixed addresses).
    NoPie,
    /// Built without frame pointers (CFI only).
    NoFramePointers,
    /// chain_b and cc_probed in libchain.so, frame pointers.
    Shared,
}

/// The binary of a [`Chains`] variant.
pub fn chains(variant: Chains) -> PathBuf {
    static BINS: OnceLock<std::sync::Mutex<std::collections::HashMap<Chains, PathBuf>>> =
        OnceLock::new();
    let bins = BINS.get_or_init(Default::default);
    let mut bins = bins.lock().unwrap_or_else(|e| e.into_inner());
    bins.entry(variant)
        .or_insert_with(|| {
            let fp = ["-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer"];
            let base = [
                "-O2",
                "-g",
                "-fno-optimize-sibling-calls",
                "-fcf-protection=none",
            ];
            let mut flags: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            let name = match variant {
                Chains::FramePointers => "chains-fp",
                Chains::NoPie => "chains-nopie",
                Chains::NoFramePointers => "chains-nofp",
                Chains::Shared => "chains-shared",
            };
            match variant {
                Chains::NoFramePointers => flags.push("-fomit-frame-pointer".into()),
                _ => flags.extend(fp.iter().map(|s| s.to_string())),
            }
            if variant == Chains::NoPie {
                flags.push("-no-pie".into());
            }
            if variant == Chains::Shared {
                let mut lib = flags.clone();
                lib.extend(["-shared".into(), "-fPIC".into()]);
                let lib: Vec<&str> = lib.iter().map(String::as_str).collect();
                let so = build("CC", "gcc", &lib, "chains_lib.c", "libchain.so");
                flags.extend([
                    "-DCHAIN_SHARED".into(),
                    "-Wl,--no-as-needed".into(),
                    so.to_string_lossy().into_owned(),
                    format!("-Wl,-rpath,{}", so.parent().unwrap().display()),
                ]);
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            build("CC", "gcc", &flags, "chains.c", name)
        })
        .clone()
}

/// The Rust fixture built with debug info and frame pointers, for call
/// chains through inlined functions.
pub fn rust_fixture_debug() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let flags = [
            "-O",
            "-g",
            "-C",
            "force-frame-pointers=yes",
            "--edition",
            "2021",
            "--crate-name",
            "rust_fixture",
        ];
        build(
            "RUSTC",
            "rustc",
            &flags,
            "rust_fixture.rs",
            "rust_fixture_debug",
        )
    })
}

/// The JSON report of a trace.
pub fn json_report(trace: &Path) -> serde_json::Value {
    let out = run_expect(
        &["report", "--format", "json", "-i", trace.to_str().unwrap()],
        0,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every test that reads a report checks the invariants of counting.
    assert!(
        report.get("violations").is_none(),
        "calls broke an invariant: {}",
        report["violations"]
    );
    report
}

/// Function `name` of a JSON report.
pub fn function<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}
