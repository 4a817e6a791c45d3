//! Tasks: a container's running process, supervised through its shim. Starting one writes the
//! bundle (config.json from the record's spec, the FIFOs), starts the shim as containerd does and
//! asks it to Create and Start the process on the container's snapshot; a waiter per task calls
//! the shim's Wait, lets the output drain, records the exit, deletes the task in the shim and
//! applies the restart policy or `--rm`. After a berthd restart, [`Tasks::recover`] reconnects to
//! the shims that kept their containers running.

pub mod exec;
pub mod io;
pub mod log;
pub mod metrics;
pub mod shim;
pub mod update;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use containerd_shim_protos::api;
use containerd_shim_protos::shim_async::TaskClient;
use tokio::sync::watch;

use crate::container::create::{container_dir, log_path};
use crate::container::{ContainerRecord, Status};
use crate::daemon::Berthd;
use crate::network;
use io::{FifoSet, ProcessIo};
use shim::{ctx, ctx_forever, Endpoint};

/// How long a shim call may take before berthd gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output may keep flowing after the process exited (its children may hold the pipe).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A live task.
pub struct Task {
    pub id: String,
    pub client: TaskClient,
    pub address: String,
    pub bundle: PathBuf,
    pub binary: PathBuf,
    pub pid: u32,
    pub terminal: bool,
    pub io: Arc<ProcessIo>,
    /// `Some(exit code)` once the task has exited and its record says so.
    pub exited: watch::Sender<Option<i32>>,
}

/// Every live task of this berthd.
pub struct Tasks {
    live: Mutex<HashMap<String, Arc<Task>>>,
    /// Serialises start/stop/remove of one container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub endpoint: Endpoint,
}

/// An error whose message a user should see as is (a shim or runtime failure).
fn shim_error(what: &str, e: ttrpc::Error) -> anyhow::Error {
    match e {
        ttrpc::Error::RpcStatus(s) => anyhow!("{what}: {}", s.message()),
        other => anyhow!("{what}: {other}"),
    }
}

fn to_api_mounts(mounts: &[crate::store::snapshot::Mount]) -> Vec<api::Mount> {
    mounts
        .iter()
        .map(|m| api::Mount {
            type_: m.kind.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
            ..Default::default()
        })
        .collect()
}

impl Tasks {
    pub fn new(socket: &Path) -> Tasks {
        Tasks {
            live: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            endpoint: Endpoint { socket: socket.to_path_buf() },
        }
    }

