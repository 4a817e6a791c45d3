//! `state`: the OCI state document of a container.

use anyhow::Result;
use std::path::Path;

/// The OCI state JSON of container `id` now. It reads without taking the container's lock, so
/// a container still being created reports `creating` instead of blocking until it is done.
pub fn state(root: &Path, id: &str) -> Result<serde_json::Value> {
    crate::state::validate_id(id)?;
    let dir = root.join(id);
    if !dir.join(crate::state::STATE_FILE).exists() {
        anyhow::bail!("container {id} does not exist");
    }
    let state = crate::state::State::load(&dir)?;
    Ok(state.oci_json(state.status(&dir)))
}
