//! `berth stop`: Tasks.Stop (the stop signal, SIGKILL after the timeout) for each container.

use anyhow::Result;
use berth_proto::tasks::StopTaskRequest;

use crate::commands::container::each;
use crate::daemon::{ctx, Berthd};

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
    if args.signal.is_some() {
        anyhow::bail!("berth stop --signal is not supported yet: use --stop-signal when creating the container");
    }
    let tasks = berthd.tasks();
    let timeout = stop_timeout(args.time);
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            tasks.stop(ctx(), &StopTaskRequest { id, timeout, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}

/// StopTaskRequest's timeout: negative means the container's own.
pub fn stop_timeout(time: Option<i64>) -> i64 {
    time.unwrap_or(-1)
}
