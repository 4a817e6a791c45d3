//! berth's default seccomp profile: the syscalls ordinary programs use pass, everything else fails
//! with EPERM, and namespaces, mounts, eBPF and other administration pass only for a container
//! whose bounding set holds the capability they need.
//!
//! The profile is data, `default.json`, in a conditional format of berth's own: groups of syscall
//! names with an action and optional argument rules, kept or dropped by `includes`/`excludes`
//! conditions on the container's capabilities and the machine's architecture. [`resolve`] turns
//! it into the plain OCI `linux.seccomp` of one container, which any OCI runtime (ours, runc,
//! crun) applies as it is.

use anyhow::{Context, Result};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSyscall, Spec};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The profile as shipped, in berth's conditional format.
pub const SOURCE: &str = include_str!("default.json");

/// The default profile for a container whose bounding set is `bounding` (capability names as in
/// config.json, e.g. `CAP_SYS_ADMIN`), on this machine's architecture, as an OCI `linux.seccomp`.
pub fn resolve(bounding: &[impl AsRef<str>]) -> Result<LinuxSeccomp> {
    let native = native_arch()
        .with_context(|| format!("berth has no default seccomp profile for {}", std::env::consts::ARCH))?;
    let caps: Vec<&str> = bounding.iter().map(AsRef::as_ref).collect();
    parse(SOURCE)?.resolve(&caps, native)
}

/// The default profile for the container that `spec` describes: [`resolve`]d for its process's
/// bounding set (none without `process.capabilities`).
pub fn resolve_for_spec(spec: &Spec) -> Result<LinuxSeccomp> {
    let bounding = spec.process().as_ref().and_then(|p| p.capabilities().as_ref()).and_then(|c| c.bounding().as_ref());
    let names = bounding
        .into_iter()
        .flatten()
        .map(|cap| match serde_json::to_value(cap) {
            // OCI's name (`CAP_SYS_ADMIN`) is the serde one.
            Ok(serde_json::Value::String(name)) => Ok(name),
            other => anyhow::bail!("capability {cap:?} has no OCI name: {other:?}"),
        })
        .collect::<Result<Vec<String>>>()?;
    resolve(&names)
}

/// The seccomp architecture of the running machine, for those berth builds on.
fn native_arch() -> Option<Arch> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "aarch64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

fn parse(source: &str) -> Result<Profile> {
    serde_json::from_str(source).context("parsing berth's default seccomp profile (default.json)")
}

/// `default.json`: OCI's top-level fields, except that `architectures` depends on the native
/// architecture and each syscall group carries conditions.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[serde(rename = "comment", default)]
    _comment: IgnoredAny,
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    architectures: Vec<ArchEntry>,
    syscalls: Vec<Group>,
}

/// The ABIs a filter admits on a machine whose native architecture is `native`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchEntry {
    native: Arch,
    filtered: Vec<Arch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Group {
    #[serde(rename = "comment", default)]
    _comment: IgnoredAny,
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
    /// Marks names berth's x86_64 syscall table does not know on purpose (the 32-bit ABI's, newer
    /// kernels'); only the unit tests read it, to hold every other name to the table.
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    unknown_to_table: bool,
}

/// A group's condition: holds when the container has any of `caps` and the machine is any of
/// `arches` (an empty list does not constrain).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<Arch>,
}

impl Condition {
    fn has_cap(&self, caps: &[&str]) -> bool {
        self.caps.iter().any(|c| caps.contains(&c.as_str()))
    }
}

impl Group {
    /// Included unless `includes` names caps or arches of which the container has none, and
    /// excluded by any cap or arch in `excludes`.
    fn applies(&self, caps: &[&str], native: Arch) -> bool {
        let (inc, exc) = (&self.includes, &self.excludes);
        (inc.caps.is_empty() || inc.has_cap(caps))
            && (inc.arches.is_empty() || inc.arches.contains(&native))
            && !exc.has_cap(caps)
            && !exc.arches.contains(&native)
    }

    fn to_oci(&self) -> LinuxSyscall {
        let mut syscall = LinuxSyscall::default();
        syscall
            .set_names(self.names.clone())
            .set_action(self.action)
            .set_errno_ret(self.errno_ret)
            .set_args(Some(self.args.clone()).filter(|a| !a.is_empty()));
        syscall
    }
}

