//! `berth inspect` and `berth container inspect`: docker's container JSON built from the
//! Containers record (its CreateConfig, OCI spec, state and image config), `--format` templates,
//! and for a bare `inspect` an image when no container has the name.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::container_config::{CreateConfig, MountConfig};
use berth_proto::containers::Container;
use berth_proto::images::ListImagesRequest;
use serde::Serialize;
use serde_json::{json, Map, Value};
use ttrpc::Code;

use crate::commands::container::{create_config, entrypoint_and_cmd, get, image_config, process_args};
use crate::commands::inspect::{image_object, InspectedImage};
use crate::daemon::{ctx, print_error, AlreadyReported, Berthd};
use crate::humanize;
use crate::template::Template;

/// Go's zero time, which docker shows for a time that has not happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Return low-level information on containers (and, without --type, images).
#[derive(clap::Args, Debug)]
pub struct InspectAnyArgs {
    /// Format output using a Go template ('{{.State.Status}}', '{{json .Config}}').
    #[arg(short, long)]
    format: Option<String>,
    /// Only look for this type of object: container or image.
    #[arg(long = "type", value_parser = ["container", "image"])]
    kind: Option<String>,
    /// Display total file sizes (accepted; berth reports none).
    #[arg(short, long)]
    size: bool,
    /// Names or ids of containers or images.
    #[arg(required = true, value_name = "NAME|ID")]
    names: Vec<String>,
}

