//! Opening the files perfunc parses: regular files only, and mapped rather
//! than read whole. Reading a device such as `/dev/zero` never ends, and
//! opening a FIFO waits for a writer.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use memmap2::Mmap;

/// What a path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A character device (`/dev/zero`, a terminal).
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl FileKind {
    /// The kind of `file_type`, `None` for a regular file.
    fn of(file_type: FileType) -> Option<FileKind> {
        if file_type.is_file() {
            None
        } else if file_type.is_dir() {
            Some(FileKind::Directory)
        } else if file_type.is_char_device() {
            Some(FileKind::CharDevice)
        } else if file_type.is_block_device() {
            Some(FileKind::BlockDevice)
        } else if file_type.is_fifo() {
            Some(FileKind::Fifo)
        } else {
            Some(FileKind::Socket)
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
        })
    }
}

/// The error inside the [`io::Error`] of a path that is not a regular file.
#[derive(Debug, thiserror::Error)]
#[error("it is {kind}, not a regular file")]
pub struct NotRegular {
    /// What the path is.
    pub kind: FileKind,
}

fn refuse(kind: FileKind) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, NotRegular { kind })
}

/// What `error` says about a path that is not a regular file, if that is
/// what it is.
pub(crate) fn not_regular(error: &io::Error) -> Option<FileKind> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<NotRegular>())
        .map(|e| e.kind)
}

/// Opens `path` for reading if it is a regular file (following symbolic
/// links). The path is checked before it is opened, so that no device is
/// opened, and the open file after, so that the file read is the one
/// checked; the open does not block on a FIFO.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    if let Some(kind) = FileKind::of(std::fs::metadata(path)?.file_type()) {
        return Err(refuse(kind));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    match FileKind::of(file.metadata()?.file_type()) {
        Some(kind) => Err(refuse(kind)),
        None => Ok(file),
    }
}

/// Maps the regular file at `path` read-only.
pub(crate) fn map_regular(path: &Path) -> io::Result<Mmap> {
    let file = open_regular(path)?;
    // SAFETY: the mapping is private and read-only, and perfunc never writes
    // the files it maps. Another process truncating the file while it is
    // mapped would make reads past the new end fault (SIGBUS), as with any
    // tool that maps binaries (gdb, perf); reading the file whole instead
    // costs its size in memory for every binary and library resolved.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file)? };
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str) -> Option<FileKind> {
        not_regular(&map_regular(Path::new(path)).unwrap_err())
    }

    #[test]
    fn devices_and_directories_are_refused() {
        assert_eq!(kind("/dev/zero"), Some(FileKind::CharDevice));
        assert_eq!(kind("/dev/null"), Some(FileKind::CharDevice));
        assert_eq!(kind("/"), Some(FileKind::Directory));
    }

    #[test]
    fn binaries_and_build_ids_name_the_path_and_what_it_is() {
        let zero = Path::new("/dev/zero");
        let err = crate::symbols::Binary::open(zero).unwrap_err();
        assert!(
            matches!(
                err,
                crate::symbols::SymbolError::NotRegular {
                    kind: FileKind::CharDevice,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "/dev/zero is a character device, not a regular file; \
             give the path of an ELF executable or shared library"
        );
        let err = crate::symbols::read_build_id(Path::new("/")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/ is a directory, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `name` is a NUL-terminated path that outlives the call.
        #[allow(unsafe_code)]
        let made = unsafe { libc::mkfifo(name.as_ptr(), 0o600) };
        assert_eq!(made, 0);
        let err = map_regular(&fifo).unwrap_err();
        assert_eq!(not_regular(&err), Some(FileKind::Fifo));
        assert_eq!(
            err.to_string(),
            "it is a FIFO (named pipe), not a regular file"
        );
    }

    #[test]
    fn regular_files_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"\x7fELF").unwrap();
        assert_eq!(&map_regular(&path).unwrap()[..], b"\x7fELF");
        std::fs::write(&path, b"").unwrap();
        assert!(map_regular(&path).unwrap().is_empty());
        let missing = map_regular(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(not_regular(&missing), None);
    }
}
