//! The content store: blobs addressed by digest under `blobs/<alg>/<hex>`, written through ingests
//! under `ingest/<sha256 of ref>/` and moved into `blobs/` by rename only after size and digest
//! verify, so a blob is never visible half-written or unverified (containerd's local store layout).
//!
//! The API is synchronous; the daemon calls it through `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::store::digest::{Algorithm, Digest, Hasher};

/// Algorithms whose blobs live under `blobs/`.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Files of one ingest dir: the data and what the writer declared about it.
const INGEST_DATA: &str = "data";
const INGEST_REF: &str = "ref";
const INGEST_TOTAL: &str = "total";
const INGEST_EXPECTED: &str = "expected";
const INGEST_STARTED: &str = "startedat";

/// How often `writer` retries when the ingest dir it locked was removed under it by a committing or
/// aborting writer.
const LOCK_ATTEMPTS: usize = 8;

/// Errors of the content store; each names the blob or ingest it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("content {0} not found")]
    NotFound(Digest),
    #[error("ingest {0:?} not found")]
    IngestNotFound(String),
    #[error("ingest {0:?} is locked by another writer")]
    Locked(String),
    #[error("ingest {reference:?}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { reference: String, expected: u64, actual: u64 },
    #[error("ingest {reference:?}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { reference: String, expected: Digest, actual: Digest },
    #[error("content {digest} is {size} bytes, more than the {max} allowed")]
    TooLarge { digest: Digest, size: u64, max: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Attaches what was being done to an I/O error.
trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ContentError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ContentError> {
        self.map_err(|source| ContentError::Io { context: what(), source })
    }
}

/// A committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
    /// When the blob was committed (its mtime).
    pub created: SystemTime,
}

/// An ingest in progress (or abandoned): what a writer declared and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    pub reference: String,
    /// Bytes written so far.
    pub offset: u64,
    pub total: Option<u64>,
    pub expected: Option<Digest>,
    pub started: SystemTime,
}

/// A content store rooted at a directory (the daemon passes `<root>/content`). Cheap to clone;
/// every clone works on the same directory, and ingests are coordinated by flock, so several
/// processes may share it.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: Arc<PathBuf>,
}

