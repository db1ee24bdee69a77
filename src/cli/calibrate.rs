//! `perfunc calibrate`, and the profile a recording uses.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use std::sync::Arc;

use perfunc_calibrate::{Profile, Source};

use super::record::{select_counters, Plan};
use super::CalibrateArgs;
use crate::calibration::{self, CalibrationDeltas, CALIBRATION_SYSCALL, TARGET_PATTERN};
use crate::events::{CounterSpec, Unit};
use crate::output::{open_nofollow, AtomicOutput};
use crate::probe::{pmu, Burst, Place, ProbeTarget, RecordTarget};
use crate::report::format_value;
use crate::symbols::FunctionSpec;
use crate::trace::TraceReader;
use crate::trace::{OwnedSample, TraceHeader};

/// Calls of each target per round by default.
pub const DEFAULT_CALLS: u64 = 1_000;
/// Calls of each target, alone and nested, in a recording's in-run
/// calibration.
pub const IN_RUN_CALLS: u64 = 1_000;
/// Rounds (separate processes) by default.
pub const DEFAULT_ROUNDS: u32 = 3;

/// Which profile a recording stores and a report compensates with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CalibrationMode {
    /// Measured in the run, in the command's own process just before it
    /// starts, where perfunc starts it; otherwise [`CalibrationMode::Cached`].
    #[default]
    Auto,
    /// The cached profile for this machine and counter set, measured first
    /// when there is none.
    Cached,
    /// No calibration: reports show raw values.
    Off,
    /// A profile file written by `perfunc calibrate -o`.
    File(PathBuf),
}

impl std::str::FromStr for CalibrationMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => CalibrationMode::Auto,
            "cached" => CalibrationMode::Cached,
            "off" => CalibrationMode::Off,
            "" => return Err("give auto, cached, off or a profile file".into()),
            path => CalibrationMode::File(PathBuf::from(path)),
        })
    }
}

