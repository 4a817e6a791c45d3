//! cgroup v2 as the kernel enforces it, seen from inside the container (its cgroup namespace root)
//! and from the host's view of the container's cgroup. Meaningful only on a host whose one cgroup
//! hierarchy is the unified one: the development machines are v1 hybrids, so these run in the VM
//! of `scripts/vm-test.sh`, which sets BERTH_REQUIRE_V2=1. Elsewhere each test says it needs v2
//! and returns, unless BERTH_REQUIRE_V2 is set: then a non-v2 host fails it.

use berth_integration::{cgroup_dirs_named, unique_id, wait_until, Bundle, ContainerOutput, Runtime};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// True on a pure cgroup v2 host. Otherwise panics when BERTH_REQUIRE_V2 is set (and not 0), else
/// says why the test does nothing and returns false.
fn pure_v2_host(test: &str) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    let fstype_at = |l: &str| l.split_once(" - ").and_then(|(_, post)| post.split(' ').next().map(str::to_string));
    let unified_root = mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && fstype_at(l).as_deref() == Some("cgroup2"));
    let v1_mounts = mountinfo.lines().filter(|l| fstype_at(l).as_deref() == Some("cgroup")).count();
    if unified_root && v1_mounts == 0 {
        return true;
    }
    let why = format!(
        "{test} needs a pure cgroup v2 host (/sys/fs/cgroup cgroup2: {unified_root}, cgroup v1 hierarchies: \
         {v1_mounts}); run it with scripts/vm-test.sh cgroup_v2"
    );
    let required = matches!(std::env::var_os("BERTH_REQUIRE_V2"), Some(v) if !v.is_empty() && v != "0");
    assert!(!required, "BERTH_REQUIRE_V2 is set: {why}");
    // Past libtest's capture of eprintln!, so the skip shows in a passing run too.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    false
}

