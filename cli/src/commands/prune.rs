//! `berth container prune`: removes every container that is not running (Containers.Delete).

use std::io::{self, BufRead, Write};

use anyhow::Result;
use berth_proto::containers::{DeleteContainerRequest, ListContainersRequest};

use crate::daemon::{ctx, print_error, Berthd};

/// Remove all stopped containers.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// The states a prune removes: the container has no running process.
const STOPPED: [&str; 3] = ["created", "exited", "dead"];

/// Asks (unless `-f`), deletes the stopped containers and lists them as docker does.
pub async fn run(berthd: &Berthd, args: &PruneArgs) -> Result<()> {
    if !args.force
        && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")?
    {
        return Ok(());
    }
    let containers = berthd.containers();
    let listed = containers.list(ctx(), &ListContainersRequest { all: true, ..Default::default() }).await?;
    let mut deleted = Vec::new();
    for container in &listed.containers {
        let status = container.state.as_ref().map(|s| s.status.as_str()).unwrap_or_default();
        if !STOPPED.contains(&status) {
            continue;
        }
        let request = DeleteContainerRequest { id: container.id.clone(), ..Default::default() };
        match containers.delete(ctx(), &request).await {
            Ok(_) => deleted.push(container.id.clone()),
            // Started or removed meanwhile: not ours to report as pruned.
            Err(err) => print_error(&err.into()),
        }
    }
    let mut out = io::stdout().lock();
    if !deleted.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &deleted {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: 0B")?;
    Ok(())
}

/// Prints `question` and reads a yes on stdin.
pub fn confirm(question: &str) -> Result<bool> {
    let mut out = io::stdout().lock();
    write!(out, "{question}")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
