//! The callers of a sampled user function, from a copy of its stack and
//! registers, through the call frame information (CFI) of each mapped ELF
//! file — for code built without frame pointers.
//!
//! # Method
//!
//! A uprobe sample gives the user registers (`PERF_SAMPLE_REGS_USER`: ip, sp
//! and bp are enough here) and `size` bytes of the user stack starting at sp
//! (`PERF_SAMPLE_STACK_USER`). [`Unwinder::unwind`] walks it frame by frame:
//!
//! 1. The [`AddressSpace`] (built from `PERF_RECORD_MMAP2` events or from
//!    `/proc/PID/maps` with [`parse_proc_maps`]) gives the file mapped at the
//!    frame's address; the file's `PT_LOAD` segments turn the runtime address
//!    into the ELF's own virtual address
//!    (`addr - start + pgoff - (p_offset - p_vaddr)`).
//! 2. The file's `.eh_frame` (found through `.eh_frame_hdr`'s binary search
//!    table, or a sorted table of FDE ranges built once; `.debug_frame` for
//!    what `.eh_frame` does not cover) gives the CFI row covering that
//!    address. For every frame but the first the address looked up is the
//!    return address minus one — the call instruction — since a call may be
//!    the last instruction of its function.
//! 3. The row's rules give the canonical frame address (CFA = rsp or rbp +
//!    offset, or a DWARF expression such as the one of the PLT), the return
//!    address (usually read at CFA − 8) and the caller's rbp; the caller's
//!    rsp is the CFA.
//!
//! Each file is parsed once and cached by path in the [`Unwinder`], and so
//! is each CFI row looked up: a repeated unwind costs a mapping search and
//! two hash look-ups per frame (about 0.5 µs for 5 frames, against 2 µs when
//! every row is decoded anew; 1.5 ms for the first, which loads the files).
//! [`frame_pointer_chain`] does the classic rbp walk over the same copy, for
//! comparison.
//!
//! # Limits
//!
//! Never a wrong frame: when a value is missing or a rule is not understood,
//! the walk stops and [`UnwindEnd`] says why.
//!
//! - Only x86-64 ELF files. Registers other than rip, rsp and rbp are not
//!   tracked: a rule that needs one (rare outside hand-written assembly)
//!   ends the walk with [`UnwindEnd::BadRule`].
//! - DWARF expressions are evaluated over rip, rsp, rbp and reads of the
//!   stack copy; that covers the PLT's CFA expression
//!   (`rsp + 8 + ((rip & 15) >= 11) * 8`). Anything else they need ends the
//!   walk with [`UnwindEnd::BadRule`] or [`UnwindEnd::OutsideStack`].
//! - The walk stops at a signal trampoline (`__restore_rt`), since the frame
//!   it interrupted needs registers this unwinder does not track.
//! - Files are read from their path when first needed: a file replaced or
//!   deleted since it was mapped, a `[vdso]` or JIT code has no CFI here
//!   ([`UnwindEnd::NoMapping`] or [`UnwindEnd::NoCfi`]). Separate debug
//!   files (`.gnu_debuglink`) and files without section headers are not
//!   searched.
//! - The stack copy is finite (`PERF_SAMPLE_STACK_USER`'s size): a deep
//!   chain ends with [`UnwindEnd::OutsideStack`].

pub(crate) mod elf;
mod fp;
mod maps;

#[cfg(test)]
mod fixture_tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use gimli::{CfaRule, Register, RegisterRule, UnwindContext, UnwindExpression};

use elf::{ElfCfi, LookupError, Rules, RBP, RIP, RSP};
pub use fp::frame_pointer_chain;
pub use maps::{parse_proc_maps, AddressSpace, Mapping};

/// Errors of loading a file's call frame information.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnwindError {
    /// The file could not be read.
    #[error("failed to read {path}: {source} (is the file still there and readable?)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ELF file `object` can parse.
    #[error("failed to parse {path} as an ELF file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: object::Error,
    },
    /// The file is not an x86-64 ELF file.
    #[error("{path} is a {arch} file: only x86-64 code can be unwound")]
    Architecture {
        /// The file.
        path: PathBuf,
        /// Its architecture.
        arch: String,
    },
    /// The file has no FDE in `.eh_frame` nor in `.debug_frame`.
    #[error("{path} has no call frame information (.eh_frame or .debug_frame): rebuild it with -fasynchronous-unwind-tables or use frame pointers")]
    NoCfi {
        /// The file.
        path: PathBuf,
    },
}

