//! Whether a counter group fits the CPU's PMU. A group needs all its
//! hardware counters on the PMU at once; one with more than the PMU has
//! (or two events that need the same extra register) is never scheduled,
//! and every counter of it reads 0 with `time_running` 0. This is decided
//! before recording, from the CPU's vendor and SMT, as the kernel would
//! (`arch/x86/events/intel/core.c`, `amd/core.c`).

use super::cpu::{CpuId, Vendor};
use super::{CounterKind, CounterSpec, PERF_TYPE_HW_CACHE, PERF_TYPE_RAW};

/// What one core PMU can hold at once, per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmuLimits {
    /// General-purpose counters: Intel 4 with SMT on, 8 without; AMD Zen 6.
    pub general: usize,
    /// Intel's offcore-response MSRs (`MSR_OFFCORE_RSP_0/1`): 2; none on AMD.
    pub offcore: usize,
    /// Whether `cpu-cycles`, `instructions` and `ref-cycles` have fixed
    /// counters of their own (Intel).
    pub fixed: bool,
}

impl PmuLimits {
    /// The limits of `cpu`'s core PMU; `None` for a vendor perfunc does not know.
    pub fn of(cpu: &CpuId) -> Option<PmuLimits> {
        match cpu.vendor()? {
            Vendor::Intel => Some(PmuLimits {
                general: if cpu.smt { 4 } else { 8 },
                offcore: 2,
                fixed: true,
            }),
            Vendor::Amd => Some(PmuLimits {
                general: 6,
                offcore: 0,
                fixed: false,
            }),
        }
    }
}

/// Whether `spec` goes to the core PMU (whose types are `core_types`).
fn on_core_pmu(spec: &CounterSpec, core_types: &[u32]) -> bool {
    match spec.kind {
        CounterKind::Hardware | CounterKind::HwCache | CounterKind::Raw => true,
        CounterKind::Pmu => core_types.contains(&spec.type_),
        CounterKind::Software => false,
    }
}

/// Whether an Intel event needs an offcore-response MSR: a raw or core-PMU
/// event with code 0xB7/0xBB (0x2A/0x2B from Sapphire Rapids and Alder
/// Lake on), or a generic LLC or node read or write, which the kernel's
/// cache table maps to OFFCORE_RESPONSE.
fn uses_offcore(spec: &CounterSpec) -> bool {
    let low = spec.config & 0xffff_ffff;
    match spec.kind {
        CounterKind::HwCache if spec.type_ == PERF_TYPE_HW_CACHE => {
            let (cache, op) = (low & 0xff, (low >> 8) & 0xff);
            matches!(cache, 2 | 6) && op <= 1
        }
        CounterKind::Raw | CounterKind::Pmu => {
            matches!(low & 0xff, 0xb7 | 0xbb | 0x2a | 0x2b) && spec.config1 != 0
        }
        _ => false,
    }
}

/// Whether `spec` takes one of Intel's fixed counters.
fn fixed_counter(spec: &CounterSpec) -> bool {
    spec.kind == CounterKind::Hardware && matches!(spec.config & 0xffff_ffff, 0 | 1 | 9)
}

/// `-e A,B,C,D` then `-e E,F`: the hardware counters in runs of at most
/// `per_run`, each run with the software counters.
fn split_advice(hardware: &[&CounterSpec], rest: &[&CounterSpec], per_run: usize) -> String {
    let others: Vec<&str> = rest.iter().map(|c| c.name.as_str()).collect();
    let runs: Vec<String> = hardware
        .chunks(per_run.max(1))
        .map(|chunk| {
            let names = chunk
                .iter()
                .map(|c| c.name.as_str())
                .chain(others.iter().copied());
            format!("-e {}", names.collect::<Vec<_>>().join(","))
        })
        .collect();
    runs.join(" then ")
}