    /// The live task of container `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Task>> {
        self.live.lock().ok()?.get(id).cloned()
    }

    /// Number of live tasks.
    pub fn count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Holds off start and removal of container `id` until the guard drops (work on its files).
    pub async fn hold(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.lock_for(id).lock_owned().await
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn bundle(d: &Berthd, id: &str) -> PathBuf {
        d.cfg.state.join("tasks").join(id)
    }

    /// Starts container `id` (a full id). With `subscribe`, the returned receivers see all of
    /// its output (subscribed before the process runs). A live container is left as it is.
    pub async fn start(d: &Arc<Berthd>, id: &str, subscribe: bool) -> Result<(Arc<Task>, Option<io::Subscription>)> {
        let lock = d.tasks.lock_for(id);
        let _guard = lock.lock().await;
        if let Some(task) = d.tasks.get(id) {
            let sub = subscribe.then(|| task.io.subscribe());
            return Ok((task, sub));
        }
        let record = d.containers.get(id)?.with_context(|| format!("No such container: {id}"))?;
        crate::memory::note_activity();
        match Self::launch(d, &record, subscribe).await {
            Ok(started) => Ok(started),
            Err(e) => {
                // Nothing of a failed start stays attached (setup undid its own failures).
                detach_network(d, id).await;
                let msg = crate::service::one_line(&e);
                let _ = d.containers.update(id, |r| {
                    r.state.error = msg.clone();
                    r.state.exit_code = exit_code_for_error(&msg);
                });
                // `--rm` removes a container whose start failed too, as docker does.
                if record.config.auto_remove {
                    if let Err(e) = remove_stopped(d, id, true).await {
                        tracing::warn!(container = id, "--rm after a failed start: {e:#}");
                    }
                }
                Err(e)
            }
        }
    }

    async fn launch(
        d: &Arc<Berthd>,
        record: &ContainerRecord,
        subscribe: bool,
    ) -> Result<(Arc<Task>, Option<io::Subscription>)> {
        let id = record.id.clone();
        let bundle = Self::bundle(d, &id);
        cleanup_bundle(&bundle);
        std::fs::create_dir_all(bundle.join("rootfs"))
            .with_context(|| format!("creating bundle {}", bundle.display()))?;
        let mut undo = BundleUndo { bundle: Some(bundle.clone()) };
        let mut spec = record.spec.clone();
        let (d2, r2) = (d.clone(), record.clone());
        let netns = tokio::task::spawn_blocking(move || network::attach::setup(&d2, &r2))
            .await
            .map_err(|e| anyhow!("setting up the network of {id}: {e}"))??;
        if let Some(path) = &netns {
            join_network(&mut spec, path);
        }
        let config = serde_json::to_vec_pretty(&spec).context("encoding config.json")?;
        std::fs::write(bundle.join("config.json"), config)
            .with_context(|| format!("writing {}/config.json", bundle.display()))?;
        let rotation = log::Rotation::from_opts(&record.config.log_opts)?;
        let terminal = record.config.tty;
        let fifos = FifoSet::new(&bundle, "init", record.config.open_stdin, terminal);
        fifos.create()?;
        let readers = io::open_outputs(&fifos)?;
        spawn_shim_log(&bundle, &id)?;

        let binary = shim::find_binary(&record.runtime)?;
        let address = shim::start(&binary, &d.tasks.endpoint, &id, &bundle).await?;
        let client = match shim::connect(&address).await {
            Ok(c) => c,
            Err(e) => {
                let _ = shim::delete(&binary, &d.tasks.endpoint, &id, &bundle).await;
                return Err(e);
            }
        };
        let mounts = d.snapshots.mounts(&record.snapshot_key).context("the container's snapshot")?;
        let req = api::CreateTaskRequest {
            id: id.clone(),
            bundle: bundle.display().to_string(),
            rootfs: to_api_mounts(&mounts),
            terminal,
            stdin: FifoSet::uri(&fifos.stdin),
            stdout: fifos.stdout.display().to_string(),
            stderr: FifoSet::uri(&fifos.stderr),
            ..Default::default()
        };
        let created = match client.create(ctx(CALL_TIMEOUT), &req).await {
            Ok(c) => c,
            Err(e) => {
                let err = shim_error("failed to create shim task", e);
                shutdown_shim(&client, &binary, &d.tasks.endpoint, &id, &bundle).await;
                return Err(err);
            }
        };
        let pio = ProcessIo::new();
        let sub = subscribe.then(|| pio.subscribe());
        let log = log::JsonLog::open(&log_path(d, &id), rotation)?;
        let start = api::StartRequest { id: id.clone(), ..Default::default() };
        if let Err(e) = client.start(ctx(CALL_TIMEOUT), &start).await {
            let err = shim_error("failed to start task", e);
            let _ =
                client.delete(ctx(CALL_TIMEOUT), &api::DeleteRequest { id: id.clone(), ..Default::default() }).await;
            shutdown_shim(&client, &binary, &d.tasks.endpoint, &id, &bundle).await;
            return Err(err);
        }
        if let Some(stdin) = &fifos.stdin {
            *pio.stdin.lock().await = Some(io::open_stdin(stdin)?);
        }
        pio.spawn_copier(readers, Some(Arc::new(std::sync::Mutex::new(log))));
        undo.bundle = None;
        let task = Arc::new(Task {
            id: id.clone(),
            client,
            address: address.clone(),
            bundle,
            binary,
            pid: created.pid,
            terminal,
            io: pio,
            exited: watch::channel(None).0,
        });
        d.tasks.live.lock().map_err(|_| anyhow!("task table poisoned"))?.insert(id.clone(), task.clone());
        let pid = created.pid;
        d.containers.update(&id, |r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.started_at = crate::events::now_nanos();
            r.state.finished_at = 0;
            r.state.exit_code = 0;
            r.state.oom_killed = false;
            r.state.error.clear();
            r.state.shim_address = address.clone();
        })?;
        d.events.publish("/tasks/start", serde_json::json!({"container_id": id, "pid": pid}));
        let _waiter = spawn_waiter(d.clone(), task.clone());
        Ok((task, sub))
    }

    /// Sends `signal` to the container's init (or every process with `all`).
    pub async fn kill(d: &Arc<Berthd>, id: &str, signal: u32, all: bool, by_user: bool) -> Result<()> {
        let task =
            d.tasks.get(id).with_context(|| format!("Cannot kill container: {id}: container {id} is not running"))?;
        if by_user {
            d.containers.update(id, |r| r.state.stopped_by_user = true)?;
        }
        signal_task(&task, signal, all).await
    }

    /// Lets the next `start` of `id` run under its restart policy again (a user's start after
    /// a stop or kill, as docker's).
    pub fn clear_user_stop(d: &Berthd, id: &str) -> Result<()> {
        d.containers.update(id, |r| r.state.stopped_by_user = false).map(|_| ())
    }

    /// Waits until the live task of `id` (if any) has exited; returns its exit code.
    pub async fn wait_exit(d: &Berthd, id: &str, limit: Option<Duration>) -> Option<i32> {
        let task = d.tasks.get(id)?;
        let mut rx = task.exited.subscribe();
        let wait = async {
            let _ = rx.wait_for(|e| e.is_some()).await;
            *rx.borrow()
        };
        match limit {
            Some(l) => tokio::time::timeout(l, wait).await.ok().flatten(),
            None => wait.await,
        }
    }

    /// docker stop: the stop signal, SIGKILL after `timeout`, returns once exited.
    pub async fn stop(d: &Arc<Berthd>, id: &str, timeout: Option<Duration>) -> Result<()> {
        // Marked first, so that whichever run of a restart policy ends next is not restarted;
        // between two runs, the stop ends the restarts right there.
        d.containers.update(id, |r| {
            if r.state.status == Status::Restarting {
                r.state.status = Status::Exited;
            }
            r.state.stopped_by_user = true;
        })?;
        let Some(task) = d.tasks.get(id) else { return Ok(()) };
        let record = d.containers.get(id)?.with_context(|| format!("No such container: {id}"))?;
        let signal = stop_signal(&record)?;
        let timeout =
            timeout.unwrap_or_else(|| Duration::from_secs(record.config.stop_timeout.unwrap_or(10).max(0) as u64));
        if record.state.status == Status::Paused {
            let _ = task
                .client
                .resume(ctx(CALL_TIMEOUT), &api::ResumeRequest { id: id.to_string(), ..Default::default() })
                .await;
        }
        if !timeout.is_zero() {
            signal_task(&task, signal, false).await?;
            if Self::wait_exit(d, id, Some(timeout)).await.is_some() {
                return Ok(());
            }
        }
        signal_task(&task, libc::SIGKILL as u32, true).await?;
        Self::wait_exit(d, id, Some(Duration::from_secs(60))).await;
        Ok(())
    }

    /// Removes a container that is not running (with `force`, killing it first), and with
    /// `volumes` its anonymous volumes.
    pub async fn remove(d: &Arc<Berthd>, id: &str, force: bool, volumes: bool) -> Result<()> {
        if d.tasks.get(id).is_some() {
            if !force {
                bail!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove");
            }
            Self::kill(d, id, libc::SIGKILL as u32, true, true).await?;
            Self::wait_exit(d, id, Some(Duration::from_secs(60))).await;
        }
        let lock = d.tasks.lock_for(id);
        let _guard = lock.lock().await;
        if d.tasks.get(id).is_some() {
            bail!("container {id} was started again while being removed");
        }
        remove_stopped(d, id, volumes).await
    }

    /// Pause or resume.
    pub async fn set_paused(d: &Arc<Berthd>, id: &str, paused: bool) -> Result<()> {
        let task = d.tasks.get(id).with_context(|| format!("Container {id} is not running"))?;
        let record = d.containers.get(id)?.with_context(|| format!("No such container: {id}"))?;
        if paused && record.state.status == Status::Paused {
            bail!("Container {id} is already paused");
        }
        if !paused && record.state.status != Status::Paused {
            bail!("Container {id} is not paused");
        }
        let result = if paused {
            task.client.pause(ctx(CALL_TIMEOUT), &api::PauseRequest { id: id.to_string(), ..Default::default() }).await
        } else {
            task.client
                .resume(ctx(CALL_TIMEOUT), &api::ResumeRequest { id: id.to_string(), ..Default::default() })
                .await
        };
        result.map_err(|e| shim_error(if paused { "pausing" } else { "resuming" }, e))?;
        d.containers.update(id, |r| r.state.status = if paused { Status::Paused } else { Status::Running })?;
        d.events
            .publish(if paused { "/tasks/paused" } else { "/tasks/resumed" }, serde_json::json!({"container_id": id}));
        Ok(())
    }

    /// Reconnects to the shims of containers that were running when berthd stopped, collects
    /// the exits that happened meanwhile, and starts what the restart policies say should run.
    pub async fn recover(d: &Arc<Berthd>) -> Result<()> {
        let d2 = d.clone();
        tokio::task::spawn_blocking(move || network::attach::sweep(&d2))
            .await
            .map_err(|e| anyhow!("sweeping network state: {e}"))?;
        for record in d.containers.list()? {
            let id = record.id.clone();
            if record.state.status.is_live() || !record.state.shim_address.is_empty() {
                if let Err(e) = Self::reattach(d, &record).await {
                    tracing::warn!(container = %id, "shim gone: {e:#}");
                    let bundle = Self::bundle(d, &id);
                    if let Ok(binary) = shim::find_binary(&record.runtime) {
                        if bundle.exists() {
                            let _ = shim::delete(&binary, &d.tasks.endpoint, &id, &bundle).await;
                        }
                    }
                    cleanup_bundle(&bundle);
                    detach_network(d, &id).await;
                    d.containers.update(&id, |r| {
                        r.state.status = Status::Exited;
                        r.state.exit_code = 255;
                        r.state.pid = 0;
                        r.state.shim_address.clear();
                        r.state.finished_at = crate::events::now_nanos();
                    })?;
                    apply_exit_policy(d.clone(), id.clone(), 255);
                }
            } else if restart_on_daemon_start(&record) {
                let d = d.clone();
                tokio::spawn(async move {
                    if let Err(e) = Tasks::start(&d, &id, false).await {
                        tracing::warn!(container = %id, "restart policy: starting: {e:#}");
                    }
                });
            }
        }
        Ok(())
    }

    async fn reattach(d: &Arc<Berthd>, record: &ContainerRecord) -> Result<()> {
        let id = record.id.clone();
        let address = record.state.shim_address.clone();
        if address.is_empty() {
            bail!("no shim address recorded");
        }
        let client =
            tokio::time::timeout(Duration::from_secs(5), shim::connect(&address)).await.context("connecting")??;
        let state = client
            .state(ctx(Duration::from_secs(10)), &api::StateRequest { id: id.clone(), ..Default::default() })
            .await
            .map_err(|e| shim_error("state", e))?;
        let bundle = Self::bundle(d, &id);
        let binary = shim::find_binary(&record.runtime)?;
        let fifos = FifoSet::new(&bundle, "init", record.config.open_stdin, record.config.tty);
        let readers = io::open_outputs(&fifos)?;
        let pio = ProcessIo::new();
        if let Some(stdin) = &fifos.stdin {
            match io::open_stdin(stdin) {
                Ok(tx) => *pio.stdin.lock().await = Some(tx),
                Err(e) => tracing::debug!(container = %id, "stdin not reopened: {e:#}"),
            }
        }
        let log = log::JsonLog::open(&log_path(d, &id), log::Rotation::from_opts(&record.config.log_opts)?)?;
        pio.spawn_copier(readers, Some(Arc::new(std::sync::Mutex::new(log))));
        let _ = spawn_shim_log(&bundle, &id);
        let task = Arc::new(Task {
            id: id.clone(),
            client,
            address,
            bundle,
            binary,
            pid: state.pid,
            terminal: record.config.tty,
            io: pio,
            exited: watch::channel(None).0,
        });
        d.tasks.live.lock().map_err(|_| anyhow!("task table poisoned"))?.insert(id.clone(), task.clone());
        let status = state.status.enum_value();
        let paused = status == Ok(api::Status::PAUSED);
        let stopped = status == Ok(api::Status::STOPPED);
        d.containers.update(&id, |r| {
            // An exit that happened meanwhile is recorded by the waiter, right away.
            if !stopped && r.state.status != Status::Exited {
                r.state.status = if paused { Status::Paused } else { Status::Running };
            }
        })?;
        tracing::info!(container = %id, pid = state.pid, "reconnected to its shim");
        let waiter = spawn_waiter(d.clone(), task);
        if stopped {
            // Its exit is recorded before berthd answers anyone.
            let _ = waiter.await;
        }
        Ok(())
    }
}

