//! The OCI runtime spec of a container, from its image's config and the create options, with
//! docker's defaults: docker's capability set, berth's default seccomp profile, masked and
//! read-only /proc and /sys paths, a 64 MiB /dev/shm, bind-mounted /etc/hostname, /etc/hosts and
//! /etc/resolv.conf, the image's Env/Entrypoint/Cmd/WorkingDir/User, and the resource limits.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_proto::container_config::{CreateConfig, MountConfig};
use serde::Deserialize;
use serde_json::{json, Value};

use super::user::ExecUser;

/// The PATH a container gets when its image sets none (docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// docker's default `/dev/shm` size.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;
/// Where `--init`'s reaper is mounted inside the container.
pub const INIT_PATH: &str = "/sbin/berth-init";

/// docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The part of an image config that says how to run it (`config` in the OCI image config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageRuntimeConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: String,
    pub stop_signal: String,
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageRuntimeConfig {
    /// From an image config blob (`{"config": {...}}`); a config without one runs nothing by
    /// default.
    pub fn from_image_config(config: &Value) -> Result<ImageRuntimeConfig> {
        match config.get("config") {
            None | Some(Value::Null) => Ok(ImageRuntimeConfig::default()),
            Some(c) => serde_json::from_value(c.clone()).context("parsing the image's config"),
        }
    }
}

/// Everything the spec is made from.
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub config: &'a CreateConfig,
    pub image: &'a ImageRuntimeConfig,
    pub user: &'a ExecUser,
    /// Holds the generated `hostname`, `hosts` and `resolv.conf`.
    pub etc_dir: &'a Path,
    /// The host's `berth-init` binary, for `--init`.
    pub init_binary: Option<&'a Path>,
    /// The host runs cgroup v2 (docker gives containers a private cgroup namespace there).
    pub cgroup_v2: bool,
}

/// The hostname a container gets: `--hostname`, else its short id.
pub fn hostname(id: &str, config: &CreateConfig) -> String {
    config.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| id.chars().take(12).collect())
}

/// The process's argv: docker's Entrypoint/Cmd rules (an `--entrypoint` resets the image's Cmd).
pub fn command(config: &CreateConfig, image: &ImageRuntimeConfig) -> Vec<String> {
    let (entrypoint, image_cmd) = match &config.entrypoint {
        Some(e) => (e.clone(), None),
        None => (image.entrypoint.clone().unwrap_or_default(), image.cmd.clone()),
    };
    let cmd = config.cmd.clone().or(image_cmd).unwrap_or_default();
    entrypoint.into_iter().chain(cmd).collect()
}

