//! The self-describing JSON documents of a trace: the header at the start
//! and the footer at the end, and the fixed bytes that frame the header.

use serde::{Deserialize, Serialize};

use super::error::TraceError;
use super::format::{le_u32, to_u32, FILE_HEADER_LEN, FORMAT_VERSION, MAGIC};

/// Everything a reader needs to interpret the records: what was run, where,
/// with which counters and probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Version of perfunc that wrote the trace.
    pub perfunc_version: String,
    /// When the recording started, in ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// The perfunc command line that made the recording.
    pub command_line: Vec<String>,
    /// The profiled process.
    pub target: Target,
    /// `uname -r` of the recording machine.
    pub kernel_release: String,
    /// CPU model name of the recording machine.
    pub cpu_model: String,
    /// Online CPUs of the recording machine.
    pub ncpus: u32,
    /// The clock of every record's time, e.g. `"CLOCK_MONOTONIC"`.
    pub clock: String,
    /// The counters, in the order of each sample's values.
    pub counters: Vec<crate::events::CounterSpec>,
    /// The probes; a sample's probe id is an index into this list.
    pub probes: Vec<ProbeSite>,
    /// The calibration profile used for this recording, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<serde_json::Value>,
    /// Whether every sample row ends with a key column (a `u64` after the
    /// counter values): set when a probe has a [`ProbeSite::key`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_column: bool,
    /// Whether the recording took call chains or user stacks
    /// (`--callchain`): readers look for them only then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub callchains: bool,
    /// How the target's threads and processes were followed (`--follow`):
    /// `"inherit"` (per-CPU groups inherited by new tasks) or
    /// `"per-thread"` (groups per task, held at birth); absent in traces
    /// of perfunc before 0.2, which always inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// How the default counters were chosen (recordings without `-e`):
    /// which generic counters opened, which were replaced by the CPU
    /// model's events or dropped, and the line perfunc printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_decision: Option<crate::events::CounterDecision>,
}

impl TraceHeader {
    /// Values per sample row: the counters, and the key column if any.
    pub fn columns(&self) -> usize {
        self.counters.len() + usize::from(self.key_column)
    }
}

/// The profiled process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// A command perfunc launched.
    Command {
        /// Its argument vector, program first.
        argv: Vec<String>,
    },
    /// A running process perfunc attached to.
    Attach {
        /// Its process id.
        pid: u32,
    },
    /// Every task on every CPU (`-a`), while `argv` ran (empty: until a
    /// duration or a signal).
    SystemWide {
        /// The command perfunc ran meanwhile, program first; empty if none.
        argv: Vec<String>,
    },
}

/// One probed function, system call or tracepoint pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSite {
    /// Index of this probe in [`TraceHeader::probes`].
    pub id: u32,
    /// Demangled function name; `syscall:NAME` for a system call, the
    /// user's `tp:SUBSYSTEM:BEGIN/END` for a tracepoint pair.
    pub function: String,
    /// Symbol name as in the binary (or the kernel); for tracepoints the
    /// two events, `group:event/group:event`.
    pub raw_name: String,
    /// Path of the binary; `[kernel]` for kernel probes.
    pub binary: String,
    /// GNU build id of the binary, in hex.
    pub build_id: Option<String>,
    /// ELF virtual address of the function.
    pub addr: u64,
    /// File offset of the probed instruction.
    pub offset: u64,
    /// Size of the function in bytes.
    pub size: u64,
    /// Class of the probed instruction, e.g. `"push-rbp"`.
    pub class: String,
    /// How the function is probed.
    pub kind: ProbeKind,
    /// For a tracepoint pair matched by a field (`tp:...:KEY`): the field's
    /// name. Its value at each event is in the row's key column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How a function is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// A user-space uprobe and uretprobe pair.
    Uprobe,
    /// A kernel function's kprobe and kretprobe pair.
    Kprobe,
    /// A system call's `sys_enter_NAME` and `sys_exit_NAME` tracepoints.
    Syscall,
    /// Any begin/end pair of tracepoints.
    Tracepoints,
}

/// How the recording ended; the payload of the last chunk of a complete trace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Footer {
    /// Length of the recording in ns.
    pub duration_ns: u64,
    /// Samples written.
    pub samples: u64,
    /// Records the kernel dropped.
    pub lost: u64,
    /// How the target exited, if it did.
    pub exit: Option<ExitStatus>,
    /// Whether the recording was stopped by the user (Ctrl-C).
    pub interrupted: bool,
}

/// How a process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
    /// Whether it dumped core.
    pub core_dumped: bool,
}

/// The fixed fields that follow the magic in the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderFrame {
    pub json_len: u32,
    pub crc: u32,
}

