//! `linux.personality`: the execution domain of the container's init (personality(2)), as runc
//! 1.2 sets it. `LINUX32` makes `uname -m` report a 32-bit machine (i686 on x86_64).

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

/// `PER_LINUX32` (linux/personality.h).
const PER_LINUX32: libc::c_ulong = 0x0008;

/// The personality(2) value of `p`; flags are refused by name (runc ignores them).
pub fn compile(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if let Some(flags) = p.flags().as_ref().filter(|f| !f.is_empty()) {
        bail!("linux.personality flags {flags:?} are not supported by berth-runtime (only the domain is)");
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

/// Sets the calling process's personality.
pub fn apply(persona: libc::c_ulong) -> Result<()> {
    // SAFETY: personality(2) takes a plain integer and touches no memory of ours.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(std::io::Error::last_os_error()).map_err(|e| anyhow::anyhow!("personality({persona:#x}): {e}"));
    }
    Ok(())
}