impl ContentStore {
    /// Opens the store at `root`, creating `blobs/` and `ingest/` if needed.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let store = ContentStore { root: Arc::new(root.to_path_buf()) };
        for alg in ALGORITHMS {
            let dir = store.blobs_dir(alg);
            fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
        }
        let ingest = store.ingest_root();
        fs::create_dir_all(&ingest).context(|| format!("create {}", ingest.display()))?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self, alg: Algorithm) -> PathBuf {
        self.root.join("blobs").join(alg.as_str())
    }

    /// Where the blob of `d` lives once committed; the digest is validated, so this is always
    /// inside `blobs/`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir(d.algorithm()).join(d.hex())
    }

    fn ingest_root(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// The ingest dir of `reference`: named by the ref's sha256, so any string is a safe ref.
    fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.ingest_root().join(Digest::sha256(reference.as_bytes()).hex())
    }

    /// The committed blob `d`, or `None` if the store does not hold it.
    pub fn info(&self, d: &Digest) -> Result<Option<Info>, ContentError> {
        let path = self.blob_path(d);
        match fs::metadata(&path) {
            Ok(meta) => {
                Ok(Some(Info { digest: d.clone(), size: meta.len(), created: meta.modified().unwrap_or(UNIX_EPOCH) }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context(|| format!("stat {}", path.display())),
        }
    }

    /// Opens the committed blob `d` for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(d);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(d.clone())),
            Err(e) => Err(e).context(|| format!("open {}", path.display())),
        }
    }

    /// Reads the whole blob `d` into memory, refusing blobs larger than `max` bytes (manifests and
    /// configs are read this way). The content was verified on commit and is not re-hashed.
    pub fn read_all(&self, d: &Digest, max: u64) -> Result<Vec<u8>, ContentError> {
        let file = self.open_blob(d)?;
        let size = file.metadata().context(|| format!("stat blob {d}"))?.len();
        if size > max {
            return Err(ContentError::TooLarge { digest: d.clone(), size, max });
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // `take` bounds the read even if the file were to grow after the stat.
        file.take(max.saturating_add(1)).read_to_end(&mut buf).context(|| format!("read blob {d}"))?;
        let read = buf.len() as u64;
        if read > max {
            return Err(ContentError::TooLarge { digest: d.clone(), size: read, max });
        }
        Ok(buf)
    }

    /// Opens (or resumes) the ingest for `reference`. A second concurrent writer of the same ref
    /// gets [`ContentError::Locked`] (flock on the ingest dir). On resume the existing data is
    /// re-hashed and [`Writer::offset`] tells where to continue. If the existing ingest declared a
    /// different `total` or `expected` than this call, it belonged to other content: it restarts
    /// from zero.
    ///
    /// The data is hashed with the expected digest's algorithm, sha256 when none is given.
    pub fn writer(
        &self,
        reference: &str,
        total: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Writer, ContentError> {
        let dir = self.ingest_dir(reference);
        let lock = self.lock_ingest(reference, &dir, true)?;

        let data_path = dir.join(INGEST_DATA);
        let mut data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .context(|| format!("open {}", data_path.display()))?;
        let same_content = |p: &IngestStatus| {
            p.reference == reference
                && (total.is_none() || p.total.is_none() || p.total == total)
                && (expected.is_none() || p.expected.is_none() || p.expected.as_ref() == expected)
                // More data than the blob can have: nothing of it is trustworthy.
                && total.or(p.total).is_none_or(|t| p.offset <= t)
        };
        let (started, total, expected) = match read_ingest_status(&dir)?.filter(same_content) {
            // Resuming: what this call declares completes what the ingest recorded.
            Some(p) => (p.started, total.or(p.total), expected.cloned().or(p.expected)),
            None => {
                data.set_len(0).context(|| format!("truncate {}", data_path.display()))?;
                (SystemTime::now(), total, expected.cloned())
            }
        };
        write_ingest_meta(&dir, reference, total, expected.as_ref(), started)?;

        let algorithm = expected.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
        let (hasher, offset) =
            hash_prefix(&mut data, algorithm, None).context(|| format!("rehash {}", data_path.display()))?;
        Ok(Writer {
            store: self.clone(),
            reference: reference.to_string(),
            dir,
            data,
            hasher,
            offset,
            total,
            expected,
            _lock: lock,
        })
    }

    /// Locks the ingest dir of `reference`, creating it if `create`. Retries when the dir it locked
    /// was removed meanwhile by the writer that held it (commit and abort remove it under lock).
    fn lock_ingest(&self, reference: &str, dir: &Path, create: bool) -> Result<Flock<File>, ContentError> {
        for _ in 0..LOCK_ATTEMPTS {
            if create {
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e).context(|| format!("create {}", dir.display())),
                }
            }
            let handle = match File::open(dir) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Err(ContentError::IngestNotFound(reference.to_string()));
                }
                Err(e) => return Err(e).context(|| format!("open {}", dir.display())),
            };
            let lock = match Flock::lock(handle, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => return Err(ContentError::Locked(reference.to_string())),
                Err((_, errno)) => return Err(io::Error::from(errno)).context(|| format!("flock {}", dir.display())),
            };
            let held = lock.metadata().context(|| format!("stat {}", dir.display()))?;
            match fs::metadata(dir) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(lock),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Err(ContentError::IngestNotFound(reference.to_string()));
                }
                Err(e) => return Err(e).context(|| format!("stat {}", dir.display())),
            }
        }
        Err(ContentError::Locked(reference.to_string()))
    }

    /// Writes and commits `data` as one blob (manifests, configs). Succeeds at once if the blob is
    /// already present.
    pub fn write_blob(&self, reference: &str, expected: &Digest, data: &[u8]) -> Result<(), ContentError> {
        if self.info(expected)?.is_some() {
            return Ok(());
        }
        let size = data.len() as u64;
        let mut writer = self.writer(reference, Some(size), Some(expected))?;
        // The whole blob is at hand: whatever an earlier attempt left is not worth re-checking.
        writer.truncate(0)?;
        writer.write_all(data).context(|| format!("write ingest {reference:?}"))?;
        writer.commit(Some(size), Some(expected))?;
        Ok(())
    }

    /// Every committed blob. Files under `blobs/` whose names are not digests are skipped.
    pub fn list(&self) -> Result<Vec<Info>, ContentError> {
        let mut blobs = Vec::new();
        for alg in ALGORITHMS {
            let dir = self.blobs_dir(alg);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).context(|| format!("read {}", dir.display())),
            };
            for entry in entries {
                let entry = entry.context(|| format!("read {}", dir.display()))?;
                let name = entry.file_name();
                let Some(digest) =
                    name.to_str().and_then(|hex| format!("{}:{hex}", alg.as_str()).parse::<Digest>().ok())
                else {
                    tracing::warn!(path = %entry.path().display(), "skipping non-digest file in content store");
                    continue;
                };
                // A blob deleted since read_dir is simply no longer listed.
                if let Some(info) = self.info(&digest)? {
                    blobs.push(info);
                }
            }
        }
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(blobs)
    }

    /// Deletes the committed blob `d`.
    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(d);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(d.clone())),
            Err(e) => Err(e).context(|| format!("remove {}", path.display())),
        }
    }

    /// Every ingest in progress or abandoned. Dirs still being created (no `ref` yet) are skipped.
    pub fn ingests(&self) -> Result<Vec<IngestStatus>, ContentError> {
        let root = self.ingest_root();
        let mut ingests = Vec::new();
        let entries = fs::read_dir(&root).context(|| format!("read {}", root.display()))?;
        for entry in entries {
            let entry = entry.context(|| format!("read {}", root.display()))?;
            if let Some(status) = read_ingest_status(&entry.path())? {
                ingests.push(status);
            }
        }
        ingests.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(ingests)
    }

    /// The ingest of `reference`, if one exists.
    pub fn ingest(&self, reference: &str) -> Result<Option<IngestStatus>, ContentError> {
        read_ingest_status(&self.ingest_dir(reference))
    }

    /// Removes the ingest of `reference`; [`ContentError::Locked`] while a writer holds it.
    pub fn abort(&self, reference: &str) -> Result<(), ContentError> {
        let dir = self.ingest_dir(reference);
        let _lock = self.lock_ingest(reference, &dir, false)?;
        remove_ingest_dir(&dir)
    }

    /// Bytes held by committed blobs.
    pub fn usage(&self) -> Result<u64, ContentError> {
        Ok(self.list()?.iter().map(|info| info.size).sum())
    }
}

