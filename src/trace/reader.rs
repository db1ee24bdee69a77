//! Streams a trace from any [`Read`], one checked chunk at a time.

use std::fmt;
use std::io::{self, Read};

use super::error::TraceError;
use super::event::{decode_events, Event};
use super::format::{
    record_size, ChunkHeader, ChunkKind, CHUNK_HEADER_LEN, CHUNK_MAGIC, FILE_HEADER_LEN,
    FLAG_ROUND_END, MAX_CHUNK_BYTES,
};
use super::header::{decode_frame, decode_json, Footer, TraceHeader};
use super::sample::SampleBlock;

/// The most a payload buffer grows ahead of the bytes actually read, so a
/// damaged length field cannot make the reader allocate gigabytes.
const READ_STEP: usize = 16 << 20;

/// Bytes looked at per step while searching for the next chunk header.
const SCAN_WINDOW: usize = 64 << 10;

/// The largest payload a chunk found by the search may claim: the writer's
/// largest chunk, plus room for the record that made it overflow.
const MAX_PAYLOAD: usize = MAX_CHUNK_BYTES + (1 << 20);

/// The largest footer payload the search accepts (a footer is ~200 bytes
/// of JSON).
const MAX_FOOTER: usize = 1 << 20;

/// A damaged byte range of a trace, skipped in salvage mode
/// ([`TraceReader::salvage`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// Offset of the first damaged byte: the header of the bad chunk.
    pub start: u64,
    /// Offset just past the damage: the next whole chunk, or the end of
    /// the input.
    pub end: u64,
    /// What was wrong with the chunk at `start`.
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes {}..{} ({} bytes): {}",
            self.start,
            self.end,
            self.end - self.start,
            self.reason
        )
    }
}

/// One chunk of a trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Fixed-size sample rows, read in place.
    Samples(SampleBlock),
    /// Events, unknown tags left out.
    Events(Vec<Event>),
    /// The last chunk of a complete trace.
    Footer(Footer),
}

/// How a trace ended, known once [`TraceReader::next_chunk`] returns `None`.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceEnd {
    /// The trace ends with its footer.
    Complete(Footer),
    /// The input ended without a footer: the recording was killed.
    Truncated {
        /// Byte offset just past the last whole chunk (or the file header).
        last_whole_chunk_end: u64,
        /// Bytes after it, part of a chunk that was being written; 0 if the
        /// input stops exactly at a chunk boundary.
        bytes_lost: u64,
    },
}

#[derive(Debug)]
enum State {
    Chunks,
    AfterFooter(Footer),
    Ended(TraceEnd),
}

/// Reads a trace chunk by chunk, never holding more than one chunk.
///
/// Each chunk takes two reads from `R` (its header, then its payload), so
/// `R` needs no buffering of its own. After an error, stop reading.
pub struct TraceReader<R: Read> {
    r: Input<R>,
    header: TraceHeader,
    offset: u64,
    spare: Vec<u8>,
    state: State,
    round_end: bool,
    salvage: bool,
    damage: Vec<Damage>,
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the file header.
    ///
    /// # Errors
    ///
    /// [`TraceError::Empty`], [`TraceError::NotATrace`],
    /// [`TraceError::UnsupportedVersion`], [`TraceError::TruncatedHeader`] or
    /// [`TraceError::CorruptHeader`] if the input does not start with a
    /// whole, valid file header; [`TraceError::Io`] if reading fails.
    pub fn new(mut r: R) -> Result<Self, TraceError> {
        let mut fixed = [0; FILE_HEADER_LEN];
        let got = read_up_to(&mut r, &mut fixed)?;
        let frame = decode_frame(&fixed[..got])?;
        let mut json = Vec::new();
        let json_len = frame.json_len as usize;
        let got = read_payload(&mut r, &mut json, json_len)?;
        let needed = (FILE_HEADER_LEN + json_len) as u64;
        if got < json_len {
            return Err(TraceError::TruncatedHeader {
                len: (FILE_HEADER_LEN + got) as u64,
                needed,
            });
        }
        let header = decode_json(&json, frame)?;
        Ok(Self {
            r: Input::new(r),
            header,
            offset: needed,
            spare: json,
            state: State::Chunks,
            round_end: false,
            salvage: false,
            damage: Vec::new(),
        })
    }