/// The user registers of a sample (`PERF_SAMPLE_REGS_USER`: perf's x86-64
/// registers IP = 8, SP = 7, BP = 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    /// The instruction pointer.
    pub ip: u64,
    /// The stack pointer: the address of the first byte of the stack copy.
    pub sp: u64,
    /// The frame pointer register.
    pub bp: u64,
}

/// The result of an unwind: the frames found and why the walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwound {
    /// The sampled ip first, then each return address, innermost first.
    pub frames: Vec<u64>,
    /// Why there is no further frame.
    pub end: UnwindEnd,
}

/// Why an unwind ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnwindEnd {
    /// The chain is whole: the last frame's CFI says its return address is
    /// undefined (as `_start`'s does), or the next address is 0.
    Complete,
    /// No mapping holds this frame address.
    NoMapping(u64),
    /// The file mapped at this frame address has no CFI covering it (or
    /// could not be loaded; see [`Unwinder::load`]).
    NoCfi(u64),
    /// A value was needed at this stack address, which the copy does not
    /// hold.
    OutsideStack(u64),
    /// The CFI (or the frame chain) at this frame address is malformed, not
    /// supported, or would not move up the stack.
    BadRule(u64),
    /// The frame limit was reached with frames left.
    MaxFrames,
}

impl Regs {
    /// perf's x86-64 register numbers (`enum perf_event_x86_regs`) of bp,
    /// sp and ip.
    pub const PERF_REGS: [u32; 3] = [6, 7, 8];

    /// The registers of a `PERF_SAMPLE_REGS_USER` record: `values` holds one
    /// value per bit set in `mask` (the `sample_regs_user` asked for), in
    /// increasing bit order. `None` when `mask` lacks bp, sp or ip or
    /// `values` is too short.
    pub fn from_perf(mask: u64, values: &[u64]) -> Option<Self> {
        let value = |reg: u32| {
            if mask & (1 << reg) == 0 {
                return None;
            }
            let below = (mask & ((1 << reg) - 1)).count_ones() as usize;
            values.get(below).copied()
        };
        let [bp, sp, ip] = Self::PERF_REGS.map(value);
        Some(Self {
            ip: ip?,
            sp: sp?,
            bp: bp?,
        })
    }
}

/// How many CFI rows [`Unwinder`] keeps before it starts over.
const ROW_CACHE_CAPACITY: usize = 1 << 16;

/// An unwinder caching, by path, the call frame information of each ELF
/// file it has met, and the CFI rows it has looked up.
#[derive(Debug, Default)]
pub struct Unwinder {
    /// Each file's CFI, or why it has none.
    files: Vec<Result<ElfCfi, UnwindError>>,
    /// Index into `files` by path.
    by_path: HashMap<PathBuf, usize>,
    /// The rules looked up, by (index into `files`, ELF virtual address).
    rows: HashMap<(usize, u64), Result<Rules, LookupError>>,
    ctx: Box<UnwindContext<usize>>,
}

/// The registers known in the frame being unwound.
#[derive(Debug, Clone, Copy)]
struct State {
    ip: u64,
    sp: u64,
    /// `None` once a frame's CFI said rbp is not recoverable.
    bp: Option<u64>,
    /// Whether `ip` is a return address (look up `ip - 1`).
    is_return: bool,
}

impl Unwinder {
    /// An unwinder with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and indexes the CFI of the ELF file at `path`, unless it is
    /// cached; [`Unwinder::unwind`] does this on first use of each file. The
    /// outcome is cached either way: a file that failed is not read again.
    pub fn load(&mut self, path: &Path) -> Result<(), &UnwindError> {
        let index = self.file_index(path);
        self.files[index].as_ref().map(|_| ())
    }

    /// Indexes the CFI of the ELF file `data`, to be used for mappings of
    /// `path` (replacing what was cached for it), without reading the disk.
    pub fn insert(&mut self, path: PathBuf, data: &[u8]) -> Result<(), &UnwindError> {
        let cfi = ElfCfi::parse(&path, data);
        let index = match self.by_path.get(&path) {
            Some(&index) => {
                self.files[index] = cfi;
                self.rows.retain(|&(file, _), _| file != index);
                index
            }
            None => self.push_file(path, cfi),
        };
        self.files[index].as_ref().map(|_| ())
    }

    /// The index into `files` of `path`, read and parsed on first use.
    fn file_index(&mut self, path: &Path) -> usize {
        if let Some(&index) = self.by_path.get(path) {
            return index;
        }
        let cfi = crate::symbols::file::map_regular(path)
            .map_err(|source| UnwindError::Read {
                path: path.to_path_buf(),
                source,
            })
            .and_then(|data| ElfCfi::parse(path, &data));
        self.push_file(path.to_path_buf(), cfi)
    }

