//! berthd and the `berth` CLI against a real registry (Debian's docker-registry on 127.0.0.1):
//! pull, unpack, push, platforms, whiteouts, hostile and tampered layers, auth, a daemon killed
//! mid-pull, and the errors a user sees. Unpacked snapshots are compared with what umoci unpacks
//! from the same OCI layout; hand-made layers are plain ustar streams written here.

use berth_integration::engines::berthd::{berth_bin, walk, Berthd};
use berth_integration::engines::process::{run, run_ok, Background};
use berth_integration::engines::registry::{busybox_image, Registry};
use berthd::store::digest::Digest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const UMOCI: &str = "/usr/bin/umoci";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation an OCI layout's index.json names a tag with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

// ---------------------------------------------------------------------------------------------
// What berthd shows and stores.
// ---------------------------------------------------------------------------------------------

/// `berth images --format json`, one object per row.
fn images(b: &Berthd) -> Vec<Value> {
    b.ok(&["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("images line is not JSON ({e}): {l}")))
        .collect()
}

/// `berth image inspect NAME`, the one object of its array.
fn inspect(b: &Berthd, name: &str) -> Value {
    let out = b.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {out}"));
    v[0].clone()
}

/// Names of everything directly under `dir`, sorted (empty if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Everything under `<root>/snapshots` (committed snapshots are numeric ids).
fn snapshot_entries(b: &Berthd) -> Vec<String> {
    entries(&b.root().join("snapshots"))
}

/// The `fs` dirs of the snapshots, oldest (lowest id) first: the layers of a fresh pull,
/// bottom-up. Panics on anything that is not a committed snapshot dir.
fn snapshot_layers(b: &Berthd) -> Vec<PathBuf> {
    let mut ids: Vec<u64> = snapshot_entries(b)
        .iter()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("unexpected entry {n:?} under snapshots/")))
        .collect();
    ids.sort_unstable();
    ids.iter().map(|id| b.root().join("snapshots").join(id.to_string()).join("fs")).collect()
}

/// Hex names of the committed sha256 blobs.
fn blobs(b: &Berthd) -> Vec<String> {
    entries(&b.root().join("content/blobs/sha256"))
}

/// The first 12 hex digits of a `sha256:…` digest: docker's short IMAGE ID.
fn short_id(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    &hex[..12]
}

/// Asserts `b` holds no image and no snapshot (a failed pull left nothing named or unpacked).
fn assert_no_image(b: &Berthd, after: &str) {
    let listed = images(b);
    assert!(listed.is_empty(), "after {after}, `berth images` lists {listed:?}");
    let left = snapshot_entries(b);
    assert!(left.is_empty(), "after {after}, snapshots left under {}: {left:?}", b.root().display());
}

