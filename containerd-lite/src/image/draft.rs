//! New images made here rather than pulled: `commit`, `import` and `build` start a [`Draft`] from
//! a base image (or from nothing), add layers and history, and store it as an OCI manifest and
//! config, each new layer unpacked as the committed snapshot its chain id names, so the image runs
//! at once. Layers made here are stored uncompressed (`application/vnd.oci.image.layer.v1.tar`, as
//! docker keeps its own layers until a push): nothing is spent compressing a layer that may never
//! leave the host.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::daemon::Berthd;
use crate::diff::Layers;
use crate::image::reference::Reference;
use crate::image::{self, Descriptor, Platform, Resolved, OCI_CONFIG, OCI_MANIFEST};
use crate::store::digest::Digest;
use crate::store::lease::TransferLease;
use crate::store::meta::{Image, Resource};

pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The repository of the names of untagged images (docker's `<none>:<none>`): every image record
/// needs a name, and `berth-dangling@<manifest digest>` is one nobody pulls.
pub const DANGLING_REPOSITORY: &str = "docker.io/library/berth-dangling";

/// A layer stored in the content store, with what its config entry needs.
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// An image being made.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The manifest's layers so far.
    pub layers: Vec<Descriptor>,
    /// The whole config JSON; `rootfs.diff_ids` and `history` grow with the draft.
    pub config: Value,
}

impl Draft {
    /// Starts from `base`: its layers (docker media types mapped to the OCI ones for the same
    /// bytes) and its config.
    pub fn from_base(base: &Resolved) -> anyhow::Result<Draft> {
        let config: Value = serde_json::from_slice(&base.config_bytes).context("parsing the base image's config")?;
        let layers =
            base.manifest.layers.iter().map(|l| Descriptor { media_type: oci_layer_type(&l.media_type), ..l.clone() });
        Ok(Draft { layers: layers.collect(), config })
    }

    /// An empty image for `platform` (`FROM scratch`, `import`).
    pub fn scratch(platform: &Platform) -> Draft {
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        Draft { layers: Vec::new(), config }
    }

    pub fn diff_ids(&self) -> anyhow::Result<Vec<Digest>> {
        let ids = self.config["rootfs"]["diff_ids"].as_array().context("image config without rootfs.diff_ids")?;
        ids.iter()
            .map(|v| v.as_str().context("diff_id is not a string")?.parse::<Digest>().map_err(anyhow::Error::from))
            .collect()
    }

    /// The chain id of the top layer: the committed snapshot a container of this image starts on.
    pub fn chain_top(&self) -> anyhow::Result<Option<String>> {
        Ok(image::chain_ids(&self.diff_ids()?).last().map(ToString::to_string))
    }

    /// The runtime config (`config` of the image config), created if missing.
    pub fn runtime_config(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        match &mut self.config["config"] {
            Value::Object(m) => m,
            _ => unreachable!("just made an object"),
        }
    }

