//! A private berthd (this build's binary) with its own --root and --state in a temporary
//! directory, and the `berth` CLI pointed at it with `-H`. Stopped, and its directory removed,
//! on drop.

use super::process::{run, Daemon, Outcome};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// berthd's default bridge device.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// A hang guard for the daemon to start serving.
const START_GUARD: Duration = Duration::from_secs(30);

pub fn berthd_bin() -> PathBuf {
    bin("berthd")
}

pub fn berth_bin() -> PathBuf {
    bin("berth")
}

fn bin(name: &str) -> PathBuf {
    let bin = crate::profile_dir().join(name);
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` before the tests", bin.display());
    bin
}

/// A running berthd. Fields drop in order: the daemon stops before its directory goes.
pub struct Berthd {
    daemon: Option<Daemon>,
    extra: Vec<String>,
    /// A network namespace (an nsfs path) the daemon runs in, instead of the host's.
    netns: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Berthd {
    pub fn start() -> Berthd {
        Berthd::start_with(&[])
    }

    /// With extra daemon flags (e.g. `--auth-file F`). Without a `--bridge` among them, the
    /// daemon runs with `--bridge none` (as the docker fixture does): containers default to
    /// `--network none` and the host's network is left alone.
    pub fn start_with(extra: &[&str]) -> Berthd {
        Berthd::start_in(None, extra)
    }

    /// In the network namespace at `netns` (its bridges, iptables rules and forwarding live
    /// there), with the default bridge network on unless `extra` says otherwise.
    pub fn start_in_netns(netns: &Path, extra: &[&str]) -> Berthd {
        let mut flags = vec!["--bridge", DEFAULT_BRIDGE];
        flags.extend_from_slice(extra);
        Berthd::start_in(Some(netns.to_path_buf()), &flags)
    }

    fn start_in(netns: Option<PathBuf>, extra: &[&str]) -> Berthd {
        crate::require_root();
        let dir = tempfile::Builder::new().prefix("berth-it-berthd-").tempdir().expect("berthd tempdir");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra.iter().any(|a| a == "--bridge" || a.starts_with("--bridge=")) {
            extra.push("--bridge=none".into());
        }
        let mut b = Berthd { daemon: None, extra, netns, dir };
        b.launch();
        b
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.state().join("berthd.sock")
    }

    /// `unix:///…/berthd.sock`, for `berth -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().map_or(0, Daemon::pid)
    }

    /// The daemon command line this fixture runs (for tests of the daemon's own errors).
    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(netns) => {
                // nsenter execs berthd: the daemon's pid is the child's.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", netns.display())).arg(berthd_bin());
                c
            }
            None => Command::new(berthd_bin()),
        };
        cmd.arg("--root").arg(self.root()).arg("--state").arg(self.state()).args(&self.extra);
        cmd.env("RUST_LOG", "berthd=debug,info");
        cmd
    }

    fn launch(&mut self) {
        let mut cmd = self.command();
        let mut daemon = Daemon::spawn("berthd", &mut cmd, &self.dir.path().join("berthd.log"));
        let socket = self.socket();
        daemon.wait_ready(START_GUARD, || UnixStream::connect(&socket).is_ok());
        self.daemon = Some(daemon);
    }

    /// SIGKILL, no cleanup by the daemon: what a crash leaves.
    pub fn kill9(&mut self) {
        if let Some(d) = &self.daemon {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(d.pid() as libc::pid_t, libc::SIGKILL) };
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    /// SIGTERM and wait (the daemon's clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    /// Starts the daemon again on the same root and state.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// `berth -H <this daemon> args…`.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("-H").arg(self.host()).args(args);
        cmd
    }

    pub fn berth(&self, args: &[&str]) -> Outcome {
        run(&mut self.berth_cmd(args))
    }

    /// `berth args…`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(out.code == 0, "berth {args:?} failed: {out}\nberthd log:\n{}", self.log_tail(30));
        out.stdout.clone()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.as_ref().map(|d| d.log_tail(lines)).unwrap_or_default()
    }
}

impl Berthd {
    /// Removes every container of this daemon (`rm -f`), as a test's teardown; never panics.
    pub fn remove_all_containers(&self) {
        let Ok(out) =
            super::process::try_run(&mut self.berth_cmd(&["ps", "-aq", "--no-trunc"]), Duration::from_secs(60))
        else {
            return;
        };
        for id in out.stdout.split_whitespace() {
            let _ = super::process::try_run(&mut self.berth_cmd(&["rm", "-f", id]), Duration::from_secs(60));
        }
    }

    /// What containers `ids` of this daemon left behind: shim processes serving this daemon,
    /// mounts under its directory, bundle and container directories, cgroups named after the ids.
    pub fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        let socket = self.socket().display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&socket) {
                found.push(format!("shim process {}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
        let dir = self.dir().display().to_string();
        for line in std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            if let Some(mountpoint) = line.split(' ').nth(4) {
                if mountpoint.starts_with(&dir) {
                    found.push(format!("mount {mountpoint}"));
                }
            }
        }
        for sub in ["tasks"] {
            for e in std::fs::read_dir(self.state().join(sub)).into_iter().flatten().flatten() {
                found.push(format!("bundle {}", e.path().display()));
            }
        }
        for e in std::fs::read_dir(self.root().join("containers")).into_iter().flatten().flatten() {
            found.push(format!("container dir {}", e.path().display()));
        }
        for id in ids {
            for base in [
                "/sys/fs/cgroup/memory/berth",
                "/sys/fs/cgroup/pids/berth",
                "/sys/fs/cgroup/berth",
                "/sys/fs/cgroup/unified/berth",
            ] {
                let p = Path::new(base).join(id);
                if p.exists() {
                    found.push(format!("cgroup {}", p.display()));
                }
            }
        }
        found
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            self.remove_all_containers();
        }
    }
}

/// Every path under `dir` (not following symlinks), relative to `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_path_buf());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
