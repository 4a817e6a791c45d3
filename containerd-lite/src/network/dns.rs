//! berthd's embedded DNS server for containers on user-defined networks, as docker's: a container
//! resolves the names, ids and aliases of the containers it shares a network with (and their
//! addresses back to names); every other name goes to the host's resolvers.
//!
//! Design: berthd binds a UDP and a TCP socket on 127.0.0.11:53 inside the container's network
//! namespace (from a short-lived thread that joins the namespace only to create them: a socket
//! stays in the namespace it was created in), then serves both from its own tokio runtime in the
//! host namespace. No iptables DNAT is needed, forwarding uses the host's resolvers as the host
//! does (loopback ones too), and a container costs two sockets and two tasks, no thread.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The address containers' resolv.conf names, as docker's.
pub const DNS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

/// docker's TTL for the names it answers.
const TTL: u32 = 600;
/// How long one upstream resolver gets to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an idle TCP client connection is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest DNS message (TCP's 16-bit length).
const MAX_MESSAGE: usize = 65535;

/// What the DNS server knows about containers: berthd's network records answer it.
pub trait NameTable: Send + Sync {
    /// The addresses `name` (a container name, id or id prefix, or network alias; lower case,
    /// without the trailing dot) has for `asker` (a container id): only containers on a network
    /// `asker` is on count. Empty when the name is not one of them.
    fn lookup(&self, asker: &str, name: &str) -> Vec<IpAddr>;

    /// The name of the container that has `addr` on a network `asker` is on, for PTR queries.
    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String>;
}

/// One container as the embedded DNS knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEntry {
    /// The full container id.
    pub container_id: String,
    /// The container's name.
    pub name: String,
    /// Its addresses, one per network it is on.
    pub endpoints: Vec<DnsEndpoint>,
}

/// A container's address on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    /// The network's name.
    pub network: String,
    /// The container's address on it.
    pub addr: IpAddr,
    /// `--network-alias` names on this network.
    pub aliases: Vec<String>,
}

/// berthd's [`NameTable`]: the containers on user-defined networks, added at task start and
/// removed at exit. A container is found by its name, its 12-character short id (a full id is
/// longer than a DNS label may be) or an alias, each optionally followed by `.NETWORK`, as
/// docker's resolver finds them.
#[derive(Debug, Default)]
pub struct Directory {
    entries: RwLock<HashMap<String, DnsEntry>>,
}

impl Directory {
    /// Adds or replaces a container.
    pub fn insert(&self, entry: DnsEntry) {
        self.write().insert(entry.container_id.clone(), entry);
    }

    /// Forgets a container.
    pub fn remove(&self, container_id: &str) {
        self.write().remove(container_id);
    }

    // A panic while holding the lock cannot leave the map half-changed (each change is one
    // insert or remove), so a poisoned lock is still good.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, DnsEntry>> {
        self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, DnsEntry>> {
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The endpoints on networks `asker` is on, with their container.
    fn shared_endpoints<'a>(
        entries: &'a HashMap<String, DnsEntry>,
        asker: &str,
    ) -> impl Iterator<Item = (&'a DnsEntry, &'a DnsEndpoint)> {
        let networks: Vec<&str> =
            entries.get(asker).map(|me| me.endpoints.iter().map(|e| e.network.as_str()).collect()).unwrap_or_default();
        entries.values().flat_map(move |entry| {
            let networks = networks.clone();
            entry.endpoints.iter().filter(move |e| networks.contains(&e.network.as_str())).map(move |e| (entry, e))
        })
    }
}

impl NameTable for Directory {
    fn lookup(&self, asker: &str, name: &str) -> Vec<IpAddr> {
        let entries = self.read();
        let addrs = Self::shared_endpoints(&entries, asker)
            .filter(|(entry, endpoint)| {
                let is_this = |n: &str| {
                    n == entry.name.to_ascii_lowercase()
                        || (n.len() == 12 && entry.container_id.starts_with(n))
                        || endpoint.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
                };
                is_this(name) || name.strip_suffix(&format!(".{}", endpoint.network)).is_some_and(is_this)
            })
            .map(|(_, endpoint)| endpoint.addr)
            .collect();
        addrs
    }

    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String> {
        let entries = self.read();
        let name = Self::shared_endpoints(&entries, asker)
            .find(|(_, endpoint)| endpoint.addr == addr)
            .map(|(entry, endpoint)| format!("{}.{}", entry.name, endpoint.network));
        name
    }
}