    fn push_file(&mut self, path: PathBuf, cfi: Result<ElfCfi, UnwindError>) -> usize {
        self.files.push(cfi);
        self.by_path.insert(path, self.files.len() - 1);
        self.files.len() - 1
    }

    /// The mapping holding runtime address `addr` and the ELF virtual
    /// address of `addr` in its file (loading the file if needed).
    pub fn elf_address<'s>(
        &mut self,
        space: &'s AddressSpace,
        addr: u64,
    ) -> Option<(&'s Mapping, u64)> {
        let map = space.find(addr)?;
        let index = self.file_index(&map.path);
        let cfi = self.files[index].as_ref().ok()?;
        Some((map, cfi.vaddr(map, addr)?))
    }

    /// Unwinds the sample `regs` + `stack` (`stack[0]` is the byte at
    /// `regs.sp`) of a process whose mappings are `space`, into at most
    /// `max_frames` frames.
    pub fn unwind(
        &mut self,
        space: &AddressSpace,
        regs: &Regs,
        stack: &[u8],
        max_frames: usize,
    ) -> Unwound {
        let stack = Stack {
            base: regs.sp,
            bytes: stack,
        };
        let mut frames = Frames::new(max_frames);
        let state = State {
            ip: regs.ip,
            sp: regs.sp,
            bp: Some(regs.bp),
            is_return: false,
        };
        let Err(end) = self.walk(space, &stack, state, &mut frames);
        frames.finish(end)
    }

    /// Pushes frames from `state` on until the walk ends.
    fn walk(
        &mut self,
        space: &AddressSpace,
        stack: &Stack,
        mut state: State,
        frames: &mut Frames,
    ) -> Result<Infallible, UnwindEnd> {
        loop {
            if state.ip == 0 {
                return Err(UnwindEnd::Complete);
            }
            frames.push(state.ip)?;
            state = self.step(space, stack, &state)?;
        }
    }

    /// The caller's registers of the frame `state`.
    fn step(
        &mut self,
        space: &AddressSpace,
        stack: &Stack,
        state: &State,
    ) -> Result<State, UnwindEnd> {
        let lookup = if state.is_return {
            state.ip - 1
        } else {
            state.ip
        };
        let map = space.find(lookup).ok_or(UnwindEnd::NoMapping(state.ip))?;
        let file = self.file_index(&map.path);
        let Ok(cfi) = &self.files[file] else {
            return Err(UnwindEnd::NoCfi(state.ip));
        };
        let vaddr = cfi.vaddr(map, lookup).ok_or(UnwindEnd::NoCfi(state.ip))?;
        let rules = match self.rows.get(&(file, vaddr)) {
            Some(rules) => rules.clone(),
            None => {
                let rules = cfi.rules(&mut self.ctx, vaddr);
                if self.rows.len() == ROW_CACHE_CAPACITY {
                    self.rows.clear();
                }
                self.rows.insert((file, vaddr), rules.clone());
                rules
            }
        };
        let rules = rules.map_err(|err| match err {
            LookupError::NoCfi => UnwindEnd::NoCfi(state.ip),
            LookupError::Malformed => UnwindEnd::BadRule(state.ip),
        })?;
        Frame {
            cfi,
            stack,
            state,
            rules: &rules,
        }
        .caller()
    }
}

/// One frame being unwound with the CFI of its file.
struct Frame<'a> {
    cfi: &'a ElfCfi,
    stack: &'a Stack<'a>,
    state: &'a State,
    rules: &'a Rules,
}

