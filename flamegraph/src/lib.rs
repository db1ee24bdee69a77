//! Flamegraphs of perfunc call trees, weighted by a counter.
//!
//! perfunc knows, for every path of probed functions within a thread
//! (`main_loop;parse;alloc`), how many calls took that path and what each
//! counter's *self* delta summed to along it: the cost spent in the last
//! function of the path and not in a probed function it called. Written as
//! folded stacks (`a;b;c VALUE`, one line per path), those self costs add
//! up the way a flamegraph draws them: a frame's width is the sum of its
//! own line and all the lines below it, which is its inclusive cost.
//!
//! This crate makes no system calls. It turns such paths into
//! [`Folded`] stacks, writes them as text, and draws them as an SVG (or a
//! differential SVG of two runs) through [`inferno`], with a tooltip per
//! function that the caller composes (calls, total, mean per call).
//!
//! # Negative values
//!
//! Calibrated self costs can be slightly negative: the probes' cost is an
//! estimate, and a call that cost less than the estimate comes out below
//! zero. A flamegraph cannot draw a negative width, so such a stack is
//! drawn as 0 and counted in [`Folded::clamped`], for the caller to report
//! next to the picture rather than hide.
//!
//! ```
//! use perfunc_flamegraph::Folded;
//!
//! let mut folded = Folded::new();
//! folded.add(["app", "outer"], 0);
//! folded.add(["app", "outer", "toucher"], 8);
//! folded.add(["app", "outer", "middle", "toucher"], 48);
//! let mut text = Vec::new();
//! folded.write_to(&mut text).unwrap();
//! assert_eq!(
//!     String::from_utf8(text).unwrap(),
//!     "app;outer 0\napp;outer;middle;toucher 48\napp;outer;toucher 8\n"
//! );
//! assert_eq!(folded.total(), 56);
//! ```

mod folded;
mod svg;

pub use folded::{Clamped, Folded};
pub use svg::{write_differential_svg, write_svg, SvgOptions, Tooltip};

/// Everything that can go wrong drawing a flamegraph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlamegraphError {
    /// Every stack has a zero (or clamped negative) value: there is no
    /// width to draw.
    #[error(
        "nothing to draw: every call path has a zero cost in this counter; \
         choose another counter with --counter"
    )]
    Empty,

    /// Writing the SVG (or reading the folded stacks back) failed.
    #[error("failed to write the flamegraph")]
    Io(#[from] std::io::Error),
}
