//! One recording: place the probes, open the counter groups, start or
//! attach to the target, drain the ring buffers into the trace until the
//! target exits or the user stops it, and clean up on every path.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perf_event::{Builder, Clock, Counter, ReadFormat, SampleFlag, Sampler};

use super::pmu::{counter_builder, explain, RawEvent};
use super::ptrace::Tracer;
use super::ring::{Decoded, Decoder, Extra, USER_REGS_MASK};
use super::sys::{self, ChildSignals, HeldChild, WaitStatus};
use super::tracefs::{self, PlacedPair, ProbeSet, Tracefs};
use super::ProbeError;
use crate::events::CounterSpec;
use crate::kernel::Field;
use crate::trace::{Event, ExitStatus, Footer, OwnedSample, RecordKind, TraceHeader, TraceWriter};

/// What to probe: a function, a system call or a pair of tracepoints.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// Index into the trace header's probe list.
    pub probe_id: u32,
    /// Display name, for messages.
    pub function: String,
    /// Where the entry and return events come from.
    pub place: Place,
}

/// Where a probe's entry and return events come from.
#[derive(Debug, Clone)]
pub enum Place {
    /// A uprobe and a uretprobe at a file offset of a binary.
    Uprobe {
        /// The binary the offset is in.
        binary: PathBuf,
        /// File offset of the probed instruction.
        offset: u64,
    },
    /// A kprobe and a kretprobe on a kernel function.
    Kprobe {
        /// The function's symbol.
        symbol: String,
    },
    /// Two existing tracepoints, `(group, event)` each: a system call's
    /// `syscalls/sys_enter_NAME` and `syscalls/sys_exit_NAME`, or any
    /// begin/end pair.
    Tracepoints {
        /// The event that opens a call.
        begin: (String, String),
        /// The event that closes it.
        end: (String, String),
        /// The key field in the begin and in the end event's raw data, for
        /// a pair matched by a field: both events then sample `RAW`.
        key: Option<(Field, Field)>,
    },
}

/// What to record.
#[derive(Debug, Clone)]
pub enum RecordTarget {
    /// Start this command, held until every probe is in place.
    Command(Vec<OsString>),
    /// Attach to this running process and all its threads.
    Pid(i32),
    /// Every process on every CPU (one event per CPU, no pid), while this
    /// command runs (perfunc starts it, held until the probes are in
    /// place) or, without one, until the duration or a signal.
    SystemWide(Option<Vec<OsString>>),
}

/// Everything a recording needs.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// The counters read at every probe hit, in trace order.
    pub counters: Vec<CounterSpec>,
    /// The functions to probe.
    pub probes: Vec<ProbeTarget>,
    /// What to record.
    pub target: RecordTarget,
    /// Bytes of ring buffer per CPU (rounded up to a power of two).
    pub buffer_bytes: usize,
    /// Stop after this long (the command, if perfunc started it, gets
    /// SIGTERM).
    pub duration: Option<Duration>,
    /// Print a progress line on stderr when it is a terminal.
    pub progress: bool,
    /// The caller chains to take at every entry.
    pub callchain: Callchain,
    /// How threads and processes of the target are followed: resolved by
    /// [`resolve_follow`] before the trace header is written.
    pub follow: Follow,
    /// Runs of a [`RecordTarget::Command`] under the same probes (`record
    /// --repeat`, at least 1): one after the other, each announced in the
    /// trace by an [`Event::Run`] when there are two or more.
    pub repeat: u32,
    /// Calls the command's first process makes before its exec, under
    /// probes of their own (a [`RecordTarget::Command`] only).
    pub burst: Option<Burst>,
}

/// Calls the command's first process makes before it execs the command,
/// under probes of their own that the trace does not list: how a
/// recording measures its probes' cost in the target's own process, at
/// the moment it starts (in-run calibration).
///
/// The probes are opened on the held child with the recording's counter
/// group, enabled at once, before the child is let go; the child runs
/// [`Burst::run`], perfunc collects the samples, hands them to
/// [`Burst::done`] with the trace header (written only after it), and
/// closes the burst's groups beside the run.
#[derive(Clone)]
pub struct Burst {
    /// The probes; their `probe_id`s index this list.
    pub probes: Vec<ProbeTarget>,
    /// What the held child runs: in a forked child, so it must not
    /// allocate or lock.
    pub run: Arc<dyn Fn() + Send + Sync>,
    /// Receives the burst's samples (probe ids index [`Burst::probes`])
    /// and the trace header, to amend it before it is written.
    pub done: Arc<BurstDone>,
}

/// What receives a burst's samples and amends the trace header.
pub type BurstDone = dyn Fn(&[OwnedSample], &mut TraceHeader) + Send + Sync;

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("probes", &self.probes)
            .finish_non_exhaustive()
    }
}

/// Ring bytes of the burst's probes: their records are collected while
/// the burst runs.
const BURST_RING: usize = 4 << 20;

/// How perfunc follows the threads and processes the target creates
/// (`--follow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Follow {
    /// `PerThread` where ptrace is allowed, else `Inherit`.
    #[default]
    Auto,
    /// One group per probe and CPU on the target, inherited by every task
    /// it creates (`inherit` with `PERF_SAMPLE_READ`: Linux 6.12 and
    /// later), all of a CPU's events writing into one ring.
    Inherit,
    /// One group per probe and task, on any CPU, with a ring per task;
    /// every new task is held at birth (ptrace) until its groups are open.
    /// Works on every kernel; its counters follow the task across CPUs.
    PerThread,
}

impl Follow {
    /// The name in the trace header and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Follow::Auto => "auto",
            Follow::Inherit => "inherit",
            Follow::PerThread => "per-thread",
        }
    }
}

/// Whether this kernel opens a sampled event with `inherit` and
/// `PERF_SAMPLE_READ` (added in Linux 6.12 as "perf: Support
/// PERF_SAMPLE_READ with inherit"; before, `perf_event_open` fails with
/// EINVAL). Tried on a software event of perfunc's own, which costs
/// nothing to open and close.
pub fn kernel_inherits_sample_read() -> bool {
    let mut b = Builder::new(perf_event::events::Software::DUMMY);
    b.observe_self()
        .one_cpu(0)
        .inherit(true)
        .enabled(false)
        .sample_period(1)
        .sample(SAMPLE_FLAGS)
        .clockid(Clock::MONOTONIC);
    set_read_format(&mut b);
    match b.build() {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EINVAL),
    }
}

