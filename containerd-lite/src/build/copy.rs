//! COPY, ADD and WORKDIR: the layer they make, written straight from the sources (no container
//! runs), with docker's rules for sources (globs, a directory's contents, symlinks resolved inside
//! the source root), destinations (a directory when it ends in `/` or exists as one, relative to
//! WORKDIR), owners (`--chown`, else 0:0) and modes (`--chmod`), and ADD's extraction of local tar
//! archives. Sources are read from the build context or from another stage's or image's
//! filesystem, mounted read-only; nothing outside that root is ever read.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use sha2::{Digest as _, Sha256};

use super::context::FileHashes;
use super::Invalid;
use crate::container::user::{group_entries, passwd_entries};
use crate::daemon::Berthd;

/// A committed snapshot chain mounted read-only on a private directory, unmounted (and its view
/// removed) when dropped. With no chain (`FROM scratch`) it is an empty directory.
pub struct RootView<'a> {
    d: &'a Berthd,
    key: Option<String>,
    dir: tempfile::TempDir,
    mounted: bool,
}

impl<'a> RootView<'a> {
    pub fn open(d: &'a Berthd, chain_top: Option<&str>) -> Result<RootView<'a>> {
        let tmp = d.cfg.root.join("tmp");
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let dir = tempfile::Builder::new().prefix("build-view-").tempdir_in(&tmp).context("creating a mount point")?;
        let mut view = RootView { d, key: None, dir, mounted: false };
        if let Some(top) = chain_top {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let key = format!("{VIEW_PREFIX}{}-{}-{n}", std::process::id(), crate::events::now_nanos());
            let mounts = d.snapshots.view(&key, Some(top), BTreeMap::new())?;
            view.key = Some(key);
            for m in &mounts {
                m.mount(view.dir.path())?;
                view.mounted = true;
            }
        }
        Ok(view)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RootView<'_> {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %self.dir.path().display(), "unmounting a build view: {e}");
            }
        }
        if let Some(key) = self.key.take() {
            if let Err(e) = self.d.snapshots.remove(&key) {
                tracing::warn!(key, "removing a build view: {e}");
            }
        }
    }
}

/// The key prefix of the views [`RootView`] mounts.
const VIEW_PREFIX: &str = "berth/build-view/";

/// Unmounts and removes the views and build directories a killed berthd left under its root.
pub fn clear_leftovers(d: &Berthd) -> Result<()> {
    let tmp = d.cfg.root.join("tmp");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else { continue };
        let point = Path::new(point);
        let ours = point.parent() == Some(tmp.as_path())
            && point.file_name().is_some_and(|n| n.to_string_lossy().starts_with("build-view-"));
        if ours {
            if let Err(e) = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %point.display(), "unmounting a leftover build view: {e}");
            }
        }
    }
    for info in d.snapshots.list()? {
        if info.key.starts_with(VIEW_PREFIX) {
            d.snapshots.remove(&info.key)?;
        }
    }
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("build-") {
                let path = entry.path();
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), "removing a leftover build directory: {e}");
                }
            }
        }
    }
    Ok(())
}

/// `path` resolved inside `root` as if `root` were `/` (symlinks included, `..` never above it);
/// `None` when it does not exist. With `follow_last` a final symlink is followed too.
pub fn resolve_in(root: &Path, path: &Path, follow_last: bool) -> Result<Option<PathBuf>> {
    let dir = File::open(root).with_context(|| format!("opening {}", root.display()))?;
    // Compared with the kernel's name of what was opened, which has no symlinks.
    let root = &berth_runtime::safe_path::fd_path(&dir)?;
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if !follow_last {
        flags |= OFlag::O_NOFOLLOW;
    }
    match berth_runtime::safe_path::open_in_root(&dir, path, flags) {
        Ok(fd) => {
            let real = berth_runtime::safe_path::fd_path(&fd)?;
            if !real.starts_with(root) {
                bail!("{} resolved outside {}", path.display(), root.display());
            }
            Ok(Some(real))
        }
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("resolving {} in {}", path.display(), root.display())),
    }
}

