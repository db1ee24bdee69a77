//! Statistics for comparing two recordings, function by function.
//!
//! `perfunc diff BASE NEW` holds, for each function and counter, the
//! per-call values of two runs. This module says whether they differ and by
//! how much, purely and deterministically:
//!
//! - [`mann_whitney`]: the two-sided Mann–Whitney U test (exact for small
//!   samples without ties, normal approximation otherwise).
//! - [`benjamini_hochberg`]: q-values controlling the false discovery rate
//!   over the many function × counter tests of one diff.
//! - [`median_change`]: the change of the median, absolute and relative,
//!   with bootstrap confidence intervals, in O(n log n + B) for n values
//!   and B resamples.
//! - [`min_calls`]: how many values a side the test needs before it can
//!   reach a given significance level at all.
//! - [`hodges_lehmann`]: the shift estimate and interval that go with the
//!   Mann–Whitney test, for the per-run medians of repeated recordings
//!   (the run, not the call, as the unit; [`order_key`] ranks them).
//!
//! The median of calls is the lower middle value ([`median`]), the same
//! rank as the reports' nearest-rank p50, so a change matches the medians
//! the reports print. The Hodges–Lehmann shift, like the per-run medians'
//! median of the reports, averages the two middle values of an even
//! count: run medians are few, and those are estimates, not measured
//! values.

use std::cmp::Ordering;

/// Both samples at most this large and free of ties: [`mann_whitney`] uses
/// the exact null distribution instead of the normal approximation.
pub const EXACT_MAX: usize = 20;

/// Number of bootstrap resamples behind [`median_change`]'s interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Result of a two-sided Mann–Whitney U test of `new` against `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of `new`: the number of (base, new) pairs in which the new value is
    /// larger, ties counting one half. Between 0 and `base.len() * new.len()`.
    pub u: f64,
    /// Two-sided p-value, in [0, 1].
    pub p_value: f64,
    /// `u / (base.len() * new.len())`: the probability that a call of the
    /// new run costs more than one of the base run (ties counting half);
    /// 0.5 means no tendency, and for empty samples.
    pub prob_greater: f64,
    /// Whether the p-value comes from the exact null distribution (both
    /// samples at most [`EXACT_MAX`] values, no ties) rather than the
    /// normal approximation.
    pub exact: bool,
}

/// The change of the median from base to new, absolute and relative, each
/// with its bootstrap interval ([`median_change`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianChange {
    /// `new_median − base_median`.
    pub difference: f64,
    /// Lower bound of the difference's bootstrap percentile interval.
    pub low: f64,
    /// Upper bound of the difference's interval.
    pub high: f64,
    /// The change relative to the base median; `None` when that median is
    /// 0 and the ratio is undefined.
    pub relative: Option<Change>,
}

/// Relative change of the median from base to new, with its confidence
/// interval: 0.25 means +25 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// `(new_median - base_median) / |base_median|`.
    pub change: f64,
    /// Lower bound of the bootstrap percentile interval; may be −∞ (see
    /// [`median_change`]).
    pub low: f64,
    /// Upper bound of the bootstrap percentile interval; may be +∞.
    pub high: f64,
}

/// Two-sided Mann–Whitney U test: do the values of `new` tend to be larger
/// or smaller than those of `base`?
///
/// Both samples at most [`EXACT_MAX`] values and no tie anywhere in the
/// pooled values: the p-value is exact, `2 · P(U ≥ max(U, nm − U))` under
/// the null distribution (capped at 1), as `scipy.stats.mannwhitneyu` with
/// `method="exact"`. Otherwise the normal approximation with the tie
/// correction of the variance and a continuity correction of 0.5, as
/// scipy's `method="asymptotic"`; when every value is tied the variance is
/// 0 and the p-value is 1. An empty sample gives U = 0 and p = 1.
///
/// Sorts copies of both samples: O((n + m) log(n + m)) time, O(n + m)
/// memory.
pub fn mann_whitney(base: &[i64], new: &[i64]) -> MannWhitney {
    let (n_base, n_new) = (base.len(), new.len());
    if n_base == 0 || n_new == 0 {
        return MannWhitney {
            u: 0.0,
            p_value: 1.0,
            prob_greater: 0.5,
            exact: false,
        };
    }
    let ranks = RankSums::of(base, new);
    let u = ranks.twice_u as f64 / 2.0;
    let pairs = n_base as f64 * n_new as f64;
    let exact = !ranks.tied && n_base <= EXACT_MAX && n_new <= EXACT_MAX;
    let p_value = if exact {
        // Without ties U is a whole number.
        exact_p(n_base, n_new, (ranks.twice_u / 2) as usize)
    } else {
        normal_p(n_base, n_new, u, ranks.tie_sum)
    };
    MannWhitney {
        u,
        p_value,
        prob_greater: u / pairs,
        exact,
    }
}