impl Frame<'_> {
    /// The caller's registers, by the frame's rules.
    fn caller(&self) -> Result<State, UnwindEnd> {
        let rules = self.rules;
        let bad = UnwindEnd::BadRule(self.state.ip);
        if rules.signal_frame {
            return Err(bad);
        }
        let cfa = match &rules.cfa {
            CfaRule::RegisterAndOffset { register, offset } => self
                .register(*register)?
                .checked_add_signed(*offset)
                .ok_or(bad)?,
            CfaRule::Expression(expr) => self.evaluate(expr, None)?,
        };
        if cfa <= self.state.sp {
            return Err(bad);
        }
        let ip = match &rules.ra {
            None | Some(RegisterRule::Undefined) => return Err(UnwindEnd::Complete),
            Some(RegisterRule::SameValue) => return Err(bad),
            Some(rule) => self.apply(rule, cfa)?,
        };
        let bp = match &rules.bp {
            None | Some(RegisterRule::SameValue) => self.state.bp,
            Some(RegisterRule::Undefined) => None,
            Some(rule) => Some(self.apply(rule, cfa)?),
        };
        Ok(State {
            ip,
            sp: cfa,
            bp,
            is_return: true,
        })
    }

    /// The caller's value of a register saved by `rule`.
    fn apply(&self, rule: &RegisterRule<usize>, cfa: u64) -> Result<u64, UnwindEnd> {
        let bad = UnwindEnd::BadRule(self.state.ip);
        match rule {
            RegisterRule::Offset(offset) => {
                self.stack.read(cfa.checked_add_signed(*offset).ok_or(bad)?)
            }
            RegisterRule::ValOffset(offset) => cfa.checked_add_signed(*offset).ok_or(bad),
            RegisterRule::Register(register) => self.register(*register),
            RegisterRule::Expression(expr) => self.stack.read(self.evaluate(expr, Some(cfa))?),
            RegisterRule::ValExpression(expr) => self.evaluate(expr, Some(cfa)),
            _ => Err(bad),
        }
    }

    /// The value of a DWARF register in this frame, if tracked.
    fn register(&self, register: Register) -> Result<u64, UnwindEnd> {
        match register {
            RSP => Ok(self.state.sp),
            RBP => self.state.bp.ok_or(UnwindEnd::BadRule(self.state.ip)),
            RIP => Ok(self.state.ip),
            _ => Err(UnwindEnd::BadRule(self.state.ip)),
        }
    }

    /// The value of a DWARF expression (with `initial` pushed first, as for
    /// register rules, which push the CFA).
    fn evaluate(
        &self,
        expr: &UnwindExpression<usize>,
        initial: Option<u64>,
    ) -> Result<u64, UnwindEnd> {
        use gimli::{EvaluationResult, Location, Piece, Value};
        let bad = UnwindEnd::BadRule(self.state.ip);
        let expression = self.cfi.expression(self.rules, expr).ok_or(bad)?;
        let encoding = gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 4,
            address_size: 8,
        };
        let mut eval = expression.evaluation(encoding);
        if let Some(value) = initial {
            eval.set_initial_value(value);
        }
        eval.set_max_iterations(64);
        let mut result = eval.evaluate().map_err(|_| bad)?;
        loop {
            let resumed = match result {
                EvaluationResult::Complete => break,
                EvaluationResult::RequiresRegister { register, .. } => {
                    eval.resume_with_register(Value::Generic(self.register(register)?))
                }
                EvaluationResult::RequiresMemory {
                    address, size: 8, ..
                } => eval.resume_with_memory(Value::Generic(self.stack.read(address)?)),
                _ => return Err(bad),
            };
            result = resumed.map_err(|_| bad)?;
        }
        match eval.as_result() {
            [Piece {
                location: Location::Address { address },
                size_in_bits: None,
                bit_offset: None,
            }] => Ok(*address),
            _ => Err(bad),
        }
    }
}

/// The stack copy of a sample.
struct Stack<'a> {
    /// The address of `bytes[0]`.
    base: u64,
    bytes: &'a [u8],
}

impl Stack<'_> {
    /// The little-endian u64 at `addr`.
    fn read(&self, addr: u64) -> Result<u64, UnwindEnd> {
        addr.checked_sub(self.base)
            .and_then(|offset| usize::try_from(offset).ok())
            .and_then(|offset| self.bytes.get(offset..offset.checked_add(8)?))
            .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
            .ok_or(UnwindEnd::OutsideStack(addr))
    }
}

/// Frames collected up to a limit.
struct Frames {
    frames: Vec<u64>,
    max: usize,
}

impl Frames {
    fn new(max: usize) -> Self {
        Self {
            frames: Vec::with_capacity(max.min(128)),
            max,
        }
    }

    /// Adds a frame, or says the limit is reached.
    fn push(&mut self, addr: u64) -> Result<(), UnwindEnd> {
        if self.frames.len() == self.max {
            return Err(UnwindEnd::MaxFrames);
        }
        self.frames.push(addr);
        Ok(())
    }

