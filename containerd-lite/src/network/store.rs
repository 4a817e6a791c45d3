//! Network records in redb (table `networks`, id → JSON), with docker's lookups: full id, name,
//! unique id prefix. Names are unique; the write transaction that stores a record checks it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

/// docker's drivers: `bridge` (CNI bridge + host-local), and the predefined `host` and `null`.
pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NULL: &str = "null";

/// A network as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkRecord {
    /// 64 lowercase hex digits.
    pub id: String,
    pub name: String,
    pub driver: String,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// No route out, nothing forwarded to or from other links.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// IPv4 CIDR (bridge driver only).
    pub subnet: String,
    pub gateway: String,
    /// `--ip-range`: the CIDR containers get addresses from.
    pub ip_range: Option<String>,
    /// The bridge device.
    pub bridge: String,
}

impl NetworkRecord {
    /// `bridge`, `host` and `none`: created by berthd, never removed.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
}

/// docker's error for a network that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("network {0} not found")]
pub struct NotFound(pub String);

/// The networks table.
#[derive(Clone)]
pub struct NetworkStore {
    db: Arc<redb::Database>,
}

impl NetworkStore {
    /// Uses `db`, creating the table if needed.
    pub fn new(db: Arc<redb::Database>) -> Result<NetworkStore> {
        let txn = db.begin_write().context("networks: begin")?;
        txn.open_table(NETWORKS).context("networks: create table")?;
        txn.commit().context("networks: commit")?;
        Ok(NetworkStore { db })
    }

    /// Every record, in id order.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let txn = self.db.begin_read().context("networks: begin")?;
        let table = txn.open_table(NETWORKS).context("networks: open")?;
        let mut out = Vec::new();
        for entry in table.iter().context("networks: iterate")? {
            let (key, value) = entry.context("networks: read")?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// docker's lookup: exact id, exact name, then unique id prefix.
    pub fn lookup(&self, arg: &str) -> Result<NetworkRecord> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.id == arg).or_else(|| all.iter().find(|n| n.name == arg)) {
            return Ok(n.clone());
        }
        let mut prefixed = all.into_iter().filter(|n| !arg.is_empty() && n.id.starts_with(arg));
        match (prefixed.next(), prefixed.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => bail!("network {arg} is ambiguous"),
            _ => Err(NotFound(arg.to_string()).into()),
        }
    }

    /// Stores a new record; fails if its name is taken (docker's message).
    pub fn insert(&self, record: &NetworkRecord) -> Result<()> {
        let txn = self.db.begin_write().context("networks: begin")?;
        {
            let mut table = txn.open_table(NETWORKS).context("networks: open")?;
            for entry in table.iter().context("networks: iterate")? {
                let (key, value) = entry.context("networks: read")?;
                if decode(key.value(), value.value())?.name == record.name {
                    bail!("network with name {} already exists", record.name);
                }
            }
            let bytes = serde_json::to_vec(record).context("encoding a network record")?;
            table.insert(record.id.as_str(), bytes.as_slice()).context("networks: insert")?;
        }
        txn.commit().context("networks: commit")
    }

    /// Removes the record `id` (no error if it is gone).
    pub fn remove(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write().context("networks: begin")?;
        {
            let mut table = txn.open_table(NETWORKS).context("networks: open")?;
            table.remove(id).context("networks: remove")?;
        }
        txn.commit().context("networks: commit")
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<NetworkRecord> {
    serde_json::from_slice(bytes).with_context(|| format!("networks/{key}: undecodable record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lookups_take_id_name_or_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("m.redb")).expect("db");
        let s = NetworkStore::new(Arc::new(db)).expect("store");
        let net = |id: &str, name: &str| NetworkRecord { id: id.into(), name: name.into(), ..Default::default() };
        s.insert(&net(&"ab".repeat(32), "front")).expect("insert");
        s.insert(&net(&"ac".repeat(32), "back")).expect("insert");
        let err = s.insert(&net(&"ff".repeat(32), "front")).expect_err("duplicate");
        assert_eq!(err.to_string(), "network with name front already exists");
        assert_eq!(s.lookup("back").expect("name").id, "ac".repeat(32));
        assert_eq!(s.lookup("abab").expect("prefix").name, "front");
        assert!(s.lookup("a").is_err());
        assert_eq!(s.lookup("nope").expect_err("missing").to_string(), "network nope not found");
        s.remove(&"ab".repeat(32)).expect("remove");
        assert_eq!(s.list().expect("list").len(), 1);
    }
}
