//! Parsing of OCI mount options into mount(2) flags, propagation and filesystem data.

use anyhow::{bail, Result};
use nix::mount::MsFlags;

/// Every option keyword `parse` understands (anything else is filesystem data).
pub const SUPPORTED: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// A mount entry's options, split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself.
    pub flags: MsFlags,
    /// Flags that were explicitly cleared (`rw`, `suid`, `dev`, ...): kept so a bind remount
    /// does not re-add them from the source mount.
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting (`rshared`, `private`, ...), in order.
    pub propagation: Vec<MsFlags>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`.
    pub recursive: bool,
    /// Everything else, comma-joined, passed as the filesystem's data (`mode=755`, `size=...`).
    pub data: String,
}

impl MountOptions {
    /// Parses options; idmap and recursive-attribute options are refused by name.
    pub fn parse(options: &[String]) -> Result<MountOptions> {
        let mut out = MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            bind: false,
            recursive: false,
            data: String::new(),
        };
        let mut data = Vec::new();
        for opt in options {
            let (set, clear) = match opt.as_str() {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
                "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
                "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
                "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
                "bind" => {
                    out.bind = true;
                    continue;
                }
                "rbind" => {
                    out.bind = true;
                    out.recursive = true;
                    continue;
                }
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                    out.propagation.push(propagation_flags(opt).unwrap_or(MsFlags::empty()));
                    continue;
                }
                "idmap" | "ridmap" => bail!("mount option {opt:?} (idmapped mounts) is not supported yet"),
                o if o.starts_with('r')
                    && matches!(
                        &o[1..],
                        "ro" | "rw"
                            | "nosuid"
                            | "suid"
                            | "nodev"
                            | "dev"
                            | "noexec"
                            | "exec"
                            | "atime"
                            | "noatime"
                            | "relatime"
                            | "strictatime"
                            | "nodiratime"
                            | "diratime"
                            | "norelatime"
                            | "nostrictatime"
                    ) =>
                {
                    bail!("recursive mount option {opt:?} is not supported yet")
                }
                "tmpcopyup" => bail!("mount option \"tmpcopyup\" is not supported yet"),
                other => {
                    data.push(other.to_string());
                    continue;
                }
            };
            out.flags = (out.flags - clear) | set;
            out.cleared = (out.cleared - set) | clear;
        }
        out.data = data.join(",");
        Ok(out)
    }
}

/// mount(2) flags of a propagation keyword (`rshared` → `MS_SHARED|MS_REC`).
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        MountOptions::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = opts(&["ro", "rw", "rbind"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert!(o.bind && o.recursive);
    }

    #[test]
    fn every_supported_keyword_is_a_flag_not_data() {
        for opt in SUPPORTED {
            let o = opts(&[opt]);
            assert!(o.data.is_empty(), "{opt} was taken as filesystem data");
        }
    }

    #[test]
    fn unsupported_options_are_named() {
        let err = MountOptions::parse(&["idmap".to_string()]).unwrap_err();
        assert!(err.to_string().contains("idmap"));
    }
}
