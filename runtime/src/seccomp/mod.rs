//! `linux.seccomp`, compiled in-process with seccompiler (no libseccomp), for the three ABIs an
//! x86_64 kernel runs: x86_64, i386 (`int $0x80`, audit arch I386) and x32 (x86_64's audit arch,
//! bit 30 set in the syscall number).
//!
//! seccompiler builds a filter with one match action and one mismatch action, while OCI gives
//! every rule its own action. The kernel runs every installed filter and keeps the most severe
//! result, so the profile becomes a stack of filters:
//! - the main filter returns ALLOW for every syscall some rule names (under that rule's
//!   argument conditions) and the default action for everything else;
//! - one filter per other (action, errno) pair returns that action for its rules' syscalls and
//!   ALLOW for the rest.
//!
//! A syscall matched by an ERRNO rule thus gets ALLOW from the main filter and ERRNO from its own:
//! ERRNO wins. Unknown syscall names are skipped, as runc does.
//!
//! ABIs: as libseccomp, a profile applies to every ABI in `architectures` (x86_64 alone when the
//! list is empty). Each filter is compiled once per listed ABI, with that ABI's numbers, into a
//! section; seccompiler only knows x86_64, so a section is its program without its arch check.
//! A dispatcher of our own in front of the sections picks one by audit arch and the x32 bit, and
//! kills any ABI the profile does not list (in every filter, so a deny rule cannot be bypassed
//! through another ABI's numbers). Sections that do not fit one program (BPF_MAXINSNS) go to
//! several filters, each passing the listed ABIs another one covers. On the 32-bit ABIs (i386,
//! x32) an argument compares its low 32 bits, as libseccomp does.
//!
//! SCMP_ACT_NOTIFY: its rules form one filter (the kernel allows one listener per process), loaded
//! first with SECCOMP_FILTER_FLAG_NEW_LISTENER. The listener fd and the container process state
//! go at once to the seccomp agent, over a connection to `listenerPath` that the runtime made on
//! the host ([`connect_agent`]); the other filters follow.

