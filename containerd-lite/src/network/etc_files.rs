//! The /etc/hosts, /etc/resolv.conf and /etc/hostname a container gets, byte for byte as docker
//! 20.10 writes them (the expected texts in the tests were captured from docker 20.10.24).
//! [`write`] writes them into the container's directory at create and again when a network gives
//! the container its address; the texts come from pure functions.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_proto::container_config::CreateConfig;

/// The lines every generated /etc/hosts starts with.
const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The nameservers docker falls back to when the host has none a container can reach.
const FALLBACK_NAMESERVERS: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4";
const FALLBACK_NAMESERVERS_V6: &str = "\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844";

/// What the container's network adds to its /etc files.
#[derive(Debug, Clone, Copy)]
pub struct ContainerNet<'a> {
    /// How names resolve on the network.
    pub resolution: Resolution,
    /// The container's addresses, each given a line with its hostname in /etc/hosts.
    pub addrs: &'a [IpAddr],
    /// The host's address on the container's network, for `--add-host NAME:host-gateway`.
    pub host_gateway: Option<IpAddr>,
}

/// Writes `hosts`, `resolv.conf` and `hostname` into `dir` (the container's directory, bind
/// mounted over the container's /etc files) from the host's files, the container's DNS and
/// `--add-host` flags and its network.
pub fn write(dir: &Path, hostname: &str, config: &CreateConfig, net: &ContainerNet) -> Result<()> {
    let host_network = net.resolution == Resolution::Host;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let flags = DnsFlags { servers: &config.dns, search: &config.dns_search, options: &config.dns_options };
    let resolv = resolv_conf(&host_resolv, net.resolution, flags);
    // The host network sees the host's /etc/hosts, unless --add-host asks for lines of its own.
    let host_hosts = host_network.then(|| std::fs::read_to_string("/etc/hosts").ok()).flatten();
    let hosts = match host_hosts {
        Some(text) if config.extra_hosts.is_empty() => text,
        _ => hosts_file(hostname, net.addrs, &config.extra_hosts, net.host_gateway)?,
    };
    let name = if host_network {
        nix::unistd::gethostname().map(|h| h.to_string_lossy().to_string()).unwrap_or_else(|_| hostname.to_string())
    } else {
        hostname.to_string()
    };
    for (file, text) in [("hosts", hosts), ("resolv.conf", resolv), ("hostname", format!("{name}\n"))] {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// How the container's network resolves names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `--network host`: the host's files as they are (unless flags change them).
    Host,
    /// `none` and bridge networks without the embedded DNS: the host's resolvers the container
    /// can reach (not loopback ones, not IPv6 ones without IPv6).
    HostResolvers,
    /// User-defined networks: berthd's embedded DNS on 127.0.0.11, forwarding to the host's.
    EmbeddedDns,
}

/// `--dns`, `--dns-search` and `--dns-option`; each replaces the host's entries when given.
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsFlags<'a> {
    /// Nameservers.
    pub servers: &'a [String],
    /// Search domains; `.` alone means none.
    pub search: &'a [String],
    /// resolv.conf options.
    pub options: &'a [String],
}

impl DnsFlags<'_> {
    fn any(&self) -> bool {
        !(self.servers.is_empty() && self.search.is_empty() && self.options.is_empty())
    }
}

/// The container's /etc/resolv.conf from the host's text (`host`).
pub fn resolv_conf(host: &str, resolution: Resolution, flags: DnsFlags) -> String {
    let own = match (resolution, flags.any()) {
        (Resolution::Host, false) => return host.to_string(),
        // Flags rebuild the file from the host's entries, loopback nameservers and all.
        (_, true) => build(
            &choose(flags.servers, || nameservers(host)),
            &choose(flags.search, || entries(host, "search")),
            &choose(flags.options, || entries(host, "options")),
        ),
        // docker filters twice: when the sandbox is made (IPv6 assumed, so its fallback has
        // IPv6 servers) and when the endpoint joins (without IPv6, which drops them again).
        (_, false) => filter_nameservers(&filter_nameservers(host, true), false),
    };
    if resolution != Resolution::EmbeddedDns {
        return own;
    }
    let mut options = entries(&own, "options");
    // The embedded DNS answers single-label container names; ndots:0 asks it first, unless
    // the user chose an ndots.
    if !options.iter().any(|o| o.contains("ndots")) {
        options.push("ndots:0".to_string());
    }
    build(&[DNS_SERVER.to_string()], &entries(&own, "search"), &options)
}

