//! Appends a trace to any [`Write`], one checksummed chunk at a time.

use std::fmt;
use std::io::Write;

use super::error::TraceError;
use super::event::{encode_event, Event};
use super::format::{
    to_u32, ChunkHeader, ChunkKind, CHUNK_HEADER_LEN, DEFAULT_CHUNK_BYTES, FLAG_ROUND_END,
    MAX_CHUNK_BYTES,
};
use super::header::{encode_file_header, Footer, TraceHeader};
use super::sample::{encode_sample, SampleIn};

/// Writes a trace: the file header at once, then samples and events in
/// chunks as their buffers fill, then a footer on [`finish`](Self::finish).
///
/// Samples and events are buffered separately and each kind's chunks are in
/// push order; readers interleave the two by time. `W` receives whole
/// chunks only, so it needs no buffering of its own. Dropping the writer
/// without [`flush`](Self::flush) or `finish` loses what is buffered, as a
/// killed recording would; the chunks already written stay readable.
pub struct TraceWriter<W: Write> {
    w: W,
    ncounters: usize,
    keyed: bool,
    nprobes: usize,
    chunk_bytes: usize,
    samples: Vec<u8>,
    pending_samples: usize,
    events: Vec<u8>,
    pending_events: usize,
    bytes_written: u64,
    samples_written: u64,
    /// Set while [`flush`](Self::flush) emits its last chunk.
    round_end: bool,
    /// Whether a chunk was written since the last round end.
    open_round: bool,
    /// The header of a [`deferred`](Self::deferred) writer, until its
    /// first chunk or flush writes it.
    pending_header: Option<TraceHeader>,
    /// Bytes of the file header, once written.
    header_len: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace described by `header`, writing the file header to `w`.
    ///
    /// # Errors
    ///
    /// [`TraceError::Io`] if `w` fails, [`TraceError::Json`] or
    /// [`TraceError::TooLarge`] if the header cannot be encoded.
    pub fn new(w: W, header: &TraceHeader) -> Result<Self, TraceError> {
        let mut writer = Self::deferred(w, header)?;
        writer.write_header()?;
        Ok(writer)
    }

