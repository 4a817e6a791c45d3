//! A shim's Stats answer (containerd's cgroup metrics, v1 or v2) reduced to what `berth stats`
//! shows: CPU time, memory usage and limit, page cache, pids.

use anyhow::{bail, Context, Result};
use berth_proto::tasks::MetricsResponse;
use containerd_shim_protos::cgroups::metrics::Metrics as V1Metrics;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};

/// Decodes `value` of type `type_url`.
pub fn decode(type_url: &str, value: &[u8]) -> Result<MetricsResponse> {
    let mut out = MetricsResponse { timestamp: crate::events::now_nanos(), ..Default::default() };
    match type_url.trim_start_matches("type.googleapis.com/") {
        "io.containerd.cgroups.v1.Metrics" => {
            let m = V1Metrics::parse_from_bytes(value).context("decoding cgroup v1 metrics")?;
            out.cpu_usage_nanos = m.cpu.usage.total;
            out.memory_usage = m.memory.usage.usage;
            out.memory_limit = m.memory.usage.limit;
            out.memory_cache = m.memory.cache;
            out.pids = m.pids.current;
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let fields = read_message(value)?;
            for (field, bytes) in fields.iter().filter_map(|(f, v)| v.as_bytes().map(|b| (*f, b))) {
                let inner = read_message(bytes)?;
                let get = |n: u32| inner.iter().find(|(f, _)| *f == n).and_then(|(_, v)| v.as_u64()).unwrap_or(0);
                match field {
                    1 => out.pids = get(1),
                    2 => out.cpu_usage_nanos = get(1).saturating_mul(1000),
                    4 => {
                        out.memory_usage = get(32);
                        out.memory_limit = get(33);
                        out.memory_cache = get(2);
                    }
                    _ => {}
                }
            }
        }
        other => bail!("unknown metrics type {other:?}"),
    }
    Ok(out)
}

enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Varint(v) => Some(*v),
            Value::Bytes(_) => None,
        }
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Varint(_) => None,
        }
    }
}

/// The varint and length-delimited fields of one protobuf message (others are skipped).
fn read_message(bytes: &[u8]) -> Result<Vec<(u32, Value)>> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut out = Vec::new();
    while !input.eof().context("decoding metrics")? {
        let tag = input.read_raw_varint32().context("decoding metrics")?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((field, Value::Varint(input.read_raw_varint64().context("decoding metrics")?))),
            2 => out.push((field, Value::Bytes(input.read_bytes().context("decoding metrics")?))),
            1 => {
                input.read_fixed64().context("decoding metrics")?;
            }
            5 => {
                input.read_fixed32().context("decoding metrics")?;
            }
            other => bail!("decoding metrics: unsupported wire type {other}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    #[test]
    fn v2_metrics_decode_by_field_number() {
        let mut pids = Vec::new();
        varint(&mut pids, 1 << 3);
        varint(&mut pids, 3);
        let mut mem = Vec::new();
        varint(&mut mem, 32 << 3);
        varint(&mut mem, 4096);
        varint(&mut mem, 33 << 3);
        varint(&mut mem, 1 << 30);
        let mut msg = Vec::new();
        for (field, inner) in [(1u64, pids), (4, mem)] {
            varint(&mut msg, (field << 3) | 2);
            varint(&mut msg, inner.len() as u64);
            msg.extend(inner);
        }
        let m = decode("io.containerd.cgroups.v2.Metrics", &msg).expect("decodes");
        assert_eq!((m.pids, m.memory_usage, m.memory_limit), (3, 4096, 1 << 30));
    }
}
