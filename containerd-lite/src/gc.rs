//! Garbage collection of content and snapshots: mark everything reachable from the roots (image
//! targets, content labelled `containerd.io/gc.root`, unexpired leases), sweep the rest.
//!
//! The caller must hold the lock that serialises gc with pulls, commits and image updates: gc reads
//! the roots once and then deletes, so a blob committed and referenced in between would be lost.
//! Ingests in progress are never touched (they are not under `blobs/`).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use serde::Deserialize;

use crate::content::{ContentError, ContentStore};
use crate::digest::Digest;
use crate::meta::{Metadata, Resource};

/// Content carrying this label is a root.
pub const ROOT_LABEL: &str = "containerd.io/gc.root";
/// Labels with this prefix name content (by digest) that the labelled content keeps alive.
pub const CONTENT_REF_LABEL_PREFIX: &str = "containerd.io/gc.ref.content.";
/// The label naming the overlayfs snapshot (by key) that the labelled content keeps alive.
pub const SNAPSHOT_REF_LABEL: &str = "containerd.io/gc.ref.snapshot.overlayfs";

/// Manifests and indexes larger than this are not read (registries cap them at 4 MiB too).
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The snapshotter as gc sees it.
pub trait SnapshotGc {
    /// Every snapshot: its key and its parent's key.
    fn snapshots(&self) -> Result<Vec<(String, Option<String>)>, anyhow::Error>;
    /// Removes one snapshot; gc calls it only for snapshots without remaining children.
    fn remove(&self, key: &str) -> Result<(), anyhow::Error>;
}

/// What one collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub snapshots_removed: usize,
}

/// Marks everything reachable from the roots and removes every blob and snapshot that is not.
/// A removal that fails is logged and skipped; failing to read the roots or a referenced manifest
/// aborts before anything is removed, since the marks would be incomplete.
pub fn collect(meta: &Metadata, content: &ContentStore, snapshots: &dyn SnapshotGc) -> anyhow::Result<GcStats> {
    let labels = meta.all_content_labels().context("gc: read content labels")?;
    let (content_roots, snapshot_roots) = roots(meta, &labels)?;
    let marks = mark(content, &labels, content_roots, snapshot_roots)?;
    let all_snapshots = snapshots.snapshots().context("gc: list snapshots")?;

    let mut stats = sweep_content(meta, content, &marks.content)?;
    stats.snapshots_removed = sweep_snapshots(snapshots, all_snapshots, marks.snapshots);
    tracing::info!(
        blobs = stats.blobs_removed,
        bytes = stats.bytes_freed,
        snapshots = stats.snapshots_removed,
        "gc done"
    );
    Ok(stats)
}

/// A blob to visit, with the media type its referrer gave it (`None`: unknown, sniffed).
type ContentRef = (Digest, Option<String>);

/// The roots: image targets, content labelled as root, resources of unexpired leases.
fn roots(
    meta: &Metadata,
    labels: &BTreeMap<Digest, BTreeMap<String, String>>,
) -> anyhow::Result<(Vec<ContentRef>, Vec<String>)> {
    let mut content = Vec::new();
    let mut snapshots = Vec::new();
    for image in meta.images().context("gc: list images")? {
        content.push((image.target.digest, Some(image.target.media_type)));
    }
    for (digest, labels) in labels {
        if labels.contains_key(ROOT_LABEL) {
            content.push((digest.clone(), None));
        }
    }
    let now = std::time::SystemTime::now();
    for lease in meta.leases().context("gc: list leases")? {
        if lease.is_expired(now) {
            continue;
        }
        for resource in lease.resources {
            match resource {
                Resource::Content(digest) => content.push((digest, None)),
                Resource::Snapshot(key) => snapshots.push(key),
            }
        }
    }
    Ok((content, snapshots))
}

struct Marks {
    content: HashSet<Digest>,
    snapshots: Vec<String>,
}

/// Marks content reachable from `roots` through manifests, indexes and `gc.ref.content` labels, and
/// collects the snapshot keys marked content names.
fn mark(
    content: &ContentStore,
    labels: &BTreeMap<Digest, BTreeMap<String, String>>,
    roots: Vec<ContentRef>,
    mut snapshots: Vec<String>,
) -> anyhow::Result<Marks> {
    let mut marked = HashSet::new();
    // Blobs already expanded under a declared manifest type: a blob first reached through a label
    // (type unknown, sniffed) is expanded again when a descriptor declares its type.
    let mut expanded_as_declared = HashSet::new();
    let mut pending = roots;
    while let Some((digest, media_type)) = pending.pop() {
        let newly_marked = marked.insert(digest.clone());
        let newly_declared =
            media_type.as_deref().is_some_and(is_manifest_or_index) && expanded_as_declared.insert(digest.clone());
        if !newly_marked && !newly_declared {
            continue;
        }
        if let Some(labels) = labels.get(&digest).filter(|_| newly_marked) {
            for (key, value) in labels {
                if key.starts_with(CONTENT_REF_LABEL_PREFIX) {
                    match value.parse::<Digest>() {
                        Ok(child) => pending.push((child, None)),
                        Err(e) => tracing::warn!(%digest, key, error = %e, "gc: ignoring bad content ref label"),
                    }
                } else if key == SNAPSHOT_REF_LABEL {
                    snapshots.push(value.clone());
                }
            }
        }
        pending.extend(children(content, &digest, media_type.as_deref())?);
    }
    Ok(Marks { content: marked, snapshots })
}

