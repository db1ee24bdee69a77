//! Sample records: fixed-size rows, written from [`SampleIn`] and read in
//! place through [`SampleRef`] without allocating per record.
//!
//! Row layout (`40 + 8 * N` bytes, little-endian):
//!
//! | offset | type       | field                                  |
//! |--------|------------|----------------------------------------|
//! | 0      | `u64`      | time (ns, the header's clock)          |
//! | 8      | `u32`      | pid                                    |
//! | 12     | `u32`      | tid                                    |
//! | 16     | `u32`      | probe id                               |
//! | 20     | `u16`      | cpu                                    |
//! | 22     | `u8`       | kind: 0 entry, 1 return                |
//! | 23     | `u8`       | flags (0)                              |
//! | 24     | `u64`      | time_enabled                           |
//! | 32     | `u64`      | time_running                           |
//! | 40     | `u64`[N]   | counter values, in the header's order  |

use std::fmt;

use super::error::TraceError;
use super::format::{le_u16, le_u32, le_u64, record_size, SAMPLE_FIXED_LEN};

/// Whether a sample was taken at a function's entry or at its return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Read by the entry probe.
    Entry,
    /// Read by the return probe.
    Return,
}

impl RecordKind {
    /// The byte stored in a sample row.
    pub fn code(self) -> u8 {
        match self {
            Self::Entry => 0,
            Self::Return => 1,
        }
    }

    /// The kind stored as `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Entry),
            1 => Some(Self::Return),
            _ => None,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Entry => "entry",
            Self::Return => "return",
        })
    }
}

/// A sample to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleIn<'a> {
    /// Time in ns on the header's clock.
    pub time: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Index into the header's probes.
    pub probe: u32,
    /// CPU the sample was read on.
    pub cpu: u16,
    /// Entry or return.
    pub kind: RecordKind,
    /// Time the counter group was enabled, in ns.
    pub time_enabled: u64,
    /// Time the counter group was running, in ns.
    pub time_running: u64,
    /// One value per counter, in the header's order.
    pub values: &'a [u64],
    /// The key field's value, for a probe matched by a key; written only
    /// when the header has a key column (0 otherwise).
    pub key: u64,
}

/// Appends the row of `s` to `out` (with the key column when `keyed`); the
/// caller has checked `s.values`.
pub(crate) fn encode_sample(out: &mut Vec<u8>, s: &SampleIn<'_>, keyed: bool) {
    let mut fixed = [0u8; SAMPLE_FIXED_LEN];
    fixed[0..8].copy_from_slice(&s.time.to_le_bytes());
    fixed[8..12].copy_from_slice(&s.pid.to_le_bytes());
    fixed[12..16].copy_from_slice(&s.tid.to_le_bytes());
    fixed[16..20].copy_from_slice(&s.probe.to_le_bytes());
    fixed[20..22].copy_from_slice(&s.cpu.to_le_bytes());
    fixed[22] = s.kind.code();
    fixed[24..32].copy_from_slice(&s.time_enabled.to_le_bytes());
    fixed[32..40].copy_from_slice(&s.time_running.to_le_bytes());
    out.extend_from_slice(&fixed);
    for value in s.values {
        out.extend_from_slice(&value.to_le_bytes());
    }
    if keyed {
        out.extend_from_slice(&s.key.to_le_bytes());
    }
}

/// The samples of one chunk: owns the payload bytes, reads rows in place.
#[derive(Clone, PartialEq, Eq)]
pub struct SampleBlock {
    data: Vec<u8>,
    row: usize,
    keyed: bool,
}

impl SampleBlock {
    /// Checks a samples payload read from the chunk at byte `offset`: its
    /// length must be `count` rows (of `ncounters` values and, when
    /// `keyed`, a key), each with a known kind and a probe id below
    /// `nprobes`.
    pub(crate) fn from_payload(
        data: Vec<u8>,
        count: u32,
        (ncounters, keyed): (usize, bool),
        nprobes: usize,
        offset: u64,
    ) -> Result<Self, TraceError> {
        let row = record_size(ncounters + usize::from(keyed));
        let expected = u64::from(count) * row as u64;
        if data.len() as u64 != expected {
            let reason = format!(
                "samples payload is {} bytes where {count} rows of {row} bytes ({expected} bytes) were expected",
                data.len()
            );
            return Err(TraceError::CorruptChunk { offset, reason });
        }
        let block = Self { data, row, keyed };
        block
            .check_rows(nprobes)
            .map_err(|reason| TraceError::CorruptChunk { offset, reason })?;
        Ok(block)
    }

    fn check_rows(&self, nprobes: usize) -> Result<(), String> {
        for (i, row) in self.data.chunks_exact(self.row).enumerate() {
            let kind = row[22];
            if RecordKind::from_code(kind).is_none() {
                return Err(format!(
                    "sample {i} has kind {kind} where 0 (entry) or 1 (return) was expected"
                ));
            }
            let probe = le_u32(row, 16);
            if probe as usize >= nprobes {
                return Err(format!(
                    "sample {i} names probe {probe} where an index below the header's {nprobes} probes was expected"
                ));
            }
        }
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.len() / self.row
    }

