//! Protection against the CVE-2019-5736 class: a container process that gets the runtime
//! re-executed (`#!/proc/self/exe`) must not be able to open the host binary for writing. Before
//! any container is set up, the runtime re-executes itself from a copy nobody can write; what a
//! container can reach through /proc/<pid>/exe is then that copy.
//!
//! The copy is, as in runc 1.2, the binary seen through a private overlayfs that is never
//! attached to any mount namespace (fsopen/fsmount): no upper layer, so no write can go through
//! it, and it shares the page cache of the host binary, so it costs no copy (≈0.1 ms instead of
//! copying 3.8 MB). Where that mount cannot be made (no overlayfs, an old kernel, no privilege),
//! the copy is a sealed memfd, as before.

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `MFD_EXEC` from linux/memfd.h (not in every libc yet).
const MFD_EXEC: libc::c_uint = 0x0010;

const SEALS: SealFlag =
    SealFlag::F_SEAL_SEAL.union(SealFlag::F_SEAL_SHRINK).union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_WRITE);

/// True when this process already runs from a protected copy: a sealed memfd, or a file on a
/// read-only overlayfs (what [`ensure_cloned`] makes; a binary installed on a read-only overlay
/// is as safe, since nothing can open it for writing either).
pub fn is_cloned() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else { return false };
    let sealed = match fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(SEALS),
        Err(_) => false,
    };
    sealed || on_read_only_overlay(&exe)
}

fn on_read_only_overlay(file: &File) -> bool {
    let (Ok(fs), Ok(vfs)) = (nix::sys::statfs::fstatfs(file), nix::sys::statvfs::fstatvfs(file)) else {
        return false;
    };
    fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC
        && vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
}

/// How often sealing the memfd copy is tried while the kernel answers EBUSY.
const SEAL_ATTEMPTS: u32 = 100;

/// Re-executes the current command line from a protected copy of the binary, unless this
/// process already runs from one. Returns only on failure.
pub fn ensure_cloned() -> Result<()> {
    if is_cloned() {
        return Ok(());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<_, _>>()
        .context("argument with a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .context("environment with a NUL byte")?;
    let overlay_failed = match overlay_view() {
        // Returns only if the exec failed (an LSM may refuse the overlay's file).
        Ok(view) => match nix::unistd::fexecve(view.as_fd(), &args, &env) {
            Ok(never) => match never {},
            Err(e) => anyhow::Error::from(e).context("executing the binary through the overlay"),
        },
        Err(e) => e,
    };
    crate::logging::debug(&format!(
        "no private overlay of the runtime binary ({overlay_failed:#}): re-executing from a sealed memfd copy"
    ));
    let copy = sealed_memfd_copy()?;
    let never = nix::unistd::fexecve(copy.as_fd(), &args, &env).context("re-executing the runtime from its copy")?;
    match never {}
}

/// The binary opened through a private read-only overlayfs whose lower layers are the binary's
/// directory and /dev (overlayfs wants two lower layers when it has no upper one; what the second
/// holds does not matter, the binary's directory is on top). The overlay is attached nowhere:
/// once this returns, only the open file keeps it.
fn overlay_view() -> Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    const SECOND_LOWER: &str = "/dev";
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        anyhow::bail!("{} has no directory", exe.display());
    };
    let raw = dir.as_os_str().as_bytes();
    // In overlayfs's lowerdir, ':' separates layers and '\\' escapes; layers may not overlap; a
    // binary deleted since it started reads "<path> (deleted)".
    if !dir.is_absolute()
        || raw.iter().any(|b| matches!(b, b':' | b'\\' | b','))
        || exe.as_os_str().as_bytes().ends_with(b" (deleted)")
        || dir.starts_with(SECOND_LOWER)
    {
        anyhow::bail!("{} is not a directory overlayfs can take as a layer", dir.display());
    }
    let mut lower = raw.to_vec();
    lower.push(b':');
    lower.extend_from_slice(SECOND_LOWER.as_bytes());
    let lower = CString::new(lower).context("binary path with a NUL byte")?;
    let view = detached_mount(
        c"overlay",
        &[(c"lowerdir", lower.as_c_str())],
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )?;
    let file = nix::fcntl::openat(
        view.as_fd(),
        Path::new(name),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening {} through the overlay", exe.display()))?;
    Ok(file)
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// A new `fstype` filesystem with string `options`, as a mount attached to no namespace.
fn detached_mount(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: libc::c_uint) -> Result<OwnedFd> {
    let fs_name = fstype.to_string_lossy();
    // SAFETY: fsopen(2) reads the NUL-terminated `fstype`; the fd it returns is ours alone.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("fsopen {fs_name}"));
    }
    // SAFETY: `fs` was just returned by fsopen and is owned by nobody else.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    for (key, value) in options {
        // SAFETY: fsconfig(2) reads the two NUL-terminated strings, which outlive the call.
        let r = unsafe {
            libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0)
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("fsconfig {fs_name} {}", key.to_string_lossy()));
        }
    }
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value (both null).
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, null, null, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("creating a {fs_name} superblock"));
    }
    // SAFETY: fsmount(2) on the configured context; the mount fd it returns is ours alone.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if m < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("fsmount {fs_name}"));
    }
    // SAFETY: `m` was just returned by fsmount and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
}

/// A sealed memfd holding a copy of the binary.
fn sealed_memfd_copy() -> Result<OwnedFd> {
    let mut exe = File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    // MFD_EXEC (Linux 6.3+) keeps the copy executable under vm.memfd_noexec=1; older kernels
    // reject the flag and make every memfd executable anyway.
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let memfd = match memfd_create(c"berth-runtime", flags | MFdFlags::from_bits_retain(MFD_EXEC)) {
        Err(nix::errno::Errno::EINVAL) => memfd_create(c"berth-runtime", flags),
        other => other,
    }
    .context("memfd_create for the sealed runtime copy (vm.memfd_noexec=2 forbids executable memfds)")?;
    let mut copy = File::from(memfd);
    std::io::copy(&mut exe, &mut copy).context("copying the runtime binary into a memfd")?;
    // F_SEAL_WRITE fails with EBUSY while the kernel still holds references to pages the copy
    // just wrote (seen under heavy load); they are released shortly.
    let mut attempts = 0;
    loop {
        match fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(SEALS)) {
            Err(nix::errno::Errno::EBUSY) if attempts < SEAL_ATTEMPTS => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            other => {
                other.context("sealing the runtime memfd")?;
                break;
            }
        }
    }
    Ok(OwnedFd::from(copy))
}
