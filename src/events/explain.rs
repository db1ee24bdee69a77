//! Messages for counters that `perf_event_open` refused: which counter, which
//! errno, the likely cause on this machine and what to do instead.

use super::{CounterKind, CounterSpec, DEFAULT_FALLBACK};

/// What the caller knows about the machine when a counter failed to open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenContext {
    /// `/proc/sys/kernel/perf_event_paranoid`, when it could be read.
    pub paranoid: Option<i32>,
    /// Whether `/sys/bus/event_source/devices/cpu` (or `cpu_core`, ...) exists.
    pub has_cpu_pmu: bool,
    /// Whether the effective user is root.
    pub is_root: bool,
    /// Whether the process holds `CAP_PERFMON` (or `CAP_SYS_ADMIN`).
    pub has_cap_perfmon: bool,
}

/// Linux's kernel-internal `ENOTSUPP`, which some PMU drivers let reach user space.
const KERNEL_ENOTSUPP: i32 = 524;

/// The symbolic name of the errno values `perf_event_open` and its callers return.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        KERNEL_ENOTSUPP => "ENOTSUPP",
        _ => return None,
    };
    Some(name)
}

/// `ENOENT (2)`, or `errno 1234` for a value without a known name.
fn errno_label(errno: i32) -> String {
    match errno_name(errno) {
        Some(name) => format!("{name} ({errno})"),
        None => format!("errno {errno}"),
    }
}

/// A message for a counter that could not be opened: names the counter and
/// its encoding, the errno by name and number (e.g. `ENOENT (2)`), the
/// likely cause, and what to use instead.
pub fn explain_open_error(spec: &CounterSpec, errno: i32, ctx: &OpenContext) -> String {
    let (cause, advice) = match errno {
        libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP | KERNEL_ENOTSUPP => {
            unsupported(spec, errno, ctx)
        }
        libc::EACCES | libc::EPERM => permission(spec, ctx),
        libc::EINVAL => invalid(spec),
        libc::ENOSPC => too_many_counters(),
        libc::EBUSY => busy(),
        libc::EMFILE => open_files_limit(),
        libc::ENFILE => system_files_limit(),
        libc::ESRCH => target_gone(),
        _ => unexpected(spec),
    };
    format!(
        "cannot open counter {} ({}): {}: {cause}; {advice}",
        spec.name,
        spec.encoding(),
        errno_label(errno)
    )
}

/// A cause and the advice that follows it.
type Explanation = (String, String);

fn explanation(cause: impl Into<String>, advice: impl Into<String>) -> Explanation {
    (cause.into(), advice.into())
}

/// ENOENT, ENODEV, EOPNOTSUPP: the event does not exist here.
fn unsupported(spec: &CounterSpec, errno: i32, ctx: &OpenContext) -> Explanation {
    let fallback = DEFAULT_FALLBACK.join(",");
    if spec.needs_cpu_pmu() && !ctx.has_cpu_pmu {
        return explanation(
            "this machine exposes no hardware PMU (no cpu PMU under \
             /sys/bus/event_source/devices), typical in a VM or container",
            format!(
                "enable the virtual PMU (e.g. KVM/QEMU `-cpu host`, VMware \"virtualize CPU \
                 performance counters\"; Firecracker has none) or count with software counters: \
                 -e {fallback}"
            ),
        );
    }
    let exclusion =
        if (errno == libc::EOPNOTSUPP || errno == KERNEL_ENOTSUPP) && spec.has_modifier() {
            ", or the PMU cannot count user and kernel space separately"
        } else {
            ""
        };
    let cause = match spec.kind {
        CounterKind::Hardware => "this CPU does not implement this generic hardware event",
        CounterKind::HwCache => {
            "this CPU does not implement this cache event (perf names every cache x op x result, \
             each CPU model supports only some)"
        }
        CounterKind::Raw => "this raw code is not an event of this CPU",
        CounterKind::Software => "this kernel does not provide this software event",
        CounterKind::Pmu => "the pmu does not accept this event on this machine",
    };
    let advice = match spec.kind {
        CounterKind::Software => format!("use another software counter, e.g. -e {fallback}"),
        CounterKind::Pmu => {
            "check the pmu's events/ and format/ under /sys/bus/event_source/devices".to_owned()
        }
        _ => format!(
            "pick a counter this CPU has (`perf list` shows them), or count with software \
             counters: -e {fallback}"
        ),
    };
    explanation(format!("{cause}{exclusion}"), advice)
}