/// Reads what an ingest dir records; `None` if the dir or its `ref` file does not exist.
fn read_ingest_status(dir: &Path) -> Result<Option<IngestStatus>, ContentError> {
    let Some(reference) = read_optional(&dir.join(INGEST_REF))? else {
        return Ok(None);
    };
    let total = read_optional(&dir.join(INGEST_TOTAL))?.and_then(|t| t.trim().parse().ok());
    let expected = read_optional(&dir.join(INGEST_EXPECTED))?.and_then(|e| e.trim().parse().ok());
    let started = read_optional(&dir.join(INGEST_STARTED))?
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(UNIX_EPOCH, |nanos| UNIX_EPOCH + Duration::from_nanos(nanos));
    let data = dir.join(INGEST_DATA);
    let offset = match fs::metadata(&data) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).context(|| format!("stat {}", data.display())),
    };
    Ok(Some(IngestStatus { reference, offset, total, expected, started }))
}

fn read_optional(path: &Path) -> Result<Option<String>, ContentError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("read {}", path.display())),
    }
}

/// Records an ingest's declarations; `ref` is written last, so its presence means the rest is there.
fn write_ingest_meta(
    dir: &Path,
    reference: &str,
    total: Option<u64>,
    expected: Option<&Digest>,
    started: SystemTime,
) -> Result<(), ContentError> {
    let nanos = started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    write_or_remove(&dir.join(INGEST_STARTED), Some(nanos.to_string()))?;
    write_or_remove(&dir.join(INGEST_TOTAL), total.map(|t| t.to_string()))?;
    write_or_remove(&dir.join(INGEST_EXPECTED), expected.map(Digest::to_string))?;
    write_or_remove(&dir.join(INGEST_REF), Some(reference.to_string()))
}

fn write_or_remove(path: &Path, contents: Option<String>) -> Result<(), ContentError> {
    match contents {
        Some(contents) => fs::write(path, contents).context(|| format!("write {}", path.display())),
        None => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context(|| format!("remove {}", path.display())),
        },
    }
}

fn remove_ingest_dir(dir: &Path) -> Result<(), ContentError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context(|| format!("remove {}", dir.display())),
    }
}

