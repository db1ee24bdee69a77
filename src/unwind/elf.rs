//! The call frame information of one ELF file: its `PT_LOAD` segments (to
//! turn file offsets into ELF virtual addresses), its `.eh_frame` (or
//! `.debug_frame`) and an index from address to FDE.

use std::path::Path;

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EhFrameHdr, EndianSlice, LittleEndian,
    Register, RegisterRule, UnwindContext, UnwindExpression, UnwindSection,
};
use object::{Architecture, Object, ObjectSection, ObjectSegment};

use super::maps::Mapping;
use super::UnwindError;

/// The reader every section is parsed with.
type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// DWARF register numbers of x86-64.
pub(crate) const RBP: Register = Register(6);
pub(crate) const RSP: Register = Register(7);
pub(crate) const RIP: Register = Register(16);

/// One `PT_LOAD` segment: the file bytes `[offset, offset + filesz)` are
/// loaded at ELF virtual address `vaddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadSegment {
    pub(crate) offset: u64,
    pub(crate) vaddr: u64,
    pub(crate) filesz: u64,
}

/// The ELF virtual address of the runtime address `addr` of `map`:
/// `addr - start + pgoff` is the file offset, and the `PT_LOAD` segment
/// holding that offset gives `vaddr = offset - (p_offset - p_vaddr)`.
/// `None` when no segment holds the offset.
pub(crate) fn elf_vaddr(map: &Mapping, segments: &[LoadSegment], addr: u64) -> Option<u64> {
    segment_vaddr(segments, map.file_offset(addr))
}

/// The ELF virtual address of file offset `offset`, through the
/// `PT_LOAD` segment that holds it.
pub(crate) fn segment_vaddr(segments: &[LoadSegment], offset: u64) -> Option<u64> {
    let seg = segments
        .iter()
        .find(|s| s.offset <= offset && offset - s.offset < s.filesz)?;
    Some(offset - seg.offset + seg.vaddr)
}

/// The `PT_LOAD` segments of an ELF file.
pub(crate) fn load_segments(file: &object::File<'_>) -> Vec<LoadSegment> {
    file.segments()
        .map(|seg| {
            let (offset, filesz) = seg.file_range();
            LoadSegment {
                offset,
                vaddr: seg.address(),
                filesz,
            }
        })
        .collect()
}

/// The address range of one FDE and its offset in its section.
#[derive(Debug, Clone, Copy)]
struct FdeRange {
    start: u64,
    end: u64,
    offset: usize,
}

/// How an address is turned into an FDE.
#[derive(Debug)]
enum Index {
    /// `.eh_frame_hdr`'s binary search table (the section's bytes).
    EhFrameHdr(Vec<u8>),
    /// FDE ranges sorted by start, built once.
    Sorted(Vec<FdeRange>),
}

/// Which section the CFI comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EhFrame,
    DebugFrame,
}

/// The rules of the CFI row that covers one address, copied out of gimli's
/// unwind context.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) cfa: CfaRule<usize>,
    /// `None` when the row says nothing about the return address.
    pub(crate) ra: Option<RegisterRule<usize>>,
    /// `None` when the row says nothing about rbp (it keeps its value).
    pub(crate) bp: Option<RegisterRule<usize>>,
    /// The FDE describes a signal trampoline (`S` augmentation).
    pub(crate) signal_frame: bool,
    /// Which of the file's tables the rules come from.
    pub(crate) table: u8,
}

/// Why no rules came out of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// No FDE covers the address.
    NoCfi,
    /// An FDE covers it but its CFI does not parse.
    Malformed,
}

/// One CFI section with its FDE index.
#[derive(Debug)]
struct Table {
    kind: Kind,
    section: Vec<u8>,
    bases: BaseAddresses,
    index: Index,
}

