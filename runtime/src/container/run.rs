//! `run`: create + start; in the foreground, forward signals to init, wait for it, delete the
//! container and return its exit code (128+n for a signal), as runc does. With
//! `process.terminal` and no `--console-socket`, the foreground run owns the pty itself: our
//! terminal goes raw and is copied to and from the container's.

use super::create::{create_with_console, CreateOptions};
use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Runs container `opts.id`; returns the exit code to exit with.
pub fn run(root: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
    let spec = crate::spec::load(&opts.bundle)?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let own_pty = terminal && opts.console_socket.is_none();
    if own_pty && detach {
        bail!("run --detach with process.terminal needs --console-socket (someone must hold the pty)");
    }
    let (ours, theirs) = if own_pty {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .context("socketpair for the console")?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let created = create_with_console(root, opts, theirs)?;
    let master = match &ours {
        Some(sock) => match crate::console::receive_master(sock) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = super::delete::delete(root, &opts.id, true);
                return Err(e);
            }
        },
        None => None,
    };
    // Signals are held from before the container's process runs, so one sent meanwhile is
    // forwarded rather than killing us (hooks start with an empty mask: std's spawn resets it).
    if !detach {
        block_forwarded_signals()?;
    }
    if let Err(e) = super::start::start(root, &opts.id) {
        let _ = super::delete::delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(created.pid, master.as_ref());
    super::delete::delete(root, &opts.id, true)?;
    code
}

/// Restores our terminal's mode when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Blocks every signal a foreground run or exec forwards (all it can catch); returns the set.
pub(crate) fn block_forwarded_signals() -> Result<SigSet> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    #[cfg(target_env = "musl")]
    let set = with_signal_34(set);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("blocking signals")?;
    Ok(set)
}

/// musl's sigfillset leaves out signals 32-34, which it reserves for itself; glibc's only 32 and
/// 33. 34 is glibc's SIGRTMIN, which engines may send and runc forwards: it is added by hand (a
/// sigset_t is the kernel's bit array, signal n at bit n-1; musl's sigaddset refuses 34).
#[cfg(target_env = "musl")]
fn with_signal_34(set: SigSet) -> SigSet {
    const BITS: usize = libc::c_ulong::BITS as usize;
    let mut raw = *set.as_ref();
    // SAFETY: sigset_t is an array of c_ulong words (128 bytes in musl); word 33 / BITS is in it.
    unsafe { *(&mut raw as *mut libc::sigset_t).cast::<libc::c_ulong>().add(33 / BITS) |= 1 << (33 % BITS) };
    // SAFETY: `raw` is a sigset_t made from a valid one.
    unsafe { SigSet::from_sigset_t_unchecked(raw) }
}

/// Forwards every catchable signal to `pid` (and copies the pty, if any) until it exits;
/// returns its exit code. Signals sent since [`block_forwarded_signals`] are forwarded too.
pub(crate) fn wait_forwarding(pid: i32, master: Option<&OwnedFd>) -> Result<i32> {
    let set = block_forwarded_signals()?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    let init = Pid::from_raw(pid);
    let _raw = master.and_then(|_| RawMode::enter());
    if let Some(m) = master {
        crate::console::copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if let Some(code) = exit_code(waitpid(init, Some(WaitPidFlag::WNOHANG)).context("waiting for init")?) {
            if let Some(m) = master {
                drain(m.as_fd(), &mut buf);
            }
            return Ok(code);
        }
        // SAFETY: fd 0 stays open for the life of this process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master.filter(|_| master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            if let Some(info) = sfd.read_signal().context("reading signalfd")? {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    if let Some(m) = master {
                        crate::console::copy_winsize(0, m.as_raw_fd());
                    }
                } else if signo != libc::SIGCHLD {
                    // Realtime signals too, which nix's Signal has no names for; runc forwards them.
                    // SAFETY: kill(2) takes plain integers.
                    unsafe { libc::kill(init.as_raw(), signo) };
                }
            }
        }
        if let Some(m) = master {
            if master_ready {
                match nix::unistd::read(m, &mut buf) {
                    Ok(n) if n > 0 => write_all(1, &buf[..n]),
                    // EIO: every container-side fd of the pty is closed; just wait for the exit.
                    _ => master_open = false,
                }
            }
            if stdin_ready {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(n) if n > 0 => write_all(m.as_raw_fd(), &buf[..n]),
                    _ => stdin_open = false,
                }
            }
        }
    }
}

/// Copies what is still buffered in the pty after the process exited.
fn drain(master: BorrowedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    while let Ok(n) = nix::unistd::read(master, buf) {
        if n == 0 {
            break;
        }
        write_all(1, &buf[..n]);
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    // SAFETY: fd is 1 (our stdout) or the pty master, both open for the life of this loop.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
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
