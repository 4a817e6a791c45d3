//! A container's endpoints through its lifecycle: before its task starts, a pinned network
//! namespace is attached (loopback, then each network it is connected to, `eth0`, `eth1`, …)
//! and its /etc/hosts gets its address; when the task ends, on a failed start, on removal and
//! after a berthd restart for containers no longer running, every cached attachment is deleted
//! and the namespace unpinned. `network connect`/`disconnect` do one attachment on a running
//! container.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use berth_proto::port_spec::Proto;

use super::cni::Attachment;
use super::{dns, etc_files, netns, ports, Endpoint, NetworkRecord, PublishedPort};
use crate::container::ContainerRecord;
use crate::daemon::Berthd;

/// How a container is networked, from its `--network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The host's namespace.
    Host,
    /// A namespace of its own with only loopback (made by the runtime).
    None,
    /// Another container's namespace (its full id).
    Container(String),
    /// A pinned namespace attached to the networks in the record.
    Networks,
}

impl Mode {
    /// The mode of a `--network` value as berthd stores it.
    pub fn of(network: Option<&str>) -> Mode {
        match network.unwrap_or("none") {
            "host" => Mode::Host,
            "none" => Mode::None,
            other => match other.strip_prefix("container:") {
                Some(id) => Mode::Container(id.to_string()),
                None => Mode::Networks,
            },
        }
    }
}

/// The conflist that brings loopback up in a new namespace.
fn loopback() -> Value {
    json!({"cniVersion": super::cni::CNI_VERSION, "name": "berth-loopback", "plugins": [{"type": "loopback"}]})
}

/// Sets up the network of `record` for a task about to start. Returns the network namespace
/// the task must join (`None`: the spec's own choice). Nothing is left when it fails.
pub fn setup(d: &Berthd, record: &ContainerRecord) -> Result<Option<PathBuf>> {
    match Mode::of(record.config.network.as_deref()) {
        Mode::Host | Mode::None => Ok(None),
        Mode::Container(other) => {
            let target = d.containers.get(&other)?.with_context(|| format!("No such container: {other}"))?;
            if !target.state.status.is_live() || target.state.pid == 0 {
                bail!("cannot join network of a non running container: {other}");
            }
            Ok(Some(PathBuf::from(format!("/proc/{}/ns/net", target.state.pid))))
        }
        Mode::Networks => {
            // What a run that ended without its teardown (a crash) left goes first.
            teardown(d, &record.id);
            let path = netns::create(&d.networks.netns_dir, &record.id)?;
            match attach_all(d, record, &path) {
                Ok(()) => Ok(Some(path)),
                Err(e) => {
                    teardown(d, &record.id);
                    Err(e)
                }
            }
        }
    }
}

fn published(reservation: &ports::Reservation) -> Vec<PublishedPort> {
    reservation
        .bindings()
        .iter()
        .map(|b| PublishedPort {
            container_port: b.container_port,
            proto: b.proto.as_str().to_string(),
            host_ip: b.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_port: b.host_port,
        })
        .collect()
}

fn attach_all(d: &Berthd, record: &ContainerRecord, path: &std::path::Path) -> Result<()> {
    let exposed: Vec<String> = record.image_config["config"]["ExposedPorts"]
        .as_object()
        .map(|ports| ports.keys().cloned().collect())
        .unwrap_or_default();
    let endpoint = ports::Endpoint { name: &record.name, id: &record.id };
    let reservation = ports::publish(&record.config.publish, record.config.publish_all, &exposed, endpoint)?;
    let lo = Attachment {
        container_id: record.id.clone(),
        netns: path.to_path_buf(),
        ifname: "lo".into(),
        ..Default::default()
    };
    d.networks.cni.add(&loopback(), &lo).context("bringing up loopback")?;
    let mut endpoints: Vec<(String, Endpoint)> = record.networks.clone().into_iter().collect();
    endpoints.sort_by_key(|(_, ep)| ifindex(&ep.ifname));
    for (i, (name, ep)) in endpoints.iter_mut().enumerate() {
        // docker publishes ports on the container's first network.
        let mut runtime_config = serde_json::Map::new();
        if i == 0 && !reservation.bindings().is_empty() {
            runtime_config.insert("portMappings".into(), reservation.cni_port_mappings());
        }
        attach_one(d, &record.id, path, name, ep, runtime_config)?;
    }
    let ports = published(&reservation);
    let updated = d.containers.update(&record.id, |r| {
        for (name, ep) in &endpoints {
            if let Some(e) = r.networks.get_mut(name) {
                *e = ep.clone();
            }
        }
        r.published_ports = ports;
    })?;
    if let Ok(mut held) = d.networks.reservations.lock() {
        held.insert(record.id.clone(), reservation);
    }
    write_etc_files(d, &updated)?;
    if on_user_network(&updated) {
        serve_dns(d, &updated, path)?;
    }
    Ok(())
}

