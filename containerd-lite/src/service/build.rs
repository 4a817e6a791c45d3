//! Builder: the ttrpc adapter over `container::commit` (commit, diff), `image::import`
//! (a filesystem tar as an image) and `build` (Dockerfiles).

use std::sync::Arc;

use berth_proto::build::{
    BuildInput, BuildOutput, Change as PbChange, CommitRequest, CommitResponse, DiffRequest, DiffResponse,
    ImportFilesystemInput,
};
use ttrpc::asynchronous::{ServerStream, ServerStreamReceiver, TtrpcContext};

use super::containers::lookup_error;
use super::{blocking, internal, invalid};
use crate::container::commit::{self, CommitOptions};
use crate::container::LookupError;
use crate::daemon::Berthd;
use crate::image::reference::ReferenceError;

pub struct BuilderService(pub Arc<Berthd>);

/// A failure as the API reports it: unknown containers are NOT_FOUND, bad references and
/// instructions INVALID_ARGUMENT.
fn error(e: anyhow::Error) -> ttrpc::Error {
    if let Some(failed) = e.downcast_ref::<crate::build::StepFailed>() {
        super::status(ttrpc::Code::ABORTED, failed)
    } else if e.downcast_ref::<LookupError>().is_some() {
        lookup_error(e)
    } else if e.chain().any(|c| c.is::<ReferenceError>() || c.is::<crate::build::Invalid>()) {
        invalid(super::one_line(&e))
    } else {
        internal(e)
    }
}

#[async_trait::async_trait]
impl berth_proto::build_ttrpc::Builder for BuilderService {
    async fn commit(&self, _: &TtrpcContext, req: CommitRequest) -> ttrpc::Result<CommitResponse> {
        let config = if req.changes.is_empty() {
            None
        } else {
            let (d, id, changes) = (self.0.clone(), req.container.clone(), req.changes.clone());
            let config = blocking(move || {
                let record = d.containers.lookup(&id).map_err(error)?;
                crate::build::changes::apply_changes(commit::effective_config(&record), &changes).map_err(error)
            })
            .await?;
            Some(config)
        };
        let opts = CommitOptions {
            reference: Some(req.reference).filter(|r| !r.is_empty()),
            author: req.author,
            comment: req.comment,
            pause: req.pause,
            config,
        };
        let image = commit::commit(&self.0, &req.container, opts).await.map_err(error)?;
        response(&self.0, &image).await
    }

    async fn diff(&self, _: &TtrpcContext, req: DiffRequest) -> ttrpc::Result<DiffResponse> {
        let (d, id) = (self.0.clone(), req.container.clone());
        let record = blocking(move || d.containers.lookup(&id).map_err(error)).await?;
        let changes = commit::changes(&self.0, &record).await.map_err(error)?;
        Ok(DiffResponse {
            changes: changes
                .into_iter()
                .map(|c| PbChange { kind: c.kind.letter().into(), path: c.path, ..Default::default() })
                .collect(),
            ..Default::default()
        })
    }

    async fn import_filesystem(
        &self,
        _: &TtrpcContext,
        stream: ServerStreamReceiver<ImportFilesystemInput>,
    ) -> ttrpc::Result<CommitResponse> {
        let image = crate::image::import::import_filesystem(&self.0, stream).await.map_err(error)?;
        response(&self.0, &image).await
    }

    async fn build(&self, _: &TtrpcContext, stream: ServerStream<BuildOutput, BuildInput>) -> ttrpc::Result<()> {
        crate::build::run(&self.0, stream).await.map_err(error)
    }
}

/// The reply naming a new image and its id.
async fn response(d: &Arc<Berthd>, image: &crate::store::meta::Image) -> ttrpc::Result<CommitResponse> {
    let (d, target) = (d.clone(), image.target.clone());
    let image_id = blocking(move || {
        crate::image::resolve(&d.content, &(&target).into(), &crate::image::Platform::host())
            .map(|r| r.manifest.config.digest.to_string())
            .map_err(internal)
    })
    .await?;
    Ok(CommitResponse {
        image: protobuf::MessageField::some(super::images::to_pb(image)),
        image_id,
        ..Default::default()
    })
}
