//! Creating a container: resolve (or pull) the image, prepare its writable snapshot, resolve the
//! user against the image's files, write /etc/hostname, /etc/hosts and /etc/resolv.conf, generate
//! the spec and store the record. A failure at any step removes what the earlier ones made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_proto::container_config::CreateConfig;

use super::spec::{self, ImageRuntimeConfig, SpecInputs};
use super::user::{self, ImageFiles};
use super::{names, ContainerRecord, ContainerState, Status, DEFAULT_RUNTIME};
use crate::daemon::Berthd;
use crate::image::reference::Reference;
use crate::image::{self, Descriptor, Platform};
use crate::network::etc_files::{self, ContainerNet, Resolution};
use crate::network::{attach, Endpoint};
use crate::store::meta::Image;

/// The snapshot label that keeps the image config a container was made from (gc follows it).
const CONFIG_REF_LABEL: &str = "containerd.io/gc.ref.content.config";

/// Where a container's files live: `<root>/containers/<id>` (logs, generated /etc files).
pub fn container_dir(d: &Berthd, id: &str) -> PathBuf {
    d.cfg.root.join("containers").join(id)
}

/// The container's json-file log.
pub fn log_path(d: &Berthd, id: &str) -> PathBuf {
    container_dir(d, id).join(format!("{id}-json.log"))
}

/// A local image by name, full id (`sha256:…` or bare hex) or unique id prefix.
pub fn find_image(d: &Berthd, arg: &str, platform: &Platform) -> Result<Option<Image>> {
    if let Ok(r) = Reference::parse(arg) {
        if let Some(image) = d.meta.image(&r.to_string())? {
            return Ok(Some(image));
        }
    }
    let hex = arg.strip_prefix("sha256:").unwrap_or(arg);
    if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut found: Option<(String, Image)> = None;
    for image in d.meta.images()? {
        let Ok(r) = image::resolve(&d.content, &Descriptor::from(&image.target), platform) else { continue };
        let id = r.manifest.config.digest.to_string();
        if id.trim_start_matches("sha256:").starts_with(hex) {
            match &found {
                Some((other, _)) if *other != id => bail!("multiple images found with provided prefix: {arg}"),
                _ => found = Some((id, image)),
            }
        }
    }
    Ok(found.map(|(_, image)| image))
}

/// The shim a `--runtime` value names.
pub fn runtime_name(requested: Option<&str>) -> Result<String> {
    Ok(match requested.unwrap_or("") {
        "" | "berth" => DEFAULT_RUNTIME.to_string(),
        "runc" => "io.containerd.runc.v2".to_string(),
        name if name.starts_with("io.containerd.")
            && name.split('.').count() == 4
            && name
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) =>
        {
            name.to_string()
        }
        other => bail!("unknown or invalid runtime name: {other}"),
    })
}

/// The network a new container gets: its `--network` as stored, its endpoints and, for
/// `container:`, the container whose /etc files and hostname it shares.
struct NetworkChoice {
    mode: String,
    endpoints: BTreeMap<String, Endpoint>,
    shares: Option<ContainerRecord>,
}

