//! `process` in config.json as the container's program sees it: args, env, cwd, user and groups,
//! umask, the five capability sets, rlimits, noNewPrivileges, oomScoreAdj, a terminal sent over
//! `--console-socket`, and `--preserve-fds` (with no other host fd leaking in).

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// Runs the bundle in the foreground; asserts exit 0 and that nothing is left; returns stdout.
fn run_ok(rt: &Runtime, bundle: &Bundle, prefix: &str) -> String {
    let id = unique_id(prefix);
    let (code, stdout, stderr) = rt.run_container(bundle, &id);
    assert_eq!(code, 0, "container {id} failed:\nstdout: {stdout}\nstderr: {stderr}");
    rt.assert_gone(&id);
    stdout
}

/// The value of `Key:` in /proc/<pid>/status text (whitespace normalised to single spaces).
fn status_field(status: &str, key: &str) -> String {
    let line =
        status.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key} in {status}"));
    line[key.len() + 1..].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn set_process(bundle: &Bundle, key: &str, value: serde_json::Value) {
    bundle.edit(|c| c["process"][key] = value);
}

#[test]
fn args_reach_the_program_exactly() {
    let rt = Runtime::new();
    // Spaces, an empty argument and shell metacharacters survive unchanged, argv[0] included.
    // (`; :` keeps sh from exec'ing its last command, so $$ stays the shell.)
    let args = ["sh", "-c", "cat /proc/$$/cmdline; :", "a b", "", "$HOME;*"];
    let bundle = Bundle::new(&args);
    let out = run_ok(&rt, &bundle, "args");
    let want: String = args.iter().map(|a| format!("{a}\0")).collect();
    assert_eq!(out, want);

    // argv[0] without a slash is looked up in the PATH of process.env, not the runtime's.
    let bundle = Bundle::new(&["hostname"]);
    set_process(&bundle, "env", json!(["PATH=/nowhere:/bin"]));
    assert_eq!(run_ok(&rt, &bundle, "args"), "berth\n");
    set_process(&bundle, "env", json!(["PATH=/nowhere"]));
    let id = unique_id("args");
    let (code, _, stderr) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(stderr.contains("hostname") && stderr.contains("not found"), "{stderr}");
    rt.assert_gone(&id);
}

#[test]
fn env_is_exactly_process_env_plus_home_like_runc() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["env"]);
    let env = ["PATH=/bin", "HOME=/home/x", "FOO=bar baz", "EMPTY=", "EQ=a=b"];
    set_process(&bundle, "env", json!(env));
    let out = run_ok(&rt, &bundle, "env");
    let want: String = env.iter().map(|e| format!("{e}\n")).collect();
    assert_eq!(out, want, "the runtime's own environment must not leak in");

    // Without HOME, runc (and crun) set it from the container's /etc/passwd, "/" when the user
    // has no entry there.
    set_process(&bundle, "env", json!(["PATH=/bin", "A=1"]));
    assert_eq!(run_ok(&rt, &bundle, "env"), "PATH=/bin\nA=1\nHOME=/root\n");
    set_process(&bundle, "user", json!({"uid": 1000, "gid": 1000}));
    assert_eq!(run_ok(&rt, &bundle, "env"), "PATH=/bin\nA=1\nHOME=/\n");
}

#[test]
fn cwd_is_entered_and_created_when_missing_like_runc() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["pwd"]);
    assert_eq!(run_ok(&rt, &bundle, "cwd"), "/\n");
    set_process(&bundle, "cwd", json!("/etc"));
    assert_eq!(run_ok(&rt, &bundle, "cwd"), "/etc\n");

    // runc creates a missing cwd (0755, before the root is made read-only); so does berth. The
    // default bundle has a read-only root, so this also proves it is made before that remount.
    assert!(!bundle.rootfs().join("made").exists());
    set_process(&bundle, "cwd", json!("/made/for/me"));
    set_process(&bundle, "user", json!({"uid": 1000, "gid": 1000}));
    assert_eq!(run_ok(&rt, &bundle, "cwd"), "/made/for/me\n");
    let meta = std::fs::metadata(bundle.rootfs().join("made/for/me")).expect("cwd created in the rootfs");
    assert!(meta.is_dir());

    // A cwd through a symlink pointing out of the rootfs stays inside it.
    std::os::unix::fs::symlink("/", bundle.rootfs().join("escape")).unwrap();
    set_process(&bundle, "cwd", json!("/escape/tmp"));
    assert_eq!(run_ok(&rt, &bundle, "cwd"), "/tmp\n");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "id; cat /proc/self/status"]);
    set_process(&bundle, "user", json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20, 65534]}));
    let out = run_ok(&rt, &bundle, "user");
    let (id_line, status) = out.split_once('\n').unwrap();
    assert_eq!(id_line, "uid=1000 gid=1001 groups=10,20,65534(nogroup)");
    assert_eq!(status_field(status, "Uid"), "1000 1000 1000 1000");
    assert_eq!(status_field(status, "Gid"), "1001 1001 1001 1001");
    assert_eq!(status_field(status, "Groups"), "10 20 65534");

    // No additionalGids: no supplementary groups at all (none of the runtime's leak in).
    set_process(&bundle, "user", json!({"uid": 0, "gid": 0}));
    let out = run_ok(&rt, &bundle, "user");
    let (id_line, status) = out.split_once('\n').unwrap();
    assert_eq!(id_line, "uid=0(root) gid=0(root)");
    assert_eq!(status_field(status, "Groups"), "");
}

