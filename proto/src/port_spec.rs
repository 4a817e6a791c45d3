//! docker's `-p/--publish` grammar, `[IP:][HOSTPORT[-HOSTPORT]:]CONTAINERPORT[-CONTAINERPORT][/PROTO]`,
//! parsed as docker's `nat.ParsePortSpec` does and with its error messages. It lives here so the
//! CLI refuses a bad `-p` before it talks to berthd (as docker's client does) and berthd parses
//! the same strings the same way.

use std::fmt;
use std::net::IpAddr;

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// `/tcp`, the default.
    Tcp,
    /// `/udp`.
    Udp,
    /// `/sctp`.
    Sctp,
}

impl Proto {
    /// The lower-case name docker and CNI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container port to publish, as asked for (before any host port is reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to listen on; `None` means every address (docker's 0.0.0.0).
    pub host_ip: Option<IpAddr>,
    /// The host ports to pick from, inclusive; `None` asks for an ephemeral port. A single port
    /// is `(p, p)`; a range with one container port means "the first free port of the range".
    pub host_ports: Option<(u16, u16)>,
    /// The port inside the container.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

/// A `-p` string that docker refuses, with docker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpecError(pub String);

impl fmt::Display for PortSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortSpecError {}

fn error(message: String) -> PortSpecError {
    PortSpecError(message)
}

/// docker's `ParsePortRange`: `N` or `N-M` with M ≥ N, each fitting in 16 bits.
fn parse_range(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        None => text.parse().ok().map(|p| (p, p)),
        Some((start, end)) => {
            let (start, end): (u16, u16) = (start.parse().ok()?, end.parse().ok()?);
            (end >= start).then_some((start, end))
        }
    }
}

/// docker's `convertToStandardNotation`: the long `-p` syntax (`target=80,published=8080,
/// protocol=udp`) as the short one (`8080:80/udp`); a short one is returned as it is.
pub fn standard_notation(raw: &str) -> Result<String, PortSpecError> {
    if !raw.contains('=') {
        return Ok(raw.to_string());
    }
    let (mut published, mut target, mut protocol) = ("", "", "tcp");
    for param in raw.split(',') {
        let mut parts = param.split('=');
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            return Err(error(format!("invalid publish opts format (should be name=value but got '{param}')")));
        };
        match key {
            "published" => published = value,
            "target" => target = value,
            "protocol" => protocol = value,
            _ => {}
        }
    }
    Ok(format!("{published}:{target}/{protocol}"))
}

