//! Holding every new thread and process of the target at birth, so that
//! its own perf events are open before it runs an instruction: the way
//! perfunc follows threads on kernels that refuse `inherit` together with
//! `PERF_SAMPLE_READ` (before Linux 6.12), and wherever per-thread
//! counters are asked for.
//!
//! perfunc seizes the target (`PTRACE_SEIZE` with `TRACECLONE`,
//! `TRACEFORK` and `TRACEVFORK`), so every task the target creates starts
//! in a ptrace-stop. [`Tracer::step`] collects those births; the caller
//! opens the newborn's events and then [`Tracer::resume`]s it. Every other
//! stop is passed through at once: signals are delivered as if no tracer
//! were there, group-stops are kept with `PTRACE_LISTEN` (so `SIGSTOP` and
//! `SIGCONT` behave as usual), and exits are noted.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::{Duration, Instant};

use super::sys::{ptrace, ptrace_event_message, wait_any, WaitStatus};

/// Whether a ptrace-stop is a group-stop signal.
fn is_stop_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// The ptrace options of every seized task: its new threads and processes
/// are seized too. Not `EXITKILL`: if perfunc dies, the kernel detaches
/// the target, which runs on.
const OPTIONS: usize =
    (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK) as usize;

/// The thread group of `tid`, from `/proc`.
fn tgid_of(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One ptrace-stop or exit, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Exited(WaitStatus),
    /// A ptrace event stop (`PTRACE_EVENT_*`) with its signal.
    Event {
        event: i32,
        signal: i32,
    },
    /// A signal-delivery-stop.
    Signal(i32),
}

fn decode(status: libc::c_int) -> Option<Status> {
    if libc::WIFEXITED(status) {
        return Some(Status::Exited(WaitStatus::Exited(libc::WEXITSTATUS(
            status,
        ))));
    }
    if libc::WIFSIGNALED(status) {
        return Some(Status::Exited(WaitStatus::Signaled {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }));
    }
    if libc::WIFSTOPPED(status) {
        let signal = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        return Some(if event != 0 {
            Status::Event { event, signal }
        } else {
            Status::Signal(signal)
        });
    }
    None
}

/// The tasks perfunc traces, and what became of the one it watches.
#[derive(Debug)]
pub struct Tracer {
    /// The process whose end ends the recording.
    main: i32,
    /// Every traced task: tid → thread group.
    tasks: BTreeMap<i32, i32>,
    /// Tasks whose first stop was seen but that the caller has not resumed,
    /// and whether that stop is a group-stop (resumed with `LISTEN`).
    held: BTreeMap<i32, bool>,
    /// How the watched process ended (its leader's status).
    exit: Option<WaitStatus>,
    /// Tasks that reported a stop before perfunc knew them: their birth
    /// stop, taken as such.
    born: Vec<i32>,
    /// Tasks an earlier tracer on this thread could not detach in time
    /// (`record --repeat`: what a run left behind), and the tasks they
    /// create: detached at their next stop, never taken for this run's.
    strays: BTreeSet<i32>,
}

impl Tracer {
    /// Seizes `pid`, a child perfunc forked and holds before its exec: its
    /// future threads and processes start held.
    pub fn seize_child(pid: i32) -> io::Result<Tracer> {
        ptrace(libc::PTRACE_SEIZE, pid, OPTIONS)?;
        Ok(Tracer::new(pid, [(pid, pid)]))
    }