/// The shift of `new` over `base` and its interval: the Hodges–Lehmann
/// estimate that goes with the Mann–Whitney test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// The median of the `n · m` differences `new_i − base_j`.
    pub shift: f64,
    /// Lower bound of the interval; −∞ when the samples are too small for
    /// the test to reach its level at all.
    pub low: f64,
    /// Upper bound of the interval; +∞ likewise.
    pub high: f64,
}

/// The Hodges–Lehmann estimate of how much `new` is shifted above `base`
/// (the median of all differences `new_i − base_j`, the mean of the two
/// middle ones for an even count), with the distribution-free interval
/// that inverts the two-sided Mann–Whitney test at level `alpha` (Moses'
/// interval): the shifts Δ for which `new − Δ` against `base` would not
/// be rejected. Hollander & Wolfe, *Nonparametric Statistical Methods*,
/// §4.3.
///
/// With `r` the number of values of U at the low extreme whose two-sided
/// p-value ([`mann_whitney`]'s: exact for samples up to [`EXACT_MAX`],
/// the normal approximation beyond) is below `alpha`, the interval is the
/// r-th smallest and the r-th largest difference; 5 against 5 at 0.05
/// gives r = 3. Without ties the interval then excludes 0 exactly when
/// the test's p-value is below `alpha`. With `r = 0` (fewer than 4 values
/// per side at 0.05) no interval exists: the bounds are infinite.
///
/// Returns `None` when either sample is empty. O(n·m log(n·m)): meant for
/// the per-run medians of repeated recordings, a few to a few hundred
/// per side.
pub fn hodges_lehmann(base: &[f64], new: &[f64], alpha: f64) -> Option<Shift> {
    if base.is_empty() || new.is_empty() {
        return None;
    }
    let (n, m) = (base.len(), new.len());
    let mut differences: Vec<f64> = new
        .iter()
        .flat_map(|&x| base.iter().map(move |&y| x - y))
        .collect();
    differences.sort_by(f64::total_cmp);
    let total = differences.len();
    let shift = if total % 2 == 1 {
        differences[total / 2]
    } else {
        (differences[total / 2 - 1] + differences[total / 2]) / 2.0
    };
    let counts = (n <= EXACT_MAX && m <= EXACT_MAX).then(|| u_counts(n, m));
    let p_of = |u: usize| match &counts {
        Some(counts) => exact_p_of(counts, u),
        None => normal_p(n, m, u as f64, 0),
    };
    let rejected = (0..=total / 2).take_while(|&u| p_of(u) < alpha).count();
    let (low, high) = if rejected == 0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (differences[rejected - 1], differences[total - rejected])
    };
    Some(Shift { shift, low, high })
}

/// `value` as an i64 in the same order (f64's total order, −0 taken as 0),
/// so that [`mann_whitney`] can rank floating-point values exactly.
pub fn order_key(value: f64) -> i64 {
    let bits = (value + 0.0).to_bits() as i64;
    bits ^ ((bits >> 63) as u64 >> 1) as i64
}

/// What one merge of the sorted samples yields.
struct RankSums {
    /// 2·U of `new`, kept whole so that ties (which count one half) stay
    /// exact.
    twice_u: u128,
    /// Σ (t³ − t) over the groups of t tied values, for the variance.
    tie_sum: u128,
    /// Whether any value occurs more than once in the pooled sample.
    tied: bool,
}

impl RankSums {
    fn of(base: &[i64], new: &[i64]) -> Self {
        let (base, new) = (sorted(base), sorted(new));
        let mut out = RankSums {
            twice_u: 0,
            tie_sum: 0,
            tied: false,
        };
        let (mut i, mut j) = (0, 0);
        while i < base.len() || j < new.len() {
            let value = match (base.get(i), new.get(j)) {
                (Some(&b), Some(&n)) => b.min(n),
                (Some(&b), None) => b,
                (None, Some(&n)) => n,
                (None, None) => unreachable!("the loop stops when both are exhausted"),
            };
            let in_base = run_length(&base[i..], value);
            let in_new = run_length(&new[j..], value);
            // Each new value of the group beats the `i` smaller base values
            // and ties with the `in_base` equal ones.
            out.twice_u += in_new as u128 * (2 * i + in_base) as u128;
            let t = (in_base + in_new) as u128;
            out.tie_sum += t * t * t - t;
            out.tied |= t > 1;
            i += in_base;
            j += in_new;
        }
        out
    }
}

/// A sorted copy of `values`.
fn sorted(values: &[i64]) -> Vec<i64> {
    let mut copy = values.to_vec();
    copy.sort_unstable();
    copy
}

/// How many of the leading values of sorted `values` equal `value`.
fn run_length(values: &[i64], value: i64) -> usize {
    values.iter().take_while(|&&v| v == value).count()
}

/// Exact two-sided p-value of U = `u` for samples of `n` and `m` values.
fn exact_p(n: usize, m: usize, u: usize) -> f64 {
    exact_p_of(&u_counts(n, m), u)
}

