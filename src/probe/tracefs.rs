//! tracefs: finding or mounting it, the uprobes and kprobes perfunc places
//! in `uprobe_events` and `kprobe_events`, and the static tracepoints it
//! opens by id.
//!
//! Every probe perfunc writes lives in a group named `perfunc_<PID>_<NS>`
//! (the PID of the perfunc process and the inode of its PID namespace), so
//! parallel recordings never collide, also from different PID namespaces,
//! and a recording only ever removes its own probes. [`ProbeSet`] removes its
//! probes when dropped, which covers normal exit, errors and panics; groups
//! left behind by a perfunc that was killed outright (SIGKILL) are removed by
//! [`remove_stale_groups`] at the next start.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
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

    fn events_file(&self, kind: DynamicKind) -> PathBuf {
        self.root.join(kind.file())
    }

    /// Whether the kernel takes kprobe definitions (CONFIG_KPROBE_EVENTS).
    pub fn has_kprobe_events(&self) -> bool {
        self.events_file(DynamicKind::Kprobe).exists()
    }

    /// Appends one definition line to `uprobe_events` or `kprobe_events`.
    fn write_line(&self, kind: DynamicKind, line: &str) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .append(true)
            .open(self.events_file(kind))?;
        file.write_all(format!("{line}\n").as_bytes())
    }

    /// The lines of `uprobe_events` or `kprobe_events` (none when the file
    /// does not exist).
    pub fn probe_lines(&self, kind: DynamicKind) -> Result<Vec<String>, ProbeError> {
        let path = self.events_file(kind);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(cause) => return Err(ProbeError::Tracefs { path, cause }),
        };
        Ok(text.lines().map(str::to_owned).collect())
    }

    /// Whether the static tracepoint `group/name` exists.
    pub fn has_event(&self, group: &str, name: &str) -> bool {
        self.root
            .join("events")
            .join(group)
            .join(name)
            .join("id")
            .exists()
    }

    /// The names of the events of tracepoint group `group` (empty when
    /// there is no such group).
    pub fn event_names(&self, group: &str) -> Vec<String> {
        sorted_entries(&self.root.join("events").join(group), |e| {
            e.path().join("id").exists()
        })
    }

    /// The tracepoint groups (subsystems), sorted.
    pub fn event_groups(&self) -> Vec<String> {
        sorted_entries(&self.root.join("events"), |e| {
            e.file_type().is_ok_and(|t| t.is_dir())
        })
    }

    /// The `format` file of event `group/name`.
    pub fn event_format(&self, group: &str, name: &str) -> Result<String, ProbeError> {
        let path = self
            .root
            .join("events")
            .join(group)
            .join(name)
            .join("format");
        fs::read_to_string(&path).map_err(|cause| ProbeError::Tracefs { path, cause })
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

/// The names of the entries of `dir` that `keep` accepts, sorted (none when
/// `dir` cannot be read).
fn sorted_entries(dir: &Path, keep: impl Fn(&fs::DirEntry) -> bool) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| keep(e))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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

/// The group name for probes placed by the perfunc process `pid` of the
/// PID namespace whose inode is `ns`: `perfunc_<PID>_<NS>`. tracefs is one
/// for the whole machine, and two perfuncs in different PID namespaces can
/// have the same PID; with the namespace in the name they never collide.
pub fn group_for(pid: u32, ns: u64) -> String {
    format!("perfunc_{pid}_{ns}")
}

/// The inode of the initial PID namespace (the kernel's
/// `PROC_PID_INIT_INO`): a process there sees every process.
const INIT_PID_NS: u64 = 0xEFFF_FFFC;

/// The inode of the PID namespace of process `pid` (`self` for perfunc's
/// own), from `/proc/PID/ns/pid` (`pid:[4026531836]`).
fn pid_namespace_of(pid: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The owner of a perfunc probe group: its PID, and the inode of its PID
/// namespace (`None` for a group named before namespaces were part of the
/// name, `perfunc_<PID>`).
fn group_owner(group: &str) -> Option<(u32, Option<u64>)> {
    let rest = group.strip_prefix("perfunc_")?;
    match rest.split_once('_') {
        Some((pid, ns)) => Some((pid.parse().ok()?, Some(ns.parse().ok()?))),
        None => Some((rest.parse().ok()?, None)),
    }
}

/// Whether the perfunc that owns a group still runs, as far as this
/// process can see. In its own PID namespace (or for a group without one)
/// by its PID. In another namespace by the processes of that namespace,
/// `NSpid`'s last field being the PID there; only a process of the initial
/// namespace sees them all, so from anywhere else such a group counts as
/// alive.
fn owner_alive(pid: u32, ns: Option<u64>, own_ns: Option<u64>) -> bool {
    if ns.is_none() || ns == own_ns {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    if own_ns != Some(INIT_PID_NS) {
        return true;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return true;
    };
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name();
        let Some(host_pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        pid_namespace_of(host_pid) == ns
            && fs::read_to_string(format!("/proc/{host_pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    .is_some_and(|inner| inner == pid.to_string())
            })
    })
}

/// The two kinds of probes defined through tracefs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicKind {
    /// `uprobe_events`: user-space functions.
    Uprobe,
    /// `kprobe_events`: kernel functions.
    Kprobe,
}

