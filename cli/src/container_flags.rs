//! The flags `run` and `create` share, and their conversion into the `CreateConfig` berthd takes.
//! Each docker flag syntax has one parser here (sizes, `-v`, `--mount`, `--ulimit`, …); files the
//! flags name (`--env-file`, a seccomp profile) are read here too, as docker's client does.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use berth_proto::container_config::{CreateConfig, DeviceMapping, MountConfig, RestartPolicy, Ulimit, ULIMIT_NAMES};
use berth_proto::port_spec;

use crate::daemon::NotSupportedYet;
use crate::signals;

/// The options of `berth run` and `berth create`.
#[derive(clap::Args, Debug, Default)]
pub struct ContainerFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Write the container ID to the file (which must not exist).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<std::path::PathBuf>,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Add additional groups to join.
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory (PATH[:OPTIONS]).
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Bind mount a volume or a host path ([NAME|HOST:]CONTAINER[:ro|rw][,nocopy]).
    #[arg(short, long = "volume", value_name = "[NAME|HOST:]CONTAINER[:OPTIONS]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=volume|bind|tmpfs,src=…,dst=…,readonly).
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 for unlimited.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options (nofile=1024:2048).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device (HOST[:CONTAINER[:PERMISSIONS]]).
    #[arg(long)]
    pub device: Vec<String>,
    /// Security options (seccomp=FILE|unconfined, no-new-privileges).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Sysctl options (KEY=VALUE).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm (e.g. 64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    /// Set meta data on a container (KEY[=VALUE]).
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Log driver options (max-size=10m, max-file=3).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Runtime to use for this container.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Pull image before creating (missing, always, never).
    #[arg(long, value_parser = ["missing", "always", "never"])]
    pub pull: Option<String>,
    /// Set platform if server is multi-platform capable (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME|ID or a network's name).
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// IPv4 address (e.g., 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33).
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Publish a container's port(s) to the host ([IP:][HOSTPORT:]CONTAINERPORT[/PROTO], or
    /// published=HOSTPORT,target=CONTAINERPORT[,protocol=PROTO]).
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Add a custom host-to-IP mapping (host:ip, ip may be host-gateway).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Mount volumes from the specified container(s) (CONTAINER[:ro|rw]).
    #[arg(long = "volumes-from", value_name = "CONTAINER[:ro|rw]")]
    pub volumes_from: Vec<String>,
    #[arg(long, hide = true)]
    pub link: Vec<String>,
    /// IMAGE [COMMAND] [ARG...]: everything after the image belongs to the container.
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub image_and_command: Vec<String>,
}

impl ContainerFlags {
    /// The image, as typed.
    pub fn image(&self) -> &str {
        self.image_and_command.first().map_or("", String::as_str)
    }

