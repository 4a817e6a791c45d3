//! The runc command-line client: every container operation the shim performs is one run of the
//! OCI runtime binary (`berth-runtime` by default, any runc-compatible binary when the runtime
//! options name one), with `--root R --log L --log-format json` in front. Nothing here links to
//! the runtime library, so runc or crun work in its place.

use crate::reaper::Reaper;
use anyhow::{bail, Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// A failed runtime command: what ran, and the runtime's own message.
#[derive(Debug, thiserror::Error)]
#[error("{binary} {command}: {message}")]
pub struct RuntimeError {
    /// The runtime binary.
    pub binary: String,
    /// The subcommand (`create`, `kill`, ...).
    pub command: String,
    /// The runtime's error message (from its JSON log or stderr), or the exit status.
    pub message: String,
}

/// The child's stdio for commands whose stdio becomes the container process's (`create`,
/// `exec` without a terminal).
#[derive(Default)]
pub struct ProcessStdio {
    /// stdin (None: /dev/null).
    pub stdin: Option<std::fs::File>,
    /// stdout (None: /dev/null).
    pub stdout: Option<std::fs::File>,
    /// stderr (None: /dev/null).
    pub stderr: Option<std::fs::File>,
}

/// One OCI runtime binary with its state root and log file.
#[derive(Clone)]
pub struct Runtime {
    binary: PathBuf,
    root: PathBuf,
    log: PathBuf,
    /// The reaper that owns waiting for children (None in the short-lived `delete` command).
    reaper: Option<Arc<Reaper>>,
}

/// `name` as given if it has a slash, else the first executable `name` on `$PATH`.
pub fn find_binary(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .with_context(|| format!("runtime binary {name:?} not found on PATH"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The default runtime: `berth-runtime` next to this executable, else on `$PATH`.
pub fn default_binary() -> Result<PathBuf> {
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        let beside = dir.join("berth-runtime");
        if is_executable(&beside) {
            return Ok(beside);
        }
    }
    find_binary("berth-runtime")
}

impl Runtime {
    /// A client for `binary` with state in `root`, logging to `log`.
    pub fn new(binary: PathBuf, root: PathBuf, log: PathBuf, reaper: Option<Arc<Reaper>>) -> Runtime {
        Runtime { binary, root, log, reaper }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).arg("--log").arg(&self.log).args(["--log-format", "json"]).args(args);
        cmd
    }

    /// Runs `cmd` to completion: `input` on stdin, stdout returned, errors carry the runtime's
    /// message. `stdio` replaces stdin/stdout/stderr when given (create, exec).
    fn run(&self, mut cmd: Command, name: &str, input: Option<&[u8]>, stdio: Option<ProcessStdio>) -> Result<Vec<u8>> {
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let capture = stdio.is_none();
        match stdio {
            Some(s) => {
                cmd.stdin(s.stdin.map_or_else(Stdio::null, Stdio::from));
                cmd.stdout(s.stdout.map_or_else(Stdio::null, Stdio::from));
                cmd.stderr(s.stderr.map_or_else(Stdio::null, Stdio::from));
            }
            None => {
                cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let since = std::time::Instant::now();
        let spawned = {
            let _spawning = crate::reaper::spawn_guard();
            cmd.spawn()
        };
        let mut child = spawned.with_context(|| format!("running {} {name}", self.binary.display()))?;
        if let Some(reaper) = &self.reaper {
            reaper.spawned();
        }
        // The child's copies of the container's stdio are in `cmd`: drop them now, so the
        // shim holds no write end of the container's output pipes.
        drop(cmd);
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A runtime that exits without reading gives EPIPE; its exit status tells why.
            let _ = stdin.write_all(input);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if capture {
            // Both at once: a runtime (or its hook) filling the stderr pipe while the shim waits
            // for stdout's EOF would deadlock.
            let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
            std::thread::scope(|scope| -> Result<()> {
                let err_reader = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(scope, || stderr.map(|mut s| s.read_to_end(&mut err)).transpose())
                    .context("starting the runtime's stderr reader")?;
                if let Some(mut s) = stdout {
                    s.read_to_end(&mut out).context("reading the runtime's stdout")?;
                }
                match err_reader.join() {
                    Ok(r) => r.map(drop).context("reading the runtime's stderr"),
                    Err(_) => bail!("the runtime's stderr reader panicked"),
                }
            })?;
        }
        let status = match &self.reaper {
            Some(reaper) => reaper.wait_for(child.id() as i32, since).status,
            None => {
                let s = child.wait().context("waiting for the runtime")?;
                s.code().map_or_else(
                    || 128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0) as u32,
                    |c| c as u32,
                )
            }
        };
        if status != 0 {
            let message = self
                .log_error(log_start)
                .or_else(|| Some(String::from_utf8_lossy(&err).trim().to_string()).filter(|s| !s.is_empty()))
                .unwrap_or_else(|| format!("exit status {status}"));
            return Err(
                RuntimeError { binary: self.binary.display().to_string(), command: name.into(), message }.into()
            );
        }
        Ok(out)
    }

    /// The last error the runtime logged (JSON lines: `{"level":"error","msg":...}`) after `offset`.
    fn log_error(&self, offset: u64) -> Option<String> {
        let mut f = std::fs::File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(offset)).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .find_map(|v| v["msg"].as_str().map(str::to_string))
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`; the container's init inherits `stdio`.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ProcessStdio,
    ) -> Result<()> {
        let mut cmd = self.command(&["create", "--bundle"]);
        cmd.arg(bundle).arg("--pid-file").arg(pid_file);
        if let Some(socket) = console {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id);
        self.run(cmd, "create", None, Some(stdio)).map(drop)
    }

    /// `start ID`.
    pub fn start(&self, id: &str) -> Result<()> {
        self.run(self.command(&["start", id]), "start", None, None).map(drop)
    }

    /// `exec --process F --detach --pid-file P [--console-socket S] ID`.
    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ProcessStdio,
    ) -> Result<()> {
        let mut cmd = self.command(&["exec", "--process"]);
        cmd.arg(process).arg("--detach").arg("--pid-file").arg(pid_file);
        if let Some(socket) = console {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id);
        self.run(cmd, "exec", None, Some(stdio)).map(drop)
    }

    /// `kill [--all] ID SIGNAL`.
    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let signal = signal.to_string();
        let args: Vec<&str> = if all { vec!["kill", "--all", id, &signal] } else { vec!["kill", id, &signal] };
        self.run(self.command(&args), "kill", None, None).map(drop)
    }

    /// `delete [--force] ID`.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let args: Vec<&str> = if force { vec!["delete", "--force", id] } else { vec!["delete", id] };
        self.run(self.command(&args), "delete", None, None).map(drop)
    }

    /// `pause ID`.
    pub fn pause(&self, id: &str) -> Result<()> {
        self.run(self.command(&["pause", id]), "pause", None, None).map(drop)
    }

    /// `resume ID`.
    pub fn resume(&self, id: &str) -> Result<()> {
        self.run(self.command(&["resume", id]), "resume", None, None).map(drop)
    }

    /// `update --resources - ID` with `resources` (JSON of `LinuxResources`) on stdin.
    pub fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        self.run(self.command(&["update", "--resources", "-", id]), "update", Some(resources), None).map(drop)
    }

    /// `ps --format json ID`: the container's pids.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run(self.command(&["ps", "--format", "json", id]), "ps", None, None)?;
        let pids: Option<Vec<u32>> = serde_json::from_slice(&out).context("parsing the runtime's ps output")?;
        Ok(pids.unwrap_or_default())
    }
}

/// Reads a pid file the runtime wrote.
pub fn read_pid_file(path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading pid file {}", path.display()))?;
    let pid: i32 = text.trim().parse().with_context(|| format!("pid file {} holds {text:?}", path.display()))?;
    if pid <= 0 {
        bail!("pid file {} holds {pid}", path.display());
    }
    Ok(pid)
}