/// Whether the container is on a user-defined network (where docker serves its embedded DNS).
fn on_user_network(record: &ContainerRecord) -> bool {
    record.networks.keys().any(|n| n != "bridge")
}

/// The container's endpoints on user-defined networks, as the embedded DNS knows them.
fn dns_entry(record: &ContainerRecord) -> dns::DnsEntry {
    let endpoints = record
        .networks
        .iter()
        .filter(|(name, ep)| *name != "bridge" && !ep.ip_address.is_empty())
        .filter_map(|(name, ep)| {
            Some(dns::DnsEndpoint {
                network: name.clone(),
                addr: ep.ip_address.parse().ok()?,
                aliases: ep.aliases.clone(),
            })
        })
        .collect();
    dns::DnsEntry { container_id: record.id.clone(), name: record.name.clone(), endpoints }
}

/// Makes the container known to the embedded DNS and serves it in its namespace at `path`.
fn serve_dns(d: &Berthd, record: &ContainerRecord, path: &std::path::Path) -> Result<()> {
    d.networks.directory.insert(dns_entry(record));
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let flags = etc_files::DnsFlags {
        servers: &record.config.dns,
        search: &record.config.dns_search,
        options: &record.config.dns_options,
    };
    let upstream = etc_files::dns_upstream(&host_resolv, flags);
    let handle = dns::serve(path, &record.id, d.networks.directory.clone(), upstream)?;
    if let Ok(mut servers) = d.networks.dns_servers.lock() {
        servers.insert(record.id.clone(), handle);
    }
    Ok(())
}

/// CNI CHECK of every attachment of a container that kept running across a berthd restart:
/// what its network lost meanwhile is logged (the container keeps running either way).
fn check_attachments(d: &Berthd, id: &str) {
    for cached in d.networks.cni.cached_for(id) {
        let network = cached.conflist["name"].as_str().unwrap_or_default();
        // portmap 1.1.1's CHECK looks for IPv6 chains it never made for IPv4-only mappings.
        if let Err(e) = d.networks.cni.check(&cached, |plugin| plugin != "portmap") {
            tracing::warn!(container = id, network, "its network attachment is damaged: {e:#}");
        }
    }
}

/// Holds the host ports of a container that kept running across a berthd restart again.
fn reserve_again(d: &Berthd, record: &ContainerRecord) {
    let specs: Vec<berth_proto::port_spec::PortSpec> = record
        .published_ports
        .iter()
        .filter_map(|p| {
            Some(berth_proto::port_spec::PortSpec {
                host_ip: if p.host_ip.is_empty() { None } else { Some(p.host_ip.parse().ok()?) },
                host_ports: Some((p.host_port, p.host_port)),
                container_port: p.container_port,
                proto: [Proto::Tcp, Proto::Udp, Proto::Sctp].into_iter().find(|x| x.as_str() == p.proto)?,
            })
        })
        .collect();
    if specs.is_empty() {
        return;
    }
    match ports::reserve(&specs, ports::Endpoint { name: &record.name, id: &record.id }) {
        Ok(reservation) => {
            if let Ok(mut held) = d.networks.reservations.lock() {
                held.insert(record.id.clone(), reservation);
            }
        }
        Err(e) => tracing::warn!(container = %record.id, "holding its published ports again: {e:#}"),
    }
}

/// `eth3` → 3, for ordering.
fn ifindex(ifname: &str) -> u32 {
    ifname.strip_prefix("eth").and_then(|n| n.parse().ok()).unwrap_or(u32::MAX)
}

/// The network an endpoint names (by id: a network removed and made again is another one).
fn network_of(d: &Berthd, name: &str, ep: &Endpoint) -> Result<NetworkRecord> {
    d.networks
        .store
        .list()?
        .into_iter()
        .find(|n| n.id == ep.network_id)
        .ok_or_else(|| super::NotFound(name.to_string()).into())
}

