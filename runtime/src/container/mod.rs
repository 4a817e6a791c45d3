//! Container lifecycle operations, one file per operation; each checks the status, acts, saves.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod update;

use crate::state::{LockedDir, State, Status};
use anyhow::Result;
use std::path::Path;

/// An existing container, locked for the duration of one operation.
pub struct Container {
    /// Its locked directory.
    pub dir: LockedDir,
    /// Its saved state.
    pub state: State,
}

impl Container {
    /// Opens and locks container `id` under `root`.
    pub fn open(root: &Path, id: &str) -> Result<Container> {
        let dir = LockedDir::open(root, id)?;
        let state = State::load(&dir.path)?;
        Ok(Container { dir, state })
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.state.status_locked(&self.dir.path)
    }
}

/// Waits until `pid` (not necessarily our child) is gone or a zombie, up to `timeout`.
pub fn wait_gone(pid: i32, start_time: u64, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_micros(100);
    while crate::state::init_alive(pid, start_time) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(10));
    }
    true
}
