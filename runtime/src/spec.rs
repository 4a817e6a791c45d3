//! Loading and validating a bundle's `config.json` before anything touches the filesystem.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// The newest runtime-spec minor version this runtime knows; newer 1.x minors are accepted too
/// (the spec keeps compatibility within a major version), older majors and 2.x are refused.
pub const OCI_VERSION: &str = "1.3.0";

/// Reads `<bundle>/config.json`, checks its `ociVersion` and parses it.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid config {}", path.display()))
}

/// Parses config.json bytes: ociVersion first (clear error for a wrong major), then the full spec.
/// Unknown fields are ignored, as the spec requires.
pub fn parse(text: &[u8]) -> Result<Spec> {
    let value: serde_json::Value = serde_json::from_slice(text).context("config.json is not valid JSON")?;
    let version = value.get("ociVersion").and_then(|v| v.as_str()).context("ociVersion is missing or not a string")?;
    check_version(version)?;
    match serde_json::from_value::<Spec>(value.clone()) {
        Ok(spec) => Ok(spec),
        Err(e) => match failing_field(&value) {
            Some(field) => {
                Err(e).with_context(|| format!("config.json field {field:?} does not match the OCI runtime spec"))
            }
            None => Err(e).context("config.json does not match the OCI runtime spec"),
        },
    }
}

/// The top-level field of a config that fails to parse on its own (serde's message names the
/// type it wanted, not where).
fn failing_field(value: &serde_json::Value) -> Option<String> {
    let obj = value.as_object()?;
    obj.keys()
        .find(|k| {
            let one = serde_json::json!({ "ociVersion": obj["ociVersion"], k.as_str(): obj[k.as_str()] });
            serde_json::from_value::<Spec>(one).is_err()
        })
        .cloned()
}

/// Accepts any 1.x.y (with optional pre-release suffix such as `1.0.2-dev`).
pub fn check_version(version: &str) -> Result<()> {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        bail!("ociVersion {version:?} is not a semantic version");
    }
    if parts[0] != "1" {
        bail!("unsupported ociVersion {version}: this runtime supports 1.x (up to {OCI_VERSION})");
    }
    Ok(())
}

/// Resolves `root.path` against the bundle. A relative path is resolved *inside* the bundle
/// directory (a symlink `rootfs -> /` or `-> ../..` cannot point the container at the host root).
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec.root().as_ref().context("config.json has no root")?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        bail!("root.path is empty");
    }
    let resolved = if path.is_absolute() {
        std::fs::canonicalize(path).with_context(|| format!("root.path {}", path.display()))?
    } else {
        let bundle_dir = std::fs::File::open(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
        let fd = crate::safe_path::open_in_root(&bundle_dir, path, nix::fcntl::OFlag::O_PATH)
            .with_context(|| format!("root.path {} in bundle {}", path.display(), bundle.display()))?;
        let confined = crate::safe_path::fd_path(&fd)?;
        // The lookup above keeps a symlink (`rootfs -> /`, `-> ../..`) inside the bundle; refuse
        // it rather than silently using another directory of the bundle as the root.
        if std::fs::canonicalize(bundle.join(path)).ok().as_deref() != Some(confined.as_path()) {
            bail!("root.path {} leads out of the bundle {} (symlink or '..')", path.display(), bundle.display());
        }
        confined
    };
    if resolved == Path::new("/") {
        bail!("root.path {} is the host's root directory /", path.display());
    }
    if !resolved.is_dir() {
        bail!("rootfs {} is not a directory", resolved.display());
    }
    Ok(resolved)
}

