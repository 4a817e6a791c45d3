//! Device access rules (`linux.resources.devices`). cgroup v1 takes them as lines written to
//! `devices.allow`/`devices.deny`; cgroup v2 has no such files: the kernel asks a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup, which this module assembles
//! from the rules, loads and attaches (as runc and crun do).
//!
//! Semantics (v1's, kept for both): rules apply in order and a later rule overrides an earlier
//! one; an allow rule covers a request when it grants every requested access bit, a deny rule
//! when it names any of them; a request no rule covers is allowed (the v1 default of a new
//! cgroup; engines start their lists with a deny-all rule). The devices every container needs
//! ([`default_allowed`]) are appended, as runc does.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The v1 file line for a rule: `c 1:3 rwm`, `a *:* rwm`.
pub fn v1_line(rule: &LinuxDeviceCgroup) -> String {
    let typ = match rule.typ() {
        Some(t) => t.as_str().to_string(),
        None => "a".to_string(),
    };
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".to_string());
    let access = rule.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

/// Devices every container gets even under a deny-all rule (the default device nodes, the
/// pty pair and the console), as runc allows them.
pub fn default_allowed() -> Vec<LinuxDeviceCgroup> {
    let rule = |major: i64, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(major));
        r.set_minor(minor);
        r.set_access(Some("rwm".to_string()));
        r
    };
    vec![
        rule(1, Some(3)),
        rule(1, Some(5)),
        rule(1, Some(7)),
        rule(1, Some(8)),
        rule(1, Some(9)),
        rule(5, Some(0)),
        rule(5, Some(1)),
        rule(5, Some(2)),
        rule(136, None),
    ]
}

/// An rwm allow rule for each device `linux.devices` lists, so that init can create it and the
/// container use it under a deny-all rule, as runc adds them. A fifo needs no device rule.
pub fn allow_listed(devices: &[LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    devices
        .iter()
        .filter_map(|d| {
            let typ = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
                LinuxDeviceType::B => LinuxDeviceType::B,
                LinuxDeviceType::P | LinuxDeviceType::A => return None,
            };
            let mut r = LinuxDeviceCgroup::default();
            r.set_allow(true);
            r.set_typ(Some(typ));
            r.set_major(Some(d.major()));
            r.set_minor(Some(d.minor()));
            r.set_access(Some("rwm".to_string()));
            Some(r)
        })
        .collect()
}

// The program's context, `struct bpf_cgroup_dev_ctx`: access_type (type in the low 16 bits,
// access in the high 16), major, minor; all u32.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction, `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}

// Opcodes (class | op | source) from linux/bpf_common.h and linux/bpf.h.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// Registers: r1 = context on entry, then scratch; r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn access_bits(access: &str) -> Result<i32> {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!("device rule access {access:?}: only r, w and m are allowed"),
        };
    }
    Ok(bits)
}

fn number(n: Option<i64>, what: &str) -> Result<Option<i32>> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(|n| Some(n as i32))
            .map_err(|_| anyhow::anyhow!("device rule {what} {n} is out of range")),
    }
}

/// Assembles the program for `rules` (the defaults are not added here).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    // Last rule first: the first block that matches decides.
    for rule in rules.iter().rev() {
        let typ = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            // The device cgroup never sees fifos: a rule for them changes nothing.
            Some(LinuxDeviceType::P) => continue,
        };
        let access = access_bits(rule.access().as_deref().unwrap_or("rwm"))?;
        let (major, minor) = (number(rule.major(), "major")?, number(rule.minor(), "minor")?);
        // Conditions jump to the end of this block (patched below) when they do not hold.
        let mut block: Vec<Insn> = Vec::new();
        if let Some(t) = typ {
            block.push(insn(JMP_JNE_K, R2, 0, 0, t));
        }
        if rule.allow() && access != ACC_ALL {
            // Allow covers the request only when no requested bit is outside `access`.
            block.push(insn(ALU64_MOV_X, R1, R3, 0, 0));
            block.push(insn(ALU64_AND_K, R1, 0, 0, !access));
            block.push(insn(JMP_JNE_K, R1, 0, 0, 0));
        } else if !rule.allow() && access != ACC_ALL {
            // Deny covers the request when any requested bit is in `access`.
            block.push(insn(ALU64_MOV_X, R1, R3, 0, 0));
            block.push(insn(ALU64_AND_K, R1, 0, 0, access));
            block.push(insn(JMP_JEQ_K, R1, 0, 0, 0));
        }
        if let Some(m) = major {
            block.push(insn(JMP_JNE_K, R4, 0, 0, m));
        }
        if let Some(m) = minor {
            block.push(insn(JMP_JNE_K, R5, 0, 0, m));
        }
        let unconditional = block.is_empty();
        block.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow())));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JEQ_K || ins.code == JMP_JNE_K {
                ins.off = i16::try_from(len - i - 1).context("device rule block too long")?;
            }
        }
        prog.extend(block);
        if unconditional {
            // Every request stops here: the earlier rules can never decide anything.
            return Ok(prog);
        }
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(prog)
}

