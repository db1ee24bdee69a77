//! The default counters on recorded machines (tests/data/machines), with a
//! kernel that answers as the machine's would.

use std::fs;
use std::path::PathBuf;

use super::*;
use crate::events::cpu::model_for;
use crate::events::cpu::Vendor;
use crate::events::{
    parse_counter, parse_counter_on, MapPmus, PERF_TYPE_HW_CACHE, PERF_TYPE_SOFTWARE,
};

fn machine_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/machines")
        .join(name)
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

fn entries(dir: PathBuf) -> Vec<(String, PathBuf)> {
    let mut names: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A recorded machine: its cpuinfo, its PMUs, and a fake kernel.
struct Machine {
    cpuinfo: String,
    pmus: MapPmus,
    kernel: FakeKernel,
}

fn machine(name: &str) -> Machine {
    let dir = machine_dir(name);
    let mut pmus = MapPmus::new();
    let mut core_types = Vec::new();
    for (pmu, path) in entries(dir.join("devices")) {
        let type_: u32 = read(path.join("type")).parse().unwrap_or_default();
        if pmu == "cpu" || pmu.starts_with("cpu_") {
            core_types.push(type_);
        }
        pmus = pmus.with_pmu(&pmu, type_);
        for (term, file) in entries(path.join("format")) {
            pmus = pmus.with_format(&pmu, &term, &read(file));
        }
        for (event, file) in entries(path.join("events")) {
            pmus = pmus.with_event(&pmu, &event, &read(file));
        }
    }
    let cpuinfo = read(dir.join("cpuinfo"));
    let vendor = CpuId::from_cpuinfo(&cpuinfo).and_then(|cpu| cpu.vendor());
    let hybrid = core_types.len() > 1;
    Machine {
        cpuinfo,
        pmus,
        kernel: FakeKernel {
            vendor,
            core_types,
            hybrid,
        },
    }
}

/// `perf_event_open` as the machine's kernel answers it.
struct FakeKernel {
    vendor: Option<Vendor>,
    /// Types of the core PMUs (`cpu`, or `cpu_core` and `cpu_atom`).
    core_types: Vec<u32>,
    hybrid: bool,
}

/// The kernel's generic cache table entry for (cache, op, result), as
/// `arch/x86/events/intel/core.c` (`skl_hw_cache_event_ids`, which the
/// issue reads as also serving Ice Lake and later cores) and
/// `arch/x86/events/amd/core.c` (`amd_hw_cache_event_ids_f17h`) give it:
/// 0 means "not supported" (ENOENT), -1 "invalid" (EINVAL). Only the rows
/// these tests use are listed.
fn cache_table(vendor: Vendor, cache: u64, op: u64, result: u64) -> i64 {
    const LL: u64 = 2;
    const ITLB: u64 = 4;
    const WRITE: u64 = 1;
    const PREFETCH: u64 = 2;
    match (vendor, cache, op, result) {
        (_, ITLB, WRITE | PREFETCH, _) => -1,
        (Vendor::Intel, LL, PREFETCH, _) => 0,
        (Vendor::Intel, LL, _, _) => 0x1b7,
        (Vendor::Amd, LL, _, _) => 0,
        _ => panic!("the fake cache table has no entry {cache}/{op}/{result}"),
    }
}

impl FakeKernel {
    fn open(&self, spec: &CounterSpec) -> Result<(), i32> {
        match spec.type_ {
            PERF_TYPE_SOFTWARE => Ok(()),
            _ if self.core_types.is_empty() && spec.type_ != 9 => Err(libc::ENOENT),
            9 => Ok(()),
            PERF_TYPE_HW_CACHE => {
                let extended = (spec.config >> 32) as u32;
                if self.hybrid && !self.core_types.contains(&extended) {
                    return Err(libc::ENOENT);
                }
                if !self.hybrid && extended != 0 {
                    return Err(libc::EINVAL);
                }
                let Some(vendor) = self.vendor else {
                    return Err(libc::ENOENT);
                };
                let c = spec.config & 0xffff_ffff;
                match cache_table(vendor, c & 0xff, (c >> 8) & 0xff, (c >> 16) & 0xff) {
                    0 => Err(libc::ENOENT),
                    -1 => Err(libc::EINVAL),
                    _ => Ok(()),
                }
            }
            type_ if self.core_types.contains(&type_) => Ok(()),
            _ => Err(libc::ENOENT),
        }
    }
}

fn decide(name: &str) -> (Vec<CounterSpec>, CounterDecision, Machine) {
    let m = machine(name);
    let mut open = |spec: &CounterSpec| m.kernel.open(spec);
    let (counters, decision) = decide_defaults(&m.cpuinfo, &m.pmus, &mut open);
    (counters, decision, m)
}

/// (name, type, config, config1) of each counter.
fn attrs(counters: &[CounterSpec]) -> Vec<(String, u32, u64, u64)> {
    counters
        .iter()
        .map(|c| (c.name.clone(), c.type_, c.config, c.config1))
        .collect()
}

fn expect(list: &[(&str, u32, u64)]) -> Vec<(String, u32, u64, u64)> {
    list.iter()
        .map(|&(name, type_, config)| (name.to_owned(), type_, config, 0))
        .collect()
}

#[test]
fn skylake_sp_keeps_llc_loads_and_stores_and_counts_l2_prefetch_misses() {
    let (counters, decision, _) = decide("skylake-sp");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("LLC-load-misses", 3, 0x10002),
            ("LLC-store-misses", 3, 0x10102),
            ("l2_rqsts.pf_miss", 4, 0x3824),
        ])
    );
    assert_eq!(decision.cpu_model.as_deref(), Some("Intel Skylake-SP"));
    assert_eq!(
        decision.summary,
        "counting LLC-load-misses, LLC-store-misses, l2_rqsts.pf_miss; LLC-prefetch-misses \
         (ENOENT) is replaced by l2_rqsts.pf_miss on Intel Skylake-SP: Skylake-SP has no \
         per-thread LLC prefetch-miss event beside the two offcore counters LLC-load-misses \
         and LLC-store-misses use; the L2 prefetch misses are the nearest"
    );
    assert!(!decision.fallback && decision.dropped.is_empty());
}

