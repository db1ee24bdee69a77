//! Folded stacks: one line per call path, `frame;frame;frame VALUE`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

/// Stacks whose summed value was negative and is drawn as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clamped {
    /// How many stacks.
    pub stacks: u64,
    /// The sum of their (negative) values.
    pub total: i128,
}

/// Folded stacks, keyed by path, with the summed value of each path's last
/// frame. Lines are kept sorted by path, so the output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    /// Path (frames joined by `;`) to its summed value, negative included.
    stacks: BTreeMap<String, i128>,
}

impl Folded {
    /// No stacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` to the stack `frames` (outermost first). Adding to the
    /// same path twice sums the values. A frame name's `;` (the folded
    /// format's separator) becomes `:`, and its line breaks and tabs become
    /// spaces, so every name stays one frame on one line.
    pub fn add<I, S>(&mut self, frames: I, value: i128)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut path = String::new();
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 {
                path.push(';');
            }
            path.extend(frame.as_ref().chars().map(sanitize));
        }
        *self.stacks.entry(path).or_insert(0) += value;
    }

    /// Whether there is no stack at all.
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The drawn value of every stack, in path order: negative sums are
    /// drawn as 0 (see [`Folded::clamped`]).
    pub fn stacks(&self) -> impl Iterator<Item = (&str, u64)> {
        self.stacks
            .iter()
            .map(|(path, &value)| (path.as_str(), drawn(value)))
    }

    /// The sum of the drawn values: the width of the whole graph.
    pub fn total(&self) -> u64 {
        self.stacks().map(|(_, value)| value).sum()
    }

    /// The stacks with a negative sum, drawn as 0.
    pub fn clamped(&self) -> Clamped {
        self.stacks
            .values()
            .filter(|&&value| value < 0)
            .fold(Clamped::default(), |acc, &value| Clamped {
                stacks: acc.stacks + 1,
                total: acc.total + value,
            })
    }

    /// Writes the folded text ([`Folded`]'s `Display`) to `out`.
    pub fn write_to<W: Write>(&self, mut out: W) -> io::Result<()> {
        write!(out, "{self}")
    }

    /// The folded text as lines, without zero-valued stacks (which a
    /// flamegraph cannot draw).
    pub(crate) fn drawable_lines(&self) -> Vec<String> {
        self.stacks()
            .filter(|&(_, value)| value > 0)
            .map(|(path, value)| format!("{path} {value}"))
            .collect()
    }
}

/// The folded text: `path VALUE` per line, in path order, with the drawn
/// values.
impl fmt::Display for Folded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, value) in self.stacks() {
            writeln!(f, "{path} {value}")?;
        }
        Ok(())
    }
}

/// A stack's value as drawn: 0 for a negative sum, saturated at `u64::MAX`.
fn drawn(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

fn sanitize(c: char) -> char {
    match c {
        ';' => ':',
        '\n' | '\r' | '\t' => ' ',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(folded: &Folded) -> String {
        folded.to_string()
    }

    #[test]
    fn sums_repeated_paths_and_sorts_lines() {
        let mut f = Folded::new();
        f.add(["p", "b"], 3);
        f.add(["p", "a"], 1);
        f.add(["p", "b"], 4);
        assert_eq!(text(&f), "p;a 1\np;b 7\n");
        assert_eq!(f.total(), 8);
        assert_eq!(f.clamped(), Clamped::default());
    }

    #[test]
    fn negative_sums_are_drawn_as_zero_and_counted() {
        let mut f = Folded::new();
        f.add(["p", "a"], -5);
        f.add(["p", "b"], -2);
        f.add(["p", "b"], 1);
        f.add(["p", "c"], 10);
        assert_eq!(text(&f), "p;a 0\np;b 0\np;c 10\n");
        assert_eq!(f.total(), 10);
        assert_eq!(
            f.clamped(),
            Clamped {
                stacks: 2,
                total: -6
            }
        );
        assert_eq!(f.drawable_lines(), ["p;c 10"]);
    }

    #[test]
    fn names_stay_one_frame_on_one_line() {
        let mut f = Folded::new();
        f.add(["proc", "a;b", "std::vector<int>::push_back(int\n)"], 2);
        assert_eq!(text(&f), "proc;a:b;std::vector<int>::push_back(int ) 2\n");
    }

    #[test]
    fn huge_values_saturate() {
        let mut f = Folded::new();
        f.add(["x"], i128::from(u64::MAX) + 5);
        assert_eq!(f.total(), u64::MAX);
    }

    #[test]
    fn empty() {
        let f = Folded::new();
        assert!(f.is_empty());
        assert_eq!(f.total(), 0);
        assert_eq!(text(&f), "");
    }
}
