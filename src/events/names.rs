//! perf's legacy counter names: hardware, software and hardware-cache events,
//! spelled and encoded as in perf's `tools/perf/util/evsel.c` and
//! `parse-events.l`, with the values of `include/uapi/linux/perf_event.h`.

use super::{CounterKind, CounterSpec, Unit};

/// `perf_event_attr.type` of the generic hardware events.
pub const PERF_TYPE_HARDWARE: u32 = 0;
/// `perf_event_attr.type` of the kernel's software events.
pub const PERF_TYPE_SOFTWARE: u32 = 1;
/// `perf_event_attr.type` of the generic hardware-cache events.
pub const PERF_TYPE_HW_CACHE: u32 = 3;
/// `perf_event_attr.type` of raw, CPU-specific event codes.
pub const PERF_TYPE_RAW: u32 = 4;

/// A legacy counter: perf's name, the other names perf accepts, its config.
struct Named {
    name: &'static str,
    aliases: &'static [&'static str],
    config: u64,
}

const fn named(name: &'static str, aliases: &'static [&'static str], config: u64) -> Named {
    Named {
        name,
        aliases,
        config,
    }
}

/// `PERF_COUNT_HW_*`, in config order.
const HARDWARE: [Named; 10] = [
    named("cpu-cycles", &["cycles"], 0),
    named("instructions", &[], 1),
    named("cache-references", &[], 2),
    named("cache-misses", &[], 3),
    named("branch-instructions", &["branches"], 4),
    named("branch-misses", &[], 5),
    named("bus-cycles", &[], 6),
    named("stalled-cycles-frontend", &["idle-cycles-frontend"], 7),
    named("stalled-cycles-backend", &["idle-cycles-backend"], 8),
    named("ref-cycles", &[], 9),
];

/// `PERF_COUNT_SW_*` that perf names, in config order.
const SOFTWARE: [Named; 9] = [
    named("cpu-clock", &[], 0),
    named("task-clock", &[], 1),
    named("page-faults", &["faults"], 2),
    named("context-switches", &["cs"], 3),
    named("cpu-migrations", &["migrations"], 4),
    named("minor-faults", &[], 5),
    named("major-faults", &[], 6),
    named("alignment-faults", &[], 7),
    named("emulation-faults", &[], 8),
];

/// The software counters that count nanoseconds rather than events.
const NANOSECOND_SOFTWARE: [u64; 2] = [0, 1];

/// `PERF_COUNT_HW_CACHE_*` by index: the canonical name first, then perf's aliases.
const CACHES: [&[&str]; 7] = [
    &["L1-dcache", "l1-d", "l1d", "L1-data"],
    &["L1-icache", "l1-i", "l1i", "L1-instruction"],
    &["LLC", "L2"],
    &["dTLB", "d-tlb", "Data-TLB"],
    &["iTLB", "i-tlb", "Instruction-TLB"],
    &["branch", "branches", "bpu", "btb", "bpc"],
    &["node"],
];

/// A `PERF_COUNT_HW_CACHE_OP_*`: the suffixes of its canonical names and its aliases.
struct CacheOp {
    access: &'static str,
    miss: &'static str,
    aliases: &'static [&'static str],
}

/// `PERF_COUNT_HW_CACHE_OP_*` by index: read, write, prefetch.
const CACHE_OPS: [CacheOp; 3] = [
    CacheOp {
        access: "loads",
        miss: "load-misses",
        aliases: &["load", "loads", "read"],
    },
    CacheOp {
        access: "stores",
        miss: "store-misses",
        aliases: &["store", "stores", "write"],
    },
    CacheOp {
        access: "prefetches",
        miss: "prefetch-misses",
        aliases: &[
            "prefetch",
            "prefetches",
            "speculative-read",
            "speculative-load",
        ],
    },
];

/// `PERF_COUNT_HW_CACHE_RESULT_*` by index: access, miss.
const CACHE_RESULTS: [&[&str]; 2] = [&["refs", "Reference", "ops", "access"], &["misses", "miss"]];

const OP_READ: usize = 0;
const RESULT_ACCESS: usize = 0;

