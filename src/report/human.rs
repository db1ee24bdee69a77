//! Numbers in human units for the table: `3.4 µs`, `1.2M`, `14`.

use crate::events::Unit;

/// A value of `unit` in at most 7 characters.
pub fn format_value(value: f64, unit: Unit) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    match unit {
        Unit::Nanoseconds => time(value),
        Unit::Count => count(value),
    }
}

/// Like [`format_value`], with a leading `+` for positive values (for
/// differences).
pub fn format_value_signed(value: f64, unit: Unit) -> String {
    let text = format_value(value, unit);
    if value > 0.0 {
        format!("+{text}")
    } else {
        text
    }
}

fn three_digits(v: f64) -> String {
    // Thresholds below the powers of ten, so that rounding never adds a
    // digit ("10.00").
    let a = v.abs();
    if a >= 99.95 {
        format!("{v:.0}")
    } else if a >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn time(ns: f64) -> String {
    let a = ns.abs();
    // Thresholds at x99.5 so that rounding never shows "1000 µs".
    let (v, unit) = if a < 999.5 {
        return if ns.fract() == 0.0 {
            format!("{ns:.0} ns")
        } else {
            format!("{} ns", three_digits(ns))
        };
    } else if a < 999_500.0 {
        (ns / 1e3, "µs")
    } else if a < 999_500_000.0 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", three_digits(v))
}

fn count(v: f64) -> String {
    let a = v.abs();
    if a < 9_999.5 {
        return if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            three_digits(v)
        };
    }
    let (scaled, suffix) = if a < 999_500.0 {
        (v / 1e3, "k")
    } else if a < 999_500_000.0 {
        (v / 1e6, "M")
    } else if a < 999_500_000_000.0 {
        (v / 1e9, "G")
    } else {
        (v / 1e12, "T")
    };
    format!("{}{suffix}", three_digits(scaled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(format_value(0.0, Unit::Nanoseconds), "0 ns");
        assert_eq!(format_value(812.0, Unit::Nanoseconds), "812 ns");
        assert_eq!(format_value(3.25, Unit::Nanoseconds), "3.25 ns");
        assert_eq!(format_value(3_412.0, Unit::Nanoseconds), "3.41 µs");
        assert_eq!(format_value(16_200.0, Unit::Nanoseconds), "16.2 µs");
        assert_eq!(format_value(123_456_789.0, Unit::Nanoseconds), "123 ms");
        assert_eq!(format_value(2.5e9, Unit::Nanoseconds), "2.50 s");
        assert_eq!(format_value(-1_500.0, Unit::Nanoseconds), "-1.50 µs");
    }

    #[test]
    fn counts() {
        assert_eq!(format_value(14.0, Unit::Count), "14");
        assert_eq!(format_value(3.5, Unit::Count), "3.50");
        assert_eq!(format_value(9_999.0, Unit::Count), "9999");
        assert_eq!(format_value(12_345.0, Unit::Count), "12.3k");
        assert_eq!(format_value(1_234_567.0, Unit::Count), "1.23M");
        assert_eq!(format_value(2e9, Unit::Count), "2.00G");
        assert_eq!(format_value(999_999.0, Unit::Count), "1.00M");
        assert_eq!(format_value(999_900.0, Unit::Nanoseconds), "1.00 ms");
        assert_eq!(format_value(f64::NAN, Unit::Count), "-");
    }

    #[test]
    fn fits_seven_characters() {
        for v in [
            0.5, 9.99, 999.7, 9_999.7, 99_999.0, 999_999.0, 9.9e8, 9.9999e11,
        ] {
            for unit in [Unit::Count, Unit::Nanoseconds] {
                let s = format_value(v, unit);
                assert!(s.chars().count() <= 7, "{s}");
            }
        }
    }

    #[test]
    fn signed() {
        assert_eq!(format_value_signed(3.0, Unit::Count), "+3");
        assert_eq!(format_value_signed(-3.0, Unit::Count), "-3");
        assert_eq!(format_value_signed(0.0, Unit::Count), "0");
    }
}
