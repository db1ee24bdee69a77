//! The callers of each probed call, from the call chains (`--callchain
//! fp`) or user stacks (`--callchain dwarf`) a trace holds, resolved to
//! function names.
//!
//! A first pass over the trace collects the mappings (`Mmap` events) of
//! every process (a process forked without exec inherits its parent's),
//! and the chain of every entry sample: as recorded (`Callchain` events)
//! or unwound from its stack copy with the files' CFI (`UserStack`
//! events, [`crate::unwind`]; a stack unwound short of the outermost
//! frame is marked cut). Each distinct return address is then
//! resolved once, in the mapping that held it when the chain was taken,
//! with [`crate::symbolize`]: one symbolizer per file, the files in
//! parallel on rayon's pool. A chain is cut at the first address no
//! executable mapping holds (a frame-pointer walk through code built
//! without frame pointers ends in garbage): the frames outside it are
//! dropped, the chain is marked, and counted in [`ChainStats::cut`]; a
//! wrong frame is never shown.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::symbolize::Symbolizer;
use crate::trace::{Chunk, Event, TraceError, TraceReader};
use crate::unwind::{self, AddressSpace, Regs, UnwindEnd, Unwinder};

/// The frame put above a chain that was cut short.
pub const CUT_FRAME: &str = "[callers unknown]";

/// How many chains there were and how many were cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// Entry samples with a chain.
    pub chains: u64,
    /// Chains cut at an address outside every mapping.
    pub cut: u64,
    /// Distinct return addresses that resolved to no symbol (shown as
    /// `[file+0xoffset]`).
    pub unknown_frames: u64,
}

/// The resolved caller chains of a trace.
#[derive(Debug, Default)]
pub struct Chains {
    /// (tid, entry time) to an index into `stacks`.
    by_call: HashMap<(u32, u64), u32>,
    /// Each distinct chain's frames, outermost first, without the probed
    /// function itself.
    stacks: Vec<Vec<String>>,
    /// Counts.
    pub stats: ChainStats,
}

impl Chains {
    /// The callers of the call of thread `tid` entered at `time`,
    /// outermost first.
    pub fn callers(&self, tid: u32, time: u64) -> Option<(u32, &[String])> {
        let &id = self.by_call.get(&(tid, time))?;
        Some((id, &self.stacks[id as usize]))
    }

    /// The frames of chain `id` (from [`Chains::callers`]).
    pub fn stack(&self, id: u32) -> &[String] {
        &self.stacks[id as usize]
    }

    /// Whether the trace held no chain.
    pub fn is_empty(&self) -> bool {
        self.by_call.is_empty()
    }
}

/// A file mapping of a process, from the time it was made.
#[derive(Debug, Clone)]
struct Mapping {
    time: u64,
    start: u64,
    end: u64,
    pgoff: u64,
    path: PathBuf,
}

