//! Networks, docker's model on CNI: network records (`bridge`, `host`, `none` predefined, user
//! bridge networks), a network namespace pinned per container, and CNI plugins that attach it
//! to its networks when its task starts and detach it when the task ends.
//!
//! - `cni`: the CNI exec protocol and its result cache;
//! - `netns`: pinned network namespaces;
//! - `bridge`: the bridge driver (subnets, conflists, iptables rules);
//! - `store`: network records;
//! - `attach`: a container's endpoints through its lifecycle;
//! - `ports`: published ports; `etc_files`: the containers' /etc/hosts and resolv.conf; `dns`:
//!   the embedded DNS and the directory of names it answers from.

pub mod attach;
pub mod bridge;
pub mod cni;
pub mod dns;
pub mod etc_files;
pub mod netns;
pub mod ports;
pub mod store;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use cni::Cni;
pub use store::{NetworkRecord, NetworkStore, NotFound};

/// The default bridge device (docker's `docker0`).
pub const DEFAULT_BRIDGE: &str = "berth0";

/// One container's attachment to one network, as its record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub network_id: String,
    /// The interface inside the container (`eth0`, `eth1`, …).
    pub ifname: String,
    /// `--ip`: the address asked for.
    pub ipv4_config: Option<String>,
    /// `--network-alias`/`--alias`: more names for DNS on this network.
    pub aliases: Vec<String>,
    /// `--mac-address`: the MAC asked for.
    pub mac_config: Option<String>,
    /// Set while the container's task runs: what CNI gave it.
    pub endpoint_id: String,
    pub ip_address: String,
    pub prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
}

impl Endpoint {
    /// Forgets what the last attachment gave (the container stopped).
    pub fn clear_live(&mut self) {
        self.endpoint_id.clear();
        self.ip_address.clear();
        self.prefix_len = 0;
        self.gateway.clear();
        self.mac_address.clear();
    }
}

/// A published port as the container's record keeps it while its task runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishedPort {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// Empty for every address.
    pub host_ip: String,
    pub host_port: u16,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// Network records, CNI and the pinned namespaces of one berthd.
pub struct Networks {
    pub store: NetworkStore,
    pub cni: Cni,
    /// `<state>/netns`.
    pub netns_dir: PathBuf,
    /// host-local's leases: `<state>/cni/ipam`.
    pub ipam_dir: PathBuf,
    /// Whether the default `bridge` network exists (berthd's `--bridge none` turns it off).
    pub default_bridge: bool,
    /// The host ports of running containers, held until their tasks end.
    pub reservations: std::sync::Mutex<std::collections::HashMap<String, ports::Reservation>>,
    /// The embedded DNS servers of running containers on user-defined networks.
    pub dns_servers: std::sync::Mutex<std::collections::HashMap<String, dns::DnsHandle>>,
    /// The names those servers answer: running containers' endpoints on user-defined networks.
    pub directory: Arc<dns::Directory>,
}

impl Networks {
    /// Opens the network store, creates the predefined networks and (re)installs the iptables
    /// rules of every bridge network.
    pub fn open(db: Arc<redb::Database>, state: &Path, plugin_dirs: Vec<PathBuf>, bridge: &str) -> Result<Networks> {
        let store = NetworkStore::new(db).context("opening the network store")?;
        let networks = Networks {
            store,
            cni: Cni { plugin_dirs, cache_dir: state.join("cni").join("results") },
            netns_dir: state.join("netns"),
            ipam_dir: state.join("cni").join("ipam"),
            default_bridge: bridge != "none",
            reservations: Default::default(),
            dns_servers: Default::default(),
            directory: Default::default(),
        };
        let existing = networks.store.list()?;
        for (name, driver) in [("host", store::HOST), ("none", store::NULL)] {
            if !existing.iter().any(|n| n.name == name) {
                networks.insert_new(NetworkRecord {
                    name: name.into(),
                    driver: driver.into(),
                    ..Default::default()
                })?;
            }
        }
        if networks.default_bridge && !existing.iter().any(|n| n.name == "bridge") {
            networks.create(
                &CreateRequest { name: "bridge".into(), driver: store::BRIDGE.into(), ..Default::default() },
                bridge,
            )?;
        }
        for net in networks.store.list()? {
            if net.driver == store::BRIDGE && (net.name != "bridge" || networks.default_bridge) {
                bridge::ensure_rules(&net)?;
            }
        }
        Ok(networks)
    }

    fn insert_new(&self, mut record: NetworkRecord) -> Result<NetworkRecord> {
        record.id = crate::container::new_id()?;
        record.created_at = crate::events::now_nanos();
        self.store.insert(&record)?;
        Ok(record)
    }