/// Runs `perfunc calibrate`.
pub fn run(args: &CalibrateArgs) -> anyhow::Result<i32> {
    let (counters, _) = select_counters(&args.events)?;
    let started = Instant::now();
    let profile = measure(&counters, args.calls, args.rounds)?;
    let path = match &args.output {
        Some(path) => {
            write_profile(path, &profile, true)?;
            path.clone()
        }
        None => {
            let dir = calibration::cache_dir()
                .context("no cache directory: set XDG_CACHE_HOME or HOME, or give -o FILE")?;
            store(&profile, &dir).context("give -o FILE to write the profile elsewhere")?
        }
    };
    print_profile(&profile, &counters);
    eprintln!(
        "perfunc: calibrated {} classes × {} counters ({} calls per class in {} rounds) in {:.2} s; \
         profile in {}",
        profile.baselines.len() / counters.len().max(1),
        counters.len(),
        args.calls,
        args.rounds,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(0)
}

/// The calibration workload: every target (alone and inside the nesting
/// target) called `calls` times, in `rounds` child processes one after the
/// other, so that each round starts in a fresh process.
pub fn workload(calls: u64, rounds: u32) -> anyhow::Result<i32> {
    if rounds <= 1 {
        perfunc_calibrate::run(None, calls);
        perfunc_calibrate::run_nested(None, calls);
        run_syscall(calls);
        return Ok(0);
    }
    let exe = std::env::current_exe().context("cannot find perfunc's own executable")?;
    for _ in 0..rounds {
        let status = std::process::Command::new(&exe)
            .args(["__calibrate-workload", &calls.to_string(), "1"])
            .status()
            .context("failed to start a calibration round")?;
        anyhow::ensure!(status.success(), "a calibration round failed: {status}");
    }
    Ok(0)
}

/// The calibration system call (`getppid`), alone and inside the nesting
/// target, `calls` times each.
fn run_syscall(calls: u64) {
    extern "C" fn syscall() {
        std::hint::black_box(std::os::unix::process::parent_id());
    }
    for _ in 0..calls {
        syscall();
    }
    if let Some(nest) = perfunc_calibrate::nest_target() {
        for _ in 0..calls {
            (std::hint::black_box(nest.func))(std::hint::black_box(syscall));
        }
    }
}

/// Measures a profile: one recording of perfunc's calibration targets,
/// called `calls` times in each of `rounds` processes, with the mechanism
/// and counter group of a recording. One recording, not one per round:
/// closing a uprobe's last perf event waits for RCU grace periods in the
/// kernel (about 85 ms per probe here), a cost paid once.
pub fn measure(counters: &[CounterSpec], calls: u64, rounds: u32) -> anyhow::Result<Profile> {
    let exe = std::env::current_exe().context("cannot find perfunc's own executable")?;
    let output =
        std::env::temp_dir().join(format!("perfunc-calibrate-{}.trace", std::process::id()));
    // One left by a killed perfunc of the same pid would be kept as .old.
    let _ = std::fs::remove_file(&output);
    let plan = Plan {
        counters: counters.to_vec(),
        counter_decision: None,
        functions: vec![TARGET_PATTERN.to_owned()],
        kernel: calibration_syscall(),
        target: RecordTarget::Command(vec![
            exe.into_os_string(),
            "__calibrate-workload".into(),
            calls.to_string().into(),
            rounds.to_string().into(),
        ]),
        output: output.clone(),
        buffer_bytes: 16 << 20,
        duration: None,
        repeat: 1,
        quiet: true,
        calibration: CalibrationMode::Off,
        skip_endbr64: false,
        callchain: crate::probe::Callchain::None,
        follow: crate::probe::Follow::Auto,
    };
    let recorded = plan.record();
    let deltas = recorded.and_then(|outcome| {
        let status = outcome.report(&plan);
        anyhow::ensure!(status == 0, "the calibration workload exited with {status}");
        read_deltas(&output)
    });
    let _ = std::fs::remove_file(&output);
    let all = deltas.context("calibration failed")?;
    let key = calibration::key(counters, &pmu::kernel_release(), &pmu::cpu_model());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let mut profile = Profile::from_deltas(key, created, calls, rounds, all.own);
    profile.set_nested(all.nested);
    profile.loadavg = calibration::loadavg();
    Ok(profile)
}

/// `syscall:getppid` where the kernel has system-call tracepoints.
fn calibration_syscall() -> Vec<String> {
    let enter = format!("sys_enter_{CALIBRATION_SYSCALL}");
    match crate::probe::tracefs::Tracefs::find_or_mount() {
        Ok(tracefs) if tracefs.has_event("syscalls", &enter) => {
            vec![format!("syscall:{CALIBRATION_SYSCALL}")]
        }
        _ => Vec::new(),
    }
}

fn read_deltas(path: &Path) -> anyhow::Result<CalibrationDeltas> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let reader = TraceReader::new(BufReader::new(file))?;
    Ok(calibration::deltas(reader)?)
}

/// Writes `profile` to `path` through a new file renamed into place,
/// keeping a previous file as `NAME.old` when `keep_old`.
fn write_profile(path: &Path, profile: &Profile, keep_old: bool) -> anyhow::Result<()> {
    let out = AtomicOutput::create(path)?;
    out.file()
        .write_all(profile.to_json().as_bytes())
        .with_context(|| format!("failed to write {}", out.temp_path().display()))?;
    if keep_old {
        out.commit()
    } else {
        out.replace()
    }
    .with_context(|| format!("failed to write {}", path.display()))
}

/// Writes `profile` into the cache directory `dir`, creating it (mode
/// 0700) when missing; returns the profile's path.
fn store(profile: &Profile, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    if let Some(why) = cache_dir_refusal(dir) {
        anyhow::bail!(
            "refusing to use the calibration cache {}: {why}",
            dir.display()
        );
    }
    let path = dir.join(profile.key.file_name());
    write_profile(&path, profile, false)?;
    Ok(path)
}

