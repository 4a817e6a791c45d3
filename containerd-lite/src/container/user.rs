//! `USER[:GROUP]` (from the image or `-u`) and `--group-add` resolved to numbers against the
//! image's own /etc/passwd and /etc/group, as docker does. The files are read from the
//! snapshot's layer directories, top first, each opened inside its layer with
//! openat2(RESOLVE_IN_ROOT): an image's symlinks never lead out of it.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::store::snapshot::Mount;

/// Longest /etc/passwd or /etc/group read.
const MAX_FILE: u64 = 4 << 20;

/// The numeric identity a container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// The image's files as the container will see them, without mounting it.
pub struct ImageFiles {
    /// Layer directories, the topmost first.
    layers: Vec<PathBuf>,
}

impl ImageFiles {
    /// A mounted root filesystem (a running container's).
    pub fn from_root(root: &std::path::Path) -> ImageFiles {
        ImageFiles { layers: vec![root.to_path_buf()] }
    }

    /// From a snapshot's mounts: an overlay's upper then lower dirs, or a bind's source.
    pub fn from_mounts(mounts: &[Mount]) -> ImageFiles {
        let mut layers = Vec::new();
        for m in mounts {
            if m.kind == "overlay" {
                let option = |name: &str| m.options.iter().find_map(|o| o.strip_prefix(name)).map(str::to_string);
                if let Some(upper) = option("upperdir=") {
                    layers.push(PathBuf::from(upper));
                }
                if let Some(lower) = option("lowerdir=") {
                    layers.extend(lower.split(':').map(PathBuf::from));
                }
            } else {
                layers.push(PathBuf::from(&m.source));
            }
        }
        ImageFiles { layers }
    }

    /// The content of the regular file `rel` (relative to the root), from the topmost layer that
    /// has it; `None` if no layer has it or the top one deleted it.
    pub fn read(&self, rel: &str) -> Result<Option<String>> {
        for layer in &self.layers {
            let root = fcntl::open(layer, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .with_context(|| format!("opening layer {}", layer.display()))?;
            let how =
                OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).resolve(
                    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV,
                );
            let opened = berth_runtime::safe_path::retry_on_rename_race(|| fcntl::openat2(&root, OsStr::new(rel), how));
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV) => continue,
                // An overlay whiteout is a 0:0 character device: the file was deleted.
                Err(Errno::ENXIO | Errno::ENODEV) => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("opening {rel} in {}", layer.display())),
            };
            let st = fstat(fd.as_fd()).with_context(|| format!("stat {rel} in {}", layer.display()))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Ok(None);
            }
            let mut text = String::new();
            std::fs::File::from(fd)
                .take(MAX_FILE)
                .read_to_string(&mut text)
                .with_context(|| format!("reading {rel} in {}", layer.display()))?;
            return Ok(Some(text));
        }
        Ok(None)
    }
}

pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    home: String,
}

pub(crate) struct GroupEntry {
    pub(crate) name: String,
    pub(crate) gid: u32,
    members: Vec<String>,
}

pub(crate) fn passwd_entries(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6).then(|| {
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].to_string(),
                })
            })?
        })
        .collect()
}

pub(crate) fn group_entries(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| {
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
                        .unwrap_or_default(),
                })
            })?
        })
        .collect()
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) and `group_add` against the
/// image's passwd and group files (either may be missing, as in a scratch image).
pub fn resolve(user: &str, group_add: &[String], passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser> {
    let users = passwd_entries(passwd.unwrap_or(""));
    let groups = group_entries(group.unwrap_or(""));
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let mut exec = match user_part.parse::<u32>() {
        Ok(uid) => match users.iter().find(|e| e.uid == uid) {
            Some(e) => ExecUser { uid, gid: e.gid, additional_gids: Vec::new(), home: e.home.clone() },
            None => ExecUser { uid, gid: 0, additional_gids: Vec::new(), home: "/".into() },
        },
        Err(_) => match users.iter().find(|e| e.name == user_part) {
            Some(e) => ExecUser { uid: e.uid, gid: e.gid, additional_gids: Vec::new(), home: e.home.clone() },
            None => bail!("unable to find user {user_part}: no matching entries in passwd file"),
        },
    };
    let name = users.iter().find(|e| e.uid == exec.uid).map(|e| e.name.clone());
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        exec.gid = lookup_group(g, &groups)?;
    }
    // The user's supplementary groups, as getgrouplist would give them.
    if let Some(name) = &name {
        for g in groups.iter().filter(|g| g.members.iter().any(|m| m == name)) {
            if g.gid != exec.gid && !exec.additional_gids.contains(&g.gid) {
                exec.additional_gids.push(g.gid);
            }
        }
    }
    for g in group_add {
        let gid = lookup_group(g, &groups)?;
        if !exec.additional_gids.contains(&gid) {
            exec.additional_gids.push(gid);
        }
    }
    Ok(exec)
}

fn lookup_group(group: &str, groups: &[GroupEntry]) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.gid)
        .with_context(|| format!("unable to find group {group}: no matching entries in group file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwheel:x:10:daemon,nobody\nnogroup:x:65534:\n";

    #[test]
    fn names_numbers_and_groups_resolve_like_docker() {
        let r = |u: &str, add: &[&str]| {
            let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
            resolve(u, &add, Some(PASSWD), Some(GROUP))
        };
        assert_eq!(
            r("", &[]).expect("root"),
            ExecUser { uid: 0, gid: 0, additional_gids: vec![], home: "/root".into() }
        );
        let nobody = r("nobody", &[]).expect("nobody");
        assert_eq!((nobody.uid, nobody.gid, nobody.additional_gids), (65534, 65534, vec![10]));
        assert_eq!(r("1:wheel", &[]).expect("uid:group").gid, 10);
        let unknown_uid = r("1234:5", &["daemon", "77"]).expect("numbers need no entry");
        assert_eq!((unknown_uid.uid, unknown_uid.gid, unknown_uid.additional_gids), (1234, 5, vec![1, 77]));
        assert!(r("ghost", &[]).expect_err("unknown").to_string().contains("unable to find user ghost"));
        assert!(r("root:ghosts", &[]).expect_err("unknown group").to_string().contains("unable to find group ghosts"));
        assert_eq!(resolve("7", &[], None, None).expect("scratch").uid, 7);
    }

    #[test]
    fn files_come_from_the_topmost_layer_and_stay_inside_it() {
        let top = tempfile::tempdir().expect("tempdir");
        let bottom = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(top.path().join("etc")).expect("mkdir");
        std::fs::create_dir_all(bottom.path().join("etc")).expect("mkdir");
        std::fs::write(bottom.path().join("etc/passwd"), "bottom").expect("write");
        std::fs::write(bottom.path().join("etc/group"), "g").expect("write");
        std::fs::write(top.path().join("etc/passwd"), "top").expect("write");
        // A symlink to the host's file resolves inside the layer, where there is none.
        std::os::unix::fs::symlink("/etc/hostname", top.path().join("etc/hostname")).expect("symlink");
        let files = ImageFiles { layers: vec![top.path().into(), bottom.path().into()] };
        assert_eq!(files.read("etc/passwd").expect("read").as_deref(), Some("top"));
        assert_eq!(files.read("etc/group").expect("read").as_deref(), Some("g"));
        assert_eq!(files.read("etc/hostname").expect("read"), None);
        assert_eq!(files.read("etc/shadow").expect("read"), None);
    }
}
