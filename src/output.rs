//! Output files that are replaced whole or not at all.
//!
//! [`AtomicOutput`] writes into a new file beside the target, created
//! exclusively and without following symlinks, and renames it into place on
//! [`commit`](AtomicOutput::commit). Until then the file already at the
//! target (a trace of an earlier run, say) is untouched; a failure, a panic
//! or an early return removes the new file instead. On commit an existing
//! target is kept as `NAME.old`, as perf keeps `perf.data.old`.
//!
//! A symlink at the target is replaced, never written through, so root
//! cannot be made to overwrite the file a planted link points to. The one
//! exception is a link to a device, FIFO or socket (`/dev/stdout`,
//! `/dev/fd/N` of a shell's process substitution) that is owned by root or
//! by the caller: such targets are written in place, since they cannot be
//! renamed over.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Permission bits of new output files (before the umask).
pub const MODE: u32 = 0o644;

/// A file being written in place of `path`; see the [module](self) docs.
#[derive(Debug)]
pub struct AtomicOutput {
    file: File,
    path: PathBuf,
    /// The new file beside `path`, or `None` when `path` is a device, FIFO
    /// or socket written in place.
    temp: Option<PathBuf>,
}

impl AtomicOutput {
    /// Starts a new file that will replace `path` on commit.
    ///
    /// # Errors
    ///
    /// If `path` is a directory, a symlink to a special file that belongs
    /// to another user, or the new file cannot be created beside it; each
    /// error names the path.
    pub fn create(path: &Path) -> io::Result<AtomicOutput> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ))
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Some(out) = special_through_link(path, &meta)? {
                    return Ok(out);
                }
            }
            Ok(meta) if !meta.is_file() => {
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                    })?;
                return Ok(AtomicOutput::in_place(file, path));
            }
            _ => {}
        }
        let (file, temp) = create_temp(path).map_err(|(e, temp)| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create {} (to be renamed to {}): {e}",
                    temp.display(),
                    path.display()
                ),
            )
        })?;
        Ok(AtomicOutput {
            file,
            path: path.to_owned(),
            temp: Some(temp),
        })
    }

    fn in_place(file: File, path: &Path) -> AtomicOutput {
        AtomicOutput {
            file,
            path: path.to_owned(),
            temp: None,
        }
    }

    /// The file to write (`&File` is [`Write`](std::io::Write)).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The path the file will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The new file's current path: beside the target until committed.
    pub fn temp_path(&self) -> &Path {
        self.temp.as_deref().unwrap_or(&self.path)
    }

    /// Moves the new file into place. A file (or symlink) already there is
    /// renamed to `NAME.old` first, saying so on stderr.
    ///
    /// # Errors
    ///
    /// If a rename fails. The new file is then left where it is, and the
    /// error says where.
    pub fn commit(self) -> io::Result<()> {
        self.finish(true)
    }

    /// Moves the new file into place, replacing whatever is there without
    /// keeping it: for files made again at will (an SVG, a cache entry).
    ///
    /// # Errors
    ///
    /// If the rename fails. The new file is then left where it is, and the
    /// error says where.
    pub fn replace(self) -> io::Result<()> {
        self.finish(false)
    }

    fn finish(mut self, keep_old: bool) -> io::Result<()> {
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        let kept = |e: io::Error, what: String| {
            io::Error::new(
                e.kind(),
                format!("{what}: {e}; the new file is kept as {}", temp.display()),
            )
        };
        if keep_old && std::fs::symlink_metadata(&self.path).is_ok() {
            let old = old_path(&self.path);
            std::fs::rename(&self.path, &old).map_err(|e| {
                kept(
                    e,
                    format!(
                        "cannot keep the previous {} as {}",
                        self.path.display(),
                        old.display()
                    ),
                )
            })?;
            eprintln!(
                "perfunc: kept the previous {} as {}",
                self.path.display(),
                old.display()
            );
        }
        std::fs::rename(&temp, &self.path)
            .map_err(|e| kept(e, format!("cannot rename it to {}", self.path.display())))
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// `NAME.old` beside `path`.
pub fn old_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".old");
    path.with_file_name(name)
}

