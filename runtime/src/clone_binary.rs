//! Protection against the CVE-2019-5736 class: a container process that gets the runtime
//! re-executed (`#!/proc/self/exe`) must not be able to open the host binary for writing. Before
//! any container is set up, the runtime re-executes itself from a sealed memfd copy; what a
//! container can reach through /proc/<pid>/exe is then that immutable copy.

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;

/// `MFD_EXEC` from linux/memfd.h (not in every libc yet).
const MFD_EXEC: libc::c_uint = 0x0010;

const SEALS: SealFlag =
    SealFlag::F_SEAL_SEAL.union(SealFlag::F_SEAL_SHRINK).union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_WRITE);

/// True when this process already runs from a sealed memfd.
pub fn is_cloned() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else { return false };
    match fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(SEALS),
        Err(_) => false,
    }
}

/// Re-executes the current command line from a sealed memfd copy of the binary, unless this
/// process already runs from one. Returns only on failure.
/// How often sealing the copy is tried while the kernel answers EBUSY.
const SEAL_ATTEMPTS: u32 = 100;

pub fn ensure_cloned() -> Result<()> {
    if is_cloned() {
        return Ok(());
    }
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
    let never =
        nix::unistd::fexecve(copy.as_fd(), &args, &env).context("re-executing the runtime from its memfd copy")?;
    match never {}
}
