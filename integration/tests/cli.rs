//! The command-line contract engines rely on beyond the lifecycle: JSON log lines, `kill --all`,
//! `spec`, serialised concurrent operations on one id.

use berth_integration::{wait_until, Bundle, Runtime};
use std::time::Duration;

#[test]
fn errors_are_logged_as_runc_json_lines_when_asked() {
    let rt = Runtime::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = rt.run(&["--log", log.path().to_str().unwrap(), "--log-format", "json", "state", "no-such-container"]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(log.path()).unwrap();
    let line = text.lines().last().expect("a log line");
    let v: serde_json::Value = serde_json::from_str(line).expect("log line is JSON");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("does not exist"), "{line}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{line}");
    // The error also reaches stderr for a human.
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn kill_all_signals_every_process_of_the_container() {
    let rt = Runtime::new();
    // Without a pid namespace, init's death would not take its children along: --all must.
    let bundle = Bundle::new(&["sh", "-c", "sleep 60 & sleep 61 & wait"]);
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = berth_integration::unique_id("killall");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let cgroup_procs = || -> Vec<i32> {
        let dir = berth_integration::cgroup_dirs_named(&id)
            .into_iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/pids") || d.starts_with("/sys/fs/cgroup"))
            .expect("container cgroup");
        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap().lines().filter_map(|l| l.parse().ok()).collect()
    };
    wait_until("the children to start", Duration::from_secs(5), || cgroup_procs().len() >= 3);
    let pids = cgroup_procs();
    rt.ok(&["kill", "--all", &id, "KILL"]);
    let alive = |pid: &i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    wait_until(&format!("every one of {pids:?} to die after kill --all"), Duration::from_secs(5), || {
        !pids.iter().any(alive)
    });
    assert_eq!(rt.status(&id), "stopped");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn spec_writes_a_runc_like_default_config_and_refuses_to_overwrite() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    rt.ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "mount"));
    let out = rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(!out.status.success(), "spec must not overwrite config.json");
}