/// Sends `signal` to the task's init (or all its processes); a task already gone is fine.
async fn signal_task(task: &Task, signal: u32, all: bool) -> Result<()> {
    let req = api::KillRequest { id: task.id.clone(), signal, all, ..Default::default() };
    match task.client.kill(ctx(CALL_TIMEOUT), &req).await {
        Ok(_) => Ok(()),
        Err(ttrpc::Error::RpcStatus(s)) if s.code() == ttrpc::Code::NOT_FOUND => Ok(()),
        Err(e) => Err(shim_error(&format!("Cannot kill container: {}", task.id), e)),
    }
}

/// docker's exit code for a start that failed: 127 when the command is missing, 126 when it
/// cannot be run, else 128.
pub fn exit_code_for_error(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        128
    }
}

/// The signal `stop` sends first: `--stop-signal`, else the image's, else SIGTERM.
pub fn stop_signal(record: &ContainerRecord) -> Result<u32> {
    let from_image = record.image_config["config"]["StopSignal"].as_str().map(str::to_string);
    let name = record.config.stop_signal.clone().or(from_image).filter(|s| !s.is_empty());
    match name {
        None => Ok(libc::SIGTERM as u32),
        Some(n) => parse_signal(&n),
    }
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("Invalid signal: {s}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<nix::sys::signal::Signal>().map(|sig| sig as u32).map_err(|_| anyhow!("Invalid signal: {s}"))
}

fn restart_on_daemon_start(record: &ContainerRecord) -> bool {
    match record.config.restart_policy.name.as_str() {
        "always" => record.state.status != Status::Created || record.state.started_at != 0,
        "unless-stopped" => !record.state.stopped_by_user && record.state.started_at != 0,
        _ => false,
    }
}

/// Points the spec's network namespace at `path` (a pinned namespace or another task's).
fn join_network(spec: &mut serde_json::Value, path: &Path) {
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        for ns in namespaces.iter_mut().filter(|ns| ns["type"] == "network") {
            ns["path"] = serde_json::json!(path);
        }
    }
}

