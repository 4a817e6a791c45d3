//! Layer apply: streams an OCI/Docker layer tar (plain, gzip or zstd) into the empty upper
//! directory of an overlay snapshot, converting OCI whiteouts to overlayfs ones, and returns the
//! layer's diff_id. A layer is hostile input: nothing it names is ever written outside `dest`.
//!
//! Semantics, following containerd's `archive.Apply` with the overlay whiteout converter:
//! - Names are cleaned lexically. A leading `/` is dropped (`/etc/x` lands at `dest/etc/x`); a
//!   name whose `..` climbs above the root is refused. An entry that cleans to the root is skipped.
//! - Symlinks in parent components are resolved inside `dest` as if it were `/` (chroot-like,
//!   openat2 `RESOLVE_IN_ROOT`); the final component is never followed. A parent that is a
//!   symlink to something missing inside `dest` is an error rather than created through.
//! - Missing parent directories are created 0755 root:root.
//! - Hard link targets resolve the same way and must exist; a symlink as target is linked itself.
//!   The link gets no metadata of its own: it shares the target's inode.
//! - `dir/.wh.name` becomes a char 0/0 device at `dir/name`; `dir/.wh..wh..opq` sets
//!   `trusted.overlay.opaque=y` on `dir`. Other `.wh..wh.*` names (aufs metadata such as
//!   `.wh..wh.plnk`) and everything under them are skipped, as docker does.
//! - Xattrs from PAX `SCHILY.xattr.*`: see `xattr_allowed`; a filesystem without support for
//!   one (ENOTSUP) is warned about and skipped, like containerd.
//! - Directory times are set after the whole tar is applied, so their children do not bump them.
//! - Sparse files (GNU type `S`, PAX `GNU.sparse.*`) are refused: the tar crate would write their
//!   holes out as zeros, so a tiny layer could fill the disk.
//! - A layer holds at most `MAX_LAYER_ENTRIES` entries, which bounds the directory-times list.
//!
//! [`extract`] applies the same rules to a tar copied into a container (`cp`, docker's PUT
//! archive): entries land below a directory of the container's root, symlinks resolve inside that
//! root (docker extracts chrooted into it), mounts below it are crossed, and whiteout names are
//! plain files.

mod root;
#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;

use crate::store::digest::{Algorithm, Digest, Hasher};
pub(crate) use root::{join_components, open_in_root};
use root::{EntryPath, LayerRoot, Slot};