    /// Starts a trace described by `header` whose file header is written
    /// with its first chunk (or flush, or footer), so that
    /// [`amend_header`](Self::amend_header) can still change it: a
    /// recording learns what its calibration measured only once its
    /// command has started, before the first record is written.
    ///
    /// # Errors
    ///
    /// [`TraceError::Json`] or [`TraceError::TooLarge`] if the header
    /// cannot be encoded.
    pub fn deferred(w: W, header: &TraceHeader) -> Result<Self, TraceError> {
        encode_file_header(header)?;
        Ok(Self {
            w,
            ncounters: header.counters.len(),
            keyed: header.key_column,
            nprobes: header.probes.len(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            samples: Vec::new(),
            pending_samples: 0,
            events: Vec::new(),
            pending_events: 0,
            bytes_written: 0,
            samples_written: 0,
            round_end: false,
            open_round: false,
            pending_header: Some(header.clone()),
            header_len: 0,
        })
    }

    /// Changes the header of a [`deferred`](Self::deferred) writer before
    /// it is written. Its counters, probes and key column must stay as
    /// they are: samples may already be buffered.
    ///
    /// # Errors
    ///
    /// [`TraceError::HeaderWritten`] once the header is written or if the
    /// change touches the counters, probes or key column (the header is
    /// then unchanged), [`TraceError::Json`] or [`TraceError::TooLarge`]
    /// if the changed header cannot be encoded.
    pub fn amend_header(&mut self, f: impl FnOnce(&mut TraceHeader)) -> Result<(), TraceError> {
        let Some(header) = &self.pending_header else {
            return Err(TraceError::HeaderWritten);
        };
        let mut changed = header.clone();
        f(&mut changed);
        if changed.counters != header.counters
            || changed.probes != header.probes
            || changed.key_column != header.key_column
        {
            return Err(TraceError::HeaderWritten);
        }
        encode_file_header(&changed)?;
        self.pending_header = Some(changed);
        Ok(())
    }

    /// Writes the file header if it is still pending.
    fn write_header(&mut self) -> Result<(), TraceError> {
        if let Some(header) = &self.pending_header {
            let bytes = encode_file_header(header)?;
            self.w.write_all(&bytes)?;
            self.bytes_written += bytes.len() as u64;
            self.header_len = bytes.len() as u64;
            self.pending_header = None;
        }
        Ok(())
    }

    /// Emits a chunk whenever `n` bytes of samples (or of events) are
    /// buffered; default [`DEFAULT_CHUNK_BYTES`] (1 MiB). `n` is clamped to
    /// `1..=`[`MAX_CHUNK_BYTES`].
    #[must_use]
    pub fn with_chunk_bytes(mut self, n: usize) -> Self {
        self.chunk_bytes = n.clamp(1, MAX_CHUNK_BYTES);
        self
    }

    /// Buffers one sample, emitting a chunk if the buffer is full.
    ///
    /// # Errors
    ///
    /// [`TraceError::TooFewValues`] or [`TraceError::TooManyValues`] unless
    /// `s.values` holds one value per counter of the header,
    /// [`TraceError::UnknownProbe`] unless `s.probe` indexes the header's
    /// probes (the sample is then not written), [`TraceError::Io`] if
    /// emitting a chunk fails.
    pub fn push_sample(&mut self, s: &SampleIn<'_>) -> Result<(), TraceError> {
        self.check_sample(s)?;
        encode_sample(&mut self.samples, s, self.keyed);
        self.pending_samples += 1;
        self.samples_written += 1;
        if self.samples.len() >= self.chunk_bytes {
            self.emit_samples()?;
        }
        Ok(())
    }

    fn check_sample(&self, s: &SampleIn<'_>) -> Result<(), TraceError> {
        let (found, expected) = (s.values.len(), self.ncounters);
        if found < expected {
            return Err(TraceError::TooFewValues { found, expected });
        }
        if found > expected {
            return Err(TraceError::TooManyValues { found, expected });
        }
        if s.probe as usize >= self.nprobes {
            return Err(TraceError::UnknownProbe {
                probe: s.probe,
                probes: self.nprobes,
            });
        }
        Ok(())
    }

    /// Buffers one event, emitting a chunk if the buffer is full.
    ///
    /// # Errors
    ///
    /// [`TraceError::TooLarge`] if the event's body exceeds 65535 bytes (a
    /// very long `Comm` name; the event is then not written),
    /// [`TraceError::Io`] if emitting a chunk fails.
    pub fn push_event(&mut self, e: &Event) -> Result<(), TraceError> {
        encode_event(&mut self.events, e)?;
        self.pending_events += 1;
        if self.events.len() >= self.chunk_bytes {
            self.emit_events()?;
        }
        Ok(())
    }

    /// Writes every buffered sample and event as chunks, marks the last one
    /// as the end of a round ([`FLAG_ROUND_END`]), and flushes `W`, so that
    /// a kill after this loses nothing pushed before it. The recorder calls
    /// this after each drain of all its ring buffers.
    ///
    /// # Errors
    ///
    /// [`TraceError::Io`] if `W` fails.
    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.write_header()?;
        if self.pending_samples == 0 && self.pending_events == 0 && self.open_round {
            // Chunks went out when the buffer filled: end their round with
            // an empty one.
            self.round_end = true;
            let result = self.emit(ChunkKind::Samples, 0, &[]);
            self.round_end = false;
            result?;
        }
        self.round_end = true;
        let result = self.emit_pending();
        self.round_end = false;
        result?;
        self.w.flush()?;
        Ok(())
    }

    /// Bytes handed to `W` so far: file header (once written) and whole
    /// chunks.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes of chunks handed to `W` so far (the file header left out).
    pub fn chunk_bytes_written(&self) -> u64 {
        self.bytes_written - self.header_len
    }

    /// Samples accepted so far, including those still buffered.
    pub fn samples_written(&self) -> u64 {
        self.samples_written
    }

