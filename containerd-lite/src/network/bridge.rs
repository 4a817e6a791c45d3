//! The `bridge` driver: a Linux bridge per network (CNI `bridge` with `host-local` IPAM and
//! `portmap`), the subnet docker would pick for it, and berthd's own iptables rules for it
//! (outbound masquerade, or isolation for `--internal`), kept in chains of berthd's own:
//! `BERTH-FORWARD` (filter) and `BERTH-POSTROUTING` (nat). No other rule is ever touched.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::cni::CNI_VERSION;
use super::store::NetworkRecord;

const FORWARD_CHAIN: &str = "BERTH-FORWARD";
const POSTROUTING_CHAIN: &str = "BERTH-POSTROUTING";

/// docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20.
fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let b = (17..=31).filter_map(|o| Ipv4Net::new(Ipv4Addr::new(172, o, 0, 0), 16).ok());
    let c = (0..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    b.chain(c)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The IPv4 routes of berthd's network namespace, other than default routes.
fn host_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the address bytes as a native (little-endian) u32.
            let addr = Ipv4Addr::from(dest.to_le_bytes());
            Ipv4Net::new(addr, mask.count_ones() as u8).ok().map(|n| n.trunc()).filter(|n| n.prefix_len() > 0)
        })
        .collect()
}

/// The first pool that neither a route of the host nor another network (`taken`) overlaps.
pub fn pick_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    let routes = host_routes();
    default_pools().find(|p| !routes.iter().chain(taken).any(|t| overlaps(p, t))).context(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
    )
}

/// Parses `--subnet`/`--ip-range` as docker does (the address must be the network's).
pub fn parse_cidr(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| anyhow::anyhow!("invalid CIDR address: {s}"))?;
    Ok(net)
}

/// Checks the subnet, gateway and range of a new network against each other and `taken`.
pub fn validate(subnet: &Ipv4Net, gateway: Ipv4Addr, ip_range: Option<&Ipv4Net>, taken: &[Ipv4Net]) -> Result<()> {
    if subnet.prefix_len() > 30 {
        bail!("subnet {subnet} is too small for a network");
    }
    if !subnet.contains(&gateway) {
        bail!("no matching subnet for gateway {gateway}");
    }
    if let Some(r) = ip_range {
        if !subnet.contains(r) {
            bail!("no matching subnet for range {r}");
        }
    }
    if taken.iter().any(|t| overlaps(subnet, t)) {
        bail!("Pool overlaps with other one on this address space");
    }
    Ok(())
}