/// Asserts `out` failed and its stderr contains every one of `needles` (case-insensitive).
fn assert_failed_with(out: &berth_integration::engines::process::Outcome, needles: &[&str]) {
    assert_ne!(out.code, 0, "expected a failure: {out}");
    let stderr = out.stderr.to_lowercase();
    for needle in needles {
        assert!(stderr.contains(&needle.to_lowercase()), "stderr lacks {needle:?}: {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystem trees, compared by what a container would see.
// ---------------------------------------------------------------------------------------------

/// One path of a tree: type, permission bits, owner, symlink target, content digest.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    link: Option<PathBuf>,
    sha256: Option<String>,
}

/// Every path under `dir` (not `dir` itself) with its [`Node`]; times are not compared.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Node> {
    walk(dir)
        .into_iter()
        .map(|rel| {
            let path = dir.join(&rel);
            let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
            let t = meta.file_type();
            let kind = if t.is_dir() {
                "dir".to_string()
            } else if t.is_file() {
                "file".to_string()
            } else if t.is_symlink() {
                "symlink".to_string()
            } else if t.is_char_device() {
                format!("char {:#x}", meta.rdev())
            } else if t.is_block_device() {
                format!("block {:#x}", meta.rdev())
            } else if t.is_fifo() {
                "fifo".to_string()
            } else {
                "socket".to_string()
            };
            let link = t.is_symlink().then(|| std::fs::read_link(&path).expect("readlink"));
            let sha256 = t.is_file().then(|| {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                Digest::sha256(&bytes).to_string()
            });
            let node = Node { kind, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid(), link, sha256 };
            (rel, node)
        })
        .collect()
}

/// Asserts the trees under `got` and `want` are the same, listing the paths that differ.
fn assert_same_tree(got: &Path, want: &Path) {
    let (g, w) = (tree(got), tree(want));
    assert!(!w.is_empty(), "reference tree {} is empty", want.display());
    let mut diffs = Vec::new();
    for path in g.keys().chain(w.keys().filter(|p| !g.contains_key(*p))) {
        match (g.get(path), w.get(path)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => diffs.push(format!("  {}: berthd {a:?}, umoci {b:?}", path.display())),
        }
    }
    let shown: Vec<&String> = diffs.iter().take(20).collect();
    assert!(
        diffs.is_empty(),
        "{} paths differ between {} (berthd) and {} (umoci):\n{}",
        diffs.len(),
        got.display(),
        want.display(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// `umoci raw unpack` of `layout:tag`: the image's rootfs as umoci builds it, in `<dir>/rootfs`.
fn umoci_rootfs(layout: &Path, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("berth-it-umoci-").tempdir().expect("umoci tempdir");
    run_ok(
        Command::new(UMOCI)
            .args(["raw", "unpack", "--image"])
            .arg(image_arg(layout, tag))
            .arg(dir.path().join("rootfs")),
    );
    dir
}

/// umoci's `--image` argument.
fn image_arg(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", layout.display())
}

/// A read-only overlay of snapshot `fs` dirs (bottom-up in `layers`) on a temporary mountpoint,
/// unmounted on drop: what a container of the image sees.
struct Overlay {
    target: tempfile::TempDir,
}

impl Overlay {
    fn mount(layers: &[PathBuf]) -> Overlay {
        assert!(layers.len() >= 2, "a read-only overlay needs two lower dirs, got {layers:?}");
        let target = tempfile::Builder::new().prefix("berth-it-overlay-").tempdir().expect("overlay mountpoint");
        let lowers: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
        run_ok(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("ro,lowerdir={}", lowers.join(":")))
                .arg(target.path()),
        );
        Overlay { target }
    }

    fn path(&self) -> &Path {
        self.target.path()
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let Ok(path) = std::ffi::CString::new(self.target.path().as_os_str().as_bytes()) else { return };
        // SAFETY: path is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!("teardown: umount {}: {}", self.target.path().display(), std::io::Error::last_os_error());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OCI layouts assembled by the tests.
// ---------------------------------------------------------------------------------------------

/// An OCI image layout in a temporary directory that a test adds blobs, images and tags to.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    /// A copy of the busybox layout (tags `latest` and `pause`).
    fn busybox() -> Layout {
        let dir = tempfile::Builder::new().prefix("berth-it-layout-").tempdir().expect("layout tempdir");
        run_ok(Command::new("cp").arg("-a").arg(busybox_image().layout()).arg(dir.path().join("oci")));
        Layout { dir }
    }

    /// The layout directory (for umoci's and skopeo's `oci:` references).
    fn path(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    /// A scratch directory beside the layout, removed with it.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.path().join("blobs/sha256").join(&digest["sha256:".len()..])
    }

    /// Stores `bytes` as a blob; its descriptor.
    fn put_blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = Digest::sha256(bytes).to_string();
        std::fs::write(self.blob_path(&digest), bytes).expect("writing a layout blob");
        json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
    }

    fn put_json(&self, media_type: &str, v: &Value) -> Value {
        self.put_blob(media_type, &serde_json::to_vec(v).expect("serializing JSON"))
    }

    fn json(&self, digest: &str) -> Value {
        let bytes = std::fs::read(self.blob_path(digest)).unwrap_or_else(|e| panic!("reading blob {digest}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("blob {digest} is not JSON: {e}"))
    }

    fn index(&self) -> Value {
        let text = std::fs::read_to_string(self.path().join("index.json")).expect("reading index.json");
        serde_json::from_str(&text).expect("index.json is JSON")
    }

    /// The descriptor index.json gives `tag`.
    fn tagged(&self, tag: &str) -> Value {
        let index = self.index();
        let found = index["manifests"].as_array().and_then(|m| m.iter().find(|d| d["annotations"][REF_NAME] == tag));
        found.cloned().unwrap_or_else(|| panic!("no tag {tag} in {index}"))
    }

    /// The image manifest tagged `tag` and its config.
    fn manifest_and_config(&self, tag: &str) -> (Value, Value) {
        let manifest = self.json(self.tagged(tag)["digest"].as_str().expect("tag digest"));
        let config = self.json(manifest["config"]["digest"].as_str().expect("config digest"));
        (manifest, config)
    }

    /// Points `tag` at `descriptor` in index.json.
    fn set_tag(&self, tag: &str, descriptor: &Value) {
        let mut index = self.index();
        let manifests = index["manifests"].as_array_mut().expect("index.json manifests");
        manifests.retain(|d| d["annotations"][REF_NAME] != tag);
        let mut d = descriptor.clone();
        d["annotations"] = json!({ REF_NAME: tag });
        manifests.push(d);
        std::fs::write(self.path().join("index.json"), index.to_string()).expect("writing index.json");
    }

    /// Writes image `tag`: the layers of `base`'s image (none without a base) plus `layers`
    /// (uncompressed tar streams, stored gzip'ed), with `base`'s config (or a bare one for this
    /// host) listing the matching diff_ids. Returns the manifest descriptor.
    fn add_image(&self, tag: &str, base: Option<&str>, layers: &[Vec<u8>]) -> Value {
        let (mut manifest, mut config) = match base {
            Some(base) => self.manifest_and_config(base),
            None => (
                json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [] }),
                json!({ "architecture": host_arch(), "os": "linux", "config": {},
                        "rootfs": { "type": "layers", "diff_ids": [] } }),
            ),
        };
        for tar in layers {
            let layer = self.put_blob(OCI_LAYER_GZIP, &self.gzip(tar));
            manifest["layers"].as_array_mut().expect("manifest layers").push(layer);
            let diff_id = Digest::sha256(tar).to_string();
            config["rootfs"]["diff_ids"].as_array_mut().expect("config diff_ids").push(json!(diff_id));
        }
        manifest["config"] = self.put_json(OCI_CONFIG, &config);
        let descriptor = self.put_json(OCI_MANIFEST, &manifest);
        self.set_tag(tag, &descriptor);
        descriptor
    }

    /// `gzip -n` of `bytes`.
    fn gzip(&self, bytes: &[u8]) -> Vec<u8> {
        let plain = self.scratch("layer.tar");
        std::fs::write(&plain, bytes).expect("writing a layer tar");
        run_ok(Command::new("gzip").args(["-n", "-f"]).arg(&plain));
        let packed = self.scratch("layer.tar.gz");
        let gz = std::fs::read(&packed).expect("reading the gzip'ed layer");
        std::fs::remove_file(&packed).expect("removing the gzip'ed layer");
        gz
    }

    /// `umoci unpack`s `from`, lets `edit` change the rootfs, and `umoci repack`s it as `to`.
    fn umoci_edit(&self, from: &str, to: &str, edit: impl FnOnce(&Path)) {
        let bundle = self.scratch(&format!("bundle-{to}"));
        run_ok(Command::new(UMOCI).args(["unpack", "--image"]).arg(image_arg(&self.path(), from)).arg(&bundle));
        edit(&bundle.join("rootfs"));
        run_ok(Command::new(UMOCI).args(["repack", "--image"]).arg(image_arg(&self.path(), to)).arg(&bundle));
        std::fs::remove_dir_all(&bundle).expect("removing the umoci bundle");
    }
}

/// This host's architecture as OCI platforms name it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// One entry of a hand-made layer tar.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A ustar stream of `entries` (root-owned, fixed mtime), with the end-of-archive blocks.
fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, kind, mode, link, data): (&str, u8, u32, &str, &[u8]) = match *entry {
            Entry::File(name, data) => (name, b'0', 0o644, "", data),
            Entry::Dir(name) => (name, b'5', 0o755, "", &[]),
            Entry::Symlink(name, target) => (name, b'2', 0o777, target, &[]),
            Entry::Hardlink(name, target) => (name, b'1', 0o644, target, &[]),
        };
        assert!(name.len() <= 100 && link.len() <= 100, "ustar names are at most 100 bytes: {name} {link}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `v` in octal, zero-padded and NUL-terminated, filling `field`.
fn octal(field: &mut [u8], v: u64) {
    let text = format!("{v:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn pulled_busybox_is_listed_unpacked_like_umoci_and_removed_without_trace() {
    let registry = Registry::start();
    let pushed = registry.push_busybox();
    let layout = Layout::busybox();
    let manifest_digest = layout.tagged("latest")["digest"].as_str().expect("manifest digest").to_string();
    assert_eq!(pushed, manifest_digest, "the registry holds the layout's manifest unchanged");
    let (manifest, _) = layout.manifest_and_config("latest");
    let config_digest = config_digest_of(&manifest);
    let b = Berthd::start();
    let name = format!("{}/busybox:latest", registry.host());

    let out = b.ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "first pull: {out}");
    let listed = images(&b);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["Repository"], format!("{}/busybox", registry.host()));
    assert_eq!(listed[0]["Tag"], "latest");
    assert_eq!(listed[0]["ID"], short_id(&config_digest));
    assert_eq!(listed[0]["Digest"], manifest_digest);

    let layers = snapshot_layers(&b);
    assert_eq!(layers.len(), 1, "one snapshot for a one-layer image: {layers:?}");
    let reference = umoci_rootfs(&layout.path(), "latest");
    assert_same_tree(&layers[0], &reference.path().join("rootfs"));

    let (blobs_before, snapshots_before) = (blobs(&b), snapshot_entries(&b));
    let again = b.ok(&["pull", &name]);
    assert!(again.contains("Image is up to date"), "second pull: {again}");
    assert_eq!(blobs(&b), blobs_before, "a second pull changed the content store");
    assert_eq!(snapshot_entries(&b), snapshots_before, "a second pull changed the snapshots");
    assert_eq!(images(&b).len(), 1);

    b.ok(&["rmi", &name]);
    assert_no_image(&b, "rmi");
    assert_eq!(blobs(&b), Vec::<String>::new(), "rmi left blobs in the content store");
}

#[test]
fn pushed_copy_pulls_into_another_daemon_with_the_same_manifest_digest() {
    let registry = Registry::start();
    let original = registry.push_busybox();
    let source = Berthd::start();
    let name = format!("{}/busybox:latest", registry.host());
    let copy = format!("{}/copy:v1", registry.host());
    source.ok(&["pull", &name]);
    source.ok(&["tag", &name, &copy]);
    source.ok(&["push", &copy]);
    assert_eq!(registry.digest_of("copy:v1"), original, "the registry's digest of the pushed copy");

    let other = Berthd::start();
    other.ok(&["pull", &copy]);
    let listed = images(&other);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["Digest"], original);
    let inspected = inspect(&other, &copy);
    assert_eq!(inspected["RepoDigests"], json!([format!("{}/copy@{original}", registry.host())]));
}

#[test]
fn layers_with_whiteouts_and_opaque_dirs_overlay_to_what_umoci_unpacks() {
    let layout = Layout::busybox();
    // Layer 2 by umoci: deletions, /etc replaced, new files.
    layout.umoci_edit("latest", "v2", |rootfs| {
        std::fs::remove_file(rootfs.join("bin/vi")).expect("removing bin/vi");
        std::fs::remove_dir_all(rootfs.join("etc")).expect("removing etc");
        std::fs::create_dir(rootfs.join("etc")).expect("recreating etc");
        std::fs::write(rootfs.join("etc/hostname"), "layered\n").expect("writing etc/hostname");
        std::fs::create_dir_all(rootfs.join("opt/app")).expect("creating opt/app");
        std::fs::write(rootfs.join("opt/app/old.txt"), "from layer 2\n").expect("writing opt/app/old.txt");
        std::os::unix::fs::symlink("app/old.txt", rootfs.join("opt/link")).expect("symlink opt/link");
    });
    // Layer 3 by hand: an explicit opaque marker and a whiteout, which umoci does not write.
    let layer3 = tar(&[
        Entry::Dir("opt/app/"),
        Entry::File("opt/app/.wh..wh..opq", b""),
        Entry::File("opt/app/fresh.txt", b"from layer 3\n"),
        Entry::File("bin/.wh.ls", b""),
    ]);
    layout.add_image("v3", Some("v2"), &[layer3]);

    let registry = Registry::start();
    registry.push_oci(&layout.path(), "v3", "layers:v3");
    let b = Berthd::start();
    b.ok(&["pull", &format!("{}/layers:v3", registry.host())]);

    let layers = snapshot_layers(&b);
    assert_eq!(layers.len(), 3, "{layers:?}");
    let merged = Overlay::mount(&layers);
    let root = merged.path();
    let absent = |rel: &str| std::fs::symlink_metadata(root.join(rel)).is_err();
    assert!(absent("bin/vi"), "bin/vi, deleted by layer 2, is visible");
    assert!(absent("bin/ls"), "bin/ls, whited out by layer 3, is visible");
    assert!(root.join("bin/busybox").is_file(), "bin/busybox stays");
    assert_eq!(entries(&root.join("etc")), ["hostname"], "etc holds only its new content");
    assert_eq!(entries(&root.join("opt/app")), ["fresh.txt"], "opaque opt/app hides layer 2's files");
    let reference = umoci_rootfs(&layout.path(), "v3");
    assert_same_tree(root, &reference.path().join("rootfs"));
}

#[test]
fn platform_is_chosen_from_an_index_and_a_missing_one_is_refused() {
    let layout = Layout::busybox();
    let (manifest, config) = layout.manifest_and_config("latest");
    let other_arch = if host_arch() == "arm64" { "amd64" } else { "arm64" };
    let mut other_config = config.clone();
    other_config["architecture"] = json!(other_arch);
    let mut other_manifest = manifest.clone();
    other_manifest["config"] = layout.put_json(OCI_CONFIG, &other_config);
    let other_desc = layout.put_json(OCI_MANIFEST, &other_manifest);
    let mut host_desc = layout.tagged("latest");
    host_desc.as_object_mut().expect("descriptor").remove("annotations");
    let platform = |arch: &str| json!({ "architecture": arch, "os": "linux" });
    let mut entries = [host_desc, other_desc];
    entries[0]["platform"] = platform(host_arch());
    entries[1]["platform"] = platform(other_arch);
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
    layout.set_tag("multi", &layout.put_json(OCI_INDEX, &index));

    let registry = Registry::start();
    registry.push_oci_index(&layout.path(), "multi", "multi:latest");
    let name = format!("{}/multi:latest", registry.host());
    let host_config = config_digest_of(&manifest);
    let other_config_digest = config_digest_of(&other_manifest);
    assert_ne!(host_config, other_config_digest);

    let b = Berthd::start();
    b.ok(&["pull", &name]);
    let inspected = inspect(&b, &name);
    assert_eq!(inspected["Architecture"], host_arch());
    assert_eq!(inspected["Id"], host_config);
    assert_eq!(images(&b)[0]["ID"], short_id(&host_config));

    let other = Berthd::start();
    let refused = other.berth(&["pull", "--platform", "linux/s390x", &name]);
    assert_failed_with(&refused, &["s390x", &format!("linux/{}", host_arch()), &format!("linux/{other_arch}")]);
    assert_no_image(&other, "a pull for a platform the index lacks");

    other.ok(&["pull", "--platform", &format!("linux/{other_arch}"), &name]);
    let listed = images(&other);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["ID"], short_id(&other_config_digest), "{listed:?}");
    let inspected = inspect(&other, &name);
    assert_eq!(inspected["Architecture"], other_arch);
    assert_eq!(inspected["Id"], other_config_digest);
}

