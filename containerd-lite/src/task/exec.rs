//! `berth exec`: a process in a running container, through the shim's Exec. Its spec is the
//! container's process with the command, environment, user, working directory and terminal of
//! the request; its stdio gets FIFOs of its own in the bundle, and its output goes only to the
//! client that ran it (docker does not log exec output).

use std::io::Read;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_proto::container_config::ExecConfig;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;

use super::io::{self, FifoSet, ProcessIo};
use super::shim::{ctx, ctx_forever};
use super::{shim_error, Task, CALL_TIMEOUT, DRAIN_TIMEOUT};
use crate::container::user::{self, ImageFiles};
use crate::container::ContainerRecord;

/// The type containerd gives an exec's process spec.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// A started exec.
pub struct Exec {
    pub exec_id: String,
    pub io: Arc<ProcessIo>,
    /// The subscription made before the process started.
    pub subscription: io::Subscription,
    /// Resolves to the exit code once the process exited and its output drained.
    pub exit: tokio::sync::oneshot::Receiver<i32>,
}

fn new_exec_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    Ok(hex::encode(bytes))
}

/// The exec's process spec (JSON).
pub fn process_spec(
    record: &ContainerRecord,
    config: &ExecConfig,
    rootfs: &std::path::Path,
) -> Result<serde_json::Value> {
    if config.cmd.is_empty() {
        bail!("No exec command specified");
    }
    let mut process = record.spec["process"].clone();
    process["args"] = serde_json::json!(config.cmd);
    process["terminal"] = serde_json::json!(config.tty);
    if config.tty && config.width > 0 && config.height > 0 {
        process["consoleSize"] = serde_json::json!({"height": config.height, "width": config.width});
    } else if let Some(p) = process.as_object_mut() {
        p.remove("consoleSize");
    }
    let mut env: Vec<String> =
        process["env"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    for kv in &config.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    if config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process["env"] = serde_json::json!(env);
    if let Some(w) = config.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path");
        }
        process["cwd"] = serde_json::json!(w);
    }
    if let Some(u) = config.user.as_deref().filter(|u| !u.is_empty()) {
        let files = ImageFiles::from_root(rootfs);
        let exec_user =
            user::resolve(u, &[], files.read("etc/passwd")?.as_deref(), files.read("etc/group")?.as_deref())?;
        process["user"] = serde_json::json!({"uid": exec_user.uid, "gid": exec_user.gid, "additionalGids": exec_user.additional_gids});
    }
    if config.privileged {
        let all = crate::container::spec::all_caps();
        process["capabilities"] = serde_json::json!({"bounding": all, "effective": all, "permitted": all});
    }
    Ok(process)
}

/// Starts `config.cmd` in `task`'s container; the returned [`Exec`] streams its output.
pub async fn start(task: &Arc<Task>, record: &ContainerRecord, config: &ExecConfig) -> Result<Exec> {
    let exec_id = new_exec_id()?;
    let process = process_spec(record, config, &task.bundle.join("rootfs"))?;
    let fifos = FifoSet::new(&task.bundle, &format!("exec-{exec_id}"), config.attach_stdin, config.tty);
    fifos.create()?;
    let result = launch(task, &exec_id, &fifos, config, &process).await;
    if result.is_err() {
        fifos.remove();
    }
    result
}

async fn launch(
    task: &Arc<Task>,
    exec_id: &str,
    fifos: &FifoSet,
    config: &ExecConfig,
    process: &serde_json::Value,
) -> Result<Exec> {
    let readers = io::open_outputs(fifos)?;
    let spec = Any {
        type_url: PROCESS_TYPE_URL.into(),
        value: serde_json::to_vec(process).context("encoding the exec's process")?,
        ..Default::default()
    };
    let req = api::ExecProcessRequest {
        id: task.id.clone(),
        exec_id: exec_id.to_string(),
        terminal: config.tty,
        stdin: FifoSet::uri(&fifos.stdin),
        stdout: fifos.stdout.display().to_string(),
        stderr: FifoSet::uri(&fifos.stderr),
        spec: containerd_shim_protos::protobuf::MessageField::some(spec),
        ..Default::default()
    };
    task.client.exec(ctx(CALL_TIMEOUT), &req).await.map_err(|e| shim_error("exec failed", e))?;
    let pio = ProcessIo::new();
    let subscription = pio.subscribe();
    let start = api::StartRequest { id: task.id.clone(), exec_id: exec_id.to_string(), ..Default::default() };
    if let Err(e) = task.client.start(ctx(CALL_TIMEOUT), &start).await {
        let del = api::DeleteRequest { id: task.id.clone(), exec_id: exec_id.to_string(), ..Default::default() };
        let _ = task.client.delete(ctx(CALL_TIMEOUT), &del).await;
        return Err(shim_error("OCI runtime exec failed", e));
    }
    // A shim may open an exec's FIFOs only when it starts it: stdin can be opened now.
    if let Some(stdin) = &fifos.stdin {
        *pio.stdin.lock().await = Some(io::open_stdin(stdin)?);
    }
    pio.spawn_copier(readers, None);
    let (tx, exit) = tokio::sync::oneshot::channel();
    let (task2, exec2, pio2, fifos2) = (task.clone(), exec_id.to_string(), pio.clone(), fifos.clone());
    tokio::spawn(async move {
        let req = api::WaitRequest { id: task2.id.clone(), exec_id: exec2.clone(), ..Default::default() };
        let code = match task2.client.wait(ctx_forever(), &req).await {
            Ok(r) => r.exit_status as i32,
            Err(e) => {
                tracing::warn!(container = %task2.id, exec = %exec2, "waiting on an exec: {e}");
                255
            }
        };
        pio2.mark_exited();
        pio2.wait_done(DRAIN_TIMEOUT).await;
        let del = api::DeleteRequest { id: task2.id.clone(), exec_id: exec2, ..Default::default() };
        let _ = task2.client.delete(ctx(CALL_TIMEOUT), &del).await;
        fifos2.remove();
        let _ = tx.send(code);
    });
    Ok(Exec { exec_id: exec_id.to_string(), io: pio, subscription, exit })
}
