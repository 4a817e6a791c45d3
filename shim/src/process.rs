//! One container process as the shim tracks it: the init (exec id "") or an exec. It knows its
//! stdio, its pid once the runtime started it, and its exit. The exit becomes visible (state,
//! `Wait`, the `TaskExit` event) only once both the reaper reported it and every output copy
//! drained, so a client never sees the exit before the last byte of output. An init that shares
//! a pid namespace leaves its container's other processes running; they are killed before the
//! drain, which would otherwise wait for the output pipes they hold.

use crate::io::{self, CopyDone, PreparedIo, StdinWriter, StdioUris};
use crate::reaper::{Exit, Reaper};
use anyhow::Result;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created by the runtime (init) or registered by `Exec`, not started.
    Created,
    /// Started.
    Running,
    /// Exited (and its output drained).
    Stopped,
}

/// Called once with the final exit, possibly on the reaper's thread: it must not wait for a
/// child (nothing would reap it).
pub type ExitHook = Box<dyn FnOnce(Exit) + Send>;

/// Kills the processes a container's init left behind (it shares a pid namespace, whose
/// processes the kernel does not kill with it). Runs once the init was reaped, before its output
/// is drained, on a thread of its own: it may wait for a child (the runtime), which the reaper's
/// thread must be free to collect.
pub type KillRest = Box<dyn FnOnce() + Send>;

struct State {
    pid: i32,
    started: bool,
    /// The reaper's report, held until the output is drained.
    reaped: Option<Exit>,
    /// The [`KillRest`] of a reaped init is still running: no drain, no exit yet.
    killing_rest: bool,
    /// Output copies not finished yet (can dip below zero before `io_ready`).
    copies_left: i64,
    /// All copies were counted.
    io_ready: bool,
    exit: Option<Exit>,
    hook: Option<ExitHook>,
    /// The start event was queued: the exit hook may run (events stay in lifecycle order even
    /// when a process exits before its `Start` call returned).
    announced: bool,
}

/// A container process; see the module doc.
pub struct Process {
    /// "" for the init process.
    pub exec_id: String,
    /// The stdio containerd asked for.
    pub uris: StdioUris,
    /// For an exec: the `specs.Process` JSON from the request.
    pub spec: Vec<u8>,
    state: Mutex<State>,
    exited: Condvar,
    exit_fd: Arc<OwnedFd>,
    /// Readable once the process was deleted: its stdin FIFO closes.
    released_fd: Arc<OwnedFd>,
    kill_rest: Mutex<Option<KillRest>>,
    stdin: Mutex<Option<StdinWriter>>,
    console: Mutex<Option<File>>,
}

