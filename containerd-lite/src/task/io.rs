//! A task's stdio as berthd holds it: the FIFOs the shim writes the process's output into (and
//! reads its stdin from), one copier per process that appends the output to the container's
//! json-file log and hands it to attached clients, and the stdin writer.
//!
//! Output is never lost to a quick exit: a FIFO is opened for reading before the shim is asked to
//! create the process, attached clients subscribe before it starts, and a process counts as
//! finished for them only after its copier saw end-of-file on every output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use nix::sys::stat::Mode;
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, watch, Mutex};

use super::log::JsonLog;

async fn write_log(log: &Arc<std::sync::Mutex<JsonLog>>, stream: u32, data: &[u8]) {
    let (log, chunk) = (log.clone(), data.to_vec());
    let written = tokio::task::spawn_blocking(move || {
        let mut log = log.lock().map_err(|_| anyhow::anyhow!("log lock poisoned"))?;
        log.write(stream, &chunk)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("writing a container log: {e:#}"),
        Err(e) => tracing::warn!("writing a container log: {e}"),
    }
}

/// The most one read from an output FIFO takes.
const READ_CHUNK: usize = 32 * 1024;

/// 1 for stdout, 2 for stderr, as in the API.
pub const STDOUT: u32 = 1;
pub const STDERR: u32 = 2;

/// What attached clients receive.
#[derive(Debug, Clone)]
pub enum Output {
    Data(u32, Arc<Vec<u8>>),
}

/// An attached client's view of one process: its output from the moment it subscribed, and
/// whether the output has ended.
pub type Subscription = (broadcast::Receiver<Output>, watch::Receiver<bool>);

/// The FIFO paths of one process, as the shim's Create/Exec take them.
#[derive(Debug, Clone, Default)]
pub struct FifoSet {
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: Option<PathBuf>,
}

impl FifoSet {
    /// Paths under `dir` named with `prefix` (`init`, `exec-<id>`): stdin only with `stdin`,
    /// no stderr with a terminal (a pty has one output).
    pub fn new(dir: &Path, prefix: &str, stdin: bool, terminal: bool) -> FifoSet {
        FifoSet {
            stdin: stdin.then(|| dir.join(format!("{prefix}-stdin"))),
            stdout: dir.join(format!("{prefix}-stdout")),
            stderr: (!terminal).then(|| dir.join(format!("{prefix}-stderr"))),
        }
    }

    /// Makes the FIFOs (0600; an existing one is kept, as after a berthd restart).
    pub fn create(&self) -> Result<()> {
        for path in self.all() {
            match nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("mkfifo {}", path.display())),
            }
        }
        Ok(())
    }

    pub fn remove(&self) {
        for path in self.all() {
            let _ = std::fs::remove_file(path);
        }
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.stdin.iter().chain(std::iter::once(&self.stdout)).chain(self.stderr.iter())
    }

    pub fn uri(path: &Option<PathBuf>) -> String {
        path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }
}

/// One output FIFO as the copier reads it.
pub struct OutputFifo {
    stream: u32,
    path: PathBuf,
    rx: pipe::Receiver,
}

/// Opens the output FIFOs for reading. They are opened read-write: the open never waits, and
/// no early end-of-file is read, whenever the shim opens its ends (shims differ in when they
/// do). Once the process has exited, the copier switches to a read-only end, whose end-of-file
/// then means the shim closed its writer: everything was delivered.
pub fn open_outputs(fifos: &FifoSet) -> Result<Vec<OutputFifo>> {
    let mut out = Vec::new();
    for (stream, path) in [(STDOUT, Some(&fifos.stdout)), (STDERR, fifos.stderr.as_ref())] {
        let Some(path) = path else { continue };
        let rx = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(path)
            .with_context(|| format!("opening {}", path.display()))?;
        out.push(OutputFifo { stream, path: path.clone(), rx });
    }
    Ok(out)
}

