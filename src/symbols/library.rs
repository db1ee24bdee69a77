//! Finding a shared library the way the dynamic loader does.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use globset::Glob;
use object::elf::{DT_NEEDED, DT_RPATH, DT_RUNPATH};
use object::read::elf::ElfFile64;
use object::{ReadCache, ReadRef};

use super::SymbolError;

const LD_CACHE: &str = "/etc/ld.so.cache";
const LD_CONF: &str = "/etc/ld.so.conf";
const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
];
/// How deep `include` lines of ld.so.conf may nest.
const MAX_CONF_DEPTH: u32 = 8;

const OLD_CACHE_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_CACHE_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
const OLD_HEADER_LEN: usize = 16;
const OLD_ENTRY_LEN: usize = 12;
/// `FLAG_ELF_LIBC6`: the entry is a glibc ELF library.
const FLAG_ELF_LIBC6: u32 = 0x0003;
/// `FLAG_X8664_LIB64`: the entry is x86-64 code.
const FLAG_X8664_LIB64: u32 = 0x0300;

/// Finds the shared library `lib` that `exe` loads, as the dynamic loader
/// would: `lib` is a soname (`libc.so.6`), a prefix of one (`libc`), or a
/// path. `DT_NEEDED` entries are walked transitively; each is searched in
/// `DT_RPATH` (only without `DT_RUNPATH`), `LD_LIBRARY_PATH`, `DT_RUNPATH`
/// (`$ORIGIN` expanded), /etc/ld.so.cache (or the dirs of /etc/ld.so.conf
/// when the cache is unusable), then the default dirs.
///
/// # Errors
/// [`SymbolError::LibraryNotFound`] naming `lib` and the dirs searched;
/// [`SymbolError::Io`] or [`SymbolError::Elf`] when `exe` cannot be read.
pub fn find_library(exe: &Path, lib: &str) -> Result<PathBuf, SymbolError> {
    if lib.contains('/') {
        return std::fs::canonicalize(lib).map_err(|_| SymbolError::LibraryNotFound {
            library: lib.to_owned(),
            exe: exe.to_owned(),
            searched: vec![PathBuf::from(lib)],
        });
    }
    Loader::from_system().find(exe, lib)
}

/// Every library `exe` loads (`DT_NEEDED`, transitively, breadth first as
/// the loader loads them) that is found: its name as needed, and its path.
///
/// # Errors
/// [`SymbolError::Io`] or [`SymbolError::Elf`] when `exe` cannot be read.
pub(crate) fn needed_libraries(exe: &Path) -> Result<Vec<(String, PathBuf)>, SymbolError> {
    let exe_object = read_object(exe)?;
    let deps = Loader::from_system().dependencies(&exe_object, &mut Vec::new());
    Ok(deps
        .into_iter()
        .filter_map(|(name, path)| Some((name, path?)))
        .collect())
}

/// One entry of /etc/ld.so.cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LdCacheEntry {
    /// `FLAG_*` bits: library type in the low byte, architecture above.
    pub(crate) flags: u32,
    /// The soname, e.g. `libc.so.6`.
    pub(crate) name: String,
    /// Where the library is.
    pub(crate) path: PathBuf,
}

impl LdCacheEntry {
    fn is_x86_64_libc6(&self) -> bool {
        self.flags & 0xff == FLAG_ELF_LIBC6 && self.flags & 0xff00 == FLAG_X8664_LIB64
    }
}

/// Parses the glibc ld.so cache (the "glibc-ld.so.cache1.1" format, alone
/// or after an old "ld.so-1.7.0" part).
pub(crate) fn parse_ld_cache(data: &[u8]) -> Result<Vec<LdCacheEntry>, SymbolError> {
    let start = new_cache_start(data)?;
    let cache = &data[start..];
    if !cache.starts_with(NEW_CACHE_MAGIC) {
        return Err(cache_error("no glibc-ld.so.cache1.1 header"));
    }
    if cache.get(28) == Some(&3) {
        return Err(cache_error("big-endian cache on a little-endian machine"));
    }
    let count = read_u32(cache, 20)? as usize;
    (0..count)
        .map(|i| {
            let at = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
            Ok(LdCacheEntry {
                flags: read_u32(cache, at)?,
                name: read_cstr(cache, read_u32(cache, at + 4)? as usize)?,
                path: PathBuf::from(read_cstr(cache, read_u32(cache, at + 8)? as usize)?),
            })
        })
        .collect()
}

