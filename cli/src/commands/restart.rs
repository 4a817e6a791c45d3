//! `berth restart`: Tasks.Stop then Tasks.Start for each container.

use anyhow::Result;
use berth_proto::tasks::{StartTaskRequest, StopTaskRequest};

use crate::commands::container::each;
use crate::commands::stop::stop_timeout;
use crate::daemon::{ctx, Berthd};

/// Restart one or more containers.
#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container (default: the container's stop timeout).
    #[arg(short = 't', long = "time", alias = "timeout", allow_hyphen_values = true)]
    time: Option<i64>,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Stops (if running) and starts each container, printing its name as typed.
pub async fn run(berthd: &Berthd, args: &RestartArgs) -> Result<()> {
    let tasks = berthd.tasks();
    let timeout = stop_timeout(args.time);
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            tasks.stop(ctx(), &StopTaskRequest { id: id.clone(), timeout, ..Default::default() }).await?;
            tasks.start(ctx(), &StartTaskRequest { id, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}
