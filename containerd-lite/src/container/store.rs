//! Container records in redb (table `containers`, id → JSON), with docker's lookups: full id,
//! unique id prefix, or name. Names are unique: table `container_names` (name → id) is written by
//! the same transaction as the record, so a lookup, an insert or a rename reads one or two
//! records, never the whole table (a burst of concurrent creates used to decode every record,
//! spec and all, on every call).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::ContainerRecord;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const NAMES: TableDefinition<&str, &str> = TableDefinition::new("container_names");

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
    /// Uses `db`, creating the tables if needed. The name index is rebuilt from the records, so
    /// it is right whatever wrote the records (an older berthd kept no index).
    pub fn new(db: Arc<redb::Database>) -> Result<ContainerStore> {
        let txn = db.begin_write().context("containers: begin")?;
        {
            let records = txn.open_table(CONTAINERS).context("containers: create table")?;
            let mut names = txn.open_table(NAMES).context("container names: create table")?;
            names.retain(|_, _| false).context("container names: clear")?;
            for entry in records.iter().context("containers: iterate")? {
                let (key, value) = entry.context("containers: read")?;
                // An undecodable record keeps berthd from nothing but itself (its lookups fail).
                match decode(key.value(), value.value()) {
                    Ok(record) => {
                        names.insert(record.name.as_str(), record.id.as_str()).context("container names: insert")?;
                    }
                    Err(e) => tracing::warn!("{e:#}"),
                }
            }
        }
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

    /// The id of the container named `name`, if any.
    pub fn name_owner(&self, name: &str) -> Result<Option<String>> {
        let txn = self.db.begin_read().context("containers: begin")?;
        let names = txn.open_table(NAMES).context("container names: open")?;
        let id = names.get(name).with_context(|| format!("container names: get {name}"))?;
        Ok(id.map(|v| v.value().to_string()))
    }

    /// docker's lookup: exact id, then exact name, then unique id prefix.
    pub fn lookup(&self, arg: &str) -> Result<ContainerRecord> {
        let wanted = arg.strip_prefix('/').unwrap_or(arg);
        if wanted.is_empty() {
            return Err(LookupError::NotFound(arg.into()).into());
        }
        let txn = self.db.begin_read().context("containers: begin")?;
        let table = txn.open_table(CONTAINERS).context("containers: open")?;
        if let Some(v) = table.get(wanted).context("containers: get")? {
            return decode(wanted, v.value());
        }
        let names = txn.open_table(NAMES).context("container names: open")?;
        if let Some(id) = names.get(wanted).context("container names: get")? {
            let id = id.value();
            if let Some(v) = table.get(id).context("containers: get")? {
                return decode(id, v.value());
            }
        }
        // Keys are sorted: the ids with this prefix are the first keys from it on.
        let mut prefixed = table.range(wanted..).context("containers: range")?;
        let mut next = || -> Result<Option<(String, Vec<u8>)>> {
            match prefixed.next() {
                Some(entry) => {
                    let (key, value) = entry.context("containers: read")?;
                    let key = key.value();
                    Ok(key.starts_with(wanted).then(|| (key.to_string(), value.value().to_vec())))
                }
                None => Ok(None),
            }
        };
        match (next()?, next()?) {
            (Some((key, bytes)), None) => decode(&key, &bytes),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous(arg.into()).into()),
            _ => Err(LookupError::NotFound(arg.into()).into()),
        }
    }

    /// Stores a new record; fails if its id or name is taken.
    pub fn insert(&self, record: &ContainerRecord) -> Result<()> {
        let txn = self.db.begin_write().context("containers: begin")?;
        {
            let mut table = txn.open_table(CONTAINERS).context("containers: open")?;
            let mut names = txn.open_table(NAMES).context("container names: open")?;
            if table.get(record.id.as_str()).context("containers: get")?.is_some() {
                bail!("container id {} already exists", record.id);
            }
            if let Some(other) = names.get(record.name.as_str()).context("container names: get")? {
                return Err(name_in_use(&record.name, other.value()));
            }
            let bytes = serde_json::to_vec(record).context("encoding a container record")?;
            table.insert(record.id.as_str(), bytes.as_slice()).context("containers: insert")?;
            names.insert(record.name.as_str(), record.id.as_str()).context("container names: insert")?;
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
                let mut names = txn.open_table(NAMES).context("container names: open")?;
                if let Some(other) = names.get(record.name.as_str()).context("container names: get")? {
                    if other.value() != record.id {
                        let other = other.value().to_string();
                        return Err(name_in_use(&record.name, &other).context("Error when allocating new name"));
                    }
                }
                let owned = names.get(old_name.as_str()).context("container names: get")?.map(|o| o.value() == id);
                if owned == Some(true) {
                    names.remove(old_name.as_str()).context("container names: remove")?;
                }
                names.insert(record.name.as_str(), record.id.as_str()).context("container names: insert")?;
            }
            let bytes = serde_json::to_vec(&record).context("encoding a container record")?;
            table.insert(id, bytes.as_slice()).context("containers: update")?;
            record
        };
        txn.commit().context("containers: commit")?;
        Ok(record)
    }

    /// Removes the record `id` and its name (no error if it is gone).
    pub fn remove(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write().context("containers: begin")?;
        {
            let mut table = txn.open_table(CONTAINERS).context("containers: open")?;
            let removed = table.remove(id).context("containers: remove")?;
            if let Some(v) = removed {
                let record = decode(id, v.value())?;
                let mut names = txn.open_table(NAMES).context("container names: open")?;
                let owner = names.get(record.name.as_str()).context("container names: get")?.map(|o| o.value() == id);
                if owner == Some(true) {
                    names.remove(record.name.as_str()).context("container names: remove")?;
                }
            }
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
        assert_eq!(s.name_owner("two").expect("owner"), None, "the old name is free after a rename");
        assert_eq!(s.lookup("three").expect("new name").id, "b".repeat(64));
        s.insert(&record(&"c".repeat(64), "two")).expect("the old name is free");
        s.remove(&"b".repeat(64)).expect("remove");
        assert!(s.get(&"b".repeat(64)).expect("get").is_none());
        assert_eq!(s.name_owner("three").expect("owner"), None, "a removed container's name is free");
    }

    #[test]
    fn the_name_index_is_rebuilt_from_the_records_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.redb");
        {
            // Records as a berthd without the index wrote them.
            let db = redb::Database::create(&path).expect("db");
            let txn = db.begin_write().expect("begin");
            {
                let mut table = txn.open_table(CONTAINERS).expect("table");
                let bytes = serde_json::to_vec(&record(&"d".repeat(64), "old")).expect("encode");
                table.insert("d".repeat(64).as_str(), bytes.as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let s = ContainerStore::new(Arc::new(redb::Database::create(&path).expect("db"))).expect("store");
        assert_eq!(s.lookup("old").expect("by name").id, "d".repeat(64));
        assert!(s.insert(&record(&"e".repeat(64), "old")).is_err(), "the name stays taken");
    }
}
