//! Thin, checked wrappers over the raw system calls perfunc needs beyond
//! what perf-event2 and the standard library offer. Every `unsafe` block of
//! the crate that is not inside perf-event2 lives here.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

/// `mount -t tracefs nodev DIR`.
pub fn mount_tracefs(dir: &Path) -> io::Result<()> {
    let source = cstring(b"nodev")?;
    let target = cstring(dir.as_os_str().as_bytes())?;
    let fstype = cstring(b"tracefs")?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the
    // call; a null data pointer is allowed by mount(2).
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Redirects the ring-buffer output of perf event `fd` into the ring buffer
/// of perf event `target` (which must be mmapped and on the same CPU).
pub fn set_output(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: PERF_EVENT_IOC_SET_OUTPUT takes an fd by value; both fds are
    // open perf event descriptors owned by the caller.
    check(unsafe { perf_event_open_sys::ioctls::SET_OUTPUT(fd, target) }).map(drop)
}

/// Enables perf event `fd` and every member of its group.
pub fn enable_group(fd: RawFd) -> io::Result<()> {
    // SAFETY: PERF_EVENT_IOC_ENABLE takes a flags argument by value; `fd` is
    // an open perf event descriptor owned by the caller.
    check(unsafe {
        perf_event_open_sys::ioctls::ENABLE(fd, perf_event_open_sys::bindings::PERF_IOC_FLAG_GROUP)
    })
    .map(drop)
}

/// Disables perf event `fd` and every member of its group.
pub fn disable_group(fd: RawFd) -> io::Result<()> {
    // SAFETY: as for `enable_group`.
    check(unsafe {
        perf_event_open_sys::ioctls::DISABLE(fd, perf_event_open_sys::bindings::PERF_IOC_FLAG_GROUP)
    })
    .map(drop)
}

/// Reads a group leader opened with `PERF_FORMAT_GROUP |
/// TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING` (no ids): the value of every
/// member, leader first, inherited threads' counts included.
pub fn read_group(fd: RawFd) -> io::Result<Vec<u64>> {
    let mut buf = [0u64; 64];
    // SAFETY: reading at most size_of_val(&buf) bytes into a valid buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let words = n as usize / 8;
    let nr = buf[0] as usize;
    if words < 3 + nr {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "short group read",
        ));
    }
    Ok(buf[3..3 + nr].to_vec())
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of perfunc's samples.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises the soft limit of open files to the hard limit; returns the new
/// soft limit. Each probe needs 2 + counters descriptors per CPU.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit read back from the kernel.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// The number of configured CPUs (perf events are opened on each).
pub fn online_cpus() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let cpus = parse_cpu_list(text.trim());
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    } else {
        cpus
    }
}

/// Parses a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

/// A process file descriptor: readable once the process has exited.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until one of `fds` is readable, or the timeout. Returns the indexes
/// of the ready descriptors (readable, hung up or in error).
pub fn poll_readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structures.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(Vec::new())
        } else {
            Err(err)
        };
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

/// How a child ended, from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether a core was dumped.
        core_dumped: bool,
    },
}

/// Reaps child `pid` if it has ended (without blocking unless `block`).
pub fn try_wait(pid: i32, block: bool) -> io::Result<Option<WaitStatus>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: `status` is a valid out pointer.
    let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        return Ok(None);
    }
    Ok(Some(if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        WaitStatus::Signaled {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }
    }))
}

/// `PTRACE_GETEVENTMSG`: the message of the ptrace event `tid` is stopped
/// at (the new task's tid at a clone, fork or vfork event).
pub fn ptrace_event_message(tid: i32) -> io::Result<u64> {
    let mut message: libc::c_ulong = 0;
    // SAFETY: the kernel writes one unsigned long to `message`, which
    // lives across the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut message as *mut libc::c_ulong as *mut libc::c_void,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(message)
    }
}