fn config_digest_of(manifest: &Value) -> String {
    manifest["config"]["digest"].as_str().expect("config digest").to_string()
}

#[test]
fn hostile_layers_are_refused_and_leave_nothing_behind() {
    let sentinel = tempfile::Builder::new().prefix("berth-it-sentinel-").tempdir().expect("sentinel dir");
    let sentinel_path = sentinel.path().display().to_string();
    let passwd_links = std::fs::metadata("/etc/passwd").expect("stat /etc/passwd").nlink();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("escape", tar(&[Entry::File("../escape", b"out of the layer\n")]), "../escape"),
        (
            "symlink",
            tar(&[Entry::Symlink("evil", &sentinel_path), Entry::File("evil/owned", b"through a symlink\n")]),
            "evil/owned",
        ),
        ("hardlink", tar(&[Entry::Hardlink("passwd", "/etc/passwd")]), "passwd"),
    ];
    let layout = Layout::busybox();
    let registry = Registry::start();
    let b = Berthd::start();
    for (case, layer, entry) in cases {
        let repository = format!("evil-{case}:latest");
        layout.add_image(case, None, &[layer]);
        registry.push_oci(&layout.path(), case, &repository);
        let out = b.berth(&["pull", &format!("{}/{repository}", registry.host())]);
        assert_failed_with(&out, &["layer entry", entry]);
        assert_no_image(&b, &format!("the {case} layer"));
        let strays: Vec<PathBuf> = walk(b.dir())
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "escape" || n == "owned"))
            .collect();
        assert!(strays.is_empty(), "{case}: files of the layer left under berthd's dir: {strays:?}");
        assert_eq!(entries(sentinel.path()), Vec::<String>::new(), "{case}: the sentinel dir was written to");
        assert!(!sentinel.path().parent().expect("parent").join("escape").exists());
        let links = std::fs::metadata("/etc/passwd").expect("stat /etc/passwd").nlink();
        assert_eq!(links, passwd_links, "{case}: /etc/passwd got a new link");
    }
}