/// Hashes `file` from the start, up to `limit` bytes or to its end, and leaves the file position
/// after what was hashed. Returns the hasher and the number of bytes hashed.
fn hash_prefix(file: &mut File, algorithm: Algorithm, limit: Option<u64>) -> io::Result<(Hasher, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = algorithm.hasher();
    let hashed = match limit {
        Some(limit) => io::copy(&mut (&mut *file).take(limit), &mut hasher)?,
        None => io::copy(file, &mut hasher)?,
    };
    file.seek(SeekFrom::Start(hashed))?;
    Ok((hasher, hashed))
}

/// An open ingest: bytes written go to its data file and through the hasher. Holds the ingest's
/// flock until committed or dropped; dropping without commit leaves the ingest to be resumed.
pub struct Writer {
    store: ContentStore,
    reference: String,
    dir: PathBuf,
    data: File,
    hasher: Hasher,
    offset: u64,
    total: Option<u64>,
    expected: Option<Digest>,
    // Last, so the lock is released after the data file is closed.
    _lock: Flock<File>,
}

impl Writer {
    /// The ingest's reference.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Bytes written so far, including what a resumed ingest already held: where to continue.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The status of this ingest as [`ContentStore::ingests`] would report it.
    pub fn status(&self) -> Result<IngestStatus, ContentError> {
        read_ingest_status(&self.dir)?.ok_or_else(|| ContentError::IngestNotFound(self.reference.clone()))
    }

    /// Cuts the ingest back to `size` bytes (e.g. to restart from 0 when a registry refuses a
    /// Range request) and re-hashes what remains. A `size` beyond the offset changes nothing.
    pub fn truncate(&mut self, size: u64) -> Result<(), ContentError> {
        let size = size.min(self.offset);
        self.data.set_len(size).context(|| format!("truncate ingest {:?}", self.reference))?;
        let algorithm = self.hasher_algorithm();
        let (hasher, hashed) = hash_prefix(&mut self.data, algorithm, Some(size))
            .context(|| format!("rehash ingest {:?}", self.reference))?;
        self.hasher = hasher;
        self.offset = hashed;
        Ok(())
    }