/// Detaches container `id` from its networks and unpins its namespace (off the async workers).
async fn detach_network(d: &Arc<Berthd>, id: &str) {
    let (d, id) = (d.clone(), id.to_string());
    if let Err(e) = tokio::task::spawn_blocking(move || network::attach::teardown(&d, &id)).await {
        tracing::warn!("network teardown: {e}");
    }
}

/// Removes a bundle left behind (its rootfs unmounted first).
fn cleanup_bundle(bundle: &Path) {
    if !bundle.exists() {
        return;
    }
    let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        tracing::warn!(bundle = %bundle.display(), "removing: {e}");
    }
}

struct BundleUndo {
    bundle: Option<PathBuf>,
}

impl Drop for BundleUndo {
    fn drop(&mut self) {
        if let Some(b) = self.bundle.take() {
            cleanup_bundle(&b);
        }
    }
}

/// Asks a shim whose task failed to go away, falling back to its `delete` command.
async fn shutdown_shim(client: &TaskClient, binary: &Path, endpoint: &Endpoint, id: &str, bundle: &Path) {
    let req = api::ShutdownRequest { id: id.to_string(), now: true, ..Default::default() };
    let _ = client.shutdown(ctx(Duration::from_secs(5)), &req).await;
    if let Err(e) = shim::delete(binary, endpoint, id, bundle).await {
        tracing::debug!(container = id, "shim delete: {e:#}");
    }
}