#[test]
fn a_layer_tampered_with_in_the_registry_fails_its_digest_check() {
    let registry = Registry::start();
    registry.push_oci(&busybox_image().layout(), "latest", "tampered:latest");
    let (manifest, _) = Layout::busybox().manifest_and_config("latest");
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer digest").to_string();
    let hex = &layer["sha256:".len()..];
    let data = registry.dir().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data");
    let mut bytes =
        std::fs::read(&data).unwrap_or_else(|e| panic!("reading the registry's blob {}: {e}", data.display()));
    for byte in bytes.iter_mut().skip(64).step_by(997) {
        *byte ^= 0xff;
    }
    std::fs::write(&data, &bytes).expect("overwriting the registry's blob");

    let b = Berthd::start();
    let out = b.berth(&["pull", &format!("{}/tampered:latest", registry.host())]);
    assert_failed_with(&out, &["digest mismatch"]);
    assert_no_image(&b, "a pull of a tampered layer");
    assert!(!blobs(&b).iter().any(|h| h == hex), "the tampered layer was committed as {layer}");
}

#[test]
fn a_registry_requiring_auth_is_denied_without_credentials_and_pulled_with_an_auth_file() {
    let registry = Registry::start_with_auth("u", "p");
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());

    let anonymous = Berthd::start();
    let out = anonymous.berth(&["pull", &name]);
    assert_failed_with(&out, &["denied", "authentication"]);
    assert_no_image(&anonymous, "a denied pull");

    let dir = tempfile::tempdir().expect("auth file dir");
    let auth_file = dir.path().join("config.json");
    let auth = run_ok(Command::new("sh").args(["-c", "printf %s \"$0\" | base64 -w0", "u:p"]));
    let config = json!({ "auths": { registry.host(): { "auth": auth.trim() } } });
    std::fs::write(&auth_file, config.to_string()).expect("writing the auth file");
    let authed = Berthd::start_with(&["--auth-file", auth_file.to_str().expect("utf-8 path")]);
    authed.ok(&["pull", &name]);
    assert_eq!(images(&authed).len(), 1);
}