/// Why the cache directory `dir` must not be used, if it must not: it has
/// to be a directory itself (not a symlink to one), owned by the effective
/// user, that neither its group nor others can write. Otherwise whoever
/// planted it could feed a recording a false profile, or (through a link)
/// make root write where they choose.
pub fn cache_dir_refusal(dir: &Path) -> Option<String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    let euid = crate::probe::sys::euid();
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() {
        Some("it is a symlink".to_owned())
    } else if !meta.is_dir() {
        Some("it is not a directory".to_owned())
    } else if meta.uid() != euid {
        Some(format!(
            "it belongs to uid {}, not to uid {euid}",
            meta.uid()
        ))
    } else if mode & 0o022 != 0 {
        Some(format!("its group or others can write it (mode {mode:o})"))
    } else {
        None
    }
}

/// The cached profile at `path`, read without following a symlink.
fn read_cached(path: &Path) -> Option<Profile> {
    let mut text = String::new();
    open_nofollow(path).ok()?.read_to_string(&mut text).ok()?;
    Profile::from_json(&text).ok()
}

/// The profile a recording of `counters` stores in its trace.
pub fn profile_for_recording(
    mode: &CalibrationMode,
    counters: &[CounterSpec],
    quiet: bool,
) -> anyhow::Result<Option<Profile>> {
    match mode {
        CalibrationMode::Off => Ok(None),
        CalibrationMode::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let profile = Profile::from_json(&text).with_context(|| {
                format!("{} is not a perfunc calibration profile", path.display())
            })?;
            let names: Vec<&str> = counters.iter().map(|c| c.name.as_str()).collect();
            anyhow::ensure!(
                profile.key.counters == names,
                "{} was measured for counters {} but this recording counts {}; \
                 run `perfunc calibrate -e {}`",
                path.display(),
                profile.key.counters.join(","),
                names.join(","),
                names.join(",")
            );
            Ok(Some(profile))
        }
        CalibrationMode::Auto | CalibrationMode::Cached => {
            let key = calibration::key(counters, &pmu::kernel_release(), &pmu::cpu_model());
            let mut dir = calibration::cache_dir();
            // A directory that is there must be safe to read; one that is
            // not is created (and checked) when the profile is stored.
            if let Some(d) = dir
                .as_ref()
                .filter(|d| std::fs::symlink_metadata(d).is_ok())
            {
                if let Some(why) = cache_dir_refusal(d) {
                    eprintln!(
                        "perfunc: warning: not using the calibration cache {}: {why}",
                        d.display()
                    );
                    dir = None;
                }
            }
            let cached = dir
                .as_ref()
                .and_then(|d| read_cached(&d.join(key.file_name())))
                .filter(|p| p.key == key);
            if let Some(profile) = cached {
                return Ok(Some(profile));
            }
            if !quiet {
                eprintln!(
                    "perfunc: measuring what the probes cost on this machine (once per kernel, \
                     CPU and counter set; `perfunc calibrate` to redo, --calibration off to skip)"
                );
            }
            let profile = measure(counters, DEFAULT_CALLS, DEFAULT_ROUNDS)?;
            let stored = match (&dir, calibration::cache_dir()) {
                (Some(d), _) => store(&profile, d).map(drop),
                // Refused above, and said so.
                (None, Some(_)) => Ok(()),
                (None, None) => Err(anyhow::anyhow!(
                    "no cache directory: set XDG_CACHE_HOME or HOME"
                )),
            };
            if let Err(e) = stored {
                eprintln!("perfunc: warning: the calibration profile is not cached: {e:#}");
            }
            Ok(Some(profile))
        }
    }
}