/// Opens the write side of the stdin FIFO (the shim holds the read side after Create/Exec).
pub fn open_stdin(path: &Path) -> Result<pipe::Sender> {
    pipe::OpenOptions::new().open_sender(path).with_context(|| format!("opening {}", path.display()))
}

/// One process's output, shared by its copier and the clients attached to it.
pub struct ProcessIo {
    /// Made by the first attached client: a detached container never pays for its buffer.
    tx: std::sync::Mutex<Option<broadcast::Sender<Output>>>,
    /// Becomes true when the process has exited (the shim's Wait returned).
    exited: watch::Sender<bool>,
    /// Becomes true when every output was drained and delivered.
    done: watch::Sender<bool>,
    pub stdin: Mutex<Option<pipe::Sender>>,
}

impl ProcessIo {
    pub fn new() -> Arc<ProcessIo> {
        Arc::new(ProcessIo {
            tx: std::sync::Mutex::new(None),
            exited: watch::channel(false).0,
            done: watch::channel(false).0,
            stdin: Mutex::new(None),
        })
    }

    /// A new attached client: every chunk from now on, then `done`.
    pub fn subscribe(&self) -> Subscription {
        let mut tx = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rx = tx.get_or_insert_with(|| broadcast::channel(1024).0).subscribe();
        (rx, self.done.subscribe())
    }

    /// Hands a chunk to the attached clients, if there are any.
    fn publish(&self, output: Output) {
        let tx = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = tx.as_ref() {
            let _ = tx.send(output);
        }
    }

    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// The process has exited: the copier drains what is left and finishes.
    pub fn mark_exited(&self) {
        self.exited.send_replace(true);
    }

    /// Waits (at most `limit`) for the copier to finish.
    pub async fn wait_done(&self, limit: std::time::Duration) {
        let mut rx = self.done.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|d| *d)).await;
    }

    /// Copies `outputs` to the log (if any) and to subscribers until the process has exited and
    /// each output is at end-of-file.
    pub fn spawn_copier(self: &Arc<Self>, outputs: Vec<OutputFifo>, log: Option<Arc<std::sync::Mutex<JsonLog>>>) {
        let io = self.clone();
        tokio::spawn(async move {
            let mut readers = Vec::new();
            for output in outputs {
                let io = io.clone();
                let log = log.clone();
                let mut exited = io.exited.subscribe();
                readers.push(tokio::spawn(async move {
                    let OutputFifo { stream, path, mut rx } = output;
                    let mut read_only = false;
                    loop {
                        let ready = if read_only {
                            rx.readable().await
                        } else {
                            tokio::select! {
                                r = rx.readable() => r,
                                _ = exited.wait_for(|e| *e) => {
                                    // The pipe's data stays while any end is open: the
                                    // read-only end is opened before the read-write one goes.
                                    match pipe::OpenOptions::new().open_receiver(&path) {
                                        Ok(ro) => rx = ro,
                                        Err(e) => {
                                            tracing::warn!(path = %path.display(), "reopening an output FIFO: {e}");
                                            break;
                                        }
                                    }
                                    read_only = true;
                                    continue;
                                }
                            }
                        };
                        if let Err(e) = ready {
                            tracing::warn!("waiting for container output: {e}");
                            break;
                        }
                        // The buffer exists only while there is something to read: an idle
                        // container holds none.
                        let mut data = Vec::with_capacity(READ_CHUNK);
                        match rx.try_read_buf(&mut data) {
                            Ok(0) => break,
                            Ok(_) => {
                                data.shrink_to_fit();
                                if let Some(log) = &log {
                                    write_log(log, stream, &data).await;
                                }
                                io.publish(Output::Data(stream, Arc::new(data)));
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                                ) => {}
                            Err(e) => {
                                tracing::warn!("reading container output: {e}");
                                break;
                            }
                        }
                    }
                }));
            }
            for r in readers {
                let _ = r.await;
            }
            if let Some(log) = &log {
                if let Ok(mut log) = log.lock() {
                    log.flush_partial();
                }
            }
            io.done.send_replace(true);
        });
    }
}
