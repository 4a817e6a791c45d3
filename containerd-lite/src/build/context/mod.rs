//! The build context as the client streams it (a tar), extracted into a private directory under
//! berthd's root with the layer unpacker's confinement (no entry lands outside it, no link is
//! followed out of it) and removed when the build ends.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use berth_proto::build::{BuildInput, BuildOutput};
use tokio::sync::mpsc;
use ttrpc::asynchronous::ServerStream;

use crate::daemon::Berthd;
use crate::image::archive;
use berth_proto::chunks::ChunkReader;

/// An extracted context; its directory goes with it.
pub struct Context {
    dir: tempfile::TempDir,
}

impl Context {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("context")
    }
}

/// Receives the context tar: `first` (data of the options message) then every message's data.
pub async fn receive(
    d: &Arc<Berthd>,
    first: Vec<u8>,
    input: &mut ServerStream<BuildOutput, BuildInput>,
) -> Result<Context> {
    let tmp = d.cfg.root.join("tmp");
    let dir = {
        let tmp = tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<tempfile::TempDir> {
            std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let dir =
                tempfile::Builder::new().prefix("build-").tempdir_in(&tmp).context("creating a build directory")?;
            std::fs::create_dir(dir.path().join("context")).context("creating the context directory")?;
            Ok(dir)
        })
        .await??
    };
    let context = Context { dir };
    let target = context.path();
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
    let (tx, rx) = mpsc::channel(4);
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
    Ok(context)
}