/// Whether perfunc may ptrace the target: not when Yama forbids every
/// attach (`kernel.yama.ptrace_scope` 3).
fn ptrace_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map_or(true, |s| s.trim() != "3")
}

/// The mechanism a recording of `target` uses when `requested` is asked
/// for. `auto` is per-thread, whose counters are exact across CPU
/// migration on every kernel, unless ptrace is forbidden; then inherit,
/// where the kernel has it. System-wide recordings observe CPUs, not
/// tasks, and follow nothing: they keep [`Follow::Inherit`]'s per-CPU
/// layout without inheritance.
pub fn resolve_follow(requested: Follow, target: &RecordTarget) -> Result<Follow, ProbeError> {
    if matches!(target, RecordTarget::SystemWide(_)) {
        return Ok(Follow::Inherit);
    }
    let refused = |what: &str, why: &str| ProbeError::Sys {
        what: what.into(),
        cause: std::io::Error::new(std::io::ErrorKind::Unsupported, why.to_owned()),
    };
    match requested {
        Follow::PerThread | Follow::Auto if ptrace_allowed() => Ok(Follow::PerThread),
        Follow::Inherit | Follow::Auto if kernel_inherits_sample_read() => Ok(Follow::Inherit),
        Follow::PerThread => Err(refused(
            "holding the target's new threads (--follow per-thread)",
            "ptrace is disabled (kernel.yama.ptrace_scope = 3); \
             use --follow inherit (Linux 6.12 and later)",
        )),
        Follow::Auto => Err(refused(
            "following the target's threads",
            "ptrace is disabled (kernel.yama.ptrace_scope = 3) and this kernel refuses \
             inherit with PERF_SAMPLE_READ (supported since Linux 6.12); \
             set kernel.yama.ptrace_scope to 2 or lower",
        )),
        Follow::Inherit => Err(refused(
            "opening events with inherit and PERF_SAMPLE_READ (--follow inherit)",
            "this kernel refuses the pair (supported since Linux 6.12); \
             use --follow per-thread or auto",
        )),
    }
}

/// How the callers of each probed call are recorded (`--callchain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Callchain {
    /// Not at all.
    #[default]
    None,
    /// The kernel walks the user frame pointers (`PERF_SAMPLE_CALLCHAIN`).
    FramePointer,
    /// The user registers and this many bytes of the user stack
    /// (`PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER`), unwound later
    /// with the binaries' CFI.
    Dwarf {
        /// Bytes of stack copied at every entry (a multiple of 8).
        stack_bytes: u32,
    },
}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct RecordResult {
    /// What went into the trace's footer.
    pub footer: Footer,
    /// The signal that stopped perfunc (SIGINT, SIGTERM, SIGHUP), if any.
    pub stopped_by: Option<i32>,
    /// Threads seen in samples.
    pub threads: usize,
    /// Kernel-function probe hits the kernel missed (in `footer.lost`).
    pub kernel_missed: u64,
    /// Records written per probe id (a probe that never fired has none,
    /// or no entry past the end).
    pub per_probe: Vec<u64>,
    /// Runs of the command started (`--repeat`; 1 otherwise).
    pub runs: u32,
}

/// The signals that stop a recording cleanly.
const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The ring of each task after the target's first (`--follow
/// per-thread`), when `-m` is larger: setting up a ring costs about 1.3 ms
/// per MiB here, and a shell may start hundreds of processes.
const LATER_TASK_RING: usize = 4 << 20;

/// Poll timeout: how late perfunc notices an exit or a signal at worst.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a target perfunc started gets after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