/// Copies the shim's own log (the bundle's `log` FIFO containerd's shims write to) into ours.
fn spawn_shim_log(bundle: &Path, id: &str) -> Result<()> {
    let path = bundle.join("log");
    match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("mkfifo {}", path.display())),
    }
    // Read-write: the FIFO always has a reader (a shim writing its log never gets EPIPE), and
    // this copier ends with the bundle's removal rather than at a writer's close.
    let rx = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let id = id.to_string();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(rx).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(container = %id, "shim: {line}");
        }
    });
    Ok(())
}

fn spawn_waiter(d: Arc<Berthd>, task: Arc<Task>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = task.id.clone();
        let req = api::WaitRequest { id: id.clone(), ..Default::default() };
        let (code, exited_at) = match task.client.wait(ctx_forever(), &req).await {
            Ok(resp) => {
                let at =
                    resp.exited_at.as_ref().map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos)).filter(|t| *t > 0);
                (resp.exit_status as i32, at)
            }
            Err(e) => {
                tracing::warn!(container = %id, "waiting on the shim: {e}");
                (255, None)
            }
        };
        task.io.mark_exited();
        task.io.wait_done(DRAIN_TIMEOUT).await;
        let del = api::DeleteRequest { id: id.clone(), ..Default::default() };
        if task.client.delete(ctx(CALL_TIMEOUT), &del).await.is_err() {
            let _ = shim::delete(&task.binary, &d.tasks.endpoint, &id, &task.bundle).await;
        }
        let shutdown = api::ShutdownRequest { id: id.clone(), ..Default::default() };
        let _ = task.client.shutdown(ctx(Duration::from_secs(5)), &shutdown).await;
        cleanup_bundle(&task.bundle);
        detach_network(&d, &id).await;
        // The exit is recorded before the task leaves the live table: whoever finds no live
        // task reads this exit from the record.
        let updated = d.containers.update(&id, |r| {
            r.state.status = Status::Exited;
            r.state.exit_code = code;
            r.state.pid = 0;
            r.state.finished_at = exited_at.unwrap_or_else(crate::events::now_nanos);
            r.state.shim_address.clear();
        });
        if let Err(e) = updated {
            tracing::warn!(container = %id, "recording the exit: {e:#}");
        }
        if let Ok(mut live) = d.tasks.live.lock() {
            live.remove(&id);
        }
        d.events.publish("/tasks/exit", serde_json::json!({"container_id": id, "exit_status": code}));
        crate::memory::note_activity();
        apply_exit_policy_now(&d, &id, code).await;
        task.exited.send_replace(Some(code));
    })
}

