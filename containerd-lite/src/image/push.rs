//! Push: upload an image's blobs (the registry is asked first; what it has is skipped), then its
//! manifest, then — when every platform of an index is stored locally — the index, under the
//! destination's tag.

use std::sync::Arc;

use anyhow::Context;

use crate::daemon::Berthd;
use crate::image::pull::Reporter;
use crate::image::reference::Reference;
use crate::image::registry::BlobPush;
use crate::image::{self, Descriptor, Platform};
use crate::store::digest::Digest;
use crate::store::meta::Image;

/// Pushes `image` to `dest` and returns the digest the destination tag now points at.
pub async fn push(
    d: &Arc<Berthd>,
    image: &Image,
    dest: &Reference,
    platform: &Platform,
    report: &Reporter,
) -> anyhow::Result<Digest> {
    // The image may be removed while it is pushed: the lease keeps its content.
    let lease = crate::store::lease::TransferLease::new(d, "push").await?;
    lease.protect_content(&image.target.digest).await?;
    report.resolving(&dest.name());
    let target = Descriptor::from(&image.target);
    let content = d.content.clone();
    let top = image::read(&content, &target.digest)?;
    let media_type = if target.media_type.is_empty() {
        image::sniff_media_type(&top).unwrap_or_default()
    } else {
        target.media_type.clone()
    };

    // Which manifests go: all of an index's when all are here, else the one for `platform`.
    let mut manifests: Vec<(Descriptor, Vec<u8>)> = Vec::new();
    let mut push_index = false;
    if image::is_index(&media_type) {
        let index: image::Index = image::parse(&top, "index", &target.digest)?;
        let all: Option<Vec<(Descriptor, Vec<u8>)>> = index
            .manifests
            .iter()
            .map(|m| {
                let bytes = image::read(&content, &m.digest).ok()?;
                let manifest: image::Manifest = image::parse(&bytes, "manifest", &m.digest).ok()?;
                let complete = std::iter::once(&manifest.config)
                    .chain(&manifest.layers)
                    .all(|b| content.info(&b.digest).ok().flatten().is_some());
                complete.then(|| (m.clone(), bytes))
            })
            .collect();
        match all {
            Some(all) => {
                manifests = all;
                push_index = true;
            }
            None => {
                let m = image::select_platform(&index, platform, &target.digest)?;
                manifests.push((m.clone(), image::read(&content, &m.digest)?));
            }
        }
    } else {
        manifests.push((target.clone(), top.clone()));
    }

    let mut pushed_digest = None;
    for (desc, bytes) in &manifests {
        let manifest: image::Manifest = image::parse(bytes, "manifest", &desc.digest)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let id = blob.digest.to_string();
            report.send(&id, "uploading", 0, blob.size);
            let file = content.open_blob(&blob.digest).with_context(|| format!("pushing {}", image.name))?;
            let outcome = d.registry.push_blob(dest, &blob.digest, blob.size, tokio::fs::File::from_std(file)).await?;
            let status = match outcome {
                BlobPush::AlreadyExists => "exists",
                BlobPush::Uploaded => "done",
            };
            report.send(&id, status, blob.size, blob.size);
        }
        // An index's children go by digest; a lone manifest takes the tag.
        let to = if push_index {
            Reference { tag: None, digest: Some(desc.digest.clone()), ..dest.clone() }
        } else {
            dest.clone()
        };
        let media = if desc.media_type.is_empty() {
            image::sniff_media_type(bytes).unwrap_or_else(|| image::OCI_MANIFEST.into())
        } else {
            desc.media_type.clone()
        };
        pushed_digest = Some(d.registry.push_manifest(&to, &media, bytes.clone()).await?);
    }
    if push_index {
        pushed_digest = Some(d.registry.push_manifest(dest, &media_type, top).await?);
    }
    pushed_digest.context("image has no manifest to push")
}
