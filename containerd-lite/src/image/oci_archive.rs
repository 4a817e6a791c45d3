//! Image archives, exported from and imported into the content store: what `docker save` writes
//! and `docker load` reads (docker ≥ 25's layout, plus docker 20.10's on import) and OCI image
//! layouts. Export streams blobs as stored. Import treats the tar as hostile: entry names are
//! checked, JSON files are bounded, blobs stream into content writers and commit only if they hash
//! to their names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::image::reference::Reference;
use crate::image::{self, Descriptor, Index, Manifest, Platform};
use crate::store::content::{ContentError, ContentStore};
use crate::store::digest::Digest;

/// The full image name, as containerd (and docker ≥ 25) annotate index.json entries.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI name of an index.json entry: a tag, or a full reference for some tools (skopeo).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
const DOCKER_MANIFEST_FILE: &str = "manifest.json";

/// Each JSON file of an archive is read whole; nothing legitimate comes near this.
const MAX_JSON_FILE: u64 = image::MAX_METADATA_BLOB;
/// All JSON files of one archive together (they are held in memory until the end of the tar).
const MAX_JSON_TOTAL: u64 = 64 << 20;
/// Symlinks followed to find a file named by manifest.json (docker links shared layers).
const MAX_LINK_HOPS: usize = 8;
/// Longest entry name or link target accepted (PAX headers allow any length).
const MAX_PATH: usize = 4096;
/// Index nesting accepted on import.
const MAX_INDEX_DEPTH: usize = 2;

/// The archive itself is malformed or hostile, as opposed to a failure of the local store: the
/// service answers INVALID_ARGUMENT for these.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArchive(pub String);

