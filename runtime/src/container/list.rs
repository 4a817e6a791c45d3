//! `list`: every container under the root (entries that are not container dirs are skipped).

use crate::state::{State, STATE_FILE};
use anyhow::{Context, Result};
use std::path::Path;

/// The OCI state of each container, sorted by id.
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for entry in entries {
        let entry = entry?;
        let dir = entry.path();
        if !entry.file_type()?.is_dir() || !dir.join(STATE_FILE).exists() {
            continue;
        }
        // A container being deleted concurrently vanishes between the check and the read.
        let Ok(state) = State::load(&dir) else { continue };
        out.push(state.oci_json(state.status(&dir)));
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(out)
}