/// OCI whiteout prefix: `.wh.name` deletes `name` from the layers below.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Names with this prefix are whiteout metadata, not whiteouts of a file.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Marks its directory opaque: nothing below shows through.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory of the upper layer as opaque.
const OVERLAY_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// PAX record prefix carrying an extended attribute (GNU tar, Go's archive/tar, docker).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// PAX record prefix of GNU's sparse formats 0.0, 0.1 and 1.0.
const PAX_SPARSE_PREFIX: &[u8] = b"GNU.sparse.";
/// Why a sparse entry is refused.
const SPARSE_UNSUPPORTED: &str = "sparse files are not supported";
/// Entries one layer may hold: well above real layers, low enough that the bookkeeping kept until
/// the end (directory times) stays bounded.
const MAX_LAYER_ENTRIES: usize = 1_000_000;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type (including the non-distributable/foreign ones).
    pub fn from_media_type(media_type: &str) -> Result<Compression, ArchiveError> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
            other => Err(ArchiveError::UnsupportedMediaType(other.to_string())),
        }
    }
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream, trailing padding included: the config's diff_id.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream in bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("unsupported layer media type {0:?} (berth applies tar layers, uncompressed, gzip or zstd)")]
    UnsupportedMediaType(String),
    #[error("layer destination {}: {source}", path.display())]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Decompression or tar framing failed: a corrupt or truncated layer.
    #[error("reading layer stream: {0}")]
    Stream(#[source] io::Error),
    /// The entry itself is malformed or hostile.
    #[error("layer entry {path:?}: {problem}")]
    InvalidEntry { path: String, problem: String },
    /// The layer holds more entries than berth applies.
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: usize },
    /// Applying a valid entry failed (or its data was cut short).
    #[error("layer entry {path:?}: {op}: {source}")]
    Apply {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Streams `layer` (compressed per `compression`) into `dest`, an existing empty directory (the
/// upper dir of an overlay snapshot). Sync; call it from a blocking thread. On error `dest` is
/// left partly written for the caller to remove; nothing outside it is touched.
pub fn apply_layer<R: Read>(layer: R, compression: Compression, dest: &Path) -> Result<Applied, ArchiveError> {
    apply_layer_limited(layer, compression, dest, MAX_LAYER_ENTRIES)
}

/// How entries are applied: a layer's rules, or a copy's into a container.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// OCI whiteouts become overlayfs ones (layers); otherwise `.wh.` names are plain names.
    pub whiteouts: bool,
    /// Every entry gets this owner instead of the one its header names (docker's ChownOpts).
    pub chown: Option<(u32, u32)>,
    /// Refuse to replace a directory with a non-directory or the other way round (docker's
    /// NoOverwriteDirNonDir), instead of removing what is there.
    pub no_overwrite_dir_non_dir: bool,
}

/// Extracts the tar `tar` (plain, gzip or zstd, told by its first bytes as docker tells them)
/// into the directory `base` (cleaned components) of the root filesystem `root`, as
/// [`ExtractOptions`] say. Sync; call it from a blocking thread. On error what was extracted so
/// far stays (as with docker); nothing outside `root` is touched.
pub fn extract<R: Read>(
    tar: R,
    root: std::os::fd::OwnedFd,
    base: Vec<std::ffi::OsString>,
    options: &ExtractOptions,
) -> Result<(), ArchiveError> {
    let mut tar = io::BufReader::new(tar);
    let magic = io::BufRead::fill_buf(&mut tar).map_err(ArchiveError::Stream)?;
    let compression = if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let root = LayerRoot::within(root, base);
    apply_stream(decompress(tar, compression)?, &root, options, MAX_LAYER_ENTRIES)?;
    Ok(())
}

/// `mkdir -p` of `components` below `root` (a container's root filesystem), confined as
/// [`extract`] is; the directory's fd.
pub(crate) fn create_dir_all_in(
    root: std::os::fd::OwnedFd,
    components: Vec<std::ffi::OsString>,
) -> io::Result<std::os::fd::OwnedFd> {
    LayerRoot::within(root, Vec::new()).create_dir_all(&components)
}

/// `apply_layer` refusing layers of more than `max_entries` entries (tests use a small limit).
fn apply_layer_limited<R: Read>(
    layer: R,
    compression: Compression,
    dest: &Path,
    max_entries: usize,
) -> Result<Applied, ArchiveError> {
    let root =
        LayerRoot::open(dest).map_err(|source| ArchiveError::Destination { path: dest.to_path_buf(), source })?;
    let options = ExtractOptions { whiteouts: true, ..Default::default() };
    let (diff_id, size) = apply_stream(decompress(layer, compression)?, &root, &options, max_entries)?;
    tracing::debug!(%diff_id, size, dest = %dest.display(), "applied layer");
    Ok(Applied { diff_id, size })
}

/// Applies every entry of the tar stream below `root`; the stream's sha256 and length.
fn apply_stream<R: Read>(
    stream: R,
    root: &LayerRoot,
    options: &ExtractOptions,
    max_entries: usize,
) -> Result<(Digest, u64), ArchiveError> {
    let mut archive = tar::Archive::new(HashingReader::new(stream));
    let mut dir_times = Vec::new();
    for (index, entry) in archive.entries().map_err(ArchiveError::Stream)?.enumerate() {
        if index >= max_entries {
            return Err(ArchiveError::TooManyEntries { limit: max_entries });
        }
        let mut entry = entry.map_err(ArchiveError::Stream)?;
        apply_entry(root, &mut entry, options, &mut dir_times)?;
    }
    // The diff_id covers the whole uncompressed stream, end-of-archive blocks and padding too.
    let mut stream = archive.into_inner();
    io::copy(&mut stream, &mut io::sink()).map_err(ArchiveError::Stream)?;
    for dir in &dir_times {
        set_dir_times(root, dir)?;
    }
    Ok(stream.finish())
}

fn decompress<'a, R: Read + 'a>(layer: R, compression: Compression) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    Ok(match compression {
        Compression::None => Box::new(layer),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(layer)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(layer).map_err(ArchiveError::Stream)?),
    })
}

