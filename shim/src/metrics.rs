//! `Stats`: the container's cgroup usage as the metrics types containerd decodes
//! (`io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts, `io.containerd.cgroups.v2.Metrics`
//! on unified ones). The numbers come from berth-runtime's cgroup reader; the v1 message is the
//! generated type, the v2 message (not in containerd-shim-protos) is encoded here by field number.

use berth_runtime::cgroups::stats::Stats;
use berth_runtime::cgroups::Mode;
use containerd_shim_protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;

/// The metrics `Any` for `stats` read in `mode`.
pub fn to_any(stats: &Stats, mode: Mode) -> Any {
    match mode {
        Mode::V1 => crate::events::to_any(&v1(stats)),
        Mode::V2 => {
            let mut any = Any::new();
            any.type_url = "io.containerd.cgroups.v2.Metrics".into();
            any.value = v2(stats);
            any
        }
    }
}

fn entry(e: &berth_runtime::cgroups::stats::MemoryEntry) -> MessageField<MemoryEntry> {
    let mut m = MemoryEntry::new();
    m.limit = e.limit;
    m.usage = e.usage;
    m.max = e.max;
    m.failcnt = e.failcnt;
    MessageField::some(m)
}

/// cgroup v1 metrics.
pub fn v1(s: &Stats) -> Metrics {
    let mut m = Metrics::new();
    let mut pids = PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;
    m.pids = MessageField::some(pids);

    let mut usage = CPUUsage::new();
    usage.total = s.cpu.usage.total;
    usage.kernel = s.cpu.usage.kernel;
    usage.user = s.cpu.usage.user;
    usage.per_cpu = s.cpu.usage.percpu.clone();
    let mut throttling = Throttle::new();
    throttling.periods = s.cpu.throttling.periods;
    throttling.throttled_periods = s.cpu.throttling.throttled_periods;
    throttling.throttled_time = s.cpu.throttling.throttled_time;
    let mut cpu = CPUStat::new();
    cpu.usage = MessageField::some(usage);
    cpu.throttling = MessageField::some(throttling);
    m.cpu = MessageField::some(cpu);

    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut mem = MemoryStat::new();
    mem.cache = s.memory.cache;
    mem.rss = raw("rss");
    mem.rss_huge = raw("rss_huge");
    mem.mapped_file = raw("mapped_file");
    mem.dirty = raw("dirty");
    mem.writeback = raw("writeback");
    mem.pg_pg_in = raw("pgpgin");
    mem.pg_pg_out = raw("pgpgout");
    mem.pg_fault = raw("pgfault");
    mem.pg_maj_fault = raw("pgmajfault");
    mem.inactive_anon = raw("inactive_anon");
    mem.active_anon = raw("active_anon");
    mem.inactive_file = raw("inactive_file");
    mem.active_file = raw("active_file");
    mem.unevictable = raw("unevictable");
    mem.hierarchical_memory_limit = raw("hierarchical_memory_limit");
    mem.hierarchical_swap_limit = raw("hierarchical_memsw_limit");
    mem.total_cache = raw("total_cache");
    mem.total_rss = raw("total_rss");
    mem.total_rss_huge = raw("total_rss_huge");
    mem.total_mapped_file = raw("total_mapped_file");
    mem.total_dirty = raw("total_dirty");
    mem.total_writeback = raw("total_writeback");
    mem.total_pg_pg_in = raw("total_pgpgin");
    mem.total_pg_pg_out = raw("total_pgpgout");
    mem.total_pg_fault = raw("total_pgfault");
    mem.total_pg_maj_fault = raw("total_pgmajfault");
    mem.total_inactive_anon = raw("total_inactive_anon");
    mem.total_active_anon = raw("total_active_anon");
    mem.total_inactive_file = raw("total_inactive_file");
    mem.total_active_file = raw("total_active_file");
    mem.total_unevictable = raw("total_unevictable");
    mem.usage = entry(&s.memory.usage);
    mem.swap = entry(&s.memory.swap);
    mem.kernel = entry(&s.memory.kernel);
    mem.kernel_tcp = entry(&s.memory.kernel_tcp);
    m.memory = MessageField::some(mem);

    let blkio_entries = |v: &[berth_runtime::cgroups::stats::BlkioEntry]| {
        v.iter()
            .map(|e| {
                let mut b = BlkIOEntry::new();
                b.op = e.op.clone();
                b.major = e.major;
                b.minor = e.minor;
                b.value = e.value;
                b
            })
            .collect()
    };
    let mut blkio = BlkIOStat::new();
    blkio.io_service_bytes_recursive = blkio_entries(&s.blkio.io_service_bytes_recursive);
    blkio.io_serviced_recursive = blkio_entries(&s.blkio.io_serviced_recursive);
    m.blkio = MessageField::some(blkio);

    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut t = HugetlbStat::new();
            t.pagesize = size.clone();
            t.usage = h.usage;
            t.max = h.max;
            t.failcnt = h.failcnt;
            t
        })
        .collect();
    m
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A uint64 field (proto3: zero is not written).
fn put_u64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        varint(buf, u64::from(field) << 3);
        varint(buf, v);
    }
}

