//! The `-k SPEC` syntax: system calls, tracepoint pairs and functions.

use std::fmt;
use std::str::FromStr;

use super::{compile_glob, is_identifier, KernelError};

/// One kernel probe, as written after `perfunc record -k`.
///
/// The forms, tried in this order:
///
/// | spec | probe |
/// |---|---|
/// | `syscall:NAME` | [`KernelProbe::Syscall`] |
/// | `tp:SUBSYSTEM:BEGIN/END` | [`KernelProbe::Tracepoints`] without key |
/// | `tp:SUBSYSTEM:BEGIN/END:KEY` | [`KernelProbe::Tracepoints`] with key |
/// | `fn:PATTERN` | [`KernelProbe::Function`] |
/// | `PATTERN` (no `:`) | [`KernelProbe::Function`] |
///
/// Names (system call, subsystem, events, key) use only letters, digits and
/// `_`. A function pattern is a name or a glob (`*`, `?`, `[...]`,
/// `{a,b}`) over kernel symbol characters (letters, digits, `_`, `.`); it is
/// matched against `/proc/kallsyms` by [`super::match_functions`]. Any other
/// `KIND:` prefix is refused, so a typo such as `sycall:read` is not taken
/// for a function; module-qualified kprobe symbols (`MOD:SYM`) are not
/// accepted: a plain name matches module functions too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelProbe {
    /// A system call: `syscalls/sys_enter_NAME` to `syscalls/sys_exit_NAME`.
    Syscall {
        /// The system call's name, e.g. `read`.
        name: String,
    },
    /// Two tracepoints of one subsystem that open and close a call.
    Tracepoints {
        /// The subsystem (tracefs `events/` directory), e.g. `irq`.
        subsystem: String,
        /// The event that opens a call, e.g. `softirq_entry`.
        begin: String,
        /// The event that closes it, e.g. `softirq_exit`.
        end: String,
        /// A field both events carry: they match only on equal values.
        key: Option<String>,
    },
    /// Kernel functions, by name or glob, probed with kprobe and kretprobe.
    Function {
        /// The name or glob as written, without any `fn:` prefix.
        pattern: String,
    },
}

impl KernelProbe {
    /// The name the report shows: `syscall:NAME`, `tp:SUBSYSTEM:BEGIN/END`
    /// (without the key, which is a matching rule rather than a part of
    /// the name), or the function pattern (a glob's matches are reported
    /// under their own names).
    pub fn name(&self) -> String {
        match self {
            Self::Syscall { name } => format!("syscall:{name}"),
            Self::Tracepoints {
                subsystem,
                begin,
                end,
                ..
            } => format!("tp:{subsystem}:{begin}/{end}"),
            Self::Function { pattern } => pattern.clone(),
        }
    }

    /// The (subsystem, event) pairs of the begin and end tracepoints, or
    /// `None` for functions.
    pub fn tracepoints(&self) -> Option<((String, String), (String, String))> {
        match self {
            Self::Syscall { name } => Some((
                ("syscalls".to_string(), format!("sys_enter_{name}")),
                ("syscalls".to_string(), format!("sys_exit_{name}")),
            )),
            Self::Tracepoints {
                subsystem,
                begin,
                end,
                ..
            } => Some((
                (subsystem.clone(), begin.clone()),
                (subsystem.clone(), end.clone()),
            )),
            Self::Function { .. } => None,
        }
    }
}

/// Writes the spec back in the form [`FromStr`] reads, key included.
impl fmt::Display for KernelProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        match self {
            Self::Tracepoints { key: Some(key), .. } => write!(f, ":{key}"),
            _ => Ok(()),
        }
    }
}

impl FromStr for KernelProbe {
    type Err = KernelError;

    fn from_str(spec: &str) -> Result<Self, KernelError> {
        if spec.is_empty() {
            return Err(KernelError::EmptySpec);
        }
        match spec.split_once(':') {
            None => parse_function(spec),
            Some(("syscall", name)) => parse_syscall(spec, name),
            Some(("tp", rest)) => parse_tracepoints(spec, rest),
            Some(("fn", pattern)) => parse_function(pattern),
            Some((kind, _)) => Err(KernelError::UnknownKind {
                spec: spec.to_string(),
                kind: kind.to_string(),
            }),
        }
    }
}

/// `NAME` of `syscall:NAME`.
fn parse_syscall(spec: &str, name: &str) -> Result<KernelProbe, KernelError> {
    if name.is_empty() {
        return Err(KernelError::EmptySyscall {
            spec: spec.to_string(),
        });
    }
    Ok(KernelProbe::Syscall {
        name: checked_name(spec, "system call", name)?,
    })
}