/// The descriptors an index or manifest refers to.
#[derive(Deserialize)]
struct Manifestish {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptorish>,
    config: Option<Descriptorish>,
    #[serde(default)]
    layers: Vec<Descriptorish>,
}

/// A descriptor, read leniently: gc would rather mark too much than fail on a field it ignores.
#[derive(Deserialize)]
struct Descriptorish {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
}

fn is_manifest_or_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST | OCI_MANIFEST | DOCKER_MANIFEST)
}

/// What blob `digest` refers to, if it is an index or a manifest. `media_type` is what its referrer
/// declared; when unknown (label, lease), a small blob is sniffed for a manifest `mediaType`.
/// A missing blob has no children (an index names every platform; only one is pulled).
fn children(content: &ContentStore, digest: &Digest, media_type: Option<&str>) -> anyhow::Result<Vec<ContentRef>> {
    let declared = match media_type {
        Some(m) if is_manifest_or_index(m) => true,
        Some(_) => return Ok(Vec::new()),
        None => false,
    };
    let Some(info) = content.info(digest).context("gc: stat blob")? else {
        return Ok(Vec::new());
    };
    if !declared && info.size > MAX_MANIFEST_SIZE {
        return Ok(Vec::new());
    }
    let bytes = match content.read_all(digest, MAX_MANIFEST_SIZE) {
        Ok(bytes) => bytes,
        Err(ContentError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("gc: read manifest {digest}"));
        }
    };
    let parsed: Manifestish = match serde_json::from_slice(&bytes) {
        Ok(parsed) => parsed,
        Err(e) if declared => {
            return Err(e).with_context(|| format!("gc: parse {digest} as {}", media_type.unwrap_or_default()));
        }
        Err(_) => return Ok(Vec::new()),
    };
    // A sniffed blob counts as a manifest if it says so, or, without a `mediaType` (optional in
    // OCI), if it parsed with descriptors where a manifest or index has them.
    let looks_like_manifest = match parsed.media_type.as_deref() {
        Some(m) => is_manifest_or_index(m),
        None => !parsed.manifests.is_empty() || parsed.config.is_some(),
    };
    if !declared && !looks_like_manifest {
        return Ok(Vec::new());
    }
    let descriptors = parsed.manifests.into_iter().chain(parsed.config).chain(parsed.layers);
    Ok(descriptors
        .filter_map(|d| match d.digest.parse::<Digest>() {
            Ok(child) => Some((child, d.media_type)),
            Err(e) => {
                // Not a digest berth can store, so nothing local to keep.
                tracing::debug!(%digest, child = d.digest, error = %e, "gc: skipping descriptor");
                None
            }
        })
        .collect())
}

/// Deletes unmarked blobs, their labels first: a crash in between leaves unlabelled garbage
/// the next gc removes.
fn sweep_content(meta: &Metadata, content: &ContentStore, marked: &HashSet<Digest>) -> anyhow::Result<GcStats> {
    let garbage: Vec<_> =
        content.list().context("gc: list content")?.into_iter().filter(|info| !marked.contains(&info.digest)).collect();
    let digests: Vec<Digest> = garbage.iter().map(|info| info.digest.clone()).collect();
    meta.remove_content_labels(&digests).context("gc: remove labels of garbage content")?;

    let mut stats = GcStats::default();
    for info in garbage {
        match content.delete(&info.digest) {
            Ok(()) => {
                stats.blobs_removed += 1;
                stats.bytes_freed += info.size;
            }
            Err(ContentError::NotFound(_)) => {}
            Err(e) => tracing::warn!(digest = %info.digest, error = %e, "gc: cannot remove blob"),
        }
    }
    Ok(stats)
}

