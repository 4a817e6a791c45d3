//! A private dockerd 20.10 (Debian's `docker.io`) in a directory of its own: data-root, exec-root,
//! pidfile, socket, trust key and CLI config all inside it, no iptables rules, no bridge, no
//! ip_forward change (unless started networked, inside a network namespace the caller made),
//! containers' cgroups under a parent of the caller's choosing. It runs on a
//! private [`Containerd`] rather than starting its own, whose config would put an opt directory in
//! /opt/containerd. dockerd itself still creates the empty /run/docker/plugins.

use super::containerd::Containerd;
use super::process::{run_ok, try_run, Daemon, HANG_GUARD, PROBE_GUARD};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The daemon (Debian installs it in /usr/sbin).
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's CLI. /usr/local/bin/docker on the development machines is another, newer one.
pub const DOCKER: &str = "/usr/bin/docker";

/// How long dockerd may take to answer after it was started: a hang guard.
const START_GUARD: Duration = Duration::from_secs(90);

/// A running private dockerd. Dropping it removes its containers, then stops it and its containerd.
pub struct Dockerd {
    socket: PathBuf,
    cli_config: PathBuf,
    exec_root: PathBuf,
    daemon: Daemon,
    containerd: Containerd,
}

impl Dockerd {
    /// Starts containerd and dockerd with everything under `dir` (created); containers' cgroups go
    /// under `cgroup_parent`; each `(name, binary)` of `runtimes` is added with `--add-runtime`.
    pub fn start(dir: &Path, cgroup_parent: &str, runtimes: &[(&str, &Path)]) -> Dockerd {
        Dockerd::start_inner(dir, cgroup_parent, runtimes, false)
    }

    /// As [`Dockerd::start`], with docker's default networking (docker0, its iptables rules,
    /// ip_forward, the userland proxy). Only for a process already in a network namespace of its
    /// own: docker changes that namespace's firewall and does not undo it.
    pub fn start_networked(dir: &Path, cgroup_parent: &str) -> Dockerd {
        Dockerd::start_inner(dir, cgroup_parent, &[], true)
    }

    fn start_inner(dir: &Path, cgroup_parent: &str, runtimes: &[(&str, &Path)], networked: bool) -> Dockerd {
        for bin in [DOCKERD, DOCKER] {
            super::engine_binary(bin);
        }
        let containerd = Containerd::start(&dir.join("containerd"));
        let cli_config = dir.join("cli");
        std::fs::create_dir_all(&cli_config).expect("creating the docker CLI config dir");
        std::fs::write(cli_config.join("config.json"), "{}").expect("writing the docker CLI config");
        // 20.10 writes its trust key to /etc/docker/key.json unless told otherwise; only the
        // config file can (there is no such flag).
        let daemon_json = dir.join("daemon.json");
        let key = dir.join("key.json");
        std::fs::write(&daemon_json, serde_json::json!({ "deprecated-key-path": key }).to_string())
            .expect("writing daemon.json");
        let socket = dir.join("docker.sock");
        let exec_root = dir.join("exec");

        let mut cmd = Command::new(DOCKERD);
        cmd.env("PATH", super::DAEMON_PATH)
            .arg("--config-file")
            .arg(&daemon_json)
            .arg("--containerd")
            .arg(containerd.socket())
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--storage-driver=overlay2")
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", cgroup_parent]);
        if !networked {
            cmd.args(["--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"])
                .args(["--bridge=none", "--userland-proxy=false"]);
        }
        for (name, binary) in runtimes {
            cmd.arg("--add-runtime").arg(format!("{name}={}", binary.display()));
        }
        let daemon = Daemon::spawn("dockerd", &mut cmd, &dir.join("dockerd.log"));
        let mut dockerd = Dockerd { socket, cli_config, exec_root, daemon, containerd };
        let mut version = dockerd.docker();
        version.arg("version");
        dockerd.daemon.wait_ready(START_GUARD, || try_run(&mut version, PROBE_GUARD).is_ok_and(|out| out.code == 0));
        dockerd
    }

    /// `docker` talking to this daemon only, with a CLI config of its own.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &self.cli_config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        cmd
    }

    /// The containerd this dockerd runs on.
    pub fn containerd(&self) -> &Containerd {
        &self.containerd
    }

    /// `docker load` of a docker-archive.
    pub fn load(&self, archive: &Path) {
        run_ok(self.docker().arg("load").arg("--input").arg(archive));
    }

    /// `docker inspect --format FORMAT ID`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        run_ok(self.docker().args(["inspect", "--format", format, id])).trim().to_string()
    }

    /// Like [`Self::inspect`], but `None` if the engine does not know `id` (yet).
    pub fn try_inspect(&self, id: &str, format: &str) -> Option<String> {
        let out = try_run(self.docker().args(["inspect", "--format", format, id]), HANG_GUARD).ok()?;
        (out.code == 0).then(|| out.stdout.trim().to_string())
    }

    /// The `--root` the runc shim gives a runc-compatible runtime for dockerd's containers (dockerd
    /// passes `<exec-root>/runtime-runc` as the shim's root; the shim appends the namespace).
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime-runc/moby")
    }

    /// Removes every container, running or not; reports what it removed. Best effort, for teardown.
    pub fn remove_everything(&self) -> Vec<String> {
        let ids = try_run(self.docker().args(["ps", "--all", "--quiet", "--no-trunc"]), HANG_GUARD)
            .map(|out| out.stdout.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut removed = Vec::new();
        for id in ids {
            match try_run(self.docker().args(["rm", "--force", &id]), HANG_GUARD) {
                Ok(out) if out.code == 0 => removed.push(format!("removed docker container {id}")),
                Ok(out) => eprintln!("teardown: {out}"),
                Err(e) => eprintln!("teardown: {e}"),
            }
        }
        removed
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        for r in self.remove_everything() {
            eprintln!("teardown of dockerd {}: {r}", self.socket.display());
        }
        self.daemon.stop();
        // Then `containerd` drops: it removes what dockerd left in it and stops.
    }
}
