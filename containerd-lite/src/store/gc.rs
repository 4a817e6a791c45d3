//! Garbage collection of content and snapshots: mark everything reachable from the roots, sweep
//! the rest. The roots are image targets, content and snapshots labelled `containerd.io/gc.root`,
//! resources of unexpired leases, and every active or view snapshot (only committed ones are swept).
//!
//! Marking is one walk over content and snapshots: a marked blob marks what its manifest or index
//! names and what its `containerd.io/gc.ref.*` labels name; a marked snapshot marks its parent and
//! what its labels name. A target without a media type (or reached through a label or lease) is
//! sniffed when small, so an image stored without one keeps its manifests, config and layers.
//!
//! The caller must hold the lock that serialises gc with pulls, commits and image updates: gc reads
//! the roots once and then deletes, so a blob committed and referenced in between would be lost.
//! Ingests in progress are never touched (they are not under `blobs/`).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use serde::Deserialize;

use crate::store::content::{ContentError, ContentStore};
use crate::store::digest::Digest;
use crate::store::meta::{Metadata, Resource};

/// Content or a snapshot carrying this label is a root.
pub const ROOT_LABEL: &str = "containerd.io/gc.root";
/// Labels with this prefix name content (by digest) that the labelled content or snapshot keeps alive.
pub const CONTENT_REF_LABEL_PREFIX: &str = "containerd.io/gc.ref.content.";
/// The label naming the overlayfs snapshot (by key) that the labelled content or snapshot keeps
/// alive; `<label>/<anything>` names one more, so a resource can keep several.
pub const SNAPSHOT_REF_LABEL: &str = "containerd.io/gc.ref.snapshot.overlayfs";

/// Manifests and indexes larger than this are not read (registries cap them at 4 MiB too).
const MAX_MANIFEST_SIZE: u64 = crate::image::MAX_METADATA_BLOB;

/// One snapshot as gc sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The key (active or view snapshot) or name (committed one).
    pub key: String,
    /// Key of the committed parent, if any.
    pub parent: Option<String>,
    /// Whether it is committed: active and view snapshots (container rootfs) are never swept.
    pub committed: bool,
    /// Its labels; `containerd.io/gc.*` ones make it a root or name what it keeps alive.
    pub labels: BTreeMap<String, String>,
}

/// The snapshotter as gc sees it.
pub trait SnapshotGc {
    /// Every snapshot, with its parent, kind and labels.
    fn snapshots(&self) -> Result<Vec<SnapshotNode>, anyhow::Error>;
    /// Removes one snapshot; gc calls it only for committed snapshots without remaining children.
    fn remove(&self, key: &str) -> Result<(), anyhow::Error>;
}

/// What one collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub snapshots_removed: usize,
}

/// Marks everything reachable from the roots and removes every blob and committed snapshot that
/// is not. A removal that fails is logged and skipped; failing to read the roots or a referenced
/// manifest aborts before anything is removed, since the marks would be incomplete.
pub fn collect(meta: &Metadata, content: &ContentStore, snapshots: &dyn SnapshotGc) -> anyhow::Result<GcStats> {
    let (marks, all_snapshots) = mark_all(meta, content, snapshots)?;

    let mut stats = sweep_content(meta, content, &marks.content)?;
    stats.snapshots_removed = sweep_snapshots(snapshots, &all_snapshots, &marks.snapshots);
    tracing::info!(
        blobs = stats.blobs_removed,
        bytes = stats.bytes_freed,
        snapshots = stats.snapshots_removed,
        "gc done"
    );
    Ok(stats)
}

/// A resource gc visits while marking.
#[derive(Debug)]
enum Node {
    /// A blob, with the media type its referrer gave it (`None` or empty: unknown, sniffed).
    Content(Digest, Option<String>),
    /// A snapshot, by key.
    Snapshot(String),
}

/// The marks of everything reachable from the roots, and every snapshot by key.
fn mark_all(
    meta: &Metadata,
    content: &ContentStore,
    snapshots: &dyn SnapshotGc,
) -> anyhow::Result<(Marks, HashMap<String, SnapshotNode>)> {
    let labels = meta.all_content_labels().context("gc: read content labels")?;
    let all_snapshots: HashMap<String, SnapshotNode> =
        snapshots.snapshots().context("gc: list snapshots")?.into_iter().map(|s| (s.key.clone(), s)).collect();
    let roots = roots(meta, &labels, &all_snapshots)?;
    let marks = mark(content, &labels, &all_snapshots, roots)?;
    Ok((marks, all_snapshots))
}

