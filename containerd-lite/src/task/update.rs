//! `berth update`: new limits and restart policy in the record (config and spec), and for a
//! running container in its cgroup, through the shim's Update.

use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::container_config::UpdateConfig;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;

use super::shim::ctx;
use super::{shim_error, CALL_TIMEOUT};
use crate::container::spec;
use crate::container::ContainerRecord;
use crate::daemon::Berthd;

/// Applies `update` to `record`'s container and returns the new record.
pub async fn update(d: &Arc<Berthd>, record: &ContainerRecord, update: &UpdateConfig) -> Result<ContainerRecord> {
    let mut config = record.config.clone();
    if let Some(m) = update.memory {
        config.memory = Some(m);
        // A new memory limit without a new swap limit keeps docker's memory-and-as-much-swap.
        if update.memory_swap.is_none() && config.memory_swap.is_some_and(|s| s > 0 && s < m) {
            config.memory_swap = None;
        }
    }
    if update.memory_swap.is_some() {
        config.memory_swap = update.memory_swap;
    }
    if update.nano_cpus.is_some() {
        config.nano_cpus = update.nano_cpus;
    }
    if update.cpu_shares.is_some() {
        config.cpu_shares = update.cpu_shares;
    }
    if update.cpuset_cpus.is_some() {
        config.cpuset_cpus = update.cpuset_cpus.clone();
    }
    if update.pids_limit.is_some() {
        config.pids_limit = update.pids_limit;
    }
    if let Some(p) = &update.restart_policy {
        if config.auto_remove && !matches!(p.name.as_str(), "" | "no") {
            anyhow::bail!("Restart policy cannot be updated because AutoRemove is enabled for the container");
        }
        config.restart_policy = p.clone();
    }
    let mut resources = spec::resources(
        config.memory,
        config.memory_swap,
        config.nano_cpus,
        config.cpu_shares,
        config.cpuset_cpus.as_deref(),
        config.pids_limit,
    )?;
    let mut new_spec = record.spec.clone();
    // Device rules stay as they were.
    resources["devices"] = new_spec["linux"]["resources"]["devices"].clone();
    new_spec["linux"]["resources"] = resources.clone();
    if let Some(task) = d.tasks.get(&record.id) {
        let mut live = resources.clone();
        if let Some(o) = live.as_object_mut() {
            o.remove("devices");
        }
        let any = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: serde_json::to_vec(&live).context("encoding resources")?,
            ..Default::default()
        };
        let req = api::UpdateTaskRequest {
            id: record.id.clone(),
            resources: containerd_shim_protos::protobuf::MessageField::some(any),
            ..Default::default()
        };
        task.client.update(ctx(CALL_TIMEOUT), &req).await.map_err(|e| shim_error("Cannot update container", e))?;
    }
    d.containers.update(&record.id, |r| {
        r.config = config;
        r.spec = new_spec;
    })
}
