//! containerd's event-forwarding endpoint (`containerd.services.events.ttrpc.v1.Events/Forward`),
//! served on berthd's socket, which shims are given as `TTRPC_ADDRESS`: their task events enter
//! berthd's event bus, and an OOM kill is recorded on the container.

use std::sync::Arc;

use containerd_shim_protos::api::{Empty, ForwardRequest};
use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::protobuf::Message;
use ttrpc::asynchronous::TtrpcContext;

use crate::daemon::Berthd;

pub struct ShimEventsService(pub Arc<Berthd>);

#[async_trait::async_trait]
impl containerd_shim_protos::shim_async::Events for ShimEventsService {
    async fn forward(&self, _: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let Some(envelope) = req.envelope.into_option() else { return Ok(Empty::new()) };
        let topic = envelope.topic.clone();
        let any = envelope.event.into_option().unwrap_or_default();
        let mut event = serde_json::json!({"type": any.type_url});
        if topic == "/tasks/oom" {
            if let Ok(oom) = TaskOOM::parse_from_bytes(&any.value) {
                let id = oom.container_id.clone();
                event["container_id"] = serde_json::json!(id);
                let d = self.0.clone();
                let _ =
                    tokio::task::spawn_blocking(move || d.containers.update(&id, |r| r.state.oom_killed = true)).await;
            }
        }
        // Exits, starts and deletes are published by berthd's own task code, once recorded.
        if !matches!(topic.as_str(), "/tasks/exit" | "/tasks/start" | "/tasks/delete" | "/tasks/create") {
            self.0.events.publish(&topic, event);
        }
        Ok(Empty::new())
    }
}