/// Refuses a group that `cpu`'s PMU cannot hold, saying how to split it.
/// `core_types` are the `perf_event_attr.type`s of the core PMUs (`cpu`,
/// `cpu_core`, `cpu_atom`); [`PERF_TYPE_RAW`] is always one.
pub fn check_group_fits(
    counters: &[CounterSpec],
    cpu: &CpuId,
    core_types: &[u32],
) -> Result<(), String> {
    let Some(limits) = PmuLimits::of(cpu) else {
        return Ok(());
    };
    let mut types = core_types.to_vec();
    types.push(PERF_TYPE_RAW);
    let (hardware, rest): (Vec<&CounterSpec>, Vec<&CounterSpec>) =
        counters.iter().partition(|c| on_core_pmu(c, &types));
    let general: Vec<&CounterSpec> = hardware
        .iter()
        .copied()
        .filter(|c| !(limits.fixed && fixed_counter(c)))
        .collect();
    let smt = match (cpu.vendor(), cpu.smt) {
        (Some(Vendor::Intel), true) => " with SMT on",
        (Some(Vendor::Intel), false) => " without SMT",
        _ => "",
    };
    let vendor = match cpu.vendor() {
        Some(Vendor::Intel) => "Intel",
        _ => "AMD",
    };
    if general.len() > limits.general {
        let names: Vec<&str> = general.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "{} hardware counters in one group ({}), but {vendor} CPUs{smt} have {} \
             general-purpose counters per thread: the kernel could never schedule the group \
             and every counter would read 0; record them in separate runs: {}",
            general.len(),
            names.join(", "),
            limits.general,
            split_advice(&general, &rest, limits.general)
        ));
    }
    if limits.offcore > 0 {
        let offcore: Vec<&CounterSpec> = hardware
            .iter()
            .copied()
            .filter(|c| uses_offcore(c))
            .collect();
        if offcore.len() > limits.offcore {
            let names: Vec<&str> = offcore.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "{} counters in one group need an offcore-response register ({}; the generic \
                 LLC and node loads and stores use them too), but Intel CPUs have {}: the \
                 kernel could never schedule the group; record them in separate runs: {}",
                offcore.len(),
                names.join(", "),
                limits.offcore,
                split_advice(&offcore, &rest, limits.offcore)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{parse_counter_list, MapPmus};

    fn cpu(vendor: &str, smt: bool) -> CpuId {
        CpuId {
            vendor_id: vendor.into(),
            family: 6,
            model: 0x55,
            stepping: 4,
            model_name: String::new(),
            smt,
        }
    }

    fn pmus() -> MapPmus {
        MapPmus::new()
            .with_pmu("cpu", 4)
            .with_format("cpu", "event", "config:0-7")
            .with_format("cpu", "umask", "config:8-15")
            .with_format("cpu", "offcore_rsp", "config1:0-63")
    }

    fn check(list: &str, cpu: &CpuId) -> Result<(), String> {
        let counters = parse_counter_list(list, &pmus()).unwrap_or_else(|e| panic!("{e}"));
        check_group_fits(&counters, cpu, &[4])
    }

    #[test]
    fn five_general_counters_do_not_fit_an_intel_thread_with_smt() {
        let list = "r01d1,r02d1,r04d1,r08d1,r20d1,task-clock";
        assert_eq!(
            check(list, &cpu("GenuineIntel", true)),
            Err(
                "5 hardware counters in one group (r01d1, r02d1, r04d1, r08d1, r20d1), but \
                 Intel CPUs with SMT on have 4 general-purpose counters per thread: the kernel \
                 could never schedule the group and every counter would read 0; record them \
                 in separate runs: -e r01d1,r02d1,r04d1,r08d1,task-clock then -e r20d1,task-clock"
                    .into()
            )
        );
        assert_eq!(check(list, &cpu("GenuineIntel", false)), Ok(()));
        // Fixed counters do not count against the four.
        assert_eq!(
            check(
                "r01d1,r02d1,r04d1,r08d1,cycles,instructions,ref-cycles",
                &cpu("GenuineIntel", true)
            ),
            Ok(())
        );
    }

    #[test]
    fn zen_holds_six() {
        let six = "r0143,r0243,r0443,r0843,r1043,r4043";
        assert_eq!(check(six, &cpu("AuthenticAMD", true)), Ok(()));
        let seven = format!("{six},cycles");
        let error = check(&seven, &cpu("AuthenticAMD", true)).unwrap_err();
        assert!(
            error.starts_with("7 hardware counters in one group"),
            "{error}"
        );
        assert!(error.contains("AMD CPUs have 6"), "{error}");
    }

    #[test]
    fn a_third_offcore_event_does_not_fit_the_two_msrs() {
        let three =
            "LLC-load-misses,LLC-store-misses,cpu/event=0xb7,umask=0x1,offcore_rsp=0x10001/";
        let error = check(three, &cpu("GenuineIntel", true)).unwrap_err();
        assert!(
            error.starts_with("3 counters in one group need an offcore-response register"),
            "{error}"
        );
        assert!(
            error.ends_with(
                "-e LLC-load-misses,LLC-store-misses then -e cpu/event=0xb7,umask=0x1,offcore_rsp=0x10001/"
            ),
            "{error}"
        );
        assert_eq!(
            check(
                "LLC-load-misses,LLC-store-misses,r3824",
                &cpu("GenuineIntel", true)
            ),
            Ok(())
        );
    }

    #[test]
    fn software_and_other_pmus_are_not_counted() {
        let list = "task-clock,page-faults,context-switches,cpu-migrations,minor-faults,major-faults,cpu-clock";
        assert_eq!(check(list, &cpu("GenuineIntel", true)), Ok(()));
        assert_eq!(
            check("r01d1,r02d1,r04d1,r08d1,r20d1", &cpu("HygonGenuine", true)),
            Ok(())
        );
    }
}