    fn finish(self, end: UnwindEnd) -> Unwound {
        Unwound {
            frames: self.frames,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function of this test binary whose CFI at entry is `CFA = rsp + 8`.
    #[inline(never)]
    fn probed() -> u64 {
        std::hint::black_box(7)
    }

    fn own_space() -> AddressSpace {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        parse_proc_maps(&maps).into_iter().collect()
    }

    fn probed_addr() -> u64 {
        assert_eq!(probed(), 7);
        probed as fn() -> u64 as usize as u64
    }

    #[test]
    fn an_empty_stack_copy_ends_outside_the_stack() {
        let regs = Regs {
            ip: probed_addr(),
            sp: 0x7ffd_0000_1000,
            bp: 0,
        };
        let unwound = Unwinder::new().unwind(&own_space(), &regs, &[], 16);
        assert_eq!(unwound.frames, vec![regs.ip]);
        assert_eq!(unwound.end, UnwindEnd::OutsideStack(0x7ffd_0000_1000));
    }

    #[test]
    fn a_return_address_of_zero_completes_the_chain() {
        let regs = Regs {
            ip: probed_addr(),
            sp: 0x7ffd_0000_1000,
            bp: 0,
        };
        let unwound = Unwinder::new().unwind(&own_space(), &regs, &[0; 64], 16);
        assert_eq!(unwound.frames, vec![regs.ip]);
        assert_eq!(unwound.end, UnwindEnd::Complete);
    }

    #[test]
    fn an_unmapped_ip_ends_with_no_mapping() {
        let regs = Regs {
            ip: 0x1234,
            sp: 0x1000,
            bp: 0,
        };
        let unwound = Unwinder::new().unwind(&AddressSpace::new(), &regs, &[0; 64], 16);
        assert_eq!(unwound.frames, vec![0x1234]);
        assert_eq!(unwound.end, UnwindEnd::NoMapping(0x1234));
    }

    #[test]
    fn a_missing_file_ends_with_no_cfi_and_says_why() {
        let space: AddressSpace = [Mapping {
            start: 0x40_0000,
            end: 0x40_1000,
            pgoff: 0,
            path: PathBuf::from("/nonexistent/perfunc-unwind-test"),
        }]
        .into_iter()
        .collect();
        let regs = Regs {
            ip: 0x40_0010,
            sp: 0x1000,
            bp: 0,
        };
        let mut unwinder = Unwinder::new();
        let unwound = unwinder.unwind(&space, &regs, &[0; 64], 16);
        assert_eq!(unwound.frames, vec![0x40_0010]);
        assert_eq!(unwound.end, UnwindEnd::NoCfi(0x40_0010));
        assert_eq!(
            unwinder.load(Path::new("/nonexistent/perfunc-unwind-test")).unwrap_err().to_string(),
            "failed to read /nonexistent/perfunc-unwind-test: No such file or directory (os error 2) \
             (is the file still there and readable?)"
        );
    }

    #[test]
    fn ip_zero_and_a_zero_frame_limit_give_no_frame() {
        let regs = Regs {
            ip: 0,
            sp: 0,
            bp: 0,
        };
        let unwound = Unwinder::new().unwind(&AddressSpace::new(), &regs, &[], 16);
        assert_eq!(
            unwound,
            Unwound {
                frames: vec![],
                end: UnwindEnd::Complete
            }
        );
        let regs = Regs {
            ip: 5,
            sp: 0,
            bp: 0,
        };
        let unwound = Unwinder::new().unwind(&AddressSpace::new(), &regs, &[], 0);
        assert_eq!(
            unwound,
            Unwound {
                frames: vec![],
                end: UnwindEnd::MaxFrames
            }
        );
    }

    #[test]
    fn reads_bp_sp_ip_out_of_a_perf_register_dump() {
        // ax, bp, sp, ip, flags.
        let mask = (1 << 0) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9);
        assert_eq!(
            Regs::from_perf(mask, &[1, 0x7ff0, 0x7fe0, 0x401000, 0x246]),
            Some(Regs {
                ip: 0x401000,
                sp: 0x7fe0,
                bp: 0x7ff0
            })
        );
        assert_eq!(Regs::from_perf(mask & !(1 << 6), &[1, 2, 3, 4]), None);
        assert_eq!(Regs::from_perf(mask, &[1, 2, 3]), None);
    }

    #[test]
    fn the_stack_copy_reads_little_endian_words_inside_it_only() {
        let bytes: Vec<u8> = (1..=16).collect();
        let stack = Stack {
            base: 0x1000,
            bytes: &bytes,
        };
        assert_eq!(stack.read(0x1000), Ok(0x0807_0605_0403_0201));
        assert_eq!(stack.read(0x1008), Ok(0x100f_0e0d_0c0b_0a09));
        assert_eq!(stack.read(0x1009), Err(UnwindEnd::OutsideStack(0x1009)));
        assert_eq!(stack.read(0xfff), Err(UnwindEnd::OutsideStack(0xfff)));
        assert_eq!(stack.read(u64::MAX), Err(UnwindEnd::OutsideStack(u64::MAX)));
    }
}