/// Parses one `-p` value into one [`PortSpec`] per container port (a container range gives
/// several).
pub fn parse_publish(raw: &str) -> Result<Vec<PortSpec>, PortSpecError> {
    // docker's splitParts: the last part is the container port, the one before it the host
    // port, everything before that (rejoined, so IPv6 survives) the address.
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host_port) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let (proto, container_port) = split_proto(parts[n - 1]);

    let ip = match ip.strip_prefix('[') {
        Some(bracketed) => match bracketed.strip_suffix(']') {
            Some(inner) if !inner.contains(['[', ']']) => inner.to_string(),
            _ => return Err(error(format!("Invalid ip address {ip}: address {ip}:: missing ']' in address"))),
        },
        None => ip,
    };
    let host_ip = if ip.is_empty() {
        None
    } else {
        Some(ip.parse::<IpAddr>().map_err(|_| error(format!("Invalid ip address: {ip}")))?)
    };
    if container_port.is_empty() {
        return Err(error(format!("No port specified: {raw}<empty>")));
    }
    let (start, end) =
        parse_range(container_port).ok_or_else(|| error(format!("Invalid containerPort: {container_port}")))?;
    let host_ports = if host_port.is_empty() {
        None
    } else {
        Some(parse_range(host_port).ok_or_else(|| error(format!("Invalid hostPort: {host_port}")))?)
    };
    if let Some((host_start, host_end)) = host_ports {
        // A host range for a single container port is the range to pick a free port from.
        if end - start != host_end - host_start && end != start {
            return Err(error(format!(
                "Invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            )));
        }
    }
    let proto = parse_proto(proto)?;
    Ok((start..=end)
        .enumerate()
        .map(|(i, container_port)| PortSpec {
            host_ip,
            host_ports: host_ports.map(|(host_start, host_end)| {
                if start == end {
                    (host_start, host_end)
                } else {
                    // Equal-sized ranges pair up port by port; i fits, the sizes matched.
                    let port = host_start + i as u16;
                    (port, port)
                }
            }),
            container_port,
            proto,
        })
        .collect())
}

fn parse_proto(proto: &str) -> Result<Proto, PortSpecError> {
    match proto.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        "sctp" => Ok(Proto::Sctp),
        _ => Err(error(format!("Invalid proto: {proto}"))),
    }
}

/// docker's `SplitProtoPort`: `80/udp` → (`udp`, `80`); no or an empty protocol means tcp.
fn split_proto(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// Parses an image's `ExposedPorts` key (`80/tcp`, `53/udp`, `8000-8002/tcp`) into the specs
/// `-P` publishes: every exposed port on an ephemeral host port.
pub fn parse_exposed(key: &str) -> Result<Vec<PortSpec>, PortSpecError> {
    let (proto, port) = split_proto(key);
    let (start, end) = parse_range(port).ok_or_else(|| error(format!("Invalid containerPort: {port}")))?;
    let proto = parse_proto(proto)?;
    Ok((start..=end)
        .map(|container_port| PortSpec { host_ip: None, host_ports: None, container_port, proto })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> PortSpec {
        let specs = parse_publish(raw).expect(raw);
        assert_eq!(specs.len(), 1, "{raw}");
        specs[0]
    }

    fn err(raw: &str) -> String {
        parse_publish(raw).expect_err(raw).0
    }

    #[test]
    fn container_port_alone_asks_for_an_ephemeral_host_port() {
        assert_eq!(one("80"), PortSpec { host_ip: None, host_ports: None, container_port: 80, proto: Proto::Tcp });
        assert_eq!(one("53/udp").proto, Proto::Udp);
        assert_eq!(one("53/UDP").proto, Proto::Udp);
        assert_eq!(one("80/").proto, Proto::Tcp);
    }

    #[test]
    fn host_port_and_address_forms() {
        let spec = one("8080:80");
        assert_eq!((spec.host_ip, spec.host_ports), (None, Some((8080, 8080))));
        let spec = one("127.0.0.1:8080:80/udp");
        assert_eq!(spec.host_ip, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!((spec.host_ports, spec.proto), (Some((8080, 8080)), Proto::Udp));
        let spec = one("127.0.0.1::80");
        assert_eq!((spec.host_ip.is_some(), spec.host_ports), (true, None));
        assert_eq!(one("[::1]:8080:80").host_ip, Some("::1".parse().expect("ip")));
        assert_eq!(one("::1:8080:80").host_ip, Some("::1".parse().expect("ip")));
    }

    #[test]
    fn ranges_pair_up_or_pick_from_the_host_range() {
        let specs = parse_publish("8080-8082:80-82").expect("range");
        let pairs: Vec<_> = specs.iter().map(|s| (s.host_ports, s.container_port)).collect();
        assert_eq!(pairs, [(Some((8080, 8080)), 80), (Some((8081, 8081)), 81), (Some((8082, 8082)), 82)]);
        assert_eq!(one("8080-8090:80").host_ports, Some((8080, 8090)));
        assert_eq!(parse_publish("80-81").expect("range").len(), 2);
    }

    #[test]
    fn bad_specs_fail_with_dockers_messages() {
        assert_eq!(err("bad"), "Invalid containerPort: bad");
        assert_eq!(err("80:bad"), "Invalid containerPort: bad");
        assert_eq!(err("bad:80"), "Invalid hostPort: bad");
        assert_eq!(err("1.2.3:80:80"), "Invalid ip address: 1.2.3");
        assert_eq!(
            err("8080-8081:80-82"),
            "Invalid ranges specified for container and host Ports: 80-82 and 8080-8081"
        );
        assert_eq!(err("80/xyz"), "Invalid proto: xyz");
        assert_eq!(err(""), "No port specified: <empty>");
        assert_eq!(err("80:"), "No port specified: 80:<empty>");
        assert_eq!(err("82-80"), "Invalid containerPort: 82-80");
        assert_eq!(err("70000"), "Invalid containerPort: 70000");
    }

    #[test]
    fn long_syntax_converts_to_the_short_one() {
        assert_eq!(standard_notation("target=80,published=8080,protocol=udp").expect("long"), "8080:80/udp");
        assert_eq!(standard_notation("target=80").expect("ephemeral"), ":80/tcp");
        assert_eq!(standard_notation("8080:80").expect("short"), "8080:80");
        let converted = standard_notation("a=b").expect("unknown keys are ignored");
        assert_eq!(err(&converted), "No port specified: :/tcp<empty>");
        assert_eq!(
            standard_notation("target=80,bad").expect_err("no value").0,
            "invalid publish opts format (should be name=value but got 'bad')"
        );
    }

    #[test]
    fn exposed_ports_publish_on_ephemeral_host_ports() {
        let specs = parse_exposed("53/udp").expect("exposed");
        assert_eq!(specs, [PortSpec { host_ip: None, host_ports: None, container_port: 53, proto: Proto::Udp }]);
        assert_eq!(parse_exposed("80").expect("bare").len(), 1);
    }
}
