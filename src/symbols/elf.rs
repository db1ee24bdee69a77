//! One ELF binary and its functions.

use std::cmp::Reverse;
use std::path::{Path, PathBuf};

use object::elf::{ET_DYN, SHF_EXECINSTR};
use object::read::elf::{ElfFile64, FileHeader};
use object::{
    Architecture, Object, ObjectSection, ObjectSegment, ObjectSymbol, ReadCache, ReadRef,
    SectionFlags, SymbolKind, SymbolSection,
};
use serde::{Deserialize, Serialize};

use super::demangle::demangle;
use super::insn::{endbr64_skip, kernel_refusal, MAX_INSN_LEN};
use super::{debug, file, pattern, InsnClass, SymbolError};

/// A virtual address as written in the ELF file (before any load bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ElfAddr(pub u64);

/// An offset in the file, which is what uprobes take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileOffset(pub u64);

/// One function of a binary, ready to be probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Demangled for display: Rust without the hash, C++ with parameters, else raw.
    pub name: String,
    /// The symbol as in the ELF file.
    pub raw_name: String,
    /// The symbol's value.
    pub addr: ElfAddr,
    /// The symbol's size in bytes (0 when the symbol gives none).
    pub size: u64,
    /// `addr` mapped through the `PT_LOAD` segment that contains it.
    pub offset: FileOffset,
    /// Class of the instruction at `offset` in the binary.
    pub class: InsnClass,
    /// Bytes past `offset` where the probes go: 4 to step over a leading
    /// `endbr64` when that is safe (see [`super::insn::endbr64_skip`]),
    /// else 0.
    pub probe_skip: u8,
    /// Class of the instruction the probes are placed on.
    pub probe_class: InsnClass,
    /// Why the kernel refuses a uprobe at `offset`, if it does
    /// ([`super::insn::kernel_refusal`]).
    pub refusal: Option<&'static str>,
    /// Why the kernel refuses a uprobe at [`Self::probe_offset`], if it
    /// does.
    pub probe_refusal: Option<&'static str>,
}

impl Function {
    /// The file offset the probes are placed at.
    pub fn probe_offset(&self) -> FileOffset {
        FileOffset(self.offset.0 + u64::from(self.probe_skip))
    }
}

/// An ELF binary (executable or shared library) and its functions.
///
/// Functions are the defined `STT_FUNC` and `STT_GNU_IFUNC` symbols of
/// executable sections; the address of an `STT_GNU_IFUNC` symbol is its
/// resolver, which runs once when the symbol is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// The path it was read from.
    pub path: PathBuf,
    /// The GNU build id, to check later that the file did not change.
    pub build_id: Option<Vec<u8>>,
    /// Whether it is position independent (`ET_DYN`: PIE or shared library).
    pub pie: bool,
    /// The separate debug file that gave the names, if one was used.
    pub debug_file: Option<PathBuf>,
    /// Set when the binary has no `.symtab` and no separate debug file was
    /// found: where one was looked for. Only its dynamic symbols are known.
    pub stripped: Option<Vec<PathBuf>>,
    /// The functions, sorted by address, one per address.
    pub functions: Vec<Function>,
}

/// A parsed 64-bit ELF file of either byte order.
pub(crate) type Elf<'data> = ElfFile64<'data, object::Endianness>;

impl Binary {
    /// Reads the binary at `path` and, when it lacks `.symtab`, its separate
    /// debug file (found by build id or `.gnu_debuglink`).
    ///
    /// # Errors
    /// [`SymbolError::Io`] when the file cannot be read, and the errors of
    /// [`Binary::parse`].
    pub fn open(path: &Path) -> Result<Binary, SymbolError> {
        let data = file::map_regular(path).map_err(|e| SymbolError::io(path, e))?;
        let (found, stripped) = {
            let file = parse_elf(path, &data)?;
            match file.symbol_table() {
                Some(_) => (None, None),
                None => match debug::find_debug_file(path, &file) {
                    Some(debug) => (Some(debug), None),
                    None => (None, Some(debug::debug_file_candidates(path, &file))),
                },
            }
        };
        match found {
            Some(debug) => {
                let mut binary = Binary::parse(path, &data, Some(&debug.data))?;
                binary.debug_file = Some(debug.path);
                Ok(binary)
            }
            None => Ok(Binary {
                stripped,
                ..Binary::parse(path, &data, None)?
            }),
        }
    }

