//! Directory contexts kept between builds, as BuildKit keeps a local context: the same directory
//! built again (the client's key is a digest of its path) sends only the regular files that
//! changed. Each context lives in `<root>/build-contexts/<key>/`: `context/` (the files) and
//! `state.json` (for each regular file: the header fields and the client's fingerprint it came
//! with, and its sha256). A context is locked for the whole build that uses it. `state.json` is
//! removed before the directory is touched and written back last, so a context whose update was
//! interrupted (berthd killed) is started afresh. The most recently used `KEPT` contexts are kept;
//! `system prune` removes all that no build is using.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Context as _, Result};
use berth_proto::build::{BuildInput, BuildOutput, ContextEntry};
use serde::{Deserialize, Serialize};
use ttrpc::asynchronous::ServerStream;

use super::{Context, FileHashes, Hold};
use crate::build::Invalid;
use crate::daemon::Berthd;

/// How many contexts are kept (the least recently used beyond are removed).
const KEPT: usize = 8;
/// At most this many entries in one context.
const MAX_ENTRIES: usize = 1 << 20;
const STATE: &str = "state.json";
/// tar's type flags of a regular file (`'0'`, and the old `'\0'`) and a directory.
const REGULAR: [u32; 2] = [b'0' as u32, 0];
const DIRECTORY: u32 = b'5' as u32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileState {
    mode: u32,
    mtime: i64,
    size: u64,
    fingerprint: String,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    files: BTreeMap<String, FileState>,
}

fn contexts_dir(d: &Berthd) -> PathBuf {
    d.cfg.root.join("build-contexts")
}

/// The lock of each context (created on first use).
fn lock_of(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(key.to_string()).or_default().clone()
}

/// Receives a directory context kept under `key`: the client's entries, then (after berthd's
/// ContextRequest naming the files it needs) the tar.
pub async fn receive(d: &Arc<Berthd>, key: &str, input: &mut ServerStream<BuildOutput, BuildInput>) -> Result<Context> {
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Invalid(format!("bad build context key {key:?}: want 64 lowercase hex digits")).into());
    }
    let mut entries: Vec<ContextEntry> = Vec::new();
    loop {
        let message = input
            .recv()
            .await
            .map_err(|e| anyhow!("receiving the build context: {e}"))?
            .ok_or_else(|| Invalid("the build context ended before its entries".into()))?;
        if !message.data.is_empty() {
            return Err(Invalid("build context data came before its entries".into()).into());
        }
        entries.extend(message.entries);
        if entries.len() > MAX_ENTRIES {
            return Err(Invalid(format!("the build context has more than {MAX_ENTRIES} entries")).into());
        }
        if message.entries_end {
            break;
        }
    }
    let guard = lock_of(key).lock_owned().await;
    let dir = contexts_dir(d).join(key);
    let received = async {
        let entries = Arc::new(entries);
        let (dir2, e2) = (dir.clone(), entries.clone());
        let (kept, wanted) = tokio::task::spawn_blocking(move || prepare(&dir2, &e2)).await??;
        let files = entries.iter().filter(|e| REGULAR.contains(&e.kind)).count();
        tracing::info!("build context {}: receiving {} of {files} files", &key[..12], wanted.len());
        let request = BuildOutput { context_request: true, wanted, ..Default::default() };
        input.send(&request).await.map_err(|e| anyhow!("asking for the build context: {e}"))?;
        super::extract(Vec::new(), input, &dir.join("context")).await?;
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || finish(&dir2, &entries, kept)).await?
    }
    .await;
    let hashes = match received {
        Ok(hashes) => hashes,
        Err(e) => {
            // Nothing half-received is kept.
            let dir2 = dir.clone();
            let _ = tokio::task::spawn_blocking(move || remove_all(&dir2)).await;
            return Err(e);
        }
    };
    let (d2, key2) = (d.clone(), key.to_string());
    tokio::task::spawn_blocking(move || evict(&d2, &key2)).await?;
    Ok(Context { path: dir.join("context"), hashes: Some(Arc::new(hashes)), _hold: Hold::Kept(guard) })
}

/// Makes `dir/context` hold exactly the kept files and the directories the client listed;
/// returns the kept files and the indices of the regular files to ask for.
fn prepare(dir: &Path, entries: &[ContextEntry]) -> Result<(HashMap<String, FileState>, Vec<u32>)> {
    let files = dir.join("context");
    let state = match fs::read(dir.join(STATE)) {
        Ok(bytes) if files.is_dir() => serde_json::from_slice::<State>(&bytes).ok(),
        _ => None,
    };
    let state = match state {
        Some(state) => {
            remove_file(&dir.join(STATE))?;
            state
        }
        None => {
            remove_all(dir)?;
            fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
            State::default()
        }
    };
    let mut kept = HashMap::new();
    let mut dirs = HashSet::new();
    for entry in entries {
        if entry.kind == DIRECTORY {
            dirs.insert(entry.path.as_str());
        } else if REGULAR.contains(&entry.kind) && !entry.fingerprint.is_empty() {
            if let Some(known) = state.files.get(&entry.path) {
                if (known.mode, known.mtime, known.size, known.fingerprint.as_str())
                    == (entry.mode, entry.mtime, entry.size, entry.fingerprint.as_str())
                {
                    kept.insert(entry.path.clone(), known.clone());
                }
            }
        }
    }
    prune_tree(&files, "", &dirs, &mut kept)?;
    let wanted = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| REGULAR.contains(&e.kind) && !kept.contains_key(&e.path))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    Ok((kept, wanted))
}

