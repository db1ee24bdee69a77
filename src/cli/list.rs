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
        for r in &resolved {
            let f = &r.function;
            let how = if f.probe_class.emulated() {
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
    }
    out.flush()?;
    Ok(())
}

fn list_events<W: Write>(out: &mut W) -> anyhow::Result<()> {
    writeln!(out, "{:<28} {:<9} {:<10} STATUS", "COUNTER", "KIND", "UNIT")?;
    let mut failures = Vec::new();
    for spec in events::known_counters() {
        let status = match pmu::try_open(&spec) {
            Ok(()) => "ok".to_owned(),
            Err(errno) => {
                let name = std::io::Error::from_raw_os_error(errno);
                failures.push((spec.clone(), errno));
                format!("unavailable: {name}")
            }
        };
        writeln!(
            out,
            "{:<28} {:<9} {:<10} {status}",
            spec.name,
            spec.kind.as_str(),
            spec.unit.as_str()
        )?;
    }
    // One explanation per distinct cause, for the first counter it hit.
    let mut explained: Vec<(events::CounterKind, i32)> = Vec::new();
    for (spec, errno) in failures {
        if explained.contains(&(spec.kind, errno)) {
            continue;
        }
        explained.push((spec.kind, errno));
        writeln!(out, "\n{}", pmu::explain(&spec, errno))?;
    }
    Ok(())
}
