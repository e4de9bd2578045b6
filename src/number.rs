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

/// `YYYY-MM-DD HH:MM:SS` (UTC) of seconds since the Unix epoch.
pub fn utc(secs: f64) -> String {
    let secs = secs.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14 22:13:20");
    }

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
