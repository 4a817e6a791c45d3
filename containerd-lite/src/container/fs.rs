//! A container's files, running or not, for `cp` and `export`: its root filesystem held as a
//! directory fd, and docker's archive operations on it (stat a path, tar a path, extract a tar
//! into a directory, tar the whole root filesystem).
//!
//! A running (or paused) container's root is its init's `/proc/<pid>/root`, so its volumes and
//! binds show where the container sees them; `export` takes the task's `<bundle>/rootfs` (the
//! overlay alone). A stopped container's snapshot is mounted, with its volumes and binds, in a
//! mount namespace private to one thread: the mounts never show in berthd's namespace and go away
//! with the thread whatever happens; the empty mountpoint directory under `<root>/tmp` is removed
//! afterwards.
//!
//! Paths inside a container are hostile: every lookup is openat2(RESOLVE_IN_ROOT) below the root
//! fd (a symlink to `/` resolves to the container's root), never through a /proc magic link, and
//! walks go from directory fd to directory fd with O_NOFOLLOW.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{self, FileStat, Mode, SFlag};

use super::ContainerRecord;
use crate::daemon::Berthd;
use crate::image::archive::{self, join_components, open_in_root, ExtractOptions};

/// Symlinks followed while resolving one path, as Linux's limit.
const MAX_SYMLINKS: usize = 40;
/// Deeper trees are refused rather than walked (each level holds a directory fd).
const MAX_DEPTH: usize = 1024;
/// Longest /etc/passwd or /etc/group read for `cp -a`.
const MAX_ID_FILE: u64 = 4 << 20;

/// Why an operation on a container's files failed, as docker words it.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path (or one of its parents) does not exist in the container.
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    /// A tar is only extracted into a directory.
    #[error("extraction point is not a directory")]
    NotADirectory,
    /// `--read-only`: nothing is written outside a writable volume.
    #[error("container rootfs is marked read-only")]
    RootfsReadOnly,
    /// The destination is in a read-only volume or bind.
    #[error("mounted volume is marked read-only")]
    VolumeReadOnly,
    /// The tar sent is malformed or hostile.
    #[error("Error processing tar file: {0}")]
    BadArchive(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What of the container a root shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The root filesystem with the container's volumes and binds (`cp`).
    WithMounts,
    /// The root filesystem alone (`export`).
    RootfsOnly,
}

/// A container's root filesystem, held open.
pub struct ContainerRoot {
    fd: OwnedFd,
}

/// docker's ContainerPathStat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The name the path's archive entries start with (`.` for `dir/.`, `/` for the root).
    pub name: String,
    pub size: i64,
    /// st_mode: file type and permission bits.
    pub mode: u32,
    pub mtime_seconds: i64,
    pub mtime_nanos: u32,
    /// A symlink's target resolved inside the container, absolute; empty for anything else.
    pub link_target: String,
}

/// A path as a client names it inside the container, cleaned as docker cleans it (lexically,
/// `..` stopping at `/`), remembering whether its last element is to be followed (a trailing
/// `/` or `/.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath {
    components: Vec<OsString>,
    follow_last: bool,
    /// docker's `filepath.Base` of the path: the name its archive's entries start with.
    name: String,
    shown: String,
}

impl ContainerPath {
    /// A path as the API carries it (relative ones are taken from `/`, as docker does).
    pub fn parse(path: &str) -> ContainerPath {
        let mut components: Vec<OsString> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                name => components.push(OsString::from(name)),
            }
        }
        let current_dir = path == "." || path.ends_with("/.");
        let follow_last = current_dir || path.ends_with('/');
        let name = if current_dir {
            ".".to_string()
        } else {
            components.last().map_or_else(|| "/".to_string(), |c| c.to_string_lossy().into_owned())
        };
        ContainerPath { components, follow_last, name, shown: path.to_string() }
    }

    /// `/` and the cleaned components.
    fn absolute(components: &[OsString]) -> String {
        format!("/{}", String::from_utf8_lossy(&join_components(components)))
    }
}

impl ContainerRoot {
    fn open_at(&self, components: &[OsString], flags: OFlag) -> io::Result<OwnedFd> {
        open_in_root(self.fd.as_fd(), &join_components(components), flags, true)
    }

