//! berthd's network library as root, in network namespaces the tests create: the embedded DNS
//! answering inside a namespace (busybox nslookup as a container would run it, and TCP), the
//! published-port path (held host ports + the CNI bridge and portmap plugins) reached from
//! 127.0.0.1, a host address and another container, and the DNS flags seen inside a container,
//! the same as docker 20.10's.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::{prebuilt_docker_archive, BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok, Background, Outcome};
use berth_integration::engines::scratch::Scratch;
use berth_integration::{require_root, unique_id};
use berthd::network::dns::{self, Directory, DnsEndpoint, DnsEntry};
use berthd::network::ports::{self, Endpoint};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sched::CloneFlags;
use serde_json::{json, Value};

/// Where Debian's containernetworking-plugins puts the CNI plugins.
const CNI_PATH: &str = "/usr/lib/cni";

/// A network namespace pinned under /run/netns (so `ip netns exec` finds it), `lo` up; deleted
/// when dropped, with every interface, route and iptables rule made in it.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        require_root();
        let name = unique_id(tag);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let netns = Netns { name };
        run_ok(Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]));
        netns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `f` on a thread that has joined the namespace (sockets it makes stay there).
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(self.path()).expect("opening the netns");
        std::thread::spawn(move || {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in the netns")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run(Command::new("ip").args(["netns", "del", &self.name]));
        if out.code != 0 {
            eprintln!("removing netns {}: {out}", self.name);
        }
    }
}

const CLIENT: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const WEB: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// `client` and `web` (alias `api`) share net1; `hidden` is on net2 only.
fn directory() -> Arc<Directory> {
    let directory = Directory::default();
    let endpoint = |network: &str, addr: &str, aliases: &[&str]| DnsEndpoint {
        network: network.to_string(),
        addr: addr.parse().expect("ip"),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    };
    for (id, name, endpoints) in [
        (CLIENT.to_string(), "client", vec![endpoint("net1", "10.88.0.5", &[])]),
        (WEB.to_string(), "web", vec![endpoint("net1", "10.88.0.2", &["api"])]),
        ("c".repeat(64), "hidden", vec![endpoint("net2", "10.89.0.3", &[])]),
    ] {
        directory.insert(DnsEntry { container_id: id, name: name.to_string(), endpoints });
    }
    Arc::new(directory)
}

/// The answer of the stand-in for the host's resolver: `outside.test` is 192.0.2.7, anything
/// else does not exist.
fn upstream_answer(raw: &[u8]) -> Vec<u8> {
    let query = Message::from_vec(raw).expect("query to the upstream");
    let mut reply = Message::new();
    reply.set_id(query.id()).set_message_type(MessageType::Response).add_queries(query.queries().iter().cloned());
    let question = &query.queries()[0];
    if question.name().to_ascii() == "outside.test." && question.query_type() == RecordType::A {
        reply.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A::new(192, 0, 2, 7))));
    } else if question.name().to_ascii() != "outside.test." {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    reply.to_vec().expect("encoding the upstream's answer")
}

/// Starts the stand-in for the host's resolver on 127.0.0.1 in the test's own namespace, UDP
/// and TCP on one port; its threads end with the test binary.
fn start_upstream() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("upstream udp");
        let addr = udp.local_addr().expect("upstream addr");
        let Ok(tcp) = TcpListener::bind(addr) else { continue };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((len, client)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&upstream_answer(&buf[..len]), client);
            }
        });
        std::thread::spawn(move || {
            for mut stream in tcp.incoming().flatten() {
                if let Ok(raw) = read_framed(&mut stream) {
                    let _ = write_framed(&mut stream, &upstream_answer(&raw));
                }
            }
        });
        return addr;
    }
}

fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut raw)?;
    Ok(raw)
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let mut framed = u16::try_from(message.len()).expect("small message").to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

/// The embedded DNS serving `directory()` for `client` in a fresh namespace, forwarding to the
/// stand-in upstream. The runtime must outlive the handle.
fn serve_dns() -> (Netns, tokio::runtime::Runtime, dns::DnsHandle) {
    let netns = Netns::new("bdns");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let handle = {
        let _entered = runtime.enter();
        dns::serve(&netns.path(), CLIENT, directory(), vec![start_upstream()]).expect("serving DNS")
    };
    (netns, runtime, handle)
}

/// busybox nslookup against the embedded DNS, run inside the namespace as a container would.
fn nslookup(netns: &Netns, name: &str) -> Outcome {
    run(&mut netns.exec(&["busybox", "nslookup", name, "127.0.0.11"]))
}