    /// Salvage mode (`--salvage`): a damaged chunk is not an error; the
    /// reader searches forward for the next chunk whose header is sane and
    /// whose checksum verifies, goes on from there, and lists the bytes it
    /// skipped in [`damage`](Self::damage).
    #[must_use]
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// The damaged byte ranges skipped so far in salvage mode, in file
    /// order.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The trace's header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// The next chunk, or `None` once the trace has ended; [`end`](Self::end)
    /// then says how. Chunks of unknown kinds are skipped. A chunk cut short
    /// by the end of the input ends the trace; it is not an error.
    ///
    /// # Errors
    ///
    /// [`TraceError::CorruptChunk`] for a damaged chunk or data after the
    /// footer (in salvage mode only when the search cannot be done),
    /// [`TraceError::Io`] if reading fails.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, TraceError> {
        let chunk = self.read_next()?;
        if chunk.is_none() {
            self.round_end = true;
        }
        Ok(chunk)
    }

    fn read_next(&mut self) -> Result<Option<Chunk>, TraceError> {
        loop {
            match &self.state {
                State::Chunks => {}
                State::AfterFooter(footer) => {
                    let footer = footer.clone();
                    return self.expect_eof(footer).map(|()| None);
                }
                State::Ended(_) => return Ok(None),
            }
            let start = self.offset;
            let Some((header, payload)) = self.read_chunk()? else {
                continue;
            };
            self.round_end = header.flags & FLAG_ROUND_END != 0;
            match self.decode(header, payload, start) {
                Ok(Some(chunk)) => return Ok(Some(chunk)),
                Ok(None) => {}
                // The chunk is whole and its checksum verifies, yet its
                // records are not valid: skip just this chunk.
                Err(TraceError::CorruptChunk { reason, .. }) if self.salvage => {
                    self.damage.push(Damage {
                        start,
                        end: self.offset,
                        reason,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How the trace ended; `None` until [`next_chunk`](Self::next_chunk)
    /// has returned `None`.
    pub fn end(&self) -> Option<&TraceEnd> {
        match &self.state {
            State::Ended(end) => Some(end),
            _ => None,
        }
    }

    /// Whether the chunk [`next_chunk`](Self::next_chunk) returned last
    /// ended a recording round ([`FLAG_ROUND_END`]); true at the end of the
    /// trace.
    pub fn round_end(&self) -> bool {
        self.round_end
    }

    /// Bytes consumed from the input so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Hands a chunk back so its buffer is reused for the next one, which
    /// spares an allocation per samples chunk.
    pub fn recycle(&mut self, chunk: Chunk) {
        if let Chunk::Samples(block) = chunk {
            let buffer = block.into_buffer();
            if buffer.capacity() > self.spare.capacity() {
                self.spare = buffer;
            }
        }
    }

    /// Reads the next whole chunk, checksum checked. `None` if there is
    /// none here: the input ended inside it or before it (the trace has
    /// ended, and how is recorded), or, in salvage mode, it was damaged and
    /// the reader has moved on to the next whole chunk.
    fn read_chunk(&mut self) -> Result<Option<(ChunkHeader, Vec<u8>)>, TraceError> {
        let start = self.offset;
        let mut bytes = [0; CHUNK_HEADER_LEN];
        let got = read_up_to(&mut self.r, &mut bytes)?;
        self.offset += got as u64;
        if got < CHUNK_HEADER_LEN {
            return Ok(self.truncated(start));
        }
        let header = match ChunkHeader::decode(&bytes, start) {
            Ok(header) => header,
            Err(TraceError::CorruptChunk { reason, .. }) if self.salvage => {
                self.r.unread(&[&bytes[1..]]);
                self.offset = start + 1;
                self.resync(start, reason)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut payload = std::mem::take(&mut self.spare);
        let len = header.payload_len as usize;
        let got = read_payload(&mut self.r, &mut payload, len)?;
        self.offset += got as u64;
        if got < len {
            return self.cut_short(start, bytes, payload, len);
        }
        let crc = header.checksum(&payload);
        if crc != header.crc {
            let reason = format!(
                "checksum of the chunk is {crc:#010x} where its header says {:#010x}; the file is damaged",
                header.crc
            );
            if !self.salvage {
                return Err(TraceError::CorruptChunk {
                    offset: start,
                    reason,
                });
            }
            self.r.unread(&[&bytes[1..], &payload]);
            self.spare = payload;
            self.offset = start + 1;
            self.resync(start, reason)?;
            return Ok(None);
        }
        Ok(Some((header, payload)))
    }

    /// The input ended inside the payload of the chunk at `start`, whose
    /// header claims `len` bytes. Either the recording was cut short while
    /// writing it, or its length field is damaged: then a whole chunk (the
    /// footer, at least) follows inside the bytes it claims.
    fn cut_short(
        &mut self,
        start: u64,
        header: [u8; CHUNK_HEADER_LEN],
        payload: Vec<u8>,
        len: usize,
    ) -> Result<Option<(ChunkHeader, Vec<u8>)>, TraceError> {
        let end = self.offset;
        self.r.unread(&[&header[1..], &payload]);
        self.spare = payload;
        self.offset = start + 1;
        let Some(next) = self.find_chunk()? else {
            // Nothing whole after it: a recording cut short.
            self.r.discard();
            self.offset = end;
            return Ok(self.truncated(start));
        };
        let reason = format!(
            "its length field says {len} bytes of payload, more than the {} left in the file, \
             yet a whole chunk starts at byte {next}; the length field is damaged",
            end - start - CHUNK_HEADER_LEN as u64
        );
        if !self.salvage {
            return Err(TraceError::CorruptChunk {
                offset: start,
                reason,
            });
        }
        self.damage.push(Damage {
            start,
            end: next,
            reason,
        });
        Ok(None)
    }

    /// Salvage mode, after the chunk at `start` was found damaged: moves to
    /// the next whole chunk after it, or to the end of the input, and
    /// records the bytes skipped.
    fn resync(&mut self, start: u64, reason: String) -> io::Result<()> {
        let found = self.find_chunk()?;
        let end = found.unwrap_or(self.offset);
        self.damage.push(Damage { start, end, reason });
        if found.is_none() {
            // Nothing whole after the damage: the trace ends there, as if
            // cut short at its start.
            self.state = State::Ended(TraceEnd::Truncated {
                last_whole_chunk_end: start,
                bytes_lost: end - start,
            });
        }
        Ok(())
    }

    /// Searches the input from the current offset for a chunk whose header
    /// is sane and whose checksum verifies; returns its offset, with the
    /// input positioned there, or `None`, with the input consumed to its
    /// end.
    fn find_chunk(&mut self) -> io::Result<Option<u64>> {
        loop {
            let window = self.r.peek(SCAN_WINDOW)?;
            if window.len() < CHUNK_HEADER_LEN {
                let n = window.len();
                self.r.consume(n);
                self.offset += n as u64;
                return Ok(None);
            }
            let Some(at) = window.windows(4).position(|w| w == CHUNK_MAGIC) else {
                let n = window.len() - (CHUNK_MAGIC.len() - 1);
                self.r.consume(n);
                self.offset += n as u64;
                continue;
            };
            self.r.consume(at);
            self.offset += at as u64;
            if self.whole_chunk_here()? {
                return Ok(Some(self.offset));
            }
            self.r.consume(1);
            self.offset += 1;
        }
    }

    /// Whether the unread input starts with a whole chunk: a header with
    /// the magic, a kind, length and count that fit each other, and a
    /// checksum that verifies.
    fn whole_chunk_here(&mut self) -> io::Result<bool> {
        let bytes = self.r.peek(CHUNK_HEADER_LEN)?;
        let Ok(bytes) = <&[u8; CHUNK_HEADER_LEN]>::try_from(bytes) else {
            return Ok(false);
        };
        let Ok(header) = ChunkHeader::decode(bytes, self.offset) else {
            return Ok(false);
        };
        let len = header.payload_len as usize;
        let count = header.count as usize;
        let row = record_size(self.header.counters.len() + usize::from(self.header.key_column));
        let sane = match header.kind {
            ChunkKind::Samples => count.checked_mul(row) == Some(len) && len <= MAX_PAYLOAD,
            ChunkKind::Events => {
                count.checked_mul(4).is_some_and(|n| n <= len) && len <= MAX_PAYLOAD
            }
            ChunkKind::Footer => count == 1 && len <= MAX_FOOTER,
            // Kinds to come are small numbers, like those of today.
            ChunkKind::Unknown(code) => code < 256 && len <= MAX_PAYLOAD,
        };
        if !sane {
            return Ok(false);
        }
        let chunk = self.r.peek(CHUNK_HEADER_LEN + len)?;
        if chunk.len() < CHUNK_HEADER_LEN + len {
            return Ok(false);
        }
        Ok(header.checksum(&chunk[CHUNK_HEADER_LEN..]) == header.crc)
    }

    fn truncated(&mut self, last_whole_chunk_end: u64) -> Option<(ChunkHeader, Vec<u8>)> {
        let bytes_lost = self.offset - last_whole_chunk_end;
        self.state = State::Ended(TraceEnd::Truncated {
            last_whole_chunk_end,
            bytes_lost,
        });
        None
    }

    /// The chunk of a checked payload; `None` for an unknown kind.
    fn decode(
        &mut self,
        header: ChunkHeader,
        payload: Vec<u8>,
        offset: u64,
    ) -> Result<Option<Chunk>, TraceError> {
        let chunk = match header.kind {
            ChunkKind::Samples => {
                let ncounters = self.header.counters.len();
                let nprobes = self.header.probes.len();
                return SampleBlock::from_payload(
                    payload,
                    header.count,
                    (ncounters, self.header.key_column),
                    nprobes,
                    offset,
                )
                .map(|block| Some(Chunk::Samples(block)));
            }
            ChunkKind::Events => decode_events(&payload, header.count, offset).map(Chunk::Events),
            ChunkKind::Footer => decode_footer(&payload, header.count, offset).map(|footer| {
                self.state = State::AfterFooter(footer.clone());
                Chunk::Footer(footer)
            }),
            ChunkKind::Unknown(_) => {
                self.spare = payload;
                return Ok(None);
            }
        };
        self.spare = payload;
        chunk.map(Some)
    }

    /// Ends a trace whose footer has been read: nothing may follow it.
    fn expect_eof(&mut self, footer: Footer) -> Result<(), TraceError> {
        let mut byte = [0; 1];
        if read_up_to(&mut self.r, &mut byte)? == 0 {
            self.state = State::Ended(TraceEnd::Complete(footer));
            return Ok(());
        }
        let reason = "found data after the footer chunk, where the trace was expected to end";
        if !self.salvage {
            return Err(TraceError::CorruptChunk {
                offset: self.offset,
                reason: reason.into(),
            });
        }
        let start = self.offset;
        let rest = io::copy(&mut self.r, &mut io::sink())?;
        self.offset += 1 + rest;
        self.damage.push(Damage {
            start,
            end: self.offset,
            reason: reason.into(),
        });
        self.state = State::Ended(TraceEnd::Complete(footer));
        Ok(())
    }
}

impl<R: Read> fmt::Debug for TraceReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceReader")
            .field("offset", &self.offset)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn decode_footer(payload: &[u8], count: u32, offset: u64) -> Result<Footer, TraceError> {
    let corrupt = |reason| TraceError::CorruptChunk { offset, reason };
    if count != 1 {
        return Err(corrupt(format!(
            "footer chunk has count {count} where 1 was expected"
        )));
    }
    serde_json::from_slice(payload)
        .map_err(|e| corrupt(format!("the footer JSON does not describe a footer: {e}")))
}

/// The input of a reader: bytes handed back by the search for a chunk
/// header, then the rest of `R`. Without a search, reads go straight to
/// `R`.
struct Input<R> {
    r: R,
    back: Vec<u8>,
    pos: usize,
}

impl<R: Read> Input<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            back: Vec::new(),
            pos: 0,
        }
    }

    /// Puts `parts` back in front of the unread input.
    fn unread(&mut self, parts: &[&[u8]]) {
        let rest = &self.back[self.pos..];
        let mut back =
            Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + rest.len());
        for part in parts {
            back.extend_from_slice(part);
        }
        back.extend_from_slice(rest);
        self.back = back;
        self.pos = 0;
    }

    /// The next `n` bytes without consuming them; fewer only at the end of
    /// the input. Reads at least [`SCAN_WINDOW`] bytes at a time, and moves
    /// the unread bytes to the front only once they are less than half of
    /// the buffer, so a search that peeks after every byte stays linear.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.back.len() - self.pos < n {
            if self.pos >= self.back.len() / 2 {
                self.back.drain(..self.pos);
                self.pos = 0;
            }
            while self.back.len() - self.pos < n {
                let have = self.back.len();
                let want = (n - (have - self.pos)).clamp(SCAN_WINDOW, READ_STEP);
                self.back.resize(have + want, 0);
                let got = read_up_to(&mut self.r, &mut self.back[have..])?;
                self.back.truncate(have + got);
                if got < want {
                    break;
                }
            }
        }
        let end = self.back.len().min(self.pos + n);
        Ok(&self.back[self.pos..end])
    }

    /// Drops the next `n` bytes, which [`peek`](Self::peek) returned.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.back.len());
    }

    /// Drops the bytes handed back, and their buffer.
    fn discard(&mut self) {
        self.back = Vec::new();
        self.pos = 0;
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.back.len() {
            if !self.back.is_empty() {
                self.discard();
            }
            return self.r.read(buf);
        }
        let n = buf.len().min(self.back.len() - self.pos);
        buf[..n].copy_from_slice(&self.back[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Fills `buf` from `r`, stopping early only at end of input; returns the
/// bytes read.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Replaces the contents of `buf` with up to `len` bytes of `r`, growing it
/// at most [`READ_STEP`] ahead of the data; returns the bytes read.
fn read_payload<R: Read>(r: &mut R, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
    let mut filled = 0;
    while filled < len {
        let end = len.min(filled + READ_STEP);
        if buf.len() < end {
            buf.resize(end, 0);
        }
        let got = read_up_to(r, &mut buf[filled..end])?;
        filled += got;
        if filled < end {
            break;
        }
    }
    buf.truncate(filled);
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns its bytes a few at a time, with an interruption between reads.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_up_to_retries_interrupts_and_short_reads() {
        let mut r = Trickle {
            data: b"0123456789",
            interrupt: false,
        };
        let mut buf = [0; 8];
        assert_eq!(read_up_to(&mut r, &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"01234567");
        assert_eq!(read_up_to(&mut r, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
    }

    #[test]
    fn read_payload_reuses_the_buffer_and_stops_at_eof() {
        let mut buf = b"old contents that are longer".to_vec();
        assert_eq!(read_payload(&mut &b"new"[..], &mut buf, 3).unwrap(), 3);
        assert_eq!(buf, b"new");
        assert_eq!(
            read_payload(&mut &b"short"[..], &mut buf, 1 << 40).unwrap(),
            5
        );
        assert_eq!(buf, b"short");
        assert!(
            buf.capacity() <= 2 * READ_STEP,
            "a huge length does not allocate ahead"
        );
    }

    #[test]
    fn read_errors_are_io_errors() {
        #[derive(Debug)]
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("device gone"))
            }
        }
        let err = TraceReader::new(Broken).unwrap_err();
        assert!(
            matches!(&err, TraceError::Io(e) if e.to_string() == "device gone"),
            "{err}"
        );
    }
}
