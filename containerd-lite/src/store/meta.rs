//! Metadata in one redb file (`<root>/metadata.redb`): images, content labels and leases. Every
//! mutation is one write transaction, so a crash at any point leaves the state before or after it.
//! Values are JSON keyed by strings; other stores (the snapshotter) open their own tables in the
//! same database through [`Metadata::db`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use redb::{Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::digest::Digest;

/// Image name → [`Image`].
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Content digest → its labels (`BTreeMap<String, String>`).
const CONTENT_LABELS: TableDefinition<&str, &[u8]> = TableDefinition::new("content_labels");
/// Lease id → [`Lease`].
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

/// Errors of the metadata store; each names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata: {op}: {source}")]
    Db {
        op: String,
        #[source]
        source: redb::Error,
    },
    #[error("metadata: {table}/{key}: undecodable record: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata: encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    #[error("lease {0:?} already exists")]
    LeaseExists(String),
    #[error("lease {0:?} not found")]
    LeaseNotFound(String),
}

impl MetaError {
    /// Names the operation a database error happened in (set once, by [`Metadata::read`] or
    /// [`Metadata::write`]).
    fn during(self, op: impl FnOnce() -> String) -> MetaError {
        match self {
            MetaError::Db { op: o, source } if o.is_empty() => MetaError::Db { op: op(), source },
            other => other,
        }
    }
}

macro_rules! from_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self {
                MetaError::Db { op: String::new(), source: e.into() }
            }
        }
    )*};
}
from_redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What an image name points at: the descriptor of its index or manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A named image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub target: Target,
    /// Set by [`Metadata::put_image`] when the name is first stored; kept on updates.
    #[serde(with = "unix_nanos")]
    pub created: SystemTime,
    /// Set by [`Metadata::put_image`] on every store.
    #[serde(with = "unix_nanos")]
    pub updated: SystemTime,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Image {
    /// An image record for `name` → `target`, without labels; the times are set when it is put.
    pub fn new(name: impl Into<String>, target: Target) -> Image {
        let now = SystemTime::now();
        Image { name: name.into(), target, created: now, updated: now, labels: BTreeMap::new() }
    }
}

/// Something a lease keeps from garbage collection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Content(Digest),
    /// A snapshot key.
    Snapshot(String),
}

/// A lease: a gc root for what an operation in progress (a pull, an unpack) has written but not yet
/// referenced from an image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    #[serde(with = "unix_nanos")]
    pub created: SystemTime,
    /// After this the lease protects nothing; `None` never expires.
    #[serde(default, with = "unix_nanos::option")]
    pub expires: Option<SystemTime>,
    #[serde(default)]
    pub resources: BTreeSet<Resource>,
}

impl Lease {
    /// Whether the lease no longer protects its resources at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
}

/// redb's page cache. Its default (1 GiB) let the cache grow with every record written, so
/// berthd's memory grew by ≈50 kB per container (records hold the OCI spec); pages it drops are
/// read again from the kernel's page cache.
const CACHE_BYTES: usize = 2 << 20;

/// The metadata store. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct Metadata {
    db: Arc<redb::Database>,
}

