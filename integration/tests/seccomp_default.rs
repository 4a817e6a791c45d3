//! berth's default seccomp profile (`berth_runtime::seccomp::default_profile`) as a container meets
//! it: ordinary programs run, namespaces and mounts fail with EPERM unless the profile was resolved
//! for a container holding CAP_SYS_ADMIN. Exact errnos, SIGSYS kills and argument rules of
//! profiles in general are proven in `seccomp.rs`.

use berth_integration::{Bundle, Runtime};
use serde_json::{json, Value};

/// The capability sets that `process.capabilities` has in the busybox bundle.
const CAP_SETS: [&str; 3] = ["bounding", "effective", "permitted"];

/// Adds `caps` to every capability set of the container's process.
fn add_caps(config: &mut Value, caps: &[&str]) {
    for set in CAP_SETS {
        let list = config["process"]["capabilities"][set].as_array_mut().expect("capability set");
        list.extend(caps.iter().map(|c| json!(c)));
    }
}

/// The default profile for the container that `config` describes (resolved for its bounding
/// set), as its `linux.seccomp`.
fn default_profile_for(config: &Value) -> Value {
    let spec = serde_json::from_value(config.clone()).expect("config.json as an OCI spec");
    let seccomp = berth_runtime::seccomp::default_profile::resolve_for_spec(&spec).expect("resolving the profile");
    serde_json::to_value(seccomp).expect("linux.seccomp as JSON")
}

/// Runs `sh -c script` in a busybox container edited by `edit`: (exit code, stdout, stderr).
fn run_script(script: &str, edit: impl FnOnce(&mut Value)) -> (i32, String, String) {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", script]);
    bundle.edit(edit);
    let id = berth_integration::unique_id("seccomp-default");
    let result = rt.run_container(&bundle, &id);
    rt.assert_gone(&id);
    result
}

/// Runs `script` under the default profile resolved for the container's own bounding set, after
/// adding `extra_caps` to the container.
fn run_under_default_profile(script: &str, extra_caps: &[&str]) -> (i32, String, String) {
    run_script(script, |c| {
        add_caps(c, extra_caps);
        c["linux"]["seccomp"] = default_profile_for(c);
    })
}

/// A network namespace, a user namespace (which the kernel allows without capabilities) and a
/// mount, each followed by a `name=status` line.
const NAMESPACE_AND_MOUNT_ATTEMPTS: &str = "unshare -n true; echo unshare-net=$?; \
     unshare -U true; echo unshare-user=$?; \
     mount -t tmpfs none /tmp; echo mount=$?";

/// Asserts that the three attempts failed, each with EPERM.
fn assert_all_refused_with_eperm(code: i32, out: &str, err: &str) {
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unshare-net=1\nunshare-user=1\nmount=1\n", "{err}");
    assert!(err.contains("unshare(0x40000000): Operation not permitted"), "CLONE_NEWNET: {err}");
    assert!(err.contains("unshare(0x10000000): Operation not permitted"), "CLONE_NEWUSER: {err}");
    // busybox mount words EPERM as "permission denied (are you root?)".
    assert!(err.contains("mount: permission denied"), "{err}");
}

#[test]
fn unshare_and_mount_fail_with_eperm_under_the_default_profile() {
    let (code, out, err) = run_under_default_profile(NAMESPACE_AND_MOUNT_ATTEMPTS, &[]);
    assert_all_refused_with_eperm(code, &out, &err);
}

#[test]
fn without_seccomp_a_user_namespace_needs_no_capability_so_its_eperm_comes_from_the_profile() {
    // Control: without seccomp, an unprivileged user namespace is the kernel's to allow, so the
    // EPERM above came from the profile, not from missing capabilities.
    let (code, out, err) = run_script("unshare -U true; echo unshare-user=$?", |_| {});
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unshare-user=0\n", "{err}");
}

#[test]
fn mount_and_unshare_pass_the_default_profile_only_when_resolved_with_cap_sys_admin() {
    // The process holds CAP_SYS_ADMIN either way: only the profile differs.
    let resolved_without = run_script(NAMESPACE_AND_MOUNT_ATTEMPTS, |c| {
        c["linux"]["seccomp"] = default_profile_for(c);
        add_caps(c, &["CAP_SYS_ADMIN"]);
    });
    let (code, out, err) = resolved_without;
    assert_all_refused_with_eperm(code, &out, &err);

    let (code, out, err) = run_under_default_profile(
        &format!("{NAMESPACE_AND_MOUNT_ATTEMPTS}; grep -c ' /tmp tmpfs ' /proc/self/mounts"),
        &["CAP_SYS_ADMIN"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unshare-net=0\nunshare-user=0\nmount=0\n1\n", "{err}");
}

#[test]
fn a_shell_ls_ps_and_linux32_work_under_the_default_profile_with_and_without_no_new_privs() {
    let script = "echo shell-ok; ls /; ps; linux32 uname -m; linux64 uname -m";
    for no_new_privs in [true, false] {
        // Without no_new_privs the filter goes on before the runtime changes user and
        // capabilities, so the profile must also allow those last steps of init.
        let (code, out, err) = run_script(script, |c| {
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            c["linux"]["seccomp"] = default_profile_for(c);
        });
        assert_eq!(code, 0, "no_new_privs={no_new_privs}: {err}");
        assert_eq!(err, "", "no_new_privs={no_new_privs}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"shell-ok"), "{out}");
        for entry in ["bin", "etc", "proc", "sys", "tmp"] {
            assert!(lines.contains(&entry), "ls / lacks {entry}: {out}");
        }
        // ps: its header and the container's init, seen through the container's /proc.
        assert!(lines.iter().any(|l| l.starts_with("PID") && l.contains("COMMAND")), "{out}");
        assert!(lines.iter().any(|l| l.trim_start().starts_with("1 root") && l.contains("sh -c")), "{out}");
        // personality(PER_LINUX32) and personality(PER_LINUX) pass the profile's argument rule.
        assert_eq!(lines[lines.len() - 2..], ["i686", "x86_64"], "{out}");
    }
}

#[test]
fn wget_fetches_from_an_httpd_on_loopback_under_the_default_profile() {
    // CAP_NET_ADMIN to bring up `lo` in the container's own network namespace; the profile
    // gates nothing on it.
    let script = "ip link set lo up || exit 10; \
        mkdir /dev/shm/www && echo hello-over-loopback > /dev/shm/www/file || exit 11; \
        httpd -f -p 127.0.0.1:8080 -h /dev/shm/www & \
        for i in $(seq 100); do wget -qO- http://127.0.0.1:8080/file && exit 0; usleep 50000; done; exit 12";
    let (code, out, err) = run_under_default_profile(script, &["CAP_NET_ADMIN"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello-over-loopback\n", "{err}");
}