/// Bytes of the blobs a collection would remove now (it removes nothing).
pub fn reclaimable(meta: &Metadata, content: &ContentStore, snapshots: &dyn SnapshotGc) -> anyhow::Result<u64> {
    let (marks, _) = mark_all(meta, content, snapshots)?;
    let blobs = content.list().context("gc: list blobs")?;
    Ok(blobs.iter().filter(|b| !marks.content.contains(&b.digest)).map(|b| b.size).sum())
}
/// The roots: image targets, content and snapshots labelled as root, resources of unexpired
/// leases, and every snapshot that is not committed.
fn roots(
    meta: &Metadata,
    labels: &BTreeMap<Digest, BTreeMap<String, String>>,
    snapshots: &HashMap<String, SnapshotNode>,
) -> anyhow::Result<Vec<Node>> {
    let mut roots = Vec::new();
    for image in meta.images().context("gc: list images")? {
        roots.push(Node::Content(image.target.digest, Some(image.target.media_type)));
    }
    for (digest, labels) in labels {
        if labels.contains_key(ROOT_LABEL) {
            roots.push(Node::Content(digest.clone(), None));
        }
    }
    for snapshot in snapshots.values() {
        if !snapshot.committed || snapshot.labels.contains_key(ROOT_LABEL) {
            roots.push(Node::Snapshot(snapshot.key.clone()));
        }
    }
    let now = std::time::SystemTime::now();
    for lease in meta.leases().context("gc: list leases")? {
        if lease.is_expired(now) {
            continue;
        }
        for resource in lease.resources {
            roots.push(match resource {
                Resource::Content(digest) => Node::Content(digest, None),
                Resource::Snapshot(key) => Node::Snapshot(key),
            });
        }
    }
    Ok(roots)
}

struct Marks {
    content: HashSet<Digest>,
    snapshots: HashSet<String>,
}

/// Marks everything reachable from `roots`: blobs through manifests, indexes and labels, snapshots
/// through labels and parents. A snapshot named but not stored marks nothing.
fn mark(
    content: &ContentStore,
    labels: &BTreeMap<Digest, BTreeMap<String, String>>,
    snapshots: &HashMap<String, SnapshotNode>,
    roots: Vec<Node>,
) -> anyhow::Result<Marks> {
    let mut marks = Marks { content: HashSet::new(), snapshots: HashSet::new() };
    // Blobs already expanded under a declared manifest type: a blob first reached through a label
    // (type unknown, sniffed) is expanded again when a descriptor declares its type.
    let mut expanded_as_declared = HashSet::new();
    let mut pending = roots;
    while let Some(node) = pending.pop() {
        match node {
            Node::Content(digest, media_type) => {
                // `Images.Create` accepts a target without a media type; such a blob is sniffed.
                let media_type = media_type.filter(|m| !m.is_empty());
                let newly_marked = marks.content.insert(digest.clone());
                let newly_declared = media_type.as_deref().is_some_and(is_manifest_or_index)
                    && expanded_as_declared.insert(digest.clone());
                if !newly_marked && !newly_declared {
                    continue;
                }
                if let Some(labels) = labels.get(&digest).filter(|_| newly_marked) {
                    pending.extend(label_refs(&digest.to_string(), labels));
                }
                pending.extend(children(content, &digest, media_type.as_deref())?);
            }
            Node::Snapshot(key) => {
                let Some(snapshot) = snapshots.get(&key) else { continue };
                if !marks.snapshots.insert(key) {
                    continue;
                }
                pending.extend(label_refs(&snapshot.key, &snapshot.labels));
                pending.extend(snapshot.parent.clone().map(Node::Snapshot));
            }
        }
    }
    Ok(marks)
}

/// The resources that the `containerd.io/gc.ref.*` labels of `owner` (a digest or snapshot key)
/// keep alive; the same labels mean the same on content and on snapshots.
fn label_refs(owner: &str, labels: &BTreeMap<String, String>) -> Vec<Node> {
    let mut refs = Vec::new();
    for (key, value) in labels {
        if key.starts_with(CONTENT_REF_LABEL_PREFIX) {
            match value.parse::<Digest>() {
                Ok(digest) => refs.push(Node::Content(digest, None)),
                Err(e) => tracing::warn!(owner, key, error = %e, "gc: ignoring bad content ref label"),
            }
        } else if key.strip_prefix(SNAPSHOT_REF_LABEL).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) {
            refs.push(Node::Snapshot(value.clone()));
        }
    }
    refs
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
    crate::image::is_index(media_type) || crate::image::is_manifest(media_type)
}

