//! `kill`: signal init, or with `all` every process in the container's cgroup (SIGKILL through
//! v2's `cgroup.kill` where the kernel has it).

use super::Container;
use crate::state::Status;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// Sends `signal` to container `id`.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<()> {
    let c = Container::open(root, id)?;
    let status = c.status();
    let cgroup = &c.state.cgroup;
    // A frozen process only acts on SIGKILL once thawed: killing a paused container thaws it,
    // as runc does; other signals stay pending until `resume`.
    let thaw_after = signal == Signal::SIGKILL && cgroup.is_frozen();
    if all {
        if signal == Signal::SIGKILL && cgroup.kill_all()? {
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
    send(Pid::from_raw(c.state.pid), signal)
        .with_context(|| format!("sending {signal} to container {id} (pid {})", c.state.pid))?;
    if thaw_after {
        cgroup.freeze(false)?;
    }
    Ok(())
}

fn signal_each(pids: &[i32], signal: Signal) -> Result<()> {
    for &pid in pids {
        match send(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).with_context(|| format!("sending {signal} to pid {pid}")),
        }
    }
    Ok(())
}
