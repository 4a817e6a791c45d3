//! `linux.resources` as cgroup file writes. The translation from the spec to `(file, value)`
//! pairs is pure (unit-tested for both layouts, with runc's v1→v2 conversions); applying writes
//! each value into the hierarchy that has the file. Zero values mean "unset", as engines send
//! them (`"shares": 0`). Anything that cannot be applied is an error naming it.

use super::{CgroupPaths, Mode};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

/// One value to write into one cgroup interface file.
pub type Write = (String, String);

/// v1's `memory.kernelTCP` file; kernels without kmem accounting lack it.
const KERNEL_TCP_V1: &str = "memory.kmem.tcp.limit_in_bytes";

/// Refuses resources no layout here supports; run before anything is created.
pub fn check(resources: Option<&LinuxResources>) -> Result<()> {
    let Some(r) = resources else { return Ok(()) };
    if let Some(net) = r.network() {
        if net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            bail!("linux.resources.network (net_cls/net_prio) is not supported by berth-runtime");
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!("linux.resources.rdma is not supported by berth-runtime");
    }
    if let Some(m) = r.memory() {
        if m.kernel().is_some_and(|v| v != 0) {
            crate::logging::warn("linux.resources.memory.kernel is deprecated by the kernel and ignored");
        }
    }
    Ok(())
}

