//! OCI hooks: the container state on stdin, the hook's own args and env, and a timeout. A
//! failing hook fails the operation it belongs to (except poststart/poststop, which warn).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs each hook in order, stopping at the first failure.
pub fn run_all(hooks: &[Hook], state: &serde_json::Value, phase: &str) -> Result<()> {
    let input = state.to_string();
    for hook in hooks {
        run(hook, &input).with_context(|| format!("{phase} hook {}", hook.path().display()))?;
    }
    Ok(())
}

fn run(hook: &Hook, state: &str) -> Result<()> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().context("starting hook")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook.timeout().map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
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