    /// Adds a layer and its history entry.
    pub fn add_layer(&mut self, layer: NewLayer, history: History) {
        self.layers.push(layer.descriptor);
        if !self.config["rootfs"]["diff_ids"].is_array() {
            self.config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        if let Some(ids) = self.config["rootfs"]["diff_ids"].as_array_mut() {
            ids.push(json!(layer.diff_id.to_string()));
        }
        self.push_history(history, false);
    }

    /// Adds `layer` (unpacking it first) and its history entry; without a layer, the entry of a
    /// step that changed nothing in the filesystem.
    pub fn add_step(
        &mut self,
        d: &Berthd,
        lease: &TransferLease,
        layer: Option<NewLayer>,
        history: History,
    ) -> anyhow::Result<()> {
        match layer {
            Some(layer) => {
                unpack(d, lease, self, &layer)?;
                self.add_layer(layer, history);
            }
            None => self.add_empty_layer(history),
        }
        Ok(())
    }

    /// Adds a history entry of a step that changed only the config.
    pub fn add_empty_layer(&mut self, history: History) {
        self.push_history(history, true);
    }

    fn push_history(&mut self, history: History, empty: bool) {
        let mut entry = json!({"created": history.created, "created_by": history.created_by});
        if !history.author.is_empty() {
            entry["author"] = json!(history.author);
        }
        if !history.comment.is_empty() {
            entry["comment"] = json!(history.comment);
        }
        if empty {
            entry["empty_layer"] = json!(true);
        }
        if !self.config["history"].is_array() {
            self.config["history"] = json!([]);
        }
        if let Some(h) = self.config["history"].as_array_mut() {
            h.push(entry);
        }
    }

    /// Stores config and manifest (blocking; the lease keeps them until the image is named) and
    /// labels the config with the top snapshot.
    pub fn store(&self, d: &Berthd, lease: &TransferLease) -> anyhow::Result<Stored> {
        let config_bytes = serde_json::to_vec(&self.config).context("encoding the image config")?;
        let config_digest = Digest::sha256(&config_bytes);
        let config_desc = Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        let manifest = image::Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: config_desc,
            layers: self.layers.clone(),
            annotations: None,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).context("encoding the manifest")?;
        let manifest_digest = Digest::sha256(&manifest_bytes);
        for (digest, bytes) in [(&config_digest, &config_bytes), (&manifest_digest, &manifest_bytes)] {
            lease.protect_blocking(Resource::Content(digest.clone()))?;
            if d.content.info(digest)?.is_none() {
                d.content
                    .write_blob(&ingest_ref("blob"), digest, bytes)
                    .with_context(|| format!("storing {digest}"))?;
            }
        }
        if let Some(top) = self.chain_top()? {
            d.meta.set_content_label(&config_digest, crate::store::gc::SNAPSHOT_REF_LABEL, Some(&top))?;
        }
        let manifest = Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: manifest_digest,
            size: manifest_bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        Ok(Stored { manifest, config: config_digest })
    }
}

/// A stored draft: its manifest, and its config's digest (docker's image id).
#[derive(Debug, Clone)]
pub struct Stored {
    pub manifest: Descriptor,
    pub config: Digest,
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// RFC 3339.
    pub created: String,
    pub created_by: String,
    pub author: String,
    pub comment: String,
}

/// docker's layer media types as the OCI ones for the same bytes.
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        image::DOCKER_LAYER => OCI_LAYER.to_string(),
        image::DOCKER_LAYER_GZIP => "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        image::DOCKER_LAYER_ZSTD => "application/vnd.oci.image.layer.v1.tar+zstd".to_string(),
        other => other.to_string(),
    }
}

