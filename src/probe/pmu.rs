//! What this machine's kernel offers: the PMUs in sysfs, whether a counter
//! opens, and the facts a trace header records (kernel, CPU).

use std::fs;
use std::path::PathBuf;

use perf_event::events::Event;
use perf_event::Builder;
use perf_event_open_sys::bindings::perf_event_attr;

use crate::events::{self, CounterSpec, OpenContext, PmuSource};

const PMU_DIR: &str = "/sys/bus/event_source/devices";

/// The PMUs under /sys/bus/event_source/devices.
#[derive(Debug, Clone)]
pub struct SysfsPmus {
    root: PathBuf,
}

impl Default for SysfsPmus {
    fn default() -> Self {
        SysfsPmus {
            root: PathBuf::from(PMU_DIR),
        }
    }
}

impl SysfsPmus {
    fn read(&self, parts: &[&str]) -> Option<String> {
        if parts.iter().any(|p| p.contains('/') || p.contains("..")) {
            return None;
        }
        let path = parts.iter().fold(self.root.clone(), |p, part| p.join(part));
        fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
    }

    /// The names of the PMUs the kernel registered.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Whether a core CPU PMU exists (hardware and cache events need one).
    pub fn has_cpu_pmu(&self) -> bool {
        self.names()
            .iter()
            .any(|n| n == "cpu" || n.starts_with("cpu_") || n.starts_with("armv8_"))
    }
}

impl PmuSource for SysfsPmus {
    fn pmu_type(&self, pmu: &str) -> Option<u32> {
        self.read(&[pmu, "type"])?.parse().ok()
    }

    fn event_alias(&self, pmu: &str, event: &str) -> Option<String> {
        self.read(&[pmu, "events", event])
    }

    fn format(&self, pmu: &str, term: &str) -> Option<String> {
        self.read(&[pmu, "format", term])
    }
}

/// A perf event described by raw attribute values, for perf-event2's
/// [`Builder`].
#[derive(Debug, Clone, Copy)]
pub struct RawEvent {
    /// `perf_event_attr.type`.
    pub type_: u32,
    /// `config`.
    pub config: u64,
    /// `config1`.
    pub config1: u64,
    /// `config2`.
    pub config2: u64,
}

impl RawEvent {
    /// The event a counter spec describes.
    pub fn of(spec: &CounterSpec) -> RawEvent {
        RawEvent {
            type_: spec.type_,
            config: spec.config,
            config1: spec.config1,
            config2: spec.config2,
        }
    }

    /// A tracepoint by id.
    pub fn tracepoint(id: u64) -> RawEvent {
        RawEvent {
            type_: perf_event_open_sys::bindings::PERF_TYPE_TRACEPOINT,
            config: id,
            config1: 0,
            config2: 0,
        }
    }
}

impl Event for RawEvent {
    fn update_attrs(self, attr: &mut perf_event_attr) {
        attr.type_ = self.type_;
        attr.config = self.config;
        attr.config1 = self.config1;
        attr.config2 = self.config2;
    }
}

/// A builder for `spec` with its modifiers applied.
pub fn counter_builder(spec: &CounterSpec) -> Builder<'static> {
    let mut builder = Builder::new(RawEvent::of(spec));
    // The hypervisor is left out only with a modifier, as perf does for
    // `:u` and `:k`: PMUs without exclude support (msr, whose `tsc` is the
    // one non-software counter in most VMs) refuse any exclude bit.
    builder
        .exclude_kernel(spec.exclude_kernel)
        .exclude_user(spec.exclude_user)
        .exclude_hv(spec.exclude_kernel || spec.exclude_user);
    builder
}

/// Tries to open `spec` counting on perfunc itself; returns the errno on
/// failure.
pub fn try_open(spec: &CounterSpec) -> Result<(), i32> {
    counter_builder(spec)
        .observe_self()
        .any_cpu()
        .build()
        .map(drop)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
}

/// What the explanation of an open failure needs to know.
pub fn open_context() -> OpenContext {
    OpenContext {
        paranoid: fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        has_cpu_pmu: SysfsPmus::default().has_cpu_pmu(),
        is_root: super::sys::euid() == 0,
        has_cap_perfmon: has_effective_cap(38),
    }
}

/// Whether the effective capability set holds capability number `cap`
/// (38 is CAP_PERFMON).
fn has_effective_cap(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

/// The explanation for a counter that failed with `errno`.
pub fn explain(spec: &CounterSpec, errno: i32) -> String {
    events::explain_open_error(spec, errno, &open_context())
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