    /// Whether the block has no samples.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Counter values per sample.
    pub fn ncounters(&self) -> usize {
        (self.row - SAMPLE_FIXED_LEN) / 8 - usize::from(self.keyed)
    }

    /// Sample `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn get(&self, i: usize) -> SampleRef<'_> {
        assert!(
            i < self.len(),
            "sample index {i} out of range for a block of {}",
            self.len()
        );
        SampleRef {
            row: &self.data[i * self.row..(i + 1) * self.row],
            keyed: self.keyed,
        }
    }

    /// The samples in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SampleRef<'_>> + '_ {
        let keyed = self.keyed;
        self.data
            .chunks_exact(self.row)
            .map(move |row| SampleRef { row, keyed })
    }

    /// Gives back the payload buffer for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.data
    }
}

impl fmt::Debug for SampleBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One sample row of a [`SampleBlock`]; every accessor decodes its field
/// straight from the row bytes.
#[derive(Clone, Copy)]
pub struct SampleRef<'a> {
    row: &'a [u8],
    keyed: bool,
}

impl<'a> SampleRef<'a> {
    /// Time in ns on the header's clock.
    pub fn time(&self) -> u64 {
        le_u64(self.row, 0)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        le_u32(self.row, 8)
    }

    /// Thread id.
    pub fn tid(&self) -> u32 {
        le_u32(self.row, 12)
    }

    /// Index into the header's probes.
    pub fn probe(&self) -> u32 {
        le_u32(self.row, 16)
    }

    /// CPU the sample was read on.
    pub fn cpu(&self) -> u16 {
        le_u16(self.row, 20)
    }

    /// Entry or return.
    pub fn kind(&self) -> RecordKind {
        // The reader accepted only rows whose kind byte is 0 or 1.
        if self.row[22] == 0 {
            RecordKind::Entry
        } else {
            RecordKind::Return
        }
    }

    /// Time the counter group was enabled, in ns.
    pub fn time_enabled(&self) -> u64 {
        le_u64(self.row, 24)
    }

    /// Time the counter group was running, in ns.
    pub fn time_running(&self) -> u64 {
        le_u64(self.row, 32)
    }

    /// Number of counter values.
    pub fn ncounters(&self) -> usize {
        (self.row.len() - SAMPLE_FIXED_LEN) / 8 - usize::from(self.keyed)
    }

    /// The key field's value (0 without a key column).
    pub fn key(&self) -> u64 {
        if self.keyed {
            le_u64(self.row, self.row.len() - 8)
        } else {
            0
        }
    }

    /// Value of counter `j`, in the header's order.
    ///
    /// # Panics
    ///
    /// If `j >= self.ncounters()`.
    pub fn value(&self, j: usize) -> u64 {
        assert!(
            j < self.ncounters(),
            "counter index {j} out of range for {} counters",
            self.ncounters()
        );
        le_u64(self.row, SAMPLE_FIXED_LEN + 8 * j)
    }

    /// All counter values, in the header's order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.row[SAMPLE_FIXED_LEN..SAMPLE_FIXED_LEN + 8 * self.ncounters()]
            .chunks_exact(8)
            .map(|v| le_u64(v, 0))
    }
}

impl fmt::Debug for SampleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        OwnedSample::from(*self).fmt(f)
    }
}

/// A sample copied out of its block, for tests and small traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSample {
    /// Time in ns on the header's clock.
    pub time: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Index into the header's probes.
    pub probe: u32,
    /// CPU the sample was read on.
    pub cpu: u16,
    /// Entry or return.
    pub kind: RecordKind,
    /// Time the counter group was enabled, in ns.
    pub time_enabled: u64,
    /// Time the counter group was running, in ns.
    pub time_running: u64,
    /// One value per counter, in the header's order.
    pub values: Vec<u64>,
    /// The key field's value (0 without a key column).
    pub key: u64,
}

impl OwnedSample {
    /// This sample as writer input.
    pub fn as_sample_in(&self) -> SampleIn<'_> {
        SampleIn {
            time: self.time,
            pid: self.pid,
            tid: self.tid,
            probe: self.probe,
            cpu: self.cpu,
            kind: self.kind,
            time_enabled: self.time_enabled,
            time_running: self.time_running,
            values: &self.values,
            key: self.key,
        }
    }
}

impl From<SampleRef<'_>> for OwnedSample {
    fn from(s: SampleRef<'_>) -> Self {
        Self {
            time: s.time(),
            pid: s.pid(),
            tid: s.tid(),
            probe: s.probe(),
            cpu: s.cpu(),
            kind: s.kind(),
            time_enabled: s.time_enabled(),
            time_running: s.time_running(),
            values: s.values().collect(),
            key: s.key(),
        }
    }
}