/// CNI ADD of one endpoint in namespace `path`; fills in what CNI gave it.
fn attach_one(
    d: &Berthd,
    id: &str,
    path: &std::path::Path,
    name: &str,
    ep: &mut Endpoint,
    runtime_config: serde_json::Map<String, Value>,
) -> Result<()> {
    let net = network_of(d, name, ep)?;
    let mut att = Attachment {
        container_id: id.to_string(),
        netns: path.to_path_buf(),
        ifname: ep.ifname.clone(),
        runtime_config,
        ..Default::default()
    };
    if let Some(ip) = &ep.ipv4_config {
        att.args.push(("IP".into(), ip.clone()));
    }
    if let Some(mac) = &ep.mac_config {
        att.args.push(("MAC".into(), mac.clone()));
    }
    let result = d
        .networks
        .cni
        .add(&d.networks.conflist(&net), &att)
        .with_context(|| format!("failed to set up container networking on network {name}"))?;
    fill_endpoint(&result, &ep.ifname.clone(), ep);
    ep.endpoint_id = crate::container::new_id()?;
    Ok(())
}

/// The address, gateway and MAC of interface `ifname` in a CNI result.
fn fill_endpoint(result: &Value, ifname: &str, ep: &mut Endpoint) {
    let empty = Vec::new();
    let ifaces = result["interfaces"].as_array().unwrap_or(&empty);
    let index = ifaces
        .iter()
        .position(|i| i["name"].as_str() == Some(ifname) && i["sandbox"].as_str().is_some_and(|s| !s.is_empty()));
    if let Some(i) = index {
        ep.mac_address = ifaces[i]["mac"].as_str().unwrap_or_default().to_string();
    }
    let ips = result["ips"].as_array().unwrap_or(&empty);
    let ip =
        ips.iter().find(|ip| index.is_some_and(|i| ip["interface"].as_u64() == Some(i as u64))).or_else(|| ips.first());
    if let Some(ip) = ip {
        let address = ip["address"].as_str().unwrap_or_default();
        let (addr, prefix) = address.split_once('/').unwrap_or((address, "0"));
        ep.ip_address = addr.to_string();
        ep.prefix_len = prefix.parse().unwrap_or(0);
        ep.gateway = ip["gateway"].as_str().unwrap_or_default().to_string();
    }
}

/// Writes the container's /etc files again with its address on its first network (and the
/// embedded DNS on user-defined networks), as docker does when its endpoint joins.
fn write_etc_files(d: &Berthd, record: &ContainerRecord) -> Result<()> {
    let hostname = record.spec["hostname"].as_str().unwrap_or_default();
    let primary = record.networks.values().filter(|ep| !ep.ip_address.is_empty()).min_by_key(|ep| ifindex(&ep.ifname));
    let addrs: Vec<std::net::IpAddr> = primary.and_then(|ep| ep.ip_address.parse().ok()).into_iter().collect();
    let resolution =
        if on_user_network(record) { etc_files::Resolution::EmbeddedDns } else { etc_files::Resolution::HostResolvers };
    let net = etc_files::ContainerNet {
        resolution,
        addrs: &addrs,
        host_gateway: primary.and_then(|ep| ep.gateway.parse().ok()),
    };
    let dir = crate::container::create::container_dir(d, &record.id);
    etc_files::write(&dir, hostname, &record.config, &net)
}

