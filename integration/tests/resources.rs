//! `linux.resources` on the cgroup layout of the machine running the tests, observed from inside
//! the container (its cgroup namespace shows its own cgroup as the root) and enforced by the
//! kernel. On a v1 or hybrid host the v1 files are checked; the v2 lane runs in a VM.

use berth_integration::{host_is_v2, Bundle, Runtime};
use serde_json::json;

#[test]
fn limits_are_visible_in_the_containers_own_cgroup_files() {
    let rt = Runtime::new();
    let script = if host_is_v2() {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
         /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares"
    };
    let bundle = Bundle::new(&["sh", "-c", script]);
    bundle.edit(|c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 16},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        });
    });
    let id = berth_integration::unique_id("limits");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    let expected = if host_is_v2() { "67108864\n16\n50000 100000\n20\n" } else { "67108864\n16\n50000\n100000\n512\n" };
    assert_eq!(out, expected);
    rt.assert_gone(&id);
}

#[test]
fn memory_limit_is_enforced_by_an_oom_kill() {
    let rt = Runtime::new();
    // The shell grows a 64 MiB variable; with a 16 MiB limit the kernel kills it.
    let bundle = Bundle::new(&["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"]);
    let id = berth_integration::unique_id("oom");
    let (code, out, _) = rt.run_container(&bundle, &id);
    assert_eq!((code, out.as_str()), (0, "survived 67108864\n"), "the workload must fit without a limit");
    bundle.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}}));
    let (code, out, _) = rt.run_container(&bundle, &id);
    assert_eq!(code, 128 + 9, "expected an OOM kill (SIGKILL), got {code}: {out}");
    assert!(out.is_empty());
    rt.assert_gone(&id);
}

#[test]
fn pids_limit_stops_forks() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; echo forked all"]);
    let id = berth_integration::unique_id("pids");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!((code, out.as_str()), (0, "forked all\n"), "without a limit: {err}");
    bundle.edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 4}}));
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("can't fork"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn a_resource_the_layout_cannot_apply_fails_by_name_and_leaves_nothing() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let (resources, name) = if host_is_v2() {
        (json!({"memory": {"disableOOMKiller": true}}), "disableOOMKiller")
    } else {
        (json!({"unified": {"memory.high": "1000000"}}), "unified")
    };
    bundle.edit(|c| c["linux"]["resources"] = resources);
    let id = berth_integration::unique_id("badres");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains(name), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn sub_cgroups_made_inside_the_container_are_killed_and_removed_with_it() {
    let rt = Runtime::new();
    let sub = if host_is_v2() { "/sys/fs/cgroup/sub" } else { "/sys/fs/cgroup/pids/sub" };
    let script = format!("mkdir {sub} && sh -c 'echo $$ > {sub}/cgroup.procs; exec sleep 60' & sleep 60");
    let bundle = Bundle::new(&["sh", "-c", &script]);
    bundle.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
        // Without a pid namespace only the cgroup walk can find the process in the sub-cgroup.
        c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    });
    let id = berth_integration::unique_id("subcg");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let pids = || -> Vec<i64> { serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap() };
    let sub_procs = || {
        berth_integration::cgroup_dirs_named(&id)
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("sub/cgroup.procs")).ok())
            .any(|p| !p.trim().is_empty())
    };
    berth_integration::wait_until("a process in the sub-cgroup", std::time::Duration::from_secs(10), sub_procs);
    let all = pids();
    assert!(all.len() >= 2, "ps must include the process in the sub-cgroup: {all:?}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    for pid in all {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "pid {pid} survived delete --force");
    }
}

#[test]
fn a_cgroup_that_already_has_processes_is_not_adopted() {
    let rt = Runtime::new();
    let first = Bundle::new(&["sleep", "60"]);
    let path = format!("/berth-it-shared-{}", std::process::id());
    first.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let id = berth_integration::unique_id("owner");
    rt.ok(&["run", "--detach", "--bundle", first.path().to_str().unwrap(), &id]);
    let second = Bundle::new(&["true"]);
    second.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let intruder = berth_integration::unique_id("intruder");
    let (code, _, err) = rt.run_container(&second, &intruder);
    assert_ne!(code, 0);
    assert!(err.contains("already has processes"), "{err}");
    rt.assert_gone(&intruder);
    assert_eq!(rt.status(&id), "running", "the first container was disturbed");
    rt.ok(&["delete", "--force", &id]);
    assert!(berth_integration::cgroup_dirs_named(path.trim_start_matches('/')).is_empty());
}

#[test]
fn a_second_mount_of_a_cgroup_hierarchy_does_not_break_create() {
    if host_is_v2() {
        return; // the v1 hierarchies bound here exist on v1 and hybrid hosts only
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    bundle.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 67108864}}));
    let id = berth_integration::unique_id("cgbind");
    // Read-only binds of the memory and cpu hierarchies (and the hybrid's cgroup2), made in a
    // private mount namespace that dies with the runtime: nothing to clean up on the host.
    let binds = tempfile::Builder::new().prefix("berth-it-cgbind-").tempdir().expect("tempdir");
    let b = binds.path().display();
    let script = format!(
        "set -e; for h in memory cpu unified; do [ -d /sys/fs/cgroup/$h ] || continue; mkdir {b}/$h; \
         mount --bind -o ro /sys/fs/cgroup/$h {b}/$h; done; \
         exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\""
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(berth_integration::runtime_bin())
        .arg(rt.root())
        .arg(bundle.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "67108864\n");
    rt.assert_gone(&id);
}

#[test]
fn memory_kernel_tcp_is_applied_on_v1_and_never_fails_create_or_update_like_runc() {
    let rt = Runtime::new();
    let file = "/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes";
    let has_file = !host_is_v2() && std::path::Path::new(file).exists();
    let bundle = Bundle::new(&["sh", "-c", &format!("cat {file} 2>/dev/null || echo none")]);
    bundle.edit(|c| c["linux"]["resources"] = json!({"memory": {"kernelTCP": 16777216}}));
    let id = berth_integration::unique_id("kmemtcp");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    if has_file {
        assert_eq!(out, "16777216\n");
    } else {
        assert!(err.contains("kernelTCP"), "no warning: {err}");
    }
    rt.assert_gone(&id);

    // `update --kernel-memory-tcp` goes the same way.
    bundle.edit(|c| c["process"]["args"] = json!(["sleep", "60"]));
    let id = berth_integration::unique_id("kmemtcp");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().expect("utf-8"), &id]);
    rt.ok(&["update", "--kernel-memory-tcp", "33554432", &id]);
    if has_file {
        let out = rt.ok(&["exec", &id, "cat", file]);
        assert_eq!(out, "33554432\n");
    }
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}
