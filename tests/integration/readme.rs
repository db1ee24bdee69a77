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