/// Returns early with an [`InvalidArchive`] error.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(InvalidArchive(format!($($arg)*)).into())
    };
}

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker save` of docker ≥ 25: an OCI layout whose index.json names each image's platform
    /// manifest, plus docker's manifest.json, so `docker load` back to 20.10 reads it.
    Docker,
    /// An OCI image layout: index.json names each image's own target (an index if it is one).
    Oci,
}

impl FromStr for Format {
    type Err = anyhow::Error;

    /// `""` is docker's format, as for `docker save`.
    fn from_str(s: &str) -> anyhow::Result<Format> {
        match s {
            "" | "docker" => Ok(Format::Docker),
            "oci" => Ok(Format::Oci),
            other => bail!("unknown archive format {other:?}: expected \"docker\" or \"oci\""),
        }
    }
}

/// One image of docker's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DockerEntry {
    /// Path of the config file in the archive.
    #[serde(rename = "Config")]
    config: String,
    /// Docker's familiar names (`busybox:latest`); docker 20.10 writes `null` for none.
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    /// Paths of the layer files in the archive, bottom first.
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// `blobs/<alg>/<hex>`: where a layout keeps the blob `d`.
fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

// ---------------------------------------------------------------------------------------------
// Export

/// Writes `images` (normalised name, target) from `content` as a tar archive in `format` to `out`.
/// `platform` chooses the manifest of images that are indexes: for [`Format::Docker`] the one
/// manifest exported (the host's when `None`); for [`Format::Oci`] the index is kept and only the
/// chosen platform's manifest is exported, or with `None` every child complete in the store.
/// Each blob is written once, streamed from the store.
pub fn export(
    content: &ContentStore,
    images: &[(String, Descriptor)],
    format: Format,
    platform: Option<&Platform>,
    out: impl Write,
) -> anyhow::Result<()> {
    if images.is_empty() {
        bail!("no images to export");
    }
    let plan = match format {
        Format::Docker => plan_docker(content, images, &platform.cloned().unwrap_or_else(Platform::host))?,
        Format::Oci => plan_oci(content, images, platform)?,
    };
    write_archive(content, &plan, out)
}

/// Everything an export writes, decided before the first byte goes out.
struct Plan {
    index: Index,
    /// docker's manifest.json, for [`Format::Docker`].
    docker: Option<Vec<DockerEntry>>,
    blobs: BlobList,
}

impl Plan {
    fn new() -> Plan {
        Plan {
            index: Index {
                schema_version: 2,
                media_type: Some(image::OCI_INDEX.into()),
                manifests: Vec::new(),
                annotations: None,
            },
            docker: None,
            blobs: BlobList::default(),
        }
    }
}

/// Blobs to write, in first-seen order, each once.
#[derive(Default)]
struct BlobList {
    order: Vec<Digest>,
    seen: HashSet<Digest>,
}

impl BlobList {
    fn add(&mut self, d: &Digest) {
        if self.seen.insert(d.clone()) {
            self.order.push(d.clone());
        }
    }

    /// A manifest, its config and its layers.
    fn add_manifest(&mut self, digest: &Digest, manifest: &Manifest) {
        self.add(digest);
        for blob in manifest_blobs(manifest) {
            self.add(&blob.digest);
        }
    }
}

/// The config then the layers of `manifest`.
fn manifest_blobs(manifest: &Manifest) -> impl Iterator<Item = &Descriptor> {
    std::iter::once(&manifest.config).chain(&manifest.layers)
}

/// The blobs `manifest` needs that `content` lacks.
fn missing_blobs(content: &ContentStore, manifest: &Manifest) -> anyhow::Result<Vec<Digest>> {
    let mut missing = Vec::new();
    for blob in manifest_blobs(manifest) {
        if content.info(&blob.digest)?.is_none() {
            missing.push(blob.digest.clone());
        }
    }
    Ok(missing)
}

/// Fails naming the blobs of `manifest` that are not in `content`.
fn require_blobs(content: &ContentStore, manifest: &Manifest, digest: &Digest) -> anyhow::Result<()> {
    let missing = missing_blobs(content, manifest)?;
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        bail!("manifest {digest}: not in the content store: {}", list.join(", "));
    }
    Ok(())
}

/// The manifest `desc` if it and all its blobs are in `content`.
fn complete_manifest(content: &ContentStore, desc: &Descriptor) -> anyhow::Result<Option<Manifest>> {
    if content.info(&desc.digest)?.is_none() {
        return Ok(None);
    }
    let manifest: Manifest = image::parse(&image::read(content, &desc.digest)?, "manifest", &desc.digest)?;
    Ok(missing_blobs(content, &manifest)?.is_empty().then_some(manifest))
}

/// docker's familiar `name:tag` of a tagged reference (RepoTags leave digests out).
fn repo_tag(reference: &Reference) -> Option<String> {
    reference.tag.as_ref().map(|_| Reference { digest: None, ..reference.clone() }.familiar())
}

/// The annotations naming an index.json entry: the full name, and the tag as OCI's ref name.
fn name_annotations(name: &str, reference: &Reference) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([(ANNOTATION_IMAGE_NAME.to_string(), name.to_string())]);
    if let Some(tag) = &reference.tag {
        annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
    }
    annotations
}

fn parse_name(name: &str) -> anyhow::Result<Reference> {
    Reference::parse(name).with_context(|| format!("image name {name:?}"))
}

fn plan_docker(content: &ContentStore, images: &[(String, Descriptor)], platform: &Platform) -> anyhow::Result<Plan> {
    let mut plan = Plan::new();
    let mut entries: Vec<DockerEntry> = Vec::new();
    // Names of one manifest share its manifest.json entry, as in `docker save a b` of one image.
    let mut entry_of: HashMap<Digest, usize> = HashMap::new();
    for (name, target) in images {
        let reference = parse_name(name)?;
        let resolved = image::resolve(content, target, platform).with_context(|| format!("image {name}"))?;
        let digest = &resolved.manifest_desc.digest;
        require_blobs(content, &resolved.manifest, digest).with_context(|| format!("image {name}"))?;

        let mut desc = resolved.manifest_desc.clone();
        if desc.media_type.is_empty() {
            desc.media_type = resolved.manifest.media_type.clone().unwrap_or_else(|| image::OCI_MANIFEST.into());
        }
        desc.annotations = Some(name_annotations(name, &reference));
        plan.index.manifests.push(desc);
        plan.blobs.add_manifest(digest, &resolved.manifest);

        let i = *entry_of.entry(digest.clone()).or_insert_with(|| {
            entries.push(DockerEntry {
                config: blob_path(&resolved.manifest.config.digest),
                repo_tags: Some(Vec::new()),
                layers: resolved.manifest.layers.iter().map(|l| blob_path(&l.digest)).collect(),
            });
            entries.len() - 1
        });
        if let (Some(tag), Some(tags)) = (repo_tag(&reference), entries[i].repo_tags.as_mut()) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    plan.docker = Some(entries);
    Ok(plan)
}

fn plan_oci(
    content: &ContentStore,
    images: &[(String, Descriptor)],
    platform: Option<&Platform>,
) -> anyhow::Result<Plan> {
    let mut plan = Plan::new();
    for (name, target) in images {
        let reference = parse_name(name)?;
        let bytes = image::read(content, &target.digest).with_context(|| format!("image {name}"))?;
        let mut target = target.clone();
        if target.media_type.is_empty() {
            target.media_type = image::sniff_media_type(&bytes).unwrap_or_default();
        }
        plan.blobs.add(&target.digest);
        if image::is_index(&target.media_type) {
            let index: Index = image::parse(&bytes, "index", &target.digest)?;
            let children: Vec<&Descriptor> = match platform {
                Some(p) => {
                    vec![image::select_platform(&index, p, &target.digest).with_context(|| format!("image {name}"))?]
                }
                None => index.manifests.iter().filter(|c| image::is_manifest(&c.media_type)).collect(),
            };
            let mut exported = 0;
            for child in children {
                match complete_manifest(content, child)? {
                    Some(manifest) => {
                        plan.blobs.add_manifest(&child.digest, &manifest);
                        exported += 1;
                    }
                    None if platform.is_some() => {
                        bail!("image {name}: manifest {} is not complete in the content store", child.digest)
                    }
                    // Pulls fetch one platform: the others are simply not here.
                    None => tracing::debug!(image = name, manifest = %child.digest, "not exporting absent manifest"),
                }
            }
            if exported == 0 {
                bail!(
                    "image {name}: none of the manifests of index {} is complete in the content store",
                    target.digest
                );
            }
        } else if image::is_manifest(&target.media_type) {
            let manifest: Manifest = image::parse(&bytes, "manifest", &target.digest)?;
            require_blobs(content, &manifest, &target.digest).with_context(|| format!("image {name}"))?;
            plan.blobs.add_manifest(&target.digest, &manifest);
        } else {
            bail!("image {name}: {}: unsupported media type {:?}", target.digest, target.media_type);
        }
        plan.index.manifests.push(Descriptor {
            platform: None,
            annotations: Some(name_annotations(name, &reference)),
            urls: None,
            ..target
        });
    }
    Ok(plan)
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> anyhow::Result<()> {
    let mut header = file_header(data.len() as u64);
    tar.append_data(&mut header, path, data).with_context(|| format!("writing {path}"))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> anyhow::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    tar.append_data(&mut header, path, io::empty()).with_context(|| format!("writing {path}"))
}

/// Writes the layout files first, so a streaming reader knows what follows, then the blobs.
fn write_archive(content: &ContentStore, plan: &Plan, out: impl Write) -> anyhow::Result<()> {
    let mut tar = tar::Builder::new(out);
    append_file(&mut tar, OCI_LAYOUT_FILE, OCI_LAYOUT.as_bytes())?;
    append_file(&mut tar, INDEX_FILE, &serde_json::to_vec(&plan.index)?)?;
    if let Some(entries) = &plan.docker {
        append_file(&mut tar, DOCKER_MANIFEST_FILE, &serde_json::to_vec(entries)?)?;
    }
    append_dir(&mut tar, "blobs/")?;
    let algorithms: BTreeSet<&str> = plan.blobs.order.iter().map(|d| d.algorithm().as_str()).collect();
    for alg in algorithms {
        append_dir(&mut tar, &format!("blobs/{alg}/"))?;
    }
    for digest in &plan.blobs.order {
        let blob = content.open_blob(digest)?;
        let size = blob.metadata().with_context(|| format!("stat blob {digest}"))?.len();
        let mut header = file_header(size);
        // Committed blobs are read-only and renamed into place whole: the size cannot change.
        tar.append_data(&mut header, blob_path(digest), blob.take(size))
            .with_context(|| format!("writing blob {digest}"))?;
    }
    let mut out = tar.into_inner().context("finishing the archive")?;
    out.flush().context("finishing the archive")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Import

/// Reads an image archive — an OCI layout (index.json + blobs/), docker ≥ 25's save (both), or
/// docker 20.10's save (manifest.json, `<id>/layer.tar`, `<id>.json`) — into `content`, and
/// returns the (normalised name, target) of each named image. Blobs are committed as they stream
/// by; nothing is named here: the caller does that once everything is in.
pub fn import(content: &ContentStore, tar: impl Read) -> anyhow::Result<Vec<(String, Descriptor)>> {
    let spooled = spool(content, tar)?;
    if let Some(index) = spooled.json.get(INDEX_FILE) {
        from_oci_layout(content, &spooled, index)
    } else if let Some(manifest) = spooled.json.get(DOCKER_MANIFEST_FILE) {
        from_docker_manifest(content, &spooled, manifest)
    } else {
        refuse!("not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker save)")
    }
}

/// What reading the tar left: JSON files in memory, every other file in the content store.
#[derive(Default)]
struct Spooled {
    /// JSON files (index.json, manifest.json, docker 20.10's configs), by path.
    json: HashMap<String, Vec<u8>>,
    /// Files committed to the content store, by path: `blobs/<alg>/<hex>` and docker's layers.
    files: HashMap<String, Digest>,
    /// Symbolic and hard links: path → the archive path they name.
    links: HashMap<String, String>,
}

impl Spooled {
    /// The path a file named `path` in manifest.json really is, links followed.
    fn resolve(&self, path: &str) -> anyhow::Result<String> {
        let Some(mut path) = archive_path(path)? else {
            refuse!("manifest.json names the archive's root directory as a file");
        };
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => return Ok(path),
            }
        }
        refuse!("{path:?}: more than {MAX_LINK_HOPS} links deep")
    }

    /// The content-store digest of the file `path` (a blob or a spooled layer).
    fn blob(&self, content: &ContentStore, path: &str) -> anyhow::Result<Digest> {
        let resolved = self.resolve(path)?;
        match self.files.get(&resolved) {
            Some(digest) if content.info(digest)?.is_some() => Ok(digest.clone()),
            _ => refuse!("manifest.json names {path:?}, which the archive does not contain"),
        }
    }

    /// The bytes of the small file `path` (a config), bounded.
    fn small_file(&self, content: &ContentStore, path: &str) -> anyhow::Result<Vec<u8>> {
        let resolved = self.resolve(path)?;
        if let Some(bytes) = self.json.get(&resolved) {
            return Ok(bytes.clone());
        }
        read_bounded(content, &self.blob(content, path)?)
    }
}

/// Normalises a path from the archive (`./a//b` → `a/b`); `None` for the root itself. Absolute
/// paths and `..` are refused: nothing in an image archive needs them.
fn archive_path(raw: &str) -> anyhow::Result<Option<String>> {
    if raw.len() > MAX_PATH {
        refuse!("archive entry name of {} bytes is refused (at most {MAX_PATH})", raw.len());
    }
    if raw.starts_with('/') {
        refuse!("archive entry {raw:?}: absolute paths are refused");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => refuse!("archive entry {raw:?}: \"..\" is refused"),
            part => parts.push(part),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// The archive path a symlink at `path` pointing to `target` names; it must stay in the archive.
fn symlink_target(path: &str, target: &str) -> anyhow::Result<String> {
    if target.len() > MAX_PATH {
        refuse!("archive entry {path:?}: link target of {} bytes is refused", target.len());
    }
    if target.starts_with('/') {
        refuse!("archive entry {path:?}: link to absolute path {target:?} is refused");
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    refuse!("archive entry {path:?}: link to {target:?} leaves the archive");
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        refuse!("archive entry {path:?}: link to the archive's root");
    }
    Ok(parts.join("/"))
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> anyhow::Result<&'a str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(_) => refuse!("archive {what} {:?} is not UTF-8", String::from_utf8_lossy(bytes)),
    }
}

/// JSON files are kept in memory; `oci-layout` is JSON without the extension.
fn is_json(path: &str) -> bool {
    path == OCI_LAYOUT_FILE || path.ends_with(".json")
}

/// docker's legacy per-layer files and its `repositories`: nothing berth reads.
fn is_legacy(path: &str) -> bool {
    path == "repositories" || path.ends_with("/json") || path.ends_with("/VERSION")
}

/// Reads the tar: blobs into content writers, JSON into memory, links into a map.
fn spool(content: &ContentStore, tar: impl Read) -> anyhow::Result<Spooled> {
    let mut spooled = Spooled::default();
    let mut json_total = 0u64;
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(read_error)?;
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let raw = utf8(&entry.path_bytes(), "entry name")?.to_string();
        let Some(path) = archive_path(&raw)? else { continue };
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let Some(target) = entry.link_name_bytes() else {
                    refuse!("archive entry {path:?}: link without a target");
                };
                let target = utf8(&target, "link target")?;
                let resolved = if kind == tar::EntryType::Symlink {
                    symlink_target(&path, target)?
                } else {
                    // Hard links name a path from the archive's root.
                    match archive_path(target)? {
                        Some(t) => t,
                        None => refuse!("archive entry {path:?}: hard link to the archive's root"),
                    }
                };
                spooled.links.insert(path, resolved);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                if let Some(rest) = path.strip_prefix("blobs/") {
                    let digest = match rest.replacen('/', ":", 1).parse::<Digest>() {
                        Ok(d) => d,
                        Err(e) => refuse!("archive entry {path:?}: not a blob (blobs/ALGORITHM/HEX): {e}"),
                    };
                    if content.info(&digest)?.is_none() {
                        store(content, &mut entry, &path, size, Some(&digest))?;
                    }
                    spooled.files.insert(path, digest);
                } else if is_json(&path) {
                    if size > MAX_JSON_FILE {
                        refuse!(
                            "archive entry {path:?} is {size} bytes, more than the {MAX_JSON_FILE} allowed for JSON"
                        );
                    }
                    json_total += size;
                    if json_total > MAX_JSON_TOTAL {
                        refuse!("the archive's JSON files exceed {MAX_JSON_TOTAL} bytes together");
                    }
                    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    (&mut entry).take(MAX_JSON_FILE).read_to_end(&mut bytes).map_err(read_error)?;
                    if spooled.json.insert(path.clone(), bytes).is_some() {
                        refuse!("the archive has two entries named {path:?}");
                    }
                } else if !is_legacy(&path) {
                    // docker 20.10's `<id>/layer.tar`: digest unknown until hashed.
                    let digest = store(content, &mut entry, &path, size, None)?;
                    spooled.files.insert(path, digest);
                }
            }
            // Directories carry nothing; devices and fifos have no place in an image archive
            // and are never created from it.
            _ => {}
        }
    }
    Ok(spooled)
}

