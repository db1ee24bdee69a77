//! `perfunc record`.

use std::ffi::OsString;
use std::io::BufWriter;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use super::calibrate::{in_run_burst, profile_for_recording, CalibrationMode};
use super::kernel::{self, KernelSite};
use super::units::human_bytes;
use super::RecordArgs;
use crate::events::{self, CounterSpec};
use crate::output::AtomicOutput;
use crate::probe::pmu::{self, SysfsPmus};
use crate::probe::sys::signal_name;
use crate::probe::{
    self, Callchain, Follow, Place, ProbeTarget, RecordOptions, RecordResult, RecordTarget,
};
use crate::symbols::{self, FileOffset, Function, FunctionSpec, InsnClass, Resolved};
use crate::trace::{ProbeKind, ProbeSite, Target, TraceHeader, TraceWriter};

/// Runs `perfunc record`; returns the exit status.
pub fn run(args: &RecordArgs) -> anyhow::Result<i32> {
    let target = match (args.pid, args.command.is_empty()) {
        _ if args.all_cpus => {
            RecordTarget::SystemWide((!args.command.is_empty()).then(|| args.command.clone()))
        }
        (Some(pid), _) => RecordTarget::Pid(pid),
        (None, false) => RecordTarget::Command(args.command.clone()),
        (None, true) => bail!("nothing to record: give a command after `--`, -p PID, or -a"),
    };
    let (mut counters, counter_decision) = select_counters(&args.events)?;
    if args.all_cpus {
        add_context_switches(&mut counters, args.quiet)?;
    }
    let plan = Plan {
        counters,
        counter_decision,
        functions: args.functions.clone(),
        kernel: args.kernel.clone(),
        target,
        output: args.output.clone(),
        buffer_bytes: args.buffer_size,
        duration: args.duration,
        repeat: args.repeat,
        quiet: args.quiet,
        calibration: args.calibration.clone(),
        skip_endbr64: !args.no_endbr64_skip,
        callchain: match args.callchain {
            None => Callchain::None,
            Some(super::CallchainMode::Fp) => Callchain::FramePointer,
            Some(super::CallchainMode::Dwarf) => Callchain::Dwarf {
                stack_bytes: args.stack_size,
            },
        },
        follow: match args.follow {
            super::FollowMode::Auto => Follow::Auto,
            super::FollowMode::Inherit => Follow::Inherit,
            super::FollowMode::PerThread => Follow::PerThread,
        },
    };
    let outcome = match plan.record() {
        Ok(outcome) => outcome,
        Err(e) => {
            // Ctrl-C during set-up: said plainly, with the shell's status.
            if let Some(probe::ProbeError::Interrupted(signal)) =
                e.downcast_ref::<probe::ProbeError>()
            {
                eprintln!("perfunc: {e}");
                return Ok(128 + signal);
            }
            return Err(e);
        }
    };
    Ok(outcome.report(&plan))
}

/// A recording fully decided, flags resolved.
pub struct Plan {
    /// Counters, in trace order.
    pub counters: Vec<CounterSpec>,
    /// How the default counters were chosen; `None` for `-e`.
    pub counter_decision: Option<events::CounterDecision>,
    /// `-f` patterns.
    pub functions: Vec<String>,
    /// `-k` specs.
    pub kernel: Vec<String>,
    /// What to record.
    pub target: RecordTarget,
    /// The trace file.
    pub output: PathBuf,
    /// Ring buffer bytes per CPU.
    pub buffer_bytes: usize,
    /// Optional time limit.
    pub duration: Option<std::time::Duration>,
    /// Runs of the command (`--repeat`).
    pub repeat: u32,
    /// No progress and no summary.
    pub quiet: bool,
    /// Which probe-cost profile goes into the trace.
    pub calibration: CalibrationMode,
    /// Probe past a leading `endbr64` where that is safe.
    pub skip_endbr64: bool,
    /// Caller chains to record.
    pub callchain: Callchain,
    /// How the target's threads are followed.
    pub follow: Follow,
}

/// What a finished recording left.
pub struct Outcome {
    /// The probe layer's result.
    pub result: RecordResult,
    /// Trace bytes written.
    pub bytes: u64,
    /// Every probe, by id: its binary and function.
    pub probes: Vec<(String, String)>,
}