/// A counter spec for a legacy counter, counting user and kernel space.
fn legacy(name: String, kind: CounterKind, type_: u32, config: u64, unit: Unit) -> CounterSpec {
    CounterSpec::counting_all(name, kind, type_, [config, 0, 0], unit)
}

fn hardware_spec(entry: &Named) -> CounterSpec {
    let name = entry.name.to_owned();
    legacy(
        name,
        CounterKind::Hardware,
        PERF_TYPE_HARDWARE,
        entry.config,
        Unit::Count,
    )
}

fn software_spec(entry: &Named) -> CounterSpec {
    let unit = if NANOSECOND_SOFTWARE.contains(&entry.config) {
        Unit::Nanoseconds
    } else {
        Unit::Count
    };
    legacy(
        entry.name.to_owned(),
        CounterKind::Software,
        PERF_TYPE_SOFTWARE,
        entry.config,
        unit,
    )
}

fn cache_spec(cache: usize, op: usize, result: usize) -> CounterSpec {
    let ops = &CACHE_OPS[op];
    let suffix = if result == RESULT_ACCESS {
        ops.access
    } else {
        ops.miss
    };
    let name = format!("{}-{suffix}", CACHES[cache][0]);
    let config = cache as u64 | (op as u64) << 8 | (result as u64) << 16;
    legacy(
        name,
        CounterKind::HwCache,
        PERF_TYPE_HW_CACHE,
        config,
        Unit::Count,
    )
}

fn find_named<'a>(table: &'a [Named], name: &str) -> Option<&'a Named> {
    table
        .iter()
        .find(|entry| entry.name == name || entry.aliases.contains(&name))
}

/// The index of the alias list in `table` that holds exactly `text`.
fn alias_index(table: &[&[&str]], text: &str) -> Option<usize> {
    table.iter().position(|aliases| aliases.contains(&text))
}

/// Decodes what follows `<cache>-`: `op`, `op-result` or `result` (op read),
/// as perf's `parse_events__decode_legacy_cache` does.
fn decode_op_result(tail: &str) -> Option<(usize, usize)> {
    if let Some(result) = alias_index(&CACHE_RESULTS, tail) {
        return Some((OP_READ, result));
    }
    CACHE_OPS.iter().enumerate().find_map(|(op, ops)| {
        ops.aliases.iter().find_map(|alias| {
            let rest = tail.strip_prefix(alias)?;
            if rest.is_empty() {
                return Some((op, RESULT_ACCESS));
            }
            let result = alias_index(&CACHE_RESULTS, rest.strip_prefix('-')?)?;
            Some((op, result))
        })
    })
}

/// Decodes a hardware-cache name into (cache, op, result) indices.
fn decode_cache(name: &str) -> Option<(usize, usize, usize)> {
    CACHES.iter().enumerate().find_map(|(cache, aliases)| {
        aliases.iter().find_map(|alias| {
            let tail = name.strip_prefix(alias)?.strip_prefix('-')?;
            decode_op_result(tail).map(|(op, result)| (cache, op, result))
        })
    })
}

/// The spec of a hardware, software or hardware-cache name (perf's spelling,
/// case-sensitive, aliases accepted), under its canonical name.
pub(super) fn legacy_counter(name: &str) -> Option<CounterSpec> {
    find_named(&HARDWARE, name)
        .map(hardware_spec)
        .or_else(|| find_named(&SOFTWARE, name).map(software_spec))
        .or_else(|| decode_cache(name).map(|(cache, op, result)| cache_spec(cache, op, result)))
}

/// Every hardware counter, then every cache × op × result, then every
/// software counter, each under its canonical name.
pub fn known_counters() -> Vec<CounterSpec> {
    let hardware = HARDWARE.iter().map(hardware_spec);
    let caches = (0..CACHES.len()).flat_map(|cache| {
        (0..CACHE_OPS.len()).flat_map(move |op| {
            (0..CACHE_RESULTS.len()).map(move |result| cache_spec(cache, op, result))
        })
    });
    let software = SOFTWARE.iter().map(software_spec);
    hardware.chain(caches).chain(software).collect()
}

