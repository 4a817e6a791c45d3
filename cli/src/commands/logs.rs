//! `berth logs`: the container's json-file log through Tasks.Logs, each entry on the stream it
//! was written to, optionally followed, cut by --tail/--since/--until, with docker's timestamps.

use std::io::{self, Write};

use anyhow::{anyhow, bail, Result};
use berth_proto::tasks::LogsRequest;

use crate::daemon::{ctx, Berthd};
use crate::humanize;

/// Fetch the logs of a container.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes).
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Show extra details provided to logs (accepted; berth has none).
    #[arg(long, hide = true)]
    details: bool,
    /// Container name or id.
    container: String,
}

/// Prints the log until its end, or with `-f` until the container's log ends.
pub async fn run(berthd: &Berthd, args: &LogsArgs) -> Result<()> {
    let now = humanize::now_nanos();
    let request = LogsRequest {
        id: args.container.clone(),
        follow: args.follow,
        tail: parse_tail(&args.tail)?,
        since: args.since.as_deref().map(|t| parse_time(t, now)).transpose()?.unwrap_or(0),
        until: args.until.as_deref().map(|t| parse_time(t, now)).transpose()?.unwrap_or(0),
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = berthd.tasks().logs(ctx(), &request).await?;
    while let Some(entry) = stream.recv().await? {
        let mut line = Vec::with_capacity(entry.data.len() + 32);
        if args.timestamps {
            line.extend_from_slice(humanize::rfc3339_nano_fixed(entry.time).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&entry.data);
        if entry.stream == 2 {
            let mut err = io::stderr().lock();
            err.write_all(&line)?;
            err.flush()?;
        } else {
            let mut out = io::stdout().lock();
            out.write_all(&line)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// `--tail N` or `all` (negative means all to berthd).
fn parse_tail(tail: &str) -> Result<i64> {
    match tail {
        "all" | "" => Ok(-1),
        _ => tail
            .parse::<i64>()
            .map(|n| if n < 0 { -1 } else { n })
            .map_err(|_| anyhow!("invalid value for --tail: {tail:?}")),
    }
}

/// `--since`/`--until` as docker takes them, in Unix nanoseconds: a Go duration before `now`
/// (`10m`, `1h30m`), RFC 3339 (`2024-01-02T15:04:05Z`, `…+02:00`), a UTC date or date-time
/// without zone, or Unix seconds (`1700000000`, `1700000000.5`).
pub fn parse_time(value: &str, now_nanos: i64) -> Result<i64> {
    if let Some(nanos) = parse_go_duration(value) {
        return Ok(now_nanos.saturating_sub(nanos));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return time.timestamp_nanos_opt().ok_or_else(|| anyhow!("time out of range: {value}"));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return time.and_utc().timestamp_nanos_opt().ok_or_else(|| anyhow!("time out of range: {value}"));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(|| anyhow!("invalid date: {value}"))?;
        return midnight.and_utc().timestamp_nanos_opt().ok_or_else(|| anyhow!("time out of range: {value}"));
    }
    let (seconds, fraction) = value.split_once('.').unwrap_or((value, ""));
    if let (Ok(seconds), true) =
        (seconds.parse::<i64>(), fraction.len() <= 9 && fraction.chars().all(|c| c.is_ascii_digit()))
    {
        let fraction: i64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse()? };
        return Ok(seconds.saturating_mul(1_000_000_000).saturating_add(fraction));
    }
    bail!("invalid time {value:?}: use RFC 3339 (2013-01-02T13:23:37Z), Unix seconds or a duration (42m)")
}

/// Go's `time.ParseDuration` for non-negative durations, in nanoseconds.
fn parse_go_duration(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;
    const NOW: i64 = 1_700_000_000 * SECOND;

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(parse_time("10m", NOW).unwrap(), NOW - 600 * SECOND);
        assert_eq!(parse_time("1h30m", NOW).unwrap(), NOW - 5400 * SECOND);
        assert_eq!(parse_time("1.5s", NOW).unwrap(), NOW - 1_500_000_000);
        assert_eq!(parse_time("250ms", NOW).unwrap(), NOW - 250_000_000);
    }

    #[test]
    fn absolute_times_are_rfc3339_dates_or_unix_seconds() {
        assert_eq!(parse_time("2023-11-14T22:13:20Z", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z", NOW).unwrap(), NOW + SECOND / 2);
        assert_eq!(parse_time("2023-11-14T22:13:20", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2023-11-14", NOW).unwrap(), NOW - (22 * 3600 + 13 * 60 + 20) * SECOND);
        assert_eq!(parse_time("1700000000", NOW).unwrap(), NOW);
        assert_eq!(parse_time("1700000000.25", NOW).unwrap(), NOW + SECOND / 4);
        assert!(parse_time("yesterday", NOW).is_err());
        assert!(parse_time("10x", NOW).is_err());
    }

    #[test]
    fn tail_is_a_count_or_all() {
        assert_eq!(parse_tail("all").unwrap(), -1);
        assert_eq!(parse_tail("5").unwrap(), 5);
        assert_eq!(parse_tail("0").unwrap(), 0);
        assert!(parse_tail("many").is_err());
    }
}
