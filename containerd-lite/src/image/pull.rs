//! Pull: resolve a reference at its registry, fetch the manifest (choosing the platform from an
//! index), the config and the layers (concurrently, resuming partial downloads, skipping what the
//! store has), unpack the layers into committed overlay snapshots named by chain ID, and name the
//! image. Nothing is named before everything it needs is stored and verified.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_proto::images::Progress;
use futures::TryStreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::daemon::Berthd;
use crate::image::archive::{self, Compression};
use crate::image::reference::Reference;
use crate::image::registry::RegistryError;
use crate::image::{self, Descriptor, Platform};
use crate::store::content::{ContentError, ContentStore};
use crate::store::digest::Digest;
use crate::store::lease::TransferLease;
use crate::store::meta::Image;
use crate::store::meta::Resource;
use crate::store::snapshot::{Kind, SnapshotError, Snapshotter};

/// How many layers download at once (containerd's default is 3).
const CONCURRENT_DOWNLOADS: usize = 3;
/// Keys of the active snapshots layers are unpacked into (containerd's naming).
pub const EXTRACT_PREFIX: &str = "extract-";

/// A layer's download progress is sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Progress updates for the client; a client that went away is not an error.
#[derive(Clone)]
pub struct Reporter(Option<UnboundedSender<Progress>>);

impl Reporter {
    pub fn new(tx: UnboundedSender<Progress>) -> Reporter {
        Reporter(Some(tx))
    }

    pub fn none() -> Reporter {
        Reporter(None)
    }

    /// The first message of a transfer: which (normalised) reference it is about.
    pub fn resolving(&self, name: &str) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(Progress { status: "resolving".into(), message: name.into(), ..Default::default() });
        }
    }

    pub fn send(&self, id: &str, status: &str, current: u64, total: u64) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(Progress {
                id: id.into(),
                status: status.into(),
                current: current as i64,
                total: total as i64,
                ..Default::default()
            });
        }
    }
}

/// What a pull produced.
pub struct Pulled {
    pub image: Image,
    /// False when the name already pointed at this target and everything was present.
    pub changed: bool,
}