/// An embedded message field.
fn put_msg(buf: &mut Vec<u8>, field: u32, msg: &[u8]) {
    varint(buf, (u64::from(field) << 3) | 2);
    varint(buf, msg.len() as u64);
    buf.extend_from_slice(msg);
}

/// cgroup v2 metrics, encoded (field numbers of containerd's cgroup2/stats/metrics.proto).
pub fn v2(s: &Stats) -> Vec<u8> {
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let mut pids = Vec::new();
    put_u64(&mut pids, 1, s.pids.current);
    put_u64(&mut pids, 2, s.pids.limit);

    let mut cpu = Vec::new();
    put_u64(&mut cpu, 1, s.cpu.usage.total / 1000);
    put_u64(&mut cpu, 2, s.cpu.usage.user / 1000);
    put_u64(&mut cpu, 3, s.cpu.usage.kernel / 1000);
    put_u64(&mut cpu, 4, s.cpu.throttling.periods);
    put_u64(&mut cpu, 5, s.cpu.throttling.throttled_periods);
    put_u64(&mut cpu, 6, s.cpu.throttling.throttled_time / 1000);

    let mut mem = Vec::new();
    let stat_fields = [
        "anon",
        "file",
        "kernel_stack",
        "slab",
        "sock",
        "shmem",
        "file_mapped",
        "file_dirty",
        "file_writeback",
        "anon_thp",
        "inactive_anon",
        "active_anon",
        "inactive_file",
        "active_file",
        "unevictable",
        "slab_reclaimable",
        "slab_unreclaimable",
        "pgfault",
        "pgmajfault",
        "workingset_refault",
        "workingset_activate",
        "workingset_nodereclaim",
        "pgrefill",
        "pgscan",
        "pgsteal",
        "pgactivate",
        "pgdeactivate",
        "pglazyfree",
        "pglazyfreed",
        "thp_fault_alloc",
        "thp_collapse_alloc",
    ];
    for (n, key) in (1..).zip(stat_fields) {
        put_u64(&mut mem, n, raw(key));
    }
    put_u64(&mut mem, 32, s.memory.usage.usage);
    put_u64(&mut mem, 33, s.memory.usage.limit);
    // containerd's v2 swap figures are swap alone (memory.swap.current/max); the runc-shaped
    // stats carry memory+swap, as v1's memsw did.
    put_u64(&mut mem, 34, s.memory.swap.usage.saturating_sub(s.memory.usage.usage));
    let swap_limit = match s.memory.swap.limit {
        u64::MAX => u64::MAX,
        both => both.saturating_sub(s.memory.usage.limit),
    };
    put_u64(&mut mem, 35, swap_limit);
    put_u64(&mut mem, 36, s.memory.usage.max);
    put_u64(&mut mem, 37, s.memory.swap.max);

    let mut out = Vec::new();
    put_msg(&mut out, 1, &pids);
    put_msg(&mut out, 2, &cpu);
    put_msg(&mut out, 4, &mem);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_v2_fields_by_number() {
        let mut s = Stats::default();
        s.pids.current = 3;
        s.memory.usage.usage = 300;
        let bytes = v2(&s);
        // pids {current: 3}, cpu {}, memory {usage(32): 300}
        assert_eq!(bytes, vec![0x0a, 2, 0x08, 3, 0x12, 0, 0x22, 4, 0x80, 0x02, 0xac, 0x02]);
    }

    #[test]
    fn v1_carries_usage_and_pids() {
        let mut s = Stats::default();
        s.pids.current = 2;
        s.cpu.usage.total = 42;
        s.memory.usage.usage = 4096;
        let m = v1(&s);
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.cpu.usage.total, 42);
        assert_eq!(m.memory.usage.usage, 4096);
    }
}
