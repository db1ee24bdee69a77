//! Separate debug files: by build id, then by `.gnu_debuglink`.

use std::path::{Path, PathBuf};

use object::Object;

use super::elf::{hex, Elf};

/// Where distributions install separate debug files.
const DEBUG_ROOT: &str = "/usr/lib/debug";

/// A separate debug file that belongs to a binary.
#[derive(Debug)]
pub(crate) struct DebugFile {
    pub(crate) path: PathBuf,
    /// Its content, mapped.
    pub(crate) data: memmap2::Mmap,
}

/// The separate debug file of `binary` (parsed as `file`), if one exists and
/// verifies: same build id, or the CRC32 `.gnu_debuglink` records; it must
/// hold a `.symtab`.
pub(crate) fn find_debug_file(binary: &Path, file: &Elf<'_>) -> Option<DebugFile> {
    find_debug_file_in(binary, file, Path::new(DEBUG_ROOT))
}

/// Where [`find_debug_file`] looks for `binary`'s debug file, in order:
/// the build-id path, then the `.gnu_debuglink` candidates.
pub(crate) fn debug_file_candidates(binary: &Path, file: &Elf<'_>) -> Vec<PathBuf> {
    let root = Path::new(DEBUG_ROOT);
    let build_id = file.build_id().ok().flatten();
    let by_id = build_id.and_then(|id| build_id_path(root, id));
    let link = file.gnu_debuglink().ok().flatten();
    let by_link = link
        .and_then(|(name, _)| std::str::from_utf8(name).ok())
        .map(|name| debuglink_candidates(binary, name, root));
    by_id
        .into_iter()
        .chain(by_link.into_iter().flatten())
        .collect()
}

fn find_debug_file_in(binary: &Path, file: &Elf<'_>, root: &Path) -> Option<DebugFile> {
    let build_id = file.build_id().ok().flatten();
    let by_id = build_id
        .and_then(|id| build_id_path(root, id))
        .and_then(|path| read_if(path, |data| has_build_id(data, build_id)));
    by_id.or_else(|| {
        let (name, crc) = file.gnu_debuglink().ok().flatten()?;
        let name = std::str::from_utf8(name).ok()?;
        debuglink_candidates(binary, name, root)
            .into_iter()
            .find_map(|path| read_if(path, |data| crc32fast::hash(data) == crc))
    })
}

/// `ROOT/.build-id/xx/yyyy….debug` for build id `xxyyyy…`.
fn build_id_path(root: &Path, id: &[u8]) -> Option<PathBuf> {
    let (first, rest) = id.split_first()?;
    let dir = root.join(".build-id").join(hex(&[*first]));
    Some(dir.join(format!("{}.debug", hex(rest))))
}

/// Where gdb looks for a `.gnu_debuglink` name: beside the binary, in its
/// `.debug` subdirectory, and under the debug root.
fn debuglink_candidates(binary: &Path, name: &str, root: &Path) -> Vec<PathBuf> {
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_owned());
    let dir = binary.parent().unwrap_or(Path::new("/"));
    let relative = dir.strip_prefix("/").unwrap_or(dir);
    vec![
        dir.join(name),
        dir.join(".debug").join(name),
        root.join(relative).join(name),
    ]
    .into_iter()
    .filter(|candidate| *candidate != binary)
    .collect()
}

fn read_if(path: PathBuf, verify: impl Fn(&[u8]) -> bool) -> Option<DebugFile> {
    let data = super::file::map_regular(&path).ok()?;
    let usable = verify(&data) && has_symtab(&data);
    usable.then_some(DebugFile { path, data })
}

fn has_build_id(data: &[u8], id: Option<&[u8]>) -> bool {
    let found = Elf::parse(data)
        .ok()
        .and_then(|f| f.build_id().ok().flatten());
    found.is_some() && found == id
}

fn has_symtab(data: &[u8]) -> bool {
    Elf::parse(data).is_ok_and(|f| f.symbol_table().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{self, Fixture};

    #[test]
    fn build_id_path_splits_the_first_byte() {
        assert_eq!(
            build_id_path(Path::new("/usr/lib/debug"), &[0xab, 0xcd, 0x01]),
            Some(PathBuf::from("/usr/lib/debug/.build-id/ab/cd01.debug"))
        );
        assert_eq!(build_id_path(Path::new("/d"), &[]), None);
    }

    #[test]
    fn debuglink_candidates_follow_gdb_order() {
        let fx = Fixture::new();
        let bin = fx.dir().join("app");
        std::fs::write(&bin, "x").unwrap();
        let dir = std::fs::canonicalize(fx.dir()).unwrap();
        let rel = dir.strip_prefix("/").unwrap();
        assert_eq!(
            debuglink_candidates(&bin, "app.debug", Path::new("/root")),
            vec![
                dir.join("app.debug"),
                dir.join(".debug/app.debug"),
                Path::new("/root").join(rel).join("app.debug"),
            ]
        );
        assert_eq!(
            debuglink_candidates(&bin, "app", Path::new("/root")).len(),
            2
        );
    }

    #[test]
    fn finds_debug_files_by_build_id_and_in_dot_debug() {
        let fx = Fixture::new();
        let bin = fx.gcc("found", testutil::C_SOURCE, &["-O0", "-Wl,--build-id=sha1"]);
        let debug = fx.split_debug(&bin);
        let data = std::fs::read(&bin).unwrap();
        let file = Elf::parse(&data[..]).unwrap();
        let id = file.build_id().unwrap().unwrap();

        let root = fx.dir().join("root");
        let by_id = build_id_path(&root, id).unwrap();
        std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
        std::fs::rename(&debug, &by_id).unwrap();
        let found = find_debug_file_in(&bin, &file, &root).unwrap();
        assert_eq!(found.path, by_id);

        let dot_debug = fx.dir().join(".debug");
        std::fs::create_dir(&dot_debug).unwrap();
        std::fs::rename(&by_id, dot_debug.join("found.debug")).unwrap();
        let found = find_debug_file_in(&bin, &file, &root).unwrap();
        assert_eq!(
            found.path,
            std::fs::canonicalize(dot_debug)
                .unwrap()
                .join("found.debug")
        );
    }
}
