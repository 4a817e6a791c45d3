//! `update`: change the cgroup resources of a live container. The new values come either as a
//! `linux.resources` JSON document (`--resources FILE|-`, what containerd sends) or as runc's
//! flags; only the values given are written, and they are merged into the saved config so later
//! updates and `state` see them.

use super::Container;
use crate::cgroups::resources;
use crate::state::Status;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// runc's `update` flags (sizes take k/m/g suffixes), parsed by the command line as they are.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct UpdateFlags {
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU burst in microseconds.
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// SCHED_IDLE for the cgroup (v2: 1 or 0).
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// Realtime period in microseconds (v1).
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds (v1).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (e.g. 64m; -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (deprecated by the kernel: ignored with a warning).
    #[arg(long)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (v1; ignored with a warning where the kernel has none).
    #[arg(long)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported).
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported).
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
}

/// Parses runc's memory sizes: `-1`, `1048576`, `512k`, `64m`, `1.5g`, `2GiB` (binary units).
pub fn parse_bytes(text: &str) -> Result<i64> {
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let unit_at = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(unit_at);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("invalid size {text:?}: use bytes or a k/m/g/t/p suffix"),
    };
    let value: f64 = number.parse().map_err(|_| anyhow::anyhow!("invalid size {text:?}"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        bail!("size {text:?} is too large");
    }
    Ok(bytes as i64)
}

impl UpdateFlags {
    /// The flags as a partial `linux.resources` document.
    pub fn to_json(&self) -> Result<Value> {
        if self.l3_cache_schema.is_some() || self.mem_bw_schema.is_some() {
            bail!("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported by berth-runtime");
        }
        let mut r = json!({});
        let mut set = |section: &str, key: &str, v: Value| {
            r[section][key] = v;
        };
        let bytes = |s: &Option<String>| s.as_deref().map(parse_bytes).transpose();
        if let Some(v) = self.blkio_weight {
            set("blockIO", "weight", json!(v));
        }
        for (key, v) in [("period", self.cpu_period), ("burst", self.cpu_burst), ("shares", self.cpu_share)] {
            if let Some(v) = v {
                set("cpu", key, json!(v));
            }
        }
        if let Some(v) = self.cpu_quota {
            set("cpu", "quota", json!(v));
        }
        if let Some(v) = self.cpu_idle {
            set("cpu", "idle", json!(v));
        }
        if let Some(v) = self.cpu_rt_period {
            set("cpu", "realtimePeriod", json!(v));
        }
        if let Some(v) = self.cpu_rt_runtime {
            set("cpu", "realtimeRuntime", json!(v));
        }
        if let Some(v) = &self.cpuset_cpus {
            set("cpu", "cpus", json!(v));
        }
        if let Some(v) = &self.cpuset_mems {
            set("cpu", "mems", json!(v));
        }
        for (key, v) in [
            ("limit", &self.memory),
            ("reservation", &self.memory_reservation),
            ("swap", &self.memory_swap),
            ("kernel", &self.kernel_memory),
            ("kernelTCP", &self.kernel_memory_tcp),
        ] {
            if let Some(v) = bytes(v)? {
                set("memory", key, json!(v));
            }
        }
        if let Some(v) = self.pids_limit {
            set("pids", "limit", json!(v));
        }
        Ok(r)
    }
}

/// Where the new resources come from.
pub enum Source {
    /// `--resources FILE` (or `-` for stdin).
    File(PathBuf),
    /// The flags.
    Flags(Box<UpdateFlags>),
}

