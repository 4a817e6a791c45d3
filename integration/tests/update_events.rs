//! `update` (new cgroup limits on a live container, seen and enforced inside it), `events`
//! (runc's stats and OOM event stream) and `kill --all`, on whichever cgroup layout the machine
//! has (the v2 lane runs them in a VM).

use berth_integration::{host_is_v2, wait_until, Bundle, Runtime};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// A detached container with a 64 MiB memory limit and 20 pids.
fn limited(rt: &Runtime, bundle: &Bundle, prefix: &str) -> String {
    bundle.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}}));
    let id = berth_integration::unique_id(prefix);
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    id
}

/// memory limit and pids.max as the container sees them in its own cgroup files.
fn limits_inside(rt: &Runtime, id: &str) -> String {
    let files = if host_is_v2() {
        "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
    };
    rt.ok(&["exec", id, "sh", "-c", &format!("cat {files}")])
}

#[test]
fn update_changes_limits_inside_the_container_and_the_kernel_enforces_them() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = limited(&rt, &bundle, "update");
    assert_eq!(limits_inside(&rt, &id), "67108864\n20\n");

    rt.ok(&["update", "--memory", "128m", "--pids-limit", "30", &id]);
    assert_eq!(limits_inside(&rt, &id), "134217728\n30\n");

    // containerd's way: linux.resources JSON on stdin; what is not given stays.
    let mut update = rt.command(&["update", "--resources", "-", &id]).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut update.stdin.take().unwrap(), br#"{"pids":{"limit":4}}"#).unwrap();
    assert!(update.wait().unwrap().success());
    assert_eq!(limits_inside(&rt, &id), "134217728\n4\n");

    // Enforced: with 4 pids (sleep, the exec'd shell, and two of its children), a fifth fails.
    let out = rt.run(&["exec", &id, "sh", "-c", "sleep 5 & sleep 5 & sleep 5 & sleep 5 & wait"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("can't fork"), "{out:?}");

    // The saved config follows, so `state`'s bundle config and later updates see the merge.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(rt.root().join(&id).join("state.json")).unwrap()).unwrap();
    assert_eq!(state["config"]["linux"]["resources"], json!({"memory": {"limit": 134217728}, "pids": {"limit": 4}}));
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn update_refuses_bad_input_clearly() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = limited(&rt, &bundle, "updbad");
    let cases: [(&[&str], &str); 5] = [
        (&["update", &id], "needs --resources or at least one resource flag"),
        (&["update", "--memory", "12x", &id], "invalid size"),
        (&["update", "--mem-bw-schema", "MB:0=50", &id], "Intel RDT is not supported"),
        (&["update", "--resources", "/nonexistent.json", &id], "/nonexistent.json"),
        (&["update", "--memory", "1m", "--resources", "-", &id], "cannot be combined"),
    ];
    for (args, want) in cases {
        let out = rt.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Nothing was changed by the failures.
    assert_eq!(limits_inside(&rt, &id), "67108864\n20\n");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(5));
    let err = rt.run(&["update", "--pids-limit", "5", &id]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("it is stopped"), "{err:?}");
    rt.ok(&["delete", &id]);
    let err = rt.run(&["update", "--pids-limit", "5", &id]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("does not exist"), "{err:?}");
    rt.assert_gone(&id);
}

