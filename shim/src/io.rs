//! A container process's stdio, shim side. containerd names each stream with a URI: a FIFO path
//! (what `ctr` gives), `file:///path` (append to a log file) or `binary:///path?k=v` (a logging
//! binary reading the streams itself). Without a terminal the shim puts pipes between the
//! process and those destinations and copies; with a terminal it owns the pty master the
//! runtime sends over the console socket and copies both ways.
//!
//! Output is drained before the process's exit is reported: each output copy runs until EOF,
//! or, once the process has exited, until its pipe stays empty for [`DRAIN_GRACE_MS`] (a
//! background process that inherited the pipe must not hold the exit forever). The stdin FIFO
//! stays open until the process is deleted, as containerd's runc shim keeps it: a client whose
//! stdin write fails may stop reading the output (containerd's CRI does, with a terminal).

use crate::runtime::ProcessStdio;
use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::fs::{File, OpenOptions};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// After the process exited, an output pipe that stays empty (but not at EOF) this long is
/// held by someone else: stop waiting for it.
pub const DRAIN_GRACE_MS: i32 = 500;

const COPY_BUF: usize = 16 * 1024;
const THREAD_STACK: usize = 64 * 1024;

/// The stdio a task or exec was created with, as containerd sent it.
#[derive(Debug, Clone, Default)]
pub struct StdioUris {
    /// stdin FIFO (empty: none).
    pub stdin: String,
    /// stdout URI (empty: none).
    pub stdout: String,
    /// stderr URI (empty: none).
    pub stderr: String,
    /// Allocate a pty.
    pub terminal: bool,
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Fifo(PathBuf),
    File(PathBuf),
}

/// A logging binary and its arguments (`binary:///path?k=v`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogBinary {
    path: PathBuf,
    args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    None,
    Dest(Dest),
    Binary(LogBinary),
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_output(uri: &str) -> Result<Output> {
    if uri.is_empty() {
        return Ok(Output::None);
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(Output::Dest(Dest::Fifo(PathBuf::from(uri))));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    // file:///p and binary:///p have an empty host; the path is what follows.
    let path = PathBuf::from(percent_decode(path));
    if !path.is_absolute() {
        bail!("stdio URI {uri:?}: the path must be absolute");
    }
    match scheme {
        "fifo" => Ok(Output::Dest(Dest::Fifo(path))),
        "file" => Ok(Output::Dest(Dest::File(path))),
        "binary" => {
            let mut args = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                args.push(percent_decode(k));
                if !v.is_empty() {
                    args.push(percent_decode(v));
                }
            }
            Ok(Output::Binary(LogBinary { path, args }))
        }
        other => bail!("stdio URI {uri:?}: unsupported scheme {other:?} (want a FIFO path, file:// or binary://)"),
    }
}

fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    Ok((File::from(r), File::from(w)))
}

/// A process's end of the stdin stream: the shim writes what the client sends; `CloseIO` and
/// the client's EOF close it.
pub type StdinWriter = Arc<Mutex<Option<File>>>;

