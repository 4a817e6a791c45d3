//! Becoming a shim. `start` (run by containerd with the bundle as cwd) binds the task's ttrpc
//! socket at `/run/containerd/s/<sha256(address/namespace/id)>` as containerd's own shims do,
//! writes the `address` file, re-executes this binary detached in a new session with the
//! listening socket as fd 3, prints the address and exits. The re-executed process ([`serve`])
//! is the long-lived shim: a child subreaper serving the Task API until `Shutdown`.

use crate::args::Flags;
use crate::events::{Publisher, Sink};
use crate::reaper::Reaper;
use crate::service::Service;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where containerd 1.6 puts shim sockets.
const SOCKET_DIR: &str = "/run/containerd/s";
/// The listening socket's descriptor in the long-lived shim.
const LISTENER_FD: i32 = 3;

/// Go's `filepath.Join`: joined with `/`, then cleaned lexically.
fn go_join(parts: &[&str]) -> String {
    let joined = parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("/");
    let absolute = joined.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            ".." if absolute => {}
            p => out.push(p),
        }
    }
    let body = out.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// The task socket address containerd's shims use: `unix:///run/containerd/s/<hex>`.
pub fn socket_address(containerd_address: &str, namespace: &str, id: &str) -> String {
    let key = go_join(&[containerd_address, namespace, id]);
    format!("unix://{SOCKET_DIR}/{}", hex_sha256(key.as_bytes()))
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn socket_path(address: &str) -> PathBuf {
    PathBuf::from(address.strip_prefix("unix://").unwrap_or(address))
}

/// Removes the task socket if no shim listens on it any more.
pub fn remove_dead_socket(address: &str) {
    let path = socket_path(address);
    if path.exists() && UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Writes a file atomically (temp + rename), as containerd's `WriteAddress`.
fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_file_name(format!(".{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("tmp")));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn bind(path: &Path) -> Result<UnixListener> {
    std::fs::create_dir_all(SOCKET_DIR).with_context(|| format!("creating {SOCKET_DIR}"))?;
    UnixListener::bind(path).with_context(|| format!("binding task socket {}", path.display()))
}

/// The `start` action; see the module doc.
pub fn start(flags: &Flags) -> Result<()> {
    let address = socket_address(&flags.address, &flags.namespace, &flags.id);
    let path = socket_path(&address);
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(_) if UnixStream::connect(&path).is_ok() => {
            // A shim already serves this task (containerd retried `start`): reuse it.
            write_atomic(Path::new("address"), &address)?;
            print!("{address}");
            return Ok(());
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
            bind(&path)?
        }
    };
    let spawned = spawn_shim(flags, &listener).and_then(|()| write_atomic(Path::new("address"), &address));
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    // containerd writes the runtime options here too; the long-lived shim gets them with Create.
    let mut options = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut options);
    print!("{address}");
    std::io::stdout().flush().context("writing the address to containerd")?;
    Ok(())
}

/// Re-executes this binary as the long-lived shim (new session, stdio /dev/null, fd 3 = listener).
fn spawn_shim(flags: &Flags, listener: &UnixListener) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["-namespace", &flags.namespace, "-id", &flags.id, "-address", &flags.address]);
    if !flags.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: the closure only makes async-signal-safe calls (setsid, dup2, fcntl) in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if fd == LISTENER_FD {
                // Already in place: just let it survive exec.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, LISTENER_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: this process exits right away and the shim is re-parented.
    cmd.spawn().context("starting the long-lived shim")?;
    Ok(())
}

/// Points stderr at the bundle's `log` FIFO containerd reads (or leaves it on /dev/null).
fn open_log() {
    let log = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open("log");
    if let Ok(f) = log {
        // SAFETY: fcntl/dup2 on descriptors this process owns; fd 2 is replaced atomically.
        unsafe {
            let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

/// The long-lived shim.
pub fn serve(flags: &Flags) -> Result<()> {
    // SAFETY: fstat writes only into the local stat buffer.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(LISTENER_FD, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket {
        bail!("no listening socket on fd {LISTENER_FD}: run `containerd-shim-berth-v2 ... start` instead");
    }
    // The listening socket must reach no child (runtime, hooks, loggers): one outliving a dead
    // shim would keep accepting connections nobody serves.
    // SAFETY: F_SETFD on a descriptor this process owns.
    if unsafe { libc::fcntl(LISTENER_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).context("marking the listening socket close-on-exec");
    }
    // Few threads, little memory: one glibc malloc arena for all of them (musl has one anyway).
    // SAFETY: mallopt only tunes the allocator.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1)
    };
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag, no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("becoming a child subreaper");
    }
    open_log();
    crate::log::set_debug(flags.debug);

    let reaper = Reaper::start().context("starting the reaper")?;
    let sink = match std::env::var("TTRPC_ADDRESS") {
        Ok(a) if !a.is_empty() => Sink::Ttrpc(a),
        _ => Sink::Binary { binary: flags.publish_binary.clone(), address: flags.address.clone() },
    };
    let publisher = Publisher::start(&flags.namespace, sink, Some(reaper.clone())).context("starting events")?;
    let (shutdown_tx, shutdown_rx) = std::sync::mpsc::channel();
    let service = Service::new(&flags.namespace, publisher.clone(), reaper, shutdown_tx);
    let task: Arc<Box<dyn containerd_shim_protos::Task + Send + Sync>> = Arc::new(Box::new(service));
    let mut server = ttrpc::Server::new()
        .add_listener(LISTENER_FD)
        .context("using the task socket")?
        .register_service(containerd_shim_protos::create_task(task))
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        .set_thread_count_max(4);
    server.start().context("starting the ttrpc server")?;
    crate::log::debug(&format!("serving task {} in namespace {}", flags.id, flags.namespace));

    let _ = shutdown_rx.recv();
    publisher.flush(std::time::Duration::from_secs(5));
    let _ = std::fs::remove_file(socket_path(&socket_address(&flags.address, &flags.namespace, &flags.id)));
    // Give the ttrpc writer a moment to send the Shutdown reply; containerd accepts a closed
    // connection as a successful shutdown either way.
    std::thread::sleep(std::time::Duration::from_millis(5));
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_go_filepath() {
        assert_eq!(
            go_join(&["/run/containerd/containerd.sock", "default", "c1"]),
            "/run/containerd/containerd.sock/default/c1"
        );
        assert_eq!(go_join(&["/a//b/", "./ns", "../x"]), "/a/b/x");
    }

    #[test]
    fn socket_address_is_sha256_of_the_joined_path() {
        let a = socket_address("/run/containerd/containerd.sock", "default", "c1");
        // sha256sum of "/run/containerd/containerd.sock/default/c1".
        assert_eq!(a, "unix:///run/containerd/s/d25aa4ef11a84e954e74a5bcff06557d0b6ea8d0c00243896f29826694bbd888");
    }
}
