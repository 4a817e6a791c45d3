//! `linux.seccomp` as a container process meets it: exact errnos, SIGSYS kills, argument rules,
//! with and without no_new_privs; the x86 and x32 ABIs; SCMP_ACT_NOTIFY with a real seccomp agent.

use berth_integration::{Bundle, Runtime};
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn run_with(args: &[&str], seccomp: serde_json::Value, no_new_privs: bool) -> (i32, String, String) {
    let rt = Runtime::new();
    let bundle = Bundle::new(args);
    bundle.edit(|c| {
        c["linux"]["seccomp"] = seccomp;
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
    });
    let id = berth_integration::unique_id("seccomp");
    let result = rt.run_container(&bundle, &id);
    rt.assert_gone(&id);
    result
}

#[test]
fn an_errno_rule_returns_exactly_that_errno_with_and_without_no_new_privs() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    });
    for nnp in [true, false] {
        let (code, out, err) = run_with(&["sh", "-c", "mkdir /tmp/x; echo rc=$?"], profile.clone(), nnp);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "rc=1\n");
        assert!(err.contains("Function not implemented"), "nnp={nnp}: {err}");
    }
}

#[test]
fn a_kill_rule_kills_the_process_with_sigsys() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    // `exec` so the shell (the container's init) itself makes the call.
    let (code, out, _) = run_with(&["sh", "-c", "echo before; exec sync"], profile, true);
    assert_eq!(code, 128 + libc::SIGSYS);
    assert_eq!(out, "before\n");
}

#[test]
fn an_argument_rule_allows_and_denies_as_written() {
    // personality(PER_LINUX) is allowed, any other persona is refused with EPERM.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}]
    });
    let (code, out, err) =
        run_with(&["sh", "-c", "linux64 echo linux64-ok; linux32 echo linux32-ok; echo done"], profile, true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "linux64-ok\ndone\n");
    assert!(err.contains("Operation not permitted"), "{err}");
}

/// What a busybox shell needs to run commands, and not getdents64.
const SHELL_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "close",
    "fstat",
    "newfstatat",
    "statx",
    "mmap",
    "munmap",
    "mprotect",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "execve",
    "exit",
    "exit_group",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "prlimit64",
    "getrandom",
    "uname",
    "fcntl",
    "dup2",
    "openat",
    "readlink",
    "getcwd",
    "wait4",
    "access",
    "rseq",
    "prctl",
    "stat",
    "lstat",
    "sysinfo",
    "futex",
    "sigaltstack",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "pipe2",
    "dup3",
    "setpgid",
    "getpgid",
    "getpgrp",
    "kill",
    "lseek",
    "fstatfs",
    "poll",
    "gettid",
    "madvise",
];

#[test]
fn a_default_errno_profile_keeps_only_what_it_allows() {
    let allowed = SHELL_SYSCALLS;
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW"}]
    });
    // busybox ls takes a refused getdents64 for an empty directory: it lists nothing (the rootfs
    // has /bin, /etc, ...), which is what shows the default action applied.
    let (code, out, err) = run_with(&["sh", "-c", "echo shell-ok; ls /; echo done"], profile, true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "shell-ok\ndone\n");
}

#[test]
fn init_makes_no_syscall_but_execve_after_the_filter_with_and_without_no_new_privs() {
    // The profile: init itself resolves the cwd with openat2.
    let deny_openat2 = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO"}]
    });
    // What a static busybox `echo` needs, and nothing init would use to set itself up (no
    // openat2, openat, getcwd, newfstatat, capset, setuid, chdir, prctl).
    let strict = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execve", "exit", "exit_group", "brk", "arch_prctl", "set_tid_address",
                                "mmap", "munmap", "mprotect", "write", "read", "getuid", "geteuid",
                                "getgid", "getegid", "getpid", "rt_sigaction", "rt_sigprocmask"],
                      "action": "SCMP_ACT_ALLOW"}]
    });
    for nnp in [false, true] {
        let (code, _, err) = run_with(&["/bin/true"], deny_openat2.clone(), nnp);
        assert_eq!(code, 0, "openat2 denied, nnp={nnp}: {err}");
        let (code, out, err) = run_with(&["/bin/echo", "strict-ok"], strict.clone(), nnp);
        assert_eq!((code, out.as_str()), (0, "strict-ok\n"), "strict allow-list, nnp={nnp}: {err}");
    }
}

