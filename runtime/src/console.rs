//! `process.terminal`: init opens a pty in the container's devpts, sends the master to the
//! engine's `--console-socket` with SCM_RIGHTS (as runc does), and takes the slave as its
//! controlling terminal and stdio.

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Connects to the engine's console socket (done by the parent, where the path is visible).
pub fn connect_socket(path: &Path) -> Result<OwnedFd> {
    let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).context("console socket")?;
    let addr = UnixAddr::new(path).with_context(|| format!("console socket path {}", path.display()))?;
    connect(sock.as_raw_fd(), &addr).with_context(|| format!("connecting to console socket {}", path.display()))?;
    Ok(sock)
}

/// Creates the pty, sends its master over `socket`, and makes the slave init's controlling
/// terminal and stdin/stdout/stderr. Call after pivot_root (so /dev/ptmx is the container's).
pub fn setup(socket: OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).context("opening /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let slave_name = ptsname_r(&master).context("ptsname")?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the whole call.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(std::io::Error::last_os_error()).context("setting console size");
        }
    }
    let slave = nix::fcntl::open(
        slave_name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening {slave_name}"))?;
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .context("sending the pty master over the console socket")?;
    drop(master);
    drop(socket);
    // SAFETY: TIOCSCTTY on our own new session's tty takes no pointer argument.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("making the pty the controlling terminal");
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto 0, 1 and 2 replaces init's stdio; both fds are valid here.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("dup2 pty onto stdio");
        }
    }
    // The slave's own fd number (> 2, opened after stdio) is closed when `slave` drops.
    Ok(())
}

/// Receives a pty master sent with SCM_RIGHTS over `socket` (the other end of what init was
/// given as its console socket).
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .context("receiving the pty master")?;
    for c in msg.cmsgs().context("reading control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us; we own it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    anyhow::bail!("container init sent no pty master")
}

/// Copies the window size of `from` (our terminal) to `to` (the container's pty).
pub fn copy_winsize(from: i32, to: i32) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize struct that outlives the calls.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
