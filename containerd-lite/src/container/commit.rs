//! docker's `commit` and `diff`: a container's changes as a new image, and as A/C/D lines.
//! The new image is the container's image plus one layer holding what the container's writable
//! snapshot changed, and the container's effective config (its `-e`, command, user, labels, ...)
//! as the image's.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::container::{ContainerRecord, Status};
use crate::daemon::Berthd;
use crate::diff::{Change, Layers};
use crate::image::draft::{self, Draft, History};
use crate::image::{self, Descriptor, Platform, Resolved};
use crate::store::lease::TransferLease;
use crate::store::meta::Image;
use crate::task::Tasks;

/// What `commit` is asked for besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// REPO[:TAG]; none makes an untagged image.
    pub reference: Option<String>,
    pub author: String,
    pub comment: String,
    /// Pause a running container while its layer is read (docker's default).
    pub pause: bool,
    /// The config as changed by `--change` instructions (done by the caller); none: the
    /// container's own.
    pub config: Option<Value>,
}

/// The changes of a container's writable layer; a running container is paused meanwhile (see
/// [`commit`]).
pub async fn changes(d: &Arc<Berthd>, record: &ContainerRecord) -> Result<Vec<Change>> {
    let paused = record.state.status == Status::Running;
    if paused {
        Tasks::set_paused(d, &record.id, true).await.with_context(|| format!("pausing container {}", record.name))?;
    }
    let listed = {
        let (d, key) = (d.clone(), record.snapshot_key.clone());
        tokio::task::spawn_blocking(move || {
            let (upper, lowers) = d.snapshots.layer_dirs(&key)?;
            Layers { upper: &upper, lowers: &lowers }.changes()
        })
        .await
    };
    if paused {
        if let Err(e) = Tasks::set_paused(d, &record.id, false).await {
            tracing::warn!(id = record.id, "resuming the container after its diff: {e:#}");
        }
    }
    listed?
}

/// The local image a container was made from, resolved: the image named as the container was
/// created if it still is that image, else any stored image with the same config.
pub fn base_image(d: &Berthd, record: &ContainerRecord) -> Result<Resolved> {
    let platform = Platform::host();
    let same = |i: &Image| -> Option<Resolved> {
        image::resolve(&d.content, &Descriptor::from(&i.target), &platform)
            .ok()
            .filter(|r| r.manifest.config.digest.to_string() == record.image_id)
    };
    let images = d.meta.images()?;
    if let Some(r) = images.iter().filter(|i| i.name == record.image_name).find_map(same) {
        return Ok(r);
    }
    images
        .iter()
        .find_map(same)
        .with_context(|| format!("the image of container {} ({}) is no longer stored", record.name, record.image_id))
}

/// The container's effective config as docker's `Config`: the image's, with the container's
/// command, entrypoint, environment, user, working dir, labels and stop signal.
pub fn effective_config(record: &ContainerRecord) -> Value {
    let mut config: Map<String, Value> = record.image_config["config"].as_object().cloned().unwrap_or_default();
    let c = &record.config;
    if !c.env.is_empty() {
        // docker's merge: the container's variables, then the image's it does not set.
        let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
        let mut env: Vec<String> = c.env.clone();
        let image_env = config.get("Env").and_then(Value::as_array).cloned().unwrap_or_default();
        for kv in image_env.iter().filter_map(Value::as_str) {
            if !env.iter().any(|e| key(e) == key(kv)) {
                env.push(kv.to_string());
            }
        }
        config.insert("Env".into(), json!(env));
    }
    if let Some(entrypoint) = &c.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
        if c.cmd.is_none() {
            config.insert("Cmd".into(), Value::Null);
        }
    }
    if let Some(cmd) = &c.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    for (key, value) in [("User", &c.user), ("WorkingDir", &c.working_dir), ("StopSignal", &c.stop_signal)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            config.insert(key.into(), json!(v));
        }
    }
    if !c.labels.is_empty() {
        let mut labels = config.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
        for (k, v) in &c.labels {
            labels.insert(k.clone(), json!(v));
        }
        config.insert("Labels".into(), Value::Object(labels));
    }
    let anonymous: Vec<&str> = c.mounts.iter().filter(|m| m.anonymous).map(|m| m.target.as_str()).collect();
    if !anonymous.is_empty() {
        let mut volumes = config.get("Volumes").and_then(Value::as_object).cloned().unwrap_or_default();
        for target in anonymous {
            volumes.insert(target.to_string(), json!({}));
        }
        config.insert("Volumes".into(), Value::Object(volumes));
    }
    Value::Object(config)
}

/// docker's history `created_by` of a commit: the container's command line.
fn created_by(record: &ContainerRecord) -> String {
    let config = effective_config(record);
    let words = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut argv = words("Entrypoint");
    argv.extend(words("Cmd"));
    argv.join(" ")
}

/// Commits container `arg` (id, prefix or name) as a new image; returns its record.
pub async fn commit(d: &Arc<Berthd>, arg: &str, opts: CommitOptions) -> Result<Image> {
    let record = {
        let d = d.clone();
        let arg = arg.to_string();
        tokio::task::spawn_blocking(move || d.containers.lookup(&arg)).await??
    };
    // A running container's layer is read while it is frozen: a process changing it during the
    // walk (a directory swapped for a symlink) could otherwise make the walk leave it.
    if record.state.status == Status::Running && !opts.pause {
        bail!("berth commit --pause=false: a running container is committed paused (berth reads its layer frozen)");
    }
    let lease = TransferLease::new(d, "commit").await?;
    let paused = record.state.status == Status::Running;
    if paused {
        Tasks::set_paused(d, &record.id, true).await.with_context(|| format!("pausing container {}", record.name))?;
    }
    let made = {
        let (d, record, opts) = (d.clone(), record.clone(), opts.clone());
        tokio::task::spawn_blocking(move || commit_blocking(&d, &lease, &record, &opts)).await
    };
    if paused {
        if let Err(e) = Tasks::set_paused(d, &record.id, false).await {
            tracing::warn!(id = record.id, "resuming the container after its commit: {e:#}");
        }
    }
    made?
}

fn commit_blocking(d: &Berthd, lease: &TransferLease, record: &ContainerRecord, opts: &CommitOptions) -> Result<Image> {
    if record.snapshot_key.is_empty() {
        bail!("container {} has no filesystem to commit", record.name);
    }
    let base = base_image(d, record)?;
    let mut draft = Draft::from_base(&base)?;
    let layer = draft::layer_from_snapshot(d, lease, &record.snapshot_key)?;
    let created = draft::now_rfc3339();
    let history = History {
        created: created.clone(),
        created_by: created_by(record),
        author: opts.author.clone(),
        comment: opts.comment.clone(),
    };
    draft.add_step(d, lease, layer, history)?;
    draft.config["created"] = json!(created);
    draft.config["container"] = json!(record.id);
    for (key, value) in [("author", &opts.author), ("comment", &opts.comment)] {
        if value.is_empty() {
            if let Some(m) = draft.config.as_object_mut() {
                m.remove(key);
            }
        } else {
            draft.config[key] = json!(value);
        }
    }
    draft.config["config"] = opts.config.clone().unwrap_or_else(|| effective_config(record));
    let target = draft.store(d, lease)?.manifest;
    let names: Vec<String> = opts.reference.iter().filter(|r| !r.is_empty()).cloned().collect();
    let stored = draft::name_image(d, &names, &target)?;
    stored.into_iter().map(|(_, i)| i).next().context("no image was named")
}