/// The embedded DNS's address as resolv.conf names it.
const DNS_SERVER: &str = "127.0.0.11";

/// The resolvers the embedded DNS forwards to: `--dns` when given, else the host's nameservers
/// (loopback ones too: berthd forwards from the host's namespace), on port 53.
pub fn dns_upstream(host: &str, flags: DnsFlags) -> Vec<SocketAddr> {
    choose(flags.servers, || nameservers(host))
        .iter()
        .filter_map(|server| server.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn choose(given: &[String], host: impl FnOnce() -> Vec<String>) -> Vec<String> {
    if given.is_empty() {
        host()
    } else {
        given.to_vec()
    }
}

/// docker's `resolvconf.Build`: search, nameservers, options.
fn build(servers: &[String], search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    let search = search.join(" ");
    if !search.is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    let options = options.join(" ");
    if !options.trim().is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

/// The words after each `key` line (`search`, `options`), comments dropped; the last `search`
/// line wins as in the resolver.
fn entries(text: &str, key: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut words = strip_comment(line).split_whitespace();
        if words.next() == Some(key) {
            let words = words.map(str::to_string);
            if key == "search" {
                found = words.collect();
            } else {
                found.extend(words);
            }
        }
    }
    found
}

fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = strip_comment(line).split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next().map(str::to_string)).flatten()
        })
        .collect()
}

fn strip_comment(line: &str) -> &str {
    line.find(['#', ';']).map_or(line, |at| &line[..at])
}

/// docker's `FilterResolvDNS`: drops loopback nameserver lines (and IPv6 ones without IPv6),
/// each with the whitespace after it, and falls back to Google's servers when none remain.
fn filter_nameservers(text: &str, ipv6: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |at| at + 1);
        let line = &rest[..line_end];
        if unreachable_nameserver(line.trim_end_matches('\n'), ipv6) {
            // docker's pattern ends in `\s*\n*`: the whitespace after the line goes too.
            rest = rest[line_end..].trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
        } else {
            out.push_str(line);
            rest = &rest[line_end..];
        }
    }
    if nameservers(&out).is_empty() {
        out.push('\n');
        out.push_str(FALLBACK_NAMESERVERS);
        if ipv6 {
            out.push_str(FALLBACK_NAMESERVERS_V6);
        }
    }
    out
}

/// A `nameserver` line a container cannot use: a loopback address (the container's own
/// loopback), or an IPv6 address when the container has no IPv6.
fn unreachable_nameserver(line: &str, ipv6: bool) -> bool {
    let mut words = line.split_whitespace();
    if !line.starts_with("nameserver") || words.next() != Some("nameserver") {
        return false;
    }
    match words.next().map(str::parse::<IpAddr>) {
        Some(Ok(IpAddr::V4(v4))) => v4.is_loopback(),
        Some(Ok(IpAddr::V6(v6))) => v6.is_loopback() || !ipv6,
        _ => false,
    }
}

