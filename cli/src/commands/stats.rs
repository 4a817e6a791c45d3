//! `berth stats`: live resource usage (Tasks.Metrics) as docker's table: CONTAINER ID, NAME,
//! CPU % (from two samples), MEM USAGE / LIMIT, MEM %, PIDS; refreshed each second unless
//! `--no-stream`.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_proto::containers::{Container, ListContainersRequest};
use berth_proto::tasks::{MetricsResponse, TaskRequest};
use berth_proto::tasks_ttrpc::TasksClient;

use crate::commands::container::{get, short_id};
use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};
use crate::humanize;
use crate::table;

/// Display a live stream of container(s) resource usage statistics.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Container names or ids (default: all running containers).
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Time between the two samples CPU % is computed from.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// One reading of a container's metrics and when it was taken.
struct Sample {
    metrics: Option<MetricsResponse>,
    taken: Instant,
}

/// Prints the table once (`--no-stream`) or refreshes it until interrupted.
pub async fn run(berthd: &Berthd, args: &StatsArgs) -> Result<()> {
    let containers = targets(berthd, args).await?;
    let tasks = berthd.tasks();
    let host_memory = host_memory();
    let mut previous = sample_all(&tasks, &containers).await;
    loop {
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        let current = sample_all(&tasks, &containers).await;
        let mut rows =
            vec![["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"].map(str::to_string).to_vec()];
        for ((container, before), after) in containers.iter().zip(&previous).zip(&current) {
            let id = if args.no_trunc { container.id.as_str() } else { short_id(&container.id) };
            rows.push(row(id, &container.name, before, after, host_memory));
        }
        let mut out = io::stdout().lock();
        if !args.no_stream {
            // docker clears the screen between refreshes.
            out.write_all(b"\x1b[2J\x1b[H")?;
        }
        out.write_all(table::render(&rows).as_bytes())?;
        out.flush()?;
        if args.no_stream {
            return Ok(());
        }
        previous = current;
    }
}

/// The named containers, or every running (with `-a` every) one.
async fn targets(berthd: &Berthd, args: &StatsArgs) -> Result<Vec<Container>> {
    if args.containers.is_empty() {
        let request = ListContainersRequest { all: args.all, ..Default::default() };
        return Ok(berthd.containers().list(ctx(), &request).await?.containers);
    }
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.containers {
        match get(berthd, name).await {
            Ok(container) => found.push(container),
            Err(err) => {
                print_error(&err);
                failed = true;
            }
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(found)
}

async fn sample_all(tasks: &TasksClient, containers: &[Container]) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(containers.len());
    for container in containers {
        // A stopped container has no metrics: its row shows zeros, as docker's.
        let metrics = tasks.metrics(ctx(), &TaskRequest { id: container.id.clone(), ..Default::default() }).await.ok();
        samples.push(Sample { metrics, taken: Instant::now() });
    }
    samples
}

/// A table row from two samples of one container.
fn row(id: &str, name: &str, before: &Sample, after: &Sample, host_memory: u64) -> Vec<String> {
    let Some(now) = &after.metrics else {
        return vec![id.to_string(), name.to_string(), "0.00%".into(), "0B / 0B".into(), "0.00%".into(), "0".into()];
    };
    let cpu = match &before.metrics {
        Some(then) => {
            let elapsed = if now.timestamp > then.timestamp && then.timestamp > 0 {
                (now.timestamp - then.timestamp) as f64
            } else {
                after.taken.duration_since(before.taken).as_nanos() as f64
            };
            cpu_percent(then.cpu_usage_nanos, now.cpu_usage_nanos, elapsed)
        }
        None => 0.0,
    };
    let usage =
        now.memory_usage.saturating_sub(if now.memory_cache <= now.memory_usage { now.memory_cache } else { 0 });
    let limit = if now.memory_limit == 0 || (host_memory > 0 && now.memory_limit > host_memory) {
        host_memory
    } else {
        now.memory_limit
    };
    let memory_percent = if limit > 0 { usage as f64 / limit as f64 * 100.0 } else { 0.0 };
    vec![
        id.to_string(),
        name.to_string(),
        format!("{cpu:.2}%"),
        format!("{} / {}", humanize::binary_size(usage), humanize::binary_size(limit)),
        format!("{memory_percent:.2}%"),
        now.pids.to_string(),
    ]
}

/// CPU time used over wall time, as a percentage of one CPU (docker's figure can exceed 100).
fn cpu_percent(before_nanos: u64, after_nanos: u64, elapsed_nanos: f64) -> f64 {
    if elapsed_nanos <= 0.0 {
        return 0.0;
    }
    after_nanos.saturating_sub(before_nanos) as f64 / elapsed_nanos * 100.0
}

/// MemTotal of this host in bytes (docker's limit for a container without one); 0 if unknown.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        assert_eq!(cpu_percent(0, 500_000_000, 1e9), 50.0);
        assert_eq!(cpu_percent(1_000, 2_000_001_000, 1e9), 200.0);
        assert_eq!(cpu_percent(5, 5, 1e9), 0.0);
        assert_eq!(cpu_percent(0, 1, 0.0), 0.0);
    }

    #[test]
    fn rows_show_usage_without_cache_against_the_limit() {
        let taken = Instant::now();
        let before = Sample {
            metrics: Some(MetricsResponse { cpu_usage_nanos: 0, timestamp: 1_000_000_000, ..Default::default() }),
            taken,
        };
        let after = Sample {
            metrics: Some(MetricsResponse {
                cpu_usage_nanos: 250_000_000,
                timestamp: 2_000_000_000,
                memory_usage: 48 << 20,
                memory_cache: 16 << 20,
                memory_limit: 64 << 20,
                pids: 3,
                ..Default::default()
            }),
            taken,
        };
        let row = row("abc", "web", &before, &after, 8 << 30);
        assert_eq!(row, ["abc", "web", "25.00%", "32MiB / 64MiB", "50.00%", "3"]);
    }

    #[test]
    fn unlimited_memory_shows_the_hosts() {
        let taken = Instant::now();
        let sample = Sample { metrics: Some(MetricsResponse { memory_usage: 1 << 30, ..Default::default() }), taken };
        let row = row("abc", "web", &sample, &sample, 4 << 30);
        assert_eq!(row[3], "1GiB / 4GiB");
        assert_eq!(row[4], "25.00%");
    }
}