struct StopFlag {
    flag: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl StopFlag {
    fn install() -> Result<StopFlag, ProbeError> {
        let flag = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for signal in STOP_SIGNALS {
            let flag = Arc::clone(&flag);
            let set = move || flag.store(signal as usize, Ordering::SeqCst);
            // SAFETY: the handler only stores into an atomic, which is
            // async-signal-safe.
            #[allow(unsafe_code)]
            let id = unsafe { signal_hook::low_level::register(signal, set) }.map_err(|cause| {
                ProbeError::Sys {
                    what: "installing signal handlers".into(),
                    cause,
                }
            })?;
            ids.push(id);
        }
        Ok(StopFlag { flag, ids })
    }

    fn signal(&self) -> Option<i32> {
        match self.flag.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

impl Drop for StopFlag {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Whose records a ring buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingOf {
    /// Every group of one CPU ([`Follow::Inherit`], system-wide).
    Cpu(usize),
    /// Every group of one task, on any CPU ([`Follow::PerThread`]).
    Task(i32),
}

impl RingOf {
    fn describe(self) -> String {
        match self {
            RingOf::Cpu(cpu) => format!("cpu {cpu}"),
            RingOf::Task(tid) => format!("thread {tid}"),
        }
    }
}

/// The open perf events of a recording. Declared so that the events are
/// closed (dropped) before the uprobes they use are removed.
struct Events {
    /// The ring buffers: whose records, and the event that owns the mapping.
    rings: Vec<(RingOf, Sampler)>,
    counters: Vec<Counter>,
    /// Every group leader: (index of its ring, fd), for the final count of
    /// probe hits.
    leaders: Vec<(usize, RawFd)>,
    decoder: Decoder,
    tally: Tally,
    /// (pid, cpu) whose first group reports mappings (`--callchain`).
    mapped: BTreeSet<(i32, Option<usize>)>,
    /// Whether groups are inherited by the tasks the target creates.
    inherit: bool,
    /// The stop signal received, if any (set by [`StopFlag`]'s handler).
    interrupt: Arc<AtomicUsize>,
    /// The threads closing the groups of earlier runs (`--repeat`).
    closing: Vec<std::thread::JoinHandle<()>>,
}

/// What went into the trace, per ring.
#[derive(Debug, Default)]
struct Tally {
    /// Samples written, indexed by ring.
    samples: Vec<u64>,
    /// Records the kernel reported lost, by ring.
    lost: BTreeMap<usize, u64>,
    /// The CPU of each ring's last record, by ring.
    last_cpu: Vec<u16>,
    /// Records written, by probe id.
    per_probe: Vec<u64>,
    tids: BTreeSet<u32>,
    /// The tid of the last sample, to spare the set a lookup per record.
    last_tid: Option<u32>,
    /// Samples written by the rings of earlier runs (`--repeat`).
    earlier: u64,
}

impl Tally {
    /// Counts one sample written (called for every record: kept cheap).
    fn count(&mut self, ring: usize, cpu: u16, tid: u32, probe: u32) {
        let probe = probe as usize;
        if probe >= self.per_probe.len() {
            self.per_probe.resize(probe + 1, 0);
        }
        self.per_probe[probe] += 1;
        if ring >= self.samples.len() {
            self.samples.resize(ring + 1, 0);
            self.last_cpu.resize(ring + 1, 0);
        }
        self.samples[ring] += 1;
        self.last_cpu[ring] = cpu;
        if self.last_tid != Some(tid) {
            self.tids.insert(tid);
            self.last_tid = Some(tid);
        }
    }

    fn samples(&self) -> u64 {
        self.earlier + self.samples.iter().sum::<u64>()
    }

    fn samples_in(&self, ring: usize) -> u64 {
        self.samples.get(ring).copied().unwrap_or(0)
    }
}

/// Records `opts` into `writer`. Probes are removed from tracefs on every
/// way out of this function.
pub fn record<W: Write>(
    opts: &RecordOptions,
    writer: &mut TraceWriter<W>,
) -> Result<RecordResult, ProbeError> {
    let _ = sys::raise_nofile_limit();
    let tracefs = Tracefs::find_or_mount()?;
    if let Ok(n) = tracefs::remove_stale_groups(&tracefs) {
        if n > 0 {
            eprintln!(
                "perfunc: removed {n} uprobes left behind by an earlier perfunc that was killed"
            );
        }
    }
    let stop = StopFlag::install()?;
    let mut probes = ProbeSet::new(tracefs.clone());
    let placed: Vec<PlacedPair> = opts
        .probes
        .iter()
        .map(|p| match &p.place {
            // Placing thousands of probes takes minutes: a stop signal is
            // obeyed between two of them.
            _ if stop.signal().is_some() => {
                Err(ProbeError::Interrupted(stop.signal().unwrap_or(0)))
            }
            Place::Uprobe { binary, offset } => probes.add(binary, *offset),
            Place::Kprobe { symbol } => probes.add_kprobe(symbol),
            Place::Tracepoints { begin, end, .. } => Ok(PlacedPair {
                entry_id: tracefs.event_id(&begin.0, &begin.1)?,
                return_id: tracefs.event_id(&end.0, &end.1)?,
            }),
        })
        .collect::<Result<_, _>>()?;
    // A burst that cannot be placed or opened (perfunc's own executable
    // where uprobes cannot go) leaves the recording without it, said so;
    // its `done` then sees no samples.
    let burst_placed: Option<Vec<PlacedPair>> = match &opts.burst {
        Some(burst) => burst
            .probes
            .iter()
            .map(|p| match &p.place {
                Place::Uprobe { binary, offset } => probes.add(binary, *offset),
                _ => Err(ProbeError::Sys {
                    what: format!("placing the burst probe {}", p.function),
                    cause: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "a burst probes functions only",
                    ),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| eprintln!("perfunc: warning: cannot measure in the run: {e}"))
            .ok(),
        None => None,
    };
    let per_thread =
        opts.follow == Follow::PerThread && !matches!(opts.target, RecordTarget::SystemWide(_));
    let cpus: Vec<Option<usize>> = if per_thread {
        vec![None]
    } else {
        sys::online_cpus().into_iter().map(Some).collect()
    };
    let ptrace_err = |cause| ProbeError::Sys {
        what: "holding the target's new threads (ptrace; --follow per-thread)".into(),
        cause,
    };

    let result = match &opts.target {
        RecordTarget::Command(argv) => {
            let started = Instant::now();
            let burst_run = opts.burst.as_ref().map(|b| Arc::clone(&b.run));
            let spawn = || {
                let run: Option<&(dyn Fn() + Sync)> = match &burst_run {
                    Some(run) => Some(run.as_ref()),
                    None => None,
                };
                HeldChild::spawn(argv, run).map_err(|cause| ProbeError::Spawn {
                    command: display_command(argv),
                    cause,
                })
            };
            // Every run's command is forked now, before any group is open:
            // a child forked later would hold the groups of the runs
            // before it until its exec, which would then pay for closing
            // them.
            let mut held: std::collections::VecDeque<HeldChild> = (0..opts.repeat.max(1))
                .map(|_| spawn())
                .collect::<Result<_, _>>()?;
            let mut progress = Progress::new(opts.progress);
            let mut events = Events::new(!per_thread, &stop);
            let mut lost = 0;
            let mut runs = 0;
            let mut end = RunEnd::default();
            while let Some(mut child) = held.pop_front() {
                let index = runs;
                let strays = std::mem::take(&mut end.strays);
                let tracer = per_thread
                    .then(|| Tracer::seize_child(child.pid()).map(|t| t.with_strays(strays)))
                    .transpose()
                    .map_err(ptrace_err)?;
                match events.open_for(opts, &placed, &cpus, child.pid(), Start::OnExec) {
                    // Ctrl-C between two runs ends the recording with the
                    // runs done.
                    Err(ProbeError::Interrupted(signal)) if index > 0 => {
                        end.stopped_by = Some(signal);
                        break;
                    }
                    other => other?,
                }
                if let (Some(burst), 0) = (&opts.burst, index) {
                    run_burst(
                        opts,
                        burst,
                        burst_placed.as_deref(),
                        &mut child,
                        &mut events,
                        writer,
                        &stop,
                    )
                    .map_err(|e| match e {
                        ProbeError::Spawn { cause, .. } => ProbeError::Spawn {
                            command: display_command(argv),
                            cause,
                        },
                        other => other,
                    })?;
                }
                if opts.repeat > 1 {
                    // After the run before has ended (its command exited,
                    // what it left behind detached, its groups closed):
                    // each record belongs to the last run started before it.
                    writer.push_event(&Event::Run {
                        time: sys::monotonic_ns(),
                        index,
                        pid: child.pid() as u32,
                    })?;
                }
                child.release().map_err(|cause| ProbeError::Spawn {
                    command: display_command(argv),
                    cause,
                })?;
                runs += 1;
                let pidfd = sys::pidfd_open(child.pid()).ok();
                let mut follow = Following::new(tracer, &placed, &cpus)?;
                end = run(
                    opts,
                    &mut events,
                    writer,
                    &stop,
                    Watched::Child(child.pid()),
                    pidfd,
                    &mut follow,
                    &mut progress,
                    started,
                )?;
                if let Some(signal) = stop.signal() {
                    end.stopped_by.get_or_insert(signal);
                }
                if held.is_empty() || !end.goes_on() {
                    break;
                }
                // Each run's groups and rings are its own: the next run's
                // command is a new process.
                lost += events.end_run(writer, sys::monotonic_ns())?;
            }
            // The commands of runs not started exit unrun.
            drop(held);
            let failed = match end.exit {
                Some(WaitStatus::Exited(code @ 1..)) => Some(format!("exited with status {code}")),
                Some(WaitStatus::Signaled { signal, .. }) => {
                    Some(format!("was killed by signal {signal}"))
                }
                _ => None,
            };
            let by_user = end.stopped_by.is_some() || end.timed_out;
            if let Some(how) = failed.filter(|_| runs < opts.repeat && !by_user) {
                progress.clear();
                eprintln!("perfunc: run {runs} of {} {how}: not repeated", opts.repeat);
            }
            finish(events, writer, started, progress, lost, end, runs)
        }
        RecordTarget::Pid(pid) => {
            let pidfd = sys::pidfd_open(*pid).map_err(|_| ProbeError::NoSuchProcess(*pid))?;
            let mut events = Events::new(!per_thread, &stop);
            let tracer = if per_thread {
                let (tracer, tids) = Tracer::seize_process(*pid, || thread_ids(*pid)).map_err(
                    |cause| match cause.raw_os_error() {
                        Some(libc::ESRCH) => ProbeError::NoSuchProcess(*pid),
                        _ => ptrace_err(cause),
                    },
                )?;
                for tid in tids {
                    events.open_task(opts, &placed, &cpus, tid)?;
                }
                Some(tracer)
            } else {
                attach_all_threads(opts, &mut events, &placed, &cpus, *pid)?;
                None
            };
            if opts.callchain != Callchain::None {
                write_mappings(writer, [*pid])?;
            }
            let started = Instant::now();
            let mut progress = Progress::new(opts.progress);
            let mut follow = Following::new(tracer, &placed, &cpus)?;
            let end = run(
                opts,
                &mut events,
                writer,
                &stop,
                Watched::Process(*pid),
                Some(pidfd),
                &mut follow,
                &mut progress,
                started,
            )?;
            finish(events, writer, started, progress, 0, end, 1)
        }
        RecordTarget::SystemWide(command) => {
            let child = command
                .as_ref()
                .map(|argv| {
                    HeldChild::spawn(argv, None).map_err(|cause| ProbeError::Spawn {
                        command: display_command(argv),
                        cause,
                    })
                })
                .transpose()?;
            let mut events = Events::new(false, &stop);
            events.open_for(opts, &placed, &cpus, SYSTEM_WIDE, Start::Now)?;
            if opts.callchain != Callchain::None {
                write_mappings(writer, running_pids())?;
            }
            let (watched, pidfd) = match (child, command) {
                (Some(mut child), Some(argv)) => {
                    child.release().map_err(|cause| ProbeError::Spawn {
                        command: display_command(argv),
                        cause,
                    })?;
                    (
                        Watched::Child(child.pid()),
                        sys::pidfd_open(child.pid()).ok(),
                    )
                }
                _ => (Watched::Nothing, None),
            };
            let started = Instant::now();
            let mut progress = Progress::new(opts.progress);
            let mut follow = Following::new(None, &placed, &cpus)?;
            let end = run(
                opts,
                &mut events,
                writer,
                &stop,
                watched,
                pidfd,
                &mut follow,
                &mut progress,
                started,
            )?;
            finish(events, writer, started, progress, 0, end, 1)
        }
    };
    // Returns the kernel's kretprobes missed (all their instances in use)
    // have an entry and no return in the trace: counted as lost.
    let result = result.map(|mut r| {
        r.kernel_missed = probes.kernel_missed();
        r.footer.lost += r.kernel_missed;
        r
    });
    drop(probes);
    result
}

/// Runs `burst` in the held `child`: its probes opened on the child and
/// enabled, the child told to run it, its samples collected until it
/// says it is done, handed with the header to [`Burst::done`], and its
/// groups closed on a thread of their own (joined with the groups of the
/// run, by `events`).
fn run_burst<W: Write>(
    opts: &RecordOptions,
    burst: &Burst,
    placed: Option<&[PlacedPair]>,
    child: &mut HeldChild,
    events: &mut Events,
    writer: &mut TraceWriter<W>,
    stop: &StopFlag,
) -> Result<(), ProbeError> {
    let mut cal = Events::new(false, stop);
    let ring_opts = RecordOptions {
        buffer_bytes: BURST_RING,
        probes: Vec::new(),
        burst: None,
        ..opts.clone()
    };
    let Some(placed) = placed else {
        writer.amend_header(|h| (burst.done)(&[], h))?;
        return Ok(());
    };
    for (target, probe) in burst.probes.iter().zip(placed) {
        match cal.open_group(&ring_opts, target, probe, child.pid(), None, Start::Now) {
            Ok(()) => {}
            Err(e @ ProbeError::Interrupted(_)) => return Err(e),
            Err(e) => {
                eprintln!("perfunc: warning: cannot measure in the run: {e}");
                writer.amend_header(|h| (burst.done)(&[], h))?;
                return Ok(());
            }
        }
    }
    let spawn_err = |cause| ProbeError::Spawn {
        command: String::new(),
        cause,
    };
    child.start_burst().map_err(spawn_err)?;
    let mut samples = Vec::new();
    loop {
        let done = child
            .burst_finished(Duration::from_millis(20))
            .map_err(spawn_err)?;
        cal.collect(&mut samples);
        if done {
            break;
        }
        if let Some(signal) = stop.signal() {
            return Err(ProbeError::Interrupted(signal));
        }
    }
    writer.amend_header(|h| (burst.done)(&samples, h))?;
    let rings = std::mem::take(&mut cal.rings);
    let counters = std::mem::take(&mut cal.counters);
    events
        .closing
        .push(std::thread::spawn(move || drop((rings, counters))));
    Ok(())
}

/// Writes the file mappings the processes `pids` have now, as `Mmap`
/// events: the kernel reports only mappings made after the events were
/// opened. A process that is gone meanwhile is skipped.
fn write_mappings<W: Write>(
    writer: &mut TraceWriter<W>,
    pids: impl IntoIterator<Item = i32>,
) -> Result<(), ProbeError> {
    let time = sys::monotonic_ns();
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for m in crate::unwind::parse_proc_maps(&text) {
            writer.push_event(&Event::Mmap {
                time,
                pid: pid as u32,
                tid: pid as u32,
                start: m.start,
                len: m.end - m.start,
                pgoff: m.pgoff,
                path: m.path.to_string_lossy().into_owned(),
            })?;
        }
    }
    Ok(())
}

/// Every process running now.
fn running_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The pid of a system-wide event: every task on its CPU.
const SYSTEM_WIDE: i32 = -1;

#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Enabled when the held child execs the target.
    OnExec,
    /// Enabled at once (attaching to a running thread).
    Now,
}

#[derive(Clone, Copy)]
enum Watched {
    Child(i32),
    Process(i32),
    /// System-wide without a command: until the duration or a signal.
    Nothing,
}

fn display_command(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opens probe groups on every thread of `pid`, repeating until no thread
/// appears that was not covered (threads created after a thread's events
/// are open inherit them).
fn attach_all_threads(
    opts: &RecordOptions,
    events: &mut Events,
    placed: &[PlacedPair],
    cpus: &[Option<usize>],
    pid: i32,
) -> Result<(), ProbeError> {
    let mut done = BTreeSet::new();
    loop {
        let tids = thread_ids(pid).map_err(|_| ProbeError::NoSuchProcess(pid))?;
        let new: Vec<i32> = tids.into_iter().filter(|t| !done.contains(t)).collect();
        if new.is_empty() {
            return Ok(());
        }
        for tid in new {
            events.open_task(opts, placed, cpus, tid)?;
            done.insert(tid);
        }
    }
}

fn thread_ids(pid: i32) -> std::io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// What each probe hit records; `ring.rs` decodes exactly this layout.
const SAMPLE_FLAGS: SampleFlag = SampleFlag::IDENTIFIER
    .union(SampleFlag::TID)
    .union(SampleFlag::TIME)
    .union(SampleFlag::CPU)
    .union(SampleFlag::READ);

/// How the group is read at each hit.
const READ_FORMAT: ReadFormat = ReadFormat::GROUP
    .union(ReadFormat::TOTAL_TIME_ENABLED)
    .union(ReadFormat::TOTAL_TIME_RUNNING);

/// Sets the read format as is: perf-event2's `read_format` adds
/// `PERF_FORMAT_ID` to group reads, which would cost 8 bytes per counter
/// in every record for ids perfunc does not need (the group order is
/// fixed: entry, return, counters).
fn set_read_format(b: &mut Builder<'_>) {
    b.attrs_mut().read_format = READ_FORMAT.bits();
}

/// Observes `pid` (with its future threads and children when `inherit`),
/// or every task on the CPU for [`SYSTEM_WIDE`]; on one CPU, or on any
/// for `None`.
fn observe(b: &mut Builder<'_>, pid: i32, cpu: Option<usize>, inherit: bool) {
    if pid == SYSTEM_WIDE {
        b.any_pid();
    } else {
        b.observe_pid(pid).inherit(inherit);
    }
    match cpu {
        Some(cpu) => b.one_cpu(cpu),
        None => b.any_cpu(),
    };
}

fn probe_builder(id: u64, pid: i32, cpu: Option<usize>, inherit: bool) -> Builder<'static> {
    let mut b = Builder::new(RawEvent::tracepoint(id));
    observe(&mut b, pid, cpu, inherit);
    b.exclude_kernel(false)
        .exclude_hv(true)
        .sample_period(1)
        .sample(SAMPLE_FLAGS)
        .sample_id_all(true)
        .clockid(Clock::MONOTONIC);
    set_read_format(&mut b);
    b
}

impl Events {
    fn new(inherit: bool, stop: &StopFlag) -> Events {
        Events {
            rings: Vec::new(),
            counters: Vec::new(),
            leaders: Vec::new(),
            decoder: Decoder::default(),
            tally: Tally::default(),
            mapped: BTreeSet::new(),
            inherit,
            interrupt: Arc::clone(&stop.flag),
            closing: Vec::new(),
        }
    }

    /// The ring a group goes into, if it exists yet: its index and fd.
    fn ring(&self, of: RingOf) -> Option<(usize, RawFd)> {
        self.rings
            .iter()
            .position(|(o, _)| *o == of)
            .map(|i| (i, self.rings[i].1.as_raw_fd()))
    }

    /// Opens the groups of a running task, enabled at once; a task that has
    /// ended meanwhile is skipped.
    fn open_task(
        &mut self,
        opts: &RecordOptions,
        placed: &[PlacedPair],
        cpus: &[Option<usize>],
        tid: i32,
    ) -> Result<(), ProbeError> {
        match self.open_for(opts, placed, cpus, tid, Start::Now) {
            Err(ProbeError::OpenProbe { cause, .. })
                if cause.raw_os_error() == Some(libc::ESRCH) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Opens one group per probe and CPU on `pid` (a CPU of `None`: one
    /// group per probe, on any CPU, with a ring of the task's own).
    fn open_for(
        &mut self,
        opts: &RecordOptions,
        placed: &[PlacedPair],
        cpus: &[Option<usize>],
        pid: i32,
        start: Start,
    ) -> Result<(), ProbeError> {
        for &cpu in cpus {
            for (target, probe) in opts.probes.iter().zip(placed) {
                if let s @ 1.. = self.interrupt.load(Ordering::SeqCst) {
                    return Err(ProbeError::Interrupted(s as i32));
                }
                self.open_group(opts, target, probe, pid, cpu, start)?;
            }
        }
        Ok(())
    }

    fn open_group(
        &mut self,
        opts: &RecordOptions,
        target: &ProbeTarget,
        probe: &PlacedPair,
        pid: i32,
        cpu: Option<usize>,
        start: Start,
    ) -> Result<(), ProbeError> {
        let open_err = |cause| ProbeError::OpenProbe {
            function: target.function.clone(),
            pid,
            cpu,
            cause,
        };
        let ring_of = match cpu {
            Some(cpu) => RingOf::Cpu(cpu),
            None => RingOf::Task(pid),
        };
        let ring = self.ring(ring_of);
        // A task after the first gets a smaller ring: a 32 MiB ring costs
        // ~40 ms to set up, too much for every process a shell starts.
        let ring_bytes = match ring_of {
            RingOf::Task(_) if !self.rings.is_empty() => opts.buffer_bytes.min(LATER_TASK_RING),
            _ => opts.buffer_bytes,
        };
        let key = match &target.place {
            Place::Tracepoints { key, .. } => key.clone(),
            _ => None,
        };
        let mut leader = probe_builder(probe.entry_id, pid, cpu, self.inherit);
        if key.is_some() {
            leader.sample(SampleFlag::RAW);
        }
        // Chains are taken at function entries only: at a kernel event the
        // user registers are those of the system call's wrapper, whose
        // caller a frame-pointer walk would skip. Kernel probes get the
        // chain of the probed function around them.
        let chain = match target.place {
            Place::Uprobe { .. } => opts.callchain,
            _ => Callchain::None,
        };
        let extra = match chain {
            Callchain::None => Extra::None,
            Callchain::FramePointer => {
                leader
                    .sample(SampleFlag::CALLCHAIN)
                    .exclude_callchain_kernel(true);
                Extra::Callchain
            }
            Callchain::Dwarf { stack_bytes } => {
                leader
                    .sample(SampleFlag::REGS_USER | SampleFlag::STACK_USER)
                    .sample_regs_user(USER_REGS_MASK)
                    .sample_stack_user(stack_bytes);
                Extra::UserStack
            }
        };
        if opts.callchain != Callchain::None && self.mapped.insert((pid, cpu)) {
            // Where the binaries are mapped, to resolve the chains: the
            // first group of each observed task (or of the whole CPU) on
            // each CPU reports its task's new mappings.
            leader.mmap(true).mmap2(true);
        }

        leader
            .enabled(false)
            .enable_on_exec(start == Start::OnExec)
            // The first event of each CPU owns the ring buffer and reports
            // the threads' forks, exits and names.
            .task(ring.is_none())
            .comm(ring.is_none())
            .wakeup_watermark(ring_bytes / 4);
        let mut leader = leader.build().map_err(open_err)?;

        let mut ret = probe_builder(probe.return_id, pid, cpu, self.inherit);
        ret.enabled(true);
        if key.is_some() {
            ret.sample(SampleFlag::RAW);
        }
        let ret = ret.build_with_group(&mut leader).map_err(open_err)?;
        let mut members = vec![ret];
        for spec in &opts.counters {
            let mut b = counter_builder(spec);
            observe(&mut b, pid, cpu, self.inherit);
            // Enabled: a member opened disabled is only put on the PMU when
            // its leader's PMU is next rescheduled, which in a CPU-wide
            // group may never happen (its counts then stay 0).
            b.enabled(true)
                // The kernel wants every member of an inherited group to
                // agree with the leader on PERF_SAMPLE_READ (members with a
                // sample period of 0 never sample).
                .sample(SAMPLE_FLAGS)
                // Every event of a group must use the same clock.
                .clockid(Clock::MONOTONIC);
            set_read_format(&mut b);
            let counter = b.build_with_group(&mut leader).map_err(|e| {
                let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
                ProbeError::OpenCounter {
                    counter: spec.name.clone(),
                    errno,
                    message: explain(spec, errno),
                }
            })?;
            members.push(counter);
        }

        let (entry_key, return_key) = key.unzip();
        self.decoder.add_id_with(
            leader.id(),
            target.probe_id,
            RecordKind::Entry,
            entry_key,
            extra,
        );
        self.decoder.add_id(
            members[0].id(),
            target.probe_id,
            RecordKind::Return,
            return_key,
        );

        let leader_fd = leader.as_raw_fd();
        let ring_fd = match ring {
            Some((index, fd)) => {
                set_output(leader_fd, fd)?;
                self.counters.push(leader);
                self.leaders.push((index, leader_fd));
                fd
            }
            None => {
                let sampler = leader
                    .sampled(ring_bytes)
                    .map_err(|cause| ProbeError::Mmap {
                        ring: ring_of.describe(),
                        bytes: ring_bytes,
                        cause,
                    })?;
                let fd = sampler.as_raw_fd();
                self.leaders.push((self.rings.len(), leader_fd));
                self.rings.push((ring_of, sampler));
                fd
            }
        };
        set_output(members[0].as_raw_fd(), ring_fd)?;
        self.counters.extend(members);
        if start == Start::Now {
            enable_group(leader_fd)?;
        }
        Ok(())
    }

    /// Moves the samples in the rings into `out` (a burst's: nothing is
    /// counted or written).
    fn collect(&mut self, out: &mut Vec<OwnedSample>) {
        for (_, ring) in self.rings.iter_mut() {
            while let Some(rec) = ring.next_record() {
                let body = rec.to_contiguous();
                if let Some(Decoded::Sample(s)) = self.decoder.decode(rec.ty(), &body) {
                    out.push(OwnedSample::from(&s));
                }
            }
        }
    }

    /// Moves every record in the rings into the trace.
    fn drain<W: Write>(&mut self, writer: &mut TraceWriter<W>) -> Result<(), ProbeError> {
        let tally = &mut self.tally;
        for (index, (_, ring)) in self.rings.iter_mut().enumerate() {
            while let Some(rec) = ring.next_record() {
                let body = rec.to_contiguous();
                match self.decoder.decode(rec.ty(), &body) {
                    Some(Decoded::Sample(s)) => {
                        tally.count(index, s.cpu, s.tid, s.probe);
                        writer.push_sample(&s)?;
                        if let Some(e) = self.decoder.take_extra() {
                            writer.push_event(&e)?;
                        }
                    }
                    Some(Decoded::Event(e)) => {
                        if let Event::Lost { count, .. } = e {
                            *tally.lost.entry(index).or_default() += count;
                        }
                        writer.push_event(&e)?;
                    }
                    Some(Decoded::Other) | None => {}
                }
            }
        }
        Ok(())
    }

    /// Ends a run of `--repeat`: [`Events::finish`], then closes every
    /// group and ring, so that the next run starts with none. Returns the
    /// samples lost.
    fn end_run<W: Write>(
        &mut self,
        writer: &mut TraceWriter<W>,
        time: u64,
    ) -> Result<u64, ProbeError> {
        let lost = self.finish(writer, time)?;
        self.leaders.clear();
        self.mapped.clear();
        // Closing a probe event waits for the kernel to unregister its
        // probe (about 0.1 s each here): done beside the next run.
        let rings = std::mem::take(&mut self.rings);
        let counters = std::mem::take(&mut self.counters);
        // One run's groups being closed at a time: descriptors do not pile
        // up over many short runs.
        for closing in self.closing.drain(..) {
            let _ = closing.join();
        }
        self.closing
            .push(std::thread::spawn(move || drop((rings, counters))));
        let tally = &mut self.tally;
        tally.earlier += tally.samples.iter().sum::<u64>();
        tally.samples.clear();
        tally.lost.clear();
        tally.last_cpu.clear();
        Ok(lost)
    }

    /// Stops every group, moves what is left into the trace, and accounts
    /// for every probe hit: the kernel reports records it dropped only when
    /// it next writes into that ring, so drops at the very end would go
    /// unreported. The probe events' own counts (entries and returns per
    /// group, threads included) give the exact number of hits; the hits
    /// neither written nor reported lost become a `Lost` event of their
    /// ring's CPU (for a task's ring, the CPU of its last record). Returns
    /// the samples lost.
    fn finish<W: Write>(
        &mut self,
        writer: &mut TraceWriter<W>,
        time: u64,
    ) -> Result<u64, ProbeError> {
        for &(_, fd) in &self.leaders {
            // A group whose thread has gone is already disabled.
            let _ = sys::disable_group(fd);
        }
        self.drain(writer)?;
        let mut hits: BTreeMap<usize, u64> = BTreeMap::new();
        for &(ring, fd) in &self.leaders {
            let values = sys::read_group(fd).map_err(|cause| ProbeError::Sys {
                what: "reading the probe counts".into(),
                cause,
            })?;
            // Group order: entry probe, return probe, counters.
            *hits.entry(ring).or_default() += values.iter().take(2).sum::<u64>();
        }
        let mut lost = 0;
        for (&ring, &hits) in &hits {
            let written = self.tally.samples_in(ring);
            let missing = hits.saturating_sub(written);
            let reported = self.tally.lost.get(&ring).copied().unwrap_or(0);
            if missing > reported {
                let cpu = match self.rings[ring].0 {
                    RingOf::Cpu(cpu) => cpu as u32,
                    RingOf::Task(_) => {
                        u32::from(self.tally.last_cpu.get(ring).copied().unwrap_or(0))
                    }
                };
                let e = Event::Lost {
                    time,
                    cpu,
                    count: missing - reported,
                };
                writer.push_event(&e)?;
                *self.tally.lost.entry(ring).or_default() += missing - reported;
            }
            lost += missing;
        }
        Ok(lost)
    }
}

impl Drop for Events {
    /// Waits for the groups of earlier runs to be closed: the probes they
    /// use can be removed from tracefs only then.
    fn drop(&mut self) {
        for closing in self.closing.drain(..) {
            let _ = closing.join();
        }
    }
}

fn set_output(fd: RawFd, ring: RawFd) -> Result<(), ProbeError> {
    sys::set_output(fd, ring).map_err(|cause| ProbeError::Sys {
        what: "redirecting a probe into its CPU's ring buffer (PERF_EVENT_IOC_SET_OUTPUT)".into(),
        cause,
    })
}

fn enable_group(fd: RawFd) -> Result<(), ProbeError> {
    sys::enable_group(fd).map_err(|cause| ProbeError::Sys {
        what: "enabling a probe group".into(),
        cause,
    })
}

struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            start: now,
            last: now,
            shown: false,
        }
    }

    fn update(&mut self, samples: u64, bytes: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\rperfunc: recording: {samples} records, {:.0} records/s, {:.1} MiB written   ",
            samples as f64 / secs,
            bytes as f64 / (1024.0 * 1024.0)
        );
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r{:78}\r", "");
            self.shown = false;
        }
    }
}

/// The tasks a per-thread recording follows: every new thread and process
/// of the target is held at birth until its groups are open.
struct Following<'a> {
    tracer: Option<Tracer>,
    /// `SIGCHLD` as a descriptor, so that a birth wakes the loop at once.
    signals: Option<ChildSignals>,
    placed: &'a [PlacedPair],
    cpus: &'a [Option<usize>],
}

impl<'a> Following<'a> {
    fn new(
        tracer: Option<Tracer>,
        placed: &'a [PlacedPair],
        cpus: &'a [Option<usize>],
    ) -> Result<Following<'a>, ProbeError> {
        let signals = tracer
            .is_some()
            .then(ChildSignals::new)
            .transpose()
            .map_err(|cause| ProbeError::Sys {
                what: "signalfd for SIGCHLD".into(),
                cause,
            })?;
        Ok(Following {
            tracer,
            signals,
            placed,
            cpus,
        })
    }

