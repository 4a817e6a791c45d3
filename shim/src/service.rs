//! The `containerd.task.v2.Task` service: one container per shim, its init process and its
//! execs. Each call checks the process's state, runs the runtime through [`Runtime`], and
//! publishes the matching task event. Errors carry ttrpc codes containerd maps to its errdefs
//! (`NOT_FOUND`, `FAILED_PRECONDITION`, `ALREADY_EXISTS`, `UNIMPLEMENTED`, ...).

use crate::events::{self, Publisher};
use crate::io::{self, StdioUris};
use crate::options;
use crate::process::{KillRest, Process, Status};
use crate::reaper::{Exit, Reaper};
use crate::runtime::{self, Runtime, RuntimeError};
use berth_runtime::cgroups::CgroupPaths;
use containerd_shim_protos::api;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::topics;
use containerd_shim_protos::types::task::Status as TaskStatus;
use containerd_shim_protos::Task;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use ttrpc::{Code, TtrpcContext};

type RpcResult<T> = ttrpc::Result<T>;

fn status(code: Code, msg: impl std::fmt::Display) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.to_string()))
}

fn not_found(msg: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::NOT_FOUND, msg)
}

fn precondition(msg: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::FAILED_PRECONDITION, msg)
}

fn invalid(msg: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::INVALID_ARGUMENT, msg)
}

/// An operation's failure: a runtime that says the container is gone or not running is
/// NOT_FOUND / FAILED_PRECONDITION for containerd; anything else is UNKNOWN with the chain.
fn internal(e: anyhow::Error) -> ttrpc::Error {
    if let Some(re) = e.downcast_ref::<RuntimeError>() {
        let m = re.message.to_lowercase();
        if m.contains("does not exist") || m.contains("not found") || m.contains("no such") {
            return not_found(format!("{e:#}"));
        }
        if m.contains("not running") || m.contains("not paused") || m.contains("is paused") || m.contains("stopped") {
            return precondition(format!("{e:#}"));
        }
    }
    status(Code::UNKNOWN, format!("{e:#}"))
}

/// An exec id is a file name in the bundle: keep it to containerd's identifier alphabet.
fn check_exec_id(exec_id: &str) -> RpcResult<()> {
    let ok = !exec_id.is_empty()
        && exec_id.len() <= 76
        && exec_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && exec_id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("invalid exec id {exec_id:?}")))
    }
}

/// The container this shim runs.
struct Container {
    id: String,
    bundle: PathBuf,
    runtime: Runtime,
    /// Where we mounted the rootfs (None: the bundle came with one).
    mounted_rootfs: Option<PathBuf>,
    init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    paused: AtomicBool,
    cgroup: Option<CgroupPaths>,
}

impl Container {
    fn execs(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn process(&self, exec_id: &str) -> RpcResult<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs().get(exec_id).cloned().ok_or_else(|| not_found(format!("process {exec_id} does not exist")))
    }
}

/// The Task service; see the module doc.
pub struct Service {
    namespace: String,
    publisher: Arc<Publisher>,
    reaper: Arc<Reaper>,
    shutdown: Mutex<Sender<()>>,
    container: Mutex<Option<Arc<Container>>>,
}