/// The container's /etc/hosts: docker's header, the `--add-host` lines (`NAME:IP`, IP may be
/// `host-gateway`, the host's address on the container's network), then one line per address
/// of the container with its hostname (and the short name of a dotted one).
pub fn hosts_file(
    hostname: &str,
    addrs: &[IpAddr],
    extra_hosts: &[String],
    host_gateway: Option<IpAddr>,
) -> Result<String> {
    let mut hosts = String::from(HOSTS_HEADER);
    for extra in extra_hosts {
        let Some((name, ip)) = extra.split_once(':') else { bail!("bad format for add-host: {extra:?}") };
        let ip = match (ip, host_gateway) {
            ("host-gateway", Some(gateway)) => gateway.to_string(),
            ("host-gateway", None) => bail!("unable to derive the IP value for host-gateway"),
            (ip, _) => ip.to_string(),
        };
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let names = match hostname.split_once('.') {
        Some((short, _)) => format!("{hostname} {short}"),
        None => hostname.to_string(),
    };
    for addr in addrs {
        hosts.push_str(&format!("{addr}\t{names}\n"));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    //! Expected texts are docker 20.10.24's for the same host resolv.conf and flags.
    use super::*;

    const MIXED: &str = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\noptions edns0 trust-ad\n";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bridge_drops_loopback_nameservers() {
        assert_eq!(
            resolv_conf(MIXED, Resolution::HostResolvers, DnsFlags::default()),
            "nameserver 10.0.0.2\nsearch example.org\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn bridge_falls_back_to_googles_servers_when_only_loopback_ones_remain() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, Resolution::HostResolvers, DnsFlags::default()),
            "# generated\noptions edns0\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn bridge_without_ipv6_drops_ipv6_nameservers() {
        let host = "nameserver 10.0.0.2\nnameserver fd00::53\nsearch example.org\n";
        assert_eq!(
            resolv_conf(host, Resolution::HostResolvers, DnsFlags::default()),
            "nameserver 10.0.0.2\nsearch example.org\n"
        );
    }

    #[test]
    fn dns_flags_rebuild_the_file_from_the_hosts_entries() {
        let (servers, search, options) = (strings(&["1.1.1.1"]), strings(&["a.example"]), strings(&["ndots:3"]));
        let flags = DnsFlags { servers: &servers, search: &search, options: &options };
        assert_eq!(
            resolv_conf(MIXED, Resolution::HostResolvers, flags),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:3\n"
        );
        // Only a search of "." given: the host's nameservers as they are, loopback included.
        let dot = strings(&["."]);
        assert_eq!(
            resolv_conf(MIXED, Resolution::HostResolvers, DnsFlags { search: &dot, ..Default::default() }),
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0 trust-ad\n"
        );
        assert_eq!(
            resolv_conf(MIXED, Resolution::Host, DnsFlags { servers: &servers, ..Default::default() }),
            "search example.org\nnameserver 1.1.1.1\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn host_network_gets_the_hosts_file_unchanged() {
        assert_eq!(resolv_conf(MIXED, Resolution::Host, DnsFlags::default()), MIXED);
    }

    #[test]
    fn user_networks_name_the_embedded_dns_with_ndots_0() {
        assert_eq!(
            resolv_conf(MIXED, Resolution::EmbeddedDns, DnsFlags::default()),
            "search example.org\nnameserver 127.0.0.11\noptions edns0 trust-ad ndots:0\n"
        );
        let (servers, search, options) = (strings(&["1.1.1.1"]), strings(&["a.example"]), strings(&["ndots:3"]));
        let flags = DnsFlags { servers: &servers, search: &search, options: &options };
        assert_eq!(
            resolv_conf(MIXED, Resolution::EmbeddedDns, flags),
            "search a.example\nnameserver 127.0.0.11\noptions ndots:3\n"
        );
        let edns = strings(&["edns0"]);
        assert_eq!(
            resolv_conf(MIXED, Resolution::EmbeddedDns, DnsFlags { options: &edns, ..Default::default() }),
            "search example.org\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
        let host = "nameserver 10.0.0.2\nnameserver fd00::53\nsearch example.org\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host, Resolution::EmbeddedDns, DnsFlags::default()),
            "search example.org\nnameserver 127.0.0.11\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\nsearch example.org\n", Resolution::EmbeddedDns, DnsFlags::default()),
            "search example.org\nnameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn embedded_dns_forwards_to_the_hosts_resolvers_or_dns_flags() {
        assert_eq!(
            dns_upstream(MIXED, DnsFlags::default()),
            ["127.0.0.53:53".parse().expect("a"), "10.0.0.2:53".parse().expect("b")]
        );
        let servers = strings(&["1.1.1.1"]);
        assert_eq!(
            dns_upstream(MIXED, DnsFlags { servers: &servers, ..Default::default() }),
            ["1.1.1.1:53".parse::<SocketAddr>().expect("c")]
        );
    }

    #[test]
    fn hosts_file_has_extra_hosts_before_the_containers_own_line() {
        let extra = strings(&["db:10.1.2.3", "gw:host-gateway", "v6:fd00::1"]);
        let hosts = hosts_file("10354461f2d9", &["172.17.0.2".parse().expect("ip")], &extra, "172.17.0.1".parse().ok())
            .expect("hosts");
        assert_eq!(
            hosts,
            format!("{HOSTS_HEADER}10.1.2.3\tdb\n172.17.0.1\tgw\nfd00::1\tv6\n172.17.0.2\t10354461f2d9\n")
        );
        assert_eq!(hosts_file("myhost", &[], &[], None).expect("none"), HOSTS_HEADER);
        assert_eq!(
            hosts_file("a.example", &["10.0.0.2".parse().expect("ip")], &[], None).expect("fqdn"),
            format!("{HOSTS_HEADER}10.0.0.2\ta.example a\n")
        );
        let err = hosts_file("h", &[], &strings(&["gw:host-gateway"]), None).expect_err("no gateway");
        assert_eq!(err.to_string(), "unable to derive the IP value for host-gateway");
    }
}
