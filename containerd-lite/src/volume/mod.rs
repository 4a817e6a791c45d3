//! Volumes: docker's `local` driver. A volume is a directory `<root>/volumes/<name>/_data` that
//! containers mount and that outlives them; its record (labels, creation time, anonymous or not)
//! lives in redb (table `volumes`, name → JSON). Which containers use a volume is read from the
//! container records, so it can never disagree with them.

pub mod copy_up;
pub mod mounts;

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::container::ContainerStore;

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

/// The only driver berthd has.
pub const LOCAL_DRIVER: &str = "local";

/// A volume as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeRecord {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Driver options (none are accepted yet; kept for inspect's `Options`).
    pub options: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// Made for a container rather than by name.
    pub anonymous: bool,
}

/// Why a volume operation was refused: the API maps these to status codes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("No such volume: {0}")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("{0}")]
    Invalid(String),
}

/// docker's rule for a local volume's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. It keeps `/` and `..`
/// out, so a name is always one directory under `<root>/volumes`.
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::Invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

/// The volumes of one berthd: records in redb, directories under `<root>/volumes`.
pub struct Volumes {
    db: Arc<redb::Database>,
    dir: PathBuf,
    /// Held while a volume is removed and while a container that mounts volumes is created (from
    /// resolving its volumes to storing its record), so a volume is never removed between a
    /// container choosing it and the record that marks it in use.
    lock: Mutex<()>,
}

impl Volumes {
    /// Uses `db` (creating the table) and `<root>/volumes`. A directory there without a record is
    /// what a daemon killed between the two steps of a create or a remove left: it is removed.
    pub fn open(db: Arc<redb::Database>, root: &Path) -> Result<Volumes> {
        let txn = db.begin_write().context("volumes: begin")?;
        txn.open_table(VOLUMES).context("volumes: create table")?;
        txn.commit().context("volumes: commit")?;
        let dir = root.join("volumes");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let volumes = Volumes { db, dir, lock: Mutex::new(()) };
        for entry in std::fs::read_dir(&volumes.dir).with_context(|| format!("reading {}", volumes.dir.display()))? {
            let entry = entry.with_context(|| format!("reading {}", volumes.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if volumes.get(&name)?.is_none() {
                tracing::info!(volume = %name, "removing the directory of a volume that has no record");
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(volumes)
    }

    /// See the `lock` field.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic elsewhere while holding it leaves no half-made state the lock protects.
        self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory containers mount: `<root>/volumes/<name>/_data`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Every record, in name order.
    pub fn list(&self) -> Result<Vec<VolumeRecord>> {
        let txn = self.db.begin_read().context("volumes: begin")?;
        let table = txn.open_table(VOLUMES).context("volumes: open")?;
        let mut out = Vec::new();
        for entry in table.iter().context("volumes: iterate")? {
            let (key, value) = entry.context("volumes: read")?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// The volume `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<VolumeRecord>> {
        let txn = self.db.begin_read().context("volumes: begin")?;
        let table = txn.open_table(VOLUMES).context("volumes: open")?;
        let value = table.get(name).with_context(|| format!("volumes: get {name}"))?;
        value.map(|v| decode(name, v.value())).transpose()
    }

    /// Creates a volume (a random 64-hex name when `name` is empty). An existing volume of that
    /// name is returned unchanged, as docker does. Returns the record and whether it is new. The
    /// caller holds the lock.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(VolumeRecord, bool)> {
        let name = if name.is_empty() { crate::container::new_id()? } else { name.to_string() };
        if !driver.is_empty() && driver != LOCAL_DRIVER {
            return Err(VolumeError::Invalid(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            ))
            .into());
        }
        validate_name(&name)?;
        if let Some(key) = options.keys().next() {
            return Err(VolumeError::Invalid(format!(
                "create {name}: invalid option key: {key:?} (the local driver of berth takes no options)"
            ))
            .into());
        }
        if let Some(existing) = self.get(&name)? {
            return Ok((existing, false));
        }
        let record =
            VolumeRecord { name: name.clone(), labels, options, created_at: crate::events::now_nanos(), anonymous };
        let volume_dir = self.dir.join(&name);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(self.mountpoint(&name))
            .with_context(|| format!("create {name}: creating {}", volume_dir.display()))?;
        let stored = (|| -> Result<()> {
            let txn = self.db.begin_write().context("volumes: begin")?;
            {
                let mut table = txn.open_table(VOLUMES).context("volumes: open")?;
                let bytes = serde_json::to_vec(&record).context("encoding a volume record")?;
                table.insert(name.as_str(), bytes.as_slice()).context("volumes: insert")?;
            }
            txn.commit().context("volumes: commit")
        })();
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&volume_dir);
            return Err(e);
        }
        Ok((record, true))
    }

    /// Removes the volume `name` and its files; refused while a container uses it, with `force`
    /// too (docker's daemon refuses that as well). `force` only forgives a missing volume.
    pub fn remove(&self, containers: &ContainerStore, name: &str, force: bool) -> Result<()> {
        let _guard = self.lock();
        if self.get(name)?.is_none() {
            if force {
                return Ok(());
            }
            return Err(VolumeError::NotFound(name.into()).into());
        }
        let users = users_of(containers, name)?;
        if !users.is_empty() {
            return Err(VolumeError::InUse { name: name.into(), users }.into());
        }
        self.remove_unused(name).map(drop)
    }

    /// Removes the volume `name` (known to be unused; the caller holds the lock), returning the
    /// bytes its files took.
    fn remove_unused(&self, name: &str) -> Result<u64> {
        let volume_dir = self.dir.join(name);
        let size = dir_size(&volume_dir);
        let txn = self.db.begin_write().context("volumes: begin")?;
        {
            let mut table = txn.open_table(VOLUMES).context("volumes: open")?;
            table.remove(name).with_context(|| format!("volumes: remove {name}"))?;
        }
        txn.commit().context("volumes: commit")?;
        match std::fs::remove_dir_all(&volume_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {name}: removing {}", volume_dir.display())),
        }
        Ok(size)
    }

    /// Removes every volume no container uses and that `keep` does not keep (docker 20.10 prunes
    /// named volumes as well as anonymous ones). Returns the names removed and the bytes freed.
    pub fn prune(
        &self,
        containers: &ContainerStore,
        keep: impl Fn(&VolumeRecord) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let _guard = self.lock();
        let in_use = names_in_use(containers)?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for record in self.list()? {
            if in_use.contains_key(&record.name) || keep(&record) {
                continue;
            }
            reclaimed += self.remove_unused(&record.name)?;
            deleted.push(record.name);
        }
        Ok((deleted, reclaimed))
    }

    /// Removes the volumes among `names` that no container uses (any more), only anonymous ones
    /// with `anonymous_only`: a removed container's (`rm -v`, `run --rm`; named volumes stay), a
    /// failed create's. Returns the names removed; failures are logged: the caller is cleaning up
    /// already.
    pub fn remove_unused_among(
        &self,
        containers: &ContainerStore,
        names: &[String],
        anonymous_only: bool,
    ) -> Vec<String> {
        let _guard = self.lock();
        let mut removed = Vec::new();
        for name in names {
            let result = (|| -> Result<bool> {
                let Some(record) = self.get(name)? else { return Ok(false) };
                if (record.anonymous || !anonymous_only) && users_of(containers, name)?.is_empty() {
                    self.remove_unused(name)?;
                    return Ok(true);
                }
                Ok(false)
            })();
            match result {
                Ok(true) => removed.push(name.clone()),
                Ok(false) => {}
                Err(e) => tracing::warn!(volume = %name, "removing an unused volume: {e:#}"),
            }
        }
        removed
    }

    /// Bytes the files of volume `name` take (apparent sizes, each inode once; symlinks not
    /// followed).
    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.dir.join(name))
    }
}

