//! Resource usage of a container's cgroup in the shape of runc's `events` stats (the JSON field
//! names of runc's `types.Stats`), read from the v1 controller files or the v2 interface files.
//! Values a file does not provide stay zero and, where runc omits empty values, are left out.

use super::{CgroupPaths, Mode};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// runc `types.Stats`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// Cpuset of the cgroup.
    pub cpuset: CpuSet,
    /// Memory usage and limits.
    pub memory: Memory,
    /// Process count and limit.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Huge page usage per page size.
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT (not read by berth: always empty).
    pub intel_rdt: BTreeMap<String, u64>,
    /// Network interfaces (not read by berth: always null, as runc without them).
    pub network_interfaces: Option<Vec<u64>>,
}

/// runc `types.Cpu`.
#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    /// Usage.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// runc `types.CpuUsage`, in nanoseconds.
#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per CPU.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per CPU in kernel mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per CPU in user mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel mode.
    pub kernel: u64,
    /// User mode.
    pub user: u64,
}

/// runc `types.Throttling`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Time throttled, ns.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// runc `types.CPUSet` (the lists as the kernel prints them expanded).
#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    /// CPUs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// Memory nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

/// runc `types.Memory`.
#[derive(Debug, Default, Serialize)]
pub struct Memory {
    /// Page cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Swap (v1: memory+swap).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP memory (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// runc `types.MemoryEntry`.
#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    /// Limit (u64::MAX when unlimited).
    pub limit: u64,
    /// Usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// runc `types.Pids`.
#[derive(Debug, Default, Serialize)]
pub struct Pids {
    /// Processes now.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Limit (0 when unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// runc `types.Blkio`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    /// Bytes per device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations per device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// runc `types.BlkioEntry`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// Read, Write, Sync, Async, Discard or Total.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// Count.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// runc `types.Hugetlb`.
#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    /// Usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage (v1).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// A file's single number; "max" is u64::MAX; missing or unreadable is 0.
fn num(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match text.trim() {
        "max" => u64::MAX,
        t => t.parse().unwrap_or(0),
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
fn flat_keyed(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn list(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path).unwrap_or_default().split_whitespace().filter_map(|v| v.parse().ok()).collect()
}

/// Expands "0-2,4" to [0,1,2,4].
fn cpu_list(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// v1 `blkio.throttle.io_*_recursive` lines: `8:0 Read 4096`.
fn v1_blkio(path: &Path) -> Vec<BlkioEntry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat` lines: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` as (bytes, ios) entries.
fn v2_io(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else { continue };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.to_string(), value });
        }
    }
    (bytes, ios)
}

/// Page sizes the kernel offers, as cgroup file names spell them (2MB, 1GB).
fn hugepage_sizes() -> Vec<String> {
    std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let kb: u64 = e.file_name().to_str()?.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some(match kb {
                kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
                kb if kb >= 1 << 10 => format!("{}MB", kb >> 10),
                kb => format!("{kb}KB"),
            })
        })
        .collect()
}

impl CgroupPaths {
    /// The v1 directory of the hierarchy that has `file`.
    fn with_file(&self, file: &str) -> Option<PathBuf> {
        self.dirs.iter().find(|d| d.join(file).exists()).map(|d| d.join(file))
    }

    /// Current usage and limits.
    pub fn stats(&self) -> Result<Stats> {
        Ok(match self.mode {
            Mode::V1 => self.stats_v1(),
            Mode::V2 => stats_v2(self.dirs.first().map(PathBuf::as_path).unwrap_or(Path::new("/nonexistent"))),
        })
    }

