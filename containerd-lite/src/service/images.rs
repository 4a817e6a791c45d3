//! Images (records, list, inspect, delete with gc) and Transfer (pull, push, save, load).

use std::sync::Arc;

use berth_proto::images::{
    Chunk, CreateImageRequest, DeleteImageRequest, DeleteImageResponse, ExportRequest, GetImageRequest,
    GetImageResponse, Image as PbImage, ImageSummary, ImportResponse, InspectImageResponse, ListImagesRequest,
    ListImagesResponse, Progress, PullRequest, PushRequest,
};
use berth_proto::types::Descriptor as PbDescriptor;
use ttrpc::asynchronous::{ServerStreamReceiver, ServerStreamSender, TtrpcContext};

use super::{blocking, internal, invalid, not_found};
use crate::daemon::Berthd;
use crate::events::nanos;
use crate::image::pull::{self, Reporter};
use crate::image::reference::Reference;
use crate::image::{self, Descriptor, Platform};
use crate::store::digest::Digest;
use crate::store::meta::{Image, Target};

pub struct ImagesService(pub Arc<Berthd>);
pub struct TransferService(pub Arc<Berthd>);

/// A user's name for an image, normalised as it is stored.
pub fn normalize(name: &str) -> ttrpc::Result<String> {
    Reference::parse(name).map(|r| r.to_string()).map_err(invalid)
}

pub fn to_pb(i: &Image) -> PbImage {
    PbImage {
        name: i.name.clone(),
        labels: i.labels.clone().into_iter().collect(),
        target: protobuf::MessageField::some(PbDescriptor {
            media_type: i.target.media_type.clone(),
            digest: i.target.digest.to_string(),
            size: i.target.size as i64,
            ..Default::default()
        }),
        created_at: nanos(i.created),
        updated_at: nanos(i.updated),
        ..Default::default()
    }
}

fn from_pb(i: &PbImage) -> ttrpc::Result<Image> {
    let name = normalize(&i.name)?;
    let t = i.target.as_ref().ok_or_else(|| invalid(format!("image {name}: no target")))?;
    let digest: Digest = t.digest.parse().map_err(invalid)?;
    let size = u64::try_from(t.size).map_err(|_| invalid(format!("image {name}: negative size")))?;
    let mut image = Image::new(name, Target { media_type: t.media_type.clone(), digest, size });
    image.labels = i.labels.clone().into_iter().collect();
    Ok(image)
}

/// The record plus what it resolves to on this host's platform (missing content is tolerated:
/// such an image lists with an empty id).
fn summarize(d: &Berthd, i: &Image) -> ImageSummary {
    let mut s = ImageSummary { image: protobuf::MessageField::some(to_pb(i)), ..Default::default() };
    if let Ok(r) = image::resolve(&d.content, &Descriptor::from(&i.target), &Platform::host()) {
        s.config_digest = r.manifest.config.digest.to_string();
        s.size = r.size() as i64;
        s.unpacked = r.chain_ids().last().is_some_and(|top| d.snapshots.exists(&top.to_string()).unwrap_or(false));
        s.image_created = r.config.created.clone().unwrap_or_default();
        s.config_labels = config_labels(&r.config_bytes);
    }
    s
}

/// The config's `config.Labels` (absent or malformed: none).
fn config_labels(config_bytes: &[u8]) -> std::collections::HashMap<String, String> {
    let config: serde_json::Value = serde_json::from_slice(config_bytes).unwrap_or_default();
    let labels = config.pointer("/config/Labels").and_then(serde_json::Value::as_object);
    labels.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

fn get_image(d: &Berthd, name: &str) -> ttrpc::Result<Image> {
    let name = normalize(name)?;
    d.meta.image(&name).map_err(internal)?.ok_or_else(|| not_found(format!("No such image: {name}")))
}

/// docker's rule for `rmi NAME` without force: the last name of an image that a container
/// (running or stopped) was made from stays, since removing it would leave the image nameless.
/// Another name of the same image may go. `config` is the image's config digest (its id), if the
/// image resolves; otherwise containers are matched by the name they were made from.
fn refuse_last_name_in_use(d: &Berthd, image: &Image, config: Option<&Digest>) -> ttrpc::Result<()> {
    if let Some(config) = config {
        let same_image_elsewhere = d.meta.images().map_err(internal)?.iter().any(|other| {
            other.name != image.name
                && image::resolve(&d.content, &Descriptor::from(&other.target), &Platform::host())
                    .is_ok_and(|r| &r.manifest.config.digest == config)
        });
        if same_image_elsewhere {
            return Ok(());
        }
    }
    let image_id = config.map(ToString::to_string);
    let containers = d.containers.list().map_err(internal)?;
    let user = containers.iter().find(|c| match &image_id {
        Some(id) => &c.image_id == id,
        None => c.image_name == image.name,
    });
    let Some(user) = user else { return Ok(()) };
    let familiar = Reference::parse(&image.name).map_or_else(|_| image.name.clone(), |r| r.familiar());
    Err(super::status(
        ttrpc::Code::FAILED_PRECONDITION,
        format!(
            "conflict: unable to remove repository reference \"{familiar}\" (must force) - container {} is using its referenced image {}",
            short_id(&user.id),
            short_id(image_id.as_deref().unwrap_or(&user.image_id))
        ),
    ))
}

/// docker's short form of an id or digest: the first 12 hex digits, without the algorithm.
fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, hex)| hex);
    hex.get(..12).unwrap_or(hex)
}

