//! Overlayfs snapshotter shaped like containerd's `snapshots/overlay`: it owns `<root>/snapshots/<id>/{fs,work}`
//! and the snapshot records (redb tables `snapshots` and `snapshot_ids`) in the database shared with `meta`.
//! A snapshot is a numbered directory plus the mount instructions that stack it on its committed parents.
//!
//! Crash safety: a new snapshot's directory is built under `new-<id>` and renamed to `<id>` while the write
//! transaction that adds its record is still open, so the record becomes durable only once its directory is in
//! place. A removal commits the record's deletion first, then renames the directory to `trash-<id>` and deletes it.
//! Whatever a kill leaves behind (temp, trash, or numbered directories without a record) is deleted by
//! [`Snapshotter::new`]. Keys are never used in paths; only the numeric id is.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use nix::mount::MsFlags;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

/// Snapshot key → JSON-encoded [`Record`].
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// Sequence counters; [`NEXT_ID`] is the id the next snapshot gets. Ids are never reused.
const SNAPSHOT_IDS: TableDefinition<&str, u64> = TableDefinition::new("snapshot_ids");
const NEXT_ID: &str = "next_id";

/// Prefix of a directory being built for a new snapshot.
const TEMP_PREFIX: &str = "new-";
/// Prefix of a directory whose record is gone and which is being deleted.
const TRASH_PREFIX: &str = "trash-";

/// What a snapshot is for, as containerd's `snapshots.Kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Read-only view of its parent chain; never committed.
    View,
    /// Writable layer on top of its parent chain; can be committed.
    Active,
    /// Immutable layer; the only kind that can be a parent.
    Committed,
}

/// A snapshot's metadata, as containerd's `snapshots.Info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The key (for an active or view snapshot) or name (for a committed one).
    pub key: String,
    /// Key of the committed parent, if any.
    pub parent: Option<String>,
    /// What the snapshot is for.
    pub kind: Kind,
    /// When the snapshot was created (for a committed one: when it was committed).
    pub created: SystemTime,
    /// When the snapshot's record last changed.
    pub updated: SystemTime,
    /// Free-form labels; containerd's `containerd.io/gc.*` labels are stored as they come.
    pub labels: BTreeMap<String, String>,
}

/// How to mount a snapshot, as containerd's `mount.Mount` (type, source, options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type: `"overlay"` or `"bind"`.
    pub kind: String,
    /// The mount source: `"overlay"` or the bound directory.
    pub source: String,
    /// Mount options; `ro`, `rw`, `bind`, `rbind` and a few others are flags, the rest is filesystem data.
    pub options: Vec<String>,
}

/// Disk usage of a snapshot's own directory, as containerd's `snapshots.Usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated (`st_blocks * 512`), each inode counted once.
    pub size: u64,
    /// Distinct inodes, the directory itself included.
    pub inodes: u64,
}

