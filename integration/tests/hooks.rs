//! OCI hooks as the hooks themselves see them: each runs at its moment in create/start/delete,
//! gets the container state on stdin and exactly its own args and env, in the right namespaces
//! (createContainer and startContainer in the container's; startContainer resolved inside the
//! rootfs), and failures and timeouts fail the operation or only warn, as the spec says.

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Records everything about one hook run into LOGDIR: its stdin, environ, argv, namespaces and
/// executable, the cmdline of the state's pid, then appends NAME to LOGDIR/log (after sleeping
/// DELAY seconds when given). Runs under the host's dash and under the container's busybox sh.
const RECORDER: &str = r#"#!/bin/sh
# usage: record NAME LOGDIR [DELAY]
name=$1 dir=$2
cat > "$dir/state-$name.json"
# The shell opens its own /proc/self files: $$ is no use to createContainer, whose pid namespace
# is the container's while /proc is still the host's.
exec 3< /proc/self/environ 4< /proc/self/cmdline 5< /proc/self/exe
tr '\0' '\n' <&3 > "$dir/env-$name"
cat <&4 > "$dir/argv-$name"
readlink /proc/self/fd/5 > "$dir/exe-$name"
exec 3<&- 4<&- 5<&-
readlink /proc/self/ns/mnt > "$dir/mntns-$name"
readlink /proc/self/ns/pid > "$dir/pidns-$name"
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$dir/state-$name.json")
if [ "${pid:-0}" -gt 0 ]; then tr '\0' ' ' < "/proc/$pid/cmdline" > "$dir/target-$name"; fi
if [ -n "$3" ]; then sleep "$3"; fi
echo "$name" >> "$dir/log"
"#;

/// A host directory the hooks log into (bind-mounted at /hooklog in the container) and the
/// recorder script, both on the host and at /record in the rootfs.
struct HookLog {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl HookLog {
    fn new(bundle: &Bundle) -> HookLog {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("berth-it-hooks-").tempdir().unwrap();
        let script = dir.path().join("record");
        for path in [script.clone(), bundle.rootfs().join("record")] {
            std::fs::write(&path, RECORDER).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        bundle.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/hooklog", "type": "bind", "source": dir.path(), "options": ["rbind", "rw"]
            }))
        });
        HookLog { dir, script }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A host-side hook recording as `name`: /bin/sh with its own argv[0] and env.
    fn host_hook(&self, name: &str) -> Value {
        json!({
            "path": "/bin/sh",
            "args": [format!("hook-{name}"), self.script, name, self.path()],
            "env": host_env(name),
        })
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("log")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn read(&self, what: &str, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{what}-{name}")))
            .unwrap_or_else(|e| panic!("{what}-{name}: {e} (did the {name} hook run?)"))
    }

    fn state(&self, name: &str) -> Value {
        serde_json::from_str(&self.read("state", &format!("{name}.json")))
            .unwrap_or_else(|e| panic!("state of {name}: {e}"))
    }
}

fn host_env(name: &str) -> Vec<String> {
    vec!["PATH=/usr/bin:/bin".into(), format!("HOOK={name}"), "SPACED=a b=c".into()]
}

fn ns(pid: &str, which: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{which}")).unwrap().to_string_lossy().into_owned()
}