/// Removes from the directory `base/rel` everything but the listed directories and the kept
/// files (which must still be regular files of their recorded size). Never follows a symlink.
fn prune_tree(base: &Path, rel: &str, dirs: &HashSet<&str>, kept: &mut HashMap<String, FileState>) -> Result<()> {
    let dir = base.join(rel);
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let child_rel = match (rel, name.to_str()) {
            (_, None) => None,
            ("", Some(name)) => Some(name.to_string()),
            (_, Some(name)) => Some(format!("{rel}/{name}")),
        };
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        match child_rel {
            Some(child) if meta.is_dir() && dirs.contains(child.as_str()) => prune_tree(base, &child, dirs, kept)?,
            Some(child) if meta.is_file() && kept.get(&child).is_some_and(|k| k.size == meta.len()) => {}
            other => {
                if let Some(child) = other {
                    kept.remove(&child);
                }
                if meta.is_dir() {
                    fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
                } else {
                    remove_file(&path)?;
                }
            }
        }
    }
    Ok(())
}

/// Records the state of the received context (digests of the new files read from disk) and
/// returns every regular file's digest.
fn finish(dir: &Path, entries: &[ContextEntry], kept: HashMap<String, FileState>) -> Result<FileHashes> {
    let files = dir.join("context");
    let mut state = State::default();
    for entry in entries.iter().filter(|e| REGULAR.contains(&e.kind)) {
        if let Some(known) = kept.get(&entry.path) {
            state.files.insert(entry.path.clone(), known.clone());
            continue;
        }
        // Only what the tar really made: a regular file of the listed size, reached without
        // following a symlink (a client that sent less leaves the file out).
        let Some(sha256) = hash_regular(&files, &entry.path, entry.size)? else { continue };
        let file = FileState {
            mode: entry.mode,
            mtime: entry.mtime,
            size: entry.size,
            fingerprint: entry.fingerprint.clone(),
            sha256: hex::encode(sha256),
        };
        state.files.insert(entry.path.clone(), file);
    }
    let bytes = serde_json::to_vec(&state).context("encoding the build context's state")?;
    let tmp = dir.join(format!("{STATE}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(STATE)).with_context(|| format!("writing {}", dir.join(STATE).display()))?;
    let root = fs::canonicalize(&files).with_context(|| format!("resolving {}", files.display()))?;
    let mut by_path = HashMap::new();
    for (path, file) in state.files {
        let mut sha = [0u8; 32];
        if hex::decode_to_slice(&file.sha256, &mut sha).is_ok() {
            by_path.insert(path, sha);
        }
    }
    Ok(FileHashes { root, by_path })
}

/// The sha256 of `base/rel` if every component below `base` is a real directory and the last a
/// regular file of `size` bytes.
fn hash_regular(base: &Path, rel: &str, size: u64) -> Result<Option<[u8; 32]>> {
    let mut path = base.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || *part == "." || *part == ".." {
            return Ok(None);
        }
        path.push(part);
        let Ok(meta) = fs::symlink_metadata(&path) else { return Ok(None) };
        let last = i + 1 == parts.len();
        if (last && (!meta.is_file() || meta.len() != size)) || (!last && !meta.is_dir()) {
            return Ok(None);
        }
    }
    crate::build::copy::file_sha256(&path).map(Some)
}

/// Removes the contexts used least recently beyond `KEPT` (not `current`, none in use).
fn evict(d: &Berthd, current: &str) {
    let Ok(listing) = fs::read_dir(contexts_dir(d)) else { return };
    let mut contexts: Vec<(std::time::SystemTime, String)> = listing
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let key = e.file_name().into_string().ok()?;
            let used = fs::metadata(e.path().join(STATE)).and_then(|m| m.modified()).ok()?;
            Some((used, key))
        })
        .filter(|(_, key)| key != current)
        .collect();
    contexts.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, key) in contexts.into_iter().skip(KEPT.saturating_sub(1)) {
        remove_unused(d, &key);
    }
}

/// Removes the context `key` unless a build holds it.
fn remove_unused(d: &Berthd, key: &str) -> bool {
    let Ok(_guard) = lock_of(key).try_lock_owned() else { return false };
    let dir = contexts_dir(d).join(key);
    match remove_all(&dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("removing the kept build context {}: {e:#}", dir.display());
            false
        }
    }
}