/// Where the new-format part starts: 0, or after the old-format entries.
fn new_cache_start(data: &[u8]) -> Result<usize, SymbolError> {
    if !data.starts_with(OLD_CACHE_MAGIC) {
        return Ok(0);
    }
    let old_count = read_u32(data, 12)? as usize;
    let end = OLD_HEADER_LEN + old_count * OLD_ENTRY_LEN;
    let start = end.next_multiple_of(8);
    if start > data.len() {
        return Err(cache_error("old-format part runs past the end"));
    }
    Ok(start)
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, SymbolError> {
    let bytes = data
        .get(at..at + 4)
        .ok_or_else(|| cache_error("truncated"))?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn read_cstr(data: &[u8], at: usize) -> Result<String, SymbolError> {
    let tail = data
        .get(at..)
        .ok_or_else(|| cache_error("string offset past the end"))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| cache_error("unterminated string"))?;
    Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
}

fn cache_error(reason: &str) -> SymbolError {
    SymbolError::LdCache {
        reason: reason.to_owned(),
    }
}

/// One meaningful line of ld.so.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LdConfLine {
    /// A library directory.
    Dir(PathBuf),
    /// An `include` of more config files (a path or a glob).
    Include(String),
}

/// Parses the text of an ld.so.conf file: directories and `include` lines;
/// comments, blank lines and `hwcap` lines are skipped.
pub(crate) fn parse_ld_so_conf(text: &str) -> Vec<LdConfLine> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => lines.extend(words.map(|w| LdConfLine::Include(w.to_owned()))),
            Some("hwcap") | None => {}
            Some(_) => {
                let dir = line.split('=').next().unwrap_or(line).trim();
                if dir.starts_with('/') {
                    lines.push(LdConfLine::Dir(PathBuf::from(dir)));
                }
            }
        }
    }
    lines
}

/// The library directories of the ld.so.conf file at `path`, includes followed.
fn conf_dirs(path: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let base = path.parent().unwrap_or(Path::new("/"));
    for line in parse_ld_so_conf(&text) {
        match line {
            LdConfLine::Dir(dir) => out.push(dir),
            LdConfLine::Include(pattern) if depth < MAX_CONF_DEPTH => {
                for file in expand_glob(&base.join(pattern)) {
                    conf_dirs(&file, depth + 1, out);
                }
            }
            LdConfLine::Include(_) => {}
        }
    }
}

/// The files matching `pattern`, whose last component may be a glob, sorted.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let Ok(glob) = Glob::new(&name.to_string_lossy()) else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| matcher.is_match(entry.file_name()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// The dynamic-section facts of one ELF object, `$ORIGIN` expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DynObject {
    path: PathBuf,
    needed: Vec<String>,
    rpath: Vec<PathBuf>,
    runpath: Vec<PathBuf>,
}

/// `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH` strings of an ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DynamicInfo {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

fn dynamic_info<'data, R: ReadRef<'data>>(data: R) -> Result<DynamicInfo, object::Error> {
    let file = ElfFile64::<object::Endianness, R>::parse(data)?;
    let table = file.elf_dynamic_table()?;
    let mut info = DynamicInfo::default();
    for entry in table.iter() {
        let list = match entry.tag {
            DT_NEEDED => &mut info.needed,
            DT_RPATH => &mut info.rpath,
            DT_RUNPATH => &mut info.runpath,
            _ => continue,
        };
        list.push(String::from_utf8_lossy(table.string(entry)?).into_owned());
    }
    Ok(info)
}

fn read_object(path: &Path) -> Result<DynObject, SymbolError> {
    let file = super::file::open_regular(path).map_err(|e| SymbolError::io(path, e))?;
    let cache = ReadCache::new(file);
    let info = dynamic_info(&cache).map_err(|source| SymbolError::Elf {
        path: path.to_owned(),
        cause: source,
    })?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let origin = path.parent().unwrap_or(Path::new("/")).to_owned();
    Ok(DynObject {
        rpath: split_search_path(&info.rpath, &origin),
        runpath: split_search_path(&info.runpath, &origin),
        needed: info.needed,
        path,
    })
}