/// `SUBSYSTEM:BEGIN/END[:KEY]` of `tp:SUBSYSTEM:BEGIN/END[:KEY]`.
fn parse_tracepoints(spec: &str, rest: &str) -> Result<KernelProbe, KernelError> {
    let malformed = || KernelError::MalformedTracepoints {
        spec: spec.to_string(),
    };
    let mut parts = rest.split(':');
    let (subsystem, events, key) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(subsystem), Some(events), key, None) => (subsystem, events, key),
        _ => return Err(malformed()),
    };
    let Some((begin, end)) = events.split_once('/') else {
        return Err(KernelError::MissingEnd {
            spec: spec.to_string(),
            subsystem: subsystem.to_string(),
            begin: events.to_string(),
        });
    };
    if [subsystem, begin, end].contains(&"") || key == Some("") {
        return Err(malformed());
    }
    Ok(KernelProbe::Tracepoints {
        subsystem: checked_name(spec, "subsystem", subsystem)?,
        begin: checked_name(spec, "event", begin)?,
        end: checked_name(spec, "event", end)?,
        key: key.map(|key| checked_name(spec, "key", key)).transpose()?,
    })
}

/// A function name or glob.
fn parse_function(pattern: &str) -> Result<KernelProbe, KernelError> {
    let bad = |reason: String| KernelError::BadPattern {
        pattern: pattern.to_string(),
        reason,
    };
    if pattern.is_empty() {
        return Err(bad("the pattern is empty".to_string()));
    }
    if let Some(c) = pattern.chars().find(|&c| !is_pattern_char(c)) {
        return Err(bad(format!("'{c}' cannot appear in a kernel symbol")));
    }
    compile_glob(pattern)?;
    Ok(KernelProbe::Function {
        pattern: pattern.to_string(),
    })
}

/// Characters of kernel symbols and of globs over them.
fn is_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.*?[]{},!^-".contains(c)
}

