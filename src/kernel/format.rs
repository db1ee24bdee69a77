//! Tracepoint `format` files (tracefs `events/SUBSYSTEM/EVENT/format`) and
//! the fields they describe in `PERF_SAMPLE_RAW` payloads.

use super::{closest, is_identifier, KernelError};

/// A tracepoint's `format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    /// The event's name, e.g. `softirq_entry`.
    pub name: String,
    /// The event id (`perf_event_attr.config` of a tracepoint event), when
    /// the file gives one.
    pub id: Option<u64>,
    /// The fields of the raw record, common ones first, in file order.
    pub fields: Vec<Field>,
}

impl TracepointFormat {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The field called `name`, or an error that names the event and
    /// suggests close field names (for the key of a tracepoint pair).
    pub fn require_field(&self, name: &str) -> Result<&Field, KernelError> {
        self.field(name).ok_or_else(|| KernelError::NoSuchField {
            event: self.name.clone(),
            field: name.to_string(),
            suggestions: closest(name, self.fields.iter().map(|field| field.name.as_str()))
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
    }
}

/// One field of a tracepoint's raw record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name without type or array bounds, e.g. `prev_comm` for
    /// `char prev_comm[16]`.
    pub name: String,
    /// Byte offset from the start of the raw payload.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Whether the value is signed.
    pub signed: bool,
}

impl Field {
    /// The field's little-endian value in `raw` (a `PERF_SAMPLE_RAW`
    /// payload, which starts with the common fields at offset 0),
    /// sign-extended when signed; an unsigned 8-byte value keeps its bits.
    /// `None` when `raw` is too short or the size is not 1, 2, 4 or 8
    /// (arrays such as `char prev_comm[16]`). A `__data_loc` field reads
    /// as its location word, not its data.
    pub fn read(&self, raw: &[u8]) -> Option<i64> {
        if !matches!(self.size, 1 | 2 | 4 | 8) {
            return None;
        }
        let bytes = raw.get(self.offset..self.offset.checked_add(self.size)?)?;
        let mut word = [0u8; 8];
        word[..self.size].copy_from_slice(bytes);
        let unused = 64 - 8 * self.size as u32;
        let shifted = (u64::from_le_bytes(word) << unused) as i64;
        Some(if self.signed {
            shifted >> unused
        } else {
            ((shifted as u64) >> unused) as i64
        })
    }
}

/// Parses the text of a tracepoint `format` file.
///
/// Reads the `name:` and `ID:` lines and every `field:` line; the
/// `print fmt:` line and anything else is ignored. A field line needs
/// `offset:` and `size:`; `signed:` is 0 when absent.
pub fn parse_format(text: &str) -> Result<TracepointFormat, KernelError> {
    let mut name = None;
    let mut id = None;
    let mut fields = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |reason: String| KernelError::BadFormat {
            line: index + 1,
            reason,
        };
        let line = line.trim();
        if let Some(value) = line.strip_prefix("name:") {
            name = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("ID:") {
            let value = value.trim();
            id = Some(
                value
                    .parse()
                    .map_err(|_| bad(format!("bad id '{value}'")))?,
            );
        } else if line.starts_with("field:") {
            fields.push(parse_field(line).map_err(bad)?);
        }
    }
    let name = name.ok_or_else(|| KernelError::BadFormat {
        line: 0,
        reason: "no 'name:' line".to_string(),
    })?;
    Ok(TracepointFormat { name, id, fields })
}

/// `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(line: &str) -> Result<Field, String> {
    let (mut declaration, mut offset, mut size, mut signed) = (None, None, None, false);
    for part in line
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("'{part}' is not KEY:VALUE"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("bad {key} '{value}'"))
        };
        match key {
            "field" => declaration = Some(value),
            "offset" => offset = Some(number()?),
            "size" => size = Some(number()?),
            "signed" => signed = number()? != 0,
            _ => {}
        }
    }
    let name = field_name(declaration.unwrap_or_default())?;
    let missing = |what: &str| format!("field '{name}' has no {what}");
    Ok(Field {
        offset: offset.ok_or_else(|| missing("offset"))?,
        size: size.ok_or_else(|| missing("size"))?,
        signed,
        name,
    })
}

