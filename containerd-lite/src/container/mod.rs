//! Containers: the records berthd keeps (what a container is and its last known state), docker's
//! ids and names, and the OCI spec generated from an image's config and the create options.
//! Running them is `task`'s business.

pub mod commit;
pub mod create;
pub mod fs;
pub mod names;
pub mod spec;
pub mod store;
pub mod user;

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use berth_proto::container_config::CreateConfig;
use serde::{Deserialize, Serialize};

pub use store::{ContainerStore, LookupError};

/// The shim berthd runs a container with unless told otherwise.
pub const DEFAULT_RUNTIME: &str = "io.containerd.berth.v2";

/// A container as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The normalised image name the container was made from (empty for an id).
    pub image_name: String,
    /// Config digest (docker's image id).
    pub image_id: String,
    /// The image's config JSON.
    pub image_config: serde_json::Value,
    /// The OCI runtime spec.
    pub spec: serde_json::Value,
    pub snapshot_key: String,
    pub runtime: String,
    pub labels: BTreeMap<String, String>,
    pub config: CreateConfig,
    /// The networks it is connected to, by network name (bridge modes only).
    pub networks: BTreeMap<String, crate::network::Endpoint>,
    /// The host ports published for it while its task runs.
    pub published_ports: Vec<crate::network::PublishedPort>,
    /// Unix nanoseconds.
    pub created_at: i64,
    pub state: ContainerState,
}

/// What berthd last knew of a container's task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerState {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: i64,
    pub finished_at: i64,
    pub error: String,
    pub restart_count: u32,
    /// The shim's ttrpc address while a task exists.
    pub shim_address: String,
    /// Stopped by a user (`stop`, `kill`): restart policies other than `always` leave it.
    pub stopped_by_user: bool,
}

/// docker's container statuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A task exists (running or paused).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// A new docker-style id: 32 random bytes as 64 lowercase hex digits, never all digits (docker
/// avoids ids that parse as numbers).
pub fn new_id() -> Result<String> {
    loop {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("reading /dev/urandom for a container id")?;
        let id = hex::encode(bytes);
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        anyhow::bail!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id().expect("id"), new_id().expect("id"));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["web", "a1", "my_app.v2-x"] {
            validate_name(good).expect(good);
        }
        for bad in ["", "a", "-x", "../x", "a/b", "a b", "_x"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