/// `name` if it is an identifier, else a [`KernelError::BadName`].
fn checked_name(spec: &str, what: &'static str, name: &str) -> Result<String, KernelError> {
    if is_identifier(name) {
        Ok(name.to_string())
    } else {
        Err(KernelError::BadName {
            spec: spec.to_string(),
            what,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> KernelProbe {
        spec.parse().unwrap()
    }

    fn error(spec: &str) -> String {
        spec.parse::<KernelProbe>().unwrap_err().to_string()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn syscall() {
        let probe = parse("syscall:pread64");
        assert_eq!(
            probe,
            KernelProbe::Syscall {
                name: "pread64".to_string()
            }
        );
        assert_eq!(probe.name(), "syscall:pread64");
        assert_eq!(probe.to_string(), "syscall:pread64");
        assert_eq!(
            probe.tracepoints(),
            Some((
                pair("syscalls", "sys_enter_pread64"),
                pair("syscalls", "sys_exit_pread64")
            ))
        );
    }

    #[test]
    fn tracepoints_without_key() {
        let probe = parse("tp:irq:softirq_entry/softirq_exit");
        assert_eq!(
            probe,
            KernelProbe::Tracepoints {
                subsystem: "irq".to_string(),
                begin: "softirq_entry".to_string(),
                end: "softirq_exit".to_string(),
                key: None,
            }
        );
        assert_eq!(probe.name(), "tp:irq:softirq_entry/softirq_exit");
        assert_eq!(probe.to_string(), "tp:irq:softirq_entry/softirq_exit");
        assert_eq!(
            probe.tracepoints(),
            Some((pair("irq", "softirq_entry"), pair("irq", "softirq_exit")))
        );
    }

    #[test]
    fn tracepoints_with_key() {
        let probe = parse("tp:irq:irq_handler_entry/irq_handler_exit:irq");
        assert_eq!(
            probe,
            KernelProbe::Tracepoints {
                subsystem: "irq".to_string(),
                begin: "irq_handler_entry".to_string(),
                end: "irq_handler_exit".to_string(),
                key: Some("irq".to_string()),
            }
        );
        assert_eq!(probe.name(), "tp:irq:irq_handler_entry/irq_handler_exit");
        assert_eq!(
            probe.to_string(),
            "tp:irq:irq_handler_entry/irq_handler_exit:irq"
        );
        assert_eq!(
            probe.tracepoints(),
            Some((
                pair("irq", "irq_handler_entry"),
                pair("irq", "irq_handler_exit")
            ))
        );
    }

    #[test]
    fn functions() {
        for (spec, pattern) in [
            ("vfs_read", "vfs_read"),
            ("ext4_*", "ext4_*"),
            ("fn:vfs_read", "vfs_read"),
            ("vfs_{read,write}", "vfs_{read,write}"),
            ("ext4_read_[a-f]*", "ext4_read_[a-f]*"),
            ("vfs_get_tree.cold", "vfs_get_tree.cold"),
        ] {
            let probe = parse(spec);
            assert_eq!(
                probe,
                KernelProbe::Function {
                    pattern: pattern.to_string()
                }
            );
            assert_eq!(probe.name(), pattern);
            assert_eq!(probe.to_string(), pattern);
            assert_eq!(probe.tracepoints(), None);
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "syscall:read",
            "tp:sched:sched_waking/sched_switch",
            "tp:irq:softirq_entry/softirq_exit:vec",
            "ext4_*",
        ] {
            assert_eq!(parse(spec).to_string(), spec);
            assert_eq!(parse(&parse(spec).to_string()), parse(spec));
        }
    }

    #[test]
    fn spec_errors() {
        let forms = "syscall:NAME, tp:SUBSYSTEM:BEGIN/END[:KEY], or a kernel function name or glob (fn:PATTERN)";
        assert_eq!(error(""), format!("empty kernel probe; write {forms}"));
        assert_eq!(
            error("kernel:vfs_read"),
            format!("unknown kernel probe kind 'kernel' in 'kernel:vfs_read'; write {forms}")
        );
        assert_eq!(
            error(":read"),
            format!("unknown kernel probe kind '' in ':read'; write {forms}")
        );
    }

    #[test]
    fn syscall_errors() {
        assert_eq!(
            error("syscall:"),
            "'syscall:' names no system call; write syscall:NAME, e.g. syscall:read"
        );
        assert_eq!(
            error("syscall:read-v"),
            "bad system call 'read-v' in 'syscall:read-v': names use only letters, digits and '_'"
        );
        assert_eq!(
            error("syscall:read:x"),
            "bad system call 'read:x' in 'syscall:read:x': names use only letters, digits and '_'"
        );
    }

    #[test]
    fn tracepoint_errors() {
        let malformed = |spec: &str| {
            format!("'{spec}' is not a tracepoint pair; write tp:SUBSYSTEM:BEGIN/END[:KEY], e.g. tp:irq:softirq_entry/softirq_exit:vec")
        };
        for spec in [
            "tp:",
            "tp:irq",
            "tp::softirq_entry/softirq_exit",
            "tp:irq:/softirq_exit",
            "tp:irq:softirq_entry/",
            "tp:irq:softirq_entry/softirq_exit:",
            "tp:irq:softirq_entry/softirq_exit:vec:cpu",
        ] {
            assert_eq!(error(spec), malformed(spec));
        }
        assert_eq!(
            error("tp:irq:softirq_entry"),
            "'tp:irq:softirq_entry' names only the begin event; write tp:irq:softirq_entry/END, e.g. tp:irq:softirq_entry/softirq_exit"
        );
        assert_eq!(
            error("tp:irq:softirq_entry/softirq-exit"),
            "bad event 'softirq-exit' in 'tp:irq:softirq_entry/softirq-exit': names use only letters, digits and '_'"
        );
        assert_eq!(
            error("tp:i rq:a/b"),
            "bad subsystem 'i rq' in 'tp:i rq:a/b': names use only letters, digits and '_'"
        );
        assert_eq!(
            error("tp:irq:a/b:v.ec"),
            "bad key 'v.ec' in 'tp:irq:a/b:v.ec': names use only letters, digits and '_'"
        );
        assert_eq!(
            error("tp:irq:a/b/c"),
            "bad event 'b/c' in 'tp:irq:a/b/c': names use only letters, digits and '_'"
        );
    }

    #[test]
    fn function_errors() {
        let hint = "write a function name or a glob such as 'vfs_*'";
        assert_eq!(
            error("fn:"),
            format!("bad kernel function pattern '': the pattern is empty; {hint}")
        );
        assert_eq!(
            error("vfs read"),
            format!("bad kernel function pattern 'vfs read': ' ' cannot appear in a kernel symbol; {hint}")
        );
        assert_eq!(
            error("fn:ext4/x"),
            format!("bad kernel function pattern 'ext4/x': '/' cannot appear in a kernel symbol; {hint}")
        );
        assert_eq!(
            error("ext4_[ab"),
            format!("bad kernel function pattern 'ext4_[ab': unclosed character class; missing ']'; {hint}")
        );
        assert_eq!(
            error("vfs_{read"),
            format!("bad kernel function pattern 'vfs_{{read': unclosed alternate group; missing '}}' (maybe escape '{{' with '[{{]'?); {hint}")
        );
    }
}