/// The burst of an in-run calibration: perfunc's targets of `classes`
/// (the classes where a recording's probes go) and of the nesting
/// target's class, alone and inside the nesting target, called
/// [`IN_RUN_CALLS`] times each by the command's process before its exec,
/// under the recording's counter group. Its deltas become the trace's
/// profile, [`Source::InRun`]; classes it does not measure are taken from
/// `cached` when given. `None` where perfunc has no targets (not x86-64)
/// or none of `classes` has one.
pub fn in_run_burst(
    counters: &[CounterSpec],
    classes: &[&str],
    cached: Option<Profile>,
) -> anyhow::Result<Option<Burst>> {
    let mut own: Vec<&'static str> = perfunc_calibrate::targets()
        .iter()
        .map(|t| t.class)
        .filter(|c| classes.contains(c))
        .collect();
    if own.is_empty() {
        return Ok(None);
    }
    let nest = perfunc_calibrate::nest_target();
    if let Some(nest) = nest {
        if !own.contains(&nest.class) {
            own.push(nest.class);
        }
    }
    let symbols: Vec<&str> = perfunc_calibrate::targets()
        .iter()
        .filter(|t| own.contains(&t.class))
        .map(|t| t.symbol)
        .chain(nest.map(|n| n.symbol))
        .collect();
    let exe = std::env::current_exe().context("cannot find perfunc's own executable")?;
    let spec: FunctionSpec = TARGET_PATTERN.parse()?;
    let found = crate::symbols::resolve(&exe, &[spec])
        .context("cannot find perfunc's calibration targets in its own executable")?;
    let mut sites = Vec::new();
    let mut probes = Vec::new();
    for r in found
        .iter()
        .filter(|r| symbols.contains(&r.function.raw_name.as_str()))
    {
        probes.push(ProbeTarget {
            probe_id: probes.len() as u32,
            function: r.function.raw_name.clone(),
            place: Place::Uprobe {
                binary: r.binary.path.clone(),
                offset: r.function.offset.0,
            },
        });
        sites.push((
            r.function.raw_name.clone(),
            r.function.class.name().to_owned(),
        ));
    }
    anyhow::ensure!(
        probes.len() == symbols.len(),
        "perfunc's own executable lacks calibration targets: found {} of {}",
        probes.len(),
        symbols.len()
    );
    let nested = own.clone();
    let run = move || {
        for class in &own {
            perfunc_calibrate::run(Some(class), IN_RUN_CALLS);
        }
        for class in &nested {
            perfunc_calibrate::run_nested(Some(class), IN_RUN_CALLS);
        }
    };
    let names: Vec<String> = counters.iter().map(|c| c.name.clone()).collect();
    let key = calibration::key(counters, &pmu::kernel_release(), &pmu::cpu_model());
    let done = move |samples: &[OwnedSample], header: &mut TraceHeader| {
        let deltas = calibration::deltas_of(
            samples.to_vec(),
            |probe| {
                sites
                    .get(probe as usize)
                    .map(|(raw, class)| (raw.as_str(), class.as_str()))
            },
            &names,
        );
        if deltas.own.is_empty() {
            eprintln!(
                "perfunc: warning: the calibration in the command's process recorded nothing \
                 ({} records); {}",
                samples.len(),
                if cached.is_some() {
                    "using the cached profile"
                } else {
                    "values are not calibrated"
                }
            );
            return;
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let mut profile = Profile::from_deltas(key.clone(), created, IN_RUN_CALLS, 1, deltas.own);
        profile.set_nested(deltas.nested);
        profile.source = Source::InRun;
        profile.loadavg = calibration::loadavg();
        if let Some(cached) = &cached {
            profile.fill_from(cached);
        }
        header.calibration = serde_json::from_str(&profile.to_json()).ok();
    };
    Ok(Some(Burst {
        probes,
        run: Arc::new(run),
        done: Arc::new(done),
    }))
}

fn print_profile(profile: &Profile, counters: &[CounterSpec]) {
    println!(
        "{:<10} {:<15} {:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "CLASS", "PROBE", "COUNTER", "N", "MEDIAN", "MAD", "TRIMMED", "P1", "P99"
    );
    for b in &profile.baselines {
        let unit = counters
            .iter()
            .find(|c| c.name == b.counter)
            .map_or(Unit::Count, |c| c.unit);
        let how = match b.class.parse::<crate::symbols::InsnClass>() {
            Ok(class) if class.emulated() => "emulated",
            Ok(_) => "single-stepped",
            Err(_) if b.class == calibration::TRACEPOINT_CLASS => "tracepoints",
            Err(_) => "?",
        };
        let s = &b.summary;
        println!(
            "{:<10} {:<15} {:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            b.class,
            how,
            b.counter,
            s.n,
            format_value(s.median, unit),
            format_value(s.mad, unit),
            format_value(s.trimmed_mean, unit),
            format_value(s.p1, unit),
            format_value(s.p99, unit)
        );
    }
}