#[test]
fn ice_lake_and_sapphire_rapids_get_their_own_prefetch_events() {
    let (counters, _, _) = decide("icelake");
    assert_eq!(
        attrs(&counters)[2],
        ("l2_rqsts.swpf_miss".to_owned(), 4, 0x2824, 0)
    );
    let (counters, decision, _) = decide("sapphire-rapids");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("LLC-load-misses", 3, 0x10002),
            ("LLC-store-misses", 3, 0x10102),
            ("l2_rqsts.hwpf_miss", 4, 0x3024),
        ])
    );
    assert_eq!(decision.replaced.len(), 1);
    assert_eq!(decision.replaced[0].generic, "LLC-prefetch-misses");
}

#[test]
fn alder_lake_counts_on_the_performance_cores_with_the_extended_type() {
    let (counters, decision, _) = decide("alder-lake");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("LLC-load-misses", 3, 0x4_0001_0002),
            ("LLC-store-misses", 3, 0x4_0001_0102),
            ("l2_rqsts.hwpf_miss", 4, 0x3024),
        ])
    );
    assert!(
        decision.summary.starts_with(
            "counting LLC-load-misses, LLC-store-misses, l2_rqsts.hwpf_miss (on the cpu_core \
             PMU: calls on the other kind of core are not counted); LLC-prefetch-misses"
        ),
        "{}",
        decision.summary
    );
}

#[test]
fn zen_3_and_zen_4_replace_all_three() {
    let (counters, decision, m) = decide("zen3");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("cpu/event=0x43,umask=0x5c/", 4, 0x5c43),
            ("ls_mab_alloc.stores", 4, 0x0241),
            ("cpu/event=0x5a,umask=0x5c/", 4, 0x5c5a),
        ])
    );
    assert_eq!(decision.replaced.len(), 3);
    assert!(decision
        .replaced
        .iter()
        .all(|r| r.error == "ENOENT" && !r.why.is_empty()));
    // The names perfunc gives re-parse, through the PMU's format/, to the
    // same counters.
    let model = CpuId::from_cpuinfo(&m.cpuinfo).and_then(|cpu| model_for(&cpu));
    for spec in &counters {
        let again = parse_counter_on(&spec.name, &m.pmus, model).map(|s| (s.type_, s.config));
        assert_eq!(again, Ok((spec.type_, spec.config)), "{}", spec.name);
    }
    let (counters, _, _) = decide("zen4");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("cpu/event=0x43,umask=0xdc/", 4, 0xdc43),
            ("l2_request_g1.rd_blk_x", 4, 0x4060),
            ("cpu/event=0x5a,umask=0xdc/", 4, 0xdc5a),
        ])
    );
}

