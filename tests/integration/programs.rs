//! Programs nobody here wrote: Debian's sqlite3 with every public
//! function of its library probed, on a SQL script of this file's own,
//! against `perf stat` counting uprobes placed at the same offsets.
//!
//! Host tier only: the VM tier's guests emulate the CPU, where placing and
//! removing the probes of a whole library takes many minutes; the host's
//! run is what this test is about (a real program, its library loaded at
//! run time, hundreds of probes), not the guest kernels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use perfunc::symbols::{resolve, FunctionSpec};

use crate::common::{json_report, perfunc, probes_available, run_expect};

const SQLITE3: &str = "/usr/bin/sqlite3";
const SPEC: &str = "libsqlite3.so.0:sqlite3_*";

/// Whether Debian's sqlite3 and perf are here; under CI=true, where
/// `.ci/run` installs them, their absence fails the test.
fn sqlite3_and_perf() -> bool {
    let perf = Command::new("perf").arg("--version").output();
    let missing = if !Path::new(SQLITE3).exists() {
        "no /usr/bin/sqlite3 (Debian's sqlite3)"
    } else if !perf.is_ok_and(|o| o.status.success()) {
        "no perf (Debian's linux-perf)"
    } else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {missing}: .ci/run installs it");
    }
    eprintln!("skipped: {missing}");
    false
}

/// A script with inserts in a transaction, an index, joins, aggregates,
/// updates and deletes.
fn script(dir: &Path) -> PathBuf {
    let mut sql = String::from(
        "create table item(id integer primary key, name text, price real);\n\
         create table sale(item integer references item(id), qty integer);\n\
         begin;\n",
    );
    for i in 0..1500 {
        sql += &format!(
            "insert into item(name, price) values('item{i}', {});\n",
            i % 97
        );
        sql += &format!("insert into sale values({}, {});\n", i % 300 + 1, i % 7);
    }
    sql += "commit;\ncreate index item_name on item(name);\n";
    for i in 0..100 {
        sql += &format!(
            "select count(*), sum(s.qty * i.price) from sale s join item i on i.id = s.item \
             where i.name > 'item{i}';\n"
        );
    }
    sql += "update item set price = price * 2 where id % 3 = 0;\n\
            delete from sale where qty = 0;\n\
            select name from item order by price desc limit 5;\n";
    let path = dir.join("script.sql");
    std::fs::write(&path, sql).unwrap();
    path
}

/// Uprobe events of this test's own group in tracefs, removed on drop.
struct RefProbes {
    group: String,
    names: Vec<(String, String)>,
}

impl RefProbes {
    const EVENTS: &str = "/sys/kernel/tracing/uprobe_events";

    /// One entry uprobe per function `SPEC` names, at the offset perfunc
    /// places its probes at; functions whose probe point the kernel
    /// refuses are left out, as perfunc leaves them out.
    fn place() -> RefProbes {
        let spec: FunctionSpec = SPEC.parse().unwrap();
        let resolved = resolve(Path::new(SQLITE3), &[spec]).unwrap();
        let mut probes = RefProbes {
            group: format!("perfunc_ref_{}", std::process::id()),
            names: Vec::new(),
        };
        let mut events = std::fs::OpenOptions::new()
            .append(true)
            .open(Self::EVENTS)
            .unwrap();
        for (i, r) in resolved
            .iter()
            .filter(|r| r.function.probe_refusal.is_none())
            .enumerate()
        {
            let event = format!("f{i}");
            let line = format!(
                "p:{}/{event} {}:{:#x}\n",
                probes.group,
                r.binary.path.display(),
                r.function.probe_offset().0
            );
            events.write_all(line.as_bytes()).unwrap();
            probes.names.push((event, r.function.name.clone()));
        }
        probes
    }