/// What blob `digest` refers to, if it is an index or a manifest. `media_type` is what its referrer
/// declared; when unknown (label, lease, image target stored without one), a small blob is sniffed
/// as `image::sniff_media_type` does: its `mediaType`, else `manifests` or `config` present.
/// A missing blob has no children (an index names every platform; only one is pulled).
fn children(content: &ContentStore, digest: &Digest, media_type: Option<&str>) -> anyhow::Result<Vec<Node>> {
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
            Ok(child) => Some(Node::Content(child, d.media_type)),
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

/// Removes every committed snapshot that is not marked, deepest first so a parent never goes
/// before its children. Returns how many were removed.
fn sweep_snapshots(
    snapshotter: &dyn SnapshotGc,
    snapshots: &HashMap<String, SnapshotNode>,
    marked: &HashSet<String>,
) -> usize {
    let depth = |key: &str| {
        let mut depth = 0usize;
        let mut seen = HashSet::new();
        let mut key = Some(key.to_string());
        // `insert` failing guards against a cycle in corrupt records.
        while let Some(k) = key.filter(|k| seen.insert(k.clone())) {
            depth += 1;
            key = snapshots.get(&k).and_then(|s| s.parent.clone());
        }
        depth
    };
    let mut garbage: Vec<(usize, &String)> = snapshots
        .values()
        .filter(|s| s.committed && !marked.contains(&s.key))
        .map(|s| (depth(&s.key), &s.key))
        .collect();
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
    use crate::image::{OCI_INDEX, OCI_MANIFEST};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io::Write as _;

    use serde_json::json;

    use super::*;
    use crate::store::meta::{Image, Target};

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

    /// A snapshotter holding snapshot records, recording the order of removals.
    #[derive(Default)]
    struct FakeSnapshots {
        snapshots: RefCell<Vec<SnapshotNode>>,
        removed: RefCell<Vec<String>>,
    }

    impl FakeSnapshots {
        fn with(snapshots: Vec<SnapshotNode>) -> FakeSnapshots {
            FakeSnapshots { snapshots: RefCell::new(snapshots), removed: RefCell::default() }
        }

        fn keys(&self) -> Vec<String> {
            self.snapshots.borrow().iter().map(|s| s.key.clone()).collect()
        }
    }

    impl SnapshotGc for FakeSnapshots {
        fn snapshots(&self) -> anyhow::Result<Vec<SnapshotNode>> {
            Ok(self.snapshots.borrow().clone())
        }

        fn remove(&self, key: &str) -> anyhow::Result<()> {
            let mut snapshots = self.snapshots.borrow_mut();
            anyhow::ensure!(!snapshots.iter().any(|s| s.parent.as_deref() == Some(key)), "snapshot {key} has children");
            snapshots.retain(|s| s.key != key);
            self.removed.borrow_mut().push(key.to_string());
            Ok(())
        }
    }

    fn committed(key: &str, parent: Option<&str>, labels: &[(&str, &str)]) -> SnapshotNode {
        SnapshotNode {
            key: key.to_string(),
            parent: parent.map(str::to_string),
            committed: true,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn active(key: &str, parent: Option<&str>, labels: &[(&str, &str)]) -> SnapshotNode {
        SnapshotNode { committed: false, ..committed(key, parent, labels) }
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
    fn reclaimable_counts_what_collect_frees_and_removes_nothing() {
        let env = env();
        let chain = image_chain(&env);
        put_image(&env, &chain);
        let garbage = [env.blob(b"garbage one"), env.blob(b"garbage two!")];
        let snapshots = FakeSnapshots::default();
        assert_eq!(reclaimable(&env.meta, &env.content, &snapshots).unwrap(), 11 + 12);
        assert!(garbage.iter().all(|d| env.has(d)), "a dry run removed a blob");
        assert_eq!(collect(&env.meta, &env.content, &snapshots).unwrap().bytes_freed, 11 + 12);
        assert_eq!(reclaimable(&env.meta, &env.content, &snapshots).unwrap(), 0);
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
        let snapshots = FakeSnapshots::with(vec![
            committed("l1", None, &[]),
            committed("l2", Some("l1"), &[]),
            committed("orphan-base", None, &[]),
            committed("orphan-mid", Some("orphan-base"), &[]),
            committed("orphan-top", Some("orphan-mid"), &[]),
            active("container-rw", Some("l2"), &[]),
            committed("leased", None, &[]),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!(stats.snapshots_removed, 3);
        assert_eq!(snapshots.keys(), ["l1", "l2", "container-rw", "leased"]);
    }

    #[test]
    fn unreferenced_committed_snapshots_are_removed_children_first() {
        let env = env();
        let snapshots = FakeSnapshots::with(vec![
            committed("base", None, &[]),
            committed("mid", Some("base"), &[]),
            committed("top", Some("mid"), &[]),
            committed("other", None, &[]),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!(stats.snapshots_removed, 4);
        assert!(snapshots.keys().is_empty());
        assert_eq!(*snapshots.removed.borrow(), ["top", "mid", "base", "other"]);
    }

    #[test]
    fn root_labelled_snapshot_keeps_its_parents_and_the_snapshots_it_names() {
        let env = env();
        let extra_ref = format!("{SNAPSHOT_REF_LABEL}/sidecar");
        let snapshots = FakeSnapshots::with(vec![
            committed("base", None, &[]),
            committed("pinned", Some("base"), &[(ROOT_LABEL, "2024-01-01"), (&extra_ref, "sidecar")]),
            committed("sidecar", None, &[]),
            committed("unpinned", Some("base"), &[]),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!(stats.snapshots_removed, 1);
        assert_eq!(snapshots.keys(), ["base", "pinned", "sidecar"]);
    }

    #[test]
    fn active_and_view_snapshots_without_labels_are_never_removed() {
        let env = env();
        let snapshots = FakeSnapshots::with(vec![
            committed("base", None, &[]),
            active("container-rw", Some("base"), &[]),
            active("view-of-nothing", None, &[]),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!(stats.snapshots_removed, 0);
        assert_eq!(snapshots.keys(), ["base", "container-rw", "view-of-nothing"]);
    }

    #[test]
    fn content_ref_labels_on_marked_snapshots_keep_blobs() {
        let env = env();
        let chain = image_chain(&env);
        put_image(&env, &chain);
        let kept_by_active = env.blob(b"kept by an active snapshot");
        let kept_by_committed = env.blob(b"kept by a committed snapshot");
        let kept_by_nothing = env.blob(b"kept by a removed snapshot");
        // Content → snapshot → content: the walk must follow labels across both kinds of node.
        env.meta.set_content_label(&chain.all[1], SNAPSHOT_REF_LABEL, Some("layer")).unwrap();
        let content_ref = format!("{CONTENT_REF_LABEL_PREFIX}extra");
        let snapshots = FakeSnapshots::with(vec![
            committed("layer", None, &[(&content_ref, &kept_by_committed.to_string())]),
            active("rw", None, &[(&content_ref, &kept_by_active.to_string())]),
            committed("unreferenced", None, &[(&content_ref, &kept_by_nothing.to_string())]),
        ]);

        let stats = collect(&env.meta, &env.content, &snapshots).unwrap();
        assert_eq!((stats.blobs_removed, stats.snapshots_removed), (1, 1));
        assert!(env.has(&kept_by_active) && env.has(&kept_by_committed));
        assert!(!env.has(&kept_by_nothing));
        assert!(chain.all.iter().all(|d| env.has(d)));
    }

    #[test]
    fn image_target_without_media_type_keeps_its_manifests_config_and_layers() {
        let env = env();
        let chain = image_chain(&env);
        let put = |name: &str, digest: &Digest, size: u64| {
            let target = Target { media_type: String::new(), digest: digest.clone(), size };
            env.meta.put_image(Image::new(name, target)).unwrap();
        };
        put("index:untyped", &chain.index, chain.index_size);
        // A manifest with no `mediaType` field either: recognised by its `config`.
        let config = env.blob(br#"{"architecture":"arm64","os":"linux"}"#);
        let layer = env.blob(b"arm64 layer bytes");
        let (manifest, manifest_size) = env.json(&json!({
            "schemaVersion": 2,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config, 36),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer, 17)],
        }));
        put("manifest:untyped", &manifest, manifest_size);
        let garbage = env.blob(b"garbage");

        let stats = collect(&env.meta, &env.content, &FakeSnapshots::default()).unwrap();
        assert_eq!(stats.blobs_removed, 1);
        assert!(!env.has(&garbage));
        assert!(chain.all.iter().chain([&manifest, &config, &layer]).all(|d| env.has(d)));
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
