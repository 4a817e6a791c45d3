//! `exec`: run another process in a running container. It joins every namespace of the
//! container's init (through `/proc/<init>/ns/*`; pid and time by this process before the fork,
//! since those apply to children), is put in the container's cgroup, and becomes its process
//! through the same steps as init (`prepare_process`: user, capabilities, seccomp, cwd, fds).

use super::Container;
use crate::state::Status;
use crate::sync::{Message, SyncSocket};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde_json::{json, Value};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What `exec` takes from the command line.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Container id.
    pub id: String,
    /// A process.json that replaces the container's process entirely.
    pub process_file: Option<PathBuf>,
    /// The command (when no process.json).
    pub args: Vec<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Where to send the pty master.
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs.
    pub detach: bool,
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// Extra `KEY=VALUE` environment (overriding the container's).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    /// Extra capabilities (`CAP_NET_ADMIN`).
    pub caps: Vec<String>,
    /// Set no_new_privs.
    pub no_new_privs: bool,
    /// Pass fds 3..3+N to the process.
    pub preserve_fds: i32,
    /// `--cgroup`: sub-cgroups of the container's to run in.
    pub cgroups: Vec<crate::cgroups::ExecCgroup>,
    /// `--ignore-paused`: exec into a paused container (the process runs once it is resumed).
    pub ignore_paused: bool,
}

/// The process to run, from process.json or the container's process with the flags applied.
fn build_process(spec: &Spec, opts: &ExecOptions) -> Result<Process> {
    let mut process: Value = match &opts.process_file {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => {
            if opts.args.is_empty() {
                bail!("exec needs a command (or --process process.json)");
            }
            let mut p = serde_json::to_value(spec.process().as_ref().context("config has no process")?)?;
            p["args"] = json!(opts.args);
            p["terminal"] = json!(opts.tty);
            p
        }
    };
    if opts.tty {
        process["terminal"] = json!(true);
    }
    if !opts.env.is_empty() {
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process["env"] = json!(env);
    }
    if let Some(cwd) = &opts.cwd {
        process["cwd"] = json!(cwd);
    }
    if let Some(user) = &opts.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let uid: u32 = uid.parse().with_context(|| format!("--user {user}: uid must be a number"))?;
        process["user"]["uid"] = json!(uid);
        if let Some(g) = gid {
            let gid: u32 = g.parse().with_context(|| format!("--user {user}: gid must be a number"))?;
            process["user"]["gid"] = json!(gid);
        }
    }
    for cap in &opts.caps {
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut process["capabilities"][set];
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(a) = list.as_array_mut() {
                if !a.iter().any(|c| c == cap) {
                    a.push(json!(cap));
                }
            }
        }
    }
    if opts.no_new_privs {
        process["noNewPrivileges"] = json!(true);
    }
    let process: Process = serde_json::from_value(process).context("the process to exec is not a valid OCI process")?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("the process to exec has no args");
    }
    if process.apparmor_profile().as_ref().is_some_and(|p| !p.is_empty()) {
        bail!("an AppArmor profile for exec is not supported by berth-runtime yet");
    }
    Ok(process)
}

/// The namespaces of init that differ from ours, user first (it grants the rights to join the
/// rest), as open files.
fn init_namespaces(spec: &Spec, pid: i32) -> Result<Vec<(LinuxNamespaceType, std::fs::File)>> {
    let listed = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    let mut out = Vec::new();
    for ns in listed {
        let name = crate::namespaces::proc_name(ns.typ());
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(format!("/proc/self/ns/{name}"))) {
            (Ok(a), Ok(b)) => std::os::unix::fs::MetadataExt::ino(&a) == std::os::unix::fs::MetadataExt::ino(&b),
            (Err(e), _) => return Err(e).with_context(|| format!("reading {}", theirs.display())),
            _ => false,
        };
        if !same {
            out.push((ns.typ(), crate::namespaces::open(ns.typ(), &theirs)?));
        }
    }
    out.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    Ok(out)
}

