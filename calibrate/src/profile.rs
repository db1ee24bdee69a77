//! Calibration profiles: the baselines of one machine, kernel, counter set
//! and probe mechanism, and the name of the file they are cached in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::{summarize, Statistic, Summary};
use crate::targets::NEST_CLASS;
use crate::CalibrationError;

/// The profile format this crate reads and writes.
pub const PROFILE_VERSION: u32 = 1;

/// What a profile is only valid for: the probe cost depends on the kernel,
/// the CPU, the counters read at every hit and how the probes are placed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProfileKey {
    /// `uname -r`.
    pub kernel_release: String,
    /// CPU model name, as in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The counters of the group, in group order, as perfunc names them.
    pub counters: Vec<String>,
    /// How probes are placed, e.g. `"tracefs-uprobe"`.
    pub mechanism: String,
}

impl ProfileKey {
    /// The name of the file the profile is cached in:
    /// `calibration-<16 hex digits>.json`, the FNV-1a 64-bit hash of the
    /// key's canonical JSON (fields in declaration order, no whitespace).
    /// Stable across runs, platforms and Rust versions.
    pub fn file_name(&self) -> String {
        format!(
            "calibration-{:016x}.json",
            fnv1a64(self.canonical_json().as_bytes())
        )
    }

    /// The key as compact JSON, fields in declaration order.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a ProfileKey always serializes")
    }
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

/// What the probes add to one counter on a function of one instruction
/// class: the summary of the entry-to-return deltas of its empty target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Instruction class of the target, e.g. `"push-rbp"`.
    pub class: String,
    /// Counter name, as in [`ProfileKey::counters`].
    pub counter: String,
    /// The deltas, over every round.
    pub summary: Summary,
    /// Taken from the cached profile into a profile measured in a run
    /// ([`Source::InRun`]), for a class the run could not measure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// Where a profile's baselines were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// By `perfunc calibrate` (or a recording's first use of a counter
    /// set), in processes of its own, then cached.
    #[default]
    Calibrate,
    /// In the recorded command's own process, just before it started
    /// (baselines marked [`Baseline::cached`] aside).
    InRun,
}

impl Source {
    /// The name in profiles and reports.
    pub fn name(self) -> &'static str {
        match self {
            Source::Calibrate => "calibrate",
            Source::InRun => "in-run",
        }
    }
}

/// A calibration profile: every baseline measured for one [`ProfileKey`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Format version, [`PROFILE_VERSION`].
    pub version: u32,
    /// What the profile is valid for.
    pub key: ProfileKey,
    /// When it was measured, in seconds since the Unix epoch.
    pub created_unix: u64,
    /// Calls of each target per round.
    pub calls_per_round: u64,
    /// Rounds per target.
    pub rounds: u32,
    /// Own cost of a probe pair: one per (class, counter), sorted by class
    /// then counter.
    pub baselines: Vec<Baseline>,
    /// Optional: the deltas of the nesting target (class [`NEST_CLASS`])
    /// wrapped around the target of `class`, both probed (see
    /// [`crate::run_nested`]). Sorted like `baselines`; empty when not
    /// measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nested: Vec<Baseline>,
    /// Where it was measured; absent (calibrate) in older profiles.
    #[serde(default)]
    pub source: Source,
    /// The machine's 1-minute load average when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg: Option<f64>,
    /// When the cached profile its [`Baseline::cached`] baselines come
    /// from was measured, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_created_unix: Option<u64>,
}

impl Profile {
    /// Builds a profile from raw deltas: `(class, counter, deltas)`.
    /// Deltas of the same class and counter are pooled (e.g. one entry per
    /// round); entries with no deltas make no baseline.
    pub fn from_deltas(
        key: ProfileKey,
        created_unix: u64,
        calls_per_round: u64,
        rounds: u32,
        deltas: impl IntoIterator<Item = (String, String, Vec<f64>)>,
    ) -> Profile {
        Profile {
            version: PROFILE_VERSION,
            key,
            created_unix,
            calls_per_round,
            rounds,
            baselines: baselines_of(deltas),
            nested: Vec::new(),
            source: Source::Calibrate,
            loadavg: None,
            cached_created_unix: None,
        }
    }

