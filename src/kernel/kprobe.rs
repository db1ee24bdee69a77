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

/// How many calls of one function a kretprobe can follow at once
/// (`rMAXACTIVE:` in `kprobe_events`; the kernel's own default is
/// `max(10, 2 × CPUs)`, and 4096 its limit). A return beyond it is missed
/// and counted in `kprobe_profile`, which perfunc folds into the trace's
/// lost records. 1024 instances cost about 64 KiB per probed function.
pub const KRETPROBE_MAXACTIVE: u32 = 1024;

/// The `kprobe_events` lines that create the entry and return probes of
/// `symbol`: `p:GROUP/kINDEX SYMBOL` and `rMAXACTIVE:GROUP/kINDEX_ret
/// SYMBOL` ([`KRETPROBE_MAXACTIVE`]).
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
    let line = |kind: &str, retprobe: bool| {
        format!(
            "{kind}:{group}/{} {symbol}",
            kprobe_event_name(index, retprobe)
        )
    };
    Ok((
        line("p", false),
        line(&format!("r{KRETPROBE_MAXACTIVE}"), true),
    ))
}

/// The probe hits the kernel missed, from tracefs `kprobe_profile`
/// (`EVENT HITS MISSES` per line), summed over the events `names` of
/// `group`: a kretprobe misses a return when all its instances are in use,
/// a kprobe a hit inside another kprobe's handler. EVENT is `GROUP/NAME`
/// on recent kernels and the bare NAME on older ones (6.1), where a
/// concurrent perfunc's events of the same name are counted too.
pub fn kprobe_missed(profile: &str, group: &str, names: &[&str]) -> u64 {
    profile
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let event = f.next()?;
            let missed = f.nth(1)?.parse::<u64>().ok()?;
            let name = match event.split_once('/') {
                Some((g, name)) if g == group => name,
                Some(_) => return None,
                None => event,
            };
            names.contains(&name).then_some(missed)
        })
        .sum()
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
    fn missed_hits_are_summed_over_the_group() {
        let profile = "  perfunc_12/k0                                      40               0\n\
                       \x20 perfunc_12/k0_ret                                  37               3\n\
                       \x20 perfunc_13/k0_ret                                  10               9\n\
                       \x20 other/k0_ret                                        1               1\n";
        let ours = ["k0", "k0_ret"];
        assert_eq!(kprobe_missed(profile, "perfunc_12", &ours), 3);
        assert_eq!(kprobe_missed(profile, "perfunc_1", &ours), 0);
        assert_eq!(kprobe_missed("", "perfunc_12", &ours), 0);
        let bare = "  k0        40     0\n  k0_ret    37     3\n  k1_ret  5  5\n";
        assert_eq!(kprobe_missed(bare, "perfunc_12", &["k1", "k1_ret"]), 5);
    }

    #[test]
    fn probe_and_removal_lines() {
        assert_eq!(
            kprobe_lines("perfunc_1234", 0, "vfs_read").unwrap(),
            lines(
                "p:perfunc_1234/k0 vfs_read",
                "r1024:perfunc_1234/k0_ret vfs_read"
            )
        );
        assert_eq!(
            kprobe_lines("_pf", 7, "ext4:ext4_file_read_iter").unwrap(),
            lines(
                "p:_pf/k7 ext4:ext4_file_read_iter",
                "r1024:_pf/k7_ret ext4:ext4_file_read_iter"
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
