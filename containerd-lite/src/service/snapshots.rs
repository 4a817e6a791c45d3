//! The Snapshots service (one snapshotter: overlayfs).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_proto::snapshots::{
    CommitSnapshotRequest, Kind as PbKind, ListSnapshotsRequest, ListSnapshotsResponse, MountsResponse,
    PrepareSnapshotRequest, SnapshotInfo, SnapshotKeyRequest, UpdateSnapshotRequest, UsageResponse,
};
use berth_proto::types::{Empty, Mount as PbMount};
use ttrpc::asynchronous::{ServerStreamSender, TtrpcContext};

use super::{blocking, internal, invalid, not_found};
use crate::daemon::Berthd;
use crate::events::nanos;
use crate::store::snapshot::{Info, Kind, Mount, SnapshotError};

pub struct SnapshotsService(pub Arc<Berthd>);

const SNAPSHOTTER: &str = "overlayfs";

fn check(snapshotter: &str) -> ttrpc::Result<()> {
    if snapshotter.is_empty() || snapshotter == SNAPSHOTTER {
        Ok(())
    } else {
        Err(invalid(format!("snapshotter {snapshotter:?} not supported (berthd has \"overlayfs\")")))
    }
}

fn snapshot_error(e: SnapshotError) -> ttrpc::Error {
    match e {
        SnapshotError::NotFound { .. } | SnapshotError::ParentNotFound { .. } => not_found(e),
        SnapshotError::AlreadyExists { .. } => super::status(ttrpc::Code::ALREADY_EXISTS, e),
        SnapshotError::InvalidKey { .. } => invalid(e),
        e => super::status(ttrpc::Code::FAILED_PRECONDITION, e),
    }
}

fn mounts(ms: Vec<Mount>) -> MountsResponse {
    MountsResponse {
        mounts: ms
            .into_iter()
            .map(|m| PbMount { type_: m.kind, source: m.source, options: m.options, ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

fn info_pb(i: Info) -> SnapshotInfo {
    SnapshotInfo {
        name: i.key,
        parent: i.parent.unwrap_or_default(),
        kind: match i.kind {
            Kind::View => PbKind::VIEW,
            Kind::Active => PbKind::ACTIVE,
            Kind::Committed => PbKind::COMMITTED,
        }
        .into(),
        created_at: nanos(i.created),
        updated_at: nanos(i.updated),
        labels: i.labels.into_iter().collect(),
        ..Default::default()
    }
}

fn parent(p: &str) -> Option<String> {
    (!p.is_empty()).then(|| p.to_string())
}

#[async_trait::async_trait]
impl berth_proto::snapshots_ttrpc::Snapshots for SnapshotsService {
    async fn prepare(&self, _: &TtrpcContext, req: PrepareSnapshotRequest) -> ttrpc::Result<MountsResponse> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || {
            let labels: BTreeMap<_, _> = req.labels.into_iter().collect();
            d.snapshots.prepare(&req.key, parent(&req.parent).as_deref(), labels).map(mounts).map_err(snapshot_error)
        })
        .await
    }

    async fn view(&self, _: &TtrpcContext, req: PrepareSnapshotRequest) -> ttrpc::Result<MountsResponse> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || {
            let labels: BTreeMap<_, _> = req.labels.into_iter().collect();
            d.snapshots.view(&req.key, parent(&req.parent).as_deref(), labels).map(mounts).map_err(snapshot_error)
        })
        .await
    }

    async fn mounts(&self, _: &TtrpcContext, req: SnapshotKeyRequest) -> ttrpc::Result<MountsResponse> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || d.snapshots.mounts(&req.key).map(mounts).map_err(snapshot_error)).await
    }

    async fn commit(&self, _: &TtrpcContext, req: CommitSnapshotRequest) -> ttrpc::Result<Empty> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || {
            d.snapshots.commit(&req.name, &req.key, req.labels.into_iter().collect()).map_err(snapshot_error)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn remove(&self, _: &TtrpcContext, req: SnapshotKeyRequest) -> ttrpc::Result<Empty> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || {
            d.snapshots.remove(&req.key).map_err(snapshot_error)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn stat(&self, _: &TtrpcContext, req: SnapshotKeyRequest) -> ttrpc::Result<SnapshotInfo> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || d.snapshots.stat(&req.key).map(info_pb).map_err(snapshot_error)).await
    }

    async fn update(&self, _: &TtrpcContext, req: UpdateSnapshotRequest) -> ttrpc::Result<SnapshotInfo> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        let info = req.info.into_option().ok_or_else(|| invalid("update: no snapshot info"))?;
        blocking(move || {
            d.snapshots
                .update_labels(&info.name, info.labels.into_iter().collect())
                .map(info_pb)
                .map_err(snapshot_error)
        })
        .await
    }

    async fn list(
        &self,
        _: &TtrpcContext,
        req: ListSnapshotsRequest,
        stream: ServerStreamSender<ListSnapshotsResponse>,
    ) -> ttrpc::Result<()> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        let infos = blocking(move || d.snapshots.list().map_err(internal)).await?;
        let infos: Vec<SnapshotInfo> = infos.into_iter().map(info_pb).collect();
        for batch in infos.chunks(100) {
            stream.send(&ListSnapshotsResponse { info: batch.to_vec(), ..Default::default() }).await?;
        }
        Ok(())
    }

    async fn usage(&self, _: &TtrpcContext, req: SnapshotKeyRequest) -> ttrpc::Result<UsageResponse> {
        check(&req.snapshotter)?;
        let d = self.0.clone();
        blocking(move || {
            let u = d.snapshots.usage(&req.key).map_err(snapshot_error)?;
            Ok(UsageResponse { size: u.size as i64, inodes: u.inodes as i64, ..Default::default() })
        })
        .await
    }
}