/// Display detailed information on one or more containers.
#[derive(clap::Args, Debug)]
pub struct ContainerInspectArgs {
    /// Format output using a Go template ('{{.State.Status}}', '{{json .Config}}').
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes (accepted; berth reports none).
    #[arg(short, long)]
    size: bool,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

impl From<&ContainerInspectArgs> for InspectAnyArgs {
    fn from(args: &ContainerInspectArgs) -> InspectAnyArgs {
        InspectAnyArgs {
            format: args.format.clone(),
            kind: Some("container".to_string()),
            size: args.size,
            names: args.containers.clone(),
        }
    }
}

/// Prints every object found (one JSON array, or one template line each), then an error for
/// each name that is neither.
pub async fn run(berthd: &Berthd, args: &InspectAnyArgs) -> Result<()> {
    let template = args.format.as_deref().map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.names {
        match find(berthd, name, args.kind.as_deref()).await {
            Ok(object) => found.push(object),
            Err(err) => {
                print_error(&err);
                failed = true;
            }
        }
    }
    let mut out = io::stdout().lock();
    match &template {
        Some(template) => {
            for object in &found {
                writeln!(out, "{}", template.render(&serde_json::to_value(object)?)?)?;
            }
        }
        None => {
            let mut json = Vec::new();
            let mut serializer = serde_json::Serializer::with_formatter(
                &mut json,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            found.serialize(&mut serializer)?;
            json.push(b'\n');
            out.write_all(&json)?;
        }
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// A container's object, else (without a type) an image's; docker's "No such object" else.
async fn find(berthd: &Berthd, name: &str, kind: Option<&str>) -> Result<Found> {
    if kind != Some("image") {
        match get(berthd, name).await {
            Ok(container) => return Ok(Found::Container(Box::new(container_object(&container)))),
            Err(err) if kind == Some("container") || !is_not_found(&err) => return Err(err),
            Err(_) => {}
        }
    }
    let images = berthd.images();
    let listed = images.list(ctx(), &ListImagesRequest::default()).await?;
    match image_object(&images, name, &listed.images).await {
        Ok(object) => Ok(Found::Image(Box::new(object))),
        Err(_) if kind.is_none() => Err(anyhow::anyhow!("No such object: {name}")),
        Err(err) => Err(err),
    }
}

fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref::<ttrpc::Error>(), Some(ttrpc::Error::RpcStatus(s)) if s.code() == Code::NOT_FOUND)
}

fn time_or_zero(nanos: i64) -> String {
    if nanos > 0 {
        humanize::rfc3339(nanos)
    } else {
        ZERO_TIME.to_string()
    }
}

/// docker's `container inspect` object.
pub fn container_object(container: &Container) -> InspectedContainer {
    let state = container.state.as_ref().cloned().unwrap_or_default();
    let config = create_config(container);
    let spec: Value = serde_json::from_slice(&container.spec).unwrap_or(Value::Null);
    let image = image_config(container);
    let argv = process_args(container);
    let (entrypoint, cmd) = entrypoint_and_cmd(container);
    let env = spec.pointer("/process/env").cloned().unwrap_or_else(|| json!(config.env));
    let working_dir = spec
        .pointer("/process/cwd")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(config.working_dir.clone())
        .or_else(|| image.get("WorkingDir").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let hostname = spec
        .get("hostname")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(config.hostname.clone())
        .unwrap_or_else(|| container.id.get(..12).unwrap_or_default().to_string());
    let user = config
        .user
        .clone()
        .or_else(|| image.get("User").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let stop_signal =
        config.stop_signal.clone().or_else(|| image.get("StopSignal").and_then(Value::as_str).map(str::to_string));
    let mut labels: Map<String, Value> = image.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
    labels.extend(config.labels.iter().chain(&container.labels).map(|(k, v)| (k.clone(), json!(v))));
    // The image's VOLUMEs and the anonymous `-v /path`s, as docker lists them.
    let mut volumes: Map<String, Value> = image.get("Volumes").and_then(Value::as_object).cloned().unwrap_or_default();
    for m in config.mounts.iter().filter(|m| m.kind == "volume" && m.anonymous && m.create_source) {
        volumes.insert(m.target.clone(), json!({}));
    }

    InspectedContainer {
        id: container.id.clone(),
        created: time_or_zero(container.created_at),
        path: argv.first().cloned().unwrap_or_default(),
        args: argv.get(1..).unwrap_or_default().to_vec(),
        state: StateObject {
            running: state.status == "running" || state.status == "paused",
            paused: state.status == "paused",
            restarting: state.status == "restarting",
            oom_killed: state.oom_killed,
            dead: state.status == "dead",
            pid: state.pid,
            exit_code: state.exit_code,
            error: state.error.clone(),
            started_at: time_or_zero(state.started_at),
            finished_at: time_or_zero(state.finished_at),
            status: state.status.clone(),
        },
        image: container.image_id.clone(),
        log_path: state.log_path.clone(),
        name: format!("/{}", container.name),
        restart_count: state.restart_count,
        driver: "overlayfs",
        platform: "linux",
        host_config: host_config(&config, &container.runtime),
        mounts: mounts(&config),
        config: ConfigObject {
            hostname,
            user,
            attach_stdin: false,
            tty: config.tty,
            open_stdin: config.open_stdin,
            stdin_once: false,
            env,
            cmd: non_empty(cmd),
            image: container.image.clone(),
            volumes: (!volumes.is_empty()).then_some(volumes),
            working_dir,
            entrypoint: non_empty(entrypoint),
            labels,
            stop_signal,
            stop_timeout: config.stop_timeout,
        },
        network_settings: serde_json::from_slice(&container.network_settings).unwrap_or(Value::Null),
    }
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

/// docker's `container inspect` object, in docker's key order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectedContainer {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: StateObject,
    image: String,
    log_path: String,
    name: String,
    restart_count: u32,
    driver: &'static str,
    platform: &'static str,
    host_config: HostConfigObject,
    mounts: Vec<Value>,
    config: ConfigObject,
    network_settings: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateObject {
    status: String,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    pid: u32,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigObject {
    hostname: String,
    user: String,
    attach_stdin: bool,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Value,
    cmd: Option<Vec<String>>,
    image: String,
    volumes: Option<Map<String, Value>>,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    labels: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<i64>,
}

/// What `inspect` found for one name: docker prints either object as is.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Found {
    Container(Box<InspectedContainer>),
    Image(Box<InspectedImage>),
}

/// docker's HostConfig from the create flags.
fn host_config(config: &CreateConfig, runtime: &str) -> HostConfigObject {
    // `-v` mounts but anonymous volumes (docker has those in Config.Volumes only).
    let binds: Vec<String> = config
        .mounts
        .iter()
        .filter(|m| m.create_source && !(m.kind == "volume" && m.anonymous))
        .map(|m| match m.mode.as_str() {
            "" | "z" => format!("{}:{}", m.source, m.target),
            mode => format!("{}:{}:{mode}", m.source, m.target),
        })
        .collect();
    let mount_flags: Vec<Value> = config
        .mounts
        .iter()
        .filter(|m| (m.kind == "bind" || m.kind == "volume") && !m.create_source)
        .map(mount_flag)
        .collect();
    let tmpfs: Map<String, Value> = config
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs")
        .map(|m| (m.target.clone(), json!(m.options.join(","))))
        .collect();
    let mut security_opt = Vec::new();
    if config.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    if let Some(profile) = &config.seccomp_profile {
        security_opt.push(if profile == "unconfined" {
            "seccomp=unconfined".to_string()
        } else {
            format!("seccomp={profile}")
        });
    }
    HostConfigObject {
        binds: (!binds.is_empty()).then_some(binds),
        log_config: json!({"Type": "json-file", "Config": config.log_opts}),
        network_mode: config.network.clone().unwrap_or_else(|| "default".to_string()),
        restart_policy: json!({
            "Name": if config.restart_policy.name.is_empty() { "no" } else { config.restart_policy.name.as_str() },
            "MaximumRetryCount": config.restart_policy.maximum_retry_count,
        }),
        auto_remove: config.auto_remove,
        volumes_from: (!config.volumes_from.is_empty()).then(|| config.volumes_from.clone()),
        cap_add: config.cap_add.clone(),
        cap_drop: config.cap_drop.clone(),
        group_add: config.group_add.clone(),
        privileged: config.privileged,
        readonly_rootfs: config.read_only,
        security_opt,
        tmpfs,
        shm_size: config.shm_size.unwrap_or(64 << 20),
        sysctls: config.sysctls.clone(),
        runtime: config.runtime.clone().unwrap_or_else(|| runtime.to_string()),
        cpu_shares: config.cpu_shares.unwrap_or(0),
        memory: config.memory.unwrap_or(0),
        nano_cpus: config.nano_cpus.unwrap_or(0),
        cpuset_cpus: config.cpuset_cpus.clone().unwrap_or_default(),
        devices: config
            .devices
            .iter()
            .map(|d| json!({"PathOnHost": d.host_path, "PathInContainer": d.container_path, "CgroupPermissions": d.permissions}))
            .collect(),
        memory_swap: config.memory_swap.unwrap_or(0),
        pids_limit: config.pids_limit,
        ulimits: config.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect(),
        mounts: (!mount_flags.is_empty()).then_some(mount_flags),
        init: config.init,
    }
}

/// docker's HostConfig, in docker's key order (the fields berth has).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfigObject {
    binds: Option<Vec<String>>,
    log_config: Value,
    network_mode: String,
    restart_policy: Value,
    auto_remove: bool,
    volumes_from: Option<Vec<String>>,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    group_add: Vec<String>,
    privileged: bool,
    readonly_rootfs: bool,
    security_opt: Vec<String>,
    tmpfs: Map<String, Value>,
    shm_size: i64,
    sysctls: std::collections::BTreeMap<String, String>,
    runtime: String,
    cpu_shares: u64,
    memory: i64,
    nano_cpus: i64,
    cpuset_cpus: String,
    devices: Vec<Value>,
    memory_swap: i64,
    pids_limit: Option<i64>,
    ulimits: Vec<Value>,
    /// `--mount`s (docker omits the key without any).
    #[serde(skip_serializing_if = "Option::is_none")]
    mounts: Option<Vec<Value>>,
    init: bool,
}

/// One `--mount` as docker's HostConfig.Mounts has it: what was asked, empty fields left out
/// (an anonymous volume has no Source there, though berthd named it), in docker's field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MountFlag<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    target: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_options: Option<VolumeOptions<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeOptions<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_copy: bool,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: &'a std::collections::BTreeMap<String, String>,
    /// docker's client makes it (empty) with the options.
    driver_config: Value,
}

fn mount_flag(m: &MountConfig) -> Value {
    let volume = m.kind == "volume";
    let flag = MountFlag {
        kind: &m.kind,
        source: Some(m.source.as_str()).filter(|s| !s.is_empty() && !m.anonymous),
        target: &m.target,
        read_only: m.read_only,
        bind_options: m.propagation.as_ref().filter(|_| !volume).map(|p| json!({ "Propagation": p })),
        volume_options: (volume && (m.no_copy || !m.volume_labels.is_empty())).then(|| VolumeOptions {
            no_copy: m.no_copy,
            labels: &m.volume_labels,
            driver_config: json!({}),
        }),
    };
    serde_json::to_value(flag).unwrap_or(Value::Null)
}

/// docker's top-level Mounts list.
fn mounts(config: &CreateConfig) -> Vec<Value> {
    config
        .mounts
        .iter()
        .map(|m| {
            if m.kind == "volume" {
                return json!({
                    "Type": "volume",
                    "Name": m.source,
                    "Source": m.host_path,
                    "Destination": m.target,
                    "Driver": "local",
                    "Mode": m.mode,
                    "RW": !m.read_only,
                    "Propagation": "",
                });
            }
            json!({
                "Type": m.kind,
                "Source": m.source,
                "Destination": m.target,
                "Mode": if m.kind == "bind" && m.create_source { m.mode.as_str() } else { "" },
                "RW": !m.read_only,
                "Propagation": if m.kind == "bind" { m.propagation.clone().unwrap_or_else(|| "rprivate".to_string()) } else { String::new() },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::containers::ContainerState;

    #[test]
    fn container_object_has_dockers_shape() {
        let config = br#"{"image":"busybox","name":"web","cmd":["sleep","9"],"tty":true,
            "labels":{"a":"b"},"memory":67108864,"restart_policy":{"name":"on-failure","maximum_retry_count":2},
            "mounts":[{"kind":"bind","source":"/srv","target":"/data","read_only":true,"create_source":true,"mode":"ro"},
                {"kind":"volume","source":"vol","target":"/v","mode":"z","create_source":true,"host_path":"/var/lib/berth/volumes/vol/_data"}]}"#;
        let spec = br#"{"hostname":"box","process":{"args":["sleep","9"],"env":["PATH=/bin"],"cwd":"/"}}"#;
        let container = Container {
            id: "c".repeat(64),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:abc".into(),
            config: config.to_vec(),
            spec: spec.to_vec(),
            image_config: br#"{"config":{"Cmd":["sh"],"Labels":{"img":"1"}}}"#.to_vec(),
            created_at: 1_700_000_000_000_000_000,
            state: Some(ContainerState {
                status: "running".into(),
                pid: 42,
                started_at: 1_700_000_001_000_000_000,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let object = serde_json::to_value(container_object(&container)).unwrap();
        assert_eq!(object["Name"], "/web");
        assert_eq!(object["Path"], "sleep");
        assert_eq!(object["Args"], json!(["9"]));
        assert_eq!(object["Created"], "2023-11-14T22:13:20Z");
        assert_eq!(object["State"]["Status"], "running");
        assert_eq!(object["State"]["Running"], true);
        assert_eq!(object["State"]["Pid"], 42);
        assert_eq!(object["State"]["StartedAt"], "2023-11-14T22:13:21Z");
        assert_eq!(object["State"]["FinishedAt"], ZERO_TIME);
        assert_eq!(object["Image"], "sha256:abc");
        assert_eq!(object["Config"]["Image"], "busybox");
        assert_eq!(object["Config"]["Hostname"], "box");
        assert_eq!(object["Config"]["Cmd"], json!(["sleep", "9"]));
        assert_eq!(object["Config"]["Entrypoint"], Value::Null);
        assert_eq!(object["Config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(object["Config"]["Labels"], json!({"a": "b", "img": "1"}));
        assert_eq!(object["Config"]["Tty"], true);
        assert_eq!(object["HostConfig"]["Memory"], 67_108_864);
        assert_eq!(object["HostConfig"]["Binds"], json!(["/srv:/data:ro", "vol:/v"]));
        assert_eq!(object["HostConfig"]["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 2}));
        assert_eq!(object["Mounts"][0]["Destination"], "/data");
        assert_eq!(object["Mounts"][0]["RW"], false);
        assert_eq!(
            object["Mounts"][1],
            json!({"Type": "volume", "Name": "vol", "Source": "/var/lib/berth/volumes/vol/_data", "Destination": "/v",
                   "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""})
        );
        let status = Template::parse("{{.State.Status}} {{json .Config.Cmd}}").unwrap().render(&object).unwrap();
        assert_eq!(status, r#"running ["sleep","9"]"#);
    }
}
