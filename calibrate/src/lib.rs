//! perfunc-calibrate: what perfunc's probes cost, measured on empty
//! functions, and how that cost is taken out of measured calls.
//!
//! A uprobe's cost depends on the probed instruction: the x86-64 kernel
//! emulates `push` and nops, and single-steps everything else out of line,
//! about ten times slower. So calibration measures one baseline per class
//! of first instruction, on [`targets`]: empty functions compiled into
//! perfunc whose first instruction is exactly of their class. perfunc
//! probes them with the mechanism and counter group of a recording, calls
//! them with [`run`] in several rounds, and turns the entry-to-return
//! deltas into a [`Profile`] of robust [`Summary`]s (the deltas are
//! heavy-tailed: a [`Statistic::Median`] by default). A measured call is
//! then [`compensate`]d by its own class's baseline and the baselines of
//! every probed call nested in it, and [`within_noise`] tells whether what
//! is left can be told apart from 0.
//!
//! Design constraints: no syscalls and no dependency on `perfunc`; the
//! measuring is perfunc's job. The only `unsafe` is in the `targets`
//! module (the assembly and one read of a target's code). Targets exist
//! on x86-64 Linux only; elsewhere [`targets`] is empty and the rest works.
//!
//! ```
//! use perfunc_calibrate::{compensate, Profile, ProfileKey, Statistic};
//!
//! let key = ProfileKey {
//!     kernel_release: "6.18.0".into(),
//!     cpu_model: "Example CPU".into(),
//!     counters: vec!["task-clock".into()],
//!     mechanism: "tracefs-uprobe".into(),
//! };
//! let deltas = vec![
//!     ("push-rbp".to_string(), "task-clock".to_string(), vec![1400.0, 1412.0, 1420.0, 180_000.0]),
//!     ("ret".to_string(), "task-clock".to_string(), vec![12_500.0, 12_600.0, 12_700.0]),
//! ];
//! let profile = Profile::from_deltas(key, 0, 1_000_000, 3, deltas);
//! let own = profile.own_cost("push-rbp", "task-clock", Statistic::Median).unwrap();
//! let child = profile.descendant_cost("ret", "task-clock", Statistic::Median).unwrap();
//! assert_eq!(own, 1416.0);
//! // a push-rbp function with one probed ret-class callee, measured at 20,000 ns
//! assert_eq!(compensate(20_000.0, own, child), 5_984.0);
//! let text = profile.to_json();
//! assert_eq!(Profile::from_json(&text).unwrap(), profile);
//! ```

mod compensate;
mod error;
mod profile;
mod stats;
mod targets;

pub use compensate::{compensate, exclusive, within_noise};
pub use error::CalibrationError;
pub use profile::{Baseline, Profile, ProfileKey, Source, PROFILE_VERSION};
pub use stats::{
    median_ci, median_ci_ranks, percentile, summarize, Statistic, Summary, MEDIAN_CI_EXACT_MAX,
};
pub use targets::{nest_target, run, run_nested, target, targets, NestTarget, Target, NEST_CLASS};
