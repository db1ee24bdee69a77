//! `perfunc list`: functions of a binary or of the kernel, tracepoints and
//! system calls, or the counters of this machine.

use std::io::{self, BufWriter, Write};

use super::ListArgs;
use crate::events;
use crate::probe::pmu;
use crate::symbols::{self, FunctionSpec};

/// Runs `perfunc list`.
pub fn run(args: &ListArgs) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    if args.events {
        list_events(&mut out)?;
    } else if args.kernel {
        // No binary with --kernel: every word is a pattern.
        let patterns: Vec<String> = args
            .binary
            .iter()
            .map(|b| b.to_string_lossy().into_owned())
            .chain(args.patterns.iter().cloned())
            .collect();
        super::kernel::list(&mut out, &patterns, args.tracepoints, args.syscalls)?;
    } else if let Some(binary) = &args.binary {
        let patterns = if args.patterns.is_empty() {
            vec!["*".to_owned()]
        } else {
            args.patterns.clone()
        };
        let specs: Vec<FunctionSpec> = patterns
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()?;
        let resolved = symbols::resolve(binary, &specs)?;
        writeln!(
            out,
            "{:<18} {:>8} {:<16} {:<15} FUNCTION",
            "ADDRESS", "SIZE", "CLASS", "PROBE"
        )?;
        let mut refused = 0;
        for r in &resolved {
            let f = &r.function;
            let how = if f.probe_refusal.is_some() {
                refused += 1;
                "refused"
            } else if f.probe_class.emulated() {
                "emulated"
            } else {
                "single-stepped"
            };
            let class = if f.probe_skip > 0 {
                format!("{}+{}", f.class.name(), f.probe_class.name())
            } else {
                f.class.name().to_owned()
            };
            write!(
                out,
                "{:#018x} {:>8} {:<16} {:<15} {}",
                f.addr.0, f.size, class, how, f.name
            )?;
            if r.binary.path != *binary {
                write!(out, "  [{}]", r.binary.path.display())?;
            }
            writeln!(out)?;
        }
        if refused > 0 {
            writeln!(
                out,
                "\nrefused: the kernel places no uprobe on the instruction these functions \
                 start with (a lock or ES/CS/SS/DS segment prefix, or int3); `record` skips them"
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn list_events<W: Write>(out: &mut W) -> anyhow::Result<()> {
    let opened: Vec<(events::CounterSpec, Result<(), i32>)> = events::known_counters()
        .into_iter()
        .map(|spec| {
            let result = pmu::try_open(&spec);
            (spec, result)
        })
        .collect();
    write_events(&opened, pmu::explain, out)?;
    out.flush()?;
    Ok(())
}

/// The counters table: first why counters do not open, each distinct
/// reason once (`explain`'s message without the counter it is about, whose
/// name reads `<counter>` in it), then every counter with its status, the
/// failed ones pointing at their reason.
fn write_events<W: Write>(
    opened: &[(events::CounterSpec, Result<(), i32>)],
    explain: impl Fn(&events::CounterSpec, i32) -> String,
    out: &mut W,
) -> io::Result<()> {
    let mut reasons: Vec<String> = Vec::new();
    let mut statuses = Vec::with_capacity(opened.len());
    for (spec, result) in opened {
        let status = match *result {
            Ok(()) => "ok".to_owned(),
            Err(errno) => {
                let message = explain(spec, errno);
                // "cannot open counter NAME (ENCODING): REASON"
                let reason = message
                    .split_once("): ")
                    .map_or(message.as_str(), |(_, reason)| reason)
                    .replace(spec.name.as_str(), "<counter>");
                let n = match reasons.iter().position(|r| *r == reason) {
                    Some(i) => i + 1,
                    None => {
                        if reasons.is_empty() {
                            writeln!(out, "Counters that do not open here, and why:")?;
                        }
                        writeln!(out, "  [{}] {reason}", reasons.len() + 1)?;
                        reasons.push(reason);
                        reasons.len()
                    }
                };
                let errno = events::errno_name(errno)
                    .map_or_else(|| format!("errno {errno}"), str::to_owned);
                format!("unavailable: {errno} [{n}]")
            }
        };
        statuses.push(status);
    }
    if !reasons.is_empty() {
        writeln!(out)?;
    }
    let width = |header: &str, column: &dyn Fn(&events::CounterSpec) -> &str| {
        opened
            .iter()
            .map(|(spec, _)| column(spec).len())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let name_w = width("COUNTER", &|s| s.name.as_str());
    let kind_w = width("KIND", &|s| s.kind.as_str());
    let unit_w = width("UNIT", &|s| s.unit.as_str());
    writeln!(
        out,
        "{:<name_w$}  {:<kind_w$}  {:<unit_w$}  STATUS",
        "COUNTER", "KIND", "UNIT"
    )?;
    for ((spec, _), status) in opened.iter().zip(&statuses) {
        writeln!(
            out,
            "{:<name_w$}  {:<kind_w$}  {:<unit_w$}  {status}",
            spec.name,
            spec.kind.as_str(),
            spec.unit.as_str()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_first_once_each_and_the_columns_align() {
        let known = events::known_counters();
        let pick = |name: &str| known.iter().find(|s| s.name == name).unwrap().clone();
        let opened = [
            (pick("cpu-cycles"), Err(libc::ENOENT)),
            (pick("LLC-load-misses"), Err(libc::ENOENT)),
            (pick("instructions"), Err(libc::EACCES)),
            (pick("branch-misses"), Err(libc::EACCES)),
            (pick("task-clock"), Ok(())),
            (pick("page-faults"), Ok(())),
        ];
        let explain = |spec: &events::CounterSpec, errno: i32| {
            let cause = if errno == libc::ENOENT {
                "no PMU".to_owned()
            } else {
                format!("paranoid: count {}:u", spec.name)
            };
            format!("cannot open counter {} (x, y): {cause}", spec.name)
        };
        let mut out = Vec::new();
        write_events(&opened, explain, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Counters that do not open here, and why:\n\
             \x20 [1] no PMU\n\
             \x20 [2] paranoid: count <counter>:u\n\
             \n\
             COUNTER          KIND      UNIT         STATUS\n\
             cpu-cycles       hardware  count        unavailable: ENOENT [1]\n\
             LLC-load-misses  hw-cache  count        unavailable: ENOENT [1]\n\
             instructions     hardware  count        unavailable: EACCES [2]\n\
             branch-misses    hardware  count        unavailable: EACCES [2]\n\
             task-clock       software  nanoseconds  ok\n\
             page-faults      software  count        ok\n"
        );
    }
}
