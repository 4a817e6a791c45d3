//! The Content service: blobs by digest, ingests, labels.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use berth_proto::content::{
    AbortRequest, ContentInfo, DeleteContentRequest, InfoRequest, InfoResponse, ListContentRequest,
    ListContentResponse, ListStatusesRequest, ListStatusesResponse, ReadContentRequest, ReadContentResponse, Status,
    UpdateContentRequest, WriteAction, WriteContentRequest, WriteContentResponse,
};
use berth_proto::types::Empty;
use ttrpc::asynchronous::{ServerStream, ServerStreamSender, TtrpcContext};

use super::{blocking, internal, invalid, not_found};
use crate::daemon::Berthd;
use crate::events::nanos;
use crate::store::content::{ContentError, IngestStatus};
use crate::store::digest::Digest;

pub struct ContentService(pub Arc<Berthd>);

/// Read replies carry at most this much.
const READ_CHUNK: usize = 1 << 20;

fn digest(s: &str) -> ttrpc::Result<Digest> {
    s.parse().map_err(invalid)
}

fn content_error(e: ContentError) -> ttrpc::Error {
    match e {
        ContentError::NotFound(_) | ContentError::IngestNotFound(_) => not_found(e),
        ContentError::Locked(_) => super::status(ttrpc::Code::UNAVAILABLE, e),
        ContentError::SizeMismatch { .. } | ContentError::DigestMismatch { .. } => {
            super::status(ttrpc::Code::FAILED_PRECONDITION, e)
        }
        e => internal(e),
    }
}

fn info(d: &Berthd, digest: &Digest) -> ttrpc::Result<ContentInfo> {
    let i = d
        .content
        .info(digest)
        .map_err(content_error)?
        .ok_or_else(|| not_found(format!("content {digest} not found")))?;
    Ok(ContentInfo {
        digest: i.digest.to_string(),
        size: i.size as i64,
        created_at: nanos(i.created),
        labels: d.meta.content_labels(digest).map_err(internal)?.into_iter().collect(),
        ..Default::default()
    })
}

