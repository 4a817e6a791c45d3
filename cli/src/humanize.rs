//! Sizes and times the way docker prints them (its go-units library): decimal units with a few
//! significant digits (`4.26MB`), durations like `2 hours ago`, and timestamps in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// go-units' decimal unit names.
const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// `bytes` in decimal units with `precision` significant digits, as go-units'
/// `HumanSizeWithPrecision` (docker's `images` uses 3, `system df` 4).
pub fn size(bytes: i64, precision: usize) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(value, precision), DECIMAL_UNITS[unit])
}

/// go-units' binary unit names.
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// `bytes` in binary units with 4 significant digits, as go-units' `BytesSize` (docker's
/// `stats`: `1.953MiB`).
pub fn binary_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < BINARY_UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", format_g(value, 4), BINARY_UNITS[unit])
}

/// Go's `%.<precision>g`: `precision` significant digits, no trailing zeros, exponent form when
/// the exponent is below -4 or not below the precision (so 999.999 kB is `1e+03kB`, as docker's).
fn format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    // Rust's `{:e}` rounds to the precision first, which gives the exponent %g decides by.
    let scientific = format!("{:.*e}", precision - 1, value);
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_fraction_zeros(mantissa), exponent.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn trim_fraction_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Now, in Unix nanoseconds (0 if the clock is before 1970).
pub fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `2 hours ago`, docker's CREATED column, from Unix nanoseconds; `N/A` when unknown (0).
pub fn since(then_nanos: i64, now_nanos: i64) -> String {
    if then_nanos <= 0 {
        return "N/A".to_string();
    }
    format!("{} ago", duration(now_nanos.saturating_sub(then_nanos) / NANOS_PER_SECOND))
}

/// go-units' `HumanDuration`, from whole seconds (`Up 3 seconds`, `Exited (0) 2 hours ago`).
pub fn duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    // go-units rounds hours to nearest, and counts days, weeks, months and years from them.
    let hours = (seconds + 1800) / 3600;
    match () {
        _ if seconds < 1 => "Less than a second".to_string(),
        _ if seconds == 1 => "1 second".to_string(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// `2024-01-02 15:04:05 +0000 UTC`: docker's `CreatedAt` in `--format json`.
pub fn utc_timestamp(nanos: i64) -> String {
    let (date, time) = civil_utc(nanos.div_euclid(NANOS_PER_SECOND));
    format!("{date} {time} +0000 UTC")
}

/// RFC 3339 with nanoseconds and no trailing zeros (Go's `RFC3339Nano`), in UTC:
/// `2024-01-02T15:04:05.5Z`.
pub fn rfc3339(nanos: i64) -> String {
    let (date, time) = civil_utc(nanos.div_euclid(NANOS_PER_SECOND));
    let fraction = nanos.rem_euclid(NANOS_PER_SECOND);
    if fraction == 0 {
        format!("{date}T{time}Z")
    } else {
        let digits = format!("{fraction:09}");
        format!("{date}T{time}.{}Z", digits.trim_end_matches('0'))
    }
}

/// RFC 3339 with always nine fraction digits (docker's `RFC3339NanoFixed`, `logs -t`).
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    let (date, time) = civil_utc(nanos.div_euclid(NANOS_PER_SECOND));
    format!("{date}T{time}.{:09}Z", nanos.rem_euclid(NANOS_PER_SECOND))
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of a Unix time in UTC.
fn civil_utc(seconds: i64) -> (String, String) {
    match chrono::DateTime::from_timestamp(seconds, 0) {
        Some(t) => (t.format("%Y-%m-%d").to_string(), t.format("%H:%M:%S").to_string()),
        // Beyond chrono's range (±262,000 years): no real image was made then.
        None => ("????-??-??".into(), "??:??:??".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = NANOS_PER_SECOND;

    #[test]
    fn sizes_use_decimal_units_with_three_significant_digits_like_docker_images() {
        assert_eq!(size(0, 3), "0B");
        assert_eq!(size(999, 3), "999B");
        assert_eq!(size(1000, 3), "1kB");
        assert_eq!(size(1234, 3), "1.23kB");
        assert_eq!(size(4_261_000, 3), "4.26MB");
        assert_eq!(size(4_265_000, 3), "4.26MB");
        assert_eq!(size(77_800_000, 3), "77.8MB");
        assert_eq!(size(1_500_000_000, 3), "1.5GB");
        assert_eq!(size(123_456_789, 3), "123MB");
    }

    #[test]
    fn sizes_keep_docker_quirks_at_unit_boundaries_and_precision_four() {
        assert_eq!(size(999_999, 3), "1e+03kB");
        assert_eq!(size(1_234_567, 4), "1.235MB");
        assert_eq!(size(16_430_000, 4), "16.43MB");
    }

    #[test]
    fn binary_sizes_read_like_docker_stats() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(2_048_000), "1.953MiB");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(16_700_000_000), "15.55GiB");
    }

    #[test]
    fn ages_read_like_docker_created_column() {
        let now = 1_700_000_000 * SECOND;
        assert_eq!(since(0, now), "N/A");
        assert_eq!(since(now, now), "Less than a second ago");
        assert_eq!(since(now - SECOND, now), "1 second ago");
        assert_eq!(since(now - 45 * SECOND, now), "45 seconds ago");
        assert_eq!(since(now - 90 * SECOND, now), "About a minute ago");
        assert_eq!(since(now - 30 * 60 * SECOND, now), "30 minutes ago");
        assert_eq!(since(now - 70 * 60 * SECOND, now), "About an hour ago");
        assert_eq!(since(now - 2 * 3600 * SECOND, now), "2 hours ago");
        assert_eq!(since(now - 3 * 86_400 * SECOND, now), "3 days ago");
        assert_eq!(since(now - 21 * 86_400 * SECOND, now), "3 weeks ago");
        assert_eq!(since(now - 90 * 86_400 * SECOND, now), "3 months ago");
        assert_eq!(since(now - 3 * 365 * 86_400 * SECOND, now), "3 years ago");
        assert_eq!(since(now + 10 * SECOND, now), "Less than a second ago");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(utc_timestamp(1_700_000_000 * SECOND), "2023-11-14 22:13:20 +0000 UTC");
        assert_eq!(utc_timestamp(951_782_400 * SECOND), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(1_700_000_000 * SECOND), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_700_000_000 * SECOND + 500_000_000), "2023-11-14T22:13:20.5Z");
        assert_eq!(rfc3339(-SECOND), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_nano_fixed(1_700_000_000 * SECOND + 500), "2023-11-14T22:13:20.000000500Z");
    }
}