    /// Parses the binary `data` read from `path`; `debug` is the content of
    /// its separate debug file, whose `.symtab` then adds names. Offsets and
    /// instruction classes always come from `data`.
    ///
    /// # Errors
    /// [`SymbolError::Elf`] or [`SymbolError::DebugElf`] when `data` or
    /// `debug` is not 64-bit ELF, [`SymbolError::UnsupportedArch`] when it is
    /// not x86-64 code.
    pub fn parse(path: &Path, data: &[u8], debug: Option<&[u8]>) -> Result<Binary, SymbolError> {
        let file = parse_elf(path, data)?;
        let mut symbols = Vec::new();
        collect_symbols(&file, &mut symbols);
        if let Some(debug) = debug {
            let debug_file = Elf::parse(debug).map_err(|source| SymbolError::DebugElf {
                path: path.to_owned(),
                cause: source,
            })?;
            collect_symbols(&debug_file, &mut symbols);
        }
        let segments = load_segments(&file);
        let functions = pick_functions(symbols)
            .into_iter()
            .filter_map(|sym| to_function(sym, &segments, data))
            .collect();
        Ok(Binary {
            path: path.to_owned(),
            build_id: file.build_id().ok().flatten().map(<[u8]>::to_vec),
            pie: file.elf_header().e_type(file.endian()) == ET_DYN,
            debug_file: None,
            stripped: None,
            functions,
        })
    }

    /// The functions whose name matches `pattern`, in address order.
    ///
    /// A pattern with `*`, `?`, `[...]` or `{a,b}` is a glob (`*` crosses
    /// `::`), any other is an exact name. It is tried against the demangled
    /// name, the raw symbol and, for C++, the demangled name without its
    /// parameter list and return type (`ns::foo` matches `ns::foo(int)`).
    ///
    /// # Errors
    /// [`SymbolError::BadPattern`] for an invalid glob, [`SymbolError::NoMatch`]
    /// with the closest names when no function matches.
    pub fn matching(&self, pattern: &str) -> Result<Vec<&Function>, SymbolError> {
        let matcher = pattern::Matcher::new(pattern)?;
        let found: Vec<&Function> = self
            .functions
            .iter()
            .filter(|f| matcher.matches(f))
            .collect();
        if found.is_empty() {
            return Err(SymbolError::NoMatch {
                pattern: pattern.to_owned(),
                binary: self.path.clone(),
                suggestions: pattern::closest(pattern, &self.functions),
                stripped: self.stripped.clone(),
            });
        }
        Ok(found)
    }

    /// The function whose `[addr, addr + size)` holds `addr`.
    pub fn function_containing(&self, addr: ElfAddr) -> Option<&Function> {
        let after = self.functions.partition_point(|f| f.addr <= addr);
        let function = self.functions[..after].last()?;
        (addr.0 < function.addr.0 + function.size.max(1)).then_some(function)
    }

    /// The build id as lowercase hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_deref().map(hex)
    }
}

/// Reads only the GNU build id of the binary at `path`, without loading the
/// whole file: to check a binary did not change since it was resolved.
///
/// # Errors
/// [`SymbolError::Io`] when the file cannot be read, [`SymbolError::Elf`]
/// when it is not 64-bit ELF.
pub fn read_build_id(path: &Path) -> Result<Option<Vec<u8>>, SymbolError> {
    with_lazy_elf(path, |elf| {
        let id = elf.build_id().map_err(|source| SymbolError::Elf {
            path: path.to_owned(),
            cause: source,
        })?;
        Ok(id.map(<[u8]>::to_vec))
    })
}

