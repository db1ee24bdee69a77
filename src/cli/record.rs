//! `perfunc record`.

use std::ffi::OsString;
use std::fs::File;
use std::io::BufWriter;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use super::calibrate::{profile_for_recording, CalibrationMode};
use super::units::human_bytes;
use super::RecordArgs;
use crate::events::{self, CounterSpec, DEFAULT_FALLBACK, DEFAULT_HARDWARE};
use crate::probe::pmu::{self, SysfsPmus};
use crate::probe::sys::signal_name;
use crate::probe::{self, RecordOptions, RecordResult, RecordTarget, UprobeTarget};
use crate::symbols::{self, FileOffset, Function, FunctionSpec, InsnClass, Resolved};
use crate::trace::{ProbeKind, ProbeSite, Target, TraceHeader, TraceWriter};

/// Runs `perfunc record`; returns the exit status.
pub fn run(args: &RecordArgs) -> anyhow::Result<i32> {
    let target = match (args.pid, args.command.is_empty()) {
        (Some(pid), _) => RecordTarget::Pid(pid),
        (None, false) => RecordTarget::Command(args.command.clone()),
        (None, true) => bail!("nothing to record: give a command after `--`, or -p PID"),
    };
    let plan = Plan {
        counters: select_counters(&args.events)?,
        functions: args.functions.clone(),
        target,
        output: args.output.clone(),
        buffer_bytes: args.buffer_size,
        duration: args.duration,
        quiet: args.quiet,
        calibration: args.calibration.clone(),
        skip_endbr64: !args.no_endbr64_skip,
    };
    let outcome = plan.record()?;
    Ok(outcome.report(&plan))
}

/// A recording fully decided, flags resolved.
pub struct Plan {
    /// Counters, in trace order.
    pub counters: Vec<CounterSpec>,
    /// `-f` patterns.
    pub functions: Vec<String>,
    /// What to record.
    pub target: RecordTarget,
    /// The trace file.
    pub output: PathBuf,
    /// Ring buffer bytes per CPU.
    pub buffer_bytes: usize,
    /// Optional time limit.
    pub duration: Option<std::time::Duration>,
    /// No progress and no summary.
    pub quiet: bool,
    /// Which probe-cost profile goes into the trace.
    pub calibration: CalibrationMode,
    /// Probe past a leading `endbr64` where that is safe.
    pub skip_endbr64: bool,
}

/// What a finished recording left.
pub struct Outcome {
    /// The probe layer's result.
    pub result: RecordResult,
    /// Trace bytes written.
    pub bytes: u64,
}

impl Plan {
    /// Resolves the functions, writes the trace header, records, and writes
    /// the footer.
    pub fn record(&self) -> anyhow::Result<Outcome> {
        let exe = self.executable()?;
        let specs: Vec<FunctionSpec> = self
            .functions
            .iter()
            .map(|f| self.function_spec(f))
            .collect::<anyhow::Result<_>>()?;
        let resolved = symbols::resolve(&exe, &specs)?;
        let calibration = profile_for_recording(&self.calibration, &self.counters, self.quiet)?;
        let mut header = self.header(&resolved);
        header.calibration = calibration
            .map(|p| serde_json::from_str(&p.to_json()))
            .transpose()?;
        let probes = resolved
            .iter()
            .enumerate()
            .map(|(i, r)| UprobeTarget {
                probe_id: i as u32,
                function: r.function.name.clone(),
                binary: r.binary.path.clone(),
                offset: self.placement(&r.function).0 .0,
            })
            .collect();
        check_unchanged(&resolved)?;

        let file = File::create(&self.output)
            .with_context(|| format!("failed to create {}", self.output.display()))?;
        let mut writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &header)?;
        let opts = RecordOptions {
            counters: self.counters.clone(),
            probes,
            target: self.target.clone(),
            buffer_bytes: self.buffer_bytes,
            duration: self.duration,
            progress: !self.quiet,
        };
        let result = probe::record(&opts, &mut writer);
        // Whatever happened, keep what was recorded readable.
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                let _ = writer.flush();
                return Err(e.into());
            }
        };
        let bytes = writer.bytes_written();
        writer
            .finish(&result.footer)
            .with_context(|| format!("failed to finish {}", self.output.display()))?;
        Ok(Outcome { result, bytes })
    }

    /// Where the probes of `f` go, and the class of the instruction there.
    fn placement(&self, f: &Function) -> (FileOffset, InsnClass) {
        if self.skip_endbr64 {
            (f.probe_offset(), f.probe_class)
        } else {
            (f.offset, f.class)
        }
    }

    /// The ELF file whose functions `-f` names.
    fn executable(&self) -> anyhow::Result<PathBuf> {
        match &self.target {
            RecordTarget::Pid(pid) => std::fs::read_link(format!("/proc/{pid}/exe"))
                .with_context(|| format!("no process with pid {pid} (or no access to it)")),
            RecordTarget::Command(argv) => find_program(&argv[0]),
        }
    }

    /// For `-p`, a `LIB:PATTERN` names the library the process has mapped.
    fn function_spec(&self, text: &str) -> anyhow::Result<FunctionSpec> {
        let mut spec: FunctionSpec = text.parse()?;
        if let (RecordTarget::Pid(pid), Some(lib)) = (&self.target, &spec.library) {
            if let Some(path) = mapped_library(*pid, lib) {
                spec.library = Some(path.to_string_lossy().into_owned());
            }
        }
        Ok(spec)
    }

    fn header(&self, resolved: &[Resolved]) -> TraceHeader {
        TraceHeader {
            perfunc_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            command_line: std::env::args().collect(),
            target: match &self.target {
                RecordTarget::Command(argv) => Target::Command {
                    argv: argv
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect(),
                },
                RecordTarget::Pid(pid) => Target::Attach { pid: *pid as u32 },
            },
            kernel_release: pmu::kernel_release(),
            cpu_model: pmu::cpu_model(),
            ncpus: probe::sys::online_cpus().len() as u32,
            clock: "CLOCK_MONOTONIC".to_owned(),
            counters: self.counters.clone(),
            probes: resolved
                .iter()
                .enumerate()
                .map(|(i, r)| ProbeSite {
                    id: i as u32,
                    function: r.function.name.clone(),
                    raw_name: r.function.raw_name.clone(),
                    binary: r.binary.path.to_string_lossy().into_owned(),
                    build_id: r.binary.build_id_hex(),
                    addr: r.function.addr.0,
                    offset: self.placement(&r.function).0 .0,
                    size: r.function.size,
                    class: self.placement(&r.function).1.name().to_owned(),
                    kind: ProbeKind::Uprobe,
                })
                .collect(),
            calibration: None,
        }
    }
}

