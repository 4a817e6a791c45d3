//! Running engine commands and daemons. Output goes through files, not pipes (a container may
//! inherit a pipe and hold it open); every wait has a hang guard that turns a hung engine into a
//! test failure; daemons are stopped by pid when dropped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one engine command may run before the test gives up on it. A guard against hangs,
/// never a performance check: these commands normally take well under a second.
pub const HANG_GUARD: Duration = Duration::from_secs(120);
/// How long one readiness probe of a starting daemon (`ctr version`, `docker version`) may take
/// before it is killed and the next one runs: a client that dialled before the daemon's socket
/// existed can sit in its gRPC reconnect backoff far longer than the daemon takes to start.
pub const PROBE_GUARD: Duration = Duration::from_secs(10);

/// How long a daemon gets to exit after SIGTERM before it is sent SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    /// The command, for messages.
    pub command: String,
    /// Exit code; 128 + signal number if a signal ended it.
    pub code: i32,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing the output, unless the command exited 0; returns stdout.
    pub fn expect_success(self) -> String {
        assert_eq!(self.code, 0, "command failed: {self}");
        self.stdout
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> exit {}\nstdout: {}\nstderr: {}", self.command, self.code, self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdin null) to completion and returns what it did; panics if it cannot be started
/// or hangs past [`HANG_GUARD`].
pub fn run(cmd: &mut Command) -> Outcome {
    try_run(cmd, HANG_GUARD).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` and asserts it exited 0; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    run(cmd).expect_success()
}

/// Like [`run`], but reports a failure to start or a hang as an error instead of panicking, for
/// teardown code (a panic while a test is already unwinding aborts the test binary).
pub fn try_run(cmd: &mut Command, limit: Duration) -> Result<Outcome, String> {
    Background::try_spawn(cmd)?.try_wait(limit)
}

/// A command running while the test does something else, e.g. a foreground `run --rm` whose
/// container the test inspects before letting it finish. Killed and reaped when dropped.
pub struct Background {
    command: String,
    child: Option<Child>,
    stdout: File,
    stderr: File,
}

impl Background {
    /// Starts `cmd` with stdin null and stdout/stderr going to temporary files.
    pub fn spawn(cmd: &mut Command) -> Background {
        Background::try_spawn(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Background::spawn`] with `stdin` as the command's stdin (e.g. a pipe the test keeps open).
    pub fn spawn_with_stdin(cmd: &mut Command, stdin: impl Into<Stdio>) -> Background {
        cmd.stdin(stdin);
        Background::spawn_as_set(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_spawn(cmd: &mut Command) -> Result<Background, String> {
        cmd.stdin(Stdio::null());
        Background::spawn_as_set(cmd)
    }

    /// Spawns `cmd` with the stdin it was given, stdout/stderr going to temporary files.
    fn spawn_as_set(cmd: &mut Command) -> Result<Background, String> {
        let command = describe(cmd);
        let stdout = tempfile::tempfile().map_err(|e| format!("stdout file for {command}: {e}"))?;
        let stderr = tempfile::tempfile().map_err(|e| format!("stderr file for {command}: {e}"))?;
        let child = cmd
            .stdout(stdout.try_clone().map_err(|e| format!("dup: {e}"))?)
            .stderr(stderr.try_clone().map_err(|e| format!("dup: {e}"))?)
            .spawn()
            .map_err(|e| format!("starting {command}: {e}"))?;
        Ok(Background { command, child: Some(child), stdout, stderr })
    }

    /// True while the command has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Polls `done` every 20 ms until it returns true. Panics, with the command's output, if the
    /// command exits first (it will not get there any more) or after `timeout` (a hang guard).
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return;
            }
            if !self.is_running() {
                let outcome = self.collect();
                panic!("waiting for {what}: the command exited first: {outcome}");
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what} (while running {})", self.command);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the command to exit (hang guard [`HANG_GUARD`]) and returns what it did.
    pub fn wait(self) -> Outcome {
        self.try_wait(HANG_GUARD).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_wait(mut self, limit: Duration) -> Result<Outcome, String> {
        let deadline = Instant::now() + limit;
        while self.is_running() {
            if Instant::now() >= deadline {
                self.kill();
                let outcome = self.collect();
                return Err(format!("hung for {limit:?}, killed: {outcome}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(self.collect())
    }

    /// Reaps the exited child and reads its output.
    fn collect(&mut self) -> Outcome {
        let status = match self.child.take() {
            Some(mut child) => child.wait().ok(),
            None => None,
        };
        Outcome {
            command: self.command.clone(),
            code: status.map_or(-1, exit_code),
            stdout: read_from_start(&mut self.stdout),
            stderr: read_from_start(&mut self.stderr),
        }
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon the test started (containerd, dockerd), its output in a log file. Stopped on drop:
/// SIGTERM to its pid, then SIGKILL if it does not exit in time, then reaped.
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdin null and stdout/stderr appended to `log`. The daemon gets SIGKILL
    /// if the test thread that started it dies without stopping it.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Daemon {
        let out = File::options().create(true).append(true).open(log).expect("opening the daemon log");
        let err = out.try_clone().expect("dup of the daemon log");
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl, which is
        // async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", describe(cmd)));
        Daemon { name: name.to_string(), child: Some(child), log: log.to_path_buf() }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Polls `ready` until it returns true; panics with the log if the daemon exits first or does
    /// not get ready within `timeout` (a hang guard).
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("{} exited while starting ({status}); its log:\n{}", self.name, self.log_tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {timeout:?}; its log:\n{}",
                self.name,
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the daemon (idempotent): SIGTERM, then SIGKILL after a grace period; reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if std::thread::panicking() {
            eprintln!("--- {} log (last lines) ---\n{}", self.name, self.log_tail(30));
        }
        // Our own child, not yet reaped: the pid cannot have been reused.
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                eprintln!("teardown: {} (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; sending SIGKILL", self.name);
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `program arg arg ...` for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn read_from_start(file: &mut File) -> String {
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut buf));
    String::from_utf8_lossy(&buf).into_owned()
}
