//! Kernel probe specifications and the kernel texts that resolve them.
//!
//! `perfunc record -k SPEC` measures kernel code between an entry event and
//! a return event. Three kinds of kernel probes exist, each written as its
//! own spec (see [`KernelProbe`]):
//!
//! - **System calls**, `syscall:NAME`: the tracepoint pair
//!   `syscalls/sys_enter_NAME` and `syscalls/sys_exit_NAME`. Needs tracefs
//!   mounted (`mount -t tracefs nodev /sys/kernel/tracing`) and a kernel
//!   built with `CONFIG_FTRACE_SYSCALLS`. Each event's `id` file gives the
//!   `perf_event_attr.config` of a `PERF_TYPE_TRACEPOINT` event; the caller
//!   lists `events/syscalls` and offers [`closest`] names when NAME is
//!   unknown.
//! - **Tracepoint pairs**, `tp:SUBSYSTEM:BEGIN/END[:KEY]`: any two
//!   tracepoints of one subsystem, such as `irq/softirq_entry` and
//!   `irq/softirq_exit`. Needs tracefs, like system calls. Without a key a
//!   BEGIN and the next END of the same thread form a call. With a key the
//!   two events match only when the field KEY carries the same value in
//!   both: the caller samples `PERF_SAMPLE_RAW`, finds the field in each
//!   event's `format` file with [`parse_format`] and reads it from the raw
//!   payload with [`Field::read`].
//! - **Functions**, a name or a glob such as `vfs_read` or `ext4_*`: a
//!   kprobe at the entry and a kretprobe at the return of each matching
//!   function. Needs `CONFIG_KPROBES`. The names come from `/proc/kallsyms`
//!   ([`parse_kallsyms`], [`match_functions`]); where
//!   `available_filter_functions` is readable it limits them to the
//!   functions the kernel lets one trace ([`parse_filter_functions`]). The
//!   probes are made by writing lines to tracefs `kprobe_events`
//!   ([`kprobe_lines`]) and opening the new tracepoints, as for uprobes.
//!
//! Everything here is pure: the caller reads the files and hands their text
//! over, so every parser is tested on texts copied from a real machine.

mod format;
mod kallsyms;
mod kprobe;
mod spec;

pub use format::{parse_format, Field, TracepointFormat};
pub use kallsyms::{
    addresses_hidden, match_functions, parse_filter_functions, parse_kallsyms, KernelSymbol,
};
pub use kprobe::{
    kprobe_event_name, kprobe_lines, kprobe_missed, kprobe_removal_line, KRETPROBE_MAXACTIVE,
};
pub use spec::KernelProbe;