    /// Resolves `components` inside the root as the kernel would under chroot to it: symlinks
    /// are followed (the last one only with `follow_last`), `..` stops at the root, and a
    /// missing element ends the resolution lexically (what follows it is taken as named).
    /// Every lookup is confined to the root; the result is what a later confined open finds.
    pub fn resolve(&self, components: &[OsString], follow_last: bool) -> io::Result<Vec<OsString>> {
        let mut pending: Vec<OsString> = components.iter().rev().cloned().collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        let mut missing = false;
        while let Some(component) = pending.pop() {
            match component.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let last = pending.iter().all(|c| matches!(c.as_bytes(), b"" | b"."));
            resolved.push(component);
            if missing || (last && !follow_last) {
                continue;
            }
            let fd = match self.open_at(&resolved, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    missing = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if file_type(&stat::fstat(&fd)?) != SFlag::S_IFLNK {
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = fcntl::readlinkat(&fd, "")?;
            resolved.pop();
            if target.as_bytes().starts_with(b"/") {
                resolved.clear();
            }
            for part in target.as_bytes().split(|&b| b == b'/').rev() {
                pending.push(OsStr::from_bytes(part).to_os_string());
            }
        }
        Ok(resolved)
    }

    /// The element `path` names, resolved as docker's ResolvePath (its last element followed
    /// only after a trailing `/` or `/.`), and its lstat.
    fn lookup(&self, path: &ContainerPath) -> io::Result<(Vec<OsString>, FileStat)> {
        let resolved = if path.follow_last {
            self.resolve(&path.components, true)?
        } else {
            match path.components.split_last() {
                Some((last, parent)) => {
                    let mut resolved = self.resolve(parent, true)?;
                    resolved.push(last.clone());
                    resolved
                }
                None => Vec::new(),
            }
        };
        let st = stat::fstat(&self.open_at(&resolved, OFlag::O_PATH | OFlag::O_NOFOLLOW)?)?;
        Ok((resolved, st))
    }

    /// docker's StatPath: what `path` names (see [`Self::lookup`]), resolved, and its stat.
    /// `container` is the container as the user named it, for the not-found message.
    pub fn stat_path(&self, path: &ContainerPath, container: &str) -> Result<(Vec<OsString>, PathStat), FsError> {
        let failed = |e: io::Error| match e.raw_os_error() {
            Some(libc::ENOENT) => FsError::NotFound { path: path.shown.clone(), container: container.to_string() },
            _ => FsError::Other(anyhow::Error::new(e).context(format!("lstat {}", path.shown))),
        };
        let (resolved, st) = self.lookup(path).map_err(failed)?;
        let link_target = if file_type(&st) == SFlag::S_IFLNK {
            ContainerPath::absolute(&self.resolve(&path.components, true).map_err(failed)?)
        } else {
            String::new()
        };
        let stat = PathStat {
            name: path.name.clone(),
            size: st.st_size,
            mode: st.st_mode,
            mtime_seconds: st.st_mtime,
            mtime_nanos: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            link_target,
        };
        Ok((resolved, stat))
    }

    /// Writes a tar of what `resolved` (from [`Self::stat_path`]) names, its entries named after
    /// `name`: `name` for a file, `name/` and `name/…` for a directory.
    pub fn archive_path(&self, resolved: &[OsString], name: &str, out: impl Write) -> io::Result<()> {
        let mut tar = TarWriter::new(out);
        match resolved.split_last() {
            None => {
                let dir = self.open_at(&[], OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                tar.append_dir_tree(dir, name.as_bytes(), true)?;
            }
            Some((last, parent)) => {
                let dir = self.open_at(parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                tar.append_child(dir.as_fd(), last, name.as_bytes(), 0)?;
            }
        }
        tar.finish()
    }

    /// Writes a tar of the whole root filesystem, entries named relative to it (docker's export).
    pub fn export(&self, out: impl Write) -> io::Result<()> {
        let mut tar = TarWriter::new(out);
        let dir = self.open_at(&[], OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        tar.append_dir_tree(dir, b"", false)?;
        tar.finish()
    }

    /// Reads a small regular file of the container (`/etc/passwd`), if it has one.
    fn read_file(&self, path: &str) -> io::Result<Option<String>> {
        let components = ContainerPath::parse(path).components;
        let fd = match self.open_at(&components, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if file_type(&stat::fstat(&fd)?) != SFlag::S_IFREG {
            return Ok(None);
        }
        let mut text = String::new();
        File::from(fd).take(MAX_ID_FILE).read_to_string(&mut text)?;
        Ok(Some(text))
    }
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// A container's mount as a stopped container gets it: a volume's directory or a bind's source.
struct Bind {
    source: PathBuf,
    target: String,
}

/// Runs `f` on the root filesystem of `record` as `scope` says. `task` is the live task's init
/// pid and bundle, if the container runs (the caller holds the container's task lock, so it
/// neither starts nor goes away meanwhile).
pub fn with_root<T: Send>(
    d: &Berthd,
    record: &ContainerRecord,
    task: Option<(u32, &Path)>,
    scope: Scope,
    f: impl FnOnce(&ContainerRoot) -> Result<T, FsError> + Send,
) -> Result<T, FsError> {
    match (task, scope) {
        (Some((pid, _)), Scope::WithMounts) => f(&open_process_root(pid)?),
        (Some((_, bundle)), Scope::RootfsOnly) => {
            let rootfs = bundle.join("rootfs");
            let fd = fcntl::open(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .with_context(|| format!("opening {}", rootfs.display()))?;
            f(&ContainerRoot { fd })
        }
        (None, scope) => with_private_mount(d, record, scope, f),
    }
}

/// The root of process `pid` (a container's init), refusing the host's own root: a pid reused
/// by a host process must not make berthd work on the host's files.
fn open_process_root(pid: u32) -> Result<ContainerRoot, FsError> {
    let proc_dir = format!("/proc/{pid}");
    let process = fcntl::open(proc_dir.as_str(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {proc_dir}"))?;
    let fd = fcntl::openat(&process, "root", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {proc_dir}/root"))?;
    // The /proc/<pid> fd stays bound to the process it was opened for: this fails once it is gone.
    stat::fstatat(&process, "stat", AtFlags::empty()).with_context(|| format!("the container's init {pid} is gone"))?;
    let (root, host) = (stat::fstat(&fd).context("stat of the container's root")?, stat::stat("/").context("stat /")?);
    if (root.st_dev, root.st_ino) == (host.st_dev, host.st_ino) {
        return Err(anyhow!("process {pid} has the host's root: not the container's init").into());
    }
    Ok(ContainerRoot { fd })
}

/// The volumes and binds of `record` (docker's MountPoints), outermost first.
fn binds(d: &Berthd, record: &ContainerRecord) -> Vec<Bind> {
    let mut binds: Vec<Bind> = record
        .config
        .mounts
        .iter()
        .filter_map(|m| match m.kind.as_str() {
            "volume" if !m.host_path.is_empty() => {
                Some(Bind { source: m.host_path.clone().into(), target: m.target.clone() })
            }
            "volume" => Some(Bind { source: d.volumes.mountpoint(&m.source), target: m.target.clone() }),
            "bind" => Some(Bind { source: m.source.clone().into(), target: m.target.clone() }),
            _ => None,
        })
        .collect();
    binds.sort_by_key(|b| ContainerPath::parse(&b.target).components.len());
    binds
}

/// Mounts the snapshot of stopped container `record` (with its volumes and binds for
/// [`Scope::WithMounts`]) in a mount namespace of a thread of its own, and runs `f` there.
fn with_private_mount<T: Send>(
    d: &Berthd,
    record: &ContainerRecord,
    scope: Scope,
    f: impl FnOnce(&ContainerRoot) -> Result<T, FsError> + Send,
) -> Result<T, FsError> {
    let mounts = d.snapshots.mounts(&record.snapshot_key).context("the container's snapshot")?;
    let binds = if scope == Scope::WithMounts { binds(d, record) } else { Vec::new() };
    let scratch_parent = d.cfg.root.join("tmp");
    std::fs::create_dir_all(&scratch_parent).with_context(|| format!("creating {}", scratch_parent.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("container-fs-")
        .tempdir_in(&scratch_parent)
        .with_context(|| format!("creating a mountpoint in {}", scratch_parent.display()))?;
    let target = scratch.path();
    let result = std::thread::scope(|s| {
        s.spawn(move || -> Result<T, FsError> {
            // Only this thread's view of mounts changes; nothing propagates back to the host's.
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("unsharing the mount namespace")?;
            nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .context("making the private mount namespace's mounts private")?;
            for m in &mounts {
                m.mount(target)
                    .with_context(|| format!("mounting the container's snapshot at {}", target.display()))?;
            }
            let result = (|| {
                let fd = fcntl::open(target, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                    .with_context(|| format!("opening {}", target.display()))?;
                let root = ContainerRoot { fd };
                for bind in &binds {
                    mount_bind(&root, bind)
                        .with_context(|| format!("mounting {} at {}", bind.source.display(), bind.target))?;
                }
                f(&root)
            })();
            // The thread's end takes the namespace and its mounts along; unmounting first makes
            // the snapshot free again before the caller goes on (a start may follow).
            if let Err(e) = nix::mount::umount2(target, MntFlags::MNT_DETACH) {
                tracing::warn!(target = %target.display(), "unmounting a container's snapshot: {e}");
            }
            result
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow!("the thread working on the container's files panicked").into()))
    });
    let shown = target.display().to_string();
    if let Err(e) = scratch.close() {
        tracing::warn!("removing {shown}: {e}");
    }
    result
}

/// Bind-mounts `bind.source` at `bind.target` inside `root` (the target resolved inside it and
/// created, a directory or an empty file like the source, when missing, as the runtime would).
fn mount_bind(root: &ContainerRoot, bind: &Bind) -> anyhow::Result<()> {
    let components = root.resolve(&ContainerPath::parse(&bind.target).components, true)?;
    let target = match root.open_at(&components, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let Some((name, parent)) = components.split_last() else { anyhow::bail!("a mount on the root") };
            let dir = archive::create_dir_all_in(root.fd.try_clone()?, parent.to_vec())?;
            if std::fs::metadata(&bind.source).with_context(|| format!("stat {}", bind.source.display()))?.is_dir() {
                stat::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755))?;
            } else {
                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                drop(fcntl::openat(&dir, name.as_os_str(), flags, Mode::from_bits_truncate(0o644))?);
            }
            root.open_at(&components, OFlag::O_PATH | OFlag::O_NOFOLLOW)?
        }
        Err(e) => return Err(e.into()),
    };
    let at = format!("/proc/thread-self/fd/{}", target.as_raw_fd());
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(bind.source.as_path()), at.as_str(), None::<&str>, flags, None::<&str>)?;
    Ok(())
}

/// The directory `path` resolves to in `root` (its last element followed), checked writable as
/// docker checks it: inside a volume, that volume must be writable; elsewhere the root filesystem
/// must not be read-only. `container` is the container as the user named it.
pub fn extraction_point(
    root: &ContainerRoot,
    record: &ContainerRecord,
    path: &ContainerPath,
    container: &str,
) -> Result<Vec<OsString>, FsError> {
    let not_found = || FsError::NotFound { path: path.shown.clone(), container: container.to_string() };
    let resolved = root.resolve(&path.components, true).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => not_found(),
        _ => FsError::Other(anyhow::Error::new(e).context(format!("resolving {}", path.shown))),
    })?;
    let st = match root.open_at(&resolved, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => stat::fstat(&fd).context("stat of the extraction point")?,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(not_found()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(FsError::NotADirectory),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.shown)).into()),
    };
    if file_type(&st) != SFlag::S_IFDIR {
        return Err(FsError::NotADirectory);
    }
    // The mount the path is in: the one with the longest destination that contains it.
    let volume = record
        .config
        .mounts
        .iter()
        .filter(|m| m.kind == "volume" || m.kind == "bind")
        .filter(|m| resolved.starts_with(&ContainerPath::parse(&m.target).components))
        .max_by_key(|m| ContainerPath::parse(&m.target).components.len());
    match volume {
        Some(m) if m.read_only => Err(FsError::VolumeReadOnly),
        None if record.config.read_only => Err(FsError::RootfsReadOnly),
        _ => Ok(resolved),
    }
}

/// Extracts `tar` into `dir` (from [`extraction_point`]). With `copy_uid_gid` and a configured
/// user, every entry is owned by that user as the container's /etc/passwd and /etc/group resolve
/// it (docker's tarCopyOptions); otherwise entries keep the owners their headers name.
pub fn extract(
    root: &ContainerRoot,
    record: &ContainerRecord,
    dir: Vec<OsString>,
    copy_uid_gid: bool,
    no_overwrite_dir_non_dir: bool,
    tar: impl Read,
) -> Result<(), FsError> {
    let mut options = ExtractOptions { no_overwrite_dir_non_dir, ..Default::default() };
    let user = record.config.user.as_deref().unwrap_or_default();
    if copy_uid_gid && !user.is_empty() {
        let passwd = root.read_file("/etc/passwd").context("reading the container's /etc/passwd")?;
        let group = root.read_file("/etc/group").context("reading the container's /etc/group")?;
        let resolved = super::user::resolve(user, &[], passwd.as_deref(), group.as_deref())?;
        options.chown = Some((resolved.uid, resolved.gid));
    }
    let fd = root.fd.try_clone().context("duplicating the root fd")?;
    archive::extract(tar, fd, dir, &options).map_err(|e| match e {
        archive::ArchiveError::Stream(e) => FsError::BadArchive(e.to_string()),
        archive::ArchiveError::InvalidEntry { path, problem } => FsError::BadArchive(format!("{path:?}: {problem}")),
        other => FsError::Other(other.into()),
    })
}

/// A tar stream of a container's files, written as docker's archive package writes it: names
/// with a trailing `/` for directories, hard links as links to the first name, sockets left out,
/// whole-second times, GNU long names past 100 bytes.
struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (device, inode) of files with several links → the first name written.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> TarWriter<W> {
        TarWriter { tar: tar::Builder::new(out), links: HashMap::new() }
    }

    fn finish(self) -> io::Result<()> {
        let mut out = self.tar.into_inner()?;
        out.flush()
    }

    /// The directory `dir` as `name/` (unless `with_self` is false: export's root) and
    /// everything below it, children in name order.
    fn append_dir_tree(&mut self, dir: OwnedFd, name: &[u8], with_self: bool) -> io::Result<()> {
        if with_self {
            let st = stat::fstat(&dir)?;
            self.append_header(&st, &dir_name(name), None, None)?;
        }
        self.append_children(dir, name, 0)
    }

    fn append_children(&mut self, dir: OwnedFd, prefix: &[u8], depth: usize) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!("more than {MAX_DEPTH} directory levels")));
        }
        let mut names: Vec<OsString> = Vec::new();
        {
            let listing_fd =
                fcntl::openat(&dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
            let mut listing = Dir::from_fd(listing_fd)?;
            for entry in listing.iter() {
                let name = entry?.file_name().to_bytes().to_vec();
                if name != b"." && name != b".." {
                    names.push(OsString::from(OsStr::from_bytes(&name)));
                }
            }
        }
        names.sort();
        for child in names {
            let mut name = prefix.to_vec();
            if !name.is_empty() && !name.ends_with(b"/") {
                name.push(b'/');
            }
            name.extend_from_slice(child.as_bytes());
            self.append_child(dir.as_fd(), &child, &name, depth + 1)?;
        }
        Ok(())
    }

    /// `child` of `dir` as the entry `name` (and all below it, for a directory). An entry gone
    /// since its directory was listed is skipped.
    fn append_child(&mut self, dir: BorrowedFd<'_>, child: &OsStr, name: &[u8], depth: usize) -> io::Result<()> {
        let st = match stat::fstatat(dir, child, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match file_type(&st) {
            SFlag::S_IFDIR => {
                let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let sub = fcntl::openat(dir, child, flags, Mode::empty())?;
                let st = stat::fstat(&sub)?;
                self.append_header(&st, &dir_name(name), None, None)?;
                self.append_children(sub, name, depth)
            }
            SFlag::S_IFLNK => {
                let target = fcntl::readlinkat(dir, child)?;
                self.append_header(&st, name, Some(target.as_bytes()), None)
            }
            SFlag::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        return self.append_header(&st, name, Some(&first), None);
                    }
                    self.links.insert(key, name.to_vec());
                }
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
                let file = File::from(fcntl::openat(dir, child, flags, Mode::empty())?);
                let st = stat::fstat(&file)?;
                if file_type(&st) != SFlag::S_IFREG {
                    return Err(io::Error::other(format!(
                        "{} changed while it was archived",
                        String::from_utf8_lossy(name)
                    )));
                }
                self.append_header(&st, name, None, Some(file))
            }
            SFlag::S_IFSOCK => Ok(()),
            _ => self.append_header(&st, name, None, None),
        }
    }

