//! `linux.sysctl`: only namespaced sysctls, and only when the container owns that namespace.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

/// Refuses a sysctl that would change the host (runc's rule): ipc ones need an ipc namespace
/// of the container's own, `net.*` a network one, hostname/domainname a uts one (new, or
/// joined by path when not the runtime's).
pub fn check_allowed(key: &str, namespaces: &[LinuxNamespace]) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.contains('/') || key.contains('\0') {
        bail!("sysctl {key:?} is not a valid sysctl name");
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needed = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        bail!("sysctl {key:?} is not namespaced and would change the host: refused");
    };
    if !crate::namespaces::is_private(namespaces, needed)? {
        bail!("sysctl {key:?} needs a {needed:?} namespace of the container's own (new, or joined by path)");
    }
    Ok(())
}

/// Writes each sysctl through `/proc/sys` (call after pivot_root, with the container's /proc).
pub fn apply(sysctls: &std::collections::HashMap<String, String>) -> Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    // Only ever through a real procfs: a /proc that is something else (a bind of a volume, say)
    // would turn these writes into writes anywhere.
    let fs = nix::sys::statfs::statfs("/proc/sys").context("statfs /proc/sys (is /proc mounted?)")?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        bail!("/proc/sys in the container is not procfs; refusing to write sysctls");
    }
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).with_context(|| format!("setting sysctl {key}={value}"))?;
    }
    Ok(())
}