/// What can go wrong in the snapshotter; each variant names the snapshot or path involved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot has this key.
    #[error("snapshot {key:?} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A snapshot of any kind already has this key.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The taken key.
        key: String,
    },
    /// The key is unusable (empty).
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The requested parent does not exist.
    #[error("cannot create snapshot {key:?}: parent {parent:?} not found")]
    ParentNotFound {
        /// The snapshot being created.
        key: String,
        /// The missing parent.
        parent: String,
    },
    /// The requested parent exists but is not committed.
    #[error("cannot create snapshot {key:?}: parent {parent:?} is {kind:?}, not committed")]
    ParentNotCommitted {
        /// The snapshot being created.
        key: String,
        /// The parent.
        parent: String,
        /// The parent's kind.
        kind: Kind,
    },
    /// The operation needs a snapshot of another kind.
    #[error("cannot {op} snapshot {key:?}: it is {kind:?}, {op} needs {expected}")]
    WrongKind {
        /// The operation.
        op: &'static str,
        /// The snapshot.
        key: String,
        /// Its kind.
        kind: Kind,
        /// What the operation needs.
        expected: &'static str,
    },
    /// A snapshot with children cannot be removed.
    #[error("cannot remove snapshot {key:?}: it is the parent of {children:?}")]
    HasChildren {
        /// The snapshot.
        key: String,
        /// Keys of its children, sorted.
        children: Vec<String>,
    },
    /// The snapshot root cannot be used in overlay mount options.
    #[error("snapshot root {path}: {reason}")]
    InvalidRoot {
        /// The root.
        path: PathBuf,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A stored record does not decode or the parent chain is broken.
    #[error("snapshot {key:?}: corrupt metadata: {reason}")]
    Corrupt {
        /// The snapshot whose record is bad.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The metadata database failed.
    #[error("snapshot metadata: {op} {key:?}: {source}")]
    Db {
        /// The operation.
        op: &'static str,
        /// The snapshot involved (empty for whole-store operations).
        key: String,
        /// The database error (boxed: redb's error is large).
        #[source]
        source: Box<redb::Error>,
    },
    /// A filesystem or mount call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path it acted on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Adds the operation and key to a redb error.
trait DbContext<T> {
    fn db(self, op: &'static str, key: &str) -> Result<T, SnapshotError>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for Result<T, E> {
    fn db(self, op: &'static str, key: &str) -> Result<T, SnapshotError> {
        self.map_err(|e| SnapshotError::Db { op, key: key.to_owned(), source: Box::new(e.into()) })
    }
}

/// Adds the operation and path to an OS error.
trait IoContext<T> {
    fn io(self, op: &'static str, path: &Path) -> Result<T, SnapshotError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn io(self, op: &'static str, path: &Path) -> Result<T, SnapshotError> {
        self.map_err(|e| SnapshotError::Io { op, path: path.to_owned(), source: e.into() })
    }
}

/// One snapshot as stored in the `snapshots` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    id: u64,
    kind: Kind,
    parent: Option<String>,
    created: SystemTime,
    updated: SystemTime,
    labels: BTreeMap<String, String>,
}

impl Record {
    fn info(self, key: String) -> Info {
        Info {
            key,
            parent: self.parent,
            kind: self.kind,
            created: self.created,
            updated: self.updated,
            labels: self.labels,
        }
    }
}

/// The overlayfs snapshotter. Clones share the database and root; use one per root per process tree, since
/// [`Snapshotter::new`] deletes directories it finds without a record.
#[derive(Clone)]
pub struct Snapshotter {
    /// `<root>/snapshots`, canonical.
    dir: PathBuf,
    db: Arc<redb::Database>,
    /// Appended to every overlay mount, as containerd does (`index=off` where the kernel knows the option).
    overlay_options: Vec<String>,
}

impl Snapshotter {
    /// Opens the snapshotter on `<root>/snapshots`, creating the directory and tables if needed, and deletes what
    /// an interrupted create or remove left behind.
    pub fn new(root: &Path, db: Arc<redb::Database>) -> Result<Self, SnapshotError> {
        let dir = root.join("snapshots");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).io("create snapshot root", &dir)?;
        let dir = dir.canonicalize().io("resolve snapshot root", &dir)?;
        // Overlay options are comma-separated and lowerdir is colon-separated.
        match dir.to_str() {
            None => return Err(SnapshotError::InvalidRoot { path: dir, reason: "path is not UTF-8" }),
            Some(s) if s.contains([',', ':']) => {
                return Err(SnapshotError::InvalidRoot { path: dir, reason: "path contains ',' or ':'" })
            }
            Some(_) => {}
        }

        let txn = db.begin_write().db("create tables", "")?;
        txn.open_table(SNAPSHOTS).db("create tables", "")?;
        txn.open_table(SNAPSHOT_IDS).db("create tables", "")?;
        txn.commit().db("create tables", "")?;

        // Without the index feature the option is unknown; with it, containerd turns it off so that layers can be
        // shared by many upper dirs.
        let overlay_options = if Path::new("/sys/module/overlay/parameters/index").exists() {
            vec!["index=off".to_owned()]
        } else {
            Vec::new()
        };
        let snapshotter = Snapshotter { dir, db, overlay_options };
        snapshotter.clean_leftovers()?;
        Ok(snapshotter)
    }

    /// Creates an active (writable) snapshot `key` on top of the committed `parent` and returns its mounts.
    pub fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create("prepare", Kind::Active, key, parent, labels)
    }

    /// Creates a read-only view `key` of the committed `parent` and returns its mounts.
    pub fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create("view", Kind::View, key, parent, labels)
    }

    /// The mounts of an active or view snapshot.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let txn = self.db.begin_read().db("mounts", key)?;
        let table = txn.open_table(SNAPSHOTS).db("mounts", key)?;
        let record = load(&table, "mounts", key)?.ok_or_else(|| not_found(key))?;
        if record.kind == Kind::Committed {
            return Err(SnapshotError::WrongKind {
                op: "mount",
                key: key.to_owned(),
                kind: record.kind,
                expected: "an active or view snapshot",
            });
        }
        let parent_ids = match &record.parent {
            Some(parent) => ancestor_ids(&table, "mounts", key, parent)?,
            None => Vec::new(),
        };
        Ok(self.mounts_of(record.kind, record.id, &parent_ids))
    }

    /// Turns the active snapshot `key` into the committed snapshot `name` with `labels`; the directory stays,
    /// `key` disappears.
    pub fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<(), SnapshotError> {
        check_key(name)?;
        let txn = self.db.begin_write().db("commit", key)?;
        {
            let mut table = txn.open_table(SNAPSHOTS).db("commit", key)?;
            let record = load(&table, "commit", key)?.ok_or_else(|| not_found(key))?;
            if record.kind != Kind::Active {
                return Err(SnapshotError::WrongKind {
                    op: "commit",
                    key: key.to_owned(),
                    kind: record.kind,
                    expected: "an active snapshot",
                });
            }
            if load(&table, "commit", name)?.is_some() {
                return Err(SnapshotError::AlreadyExists { key: name.to_owned() });
            }
            let now = SystemTime::now();
            let committed = Record { kind: Kind::Committed, created: now, updated: now, labels, ..record };
            table.remove(key).db("commit", key)?;
            store(&mut table, "commit", name, &committed)?;
        }
        txn.commit().db("commit", key)
    }

    /// Removes snapshot `key` and its directory; refuses while other snapshots have it as parent.
    pub fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let txn = self.db.begin_write().db("remove", key)?;
        let record = {
            let mut table = txn.open_table(SNAPSHOTS).db("remove", key)?;
            let record = load(&table, "remove", key)?.ok_or_else(|| not_found(key))?;
            let children: Vec<String> = all_records(&table, "remove")?
                .into_iter()
                .filter(|(_, child)| child.parent.as_deref() == Some(key))
                .map(|(child_key, _)| child_key)
                .collect();
            if !children.is_empty() {
                return Err(SnapshotError::HasChildren { key: key.to_owned(), children });
            }
            table.remove(key).db("remove", key)?;
            record
        };
        txn.commit().db("remove", key)?;

        // The record is gone, so the snapshot is: a directory left by a failure here is deleted by the next `new`.
        let snapshot_dir = self.snapshot_dir(record.id);
        let trash = self.dir.join(format!("{TRASH_PREFIX}{}", record.id));
        if let Err(e) = fs::rename(&snapshot_dir, &trash).io("move to trash", &snapshot_dir) {
            tracing::warn!(key, error = %e, "snapshot removed but its directory stays until restart");
            return Ok(());
        }
        if let Err(e) = fs::remove_dir_all(&trash).io("delete", &trash) {
            tracing::warn!(key, error = %e, "snapshot removed but its directory stays until restart");
        }
        Ok(())
    }

    /// The metadata of snapshot `key`.
    pub fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        Ok(self.record(key)?.info(key.to_owned()))
    }

    /// Replaces the labels of snapshot `key` (as containerd's `Update` without field paths) and returns its info.
    pub fn update_labels(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info, SnapshotError> {
        let txn = self.db.begin_write().db("update labels", key)?;
        let record = {
            let mut table = txn.open_table(SNAPSHOTS).db("update labels", key)?;
            let record = load(&table, "update labels", key)?.ok_or_else(|| not_found(key))?;
            let record = Record { labels, updated: SystemTime::now(), ..record };
            store(&mut table, "update labels", key, &record)?;
            record
        };
        txn.commit().db("update labels", key)?;
        Ok(record.info(key.to_owned()))
    }

    /// Disk usage of the snapshot's own `fs` directory, like `du`: symlinks are not followed, hard links count once.
    pub fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        disk_usage(&self.fs_dir(self.record(key)?.id))
    }

    /// Every snapshot, sorted by key.
    pub fn list(&self) -> Result<Vec<Info>, SnapshotError> {
        let txn = self.db.begin_read().db("list", "")?;
        let table = txn.open_table(SNAPSHOTS).db("list", "")?;
        Ok(all_records(&table, "list")?.into_iter().map(|(key, record)| record.info(key)).collect())
    }

    /// The `fs` directory of active snapshot `key`: layer apply writes there directly.
    pub fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let record = self.record(key)?;
        if record.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                op: "write to",
                key: key.to_owned(),
                kind: record.kind,
                expected: "an active snapshot",
            });
        }
        Ok(self.fs_dir(record.id))
    }

    /// The `fs` directory of snapshot `key` (any kind) and those of its committed parents, nearest
    /// first: what a diff of an active snapshot against its parents compares.
    pub fn layer_dirs(&self, key: &str) -> Result<(PathBuf, Vec<PathBuf>), SnapshotError> {
        let txn = self.db.begin_read().db("layer dirs", key)?;
        let table = txn.open_table(SNAPSHOTS).db("layer dirs", key)?;
        let record = load(&table, "layer dirs", key)?.ok_or_else(|| not_found(key))?;
        let parent_ids = match &record.parent {
            Some(parent) => ancestor_ids(&table, "layer dirs", key, parent)?,
            None => Vec::new(),
        };
        Ok((self.fs_dir(record.id), parent_ids.into_iter().map(|id| self.fs_dir(id)).collect()))
    }

    /// Whether a snapshot of any kind has this key.
    pub fn exists(&self, key: &str) -> Result<bool, SnapshotError> {
        let txn = self.db.begin_read().db("exists", key)?;
        let table = txn.open_table(SNAPSHOTS).db("exists", key)?;
        Ok(table.get(key).db("exists", key)?.is_some())
    }

    /// Creates the record and directory of a new active or view snapshot.
    fn create(
        &self,
        op: &'static str,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        check_key(key)?;
        let txn = self.db.begin_write().db(op, key)?;
        let (id, parent_ids) = {
            let mut table = txn.open_table(SNAPSHOTS).db(op, key)?;
            if load(&table, op, key)?.is_some() {
                return Err(SnapshotError::AlreadyExists { key: key.to_owned() });
            }
            let parent_ids = match parent {
                Some(parent) => {
                    let parent_record = load(&table, op, parent)?.ok_or_else(|| SnapshotError::ParentNotFound {
                        key: key.to_owned(),
                        parent: parent.to_owned(),
                    })?;
                    if parent_record.kind != Kind::Committed {
                        return Err(SnapshotError::ParentNotCommitted {
                            key: key.to_owned(),
                            parent: parent.to_owned(),
                            kind: parent_record.kind,
                        });
                    }
                    ancestor_ids(&table, op, key, parent)?
                }
                None => Vec::new(),
            };
            let id = allocate_id(&txn, op, key)?;
            let now = SystemTime::now();
            let record = Record { id, kind, parent: parent.map(str::to_owned), created: now, updated: now, labels };
            store(&mut table, op, key, &record)?;
            (id, parent_ids)
        };

        // The directory is in place before the record commits; until then it is a leftover that `new` deletes.
        let snapshot_dir = self.snapshot_dir(id);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{id}"));
        let placed = self.build_dir(&temp, kind, parent_ids.first().copied()).and_then(|()| {
            fs::rename(&temp, &snapshot_dir).io("rename into place", &temp)?;
            fs::File::open(&self.dir).and_then(|d| d.sync_all()).io("sync", &self.dir)
        });
        if let Err(e) = placed {
            remove_quietly(&temp);
            remove_quietly(&snapshot_dir);
            return Err(e);
        }
        if let Err(e) = txn.commit().db(op, key) {
            remove_quietly(&snapshot_dir);
            return Err(e);
        }
        Ok(self.mounts_of(kind, id, &parent_ids))
    }

    /// Builds `fs` (and `work` for an active snapshot) under `temp`; `fs` takes the owner of the parent's `fs` so
    /// the merged root keeps the image's ownership, as containerd does.
    fn build_dir(&self, temp: &Path, kind: Kind, parent_id: Option<u64>) -> Result<(), SnapshotError> {
        if temp.exists() {
            fs::remove_dir_all(temp).io("delete stale", temp)?;
        }
        fs::DirBuilder::new().mode(0o700).create(temp).io("create", temp)?;
        let fs_dir = temp.join("fs");
        fs::DirBuilder::new().mode(0o755).create(&fs_dir).io("create", &fs_dir)?;
        if kind == Kind::Active {
            let work = temp.join("work");
            fs::DirBuilder::new().mode(0o711).create(&work).io("create", &work)?;
        }
        if let Some(parent_id) = parent_id {
            let parent_fs = self.fs_dir(parent_id);
            let owner = fs::metadata(&parent_fs).io("stat parent", &parent_fs)?;
            std::os::unix::fs::lchown(&fs_dir, Some(owner.uid()), Some(owner.gid())).io("chown", &fs_dir)?;
        }
        Ok(())
    }

    /// containerd's overlay mount rules; `parent_ids` is the parent chain, nearest first.
    fn mounts_of(&self, kind: Kind, id: u64, parent_ids: &[u64]) -> Vec<Mount> {
        let bind = |dir: PathBuf, mode: &str| Mount {
            kind: "bind".to_owned(),
            source: path_option(&dir),
            options: vec!["rbind".to_owned(), mode.to_owned()],
        };
        match (kind, parent_ids) {
            (Kind::Active, []) => vec![bind(self.fs_dir(id), "rw")],
            (_, []) => vec![bind(self.fs_dir(id), "ro")],
            (Kind::View, [only]) => vec![bind(self.fs_dir(*only), "ro")],
            _ => {
                let mut options = Vec::new();
                if kind == Kind::Active {
                    options.push(format!("workdir={}", path_option(&self.work_dir(id))));
                    options.push(format!("upperdir={}", path_option(&self.fs_dir(id))));
                }
                let lowers: Vec<String> = parent_ids.iter().map(|p| path_option(&self.fs_dir(*p))).collect();
                options.push(format!("lowerdir={}", lowers.join(":")));
                options.extend(self.overlay_options.iter().cloned());
                vec![Mount { kind: "overlay".to_owned(), source: "overlay".to_owned(), options }]
            }
        }
    }

    /// Deletes temp and trash directories and numbered directories without a record. Leftovers are renamed to
    /// trash names while a write transaction keeps creates and removes out, then deleted without holding it.
    fn clean_leftovers(&self) -> Result<(), SnapshotError> {
        {
            let txn = self.db.begin_write().db("clean up", "")?;
            let table = txn.open_table(SNAPSHOTS).db("clean up", "")?;
            let records = all_records(&table, "clean up")?;
            let ids: HashSet<u64> = records.iter().map(|(_, record)| record.id).collect();
            for entry in fs::read_dir(&self.dir).io("list", &self.dir)? {
                let entry = entry.io("list", &self.dir)?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    tracing::warn!(path = %entry.path().display(), "unexpected entry in snapshot root left alone");
                    continue;
                };
                let orphan = match name.parse::<u64>() {
                    Ok(id) => !ids.contains(&id),
                    Err(_) => name.starts_with(TEMP_PREFIX),
                };
                if orphan {
                    let trash = self.dir.join(format!("{TRASH_PREFIX}{name}"));
                    fs::rename(entry.path(), &trash).io("move to trash", &entry.path())?;
                } else if !name.starts_with(TRASH_PREFIX) && name.parse::<u64>().is_err() {
                    tracing::warn!(path = %entry.path().display(), "unexpected entry in snapshot root left alone");
                }
            }
            for (key, record) in &records {
                if !self.snapshot_dir(record.id).is_dir() {
                    tracing::warn!(key, id = record.id, "snapshot record has no directory");
                }
            }
            drop(table);
            txn.abort().db("clean up", "")?;
        }
        for entry in fs::read_dir(&self.dir).io("list", &self.dir)? {
            let entry = entry.io("list", &self.dir)?;
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(TRASH_PREFIX)) {
                let path = entry.path();
                tracing::info!(path = %path.display(), "deleting leftover snapshot directory");
                fs::remove_dir_all(&path).io("delete leftover", &path)?;
            }
        }
        Ok(())
    }

    fn record(&self, key: &str) -> Result<Record, SnapshotError> {
        let txn = self.db.begin_read().db("stat", key)?;
        let table = txn.open_table(SNAPSHOTS).db("stat", key)?;
        load(&table, "stat", key)?.ok_or_else(|| not_found(key))
    }

    fn snapshot_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.snapshot_dir(id).join("fs")
    }

    fn work_dir(&self, id: u64) -> PathBuf {
        self.snapshot_dir(id).join("work")
    }
}

