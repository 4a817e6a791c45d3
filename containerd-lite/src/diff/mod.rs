//! Diffs of an overlay snapshot against its parents, as containerd's `diff` plugin: what changed
//! in a container (docker's `diff`: A/C/D) and the layer that records it (an OCI layer tar with
//! whiteouts), read straight from the snapshot's upper directory.
//!
//! The upper directory holds what the container wrote: new and copied-up entries, overlayfs
//! whiteouts (character devices 0/0) for deletions, and `trusted.overlay.opaque=y` on directories
//! that hide everything below them in the lower layers. The mount points the runtime made for
//! berthd's own mounts (`/etc/hosts`, `/proc`, ...) are not the container's changes: docker keeps
//! them in an "init" layer under the container's, so they never show in its diffs or commits;
//! berthd leaves them out here.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The names docker's init layer holds (relative to the root): mount points made for the
/// container, never its changes. Directories among them are left out with all they hold.
const INIT_PATHS: &[&str] =
    &["proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", ".dockerenv"];

/// The xattr overlayfs sets on an opaque directory of the upper layer.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The only xattr a layer records (as docker's archive does): file capabilities.
const CAPABILITY_XATTR: &str = "security.capability";
/// OCI whiteout prefix and opaque marker.
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// docker's change kinds, printed as `C`, `A`, `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Modified,
    Added,
    Deleted,
}

impl Kind {
    pub fn letter(self) -> &'static str {
        match self {
            Kind::Modified => "C",
            Kind::Added => "A",
            Kind::Deleted => "D",
        }
    }
}

/// One changed path, `/`-rooted as docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub path: String,
}

/// A change with what writing the layer needs.
struct Entry {
    kind: Kind,
    /// Relative to the root.
    rel: PathBuf,
    /// A directory of the upper layer marked opaque.
    opaque: bool,
    /// A deletion the opaque directory above already records: listed, not written.
    implied: bool,
}

/// A snapshot's own directory and its parents', nearest first.
pub struct Layers<'a> {
    pub upper: &'a Path,
    pub lowers: &'a [PathBuf],
}

