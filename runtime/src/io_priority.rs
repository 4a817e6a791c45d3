//! `process.ioPriority`: the I/O scheduling class and level of the container's process
//! (ioprio_set(2)), set for init and for exec'd processes as runc 1.2 does.

use anyhow::{bail, Result};
use oci_spec::runtime::{IOPriorityClass, LinuxIOPriority};

/// `IOPRIO_WHO_PROCESS` (linux/ioprio.h).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// `IOPRIO_CLASS_SHIFT`.
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// The ioprio_set(2) value of `p`; the level must be 0 (highest) to 7.
pub fn compile(p: &LinuxIOPriority) -> Result<libc::c_int> {
    let class: libc::c_int = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        bail!("process.ioPriority.priority {level} is out of range (0-7)");
    }
    Ok(class << IOPRIO_CLASS_SHIFT | level as libc::c_int)
}

/// Sets the calling process's I/O priority.
pub fn apply(ioprio: libc::c_int) -> Result<()> {
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) } < 0 {
        let e = std::io::Error::last_os_error();
        bail!("setting the I/O priority (ioprio_set {ioprio:#x}): {e}");
    }
    Ok(())
}