impl DynamicKind {
    fn file(self) -> &'static str {
        match self {
            DynamicKind::Uprobe => "uprobe_events",
            DynamicKind::Kprobe => "kprobe_events",
        }
    }
}

/// One pair of events placed or found in tracefs: the entry and the return
/// event.
#[derive(Debug, Clone)]
pub struct PlacedPair {
    /// Tracepoint id of the entry probe.
    pub entry_id: u64,
    /// Tracepoint id of the return probe.
    pub return_id: u64,
}

/// The uprobes and kprobes of one recording; removed from tracefs when
/// dropped.
#[derive(Debug)]
pub struct ProbeSet {
    tracefs: Tracefs,
    group: String,
    names: Vec<(DynamicKind, String)>,
    /// Symlinks naming binaries whose path a uprobe definition cannot
    /// hold ([`alias_needed`]), made on first need.
    aliases: Option<Aliases>,
}

/// Whether a uprobe definition cannot name `path`: tracefs splits a
/// definition at white space and cuts it at `#` (a comment), with no way
/// to escape either.
fn alias_needed(path: &str) -> bool {
    path.contains(|c: char| c.is_whitespace() || c == '#')
}

/// A private directory (mode 0700, created exclusively) of symlinks to
/// binaries whose path a uprobe definition cannot hold. The kernel resolves
/// a symlink when the probe is placed and keeps the binary itself, so each
/// link is removed as soon as its probes are placed.
#[derive(Debug)]
struct Aliases {
    dir: PathBuf,
    made: usize,
}

impl Aliases {
    fn new() -> io::Result<Aliases> {
        let base = std::env::temp_dir();
        let base = if alias_needed(&base.to_string_lossy()) {
            PathBuf::from("/tmp")
        } else {
            base
        };
        let dir = base.join(format!(
            "perfunc-{}-{:x}",
            std::process::id(),
            super::sys::monotonic_ns()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Aliases { dir, made: 0 })
    }

    /// A new link to `binary` (made absolute, so that the link resolves).
    fn link(&mut self, binary: &Path) -> io::Result<PathBuf> {
        let target = std::path::absolute(binary)?;
        let link = self.dir.join(format!("b{}", self.made));
        self.made += 1;
        std::os::unix::fs::symlink(target, &link)?;
        Ok(link)
    }
}

impl Drop for Aliases {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ProbeSet {
    /// An empty set whose probes go into group `perfunc_<our pid>`.
    pub fn new(tracefs: Tracefs) -> ProbeSet {
        ProbeSet {
            tracefs,
            group: group_for(
                std::process::id(),
                pid_namespace_of("self").unwrap_or(INIT_PID_NS),
            ),
            names: Vec::new(),
            aliases: None,
        }
    }

    /// The tracefs group of this set.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Places an entry and a return probe at `offset` in `binary`. A path
    /// with white space or `#` is named through a symlink
    /// ([`Aliases`]), removed once the probes are placed.
    pub fn add(&mut self, binary: &Path, offset: u64) -> Result<PlacedPair, ProbeError> {
        let alias = if alias_needed(&binary.to_string_lossy()) {
            let aliases = match &mut self.aliases {
                Some(aliases) => aliases,
                None => self
                    .aliases
                    .insert(Aliases::new().map_err(|cause| ProbeError::Sys {
                        what: format!(
                            "making a directory for a symlink to {} (tracefs cannot name \
                         a path with white space or `#`)",
                            binary.display()
                        ),
                        cause,
                    })?),
            };
            let link = aliases.link(binary).map_err(|cause| ProbeError::Sys {
                what: format!("making a symlink to {}", binary.display()),
                cause,
            })?;
            Some(link)
        } else {
            None
        };
        let target = format!(
            "{}:{:#x}",
            alias.as_deref().unwrap_or(binary).display(),
            offset
        );
        let entry = format!("f{}", self.names.len() / 2);
        let ret = format!("{entry}_ret");
        let lines = [
            (format!("p:{}/{entry} {target}", self.group), entry),
            (format!("r:{}/{ret} {target}", self.group), ret),
        ];
        let placed = self.place(DynamicKind::Uprobe, lines);
        if let Some(link) = alias {
            let _ = std::fs::remove_file(link);
        }
        placed
    }

    /// Places a kprobe and a kretprobe on the kernel function `symbol`.
    pub fn add_kprobe(&mut self, symbol: &str) -> Result<PlacedPair, ProbeError> {
        if !self.tracefs.has_kprobe_events() {
            return Err(ProbeError::NoKprobes {
                function: symbol.to_owned(),
            });
        }
        let index = self.names.len() / 2;
        let (entry, ret) =
            crate::kernel::kprobe_lines(&self.group, index, symbol).map_err(|e| {
                ProbeError::Sys {
                    what: format!("placing a kprobe on {symbol}"),
                    cause: io::Error::new(io::ErrorKind::InvalidInput, e),
                }
            })?;
        let lines = [
            (entry, crate::kernel::kprobe_event_name(index, false)),
            (ret, crate::kernel::kprobe_event_name(index, true)),
        ];
        self.place(DynamicKind::Kprobe, lines)
    }