/// Objects merge key by key; anything else (numbers, strings, arrays) is replaced.
fn merge(base: &mut Value, delta: &Value) {
    match (base, delta) {
        (Value::Object(b), Value::Object(d)) => {
            for (k, v) in d {
                if v.is_null() {
                    continue;
                }
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, d) => *b = d.clone(),
    }
}

fn read_source(source: &Source) -> Result<Value> {
    match source {
        Source::Flags(flags) => flags.to_json(),
        Source::File(path) => {
            let mut text = String::new();
            if path == Path::new("-") {
                std::io::stdin().read_to_string(&mut text).context("reading resources from stdin")?;
            } else {
                text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            }
            let v: Value = serde_json::from_str(&text).context("parsing the resources JSON")?;
            // Validate the shape before anything is written.
            serde_json::from_value::<LinuxResources>(v.clone()).context("the resources JSON is not linux.resources")?;
            Ok(v)
        }
    }
}

/// Updates container `id`'s resources.
pub fn update(root: &Path, id: &str, source: &Source) -> Result<()> {
    let delta = read_source(source)?;
    if matches!(source, Source::Flags(_)) && delta.as_object().is_some_and(|o| o.is_empty()) {
        bail!("update needs --resources or at least one resource flag (see berth-runtime update --help)");
    }
    let mut c = Container::open(root, id)?;
    match c.status() {
        Status::Created | Status::Running | Status::Paused => {}
        status => bail!("cannot update container {id}: it is {status}"),
    }
    let mut merged = c.state.config["linux"]["resources"].clone();
    if merged.is_null() {
        merged = json!({});
    }
    merge(&mut merged, &delta);
    let merged_r: LinuxResources = serde_json::from_value(merged.clone()).context("merged resources")?;
    resources::check(Some(&merged_r))?;

    // Write what was given. Swap is memory+swap in the spec but swap alone in v2's
    // memory.swap.max, so a limit or a swap goes with the other (from the merged config) to
    // keep the two files saying what the config says.
    let mut to_write = delta.clone();
    for (given, other) in [("swap", "limit"), ("limit", "swap")] {
        if !to_write["memory"][given].is_null() && to_write["memory"][other].is_null() {
            to_write["memory"][other] = merged["memory"][other].clone();
        }
    }
    // The config's memory.checkBeforeUpdate governs every later memory update (runc 1.2).
    if to_write["memory"].is_object() && to_write["memory"]["checkBeforeUpdate"].is_null() {
        to_write["memory"]["checkBeforeUpdate"] = merged["memory"]["checkBeforeUpdate"].clone();
    }
    let to_write: LinuxResources = serde_json::from_value(to_write).context("resources to update")?;
    c.state.cgroup.apply_resources(&to_write)?;
    if to_write.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        // The rules are rewritten whole: the devices linux.devices lists stay allowed.
        let listed: Vec<oci_spec::runtime::LinuxDevice> =
            serde_json::from_value::<Option<Vec<_>>>(c.state.config["linux"]["devices"].clone())
                .context("reading linux.devices of the saved config")?
                .unwrap_or_default();
        c.state.cgroup.apply_devices(merged_r.devices().as_deref().unwrap_or_default(), &listed)?;
    }
    c.state.config["linux"]["resources"] = merged;
    c.state.save(&c.dir.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_runc() {
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("10 mb").unwrap(), 10 << 20);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
        assert!(parse_bytes("99999999p").is_err());
    }

    #[test]
    fn flags_become_a_partial_resources_document() {
        let flags = UpdateFlags {
            memory: Some("64m".into()),
            cpu_quota: Some(50000),
            pids_limit: Some(10),
            ..Default::default()
        };
        assert_eq!(
            flags.to_json().unwrap(),
            json!({"memory": {"limit": 67108864}, "cpu": {"quota": 50000}, "pids": {"limit": 10}})
        );
        assert_eq!(UpdateFlags::default().to_json().unwrap(), json!({}));
        let rdt = UpdateFlags { mem_bw_schema: Some("MB:0=100".into()), ..Default::default() };
        assert!(rdt.to_json().unwrap_err().to_string().contains("Intel RDT"));
    }

    #[test]
    fn merge_keeps_what_was_not_given() {
        let mut base = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(&mut base, &json!({"memory": {"limit": 3}, "cpu": {"shares": 4}, "pids": null}));
        assert_eq!(base, json!({"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 4}}));
    }
}
