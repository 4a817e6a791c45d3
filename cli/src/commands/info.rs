//! `berth info`: docker's system-wide summary. Counts come from berthd (Containers.List,
//! Images.List, Version); host facts are read here, since berthd only listens on a local socket.

use std::collections::HashSet;
use std::io::{self, Write};

use anyhow::Result;
use berth_proto::containers::ListContainersRequest;
use berth_proto::images::ListImagesRequest;
use berth_proto::types::Empty;

use crate::daemon::{ctx, Berthd};
use crate::humanize;

/// berthd's runtimes, the default first (containerd-lite's `DEFAULT_RUNTIME`).
const RUNTIMES: [&str; 2] = ["io.containerd.berth.v2", "io.containerd.runc.v2"];

/// What `info` prints.
#[derive(Debug, Default, PartialEq)]
struct Info {
    containers: usize,
    running: usize,
    paused: usize,
    stopped: usize,
    images: usize,
    server_version: String,
    root_dir: String,
    host: HostFacts,
}

/// The host berthd runs on.
#[derive(Debug, Default, PartialEq)]
struct HostFacts {
    kernel_version: String,
    operating_system: String,
    architecture: String,
    cpus: usize,
    total_memory_bytes: u64,
    cgroup_version: u8,
}

/// Gathers the counts from berthd and prints the summary.
pub async fn run(berthd: &Berthd) -> Result<()> {
    let containers =
        berthd.containers().list(ctx(), &ListContainersRequest { all: true, ..Default::default() }).await?;
    let images = berthd.images().list(ctx(), &ListImagesRequest::default()).await?;
    let version = berthd.version().version(ctx(), &Empty::default()).await?;
    let statuses: Vec<&str> =
        containers.containers.iter().map(|c| c.state.as_ref().map_or("", |s| s.status.as_str())).collect();
    let count = |status: &str| statuses.iter().filter(|s| **s == status).count();
    let (running, paused) = (count("running"), count("paused"));
    let info = Info {
        containers: statuses.len(),
        running,
        paused,
        stopped: statuses.len() - running - paused,
        images: images.images.iter().map(|s| s.config_digest.as_str()).collect::<HashSet<_>>().len(),
        server_version: version.version,
        root_dir: version.root,
        host: HostFacts::read(),
    };
    io::stdout().lock().write_all(info.to_string().as_bytes())?;
    Ok(())
}

impl HostFacts {
    fn read() -> HostFacts {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        HostFacts {
            kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
            operating_system: pretty_name(&read("/etc/os-release")),
            architecture: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            total_memory_bytes: mem_total(&read("/proc/meminfo")),
            cgroup_version: if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { 2 } else { 1 },
        }
    }
}

/// os-release's PRETTY_NAME, unquoted (`Debian GNU/Linux 12 (bookworm)`).
fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// /proc/meminfo's MemTotal in bytes.
fn mem_total(meminfo: &str) -> u64 {
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()));
    kib.unwrap_or(0) * 1024
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = &self.host;
        writeln!(f, "Client:")?;
        writeln!(f, " Version:    {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(f)?;
        writeln!(f, "Server:")?;
        writeln!(f, " Containers: {}", self.containers)?;
        writeln!(f, "  Running: {}", self.running)?;
        writeln!(f, "  Paused: {}", self.paused)?;
        writeln!(f, "  Stopped: {}", self.stopped)?;
        writeln!(f, " Images: {}", self.images)?;
        writeln!(f, " Server Version: {}", self.server_version)?;
        writeln!(f, " Storage Driver: overlayfs")?;
        writeln!(f, " Logging Driver: json-file")?;
        writeln!(f, " Cgroup Driver: cgroupfs")?;
        writeln!(f, " Cgroup Version: {}", host.cgroup_version)?;
        writeln!(f, " Runtimes: {}", RUNTIMES.join(" "))?;
        writeln!(f, " Default Runtime: {}", RUNTIMES[0])?;
        writeln!(f, " Kernel Version: {}", host.kernel_version)?;
        writeln!(f, " Operating System: {}", host.operating_system)?;
        writeln!(f, " OSType: linux")?;
        writeln!(f, " Architecture: {}", host.architecture)?;
        writeln!(f, " CPUs: {}", host.cpus)?;
        writeln!(f, " Total Memory: {}", humanize::binary_size(host.total_memory_bytes))?;
        writeln!(f, " Berth Root Dir: {}", self.root_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_are_parsed_from_os_release_and_meminfo() {
        let os_release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(pretty_name(os_release), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(pretty_name(""), "Linux");
        assert_eq!(mem_total("MemTotal:       4000000 kB\nMemFree: 1 kB\n"), 4_096_000_000);
        assert_eq!(mem_total("garbage"), 0);
    }

    #[test]
    fn summary_reads_like_docker_info() {
        let info = Info {
            containers: 3,
            running: 1,
            paused: 1,
            stopped: 1,
            images: 2,
            server_version: "0.1.0".into(),
            root_dir: "/var/lib/berth".into(),
            host: HostFacts {
                kernel_version: "6.1.0-13-amd64".into(),
                operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
                architecture: "x86_64".into(),
                cpus: 2,
                total_memory_bytes: 4_102_000_000,
                cgroup_version: 2,
            },
        };
        let text = info.to_string();
        let server = text.split("Server:\n").nth(1).expect("a server part");
        assert_eq!(
            server,
            " Containers: 3
  Running: 1
  Paused: 1
  Stopped: 1
 Images: 2
 Server Version: 0.1.0
 Storage Driver: overlayfs
 Logging Driver: json-file
 Cgroup Driver: cgroupfs
 Cgroup Version: 2
 Runtimes: io.containerd.berth.v2 io.containerd.runc.v2
 Default Runtime: io.containerd.berth.v2
 Kernel Version: 6.1.0-13-amd64
 Operating System: Debian GNU/Linux 12 (bookworm)
 OSType: linux
 Architecture: x86_64
 CPUs: 2
 Total Memory: 3.82GiB
 Berth Root Dir: /var/lib/berth
"
        );
    }
}