/// A path cleaned as Go's `filepath.Clean` would, relative (no leading `/`); `None` when it
/// climbs above its start.
fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[...]` (with `^` negation and
/// ranges) and `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first() else { return false };
                let mut i = 1;
                let negate = p.get(1) == Some(&'^');
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let mut lo = p[i];
                    if lo == '\\' && i + 1 < p.len() {
                        i += 1;
                        lo = p[i];
                    }
                    let mut hi = lo;
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                        hi = p[i + 2];
                        i += 2;
                    }
                    if lo <= *c && *c <= hi {
                        matched = true;
                    }
                    i += 1;
                }
                if i >= p.len() {
                    return false;
                }
                matched != negate && go(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The sources a COPY names, as paths relative to `root`: globs expanded (in name order), each
/// checked to stay inside `root`. `what` names the root in messages.
pub fn expand_sources(root: &Path, patterns: &[String], what: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for pattern in patterns {
        let Some(rel) = clean_relative(pattern) else {
            return Err(Invalid(format!("COPY failed: forbidden path outside the build context: {pattern} ()")).into());
        };
        if !has_glob(pattern) {
            if resolve_in(root, &rel, true)?.is_none() {
                return Err(Invalid(format!(
                    "COPY failed: file not found in {what}: stat {}: file does not exist",
                    rel.display()
                ))
                .into());
            }
            out.push(rel);
            continue;
        }
        let mut matches = vec![PathBuf::new()];
        for component in rel.components() {
            let part = component.as_os_str().to_string_lossy().into_owned();
            let mut next = Vec::new();
            for base in &matches {
                if !has_glob(&part) {
                    next.push(base.join(&part));
                    continue;
                }
                let Some(dir) = resolve_in(root, base, true)? else { continue };
                let Ok(list) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> =
                    list.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                next.extend(names.into_iter().filter(|n| glob_match(&part, n)).map(|n| base.join(n)));
            }
            matches = next;
        }
        matches.retain(|m| resolve_in(root, m, false).ok().flatten().is_some());
        out.extend(matches);
    }
    if out.is_empty() {
        return Err(Invalid("COPY failed: no source files were specified".into()).into());
    }
    Ok(out)
}

/// docker's `--chown` ids: names looked up in the destination's /etc/passwd and /etc/group, a
/// user without a group gets the group id equal to its uid.
pub fn chown_ids(spec: &str, dest_root: &Path) -> Result<(u32, u32)> {
    let read = |rel: &str| -> Result<String> {
        Ok(match resolve_in(dest_root, Path::new(rel), true)? {
            Some(p) => fs::read_to_string(&p).unwrap_or_default(),
            None => String::new(),
        })
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => passwd_entries(&read("etc/passwd")?)
            .into_iter()
            .find(|e| e.name == user)
            .map(|e| e.uid)
            .ok_or_else(|| Invalid(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}")))?,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(&read("etc/group")?)
                .into_iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| Invalid(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}")))?,
        },
    };
    Ok((uid, gid))
}

/// `--chmod`: an octal mode.
pub fn parse_chmod(spec: &str) -> Result<u32> {
    match u32::from_str_radix(spec, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(Invalid(format!("invalid chmod parameter {spec:?}: only octal modes are supported")).into()),
    }
}

/// What one COPY/ADD writes: each source with where it goes.
pub struct Plan {
    /// The source root (context or mounted filesystem).
    root: PathBuf,
    /// (source relative to root, destination path relative to `/`).
    items: Vec<(PathBuf, PathBuf)>,
    /// Directories to make first (relative to `/`): the destination's missing ancestors.
    make_dirs: Vec<PathBuf>,
    /// Existing ancestors of the destination, written with their own metadata so the layer does
    /// not change them.
    keep_dirs: Vec<(PathBuf, Metadata)>,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    /// ADD: local archives are extracted.
    extract: bool,
}

/// Plans COPY/ADD of `sources` (relative to `root`) to `dest` (as written, relative to
/// `workdir`) in the filesystem mounted at `dest_root`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    root: &Path,
    sources: Vec<PathBuf>,
    dest: &str,
    workdir: &str,
    dest_root: &Path,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    extract: bool,
) -> Result<Plan> {
    // Cleaned as Go does (a `..` above `/` stays at `/`), then its existing part resolved inside
    // the root as docker does: a symlinked directory (merged /usr's /bin) is written through.
    let dest_rel = real_dest(dest_root, &super::changes::join_workdir(workdir, dest))?;
    let dest_is_dir_syntax =
        dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest_rel.as_os_str().is_empty();
    if sources.len() > 1 && !dest_is_dir_syntax {
        return Err(Invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
                .into(),
        )
        .into());
    }
    let existing = resolve_in(dest_root, &dest_rel, true)?;
    let dest_exists_as_dir = existing.as_deref().is_some_and(|p| p.is_dir());
    let mut items = Vec::new();
    for src in sources {
        let real = resolve_in(root, &src, true)?.with_context(|| format!("source {} vanished", src.display()))?;
        let meta = fs::metadata(&real).with_context(|| format!("reading {}", real.display()))?;
        let target = if meta.is_dir() || (extract && is_archive(&real)?) {
            dest_rel.clone()
        } else if dest_is_dir_syntax || dest_exists_as_dir {
            dest_rel.join(src.file_name().unwrap_or_default())
        } else {
            dest_rel.clone()
        };
        items.push((src, target));
    }
    // The destination directory (or the file's parent) and its ancestors.
    let mut ancestors = Vec::new();
    let top = if items
        .iter()
        .any(|(s, t)| t == &dest_rel && !resolve_in(root, s, true).ok().flatten().is_some_and(|p| p.is_dir()))
    {
        dest_rel.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dest_rel.clone()
    };
    let mut at = PathBuf::new();
    for c in top.components() {
        at.push(c);
        ancestors.push(at.clone());
    }
    let mut make_dirs = Vec::new();
    let mut keep_dirs = Vec::new();
    for dir in ancestors {
        match resolve_in(dest_root, &dir, true)? {
            Some(p) => {
                let meta = fs::metadata(&p).with_context(|| format!("reading {}", p.display()))?;
                if !meta.is_dir() {
                    return Err(Invalid(format!("cannot copy to {}: not a directory", dir.display())).into());
                }
                keep_dirs.push((dir, meta));
            }
            None => make_dirs.push(dir),
        }
    }
    Ok(Plan { root: root.to_path_buf(), items, make_dirs, keep_dirs, owner, chmod, extract })
}

