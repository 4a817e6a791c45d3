//! `berth run` and the container verbs through a private berthd, its shim and berth-runtime:
//! output and exit codes, every run flag checked from inside the container, docker's default
//! security, an OOM kill, and bad input that must leave nothing behind. Run as root.

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::image::{prebuilt_docker_archive, BusyboxImage, IMAGE_REF};
use serde_json::Value;

/// The busybox image archive, built once per test binary under cargo's tmp directory, or the prebuilt one
/// `BERTH_IMAGE_ARCHIVE` names (the cgroup v2 VM has neither umoci nor skopeo).
fn image_archive() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(archive) = prebuilt_docker_archive() {
            return archive;
        }
        // Under cargo's tmp directory (not /tmp): kept for the next run, gone with cargo clean.
        BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-run-image")).docker_archive()
    })
    .clone()
}

/// A berthd with the busybox image loaded.
fn daemon() -> Berthd {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", image_archive().to_str().expect("utf-8 path")]);
    b
}

fn ids(b: &Berthd) -> Vec<String> {
    b.ok(&["ps", "-aq", "--no-trunc"]).split_whitespace().map(String::from).collect()
}

fn inspect(b: &Berthd, name: &str) -> Value {
    let out = b.ok(&["inspect", "--type", "container", name]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect {name}: {e}: {out}"));
    v[0].clone()
}

/// Removes every container and checks nothing of `seen` is left.
fn assert_clean(b: &Berthd, seen: &[String]) {
    b.remove_all_containers();
    let left = b.leftovers(seen);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn run_prints_output_and_exits_with_the_containers_code() {
    let b = daemon();
    let out = b.berth(&["run", "--rm", IMAGE_REF, "sh", "-c", "echo to-out; echo to-err >&2; exit 7"]);
    assert_eq!(out.code, 7, "{out}");
    assert_eq!(out.stdout, "to-out\n");
    assert_eq!(out.stderr, "to-err\n");
    let out = b.berth(&["run", "--rm", IMAGE_REF, "true"]);
    assert_eq!(out.code, 0, "{out}");
    // --rm leaves no container behind, even after a failed start.
    let out = b.berth(&["run", "--rm", IMAGE_REF, "no-such-command"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(out.stderr.contains("executable file not found"), "{out}");
    assert!(ids(&b).is_empty(), "--rm left containers: {:?}", ids(&b));
    // A quick process's output is never lost.
    for i in 0..10 {
        let out = b.berth(&["run", "--rm", IMAGE_REF, "echo", &format!("quick-{i}")]);
        assert_eq!((out.code, out.stdout.as_str()), (0, format!("quick-{i}\n").as_str()), "{out}");
    }
    assert_clean(&b, &[]);
}

#[test]
fn detached_container_runs_execs_logs_stops_and_is_removed() {
    let b = daemon();
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        IMAGE_REF,
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    let ps = b.ok(&["ps"]);
    assert!(ps.contains(&id[..12]) && ps.contains("web") && ps.contains("Up "), "ps: {ps}");
    let state = inspect(&b, "web");
    assert_eq!(state["State"]["Status"], "running");
    let pid = state["State"]["Pid"].as_u64().expect("pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "init pid {pid} is not running");

    let out = b.berth(&["exec", "web", "sh", "-c", "echo in-exec; hostname; exit 4"]);
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.stdout, format!("in-exec\n{}\n", &id[..12]));
    let out = b.berth(&["exec", &id[..6], "nope"]);
    assert_eq!(out.code, 127, "exec of a missing command: {out}");
    assert_eq!(
        b.ok(&["exec", "-e", "X=1", "-w", "/etc", "-u", "nobody", "web", "sh", "-c", "echo $X $(pwd) $(id -u)"]),
        "1 /etc 65534\n"
    );

    b.ok(&["pause", "web"]);
    assert_eq!(inspect(&b, "web")["State"]["Status"], "paused");
    assert!(b.ok(&["ps"]).contains("(Paused)"));
    b.ok(&["unpause", "web"]);
    let top = b.ok(&["top", "web"]);
    assert!(top.contains("while"), "top: {top}");

    b.ok(&["rename", "web", "web2"]);
    let stopped = b.ok(&["stop", "web2"]);
    assert_eq!(stopped.trim(), "web2");
    let state = inspect(&b, "web2");
    assert_eq!(state["State"]["Status"], "exited");
    assert_eq!(state["State"]["ExitCode"], 0);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "init pid {pid} survived stop");
    assert_eq!(b.ok(&["logs", "web2"]), "started\nbye\n");
    assert_eq!(b.ok(&["logs", "--tail", "1", "web2"]), "bye\n");
    assert_eq!(b.ok(&["wait", "web2"]).trim(), "0");
    assert!(b.ok(&["ps", "-a"]).contains("Exited (0)"));
    // A stopped container starts again; its log goes on.
    b.ok(&["start", "web2"]);
    assert_eq!(inspect(&b, "web2")["State"]["Status"], "running");
    b.ok(&["kill", "web2"]);
    assert_eq!(b.ok(&["wait", "web2"]).trim(), "137");
    b.ok(&["rm", "web2"]);
    assert!(ids(&b).is_empty());
    assert_clean(&b, &[id]);
}

#[test]
fn run_flags_are_applied_inside_the_container() {
    let b = daemon();
    let scratch = tempfile::tempdir().expect("tempdir");
    std::fs::write(scratch.path().join("f"), "bound\n").expect("write");
    let env_file = scratch.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").expect("write");
    let volume = format!("{}:/data:ro", scratch.path().display());
    // The limits as the container's own cgroup shows them: on v2 its cgroup namespace puts its
    // cgroup at /sys/fs/cgroup; cpu.weight is runc's conversion of 512 shares.
    let v2 = berth_integration::host_is_v2();
    let require_v2 = matches!(std::env::var_os("BERTH_REQUIRE_V2"), Some(v) if !v.is_empty() && v != "0");
    assert!(v2 || !require_v2, "BERTH_REQUIRE_V2 is set, but /sys/fs/cgroup is not cgroup v2 alone");
    let (cgroup_files, cgroup_values) = if v2 {
        (
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight",
            ["67108864", "33", "50000 100000", "20"],
        )
    } else {
        (
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares",
            ["67108864", "33", "50000", "512"],
        )
    };
    let script = [
        "echo env=$FOO/$FROM_FILE",
        "pwd",
        "id",
        "hostname",
        "touch /x 2>/dev/null || echo root-ro",
        "touch /scratch/ok && echo tmpfs-rw",
        "cat /data/f",
        "touch /data/g 2>/dev/null || echo bind-ro",
        cgroup_files,
        "ulimit -n",
        "grep NoNewPrivs /proc/self/status",
        "df -k /dev/shm | tail -1",
    ]
    .join("; ");
    let out = b.berth(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "--env-file",
        env_file.to_str().expect("utf-8"),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--group-add",
        "1234",
        "--hostname",
        "myhost",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "-v",
        &volume,
        "-m",
        "64m",
        "--pids-limit",
        "33",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--ulimit",
        "nofile=100:200",
        "--security-opt",
        "no-new-privileges",
        "--shm-size",
        "8m",
        IMAGE_REF,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "env=bar/yes");
    assert_eq!(lines[1], "/tmp");
    assert_eq!(lines[2], "uid=65534(nobody) gid=65534(nogroup) groups=1234");
    assert_eq!(lines[3], "myhost");
    assert_eq!(&lines[4..8], ["root-ro", "tmpfs-rw", "bound", "bind-ro"]);
    assert_eq!(&lines[8..12], cgroup_values, "cgroup {}: {out}", if v2 { "v2" } else { "v1" });
    assert_eq!(lines[12], "100");
    assert_eq!(lines[13], "NoNewPrivs:\t1");
    assert!(lines[14].split_whitespace().nth(1) == Some("8192"), "shm size: {}", lines[14]);

    // Capabilities, entrypoint, devices, sysctls, labels, stop signal.
    let out = b.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_admin",
        IMAGE_REF,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(out, "CapEff:\t0000000000001000\n");
    let out = b.ok(&["run", "--rm", "--privileged", IMAGE_REF, "grep", "CapEff", "/proc/self/status"]);
    assert!(out.starts_with("CapEff:\t000001ff") || out.starts_with("CapEff:\t0000003f"), "privileged: {out}");
    assert_eq!(b.ok(&["run", "--rm", "--entrypoint", "echo", IMAGE_REF, "from", "entrypoint"]), "from entrypoint\n");
    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull:rw",
        IMAGE_REF,
        "sh",
        "-c",
        "echo x > /dev/mynull && ls -l /dev/mynull",
    ]);
    assert!(out.starts_with("crw"), "device: {out}");
    assert_eq!(
        b.ok(&["run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", IMAGE_REF, "cat", "/proc/sys/net/ipv4/ip_forward"]),
        "1\n"
    );
    let id = b.ok(&[
        "create",
        "--label",
        "tier=front",
        "--stop-signal",
        "SIGUSR1",
        "--restart",
        "on-failure:3",
        IMAGE_REF,
        "true",
    ]);
    let state = inspect(&b, id.trim());
    assert_eq!(state["Config"]["Labels"]["tier"], "front");
    assert_eq!(state["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(state["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    assert_eq!(state["State"]["Status"], "created");
    assert!(b.ok(&["ps", "-a", "--filter", "label=tier=front", "-q"]).contains(&id.trim()[..12]));
    assert_clean(&b, &[id.trim().to_string()]);
}

#[test]
fn default_security_is_dockers() {
    let b = daemon();
    // docker's default capability set.
    assert_eq!(b.ok(&["run", "--rm", IMAGE_REF, "grep", "CapEff", "/proc/self/status"]), "CapEff:\t00000000a80425fb\n");
    assert_eq!(b.ok(&["run", "--rm", IMAGE_REF, "grep", "Seccomp:", "/proc/self/status"]), "Seccomp:\t2\n");
    // The default seccomp profile refuses unshare; unconfined allows it.
    let out = b.berth(&["run", "--rm", IMAGE_REF, "unshare", "-U", "true"]);
    assert_ne!(out.code, 0, "unshare passed the default profile: {out}");
    let out = b.berth(&["run", "--rm", "--security-opt", "seccomp=unconfined", IMAGE_REF, "unshare", "-U", "true"]);
    assert_eq!(out.code, 0, "unconfined: {out}");
    // A profile from a file.
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("write");
    let opt = format!("seccomp={}", profile.display());
    let out = b.berth(&["run", "--rm", "--security-opt", &opt, IMAGE_REF, "sh", "-c", "mkdir /d 2>&1; echo done"]);
    assert!(out.stdout.contains("Operation not permitted") && out.stdout.contains("done"), "{out}");
    // Masked and read-only paths.
    let out = b.ok(&[
        "run",
        "--rm",
        IMAGE_REF,
        "sh",
        "-c",
        "wc -c < /proc/keys; touch /proc/sys/kernel/x 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "0\nro\n");
    assert_clean(&b, &[]);
}

#[test]
fn memory_limit_oom_kill_is_reported() {
    let b = daemon();
    let out = b.berth(&["run", "--name", "oom", "-m", "8m", "--memory-swap", "8m", IMAGE_REF, "tail", "/dev/zero"]);
    assert_eq!(out.code, 137, "{out}");
    let state = inspect(&b, "oom");
    assert_eq!(state["State"]["OOMKilled"], true, "{state}");
    assert_eq!(state["State"]["ExitCode"], 137);
    let seen = ids(&b);
    assert_clean(&b, &seen);
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    let b = daemon();
    let snapshots = |b: &Berthd| std::fs::read_dir(b.root().join("snapshots")).map(|d| d.count()).unwrap_or(0);
    let before = snapshots(&b);
    let first = b.ok(&["create", "--name", "taken", IMAGE_REF, "true"]).trim().to_string();
    let after_one = snapshots(&b);
    let cases: &[&[&str]] = &[
        &["run", "--name", "taken", IMAGE_REF, "true"],
        &["run", "--mount", "type=bind,src=/no/such/dir,dst=/x", IMAGE_REF, "true"],
        &["run", "-w", "relative", IMAGE_REF, "true"],
        &["run", "-m", "lots", IMAGE_REF, "true"],
        &["run", "-u", "ghost", IMAGE_REF, "true"],
        &["run", "--cap-add", "CAP_NOPE", IMAGE_REF, "true"],
        &["run", "--network", "no-such-network", IMAGE_REF, "true"],
        &["run", "--pull", "never", "127.0.0.1:9/missing:1", "true"],
        &["run", "--no-such-flag", IMAGE_REF, "true"],
    ];
    for args in cases {
        let out = b.berth(args);
        assert_eq!(out.code, 125, "berth {args:?} should fail with 125: {out}");
        assert!(!out.stderr.trim().is_empty(), "berth {args:?} said nothing: {out}");
    }
    let out = b.berth(&["run", "--name", "taken", IMAGE_REF, "true"]);
    assert!(out.stderr.contains("is already in use"), "{out}");
    let out = b.berth(&["run", "--pull", "never", "127.0.0.1:9/missing:1", "true"]);
    assert!(out.stderr.contains("No such image"), "{out}");
    assert_eq!(ids(&b), std::slice::from_ref(&first), "only the first container exists");
    assert_eq!(snapshots(&b), after_one, "a failed create left a snapshot");
    assert_eq!(after_one, before + 1);
    for verb in
        [&["start", "nope"][..], &["stop", "nope"], &["rm", "nope"], &["logs", "nope"], &["exec", "nope", "true"]]
    {
        let out = b.berth(verb);
        assert_ne!(out.code, 0, "{verb:?}: {out}");
        assert!(out.stderr.contains("No such container: nope"), "{verb:?}: {out}");
    }
    // A running container is not removed without -f.
    b.ok(&["start", "taken"]);
    let _ = b.berth(&["exec", "taken", "true"]);
    let id = b.ok(&["run", "-d", IMAGE_REF, "sleep", "1000"]).trim().to_string();
    let out = b.berth(&["rm", &id]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("cannot remove a running container"), "{out}");
    b.ok(&["rm", "-f", &id]);
    assert_clean(&b, &[first, id]);
    assert_eq!(snapshots(&b), before, "rm left snapshots");
}