impl Plan {
    /// Resolves the functions, writes the trace header, records, and writes
    /// the footer.
    pub fn record(&self) -> anyhow::Result<Outcome> {
        let resolved = self.resolve_functions()?;
        let kernel_sites = kernel::resolve(&self.kernel)?;
        let (calibration, burst) = self.calibration(&resolved, &kernel_sites)?;
        let follow = probe::resolve_follow(self.follow, &self.target)?;
        let mut header = self.header(&resolved, &kernel_sites);
        header.follow = Some(follow.name().to_owned());
        header.calibration = calibration
            .map(|p| serde_json::from_str(&p.to_json()))
            .transpose()?;
        let user = resolved.iter().map(|r| {
            (
                r.function.name.clone(),
                Place::Uprobe {
                    binary: r.binary.path.clone(),
                    offset: self.placement(&r.function).0 .0,
                },
            )
        });
        let kernel = kernel_sites
            .iter()
            .map(|k| (k.name.clone(), k.place.clone()));
        let probes = user
            .chain(kernel)
            .enumerate()
            .map(|(i, (function, place))| ProbeTarget {
                probe_id: i as u32,
                function,
                place,
            })
            .collect();
        check_unchanged(&resolved)?;

        // The trace goes to a new file beside the output, renamed into
        // place once there is something to keep: a recording that fails
        // leaves the file already there as it was.
        let out = AtomicOutput::create(&self.output)?;
        let opts = RecordOptions {
            counters: self.counters.clone(),
            probes,
            target: self.target.clone(),
            buffer_bytes: self.buffer_bytes,
            duration: self.duration,
            progress: !self.quiet,
            callchain: self.callchain,
            follow,
            repeat: self.repeat,
            burst,
        };
        // The header is written with the first records: an in-run
        // calibration puts its profile in it once the command has started.
        let mut writer =
            TraceWriter::deferred(BufWriter::with_capacity(1 << 20, out.file()), &header)
                .with_context(|| format!("failed to write {}", out.temp_path().display()))?;
        let recorded = probe::record(&opts, &mut writer);
        let (bytes, samples) = (writer.bytes_written(), writer.samples_written());
        let mut written = writer.chunk_bytes_written() > 0;
        let failed = match recorded {
            Ok(result) => match writer.finish(&result.footer).map(drop) {
                Ok(()) => {
                    out.commit()
                        .with_context(|| format!("failed to write {}", self.output.display()))?;
                    let probes = header
                        .probes
                        .iter()
                        .map(|p| (p.binary.clone(), p.function.clone()))
                        .collect();
                    return Ok(Outcome {
                        result,
                        bytes,
                        probes,
                    });
                }
                Err(e) => anyhow::Error::from(e)
                    .context(format!("failed to finish {}", self.output.display())),
            },
            Err(e) => {
                let _ = writer.flush();
                written = writer.chunk_bytes_written() > 0;
                drop(writer);
                let writing = matches!(e, probe::ProbeError::Trace(_));
                let e = anyhow::Error::from(e);
                if writing {
                    e.context(format!("failed to write {}", self.output.display()))
                } else {
                    e
                }
            }
        };
        // Keep what was recorded readable; a recording that failed before
        // its first record leaves the old file as it was and nothing else.
        if samples > 0 && written {
            match out.commit() {
                Ok(()) => eprintln!(
                    "perfunc: the recording failed after {samples} records; what was written \
                     is in {} (read it with `perfunc report --salvage`)",
                    self.output.display()
                ),
                Err(e) => eprintln!("perfunc: {e}"),
            }
        }
        Err(failed)
    }