/// A digest of everything a COPY/ADD's result depends on in its `sources` (relative to `root`;
/// docker's cache rule): for each, the names, types, modes, owners, sizes and link targets of
/// what it holds and the sha256 of every file's content, taken from `known` (a kept context's
/// digests) when it has them, else read.
pub fn sources_digest(root: &Path, sources: &[PathBuf], known: Option<&FileHashes>) -> Result<String> {
    let mut h = Sha256::new();
    for src in sources {
        h.update(format!("{}\0", src.display()).as_bytes());
        let real = resolve_in(root, src, true)?.with_context(|| format!("source {} vanished", src.display()))?;
        for (rel, path) in walk(&real)? {
            let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            h.update(format!("{}\0{:o}\0{}\0{}\0", rel.display(), meta.mode(), meta.uid(), meta.len()).as_bytes());
            if meta.file_type().is_symlink() {
                h.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                match known.and_then(|k| k.get(&path)) {
                    Some(digest) => h.update(digest),
                    None => h.update(file_sha256(&path)?),
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The sha256 of the file at `path`'s content.
pub fn file_sha256(path: &Path) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut f =
        BufReader::with_capacity(256 << 10, File::open(path).with_context(|| format!("opening {}", path.display()))?);
    io::copy(&mut f, &mut HashWriter(&mut h)).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().into())
}

/// `abs` (clean, absolute) with its longest existing prefix resolved inside `dest_root`
/// (symlinks followed, never out of it), relative to the root.
fn real_dest(dest_root: &Path, abs: &str) -> Result<PathBuf> {
    let rel = clean_relative(abs).unwrap_or_default();
    let components: Vec<_> = rel.components().collect();
    let root_dir = File::open(dest_root).with_context(|| format!("opening {}", dest_root.display()))?;
    let root = berth_runtime::safe_path::fd_path(&root_dir)?;
    for keep in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..keep].iter().collect();
        if let Some(real) = resolve_in(dest_root, &prefix, true)? {
            let mut out = real.strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default();
            out.extend(&components[keep..]);
            return Ok(out);
        }
    }
    Ok(rel)
}

/// A local archive ADD extracts: plain tar (ustar magic) or gzip; bzip2 and xz are refused by
/// name rather than copied as files.
fn is_archive(path: &Path) -> Result<bool> {
    let mut head = [0u8; 512];
    let n = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .with_context(|| format!("reading {}", path.display()))?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(true);
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(Invalid(format!("ADD {}: bzip2 and xz archives are not supported", path.display())).into());
    }
    Ok(n >= 262 && &head[257..262] == b"ustar")
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl Plan {
    /// Writes the layer; returns how many entries it has.
    pub fn write_tar(&self, out: &mut dyn Write) -> Result<usize> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        let mut count = 0;
        // Directories copied onto a destination directory write it themselves: it is not written
        // twice (docker refuses layers with a path twice).
        let mut written_dirs: std::collections::HashSet<PathBuf> = self
            .items
            .iter()
            .filter(|(src, _)| resolve_in(&self.root, src, true).ok().flatten().is_some_and(|p| p.is_dir()))
            .map(|(_, target)| target.clone())
            .collect();
        for (dir, meta) in &self.keep_dirs {
            if written_dirs.contains(dir) {
                continue;
            }
            let mut header = crate::diff::header_for(meta);
            header.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut header, dir, io::empty())?;
            count += 1;
        }
        let (uid, gid) = self.owner.unwrap_or((0, 0));
        for dir in &self.make_dirs {
            if written_dirs.contains(dir) {
                continue;
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            header.set_mtime(now_secs());
            // Directories the copy makes belong to the new owner (docker's MkdirAllAndChownNew).
            header.set_uid(u64::from(uid));
            header.set_gid(u64::from(gid));
            tar.append_data(&mut header, dir, io::empty())?;
            count += 1;
        }
        for (src, target) in &self.items {
            let real = resolve_in(&self.root, src, true)?.context("source vanished")?;
            if self.extract && fs::metadata(&real)?.is_file() && is_archive(&real)? {
                count += self.extract_into(&mut tar, &real, target)?;
                continue;
            }
            let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
            for (rel, path) in walk(&real)? {
                let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
                // The named source itself is followed (it was resolved); what is below it is not.
                let meta = if rel.as_os_str().is_empty() { fs::metadata(&path)? } else { meta };
                let dest = if rel.as_os_str().is_empty() { target.clone() } else { target.join(&rel) };
                // An OCI layer reads such a name as a deletion: the file could never be in the
                // image (docker writes it and loses it; berth says so).
                if dest.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".wh.")) {
                    return Err(Invalid(format!(
                        "COPY {}: a file named {:?} cannot be in an image layer (OCI whiteout name)",
                        src.join(&rel).display(),
                        dest.file_name().unwrap_or_default()
                    ))
                    .into());
                }
                let mut header = crate::diff::header_for(&meta);
                header.set_uid(u64::from(uid));
                header.set_gid(u64::from(gid));
                if let Some(mode) = self.chmod {
                    header.set_mode(mode);
                }
                let ft = meta.file_type();
                if ft.is_dir() {
                    if rel.as_os_str().is_empty() && dest.as_os_str().is_empty() {
                        continue;
                    }
                    // A second directory source onto the same destination writes it once.
                    if rel.as_os_str().is_empty()
                        && !written_dirs.remove(&dest)
                        && self.items.iter().filter(|(_, t)| *t == dest).count() > 1
                    {
                        continue;
                    }
                    header.set_entry_type(tar::EntryType::Directory);
                    tar.append_data(&mut header, &dest, io::empty())?;
                } else if ft.is_symlink() {
                    header.set_entry_type(tar::EntryType::Symlink);
                    tar.append_link(&mut header, &dest, fs::read_link(&path)?)?;
                } else if ft.is_file() {
                    if meta.nlink() > 1 {
                        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                            header.set_entry_type(tar::EntryType::Link);
                            tar.append_link(&mut header, &dest, first)?;
                            count += 1;
                            continue;
                        }
                        links.insert((meta.dev(), meta.ino()), dest.clone());
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(meta.len());
                    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    tar.append_data(&mut header, &dest, BufReader::with_capacity(256 << 10, file))?;
                } else if ft.is_fifo() {
                    header.set_entry_type(tar::EntryType::Fifo);
                    tar.append_data(&mut header, &dest, io::empty())?;
                } else {
                    // Devices and sockets are not copied (docker's builder skips sockets too).
                    continue;
                }
                count += 1;
            }
        }
        tar.finish()?;
        Ok(count)
    }

    /// ADD's extraction of a local archive under `target`: every entry's path cleaned and kept
    /// below `target` (an entry climbing out is refused), owners kept unless `--chown`.
    fn extract_into(&self, tar: &mut tar::Builder<&mut dyn Write>, archive: &Path, target: &Path) -> Result<usize> {
        let file = BufReader::new(File::open(archive).with_context(|| format!("opening {}", archive.display()))?);
        let mut head = [0u8; 2];
        let gz = File::open(archive).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == [0x1f, 0x8b];
        let reader: Box<dyn Read> = if gz { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        let mut input = tar::Archive::new(reader);
        let mut count = 0;
        for entry in input.entries().with_context(|| format!("reading archive {}", archive.display()))? {
            let mut entry = entry.with_context(|| format!("reading archive {}", archive.display()))?;
            let raw = entry.path_bytes().into_owned();
            let Some(rel) = clean_relative(&String::from_utf8_lossy(&raw)) else {
                return Err(Invalid(format!(
                    "ADD {}: entry {:?} climbs out of the destination",
                    archive.display(),
                    String::from_utf8_lossy(&raw)
                ))
                .into());
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            if rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".wh.")) {
                return Err(Invalid(format!(
                    "ADD {}: {} has a whiteout's name, which a layer cannot hold",
                    archive.display(),
                    rel.display()
                ))
                .into());
            }
            let dest = target.join(&rel);
            // A fresh header: sparse and extended entries of the archive become plain ones.
            let old = entry.header();
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(match old.entry_type() {
                tar::EntryType::GNUSparse | tar::EntryType::Continuous => tar::EntryType::Regular,
                other => other,
            });
            header.set_mode(old.mode().unwrap_or(0o644));
            header.set_uid(old.uid().unwrap_or(0));
            header.set_gid(old.gid().unwrap_or(0));
            header.set_mtime(old.mtime().unwrap_or(0));
            header.set_size(0);
            if let (Ok(Some(major)), Ok(Some(minor))) = (old.device_major(), old.device_minor()) {
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
            }
            if let Some((uid, gid)) = self.owner {
                header.set_uid(u64::from(uid));
                header.set_gid(u64::from(gid));
            }
            match header.entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let link = entry.link_name()?.context("link without a target")?.into_owned();
                    let link = if header.entry_type() == tar::EntryType::Link {
                        let inside = clean_relative(&link.to_string_lossy()).filter(|l| !l.as_os_str().is_empty());
                        let Some(inside) = inside else {
                            let shown = link.display().to_string();
                            return Err(Invalid(format!(
                                "ADD {}: hard link {shown:?} climbs out of the destination",
                                archive.display()
                            ))
                            .into());
                        };
                        target.join(inside)
                    } else {
                        link
                    };
                    tar.append_link(&mut header, &dest, link)?;
                }
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => continue,
                _ => {
                    header.set_size(entry.size());
                    tar.append_data(&mut header, &dest, &mut entry)?;
                }
            }
            count += 1;
        }
        Ok(count)
    }
}

