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
    /// The chain of the call of thread `tid` entered at `time`: an id for
    /// [`Chains::stack`].
    pub fn chain(&self, tid: u32, time: u64) -> Option<u32> {
        self.by_call.get(&(tid, time)).copied()
    }

    /// The callers of chain `id`, outermost first.
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
/// inlined functions are frames of their own; with `salvage`, damaged
/// chunks are skipped instead of failing. A trace recorded without
/// `--callchain` has none and is not read.
///
/// # Errors
///
/// When the trace cannot be read.
pub fn collect<R: Read>(
    reader: TraceReader<R>,
    inline: bool,
    salvage: bool,
) -> Result<Chains, TraceError> {
    if !reader.header().callchains {
        return Ok(Chains::default());
    }
    let mut reader = reader.salvage(salvage);
    let mut maps: HashMap<u32, Vec<Mapping>> = HashMap::new();
    let mut forks: Vec<(u64, u32, u32)> = Vec::new();
    let mut raw: Vec<RawChain> = Vec::new();
    let mut stacks: Vec<Event> = Vec::new();
    loop {
        let chunk = match reader.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
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
    // Each chain's return addresses, located once; chains repeat, so only
    // the distinct located chains are kept, resolved and named.
    let mut distinct: HashMap<Located<'_>, u32> = HashMap::new();
    let chain_of: Vec<u32> = raw
        .iter()
        .map(|c| {
            let sites = c
                .ips
                .iter()
                .skip(1)
                .map(|&ip| mapping_of(c.pid, c.time, ip).map(|m| (&m.path, (m.start, m.pgoff, ip))))
                .collect();
            let next = distinct.len() as u32;
            *distinct.entry((sites, c.cut)).or_insert(next)
        })
        .collect();
    let mut by_file: HashMap<&PathBuf, Vec<Site>> = HashMap::new();
    for (path, site) in distinct.keys().flat_map(|(sites, _)| sites).flatten() {
        by_file.entry(path).or_default().push(*site);
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
        chains: raw.len() as u64,
        unknown_frames: resolved
            .values()
            .filter(|r| r.as_ref().is_some_and(|f| f[0].starts_with('[')))
            .count() as u64,
        ..ChainStats::default()
    };
    let mut chains = Chains::default();
    let mut ids: HashMap<Vec<String>, u32> = HashMap::new();
    // Located chain to (named chain, cut).
    let mut named = vec![(0, false); distinct.len()];
    for (key, &located) in &distinct {
        let (stack, cut) = name_chain(key, &resolved);
        let next = ids.len() as u32;
        named[located as usize] = (*ids.entry(stack).or_insert(next), cut);
    }
    for (c, &located) in raw.iter().zip(&chain_of) {
        let (id, cut) = named[located as usize];
        stats.cut += u64::from(cut);
        chains.by_call.insert((c.tid, c.time), id);
    }
    chains.stacks = vec![Vec::new(); ids.len()];
    for (stack, id) in ids {
        chains.stacks[id as usize] = stack;
    }
    chains.stats = stats;
    Ok(chains)
}

/// A chain's return addresses in their files (`None`: in no mapping), and
/// whether unwinding stopped short.
type Located<'a> = (Vec<Option<(&'a PathBuf, Site)>>, bool);

/// The frames of a located chain, outermost first, and whether it was
/// cut: unwinding stopped early, or an address cannot be a return address.
fn name_chain(
    (sites, unwound_short): &Located<'_>,
    resolved: &HashMap<(&PathBuf, Site), Option<Vec<String>>>,
) -> (Vec<String>, bool) {
    let mut inner_first = Vec::new();
    let mut cut = *unwound_short;
    for site in sites {
        match site.and_then(|key| resolved.get(&key)?.as_ref()) {
            Some(frames) => inner_first.extend(frames.iter().rev().cloned()),
            None => {
                cut = true;
                break;
            }
        }
    }
    if cut {
        inner_first.push(CUT_FRAME.to_owned());
    }
    inner_first.reverse();
    (inner_first, cut)
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