/// Removes every snapshot not reachable from `roots` through parents, deepest first so a parent
/// never goes before its children. Returns how many were removed.
fn sweep_snapshots(
    snapshotter: &dyn SnapshotGc,
    snapshots: Vec<(String, Option<String>)>,
    roots: Vec<String>,
) -> usize {
    let parents: HashMap<String, Option<String>> = snapshots.into_iter().collect();
    let mut marked = HashSet::new();
    for root in roots {
        let mut key = Some(root);
        // `insert` failing means the rest of the chain is marked already (and guards cycles).
        while let Some(k) = key.filter(|k| parents.contains_key(k) && marked.insert(k.clone())) {
            key = parents.get(&k).cloned().flatten();
        }
    }

    let depth = |key: &str| {
        let mut depth = 0usize;
        let mut seen = HashSet::new();
        let mut key = Some(key.to_string());
        while let Some(k) = key.filter(|k| seen.insert(k.clone())) {
            depth += 1;
            key = parents.get(&k).cloned().flatten();
        }
        depth
    };
    let mut garbage: Vec<(usize, &String)> =
        parents.keys().filter(|key| !marked.contains(*key)).map(|key| (depth(key), key)).collect();
    // Deepest first; ties in key order so runs are reproducible.
    garbage.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));

    let mut removed = 0;
    for (_, key) in garbage {
        match snapshotter.remove(key) {
            Ok(()) => removed += 1,
            // Its ancestors will fail too (they keep a child); the next gc retries them all.
            Err(e) => tracing::warn!(key, error = %format!("{e:#}"), "gc: cannot remove snapshot"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io::Write as _;

    use serde_json::json;

    use super::*;
    use crate::meta::{Image, Target};

    struct Env {
        _tmp: tempfile::TempDir,
        meta: Metadata,
        content: ContentStore,
    }

    fn env() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        let content = ContentStore::open(&tmp.path().join("content")).unwrap();
        Env { _tmp: tmp, meta, content }
    }

    impl Env {
        fn blob(&self, data: &[u8]) -> Digest {
            let d = Digest::sha256(data);
            self.content.write_blob(&format!("test-{d}"), &d, data).unwrap();
            d
        }

        fn json(&self, value: &serde_json::Value) -> (Digest, u64) {
            let bytes = serde_json::to_vec(value).unwrap();
            (self.blob(&bytes), bytes.len() as u64)
        }

        fn has(&self, d: &Digest) -> bool {
            self.content.info(d).unwrap().is_some()
        }
    }

    fn descriptor(media_type: &str, digest: &Digest, size: u64) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
    }

    /// An image as pulled: index → one local manifest (and one other platform's, not pulled)
    /// → config + two layers.
    struct Chain {
        index: Digest,
        index_size: u64,
        all: Vec<Digest>,
    }

    fn image_chain(env: &Env) -> Chain {
        let config = env.blob(br#"{"architecture":"amd64","os":"linux"}"#);
        let layer1 = env.blob(b"layer one bytes");
        let layer2 = env.blob(b"layer two bytes");
        let (manifest, manifest_size) = env.json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config, 36),
            "layers": [
                descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer1, 15),
                descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer2, 15),
            ],
        }));
        let other_platform = Digest::sha256(b"arm64 manifest, never pulled");
        let (index, index_size) = env.json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, &manifest, manifest_size),
                descriptor(OCI_MANIFEST, &other_platform, 100),
            ],
        }));
        Chain { index: index.clone(), index_size, all: vec![index, manifest, config, layer1, layer2] }
    }

    /// A snapshotter holding (key, parent) pairs, recording the order of removals.
    #[derive(Default)]
    struct FakeSnapshots {
        snapshots: RefCell<Vec<(String, Option<String>)>>,
        removed: RefCell<Vec<String>>,
    }

    impl FakeSnapshots {
        fn with(chain: &[(&str, Option<&str>)]) -> FakeSnapshots {
            let fake = FakeSnapshots::default();
            *fake.snapshots.borrow_mut() = chain.iter().map(|(k, p)| (k.to_string(), p.map(str::to_string))).collect();
            fake
        }

        fn keys(&self) -> Vec<String> {
            self.snapshots.borrow().iter().map(|(k, _)| k.clone()).collect()
        }
    }

    impl SnapshotGc for FakeSnapshots {
        fn snapshots(&self) -> anyhow::Result<Vec<(String, Option<String>)>> {
            Ok(self.snapshots.borrow().clone())
        }

        fn remove(&self, key: &str) -> anyhow::Result<()> {
            let mut snapshots = self.snapshots.borrow_mut();
            anyhow::ensure!(!snapshots.iter().any(|(_, p)| p.as_deref() == Some(key)), "snapshot {key} has children");
            snapshots.retain(|(k, _)| k != key);
            self.removed.borrow_mut().push(key.to_string());
            Ok(())
        }
    }

    fn put_image(env: &Env, chain: &Chain) {
        env.meta
            .put_image(Image::new(
                "busybox:latest",
                Target { media_type: OCI_INDEX.to_string(), digest: chain.index.clone(), size: chain.index_size },
            ))
            .unwrap();
    }

    #[test]
    fn collect_removes_only_unreferenced_blobs() {
        let env = env();
        let chain = image_chain(&env);
        put_image(&env, &chain);
        let garbage = [env.blob(b"garbage one"), env.blob(b"garbage two!")];
        env.meta.set_content_label(&garbage[0], "some.label", Some("x")).unwrap();
        let mut pending = env.content.writer("in-progress", None, None).unwrap();
        pending.write_all(b"partial").unwrap();

        let stats = collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert_eq!(stats.blobs_removed, 2);
        assert_eq!(stats.bytes_freed, 11 + 12);
        assert!(chain.all.iter().all(|d| env.has(d)));
        assert!(garbage.iter().all(|d| !env.has(d)));
        assert!(env.meta.all_content_labels().unwrap().is_empty());
        assert_eq!(env.content.ingests().unwrap().len(), 1);
        drop(pending);

        assert!(env.meta.delete_image("busybox:latest").unwrap());
        let stats = collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert_eq!(stats.blobs_removed, chain.all.len());
        assert!(env.content.list().unwrap().is_empty());
    }

    #[test]
    fn leases_and_root_labels_protect_content() {
        let env = env();
        let leased = env.blob(b"leased layer");
        let rooted = env.blob(b"rooted");
        let referenced = env.blob(b"referenced by label");
        let expired = env.blob(b"expired lease");
        env.meta.create_lease("pull", None).unwrap();
        env.meta.add_lease_resource("pull", Resource::Content(leased.clone())).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        env.meta.create_lease("old", Some(past)).unwrap();
        env.meta.add_lease_resource("old", Resource::Content(expired.clone())).unwrap();
        env.meta
            .set_content_labels(
                &rooted,
                &BTreeMap::from([
                    (ROOT_LABEL.to_string(), "2024-01-01".to_string()),
                    (format!("{CONTENT_REF_LABEL_PREFIX}config"), referenced.to_string()),
                ]),
            )
            .unwrap();

        collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert!(env.has(&leased) && env.has(&rooted) && env.has(&referenced));
        assert!(!env.has(&expired));

        env.meta.delete_lease("pull").unwrap();
        collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert!(!env.has(&leased));
    }

    #[test]
    fn root_labelled_manifest_is_followed_without_a_media_type() {
        let env = env();
        let chain = image_chain(&env);
        env.meta.set_content_label(&chain.index, ROOT_LABEL, Some("pinned")).unwrap();
        let stats = collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert_eq!(stats.blobs_removed, 0);
        assert!(chain.all.iter().all(|d| env.has(d)));
    }

    #[test]
    fn root_labelled_index_without_media_type_is_followed() {
        let env = env();
        let chain = image_chain(&env);
        let (index, _) = env.json(&json!({
            "schemaVersion": 2,
            "manifests": [descriptor(OCI_MANIFEST, &chain.all[1], 1)],
        }));
        env.meta.set_content_label(&index, ROOT_LABEL, Some("pinned")).unwrap();
        let stats = collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        // Only the original index, which nothing references any more, goes.
        assert_eq!(stats.blobs_removed, 1);
        assert!(!env.has(&chain.index));
        assert!(chain.all[1..].iter().all(|d| env.has(d)));
    }

    #[test]
    fn snapshots_named_by_marked_content_keep_their_parents() {
        let env = env();
        let chain = image_chain(&env);
        put_image(&env, &chain);
        // The manifest's unpacked top layer, as the unpacker labels it.
        env.meta.set_content_label(&chain.all[1], SNAPSHOT_REF_LABEL, Some("l2")).unwrap();
        env.meta.create_lease("unpack", None).unwrap();
        env.meta.add_lease_resource("unpack", Resource::Snapshot("leased".into())).unwrap();
        let snapshots = FakeSnapshots::with(&[
            ("l1", None),
            ("l2", Some("l1")),
            ("orphan-base", None),
            ("orphan-mid", Some("orphan-base")),
            ("orphan-top", Some("orphan-mid")),
            ("container-rw", Some("l2")),
            ("leased", None),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!(stats.snapshots_removed, 4);
        assert_eq!(snapshots.keys(), ["l1", "l2", "leased"]);
        let removed = snapshots.removed.borrow().clone();
        let position = |k: &str| removed.iter().position(|r| r == k).unwrap();
        assert!(position("orphan-top") < position("orphan-mid"));
        assert!(position("orphan-mid") < position("orphan-base"));
    }

    #[test]
    fn unreadable_declared_manifest_aborts_before_sweeping() {
        let env = env();
        let not_json = env.blob(b"not a manifest");
        let garbage = env.blob(b"garbage");
        env.meta
            .put_image(Image::new(
                "broken",
                Target { media_type: OCI_MANIFEST.to_string(), digest: not_json, size: 14 },
            ))
            .unwrap();
        assert!(collect(&env.meta, &env.content, &FakeSnapshots::default()).is_err());
        assert!(env.has(&garbage));
    }
}