    /// Writes what is buffered and the footer chunk, flushes and returns `W`.
    ///
    /// # Errors
    ///
    /// [`TraceError::Io`] if `W` fails, [`TraceError::Json`] if the footer
    /// cannot be encoded.
    pub fn finish(mut self, footer: &Footer) -> Result<W, TraceError> {
        self.write_header()?;
        self.emit_pending()?;
        let json = serde_json::to_vec(footer).map_err(|source| TraceError::Json {
            what: "footer",
            source,
        })?;
        self.emit(ChunkKind::Footer, 1, &json)?;
        self.w.flush()?;
        Ok(self.w)
    }

    fn emit_pending(&mut self) -> Result<(), TraceError> {
        let round_end = std::mem::take(&mut self.round_end);
        if self.pending_samples > 0 {
            self.round_end = round_end && self.pending_events == 0;
            self.emit_samples()?;
        }
        if self.pending_events > 0 {
            self.round_end = round_end;
            self.emit_events()?;
        }
        self.round_end = false;
        Ok(())
    }

    fn emit_samples(&mut self) -> Result<(), TraceError> {
        let payload = std::mem::take(&mut self.samples);
        let result = self.emit(ChunkKind::Samples, self.pending_samples, &payload);
        self.samples = payload;
        self.samples.clear();
        self.pending_samples = 0;
        result
    }

    fn emit_events(&mut self) -> Result<(), TraceError> {
        let payload = std::mem::take(&mut self.events);
        let result = self.emit(ChunkKind::Events, self.pending_events, &payload);
        self.events = payload;
        self.events.clear();
        self.pending_events = 0;
        result
    }

    fn emit(&mut self, kind: ChunkKind, count: usize, payload: &[u8]) -> Result<(), TraceError> {
        self.write_header()?;
        let flags = if self.round_end { FLAG_ROUND_END } else { 0 };
        self.open_round = !self.round_end;
        let count = to_u32(count, "chunk record count")?;
        let header = ChunkHeader::with_flags(kind, count, payload, flags)?;
        self.w.write_all(&header.encode())?;
        self.w.write_all(payload)?;
        self.bytes_written += (CHUNK_HEADER_LEN + payload.len()) as u64;
        Ok(())
    }
}