#[test]
fn a_pull_interrupted_by_kill9_completes_after_restart() {
    let layout = Layout::busybox();
    layout.umoci_edit("latest", "big", |rootfs| {
        let mut random = std::fs::File::open("/dev/urandom").expect("opening /dev/urandom").take(64 << 20);
        let mut file = std::fs::File::create(rootfs.join("big.bin")).expect("creating big.bin");
        std::io::copy(&mut random, &mut file).expect("writing big.bin");
    });
    let registry = Registry::start();
    registry.push_oci(&layout.path(), "big", "big:latest");
    let name = format!("{}/big:latest", registry.host());

    let mut b = Berthd::start();
    let ingest = b.root().join("content/ingest");
    let mut pull = Background::spawn(&mut b.berth_cmd(&["pull", &name]));
    pull.wait_for("a partial download of more than 4 MiB", Duration::from_secs(60), || {
        walk(&ingest).iter().any(|p| {
            p.file_name().is_some_and(|n| n == "data")
                && std::fs::metadata(ingest.join(p)).is_ok_and(|m| m.len() > 4 << 20)
        })
    });
    b.kill9();
    let interrupted = pull.wait();
    assert_ne!(interrupted.code, 0, "the pull whose daemon died reported success: {interrupted}");

    b.restart();
    b.ok(&["pull", &name]);
    let listed: Vec<Value> =
        images(&b).into_iter().filter(|i| i["Repository"] == format!("{}/big", registry.host())).collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let inspected = inspect(&b, &name);
    assert_eq!(inspected["RootFS"]["Layers"].as_array().map(Vec::len), Some(2), "{inspected}");
    assert_eq!(snapshot_layers(&b).len(), 2, "one committed snapshot per layer, nothing else");
}