/// The parsed call frame information of one ELF file.
#[derive(Debug)]
pub(crate) struct ElfCfi {
    segments: Vec<LoadSegment>,
    /// `.eh_frame`, then `.debug_frame`, those that have an FDE.
    tables: Vec<Table>,
}

impl ElfCfi {
    /// Parses the ELF file `data` (read from `path`, named in errors) and
    /// indexes its CFI.
    pub(crate) fn parse(path: &Path, data: &[u8]) -> Result<Self, UnwindError> {
        let file = object::File::parse(data).map_err(|source| UnwindError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if file.architecture() != Architecture::X86_64 || !file.is_little_endian() {
            return Err(UnwindError::Architecture {
                path: path.to_path_buf(),
                arch: format!("{:?}", file.architecture()),
            });
        }
        let segments = load_segments(&file);
        let tables: Vec<Table> = [eh_frame(&file), debug_frame(&file)]
            .into_iter()
            .flatten()
            .collect();
        if tables.is_empty() {
            return Err(UnwindError::NoCfi {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { segments, tables })
    }

    /// The ELF virtual address of runtime address `addr` of `map` (a
    /// mapping of this file).
    pub(crate) fn vaddr(&self, map: &Mapping, addr: u64) -> Option<u64> {
        elf_vaddr(map, &self.segments, addr)
    }

    /// The rules of the row covering the ELF virtual address `vaddr`, from
    /// `.eh_frame` or else `.debug_frame`.
    pub(crate) fn rules(
        &self,
        ctx: &mut UnwindContext<usize>,
        vaddr: u64,
    ) -> Result<Rules, LookupError> {
        let mut result = Err(LookupError::NoCfi);
        for (table, index) in self.tables.iter().zip(0..) {
            result = table.rules(ctx, vaddr).map(|rules| Rules {
                table: index,
                ..rules
            });
            if !matches!(result, Err(LookupError::NoCfi)) {
                break;
            }
        }
        result
    }

    /// The expression `expr` of `rules` (from [`ElfCfi::rules`]).
    pub(crate) fn expression(
        &self,
        rules: &Rules,
        expr: &UnwindExpression<usize>,
    ) -> Option<gimli::Expression<Reader<'_>>> {
        let table = self.tables.get(usize::from(rules.table))?;
        match table.kind {
            Kind::EhFrame => expr.get(&table.eh_frame()).ok(),
            Kind::DebugFrame => expr.get(&debug_frame_section(&table.section)).ok(),
        }
    }
}

impl Table {
    /// Whether the index holds at least one FDE (a usable `.eh_frame_hdr`
    /// table has one).
    fn has_fde(&self) -> bool {
        match &self.index {
            Index::Sorted(ranges) => !ranges.is_empty(),
            Index::EhFrameHdr(_) => true,
        }
    }

    /// The rules of the row covering `vaddr`.
    fn rules(&self, ctx: &mut UnwindContext<usize>, vaddr: u64) -> Result<Rules, LookupError> {
        let offset = self.fde_offset(vaddr)?;
        match self.kind {
            Kind::EhFrame => row_rules(&self.eh_frame(), &self.bases, ctx, offset, vaddr),
            Kind::DebugFrame => row_rules(
                &debug_frame_section(&self.section),
                &self.bases,
                ctx,
                offset,
                vaddr,
            ),
        }
    }

    /// The offset of the FDE that may cover `vaddr` (the caller checks
    /// that it does).
    fn fde_offset(&self, vaddr: u64) -> Result<usize, LookupError> {
        match &self.index {
            Index::Sorted(ranges) => {
                let after = ranges.partition_point(|r| r.start <= vaddr);
                let range = ranges
                    .get(after.checked_sub(1).ok_or(LookupError::NoCfi)?)
                    .filter(|r| vaddr < r.end)
                    .ok_or(LookupError::NoCfi)?;
                Ok(range.offset)
            }
            Index::EhFrameHdr(hdr) => {
                let parsed = EhFrameHdr::new(hdr, LittleEndian)
                    .parse(&self.bases, 8)
                    .map_err(|_| LookupError::Malformed)?;
                let table = parsed.table().ok_or(LookupError::Malformed)?;
                let ptr = table
                    .lookup(vaddr, &self.bases)
                    .map_err(|_| LookupError::NoCfi)?;
                let offset = table
                    .pointer_to_offset(ptr)
                    .map_err(|_| LookupError::Malformed)?;
                Ok(offset.0)
            }
        }
    }

    fn eh_frame(&self) -> EhFrame<Reader<'_>> {
        EhFrame::new(&self.section, LittleEndian)
    }
}

/// The CFI of `.eh_frame`, if it has any FDE.
fn eh_frame(file: &object::File) -> Option<Table> {
    let (section, addr) = section_bytes(file, ".eh_frame")?;
    let mut bases = BaseAddresses::default().set_eh_frame(addr);
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    if let Some(got) = file.section_by_name(".got") {
        bases = bases.set_got(got.address());
    }
    let hdr = section_bytes(file, ".eh_frame_hdr")
        .map(|(hdr, hdr_addr)| (hdr, bases.clone().set_eh_frame_hdr(hdr_addr)))
        .filter(|(hdr, bases)| hdr_table_is_usable(hdr, bases));
    let (bases, index) = match hdr {
        Some((hdr, bases)) => (bases, Index::EhFrameHdr(hdr)),
        None => {
            let ranges = fde_ranges(&EhFrame::new(&section, LittleEndian), &bases);
            (bases, Index::Sorted(ranges))
        }
    };
    Some(Table {
        kind: Kind::EhFrame,
        section,
        bases,
        index,
    })
    .filter(Table::has_fde)
}

/// The CFI of `.debug_frame` (for code built without unwind tables), if
/// it has any FDE.
fn debug_frame(file: &object::File) -> Option<Table> {
    let (section, _) = section_bytes(file, ".debug_frame")?;
    let bases = BaseAddresses::default();
    let ranges = fde_ranges(&debug_frame_section(&section), &bases);
    Some(Table {
        kind: Kind::DebugFrame,
        section,
        bases,
        index: Index::Sorted(ranges),
    })
    .filter(Table::has_fde)
}

/// `.debug_frame` of an x86-64 file.
fn debug_frame_section(section: &[u8]) -> DebugFrame<Reader<'_>> {
    let mut frame = DebugFrame::new(section, LittleEndian);
    frame.set_address_size(8);
    frame
}