#[test]
fn embedded_dns_answers_names_of_containers_on_shared_networks_and_forwards_the_rest() {
    let (netns, _runtime, _handle) = serve_dns();
    for name in ["web", "api", "WEB", "web.net1", "bbbbbbbbbbbb"] {
        let out = nslookup(&netns, name);
        assert!(out.code == 0 && out.stdout.contains("Address: 10.88.0.2"), "{name}: {out}");
    }
    // Not on a network the asker is on: the upstream resolver says it does not exist.
    for name in ["hidden", "no-such-name"] {
        let out = nslookup(&netns, name);
        assert!(out.stdout.contains("NXDOMAIN") || out.stderr.contains("NXDOMAIN"), "{name}: {out}");
        assert!(!out.stdout.contains("10.89.0.3"), "{name}: {out}");
    }
    let out = nslookup(&netns, "outside.test");
    assert!(out.code == 0 && out.stdout.contains("Address: 192.0.2.7"), "forwarded: {out}");
    let out = nslookup(&netns, "10.88.0.2");
    assert!(out.code == 0 && out.stdout.contains("name = web.net1"), "reverse: {out}");
}

/// One query over TCP to 127.0.0.11:53 from inside the namespace.
fn tcp_query(netns: &Netns, name: &str) -> Message {
    let mut query = Message::new();
    query
        .set_id(4242)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(format!("{name}.")).expect("name"), RecordType::A));
    let raw = query.to_vec().expect("encoding the query");
    netns.enter(move || {
        let mut stream = TcpStream::connect(dns::DNS_ADDR).expect("connecting over TCP");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        write_framed(&mut stream, &raw).expect("sending the query");
        Message::from_vec(&read_framed(&mut stream).expect("reading the answer")).expect("parsing the answer")
    })
}

fn a_records(message: &Message) -> Vec<IpAddr> {
    message
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn embedded_dns_answers_and_forwards_over_tcp() {
    let (netns, _runtime, _handle) = serve_dns();
    let answer = tcp_query(&netns, "api");
    assert_eq!((answer.id(), a_records(&answer)), (4242, vec![IpAddr::from([10, 88, 0, 2])]), "{answer:?}");
    let answer = tcp_query(&netns, "outside.test");
    assert_eq!(a_records(&answer), [IpAddr::from([192, 0, 2, 7])], "{answer:?}");
    assert_eq!(tcp_query(&netns, "hidden").response_code(), ResponseCode::NXDomain);
}

#[test]
fn embedded_dns_closes_its_sockets_when_stopped() {
    let (netns, _runtime, handle) = serve_dns();
    assert!(netns.enter(|| UdpSocket::bind(dns::DNS_ADDR).is_err()), "the server holds 127.0.0.11:53");
    handle.stop();
    // The sockets close when the aborted tasks are dropped, on the runtime's threads.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !netns.enter(|| UdpSocket::bind(dns::DNS_ADDR).is_ok() && TcpListener::bind(dns::DNS_ADDR).is_ok()) {
        assert!(Instant::now() < deadline, "127.0.0.11:53 still bound after stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a CNI plugin inside `host` (standing for the host's namespace) for the container
/// namespace `container` and returns its result.
fn cni(host: &Netns, plugin: &str, command: &str, container: &Netns, config: &Value) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config.to_string()).expect("writing the CNI config");
    let out = run(host
        .exec(&["sh", "-c", &format!("exec {CNI_PATH}/{plugin} < {}", config_file.display())])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &container.name)
        .env("CNI_NETNS", container.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_PATH));
    assert_eq!(out.code, 0, "{plugin} {command}: {out}");
    if out.stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out.stdout).expect("the plugin's result")
    }
}

/// busybox wget of `url` from inside `netns` (no `-q` or `-T`: busybox 1.35's static wget crashes with them).
fn fetch(netns: &Netns, url: &str) -> Outcome {
    run(&mut netns.exec(&["busybox", "wget", "-O", "-", url]))
}

