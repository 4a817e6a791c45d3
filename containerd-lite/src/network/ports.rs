//! Published ports (`-p`, `-P`): which host ports a container gets, held for as long as it runs,
//! and the CNI `portmap` runtime config that forwards them.
//!
//! Design: the forwarding is portmap's DNAT (PREROUTING for traffic from outside and from other
//! containers, OUTPUT for the host's own connections; with `snat: true` it marks and masquerades
//! hairpin and 127.0.0.1 traffic and enables route_localnet on the bridge). Checked with the
//! Debian plugins 1.1.1 on this kernel in throwaway namespaces: 127.0.0.1, a host address, the
//! bridge gateway, another container and the container itself all reach the container's port.
//! That is the kernel's forwarding path, no copy through a process, so throughput matches
//! docker's iptables path; a userland proxy was the alternative and would cost a copy per byte
//! plus a flow table for UDP. berthd still binds and holds a socket on every published host
//! port: that is how a taken port fails at start with docker's message, how ephemeral ports are
//! picked (the kernel's port 0), and it keeps other programs from binding the port while the
//! container runs. The held sockets never see a connection: DNAT rewrites the destination before
//! the local delivery decision (checked: a listening socket on the port got nothing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};
use berth_proto::port_spec::{parse_exposed, parse_publish, PortSpec, Proto};
use serde_json::json;

/// One published port, with the host port that was reserved for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    /// The host address the port is published on; `None` is every address.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

/// The host ports of one container, reserved until this is dropped (at task exit).
#[derive(Debug)]
pub struct Reservation {
    bindings: Vec<PortBinding>,
    /// The bound sockets, held only so that nobody else binds their ports.
    _held: Vec<OwnedFd>,
}

impl Reservation {
    /// The published ports, in the order they were asked for.
    pub fn bindings(&self) -> &[PortBinding] {
        &self.bindings
    }

    /// The `portMappings` runtime config of the CNI `portmap` plugin (the network's conflist
    /// declares `"capabilities": {"portMappings": true}` on it).
    pub fn cni_port_mappings(&self) -> serde_json::Value {
        cni_port_mappings(&self.bindings)
    }
}

/// The container whose ports are published, named in errors as docker names the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The container's name.
    pub name: &'a str,
    /// The container's full id.
    pub id: &'a str,
}

/// Publishes a container's ports at task start: parses what `-p`/`-P` ask for (`exposed` are
/// the image's `ExposedPorts` keys) and reserves the host ports. Hand
/// [`Reservation::cni_port_mappings`] to portmap; drop the reservation when the task exits.
pub fn publish(publish: &[String], publish_all: bool, exposed: &[String], endpoint: Endpoint) -> Result<Reservation> {
    reserve(&requested(publish, publish_all, exposed)?, endpoint)
}

/// What a container asks to publish: each `-p` (docker's grammar) and, with `-P`, every key of
/// the image's `ExposedPorts` (`80/tcp`) on an ephemeral host port. Errors are docker's.
fn requested(publish: &[String], publish_all: bool, exposed: &[String]) -> Result<Vec<PortSpec>> {
    let mut specs = Vec::new();
    for raw in publish {
        specs.extend(parse_publish(raw)?);
    }
    if publish_all {
        for key in exposed {
            let exposed = parse_exposed(key).with_context(|| format!("in the image's exposed port {key:?}"))?;
            for port in exposed {
                // docker publishes an exposed port only when no -p already binds it.
                if !specs.iter().any(|s| s.container_port == port.container_port && s.proto == port.proto) {
                    specs.push(port);
                }
            }
        }
    }
    Ok(specs)
}

/// Reserves a host port for every spec, at task start: binds (and holds) a socket on each, an
/// ephemeral port for specs without one, the first free port of a host range. A port that is
/// taken fails with docker's message and releases what was reserved so far.
pub fn reserve(specs: &[PortSpec], endpoint: Endpoint) -> Result<Reservation> {
    let mut bindings = Vec::with_capacity(specs.len());
    let mut held = Vec::with_capacity(specs.len());
    for spec in specs {
        if spec.proto == Proto::Sctp {
            bail!("publishing sctp ports is not supported by berth yet (container port {}/sctp)", spec.container_port);
        }
        let ip = spec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let (first, last) = spec.host_ports.unwrap_or((0, 0));
        let mut last_error = None;
        for port in first..=last {
            match bind(spec.proto, SocketAddr::new(ip, port)) {
                Ok((socket, host_port)) => {
                    held.push(socket);
                    bindings.push(PortBinding {
                        host_ip: spec.host_ip,
                        host_port,
                        container_port: spec.container_port,
                        proto: spec.proto,
                    });
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some((port, e)),
            }
        }
        if let Some((port, e)) = last_error {
            let family = if ip.is_ipv4() { "4" } else { "6" };
            let range = if first == last { String::new() } else { format!(" (every port of {first}-{last} is taken)") };
            bail!(
                "driver failed programming external connectivity on endpoint {} ({}): Error starting userland proxy: listen {}{family} {}: bind: {}{range}",
                endpoint.name,
                endpoint.id,
                spec.proto,
                SocketAddr::new(ip, port),
                os_error_text(&e)
            );
        }
    }
    Ok(Reservation { bindings, _held: held })
}

/// Go's wording of the errors a bind gives (`address already in use`), which docker prints.
fn os_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_ascii_lowercase(),
        None => e.to_string(),
    }
}

