//! Integration tests: real probes on fixture programs built from the
//! sources in tests/fixtures. They need root, uprobes and tracefs; with
//! CI=true a missing feature is a failure, elsewhere the test is skipped
//! with a message.

mod calibration;
mod chains;
// `classes()` serves the calibration tests (tests/calibration).
#[allow(dead_code)]
mod common;
mod compare;
mod errors;
mod follow;
mod kernel;
mod kprobes;
mod output;
mod programs;
mod readme;
mod record;
mod signals;