#[test]
fn pulls_of_unknown_or_unreachable_images_fail_with_what_went_wrong() {
    let registry = Registry::start();
    let b = Berthd::start();
    let unknown = b.berth(&["pull", &format!("{}/nope:latest", registry.host())]);
    assert_ne!(unknown.code, 0, "{unknown}");
    let stderr = unknown.stderr.to_lowercase();
    assert!(stderr.contains("manifest unknown") || stderr.contains("not found"), "{unknown}");
    let unreachable = b.berth(&["pull", "127.0.0.1:1/x"]);
    assert_failed_with(&unreachable, &["cannot reach"]);
    assert_no_image(&b, "failed pulls");
}

#[test]
fn berth_without_a_daemon_says_to_start_berthd() {
    let out = run(Command::new(berth_bin()).args(["-H", "unix:///nonexistent.sock", "images"]));
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("is berthd running"), "{out}");
}

#[test]
fn a_second_daemon_on_the_same_root_is_refused_and_sigterm_removes_the_socket() {
    let mut b = Berthd::start();
    let second = run(&mut b.command());
    assert_failed_with(&second, &["another berthd"]);
    assert!(b.socket().exists(), "the refused daemon removed the running one's socket");
    b.ok(&["images"]);
    b.stop();
    assert!(!b.socket().exists(), "berthd left its socket after SIGTERM");
}