#[test]
fn concurrent_creates_of_one_id_yield_exactly_one_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = berth_integration::unique_id("race");
    // stderr to files: the winner's init inherits it and keeps it open.
    let children: Vec<_> = (0..4)
        .map(|_| {
            let err = tempfile::NamedTempFile::new().unwrap();
            let child = rt
                .command(&["create", "--bundle", bundle.path().to_str().unwrap(), &id])
                .stdout(std::process::Stdio::null())
                .stderr(err.reopen().unwrap())
                .spawn()
                .unwrap();
            (child, err)
        })
        .collect();
    let results: Vec<_> = children
        .into_iter()
        .map(|(mut c, err)| (c.wait().unwrap(), std::fs::read_to_string(err.path()).unwrap()))
        .collect();
    let ok = results.iter().filter(|(status, _)| status.success()).count();
    assert_eq!(ok, 1, "exactly one create must win");
    for (_, stderr) in results.iter().filter(|(status, _)| !status.success()) {
        assert!(stderr.contains("already exists"), "{stderr}");
    }
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    let rt = Runtime::new();
    // The container counts up in a file; while paused the count must not move.
    let bundle = Bundle::new(&["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done"]);
    bundle.edit(|c| {
        c["root"]["readonly"] = serde_json::json!(false);
    });
    let id = berth_integration::unique_id("pause");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let count = || std::fs::read_to_string(bundle.rootfs().join("tmp/count")).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(100));
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(), frozen_at, "the container ran while paused");
    let out = rt.run(&["delete", &id]);
    assert!(!out.status.success(), "deleting a paused container without --force must fail clearly");
    assert!(String::from_utf8_lossy(&out.stderr).contains("paused"));
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    std::thread::sleep(Duration::from_millis(200));
    assert_ne!(count(), frozen_at, "the container did not run again after resume");
    let out = rt.run(&["resume", &id]);
    assert!(!out.status.success(), "resume of a running container must fail");
    // A frozen container can still be force-deleted: killed, thawed, removed.
    rt.ok(&["pause", &id]);
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn a_created_container_can_be_paused_resumed_and_started() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "echo started"]);
    let id = berth_integration::unique_id("pausecreated");
    let output = rt.create_with_output(&bundle, &id);
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    assert_eq!(output.stdout(), "started\n");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn state_reports_creating_while_create_runs_and_stopped_once_it_died() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let marker = tempfile::NamedTempFile::new().unwrap();
    let script = format!("echo > {}; sleep 30", marker.path().display());
    std::fs::remove_file(marker.path()).unwrap();
    bundle.edit(|c| {
        c["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]})
    });
    let id = berth_integration::unique_id("creating");
    let mut create = rt
        .command(&["create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    berth_integration::wait_until("the createRuntime hook", Duration::from_secs(10), || marker.path().exists());
    assert_eq!(rt.status(&id), "creating");
    // create dies mid-way (its hook and init go with it or stay orphaned): the state says so.
    create.kill().unwrap();
    create.wait().unwrap();
    // init shares create's lock until its parent-death signal lands: milliseconds, more under load.
    rt.wait_status(&id, "stopped", Duration::from_secs(5));
    let out = rt.run(&["delete", &id]);
    assert!(out.status.success(), "a dead create is deletable: {}", String::from_utf8_lossy(&out.stderr));
    rt.assert_gone(&id);
    let _ = std::process::Command::new("pkill").args(["-f", &format!("echo > {}", marker.path().display())]).status();
}

#[test]
fn runc_commands_not_built_yet_fail_naming_themselves() {
    let rt = Runtime::new();
    for cmd in ["checkpoint", "restore"] {
        let out = rt.run(&[cmd, "some-id"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{cmd}` is not supported")), "{cmd}: {err}");
    }
}

#[test]
fn ps_lists_exactly_the_containers_processes() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "sleep 61 & sleep 62 & wait"]);
    let id = berth_integration::unique_id("ps");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let pids = || -> Vec<i64> { serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap() };
    wait_until("the container's processes to start", Duration::from_secs(5), || pids().len() >= 3);
    let pids = pids();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let table = rt.ok(&["ps", &id, "-o", "pid,args"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows.iter().any(|r| r.contains("sleep 61")) && rows.iter().any(|r| r.contains("sleep 62")), "{table}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn features_describes_this_build() {
    let rt = Runtime::new();
    let v: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert_eq!(v["ociVersionMax"], "1.3.0");
    assert_eq!(v["linux"]["cgroup"]["systemd"], false);
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    let seccomp = &v["linux"]["seccomp"];
    assert!(seccomp["actions"].as_array().unwrap().iter().any(|a| a == "SCMP_ACT_NOTIFY"), "{seccomp}");
    assert_eq!(seccomp["archs"], serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
    let flags = seccomp["supportedFlags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), "{seccomp}");
    let mount_options = v["mountOptions"].as_array().unwrap();
    for opt in ["rbind", "nosymfollow", "rro", "rnosymfollow", "rnoatime", "tmpcopyup"] {
        assert!(mount_options.iter().any(|o| o == opt), "{opt} not listed");
    }
    let modes = v["linux"]["memoryPolicy"]["modes"].as_array().unwrap();
    assert!(modes.iter().any(|m| m == "MPOL_BIND"), "{modes:?}");
    assert!(v["linux"]["capabilities"].as_array().unwrap().iter().any(|c| c == "CAP_SYS_ADMIN"));
}

#[test]
fn preserve_fds_must_name_fds_the_caller_passed_not_the_runtimes_log() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let log = tempfile::NamedTempFile::new().unwrap();
    let id = berth_integration::unique_id("pfds");
    // fd 3 is not open in the caller; the runtime's own log file must not be taken for it.
    let out = rt.run(&[
        "--log",
        log.path().to_str().unwrap(),
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fd 3 is not open"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rt.run(&["run", "--preserve-fds", "-1", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(!out.status.success(), "a negative --preserve-fds must be refused");
    rt.assert_gone(&id);
}

#[test]
fn printing_commands_end_quietly_when_the_reader_goes_away() {
    let rt = Runtime::new();
    let bin = berth_integration::runtime_bin();
    let out = std::process::Command::new("sh")
        .arg("-c")
        // The reader is gone before the runtime writes a byte.
        .arg(format!(
            "{{ sleep 0.3; exec '{}' --root '{}' features 2>&3; }} 3>&2 | true",
            bin.display(),
            rt.root().display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}
