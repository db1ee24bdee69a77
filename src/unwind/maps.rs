//! A process's file mappings: what `PERF_RECORD_MMAP2` or
//! `/proc/PID/maps` say about which file backs which addresses.

use std::path::PathBuf;

/// One file mapping of a process: `[start, end)` maps the file `path` from
/// file offset `pgoff` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First runtime address of the mapping.
    pub start: u64,
    /// One past the last runtime address of the mapping.
    pub end: u64,
    /// The file offset mapped at `start`.
    pub pgoff: u64,
    /// The mapped file.
    pub path: PathBuf,
}

impl Mapping {
    /// Whether the runtime address `addr` lies in this mapping.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The file offset that the runtime address `addr` (inside the mapping)
    /// maps.
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.pgoff
    }
}

/// The file mappings of one process, sorted and without overlaps.
#[derive(Debug, Clone, Default)]
pub struct AddressSpace {
    maps: Vec<Mapping>,
}

impl AddressSpace {
    /// An address space with no mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `map`. Whatever part of an earlier mapping it overlaps is
    /// replaced (as a new `mmap` over an old one replaces it); an empty
    /// mapping is ignored.
    pub fn add(&mut self, map: Mapping) {
        if map.start >= map.end {
            return;
        }
        let mut kept = Vec::with_capacity(self.maps.len() + 2);
        for old in self.maps.drain(..) {
            if old.end <= map.start || old.start >= map.end {
                kept.push(old);
                continue;
            }
            if old.start < map.start {
                kept.push(Mapping {
                    end: map.start,
                    ..old.clone()
                });
            }
            if old.end > map.end {
                kept.push(Mapping {
                    start: map.end,
                    pgoff: old.pgoff + (map.end - old.start),
                    ..old
                });
            }
        }
        let at = kept.partition_point(|m| m.start < map.start);
        kept.insert(at, map);
        self.maps = kept;
    }

    /// The mapping that holds the runtime address `addr`.
    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        let after = self.maps.partition_point(|m| m.start <= addr);
        let map = self.maps.get(after.checked_sub(1)?)?;
        map.contains(addr).then_some(map)
    }

    /// All mappings, sorted by start address.
    pub fn mappings(&self) -> &[Mapping] {
        &self.maps
    }
}

impl FromIterator<Mapping> for AddressSpace {
    fn from_iter<I: IntoIterator<Item = Mapping>>(iter: I) -> Self {
        let mut space = Self::new();
        iter.into_iter().for_each(|map| space.add(map));
        space
    }
}

/// The file mappings listed in the text of a `/proc/PID/maps` file, in the
/// order listed. Lines that map no file (anonymous memory, `[stack]`,
/// `[vdso]`, ...) and malformed lines are skipped; a path the kernel marks
/// ` (deleted)` is kept as written (loading its CFI then fails, and
/// unwinding stops there with [`super::UnwindEnd::NoCfi`]).
pub fn parse_proc_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// One line: `start-end perms offset dev inode   path`.
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut fields = [""; 5];
    for field in &mut fields {
        rest = rest.trim_start();
        let end = rest.find(' ').unwrap_or(rest.len());
        (*field, rest) = rest.split_at(end);
    }
    let path = rest.trim_start();
    if !path.starts_with('/') {
        return None;
    }
    let (start, end) = fields[0].split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        pgoff: u64::from_str_radix(fields[2], 16).ok()?,
        path: PathBuf::from(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(start: u64, end: u64, pgoff: u64, path: &str) -> Mapping {
        Mapping {
            start,
            end,
            pgoff,
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn parses_file_mappings_and_skips_the_rest() {
        let text = "\
55b146ee4000-55b146ee5000 r--p 00000000 fe:00 10436757                   /tmp/fx/chain
55b146ee5000-55b146ee6000 r-xp 00001000 fe:00 10436757                   /tmp/fx/chain
55b147a0e000-55b147a2f000 rw-p 00000000 00:00 0                          [heap]
7f344a989000-7f344a98a000 r-xp 00001000 fe:00 10436769                   /tmp/my dir/lib.so (deleted)
7f344a98c000-7f344a98d000 rw-p 00000000 00:00 0 
7ffcecac3000-7ffcecae4000 rw-p 00000000 00:00 0                          [stack]
garbage line
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";
        assert_eq!(
            parse_proc_maps(text),
            vec![
                map(0x55b146ee4000, 0x55b146ee5000, 0, "/tmp/fx/chain"),
                map(0x55b146ee5000, 0x55b146ee6000, 0x1000, "/tmp/fx/chain"),
                map(
                    0x7f344a989000,
                    0x7f344a98a000,
                    0x1000,
                    "/tmp/my dir/lib.so (deleted)"
                ),
            ]
        );
    }

    #[test]
    fn finds_the_mapping_holding_an_address() {
        let space: AddressSpace = [map(0x1000, 0x2000, 0, "/a"), map(0x3000, 0x4000, 0, "/b")]
            .into_iter()
            .collect();
        assert_eq!(space.find(0xfff), None);
        assert_eq!(space.find(0x1000).map(|m| m.start), Some(0x1000));
        assert_eq!(space.find(0x1fff).map(|m| m.start), Some(0x1000));
        assert_eq!(space.find(0x2000), None);
        assert_eq!(space.find(0x3abc).map(|m| m.start), Some(0x3000));
        assert_eq!(space.find(0x4000), None);
    }

    #[test]
    fn a_later_mapping_replaces_what_it_overlaps() {
        let mut space = AddressSpace::new();
        space.add(map(0x1000, 0x5000, 0x10000, "/old"));
        space.add(map(0x6000, 0x7000, 0, "/gone"));
        space.add(map(0x2000, 0x3000, 0, "/new"));
        space.add(map(0x5800, 0x8000, 0, "/over"));
        space.add(map(0x9000, 0x9000, 0, "/empty"));
        assert_eq!(
            space.mappings(),
            &[
                map(0x1000, 0x2000, 0x10000, "/old"),
                map(0x2000, 0x3000, 0, "/new"),
                map(0x3000, 0x5000, 0x12000, "/old"),
                map(0x5800, 0x8000, 0, "/over"),
            ]
        );
        assert_eq!(
            space.find(0x3010).map(|m| m.file_offset(0x3010)),
            Some(0x12010)
        );
    }
}