/// Each string followed by a NUL, as in /proc/<pid>/cmdline.
fn nul_joined(items: &[&str]) -> String {
    items.iter().map(|a| format!("{a}\0")).collect()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_hook_runs_at_its_moment_with_state_args_env_and_namespaces() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let log = HookLog::new(&bundle);
    let hooks = json!({
        "prestart": [log.host_hook("prestart")],
        "createRuntime": [log.host_hook("createRuntime")],
        "createContainer": [log.host_hook("createContainer")],
        // Resolved inside the container: /record exists only in the rootfs, and it runs with the
        // container's /bin/sh. It dawdles, so a start that does not wait for it is caught.
        "startContainer": [{
            "path": "/record",
            "args": ["ignored", "startContainer", "/hooklog", "0.3"],
            "env": ["PATH=/bin", "HOOK=startContainer"],
        }],
        "poststart": [log.host_hook("poststart")],
        "poststop": [log.host_hook("poststop")],
    });
    bundle.edit(|c| c["hooks"] = hooks);
    let id = unique_id("hooks");
    let b = bundle.path().to_str().unwrap();

    rt.ok(&["create", "--bundle", b, &id]);
    assert_eq!(log.log(), ["prestart", "createRuntime", "createContainer"]);
    let state: Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let bundle_dir = std::fs::canonicalize(bundle.path()).unwrap();

    rt.ok(&["start", &id]);
    // startContainer finished before the program ran, poststart after it and before start
    // returned: the pid poststart was given already runs the user's program.
    let all = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"];
    assert_eq!(log.log(), all);
    assert_eq!(log.read("target", "poststart"), "sleep 60 ");

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    rt.ok(&["delete", &id]);
    assert_eq!(log.log(), [&all[..], &["poststop"]].concat());
    rt.assert_gone(&id);

    // The state on stdin.
    for (name, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let st = log.state(name);
        assert_eq!(st["id"], id.as_str(), "{name}: {st}");
        assert_eq!(st["status"], status, "{name}: {st}");
        assert_eq!(st["bundle"], bundle_dir.to_str().unwrap(), "{name}: {st}");
        assert_eq!(st["ociVersion"].as_str().map(|v| v.starts_with("1.")), Some(true), "{name}: {st}");
        if name != "poststop" {
            assert_eq!(st["pid"], pid, "{name}: {st}");
        }
    }

    // Exactly their own argv and env: nothing of the runtime's environment.
    for name in ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] {
        let (script, dir) = (log.script.to_str().unwrap(), log.path().to_str().unwrap());
        let argv = nul_joined(&[&format!("hook-{name}"), script, name, dir]);
        assert_eq!(log.read("argv", name), argv, "{name}");
        let env: String = host_env(name).iter().map(|e| format!("{e}\n")).collect();
        assert_eq!(log.read("env", name), env, "{name}");
    }
    // A script path: the kernel runs its #! interpreter with the script's path as argv[0].
    assert_eq!(
        log.read("argv", "startContainer"),
        nul_joined(&["/bin/sh", "/record", "startContainer", "/hooklog", "0.3"])
    );
    assert_eq!(log.read("env", "startContainer"), "PATH=/bin\nHOOK=startContainer\n");

    // Namespaces: the runtime's for createRuntime/prestart/poststart/poststop, the container's
    // mount and pid namespaces for createContainer and startContainer.
    let host_mnt = ns("self", "mnt");
    let host_pid = ns("self", "pid");
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(log.read("mntns", name).trim(), host_mnt, "{name}");
        assert_eq!(log.read("pidns", name).trim(), host_pid, "{name}");
        assert_eq!(log.read("exe", name).trim(), std::fs::canonicalize("/bin/sh").unwrap().to_str().unwrap());
    }
    for name in ["createContainer", "startContainer"] {
        let (mnt, pidns) = (log.read("mntns", name), log.read("pidns", name));
        assert_ne!(mnt.trim(), host_mnt, "{name} ran in the host mount namespace");
        assert_ne!(pidns.trim(), host_pid, "{name} ran in the host pid namespace");
    }
    assert_eq!(log.read("mntns", "createContainer"), log.read("mntns", "startContainer"));
    // startContainer's shell is the container's busybox, seen at its path inside the rootfs.
    assert_eq!(log.read("exe", "startContainer").trim(), "/bin/busybox");
}

