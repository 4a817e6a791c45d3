//! `events`: runc's event stream of a container, one JSON object a line: `stats` every interval
//! and `oom` when the kernel OOM-kills a process of the container; `--stats` prints the stats
//! once. The stream ends when the container stops.

use super::Container;
use crate::state::{State, Status};
use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Parses runc's `--interval` durations: `5s`, `500ms`, `1m`, `1.5s`, `2h`.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| anyhow::anyhow!("invalid interval {text:?} (e.g. 5s, 500ms)"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid interval {text:?}: the unit must be ns, us, ms, s, m or h"),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        bail!("invalid interval {text:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn print(out: &mut impl Write, kind: &str, id: &str, data: Option<serde_json::Value>) -> Result<()> {
    let mut event = json!({"type": kind, "id": id});
    if let Some(d) = data {
        event["data"] = d;
    }
    writeln!(out, "{event}")?;
    out.flush().context("writing the event")
}

/// Streams container `id`'s events to stdout (once, with `stats_once`).
pub fn events(root: &Path, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let (state, dir) = {
        let c = Container::open(root, id)?;
        match c.status() {
            Status::Created | Status::Running | Status::Paused => {}
            status => bail!("container {id} is not running (it is {status})"),
        }
        (c.state.clone(), c.dir.path.clone())
    };
    let mut out = std::io::stdout().lock();
    if stats_once {
        return print(&mut out, "stats", id, Some(serde_json::to_value(state.cgroup.stats()?)?));
    }
    let mut oom = state.cgroup.watch_oom()?;
    let mut next = Instant::now() + interval;
    loop {
        let left = next.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let readable = match &oom {
            Some(w) => {
                let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(n) => n > 0,
                    Err(nix::errno::Errno::EINTR) => false,
                    Err(e) => return Err(e).context("waiting for events"),
                }
            }
            None => {
                std::thread::sleep(left);
                false
            }
        };
        if readable {
            if let Some(w) = oom.as_mut() {
                let (kills, gone) = w.read()?;
                // One event per wake-up, like runc: v1 signals every OOM invocation, which can be
                // thousands while one process thrashes at its limit.
                if kills > 0 {
                    print(&mut out, "oom", id, None)?;
                }
                if gone {
                    oom = None;
                }
            }
        }
        if !still_there(&state, &dir) {
            return Ok(());
        }
        if Instant::now() >= next {
            match state.cgroup.stats() {
                Ok(s) => print(&mut out, "stats", id, Some(serde_json::to_value(s)?))?,
                Err(e) => crate::logging::warn(&format!("events {id}: reading stats: {e:#}")),
            }
            next = Instant::now() + interval;
        }
    }
}

/// The container still exists and has not stopped.
fn still_there(state: &State, dir: &Path) -> bool {
    dir.exists() && !matches!(state.status(dir), Status::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_interval("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("-1s").is_err());
    }
}