    /// Seizes every thread of the running process `pid`, repeating until no
    /// thread appears that was created by one not yet seized (threads
    /// created by a seized thread start held). Returns the tracer and the
    /// threads, which run on: their events are opened while they run.
    pub fn seize_process(
        pid: i32,
        threads: impl Fn() -> io::Result<Vec<i32>>,
    ) -> io::Result<(Tracer, Vec<i32>)> {
        let mut tracer = Tracer::new(pid, []);
        loop {
            let new: Vec<i32> = threads()?
                .into_iter()
                .filter(|t| !tracer.tasks.contains_key(t))
                .collect();
            if new.is_empty() {
                break;
            }
            for tid in new {
                match ptrace(libc::PTRACE_SEIZE, tid, OPTIONS) {
                    Ok(_) => {
                        tracer.tasks.insert(tid, pid);
                    }
                    // The thread ended between listing and seizing.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let threads = tracer.tasks.keys().copied().collect();
        Ok((tracer, threads))
    }

    fn new(main: i32, tasks: impl IntoIterator<Item = (i32, i32)>) -> Tracer {
        Tracer {
            main,
            tasks: tasks.into_iter().collect(),
            held: BTreeMap::new(),
            exit: None,
            born: Vec::new(),
            strays: BTreeSet::new(),
        }
    }

    /// Handles every stop and exit reported so far, without blocking.
    /// Returns the tasks born since the last call, each held until
    /// [`Tracer::resume`].
    pub fn step(&mut self) -> io::Result<Vec<i32>> {
        loop {
            let (tid, status) = match wait_any() {
                Ok(Some(reported)) => reported,
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            };
            if let Some(status) = decode(status) {
                self.handle(tid, status);
            }
        }
        Ok(std::mem::take(&mut self.born))
    }

    /// Takes over the tasks an earlier tracer left traced
    /// ([`Tracer::detach_all`]'s result), so that their stops are not taken
    /// for this tracer's newborn tasks: each is detached at its next stop.
    pub fn with_strays(mut self, strays: impl IntoIterator<Item = i32>) -> Tracer {
        self.strays.extend(strays);
        self
    }

    fn handle(&mut self, tid: i32, status: Status) {
        if self.strays.contains(&tid) {
            self.let_stray_go(tid, status);
            return;
        }
        match status {
            Status::Exited(s) => {
                self.tasks.remove(&tid);
                self.held.remove(&tid);
                if tid == self.main {
                    self.exit = Some(s);
                }
            }
            // A clone, fork or vfork: the new task reports a stop of its
            // own, which is where it is handled.
            Status::Event { event, .. }
                if event == libc::PTRACE_EVENT_CLONE
                    || event == libc::PTRACE_EVENT_FORK
                    || event == libc::PTRACE_EVENT_VFORK =>
            {
                let _ = ptrace(libc::PTRACE_CONT, tid, 0);
            }
            Status::Event { event, signal } if event == libc::PTRACE_EVENT_STOP => {
                let group_stop = is_stop_signal(signal);
                if let std::collections::btree_map::Entry::Vacant(e) = self.tasks.entry(tid) {
                    // The first stop of a new task (a group-stop if it was
                    // born while its process was stopping).
                    e.insert(tgid_of(tid).unwrap_or(tid));
                    self.held.insert(tid, group_stop);
                    self.born.push(tid);
                } else if self.held.contains_key(&tid) {
                    // Held already: resumed by `resume`.
                } else if group_stop {
                    // Stays stopped until SIGCONT, without perfunc in the
                    // way.
                    let _ = ptrace(libc::PTRACE_LISTEN, tid, 0);
                } else {
                    let _ = ptrace(libc::PTRACE_CONT, tid, 0);
                }
            }
            Status::Event { .. } => {
                let _ = ptrace(libc::PTRACE_CONT, tid, 0);
            }
            Status::Signal(signal) => {
                // Delivered as if perfunc were not there.
                let _ = ptrace(libc::PTRACE_CONT, tid, signal as usize);
            }
        }
    }

    /// Detaches a stray task at a stop; a task it just created is a stray
    /// too (it reports a stop of its own, or exits).
    fn let_stray_go(&mut self, tid: i32, status: Status) {
        let signal = match status {
            Status::Exited(_) => {
                self.strays.remove(&tid);
                return;
            }
            Status::Event { event, .. }
                if event == libc::PTRACE_EVENT_CLONE
                    || event == libc::PTRACE_EVENT_FORK
                    || event == libc::PTRACE_EVENT_VFORK =>
            {
                if let Ok(child) = ptrace_event_message(tid) {
                    self.strays.insert(child as i32);
                }
                0
            }
            Status::Event { event, signal }
                if event == libc::PTRACE_EVENT_STOP && is_stop_signal(signal) =>
            {
                signal
            }
            Status::Event { .. } => 0,
            Status::Signal(signal) => signal,
        };
        if ptrace(libc::PTRACE_DETACH, tid, signal as usize).is_ok() {
            self.strays.remove(&tid);
        }
    }

    /// Lets a newborn task run, its events open.
    pub fn resume(&mut self, tid: i32) {
        match self.held.remove(&tid) {
            Some(false) => {
                let _ = ptrace(libc::PTRACE_CONT, tid, 0);
            }
            Some(true) => {
                let _ = ptrace(libc::PTRACE_LISTEN, tid, 0);
            }
            None => {}
        }
    }

    /// The watched process's end: its leader's status once the leader and
    /// every other thread of it have exited.
    pub fn ended(&mut self) -> Option<WaitStatus> {
        self.exit?;
        let main = self.main;
        // A thread that was there when another one called execve vanishes
        // without an exit report: the kernel gives its tid to nobody else.
        self.tasks.retain(|&tid, &mut g| {
            g != main || std::path::Path::new(&format!("/proc/{tid}")).exists()
        });
        let threads_left = self.tasks.values().any(|&g| g == main);
        self.exit.filter(|_| !threads_left)
    }

    /// Whether `tid` is traced and has not exited.
    pub fn traces(&self, tid: i32) -> bool {
        self.tasks.contains_key(&tid)
    }

    /// Lets every traced task go on untraced (after `-p`): each is
    /// interrupted and detached, with any signal it was about to get.
    /// Tasks born meanwhile are detached too. Gives up after `timeout`
    /// (the kernel detaches what is left when perfunc exits) and returns
    /// the tasks still traced, strays included, for the next tracer on this
    /// thread ([`Tracer::with_strays`]).
    pub fn detach_all(&mut self, timeout: Duration) -> Vec<i32> {
        for &tid in self.tasks.keys().chain(&self.strays) {
            if self.held.contains_key(&tid) {
                continue;
            }
            let _ = ptrace(libc::PTRACE_INTERRUPT, tid, 0);
        }
        for tid in std::mem::take(&mut self.held).into_keys() {
            if ptrace(libc::PTRACE_DETACH, tid, 0).is_ok() {
                self.tasks.remove(&tid);
            }
        }
        let deadline = Instant::now() + timeout;
        while !(self.tasks.is_empty() && self.strays.is_empty()) && Instant::now() < deadline {
            let (tid, status) = match wait_any() {
                Ok(Some(reported)) => reported,
                Ok(None) => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => break,
            };
            let signal = match decode(status) {
                Some(Status::Exited(_)) | None => {
                    self.tasks.remove(&tid);
                    self.strays.remove(&tid);
                    continue;
                }
                Some(Status::Signal(s)) => s,
                Some(Status::Event { event, signal })
                    if event == libc::PTRACE_EVENT_STOP && is_stop_signal(signal) =>
                {
                    signal
                }
                Some(Status::Event { .. }) => 0,
            };
            let _ = ptrace(libc::PTRACE_DETACH, tid, signal as usize);
            self.tasks.remove(&tid);
            self.strays.remove(&tid);
        }
        let left = std::mem::take(&mut self.tasks).into_keys();
        left.chain(std::mem::take(&mut self.strays)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the test named `name` again, alone in a process of its own,
    /// with `PERFUNC_ALONE` set: a tracer waits for any child of its
    /// process, which would reap other tests' children. Returns whether
    /// this is that process.
    fn alone(name: &str) -> bool {
        if std::env::var_os("PERFUNC_ALONE").is_some() {
            return true;
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads", "1"])
            .env("PERFUNC_ALONE", "1")
            .status()
            .unwrap();
        assert!(status.success(), "{name} failed in its own process");
        false
    }

    /// A `sleep` child, traced by a tracer that could not detach it.
    fn left_traced() -> (std::process::Child, Vec<i32>) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut tracer = Tracer::seize_child(pid).unwrap();
        // No time to wait: the interrupt's stop is still to come.
        let left = tracer.detach_all(Duration::ZERO);
        assert_eq!(left, [pid]);
        (child, left)
    }

    fn traced_by(pid: i32) -> String {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("TracerPid:"));
        line.unwrap().split_whitespace().nth(1).unwrap().to_owned()
    }

    /// Steps `tracer` for up to 5 s, until `done`; returns every task
    /// taken as born.
    fn step_until(tracer: &mut Tracer, done: impl Fn(&Tracer) -> bool) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut born = Vec::new();
        while !done(tracer) && Instant::now() < deadline {
            born.extend(tracer.step().unwrap());
            std::thread::sleep(Duration::from_millis(5));
        }
        born
    }

    #[test]
    fn a_task_an_earlier_tracer_left_is_let_go_not_taken_for_a_newborn() {
        if !alone(
            "probe::ptrace::tests::a_task_an_earlier_tracer_left_is_let_go_not_taken_for_a_newborn",
        ) {
            return;
        }
        // Without the strays: the next tracer takes the leftover's stop for
        // a newborn of its own run.
        let (mut child, left) = left_traced();
        let mut next = Tracer::new(0, []);
        let born = step_until(&mut next, |t| !t.born.is_empty() || !t.held.is_empty());
        assert_eq!(born, left);
        next.detach_all(Duration::from_secs(1));
        child.kill().unwrap();
        child.wait().unwrap();
        // With them: detached at that stop, and running on untraced.
        let (mut child, left) = left_traced();
        let mut next = Tracer::new(0, []).with_strays(left.clone());
        let born = step_until(&mut next, |t| t.strays.is_empty());
        assert_eq!((born, next.strays.len()), (vec![], 0));
        assert_eq!(traced_by(left[0]), "0");
        assert_eq!(next.detach_all(Duration::ZERO), Vec::<i32>::new());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn decodes_wait_statuses() {
        // Exited with 3; killed by SIGKILL; a clone event stop; a
        // signal-delivery-stop of SIGUSR1.
        assert_eq!(decode(3 << 8), Some(Status::Exited(WaitStatus::Exited(3))));
        assert_eq!(
            decode(libc::SIGKILL),
            Some(Status::Exited(WaitStatus::Signaled {
                signal: libc::SIGKILL,
                core_dumped: false
            }))
        );
        let clone = 0x7f | (libc::SIGTRAP << 8) | (libc::PTRACE_EVENT_CLONE << 16);
        assert_eq!(
            decode(clone),
            Some(Status::Event {
                event: libc::PTRACE_EVENT_CLONE,
                signal: libc::SIGTRAP
            })
        );
        assert_eq!(
            decode(0x7f | (libc::SIGUSR1 << 8)),
            Some(Status::Signal(libc::SIGUSR1))
        );
    }
}