/// The writes that apply `r` in layout `mode`, in a safe order.
pub fn plan(mode: Mode, r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w: Vec<Write> = Vec::new();
    let mut put = |file: &str, value: String| w.push((file.to_string(), value));
    let v2 = mode == Mode::V2;

    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            if v2 {
                put("cpu.weight", shares_to_weight(shares).to_string());
            } else {
                put("cpu.shares", shares.to_string());
            }
        }
        let quota = cpu.quota().filter(|q| *q != 0);
        let period = cpu.period().filter(|p| *p != 0);
        if v2 {
            if quota.is_some() || period.is_some() {
                let q = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                put("cpu.max", format!("{q} {}", period.unwrap_or(100_000)));
            }
        } else {
            if let Some(p) = period {
                put("cpu.cfs_period_us", p.to_string());
            }
            if let Some(q) = quota {
                put("cpu.cfs_quota_us", q.to_string());
            }
        }
        if let Some(burst) = cpu.burst().filter(|b| *b != 0) {
            put(if v2 { "cpu.max.burst" } else { "cpu.cfs_burst_us" }, burst.to_string());
        }
        if let Some(idle) = cpu.idle().filter(|i| *i != 0) {
            if !v2 {
                bail!("linux.resources.cpu.idle needs cgroup v2");
            }
            put("cpu.idle", idle.to_string());
        }
        let rt =
            cpu.realtime_period().filter(|p| *p != 0).is_some() || cpu.realtime_runtime().filter(|r| *r != 0).is_some();
        if rt {
            if v2 {
                bail!("linux.resources.cpu.realtimePeriod/realtimeRuntime are not available on cgroup v2");
            }
            if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
                put("cpu.rt_period_us", p.to_string());
            }
            if let Some(r) = cpu.realtime_runtime().filter(|r| *r != 0) {
                put("cpu.rt_runtime_us", r.to_string());
            }
        }
        if let Some(cpus) = cpu.cpus().as_ref().filter(|c| !c.is_empty()) {
            put("cpuset.cpus", cpus.clone());
        }
        if let Some(mems) = cpu.mems().as_ref().filter(|m| !m.is_empty()) {
            put("cpuset.mems", mems.clone());
        }
    }

    if let Some(mem) = r.memory() {
        let limit = mem.limit().filter(|l| *l != 0);
        let swap = mem.swap().filter(|s| *s != 0);
        let bytes = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
        if v2 {
            if let Some(l) = limit {
                put("memory.max", bytes(l));
            }
            if let Some(s) = swap {
                // v1's swap is memory+swap; v2's memory.swap.max is swap alone (runc's conversion).
                let value = match (s, limit) {
                    (s, _) if s < 0 => "max".to_string(),
                    (_, None) | (_, Some(-1)) => {
                        bail!("linux.resources.memory.swap on cgroup v2 needs memory.limit too")
                    }
                    (s, Some(l)) if s < l => {
                        bail!("linux.resources.memory.swap ({s}) must not be below memory.limit ({l})")
                    }
                    (s, Some(l)) => (s - l).to_string(),
                };
                put("memory.swap.max", value);
            }
            if let Some(res) = mem.reservation().filter(|r| *r != 0) {
                put("memory.low", bytes(res));
            }
            if mem.disable_oom_killer() == Some(true) {
                bail!("linux.resources.memory.disableOOMKiller is not possible on cgroup v2");
            }
            if mem.swappiness().is_some_and(|s| s != 0) {
                bail!("linux.resources.memory.swappiness is not available on cgroup v2");
            }
        } else {
            if let Some(l) = limit {
                put("memory.limit_in_bytes", bytes(l).replace("max", "-1"));
            }
            if let Some(s) = swap {
                put("memory.memsw.limit_in_bytes", bytes(s).replace("max", "-1"));
            }
            // As runc: applied on v1 (v2 has no such limit, see `apply_resources`).
            if let Some(tcp) = mem.kernel_tcp().filter(|t| *t != 0) {
                put(KERNEL_TCP_V1, bytes(tcp).replace("max", "-1"));
            }
            if let Some(res) = mem.reservation().filter(|r| *r != 0) {
                put("memory.soft_limit_in_bytes", res.to_string());
            }
            if let Some(sw) = mem.swappiness().filter(|s| *s != 0) {
                if sw > 100 {
                    bail!("linux.resources.memory.swappiness {sw} is above 100");
                }
                put("memory.swappiness", sw.to_string());
            }
            if mem.disable_oom_killer() == Some(true) {
                put("memory.oom_control", "1".to_string());
            }
            if mem.use_hierarchy() == Some(true) {
                put("memory.use_hierarchy", "1".to_string());
            }
        }
    }

    if let Some(pids) = r.pids() {
        if pids.limit() != 0 {
            let value = if pids.limit() < 0 { "max".to_string() } else { pids.limit().to_string() };
            put("pids.max", value);
        }
    }

    if let Some(io) = r.block_io() {
        if let Some(weight) = io.weight().filter(|w| *w != 0) {
            if v2 {
                put("io.weight", format!("default {}", blkio_to_io_weight(weight)));
            } else {
                put("blkio.weight", weight.to_string());
            }
        }
        if let Some(leaf) = io.leaf_weight().filter(|w| *w != 0) {
            if v2 {
                bail!("linux.resources.blockIO.leafWeight is not available on cgroup v2");
            }
            put("blkio.leaf_weight", leaf.to_string());
        }
        for d in io.weight_device().iter().flatten() {
            if let Some(weight) = d.weight().filter(|w| *w != 0) {
                if v2 {
                    put("io.weight", format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(weight)));
                } else {
                    put("blkio.weight_device", format!("{}:{} {weight}", d.major(), d.minor()));
                }
            }
            if d.leaf_weight().is_some_and(|w| w != 0) {
                if v2 {
                    bail!("linux.resources.blockIO.weightDevice leafWeight is not available on cgroup v2");
                }
                put(
                    "blkio.leaf_weight_device",
                    format!("{}:{} {}", d.major(), d.minor(), d.leaf_weight().unwrap_or(0)),
                );
            }
        }
        let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
            (io.throttle_read_bps_device(), "blkio.throttle.read_bps_device", "rbps"),
            (io.throttle_write_bps_device(), "blkio.throttle.write_bps_device", "wbps"),
            (io.throttle_read_iops_device(), "blkio.throttle.read_iops_device", "riops"),
            (io.throttle_write_iops_device(), "blkio.throttle.write_iops_device", "wiops"),
        ];
        for (devices, v1_file, v2_key) in throttles {
            for d in devices.iter().flatten() {
                if v2 {
                    let rate = if d.rate() == 0 { "max".to_string() } else { d.rate().to_string() };
                    put("io.max", format!("{}:{} {v2_key}={rate}", d.major(), d.minor()));
                } else {
                    put(v1_file, format!("{}:{} {}", d.major(), d.minor(), d.rate()));
                }
            }
        }
    }

    for h in r.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("linux.resources.hugepageLimits: invalid pageSize {size:?}");
        }
        if v2 {
            put(&format!("hugetlb.{size}.max"), h.limit().to_string());
        } else {
            put(&format!("hugetlb.{size}.limit_in_bytes"), h.limit().to_string());
        }
    }

    if let Some(unified) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            bail!("linux.resources.unified needs cgroup v2 (this host uses v1 controllers)");
        }
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
                bail!("linux.resources.unified: {key:?} is not a cgroup interface file");
            }
            if key.starts_with("cgroup.") {
                bail!("linux.resources.unified: {key:?} belongs to the runtime, not to a resource");
            }
            put(key, unified[key].clone());
        }
    }
    Ok(w)
}