impl From<&SampleIn<'_>> for OwnedSample {
    fn from(s: &SampleIn<'_>) -> Self {
        Self {
            time: s.time,
            pid: s.pid,
            tid: s.tid,
            probe: s.probe,
            cpu: s.cpu,
            kind: s.kind,
            time_enabled: s.time_enabled,
            time_running: s.time_running,
            values: s.values.to_vec(),
            key: s.key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[u64]) -> SampleIn<'_> {
        SampleIn {
            key: 0,
            time: 0x0102_0304_0506_0708,
            pid: 0x1112_1314,
            tid: 0x2122_2324,
            probe: 1,
            cpu: 0x3132,
            kind: RecordKind::Return,
            time_enabled: 0x4142_4344_4546_4748,
            time_running: 0x5152_5354_5556_5758,
            values,
        }
    }

    #[test]
    fn row_layout_is_exact() {
        let mut out = Vec::new();
        encode_sample(&mut out, &sample(&[0x61, 0x0706_0504_0302_0100]), false);
        let expected: Vec<u8> = [
            &[8, 7, 6, 5, 4, 3, 2, 1][..],
            &[0x14, 0x13, 0x12, 0x11],
            &[0x24, 0x23, 0x22, 0x21],
            &[1, 0, 0, 0],
            &[0x32, 0x31],
            &[1, 0],
            &[0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41],
            &[0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52, 0x51],
            &[0x61, 0, 0, 0, 0, 0, 0, 0],
            &[0, 1, 2, 3, 4, 5, 6, 7],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn sample_ref_reads_every_field() {
        let mut out = Vec::new();
        encode_sample(&mut out, &sample(&[10, 20, 30]), false);
        encode_sample(
            &mut out,
            &SampleIn {
                kind: RecordKind::Entry,
                ..sample(&[1, 2, 3])
            },
            false,
        );
        let block = SampleBlock::from_payload(out, 2, (3, false), 2, 0).unwrap();
        assert_eq!(
            (block.len(), block.ncounters(), block.is_empty()),
            (2, 3, false)
        );
        let s = block.get(0);
        assert_eq!(s.time(), 0x0102_0304_0506_0708);
        assert_eq!(s.pid(), 0x1112_1314);
        assert_eq!(s.tid(), 0x2122_2324);
        assert_eq!(s.probe(), 1);
        assert_eq!(s.cpu(), 0x3132);
        assert_eq!(s.kind(), RecordKind::Return);
        assert_eq!(s.time_enabled(), 0x4142_4344_4546_4748);
        assert_eq!(s.time_running(), 0x5152_5354_5556_5758);
        assert_eq!((s.value(0), s.value(2)), (10, 30));
        assert_eq!(s.values().collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(block.get(1).kind(), RecordKind::Entry);
        let kinds: Vec<_> = block.iter().map(|s| s.kind().to_string()).collect();
        assert_eq!(kinds, ["return", "entry"]);
        let owned = OwnedSample::from(block.get(1));
        assert_eq!(
            owned.as_sample_in(),
            SampleIn {
                kind: RecordKind::Entry,
                ..sample(&[1, 2, 3])
            }
        );
    }

    #[test]
    fn payload_length_must_match_count() {
        let mut out = Vec::new();
        encode_sample(&mut out, &sample(&[1]), false);
        let err = SampleBlock::from_payload(out, 2, (1, false), 2, 99).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 99: samples payload is 48 bytes where 2 rows of 48 bytes (96 bytes) were expected"
        );
    }

    #[test]
    fn rows_with_unknown_kind_or_probe_are_rejected() {
        let mut out = Vec::new();
        encode_sample(&mut out, &sample(&[]), false);
        encode_sample(&mut out, &sample(&[]), false);
        out[40 + 22] = 2;
        let err = SampleBlock::from_payload(out.clone(), 2, (0, false), 2, 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 7: sample 1 has kind 2 where 0 (entry) or 1 (return) was expected"
        );
        let err = SampleBlock::from_payload(out[..40].to_vec(), 1, (0, false), 1, 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 7: sample 0 names probe 1 where an index below the header's 1 probes was expected"
        );
    }

    #[test]
    fn record_kind_codes() {
        assert_eq!(
            RecordKind::from_code(RecordKind::Entry.code()),
            Some(RecordKind::Entry)
        );
        assert_eq!(
            RecordKind::from_code(RecordKind::Return.code()),
            Some(RecordKind::Return)
        );
        assert_eq!(RecordKind::from_code(2), None);
    }

    #[test]
    #[should_panic(expected = "sample index 1 out of range for a block of 1")]
    fn get_past_the_end_panics() {
        let mut out = Vec::new();
        encode_sample(&mut out, &sample(&[]), false);
        SampleBlock::from_payload(out, 1, (0, false), 2, 0)
            .unwrap()
            .get(1);
    }
}