/// The container's one cgroup directory on the host.
fn cgroup_dir(id: &str) -> PathBuf {
    let dirs = cgroup_dirs_named(id);
    assert_eq!(dirs.len(), 1, "expected exactly one cgroup dir named {id}: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The value of `key` in a flat-keyed cgroup file (`memory.events`, `cgroup.events`, `cpu.stat`).
fn keyed(path: &Path, key: &str) -> u64 {
    let text = read(path);
    let value = text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')));
    value.and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no {key} in {}: {text}", path.display()))
}

/// Pids listed in a `cgroup.procs` file.
fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs")).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// (pid, voluntary + involuntary context switches) of every process in cgroup `dir`.
fn switches(dir: &Path) -> Vec<(i32, u64)> {
    let count = |pid: i32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    procs(dir).into_iter().map(|pid| (pid, count(pid))).collect()
}

/// The state letter of `pid` in /proc/<pid>/stat (R, S, D, T, Z...).
fn stat_state(pid: i32) -> char {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).unwrap_or('?')
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Runs a `sh -c SCRIPT` container with `resources` to its end; hands its cgroup dir and output to
/// `check` while the cgroup still exists, then deletes it and checks nothing is left.
fn run_to_exit(prefix: &str, script: &str, resources: Value, check: impl FnOnce(&Path, &ContainerOutput)) {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", script]);
    bundle.edit(|c| c["linux"]["resources"] = resources);
    let id = unique_id(prefix);
    let output = rt.create_with_output(&bundle, &id);
    let dir = cgroup_dir(&id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(60));
    check(&dir, &output);
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn v2_memory_max_is_enforced_by_an_oom_kill() {
    if !pure_v2_host("v2_memory_max_is_enforced_by_an_oom_kill") {
        return;
    }
    // The inner shell grows a 64 MiB variable under a 16 MiB limit; the outer one reports how it
    // ended and what the container's own memory files say.
    let script = "sh -c 'x=$(head -c 67108864 /dev/zero | tr \"\\0\" a); echo survived ${#x}'; echo status=$?; \
                  cat /sys/fs/cgroup/memory.max; grep oom_kill /sys/fs/cgroup/memory.events";
    let resources = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    run_to_exit("v2oom", script, resources, |dir, output| {
        let out = output.stdout();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"status=137"), "expected a SIGKILL (128+9) from the OOM killer: {out}");
        assert_eq!(lines.get(1), Some(&"16777216"), "memory.max inside: {out}");
        let inside = lines.get(2).and_then(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.parse::<u64>().ok());
        assert!(inside.is_some_and(|n| n > 0), "memory.events inside counts no OOM kill: {out}");
        assert_eq!(read(&dir.join("memory.max")).trim(), "16777216");
        assert_eq!(read(&dir.join("memory.swap.max")).trim(), "0", "v1's swap is memory+swap: 16M-16M");
        assert!(keyed(&dir.join("memory.events"), "oom_kill") > 0, "{}", read(&dir.join("memory.events")));
    });
}

#[test]
fn v2_pids_max_makes_fork_fail_in_the_container() {
    if !pure_v2_host("v2_pids_max_makes_fork_fail_in_the_container") {
        return;
    }
    let script = "cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo forked all";
    run_to_exit("v2pids", script, json!({"pids": {"limit": 4}}), |dir, output| {
        assert_eq!(output.stdout(), "4\n", "the shell must not get past its fourth fork");
        assert!(output.stderr().contains("can't fork"), "{}", output.stderr());
        assert_eq!(read(&dir.join("pids.max")).trim(), "4");
        assert!(keyed(&dir.join("pids.events"), "max") > 0, "{}", read(&dir.join("pids.events")));
    });
}

#[test]
fn v2_cpu_max_is_quota_and_period_and_cpu_weight_is_converted_from_shares() {
    if !pure_v2_host("v2_cpu_max_is_quota_and_period_and_cpu_weight_is_converted_from_shares") {
        return;
    }
    let shares: u64 = 512;
    // runc's conversion of shares [2, 262144] to weight [1, 10000].
    let weight = 1 + ((shares - 2) * 9999) / 262_142;
    assert_eq!(weight, 20);
    // A busy loop under a 25% quota: the kernel throttles it within a few 50 ms periods.
    let script = "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight; timeout 1 sh -c 'while :; do :; done'; \
                  grep nr_throttled /sys/fs/cgroup/cpu.stat";
    let resources = json!({"cpu": {"shares": shares, "quota": 12500, "period": 50000}});
    run_to_exit("v2cpu", script, resources, |dir, output| {
        let out = output.stdout();
        let lines: Vec<&str> = out.lines().collect();
        let weight = weight.to_string();
        assert_eq!((lines.first(), lines.get(1)), (Some(&"12500 50000"), Some(&weight.as_str())), "inside: {out}");
        let throttled = lines.get(2).and_then(|l| l.strip_prefix("nr_throttled ")).and_then(|v| v.parse::<u64>().ok());
        assert!(throttled.is_some_and(|n| n > 0), "the busy loop was never throttled: {out}");
        assert_eq!(read(&dir.join("cpu.max")).trim(), "12500 50000");
        assert_eq!(read(&dir.join("cpu.weight")).trim(), weight);
    });
}

#[test]
fn v2_pause_freezes_the_cgroup_and_resume_thaws_it() {
    if !pure_v2_host("v2_pause_freezes_the_cgroup_and_resume_thaws_it") {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "sleep 60 & while :; do sleep 0.05; done"]);
    let id = unique_id("v2pause");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let dir = cgroup_dir(&id);
    wait_until("init and its sleep child", Duration::from_secs(10), || procs(&dir).len() >= 2);
    let freeze = || read(&dir.join("cgroup.freeze")).trim().to_string();
    let frozen = || keyed(&dir.join("cgroup.events"), "frozen");
    assert_eq!((freeze(), frozen()), ("0".to_string(), 0));

    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    assert_eq!((freeze(), frozen()), ("1".to_string(), 1), "pause must return only once the kernel froze it");
    // v2 freezes without SIGSTOP: a frozen task shows state S (parked in the kernel's freezer trap,
    // not T), so what proves it frozen is that nothing moves: no context switch, no new process
    // (the loop forks a sleep every 50 ms).
    let before = switches(&dir);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(&dir), before, "the container ran while paused");
    for pid in procs(&dir) {
        let state = stat_state(pid);
        assert!(state == 'S' || state == 'D', "frozen pid {pid} is in state {state}");
    }

    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    assert_eq!((freeze(), frozen()), ("0".to_string(), 0));
    wait_until("the container to run again after resume", Duration::from_secs(10), || switches(&dir) != before);
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn v2_container_cgroup_is_its_namespace_root_and_goes_with_delete() {
    if !pure_v2_host("v2_container_cgroup_is_its_namespace_root_and_goes_with_delete") {
        return;
    }
    let rt = Runtime::new();
    let script = "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //'; \
                  cat /sys/fs/cgroup/cgroup.controllers; sleep 60";
    let bundle = Bundle::new(&["sh", "-c", script]);
    // An absolute cgroupsPath, as engines give it: its parent is made, and removed, too.
    let parent = format!("berth-it-v2-{}", std::process::id());
    let id = unique_id("v2ns");
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}")));
    let output = rt.create_with_output(&bundle, &id);
    let dir = Path::new("/sys/fs/cgroup").join(&parent).join(&id);
    let state: Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert_eq!(procs(&dir), [pid], "init must be the one process of the container's cgroup");
    assert_eq!(read(Path::new(&format!("/proc/{pid}/cgroup"))), format!("0::/{parent}/{id}\n"));

    rt.ok(&["start", &id]);
    wait_until("the container's report", Duration::from_secs(10), || output.stdout().lines().count() >= 3);
    let out = output.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0::/", "inside, the container's cgroup is the root: {out}");
    assert!(lines[1].starts_with("cgroup2 "), "/sys/fs/cgroup inside is not cgroup2: {out}");
    for controller in ["cpu", "memory", "pids"] {
        assert!(lines[2].split(' ').any(|c| c == controller), "{controller} is not available inside: {out}");
    }

    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    assert!(!is_alive(pid), "init {pid} survived delete");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!dir.parent().unwrap().exists(), "the parent the runtime made, {parent}, was left behind");
}

