//! The one error type of the trace module.

use std::io;

/// Everything that can go wrong writing or reading a trace.
///
/// A trace cut short at the end is not an error: the reader reports it as
/// [`TraceEnd::Truncated`](super::TraceEnd::Truncated).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The underlying reader or writer failed.
    #[error("trace i/o failed")]
    Io(#[from] io::Error),

    /// The input has no bytes at all.
    #[error("empty file, not a perfunc trace")]
    Empty,

    /// The input does not start with [`MAGIC`](super::MAGIC).
    #[error("not a perfunc trace: it starts with \"{}\" instead of \"PERFUNC\\0\"", .found.escape_ascii())]
    NotATrace {
        /// The first bytes of the input (up to 8).
        found: Vec<u8>,
    },

    /// The file header names a format version this code cannot read.
    #[error(
        "unsupported trace format version {found}: this perfunc reads versions 1 to {supported}; \
         read the trace with the perfunc that wrote it"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this code reads.
        supported: u32,
    },

    /// The input ends inside the file header.
    #[error(
        "trace ends at byte {len}, inside its {needed}-byte file header; \
         the recording stopped before it began, record again"
    )]
    TruncatedHeader {
        /// Bytes the input has.
        len: u64,
        /// Bytes the file header needs.
        needed: u64,
    },

    /// The file header's checksum or JSON is wrong.
    #[error("corrupt trace header at byte {offset}: {reason}")]
    CorruptHeader {
        /// Byte offset of the damaged part.
        offset: u64,
        /// What was found and what was expected.
        reason: String,
    },

    /// A chunk is damaged: bad magic, checksum mismatch, a payload that
    /// does not match its record count, or a chunk after the footer.
    #[error("corrupt chunk at byte {offset}: {reason}")]
    CorruptChunk {
        /// Byte offset of the chunk's header.
        offset: u64,
        /// What was found and what was expected.
        reason: String,
    },

    /// A sample to write has fewer values than the header has counters.
    #[error(
        "sample has {found} counter values but the trace header lists {expected} counters; \
         pass one value per counter"
    )]
    TooFewValues {
        /// Values in the sample.
        found: usize,
        /// Counters in the header.
        expected: usize,
    },

    /// A sample to write has more values than the header has counters.
    #[error(
        "sample has {found} counter values but the trace header lists only {expected} counters; \
         pass one value per counter"
    )]
    TooManyValues {
        /// Values in the sample.
        found: usize,
        /// Counters in the header.
        expected: usize,
    },

    /// A sample to write names a probe the header does not list.
    #[error(
        "sample names probe {probe} but the trace header lists {probes} probes; \
         use an index into the header's probes"
    )]
    UnknownProbe {
        /// The probe id of the sample.
        probe: u32,
        /// Probes in the header.
        probes: usize,
    },

    /// Something to write does not fit its length field.
    #[error("the {what} is {len} bytes, more than the {max} the trace format allows; shorten it")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The largest length the format allows.
        max: u64,
    },

    /// A trace header was changed after it was written, or in what its
    /// samples depend on (a bug in the recorder).
    #[error(
        "the trace header cannot be changed: it is written already, or the change \
         touches its counters, probes or key column"
    )]
    HeaderWritten,

    /// The header or footer could not be encoded as JSON.
    #[error("failed to encode the trace {what} as JSON")]
    Json {
        /// "header" or "footer".
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem_and_the_remedy() {
        let err = TraceError::NotATrace {
            found: b"\x7fELF\x02\x01\x01\x00".to_vec(),
        };
        assert_eq!(
            err.to_string(),
            "not a perfunc trace: it starts with \"\\x7fELF\\x02\\x01\\x01\\x00\" instead of \"PERFUNC\\0\""
        );
        let err = TraceError::UnsupportedVersion {
            found: 2,
            supported: 1,
        };
        assert_eq!(
            err.to_string(),
            "unsupported trace format version 2: this perfunc reads versions 1 to 1; \
             read the trace with the perfunc that wrote it"
        );
        let err = TraceError::TooFewValues {
            found: 2,
            expected: 3,
        };
        assert_eq!(
            err.to_string(),
            "sample has 2 counter values but the trace header lists 3 counters; pass one value per counter"
        );
    }

    #[test]
    fn io_errors_keep_their_source() {
        let err = TraceError::from(io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "trace i/o failed");
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "disk on fire");
    }
}