/// A running DNS server for one container; dropping it stops serving and closes its sockets
/// (an open TCP client connection ends on its own, at its idle timeout or when the client closes).
#[derive(Debug)]
pub struct DnsHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl DnsHandle {
    /// Stops serving (the same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What one container's server answers with.
struct Resolver {
    container_id: String,
    table: Arc<dyn NameTable>,
    upstream: Vec<SocketAddr>,
}

/// Serves DNS on 127.0.0.11:53 in the network namespace at `netns` (a pinned netns path) for
/// container `container_id`: names from `table`, everything else forwarded to `upstream` in
/// order ([`super::etc_files::dns_upstream`] gives them). Must be called inside berthd's tokio
/// runtime; the netns's `lo` must be up.
pub fn serve(
    netns: &Path,
    container_id: &str,
    table: Arc<dyn NameTable>,
    upstream: Vec<SocketAddr>,
) -> Result<DnsHandle> {
    // tokio's from_std panics outside a runtime; say so instead.
    let runtime = tokio::runtime::Handle::try_current().context("the embedded DNS runs on berthd's tokio runtime")?;
    let (udp, tcp) = sockets_in_netns(netns)?;
    let context = || format!("serving DNS in {}", netns.display());
    udp.set_nonblocking(true).with_context(context)?;
    tcp.set_nonblocking(true).with_context(context)?;
    let udp = Arc::new(UdpSocket::from_std(udp).with_context(context)?);
    let tcp = TcpListener::from_std(tcp).with_context(context)?;
    let resolver = Arc::new(Resolver { container_id: container_id.to_string(), table, upstream });
    Ok(DnsHandle {
        tasks: vec![runtime.spawn(serve_udp(udp, resolver.clone())), runtime.spawn(serve_tcp(tcp, resolver))],
    })
}

/// Binds the server's sockets inside `netns`, from a thread that exits afterwards so that no
/// thread of berthd stays in the container's namespace.
fn sockets_in_netns(netns: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let file = File::open(netns).with_context(|| format!("opening network namespace {}", netns.display()))?;
    let display = netns.display().to_string();
    std::thread::spawn(move || -> Result<_> {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("joining network namespace {display}"))?;
        let udp =
            std::net::UdpSocket::bind(DNS_ADDR).with_context(|| format!("binding udp {DNS_ADDR} in {display}"))?;
        let tcp =
            std::net::TcpListener::bind(DNS_ADDR).with_context(|| format!("binding tcp {DNS_ADDR} in {display}"))?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| anyhow!("the thread binding DNS sockets in {} panicked", netns.display()))?
}

async fn serve_udp(socket: Arc<UdpSocket>, resolver: Arc<Resolver>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(container = %resolver.container_id, "embedded DNS: receiving: {e}");
                continue;
            }
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
        match resolver.answer_locally(&query) {
            Some(reply) => send_udp(&socket, &reply, client).await,
            // Forwarding waits on the network: one task per forwarded query keeps the socket
            // answering meanwhile.
            None => {
                let (socket, resolver, raw) = (socket.clone(), resolver.clone(), buf[..len].to_vec());
                tokio::spawn(async move {
                    let reply = resolver.forward(&query, &raw, false).await;
                    send_udp(&socket, &reply, client).await;
                });
            }
        }
    }
}

async fn send_udp(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    // An empty reply is one that could not be encoded: the client's retry is the better answer.
    if reply.is_empty() {
        return;
    }
    if let Err(e) = socket.send_to(reply, client).await {
        tracing::debug!("embedded DNS: answering {client}: {e}");
    }
}