    /// Writes the entry and return definitions, `(line, event name)` each,
    /// and finds their tracepoint ids.
    fn place(
        &mut self,
        kind: DynamicKind,
        lines: [(String, String); 2],
    ) -> Result<PlacedPair, ProbeError> {
        for (line, name) in &lines {
            self.tracefs
                .write_line(kind, line)
                .map_err(|cause| ProbeError::PlaceUprobe {
                    line: line.clone(),
                    cause,
                })?;
            self.names.push((kind, name.clone()));
        }
        Ok(PlacedPair {
            entry_id: self.tracefs.event_id(&self.group, &lines[0].1)?,
            return_id: self.tracefs.event_id(&self.group, &lines[1].1)?,
        })
    }

    /// The hits the kernel missed on the set's kprobes so far (see
    /// [`crate::kernel::kprobe_missed`]); 0 without kprobes.
    pub fn kernel_missed(&self) -> u64 {
        let names: Vec<&str> = self
            .names
            .iter()
            .filter(|(kind, _)| *kind == DynamicKind::Kprobe)
            .map(|(_, name)| name.as_str())
            .collect();
        if names.is_empty() {
            return 0;
        }
        std::fs::read_to_string(self.tracefs.root().join("kprobe_profile"))
            .map_or(0, |p| crate::kernel::kprobe_missed(&p, &self.group, &names))
    }

    /// Removes every probe of the set. Perf events on them must be closed
    /// first, or the kernel answers EBUSY.
    pub fn remove_all(&mut self) -> Result<(), ProbeError> {
        let mut first_error = None;
        for (kind, name) in self.names.drain(..).rev() {
            let line = crate::kernel::kprobe_removal_line(&self.group, &name);
            if let Err(cause) = self.tracefs.write_line(kind, &line) {
                first_error.get_or_insert(ProbeError::RemoveUprobe { line, cause });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for ProbeSet {
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
    let mut removed = 0;
    for kind in [DynamicKind::Uprobe, DynamicKind::Kprobe] {
        let lines = tracefs.probe_lines(kind)?;
        let own_ns = pid_namespace_of("self");
        let alive = |pid, ns| owner_alive(pid, ns, own_ns);
        for (group, name) in stale_probes(&lines, alive) {
            let line = crate::kernel::kprobe_removal_line(&group, &name);
            if tracefs.write_line(kind, &line).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The `(group, name)` of probes in `uprobe_events` lines whose perfunc
/// owner is not alive.
fn stale_probes(
    lines: &[String],
    alive: impl Fn(u32, Option<u64>) -> bool,
) -> Vec<(String, String)> {
    let mut verdicts: std::collections::HashMap<String, bool> = Default::default();
    lines
        .iter()
        .filter_map(|line| {
            // "p:perfunc_123_4026531836/f0 /path:0x1139"
            let event = line.split_whitespace().next()?.split_once(':')?.1;
            let (group, name) = event.split_once('/')?;
            let (pid, ns) = group_owner(group)?;
            let alive = *verdicts
                .entry(group.to_owned())
                .or_insert_with(|| alive(pid, ns));
            (!alive).then(|| (group.to_owned(), name.to_owned()))
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
            "p:perfunc_20_4026532000/f0 /bin/x:0x10",
            "p:perfunc_20_4026532001/f0 /bin/x:0x10",
            "p:perfunc_x/f0 /bin/x:0x10",
            "p:probe_x/f /bin/x:0x10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // PID 20 runs in its own namespace and in 4026532000, not in
        // 4026532001.
        let alive = |pid, ns| pid == 20 && ns != Some(4_026_532_001);
        let stale = stale_probes(&lines, alive);
        assert_eq!(
            stale,
            vec![
                ("perfunc_10".to_owned(), "f0".to_owned()),
                ("perfunc_10".to_owned(), "f0_ret".to_owned()),
                ("perfunc_20_4026532001".to_owned(), "f0".to_owned()),
            ]
        );
    }

    #[test]
    fn a_group_names_its_owner_and_the_owner_s_pid_namespace() {
        assert_eq!(group_for(42, 4_026_531_836), "perfunc_42_4026531836");
        assert_eq!(
            group_owner("perfunc_42_4026531836"),
            Some((42, Some(4_026_531_836)))
        );
        assert_eq!(group_owner("perfunc_42"), Some((42, None)));
        assert_eq!(group_owner("perfunc_x"), None);
        assert_eq!(group_owner("probe_x"), None);
        // This process: alive in its own namespace; a PID of a namespace
        // with no process is not.
        let own = pid_namespace_of("self");
        assert!(own.is_some());
        assert!(owner_alive(std::process::id(), own, own));
        if own == Some(INIT_PID_NS) {
            assert!(!owner_alive(std::process::id(), Some(1), own));
        }
    }
}