impl Service {
    /// A service with no container yet; `shutdown` is signalled when the shim should exit.
    pub fn new(namespace: &str, publisher: Arc<Publisher>, reaper: Arc<Reaper>, shutdown: Sender<()>) -> Service {
        Service {
            namespace: namespace.to_string(),
            publisher,
            reaper,
            shutdown: Mutex::new(shutdown),
            container: Mutex::new(None),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<Arc<Container>>> {
        self.container.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn container(&self, id: &str) -> RpcResult<Arc<Container>> {
        match self.slot().as_ref() {
            Some(c) if c.id == id => Ok(c.clone()),
            _ => Err(not_found(format!("container {id} does not exist in this shim"))),
        }
    }

    /// The hook that publishes a process's `TaskExit` once its exit is final.
    fn exit_hook(&self, container_id: &str, exec_id: &str) -> crate::process::ExitHook {
        let publisher = self.publisher.clone();
        let (container_id, exec_id) = (container_id.to_string(), exec_id.to_string());
        Box::new(move |exit: Exit| {
            let mut ev = TaskExit::new();
            ev.container_id = container_id.clone();
            ev.id = if exec_id.is_empty() { container_id } else { exec_id };
            ev.pid = exit.pid as u32;
            ev.exit_status = exit.status;
            ev.exited_at = MessageField::some(events::timestamp(exit.at));
            publisher.publish(topics::TASK_EXIT_EVENT_TOPIC, &ev);
        })
    }

    /// Runs the runtime's `create`/`exec` for `process` with freshly prepared stdio, then
    /// starts the copies and the exit watch. Returns the pid.
    fn launch(
        &self,
        container_id: &str,
        process: &Arc<Process>,
        kill_rest: Option<KillRest>,
        run: impl FnOnce(Option<&Path>, runtime::ProcessStdio) -> anyhow::Result<PathBuf>,
    ) -> anyhow::Result<i32> {
        let mut io = io::prepare(&process.uris, container_id, &self.namespace)?;
        let child = std::mem::take(&mut io.child);
        let console = io.console.as_ref().map(|c| c.path().to_path_buf());
        // The process comes to exist during `run`: an exit of its pid from before is another's.
        let since = std::time::Instant::now();
        let pid_file = run(console.as_deref(), child)?;
        let pid = runtime::read_pid_file(&pid_file)?;
        // The init's stays: `delete` after a dead shim reports its pid.
        if !process.exec_id.is_empty() {
            let _ = std::fs::remove_file(&pid_file);
        }
        let hook = self.exit_hook(container_id, &process.exec_id);
        process.launched(pid, since, io, &self.reaper, hook, kill_rest)?;
        Ok(pid)
    }

    fn create_container(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Arc<Container>> {
        let bundle = PathBuf::from(&req.bundle);
        let opts = options::from_any(req.options.as_ref())?;
        options::write(&bundle, &opts)?;
        let runtime = options::runtime(&opts, &self.namespace, &bundle, Some(self.reaper.clone()))?;
        let config = read_config(&bundle)?;
        let own_pid_ns = config["linux"]["namespaces"].as_array().is_some_and(|nss| {
            nss.iter().any(|ns| ns["type"] == "pid" && ns["path"].as_str().unwrap_or("").is_empty())
        });
        // Its init's exit leaves the container's other processes running (a pod's or the host's
        // pid namespace): the runtime kills what is left in its cgroup, as the runc shim does.
        let kill_rest = (!own_pid_ns).then(|| {
            let (runtime, id) = (runtime.clone(), req.id.clone());
            Box::new(move || {
                if let Err(e) = runtime.kill(&id, libc::SIGKILL as u32, true) {
                    crate::log::warn(&format!("killing the processes left in {id}: {e:#}"));
                }
            }) as KillRest
        });
        let uris = StdioUris {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let init = Process::new("", uris, Vec::new())?;
        // Nothing fallible between mounting and launching but the launch, which unmounts on failure.
        let mounted_rootfs = if req.rootfs.is_empty() {
            None
        } else {
            let target = bundle.join("rootfs");
            crate::mount::mount_rootfs(&req.rootfs, &target)?;
            Some(target)
        };
        let created = std::cell::Cell::new(false);
        let launched = self.launch(&req.id, &init, kill_rest, |console, stdio| {
            let pid_file = bundle.join("init.pid");
            runtime.create(&req.id, &bundle, &pid_file, console, stdio)?;
            created.set(true);
            Ok(pid_file)
        });
        if let Err(e) = launched {
            // The runtime created the container, then something else failed: remove it.
            if created.get() {
                let _ = runtime.delete(&req.id, true);
            }
            if let Some(target) = &mounted_rootfs {
                let _ = crate::mount::unmount_all(target);
            }
            return Err(e);
        }
        let cgroup = cgroup_of(&config, &req.id)
            .map_err(|e| crate::log::warn(&format!("no cgroup for stats and OOM events: {e:#}")))
            .ok();
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            runtime,
            mounted_rootfs,
            init,
            execs: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            cgroup,
        });
        if let Some(cg) = &container.cgroup {
            if let Err(e) = watch_oom(cg, &req.id, self.publisher.clone()) {
                crate::log::warn(&format!("OOM events unavailable: {e:#}"));
            }
        }
        Ok(container)
    }
}

/// The bundle's config.json.
fn read_config(bundle: &Path) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The container's cgroup directories, from config.json's `linux.cgroupsPath` (runc's rules).
fn cgroup_of(config: &serde_json::Value, id: &str) -> anyhow::Result<CgroupPaths> {
    let path = config["linux"]["cgroupsPath"].as_str().filter(|p| !p.is_empty()).map(Path::new);
    CgroupPaths::plan(path, id)
}

/// A thread that publishes `TaskOOM` whenever the container's memory cgroup OOM-kills.
fn watch_oom(cgroup: &CgroupPaths, id: &str, publisher: Arc<Publisher>) -> anyhow::Result<()> {
    let Some(mut watch) = cgroup.watch_oom()? else { return Ok(()) };
    let id = id.to_string();
    std::thread::Builder::new().name("oom".into()).stack_size(64 * 1024).spawn(move || loop {
        let mut pfd = libc::pollfd { fd: watch.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        match watch.read() {
            Ok((_, true)) | Err(_) => return,
            Ok((0, false)) => {}
            Ok((_, false)) => {
                let mut ev = TaskOOM::new();
                ev.container_id = id.clone();
                publisher.publish(topics::TASK_OOM_EVENT_TOPIC, &ev);
            }
        }
    })?;
    Ok(())
}

fn task_status(process: &Process, paused: bool) -> TaskStatus {
    match process.status() {
        Status::Created => TaskStatus::CREATED,
        Status::Running if paused => TaskStatus::PAUSED,
        Status::Running => TaskStatus::RUNNING,
        Status::Stopped => TaskStatus::STOPPED,
    }
}

impl Task for Service {
    fn create(&self, _ctx: &TtrpcContext, req: api::CreateTaskRequest) -> RpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(status(Code::UNIMPLEMENTED, "restore from a checkpoint is not supported (no CRIU)"));
        }
        let mut slot = self.slot();
        if slot.is_some() {
            return Err(status(Code::ALREADY_EXISTS, "this shim already runs a container"));
        }
        let container = self.create_container(&req).map_err(internal)?;
        let pid = container.init.pid() as u32;
        *slot = Some(container);
        drop(slot);

        let mut ev = TaskCreate::new();
        ev.container_id = req.id.clone();
        ev.bundle = req.bundle.clone();
        ev.rootfs = req.rootfs.clone();
        let mut tio = TaskIO::new();
        tio.stdin = req.stdin.clone();
        tio.stdout = req.stdout.clone();
        tio.stderr = req.stderr.clone();
        tio.terminal = req.terminal;
        ev.io = MessageField::some(tio);
        ev.checkpoint = req.checkpoint.clone();
        ev.pid = pid;
        self.publisher.publish(topics::TASK_CREATE_EVENT_TOPIC, &ev);
        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid;
        Ok(resp)
    }

    fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> RpcResult<api::StartResponse> {
        let c = self.container(&req.id)?;
        let process = c.process(&req.exec_id)?;
        if process.status() != Status::Created {
            return Err(precondition(format!("process {} is already started", display_id(&c.id, &req.exec_id))));
        }
        let pid = if req.exec_id.is_empty() {
            c.runtime.start(&c.id).map_err(internal)?;
            let pid = process.pid();
            process.set_started(|| {
                let mut ev = TaskStart::new();
                ev.container_id = c.id.clone();
                ev.pid = pid as u32;
                self.publisher.publish(topics::TASK_START_EVENT_TOPIC, &ev);
            });
            pid
        } else {
            if c.init.status() != Status::Running {
                return Err(precondition(format!("container {} is not running", c.id)));
            }
            let spec_file = c.bundle.join(format!(".exec-{}.json", req.exec_id));
            // The process spec may carry secrets in its environment: root only.
            write_private(&spec_file, &process.spec)
                .map_err(|e| status(Code::UNKNOWN, format!("writing {}: {e}", spec_file.display())))?;
            let launched = self.launch(&c.id, &process, None, |console, stdio| {
                let pid_file = c.bundle.join(format!(".exec-{}.pid", req.exec_id));
                c.runtime.exec(&c.id, &spec_file, &pid_file, console, stdio)?;
                Ok(pid_file)
            });
            let _ = std::fs::remove_file(&spec_file);
            let pid = launched.map_err(internal)?;
            process.set_started(|| {
                let mut ev = TaskExecStarted::new();
                ev.container_id = c.id.clone();
                ev.exec_id = req.exec_id.clone();
                ev.pid = pid as u32;
                self.publisher.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, &ev);
            });
            pid
        };
        let mut resp = api::StartResponse::new();
        resp.pid = pid as u32;
        give_back_freed_memory();
        Ok(resp)
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        let process = c.process(&req.exec_id)?;
        let exit = if req.exec_id.is_empty() {
            match process.status() {
                Status::Running => {
                    return Err(precondition(format!("container {} must be stopped before deletion", c.id)))
                }
                // Never started: the runtime kills the waiting init.
                Status::Created => {
                    c.runtime.delete(&c.id, true).map_err(internal)?;
                    let exit = process.wait();
                    // containerd (like its runc shim) hears of this init's end too.
                    process.finish_unstarted();
                    Some(exit)
                }
                Status::Stopped => {
                    if let Err(e) = c.runtime.delete(&c.id, true) {
                        // Already gone from the runtime's root is what delete wants.
                        crate::log::warn(&format!("runtime delete {}: {e:#}", c.id));
                    }
                    process.exit()
                }
            }
        } else {
            match process.status() {
                Status::Running => {
                    return Err(precondition(format!("process {} must be stopped before deletion", req.exec_id)))
                }
                _ => {
                    c.execs().remove(&req.exec_id);
                    process.exit()
                }
            }
        };
        process.release_stdin_fifo();
        let mut resp = api::DeleteResponse::new();
        resp.pid = process.pid().max(0) as u32;
        if let Some(exit) = exit {
            resp.exit_status = exit.status;
            resp.exited_at = MessageField::some(events::timestamp(exit.at));
        }
        if req.exec_id.is_empty() {
            if let Some(target) = &c.mounted_rootfs {
                crate::mount::unmount_all(target).map_err(internal)?;
            }
            *self.slot() = None;
            let mut ev = TaskDelete::new();
            ev.container_id = c.id.clone();
            ev.pid = resp.pid;
            ev.exit_status = resp.exit_status;
            ev.exited_at = resp.exited_at.clone();
            self.publisher.publish(topics::TASK_DELETE_EVENT_TOPIC, &ev);
        }
        Ok(resp)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = c.runtime.ps(&c.id).map_err(internal)?;
        let execs: HashMap<u32, String> =
            c.execs().iter().map(|(id, p)| (p.pid().max(0) as u32, id.clone())).filter(|(pid, _)| *pid != 0).collect();
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = api::ProcessInfo::new();
            info.pid = pid;
            if let Some(exec_id) = execs.get(&pid) {
                let mut details = ProcessDetails::new();
                details.exec_id = exec_id.clone();
                info.info = MessageField::some(events::to_any(&details));
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.runtime.pause(&c.id).map_err(internal)?;
        c.paused.store(true, Ordering::SeqCst);
        let mut ev = TaskPaused::new();
        ev.container_id = c.id.clone();
        self.publisher.publish(topics::TASK_PAUSED_EVENT_TOPIC, &ev);
        Ok(api::Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.runtime.resume(&c.id).map_err(internal)?;
        c.paused.store(false, Ordering::SeqCst);
        let mut ev = TaskResumed::new();
        ev.container_id = c.id.clone();
        self.publisher.publish(topics::TASK_RESUMED_EVENT_TOPIC, &ev);
        Ok(api::Empty::new())
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> RpcResult<api::Empty> {
        Err(status(Code::UNIMPLEMENTED, "checkpoint is not supported: the runtime has no CRIU support"))
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let process = c.process(&req.exec_id)?;
        if req.exec_id.is_empty() {
            if process.reaped_or_exited() && !req.all {
                return Err(not_found(format!("process {} already finished", c.id)));
            }
            // A process the runtime already sees as gone is NOT_FOUND for containerd (which then
            // stops retrying a StopContainer), as the runc shim maps it.
            c.runtime.kill(&c.id, req.signal, req.all).map_err(|e| match internal(e) {
                err if err.to_string().contains("not running") => {
                    not_found(format!("process {} already finished", c.id))
                }
                err => err,
            })?;
        } else {
            if process.reaped_or_exited() {
                return Err(not_found(format!("process {} already finished", req.exec_id)));
            }
            if process.status() == Status::Created {
                return Err(precondition(format!("process {} is not started", req.exec_id)));
            }
            if req.all {
                return Err(invalid("kill --all applies to the container's init, not to an exec"));
            }
            // Any signal 1-64, real-time ones included (nix's Signal has no SIGRTMIN+n).
            if !(1..=64).contains(&req.signal) {
                return Err(invalid(format!("invalid signal {}", req.signal)));
            }
            // SAFETY: kill(2) with a pid the reaper has not reported exited and a checked signal.
            if unsafe { libc::kill(process.pid(), req.signal as i32) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ESRCH) {
                    return Err(not_found(format!("process {} already finished", req.exec_id)));
                }
                return Err(internal(anyhow::anyhow!("kill {}: {e}", process.pid())));
            }
        }
        Ok(api::Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> RpcResult<api::Empty> {
        check_exec_id(&req.exec_id)?;
        let c = self.container(&req.id)?;
        if c.init.status() == Status::Stopped {
            return Err(precondition(format!("container {} is stopped", c.id)));
        }
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&spec).is_err() {
            return Err(invalid("the exec spec is not a JSON process"));
        }
        let uris = StdioUris {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let process = Process::new(&req.exec_id, uris, spec).map_err(internal)?;
        {
            let mut execs = c.execs();
            if execs.contains_key(&req.exec_id) {
                return Err(status(Code::ALREADY_EXISTS, format!("exec {} already exists", req.exec_id)));
            }
            execs.insert(req.exec_id.clone(), process);
        }
        let mut ev = TaskExecAdded::new();
        ev.container_id = c.id.clone();
        ev.exec_id = req.exec_id.clone();
        self.publisher.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, &ev);
        Ok(api::Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        c.process(&req.exec_id)?.resize(req.width, req.height).map_err(internal)?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        if req.stdin {
            c.process(&req.exec_id)?.close_stdin();
        }
        Ok(api::Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> RpcResult<api::Empty> {
        let c = self.container(&req.id)?;
        let resources = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&resources).is_err() {
            return Err(invalid("the resources are not JSON LinuxResources"));
        }
        c.runtime.update(&c.id, &resources).map_err(internal)?;
        Ok(api::Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let process = c.process(&req.exec_id)?;
        let exit = process.wait();
        let mut resp = api::WaitResponse::new();
        resp.exit_status = exit.status;
        resp.exited_at = MessageField::some(events::timestamp(exit.at));
        Ok(resp)
    }

    fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> RpcResult<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let cgroup = c.cgroup.as_ref().ok_or_else(|| not_found(format!("container {} has no cgroup", c.id)))?;
        let stats = cgroup.stats().map_err(internal)?;
        let mut resp = api::StatsResponse::new();
        resp.stats = MessageField::some(crate::metrics::to_any(&stats, cgroup.mode));
        Ok(resp)
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        let c = self.container(&req.id)?;
        let process = c.process(&req.exec_id)?;
        let mut resp = api::StateResponse::new();
        resp.id = if req.exec_id.is_empty() { c.id.clone() } else { req.exec_id.clone() };
        resp.exec_id = req.exec_id.clone();
        resp.bundle = c.bundle.display().to_string();
        resp.pid = process.pid().max(0) as u32;
        // A paused container's execs are frozen with it. The freezer says whether it is paused
        // (also when someone paused it with the runtime directly); without a cgroup, the shim's
        // own record of Pause/Resume does.
        let paused = match &c.cgroup {
            Some(cgroup) => cgroup.is_frozen(),
            None => c.paused.load(Ordering::SeqCst),
        };
        resp.status = task_status(&process, paused).into();
        resp.stdin = process.uris.stdin.clone();
        resp.stdout = process.uris.stdout.clone();
        resp.stderr = process.uris.stderr.clone();
        resp.terminal = process.uris.terminal;
        if let Some(exit) = process.exit() {
            resp.exit_status = exit.status;
            resp.exited_at = MessageField::some(events::timestamp(exit.at));
        }
        Ok(resp)
    }

    fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        let mut resp = api::ConnectResponse::new();
        resp.shim_pid = std::process::id();
        if let Ok(c) = self.container(&req.id) {
            resp.task_pid = c.init.pid().max(0) as u32;
        }
        resp.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(resp)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        // A shim with a live container stays (containerd asks after every delete).
        if self.slot().is_some() && !req.now {
            return Ok(api::Empty::new());
        }
        let _ = self.shutdown.lock().unwrap_or_else(|e| e.into_inner()).send(());
        Ok(api::Empty::new())
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?.write_all(data)
}

fn display_id(id: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        id.to_string()
    } else {
        format!("{id}/{exec_id}")
    }
}

/// Returns the heap a create or start freed (the parsed spec, the runtime's output, request
/// buffers) to the kernel: glibc keeps freed chunks resident, and a shim then idles for the
/// container's whole life. (musl's allocator unmaps freed memory itself.)
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only returns free pages of glibc's arenas to the kernel; it takes the
    // arena's lock like any malloc call.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
}
