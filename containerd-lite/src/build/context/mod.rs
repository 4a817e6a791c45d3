//! The build context as the client streams it. A directory context is kept by berthd between
//! builds (`kept`): the client lists its entries, berthd asks only for the regular files it does
//! not already have, and knows the digests of the ones it kept. A context on the client's stdin
//! (a tar) is extracted into a private directory removed when the build ends. Both extractions
//! use the layer unpacker's confinement (no entry lands outside, no link is followed out).

mod kept;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use berth_proto::build::{BuildInput, BuildOutput};
use tokio::sync::mpsc;
use ttrpc::asynchronous::ServerStream;

use crate::daemon::Berthd;
use crate::image::archive;
use berth_proto::chunks::ChunkReader;

pub use kept::{prune as prune_kept, receive as receive_kept};

/// A context ready to build from; what holds it (its temporary directory, or the lock on a
/// kept one) goes with it.
pub struct Context {
    path: PathBuf,
    hashes: Option<Arc<FileHashes>>,
    _hold: Hold,
}

enum Hold {
    Temporary(#[allow(dead_code)] tempfile::TempDir),
    Kept(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
}

impl Context {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sha256 of the context's regular files, when berthd knows them without reading them.
    pub fn hashes(&self) -> Option<Arc<FileHashes>> {
        self.hashes.clone()
    }
}

/// The sha256 of a context's regular files by their path inside it.
pub struct FileHashes {
    /// The context directory as the kernel names it (no symlinks).
    root: PathBuf,
    by_path: HashMap<String, [u8; 32]>,
}

impl FileHashes {
    /// The digest of the file at `path` (a real path, as `copy::resolve_in` gives), if known.
    pub fn get(&self, path: &Path) -> Option<&[u8; 32]> {
        self.by_path.get(path.strip_prefix(&self.root).ok()?.to_str()?)
    }
}

/// Receives a context tar (`berth build -`): `first` (data of the options message) then every
/// message's data, into a temporary directory.
pub async fn receive_tar(
    d: &Arc<Berthd>,
    first: Vec<u8>,
    input: &mut ServerStream<BuildOutput, BuildInput>,
) -> Result<Context> {
    let tmp = d.cfg.root.join("tmp");
    let dir = tokio::task::spawn_blocking(move || -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let dir = tempfile::Builder::new().prefix("build-").tempdir_in(&tmp).context("creating a build directory")?;
        std::fs::create_dir(dir.path().join("context")).context("creating the context directory")?;
        Ok(dir)
    })
    .await??;
    let path = dir.path().join("context");
    // The first bytes say whether the tar is compressed (a context on the client's stdin is sent
    // as it came).
    let mut head = first;
    while head.is_empty() {
        match input.recv().await {
            Ok(Some(message)) => head = message.data,
            Ok(None) => break,
            Err(e) => return Err(anyhow!("receiving the build context: {e}")),
        }
    }
    // gzip and zstd are undone by the extraction; bzip2 and xz are refused by name.
    if matches!(head.as_slice(), [b'B', b'Z', b'h', ..] | [0xfd, b'7', b'z', b'X', b'Z', ..]) {
        return Err(
            super::Invalid("a bzip2 or xz build context is not supported: send it plain or gzipped".into()).into()
        );
    }
    extract(head, input, &path).await?;
    Ok(Context { path, hashes: None, _hold: Hold::Temporary(dir) })
}

/// Extracts the tar made of `head` and the data of every further message into `target`.
async fn extract(head: Vec<u8>, input: &mut ServerStream<BuildOutput, BuildInput>, target: &Path) -> Result<()> {
    let (tx, rx) = mpsc::channel(4);
    let target = target.to_path_buf();
    // A context is files, not a layer: `.wh.` names are plain names in it.
    let extract = tokio::task::spawn_blocking(move || -> Result<(), archive::ArchiveError> {
        let root = std::fs::File::open(&target).map_err(archive::ArchiveError::Stream)?;
        let options = archive::ExtractOptions { whiteouts: false, chown: None, no_overwrite_dir_non_dir: false };
        archive::extract(io::BufReader::new(ChunkReader::new(rx)), root.into(), Vec::new(), &options)
    });
    if !head.is_empty() {
        let _ = tx.send(Ok(head)).await;
    }
    loop {
        let next = match input.recv().await {
            Ok(Some(message)) => Ok(message.data),
            Ok(None) => break,
            Err(e) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("receiving the build context: {e}"))),
        };
        let failed = next.is_err();
        if tx.send(next).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    extract
        .await
        .map_err(|e| anyhow!("context task failed: {e}"))?
        .map_err(|e| super::Invalid(format!("reading the build context: {e}")))?;
    Ok(())
}
