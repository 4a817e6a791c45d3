//! Process capabilities: the bounding set is dropped while still root, the other four sets are
//! set after the uid change (which keeps permitted caps thanks to PR_SET_KEEPCAPS).

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;
use std::str::FromStr;

/// Converts an OCI capability set into the caps crate's.
fn convert(set: &Option<oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let parsed = Capability::from_str(&name).map_err(|_| anyhow::anyhow!("unknown capability {name}"))?;
        out.insert(parsed);
    }
    Ok(out)
}

/// Drops every capability not in `bounding` from the bounding set.
pub fn drop_bounding(spec: &LinuxCapabilities) -> Result<()> {
    let keep = convert(spec.bounding())?;
    let supported = caps::runtime::thread_all_supported();
    for cap in supported {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets exactly, except that `keep` (when
/// currently permitted) stays permitted and effective: init keeps CAP_SYS_ADMIN this way to
/// install seccomp without no_new_privs as its last step. An extra permitted or effective cap
/// before execve does not reach the program: execve computes the new sets from the inheritable,
/// ambient and bounding sets and the file, never from the old permitted set.
pub fn apply(spec: &LinuxCapabilities, keep: Option<Capability>) -> Result<()> {
    let mut permitted = convert(spec.permitted())?;
    let mut effective = convert(spec.effective())?;
    if let Some(cap) = keep {
        if caps::has_cap(None, CapSet::Permitted, cap).context("reading permitted capabilities")? {
            permitted.insert(cap);
            effective.insert(cap);
        }
    }
    let inheritable = convert(spec.inheritable())?;
    let ambient = convert(spec.ambient())?;
    // Inheritable first, while permitted is still wide: capset refuses inheritable caps outside
    // the old permitted set, and the spec allows inheritable to be wider than permitted.
    caps::set(None, CapSet::Inheritable, &inheritable).context("setting inheritable capabilities")?;
    // Effective must stay a subset of permitted at every step: lower effective first.
    caps::set(
        None,
        CapSet::Effective,
        &effective.intersection(&caps::read(None, CapSet::Permitted)?).copied().collect(),
    )
    .context("setting effective capabilities")?;
    caps::set(None, CapSet::Permitted, &permitted).context("setting permitted capabilities")?;
    caps::set(None, CapSet::Effective, &effective).context("setting effective capabilities (not all in permitted?)")?;
    caps::clear(None, CapSet::Ambient).context("clearing ambient capabilities")?;
    // As runc: an ambient cap the kernel refuses (it must be permitted and inheritable; `runc
    // spec`'s own default lists ambient caps without inheritable ones) is skipped with a warning.
    for cap in ambient {
        if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
            crate::logging::warn(&format!(
                "can't raise ambient capability {cap} (it must be permitted and inheritable): {e}"
            ));
        }
    }
    Ok(())
}