#[test]
fn events_stats_reports_the_containers_usage_and_limits() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "sleep 61 & sleep 62 & wait"]);
    let id = limited(&rt, &bundle, "stats");
    wait_until("three processes", Duration::from_secs(5), || {
        serde_json::from_str::<Vec<i64>>(&rt.ok(&["ps", "--format", "json", &id])).unwrap().len() == 3
    });
    let out = rt.ok(&["events", "--stats", &id]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let event: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    let data = &event["data"];
    assert_eq!(data["pids"], json!({"current": 3, "limit": 20}), "{data}");
    assert_eq!(data["memory"]["usage"]["limit"], 67108864, "{data}");
    assert!(data["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{data}");
    assert!(data["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{data}");
    rt.ok(&["delete", "--force", &id]);
    let out = rt.run(&["events", "--stats", &id]);
    assert_eq!(out.status.code(), Some(1));
    rt.assert_gone(&id);
}

#[test]
fn events_streams_stats_and_an_oom_kill_and_ends_with_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 33554432}}));
    let id = berth_integration::unique_id("oom");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);

    let mut events = rt
        .command(&["events", "--interval", "200ms", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let reader = BufReader::new(events.stdout.take().unwrap());
    let pump = std::thread::spawn(move || {
        for line in reader.lines() {
            let _ = tx.send(serde_json::from_str(&line.unwrap()).unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("a stats event");
    assert_eq!(first["type"], "stats");

    // A shell that grows a 100 MB string in a 32 MiB cgroup is OOM-killed.
    let out = rt.run(&["exec", &id, "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut saw_oom = false;
    while !saw_oom && std::time::Instant::now() < deadline {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(500)) {
            assert_eq!(e["id"], id.as_str());
            saw_oom = e["type"] == "oom";
        }
    }
    assert!(saw_oom, "no oom event");

    // The stream ends by itself once the container stops (the OOM killer may have taken init).
    let _ = rt.run(&["kill", &id, "KILL"]);
    wait_until("events to exit", Duration::from_secs(10), || events.try_wait().unwrap().is_some());
    assert!(events.wait().unwrap().success());
    pump.join().unwrap();
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn kill_all_reaches_every_process_of_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "sleep 61 & sleep 62 & wait"]);
    let id = berth_integration::unique_id("killall");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let pids = || serde_json::from_str::<Vec<i64>>(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    wait_until("three processes", Duration::from_secs(5), || pids().len() == 3);
    let before = pids();
    rt.ok(&["kill", "--all", &id, "KILL"]);
    wait_until("every process to die", Duration::from_secs(5), || {
        before.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) || pids().is_empty()
    });
    rt.wait_status(&id, "stopped", Duration::from_secs(5));
    assert!(pids().is_empty());
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn sigkill_stops_a_paused_container() {
    let rt = Runtime::new();
    for all in [false, true] {
        let bundle = Bundle::new(&["sh", "-c", "sleep 61 & sleep 62"]);
        let id = berth_integration::unique_id("pausekill");
        rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
        rt.ok(&["pause", &id]);
        let mut args = vec!["kill", &id, "KILL"];
        if all {
            args.insert(1, "--all");
        }
        rt.ok(&args);
        rt.wait_status(&id, "stopped", Duration::from_secs(5));
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id);
    }
}

#[test]
fn concurrent_force_deletes_both_succeed() {
    let rt = Runtime::new();
    for _ in 0..5 {
        let bundle = Bundle::new(&["sleep", "60"]);
        let id = berth_integration::unique_id("racedel");
        rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let a = rt.command(&["delete", "--force", &id]).stderr(Stdio::piped()).spawn().unwrap();
        let b = rt.command(&["delete", "--force", &id]).stderr(Stdio::piped()).spawn().unwrap();
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        rt.assert_gone(&id);
    }
}

#[test]
fn real_time_signals_reach_the_container_by_number_and_name() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo got $n; n=$((n+1))' 37; n=1; echo ready; while [ $n -le 2 ]; do sleep 0.05; done",
    ]);
    let id = berth_integration::unique_id("rtsig");
    let out = rt.create_with_output(&bundle, &id);
    rt.ok(&["start", &id]);
    wait_until("the trap to be set", Duration::from_secs(5), || out.stdout().contains("ready"));
    rt.ok(&["kill", &id, "SIGRTMIN+3"]);
    wait_until("the first signal", Duration::from_secs(5), || out.stdout().contains("got 1"));
    rt.ok(&["kill", &id, "37"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(5));
    assert_eq!(out.stdout(), "ready\ngot 1\ngot 2\n");
    let bad = rt.run(&["kill", &id, "RTMAX+1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid signal"), "{bad:?}");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn check_before_update_refuses_a_memory_limit_below_the_usage_and_keeps_the_old_one() {
    let rt = Runtime::new();
    // 16 MiB in the container's tmpfs, charged to its memory cgroup, then idle.
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; touch /dev/shm/done; sleep 60",
    ]);
    bundle.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864, "checkBeforeUpdate": true}});
    });
    let id = berth_integration::unique_id("checkupd");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    wait_until("the tmpfs to fill", Duration::from_secs(20), || {
        rt.run(&["exec", &id, "test", "-e", "/dev/shm/done"]).status.success()
    });
    let limit_file =
        if host_is_v2() { "/sys/fs/cgroup/memory.max" } else { "/sys/fs/cgroup/memory/memory.limit_in_bytes" };
    let out = rt.run(&["update", "--memory", "4m", &id]);
    assert!(!out.status.success(), "a 4 MiB limit under 16 MiB of use was set");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rejecting memory limit 4194304 below usage"), "{stderr}");
    assert_eq!(rt.ok(&["exec", &id, "cat", limit_file]), "67108864\n");
    // A limit above the usage goes through.
    rt.ok(&["update", "--memory", "32m", &id]);
    assert_eq!(rt.ok(&["exec", &id, "cat", limit_file]), "33554432\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}