#[test]
fn v2_kill_all_reaches_every_process_including_sub_cgroups() {
    if !pure_v2_host("v2_kill_all_reaches_every_process_including_sub_cgroups") {
        return;
    }
    let rt = Runtime::new();
    // No pid namespace: init's death would not take the others along; --all must find them,
    // including one the container moved into a cgroup of its own (nsdelegate lets it).
    let script = "mkdir /sys/fs/cgroup/sub && sh -c 'echo $$ > /sys/fs/cgroup/sub/cgroup.procs; exec sleep 60' & \
                  sleep 61 & wait";
    let bundle = Bundle::new(&["sh", "-c", script]);
    bundle.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
        c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    });
    let id = unique_id("v2killall");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let dir = cgroup_dir(&id);
    let sub = dir.join("sub");
    wait_until("init, its sleep and the process in the sub-cgroup", Duration::from_secs(10), || {
        procs(&dir).len() >= 2 && sub.exists() && !procs(&sub).is_empty()
    });
    let pids: Vec<i32> = procs(&dir).into_iter().chain(procs(&sub)).collect();
    rt.ok(&["kill", "--all", &id, "KILL"]);
    wait_until(&format!("every one of {pids:?} to die after kill --all"), Duration::from_secs(10), || {
        !pids.iter().copied().any(is_alive)
    });
    assert_eq!(rt.status(&id), "stopped");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn v2_device_rules_deny_and_allow() {
    if !pure_v2_host("v2_device_rules_deny_and_allow") {
        return;
    }
    // Deny everything but /dev/null. /dev/zero stays readable: like runc (and our v1 driver), the
    // runtime appends rules for the default devices every container gets, and for those listed
    // in linux.devices. The host's /dev/kmsg, bound in by a mount (not listed), is refused.
    let script = "echo x > /dev/null && echo null_write=ok; head -c 1 /dev/zero | od -An -tx1 | tr -d ' '; \
                  echo probe > /dev/berth-kmsg; echo kmsg_write=$?";
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", script]);
    bundle.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
            {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5}
        ]);
        c["linux"]["resources"] = json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]});
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/dev/berth-kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}),
        );
    });
    let id = unique_id("v2dev");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "null_write=ok\n00\nkmsg_write=1\n", "{err}");
    assert!(err.contains("/dev/berth-kmsg: Operation not permitted"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn v2_exec_joins_inits_cgroup_when_the_container_delegated_its_own() {
    if !pure_v2_host("v2_exec_joins_inits_cgroup_when_the_container_delegated_its_own") {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = unique_id("v2execleaf");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let dir = cgroup_dir(&id);
    // What systemd or docker-in-docker do inside a container: init moves to a leaf and the top
    // cgroup hands controllers down, so it may hold no process any more.
    let leaf = dir.join("init");
    std::fs::create_dir(&leaf).unwrap();
    let init = procs(&dir)[0];
    std::fs::write(leaf.join("cgroup.procs"), init.to_string()).unwrap();
    std::fs::write(dir.join("cgroup.subtree_control"), "+pids").unwrap();
    let out = rt.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(out, "0::/init\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn init_is_born_in_its_cgroup_and_its_processes_are_there() {
    if !pure_v2_host("init_is_born_in_its_cgroup_and_its_processes_are_there") {
        return;
    }
    // clone3(CLONE_INTO_CGROUP): no move through cgroup.procs, which waits for an RCU grace
    // period. create's --debug phases say which way init was made.
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = unique_id("v2born");
    let out = rt.run(&["--debug", "create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("init cloned into its cgroup"), "{stderr}");
    let state: Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(cgroup_dir(&id).join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string(), "init is not the one process of its cgroup");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}
