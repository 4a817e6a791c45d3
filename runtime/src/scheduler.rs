//! `process.scheduler`: the scheduling policy and attributes of the container's process
//! (sched_setattr(2)), set for init and for exec'd processes as runc 1.2 does.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler};

/// `struct sched_attr`, first version (linux/sched/types.h, `SCHED_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// The sched_attr of `s`; what the kernel has no field for here (utilization clamps,
/// SCHED_ISO) is refused by name.
pub fn compile(s: &Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => bail!("process.scheduler policy SCHED_ISO does not exist in Linux"),
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0;
    for flag in s.flags().iter().flatten() {
        flags |= match flag {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            other => bail!("process.scheduler flag {other:?} is not supported by berth-runtime"),
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice {nice} is out of range (-20 to 19)");
    }
    let priority = s.priority().unwrap_or(0);
    let priority = u32::try_from(priority).map_err(|_| anyhow::anyhow!("process.scheduler.priority {priority} < 0"))?;
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

/// Sets the calling process's scheduling attributes.
pub fn apply(attr: &SchedAttr) -> Result<()> {
    // SAFETY: sched_setattr reads `attr.size` bytes from a valid, initialised SchedAttr.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) } < 0 {
        let e = std::io::Error::last_os_error();
        bail!("setting the scheduler (sched_setattr {attr:?}): {e}");
    }
    Ok(())
}
