//! The ttrpc services, one module each, over the shared [`Berthd`].

use std::collections::HashMap;
use std::sync::Arc;

use ttrpc::asynchronous::Service;
use ttrpc::Code;

use crate::daemon::Berthd;

mod build;
mod container_files;
mod containers;
mod content;
mod images;
mod networks;
mod shim_events;
mod snapshots;
mod system;
mod tasks;
pub mod transfer_archive;
mod version;
mod volumes;

/// Every service berthd serves, ready to register.
pub fn all(d: &Arc<Berthd>) -> Vec<HashMap<String, Service>> {
    use berth_proto::{
        build_ttrpc, containers_ttrpc, content_ttrpc, images_ttrpc, networks_ttrpc, snapshots_ttrpc, system_ttrpc,
        tasks_ttrpc, version_ttrpc, volumes_ttrpc,
    };
    vec![
        version_ttrpc::create_version(Arc::new(Box::new(version::VersionService(d.clone())) as _)),
        content_ttrpc::create_content(Arc::new(Box::new(content::ContentService(d.clone())) as _)),
        images_ttrpc::create_images(Arc::new(Box::new(images::ImagesService(d.clone())) as _)),
        images_ttrpc::create_transfer(Arc::new(Box::new(images::TransferService(d.clone())) as _)),
        snapshots_ttrpc::create_snapshots(Arc::new(Box::new(snapshots::SnapshotsService(d.clone())) as _)),
        system_ttrpc::create_events(Arc::new(Box::new(system::EventsService(d.clone())) as _)),
        system_ttrpc::create_system(Arc::new(Box::new(system::SystemService(d.clone())) as _)),
        containers_ttrpc::create_containers(Arc::new(Box::new(containers::ContainersService(d.clone())) as _)),
        tasks_ttrpc::create_tasks(Arc::new(Box::new(tasks::TasksService(d.clone())) as _)),
        build_ttrpc::create_builder(Arc::new(Box::new(build::BuilderService(d.clone())) as _)),
        volumes_ttrpc::create_volumes(Arc::new(Box::new(volumes::VolumesService(d.clone())) as _)),
        networks_ttrpc::create_networks(Arc::new(Box::new(networks::NetworksService(d.clone())) as _)),
        containerd_shim_protos::shim_async::create_events(Arc::new(
            Box::new(shim_events::ShimEventsService(d.clone())) as _,
        )),
    ]
}

/// A ttrpc error with `code` and a one-line message (the CLI prints it as is).
pub fn status(code: Code, msg: impl std::fmt::Display) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.to_string()))
}

pub fn invalid(msg: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::INVALID_ARGUMENT, msg)
}

pub fn not_found(msg: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::NOT_FOUND, msg)
}

/// An internal failure, with its whole context chain on one line.
pub fn internal(e: impl Into<anyhow::Error>) -> ttrpc::Error {
    let e = e.into();
    let msg = one_line(&e);
    tracing::warn!("{msg}");
    status(Code::INTERNAL, msg)
}

/// An error and its causes as one line, `what: why: root cause`. A cause whose text the line
/// already ends with (an error that prints its source and also returns it as its source) is
/// not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T, F>(f: F) -> ttrpc::Result<T>
where
    F: FnOnce() -> ttrpc::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_does_not_repeat_a_cause_already_printed() {
        #[derive(Debug, thiserror::Error)]
        #[error("writing x: {0}")]
        struct Printed(#[source] std::io::Error);
        let e = anyhow::Error::new(Printed(std::io::Error::from_raw_os_error(28))).context("layer y");
        assert_eq!(super::one_line(&e), "layer y: writing x: No space left on device (os error 28)");
    }
}