    /// The profile the trace header starts with, and the burst that
    /// measures the probes' cost in the command's process when that is
    /// how this recording is calibrated (`--calibration auto` with a
    /// command, and functions to probe): then the profile is the cached
    /// one only when kernel probes need its classes, and the burst's
    /// measurement replaces it in the header.
    fn calibration(
        &self,
        resolved: &[Resolved],
        kernel_sites: &[KernelSite],
    ) -> anyhow::Result<(Option<perfunc_calibrate::Profile>, Option<probe::Burst>)> {
        let in_run = self.calibration == CalibrationMode::Auto
            && matches!(self.target, RecordTarget::Command(_))
            && !resolved.is_empty();
        if in_run {
            let mut classes: Vec<&str> = resolved
                .iter()
                .map(|r| self.placement(&r.function).1.name())
                .collect();
            classes.sort_unstable();
            classes.dedup();
            // Kernel probes' classes cannot be measured in the run.
            let cached = if kernel_sites.is_empty() {
                None
            } else {
                profile_for_recording(&CalibrationMode::Cached, &self.counters, self.quiet)?
            };
            if let Some(burst) = in_run_burst(&self.counters, &classes, cached.clone())? {
                return Ok((cached, Some(burst)));
            }
        }
        Ok((
            profile_for_recording(&self.calibration, &self.counters, self.quiet)?,
            None,
        ))
    }

    /// Where the probes of `f` go, and the class of the instruction there.
    fn placement(&self, f: &Function) -> (FileOffset, InsnClass) {
        if self.skip_endbr64 {
            (f.probe_offset(), f.probe_class)
        } else {
            (f.offset, f.class)
        }
    }

