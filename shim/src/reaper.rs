//! The one place that reaps children. The shim is a child subreaper: container inits and exec'd
//! processes are re-parented to it, and it runs the runtime binary itself. A single thread
//! blocks in `waitpid(-1)` and hands each exit to whoever registered for that pid: a runtime
//! command waiting for its status, or a container process's exit handler. An exit that arrives
//! before anyone registered (a fast exit racing the registration) is kept in a small
//! unclaimed list and handed over on registration.
//!
//! Because of this, nothing else in the shim may wait for a child (no `Child::wait`). One
//! exception is std's own: a `Command::spawn` whose exec fails waits for its child inside
//! `spawn` (and panics if the child was already reaped). So every spawn holds
//! [`spawn_guard`], and the reaper only reaps (after `waitid(WNOWAIT)` told it something
//! exited) while no spawn is in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Instant, SystemTime};

/// Held by every thread around `Command::spawn` (see the module doc).
static SPAWNING: RwLock<()> = RwLock::new(());

/// Hold this while spawning a child.
pub fn spawn_guard() -> RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(|e| e.into_inner())
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The process.
    pub pid: i32,
    /// Exit code, or 128 + signal number when a signal killed it.
    pub status: u32,
    /// When the shim reaped it.
    pub at: SystemTime,
    /// The same moment on the monotonic clock, to order it against spawns (wall time may jump).
    pub reaped: Instant,
}

/// Exits nobody claimed are kept this long (in count) for a late registration; older ones are
/// orphans the shim inherited (grandchildren of a container without its own pid namespace).
const UNCLAIMED_KEEP: usize = 128;

type Handler = Box<dyn FnOnce(Exit) + Send>;

enum Claim {
    /// A thread in `wait_for` is blocked on this pid; the exit is stored here.
    Waiting(Option<Exit>),
    /// Run this when the pid exits.
    Handler(Handler),
}

#[derive(Default)]
struct State {
    claims: HashMap<i32, Claim>,
    unclaimed: VecDeque<Exit>,
    /// Bumped on every spawn, so the reaper knows a child may exist after ECHILD.
    generation: u64,
}

/// Dispatches child exits; see the module doc.
pub struct Reaper {
    state: Mutex<State>,
    changed: Condvar,
}

