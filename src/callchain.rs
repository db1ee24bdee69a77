//! The callers of each probed call, from the call chains
//! (`--callchain fp`) a trace holds, resolved to function names.
//!
//! A first pass over the trace collects the mappings (`Mmap` events) of
//! every process and the chain of every entry sample (`Callchain`
//! events, keyed by thread and time). Each distinct return address is then
//! resolved once, in the mapping that held it when the chain was taken,
//! with [`crate::symbolize`]. A chain is cut at the first address no
//! executable mapping holds (a frame-pointer walk through code built
//! without frame pointers ends in garbage): the frames outside it are
//! dropped, the chain is marked, and counted in [`ChainStats::cut`]; a
//! wrong frame is never shown.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use crate::symbolize::Symbolizer;
use crate::trace::{Chunk, Event, TraceError, TraceReader};

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
/// inlined functions are frames of their own.
///
/// # Errors
///
/// When the trace cannot be read.
pub fn collect<R: Read>(mut reader: TraceReader<R>, inline: bool) -> Result<Chains, TraceError> {
    let mut maps: HashMap<u32, Vec<Mapping>> = HashMap::new();
    let mut raw: Vec<(u32, u32, u64, Vec<u64>)> = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
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
                    end: start + len,
                    pgoff,
                    path: PathBuf::from(path),
                }),
                Event::Callchain {
                    time,
                    pid,
                    tid,
                    ips,
                } => raw.push((pid, tid, time, ips)),
                _ => {}
            }
        }
    }
    for list in maps.values_mut() {
        list.sort_by_key(|m| m.time);
    }
    let mut resolver = Resolver {
        maps,
        symbolizer: Symbolizer::new(),
        inline,
        names: HashMap::new(),
        stats: ChainStats::default(),
    };
    let mut chains = Chains::default();
    let mut ids: HashMap<Vec<String>, u32> = HashMap::new();
    for (pid, tid, time, ips) in raw {
        let stack = resolver.chain(pid, time, &ips);
        let next = ids.len() as u32;
        let id = *ids.entry(stack).or_insert(next);
        chains.by_call.insert((tid, time), id);
    }
    chains.stacks = vec![Vec::new(); ids.len()];
    for (stack, id) in ids {
        chains.stacks[id as usize] = stack;
    }
    chains.stats = resolver.stats;
    Ok(chains)
}

struct Resolver {
    maps: HashMap<u32, Vec<Mapping>>,
    symbolizer: Symbolizer,
    inline: bool,
    /// (pid, return address) to its frames, `None` when unmapped.
    names: HashMap<(u32, u64), Option<Vec<String>>>,
    stats: ChainStats,
}

impl Resolver {
    /// The callers in `ips` (innermost first, the probed function at 0),
    /// outermost first.
    fn chain(&mut self, pid: u32, time: u64, ips: &[u64]) -> Vec<String> {
        self.stats.chains += 1;
        let mut inner_first = Vec::new();
        let mut cut = false;
        for &ip in ips.iter().skip(1) {
            match self.frames(pid, time, ip) {
                Some(frames) => inner_first.extend(frames.iter().rev().cloned()),
                None => {
                    cut = true;
                    break;
                }
            }
        }
        if cut {
            self.stats.cut += 1;
            inner_first.push(CUT_FRAME.to_owned());
        }
        inner_first.reverse();
        inner_first
    }

    /// The frames (outermost first) of return address `ip` in `pid`.
    fn frames(&mut self, pid: u32, time: u64, ip: u64) -> Option<Vec<String>> {
        if let Some(hit) = self.names.get(&(pid, ip)) {
            return hit.clone();
        }
        let mapping = self.maps.get(&pid).and_then(|list| {
            list.iter()
                .rev()
                .find(|m| m.time <= time && (m.start..m.end).contains(&ip))
                .or_else(|| list.iter().rev().find(|m| (m.start..m.end).contains(&ip)))
        });
        let frames = mapping.map(|m| {
            let resolved =
                self.symbolizer
                    .resolve(&m.path, (m.start, m.pgoff), ip, true, self.inline);
            if resolved.unknown {
                self.stats.unknown_frames += 1;
            }
            resolved.frames.into_iter().map(|f| f.function).collect()
        });
        self.names.insert((pid, ip), frames.clone());
        frames
    }
}
