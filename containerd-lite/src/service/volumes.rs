//! Volumes: the ttrpc adapter over `volume`.

use std::sync::Arc;

use berth_proto::volumes::{
    CreateVolumeRequest, GetVolumeRequest, ListVolumesRequest, ListVolumesResponse, PruneVolumesRequest,
    PruneVolumesResponse, RemoveVolumeRequest, RemoveVolumeResponse, Volume as PbVolume, VolumeResponse,
};
use ttrpc::asynchronous::TtrpcContext;
use ttrpc::Code;

use super::{blocking, internal, invalid, not_found, status};
use crate::daemon::Berthd;
use crate::volume::{self, Filters, VolumeError, VolumeRecord, LOCAL_DRIVER};

pub struct VolumesService(pub Arc<Berthd>);

/// The API's view of a record.
fn to_pb(d: &Berthd, r: &VolumeRecord, used_by: Vec<String>) -> PbVolume {
    PbVolume {
        name: r.name.clone(),
        driver: LOCAL_DRIVER.into(),
        mountpoint: d.volumes.mountpoint(&r.name).display().to_string(),
        labels: r.labels.clone().into_iter().collect(),
        options: r.options.clone().into_iter().collect(),
        created_at: r.created_at,
        scope: "local".into(),
        anonymous: r.anonymous,
        used_by,
        size: -1,
        ..Default::default()
    }
}

/// A volume failure as the API reports it.
fn volume_error(e: anyhow::Error) -> ttrpc::Error {
    match e.downcast_ref::<VolumeError>() {
        Some(VolumeError::NotFound(_)) => not_found(e),
        Some(VolumeError::InUse { .. }) => status(Code::FAILED_PRECONDITION, e),
        Some(VolumeError::Invalid(_)) => invalid(e),
        None => internal(e),
    }
}

#[async_trait::async_trait]
impl berth_proto::volumes_ttrpc::Volumes for VolumesService {
    async fn create(&self, _: &TtrpcContext, req: CreateVolumeRequest) -> ttrpc::Result<VolumeResponse> {
        let d = self.0.clone();
        blocking(move || {
            let _guard = d.volumes.lock();
            let (record, new) = d
                .volumes
                .create(
                    &req.name,
                    &req.driver,
                    req.labels.into_iter().collect(),
                    req.options.into_iter().collect(),
                    false,
                )
                .map_err(volume_error)?;
            if new {
                d.events.publish("/volumes/create", serde_json::json!({"name": record.name}));
            }
            let users = volume::users_of(&d.containers, &record.name).map_err(internal)?;
            Ok(VolumeResponse { volume: protobuf::MessageField::some(to_pb(&d, &record, users)), ..Default::default() })
        })
        .await
    }

    async fn get(&self, _: &TtrpcContext, req: GetVolumeRequest) -> ttrpc::Result<VolumeResponse> {
        let d = self.0.clone();
        blocking(move || {
            let record = d
                .volumes
                .get(&req.name)
                .map_err(internal)?
                .ok_or_else(|| volume_error(VolumeError::NotFound(req.name.clone()).into()))?;
            let users = volume::users_of(&d.containers, &record.name).map_err(internal)?;
            Ok(VolumeResponse { volume: protobuf::MessageField::some(to_pb(&d, &record, users)), ..Default::default() })
        })
        .await
    }

    async fn list(&self, _: &TtrpcContext, req: ListVolumesRequest) -> ttrpc::Result<ListVolumesResponse> {
        let d = self.0.clone();
        blocking(move || {
            let filters = Filters::parse(&req.filters).map_err(volume_error)?;
            let mut in_use = volume::names_in_use(&d.containers).map_err(internal)?;
            let volumes = d
                .volumes
                .list()
                .map_err(internal)?
                .into_iter()
                .filter_map(|r| {
                    let users = in_use.remove(&r.name).unwrap_or_default();
                    filters.matches(&r, !users.is_empty()).then(|| {
                        let mut volume = to_pb(&d, &r, users);
                        if req.with_size {
                            volume.size = i64::try_from(d.volumes.size(&r.name)).unwrap_or(i64::MAX);
                        }
                        volume
                    })
                })
                .collect();
            Ok(ListVolumesResponse { volumes, ..Default::default() })
        })
        .await
    }

    async fn remove(&self, _: &TtrpcContext, req: RemoveVolumeRequest) -> ttrpc::Result<RemoveVolumeResponse> {
        let d = self.0.clone();
        blocking(move || {
            d.volumes.remove(&d.containers, &req.name, req.force).map_err(volume_error)?;
            d.events.publish("/volumes/delete", serde_json::json!({"name": req.name}));
            Ok(RemoveVolumeResponse::default())
        })
        .await
    }

    async fn prune(&self, _: &TtrpcContext, req: PruneVolumesRequest) -> ttrpc::Result<PruneVolumesResponse> {
        let d = self.0.clone();
        blocking(move || {
            if let Some(other) = req.filters.iter().find(|f| !f.starts_with("label=")) {
                return Err(invalid(format!("Invalid filter '{}'", other.split('=').next().unwrap_or(other))));
            }
            let filters = Filters::parse(&req.filters).map_err(volume_error)?;
            let (deleted, space_reclaimed) =
                d.volumes.prune(&d.containers, |r| !filters.matches(r, false)).map_err(volume_error)?;
            for name in &deleted {
                d.events.publish("/volumes/delete", serde_json::json!({"name": name}));
            }
            Ok(PruneVolumesResponse { deleted, space_reclaimed, ..Default::default() })
        })
        .await
    }
}