/// Removes every kept context no build is using (`system prune`); returns how many.
pub fn prune(d: &Berthd) -> usize {
    let Ok(listing) = fs::read_dir(contexts_dir(d)) else { return 0 };
    listing.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|key| remove_unused(d, key)).count()
}

fn remove_all(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", dir.display())),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn file(path: &str, size: u64, fingerprint: &str) -> ContextEntry {
        ContextEntry {
            path: path.into(),
            kind: REGULAR[0],
            mode: 0o644,
            mtime: 1_700_000_000,
            size,
            fingerprint: fingerprint.into(),
            ..Default::default()
        }
    }

    fn dir(path: &str) -> ContextEntry {
        ContextEntry { path: path.into(), kind: DIRECTORY, ..Default::default() }
    }

    /// What extracting the tar would do for `wanted`: writes each file with `size` bytes.
    fn receive(base: &Path, entries: &[ContextEntry], wanted: &[u32], content: u8) {
        for e in entries.iter().filter(|e| e.kind == DIRECTORY) {
            fs::create_dir_all(base.join("context").join(&e.path)).unwrap();
        }
        for &i in wanted {
            let e = &entries[i as usize];
            fs::write(base.join("context").join(&e.path), vec![content; e.size as usize]).unwrap();
        }
    }

    fn sync(base: &Path, entries: &[ContextEntry], content: u8) -> (Vec<u32>, FileHashes) {
        let (kept, wanted) = prepare(base, entries).unwrap();
        receive(base, entries, &wanted, content);
        (wanted.clone(), finish(base, entries, kept).unwrap())
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn only_files_changed_or_unknown_are_asked_for_and_the_rest_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("k");
        let entries = vec![file("a", 3, "f1"), dir("d"), file("d/b", 2, "f2"), file("racy", 1, "")];
        let (wanted, hashes) = sync(&base, &entries, b'x');
        assert_eq!(wanted, [0, 2, 3], "a new context asks for every file");
        let root = fs::canonicalize(base.join("context")).unwrap();
        assert_eq!(hashes.get(&root.join("d/b")), Some(&sha(b"xx")));

        // Nothing changed: only the file without a fingerprint is asked for again.
        let (wanted, hashes) = sync(&base, &entries, b'y');
        assert_eq!(wanted, [3]);
        assert_eq!(hashes.get(&root.join("a")), Some(&sha(b"xxx")), "a kept file keeps its digest");
        assert_eq!(fs::read(base.join("context/a")).unwrap(), b"xxx");

        // A changed fingerprint, a changed mode, a file gone, a directory gone, a new file.
        let mut changed = vec![file("a", 3, "f1-new"), file("c", 4, "f3")];
        changed[0].mode = 0o600;
        fs::write(base.join("context/stray"), b"left by someone").unwrap();
        let (wanted, _) = sync(&base, &changed, b'z');
        assert_eq!(wanted, [0, 1]);
        let mut names: Vec<String> = fs::read_dir(base.join("context"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "c"], "what the client no longer lists is removed");
        assert_eq!(fs::read(base.join("context/a")).unwrap(), b"zzz");
    }

    #[test]
    fn a_kept_file_replaced_on_disk_or_an_interrupted_sync_is_sent_again() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("k");
        let entries = vec![file("a", 3, "f1"), file("b", 3, "f2")];
        sync(&base, &entries, b'x');
        // A symlink where a kept file was is not trusted (nor followed): it is removed.
        fs::remove_file(base.join("context/a")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.join("context/a")).unwrap();
        let (wanted, _) = sync(&base, &entries, b'y');
        assert_eq!(wanted, [0]);
        assert!(fs::symlink_metadata(base.join("context/a")).unwrap().is_file());
        // An update cut short leaves no state: everything is asked for, from an empty directory.
        let (_kept, wanted) = prepare(&base, &entries).unwrap();
        assert_eq!(wanted, Vec::<u32>::new());
        fs::write(base.join("context/junk"), b"half-written").unwrap();
        let (_kept, wanted) = prepare(&base, &entries).unwrap();
        assert_eq!(wanted, [0, 1]);
        assert!(!base.join("context/junk").exists() && !base.join("context/a").exists());
    }

    #[test]
    fn a_listed_file_the_tar_did_not_make_is_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("k");
        let entries = vec![dir("d"), file("d/a", 3, "f1")];
        let (kept, _) = prepare(&base, &entries).unwrap();
        // The tar made d a symlink to a directory holding an `a` of the right size.
        fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        fs::write(tmp.path().join("elsewhere/a"), b"xxx").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), base.join("context/d")).unwrap();
        let hashes = finish(&base, &entries, kept).unwrap();
        assert!(hashes.by_path.is_empty(), "nothing is read through a symlink");
        let (_, wanted) = prepare(&base, &entries).unwrap();
        assert_eq!(wanted, [1]);
        assert!(tmp.path().join("elsewhere/a").exists(), "pruning never follows the symlink");
    }
}