/// A unix socket the runtime sends the pty master over (`--console-socket`), in a directory of
/// its own that only root can enter: nobody else may connect and receive the master.
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds a new console socket in a new private directory under the temp dir.
    pub fn new() -> Result<ConsoleSocket> {
        use std::os::unix::fs::DirBuilderExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("berth-shim-{}-{n}", std::process::id()));
        // Fails if the name exists: never reuse a directory someone else made.
        std::fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("console.sock");
        match UnixListener::bind(&path) {
            Ok(listener) => Ok(ConsoleSocket { dir, path, listener }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e).with_context(|| format!("binding console socket {}", path.display()))
            }
        }
    }
    /// The socket path to give the runtime.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After the runtime succeeded: the pty master it sent.
    pub fn receive_master(&self) -> Result<File> {
        self.listener.set_nonblocking(true).context("console socket nonblocking")?;
        let (conn, _) = self.listener.accept().context("the runtime did not connect to the console socket")?;
        conn.set_nonblocking(false).context("console connection blocking")?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .context("receiving the pty master")?;
        for cmsg in msg.cmsgs().context("reading the console message")? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                let mut fds = fds.into_iter();
                if let Some(fd) = fds.next() {
                    for extra in fds {
                        // SAFETY: the kernel installed `extra` for us; nothing else owns it.
                        drop(unsafe { OwnedFd::from_raw_fd(extra) });
                    }
                    // SAFETY: as above, `fd` is a descriptor the kernel just gave this process.
                    return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        bail!("the runtime sent no file descriptor over the console socket")
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A process's stdio, set up before the runtime runs it.
pub struct PreparedIo {
    uris: StdioUris,
    /// What the runtime's child gets as fds 0-2 (non-terminal).
    pub child: ProcessStdio,
    /// The console socket (terminal).
    pub console: Option<ConsoleSocket>,
    stdout_pipe: Option<File>,
    stderr_pipe: Option<File>,
    stdin_writer: Option<File>,
}

/// Sets up the pipes (or the console socket) for `uris`; `binary://` loggers are started here,
/// with the container id and namespace in their environment, and are ready on return.
pub fn prepare(uris: &StdioUris, container_id: &str, namespace: &str) -> Result<PreparedIo> {
    let stdout = parse_output(&uris.stdout)?;
    let stderr = parse_output(&uris.stderr)?;
    let mut io = PreparedIo {
        uris: uris.clone(),
        child: ProcessStdio::default(),
        console: None,
        stdout_pipe: None,
        stderr_pipe: None,
        stdin_writer: None,
    };
    if uris.terminal {
        if matches!(stdout, Output::Binary(_)) {
            bail!("a terminal cannot be used with a binary:// logger");
        }
        io.console = Some(ConsoleSocket::new()?);
        return Ok(io);
    }
    if !uris.stdin.is_empty() {
        let (r, w) = pipe()?;
        io.child.stdin = Some(r);
        io.stdin_writer = Some(w);
    }
    if let Output::Binary(logger) = &stdout {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        start_logger(logger, out_r, err_r, container_id, namespace)?;
        io.child.stdout = Some(out_w);
        io.child.stderr = Some(err_w);
        return Ok(io);
    }
    for (output, child, keep) in
        [(&stdout, &mut io.child.stdout, &mut io.stdout_pipe), (&stderr, &mut io.child.stderr, &mut io.stderr_pipe)]
    {
        match output {
            Output::None => {}
            Output::Dest(_) => {
                let (r, w) = pipe()?;
                *child = Some(w);
                *keep = Some(r);
            }
            Output::Binary(_) => bail!("binary:// must name the same logger for stdout and stderr"),
        }
    }
    Ok(io)
}

/// Starts a logging binary the way containerd's runc shim does: fd 3 = stdout, fd 4 = stderr,
/// fd 5 = a pipe it closes (or writes to) when ready. Waits for that.
fn start_logger(logger: &LogBinary, stdout: File, stderr: File, container_id: &str, namespace: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&logger.path).with_context(|| format!("logging binary {}", logger.path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!("logging binary {} is not executable", logger.path.display());
    }
    let (ready_r, ready_w) = pipe()?;
    let fds = [stdout.as_raw_fd(), stderr.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(&logger.path);
    // Only what containerd's shim gives its loggers (not the shim's environment).
    cmd.args(&logger.args)
        .env_clear()
        .env("CONTAINER_ID", container_id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure only calls async-signal-safe dup/dup2/fcntl on descriptors that are
    // open in the parent (and so in the forked child).
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources above 5 first (close-on-exec: only 3..5 may reach the logger) so
            // that dup2 into 3..5 cannot clobber one.
            let mut high = [0; 3];
            for (h, fd) in high.iter_mut().zip(fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, fd) in (3..).zip(high) {
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let spawned = {
        let _spawning = crate::reaper::spawn_guard();
        cmd.spawn()
    };
    spawned.with_context(|| format!("starting logging binary {}", logger.path.display()))?;
    // The reaper collects the logger whenever it exits.
    drop(cmd);
    drop((stdout, stderr, ready_w));
    let mut byte = [0u8; 1];
    let _ = (&ready_r).read(&mut byte);
    Ok(())
}

/// Something that wants to know when an output copy finished.
pub type CopyDone = Arc<dyn Fn() + Send + Sync>;

/// The copies a started process needs, given what the runtime produced.
pub struct Started {
    /// stdin destination, for `CloseIO`.
    pub stdin: StdinWriter,
    /// The pty master (terminal), for `ResizePty`.
    pub console: Option<File>,
    /// How many output copies were started (each calls `done` once).
    pub outputs: usize,
}

impl PreparedIo {
    /// The runtime has created the process: receive the pty master (terminal) and start the
    /// copies. `exited` becomes readable when the process has exited, `released` when it was
    /// deleted (the stdin FIFO closes then).
    pub fn start_copies(mut self, exited: Arc<OwnedFd>, released: Arc<OwnedFd>, done: CopyDone) -> Result<Started> {
        let stdin: StdinWriter = Arc::new(Mutex::new(None));
        let mut started = Started { stdin: stdin.clone(), console: None, outputs: 0 };
        let (stdout_src, stderr_src) = match self.console.take() {
            Some(socket) => {
                let master = socket.receive_master()?;
                *stdin.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(master.try_clone().context("duplicating the pty master")?);
                let out = master.try_clone().context("duplicating the pty master")?;
                started.console = Some(master);
                (Some(out), None)
            }
            None => {
                *stdin.lock().unwrap_or_else(|e| e.into_inner()) = self.stdin_writer.take();
                (self.stdout_pipe.take(), self.stderr_pipe.take())
            }
        };
        if !self.uris.stdin.is_empty() {
            let path = PathBuf::from(&self.uris.stdin);
            let stdin = stdin.clone();
            spawn("stdin", move || copy_stdin(&path, &stdin, released.as_fd()))?;
        }
        for (src, uri) in [(stdout_src, &self.uris.stdout), (stderr_src, &self.uris.stderr)] {
            let Some(src) = src else { continue };
            let Output::Dest(dest) = parse_output(uri)? else { continue };
            let (exited, done) = (exited.clone(), done.clone());
            started.outputs += 1;
            spawn("stdout", move || {
                if let Err(e) = copy_output(&src, &dest, exited.as_fd()) {
                    crate::log::warn(&format!("copying output to {dest:?}: {e:#}"));
                }
                done();
            })?;
        }
        Ok(started)
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
        .with_context(|| format!("starting the {name} copy thread"))
}

/// poll(2) on up to two descriptors; returns their revents.
fn poll2(a: BorrowedFd<'_>, b: Option<BorrowedFd<'_>>, timeout_ms: i32) -> std::io::Result<(i16, i16)> {
    let mut fds = [
        libc::pollfd { fd: a.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b.map_or(-1, |b| b.as_raw_fd()), events: libc::POLLIN, revents: 0 },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd (a negative fd is ignored by poll).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if n >= 0 {
            return Ok((fds[0].revents, fds[1].revents));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn open_dest(dest: &Dest) -> Result<File> {
    match dest {
        Dest::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))
        }
        // Read-write, as the runc shim keeps a read end too: the open never blocks on a client
        // that has not opened its end yet, and a reader that goes away (containerd restarting,
        // a detached ctr) does not turn every later write into EPIPE; a new reader reattaches.
        Dest::Fifo(path) => OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("opening stdio FIFO {}", path.display())),
    }
}

/// Moves up to `len` bytes from `src` to `dst` in the kernel (one side must be a pipe).
fn splice(src: &File, dst: &File, len: usize) -> std::io::Result<usize> {
    // SAFETY: splice on two descriptors this process owns, no offsets (both are streams).
    let n =
        unsafe { libc::splice(src.as_raw_fd(), std::ptr::null_mut(), dst.as_raw_fd(), std::ptr::null_mut(), len, 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Copies `src` to `dest` until EOF (or, after `exited`, until the pipe idles). Pipe to FIFO is
/// spliced in the kernel (no buffer in the shim); a pty or an append-only log file goes through
/// a buffer. A reader that went away (EPIPE) turns the copy into a drain, so the process never
/// blocks on its output.
fn copy_output(src: &File, dest: &Dest, exited: BorrowedFd<'_>) -> Result<()> {
    let mut out = Some(open_dest(dest)?);
    let mut can_splice = true;
    let mut buf: Vec<u8> = Vec::new();
    let mut exit_seen = false;
    loop {
        let (src_ev, exit_ev) =
            poll2(src.as_fd(), (!exit_seen).then_some(exited), if exit_seen { DRAIN_GRACE_MS } else { -1 })
                .context("poll")?;
        if src_ev == 0 {
            if exit_ev != 0 {
                exit_seen = true;
                continue;
            }
            // Exited, and the pipe stayed empty: someone else holds its write end.
            return Ok(());
        }
        let moved = match (can_splice, out.as_ref()) {
            (true, Some(w)) => splice(src, w, 1 << 20),
            _ => {
                if buf.is_empty() {
                    buf.resize(COPY_BUF, 0);
                }
                (&*src).read(&mut buf).and_then(|n| {
                    if let Some(w) = out.as_mut() {
                        w.write_all(&buf[..n])?;
                    }
                    Ok(n)
                })
            }
        };
        match moved {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                // Not spliceable (an O_APPEND file, a pty): use the buffer from now on.
                Some(libc::EINVAL) if can_splice => can_splice = false,
                // A pty master reads EIO once the last slave holder closed it: that is EOF.
                Some(libc::EIO) => return Ok(()),
                Some(libc::EPIPE) => out = None,
                _ if out.is_some() && e.kind() != std::io::ErrorKind::UnexpectedEof => {
                    crate::log::warn(&format!("writing output to {dest:?}: {e}; discarding the rest"));
                    out = None;
                }
                _ => return Err(e).context("reading the process output"),
            },
        }
    }
}

/// Copies the stdin FIFO into the process until the client's EOF, then closes the process's
/// stdin. What arrives once the process has no stdin any more (`CloseIO`, its exit) is read and
/// dropped: the FIFO stays open until `released`, so the client never gets EPIPE before the
/// process is deleted.
fn copy_stdin(path: &Path, stdin: &StdinWriter, released: BorrowedFd<'_>) {
    // Non-blocking open never waits for a writer; poll then waits for the client's data.
    let fifo = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path) {
        Ok(f) => f,
        Err(e) => {
            crate::log::warn(&format!("opening stdin FIFO {}: {e}", path.display()));
            return;
        }
    };
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        match poll2(fifo.as_fd(), Some(released), -1) {
            Ok((_, 0)) => {}
            // Deleted (or poll failed): the FIFO closes; the process's stdin is closed already.
            Ok(_) | Err(_) => return,
        }
        let n = match (&fifo).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                continue
            }
            Err(_) => break,
        };
        // Write through a duplicate, without the lock: a process that does not read would
        // otherwise block CloseIO and the exit handling (which close stdin) behind this write.
        let writer = {
            let guard = stdin.lock().unwrap_or_else(|e| e.into_inner());
            guard.as_ref().and_then(|w| w.try_clone().ok())
        };
        // No writer (closed) or a failed write (the process closed its stdin): dropped.
        if let Some(mut w) = writer {
            let _ = w.write_all(&buf[..n]);
        }
    }
    // The client's EOF is the process's EOF (for a pty the master stays: output still flows).
    let mut guard = stdin.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = guard.take() {
        if is_tty(&w) {
            // ^D at the start of a line is the terminal's EOF.
            let mut w = w;
            let _ = w.write_all(&[4]);
        }
    }
}

fn is_tty(f: &File) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(f.as_raw_fd()) == 1 }
}

/// Sets a pty's window size.
pub fn resize(console: &File, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is a valid local.
    if unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error()).context("setting the pty window size");
    }
    Ok(())
}

/// An eventfd that becomes (and stays) readable once [`notify`] was called on it: the
/// process's exit, its deletion.
pub fn notifier() -> Result<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("eventfd");
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes a [`notifier`] readable (for good: nobody reads it).
pub fn notify(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a valid local buffer to an eventfd we own.
    let _ = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fifo_file_and_binary_uris() {
        assert_eq!(parse_output("").expect("empty"), Output::None);
        assert_eq!(
            parse_output("/run/containerd/fifo/1/c-stdout").expect("fifo"),
            Output::Dest(Dest::Fifo("/run/containerd/fifo/1/c-stdout".into()))
        );
        assert_eq!(
            parse_output("file:///var/log/c.log").expect("file"),
            Output::Dest(Dest::File("/var/log/c.log".into()))
        );
        assert_eq!(
            parse_output("binary:///usr/bin/logger?id=a%20b&flag").expect("binary"),
            Output::Binary(LogBinary {
                path: "/usr/bin/logger".into(),
                args: vec!["id".into(), "a b".into(), "flag".into()]
            })
        );
        assert!(parse_output("http://x/y").is_err());
        assert!(parse_output("file://relative").is_err());
    }
}
