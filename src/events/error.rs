//! The one error type of the `events` module.

use thiserror::Error;

/// Where dynamic PMUs are listed, named in error messages.
pub const PMU_DEVICES_DIR: &str = "/sys/bus/event_source/devices";

/// Why a counter name or counter list could not be turned into a
/// [`CounterSpec`](super::CounterSpec).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EventError {
    /// The counter list was empty.
    #[error("no counters given: name at least one, e.g. -e task-clock")]
    EmptyList,

    /// An empty counter name.
    #[error("empty counter name: name a counter, e.g. task-clock")]
    EmptyName,

    /// An item of a comma-separated list was empty (1-based position).
    #[error("empty item {position} in counter list {list:?}: remove the extra comma")]
    EmptyItem { list: String, position: usize },

    /// The same counter (same type, configuration and modifiers) was given twice.
    #[error("counter {name} is given twice{}: remove one", also_named(name, first))]
    Duplicate { name: String, first: String },

    /// A name that is neither a perf counter name, a raw code nor a PMU term list.
    #[error(
        "unknown counter {name:?}{}; run `perfunc list --events` for every name",
        did_you_mean(suggestions)
    )]
    UnknownCounter {
        name: String,
        suggestions: Vec<String>,
    },

    /// A modifier other than `:u`, `:k`, `:uk` or `:ku`.
    #[error(
        "invalid modifier {modifier:?} in {counter}: use :u (user only), :k (kernel only) or :uk"
    )]
    InvalidModifier { counter: String, modifier: String },

    /// An `rNNNN` raw code with a non-hex digit or more than 16 digits.
    #[error("invalid raw counter {name:?}: write r followed by 1 to 16 hex digits, e.g. r01c2")]
    InvalidRaw { name: String },

    /// A `pmu/.../` counter whose slashes or terms are malformed.
    #[error(
        "malformed pmu counter {counter:?}: {reason}; write pmu/event/ or pmu/term=value,.../"
    )]
    MalformedPmu { counter: String, reason: String },

    /// The PMU named before the first `/` does not exist.
    #[error(
        "unknown pmu {pmu:?} in {counter}: the pmus of this machine are the directories of \
         {PMU_DEVICES_DIR}"
    )]
    UnknownPmu { pmu: String, counter: String },

    /// A term that is neither an event alias nor a format term of the PMU.
    #[error(
        "pmu {pmu} has no event or format term {term:?} (in {counter}): see \
         {PMU_DEVICES_DIR}/{pmu}/events and {PMU_DEVICES_DIR}/{pmu}/format"
    )]
    UnknownPmuTerm {
        pmu: String,
        term: String,
        counter: String,
    },

    /// A term value that is not a decimal or `0x` hex number.
    #[error(
        "invalid value {value:?} for term {term} of pmu {pmu} (in {counter}): write a decimal or \
         0x hex number"
    )]
    InvalidTermValue {
        pmu: String,
        term: String,
        value: String,
        counter: String,
    },

    /// A term value with more significant bits than its format has.
    #[error(
        "value {value:#x} of term {term} does not fit in its {bits} bits (pmu {pmu}, in \
         {counter}): use a smaller value"
    )]
    ValueTooWide {
        pmu: String,
        term: String,
        value: u64,
        bits: u32,
        counter: String,
    },

    /// A PMU format description that is not `configN:LO-HI[,LO-HI...]`.
    #[error(
        "pmu {pmu} describes term {term} with an unreadable format {format:?}: expected e.g. \
         config:0-7 or config:0-7,32-35"
    )]
    InvalidFormat {
        pmu: String,
        term: String,
        format: String,
    },
}

/// The ", did you mean ...?" part of an unknown-counter message.
fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(", did you mean {}?", suggestions.join(", "))
    }
}

/// The " (as NAME)" part of a duplicate-counter message, when the first
/// occurrence had another spelling.
fn also_named(name: &str, first: &str) -> String {
    if name == first {
        String::new()
    } else {
        format!(" (as {first})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_counter_lists_suggestions() {
        let error = EventError::UnknownCounter {
            name: "cyles".into(),
            suggestions: vec!["cycles".into(), "cpu-cycles".into()],
        };
        assert_eq!(
            error.to_string(),
            "unknown counter \"cyles\", did you mean cycles, cpu-cycles?; \
             run `perfunc list --events` for every name"
        );
    }

    #[test]
    fn unknown_counter_without_suggestions() {
        let error = EventError::UnknownCounter {
            name: "zzz".into(),
            suggestions: vec![],
        };
        assert_eq!(
            error.to_string(),
            "unknown counter \"zzz\"; run `perfunc list --events` for every name"
        );
    }

    #[test]
    fn duplicates_name_the_first_spelling_when_it_differs() {
        let same = EventError::Duplicate {
            name: "cs".into(),
            first: "cs".into(),
        };
        assert_eq!(same.to_string(), "counter cs is given twice: remove one");
        let other = EventError::Duplicate {
            name: "cpu-cycles".into(),
            first: "cpu-cycles:uk".into(),
        };
        assert_eq!(
            other.to_string(),
            "counter cpu-cycles is given twice (as cpu-cycles:uk): remove one"
        );
    }

    #[test]
    fn unknown_pmu_names_the_sysfs_directory() {
        let error = EventError::UnknownPmu {
            pmu: "foo".into(),
            counter: "foo/bar/".into(),
        };
        assert_eq!(
            error.to_string(),
            "unknown pmu \"foo\" in foo/bar/: the pmus of this machine are the directories of \
             /sys/bus/event_source/devices"
        );
    }
}