/// The paranoid level at which an unprivileged user may open `spec` on its
/// own processes: 2 for user space only, 1 when it counts the kernel too.
fn paranoid_needed(spec: &CounterSpec) -> i32 {
    if spec.exclude_kernel {
        2
    } else {
        1
    }
}

/// What a `perf_event_paranoid` level allows an unprivileged user.
fn paranoid_meaning(level: i32) -> &'static str {
    match level {
        i32::MIN..=-1 => "no restrictions",
        0 | 1 => "user and kernel space of own processes",
        2 => "user space of own processes only",
        _ => "no perf events at all without privileges",
    }
}

/// EACCES, EPERM: not allowed to open this counter.
fn permission(spec: &CounterSpec, ctx: &OpenContext) -> Explanation {
    if ctx.is_root || ctx.has_cap_perfmon {
        return explanation(
            "permission denied although the process is privileged: a security module (SELinux, \
             AppArmor, lockdown) or a container's seccomp profile blocks perf_event_open",
            "check the audit log, or run outside the container (docker: --security-opt \
             seccomp=unconfined --cap-add PERFMON)",
        );
    }
    let level = match ctx.paranoid {
        Some(level) => format!(
            ", and /proc/sys/kernel/perf_event_paranoid is {level} ({})",
            paranoid_meaning(level)
        ),
        None => {
            ", and /proc/sys/kernel/perf_event_paranoid restricts unprivileged users".to_owned()
        }
    };
    let needed = paranoid_needed(spec);
    let user_only = if spec.exclude_kernel {
        String::new()
    } else {
        format!(
            ", or count user space only with {}:u (allowed up to level 2)",
            spec.base_name()
        )
    };
    explanation(
        format!(
            "the process is not root and lacks CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8)\
             {level}"
        ),
        format!(
            "run as root, grant the capability (`setcap cap_perfmon+ep` on the binary), or lower \
             the level: `sysctl kernel.perf_event_paranoid={needed}`{user_only}"
        ),
    )
}

/// EINVAL: the attributes are not valid for the PMU.
fn invalid(spec: &CounterSpec) -> Explanation {
    let modifier = if spec.has_modifier() {
        ", or the PMU does not support the :u/:k modifier"
    } else {
        ""
    };
    explanation(
        format!(
            "the kernel rejected the attributes: config {:#x} is not valid for this PMU{modifier}",
            spec.config
        ),
        "check the encoding against `perf list` and /sys/bus/event_source/devices/PMU/format, \
         try the counter without a modifier, or choose another counter",
    )
}

/// ENOSPC: the group does not fit in the PMU's registers.
fn too_many_counters() -> Explanation {
    explanation(
        "the group has more counters than the PMU has registers (often 4 general-purpose ones per \
         hardware thread, one fewer while the NMI watchdog holds one)",
        "use fewer -e counters per run, or split them across runs",
    )
}

/// EBUSY: someone else holds the PMU exclusively.
fn busy() -> Explanation {
    explanation(
        "the PMU is in use, e.g. by the NMI watchdog or another profiler",
        "free it with `sysctl kernel.nmi_watchdog=0` (set it back to 1 afterwards) or stop the \
         other profiler",
    )
}

/// EMFILE: the process ran out of file descriptors.
fn open_files_limit() -> Explanation {
    explanation(
        "the process reached its open-files limit: every counter on every thread needs a file \
         descriptor",
        "raise the limit, e.g. `ulimit -n 65536`, or use fewer counters or threads",
    )
}

/// ENFILE: the system ran out of file descriptors.
fn system_files_limit() -> Explanation {
    explanation(
        "the system reached its open-files limit",
        "raise it with `sysctl fs.file-max=...` or close other programs",
    )
}

