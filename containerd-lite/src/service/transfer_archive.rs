//! Transfer's save and load: image archives streamed as `Chunk`s, written and read by
//! [`crate::image::oci_archive`] on a blocking thread through bounded channels, so neither side holds
//! more than a few chunks in memory.

use std::io::{self, Write};
use std::sync::Arc;

use berth_proto::chunks::ChunkReader;
use berth_proto::images::{Chunk, ExportRequest, ImportResponse};
use tokio::sync::mpsc;
use ttrpc::asynchronous::{ServerStreamReceiver, ServerStreamSender};

use super::images::{normalize, to_pb};
use super::{blocking, internal, invalid, not_found};
use crate::daemon::Berthd;
use crate::image::oci_archive::{self, Format, InvalidArchive};
use crate::image::pull::{self, Reporter};
use crate::image::{self, Descriptor, Platform};
use crate::store::lease::TransferLease;
use crate::store::meta::{Image, Resource};

/// Bytes per `Chunk` sent (ttrpc messages are limited to 4 MiB).
const CHUNK_SIZE: usize = 1 << 20;
/// Chunks in flight between the blocking side and the stream.
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;

/// Streams the named images as an archive in the requested format.
pub async fn export(d: Arc<Berthd>, req: ExportRequest, stream: ServerStreamSender<Chunk>) -> ttrpc::Result<()> {
    let format: Format = req.format.parse().map_err(invalid)?;
    let platform = match req.platform.as_str() {
        "" => None,
        p => Some(p.parse::<Platform>().map_err(invalid)?),
    };
    if req.names.is_empty() {
        return Err(invalid("no image names given"));
    }
    let names = req.names.iter().map(|n| normalize(n)).collect::<ttrpc::Result<Vec<_>>>()?;

    // The images may be removed while they are exported: the lease keeps their content. (No
    // lock is held while the client reads.)
    let lease = TransferLease::new(&d, "export").await.map_err(internal)?;
    let images = {
        let d = d.clone();
        blocking(move || {
            names
                .iter()
                .map(|name| match d.meta.image(name).map_err(internal)? {
                    Some(i) => Ok((i.name.clone(), Descriptor::from(&i.target))),
                    None => Err(not_found(format!("No such image: {name}"))),
                })
                .collect::<ttrpc::Result<Vec<_>>>()
        })
        .await?
    };
    for (_, target) in &images {
        lease.protect_content(&target.digest).await.map_err(internal)?;
    }

    let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let content = d.content.clone();
    let writer = tokio::task::spawn_blocking(move || {
        oci_archive::export(&content, &images, format, platform.as_ref(), ChunkWriter::new(tx))
    });
    let mut sent = Ok(());
    while let Some(data) = rx.recv().await {
        if let Err(e) = stream.send(&Chunk { data, ..Default::default() }).await {
            sent = Err(e);
            break;
        }
    }
    // A client gone stops the export: its next send fails.
    drop(rx);
    let written = writer.await.map_err(|e| internal(anyhow::anyhow!("export task failed: {e}")))?;
    sent?;
    written.map_err(internal)
}