    /// The `CreateConfig` these flags ask for, with this process's environment and directory.
    pub fn create_config(&self) -> Result<CreateConfig> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        self.to_create_config(&|key| std::env::var(key).ok(), &cwd)
    }

    /// The first docker flag given that berth does not support yet.
    fn unsupported_flag(&self) -> Option<&'static str> {
        (!self.link.is_empty()).then_some("--link is not supported yet (use a user-defined network)")
    }

    /// The `CreateConfig` these flags ask for; `lookup_env` answers bare `-e KEY`s and
    /// `--env-file` lines, `cwd` anchors relative `-v` sources.
    pub fn to_create_config(&self, lookup_env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Result<CreateConfig> {
        if let Some(message) = self.unsupported_flag() {
            return Err(NotSupportedYet(message.to_string()).into());
        }
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file).with_context(|| format!("open {file}"))?;
            env.extend(parse_env_file(&text, lookup_env).with_context(|| format!("in env file {file}"))?);
        }
        env.extend(self.env.iter().filter_map(|e| resolve_env(e, lookup_env)));

        let mut mounts = Vec::new();
        for spec in &self.volume {
            mounts.push(parse_volume(spec, cwd)?);
        }
        for spec in &self.mount {
            mounts.push(parse_mount(spec)?);
        }
        for spec in &self.tmpfs {
            mounts.push(parse_tmpfs(spec)?);
        }

        let mut config = CreateConfig {
            name: self.name.clone(),
            image: self.image().to_string(),
            platform: self.platform.clone(),
            pull: self.pull.clone(),
            cmd: (self.image_and_command.len() > 1).then(|| self.image_and_command[1..].to_vec()),
            entrypoint: self.entrypoint.as_ref().map(|e| if e.is_empty() { vec![] } else { vec![e.clone()] }),
            env,
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            group_add: self.group_add.clone(),
            hostname: self.hostname.clone(),
            tty: self.tty,
            open_stdin: self.interactive,
            labels: parse_labels(&self.label),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            auto_remove: self.rm,
            read_only: self.read_only,
            mounts,
            memory: self.memory.as_deref().map(parse_size).transpose().context("invalid --memory")?,
            memory_swap: self.memory_swap.as_deref().map(parse_swap).transpose().context("invalid --memory-swap")?,
            nano_cpus: self.cpus.as_deref().map(parse_nano_cpus).transpose()?,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            ulimits: self.ulimit.iter().map(|u| parse_ulimit(u)).collect::<Result<_>>()?,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            devices: self.device.iter().map(|d| parse_device(d)).collect::<Result<_>>()?,
            sysctls: parse_key_values(&self.sysctl, "--sysctl")?,
            shm_size: self.shm_size.as_deref().map(parse_size).transpose().context("invalid --shm-size")?,
            restart_policy: self.restart.as_deref().map(parse_restart).transpose()?.unwrap_or_default(),
            log_opts: parse_key_values(&self.log_opt, "--log-opt")?,
            init: self.init,
            runtime: self.runtime.clone(),
            network: self.network.clone(),
            volumes_from: self.volumes_from.clone(),
            ip: self.ip.clone(),
            network_aliases: self.network_alias.clone(),
            mac_address: self.mac_address.as_deref().map(parse_mac).transpose()?,
            dns: validated(&self.dns, "--dns", validate_ip)?,
            dns_search: validated(&self.dns_search, "--dns-search", validate_dns_search)?,
            dns_options: self.dns_option.clone(),
            extra_hosts: validated(&self.add_host, "--add-host", validate_extra_host)?,
            publish: self.publish.iter().map(|p| port_spec::standard_notation(p)).collect::<Result<_, _>>()?,
            publish_all: self.publish_all,
            ..Default::default()
        };
        // docker's client parses -p itself and fails with the parser's bare message.
        for publish in &config.publish {
            port_spec::parse_publish(publish)?;
        }
        if let Some(signal) = &self.stop_signal {
            signals::parse(signal).context("invalid --stop-signal")?;
        }
        for option in &self.security_opt {
            apply_security_opt(&mut config, option)?;
        }
        if config.auto_remove
            && matches!(config.restart_policy.name.as_str(), "always" | "unless-stopped" | "on-failure")
        {
            bail!("conflicting options: cannot specify both --restart and --rm");
        }
        Ok(config)
    }
}

/// `-e KEY=VALUE` as typed; a bare `-e KEY` takes this environment's value, or is dropped when
/// unset (docker's client does the same).
pub fn resolve_env(entry: &str, lookup_env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if entry.contains('=') {
        Some(entry.to_string())
    } else {
        lookup_env(entry).map(|value| format!("{entry}={value}"))
    }
}

/// An `--env-file`: one `KEY=VALUE` or bare `KEY` per line; blank lines and `#` comments skipped.
pub fn parse_env_file(text: &str, lookup_env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(key, _)| key);
        if key.is_empty() {
            bail!("line {}: no variable name in {line:?}", number + 1);
        }
        if key.contains(char::is_whitespace) {
            bail!("line {}: variable {key:?} contains whitespaces", number + 1);
        }
        env.extend(resolve_env(line, lookup_env));
    }
    Ok(env)
}

/// docker's sizes (`RAMInBytes`): a number with an optional b/k/m/g/t/p unit (and `b` or `ib`
/// after it), any case, in powers of 1024: `64m`, `1.5g`, `512`.
pub fn parse_size(text: &str) -> Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let value: f64 = number.parse().map_err(|_| anyhow!("invalid size: {text:?}"))?;
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty())).unwrap_or(unit);
    let power = match unit {
        "" | "b" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => bail!("invalid size: {text:?}"),
    };
    Ok((value * 1024f64.powi(power)) as i64)
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
fn parse_swap(text: &str) -> Result<i64> {
    if text.trim() == "-1" {
        Ok(-1)
    } else {
        parse_size(text)
    }
}

