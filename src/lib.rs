//! perfunc: what each function costs in hardware terms, call by call.
//!
//! An entry probe and a return probe on a function read a group of perf
//! counters; the difference between the two readings is that call's cost.
//! The library is split by concept:
//!
//! - [`events`]: counter names to `perf_event_attr` descriptions (pure).
//! - [`kernel`]: `-k` specs (system calls, tracepoint pairs, kernel
//!   functions), /proc/kallsyms, tracepoint formats, kprobe definitions
//!   (pure).
//! - [`symbols`]: ELF functions, globs, demangling, file offsets and the
//!   class of each function's first instruction.
//! - [`trace`]: the versioned trace file, its writer and streaming reader
//!   (pure).
//! - `probe` (Linux only): the one module that makes syscalls: tracefs,
//!   uprobes, counter groups, ring buffers, process launch and attach.
//! - [`analysis`]: pairing, statistics, the call tree and calibration
//!   (pure).
//! - [`report`]: the report formats and the flamegraph input (pure).
//! - [`diff`]: two runs compared function by function, with the
//!   statistics to back each verdict (pure).
//! - `output` (Linux only): output files replaced whole on success, never
//!   written through a symlink.
//! - [`cli`]: command-line definitions and the commands built on the rest.

pub mod analysis;
pub mod calibration;
pub mod callchain;
pub mod cli;
pub mod demo;
pub mod diff;
pub mod events;
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod output;
#[cfg(target_os = "linux")]
pub mod probe;
pub mod report;
pub mod symbolize;
pub mod symbols;
pub mod trace;
pub mod unwind;