pub async fn pull(d: &Arc<Berthd>, reference: &str, platform: &Platform, report: &Reporter) -> anyhow::Result<Pulled> {
    let _activity = crate::memory::activity();
    let r = Reference::parse(reference)?;
    let lease = TransferLease::new(d, "pull").await?;
    let name = r.to_string();
    report.resolving(&name);
    let top = d.registry.fetch_manifest(&r).await?;
    let top_desc = Descriptor {
        media_type: top.media_type.clone(),
        digest: top.digest.clone(),
        size: top.bytes.len() as u64,
        platform: None,
        annotations: None,
        urls: None,
    };
    store_blob(d, &lease, &top.digest, top.bytes.clone()).await?;

    let (manifest_desc, manifest_bytes) = if image::is_index(&top.media_type) {
        let index: image::Index = image::parse(&top.bytes, "index", &top.digest)?;
        let desc = image::select_platform(&index, platform, &top.digest)?.clone();
        let fetched = d.registry.fetch_manifest(&r.with_digest(desc.digest.clone())).await?;
        if !image::is_manifest(&fetched.media_type) {
            bail!("{}: index entry {} is a {:?}, not an image manifest", r, desc.digest, fetched.media_type);
        }
        if fetched.bytes.len() as u64 != desc.size {
            bail!("{r}: manifest {} is {} bytes but the index says {}", desc.digest, fetched.bytes.len(), desc.size);
        }
        store_blob(d, &lease, &fetched.digest, fetched.bytes.clone()).await?;
        (desc, fetched.bytes)
    } else if image::is_manifest(&top.media_type) {
        (top_desc.clone(), top.bytes.clone())
    } else {
        bail!("{r}: unsupported manifest media type {:?}", top.media_type);
    };
    let manifest: image::Manifest = image::parse(&manifest_bytes, "manifest", &manifest_desc.digest)?;
    for layer in &manifest.layers {
        Compression::from_media_type(&layer.media_type).with_context(|| format!("{r}: layer {}", layer.digest))?;
    }

    // The config first: it is small and says what the layers must unpack to.
    if manifest.config.size > image::MAX_METADATA_BLOB {
        bail!(
            "{r}: config {} is {} bytes, more than the {} allowed",
            manifest.config.digest,
            manifest.config.size,
            image::MAX_METADATA_BLOB
        );
    }
    fetch_blob(d, &lease, &r, &manifest.config, report, false).await?;
    let config_bytes = image::read(&d.content, &manifest.config.digest)?;
    let config: image::Config = image::parse(&config_bytes, "image config", &manifest.config.digest)?;
    image::check_layers(&manifest, &config, &manifest_desc.digest)?;

    let fetched_any = AtomicU64::new(0);
    futures::stream::iter(manifest.layers.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(CONCURRENT_DOWNLOADS, |layer| {
            let fetched_any = &fetched_any;
            let (r, lease) = (&r, &lease);
            async move {
                if fetch_blob(d, lease, r, layer, report, true).await? {
                    fetched_any.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
        .await?;

    let unpacked = unpack(d, &lease, &manifest, &config, report).await?;

    let old = {
        let meta = d.meta.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || meta.image(&name)).await??
    };
    let target = top_desc.target();
    let changed = old.as_ref().is_none_or(|i| i.target != target) || unpacked || fetched_any.into_inner() > 0;
    let image = {
        let meta = d.meta.clone();
        let record = match old.clone() {
            Some(mut i) => {
                i.target = target;
                i
            }
            None => Image::new(name.clone(), target),
        };
        tokio::task::spawn_blocking(move || meta.put_image(record)).await??
    };
    let topic = if old.is_some() { "/images/update" } else { "/images/create" };
    d.events.publish(topic, serde_json::json!({ "name": image.name }));
    Ok(Pulled { image, changed })
}

/// Stores a small blob already in memory (a manifest or index), verifying its digest. The ingest
/// ref is this transfer's own, so concurrent pulls of one image never wait on each other here
/// (the content store accepts a commit of a blob that is already there).
async fn store_blob(d: &Berthd, lease: &TransferLease, digest: &Digest, bytes: Vec<u8>) -> anyhow::Result<()> {
    lease.protect_content(digest).await?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let reference = format!("pull-{digest}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let content = d.content.clone();
    let digest = digest.clone();
    tokio::task::spawn_blocking(move || {
        if content.info(&digest)?.is_some() {
            return Ok(());
        }
        content.write_blob(&reference, &digest, &bytes).with_context(|| format!("storing {digest}"))
    })
    .await?
}

/// Makes blob `desc` present in the content store, resuming a partial download left by an
/// earlier attempt. Returns whether anything was downloaded.
async fn fetch_blob(
    d: &Berthd,
    lease: &TransferLease,
    r: &Reference,
    desc: &Descriptor,
    report: &Reporter,
    is_layer: bool,
) -> anyhow::Result<bool> {
    let id = desc.digest.to_string();
    let reference = format!("pull-{}", desc.digest);
    lease.protect_content(&desc.digest).await?;
    let mut waited = Duration::ZERO;
    let mut writer = loop {
        let content = d.content.clone();
        let digest = desc.digest.clone();
        if let Some(info) = tokio::task::spawn_blocking(move || content.info(&digest)).await?? {
            if info.size != desc.size {
                bail!("blob {} is stored with {} bytes but the manifest says {}", desc.digest, info.size, desc.size);
            }
            if is_layer {
                report.send(&id, "exists", desc.size, desc.size);
            }
            return Ok(false);
        }
        // Opening a writer re-hashes a partial download: blocking work.
        let (content, reference, digest, size) = (d.content.clone(), reference.clone(), desc.digest.clone(), desc.size);
        match tokio::task::spawn_blocking(move || content.writer(&reference, Some(size), Some(&digest))).await? {
            Ok(w) => break w,
            // Another pull is fetching the same blob: wait for it to land.
            Err(ContentError::Locked(_)) if waited < Duration::from_secs(600) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                waited += Duration::from_millis(200);
            }
            Err(e) => return Err(e).with_context(|| format!("fetching {}", desc.digest)),
        }
    };
    let mut offset = writer.offset();
    if offset > desc.size {
        writer.truncate(0)?;
        offset = 0;
    }
    let last = std::sync::Mutex::new(Instant::now());
    let progress = |held: u64| {
        if !is_layer {
            return;
        }
        let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= PROGRESS_INTERVAL || held == desc.size {
            *last = Instant::now();
            report.send(&id, "downloading", held, desc.size);
        }
    };
    if is_layer {
        report.send(&id, "downloading", offset, desc.size);
    }
    let mut sink = Sink(&mut writer);
    if let Err(e) = d.registry.fetch_blob(r, &desc.digest, desc.size, offset, &mut sink, &progress).await {
        // What the registry sent is wrong, not cut short: resuming from it cannot succeed.
        if matches!(e, RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. }) {
            drop(writer);
            let (content, reference) = (d.content.clone(), reference.clone());
            if let Err(abort) = tokio::task::spawn_blocking(move || content.abort(&reference)).await? {
                tracing::warn!("discarding the download of {}: {abort}", desc.digest);
            }
        }
        return Err(e.into());
    }
    let digest = desc.digest.clone();
    let size = desc.size;
    tokio::task::spawn_blocking(move || writer.commit(Some(size), Some(&digest)))
        .await?
        .with_context(|| format!("{r}: blob {}", desc.digest))?;
    Ok(true)
}

/// The content store's (blocking, page-cache) writer as the registry client's async sink: a
/// chunk is at most a few hundred KiB, hashed and written in well under a millisecond.
struct Sink<'a>(&'a mut crate::store::content::Writer);

impl tokio::io::AsyncWrite for Sink<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut *self.0, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Unpacks every layer not yet committed as a snapshot, bottom up, and labels the config with
/// the top snapshot so gc keeps it. Returns whether anything was unpacked.
pub async fn unpack(
    d: &Berthd,
    lease: &TransferLease,
    manifest: &image::Manifest,
    config: &image::Config,
    report: &Reporter,
) -> anyhow::Result<bool> {
    let chain = image::chain_ids(&config.rootfs.diff_ids);
    let mut any = false;
    for (i, layer) in manifest.layers.iter().enumerate() {
        let chain_id = chain[i].to_string();
        lease.protect(Resource::Snapshot(chain_id.clone())).await?;
        let snapshots = d.snapshots.clone();
        let key = chain_id.clone();
        let existing = tokio::task::spawn_blocking(move || match snapshots.stat(&key) {
            Ok(info) => Ok(Some(info.kind)),
            Err(SnapshotError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await??;
        match existing {
            Some(Kind::Committed) => continue,
            Some(kind) => bail!("snapshot {chain_id} exists as {kind:?}, not as the committed layer unpacking needs"),
            None => {}
        }
        any = true;
        let id = layer.digest.to_string();
        report.send(&id, "extracting", 0, layer.size);
        let parent = (i > 0).then(|| chain[i - 1].to_string());
        let (content, snapshots) = (d.content.clone(), d.snapshots.clone());
        let (layer, diff_id) = (layer.clone(), config.rootfs.diff_ids[i].clone());
        tokio::task::spawn_blocking(move || {
            apply_one(&content, &snapshots, &layer, &diff_id, parent.as_deref(), &chain_id)
        })
        .await??;
        report.send(&id, "done", 0, 0);
    }
    if let Some(top) = chain.last() {
        let meta = d.meta.clone();
        let digest = manifest.config.digest.clone();
        let top = top.to_string();
        tokio::task::spawn_blocking(move || {
            meta.set_content_label(&digest, crate::store::gc::SNAPSHOT_REF_LABEL, Some(&top))
        })
        .await??;
    }
    Ok(any)
}

/// Applies one layer into a fresh active snapshot and commits it as `chain_id`; on any failure
/// the active snapshot is removed, so a hostile or corrupt layer leaves nothing behind.
pub(crate) fn apply_one(
    content: &ContentStore,
    snapshots: &Snapshotter,
    layer: &Descriptor,
    diff_id: &Digest,
    parent: Option<&str>,
    chain_id: &str,
) -> anyhow::Result<()> {
    let nanos = crate::events::now_nanos();
    let key = format!("{EXTRACT_PREFIX}{}-{nanos} {chain_id}", std::process::id());
    snapshots.prepare(&key, parent, BTreeMap::new())?;
    let upper = snapshots.upper_dir(&key)?;
    let applied = (|| -> anyhow::Result<()> {
        let compression = Compression::from_media_type(&layer.media_type)?;
        let blob = content.open_blob(&layer.digest)?;
        let started = Instant::now();
        let applied = archive::apply_layer(std::io::BufReader::with_capacity(256 << 10, blob), compression, &upper)
            .with_context(|| format!("layer {}", layer.digest))?;
        if &applied.diff_id != diff_id {
            bail!(
                "layer {}: uncompressed content has digest {} but the image config says {diff_id}",
                layer.digest,
                applied.diff_id
            );
        }
        tracing::debug!(layer = %layer.digest, bytes = applied.size, ms = started.elapsed().as_millis() as u64, "layer applied");
        match snapshots.commit(chain_id, &key, BTreeMap::new()) {
            Ok(()) => Ok(()),
            // A concurrent pull committed the same layer first: ours is redundant.
            Err(SnapshotError::AlreadyExists { .. }) => {
                snapshots.remove(&key)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    })();
    if let Err(e) = applied {
        // Free what the layer wrote first: on a full disk the metadata update that removes the
        // snapshot needs the space.
        if let Err(rm) = std::fs::remove_dir_all(&upper) {
            tracing::warn!("clearing failed unpack {}: {rm}", upper.display());
        }
        if let Err(rm) = snapshots.remove(&key) {
            if !matches!(rm, SnapshotError::NotFound { .. }) {
                tracing::warn!("removing failed snapshot {key:?}: {rm}");
            }
        }
        return Err(e);
    }
    Ok(())
}