#[async_trait::async_trait]
impl berth_proto::images_ttrpc::Images for ImagesService {
    async fn get(&self, _: &TtrpcContext, req: GetImageRequest) -> ttrpc::Result<GetImageResponse> {
        let d = self.0.clone();
        blocking(move || {
            let image = get_image(&d, &req.name)?;
            Ok(GetImageResponse { image: protobuf::MessageField::some(to_pb(&image)), ..Default::default() })
        })
        .await
    }

    async fn list(&self, _: &TtrpcContext, _: ListImagesRequest) -> ttrpc::Result<ListImagesResponse> {
        let d = self.0.clone();
        blocking(move || {
            let images = d.meta.images().map_err(internal)?;
            Ok(ListImagesResponse { images: images.iter().map(|i| summarize(&d, i)).collect(), ..Default::default() })
        })
        .await
    }

    async fn create(&self, _: &TtrpcContext, req: CreateImageRequest) -> ttrpc::Result<GetImageResponse> {
        self.put(req, false).await
    }

    async fn update(&self, _: &TtrpcContext, req: CreateImageRequest) -> ttrpc::Result<GetImageResponse> {
        self.put(req, true).await
    }

    async fn delete(&self, _: &TtrpcContext, req: DeleteImageRequest) -> ttrpc::Result<DeleteImageResponse> {
        let d = self.0.clone();
        let name = normalize(&req.name)?;
        let image = {
            let (d, name) = (d.clone(), name.clone());
            blocking(move || get_image(&d, &name)).await?
        };
        let _gc = d.gc_lock.write().await;
        let d2 = d.clone();
        let resp = blocking(move || {
            let resolved = image::resolve(&d2.content, &Descriptor::from(&image.target), &Platform::host()).ok();
            let config = resolved.as_ref().map(|r| &r.manifest.config.digest);
            if !req.force {
                refuse_last_name_in_use(&d2, &image, config)?;
            }
            d2.meta.delete_image(&image.name).map_err(internal)?;
            let mut resp = DeleteImageResponse { untagged: vec![image.name.clone()], ..Default::default() };
            if req.sync {
                let stats = crate::store::gc::collect(&d2.meta, &d2.content, &d2.snapshots).map_err(internal)?;
                resp.bytes_freed = stats.bytes_freed as i64;
                if let Some(r) = resolved {
                    let config = &r.manifest.config.digest;
                    if d2.content.info(config).map_err(internal)?.is_none() {
                        resp.deleted.push(config.to_string());
                    }
                }
            }
            Ok(resp)
        })
        .await?;
        d.events.publish("/images/delete", serde_json::json!({ "name": name }));
        Ok(resp)
    }

    async fn inspect(&self, _: &TtrpcContext, req: GetImageRequest) -> ttrpc::Result<InspectImageResponse> {
        let d = self.0.clone();
        blocking(move || {
            let image = get_image(&d, &req.name)?;
            let r = image::resolve(&d.content, &Descriptor::from(&image.target), &Platform::host())
                .map_err(|e| internal(e.context(format!("image {}", image.name))))?;
            Ok(InspectImageResponse {
                summary: protobuf::MessageField::some(summarize(&d, &image)),
                platform: r.platform().to_string(),
                manifest: r.manifest_bytes.clone(),
                config: r.config_bytes.clone(),
                diff_ids: r.config.rootfs.diff_ids.iter().map(ToString::to_string).collect(),
                chain_id: r.chain_ids().last().map(ToString::to_string).unwrap_or_default(),
                ..Default::default()
            })
        })
        .await
    }
}

impl ImagesService {
    async fn put(&self, req: CreateImageRequest, update: bool) -> ttrpc::Result<GetImageResponse> {
        let d = self.0.clone();
        let pb = req.image.into_option().ok_or_else(|| invalid("no image in the request"))?;
        let image = from_pb(&pb)?;
        // Checking the target and naming it happen with no gc in between.
        let _gc = d.gc_lock.read().await;
        let existed = {
            let d = d.clone();
            blocking(move || {
                // The target must be here: a name never points at content the store lacks.
                if d.content.info(&image.target.digest).map_err(internal)?.is_none() {
                    return Err(not_found(format!("content {} not found", image.target.digest)));
                }
                let existed = d.meta.image(&image.name).map_err(internal)?.is_some();
                if update && !existed {
                    return Err(not_found(format!("No such image: {}", image.name)));
                }
                if !update && existed {
                    return Err(super::status(
                        ttrpc::Code::ALREADY_EXISTS,
                        format!("image {} already exists", image.name),
                    ));
                }
                let stored = d.meta.put_image(image).map_err(internal)?;
                Ok((existed, stored))
            })
            .await?
        };
        let (existed, stored) = existed;
        let topic = if existed { "/images/update" } else { "/images/create" };
        d.events.publish(topic, serde_json::json!({ "name": stored.name }));
        Ok(GetImageResponse { image: protobuf::MessageField::some(to_pb(&stored)), ..Default::default() })
    }
}