impl Layers<'_> {
    /// The changes, sorted by path as docker prints them.
    pub fn changes(&self) -> anyhow::Result<Vec<Change>> {
        let mut changes: Vec<Change> = self
            .entries()?
            .into_iter()
            .map(|e| Change { kind: e.kind, path: format!("/{}", e.rel.display()) })
            .collect();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Writes the changes as an uncompressed OCI layer tar: parents before children, deletions
    /// as `.wh.<name>`, opaque directories with `.wh..wh..opq`, hard links within the layer as
    /// links, file capabilities as PAX xattrs. Returns how many entries it holds.
    pub fn write_tar<W: Write>(&self, out: W) -> anyhow::Result<usize> {
        let entries = self.entries()?;
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for entry in &entries {
            let path = self.upper.join(&entry.rel);
            if entry.kind == Kind::Deleted && entry.implied {
                continue;
            }
            if entry.kind == Kind::Deleted {
                let name = entry.rel.file_name().context("whiteout of the root")?;
                let mut wh = OsStr::new(WHITEOUT_PREFIX).to_os_string();
                wh.push(name);
                let rel = entry.rel.with_file_name(wh);
                append_empty(&mut tar, &rel, &fs::symlink_metadata(path.parent().unwrap_or(self.upper)).ok())?;
                continue;
            }
            let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Some(cap) = get_xattr(&path, CAPABILITY_XATTR)? {
                let key = format!("SCHILY.xattr.{CAPABILITY_XATTR}");
                tar.append_pax_extensions([(key.as_str(), cap.as_slice())])
                    .with_context(|| format!("writing the xattrs of {}", entry.rel.display()))?;
            }
            let mut header = header_for(&meta);
            let ft = meta.file_type();
            let written = if ft.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut header, &entry.rel, io::empty())
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).with_context(|| format!("reading link {}", path.display()))?;
                header.set_entry_type(tar::EntryType::Symlink);
                tar.append_link(&mut header, &entry.rel, &target)
            } else if ft.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        tar.append_link(&mut header, &entry.rel, first)
                            .with_context(|| format!("writing {} to the layer", entry.rel.display()))?;
                        continue;
                    }
                    links.insert((meta.dev(), meta.ino()), entry.rel.clone());
                }
                let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                tar.append_data(&mut header, &entry.rel, io::BufReader::with_capacity(256 << 10, file))
            } else {
                header.set_entry_type(if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    // Sockets: docker's archive leaves them out too.
                    continue;
                });
                let rdev = meta.rdev();
                header.set_device_major(libc::major(rdev)).context("device number")?;
                header.set_device_minor(libc::minor(rdev)).context("device number")?;
                tar.append_data(&mut header, &entry.rel, io::empty())
            };
            written.with_context(|| format!("writing {} to the layer", entry.rel.display()))?;
            if entry.opaque {
                append_empty(&mut tar, &entry.rel.join(OPAQUE_MARKER), &Some(meta))?;
            }
        }
        tar.finish().context("finishing the layer")?;
        Ok(entries.len())
    }

    /// Every change, parents before children, each directory's entries by name.
    fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk(Path::new(""), false, &mut out)?;
        Ok(out)
    }

    /// Adds the changes below `dir` (relative); `hidden` when an opaque directory above hides
    /// the lower layers. Returns whether anything was added.
    fn walk(&self, dir: &Path, hidden: bool, out: &mut Vec<Entry>) -> anyhow::Result<bool> {
        let full = self.upper.join(dir);
        let mut names: Vec<_> = fs::read_dir(&full)
            .with_context(|| format!("reading {}", full.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .with_context(|| format!("reading {}", full.display()))?;
        names.sort();
        let before = out.len();
        for name in names {
            let rel = dir.join(&name);
            if INIT_PATHS.iter().any(|p| Path::new(p) == rel) {
                continue;
            }
            let path = self.upper.join(&rel);
            let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            let lower = if hidden { None } else { self.lower(&rel)? };
            if is_whiteout(&meta) {
                if lower.is_some() {
                    out.push(Entry { kind: Kind::Deleted, rel, opaque: false, implied: false });
                }
                continue;
            }
            if meta.is_dir() {
                let opaque = get_xattr(&path, OPAQUE_XATTR)?.is_some_and(|v| v == b"y");
                let slot = out.len();
                let kind = match &lower {
                    Some(l) if l.is_dir() => Kind::Modified,
                    _ => Kind::Added,
                };
                out.push(Entry { kind, rel: rel.clone(), opaque, implied: false });
                let children = self.walk(&rel, hidden || opaque || kind == Kind::Added, out)?;
                let own_change = match &lower {
                    Some(l) => l.mode() != meta.mode() || l.uid() != meta.uid() || l.gid() != meta.gid(),
                    None => true,
                };
                if kind == Kind::Modified && opaque {
                    // What the lower layers had there is gone.
                    self.deleted_below_opaque(&rel, out)?;
                } else if kind == Kind::Modified && !children && !own_change {
                    // Copied up only for the mount points below it.
                    out.remove(slot);
                }
                continue;
            }
            let kind = if lower.is_some() { Kind::Modified } else { Kind::Added };
            out.push(Entry { kind, rel, opaque: false, implied: false });
        }
        Ok(out.len() > before)
    }

    /// Adds a deletion for each lower entry of the opaque directory `rel` that the upper one
    /// does not have.
    fn deleted_below_opaque(&self, rel: &Path, out: &mut Vec<Entry>) -> anyhow::Result<()> {
        let mut gone = std::collections::BTreeSet::new();
        for (i, lower) in self.lowers.iter().enumerate() {
            let dir = lower.join(rel);
            let is_dir =
                lstat_in(lower, rel).with_context(|| format!("reading {}", dir.display()))?.is_some_and(|m| m.is_dir());
            if !self.visible_in(i, rel)? || !is_dir {
                break;
            }
            if let Ok(list) = fs::read_dir(&dir) {
                for entry in list {
                    let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                    let meta = entry.metadata().with_context(|| format!("reading {}", entry.path().display()))?;
                    if !is_whiteout(&meta)
                        && fs::symlink_metadata(self.upper.join(rel).join(entry.file_name())).is_err()
                    {
                        gone.insert(entry.file_name());
                    }
                }
            }
            if get_xattr(&dir, OPAQUE_XATTR)?.is_some_and(|v| v == b"y") {
                break;
            }
        }
        out.extend(gone.into_iter().map(|name| Entry {
            kind: Kind::Deleted,
            rel: rel.join(name),
            opaque: false,
            implied: true,
        }));
        Ok(())
    }

    /// Whether lower layer `i` still shows through at `rel` (no nearer layer deleted or hid it
    /// or one of its parents).
    fn visible_in(&self, i: usize, rel: &Path) -> anyhow::Result<bool> {
        for nearer in &self.lowers[..i] {
            let mut at = PathBuf::new();
            for component in rel.components() {
                at.push(component);
                match fs::symlink_metadata(nearer.join(&at)) {
                    Ok(m) if is_whiteout(&m) => return Ok(false),
                    Ok(m) if m.is_dir() => {
                        if get_xattr(&nearer.join(&at), OPAQUE_XATTR)?.is_some_and(|v| v == b"y") {
                            return Ok(false);
                        }
                    }
                    Ok(_) => return Ok(false),
                    Err(_) => break,
                }
            }
        }
        Ok(true)
    }

    /// What the lower layers show at `rel`: the nearest entry, unless a whiteout or an opaque
    /// directory on the way hides it.
    fn lower(&self, rel: &Path) -> anyhow::Result<Option<Metadata>> {
        for lower in self.lowers {
            match lstat_in(lower, rel).with_context(|| format!("reading {}", lower.join(rel).display()))? {
                Some(m) if is_whiteout(&m) => return Ok(None),
                Some(m) => return Ok(Some(m)),
                None => {}
            }
            // Absent here: an opaque parent in this layer hides the layers below.
            let mut parent = rel.parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                let dir = lower.join(p);
                let meta = lstat_in(lower, p).with_context(|| format!("reading {}", dir.display()))?;
                if meta.as_ref().is_some_and(Metadata::is_dir)
                    && get_xattr(&dir, OPAQUE_XATTR)?.is_some_and(|v| v == b"y")
                {
                    return Ok(None);
                }
                if meta.as_ref().is_some_and(is_whiteout) {
                    return Ok(None);
                }
                parent = p.parent();
            }
        }
        Ok(None)
    }
}

