//! The default counters, decided one by one: each of perf's generic LLC
//! miss counters is opened on its own and kept when it opens; one that does
//! not is replaced by the CPU model's equivalent where perfunc's tables have
//! one, else dropped; software counters are counted only when no cache
//! counter opens. The decision is one line for people and a record for the
//! trace header.
//!
//! Pure: opening is the caller's, through a closure.

use serde::{Deserialize, Serialize};

use super::cpu::{model_for, CpuId, ModelEvents};
use super::{
    errno_name, names, CounterSpec, PmuSource, DEFAULT_FALLBACK, DEFAULT_HARDWARE, PERF_TYPE_RAW,
};

/// One generic counter that did not open, and what counts in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    /// The generic counter: `LLC-prefetch-misses`.
    pub generic: String,
    /// Why it did not open: `ENOENT`.
    pub error: String,
    /// The counter counted instead: `l2_rqsts.pf_miss`.
    pub by: String,
    /// What the replacement counts, from perfunc's tables.
    pub why: String,
}

/// One generic counter that did not open and has no replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The generic counter.
    pub generic: String,
    /// Why it did not open.
    pub error: String,
    /// Why nothing replaces it.
    pub reason: String,
}

/// How the default counters were chosen (stored in the trace header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDecision {
    /// The CPU model perfunc's tables matched, e.g. `AMD Zen 3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// The counters counted, in trace order.
    pub counted: Vec<String>,
    /// Generic counters replaced by the model's equivalents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replacement>,
    /// Generic counters dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
    /// Whether no cache counter opened and software counters are counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// The decision in one line, as perfunc printed it.
    pub summary: String,
}

/// The core PMU a machine has: `cpu`, or `cpu_core` on hybrid Intel CPUs
/// (whose generic events need the PMU's type in bits 32-63 of `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePmu {
    /// `cpu` or `cpu_core`.
    pub name: &'static str,
    /// Its `perf_event_attr.type`.
    pub type_: u32,
    /// Whether the CPU is hybrid (the generic events then carry the type).
    pub hybrid: bool,
}

impl CorePmu {
    /// The core PMU `pmus` publish, if any.
    pub fn find(pmus: &dyn PmuSource) -> Option<CorePmu> {
        if let Some(type_) = pmus.pmu_type("cpu") {
            return Some(CorePmu {
                name: "cpu",
                type_,
                hybrid: false,
            });
        }
        pmus.pmu_type("cpu_core").map(|type_| CorePmu {
            name: "cpu_core",
            type_,
            hybrid: true,
        })
    }

    /// The generic hardware or cache spec for this PMU: with the PMU's type
    /// in the high half of `config` on hybrid CPUs, as perf does.
    pub fn generic(&self, mut spec: CounterSpec) -> CounterSpec {
        if self.hybrid {
            spec.config |= u64::from(self.type_) << 32;
        }
        spec
    }
}

/// The name of an open error: `ENOENT`, or the number.
fn error_name(errno: i32) -> String {
    errno_name(errno).map_or_else(|| format!("errno {errno}"), str::to_owned)
}

/// What the lack of a PMU or permission means, after the errno.
fn cause(errno: i32, has_pmu: bool) -> &'static str {
    match errno {
        libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP if !has_pmu => {
            ", no hardware PMU, as in most VMs"
        }
        libc::EACCES | libc::EPERM => ", not permitted",
        _ => "",
    }
}