/// `--cpus 1.5` in billionths of a CPU.
pub fn parse_nano_cpus(text: &str) -> Result<i64> {
    let cpus: f64 = text.trim().parse().map_err(|_| anyhow!("invalid argument {text:?} for --cpus"))?;
    if !cpus.is_finite() || cpus < 0.0 {
        bail!("invalid argument {text:?} for --cpus: the value must be a positive number");
    }
    Ok((cpus * 1e9).round() as i64)
}

/// `-v [SOURCE:]CONTAINER[:OPTIONS]`: a bind mount when SOURCE is a path (berthd creates a
/// missing one), a named volume when it is a name (berthd checks it, and creates a missing
/// one), an anonymous volume without SOURCE.
pub fn parse_volume(spec: &str, cwd: &Path) -> Result<MountConfig> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => bail!("invalid volume specification: '{spec}'"),
    };
    if parts.len() > 1 && parts[0].is_empty() || target.is_empty() {
        bail!("invalid volume specification: '{spec}'");
    }
    let bind = source.starts_with('/')
        || source == "."
        || source.starts_with("./")
        || source.starts_with("../")
        || source == "..";
    let (kind, source) = if source.starts_with('/') {
        ("bind", source.to_string())
    } else if bind {
        ("bind", lexically_clean(&cwd.join(source)))
    } else {
        ("volume", source.to_string())
    };
    if kind == "bind" && !target.starts_with('/') {
        bail!("invalid volume specification: '{spec}'");
    }
    // docker shows "z" for a named volume given without options, "" for an anonymous one.
    let mode = if options.is_empty() && kind == "volume" && !source.is_empty() { "z" } else { options };
    let mut mount = MountConfig {
        kind: kind.to_string(),
        source,
        target: target.to_string(),
        create_source: true,
        mode: mode.to_string(),
        ..Default::default()
    };
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" if kind == "bind" => {
                mount.propagation = Some(option.to_string())
            }
            "nocopy" if kind == "volume" => mount.no_copy = true,
            // SELinux relabelling and consistency hints mean nothing to berth.
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            _ => bail!("invalid mode: {option}"),
        }
    }
    Ok(mount)
}

/// `path` without `.` and `..` components (docker cleans a relative `-v` source the same way).
fn lexically_clean(path: &Path) -> String {
    let mut clean = std::path::PathBuf::from("/");
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => clean.push(part),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    clean.to_string_lossy().into_owned()
}