/// Resolves `--network` (docker's default when unset), `--ip` and `--network-alias`.
fn choose_network(d: &Berthd, config: &CreateConfig) -> Result<NetworkChoice> {
    let wanted = config.network.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| d.networks.default_mode().into());
    let mut choice = NetworkChoice { mode: wanted.clone(), endpoints: BTreeMap::new(), shares: None };
    let user_defined = |name: &str| !matches!(name, "bridge" | "host" | "none");
    if let Some(other) = wanted.strip_prefix("container:") {
        if config.hostname.is_some() {
            bail!("conflicting options: hostname and the network mode");
        }
        let target = d.containers.lookup(other)?;
        choice.mode = format!("container:{}", target.id);
        choice.shares = Some(target);
    } else {
        let net = d.networks.store.lookup(&wanted)?;
        choice.mode = net.name.clone();
        if net.driver == crate::network::store::BRIDGE {
            let mut ep =
                attach::new_endpoint(&choice.endpoints, &net, config.ip.clone(), config.network_aliases.clone())?;
            ep.mac_config = config.mac_address.clone();
            choice.endpoints.insert(net.name.clone(), ep);
        }
        if !user_defined(&net.name) && !config.network_aliases.is_empty() {
            bail!("network-scoped alias is supported only for containers in user defined networks");
        }
    }
    if config.mac_address.is_some() && choice.endpoints.is_empty() {
        bail!("conflicting options: mac-address and the network mode");
    }
    if config.ip.is_some() && choice.endpoints.is_empty() {
        bail!("user specified IP address is supported on user defined networks only");
    }
    if choice.shares.is_some() && !config.network_aliases.is_empty() {
        bail!("network-scoped alias is supported only for containers in user defined networks");
    }
    if choice.shares.is_some() && (!config.publish.is_empty() || config.publish_all) {
        bail!("conflicting options: port publishing and the container type network mode");
    }
    Ok(choice)
}

/// What is made step by step, removed again unless [`Undo::disarm`]ed.
struct Undo<'a> {
    d: &'a Berthd,
    snapshot: Option<String>,
    dir: Option<PathBuf>,
    /// Volumes made for this container.
    volumes: Vec<String>,
}

impl Undo<'_> {
    fn disarm(mut self) {
        self.snapshot = None;
        self.dir = None;
        self.volumes.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.volumes.is_empty() {
            for name in self.d.volumes.remove_unused_among(&self.d.containers, &self.volumes, false) {
                self.d.events.publish("/volumes/delete", serde_json::json!({"name": name}));
            }
        }
        if let Some(key) = self.snapshot.take() {
            if let Err(e) = self.d.snapshots.remove(&key) {
                tracing::warn!(key, "removing the snapshot of a failed create: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), "removing the directory of a failed create: {e}");
            }
        }
    }
}

/// The paths of an image config's `Volumes` (docker's VOLUME), in order.
fn image_volumes(image_config: &serde_json::Value) -> Vec<String> {
    image_config["config"]["Volumes"].as_object().map(|v| v.keys().cloned().collect()).unwrap_or_default()
}