/// A failure reading the tar stream: malformed (or cut short) input.
fn read_error(e: io::Error) -> anyhow::Error {
    InvalidArchive(format!("reading the archive: {e}")).into()
}

/// Ingest refs of imports are unique, so concurrent imports of one blob never lock each other out
/// (both commit; the second finds the blob there).
fn ingest_ref(path: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path: String = path.chars().take(100).collect();
    format!("import-{}-{}-{n} {path}", std::process::id(), crate::events::now_nanos())
}

/// Streams one tar entry into a content writer and commits it, verified against `expected` (if
/// given) and `size`. Returns its digest. A failed copy leaves no ingest behind.
fn store(
    content: &ContentStore,
    data: &mut impl Read,
    path: &str,
    size: u64,
    expected: Option<&Digest>,
) -> anyhow::Result<Digest> {
    let reference = ingest_ref(path);
    let mut writer = content.writer(&reference, Some(size), expected)?;
    // A ref left by a crashed daemon of the same pid would be resumed: start from zero.
    writer.truncate(0)?;
    if let Err(e) = io::copy(data, &mut writer) {
        drop(writer);
        let _ = content.abort(&reference);
        return Err(read_error(e).context(format!("archive entry {path:?}")));
    }
    match writer.commit(Some(size), expected) {
        Ok(digest) => Ok(digest),
        Err(ContentError::DigestMismatch { actual, .. }) => {
            refuse!("archive entry {path:?}: content does not match its name (it hashes to {actual})")
        }
        Err(e) => {
            let _ = content.abort(&reference);
            Err(e.into())
        }
    }
}

