//! The task's rootfs: the mounts containerd sends in `CreateTaskRequest.rootfs` (an overlay of
//! the snapshot, usually) mounted on `<bundle>/rootfs`, and unmounted on delete.

use anyhow::{Context, Result};
use containerd_shim_protos::api::Mount;
use nix::mount::{MntFlags, MsFlags};
use std::path::Path;

/// Mount options that are flags; everything else is filesystem data.
fn flag(option: &str) -> Option<(bool, MsFlags)> {
    Some(match option {
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "bind" => (true, MsFlags::MS_BIND),
        "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (true, MsFlags::MS_DIRSYNC),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "mand" => (true, MsFlags::MS_MANDLOCK),
        "nomand" => (false, MsFlags::MS_MANDLOCK),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "atime" => (false, MsFlags::MS_NOATIME),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "diratime" => (false, MsFlags::MS_NODIRATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "norelatime" => (false, MsFlags::MS_RELATIME),
        "strictatime" => (true, MsFlags::MS_STRICTATIME),
        _ => return None,
    })
}

/// Splits mount options into flags and the data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match flag(o) {
            Some((true, f)) => flags |= f,
            Some((false, f)) => flags &= !f,
            None => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

/// Mounts `mounts` on `target` in order (creating it).
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = parse_options(&m.options);
        let fstype = if m.type_.is_empty() { None } else { Some(m.type_.as_str()) };
        let result = nix::mount::mount(
            Some(m.source.as_str()),
            target,
            fstype,
            if flags.contains(MsFlags::MS_BIND) { flags & !MsFlags::MS_RDONLY } else { flags },
            (!data.is_empty()).then_some(data.as_str()),
        );
        if let Err(e) = result {
            if i > 0 {
                let _ = unmount_all(target);
            }
            return Err(e).with_context(|| format!("mounting {} ({}) on {}", m.source, m.type_, target.display()));
        }
        // A read-only bind needs a remount to take effect.
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            let remount = nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            );
            if let Err(e) = remount {
                // Never leave a writable rootfs (or any of this call's mounts) behind.
                let _ = unmount_all(target);
                return Err(e).with_context(|| format!("remounting {} read-only", target.display()));
            }
        }
    }
    Ok(())
}

/// Unmounts everything mounted on `target` (stacked mounts too). Not mounted is fine.
pub fn unmount_all(target: &Path) -> Result<()> {
    loop {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                nix::mount::umount2(target, MntFlags::MNT_DETACH)
                    .with_context(|| format!("detaching busy mount {}", target.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("unmounting {}", target.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_overlay_options_into_flags_and_data() {
        let opts: Vec<String> =
            ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l", "nosuid", "ro", "rw"].map(String::from).into();
        let (flags, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
    }
}