impl Reaper {
    /// Starts the reaper thread.
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper { state: Mutex::new(State::default()), changed: Condvar::new() });
        let r = reaper.clone();
        std::thread::Builder::new().name("reaper".into()).stack_size(64 * 1024).spawn(move || r.run())?;
        Ok(reaper)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data: take it anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the reaper that a child was just spawned (it may be sleeping after ECHILD).
    pub fn spawned(&self) {
        self.lock().generation += 1;
        self.changed.notify_all();
    }

    /// Blocks until `pid` (a child this thread spawned at or after `since`) exits.
    pub fn wait_for(&self, pid: i32, since: Instant) -> Exit {
        let mut state = self.lock();
        if let Some(exit) = take_unclaimed(&mut state, pid, since) {
            return exit;
        }
        state.claims.insert(pid, Claim::Waiting(None));
        loop {
            if let Some(Claim::Waiting(Some(exit))) = state.claims.get(&pid) {
                let exit = *exit;
                state.claims.remove(&pid);
                return exit;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `handler` (on the reaper thread, or right now if `pid` already exited) when `pid`, a
    /// process that came to exist at or after `since`, exits.
    pub fn on_exit(&self, pid: i32, since: Instant, handler: Handler) {
        let mut state = self.lock();
        if let Some(exit) = take_unclaimed(&mut state, pid, since) {
            drop(state);
            handler(exit);
            return;
        }
        state.claims.insert(pid, Claim::Handler(handler));
    }

    fn run(&self) {
        loop {
            let generation = self.lock().generation;
            // Wait for an exit without reaping it yet.
            // SAFETY: waitid writes only to `info`, a zeroed siginfo_t owned here.
            let r = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT)
            };
            if r == 0 {
                let exits = {
                    let _no_spawn = SPAWNING.write().unwrap_or_else(|e| e.into_inner());
                    reap_all()
                };
                // Handlers run without the spawn lock: they may spawn (the runtime, events).
                for exit in exits {
                    self.dispatch(exit);
                }
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => {
                    // ECHILD: sleep until something is spawned (re-parented processes only ever
                    // arrive through a child of ours, so a spawn always comes first).
                    let mut state = self.lock();
                    while state.generation == generation {
                        state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
        }
    }

    fn dispatch(&self, exit: Exit) {
        let mut state = self.lock();
        match state.claims.remove(&exit.pid) {
            Some(Claim::Waiting(_)) => {
                state.claims.insert(exit.pid, Claim::Waiting(Some(exit)));
                drop(state);
                self.changed.notify_all();
            }
            Some(Claim::Handler(handler)) => {
                drop(state);
                handler(exit);
            }
            None => {
                if state.unclaimed.len() >= UNCLAIMED_KEEP {
                    state.unclaimed.pop_front();
                }
                state.unclaimed.push_back(exit);
            }
        }
    }
}

/// Reaps every child that has exited, without blocking.
fn reap_all() -> Vec<Exit> {
    let mut exits = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, a valid local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return exits;
        }
        exits.push(Exit { pid, status: decode(status), at: SystemTime::now(), reaped: Instant::now() });
    }
}

/// The exit of `pid` that happened at or after `since`. An older one belongs to an earlier
/// process with the same pid (pids are reused): it is dropped, never handed to the new one.
fn take_unclaimed(state: &mut State, pid: i32, since: Instant) -> Option<Exit> {
    state.unclaimed.retain(|e| e.pid != pid || e.reaped >= since);
    let i = state.unclaimed.iter().position(|e| e.pid == pid)?;
    state.unclaimed.remove(i)
}

/// A wait status as containerd reports it: the exit code, or 128 + the signal.
pub fn decode(status: i32) -> u32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status) as u32
    } else {
        libc::WEXITSTATUS(status) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn decodes_exit_codes_and_signals() {
        assert_eq!(decode(7 << 8), 7);
        assert_eq!(decode(libc::SIGKILL), 137);
        assert_eq!(decode(libc::SIGTERM), 143);
    }

    // One test owns waitpid(-1) for this test binary's children: nothing else here spawns. The
    // reaper, not `Child::wait`, collects the children.
    #[test]
    #[allow(clippy::zombie_processes)]
    fn reaps_waited_and_handled_children_including_fast_exits() {
        let reaper = Reaper::start().expect("reaper");
        let since = Instant::now();
        let child = Command::new("/bin/sh").args(["-c", "exit 7"]).spawn().expect("spawn");
        reaper.spawned();
        // The child may already be reaped (unclaimed): wait_for must still see it.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(reaper.wait_for(child.id() as i32, since).status, 7);

        let since = Instant::now();
        let child = Command::new("/bin/sh").args(["-c", "kill -9 $$"]).spawn().expect("spawn");
        reaper.spawned();
        let (tx, rx) = std::sync::mpsc::channel();
        reaper.on_exit(child.id() as i32, since, Box::new(move |e| tx.send(e.status).expect("send")));
        assert_eq!(rx.recv().expect("exit"), 137);
    }

    #[test]
    fn an_exit_from_before_a_pid_was_reused_is_not_handed_to_the_new_process() {
        let old = Exit { pid: 4242, status: 1, at: SystemTime::now(), reaped: Instant::now() };
        let mut state = State::default();
        state.unclaimed.push_back(old);
        let later = old.reaped + std::time::Duration::from_millis(1);
        assert_eq!(take_unclaimed(&mut state, 4242, later), None);
        assert!(state.unclaimed.is_empty(), "the stale exit is dropped");
        state.unclaimed.push_back(old);
        assert_eq!(take_unclaimed(&mut state, 4242, old.reaped), Some(old));
    }
}