#[test]
fn umask_is_applied_and_defaults_to_0022_like_runc() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "umask"]);
    set_process(&bundle, "user", json!({"uid": 0, "gid": 0, "umask": 0o027}));
    assert_eq!(run_ok(&rt, &bundle, "umask"), "0027\n");

    // Unset: 0022, whatever umask the runtime was started with.
    set_process(&bundle, "user", json!({"uid": 0, "gid": 0}));
    let id = unique_id("umask");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = rt.command(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    cmd.stdout(out.reopen().unwrap());
    // SAFETY: umask(2) is async-signal-safe and only changes the child's file mode mask.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    assert!(cmd.status().unwrap().success());
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "0022\n");
    rt.assert_gone(&id);
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_NET_RAW: u64 = 1 << 13;
const CAP_SYS_CHROOT: u64 = 1 << 18;
const CAP_AUDIT_WRITE: u64 = 1 << 29;

fn caps_of(out: &str) -> [u64; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(|k| u64::from_str_radix(&status_field(out, k), 16).unwrap_or_else(|e| panic!("{k}: {e}")))
}

#[test]
fn all_five_capability_sets_are_exactly_the_configured_ones() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);

    // Root: the kernel makes effective = permitted at execve for uid 0, so configure them equal.
    set_process(
        &bundle,
        "capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_KILL"]
        }),
    );
    let [inh, prm, eff, bnd, amb] = caps_of(&run_ok(&rt, &bundle, "caps"));
    assert_eq!(bnd, CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE | CAP_SYS_CHROOT | CAP_AUDIT_WRITE, "CapBnd {bnd:x}");
    assert_eq!(prm, CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE, "CapPrm {prm:x}");
    assert_eq!(eff, CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE, "CapEff {eff:x}");
    assert_eq!(inh, CAP_KILL | CAP_NET_BIND_SERVICE, "CapInh {inh:x}");
    assert_eq!(amb, CAP_KILL, "CapAmb {amb:x}");

    // A non-root user keeps capabilities across execve only through the ambient set: its
    // permitted and effective sets after exec are exactly the ambient set. Inheritable is wider
    // than permitted here (valid in runc: all sets are applied while still holding permitted).
    set_process(&bundle, "user", json!({"uid": 1000, "gid": 1000}));
    set_process(
        &bundle,
        "capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        }),
    );
    let [inh, prm, eff, bnd, amb] = caps_of(&run_ok(&rt, &bundle, "caps"));
    assert_eq!(bnd, CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE | CAP_NET_RAW, "CapBnd {bnd:x}");
    assert_eq!(prm, CAP_NET_BIND_SERVICE, "CapPrm {prm:x}");
    assert_eq!(eff, CAP_NET_BIND_SERVICE, "CapEff {eff:x}");
    assert_eq!(inh, CAP_KILL | CAP_NET_BIND_SERVICE, "CapInh {inh:x}");
    assert_eq!(amb, CAP_NET_BIND_SERVICE, "CapAmb {amb:x}");

    // No capabilities at all: every set empty, bounding included.
    set_process(&bundle, "capabilities", json!({}));
    assert_eq!(caps_of(&run_ok(&rt, &bundle, "caps")), [0; 5]);
}

#[test]
fn ambient_caps_that_cannot_be_raised_are_skipped_with_a_warning_like_runc() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);
    // `runc spec`'s (1.1) default: ambient caps, no inheritable ones, so none can be raised.
    let runc_default = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    set_process(
        &bundle,
        "capabilities",
        json!({"bounding": runc_default, "effective": runc_default, "permitted": runc_default,
               "ambient": runc_default}),
    );
    let id = unique_id("ambient");
    let (code, stdout, stderr) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{stderr}");
    let [inh, prm, _, _, amb] = caps_of(&stdout);
    assert_eq!((inh, amb), (0, 0), "CapInh {inh:x} CapAmb {amb:x}");
    assert_eq!(prm, CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE, "CapPrm {prm:x}");
    for cap in runc_default {
        assert!(stderr.contains(&format!("can't raise ambient capability {cap}")), "{cap}: {stderr}");
    }
    rt.assert_gone(&id);
}