/// runc's conversion of cpu shares [2, 262144] to cgroup v2 cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// runc's conversion of blkio weight [10, 1000] to cgroup v2 io.weight [1, 10000].
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

impl CgroupPaths {
    /// Applies `linux.resources` (except device rules, see [`CgroupPaths::apply_devices`]).
    pub fn apply_resources(&self, r: &LinuxResources) -> Result<()> {
        let kernel_tcp = r.memory().as_ref().and_then(|m| m.kernel_tcp()).is_some_and(|t| t != 0);
        let mut writes = plan(self.mode, r)?;
        // memory.kernelTCP is deprecated by the kernel: where it cannot be applied, runc (and so
        // berth) warns and goes on instead of failing.
        if kernel_tcp && !self.dirs.iter().any(|d| d.join(KERNEL_TCP_V1).exists()) {
            crate::logging::warn("linux.resources.memory.kernelTCP cannot be applied on this host (no kernel TCP memory limit in its cgroups); ignored");
            writes.retain(|(file, _)| file != KERNEL_TCP_V1);
        }
        if r.memory().as_ref().and_then(|m| m.check_before_update()) == Some(true) {
            self.check_memory_usage(&writes)?;
        }
        let mut done = vec![false; writes.len()];
        for i in 0..writes.len() {
            if done[i] {
                continue;
            }
            let result = self.write_one(&writes[i]);
            // v1 refuses a memory limit above the current memory+swap limit: raising both (an
            // update) needs memsw first.
            let memsw = writes.iter().position(|(f, _)| f == "memory.memsw.limit_in_bytes");
            match (result, memsw) {
                (Err(e), Some(j)) if writes[i].0 == "memory.limit_in_bytes" && !done[j] => {
                    self.write_one(&writes[j]).map_err(|_| e)?;
                    done[j] = true;
                    self.write_one(&writes[i])?;
                }
                (result, _) => result?,
            }
            done[i] = true;
        }
        Ok(())
    }