    /// One entry: `link` is a symlink's target or (for a regular file) the name it is a hard
    /// link to; `file` a regular file's content.
    fn append_header(&mut self, st: &FileStat, name: &[u8], link: Option<&[u8]>, file: Option<File>) -> io::Result<()> {
        let kind = file_type(st);
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        let entry_type = match (kind, link) {
            (SFlag::S_IFDIR, _) => tar::EntryType::Directory,
            (SFlag::S_IFLNK, _) => tar::EntryType::Symlink,
            (SFlag::S_IFREG, Some(_)) => tar::EntryType::Link,
            (SFlag::S_IFREG, None) => tar::EntryType::Regular,
            (SFlag::S_IFCHR, _) => tar::EntryType::Char,
            (SFlag::S_IFBLK, _) => tar::EntryType::Block,
            _ => tar::EntryType::Fifo,
        };
        header.set_entry_type(entry_type);
        if matches!(kind, SFlag::S_IFCHR | SFlag::S_IFBLK) {
            header.set_device_major(stat::major(st.st_rdev) as u32)?;
            header.set_device_minor(stat::minor(st.st_rdev) as u32)?;
        }
        self.set_long(&mut header, name, tar::EntryType::GNULongName, |h, bytes| {
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes)
        })?;
        if let Some(link) = link {
            self.set_long(&mut header, link, tar::EntryType::GNULongLink, |h, bytes| {
                h.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes)
            })?;
        }
        match file {
            Some(file) => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                header.set_size(size);
                header.set_cksum();
                // A file that shrinks while it is read is padded, so the archive stays whole.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.tar.append(&header, data)
            }
            None => {
                header.set_cksum();
                self.tar.append(&header, io::empty())
            }
        }
    }

    /// Puts `value` in a 100-byte header field; longer values go first as a GNU long name/link
    /// entry, the field keeping their first 100 bytes.
    fn set_long(
        &mut self,
        header: &mut tar::Header,
        value: &[u8],
        long_kind: tar::EntryType,
        set: impl Fn(&mut tar::Header, &[u8]),
    ) -> io::Result<()> {
        if value.contains(&0) {
            return Err(io::Error::other("a name holds a NUL byte"));
        }
        if value.len() > 100 {
            let mut long = tar::Header::new_gnu();
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_mode(0o644);
            long.set_uid(0);
            long.set_gid(0);
            long.set_mtime(0);
            long.set_entry_type(long_kind);
            let mut data = value.to_vec();
            data.push(0);
            long.set_size(data.len() as u64);
            long.set_cksum();
            self.tar.append(&long, &data[..])?;
        }
        set(header, &value[..value.len().min(100)]);
        Ok(())
    }
}