#[test]
fn an_exec_process_makes_no_syscall_but_execve_after_the_filter_either() {
    let strict = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execve", "exit", "exit_group", "brk", "arch_prctl", "set_tid_address",
                                "mmap", "munmap", "mprotect", "write", "read", "getuid", "geteuid",
                                "getgid", "getegid", "getpid", "rt_sigaction", "rt_sigprocmask",
                                "nanosleep", "clock_nanosleep", "restart_syscall"],
                      "action": "SCMP_ACT_ALLOW"}]
    });
    for nnp in [false, true] {
        let rt = Runtime::new();
        let bundle = Bundle::new(&["sleep", "60"]);
        bundle.edit(|c| {
            c["linux"]["seccomp"] = strict.clone();
            c["process"]["noNewPrivileges"] = json!(nnp);
        });
        let id = berth_integration::unique_id("seccompexec");
        rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().expect("utf-8"), &id]);
        let out = rt.run(&["exec", &id, "/bin/echo", "exec-ok"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "nnp={nnp}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "exec-ok\n", "nnp={nnp}");
        rt.ok(&["delete", "--force", &id]);
        rt.assert_gone(&id);
    }
}

#[test]
fn cap_sys_admin_kept_to_install_the_filter_does_not_reach_the_program() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_ERRNO"}]});
    // The bundle's default caps lack CAP_SYS_ADMIN (bit 21): 0x200000 must be clear everywhere.
    let (code, out, err) = run_with(&["grep", "^Cap", "/proc/self/status"], profile, false);
    assert_eq!(code, 0, "{err}");
    for line in out.lines() {
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap_or("0"), 16).expect("hex caps");
        assert_eq!(mask & (1 << 21), 0, "{line}");
    }
}

/// The static ABI probe (`fixtures/abi-mkdir.c`, built by this crate's build.rs).
const ABI_MKDIR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/abi-mkdir"));

/// Puts the ABI probe into the bundle's rootfs as `/abi-mkdir`.
fn add_abi_mkdir(bundle: &Bundle) {
    use std::os::unix::fs::PermissionsExt;
    let path = bundle.rootfs().join("abi-mkdir");
    std::fs::write(&path, ABI_MKDIR).expect("writing /abi-mkdir into the rootfs");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod /abi-mkdir");
}

/// `mkdir` through the x86_64, i386 and x32 ABIs in a container under `seccomp` (none: no
/// `linux.seccomp`): per ABI, what the kernel returned and the program's exit status.
fn mkdir_through_each_abi(seccomp: Option<Value>) -> Vec<(String, String, i32)> {
    let rt = Runtime::new();
    let script = "for abi in x86_64 i386 x32; do r=$(/abi-mkdir $abi /dev/shm/d-$abi); echo \"$abi:$r:$?\"; done";
    let bundle = Bundle::new(&["sh", "-c", script]);
    add_abi_mkdir(&bundle);
    bundle.edit(|c| match seccomp {
        Some(profile) => c["linux"]["seccomp"] = profile,
        None => {
            c["linux"].as_object_mut().expect("linux section").remove("seccomp");
        }
    });
    let id = berth_integration::unique_id("seccomp-abi");
    let (code, out, err) = rt.run_container(&bundle, &id);
    rt.assert_gone(&id);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            assert_eq!(f.len(), 3, "{out}");
            (f[0].to_string(), f[1].to_string(), f[2].parse().expect("exit status"))
        })
        .collect()
}

/// mkdir and mkdirat fail with EPROTO (71) on the ABIs `architectures` lists.
fn eproto_mkdir(architectures: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 71}]
    })
}

const SIGSYS_STATUS: i32 = 128 + libc::SIGSYS;

