use std::io;
use std::path::PathBuf;

/// Errors of the kernel-facing side of perfunc. Each names the thing that
/// failed and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A tracefs file could not be read.
    #[error("failed to read {path}: {cause}")]
    Tracefs {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// tracefs was not mounted and could not be mounted.
    #[error(
        "tracefs is not mounted and mounting it at {dir} failed: {cause}; \
         as root, run `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    TracefsMount {
        /// Where perfunc tried to mount it.
        dir: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// Writing a probe definition into uprobe_events or kprobe_events
    /// failed.
    #[error("failed to place probe `{line}`: {cause}{}", privilege_hint(cause))]
    PlaceUprobe {
        /// The definition line.
        line: String,
        /// The cause.
        cause: io::Error,
    },
    /// Removing a probe from uprobe_events or kprobe_events failed.
    #[error(
        "failed to remove probe `{line}`: {cause}; the next perfunc removes the \
         probes of perfunc processes that are gone, or remove it by hand by writing \
         that line to /sys/kernel/tracing/uprobe_events (kprobe_events for a kprobe)"
    )]
    RemoveUprobe {
        /// The removal line.
        line: String,
        /// The cause.
        cause: io::Error,
    },
    /// A counter could not be opened; the message explains errno and cause.
    #[error("{message}")]
    OpenCounter {
        /// The counter's name.
        counter: String,
        /// The errno.
        errno: i32,
        /// The full explanation.
        message: String,
    },
    /// A probe event could not be opened.
    #[error(
        "failed to open the probe on {function} ({}, {}): {cause}{}",
        observed(*pid),
        on_cpu(*cpu),
        privilege_hint(cause)
    )]
    OpenProbe {
        /// The function.
        function: String,
        /// The pid or tid observed.
        pid: i32,
        /// The CPU, or `None` for a per-thread event on any CPU.
        cpu: Option<usize>,
        /// The cause.
        cause: io::Error,
    },
    /// A ring buffer could not be mapped.
    #[error("failed to map a {bytes}-byte ring buffer ({ring}): {cause}; try a smaller --buffer-size or raise `ulimit -l`")]
    Mmap {
        /// Whose ring: "cpu 3", "thread 1234".
        ring: String,
        /// The size asked for.
        bytes: usize,
        /// The cause.
        cause: io::Error,
    },
    /// Another kernel call failed while setting up or reading events.
    #[error("{what} failed: {cause}")]
    Sys {
        /// What was being done.
        what: String,
        /// The cause.
        cause: io::Error,
    },
    /// The command could not be started.
    #[error("failed to start `{command}`: {cause}")]
    Spawn {
        /// The command.
        command: String,
        /// The cause.
        cause: io::Error,
    },
    /// Kernel functions were asked for on a kernel without kprobes.
    #[error(
        "cannot probe the kernel function {function}: tracefs has no kprobe_events \
         (the kernel is built without kprobes, CONFIG_KPROBES and CONFIG_KPROBE_EVENTS); \
         system calls and tracepoints work without them: \
         -k syscall:NAME, or -k tp:SUBSYSTEM:BEGIN/END for a begin/end tracepoint pair \
         (perfunc list --kernel --tracepoints)"
    )]
    NoKprobes {
        /// The function asked for.
        function: String,
    },
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) came while the probes were
    /// being set up; everything placed so far was removed.
    #[error("stopped by signal {0} while setting up the probes; nothing was recorded and no probe is left")]
    Interrupted(i32),
    /// The process to attach to does not exist.
    #[error("no process with pid {0}: check the pid (it may have exited)")]
    NoSuchProcess(i32),
    /// A binary changed between symbol resolution and probe placement.
    #[error("{path} changed since its symbols were read (build id {was} is now {now}); run perfunc again")]
    BinaryChanged {
        /// The binary.
        path: PathBuf,
        /// Build id when resolved.
        was: String,
        /// Build id now.
        now: String,
    },
    /// Writing the trace failed.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
}

/// Who a probe event observes: a task, or every task (`-a`).
fn observed(pid: i32) -> String {
    if pid < 0 {
        "system-wide".to_owned()
    } else {
        format!("pid {pid}")
    }
}

fn on_cpu(cpu: Option<usize>) -> String {
    match cpu {
        Some(cpu) => format!("cpu {cpu}"),
        None => "any cpu".to_owned(),
    }
}

fn privilege_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "; placing uprobes needs root (CAP_SYS_ADMIN to write tracefs), and reading \
             counters needs CAP_PERFMON (or CAP_SYS_ADMIN before Linux 5.8) or a low \
             /proc/sys/kernel/perf_event_paranoid: run perfunc with sudo"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_root_and_capabilities() {
        let err = ProbeError::PlaceUprobe {
            line: "p:perfunc_1/f0 /bin/true:0x10".into(),
            cause: io::Error::from_raw_os_error(libc::EACCES),
        };
        let text = err.to_string();
        assert!(text.contains("root"), "{text}");
        assert!(text.contains("CAP_PERFMON"), "{text}");
        assert!(text.contains("perf_event_paranoid"), "{text}");
    }

    #[test]
    fn other_errors_have_no_privilege_hint() {
        let err = ProbeError::PlaceUprobe {
            line: "p:perfunc_1/f0 /bin/true:0x10".into(),
            cause: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert!(!err.to_string().contains("root"));
    }
}