/// Decides the default counters. `cpuinfo` is the text of `/proc/cpuinfo`,
/// `open` tries one counter on its own and gives the errno on failure.
pub fn decide_defaults(
    cpuinfo: &str,
    pmus: &dyn PmuSource,
    open: &mut dyn FnMut(&CounterSpec) -> Result<(), i32>,
) -> (Vec<CounterSpec>, CounterDecision) {
    let cpu = CpuId::from_cpuinfo(cpuinfo);
    let model = cpu.as_ref().and_then(model_for);
    let core = CorePmu::find(pmus);
    let mut counters = Vec::new();
    let mut replaced = Vec::new();
    let mut dropped = Vec::new();
    let mut first_error = None;
    for generic in DEFAULT_HARDWARE {
        let Some(spec) = names::legacy_counter(generic) else {
            continue;
        };
        let spec = match &core {
            Some(core) => core.generic(spec),
            None => spec,
        };
        let errno = match open(&spec) {
            Ok(()) => {
                counters.push(spec);
                continue;
            }
            Err(errno) => errno,
        };
        first_error.get_or_insert(errno);
        let error = error_name(errno);
        match substitute(model, core.as_ref(), generic, open) {
            Ok((by, why)) => {
                replaced.push(Replacement {
                    generic: generic.to_owned(),
                    error,
                    by: by.name.clone(),
                    why,
                });
                counters.push(by);
            }
            Err(reason) => dropped.push(Dropped {
                generic: generic.to_owned(),
                error,
                reason,
            }),
        }
    }
    let cpu_model = model.map(|m| m.label.clone());
    if counters.is_empty() {
        let counters: Vec<CounterSpec> = DEFAULT_FALLBACK
            .into_iter()
            .filter_map(names::legacy_counter)
            .collect();
        let errno = first_error.unwrap_or(libc::ENOENT);
        let summary = format!(
            "counting {}: no cache counter opens here ({}: {}{})",
            DEFAULT_FALLBACK.join(", "),
            DEFAULT_HARDWARE.join(", "),
            error_name(errno),
            cause(errno, core.is_some()),
        );
        let decision = CounterDecision {
            cpu_model,
            counted: counters.iter().map(|c| c.name.clone()).collect(),
            replaced: Vec::new(),
            dropped,
            fallback: true,
            summary,
        };
        return (counters, decision);
    }
    let counted: Vec<String> = counters.iter().map(|c| c.name.clone()).collect();
    let mut summary = format!("counting {}", counted.join(", "));
    if let Some(core) = core.as_ref().filter(|core| core.hybrid) {
        summary.push_str(&format!(
            " (on the {} PMU: calls on the other kind of core are not counted)",
            core.name
        ));
    }
    let on = cpu_model.as_deref().unwrap_or("this CPU");
    for r in &replaced {
        summary.push_str(&format!(
            "; {} ({}) is replaced by {} on {on}: {}",
            r.generic, r.error, r.by, r.why
        ));
    }
    for d in &dropped {
        summary.push_str(&format!(
            "; {} ({}) is dropped: {}",
            d.generic, d.error, d.reason
        ));
    }
    let decision = CounterDecision {
        cpu_model,
        counted,
        replaced,
        dropped,
        fallback: false,
        summary,
    };
    (counters, decision)
}

/// The model's stand-in for `generic`, opened on its own; the reason for
/// dropping `generic` when there is none or it does not open either.
fn substitute(
    model: Option<&ModelEvents>,
    core: Option<&CorePmu>,
    generic: &str,
    open: &mut dyn FnMut(&CounterSpec) -> Result<(), i32>,
) -> Result<(CounterSpec, String), String> {
    let Some(model) = model else {
        return Err("perfunc has no table of this CPU model's events".to_owned());
    };
    let pmu_type = core.map_or(PERF_TYPE_RAW, |core| core.type_);
    let Some(found) = model.substitute(generic, pmu_type) else {
        return Err(format!(
            "{} has no equivalent in perfunc's tables",
            model.label
        ));
    };
    let (spec, substitute) = found?;
    match open(&spec) {
        Ok(()) => Ok((spec, substitute.why.clone())),
        Err(errno) => Err(format!(
            "its {} equivalent {} does not open either ({})",
            model.label,
            spec.name,
            error_name(errno)
        )),
    }
}

#[cfg(test)]
mod tests;