/// [`exact_p`] from the null distribution `counts` ([`u_counts`]), for
/// callers that need the p-value of many U values of the same sizes.
fn exact_p_of(counts: &[u64], u: usize) -> f64 {
    let total: u64 = counts.iter().sum();
    let far = u.max(counts.len() - 1 - u);
    let tail: u64 = counts[far..].iter().sum();
    ((2 * tail) as f64 / total as f64).min(1.0)
}

/// Null distribution of U for samples of `n` and `m` values without ties:
/// entry `u` is the number of the C(n + m, n) orderings with U = u.
///
/// These are the coefficients of the Gaussian binomial
/// `[n + m choose k]_q = Π_{i=1..k} (1 − q^(n+m−k+i)) / (1 − q^i)` with
/// `k = min(n, m)`. After step i the running product is `[n+m−k+i choose
/// i]_q`, a polynomial, so every division by `1 − q^i` is exact. The
/// coefficients stay below 2·C(40, 20) for samples of up to [`EXACT_MAX`].
fn u_counts(n: usize, m: usize) -> Vec<u64> {
    let (total, k) = (n + m, n.min(m));
    let mut poly = vec![0i64; n * m + 1];
    poly[0] = 1;
    for i in 1..=k {
        let up = total - k + i;
        // Multiply by (1 − q^up): descending, to read the old coefficients.
        for d in (up..poly.len()).rev() {
            poly[d] -= poly[d - up];
        }
        // Divide by (1 − q^i): ascending, to read the new ones.
        for d in i..poly.len() {
            poly[d] += poly[d - i];
        }
    }
    poly.into_iter()
        .map(|c| u64::try_from(c).expect("counts of U are positive"))
        .collect()
}

/// Normal-approximation two-sided p-value of U = `u` for samples of `n` and
/// `m` values whose tied groups of t give `tie_sum` = Σ (t³ − t).
fn normal_p(n: usize, m: usize, u: f64, tie_sum: u128) -> f64 {
    let (nf, mf) = (n as f64, m as f64);
    let total = nf + mf;
    let variance = nf * mf / 12.0 * ((total + 1.0) - tie_sum as f64 / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = ((u - nf * mf / 2.0).abs() - 0.5) / variance.sqrt();
    if z <= 0.0 {
        return 1.0;
    }
    (2.0 * normal_sf(z)).min(1.0)
}

/// Upper tail of the standard normal distribution, P(Z > z), for z ≥ 0.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function for x ≥ 0, to a relative error of about
/// 1e-14: below 2 as 1 − erf(x) from the series of positive terms
/// `erf(x) = 2/√π · e^(−x²) · Σ 2^k x^(2k+1) / (1·3·…·(2k+1))`, from 2 on
/// by Lentz's evaluation of the continued fraction
/// `erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`.
fn erfc(x: f64) -> f64 {
    const TOLERANCE: f64 = 1e-16;
    let scale = (-x * x).exp() / std::f64::consts::PI.sqrt();
    if x < 2.0 {
        let (mut term, mut sum) = (x, x);
        let mut k = 0.0;
        while term > sum * TOLERANCE {
            k += 1.0;
            term *= 2.0 * x * x / (2.0 * k + 1.0);
            sum += term;
        }
        return 1.0 - 2.0 * scale * sum;
    }
    let (mut fraction, mut c, mut d) = (x, x, 0.0);
    for i in 1..1000 {
        let a = f64::from(i) / 2.0;
        d = 1.0 / (x + a * d);
        c = x + a / c;
        let delta = c * d;
        fraction *= delta;
        if (delta - 1.0).abs() < TOLERANCE {
            break;
        }
    }
    scale / fraction
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order of `p`.
///
/// With m values and p₍ᵢ₎ the i-th smallest, `q₍ᵢ₎ = min_{j ≥ i} m · p₍ⱼ₎ /
/// j`, capped at 1: the step-up procedure, made monotone in p, as R's
/// `p.adjust(p, "BH")` and scipy's `false_discovery_control`. Rejecting the
/// tests whose q is below α controls the false discovery rate at α.
///
/// The values must be p-values, in [0, 1], without NaN (a NaN would sort
/// last and propagate to the q-values of the larger p-values).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len() as f64;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; p.len()];
    let mut smallest = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        // m / j first, as R does: equal p-values come back unchanged.
        smallest = smallest.min(m / (rank + 1) as f64 * p[i]);
        q[i] = smallest;
    }
    q
}

