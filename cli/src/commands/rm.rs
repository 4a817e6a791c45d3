//! `berth rm`: Containers.Delete for each container (`-f` kills a running one first).

use anyhow::Result;
use berth_proto::containers::DeleteContainerRequest;

use crate::commands::container::each;
use crate::daemon::{ctx, Berthd};

/// Remove one or more containers.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short, long)]
    volumes: bool,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Removes each container, printing its name as typed.
pub async fn run(berthd: &Berthd, args: &RmArgs) -> Result<()> {
    let containers = berthd.containers();
    let (force, volumes) = (args.force, args.volumes);
    each(&args.containers, |id| {
        let containers = &containers;
        async move {
            containers.delete(ctx(), &DeleteContainerRequest { id, force, volumes, ..Default::default() }).await?;
            Ok(())
        }
    })
    .await
}