impl Metadata {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| MetaError::from(e).during(|| format!("open {}", path.display())))?;
        Metadata::from_db(Arc::new(db))
    }

    /// Uses an open database, creating this module's tables if they do not exist.
    pub fn from_db(db: Arc<redb::Database>) -> Result<Self, MetaError> {
        let meta = Metadata { db };
        meta.write(
            || "create tables".to_string(),
            |txn| {
                for table in [IMAGES, CONTENT_LABELS, LEASES] {
                    txn.open_table(table)?;
                }
                Ok(())
            },
        )?;
        Ok(meta)
    }

    /// The database, for stores that keep their own tables in it.
    pub fn db(&self) -> Arc<redb::Database> {
        Arc::clone(&self.db)
    }

    fn read<T>(
        &self,
        op: impl FnOnce() -> String,
        f: impl FnOnce(&ReadTransaction) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let run = || -> Result<T, MetaError> {
            let txn = self.db.begin_read()?;
            f(&txn)
        };
        run().map_err(|e| e.during(op))
    }

    /// Runs `f` in one write transaction, committed only if `f` succeeds.
    fn write<T>(
        &self,
        op: impl FnOnce() -> String,
        f: impl FnOnce(&WriteTransaction) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.write_with(Durability::Immediate, op, f)
    }

    /// A write of `durability`: `None` for records a restart discards anyway (transfer leases,
    /// deleted at start), which then cost no fsync; a later durable write persists them too.
    fn write_with<T>(
        &self,
        durability: Durability,
        op: impl FnOnce() -> String,
        f: impl FnOnce(&WriteTransaction) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let run = || -> Result<T, MetaError> {
            let mut txn = self.db.begin_write()?;
            if matches!(durability, Durability::None) {
                txn.set_durability(durability).map_err(redb::Error::from)?;
            }
            let value = f(&txn)?;
            txn.commit()?;
            Ok(value)
        };
        run().map_err(|e| e.during(op))
    }

    // --- images -------------------------------------------------------------------------------

    /// The image called `name`.
    pub fn image(&self, name: &str) -> Result<Option<Image>, MetaError> {
        self.read(|| format!("get image {name:?}"), |txn| get(&txn.open_table(IMAGES)?, "images", name))
    }

    /// Every image, by name.
    pub fn images(&self) -> Result<Vec<Image>, MetaError> {
        self.read(
            || "list images".to_string(),
            |txn| Ok(all(&txn.open_table(IMAGES)?, "images")?.into_values().collect()),
        )
    }

    /// Creates or updates `image.name`: keeps the stored `created`, sets `updated` to now.
    /// Returns the image as stored.
    pub fn put_image(&self, image: Image) -> Result<Image, MetaError> {
        let mut stored = self.put_images(vec![image])?;
        stored.pop().map(|(_, image)| image).ok_or_else(|| MetaError::InvalidName(String::new()))
    }

    /// [`Metadata::put_image`] for several images in one transaction: all are stored or none.
    /// Returns each as stored, with whether its name existed before.
    pub fn put_images(&self, images: Vec<Image>) -> Result<Vec<(bool, Image)>, MetaError> {
        if let Some(bad) = images.iter().find(|i| i.name.is_empty()) {
            return Err(MetaError::InvalidName(bad.name.clone()));
        }
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        let what = format!("put images {names:?}");
        self.write(
            || what.clone(),
            |txn| {
                let mut table = txn.open_table(IMAGES)?;
                let now = SystemTime::now();
                let mut stored = Vec::with_capacity(images.len());
                for mut image in images {
                    let existing = get::<Image>(&table, "images", &image.name)?;
                    image.created = existing.as_ref().map_or(now, |e| e.created);
                    image.updated = now;
                    table.insert(image.name.as_str(), encode(&image, || image.name.clone())?.as_slice())?;
                    stored.push((existing.is_some(), image));
                }
                Ok(stored)
            },
        )
    }

    /// Removes the image called `name`; whether it existed.
    pub fn delete_image(&self, name: &str) -> Result<bool, MetaError> {
        self.write(|| format!("delete image {name:?}"), |txn| Ok(txn.open_table(IMAGES)?.remove(name)?.is_some()))
    }

    // --- content labels -----------------------------------------------------------------------

    /// Replaces the labels of content `digest`; an empty map removes them.
    pub fn set_content_labels(&self, digest: &Digest, labels: &BTreeMap<String, String>) -> Result<(), MetaError> {
        let key = digest.to_string();
        self.write(
            || format!("set labels of {key}"),
            |txn| {
                let mut table = txn.open_table(CONTENT_LABELS)?;
                if labels.is_empty() {
                    table.remove(key.as_str())?;
                } else {
                    table.insert(key.as_str(), encode(labels, || key.clone())?.as_slice())?;
                }
                Ok(())
            },
        )
    }

    /// Sets (`Some`) or removes (`None`) one label of content `digest`, leaving the others.
    pub fn set_content_label(&self, digest: &Digest, label: &str, value: Option<&str>) -> Result<(), MetaError> {
        let key = digest.to_string();
        self.write(
            || format!("set label {label:?} of {key}"),
            |txn| {
                let mut table = txn.open_table(CONTENT_LABELS)?;
                let mut labels: BTreeMap<String, String> = get(&table, "content_labels", &key)?.unwrap_or_default();
                match value {
                    Some(value) => labels.insert(label.to_string(), value.to_string()),
                    None => labels.remove(label),
                };
                if labels.is_empty() {
                    table.remove(key.as_str())?;
                } else {
                    table.insert(key.as_str(), encode(&labels, || key.clone())?.as_slice())?;
                }
                Ok(())
            },
        )
    }

    /// The labels of content `digest` (empty if none).
    pub fn content_labels(&self, digest: &Digest) -> Result<BTreeMap<String, String>, MetaError> {
        let key = digest.to_string();
        self.read(
            || format!("get labels of {key}"),
            |txn| Ok(get(&txn.open_table(CONTENT_LABELS)?, "content_labels", &key)?.unwrap_or_default()),
        )
    }

    /// The labels of all labelled content. Records whose key is not a digest are skipped.
    pub fn all_content_labels(&self) -> Result<BTreeMap<Digest, BTreeMap<String, String>>, MetaError> {
        let by_key: BTreeMap<String, BTreeMap<String, String>> = self.read(
            || "list content labels".to_string(),
            |txn| all(&txn.open_table(CONTENT_LABELS)?, "content_labels"),
        )?;
        Ok(by_key
            .into_iter()
            .filter_map(|(key, labels)| match key.parse::<Digest>() {
                Ok(digest) => Some((digest, labels)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "skipping content labels of a non-digest key");
                    None
                }
            })
            .collect())
    }

    /// Removes the labels of every digest in `digests`, in one transaction (gc's sweep).
    pub fn remove_content_labels(&self, digests: &[Digest]) -> Result<(), MetaError> {
        self.write(
            || format!("remove labels of {} blobs", digests.len()),
            |txn| {
                let mut table = txn.open_table(CONTENT_LABELS)?;
                for digest in digests {
                    table.remove(digest.to_string().as_str())?;
                }
                Ok(())
            },
        )
    }

    // --- leases -------------------------------------------------------------------------------

    /// Creates lease `id`, expiring at `expires` (never if `None`).
    pub fn create_lease(&self, id: &str, expires: Option<SystemTime>) -> Result<Lease, MetaError> {
        self.write_with(
            lease_durability(id),
            || format!("create lease {id:?}"),
            |txn| {
                let mut table = txn.open_table(LEASES)?;
                if table.get(id)?.is_some() {
                    return Err(MetaError::LeaseExists(id.to_string()));
                }
                let lease =
                    Lease { id: id.to_string(), created: SystemTime::now(), expires, resources: BTreeSet::new() };
                table.insert(id, encode(&lease, || id.to_string())?.as_slice())?;
                Ok(lease)
            },
        )
    }

    /// Adds `resource` to lease `id`.
    pub fn add_lease_resource(&self, id: &str, resource: Resource) -> Result<(), MetaError> {
        self.update_lease(id, |lease| {
            lease.resources.insert(resource);
        })
    }

    /// Removes `resource` from lease `id`.
    pub fn remove_lease_resource(&self, id: &str, resource: &Resource) -> Result<(), MetaError> {
        self.update_lease(id, |lease| {
            lease.resources.remove(resource);
        })
    }

    fn update_lease(&self, id: &str, change: impl FnOnce(&mut Lease)) -> Result<(), MetaError> {
        self.write_with(
            lease_durability(id),
            || format!("update lease {id:?}"),
            |txn| {
                let mut table = txn.open_table(LEASES)?;
                let mut lease: Lease =
                    get(&table, "leases", id)?.ok_or_else(|| MetaError::LeaseNotFound(id.to_string()))?;
                change(&mut lease);
                table.insert(id, encode(&lease, || id.to_string())?.as_slice())?;
                Ok(())
            },
        )
    }

    /// Deletes lease `id`; whether it existed. What it protected is collectable by the next gc.
    pub fn delete_lease(&self, id: &str) -> Result<bool, MetaError> {
        self.write_with(
            lease_durability(id),
            || format!("delete lease {id:?}"),
            |txn| Ok(txn.open_table(LEASES)?.remove(id)?.is_some()),
        )
    }

    /// Lease `id`.
    pub fn lease(&self, id: &str) -> Result<Option<Lease>, MetaError> {
        self.read(|| format!("get lease {id:?}"), |txn| get(&txn.open_table(LEASES)?, "leases", id))
    }

    /// Every lease, expired ones included, by id.
    pub fn leases(&self) -> Result<Vec<Lease>, MetaError> {
        self.read(
            || "list leases".to_string(),
            |txn| Ok(all(&txn.open_table(LEASES)?, "leases")?.into_values().collect()),
        )
    }
}

