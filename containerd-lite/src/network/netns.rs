//! Network namespaces pinned by berthd: one per container, created before its task and kept
//! alive by a bind mount of its nsfs file at `<state>/netns/<id>` (what `ip netns add` does),
//! so CNI plugins can set it up before the runtime joins it, and it outlives berthd restarts.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// The pinned namespace of container `id` under `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(id)
}

/// Creates and pins a new network namespace at `<dir>/<id>` and returns its path.
pub fn create(dir: &Path, id: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = path(dir, id);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .with_context(|| format!("creating {}", target.display()))?;
    let pin = target.clone();
    // unshare(CLONE_NEWNET) changes the calling thread for good: a thread of its own does it
    // and ends, leaving no runtime worker in the new namespace.
    let pinned = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            mount(Some("/proc/thread-self/ns/net"), &pin, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .with_context(|| format!("bind-mounting the new network namespace on {}", pin.display()))
        })
        .context("spawning the netns thread")?
        .join()
        .map_err(|_| anyhow!("the netns thread panicked"))
        .and_then(|r| r);
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(&target);
        return Err(e.context(format!("creating the network namespace of {id}")));
    }
    Ok(target)
}

/// Unpins and removes the namespace file at `path`; gone already is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The container ids with a namespace file under `dir`.
pub fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect()
}
