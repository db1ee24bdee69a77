//! The trace file: a versioned, self-describing header, then checksummed
//! chunks of records appended while recording, ending with a footer.
//!
//! The module is pure: [`TraceWriter`] writes to any [`Write`](std::io::Write)
//! and [`TraceReader`] streams from any [`Read`], one chunk in memory at a
//! time. Samples are fixed-size rows of `40 + 8 * N` bytes for `N`
//! counters, read in place through [`SampleRef`] without allocating per
//! record. A trace cut short by a killed recording reads up to its last
//! whole chunk and [`TraceEnd::Truncated`] says how many bytes were lost.
//! docs/trace-format.md specifies the bytes.
//!
//! ```
//! use perfunc::trace::{read_all, Footer, RecordKind, SampleIn, TraceEnd, TraceWriter};
//! # fn main() -> Result<(), perfunc::trace::TraceError> {
//! # let header: perfunc::trace::TraceHeader = serde_json::from_str(r#"{
//! #   "perfunc_version": "0.1.0", "created_unix_ns": 0, "command_line": [],
//! #   "target": {"kind": "attach", "pid": 1}, "kernel_release": "6.1.0",
//! #   "cpu_model": "test", "ncpus": 1, "clock": "CLOCK_MONOTONIC", "counters": [],
//! #   "probes": [{"id": 0, "function": "f", "raw_name": "f", "binary": "/bin/t",
//! #     "build_id": null, "addr": 4096, "offset": 4096, "size": 16,
//! #     "class": "push-rbp", "kind": "uprobe"}]}"#).unwrap();
//! let mut writer = TraceWriter::new(Vec::new(), &header)?;
//! for (time, kind) in [(100, RecordKind::Entry), (250, RecordKind::Return)] {
//!     let s = SampleIn { time, pid: 7, tid: 7, probe: 0, cpu: 0, kind,
//!                        time_enabled: time, time_running: time, values: &[], key: 0 };
//!     writer.push_sample(&s)?;
//! }
//! let bytes = writer.finish(&Footer { samples: 2, ..Footer::default() })?;
//!
//! let trace = read_all(&bytes[..])?;
//! assert_eq!(trace.samples[1].time - trace.samples[0].time, 150);
//! assert!(matches!(trace.end, TraceEnd::Complete(Footer { samples: 2, .. })));
//! # Ok(())
//! # }
//! ```

use std::io::Read;

mod error;
mod event;
mod format;
mod header;
mod reader;
mod sample;
mod writer;

#[cfg(test)]
mod tests;

pub use error::TraceError;
pub use event::{Event, MAX_USER_STACK};
pub use format::{
    record_size, CHUNK_HEADER_LEN, CHUNK_MAGIC, DEFAULT_CHUNK_BYTES, FILE_HEADER_LEN,
    FLAG_ROUND_END, FORMAT_VERSION, MAGIC, MAX_CHUNK_BYTES,
};
pub use header::{ExitStatus, Footer, ProbeKind, ProbeSite, Target, TraceHeader};
pub use reader::{Chunk, Damage, TraceEnd, TraceReader};
pub use sample::{OwnedSample, RecordKind, SampleBlock, SampleIn, SampleRef};
pub use writer::TraceWriter;

/// A whole trace in memory, for tests and small traces.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The file header.
    pub header: TraceHeader,
    /// Every sample, in file order.
    pub samples: Vec<OwnedSample>,
    /// Every event of a known tag, in file order.
    pub events: Vec<Event>,
    /// How the trace ended.
    pub end: TraceEnd,
}

/// Reads a whole trace into memory. Large traces should be streamed with
/// [`TraceReader`] instead.
///
/// # Errors
///
/// As [`TraceReader::new`] and [`TraceReader::next_chunk`].
pub fn read_all<R: Read>(r: R) -> Result<Trace, TraceError> {
    let mut reader = TraceReader::new(r)?;
    let mut samples = Vec::new();
    let mut events = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        match chunk {
            Chunk::Samples(block) => samples.extend(block.iter().map(OwnedSample::from)),
            Chunk::Events(chunk_events) => events.extend(chunk_events),
            Chunk::Footer(_) => {}
        }
    }
    let end = reader
        .end()
        .cloned()
        .expect("next_chunk returned None, so the trace has ended");
    Ok(Trace {
        header: reader.header().clone(),
        samples,
        events,
        end,
    })
}