/// A manifest, index or config blob of the archive, bounded.
fn read_bounded(content: &ContentStore, digest: &Digest) -> anyhow::Result<Vec<u8>> {
    match content.read_all(digest, MAX_JSON_FILE) {
        Ok(bytes) => Ok(bytes),
        Err(ContentError::TooLarge { size, .. }) => {
            refuse!("{digest} is {size} bytes, more than the {MAX_JSON_FILE} allowed for JSON")
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> anyhow::Result<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) => refuse!("{what}: {e}"),
    }
}

/// A name from the archive, normalised as berth stores names.
fn normalize(name: &str) -> anyhow::Result<String> {
    match Reference::parse(name) {
        Ok(r) => Ok(r.to_string()),
        Err(e) => refuse!("the archive names an image {e}"),
    }
}

fn from_oci_layout(
    content: &ContentStore,
    spooled: &Spooled,
    index_bytes: &[u8],
) -> anyhow::Result<Vec<(String, Descriptor)>> {
    let index: Index = parse_json(index_bytes, "index.json")?;
    // docker ≥ 25 names images in manifest.json too; it names them when index.json does not.
    let docker_tags = docker_tags_by_config(content, spooled);
    let mut named = Named::default();
    for desc in &index.manifests {
        let info = match content.info(&desc.digest)? {
            Some(info) => info,
            None => refuse!(
                "index.json names {}, but the archive does not contain {}",
                desc.digest,
                blob_path(&desc.digest)
            ),
        };
        if info.size != desc.size {
            refuse!("index.json says {} is {} bytes, but the archive's blob is {}", desc.digest, desc.size, info.size);
        }
        let mut target = Descriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            platform: None,
            annotations: None,
            urls: None,
        };
        let bytes = read_bounded(content, &target.digest)?;
        if target.media_type.is_empty() {
            target.media_type = image::sniff_media_type(&bytes).unwrap_or_default();
        }
        check_complete(content, &target, &bytes, 0)?;
        let annotation = |key| desc.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str);
        let names = if let Some(name) = annotation(ANNOTATION_IMAGE_NAME) {
            vec![normalize(name)?]
        } else if let Some(name) = annotation(ANNOTATION_REF_NAME).filter(|r| r.contains(['/', ':', '@'])) {
            vec![normalize(name)?]
        } else {
            let config = image::is_manifest(&target.media_type)
                .then(|| parse_json::<Manifest>(&bytes, "manifest").map(|m| m.config.digest))
                .transpose()?;
            match config.and_then(|c| docker_tags.get(&c)) {
                Some(tags) => tags.iter().map(|t| normalize(t)).collect::<anyhow::Result<_>>()?,
                None => Vec::new(),
            }
        };
        if names.is_empty() {
            named.unnamed.push(match annotation(ANNOTATION_REF_NAME) {
                Some(tag) => format!("{} (tag {tag:?} but no repository)", desc.digest),
                None => desc.digest.to_string(),
            });
        }
        for name in names {
            named.add(name, target.clone());
        }
    }
    named.finish()
}

