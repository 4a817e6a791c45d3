//! The container's filesystem view, built inside its new mount namespace: the rootfs bound onto
//! itself, every configured mount resolved *inside* the rootfs, device nodes, `/dev` links, then
//! pivot_root, masked and read-only paths.

use crate::cgroups::Mode as CgroupMode;
use crate::mount_options::{propagation_flags, MountOptions};
use crate::safe_path::{mkdir_all_in_root, open_in_root, proc_fd, Kind};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// What the mounts of one container need to know beyond the mount list.
pub struct MountContext<'a> {
    /// Host path of the rootfs.
    pub rootfs: &'a Path,
    /// The container has its own user namespace (mknod and some mounts are not allowed there).
    pub user_ns: bool,
    /// The container has its own cgroup namespace.
    pub cgroup_ns: bool,
    /// The container's cgroup, for `cgroup` mounts without a cgroup namespace.
    pub cgroup: &'a crate::cgroups::CgroupPaths,
}

/// Sets `rootfsPropagation` on the new mount namespace's `/` (default rslave as runc does, so
/// host mounts still propagate in but nothing leaks out; `rshared` keeps the host's peer groups,
/// so mounts made in a Bidirectional volume reach the host), then binds the rootfs onto itself
/// so it is a mount point pivot_root accepts.
pub fn prepare(rootfs: &Path, propagation: Option<&str>) -> Result<()> {
    let flags = match propagation {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => propagation_flags(p).with_context(|| format!("unknown rootfsPropagation {p:?}"))?,
    };
    mount(NONE, "/", NONE, flags, NONE).context("setting propagation of /")?;
    if flags.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a new root whose parent mount is shared; as runc, only that one
        // mount (in this namespace) becomes private, and the rootfs bound from it with it.
        let parent = mount_point_of(rootfs)?;
        mount(NONE, &parent, NONE, MsFlags::MS_PRIVATE, NONE)
            .with_context(|| format!("making {} (the rootfs's parent mount) private", parent.display()))?;
    }
    bind_onto_itself(rootfs)
}

/// Binds the rootfs onto itself: a mount of its own, which pivot_root accepts and which can be
/// made read-only without touching the mount it is on.
pub fn bind_onto_itself(rootfs: &Path) -> Result<()> {
    mount(Some(rootfs), rootfs, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
        .with_context(|| format!("bind-mounting rootfs {} onto itself", rootfs.display()))
}

/// The mount point of the mount `path` is on: the longest mount point in /proc/self/mountinfo
/// that contains it.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let path = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(crate::cgroups::unescape_mountinfo))
        .map(PathBuf::from)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.components().count())
        .with_context(|| format!("no mount contains {}", path.display()))
}

/// Mounts every entry of `mounts`, in order.
pub fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<()> {
    let root = File::open(ctx.rootfs).with_context(|| format!("opening rootfs {}", ctx.rootfs.display()))?;
    for m in mounts {
        mount_one(ctx, &root, m).with_context(|| format!("mounting {}", m.destination().display()))?;
    }
    Ok(())
}

fn mount_one(ctx: &MountContext, root: &File, m: &Mount) -> Result<()> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())?;
    mount_entry(ctx, root, m, &opts)?;
    // As runc: the `r*` options go on the whole tree once it is mounted (and bound).
    if !opts.recursive_attrs.is_empty() {
        let mounted = open_in_root(root, m.destination(), OFlag::O_PATH).context("re-resolving the mount")?;
        set_recursive_attrs(&mounted, opts.recursive_attrs)?;
    }
    Ok(())
}

/// mount_setattr(2) with `AT_RECURSIVE` on the mount at `mounted` (an `O_PATH` fd of it).
fn set_recursive_attrs(mounted: &impl AsFd, attrs: crate::mount_options::RecursiveAttrs) -> Result<()> {
    use std::os::fd::AsRawFd;
    /// `struct mount_attr` (linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: attrs.set, attr_clr: attrs.clear, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr reads `size_of::<MountAttr>()` bytes of `attr`, a valid mount_attr,
    // and the empty NUL-terminated path; `mounted` is an open fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mounted.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "setting recursive mount attributes (mount_setattr set={:#x} clear={:#x}; needs Linux 5.12, 5.14 for rnosymfollow)",
                attrs.set, attrs.clear
            )
        });
    }
    Ok(())
}