/// `--mount type=volume|bind|tmpfs,src=…,dst=…[,readonly][,volume-nocopy][,volume-label=K=V]
/// [,bind-propagation=…][,tmpfs-size=…][,tmpfs-mode=…]` (docker's default type is volume).
pub fn parse_mount(spec: &str) -> Result<MountConfig> {
    let mut mount = MountConfig { kind: "volume".to_string(), ..Default::default() };
    let mut tmpfs_options = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.trim().to_ascii_lowercase(), Some(value.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        match key.as_str() {
            "type" => mount.kind = need(value, &key, spec)?.to_string(),
            "source" | "src" => mount.source = need(value, &key, spec)?.to_string(),
            "destination" | "dst" | "target" => mount.target = need(value, &key, spec)?.to_string(),
            "readonly" | "ro" => {
                mount.read_only = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("1") | Some("true") => true,
                    Some("0") | Some("false") => false,
                    Some(other) => bail!("invalid value for {key}: {other:?}"),
                }
            }
            "bind-propagation" => mount.propagation = Some(need(value, &key, spec)?.to_string()),
            "volume-nocopy" => {
                mount.no_copy = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("1") | Some("true") => true,
                    Some("0") | Some("false") => false,
                    Some(other) => bail!("invalid value for volume-nocopy: {other:?}"),
                }
            }
            "volume-label" => {
                let label = need(value, &key, spec)?;
                let (k, v) = label.split_once('=').unwrap_or((label, ""));
                mount.volume_labels.insert(k.to_string(), v.to_string());
            }
            "volume-driver" => {
                let driver = need(value, &key, spec)?;
                if driver != "local" {
                    bail!("invalid --mount {spec:?}: volume driver {driver:?} is not supported (only local)");
                }
            }
            "tmpfs-size" => tmpfs_options.push(format!("size={}", parse_size(need(value, &key, spec)?)?)),
            "tmpfs-mode" => {
                let mode = need(value, &key, spec)?;
                u32::from_str_radix(mode, 8).map_err(|_| anyhow!("invalid value for tmpfs-mode: {mode:?}"))?;
                tmpfs_options.push(format!("mode={mode}"));
            }
            "consistency" => {}
            _ => bail!("unexpected key {key:?} in --mount {spec:?}"),
        }
    }
    match mount.kind.as_str() {
        "bind" => {
            if mount.source.is_empty() {
                bail!("invalid --mount {spec:?}: a bind mount needs a source");
            }
            if !mount.source.starts_with('/') {
                bail!("invalid --mount {spec:?}: the bind source {:?} is not absolute", mount.source);
            }
            if !tmpfs_options.is_empty() {
                bail!("invalid --mount {spec:?}: tmpfs options apply to type=tmpfs only");
            }
            if mount.no_copy || !mount.volume_labels.is_empty() {
                bail!("invalid --mount {spec:?}: volume options apply to type=volume only");
            }
        }
        "tmpfs" => {
            if !mount.source.is_empty() {
                bail!("invalid --mount {spec:?}: a tmpfs mount has no source");
            }
            if mount.no_copy || !mount.volume_labels.is_empty() || mount.propagation.is_some() {
                bail!("invalid --mount {spec:?}: volume and bind options do not apply to type=tmpfs");
            }
            mount.options = tmpfs_options;
        }
        "volume" => {
            if !tmpfs_options.is_empty() || mount.propagation.is_some() {
                bail!("invalid --mount {spec:?}: bind and tmpfs options do not apply to type=volume");
            }
            // What docker's inspect shows for every --mount volume.
            mount.mode = "z".to_string();
        }
        other => bail!("invalid --mount {spec:?}: mount type {other:?} is not supported (use volume, bind or tmpfs)"),
    }
    if mount.target.is_empty() {
        bail!("invalid --mount {spec:?}: a target (dst=) is required");
    }
    if !mount.target.starts_with('/') {
        bail!("invalid --mount {spec:?}: the target {:?} is not absolute", mount.target);
    }
    Ok(mount)
}

/// The value of a `--mount` field that must have one.
fn need<'a>(value: Option<&'a str>, key: &str, spec: &str) -> Result<&'a str> {
    value.ok_or_else(|| anyhow!("invalid field {key:?} in --mount {spec:?}: must be a key=value pair"))
}