    /// The `--network` a container gets when it names none: docker's `bridge`, or `none`
    /// when the default bridge is off.
    pub fn default_mode(&self) -> &'static str {
        if self.default_bridge {
            "bridge"
        } else {
            "none"
        }
    }

    /// Creates a bridge network; `device` names its bridge (`br-<id>` when empty).
    pub fn create(&self, req: &CreateRequest, device: &str) -> Result<NetworkRecord> {
        // A user's request (no device given) may not take a predefined name.
        if device.is_empty() && matches!(req.name.as_str(), "bridge" | "host" | "none") {
            bail!("operation is not permitted on predefined {} network", req.name);
        }
        let driver = if req.driver.is_empty() { store::BRIDGE } else { req.driver.as_str() };
        if driver != store::BRIDGE {
            if matches!(driver, "host" | "null") {
                bail!("only one instance of \"{driver}\" network is allowed");
            }
            bail!("plugin \"{driver}\" not found");
        }
        if req.name.is_empty() {
            bail!("network name must not be empty");
        }
        if self.store.list()?.iter().any(|n| n.name == req.name) {
            bail!("network with name {} already exists", req.name);
        }
        let taken: Vec<Ipv4Net> = self.store.list()?.iter().filter_map(|n| n.subnet.parse().ok()).collect();
        let subnet = match &req.subnet {
            Some(s) => bridge::parse_cidr(s).map_err(|e| anyhow::anyhow!("Invalid subnet {s} : {e}"))?,
            None => {
                if req.gateway.is_some() || req.ip_range.is_some() {
                    bail!("invalid pool request: --gateway and --ip-range need --subnet");
                }
                bridge::pick_subnet(&taken)?
            }
        };
        let gateway = match &req.gateway {
            Some(g) => g.parse::<Ipv4Addr>().map_err(|_| anyhow::anyhow!("invalid gateway address: {g}"))?,
            None => bridge::first_host(&subnet),
        };
        let ip_range = req.ip_range.as_deref().map(bridge::parse_cidr).transpose()?;
        bridge::validate(&subnet, gateway, ip_range.as_ref(), &taken)?;
        let mut record = NetworkRecord {
            name: req.name.clone(),
            driver: store::BRIDGE.into(),
            internal: req.internal,
            labels: req.labels.clone(),
            subnet: subnet.trunc().to_string(),
            gateway: gateway.to_string(),
            ip_range: ip_range.map(|r| r.to_string()),
            ..Default::default()
        };
        record.id = crate::container::new_id()?;
        record.created_at = crate::events::now_nanos();
        record.bridge = if device.is_empty() { format!("br-{}", &record.id[..12]) } else { device.to_string() };
        bridge::ensure_rules(&record)?;
        if let Err(e) = self.store.insert(&record) {
            bridge::remove_rules(&record);
            return Err(e);
        }
        Ok(record)
    }

    /// Removes a network nothing is attached to: its rules, bridge, leases and record.
    pub fn remove(&self, net: &NetworkRecord) -> Result<()> {
        bridge::remove_rules(net);
        bridge::remove_bridge(net);
        let leases = self.ipam_dir.join(&net.name);
        if leases.exists() {
            std::fs::remove_dir_all(&leases).with_context(|| format!("removing {}", leases.display()))?;
        }
        self.store.remove(&net.id)
    }

    /// The CNI config list of a network.
    pub fn conflist(&self, net: &NetworkRecord) -> Value {
        bridge::conflist(net, &self.ipam_dir)
    }

    /// docker's `network inspect` JSON of `net`, with the containers attached to it
    /// (`containers`: id, name, endpoint). `Created` is left for the client to format from the
    /// record's time, as the CLI formats every time it prints.
    pub fn inspect(net: &NetworkRecord, containers: &[(String, String, Endpoint)]) -> Value {
        let config = if net.subnet.is_empty() {
            json!([])
        } else {
            let mut c = json!({"Subnet": net.subnet, "Gateway": net.gateway});
            if let Some(r) = &net.ip_range {
                c["IPRange"] = json!(r);
            }
            json!([c])
        };
        let attached: serde_json::Map<String, Value> = containers
            .iter()
            .map(|(id, name, ep)| {
                let addr = if ep.ip_address.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", ep.ip_address, ep.prefix_len)
                };
                (
                    id.clone(),
                    json!({"Name": name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac_address,
                           "IPv4Address": addr, "IPv6Address": ""}),
                )
            })
            .collect();
        let mut options = serde_json::Map::new();
        if !net.bridge.is_empty() {
            options.insert("com.docker.network.bridge.name".into(), json!(net.bridge));
        }
        json!({
            "Name": net.name,
            "Id": net.id,
            "Created": "",
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": net.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": attached,
            "Options": options,
            "Labels": net.labels,
        })
    }
}

/// The containers connected to `net`: (id, name, endpoint).
pub fn connected(d: &crate::daemon::Berthd, net: &NetworkRecord) -> Result<Vec<(String, String, Endpoint)>> {
    Ok(d.containers
        .list()?
        .into_iter()
        .filter_map(|r| {
            r.networks.get(&net.name).filter(|ep| ep.network_id == net.id).cloned().map(|ep| (r.id, r.name, ep))
        })
        .collect())
}

/// `network rm`: refuses the predefined networks and networks with running containers (docker's
/// messages). A stopped container connected to it fails to start afterwards, as docker's does.
pub fn remove(d: &crate::daemon::Berthd, net: &NetworkRecord) -> Result<()> {
    if net.is_predefined() {
        bail!("{} is a pre-defined network and cannot be removed", net.name);
    }
    if connected(d, net)?.iter().any(|(id, _, _)| d.tasks.get(id).is_some()) {
        bail!("error while removing network: network {} id {} has active endpoints", net.name, net.id);
    }
    d.networks.remove(net)
}

/// `network prune`: removes the user-defined networks no container is connected to; their names.
pub fn prune(d: &crate::daemon::Berthd) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for net in d.networks.store.list()? {
        if net.is_predefined() || !connected(d, &net)?.is_empty() {
            continue;
        }
        d.networks.remove(&net)?;
        removed.push(net.name);
    }
    Ok(removed)
}