/// `prev_comm` of `char prev_comm[16]`, `buf` of `char * buf`.
fn field_name(declaration: &str) -> Result<String, String> {
    let last = declaration.split_whitespace().last().unwrap_or_default();
    let name = last.trim_start_matches('*');
    let name = name.split_once('[').map_or(name, |(name, _)| name);
    if is_identifier(name) {
        Ok(name.to_string())
    } else {
        Err(format!("no field name in '{declaration}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFTIRQ_ENTRY: &str = include_str!("testdata/softirq_entry.format");
    const IRQ_HANDLER_ENTRY: &str = include_str!("testdata/irq_handler_entry.format");
    const SYS_ENTER_PREAD64: &str = include_str!("testdata/sys_enter_pread64.format");
    const SYS_EXIT_PREAD64: &str = include_str!("testdata/sys_exit_pread64.format");
    const SCHED_SWITCH: &str = include_str!("testdata/sched_switch.format");

    fn field(name: &str, offset: usize, size: usize, signed: bool) -> Field {
        Field {
            name: name.to_string(),
            offset,
            size,
            signed,
        }
    }

    fn common_fields() -> Vec<Field> {
        vec![
            field("common_type", 0, 2, false),
            field("common_flags", 2, 1, false),
            field("common_preempt_count", 3, 1, false),
            field("common_pid", 4, 4, true),
        ]
    }

    fn with_common(fields: &[Field]) -> Vec<Field> {
        let mut all = common_fields();
        all.extend_from_slice(fields);
        all
    }

    #[test]
    fn softirq_entry() {
        let format = parse_format(SOFTIRQ_ENTRY).unwrap();
        assert_eq!(
            format,
            TracepointFormat {
                name: "softirq_entry".to_string(),
                id: Some(223),
                fields: with_common(&[field("vec", 8, 4, false)]),
            }
        );
        assert_eq!(format.field("vec"), Some(&field("vec", 8, 4, false)));
        assert_eq!(format.field("action"), None);
    }

    #[test]
    fn data_loc_field() {
        let format = parse_format(IRQ_HANDLER_ENTRY).unwrap();
        assert_eq!(format.name, "irq_handler_entry");
        assert_eq!(format.id, Some(225));
        assert_eq!(
            format.fields,
            with_common(&[field("irq", 8, 4, true), field("name", 12, 4, false)])
        );
    }

    #[test]
    fn syscall_formats() {
        let enter = parse_format(SYS_ENTER_PREAD64).unwrap();
        assert_eq!(enter.name, "sys_enter_pread64");
        assert_eq!(enter.id, Some(838));
        assert_eq!(
            enter.fields,
            with_common(&[
                field("__syscall_nr", 8, 4, true),
                field("fd", 16, 8, false),
                field("buf", 24, 8, false),
                field("count", 32, 8, false),
                field("pos", 40, 8, false),
            ])
        );
        let exit = parse_format(SYS_EXIT_PREAD64).unwrap();
        assert_eq!(exit.id, Some(837));
        assert_eq!(exit.field("ret"), Some(&field("ret", 16, 8, true)));
    }

    #[test]
    fn array_fields() {
        let format = parse_format(SCHED_SWITCH).unwrap();
        assert_eq!(format.id, Some(372));
        assert_eq!(
            format.fields,
            with_common(&[
                field("prev_comm", 8, 16, false),
                field("prev_pid", 24, 4, true),
                field("prev_prio", 28, 4, true),
                field("prev_state", 32, 8, true),
                field("next_comm", 40, 16, false),
                field("next_pid", 56, 4, true),
                field("next_prio", 60, 4, true),
            ])
        );
    }

    #[test]
    fn optional_id_and_signed() {
        let format =
            parse_format("name: x\nformat:\n\tfield:int v;\toffset:0;\tsize:4;\n").unwrap();
        assert_eq!(
            format,
            TracepointFormat {
                name: "x".to_string(),
                id: None,
                fields: vec![field("v", 0, 4, false)],
            }
        );
    }

    #[test]
    fn format_errors() {
        let error = |text: &str| parse_format(text).unwrap_err().to_string();
        assert_eq!(
            error("ID: 1\n"),
            "bad tracepoint format, line 0: no 'name:' line"
        );
        assert_eq!(
            error("name: x\nID: one\n"),
            "bad tracepoint format, line 2: bad id 'one'"
        );
        assert_eq!(
            error("name: x\n\tfield:int v;\tsize:4;\tsigned:1;\n"),
            "bad tracepoint format, line 2: field 'v' has no offset"
        );
        assert_eq!(
            error("name: x\n\tfield:int v;\toffset:0;\n"),
            "bad tracepoint format, line 2: field 'v' has no size"
        );
        assert_eq!(
            error("name: x\n\tfield:int v;\toffset:x;\tsize:4;\n"),
            "bad tracepoint format, line 2: bad offset 'x'"
        );
        assert_eq!(
            error("name: x\n\tfield:;\toffset:0;\tsize:4;\n"),
            "bad tracepoint format, line 2: no field name in ''"
        );
        assert_eq!(
            error("name: x\n\tfield:int v;\toffset 0;\n"),
            "bad tracepoint format, line 2: 'offset 0' is not KEY:VALUE"
        );
    }

    #[test]
    fn require_field_suggests() {
        let format = parse_format(SCHED_SWITCH).unwrap();
        assert_eq!(
            format.require_field("next_pid"),
            Ok(&field("next_pid", 56, 4, true))
        );
        assert_eq!(
            format.require_field("prev_pidd").unwrap_err().to_string(),
            "tracepoint sched_switch has no field 'prev_pidd'; did you mean prev_pid, prev_prio, prev_comm?"
        );
        assert_eq!(
            format.require_field("zzz").unwrap_err().to_string(),
            "tracepoint sched_switch has no field 'zzz'; pick a field of its format file"
        );
    }

    /// A `sched_switch` raw payload as the kernel lays it out.
    fn sched_switch_payload() -> Vec<u8> {
        let mut raw = vec![0u8; 64];
        raw[0..2].copy_from_slice(&372u16.to_le_bytes());
        raw[2] = 0x81;
        raw[3] = 0xff;
        raw[4..8].copy_from_slice(&(-2i32).to_le_bytes());
        raw[8..12].copy_from_slice(b"bash");
        raw[24..28].copy_from_slice(&4242i32.to_le_bytes());
        raw[28..32].copy_from_slice(&120i32.to_le_bytes());
        raw[32..40].copy_from_slice(&(-1i64).to_le_bytes());
        raw[56..60].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        raw
    }

    #[test]
    fn reads_values_little_endian_and_sign_extended() {
        let format = parse_format(SCHED_SWITCH).unwrap();
        let raw = sched_switch_payload();
        let read = |name: &str| format.field(name).unwrap().read(&raw);
        assert_eq!(read("common_type"), Some(372));
        assert_eq!(read("common_flags"), Some(0x81));
        assert_eq!(read("common_preempt_count"), Some(255));
        assert_eq!(read("common_pid"), Some(-2));
        assert_eq!(read("prev_pid"), Some(4242));
        assert_eq!(read("prev_prio"), Some(120));
        assert_eq!(read("prev_state"), Some(-1));
        assert_eq!(read("next_pid"), Some(i64::from(i32::MIN)));
        assert_eq!(read("prev_comm"), None);
    }

    #[test]
    fn reads_unsigned_values() {
        let signed_byte = field("b", 0, 1, true);
        let unsigned_word = field("w", 0, 8, false);
        assert_eq!(signed_byte.read(&[0x80]), Some(-128));
        assert_eq!(field("b", 0, 1, false).read(&[0x80]), Some(128));
        assert_eq!(field("h", 1, 2, true).read(&[0, 0xfe, 0xff]), Some(-2));
        assert_eq!(field("h", 1, 2, false).read(&[0, 0xfe, 0xff]), Some(0xfffe));
        assert_eq!(unsigned_word.read(&[0xff; 8]), Some(-1));
        assert_eq!(unsigned_word.read(&1u64.to_le_bytes()), Some(1));
    }

    #[test]
    fn short_payloads_read_nothing() {
        let format = parse_format(SOFTIRQ_ENTRY).unwrap();
        let vec = format.field("vec").unwrap();
        assert_eq!(vec.read(&[0; 11]), None);
        assert_eq!(vec.read(&[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]), Some(3));
        assert_eq!(field("v", usize::MAX, 4, false).read(&[0; 8]), None);
    }
}
