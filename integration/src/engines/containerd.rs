//! A private containerd 1.6 (Debian's `containerd`) in a directory of its own: own root, state,
//! socket and config, CRI disabled. The only thing it puts outside that directory is the shim
//! sockets, which containerd 1.6 always creates in /run/containerd/s (and removes again). Its runc
//! shim (`containerd-shim-runc-v2`) runs any runc-compatible binary passed as
//! `ctr run --runc-binary`.

use super::process::{run_ok, try_run, Daemon, HANG_GUARD, PROBE_GUARD};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The containerd daemon.
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// Its command-line client.
pub const CTR: &str = "/usr/bin/ctr";
/// containerd's runc shim v2, which drives a runc-compatible runtime binary.
pub const RUNC_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

/// How long containerd may take to answer after it was started: a hang guard.
const START_GUARD: Duration = Duration::from_secs(60);

/// A running private containerd. Dropping it removes every task and container it still has (their
/// shims exit with them), then stops it.
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    daemon: Daemon,
}

impl Containerd {
    /// Starts containerd with its config, root, state, socket and log under `dir` (created).
    pub fn start(dir: &Path) -> Containerd {
        for bin in [CONTAINERD, CTR, RUNC_SHIM] {
            super::engine_binary(bin);
        }
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let socket = dir.join("containerd.sock");
        let d = dir.display();
        // No debug or metrics listener, no CRI (it would open a TCP streaming port), and the opt
        // plugin's directory moved from /opt/containerd into ours.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
"#,
            socket = socket.display()
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("writing containerd's config.toml");
        let daemon = Daemon::spawn(
            "containerd",
            Command::new(CONTAINERD).arg("--config").arg(&config_path).env("PATH", super::DAEMON_PATH),
            &dir.join("containerd.log"),
        );
        let mut containerd = Containerd { dir: dir.to_path_buf(), socket, daemon };
        let mut version = containerd.ctr("default");
        version.arg("version");
        let socket = containerd.socket.clone();
        containerd.daemon.wait_ready(START_GUARD, || {
            socket.exists() && try_run(&mut version, PROBE_GUARD).is_ok_and(|out| out.code == 0)
        });
        containerd
    }

    /// The daemon's gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ctr --address <socket> --namespace <namespace>`, ready for a subcommand.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut cmd = Command::new(CTR);
        cmd.arg("--address").arg(&self.socket).arg("--namespace").arg(namespace);
        cmd
    }

    /// `ctr images import` of an oci-archive into `namespace`.
    pub fn import(&self, namespace: &str, archive: &Path) {
        run_ok(self.ctr(namespace).args(["images", "import"]).arg(archive));
    }

    /// The pid and status (`RUNNING`, `PAUSED`, `STOPPED`, ...) of task `id`, from `ctr tasks ls`.
    pub fn task(&self, namespace: &str, id: &str) -> Option<(i32, String)> {
        let out = try_run(self.ctr(namespace).args(["tasks", "ls"]), HANG_GUARD).ok()?;
        out.stdout.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.as_slice() {
                [task, pid, status, ..] if *task == id => Some((pid.parse().ok()?, status.to_string())),
                _ => None,
            }
        })
    }

    /// Kills and removes every task and container in every namespace; reports what it removed.
    /// Best effort, for teardown.
    pub fn remove_everything(&self) -> Vec<String> {
        let mut removed = Vec::new();
        let lines = |cmd: &mut Command| -> Vec<String> {
            try_run(cmd, HANG_GUARD)
                .map(|out| out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut quietly = |cmd: &mut Command, what: String| match try_run(cmd, HANG_GUARD) {
            Ok(out) if out.code == 0 => removed.push(what),
            Ok(out) => eprintln!("teardown: {out}"),
            Err(e) => eprintln!("teardown: {e}"),
        };
        for ns in lines(self.ctr("default").args(["namespaces", "ls", "-q"])) {
            for task in lines(self.ctr(&ns).args(["tasks", "ls", "-q"])) {
                // A frozen task only dies of the SIGKILL `rm -f` sends once it is thawed, and not
                // every runtime thaws it on its own.
                if self.task(&ns, &task).is_some_and(|(_, status)| status == "PAUSED") {
                    quietly(self.ctr(&ns).args(["tasks", "resume", &task]), format!("resumed task {ns}/{task}"));
                }
                quietly(self.ctr(&ns).args(["tasks", "rm", "-f", &task]), format!("removed task {ns}/{task}"));
            }
            for c in lines(self.ctr(&ns).args(["containers", "ls", "-q"])) {
                quietly(self.ctr(&ns).args(["containers", "rm", &c]), format!("removed container {ns}/{c}"));
            }
        }
        removed
    }

    /// Kills the shims that outlived containerd (tasks it could not remove; each shim is named
    /// after containerd's socket) and removes the sockets they leave in /run/containerd/s, which
    /// only a shim that exits normally removes. Reports what it did.
    fn reap_stray_shims(&self) -> Vec<String> {
        let mut reaped = super::scratch::kill_processes_naming(&self.dir);
        // Each task's bundle keeps its shim's address: unix:///run/containerd/s/<sha256>.
        let tasks = self.dir.join("state/io.containerd.runtime.v2.task");
        let bundles = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten().map(|task| task.path()));
        for bundle in bundles {
            let address = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
            let Some(socket) = address.trim().strip_prefix("unix://").map(PathBuf::from) else { continue };
            if socket.starts_with("/run/containerd/s") && std::fs::remove_file(&socket).is_ok() {
                reaped.push(format!("removed shim socket {}", socket.display()));
            }
        }
        reaped
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let mut done = self.remove_everything();
        self.daemon.stop();
        done.extend(self.reap_stray_shims());
        for d in done {
            eprintln!("teardown of containerd {}: {d}", self.socket.display());
        }
    }
}