/// The RepoTags of docker's manifest.json, by config digest. Best effort: index.json is what the
/// import follows; an unreadable manifest.json just names nothing.
fn docker_tags_by_config(content: &ContentStore, spooled: &Spooled) -> HashMap<Digest, Vec<String>> {
    let mut tags = HashMap::new();
    let Some(Ok(entries)) =
        spooled.json.get(DOCKER_MANIFEST_FILE).map(|b| serde_json::from_slice::<Vec<DockerEntry>>(b))
    else {
        return tags;
    };
    for entry in entries {
        let config = spooled.blob(content, &entry.config).ok().or_else(|| {
            let path = spooled.resolve(&entry.config).ok()?;
            spooled.json.get(&path).map(|b| Digest::sha256(b))
        });
        if let (Some(config), Some(repo_tags)) = (config, entry.repo_tags) {
            tags.entry(config).or_insert_with(Vec::new).extend(repo_tags);
        }
    }
    tags
}

/// Checks that the archive delivered what `desc` (whose blob is `bytes`) needs: a manifest's
/// config and layers at their declared sizes; of an index, every child it carries — at least one
/// (a platform-filtered export carries just one).
fn check_complete(content: &ContentStore, desc: &Descriptor, bytes: &[u8], depth: usize) -> anyhow::Result<()> {
    if image::is_index(&desc.media_type) {
        if depth >= MAX_INDEX_DEPTH {
            refuse!("index {}: indexes nested more than {MAX_INDEX_DEPTH} deep", desc.digest);
        }
        let index: Index = parse_json(bytes, &format!("index {}", desc.digest))?;
        let mut present = 0;
        for child in &index.manifests {
            let Some(info) = content.info(&child.digest)? else { continue };
            if info.size != child.size {
                refuse!("index {}: {} is {} bytes, not {}", desc.digest, child.digest, info.size, child.size);
            }
            present += 1;
            if image::is_index(&child.media_type) || image::is_manifest(&child.media_type) {
                check_complete(content, child, &read_bounded(content, &child.digest)?, depth + 1)?;
            }
        }
        if present == 0 {
            refuse!("index {}: the archive contains none of its manifests", desc.digest);
        }
    } else if image::is_manifest(&desc.media_type) {
        let manifest: Manifest = parse_json(bytes, &format!("manifest {}", desc.digest))?;
        for blob in manifest_blobs(&manifest) {
            match content.info(&blob.digest)? {
                None => refuse!("manifest {}: the archive lacks blob {}", desc.digest, blob.digest),
                Some(info) if info.size != blob.size => {
                    refuse!("manifest {}: blob {} is {} bytes, not {}", desc.digest, blob.digest, info.size, blob.size)
                }
                Some(_) => {}
            }
        }
    } else if depth == 0 {
        refuse!("{}: unsupported media type {:?}", desc.digest, desc.media_type);
    }
    Ok(())
}

/// The images an archive names, a name given twice pointing where its last mention says.
#[derive(Default)]
struct Named {
    images: Vec<(String, Descriptor)>,
    /// Images without a usable name, described for the error or warning.
    unnamed: Vec<String>,
}

impl Named {
    fn add(&mut self, name: String, target: Descriptor) {
        self.images.retain(|(n, _)| *n != name);
        self.images.push((name, target));
    }

