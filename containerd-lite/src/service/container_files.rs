//! Containers' StatPath, ArchivePath, ExtractToDir and Export: [`crate::container::fs`] on a
//! blocking thread, tars streamed as chunks through bounded channels (as save and load stream
//! image archives), the container's task lock held throughout so it neither starts nor goes away
//! while its files are worked on (docker holds the container's lock the same way).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::containers::{
    ArchiveChunk, ArchivePathRequest, ExportContainerRequest, ExtractToDirRequest, ExtractToDirResponse,
    PathStat as PbPathStat, StatPathRequest, StatPathResponse,
};
use tokio::sync::{mpsc, OwnedMutexGuard};
use ttrpc::asynchronous::{ServerStreamReceiver, ServerStreamSender};

use super::containers::lookup;
use super::transfer_archive::{ChunkWriter, CHUNKS_IN_FLIGHT};
use super::{internal, invalid, not_found};
use crate::container::fs::{self, ContainerPath, FsError, PathStat, Scope};
use crate::container::ContainerRecord;
use crate::daemon::Berthd;
use berth_proto::chunks::ChunkReader;

/// A container held for work on its files: its record, its live task's init pid and bundle.
struct Held {
    record: ContainerRecord,
    task: Option<(u32, PathBuf)>,
    _guard: OwnedMutexGuard<()>,
}

impl Held {
    async fn new(d: &Arc<Berthd>, id: &str) -> ttrpc::Result<Held> {
        let record = lookup(d, id).await?;
        let guard = d.tasks.hold(&record.id).await;
        // Read again under the lock: the container may have been removed or renamed meanwhile.
        let record = lookup(d, &record.id).await?;
        let task = d.tasks.get(&record.id).map(|t| (t.pid, t.bundle.clone()));
        Ok(Held { record, task, _guard: guard })
    }

    /// Runs `f` on the container's root on a blocking thread.
    async fn run<T: Send + 'static>(
        self: Arc<Self>,
        d: Arc<Berthd>,
        scope: Scope,
        f: impl FnOnce(&fs::ContainerRoot, &ContainerRecord) -> Result<T, FsError> + Send + 'static,
    ) -> Result<T, FsError> {
        tokio::task::spawn_blocking(move || {
            let task = self.task.as_ref().map(|(pid, bundle)| (*pid, bundle.as_path()));
            fs::with_root(&d, &self.record, task, scope, |root| f(root, &self.record))
        })
        .await
        .map_err(|e| FsError::Other(anyhow::anyhow!("the file task failed: {e}")))?
    }
}

/// An error of `container::fs` as the API reports it: a missing path NOT_FOUND, what docker
/// refuses INVALID_ARGUMENT, anything else INTERNAL.
fn fs_error(e: FsError) -> ttrpc::Error {
    match e {
        FsError::NotFound { .. } => not_found(e),
        FsError::NotADirectory | FsError::RootfsReadOnly | FsError::VolumeReadOnly | FsError::BadArchive(_) => {
            invalid(e)
        }
        FsError::Other(e) => internal(e),
    }
}

fn to_pb(stat: &PathStat) -> PbPathStat {
    PbPathStat {
        name: stat.name.clone(),
        size: stat.size,
        mode: stat.mode,
        mtime_seconds: stat.mtime_seconds,
        mtime_nanos: stat.mtime_nanos,
        link_target: stat.link_target.clone(),
        ..Default::default()
    }
}

/// StatPath: what is at a path, its last element not followed (for `cp -L` and a destination).
pub async fn stat_path(d: Arc<Berthd>, req: StatPathRequest) -> ttrpc::Result<StatPathResponse> {
    let held = Arc::new(Held::new(&d, &req.id).await?);
    let (shown, container) = (req.path.clone(), req.id.clone());
    let stat = held
        .run(d.clone(), Scope::WithMounts, move |root, _| {
            root.stat_path(&ContainerPath::parse(&shown), &container).map(|(_, stat)| stat)
        })
        .await
        .map_err(fs_error)?;
    Ok(StatPathResponse { stat: protobuf::MessageField::some(to_pb(&stat)), ..Default::default() })
}