    /// Opens the groups of every task born since the last call, then lets
    /// it run.
    fn step(&mut self, opts: &RecordOptions, events: &mut Events) -> Result<(), ProbeError> {
        let Some(tracer) = &mut self.tracer else {
            return Ok(());
        };
        if let Some(signals) = &self.signals {
            signals.drain();
        }
        let born = tracer.step().map_err(|cause| ProbeError::Sys {
            what: "waiting for the target's threads (ptrace)".into(),
            cause,
        })?;
        for tid in born {
            let opened = events.open_task(opts, self.placed, self.cpus, tid);
            tracer.resume(tid);
            opened?;
        }
        Ok(())
    }

    /// The descriptors to poll: every ring whose task still runs (the ring
    /// of a task that has exited reports a hang-up forever), the process
    /// descriptor and `SIGCHLD`.
    fn poll_fds(&self, events: &Events, pidfd: Option<&OwnedFd>) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = events
            .rings
            .iter()
            .filter(|(of, _)| match (of, &self.tracer) {
                (RingOf::Task(tid), Some(tracer)) => tracer.traces(*tid),
                _ => true,
            })
            .map(|(_, r)| r.as_raw_fd())
            .collect();
        fds.extend(pidfd.map(|fd| fd.as_raw_fd()));
        fds.extend(self.signals.as_ref().map(ChildSignals::fd));
        fds
    }

    /// Whether the watched process has ended: `Some(Some(status))` for a
    /// child perfunc reaped, `Some(None)` for an attached process that is
    /// gone.
    fn ended(&mut self, watched: Watched) -> Result<Option<Option<WaitStatus>>, ProbeError> {
        match (watched, &mut self.tracer) {
            // The tracer reaps the child (`waitpid(-1)`).
            (Watched::Child(_), Some(tracer)) => Ok(tracer.ended().map(Some)),
            _ => ended(watched),
        }
    }

    /// Lets every task still traced go on untraced; returns those that
    /// could not be detached in time.
    fn detach(&mut self) -> Vec<i32> {
        match &mut self.tracer {
            Some(tracer) => tracer.detach_all(DETACH_WAIT),
            None => Vec::new(),
        }
    }
}