/// Splits `:`-separated dirs, expanding `$ORIGIN` to `origin`.
fn split_search_path(lists: &[String], origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    lists
        .iter()
        .flat_map(|list| list.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| {
            PathBuf::from(
                dir.replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin),
            )
        })
        .collect()
}

/// Whether `path` is a 64-bit little-endian x86-64 ELF file.
fn is_x86_64_elf(path: &Path) -> bool {
    let mut header = [0u8; 20];
    let read = super::file::open_regular(path).and_then(|mut f| f.read_exact(&mut header));
    read.is_ok() && header.starts_with(b"\x7fELF\x02\x01") && header[18..20] == [62, 0]
}

/// Whether `lib` names the soname `name`: equal, or a prefix that ends
/// where a version or suffix starts (`libc` names `libc.so.6`, not `libcap.so.2`).
fn names(lib: &str, name: &str) -> bool {
    name.strip_prefix(lib)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '-']))
}

/// Where to look, in the loader's order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source<'a> {
    Dir(&'a Path),
    Cache,
}

/// The loader's view of the system: everything besides the objects' own paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Loader {
    ld_library_path: Vec<PathBuf>,
    /// The x86-64 entries of the ld.so cache, when it could be read.
    cache: Option<Vec<LdCacheEntry>>,
    /// The dirs of ld.so.conf, used only without a cache.
    conf_dirs: Vec<PathBuf>,
    default_dirs: Vec<PathBuf>,
}