/// A directory's entry name: with a trailing `/` (but `/` itself stays `/`).
fn dir_name(name: &[u8]) -> Vec<u8> {
    let mut name = name.to_vec();
    if !name.ends_with(b"/") {
        name.push(b'/');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_cleaned_as_docker_cleans_them() {
        let p = ContainerPath::parse("/d/../etc/./passwd");
        assert_eq!(p.components, ["etc", "passwd"]);
        assert!(!p.follow_last);
        assert_eq!(p.name, "passwd");
        let p = ContainerPath::parse("etc/");
        assert!(p.follow_last);
        assert_eq!(p.name, "etc");
        let p = ContainerPath::parse("/etc/.");
        assert!(p.follow_last);
        assert_eq!(p.name, ".");
        let p = ContainerPath::parse("/../..");
        assert!(p.components.is_empty());
        assert_eq!(p.name, "/");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("real/sub")).expect("mkdir");
        std::os::unix::fs::symlink("/", dir.path().join("evil")).expect("symlink");
        std::os::unix::fs::symlink("../../..", dir.path().join("real/up")).expect("symlink");
        std::os::unix::fs::symlink("sub", dir.path().join("real/rel")).expect("symlink");
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).expect("symlink");
        let fd = fcntl::open(dir.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        let root = ContainerRoot { fd };
        let parts = |p: &str| ContainerPath::parse(p).components;
        assert_eq!(root.resolve(&parts("/evil/real/rel"), true).expect("resolve"), ["real", "sub"]);
        assert_eq!(root.resolve(&parts("/real/up/etc/shadow"), true).expect("resolve"), ["etc", "shadow"]);
        assert_eq!(root.resolve(&parts("/real/rel"), false).expect("resolve"), ["real", "rel"]);
        assert_eq!(root.resolve(&parts("/evil"), true).expect("resolve"), Vec::<OsString>::new());
        let err = root.resolve(&parts("/loop"), true).expect_err("a loop");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn archives_keep_modes_times_links_and_long_names() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("d");
        let long = "n".repeat(150);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(d.join("f"), "hi\n").expect("write");
        std::fs::write(d.join(&long), "long").expect("write");
        for (path, mode) in [(d.clone(), 0o750), (d.join("f"), 0o751), (d.join(&long), 0o600)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let t = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
        stat::utimensat(fcntl::AT_FDCWD, &d.join("f"), &t, &t, stat::UtimensatFlags::NoFollowSymlink)
            .expect("utimensat");
        std::fs::hard_link(d.join("f"), d.join("h")).expect("hard link");
        std::os::unix::fs::symlink(&long, d.join("l")).expect("symlink");
        let fd = fcntl::open(dir.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        let root = ContainerRoot { fd };

        let (resolved, stat) = root.stat_path(&ContainerPath::parse("/d/."), "c").expect("stat");
        assert_eq!(stat.name, ".");
        let mut tar = Vec::new();
        root.archive_path(&resolved, &stat.name, &mut tar).expect("archive");
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = header.entry_type().as_byte() as char;
            let mode = if kind == '2' { 0 } else { header.mode().expect("mode") };
            seen.push((name, kind, mode, header.mtime().expect("mtime") == 1_000_000_000, link));
        }
        let expected = [
            ("./".to_string(), '5', 0o750, false, String::new()),
            ("./f".to_string(), '0', 0o751, true, String::new()),
            ("./h".to_string(), '1', 0o751, true, "./f".to_string()),
            ("./l".to_string(), '2', 0, false, long.clone()),
            (format!("./{long}"), '0', 0o600, false, String::new()),
        ];
        assert_eq!(seen, expected);
    }

    /// A tar of `(name, data)` regular files.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o640);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(data.len() as u64);
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            tar.append(&header, *data).expect("append");
        }
        tar.into_inner().expect("tar")
    }

    #[test]
    fn extraction_stays_in_the_container_and_takes_whiteout_names_literally() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("base")).expect("mkdir");
        std::os::unix::fs::symlink("/", dir.path().join("base/out")).expect("symlink");
        let open = || fcntl::open(dir.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        let base = vec![OsString::from("base")];
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let options = ExtractOptions { chown: Some((uid, gid)), no_overwrite_dir_non_dir: true, ..Default::default() };
        let tar = tar_of(&[("x", b"x"), ("out/z", b"z"), (".wh.x", b"w")]);
        archive::extract(&tar[..], open(), base.clone(), &options).expect("extract");
        assert_eq!(std::fs::read(dir.path().join("base/x")).expect("x"), b"x");
        assert_eq!(std::fs::read(dir.path().join("z")).expect("through the link, inside the root"), b"z");
        assert_eq!(std::fs::read(dir.path().join("base/.wh.x")).expect("a plain file"), b"w");

        let escape = tar_of(&[("../../escaped", b"e")]);
        archive::extract(&escape[..], open(), base.clone(), &options).expect_err("climbing out is refused");
        let onto_dir = tar_of(&[("out", b"o")]);
        std::fs::remove_file(dir.path().join("base/out")).expect("rm");
        std::fs::create_dir(dir.path().join("base/out")).expect("mkdir");
        let err = archive::extract(&onto_dir[..], open(), base, &options).expect_err("a file onto a directory");
        assert!(err.to_string().contains("cannot overwrite directory with non-directory"), "{err}");
    }
}
