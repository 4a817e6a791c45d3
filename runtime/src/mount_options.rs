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
    "nosymfollow",
    "symfollow",
    // tmpfs only: the destination's existing content is copied into the new tmpfs.
    "tmpcopyup",
    // Recursive attributes, set with mount_setattr(AT_RECURSIVE) once the mount is made.
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnoatime",
    "ratime",
    "rrelatime",
    "rnorelatime",
    "rstrictatime",
    "rnostrictatime",
    "rnodiratime",
    "rdiratime",
    "rnosymfollow",
    "rsymfollow",
];

/// `MOUNT_ATTR_*` of mount_setattr(2) (linux/mount.h).
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x1;
    /// No setuid.
    pub const NOSUID: u64 = 0x2;
    /// No device access.
    pub const NODEV: u64 = 0x4;
    /// No exec.
    pub const NOEXEC: u64 = 0x8;
    /// The access-time mode field (an enum, not bits).
    pub const ATIME_MASK: u64 = 0x70;
    /// relatime (the zero value of the field).
    pub const RELATIME: u64 = 0x0;
    /// noatime.
    pub const NOATIME: u64 = 0x10;
    /// strictatime.
    pub const STRICTATIME: u64 = 0x20;
    /// nodiratime.
    pub const NODIRATIME: u64 = 0x80;
    /// Do not follow symlinks (Linux 5.14).
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Attributes to set and clear on a mount and every mount below it (mount_setattr(2) with
/// `AT_RECURSIVE`), from the `r*` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    /// `attr_set`.
    pub set: u64,
    /// `attr_clr`.
    pub clear: u64,
}

impl RecursiveAttrs {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }

    /// Applies one `r*` option; false when `opt` is not one.
    fn add(&mut self, opt: &str) -> bool {
        let (set, clear) = match opt {
            "rro" => (attr::RDONLY, 0),
            "rrw" => (0, attr::RDONLY),
            "rnosuid" => (attr::NOSUID, 0),
            "rsuid" => (0, attr::NOSUID),
            "rnodev" => (attr::NODEV, 0),
            "rdev" => (0, attr::NODEV),
            "rnoexec" => (attr::NOEXEC, 0),
            "rexec" => (0, attr::NOEXEC),
            "rnodiratime" => (attr::NODIRATIME, 0),
            "rdiratime" => (0, attr::NODIRATIME),
            "rnosymfollow" => (attr::NOSYMFOLLOW, 0),
            "rsymfollow" => (0, attr::NOSYMFOLLOW),
            // The access-time mode is one field: the kernel wants it cleared whole and set anew.
            // Turning noatime or strictatime off gives the default, relatime (as mount(8) does).
            "rnoatime" => return self.set_atime(attr::NOATIME),
            "rstrictatime" | "rnorelatime" => return self.set_atime(attr::STRICTATIME),
            "rrelatime" | "ratime" | "rnostrictatime" => return self.set_atime(attr::RELATIME),
            _ => return false,
        };
        self.set = (self.set & !clear) | set;
        self.clear = (self.clear & !set) | clear;
        true
    }

    fn set_atime(&mut self, mode: u64) -> bool {
        self.set = (self.set & !attr::ATIME_MASK) | mode;
        self.clear |= attr::ATIME_MASK;
        true
    }
}

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
    /// The `r*` attribute options, applied to the whole mount tree after mounting.
    pub recursive_attrs: RecursiveAttrs,
    /// `tmpcopyup`: copy what the destination holds into the new tmpfs.
    pub tmpcopyup: bool,
    /// Everything else, comma-joined, passed as the filesystem's data (`mode=755`, `size=...`).
    pub data: String,
}

impl MountOptions {
    /// Parses options; idmap and other unsupported options are refused by name.
    pub fn parse(options: &[String]) -> Result<MountOptions> {
        let mut out = MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            bind: false,
            recursive: false,
            recursive_attrs: RecursiveAttrs::default(),
            tmpcopyup: false,
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
                "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
                "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
                o if out.recursive_attrs.add(o) => continue,
                "tmpcopyup" => {
                    out.tmpcopyup = true;
                    continue;
                }
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
    fn recursive_options_become_mount_setattr_attributes() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnosymfollow", "rnoatime"]);
        assert_eq!(o.recursive_attrs.set, attr::RDONLY | attr::NOSUID | attr::NOSYMFOLLOW | attr::NOATIME);
        assert_eq!(o.recursive_attrs.clear, attr::ATIME_MASK);
        assert!(o.flags.is_empty() && o.data.is_empty());
        // Later ones win; the atime mode is replaced, not combined.
        let o = opts(&["rro", "rrw", "rnoatime", "rstrictatime", "rsymfollow"]);
        assert_eq!(o.recursive_attrs.set, attr::STRICTATIME);
        assert_eq!(o.recursive_attrs.clear, attr::RDONLY | attr::ATIME_MASK | attr::NOSYMFOLLOW);
        assert!(opts(&["nosymfollow"]).flags.contains(MS_NOSYMFOLLOW));
    }

    #[test]
    fn unsupported_options_are_named() {
        let err = MountOptions::parse(&["idmap".to_string()]).unwrap_err();
        assert!(err.to_string().contains("idmap"));
    }
}