/// Creates `.NAME.<pid>.<n>.tmp` beside `path`, exclusively, not through a
/// symlink.
fn create_temp(path: &Path) -> Result<(File, PathBuf), (io::Error, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_file_name(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
        {
            Ok(file) => return Ok((file, temp)),
            // Left by a killed process that had our pid (another namespace,
            // or pid reuse): take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err((e, temp)),
        }
    }
}

/// For a symlink at `path`: a device, FIFO or socket it points to, opened
/// in place, when the link belongs to root or to the caller; `None` when the
/// link is to be replaced.
fn special_through_link(path: &Path, link: &std::fs::Metadata) -> io::Result<Option<AtomicOutput>> {
    let Ok(target) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if target.is_file() || target.is_dir() {
        return Ok(None);
    }
    let euid = crate::probe::sys::euid();
    if link.uid() != 0 && link.uid() != euid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to write through {}: a symlink of uid {} to a device, FIFO or socket",
                path.display(),
                link.uid()
            ),
        ));
    }
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    Ok(Some(AtomicOutput::in_place(file, path)))
}

/// Opens `path` for reading, failing with `ELOOP` if it is a symlink.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn output_dropped_without_commit_leaves_nothing_and_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perfunc.trace");
        std::fs::write(&path, b"old trace").unwrap();
        let out = AtomicOutput::create(&path).unwrap();
        let temp = out.temp_path().to_owned();
        let name = temp.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(".perfunc.trace."), "{name}");
        assert!(name.ends_with(".tmp"), "{name}");
        out.file().write_all(b"half a new trace").unwrap();
        drop(out);
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old trace");
        assert_eq!(entries(dir.path()), ["perfunc.trace"]);
    }

    #[test]
    fn output_commit_keeps_the_previous_file_as_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perfunc.trace");
        std::fs::write(&path, b"old trace").unwrap();
        let out = AtomicOutput::create(&path).unwrap();
        out.file().write_all(b"new trace").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new trace");
        assert_eq!(
            std::fs::read(dir.path().join("perfunc.trace.old")).unwrap(),
            b"old trace"
        );
        assert_eq!(entries(dir.path()), ["perfunc.trace", "perfunc.trace.old"]);
    }

    #[test]
    fn output_replace_keeps_no_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flamegraph.svg");
        std::fs::write(&path, b"old").unwrap();
        let out = AtomicOutput::create(&path).unwrap();
        out.file().write_all(b"new").unwrap();
        out.replace().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["flamegraph.svg"]);
    }

    #[test]
    fn output_commit_without_a_previous_file_keeps_no_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.svg");
        let out = AtomicOutput::create(&path).unwrap();
        out.file().write_all(b"<svg/>").unwrap();
        out.commit().unwrap();
        assert_eq!(entries(dir.path()), ["out.svg"]);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "{mode:o}");
    }

    #[test]
    fn output_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("perfunc.trace");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let out = AtomicOutput::create(&path).unwrap();
        out.file().write_all(b"new trace").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(std::fs::read(&path).unwrap(), b"new trace");
        // The link itself is what was kept.
        let old = dir.path().join("perfunc.trace.old");
        assert_eq!(std::fs::read_link(old).unwrap(), victim);
    }

    #[test]
    fn output_does_not_create_through_a_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("not-yet");
        let path = dir.path().join("perfunc.trace");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let out = AtomicOutput::create(&path).unwrap();
        out.file().write_all(b"new trace").unwrap();
        out.commit().unwrap();
        assert!(!victim.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"new trace");
    }

    #[test]
    fn output_writes_devices_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let out = AtomicOutput::create(Path::new("/dev/null")).unwrap();
        assert_eq!(out.temp_path(), Path::new("/dev/null"));
        out.file().write_all(b"nothing").unwrap();
        out.commit().unwrap();
        let meta = std::fs::symlink_metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device());
        assert!(!Path::new("/dev/null.old").exists());
    }

    #[test]
    fn output_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicOutput::create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn concurrent_outputs_each_leave_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perfunc.trace");
        let a = AtomicOutput::create(&path).unwrap();
        let b = AtomicOutput::create(&path).unwrap();
        a.file().write_all(b"trace a").unwrap();
        b.file().write_all(b"trace b").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"trace b");
        assert_eq!(std::fs::read(old_path(&path)).unwrap(), b"trace a");
    }

    #[test]
    fn open_nofollow_refuses_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(open_nofollow(&victim).is_ok());
        assert!(open_nofollow(&link).is_err());
    }
}