    fn hasher_algorithm(&self) -> Algorithm {
        match self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Commits the ingest as a blob: fsyncs, checks the size (`size`, else the declared total) and
    /// the digest (`expected`, else the declared one) — on mismatch the ingest is removed and the
    /// error names expected and actual — then renames it into `blobs/` and fsyncs the dir. If the
    /// blob already exists (another writer of the same digest won), our copy is dropped and the
    /// commit succeeds. Returns the blob's digest.
    pub fn commit(mut self, size: Option<u64>, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let result = self.verify_and_move(size, expected);
        let finished =
            matches!(result, Ok(_) | Err(ContentError::SizeMismatch { .. } | ContentError::DigestMismatch { .. }));
        // Committed or mismatched data has nothing left to resume: the ingest goes, under the lock.
        // Other failures (I/O) keep it, so the pull can retry.
        if finished {
            if let Err(e) = remove_ingest_dir(&self.dir) {
                tracing::warn!(reference = self.reference, error = %e, "leaving ingest dir behind");
            }
        }
        result
    }

    fn verify_and_move(&mut self, size: Option<u64>, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let reference = &self.reference;
        self.data.sync_all().context(|| format!("fsync ingest {reference:?}"))?;
        let actual_size = self.data.metadata().context(|| format!("stat ingest {reference:?}"))?.len();
        if let Some(want) = size.or(self.total) {
            if want != actual_size {
                return Err(ContentError::SizeMismatch {
                    reference: reference.clone(),
                    expected: want,
                    actual: actual_size,
                });
            }
        }

        let expected = expected.cloned().or_else(|| self.expected.clone());
        let algorithm = expected.as_ref().map_or(self.hasher_algorithm(), Digest::algorithm);
        let actual = if algorithm == self.hasher_algorithm() && self.offset == actual_size {
            std::mem::replace(&mut self.hasher, algorithm.hasher()).finish()
        } else {
            // Declared with another algorithm than the commit checks (or the file moved under
            // us): hash the data again rather than trust the running hash.
            hash_prefix(&mut self.data, algorithm, None).context(|| format!("rehash ingest {reference:?}"))?.0.finish()
        };
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ContentError::DigestMismatch { reference: reference.clone(), expected, actual });
            }
        }

        let target = self.store.blob_path(&actual);
        if target.exists() {
            tracing::debug!(digest = %actual, reference, "blob already committed by another writer");
            return Ok(actual);
        }
        self.data
            .set_permissions(fs::Permissions::from_mode(0o444))
            .context(|| format!("chmod ingest {reference:?}"))?;
        let source = self.dir.join(INGEST_DATA);
        fs::rename(&source, &target).context(|| format!("rename {} to {}", source.display(), target.display()))?;
        let blobs_dir = self.store.blobs_dir(actual.algorithm());
        File::open(&blobs_dir).and_then(|dir| dir.sync_all()).context(|| format!("fsync {}", blobs_dir.display()))?;
        Ok(actual)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.data.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(&dir.path().join("content")).unwrap();
        (dir, store)
    }

    fn dir_is_empty(path: &Path) -> bool {
        fs::read_dir(path).unwrap().next().is_none()
    }

    fn nothing_left(store: &ContentStore) -> bool {
        dir_is_empty(&store.blobs_dir(Algorithm::Sha256))
            && dir_is_empty(&store.blobs_dir(Algorithm::Sha512))
            && dir_is_empty(&store.ingest_root())
    }

    #[test]
    fn committed_blob_reads_back_read_only() {
        let (_tmp, store) = store();
        let data = b"hello berth";
        let d = Digest::sha256(data);
        let mut w = store.writer("ref-1", Some(data.len() as u64), Some(&d)).unwrap();
        w.write_all(data).unwrap();
        assert_eq!(w.offset(), data.len() as u64);
        assert_eq!(w.commit(None, None).unwrap(), d);

        let mut buf = Vec::new();
        store.open_blob(&d).unwrap().read_to_end(&mut buf).unwrap();
        assert_eq!(buf, data);
        assert_eq!(store.read_all(&d, 1024).unwrap(), data);
        let info = store.info(&d).unwrap().unwrap();
        assert_eq!(info.size, data.len() as u64);
        let mode = fs::metadata(store.blob_path(&d)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
        assert!(dir_is_empty(&store.ingest_root()));
    }

    #[test]
    fn digest_mismatch_is_refused_and_leaves_nothing() {
        let (_tmp, store) = store();
        let wrong = Digest::sha256(b"something else");
        let mut w = store.writer("ref", None, Some(&wrong)).unwrap();
        w.write_all(b"actual data").unwrap();
        match w.commit(None, None) {
            Err(ContentError::DigestMismatch { expected, actual, .. }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, Digest::sha256(b"actual data"));
            }
            other => panic!("expected digest mismatch, got {other:?}"),
        }
        assert!(nothing_left(&store));
    }

    #[test]
    fn size_mismatch_is_refused_and_leaves_nothing() {
        let (_tmp, store) = store();
        let mut w = store.writer("ref", Some(100), None).unwrap();
        w.write_all(b"short").unwrap();
        match w.commit(None, None) {
            Err(ContentError::SizeMismatch { expected, actual, .. }) => assert_eq!((expected, actual), (100, 5)),
            other => panic!("expected size mismatch, got {other:?}"),
        }
        assert!(nothing_left(&store));

        // A size given at commit is checked too.
        let mut w = store.writer("ref", None, None).unwrap();
        w.write_all(b"short").unwrap();
        assert!(matches!(w.commit(Some(4), None), Err(ContentError::SizeMismatch { .. })));
        assert!(nothing_left(&store));
    }

    #[test]
    fn dropped_writer_resumes_at_its_offset() {
        let (_tmp, store) = store();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::sha256(&data);
        let half = data.len() / 2;
        {
            let mut w = store.writer("layer", Some(data.len() as u64), Some(&d)).unwrap();
            w.write_all(&data[..half]).unwrap();
        }
        let status = store.ingest("layer").unwrap().unwrap();
        assert_eq!(status.offset, half as u64);
        assert_eq!(status.expected.as_ref(), Some(&d));

        let mut w = store.writer("layer", Some(data.len() as u64), Some(&d)).unwrap();
        assert_eq!(w.offset(), half as u64);
        w.write_all(&data[half..]).unwrap();
        assert_eq!(w.commit(None, None).unwrap(), d);
        assert_eq!(store.read_all(&d, u64::MAX).unwrap(), data);
    }

    #[test]
    fn truncate_restarts_the_hash() {
        let (_tmp, store) = store();
        let d = Digest::sha256(b"good");
        let mut w = store.writer("ref", None, Some(&d)).unwrap();
        w.write_all(b"garbage").unwrap();
        w.truncate(0).unwrap();
        assert_eq!(w.offset(), 0);
        w.write_all(b"go").unwrap();
        w.truncate(1).unwrap();
        w.write_all(b"ood").unwrap();
        assert_eq!(w.commit(Some(4), None).unwrap(), d);
    }

    #[test]
    fn concurrent_writer_of_same_ref_is_locked_out() {
        let (_tmp, store) = store();
        let w = store.writer("busy", None, None).unwrap();
        assert!(matches!(
            store.writer("busy", None, None),
            Err(ContentError::Locked(r)) if r == "busy"
        ));
        assert!(matches!(store.abort("busy"), Err(ContentError::Locked(_))));
        drop(w);
        store.writer("busy", None, None).unwrap();
    }

    #[test]
    fn two_refs_of_one_digest_both_commit_one_blob() {
        let (_tmp, store) = store();
        let data = b"shared layer";
        let d = Digest::sha256(data);
        let mut a = store.writer("a", None, Some(&d)).unwrap();
        let mut b = store.writer("b", None, Some(&d)).unwrap();
        a.write_all(data).unwrap();
        b.write_all(data).unwrap();
        assert_eq!(a.commit(None, None).unwrap(), d);
        assert_eq!(b.commit(None, None).unwrap(), d);
        let blobs = store.list().unwrap();
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].digest, d);
        assert!(store.ingests().unwrap().is_empty());
    }

    #[test]
    fn sha512_content_is_hashed_and_stored_under_sha512() {
        let (_tmp, store) = store();
        let data = b"sha512 blob";
        let d = Digest::of(Algorithm::Sha512, data);
        store.write_blob("ref", &d, data).unwrap();
        assert!(store.blob_path(&d).starts_with(store.blobs_dir(Algorithm::Sha512)));
        assert_eq!(store.read_all(&d, 100).unwrap(), data);

        // Written without an expected digest, checked against a sha512 one at commit.
        let data = b"other";
        let d = Digest::of(Algorithm::Sha512, data);
        let mut w = store.writer("ref2", None, None).unwrap();
        w.write_all(data).unwrap();
        assert_eq!(w.commit(None, Some(&d)).unwrap(), d);
    }

    #[test]
    fn read_all_refuses_blobs_over_max() {
        let (_tmp, store) = store();
        let data = vec![7u8; 100];
        let d = Digest::sha256(&data);
        store.write_blob("ref", &d, &data).unwrap();
        assert_eq!(store.read_all(&d, 100).unwrap().len(), 100);
        assert!(matches!(store.read_all(&d, 99), Err(ContentError::TooLarge { size: 100, max: 99, .. })));
    }

    #[test]
    fn deleted_blob_is_gone() {
        let (_tmp, store) = store();
        let d = Digest::sha256(b"x");
        store.write_blob("ref", &d, b"x").unwrap();
        store.delete(&d).unwrap();
        assert!(store.info(&d).unwrap().is_none());
        assert!(matches!(store.open_blob(&d), Err(ContentError::NotFound(_))));
        assert!(matches!(store.delete(&d), Err(ContentError::NotFound(_))));
    }

    #[test]
    fn list_usage_ingests_and_abort() {
        let (_tmp, store) = store();
        for blob in [&b"one"[..], b"three"] {
            store.write_blob("r", &Digest::sha256(blob), blob).unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(store.usage().unwrap(), 8);

        let mut w = store.writer("pending/ref:with odd chars", Some(10), None).unwrap();
        w.write_all(b"abc").unwrap();
        drop(w);
        let ingests = store.ingests().unwrap();
        assert_eq!(ingests.len(), 1);
        assert_eq!(ingests[0].reference, "pending/ref:with odd chars");
        assert_eq!(ingests[0].offset, 3);
        assert_eq!(ingests[0].total, Some(10));
        // In-progress writes are not content.
        assert_eq!(store.list().unwrap().len(), 2);

        store.abort("pending/ref:with odd chars").unwrap();
        assert!(store.ingests().unwrap().is_empty());
        assert!(matches!(store.abort("pending/ref:with odd chars"), Err(ContentError::IngestNotFound(_))));
    }

    #[test]
    fn resume_with_other_expected_digest_restarts() {
        let (_tmp, store) = store();
        let mut w = store.writer("ref", None, Some(&Digest::sha256(b"a"))).unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        let w = store.writer("ref", None, Some(&Digest::sha256(b"b"))).unwrap();
        assert_eq!(w.offset(), 0);
    }
}