/// The median of `values`, taken as the lower middle value (rank
/// ⌈n/2⌉ of n, the nearest-rank p50), for even counts as well: it is a
/// measured value, and the one the reports print. NaN when `values` is
/// empty. Reorders `values`; O(n).
pub fn median(values: &mut [i64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let index = median_index(values.len());
    *values.select_nth_unstable(index).1 as f64
}

/// 0-based index of the lower middle of `len` sorted values.
fn median_index(len: usize) -> usize {
    (len - 1) / 2
}

/// The change of the median from `base` to `new`, as a difference and
/// relative to the base, each with a bootstrap percentile interval at
/// confidence `level` (e.g. 0.95).
///
/// The difference is `new_median − base_median`. The relative change is
/// `(new_median − base_median) / |base_median|`, which is
/// `new_median / base_median − 1` for the usual positive base (0.25 for
/// +25 %) and keeps its sign meaning (positive: the new run costs more) for
/// a negative base, which calibrated values can have; it is `None` when
/// the base median is 0 and the ratio is undefined (the difference and its
/// interval still say which way the median moved). Medians are the lower
/// middle values ([`median`]).
///
/// Returns `None` when either sample is empty.
///
/// The intervals resample each run [`BOOTSTRAP_RESAMPLES`] times, each
/// independently, and take the `(1 − level)/2` and `(1 + level)/2`
/// quantiles of the resampled differences and changes (the sorted values at
/// 0-based index `round(B · (1 − level)/2)` and its mirror `B − 1 −` that).
/// A resample whose base median is 0 gives a change of ±∞ (0 if the new
/// median is also 0), so a bound of the relative interval can be infinite:
/// the data cannot bound the ratio (perfunc's diff then reports it as
/// absent).
///
/// The resamples are drawn without building them: see [`resample_median`].
/// The random numbers come from xoshiro256** seeded through splitmix64
/// from `seed`, both written here, so the result is the same for the same
/// inputs and seed. O(n log n + B) for n values.
///
/// # Panics
///
/// If `level` is not strictly between 0 and 1.
pub fn median_change(base: &[i64], new: &[i64], level: f64, seed: u64) -> Option<MedianChange> {
    assert!(
        level > 0.0 && level < 1.0,
        "confidence level {level} must be strictly between 0 and 1"
    );
    if base.is_empty() || new.is_empty() {
        return None;
    }
    let (base, new) = (sorted(base), sorted(new));
    let base_median = base[median_index(base.len())] as f64;
    let new_median = new[median_index(new.len())] as f64;
    let mut rng = Rng::seeded(seed);
    let (mut differences, mut changes): (Vec<f64>, Vec<f64>) = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let b = resample_median(&base, &mut rng);
            let n = resample_median(&new, &mut rng);
            (n - b, relative_change(b, n))
        })
        .unzip();
    differences.sort_unstable_by(f64::total_cmp);
    changes.sort_unstable_by(f64::total_cmp);
    let tail = (BOOTSTRAP_RESAMPLES as f64 * (1.0 - level) / 2.0).round() as usize;
    let tail = tail.min(BOOTSTRAP_RESAMPLES / 2 - 1);
    let (low, high) = (tail, BOOTSTRAP_RESAMPLES - 1 - tail);
    Some(MedianChange {
        difference: new_median - base_median,
        low: differences[low],
        high: differences[high],
        relative: (base_median != 0.0).then(|| Change {
            change: relative_change(base_median, new_median),
            low: changes[low],
            high: changes[high],
        }),
    })
}

/// `(new − base) / |base|`; for a base of 0, ±∞ by the sign of `new`, or
/// 0 when both are 0.
fn relative_change(base: f64, new: f64) -> f64 {
    if base == 0.0 {
        return match new.partial_cmp(&0.0) {
            Some(Ordering::Greater) => f64::INFINITY,
            Some(Ordering::Less) => f64::NEG_INFINITY,
            _ => 0.0,
        };
    }
    (new - base) / base.abs()
}

/// The median of one bootstrap resample of `sorted` (n values, ascending),
/// drawn in O(1) without building the resample.
///
/// A resample draws n values with replacement, each `x₍J₎` for J uniform on
/// 1..=n, which is `J = ⌈n·U⌉` for U uniform on (0, 1]. The map
/// `u ↦ x₍⌈n·u⌉₎` never decreases, so it carries order statistics over: the
/// k-th smallest value of the resample is `x₍⌈n·U₍ₖ₎⌉₎`, where U₍ₖ₎ is the
/// k-th smallest of n independent uniforms. That order statistic follows
/// Beta(k, n + 1 − k) (its density is `n!/((k−1)!(n−k)!) u^(k−1)
/// (1−u)^(n−k)`: k − 1 uniforms below u, one at u, n − k above). So one
/// Beta draw with k = ⌈n/2⌉, the rank of the lower middle, gives the
/// resample's median with exactly the distribution that resampling would
/// give (equivalently, P(median ≤ x₍ⱼ₎) = P(Binomial(n, j/n) ≥ k)).
fn resample_median(sorted: &[i64], rng: &mut Rng) -> f64 {
    let n = sorted.len();
    let k = median_index(n) + 1;
    let u = rng.beta(k as f64, (n + 1 - k) as f64);
    let rank = ((n as f64 * u).ceil() as usize).clamp(1, n);
    sorted[rank - 1] as f64
}

