//! `berth pause` and `berth unpause`: Tasks.Pause / Tasks.Resume (cgroup freezer) per container.

use anyhow::Result;
use berth_proto::tasks::TaskRequest;

use crate::commands::container::each;
use crate::daemon::{ctx, Berthd};

/// The containers to pause or unpause.
#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Freezes every process of each container.
pub async fn pause(berthd: &Berthd, args: &PauseArgs) -> Result<()> {
    let tasks = berthd.tasks();
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            tasks.pause(ctx(), &TaskRequest { id, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}

/// Thaws each container.
pub async fn unpause(berthd: &Berthd, args: &PauseArgs) -> Result<()> {
    let tasks = berthd.tasks();
    each(&args.containers, |id| {
        let tasks = &tasks;
        async move {
            tasks.resume(ctx(), &TaskRequest { id, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}
