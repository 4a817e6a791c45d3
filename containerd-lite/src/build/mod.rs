//! `berth build`: Dockerfiles parsed (`dockerfile`, `shell_lex`), their context received
//! (`context`), their steps run (`engine`: RUN through berthd's own container path, COPY/ADD/WORKDIR
//! layers written directly in `copy`, config instructions in `changes`) and cached (`cache`).

pub mod cache;
pub mod changes;
pub mod context;
mod copy;
pub mod dockerfile;
mod engine;
pub mod shell_lex;

use std::sync::Arc;

use anyhow::anyhow;
use berth_proto::build::{BuildInput, BuildOutput};
use berth_proto::build_options::BuildOptions;
use ttrpc::asynchronous::ServerStream;

use crate::daemon::Berthd;

/// Something in the user's input is wrong: the Dockerfile, the options, the context, a failing
/// RUN. The API reports it as INVALID_ARGUMENT, with this text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The label of the containers RUN steps run in (its value: the step number).
pub const STEP_LABEL: &str = "berth.build.step";

/// Clears what builds a killed berthd was running left: their RUN containers (removed, running
/// or not), mounted views of their stages and their context directories. No build runs yet.
pub async fn recover(d: &Arc<Berthd>) -> anyhow::Result<()> {
    let records = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || d.containers.list()).await??
    };
    for record in records.into_iter().filter(|r| r.labels.contains_key(STEP_LABEL)) {
        tracing::info!(container = record.id, "removing the container of an interrupted build step");
        if let Err(e) = crate::task::Tasks::remove(d, &record.id, true, true).await {
            tracing::warn!(container = record.id, "removing an interrupted build's container: {e:#}");
        }
    }
    let d = d.clone();
    tokio::task::spawn_blocking(move || copy::clear_leftovers(&d)).await?
}

/// A build step failed (a RUN's command exited non-zero): reported as docker reports it, as the
/// build's last words rather than as a daemon error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StepFailed(pub String);

/// Serves one Builder.Build call: options, then the context, then the build with its output
/// streamed; the last message names the image.
pub async fn run(d: &Arc<Berthd>, mut stream: ServerStream<BuildOutput, BuildInput>) -> anyhow::Result<()> {
    let _activity = crate::memory::activity();
    let first = stream
        .recv()
        .await
        .map_err(|e| anyhow!("receiving the build options: {e}"))?
        .ok_or_else(|| Invalid("no build options were sent".into()))?;
    let opts: BuildOptions =
        serde_json::from_slice(&first.options).map_err(|e| Invalid(format!("bad build options: {e}")))?;
    let context = match opts.context_key.as_deref() {
        Some(key) => context::receive_kept(d, key, &mut stream).await?,
        None => context::receive_tar(d, first.data, &mut stream).await?,
    };
    let output = &stream;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let log = engine::Log { tx, quiet: opts.quiet };
    let build = async {
        let built = engine::build(d, &opts, &context, &log).await;
        drop(log);
        built
    };
    let forward = async {
        // A client gone does not stop the build here; its output is dropped.
        let mut client_gone = false;
        while let Some(chunk) = rx.recv().await {
            if !client_gone {
                client_gone = output.send(&BuildOutput { stream: chunk, ..Default::default() }).await.is_err();
            }
        }
    };
    let (built, ()) = tokio::join!(build, forward);
    drop(context);
    let built = built?;
    output
        .send(&BuildOutput { image_id: built.image_id, tags: built.tags, ..Default::default() })
        .await
        .map_err(|e| anyhow!("sending the result: {e}"))?;
    Ok(())
}