fn mount_entry(ctx: &MountContext, root: &File, m: &Mount, opts: &MountOptions) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, dest, opts);
    }
    if bind {
        let source = m.source().as_ref().context("bind mount without a source")?;
        let meta = std::fs::metadata(source).with_context(|| format!("bind source {}", source.display()))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        let target = mkdir_all_in_root(root, dest, kind)?;
        let target_path = proc_fd(&target);
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(source.as_path()), &target_path, NONE, flags, NONE)
            .with_context(|| format!("bind {} -> {}", source.display(), dest.display()))?;
        let extra = opts.flags - MsFlags::MS_REMOUNT;
        if !extra.is_empty() {
            // Re-resolve: the fd still names the directory under the new mount.
            let mounted = open_in_root(root, dest, OFlag::O_PATH).context("re-resolving bind target")?;
            remount_bind(&proc_fd(&mounted), extra, opts.cleared)?;
        }
        apply_propagation(root, dest, opts)?;
        return Ok(());
    }
    let target = mkdir_all_in_root(root, dest, Kind::Dir)?;
    let target_path = proc_fd(&target);
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    if opts.tmpcopyup {
        if typ != "tmpfs" {
            bail!("mount option \"tmpcopyup\" applies to tmpfs mounts only, not {typ:?}");
        }
        return mount_tmpfs_copyup(root, dest, &target_path, opts, data);
    }
    let result = mount(Some(source.as_path()), &target_path, Some(typ), opts.flags, data);
    match (result, typ) {
        (Ok(()), _) => {}
        // Without its own network namespace (or in a user namespace) sysfs cannot be mounted
        // fresh; bind the host's read-only as runc does.
        (Err(Errno::EPERM), "sysfs") => {
            mount(Some("/sys"), &target_path, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
                .context("binding /sys")?;
            let mounted = open_in_root(root, dest, OFlag::O_PATH)?;
            remount_bind(&proc_fd(&mounted), opts.flags | MsFlags::MS_RDONLY, opts.cleared)?;
        }
        (Err(Errno::EPERM), "mqueue") => {
            mount(Some("/dev/mqueue"), &target_path, NONE, MsFlags::MS_BIND, NONE).context("binding /dev/mqueue")?;
        }
        (Err(e), _) => {
            return Err(e).with_context(|| format!("mount -t {typ} {} {}", source.display(), dest.display()))
        }
    }
    apply_propagation(root, dest, opts)?;
    Ok(())
}

/// `tmpcopyup`, as runc: a tmpfs over `dest` that starts with the directory's content (modes,
/// owners, symlinks, times). The directory stays reachable through an fd opened before the
/// mount hides it; a read-only tmpfs is made read-only after the copy.
fn mount_tmpfs_copyup(root: &File, dest: &Path, target: &Path, opts: &MountOptions, data: Option<&str>) -> Result<()> {
    let lower = File::open(target).with_context(|| format!("opening {} to copy it up", dest.display()))?;
    let lower_path = proc_fd(&lower);
    let writable = opts.flags - MsFlags::MS_RDONLY;
    mount(Some("tmpfs"), target, Some("tmpfs"), writable, data)
        .with_context(|| format!("mount -t tmpfs tmpfs {}", dest.display()))?;
    let mounted = open_in_root(root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY).context("re-resolving the tmpfs")?;
    let upper_path = proc_fd(&mounted);
    crate::copy_tree::copy_dir_contents(&lower_path, &upper_path)
        .with_context(|| format!("copying {} up into its tmpfs", dest.display()))?;
    crate::copy_tree::copy_attributes(&lower_path, &upper_path)?;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        mount(NONE, &upper_path, NONE, MsFlags::MS_REMOUNT | opts.flags, data)
            .context("remounting the tmpfs read-only")?;
    }
    apply_propagation(root, dest, opts)
}