    /// Takes from `cached` every baseline (own and nested) whose class
    /// this profile has none of, for no counter, marking it
    /// [`Baseline::cached`]: a profile measured in a run holds only the
    /// classes the run probes, and the rest (system calls, kernel
    /// functions) come from the cache.
    pub fn fill_from(&mut self, cached: &Profile) {
        let has = |list: &[Baseline], class: &str| list.iter().any(|b| b.class == class);
        let own: Vec<Baseline> = cached
            .baselines
            .iter()
            .filter(|b| !has(&self.baselines, &b.class))
            .cloned()
            .collect();
        let nested: Vec<Baseline> = cached
            .nested
            .iter()
            .filter(|b| !has(&self.nested, &b.class) && !has(&self.baselines, &b.class))
            .cloned()
            .collect();
        if own.is_empty() && nested.is_empty() {
            return;
        }
        for (list, add) in [(&mut self.baselines, own), (&mut self.nested, nested)] {
            list.extend(add.into_iter().map(|b| Baseline { cached: true, ..b }));
            list.sort_by(|a, b| (&a.class, &a.counter).cmp(&(&b.class, &b.counter)));
        }
        self.cached_created_unix = Some(cached.created_unix);
    }

    /// The classes of the baselines, once each, in order.
    pub fn classes(&self, cached: bool) -> Vec<&str> {
        let mut classes: Vec<&str> = self
            .baselines
            .iter()
            .filter(|b| b.cached == cached)
            .map(|b| b.class.as_str())
            .collect();
        classes.dedup();
        classes
    }

    /// Sets [`Profile::nested`] from raw deltas of the nesting target:
    /// `(inner class, counter, deltas)`, pooled like in
    /// [`Profile::from_deltas`].
    pub fn set_nested(&mut self, deltas: impl IntoIterator<Item = (String, String, Vec<f64>)>) {
        self.nested = baselines_of(deltas);
    }

    /// The baseline of `class` and `counter`.
    pub fn baseline(&self, class: &str, counter: &str) -> Option<&Baseline> {
        find(&self.baselines, class, counter)
    }

    /// What a probe pair adds to `counter` on a function of `class`, by
    /// statistic `statistic`: the `own` argument of [`crate::compensate`].
    pub fn own_cost(&self, class: &str, counter: &str, statistic: Statistic) -> Option<f64> {
        self.baseline(class, counter)
            .map(|b| b.summary.value(statistic))
    }

    /// What a probed call of `class` adds to `counter` of every probed call
    /// it is nested in: one term of the `descendants` argument of
    /// [`crate::compensate`]. From the nesting measurement when there is
    /// one (nest delta − the nest's own baseline); otherwise the own cost,
    /// which leaves out the parts of the probe handling before the entry
    /// read and after the return read.
    pub fn descendant_cost(&self, class: &str, counter: &str, statistic: Statistic) -> Option<f64> {
        let nested = find(&self.nested, class, counter)
            .zip(self.baseline(NEST_CLASS, counter))
            .map(|(nest, own)| nest.summary.value(statistic) - own.summary.value(statistic));
        nested.or_else(|| self.own_cost(class, counter, statistic))
    }

    /// The profile as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Profile always serializes")
    }

    /// Reads a profile; one of another format version is rejected with
    /// [`CalibrationError::UnsupportedVersion`].
    pub fn from_json(text: &str) -> Result<Profile, CalibrationError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        match value.get("version") {
            None => return Err(CalibrationError::MissingVersion),
            Some(v) if v.as_u64() != Some(u64::from(PROFILE_VERSION)) => {
                return Err(CalibrationError::UnsupportedVersion {
                    found: v.to_string(),
                    expected: PROFILE_VERSION,
                })
            }
            Some(_) => {}
        }
        Ok(serde_json::from_value(value)?)
    }
}

fn find<'a>(list: &'a [Baseline], class: &str, counter: &str) -> Option<&'a Baseline> {
    list.iter()
        .find(|b| b.class == class && b.counter == counter)
}