/// Ids of the containers (running or not) that mount volume `name`.
pub fn users_of(containers: &ContainerStore, name: &str) -> Result<Vec<String>> {
    Ok(names_in_use(containers)?.remove(name).unwrap_or_default())
}

/// Every volume some container mounts, with the ids of those containers.
pub fn names_in_use(containers: &ContainerStore) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in containers.list()? {
        for m in record.config.mounts.iter().filter(|m| m.kind == "volume") {
            let users = out.entry(m.source.clone()).or_default();
            if !users.contains(&record.id) {
                users.push(record.id.clone());
            }
        }
    }
    Ok(out)
}

/// Apparent size of the files under `dir`, hard links counted once, never following a link.
fn dir_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

fn decode(key: &str, bytes: &[u8]) -> Result<VolumeRecord> {
    serde_json::from_slice(bytes).with_context(|| format!("volumes/{key}: undecodable record"))
}

/// docker's `volume ls`/`prune` filters (`key=value`): `dangling`, `name`, `label`, `driver`.
pub struct Filters {
    dangling: Option<bool>,
    names: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    drivers: Vec<String>,
}

impl Filters {
    /// Parses `filters`; an unknown key or a bad value is docker's error.
    pub fn parse(filters: &[String]) -> Result<Filters> {
        let mut out = Filters { dangling: None, names: Vec::new(), labels: Vec::new(), drivers: Vec::new() };
        for filter in filters {
            let (key, value) = filter.split_once('=').unwrap_or((filter, ""));
            match key {
                "dangling" => {
                    out.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!(VolumeError::Invalid(format!("Invalid filter 'dangling={value}'"))),
                    })
                }
                "name" => out.names.push(value.to_string()),
                "label" => out.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "driver" => out.drivers.push(value.to_string()),
                _ => bail!(VolumeError::Invalid(format!("Invalid filter '{key}'"))),
            }
        }
        Ok(out)
    }

    /// Whether `record` passes; `in_use` says whether a container mounts it.
    pub fn matches(&self, record: &VolumeRecord, in_use: bool) -> bool {
        self.dangling.is_none_or(|dangling| dangling != in_use)
            && (self.names.is_empty() || self.names.iter().any(|n| record.name.contains(n.as_str())))
            && self.labels.iter().all(|(k, v)| match (record.labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
            && (self.drivers.is_empty() || self.drivers.iter().any(|d| d == LOCAL_DRIVER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volumes() -> (tempfile::TempDir, Volumes, ContainerStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(redb::Database::create(dir.path().join("m.redb")).expect("db"));
        let volumes = Volumes::open(db.clone(), dir.path()).expect("volumes");
        let containers = ContainerStore::new(db).expect("containers");
        (dir, volumes, containers)
    }

    #[test]
    fn directories_without_a_record_are_removed_on_open() {
        let (dir, v, _) = volumes();
        v.create("kept", "", BTreeMap::new(), BTreeMap::new(), false).expect("create");
        std::fs::create_dir_all(dir.path().join("volumes/orphan/_data")).expect("mkdir");
        drop(v);
        let db = Arc::new(redb::Database::open(dir.path().join("m.redb")).expect("db"));
        let v = Volumes::open(db, dir.path()).expect("reopen");
        assert!(v.mountpoint("kept").is_dir());
        assert!(!dir.path().join("volumes/orphan").exists());
    }

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["data", "a1", "my_vol.v2-x"] {
            validate_name(good).expect(good);
        }
        for bad in ["", "a", "-x", "..", "../x", "a/b", "a b", "_x", ".hidden"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_makes_the_directory_and_is_idempotent() {
        let (_dir, v, _) = volumes();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let (first, new) = v.create("data", "", labels.clone(), BTreeMap::new(), false).expect("create");
        assert!(new);
        assert!(v.mountpoint("data").is_dir());
        let (again, new) = v.create("data", "local", BTreeMap::new(), BTreeMap::new(), false).expect("again");
        assert!(!new);
        assert_eq!(again, first);
        let (anonymous, _) = v.create("", "", BTreeMap::new(), BTreeMap::new(), true).expect("anonymous");
        assert_eq!(anonymous.name.len(), 64);
    }

    #[test]
    fn bad_names_and_other_drivers_leave_nothing() {
        let (dir, v, _) = volumes();
        assert!(v.create("../x", "", BTreeMap::new(), BTreeMap::new(), false).is_err());
        let err = v.create("x1", "nfs", BTreeMap::new(), BTreeMap::new(), false).expect_err("driver");
        assert!(err.to_string().contains("plugin \"nfs\" not found"), "{err}");
        assert!(v.list().expect("list").is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join("volumes")).expect("dir").count(), 0);
    }

    #[test]
    fn remove_and_prune_skip_volumes_in_use() {
        let (_dir, v, containers) = volumes();
        for name in ["used", "free"] {
            v.create(name, "", BTreeMap::new(), BTreeMap::new(), false).expect("create");
        }
        let mut record =
            crate::container::ContainerRecord { id: "c".repeat(64), name: "web".into(), ..Default::default() };
        record.config.mounts.push(berth_proto::container_config::MountConfig {
            kind: "volume".into(),
            source: "used".into(),
            target: "/data".into(),
            ..Default::default()
        });
        containers.insert(&record).expect("insert");
        let err = v.remove(&containers, "used", true).expect_err("in use");
        assert_eq!(err.to_string(), format!("remove used: volume is in use - [{}]", record.id));
        let (deleted, _) = v.prune(&containers, |_| false).expect("prune");
        assert_eq!(deleted, vec!["free".to_string()]);
        assert!(v.get("used").expect("get").is_some());
        assert!(!v.mountpoint("free").exists());
    }

    #[test]
    fn filters_select_by_dangling_name_and_label() {
        let record = VolumeRecord {
            name: "webdata".into(),
            labels: BTreeMap::from([("tier".to_string(), "db".to_string())]),
            ..Default::default()
        };
        let f = |list: &[&str]| Filters::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parse");
        assert!(f(&["dangling=true"]).matches(&record, false));
        assert!(!f(&["dangling=true"]).matches(&record, true));
        assert!(f(&["name=data", "label=tier=db"]).matches(&record, true));
        assert!(!f(&["label=tier=web"]).matches(&record, true));
        assert!(f(&["label=tier"]).matches(&record, true));
        assert!(Filters::parse(&["colour=red".to_string()]).is_err());
    }
}
