//! What an image argument refers to: a name (sent to berthd as typed, which normalises it) or,
//! like docker, an image ID prefix when no image has that name.

use anyhow::{bail, Result};
use berth_proto::images::{GetImageRequest, ImageSummary, ListImagesRequest};
use berth_proto::images_ttrpc::ImagesClient;

use crate::daemon::{ctx, NoSuchImage};
use crate::reference::{matching_ids, parse_id_prefix};

/// An image argument, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageArg {
    /// A name, as typed.
    Name(String),
    /// An image ID (`sha256:<hex>` config digest) and the names (normalised, sorted) of the
    /// images that have it.
    Id { id: String, names: Vec<String> },
}

/// Resolves `arg`: bare hex that names an image stays a name; otherwise an ID prefix resolves
/// through Images.List. Bare hex that matches nothing stays a name, so berthd says what is wrong.
pub async fn resolve(images: &ImagesClient, arg: &str) -> Result<ImageArg> {
    let Some(prefix) = parse_id_prefix(arg) else {
        return Ok(ImageArg::Name(arg.to_string()));
    };
    if !prefix.explicit
        && images.get(ctx(), &GetImageRequest { name: arg.to_string(), ..Default::default() }).await.is_ok()
    {
        return Ok(ImageArg::Name(arg.to_string()));
    }
    let listed = images.list(ctx(), &ListImagesRequest::default()).await?;
    match by_id_prefix(prefix.hex, &listed.images) {
        IdMatch::None if prefix.explicit => Err(NoSuchImage(arg.to_string()).into()),
        IdMatch::None => Ok(ImageArg::Name(arg.to_string())),
        IdMatch::One { id, names } => Ok(ImageArg::Id { id, names }),
        IdMatch::Ambiguous(ids) => {
            bail!("image ID prefix {arg} is ambiguous: it matches {}", ids.join(", "))
        }
    }
}

/// What an ID prefix matches among listed images.
#[derive(Debug, PartialEq, Eq)]
enum IdMatch {
    None,
    One { id: String, names: Vec<String> },
    Ambiguous(Vec<String>),
}

fn by_id_prefix(hex: &str, images: &[ImageSummary]) -> IdMatch {
    let ids = matching_ids(hex, images.iter().map(|s| s.config_digest.as_str()));
    match ids.as_slice() {
        [] => IdMatch::None,
        [id] => IdMatch::One { id: id.to_string(), names: names_with_id(id, images) },
        _ => IdMatch::Ambiguous(ids.iter().map(|id| id.to_string()).collect()),
    }
}

/// The names (sorted) of the listed images whose ID is `id`.
pub fn names_with_id(id: &str, images: &[ImageSummary]) -> Vec<String> {
    let mut names: Vec<String> = images
        .iter()
        .filter(|s| s.config_digest == id)
        .filter_map(|s| s.image.as_ref().map(|i| i.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
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

    #[test]
    fn id_prefix_resolves_to_every_name_with_that_id() {
        let id = format!("sha256:3f57{}", "0".repeat(60));
        let other = format!("sha256:9999{}", "0".repeat(60));
        let images = [
            summary("docker.io/library/busybox:latest", &id),
            summary("docker.io/library/busybox:1.36", &id),
            summary("docker.io/library/alpine:3", &other),
        ];
        assert_eq!(
            by_id_prefix("3f5", &images),
            IdMatch::One {
                id: id.clone(),
                names: vec!["docker.io/library/busybox:1.36".into(), "docker.io/library/busybox:latest".into()]
            }
        );
        assert_eq!(by_id_prefix("abc", &images), IdMatch::None);
    }

    #[test]
    fn id_prefix_shared_by_two_images_is_ambiguous() {
        let a = format!("sha256:3f57{}", "0".repeat(60));
        let b = format!("sha256:3f58{}", "0".repeat(60));
        let images = [summary("docker.io/library/a:1", &a), summary("docker.io/library/b:1", &b)];
        assert_eq!(by_id_prefix("3f5", &images), IdMatch::Ambiguous(vec![a, b]));
    }
}