impl Profile {
    fn resolve(&self, caps: &[&str], native: Arch) -> Result<LinuxSeccomp> {
        let architectures =
            self.architectures.iter().find(|a| a.native == native).map(|a| a.filtered.clone()).with_context(|| {
                format!("berth's default seccomp profile has no entry for the architecture {native}")
            })?;
        let syscalls = self.syscalls.iter().filter(|g| g.applies(caps, native)).map(Group::to_oci).collect();
        let mut seccomp = LinuxSeccomp::default();
        seccomp
            .set_default_action(self.default_action)
            .set_default_errno_ret(self.default_errno_ret)
            .set_architectures(Some(architectures))
            .set_syscalls(Some(syscalls));
        Ok(seccomp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::str::FromStr;

    /// What a container of `runc spec` holds (and the integration bundle's bounding set).
    const RUNC_SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

    fn shipped() -> Profile {
        parse(SOURCE).unwrap()
    }

    fn rules<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls().iter().flatten().filter(|s| s.names().iter().any(|n| n == name)).collect()
    }

    fn allows_unconditionally(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name).iter().any(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
    }

    #[test]
    fn the_shipped_profile_is_errno_eperm_by_default_for_the_three_x86_abis() {
        let p = resolve(RUNC_SPEC_CAPS).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn every_name_is_an_x86_64_syscall_unless_its_group_is_marked_unknown_to_table() {
        for group in shipped().syscalls {
            for name in &group.names {
                let known = super::super::syscall_number(name).is_some();
                // Both ways: once the table learns a marked name, it belongs in an ordinary group.
                assert_eq!(known, !group.unknown_to_table, "{name}: in the table: {known}");
            }
        }
    }

    #[test]
    fn names_are_sorted_within_a_group_and_listed_once_per_resolution() {
        for group in shipped().syscalls {
            assert!(group.names.windows(2).all(|w| w[0] < w[1]), "unsorted or repeated: {:?}", group.names);
        }
        let profile = shipped();
        let all_caps: Vec<&str> = profile
            .syscalls
            .iter()
            .flat_map(|g| g.includes.caps.iter().chain(&g.excludes.caps))
            .map(String::as_str)
            .collect();
        for caps in [&[][..], RUNC_SPEC_CAPS, &all_caps] {
            let mut seen = BTreeSet::new();
            for s in resolve(caps).unwrap().syscalls().iter().flatten() {
                for n in s.names() {
                    assert!(seen.insert(n.clone()), "{n} listed twice for caps {caps:?}");
                }
            }
        }
    }

    #[test]
    fn every_capability_in_a_condition_is_a_real_one() {
        for group in shipped().syscalls {
            for cap in group.includes.caps.iter().chain(&group.excludes.caps) {
                assert!(caps::Capability::from_str(cap).is_ok(), "{cap}");
            }
        }
    }

    #[test]
    fn namespaces_and_mounts_need_cap_sys_admin() {
        let admin_only = ["mount", "umount2", "unshare", "setns", "pivot_root", "bpf", "keyctl", "sethostname"];
        let plain = resolve(RUNC_SPEC_CAPS).unwrap();
        for name in admin_only {
            assert!(rules(&plain, name).is_empty(), "{name} without CAP_SYS_ADMIN");
        }
        let admin = resolve(&[RUNC_SPEC_CAPS, &["CAP_SYS_ADMIN"]].concat()).unwrap();
        for name in admin_only.iter().chain(&["clone", "clone3"]) {
            assert!(allows_unconditionally(&admin, name), "{name} with CAP_SYS_ADMIN");
        }
        // Only the capability that gates a group opens it.
        let bpf_only = resolve(&["CAP_BPF"]).unwrap();
        assert!(allows_unconditionally(&bpf_only, "bpf"));
        assert!(rules(&bpf_only, "mount").is_empty());
    }

    #[test]
    fn without_cap_sys_admin_clone_is_masked_and_clone3_reports_enosys() {
        let p = resolve(RUNC_SPEC_CAPS).unwrap();
        let clone = rules(&p, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0].args().as_deref().unwrap();
        assert_eq!(args.len(), 1);
        let namespace_flags = libc::CLONE_NEWNS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET;
        assert_eq!((args[0].index(), args[0].value(), args[0].value_two()), (0, namespace_flags as u64, Some(0)));
        let clone3 = rules(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!((clone3[0].action(), clone3[0].errno_ret()), (LinuxSeccompAction::ScmpActErrno, Some(38)));
    }

    #[test]
    fn personality_is_allowed_only_with_the_listed_personas() {
        let p = resolve(RUNC_SPEC_CAPS).unwrap();
        let personality = rules(&p, "personality");
        assert_eq!(personality.len(), 1);
        let values: Vec<u64> = personality[0].args().iter().flatten().map(|a| a.value()).collect();
        assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn a_spec_is_resolved_for_its_bounding_set_only() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                        "capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN"], "effective": ["CAP_KILL"]}}
        }))
        .unwrap();
        assert!(allows_unconditionally(&resolve_for_spec(&spec).unwrap(), "mount"));
        let no_caps: Spec = serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).unwrap();
        assert!(rules(&resolve_for_spec(&no_caps).unwrap(), "mount").is_empty());
    }

    #[test]
    fn arch_conditions_follow_the_native_architecture() {
        let p = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": [{"native": "SCMP_ARCH_AARCH64", "filtered": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}],
                "syscalls": [
                  {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["SCMP_ARCH_X86_64"]}},
                  {"names": ["sync"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["SCMP_ARCH_X86_64"]}}]}"#,
        )
        .unwrap();
        let arm = p.resolve(&[], Arch::ScmpArchAarch64).unwrap();
        let names: Vec<&str> = arm.syscalls().iter().flatten().flat_map(|s| s.names()).map(String::as_str).collect();
        assert_eq!(names, ["read", "sync"]);
        assert_eq!(arm.architectures().as_deref(), Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..]));
        let err = p.resolve(&[], Arch::ScmpArchX86_64).unwrap_err();
        assert!(err.to_string().contains("no entry for the architecture"), "{err}");
    }

    #[test]
    fn a_misspelt_condition_is_refused_rather_than_ignored() {
        let err = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": [],
                "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "include": {"caps": ["CAP_SYS_ADMIN"]}}]}"#,
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("unknown field `include`"), "{err:#}");
    }

    #[test]
    fn the_resolved_profile_compiles_with_our_seccomp_compiler() {
        // clone3's ERRNO(ENOSYS), then the main allow filter, whose sections for the three ABIs
        // take two programs.
        let plain = super::super::compile(&resolve(RUNC_SPEC_CAPS).unwrap()).unwrap();
        assert_eq!(plain.program_lengths().len(), 3, "{:?}", plain.program_lengths());
        let admin = super::super::compile(&resolve(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]).unwrap()).unwrap();
        assert_eq!(admin.program_lengths().len(), 2, "{:?}", admin.program_lengths());
    }
}