/// xoshiro256** (Blackman and Vigna), seeded with four outputs of
/// splitmix64, with the samplers the bootstrap needs.
pub(crate) struct Rng {
    state: [u64; 4],
}

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix64 = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [splitmix64(), splitmix64(), splitmix64(), splitmix64()],
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on (0, 1], in steps of 2⁻⁵³ (never 0, so its log is finite).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal, by Marsaglia's polar method.
    fn normal(&mut self) -> f64 {
        loop {
            let a = 2.0 * self.uniform() - 1.0;
            let b = 2.0 * self.uniform() - 1.0;
            let s = a * a + b * b;
            if s > 0.0 && s < 1.0 {
                return a * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    /// Gamma(shape, 1) for shape ≥ 1, by Marsaglia and Tsang's method.
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }

    /// Beta(a, b) for a, b ≥ 1, as G_a / (G_a + G_b).
    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y)
    }
}

/// The smallest number of calls per run with which the two-sided exact
/// Mann–Whitney test of two equal-sized runs can reach p < `alpha` at all.
///
/// With n calls per run the smallest p-value, for completely separated
/// runs, is `2 / C(2n, n)` (one of the C(2n, n) orderings at each extreme):
/// 1 for n = 1, 1/3, 1/10, 2/70 ≈ 0.029 for n = 4, 2/252 ≈ 0.0079 for
/// n = 5. So `min_calls(0.05)` is 4 and `min_calls(0.01)` is 5. Below it a
/// difference is inconclusive however large. The p-value is computed as
/// [`mann_whitney`] computes it, so the two agree at the boundary.
///
/// # Panics
///
/// If `alpha` is not positive.
pub fn min_calls(alpha: f64) -> usize {
    assert!(alpha > 0.0, "significance level {alpha} must be positive");
    let mut n = 1usize;
    // C(2n, n); exact in f64 up to n = 25, far beyond any useful alpha.
    let mut central = 2.0f64;
    while 2.0 / central >= alpha {
        central = central * (2 * (2 * n + 1)) as f64 / (n + 1) as f64;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative difference, for comparing with reference values.
    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance * expected.abs()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            close(actual, expected, 1e-12),
            "{actual} differs from {expected}"
        );
    }

    // Reference values in these tests come from scipy 1.17.1:
    // `scipy.stats.mannwhitneyu(new, base, method=...)`,
    // `scipy.special.erfc` and `scipy.stats.false_discovery_control`.

    #[test]
    fn exact_small_samples_match_scipy() {
        let base = [12, 15, 9, 20, 17, 11];
        let new = [22, 19, 25, 14, 28];
        let r = mann_whitney(&base, &new);
        assert!(r.exact);
        assert_eq!(r.u, 26.0);
        assert_close(r.p_value, EXACT_SMALL_P);
        assert_close(r.prob_greater, 26.0 / 30.0);
    }

    const EXACT_SMALL_P: f64 = 0.05194805194805195;

    /// Reference: R 4's `wilcox.test(new, base, conf.int = TRUE,
    /// exact = TRUE)`, whose interval for 5 against 5 values at 0.95 is the
    /// 3rd smallest and 3rd largest of the 25 differences.
    #[test]
    fn hodges_lehmann_of_five_runs_against_five() {
        let base = [188.0, 262.0, 255.0, 187.0, 189.0];
        let new = [301.0, 302.0, 300.0, 303.0, 299.0];
        let s = hodges_lehmann(&base, &new, 0.05).unwrap();
        // Differences: 110..116 (15), 37..48 (10); the median is the 13th.
        let mut d: Vec<f64> = new
            .iter()
            .flat_map(|x| base.iter().map(move |y| x - y))
            .collect();
        d.sort_by(f64::total_cmp);
        assert_eq!(s.shift, d[12]);
        assert_eq!((s.low, s.high), (d[2], d[22]));
        assert!(s.low > 0.0);
        let keys = |v: &[f64]| v.iter().map(|&x| order_key(x)).collect::<Vec<_>>();
        let p = mann_whitney(&keys(&base), &keys(&new)).p_value;
        assert_close(p, 2.0 / 252.0);
    }

    #[test]
    fn hodges_lehmann_interval_excludes_zero_exactly_when_the_test_rejects() {
        let base = [10.0, 11.5, 9.0, 10.5, 12.0, 9.7];
        for shift in 0..60 {
            let new: Vec<f64> = [10.2, 11.1, 9.4, 12.3, 10.9]
                .iter()
                .map(|v| v + f64::from(shift) * 0.0497)
                .collect();
            let s = hodges_lehmann(&base, &new, 0.05).unwrap();
            let keys = |v: &[f64]| v.iter().map(|&x| order_key(x)).collect::<Vec<_>>();
            let p = mann_whitney(&keys(&base), &keys(&new)).p_value;
            assert_eq!(p < 0.05, s.low > 0.0 || s.high < 0.0, "{s:?} p {p}");
        }
    }

    #[test]
    fn too_few_runs_have_no_interval_and_ties_a_point() {
        let s = hodges_lehmann(&[1.0, 2.0, 3.0], &[7.0, 8.0, 9.0], 0.05).unwrap();
        assert_eq!(
            (s.shift, s.low, s.high),
            (6.0, f64::NEG_INFINITY, f64::INFINITY)
        );
        let s = hodges_lehmann(&[16.0; 5], &[20.0; 5], 0.05).unwrap();
        assert_eq!((s.shift, s.low, s.high), (4.0, 4.0, 4.0));
        assert!(hodges_lehmann(&[], &[1.0], 0.05).is_none());
    }

    #[test]
    fn order_keys_keep_the_order_of_floats() {
        let values = [-1e300, -2.5, -1.0, -0.0, 0.0, 1e-300, 0.5, 3.0, 1e300];
        let keys: Vec<i64> = values.iter().map(|&v| order_key(v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert!(keys[4] < keys[5]);
    }

    /// 40 distinct values (3·i mod 41 for i in 1..=40) split in two.
    fn interleaved() -> (Vec<i64>, Vec<i64>) {
        let all: Vec<i64> = (1..=40).map(|i| i * 3 % 41).collect();
        (all[..20].to_vec(), all[20..].to_vec())
    }

    #[test]
    fn exact_at_the_largest_exact_size_matches_scipy() {
        let (base, new) = interleaved();
        let r = mann_whitney(&base, &new);
        assert!(r.exact);
        assert_eq!(r.u, EXACT_20_U);
        assert_close(r.p_value, EXACT_20_P);
    }

    const EXACT_20_U: f64 = 267.0;
    const EXACT_20_P: f64 = 0.07177675347139001;

    #[test]
    fn separated_samples_reach_the_smallest_exact_p() {
        let base: Vec<i64> = (0..20).collect();
        let new: Vec<i64> = (100..120).collect();
        let r = mann_whitney(&base, &new);
        assert_eq!(r.u, 400.0);
        assert_eq!(r.prob_greater, 1.0);
        assert_eq!(r.p_value, 2.0 / 137_846_528_820.0);
        assert_eq!(mann_whitney(&new, &base).u, 0.0);
    }

    #[test]
    fn the_null_distribution_counts_every_ordering() {
        let counts = u_counts(4, 4);
        assert_eq!(counts.iter().sum::<u64>(), 70);
        assert_eq!(counts, [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]);
        assert_eq!(u_counts(20, 20).iter().sum::<u64>(), 137_846_528_820);
        assert_eq!(u_counts(1, 3), [1, 1, 1, 1]);
    }

    #[test]
    fn ties_use_the_corrected_normal_approximation_like_scipy() {
        let base = [3, 5, 5, 7, 9, 9, 9, 12];
        let new = [5, 8, 9, 11, 12, 12, 15];
        let r = mann_whitney(&base, &new);
        assert!(!r.exact);
        assert_eq!(r.u, TIED_U);
        assert_close(r.p_value, TIED_P);
    }

    const TIED_U: f64 = 41.5;
    const TIED_P: f64 = 0.12620609957499385;

    #[test]
    fn beyond_the_exact_size_the_normal_approximation_matches_scipy() {
        let base: Vec<i64> = (0..30).map(|i| i * 3).collect();
        let new: Vec<i64> = (0..25).map(|i| i * 3 + 11).collect();
        let r = mann_whitney(&base, &new);
        assert!(!r.exact);
        assert_eq!(r.u, NORMAL_U);
        assert_close(r.p_value, NORMAL_P);
    }

    const NORMAL_U: f64 = 400.0;
    const NORMAL_P: f64 = 0.6787821365043434;

    #[test]
    fn many_ties_in_large_samples_match_scipy() {
        let base: Vec<i64> = (0..1000).map(|i| i % 50).collect();
        let new: Vec<i64> = (0..900).map(|i| i % 53).collect();
        let r = mann_whitney(&base, &new);
        assert_eq!(r.u, MANY_TIES_U);
        assert_close(r.p_value, MANY_TIES_P);
    }

    const MANY_TIES_U: f64 = 475000.0;
    const MANY_TIES_P: f64 = 0.03625416868055118;

    #[test]
    fn identical_and_all_tied_samples_give_p_one() {
        let same: Vec<i64> = (1..=10).collect();
        let r = mann_whitney(&same, &same);
        assert_eq!((r.u, r.p_value, r.prob_greater), (50.0, 1.0, 0.5));
        let r = mann_whitney(&[7; 30], &[7; 40]);
        assert_eq!((r.u, r.p_value, r.exact), (600.0, 1.0, false));
        let r = mann_whitney(&[], &[1, 2]);
        assert_eq!((r.u, r.p_value, r.prob_greater), (0.0, 1.0, 0.5));
    }

    #[test]
    fn erfc_matches_scipy() {
        for (x, expected) in ERFC {
            assert!(
                close(erfc(x), expected, 1e-13),
                "erfc({x}) = {} and not {expected}",
                erfc(x)
            );
        }
        assert_eq!(erfc(30.0), 0.0);
    }

    const ERFC: [(f64, f64); 13] = [
        (0.0, 1.0),
        (0.1, 0.8875370839817152),
        (0.5, 0.4795001221869535),
        (1.0, 0.15729920705028516),
        (1.5, 0.03389485352468927),
        (1.99, 0.004888586800383002),
        (2.0, 0.004677734981047266),
        (2.5, 0.00040695201744495886),
        (3.0, 2.2090496998585445e-05),
        (5.0, 1.5374597944280347e-12),
        (10.0, 2.0884875837625446e-45),
        (20.0, 5.395865611607901e-176),
        (26.0, 5.663192408856145e-296),
    ];

    #[test]
    fn benjamini_hochberg_matches_scipy() {
        let p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.5, 0.9, 0.0001, 1.0];
        let q = benjamini_hochberg(&p);
        assert_eq!(q.len(), BH_Q.len());
        for (actual, expected) in q.into_iter().zip(BH_Q) {
            assert_close(actual, expected);
        }
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.3]), [0.3]);
    }

    const BH_Q: [f64; 10] = [
        0.03333333333333333,
        0.06666666666666667,
        0.06666666666666667,
        0.025,
        0.28571428571428575,
        0.06666666666666667,
        0.625,
        1.0,
        0.001,
        1.0,
    ];

    #[test]
    fn benjamini_hochberg_is_monotone_and_capped() {
        let q = benjamini_hochberg(&[0.9, 0.8, 0.95]);
        assert_eq!(q, [0.95, 0.95, 0.95]);
        let q = benjamini_hochberg(&[0.02, 0.02, 0.02]);
        assert_eq!(q, [0.02, 0.02, 0.02]);
    }

    #[test]
    fn min_calls_for_common_levels() {
        assert_eq!(min_calls(0.05), 4);
        assert_eq!(min_calls(0.01), 5);
        assert_eq!(min_calls(0.1), 4);
        assert_eq!(min_calls(0.11), 3);
        assert_eq!(min_calls(2.0), 1);
        // At the boundary p must be strictly below alpha.
        assert_eq!(min_calls(2.0 / 70.0), 5);
    }

    #[test]
    fn min_calls_agrees_with_the_test() {
        for alpha in [0.05, 0.01, 0.001] {
            let n = min_calls(alpha) as i64;
            let low: Vec<i64> = (0..n).collect();
            let high: Vec<i64> = (n..2 * n).collect();
            assert!(mann_whitney(&low, &high).p_value < alpha);
            assert!(mann_whitney(&low[1..], &high[1..]).p_value >= alpha);
        }
    }

    #[test]
    fn median_is_the_lower_middle() {
        assert_eq!(median(&mut [5, 1, 3]), 3.0);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2.0);
        assert_eq!(median(&mut [-7]), -7.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn degenerate_change_is_exact() {
        let c = median_change(&[16; 101], &[20; 80], 0.95, 1).unwrap();
        assert_eq!(
            c,
            MedianChange {
                difference: 4.0,
                low: 4.0,
                high: 4.0,
                relative: Some(Change {
                    change: 0.25,
                    low: 0.25,
                    high: 0.25
                })
            }
        );
    }

    #[test]
    fn identical_samples_change_nothing() {
        let values: Vec<i64> = (0..500).map(|i| 1000 + i * 7 % 311).collect();
        let c = relative_of(&values, &values, 0.95, 3);
        assert_eq!(c.change, 0.0);
        assert!(c.low < 0.0 && c.high > 0.0, "{c:?}");
    }

    #[test]
    fn a_zero_base_median_has_no_ratio_but_a_difference() {
        let base = [0, 0, 0, 0, 0, 0, 0, 0, 5];
        let c = median_change(&base, &[3, 4, 4, 4, 5], 0.95, 0).unwrap();
        assert_eq!(c.relative, None);
        assert_eq!(c.difference, 4.0);
        assert!(0.0 < c.low && c.low <= 4.0 && 4.0 <= c.high, "{c:?}");
    }

    #[test]
    fn an_empty_sample_has_no_change() {
        assert_eq!(median_change(&[], &[3], 0.95, 0), None);
        assert_eq!(median_change(&[3], &[], 0.95, 0), None);
    }

    #[test]
    fn a_negative_base_keeps_the_sign_of_the_change() {
        let c = relative_of(&[-10; 5], &[-5; 5], 0.95, 0);
        assert_eq!((c.change, c.low, c.high), (0.5, 0.5, 0.5));
    }

    #[test]
    fn resamples_reaching_a_zero_base_give_an_infinite_bound() {
        let c = relative_of(&[0, 0, 1, 1, 1], &[2, 2, 2, 2, 2], 0.95, 0);
        assert_eq!((c.change, c.high), (1.0, f64::INFINITY));
    }

    /// The relative change of [`median_change`], which must exist.
    fn relative_of(base: &[i64], new: &[i64], level: f64, seed: u64) -> Change {
        median_change(base, new, level, seed)
            .unwrap()
            .relative
            .unwrap()
    }

    /// `n` draws uniform on `low..=high`.
    fn uniform_values(rng: &mut Rng, n: usize, low: i64, high: i64) -> Vec<i64> {
        let span = (high - low + 1) as u64;
        (0..n)
            .map(|_| low + (rng.next_u64() % span) as i64)
            .collect()
    }

    #[test]
    fn the_interval_contains_a_known_shift() {
        // Population medians 2000 and 2500: a true change of +25 %.
        let mut rng = Rng::seeded(42);
        let base = uniform_values(&mut rng, 2001, 1000, 3000);
        let new = uniform_values(&mut rng, 1501, 1250, 3750);
        let c = relative_of(&base, &new, 0.95, 7);
        assert!(c.low < 0.25 && 0.25 < c.high, "{c:?}");
        assert!(c.low > 0.15 && c.high < 0.35, "{c:?}");
        assert!(c.low <= c.change && c.change <= c.high, "{c:?}");
    }

    #[test]
    fn the_interval_covers_about_as_often_as_its_level() {
        let mut rng = Rng::seeded(5);
        let trials = 200;
        let covered = (0..trials)
            .filter(|&seed| {
                let base = uniform_values(&mut rng, 101, 1000, 3000);
                let new = uniform_values(&mut rng, 101, 1250, 3750);
                let c = relative_of(&base, &new, 0.90, seed);
                c.low <= 0.25 && 0.25 <= c.high
            })
            .count();
        // Binomial(200, 0.9): mean 180, standard deviation 4.2.
        assert!(
            (165..=195).contains(&covered),
            "covered {covered} of {trials}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let mut rng = Rng::seeded(9);
        let base = uniform_values(&mut rng, 300, 0, 1000);
        let new = uniform_values(&mut rng, 300, 100, 1100);
        let a = relative_of(&base, &new, 0.95, 11);
        assert_eq!(relative_of(&base, &new, 0.95, 11), a);
        let b = relative_of(&base, &new, 0.95, 12);
        assert_eq!(a.change, b.change);
        assert_ne!((a.low, a.high), (b.low, b.high));
    }

    /// Exact distribution of the lower median of a bootstrap resample of
    /// `data` (distinct values), by enumerating all nⁿ resamples.
    fn enumerated_median_distribution(data: &[i64]) -> Vec<f64> {
        let n = data.len();
        let total = n.pow(n as u32);
        let mut counts = vec![0usize; n];
        for code in 0..total {
            let mut picks: Vec<usize> = (0..n).map(|d| code / n.pow(d as u32) % n).collect();
            picks.sort_unstable();
            counts[picks[median_index(n)]] += 1;
        }
        counts.iter().map(|&c| c as f64 / total as f64).collect()
    }

    #[test]
    fn resampled_medians_follow_the_resampling_distribution() {
        for data in [
            &[10, 20, 30, 40][..],
            &[1, 2, 3, 4, 5],
            &[-3, 8, 9, 100, 101, 102],
        ] {
            let expected = enumerated_median_distribution(data);
            let mut rng = Rng::seeded(17);
            let draws = 200_000;
            let mut counts = vec![0usize; data.len()];
            for _ in 0..draws {
                let m = resample_median(data, &mut rng) as i64;
                counts[data.iter().position(|&v| v == m).unwrap()] += 1;
            }
            for (count, p) in counts.into_iter().zip(expected) {
                let observed = count as f64 / draws as f64;
                // Five standard deviations of a proportion of 200,000 draws.
                let bound = 5.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-9;
                assert!((observed - p).abs() <= bound, "{data:?}: {observed} vs {p}");
            }
        }
    }

    #[test]
    fn splitmix64_seeding_matches_the_reference() {
        // splitmix64 from seed 0 starts 0xE220A8397B1DCDAF (Vigna's
        // splitmix64.c); it fills the first word of the state.
        assert_eq!(Rng::seeded(0).state[0], 0xE220_A839_7B1D_CDAF);
    }

    /// Run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing report, release mode"]
    fn throughput_of_a_million_values_per_side() {
        let mut rng = Rng::seeded(1);
        let base = uniform_values(&mut rng, 1_000_000, 0, 1_000_000_000);
        let new = uniform_values(&mut rng, 1_000_000, 1_000, 1_001_000_000);
        let start = std::time::Instant::now();
        let r = mann_whitney(&base, &new);
        let test = start.elapsed();
        let start = std::time::Instant::now();
        let c = median_change(&base, &new, 0.95, 1);
        let change = start.elapsed();
        println!("mann_whitney: {test:?} ({r:?})");
        println!("median_change: {change:?} ({c:?})");
    }
}