fn apply_exit_policy(d: Arc<Berthd>, id: String, code: i32) {
    tokio::spawn(async move { apply_exit_policy_now(&d, &id, code).await });
}

/// After an exit: `--rm` removes the container, a restart policy starts it again (docker's
/// back-off: 100 ms doubling to 1 min, reset after 10 s of running).
async fn apply_exit_policy_now(d: &Arc<Berthd>, id: &str, code: i32) {
    let Ok(Some(record)) = d.containers.get(id) else { return };
    let policy = &record.config.restart_policy;
    let restart = !record.state.stopped_by_user
        && match policy.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0
                    && (policy.maximum_retry_count == 0 || record.state.restart_count < policy.maximum_retry_count)
            }
            _ => false,
        };
    if restart {
        let ran = (record.state.finished_at - record.state.started_at) / 1_000_000;
        let count = if ran >= 10_000 { 0 } else { record.state.restart_count };
        let delay = Duration::from_millis((100u64 << count.min(10)).min(60_000));
        let _ = d.containers.update(id, |r| {
            r.state.status = Status::Restarting;
            r.state.restart_count += 1;
        });
        let (d, id) = (d.clone(), id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match d.containers.get(&id) {
                Ok(Some(r)) if r.state.status == Status::Restarting && !r.state.stopped_by_user => {
                    if let Err(e) = Tasks::start(&d, &id, false).await {
                        tracing::warn!(container = %id, "restart policy: {e:#}");
                        let _ = d.containers.update(&id, |r| r.state.status = Status::Exited);
                    }
                }
                _ => {}
            }
        });
    } else if record.config.auto_remove {
        // `run --rm` takes the anonymous volumes along, as docker's does.
        if let Err(e) = remove_stopped(d, id, true).await {
            tracing::warn!(container = %id, "--rm: {e:#}");
        }
    }
}