fn baselines_of(deltas: impl IntoIterator<Item = (String, String, Vec<f64>)>) -> Vec<Baseline> {
    let mut pooled: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (class, counter, values) in deltas {
        pooled.entry((class, counter)).or_default().extend(values);
    }
    pooled
        .into_iter()
        .filter_map(|((class, counter), mut values)| {
            summarize(&mut values).map(|summary| Baseline {
                class,
                counter,
                summary,
                cached: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ProfileKey {
        ProfileKey {
            kernel_release: "6.18.0".into(),
            cpu_model: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz".into(),
            counters: vec!["task-clock".into(), "page-faults".into()],
            mechanism: "tracefs-uprobe".into(),
        }
    }

    fn entry(class: &str, counter: &str, values: &[f64]) -> (String, String, Vec<f64>) {
        (class.into(), counter.into(), values.to_vec())
    }

    fn profile() -> Profile {
        Profile::from_deltas(
            key(),
            1_700_000_000,
            1000,
            2,
            [
                entry("ret", "task-clock", &[12_000.0, 12_600.0, 90_000.0]),
                entry("push-rbp", "task-clock", &[1400.0, 1412.0]),
                entry("push-rbp", "page-faults", &[0.0, 0.0, 1.0]),
                entry("push-rbp", "task-clock", &[1420.0]),
                entry("nop5", "task-clock", &[]),
            ],
        )
    }

    #[test]
    fn file_name_is_stable() {
        assert_eq!(
            key().canonical_json(),
            r#"{"kernel_release":"6.18.0","cpu_model":"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz","counters":["task-clock","page-faults"],"mechanism":"tracefs-uprobe"}"#
        );
        assert_eq!(key().file_name(), "calibration-be57ee654022345c.json");
    }

    #[test]
    fn fnv1a64_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn file_name_differs_for_other_keys() {
        let base = key().file_name();
        let mut other = key();
        other.kernel_release = "6.18.1".into();
        assert_ne!(other.file_name(), base);
        let mut other = key();
        other.cpu_model.push(' ');
        assert_ne!(other.file_name(), base);
        let mut other = key();
        other.counters.reverse();
        assert_ne!(other.file_name(), base);
        let mut other = key();
        other.counters.pop();
        assert_ne!(other.file_name(), base);
        let mut other = key();
        other.mechanism = "perf-uprobe".into();
        assert_ne!(other.file_name(), base);
        // field boundaries matter: moving a character between fields changes it
        let mut a = key();
        a.counters = vec!["ab".into(), "c".into()];
        let mut b = key();
        b.counters = vec!["a".into(), "bc".into()];
        assert_ne!(a.file_name(), b.file_name());
    }

    #[test]
    fn from_deltas_pools_sorts_and_skips_empty() {
        let p = profile();
        assert_eq!(p.version, PROFILE_VERSION);
        let order: Vec<(&str, &str)> = p
            .baselines
            .iter()
            .map(|b| (b.class.as_str(), b.counter.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("push-rbp", "page-faults"),
                ("push-rbp", "task-clock"),
                ("ret", "task-clock")
            ]
        );
        let push = p.baseline("push-rbp", "task-clock").unwrap();
        assert_eq!(push.summary.n, 3);
        assert_eq!(push.summary.median, 1412.0);
        assert!(p.baseline("nop5", "task-clock").is_none());
        assert!(p.baseline("push-rbp", "cycles").is_none());
        assert!(p.baseline("task-clock", "push-rbp").is_none());
        assert_eq!(
            p.own_cost("ret", "task-clock", Statistic::Median),
            Some(12_600.0)
        );
        assert_eq!(
            p.own_cost("ret", "task-clock", Statistic::Mean),
            Some(38_200.0)
        );
    }

    #[test]
    fn descendant_cost_uses_the_nesting_measurement() {
        let mut p = profile();
        // without it: the own cost
        assert_eq!(
            p.descendant_cost("ret", "task-clock", Statistic::Median),
            Some(12_600.0)
        );
        p.set_nested([entry("ret", "task-clock", &[15_412.0, 15_000.0, 16_000.0])]);
        // nest median 15,412 − nest (push-rbp) own median 1,412
        assert_eq!(
            p.descendant_cost("ret", "task-clock", Statistic::Median),
            Some(14_000.0)
        );
        assert_eq!(
            p.descendant_cost("push-rbp", "task-clock", Statistic::Median),
            Some(1412.0)
        );
        assert_eq!(
            p.descendant_cost("mov", "task-clock", Statistic::Median),
            None
        );
    }

    #[test]
    fn json_round_trip() {
        let mut p = profile();
        let text = p.to_json();
        assert!(!text.contains("nested"), "empty nested list is left out");
        assert_eq!(Profile::from_json(&text).unwrap(), p);
        p.set_nested([entry("ret", "task-clock", &[1.0])]);
        assert_eq!(Profile::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn a_run_profile_takes_only_the_classes_it_lacks_from_the_cache() {
        let mut run = Profile::from_deltas(
            key(),
            1_800_000_000,
            1000,
            1,
            [entry("push-rbp", "task-clock", &[1500.0])],
        );
        run.source = Source::InRun;
        run.set_nested([entry("push-rbp", "task-clock", &[3000.0])]);
        let mut cached = profile();
        cached.set_nested([
            entry("ret", "task-clock", &[15_000.0]),
            entry("push-rbp", "task-clock", &[2000.0]),
        ]);
        run.fill_from(&cached);
        let own: Vec<(&str, &str, bool)> = run
            .baselines
            .iter()
            .map(|b| (b.class.as_str(), b.counter.as_str(), b.cached))
            .collect();
        // push-rbp page-faults is not taken: the run measured push-rbp.
        assert_eq!(
            own,
            [
                ("push-rbp", "task-clock", false),
                ("ret", "task-clock", true)
            ]
        );
        assert_eq!(
            run.own_cost("push-rbp", "task-clock", Statistic::Median),
            Some(1500.0)
        );
        assert_eq!(
            run.own_cost("ret", "task-clock", Statistic::Median),
            Some(12_600.0)
        );
        let nested: Vec<(&str, bool)> = run
            .nested
            .iter()
            .map(|b| (b.class.as_str(), b.cached))
            .collect();
        assert_eq!(nested, [("push-rbp", false), ("ret", true)]);
        assert_eq!(run.cached_created_unix, Some(1_700_000_000));
        assert_eq!(run.classes(false), ["push-rbp"]);
        assert_eq!(run.classes(true), ["ret"]);
        let text = run.to_json();
        assert!(text.contains("\"source\": \"in-run\""), "{text}");
        assert_eq!(Profile::from_json(&text).unwrap(), run);
        // An older profile has no source: calibrate.
        let mut value: serde_json::Value = serde_json::from_str(&profile().to_json()).unwrap();
        value.as_object_mut().unwrap().remove("source");
        let old = Profile::from_json(&value.to_string()).unwrap();
        assert_eq!(old.source, Source::Calibrate);
        assert!(!profile().to_json().contains("cached\": true"));
    }

    #[test]
    fn other_versions_are_rejected() {
        let mut value: serde_json::Value = serde_json::from_str(&profile().to_json()).unwrap();
        value["version"] = 2.into();
        let err = Profile::from_json(&value.to_string()).unwrap_err();
        assert!(
            matches!(err, CalibrationError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "calibration profile version 2 is not supported (this perfunc reads version 1); \
             run `perfunc calibrate` again"
        );
        value["version"] = "1".into();
        let err = Profile::from_json(&value.to_string()).unwrap_err();
        assert!(
            matches!(err, CalibrationError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        value.as_object_mut().unwrap().remove("version");
        let err = Profile::from_json(&value.to_string()).unwrap_err();
        assert!(matches!(err, CalibrationError::MissingVersion), "{err:?}");
        let err = Profile::from_json("{").unwrap_err();
        assert!(matches!(err, CalibrationError::Json(_)), "{err:?}");
        let err = Profile::from_json(r#"{"version": 1}"#).unwrap_err();
        assert!(matches!(err, CalibrationError::Json(_)), "{err:?}");
    }
}