/// The bytes and address of the section `name`, if present with contents.
fn section_bytes(file: &object::File, name: &str) -> Option<(Vec<u8>, u64)> {
    let section = file.section_by_name(name)?;
    let data = section.data().ok().filter(|d| !d.is_empty())?;
    Some((data.to_vec(), section.address()))
}

/// Whether `.eh_frame_hdr` has a binary search table gimli can search.
fn hdr_table_is_usable(hdr: &[u8], bases: &BaseAddresses) -> bool {
    let Ok(parsed) = EhFrameHdr::new(hdr, LittleEndian).parse(bases, 8) else {
        return false;
    };
    let Some(table) = parsed.table() else {
        return false;
    };
    matches!(table.iter(bases).next(), Ok(Some(_))) && table.lookup(0, bases).is_ok()
}

/// The ranges of every FDE of `section` that parses, sorted by start.
fn fde_ranges<'a, S>(section: &S, bases: &BaseAddresses) -> Vec<FdeRange>
where
    S: UnwindSection<Reader<'a>>,
{
    let mut ranges = Vec::new();
    let mut entries = section.entries(bases);
    while let Ok(Some(entry)) = entries.next() {
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        if let Ok(fde) = partial.parse(S::cie_from_offset) {
            if fde.len() > 0 {
                ranges.push(FdeRange {
                    start: fde.initial_address(),
                    end: fde.end_address(),
                    offset: fde.offset(),
                });
            }
        }
    }
    ranges.sort_by_key(|r| r.start);
    ranges
}