pub mod default_profile;
mod syscalls_i386;
mod syscalls_x32;
mod syscalls_x86_64;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 4;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 8;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: libc::c_uint = 16;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 32;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// The kernel's limit on the length of one filter program.
const BPF_MAXINSNS: usize = 4096;
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const BPF_JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JMP_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Offsets in `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The syscalls init makes after loading the notify filter: sendmsg and close hand the listener
/// to the agent (notified, they would wait for an agent that does not have it yet), seccomp loads
/// the other filters (an agent answering for it could leave them out).
const NOT_NOTIFIABLE: &[&str] = &["seccomp", "sendmsg", "close"];

/// The OCI seccomp actions this build can apply (`features` reports them).
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// The OCI architectures a profile can filter on this build (`features` reports them).
pub const SUPPORTED_ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

/// The seccomp(2) flags this build applies (`features` reports them).
pub const SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// A system call ABI of an x86_64 kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    /// The number of syscall `name` in this ABI (x32's include the x32 bit).
    fn syscall_number(self, name: &str) -> Option<i64> {
        let table = match self {
            Abi::X86_64 => syscalls_x86_64::SYSCALLS,
            Abi::I386 => syscalls_i386::SYSCALLS,
            Abi::X32 => syscalls_x32::SYSCALLS,
        };
        table.binary_search_by(|(n, _)| n.cmp(&name)).ok().map(|i| table[i].1)
    }

    /// How much of an argument a rule compares: libseccomp takes i386 and x32 for 32-bit ABIs.
    fn arg_len(self) -> SeccompCmpArgLen {
        match self {
            Abi::X86_64 => SeccompCmpArgLen::Qword,
            Abi::I386 | Abi::X32 => SeccompCmpArgLen::Dword,
        }
    }
}

/// On i386, the multiplexer a socket or SysV IPC call `name` also goes through: socketcall(2)
/// or ipc(2), with the rule matching its first argument (the call number; ipc(2) reads only its
/// low 16 bits, the rest is a version).
fn multiplexed_i386(name: &str) -> Result<Option<(i64, Vec<SeccompRule>)>> {
    const SOCKETCALL: &[(&str, u64)] = &[
        ("socket", 1),
        ("bind", 2),
        ("connect", 3),
        ("listen", 4),
        ("accept", 5),
        ("getsockname", 6),
        ("getpeername", 7),
        ("socketpair", 8),
        ("send", 9),
        ("recv", 10),
        ("sendto", 11),
        ("recvfrom", 12),
        ("shutdown", 13),
        ("setsockopt", 14),
        ("getsockopt", 15),
        ("sendmsg", 16),
        ("recvmsg", 17),
        ("accept4", 18),
        ("recvmmsg", 19),
        ("sendmmsg", 20),
    ];
    const IPC: &[(&str, u64)] = &[
        ("semop", 1),
        ("semget", 2),
        ("semctl", 3),
        ("semtimedop", 4),
        ("msgsnd", 11),
        ("msgrcv", 12),
        ("msgget", 13),
        ("msgctl", 14),
        ("shmat", 21),
        ("shmdt", 22),
        ("shmget", 23),
        ("shmctl", 24),
    ];
    let (mux, op, call) = if let Some((_, call)) = SOCKETCALL.iter().find(|(n, _)| *n == name) {
        ("socketcall", SeccompCmpOp::Eq, *call)
    } else if let Some((_, call)) = IPC.iter().find(|(n, _)| *n == name) {
        ("ipc", SeccompCmpOp::MaskedEq(0xffff), *call)
    } else {
        return Ok(None);
    };
    let Some(nr) = Abi::I386.syscall_number(mux) else { return Ok(None) };
    let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, call).context("seccomp multiplexer condition")?;
    Ok(Some((nr, vec![SeccompRule::new(vec![cond]).context("seccomp multiplexer rule")?])))
}

/// The ABIs `architectures` asks for. Architectures other than x86's cannot make a syscall on
/// an x86_64 kernel: listed, they change nothing. Without x86_64 itself, the profile was not
/// meant for this machine.
fn listed_abis(archs: Option<&[Arch]>) -> Result<Vec<Abi>> {
    let archs = match archs {
        Some(a) if !a.is_empty() => a,
        _ => return Ok(vec![Abi::X86_64]),
    };
    if !archs.iter().any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative)) {
        bail!("linux.seccomp.architectures {archs:?} does not include this machine's SCMP_ARCH_X86_64");
    }
    let mut abis = vec![Abi::X86_64];
    if archs.contains(&Arch::ScmpArchX86) {
        abis.push(Abi::I386);
    }
    if archs.contains(&Arch::ScmpArchX32) {
        abis.push(Abi::X32);
    }
    Ok(abis)
}

/// What a filter returns for the syscalls it matches: a kernel action seccompiler knows, or
/// SECCOMP_RET_USER_NOTIF, which it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Kernel(SeccompAction),
    Notify,
}

/// `listenerPath` and `listenerMetadata`: where the seccomp agent listens, and what it is told.
struct AgentConfig {
    path: PathBuf,
    metadata: Option<String>,
}

/// A connected seccomp agent and the container process state it is to get with the listener fd.
struct Agent {
    /// `None` once the state was sent: the connection is then closed.
    socket: Option<OwnedFd>,
    /// Kept until execve: freeing it after the filters are in could need munmap.
    process_state: Vec<u8>,
}

/// A compiled profile, ready to install.
pub struct Compiled {
    /// The SCMP_ACT_NOTIFY filter, loaded first and with a listener.
    notify: Option<BpfProgram>,
    /// The other filters, in load order (the main filter last).
    filters: Vec<BpfProgram>,
    flags: libc::c_uint,
    notify_flags: libc::c_uint,
    agent_config: Option<AgentConfig>,
    agent: Option<Agent>,
}

/// The number of the x86_64 syscall `name`, if the kernel headers know it.
pub fn syscall_number(name: &str) -> Option<i64> {
    Abi::X86_64.syscall_number(name)
}

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Action {
    Action::Kernel(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno_ret.unwrap_or(libc::EPERM as u32)),
        // libseccomp's SCMP_ACT_KILL is KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => SeccompAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno_ret.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => return Action::Notify,
    })
}

fn operator(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (SeccompCmpOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, value),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, value),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, value),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, value),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, value),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, value),
        // OCI: `value` is the mask, `valueTwo` what the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(value), value_two.unwrap_or(0)),
    }
}

/// Rules per syscall number of one filter, for each listed ABI.
type Matches = Vec<(Abi, BTreeMap<i64, Match>)>;

/// Compiles `seccomp` into filters for this machine.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled> {
    if !cfg!(target_arch = "x86_64") {
        bail!("linux.seccomp is only supported on x86_64 by this build of berth-runtime");
    }
    let abis = listed_abis(seccomp.architectures().as_deref())?;
    let mut flags = 0;
    let mut wait_killable_recv = false;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only the notify filter takes it (the kernel refuses it without a listener); like
            // libseccomp, a profile without SCMP_ACT_NOTIFY ignores it.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                wait_killable_recv = true;
                0
            }
        };
    }
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let Action::Kernel(default_kernel) = default.clone() else {
        bail!("SCMP_ACT_NOTIFY cannot be the seccomp default action: init's own last syscalls would wait for an agent that does not have the listener yet");
    };
    let agent_config = agent_config(seccomp)?;

    // Rules per ABI and syscall number for the main (allow) filter, and per action for the others.
    let empty = || abis.iter().map(|abi| (*abi, BTreeMap::new())).collect::<Matches>();
    let mut allowed = empty();
    let mut by_action: Vec<(Action, Matches)> = Vec::new();
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        if act == Action::Notify {
            if agent_config.is_none() {
                bail!("seccomp action SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the seccomp agent's socket)");
            }
            if let Some(name) = rule.names().iter().find(|n| NOT_NOTIFIABLE.contains(&n.as_str())) {
                bail!("SCMP_ACT_NOTIFY cannot be used for {name}: berth-runtime's init calls it after loading the notify filter, to hand the listener to the seccomp agent or to load the other filters");
            }
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let own = (act != Action::Kernel(SeccompAction::Allow)).then(|| {
            by_action.iter().position(|(a, _)| *a == act).unwrap_or_else(|| {
                by_action.push((act.clone(), empty()));
                by_action.len() - 1
            })
        });
        for (i, abi) in abis.iter().enumerate() {
            let rules = rules_for(args, abi.arg_len())?;
            for name in rule.names() {
                if let Some(nr) = abi.syscall_number(name) {
                    allowed[i].1.entry(nr).or_default().add(&rules);
                    if let Some(own) = own {
                        by_action[own].1[i].1.entry(nr).or_default().add(&rules);
                    }
                }
                // i386 also reaches socket and SysV IPC calls through socketcall(2) and ipc(2),
                // as libseccomp knows: the rule covers that form too. Its arguments are behind a
                // pointer there, so a conditional rule becomes unconditional for a deny action
                // (stricter) and is left out for ALLOW (the multiplexed form stays denied).
                if *abi == Abi::I386 {
                    if let Some(sub) = multiplexed_i386(name)? {
                        if args.is_empty() {
                            allowed[i].1.entry(sub.0).or_default().add(&sub.1);
                        }
                        if let Some(own) = own {
                            by_action[own].1[i].1.entry(sub.0).or_default().add(&sub.1);
                        }
                    }
                }
            }
        }
    }

    // Load order: the action filters, then the main filter, then the action filters with a rule
    // on seccomp(2), which could deny the loads after them. The main filter allows seccomp(2)
    // when a rule names it (it is in `allowed`); otherwise it may deny it, so it loads after
    // every filter that does not name seccomp(2).
    let seccomp_nr = syscall_number("seccomp");
    let names_seccomp =
        |m: &Matches| m.iter().any(|(abi, m)| *abi == Abi::X86_64 && seccomp_nr.is_some_and(|nr| m.contains_key(&nr)));
    let mut notify = None;
    let mut filters = Vec::new();
    let mut last = Vec::new();
    for (act, matches) in by_action {
        let late = names_seccomp(&matches);
        let programs = link(sections(matches, SeccompAction::Allow, &act)?, &abis)?;
        if act == Action::Notify {
            // A process can have one listener: all notify rules live in one filter.
            if programs.len() > 1 {
                bail!("the SCMP_ACT_NOTIFY rules do not fit in one seccomp filter ({BPF_MAXINSNS} instructions)");
            }
            notify = programs.into_iter().next();
        } else if late {
            last.extend(programs);
        } else {
            filters.extend(programs);
        }
    }
    if default_kernel != SeccompAction::Allow {
        filters.extend(link(sections(allowed, default_kernel, &Action::Kernel(SeccompAction::Allow))?, &abis)?);
    }
    filters.extend(last);
    // A profile that filters nothing still kills the ABIs it does not list.
    if notify.is_none() && filters.is_empty() && abis.len() < 3 {
        filters.push(program(&[], &abis));
    }
    let agent_config = if notify.is_some() { agent_config } else { None };
    let mut notify_flags = flags | SECCOMP_FILTER_FLAG_NEW_LISTENER;
    if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 {
        // seccomp(2) returns the id of a thread TSYNC could not sync, and NEW_LISTENER's fd: with
        // both, the kernel wants the former reported as ESRCH instead.
        notify_flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    if wait_killable_recv {
        notify_flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    Ok(Compiled { notify, filters, flags, notify_flags, agent_config, agent: None })
}

/// `listenerPath` and `listenerMetadata`, checked (the metadata needs the path).
fn agent_config(seccomp: &LinuxSeccomp) -> Result<Option<AgentConfig>> {
    let metadata = seccomp.listener_metadata().clone();
    let Some(path) = seccomp.listener_path().clone() else {
        if metadata.is_some() {
            bail!("linux.seccomp.listenerMetadata is set without listenerPath");
        }
        return Ok(None);
    };
    Ok(Some(AgentConfig { path, metadata }))
}

/// What one filter matches for one syscall: always, or under any of some conditional rules.
#[derive(Default)]
struct Match {
    always: bool,
    rules: Vec<SeccompRule>,
}

impl Match {
    /// Adds an OCI entry's rules (none: the syscall matches unconditionally).
    fn add(&mut self, rules: &[SeccompRule]) {
        if rules.is_empty() {
            self.always = true;
        } else {
            self.rules.extend(rules.iter().cloned());
        }
    }

    /// seccompiler's form: an empty list matches on the syscall number alone.
    fn into_rules(self) -> Vec<SeccompRule> {
        if self.always {
            Vec::new()
        } else {
            self.rules
        }
    }
}

/// OCI args of one syscall entry as seccompiler rules comparing `len` of each argument:
/// conditions are ANDed, except that several conditions on the same argument are ORed (one
/// rule each), as runc does.
fn rules_for(args: &[LinuxSeccompArg], len: SeccompCmpArgLen) -> Result<Vec<SeccompRule>> {
    let cond = |a: &LinuxSeccompArg| -> Result<SeccompCondition> {
        if a.index() > 5 {
            bail!("seccomp argument index {} is out of range (0-5)", a.index());
        }
        let (op, value) = operator(a.op(), a.value(), a.value_two());
        SeccompCondition::new(a.index() as u8, len.clone(), op, value).context("seccomp argument condition")
    };
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let same_index = args.len() > 1 && args.iter().all(|a| a.index() == args[0].index());
    if same_index {
        args.iter().map(|a| SeccompRule::new(vec![cond(a)?]).context("seccomp rule")).collect()
    } else {
        let conds = args.iter().map(cond).collect::<Result<Vec<_>>>()?;
        Ok(vec![SeccompRule::new(conds).context("seccomp rule")?])
    }
}

/// One filter's sections, one per ABI: `matched` for the syscalls in `matches`, `mismatch` for
/// the rest. A section that would only ALLOW is left out (the dispatcher allows for it).
fn sections(matches: Matches, mismatch: SeccompAction, matched: &Action) -> Result<Vec<(Abi, BpfProgram)>> {
    let mut out = Vec::new();
    for (abi, matches) in matches {
        if matches.is_empty() && mismatch == SeccompAction::Allow {
            continue;
        }
        out.push((abi, section(matches, mismatch.clone(), matched)?));
    }
    Ok(out)
}

/// seccompiler's program for `matches`, without its leading x86_64 arch check (the dispatcher
/// does that for every ABI); SCMP_ACT_NOTIFY is compiled as TRAP and patched.
fn section(matches: BTreeMap<i64, Match>, mismatch: SeccompAction, matched: &Action) -> Result<BpfProgram> {
    let placeholder = SeccompAction::Trap;
    let (matched_kernel, notify) = match matched {
        Action::Kernel(a) => (a.clone(), false),
        Action::Notify => (placeholder, true),
    };
    let rules = matches.into_iter().map(|(nr, m)| (nr, m.into_rules())).collect();
    let filter =
        SeccompFilter::new(rules, mismatch, matched_kernel, TargetArch::x86_64).context("building seccomp filter")?;
    let program: BpfProgram = filter.try_into().context("compiling seccomp filter to BPF")?;
    let arch_check = [
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA_ARCH },
        sock_filter { code: BPF_JMP_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
    ];
    let Some(body) = program.strip_prefix(&arch_check[..]) else {
        bail!("seccompiler's program does not start with the x86_64 arch check berth-runtime expects");
    };
    let mut body = body.to_vec();
    if notify {
        // The only RETs of this program are the mismatch (ALLOW) and the placeholder.
        for insn in body.iter_mut().filter(|i| i.code == BPF_RET_K && i.k == SECCOMP_RET_TRAP) {
            insn.k = SECCOMP_RET_USER_NOTIF;
        }
    }
    Ok(body)
}

/// The dispatcher's length: [`program`] puts the sections after it.
const DISPATCH_LEN: usize = 11;
const DISPATCH_ALLOW: usize = 9;
const DISPATCH_KILL: usize = 10;

/// Joins sections into as few programs as fit BPF_MAXINSNS, x86_64's last: the programs are
/// loaded in order by x86_64 code, and the main filter's x86_64 section may deny seccomp(2).
fn link(mut sections: Vec<(Abi, BpfProgram)>, listed: &[Abi]) -> Result<Vec<BpfProgram>> {
    sections.sort_by_key(|(abi, _)| *abi == Abi::X86_64);
    let mut programs = Vec::new();
    let mut current: Vec<(Abi, BpfProgram)> = Vec::new();
    let mut len = DISPATCH_LEN;
    for (abi, body) in sections {
        if DISPATCH_LEN + body.len() > BPF_MAXINSNS {
            bail!(
                "the seccomp filter for {abi:?} has {} instructions, more than the kernel's {BPF_MAXINSNS}",
                DISPATCH_LEN + body.len()
            );
        }
        if len + body.len() > BPF_MAXINSNS {
            programs.push(program(&current, listed));
            current.clear();
            len = DISPATCH_LEN;
        }
        len += body.len();
        current.push((abi, body));
    }
    if !current.is_empty() {
        programs.push(program(&current, listed));
    }
    Ok(programs)
}

/// One filter program: the dispatcher, then `sections`. A syscall of an ABI with a section here
/// goes to it; of another listed ABI, ALLOW (another filter has its section, or it needs none);
/// of an ABI not listed, KILL_PROCESS. BPF_JA takes a 32-bit offset (jt/jf only 8 bits), so
/// every branch to a section is a conditional skip over a JA.
fn program(sections: &[(Abi, BpfProgram)], listed: &[Abi]) -> BpfProgram {
    let stmt = |code, k| sock_filter { code, jt: 0, jf: 0, k };
    let jump = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    let mut starts = Vec::new();
    let mut at = DISPATCH_LEN;
    for (abi, body) in sections {
        starts.push((*abi, at));
        at += body.len();
    }
    let target = |abi: Abi| match starts.iter().find(|(a, _)| *a == abi) {
        Some((_, start)) => *start,
        None if listed.contains(&abi) => DISPATCH_ALLOW,
        None => DISPATCH_KILL,
    };
    let ja = |from: usize, to: usize| stmt(BPF_JMP_JA, (to - from - 1) as u32);
    let mut out = vec![
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_I386, 0, 1),
        ja(2, target(Abi::I386)),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        // No other audit arch makes syscalls on an x86_64 kernel.
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
        jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 1),
        ja(7, target(Abi::X32)),
        ja(8, target(Abi::X86_64)),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ];
    debug_assert_eq!(out.len(), DISPATCH_LEN);
    for (_, body) in sections {
        out.extend(body.iter().cloned());
    }
    out
}

/// Connects to the seccomp agent at `path` (a host path: call before init leaves the host's
/// mount namespace). The socket is close-on-exec: it never reaches the container's program.
pub fn connect_agent(bundle: &Path, path: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    // A relative listenerPath is relative to the bundle, as in runc (which runs in the bundle).
    let path = &bundle.join(path);
    let what = || format!("connecting to the seccomp agent at linux.seccomp.listenerPath {}", path.display());
    let addr = UnixAddr::new(path).with_context(what)?;
    let sock =
        socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).context("socket for the agent")?;
    connect(sock.as_raw_fd(), &addr).with_context(what)?;
    Ok(sock)
}

/// The OCI container process state the seccomp agent gets with the listener fd: `fds` names
/// the one fd sent, `pid` is the process that loads the filter (as the runtime sees it), `state`
/// the container's OCI state (`container_state`, of which only OCI's own fields are kept).
pub fn process_state(container_state: &serde_json::Value, pid: i32, metadata: Option<&str>) -> String {
    let mut state = serde_json::Map::new();
    for key in ["ociVersion", "id", "status", "pid", "bundle", "annotations"] {
        if let Some(v) = container_state.get(key) {
            state.insert(key.to_string(), v.clone());
        }
    }
    let mut doc = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata {
        doc["metadata"] = serde_json::json!(m);
    }
    doc.to_string()
}

impl Compiled {
    /// Where the seccomp agent listens, when the profile uses SCMP_ACT_NOTIFY (otherwise
    /// `listenerPath` is ignored, as the spec says).
    pub fn listener_path(&self) -> Option<&Path> {
        self.agent_config.as_ref().map(|a| a.path.as_path())
    }

    /// `listenerMetadata`, for [`process_state`].
    pub fn listener_metadata(&self) -> Option<&str> {
        self.agent_config.as_ref().and_then(|a| a.metadata.as_deref())
    }

    /// Gives the filter its agent: a socket from [`connect_agent`] and the [`process_state`]
    /// to send it.
    pub fn set_agent(&mut self, socket: OwnedFd, process_state: String) {
        self.agent = Some(Agent { socket: Some(socket), process_state: process_state.into_bytes() });
    }

    /// Installs the filters on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN. The
    /// notify filter goes first, and its listener straight to the agent; the only syscalls
    /// between are sendmsg and close (and seccomp for the filters after), which no profile may
    /// notify, so nothing waits for an agent without the fd.
    pub fn apply(&mut self) -> Result<()> {
        if let Some(program) = &self.notify {
            let path = self.agent_config.as_ref().map(|a| a.path.display().to_string()).unwrap_or_default();
            let agent = self.agent.as_mut().context("no seccomp agent connection for SCMP_ACT_NOTIFY")?;
            let socket = agent.socket.take().context("the seccomp agent was sent its state already")?;
            let listener = install(program, self.notify_flags)?
                .context("seccomp(2) with SECCOMP_FILTER_FLAG_NEW_LISTENER returned no listener")?;
            let sent = send_state(&socket, &agent.process_state, &listener);
            // Closed now: the agent holds the listener alone (if it goes away, notified syscalls
            // fail with ENOSYS instead of waiting), and sees the end of the connection.
            drop(listener);
            drop(socket);
            sent.with_context(|| format!("sending the seccomp listener to the agent at {path}"))?;
        }
        for program in &self.filters {
            install(program, self.flags)?;
        }
        Ok(())
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, program): the listener fd with NEW_LISTENER.
fn install(program: &BpfProgram, flags: libc::c_uint) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: seccomp(2) reads `prog`, which points at `program`'s instructions; both live until
    // the call returns, and the kernel copies the program.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // The flag the kernel most often lacks: EINVAL names it rather than leaving a bare number.
        let hint = if e.raw_os_error() == Some(libc::EINVAL) && flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
            "; SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs Linux 5.19 or later"
        } else {
            ""
        };
        return Err(e).with_context(|| format!("installing a seccomp filter (seccomp(2) flags {flags:#x}{hint})"));
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 || r == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER, seccomp(2) returns a new fd (close-on-exec) that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) }))
}

/// Sends `state` with `listener` (SCM_RIGHTS, in the first sendmsg) on `socket`. Allocates
/// nothing: the filters may already deny brk and mmap.
fn send_state(socket: &OwnedFd, state: &[u8], listener: &OwnedFd) -> std::io::Result<()> {
    // CMSG_SPACE(sizeof(int)) is 24 on x86_64; u64s keep the buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    let mut sent = 0;
    while sent < state.len() {
        let mut iov =
            libc::iovec { iov_base: state[sent..].as_ptr() as *mut libc::c_void, iov_len: state.len() - sent };
        // SAFETY: an all-zero msghdr is a valid empty message.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if sent == 0 {
            let fd_len = std::mem::size_of::<libc::c_int>() as libc::c_uint;
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is arithmetic on its argument.
            msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_len) } as _;
            // SAFETY: msg_control points at `control`, which is at least CMSG_SPACE(4) bytes and
            // aligned for cmsghdr, so the first header and its data lie inside it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), listener.as_raw_fd());
            }
        }
        // SAFETY: `msg` points at `iov` (into `state`) and `control`, all alive for the call.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        sent += n as usize;
    }
    Ok(())
}
#[cfg(test)]
impl Compiled {
    /// The lengths of the filters in load order (the notify filter first).
    pub(crate) fn program_lengths(&self) -> Vec<usize> {
        self.notify.iter().chain(self.filters.iter()).map(|p| p.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const ALL_ABIS: &str = r#""architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"]"#;
    const X32: i64 = 0x4000_0000;

    /// A syscall as the kernel hands it to a filter.
    struct Call {
        arch: u32,
        nr: i64,
        args: [u64; 6],
    }

    fn x86_64(nr: i64) -> Call {
        Call { arch: AUDIT_ARCH_X86_64, nr, args: [0; 6] }
    }
    fn i386(nr: i64) -> Call {
        Call { arch: AUDIT_ARCH_I386, nr, args: [0; 6] }
    }
    fn x32(nr: i64) -> Call {
        Call { arch: AUDIT_ARCH_X86_64, nr, args: [0; 6] }
    }

    /// Runs one classic BPF program over `call`, as the kernel would (the instructions seccompiler
    /// and our dispatcher emit).
    fn run(program: &[sock_filter], call: &Call) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => call.nr as u32,
                4 => call.arch,
                o if (16..64).contains(&o) => {
                    let arg = call.args[((o - 16) / 8) as usize];
                    if o % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                o => panic!("load from offset {o}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &program[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => acc = word(i.k),
                0x54 => acc &= i.k, // BPF_ALU | BPF_AND | BPF_K
                BPF_JMP_JA => pc += i.k as usize,
                BPF_RET_K => return i.k,
                code => {
                    let taken = match code {
                        BPF_JMP_JEQ_K => acc == i.k,
                        0x25 => acc > i.k,  // JGT
                        0x35 => acc >= i.k, // JGE
                        BPF_JMP_JSET_K => acc & i.k != 0,
                        c => panic!("opcode {c:#x}"),
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
            }
        }
    }

    /// What the kernel returns for `call` under all of `c`'s filters: the most severe action,
    /// the newest filter's among equals.
    fn verdict(c: &Compiled, call: &Call) -> u32 {
        let programs = c.notify.iter().chain(c.filters.iter());
        let mut best = SECCOMP_RET_ALLOW;
        for program in programs.collect::<Vec<_>>().into_iter().rev() {
            let r = run(program, call);
            if ((r & 0xffff_0000) as i32) < ((best & 0xffff_0000) as i32) {
                best = r;
            }
        }
        best
    }

    const ERRNO: u32 = 0x0005_0000;

    #[test]
    fn syscall_names_resolve_per_abi_and_unknown_ones_do_not() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("mount"), Some(165));
        assert_eq!(syscall_number("no_such_syscall"), None);
        assert_eq!(Abi::I386.syscall_number("read"), Some(3));
        assert_eq!(Abi::I386.syscall_number("mkdir"), Some(39));
        assert_eq!(Abi::I386.syscall_number("socketcall"), Some(102));
        assert_eq!(Abi::X32.syscall_number("mkdir"), Some(X32 + 83));
        assert_eq!(Abi::X32.syscall_number("execve"), Some(X32 + 520));
        assert_eq!(Abi::X32.syscall_number("socketcall"), None);
        // Linux 6.2-6.13: the same numbers on all three; the "64" ones are not x32's.
        assert_eq!(Abi::I386.syscall_number("removexattrat"), Some(466));
        assert_eq!(Abi::X32.syscall_number("removexattrat"), Some(X32 + 466));
        assert_eq!(Abi::I386.syscall_number("map_shadow_stack"), Some(453));
        assert_eq!(Abi::X32.syscall_number("map_shadow_stack"), None);
        assert_eq!(Abi::X32.syscall_number("uretprobe"), Some(X32 + 335));
        assert_eq!(Abi::I386.syscall_number("uretprobe"), None);
    }

    #[test]
    fn syscall_tables_are_sorted_for_binary_search_and_numbers_are_unique() {
        for table in [syscalls_x86_64::SYSCALLS, syscalls_i386::SYSCALLS, syscalls_x32::SYSCALLS] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
            let mut numbers: Vec<i64> = table.iter().map(|(_, n)| *n).collect();
            numbers.sort();
            numbers.dedup();
            assert_eq!(numbers.len(), table.len());
        }
        assert!(syscalls_x32::SYSCALLS.iter().all(|(_, n)| n & X32 != 0));
    }

    #[test]
    fn one_filter_per_action_besides_allow() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write","not_a_syscall"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                {"names":["getpid"],"action":"SCMP_ACT_KILL"},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let c = compile(&p).unwrap();
        // main + ERRNO(38) + KILL_THREAD
        assert_eq!(c.filters.len(), 3);
        assert_eq!(verdict(&c, &x86_64(83)), ERRNO | 38);
        assert_eq!(verdict(&c, &x86_64(39)), 0, "getpid: KILL_THREAD");
        assert_eq!(verdict(&c, &x86_64(0)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x86_64(2)), ERRNO | 1, "open: the default");
        let mut persona = x86_64(135);
        assert_eq!(verdict(&c, &persona), SECCOMP_RET_ALLOW);
        persona.args[0] = 8;
        assert_eq!(verdict(&c, &persona), ERRNO | 1);
    }

    #[test]
    fn unlisted_abis_are_killed_by_every_filter() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let c = compile(&p).unwrap();
        assert_eq!(c.filters.len(), 1);
        for program in &c.filters {
            assert_eq!(run(program, &i386(39)), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run(program, &i386(3)), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run(program, &x32(X32 + 83)), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run(program, &x32(X32)), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run(program, &Call { arch: 0xc000_00b7, nr: 83, args: [0; 6] }), SECCOMP_RET_KILL_PROCESS);
        }
        assert_eq!(verdict(&c, &x86_64(83)), ERRNO | 38);
        assert_eq!(verdict(&c, &x86_64(0)), SECCOMP_RET_ALLOW);
    }

    #[test]
    fn listed_abis_get_the_rules_by_their_own_numbers() {
        let p = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",{ALL_ABIS},
                "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}},
                            {{"names":["sync"],"action":"SCMP_ACT_KILL_PROCESS"}}]}}"#
        ));
        let c = compile(&p).unwrap();
        assert_eq!(verdict(&c, &x86_64(83)), ERRNO | 38);
        assert_eq!(verdict(&c, &i386(39)), ERRNO | 38);
        assert_eq!(verdict(&c, &x32(X32 + 83)), ERRNO | 38);
        // i386's 83 is symlink, x86_64's 39 getpid: not the rule's.
        assert_eq!(verdict(&c, &i386(83)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x86_64(39)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x32(X32 + 39)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &i386(36)), SECCOMP_RET_KILL_PROCESS, "sync on i386");
        assert_eq!(verdict(&c, &x32(X32 + 162)), SECCOMP_RET_KILL_PROCESS, "sync on x32");
        // Another audit arch cannot occur here; it is killed all the same.
        assert_eq!(verdict(&c, &Call { arch: 0xc000_00b7, nr: 83, args: [0; 6] }), SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn x86_alone_without_x32_still_kills_x32() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_AARCH64"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let c = compile(&p).unwrap();
        assert_eq!(verdict(&c, &i386(39)), ERRNO | 38);
        assert_eq!(verdict(&c, &i386(3)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x32(X32 + 83)), SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn a_profile_that_filters_nothing_still_kills_unlisted_abis() {
        let c = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)).unwrap();
        assert_eq!(c.filters.len(), 1);
        assert_eq!(verdict(&c, &x86_64(83)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &i386(39)), SECCOMP_RET_KILL_PROCESS);
        let c = compile(&profile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW",{ALL_ABIS}}}"#))).unwrap();
        assert!(c.filters.is_empty());
    }

    #[test]
    fn a_default_errno_allow_list_applies_to_every_listed_abi() {
        let p = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,{ALL_ABIS},
                "syscalls":[{{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        ));
        let c = compile(&p).unwrap();
        assert_eq!(verdict(&c, &x86_64(0)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &i386(3)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x32(X32)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &x86_64(217)), ERRNO | 13, "getdents64");
        assert_eq!(verdict(&c, &i386(220)), ERRNO | 13, "getdents64");
        assert_eq!(verdict(&c, &x32(X32 + 217)), ERRNO | 13, "getdents64");
    }

    #[test]
    fn arguments_compare_their_low_32_bits_on_i386_and_x32_and_all_64_on_x86_64() {
        let p = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",{ALL_ABIS},
                "syscalls":[{{"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":1,
                  "args":[{{"index":0,"value":8,"op":"SCMP_CMP_EQ"}}]}}]}}"#
        ));
        let c = compile(&p).unwrap();
        let call = |mut c: Call, arg| {
            c.args[0] = arg;
            c
        };
        assert_eq!(verdict(&c, &call(x86_64(135), 8)), ERRNO | 1);
        assert_eq!(verdict(&c, &call(x86_64(135), 0x1_0000_0008)), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&c, &call(i386(136), 8)), ERRNO | 1);
        assert_eq!(verdict(&c, &call(x32(X32 + 135), 0x1_0000_0008)), ERRNO | 1);
        assert_eq!(verdict(&c, &call(i386(136), 0)), SECCOMP_RET_ALLOW);
    }

    #[test]
    fn i386_socket_and_ipc_rules_cover_socketcall_and_ipc_too() {
        let call = |nr, arg0| Call { arch: AUDIT_ARCH_I386, nr, args: [arg0, 0, 0, 0, 0, 0] };
        let (socketcall, ipc) = (102, 117);
        let deny = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["socket","shmget"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let c = compile(&deny).unwrap();
        assert_eq!(verdict(&c, &call(359, 0)), ERRNO | 1, "socket(2) itself");
        assert_eq!(verdict(&c, &call(socketcall, 1)), ERRNO | 1, "socketcall(SYS_SOCKET)");
        assert_eq!(verdict(&c, &call(socketcall, 2)), SECCOMP_RET_ALLOW, "socketcall(SYS_BIND)");
        assert_eq!(verdict(&c, &call(ipc, 23)), ERRNO | 1, "ipc(SHMGET)");
        assert_eq!(verdict(&c, &call(ipc, 23 | 1 << 16)), ERRNO | 1, "ipc(SHMGET) with a version");
        assert_eq!(verdict(&c, &call(ipc, 13)), SECCOMP_RET_ALLOW, "ipc(MSGGET)");
        assert_eq!(verdict(&c, &x86_64(41)), ERRNO | 1, "x86_64 socket");

        let allow = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["bind"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":3,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let c = compile(&allow).unwrap();
        assert_eq!(verdict(&c, &call(socketcall, 1)), SECCOMP_RET_ALLOW, "allowed socket, multiplexed");
        assert_ne!(verdict(&c, &call(socketcall, 2)), SECCOMP_RET_ALLOW, "a conditional allow is not multiplexed");
        assert_ne!(verdict(&c, &call(socketcall, 3)), SECCOMP_RET_ALLOW, "connect is not allowed");
    }

    /// Every syscall name any of the three tables knows.
    fn every_syscall_name() -> Vec<&'static str> {
        let mut names: Vec<&str> = [syscalls_x86_64::SYSCALLS, syscalls_i386::SYSCALLS, syscalls_x32::SYSCALLS]
            .iter()
            .flat_map(|t| t.iter().map(|(n, _)| *n))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The kernel's bounds: each program within BPF_MAXINSNS, all of them within
    /// MAX_INSNS_PER_PATH (32768 instructions, 4 more counted per filter).
    fn assert_loadable(c: &Compiled) {
        let programs: Vec<&BpfProgram> = c.notify.iter().chain(c.filters.iter()).collect();
        for p in &programs {
            assert!(p.len() <= BPF_MAXINSNS, "{} instructions", p.len());
        }
        let total: usize = programs.iter().map(|p| p.len() + 4).sum();
        assert!(total <= 32768, "{total} instructions on the path");
    }

    #[test]
    fn an_allow_list_of_every_known_syscall_on_three_abis_is_split_to_fit_and_still_right() {
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": every_syscall_name(), "action": "SCMP_ACT_ALLOW"},
                         {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                          "args": [{"index": 0, "value": 0x7e020000u64, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0}]}]
        }))
        .unwrap();
        let c = compile(&p).unwrap();
        // clone's ERRNO filter, then the main filter split into several programs.
        assert!(c.filters.len() >= 3, "{:?}", c.program_lengths());
        assert_loadable(&c);
        for (abi, call) in [(Abi::X86_64, x86_64 as fn(i64) -> Call), (Abi::I386, i386), (Abi::X32, x32)] {
            let table = match abi {
                Abi::X86_64 => syscalls_x86_64::SYSCALLS,
                Abi::I386 => syscalls_i386::SYSCALLS,
                Abi::X32 => syscalls_x32::SYSCALLS,
            };
            for (name, nr) in table.iter().filter(|(n, _)| *n != "clone") {
                assert_eq!(verdict(&c, &call(*nr)), SECCOMP_RET_ALLOW, "{abi:?} {name}");
            }
            let unknown = if abi == Abi::X32 { X32 + 999 } else { 999 };
            assert_eq!(verdict(&c, &call(unknown)), ERRNO | 1, "{abi:?} 999");
        }
    }

    #[test]
    fn a_split_main_filter_denies_seccomp_only_in_its_last_program() {
        // A strict allow-list without seccomp, large enough to need several programs: init loads
        // them in order, so only the last may deny seccomp(2) to x86_64.
        let names: Vec<&str> = every_syscall_name().into_iter().filter(|n| *n != "seccomp").collect();
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let c = compile(&p).unwrap();
        let seccomp = x86_64(syscall_number("seccomp").unwrap());
        let (last, before) = c.filters.split_last().unwrap();
        assert!(!before.is_empty());
        for program in before {
            assert_eq!(run(program, &seccomp), SECCOMP_RET_ALLOW);
        }
        assert_eq!(run(last, &seccomp), ERRNO | 1);
        assert_eq!(verdict(&c, &i386(Abi::I386.syscall_number("seccomp").unwrap())), ERRNO | 1);
    }

    #[test]
    fn a_rule_on_seccomp_loads_after_the_other_action_filters() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["seccomp"],"action":"SCMP_ACT_ERRNO"},
                {"names":["sync"],"action":"SCMP_ACT_KILL"}]}"#,
        );
        let c = compile(&p).unwrap();
        let seccomp = x86_64(syscall_number("seccomp").unwrap());
        let (last, before) = c.filters.split_last().unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(run(&before[0], &seccomp), SECCOMP_RET_ALLOW);
        assert_eq!(run(last, &seccomp), ERRNO | 1);
    }

    #[test]
    fn berths_default_profile_fits_on_three_abis() {
        let caps: Vec<String> = caps::all().iter().map(|c| format!("{c}")).collect();
        for bounding in [Vec::new(), caps] {
            let p = default_profile::resolve(&bounding).unwrap();
            assert_eq!(p.architectures().as_ref().map(|a| a.len()), Some(3));
            let c = compile(&p).unwrap();
            assert_loadable(&c);
            assert_eq!(verdict(&c, &i386(3)), SECCOMP_RET_ALLOW, "read");
            assert_eq!(verdict(&c, &x32(X32)), SECCOMP_RET_ALLOW, "read");
        }
    }

    fn notify_profile(extra: &str) -> LinuxSeccomp {
        profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",{ALL_ABIS},"listenerPath":"/run/agent.sock"{extra},
                "syscalls":[{{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_NOTIFY"}},
                            {{"names":["sync"],"action":"SCMP_ACT_ERRNO"}}]}}"#
        ))
    }

    #[test]
    fn notify_rules_form_one_filter_returning_user_notif_on_every_listed_abi() {
        let c = compile(&notify_profile("")).unwrap();
        assert!(c.notify.is_some());
        assert_eq!(c.filters.len(), 1, "the ERRNO filter");
        assert_eq!(c.listener_path(), Some(Path::new("/run/agent.sock")));
        assert_eq!(c.notify_flags, SECCOMP_FILTER_FLAG_NEW_LISTENER);
        assert_eq!(verdict(&c, &x86_64(83)), SECCOMP_RET_USER_NOTIF);
        assert_eq!(verdict(&c, &i386(39)), SECCOMP_RET_USER_NOTIF);
        assert_eq!(verdict(&c, &x32(X32 + 83)), SECCOMP_RET_USER_NOTIF);
        assert_eq!(verdict(&c, &x86_64(162)), ERRNO | 1, "sync");
        assert_eq!(verdict(&c, &x86_64(0)), SECCOMP_RET_ALLOW);
    }

    #[test]
    fn notify_flags_add_tsync_esrch_and_wait_killable_recv_to_the_notify_filter_only() {
        let c = compile(&notify_profile(
            r#","flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]"#,
        ))
        .unwrap();
        assert_eq!(c.flags, SECCOMP_FILTER_FLAG_TSYNC);
        assert_eq!(
            c.notify_flags,
            SECCOMP_FILTER_FLAG_TSYNC
                | SECCOMP_FILTER_FLAG_NEW_LISTENER
                | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
                | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        // Without notify rules, listenerPath and WAIT_KILLABLE_RECV change nothing.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls":[{"names":["sync"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let c = compile(&p).unwrap();
        assert!(c.notify.is_none() && c.listener_path().is_none());
        assert_eq!(c.flags, 0);
    }

    fn error_of(json: &str) -> String {
        match compile(&profile(json)) {
            Ok(_) => panic!("{json} compiled"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn notify_misuse_and_foreign_architectures_are_refused_by_name() {
        let e = error_of(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/a.sock"}"#);
        assert!(e.contains("SCMP_ACT_NOTIFY cannot be the seccomp default action"), "{e}");
        let e = error_of(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(e.contains("needs linux.seccomp.listenerPath"), "{e}");
        for name in NOT_NOTIFIABLE {
            let e = error_of(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock",
                    "syscalls":[{{"names":["mkdir","{name}"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
            ));
            assert!(e.contains(&format!("SCMP_ACT_NOTIFY cannot be used for {name}")), "{e}");
        }
        let e = error_of(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"x"}"#);
        assert!(e.contains("listenerMetadata is set without listenerPath"), "{e}");
        let e = error_of(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}"#);
        assert!(e.contains("X86_64"), "{e}");
        let e = error_of(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}"#);
        assert!(e.contains("X86_64"), "{e}");
    }

    #[test]
    fn the_process_state_has_ocis_fields_only() {
        let state = serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42,
            "bundle": "/b", "rootfs": "/b/rootfs", "owner": "root", "annotations": {"k": "v"}});
        let doc: serde_json::Value = serde_json::from_str(&process_state(&state, 43, Some("meta"))).unwrap();
        assert_eq!(doc["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(doc["pid"], 43);
        assert_eq!(doc["metadata"], "meta");
        assert_eq!(doc["ociVersion"], crate::spec::OCI_VERSION);
        assert_eq!(
            doc["state"],
            serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42,
                "bundle": "/b", "annotations": {"k": "v"}})
        );
        let doc: serde_json::Value = serde_json::from_str(&process_state(&state, 43, None)).unwrap();
        assert!(doc.get("metadata").is_none());
    }
}
