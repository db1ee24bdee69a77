//! The README's first example, run as written: the same functions, with
//! as many calls as bpftrace counts for the same command. It is run in the
//! locale it was shown in (`LANG=C.UTF-8`, Debian's default): in the C
//! locale `sort` never calls `qsort`.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::{json_report, perfunc, probes_available};

/// The locale of the README's example.
const LOCALE: &str = "C.UTF-8";

/// The README's first `$ perfunc record ...` line, as arguments (single
/// quotes are its only quoting).
fn readme_record() -> (Vec<String>, BTreeMap<String, u64>) {
    let readme = include_str!("../../README.md");
    let block = readme.split("```").nth(1).expect("a first code block");
    let line = block
        .lines()
        .find_map(|l| l.strip_prefix("$ perfunc record "))
        .expect("a `$ perfunc record` line");
    let args = line
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    // `NAME  (N calls)` rows of the report shown after it.
    let shown = block
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once("  (")?;
            let calls = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect();
    (args, shown)
}

/// bpftrace's count of calls of each libc function in `names` by `cmd`.
fn bpftrace_libc_calls(cmd: &[String], names: &[&String]) -> Option<BTreeMap<String, u64>> {
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let program: String = names
        .iter()
        .map(|n| format!("uprobe:{libc}:{n} /pid == cpid/ {{ @{n} = count(); }} "))
        .collect();
    // A full path: bpftrace refuses a name that PATH resolves twice
    // (/bin is /usr/bin on Debian).
    let path = std::env::var("PATH").unwrap_or_default();
    let program_path = std::env::split_paths(&path)
        .map(|dir| dir.join(&cmd[0]))
        .find(|p| p.is_file())?;
    let line = std::iter::once(program_path.display().to_string())
        .chain(cmd[1..].iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("bpftrace")
        .args(["-q", "-e", &program, "-c", &line])
        .env("LANG", LOCALE)
        .env_remove("LC_ALL")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "bpftrace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|l| {
                let (name, n) = l.strip_prefix('@')?.split_once(": ")?;
                Some((name.to_owned(), n.trim().parse().ok()?))
            })
            .collect(),
    )
}

#[test]
fn the_first_example_records_what_it_shows_with_bpftraces_counts() {
    if !probes_available() {
        return;
    }
    let (args, shown) = readme_record();
    assert!(!shown.is_empty(), "the example shows no function");
    let dir = tempfile::tempdir().unwrap();
    let out = perfunc()
        .arg("record")
        .args(&args)
        .current_dir(dir.path())
        .env("LANG", LOCALE)
        .env_remove("LC_ALL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perfunc record {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = args[args.iter().position(|a| a == "-o").unwrap() + 1].clone();
    let report = json_report(&dir.path().join(trace));
    let recorded: BTreeMap<String, u64> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        shown.keys().collect::<Vec<_>>(),
        "the README's example shows other functions than it records"
    );
    let cmd = &args[args.iter().position(|a| a == "--").unwrap() + 1..];
    let names: Vec<&String> = recorded.keys().collect();
    match bpftrace_libc_calls(cmd, &names) {
        Some(counts) => assert_eq!(recorded, counts, "perfunc's calls vs bpftrace's"),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and bpftrace (which .ci/run installs) does not run")
        }
        None => eprintln!("skipped the bpftrace comparison: no bpftrace"),
    }
}

/// `text` with every run of whitespace one space (README lines wrap).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The bold per-call wall times (µs) of `perfunc record` in the table of
/// docs/performance.md under `heading`: run 1 and run 2.
fn perfunc_per_call(performance: &str, heading: &str) -> (f64, f64) {
    let table = performance.split_once(heading).expect(heading).1;
    let row = table
        .lines()
        .find(|l| l.starts_with("| **perfunc record** |"))
        .expect("a perfunc record row");
    // | tool | wall, N | wall, 1 | wall per call | ...
    let cell = row.split('|').nth(4).unwrap().trim().trim_matches('*');
    let (a, b) = cell.split_once(" / ").expect(cell);
    (a.parse().unwrap(), b.parse().unwrap())
}

/// The Known limits quote what a user pays per probed call, as measured in
/// docs/performance.md (entry and return probes with their records), not
/// estimates per instruction class.
#[test]
fn the_probe_costs_in_the_readme_are_the_measured_per_call_costs() {
    let readme = flat(include_str!("../../README.md"));
    let performance = include_str!("../../docs/performance.md");
    let (push1, push2) = perfunc_per_call(performance, "**`bench_push`**");
    let (step1, step2) = perfunc_per_call(performance, "**`bench_step`**");
    let push = format!("{:.1}", (push1 + push2) / 2.0);
    let step = format!("{}–{}", step1.min(step2).floor(), step1.max(step2).floor());
    let quoted = format!(
        "A probed call costs about {push} µs more where the kernel emulates the \
         function's first instruction (`push`, `nop`), and {step} µs more where \
         it single-steps it"
    );
    assert!(readme.contains(&quoted), "the README should say: {quoted}");
}

/// What the README says `.ci/run` installs is what it installs.
#[test]
fn the_readme_names_what_ci_run_installs() {
    let readme = flat(include_str!("../../README.md"));
    let run = include_str!("../../.ci/run");
    // The host's packages, in order; the VM tier's come from an array.
    let packages: Vec<&str> = run
        .lines()
        .filter_map(|l| l.split_once("apt-get install -y -qq ").map(|(_, p)| p))
        .flat_map(str::split_whitespace)
        .filter(|p| !p.contains('$'))
        .collect();
    assert!(!packages.is_empty(), "an apt-get install line");
    let (last, rest) = packages.split_last().unwrap();
    let said = format!("`.ci/run` installs {} and {last}", rest.join(", "));
    assert!(readme.contains(&said), "the README should say: {said}");
    // How long the first build takes, in minutes.
    let build = readme
        .split_once("The first build takes ")
        .expect("the first build's time")
        .1;
    let build = build.split_once(": ").unwrap().0;
    assert!(build.ends_with(" minutes"), "{build}");
}