#[test]
fn zen_5_drops_the_store_misses_and_says_why() {
    let (counters, decision, _) = decide("zen5");
    assert_eq!(counters.len(), 2);
    assert_eq!(
        decision.dropped,
        [Dropped {
            generic: "LLC-store-misses".into(),
            error: "ENOENT".into(),
            reason: "AMD Zen 5 has no equivalent in perfunc's tables".into(),
        }]
    );
    assert!(decision.summary.ends_with(
        "; LLC-store-misses (ENOENT) is dropped: AMD Zen 5 has no equivalent in perfunc's tables"
    ));
}

#[test]
fn without_a_pmu_the_software_counters_are_counted_with_the_reason() {
    let (counters, decision, m) = decide("firecracker-vm");
    assert_eq!(
        attrs(&counters),
        expect(&[
            ("task-clock", 1, 1),
            ("page-faults", 1, 2),
            ("context-switches", 1, 3),
        ])
    );
    assert!(decision.fallback);
    assert_eq!(
        decision.summary,
        "counting task-clock, page-faults, context-switches: no cache counter opens here \
         (LLC-load-misses, LLC-store-misses, LLC-prefetch-misses: ENOENT, no hardware PMU, \
         as in most VMs)"
    );
    // msr/tsc/ still opens on its own PMU there.
    let tsc = parse_counter("msr/tsc/", &m.pmus);
    assert_eq!(tsc.as_ref().map(|s| m.kernel.open(s)), Ok(Ok(())));
}

#[test]
fn a_minus_one_table_entry_is_einval_and_a_zero_enoent() {
    let m = machine("zen3");
    let open = |name: &str| {
        let spec = parse_counter(name, &m.pmus).unwrap_or_else(|e| panic!("{e}"));
        m.kernel.open(&spec)
    };
    assert_eq!(open("iTLB-store-misses"), Err(libc::EINVAL));
    assert_eq!(open("LLC-load-misses"), Err(libc::ENOENT));
    assert_eq!(open("task-clock"), Ok(()));
}

#[test]
fn the_decision_round_trips_through_json() {
    let (_, decision, _) = decide("zen5");
    let json = serde_json::to_string(&decision).unwrap_or_default();
    let back: Result<CounterDecision, _> = serde_json::from_str(&json);
    assert_eq!(back.ok(), Some(decision));
}

#[test]
fn perfs_event_names_resolve_for_the_running_model_only() {
    let m = machine("skylake-sp");
    let model = CpuId::from_cpuinfo(&m.cpuinfo).and_then(|cpu| model_for(&cpu));
    let spec = parse_counter_on("mem_load_retired.l3_miss:u", &m.pmus, model);
    let spec = spec.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            spec.name.as_str(),
            spec.type_,
            spec.config,
            spec.exclude_kernel
        ),
        ("mem_load_retired.l3_miss:u", 4, 0x20d1, true)
    );
    // perf's names are not case-sensitive.
    assert!(parse_counter_on("MEM_LOAD_RETIRED.L3_MISS", &m.pmus, model).is_ok());
    // A Zen event is unknown on Skylake-SP, and on a machine without a model.
    assert!(parse_counter_on("ls_mab_alloc.stores", &m.pmus, model).is_err());
    assert!(parse_counter("mem_load_retired.l3_miss", &m.pmus).is_err());
    let zen4 = machine("zen4");
    let model = CpuId::from_cpuinfo(&zen4.cpuinfo).and_then(|cpu| model_for(&cpu));
    let spec = parse_counter_on("ls_dmnd_fills_from_sys.dram_io_far", &zen4.pmus, model);
    assert_eq!(spec.map(|s| (s.type_, s.config)), Ok((4, 0x4043)));
}

#[test]
fn cpu_terms_go_where_the_pmus_format_says() {
    let amd = machine("zen5").pmus;
    let spec = parse_counter("cpu/event=0x120,umask=0x1/", &amd);
    assert_eq!(spec.map(|s| s.config), Ok(0x1_0000_0120));
    let intel = machine("skylake-sp").pmus;
    let spec = parse_counter("cpu/event=0xb7,umask=0x1,offcore_rsp=0x3fbfc00002/", &intel);
    assert_eq!(
        spec.map(|s| (s.config, s.config1)),
        Ok((0x01b7, 0x3f_bfc0_0002))
    );
    let spec = parse_counter(
        "cpu_core/event=0xd1,umask=0x20/",
        &machine("alder-lake").pmus,
    );
    assert_eq!(spec.map(|s| (s.type_, s.config)), Ok((4, 0x20d1)));
}
