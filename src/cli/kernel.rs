//! `-k` specs resolved against this machine's kernel: which tracepoints a
//! system call or a tracepoint pair uses, which kernel functions a glob
//! names, and whether kprobes exist; and `perfunc list --kernel`.

use std::io::Write;

use anyhow::{bail, Context};

use crate::kernel::{self, KernelProbe, KernelSymbol};
use crate::probe::tracefs::Tracefs;
use crate::probe::Place;
use crate::trace::ProbeKind;

/// A kernel probe ready for the header and the recording.
#[derive(Debug, Clone)]
pub struct KernelSite {
    /// The name reports show.
    pub name: String,
    /// The kernel's names: the symbol, or `group:event/group:event`.
    pub raw_name: String,
    /// The symbol's address (0 for tracepoints, or where kallsyms hides
    /// addresses).
    pub addr: u64,
    /// How it is probed.
    pub kind: ProbeKind,
    /// Where the events come from.
    pub place: Place,
    /// The key field's name, for a pair matched by a field.
    pub key: Option<String>,
}

impl KernelSite {
    /// The probe-cost class of the site (the calibration profile's key).
    pub fn class(&self) -> &'static str {
        match self.kind {
            ProbeKind::Syscall | ProbeKind::Tracepoints => crate::calibration::TRACEPOINT_CLASS,
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Uprobe => "uprobe",
        }
    }
}

/// Resolves every `-k` spec, in order (a function glob expands to its
/// matches, sorted by name).
pub fn resolve(specs: &[String]) -> anyhow::Result<Vec<KernelSite>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let tracefs = Tracefs::find_or_mount()?;
    readable(&tracefs)?;
    let mut sites = Vec::new();
    let mut symbols: Option<Vec<KernelSymbol>> = None;
    for text in specs {
        let spec: KernelProbe = text.parse()?;
        match &spec {
            KernelProbe::Syscall { name } => {
                sites.push(syscall(&tracefs, name, &spec)?);
            }
            KernelProbe::Tracepoints {
                subsystem,
                begin,
                end,
                key,
            } => {
                let events = (subsystem.as_str(), begin.as_str(), end.as_str());
                sites.push(tracepoints(&tracefs, events, key.as_deref(), &spec)?);
            }
            KernelProbe::Function { pattern } => {
                if symbols.is_none() {
                    symbols = Some(read_kallsyms()?);
                }
                let all = symbols.as_deref().unwrap_or_default();
                sites.extend(functions(&tracefs, all, pattern)?);
            }
        }
    }
    Ok(sites)
}

/// Fails with a permission error when tracefs cannot be read, which would
/// otherwise look like a kernel without the tracepoints.
fn readable(tracefs: &Tracefs) -> anyhow::Result<()> {
    let events = tracefs.root().join("events");
    match std::fs::read_dir(&events) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot read {}: permission denied; kernel probes need root \
             (tracefs is readable by root only), see docs/permissions.md",
            events.display()
        ),
        _ => Ok(()),
    }
}

fn syscall(tracefs: &Tracefs, name: &str, spec: &KernelProbe) -> anyhow::Result<KernelSite> {
    let (enter, exit) = (format!("sys_enter_{name}"), format!("sys_exit_{name}"));
    if !tracefs.has_event("syscalls", &enter) || !tracefs.has_event("syscalls", &exit) {
        let known = syscall_names(tracefs);
        if known.is_empty() {
            bail!(
                "this kernel has no system call tracepoints (syscalls/sys_enter_*; \
                 CONFIG_FTRACE_SYSCALLS is off), so syscall:{name} cannot be probed"
            );
        }
        let near = kernel::closest(name, known.iter().map(String::as_str));
        bail!(
            "no system call `{name}` has tracepoints here (syscalls/{enter}){}; \
             `perfunc list --kernel --syscalls` lists them",
            did_you_mean(&near, "syscall:")
        );
    }
    Ok(KernelSite {
        name: spec.name(),
        raw_name: format!("syscalls:{enter}/syscalls:{exit}"),
        addr: 0,
        kind: ProbeKind::Syscall,
        place: Place::Tracepoints {
            begin: ("syscalls".to_owned(), enter),
            end: ("syscalls".to_owned(), exit),
            key: None,
        },
        key: None,
    })
}