fn platform_of(s: &str) -> ttrpc::Result<Platform> {
    if s.is_empty() {
        Ok(Platform::host())
    } else {
        s.parse().map_err(invalid)
    }
}

/// Forwards progress from a transfer task to the client stream; the final message carries the
/// outcome. A client that hangs up does not stop the transfer.
async fn stream_progress(
    stream: &ServerStreamSender<Progress>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Progress>,
) {
    let mut connected = true;
    while let Some(p) = rx.recv().await {
        if connected && stream.send(&p).await.is_err() {
            connected = false;
        }
    }
}

#[async_trait::async_trait]
impl berth_proto::images_ttrpc::Transfer for TransferService {
    async fn pull(
        &self,
        _: &TtrpcContext,
        req: PullRequest,
        stream: ServerStreamSender<Progress>,
    ) -> ttrpc::Result<()> {
        let platform = platform_of(&req.platform)?;
        Reference::parse(&req.reference).map_err(invalid)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let d = self.0.clone();
        let task = tokio::spawn(async move {
            let report = Reporter::new(tx);
            pull::pull(&d, &req.reference, &platform, &report).await
        });
        stream_progress(&stream, rx).await;
        let pulled =
            task.await.map_err(|e| internal(anyhow::anyhow!("pull task failed: {e}")))?.map_err(transfer_error)?;
        let last = Progress {
            id: pulled.image.name.clone(),
            status: if pulled.changed { "downloaded" } else { "up-to-date" }.into(),
            done: true,
            image: protobuf::MessageField::some(to_pb(&pulled.image)),
            ..Default::default()
        };
        let _ = stream.send(&last).await;
        Ok(())
    }

    async fn push(
        &self,
        _: &TtrpcContext,
        req: PushRequest,
        stream: ServerStreamSender<Progress>,
    ) -> ttrpc::Result<()> {
        let platform = platform_of(&req.platform)?;
        let dest = Reference::parse(&req.reference).map_err(invalid)?;
        let source = if req.source.is_empty() { req.reference.clone() } else { req.source.clone() };
        let image = {
            let d = self.0.clone();
            blocking(move || get_image(&d, &source)).await?
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let d = self.0.clone();
        let img = image.clone();
        let task = tokio::spawn(async move {
            let report = Reporter::new(tx);
            crate::image::push::push(&d, &img, &dest, &platform, &report).await
        });
        stream_progress(&stream, rx).await;
        let digest =
            task.await.map_err(|e| internal(anyhow::anyhow!("push task failed: {e}")))?.map_err(transfer_error)?;
        let last = Progress {
            id: req.reference.clone(),
            status: "pushed".into(),
            done: true,
            image: protobuf::MessageField::some(to_pb(&image)),
            message: digest.to_string(),
            ..Default::default()
        };
        let _ = stream.send(&last).await;
        Ok(())
    }

    async fn export(
        &self,
        _: &TtrpcContext,
        req: ExportRequest,
        stream: ServerStreamSender<Chunk>,
    ) -> ttrpc::Result<()> {
        crate::service::transfer_archive::export(self.0.clone(), req, stream).await
    }

    async fn import(&self, _: &TtrpcContext, stream: ServerStreamReceiver<Chunk>) -> ttrpc::Result<ImportResponse> {
        crate::service::transfer_archive::import(self.0.clone(), stream).await
    }
}

/// A failed transfer as the client sees it: registry errors keep their own one-line message.
fn transfer_error(e: anyhow::Error) -> ttrpc::Error {
    use crate::image::registry::RegistryError;
    let code = match e.downcast_ref::<RegistryError>() {
        Some(RegistryError::ManifestUnknown { .. }) | Some(RegistryError::BlobUnknown { .. }) => ttrpc::Code::NOT_FOUND,
        Some(RegistryError::Unauthorized { .. }) => ttrpc::Code::PERMISSION_DENIED,
        Some(RegistryError::Unreachable { .. }) => ttrpc::Code::UNAVAILABLE,
        _ if e.downcast_ref::<crate::image::reference::ReferenceError>().is_some() => ttrpc::Code::INVALID_ARGUMENT,
        _ => ttrpc::Code::UNKNOWN,
    };
    let msg = super::one_line(&e);
    tracing::warn!("transfer failed: {msg}");
    super::status(code, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_labels_are_read_from_the_config_and_tolerate_their_absence() {
        let labels = config_labels(br#"{"config":{"Labels":{"tier":"web","n":1}}}"#);
        assert_eq!(labels.len(), 1);
        assert_eq!(labels["tier"], "web");
        assert!(config_labels(br#"{"config":{}}"#).is_empty());
        assert!(config_labels(b"not json").is_empty());
    }
}