/// The process environment: HOSTNAME, the image's, then the user's (later keys win), PATH
/// defaulted, TERM with a terminal.
pub fn environment(config: &CreateConfig, image: &ImageRuntimeConfig, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = vec![format!("HOSTNAME={hostname}")];
    let mut set = |kv: &str| {
        let key = kv.split_once('=').map_or(kv, |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.to_string());
    };
    for kv in &image.env {
        set(kv);
    }
    for kv in &config.env {
        set(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(1, format!("PATH={DEFAULT_PATH}"));
    }
    if config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` are all `CAP_NET_ADMIN`; `ALL` stays.
fn normalize_cap(name: &str) -> Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if full.parse::<caps::Capability>().is_err() {
        bail!("invalid capability: {name:?}");
    }
    Ok(full)
}

/// Every capability berthd itself may hand out (its bounding set: a host may withhold some
/// even from root, and a container cannot get more).
pub fn all_caps() -> Vec<String> {
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut all: Vec<String> = bounding.into_iter().map(|c| c.to_string()).collect();
    all.sort();
    all
}

/// docker's capability arithmetic: the default set (all with `--privileged`), minus
/// `--cap-drop`, plus `--cap-add`; `ALL` on either side means every capability.
pub fn capabilities(config: &CreateConfig) -> Result<Vec<String>> {
    if config.privileged {
        return Ok(all_caps());
    }
    let add = config.cap_add.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>>>()?;
    let drop = config.cap_drop.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>>>()?;
    let mut set: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    if add.iter().any(|c| c == "ALL") {
        set = all_caps().into_iter().filter(|c| !drop.contains(c) || drop.iter().any(|d| d == "ALL")).collect();
    } else {
        for c in add {
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    Ok(set)
}

fn ulimit_type(name: &str) -> Result<String> {
    if !berth_proto::container_config::ULIMIT_NAMES.contains(&name) {
        bail!("invalid ulimit type: {name}");
    }
    Ok(format!("RLIMIT_{}", name.to_ascii_uppercase()))
}

fn check_container_path(what: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') {
        bail!("invalid {what} {path:?}: it needs to be an absolute path");
    }
    if path.split('/').any(|c| c == "..") {
        bail!("invalid {what} {path:?}: it must not contain \"..\"");
    }
    Ok(())
}

/// The OCI mount of one `-v`/`--mount`/`--tmpfs`.
fn user_mount(m: &MountConfig) -> Result<Value> {
    check_container_path("mount path", &m.target)?;
    if m.target == "/" {
        bail!("invalid mount config: the destination cannot be /");
    }
    match m.kind.as_str() {
        "bind" => {
            if !m.source.starts_with('/') {
                bail!(
                    "invalid mount config for type \"bind\": invalid mount path: {:?} mount path must be absolute",
                    m.source
                );
            }
            let propagation = m.propagation.clone().unwrap_or_else(|| "rprivate".into());
            if !["private", "rprivate", "shared", "rshared", "slave", "rslave"].contains(&propagation.as_str()) {
                bail!("invalid propagation mode: {propagation}");
            }
            let mut options = vec!["rbind".to_string(), propagation];
            options.push(if m.read_only { "ro".into() } else { "rw".into() });
            options.extend(m.options.iter().cloned());
            Ok(json!({"destination": m.target, "type": "bind", "source": m.source, "options": options}))
        }
        "tmpfs" => {
            let mut options = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
            if m.read_only {
                options.push("ro".into());
            }
            for o in &m.options {
                for part in o.split(',').filter(|p| !p.is_empty()) {
                    // Options the user gives replace our defaults of the same kind.
                    let opposite = match part {
                        "exec" => Some("noexec"),
                        "suid" => Some("nosuid"),
                        "dev" => Some("nodev"),
                        _ => None,
                    };
                    if let Some(opp) = opposite {
                        options.retain(|x| x != opp);
                    }
                    options.push(part.to_string());
                }
            }
            Ok(json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": options}))
        }
        // berthd resolved the volume to its directory (`volume::mounts`) before the spec.
        "volume" if m.host_path.starts_with('/') => {
            let options = ["rbind", "rprivate", if m.read_only { "ro" } else { "rw" }];
            Ok(json!({"destination": m.target, "type": "bind", "source": m.host_path, "options": options}))
        }
        other => bail!("mount type {other:?} is not supported (bind, volume and tmpfs are)"),
    }
}

/// An OCI device entry and its cgroup rule for host device `host` seen at `container`.
fn device(host: &Path, container: &str, permissions: &str) -> Result<(Value, Value)> {
    let meta = std::fs::metadata(host).with_context(|| {
        format!("error gathering device information while adding custom device {:?}", host.display().to_string())
    })?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        bail!("{} is not a device", host.display());
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let dev = json!({
        "path": container, "type": kind, "major": major, "minor": minor,
        "fileMode": meta.mode() & 0o7777, "uid": 0, "gid": 0,
    });
    let rule = json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": permissions});
    Ok((dev, rule))
}

/// docker's default device rules: deny all, then the usual nodes and mknod of anything.
fn default_device_rules() -> Vec<Value> {
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    for (kind, major, minor, access) in [
        ("c", None, None, "m"),
        ("b", None, None, "m"),
        ("c", Some(1), Some(3), "rwm"),
        ("c", Some(1), Some(8), "rwm"),
        ("c", Some(1), Some(7), "rwm"),
        ("c", Some(5), Some(0), "rwm"),
        ("c", Some(1), Some(5), "rwm"),
        ("c", Some(1), Some(9), "rwm"),
        ("c", Some(5), Some(1), "rwm"),
        ("c", Some(136), None, "rwm"),
        ("c", Some(5), Some(2), "rwm"),
        ("c", Some(10), Some(200), "rwm"),
    ] {
        let mut r = json!({"allow": true, "type": kind, "access": access});
        if let Some(m) = major {
            r["major"] = json!(m);
        }
        if let Some(m) = minor {
            r["minor"] = json!(m);
        }
        rules.push(r);
    }
    rules
}

/// Every device node directly under the host's /dev (and its subdirectories, one level), for
/// `--privileged`.
fn host_devices() -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/dev")];
    let mut depth = 0;
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let name = path.to_string_lossy().to_string();
            if ft.is_dir() && depth == 0 && !["/dev/pts", "/dev/shm", "/dev/mqueue"].contains(&name.as_str()) {
                dirs.push(path);
            } else if (ft.is_char_device() || ft.is_block_device())
                && name != "/dev/console"
                && !name.starts_with("/dev/pts/")
            {
                if let Ok(d) = device(&path, &name, "rwm") {
                    out.push(d);
                }
            }
        }
        depth = 1;
    }
    out
}

/// Memory, CPU and pids limits as OCI `linux.resources`.
pub fn resources(
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<u64>,
    cpuset_cpus: Option<&str>,
    pids_limit: Option<i64>,
) -> Result<Value> {
    let mut r = json!({});
    if let Some(m) = memory.filter(|m| *m > 0) {
        if m < 6 << 20 {
            bail!("Minimum memory limit allowed is 6MB");
        }
        r["memory"] = json!({"limit": m});
        match memory_swap {
            Some(-1) => r["memory"]["swap"] = json!(-1),
            Some(s) if s > 0 => {
                if s < m {
                    bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
                }
                r["memory"]["swap"] = json!(s);
            }
            // docker: as much swap as memory.
            _ => r["memory"]["swap"] = json!(m.saturating_mul(2)),
        }
    } else if memory_swap.is_some_and(|s| s > 0) {
        bail!("You should always set the Memory limit when using Memoryswap limit, see usage");
    }
    let mut cpu = serde_json::Map::new();
    if let Some(n) = nano_cpus.filter(|n| *n > 0) {
        let online = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
        if n > online * 1_000_000_000 {
            bail!("Range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available");
        }
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(n * 100_000 / 1_000_000_000));
    }
    if let Some(s) = cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s.max(2)));
    }
    if let Some(c) = cpuset_cpus.filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = pids_limit.filter(|p| *p != 0) {
        r["pids"] = json!({"limit": if p < 0 { -1 } else { p }});
    }
    Ok(r)
}

/// The whole spec.
pub fn generate(inp: &SpecInputs<'_>) -> Result<Value> {
    let c = inp.config;
    let hostname = hostname(inp.id, c);
    let mut args = command(c, inp.image);
    if args.is_empty() {
        bail!("No command specified");
    }
    if c.init {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let cwd = c.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| {
        if inp.image.working_dir.is_empty() {
            "/".into()
        } else {
            inp.image.working_dir.clone()
        }
    });
    check_container_path("working directory", &cwd)
        .map_err(|_| anyhow::anyhow!("the working directory '{cwd}' is invalid, it needs to be an absolute path"))?;
    let caps = capabilities(c)?;
    let mut rlimits = Vec::new();
    for u in &c.ulimits {
        if u.soft > u.hard {
            bail!("ulimit soft limit must be less than or equal to hard limit: {} > {}", u.soft, u.hard);
        }
        rlimits.push(json!({"type": ulimit_type(&u.name)?, "soft": u.soft, "hard": u.hard}));
    }
    let mut process = json!({
        "terminal": c.tty,
        "user": {"uid": inp.user.uid, "gid": inp.user.gid},
        "args": args,
        "env": environment(c, inp.image, &hostname),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": c.no_new_privileges,
        "oomScoreAdj": 0,
    });
    if !inp.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(inp.user.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }

    let shm_size = c.shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE);
    let sys_options: Vec<&str> =
        if c.privileged { vec!["nosuid", "noexec", "nodev"] } else { vec!["nosuid", "noexec", "nodev", "ro"] };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if c.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]}),
    ];
    for (file, dest) in [("resolv.conf", "/etc/resolv.conf"), ("hostname", "/etc/hostname"), ("hosts", "/etc/hosts")] {
        let source = inp.etc_dir.join(file);
        mounts.push(json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "rprivate"]}));
    }
    if let Some(init) = inp.init_binary.filter(|_| c.init) {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    let user_mounts = c.mounts.iter().map(user_mount).collect::<Result<Vec<_>>>()?;
    let mut seen = std::collections::HashSet::new();
    for m in &user_mounts {
        let dest = m["destination"].as_str().unwrap_or_default().trim_end_matches('/').to_string();
        if !seen.insert(dest.clone()) {
            bail!("Duplicate mount point: {dest}");
        }
        mounts.retain(|d| d["destination"].as_str() != Some(dest.as_str()));
    }
    mounts.extend(user_mounts);

    let mut namespaces =
        vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
    // A new namespace but on the host's network; berthd gives the task its pinned namespace
    // (or another container's) at start, by path.
    if c.network.as_deref() == Some("host") {
        if c.hostname.is_some() {
            bail!("conflicting options: hostname and the network mode");
        }
    } else {
        namespaces.push(json!({"type": "network"}));
    }
    if inp.cgroup_v2 {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources =
        resources(c.memory, c.memory_swap, c.nano_cpus, c.cpu_shares, c.cpuset_cpus.as_deref(), c.pids_limit)?;
    let mut devices = Vec::new();
    let mut device_rules =
        if c.privileged { vec![json!({"allow": true, "access": "rwm"})] } else { default_device_rules() };
    if c.privileged {
        for (dev, _) in host_devices() {
            devices.push(dev);
        }
    }
    for d in &c.devices {
        let perms = if d.permissions.is_empty() { "rwm" } else { d.permissions.as_str() };
        if perms.is_empty() || !perms.chars().all(|ch| "rwm".contains(ch)) {
            bail!("invalid device mode: {perms}");
        }
        let container = if d.container_path.is_empty() { d.host_path.as_str() } else { d.container_path.as_str() };
        check_container_path("device path", container)?;
        let (dev, rule) = device(Path::new(&d.host_path), container, perms)?;
        devices.retain(|x| x["path"] != dev["path"]);
        devices.push(dev);
        device_rules.push(rule);
    }
    resources["devices"] = json!(device_rules);

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("/berth/{}", inp.id),
        "sysctl": c.sysctls,
    });
    if !devices.is_empty() {
        linux["devices"] = json!(devices);
    }
    if !c.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        let seccomp = match c.seccomp_profile.as_deref() {
            Some("unconfined") => None,
            Some(text) => Some(custom_seccomp(text)?),
            None => Some(
                serde_json::to_value(berth_runtime::seccomp::default_profile::resolve(&caps)?)
                    .context("encoding the default seccomp profile")?,
            ),
        };
        if let Some(s) = seccomp {
            linux["seccomp"] = s;
        }
    }

    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": c.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// A `--security-opt seccomp=FILE` profile: OCI's `linux.seccomp` fields (docker's simple
/// profiles are that; its conditional `includes`/`excludes` are refused by name).
fn custom_seccomp(text: &str) -> Result<Value> {
    let profile: Value = serde_json::from_str(text).context("decoding seccomp profile")?;
    let Some(obj) = profile.as_object() else { bail!("decoding seccomp profile: not a JSON object") };
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "defaultAction" | "defaultErrnoRet" | "architectures" | "flags" | "listenerPath" | "listenerMetadata" => {
                out.insert(k.clone(), v.clone());
            }
            "syscalls" => {
                for s in v.as_array().into_iter().flatten() {
                    if s.get("includes").is_some_and(|i| i != &json!({}))
                        || s.get("excludes").is_some_and(|e| e != &json!({}))
                    {
                        bail!("seccomp profile: conditional rules (includes/excludes) are not supported");
                    }
                }
                let cleaned: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let mut s = s.clone();
                        if let Some(o) = s.as_object_mut() {
                            o.remove("includes");
                            o.remove("excludes");
                            o.remove("comment");
                            if let Some(name) = o.remove("name") {
                                o.insert("names".into(), json!([name]));
                            }
                        }
                        s
                    })
                    .collect();
                out.insert(k.clone(), json!(cleaned));
            }
            "archMap" => {
                let native = match std::env::consts::ARCH {
                    "x86_64" => "SCMP_ARCH_X86_64",
                    "aarch64" => "SCMP_ARCH_AARCH64",
                    _ => "",
                };
                if !out.contains_key("architectures") {
                    if let Some(entry) = v.as_array().into_iter().flatten().find(|e| e["architecture"] == native) {
                        let mut arches = vec![entry["architecture"].clone()];
                        arches.extend(entry["subArchitectures"].as_array().cloned().unwrap_or_default());
                        out.insert("architectures".into(), json!(arches));
                    }
                }
            }
            _ => {}
        }
    }
    if !out.contains_key("defaultAction") {
        bail!("decoding seccomp profile: no defaultAction");
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::container_config::{DeviceMapping, Ulimit};

    fn inputs<'a>(config: &'a CreateConfig, image: &'a ImageRuntimeConfig, user: &'a ExecUser) -> SpecInputs<'a> {
        SpecInputs {
            id: "0123456789abcdef",
            config,
            image,
            user,
            etc_dir: Path::new("/run/x"),
            init_binary: None,
            cgroup_v2: false,
        }
    }

    fn root() -> ExecUser {
        ExecUser { uid: 0, gid: 0, additional_gids: vec![], home: "/root".into() }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_in_docker() {
        let image = ImageRuntimeConfig {
            entrypoint: Some(vec!["/ep".into()]),
            cmd: Some(vec!["a".into()]),
            ..Default::default()
        };
        let c = |cmd: Option<&[&str]>, ep: Option<&[&str]>| CreateConfig {
            cmd: cmd.map(|v| v.iter().map(|s| s.to_string()).collect()),
            entrypoint: ep.map(|v| v.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(command(&c(None, None), &image), ["/ep", "a"]);
        assert_eq!(command(&c(Some(&["b"]), None), &image), ["/ep", "b"]);
        assert_eq!(command(&c(None, Some(&["sh"])), &image), ["sh"]);
        assert_eq!(command(&c(Some(&["x"]), Some(&[])), &image), ["x"]);
    }

    #[test]
    fn env_has_hostname_default_path_and_user_overrides() {
        let image = ImageRuntimeConfig { env: vec!["A=1".into(), "B=2".into()], ..Default::default() };
        let config = CreateConfig { env: vec!["B=3".into()], tty: true, ..Default::default() };
        let env = environment(&config, &image, "h");
        assert_eq!(env, ["HOSTNAME=h", &format!("PATH={DEFAULT_PATH}"), "A=1", "B=3", "TERM=xterm"]);
    }

    #[test]
    fn capabilities_follow_add_and_drop() {
        let c = |add: &[&str], drop: &[&str]| CreateConfig {
            cap_add: add.iter().map(|s| s.to_string()).collect(),
            cap_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let caps = capabilities(&c(&["net_admin"], &["CAP_CHOWN", "kill"])).expect("caps");
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()) && !caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(capabilities(&c(&["SYS_TIME"], &["ALL"])).expect("caps"), ["CAP_SYS_TIME"]);
        assert!(capabilities(&c(&["ALL"], &[])).expect("caps").contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(capabilities(&c(&["bogus"], &[])).is_err());
    }

    #[test]
    fn spec_has_dockers_defaults() {
        let image = ImageRuntimeConfig { cmd: Some(vec!["sh".into()]), ..Default::default() };
        let config = CreateConfig::default();
        let user = root();
        let spec = generate(&inputs(&config, &image, &user)).expect("spec");
        assert_eq!(spec["hostname"], "0123456789ab");
        assert_eq!(spec["process"]["cwd"], "/");
        assert!(spec["linux"]["seccomp"]["defaultAction"].is_string());
        assert!(spec["mounts"].as_array().expect("mounts").iter().any(|m| m["destination"] == "/dev/shm"
            && m["options"].as_array().expect("options").contains(&json!("size=67108864"))));
        assert!(spec["linux"]["namespaces"].as_array().expect("ns").contains(&json!({"type": "network"})));
        assert_eq!(spec["linux"]["maskedPaths"][0], "/proc/asound");
    }

    #[test]
    fn run_options_reach_the_spec() {
        let image = ImageRuntimeConfig { cmd: Some(vec!["sh".into()]), ..Default::default() };
        let config = CreateConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(20),
            ulimits: vec![Ulimit { name: "nofile".into(), soft: 100, hard: 200 }],
            read_only: true,
            seccomp_profile: Some("unconfined".into()),
            devices: vec![DeviceMapping {
                host_path: "/dev/null".into(),
                container_path: "/dev/mynull".into(),
                permissions: "rw".into(),
            }],
            mounts: vec![MountConfig {
                kind: "tmpfs".into(),
                target: "/scratch".into(),
                options: vec!["size=1m,exec".into()],
                ..Default::default()
            }],
            network: Some("host".into()),
            ..Default::default()
        };
        let user = root();
        let spec = generate(&inputs(&config, &image, &user)).expect("spec");
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 20);
        assert_eq!(spec["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(spec["root"]["readonly"], true);
        assert!(spec["linux"].get("seccomp").is_none());
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/mynull");
        assert!(!spec["linux"]["namespaces"].as_array().expect("ns").contains(&json!({"type": "network"})));
        let scratch = spec["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/scratch")
            .cloned()
            .expect("tmpfs");
        assert_eq!(scratch["options"], json!(["nosuid", "nodev", "size=1m", "exec"]));
    }

    #[test]
    fn bad_options_are_refused() {
        let image = ImageRuntimeConfig::default();
        let user = root();
        assert!(generate(&inputs(&CreateConfig::default(), &image, &user))
            .expect_err("no cmd")
            .to_string()
            .contains("No command specified"));
        let image = ImageRuntimeConfig { cmd: Some(vec!["sh".into()]), ..Default::default() };
        for bad in [
            CreateConfig { working_dir: Some("rel".into()), ..Default::default() },
            CreateConfig { memory: Some(1024), ..Default::default() },
            CreateConfig { network: Some("host".into()), hostname: Some("h".into()), ..Default::default() },
            CreateConfig {
                mounts: vec![MountConfig {
                    kind: "bind".into(),
                    source: "rel".into(),
                    target: "/x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            CreateConfig {
                mounts: vec![MountConfig { kind: "tmpfs".into(), target: "/../x".into(), ..Default::default() }],
                ..Default::default()
            },
            CreateConfig { ulimits: vec![Ulimit { name: "bogus".into(), soft: 1, hard: 1 }], ..Default::default() },
        ] {
            assert!(generate(&inputs(&bad, &image, &user)).is_err(), "{bad:?}");
        }
    }
}