/// How long perfunc waits for the target's threads to be detached.
const DETACH_WAIT: Duration = Duration::from_secs(1);

/// The recording loop; when it fails (a write error, a full disk), a
/// command perfunc started is stopped as on Ctrl-C, and a process it
/// attached to is let go, before the error is returned.
#[allow(clippy::too_many_arguments)]
fn run<W: Write>(
    opts: &RecordOptions,
    events: &mut Events,
    writer: &mut TraceWriter<W>,
    stop: &StopFlag,
    watched: Watched,
    pidfd: Option<OwnedFd>,
    follow: &mut Following<'_>,
    progress: &mut Progress,
    started: Instant,
) -> Result<RunEnd, ProbeError> {
    let result = record_loop(
        opts, events, writer, stop, watched, pidfd, follow, progress, started,
    );
    if result.is_err() {
        if let Watched::Child(pid) = watched {
            stop_child(pid, follow);
        }
    }
    // Processes the target left behind run on, untraced.
    let strays = follow.detach();
    result.map(|end| RunEnd { strays, ..end })
}

/// How the watched target's run ended.
#[derive(Debug, Default)]
struct RunEnd {
    /// How the command perfunc started exited.
    exit: Option<WaitStatus>,
    /// The stop signal perfunc received, if any.
    stopped_by: Option<i32>,
    /// Whether `--duration` ran out.
    timed_out: bool,
    /// Tasks of the run still traced after the detach wait: the next run's
    /// tracer lets them go instead of taking them for its own.
    strays: Vec<i32>,
}

