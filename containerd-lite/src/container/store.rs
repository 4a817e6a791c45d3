//! Container records in redb (table `containers`, id → JSON), with docker's lookups: full id,
//! unique id prefix, or name. Names are unique; a record's name is reserved by the same write
//! transaction that stores it.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::ContainerRecord;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// Why a lookup found nothing, or too much.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
}

/// docker's error for a name another container has.
pub fn name_in_use(name: &str, other_id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{other_id}\". You have to remove (or rename) that container to be able to reuse that name."
    )
}

/// The containers table.
#[derive(Clone)]
pub struct ContainerStore {
    db: Arc<redb::Database>,
}

impl ContainerStore {
    /// Uses `db`, creating the table if needed.
    pub fn new(db: Arc<redb::Database>) -> Result<ContainerStore> {
        let txn = db.begin_write().context("containers: begin")?;
        txn.open_table(CONTAINERS).context("containers: create table")?;
        txn.commit().context("containers: commit")?;
        Ok(ContainerStore { db })
    }

    /// Every record, in id order.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let txn = self.db.begin_read().context("containers: begin")?;
        let table = txn.open_table(CONTAINERS).context("containers: open")?;
        let mut out = Vec::new();
        for entry in table.iter().context("containers: iterate")? {
            let (key, value) = entry.context("containers: read")?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// The record with exactly this id.
    pub fn get(&self, id: &str) -> Result<Option<ContainerRecord>> {
        let txn = self.db.begin_read().context("containers: begin")?;
        let table = txn.open_table(CONTAINERS).context("containers: open")?;
        let value = table.get(id).with_context(|| format!("containers: get {id}"))?;
        value.map(|v| decode(id, v.value())).transpose()
    }

    /// docker's lookup: exact id, then exact name, then unique id prefix.
    pub fn lookup(&self, arg: &str) -> Result<ContainerRecord> {
        let wanted = arg.strip_prefix('/').unwrap_or(arg);
        if wanted.is_empty() {
            return Err(LookupError::NotFound(arg.into()).into());
        }
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.id == wanted || r.name == wanted) {
            return Ok(r.clone());
        }
        let mut prefixed = all.into_iter().filter(|r| r.id.starts_with(wanted));
        match (prefixed.next(), prefixed.next()) {
            (Some(r), None) => Ok(r),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous(arg.into()).into()),
            _ => Err(LookupError::NotFound(arg.into()).into()),
        }
    }

    /// Stores a new record; fails if its id or name is taken.
    pub fn insert(&self, record: &ContainerRecord) -> Result<()> {
        let txn = self.db.begin_write().context("containers: begin")?;
        {
            let mut table = txn.open_table(CONTAINERS).context("containers: open")?;
            for entry in table.iter().context("containers: iterate")? {
                let (key, value) = entry.context("containers: read")?;
                let other = decode(key.value(), value.value())?;
                if other.id == record.id {
                    bail!("container id {} already exists", record.id);
                }
                if other.name == record.name {
                    return Err(name_in_use(&record.name, &other.id));
                }
            }
            let bytes = serde_json::to_vec(record).context("encoding a container record")?;
            table.insert(record.id.as_str(), bytes.as_slice()).context("containers: insert")?;
        }
        txn.commit().context("containers: commit")
    }

    /// Changes the record `id` with `f` in one transaction and returns the new record. A rename
    /// (`f` changing the name) to a name in use fails.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        let txn = self.db.begin_write().context("containers: begin")?;
        let record = {
            let mut table = txn.open_table(CONTAINERS).context("containers: open")?;
            let mut record = match table.get(id).context("containers: get")? {
                Some(v) => decode(id, v.value())?,
                None => return Err(LookupError::NotFound(id.into()).into()),
            };
            let old_name = record.name.clone();
            f(&mut record);
            if record.name != old_name {
                for entry in table.iter().context("containers: iterate")? {
                    let (key, value) = entry.context("containers: read")?;
                    let other = decode(key.value(), value.value())?;
                    if other.id != record.id && other.name == record.name {
                        return Err(name_in_use(&record.name, &other.id).context("Error when allocating new name"));
                    }
                }
            }
            let bytes = serde_json::to_vec(&record).context("encoding a container record")?;
            table.insert(id, bytes.as_slice()).context("containers: update")?;
            record
        };
        txn.commit().context("containers: commit")?;
        Ok(record)
    }

    /// Removes the record `id` (no error if it is gone).
    pub fn remove(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write().context("containers: begin")?;
        {
            let mut table = txn.open_table(CONTAINERS).context("containers: open")?;
            table.remove(id).context("containers: remove")?;
        }
        txn.commit().context("containers: commit")
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<ContainerRecord> {
    serde_json::from_slice(bytes).with_context(|| format!("containers/{key}: undecodable record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord { id: id.into(), name: name.into(), ..Default::default() }
    }

    fn store() -> (tempfile::TempDir, ContainerStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("m.redb")).expect("db");
        let store = ContainerStore::new(Arc::new(db)).expect("store");
        (dir, store)
    }

    #[test]
    fn lookup_takes_id_name_and_unique_prefix() {
        let (_dir, s) = store();
        s.insert(&record(&"ab".repeat(32), "web")).expect("insert");
        s.insert(&record(&format!("ac{}", "0".repeat(62)), "db")).expect("insert");
        assert_eq!(s.lookup("web").expect("name").name, "web");
        assert_eq!(s.lookup("/db").expect("slash name").name, "db");
        assert_eq!(s.lookup("abab").expect("prefix").name, "web");
        assert!(s.lookup("a").expect_err("ambiguous").to_string().contains("multiple containers"));
        assert!(s.lookup("ff").expect_err("unknown").to_string().contains("No such container: ff"));
    }

    #[test]
    fn names_are_unique_on_insert_and_rename() {
        let (_dir, s) = store();
        s.insert(&record(&"a".repeat(64), "one")).expect("insert");
        s.insert(&record(&"b".repeat(64), "two")).expect("insert");
        assert!(s.insert(&record(&"c".repeat(64), "one")).is_err());
        assert!(s.update(&"b".repeat(64), |r| r.name = "one".into()).is_err());
        assert_eq!(s.get(&"b".repeat(64)).expect("get").expect("there").name, "two");
        s.update(&"b".repeat(64), |r| r.name = "three".into()).expect("rename");
        s.remove(&"b".repeat(64)).expect("remove");
        assert!(s.get(&"b".repeat(64)).expect("get").is_none());
    }
}
