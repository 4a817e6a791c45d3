//! The container's init, from clone to execve, as one ordered sequence (the order is the
//! contract engines rely on and the security argument): join namespaces → rootfs → devices →
//! createRuntime/createContainer hooks → pivot_root → hostname → sysctls → masked/readonly paths
//! → memory policy → console → rlimits → user/groups → capabilities → no_new_privs → cwd → ready → wait on the
//! exec fifo → startContainer hooks → seccomp → execve. Nothing but execve follows the seccomp
//! filter, with or without no_new_privs (without it, installing the filter needs CAP_SYS_ADMIN,
//! which init keeps permitted and effective until then; execve does not pass it on). With
//! SCMP_ACT_NOTIFY, the notify filter goes first and its listener straight to the seccomp agent
//! (sendmsg on the connection `create` made, then close), before the other filters.

use crate::cgroups::CgroupPaths;
use crate::namespaces::Plan;
use crate::rootfs;
use crate::sync::{Message, SyncSocket};
use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Everything init needs; built by the parent before the clone and inherited by the child.
pub struct InitArgs<'a> {
    /// The container's config.
    pub spec: &'a Spec,
    /// The container's state directory (read once, before pivot_root).
    pub state_dir: &'a Path,
    /// Host path of the rootfs.
    pub rootfs: &'a Path,
    /// Namespace plan.
    pub plan: &'a Plan,
    /// Where init was placed (for cgroup mounts).
    pub cgroup: &'a CgroupPaths,
    /// `O_PATH` fd of the exec fifo (reopened for writing through /proc after pivot_root).
    pub exec_fifo: &'a OwnedFd,
    /// Connected console socket when `process.terminal` is set.
    pub console_socket: Option<OwnedFd>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// `--preserve-fds`: fds 3..3+N pass to the process.
    pub preserve_fds: i32,
    /// `linux.seccomp`, compiled by the parent (a bad profile fails `create` before the clone).
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// The connection to the seccomp agent at `listenerPath`, made by the parent on the host
    /// when the profile uses SCMP_ACT_NOTIFY; the parent sends the state to tell it.
    pub seccomp_agent: Option<OwnedFd>,
}

