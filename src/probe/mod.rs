//! Everything that talks to the kernel: tracefs, uprobes, perf counter
//! groups, ring buffers, starting and attaching to the target, signals and
//! cleanup. The rest of perfunc is pure and works on trace files.
//!
//! How a recording is laid out (see docs/architecture.md and FACTS.md):
//! each probed function gets an entry and a return uprobe written into
//! tracefs `uprobe_events`, opened as `PERF_TYPE_TRACEPOINT` events. Per
//! function and per CPU, one perf group holds the entry event (leader), the
//! return event and the counters, so that each probe hit reads all counters
//! atomically (`PERF_SAMPLE_READ` with `PERF_FORMAT_GROUP`).
//!
//! Threads and processes the target creates are followed in one of two
//! ways (`--follow`, docs/kernel.md). Where the kernel accepts `inherit`
//! with `PERF_SAMPLE_READ` (Linux 6.12 and later), the groups are opened
//! per CPU on the target's pid with `inherit`, and all events of one CPU
//! write into one ring buffer. Elsewhere, and when asked, the groups are
//! opened per task on any CPU, each task with a ring of its own, and every
//! new task is held at birth by ptrace (`ptrace.rs`) until its groups are
//! open; such counters follow their task across CPUs.

mod error;
pub mod pmu;
mod ptrace;
mod ring;
mod session;
pub mod sys;
pub mod tracefs;

pub use error::ProbeError;
pub use session::{
    kernel_inherits_sample_read, record, resolve_follow, Burst, Callchain, Follow, Place,
    ProbeTarget, RecordOptions, RecordResult, RecordTarget,
};
