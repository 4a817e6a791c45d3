//! `berth image prune`: removes dangling images (no tagged name), or with `-a` every image no
//! container uses, through Images.Delete with synchronous garbage collection.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, Write};

use anyhow::Result;
use berth_proto::containers::ListContainersRequest;
use berth_proto::images::{DeleteImageRequest, ImageSummary, ListImagesRequest};

use crate::daemon::{ctx, print_error, Berthd};
use crate::humanize;
use crate::reference::FamiliarName;

/// go-units' `HumanSize` precision, which docker's "Total reclaimed space" uses.
const RECLAIMED_PRECISION: usize = 4;

/// Remove unused images.
#[derive(clap::Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Asks (unless `-f`), deletes the images and prints docker's report.
pub async fn run(berthd: &Berthd, args: &ImagePruneArgs) -> Result<()> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue? [y/N] "))? {
        return Ok(());
    }
    let images = berthd.images();
    let listed = images.list(ctx(), &ListImagesRequest::default()).await?;
    let containers =
        berthd.containers().list(ctx(), &ListContainersRequest { all: true, ..Default::default() }).await?;
    let used: HashSet<&str> = containers.containers.iter().map(|c| c.image_id.as_str()).collect();
    let mut report = Report::default();
    for name in names_to_prune(&listed.images, &used, args.all) {
        let request = DeleteImageRequest { name, sync: true, ..Default::default() };
        match images.delete(ctx(), &request).await {
            Ok(response) => {
                report.untagged.extend(response.untagged.iter().map(|n| FamiliarName::parse(n).to_string()));
                report.deleted.extend(response.deleted);
                report.bytes_freed += response.bytes_freed;
            }
            // Used or removed meanwhile: reported, and the others still go.
            Err(err) => print_error(&err.into()),
        }
    }
    io::stdout().lock().write_all(report.to_string().as_bytes())?;
    Ok(())
}

/// The names of the images to remove: those of image IDs no container uses that are dangling
/// (no name has a tag), or with `all` every such ID.
fn names_to_prune(images: &[ImageSummary], used: &HashSet<&str>, all: bool) -> Vec<String> {
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for summary in images {
        if let Some(image) = summary.image.as_ref() {
            by_id.entry(summary.config_digest.as_str()).or_default().push(image.name.as_str());
        }
    }
    by_id
        .into_iter()
        .filter(|(id, _)| id.is_empty() || !used.contains(id))
        .filter(|(_, names)| all || names.iter().all(|name| FamiliarName::parse(name).tag.is_none()))
        .flat_map(|(_, names)| names.into_iter().map(str::to_string))
        .collect()
}

/// What docker prints after a prune.
#[derive(Debug, Default)]
struct Report {
    untagged: Vec<String>,
    deleted: Vec<String>,
    bytes_freed: i64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.untagged.is_empty() || !self.deleted.is_empty() {
            writeln!(f, "Deleted Images:")?;
            for name in &self.untagged {
                writeln!(f, "untagged: {name}")?;
            }
            for id in &self.deleted {
                writeln!(f, "deleted: {id}")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "Total reclaimed space: {}", humanize::size(self.bytes_freed, RECLAIMED_PRECISION))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::images::Image;

    fn summary(name: &str, id: &str) -> ImageSummary {
        ImageSummary {
            image: Some(Image { name: name.to_string(), ..Default::default() }).into(),
            config_digest: id.to_string(),
            ..Default::default()
        }
    }

    fn listing() -> Vec<ImageSummary> {
        vec![
            summary("docker.io/library/busybox:latest", "sha256:aa"),
            summary("docker.io/library/busybox@sha256:dd", "sha256:aa"),
            summary("docker.io/library/old@sha256:ee", "sha256:bb"),
            summary("docker.io/library/used@sha256:ff", "sha256:cc"),
            summary("docker.io/library/app:v1", "sha256:ee"),
        ]
    }

    #[test]
    fn prune_removes_only_dangling_images_no_container_uses() {
        let used = HashSet::from(["sha256:cc"]);
        assert_eq!(names_to_prune(&listing(), &used, false), ["docker.io/library/old@sha256:ee"]);
    }

    #[test]
    fn prune_all_removes_every_name_of_unused_images() {
        let used = HashSet::from(["sha256:cc", "sha256:ee"]);
        assert_eq!(
            names_to_prune(&listing(), &used, true),
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox@sha256:dd",
                "docker.io/library/old@sha256:ee"
            ]
        );
    }

    #[test]
    fn report_reads_like_dockers() {
        assert_eq!(Report::default().to_string(), "Total reclaimed space: 0B\n");
        let report = Report {
            untagged: vec!["busybox:latest".into()],
            deleted: vec!["sha256:aa".into()],
            bytes_freed: 4_261_000,
        };
        assert_eq!(
            report.to_string(),
            "Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:aa\n\nTotal reclaimed space: 4.261MB\n"
        );
    }
}