/// Runs init in the child; only returns on failure (the caller reports it and exits).
pub fn run(args: InitArgs, sync: &SyncSocket) -> Result<Infallible> {
    let mut seccomp = args.seccomp;
    if let Some(socket) = args.seccomp_agent {
        let state = sync.expect_agent_state()?;
        seccomp.as_mut().context("a seccomp agent connection without a profile")?.set_agent(socket, state);
    }
    sync.expect(Message::Go)?;
    // The parent saved the state with init's pid before Go: read it while the host's view of
    // the state dir is still reachable (hooks get it on stdin).
    let hook_state = crate::state::State::load(args.state_dir)?.oci_json(crate::state::Status::Creating);
    let spec = args.spec;
    let linux = spec.linux().as_ref().context("no linux section")?;
    let process = spec.process().as_ref().context("no process")?;
    let memory_policy = linux.memory_policy().as_ref().map(crate::mempolicy::compile).transpose()?;

    // 1. a network namespace made by our clone gets its loopback up (first: the namespace belongs
    //    to the user namespace init is in now, so init has the capability over it); then the
    //    namespaces joined by path (user first); then in a new user namespace become its root.
    if args.plan.new_net {
        crate::namespaces::bring_up_loopback()?;
    }
    for (typ, path) in &args.plan.join {
        crate::namespaces::join(*typ, path)?;
    }
    if args.plan.new_user {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .context("setresgid 0 in the user namespace")?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .context("setresuid 0 in the user namespace")?;
    }
    if args.plan.new_cgroup {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("unsharing the cgroup namespace")?;
    }
    if !args.no_new_keyring {
        join_new_session_keyring()?;
    }

    // 2. rootfs, mounts, devices.
    let propagation = linux.rootfs_propagation().as_deref();
    // Without a mount namespace of its own the container is in the host's: nothing of the
    // host's propagation is touched, and the switch is a chroot.
    let own_mount_ns = crate::namespaces::listed(linux.namespaces().as_deref(), LinuxNamespaceType::Mount);
    if own_mount_ns {
        rootfs::prepare(args.rootfs, propagation)?;
    } else {
        // A mount of the rootfs's own on the host, which root.readonly can make read-only.
        rootfs::bind_onto_itself(args.rootfs)?;
    }
    let has_userns = args.plan.new_user || args.plan.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let ctx = rootfs::MountContext {
        rootfs: args.rootfs,
        user_ns: has_userns,
        cgroup_ns: args.plan.new_cgroup,
        cgroup: args.cgroup,
    };
    rootfs::mount_all(&ctx, spec.mounts().as_deref().unwrap_or_default())?;
    // A /dev bound in from the host is the host's: creating nodes or links there would change it.
    let dev_is_bind = spec.mounts().iter().flatten().any(|m| {
        m.destination() == std::path::Path::new("/dev")
            && (m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        rootfs::create_devices(&ctx, linux.devices().as_deref().unwrap_or_default())?;
    }

    // 3. hooks around the rootfs: prestart/createRuntime in the runtime's namespaces (the
    //    parent), createContainer here, before pivot_root.
    if let Some(hooks) = spec.hooks() {
        sync.send(&Message::RunCreateRuntimeHooks)?;
        sync.expect(Message::HooksDone)?;
        // Before the switch the container's /etc/passwd is not at /: the process env without the
        // HOME it gets later, as runc's init has it at this point.
        let env = process.env().clone().unwrap_or_default();
        let inherit = crate::hooks::Inherit::Process(&env);
        crate::hooks::run_all(
            hooks.create_container().as_deref().unwrap_or_default(),
            &hook_state,
            "createContainer",
            inherit,
        )?;
    }

    // 4. the switch.
    if !own_mount_ns {
        rootfs::chroot(args.rootfs)?;
    } else if args.no_pivot {
        rootfs::move_root(args.rootfs)?;
    } else {
        rootfs::pivot_root(args.rootfs)?;
    }
    if own_mount_ns {
        rootfs::finish_propagation(propagation)?;
    }
    // As runc: a missing cwd is created (root-owned, 0755) before the root can become read-only.
    let new_root = std::fs::File::open("/").context("opening /")?;
    crate::safe_path::mkdir_all_in_root(&new_root, process.cwd(), crate::safe_path::Kind::Dir)
        .with_context(|| format!("creating process.cwd {}", process.cwd().display()))?;
    drop(new_root);
    // Hostname and domainname first, so a kernel.hostname sysctl wins as in runc.
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(name).with_context(|| format!("setting hostname {name}"))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        set_domainname(name)?;
    }
    // sysctls go through the container's /proc/sys, before readonlyPaths makes it read-only.
    if let Some(sysctls) = linux.sysctl() {
        crate::sysctl::apply(sysctls)?;
    }
    rootfs::mask_paths(linux.masked_paths().as_deref().unwrap_or_default())?;
    rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or_default())?;
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        rootfs::readonly_root()?;
    }

    // 5. the NUMA memory policy, which the program inherits through execve.
    if let Some(policy) = &memory_policy {
        policy.apply()?;
    }
    if let Some(p) = linux.personality() {
        crate::personality::apply(crate::personality::compile(p)?)?;
    }

    // 6-9. session, terminal, limits, user, capabilities, cwd, program, fds.
    let prepared = prepare_process(process, args.console_socket, seccomp, args.preserve_fds)?;

    // 10. ready; block until `start` opens the fifo.
    let fifo_path = format!("/proc/self/fd/{}", args.exec_fifo.as_raw_fd());
    sync.send(&Message::Ready)?;
    let fifo = nix::fcntl::open(fifo_path.as_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .context("opening the exec fifo (is /proc mounted in the container?)")?;
    // startContainer hooks run once `start` has opened the fifo and before the write that lets
    // it go on; the fifo (close-on-exec) then stays open until execve, whose EOF tells `start`
    // the program runs, so its poststart hooks come after both.
    if let Some(hooks) = spec.hooks() {
        let mut state = hook_state.clone();
        state["status"] = serde_json::json!("created");
        let env = process_env(process);
        let inherit = crate::hooks::Inherit::Process(&env);
        if let Err(e) = crate::hooks::run_all(
            hooks.start_container().as_deref().unwrap_or_default(),
            &state,
            "startContainer",
            inherit,
        ) {
            // `start` reports it (nobody reads the sync socket any more).
            let msg: String = format!("E{e:#}").chars().take(4000).collect();
            let _ = nix::unistd::write(&fifo, msg.as_bytes());
            return Err(e);
        }
    }
    nix::unistd::write(&fifo, b"0").context("writing to the exec fifo")?;
    // `start` reads until EOF (execve closes the fifo): an error after the "0" still reaches it.
    prepared.exec(|e| {
        let _ = nix::unistd::write(&fifo, format!("E{e:#}").as_bytes());
    })
}

/// A process fully set up except for what must come last: the seccomp filter and the execve.
pub struct PreparedProcess {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    seccomp: Option<crate::seccomp::Compiled>,
}

