//! `linux.seccomp`, compiled in-process with seccompiler (no libseccomp).
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
//! ERRNO wins. Unknown syscall names are skipped, as runc does. Only the native x86_64 ABI is
//! filtered: another architecture is killed by seccompiler's check, and x32 syscalls (which
//! share x86_64's audit arch, with bit 30 set in the number) by a check of our own in front of
//! every filter, so a deny rule cannot be bypassed through the x32 numbers.

pub mod default_profile;
mod syscalls_x86_64;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 4;

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
];

/// A compiled profile, ready to install.
pub struct Compiled {
    filters: Vec<BpfProgram>,
    flags: libc::c_uint,
}

/// The number of the x86_64 syscall `name`, if the kernel headers know it.
pub fn syscall_number(name: &str) -> Option<i64> {
    let table = syscalls_x86_64::SYSCALLS;
    table.binary_search_by(|(n, _)| n.cmp(&name)).ok().map(|i| table[i].1)
}

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<SeccompAction> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno_ret.unwrap_or(libc::EPERM as u32)),
        // libseccomp's SCMP_ACT_KILL is KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => SeccompAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno_ret.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            bail!("seccomp action SCMP_ACT_NOTIFY (listenerPath) is not supported by berth-runtime yet")
        }
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

/// Compiles `seccomp` into filters for this machine.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled> {
    if !cfg!(target_arch = "x86_64") {
        bail!("linux.seccomp is only supported on x86_64 by this build of berth-runtime");
    }
    if let Some(archs) = seccomp.architectures().as_ref().filter(|a| !a.is_empty()) {
        if !archs.iter().any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative)) {
            bail!("linux.seccomp.architectures {archs:?} does not include this machine's SCMP_ARCH_X86_64");
        }
    }
    if seccomp.listener_path().is_some() {
        bail!("linux.seccomp.listenerPath (seccomp notify) is not supported by berth-runtime yet");
    }
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                bail!("seccomp flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs seccomp notify, which is not supported yet")
            }
        };
    }
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;

    // Rules per syscall number for the main (allow) filter, and per action for the others.
    let mut allowed: BTreeMap<i64, Match> = BTreeMap::new();
    let mut by_action: Vec<(SeccompAction, BTreeMap<i64, Match>)> = Vec::new();
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let rules = rules_for(rule.args().as_deref().unwrap_or_default())?;
        for name in rule.names() {
            let Some(nr) = syscall_number(name) else { continue };
            allowed.entry(nr).or_default().add(&rules);
            if act != SeccompAction::Allow {
                let idx = match by_action.iter().position(|(a, _)| *a == act) {
                    Some(i) => i,
                    None => {
                        by_action.push((act.clone(), BTreeMap::new()));
                        by_action.len() - 1
                    }
                };
                by_action[idx].1.entry(nr).or_default().add(&rules);
            }
        }
    }

    let mut filters = Vec::new();
    for (act, rules) in by_action {
        filters.push(build(rules, SeccompAction::Allow, act)?);
    }
    // The main filter last: once it is in, seccomp(2) itself may be denied.
    if default != SeccompAction::Allow {
        filters.push(build(allowed, default, SeccompAction::Allow)?);
    }
    Ok(Compiled { filters, flags })
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

/// OCI args of one syscall entry as seccompiler rules: conditions are ANDed, except that several
/// conditions on the same argument are ORed (one rule each), as runc does.
fn rules_for(args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<Vec<SeccompRule>> {
    let cond = |a: &oci_spec::runtime::LinuxSeccompArg| -> Result<SeccompCondition> {
        if a.index() > 5 {
            bail!("seccomp argument index {} is out of range (0-5)", a.index());
        }
        let (op, value) = operator(a.op(), a.value(), a.value_two());
        SeccompCondition::new(a.index() as u8, SeccompCmpArgLen::Qword, op, value).context("seccomp argument condition")
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

fn build(matches: BTreeMap<i64, Match>, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram> {
    let rules = matches.into_iter().map(|(nr, m)| (nr, m.into_rules())).collect();
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).context("building seccomp filter")?;
    let program: BpfProgram = filter.try_into().context("compiling seccomp filter to BPF")?;
    Ok(refuse_x32(program))
}

/// Prefixes `program` with: load the syscall number; if it has the x32 bit (0x40000000), kill
/// the process. Jumps in `program` are relative, so prefixing keeps them valid.
fn refuse_x32(program: BpfProgram) -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JMP_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    let mut out = vec![
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 }, // seccomp_data.nr
        sock_filter { code: BPF_JMP_JSET_K, jt: 0, jf: 1, k: 0x4000_0000 },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
    ];
    out.extend(program);
    out
}

impl Compiled {
    /// Installs the filters on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
    pub fn apply(&self) -> Result<()> {
        for program in &self.filters {
            let prog =
                libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
            // SAFETY: seccomp(2) reads `prog`, which points at `program`'s instructions; both live
            // until the call returns, and the kernel copies the program.
            let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, self.flags, &prog) };
            if r != 0 {
                return Err(std::io::Error::last_os_error()).context("installing the seccomp filter");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn syscall_names_resolve_and_unknown_ones_do_not() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("mount"), Some(165));
        assert_eq!(syscall_number("no_such_syscall"), None);
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
    }

    #[test]
    fn every_filter_kills_x32_syscall_numbers_first() {
        let p =
            profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL"}]}"#);
        for program in compile(&p).unwrap().filters {
            assert_eq!((program[0].code, program[0].k), (0x20, 0), "load nr");
            assert_eq!((program[1].code, program[1].k), (0x45, 0x4000_0000), "test the x32 bit");
            assert_eq!((program[2].code, program[2].k), (0x06, 0x8000_0000), "kill the process");
        }
    }

    #[test]
    fn allow_by_default_needs_no_main_filter() {
        let p =
            profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#);
        assert_eq!(compile(&p).unwrap().filters.len(), 1);
    }

    #[test]
    fn notify_and_foreign_architectures_are_refused_by_name() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile(&p).err().unwrap().to_string().contains("NOTIFY"));
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}"#);
        assert!(compile(&p).err().unwrap().to_string().contains("X86_64"));
    }
}
