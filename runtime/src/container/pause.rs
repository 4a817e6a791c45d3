//! `pause` and `resume`: freeze and thaw every process of the container through its cgroup.

use super::Container;
use crate::state::Status;
use anyhow::{bail, Result};
use std::path::Path;

/// Freezes container `id`.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Container::open(root, id)?;
    match c.status() {
        Status::Running | Status::Created => c.state.cgroup.freeze(true),
        status => bail!("cannot pause container {id}: it is {status}"),
    }
}

/// Thaws container `id`.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::open(root, id)?;
    match c.status() {
        Status::Paused => c.state.cgroup.freeze(false),
        status => bail!("cannot resume container {id}: it is {status}, not paused"),
    }
}