/// Turns the calling process (already in the container's namespaces and root) into `process`:
/// session and terminal, rlimits, user and groups, capabilities, umask, no_new_privs, cwd, the
/// program to exec, and close-on-exec for every fd above the preserved ones. Shared by init and
/// `exec`. The seccomp filter is left to [`PreparedProcess::exec`]; without no_new_privs,
/// installing it needs CAP_SYS_ADMIN, which is kept (permitted and effective only) until then.
pub fn prepare_process(
    process: &Process,
    console_socket: Option<std::os::fd::OwnedFd>,
    seccomp: Option<crate::seccomp::Compiled>,
    preserve_fds: i32,
) -> Result<PreparedProcess> {
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    nix::unistd::setsid().context("setsid")?;
    // Before the user and capabilities change: the realtime classes need CAP_SYS_ADMIN/NICE.
    if let Some(p) = process.io_priority() {
        crate::io_priority::apply(crate::io_priority::compile(p)?)?;
    }
    if let Some(s) = process.scheduler() {
        crate::scheduler::apply(&crate::scheduler::compile(s)?)?;
    }
    if process.terminal().unwrap_or(false) {
        let socket = console_socket.context("process.terminal is set but no --console-socket was given")?;
        let size = process.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(socket, size)?;
    }
    for rl in process.rlimits().iter().flatten() {
        set_rlimit(rl)?;
    }
    let caps = process.capabilities().clone().unwrap_or_default();
    let keep_for_seccomp = (seccomp.is_some() && !no_new_privs).then_some(caps::Capability::CAP_SYS_ADMIN);
    crate::capabilities::drop_bounding(&caps)?;
    set_user(process)?;
    crate::capabilities::apply(&caps, keep_for_seccomp)?;
    // As runc: 0022 unless set, never the umask of whoever ran the runtime.
    nix::sys::stat::umask(Mode::from_bits_truncate(process.user().umask().unwrap_or(0o022)));
    if no_new_privs {
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setting no_new_privs");
        }
    }
    // cwd inside the root (never a leaked host directory), then the program to run.
    enter_cwd(process.cwd())?;
    let env = process_env(process);
    let argv = process.args().clone().unwrap_or_default();
    let first = argv.first().context("process.args is empty")?;
    let program = find_executable(first, &env)?;
    // No host fd goes past execve: everything above the preserved fds is close-on-exec.
    mark_cloexec_from(3 + preserve_fds)?;
    for fd in 3..3 + preserve_fds {
        let _ = nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
    }
    Ok(PreparedProcess { program, argv: to_cstrings(&argv)?, env: to_cstrings(&env)?, seccomp })
}

/// The program's environment: process.env, plus HOME from the container's /etc/passwd ("/"
/// without an entry) when it has none, as runc and crun do. Call inside the container's root.
fn process_env(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|kv| kv.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    env
}

impl PreparedProcess {
    /// The last steps: default signal dispositions, the seccomp filter, execve. Once the main
    /// filter is in, the only syscall left is execve (and, should it fail, the report and exit),
    /// so a profile needs to allow no more than any program needs to start (the notify filter,
    /// loaded before the others, is followed by the sendmsg and close that hand its listener to
    /// the agent). A failure to install the
    /// filter goes to `on_seccomp_error` too. Returns only on failure, which it also reports on
    /// the process's stderr (the caller may already have been told that all went well).
    pub fn exec(mut self, on_seccomp_error: impl FnOnce(&anyhow::Error)) -> Result<Infallible> {
        reset_signals();
        // Built before the filter goes in: nothing may allocate (brk, mmap) after it.
        let argv = null_terminated(&self.argv);
        let env = null_terminated(&self.env);
        if let Some(filter) = &mut self.seccomp {
            if let Err(e) = filter.apply() {
                on_seccomp_error(&e);
                return Err(e);
            }
        }
        // SAFETY: `program` is NUL-terminated; `argv` and `env` are NULL-terminated arrays of
        // pointers into `self.argv` and `self.env`, which outlive the call.
        unsafe { libc::execve(self.program.as_ptr(), argv.as_ptr(), env.as_ptr()) };
        let err = std::io::Error::last_os_error();
        let msg = format!("berth-runtime: exec {}: {err}\n", self.program.to_string_lossy());
        // SAFETY: fd 2 is the process's stderr; write(2) reads `msg` for its length.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        Err(err).with_context(|| format!("exec {}", self.program.to_string_lossy()))
    }
}

