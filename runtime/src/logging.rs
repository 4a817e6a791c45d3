//! The runtime's log: `--log FILE` and `--log-format text|json`, in the shape engines parse
//! (runc's `{"level":"error","msg":"...","time":"..."}` lines; containerd reads the last error).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `time="..." level=error msg="..."`
    Text,
    /// One JSON object per line.
    Json,
}

struct Logger {
    file: Option<Mutex<File>>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the log destination once, at startup. Without a file, lines go to stderr.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(Mutex::new(OpenOptions::new().create(true).append(true).open(p)?)),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, format, debug });
    Ok(())
}

/// Logs an error.
pub fn error(msg: &str) {
    write("error", msg);
}

/// Logs a warning.
pub fn warn(msg: &str) {
    write("warning", msg);
}

/// Logs at debug level, only with `--debug`.
pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        write("debug", msg);
    }
}

/// True when a log file was given (so errors also go to stderr separately).
pub fn has_file() -> bool {
    LOGGER.get().is_some_and(|l| l.file.is_some())
}

fn write(level: &str, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        eprintln!("{level}: {msg}");
        return;
    };
    let time = now_rfc3339();
    let line = match logger.format {
        Format::Json => serde_json::json!({"level": level, "msg": msg, "time": time}).to_string(),
        Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
    };
    match &logger.file {
        Some(file) => {
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "{line}");
            }
        }
        None => eprintln!("{line}"),
    }
}

/// The current UTC time as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
}

/// `2006-01-02T15:04:05.000000000Z` for a time since the epoch (UTC): the timestamps of runc's
/// and containerd's logs, which the shim writes too.
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
