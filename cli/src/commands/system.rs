//! `berth system df` (System.DiskUsage as docker's table) and `berth system prune` (System.Prune:
//! garbage collection of unreferenced blobs and snapshots).

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::system::DiskUsageResponse;
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
            let usage = system.disk_usage(ctx(), &Empty::default()).await?;
            out.write_all(disk_usage_table(&usage).as_bytes())?;
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

/// docker's `system df` table. Images take the blobs and snapshots together (ACTIVE is 0: berthd
/// runs no containers yet); RECLAIMABLE is what `system prune` would free now.
fn disk_usage_table(usage: &DiskUsageResponse) -> String {
    let size = |bytes| humanize::size(bytes, SIZE_PRECISION);
    let image_bytes = usage.content_bytes.saturating_add(usage.snapshot_bytes);
    let reclaimable = match image_bytes {
        0 => size(usage.reclaimable_bytes),
        total => {
            format!("{} ({}%)", size(usage.reclaimable_bytes), usage.reclaimable_bytes.saturating_mul(100) / total)
        }
    };
    let row = |cells: [String; 5]| cells.to_vec();
    table::render(&[
        row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(str::to_string)),
        row(["Images".into(), usage.images.to_string(), "0".into(), size(image_bytes), reclaimable]),
        row(["Content blobs".into(), usage.blobs.to_string(), "-".into(), size(usage.content_bytes), "-".into()]),
        row(["Snapshots".into(), usage.snapshots.to_string(), "-".into(), size(usage.snapshot_bytes), "-".into()]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_table_reads_like_dockers() {
        let usage = DiskUsageResponse {
            images: 2,
            content_bytes: 4_000_000,
            blobs: 7,
            snapshots: 3,
            snapshot_bytes: 12_430_000,
            reclaimable_bytes: 1_643_000,
            ..Default::default()
        };
        assert_eq!(
            disk_usage_table(&usage),
            "\
TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images          2         0         16.43MB   1.643MB (10%)
Content blobs   7         -         4MB       -
Snapshots       3         -         12.43MB   -
"
        );
    }
}
