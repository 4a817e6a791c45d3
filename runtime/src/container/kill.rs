//! `kill`: signal init, or with `all` every process in the container's cgroup (SIGKILL through
//! v2's `cgroup.kill` where the kernel has it).

use super::Container;
use crate::state::Status;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Sends signal number `signal` (1-64, real-time ones included) to container `id`.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let c = Container::open(root, id)?;
    let status = c.status();
    let cgroup = &c.state.cgroup;
    // A frozen process only acts on SIGKILL once thawed: killing a paused container thaws it,
    // as runc does; other signals stay pending until `resume`.
    let thaw_after = signal == libc::SIGKILL && cgroup.is_frozen();
    if all {
        if signal == libc::SIGKILL && cgroup.kill_all()? {
            return Ok(());
        }
        // Frozen, nothing in the cgroup can fork a process the loop would miss.
        // Best effort: without a freezer the signals still go out.
        let froze = !cgroup.is_frozen() && cgroup.freeze(true).is_ok();
        let sent = signal_each(&cgroup.pids()?, signal);
        if froze || thaw_after {
            cgroup.freeze(false)?;
        }
        return sent;
    }
    match status {
        // runc's words: containerd matches "container not running".
        Status::Stopped => bail!("container not running: {id} has stopped (use --all for leftover processes)"),
        Status::Creating => bail!("container {id} is still being created"),
        Status::Created | Status::Running | Status::Paused => {}
    }
    send(c.state.pid, signal)
        .with_context(|| format!("sending signal {signal} to container {id} (pid {})", c.state.pid))?;
    if thaw_after {
        cgroup.freeze(false)?;
    }
    Ok(())
}

fn signal_each(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        match send(pid, signal) {
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                return Err(e).with_context(|| format!("sending signal {signal} to pid {pid}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// kill(2) with a raw number: nix's `Signal` has no real-time signals.
fn send(pid: i32, signal: i32) -> std::io::Result<()> {
    // 0 and negative pids name process groups: never ours to signal.
    if pid <= 0 {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: kill(2) takes two integers; the signal number was checked by `signal::parse`.
    if unsafe { libc::kill(pid, signal) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