#[test]
fn memory_policy_is_the_programs_and_an_exec_processes_numa_policy() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "head -n1 /proc/self/numa_maps; sleep 60"]);
    bundle.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    let id = unique_id("mempolicy");
    let output = rt.create_with_output(&bundle, &id);
    rt.ok(&["start", &id]);
    berth_integration::wait_until("the container's numa_maps line", Duration::from_secs(10), || {
        !output.stdout().is_empty()
    });
    // numa_maps names each mapping's policy; the process-wide one shows on all of them.
    assert!(output.stdout().contains(" bind:0 "), "{}", output.stdout());
    let out = rt.ok(&["exec", &id, "head", "-n1", "/proc/self/numa_maps"]);
    assert!(out.contains(" bind:0 "), "exec: {out}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);

    // What set_mempolicy would refuse is refused at create, by name.
    bundle.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE"}));
    let id = unique_id("mempolicy");
    let (code, _, stderr) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(stderr.contains("memoryPolicy") && stderr.contains("needs nodes"), "{stderr}");
    rt.assert_gone(&id);
}

#[test]
fn rlimit_nofile_soft_and_hard() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits"]);
    set_process(&bundle, "rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 1234, "hard": 4321}]));
    let out = run_ok(&rt, &bundle, "rlimit");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1234", "4321"], "{out}");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["Max", "open", "files", "1234", "4321", "files"]);

    // Above the host's hard limit without CAP_SYS_RESOURCE: a clear error, nothing left.
    let mut host = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut host) }, 0);
    if !has_cap_sys_resource() && host.rlim_max < 1 << 20 {
        let hard = host.rlim_max + 1;
        set_process(&bundle, "rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard}]));
        let id = unique_id("rlimit");
        let (code, _, stderr) = rt.run_container(&bundle, &id);
        assert_ne!(code, 0);
        assert!(stderr.contains("RLIMIT_NOFILE") && stderr.contains(&hard.to_string()), "{stderr}");
        rt.assert_gone(&id);
    }
}

/// Whether this (test) process has CAP_SYS_RESOURCE in its effective set.
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    const CAP_SYS_RESOURCE: u64 = 1 << 24;
    u64::from_str_radix(&status_field(&status, "CapEff"), 16).unwrap() & CAP_SYS_RESOURCE != 0
}

