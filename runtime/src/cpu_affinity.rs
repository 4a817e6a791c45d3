//! `process.execCPUAffinity` (runc 1.2) for exec'd processes: the `initial` CPUs the new process
//! runs on until it is in the container's cgroup, then the `final` ones. Without `final`, the
//! affinity `initial` set is undone once in the cgroup (as runc does), so the process gets the
//! cgroup's CPUs as if `initial` had never been set. The container's init is not concerned.

use anyhow::{bail, Context, Result};
use nix::sched::CpuSet;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

/// The affinities to give an exec'd process around its move into the container's cgroup.
#[derive(Debug, Default)]
pub struct Plan {
    initial: Option<CpuSet>,
    last: Option<CpuSet>,
}

impl Plan {
    /// The plan for `process` (nothing to do without execCPUAffinity); errors name the field.
    pub fn of(process: &Process) -> Result<Plan> {
        let Some(a) = process.exec_cpu_affinity() else { return Ok(Plan::default()) };
        let set = |field: &str, list: &Option<String>| {
            list.as_deref()
                .filter(|l| !l.is_empty())
                .map(|l| parse(l).with_context(|| format!("process.execCPUAffinity.{field} {l:?}")))
                .transpose()
        };
        Ok(Plan { initial: set("initial", a.initial())?, last: set("final", a.cpu_affinity_final())? })
    }

    /// Before the process joins the container's cgroup.
    pub fn before_cgroup(&self, pid: Pid) -> Result<()> {
        match &self.initial {
            Some(set) => apply(pid, set, "initial"),
            None => Ok(()),
        }
    }

    /// Once it is in the container's cgroup.
    pub fn after_cgroup(&self, pid: Pid) -> Result<()> {
        match (&self.last, &self.initial) {
            (Some(set), _) => apply(pid, set, "final"),
            // Every CPU: the kernel keeps those the process's cpuset allows.
            (None, Some(_)) => apply(pid, &every_cpu()?, "reset after initial"),
            (None, None) => Ok(()),
        }
    }
}

fn apply(pid: Pid, set: &CpuSet, what: &str) -> Result<()> {
    nix::sched::sched_setaffinity(pid, set).with_context(|| format!("setting the exec'd process's {what} CPU affinity"))
}

fn every_cpu() -> Result<CpuSet> {
    let mut set = CpuSet::new();
    for cpu in 0..CpuSet::count() {
        set.set(cpu).context("building a CPU set")?;
    }
    Ok(set)
}

/// A kernel CPU list (`0-3,7`) as a set.
pub fn parse(list: &str) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    for part in list.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let number = |s: &str| s.trim().parse::<usize>().with_context(|| format!("{part:?} is not a CPU or a range"));
        let (first, last) = (number(first)?, number(last)?);
        if first > last {
            bail!("{part:?} is a backwards range");
        }
        if last >= CpuSet::count() {
            bail!("CPU {last} is beyond the {} this system can address", CpuSet::count());
        }
        for cpu in first..=last {
            set.set(cpu).with_context(|| format!("CPU {cpu}"))?;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_become_sets_and_bad_ones_are_refused() {
        let set = parse("0-2,5").unwrap();
        let cpus: Vec<usize> = (0..8).filter(|&c| set.is_set(c).unwrap()).collect();
        assert_eq!(cpus, [0, 1, 2, 5]);
        assert!(parse("3-1").is_err());
        assert!(parse("x").is_err());
        assert!(parse("0-99999").is_err());
    }
}