/// WORKDIR's layer: the directory and its missing parents, 0755 root (docker makes it so);
/// nothing when it exists.
pub fn workdir_plan(dir: &str, dest_root: &Path) -> Result<Plan> {
    let rel = real_dest(dest_root, dir)?;
    let mut make_dirs = Vec::new();
    let mut at = PathBuf::new();
    for c in rel.components() {
        at.push(c);
        match resolve_in(dest_root, &at, true)? {
            Some(p) if p.is_dir() => {}
            Some(_) => return Err(Invalid(format!("WORKDIR {dir}: {} is not a directory", at.display())).into()),
            None => make_dirs.push(at.clone()),
        }
    }
    Ok(Plan {
        root: PathBuf::new(),
        items: Vec::new(),
        make_dirs,
        keep_dirs: Vec::new(),
        owner: None,
        chmod: None,
        extract: false,
    })
}

/// Every entry under `path` (itself first, as ""), children by name, not following symlinks
/// below it.
fn walk(path: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = vec![(PathBuf::new(), path.to_path_buf())];
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        walk_dir(path, Path::new(""), &mut out)?;
    }
    Ok(out)
}

fn walk_dir(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let child = rel.join(&name);
        let path = root.join(&child);
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        out.push((child.clone(), path));
        if is_dir {
            walk_dir(root, &child, out)?;
        }
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_go() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.md"));
        assert!(glob_match("file?", "file1"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
    }

    #[test]
    fn sources_stay_inside_their_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("evil")).unwrap();
        let found = expand_sources(&root, &["*.txt".into()], "build context").unwrap();
        assert_eq!(found, [PathBuf::from("a.txt"), PathBuf::from("b.txt")]);
        assert!(expand_sources(&root, &["../x".into()], "c")
            .unwrap_err()
            .to_string()
            .contains("forbidden path outside"));
        // An absolute link target is taken inside the root: /etc/passwd is not there.
        assert!(expand_sources(&root, &["evil".into()], "c").is_err());
        assert!(expand_sources(&root, &["nope*".into()], "c").unwrap_err().to_string().contains("no source files"));
    }
}
