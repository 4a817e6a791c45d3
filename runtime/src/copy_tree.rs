//! Copying a directory tree with what `cp -a` keeps (modes, owners, symlinks, device nodes,
//! times), for the `tmpcopyup` mount option. Symlinks are copied as links, never followed.

use anyhow::{Context, Result};
use nix::sys::stat::{utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Copies everything inside `from` into the existing directory `to`.
pub fn copy_dir_contents(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        copy_entry(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    }
    Ok(())
}

fn copy_entry(src: &Path, dst: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if ft.is_dir() {
        std::fs::create_dir(dst)?;
        copy_dir_contents(src, dst)?;
    } else if ft.is_file() {
        std::fs::copy(src, dst)?;
    } else {
        let kind = if ft.is_fifo() {
            SFlag::S_IFIFO
        } else if ft.is_char_device() {
            SFlag::S_IFCHR
        } else if ft.is_block_device() {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFSOCK
        };
        nix::sys::stat::mknod(dst, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev())?;
    }
    set_attributes(dst, &meta, false)
}

/// Gives the directory `to` the mode, owner and times of the directory `from` (both may be
/// `/proc/self/fd` links, which are followed).
pub fn copy_attributes(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::metadata(from).with_context(|| format!("stat {}", from.display()))?;
    set_attributes(to, &meta, true)
}

/// Owner first (chown clears set-id bits), then the mode, then the times last (everything
/// before changes them). `follow`: `path` is a link to the entry, not the entry.
fn set_attributes(path: &Path, meta: &Metadata, follow: bool) -> Result<()> {
    let (uid, gid) = (Some(meta.uid()), Some(meta.gid()));
    if follow { std::os::unix::fs::chown(path, uid, gid) } else { std::os::unix::fs::lchown(path, uid, gid) }
        .with_context(|| format!("chown {}", path.display()))?;
    if follow || !meta.file_type().is_symlink() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    let flags = if follow { UtimensatFlags::FollowSymlink } else { UtimensatFlags::NoFollowSymlink };
    utimensat(nix::fcntl::AT_FDCWD, path, &atime, &mtime, flags)
        .with_context(|| format!("setting the times of {}", path.display()))?;
    Ok(())
}