    /// `perf stat`'s count of each function's entries while `cmd` runs.
    fn count(&self, cmd: &[&str], dir: &Path) -> Vec<(String, u64)> {
        let out = dir.join("perf-stat.csv");
        let status = Command::new("perf")
            .args(["stat", "-x", ",", "-o", out.to_str().unwrap(), "-e"])
            .arg(format!("{}:*", self.group))
            .arg("--")
            .args(cmd)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "perf stat failed");
        let text = std::fs::read_to_string(out).unwrap();
        let counted: std::collections::HashMap<&str, u64> = text
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                let event = fields.get(2)?.strip_prefix(&format!("{}:", self.group))?;
                Some((event, fields[0].parse().ok()?))
            })
            .collect();
        self.names
            .iter()
            .map(|(event, name)| {
                let n = *counted
                    .get(event.as_str())
                    .unwrap_or_else(|| panic!("perf stat did not count {event}:\n{text}"));
                (name.clone(), n)
            })
            .collect()
    }
}

impl Drop for RefProbes {
    fn drop(&mut self) {
        if let Ok(mut events) = std::fs::OpenOptions::new().append(true).open(Self::EVENTS) {
            for (event, _) in &self.names {
                let _ = events.write_all(format!("-:{}/{event}\n", self.group).as_bytes());
            }
        }
    }
}

/// Every public function of libsqlite3 probed on a real script: each
/// function's calls equal perf stat's count of the same uprobes, nothing is
/// lost, the calls keep the counting invariants (checked by the analysis),
/// and no raw value of a monotonic counter is negative or a call longer
/// than the run.
#[test]
fn sqlite3_with_its_whole_api_probed_counts_as_perf_stat_does() {
    if !probes_available() || !sqlite3_and_perf() {
        return;
    }
    if std::env::var("PERFUNC_VM").as_deref() == Ok("1") {
        eprintln!("skipped in the VM tier: a host-tier test (see the module's comment)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path());
    let cmd = [
        SQLITE3,
        "-init",
        script.to_str().unwrap(),
        ":memory:",
        ".quit",
    ];
    let trace = dir.path().join("sqlite3.perfunc");
    let mut args = vec![
        "record",
        "-q",
        "-e",
        "task-clock,page-faults",
        "-f",
        SPEC,
        "-o",
        trace.to_str().unwrap(),
        "--",
    ];
    args.extend(cmd);
    let out = perfunc().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let expected = {
        let probes = RefProbes::place();
        probes.count(&cmd, dir.path())
    };
    assert!(expected.len() > 200, "{} functions", expected.len());

    let report = json_report(&trace);
    assert_eq!(report["trace"]["lost"], 0, "{}", report["trace"]);
    let calls_of = |name: &str| {
        report["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map_or(0, |f| f["calls"].as_u64().unwrap())
    };
    let differ: Vec<_> = expected
        .iter()
        .filter(|(name, n)| calls_of(name) != *n)
        .map(|(name, n)| format!("{name}: perfunc {} perf stat {n}", calls_of(name)))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    let called = expected.iter().filter(|(_, n)| *n > 0).count();
    assert_eq!(report["functions"].as_array().unwrap().len(), called);
    assert!(called >= 30, "{called} functions called");
    let calls: u64 = expected.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{} functions probed, {called} called, {calls} calls, as perf stat counts",
        expected.len()
    );

    let duration = report["trace"]["duration_ns"].as_f64().unwrap();
    let raw = run_expect(
        &[
            "report",
            "--format",
            "json",
            "--baseline",
            "off",
            "-i",
            trace.to_str().unwrap(),
        ],
        0,
    );
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    for (report, what) in [(&raw, "raw"), (&report, "calibrated")] {
        for f in report["functions"].as_array().unwrap() {
            for (counter, v) in f["counters"].as_object().unwrap() {
                let at = format!("{what} {} {counter}: {v}", f["name"]);
                if what == "raw" {
                    for key in ["sum", "min", "self_sum"] {
                        assert!(v[key].as_f64().unwrap() >= 0.0, "{key} < 0, {at}");
                    }
                }
                if counter == "task-clock" {
                    assert!(v["max"].as_f64().unwrap() <= duration, "max > run, {at}");
                }
            }
        }
    }
}