/// docker's `NetworkSettings` of a container: an entry per network it is connected to (`host`
/// or `none` for those modes), and the default bridge's address at the top level.
pub fn network_settings(d: &Berthd, record: &ContainerRecord) -> Value {
    let mode = Mode::of(record.config.network.as_deref());
    let running = record.state.status.is_live();
    let mut networks = serde_json::Map::new();
    let entry = |network_id: &str, ep: Option<&Endpoint>, aliases: Value| {
        let ep = ep.cloned().unwrap_or_default();
        let ipam = ep.ipv4_config.as_ref().map(|ip| json!({"IPv4Address": ip}));
        json!({
            "IPAMConfig": ipam, "Links": null, "Aliases": aliases, "NetworkID": network_id,
            "EndpointID": ep.endpoint_id, "Gateway": ep.gateway, "IPAddress": ep.ip_address,
            "IPPrefixLen": ep.prefix_len, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": ep.mac_address, "DriverOpts": null,
        })
    };
    if matches!(mode, Mode::Host | Mode::None) {
        let name = record.config.network.clone().unwrap_or_default();
        let id = d.networks.store.lookup(&name).map(|n| n.id).unwrap_or_default();
        networks.insert(name, entry(&id, None, Value::Null));
    }
    for (name, ep) in &record.networks {
        // docker: on user-defined networks, the short id is an alias too.
        let aliases = if name == "bridge" {
            Value::Null
        } else {
            let mut a = vec![record.id[..12.min(record.id.len())].to_string()];
            a.extend(ep.aliases.iter().cloned());
            json!(a)
        };
        networks.insert(name.clone(), entry(&ep.network_id, Some(ep), aliases));
    }
    let primary = record.networks.get("bridge").cloned().unwrap_or_default();
    let sandbox = if mode == Mode::Networks && running {
        netns::path(&d.networks.netns_dir, &record.id).display().to_string()
    } else {
        String::new()
    };
    // docker: every exposed or published port, with its host bindings (null when unpublished).
    let mut ports = serde_json::Map::new();
    if running {
        if let Some(exposed) = record.image_config["config"]["ExposedPorts"].as_object() {
            for key in exposed.keys() {
                ports.insert(key.clone(), Value::Null);
            }
        }
        for p in &record.published_ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let host_ip = if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() };
            let binding = json!({"HostIp": host_ip, "HostPort": p.host_port.to_string()});
            match ports.get_mut(&key).and_then(Value::as_array_mut) {
                Some(list) => list.push(binding),
                None => {
                    ports.insert(key, json!([binding]));
                }
            }
        }
    }
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": ports, "SandboxKey": sandbox,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": primary.endpoint_id, "Gateway": primary.gateway, "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "IPAddress": primary.ip_address, "IPPrefixLen": primary.prefix_len,
        "IPv6Gateway": "", "MacAddress": primary.mac_address, "Networks": networks,
    })
}

/// Deletes every CNI attachment of container `id` and unpins its namespace; what is already
/// gone is fine. Failures are logged: teardown runs where nobody could act on them.
pub fn teardown(d: &Berthd, id: &str) {
    for cached in d.networks.cni.cached_for(id) {
        if let Err(e) = d.networks.cni.del(&cached) {
            tracing::warn!(container = id, ifname = %cached.attachment.ifname, "CNI DEL: {e:#}");
        }
    }
    if let Err(e) = netns::remove(&netns::path(&d.networks.netns_dir, id)) {
        tracing::warn!(container = id, "{e:#}");
    }
    if let Ok(mut held) = d.networks.reservations.lock() {
        held.remove(id);
    }
    if let Ok(mut servers) = d.networks.dns_servers.lock() {
        servers.remove(id);
    }
    d.networks.directory.remove(id);
    let cleared = d.containers.update(id, |r| {
        r.networks.values_mut().for_each(Endpoint::clear_live);
        r.published_ports.clear();
    });
    if let Err(e) = cleared {
        if !e.to_string().starts_with("No such container") {
            tracing::warn!(container = id, "clearing its endpoints: {e:#}");
        }
    }
}

/// After a berthd restart: tears down the namespaces and attachments of containers that are
/// no longer running (or no longer exist).
pub fn sweep(d: &Berthd) {
    let mut ids = netns::list(&d.networks.netns_dir);
    ids.extend(d.networks.cni.all_cached().into_iter().map(|c| c.attachment.container_id));
    ids.sort();
    ids.dedup();
    for id in ids {
        let keep = match d.containers.get(&id) {
            Ok(Some(r)) => {
                let live = r.state.status.is_live() || !r.state.shim_address.is_empty();
                if live {
                    check_attachments(d, &id);
                    reserve_again(d, &r);
                    let path = netns::path(&d.networks.netns_dir, &r.id);
                    if on_user_network(&r) && path.exists() {
                        if let Err(e) = serve_dns(d, &r, &path) {
                            tracing::warn!(container = %r.id, "serving its DNS again: {e:#}");
                        }
                    }
                }
                live
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(container = %id, "{e:#}");
                true
            }
        };
        if !keep {
            tracing::info!(container = %id, "removing the network of a container no longer running");
            teardown(d, &id);
        }
    }
}