/// Runs `f` on the 64-bit ELF file at `path`, parsed through a read cache:
/// only the parts `f` looks at are read, not the whole file.
///
/// # Errors
/// [`SymbolError::Io`] when the file cannot be opened, [`SymbolError::Elf`]
/// when it is not 64-bit ELF; else what `f` returns.
pub(crate) fn with_lazy_elf<T>(
    path: &Path,
    f: impl FnOnce(
        &ElfFile64<'_, object::Endianness, &ReadCache<std::fs::File>>,
    ) -> Result<T, SymbolError>,
) -> Result<T, SymbolError> {
    let file = file::open_regular(path).map_err(|e| SymbolError::io(path, e))?;
    let cache = ReadCache::new(file);
    let elf =
        ElfFile64::<object::Endianness, _>::parse(&cache).map_err(|source| SymbolError::Elf {
            path: path.to_owned(),
            cause: source,
        })?;
    f(&elf)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn parse_elf<'data>(path: &Path, data: &'data [u8]) -> Result<Elf<'data>, SymbolError> {
    let file = Elf::parse(data).map_err(|source| SymbolError::Elf {
        path: path.to_owned(),
        cause: source,
    })?;
    if file.architecture() != Architecture::X86_64 {
        return Err(SymbolError::UnsupportedArch {
            path: path.to_owned(),
            arch: format!("{:?}", file.architecture()),
        });
    }
    Ok(file)
}

/// A function symbol before aliases are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Symbol {
    name: String,
    addr: u64,
    size: u64,
    global: bool,
}

impl Symbol {
    /// Sort key: at one address the best alias comes first.
    fn preference(&self) -> (u64, Reverse<bool>, Reverse<bool>, usize, &str) {
        let underscores = self.name.len() - self.name.trim_start_matches('_').len();
        (
            self.addr,
            Reverse(self.size > 0),
            Reverse(self.global),
            underscores,
            &self.name,
        )
    }
}

/// Defined `STT_FUNC`/`STT_GNU_IFUNC` symbols of `.symtab` and `.dynsym` that
/// lie in an executable section.
fn collect_symbols<'data, R: ReadRef<'data>>(
    file: &ElfFile64<'data, object::Endianness, R>,
    out: &mut Vec<Symbol>,
) {
    let all = file.symbols().chain(file.dynamic_symbols());
    for sym in all {
        if sym.kind() != SymbolKind::Text {
            continue;
        }
        let SymbolSection::Section(index) = sym.section() else {
            continue;
        };
        let executable = file.section_by_index(index).is_ok_and(|section| {
            matches!(section.flags(), SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & SHF_EXECINSTR.0 != 0)
        });
        match sym.name() {
            Ok(name) if executable && !name.is_empty() => out.push(Symbol {
                name: name.to_owned(),
                addr: sym.address(),
                size: sym.size(),
                global: sym.is_global(),
            }),
            _ => {}
        }
    }
}

/// One symbol per address (the preferred alias), and no size-0 symbol that
/// lies inside a sized function.
fn pick_functions(mut symbols: Vec<Symbol>) -> Vec<Symbol> {
    symbols.sort_by(|a, b| a.preference().cmp(&b.preference()));
    symbols.dedup_by_key(|s| s.addr);
    let mut picked: Vec<Symbol> = Vec::with_capacity(symbols.len());
    let mut sized_end = 0;
    for sym in symbols {
        if sym.size == 0 && sym.addr < sized_end {
            continue;
        }
        sized_end = sized_end.max(sym.addr + sym.size);
        picked.push(sym);
    }
    picked
}

/// A `PT_LOAD` segment: virtual address, file offset and size in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LoadSegment {
    addr: u64,
    offset: u64,
    file_size: u64,
}

impl LoadSegment {
    fn offset_of(&self, addr: u64) -> Option<u64> {
        let delta = addr.checked_sub(self.addr)?;
        (delta < self.file_size).then_some(self.offset + delta)
    }
}

fn load_segments(file: &Elf<'_>) -> Vec<LoadSegment> {
    file.segments()
        .map(|segment| {
            let (offset, file_size) = segment.file_range();
            LoadSegment {
                addr: segment.address(),
                offset,
                file_size,
            }
        })
        .collect()
}

