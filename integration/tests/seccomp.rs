//! `linux.seccomp` as a container process meets it: exact errnos, SIGSYS kills, argument rules,
//! with and without no_new_privs.

use berth_integration::{Bundle, Runtime};
use serde_json::json;

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

#[test]
fn a_default_errno_profile_keeps_only_what_it_allows() {
    // What a busybox shell needs to run commands, and not getdents64.
    let allowed = [
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

#[test]
fn seccomp_notify_is_refused_by_name_and_leaves_nothing() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock",
                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    let (code, _, err) = run_with(&["true"], profile, true);
    assert_ne!(code, 0);
    assert!(err.contains("notify") || err.contains("NOTIFY"), "{err}");
}
