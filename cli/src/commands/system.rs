//! `berth system df` (Images.List and Containers.List as docker's table) and `berth system prune` (System.Prune:
//! garbage collection of unreferenced blobs and snapshots).

use std::io::{self, Write};

use anyhow::Result;
use std::collections::{HashMap, HashSet};

use berth_proto::containers::{Container, ListContainersRequest};
use berth_proto::images::{ImageSummary, ListImagesRequest};
use berth_proto::types::Empty;

use crate::daemon::{ctx, Berthd, UnknownCommand};
use crate::humanize;
use crate::table;

/// Precision docker's `system df` and prune summary give sizes.
const SIZE_PRECISION: usize = 4;

/// Manage berthd.
#[derive(clap::Subcommand, Debug)]
pub enum SystemCommand {
    /// Show disk usage.
    Df,
    /// Display system-wide information.
    Info,
    /// Remove unreferenced content blobs and snapshots.
    Prune(PruneArgs),
    /// A `system` verb berth does not have: said so, with no guess at a similar one.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

/// Options of `system prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Accepted for docker compatibility: berth's prune removes only what no image uses, and does
    /// not ask.
    #[arg(short, long)]
    force: bool,
}

/// Runs a `system` subcommand.
pub async fn run(berthd: &Berthd, command: &SystemCommand) -> Result<()> {
    let system = berthd.system();
    let mut out = io::stdout().lock();
    match command {
        SystemCommand::Df => {
            let images = berthd.images().list(ctx(), &ListImagesRequest::default()).await?;
            let containers =
                berthd.containers().list(ctx(), &ListContainersRequest { all: true, ..Default::default() }).await?;
            out.write_all(disk_usage_table(&images.images, &containers.containers).as_bytes())?;
        }
        SystemCommand::Info => crate::commands::info::run(berthd).await?,
        SystemCommand::Unknown(argv) => {
            return Err(UnknownCommand(format!("system {}", argv.first().map_or("", String::as_str))).into())
        }
        SystemCommand::Prune(_) => {
            let pruned = system.prune(ctx(), &Empty::default()).await?;
            if pruned.blobs_removed > 0 {
                writeln!(out, "Deleted content blobs: {}", pruned.blobs_removed)?;
            }
            if pruned.snapshots_removed > 0 {
                writeln!(out, "Deleted snapshots: {}", pruned.snapshots_removed)?;
            }
            if pruned.blobs_removed > 0 || pruned.snapshots_removed > 0 {
                writeln!(out)?;
            }
            writeln!(out, "Total reclaimed space: {}", humanize::size(pruned.bytes_freed, SIZE_PRECISION))?;
        }
    }
    Ok(())
}

/// docker's `system df` table. Images count once per ID, ACTIVE when a container uses them,
/// and RECLAIMABLE is the size of the others (what `image prune -a` frees). Containers' writable
/// layers are not measured yet (0B); berth has no volumes or build cache.
fn disk_usage_table(images: &[ImageSummary], containers: &[Container]) -> String {
    let size = |bytes| humanize::size(bytes, SIZE_PRECISION);
    let with_share = |reclaimable: i64, total: i64| match total {
        0 => size(reclaimable),
        total => format!("{} ({}%)", size(reclaimable), reclaimable.saturating_mul(100) / total),
    };
    let sizes_by_id: HashMap<&str, i64> = images.iter().map(|s| (s.config_digest.as_str(), s.size)).collect();
    let used: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
    let images_bytes: i64 = sizes_by_id.values().sum();
    let unused_bytes: i64 = sizes_by_id.iter().filter(|(id, _)| !used.contains(*id)).map(|(_, bytes)| bytes).sum();
    let active_images = sizes_by_id.keys().filter(|id| used.contains(*id)).count();
    let running = containers.iter().filter(|c| c.state.as_ref().is_some_and(|s| s.status == "running")).count();
    let row = |cells: [String; 5]| cells.to_vec();
    table::render(&[
        row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(str::to_string)),
        row([
            "Images".into(),
            sizes_by_id.len().to_string(),
            active_images.to_string(),
            size(images_bytes),
            with_share(unused_bytes, images_bytes),
        ]),
        row(["Containers".into(), containers.len().to_string(), running.to_string(), size(0), size(0)]),
        row(["Local Volumes".into(), "0".into(), "0".into(), size(0), size(0)]),
        row(["Build Cache".into(), "0".into(), "0".into(), size(0), size(0)]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::containers::ContainerState;

    fn image(id: &str, size: i64) -> ImageSummary {
        ImageSummary { config_digest: id.to_string(), size, ..Default::default() }
    }

    fn container(image_id: &str, status: &str) -> Container {
        Container {
            image_id: image_id.to_string(),
            state: Some(ContainerState { status: status.to_string(), ..Default::default() }).into(),
            ..Default::default()
        }
    }

    #[test]
    fn disk_usage_counts_each_image_once_and_unused_ones_as_reclaimable() {
        // Two names of one image, and a second image no container uses.
        let images = [image("sha256:aa", 12_430_000), image("sha256:aa", 12_430_000), image("sha256:bb", 4_000_000)];
        let containers = [container("sha256:aa", "running"), container("sha256:aa", "exited")];
        assert_eq!(
            disk_usage_table(&images, &containers),
            "\
TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images          2         1         16.43MB   4MB (24%)
Containers      2         1         0B        0B
Local Volumes   0         0         0B        0B
Build Cache     0         0         0B        0B
"
        );
        assert!(disk_usage_table(&[], &[]).contains("Images          0         0         0B        0B\n"));
    }
}