/// Removes the record, snapshot, bundle and files of a container without a task, and with
/// `volumes` the anonymous volumes only it used.
async fn remove_stopped(d: &Arc<Berthd>, id: &str, volumes: bool) -> Result<()> {
    let Some(record) = d.containers.get(id)? else { return Ok(()) };
    let d2 = d.clone();
    let id2 = id.to_string();
    tokio::task::spawn_blocking(move || -> Result<()> {
        network::attach::teardown(&d2, &id2);
        cleanup_bundle(&Tasks::bundle(&d2, &id2));
        match d2.snapshots.remove(&record.snapshot_key) {
            Ok(()) | Err(crate::store::snapshot::SnapshotError::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("removing the snapshot of {id2}")),
        }
        let dir = container_dir(&d2, &id2);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        d2.containers.remove(&id2)?;
        if volumes {
            let anonymous: Vec<String> = record
                .config
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && m.anonymous)
                .map(|m| m.source.clone())
                .collect();
            for name in d2.volumes.remove_unused_among(&d2.containers, &anonymous, true) {
                d2.events.publish("/volumes/delete", serde_json::json!({"name": name}));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| anyhow!("removing {id}: {e}"))??;
    d.events.publish("/containers/delete", serde_json::json!({"id": id}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").expect("name"), 15);
        assert_eq!(parse_signal("kill").expect("short"), 9);
        assert_eq!(parse_signal("10").expect("number"), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn start_errors_map_to_dockers_exit_codes() {
        assert_eq!(exit_code_for_error("exec: \"nope\": executable file not found in $PATH"), 127);
        assert_eq!(exit_code_for_error("exec: \"/etc\": is a directory"), 126);
        assert_eq!(exit_code_for_error("cgroup: EPERM"), 128);
    }
}
