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

fn line(level: &str, msg: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // One write per line; a gone reader (containerd restarting) is not the shim's problem.
    let text = format!(
        "time=\"{}\" level={level} msg={:?} runtime=io.containerd.berth.v2 pid={}\n",
        berth_runtime::logging::rfc3339(now),
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
    use berth_runtime::logging::rfc3339;
    use std::time::Duration;

    #[test]
    fn formats_times_like_containerds_log() {
        assert_eq!(rfc3339(Duration::from_secs(0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(Duration::new(951_782_400 + 86_399, 5)), "2000-02-29T23:59:59.000000005Z");
        assert_eq!(rfc3339(Duration::from_secs(1_795_432_643)), "2026-11-23T11:17:23.000000000Z");
    }
}
