//! Robust summaries of probe-cost deltas and a confidence interval of the
//! median.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CalibrationError;

/// Summary statistics of a set of deltas (one counter, one target).
///
/// Percentiles are *nearest rank*: with the `n` values sorted ascending and
/// numbered from 1, the p-th percentile is the value of rank
/// `⌈p·n/100⌉` (at least 1). They are always one of the values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`; 0 for one value).
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Median: the middle value, or the mean of the two middle values for
    /// an even `n`.
    pub median: f64,
    /// Median absolute deviation from the median, unscaled (not multiplied
    /// by 1.4826).
    pub mad: f64,
    /// Mean of the values between the 1st and the 99th percentile,
    /// inclusive.
    pub trimmed_mean: f64,
    /// 1st percentile (nearest rank).
    pub p1: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Summarizes `values`, which it sorts in place (ascending, by
/// [`f64::total_cmp`]). `None` when there are no values. Values are meant
/// to be finite; a NaN makes the mean and the statistics it reaches NaN.
pub fn summarize(values: &mut [f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let sorted = &*values;
    let n = sorted.len();
    let mean = mean_of(sorted);
    let stddev = if n > 1 {
        let ss: f64 = sorted.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let median = median_of_sorted(sorted);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
    deviations.sort_unstable_by(f64::total_cmp);
    let mad = median_of_sorted(&deviations);
    let p1 = percentile(sorted, 1);
    let p99 = percentile(sorted, 99);
    let trimmed: Vec<f64> = sorted
        .iter()
        .copied()
        .filter(|v| (p1..=p99).contains(v))
        .collect();
    Some(Summary {
        n: n as u64,
        mean,
        stddev,
        min: sorted[0],
        max: sorted[n - 1],
        median,
        mad,
        trimmed_mean: mean_of(&trimmed),
        p1,
        p5: percentile(sorted, 5),
        p25: percentile(sorted, 25),
        p75: percentile(sorted, 75),
        p95: percentile(sorted, 95),
        p99,
    })
}

/// The `p`-th percentile (0 < p ≤ 100) of non-empty ascending `sorted`, by
/// nearest rank.
pub fn percentile(sorted: &[f64], p: u32) -> f64 {
    let n = sorted.len();
    let rank = (p as usize * n).div_ceil(100).clamp(1, n);
    sorted[rank - 1]
}

fn mean_of(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Which statistic of a baseline is subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// The median: robust to the heavy tail of probe-cost deltas.
    #[default]
    Median,
    /// The mean of the values between the 1st and 99th percentiles.
    Trimmed,
    /// The plain mean: pulled up by rare slow hits.
    Mean,
}

impl Statistic {
    /// Every statistic, the default first.
    pub const ALL: [Statistic; 3] = [Statistic::Median, Statistic::Trimmed, Statistic::Mean];

    /// The name used on the command line: `median`, `trimmed` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Trimmed => "trimmed",
            Statistic::Mean => "mean",
        }
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Statistic {
    type Err = CalibrationError;

    fn from_str(s: &str) -> Result<Statistic, CalibrationError> {
        Statistic::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| CalibrationError::UnknownStatistic { name: s.to_owned() })
    }
}

impl Summary {
    /// The value of statistic `s`.
    pub fn value(&self, s: Statistic) -> f64 {
        match s {
            Statistic::Median => self.median,
            Statistic::Trimmed => self.trimmed_mean,
            Statistic::Mean => self.mean,
        }
    }
}

/// Largest `n` for which [`median_ci`] sums the binomial distribution
/// exactly; above it, the normal approximation is used.
pub const MEDIAN_CI_EXACT_MAX: usize = 100_000;

/// A distribution-free confidence interval of the median of ascending
/// `sorted`, at level `1 − alpha`: `(x₍ₖ₎, x₍ₙ₊₁₋ₖ₎)` (order statistics,
/// numbered from 1), with `k` the largest rank such that
/// `P(B ≤ k − 1) ≤ alpha/2` for `B ~ Binomial(n, ½)`. Its coverage is
/// `1 − 2·P(B ≤ k − 1) ≥ 1 − alpha`.
///
/// The binomial sum is exact up to [`MEDIAN_CI_EXACT_MAX`] values, the
/// normal approximation with continuity correction above. When `n` is too
/// small to reach the level (`n ≤ 5` at `alpha = 0.05`), or `alpha` is
/// not in (0, 1), the interval is the whole range. `(NaN, NaN)` for no
/// values.
pub fn median_ci(sorted: &[f64], alpha: f64) -> (f64, f64) {
    let n = sorted.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (low, high) = median_ci_ranks(n, alpha);
    (sorted[low - 1], sorted[high - 1])
}

/// The 1-based ranks `(k, n + 1 − k)` of [`median_ci`] for `n ≥ 1` values.
pub fn median_ci_ranks(n: usize, alpha: f64) -> (usize, usize) {
    assert!(n > 0, "median_ci_ranks needs at least one value");
    let k = if !(alpha > 0.0 && alpha < 1.0) {
        1
    } else if n <= MEDIAN_CI_EXACT_MAX {
        exact_rank(n, alpha)
    } else {
        normal_rank(n, alpha)
    };
    let k = k.clamp(1, n.div_ceil(2));
    (k, n + 1 - k)
}

/// Largest `k ≥ 1` with `P(B ≤ k − 1) ≤ alpha/2`, `B ~ Binomial(n, ½)`
/// (1 if even `k = 1` misses it), summing the probabilities in log space
/// so that `½ⁿ` does not underflow the recurrence.
fn exact_rank(n: usize, alpha: f64) -> usize {
    let half = alpha / 2.0;
    let nf = n as f64;
    let mut k = 0; // invariant: P(B ≤ k − 1) ≤ half
    let mut cdf = 0.0; // P(B ≤ k − 1)
    let mut ln_pmf = -nf * std::f64::consts::LN_2; // ln P(B = k)
    while k < n {
        let next = cdf + ln_pmf.exp(); // P(B ≤ k)
        if next > half {
            break;
        }
        cdf = next;
        k += 1;
        // P(B = k) = P(B = k − 1) · (n − k + 1) / k
        ln_pmf += ((n - k + 1) as f64).ln() - (k as f64).ln();
    }
    k.max(1)
}

/// [`exact_rank`] through the normal approximation:
/// `P(B ≤ k − 1) ≈ Φ((k − ½ − n/2) / (√n/2))`.
fn normal_rank(n: usize, alpha: f64) -> usize {
    let nf = n as f64;
    let z = inverse_normal_cdf(1.0 - alpha / 2.0);
    let k = (nf / 2.0 + 0.5 - z * nf.sqrt() / 2.0).floor();
    if k < 1.0 {
        1
    } else {
        k as usize
    }
}

/// The standard normal quantile function (Acklam's rational approximation,
/// relative error below 1.2e-9), for `0 < p < 1`.
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_of(values: &[f64]) -> Summary {
        summarize(&mut values.to_vec()).unwrap()
    }

    #[test]
    fn no_values_no_summary() {
        assert_eq!(summarize(&mut []), None);
    }

    #[test]
    fn one_value() {
        let s = summary_of(&[7.0]);
        assert_eq!(s.n, 1);
        assert_eq!((s.mean, s.stddev, s.min, s.max), (7.0, 0.0, 7.0, 7.0));
        assert_eq!((s.median, s.mad, s.trimmed_mean), (7.0, 0.0, 7.0));
        assert_eq!(
            (s.p1, s.p5, s.p25, s.p75, s.p95, s.p99),
            (7.0, 7.0, 7.0, 7.0, 7.0, 7.0)
        );
    }

    #[test]
    fn odd_count_unsorted_input() {
        let mut values = [5.0, 1.0, 4.0, 2.0, 3.0];
        let s = summarize(&mut values).unwrap();
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0], "sorted in place");
        assert_eq!(s.n, 5);
        assert_eq!(s.mean, 3.0);
        assert_eq!(s.stddev, 2.5_f64.sqrt()); // Σ(x − 3)² = 10, / 4
        assert_eq!((s.min, s.max, s.median), (1.0, 5.0, 3.0));
        // |x − 3| = 2 1 0 1 2 → sorted 0 1 1 2 2 → 1
        assert_eq!(s.mad, 1.0);
        // nearest rank: ⌈p·5/100⌉ → p1, p5: rank 1; p25: 2; p75: 4; p95, p99: 5
        assert_eq!(
            (s.p1, s.p5, s.p25, s.p75, s.p95, s.p99),
            (1.0, 1.0, 2.0, 4.0, 5.0, 5.0)
        );
        assert_eq!(s.trimmed_mean, 3.0);
    }

    #[test]
    fn even_count_median_is_mean_of_middle_pair() {
        let s = summary_of(&[4.0, 1.0, 3.0, 10.0]);
        assert_eq!(s.median, 3.5);
        // |x − 3.5| = 2.5 0.5 0.5 6.5 → 0.5 0.5 2.5 6.5 → (0.5 + 2.5) / 2
        assert_eq!(s.mad, 1.5);
        assert_eq!(s.mean, 4.5);
    }

    #[test]
    fn ties() {
        let s = summary_of(&[2.0, 2.0, 2.0, 2.0, 9.0, 2.0, 2.0]);
        assert_eq!(s.median, 2.0);
        assert_eq!(s.mad, 0.0);
        assert_eq!((s.p25, s.p75, s.p95), (2.0, 2.0, 9.0));
        assert_eq!(s.mean, 3.0);
        // p1 = 2, p99 = 9: every value is kept (inclusive bounds)
        assert_eq!(s.trimmed_mean, 3.0);
    }

    #[test]
    fn heavy_tail_moves_the_mean_not_the_median_or_trimmed_mean() {
        // 198 values of 100, one of 101 and one slow hit of 100,000: like
        // probe-cost deltas, where rare hits take 100× the usual.
        let mut values = vec![100.0; 198];
        values.push(101.0);
        values.push(100_000.0);
        let s = summarize(&mut values).unwrap();
        assert_eq!(s.n, 200);
        assert_eq!(s.median, 100.0);
        assert_eq!(s.mad, 0.0);
        // p1: rank 2 → 100; p99: rank 198 → 100; the 101 and the tail drop
        assert_eq!((s.p1, s.p99), (100.0, 100.0));
        assert_eq!(s.trimmed_mean, 100.0);
        assert_eq!(s.mean, (198.0 * 100.0 + 101.0 + 100_000.0) / 200.0);
        assert!(s.mean > 599.0);
        assert_eq!(s.max, 100_000.0);
        assert_eq!(s.value(Statistic::Median), 100.0);
        assert_eq!(s.value(Statistic::Trimmed), 100.0);
        assert_eq!(s.value(Statistic::Mean), s.mean);
    }

    #[test]
    fn trimmed_mean_drops_both_tails() {
        // 1..=1000: p1 is rank 10 (value 10), p99 rank 990 (value 990)
        let mut values: Vec<f64> = (1..=1000).map(f64::from).collect();
        values[999] = 1e9;
        values[0] = -1e9;
        let s = summarize(&mut values).unwrap();
        assert_eq!((s.p1, s.p99), (10.0, 990.0));
        assert_eq!(s.trimmed_mean, 500.0); // mean of 10..=990
        assert_eq!(s.median, 500.5);
        assert_eq!((s.p5, s.p25, s.p75, s.p95), (50.0, 250.0, 750.0, 950.0));
        // |x − 500.5| for 2..=999 is 0.5, 1.5, ..., 498.5, each twice; with
        // the two huge ones, the middle pair of the 1000 is 249.5 and 250.5
        assert_eq!(s.mad, 250.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=7).map(f64::from).collect();
        // ⌈p·7/100⌉
        assert_eq!(percentile(&sorted, 1), 1.0);
        assert_eq!(percentile(&sorted, 14), 1.0); // 0.98 → 1
        assert_eq!(percentile(&sorted, 15), 2.0); // 1.05 → 2
        assert_eq!(percentile(&sorted, 50), 4.0); // 3.5 → 4
        assert_eq!(percentile(&sorted, 100), 7.0);
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        for p in [1, 5, 25, 75, 95, 99] {
            assert_eq!(percentile(&sorted, p), f64::from(p));
        }
    }

    #[test]
    fn statistic_names_parse_and_display() {
        for (name, st) in [
            ("median", Statistic::Median),
            ("trimmed", Statistic::Trimmed),
            ("mean", Statistic::Mean),
        ] {
            assert_eq!(name.parse::<Statistic>().unwrap(), st);
            assert_eq!(st.to_string(), name);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(Statistic::default(), Statistic::Median);
        let err = "Median".parse::<Statistic>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown statistic `Median`; use one of median, trimmed, mean"
        );
        assert!("trimmed-mean".parse::<Statistic>().is_err());
    }

    /// P(B ≤ j) for B ~ Binomial(n, ½), directly.
    fn binom_cdf(n: usize, j: usize) -> f64 {
        let mut c = 1.0; // C(n, 0)
        let mut sum = 0.0;
        for i in 0..=j {
            if i > 0 {
                c = c * (n - i + 1) as f64 / i as f64;
            }
            sum += c;
        }
        sum / 2f64.powi(n as i32)
    }

    #[test]
    fn median_ci_small_n_matches_the_binomial_table() {
        // 95 % sign-test intervals of the median (e.g. Conover, table A3).
        let table = [
            (1, (1, 1)),
            (2, (1, 2)),
            (5, (1, 5)),
            (6, (1, 6)),
            (8, (1, 8)),
            (9, (2, 8)),
            (10, (2, 9)),
            (11, (2, 10)),
            (12, (3, 10)),
            (15, (4, 12)),
            (20, (6, 15)),
            (25, (8, 18)),
            (30, (10, 21)),
        ];
        for (n, ranks) in table {
            assert_eq!(median_ci_ranks(n, 0.05), ranks, "n = {n}");
        }
        let sorted: Vec<f64> = (1..=10).map(|i| f64::from(i) * 10.0).collect();
        assert_eq!(median_ci(&sorted, 0.05), (20.0, 90.0));
        // 99 %: n = 10 gives ranks 1 and 10
        assert_eq!(median_ci(&sorted, 0.01), (10.0, 100.0));
        assert!(median_ci(&[], 0.05).0.is_nan());
    }

    #[test]
    fn median_ci_coverage_is_at_least_the_level_and_tightest() {
        for alpha in [0.01, 0.05, 0.1] {
            for n in 1..=150 {
                let (k, high) = median_ci_ranks(n, alpha);
                assert_eq!(high, n + 1 - k);
                if k == 1 {
                    // whole range: either it reaches the level or nothing can
                    let whole = 1.0 - 2.0 * binom_cdf(n, 0);
                    assert!(whole >= 1.0 - alpha || n < 10, "n = {n}");
                    continue;
                }
                let coverage = 1.0 - 2.0 * binom_cdf(n, k - 1);
                assert!(coverage >= 1.0 - alpha, "n = {n}, alpha = {alpha}");
                let tighter = 1.0 - 2.0 * binom_cdf(n, k);
                assert!(tighter < 1.0 - alpha, "n = {n}: rank {k} not tightest");
            }
        }
    }

    #[test]
    fn median_ci_large_n() {
        // Exact and normal approximation agree within one rank at the switch.
        for n in [10_000, 99_999, MEDIAN_CI_EXACT_MAX] {
            let exact = exact_rank(n, 0.05);
            let normal = normal_rank(n, 0.05);
            assert!(exact.abs_diff(normal) <= 1, "n = {n}: {exact} vs {normal}");
        }
        // n = 10⁶: k = ⌊500,000.5 − 1.959964·500⌋ = 499,020
        assert_eq!(median_ci_ranks(1_000_000, 0.05), (499_020, 500_981));
        assert_eq!(exact_rank(1_000_000, 0.05).abs_diff(499_020), 0);
        let sorted: Vec<f64> = (1..=1_000_000).map(f64::from).collect();
        assert_eq!(median_ci(&sorted, 0.05), (499_020.0, 500_981.0));
    }

    #[test]
    fn median_ci_bad_alpha_is_the_whole_range() {
        assert_eq!(median_ci_ranks(100, 0.0), (1, 100));
        assert_eq!(median_ci_ranks(100, 1.5), (1, 100));
        assert_eq!(median_ci_ranks(100, f64::NAN), (1, 100));
    }

    #[test]
    fn inverse_normal_cdf_known_quantiles() {
        assert!((inverse_normal_cdf(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((inverse_normal_cdf(0.5)).abs() < 1e-12);
        assert!((inverse_normal_cdf(0.005) + 2.575_829_304).abs() < 1e-8);
    }
}
