use std::sync::Arc;

use berth_proto::types::Empty;
use berth_proto::version::VersionResponse;
use ttrpc::asynchronous::TtrpcContext;

use crate::daemon::Berthd;

pub struct VersionService(pub Arc<Berthd>);

#[async_trait::async_trait]
impl berth_proto::version_ttrpc::Version for VersionService {
    async fn version(&self, _: &TtrpcContext, _: Empty) -> ttrpc::Result<VersionResponse> {
        Ok(VersionResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: option_env!("BERTH_REVISION").unwrap_or("").into(),
            root: self.0.cfg.root.display().to_string(),
            state: self.0.cfg.state.display().to_string(),
            pid: std::process::id(),
            ..Default::default()
        })
    }
}