/// What a layer directory holds at `rel`, without following a symlink anywhere on the way: a
/// layer's own symlinks point into the container's filesystem, never into the host's. A
/// non-directory on the way means nothing is there.
fn lstat_in(layer: &Path, rel: &Path) -> io::Result<Option<Metadata>> {
    let mut at = layer.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for (i, component) in components.iter().enumerate() {
        at.push(component);
        let meta = match fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if i + 1 == components.len() {
            return Ok(Some(meta));
        }
        if !meta.is_dir() {
            return Ok(None);
        }
    }
    Ok(None)
}

/// An overlayfs whiteout: a character device 0/0.
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// A tar header with `meta`'s mode, owner and modification time (numeric owners only).
pub(crate) fn header_for(meta: &Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    header
}

/// An empty regular file entry (whiteouts and opaque markers), owned as `owner` when known.
fn append_empty<W: Write>(tar: &mut tar::Builder<W>, rel: &Path, owner: &Option<Metadata>) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    if let Some(m) = owner {
        header.set_uid(u64::from(m.uid()));
        header.set_gid(u64::from(m.gid()));
        header.set_mtime(u64::try_from(m.mtime()).unwrap_or(0));
    }
    header.set_size(0);
    tar.append_data(&mut header, rel, io::empty()).with_context(|| format!("writing {} to the layer", rel.display()))
}

