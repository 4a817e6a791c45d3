//! The shim's log: lines on stderr, which the long-lived shim points at the `log` FIFO that
//! containerd reads from the bundle (and copies into its own log). `start` and `delete` keep
//! stderr clean for containerd, which reads their output.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on (`-debug`).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// `2006-01-02T15:04:05.000000000Z` for a time since the epoch (UTC, proleptic Gregorian).
fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to civil date (Howard Hinnant's algorithm).
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

fn line(level: &str, msg: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // One write per line; a gone reader (containerd restarting) is not the shim's problem.
    let text = format!(
        "time=\"{}\" level={level} msg={:?} runtime=io.containerd.berth.v2 pid={}\n",
        rfc3339(now),
        msg,
        std::process::id()
    );
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Logs a warning.
pub fn warn(msg: &str) {
    line("warning", msg);
}

/// Logs an error.
pub fn error(msg: &str) {
    line("error", msg);
}

/// Logs when `-debug` was given.
pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        line("debug", msg);
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::Duration;

    #[test]
    fn formats_times_like_containerds_log() {
        assert_eq!(rfc3339(Duration::from_secs(0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(Duration::new(951_782_400 + 86_399, 5)), "2000-02-29T23:59:59.000000005Z");
        assert_eq!(rfc3339(Duration::from_secs(1_795_432_643)), "2026-11-23T11:17:23.000000000Z");
    }
}