/// The first host address of `net` (docker's default gateway).
pub fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// The CNI config list of a bridge network; host-local keeps its leases in `ipam_dir`.
pub fn conflist(net: &NetworkRecord, ipam_dir: &Path) -> Value {
    let mut range = json!({"subnet": net.subnet, "gateway": net.gateway});
    if let Some(r) = net.ip_range.as_deref().and_then(|r| r.parse::<Ipv4Net>().ok()) {
        let (start, end) = if r.prefix_len() >= 31 {
            (r.network(), r.broadcast())
        } else {
            (first_host(&r), Ipv4Addr::from(u32::from(r.broadcast()) - 1))
        };
        range["rangeStart"] = json!(start.to_string());
        range["rangeEnd"] = json!(end.to_string());
    }
    let routes = if net.internal { json!([]) } else { json!([{"dst": "0.0.0.0/0"}]) };
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": !net.internal,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "ranges": [[range]], "routes": routes, "dataDir": ipam_dir},
    })];
    if !net.internal {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}));
    }
    json!({"cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins})
}

/// One iptables rule of a network: table, chain, whether it goes first, and its match/target.
struct Rule {
    table: &'static str,
    chain: &'static str,
    first: bool,
    spec: Vec<String>,
}

fn rules(net: &NetworkRecord) -> Vec<Rule> {
    let br = net.bridge.as_str();
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    if net.internal {
        // First, so that no other network's accept lets traffic into or out of this one.
        vec![
            Rule {
                table: "filter",
                chain: FORWARD_CHAIN,
                first: true,
                spec: words(&format!("-i {br} ! -o {br} -j DROP")),
            },
            Rule {
                table: "filter",
                chain: FORWARD_CHAIN,
                first: true,
                spec: words(&format!("-o {br} ! -i {br} -j DROP")),
            },
        ]
    } else {
        vec![
            Rule {
                table: "filter",
                chain: FORWARD_CHAIN,
                first: false,
                spec: words(&format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")),
            },
            Rule { table: "filter", chain: FORWARD_CHAIN, first: false, spec: words(&format!("-i {br} -j ACCEPT")) },
            Rule {
                table: "nat",
                chain: POSTROUTING_CHAIN,
                first: false,
                spec: words(&format!("-s {} ! -o {br} -j MASQUERADE", net.subnet)),
            },
        ]
    }
}

fn iptables(args: &[&str]) -> Result<std::process::Output> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .with_context(|| format!("running iptables {}", args.join(" ")))
}

fn iptables_ok(args: &[&str]) -> Result<()> {
    let out = iptables(args)?;
    if !out.status.success() {
        bail!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Creates berthd's chain in `table` and jumps to it from `from` (first), if not there yet.
fn ensure_chain(table: &str, chain: &str, from: &str) -> Result<()> {
    if !iptables(&["-t", table, "-n", "-L", chain])?.status.success() {
        iptables_ok(&["-t", table, "-N", chain])?;
    }
    if !iptables(&["-t", table, "-C", from, "-j", chain])?.status.success() {
        iptables_ok(&["-t", table, "-I", from, "1", "-j", chain])?;
    }
    Ok(())
}

/// Installs the rules of `net` that are missing (a bridge network; others have none).
pub fn ensure_rules(net: &NetworkRecord) -> Result<()> {
    if net.bridge.is_empty() {
        return Ok(());
    }
    ensure_chain("filter", FORWARD_CHAIN, "FORWARD")?;
    ensure_chain("nat", POSTROUTING_CHAIN, "POSTROUTING")?;
    for rule in rules(net) {
        let spec: Vec<&str> = rule.spec.iter().map(String::as_str).collect();
        let mut check = vec!["-t", rule.table, "-C", rule.chain];
        check.extend(&spec);
        if iptables(&check)?.status.success() {
            continue;
        }
        let mut add = vec!["-t", rule.table];
        if rule.first {
            add.extend(["-I", rule.chain, "1"]);
        } else {
            add.extend(["-A", rule.chain]);
        }
        add.extend(&spec);
        iptables_ok(&add).with_context(|| format!("network {}", net.name))?;
    }
    Ok(())
}

/// Removes the rules of `net` (those already gone are fine).
pub fn remove_rules(net: &NetworkRecord) {
    if net.bridge.is_empty() {
        return;
    }
    for rule in rules(net) {
        let mut del = vec!["-t", rule.table, "-D", rule.chain];
        del.extend(rule.spec.iter().map(String::as_str));
        match iptables(&del) {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::debug!(network = %net.name, "{}", String::from_utf8_lossy(&out.stderr).trim()),
            Err(e) => tracing::warn!(network = %net.name, "{e:#}"),
        }
    }
}

/// Removes the bridge device of a removed network (gone already is fine).
pub fn remove_bridge(net: &NetworkRecord) {
    if net.bridge.is_empty() {
        return;
    }
    // Not checked in /sys/class/net first: that shows the namespace sysfs was mounted in.
    match Command::new("ip").args(["link", "del", &net.bridge]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("Cannot find device") => {}
        Ok(out) => {
            tracing::warn!(network = %net.name, "ip link del {}: {}", net.bridge, String::from_utf8_lossy(&out.stderr).trim())
        }
        Err(e) => tracing::warn!(network = %net.name, "running ip: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_skip_what_is_taken() {
        let taken: Vec<Ipv4Net> = ["172.17.0.0/16", "172.18.5.0/24"].iter().map(|s| s.parse().unwrap()).collect();
        let free = default_pools().find(|p| !taken.iter().any(|t| overlaps(p, t))).unwrap();
        assert_eq!(free.to_string(), "172.19.0.0/16");
        assert_eq!(default_pools().nth(15).unwrap().to_string(), "192.168.0.0/20");
    }

    #[test]
    fn internal_networks_get_no_route_and_no_portmap() {
        let net = NetworkRecord {
            name: "n".into(),
            subnet: "10.9.0.0/24".into(),
            gateway: "10.9.0.1".into(),
            ip_range: Some("10.9.0.128/25".into()),
            bridge: "br-x".into(),
            internal: true,
            ..Default::default()
        };
        let list = conflist(&net, Path::new("/ipam"));
        assert_eq!(list["plugins"].as_array().unwrap().len(), 1);
        assert_eq!(list["plugins"][0]["isGateway"], false);
        assert_eq!(list["plugins"][0]["ipam"]["routes"], json!([]));
        assert_eq!(list["plugins"][0]["ipam"]["ranges"][0][0]["rangeStart"], "10.9.0.129");
        assert_eq!(list["plugins"][0]["ipam"]["ranges"][0][0]["rangeEnd"], "10.9.0.254");
        assert!(validate(&"10.9.0.0/24".parse().unwrap(), "10.8.0.1".parse().unwrap(), None, &[]).is_err());
    }
}
