//! The inclusive deltas of one function and counter: kept exactly up to a
//! limit, in an HDR histogram beyond it, and summarized at the end.

use hdrhistogram::Histogram;
use perfunc_calibrate::median_ci_ranks;

use super::{HDR_SIGNIFICANT_DIGITS, NOISE_ALPHA};

/// The percentiles reported, in percent.
const PERCENTS: [u64; 3] = [50, 90, 99];

/// What the statistics say about a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Summary {
    pub count: u64,
    pub sum: i128,
    pub mean: f64,
    pub stddev: f64,
    pub min: i64,
    pub max: i64,
    /// p50, p90, p99.
    pub percentiles: [f64; 3],
    pub exact: bool,
    /// The distribution-free confidence interval of the median at level
    /// `1 - NOISE_ALPHA` (`perfunc_calibrate::median_ci`), when asked for,
    /// the values are exact and there is at least one.
    pub median_ci: Option<(f64, f64)>,
}

/// Values of one function and counter.
#[derive(Debug)]
pub(super) enum ValueStore {
    /// Every value, while there are at most the exact limit.
    Exact(Vec<i64>),
    /// Beyond it.
    Hdr(Box<HdrStore>),
}

impl Default for ValueStore {
    fn default() -> Self {
        Self::Exact(Vec::new())
    }
}

impl ValueStore {
    /// Adds `values`, moving to a histogram once more than `limit` values
    /// have been added.
    pub(super) fn extend(&mut self, values: &[i64], limit: usize) {
        let rest = match self {
            Self::Exact(kept) => {
                let room = limit.saturating_sub(kept.len()).min(values.len());
                kept.extend_from_slice(&values[..room]);
                let rest = &values[room..];
                let Some(&first) = rest.first() else {
                    return;
                };
                let kept = std::mem::take(kept);
                *self = Self::Hdr(Box::new(HdrStore::from_exact(&kept, first)));
                rest
            }
            Self::Hdr(_) => values,
        };
        if let Self::Hdr(hdr) = self {
            rest.iter().for_each(|&v| hdr.record(v));
        }
    }

    /// The statistics of the values (zeros and `exact` when empty), with
    /// the confidence interval of the median if `with_ci`.
    pub(super) fn summary(&mut self, with_ci: bool) -> Summary {
        match self {
            Self::Exact(values) => exact_summary(values, with_ci),
            Self::Hdr(hdr) => hdr.summary(),
        }
    }
}

/// Statistics of every value, kept: two passes for the deviation; the
/// nearest-rank percentiles (and, if `with_ci`, the order statistics that
/// bound the median's confidence interval) by counting when the values
/// span no more than their number, by selection otherwise (which reorders
/// `values`).
fn exact_summary(values: &mut [i64], with_ci: bool) -> Summary {
    let count = values.len() as u64;
    if count == 0 {
        return Summary {
            exact: true,
            ..Summary::default()
        };
    }
    let (sum, min, max) = values
        .iter()
        .fold((0i128, i64::MAX, i64::MIN), |(s, lo, hi), &v| {
            (s + i128::from(v), lo.min(v), hi.max(v))
        });
    let mean = sum as f64 / count as f64;
    let m2: f64 = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
    let [p50, p90, p99] = PERCENTS.map(|percent| rank(percent, count));
    // Without the interval its ranks repeat the median's: no extra work.
    let (low, high) = if with_ci {
        let (low, high) = median_ci_ranks(values.len(), NOISE_ALPHA);
        (low as u64, high as u64)
    } else {
        (p50, p50)
    };
    let [p50, p90, p99, low, high] = ranked(values, min, max, [p50, p90, p99, low, high]);
    Summary {
        count,
        sum,
        mean,
        stddev: deviation(m2, count),
        min,
        max,
        percentiles: [p50, p90, p99],
        exact: true,
        median_ci: with_ci.then_some((low, high)),
    }
}

/// The values of 1-based `ranks` (in any order) among `values`, whose
/// smallest is `min` and largest `max`: by counting when they span no more
/// than their number, by selection otherwise.
fn ranked<const N: usize>(values: &mut [i64], min: i64, max: i64, ranks: [u64; N]) -> [f64; N] {
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_unstable_by_key(|&i| ranks[i]);
    let ascending = order.map(|i| ranks[i]);
    let span = i128::from(max) - i128::from(min);
    let found = if span < values.len() as i128 {
        counted_ranks(values, min, span as usize + 1, ascending)
    } else {
        selected_ranks(values, ascending)
    };
    let mut out = [0.0; N];
    for (i, value) in order.into_iter().zip(found) {
        out[i] = value;
    }
    out
}

