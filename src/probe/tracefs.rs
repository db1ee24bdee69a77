//! tracefs: finding or mounting it, and the uprobe events perfunc places in
//! `uprobe_events`.
//!
//! Every probe perfunc writes lives in a group named `perfunc_<PID>` (the PID
//! of the perfunc process), so parallel recordings never collide and a
//! recording only ever removes its own probes. [`UprobeSet`] removes its
//! probes when dropped, which covers normal exit, errors and panics; groups
//! left behind by a perfunc that was killed outright (SIGKILL) are removed by
//! [`remove_stale_groups`] at the next start.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::ProbeError;

/// Where the kernel's tracing file system is mounted.
#[derive(Debug, Clone)]
pub struct Tracefs {
    root: PathBuf,
}

const DEFAULT_MOUNT: &str = "/sys/kernel/tracing";

impl Tracefs {
    /// Finds a mounted tracefs (or the `tracing` directory of a mounted
    /// debugfs); mounts tracefs at /sys/kernel/tracing when none is mounted.
    pub fn find_or_mount() -> Result<Tracefs, ProbeError> {
        if let Some(root) = find_mounted(&fs::read_to_string("/proc/mounts").unwrap_or_default()) {
            return Ok(Tracefs { root });
        }
        mount_tracefs(Path::new(DEFAULT_MOUNT))?;
        Ok(Tracefs {
            root: PathBuf::from(DEFAULT_MOUNT),
        })
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn uprobe_events(&self) -> PathBuf {
        self.root.join("uprobe_events")
    }

    /// Appends one definition line to `uprobe_events`.
    fn write_uprobe_line(&self, line: &str) -> io::Result<()> {
        let mut file = OpenOptions::new().append(true).open(self.uprobe_events())?;
        file.write_all(format!("{line}\n").as_bytes())
    }

    /// The lines of `uprobe_events`.
    pub fn uprobe_lines(&self) -> Result<Vec<String>, ProbeError> {
        let path = self.uprobe_events();
        let text = fs::read_to_string(&path).map_err(|cause| ProbeError::Tracefs {
            path: path.clone(),
            cause,
        })?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    /// The id of event `group/name`, for `PERF_TYPE_TRACEPOINT`.
    pub fn event_id(&self, group: &str, name: &str) -> Result<u64, ProbeError> {
        let path = self.root.join("events").join(group).join(name).join("id");
        let text = fs::read_to_string(&path).map_err(|cause| ProbeError::Tracefs {
            path: path.clone(),
            cause,
        })?;
        text.trim().parse().map_err(|_| ProbeError::Tracefs {
            path,
            cause: io::Error::new(io::ErrorKind::InvalidData, "not a tracepoint id"),
        })
    }
}

/// The tracefs mount point named in a /proc/mounts text, if any.
fn find_mounted(mounts: &str) -> Option<PathBuf> {
    let mut debugfs = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (_, Some(dir), Some(fstype)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let dir = unescape_mount_path(dir);
        match fstype {
            "tracefs" => return Some(PathBuf::from(dir)),
            "debugfs" => debugfs = Some(PathBuf::from(dir).join("tracing")),
            _ => {}
        }
    }
    debugfs.filter(|d| d.join("uprobe_events").exists())
}

/// /proc/mounts escapes spaces, tabs, newlines and backslashes as octal.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_tracefs(dir: &Path) -> Result<(), ProbeError> {
    super::sys::mount_tracefs(dir).map_err(|cause| ProbeError::TracefsMount {
        dir: dir.to_owned(),
        cause,
    })
}

/// The group name for probes placed by the perfunc process `pid`.
pub fn group_for(pid: u32) -> String {
    format!("perfunc_{pid}")
}

/// One uprobe pair placed in tracefs: the entry and the return event.
#[derive(Debug, Clone)]
pub struct PlacedUprobe {
    /// Tracepoint id of the entry probe.
    pub entry_id: u64,
    /// Tracepoint id of the return probe.
    pub return_id: u64,
}

/// The uprobes of one recording; removed from tracefs when dropped.
#[derive(Debug)]
pub struct UprobeSet {
    tracefs: Tracefs,
    group: String,
    names: Vec<String>,
}

impl UprobeSet {
    /// An empty set whose probes go into group `perfunc_<our pid>`.
    pub fn new(tracefs: Tracefs) -> UprobeSet {
        UprobeSet {
            tracefs,
            group: group_for(std::process::id()),
            names: Vec::new(),
        }
    }