fn to_function(sym: Symbol, segments: &[LoadSegment], data: &[u8]) -> Option<Function> {
    let offset = segments.iter().find_map(|s| s.offset_of(sym.addr))?;
    let start = usize::try_from(offset).ok()?;
    let len = match usize::try_from(sym.size) {
        Ok(size) if size > 0 => size.min(MAX_INSN_LEN),
        _ => MAX_INSN_LEN,
    };
    let rest = data.get(start..)?;
    let code = &rest[..len.min(rest.len())];
    let class = InsnClass::of(code);
    let whole = usize::try_from(sym.size)
        .ok()
        .filter(|&size| size > 0 && size <= rest.len())
        .map(|size| &rest[..size]);
    let refusal = kernel_refusal(code);
    // Past endbr64 only where the kernel takes the next instruction.
    let (probe_skip, probe_class) = whole
        .and_then(|whole| endbr64_skip(whole, sym.addr))
        .filter(|&(skip, _)| {
            kernel_refusal(rest.get(usize::from(skip)..).unwrap_or_default()).is_none()
        })
        .unwrap_or((0, class));
    let probe_refusal = match probe_skip {
        0 => refusal,
        _ => None,
    };
    Some(Function {
        name: demangle(&sym.name),
        class,
        probe_skip,
        probe_class,
        refusal,
        probe_refusal,
        raw_name: sym.name,
        addr: ElfAddr(sym.addr),
        size: sym.size,
        offset: FileOffset(offset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{self, Fixture};

    fn sym(name: &str, addr: u64, size: u64, global: bool) -> Symbol {
        Symbol {
            name: name.into(),
            addr,
            size,
            global,
        }
    }

    #[test]
    fn aliases_collapse_to_the_global_name_without_underscores() {
        let picked = pick_functions(vec![
            sym("__libc_malloc", 0x100, 40, true),
            sym("malloc_local", 0x100, 40, false),
            sym("malloc", 0x100, 40, true),
            sym("_malloc", 0x100, 40, true),
            sym("free", 0x200, 8, true),
        ]);
        assert_eq!(
            picked,
            vec![sym("malloc", 0x100, 40, true), sym("free", 0x200, 8, true)]
        );
    }

    #[test]
    fn size_zero_symbols_only_when_nothing_better() {
        let picked = pick_functions(vec![
            sym("alias0", 0x100, 0, true),
            sym("f", 0x100, 32, false),
            sym("inner_label", 0x110, 0, true),
            sym("asm_entry", 0x200, 0, true),
        ]);
        assert_eq!(
            picked,
            vec![sym("f", 0x100, 32, false), sym("asm_entry", 0x200, 0, true)]
        );
    }

    #[test]
    fn segment_maps_only_file_backed_addresses() {
        let seg = LoadSegment {
            addr: 0x401000,
            offset: 0x1000,
            file_size: 0x200,
        };
        assert_eq!(seg.offset_of(0x401010), Some(0x1010));
        assert_eq!(seg.offset_of(0x4011ff), Some(0x11ff));
        assert_eq!(seg.offset_of(0x401200), None);
        assert_eq!(seg.offset_of(0x400fff), None);
    }

    #[test]
    fn function_containing_uses_sizes() {
        let f = |addr, size| Function {
            name: String::new(),
            raw_name: String::new(),
            addr: ElfAddr(addr),
            size,
            offset: FileOffset(addr),
            class: InsnClass::Other,
            probe_skip: 0,
            probe_class: InsnClass::Other,
            refusal: None,
            probe_refusal: None,
        };
        let binary = Binary {
            path: "/x".into(),
            build_id: Some(vec![0xab, 0x01]),
            pie: true,
            debug_file: None,
            stripped: None,
            functions: vec![f(0x100, 0x10), f(0x200, 0)],
        };
        assert_eq!(
            binary.function_containing(ElfAddr(0x10f)).map(|f| f.addr),
            Some(ElfAddr(0x100))
        );
        assert_eq!(binary.function_containing(ElfAddr(0x110)), None);
        assert_eq!(
            binary.function_containing(ElfAddr(0x200)).map(|f| f.addr),
            Some(ElfAddr(0x200))
        );
        assert_eq!(binary.function_containing(ElfAddr(0x50)), None);
        assert_eq!(binary.build_id_hex().as_deref(), Some("ab01"));
    }

    fn check_offsets_against_objdump(fx: &Fixture, bin: &Path, names: &[&str]) -> Binary {
        let binary = Binary::open(bin).unwrap();
        let data = std::fs::read(bin).unwrap();
        for name in names {
            let found = binary.matching(name).unwrap();
            assert_eq!(found.len(), 1, "{name}");
            let f = found[0];
            let (addr, bytes) = fx.objdump_first_insn(bin, name);
            assert_eq!(f.addr, ElfAddr(addr), "{name}");
            let at = f.offset.0 as usize;
            assert_eq!(&data[at..at + bytes.len()], &bytes[..], "{name}");
        }
        binary
    }

    #[test]
    fn pie_offsets_match_objdump_bytes() {
        let fx = Fixture::new();
        let bin = fx.gcc("pie", testutil::C_SOURCE, &["-O0", "-pie", "-fPIE"]);
        let binary =
            check_offsets_against_objdump(&fx, &bin, &["compute_sum", "compute_product", "main"]);
        assert!(binary.pie);
        assert_eq!(binary.debug_file, None);
        assert!(binary.functions.windows(2).all(|w| w[0].addr < w[1].addr));
    }

    #[test]
    fn non_pie_offsets_match_objdump_bytes() {
        let fx = Fixture::new();
        let bin = fx.gcc("nopie", testutil::C_SOURCE, &["-O0", "-no-pie", "-fno-pie"]);
        let binary = check_offsets_against_objdump(&fx, &bin, &["compute_sum", "compute_product"]);
        assert!(!binary.pie);
        let f = binary.matching("compute_sum").unwrap()[0];
        assert!(f.addr.0 >= 0x400000, "{:#x}", f.addr.0);
        assert_eq!(f.addr.0 - f.offset.0, 0x400000);
    }

    #[test]
    fn first_instruction_classes_of_compiled_functions() {
        let fx = Fixture::new();
        let o0 = Binary::open(&fx.gcc("o0", testutil::C_SOURCE, &["-O0"])).unwrap();
        let cet =
            Binary::open(&fx.gcc("cet", testutil::C_SOURCE, &["-O0", "-fcf-protection=full"]))
                .unwrap();
        let o2 = Binary::open(&fx.gcc("o2", testutil::CLASS_SOURCE, &["-O2"])).unwrap();
        let class = |b: &Binary, name: &str| b.matching(name).unwrap()[0].class;
        assert_eq!(class(&o0, "compute_sum"), InsnClass::PushRbp);
        assert_eq!(class(&cet, "compute_sum"), InsnClass::Endbr64);
        assert_eq!(class(&o2, "empty"), InsnClass::Ret);
        assert_eq!(class(&o2, "read_counter"), InsnClass::Mov);
        assert_eq!(class(&o2, "with_buffer"), InsnClass::SubRsp);
        assert_eq!(class(&o2, "saves_rbx"), InsnClass::PushReg);
        assert_eq!(class(&o2, "add"), InsnClass::Other);
    }

    #[test]
    fn ifunc_symbols_are_functions() {
        let fx = Fixture::new();
        let source = "static int impl(void) { return 1; }\n\
                      static int (*pick(void))(void) { return impl; }\n\
                      int chosen(void) __attribute__((ifunc(\"pick\")));\n\
                      int main(void) { return chosen(); }\n";
        let bin = fx.gcc("ifunc", source, &["-O0"]);
        let binary = Binary::open(&bin).unwrap();
        let chosen = binary.matching("chosen").unwrap()[0];
        assert_eq!(chosen.addr.0, fx.objdump_first_insn(&bin, "pick").0);
        assert_eq!(chosen.class, InsnClass::PushRbp);
        // The local resolver is an alias of the global IFUNC symbol.
        assert!(binary.matching("pick").is_err());
    }

    #[test]
    fn stripped_binary_keeps_dynsym_functions() {
        let fx = Fixture::new();
        let full = fx.gcc("dyn", testutil::C_SOURCE, &["-O0", "-rdynamic"]);
        let stripped = fx.copy(&full, "dyn.stripped");
        fx.run("strip", &[stripped.to_str().unwrap()]);
        let before = Binary::open(&full).unwrap();
        let after = Binary::open(&stripped).unwrap();
        let sum = |b: &Binary| b.matching("compute_sum").unwrap()[0].clone();
        assert_eq!(sum(&after), sum(&before));
        assert_eq!(after.debug_file, None);
        assert!(
            after.matching("static_helper").is_err(),
            "static functions are not in .dynsym"
        );
    }

    #[test]
    fn names_come_back_from_a_debuglink_file() {
        let fx = Fixture::new();
        let bin = fx.gcc("linked", testutil::C_SOURCE, &["-O0"]);
        let full = Binary::open(&bin).unwrap();
        let debug = fx.split_debug(&bin);
        let binary = Binary::open(&bin).unwrap();
        assert_eq!(binary.debug_file.as_deref(), Some(debug.as_path()));
        let helper = binary.matching("static_helper").unwrap()[0];
        assert_eq!(helper, full.matching("static_helper").unwrap()[0]);
        assert_eq!(binary.build_id, full.build_id);
    }

    #[test]
    fn debuglink_with_a_wrong_crc_is_ignored() {
        let fx = Fixture::new();
        let bin = fx.gcc("badcrc", testutil::C_SOURCE, &["-O0"]);
        let debug = fx.split_debug(&bin);
        let mut bytes = std::fs::read(&debug).unwrap();
        bytes.push(0);
        std::fs::write(&debug, bytes).unwrap();
        let binary = Binary::open(&bin).unwrap();
        assert_eq!(binary.debug_file, None);
        assert!(binary.matching("static_helper").is_err());
    }

    #[test]
    fn cpp_namespace_functions_match_with_and_without_parameters() {
        let fx = Fixture::new();
        let bin = fx.gxx("cpp", testutil::CPP_SOURCE, &["-O0"]);
        let binary = Binary::open(&bin).unwrap();
        let names = |pattern: &str| -> Vec<String> {
            binary
                .matching(pattern)
                .unwrap()
                .iter()
                .map(|f| f.name.clone())
                .collect()
        };
        assert_eq!(names("ns::*"), ["ns::foo(int)", "ns::Widget::bar() const"]);
        assert_eq!(names("ns::foo"), ["ns::foo(int)"]);
        assert_eq!(names("ns::foo(int)"), ["ns::foo(int)"]);
        assert_eq!(names("_ZN2ns3fooEi"), ["ns::foo(int)"]);
        assert_eq!(names("ns::Widget::bar"), ["ns::Widget::bar() const"]);
    }

    fn check_rust_fixture(mangling: &[&str], raw_prefix: &str) {
        let fx = Fixture::new();
        let bin = fx.rustc("rsfix", testutil::RUST_SOURCE, mangling);
        let binary = Binary::open(&bin).unwrap();
        let found = binary.matching("rsfix::module::func").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "rsfix::module::func");
        assert!(
            found[0].raw_name.starts_with(raw_prefix),
            "{}",
            found[0].raw_name
        );
        assert_eq!(binary.matching("rsfix::*::func").unwrap(), found);
    }

    #[test]
    fn rust_legacy_mangled_function_found_without_hash() {
        // Legacy is what stable rustc uses by default for the crate's own symbols.
        check_rust_fixture(&[], "_ZN");
    }

    #[test]
    fn rust_v0_mangled_function_found_without_hash() {
        check_rust_fixture(&["-C", "symbol-mangling-version=v0"], "_R");
    }

    #[test]
    fn read_build_id_agrees_with_open() {
        let fx = Fixture::new();
        let bin = fx.gcc("bid", testutil::C_SOURCE, &["-O0", "-Wl,--build-id=sha1"]);
        let binary = Binary::open(&bin).unwrap();
        let id = read_build_id(&bin).unwrap();
        assert_eq!(id.as_ref().map(Vec::len), Some(20));
        assert_eq!(id, binary.build_id);
        assert_eq!(binary.build_id_hex(), id.as_deref().map(hex));
    }

    #[test]
    fn non_elf_and_missing_files_are_errors() {
        let fx = Fixture::new();
        let text = fx.dir().join("text");
        std::fs::write(&text, "hello").unwrap();
        let err = Binary::open(&text).unwrap_err();
        assert!(
            matches!(err, SymbolError::Elf { ref path, .. } if *path == text),
            "{err}"
        );
        let mut arm = std::fs::read(fx.gcc("arm", testutil::C_SOURCE, &[])).unwrap();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        let err = Binary::parse(Path::new("arm"), &arm, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "arm holds Aarch64 code; perfunc probes 64-bit x86-64 binaries only"
        );
        let missing = fx.dir().join("missing");
        assert!(matches!(
            Binary::open(&missing),
            Err(SymbolError::Io { .. })
        ));
        assert!(matches!(
            read_build_id(&missing),
            Err(SymbolError::Io { .. })
        ));
    }
}