impl<W: Write> fmt::Debug for TraceWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceWriter")
            .field("bytes_written", &self.bytes_written)
            .field("samples_written", &self.samples_written)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::format::record_size;
    use crate::trace::sample::RecordKind;
    use crate::trace::tests::header;

    fn sample(values: &[u64]) -> SampleIn<'_> {
        SampleIn {
            key: 0,
            time: 1,
            pid: 2,
            tid: 3,
            probe: 0,
            cpu: 4,
            kind: RecordKind::Entry,
            time_enabled: 5,
            time_running: 6,
            values,
        }
    }

    fn header_len() -> u64 {
        encode_file_header(&header(3)).unwrap().len() as u64
    }

    #[test]
    fn wrong_number_of_values_is_rejected() {
        let mut w = TraceWriter::new(Vec::new(), &header(3)).unwrap();
        let err = w.push_sample(&sample(&[1, 2])).unwrap_err();
        assert!(
            matches!(
                err,
                TraceError::TooFewValues {
                    found: 2,
                    expected: 3
                }
            ),
            "{err}"
        );
        let err = w.push_sample(&sample(&[1, 2, 3, 4])).unwrap_err();
        assert!(
            matches!(
                err,
                TraceError::TooManyValues {
                    found: 4,
                    expected: 3
                }
            ),
            "{err}"
        );
        assert_eq!(w.samples_written(), 0);
        let bytes = w.finish(&Footer::default()).unwrap();
        let footer_json = serde_json::to_vec(&Footer::default()).unwrap();
        assert_eq!(
            bytes.len() as u64,
            header_len() + (CHUNK_HEADER_LEN + footer_json.len()) as u64
        );
    }

    #[test]
    fn unknown_probe_is_rejected() {
        let mut w = TraceWriter::new(Vec::new(), &header(3)).unwrap();
        let err = w
            .push_sample(&SampleIn {
                probe: 2,
                ..sample(&[1, 2, 3])
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                TraceError::UnknownProbe {
                    probe: 2,
                    probes: 2
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn chunks_are_emitted_when_the_buffer_reaches_chunk_bytes() {
        let row = record_size(3) as u64;
        let mut w = TraceWriter::new(Vec::new(), &header(3))
            .unwrap()
            .with_chunk_bytes(2 * row as usize);
        w.push_sample(&sample(&[1, 2, 3])).unwrap();
        assert_eq!((w.bytes_written(), w.samples_written()), (header_len(), 1));
        w.push_sample(&sample(&[1, 2, 3])).unwrap();
        let one_chunk = header_len() + CHUNK_HEADER_LEN as u64 + 2 * row;
        assert_eq!((w.bytes_written(), w.samples_written()), (one_chunk, 2));
        w.push_sample(&sample(&[1, 2, 3])).unwrap();
        w.flush().unwrap();
        assert_eq!(w.bytes_written(), one_chunk + CHUNK_HEADER_LEN as u64 + row);
        w.flush().unwrap();
        assert_eq!(
            w.bytes_written(),
            one_chunk + CHUNK_HEADER_LEN as u64 + row,
            "an empty flush writes nothing"
        );
        assert_eq!(w.w.len() as u64, w.bytes_written());
    }

    #[test]
    fn events_fill_their_own_chunks() {
        let mut w = TraceWriter::new(Vec::new(), &header(0))
            .unwrap()
            .with_chunk_bytes(48);
        let start = w.bytes_written();
        let lost = Event::Lost {
            time: 1,
            cpu: 0,
            count: 9,
        };
        w.push_event(&lost).unwrap();
        assert_eq!(w.bytes_written(), start, "24 bytes buffered, below 48");
        w.push_event(&lost).unwrap();
        assert_eq!(w.bytes_written(), start + CHUNK_HEADER_LEN as u64 + 48);
        assert_eq!(w.w.len() as u64, w.bytes_written());
    }

    #[test]
    fn a_deferred_header_is_amended_until_the_first_chunk() {
        let mut w = TraceWriter::deferred(Vec::new(), &header(3)).unwrap();
        assert_eq!(w.bytes_written(), 0);
        w.amend_header(|h| h.cpu_model = "amended".into()).unwrap();
        let err = w.amend_header(|h| h.counters.pop().map(drop).unwrap_or(()));
        assert!(matches!(err, Err(TraceError::HeaderWritten)), "{err:?}");
        w.push_sample(&sample(&[1, 2, 3])).unwrap();
        w.amend_header(|h| h.kernel_release = "buffered samples allow it".into())
            .unwrap();
        w.flush().unwrap();
        let err = w.amend_header(|h| h.cpu_model = "too late".into());
        assert!(matches!(err, Err(TraceError::HeaderWritten)), "{err:?}");
        let bytes = w.finish(&Footer::default()).unwrap();
        let reader = crate::trace::TraceReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.header().cpu_model, "amended");
        assert_eq!(reader.header().kernel_release, "buffered samples allow it");
        // A deferred writer that writes nothing but its footer still
        // writes its header first.
        let w = TraceWriter::deferred(Vec::new(), &header(0)).unwrap();
        let bytes = w.finish(&Footer::default()).unwrap();
        assert!(crate::trace::TraceReader::new(bytes.as_slice()).is_ok());
    }

    #[test]
    fn chunk_bytes_is_clamped() {
        let w = TraceWriter::new(Vec::new(), &header(0)).unwrap();
        assert_eq!(w.chunk_bytes, DEFAULT_CHUNK_BYTES);
        assert_eq!(w.with_chunk_bytes(0).chunk_bytes, 1);
        let w = TraceWriter::new(Vec::new(), &header(0)).unwrap();
        assert_eq!(w.with_chunk_bytes(usize::MAX).chunk_bytes, MAX_CHUNK_BYTES);
    }

    #[test]
    fn write_errors_are_io_errors() {
        #[derive(Debug)]
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left",
                ))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = TraceWriter::new(Full, &header(0)).unwrap_err();
        assert!(
            matches!(&err, TraceError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull),
            "{err}"
        );
    }
}