/// The NULL-terminated pointer array execve takes; the pointers borrow from `items`.
fn null_terminated(items: &[CString]) -> Vec<*const libc::c_char> {
    items.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// The program starts with default signal dispositions and an empty mask, whatever the runtime
/// had (Rust ignores SIGPIPE, and execve keeps ignored signals ignored).
fn reset_signals() {
    // The raw syscall: glibc's signal() refuses 32 and 33, which it reserves for itself.
    // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an empty mask.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads `default` (8 is the kernel's sigset size); SIG_DFL installs
        // no handler code.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, &default, std::ptr::null_mut::<libc::sigaction>(), 8) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for fds 3..3+preserve_fds that the caller of the runtime handed over and
    // that stay open for the life of this process (until execve).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// The home directory of `uid` in the container's /etc/passwd, or "/".
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn to_cstrings(items: &[String]) -> Result<Vec<CString>> {
    items.iter().map(|s| CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains a NUL byte"))).collect()
}

/// Resolves argv[0] against PATH from the process env, like execvp, in the container's root.
/// Errors use runc's (Go's exec.LookPath) wording, cause included: `exec: "/x": stat /x: no
/// such file or directory`, `exec: "/x": permission denied`, `exec: "/x": is a directory`.
fn find_executable(name: &str, env: &[String]) -> Result<CString> {
    if name.contains('/') {
        if let Err(cause) = check_executable(Path::new(name)) {
            bail!("exec: {name:?}: {cause}");
        }
        return Ok(CString::new(name)?);
    }
    let path_var = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = PathBuf::from(dir).join(name);
        if check_executable(&candidate).is_ok() {
            return Ok(CString::new(candidate.into_os_string().into_encoded_bytes())?);
        }
    }
    bail!("exec: {name:?}: executable file not found in $PATH")
}

/// Why `path` cannot be executed, in Go's words (what runc prints), or Ok.
fn check_executable(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("stat {}: {}", path.display(), os_error_text(&e)))?;
    if meta.is_dir() {
        return Err(os_error_text(&std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| "path contains a NUL byte".to_string())?;
    // SAFETY: access(2) on a valid NUL-terminated path. It also knows ACLs and the caller's ids.
    let runnable = meta.permissions().mode() & 0o111 != 0 && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    if !runnable {
        return Err(os_error_text(&std::io::Error::from_raw_os_error(libc::EACCES)));
    }
    Ok(())
}

/// An OS error as Go prints it: the strerror text in lower case, without "(os error N)".
fn os_error_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => err.to_string(),
    }
}

fn enter_cwd(cwd: &Path) -> Result<()> {
    let root = std::fs::File::open("/").context("opening /")?;
    let dir = crate::safe_path::open_in_root(&root, cwd, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .with_context(|| format!("process.cwd {}", cwd.display()))?;
    nix::unistd::fchdir(&dir).with_context(|| format!("chdir {}", cwd.display()))?;
    // getcwd fails (ENOENT, "(unreachable)") when the cwd is outside our root.
    let now = nix::unistd::getcwd().context("cwd is not reachable inside the container")?;
    if !now.is_absolute() {
        bail!("cwd {} is outside the container", now.display());
    }
    Ok(())
}

fn set_user(process: &Process) -> Result<()> {
    let user = process.user();
    let gids: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    // SAFETY: prctl(PR_SET_KEEPCAPS, 1) takes no pointers; it keeps permitted caps across setuid.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("PR_SET_KEEPCAPS");
    }
    nix::unistd::setgroups(&gids).context("setgroups")?;
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).with_context(|| format!("setting gid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).with_context(|| format!("setting uid {}", user.uid()))?;
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("PR_SET_KEEPCAPS");
    }
    Ok(())
}

fn set_rlimit(rl: &oci_spec::runtime::PosixRlimit) -> Result<()> {
    let name = serde_json::to_value(rl.typ()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let resource = rlimit_number(&name).with_context(|| format!("unknown rlimit {name}"))?;
    let lim = libc::rlimit { rlim_cur: rl.soft(), rlim_max: rl.hard() };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setrlimit {name} soft={} hard={}", rl.soft(), rl.hard()));
    }
    Ok(())
}

/// setrlimit's resource argument: an enum in glibc's headers, an int in musl's.
#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

fn rlimit_number(name: &str) -> Option<RlimitResource> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setting domainname {name}"));
    }
    Ok(())
}

/// A fresh session keyring, so the container does not share the host's keys.
fn join_new_session_keyring() -> Result<()> {
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NULL name creates an anonymous keyring.
    let r = unsafe {
        libc::syscall(libc::SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, std::ptr::null::<libc::c_char>())
    };
    if r < 0 {
        let err = std::io::Error::last_os_error();
        // Kernels without keyrings (or with keyring quotas exhausted in a user ns) are fine.
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EDQUOT) | Some(libc::EACCES)) {
            return Err(err).context("joining a new session keyring");
        }
    }
    Ok(())
}

/// Marks every fd >= `from` close-on-exec.
pub fn mark_cloexec_from(from: i32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let r = unsafe {
        libc::syscall(libc::SYS_close_range, from as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC)
    };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= from)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on an fd number only changes its flags; a closed fd gives EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