    /// Why the kernel refuses a uprobe where `f`'s probes would go.
    fn refusal(&self, f: &Function) -> Option<&'static str> {
        if self.skip_endbr64 {
            f.probe_refusal
        } else {
            f.refusal
        }
    }

    /// Leaves out the functions whose probe point the kernel refuses,
    /// saying which; fails, before any probe is placed, when one was named
    /// without a glob or when none is left.
    fn drop_refused(
        &self,
        resolved: Vec<Resolved>,
        specs: &[FunctionSpec],
    ) -> anyhow::Result<Vec<Resolved>> {
        let (refused, kept): (Vec<Resolved>, Vec<Resolved>) = resolved
            .into_iter()
            .partition(|r| self.refusal(&r.function).is_some());
        let why = |r: &Resolved| {
            format!(
                "{} ({})",
                r.function.name,
                self.refusal(&r.function).unwrap_or_default()
            )
        };
        let named = refused.iter().find(|r| {
            specs.iter().any(|s| {
                !s.pattern.contains(['*', '?', '['])
                    && [&r.function.name, &r.function.raw_name].contains(&&s.pattern)
            })
        });
        let nothing_left = kept.is_empty() && self.kernel.is_empty();
        if let Some(r) = named.or(refused.first().filter(|_| nothing_left)) {
            anyhow::bail!(
                "the kernel refuses a uprobe on {} in {}: the instruction its probes go on has {} \
                 (opening its probe would fail with error 524, ENOTSUPP); no probe was placed",
                r.function.name,
                r.binary.path.display(),
                self.refusal(&r.function).unwrap_or_default()
            );
        }
        if !refused.is_empty() {
            let listed: Vec<String> = refused.iter().take(5).map(why).collect();
            eprintln!(
                "perfunc: skipping {} function{} the kernel refuses to probe, for the prefix or \
                 instruction where the probes go: {}{}",
                refused.len(),
                if refused.len() == 1 { "" } else { "s" },
                listed.join(", "),
                match refused.len().saturating_sub(5) {
                    0 => String::new(),
                    more => format!(" and {more} more"),
                }
            );
        }
        Ok(kept)
    }

    /// The functions `-f` names (none without `-f`).
    fn resolve_functions(&self) -> anyhow::Result<Vec<Resolved>> {
        if self.functions.is_empty() {
            return Ok(Vec::new());
        }
        let exe = self.executable()?;
        let specs: Vec<FunctionSpec> = self
            .functions
            .iter()
            .map(|f| self.function_spec(f))
            .collect::<anyhow::Result<_>>()?;
        let resolved = symbols::resolve(&exe, &specs)?;
        self.drop_refused(resolved, &specs)
    }

    /// The ELF file whose functions `-f` names.
    fn executable(&self) -> anyhow::Result<PathBuf> {
        match &self.target {
            RecordTarget::Pid(pid) => std::fs::read_link(format!("/proc/{pid}/exe"))
                .with_context(|| format!("no process with pid {pid} (or no access to it)")),
            RecordTarget::Command(argv) | RecordTarget::SystemWide(Some(argv)) => {
                find_program(&argv[0])
            }
            RecordTarget::SystemWide(None) => bail!(
                "-f needs the program whose functions to probe: \
                 give a command after `--` (with -a, it runs while perfunc records)"
            ),
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

    fn header(&self, resolved: &[Resolved], kernel_sites: &[KernelSite]) -> TraceHeader {
        let argv = |argv: &[OsString]| -> Vec<String> {
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let user = resolved.iter().map(|r| ProbeSite {
            id: 0,
            function: r.function.name.clone(),
            raw_name: r.function.raw_name.clone(),
            binary: r.binary.path.to_string_lossy().into_owned(),
            build_id: r.binary.build_id_hex(),
            addr: r.function.addr.0,
            offset: self.placement(&r.function).0 .0,
            size: r.function.size,
            class: self.placement(&r.function).1.name().to_owned(),
            kind: ProbeKind::Uprobe,
            key: None,
        });
        let kernel = kernel_sites.iter().map(|k| ProbeSite {
            id: 0,
            function: k.name.clone(),
            raw_name: k.raw_name.clone(),
            binary: KERNEL_BINARY.to_owned(),
            build_id: None,
            addr: k.addr,
            offset: 0,
            size: 0,
            class: k.class().to_owned(),
            kind: k.kind,
            key: k.key.clone(),
        });
        TraceHeader {
            perfunc_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            command_line: std::env::args().collect(),
            target: match &self.target {
                RecordTarget::Command(a) => Target::Command { argv: argv(a) },
                RecordTarget::Pid(pid) => Target::Attach { pid: *pid as u32 },
                RecordTarget::SystemWide(a) => Target::SystemWide {
                    argv: a.as_deref().map(argv).unwrap_or_default(),
                },
            },
            kernel_release: pmu::kernel_release(),
            cpu_model: pmu::cpu_model(),
            ncpus: probe::sys::online_cpus().len() as u32,
            clock: "CLOCK_MONOTONIC".to_owned(),
            counters: self.counters.clone(),
            probes: user
                .chain(kernel)
                .enumerate()
                .map(|(i, site)| ProbeSite {
                    id: i as u32,
                    ..site
                })
                .collect(),
            calibration: None,
            key_column: kernel_sites.iter().any(|k| k.key.is_some()),
            callchains: self.callchain != Callchain::None,
            follow: None,
            counter_decision: self.counter_decision.clone(),
        }
    }
}

impl Outcome {
    /// Prints the summary and returns perfunc's exit status: the target's
    /// own status when perfunc started it.
    pub fn report(&self, plan: &Plan) -> i32 {
        let footer = &self.result.footer;
        for warning in silent_binaries(&self.probes, &self.result.per_probe) {
            eprintln!("perfunc: warning: {warning}");
        }
        if !plan.quiet {
            let runs = match self.result.runs {
                1 => String::new(),
                n => format!(" in {n} runs"),
            };
            eprintln!(
                "perfunc: {} records ({} lost) from {} thread{}{runs} in {:.2} s; wrote {} ({})",
                footer.samples,
                footer.lost,
                self.result.threads,
                if self.result.threads == 1 { "" } else { "s" },
                footer.duration_ns as f64 / 1e9,
                plan.output.display(),
                human_bytes(self.bytes),
            );
        }
        if self.result.kernel_missed > 0 {
            eprintln!(
                "perfunc: warning: the kernel missed {} kernel-function probe hits (a return \
                 is missed when {} calls of one function are open at once, a hit inside \
                 another probe's handler is skipped); the report counts them as lost",
                self.result.kernel_missed,
                crate::kernel::KRETPROBE_MAXACTIVE
            );
        }
        if footer.lost > self.result.kernel_missed {
            eprintln!(
                "perfunc: warning: {} probe hits were counted by the kernel but not recorded: \
                 a ring buffer was full (record again with a larger --buffer-size, now {}), \
                 or they fired while their CPU was writing another record (interrupts and \
                 softirqs in a system-wide recording); the report counts them as lost",
                footer.lost - self.result.kernel_missed,
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

/// One warning per binary none of whose probes fired: a library the target
/// never loaded, or functions it never called.
fn silent_binaries(probes: &[(String, String)], per_probe: &[u64]) -> Vec<String> {
    let mut by_binary: Vec<(&str, Vec<&str>, bool)> = Vec::new();
    for (id, (binary, function)) in probes.iter().enumerate() {
        let fired = per_probe.get(id).is_some_and(|&n| n > 0);
        match by_binary.iter_mut().find(|(b, ..)| b == binary) {
            Some((_, functions, any)) => {
                functions.push(function);
                *any |= fired;
            }
            None => by_binary.push((binary, vec![function], fired)),
        }
    }
    by_binary
        .into_iter()
        .filter(|(.., fired)| !fired)
        .map(|(binary, functions, _)| {
            let n = functions.len();
            let mut names = functions[..n.min(5)].join(", ");
            if n > 5 {
                names += &format!(" and {} more", n - 5);
            }
            let them = if n == 1 { "it" } else { "them" };
            if binary == KERNEL_BINARY {
                format!("no kernel probe fired ({names}): the target never called {them}")
            } else {
                format!(
                    "no probe fired in {binary} ({names}): the target never loaded it, \
                     or never called {them}"
                )
            }
        })
        .collect()
}

/// The `binary` of kernel probes in the trace header.
pub const KERNEL_BINARY: &str = "[kernel]";

/// In system-wide mode the counters are per CPU: perfunc needs the
/// `context-switches` counter to tell which calls another task's work ran
/// inside of, and adds it when it is not asked for.
fn add_context_switches(counters: &mut Vec<CounterSpec>, quiet: bool) -> anyhow::Result<()> {
    let switches = events::parse_counter("context-switches", &events::NoPmus)?;
    if counters
        .iter()
        .any(|c| (c.type_, c.config) == (switches.type_, switches.config))
    {
        return Ok(());
    }
    if !quiet {
        eprintln!(
            "perfunc: note: -a adds the context-switches counter, to leave out \
             calls during which the CPU ran another task"
        );
    }
    counters.push(switches);
    Ok(())
}

/// Parses `-e` lists, or decides the default counters for this machine
/// one by one (see [`events::decide_defaults`]), printing the decision
/// (also with `-q`, as a warning) when it is not the generic LLC set. A
/// hardware group the CPU's PMU could never schedule is refused before
/// anything is recorded, and so is a counter that does not open here.
pub fn select_counters(
    lists: &[String],
) -> anyhow::Result<(Vec<CounterSpec>, Option<events::CounterDecision>)> {
    let pmus = SysfsPmus::default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
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
        if let Some(cpu) = events::cpu::CpuId::from_cpuinfo(&cpuinfo) {
            use crate::events::PmuSource;
            let core_types: Vec<u32> = ["cpu", "cpu_core", "cpu_atom"]
                .iter()
                .filter_map(|p| pmus.pmu_type(p))
                .collect();
            if let Err(why) = events::check_group_fits(&counters, &cpu, &core_types) {
                bail!("{why}");
            }
        }
        // Each counter once on its own, before calibration or a probe: a
        // counter this machine cannot count is named with its cause.
        for spec in &counters {
            if let Err(errno) = pmu::try_open(spec) {
                bail!("{}", pmu::explain(spec, errno));
            }
        }
        return Ok((counters, None));
    }
    let (counters, decision) = events::decide_defaults(&cpuinfo, &pmus, &mut pmu::try_open);
    let as_asked =
        decision.replaced.is_empty() && decision.dropped.is_empty() && !decision.fallback;
    if !as_asked {
        eprintln!("perfunc: {}", decision.summary);
    }
    Ok((counters, Some(decision)))
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

#[cfg(test)]
mod silent_tests {
    use super::*;

    #[test]
    fn binaries_whose_probes_never_fired_are_named() {
        let probes = [
            ("/lib/libm.so.6", "sin"),
            ("/bin/app", "main"),
            ("/bin/app", "unused"),
            ("/lib/libm.so.6", "cos"),
            (KERNEL_BINARY, "vfs_read"),
        ]
        .map(|(b, f)| (b.to_owned(), f.to_owned()));
        assert_eq!(
            silent_binaries(&probes, &[0, 4]),
            [
                "no probe fired in /lib/libm.so.6 (sin, cos): the target never loaded it, \
                 or never called them",
                "no kernel probe fired (vfs_read): the target never called it"
            ]
        );
        assert!(silent_binaries(&probes, &[1, 1, 0, 1, 2]).is_empty());
    }
}