async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_tcp_client(stream, resolver.clone()));
            }
            Err(e) => tracing::warn!(container = %resolver.container_id, "embedded DNS: accepting: {e}"),
        }
    }
}

/// Answers length-prefixed queries on one connection until the client closes it or is idle.
async fn serve_tcp_client(mut stream: TcpStream, resolver: Arc<Resolver>) {
    while let Ok(Ok(raw)) = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await {
        let Ok(query) = Message::from_vec(&raw) else { return };
        let reply = match resolver.answer_locally(&query) {
            Some(reply) => reply,
            None => resolver.forward(&query, &raw, true).await,
        };
        if reply.is_empty() || write_framed(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn read_framed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut raw = vec![0u8; usize::from(len)];
    stream.read_exact(&mut raw).await?;
    Ok(raw)
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| io::Error::other("DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

impl Resolver {
    /// The reply when the query is about a container (or malformed), `None` when it is for the
    /// upstream resolvers.
    fn answer_locally(&self, query: &Message) -> Option<Vec<u8>> {
        if query.message_type() != MessageType::Query || query.op_code() != OpCode::Query {
            return Some(reply(query, ResponseCode::NotImp, vec![]));
        }
        let [question] = query.queries() else {
            return Some(reply(query, ResponseCode::FormErr, vec![]));
        };
        let name = question.name();
        match question.query_type() {
            RecordType::A | RecordType::AAAA => {
                let addrs = self.table.lookup(&self.container_id, &plain_name(name));
                if addrs.is_empty() {
                    return None;
                }
                // A known name without an address of the asked family is an empty success, so
                // the client does not go on to ask the outside world about a container.
                let want_v4 = question.query_type() == RecordType::A;
                let answers = addrs
                    .into_iter()
                    .filter_map(|addr| match addr {
                        IpAddr::V4(v4) if want_v4 => Some(RData::A(A(v4))),
                        IpAddr::V6(v6) if !want_v4 => Some(RData::AAAA(AAAA(v6))),
                        _ => None,
                    })
                    .map(|rdata| Record::from_rdata(name.clone(), TTL, rdata))
                    .collect();
                Some(reply(query, ResponseCode::NoError, answers))
            }
            RecordType::PTR => {
                let addr = name.parse_arpa_name().ok().filter(|net| net.prefix_len() == net.max_prefix_len())?.addr();
                let target = self.table.reverse(&self.container_id, addr)?;
                let target = Name::from_ascii(format!("{target}.")).ok()?;
                Some(reply(
                    query,
                    ResponseCode::NoError,
                    vec![Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(target)))],
                ))
            }
            _ => None,
        }
    }

    /// Asks the upstream resolvers in turn, over the protocol the client used; SERVFAIL when
    /// none answers.
    async fn forward(&self, query: &Message, raw: &[u8], tcp: bool) -> Vec<u8> {
        for upstream in &self.upstream {
            let answer =
                if tcp { forward_tcp(*upstream, raw).await } else { forward_udp(*upstream, raw, query.id()).await };
            match answer {
                Ok(answer) => return answer,
                Err(e) => tracing::debug!(container = %self.container_id, "embedded DNS: upstream {upstream}: {e}"),
            }
        }
        reply(query, ResponseCode::ServFail, vec![])
    }
}

/// A name as the table knows it: lower case, no trailing dot.
fn plain_name(name: &Name) -> String {
    let ascii = name.to_lowercase().to_ascii();
    ascii.strip_suffix('.').unwrap_or(&ascii).to_string()
}

/// A response to `query` with `answers`.
fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Vec<u8> {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(query.queries().iter().cloned())
        .add_answers(answers);
    // Encoding our own message only fails on names the query itself carried; answer nothing
    // then rather than something malformed.
    response.to_vec().unwrap_or_default()
}

async fn forward_udp(upstream: SocketAddr, raw: &[u8], id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(raw).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        loop {
            let len = socket.recv(&mut buf).await?;
            // A stray datagram with another id is not the answer.
            if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Ok(buf[..len].to_vec());
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

async fn forward_tcp(upstream: SocketAddr, raw: &[u8]) -> io::Result<Vec<u8>> {
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, raw).await?;
        read_framed(&mut stream).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Table;

    impl NameTable for Table {
        fn lookup(&self, _asker: &str, name: &str) -> Vec<IpAddr> {
            match name {
                "web" => vec!["10.0.0.2".parse().expect("ip")],
                _ => vec![],
            }
        }
        fn reverse(&self, _asker: &str, addr: IpAddr) -> Option<String> {
            (addr == IpAddr::from([10, 0, 0, 2])).then(|| "web.net1".to_string())
        }
    }

    fn resolver() -> Resolver {
        Resolver { container_id: "c1".into(), table: Arc::new(Table), upstream: vec![] }
    }

    fn query(name: &str, kind: RecordType) -> Message {
        let mut message = Message::new();
        message.set_id(7).add_query(hickory_proto::op::Query::query(Name::from_ascii(name).expect("name"), kind));
        message
    }

    #[test]
    fn container_names_are_answered_locally_and_others_are_not() {
        let answer = resolver().answer_locally(&query("WEB.", RecordType::A)).expect("local");
        let answer = Message::from_vec(&answer).expect("parse");
        assert_eq!(answer.id(), 7);
        assert_eq!(answer.answers()[0].data(), &RData::A(A::new(10, 0, 0, 2)));
        let empty = Message::from_vec(&resolver().answer_locally(&query("web.", RecordType::AAAA)).expect("local"))
            .expect("parse");
        assert_eq!((empty.response_code(), empty.answers().len()), (ResponseCode::NoError, 0));
        assert!(resolver().answer_locally(&query("example.org.", RecordType::A)).is_none());
    }

    #[test]
    fn container_addresses_resolve_back_to_names() {
        let answer = resolver().answer_locally(&query("2.0.0.10.in-addr.arpa.", RecordType::PTR)).expect("local");
        let answer = Message::from_vec(&answer).expect("parse");
        assert_eq!(answer.answers()[0].data(), &RData::PTR(PTR(Name::from_ascii("web.net1.").expect("name"))));
        assert!(resolver().answer_locally(&query("3.0.0.10.in-addr.arpa.", RecordType::PTR)).is_none());
    }

    fn directory() -> Directory {
        let endpoint = |network: &str, addr: &str, aliases: &[&str]| DnsEndpoint {
            network: network.into(),
            addr: addr.parse().expect("ip"),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        };
        let directory = Directory::default();
        for (id, name, endpoints) in [
            ("a".repeat(64), "client", vec![endpoint("net1", "10.88.0.5", &[])]),
            ("b".repeat(64), "web", vec![endpoint("net1", "10.88.0.2", &["api"]), endpoint("net2", "10.89.0.2", &[])]),
            ("c".repeat(64), "hidden", vec![endpoint("net2", "10.89.0.3", &[])]),
        ] {
            directory.insert(DnsEntry { container_id: id, name: name.into(), endpoints });
        }
        directory
    }

    #[test]
    fn directory_finds_containers_on_shared_networks_only() {
        let directory = directory();
        let asker = "a".repeat(64);
        let web: Vec<IpAddr> = vec!["10.88.0.2".parse().expect("ip")];
        for name in ["web", "api", "web.net1", "bbbbbbbbbbbb"] {
            assert_eq!(directory.lookup(&asker, name), web, "{name}");
        }
        for name in ["hidden", "web.net2", "bbbbbbbbbbb", "nope"] {
            assert!(directory.lookup(&asker, name).is_empty(), "{name}");
        }
        assert_eq!(directory.reverse(&asker, "10.88.0.2".parse().expect("ip")).as_deref(), Some("web.net1"));
        assert_eq!(directory.reverse(&asker, "10.89.0.3".parse().expect("ip")), None);
        directory.remove(&"b".repeat(64));
        assert!(directory.lookup(&asker, "web").is_empty());
    }
}