impl Outcome {
    /// Prints the summary and returns perfunc's exit status: the target's
    /// own status when perfunc started it.
    pub fn report(&self, plan: &Plan) -> i32 {
        let footer = &self.result.footer;
        if !plan.quiet {
            eprintln!(
                "perfunc: {} records ({} lost) from {} thread{} in {:.2} s; wrote {} ({})",
                footer.samples,
                footer.lost,
                self.result.threads,
                if self.result.threads == 1 { "" } else { "s" },
                footer.duration_ns as f64 / 1e9,
                plan.output.display(),
                human_bytes(self.bytes),
            );
        }
        if footer.lost > 0 {
            eprintln!(
                "perfunc: warning: the kernel dropped {} records because a ring buffer was full; \
                 record again with a larger --buffer-size (now {})",
                footer.lost,
                human_bytes(plan.buffer_bytes as u64)
            );
        }
        if let Some(signal) = self.result.stopped_by {
            return 128 + signal;
        }
        match footer.exit {
            Some(crate::trace::ExitStatus {
                code: Some(code), ..
            }) => code,
            Some(crate::trace::ExitStatus {
                signal: Some(signal),
                core_dumped,
                ..
            }) => {
                eprintln!(
                    "perfunc: the target was killed by signal {signal} ({}){}",
                    signal_name(signal),
                    if core_dumped { ", core dumped" } else { "" }
                );
                128 + signal
            }
            _ => 0,
        }
    }
}

/// Parses `-e` lists, or picks the default counters for this machine.
pub fn select_counters(lists: &[String]) -> anyhow::Result<Vec<CounterSpec>> {
    let pmus = SysfsPmus::default();
    if !lists.is_empty() {
        let mut counters: Vec<CounterSpec> = Vec::new();
        for list in lists {
            for spec in events::parse_counter_list(list, &pmus)? {
                if counters.iter().any(|c| c.name == spec.name) {
                    bail!("counter {} is given twice", spec.name);
                }
                counters.push(spec);
            }
        }
        return Ok(counters);
    }
    let hardware = parse_names(&DEFAULT_HARDWARE)?;
    match hardware
        .iter()
        .find_map(|c| pmu::try_open(c).err().map(|e| (c, e)))
    {
        None => Ok(hardware),
        Some((failed, errno)) => {
            eprintln!(
                "perfunc: warning: {} cannot be counted here ({}); counting {} instead",
                failed.name,
                errno_name(errno),
                DEFAULT_FALLBACK.join(",")
            );
            parse_names(&DEFAULT_FALLBACK)
        }
    }
}

fn parse_names(names: &[&str]) -> anyhow::Result<Vec<CounterSpec>> {
    let pmus = events::NoPmus;
    Ok(names
        .iter()
        .map(|n| events::parse_counter(n, &pmus))
        .collect::<Result<_, _>>()?)
}

fn errno_name(errno: i32) -> String {
    let cause = match errno {
        libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP => ": no hardware PMU, as in most VMs",
        libc::EACCES | libc::EPERM => ": not permitted",
        _ => "",
    };
    format!("{}{cause}", std::io::Error::from_raw_os_error(errno))
}

/// Finds a command as execvp would: a name with a slash is a path, other
/// names are searched in PATH.
fn find_program(program: &OsString) -> anyhow::Result<PathBuf> {
    let path = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return path
            .canonicalize()
            .with_context(|| format!("cannot find {}", path.display()));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&dirs)
        .map(|d| d.join(path))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
        .with_context(|| format!("`{}` is not in PATH", path.display()))
}

/// The path of a library mapped by `pid` whose file name starts with `lib`.
fn mapped_library(pid: i32, lib: &str) -> Option<PathBuf> {
    if lib.contains('/') {
        return None;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(lib))
        })
        .map(Path::to_owned)
}

/// Refuses to place probes in a binary that changed since it was resolved:
/// the offsets would land in other code.
fn check_unchanged(resolved: &[Resolved]) -> Result<(), probe::ProbeError> {
    for r in resolved {
        let now = symbols::read_build_id(&r.binary.path).ok().flatten();
        if now != r.binary.build_id {
            let hex = |b: &Option<Vec<u8>>| {
                b.as_ref().map_or("none".to_owned(), |b| {
                    b.iter().map(|x| format!("{x:02x}")).collect()
                })
            };
            return Err(probe::ProbeError::BinaryChanged {
                path: r.binary.path.clone(),
                was: hex(&r.binary.build_id),
                now: hex(&now),
            });
        }
    }
    Ok(())
}