/// Gc sees every snapshot with its parent, kind and labels, and removes unreachable committed ones.
impl crate::store::gc::SnapshotGc for Snapshotter {
    fn snapshots(&self) -> Result<Vec<crate::store::gc::SnapshotNode>, anyhow::Error> {
        let nodes = self.list()?.into_iter().map(|info| crate::store::gc::SnapshotNode {
            committed: info.kind == Kind::Committed,
            key: info.key,
            parent: info.parent,
            labels: info.labels,
        });
        Ok(nodes.collect())
    }

    fn remove(&self, key: &str) -> Result<(), anyhow::Error> {
        Ok(Snapshotter::remove(self, key)?)
    }
}

impl Mount {
    /// Mounts this on `target` as containerd's `mount.Mount.Mount` does: flag options become mount flags, the
    /// rest the filesystem data; a read-only bind is bound first and then remounted read-only.
    pub fn mount(&self, target: &Path) -> Result<(), SnapshotError> {
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for option in &self.options {
            match option.as_str() {
                "ro" => flags.insert(MsFlags::MS_RDONLY),
                "rw" => flags.remove(MsFlags::MS_RDONLY),
                "bind" => flags.insert(MsFlags::MS_BIND),
                "rbind" => flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC),
                "nosuid" => flags.insert(MsFlags::MS_NOSUID),
                "nodev" => flags.insert(MsFlags::MS_NODEV),
                "noexec" => flags.insert(MsFlags::MS_NOEXEC),
                "noatime" => flags.insert(MsFlags::MS_NOATIME),
                "relatime" => flags.insert(MsFlags::MS_RELATIME),
                other => data.push(other),
            }
        }
        let data = data.join(",");
        let data = (!data.is_empty()).then_some(data.as_str());
        let is_bind = flags.contains(MsFlags::MS_BIND);
        let fstype = (!is_bind).then_some(self.kind.as_str());
        nix::mount::mount(Some(self.source.as_str()), target, fstype, flags, data).io("mount snapshot on", target)?;

