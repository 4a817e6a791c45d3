//! Networks through `berth` and berthd as a user sees them: addresses inside containers, traffic
//! between containers and to the gateway, the none/host/container: modes, network connect and
//! disconnect, internal networks, and what a container leaves behind (veths, namespaces, CNI
//! results, leases, iptables rules). Each test runs its private berthd in a network namespace
//! of its own, so bridges, rules and forwarding vanish with it. Which names resolve and which
//! published ports answer is compared with a private dockerd 20.10 in a namespace of its own.
//! Run as root.

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::image::{single_image_oci_archive, BusyboxImage, IMAGE_REF};
use berth_integration::engines::netns::NetNamespace;
use berth_integration::engines::process::{run_ok, Outcome};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The busybox image, built once per test binary under cargo's tmp directory.
fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-network-image")))
}

/// The busybox image's docker-archive.
fn busybox_archive() -> PathBuf {
    busybox().docker_archive()
}

/// busybox with `EXPOSE 80/tcp 5353/udp` in its config (umoci), as an OCI archive named
/// [`EXPOSED_IMAGE`].
const EXPOSED_IMAGE: &str = "localhost/exposed:latest";

fn exposed_image_archive() -> PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-network-exposed");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating the image dir");
            let layout = dir.join("oci");
            run_ok(Command::new("cp").arg("-a").arg(busybox().layout()).arg(&layout));
            let image = format!("{}:latest", layout.display());
            run_ok(Command::new("umoci").args([
                "config",
                "--image",
                &image,
                "--tag",
                "exposed",
                "--config.exposedports",
                "80/tcp",
                "--config.exposedports",
                "5353/udp",
            ]));
            let archive = dir.join("exposed.tar");
            single_image_oci_archive(&layout, "exposed", EXPOSED_IMAGE, &archive);
            archive
        })
        .clone()
}

/// A network namespace and a berthd inside it (default bridge on), busybox loaded. The daemon
/// drops (its containers removed) before the namespace.
struct Netd {
    b: Berthd,
    ns: NetNamespace,
}

impl Netd {
    fn start(prefix: &str) -> Netd {
        let ns = NetNamespace::new(prefix);
        let b = Berthd::start_in_netns(&ns.path(), &[]);
        let archive = busybox_archive();
        b.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
        Netd { b, ns }
    }

    /// `berth run --rm args… ` output (must succeed).
    fn run_rm(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        self.b.ok(&full)
    }

    /// `berth run -d args…`: the container's id.
    fn run_d(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "-d"];
        full.extend_from_slice(args);
        self.b.ok(&full).trim().to_string()
    }

    fn inspect(&self, what: &str) -> Value {
        let out = self.b.ok(&["inspect", what]);
        let list: Value = serde_json::from_str(&out).expect("inspect prints JSON");
        list[0].clone()
    }

    /// The container's address on `network`.
    fn ip(&self, container: &str, network: &str) -> String {
        let ip = self.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!ip.is_empty(), "{container} has no address on {network}");
        ip
    }

    /// What containers leave behind, counted: veths, pinned namespaces, CNI results, host-local
    /// leases, iptables rules (nat + filter).
    fn leak_counts(&self) -> Vec<(String, usize)> {
        let state = self.b.state();
        let count_dir = |p: PathBuf| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        let leases: usize = std::fs::read_dir(state.join("cni/ipam"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|net| {
                std::fs::read_dir(net.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|f| f.file_name().to_string_lossy().parse::<std::net::IpAddr>().is_ok())
                    .count()
            })
            .sum();
        let veths = self.ns.ok(&["ip", "-o", "link", "show", "type", "veth"]).lines().count();
        let rules = self.ns.ok(&["iptables-save"]).lines().filter(|l| l.starts_with("-A")).count();
        vec![
            ("veths".into(), veths),
            ("netns files".into(), count_dir(state.join("netns"))),
            ("CNI results".into(), count_dir(state.join("cni/results"))),
            ("leases".into(), leases),
            ("iptables rules".into(), rules),
        ]
    }
}