/// Binds one host port, returning the socket and the port the kernel gave (for port 0).
fn bind(proto: Proto, addr: SocketAddr) -> std::io::Result<(OwnedFd, u16)> {
    match proto {
        Proto::Tcp => {
            let listener = TcpListener::bind(addr)?;
            let port = listener.local_addr()?.port();
            Ok((listener.into(), port))
        }
        Proto::Udp => {
            let socket = UdpSocket::bind(addr)?;
            let port = socket.local_addr()?.port();
            Ok((socket.into(), port))
        }
        // Refused before any bind by `reserve`.
        Proto::Sctp => Err(std::io::ErrorKind::Unsupported.into()),
    }
}

/// The `portMappings` list portmap takes: `[{hostPort, containerPort, protocol, hostIP}]`.
pub fn cni_port_mappings(bindings: &[PortBinding]) -> serde_json::Value {
    bindings
        .iter()
        .map(|b| {
            let mut mapping = json!({
                "hostPort": b.host_port,
                "containerPort": b.container_port,
                "protocol": b.proto.as_str(),
            });
            if let Some(ip) = b.host_ip {
                mapping["hostIP"] = json!(ip.to_string());
            }
            mapping
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: Endpoint = Endpoint { name: "web", id: "0123abcd" };

    // Each test binds on a loopback address of its own, so that ports the kernel hands to tests
    // running in parallel (on 127.0.0.1) cannot take a port a test freed and binds again.

    fn specs(publish: &[&str]) -> Vec<PortSpec> {
        let publish: Vec<String> = publish.iter().map(|p| p.to_string()).collect();
        requested(&publish, false, &[]).expect("specs")
    }

    #[test]
    fn ephemeral_ports_are_picked_by_the_kernel_and_held() {
        let reservation = reserve(&specs(&["127.77.0.1::80", "127.77.0.1::53/udp"]), ENDPOINT).expect("reserve");
        let [tcp, udp] = reservation.bindings() else { panic!("two bindings") };
        assert_ne!(tcp.host_port, 0);
        assert_ne!(udp.host_port, 0);
        // Held: nobody else can bind it while the reservation lives, and can once it is dropped.
        assert!(TcpListener::bind(("127.77.0.1", tcp.host_port)).is_err());
        assert!(UdpSocket::bind(("127.77.0.1", udp.host_port)).is_err());
        let port = tcp.host_port;
        drop(reservation);
        assert!(TcpListener::bind(("127.77.0.1", port)).is_ok());
    }

    #[test]
    fn a_taken_port_fails_with_dockers_message_and_releases_the_others() {
        let taken = TcpListener::bind("127.77.0.2:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let free = TcpListener::bind("127.77.0.2:0").expect("bind");
        let free_port = free.local_addr().expect("addr").port();
        drop(free);
        let err = reserve(&specs(&[&format!("127.77.0.2:{free_port}:81"), &format!("127.77.0.2:{port}:80")]), ENDPOINT)
            .expect_err("taken");
        assert_eq!(
            err.to_string(),
            format!("driver failed programming external connectivity on endpoint web (0123abcd): Error starting userland proxy: listen tcp4 127.77.0.2:{port}: bind: address already in use")
        );
        assert!(TcpListener::bind(("127.77.0.2", free_port)).is_ok(), "the first port was released");
    }

    #[test]
    fn a_host_range_gives_its_first_free_port() {
        let taken = TcpListener::bind("127.77.0.3:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let Some(next) = port.checked_add(1) else { return };
        // The port after the taken one may be someone else's; then there is nothing to prove.
        if TcpListener::bind(("127.77.0.3", next)).is_err() {
            return;
        }
        let reservation = reserve(&specs(&[&format!("127.77.0.3:{port}-{next}:80")]), ENDPOINT).expect("reserve");
        assert_eq!(reservation.bindings()[0].host_port, next);
    }

    #[test]
    fn sctp_is_refused_by_name() {
        let err = reserve(&specs(&["127.77.0.4::5000/sctp"]), ENDPOINT).expect_err("sctp");
        assert_eq!(err.to_string(), "publishing sctp ports is not supported by berth yet (container port 5000/sctp)");
    }

    #[test]
    fn publish_all_adds_exposed_ports_not_already_published() {
        let specs = requested(&["8080:80".into()], true, &["80/tcp".into(), "53/udp".into()]).expect("specs");
        let ports: Vec<_> = specs.iter().map(|s| (s.host_ports, s.container_port, s.proto)).collect();
        assert_eq!(ports, [(Some((8080, 8080)), 80, Proto::Tcp), (None, 53, Proto::Udp)]);
    }

    #[test]
    fn cni_mappings_name_host_and_container_ports() {
        let bindings = [
            PortBinding { host_ip: None, host_port: 8080, container_port: 80, proto: Proto::Tcp },
            PortBinding {
                host_ip: Some("127.0.0.1".parse().expect("ip")),
                host_port: 5353,
                container_port: 53,
                proto: Proto::Udp,
            },
        ];
        assert_eq!(
            cni_port_mappings(&bindings),
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
            ])
        );
    }
}