#[test]
fn listed_x86_and_x32_abis_get_the_profile_and_unlisted_ones_are_killed() {
    let owned = |v: &[(&str, &str, i32)]| -> Vec<(String, String, i32)> {
        v.iter().map(|(a, r, s)| (a.to_string(), r.to_string(), *s)).collect()
    };
    // Control: without a profile i386's mkdir works, and x32's returns ENOSYS on kernels built
    // or booted without x32 (this machine's) and works where x32 is on.
    let control = mkdir_through_each_abi(None);
    assert_eq!(control[..2], owned(&[("x86_64", "0", 0), ("i386", "0", 0)]));
    assert!(
        control[2] == ("x32".into(), "-38".into(), 0) || control[2] == ("x32".into(), "0".into(), 0),
        "{control:?}"
    );

    // Listed, each ABI gets the rule by its own number (the filter acts before the kernel's
    // x32 check, so even a kernel without x32 returns the rule's errno).
    let all = mkdir_through_each_abi(Some(eproto_mkdir(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])));
    assert_eq!(all, owned(&[("x86_64", "-71", 0), ("i386", "-71", 0), ("x32", "-71", 0)]));

    // Not listed, an ABI is killed with SIGSYS, whatever the call.
    let native = mkdir_through_each_abi(Some(eproto_mkdir(&["SCMP_ARCH_X86_64"])));
    assert_eq!(native, owned(&[("x86_64", "-71", 0), ("i386", "", SIGSYS_STATUS), ("x32", "", SIGSYS_STATUS)]));
    let with_x86 = mkdir_through_each_abi(Some(eproto_mkdir(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])));
    assert_eq!(with_x86, owned(&[("x86_64", "-71", 0), ("i386", "-71", 0), ("x32", "", SIGSYS_STATUS)]));
}

/// What a [`SeccompAgent`] saw.
#[derive(Debug)]
enum AgentEvent {
    /// The container process state of one connection, and how many fds came with it.
    State(Value, usize),
    /// A notification for syscall `nr`, answered with a fake success.
    Notified(i32),
}

/// A seccomp agent for SCMP_ACT_NOTIFY, as the OCI spec describes one: it listens on a Unix
/// socket, takes `connections` connections, and on each receives the container process state
/// with the listener fd, then answers every notification with success (0) without doing
/// anything, until the filter has no process left.
struct SeccompAgent {
    dir: tempfile::TempDir,
    events: mpsc::Receiver<AgentEvent>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long the agent waits for anything before giving up (a failing test must not hang).
const AGENT_PATIENCE: Duration = Duration::from_secs(60);

impl SeccompAgent {
    fn start(connections: usize) -> SeccompAgent {
        let dir = tempfile::Builder::new().prefix("berth-it-agent-").tempdir().expect("tempdir");
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let (tx, events) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + AGENT_PATIENCE;
            let mut servers = Vec::new();
            while servers.len() < connections && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let tx = tx.clone();
                        servers.push(std::thread::spawn(move || serve(stream, &tx)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            for s in servers {
                let _ = s.join();
            }
        });
        SeccompAgent { dir, events, thread: Some(thread) }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Waits for the agent's threads to end and returns everything it saw.
    fn finish(mut self) -> Vec<AgentEvent> {
        if let Some(t) = self.thread.take() {
            t.join().expect("agent thread");
        }
        self.events.try_iter().collect()
    }
}

/// One connection: the state and the listener, then notifications until the filter is orphaned.
fn serve(stream: std::os::unix::net::UnixStream, tx: &mpsc::Sender<AgentEvent>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::Read;
    let mut stream = stream;
    stream.set_nonblocking(false).expect("blocking stream");
    stream.set_read_timeout(Some(AGENT_PATIENCE)).expect("read timeout");
    let mut text = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(&mut text)];
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .expect("recvmsg from the runtime");
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: SCM_RIGHTS gave this process these new fds; nothing else owns them.
            fds.extend(received.into_iter().map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }));
        }
    }
    let first = msg.bytes;
    let mut state = text[..first].to_vec();
    // The rest of the state, if any, until the runtime closes the connection.
    stream.read_to_end(&mut state).expect("reading the rest of the state");
    let state: Value = serde_json::from_slice(&state).expect("the container process state is JSON");
    tx.send(AgentEvent::State(state, fds.len())).expect("events channel");
    if let Some(listener) = fds.first() {
        answer_notifications(listener, tx);
    }
}