// bpf(2) commands and constants from linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised repr(C) prefix of `union bpf_attr` for `cmd`, and its
    // size is passed so the kernel reads (and, for queries, writes) no further; any pointers in it
    // refer to buffers the caller keeps alive across the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    // Without a log first: a verbose verifier log of a long rule list could overflow the buffer
    // (ENOSPC) for a valid program. Only a failure is loaded again, with the log, to explain it.
    match load_with_log(prog, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; 64 * 1024];
            match load_with_log(prog, Some(&mut log)) {
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let verifier = String::from_utf8_lossy(&log[..end]);
                    bail!("loading the cgroup v2 device filter (BPF_PROG_LOAD): {first}; verifier: {}", verifier.trim())
                }
            }
        }
    }
}

fn load_with_log(prog: &[Insn], log: Option<&mut [u8]>) -> std::io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(prog.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        ..Default::default()
    };
    attr.prog_name[..12].copy_from_slice(b"berth_device");
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Ids of the device programs attached to the cgroup `fd`.
fn attached(fd: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).context("listing the cgroup's device filters (BPF_PROG_QUERY)")?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Replaces the device filter of the cgroup v2 directory `dir` with one built from `rules`: the
/// new program is attached before the old ones are detached, so there is no moment without one.
pub fn attach_v2(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = load(&program(rules)?)?;
    let cgroup: OwnedFd = std::fs::File::open(dir).with_context(|| format!("opening cgroup {}", dir.display()))?.into();
    let old = attached(&cgroup)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .with_context(|| format!("attaching the device filter to cgroup {} (BPF_PROG_ATTACH)", dir.display()))?;
    for id in old {
        let mut get = [id, 0, 0, 0];
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new fd that nothing else owns.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            // Detached meanwhile by someone else.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).context("opening the cgroup's previous device filter"),
        };
        let mut detach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach)
            .with_context(|| format!("detaching the previous device filter of cgroup {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_lines() {
        let r =
            rules(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#);
        assert_eq!(v1_line(&r[0]), "a *:* rwm");
        assert_eq!(v1_line(&r[1]), "c 1:3 rw");
    }

    /// Runs the program on one request, as the kernel would (only the opcodes we emit).
    fn eval(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[i.off as usize / 4]),
                ALU64_AND_K => r[dst] &= i64::from(i.imm),
                ALU64_RSH_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                ALU64_MOV_K => r[dst] = i64::from(i.imm),
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JEQ_K if r[dst] == i64::from(i.imm) => pc += i.off as usize,
                JMP_JNE_K if r[dst] != i64::from(i.imm) => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn deny_all_then_allow_specific() {
        let mut r =
            rules(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#);
        r.extend(default_allowed());
        let p = program(&r).unwrap();
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD, 1, 5), 1, "mknod /dev/zero");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 136, 42), 1, "any pty");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 0), 1, "sda read");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0), 0, "sda write");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 1), 0, "sda1");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 10, 200), 0, "tun");
    }

    #[test]
    fn later_deny_overrides_and_partial_deny_covers_any_bit() {
        let r = rules(r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#);
        let p = program(&r).unwrap();
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 5), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 3), 1);
        // Nothing matches an empty list: allowed, like a fresh v1 cgroup.
        assert_eq!(eval(&program(&[]).unwrap(), DEV_BLOCK, ACC_ALL, 8, 0), 1);
    }

    #[test]
    fn wildcards_and_bad_rules() {
        let r = rules(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":136,"access":"rwm"}]"#);
        let p = program(&r).unwrap();
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 136, 7), 1);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 136, 7), 0);
        assert!(program(&rules(r#"[{"allow":true,"access":"rx"}]"#)).is_err());
        assert!(program(&rules(r#"[{"allow":true,"major":4294967296,"access":"r"}]"#)).is_err());
    }

    /// The kernel's verifier accepts the program and the kernel enforces it: a process in a
    /// cgroup v2 directory with the filter cannot open /dev/zero but can open /dev/null. Uses
    /// the host's cgroup2 mount (on a hybrid host, its side tree), skipped only without one.
    #[test]
    fn the_kernel_enforces_the_filter() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(base) = mounts.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ").then(|| pre.split(' ').nth(4).map(str::to_string)).flatten()
        }) else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let dir = Path::new(&base).join(format!("berth-devtest-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let r =
            rules(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#);
        let result = attach_v2(&dir, &r).and_then(|()| attach_v2(&dir, &r)).map(|()| {
            let id = |dir: &Path| attached(&std::fs::File::open(dir).unwrap().into()).unwrap();
            assert_eq!(id(&dir).len(), 1, "replacing leaves one program");
            let child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "echo $$ > {}/cgroup.procs && echo x > /dev/null && echo ok; head -c1 /dev/zero >/dev/null 2>&1 && echo zero-readable || echo zero-denied",
                    dir.display()
                ))
                .output()
                .unwrap();
            String::from_utf8_lossy(&child.stdout).into_owned()
        });
        // The shell has exited, so the cgroup is empty again.
        let removed = std::fs::remove_dir(&dir);
        assert_eq!(result.unwrap(), "ok\nzero-denied\n");
        removed.unwrap();
    }
}