#[test]
fn hooks_without_env_inherit_what_runc_gives_them_and_an_empty_env_stays_empty() {
    // runc runs hooks with Go's exec and the hook's Env: absent (nil) inherits, as Go does.
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let log = HookLog::new(&bundle);
    let without_env = |name: &str| {
        let mut hook = log.host_hook(name);
        hook.as_object_mut().unwrap().remove("env");
        hook
    };
    let mut empty = log.host_hook("empty");
    empty["env"] = json!([]);
    // startContainer runs the rootfs's /record with the container's busybox sh.
    let in_container = json!({ "path": "/record", "args": ["record", "startContainer", "/hooklog"] });
    bundle.edit(|c| {
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "FROM_PROCESS=yes"]);
        c["hooks"] = json!({
            "prestart": [without_env("prestart"), empty],
            "createContainer": [without_env("createContainer")],
            "startContainer": [in_container],
            "poststop": [without_env("poststop")],
        });
    });
    let id = unique_id("hookenv");
    let b = bundle.path().to_str().unwrap();
    let out = rt.command(&["run", "--bundle", b, &id]).env("FROM_RUNTIME", "yes").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env = |name: &str| -> Vec<String> { log.read("env", name).lines().map(str::to_string).collect() };
    // In the runtime's namespaces: the runtime's environment.
    for name in ["prestart", "poststop"] {
        let env = env(name);
        assert!(env.contains(&"FROM_RUNTIME=yes".to_string()), "{name}: {env:?}");
        assert!(!env.contains(&"FROM_PROCESS=yes".to_string()), "{name}: {env:?}");
    }
    // Run by the container's init: the process's environment, with HOME once the root is the
    // container's (startContainer).
    for name in ["createContainer", "startContainer"] {
        let env = env(name);
        assert!(env.contains(&"FROM_PROCESS=yes".to_string()), "{name}: {env:?}");
        assert!(env.contains(&"PATH=/usr/bin:/bin".to_string()), "{name}: {env:?}");
        assert!(!env.iter().any(|kv| kv.starts_with("FROM_RUNTIME=")), "{name}: {env:?}");
    }
    assert!(env("startContainer").contains(&"HOME=/root".to_string()), "{:?}", env("startContainer"));
    // "env": [] is an empty environment (the shell may add PWD and friends; nothing inherited).
    let empty = env("empty");
    assert!(!empty.iter().any(|kv| kv.starts_with("FROM_") || kv.starts_with("PATH=")), "{empty:?}");
    rt.assert_gone(&id);
}

/// A hook that fails with exit status 3.
fn failing_hook() -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", "exit 3"] })
}

#[test]
fn a_failing_create_hook_fails_create_names_the_hook_and_leaves_nothing() {
    let rt = Runtime::new();
    for phase in ["prestart", "createRuntime", "createContainer"] {
        let bundle = Bundle::new(&["true"]);
        let log = HookLog::new(&bundle);
        // The failing hook comes first: the one after it must not run either.
        bundle.edit(|c| c["hooks"] = json!({ phase: [failing_hook(), log.host_hook("after")] }));
        let id = unique_id("hookfail");
        let out = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{phase}: create succeeded");
        assert!(err.contains(&format!("{phase} hook /bin/sh")) && err.contains("exit status: 3"), "{phase}: {err}");
        assert!(log.log().is_empty(), "{phase}: hooks after the failing one ran");
        rt.assert_gone(&id);
    }
}

/// True while some process runs `sleep <marker>`.
fn sleeper_alive(marker: &str) -> bool {
    let want = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes())
            && !std::fs::read_to_string(e.path().join("stat")).unwrap_or_default().contains(") Z ")
    })
}

#[test]
fn a_hook_over_its_timeout_is_killed_and_fails_create() {
    let rt = Runtime::new();
    // createRuntime runs in the runtime, createContainer in the container's init: both enforce it.
    for (phase, marker) in [("createRuntime", "917"), ("createContainer", "918")] {
        let bundle = Bundle::new(&["true"]);
        let hook = json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("exec sleep {marker}")], "timeout": 1 });
        bundle.edit(|c| c["hooks"] = json!({ phase: [hook] }));
        let id = unique_id("hooktimeout");
        let started = Instant::now();
        let out = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let took = started.elapsed();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{phase}: create succeeded");
        assert!(err.contains(&format!("{phase} hook")) && err.contains("timed out after 1s"), "{phase}: {err}");
        assert!(took < Duration::from_secs(10), "{phase}: create took {took:?}");
        assert!(!sleeper_alive(marker), "{phase}: the hook was not killed");
        rt.assert_gone(&id);
    }
}