/// ESRCH: the target thread is gone.
fn target_gone() -> Explanation {
    explanation(
        "the target process or thread exited before its counter was opened",
        "launch the target through perfunc, or attach while it runs",
    )
}

/// Any other errno.
fn unexpected(spec: &CounterSpec) -> Explanation {
    explanation(
        "perf_event_open failed unexpectedly",
        format!(
            "see ERRORS in perf_event_open(2), and check whether `perf stat -e {} true` opens it",
            spec.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{parse_counter, NoPmus};

    fn spec(name: &str) -> CounterSpec {
        parse_counter(name, &NoPmus).unwrap_or_else(|error| panic!("{name}: {error}"))
    }

    const LLC_PREFIX: &str =
        "cannot open counter LLC-load-misses (hw-cache, type 3, config 0x10002)";

    fn vm() -> OpenContext {
        OpenContext {
            paranoid: Some(2),
            has_cpu_pmu: false,
            is_root: false,
            has_cap_perfmon: false,
        }
    }

    fn bare_metal() -> OpenContext {
        OpenContext {
            has_cpu_pmu: true,
            ..vm()
        }
    }

    #[test]
    fn every_handled_errno_names_counter_and_errno() {
        let cases = [
            (libc::ENOENT, "ENOENT"),
            (libc::ENODEV, "ENODEV"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (KERNEL_ENOTSUPP, "ENOTSUPP"),
            (libc::EACCES, "EACCES"),
            (libc::EPERM, "EPERM"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::EBUSY, "EBUSY"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENFILE, "ENFILE"),
            (libc::ESRCH, "ESRCH"),
            (libc::EIO, "EIO"),
        ];
        let llc = spec("LLC-load-misses");
        for (errno, name) in cases {
            let message = explain_open_error(&llc, errno, &bare_metal());
            let prefix = format!("{LLC_PREFIX}: {name} ({errno}): ");
            assert!(message.starts_with(&prefix), "{message}");
        }
        let unknown = explain_open_error(&llc, 4321, &bare_metal());
        assert!(unknown.starts_with(
            "cannot open counter LLC-load-misses (hw-cache, type 3, config 0x10002): errno 4321: "
        ));
    }

    #[test]
    fn missing_pmu_in_a_vm_advises_vpmu_and_software_counters() {
        for errno in [libc::ENOENT, libc::ENODEV, libc::EOPNOTSUPP] {
            for name in ["cycles", "LLC-load-misses", "r01c2"] {
                let message = explain_open_error(&spec(name), errno, &vm());
                assert!(message.contains("no hardware PMU"), "{message}");
                assert!(message.contains("VM or container"), "{message}");
                assert!(message.contains("-cpu host"), "{message}");
                assert!(
                    message.ends_with("-e task-clock,page-faults,context-switches"),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn missing_event_on_bare_metal_blames_the_cpu_model() {
        let message = explain_open_error(&spec("LLC-prefetch-misses"), libc::ENOENT, &bare_metal());
        assert_eq!(
            message,
            format!(
                "cannot open counter LLC-prefetch-misses (hw-cache, type 3, config 0x10202): \
                 ENOENT ({}): this CPU does not implement this cache event (perf names every cache \
                 x op x result, each CPU model supports only some); pick a counter this CPU has \
                 (`perf list` shows them), or count with software counters: \
                 -e task-clock,page-faults,context-switches",
                libc::ENOENT
            )
        );
        let modified = explain_open_error(&spec("cycles:u"), libc::EOPNOTSUPP, &bare_metal());
        assert!(
            modified.contains("cannot count user and kernel space separately"),
            "{modified}"
        );
    }

    #[test]
    fn missing_software_event_suggests_another_one() {
        let message = explain_open_error(&spec("emulation-faults"), libc::ENOENT, &vm());
        assert!(
            message.contains("this kernel does not provide this software event"),
            "{message}"
        );
        assert!(!message.contains("hardware PMU"), "{message}");
    }

    #[test]
    fn permission_names_capabilities_paranoid_level_and_user_only() {
        let message = explain_open_error(&spec("task-clock"), libc::EACCES, &vm());
        assert_eq!(
            message,
            format!(
                "cannot open counter task-clock (software, type 1, config 0x1): EACCES ({}): the \
                 process is not root and lacks CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8), and \
                 /proc/sys/kernel/perf_event_paranoid is 2 (user space of own processes only); run \
                 as root, grant the capability (`setcap cap_perfmon+ep` on the binary), or lower \
                 the level: `sysctl kernel.perf_event_paranoid=1`, or count user space only with \
                 task-clock:u (allowed up to level 2)",
                libc::EACCES
            )
        );
    }

    #[test]
    fn permission_for_user_only_counter_needs_level_two() {
        let ctx = OpenContext {
            paranoid: Some(4),
            ..vm()
        };
        let message = explain_open_error(&spec("cycles:u"), libc::EPERM, &ctx);
        assert!(
            message.contains(&format!("EPERM ({})", libc::EPERM)),
            "{message}"
        );
        assert!(
            message.contains("is 4 (no perf events at all without privileges)"),
            "{message}"
        );
        assert!(
            message.contains("`sysctl kernel.perf_event_paranoid=2`"),
            "{message}"
        );
        assert!(!message.contains(":u (allowed"), "{message}");
    }

    #[test]
    fn permission_with_unknown_level_still_names_the_file() {
        let ctx = OpenContext {
            paranoid: None,
            ..vm()
        };
        let message = explain_open_error(&spec("cycles:k"), libc::EACCES, &ctx);
        assert!(
            message.contains("/proc/sys/kernel/perf_event_paranoid restricts"),
            "{message}"
        );
        assert!(message.contains("cpu-cycles:u"), "{message}");
    }

    #[test]
    fn permission_as_root_blames_security_modules() {
        let ctx = OpenContext {
            is_root: true,
            ..vm()
        };
        let message = explain_open_error(&spec("cycles"), libc::EACCES, &ctx);
        assert!(message.contains("seccomp"), "{message}");
        assert!(!message.contains("sysctl"), "{message}");
    }

    #[test]
    fn einval_mentions_config_and_modifier() {
        let message = explain_open_error(&spec("r01c2:k"), libc::EINVAL, &bare_metal());
        let prefix = format!(
            "cannot open counter r01c2:k (raw, type 4, config 0x1c2): EINVAL ({}): ",
            libc::EINVAL
        );
        assert!(message.starts_with(&prefix), "{message}");
        assert!(
            message.contains("config 0x1c2 is not valid for this PMU"),
            "{message}"
        );
        assert!(message.contains(":u/:k modifier"), "{message}");
    }

    #[test]
    fn resource_errors_say_what_to_change() {
        let llc = spec("LLC-store-misses");
        let ctx = bare_metal();
        assert!(explain_open_error(&llc, libc::ENOSPC, &ctx).contains("use fewer -e counters"));
        assert!(
            explain_open_error(&llc, libc::EBUSY, &ctx).contains("`sysctl kernel.nmi_watchdog=0`")
        );
        assert!(explain_open_error(&llc, libc::EMFILE, &ctx).contains("`ulimit -n 65536`"));
    }

    #[test]
    fn unknown_errno_falls_back_to_the_man_page() {
        let message = explain_open_error(&spec("page-faults"), libc::EIO, &vm());
        assert_eq!(
            message,
            format!(
                "cannot open counter page-faults (software, type 1, config 0x2): EIO ({}): \
                 perf_event_open failed unexpectedly; see ERRORS in perf_event_open(2), and check \
                 whether `perf stat -e page-faults true` opens it",
                libc::EIO
            )
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn errno_labels_carry_linux_numbers() {
        assert_eq!(errno_label(libc::ENOENT), "ENOENT (2)");
        assert_eq!(errno_label(libc::EACCES), "EACCES (13)");
        assert_eq!(errno_label(libc::EOPNOTSUPP), "EOPNOTSUPP (95)");
        assert_eq!(errno_name(libc::ENOTSUP), Some("EOPNOTSUPP"));
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ENOENT), Some("ENOENT"));
        assert_eq!(errno_name(libc::EMFILE), Some("EMFILE"));
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_label(-5), "errno -5");
    }
}