#[test]
fn no_new_privileges_true_and_false() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);
    set_process(&bundle, "noNewPrivileges", json!(true));
    assert_eq!(status_field(&run_ok(&rt, &bundle, "nnp"), "NoNewPrivs"), "1");
    set_process(&bundle, "noNewPrivileges", json!(false));
    assert_eq!(status_field(&run_ok(&rt, &bundle, "nnp"), "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj_raise_and_a_refused_lowering() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    set_process(&bundle, "oomScoreAdj", json!(500));
    assert_eq!(run_ok(&rt, &bundle, "oom"), "500\n");

    // Lowering below the caller's floor needs CAP_SYS_RESOURCE. Ask the kernel (through a
    // throwaway child) whether it would allow it here, and check the runtime agrees.
    let host: i32 = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse().unwrap();
    let low = (host - 500).max(-1000);
    let allowed = std::process::Command::new("/bin/sh")
        .args(["-c", &format!("echo {low} > /proc/self/oom_score_adj")])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    set_process(&bundle, "oomScoreAdj", json!(low));
    let id = unique_id("oom");
    let (code, stdout, stderr) = rt.run_container(&bundle, &id);
    if allowed {
        assert_eq!((code, stdout.as_str()), (0, format!("{low}\n").as_str()), "{stderr}");
    } else {
        assert_ne!(code, 0, "lowering oomScoreAdj to {low} succeeded without CAP_SYS_RESOURCE");
        assert!(stderr.contains("oomScoreAdj") && stderr.contains(&low.to_string()), "{stderr}");
        assert!(stdout.is_empty());
    }
    rt.assert_gone(&id);
}

/// Receives one fd sent with SCM_RIGHTS on `sock`.
fn recv_fd(sock: RawFd) -> OwnedFd {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // Room for one cmsghdr carrying one int, with alignment slack.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at iov, data and control, all live for the whole call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: msg was filled in by recvmsg; CMSG_FIRSTHDR/CMSG_DATA stay inside `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no control message on the console socket");
        assert_eq!(((*cmsg).cmsg_level, (*cmsg).cmsg_type), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        OwnedFd::from_raw_fd(fd)
    }
}

#[test]
fn terminal_over_console_socket_with_console_size() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let bundle = Bundle::new(&["sh", "-c", "tty; stty size; [ -t 0 ] && [ -t 2 ] && echo hi"]);
    set_process(&bundle, "terminal", json!(true));
    set_process(&bundle, "consoleSize", json!({"height": 30, "width": 100}));

    // The engine side: accept, take the pty master, read it until the slave side is gone.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let master = std::fs::File::from(recv_fd(conn.as_raw_fd()));
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut master = master;
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // EIO: every slave fd is closed (the container exited).
                Err(_) => break,
            }
        }
        let _ = tx.send(out);
    });

    let id = unique_id("tty");
    let b = bundle.path().to_str().unwrap();
    rt.ok(&["create", "--bundle", b, "--console-socket", sock_path.to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    let out = rx.recv_timeout(Duration::from_secs(20)).expect("no output from the pty");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text, "/dev/pts/0\r\n30 100\r\nhi\r\n");
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);

    // terminal=true without a socket: refused up front, nothing left.
    let id = unique_id("tty");
    let out = rt.run(&["create", "--bundle", b, &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--console-socket"));
    rt.assert_gone(&id);
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into a valid array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Runs the bundle in the foreground with the write end of a pipe as the runtime's fd 3 and an
/// unrelated file as its fd 4 (both inheritable), passing `extra` flags. Returns (exit code,
/// stdout, what came through the pipe, the pipe's inode).
fn run_with_fds(rt: &Runtime, bundle: &Bundle, extra: &[&str]) -> (i32, String, String, u64) {
    let id = unique_id("fds");
    let (read_end, write_end) = pipe();
    let other = tempfile::tempfile().unwrap();
    let mut st: libc::stat = unsafe_zeroed_stat();
    // SAFETY: fstat writes into a valid stat struct.
    assert_eq!(unsafe { libc::fstat(write_end.as_raw_fd(), &mut st) }, 0);
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", bundle.path().to_str().unwrap(), &id]);
    let mut cmd = rt.command(&args);
    cmd.stdout(out.reopen().unwrap());
    let (w, o) = (write_end.as_raw_fd(), other.as_raw_fd());
    // SAFETY: only dup2 (async-signal-safe) runs between fork and exec; it places the pipe at fd
    // 3 and the file at fd 4 of the child, without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 3) < 0 || libc::dup2(o, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    drop(write_end);
    let mut through = String::new();
    std::fs::File::from(read_end).read_to_string(&mut through).unwrap();
    rt.assert_gone(&id);
    (status.code().unwrap_or(-1), std::fs::read_to_string(out.path()).unwrap(), through, st.st_ino)
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: libc::stat is plain data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

#[test]
fn preserve_fds_passes_exactly_those_fds_and_nothing_else() {
    let rt = Runtime::new();
    // `ls /proc/$$/fd` lists the shell's fds (ls's own directory fd is in ls, not in $$).
    // (`; :` keeps sh from exec'ing a last command, which would make $$ that command.)
    let bundle = Bundle::new(&["sh", "-c", "ls /proc/$$/fd; readlink /proc/$$/fd/3; echo through-fd-3 >&3; :"]);
    let (code, out, through, ino) = run_with_fds(&rt, &bundle, &["--preserve-fds", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, format!("0\n1\n2\n3\npipe:[{ino}]\n"), "fd 4 must not leak, fd 3 must be our pipe");
    assert_eq!(through, "through-fd-3\n");

    // Without --preserve-fds, neither fd gets in.
    let bundle = Bundle::new(&["sh", "-c", "ls /proc/$$/fd; :"]);
    let (code, out, through, _) = run_with_fds(&rt, &bundle, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "0\n1\n2\n");
    assert_eq!(through, "");

    // Preserving an fd that is not open fails before anything is created.
    let id = unique_id("fds");
    let out = rt.run(&["run", "--preserve-fds", "40", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--preserve-fds"), "{out:?}");
    rt.assert_gone(&id);
}

#[test]
fn the_program_starts_with_default_signal_dispositions() {
    let rt = Runtime::new();
    // The program itself (no shell in between: busybox sh as pid 1 ignores SIGQUIT on its own).
    let bundle = Bundle::new(&["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    let id = berth_integration::unique_id("sigdfl");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    // With SIGPIPE ignored (the Rust runtime's own setting), `yes` would see EPIPE and complain.
    let bundle = Bundle::new(&["sh", "-c", "yes | head -n 1"]);
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!((code, out.as_str()), (0, "y\n"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn an_exec_that_fails_after_start_says_why_on_the_containers_stderr() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["/bad-interpreter"]);
    std::fs::write(bundle.rootfs().join("bad-interpreter"), "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(
        bundle.rootfs().join("bad-interpreter"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = berth_integration::unique_id("execfail");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains("exec /bad-interpreter") && err.contains("No such file"), "{err}");
    rt.assert_gone(&id);
}