#[test]
fn a_failing_start_container_hook_fails_start_before_the_program_runs() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "echo ran > /hooklog/program-ran"]);
    let log = HookLog::new(&bundle);
    let poststart = log.host_hook("poststart");
    bundle.edit(|c| c["hooks"] = json!({ "startContainer": [failing_hook()], "poststart": [poststart] }));
    let id = unique_id("hookstart");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let out = rt.run(&["start", &id]);
    assert!(!out.status.success(), "start succeeded with a failing startContainer hook");
    let err = stderr_of(&out);
    assert!(err.contains("startContainer hook /bin/sh") && err.contains("exit status: 3"), "{err}");
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    assert!(!log.path().join("program-ran").exists(), "the program ran");
    assert!(log.log().is_empty(), "poststart ran after a failed start");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn start_failing_in_a_start_container_hook_returns_once_the_container_has_stopped() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["hooks"] = json!({ "startContainer": [failing_hook()] }));
    // The race was ~1 in 15: delete right after the failed start saw init still running.
    for _ in 0..30 {
        let id = unique_id("hookstartdel");
        rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let out = rt.run(&["start", &id]);
        assert!(!out.status.success(), "start succeeded with a failing startContainer hook");
        assert_eq!(rt.status(&id), "stopped");
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id);
    }
}

#[test]
fn poststart_and_poststop_failures_only_warn_and_later_hooks_still_run() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let log = HookLog::new(&bundle);
    let hooks = json!({
        "poststart": [failing_hook(), log.host_hook("poststart")],
        "poststop": [failing_hook(), log.host_hook("poststop")],
    });
    bundle.edit(|c| c["hooks"] = hooks);
    let id = unique_id("hookwarn");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);

    let out = rt.run(&["start", &id]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "start failed on a poststart hook: {err}");
    assert!(
        err.contains("warning") && err.contains("poststart hook /bin/sh") && err.contains("exit status: 3"),
        "{err}"
    );
    assert_eq!(rt.status(&id), "running");
    assert_eq!(log.log(), ["poststart"]);

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let out = rt.run(&["delete", &id]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "delete failed on a poststop hook: {err}");
    assert!(
        err.contains("warning") && err.contains("poststop hook /bin/sh") && err.contains("exit status: 3"),
        "{err}"
    );
    assert_eq!(log.log(), ["poststart", "poststop"]);
    rt.assert_gone(&id);
}

#[test]
fn a_create_that_fails_after_its_hooks_ran_runs_poststop_hooks() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let marker = tempfile::NamedTempFile::new().unwrap();
    let record = format!("cat > {}", marker.path().display());
    bundle.edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [{"path": "/bin/true"}],
            "createContainer": [{"path": "/bin/false"}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", record]}]
        });
    });
    let id = unique_id("poststopundo");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains("createContainer"), "{err}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(marker.path()).unwrap())
        .expect("poststop hook got the state on stdin");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "stopped");
    rt.assert_gone(&id);
}

#[test]
fn a_hook_that_never_reads_a_large_state_still_times_out() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    // 200 KiB of annotations (Kubernetes allows 256 KiB): more than a pipe holds, and more than
    // one 64 KiB message between the runtime and init.
    let big = "x".repeat(200 * 1024);
    bundle.edit(|c| {
        c["annotations"] = json!({"example.com/big": big});
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    });
    let id = unique_id("bigstate");
    let started = Instant::now();
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "the timeout did not fire: {:?}", started.elapsed());
    rt.assert_gone(&id);
    // Without the blocking hook the same large state goes through create and the hooks.
    bundle.edit(|c| {
        c["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null"]}]})
    });
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    rt.assert_gone(&id);
}