/// A new endpoint of `record` on `net` (`network connect`, or `run --network`): the next free
/// interface name. Checks what docker checks.
pub fn new_endpoint(
    record_networks: &std::collections::BTreeMap<String, Endpoint>,
    net: &NetworkRecord,
    ip: Option<String>,
    aliases: Vec<String>,
) -> Result<Endpoint> {
    if net.driver != super::store::BRIDGE {
        bail!("container cannot be disconnected from host network or connected to host network");
    }
    if record_networks.contains_key(&net.name) {
        bail!("endpoint with name already exists in network {}", net.name);
    }
    if let Some(ip) = &ip {
        if net.name == "bridge" {
            bail!("user specified IP address is supported on user defined networks only");
        }
        let addr: std::net::Ipv4Addr = ip.parse().map_err(|_| anyhow::anyhow!("invalid IPv4 address: {ip}"))?;
        let subnet: ipnet::Ipv4Net = net.subnet.parse().with_context(|| format!("network {}: subnet", net.name))?;
        if !subnet.contains(&addr) {
            bail!("no configured subnet or ip-range contain the IP address {ip}");
        }
    }
    let used: Vec<u32> = record_networks.values().map(|ep| ifindex(&ep.ifname)).collect();
    let free = (0..).find(|i| !used.contains(i)).unwrap_or(0);
    Ok(Endpoint {
        network_id: net.id.clone(),
        ifname: format!("eth{free}"),
        ipv4_config: ip,
        aliases,
        ..Default::default()
    })
}

/// `network connect`: records the endpoint and, if the container runs, attaches it now.
pub fn connect(
    d: &Berthd,
    record: &ContainerRecord,
    net: &NetworkRecord,
    ip: Option<String>,
    aliases: Vec<String>,
) -> Result<()> {
    if Mode::of(record.config.network.as_deref()) != Mode::Networks {
        bail!("container sharing network namespace with another container or host cannot be connected to any other network");
    }
    let mut ep = new_endpoint(&record.networks, net, ip, aliases)?;
    if d.tasks.get(&record.id).is_some() {
        let path = netns::path(&d.networks.netns_dir, &record.id);
        attach_one(d, &record.id, &path, &net.name, &mut ep, serde_json::Map::new())?;
    }
    let stored = d.containers.update(&record.id, |r| {
        r.networks.insert(net.name.clone(), ep.clone());
    });
    let updated = match stored {
        Ok(r) => r,
        Err(e) => {
            detach_one(d, &record.id, &net.name, &ep.ifname);
            return Err(e);
        }
    };
    // A running container's first user-defined network brings its embedded DNS; others
    // make it known under its new addresses.
    if d.tasks.get(&record.id).is_some() && on_user_network(&updated) {
        let serving = d.networks.dns_servers.lock().map(|s| s.contains_key(&record.id)).unwrap_or(true);
        if serving {
            d.networks.directory.insert(dns_entry(&updated));
        } else {
            serve_dns(d, &updated, &netns::path(&d.networks.netns_dir, &record.id))?;
        }
    }
    Ok(())
}

/// `network disconnect`: detaches the endpoint if attached and forgets it.
pub fn disconnect(d: &Berthd, record: &ContainerRecord, net: &NetworkRecord, force: bool) -> Result<()> {
    let Some(ep) = record.networks.get(&net.name) else {
        if force {
            return Ok(());
        }
        bail!("container {} is not connected to network {}", record.id, net.name);
    };
    detach_one(d, &record.id, &net.name, &ep.ifname);
    let updated = d.containers.update(&record.id, |r| {
        r.networks.remove(&net.name);
    })?;
    if d.tasks.get(&record.id).is_some() {
        d.networks.directory.insert(dns_entry(&updated));
    }
    Ok(())
}

fn detach_one(d: &Berthd, id: &str, network: &str, ifname: &str) {
    match d.networks.cni.cached(network, id, ifname) {
        Ok(Some(cached)) => {
            if let Err(e) = d.networks.cni.del(&cached) {
                tracing::warn!(container = id, network, "CNI DEL: {e:#}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(container = id, network, "{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_takes_the_sandbox_interface_of_a_result() {
        let result = json!({"interfaces": [
            {"name": "berth0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
            {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/berth/netns/x"}],
            "ips": [{"address": "172.17.0.2/16", "gateway": "172.17.0.1", "interface": 2}]});
        let mut ep = Endpoint::default();
        fill_endpoint(&result, "eth0", &mut ep);
        assert_eq!((ep.ip_address.as_str(), ep.prefix_len, ep.gateway.as_str()), ("172.17.0.2", 16, "172.17.0.1"));
        assert_eq!(ep.mac_address, "cc:cc:cc:cc:cc:cc");
    }

    #[test]
    fn modes_follow_the_network_value() {
        assert_eq!(Mode::of(Some("host")), Mode::Host);
        assert_eq!(Mode::of(None), Mode::None);
        assert_eq!(Mode::of(Some("container:abc")), Mode::Container("abc".into()));
        assert_eq!(Mode::of(Some("front")), Mode::Networks);
    }
}