/// Unmounts a tmpfs the test mounted, also when an assertion fails.
struct TmpfsGuard(PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_pull_with_a_clear_error_and_names_nothing() {
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    let mut b = Berthd::start();
    // The daemon's root on a 1.5 MB tmpfs: the 1.1 MB layer is stored, its 2 MB unpack is not.
    b.stop();
    std::fs::create_dir_all(b.root()).expect("creating the root");
    run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=1536k,mode=0700", "berth-it-full"]).arg(b.root()));
    let _tmpfs = TmpfsGuard(b.root());
    b.restart();
    let out = b.berth(&["pull", &name]);
    assert_failed_with(&out, &["No space left on device"]);
    assert_no_image(&b, "a pull that ran out of space");
    b.stop();
}

#[test]
fn concurrent_pulls_of_one_image_all_succeed() {
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    let b = Berthd::start();
    let pulls: Vec<Background> = (0..6).map(|_| Background::spawn(&mut b.berth_cmd(&["pull", "-q", &name]))).collect();
    for pull in pulls {
        let out = pull.wait();
        assert_eq!(out.code, 0, "one of 6 concurrent pulls failed: {out}");
    }
    assert_eq!(images(&b).len(), 1, "images after concurrent pulls");
    assert_eq!(snapshot_entries(&b).len(), 1, "one layer, one snapshot: {:?}", snapshot_entries(&b));
}

#[test]
fn events_stream_image_changes_as_they_happen() {
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    let copy = format!("{}/events-copy:1", registry.host());
    let b = Berthd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("events.jsonl");
    let events_cmd = b.berth_cmd(&["events", "--json", "--filter", "/images/"]);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("exec \"$@\" > '{}'", seen.display()))
        .arg("sh")
        .arg(events_cmd.get_program())
        .args(events_cmd.get_args());
    let _events = Background::spawn(&mut sh);
    // The subscription is made asynchronously: an event before it would be missed, so wait
    // until the daemon has a subscriber by publishing tags until one shows.
    b.ok(&["pull", "-q", &name]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let topics = |seen: &Path| -> Vec<(String, String)> {
        std::fs::read_to_string(seen)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (v["topic"].as_str().unwrap_or("").to_string(), v["event"]["name"].as_str().unwrap_or("").to_string())
            })
            .collect()
    };
    loop {
        b.ok(&["tag", &name, &copy]);
        std::thread::sleep(Duration::from_millis(300));
        if !topics(&seen).is_empty() {
            break;
        }
        b.ok(&["rmi", &copy]);
        assert!(std::time::Instant::now() < deadline, "no event reached `berth events`");
    }
    b.ok(&["rmi", &copy]);
    wait_until_events(&seen, &topics, &("/images/delete".to_string(), copy.clone()));
    let got = topics(&seen);
    assert!(got.contains(&("/images/create".to_string(), copy.clone())), "events: {got:?}");
    assert!(got.iter().all(|(t, _)| t.starts_with("/images/")), "the filter let through: {got:?}");
}

fn wait_until_events(seen: &Path, topics: &dyn Fn(&Path) -> Vec<(String, String)>, want: &(String, String)) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !topics(seen).contains(want) {
        assert!(std::time::Instant::now() < deadline, "{want:?} never arrived: {:?}", topics(seen));
        std::thread::sleep(Duration::from_millis(100));
    }
}
