//! `berth stop`: Tasks.Stop (the stop signal, SIGKILL after the timeout) for each container; with
//! `--signal`, the same sequence driven from the client through Kill and Wait.

use std::time::Duration;

use anyhow::Result;
use berth_proto::tasks::{KillTaskRequest, StopTaskRequest, WaitTaskRequest};
use berth_proto::tasks_ttrpc::TasksClient;

use crate::commands::container::{create_config, each, get};
use crate::daemon::{ctx, Berthd};
use crate::signals;

/// Stop one or more running containers.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: the container's stop timeout).
    #[arg(short = 't', long = "time", alias = "timeout", allow_hyphen_values = true)]
    time: Option<i64>,
    /// Signal to send to the container (default: the container's stop signal).
    #[arg(short, long)]
    signal: Option<String>,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Stops each container, printing its name as typed.
pub async fn run(berthd: &Berthd, args: &StopArgs) -> Result<()> {
    let signal = args.signal.as_deref().map(signals::parse).transpose()?;
    let tasks = berthd.tasks();
    let timeout = stop_timeout(args.time);
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            match signal {
                Some(signal) => stop_with_signal(berthd, tasks, &id, signal, args.time).await,
                None => {
                    tasks.stop(ctx(), &StopTaskRequest { id, timeout, ..Default::default() }).await?;
                    Ok(())
                }
            }
        }
    })
    .await
}

/// docker's default stop timeout, when the container sets none.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// `stop --signal`: StopTaskRequest has no signal, so the client does what Stop does: the
/// signal, then SIGKILL if the container has not exited within the timeout.
async fn stop_with_signal(
    berthd: &Berthd,
    tasks: &TasksClient,
    id: &str,
    signal: u32,
    time: Option<i64>,
) -> Result<()> {
    let container = get(berthd, id).await?;
    let status = container.state.as_ref().map(|s| s.status.clone()).unwrap_or_default();
    if !matches!(status.as_str(), "running" | "paused" | "restarting") {
        // docker's stop of a stopped container succeeds.
        return Ok(());
    }
    let seconds = time.or(create_config(&container).stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
    let id = container.id;
    tasks.kill(ctx(), &KillTaskRequest { id: id.clone(), signal, ..Default::default() }).await?;
    let wait_request = WaitTaskRequest { id: id.clone(), ..Default::default() };
    let wait = tasks.wait(ctx(), &wait_request);
    if seconds >= 0 {
        if tokio::time::timeout(Duration::from_secs(seconds as u64), wait).await.is_ok() {
            return Ok(());
        }
    } else {
        wait.await?;
        return Ok(());
    }
    let kill = KillTaskRequest { id: id.clone(), signal: SIGKILL, ..Default::default() };
    // It may have exited between the timeout and the kill.
    let _ = tasks.kill(ctx(), &kill).await;
    tasks.wait(ctx(), &WaitTaskRequest { id, ..Default::default() }).await?;
    Ok(())
}

const SIGKILL: u32 = 9;

/// StopTaskRequest's timeout: negative means the container's own.
pub fn stop_timeout(time: Option<i64>) -> i64 {
    time.unwrap_or(-1)
}
