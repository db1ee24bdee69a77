//! Everything that talks to the kernel: tracefs, uprobes, perf counter
//! groups, ring buffers, starting and attaching to the target, signals and
//! cleanup. The rest of perfunc is pure and works on trace files.
//!
//! How a recording is laid out (see docs/architecture.md and FACTS.md):
//! each probed function gets an entry and a return uprobe written into
//! tracefs `uprobe_events`, opened as `PERF_TYPE_TRACEPOINT` events. Per
//! function and per CPU, one perf group holds the entry event (leader), the
//! return event and the counters, so that each probe hit reads all counters
//! atomically (`PERF_SAMPLE_READ` with `PERF_FORMAT_GROUP`). Events are
//! opened on the target's pid with `inherit`, so threads created later are
//! followed, and all events of one CPU write into one ring buffer.

mod error;
pub mod pmu;
mod ring;
mod session;
pub mod sys;
pub mod tracefs;

pub use error::ProbeError;
pub use session::{
    record, Callchain, Place, ProbeTarget, RecordOptions, RecordResult, RecordTarget,
};
