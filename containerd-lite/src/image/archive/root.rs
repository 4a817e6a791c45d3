//! The layer root: the destination directory held open as a dirfd. Every path a layer names is
//! resolved here with openat2(RESOLVE_IN_ROOT) and acted on relative to a directory fd with the
//! *at syscalls, never following a symlink at the final name, so nothing here reaches outside it.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};

use berth_runtime::safe_path::retry_on_rename_race;

/// A layer entry's path, made relative to the layer root and cleaned lexically: it has no empty,
/// `.` or `..` components and no NUL byte. No components means the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryPath(Vec<OsString>);

impl EntryPath {
    /// Leading `/` is dropped, as tar(1), docker and containerd extract absolute names relative
    /// to the destination. `..` may climb back as far as the root and no further: a name that
    /// climbs out is hostile and refused.
    pub(super) fn parse(raw: &[u8]) -> Result<EntryPath, &'static str> {
        if raw.contains(&0) {
            return Err("path contains a NUL byte");
        }
        let mut components: Vec<OsString> = Vec::new();
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if components.pop().is_none() {
                        return Err("path escapes the layer root");
                    }
                }
                name => components.push(OsStr::from_bytes(name).to_os_string()),
            }
        }
        Ok(EntryPath(components))
    }

    pub(super) fn components(&self) -> &[OsString] {
        &self.0
    }

    /// The parent components and the final name; `None` for the root itself.
    pub(super) fn split_last(&self) -> Option<(&[OsString], &OsStr)> {
        self.0.split_last().map(|(name, parent)| (parent, name.as_os_str()))
    }
}

/// Opens `path` below `root` with `flags`, resolving every symlink in it as if `root` were `/`
/// (openat2 `RESOLVE_IN_ROOT`: an absolute or `..`-climbing symlink stays inside, as under
/// chroot), never through a /proc magic link. `cross_mounts` allows crossing into filesystems
/// mounted below `root` (a container's volumes); without it such a path fails with EXDEV. An
/// empty `path` is `root` itself.
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &[u8], flags: OFlag, cross_mounts: bool) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { b".".as_slice() } else { path };
    let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    if !cross_mounts {
        resolve |= ResolveFlag::RESOLVE_NO_XDEV;
    }
    let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(resolve);
    retry_on_rename_race(|| fcntl::openat2(root, OsStr::from_bytes(path), how)).map_err(io::Error::from)
}

/// `components` joined with `/`.
pub(crate) fn join_components(components: &[OsString]) -> Vec<u8> {
    let mut path = Vec::new();
    for (i, component) in components.iter().enumerate() {
        if i > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(component.as_bytes());
    }
    path
}

/// The destination directory every entry is confined to: a directory (`base`, no components
/// for the root itself) below a root that symlinks resolve in.
pub(super) struct LayerRoot {
    fd: OwnedFd,
    base: Vec<OsString>,
    cross_mounts: bool,
}

impl LayerRoot {
    /// Opens `dest`, a trusted path from the caller; only paths below it come from the layer.
    pub(super) fn open(dest: &Path) -> io::Result<LayerRoot> {
        let fd = fcntl::open(dest, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        Ok(LayerRoot { fd, base: Vec::new(), cross_mounts: false })
    }

    /// The directory `base` below `root` (a container's root filesystem), crossing the mounts
    /// below it: entries land below `base`, and symlinks resolve as if `root` were `/`.
    pub(super) fn within(root: OwnedFd, base: Vec<OsString>) -> LayerRoot {
        LayerRoot { fd: root, base, cross_mounts: true }
    }

    /// Opens the directory `components` (below the base) names, resolving symlinks in it as if
    /// the root were `/`.
    pub(super) fn open_dir(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        let mut all = self.base.clone();
        all.extend_from_slice(components);
        if all.is_empty() {
            return self.fd.try_clone();
        }
        open_in_root(self.fd.as_fd(), &join_components(&all), OFlag::O_PATH | OFlag::O_DIRECTORY, self.cross_mounts)
    }

    /// As [`LayerRoot::open_dir`], first creating missing directories (mode 0755) like
    /// `mkdir -p`: a tar may list a file before, or without, its parent directories.
    pub(super) fn create_dir_all(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        match self.open_dir(components) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            found => return found,
        }
        let mut dir = self.open_dir(&[])?;
        for depth in 1..=components.len() {
            let prefix = &components[..depth];
            dir = match self.open_dir(prefix) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = prefix[depth - 1].as_os_str();
                    // mkdirat never follows a symlink: a dangling one (its target missing inside
                    // the root) makes this fail rather than creating anything through it.
                    stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).map_err(|errno| match errno {
                        Errno::EEXIST => io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("parent {name:?} is a symlink whose target does not exist in the layer"),
                        ),
                        errno => io::Error::from(errno),
                    })?;
                    // mkdirat applied the umask.
                    chmod_nofollow(dir.as_fd(), name, 0o755)?;
                    self.open_dir(prefix)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }
}

