//! `berth rmi`: Images.Delete (with synchronous garbage collection) per name, or per name of an
//! image ID, printing docker's `Untagged:` and `Deleted:` lines.

use std::collections::HashSet;
use std::io::{self, Write};

use anyhow::{bail, Result};
use berth_proto::images::DeleteImageRequest;
use berth_proto::images_ttrpc::ImagesClient;

use crate::daemon::{ctx, not_found_as_no_such_image, print_error, AlreadyReported, Berthd};
use crate::reference::{short_id, split_name, FamiliarName};
use crate::resolve::{resolve, ImageArg};

/// Remove images.
#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Remove every name of an image ID, even names in different repositories; remove the last
    /// name of an image a container uses (only the name goes, the container keeps its image).
    #[arg(short, long)]
    force: bool,
    /// NAME[:TAG|@DIGEST] or image ID (prefix).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// Removes each image; a failure is reported and the others are still removed, as docker does.
pub async fn run(berthd: &Berthd, args: &RmiArgs) -> Result<()> {
    let images = berthd.images();
    let mut failed = false;
    for arg in &args.images {
        if let Err(err) = remove(&images, arg, args.force).await {
            print_error(&err);
            failed = true;
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

async fn remove(images: &ImagesClient, arg: &str, force: bool) -> Result<()> {
    let names = match resolve(images, arg).await? {
        ImageArg::Name(name) => vec![name],
        ImageArg::Id { id, names } => {
            if !force && spans_repositories(&names) {
                bail!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(&id)
                );
            }
            names
        }
    };
    let mut out = io::stdout();
    for name in names {
        let request = DeleteImageRequest { name, sync: true, force, ..Default::default() };
        let response = images.delete(ctx(), &request).await.map_err(|err| not_found_as_no_such_image(err, arg))?;
        for untagged in &response.untagged {
            writeln!(out, "Untagged: {}", FamiliarName::parse(untagged))?;
        }
        for deleted in &response.deleted {
            writeln!(out, "Deleted: {deleted}")?;
        }
    }
    Ok(())
}

/// Whether `names` belong to more than one repository: docker then wants `-f` to remove an ID
/// (several tags of one repository go without it).
fn spans_repositories(names: &[String]) -> bool {
    names.iter().map(|name| split_name(name).0).collect::<HashSet<_>>().len() > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_of_one_repository_do_not_need_force() {
        let names = ["docker.io/library/busybox:1.36".to_string(), "docker.io/library/busybox:latest".to_string()];
        assert!(!spans_repositories(&names));
    }

    #[test]
    fn names_in_two_repositories_need_force() {
        let names = ["docker.io/library/busybox:latest".to_string(), "localhost:5000/busybox:latest".to_string()];
        assert!(spans_repositories(&names));
    }
}