        // A bind mount ignores the other flags; only a remount applies them.
        let per_mount = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if is_bind && flags.intersects(per_mount) {
            let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | (flags & per_mount);
            if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
                let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
                return Err(e).io("remount read-only", target);
            }
        }
        Ok(())
    }
}

fn not_found(key: &str) -> SnapshotError {
    SnapshotError::NotFound { key: key.to_owned() }
}

fn check_key(key: &str) -> Result<(), SnapshotError> {
    if key.is_empty() {
        return Err(SnapshotError::InvalidKey { key: key.to_owned(), reason: "key is empty" });
    }
    Ok(())
}

/// Paths under a validated root are UTF-8 without `,` or `:`.
fn path_option(path: &Path) -> String {
    path.display().to_string()
}

fn load(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    op: &'static str,
    key: &str,
) -> Result<Option<Record>, SnapshotError> {
    match table.get(key).db(op, key)? {
        Some(bytes) => decode(key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Record, SnapshotError> {
    serde_json::from_slice(bytes)
        .map_err(|e| SnapshotError::Corrupt { key: key.to_owned(), reason: format!("record does not decode: {e}") })
}

fn store(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    op: &'static str,
    key: &str,
    record: &Record,
) -> Result<(), SnapshotError> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| SnapshotError::Corrupt { key: key.to_owned(), reason: format!("record does not encode: {e}") })?;
    table.insert(key, bytes.as_slice()).db(op, key)?;
    Ok(())
}

fn all_records(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    op: &'static str,
) -> Result<Vec<(String, Record)>, SnapshotError> {
    let mut records = Vec::new();
    for entry in table.iter().db(op, "")? {
        let (key, value) = entry.db(op, "")?;
        let key = key.value().to_owned();
        let record = decode(&key, value.value())?;
        records.push((key, record));
    }
    Ok(records)
}

/// Ids of `parent` and its ancestors, nearest first.
fn ancestor_ids(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    op: &'static str,
    key: &str,
    parent: &str,
) -> Result<Vec<u64>, SnapshotError> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(parent.to_owned());
    while let Some(ancestor) = next {
        let record = load(table, op, &ancestor)?.ok_or_else(|| SnapshotError::Corrupt {
            key: key.to_owned(),
            reason: format!("ancestor {ancestor:?} is missing"),
        })?;
        if !seen.insert(record.id) {
            return Err(SnapshotError::Corrupt { key: key.to_owned(), reason: "parent chain has a cycle".to_owned() });
        }
        ids.push(record.id);
        next = record.parent;
    }
    Ok(ids)
}