    /// `memory.checkBeforeUpdate` (runc 1.2): a memory limit below what the container uses now is
    /// refused, rather than left to the kernel's reclaim and OOM killer (v2) or a bare EBUSY (v1).
    fn check_memory_usage(&self, writes: &[Write]) -> Result<()> {
        let (limit_file, usage_file) = if self.mode == Mode::V2 {
            ("memory.max", "memory.current")
        } else {
            ("memory.limit_in_bytes", "memory.usage_in_bytes")
        };
        let Some(limit) = writes.iter().find(|(f, _)| f == limit_file).and_then(|(_, v)| v.parse::<u64>().ok()) else {
            return Ok(()); // no limit, or "max"/-1
        };
        let Some(dir) = self.dirs.iter().find(|d| d.join(usage_file).exists()) else { return Ok(()) };
        let path = dir.join(usage_file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let usage: u64 = text.trim().parse().with_context(|| format!("parsing {} ({text:?})", path.display()))?;
        if limit < usage {
            bail!("rejecting memory limit {limit} below usage {usage} (linux.resources.memory.checkBeforeUpdate)");
        }
        Ok(())
    }

    fn write_one(&self, (file, value): &Write) -> Result<()> {
        let dir = self.dirs.iter().find(|d| d.join(file).exists()).with_context(|| {
            let controller = file.split('.').next().unwrap_or_default();
            format!("cannot set {file}: the {controller} controller is not available to this container's cgroup")
        })?;
        let path = dir.join(file);
        std::fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn zero_values_are_unset() {
        let r = res(
            r#"{"cpu":{"shares":0,"quota":0,"period":0},"memory":{"limit":0},"pids":{"limit":0},"blockIO":{"weight":0}}"#,
        );
        assert!(plan(Mode::V1, &r).unwrap().is_empty());
        assert!(plan(Mode::V2, &r).unwrap().is_empty());
    }

    #[test]
    fn kernel_tcp_is_a_v1_write_and_no_v2_one() {
        let r = res(r#"{"memory":{"kernelTCP":16777216}}"#);
        assert!(check(Some(&r)).is_ok());
        let v1 = plan(Mode::V1, &r).unwrap();
        assert_eq!(v1, [(KERNEL_TCP_V1.to_string(), "16777216".to_string())]);
        assert!(plan(Mode::V2, &r).unwrap().is_empty());
    }

    #[test]
    fn v1_writes_the_v1_files() {
        let r = res(
            r#"{"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},"memory":{"limit":67108864,"swap":134217728},"pids":{"limit":16}}"#,
        );
        let w = plan(Mode::V1, &r).unwrap();
        let get = |f: &str| w.iter().find(|(k, _)| k == f).map(|(_, v)| v.as_str());
        assert_eq!(get("cpu.shares"), Some("512"));
        assert_eq!(get("cpu.cfs_period_us"), Some("100000"));
        assert_eq!(get("cpu.cfs_quota_us"), Some("50000"));
        assert_eq!(get("cpuset.cpus"), Some("0"));
        assert_eq!(get("memory.limit_in_bytes"), Some("67108864"));
        assert_eq!(get("memory.memsw.limit_in_bytes"), Some("134217728"));
        assert_eq!(get("pids.max"), Some("16"));
        // limit before memsw: the kernel refuses memsw below the memory limit.
        let pos = |f: &str| w.iter().position(|(k, _)| k == f).unwrap();
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));
    }

    #[test]
    fn v2_converts_like_runc() {
        let r = res(
            r#"{"cpu":{"shares":1024,"quota":50000,"period":100000},"memory":{"limit":67108864,"swap":134217728,"reservation":1048576},"pids":{"limit":-1},"blockIO":{"weight":500}}"#,
        );
        let w = plan(Mode::V2, &r).unwrap();
        let get = |f: &str| w.iter().find(|(k, _)| k == f).map(|(_, v)| v.as_str());
        assert_eq!(get("cpu.weight"), Some("39"));
        assert_eq!(get("cpu.max"), Some("50000 100000"));
        assert_eq!(get("memory.max"), Some("67108864"));
        assert_eq!(get("memory.swap.max"), Some("67108864"));
        assert_eq!(get("memory.low"), Some("1048576"));
        assert_eq!(get("pids.max"), Some("max"));
        assert_eq!(get("io.weight"), Some("default 4950"));
    }

    #[test]
    fn conversions_hit_the_range_ends() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn what_a_layout_cannot_do_is_named() {
        let unified = res(r#"{"unified":{"memory.high":"1000000"}}"#);
        assert!(plan(Mode::V1, &unified).unwrap_err().to_string().contains("unified"));
        assert_eq!(plan(Mode::V2, &unified).unwrap(), vec![("memory.high".to_string(), "1000000".to_string())]);
        let escape = res(r#"{"unified":{"../../tasks":"1"}}"#);
        assert!(plan(Mode::V2, &escape).is_err());
        let oom = res(r#"{"memory":{"disableOOMKiller":true}}"#);
        assert!(plan(Mode::V2, &oom).unwrap_err().to_string().contains("disableOOMKiller"));
        assert_eq!(plan(Mode::V1, &oom).unwrap(), vec![("memory.oom_control".to_string(), "1".to_string())]);
        let net = res(r#"{"network":{"classID":1}}"#);
        assert!(check(Some(&net)).unwrap_err().to_string().contains("network"));
    }
}
