//! `berth rename`: Containers.Rename.

use anyhow::Result;
use berth_proto::containers::RenameContainerRequest;

use crate::daemon::{ctx, Berthd};

/// Rename a container.
#[derive(clap::Args, Debug)]
pub struct RenameArgs {
    /// Container name or id.
    container: String,
    /// The new name.
    new_name: String,
}

/// Renames the container; prints nothing, as docker.
pub async fn run(berthd: &Berthd, args: &RenameArgs) -> Result<()> {
    let request =
        RenameContainerRequest { id: args.container.clone(), name: args.new_name.clone(), ..Default::default() };
    berthd.containers().rename(ctx(), &request).await?;
    Ok(())
}