/// Polls `done` every 100 ms until true; panics naming `what` after `limit` (a hang guard).
fn poll(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bridge_container_has_an_address_of_the_subnet_and_reaches_the_gateway() {
    let n = Netd::start("berth-net-bridge");
    let bridge = n.b.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge"]);
    let config: Value = serde_json::from_str(&bridge).expect("IPAM config");
    let subnet = config[0]["Subnet"].as_str().expect("subnet").to_string();
    let gateway = config[0]["Gateway"].as_str().expect("gateway").to_string();
    let prefix = subnet.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
    let prefix = prefix.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();

    let addr = n.run_rm(&[IMAGE_REF, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {prefix}.")), "eth0 has no address of {subnet}: {addr}");
    let ping = n.run_rm(&[IMAGE_REF, "ping", "-c", "1", "-W", "5", &gateway]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let link = n.run_rm(&["--mac-address", "02:42:AC:11:00:99", IMAGE_REF, "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:ac:11:00:99"), "{link}");
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_ip() {
    let n = Netd::start("berth-net-user");
    n.b.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    let web =
        n.run_d(&["--network", "front", "--hostname", "webhost", IMAGE_REF, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let ip = n.ip(&web, "front");
    assert!(ip.starts_with("10.77.0."), "{ip}");
    let got = n.run_rm(&["--network", "front", IMAGE_REF, "wget", "-q", "-O", "-", &format!("http://{ip}/hostname")]);
    assert_eq!(got.trim(), "webhost");
}

#[test]
fn network_none_has_only_loopback_and_host_sees_the_hosts_interfaces() {
    let n = Netd::start("berth-net-modes");
    n.ns.ok(&["ip", "link", "add", "berthlink0", "type", "bridge"]);
    let none = n.run_rm(&["--network", "none", IMAGE_REF, "ip", "-o", "link"]);
    let links: Vec<&str> = none.lines().filter_map(|l| l.split(':').nth(1)).map(str::trim).collect();
    assert_eq!(links, ["lo"], "{none}");
    let host = n.run_rm(&["--network", "host", IMAGE_REF, "ip", "-o", "link"]);
    assert!(host.contains("berthlink0"), "{host}");
}

#[test]
fn container_mode_shares_the_other_containers_eth0() {
    let n = Netd::start("berth-net-shared");
    let first = n.run_d(&[IMAGE_REF, "sleep", "600"]);
    let ip = n.ip(&first, "bridge");
    let joined =
        n.run_rm(&["--network", &format!("container:{first}"), IMAGE_REF, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(joined.contains(&format!("inet {ip}/")), "{joined}");
    let hostname = n.run_rm(&["--network", &format!("container:{first}"), IMAGE_REF, "cat", "/etc/hostname"]);
    assert_eq!(hostname.trim(), &first[..12]);
}

#[test]
fn connect_and_disconnect_add_and_remove_eth1_of_a_running_container() {
    let n = Netd::start("berth-net-connect");
    n.b.ok(&["network", "create", "back"]);
    let c = n.run_d(&[IMAGE_REF, "sleep", "600"]);
    n.b.ok(&["network", "connect", "back", &c]);
    let links = n.b.ok(&["exec", &c, "ip", "-o", "link"]);
    assert!(links.contains("eth1"), "{links}");
    let ip = n.ip(&c, "back");
    let addr = n.b.ok(&["exec", &c, "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
    n.b.ok(&["network", "disconnect", "back", &c]);
    let links = n.b.ok(&["exec", &c, "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    let created = n.b.ok(&["create", IMAGE_REF, "sleep", "600"]).trim().to_string();
    n.b.ok(&["network", "connect", "--alias", "later", "back", &created]);
    n.b.ok(&["start", &created]);
    let links = n.b.ok(&["exec", &created, "ip", "-o", "link"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "connected before its start: {links}");
    let aliases = &n.inspect(&created)["NetworkSettings"]["Networks"]["back"]["Aliases"];
    assert!(aliases.as_array().is_some_and(|a| a.contains(&Value::from("later"))), "{aliases}");
    let err = n.b.berth(&["network", "rm", "bridge"]);
    assert!(err.stderr.contains("bridge is a pre-defined network and cannot be removed"), "{err}");
}

#[test]
fn internal_network_blocks_the_outside_but_not_its_neighbours() {
    let n = Netd::start("berth-net-internal");
    // An address of the daemon's namespace on another link: reachable from a normal network.
    n.ns.ok(&["ip", "link", "add", "berthlink1", "type", "bridge"]);
    n.ns.ok(&["ip", "addr", "add", "10.99.0.1/24", "dev", "berthlink1"]);
    n.ns.ok(&["ip", "link", "set", "berthlink1", "up"]);
    n.b.ok(&["network", "create", "--internal", "--subnet", "10.78.0.0/24", "sealed"]);
    let outside =
        n.b.berth(&["run", "--rm", "--network", "sealed", IMAGE_REF, "ping", "-c", "1", "-W", "2", "10.99.0.1"]);
    assert_ne!(outside.code, 0, "an internal network reached the outside: {outside}");
    let open = n.run_rm(&[IMAGE_REF, "ping", "-c", "1", "-W", "5", "10.99.0.1"]);
    assert!(open.contains("1 packets received"), "{open}");
    let web = n.run_d(&["--network", "sealed", IMAGE_REF, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let ip = n.ip(&web, "sealed");
    let got = n.run_rm(&["--network", "sealed", IMAGE_REF, "wget", "-q", "-O", "-", &format!("http://{ip}/hostname")]);
    assert_eq!(got.trim(), &web[..12]);
}

#[test]
fn nothing_is_left_after_rm_failed_starts_and_a_hundred_runs() {
    let n = Netd::start("berth-net-leaks");
    n.b.ok(&["network", "create", "--subnet", "10.79.0.0/24", "front"]);
    let baseline = n.leak_counts();

    let c = n.run_d(&[IMAGE_REF, "sleep", "600"]);
    n.b.ok(&["rm", "-f", &c]);
    assert_eq!(n.leak_counts(), baseline, "after rm -f of a running container");

    let holder = n.run_d(&["--network", "front", "--ip", "10.79.0.10", IMAGE_REF, "sleep", "600"]);
    assert_eq!(n.ip(&holder, "front"), "10.79.0.10");
    let with_holder = n.leak_counts();
    let taken = n.b.berth(&["run", "-d", "--network", "front", "--ip", "10.79.0.10", IMAGE_REF, "sleep", "600"]);
    assert_eq!(taken.code, 125, "a second container got a taken address: {taken}");
    assert_eq!(n.leak_counts(), with_holder, "after a start that failed in CNI");
    let missing = n.b.berth(&["run", "--network", "front", IMAGE_REF, "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing}");
    assert_eq!(n.leak_counts(), with_holder, "after a start that failed in the runtime");
    n.b.remove_all_containers();
    assert_eq!(n.leak_counts(), baseline, "after rm of every container");

    for _ in 0..100 {
        n.run_rm(&[IMAGE_REF, "true"]);
    }
    assert_eq!(n.leak_counts(), baseline, "after 100 run --rm");
    let outside = n.b.berth(&["run", "--network", "front", "--ip", "10.80.0.5", IMAGE_REF, "true"]);
    assert_eq!(outside.code, 125, "{outside}");
    assert!(outside.stderr.contains("10.80.0.5"), "{outside}");
    assert_eq!(n.leak_counts(), baseline, "after an address outside the subnet");

    let id = n.b.ok(&["network", "create", "passing"]).trim().to_string();
    n.run_rm(&["--network", "passing", IMAGE_REF, "true"]);
    let stopped = n.b.ok(&["create", "--network", "passing", IMAGE_REF, "true"]).trim().to_string();
    n.b.ok(&["network", "rm", "passing"]);
    assert_eq!(n.leak_counts(), baseline, "after network rm");
    let device = format!("br-{}", &id[..12]);
    assert_ne!(n.ns.run(&["ip", "link", "show", &device]).code, 0, "{device} outlived its network");
    let orphan = n.b.berth(&["start", &stopped]);
    assert!(orphan.stderr.contains("network passing not found"), "{orphan}");
    assert_eq!(n.leak_counts(), baseline, "after starting a container whose network is gone");
}

#[test]
fn nothing_is_left_of_a_container_that_exited_while_berthd_was_killed() {
    let mut n = Netd::start("berth-net-restart");
    let baseline = n.leak_counts();
    let kept = n.run_d(&[IMAGE_REF, "sleep", "600"]);
    let kept_ip = n.ip(&kept, "bridge");
    let one_running = n.leak_counts();
    assert_ne!(one_running, baseline, "a running container's veth, namespace and lease are counted");
    let gone = n.run_d(&[IMAGE_REF, "sleep", "600"]);
    let pid: i32 = n.inspect(&gone)["State"]["Pid"].as_i64().expect("pid") as i32;

    n.b.kill9();
    // SAFETY: kill has no memory-safety preconditions; the pid is the container's init.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "killing the container's init");
    n.b.restart();
    poll("the exit recorded after the restart", Duration::from_secs(30), || {
        n.inspect(&gone)["State"]["Status"] == "exited"
    });
    assert_eq!(n.leak_counts(), one_running, "after the restart");
    let addr = n.b.ok(&["exec", &kept, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {kept_ip}/")), "the running container lost its address: {addr}");
    n.b.remove_all_containers();
    assert_eq!(n.leak_counts(), baseline, "after rm");
}

#[test]
fn published_port_reaches_the_container_and_is_released_at_rm() {
    let n = Netd::start("berth-net-ports");
    let mut after_rm = Vec::new();
    for _ in 0..2 {
        let web =
            n.run_d(&["-p", "8080:80", "--hostname", "porthost", IMAGE_REF, "httpd", "-f", "-p", "80", "-h", "/etc"]);
        assert_eq!(n.b.ok(&["port", &web]).trim(), "80/tcp -> 0.0.0.0:8080");
        assert_eq!(n.b.ok(&["port", &web, "80"]).trim(), "0.0.0.0:8080");
        let missing = n.b.berth(&["port", &web, "81"]);
        assert!(missing.stderr.contains("No public port '81/tcp' published for"), "{missing}");
        let bindings = &n.inspect(&web)["NetworkSettings"]["Ports"]["80/tcp"][0];
        assert_eq!(bindings["HostPort"], "8080", "{bindings}");
        let gateway = n.inspect(&web)["NetworkSettings"]["Gateway"].as_str().unwrap_or_default().to_string();
        for host in ["127.0.0.1", gateway.as_str()] {
            let got = n.ns.ok(&["busybox", "wget", "-q", "-O", "-", &format!("http://{host}:8080/hostname")]);
            assert_eq!(got.trim(), "porthost", "through {host}");
        }
        let taken = n.b.berth(&["run", "-d", "-p", "8080:80", IMAGE_REF, "sleep", "600"]);
        assert_eq!(taken.code, 125, "a second container got a published port: {taken}");
        assert!(taken.stderr.contains("0.0.0.0:8080: bind: address already in use"), "{taken}");
        n.b.remove_all_containers();
        after_rm.push(n.leak_counts());
    }
    assert_eq!(after_rm[0], after_rm[1], "a second publish and rm left something the first did not");
}

#[test]
fn publish_all_ephemeral_ports_and_ranges_serve_from_the_host() {
    let n = Netd::start("berth-net-pall");
    n.b.ok(&["load", "-q", "-i", exposed_image_archive().to_str().expect("utf-8 path")]);
    let httpd = ["httpd", "-f", "-p", "80", "-h", "/etc"];
    let fetch =
        |port: &str| n.ns.ok(&["busybox", "wget", "-q", "-O", "-", &format!("http://127.0.0.1:{port}/hostname")]);
    let host_port = |listing: &str, key: &str| -> String {
        let line = listing.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {listing}"));
        line.rsplit(':').next().unwrap_or_default().to_string()
    };

    // -P: every EXPOSEd port of the image on a port the kernel picks.
    let all =
        n.run_d(&["-P", "--hostname", "allhost", EXPOSED_IMAGE].iter().chain(&httpd).copied().collect::<Vec<_>>());
    let ports = n.b.ok(&["port", &all]);
    assert_eq!(ports.lines().count(), 2, "{ports}");
    let (tcp, udp) = (host_port(&ports, "80/tcp -> 0.0.0.0:"), host_port(&ports, "5353/udp -> 0.0.0.0:"));
    assert!(tcp.parse::<u16>().is_ok_and(|p| p > 1024) && udp.parse::<u16>().is_ok(), "{ports}");
    assert_eq!(fetch(&tcp).trim(), "allhost");

    // -p CONTAINER: one ephemeral host port; -p A-B:C-D: ranges paired up.
    let one = n.run_d(
        &["-p", "80", "-p", "18090-18091:80-81", "--hostname", "onehost", IMAGE_REF]
            .iter()
            .chain(&httpd)
            .copied()
            .collect::<Vec<_>>(),
    );
    let ports = n.b.ok(&["port", &one, "80"]);
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 2, "{ports}");
    assert!(lines.contains(&"0.0.0.0:18090"), "{ports}");
    let ephemeral = lines.iter().find(|l| **l != "0.0.0.0:18090").map(|l| host_port(l, "0.0.0.0:")).unwrap_or_default();
    assert_eq!(fetch(&ephemeral).trim(), "onehost");
    assert_eq!(fetch("18090").trim(), "onehost");
    assert_eq!(n.b.ok(&["port", &one, "81"]).trim(), "0.0.0.0:18091");
    n.b.remove_all_containers();
}

#[test]
fn containers_on_a_user_network_resolve_each_others_names_and_aliases() {
    let n = Netd::start("berth-net-dns");
    n.b.ok(&["network", "create", "--subnet", "10.81.0.0/24", "named"]);
    let web = n.run_d(&[
        "--name",
        "web",
        "--network",
        "named",
        "--network-alias",
        "www",
        "--hostname",
        "webhost",
        IMAGE_REF,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let ip = n.ip(&web, "named");
    for name in ["web", "www", &web[..12], "web.named"] {
        let answer = n.run_rm(&["--network", "named", IMAGE_REF, "nslookup", name]);
        assert!(answer.contains(&format!("Address: {ip}")), "{name}: {answer}");
    }
    // What a user does with the names: programs in another container reach the container by them.
    for name in ["web", "www"] {
        let url = format!("http://{name}/hostname");
        let got = n.run_rm(&["--network", "named", IMAGE_REF, "wget", "-q", "-O", "-", &url]);
        assert_eq!(got.trim(), "webhost", "wget {url}");
        let ping = n.run_rm(&["--network", "named", IMAGE_REF, "ping", "-c", "1", "-W", "5", name]);
        assert!(ping.contains(&format!("({ip})")) && ping.contains("1 packets received"), "ping {name}: {ping}");
    }
    let resolv = n.run_rm(&["--network", "named", IMAGE_REF, "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    let hosts = n.b.ok(&["exec", &web, "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\twebhost")), "{hosts}");
}

#[test]
fn the_default_bridge_does_not_resolve_container_names() {
    // As docker's default bridge: no embedded DNS, no other container in /etc/hosts.
    let n = Netd::start("berth-net-nodns");
    let web = n.run_d(&["--name", "web", IMAGE_REF, "sleep", "600"]);
    let ip = n.ip(&web, "bridge");
    let resolv = n.run_rm(&[IMAGE_REF, "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");
    let hosts = n.run_rm(&[IMAGE_REF, "cat", "/etc/hosts"]);
    assert!(!hosts.contains("web") && !hosts.contains(&ip), "{hosts}");
    let lookup = n.b.berth(&["run", "--rm", IMAGE_REF, "nslookup", "web", "127.0.0.11"]);
    assert!(lookup.code != 0 && !lookup.stdout.contains(&ip), "{lookup}");
    let ping = n.b.berth(&["run", "--rm", IMAGE_REF, "ping", "-c", "1", "-W", "2", "web"]);
    assert!(ping.code != 0 && ping.stderr.contains("bad address 'web'"), "{ping}");
}

/// Undoes what a berthd with a bridge leaves in the host's namespace by design (its bridge, its
/// iptables chains, forwarding turned on), when the host test ends, even by a panic.
struct HostNetworkGuard {
    bridge: String,
    ip_forward: String,
}

impl Drop for HostNetworkGuard {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = std::process::Command::new(args[0]).args(&args[1..]).output();
        };
        quiet(&["ip", "link", "del", &self.bridge]);
        for (table, chain, from) in
            [("filter", "BERTH-FORWARD", "FORWARD"), ("nat", "BERTH-POSTROUTING", "POSTROUTING")]
        {
            quiet(&["iptables", "-w", "-t", table, "-D", from, "-j", chain]);
            quiet(&["iptables", "-w", "-t", table, "-F", chain]);
            quiet(&["iptables", "-w", "-t", table, "-X", chain]);
        }
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
    }
}

/// Veths and iptables rules of the host's namespace.
fn host_counts() -> (usize, usize) {
    let out = |args: &[&str]| {
        let o = std::process::Command::new(args[0]).args(&args[1..]).output().expect("running a host tool");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let veths = out(&["ip", "-o", "link", "show", "type", "veth"]).lines().count();
    let rules = out(&["iptables-save"]).lines().filter(|l| l.starts_with("-A")).count();
    (veths, rules)
}

#[test]
fn nothing_is_left_in_the_hosts_namespace_after_containers_on_the_default_bridge() {
    let bridge = format!("berthit{}", std::process::id() % 100_000);
    let _guard = HostNetworkGuard {
        bridge: bridge.clone(),
        ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into()),
    };
    let b = Berthd::start_with(&["--bridge", &bridge]);
    let archive = busybox_archive();
    b.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
    // The first container makes the bridge; what stays after it is the daemon's, not a leak.
    b.ok(&["run", "--rm", IMAGE_REF, "true"]);
    let baseline = host_counts();
    let state_files =
        || ["netns", "cni/results"].map(|d| std::fs::read_dir(b.state().join(d)).map(|e| e.count()).unwrap_or(0));
    let c = b.ok(&["run", "-d", IMAGE_REF, "sleep", "600"]).trim().to_string();
    let addr = b.ok(&["exec", &c, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet "), "{addr}");
    assert_ne!(host_counts(), baseline, "the running container's veth is counted");
    b.ok(&["rm", "-f", &c]);
    for _ in 0..10 {
        b.ok(&["run", "--rm", IMAGE_REF, "true"]);
    }
    let failed = b.berth(&["run", IMAGE_REF, "no-such-command"]);
    assert_eq!(failed.code, 127, "{failed}");
    b.remove_all_containers();
    assert_eq!(host_counts(), baseline, "veths and iptables rules of the host");
    assert_eq!(state_files(), [0, 0], "pinned namespaces and CNI results");
}

#[test]
fn network_cli_errors_match_dockers() {
    use berth_integration::engines::docker::Dockerd;
    use berth_integration::engines::process::run;
    use berth_integration::engines::scratch::Scratch;

    let scratch = Scratch::new("netcli");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    let b = Berthd::start();
    let cases: &[&[&str]] = &[
        &["network", "rm", "nope"],
        &["network", "inspect", "nope"],
        &["network", "rm", "host"],
        &["network", "rm", "none"],
        &["network", "create", "host"],
        &["network", "create", "-d", "host", "other"],
        &["network", "create", "-d", "null", "other"],
        &["network", "create", "--subnet", "bogus", "other"],
        &["network", "connect", "nope", "nobody"],
    ];
    for args in cases {
        let docker = run(dockerd.docker().args(*args));
        let berth = b.berth(args);
        assert_eq!(berth.code, docker.code, "exit code of {args:?}: docker {docker}\nberth {berth}");
        assert_eq!(berth.stderr, docker.stderr, "message of {args:?}");
    }
    // The same predefined networks, in the same table (the ids differ).
    let without_ids = |out: String| -> Vec<String> {
        out.lines().map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")).collect()
    };
    let docker = without_ids(run(dockerd.docker().args(["network", "ls"])).stdout);
    assert_eq!(without_ids(b.ok(&["network", "ls"])), docker);
    let format = ["network", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Internal}}\t{{.IPv6}}"];
    assert_eq!(b.ok(&format), run(dockerd.docker().args(format)).stdout);
    let archive = busybox_archive();
    dockerd.load(&archive);
    b.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
    let docker = run(dockerd.docker().args(["run", "--network", "nope", IMAGE_REF, "true"]));
    let berth = b.berth(&["run", "--network", "nope", IMAGE_REF, "true"]);
    assert_eq!(berth.code, docker.code, "docker {docker}\nberth {berth}");
    // docker's client adds its own lines around the daemon's message (warnings, "docker: ").
    assert!(docker.stderr.contains(berth.stderr.trim()), "docker {docker}\nberth {berth}");
}

/// Runs the engine's CLI with these arguments.
type Cli<'a> = Box<dyn Fn(&[&str]) -> Outcome + 'a>;

/// One engine's side of [`names_and_published_ports_answer_as_with_docker_20_10`]: a CLI
/// (`berth` or `docker`) talking to a daemon that runs in `ns`, where `uplink0` has HOST_ADDR.
struct Side<'a> {
    ns: &'a NetNamespace,
    cli: Cli<'a>,
}

/// The test namespaces' host address (on one end of a veth pair whose other end is in the same
/// namespace: nothing is routed past it; this kernel may have no dummy driver).
const HOST_ADDR: &str = "10.254.1.1";

/// Gives `ns` a host address besides loopback, as a host has.
fn add_host_address(ns: &NetNamespace) {
    ns.ok(&["ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"]);
    ns.ok(&["ip", "addr", "add", &format!("{HOST_ADDR}/24"), "dev", "uplink0"]);
    ns.ok(&["ip", "link", "set", "uplink0", "up"]);
    ns.ok(&["ip", "link", "set", "uplink1", "up"]);
}

/// The scenario as a user sees it, as (what was tried, whether it answered) pairs.
fn names_and_ports_scenario(side: &Side) -> Vec<(String, bool)> {
    let ok = |args: &[&str]| {
        let out = (side.cli)(args);
        assert_eq!(out.code, 0, "{args:?}: {out}");
        out.stdout.trim().to_string()
    };
    ok(&["network", "create", "--subnet", "10.91.0.0/24", "named"]);
    let web = ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "named",
        "--network-alias",
        "www",
        "--hostname",
        "webhost",
        "-p",
        "127.0.0.1:18080:80",
        "-p",
        "18081:80",
        IMAGE_REF,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    // A container on `network` fetches `url`: did the web container answer? (busybox 1.35's
    // wget crashes with -T, hence timeout.)
    let fetch = |network: &str, url: &str| {
        let out = (side.cli)(&[
            "run",
            "--rm",
            "--network",
            network,
            IMAGE_REF,
            "timeout",
            "10",
            "wget",
            "-q",
            "-O",
            "-",
            url,
        ]);
        out.code == 0 && out.stdout.trim() == "webhost"
    };
    let mut seen = Vec::new();
    for name in ["web", "www", "web.named", &web[..12]] {
        let label = if name.len() == 12 { "short id" } else { name };
        seen.push((format!("named network → {label}"), fetch("named", &format!("http://{name}/hostname"))));
    }
    seen.push(("default bridge → web".into(), fetch("bridge", "http://web/hostname")));
    for (to, port) in [("127.0.0.1", 18080), ("127.0.0.1", 18081), (HOST_ADDR, 18080), (HOST_ADDR, 18081)] {
        let url = format!("http://{to}:{port}/hostname");
        let out = side.ns.run(&["busybox", "timeout", "10", "busybox", "wget", "-q", "-O", "-", &url]);
        seen.push((format!("host → {to}:{port}"), out.code == 0 && out.stdout.trim() == "webhost"));
    }
    for port in [18080, 18081] {
        let url = format!("http://{HOST_ADDR}:{port}/hostname");
        seen.push((format!("named network → host address:{port}"), fetch("named", &url)));
    }
    seen
}

#[test]
fn names_and_published_ports_answer_as_with_docker_20_10() {
    use berth_integration::engines::docker::Dockerd;
    use berth_integration::engines::process::run;
    use berth_integration::engines::scratch::Scratch;

    let n = Netd::start("berth-net-vsdocker");
    add_host_address(&n.ns);
    let berth_side = Side { ns: &n.ns, cli: Box::new(|args| n.b.berth(args)) };
    let berth = names_and_ports_scenario(&berth_side);

    // dockerd networked (docker0, its iptables rules, the userland proxy) in a namespace of its
    // own: this thread joins it to start dockerd and its containerd there, and goes back. (Not
    // from a thread of its own: the daemons die with the thread that spawned them.)
    let docker_ns = NetNamespace::new("berth-net-docker");
    add_host_address(&docker_ns);
    let scratch = Scratch::new("netdock");
    let join = |path: &std::path::Path| {
        let ns = std::fs::File::open(path).expect("opening a network namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("joining a network namespace");
    };
    let home = std::fs::File::open("/proc/thread-self/ns/net").expect("this thread's network namespace");
    join(&docker_ns.path());
    let dockerd = Dockerd::start_networked(&scratch.path().join("docker"), scratch.cgroup_parent());
    nix::sched::setns(home, nix::sched::CloneFlags::CLONE_NEWNET).expect("back to the test's namespace");
    dockerd.load(&busybox_archive());
    let docker_side = Side { ns: &docker_ns, cli: Box::new(|args| run(dockerd.docker().args(args))) };
    let docker = names_and_ports_scenario(&docker_side);
    drop(docker_side);
    dockerd.remove_everything();
    let _ = run(dockerd.docker().args(["network", "rm", "named"]));
    drop(dockerd);

    assert_eq!(berth, docker, "berth (left) and docker 20.10 (right) disagree");
    // What docker does, spelled out (so that this cannot pass with both broken the same way).
    let answered: Vec<&str> = berth.iter().filter(|(_, ok)| *ok).map(|(what, _)| what.as_str()).collect();
    for expected in ["named network → web", "named network → www", "host → 127.0.0.1:18080", "host → 10.254.1.1:18081"]
    {
        assert!(answered.contains(&expected), "{expected} did not answer: {berth:?}");
    }
    let refused: Vec<&str> = berth.iter().filter(|(_, ok)| !*ok).map(|(what, _)| what.as_str()).collect();
    for expected in ["default bridge → web", "host → 10.254.1.1:18080"] {
        assert!(refused.contains(&expected), "{expected} answered: {berth:?}");
    }
}