/// Creates the container (blocking: call it off the async workers). The image must be local.
pub fn create(
    d: &Arc<Berthd>,
    config: CreateConfig,
    image: &Image,
    init_binary: Option<&Path>,
) -> Result<ContainerRecord> {
    let platform = match config.platform.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<Platform>().map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Platform::host(),
    };
    let resolved = image::resolve(&d.content, &Descriptor::from(&image.target), &platform)
        .with_context(|| format!("image {}", image.name))?;
    let chain_top = resolved.chain_ids().last().map(ToString::to_string);
    if let Some(top) = &chain_top {
        if !d.snapshots.exists(top)? {
            bail!("image {} is not unpacked (pull it again)", image.name);
        }
    }
    let image_config: serde_json::Value = serde_json::from_slice(&resolved.config_bytes)
        .with_context(|| format!("image {}: parsing its config", image.name))?;
    let image_run = ImageRuntimeConfig::from_image_config(&image_config)?;
    let runtime = runtime_name(config.runtime.as_deref())?;
    if config.init && init_binary.is_none() {
        bail!("--init: berth-init was not found beside berthd");
    }

    let generated = config.name.as_deref().is_none_or(str::is_empty);
    let name = match config.name.clone().filter(|n| !n.is_empty()) {
        Some(n) => {
            let n = n.strip_prefix('/').unwrap_or(&n).to_string();
            super::validate_name(&n)?;
            // Checked before anything is made; the insert checks again, atomically.
            if let Some(other) = d.containers.name_owner(&n)? {
                return Err(super::store::name_in_use(&n, &other));
            }
            n
        }
        None => {
            let mut chosen = names::generate(1);
            for attempt in 0..100 {
                let n = names::generate(attempt);
                if d.containers.name_owner(&n)?.is_none() {
                    chosen = n;
                    break;
                }
            }
            chosen
        }
    };
    let network = choose_network(d, &config)?;
    let mut config = config;
    config.network = Some(network.mode.clone());
    let id = super::new_id()?;
    let snapshot_key = format!("berth/container/{id}");
    let mut undo = Undo { d, snapshot: None, dir: None, volumes: Vec::new() };

    let labels = BTreeMap::from([(CONFIG_REF_LABEL.to_string(), resolved.manifest.config.digest.to_string())]);
    let mounts = d
        .snapshots
        .prepare(&snapshot_key, chain_top.as_deref(), labels)
        .context("preparing the container's snapshot")?;
    undo.snapshot = Some(snapshot_key.clone());

    let dir = container_dir(d, &id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    undo.dir = Some(dir.clone());

    let files = ImageFiles::from_mounts(&mounts);
    let passwd = files.read("etc/passwd")?;
    let group = files.read("etc/group")?;
    let user_arg = config.user.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| image_run.user.clone());
    let exec_user = user::resolve(&user_arg, &config.group_add, passwd.as_deref(), group.as_deref())?;

    // Held until the record that marks its volumes in use is stored (dropped before `undo`).
    let _volumes_guard = d.volumes.lock();
    crate::volume::mounts::resolve(d, &id, &mut config, &image_volumes(&image_config), &mounts, &mut undo.volumes)?;

    let hostname = spec::hostname(&id, &config);
    // The networks that give a container an address rewrite hosts and resolv.conf at start.
    let resolution =
        if config.network.as_deref() == Some("host") { Resolution::Host } else { Resolution::HostResolvers };
    etc_files::write(&dir, &hostname, &config, &ContainerNet { resolution, addrs: &[], host_gateway: None })?;
    for m in &config.mounts {
        if m.kind == "bind" && !Path::new(&m.source).exists() {
            if m.create_source {
                std::fs::create_dir_all(&m.source).with_context(|| format!("creating bind source {}", m.source))?;
            } else {
                bail!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source);
            }
        }
    }
    let shared_dir = network.shares.as_ref().map(|other| container_dir(d, &other.id));
    let mut spec = spec::generate(&SpecInputs {
        id: &id,
        config: &config,
        image: &image_run,
        user: &exec_user,
        etc_dir: shared_dir.as_deref().unwrap_or(&dir),
        init_binary,
        cgroup_v2: matches!(berth_runtime::cgroups::host_mode(), Ok(berth_runtime::cgroups::Mode::V2)),
    })?;

    if let Some(other) = &network.shares {
        // docker: a container on another's network has that one's hostname.
        spec["hostname"] = other.spec["hostname"].clone();
    }

    let mut labels = image_run.labels.clone().unwrap_or_default();
    labels.extend(config.labels.clone());
    let record = ContainerRecord {
        id: id.clone(),
        name,
        image: config.image.clone(),
        image_name: image.name.clone(),
        image_id: resolved.manifest.config.digest.to_string(),
        image_config,
        spec,
        snapshot_key,
        runtime,
        labels,
        config,
        networks: network.endpoints,
        published_ports: Vec::new(),
        created_at: crate::events::now_nanos(),
        state: ContainerState { status: Status::Created, ..Default::default() },
    };
    let mut record = record;
    let mut attempt = 0;
    loop {
        match d.containers.insert(&record) {
            Ok(()) => break,
            // A generated name taken meanwhile by a concurrent create: pick another.
            Err(e) if generated && attempt < 20 && e.to_string().contains("is already in use") => {
                attempt += 1;
                record.name = names::generate(attempt);
            }
            Err(e) => return Err(e),
        }
    }
    undo.disarm();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_map_to_shims() {
        assert_eq!(runtime_name(None).expect("default"), DEFAULT_RUNTIME);
        assert_eq!(runtime_name(Some("runc")).expect("runc"), "io.containerd.runc.v2");
        assert_eq!(runtime_name(Some("io.containerd.runc.v2")).expect("full"), "io.containerd.runc.v2");
        assert!(runtime_name(Some("../../bin/sh")).is_err());
        assert!(runtime_name(Some("io.containerd.a/b.v2")).is_err());
    }
}