/// Answers every notification on `listener` with a fake success until no process uses the filter.
fn answer_notifications(listener: &OwnedFd, tx: &mpsc::Sender<AgentEvent>) {
    let deadline = Instant::now() + AGENT_PATIENCE;
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll reads and writes one pollfd, which lives for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n <= 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: every process of the filter has exited.
            return;
        }
        // SAFETY: an all-zero seccomp_notif is what SECCOMP_IOCTL_NOTIF_RECV wants to fill.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into `req`.
        if unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            continue; // ENOENT: the caller died meanwhile
        }
        let mut resp = libc::seccomp_notif_resp { id: req.id, val: 0, error: 0, flags: 0 };
        // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`.
        unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        let _ = tx.send(AgentEvent::Notified(req.data.nr));
    }
}

/// mkdir and mkdirat go to the agent at `agent`.
fn notify_mkdir(agent: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": agent,
        "listenerMetadata": "berth-it",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

/// The states an agent received, each with its fd count; panics on anything unexpected.
fn states_and_notified(events: Vec<AgentEvent>) -> (Vec<(Value, usize)>, Vec<i32>) {
    let mut states = Vec::new();
    let mut notified = Vec::new();
    for e in events {
        match e {
            AgentEvent::State(s, n) => states.push((s, n)),
            AgentEvent::Notified(nr) => notified.push(nr),
        }
    }
    (states, notified)
}

const MKDIR_NRS: [i32; 2] = [libc::SYS_mkdir as i32, libc::SYS_mkdirat as i32];

#[test]
fn a_seccomp_agent_gets_the_state_and_listener_and_its_answer_is_what_the_container_sees() {
    for no_new_privs in [true, false] {
        notify_run(no_new_privs);
    }
}

fn notify_run(no_new_privs: bool) {
    let agent = SeccompAgent::start(1);
    let rt = Runtime::new();
    // The agent says mkdir succeeded, and did nothing: /x does not exist (the root is read-only:
    // a real mkdir would fail). No fd of the runtime (the agent's socket, the listener) reaches
    // the program.
    let bundle = Bundle::new(&["sh", "-c", "mkdir /x; echo rc=$?; ls -d /x; echo ls=$?; ls /proc/$$/fd; :"]);
    // Without no_new_privs the agent is named relative to the bundle, as runc allows.
    let agent_path = if no_new_privs {
        agent.path()
    } else {
        let (dir, bundle_dir) = (agent.path().parent().unwrap().to_path_buf(), bundle.path().to_path_buf());
        assert_eq!(dir.parent(), bundle_dir.parent(), "agent and bundle in the same temp dir");
        Path::new("..").join(dir.file_name().unwrap()).join("agent.sock")
    };
    let profile = notify_mkdir(&agent_path);
    bundle.edit(|c| {
        c["linux"]["seccomp"] = profile;
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
    });
    let id = berth_integration::unique_id("seccomp-notify");
    let (code, out, err) = rt.run_container(&bundle, &id);
    rt.assert_gone(&id);
    let (states, notified) = states_and_notified(agent.finish());
    assert_eq!(code, 0, "no_new_privs={no_new_privs}: {err}");
    assert_eq!(out, "rc=0\nls=1\n0\n1\n2\n", "no_new_privs={no_new_privs}: {err}");
    assert!(err.contains("/x: No such file or directory"), "{err}");
    assert!(!notified.is_empty() && notified.iter().all(|nr| MKDIR_NRS.contains(nr)), "{notified:?}");

    assert_eq!(states.len(), 1);
    let (state, fds) = &states[0];
    assert_eq!(*fds, 1, "one fd with SCM_RIGHTS: {state}");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "berth-it");
    assert!(state["ociVersion"].is_string(), "{state}");
    let pid = state["pid"].as_i64().expect("pid");
    assert!(pid > 1, "{state}");
    let oci = &state["state"];
    assert_eq!(oci["id"], id.as_str());
    // Init loads the filter at `start`: the container is created, its program not yet run.
    assert_eq!(oci["status"], "created");
    assert_eq!(oci["pid"], pid, "the process loading the filter is the container's init");
    assert_eq!(oci["bundle"], bundle.path().to_str().expect("utf-8"));
}