impl RunEnd {
    /// Whether another run of `--repeat` may start: the command exited 0,
    /// and the user did not stop perfunc.
    fn goes_on(&self) -> bool {
        self.stopped_by.is_none()
            && !self.timed_out
            && matches!(self.exit, Some(WaitStatus::Exited(0)))
    }
}

/// Ends the recording: stops the groups, accounts for lost records (`lost`
/// of earlier runs), and builds the result.
fn finish<W: Write>(
    mut events: Events,
    writer: &mut TraceWriter<W>,
    started: Instant,
    mut progress: Progress,
    lost: u64,
    end: RunEnd,
    runs: u32,
) -> Result<RecordResult, ProbeError> {
    let lost = lost + events.finish(writer, sys::monotonic_ns())?;
    progress.clear();
    let footer = Footer {
        duration_ns: started.elapsed().as_nanos() as u64,
        samples: events.tally.samples(),
        lost,
        exit: end.exit.map(|s| match s {
            WaitStatus::Exited(code) => ExitStatus {
                code: Some(code),
                signal: None,
                core_dumped: false,
            },
            WaitStatus::Signaled {
                signal,
                core_dumped,
            } => ExitStatus {
                code: None,
                signal: Some(signal),
                core_dumped,
            },
        }),
        interrupted: end.stopped_by.is_some() || end.timed_out,
    };
    Ok(RecordResult {
        footer,
        stopped_by: end.stopped_by,
        threads: events.tally.tids.len(),
        kernel_missed: 0,
        per_probe: std::mem::take(&mut events.tally.per_probe),
        runs,
    })
}