/// Reads an archive from the stream, stores its blobs, unpacks and names its images. The names
/// are stored last, once every image unpacked: a failed load names nothing.
pub async fn import(d: Arc<Berthd>, mut stream: ServerStreamReceiver<Chunk>) -> ttrpc::Result<ImportResponse> {
    let _activity = crate::memory::activity();
    // The archive is spooled to a file under the root first, without any lock: a slow or stalled
    // client must not hold up garbage collection (and the removals that wait for it).
    let spool_dir = d.cfg.root.join("tmp");
    let spool = {
        let dir = spool_dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| internal(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
            tempfile::tempfile_in(&dir)
                .map_err(|e| internal(anyhow::anyhow!("creating a spool file in {}: {e}", dir.display())))
        })
        .await?
    };
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let copier = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
        let mut spool = spool;
        io::copy(&mut ChunkReader::new(rx), &mut spool)?;
        io::Seek::rewind(&mut spool)?;
        Ok(spool)
    });
    loop {
        let next = match stream.recv().await {
            Ok(Some(chunk)) => Ok(chunk.data),
            Ok(None) => break,
            // Cut short: the reader must fail, not take the end of what came as the archive's.
            Err(e) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("receiving the archive: {e}"))),
        };
        let failed = next.is_err();
        // A closed channel means the reader stopped (on an error it returns below).
        if tx.send(next).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let spool = copier
        .await
        .map_err(|e| internal(anyhow::anyhow!("spool task failed: {e}")))?
        .map_err(|e| archive_error(anyhow::Error::new(e).context("receiving the archive")))?;

    // Blobs go in under the gc lock (local disk work only) and the lease takes the images'
    // targets before it is released, so gc cannot sweep what is not named yet.
    let lease = Arc::new(TransferLease::new(&d, "load").await.map_err(internal)?);
    let imported = {
        let _gc = d.gc_lock.read().await;
        let (content, lease) = (d.content.clone(), lease.clone());
        tokio::task::spawn_blocking(move || {
            let imported = oci_archive::import(&content, io::BufReader::new(spool))?;
            for (_, target) in &imported {
                lease.protect_held(Resource::Content(target.digest.clone()))?;
            }
            Ok::<_, anyhow::Error>(imported)
        })
        .await
        .map_err(|e| internal(anyhow::anyhow!("import task failed: {e}")))?
        .map_err(archive_error)?
    };

    let mut unpacked = std::collections::HashSet::new();
    for (name, target) in &imported {
        if !unpacked.insert(target.digest.clone()) {
            continue;
        }
        let resolved = {
            let (content, target) = (d.content.clone(), target.clone());
            blocking(move || image::resolve(&content, &target, &Platform::host()).map_err(archive_error)).await?
        };
        pull::unpack(&d, &lease, &resolved.manifest, &resolved.config, &Reporter::none())
            .await
            .map_err(|e| archive_error(e.context(format!("image {name}"))))?;
    }

    // Every name in one transaction: a load names all its images or none.
    let stored = {
        let d = d.clone();
        blocking(move || {
            let records = imported.into_iter().map(|(name, target)| Image::new(name, target.target())).collect();
            d.meta.put_images(records).map_err(internal)
        })
        .await?
    };
    for (existed, image) in &stored {
        let topic = if *existed { "/images/update" } else { "/images/create" };
        d.events.publish(topic, serde_json::json!({ "name": image.name }));
    }
    Ok(ImportResponse { images: stored.iter().map(|(_, i)| to_pb(i)).collect(), ..Default::default() })
}

/// A bad archive is the client's INVALID_ARGUMENT; anything else failed here.
fn archive_error(e: anyhow::Error) -> ttrpc::Error {
    if e.chain().any(|c| c.is::<InvalidArchive>()) {
        let msg = super::one_line(&e);
        tracing::info!("load refused: {msg}");
        invalid(msg)
    } else {
        internal(e)
    }
}

/// The blocking side of export: cuts what is written into `CHUNK_SIZE` chunks for the stream.
pub(super) struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub(super) fn new(tx: mpsc::Sender<Vec<u8>>) -> ChunkWriter {
        ChunkWriter { tx, buf: Vec::with_capacity(CHUNK_SIZE) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client stopped receiving the archive"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_writer_cuts_full_chunks_and_flushes_the_rest() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut w = ChunkWriter::new(tx);
        w.write_all(&vec![7u8; CHUNK_SIZE + 10]).unwrap();
        w.flush().unwrap();
        drop(w);
        assert_eq!(rx.blocking_recv().unwrap().len(), CHUNK_SIZE);
        assert_eq!(rx.blocking_recv().unwrap().len(), 10);
        assert!(rx.blocking_recv().is_none());
    }
}