/// Semantic checks the JSON schema cannot express, done before any state is created.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref().context("config.json has no process")?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => bail!("process.args must not be empty"),
    }
    if !process.cwd().is_absolute() {
        bail!("process.cwd {:?} must be an absolute path", process.cwd());
    }
    let linux = spec.linux().as_ref().context("config.json has no linux section")?;
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let mut seen = Vec::new();
    for ns in &namespaces {
        if seen.contains(&ns.typ()) {
            bail!("namespace {:?} is listed twice", ns.typ());
        }
        seen.push(ns.typ());
    }
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !has(LinuxNamespaceType::Mount) {
        // The container runs in the runtime's mount namespace, as runc allows: its mounts are
        // made on the host on and under the rootfs (and undone by delete), and init chroots.
        // A propagation would change the host's own mounts: refused.
        if linux.rootfs_propagation().as_deref().is_some_and(|p| !p.is_empty()) {
            bail!("linux.rootfsPropagation needs a mount namespace (without one it would change the host's /)");
        }
    }
    let has_new_userns = namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if has_new_userns && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        bail!("a new user namespace needs linux.uidMappings");
    }
    if has_new_userns && linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        bail!("a new user namespace needs linux.gidMappings");
    }
    if !has(LinuxNamespaceType::User) && (linux.uid_mappings().is_some() || linux.gid_mappings().is_some()) {
        let nonempty = |m: &Option<Vec<_>>| m.as_ref().is_some_and(|m: &Vec<_>| !m.is_empty());
        if nonempty(linux.uid_mappings()) || nonempty(linux.gid_mappings()) {
            bail!("uid/gid mappings are set but there is no user namespace");
        }
    }
    // As runc: a UTS namespace joined by path is the container's too (unless it is ours).
    if (spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty()))
        && !crate::namespaces::is_private(&namespaces, LinuxNamespaceType::Uts)?
    {
        bail!("unable to set hostname or domainname without a private UTS namespace");
    }
    if let Some(sysctls) = linux.sysctl() {
        for key in sysctls.keys() {
            crate::sysctl::check_allowed(key, &namespaces)?;
        }
    }
    if let Some(policy) = linux.memory_policy() {
        crate::mempolicy::compile(policy)?;
    }
    if linux.intel_rdt().is_some() {
        bail!("linux.intelRdt is not supported by berth-runtime");
    }
    if let Some(p) = linux.personality() {
        crate::personality::compile(p)?;
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty())
        || process.selinux_label().as_ref().is_some_and(|l| !l.is_empty())
    {
        bail!("an SELinux label is set but SELinux is not supported on this host");
    }
    if let Some(profile) = process.apparmor_profile().as_ref().filter(|p| !p.is_empty()) {
        if Path::new("/sys/kernel/security/apparmor").exists() {
            bail!("apparmor profile {profile:?} requested: AppArmor is not supported by berth-runtime yet");
        }
        bail!("apparmor profile {profile:?} requested but AppArmor is not enabled on this host");
    }
    if let Some(s) = process.scheduler() {
        crate::scheduler::compile(s)?;
    }
    if let Some(p) = process.io_priority() {
        crate::io_priority::compile(p)?;
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        bail!(
            "linux.netDevices (moving host network devices into the container) is not supported by berth-runtime yet"
        );
    }
    // For the processes `exec` runs later (as runc: config.json's is their default).
    crate::cpu_affinity::Plan::of(process)?;
    for mount in spec.mounts().iter().flatten() {
        if !mount.destination().is_absolute() {
            bail!("mount destination {:?} must be absolute", mount.destination());
        }
        if mount.uid_mappings().is_some() || mount.gid_mappings().is_some() {
            bail!("idmapped mounts ({}) are not supported by berth-runtime yet", mount.destination().display());
        }
        crate::mount_options::MountOptions::parse(mount.options().as_deref().unwrap_or_default())
            .with_context(|| format!("mount {}", mount.destination().display()))?;
    }
    crate::cgroups::resources::check(linux.resources().as_ref())?;
    Ok(())
}

/// The config.json `spec` writes: runc's default (an interactive `sh` on a terminal, the three
/// default capabilities, the usual mounts, masked and read-only paths).
pub fn default_spec() -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_1_0_to_1_3_are_accepted() {
        for v in ["1.0.0", "1.0.2", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.5"] {
            check_version(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn other_majors_and_garbage_are_refused() {
        for v in ["2.0.0", "0.9.0", "", "1.0", "one", "1.x.0"] {
            assert!(check_version(v).is_err(), "{v} accepted");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let spec = parse(br#"{"ociVersion":"1.3.0","someFutureField":{"x":1},"root":{"path":"rootfs"}}"#).unwrap();
        assert_eq!(spec.version(), "1.3.0");
    }

    #[test]
    fn missing_version_is_an_error() {
        let err = parse(br#"{"root":{"path":"rootfs"}}"#).unwrap_err();
        assert!(format!("{err:#}").contains("ociVersion"));
    }
}
