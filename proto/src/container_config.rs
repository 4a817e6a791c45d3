//! What a client asks for when it creates a container, updates one or runs a process in one:
//! docker's `Config` + `HostConfig` as one flat struct, sent as JSON in the Containers and Tasks
//! requests. The CLI fills it from `run`/`create` flags (reading files such as `--env-file` and
//! a seccomp profile itself, as docker's client does); berthd validates it and turns it into an
//! OCI spec. Every field has a default, so an older client's JSON still parses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A container to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConfig {
    /// `--name`; berthd picks a docker-style `adjective_name` when empty.
    pub name: Option<String>,
    /// The image as typed (`busybox`, `localhost:5000/x:tag`, `sha256:…`, an id prefix).
    pub image: String,
    /// `--platform` os/arch[/variant].
    pub platform: Option<String>,
    /// `--pull`: missing (default), always, never.
    pub pull: Option<String>,
    /// The command; `None` means the image's `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `--entrypoint`; `Some(vec![])` (docker's `--entrypoint ""`) clears the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `-e`/`--env-file`, `KEY=VALUE` (a bare `KEY` was resolved by the client).
    pub env: Vec<String>,
    /// `-w`.
    pub working_dir: Option<String>,
    /// `-u USER[:GROUP]`, names or numbers.
    pub user: Option<String>,
    /// `--group-add`, names or numbers.
    pub group_add: Vec<String>,
    /// `--hostname`; the short id when unset.
    pub hostname: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`: keep stdin open.
    pub open_stdin: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` (name or number); the image's `StopSignal`, else SIGTERM.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<i64>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--read-only` root filesystem.
    pub read_only: bool,
    /// `-v`, `--mount`, `--tmpfs`.
    pub mounts: Vec<MountConfig>,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap` in bytes (memory + swap; -1 unlimited).
    pub memory_swap: Option<i64>,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit` (≤ 0 unlimited).
    pub pids_limit: Option<i64>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Vec<Ulimit>,
    /// `--cap-add`/`--cap-drop` (with or without `CAP_`, any case, or `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--device HOST[:CONTAINER[:PERMS]]`.
    pub devices: Vec<DeviceMapping>,
    /// `--security-opt seccomp=…`: `None` berth's default profile, `Some("unconfined")`, or a
    /// profile's JSON text.
    pub seccomp_profile: Option<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--shm-size` in bytes (default 64 MiB).
    pub shm_size: Option<i64>,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `--log-opt` (max-size, max-file).
    pub log_opts: BTreeMap<String, String>,
    /// `--init`: run berth's reaping init as PID 1.
    pub init: bool,
    /// `--runtime`: a shim name (`io.containerd.berth.v2`, `io.containerd.runc.v2`) or a short
    /// name berthd maps to one (`berth`, `runc`).
    pub runtime: Option<String>,
    /// `--network`: `bridge` (docker's default; berthd stores the mode it chose), `none`,
    /// `host`, `container:NAME|ID` or a network's name or id.
    pub network: Option<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`: that container's volume and bind mounts.
    pub volumes_from: Vec<String>,
    /// `--ip`: the container's IPv4 address on a user-defined network.
    pub ip: Option<String>,
    /// `--network-alias`: more names of the container on a user-defined network.
    pub network_aliases: Vec<String>,
    /// `--mac-address`: the MAC of the container's interface on its network.
    pub mac_address: Option<String>,
    /// `--dns`: nameserver addresses replacing the host's in the container's resolv.conf (on
    /// user-defined networks, the embedded DNS forwards to them).
    pub dns: Vec<String>,
    /// `--dns-search`: search domains replacing the host's; `.` alone means none.
    pub dns_search: Vec<String>,
    /// `--dns-option`: resolv.conf `options` replacing the host's.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` (IP may be `host-gateway`), extra /etc/hosts lines.
    pub extra_hosts: Vec<String>,
    /// `-p/--publish` as typed (docker's grammar, see `port_spec`).
    pub publish: Vec<String>,
    /// `-P/--publish-all`: publish every port the image exposes on an ephemeral host port.
    pub publish_all: bool,
}

/// One mount from `-v`, `--mount` or `--tmpfs` (or, once berthd created the container, from
/// `--volumes-from` and the image's `Volumes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountConfig {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Host path for a bind (absolute); the volume's name for a volume (empty in a request: a
    /// new anonymous volume); empty for tmpfs.
    pub source: String,
    /// Path inside the container (absolute).
    pub target: String,
    pub read_only: bool,
    /// Bind propagation (`rprivate` default, `private`, `rshared`, `shared`, `rslave`, `slave`).
    pub propagation: Option<String>,
    /// tmpfs options as mount(8) takes them (`size=64m,mode=1777`), or a bind's extra options.
    pub options: Vec<String>,
    /// Given with `-v` rather than `--mount`: a missing bind source is created as a directory
    /// (`--mount` refuses it, as docker does), and the mount is one of inspect's HostConfig.Binds.
    pub create_source: bool,
    /// docker's `Mode` in inspect: `-v`'s option text (`ro`, `rw,nocopy`), `z` for a named `-v`
    /// volume without options and for any `--mount` volume, empty otherwise.
    pub mode: String,
    /// A volume: leave it empty instead of copying the image's files at the target into it
    /// (`nocopy`, `volume-nocopy`).
    pub no_copy: bool,
    /// A volume created for this mount gets these labels (`volume-label=K=V`).
    pub volume_labels: BTreeMap<String, String>,
    /// Set by berthd: the volume was made for this container (`-v /path`, an image's VOLUME),
    /// so `rm -v` and `run --rm` remove it.
    pub anonymous: bool,
    /// Set by berthd: a volume's directory on the host.
    pub host_path: String,
}

/// The resource names `--ulimit` takes (docker's, from go-units).
pub const ULIMIT_NAMES: [&str; 16] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// `--ulimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    /// docker's names: `nofile`, `nproc`, `core`, …
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `--device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    pub host_path: String,
    pub container_path: String,
    /// Some of `rwm`.
    pub permissions: String,
}

/// docker's restart policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// `no` (or empty), `on-failure`, `always`, `unless-stopped`.
    pub name: String,
    /// For on-failure: 0 means no limit.
    pub maximum_retry_count: u32,
}

/// `berth update`: only the fields that are set change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
}

/// A process to run in a running container (`berth exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecConfig {
    /// The container: id, id prefix or name.
    pub container: String,
    pub cmd: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    /// `-i`.
    pub attach_stdin: bool,
    /// `-d`: start it and return.
    pub detach: bool,
    /// Every capability, no seccomp filter.
    pub privileged: bool,
    /// Initial terminal size for `-t`.
    pub width: u32,
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_a_default_config() {
        let config: CreateConfig = serde_json::from_str(r#"{"image":"busybox"}"#).expect("parses");
        assert_eq!(config, CreateConfig { image: "busybox".into(), ..Default::default() });
    }
}
