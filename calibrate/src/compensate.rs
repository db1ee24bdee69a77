//! Taking the probes' cost out of measured calls, and telling what is left
//! from noise.

use crate::stats::Summary;

/// The calibrated inclusive value of one call: raw − own − descendants,
/// where `own` is the baseline of the call's own class and `descendants`
/// the sum of the baselines of every probed call nested inside it (TAU's
/// method: a parent contains its children's probes).
pub fn compensate(raw: f64, own: f64, descendants: f64) -> f64 {
    raw - own - descendants
}

/// The self (exclusive) value of a call from compensated values: its
/// compensated inclusive value minus the sum of the compensated inclusive
/// values of its direct probed children. The probe costs are already out
/// of both, so none is subtracted twice.
pub fn exclusive(inclusive: f64, children_inclusive: f64) -> f64 {
    inclusive - children_inclusive
}

/// Whether a calibrated value cannot be told apart from 0:
/// `|value| < 2 × MAD` of the baseline, or the given confidence interval
/// crosses 0 (`low ≤ 0 ≤ high`). A value of exactly 0, or NaN, is within
/// noise too (with a MAD of 0, as for page faults, any other value is not).
pub fn within_noise(value: f64, baseline: &Summary, ci: Option<(f64, f64)>) -> bool {
    value == 0.0
        || value.is_nan()
        || value.abs() < 2.0 * baseline.mad
        || ci.is_some_and(|(low, high)| low <= 0.0 && 0.0 <= high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    #[test]
    fn compensate_subtracts_own_and_descendants() {
        assert_eq!(compensate(10_000.0, 1_400.0, 0.0), 8_600.0);
        // two nested push-rbp calls and one nested ret call
        assert_eq!(
            compensate(40_000.0, 1_400.0, 2.0 * 1_400.0 + 12_600.0),
            23_200.0
        );
        // noise can push it below zero; it is not clamped
        assert_eq!(compensate(1_300.0, 1_400.0, 0.0), -100.0);
        assert_eq!(exclusive(23_200.0, 2_000.0 + 500.0), 20_700.0);
    }

    fn baseline() -> Summary {
        // median 100, |x − 100| = 10 10 0 5 5 → MAD 5
        summarize(&mut [90.0, 110.0, 100.0, 95.0, 105.0]).unwrap()
    }

    #[test]
    fn within_noise_by_mad() {
        let b = baseline();
        assert_eq!(b.mad, 5.0);
        assert!(within_noise(9.9, &b, None));
        assert!(within_noise(-9.9, &b, None));
        assert!(!within_noise(10.0, &b, None));
        assert!(!within_noise(-25.0, &b, None));
        assert!(within_noise(0.0, &b, None));
    }

    #[test]
    fn within_noise_by_confidence_interval() {
        let b = baseline();
        assert!(within_noise(50.0, &b, Some((-3.0, 80.0))));
        assert!(within_noise(50.0, &b, Some((0.0, 80.0))));
        assert!(!within_noise(50.0, &b, Some((20.0, 80.0))));
        assert!(!within_noise(-50.0, &b, Some((-80.0, -20.0))));
    }

    #[test]
    fn within_noise_with_a_deterministic_counter() {
        let b = summarize(&mut [0.0, 0.0, 0.0, 1.0]).unwrap();
        assert_eq!(b.mad, 0.0);
        assert!(within_noise(0.0, &b, None));
        assert!(!within_noise(1.0, &b, None));
        assert!(within_noise(f64::NAN, &b, None));
    }
}
