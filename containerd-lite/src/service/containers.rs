//! Containers: the ttrpc adapter over `container` (records, create) and `task` (removal of a
//! running container).

use std::sync::Arc;

use berth_proto::container_config::{CreateConfig, UpdateConfig};
use berth_proto::containers::{
    ArchiveChunk, ArchivePathRequest, ExportContainerRequest, ExtractToDirRequest, ExtractToDirResponse,
    StatPathRequest, StatPathResponse,
};
use berth_proto::containers::{
    Container as PbContainer, ContainerResponse, ContainerState as PbState, CreateContainerRequest,
    DeleteContainerRequest, DeleteContainerResponse, GetContainerRequest, ListContainersRequest,
    ListContainersResponse, RenameContainerRequest, UpdateContainerRequest,
};
use ttrpc::asynchronous::{ServerStreamReceiver, ServerStreamSender, TtrpcContext};
use ttrpc::Code;

use super::{blocking, internal, invalid, not_found, status};
use crate::container::create::{self, log_path};
use crate::container::{ContainerRecord, LookupError, Status};
use crate::daemon::Berthd;
use crate::image::Platform;
use crate::task::Tasks;

pub struct ContainersService(pub Arc<Berthd>);

/// The API's view of a record.
pub fn to_pb(d: &Berthd, r: &ContainerRecord) -> PbContainer {
    PbContainer {
        id: r.id.clone(),
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: r.image_id.clone(),
        spec: serde_json::to_vec(&r.spec).unwrap_or_default(),
        snapshot_key: r.snapshot_key.clone(),
        runtime: r.runtime.clone(),
        labels: r.labels.clone().into_iter().collect(),
        config: serde_json::to_vec(&r.config).unwrap_or_default(),
        created_at: r.created_at,
        image_config: serde_json::to_vec(&r.image_config).unwrap_or_default(),
        network_settings: serde_json::to_vec(&crate::network::attach::network_settings(d, r)).unwrap_or_default(),
        state: protobuf::MessageField::some(PbState {
            status: r.state.status.as_str().into(),
            pid: r.state.pid,
            exit_code: r.state.exit_code,
            oom_killed: r.state.oom_killed,
            started_at: r.state.started_at,
            finished_at: r.state.finished_at,
            error: r.state.error.clone(),
            restart_count: r.state.restart_count,
            log_path: log_path(d, &r.id).display().to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A lookup failure as the API reports it.
pub fn lookup_error(e: anyhow::Error) -> ttrpc::Error {
    match e.downcast_ref::<LookupError>() {
        Some(LookupError::NotFound(_)) => not_found(e),
        Some(LookupError::Ambiguous(_)) => invalid(e),
        None => internal(e),
    }
}

/// The record `arg` names (id, prefix or name).
pub async fn lookup(d: &Arc<Berthd>, arg: &str) -> ttrpc::Result<ContainerRecord> {
    let (d, arg) = (d.clone(), arg.to_string());
    blocking(move || d.containers.lookup(&arg).map_err(lookup_error)).await
}

fn response(d: &Berthd, r: &ContainerRecord) -> ContainerResponse {
    ContainerResponse { container: protobuf::MessageField::some(to_pb(d, r)), ..Default::default() }
}

#[async_trait::async_trait]
impl berth_proto::containers_ttrpc::Containers for ContainersService {
    async fn create(&self, _: &TtrpcContext, req: CreateContainerRequest) -> ttrpc::Result<ContainerResponse> {
        let d = self.0.clone();
        let config: CreateConfig =
            serde_json::from_slice(&req.config).map_err(|e| invalid(format!("decoding the create config: {e}")))?;
        if config.image.is_empty() {
            return Err(invalid("no image given"));
        }
        crate::task::log::Rotation::from_opts(&config.log_opts).map_err(invalid)?;
        let platform = match config.platform.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => p.parse::<Platform>().map_err(invalid)?,
            None => Platform::host(),
        };
        let pull = config.pull.clone().unwrap_or_else(|| "missing".into());
        if !["missing", "always", "never"].contains(&pull.as_str()) {
            return Err(invalid(format!(
                "invalid pull option: {pull:?}: must be one of \"always\", \"missing\" or \"never\""
            )));
        }
        let find = || {
            let (d, image, platform) = (d.clone(), config.image.clone(), platform.clone());
            blocking(move || create::find_image(&d, &image, &platform).map_err(internal))
        };
        let mut image = if pull == "always" { None } else { find().await? };
        if image.is_none() {
            if pull == "never" {
                return Err(not_found(format!("No such image: {}", config.image)));
            }
            crate::image::pull::pull(&d, &config.image, &platform, &crate::image::pull::Reporter::none())
                .await
                .map_err(|e| {
                    let msg = super::one_line(&e);
                    if msg.contains("not found") || msg.contains("unknown") || msg.contains("MANIFEST_UNKNOWN") {
                        not_found(format!("No such image: {} ({msg})", config.image))
                    } else {
                        internal(e)
                    }
                })?;
            image = find().await?;
        }
        if image.is_none() {
            return Err(not_found(format!("No such image: {}", config.image)));
        }
        // No gc between finding the image and the record that keeps its layers (the container's
        // active snapshot): a concurrent rmi or prune could otherwise remove them.
        let _gc = d.gc_lock.read().await;
        let image = find().await?.ok_or_else(|| not_found(format!("No such image: {}", config.image)))?;
        let init = d.cfg.init_binary();
        let record = {
            let d = d.clone();
            blocking(move || {
                create::create(&d, config, &image, init.as_deref()).map_err(|e| {
                    let msg = super::one_line(&e);
                    if msg.contains("is already in use") {
                        status(Code::ALREADY_EXISTS, msg)
                    } else {
                        invalid(msg)
                    }
                })
            })
            .await?
        };
        d.events.publish(
            "/containers/create",
            serde_json::json!({"id": record.id, "image": record.image, "name": record.name}),
        );
        Ok(response(&d, &record))
    }

    async fn get(&self, _: &TtrpcContext, req: GetContainerRequest) -> ttrpc::Result<ContainerResponse> {
        let record = lookup(&self.0, &req.id).await?;
        Ok(response(&self.0, &record))
    }

    async fn list(&self, _: &TtrpcContext, req: ListContainersRequest) -> ttrpc::Result<ListContainersResponse> {
        let d = self.0.clone();
        blocking(move || {
            let mut records = d.containers.list().map_err(internal)?;
            if !req.all {
                records.retain(|r| matches!(r.state.status, Status::Running | Status::Paused | Status::Restarting));
            }
            records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
            Ok(ListContainersResponse {
                containers: records.iter().map(|r| to_pb(&d, r)).collect(),
                ..Default::default()
            })
        })
        .await
    }

    async fn rename(&self, _: &TtrpcContext, req: RenameContainerRequest) -> ttrpc::Result<ContainerResponse> {
        let d = self.0.clone();
        let record = lookup(&d, &req.id).await?;
        let name = req.name.strip_prefix('/').unwrap_or(&req.name).to_string();
        crate::container::validate_name(&name).map_err(invalid)?;
        if name == record.name {
            return Err(invalid("Renaming a container with the same name as its current name"));
        }
        let updated = {
            let d = d.clone();
            blocking(move || {
                d.containers
                    .update(&record.id, |r| r.name = name)
                    .map_err(|e| status(Code::ALREADY_EXISTS, super::one_line(&e)))
            })
            .await?
        };
        d.events.publish("/containers/rename", serde_json::json!({"id": updated.id, "name": updated.name}));
        Ok(response(&d, &updated))
    }

    async fn update(&self, _: &TtrpcContext, req: UpdateContainerRequest) -> ttrpc::Result<ContainerResponse> {
        let d = self.0.clone();
        let update: UpdateConfig =
            serde_json::from_slice(&req.update).map_err(|e| invalid(format!("decoding the update: {e}")))?;
        let record = lookup(&d, &req.id).await?;
        let updated =
            crate::task::update::update(&d, &record, &update).await.map_err(|e| invalid(super::one_line(&e)))?;
        d.events.publish("/containers/update", serde_json::json!({"id": updated.id}));
        Ok(response(&d, &updated))
    }

    async fn delete(&self, _: &TtrpcContext, req: DeleteContainerRequest) -> ttrpc::Result<DeleteContainerResponse> {
        let d = self.0.clone();
        let record = lookup(&d, &req.id).await?;
        Tasks::remove(&d, &record.id, req.force, req.volumes).await.map_err(|e| {
            let msg = super::one_line(&e);
            if msg.contains("You cannot remove a running container") {
                status(Code::FAILED_PRECONDITION, msg)
            } else {
                internal(e)
            }
        })?;
        Ok(DeleteContainerResponse { id: record.id, ..Default::default() })
    }

    // --- Files of a container (cp, export): see container_files.

    async fn stat_path(&self, _: &TtrpcContext, req: StatPathRequest) -> ttrpc::Result<StatPathResponse> {
        super::container_files::stat_path(self.0.clone(), req).await
    }

    async fn archive_path(
        &self,
        _: &TtrpcContext,
        req: ArchivePathRequest,
        stream: ServerStreamSender<ArchiveChunk>,
    ) -> ttrpc::Result<()> {
        super::container_files::archive_path(self.0.clone(), req, stream).await
    }

    async fn extract_to_dir(
        &self,
        _: &TtrpcContext,
        stream: ServerStreamReceiver<ExtractToDirRequest>,
    ) -> ttrpc::Result<ExtractToDirResponse> {
        super::container_files::extract_to_dir(self.0.clone(), stream).await
    }

    async fn export(
        &self,
        _: &TtrpcContext,
        req: ExportContainerRequest,
        stream: ServerStreamSender<ArchiveChunk>,
    ) -> ttrpc::Result<()> {
        super::container_files::export(self.0.clone(), req, stream).await
    }
}
