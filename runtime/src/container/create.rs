//! `create`: set the container up completely and leave init blocked on the exec fifo.
//!
//! The runtime clones init directly into its new namespaces (pid and time are entered or
//! created by this process first, since they apply to children), puts it in its cgroup, writes
//! its id maps, then answers init's requests over the sync socket until init is ready. Init is
//! this process's child only until `create` exits; then the caller's subreaper adopts it.

use crate::cgroups::CgroupPaths;
use crate::hooks::Inherit;
use crate::init::InitArgs;
use crate::namespaces::Plan;
use crate::state::{LockedDir, State, Status, EXEC_FIFO};
use crate::sync::{Message, SyncSocket};
use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What `create` (and `run`) take from the command line.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where to write init's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the pty master.
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Pass fds 3..3+N to the process.
    pub preserve_fds: i32,
}

/// A created container whose init is this process's child (until this process exits).
pub struct Created {
    /// Host pid of init.
    pub pid: i32,
}

/// Creates container `opts.id` under `root`. On any failure nothing is left behind: no state
/// dir, cgroup, process or fifo.
pub fn create(root: &Path, opts: &CreateOptions) -> Result<Created> {
    create_with_console(root, opts, None)
}

/// [`create`], with the console socket given as an already connected socket (foreground `run`
/// keeps the other end to receive the pty master itself) instead of `--console-socket`.
pub fn create_with_console(root: &Path, opts: &CreateOptions, console: Option<OwnedFd>) -> Result<Created> {
    crate::state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).with_context(|| format!("bundle {}", opts.bundle.display()))?;
    let spec = crate::spec::load(&bundle)?;
    crate::spec::validate(&spec)?;
    let rootfs = crate::spec::rootfs_path(&bundle, &spec)?;
    let process = spec.process().as_ref().context("config.json has no process")?;
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, opts.console_socket.is_some() || console.is_some()) {
        (true, false) => bail!("process.terminal is set: --console-socket is required"),
        (false, true) => bail!("--console-socket was given but process.terminal is false"),
        _ => {}
    }
    check_preserved_fds(opts.preserve_fds)?;
    let dir = LockedDir::create(root, &opts.id)?;
    let mut undo = Undo::default();
    let result = setup(&dir, &bundle, &rootfs, &spec, opts, console, &mut undo);
    if result.is_err() {
        if let Some(pid) = undo.child {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some((rootfs, before)) = &undo.host_mounts_before {
            if let Err(e) = crate::rootfs::mounts_made_under(rootfs, before)
                .and_then(|made| crate::rootfs::unmount_host_mounts(&made))
            {
                crate::logging::warn(&format!("undoing the host mounts of a failed create: {e:#}"));
            }
        }
        if let Some(cg) = undo.cgroup {
            let _ = cg.remove();
        }
        // What prestart/createRuntime hooks set up (a network, say) is theirs to take down.
        if let Some(state) = undo.poststop {
            let hooks = spec.hooks().as_ref().and_then(|h| h.poststop().clone()).unwrap_or_default();
            crate::hooks::run_all_warn(&hooks, &state, "poststop");
        }
        let _ = std::fs::remove_dir_all(&dir.path);
    }
    result
}