/// The whole file header: fixed bytes followed by the JSON of `header`.
pub(crate) fn encode_file_header(header: &TraceHeader) -> Result<Vec<u8>, TraceError> {
    let json = serde_json::to_vec(header).map_err(|source| TraceError::Json {
        what: "header",
        source,
    })?;
    let mut out = Vec::with_capacity(FILE_HEADER_LEN + json.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&to_u32(json.len(), "header JSON")?.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Checks the first bytes of a file: `fixed` is what could be read of the
/// 20 fixed bytes, shorter only if the input ended.
pub(crate) fn decode_frame(fixed: &[u8]) -> Result<HeaderFrame, TraceError> {
    if fixed.is_empty() {
        return Err(TraceError::Empty);
    }
    let magic_len = fixed.len().min(MAGIC.len());
    if fixed[..magic_len] != MAGIC[..magic_len] {
        return Err(TraceError::NotATrace {
            found: fixed[..magic_len].to_vec(),
        });
    }
    if fixed.len() < FILE_HEADER_LEN {
        return Err(TraceError::TruncatedHeader {
            len: fixed.len() as u64,
            needed: FILE_HEADER_LEN as u64,
        });
    }
    let version = le_u32(fixed, 8);
    if version == 0 || version > FORMAT_VERSION {
        return Err(TraceError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(HeaderFrame {
        json_len: le_u32(fixed, 12),
        crc: le_u32(fixed, 16),
    })
}

/// Checks and parses the header JSON that follows the fixed bytes.
pub(crate) fn decode_json(json: &[u8], frame: HeaderFrame) -> Result<TraceHeader, TraceError> {
    let offset = FILE_HEADER_LEN as u64;
    let crc = crc32fast::hash(json);
    if crc != frame.crc {
        return Err(TraceError::CorruptHeader {
            offset,
            reason: format!(
                "the {}-byte JSON has checksum {crc:#010x} where {:#010x} was expected; the file is damaged",
                json.len(),
                frame.crc
            ),
        });
    }
    serde_json::from_slice(json).map_err(|e| TraceError::CorruptHeader {
        offset,
        reason: format!("the header JSON does not describe a trace: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tests::header;

    #[test]
    fn file_header_layout() {
        let bytes = encode_file_header(&header(3)).unwrap();
        let json = serde_json::to_vec(&header(3)).unwrap();
        assert_eq!(&bytes[..12], b"PERFUNC\0\x01\x00\x00\x00");
        assert_eq!(le_u32(&bytes, 12) as usize, json.len());
        assert_eq!(le_u32(&bytes, 16), crc32fast::hash(&json));
        assert_eq!(&bytes[20..], &json[..]);
    }

    #[test]
    fn header_round_trips() {
        let bytes = encode_file_header(&header(3)).unwrap();
        let frame = decode_frame(&bytes[..20]).unwrap();
        assert_eq!(decode_json(&bytes[20..], frame).unwrap(), header(3));
    }

    #[test]
    fn header_json_field_names() {
        let value = serde_json::to_value(header(1)).unwrap();
        assert_eq!(
            value["target"],
            serde_json::json!({"kind": "command", "argv": ["./bench", "-n", "3"]})
        );
        assert_eq!(value["probes"][0]["kind"], "uprobe");
        assert_eq!(value["clock"], "CLOCK_MONOTONIC");
        assert!(value.get("calibration").is_none());
        let attach = serde_json::to_value(Target::Attach { pid: 42 }).unwrap();
        assert_eq!(attach, serde_json::json!({"kind": "attach", "pid": 42}));
    }

    #[test]
    fn unknown_json_fields_are_ignored() {
        let mut value = serde_json::to_value(header(2)).unwrap();
        value["added_in_a_later_version"] = serde_json::json!({"x": 1});
        let json = serde_json::to_vec(&value).unwrap();
        let frame = HeaderFrame {
            json_len: json.len() as u32,
            crc: crc32fast::hash(&json),
        };
        assert_eq!(decode_json(&json, frame).unwrap(), header(2));
    }

    #[test]
    fn frame_errors() {
        assert!(matches!(decode_frame(b""), Err(TraceError::Empty)));
        assert!(matches!(
            decode_frame(b"\x7fELF\x02\x01\x01\x00\x00\x00"),
            Err(TraceError::NotATrace { found }) if found == b"\x7fELF\x02\x01\x01\x00"
        ));
        assert!(matches!(
            decode_frame(b"PERF"),
            Err(TraceError::TruncatedHeader { len: 4, needed: 20 })
        ));
        assert!(
            matches!(decode_frame(b"PEX"), Err(TraceError::NotATrace { found }) if found == b"PEX")
        );
        let mut bytes = encode_file_header(&header(0)).unwrap();
        bytes[8] = 2;
        assert!(matches!(
            decode_frame(&bytes[..20]),
            Err(TraceError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));
        bytes[8] = 0;
        assert!(matches!(
            decode_frame(&bytes[..20]),
            Err(TraceError::UnsupportedVersion { found: 0, .. })
        ));
    }

    #[test]
    fn corrupt_json_is_reported_at_byte_20() {
        let mut bytes = encode_file_header(&header(1)).unwrap();
        let frame = decode_frame(&bytes[..20]).unwrap();
        bytes[25] ^= 0x20;
        let err = decode_json(&bytes[20..], frame).unwrap_err();
        assert!(
            matches!(err, TraceError::CorruptHeader { offset: 20, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("the file is damaged"), "{err}");

        let json = b"{\"perfunc_version\": 1}";
        let frame = HeaderFrame {
            json_len: json.len() as u32,
            crc: crc32fast::hash(json),
        };
        let err = decode_json(json, frame).unwrap_err();
        assert!(err.to_string().starts_with(
            "corrupt trace header at byte 20: the header JSON does not describe a trace: invalid type"
        ), "{err}");
    }
}
