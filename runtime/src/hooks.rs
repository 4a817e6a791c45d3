//! OCI hooks: the container state on stdin, the hook's own args and env, and a timeout. A
//! failing hook fails the operation it belongs to (except poststart/poststop, which warn).
//!
//! A hook whose `env` is absent gets the environment runc gives it (runc runs hooks with Go's
//! exec and a nil Env, which inherits): the runtime's own for the hooks run in the runtime's
//! namespaces (prestart, createRuntime, poststart, poststop), the container process's for the
//! ones run by the container's init (createContainer, startContainer). `"env": []` is an empty
//! environment, as with runc.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment a hook without `env` inherits.
#[derive(Debug, Clone, Copy)]
pub enum Inherit<'a> {
    /// This process's (a hook run in the runtime's namespaces).
    Runtime,
    /// The container process's `KEY=value` list (a hook run by the container's init).
    Process(&'a [String]),
}

impl Inherit<'_> {
    fn env(self) -> Vec<Vec<u8>> {
        match self {
            Inherit::Runtime => std::env::vars_os().map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat()).collect(),
            Inherit::Process(env) => env.iter().map(|kv| kv.as_bytes().to_vec()).collect(),
        }
    }
}

/// Runs each hook in order, stopping at the first failure.
pub fn run_all(hooks: &[Hook], state: &serde_json::Value, phase: &str, inherit: Inherit) -> Result<()> {
    let input = state.to_string();
    for hook in hooks {
        run(hook, &input, inherit).with_context(|| format!("{phase} hook {}", hook.path().display()))?;
    }
    Ok(())
}

/// Runs every hook, logging a warning for each failure (poststart, poststop: the spec has the
/// remaining hooks and the lifecycle continue as if it had succeeded). They run in the runtime's
/// namespaces.
pub fn run_all_warn(hooks: &[Hook], state: &serde_json::Value, phase: &str) {
    let input = state.to_string();
    for hook in hooks {
        if let Err(e) = run(hook, &input, Inherit::Runtime) {
            crate::logging::warn(&format!("{phase} hook {}: {e:#}", hook.path().display()));
        }
    }
}

/// A hook's execve arguments, exactly as config.json has them (`Command` would sort the env and
/// drop entries without `=`). The pointer arrays point into the CStrings owned alongside them.
struct ExecArgs {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into heap buffers owned by the same struct (they do not move
// with it) and are only read, by execve in the forked child.
unsafe impl Send for ExecArgs {}
// SAFETY: as above; nothing is ever written through them.
unsafe impl Sync for ExecArgs {}

impl ExecArgs {
    fn new(hook: &Hook, inherit: Inherit) -> Result<ExecArgs> {
        let cstr =
            |s: &[u8]| CString::new(s).with_context(|| format!("{:?} contains a NUL byte", String::from_utf8_lossy(s)));
        let path = cstr(hook.path().as_os_str().as_bytes())?;
        let mut args: Vec<CString> = hook.args().iter().flatten().map(|a| cstr(a.as_bytes())).collect::<Result<_>>()?;
        if args.is_empty() {
            args.push(path.clone());
        }
        let env: Vec<CString> = match hook.env() {
            Some(env) => env.iter().map(|e| cstr(e.as_bytes())).collect::<Result<_>>()?,
            None => inherit.env().iter().map(|e| cstr(e)).collect::<Result<_>>()?,
        };
        let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
        let (argv, envp) = (ptrs(&args), ptrs(&env));
        Ok(ExecArgs { path, _strings: args.into_iter().chain(env).collect(), argv, envp })
    }
}

fn run(hook: &Hook, state: &str, inherit: Inherit) -> Result<()> {
    let exec = ExecArgs::new(hook, inherit)?;
    let mut cmd = Command::new(hook.path());
    cmd.env_clear().stdin(Stdio::piped());
    // SAFETY: the closure runs in the forked child once stdio is set up and only calls execve,
    // which is async-signal-safe, on buffers built before the fork. On success the hook runs with
    // exactly its argv and envp; on failure the errno goes back to the parent through spawn.
    unsafe {
        cmd.pre_exec(move || {
            let e = &exec; // the whole struct moves in, not its (non-Send) fields one by one
            libc::execve(e.path.as_ptr(), e.argv.as_ptr(), e.envp.as_ptr());
            Err(std::io::Error::last_os_error())
        });
    }
    let mut child = cmd.spawn().context("starting hook")?;
    let deadline = hook.timeout().map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let stdin = child.stdin.take();
    // The state goes in from a second thread, so a hook that never reads a state larger than the
    // pipe cannot hold us past its timeout (killing it ends the write with EPIPE). The thread is
    // joined before this returns: the runtime is single-threaded again before any later clone.
    std::thread::scope(|scope| {
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                // A hook that does not read its stdin is fine: ignore EPIPE.
                let _ = stdin.write_all(state.as_bytes());
            });
        }
        wait(&mut child, deadline, hook)
    })
}

fn wait(child: &mut std::process::Child, deadline: Option<Instant>, hook: &Hook) -> Result<()> {
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait().context("waiting for hook")? {
            if status.success() {
                return Ok(());
            }
            bail!("exited with {status}");
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", hook.timeout().unwrap_or_default());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