/// Checks that fds 3..3+n are open (the caller's, to pass to the container).
pub fn check_preserved_fds(n: i32) -> Result<()> {
    if n < 0 {
        bail!("--preserve-fds {n}: must not be negative");
    }
    for fd in 3..3i32.saturating_add(n) {
        if nix::fcntl::fcntl(borrow_fd(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
            bail!("--preserve-fds {n}: fd {fd} is not open");
        }
    }
    Ok(())
}

/// What a failed create has to take down again.
#[derive(Default)]
struct Undo {
    cgroup: Option<CgroupPaths>,
    child: Option<i32>,
    /// Set once create-time hooks ran: the state poststop hooks get if create then fails.
    poststop: Option<serde_json::Value>,
    /// Without a mount namespace: the rootfs and the mounts under it before init ran.
    host_mounts_before: Option<(PathBuf, Vec<(u64, PathBuf)>)>,
}

fn borrow_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for F_GETFD probing of fd numbers the caller handed over; fcntl on a
    // closed fd number fails with EBADF and touches nothing.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

fn setup(
    dir: &LockedDir,
    bundle: &Path,
    rootfs: &Path,
    spec: &Spec,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
    undo: &mut Undo,
) -> Result<Created> {
    let linux = spec.linux().as_ref().context("config.json has no linux section")?;
    let t0 = std::time::Instant::now();
    let phase = |name: &str| crate::logging::debug(&format!("create {}: {name} at {:?}", opts.id, t0.elapsed()));
    // Compiled here so that a bad profile fails before anything exists; installed by init as
    // late as possible. The seccomp agent's socket is a host path: connected here, inherited by
    // init, which sends the listener on it at `start`.
    let seccomp = linux.seccomp().as_ref().map(crate::seccomp::compile).transpose()?;
    let seccomp_agent = seccomp
        .as_ref()
        .and_then(|s| s.listener_path())
        .map(|p| crate::seccomp::connect_agent(bundle, p))
        .transpose()?;
    let mut cgroup = CgroupPaths::plan(linux.cgroups_path().as_deref(), &opts.id)?;
    let created = cgroup.create();
    undo.cgroup = Some(cgroup.clone());
    created?;
    if let Some(resources) = linux.resources() {
        cgroup.apply_resources(resources)?;
        cgroup.apply_devices(
            resources.devices().as_deref().unwrap_or_default(),
            linux.devices().as_deref().unwrap_or_default(),
        )?;
    }

    let mut state = State {
        oci_version: crate::spec::OCI_VERSION.to_string(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        init_start_time: 0,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        created: crate::logging::now_rfc3339(),
        owner: nix::unistd::geteuid().as_raw(),
        cgroup: cgroup.clone(),
        config: serde_json::to_value(spec).context("serialising config")?,
        host_mounts: Vec::new(),
    };
    state.save(&dir.path)?;
    phase("cgroup created and resources applied");

    let fifo_path = dir.path.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", fifo_path.display()))?;
    // Writable by the container's user, whoever it is (its init reopens it after setuid).
    std::fs::set_permissions(&fifo_path, std::os::unix::fs::PermissionsExt::from_mode(0o622))?;
    let exec_fifo = nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .context("opening the exec fifo")?;
    let console_socket = match console {
        Some(sock) => Some(sock),
        None => opts.console_socket.as_deref().map(crate::console::connect_socket).transpose()?,
    };

    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or_default());
    // Without a mount namespace of its own, init mounts in the host's: what it mounts under the
    // rootfs is found by comparing with what was there before, and undone by delete.
    if !crate::namespaces::listed(linux.namespaces().as_deref(), oci_spec::runtime::LinuxNamespaceType::Mount) {
        undo.host_mounts_before = Some((rootfs.to_path_buf(), crate::rootfs::mounts_under(rootfs)?));
    }
    // Entering pid/time namespaces changes what our *children* get: keep handles on our own so
    // that hooks this process starts after the clone run in the runtime's namespaces.
    let own_pid_ns = std::fs::File::open("/proc/self/ns/pid").context("opening /proc/self/ns/pid")?;
    let own_time_ns = std::fs::File::open("/proc/self/ns/time").ok();
    enter_child_namespaces(&plan, linux.time_offsets().as_ref())?;
    let (parent_sock, child_sock) = crate::sync::pair()?;

    // On cgroup v2, init is born in its cgroup where the kernel can (clone3 with
    // CLONE_INTO_CGROUP, Linux 5.7+): moving a process into cgroup.procs afterwards takes the
    // cgroup threadgroup lock for writing, which waits for an RCU grace period (milliseconds on
    // a busy host). Elsewhere, or where the kernel refuses it, a fork-like clone and the move.
    let mut cgroup_dir = (cgroup.mode == crate::cgroups::Mode::V2 && cgroup.dirs.len() == 1)
        .then(|| {
            nix::fcntl::open(&cgroup.dirs[0], OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .ok()
        })
        .flatten();
    let (ret, born_in_cgroup) = match cgroup_dir.as_ref().map(|dir| clone_into_cgroup(plan.clone_flags, dir)) {
        Some(Ok(ret)) => (ret, true),
        Some(Err(e))
            if !matches!(
                e,
                nix::errno::Errno::ENOSYS
                    | nix::errno::Errno::E2BIG
                    | nix::errno::Errno::EINVAL
                    | nix::errno::Errno::EOPNOTSUPP
                    | nix::errno::Errno::EBUSY
            ) =>
        {
            return Err(e)
                .with_context(|| format!("clone3 with {:?} into {}", plan.clone_flags, cgroup.dirs[0].display()));
        }
        _ => (fork_like_clone(plan.clone_flags).with_context(|| format!("clone with {:?}", plan.clone_flags))?, false),
    };
    if ret == 0 {
        drop(cgroup_dir.take());
        drop(parent_sock);
        child_main(
            InitArgs {
                spec,
                rootfs,
                state_dir: &dir.path,
                plan: &plan,
                cgroup: &cgroup,
                exec_fifo: &exec_fifo,
                console_socket,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                seccomp,
                seccomp_agent,
            },
            &child_sock,
        );
    }
    let pid = ret as i32;
    if plan.join_pid.is_some() {
        nix::sched::setns(&own_pid_ns, CloneFlags::CLONE_NEWPID).context("returning to the runtime's pid namespace")?;
    }
    if plan.new_time || plan.join_time.is_some() {
        let ns = own_time_ns.as_ref().context("no /proc/self/ns/time to return to")?;
        nix::sched::setns(ns, CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .context("returning to the runtime's time namespace")?;
    }
    phase(if born_in_cgroup { "init cloned into its cgroup" } else { "init cloned" });
    undo.child = Some(pid);
    drop(child_sock);
    drop(console_socket);
    // Init's copy alone: the agent sees the connection end when init has sent the state.
    drop(seccomp_agent);

    drop(cgroup_dir);
    if !born_in_cgroup {
        cgroup.join(pid)?;
    }
    if plan.new_user {
        write_id_map(pid, "uid_map", linux.uid_mappings().as_deref().unwrap_or_default())?;
        write_id_map(pid, "gid_map", linux.gid_mappings().as_deref().unwrap_or_default())?;
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .with_context(|| format!("setting oomScoreAdj {adj} (lowering it needs CAP_SYS_RESOURCE)"))?;
    }
    state.pid = pid;
    state.init_start_time = crate::state::proc_stat(pid).map(|(_, t)| t).context("reading init's start time")?;
    // Saved before Go: init reads it for its hooks, and a create that dies from here on leaves a
    // pid that `delete --force` can kill.
    state.save(&dir.path)?;
    if let Some(compiled) = seccomp.as_ref().filter(|c| c.listener_path().is_some()) {
        // Init sends it once `start` lets it load the filter: the container is created by then
        // and its program not yet running (runc, which loads the filter during create, says
        // "creating").
        let oci_state = state.oci_json(Status::Created);
        let process_state = crate::seccomp::process_state(&oci_state, pid, compiled.listener_metadata());
        parent_sock.send(&Message::AgentState(process_state))?;
    }
    parent_sock.send(&Message::Go)?;
    phase("init in its cgroup with its id maps");

    loop {
        match parent_sock.recv()? {
            Some(Message::RunCreateRuntimeHooks) => {
                if let Some(hooks) = spec.hooks() {
                    let st = state.oci_json(Status::Creating);
                    undo.poststop = Some(state.oci_json(Status::Stopped));
                    crate::hooks::run_all(
                        hooks.prestart().as_deref().unwrap_or_default(),
                        &st,
                        "prestart",
                        Inherit::Runtime,
                    )?;
                    crate::hooks::run_all(
                        hooks.create_runtime().as_deref().unwrap_or_default(),
                        &st,
                        "createRuntime",
                        Inherit::Runtime,
                    )?;
                }
                parent_sock.send(&Message::HooksDone)?;
            }
            Some(Message::Ready) => {
                phase("init ready (rootfs, process set up)");
                break;
            }
            Some(Message::Error(e)) => bail!("container init: {e}"),
            Some(other) => bail!("unexpected message from init: {other:?}"),
            None => bail!("container init exited during setup"),
        }
    }
    if let Some((dir, before)) = &undo.host_mounts_before {
        state.host_mounts = crate::rootfs::mounts_made_under(dir, before)?;
    }
    state.status = Status::Created;
    state.save(&dir.path)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    Ok(Created { pid })
}

/// In the child: run init; report a failure to the parent and exit without unwinding into the
/// parent's code.
fn child_main(args: InitArgs, sync: &SyncSocket) -> ! {
    // A panic must end init alone. With panic=abort, std would call abort(), and musl's abort
    // signals the thread id cached in the parent (init comes from a raw clone, which musl does not
    // know about): without a pid namespace of its own, that would kill the runtime instead.
    std::panic::set_hook(Box::new(|info| {
        let _ =
            std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("berth-runtime: container init: {info}\n"));
        // SAFETY: _exit ends init at once; the parent sees the sync socket close and fails create.
        unsafe { libc::_exit(1) }
    }));
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers. A non-dumpable init cannot be ptraced
    // or have its /proc entries (exe, fds) opened by container processes before execve.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let err = match crate::init::run(args, sync) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sync.send(&Message::Error(format!("{err:#}")));
    // SAFETY: _exit ends the child at once, without running the parent's atexit handlers or
    // flushing its copied stdio buffers.
    unsafe { libc::_exit(1) }
}

/// pid and time namespaces apply to children: enter or create them here, before the clone.
fn enter_child_namespaces(
    plan: &Plan,
    offsets: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
) -> Result<()> {
    if let Some(path) = &plan.join_pid {
        crate::namespaces::join(oci_spec::runtime::LinuxNamespaceType::Pid, path)?;
    }
    if let Some(path) = &plan.join_time {
        crate::namespaces::join(oci_spec::runtime::LinuxNamespaceType::Time, path)?;
    }
    if plan.new_time {
        nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .context("unsharing the time namespace")?;
        let mut text = String::new();
        for (clock, off) in offsets.into_iter().flatten() {
            if clock != "monotonic" && clock != "boottime" {
                bail!("linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)");
            }
            text.push_str(&format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
        }
        if !text.is_empty() {
            std::fs::write("/proc/self/timens_offsets", text).context("writing time namespace offsets")?;
        }
    } else if offsets.is_some_and(|o| !o.is_empty()) {
        bail!("linux.timeOffsets needs a new time namespace");
    }
    Ok(())
}

fn write_id_map(pid: i32, file: &str, mappings: &[LinuxIdMapping]) -> Result<()> {
    let text: String =
        mappings.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, &text).with_context(|| format!("writing {path}: {text:?}"))
}

/// Writes the pid file atomically (engines poll for it).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing pid file {}", path.display()))
}

/// `clone` without CLONE_VM and with a null stack, like fork(2): 0 in the child, its pid here.
fn fork_like_clone(flags: CloneFlags) -> std::io::Result<i64> {
    // SAFETY: berth-runtime is single-threaded, so the child is a complete copy of a consistent
    // process (no lock can be held by another thread). clone without CLONE_VM and with a null
    // stack behaves like fork(2): the child continues on a copy of this stack.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone, (flags.bits() | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret)
}

/// CLONE_INTO_CGROUP (include/uapi/linux/sched.h; libc declares it with a type too small).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3` like [`fork_like_clone`], the child born in the cgroup `dir` is.
fn clone_into_cgroup(flags: CloneFlags, dir: &OwnedFd) -> nix::Result<i64> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero clone_args is valid (no pidfd, tids, stack, tls or set_tid).
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags.bits() as u32 as u64 | CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = dir.as_raw_fd() as u64;
    // SAFETY: as for `fork_like_clone` (single-threaded; no CLONE_VM and no stack: the child
    // continues on a copy of this stack); `args` is a valid clone_args of the size passed.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, std::mem::size_of::<libc::clone_args>())
    };
    if ret < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(ret)
}
