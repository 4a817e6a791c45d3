//! `state`: the OCI state document of a container.

use super::Container;
use anyhow::Result;
use std::path::Path;

/// The OCI state JSON of container `id` now.
pub fn state(root: &Path, id: &str) -> Result<serde_json::Value> {
    let c = Container::open(root, id)?;
    Ok(c.state.oci_json(c.status()))
}