#[test]
fn published_ports_reach_the_container_from_loopback_a_host_address_and_other_containers() {
    let host = Netns::new("bph");
    let (web, other) = (Netns::new("bpc"), Netns::new("bpc"));
    let ipam = tempfile::tempdir().expect("ipam dir");
    let bridge = json!({
        "cniVersion": "1.0.0", "name": "bp", "type": "bridge", "bridge": "bp0", "isGateway": true,
        "ipMasq": true, "hairpinMode": true,
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": ipam.path(), "routes": [{"dst": "0.0.0.0/0"}]},
    });
    let web_result = cni(&host, "bridge", "ADD", &web, &bridge);
    cni(&host, "bridge", "ADD", &other, &bridge);
    run_ok(Command::new("ip").args(["-n", &host.name, "addr", "add", "192.0.2.10/32", "dev", "lo"]));

    // The host port is reserved (an ephemeral one, held) in the host's namespace.
    let reservation = host
        .enter(|| ports::publish(&["80".into(), "5000/udp".into()], false, &[], Endpoint { name: "web", id: WEB }))
        .expect("reserving the host ports");
    let (port, udp_port) = (reservation.bindings()[0].host_port, reservation.bindings()[1].host_port);
    let portmap = json!({
        "cniVersion": "1.0.0", "name": "bp", "type": "portmap", "snat": true,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": reservation.cni_port_mappings()},
        "prevResult": web_result,
    });
    cni(&host, "portmap", "ADD", &web, &portmap);

    let site = tempfile::tempdir().expect("site dir");
    std::fs::write(site.path().join("index.html"), "from-container\n").expect("index.html");
    let site_dir = site.path().to_str().expect("utf-8 path");
    let mut server = Background::spawn(&mut web.exec(&["busybox", "httpd", "-f", "-p", "80", "-h", site_dir]));
    server
        .wait_for("httpd in the container", Duration::from_secs(30), || fetch(&web, "http://127.0.0.1:80/").code == 0);

    for (from, address) in [(&host, "127.0.0.1"), (&host, "192.0.2.10"), (&host, "10.99.0.1"), (&other, "10.99.0.1")] {
        let out = fetch(from, &format!("http://{address}:{port}/"));
        assert_eq!((out.code, out.stdout.as_str()), (0, "from-container\n"), "{address}:{port}: {out}");
    }
    // UDP: a server in the container answers datagrams sent to the held host port.
    let udp_server = web.enter(|| UdpSocket::bind("0.0.0.0:5000")).expect("udp server in the container");
    udp_server.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, client)) = udp_server.recv_from(&mut buf) {
            let _ = udp_server.send_to(b"from-container", client);
        }
    });
    for address in ["127.0.0.1", "192.0.2.10"] {
        let reply = host.enter(move || udp_exchange((address, udp_port)));
        assert_eq!(reply.as_deref(), Some("from-container"), "udp {address}:{udp_port}");
    }
    // While published, nobody else in the host's namespace can take the port.
    assert!(host.enter(move || TcpListener::bind(("0.0.0.0", port)).is_err()));
    drop(reservation);
    assert!(host.enter(move || TcpListener::bind(("0.0.0.0", port)).is_ok()));
}

/// Sends a datagram to `to` and returns the answer; a few tries, as UDP may drop one.
fn udp_exchange(to: (&str, u16)) -> Option<String> {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp client");
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut buf = [0u8; 64];
    (0..3).find_map(|_| {
        socket.send_to(b"ping", to).ok()?;
        let len = socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    })
}

/// The busybox image archive, built once per test binary under cargo's tmp directory.
fn image_archive() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        prebuilt_docker_archive().unwrap_or_else(|| {
            BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-dns-image")).docker_archive()
        })
    })
    .clone()
}

#[test]
fn dns_flags_and_extra_hosts_are_seen_inside_the_container() {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", image_archive().to_str().expect("utf-8 path")]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--dns",
        "10.0.0.2",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--add-host",
        "db:10.1.2.3",
        "-h",
        "box",
        IMAGE_REF,
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    assert!(out.starts_with("search example.org\nnameserver 10.0.0.2\noptions ndots:2\n"), "{out}");
    assert!(out.ends_with("ff02::2\tip6-allrouters\n10.1.2.3\tdb\n"), "{out}");
    // host-gateway needs a network with a gateway; refused, and no container is left.
    let out = b.berth(&["run", "--rm", "--network", "none", "--add-host", "gw:host-gateway", IMAGE_REF, "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("unable to derive the IP value for host-gateway"), "{out}");
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty(), "a container was left behind");
}

#[test]
fn etc_files_are_the_same_as_dockers_for_the_same_flags() {
    let scratch = Scratch::new("dnsdock");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    dockerd.load(&image_archive());
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", image_archive().to_str().expect("utf-8 path")]);
    let cases: [&[&str]; 5] = [
        &["--network", "none"],
        &[
            "--network",
            "none",
            "--dns",
            "10.0.0.2",
            "--dns-search",
            "example.org",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "v6:fd00::1",
        ],
        &["--network", "none", "--dns-search", "."],
        &["--network", "host"],
        &["--network", "host", "--dns", "10.0.0.2", "--add-host", "db:10.1.2.3"],
    ];
    for flags in cases {
        let command = ["cat", "/etc/resolv.conf", "/etc/hosts"];
        let docker = run_ok(dockerd.docker().args(["run", "--rm"]).args(flags).arg(IMAGE_REF).args(command));
        let berth = b.ok(&[&["run", "--rm"], flags, &[IMAGE_REF], &command].concat());
        assert_eq!(berth, docker, "{flags:?}");
    }
}