/// Runs the exec; returns the exit code to exit with (0 when detached).
pub fn exec(root: &Path, opts: &ExecOptions) -> Result<i32> {
    let c = Container::open(root, &opts.id)?;
    let paused = c.status() == Status::Paused;
    match c.status() {
        Status::Running | Status::Created => {}
        // As runc 1.2: the new process joins the frozen cgroup, so this waits for a resume.
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => bail!("cannot exec in a paused container {} (use --ignore-paused to override)", opts.id),
        status => bail!("cannot exec in container {}: it is {status}", opts.id),
    }
    let spec: Spec = serde_json::from_value(c.state.config.clone()).context("reading the saved config")?;
    let process = build_process(&spec, opts)?;
    let terminal = process.terminal().unwrap_or(false);
    let own_pty = terminal && opts.console_socket.is_none();
    if own_pty && opts.detach {
        bail!("exec --detach with a terminal needs --console-socket (someone must hold the pty)");
    }
    if !terminal && opts.console_socket.is_some() {
        bail!("--console-socket was given but no terminal was asked for (-t)");
    }
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::compile).transpose()?;
    // Every exec'd process loads the filter anew: its own connection to the seccomp agent, made
    // here on the host, and its own listener.
    let seccomp_agent = seccomp
        .as_ref()
        .and_then(|s| s.listener_path())
        .map(|p| crate::seccomp::connect_agent(&c.state.bundle, p))
        .transpose()?;
    let memory_policy =
        spec.linux().as_ref().and_then(|l| l.memory_policy().as_ref()).map(crate::mempolicy::compile).transpose()?;
    let affinity = crate::cpu_affinity::Plan::of(&process)?;
    let namespaces = init_namespaces(&spec, c.state.pid)?;
    // Without a mount namespace of its own, the container is its init's chroot in the host's:
    // the process enters that root (there is no mount namespace to join).
    let own_mount_ns = crate::namespaces::listed(
        spec.linux().as_ref().and_then(|l| l.namespaces().as_deref()),
        LinuxNamespaceType::Mount,
    );
    let root = if own_mount_ns {
        None
    } else {
        let path = format!("/proc/{}/root", c.state.pid);
        Some(std::fs::File::open(&path).with_context(|| format!("opening {path}"))?)
    };
    let (ours, theirs): (Option<OwnedFd>, Option<OwnedFd>) = if own_pty {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the console")?;
        (Some(a), Some(b))
    } else {
        (None, opts.console_socket.as_deref().map(crate::console::connect_socket).transpose()?)
    };
    // pid and time namespaces apply to children: enter them here, then fork.
    for (typ, file) in &namespaces {
        if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            nix::sched::setns(file, crate::namespaces::flag(*typ))
                .with_context(|| format!("joining the container's {typ:?} namespace"))?;
        }
    }
    let (parent_sock, child_sock) = crate::sync::pair()?;
    // SAFETY: berth-runtime is single-threaded here, so the child is a consistent copy.
    let pid = match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop(parent_sock);
            let seccomp = SeccompSetup { compiled: seccomp, agent: seccomp_agent };
            let err = match child(
                &namespaces,
                root.as_ref(),
                process,
                theirs,
                seccomp,
                memory_policy,
                opts.preserve_fds,
                &child_sock,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child_sock.send(&Message::Error(format!("{err:#}")));
            // SAFETY: end the child without running the parent's exit handlers.
            unsafe { libc::_exit(127) }
        }
        nix::unistd::ForkResult::Parent { child } => child.as_raw(),
    };
    drop(child_sock);
    // The child's copy alone: the agent sees the connection end when the child has sent the state.
    drop(seccomp_agent);
    let mut agent_state = seccomp
        .as_ref()
        .filter(|s| s.listener_path().is_some())
        .map(|s| crate::seccomp::process_state(&c.state.oci_json(c.status()), pid, s.listener_metadata()));
    let mut c = Some(c);
    let setup = (|| -> Result<()> {
        let container = c.as_ref().context("the container lock is gone")?;
        let child_pid = nix::unistd::Pid::from_raw(pid);
        affinity.before_cgroup(child_pid)?;
        if opts.cgroups.is_empty() {
            container.state.cgroup.join_exec(pid, container.state.pid)?;
        } else {
            container.state.cgroup.join_exec_sub(pid, &opts.cgroups)?;
        }
        affinity.after_cgroup(child_pid)?;
        if paused {
            // The process is frozen with the container until someone resumes it, which needs
            // the lock (dropping it unlocks the flock the child inherited too).
            c = None;
        }
        // Held from before the process runs: a signal sent meanwhile is forwarded (the child
        // was forked with the mask it had).
        if !opts.detach {
            super::run::block_forwarded_signals()?;
        }
        if let Some(state) = agent_state.take() {
            parent_sock.send(&Message::AgentState(state))?;
        }
        parent_sock.send(&Message::Go)?;
        parent_sock.expect(Message::Ready)?;
        if let Some(pid_file) = &opts.pid_file {
            super::create::write_pid_file(pid_file, pid)?;
        }
        Ok(())
    })();
    if let Err(e) = setup {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    // The process runs: let other commands (kill, state) at the container while we wait.
    drop(c);
    if opts.detach {
        return Ok(0);
    }
    let master = ours.as_ref().map(crate::console::receive_master).transpose()?;
    super::run::wait_forwarding(pid, master.as_ref())
}

/// The container's compiled profile and, when it uses SCMP_ACT_NOTIFY, the agent connection.
struct SeccompSetup {
    compiled: Option<crate::seccomp::Compiled>,
    agent: Option<OwnedFd>,
}

#[allow(clippy::too_many_arguments)]
fn child(
    namespaces: &[(LinuxNamespaceType, std::fs::File)],
    root: Option<&std::fs::File>,
    process: Process,
    console: Option<OwnedFd>,
    seccomp: SeccompSetup,
    memory_policy: Option<crate::mempolicy::Compiled>,
    preserve_fds: i32,
    sync: &SyncSocket,
) -> Result<std::convert::Infallible> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers: container processes must not reach
    // our memory or /proc entries before the execve.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut compiled = seccomp.compiled;
    if let Some(socket) = seccomp.agent {
        let state = sync.expect_agent_state()?;
        compiled.as_mut().context("a seccomp agent connection without a profile")?.set_agent(socket, state);
    }
    sync.expect(Message::Go)?;
    for (typ, file) in namespaces {
        if !matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            nix::sched::setns(file, crate::namespaces::flag(*typ))
                .with_context(|| format!("joining the container's {typ:?} namespace"))?;
        }
    }
    if let Some(root) = root {
        nix::unistd::fchdir(root).context("entering the container's root")?;
        nix::unistd::chroot(".").context("entering the container's root (it has no mount namespace)")?;
    }
    if namespaces.iter().any(|(t, _)| *t == LinuxNamespaceType::User) {
        let zero = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(zero, zero, zero).context("setresuid 0 in the user namespace")?;
    }
    if let Some(policy) = &memory_policy {
        policy.apply()?;
    }
    let prepared = crate::init::prepare_process(&process, console, compiled, preserve_fds)?;
    sync.send(&Message::Ready)?;
    // Nobody reads the sync socket after Ready: a seccomp failure goes to the process's stderr.
    prepared.exec(|e| {
        let msg = format!("berth-runtime: exec: {e:#}\n");
        // SAFETY: fd 2 is the process's stderr; write(2) reads `msg` for its length.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    })
}