    fn stats_v1(&self) -> Stats {
        let f = |file: &str| self.with_file(file).unwrap_or_default();
        let mut s = Stats::default();
        let hz_ns = 1_000_000_000 / clock_ticks();
        let cpuacct = flat_keyed(&f("cpuacct.stat"));
        s.cpu.usage = CpuUsage {
            total: num(&f("cpuacct.usage")),
            percpu: list(&f("cpuacct.usage_percpu")),
            percpu_kernel: list(&f("cpuacct.usage_percpu_sys")),
            percpu_user: list(&f("cpuacct.usage_percpu_user")),
            kernel: cpuacct.get("system").copied().unwrap_or(0) * hz_ns,
            user: cpuacct.get("user").copied().unwrap_or(0) * hz_ns,
        };
        let cpu = flat_keyed(&f("cpu.stat"));
        s.cpu.throttling = Throttling {
            periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: cpu.get("throttled_time").copied().unwrap_or(0),
        };
        s.cpuset.cpus = cpu_list(&std::fs::read_to_string(f("cpuset.effective_cpus")).unwrap_or_default());
        s.cpuset.mems = cpu_list(&std::fs::read_to_string(f("cpuset.effective_mems")).unwrap_or_default());
        let entry = |prefix: &str| MemoryEntry {
            limit: num(&f(&format!("{prefix}.limit_in_bytes"))),
            usage: num(&f(&format!("{prefix}.usage_in_bytes"))),
            max: num(&f(&format!("{prefix}.max_usage_in_bytes"))),
            failcnt: num(&f(&format!("{prefix}.failcnt"))),
        };
        s.memory.usage = entry("memory");
        s.memory.swap = entry("memory.memsw");
        s.memory.kernel = entry("memory.kmem");
        s.memory.kernel_tcp = entry("memory.kmem.tcp");
        s.memory.raw = flat_keyed(&f("memory.stat"));
        s.memory.cache = s.memory.raw.get("total_cache").or(s.memory.raw.get("cache")).copied().unwrap_or(0);
        s.pids = Pids { current: num(&f("pids.current")), limit: pids_limit(num(&f("pids.max"))) };
        s.blkio.io_service_bytes_recursive = v1_blkio(&f("blkio.throttle.io_service_bytes_recursive"));
        s.blkio.io_serviced_recursive = v1_blkio(&f("blkio.throttle.io_serviced_recursive"));
        for size in hugepage_sizes() {
            if let Some(usage) = self.with_file(&format!("hugetlb.{size}.usage_in_bytes")) {
                let h = Hugetlb {
                    usage: num(&usage),
                    max: num(&f(&format!("hugetlb.{size}.max_usage_in_bytes"))),
                    failcnt: num(&f(&format!("hugetlb.{size}.failcnt"))),
                };
                s.hugetlb.insert(size, h);
            }
        }
        s
    }
}

fn stats_v2(dir: &Path) -> Stats {
    let f = |file: &str| dir.join(file);
    let mut s = Stats::default();
    let cpu = flat_keyed(&f("cpu.stat"));
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    s.cpu.usage =
        CpuUsage { total: us("usage_usec"), kernel: us("system_usec"), user: us("user_usec"), ..Default::default() };
    s.cpu.throttling = Throttling {
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };
    s.cpuset.cpus = cpu_list(&std::fs::read_to_string(f("cpuset.cpus.effective")).unwrap_or_default());
    s.cpuset.mems = cpu_list(&std::fs::read_to_string(f("cpuset.mems.effective")).unwrap_or_default());
    let events = flat_keyed(&f("memory.events"));
    s.memory.usage = MemoryEntry {
        limit: num(&f("memory.max")),
        usage: num(&f("memory.current")),
        max: num(&f("memory.peak")),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // runc reports v2 swap as memory+swap, like v1's memsw.
    let swap_max = num(&f("memory.swap.max"));
    s.memory.swap = MemoryEntry {
        limit: if swap_max == u64::MAX || s.memory.usage.limit == u64::MAX {
            u64::MAX
        } else {
            swap_max + s.memory.usage.limit
        },
        usage: num(&f("memory.swap.current")) + s.memory.usage.usage,
        ..Default::default()
    };
    s.memory.raw = flat_keyed(&f("memory.stat"));
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    s.pids = Pids { current: num(&f("pids.current")), limit: pids_limit(num(&f("pids.max"))) };
    let (bytes, ios) = v2_io(&std::fs::read_to_string(f("io.stat")).unwrap_or_default());
    s.blkio.io_service_bytes_recursive = bytes;
    s.blkio.io_serviced_recursive = ios;
    for size in hugepage_sizes() {
        let current = f(&format!("hugetlb.{size}.current"));
        if current.exists() {
            let failcnt = flat_keyed(&f(&format!("hugetlb.{size}.events"))).get("max").copied().unwrap_or(0);
            s.hugetlb.insert(size, Hugetlb { usage: num(&current), max: 0, failcnt });
        }
    }
    s
}

/// runc reports an unlimited pids.max as 0.
fn pids_limit(v: u64) -> u64 {
    if v == u64::MAX {
        0
    } else {
        v
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_formats() {
        assert_eq!(cpu_list("0-2,4\n"), vec![0, 1, 2, 4]);
        assert_eq!(cpu_list(""), Vec::<u16>::new());
        let (bytes, ios) = v2_io("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(bytes[1], BlkioEntry { major: 8, minor: 0, op: "Write".into(), value: 8192 });
        assert_eq!(ios[0].value, 1);
    }

    #[test]
    fn serializes_with_runcs_field_names() {
        let mut s = Stats::default();
        s.cpu.throttling.throttled_periods = 3;
        s.memory.kernel_tcp.limit = 7;
        s.pids.current = 2;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 3);
        assert_eq!(v["memory"]["kernelTCP"]["limit"], 7);
        assert_eq!(v["pids"], serde_json::json!({"current": 2}));
        assert_eq!(v["cpu"]["usage"], serde_json::json!({"kernel": 0, "user": 0}));
        assert!(v["network_interfaces"].is_null());
    }
}