fn allocate_id(txn: &WriteTransaction, op: &'static str, key: &str) -> Result<u64, SnapshotError> {
    let mut sequence = txn.open_table(SNAPSHOT_IDS).db(op, key)?;
    let id = sequence.get(NEXT_ID).db(op, key)?.map_or(1, |guard| guard.value());
    sequence.insert(NEXT_ID, id + 1).db(op, key)?;
    Ok(id)
}

/// Best-effort cleanup after a failed create; `new` deletes whatever stays.
fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete after failed snapshot create");
        }
    }
}

/// `du` of `root`: allocated blocks of every inode once, without following symlinks. Entries deleted while the
/// walk runs are skipped.
fn disk_usage(root: &Path) -> Result<Usage, SnapshotError> {
    let mut seen = HashSet::new();
    let mut size = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && path != root => continue,
            Err(e) => return Err(e).io("stat", &path),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).io("list", &path),
            };
            for entry in entries {
                pending.push(entry.io("list", &path)?.path());
            }
        }
    }
    Ok(Usage { size, inodes: seen.len() as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    use nix::mount::{umount2, MntFlags};
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    use tempfile::TempDir;

    /// A temp root with its database and snapshotter; the `TempDir` outlives everything mounted under it.
    struct Fixture {
        root: TempDir,
        db: Arc<redb::Database>,
        snapshotter: Snapshotter,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(redb::Database::create(root.path().join("meta.db")).expect("create db"));
        let snapshotter = Snapshotter::new(root.path(), db.clone()).expect("new snapshotter");
        Fixture { root, db, snapshotter }
    }

    fn no_labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn is_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("skipped: mounting needs root");
        false
    }

    /// Unmounts on drop, so a failed assertion never leaves a mount behind.
    struct MountGuard(PathBuf);

    impl MountGuard {
        fn mount(mounts: &[Mount], target: &Path) -> MountGuard {
            assert_eq!(mounts.len(), 1, "one mount expected: {mounts:?}");
            fs::create_dir_all(target).expect("create mount point");
            mounts[0].mount(target).expect("mount snapshot");
            MountGuard(target.to_owned())
        }
    }

    impl Drop for MountGuard {
        fn drop(&mut self) {
            if let Err(e) = umount2(&self.0, MntFlags::MNT_DETACH) {
                eprintln!("unmount {}: {e}", self.0.display());
            }
        }
    }

    fn write(path: &Path, contents: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create parent dir");
        }
        fs::write(path, contents).expect("write file");
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// An overlay whiteout: a 0/0 character device hides the lower entry of the same name.
    fn whiteout(path: &Path) {
        mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).expect("mknod whiteout");
    }

    /// An opaque directory hides everything below it in lower layers.
    fn make_opaque(dir: &Path) {
        let path = CString::new(dir.as_os_str().as_bytes()).expect("path without NUL");
        let name = c"trusted.overlay.opaque";
        let value = b"y";
        // SAFETY: both strings are NUL-terminated and live across the call; value points to value.len() bytes.
        let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        assert_eq!(rc, 0, "setxattr opaque on {}: {}", dir.display(), io::Error::last_os_error());
    }

    /// Commits a layer built by `fill` on top of `parent`, the way layer apply does.
    fn commit_layer(s: &Snapshotter, name: &str, parent: Option<&str>, fill: impl FnOnce(&Path)) {
        let key = format!("extract-1 {name}");
        s.prepare(&key, parent, no_labels()).expect("prepare layer");
        fill(&s.upper_dir(&key).expect("upper dir"));
        s.commit(name, &key, no_labels()).expect("commit layer");
    }

    /// sha256:a (base) ← sha256:b (whiteout, opaque dir) ← sha256:c (top).
    fn three_layers(s: &Snapshotter) {
        commit_layer(s, "sha256:a", None, |fs| {
            write(&fs.join("base.txt"), "base");
            write(&fs.join("gone.txt"), "deleted by b");
            write(&fs.join("dir/opaque/lower.txt"), "hidden by b");
            write(&fs.join("dir/kept.txt"), "kept");
        });
        commit_layer(s, "sha256:b", Some("sha256:a"), |fs| {
            write(&fs.join("mid.txt"), "mid");
            whiteout(&fs.join("gone.txt"));
            write(&fs.join("dir/opaque/upper.txt"), "from b");
            make_opaque(&fs.join("dir/opaque"));
        });
        commit_layer(s, "sha256:c", Some("sha256:b"), |fs| write(&fs.join("top.txt"), "top"));
    }

    fn id_of(s: &Snapshotter, key: &str) -> u64 {
        s.record(key).expect("record").id
    }

    /// Where snapshot `key` must live, computed from the fixture's root rather than by the snapshotter.
    fn dir_of(f: &Fixture, key: &str) -> PathBuf {
        let root = f.root.path().canonicalize().expect("canonical root");
        root.join("snapshots").join(id_of(&f.snapshotter, key).to_string())
    }

    fn fs_of(f: &Fixture, key: &str) -> String {
        dir_of(f, key).join("fs").display().to_string()
    }

    fn assert_erofs(path: &Path) {
        let err = fs::write(path, "x").expect_err("write to a read-only mount must fail");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "write {}: {err}", path.display());
    }

    #[test]
    fn active_overlay_shows_every_layer_honours_whiteouts_and_opaque_dirs_and_writes_to_its_upper() {
        if !is_root() {
            return;
        }
        let f = fixture();
        three_layers(&f.snapshotter);
        let mounts = f.snapshotter.prepare("container", Some("sha256:c"), no_labels()).expect("prepare");
        assert_eq!(mounts, f.snapshotter.mounts("container").expect("mounts"));
        assert_eq!(mounts[0].kind, "overlay");
        let lowers = ["sha256:c", "sha256:b", "sha256:a"].map(|key| fs_of(&f, key));
        let dir = dir_of(&f, "container");
        assert_eq!(
            mounts[0].options[..3],
            [
                format!("workdir={}", dir.join("work").display()),
                format!("upperdir={}", dir.join("fs").display()),
                format!("lowerdir={}", lowers.join(":")),
            ]
        );

        let target = f.root.path().join("rootfs");
        let _mounted = MountGuard::mount(&mounts, &target);
        assert_eq!(read(&target.join("base.txt")), "base");
        assert_eq!(read(&target.join("mid.txt")), "mid");
        assert_eq!(read(&target.join("top.txt")), "top");
        assert_eq!(read(&target.join("dir/kept.txt")), "kept");
        assert!(!target.join("gone.txt").exists(), "whiteout must hide gone.txt");
        assert!(!target.join("dir/opaque/lower.txt").exists(), "opaque dir must hide lower contents");
        assert_eq!(read(&target.join("dir/opaque/upper.txt")), "from b");

        write(&target.join("new.txt"), "written by the container");
        let upper = f.snapshotter.upper_dir("container").expect("upper dir");
        assert_eq!(read(&upper.join("new.txt")), "written by the container");
        assert!(lowers.iter().all(|lower| !Path::new(lower).join("new.txt").exists()));
    }

    #[test]
    fn view_of_one_parent_is_a_read_only_bind_of_the_parent() {
        if !is_root() {
            return;
        }
        let f = fixture();
        commit_layer(&f.snapshotter, "sha256:a", None, |fs| write(&fs.join("base.txt"), "base"));
        let mounts = f.snapshotter.view("view", Some("sha256:a"), no_labels()).expect("view");
        let parent_fs = fs_of(&f, "sha256:a");
        assert_eq!(
            mounts,
            [Mount { kind: "bind".into(), source: parent_fs, options: vec!["rbind".into(), "ro".into()] }]
        );

        let target = f.root.path().join("view");
        let _mounted = MountGuard::mount(&mounts, &target);
        assert_eq!(read(&target.join("base.txt")), "base");
        assert_erofs(&target.join("new.txt"));
    }

    #[test]
    fn view_of_two_parents_is_a_read_only_overlay() {
        if !is_root() {
            return;
        }
        let f = fixture();
        three_layers(&f.snapshotter);
        let mounts = f.snapshotter.view("view", Some("sha256:b"), no_labels()).expect("view");
        let lowers = ["sha256:b", "sha256:a"].map(|key| fs_of(&f, key));
        assert_eq!(mounts[0].kind, "overlay");
        assert_eq!(mounts[0].options[0], format!("lowerdir={}", lowers.join(":")));
        assert!(!mounts[0].options.iter().any(|o| o.starts_with("upperdir=") || o.starts_with("workdir=")));

        let target = f.root.path().join("view");
        let _mounted = MountGuard::mount(&mounts, &target);
        assert_eq!(read(&target.join("base.txt")), "base");
        assert_eq!(read(&target.join("mid.txt")), "mid");
        assert!(!target.join("gone.txt").exists());
        assert_erofs(&target.join("new.txt"));
    }

    #[test]
    fn snapshots_without_parent_bind_their_own_dir() {
        let f = fixture();
        let active = f.snapshotter.prepare("active", None, no_labels()).expect("prepare");
        let own = fs_of(&f, "active");
        assert_eq!(active, [Mount { kind: "bind".into(), source: own, options: vec!["rbind".into(), "rw".into()] }]);
        let view = f.snapshotter.view("view", None, no_labels()).expect("view");
        let own = fs_of(&f, "view");
        assert_eq!(view, [Mount { kind: "bind".into(), source: own, options: vec!["rbind".into(), "ro".into()] }]);
    }

    #[test]
    fn commit_keeps_the_directory_under_the_new_name_and_drops_the_key() {
        let f = fixture();
        let labels = BTreeMap::from([("containerd.io/gc.root".to_owned(), "2024-01-01".to_owned())]);
        f.snapshotter.prepare("extract sha256:a", None, no_labels()).expect("prepare");
        let upper = f.snapshotter.upper_dir("extract sha256:a").expect("upper");
        write(&upper.join("f"), "layer");
        f.snapshotter.commit("sha256:a", "extract sha256:a", labels.clone()).expect("commit");

        assert!(!f.snapshotter.exists("extract sha256:a").expect("exists"));
        let info = f.snapshotter.stat("sha256:a").expect("stat");
        assert_eq!((info.kind, info.parent, info.labels), (Kind::Committed, None, labels));
        let view = f.snapshotter.view("v", Some("sha256:a"), no_labels()).expect("view");
        assert_eq!(read(&Path::new(&view[0].source).join("f")), "layer");
    }

    #[test]
    fn errors_name_the_snapshot() {
        let f = fixture();
        let s = &f.snapshotter;
        let msg = |e: SnapshotError| e.to_string();

        let e = s.prepare("k", Some("sha256:missing"), no_labels()).expect_err("missing parent");
        assert!(matches!(e, SnapshotError::ParentNotFound { .. }), "{e}");
        assert!(msg(e).contains("\"sha256:missing\""));

        s.prepare("active", None, no_labels()).expect("prepare");
        let e = s.view("k", Some("active"), no_labels()).expect_err("active parent");
        assert!(matches!(e, SnapshotError::ParentNotCommitted { kind: Kind::Active, .. }), "{e}");
        assert!(msg(e).contains("\"active\""));

        let e = s.view("active", None, no_labels()).expect_err("duplicate key across kinds");
        assert!(matches!(e, SnapshotError::AlreadyExists { ref key } if key == "active"), "{e}");

        s.view("a view", None, no_labels()).expect("view");
        let e = s.commit("name", "a view", no_labels()).expect_err("commit of a view");
        assert!(matches!(e, SnapshotError::WrongKind { kind: Kind::View, .. }), "{e}");
        assert!(msg(e).contains("\"a view\""));
        let e = s.upper_dir("a view").expect_err("upper dir of a view");
        assert!(matches!(e, SnapshotError::WrongKind { .. }), "{e}");

        s.commit("base", "active", no_labels()).expect("commit");
        let e = s.commit("again", "base", no_labels()).expect_err("commit of a committed snapshot");
        assert!(matches!(e, SnapshotError::WrongKind { kind: Kind::Committed, .. }), "{e}");
        let e = s.mounts("base").expect_err("mounts of a committed snapshot");
        assert!(matches!(e, SnapshotError::WrongKind { .. }), "{e}");
        s.prepare("next", None, no_labels()).expect("prepare");
        let e = s.commit("base", "next", no_labels()).expect_err("commit onto a taken name");
        assert!(matches!(e, SnapshotError::AlreadyExists { ref key } if key == "base"), "{e}");

        s.prepare("child 1", Some("base"), no_labels()).expect("prepare child");
        s.view("child 2", Some("base"), no_labels()).expect("view child");
        let e = s.remove("base").expect_err("remove with children");
        assert!(msg(e).contains("[\"child 1\", \"child 2\"]"));

        for e in [
            s.stat("nope").map(drop),
            s.mounts("nope").map(drop),
            s.remove("nope"),
            s.commit("x", "nope", no_labels()),
            s.usage("nope").map(drop),
            s.upper_dir("nope").map(drop),
            s.update_labels("nope", no_labels()).map(drop),
        ] {
            let e = e.expect_err("unknown key");
            assert!(matches!(e, SnapshotError::NotFound { .. }), "{e}");
            assert!(msg(e).contains("\"nope\""));
        }
        let e = s.prepare("", None, no_labels()).expect_err("empty key");
        assert!(matches!(e, SnapshotError::InvalidKey { .. }), "{e}");
    }

    #[test]
    fn keys_are_never_paths() {
        let f = fixture();
        let key = "../../escape/sha256:0123";
        f.snapshotter.prepare(key, None, no_labels()).expect("prepare");
        let upper = f.snapshotter.upper_dir(key).expect("upper");
        assert_eq!(upper, dir_of(&f, key).join("fs"));
        assert!(!f.root.path().join("escape").exists());
    }

    #[test]
    fn remove_deletes_record_and_directory_children_first() {
        let f = fixture();
        let s = &f.snapshotter;
        commit_layer(s, "base", None, |fs| write(&fs.join("f"), "x"));
        s.prepare("top", Some("base"), no_labels()).expect("prepare");
        s.remove("top").expect("remove child");
        s.remove("base").expect("remove parent");
        assert!(s.list().expect("list").is_empty());
        let left: Vec<_> = fs::read_dir(f.root.path().join("snapshots")).expect("read dir").collect();
        assert!(left.is_empty(), "directories left: {left:?}");
    }

    #[test]
    fn labels_are_replaced_and_kept() {
        let f = fixture();
        let s = &f.snapshotter;
        let first = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        s.prepare("k", None, first.clone()).expect("prepare");
        assert_eq!(s.stat("k").expect("stat").labels, first);
        let second = BTreeMap::from([("containerd.io/gc.ref.snapshot.overlayfs".to_owned(), "parent".to_owned())]);
        let info = s.update_labels("k", second.clone()).expect("update");
        assert_eq!(info.labels, second);
        assert!(info.updated >= info.created);
        assert_eq!(s.stat("k").expect("stat"), info);
    }

    #[test]
    fn reopening_lists_the_same_snapshots() {
        let f = fixture();
        three_layers(&f.snapshotter);
        f.snapshotter.prepare("container", Some("sha256:c"), no_labels()).expect("prepare");
        f.snapshotter.view("view", Some("sha256:a"), no_labels()).expect("view");
        let before = f.snapshotter.list().expect("list");
        assert_eq!(before.len(), 5);
        let Fixture { root, db, snapshotter } = f;
        drop(snapshotter);
        let reopened = Snapshotter::new(root.path(), db).expect("reopen");
        assert_eq!(reopened.list().expect("list"), before);
        assert_eq!(reopened.stat("sha256:b").expect("stat").parent.as_deref(), Some("sha256:a"));
        assert!(reopened.upper_dir("container").expect("upper").is_dir());
    }

    #[test]
    fn new_deletes_leftovers_of_interrupted_creates_and_removes() {
        let f = fixture();
        f.snapshotter.prepare("kept", None, no_labels()).expect("prepare");
        let kept = f.snapshotter.upper_dir("kept").expect("upper");
        let snapshots = f.root.path().join("snapshots");
        // A kill between rename and commit, one before the rename, and one during a removal.
        for stray in ["999/fs", "new-7/fs", "new-8/work", "trash-3/fs/x"] {
            fs::create_dir_all(snapshots.join(stray)).expect("create stray");
        }
        let Fixture { root, db, snapshotter } = f;
        drop(snapshotter);
        let reopened = Snapshotter::new(root.path(), db).expect("reopen");
        let mut left: Vec<String> = fs::read_dir(&snapshots)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [id_of(&reopened, "kept").to_string()]);
        assert!(kept.is_dir());
    }

    #[test]
    fn gc_sees_keys_with_parents_and_removes_through_the_snapshotter() {
        use crate::store::gc::SnapshotGc;
        let f = fixture();
        commit_layer(&f.snapshotter, "base", None, |_| {});
        f.snapshotter.view("view", Some("base"), no_labels()).expect("view");
        let gc: &dyn SnapshotGc = &f.snapshotter;
        let listed: Vec<_> =
            gc.snapshots().expect("snapshots").into_iter().map(|s| (s.key, s.parent, s.committed)).collect();
        assert_eq!(listed, [("base".to_owned(), None, true), ("view".to_owned(), Some("base".to_owned()), false)]);
        let refused = gc.remove("base").expect_err("base has a child");
        assert!(refused.to_string().contains("\"view\""), "{refused}");
        gc.remove("view").expect("remove view");
        gc.remove("base").expect("remove base");
        assert!(gc.snapshots().expect("snapshots").is_empty());
    }

    #[test]
    fn usage_counts_allocated_bytes_once_per_inode_without_following_symlinks() {
        let f = fixture();
        let s = &f.snapshotter;
        s.prepare("k", None, no_labels()).expect("prepare");
        let empty = s.usage("k").expect("usage");
        assert_eq!(empty.inodes, 1);

        let upper = s.upper_dir("k").expect("upper");
        fs::write(upper.join("data"), vec![7u8; 64 * 1024]).expect("write");
        let with_file = s.usage("k").expect("usage");
        assert!(with_file.size >= empty.size + 64 * 1024, "{with_file:?}");
        assert_eq!(with_file.inodes, 2);

        fs::hard_link(upper.join("data"), upper.join("link")).expect("hard link");
        assert_eq!(s.usage("k").expect("usage"), with_file);

        std::os::unix::fs::symlink("/usr/bin", upper.join("symlink")).expect("symlink");
        let with_symlink = s.usage("k").expect("usage");
        assert_eq!(with_symlink.inodes, 3);
        assert!(with_symlink.size < with_file.size + 64 * 1024, "{with_symlink:?}");
    }
}
