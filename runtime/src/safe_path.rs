//! Path resolution confined to a root directory (openat2 `RESOLVE_IN_ROOT`): a symlink inside a
//! rootfs, absolute or full of `..`, resolves inside that rootfs and never out of it.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// How many times a resolution is tried when the kernel reports a racing rename (EAGAIN).
const RESOLVE_ATTEMPTS: u32 = 32;

/// Opens `path` (absolute or relative) as if `root` were `/`.
pub fn open_in_root<F: AsFd>(root: F, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let root = root.as_fd();
    retry_on_rename_race(|| openat2(root, rel.as_path(), how(flags)))
}

/// Runs an openat2 `RESOLVE_IN_ROOT` resolution, again while it fails with EAGAIN (the kernel
/// refuses a `..` resolved while a rename ran anywhere on the system) or EINTR, at most
/// [`RESOLVE_ATTEMPTS`] times in all; then its last error. berthd's layer unpack and image
/// file reads use it too.
pub fn retry_on_rename_race<T>(mut resolve: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    let mut attempts = 1;
    loop {
        match resolve() {
            Err(Errno::EAGAIN | Errno::EINTR) if attempts < RESOLVE_ATTEMPTS => attempts += 1,
            result => return result,
        }
    }
}

/// `path` with its leading `/` removed (`.` for the root itself).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path.components().filter(|c| !matches!(c, Component::RootDir)).collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The path the kernel gives for an open fd (`/proc/self/fd/N`).
pub fn fd_path<F: AsFd>(fd: F) -> Result<PathBuf> {
    let link = proc_fd(&fd);
    std::fs::read_link(&link).with_context(|| format!("readlink {}", link.display()))
}

/// `/proc/self/fd/N` for an fd: the stable name to mount onto a resolved target.
pub fn proc_fd<F: AsFd>(fd: &F) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// What to create at a mount destination that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (most mounts).
    Dir,
    /// An empty regular file (a bind mount of a file).
    File,
}

/// Resolves `path` inside `root`, creating missing components (directories, and the last one as
/// `kind`), and returns an `O_PATH` fd of the result. Every step resolves from `root` with
/// `RESOLVE_IN_ROOT`, so a symlink planted anywhere on the way cannot lead outside.
pub fn mkdir_all_in_root<F: AsFd>(root: F, path: &Path, kind: Kind) -> Result<OwnedFd> {
    let root = root.as_fd();
    let rel = relative(path);
    let comps: Vec<Component> = rel.components().collect();
    let mut prefix = PathBuf::new();
    let mut parent: OwnedFd =
        open_in_root(root, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY).context("opening rootfs")?;
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        match comp {
            Component::Normal(name) => {
                prefix.push(name);
                let want_dir = !last || kind == Kind::Dir;
                match open_in_root(root, &prefix, OFlag::O_PATH) {
                    Ok(fd) => {
                        parent = fd;
                        continue;
                    }
                    Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e).with_context(|| format!("resolving {} in rootfs", prefix.display())),
                }
                let created = if want_dir {
                    nix::sys::stat::mkdirat(parent.as_fd(), *name, Mode::from_bits_truncate(0o755))
                } else {
                    nix::fcntl::openat(
                        parent.as_fd(),
                        *name,
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                };
                match created {
                    Ok(()) => {}
                    // A dangling symlink: its target would have to be created; refuse.
                    Err(Errno::EEXIST) => bail!("{} in rootfs is a dangling symlink", prefix.display()),
                    Err(e) => return Err(e).with_context(|| format!("creating {} in rootfs", prefix.display())),
                }
                parent = open_in_root(root, &prefix, OFlag::O_PATH)
                    .with_context(|| format!("resolving {} in rootfs", prefix.display()))?;
            }
            Component::CurDir => {}
            // `..` at this point is confined by RESOLVE_IN_ROOT when the whole prefix is
            // resolved, so keep it in the prefix and let the kernel clamp it.
            Component::ParentDir => prefix.push(".."),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_to_absolute_and_dotdot_paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("up")).unwrap();
        let rootfd = File::open(&root).unwrap();
        for link in ["abs/made", "up/made2"] {
            let fd = mkdir_all_in_root(&rootfd, Path::new(link), Kind::Dir).unwrap();
            let real = fd_path(&fd).unwrap();
            assert!(real.starts_with(&root), "{link} resolved to {}", real.display());
        }
        assert!(root.join("etc/made").is_dir());
        assert!(root.join("etc/made2").is_dir());
    }

    #[test]
    fn a_resolution_racing_a_rename_is_retried_a_bounded_number_of_times() {
        let mut calls = 0;
        let r = retry_on_rename_race(|| {
            calls += 1;
            if calls < 5 {
                Err(Errno::EAGAIN)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r, Ok(5));
        let mut calls = 0;
        let r: nix::Result<()> = retry_on_rename_race(|| {
            calls += 1;
            Err(Errno::EAGAIN)
        });
        assert_eq!((r, calls), (Err(Errno::EAGAIN), RESOLVE_ATTEMPTS));
        let mut calls = 0;
        let r: nix::Result<()> = retry_on_rename_race(|| {
            calls += 1;
            Err(Errno::ENOENT)
        });
        assert_eq!((r, calls), (Err(Errno::ENOENT), 1), "other errors are not retried");
    }

    #[test]
    fn files_are_created_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let rootfd = File::open(dir.path()).unwrap();
        mkdir_all_in_root(&rootfd, Path::new("/a/b/file"), Kind::File).unwrap();
        assert!(dir.path().join("a/b/file").is_file());
    }
}