/// Reads the chains of `reader`'s trace and resolves them; with `inline`,
/// inlined functions are frames of their own; with `salvage`, a corrupt
/// chunk ends the trace instead of failing.
///
/// # Errors
///
/// When the trace cannot be read.
pub fn collect<R: Read>(
    mut reader: TraceReader<R>,
    inline: bool,
    salvage: bool,
) -> Result<Chains, TraceError> {
    let mut maps: HashMap<u32, Vec<Mapping>> = HashMap::new();
    let mut forks: Vec<(u64, u32, u32)> = Vec::new();
    let mut raw: Vec<RawChain> = Vec::new();
    let mut stacks: Vec<Event> = Vec::new();
    loop {
        let chunk = match reader.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(TraceError::CorruptChunk { .. }) if salvage => break,
            Err(e) => return Err(e),
        };
        let Chunk::Events(events) = chunk else {
            continue;
        };
        for event in events {
            match event {
                Event::Mmap {
                    time,
                    pid,
                    start,
                    len,
                    pgoff,
                    path,
                    ..
                } if path.starts_with('/') => maps.entry(pid).or_default().push(Mapping {
                    time,
                    start,
                    end: start.saturating_add(len),
                    pgoff,
                    path: PathBuf::from(path),
                }),
                Event::Fork {
                    time, pid, ppid, ..
                } if pid != ppid => forks.push((time, pid, ppid)),
                Event::Callchain {
                    time,
                    pid,
                    tid,
                    ips,
                } => raw.push(RawChain {
                    pid,
                    tid,
                    time,
                    ips,
                    cut: false,
                }),
                e @ Event::UserStack { .. } => stacks.push(e),
                _ => {}
            }
        }
    }
    inherit_mappings(&mut maps, &mut forks);
    raw.extend(unwind_stacks(&maps, stacks));
    // Every distinct return address, in the mapping that held it.
    let mapping_of = |pid: u32, time: u64, ip: u64| -> Option<&Mapping> {
        let list = maps.get(&pid)?;
        list.iter()
            .rev()
            .find(|m| m.time <= time && (m.start..m.end).contains(&ip))
            .or_else(|| list.iter().rev().find(|m| (m.start..m.end).contains(&ip)))
    };
    let mut by_file: HashMap<&PathBuf, Vec<Site>> = HashMap::new();
    for c in &raw {
        for &ip in c.ips.iter().skip(1) {
            if let Some(m) = mapping_of(c.pid, c.time, ip) {
                by_file
                    .entry(&m.path)
                    .or_default()
                    .push((m.start, m.pgoff, ip));
            }
        }
    }
    // One symbolizer per file, the files in parallel.
    let resolved: HashMap<(&PathBuf, Site), Option<Vec<String>>> = by_file
        .into_par_iter()
        .flat_map_iter(|(path, mut sites)| {
            sites.sort_unstable();
            sites.dedup();
            let mut symbolizer = Symbolizer::new();
            sites
                .into_iter()
                .map(|site| ((path, site), resolve(&mut symbolizer, path, site, inline)))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut stats = ChainStats {
        unknown_frames: resolved
            .values()
            .filter(|r| r.as_ref().is_some_and(|f| f[0].starts_with('[')))
            .count() as u64,
        ..ChainStats::default()
    };
    let mut chains = Chains::default();
    let mut ids: HashMap<Vec<String>, u32> = HashMap::new();
    for c in &raw {
        stats.chains += 1;
        let mut inner_first = Vec::new();
        let mut cut = c.cut;
        for &ip in c.ips.iter().skip(1) {
            let frames = mapping_of(c.pid, c.time, ip)
                .and_then(|m| resolved.get(&(&m.path, (m.start, m.pgoff, ip)))?.as_ref());
            match frames {
                Some(frames) => inner_first.extend(frames.iter().rev().cloned()),
                None => {
                    cut = true;
                    break;
                }
            }
        }
        if cut {
            stats.cut += 1;
            inner_first.push(CUT_FRAME.to_owned());
        }
        inner_first.reverse();
        let next = ids.len() as u32;
        let id = *ids.entry(inner_first).or_insert(next);
        chains.by_call.insert((c.tid, c.time), id);
    }
    chains.stacks = vec![Vec::new(); ids.len()];
    for (stack, id) in ids {
        chains.stacks[id as usize] = stack;
    }
    chains.stats = stats;
    Ok(chains)
}

/// The chain of one entry sample, before it is resolved.
struct RawChain {
    pid: u32,
    tid: u32,
    time: u64,
    /// The probed function's address, then the return addresses.
    ips: Vec<u64>,
    /// Whether unwinding stopped before the outermost frame.
    cut: bool,
}

/// The deepest chain unwound from a stack copy.
const MAX_FRAMES: usize = 256;

/// A process forked without exec keeps its parent's mappings, which the
/// kernel does not report again: copy them, as of the fork, in fork order.
fn inherit_mappings(maps: &mut HashMap<u32, Vec<Mapping>>, forks: &mut [(u64, u32, u32)]) {
    forks.sort_unstable();
    for &(time, pid, ppid) in forks.iter() {
        let inherited: Vec<Mapping> = maps
            .get(&ppid)
            .into_iter()
            .flatten()
            .filter(|m| m.time <= time)
            .map(|m| Mapping { time, ..m.clone() })
            .collect();
        let list = maps.entry(pid).or_default();
        list.extend(inherited);
        list.sort_by_key(|m| m.time);
    }
}

/// The chains of the `UserStack` events (`--callchain dwarf`), unwound
/// with the CFI of the files each process had mapped; a chain that stops
/// before the outermost frame is marked cut.
fn unwind_stacks(maps: &HashMap<u32, Vec<Mapping>>, stacks: Vec<Event>) -> Vec<RawChain> {
    let spaces: HashMap<u32, AddressSpace> = maps
        .iter()
        .map(|(&pid, list)| {
            let space = list
                .iter()
                .map(|m| unwind::Mapping {
                    start: m.start,
                    end: m.end,
                    pgoff: m.pgoff,
                    path: m.path.clone(),
                })
                .collect();
            (pid, space)
        })
        .collect();
    let empty = AddressSpace::new();
    let mut unwinder = Unwinder::new();
    stacks
        .into_iter()
        .filter_map(|e| {
            let Event::UserStack {
                time,
                pid,
                tid,
                ip,
                sp,
                bp,
                stack,
            } = e
            else {
                return None;
            };
            let space = spaces.get(&pid).unwrap_or(&empty);
            let unwound = unwinder.unwind(space, &Regs { ip, sp, bp }, &stack, MAX_FRAMES);
            Some(RawChain {
                pid,
                tid,
                time,
                ips: unwound.frames,
                cut: unwound.end != UnwindEnd::Complete,
            })
        })
        .collect()
}

/// A return address in a mapping: (mapping start, file offset of the
/// start, address).
type Site = (u64, u64, u64);

/// The frames (outermost first) of a return address, `None` when it cannot
/// be one: not right after a call instruction (a frame-pointer walk
/// through code without frame pointers).
fn resolve(
    symbolizer: &mut Symbolizer,
    path: &Path,
    (start, pgoff, ip): Site,
    inline: bool,
) -> Option<Vec<String>> {
    if symbolizer.follows_call(path, (start, pgoff), ip) == Some(false) {
        return None;
    }
    let resolved = symbolizer.resolve(path, (start, pgoff), ip, true, inline);
    Some(resolved.frames.into_iter().map(|f| f.function).collect())
}
