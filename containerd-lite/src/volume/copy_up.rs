//! Copy-up: an empty volume mounted over a directory the image has gets that directory's files
//! first (files, directories, symlinks, device nodes and fifos, with owners, modes, times and
//! extended attributes; the volume's own directory takes the image directory's owner and mode), as
//! docker does. Docker copies at the first mount of the volume; berthd copies when the container
//! is created, from the image's layers, which is the same content since a new container's
//! writable layer is still empty. Files hard-linked together in the image are hard-linked in the
//! volume (busybox's applets are one file under many names).
//!
//! Image content is hostile: the image directory is found with openat2(RESOLVE_IN_ROOT) and the
//! walk goes from directory fd to directory fd with O_NOFOLLOW, so no symlink is ever followed,
//! in the image or in the volume (which another container may be writing into).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

use crate::store::snapshot::Mount;

/// Deeper image trees are refused rather than walked (each level holds two fds).
const MAX_DEPTH: usize = 1024;
/// Largest extended attribute list or value copied.
const XATTR_BUFFER: usize = 64 * 1024;

/// A container's image files, read-only, as its root filesystem shows them.
pub struct ImageTree {
    root: PathBuf,
    /// Where berthd mounted a read-only overlay of the layers (unmounted by [`ImageTree::release`]).
    mounted: Option<PathBuf>,
}

