//! Which namespaces a container gets: new ones are created by the clone of init, existing ones
//! (`path`) are joined. pid and time are special: they apply to children, so the parent enters
//! or creates them just before cloning init.

use anyhow::{Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::fs::File;
use std::path::PathBuf;

/// The clone flag of a namespace type.
pub fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME (0x80) collides with CSIGNAL in clone(2): it is only used with unshare.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// True when `namespaces` has an entry of type `typ` (a new namespace or one joined by path).
pub fn listed(namespaces: Option<&[LinuxNamespace]>, typ: LinuxNamespaceType) -> bool {
    namespaces.unwrap_or_default().iter().any(|n| n.typ() == typ)
}

/// The name of a namespace type under `/proc/<pid>/ns/`.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// True when the container has a `typ` namespace apart from the runtime's: a new one, or one
/// joined by path that is not the runtime's own (joining that would share the host's). What
/// hostname, domainname and namespaced sysctls may change, as runc decides it.
pub fn is_private(namespaces: &[LinuxNamespace], typ: LinuxNamespaceType) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Some(ns) = namespaces.iter().find(|n| n.typ() == typ) else { return Ok(false) };
    let Some(path) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) else { return Ok(true) };
    let joined = std::fs::metadata(path).with_context(|| format!("stat of {typ:?} namespace {}", path.display()))?;
    let own_path = format!("/proc/self/ns/{}", proc_name(typ));
    let own = std::fs::metadata(&own_path).with_context(|| format!("stat of {own_path}"))?;
    Ok((joined.dev(), joined.ino()) != (own.dev(), own.ino()))
}

/// The namespace plan of a container.
#[derive(Debug)]
pub struct Plan {
    /// Flags for the clone of init (new namespaces except cgroup and time).
    pub clone_flags: CloneFlags,
    /// A new cgroup namespace, unshared by init once the parent has put it in its cgroup, so
    /// that the container's cgroup is the namespace root.
    pub new_cgroup: bool,
    /// A new time namespace, unshared by the parent before the clone.
    pub new_time: bool,
    /// A new user namespace (the parent writes its id maps).
    pub new_user: bool,
    /// A new network namespace.
    pub new_net: bool,
    /// Namespaces to join by path, in the order init joins them (user first).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// The pid namespace to join by path (entered by the parent before the clone).
    pub join_pid: Option<PathBuf>,
    /// The time namespace to join by path (entered by the parent before the clone).
    pub join_time: Option<PathBuf>,
}

impl Plan {
    /// Builds the plan from `linux.namespaces`.
    pub fn from_spec(namespaces: &[LinuxNamespace]) -> Plan {
        let mut plan = Plan {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_time: false,
            new_user: false,
            new_net: false,
            join: Vec::new(),
            join_pid: None,
            join_time: None,
        };
        for ns in namespaces {
            let typ = ns.typ();
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => match typ {
                    LinuxNamespaceType::Pid => plan.join_pid = Some(path.clone()),
                    LinuxNamespaceType::Time => plan.join_time = Some(path.clone()),
                    _ => plan.join.push((typ, path.clone())),
                },
                _ => match typ {
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    LinuxNamespaceType::Time => plan.new_time = true,
                    _ => {
                        plan.new_user |= typ == LinuxNamespaceType::User;
                        plan.new_net |= typ == LinuxNamespaceType::Network;
                        plan.clone_flags |= flag(typ);
                    }
                },
            }
        }
        // Joining a user namespace first gives the capabilities needed to join the others.
        plan.join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        plan
    }
}

/// Opens a namespace file for joining, checking it is one.
pub fn open(typ: LinuxNamespaceType, path: &std::path::Path) -> Result<File> {
    let file = File::open(path).with_context(|| format!("opening {typ:?} namespace {}", path.display()))?;
    Ok(file)
}

/// Joins the namespace at `path`.
pub fn join(typ: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
    let file = open(typ, path)?;
    nix::sched::setns(&file, flag(typ)).with_context(|| format!("joining {typ:?} namespace {}", path.display()))
}

/// Brings the loopback interface up in the calling process's network namespace: the kernel
/// creates a new namespace's `lo` down, and containers expect 127.0.0.1 to work (runc and crun
/// bring it up too). An ioctl on a socket in the namespace, no `ip` command.
pub fn bring_up_loopback() -> Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .context("socket to configure the loopback interface")?;
    // SAFETY: ifreq is plain data (a name array and a union of integers); all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS writes the flags into `req`, a valid ifreq naming "lo" (NUL-terminated
    // by the zeroed rest of the name).
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading the flags of lo (SIOCGIFFLAGS)");
    }
    // SAFETY: SIOCGIFFLAGS filled the union's flags member, the one read and written here.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq naming "lo" with its new flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } != 0 {
        return Err(std::io::Error::last_os_error()).context("bringing lo up (SIOCSIFFLAGS)");
    }
    Ok(())
}