/// The value of xattr `name` of `path` (not following a symlink), `None` when it has none.
fn get_xattr(path: &Path, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).context("path with a NUL byte")?;
    let c_name = CString::new(name).context("xattr name with a NUL byte")?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable
        // for `buf.len()` bytes.
        let n = unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 64 << 10 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e).with_context(|| format!("reading xattr {name} of {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layers(upper: &Path, lowers: &[PathBuf]) -> Vec<(String, String)> {
        Layers { upper, lowers }.changes().unwrap().into_iter().map(|c| (c.kind.letter().to_string(), c.path)).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn tar_names(upper: &Path, lowers: &[PathBuf]) -> Vec<String> {
        let mut buf = Vec::new();
        Layers { upper, lowers }.write_tar(&mut buf).unwrap();
        let mut archive = tar::Archive::new(&buf[..]);
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
    }

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    #[test]
    fn added_and_modified_files_show_with_their_parents_and_mount_points_do_not() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("l"), t.path().join("u"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::create_dir_all(lower.join("usr/bin")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), "root\nx").unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::create_dir_all(upper.join("new/sub")).unwrap();
        symlink("/x", upper.join("new/sub/link")).unwrap();
        // A directory copied up only for a mount point below it.
        fs::create_dir_all(upper.join("usr/bin")).unwrap();
        fs::create_dir_all(upper.join("proc")).unwrap();
        assert_eq!(
            layers(&upper, std::slice::from_ref(&lower)),
            pairs(&[("C", "/etc"), ("C", "/etc/passwd"), ("A", "/new"), ("A", "/new/sub"), ("A", "/new/sub/link")])
        );
        assert_eq!(tar_names(&upper, &[lower]), ["etc", "etc/passwd", "new", "new/sub", "new/sub/link"]);
    }

    #[test]
    fn whiteouts_are_deletions_of_what_a_lower_layer_has() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, upper) = (t.path().join("l1"), t.path().join("l2"), t.path().join("u"));
        fs::create_dir_all(l2.join("d")).unwrap();
        fs::write(l2.join("d/a"), "a").unwrap();
        fs::write(l2.join("d/b"), "b").unwrap();
        fs::create_dir_all(&l1).unwrap();
        fs::create_dir_all(upper.join("d")).unwrap();
        whiteout(&upper.join("d/a"));
        whiteout(&upper.join("d/never"));
        let lowers = vec![l1, l2];
        assert_eq!(layers(&upper, &lowers), pairs(&[("C", "/d"), ("D", "/d/a")]));
        assert_eq!(tar_names(&upper, &lowers), ["d", "d/.wh.a"]);
    }

    #[test]
    fn opaque_directories_carry_the_marker_and_delete_what_they_hide() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("l"), t.path().join("u"));
        fs::create_dir_all(lower.join("d")).unwrap();
        fs::write(lower.join("d/old"), "o").unwrap();
        fs::write(lower.join("d/kept"), "k").unwrap();
        fs::create_dir_all(upper.join("d")).unwrap();
        fs::write(upper.join("d/kept"), "new").unwrap();
        let c_path = CString::new(upper.join("d").as_os_str().as_bytes()).unwrap();
        let c_name = CString::new(OPAQUE_XATTR).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value that live across the call.
        let rc = unsafe { libc::lsetxattr(c_path.as_ptr(), c_name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        assert_eq!(
            layers(&upper, std::slice::from_ref(&lower)),
            pairs(&[("C", "/d"), ("A", "/d/kept"), ("D", "/d/old")])
        );
        let names = tar_names(&upper, &[lower]);
        assert_eq!(names, ["d", "d/.wh..wh..opq", "d/kept"]);
    }

    #[test]
    fn hard_links_within_the_layer_are_links() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("l"), t.path().join("u"));
        fs::create_dir_all(&lower).unwrap();
        fs::create_dir_all(&upper).unwrap();
        fs::write(upper.join("a"), "data").unwrap();
        fs::hard_link(upper.join("a"), upper.join("b")).unwrap();
        let mut buf = Vec::new();
        Layers { upper: &upper, lowers: &[lower] }.write_tar(&mut buf).unwrap();
        let mut archive = tar::Archive::new(&buf[..]);
        let kinds: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().entry_type())
            })
            .collect();
        assert_eq!(kinds, [("a".to_string(), tar::EntryType::Regular), ("b".to_string(), tar::EntryType::Link)]);
    }
}