/// Tees the uncompressed stream into sha256 while tar reads it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Algorithm::Sha256.hasher(), size: 0 }
    }

    fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.size)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Access and modification times of an entry.
#[derive(Debug, Clone, Copy)]
struct Times {
    atime: TimeSpec,
    mtime: TimeSpec,
}

/// An entry's metadata: ustar/GNU header fields, overridden by PAX records.
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: Times,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<EntryMeta, String> {
        let header = entry.header();
        let mode = header.mode().map_err(|e| format!("bad mode field: {e}"))?;
        let mut uid = header.uid().map_err(|e| format!("bad uid field: {e}"))?;
        let mut gid = header.gid().map_err(|e| format!("bad gid field: {e}"))?;
        let mtime = header.mtime().map_err(|e| format!("bad mtime field: {e}"))?;
        let mtime = TimeSpec::new(i64::try_from(mtime).map_err(|_| format!("mtime {mtime} out of range"))?, 0);
        // Containerd's rule: no atime, or one before the mtime, means the mtime.
        let mut atime = match header.as_gnu().map(|gnu| gnu.atime()) {
            Some(Ok(secs)) if secs > 0 => i64::try_from(secs).map(|secs| TimeSpec::new(secs, 0)).ok(),
            _ => None,
        };
        let mut times = Times { atime: mtime, mtime };
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions().map_err(|e| format!("bad PAX header: {e}"))? {
            for record in records {
                let record = record.map_err(|e| format!("bad PAX record: {e}"))?;
                let value = record.value_bytes();
                match record.key_bytes() {
                    b"uid" => uid = pax_number(value).ok_or("bad PAX uid")?,
                    b"gid" => gid = pax_number(value).ok_or("bad PAX gid")?,
                    b"mtime" => times.mtime = pax_time(value).ok_or("bad PAX mtime")?,
                    b"atime" => atime = Some(pax_time(value).ok_or("bad PAX atime")?),
                    key if key.starts_with(PAX_SPARSE_PREFIX) => return Err(SPARSE_UNSUPPORTED.to_string()),
                    key => {
                        if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        times.atime = atime.filter(|atime| *atime >= times.mtime).unwrap_or(times.mtime);
        let uid = u32::try_from(uid).map_err(|_| format!("uid {uid} out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| format!("gid {gid} out of range"))?;
        Ok(EntryMeta { mode, uid, gid, times, xattrs })
    }
}

fn pax_number(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A PAX time: decimal seconds with an optional fraction, e.g. `1600000000.5`.
fn pax_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 =
        fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0, |n, b| n * 10 + i64::from(b - b'0'));
    if value.starts_with('-') && nanos > 0 {
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(TimeSpec::new(secs, nanos))
}

/// Which PAX xattrs reach the filesystem: `user.*`, file capabilities (`security.capability`,
/// e.g. ping's cap_net_raw) and POSIX ACLs. `trusted.*` is refused because `trusted.overlay.*` is
/// overlayfs's own metadata (opaque, redirect, metacopy) that a layer could forge; other
/// `security.*` labels (SELinux, IMA, EVM) belong to the host's policy, not to an image.
fn xattr_allowed(name: &[u8]) -> bool {
    name.starts_with(b"user.")
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

/// A directory entry whose times are set once the whole layer is written.
struct DirTimes {
    shown: String,
    path: EntryPath,
    times: Times,
}

/// The kind of a tar entry, as far as apply is concerned.
enum EntryKind {
    Directory,
    File,
    Symlink,
    HardLink,
    Node(SFlag),
}

fn apply_entry<R: Read>(
    root: &LayerRoot,
    entry: &mut tar::Entry<'_, R>,
    options: &ExtractOptions,
    dir_times: &mut Vec<DirTimes>,
) -> Result<(), ArchiveError> {
    let raw_path = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw_path).into_owned();
    let invalid = |problem: &str| ArchiveError::InvalidEntry { path: shown.clone(), problem: problem.to_string() };
    let kind = match entry.header().entry_type() {
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::GNUSparse => return Err(invalid(SPARSE_UNSUPPORTED)),
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::HardLink,
        tar::EntryType::Char => EntryKind::Node(SFlag::S_IFCHR),
        tar::EntryType::Block => EntryKind::Node(SFlag::S_IFBLK),
        tar::EntryType::Fifo => EntryKind::Node(SFlag::S_IFIFO),
        tar::EntryType::XGlobalHeader => return Ok(()),
        other => return Err(invalid(&format!("unsupported entry type {:?}", other.as_byte() as char))),
    };
    let path = EntryPath::parse(&raw_path).map_err(invalid)?;
    let Some((parent, name)) = path.split_last() else {
        tracing::debug!(entry = %shown, "skipping layer entry that names the root");
        return Ok(());
    };
    if options.whiteouts
        && path
            .components()
            .iter()
            .any(|c| c.as_bytes().starts_with(WHITEOUT_META_PREFIX) && c.as_bytes() != WHITEOUT_OPAQUE)
    {
        tracing::debug!(entry = %shown, "skipping whiteout metadata entry");
        return Ok(());
    }
    let mut meta = EntryMeta::read(entry).map_err(|problem| invalid(&problem))?;
    if let Some((uid, gid)) = options.chown {
        (meta.uid, meta.gid) = (uid, gid);
    }
    let shown_ref = &shown;
    let at = |op: &'static str| move |source: io::Error| ArchiveError::Apply { path: shown_ref.clone(), op, source };

    let dir = root.create_dir_all(parent).map_err(at("opening parent directory"))?;
    if !options.whiteouts {
        // Nothing to interpret.
    } else if name.as_bytes() == WHITEOUT_OPAQUE {
        let opaque = Slot::directory_itself(dir);
        return opaque.set_xattr(OVERLAY_OPAQUE_XATTR, b"y").map_err(at("marking directory opaque"));
    } else if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX) {
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(invalid("whiteout names no file"));
        }
        let whiteout = Slot::new(dir, OsStr::from_bytes(hidden));
        whiteout.clear(false).map_err(at("removing what the whiteout replaces"))?;
        whiteout.mknod(SFlag::S_IFCHR, 0).map_err(at("creating overlay whiteout"))?;
        return whiteout.chown(meta.uid, meta.gid).map_err(at("chown"));
    }

    let slot = Slot::new(dir, name);
    if options.no_overwrite_dir_non_dir {
        refuse_dir_non_dir_swap(&slot, &kind).map_err(invalid)?;
    }
    match kind {
        EntryKind::Directory => {
            if !slot.clear(true).map_err(at("replacing existing entry"))? {
                slot.mkdir().map_err(at("creating directory"))?;
            }
            dir_times.push(DirTimes { shown: shown.clone(), path: path.clone(), times: meta.times });
        }
        EntryKind::File => {
            slot.clear(false).map_err(at("replacing existing entry"))?;
            let mut file = slot.create_file().map_err(at("creating file"))?;
            io::copy(entry, &mut file).map_err(at("writing file contents"))?;
        }
        EntryKind::Symlink => {
            let target = entry.link_name_bytes().ok_or_else(|| invalid("symlink has no target"))?;
            if target.is_empty() {
                return Err(invalid("symlink has an empty target"));
            }
            slot.clear(false).map_err(at("replacing existing entry"))?;
            slot.symlink(OsStr::from_bytes(&target)).map_err(at("creating symlink"))?;
        }
        EntryKind::HardLink => {
            let raw_target = entry.link_name_bytes().ok_or_else(|| invalid("hard link has no target"))?;
            let shown_target = String::from_utf8_lossy(&raw_target).into_owned();
            let target_path = EntryPath::parse(&raw_target)
                .map_err(|problem| invalid(&format!("hard link target {shown_target:?}: {problem}")))?;
            let Some((target_parent, target_name)) = target_path.split_last() else {
                return Err(invalid("hard link target is the layer root"));
            };
            let target_dir = root.open_dir(target_parent).map_err(at("opening hard link target's directory"))?;
            slot.clear(false).map_err(at("replacing existing entry"))?;
            slot.hard_link_to(&Slot::new(target_dir, target_name)).map_err(at("creating hard link"))?;
            return Ok(());
        }
        EntryKind::Node(kind) => {
            let header = entry.header();
            let major = header.device_major().map_err(|e| invalid(&format!("bad device major: {e}")))?;
            let minor = header.device_minor().map_err(|e| invalid(&format!("bad device minor: {e}")))?;
            let dev = nix::sys::stat::makedev(major.unwrap_or(0).into(), minor.unwrap_or(0).into());
            slot.clear(false).map_err(at("replacing existing entry"))?;
            slot.mknod(kind, dev).map_err(at("creating device node"))?;
        }
    }

    set_metadata(&slot, &meta, &kind, &shown).map_err(|(op, source)| ArchiveError::Apply {
        path: shown.clone(),
        op,
        source,
    })
}

/// docker's NoOverwriteDirNonDir: an existing directory is not replaced by a non-directory, nor
/// an existing non-directory by a directory.
fn refuse_dir_non_dir_swap(slot: &Slot, kind: &EntryKind) -> Result<(), &'static str> {
    let Ok(Some(st)) = slot.stat() else { return Ok(()) };
    let existing_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    match (existing_dir, matches!(kind, EntryKind::Directory)) {
        (true, false) => Err("cannot overwrite directory with non-directory"),
        (false, true) => Err("cannot overwrite non-directory with directory"),
        _ => Ok(()),
    }
}

/// Owner, mode, xattrs and (but for directories, done at the end) times of a new node.
fn set_metadata(slot: &Slot, meta: &EntryMeta, kind: &EntryKind, shown: &str) -> Result<(), (&'static str, io::Error)> {
    // chown clears setuid/setgid and file capabilities, so it goes first.
    slot.chown(meta.uid, meta.gid).map_err(|e| ("chown", e))?;
    if !matches!(kind, EntryKind::Symlink) {
        slot.chmod(meta.mode).map_err(|e| ("chmod", e))?;
    }
    for (key, value) in &meta.xattrs {
        let key_shown = String::from_utf8_lossy(key);
        if !xattr_allowed(key) {
            tracing::warn!(entry = %shown, xattr = %key_shown, "layer xattr not applied: namespace not allowed");
            continue;
        }
        match slot.set_xattr(key, value) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(entry = %shown, xattr = %key_shown, "layer xattr not applied: filesystem does not support it");
            }
            Err(e) => return Err(("setting xattr", e)),
        }
    }
    if !matches!(kind, EntryKind::Directory) {
        slot.set_times(meta.times.atime, meta.times.mtime).map_err(|e| ("setting times", e))?;
    }
    Ok(())
}

/// A directory's times, once nothing more is written into it. Skipped if a later entry removed
/// or replaced the directory.
fn set_dir_times(root: &LayerRoot, dir: &DirTimes) -> Result<(), ArchiveError> {
    let Some((parent, name)) = dir.path.split_last() else { return Ok(()) };
    let at = |op: &'static str| move |source: io::Error| ArchiveError::Apply { path: dir.shown.clone(), op, source };
    let parent_dir = match root.open_dir(parent) {
        Ok(dir) => dir,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(at("opening parent directory")(e)),
    };
    let slot = Slot::new(parent_dir, name);
    match slot.stat().map_err(at("stat"))? {
        Some(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
            slot.set_times(dir.times.atime, dir.times.mtime).map_err(at("setting directory times"))
        }
        _ => Ok(()),
    }
}
