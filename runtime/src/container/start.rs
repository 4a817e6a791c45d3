//! `start`: release init from the exec fifo so it execs the user process, then poststart hooks.

use super::Container;
use crate::state::{Status, EXEC_FIFO};
use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use std::os::fd::AsFd;
use std::path::Path;

/// Starts container `id`.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::open(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => bail!("cannot start a container that is still being created"),
    }
    let fifo_path = c.dir.path.join(EXEC_FIFO);
    // Non-blocking open for reading releases init's blocking open for writing at once.
    let fifo = nix::fcntl::open(&fifo_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {}", fifo_path.display()))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !crate::state::init_alive(c.state.pid, c.state.init_start_time) {
                    bail!("container init exited before it could be started");
                }
            }
            Ok(_) => break,
            Err(e) => return Err(e).context("waiting on the exec fifo"),
        }
    }
    let mut first = [0u8; 1];
    match nix::unistd::read(&fifo, &mut first) {
        Ok(1) => {}
        _ => bail!("container init exited before it could be started"),
    }
    // Released: from now on the container is running, even if this command dies.
    std::fs::remove_file(&fifo_path).with_context(|| format!("removing {}", fifo_path.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Init's end of the fifo is close-on-exec: EOF means the program has been exec'd (or init
    // died), so poststart hooks see the user's program, as the spec orders them. Instead of "0",
    // init sends "E<error>" when a startContainer hook failed, and "0" then "E<error>" when the
    // seccomp filter (installed after the "0", right before execve) could not be installed.
    let (mut rest, mut buf) = (Vec::new(), [0u8; 512]);
    loop {
        match nix::unistd::read(&fifo, &mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                if std::time::Instant::now() >= deadline {
                    crate::logging::warn(&format!(
                        "container {id}: no exec seen within 10s; running poststart hooks anyway"
                    ));
                    break;
                }
                let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) => return Err(e).context("waiting for the program to be exec'd"),
        }
    }
    let error = match (first[0], rest.first()) {
        (b'E', _) => Some(&rest[..]),
        (_, Some(b'E')) => Some(&rest[1..]),
        _ => None,
    };
    if let Some(error) = error {
        // Init exits after sending the error, but its end of the fifo closes before it is a
        // zombie: return only once it is gone, so that `state` says stopped and `delete` works.
        if !super::wait_gone(c.state.pid, c.state.init_start_time, std::time::Duration::from_secs(10)) {
            crate::logging::warn(&format!("container {id}: init still runs 10s after a failed start"));
        }
        bail!("{}", String::from_utf8_lossy(error));
    }
    if let Some(hooks) = c.state.hooks()? {
        let state = c.state.oci_json(Status::Running);
        // The spec: a failing poststart hook is logged; the container keeps running.
        crate::hooks::run_all_warn(hooks.poststart().as_deref().unwrap_or_default(), &state, "poststart");
    }
    Ok(())
}