    /// The tracefs group of this set.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Places an entry and a return probe at `offset` in `binary`.
    pub fn add(&mut self, binary: &Path, offset: u64) -> Result<PlacedUprobe, ProbeError> {
        let index = self.names.len() / 2;
        let entry = format!("f{index}");
        let ret = format!("f{index}_ret");
        let target = format!("{}:{:#x}", binary.display(), offset);
        if target.contains(char::is_whitespace) {
            return Err(ProbeError::PathWithSpace(binary.to_owned()));
        }
        for (prefix, name) in [("p", &entry), ("r", &ret)] {
            let line = format!("{prefix}:{}/{name} {target}", self.group);
            self.tracefs
                .write_uprobe_line(&line)
                .map_err(|cause| ProbeError::PlaceUprobe {
                    line: line.clone(),
                    cause,
                })?;
            self.names.push(name.clone());
        }
        Ok(PlacedUprobe {
            entry_id: self.tracefs.event_id(&self.group, &entry)?,
            return_id: self.tracefs.event_id(&self.group, &ret)?,
        })
    }

    /// Removes every probe of the set. Perf events on them must be closed
    /// first, or the kernel answers EBUSY.
    pub fn remove_all(&mut self) -> Result<(), ProbeError> {
        let mut first_error = None;
        for name in self.names.drain(..).rev() {
            let line = format!("-:{}/{name}", self.group);
            if let Err(cause) = self.tracefs.write_uprobe_line(&line) {
                first_error.get_or_insert(ProbeError::RemoveUprobe { line, cause });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for UprobeSet {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            eprintln!("perfunc: warning: {e}");
        }
    }
}

/// Removes the probe groups of perfunc processes that no longer run (a
/// perfunc killed with SIGKILL cannot clean up after itself). Returns how
/// many probes were removed.
pub fn remove_stale_groups(tracefs: &Tracefs) -> Result<usize, ProbeError> {
    let lines = tracefs.uprobe_lines()?;
    let mut removed = 0;
    for (group, name) in stale_probes(&lines, |pid| Path::new(&format!("/proc/{pid}")).exists()) {
        let line = format!("-:{group}/{name}");
        if tracefs.write_uprobe_line(&line).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The `(group, name)` of probes in `uprobe_events` lines whose perfunc
/// owner is not alive.
fn stale_probes(lines: &[String], alive: impl Fn(u32) -> bool) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            // "p:perfunc_123/f0 /path:0x1139"
            let event = line.split_whitespace().next()?.split_once(':')?.1;
            let (group, name) = event.split_once('/')?;
            let pid: u32 = group.strip_prefix("perfunc_")?.parse().ok()?;
            (!alive(pid)).then(|| (group.to_owned(), name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tracefs_before_debugfs() {
        let mounts = "sysfs /sys sysfs rw 0 0\n\
                      debugfs /sys/kernel/debug debugfs rw 0 0\n\
                      tracefs /sys/kernel/tracing tracefs rw 0 0\n";
        assert_eq!(
            find_mounted(mounts),
            Some(PathBuf::from("/sys/kernel/tracing"))
        );
    }

    #[test]
    fn no_mount_found() {
        assert_eq!(find_mounted("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn unescapes_octal_in_mount_paths() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn stale_probes_are_those_of_dead_perfuncs() {
        let lines: Vec<String> = [
            "p:perfunc_10/f0 /bin/x:0x10",
            "r:perfunc_10/f0_ret /bin/x:0x10",
            "p:perfunc_20/f0 /bin/x:0x10",
            "p:probe_x/f /bin/x:0x10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let stale = stale_probes(&lines, |pid| pid == 20);
        assert_eq!(
            stale,
            vec![
                ("perfunc_10".to_owned(), "f0".to_owned()),
                ("perfunc_10".to_owned(), "f0_ret".to_owned())
            ]
        );
    }
}