/// `--tmpfs /path[:size=64m,mode=1777]`.
pub fn parse_tmpfs(spec: &str) -> Result<MountConfig> {
    let (target, options) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') {
        bail!("invalid --tmpfs {spec:?}: the path {target:?} is not absolute");
    }
    Ok(MountConfig {
        kind: "tmpfs".to_string(),
        target: target.to_string(),
        options: options.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect(),
        ..Default::default()
    })
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`, or `HOST:PERMISSIONS`.
pub fn parse_device(spec: &str) -> Result<DeviceMapping> {
    let is_permissions = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, permissions) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, permissions] if is_permissions(permissions) => (*host, *host, *permissions),
        [host, container] => (*host, *container, "rwm"),
        [host, container, permissions] if is_permissions(permissions) => (*host, *container, *permissions),
        _ => bail!("invalid device specification: {spec:?}"),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        bail!("invalid device specification: {spec:?}: paths must be absolute");
    }
    Ok(DeviceMapping {
        host_path: host.to_string(),
        container_path: container.to_string(),
        permissions: permissions.to_string(),
    })
}

/// `--ulimit nofile=1024[:2048]`; the hard limit defaults to the soft one.
pub fn parse_ulimit(spec: &str) -> Result<Ulimit> {
    let (name, limits) = spec.split_once('=').ok_or_else(|| anyhow!("invalid ulimit argument: {spec:?}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        bail!("invalid ulimit type: {name}");
    }
    let number = |text: &str| text.parse::<i64>().map_err(|_| anyhow!("invalid ulimit value in {spec:?}: {text:?}"));
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => (number(limits)?, number(limits)?),
    };
    if soft > hard && hard != -1 {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit { name: name.to_string(), soft, hard })
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(spec: &str) -> Result<RestartPolicy> {
    let (name, count) = match spec.split_once(':') {
        Some((name, count)) => (name, Some(count)),
        None => (spec, None),
    };
    match (name, count) {
        ("" | "no" | "always" | "unless-stopped", None) => {
            Ok(RestartPolicy { name: if name.is_empty() { "no" } else { name }.to_string(), maximum_retry_count: 0 })
        }
        ("on-failure", count) => {
            let maximum_retry_count = match count {
                None => 0,
                Some(count) => count.parse().map_err(|_| anyhow!("invalid restart policy format: maximum retry count must be an integer: {count:?}"))?,
            };
            Ok(RestartPolicy { name: name.to_string(), maximum_retry_count })
        }
        ("no" | "always" | "unless-stopped", Some(_)) => {
            bail!("invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'")
        }
        _ => bail!("invalid restart policy format: unknown policy {name:?} (no, always, unless-stopped, on-failure[:max-retries])"),
    }
}

/// `--mac-address`: six hex pairs separated by `:` or `-` (docker's check), sent with `:`.
fn parse_mac(mac: &str) -> Result<String> {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    if parts.len() != 6 || !parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())) {
        bail!("{mac} is not a valid mac address");
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

/// The values of a flag, each checked by `check`; a bad one fails as docker's flag parser does.
fn validated(values: &[String], flag: &str, check: impl Fn(&str) -> Result<(), String>) -> Result<Vec<String>> {
    for value in values {
        check(value).map_err(|e| anyhow!("invalid argument {value:?} for {flag:?} flag: {e}"))?;
    }
    Ok(values.to_vec())
}

/// docker's `ValidateIPAddress`.
fn validate_ip(value: &str) -> Result<(), String> {
    value.trim().parse::<std::net::IpAddr>().map(drop).map_err(|_| format!("{value} is not an ip address"))
}

/// docker's `ValidateDNSSearch`: `.` (no search domains) or a domain name.
fn validate_dns_search(value: &str) -> Result<(), String> {
    let name = value.strip_suffix('.').unwrap_or(value);
    let label_ok =
        |l: &str| !l.is_empty() && !l.starts_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if value == "."
        || (name.len() < 255 && name.contains(|c: char| c.is_ascii_alphabetic()) && name.split('.').all(label_ok))
    {
        Ok(())
    } else {
        Err(format!("{value} is not a valid domain"))
    }
}

/// docker's `ValidateExtraHost`: `NAME:IP`, split at the first colon so IPv6 addresses survive;
/// `host-gateway` stands for the host's address on the container's network.
fn validate_extra_host(value: &str) -> Result<(), String> {
    match value.split_once(':') {
        Some((name, ip)) if !name.is_empty() => {
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("invalid IP address in add-host: {ip:?}"));
            }
            Ok(())
        }
        _ => Err(format!("bad format for add-host: {value:?}")),
    }
}

/// `--label KEY[=VALUE]` (a bare key has an empty value).
pub fn parse_labels(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// `KEY=VALUE` flags such as `--sysctl` and `--log-opt`.
pub fn parse_key_values(entries: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("invalid {flag} {e:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// `--security-opt seccomp=unconfined|FILE` (the profile's JSON is read and sent) and
/// `no-new-privileges[=true|:true]`.
fn apply_security_opt(config: &mut CreateConfig, option: &str) -> Result<()> {
    if let Some(value) = option.strip_prefix("seccomp=").or_else(|| option.strip_prefix("seccomp:")) {
        config.seccomp_profile = Some(if value == "unconfined" {
            value.to_string()
        } else {
            let profile =
                std::fs::read_to_string(value).with_context(|| format!("opening seccomp profile ({value}) failed"))?;
            serde_json::from_str::<serde_json::Value>(&profile)
                .with_context(|| format!("decoding seccomp profile ({value}) failed"))?;
            profile
        });
        return Ok(());
    }
    match option {
        "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => config.no_new_privileges = true,
        "no-new-privileges=false" | "no-new-privileges:false" => config.no_new_privileges = false,
        _ => bail!(
            "invalid --security-opt {option:?}: berth supports seccomp=unconfined|PROFILE.json and no-new-privileges"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Flags {
        #[command(flatten)]
        flags: ContainerFlags,
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn config(argv: &[&str]) -> Result<CreateConfig> {
        let flags = Flags::try_parse_from(std::iter::once("run").chain(argv.iter().copied()))?.flags;
        flags.to_create_config(&no_env, Path::new("/work"))
    }

    #[test]
    fn sizes_are_binary_multiples_with_optional_b_suffix() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("10k").unwrap(), 10 << 10);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("7b").unwrap(), 7);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10x").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_swap("-1").unwrap(), -1);
    }

    #[test]
    fn cpus_become_nano_cpus() {
        assert_eq!(parse_nano_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_nano_cpus("0.01").unwrap(), 10_000_000);
        assert!(parse_nano_cpus("-1").is_err());
        assert!(parse_nano_cpus("two").is_err());
    }

    #[test]
    fn volumes_are_bind_mounts_that_create_their_source() {
        let mount = parse_volume("/srv/data:/data:ro", Path::new("/")).unwrap();
        assert_eq!(
            mount,
            MountConfig {
                kind: "bind".into(),
                source: "/srv/data".into(),
                target: "/data".into(),
                read_only: true,
                create_source: true,
                mode: "ro".into(),
                ..Default::default()
            }
        );
        assert!(!parse_volume("/a:/b", Path::new("/")).unwrap().read_only);
        assert_eq!(parse_volume("/a:/b:rw,rshared", Path::new("/")).unwrap().propagation.as_deref(), Some("rshared"));
        assert_eq!(parse_volume("./a:/b", Path::new("/work")).unwrap().source, "/work/a");
        assert_eq!(parse_volume("../x/./y:/b", Path::new("/work/dir")).unwrap().source, "/work/x/y");
        assert_eq!(parse_volume(".:/b", Path::new("/work")).unwrap().source, "/work");
    }

    #[test]
    fn names_are_volumes_and_a_lone_path_is_an_anonymous_volume() {
        let named = parse_volume("data:/data:ro,nocopy", Path::new("/")).unwrap();
        assert_eq!((named.kind.as_str(), named.source.as_str(), named.mode.as_str()), ("volume", "data", "ro,nocopy"));
        assert!(named.read_only && named.no_copy && named.create_source);
        assert_eq!(parse_volume("data:/data", Path::new("/")).unwrap().mode, "z");
        let anonymous = parse_volume("/data", Path::new("/")).unwrap();
        assert_eq!(
            (anonymous.kind.as_str(), anonymous.source.as_str(), anonymous.target.as_str()),
            ("volume", "", "/data")
        );
        // docker reads `/data:ro` as a bind of /data to "ro", and refuses it.
        let err = parse_volume("/data:ro", Path::new("/")).unwrap_err().to_string();
        assert_eq!(err, "invalid volume specification: '/data:ro'");
        assert_eq!(parse_volume("/a:/b:bogus", Path::new("/")).unwrap_err().to_string(), "invalid mode: bogus");
        assert!(parse_volume("/a:/b:nocopy", Path::new("/")).is_err());
        assert!(parse_volume(":/b", Path::new("/")).is_err());
        assert!(parse_volume("a:b:c:d", Path::new("/")).is_err());
    }

    #[test]
    fn mount_flag_takes_docker_keys_and_refuses_missing_sources() {
        let bind = parse_mount("type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(bind.kind, "bind");
        assert_eq!((bind.source.as_str(), bind.target.as_str()), ("/a", "/b"));
        assert!(bind.read_only);
        assert!(!bind.create_source);
        assert_eq!(bind.propagation.as_deref(), Some("rslave"));
        assert!(!parse_mount("type=bind,source=/a,target=/b,readonly=false").unwrap().read_only);
        let tmpfs = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        assert_eq!(tmpfs.options, ["size=1048576", "mode=1770"]);
        assert!(parse_mount("type=bind,dst=/b").is_err());
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=bind,src=relative,dst=/b").is_err());
        let volume = parse_mount("src=vol,dst=/b,volume-nocopy,volume-label=k=v,ro").unwrap();
        assert_eq!((volume.kind.as_str(), volume.source.as_str()), ("volume", "vol"));
        assert!(volume.no_copy && volume.read_only);
        assert_eq!(volume.volume_labels["k"], "v");
        assert!(parse_mount("type=volume,dst=/b").unwrap().source.is_empty());
        assert!(parse_mount("type=volume,src=v,dst=/b,bind-propagation=rshared").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,volume-nocopy").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,colour=blue").is_err());
    }

    #[test]
    fn tmpfs_flag_keeps_its_mount_options() {
        let mount = parse_tmpfs("/run:size=64m,mode=1777").unwrap();
        assert_eq!((mount.kind.as_str(), mount.target.as_str()), ("tmpfs", "/run"));
        assert_eq!(mount.options, ["size=64m", "mode=1777"]);
        assert!(parse_tmpfs("/tmp").unwrap().options.is_empty());
        assert!(parse_tmpfs("tmp").is_err());
    }

    #[test]
    fn ulimits_have_soft_and_hard_limits() {
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap(), Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 });
        assert_eq!(parse_ulimit("nproc=10").unwrap(), Ulimit { name: "nproc".into(), soft: 10, hard: 10 });
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
    }

    #[test]
    fn restart_policies_and_retry_counts() {
        assert_eq!(parse_restart("no").unwrap().name, "no");
        assert_eq!(parse_restart("always").unwrap().name, "always");
        assert_eq!(parse_restart("unless-stopped").unwrap().name, "unless-stopped");
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy { name: "on-failure".into(), maximum_retry_count: 3 }
        );
        assert_eq!(parse_restart("on-failure").unwrap().maximum_retry_count, 0);
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
        assert!(parse_restart("sometimes").is_err());
    }

    #[test]
    fn devices_default_to_the_host_path_and_rwm() {
        let device = |host: &str, container: &str, permissions: &str| DeviceMapping {
            host_path: host.into(),
            container_path: container.into(),
            permissions: permissions.into(),
        };
        assert_eq!(parse_device("/dev/fuse").unwrap(), device("/dev/fuse", "/dev/fuse", "rwm"));
        assert_eq!(parse_device("/dev/fuse:r").unwrap(), device("/dev/fuse", "/dev/fuse", "r"));
        assert_eq!(parse_device("/dev/sda:/dev/xvda").unwrap(), device("/dev/sda", "/dev/xvda", "rwm"));
        assert_eq!(parse_device("/dev/sda:/dev/xvda:rw").unwrap(), device("/dev/sda", "/dev/xvda", "rw"));
        assert!(parse_device("/dev/sda:/dev/xvda:rwx").is_err());
        assert!(parse_device("sda").is_err());
    }

    #[test]
    fn env_files_skip_comments_and_resolve_bare_names() {
        let lookup = |key: &str| (key == "HOME").then(|| "/root".to_string());
        let text = "# settings\nA=1\n\n  B=two words\nHOME\nUNSET\nC=\n";
        assert_eq!(parse_env_file(text, &lookup).unwrap(), ["A=1", "B=two words", "HOME=/root", "C="]);
        assert!(parse_env_file("BAD KEY=1\n", &lookup).is_err());
        assert!(parse_env_file("=1\n", &lookup).is_err());
    }

    #[test]
    fn everything_after_the_image_is_the_command() {
        let config = config(&["--rm", "-e", "A=1", "-m", "64m", "busybox", "ls", "-l", "--name", "x"]).unwrap();
        assert_eq!(config.image, "busybox");
        assert_eq!(config.cmd, Some(vec!["ls".into(), "-l".into(), "--name".into(), "x".into()]));
        assert_eq!(config.name, None);
        assert!(config.auto_remove);
        assert_eq!(config.env, ["A=1"]);
        assert_eq!(config.memory, Some(64 << 20));
        assert_eq!(super::tests::config(&["busybox"]).unwrap().cmd, None);
    }

    #[test]
    fn flags_fill_the_create_config() {
        let config = config(&[
            "-it",
            "--name",
            "web",
            "-h",
            "box",
            "--entrypoint",
            "",
            "--cpus",
            "0.5",
            "--restart",
            "on-failure:2",
            "--ulimit",
            "nofile=10:20",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "-l",
            "a=b",
            "-l",
            "flag",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "--network",
            "host",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "-1",
            "busybox",
        ])
        .unwrap();
        assert!(config.tty && config.open_stdin);
        assert_eq!(config.name.as_deref(), Some("web"));
        assert_eq!(config.hostname.as_deref(), Some("box"));
        assert_eq!(config.entrypoint, Some(vec![]));
        assert_eq!(config.nano_cpus, Some(500_000_000));
        assert_eq!(config.restart_policy.maximum_retry_count, 2);
        assert_eq!(config.ulimits.len(), 1);
        assert_eq!(config.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(config.labels["flag"], "");
        assert!(config.no_new_privileges);
        assert_eq!(config.seccomp_profile.as_deref(), Some("unconfined"));
        assert_eq!(config.network.as_deref(), Some("host"));
        assert_eq!(config.memory_swap, Some(-1));
        assert_eq!(config.pids_limit, Some(-1));
    }

    #[test]
    fn link_is_refused_by_name() {
        let err = config(&["--link", "other", "busybox"]).unwrap_err().to_string();
        assert!(err.contains("--link is not supported yet"), "{err}");
    }

    #[test]
    fn volumes_from_reaches_the_config() {
        assert_eq!(config(&["--volumes-from", "other:ro", "busybox"]).unwrap().volumes_from, ["other:ro"]);
    }

    #[test]
    fn dns_host_and_port_flags_reach_the_config() {
        let config = config(&[
            "--dns",
            "10.0.0.2",
            "--dns-search",
            "example.org",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db:10.0.0.5",
            "--add-host",
            "gw:host-gateway",
            "-p",
            "127.0.0.1:8080:80",
            "-P",
            "busybox",
        ])
        .unwrap();
        assert_eq!(config.dns, ["10.0.0.2"]);
        assert_eq!(config.dns_search, ["example.org"]);
        assert_eq!(config.dns_options, ["ndots:2"]);
        assert_eq!(config.extra_hosts, ["db:10.0.0.5", "gw:host-gateway"]);
        assert_eq!(config.publish, ["127.0.0.1:8080:80"]);
        let long = super::tests::config(&["-p", "published=8080,target=80,protocol=udp", "busybox"]).unwrap();
        assert_eq!(long.publish, ["8080:80/udp"]);
        assert!(config.publish_all);
    }

    #[test]
    fn bad_dns_host_and_port_flags_fail_with_dockers_messages() {
        let err = |args: &[&str]| config(args).unwrap_err().to_string();
        assert_eq!(err(&["--dns", "x", "busybox"]), r#"invalid argument "x" for "--dns" flag: x is not an ip address"#);
        assert_eq!(
            err(&["--dns-search", "a_b", "busybox"]),
            r#"invalid argument "a_b" for "--dns-search" flag: a_b is not a valid domain"#
        );
        assert_eq!(
            err(&["--add-host", "db", "busybox"]),
            r#"invalid argument "db" for "--add-host" flag: bad format for add-host: "db""#
        );
        assert_eq!(
            err(&["--add-host", "db:x", "busybox"]),
            r#"invalid argument "db:x" for "--add-host" flag: invalid IP address in add-host: "x""#
        );
        assert_eq!(err(&["-p", "bad", "busybox"]), "Invalid containerPort: bad");
    }

    #[test]
    fn mac_addresses_are_checked_and_normalised() {
        let config = config(&["--mac-address", "02-42-AC-11-00-02", "busybox"]).unwrap();
        assert_eq!(config.mac_address.as_deref(), Some("02:42:ac:11:00:02"));
        let err = super::tests::config(&["--mac-address", "02:42", "busybox"]).unwrap_err().to_string();
        assert_eq!(err, "02:42 is not a valid mac address");
    }

    #[test]
    fn rm_conflicts_with_a_restart_policy() {
        assert!(config(&["--rm", "--restart", "always", "busybox"]).is_err());
        assert!(config(&["--rm", "--restart", "no", "busybox"]).is_ok());
    }

    #[test]
    fn seccomp_profile_file_is_sent_as_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let option = format!("seccomp={}", path.display());
        let config = config(&["--security-opt", &option, "busybox"]).unwrap();
        assert_eq!(config.seccomp_profile.as_deref(), Some(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#));
        std::fs::write(&path, "not json").unwrap();
        assert!(super::tests::config(&["--security-opt", &option, "busybox"]).is_err());
    }
}