/// What can go wrong when reading a kernel probe spec or a kernel text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The spec is empty.
    #[error("empty kernel probe; write {SPEC_FORMS}")]
    EmptySpec,
    /// The spec has a `KIND:` prefix perfunc does not know.
    #[error("unknown kernel probe kind '{kind}' in '{spec}'; write {SPEC_FORMS}")]
    UnknownKind {
        /// The whole spec.
        spec: String,
        /// The text before the first `:`.
        kind: String,
    },
    /// `syscall:` with nothing after it.
    #[error("'{spec}' names no system call; write syscall:NAME, e.g. syscall:read")]
    EmptySyscall {
        /// The whole spec.
        spec: String,
    },
    /// A `tp:` spec without the `SUBSYSTEM:BEGIN/END` shape.
    #[error("'{spec}' is not a tracepoint pair; write {TP_FORM}, e.g. tp:irq:softirq_entry/softirq_exit:vec")]
    MalformedTracepoints {
        /// The whole spec.
        spec: String,
    },
    /// A `tp:` spec with a begin event and no `/END`.
    #[error("'{spec}' names only the begin event; write tp:{subsystem}:{begin}/END, e.g. tp:irq:softirq_entry/softirq_exit")]
    MissingEnd {
        /// The whole spec.
        spec: String,
        /// The subsystem as written.
        subsystem: String,
        /// The begin event as written.
        begin: String,
    },
    /// A system call, subsystem, event or key name with characters other
    /// than letters, digits and `_`.
    #[error("bad {what} '{name}' in '{spec}': names use only letters, digits and '_'")]
    BadName {
        /// The whole spec.
        spec: String,
        /// Which part of the spec: "system call", "subsystem", "event" or "key".
        what: &'static str,
        /// The offending part.
        name: String,
    },
    /// A function pattern that is not a valid glob of symbol characters.
    #[error("bad kernel function pattern '{pattern}': {reason}; write a function name or a glob such as 'vfs_*'")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },
    /// No kernel function matches the pattern.
    #[error("no kernel function matches '{pattern}'; {}", did_you_mean(.suggestions, "look the name up in /proc/kallsyms"))]
    NoMatch {
        /// The pattern as written.
        pattern: String,
        /// Up to 3 names close to the pattern.
        suggestions: Vec<String>,
    },
    /// Functions match, but none is in `available_filter_functions`.
    #[error("kernel functions match '{pattern}' ({}) but none can be traced (inlined, notrace or blacklisted); {}", .names.join(", "), did_you_mean(.suggestions, "pick another function"))]
    NotTraceable {
        /// The pattern as written.
        pattern: String,
        /// The first few matching names.
        names: Vec<String>,
        /// Up to 3 traceable names close to the pattern.
        suggestions: Vec<String>,
    },
    /// A kprobe group or symbol that `kprobe_events` would refuse.
    #[error("bad kprobe {what} '{name}': {reason}")]
    BadKprobe {
        /// "group" or "symbol".
        what: &'static str,
        /// The offending text.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tracepoint `format` file that cannot be read.
    #[error("bad tracepoint format, line {line}: {reason}")]
    BadFormat {
        /// 1-based line number (0 when the whole text is at fault).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tracepoint has no field of the wanted name.
    #[error("tracepoint {event} has no field '{field}'; {}", did_you_mean(.suggestions, "pick a field of its format file"))]
    NoSuchField {
        /// The tracepoint's name.
        event: String,
        /// The missing field.
        field: String,
        /// Up to 3 field names close to it.
        suggestions: Vec<String>,
    },
}

/// The accepted spec forms, for error messages.
const SPEC_FORMS: &str =
    "syscall:NAME, tp:SUBSYSTEM:BEGIN/END[:KEY], or a kernel function name or glob (fn:PATTERN)";

/// The tracepoint pair form, for error messages.
const TP_FORM: &str = "tp:SUBSYSTEM:BEGIN/END[:KEY]";

/// `"did you mean a, b?"`, or `otherwise` without suggestions.
fn did_you_mean(suggestions: &[String], otherwise: &str) -> String {
    if suggestions.is_empty() {
        otherwise.to_string()
    } else {
        format!("did you mean {}?", suggestions.join(", "))
    }
}

/// Lowest Jaro-Winkler similarity a name needs to be suggested.
const MIN_SIMILARITY: f64 = 0.8;

/// Up to 3 names closest to `wanted` (Jaro-Winkler similarity of at least
/// 0.8), most similar first, ties in name order, without duplicates.
///
/// For messages such as "no syscall named X; did you mean ...".
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = names
        .into_iter()
        .map(|name| (strsim::jaro_winkler(wanted, name), name))
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

/// `pattern` as a glob, or a [`KernelError::BadPattern`] saying why not.
fn compile_glob(pattern: &str) -> Result<globset::Glob, KernelError> {
    globset::Glob::new(pattern).map_err(|err| KernelError::BadPattern {
        pattern: pattern.to_string(),
        reason: err.kind().to_string(),
    })
}

/// Whether `name` is a kernel identifier: non-empty, letters, digits, `_`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// System calls named by `events/syscalls/sys_enter_*` on this machine.
    const SYSCALLS: [&str; 10] = [
        "read", "readv", "pread64", "preadv", "preadv2", "readlink", "write", "getppid", "getpid",
        "read",
    ];

    #[test]
    fn closest_ranks_by_similarity_and_dedups() {
        assert_eq!(closest("reed", SYSCALLS), ["read", "readv"]);
        assert_eq!(closest("preadv3", SYSCALLS), ["preadv", "preadv2", "readv"]);
    }

    #[test]
    fn closest_drops_unrelated_names() {
        assert_eq!(closest("zzz", SYSCALLS), Vec::<&str>::new());
        assert_eq!(closest("read", std::iter::empty()), Vec::<&str>::new());
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("sys_enter_pread64"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("vfs-read"));
        assert!(!is_identifier("vfs read"));
    }

    #[test]
    fn did_you_mean_lists_or_is_empty() {
        assert_eq!(did_you_mean(&[], "check it"), "check it");
        assert_eq!(
            did_you_mean(&["a".to_string(), "b".to_string()], "check it"),
            "did you mean a, b?"
        );
    }
}
