//! `run`: create + start; in the foreground, forward signals to init, wait for it, delete the
//! container and return its exit code (128+n for a signal), as runc does.

use super::create::{create, CreateOptions};
use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::path::Path;

/// Runs container `opts.id`; returns the exit code to exit with.
pub fn run(root: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
    let created = create(root, opts)?;
    if let Err(e) = super::start::start(root, &opts.id) {
        let _ = super::delete::delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(created.pid);
    super::delete::delete(root, &opts.id, true)?;
    code
}

/// Forwards every catchable signal to `pid` until it exits; returns its exit code.
fn wait_forwarding(pid: i32) -> Result<i32> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("blocking signals")?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    let init = Pid::from_raw(pid);
    loop {
        if let Some(code) = exit_code(waitpid(init, Some(WaitPidFlag::WNOHANG)).context("waiting for init")?) {
            return Ok(code);
        }
        let Some(info) = sfd.read_signal().context("reading signalfd")? else { continue };
        let signo = info.ssi_signo as i32;
        if signo != libc::SIGCHLD {
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = nix::sys::signal::kill(init, sig);
            }
        }
    }
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}
