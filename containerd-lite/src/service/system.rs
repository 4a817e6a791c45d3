//! Events (subscriptions) and System (garbage collection, disk usage).

use std::sync::Arc;

use berth_proto::system::{DiskUsageResponse, Envelope, PruneResponse, SubscribeRequest};
use berth_proto::types::Empty;
use tokio::sync::broadcast::error::RecvError;
use ttrpc::asynchronous::{ServerStreamSender, TtrpcContext};

use super::{blocking, internal};
use crate::daemon::Berthd;

pub struct EventsService(pub Arc<Berthd>);
pub struct SystemService(pub Arc<Berthd>);

#[async_trait::async_trait]
impl berth_proto::system_ttrpc::Events for EventsService {
    async fn subscribe(
        &self,
        _: &TtrpcContext,
        req: SubscribeRequest,
        stream: ServerStreamSender<Envelope>,
    ) -> ttrpc::Result<()> {
        let mut rx = self.0.events.subscribe();
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if !req.filters.is_empty() && !req.filters.iter().any(|f| e.topic.starts_with(f.as_str())) {
                        continue;
                    }
                    // The subscriber went away.
                    if stream.send(&e).await.is_err() {
                        return Ok(());
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!("event subscriber lagged; {n} events dropped"),
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }
}

#[async_trait::async_trait]
impl berth_proto::system_ttrpc::System for SystemService {
    async fn prune(&self, _: &TtrpcContext, _: Empty) -> ttrpc::Result<PruneResponse> {
        let d = self.0.clone();
        let _gc = d.gc_lock.write().await;
        let d2 = d.clone();
        let stats =
            blocking(move || crate::gc::collect(&d2.meta, &d2.content, &d2.snapshots).map_err(internal)).await?;
        Ok(PruneResponse {
            blobs_removed: stats.blobs_removed as i64,
            snapshots_removed: stats.snapshots_removed as i64,
            bytes_freed: stats.bytes_freed as i64,
            ..Default::default()
        })
    }

    async fn disk_usage(&self, _: &TtrpcContext, _: Empty) -> ttrpc::Result<DiskUsageResponse> {
        let d = self.0.clone();
        blocking(move || {
            let images = d.meta.images().map_err(internal)?;
            let blobs = d.content.list().map_err(internal)?;
            let content_bytes: u64 = blobs.iter().map(|b| b.size).sum();
            let snapshots = d.snapshots.list().map_err(internal)?;
            let mut snapshot_bytes = 0;
            for s in &snapshots {
                snapshot_bytes += d.snapshots.usage(&s.key).map(|u| u.size).unwrap_or(0);
            }
            // What gc would free now: it computes its marks and removes nothing.
            let reclaimable = crate::gc::reclaimable(&d.meta, &d.content, &d.snapshots).map_err(internal)?;
            Ok(DiskUsageResponse {
                images: images.len() as i64,
                content_bytes: content_bytes as i64,
                blobs: blobs.len() as i64,
                snapshots: snapshots.len() as i64,
                snapshot_bytes: snapshot_bytes as i64,
                reclaimable_bytes: reclaimable as i64,
                ..Default::default()
            })
        })
        .await
    }
}