/// Stops and reaps a child perfunc started, without touching the trace:
/// SIGTERM, SIGKILL after the grace period.
fn stop_child(pid: i32, follow: &mut Following<'_>) {
    let _ = sys::kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    let mut killed = false;
    loop {
        let ended = match &mut follow.tracer {
            Some(tracer) => {
                // Signals are passed on; newborns run on, unrecorded.
                for tid in tracer.step().unwrap_or_default() {
                    tracer.resume(tid);
                }
                tracer.ended().is_some()
            }
            None => !matches!(sys::try_wait(pid, false), Ok(None)),
        };
        if ended {
            return;
        }
        if Instant::now() >= deadline {
            if killed {
                return;
            }
            let _ = sys::kill(pid, libc::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[allow(clippy::too_many_arguments)]
fn record_loop<W: Write>(
    opts: &RecordOptions,
    events: &mut Events,
    writer: &mut TraceWriter<W>,
    stop: &StopFlag,
    watched: Watched,
    pidfd: Option<OwnedFd>,
    follow: &mut Following<'_>,
    progress: &mut Progress,
    started: Instant,
) -> Result<RunEnd, ProbeError> {
    let mut end = RunEnd::default();
    loop {
        let fds = follow.poll_fds(events, pidfd.as_ref());
        sys::poll_readable(&fds, POLL_INTERVAL).map_err(|cause| ProbeError::Sys {
            what: "poll".into(),
            cause,
        })?;
        follow.step(opts, events)?;
        events.drain(writer)?;
        writer.flush()?;
        progress.update(events.tally.samples(), writer.bytes_written());
        if let Some(status) = follow.ended(watched)? {
            end.exit = status;
            break;
        }
        if let Some(signal) = stop.signal() {
            end.stopped_by = Some(signal);
            break;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            end.timed_out = true;
            break;
        }
    }
    if let (Watched::Child(pid), None) = (watched, end.exit) {
        end.exit = Some(terminate_child(pid, events, writer, opts, follow)?);
    }
    Ok(end)
}

/// Whether the watched process has ended: `Some(Some(status))` for a child
/// perfunc reaped, `Some(None)` for an attached process that is gone.
fn ended(watched: Watched) -> Result<Option<Option<WaitStatus>>, ProbeError> {
    match watched {
        Watched::Child(pid) => Ok(sys::try_wait(pid, false)
            .map_err(|cause| ProbeError::Sys {
                what: "waitpid".into(),
                cause,
            })?
            .map(Some)),
        Watched::Process(pid) => {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
            Ok((!alive).then_some(None))
        }
        Watched::Nothing => Ok(None),
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Stops a child perfunc started: SIGTERM, then SIGKILL after a grace
/// period, draining the rings meanwhile.
fn terminate_child<W: Write>(
    pid: i32,
    events: &mut Events,
    writer: &mut TraceWriter<W>,
    opts: &RecordOptions,
    follow: &mut Following<'_>,
) -> Result<WaitStatus, ProbeError> {
    let mut killed = false;
    let _ = sys::kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    loop {
        // A traced child stops for the signal until the tracer passes it on.
        follow.step(opts, events)?;
        events.drain(writer)?;
        if let Some(Some(status)) = follow.ended(Watched::Child(pid))? {
            return Ok(status);
        }
        if Instant::now() >= deadline && !killed {
            let _ = sys::kill(pid, libc::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