/// Transfer leases do not outlive the daemon (it deletes them at start): their writes need not
/// reach the disk. Every other lease is written durably.
fn lease_durability(id: &str) -> Durability {
    if id.starts_with(crate::store::lease::TRANSFER_LEASE_PREFIX) {
        Durability::None
    } else {
        Durability::Immediate
    }
}

/// Reads and decodes one record.
fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, MetaError> {
    let Some(value) = table.get(key)? else {
        return Ok(None);
    };
    decode(name, key, value.value()).map(Some)
}

/// Reads and decodes every record of a table.
fn all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
) -> Result<BTreeMap<String, T>, MetaError> {
    let mut records = BTreeMap::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let key = key.value().to_string();
        let record = decode(name, &key, value.value())?;
        records.insert(key, record);
    }
    Ok(records)
}

fn decode<T: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(bytes).map_err(|source| MetaError::Corrupt { table, key: key.to_string(), source })
}

fn encode<T: Serialize>(value: &T, what: impl FnOnce() -> String) -> Result<Vec<u8>, MetaError> {
    serde_json::to_vec(value).map_err(|source| MetaError::Encode { what: what(), source })
}

/// Times as integer nanoseconds since the Unix epoch (before it: 0).
mod unix_nanos {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    fn to_nanos(t: &SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(to_nanos(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_nanos(u64::deserialize(d)?))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&to_nanos(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
            Ok(Option::<u64>::deserialize(d)?.map(|n| UNIX_EPOCH + Duration::from_nanos(n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn target(data: &[u8]) -> Target {
        Target {
            media_type: "application/vnd.oci.image.index.v1+json".to_string(),
            digest: Digest::sha256(data),
            size: data.len() as u64,
        }
    }

    #[test]
    fn images_put_get_list_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        assert!(meta.image("busybox:latest").unwrap().is_none());

        let mut image = Image::new("busybox:latest", target(b"one"));
        image.labels.insert("k".into(), "v".into());
        let stored = meta.put_image(image).unwrap();
        meta.put_image(Image::new("alpine:3", target(b"two"))).unwrap();

        assert_eq!(meta.image("busybox:latest").unwrap().unwrap(), stored);
        let names: Vec<_> = meta.images().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["alpine:3", "busybox:latest"]);

        assert!(meta.delete_image("alpine:3").unwrap());
        assert!(!meta.delete_image("alpine:3").unwrap());
        assert_eq!(meta.images().unwrap().len(), 1);
        assert!(matches!(meta.put_image(Image::new("", target(b"x"))), Err(MetaError::InvalidName(_))));
    }

    #[test]
    fn updating_an_image_keeps_created_and_moves_updated() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        let first = meta.put_image(Image::new("img", target(b"v1"))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let mut update = Image::new("img", target(b"v2"));
        update.created = SystemTime::UNIX_EPOCH;
        let second = meta.put_image(update).unwrap();
        assert_eq!(second.created, first.created);
        assert!(second.updated > first.updated);
        assert_eq!(meta.image("img").unwrap().unwrap().target, target(b"v2"));
    }

    #[test]
    fn content_labels_set_merge_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        let d = Digest::sha256(b"blob");
        assert!(meta.content_labels(&d).unwrap().is_empty());

        let labels = BTreeMap::from([("containerd.io/gc.root".to_string(), "x".to_string())]);
        meta.set_content_labels(&d, &labels).unwrap();
        meta.set_content_label(&d, "a", Some("b")).unwrap();
        assert_eq!(meta.content_labels(&d).unwrap().len(), 2);
        assert_eq!(meta.all_content_labels().unwrap()[&d]["a"], "b");

        meta.set_content_label(&d, "a", None).unwrap();
        assert_eq!(meta.content_labels(&d).unwrap(), labels);
        meta.remove_content_labels(std::slice::from_ref(&d)).unwrap();
        assert!(meta.all_content_labels().unwrap().is_empty());
    }

    #[test]
    fn leases_hold_resources_and_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        let now = SystemTime::now();
        meta.create_lease("pull-1", None).unwrap();
        meta.create_lease("old", Some(now - Duration::from_secs(1))).unwrap();
        assert!(matches!(meta.create_lease("pull-1", None), Err(MetaError::LeaseExists(_))));
        let d = Digest::sha256(b"layer");
        meta.add_lease_resource("pull-1", Resource::Content(d.clone())).unwrap();
        meta.add_lease_resource("pull-1", Resource::Snapshot("snap".into())).unwrap();
        assert!(matches!(
            meta.add_lease_resource("missing", Resource::Content(d.clone())),
            Err(MetaError::LeaseNotFound(_))
        ));

        let leases = meta.leases().unwrap();
        assert_eq!(leases.len(), 2);
        let lease = meta.lease("pull-1").unwrap().unwrap();
        assert_eq!(lease.resources.len(), 2);
        assert!(!lease.is_expired(now));
        assert!(meta.lease("old").unwrap().unwrap().is_expired(now));

        meta.remove_lease_resource("pull-1", &Resource::Content(d)).unwrap();
        assert_eq!(meta.lease("pull-1").unwrap().unwrap().resources.len(), 1);
        assert!(meta.delete_lease("pull-1").unwrap());
        assert!(!meta.delete_lease("pull-1").unwrap());
    }

    #[test]
    fn reopened_database_keeps_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metadata.redb");
        let d = Digest::sha256(b"blob");
        let expires = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let image = {
            let meta = Metadata::open(&path).unwrap();
            meta.set_content_label(&d, "l", Some("v")).unwrap();
            meta.create_lease("lease", Some(expires)).unwrap();
            meta.add_lease_resource("lease", Resource::Content(d.clone())).unwrap();
            meta.put_image(Image::new("img", target(b"t"))).unwrap()
        };
        let meta = Metadata::open(&path).unwrap();
        assert_eq!(meta.image("img").unwrap().unwrap(), image);
        assert_eq!(meta.content_labels(&d).unwrap()["l"], "v");
        let lease = meta.lease("lease").unwrap().unwrap();
        assert_eq!(lease.expires, Some(expires));
        assert!(lease.resources.contains(&Resource::Content(d)));
    }

    #[test]
    fn other_stores_share_the_database() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        let again = Metadata::from_db(meta.db()).unwrap();
        again.put_image(Image::new("img", target(b"t"))).unwrap();
        assert!(meta.image("img").unwrap().is_some());
    }

    #[test]
    fn put_images_stores_all_or_none() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&tmp.path().join("metadata.redb")).unwrap();
        meta.put_image(Image::new("a", target(b"a"))).unwrap();
        let err = meta.put_images(vec![Image::new("b", target(b"b")), Image::new("", target(b"c"))]);
        assert!(err.is_err());
        assert!(meta.image("b").unwrap().is_none(), "a failed batch stored part of itself");
        let stored = meta.put_images(vec![Image::new("a", target(b"a2")), Image::new("b", target(b"b"))]).unwrap();
        let existed: Vec<bool> = stored.iter().map(|(e, _)| *e).collect();
        assert_eq!(existed, [true, false]);
        assert_eq!(meta.images().unwrap().len(), 2);
    }
}