/// The values of 1-based `ranks` (ascending) by counting: one pass, for
/// values within `span` of `min` where `span` is at most their number.
fn counted_ranks<const N: usize>(
    values: &[i64],
    min: i64,
    span: usize,
    ranks: [u64; N],
) -> [f64; N] {
    let mut counts = vec![0u64; span];
    for &v in values {
        counts[(v - min) as usize] += 1;
    }
    let mut out = [0.0; N];
    let mut next = 0;
    let mut seen = 0;
    for (offset, &count) in counts.iter().enumerate() {
        seen += count;
        while next < N && ranks[next] <= seen {
            out[next] = (min + offset as i64) as f64;
            next += 1;
        }
    }
    out
}

/// The values of 1-based `ranks` (ascending) by selection, largest first
/// so each selection works on the part below the previous one.
fn selected_ranks<const N: usize>(values: &mut [i64], ranks: [u64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    let mut bound = values.len();
    for (i, rank) in ranks.iter().enumerate().rev() {
        let index = *rank as usize - 1;
        let (_, value, _) = values[..bound].select_nth_unstable(index);
        out[i] = *value as f64;
        bound = index + 1;
    }
    out
}

/// Nearest rank (1-based) of `percent` among `count` values.
fn rank(percent: u64, count: u64) -> u64 {
    (percent * count).div_ceil(100).max(1)
}

/// Sample standard deviation from the sum of squared deviations.
fn deviation(m2: f64, count: u64) -> f64 {
    if count < 2 {
        0.0
    } else {
        (m2 / (count - 1) as f64).sqrt()
    }
}

/// Values beyond the exact limit: an HDR histogram of `value - offset`
/// and exact running totals.
#[derive(Debug)]
pub(super) struct HdrStore {
    hist: Histogram<u64>,
    offset: i64,
    count: u64,
    sum: i128,
    min: i64,
    max: i64,
    /// Welford's running mean and sum of squared deviations.
    mean: f64,
    m2: f64,
}

impl HdrStore {
    /// Takes over from the kept values; `next` is the value that did not
    /// fit, recorded next by the caller and counted in the offset.
    fn from_exact(kept: &[i64], next: i64) -> Self {
        let hist = Histogram::new(HDR_SIGNIFICANT_DIGITS)
            .expect("3 significant digits is a valid histogram precision");
        let count = kept.len() as u64;
        let sum: i128 = kept.iter().map(|&v| i128::from(v)).sum();
        let mean = if count == 0 {
            0.0
        } else {
            sum as f64 / count as f64
        };
        let mut store = Self {
            hist,
            offset: kept.iter().copied().fold(next, i64::min),
            count,
            sum,
            min: kept.iter().copied().fold(next, i64::min),
            max: kept.iter().copied().fold(next, i64::max),
            mean,
            m2: kept.iter().map(|&v| (v as f64 - mean).powi(2)).sum(),
        };
        for &v in kept {
            store.add(v);
        }
        store
    }

    /// Records `value` in the histogram, growing it as needed.
    fn add(&mut self, value: i64) {
        let shifted = self.shifted(value);
        // Growing fails only where `usize` cannot index the counts (not on
        // 64-bit targets); the value then saturates at the top.
        if self.hist.record(shifted).is_err() {
            self.hist.saturating_record(shifted);
        }
    }

    /// `value - offset`, clamped at 0.
    fn shifted(&self, value: i64) -> u64 {
        (i128::from(value) - i128::from(self.offset)).max(0) as u64
    }

    fn record(&mut self, value: i64) {
        self.add(value);
        self.count += 1;
        self.sum += i128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let delta = value as f64 - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value as f64 - self.mean);
    }

    fn summary(&self) -> Summary {
        let percentile = |percent: u64| {
            let shifted = self.hist.value_at_quantile(percent as f64 / 100.0);
            let value = i128::from(self.offset) + i128::from(shifted);
            value.clamp(i128::from(self.min), i128::from(self.max)) as f64
        };
        Summary {
            count: self.count,
            sum: self.sum,
            mean: self.sum as f64 / self.count as f64,
            stddev: deviation(self.m2, self.count),
            min: self.min,
            max: self.max,
            percentiles: PERCENTS.map(percentile),
            exact: false,
            median_ci: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(rank(50, 1), 1);
        assert_eq!(rank(50, 4), 2);
        assert_eq!(rank(50, 5), 3);
        assert_eq!(rank(90, 10), 9);
        assert_eq!(rank(90, 11), 10);
        assert_eq!(rank(99, 100), 99);
        assert_eq!(rank(99, 101), 100);
    }

    #[test]
    fn exact_summary_of_known_values() {
        let mut store = ValueStore::default();
        store.extend(&[4, 1, 3, 2, 10], 100);
        let s = store.summary(false);
        assert_eq!((s.count, s.sum, s.min, s.max), (5, 20, 1, 10));
        assert_eq!(s.mean, 4.0);
        // deviations 0, -3, -1, -2, 6: squares sum to 50, over n - 1 = 4.
        assert_eq!(s.stddev, 12.5f64.sqrt());
        assert_eq!(s.percentiles, [3.0, 10.0, 10.0]);
        assert!(s.exact);
    }

    #[test]
    fn counting_and_selection_agree() {
        let mut rng = 12_345u64;
        let values: Vec<i64> = (0..1_000)
            .map(|_| {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (rng >> 40) as i64 % 700 - 300
            })
            .collect();
        let ranks = PERCENTS.map(|p| rank(p, 1_000));
        let (min, max) = (*values.iter().min().unwrap(), *values.iter().max().unwrap());
        let counted = counted_ranks(&values, min, (max - min) as usize + 1, ranks);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let expected = ranks.map(|r| sorted[r as usize - 1] as f64);
        assert_eq!(counted, expected);
        assert_eq!(selected_ranks(&mut values.clone(), ranks), expected);
    }

    #[test]
    fn median_ci_matches_the_calibrate_crate_by_counting_and_selection() {
        // n = 10: ranks 2 and 9 at 95 %.
        let values = [70, -50, 30, 20, -40, 80, 40, 60, -30, 50];
        let mut sorted = values.map(|v| v as f64);
        sorted.sort_unstable_by(f64::total_cmp);
        let expected = perfunc_calibrate::median_ci(&sorted, NOISE_ALPHA);
        assert_eq!(expected, (-40.0, 70.0));
        let mut store = ValueStore::default();
        store.extend(&values, 100);
        let s = store.summary(true);
        assert_eq!(s.median_ci, Some(expected));
        assert_eq!(s.percentiles, [30.0, 70.0, 80.0]);
        // A narrow span is counted, not selected.
        let mut narrow = ValueStore::default();
        narrow.extend(&[3, 1, 2, 2, 1, 3, 2, 1, 3, 2], 100);
        assert_eq!(narrow.summary(true).median_ci, Some((1.0, 3.0)));
        assert_eq!(narrow.summary(false).median_ci, None);
        assert_eq!(ValueStore::default().summary(true).median_ci, None);
    }

    #[test]
    fn a_histogram_gives_no_median_ci() {
        let mut store = ValueStore::default();
        store.extend(&[5, 6, 7, 8], 2);
        let s = store.summary(true);
        assert_eq!((s.exact, s.median_ci), (false, None));
    }

    #[test]
    fn empty_and_single_value() {
        let empty = ValueStore::default().summary(false);
        assert_eq!(
            empty,
            Summary {
                exact: true,
                ..Summary::default()
            }
        );
        let mut one = ValueStore::default();
        one.extend(&[-7], 100);
        let s = one.summary(false);
        assert_eq!((s.count, s.mean, s.stddev), (1, -7.0, 0.0));
        assert_eq!(s.percentiles, [-7.0; 3]);
    }

    #[test]
    fn beyond_the_limit_a_histogram_takes_over() {
        let values: Vec<i64> = (1..=10_000).map(|v| 1_000 + v).collect();
        let mut exact = ValueStore::default();
        exact.extend(&values, usize::MAX);
        let mut hdr = ValueStore::default();
        for chunk in values.chunks(7) {
            hdr.extend(chunk, 100);
        }
        assert!(matches!(hdr, ValueStore::Hdr(_)));
        let (e, h) = (exact.summary(false), hdr.summary(false));
        assert_eq!(
            (h.count, h.sum, h.min, h.max),
            (e.count, e.sum, e.min, e.max)
        );
        assert_eq!(h.mean, e.mean);
        assert!((h.stddev - e.stddev).abs() < 1e-9 * e.stddev);
        assert_eq!(e.percentiles, [6_000.0, 10_000.0, 10_900.0]);
        assert!(!h.exact);
        let offset = 1_001.0;
        for (he, ee) in h.percentiles.iter().zip(e.percentiles) {
            let error = (he - ee).abs() / (ee - offset);
            assert!(
                error <= crate::analysis::PERCENTILE_RELATIVE_ERROR,
                "{he} vs {ee}"
            );
        }
    }

    #[test]
    fn values_below_the_offset_are_clamped() {
        let mut store = ValueStore::default();
        store.extend(&[50, 60, 10, 10, 10], 2);
        let s = store.summary(false);
        assert_eq!((s.min, s.max, s.count), (10, 60, 5));
        // The value that did not fit counts in the offset (10), so nothing
        // is clamped here; p50 is the third of 10, 10, 10, 50, 60.
        assert_eq!(s.percentiles[0], 10.0);
        let mut late = ValueStore::default();
        late.extend(&[50, 60, 55, 5, 5, 5], 2);
        let s = late.summary(false);
        assert_eq!((s.min, s.max), (5, 60));
        // The offset is 50; the three 5s are recorded as 50, so p50 (rank
        // 3 of 5, 5, 5, 50, 55, 60) reads 50 where the exact value is 5.
        assert_eq!(s.percentiles[0], 50.0);
    }
}