fn tracepoints(
    tracefs: &Tracefs,
    (subsystem, begin, end): (&str, &str, &str),
    key: Option<&str>,
    spec: &KernelProbe,
) -> anyhow::Result<KernelSite> {
    for event in [begin, end] {
        if tracefs.has_event(subsystem, event) {
            continue;
        }
        let known = tracefs.event_names(subsystem);
        if known.is_empty() {
            bail!(
                "there is no tracepoint subsystem `{subsystem}`; \
                 `perfunc list --kernel --tracepoints` lists them"
            );
        }
        let near = kernel::closest(event, known.iter().map(String::as_str));
        bail!(
            "there is no tracepoint {subsystem}:{event}{}; \
             `perfunc list --kernel --tracepoints '{subsystem}:*'` lists them",
            did_you_mean(&near, &format!("{subsystem}:"))
        );
    }
    let fields = key
        .map(|name| -> anyhow::Result<_> {
            let field = |event: &str| -> anyhow::Result<kernel::Field> {
                let format = kernel::parse_format(&tracefs.event_format(subsystem, event)?)?;
                let field = format.require_field(name)?.clone();
                anyhow::ensure!(
                    matches!(field.size, 1 | 2 | 4 | 8),
                    "the field `{name}` of {subsystem}:{event} is {} bytes; \
                     a key must be an integer of 1, 2, 4 or 8 bytes",
                    field.size
                );
                Ok(field)
            };
            Ok((field(begin)?, field(end)?))
        })
        .transpose()?;
    Ok(KernelSite {
        name: spec.name(),
        raw_name: format!("{subsystem}:{begin}/{subsystem}:{end}"),
        addr: 0,
        kind: ProbeKind::Tracepoints,
        place: Place::Tracepoints {
            begin: (subsystem.to_owned(), begin.to_owned()),
            end: (subsystem.to_owned(), end.to_owned()),
            key: fields,
        },
        key: key.map(str::to_owned),
    })
}

fn functions(
    tracefs: &Tracefs,
    symbols: &[KernelSymbol],
    pattern: &str,
) -> anyhow::Result<Vec<KernelSite>> {
    let traceable = std::fs::read_to_string(tracefs.root().join("available_filter_functions"))
        .ok()
        .map(|text| kernel::parse_filter_functions(&text));
    let matched = kernel::match_functions(symbols, pattern, traceable.as_ref())?;
    if !tracefs.has_kprobe_events() {
        let first = matched.first().map_or(pattern, |s| s.name.as_str());
        return Err(crate::probe::ProbeError::NoKprobes {
            function: first.to_owned(),
        }
        .into());
    }
    Ok(matched
        .into_iter()
        .map(|s| KernelSite {
            name: s.name.clone(),
            raw_name: s.name.clone(),
            addr: s.addr,
            kind: ProbeKind::Kprobe,
            place: Place::Kprobe {
                symbol: s.name.clone(),
            },
            key: None,
        })
        .collect())
}

fn read_kallsyms() -> anyhow::Result<Vec<KernelSymbol>> {
    let text =
        std::fs::read_to_string("/proc/kallsyms").context("failed to read /proc/kallsyms")?;
    Ok(kernel::parse_kallsyms(&text))
}

fn syscall_names(tracefs: &Tracefs) -> Vec<String> {
    tracefs
        .event_names("syscalls")
        .into_iter()
        .filter_map(|e| e.strip_prefix("sys_enter_").map(str::to_owned))
        .collect()
}

fn did_you_mean(near: &[&str], prefix: &str) -> String {
    if near.is_empty() {
        return String::new();
    }
    let names: Vec<String> = near.iter().map(|n| format!("{prefix}{n}")).collect();
    format!("; did you mean {}?", names.join(", "))
}

/// `perfunc list --kernel [--tracepoints | --syscalls] [PATTERN...]`.
pub fn list(
    out: &mut dyn Write,
    patterns: &[String],
    tracepoints: bool,
    syscalls: bool,
) -> anyhow::Result<()> {
    let set = glob_set(patterns)?;
    if syscalls || tracepoints {
        let tracefs = Tracefs::find_or_mount()?;
        readable(&tracefs)?;
        let names: Vec<String> = if syscalls {
            syscall_names(&tracefs)
        } else {
            tracefs
                .event_groups()
                .into_iter()
                .flat_map(|group| {
                    tracefs
                        .event_names(&group)
                        .into_iter()
                        .map(move |event| format!("{group}:{event}"))
                })
                .collect()
        };
        for name in names.iter().filter(|n| set.is_match(n.as_str())) {
            writeln!(out, "{}{name}", if syscalls { "syscall:" } else { "" })?;
        }
        return Ok(());
    }
    let symbols = read_kallsyms()?;
    let hidden = kernel::addresses_hidden(&symbols);
    let mut shown = 0;
    for s in symbols
        .iter()
        .filter(|s| matches!(s.kind, 't' | 'T') && set.is_match(&s.name))
    {
        shown += 1;
        match &s.module {
            Some(m) => writeln!(out, "{:#018x} {} [{m}]", s.addr, s.name)?,
            None => writeln!(out, "{:#018x} {}", s.addr, s.name)?,
        }
    }
    if hidden && shown > 0 {
        eprintln!(
            "perfunc: note: /proc/kallsyms shows zero addresses \
             (kernel.kptr_restrict, or not root); names are still probeable"
        );
    }
    let tracefs = Tracefs::find_or_mount()?;
    if !tracefs.has_kprobe_events() {
        eprintln!(
            "perfunc: note: this kernel has no kprobes: kernel functions cannot be \
             probed here; use -k syscall:NAME or -k tp:SUBSYSTEM:BEGIN/END"
        );
    }
    Ok(())
}

fn glob_set(patterns: &[String]) -> anyhow::Result<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    if patterns.is_empty() {
        builder.add(globset::Glob::new("*")?);
    }
    for p in patterns {
        builder.add(globset::Glob::new(p).with_context(|| format!("invalid pattern `{p}`"))?);
    }
    Ok(builder.build()?)
}