/// ArchivePath: the path's stat in the first message, then a tar of it.
pub async fn archive_path(
    d: Arc<Berthd>,
    req: ArchivePathRequest,
    stream: ServerStreamSender<ArchiveChunk>,
) -> ttrpc::Result<()> {
    let held = Arc::new(Held::new(&d, &req.id).await?);
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (shown, container) = (req.path.clone(), req.id.clone());
    let writer = tokio::spawn(held.run(d.clone(), Scope::WithMounts, move |root, _| {
        let (resolved, stat) = root.stat_path(&ContainerPath::parse(&shown), &container)?;
        let name = stat.name.clone();
        if stat_tx.send(stat).is_err() {
            return Ok(());
        }
        root.archive_path(&resolved, &name, ChunkWriter::new(tx))
            .map_err(|e| FsError::Other(anyhow::Error::new(e).context(format!("archiving {shown}"))))
    }));
    let Ok(stat) = stat_rx.await else {
        // Nothing was archived: the lookup failed.
        let result = writer.await.map_err(|e| internal(anyhow::anyhow!("archive task failed: {e}")))?;
        return result.map_err(fs_error);
    };
    let first = ArchiveChunk { stat: protobuf::MessageField::some(to_pb(&stat)), ..Default::default() };
    send_chunks(first, rx, &stream, writer).await
}

/// Export: a tar of the root filesystem without volumes and binds.
pub async fn export(
    d: Arc<Berthd>,
    req: ExportContainerRequest,
    stream: ServerStreamSender<ArchiveChunk>,
) -> ttrpc::Result<()> {
    let held = Arc::new(Held::new(&d, &req.id).await?);
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let writer = tokio::spawn(held.run(d.clone(), Scope::RootfsOnly, move |root, _| {
        root.export(ChunkWriter::new(tx))
            .map_err(|e| FsError::Other(anyhow::Error::new(e).context("exporting the root filesystem")))
    }));
    send_chunks(ArchiveChunk::default(), rx, &stream, writer).await
}

/// Sends `first`, then every chunk the blocking `writer` produces; its error ends the stream.
async fn send_chunks(
    first: ArchiveChunk,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stream: &ServerStreamSender<ArchiveChunk>,
    writer: tokio::task::JoinHandle<Result<(), FsError>>,
) -> ttrpc::Result<()> {
    let mut sent = stream.send(&first).await;
    while sent.is_ok() {
        let Some(data) = rx.recv().await else { break };
        sent = stream.send(&ArchiveChunk { data, ..Default::default() }).await;
    }
    // A client gone stops the writer: its next send fails.
    drop(rx);
    let written = writer.await.map_err(|e| internal(anyhow::anyhow!("archive task failed: {e}")))?;
    sent?;
    written.map_err(fs_error)
}

/// ExtractToDir: the first message names the container and directory; the tar follows.
pub async fn extract_to_dir(
    d: Arc<Berthd>,
    mut stream: ServerStreamReceiver<ExtractToDirRequest>,
) -> ttrpc::Result<ExtractToDirResponse> {
    let first = match stream.recv().await {
        Ok(Some(first)) => first,
        Ok(None) => return Err(invalid("no container named")),
        Err(e) => return Err(invalid(format!("receiving the request: {e}"))),
    };
    let held = Arc::new(Held::new(&d, &first.id).await?);
    let id = held.record.id.clone();
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (shown, copy_uid_gid, no_overwrite) = (first.path.clone(), first.copy_uid_gid, first.no_overwrite_dir_non_dir);
    let container = first.id.clone();
    let extractor = tokio::spawn(held.run(d.clone(), Scope::WithMounts, move |root, record| {
        let dir = fs::extraction_point(root, record, &ContainerPath::parse(&shown), &container)?;
        fs::extract(root, record, dir, copy_uid_gid, no_overwrite, ChunkReader::new(rx))
    }));
    let mut next = Ok(first.data);
    loop {
        let failed = next.is_err();
        // A closed channel means the extractor stopped (its error is returned below).
        if tx.send(next).await.is_err() || failed {
            break;
        }
        next = match stream.recv().await {
            Ok(Some(req)) => Ok(req.data),
            Ok(None) => break,
            // Cut short: the reader must fail, not take what came as the whole tar.
            Err(e) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("receiving the tar: {e}"))),
        };
    }
    drop(tx);
    let extracted = extractor.await.map_err(|e| internal(anyhow::anyhow!("extract task failed: {e}")))?;
    extracted.map_err(fs_error)?;
    d.events.publish("/containers/extract-to-dir", serde_json::json!({ "id": id }));
    Ok(ExtractToDirResponse::default())
}
