//! Numbers as people read them: a multiplier of 1e-300 is not three hundred digits, and a loss
//! that diverged to 6.9e34 does not push a table's columns apart.

/// `v` as Rust writes it where that is short (`0.5`, `2`, `1e-3` as `0.001`), else in
/// scientific notation (`1e-300`, `6.872786e34`).
pub fn plain(v: f64) -> String {
    let magnitude = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&magnitude) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// `v` with `decimals` places (`0.6637`), or in scientific notation with at most two when it
/// is too large or too small for them to say anything (`6.87e34`, `1.20e-7`): no wider than
/// the plain form, so a column made for it holds either.
pub fn fixed(v: f64, decimals: usize) -> String {
    let magnitude = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-3..1e6).contains(&magnitude) {
        format!("{v:.decimals$}")
    } else {
        format!("{v:.*e}", decimals.min(2))
    }
}

/// `1h02m`, `3m05s`, `42s`: a time left, to the second.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The time left as views say it: `5m01s`, with a `+` when it is a floor (`grows`: groups
/// still to thaw will slow the steps).
pub fn time_left(secs: f64, grows: bool) -> String {
    let plus = if grows { "+" } else { "" };
    format!("{}{plus}", duration(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_where_plain_is_short_and_scientific_where_it_is_not() {
        assert_eq!(plain(0.5), "0.5");
        assert_eq!(plain(2.0), "2");
        assert_eq!(plain(1e-300), "1e-300");
        assert_eq!(plain(3e7), "3e7");
        assert_eq!(plain(f64::NAN), "NaN");
        assert_eq!(fixed(0.66371, 4), "0.6637");
        assert_eq!(fixed(6.872786e34, 4), "6.87e34");
        assert_eq!(fixed(4.0233e-8, 4), "4.02e-8");
        assert_eq!(fixed(0.0, 4), "0.0000");
        assert_eq!(fixed(f64::INFINITY, 4), "inf");
    }
}
