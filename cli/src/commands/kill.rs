//! `berth kill`: Tasks.Kill with a signal (SIGKILL by default) for each container.

use anyhow::Result;
use berth_proto::tasks::KillTaskRequest;

use crate::commands::container::each;
use crate::daemon::{ctx, Berthd};
use crate::signals;

/// Kill one or more running containers.
#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container (name or number).
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Signals each container's init, printing its name as typed.
pub async fn run(berthd: &Berthd, args: &KillArgs) -> Result<()> {
    let signal = signals::parse(&args.signal)?;
    let tasks = berthd.tasks();
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            tasks.kill(ctx(), &KillTaskRequest { id, signal, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}
