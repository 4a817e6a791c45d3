//! Events (subscriptions) and System (garbage collection, disk usage).

use std::sync::Arc;

use berth_proto::system::{
    DiskUsageResponse, Envelope, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, PruneResponse,
    SubscribeRequest,
};
use berth_proto::types::Empty;
use tokio::sync::broadcast::error::RecvError;
use ttrpc::asynchronous::{ServerStreamSender, TtrpcContext};

use super::{blocking, internal, invalid, status};
use crate::daemon::Berthd;
use crate::image::registry::{auth_key_registry, RegistryError};

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
        let wanted =
            |e: &Envelope| req.filters.is_empty() || req.filters.iter().any(|f| e.topic.starts_with(f.as_str()));
        let before_until = |e: &Envelope| req.until <= 0 || e.timestamp <= req.until;
        let (past, mut rx) = if req.since > 0 {
            self.0.events.subscribe_since(req.since)
        } else {
            (Vec::new(), self.0.events.subscribe())
        };
        for e in past.iter().filter(|e| wanted(e) && before_until(e)) {
            // The subscriber went away.
            if stream.send(e).await.is_err() {
                return Ok(());
            }
        }
        let until = (req.until > 0).then(|| {
            let wait = req.until.saturating_sub(crate::events::now_nanos()).max(0);
            tokio::time::Instant::now() + std::time::Duration::from_nanos(wait as u64)
        });
        loop {
            let received = match until {
                Some(deadline) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(received) => received,
                    Err(_) => return Ok(()),
                },
                None => rx.recv().await,
            };
            match received {
                Ok(e) if !before_until(&e) => return Ok(()),
                Ok(e) => {
                    if !wanted(&e) {
                        continue;
                    }
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
        let stats = blocking(move || {
            // Build cache entries no image builds on go first, so gc takes what only they held.
            let dropped = crate::build::cache::prune_unreferenced(&d2).map_err(internal)?;
            if dropped > 0 {
                tracing::info!(entries = dropped, "build cache entries dropped");
            }
            let contexts = crate::build::context::prune_kept(&d2);
            if contexts > 0 {
                tracing::info!(contexts, "kept build contexts removed");
            }
            crate::store::gc::collect(&d2.meta, &d2.content, &d2.snapshots).map_err(internal)
        })
        .await?;
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
            let reclaimable = crate::store::gc::reclaimable(&d.meta, &d.content, &d.snapshots).map_err(internal)?;
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

    async fn login(&self, _: &TtrpcContext, req: LoginRequest) -> ttrpc::Result<LoginResponse> {
        let registry = registry_of(&req.server)?;
        if req.username.is_empty() || req.password.is_empty() {
            return Err(invalid("Username and password are required"));
        }
        self.0.registry.login(&registry, &req.username, &req.password).await.map_err(login_error)?;
        Ok(LoginResponse { registry, ..Default::default() })
    }

    async fn logout(&self, _: &TtrpcContext, req: LogoutRequest) -> ttrpc::Result<LogoutResponse> {
        let registry = registry_of(&req.server)?;
        let removed = self.0.registry.logout(&registry).map_err(internal)?;
        Ok(LogoutResponse { registry, removed, ..Default::default() })
    }
}

/// The registry a login server names, as the auth file's keys are read (empty: Docker Hub).
fn registry_of(server: &str) -> ttrpc::Result<String> {
    let server = if server.is_empty() { "docker.io" } else { server };
    let registry = auth_key_registry(server);
    if registry.is_empty() || registry.contains(char::is_whitespace) {
        return Err(invalid(format!("invalid registry address {server:?}")));
    }
    Ok(registry)
}

/// Rejected credentials are the client's to fix; an unreachable registry is not berthd's fault.
fn login_error(e: RegistryError) -> ttrpc::Error {
    match e {
        RegistryError::LoginFailed { .. } => status(ttrpc::Code::UNAUTHENTICATED, e),
        RegistryError::Unreachable { .. } => status(ttrpc::Code::UNAVAILABLE, e),
        other => internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_servers_name_registries_as_the_auth_file_does() {
        assert_eq!(registry_of("").unwrap(), "docker.io");
        assert_eq!(registry_of("https://index.docker.io/v1/").unwrap(), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(registry_of("http://127.0.0.1:5000/v2/").unwrap(), "127.0.0.1:5000");
        assert!(registry_of("bad host").is_err());
    }
}
