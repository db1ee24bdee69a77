//! The two ways to make kprobes: lines for tracefs `kprobe_events`, and
//! the `perf_event_attr` of the kprobe PMU.

use super::{is_identifier, KernelError};

/// The tracefs event name of kprobe number `index`: `kINDEX` for the entry
/// probe, `kINDEX_ret` for the return probe. The event appears as
/// `events/GROUP/NAME` once [`kprobe_lines`] are written.
pub fn kprobe_event_name(index: usize, retprobe: bool) -> String {
    if retprobe {
        format!("k{index}_ret")
    } else {
        format!("k{index}")
    }
}

/// The `kprobe_events` lines that create the entry and return probes of
/// `symbol`: `p:GROUP/kINDEX SYMBOL` and `r:GROUP/kINDEX_ret SYMBOL`.
///
/// `group` is a tracefs group name (letters, digits and `_`, not starting
/// with a digit), e.g. `perfunc_1234`; `symbol` is what kprobes accept
/// after the event name (`vfs_read`, `MOD:SYM`, `SYM+OFFSET` or an
/// address), which may not be empty or hold whitespace.
pub fn kprobe_lines(
    group: &str,
    index: usize,
    symbol: &str,
) -> Result<(String, String), KernelError> {
    check_group(group)?;
    check_symbol(symbol)?;
    let line = |kind: char, retprobe: bool| {
        format!(
            "{kind}:{group}/{} {symbol}",
            kprobe_event_name(index, retprobe)
        )
    };
    Ok((line('p', false), line('r', true)))
}

/// The `kprobe_events` (or `uprobe_events`) line that removes the event
/// `GROUP/EVENT`:
/// `-:GROUP/EVENT`.
pub fn kprobe_removal_line(group: &str, event: &str) -> String {
    format!("-:{group}/{event}")
}

/// `Ok` if tracefs accepts `group` as a group name.
fn check_group(group: &str) -> Result<(), KernelError> {
    let reason = if !is_identifier(group) {
        "use only letters, digits and '_'"
    } else if group.starts_with(|c: char| c.is_ascii_digit()) {
        "start with a letter or '_'"
    } else {
        return Ok(());
    };
    Err(KernelError::BadKprobe {
        what: "group",
        name: group.to_string(),
        reason,
    })
}

/// `Ok` if `symbol` can follow the event name on a `kprobe_events` line.
fn check_symbol(symbol: &str) -> Result<(), KernelError> {
    let reason = if symbol.is_empty() {
        "name a kernel function"
    } else if symbol.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "a kernel symbol has no whitespace"
    } else {
        return Ok(());
    };
    Err(KernelError::BadKprobe {
        what: "symbol",
        name: symbol.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(entry: &str, ret: &str) -> (String, String) {
        (entry.to_string(), ret.to_string())
    }

    #[test]
    fn event_names() {
        assert_eq!(kprobe_event_name(0, false), "k0");
        assert_eq!(kprobe_event_name(12, true), "k12_ret");
    }

    #[test]
    fn probe_and_removal_lines() {
        assert_eq!(
            kprobe_lines("perfunc_1234", 0, "vfs_read").unwrap(),
            lines(
                "p:perfunc_1234/k0 vfs_read",
                "r:perfunc_1234/k0_ret vfs_read"
            )
        );
        assert_eq!(
            kprobe_lines("_pf", 7, "ext4:ext4_file_read_iter").unwrap(),
            lines(
                "p:_pf/k7 ext4:ext4_file_read_iter",
                "r:_pf/k7_ret ext4:ext4_file_read_iter"
            )
        );
        assert_eq!(
            kprobe_removal_line("perfunc_1234", &kprobe_event_name(0, true)),
            "-:perfunc_1234/k0_ret"
        );
    }

    #[test]
    fn bad_groups_and_symbols() {
        let error =
            |group: &str, symbol: &str| kprobe_lines(group, 1, symbol).unwrap_err().to_string();
        assert_eq!(
            error("", "vfs_read"),
            "bad kprobe group '': use only letters, digits and '_'"
        );
        assert_eq!(
            error("perf-unc", "vfs_read"),
            "bad kprobe group 'perf-unc': use only letters, digits and '_'"
        );
        assert_eq!(
            error("1perfunc", "vfs_read"),
            "bad kprobe group '1perfunc': start with a letter or '_'"
        );
        assert_eq!(
            error("perfunc", ""),
            "bad kprobe symbol '': name a kernel function"
        );
        assert_eq!(
            error("perfunc", "vfs_read x"),
            "bad kprobe symbol 'vfs_read x': a kernel symbol has no whitespace"
        );
        assert_eq!(
            error("perfunc", "vfs_read\n"),
            "bad kprobe symbol 'vfs_read\n': a kernel symbol has no whitespace"
        );
    }
}
