//! Addresses to function names and source lines: the frames of call
//! chains and the locations of probed functions.
//!
//! A runtime address is turned into the ELF virtual address of the file
//! mapped there (through the mapping's file offset and the file's
//! `PT_LOAD` segments, so PIE executables and shared libraries resolve as
//! well as fixed-address ones), then looked up with addr2line: the DWARF
//! line tables and inlined-function records where the file (or its
//! separate debug file) has them, the symbol table otherwise. Names come
//! demangled (Rust and C++). Each file is loaded once; each address is
//! resolved once (a cache keyed by file and address).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::unwind::elf::{load_segments, segment_vaddr, LoadSegment};

/// One frame of a resolved address: a function, and where in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled function name.
    pub function: String,
    /// `file:line`, when the file has line tables.
    pub location: Option<String>,
    /// Whether the function was inlined into the next frame out.
    pub inlined: bool,
}

/// What an address resolved to: its frames, outermost (the function the
/// address is in) first, then the functions inlined into it, innermost
/// last. A single frame named after the file and offset when nothing
/// resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The frames, outermost first.
    pub frames: Vec<Frame>,
    /// Whether no symbol was found (the frame is `[file+0xoffset]`).
    pub unknown: bool,
}

/// A loaded file: its debug info and where its segments are.
struct Object {
    /// The file's bytes, to check the instruction before a return address.
    data: Vec<u8>,
    loader: addr2line::Loader,
    segments: Vec<LoadSegment>,
    /// Where each function starting at an address is declared, read from
    /// the DWARF on first use.
    declarations: Option<HashMap<u64, String>>,
}

/// Resolves addresses, caching files and answers.
#[derive(Default)]
pub struct Symbolizer {
    objects: HashMap<PathBuf, Option<Object>>,
    cache: HashMap<(PathBuf, u64, bool, bool), Resolved>,
}

impl Symbolizer {
    /// An empty symbolizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves the runtime address `addr` in `path`, mapped at `start`
    /// from file offset `pgoff`. For a return address (`caller` true) the
    /// call instruction before it is looked up: a call that is the last
    /// instruction of a function returns past its end. With `inline`, the
    /// functions inlined at that point are frames too.
    pub fn resolve(
        &mut self,
        path: &Path,
        (start, pgoff): (u64, u64),
        addr: u64,
        caller: bool,
        inline: bool,
    ) -> Resolved {
        let file_offset = addr.wrapping_sub(start).wrapping_add(pgoff);
        let key = (path.to_owned(), file_offset, caller, inline);
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let object = self
            .objects
            .entry(path.to_owned())
            .or_insert_with(|| load(path));
        let resolved = object
            .as_ref()
            .and_then(|o| {
                let vaddr = segment_vaddr(&o.segments, file_offset)?;
                lookup(o, vaddr.checked_sub(u64::from(caller))?, inline)
            })
            .unwrap_or_else(|| Resolved {
                frames: vec![Frame {
                    function: format!("[{}+{file_offset:#x}]", file_name(path)),
                    location: None,
                    inlined: false,
                }],
                unknown: true,
            });
        self.cache.insert(key, resolved.clone());
        resolved
    }

    /// Whether the runtime address `addr` of `path` (mapped at `start`
    /// from file offset `pgoff`) follows a call instruction, as every
    /// return address does: a frame-pointer walk through code built
    /// without frame pointers reads other data as return addresses, and
    /// those almost never follow a call. `None` when the file cannot be
    /// read.
    pub fn follows_call(
        &mut self,
        path: &Path,
        (start, pgoff): (u64, u64),
        addr: u64,
    ) -> Option<bool> {
        let file_offset = addr.wrapping_sub(start).wrapping_add(pgoff);
        let object = self
            .objects
            .entry(path.to_owned())
            .or_insert_with(|| load(path))
            .as_ref()?;
        let end = usize::try_from(file_offset).ok()?;
        Some(ends_with_call(object.data.get(..end)?))
    }

    /// The source location (`file:line`) of the ELF virtual address
    /// `vaddr` of `path`, if its line tables have it.
    pub fn location(&mut self, path: &Path, vaddr: u64) -> Option<String> {
        let object = self
            .objects
            .entry(path.to_owned())
            .or_insert_with(|| load(path))
            .as_ref()?;
        let location = object.loader.find_location(vaddr).ok()??;
        Some(format_location(location.file?, location.line))
    }

    /// Where the function that starts at the ELF virtual address `vaddr`
    /// of `path` is defined (`file:line`, from its DWARF `DW_AT_decl_file`
    /// and `DW_AT_decl_line`), else the location of its first instruction
    /// ([`Self::location`]).
    pub fn definition(&mut self, path: &Path, vaddr: u64) -> Option<String> {
        let object = self
            .objects
            .entry(path.to_owned())
            .or_insert_with(|| load(path))
            .as_mut()?;
        let declarations = object
            .declarations
            .get_or_insert_with(|| declarations(&object.data).unwrap_or_default());
        match declarations.get(&vaddr) {
            Some(declared) => Some(declared.clone()),
            None => self.location(path, vaddr),
        }
    }
}

fn load(path: &Path) -> Option<Object> {
    let data = std::fs::read(path).ok()?;
    let segments = load_segments(&object::File::parse(&*data).ok()?);
    let loader = addr2line::Loader::new(path).ok()?;
    Some(Object {
        data,
        loader,
        segments,
        declarations: None,
    })
}

