//! Constants and byte layout of the trace file, shared by writer and reader.
//!
//! Every integer is little-endian. docs/trace-format.md is the normative
//! description; the offsets here are the same numbers.

use super::error::TraceError;

/// The first 8 bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"PERFUNC\0";

/// The format version this code writes and the newest it reads. It changes
/// only when old readers could misread new files; compatible additions
/// (event tags, chunk kinds, JSON fields) keep it.
pub const FORMAT_VERSION: u32 = 1;

/// The first 4 bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"PFCK";

/// Bytes of the fixed part of the file header, before the JSON.
pub const FILE_HEADER_LEN: usize = 20;

/// Bytes of a chunk header, before the payload.
pub const CHUNK_HEADER_LEN: usize = 20;

/// Bytes of a sample row before its counter values.
pub const SAMPLE_FIXED_LEN: usize = 40;

/// Bytes of an event record before its body (`u16` tag, `u16` length).
pub const EVENT_HEADER_LEN: usize = 4;

/// Sample payload size at which the writer emits a chunk, unless changed
/// with [`TraceWriter::with_chunk_bytes`](super::TraceWriter::with_chunk_bytes).
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// The largest chunk size the writer accepts; larger requests are clamped.
pub const MAX_CHUNK_BYTES: usize = 1 << 30;

/// Bytes of one sample row: `40 + 8 * ncounters` (64 for 3 counters).
pub const fn record_size(ncounters: usize) -> usize {
    SAMPLE_FIXED_LEN + 8 * ncounters
}

/// What a chunk holds, from the `kind` field of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    Samples,
    Events,
    Footer,
    /// A kind this version does not know; readers skip it.
    Unknown(u16),
}

impl ChunkKind {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::Samples => 1,
            Self::Events => 2,
            Self::Footer => 3,
            Self::Unknown(code) => code,
        }
    }

    pub(crate) fn from_code(code: u16) -> Self {
        match code {
            1 => Self::Samples,
            2 => Self::Events,
            3 => Self::Footer,
            other => Self::Unknown(other),
        }
    }
}

/// Chunk flag bit 0: the recorder drained every ring buffer up to this
/// chunk. Records are written within one round of being timestamped, so
/// once a round has ended, every record stamped at or before the latest
/// time of the round before it has been read (the same rule as perf's
/// `FINISHED_ROUND`); readers use this to order records by time while
/// holding at most two rounds.
pub const FLAG_ROUND_END: u16 = 1;

/// The decoded fixed fields of a chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub kind: ChunkKind,
    /// [`FLAG_ROUND_END`] or 0; other bits are reserved (written as 0,
    /// ignored by readers); covered by the checksum.
    pub flags: u16,
    pub payload_len: u32,
    pub count: u32,
    pub crc: u32,
}

impl ChunkHeader {
    /// Header for `payload` with `flags`, its checksum included.
    pub(crate) fn with_flags(
        kind: ChunkKind,
        count: u32,
        payload: &[u8],
        flags: u16,
    ) -> Result<Self, TraceError> {
        let payload_len = to_u32(payload.len(), "chunk payload")?;
        let mut header = Self {
            kind,
            flags,
            payload_len,
            count,
            crc: 0,
        };
        header.crc = header.checksum(payload);
        Ok(header)
    }

    pub(crate) fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut out = [0; CHUNK_HEADER_LEN];
        out[..16].copy_from_slice(&self.checked_prefix());
        out[16..].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// Decodes a chunk header found at byte `offset`, checking its magic.
    pub(crate) fn decode(bytes: &[u8; CHUNK_HEADER_LEN], offset: u64) -> Result<Self, TraceError> {
        if bytes[..4] != CHUNK_MAGIC {
            return Err(TraceError::CorruptChunk {
                offset,
                reason: format!(
                    "found \"{}\" where the chunk magic \"PFCK\" was expected",
                    bytes[..4].escape_ascii()
                ),
            });
        }
        Ok(Self {
            kind: ChunkKind::from_code(le_u16(bytes, 4)),
            flags: le_u16(bytes, 6),
            payload_len: le_u32(bytes, 8),
            count: le_u32(bytes, 12),
            crc: le_u32(bytes, 16),
        })
    }

    /// crc32 of header bytes 0..16 followed by the payload.
    pub(crate) fn checksum(&self, payload: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.checked_prefix());
        hasher.update(payload);
        hasher.finalize()
    }

    /// Bytes 0..16: magic, kind, flags, `payload_len`, `count`.
    fn checked_prefix(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..4].copy_from_slice(&CHUNK_MAGIC);
        out[4..6].copy_from_slice(&self.kind.code().to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.count.to_le_bytes());
        out
    }
}

/// `n` as a `u32` length field, or [`TraceError::TooLarge`] naming `what`.
pub(crate) fn to_u32(n: usize, what: &'static str) -> Result<u32, TraceError> {
    u32::try_from(n).map_err(|_| TraceError::TooLarge {
        what,
        len: n,
        max: u32::MAX.into(),
    })
}

/// Little-endian `u16` at `at`. Panics if `bytes` is too short.
pub(crate) fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array(bytes, at))
}

/// Little-endian `u32` at `at`. Panics if `bytes` is too short.
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(bytes, at))
}

/// Little-endian `u64` at `at`. Panics if `bytes` is too short.
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(bytes, at))
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_size_is_40_plus_8_per_counter() {
        assert_eq!(record_size(0), 40);
        assert_eq!(record_size(3), 64);
        assert_eq!(record_size(8), 104);
    }

    #[test]
    fn chunk_header_layout() {
        let header = ChunkHeader::with_flags(ChunkKind::Events, 7, b"abc", 0).unwrap();
        let bytes = header.encode();
        assert_eq!(
            &bytes[..16],
            b"PFCK\x02\x00\x00\x00\x03\x00\x00\x00\x07\x00\x00\x00"
        );
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[..16]);
        hasher.update(b"abc");
        assert_eq!(le_u32(&bytes, 16), hasher.finalize());
        assert_eq!(ChunkHeader::decode(&bytes, 0).unwrap(), header);
    }

    #[test]
    fn chunk_header_rejects_bad_magic_naming_the_offset() {
        let mut bytes = ChunkHeader::with_flags(ChunkKind::Samples, 0, &[], 0)
            .unwrap()
            .encode();
        bytes[0] = b'X';
        let err = ChunkHeader::decode(&bytes, 1234).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt chunk at byte 1234: found \"XFCK\" where the chunk magic \"PFCK\" was expected"
        );
    }

    #[test]
    fn chunk_kind_codes_round_trip() {
        for code in 0..6 {
            assert_eq!(ChunkKind::from_code(code).code(), code);
        }
        assert_eq!(ChunkKind::from_code(2), ChunkKind::Events);
        assert_eq!(ChunkKind::from_code(9), ChunkKind::Unknown(9));
    }

    #[test]
    fn little_endian_readers() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(le_u16(&bytes, 1), 0x0302);
        assert_eq!(le_u32(&bytes, 0), 0x0403_0201);
        assert_eq!(le_u64(&bytes, 1), 0x0908_0706_0504_0302);
    }
}