/// One ptrace request that takes an integer `data` and no address
/// (SEIZE, CONT, LISTEN, INTERRUPT, DETACH).
pub fn ptrace(request: libc::c_uint, tid: i32, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: these requests read no memory of the caller's: the address is
    // null and `data` an integer (options or a signal number).
    let ret = unsafe {
        libc::ptrace(
            request,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The next stop or exit of any child or tracee, without blocking:
/// `(tid, raw wait status)`, or `None` when none is pending.
pub fn wait_any() -> io::Result<Option<(i32, libc::c_int)>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer.
    let tid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
    match tid {
        t if t < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        t => Ok(Some((t, status))),
    }
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    let ret = unsafe { libc::kill(pid, signal) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

/// The conventional name of a signal ("SIGSEGV").
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// `SIGCHLD` as a readable file descriptor: blocked in the calling thread
/// and taken through a signalfd, so that a poll wakes as soon as a traced
/// task stops or a child exits. The old signal mask comes back on drop.
pub struct ChildSignals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl ChildSignals {
    /// Blocks `SIGCHLD` in this thread and opens the signalfd.
    pub fn new() -> io::Result<ChildSignals> {
        // SAFETY: the sigset functions initialise and fill valid locals;
        // pthread_sigmask and signalfd read them.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            if ret != 0 {
                return Err(io::Error::from_raw_os_error(ret));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                let err = io::Error::last_os_error();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(err);
            }
            Ok(ChildSignals {
                fd: OwnedFd::from_raw_fd(fd),
                old,
            })
        }
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending notification (the caller then waits on all
    /// children: one notification may stand for several).
    pub fn drain(&self) {
        let mut buf = [0u8; 128 * 8];
        loop {
            // SAFETY: reading into a valid local buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
}

impl Drop for ChildSignals {
    fn drop(&mut self) {
        self.drain();
        // SAFETY: restores the mask saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A child process forked from perfunc and held before `exec` until
/// [`HeldChild::release`], so that perf events can be opened on its pid
/// before it runs a single instruction of the target.
#[derive(Debug)]
pub struct HeldChild {
    pid: i32,
    go: Option<OwnedFd>,
    exec_error: OwnedFd,
    /// Read end of the pipe the child writes one byte to when its
    /// [`HeldChild::start_burst`] is done.
    burst_done: OwnedFd,
}

/// The byte that lets a held child exec.
const GO_EXEC: u8 = 1;
/// The byte that has a held child run its burst first.
const GO_BURST: u8 = 2;

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl HeldChild {
    /// Forks; the child waits on a pipe, then execs `argv` (looked up in
    /// PATH like a shell does). The child gets default SIGPIPE handling and
    /// an empty signal mask, as if started by a shell.
    ///
    /// `burst`, if given, is what the child runs before its exec when told
    /// to by [`HeldChild::start_burst`]. It runs in the forked child of a
    /// process that may have other threads: it must not allocate, lock or
    /// call anything that is not async-signal-safe.
    pub fn spawn(argv: &[OsString], burst: Option<&(dyn Fn() + Sync)>) -> io::Result<HeldChild> {
        if argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        let args: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let (go_read, go_write) = pipe_cloexec()?;
        let (err_read, err_write) = pipe_cloexec()?;
        let (done_read, done_write) = pipe_cloexec()?;

        // SAFETY: after fork the child only calls async-signal-safe
        // functions (read, sigprocmask, signal, execvp, write, _exit) on
        // memory prepared before the fork.
        let pid = check(unsafe { libc::fork() })?;
        if pid == 0 {
            // SAFETY: child side of fork; see above.
            unsafe {
                child_after_fork(
                    [
                        go_read.as_raw_fd(),
                        err_write.as_raw_fd(),
                        done_write.as_raw_fd(),
                    ],
                    [
                        go_write.as_raw_fd(),
                        err_read.as_raw_fd(),
                        done_read.as_raw_fd(),
                    ],
                    &arg_ptrs,
                    burst,
                )
            }
        }
        drop(go_read);
        drop(err_write);
        drop(done_write);
        Ok(HeldChild {
            pid,
            go: Some(go_write),
            exec_error: err_read,
            burst_done: done_read,
        })
    }

    /// Has the child run its burst (see [`HeldChild::spawn`]); it then
    /// waits again for [`HeldChild::release`]. Poll
    /// [`HeldChild::burst_finished`] for its end.
    pub fn start_burst(&mut self) -> io::Result<()> {
        self.send(GO_BURST)
    }

    /// Whether the burst has ended, waiting up to `timeout` for it. An
    /// error if the child died during it (or had no burst to run).
    pub fn burst_finished(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let mut fds = [libc::pollfd {
            fd: self.burst_done.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polling one valid pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(err),
            };
        }
        if n == 0 {
            return Ok(false);
        }
        let mut byte = 0u8;
        // SAFETY: reading one byte into a valid local.
        let got = unsafe {
            libc::read(
                self.burst_done.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
            )
        };
        match got {
            1 => Ok(true),
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the command's process ended before it started the command",
            )),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Writes one go byte; the pipe stays open.
    fn send(&mut self, byte: u8) -> io::Result<()> {
        let Some(go) = &self.go else {
            return Err(io::Error::other("the child was released"));
        };
        // SAFETY: writing one byte from a valid buffer to our pipe end.
        let n = unsafe { libc::write(go.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        if n != 1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the child exec the target. Returns the exec error if the command
    /// could not be started (not found, not executable, ...).
    pub fn release(&mut self) -> io::Result<()> {
        if self.go.is_some() {
            self.send(GO_EXEC)?;
            self.go = None;
        }
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            // SAFETY: reading into the valid remainder of `errno`.
            let n = unsafe {
                libc::read(
                    self.exec_error.as_raw_fd(),
                    errno[got..].as_mut_ptr().cast(),
                    errno.len() - got,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                break;
            }
            got += n as usize;
        }
        if got == errno.len() {
            // The exec failed; the child has exited with 127. Reap it.
            let _ = try_wait(self.pid, true);
            return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
        }
        Ok(())
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // A child never released (an error while setting up the probes, a
        // run of --repeat not started) is killed before it runs anything:
        // EOF on its pipe would not come while a child forked after it
        // holds a copy of the pipe's write end.
        if let Some(go) = self.go.take() {
            drop(go);
            let _ = kill(self.pid, libc::SIGKILL);
            let _ = try_wait(self.pid, true);
        }
    }
}

/// Runs in the forked child: closes the parent's pipe ends (so the go pipe
/// reads EOF if the parent gives up), waits for the go byte, runs `burst`
/// first if told to (then says so on `done` and waits for the next go
/// byte), then execs.
///
/// # Safety
/// Must only be called in a freshly forked child; `argv` must be a
/// null-terminated array of valid C strings; `burst` must only make
/// async-signal-safe calls.
unsafe fn child_after_fork(
    [go, exec_error, done]: [RawFd; 3],
    parent_ends: [RawFd; 3],
    argv: &[*const libc::c_char],
    burst: Option<&(dyn Fn() + Sync)>,
) -> ! {
    for fd in parent_ends {
        // SAFETY: closing the child's copies of the parent's pipe ends.
        unsafe { libc::close(fd) };
    }
    let read_go = || {
        let mut byte = 0u8;
        // SAFETY: reading one byte into a valid local.
        let n = unsafe { libc::read(go, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            byte
        } else {
            0
        }
    };
    let mut byte = read_go();
    if byte == GO_BURST {
        if let Some(burst) = burst {
            burst();
            let one = [1u8];
            // SAFETY: writing one byte from a valid local.
            unsafe { libc::write(done, one.as_ptr().cast(), 1) };
            byte = read_go();
        }
    }
    if byte != GO_EXEC {
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(127) };
    }
    // SAFETY: plain libc calls on valid arguments; perfunc ignores SIGPIPE
    // (the Rust runtime does), the target must start with the default.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execvp(argv[0], argv.as_ptr());
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let bytes = errno.to_ne_bytes();
    // SAFETY: writing 4 bytes from a valid local, then exiting.
    unsafe {
        libc::write(exec_error, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
    }

    #[test]
    fn held_child_runs_its_burst_before_its_exec() {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: a valid array of two ints.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).unwrap();
        // SAFETY: fresh fds owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd = write.as_raw_fd();
        let burst = move || {
            // SAFETY: writing two bytes from a static buffer.
            unsafe { libc::write(fd, b"ok".as_ptr().cast(), 2) };
        };
        let mut child = HeldChild::spawn(&["true".into()], Some(&burst)).unwrap();
        drop(write);
        child.start_burst().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !child
            .burst_finished(std::time::Duration::from_millis(50))
            .unwrap()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the burst never ended"
            );
        }
        let mut got = [0u8; 2];
        // SAFETY: reading into a valid local.
        let n = unsafe { libc::read(read.as_raw_fd(), got.as_mut_ptr().cast(), 2) };
        assert_eq!((n, &got), (2, b"ok"));
        child.release().unwrap();
        assert_eq!(
            try_wait(child.pid(), true).unwrap(),
            Some(WaitStatus::Exited(0))
        );
    }

    #[test]
    fn held_child_without_a_burst_exits_when_asked_for_one() {
        let mut child = HeldChild::spawn(&["true".into()], None).unwrap();
        child.start_burst().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let err = loop {
            match child.burst_finished(std::time::Duration::from_millis(50)) {
                Ok(false) => assert!(std::time::Instant::now() < deadline),
                Ok(true) => panic!("no burst to finish"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        drop(child);
    }

    #[test]
    fn held_child_runs_after_release() {
        let mut child = HeldChild::spawn(&["true".into()], None).unwrap();
        child.release().unwrap();
        assert_eq!(
            try_wait(child.pid(), true).unwrap(),
            Some(WaitStatus::Exited(0))
        );
    }

    #[test]
    fn held_child_reports_exec_failure() {
        let mut child = HeldChild::spawn(&["/nonexistent/perfunc-test".into()], None).unwrap();
        let err = child.release().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(64), "signal 64");
    }
}