/// One name inside a directory of the root: the place an entry lands. The name is a single
/// component, never `.` or `..` (except [`Slot::directory_itself`]), and no operation here
/// follows a symlink found at it.
pub(super) struct Slot {
    dir: OwnedFd,
    name: OsString,
}

impl Slot {
    pub(super) fn new(dir: OwnedFd, name: &OsStr) -> Slot {
        Slot { dir, name: name.to_os_string() }
    }

    /// The directory `dir` itself, for metadata that belongs on it (the opaque marker).
    pub(super) fn directory_itself(dir: OwnedFd) -> Slot {
        Slot { dir, name: OsString::from(".") }
    }

    /// lstat: what is at the name now, if anything.
    pub(super) fn stat(&self) -> io::Result<Option<FileStat>> {
        match stat::fstatat(&self.dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Makes room for a new entry as tar does: whatever is at the name goes, a directory with
    /// everything in it, except that an existing directory stays when `keep_dir` (a directory
    /// entry over a directory merges). Returns whether a directory was kept.
    pub(super) fn clear(&self, keep_dir: bool) -> io::Result<bool> {
        let Some(st) = self.stat()? else { return Ok(false) };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            if keep_dir {
                return Ok(true);
            }
            remove_tree(self.dir.as_fd(), &self.name)?;
        } else {
            unistd::unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        }
        Ok(false)
    }

    /// Creates a new regular file (the name must be clear); O_EXCL|O_NOFOLLOW so nothing is
    /// ever written through an existing link.
    pub(super) fn create_file(&self) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = fcntl::openat(&self.dir, self.name.as_os_str(), flags, Mode::from_bits_truncate(0o600))?;
        Ok(File::from(fd))
    }

    pub(super) fn mkdir(&self) -> io::Result<()> {
        Ok(stat::mkdirat(&self.dir, self.name.as_os_str(), Mode::from_bits_truncate(0o700))?)
    }

    /// mknod for character and block devices, fifos and overlay whiteouts (char 0/0).
    pub(super) fn mknod(&self, kind: SFlag, dev: libc::dev_t) -> io::Result<()> {
        Ok(stat::mknodat(&self.dir, self.name.as_os_str(), kind, Mode::from_bits_truncate(0o600), dev)?)
    }

    /// A symlink's target is data: stored verbatim, never resolved here.
    pub(super) fn symlink(&self, target: &OsStr) -> io::Result<()> {
        Ok(unistd::symlinkat(target, &self.dir, self.name.as_os_str())?)
    }

    /// Links the name to the inode at `target`; a symlink there is linked itself, not followed.
    pub(super) fn hard_link_to(&self, target: &Slot) -> io::Result<()> {
        unistd::linkat(&target.dir, target.name.as_os_str(), &self.dir, self.name.as_os_str(), AtFlags::empty())?;
        Ok(())
    }

    pub(super) fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        Ok(unistd::fchownat(&self.dir, self.name.as_os_str(), uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?)
    }

    /// chmod, for anything but a symlink (Linux has no lchmod: on a symlink this fails).
    pub(super) fn chmod(&self, mode: u32) -> io::Result<()> {
        chmod_nofollow(self.dir.as_fd(), &self.name, mode)
    }

    pub(super) fn set_times(&self, atime: TimeSpec, mtime: TimeSpec) -> io::Result<()> {
        Ok(stat::utimensat(&self.dir, self.name.as_os_str(), &atime, &mtime, UtimensatFlags::NoFollowSymlink)?)
    }

    /// lsetxattr on the name. There is no `*at` form of setxattr, so the path goes through the
    /// directory's fd in /proc: the magic link lands on that directory, and the final component
    /// is not followed.
    pub(super) fn set_xattr(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let mut path = format!("/proc/thread-self/fd/{}/", self.dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(self.name.as_bytes());
        let path = CString::new(path)?;
        let key = CString::new(key)?;
        // SAFETY: `path` and `key` are NUL-terminated strings and `value` is a live buffer of
        // `value.len()` bytes; all outlive the call, which only reads them.
        let rc = unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// fchmodat(AT_SYMLINK_NOFOLLOW): the kernel's fchmodat2 where it has one (6.6+), else libc's
/// emulation through an O_PATH fd, which refuses a symlink instead of following it.
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(mode & 0o7777);
    Ok(stat::fchmodat(dir, name, mode, FchmodatFlags::NoFollowSymlink)?)
}

/// Removes the directory `name` in `parent` and everything below it, descending by fd so a
/// symlink inside is unlinked, never followed.
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = fcntl::openat(parent, name, flags, Mode::empty())?;
    let mut children = Vec::new();
    {
        let mut listing = Dir::from_fd(dir.try_clone()?)?;
        for entry in listing.iter() {
            let child = entry?.file_name().to_bytes().to_vec();
            if child != b"." && child != b".." {
                children.push(OsString::from(OsStr::from_bytes(&child)));
            }
        }
    }
    for child in children {
        match unistd::unlinkat(&dir, child.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {}
            Err(Errno::EISDIR) => remove_tree(dir.as_fd(), &child)?,
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir)?)
}