/// Every alias perf accepts for a hardware or software counter, as
/// `(alias, canonical name)` pairs. Cache aliases (`l1d`, `L2`, `read`,
/// `miss`, ...) are combinations and are described in `docs/counters.md`.
pub fn known_aliases() -> Vec<(&'static str, &'static str)> {
    HARDWARE
        .iter()
        .chain(SOFTWARE.iter())
        .flat_map(|entry| entry.aliases.iter().map(move |alias| (*alias, entry.name)))
        .collect()
}

/// Minimum Jaro-Winkler similarity for a name to be suggested.
const SUGGESTION_THRESHOLD: f64 = 0.85;
/// At most this many names are suggested.
const MAX_SUGGESTIONS: usize = 3;

/// The known names (canonical and aliases) closest to `name`, best first.
pub(super) fn suggestions(name: &str) -> Vec<String> {
    let mut candidates: Vec<String> = known_counters().into_iter().map(|spec| spec.name).collect();
    candidates.extend(
        known_aliases()
            .into_iter()
            .map(|(alias, _)| alias.to_owned()),
    );
    let mut scored: Vec<(f64, String)> = candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, &candidate), candidate))
        .filter(|(score, _)| *score >= SUGGESTION_THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, candidate)| candidate)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(name: &str) -> (CounterKind, u32, u64, String) {
        let spec = legacy_counter(name).unwrap_or_else(|| panic!("{name} should be known"));
        (spec.kind, spec.type_, spec.config, spec.name)
    }

    #[test]
    fn every_hardware_name_and_alias() {
        let expected: [(&str, u64, &str); 14] = [
            ("cpu-cycles", 0, "cpu-cycles"),
            ("cycles", 0, "cpu-cycles"),
            ("instructions", 1, "instructions"),
            ("cache-references", 2, "cache-references"),
            ("cache-misses", 3, "cache-misses"),
            ("branch-instructions", 4, "branch-instructions"),
            ("branches", 4, "branch-instructions"),
            ("branch-misses", 5, "branch-misses"),
            ("bus-cycles", 6, "bus-cycles"),
            ("stalled-cycles-frontend", 7, "stalled-cycles-frontend"),
            ("idle-cycles-frontend", 7, "stalled-cycles-frontend"),
            ("stalled-cycles-backend", 8, "stalled-cycles-backend"),
            ("idle-cycles-backend", 8, "stalled-cycles-backend"),
            ("ref-cycles", 9, "ref-cycles"),
        ];
        for (name, config, canonical) in expected {
            assert_eq!(
                encoding(name),
                (CounterKind::Hardware, 0, config, canonical.to_owned())
            );
        }
    }

    #[test]
    fn every_software_name_and_alias() {
        let expected: [(&str, u64, &str); 12] = [
            ("cpu-clock", 0, "cpu-clock"),
            ("task-clock", 1, "task-clock"),
            ("page-faults", 2, "page-faults"),
            ("faults", 2, "page-faults"),
            ("context-switches", 3, "context-switches"),
            ("cs", 3, "context-switches"),
            ("cpu-migrations", 4, "cpu-migrations"),
            ("migrations", 4, "cpu-migrations"),
            ("minor-faults", 5, "minor-faults"),
            ("major-faults", 6, "major-faults"),
            ("alignment-faults", 7, "alignment-faults"),
            ("emulation-faults", 8, "emulation-faults"),
        ];
        for (name, config, canonical) in expected {
            assert_eq!(
                encoding(name),
                (CounterKind::Software, 1, config, canonical.to_owned())
            );
        }
    }

    #[test]
    fn clocks_count_nanoseconds_and_the_rest_count_events() {
        let units: Vec<(String, Unit)> = SOFTWARE
            .iter()
            .map(software_spec)
            .filter(|spec| spec.unit == Unit::Nanoseconds)
            .map(|spec| (spec.name, spec.unit))
            .collect();
        assert_eq!(
            units,
            [
                ("cpu-clock".to_owned(), Unit::Nanoseconds),
                ("task-clock".to_owned(), Unit::Nanoseconds)
            ]
        );
        assert_eq!(
            legacy_counter("cycles").map(|spec| spec.unit),
            Some(Unit::Count)
        );
    }

    #[test]
    fn cache_names_encode_cache_op_and_result() {
        let expected: [(&str, u64); 16] = [
            ("LLC-load-misses", 0x10002),
            ("LLC-store-misses", 0x10102),
            ("LLC-prefetch-misses", 0x10202),
            ("LLC-loads", 0x00002),
            ("LLC-stores", 0x00102),
            ("LLC-prefetches", 0x00202),
            ("L1-dcache-loads", 0x00000),
            ("L1-dcache-load-misses", 0x10000),
            ("L1-dcache-stores", 0x00100),
            ("L1-icache-load-misses", 0x10001),
            ("dTLB-load-misses", 0x10003),
            ("dTLB-store-misses", 0x10103),
            ("iTLB-load-misses", 0x10004),
            ("branch-loads", 0x00005),
            ("branch-load-misses", 0x10005),
            ("node-prefetch-misses", 0x10206),
        ];
        for (name, config) in expected {
            assert_eq!(
                encoding(name),
                (CounterKind::HwCache, 3, config, name.to_owned())
            );
        }
    }

    #[test]
    fn cache_aliases_resolve_to_canonical_names() {
        let expected: [(&str, &str, u64); 9] = [
            ("l1d-load-misses", "L1-dcache-load-misses", 0x10000),
            ("L1-data-read-miss", "L1-dcache-load-misses", 0x10000),
            ("L2-load-misses", "LLC-load-misses", 0x10002),
            ("LLC-misses", "LLC-load-misses", 0x10002),
            ("LLC-load", "LLC-loads", 0x00002),
            ("LLC-write-access", "LLC-stores", 0x00102),
            (
                "LLC-speculative-read-misses",
                "LLC-prefetch-misses",
                0x10202,
            ),
            ("Data-TLB-store-misses", "dTLB-store-misses", 0x10103),
            ("bpu-loads", "branch-loads", 0x00005),
        ];
        for (name, canonical, config) in expected {
            assert_eq!(
                encoding(name),
                (CounterKind::HwCache, 3, config, canonical.to_owned())
            );
        }
    }

    #[test]
    fn names_are_case_sensitive_and_exact() {
        for name in [
            "Cycles",
            "TASK-CLOCK",
            "llc-load-misses",
            "LLC-load-misses-misses",
            "LLC",
            "LLC-",
            "L3-loads",
        ] {
            assert_eq!(legacy_counter(name), None, "{name}");
        }
    }

    #[test]
    fn known_counters_are_hardware_then_caches_then_software() {
        let known = known_counters();
        assert_eq!(known.len(), 10 + 7 * 3 * 2 + 9);
        let names: Vec<&str> = known.iter().map(|spec| spec.name.as_str()).collect();
        assert_eq!(&names[..2], ["cpu-cycles", "instructions"]);
        assert_eq!(
            &names[10..16],
            [
                "L1-dcache-loads",
                "L1-dcache-load-misses",
                "L1-dcache-stores",
                "L1-dcache-store-misses",
                "L1-dcache-prefetches",
                "L1-dcache-prefetch-misses"
            ]
        );
        assert_eq!(names[51], "node-prefetch-misses");
        assert_eq!(names[52], "cpu-clock");
        assert_eq!(names[60], "emulation-faults");
    }

    #[test]
    fn known_counters_reparse_to_themselves() {
        for spec in known_counters() {
            assert_eq!(legacy_counter(&spec.name).as_ref(), Some(&spec));
        }
    }

    #[test]
    fn known_aliases_point_at_canonical_names() {
        assert_eq!(
            known_aliases(),
            [
                ("cycles", "cpu-cycles"),
                ("branches", "branch-instructions"),
                ("idle-cycles-frontend", "stalled-cycles-frontend"),
                ("idle-cycles-backend", "stalled-cycles-backend"),
                ("faults", "page-faults"),
                ("cs", "context-switches"),
                ("migrations", "cpu-migrations"),
            ]
        );
    }

    #[test]
    fn suggestions_find_near_misses() {
        assert_eq!(suggestions("LLC-load-mises")[0], "LLC-load-misses");
        assert_eq!(suggestions("cyles")[0], "cycles");
        assert_eq!(suggestions("taskclock")[0], "task-clock");
        assert!(suggestions("zzzz").is_empty());
        assert!(suggestions("LLC-lod-misses").len() <= MAX_SUGGESTIONS);
    }
}
