//! `berth system df` (Images.List, Containers.List and Volumes.List as docker's table) and `berth system prune` (System.Prune:
//! garbage collection of unreferenced blobs and snapshots; with `--volumes`, Volumes.Prune first).

use std::io::{self, Write};

use anyhow::Result;
use std::collections::{HashMap, HashSet};

use berth_proto::containers::{Container, ListContainersRequest};
use berth_proto::images::{ImageSummary, ListImagesRequest};
use berth_proto::types::Empty;
use berth_proto::volumes::{ListVolumesRequest, PruneVolumesRequest, Volume};

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
    /// Prune volumes too: every local volume no container uses.
    #[arg(long)]
    volumes: bool,
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
            let volumes =
                berthd.volumes().list(ctx(), &ListVolumesRequest { with_size: true, ..Default::default() }).await?;
            out.write_all(disk_usage_table(&images.images, &containers.containers, &volumes.volumes).as_bytes())?;
        }
        SystemCommand::Info => crate::commands::info::run(berthd).await?,
        SystemCommand::Unknown(argv) => {
            return Err(UnknownCommand(format!("system {}", argv.first().map_or("", String::as_str))).into())
        }
        SystemCommand::Prune(args) => {
            let mut volumes_freed = 0;
            if args.volumes {
                let pruned = berthd.volumes().prune(ctx(), &PruneVolumesRequest::default()).await?;
                if !pruned.deleted.is_empty() {
                    writeln!(out, "Deleted Volumes:")?;
                    for name in &pruned.deleted {
                        writeln!(out, "{name}")?;
                    }
                    writeln!(out)?;
                }
                volumes_freed = i64::try_from(pruned.space_reclaimed).unwrap_or(i64::MAX);
            }
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
            let freed = pruned.bytes_freed.saturating_add(volumes_freed);
            writeln!(out, "Total reclaimed space: {}", humanize::size(freed, SIZE_PRECISION))?;
        }
    }
    Ok(())
}

/// docker's `system df` table. Images count once per ID, ACTIVE when a container uses them,
/// and RECLAIMABLE is the size of the others (what `image prune -a` frees). Containers' writable
/// layers are not measured yet (0B); berth has no build cache. Volumes are ACTIVE when a
/// container uses them, RECLAIMABLE when none does.
fn disk_usage_table(images: &[ImageSummary], containers: &[Container], volumes: &[Volume]) -> String {
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
        row([
            "Local Volumes".into(),
            volumes.len().to_string(),
            volumes.iter().filter(|v| !v.used_by.is_empty()).count().to_string(),
            size(volume_bytes(volumes.iter())),
            with_share(volume_bytes(volumes.iter().filter(|v| v.used_by.is_empty())), volume_bytes(volumes.iter())),
        ]),
        row(["Build Cache".into(), "0".into(), "0".into(), size(0), size(0)]),
    ])
}

/// The measured sizes of `volumes`, added.
fn volume_bytes<'a>(volumes: impl Iterator<Item = &'a Volume>) -> i64 {
    volumes.map(|v| v.size.max(0)).sum()
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
        let volumes = [
            Volume { size: 3_000, used_by: vec!["c".into()], ..Default::default() },
            Volume { size: 1_000, ..Default::default() },
        ];
        assert_eq!(
            disk_usage_table(&images, &containers, &volumes),
            "\
TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images          2         1         16.43MB   4MB (24%)
Containers      2         1         0B        0B
Local Volumes   2         1         4kB       1kB (25%)
Build Cache     0         0         0B        0B
"
        );
        assert!(disk_usage_table(&[], &[], &[]).contains("Images          0         0         0B        0B\n"));
    }
}