/// Where each function of the ELF file `data` is declared, keyed by its
/// entry address (`DW_AT_low_pc`): `file:line` from `DW_AT_decl_file` and
/// `DW_AT_decl_line`, followed through `DW_AT_specification` and
/// `DW_AT_abstract_origin` (C++ member functions, out-of-line copies of
/// inline functions). The file is named as addr2line names it: the
/// compilation directory, the include directory, the file name.
fn declarations(data: &[u8]) -> Option<HashMap<u64, String>> {
    use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
    use object::{Object as _, ObjectSection as _};

    let file = object::File::parse(data).ok()?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<_, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|section| section.uncompressed_data().ok())
            .unwrap_or_default())
    })
    .ok()?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    let mut found = HashMap::new();
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let unit = unit.unit_ref(&dwarf);
        let mut entries = unit.entries();
        while let Ok(Some(entry)) = entries.next_dfs() {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Some(low_pc) = entry
                .attr_value(gimli::DW_AT_low_pc)
                .and_then(|v| unit.attr_address(v).ok().flatten())
                .filter(|&pc| pc != 0)
            else {
                continue;
            };
            // The declaration attributes, each the first found here or on
            // the entries this one completes (a definition out of its
            // class carries only those that differ from the declaration;
            // within the unit, at most a few hops).
            let mut die = entry.clone();
            let (mut file, mut line) = (None, None);
            for _ in 0..4 {
                if file.is_none() {
                    if let Some(AttributeValue::FileIndex(index)) =
                        die.attr_value(gimli::DW_AT_decl_file)
                    {
                        file = Some(index);
                    }
                }
                if line.is_none() {
                    line = die
                        .attr_value(gimli::DW_AT_decl_line)
                        .and_then(|v| v.udata_value());
                }
                if file.is_some() && line.is_some() {
                    break;
                }
                let next = [gimli::DW_AT_specification, gimli::DW_AT_abstract_origin]
                    .into_iter()
                    .find_map(|at| match die.attr_value(at) {
                        Some(AttributeValue::UnitRef(offset)) => unit.entry(offset).ok(),
                        _ => None,
                    });
                match next {
                    Some(next) => die = next,
                    None => break,
                }
            }
            let declared = file.zip(line);
            let Some((index, line)) = declared else {
                continue;
            };
            if let Some(path) = file_path(unit, index) {
                found.entry(low_pc).or_insert(format!("{path}:{line}"));
            }
        }
    }
    Some(found)
}

/// The path of file `index` of `unit`'s line program header.
fn file_path<R: gimli::Reader>(unit: gimli::UnitRef<'_, R>, index: u64) -> Option<String> {
    let header = unit.line_program.as_ref()?.header();
    let entry = header.file(index)?;
    let name = unit.attr_string(entry.path_name()).ok()?;
    let name = name.to_string_lossy().ok()?.into_owned();
    if name.starts_with('/') {
        return Some(name);
    }
    let mut path = PathBuf::new();
    if let Some(dir) = &unit.comp_dir {
        path.push(dir.to_string_lossy().ok()?.as_ref());
    }
    // Directory 0 is the compilation directory (DWARF 5) or none (DWARF 4).
    if entry.directory_index() != 0 {
        if let Some(dir) = entry.directory(header) {
            let dir = unit.attr_string(dir).ok()?;
            path.push(dir.to_string_lossy().ok()?.as_ref());
        }
    }
    path.push(name);
    Some(path.display().to_string())
}

/// Whether `code` ends with a call instruction: a direct `call rel32` (5
/// bytes) or an indirect `call` through a register or memory (2 to 7
/// bytes), decoded as x86-64.
fn ends_with_call(code: &[u8]) -> bool {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    (2..=7).any(|len| {
        let Some(start) = code.len().checked_sub(len) else {
            return false;
        };
        let mut decoder = Decoder::new(64, &code[start..], DecoderOptions::NONE);
        let insn = decoder.decode();
        !insn.is_invalid() && insn.len() == len && insn.mnemonic() == Mnemonic::Call
    })
}

/// The frames at `vaddr`, from DWARF, else from the symbol table.
fn lookup(object: &Object, vaddr: u64, inline: bool) -> Option<Resolved> {
    let mut frames = Vec::new();
    if let Ok(mut iter) = object.loader.find_frames(vaddr) {
        while let Ok(Some(frame)) = iter.next() {
            let Some(function) = frame.function.as_ref() else {
                continue;
            };
            let Ok(name) = function.demangle() else {
                continue;
            };
            let location = frame
                .location
                .as_ref()
                .and_then(|l| Some(format_location(l.file?, l.line)));
            frames.push(Frame {
                function: name.into_owned(),
                location,
                inlined: true,
            });
        }
    }
    if frames.is_empty() {
        let symbol = object.loader.find_symbol(vaddr)?;
        frames.push(Frame {
            function: crate::symbols::demangle::demangle(symbol),
            location: None,
            inlined: false,
        });
    }
    // addr2line lists the innermost (inlined) frame first.
    frames.reverse();
    frames[0].inlined = false;
    if !inline {
        frames.truncate(1);
    }
    Some(Resolved {
        frames,
        unknown: false,
    })
}

fn format_location(file: &str, line: Option<u32>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