fn apply_propagation(root: &File, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let mounted = open_in_root(root, dest, OFlag::O_PATH)?;
    for flags in &opts.propagation {
        mount(NONE, &proc_fd(&mounted), NONE, *flags, NONE).context("changing mount propagation")?;
    }
    Ok(())
}

/// Remounts a bind mount with `flags`, keeping the flags the source mount has locked
/// (nosuid/nodev/noexec/atime ones) unless they were explicitly cleared.
fn remount_bind(target: &Path, flags: MsFlags, cleared: MsFlags) -> Result<()> {
    let locked = statvfs_flags(target)? - cleared;
    mount(NONE, target, NONE, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked, NONE)
        .with_context(|| format!("remounting {} with {flags:?}", target.display()))
}

fn statvfs_flags(path: &Path) -> Result<MsFlags> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    // ST_RELATIME from linux/statfs.h: nix names it only for glibc targets.
    const ST_RELATIME: FsFlags = FsFlags::from_bits_retain(0x1000);
    let st = statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    // Read-only is what the caller decides, not something to inherit.
    Ok(out - MsFlags::MS_RDONLY)
}

/// `cgroup` mounts: with a cgroup namespace, a fresh cgroup2 (v2) or one cgroup mount per v1
/// hierarchy under a tmpfs, rooted at the container's cgroup; without one, binds of the
/// container's own cgroup dirs.
fn mount_cgroup(ctx: &MountContext, root: &File, dest: &Path, opts: &MountOptions) -> Result<()> {
    let target = mkdir_all_in_root(root, dest, Kind::Dir)?;
    let target_path = proc_fd(&target);
    let flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME | MsFlags::MS_RDONLY);
    match ctx.cgroup.mode {
        CgroupMode::V2 => {
            let fresh = ctx.cgroup_ns && mount(Some("cgroup2"), &target_path, Some("cgroup2"), flags, NONE).is_ok();
            if !fresh {
                let dir = ctx.cgroup.dirs.first().context("no cgroup dir")?;
                mount(Some(dir.as_path()), &target_path, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
                    .with_context(|| format!("binding {}", dir.display()))?;
                let mounted = open_in_root(root, dest, OFlag::O_PATH)?;
                remount_bind(&proc_fd(&mounted), flags, opts.cleared)?;
            }
        }
        CgroupMode::V1 => {
            let tmpfs_flags =
                (flags - MsFlags::MS_RDONLY) | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), &target_path, Some("tmpfs"), tmpfs_flags, Some("mode=755"))
                .context("mounting tmpfs for cgroup v1 hierarchies")?;
            for dir in &ctx.cgroup.dirs {
                let (name, opts_v1) = v1_hierarchy_of(dir)?;
                let sub = dest.join(&name);
                let sub_fd = mkdir_all_in_root(root, &sub, Kind::Dir)?;
                let sub_path = proc_fd(&sub_fd);
                let fresh = ctx.cgroup_ns
                    && !ctx.user_ns
                    && mount(Some("cgroup"), &sub_path, Some("cgroup"), flags, Some(opts_v1.as_str())).is_ok();
                if !fresh {
                    mount(Some(dir.as_path()), &sub_path, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
                        .with_context(|| format!("binding {}", dir.display()))?;
                    let mounted = open_in_root(root, &sub, OFlag::O_PATH)?;
                    remount_bind(&proc_fd(&mounted), flags, opts.cleared)?;
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                let mounted = open_in_root(root, dest, OFlag::O_PATH)?;
                mount(
                    NONE,
                    &proc_fd(&mounted),
                    NONE,
                    MsFlags::MS_REMOUNT | tmpfs_flags | MsFlags::MS_RDONLY,
                    Some("mode=755"),
                )
                .context("remounting cgroup tmpfs read-only")?;
            }
        }
    }
    Ok(())
}