#[test]
fn an_exec_process_sends_its_own_listener_to_the_agent() {
    let agent = SeccompAgent::start(2);
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let profile = notify_mkdir(&agent.path());
    bundle.edit(|c| c["linux"]["seccomp"] = profile);
    let id = berth_integration::unique_id("seccomp-notify-exec");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().expect("utf-8"), &id]);
    let out = rt.run(&["exec", &id, "sh", "-c", "mkdir /y; echo rc=$?; ls -d /y || echo absent"]);
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    let (states, notified) = states_and_notified(agent.finish());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=0\nabsent\n");
    assert!(!notified.is_empty() && notified.iter().all(|nr| MKDIR_NRS.contains(nr)), "{notified:?}");
    assert_eq!(states.len(), 2, "{states:?}");
    let init_pid = states[0].0["pid"].clone();
    let (exec_state, fds) = &states[1];
    assert_eq!(*fds, 1);
    assert_eq!(exec_state["state"]["status"], "running");
    assert_eq!(exec_state["state"]["pid"], init_pid, "the container's pid is init's");
    assert_ne!(exec_state["pid"], init_pid, "the process loading the filter is the exec'd one");
}

#[test]
fn notify_misuse_and_an_absent_agent_fail_create_by_name_and_leave_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nobody = dir.path().join("nobody.sock");
    let notify = |extra: Value| {
        let mut p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        p.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        p
    };
    let cases = [
        (notify(json!({})), "needs linux.seccomp.listenerPath".to_string()),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": nobody}),
            "SCMP_ACT_NOTIFY cannot be the seccomp default action".to_string(),
        ),
        (
            notify(json!({"listenerPath": nobody,
                          "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]})),
            "SCMP_ACT_NOTIFY cannot be used for sendmsg".to_string(),
        ),
        (notify(json!({"listenerPath": nobody})), format!("listenerPath {}", nobody.display())),
    ];
    for (profile, want) in cases {
        let (code, out, err) = run_with(&["echo", "ran"], profile, true);
        assert_ne!(code, 0, "{want}");
        assert_eq!(out, "", "{want}");
        assert!(err.contains(&want), "want {want:?} in: {err}");
    }
}

#[test]
fn an_agent_that_hangs_up_before_start_fails_start_and_nothing_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // Accepts the connection that `create` makes, and closes it at once.
    let hang_up = std::thread::spawn(move || drop(listener.accept().expect("accept")));
    let (code, out, err) = run_with(&["sh", "-c", "mkdir /x; echo ran"], notify_mkdir(&path), true);
    hang_up.join().expect("agent thread");
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("sending the seccomp listener to the agent at"), "{err}");
}

#[test]
fn a_strict_allow_list_needs_neither_sendmsg_nor_close_to_hand_the_listener_over() {
    // The notify filter and its hand-over come before the main filter, which denies everything
    // a static busybox `echo` does not need.
    let agent = SeccompAgent::start(1);
    let mut profile = notify_mkdir(&agent.path());
    profile["defaultAction"] = json!("SCMP_ACT_ERRNO");
    profile["syscalls"].as_array_mut().expect("syscalls").push(json!({
        "names": ["execve", "exit", "exit_group", "brk", "arch_prctl", "set_tid_address", "mmap", "munmap",
                  "mprotect", "write", "read", "getuid", "geteuid", "getgid", "getegid", "getpid",
                  "rt_sigaction", "rt_sigprocmask"],
        "action": "SCMP_ACT_ALLOW"
    }));
    let (code, out, err) = run_with(&["/bin/echo", "strict-ok"], profile, true);
    let (states, _) = states_and_notified(agent.finish());
    assert_eq!((code, out.as_str()), (0, "strict-ok\n"), "{err}");
    assert_eq!(states.len(), 1);
}

#[test]
fn a_profile_denying_seccomp_itself_is_loaded_whole() {
    // The filter that denies seccomp(2) goes in last, or the KILL filter could not follow it.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["seccomp"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let (code, out, err) = run_with(&["sh", "-c", "echo before; exec sync"], profile, true);
    assert_eq!(code, 128 + libc::SIGSYS, "{err}");
    assert_eq!(out, "before\n");
    // The same under a deny-by-default allow-list: its main filter loads before the one that
    // denies seccomp(2), after the KILL one.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "syscalls": [{"names": SHELL_SYSCALLS, "action": "SCMP_ACT_ALLOW"},
                     {"names": ["seccomp"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let (code, out, err) = run_with(&["sh", "-c", "echo before; exec sync"], profile, true);
    assert_eq!(code, 128 + libc::SIGSYS, "{err}");
    assert_eq!(out, "before\n");
}