impl ImageTree {
    /// The image files under the snapshot `mounts` of a container just created (its own layer is
    /// still empty, so the image's layers are its content): one layer is used as it is, several
    /// are mounted as a read-only overlay at `scratch`.
    pub fn open(mounts: &[Mount], scratch: &Path) -> Result<ImageTree> {
        let mut lowers: Vec<String> = Vec::new();
        for m in mounts {
            if m.kind == "overlay" {
                if let Some(lower) = m.options.iter().find_map(|o| o.strip_prefix("lowerdir=")) {
                    lowers.extend(lower.split(':').map(str::to_string));
                }
            } else {
                lowers.push(m.source.clone());
            }
        }
        match lowers.as_slice() {
            [] => bail!("the container's snapshot has no layers"),
            [only] => Ok(ImageTree { root: PathBuf::from(only), mounted: None }),
            _ => {
                std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
                let data = format!("lowerdir={}", lowers.join(":"));
                nix::mount::mount(
                    Some("overlay"),
                    scratch,
                    Some("overlay"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                    Some(data.as_str()),
                )
                .with_context(|| format!("mounting the image's layers read-only at {}", scratch.display()))?;
                Ok(ImageTree { root: scratch.to_path_buf(), mounted: Some(scratch.to_path_buf()) })
            }
        }
    }

    /// Copies the image's directory `container_path` into `volume_dir` if that is empty. Nothing
    /// happens when the image has no directory there.
    pub fn copy_into(&self, container_path: &str, volume_dir: &Path) -> Result<()> {
        let dst = fcntl::open(
            volume_dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", volume_dir.display()))?;
        if !is_empty(&dst).with_context(|| format!("reading {}", volume_dir.display()))? {
            return Ok(());
        }
        let root = fcntl::open(&self.root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening {}", self.root.display()))?;
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV);
        let rel = container_path.trim_start_matches('/');
        let opened = berth_runtime::safe_path::retry_on_rename_race(|| {
            fcntl::openat2(&root, OsStr::new(if rel.is_empty() { "." } else { rel }), how)
        });
        let src = match opened {
            Ok(fd) => fd,
            // Not in the image, or not a directory there: nothing to copy.
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV | Errno::ENXIO | Errno::ENODEV) => {
                return Ok(())
            }
            Err(e) => return Err(e).with_context(|| format!("opening {container_path} in the image")),
        };
        let mut copier = Copier { root: &dst, links: HashMap::new() };
        copier
            .copy_dir(&src, &dst, &mut PathBuf::new())
            .with_context(|| format!("copying the image's {container_path} into the volume"))?;
        let st = stat::fstat(&src).with_context(|| format!("stat {container_path} in the image"))?;
        copy_xattrs(src.as_fd(), dst.as_fd())?;
        set_metadata(dst.as_fd(), &st).with_context(|| format!("setting the owner of {}", volume_dir.display()))
    }

    /// Unmounts the overlay [`ImageTree::open`] mounted, if any.
    pub fn release(self) -> Result<()> {
        if let Some(at) = &self.mounted {
            nix::mount::umount2(at, MntFlags::MNT_DETACH).with_context(|| format!("unmounting {}", at.display()))?;
            let _ = std::fs::remove_dir(at);
        }
        Ok(())
    }
}

fn is_empty(dir: &OwnedFd) -> Result<bool> {
    let fd = fcntl::openat(dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut listing = Dir::from_fd(fd)?;
    for entry in listing.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One copy into a volume: its root, and the files copied so far that have other hard links.
struct Copier<'a> {
    root: &'a OwnedFd,
    /// (device, inode) in the image → the copy's path under `root`.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier<'_> {
    /// Copies the entries of directory `src` into directory `dst` (at `rel` under the root),
    /// recursively, never following a symlink.
    fn copy_dir(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &mut PathBuf) -> Result<()> {
        if rel.components().count() > MAX_DEPTH {
            bail!("the directory tree is deeper than {MAX_DEPTH} levels");
        }
        let listing_fd =
            fcntl::openat(src, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        let mut listing = Dir::from_fd(listing_fd)?;
        let mut names: Vec<CString> = Vec::new();
        for entry in listing.iter() {
            let name = entry.context("reading a directory")?.file_name().to_owned();
            if name.as_bytes() != b"." && name.as_bytes() != b".." {
                names.push(name);
            }
        }
        for name in &names {
            rel.push(OsStr::from_bytes(name.as_bytes()));
            let copied = self.copy_entry(src, dst, name, rel);
            rel.pop();
            copied.with_context(|| format!("{}", name.to_string_lossy()))?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, src: &OwnedFd, dst: &OwnedFd, name: &CStr, rel: &mut PathBuf) -> Result<()> {
        let st = stat::fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if kind == SFlag::S_IFDIR {
            match stat::mkdirat(dst, name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let s = fcntl::openat(src, name, flags | OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
            let d = fcntl::openat(dst, name, flags | OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
            self.copy_dir(&s, &d, rel)?;
            copy_xattrs(s.as_fd(), d.as_fd())?;
            set_metadata(d.as_fd(), &st)?;
        } else if kind == SFlag::S_IFREG {
            let inode = (st.st_dev, st.st_ino);
            if st.st_nlink > 1 {
                if let Some(first) = self.links.get(&inode) {
                    return self.link(first, dst, name);
                }
            }
            let s = fcntl::openat(src, name, flags | OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?;
            let d = fcntl::openat(
                dst,
                name,
                flags | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
            )?;
            let (mut reader, mut writer) = (std::fs::File::from(s), std::fs::File::from(d));
            std::io::copy(&mut reader, &mut writer)?;
            copy_xattrs(reader.as_fd(), writer.as_fd())?;
            set_metadata(writer.as_fd(), &st)?;
            if st.st_nlink > 1 {
                self.links.insert(inode, rel.clone());
            }
        } else if kind == SFlag::S_IFLNK {
            let target = fcntl::readlinkat(src, name)?;
            unistd::symlinkat(target.as_os_str(), dst, name)?;
            set_link_metadata(dst, name, &st)?;
        } else if matches!(kind, SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO) {
            stat::mknodat(dst, name, kind, Mode::from_bits_truncate(0o600), st.st_rdev)?;
            set_link_metadata(dst, name, &st)?;
            // Not a symlink (made just above, in a directory only berthd writes to).
            stat::fchmodat(
                dst,
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7777),
                stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        // Sockets are not copied: a socket file means nothing without its process.
        Ok(())
    }

    /// Hard-links `name` in `dst` to the earlier copy at `first` (under the root). The path is
    /// resolved beneath the root without symlinks: a container sharing the volume cannot
    /// redirect it.
    fn link(&self, first: &Path, dst: &OwnedFd, name: &CStr) -> Result<()> {
        let parent = first.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        let parent_fd = berth_runtime::safe_path::retry_on_rename_race(|| fcntl::openat2(self.root, parent, how))
            .with_context(|| format!("opening {} in the volume", parent.display()))?;
        let old = first.file_name().context("a hard link's first name")?;
        unistd::linkat(&parent_fd, old, dst, name, AtFlags::empty())?;
        Ok(())
    }
}

/// Owner, then mode (chown clears set-id bits), then times of an open file or directory.
fn set_metadata(fd: BorrowedFd<'_>, st: &FileStat) -> Result<()> {
    unistd::fchown(fd, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))?;
    stat::fchmod(fd, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
    stat::futimens(fd, &TimeSpec::new(st.st_atime, st.st_atime_nsec), &TimeSpec::new(st.st_mtime, st.st_mtime_nsec))?;
    Ok(())
}

/// Owner and times of `name` in `dir` itself (a symlink or a node), without following it.
fn set_link_metadata(dir: &OwnedFd, name: &CStr, st: &FileStat) -> Result<()> {
    unistd::fchownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    stat::utimensat(
        dir,
        name,
        &TimeSpec::new(st.st_atime, st.st_atime_nsec),
        &TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
        stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Copies every extended attribute of `src` to `dst` (a filesystem without them is no error).
fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
    let mut names = vec![0u8; XATTR_BUFFER];
    // SAFETY: the buffer is valid for writes of `names.len()` bytes; the fd is open.
    let len = unsafe { libc::flistxattr(src.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        return match Errno::last() {
            Errno::ENOTSUP => Ok(()),
            e => Err(e).context("listing extended attributes"),
        };
    }
    let mut value = vec![0u8; XATTR_BUFFER];
    for name in names[..len as usize].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(name).context("an extended attribute name")?;
        // SAFETY: `name` is NUL-terminated; the buffer is valid for writes of `value.len()` bytes.
        let size = unsafe { libc::fgetxattr(src.as_raw_fd(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if size < 0 {
            match Errno::last() {
                Errno::ENODATA => continue,
                e => return Err(e).with_context(|| format!("reading extended attribute {name:?}")),
            }
        }
        // SAFETY: `name` is NUL-terminated; `value` holds `size` initialised bytes.
        let set = unsafe { libc::fsetxattr(dst.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), size as usize, 0) };
        if set < 0 {
            match Errno::last() {
                // The volume's filesystem cannot hold it (or not this namespace): docker skips too.
                Errno::ENOTSUP | Errno::EPERM => {}
                e => return Err(e).with_context(|| format!("setting extended attribute {name:?}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn bind(dir: &Path) -> Vec<Mount> {
        vec![Mount { kind: "bind".into(), source: dir.display().to_string(), options: vec![] }]
    }

    #[test]
    fn copies_files_dirs_symlinks_hard_links_and_modes_without_following_links() {
        let image = tempfile::tempdir().expect("tempdir");
        let data = image.path().join("data");
        std::fs::create_dir_all(data.join("sub")).expect("mkdir");
        std::fs::write(data.join("sub/file"), "hello").expect("write");
        std::fs::set_permissions(data.join("sub/file"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).expect("symlink");
        std::fs::hard_link(data.join("sub/file"), data.join("same")).expect("hard link");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let volume = tempfile::tempdir().expect("tempdir");
        let tree = ImageTree::open(&bind(image.path()), Path::new("/nonexistent")).expect("open");
        tree.copy_into("/data", volume.path()).expect("copy");
        assert_eq!(std::fs::read_to_string(volume.path().join("sub/file")).expect("read"), "hello");
        assert_eq!(std::fs::metadata(volume.path().join("sub/file")).expect("meta").mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_link(volume.path().join("link")).expect("link"), Path::new("/etc/passwd"));
        assert_eq!(std::fs::metadata(volume.path()).expect("meta").mode() & 0o7777, 0o1777);
        let (a, b) = (volume.path().join("sub/file"), volume.path().join("same"));
        assert_eq!(std::fs::metadata(a).expect("meta").ino(), std::fs::metadata(b).expect("meta").ino());
        tree.release().expect("release");
    }

    #[test]
    fn a_symlinked_image_path_stays_inside_the_image_and_a_full_volume_is_left_alone() {
        let image = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "x").expect("write");
        std::os::unix::fs::symlink(outside.path(), image.path().join("data")).expect("symlink");
        let volume = tempfile::tempdir().expect("tempdir");
        let tree = ImageTree::open(&bind(image.path()), Path::new("/nonexistent")).expect("open");
        tree.copy_into("/data", volume.path()).expect("copy");
        assert!(!volume.path().join("secret").exists());

        std::fs::create_dir(image.path().join("full")).expect("mkdir");
        std::fs::write(image.path().join("full/new"), "x").expect("write");
        std::fs::write(volume.path().join("old"), "y").expect("write");
        tree.copy_into("/full", volume.path()).expect("copy");
        assert!(!volume.path().join("new").exists());
    }
}