/// For a v1 container cgroup dir `/sys/fs/cgroup/<hier>/...`: the hierarchy's name under
/// /sys/fs/cgroup and the mount options naming its controllers.
fn v1_hierarchy_of(dir: &Path) -> Result<(String, String)> {
    let rel = dir
        .strip_prefix("/sys/fs/cgroup")
        .with_context(|| format!("cgroup dir {} is not under /sys/fs/cgroup", dir.display()))?;
    let name =
        rel.components().next().context("cgroup dir without hierarchy")?.as_os_str().to_string_lossy().into_owned();
    let opts = if name == "systemd" { "none,name=systemd".to_string() } else { name.clone() };
    Ok((name, opts))
}

/// The device nodes every container gets.
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
}

/// Creates the default devices and `linux.devices` under the rootfs's /dev (mknod, or bind
/// mounts of the host's nodes inside a user namespace), plus the standard /dev links.
pub fn create_devices(ctx: &MountContext, devices: &[LinuxDevice]) -> Result<()> {
    let root = File::open(ctx.rootfs).with_context(|| format!("opening rootfs {}", ctx.rootfs.display()))?;
    let old_umask = nix::sys::stat::umask(Mode::empty());
    let result = (|| {
        for (name, major, minor) in default_devices() {
            let path = PathBuf::from("/dev").join(name);
            if devices.iter().any(|d| d.path() == &path) {
                continue;
            }
            make_device(ctx, &root, &path, SFlag::S_IFCHR, major, minor, 0o666, 0, 0)?;
        }
        for d in devices {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    bail!("device {} has type 'a', which is only valid in cgroup rules", d.path().display())
                }
            };
            if !d.path().starts_with("/dev") {
                bail!("device path {} is not under /dev", d.path().display());
            }
            make_device(
                ctx,
                &root,
                d.path(),
                kind,
                d.major() as u64,
                d.minor() as u64,
                d.file_mode().unwrap_or(0o666),
                d.uid().unwrap_or(0),
                d.gid().unwrap_or(0),
            )?;
        }
        dev_links(&root)
    })();
    nix::sys::stat::umask(old_umask);
    result
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &MountContext,
    root: &File,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let parent = path.parent().context("device path without parent")?;
    let name = path.file_name().context("device path without name")?;
    let dir = mkdir_all_in_root(root, parent, Kind::Dir)?;
    let dir = nix::fcntl::openat(dir.as_fd(), ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {}", parent.display()))?;
    if ctx.user_ns {
        let target = mkdir_all_in_root(root, path, Kind::File)?;
        mount(Some(path), &proc_fd(&target), NONE, MsFlags::MS_BIND, NONE)
            .with_context(|| format!("binding host device {}", path.display()))?;
        return Ok(());
    }
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    nix::sys::stat::mknodat(
        &dir,
        name,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        nix::sys::stat::makedev(major, minor),
    )
    .with_context(|| format!("mknod {}", path.display()))?;
    nix::unistd::fchownat(&dir, name, Some(uid.into()), Some(gid.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .with_context(|| format!("chown {}", path.display()))?;
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx -> pts/ptmx (only where nothing exists yet).
fn dev_links(root: &File) -> Result<()> {
    let dev = mkdir_all_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let dev = nix::fcntl::openat(dev.as_fd(), ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .context("opening /dev")?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        if name == "ptmx" {
            // A ptmx node copied in by an image would point at the host's devpts instance.
            let _ = nix::unistd::unlinkat(&dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("linking /dev/{name}")),
        }
    }
    Ok(())
}

/// Makes the rootfs `/` without a mount namespace of the container's own: chroot, as runc.
pub fn chroot(rootfs: &Path) -> Result<()> {
    nix::unistd::chroot(rootfs).with_context(|| format!("chroot to {}", rootfs.display()))?;
    nix::unistd::chdir("/").context("chdir to the new root")
}

/// The mounts on and under `dir` in this mount namespace, as (mount id, mount point).
pub fn mounts_under(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(mountinfo
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(' ');
            let id = fields.next()?.parse().ok()?;
            let point = PathBuf::from(crate::cgroups::unescape_mountinfo(fields.nth(3)?));
            point.starts_with(dir).then_some((id, point))
        })
        .collect())
}

/// The mounts made under `dir` since `before` was taken with [`mounts_under`], in mount order.
pub fn mounts_made_under(dir: &Path, before: &[(u64, PathBuf)]) -> Result<Vec<PathBuf>> {
    Ok(mounts_under(dir)?.into_iter().filter(|m| !before.iter().any(|b| b.0 == m.0)).map(|m| m.1).collect())
}

/// Detaches `points` (mounts made in the host's namespace for a container without its own),
/// last made first. One that is already gone is no error.
pub fn unmount_host_mounts(points: &[PathBuf]) -> Result<()> {
    let mut failed = None;
    for point in points.iter().rev() {
        match nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => failed = Some(anyhow::Error::from(e).context(format!("unmounting {}", point.display()))),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Makes the rootfs `/`: pivot_root, then detaches the old root.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let old_root = File::open("/").context("opening the old root")?;
    let new_root = File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?;
    nix::unistd::fchdir(&new_root).context("chdir to rootfs")?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmount it from there.
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    // "." must name the old root, not the new one under it: mount(2) does not cross onto the
    // mount stacked on the cwd, so MS_SLAVE|MS_REC would otherwise reset the propagation of
    // every container mount (an `rshared` bind would become private).
    nix::unistd::fchdir(&old_root).context("chdir to the old root")?;
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE).context("making the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// `--no-pivot`: move the rootfs over / and chroot into it (for ramdisk roots, where
/// pivot_root is not possible; the old root stays reachable to a process with CAP_SYS_CHROOT).
pub fn move_root(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).context("chdir to rootfs")?;
    mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE).context("moving rootfs over /")?;
    nix::unistd::chroot(".").context("chroot")?;
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// After pivot_root: sets the requested propagation on the new `/`.
pub fn finish_propagation(propagation: Option<&str>) -> Result<()> {
    if let Some(p) = propagation.filter(|p| !p.is_empty()) {
        let flags = propagation_flags(p).with_context(|| format!("unknown rootfsPropagation {p:?}"))?;
        mount(NONE, "/", NONE, flags, NONE).context("setting rootfsPropagation on /")?;
    }
    Ok(())
}

/// `maskedPaths`: /dev/null over files, an empty read-only tmpfs over directories.
pub fn mask_paths(paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    // /dev/null is the container's: with a /dev shared with others it could have been swapped
    // for a symlink to something writable. Bind only the real null device, through its fd.
    let null = nix::fcntl::open("/dev/null", OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .context("opening /dev/null to mask paths")?;
    let st = nix::sys::stat::fstat(&null).context("fstat /dev/null")?;
    let is_char = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR;
    if !is_char || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        bail!("/dev/null in the container is not the null device (1:3); refusing to mask paths with it");
    }
    let null_path = proc_fd(&null);
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("masked path {p}")),
        };
        if meta.is_dir() {
            mount(Some("tmpfs"), p.as_str(), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0,mode=755"))
                .with_context(|| format!("masking {p}"))?;
        } else {
            mount(Some(null_path.as_path()), p.as_str(), NONE, MsFlags::MS_BIND, NONE)
                .with_context(|| format!("masking {p}"))?;
        }
    }
    Ok(())
}

/// `readonlyPaths`: bind each onto itself and remount read-only.
pub fn readonly_paths(paths: &[String]) -> Result<()> {
    for p in paths {
        match mount(Some(p.as_str()), p.as_str(), NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("readonly path {p}")),
        }
        remount_bind(Path::new(p), MsFlags::MS_RDONLY | MsFlags::MS_REC, MsFlags::empty())
            .with_context(|| format!("readonly path {p}"))?;
    }
    Ok(())
}

/// `root.readonly`: remount / read-only, keeping its other flags.
pub fn readonly_root() -> Result<()> {
    remount_bind(Path::new("/"), MsFlags::MS_RDONLY, MsFlags::empty()).context("remounting / read-only")
}