fn status_of(s: &IngestStatus) -> Status {
    Status {
        ref_: s.reference.clone(),
        offset: s.offset as i64,
        total: s.total.map_or(0, |t| t as i64),
        expected: s.expected.as_ref().map(ToString::to_string).unwrap_or_default(),
        started_at: nanos(s.started),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl berth_proto::content_ttrpc::Content for ContentService {
    async fn info(&self, _: &TtrpcContext, req: InfoRequest) -> ttrpc::Result<InfoResponse> {
        let d = self.0.clone();
        blocking(move || {
            let info = info(&d, &digest(&req.digest)?)?;
            Ok(InfoResponse { info: protobuf::MessageField::some(info), ..Default::default() })
        })
        .await
    }

    async fn update(&self, _: &TtrpcContext, req: UpdateContentRequest) -> ttrpc::Result<InfoResponse> {
        let d = self.0.clone();
        // Checking the blob and labelling it happen with no gc in between.
        let _gc = d.gc_lock.read().await;
        let d2 = d.clone();
        blocking(move || {
            let d = d2;
            let dg = digest(&req.digest)?;
            info(&d, &dg)?;
            d.meta.set_content_labels(&dg, &req.labels.into_iter().collect()).map_err(internal)?;
            Ok(InfoResponse { info: protobuf::MessageField::some(info(&d, &dg)?), ..Default::default() })
        })
        .await
    }

    async fn list(
        &self,
        _: &TtrpcContext,
        _: ListContentRequest,
        stream: ServerStreamSender<ListContentResponse>,
    ) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let infos = blocking(move || {
            let blobs = d.content.list().map_err(content_error)?;
            blobs.iter().map(|b| info(&d, &b.digest)).collect::<ttrpc::Result<Vec<_>>>()
        })
        .await?;
        for batch in infos.chunks(100) {
            stream.send(&ListContentResponse { info: batch.to_vec(), ..Default::default() }).await?;
        }
        Ok(())
    }

    async fn delete(&self, _: &TtrpcContext, req: DeleteContentRequest) -> ttrpc::Result<Empty> {
        let d = self.0.clone();
        let dg = digest(&req.digest)?;
        let _gc = d.gc_lock.write().await;
        let d2 = d.clone();
        let dg2 = dg.clone();
        blocking(move || {
            d2.content.delete(&dg2).map_err(content_error)?;
            d2.meta.remove_content_labels(std::slice::from_ref(&dg2)).map_err(internal)
        })
        .await?;
        d.events.publish("/content/delete", serde_json::json!({ "digest": dg.to_string() }));
        Ok(Empty::new())
    }

    async fn read(
        &self,
        _: &TtrpcContext,
        req: ReadContentRequest,
        stream: ServerStreamSender<ReadContentResponse>,
    ) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let dg = digest(&req.digest)?;
        let offset = u64::try_from(req.offset).map_err(|_| invalid("negative offset"))?;
        let size = u64::try_from(req.size).map_err(|_| invalid("negative size"))?;
        let mut file = {
            let d = d.clone();
            let dg = dg.clone();
            blocking(move || d.content.open_blob(&dg).map_err(content_error)).await?
        };
        file.seek(SeekFrom::Start(offset)).map_err(internal)?;
        let mut left = if size == 0 { u64::MAX } else { size };
        let mut at = offset;
        loop {
            let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
            let (f, buf) = blocking(move || {
                let mut buf = vec![0; want];
                let n = file.read(&mut buf).map_err(internal)?;
                buf.truncate(n);
                Ok((file, buf))
            })
            .await?;
            file = f;
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf.len() as u64;
            stream.send(&ReadContentResponse { offset: at as i64, data: buf, ..Default::default() }).await?;
            at += n;
            left -= n;
            if left == 0 {
                return Ok(());
            }
        }
    }

    async fn list_statuses(&self, _: &TtrpcContext, _: ListStatusesRequest) -> ttrpc::Result<ListStatusesResponse> {
        let d = self.0.clone();
        blocking(move || {
            let statuses = d.content.ingests().map_err(content_error)?;
            Ok(ListStatusesResponse { statuses: statuses.iter().map(status_of).collect(), ..Default::default() })
        })
        .await
    }

    /// One ingest per stream, as containerd's: the first message names the ref (and may state
    /// the expected size/digest); WRITE at the current offset appends; COMMIT verifies and
    /// stores; STAT reports progress. The stream ending before COMMIT leaves the ingest to
    /// resume.
    async fn write(
        &self,
        _: &TtrpcContext,
        mut stream: ServerStream<WriteContentResponse, WriteContentRequest>,
    ) -> ttrpc::Result<()> {
        let d = self.0.clone();
        let Some(first) = stream.recv().await? else { return Ok(()) };
        if first.ref_.is_empty() {
            return Err(invalid("write: the first message must name a ref"));
        }
        let expected = if first.expected.is_empty() { None } else { Some(digest(&first.expected)?) };
        let total = u64::try_from(first.total).ok().filter(|t| *t > 0);
        let mut writer = {
            let (d, r, e) = (d.clone(), first.ref_.clone(), expected.clone());
            blocking(move || d.content.writer(&r, total, e.as_ref()).map_err(content_error)).await?
        };
        let first_labels = first.labels.clone();
        let mut msg = Some(first);
        while let Some(req) = msg.take() {
            let action = req.action.enum_value().map_err(|v| invalid(format!("unknown write action {v}")))?;
            match action {
                WriteAction::STAT => {}
                WriteAction::WRITE | WriteAction::COMMIT => {
                    if !req.data.is_empty() {
                        let offset = u64::try_from(req.offset).map_err(|_| {
                            invalid(format!("write of {:?} at negative offset {}", req.ref_, req.offset))
                        })?;
                        // As containerd: a write from 0 into a resumed ingest starts it over.
                        if offset == 0 && writer.offset() > 0 {
                            writer.truncate(0).map_err(content_error)?;
                        }
                        if offset != writer.offset() {
                            return Err(super::status(
                                ttrpc::Code::OUT_OF_RANGE,
                                format!(
                                    "write of {:?} at offset {offset} but the ingest is at {}",
                                    req.ref_,
                                    writer.offset()
                                ),
                            ));
                        }
                        writer.write_all(&req.data).map_err(internal)?;
                    }
                }
            }
            if action == WriteAction::COMMIT {
                let size = u64::try_from(req.total).ok().filter(|t| *t > 0).or(total);
                let want = if req.expected.is_empty() { expected.clone() } else { Some(digest(&req.expected)?) };
                // The commit and its labels (a gc.root, say) land together, never split by a gc.
                let labels: std::collections::BTreeMap<String, String> =
                    first_labels.clone().into_iter().chain(req.labels.clone()).collect();
                let _gc = d.gc_lock.read().await;
                let meta = d.meta.clone();
                let committed = blocking(move || {
                    let digest = writer.commit(size, want.as_ref()).map_err(content_error)?;
                    if !labels.is_empty() {
                        meta.set_content_labels(&digest, &labels).map_err(internal)?;
                    }
                    Ok(digest)
                })
                .await?;
                stream
                    .send(&WriteContentResponse {
                        action: WriteAction::COMMIT.into(),
                        digest: committed.to_string(),
                        ..Default::default()
                    })
                    .await?;
                return Ok(());
            }
            stream
                .send(&WriteContentResponse {
                    action: action.into(),
                    offset: writer.offset() as i64,
                    total: total.map_or(0, |t| t as i64),
                    ..Default::default()
                })
                .await?;
            msg = stream.recv().await?;
        }
        Ok(())
    }

    async fn abort(&self, _: &TtrpcContext, req: AbortRequest) -> ttrpc::Result<Empty> {
        let d = self.0.clone();
        blocking(move || d.content.abort(&req.ref_).map_err(content_error)).await?;
        Ok(Empty::new())
    }
}
