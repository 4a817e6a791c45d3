//! `exec`: a second process in a running container, seen from inside it and from the host.

use berth_integration::{unique_id, Bundle, Runtime};
use serde_json::json;
use std::time::Duration;

fn running(rt: &Runtime, bundle: &Bundle, prefix: &str) -> (String, i64) {
    let id = unique_id(prefix);
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    (id, state["pid"].as_i64().unwrap())
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let (id, init) = running(&rt, &bundle, "execns");
    let names = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
    let script = names.iter().map(|n| format!("readlink /proc/self/ns/{n}")).collect::<Vec<_>>().join("; ")
        + "; echo pid=$$; cat /proc/self/cgroup | grep -c ':/$'; exit 5";
    let out = rt.run(&["exec", &id, "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    for (i, n) in names.iter().enumerate() {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        assert_eq!(lines[i], theirs.to_str().unwrap(), "{n} namespace differs from init's");
    }
    assert!(lines[names.len()].starts_with("pid=") && lines[names.len()] != "pid=1", "{text}");
    // In the container's cgroup namespace every hierarchy shows its root: it is in init's cgroup.
    assert_ne!(lines[names.len() + 1], "0", "{text}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_applies_user_env_cwd_and_capabilities() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| c["process"]["env"] = json!(["PATH=/bin", "KEEP=1", "FOO=old"]));
    let (id, _) = running(&rt, &bundle, "execuser");
    let out = rt.ok(&[
        "exec",
        "-u",
        "1000:1001",
        "-e",
        "FOO=new",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id; grep Groups: /proc/self/status; pwd; echo $KEEP $FOO",
    ]);
    // busybox id prints no groups when there are no supplementary ones; the kernel says so too.
    assert_eq!(out, "uid=1000 gid=1001\nGroups:\t \n/tmp\n1 new\n");
    // CAP_NET_ADMIN is bit 12, on top of the container's three.
    let out = rt.ok(&["exec", "--cap", "CAP_NET_ADMIN", &id, "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(out, "CapEff:\t0000000020001420\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_with_a_process_json_and_detached_with_a_pid_file() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let (id, _) = running(&rt, &bundle, "execjson");
    let dir = tempfile::tempdir().unwrap();
    let process = json!({"args": ["sh", "-c", "echo from-json $X"], "env": ["PATH=/bin", "X=42"], "cwd": "/",
                         "user": {"uid": 0, "gid": 0}});
    std::fs::write(dir.path().join("p.json"), process.to_string()).unwrap();
    let out = rt.ok(&["exec", "--process", dir.path().join("p.json").to_str().unwrap(), &id]);
    assert_eq!(out, "from-json 42\n");
    let pid_file = dir.path().join("exec.pid");
    rt.ok(&["exec", "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "30"]);
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "the detached exec {pid} is not in the container's cgroup: {pids:?}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().contains(") Z ")
    );
}

#[test]
fn exec_is_confined_by_the_containers_seccomp_profile_and_gets_no_host_fds() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]});
        c["root"]["readonly"] = json!(false);
    });
    let (id, _) = running(&rt, &bundle, "execsec");
    let out = rt.run(&["exec", &id, "sh", "-c", "mkdir /x; ls /proc/$$/fd; :"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Function not implemented"));
    assert_eq!(stdout, "0\n1\n2\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_fails_clearly_and_leaves_nothing_when_it_cannot_run() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let (id, _) = running(&rt, &bundle, "execbad");
    let before: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    let out = rt.run(&["exec", &id, "no-such-program"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
    // The cause, as runc words it (the log line quotes the message, so its quotes are escaped).
    for (program, cause) in [
        ("/nope", "/nope\\\": stat /nope: no such file or directory"),
        ("/etc/passwd", "/etc/passwd\\\": permission denied"),
        ("/etc", "/etc\\\": is a directory"),
    ] {
        let out = rt.run(&["exec", &id, program]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(cause), "{program}: {stderr}");
    }
    let after: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(before, after, "a failed exec left a process in the container");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let out = rt.run(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped"));
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_cgroup_runs_the_process_in_an_existing_sub_cgroup() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let (id, _) = running(&rt, &bundle, "execcg");
    let dirs = berth_integration::cgroup_dirs_named(&id);
    assert!(!dirs.is_empty(), "no cgroup of {id}");
    for d in &dirs {
        for sub in ["sub", "other"] {
            std::fs::create_dir(d.join(sub)).unwrap();
            // A v1 cpuset cgroup takes no process before it has cpus and mems (a v2 child has no
            // cpuset files until the controller is enabled for it).
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if berth_integration::host_is_v2() {
                    break;
                }
                if let Ok(value) = std::fs::read_to_string(d.join(file)) {
                    std::fs::write(d.join(sub).join(file), value.trim()).unwrap();
                }
            }
        }
    }
    // /proc/self/cgroup inside the container's cgroup namespace: paths relative to its cgroup.
    let cgroups = |args: &[&str]| -> Vec<String> {
        let mut cmd = vec!["exec"];
        cmd.extend_from_slice(args);
        cmd.extend_from_slice(&[id.as_str(), "cat", "/proc/self/cgroup"]);
        // A hybrid host's side cgroup2 tree holds no container cgroup: only the v1 lines count.
        let v2 = berth_integration::host_is_v2();
        rt.ok(&cmd).lines().filter(|l| v2 || !l.starts_with("0::")).map(str::to_string).collect()
    };
    let everywhere = cgroups(&["--cgroup", "sub"]);
    assert!(everywhere.iter().all(|l| l.ends_with(":/sub")), "not in sub everywhere: {everywhere:?}");
    // Per controller (cgroup v1 only): memory in other, the rest in sub.
    if !berth_integration::host_is_v2() {
        let memory = cgroups(&["--cgroup", "sub", "--cgroup", "memory:other"]);
        for line in &memory {
            let controllers = line.split(':').nth(1).unwrap();
            let want = if controllers.split(',').any(|c| c == "memory") { ":/other" } else { ":/sub" };
            assert!(line.ends_with(want), "{line} (want {want}): {memory:?}");
        }
        assert!(memory.iter().any(|l| l.ends_with(":/other")), "{memory:?}");
    }
    // A sub-cgroup that does not exist, or one outside the container's, is refused.
    for bad in ["missing", "../escape", "memory:../x"] {
        let out = rt.run(&["exec", "--cgroup", bad, &id, "true"]);
        assert!(!out.status.success(), "--cgroup {bad} was accepted");
    }
    for d in &dirs {
        for sub in ["sub", "other"] {
            let _ = std::fs::remove_dir(d.join(sub));
        }
    }
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused_and_runs_once_resumed() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let (id, _) = running(&rt, &bundle, "execpaused");
    rt.ok(&["pause", &id]);
    let out = rt.run(&["exec", &id, "true"]);
    assert!(!out.status.success(), "exec into a paused container was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ignore-paused"), "{out:?}");

    let pending = rt
        .command(&["exec", "--ignore-paused", &id, "sh", "-c", "echo ran"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The process joined the frozen cgroup: it runs only after the resume.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rt.status(&id), "paused");
    rt.ok(&["resume", &id]);
    let out = pending.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_gets_the_io_priority_of_the_container_process() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 5}));
    let (id, _) = running(&rt, &bundle, "execioprio");
    assert_eq!(rt.ok(&["exec", &id, "ionice"]), "best-effort: prio 5\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn exec_cpu_affinity_pins_the_exec_process_and_initial_alone_is_undone_in_the_cgroup() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let last = cpus - 1;
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    // config.json's execCPUAffinity is the default of every exec (runc 1.2), not init's.
    bundle.edit(|c| c["process"]["execCPUAffinity"] = json!({ "final": format!("{last}") }));
    let (id, init) = running(&rt, &bundle, "execaff");
    let allowed = |status: &str| -> String {
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or_default().trim().to_string()
    };
    let init_cpus = allowed(&std::fs::read_to_string(format!("/proc/{init}/status")).unwrap());
    assert_eq!(init_cpus, if cpus == 1 { "0".to_string() } else { format!("0-{last}") });
    let pinned = rt.ok(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(allowed(&pinned), last.to_string());

    // A process.json with only `initial`: once in the cgroup the process gets the container's CPUs.
    let dir = tempfile::tempdir().unwrap();
    let process = json!({
        "args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "execCPUAffinity": { "initial": "0" },
    });
    std::fs::write(dir.path().join("p.json"), process.to_string()).unwrap();
    let out = rt.ok(&["exec", "--process", dir.path().join("p.json").to_str().unwrap(), &id]);
    assert_eq!(allowed(&out), init_cpus);

    // A list the kernel cannot take is refused by name before anything runs.
    let bad = json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "execCPUAffinity": { "final": "1-0" },
    });
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let out = rt.run(&["exec", "--process", dir.path().join("bad.json").to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("process.execCPUAffinity.final") && stderr.contains("backwards range"), "{stderr}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}