/// The rules for `vaddr` from the FDE at `offset` of `section`.
fn row_rules<'a, S>(
    section: &S,
    bases: &BaseAddresses,
    ctx: &mut UnwindContext<usize>,
    offset: usize,
    vaddr: u64,
) -> Result<Rules, LookupError>
where
    S: UnwindSection<Reader<'a>>,
{
    let fde = section
        .fde_from_offset(bases, S::Offset::from(offset), S::cie_from_offset)
        .map_err(|_| LookupError::Malformed)?;
    if !fde.contains(vaddr) {
        return Err(LookupError::NoCfi);
    }
    let row = fde
        .unwind_info_for_address(section, bases, ctx, vaddr)
        .map_err(|err| match err {
            gimli::Error::NoUnwindInfoForAddress => LookupError::NoCfi,
            _ => LookupError::Malformed,
        })?;
    Ok(Rules {
        cfa: row.cfa().clone(),
        ra: row.register(RIP),
        bp: row.register(RBP),
        signal_frame: fde.is_signal_trampoline(),
        table: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn map(start: u64, end: u64, pgoff: u64) -> Mapping {
        Mapping {
            start,
            end,
            pgoff,
            path: PathBuf::from("/f"),
        }
    }

    fn seg(offset: u64, vaddr: u64, filesz: u64) -> LoadSegment {
        LoadSegment {
            offset,
            vaddr,
            filesz,
        }
    }

    #[test]
    fn converts_pie_addresses() {
        // gcc -pie: text at offset 0x1000, vaddr 0x1000, mapped at a random base.
        let segments = [
            seg(0, 0, 0x628),
            seg(0x1000, 0x1000, 0x2e9),
            seg(0x2db8, 0x3db8, 0x260),
        ];
        let text = map(0x55b1_46ee_5000, 0x55b1_46ee_6000, 0x1000);
        assert_eq!(elf_vaddr(&text, &segments, 0x55b1_46ee_5290), Some(0x1290));
        let data = map(0x55b1_46ee_8000, 0x55b1_46ee_9000, 0x2000);
        assert_eq!(elf_vaddr(&data, &segments, 0x55b1_46ee_8e00), Some(0x3e00));
        // Past the end of the text segment's file bytes: no segment.
        assert_eq!(elf_vaddr(&text, &segments, 0x55b1_46ee_5400), None);
    }

    #[test]
    fn converts_non_pie_addresses() {
        // gcc -no-pie: text at offset 0x1000, vaddr 0x401000, mapped there.
        let segments = [seg(0, 0x400000, 0x4f8), seg(0x1000, 0x401000, 0x1d5)];
        let text = map(0x401000, 0x402000, 0x1000);
        assert_eq!(elf_vaddr(&text, &segments, 0x401136), Some(0x401136));
    }

    #[test]
    fn converts_shared_library_addresses_with_offset_unequal_to_vaddr() {
        // lld-style layout: text at offset 0x5a0 but vaddr 0x15a0; the
        // kernel maps the page holding offset 0x5a0 (pgoff 0) at base+0x1000.
        let segments = [seg(0, 0, 0x5a0), seg(0x5a0, 0x15a0, 0x200)];
        let text = map(0x7f00_0000_1000, 0x7f00_0000_2000, 0);
        assert_eq!(elf_vaddr(&text, &segments, 0x7f00_0000_1600), Some(0x1600));
        // Offset 0x100 lies in the first segment: vaddr 0x100.
        assert_eq!(elf_vaddr(&text, &segments, 0x7f00_0000_1100), Some(0x100));
    }

    #[test]
    fn parsing_a_non_elf_file_names_it() {
        let err = ElfCfi::parse(Path::new("/tmp/notes.txt"), b"hello").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse /tmp/notes.txt as an ELF file: Could not read file magic"
        );
    }
}