impl Loader {
    fn from_system() -> Loader {
        let cache = std::fs::read(LD_CACHE)
            .ok()
            .and_then(|data| parse_ld_cache(&data).ok())
            .map(|entries| {
                entries
                    .into_iter()
                    .filter(LdCacheEntry::is_x86_64_libc6)
                    .collect()
            });
        let mut conf = Vec::new();
        if cache.is_none() {
            conf_dirs(Path::new(LD_CONF), 0, &mut conf);
        }
        Loader {
            ld_library_path: parse_ld_library_path(std::env::var_os("LD_LIBRARY_PATH")),
            cache,
            conf_dirs: conf,
            default_dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    fn find(&self, exe: &Path, lib: &str) -> Result<PathBuf, SymbolError> {
        let exe_object = read_object(exe)?;
        let mut searched = Vec::new();
        let deps = self.dependencies(&exe_object, &mut searched);
        let pick = deps
            .iter()
            .find(|(name, _)| name == lib)
            .or_else(|| deps.iter().find(|(name, _)| names(lib, name)));
        let found = match pick {
            Some((_, path)) => path.clone(),
            None => self.locate(lib, &exe_object, &exe_object, &mut searched),
        };
        found.ok_or_else(|| SymbolError::LibraryNotFound {
            library: lib.to_owned(),
            exe: exe.to_owned(),
            searched,
        })
    }

    /// Every `DT_NEEDED` name reachable from `exe`, breadth first, with the
    /// path it resolves to.
    fn dependencies(
        &self,
        exe: &DynObject,
        searched: &mut Vec<PathBuf>,
    ) -> Vec<(String, Option<PathBuf>)> {
        let mut deps = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([exe.clone()]);
        while let Some(object) = queue.pop_front() {
            for name in &object.needed {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let path = self.locate(name, &object, exe, searched);
                if let Some(dep) = path.as_deref().and_then(|p| read_object(p).ok()) {
                    queue.push_back(dep);
                }
                deps.push((name.clone(), path));
            }
        }
        deps
    }

    /// Where `name`, needed by `object` (loaded for `exe`), is found.
    fn locate(
        &self,
        name: &str,
        object: &DynObject,
        exe: &DynObject,
        searched: &mut Vec<PathBuf>,
    ) -> Option<PathBuf> {
        if name.contains('/') {
            let path = Path::new(name);
            return is_x86_64_elf(path).then(|| path.to_owned());
        }
        for source in self.sources(object, exe) {
            let found = match source {
                Source::Dir(dir) => {
                    note(searched, dir);
                    Some(dir.join(name)).filter(|p| is_x86_64_elf(p))
                }
                Source::Cache => {
                    note(searched, Path::new(LD_CACHE));
                    self.cached(name)
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn sources<'a>(&'a self, object: &'a DynObject, exe: &'a DynObject) -> Vec<Source<'a>> {
        let dirs = |list: &'a [PathBuf]| list.iter().map(|d| Source::Dir(d.as_path()));
        let mut sources = Vec::new();
        if object.runpath.is_empty() {
            sources.extend(dirs(&object.rpath));
            if object.path != exe.path && exe.runpath.is_empty() {
                sources.extend(dirs(&exe.rpath));
            }
        }
        sources.extend(dirs(&self.ld_library_path));
        sources.extend(dirs(&object.runpath));
        match &self.cache {
            Some(_) => sources.push(Source::Cache),
            None => sources.extend(dirs(&self.conf_dirs)),
        }
        sources.extend(dirs(&self.default_dirs));
        sources
    }

    fn cached(&self, name: &str) -> Option<PathBuf> {
        let entries = self.cache.as_deref()?;
        entries
            .iter()
            .find(|e| e.name == name && is_x86_64_elf(&e.path))
            .map(|e| e.path.clone())
    }
}

fn parse_ld_library_path(value: Option<OsString>) -> Vec<PathBuf> {
    let Some(value) = value else {
        return Vec::new();
    };
    value
        .to_string_lossy()
        .split([':', ';'])
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn note(searched: &mut Vec<PathBuf>, path: &Path) {
    if !searched.iter().any(|p| p == path) {
        searched.push(path.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{self, Fixture};

    /// A cache in the new format with the given (flags, name, path) entries.
    fn new_cache(entries: &[(u32, &str, &str)]) -> Vec<u8> {
        let strings_at = NEW_HEADER_LEN + entries.len() * NEW_ENTRY_LEN;
        let mut header = NEW_CACHE_MAGIC.to_vec();
        header.extend((entries.len() as u32).to_le_bytes());
        header.extend(0u32.to_le_bytes());
        header.extend([2, 0, 0, 0]);
        header.resize(NEW_HEADER_LEN, 0);
        let mut strings: Vec<u8> = Vec::new();
        for (flags, name, path) in entries {
            let key = strings_at + strings.len();
            strings.extend(name.as_bytes().iter().chain(&[0]));
            let value = strings_at + strings.len();
            strings.extend(path.as_bytes().iter().chain(&[0]));
            header.extend(flags.to_le_bytes());
            header.extend((key as u32).to_le_bytes());
            header.extend((value as u32).to_le_bytes());
            header.extend([0; 12]);
        }
        header.extend(strings);
        header
    }

    fn entry(flags: u32, name: &str, path: &str) -> LdCacheEntry {
        LdCacheEntry {
            flags,
            name: name.into(),
            path: path.into(),
        }
    }

    #[test]
    fn parses_the_new_cache_format() {
        let data = new_cache(&[
            (0x0303, "libz.so.1", "/lib/libz.so.1"),
            (0x0003, "libq.so", "/l32/libq.so"),
        ]);
        let entries = parse_ld_cache(&data).unwrap();
        assert_eq!(
            entries,
            [
                entry(0x0303, "libz.so.1", "/lib/libz.so.1"),
                entry(0x0003, "libq.so", "/l32/libq.so")
            ]
        );
        assert!(entries[0].is_x86_64_libc6());
        assert!(!entries[1].is_x86_64_libc6());
    }

    #[test]
    fn parses_a_new_cache_after_an_old_one() {
        let mut data = OLD_CACHE_MAGIC.to_vec();
        data.push(0);
        data.extend(1u32.to_le_bytes());
        data.extend([0u8; OLD_ENTRY_LEN]);
        data.resize(32, 0); // 16 + 12 = 28, aligned to 8
        data.extend(new_cache(&[(0x0303, "libz.so.1", "/lib/libz.so.1")]));
        assert_eq!(
            parse_ld_cache(&data).unwrap(),
            [entry(0x0303, "libz.so.1", "/lib/libz.so.1")]
        );
    }

    #[test]
    fn rejects_broken_caches() {
        let reason = |data: &[u8]| match parse_ld_cache(data) {
            Err(SymbolError::LdCache { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b"garbage"), "no glibc-ld.so.cache1.1 header");
        let data = new_cache(&[(0x0303, "libz.so.1", "/lib/libz.so.1")]);
        assert_eq!(reason(&data[..NEW_HEADER_LEN + 4]), "truncated");
        assert_eq!(reason(&data[..data.len() - 1]), "unterminated string");
    }

    #[test]
    fn the_system_cache_knows_libc() {
        let Ok(data) = std::fs::read(LD_CACHE) else {
            return; // no cache on this system: nothing to check
        };
        let entries = parse_ld_cache(&data).unwrap();
        let libc = entries
            .iter()
            .find(|e| e.name == "libc.so.6" && e.is_x86_64_libc6())
            .unwrap();
        assert!(is_x86_64_elf(&libc.path), "{}", libc.path.display());
    }

    #[test]
    fn parses_ld_so_conf_lines() {
        let text = "# comment\ninclude /etc/ld.so.conf.d/*.conf other.conf\n\n/usr/local/lib  # trailing\n\
                    /opt/lib=libc6\nhwcap 0 x\nrelative/dir\n";
        assert_eq!(
            parse_ld_so_conf(text),
            [
                LdConfLine::Include("/etc/ld.so.conf.d/*.conf".into()),
                LdConfLine::Include("other.conf".into()),
                LdConfLine::Dir("/usr/local/lib".into()),
                LdConfLine::Dir("/opt/lib".into()),
            ]
        );
    }

    #[test]
    fn ld_so_conf_includes_are_followed() {
        let fx = Fixture::new();
        let dir = fx.dir();
        std::fs::create_dir(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("ld.so.conf"), "/first\ninclude conf.d/*.conf\n").unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "/from-b\n").unwrap();
        std::fs::write(
            dir.join("conf.d/a.conf"),
            "/from-a\ninclude ../ld.so.conf\n",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/skip.txt"), "/skipped\n").unwrap();
        let mut dirs = Vec::new();
        conf_dirs(&dir.join("ld.so.conf"), MAX_CONF_DEPTH - 1, &mut dirs);
        let dirs: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
        // The include of ld.so.conf from a.conf is one level too deep.
        assert_eq!(dirs, ["/first", "/from-a", "/from-b"]);
    }

    #[test]
    fn sonames_match_exactly_or_by_prefix() {
        assert!(names("libc.so.6", "libc.so.6"));
        assert!(names("libc", "libc.so.6"));
        assert!(names("libc.so", "libc.so.6"));
        assert!(names("libfoo", "libfoo-2.0.so.0"));
        assert!(!names("libc", "libcap.so.2"));
        assert!(!names("libc.so.6", "libc"));
    }

    #[test]
    fn origin_is_expanded_in_search_paths() {
        let lists = ["$ORIGIN/../lib:/opt/x".to_owned(), "${ORIGIN}::".to_owned()];
        assert_eq!(
            split_search_path(&lists, Path::new("/app/bin")),
            [
                PathBuf::from("/app/bin/../lib"),
                "/opt/x".into(),
                "/app/bin".into()
            ]
        );
        assert_eq!(
            parse_ld_library_path(Some("/a::/b;/c".into())),
            [PathBuf::from("/a"), "/b".into(), "/c".into()]
        );
        assert!(parse_ld_library_path(None).is_empty());
    }

    #[test]
    fn finds_libc_of_a_gcc_binary() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let libc = find_library(&bin, "libc.so.6").unwrap();
        assert_eq!(libc.file_name().unwrap(), "libc.so.6");
        assert!(is_x86_64_elf(&libc));
        assert_eq!(find_library(&bin, "libc").unwrap(), libc);
        let by_path = find_library(&bin, libc.to_str().unwrap()).unwrap();
        assert_eq!(by_path, std::fs::canonicalize(&libc).unwrap());
    }

    #[test]
    fn missing_library_names_itself_and_the_dirs_searched() {
        let fx = Fixture::new();
        let bin = fx.gcc("app", testutil::C_SOURCE, &["-O0"]);
        let err = find_library(&bin, "libnope.so.1").unwrap_err();
        let SymbolError::LibraryNotFound {
            ref library,
            ref searched,
            ..
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!(library, "libnope.so.1");
        assert!(
            searched.contains(&PathBuf::from("/usr/lib")),
            "{searched:?}"
        );
        assert!(err.to_string().contains("libnope.so.1"));
        let err = find_library(&bin, "/nonexistent/libx.so").unwrap_err();
        assert!(matches!(err, SymbolError::LibraryNotFound { .. }), "{err}");
    }

    /// `dir/app` needs `dir/sub/libouter.so` (via the given dtags), which
    /// needs `dir/sub/libinner.so` through its own `$ORIGIN` runpath.
    fn app_with_private_libs(fx: &Fixture, dtags: &str) -> PathBuf {
        let sub = fx.dir().join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let inner = fx.gcc_in(
            &sub,
            "libinner.so",
            "int inner(int x) { return x + 1; }",
            &["-shared", "-fPIC"],
        );
        let outer_src = "int inner(int); int outer(int x) { return inner(x) * 2; }";
        let sub_flag = format!("-L{}", sub.display());
        fx.gcc_in(
            &sub,
            "libouter.so",
            outer_src,
            &[
                "-shared",
                "-fPIC",
                &sub_flag,
                "-linner",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
            ],
        );
        assert!(inner.exists());
        let app_src = "int outer(int); int main(void) { return outer(1); }";
        let rpath = format!("-Wl,{dtags},-rpath,$ORIGIN/sub");
        fx.gcc("app", app_src, &[&sub_flag, "-louter", &rpath])
    }

    fn private_libs_are_found(dtags: &str, runpath: bool) {
        let fx = Fixture::new();
        let app = app_with_private_libs(&fx, dtags);
        let object = read_object(&app).unwrap();
        let sub = std::fs::canonicalize(fx.dir()).unwrap().join("sub");
        let expected = vec![sub.clone()];
        assert_eq!(
            object.runpath,
            if runpath { expected.clone() } else { vec![] }
        );
        assert_eq!(object.rpath, if runpath { vec![] } else { expected });
        assert!(
            object.needed.contains(&"libouter.so".to_owned()),
            "{:?}",
            object.needed
        );
        assert_eq!(
            find_library(&app, "libouter.so").unwrap(),
            sub.join("libouter.so")
        );
        assert_eq!(
            find_library(&app, "libinner").unwrap(),
            sub.join("libinner.so")
        );
        assert_eq!(
            find_library(&app, "libc.so.6")
                .unwrap()
                .file_name()
                .unwrap(),
            "libc.so.6"
        );
    }

    #[test]
    fn runpath_with_origin_finds_private_libraries() {
        private_libs_are_found("--enable-new-dtags", true);
    }

    #[test]
    fn rpath_with_origin_finds_private_libraries() {
        private_libs_are_found("--disable-new-dtags", false);
    }

    #[test]
    fn ld_library_path_comes_before_the_cache_and_default_dirs() {
        let fx = Fixture::new();
        let lib_dir = fx.dir().join("lib");
        std::fs::create_dir(&lib_dir).unwrap();
        fx.gcc_in(
            &lib_dir,
            "libfix.so",
            "int fix(void) { return 3; }",
            &["-shared", "-fPIC"],
        );
        let link = format!("-L{}", lib_dir.display());
        let app = fx.gcc(
            "app",
            "int fix(void); int main(void) { return fix(); }",
            &[&link, "-lfix"],
        );
        let empty = fx.dir().join("empty");
        let loader = |ld_library_path: Vec<PathBuf>| Loader {
            ld_library_path,
            cache: Some(Vec::new()),
            conf_dirs: vec!["/ignored-with-a-cache".into()],
            default_dirs: vec![empty.clone()],
        };
        let found = loader(vec![lib_dir.clone()])
            .find(&app, "libfix.so")
            .unwrap();
        assert_eq!(found, lib_dir.join("libfix.so"));
        let err = loader(vec![]).find(&app, "libfix.so").unwrap_err();
        let SymbolError::LibraryNotFound { searched, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(searched, [PathBuf::from(LD_CACHE), empty]);
    }
}
