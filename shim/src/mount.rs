//! The task's rootfs: the mounts containerd sends in `CreateTaskRequest.rootfs` (an overlay of
//! the snapshot, usually) mounted on `<bundle>/rootfs`, and unmounted on delete.

use anyhow::{Context, Result};
use containerd_shim_protos::api::Mount;
use nix::mount::{MntFlags, MsFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// mount(2) takes at most a page of data: an overlay of many layers needs its `lowerdir`
/// shortened first (containerd does the same).
const MAX_DATA: usize = 4096;

/// Splits mount options into mount(2) flags and the data string, the way the runtime does
/// (`berth_runtime::mount_options`): unknown options are filesystem data, unsupported ones
/// (idmap, recursive attributes) an error.
pub fn parse_options(options: &[String]) -> Result<(MsFlags, String)> {
    let o = berth_runtime::mount_options::MountOptions::parse(options)?;
    let mut flags = o.flags;
    if o.bind {
        flags |= MsFlags::MS_BIND;
    }
    if o.recursive {
        flags |= MsFlags::MS_REC;
    }
    if !o.propagation.is_empty() {
        anyhow::bail!("propagation options {options:?} are not supported for the task's rootfs");
    }
    Ok((flags, o.data))
}

/// Mounts `mounts` on `target` in order (creating it).
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    // Every entry's options are checked before anything is mounted.
    let parsed = mounts.iter().map(|m| parse_options(&m.options)).collect::<Result<Vec<_>>>()?;
    for (i, (m, (flags, data))) in mounts.iter().zip(parsed).enumerate() {
        let fstype = if m.type_.is_empty() { None } else { Some(m.type_.as_str()) };
        let mount_flags = if flags.contains(MsFlags::MS_BIND) { flags & !MsFlags::MS_RDONLY } else { flags };
        let compacted = (m.type_ == "overlay" && data.len() >= MAX_DATA).then(|| compact_lowerdir(&data)).flatten();
        let result = match compacted {
            Some((dir, short)) => mount_from(&dir, &m.source, target, &m.type_, mount_flags, &short),
            None => nix::mount::mount(
                Some(m.source.as_str()),
                target,
                fstype,
                mount_flags,
                (!data.is_empty()).then_some(data.as_str()),
            ),
        };
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

/// Overlay data whose `lowerdir` entries are made relative to their longest common directory:
/// (that directory, the shorter data). None when there is nothing to shorten.
fn compact_lowerdir(data: &str) -> Option<(PathBuf, String)> {
    let options: Vec<&str> = data.split(',').collect();
    let (index, lower) = options.iter().enumerate().find_map(|(i, o)| Some((i, o.strip_prefix("lowerdir=")?)))?;
    let dirs: Vec<&Path> = lower.split(':').map(Path::new).collect();
    let mut common = dirs.first()?.parent()?.to_path_buf();
    while !dirs.iter().all(|d| d.starts_with(&common) && d != &common) {
        common = common.parent()?.to_path_buf();
    }
    // Only "/" in common: nothing to gain.
    common.parent()?;
    let relative: Vec<String> =
        dirs.iter().map(|d| d.strip_prefix(&common).map(|r| r.display().to_string())).collect::<Result<_, _>>().ok()?;
    let mut out: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    out[index] = format!("lowerdir={}", relative.join(":"));
    Some((common, out.join(",")))
}

/// mount(2) with relative paths in `data` resolved against `dir`: done by a forked child that
/// changes its directory (the shim's threads must keep theirs). The child reports its errno
/// through a pipe, so no one but the reaper waits for it.
fn mount_from(dir: &Path, source: &str, target: &Path, fstype: &str, flags: MsFlags, data: &str) -> nix::Result<()> {
    use nix::errno::Errno;
    let c = |s: &[u8]| CString::new(s).map_err(|_| Errno::EINVAL);
    let (dir, source, target) =
        (c(dir.as_os_str().as_bytes())?, c(source.as_bytes())?, c(target.as_os_str().as_bytes())?);
    let (fstype, data) = (c(fstype.as_bytes())?, c(data.as_bytes())?);
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let pid = {
        let _spawning = crate::reaper::spawn_guard();
        // SAFETY: the child only makes async-signal-safe calls (chdir, mount, write, _exit) on
        // data prepared before the fork.
        unsafe { libc::fork() }
    };
    if pid == 0 {
        // SAFETY: in the forked child; see above.
        unsafe {
            let mut errno: i32 = 0;
            if libc::chdir(dir.as_ptr()) != 0
                || libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags.bits(), data.as_ptr().cast())
                    != 0
            {
                errno = *libc::__errno_location();
            }
            libc::write(std::os::fd::AsRawFd::as_raw_fd(&write), (&errno as *const i32).cast(), 4);
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return Err(Errno::last());
    }
    drop(write);
    let mut buf = [0u8; 4];
    let n = nix::unistd::read(&read, &mut buf)?;
    match (n, i32::from_ne_bytes(buf)) {
        (4, 0) => Ok(()),
        (4, errno) => Err(Errno::from_raw(errno)),
        _ => Err(Errno::EIO),
    }
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
    fn lowerdirs_are_made_relative_to_their_common_directory() {
        let data = "workdir=/s/9/work,upperdir=/s/9/fs,lowerdir=/s/snapshots/3/fs:/s/snapshots/12/fs";
        let (dir, short) = compact_lowerdir(data).expect("compacted");
        assert_eq!(dir, Path::new("/s/snapshots"));
        assert_eq!(short, "workdir=/s/9/work,upperdir=/s/9/fs,lowerdir=3/fs:12/fs");
        assert_eq!(compact_lowerdir("lowerdir=/a:/b"), None, "nothing in common but /");
        assert_eq!(compact_lowerdir("upperdir=/u"), None);
    }

    /// An overlay of 80 layers whose options are longer than a page mounts (the kernel refuses
    /// such data as it comes). Needs root; skipped without it.
    #[test]
    fn an_overlay_with_more_than_a_page_of_options_mounts() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let layers = tmp.path().join("io.containerd.snapshotter.v1.overlayfs").join("snapshots");
        let mut lower = Vec::new();
        for i in 0..80 {
            let fs = layers.join(format!("{i}")).join("fs");
            std::fs::create_dir_all(&fs).expect("layer");
            std::fs::write(fs.join(format!("layer{i}")), "x").expect("file");
            lower.insert(0, fs.display().to_string());
        }
        let (upper, work, target) = (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("rootfs"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let mut m = Mount::new();
        m.type_ = "overlay".into();
        m.source = "overlay".into();
        m.options = vec![
            format!("workdir={}", work.display()),
            format!("upperdir={}", upper.display()),
            format!("lowerdir={}", lower.join(":")),
        ];
        assert!(parse_options(&m.options).expect("options").1.len() > MAX_DATA, "the test needs more than a page");
        let mounted = mount_rootfs(&[m], &target);
        let seen = (target.join("layer0").exists(), target.join("layer79").exists());
        unmount_all(&target).expect("unmount");
        mounted.expect("mount");
        assert_eq!(seen, (true, true));
    }

    #[test]
    fn splits_overlay_options_into_flags_and_data() {
        let opts: Vec<String> =
            ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l", "nosuid", "ro", "rw"].map(String::from).into();
        let (flags, data) = parse_options(&opts).expect("options");
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
    }
}
