//! `berth commit` and `berth diff`: Builder.Commit and Builder.Diff.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::build::{CommitRequest, DiffRequest};

use crate::daemon::{ctx, Berthd};

/// Create a new image from a container's changes.
#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long, default_value = "")]
    author: String,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// Container name or id.
    container: String,
    /// REPOSITORY[:TAG] of the new image.
    reference: Option<String>,
}

/// Commits the container and prints the new image's id, as docker.
pub async fn run(berthd: &Berthd, args: &CommitArgs) -> Result<()> {
    let request = CommitRequest {
        container: args.container.clone(),
        reference: args.reference.clone().unwrap_or_default(),
        author: args.author.clone(),
        comment: args.message.clone(),
        pause: args.pause,
        changes: args.change.clone(),
        ..Default::default()
    };
    let response = berthd.builder().commit(ctx(), &request).await?;
    writeln!(io::stdout().lock(), "{}", response.image_id)?;
    Ok(())
}

/// Inspect changes to files or directories on a container's filesystem.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Container name or id.
    container: String,
}

/// Prints `A`/`C`/`D` and the path of each change, as docker.
pub async fn diff(berthd: &Berthd, args: &DiffArgs) -> Result<()> {
    let request = DiffRequest { container: args.container.clone(), ..Default::default() };
    let response = berthd.builder().diff(ctx(), &request).await?;
    let mut out = io::stdout().lock();
    for change in &response.changes {
        writeln!(out, "{} {}", change.kind, change.path)?;
    }
    Ok(())
}