impl Process {
    /// A process not started yet.
    pub fn new(exec_id: &str, uris: StdioUris, spec: Vec<u8>) -> Result<Arc<Process>> {
        Ok(Arc::new(Process {
            exec_id: exec_id.to_string(),
            uris,
            spec,
            state: Mutex::new(State {
                pid: 0,
                started: false,
                reaped: None,
                killing_rest: false,
                copies_left: 0,
                io_ready: false,
                exit: None,
                hook: None,
                announced: false,
            }),
            exited: Condvar::new(),
            exit_fd: Arc::new(io::notifier()?),
            released_fd: Arc::new(io::notifier()?),
            kill_rest: Mutex::new(None),
            stdin: Mutex::new(None),
            console: Mutex::new(None),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime created `pid` with `io`: start the copies and watch for its exit. `hook`
    /// runs once with the final exit (after the output drained); `kill_rest` once it was
    /// reaped, before the drain.
    pub fn launched(
        self: &Arc<Self>,
        pid: i32,
        since: std::time::Instant,
        io: PreparedIo,
        reaper: &Reaper,
        hook: ExitHook,
        kill_rest: Option<KillRest>,
    ) -> Result<()> {
        {
            let mut st = self.lock();
            st.pid = pid;
            st.hook = Some(hook);
        }
        *self.kill_rest.lock().unwrap_or_else(|e| e.into_inner()) = kill_rest;
        let me = self.clone();
        let done: CopyDone = Arc::new(move || me.copy_done());
        let started = match io.start_copies(self.exit_fd.clone(), self.released_fd.clone(), done) {
            Ok(s) => Some(s),
            Err(e) => {
                // A process whose output would go nowhere must not run: the launch fails (the
                // caller deletes the container) and this process dies now.
                // SAFETY: kill(2) on the pid the runtime just reported for this process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(e.context(format!("process {pid}: setting up stdio")));
            }
        };
        if let Some(s) = &started {
            *self.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.stdin.clone());
        }
        let outputs = started.as_ref().map_or(0, |s| s.outputs);
        *self.console.lock().unwrap_or_else(|e| e.into_inner()) = started.and_then(|s| s.console);
        {
            let mut st = self.lock();
            st.copies_left += outputs as i64;
            st.io_ready = true;
        }
        self.try_finish();
        let me = self.clone();
        reaper.on_exit(pid, since, Box::new(move |exit| me.reaped(exit)));
        Ok(())
    }

    /// On the reaper's thread.
    fn reaped(self: &Arc<Self>, exit: Exit) {
        let kill_rest = self.kill_rest.lock().unwrap_or_else(|e| e.into_inner()).take();
        {
            let mut st = self.lock();
            st.reaped = Some(exit);
            st.killing_rest = kill_rest.is_some();
        }
        let Some(kill_rest) = kill_rest else {
            self.drain();
            return;
        };
        let me = self.clone();
        let killer = std::thread::Builder::new().name("kill-rest".into()).stack_size(64 * 1024).spawn(move || {
            kill_rest();
            me.rest_killed();
        });
        if let Err(e) = killer {
            crate::log::warn(&format!("no thread to kill the processes left by {}: {e}", self.pid()));
            self.rest_killed();
        }
    }

    fn rest_killed(&self) {
        self.lock().killing_rest = false;
        self.drain();
    }

    /// Reaped and nothing left to kill: the output copies may stop waiting for EOF.
    fn drain(&self) {
        io::notify(&self.exit_fd);
        self.try_finish();
    }

    fn copy_done(&self) {
        self.lock().copies_left -= 1;
        self.try_finish();
    }

    fn try_finish(&self) {
        let mut st = self.lock();
        if st.exit.is_some() || !st.io_ready || st.copies_left > 0 || st.killing_rest {
            return;
        }
        let Some(exit) = st.reaped else { return };
        st.exit = Some(exit);
        let hook = if st.announced { st.hook.take() } else { None };
        drop(st);
        // The process is gone: nothing more to write to its stdin or pty.
        self.close_stdin();
        self.exited.notify_all();
        if let Some(hook) = hook {
            hook(exit);
        }
    }

    /// Marks the process started; `announce` queues its start event, before any exit event.
    pub fn set_started(&self, announce: impl FnOnce()) {
        let mut st = self.lock();
        st.started = true;
        announce();
        st.announced = true;
        let finished = st.exit.and_then(|exit| st.hook.take().map(|hook| (hook, exit)));
        drop(st);
        if let Some((hook, exit)) = finished {
            hook(exit);
        }
    }

    /// For a process that was never started and is gone (its init killed by delete): runs the
    /// exit hook (TaskExit), which for started processes waits for the start event.
    pub fn finish_unstarted(&self) {
        let mut st = self.lock();
        if st.started || st.exit.is_none() {
            return;
        }
        let finished = st.exit.and_then(|exit| st.hook.take().map(|hook| (hook, exit)));
        drop(st);
        if let Some((hook, exit)) = finished {
            hook(exit);
        }
    }

    /// The pid (0 before the runtime created it).
    pub fn pid(&self) -> i32 {
        self.lock().pid
    }

    /// Its status.
    pub fn status(&self) -> Status {
        let st = self.lock();
        match (st.exit.is_some(), st.started) {
            (true, _) => Status::Stopped,
            (false, true) => Status::Running,
            (false, false) => Status::Created,
        }
    }

    /// The final exit, if it happened.
    pub fn exit(&self) -> Option<Exit> {
        self.lock().exit
    }

    /// Whether the reaper saw it exit (possibly still draining output): no signals any more.
    pub fn reaped_or_exited(&self) -> bool {
        let st = self.lock();
        st.reaped.is_some() || st.exit.is_some()
    }

    /// Blocks until the final exit.
    pub fn wait(&self) -> Exit {
        let mut st = self.lock();
        loop {
            if let Some(exit) = st.exit {
                return exit;
            }
            st = self.exited.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The process was deleted: its stdin FIFO closes (until then, what a client writes to it
    /// is read and dropped once the process has no stdin).
    pub fn release_stdin_fifo(&self) {
        io::notify(&self.released_fd);
    }

    /// Closes the process's stdin (`CloseIO`); for a pty, sends the terminal's EOF.
    pub fn close_stdin(&self) {
        if let Some(writer) = self.stdin.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let taken = writer.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut w) = taken {
                if self.uris.terminal {
                    use std::io::Write;
                    let _ = w.write_all(&[4]);
                }
            }
        }
    }

    /// Resizes its pty (no pty: nothing to do).
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        match self.console.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(console) => io::resize(console, width, height),
            None => Ok(()),
        }
    }
}
