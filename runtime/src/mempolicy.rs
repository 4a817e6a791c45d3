//! `linux.memoryPolicy`: the NUMA memory policy of the container's processes, set with
//! set_mempolicy(2) by init (and by an exec'd process) right before the program runs; execve
//! and fork keep it.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

/// The modes this build applies (`features` reports them).
pub const MODES: &[&str] = &[
    "MPOL_DEFAULT",
    "MPOL_PREFERRED",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];

/// The mode flags this build applies (`features` reports them).
pub const FLAGS: &[&str] = &["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"];

/// The highest node number a nodes list may name (the kernel's MAX_NUMNODES is at most 1024).
const MAX_NODE: usize = 1023;

/// set_mempolicy's arguments: mode with its flags, and the node mask (empty: no nodes).
#[derive(Debug, PartialEq, Eq)]
pub struct Compiled {
    mode: libc::c_int,
    nodemask: Vec<libc::c_ulong>,
}

/// Checks a policy and turns it into set_mempolicy's arguments (done before anything is
/// created, so a bad policy fails `create` with a clear message).
pub fn compile(policy: &LinuxMemoryPolicy) -> Result<Compiled> {
    let nodes = policy.nodes().as_deref().unwrap_or("").trim();
    let (mode, name) = match policy.mode() {
        MemoryPolicyModeType::MpolDefault => (0, "MPOL_DEFAULT"),
        MemoryPolicyModeType::MpolPreferred => (1, "MPOL_PREFERRED"),
        MemoryPolicyModeType::MpolBind => (2, "MPOL_BIND"),
        MemoryPolicyModeType::MpolInterleave => (3, "MPOL_INTERLEAVE"),
        MemoryPolicyModeType::MpolLocal => (4, "MPOL_LOCAL"),
        MemoryPolicyModeType::MpolPreferredMany => (5, "MPOL_PREFERRED_MANY"),
        MemoryPolicyModeType::MpolWeightedInterleave => (6, "MPOL_WEIGHTED_INTERLEAVE"),
    };
    let needs_nodes = !matches!(
        policy.mode(),
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal | MemoryPolicyModeType::MpolPreferred
    );
    match (policy.mode(), nodes.is_empty()) {
        (MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal, false) => {
            bail!("linux.memoryPolicy: {name} takes no nodes (got {nodes:?})")
        }
        (_, true) if needs_nodes => bail!("linux.memoryPolicy: {name} needs nodes"),
        _ => {}
    }
    let mut flags = 0;
    for flag in policy.flags().iter().flatten() {
        flags |= match flag {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    Ok(Compiled { mode: mode | flags, nodemask: parse_nodes(nodes)? })
}

/// A nodes list (`0-3,7`) as a bit mask of unsigned longs.
fn parse_nodes(list: &str) -> Result<Vec<libc::c_ulong>> {
    let bits = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| -> Result<usize> {
            let n: usize =
                s.trim().parse().with_context(|| format!("linux.memoryPolicy.nodes: {s:?} is not a node number"))?;
            if n > MAX_NODE {
                bail!("linux.memoryPolicy.nodes: node {n} is above {MAX_NODE}");
            }
            Ok(n)
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            bail!("linux.memoryPolicy.nodes: range {part:?} runs backwards");
        }
        for node in first..=last {
            if mask.len() <= node / bits {
                mask.resize(node / bits + 1, 0);
            }
            mask[node / bits] |= 1 << (node % bits);
        }
    }
    Ok(mask)
}

impl Compiled {
    /// Sets the calling thread's memory policy.
    pub fn apply(&self) -> Result<()> {
        let (ptr, maxnode) = if self.nodemask.is_empty() {
            (std::ptr::null(), 0)
        } else {
            // The kernel reads maxnode - 1 bits (a historical off-by-one libnuma also follows).
            (self.nodemask.as_ptr(), self.nodemask.len() * libc::c_ulong::BITS as usize + 1)
        };
        // SAFETY: set_mempolicy reads (maxnode - 1) bits from `ptr`, which points at
        // `self.nodemask` (that many bits long) or is NULL with maxnode 0.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, self.mode, ptr, maxnode) };
        if r != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("set_mempolicy (linux.memoryPolicy, mode {:#x})", self.mode));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> LinuxMemoryPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn modes_flags_and_node_lists_become_set_mempolicy_arguments() {
        let c = compile(&policy(r#"{"mode":"MPOL_INTERLEAVE","nodes":"0-2,5,64","flags":["MPOL_F_STATIC_NODES"]}"#))
            .unwrap();
        assert_eq!(c.mode, 3 | 1 << 15);
        assert_eq!(c.nodemask, vec![0b100111, 1]);
        assert_eq!(compile(&policy(r#"{"mode":"MPOL_LOCAL"}"#)).unwrap(), Compiled { mode: 4, nodemask: vec![] });
    }

    #[test]
    fn bad_policies_are_refused_by_name() {
        for (json, want) in [
            (r#"{"mode":"MPOL_BIND"}"#, "needs nodes"),
            (r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#, "takes no nodes"),
            (r#"{"mode":"MPOL_BIND","nodes":"x"}"#, "not a node number"),
            (r#"{"mode":"MPOL_BIND","nodes":"3-1"}"#, "backwards"),
            (r#"{"mode":"MPOL_BIND","nodes":"5000"}"#, "above"),
        ] {
            let err = format!("{:#}", compile(&policy(json)).unwrap_err());
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