fn ingest_ref(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("draft-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Writes a layer into the content store through `write` (blocking), protected by `lease`.
/// `write` returns how many entries it wrote: a layer without any is not stored (docker keeps
/// no empty layers either; the step is an `empty_layer` in the history).
pub fn store_layer(
    d: &Berthd,
    lease: &TransferLease,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<usize>,
) -> anyhow::Result<Option<NewLayer>> {
    let reference = ingest_ref("layer");
    let mut writer = d.content.writer(&reference, None, None).context("opening a content ingest for the layer")?;
    let written = (|| {
        let mut out = BufWriter::with_capacity(256 << 10, &mut writer);
        let entries = write(&mut out)?;
        out.flush().context("writing the layer")?;
        Ok::<_, anyhow::Error>(entries)
    })();
    if !matches!(written, Ok(n) if n > 0) {
        drop(writer);
        if let Err(abort) = d.content.abort(&reference) {
            tracing::warn!(reference, "removing the ingest of a layer not kept: {abort}");
        }
        return written.map(|_| None);
    }
    let size = writer.offset();
    // Committed and protected under the gc lock: a collection in between would sweep it.
    let _gc = d.gc_lock.blocking_read();
    let digest = writer.commit(Some(size), None).context("committing the layer")?;
    lease.protect_held(Resource::Content(digest.clone()))?;
    Ok(Some(NewLayer {
        descriptor: Descriptor {
            media_type: OCI_LAYER.to_string(),
            digest: digest.clone(),
            size,
            platform: None,
            annotations: None,
            urls: None,
        },
        diff_id: digest,
    }))
}

/// The changes of active snapshot `key` as a new layer (blocking); none without changes.
pub fn layer_from_snapshot(d: &Berthd, lease: &TransferLease, key: &str) -> anyhow::Result<Option<NewLayer>> {
    let (upper, lowers) = d.snapshots.layer_dirs(key)?;
    store_layer(d, lease, |out| Layers { upper: &upper, lowers: &lowers }.write_tar(out))
}

/// Unpacks `layer` on top of the draft's current chain as a committed snapshot (blocking).
/// Call before [`Draft::add_layer`].
pub fn unpack(d: &Berthd, lease: &TransferLease, draft: &Draft, layer: &NewLayer) -> anyhow::Result<()> {
    let parent = draft.chain_top()?;
    let mut ids = draft.diff_ids()?;
    ids.push(layer.diff_id.clone());
    let chain = image::chain_ids(&ids).pop().context("empty chain")?.to_string();
    lease.protect_blocking(Resource::Snapshot(chain.clone()))?;
    if d.snapshots.exists(&chain)? {
        return Ok(());
    }
    crate::image::pull::apply_one(
        &d.content,
        &d.snapshots,
        &layer.descriptor,
        &layer.diff_id,
        parent.as_deref(),
        &chain,
    )
}

/// The name an image record gets: the reference given, or a dangling name for its manifest.
pub fn record_name(reference: Option<&str>, manifest: &Digest) -> anyhow::Result<String> {
    match reference.filter(|r| !r.is_empty()) {
        Some(r) => {
            let parsed = Reference::parse(r)?;
            if parsed.to_string().contains('@') {
                bail!("invalid reference format: a digest is not allowed here: {r}");
            }
            Ok(parsed.to_string())
        }
        None => Ok(format!("{DANGLING_REPOSITORY}@{manifest}")),
    }
}

/// Whether an image record's name is a dangling one.
pub fn is_dangling_name(name: &str) -> bool {
    name.strip_prefix(DANGLING_REPOSITORY).is_some_and(|rest| rest.starts_with('@'))
}

/// Names `target` (blocking): `names` (none: a dangling name). An image that loses its last
/// tag to this one keeps a dangling name, as docker keeps the old image as `<none>`. Returns
/// the stored records and whether each name existed before.
pub fn name_image(d: &Berthd, names: &[String], target: &Descriptor) -> anyhow::Result<Vec<(bool, Image)>> {
    let mut records = Vec::new();
    let wanted: Vec<String> = if names.is_empty() {
        vec![record_name(None, &target.digest)?]
    } else {
        names.iter().map(|n| record_name(Some(n), &target.digest)).collect::<anyhow::Result<_>>()?
    };
    let all = d.meta.images()?;
    for name in &wanted {
        if let Some(old) = all.iter().find(|i| &i.name == name && i.target.digest != target.digest) {
            let still_named = all
                .iter()
                .any(|i| i.target.digest == old.target.digest && !wanted.contains(&i.name) && i.name != old.name);
            if !still_named {
                let mut keep = Image::new(format!("{DANGLING_REPOSITORY}@{}", old.target.digest), old.target.clone());
                keep.labels = old.labels.clone();
                records.push(keep);
            }
        }
        records.push(Image::new(name.clone(), target.target()));
    }
    // A tagged image needs no dangling name of its own any more.
    if !names.is_empty() {
        let dangling = format!("{DANGLING_REPOSITORY}@{}", target.digest);
        if all.iter().any(|i| i.name == dangling) {
            d.meta.delete_image(&dangling)?;
        }
    }
    let stored = d.meta.put_images(records)?;
    for (existed, image) in &stored {
        let topic = if *existed { "/images/update" } else { "/images/create" };
        d.events.publish(topic, json!({ "name": image.name }));
    }
    Ok(stored)
}

/// RFC 3339 with nanoseconds, UTC: the `created` of configs and history.
pub fn now_rfc3339() -> String {
    crate::task::log::rfc3339_nano(std::time::SystemTime::now())
}