    /// berth has no nameless images: an archive naming none is refused; nameless images beside
    /// named ones are skipped with a warning.
    fn finish(self) -> anyhow::Result<Vec<(String, Descriptor)>> {
        if self.images.is_empty() {
            if self.unnamed.is_empty() {
                refuse!("the archive contains no images");
            }
            refuse!(
                "the archive's images have no names (berth needs one to store an image): {}",
                self.unnamed.join(", ")
            );
        }
        if !self.unnamed.is_empty() {
            tracing::warn!(skipped = %self.unnamed.join(", "), "archive images without a name were not imported");
        }
        Ok(self.images)
    }
}

/// The docker media type of a layer file, by its magic: docker 20.10 saves layers uncompressed,
/// other tools gzip them.
fn sniff_layer_media_type(content: &ContentStore, digest: &Digest) -> anyhow::Result<&'static str> {
    let mut magic = Vec::with_capacity(4);
    content.open_blob(digest)?.take(4).read_to_end(&mut magic).with_context(|| format!("reading {digest}"))?;
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => image::DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => image::DOCKER_LAYER_ZSTD,
        _ => image::DOCKER_LAYER,
    })
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor { media_type: media_type.into(), digest, size, platform: None, annotations: None, urls: None }
}

/// Images of a manifest.json-only archive (docker 20.10, skopeo's docker-archive): each gets a
/// synthesized docker schema2 manifest over its config and layer files as they are.
fn from_docker_manifest(
    content: &ContentStore,
    spooled: &Spooled,
    bytes: &[u8],
) -> anyhow::Result<Vec<(String, Descriptor)>> {
    let entries: Vec<DockerEntry> = parse_json(bytes, "manifest.json")?;
    let mut named = Named::default();
    for entry in entries {
        let config_bytes = spooled.small_file(content, &entry.config)?;
        let config: image::Config = parse_json(&config_bytes, &format!("config {:?}", entry.config))?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            refuse!(
                "manifest.json: image {:?} has {} layers but its config lists {} diff_ids",
                entry.config,
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        let config_digest = Digest::sha256(&config_bytes);
        content.write_blob(&ingest_ref(&entry.config), &config_digest, &config_bytes)?;

        let mut layers = Vec::with_capacity(entry.layers.len());
        for path in &entry.layers {
            let digest = spooled.blob(content, path)?;
            let size = match content.info(&digest)? {
                Some(info) => info.size,
                None => refuse!("manifest.json names {path:?}, which the archive does not contain"),
            };
            layers.push(descriptor(sniff_layer_media_type(content, &digest)?, digest, size));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(image::DOCKER_MANIFEST.into()),
            config: descriptor(image::DOCKER_CONFIG, config_digest, config_bytes.len() as u64),
            layers,
            annotations: None,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).context("encoding the synthesized manifest")?;
        let digest = Digest::sha256(&manifest_bytes);
        content.write_blob(&ingest_ref(DOCKER_MANIFEST_FILE), &digest, &manifest_bytes)?;
        let target = descriptor(image::DOCKER_MANIFEST, digest, manifest_bytes.len() as u64);

        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            named.unnamed.push(format!("config {:?}", entry.config));
        }
        for tag in tags {
            named.add(normalize(&tag)?, target.clone());
        }
    }
    named.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "docker.io/library/busybox:latest";
    const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(&dir.path().join("content")).unwrap();
        (dir, store)
    }

    /// An uncompressed layer holding one file.
    fn layer_tar(file: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, file, body).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn put(store: &ContentStore, media_type: &str, data: &[u8]) -> Descriptor {
        let d = Digest::sha256(data);
        store.write_blob("test", &d, data).unwrap();
        descriptor(media_type, d, data.len() as u64)
    }

    fn config_json(diff_ids: &[Digest]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": Platform::host().architecture,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// An OCI manifest with one gzip layer and a config whose diff_id matches it.
    fn put_image(store: &ContentStore, body: &[u8]) -> Descriptor {
        let tar = layer_tar("hello", body);
        let layer = put(store, OCI_LAYER_GZIP, &gzip(&tar));
        let config = put(store, image::OCI_CONFIG, &config_json(&[Digest::sha256(&tar)]));
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(image::OCI_MANIFEST.into()),
            config,
            layers: vec![layer],
            annotations: None,
        };
        put(store, image::OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap())
    }

    fn blob(store: &ContentStore, d: &Digest) -> Vec<u8> {
        store.read_all(d, u64::MAX).unwrap()
    }

    /// Every blob of `from` is in `to`, byte for byte.
    fn assert_same_blobs(from: &ContentStore, to: &ContentStore) {
        for info in from.list().unwrap() {
            assert_eq!(blob(from, &info.digest), blob(to, &info.digest), "{}", info.digest);
        }
    }

    /// The archive's entries, by path.
    fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in tar::Archive::new(archive).entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(path, data);
        }
        out
    }

    fn export_to_vec(store: &ContentStore, images: &[(String, Descriptor)], format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        export(store, images, format, None, &mut out).unwrap();
        out
    }

    #[test]
    fn docker_format_round_trips_with_docker_manifest_json() {
        let (_a, src) = store();
        let target = put_image(&src, b"hi");
        let images =
            vec![(NAME.to_string(), target.clone()), ("docker.io/library/busybox:1".to_string(), target.clone())];
        let archive = export_to_vec(&src, &images, Format::Docker);

        let files = entries(&archive);
        let manifest: Vec<DockerEntry> = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest.len(), 1, "one entry per image, its names together");
        assert_eq!(manifest[0].repo_tags, Some(vec!["busybox:latest".to_string(), "busybox:1".to_string()]));
        let m: Manifest = serde_json::from_slice(&blob(&src, &target.digest)).unwrap();
        assert_eq!(manifest[0].config, blob_path(&m.config.digest));
        assert_eq!(manifest[0].layers, vec![blob_path(&m.layers[0].digest)]);
        let index: Index = serde_json::from_slice(&files["index.json"]).unwrap();
        let annotations = index.manifests[0].annotations.clone().unwrap();
        assert_eq!(annotations[ANNOTATION_IMAGE_NAME], NAME);
        assert_eq!(annotations[ANNOTATION_REF_NAME], "latest");
        assert_eq!(files["oci-layout"], OCI_LAYOUT.as_bytes());
        assert_eq!(files.keys().filter(|p| p.starts_with("blobs/sha256/") && p.len() > 13).count(), 3);

        let (_b, dst) = store();
        let mut imported = import(&dst, archive.as_slice()).unwrap();
        imported.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want = images.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(imported, want);
        assert_same_blobs(&src, &dst);
        let resolved = image::resolve(&dst, &imported[0].1, &Platform::host()).unwrap();
        assert_eq!(resolved.manifest.layers.len(), 1);
    }

    #[test]
    fn oci_format_round_trips() {
        let (_a, src) = store();
        let target = put_image(&src, b"oci");
        let images = vec![(NAME.to_string(), target)];
        let archive = export_to_vec(&src, &images, Format::Oci);
        assert!(!entries(&archive).contains_key("manifest.json"));

        let (_b, dst) = store();
        assert_eq!(import(&dst, archive.as_slice()).unwrap(), images);
        assert_same_blobs(&src, &dst);
    }

    /// An index with the host's manifest present and another platform's absent, as a pull leaves.
    fn put_index(store: &ContentStore) -> (Descriptor, Descriptor) {
        let host = put_image(store, b"host");
        let absent = descriptor(image::OCI_MANIFEST, Digest::sha256(b"elsewhere"), 9);
        let index = Index {
            schema_version: 2,
            media_type: Some(image::OCI_INDEX.into()),
            manifests: vec![
                Descriptor { platform: Some(Platform::host()), ..host.clone() },
                Descriptor {
                    platform: Some(Platform { architecture: "s390x".into(), os: "linux".into(), variant: None }),
                    ..absent
                },
            ],
            annotations: None,
        };
        (put(store, image::OCI_INDEX, &serde_json::to_vec(&index).unwrap()), host)
    }

    #[test]
    fn oci_format_keeps_the_index_with_its_present_children() {
        let (_a, src) = store();
        let (index, _) = put_index(&src);
        let images = vec![(NAME.to_string(), index)];
        let archive = export_to_vec(&src, &images, Format::Oci);

        let (_b, dst) = store();
        assert_eq!(import(&dst, archive.as_slice()).unwrap(), images);
        assert_same_blobs(&src, &dst);

        let mut out = Vec::new();
        let other = Platform { architecture: "s390x".into(), os: "linux".into(), variant: None };
        let err = export(&src, &images, Format::Oci, Some(&other), &mut out).unwrap_err();
        assert!(format!("{err:#}").contains("not complete"), "{err:#}");
    }

    #[test]
    fn docker_format_exports_the_platform_manifest_of_an_index() {
        let (_a, src) = store();
        let (index, host) = put_index(&src);
        let archive = export_to_vec(&src, &[(NAME.to_string(), index.clone())], Format::Docker);
        assert!(!entries(&archive).contains_key(&blob_path(&index.digest)));

        let (_b, dst) = store();
        let imported = import(&dst, archive.as_slice()).unwrap();
        assert_eq!(imported, vec![(NAME.to_string(), host)]);
    }

    /// A tar with exactly these entries: (path, Some(data)) files, (path, None) directories.
    fn raw_tar(files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Written raw: the builder itself refuses `..` and absolute names.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        for (path, target) in symlinks {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o777);
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, path, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn docker_20_10_archive_imports_with_a_synthesized_manifest() {
        let layer1 = layer_tar("a", b"one");
        let layer2 = gzip(&layer_tar("b", b"two"));
        let diff2 = Digest::sha256(&layer_tar("b", b"two"));
        let config1 = config_json(&[Digest::sha256(&layer1)]);
        let config2 = config_json(&[Digest::sha256(&layer1), diff2]);
        let (c1, c2) = (Digest::sha256(&config1), Digest::sha256(&config2));
        let manifest = serde_json::json!([
            {"Config": format!("{}.json", c1.hex()), "RepoTags": ["busybox:latest"], "Layers": ["1111/layer.tar"]},
            {"Config": format!("{}.json", c2.hex()), "RepoTags": ["example.com/app:2"],
             "Layers": ["2222/layer.tar", "3333/layer.tar"]},
            {"Config": format!("{}.json", c1.hex()), "RepoTags": null, "Layers": ["1111/layer.tar"]},
        ]);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let (config1_path, config2_path) = (format!("{}.json", c1.hex()), format!("{}.json", c2.hex()));
        let archive = raw_tar(
            &[
                ("1111/VERSION", b"1.0"),
                ("1111/json", b"{}"),
                ("1111/layer.tar", &layer1),
                ("3333/layer.tar", &layer2),
                (&config1_path, &config1),
                (&config2_path, &config2),
                ("manifest.json", &manifest),
                ("repositories", b"{}"),
            ],
            // docker 20.10 links a layer shared by two images.
            &[("2222/layer.tar", "../1111/layer.tar")],
        );

        let (_t, dst) = store();
        let imported = import(&dst, archive.as_slice()).unwrap();
        let names: Vec<&str> = imported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [NAME, "example.com/app:2"]);

        let target = &imported[1].1;
        assert_eq!(target.media_type, image::DOCKER_MANIFEST);
        let m: Manifest = serde_json::from_slice(&blob(&dst, &target.digest)).unwrap();
        assert_eq!(m.media_type.as_deref(), Some(image::DOCKER_MANIFEST));
        assert_eq!(m.config, descriptor(image::DOCKER_CONFIG, c2, config2.len() as u64));
        assert_eq!(
            m.layers,
            [
                descriptor(image::DOCKER_LAYER, Digest::sha256(&layer1), layer1.len() as u64),
                descriptor(image::DOCKER_LAYER_GZIP, Digest::sha256(&layer2), layer2.len() as u64),
            ]
        );
        assert_eq!(blob(&dst, &m.layers[1].digest), layer2);
        let resolved = image::resolve(&dst, target, &Platform::host()).unwrap();
        assert_eq!(resolved.config_bytes, config2);
        assert!(dst.ingests().unwrap().is_empty());
    }

    fn import_err(archive: &[u8]) -> String {
        let (_t, dst) = store();
        let err = import(&dst, archive).unwrap_err();
        assert!(err.chain().any(|e| e.is::<InvalidArchive>()), "not an InvalidArchive: {err:#}");
        assert!(dst.ingests().unwrap().is_empty());
        format!("{err:#}")
    }

    #[test]
    fn hostile_entries_are_refused() {
        let err = import_err(&raw_tar(&[("../x", b"x")], &[]));
        assert!(err.contains("\"..\" is refused"), "{err}");
        let err = import_err(&raw_tar(&[("/abs", b"x")], &[]));
        assert!(err.contains("absolute paths are refused"), "{err}");
        let err = import_err(&raw_tar(&[], &[("evil", "../../etc/passwd")]));
        assert!(err.contains("leaves the archive"), "{err}");
        let err = import_err(&raw_tar(&[("blobs/sha256/nothex", b"x")], &[]));
        assert!(err.contains("not a blob"), "{err}");
    }

    #[test]
    fn blob_not_matching_its_name_is_refused_and_not_stored() {
        let claimed = Digest::sha256(b"what the name says");
        let (_t, dst) = store();
        let err = import(&dst, raw_tar(&[(&blob_path(&claimed), b"something else")], &[]).as_slice()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("does not match its name") && msg.contains(&Digest::sha256(b"something else").to_string()),
            "{msg}"
        );
        assert!(dst.list().unwrap().is_empty());
        assert!(dst.ingests().unwrap().is_empty());
    }

    #[test]
    fn oversized_json_is_refused() {
        let big = vec![b' '; 5 << 20];
        let err = import_err(&raw_tar(&[("index.json", &big)], &[]));
        assert!(err.contains("index.json") && err.contains("more than the 4194304 allowed"), "{err}");
    }

    #[test]
    fn incomplete_or_nameless_layouts_are_refused() {
        let (_a, src) = store();
        let target = put_image(&src, b"x");
        let archive = export_to_vec(&src, &[(NAME.to_string(), target.clone())], Format::Oci);
        let mut files = entries(&archive);

        // Only a tag: no repository to name the image by.
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": image::OCI_MANIFEST, "digest": target.digest, "size": target.size,
             "annotations": {ANNOTATION_REF_NAME: "latest"}}]});
        files.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
        let as_tar = |files: &BTreeMap<String, Vec<u8>>| {
            let list: Vec<(&str, &[u8])> =
                files.iter().filter(|(p, _)| !p.ends_with('/')).map(|(p, d)| (p.as_str(), d.as_slice())).collect();
            raw_tar(&list, &[])
        };
        let err = import_err(&as_tar(&files));
        assert!(err.contains("have no names") && err.contains("tag \"latest\""), "{err}");

        // A full reference in ref.name is a name (skopeo writes these).
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": image::OCI_MANIFEST, "digest": target.digest, "size": target.size,
             "annotations": {ANNOTATION_REF_NAME: "busybox:latest"}}]});
        files.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
        let (_b, dst) = store();
        assert_eq!(import(&dst, as_tar(&files).as_slice()).unwrap(), vec![(NAME.to_string(), target.clone())]);

        // A layer missing.
        let m: Manifest = serde_json::from_slice(&blob(&src, &target.digest)).unwrap();
        files.remove(&blob_path(&m.layers[0].digest));
        let err = import_err(&as_tar(&files));
        assert!(err.contains("lacks blob") && err.contains(&m.layers[0].digest.to_string()), "{err}");
    }

    #[test]
    fn not_an_archive_is_refused() {
        let err = import_err(&raw_tar(&[("hello.txt", b"hi")], &[]));
        assert!(err.contains("neither index.json"), "{err}");
        let err = import_err(b"this is not a tar file, just some bytes that go on for a while..........");
        assert!(!err.is_empty());
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("".parse::<Format>().unwrap(), Format::Docker);
        assert_eq!("docker".parse::<Format>().unwrap(), Format::Docker);
        assert_eq!("oci".parse::<Format>().unwrap(), Format::Oci);
        assert!("tar".parse::<Format>().is_err());
    }
}
