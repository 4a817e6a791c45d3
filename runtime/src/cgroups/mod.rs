//! Cgroup placement: create the container's cgroup, put init in it, find its processes, and
//! remove it. Two layouts behind one type: unified v2 (one tree) and v1 (one tree per mounted
//! controller; hybrid hosts keep their controllers there). Detected from /proc/self/mountinfo.
//!
//! `resources` applies `linux.resources`; what it cannot apply is refused by name, never
//! ignored.

pub mod devices;
pub mod oom;
pub mod resources;
pub mod stats;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Which cgroup layout a container was placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup v1 controllers (also hybrid hosts).
    V1,
    /// The unified cgroup v2 hierarchy.
    V2,
}

/// The cgroup directories of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// Layout.
    pub mode: Mode,
    /// The container's cgroup dir in each hierarchy (one for v2).
    pub dirs: Vec<PathBuf>,
    /// Directories this runtime created, parents first, to remove in reverse on delete.
    pub created: Vec<PathBuf>,
}

/// One `exec --cgroup [CONTROLLER:]PATH`: a sub-cgroup of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCgroup {
    /// The v1 controller whose hierarchy it is for (None: every hierarchy).
    pub controller: Option<String>,
    /// Relative to the container's cgroup; never leaves it.
    pub path: PathBuf,
}

impl ExecCgroup {
    /// Parses `PATH` or `CONTROLLER:PATH`; a path that could leave the container's cgroup is refused.
    pub fn parse(arg: &str) -> Result<ExecCgroup> {
        let (controller, path) = match arg.split_once(':') {
            Some((c, p)) if !c.is_empty() => (Some(c.to_string()), p),
            _ => (None, arg),
        };
        let path = PathBuf::from(path.trim_start_matches('/'));
        if path.as_os_str().is_empty() || path.components().any(|c| !matches!(c, Component::Normal(_))) {
            bail!("invalid --cgroup {arg:?}: want [CONTROLLER:]PATH, a sub-cgroup of the container's (no \"..\")");
        }
        Ok(ExecCgroup { controller, path })
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Hierarchy {
    mountpoint: PathBuf,
    /// Root of the mount inside the hierarchy (not `/` inside a cgroup namespace).
    root: PathBuf,
    /// v1 controllers (and `name=` entries) of this hierarchy; empty for v2.
    controllers: Vec<String>,
    v2: bool,
}

/// A /proc/self/mountinfo field with its octal escapes (`\040` for a space) decoded.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn hierarchies() -> Result<Vec<Hierarchy>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(one_mount_per_hierarchy(cgroup_mounts(&text)))
}

/// Every cgroup mount in `mountinfo`, in its order.
fn cgroup_mounts(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (fstype, super_opts) = (post[0], post[2]);
        let v2 = fstype == "cgroup2";
        if fstype != "cgroup" && !v2 {
            continue;
        }
        let mut controllers: Vec<String> = if v2 {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec")
                        && !o.starts_with("release_agent=")
                        && *o != "clone_children"
                        && *o != "xattr"
                })
                .map(str::to_string)
                .collect()
        };
        controllers.sort();
        out.push(Hierarchy {
            mountpoint: PathBuf::from(unescape_mountinfo(pre[4])),
            root: PathBuf::from(unescape_mountinfo(pre[3])),
            controllers,
            v2,
        });
    }
    out
}

/// One mount per hierarchy: a hierarchy may be mounted many times (bind mounts of it or of one
/// of its cgroups elsewhere, read-only copies), and the container's cgroup goes in one place.
/// As runc: the mount under /sys/fs/cgroup showing the hierarchy's root, else the first one
/// showing its root, else the first one. Keeps the order in which hierarchies first appear.
fn one_mount_per_hierarchy(mounts: Vec<Hierarchy>) -> Vec<Hierarchy> {
    let rank = |h: &Hierarchy| (!h.mountpoint.starts_with("/sys/fs/cgroup"), h.root != Path::new("/"));
    let mut chosen: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        match chosen.iter_mut().find(|c| c.v2 == m.v2 && c.controllers == m.controllers) {
            Some(c) if rank(&m) < rank(c) => *c = m,
            Some(_) => {}
            None => chosen.push(m),
        }
    }
    chosen
}

/// The layout this host uses for containers: v2 when `/sys/fs/cgroup` itself is cgroup2, v1 when
/// v1 controllers are mounted (a hybrid host's side cgroup2 tree does not make it a v2 host).
pub fn host_mode() -> Result<Mode> {
    let hs = hierarchies()?;
    if hs.iter().any(|h| h.v2 && h.mountpoint == Path::new("/sys/fs/cgroup")) {
        return Ok(Mode::V2);
    }
    if hs.iter().any(|h| !h.v2) {
        return Ok(Mode::V1);
    }
    if hs.iter().any(|h| h.v2) {
        return Ok(Mode::V2);
    }
    bail!("no cgroup filesystem is mounted")
}

/// This process's cgroup in each hierarchy, from /proc/self/cgroup: (controllers, path).
fn own_cgroups() -> Result<Vec<(String, PathBuf)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrls = parts.next()?.to_string();
            let path = PathBuf::from(parts.next()?);
            Some((ctrls, path))
        })
        .collect())
}

/// Checks a `cgroupsPath` and turns it into (absolute?, clean relative path).
fn clean_cgroups_path(path: &Path) -> Result<(bool, PathBuf)> {
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("cgroupsPath {} must not contain '..'", path.display())
            }
        }
    }
    if clean.as_os_str().is_empty() {
        bail!("cgroupsPath {:?} names no cgroup", path);
    }
    Ok((path.is_absolute(), clean))
}

impl CgroupPaths {
    /// Works out (without creating anything) where a container goes. `cgroups_path` absolute
    /// is relative to each hierarchy's root, relative is relative to this runtime's own cgroup;
    /// absent means `<id>` relative to it (as runc does).
    pub fn plan(cgroups_path: Option<&Path>, id: &str) -> Result<CgroupPaths> {
        if cgroups_path.is_some_and(|p| p.to_string_lossy().contains(':')) {
            bail!("cgroupsPath {:?} looks like a systemd slice:prefix:name path; the systemd cgroup driver is not supported", cgroups_path.unwrap_or(Path::new("")));
        }
        let (absolute, rel) = clean_cgroups_path(cgroups_path.unwrap_or(Path::new(id)))?;
        let mode = host_mode()?;
        let own = own_cgroups()?;
        let mut dirs = Vec::new();
        for h in hierarchies()? {
            if (mode == Mode::V2) != h.v2 {
                continue;
            }
            let base = if absolute {
                PathBuf::new()
            } else {
                let mine = own.iter().find(|(ctrls, _)| {
                    if h.v2 {
                        ctrls.is_empty()
                    } else {
                        let set: Vec<&str> = ctrls.split(',').collect();
                        h.controllers.iter().all(|c| set.contains(&c.as_str()))
                    }
                });
                match mine {
                    Some((_, p)) => p.strip_prefix(&h.root).map(Path::to_path_buf).unwrap_or_default(),
                    None => PathBuf::new(),
                }
            };
            let base = base.strip_prefix("/").map(Path::to_path_buf).unwrap_or(base);
            dirs.push(h.mountpoint.join(base).join(&rel));
        }
        if dirs.is_empty() {
            bail!("no usable cgroup hierarchy found");
        }
        Ok(CgroupPaths { mode, dirs, created: Vec::new() })
    }

    /// Creates the directories (remembering which ones were new).
    pub fn create(&mut self) -> Result<()> {
        for dir in self.dirs.clone() {
            // Joining another container's (or anyone's) populated cgroup would make this
            // container's kill and delete hit their processes.
            if std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()) {
                bail!("cgroup {} already has processes; refusing to share it", dir.display());
            }
            let mut missing = Vec::new();
            let mut cur = dir.as_path();
            while !cur.exists() {
                missing.push(cur.to_path_buf());
                cur = match cur.parent() {
                    Some(p) => p,
                    None => break,
                };
            }
            for d in missing.into_iter().rev() {
                if self.mode == Mode::V2 {
                    if let Some(parent) = d.parent() {
                        enable_controllers(parent);
                    }
                }
                std::fs::create_dir(&d).with_context(|| format!("creating cgroup {}", d.display()))?;
                self.created.push(d.clone());
                if self.mode == Mode::V1 && d.file_name().is_some() {
                    inherit_cpuset(&d)?;
                }
            }
        }
        Ok(())
    }

    /// Moves `pid` into the container's cgroup in every hierarchy.
    pub fn join(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .with_context(|| format!("adding pid {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    /// Moves an exec'd process into the container's cgroup. Where v2 refuses that (the container
    /// enabled controllers for sub-cgroups of its own, so its top cgroup may hold no process),
    /// into init's cgroup instead, as runc does; never anywhere outside the container's cgroup.
    pub fn join_exec(&self, pid: i32, init_pid: i32) -> Result<()> {
        let err = match self.join(pid) {
            Ok(()) => return Ok(()),
            Err(e) if self.mode == Mode::V2 => e,
            Err(e) => return Err(e),
        };
        let text = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).unwrap_or_default();
        let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else { return Err(err) };
        let Some(h) = hierarchies()?.into_iter().find(|h| h.v2) else { return Err(err) };
        let Ok(inside) = Path::new(rel).strip_prefix(&h.root) else { return Err(err) };
        let dir = h.mountpoint.join(inside);
        let ours = self
            .dirs
            .first()
            .is_some_and(|top| dir.starts_with(top) && !dir.components().any(|c| c == Component::ParentDir));
        if !ours || dir == self.dirs[0] {
            return Err(err);
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).with_context(|| format!("adding pid {pid} to {}", procs.display()))
    }

    /// `exec --cgroup`: moves an exec'd process into the existing sub-cgroups `subs` names, each
    /// in the hierarchy of its controller or, without one, in every hierarchy; a hierarchy none
    /// names gets the container's cgroup (runc 1.2's semantics).
    pub fn join_exec_sub(&self, pid: i32, subs: &[ExecCgroup]) -> Result<()> {
        if self.mode == Mode::V2 && subs.iter().any(|s| s.controller.is_some()) {
            bail!("exec --cgroup CONTROLLER:PATH needs cgroup v1; give PATH alone on cgroup v2");
        }
        let hierarchies = hierarchies()?;
        for dir in &self.dirs {
            let controllers = hierarchies
                .iter()
                .filter(|h| dir.starts_with(&h.mountpoint))
                .max_by_key(|h| h.mountpoint.components().count())
                .map_or(&[][..], |h| &h.controllers[..]);
            let sub = subs
                .iter()
                .find(|s| s.controller.as_ref().is_some_and(|c| controllers.contains(c)))
                .or_else(|| subs.iter().find(|s| s.controller.is_none()));
            let target = sub.map_or_else(|| dir.clone(), |s| dir.join(&s.path));
            if !target.is_dir() {
                bail!("cgroup {} does not exist (exec --cgroup needs an existing sub-cgroup)", target.display());
            }
            let procs = target.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .with_context(|| format!("adding pid {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    /// Pids in the container's cgroup, including the sub-cgroups its processes made (in any v1
    /// hierarchy: a process may have moved to a sub-cgroup of one controller only).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for d in self.dirs.iter().flat_map(|dir| std::iter::once(dir.clone()).chain(subtree_post_order(dir))) {
            let procs = d.join("cgroup.procs");
            match std::fs::read_to_string(&procs) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", procs.display())),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// v2 `cgroup.kill`: SIGKILLs every process in the cgroup and its sub-cgroups atomically (no
    /// fork can escape). Returns false where the kernel has no `cgroup.kill` (v1, or before 5.14).
    pub fn kill_all(&self) -> Result<bool> {
        if self.mode != Mode::V2 {
            return Ok(false);
        }
        let Some(file) = self.dirs.first().map(|d| d.join("cgroup.kill")).filter(|f| f.exists()) else {
            return Ok(false);
        };
        std::fs::write(&file, "1").with_context(|| format!("writing 1 to {}", file.display()))?;
        Ok(true)
    }

    /// True when the cgroup is frozen (paused).
    pub fn is_frozen(&self) -> bool {
        self.dirs.iter().any(|d| match self.mode {
            Mode::V1 => std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN"),
            Mode::V2 => std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"),
        })
    }

    /// Freezes (`true`) or thaws the container's processes and waits until the kernel reports
    /// the new state (v1 `freezer.state`, v2 `cgroup.freeze` / `cgroup.events`).
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let (file, value, done): (&str, &str, fn(&Path) -> bool) = match (self.mode, frozen) {
            (Mode::V1, true) => ("freezer.state", "FROZEN", |d| read_trim(&d.join("freezer.state")) == "FROZEN"),
            (Mode::V1, false) => ("freezer.state", "THAWED", |d| read_trim(&d.join("freezer.state")) == "THAWED"),
            (Mode::V2, true) => ("cgroup.freeze", "1", |d| events_frozen(d) == Some(true)),
            (Mode::V2, false) => ("cgroup.freeze", "0", |d| events_frozen(d) == Some(false)),
        };
        let dir = self.dirs.iter().find(|d| d.join(file).exists()).with_context(|| {
            format!("cannot {}: no freezer for this container's cgroup", if frozen { "pause" } else { "resume" })
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::fs::write(dir.join(file), value)
                .with_context(|| format!("writing {value} to {}", dir.join(file).display()))?;
            if done(dir) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("cgroup {} did not reach {value} within 10s", dir.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Applies device rules, with the devices every container needs and those `linux.devices`
    /// lists (`listed`, rwm each, as runc does) appended: v1 through `devices.allow/deny`, v2
    /// through a BPF device filter attached to the cgroup.
    pub fn apply_devices(&self, rules: &[LinuxDeviceCgroup], listed: &[LinuxDevice]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let all: Vec<LinuxDeviceCgroup> =
            rules.iter().cloned().chain(devices::default_allowed()).chain(devices::allow_listed(listed)).collect();
        match self.mode {
            Mode::V2 => {
                let dir = self.dirs.first().context("container has no cgroup v2 directory")?;
                devices::attach_v2(dir, &all)
            }
            Mode::V1 => {
                let Some(dir) = self.dirs.iter().find(|d| d.join("devices.allow").exists()) else {
                    bail!("linux.resources.devices is set but the v1 devices controller is not mounted");
                };
                for rule in &all {
                    let file = if rule.allow() { "devices.allow" } else { "devices.deny" };
                    let line = devices::v1_line(rule);
                    std::fs::write(dir.join(file), &line)
                        .with_context(|| format!("writing {line:?} to {}", dir.join(file).display()))?;
                }
                Ok(())
            }
        }
    }

    /// Removes the container's cgroups (waiting briefly for exiting processes to leave) and the
    /// parents this runtime created.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        for dir in self.created.iter().rev() {
            if !self.dirs.contains(dir) {
                // A parent this runtime created: removed once no other container uses it.
                match std::fs::remove_dir(dir) {
                    Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBUSY | libc::ENOTEMPTY)) => {
                        return Err(e).with_context(|| format!("removing cgroup {}", dir.display()));
                    }
                    _ => continue,
                }
            }
            match std::fs::remove_dir(dir) {
                Ok(()) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // Sub-cgroups the container made inside its own (rmdir fails with EBUSY while
                // there are any) go first, deepest first; or processes are still leaving.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    for sub in subtree_post_order(dir) {
                        remove_dir_waiting(&sub, deadline)?;
                    }
                    remove_dir_waiting(dir, deadline)?;
                }
                Err(e) => return Err(e).with_context(|| format!("removing cgroup {}", dir.display())),
            }
        }
        Ok(())
    }
}

/// Removes cgroup `dir`, retrying while it is busy until `deadline`: exiting processes leave
/// their cgroup shortly after they are reaped.
fn remove_dir_waiting(dir: &Path, deadline: Instant) -> Result<()> {
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).with_context(|| format!("removing cgroup {}", dir.display())),
        }
    }
}

/// Every cgroup below `dir`, children before their parents (the order rmdir needs).
fn subtree_post_order(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(subtree_post_order(&entry.path()));
            out.push(entry.path());
        }
    }
    out
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn events_frozen(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("frozen ")).map(|v| v.trim() == "1")
}

/// v2: makes every controller the parent has available to its children, so the child gets its
/// interface files. Best effort per controller: one the parent cannot delegate (a threaded
/// subtree, processes in a non-root cgroup) is reported later, by the resource that needs it.
fn enable_controllers(parent: &Path) {
    let Ok(available) = std::fs::read_to_string(parent.join("cgroup.controllers")) else { return };
    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    for c in available.split_whitespace() {
        if !enabled.split_whitespace().any(|e| e == c) {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

/// v1 cpuset refuses tasks until cpus and mems are set: copy them from the parent.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let cpus = dir.join("cpuset.cpus");
    if !cpus.exists() {
        return Ok(());
    }
    let parent = dir.parent().context("cpuset cgroup without parent")?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let value = std::fs::read_to_string(parent.join(file))
                .with_context(|| format!("reading {}", parent.join(file).display()))?;
            std::fs::write(dir.join(file), value.trim())
                .with_context(|| format!("writing {}", dir.join(file).display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn exec_cgroup_paths_stay_inside_the_container_cgroup() {
        let parsed = ExecCgroup::parse("memory:a/b").unwrap();
        assert_eq!((parsed.controller.as_deref(), parsed.path.as_path()), (Some("memory"), Path::new("a/b")));
        assert_eq!(ExecCgroup::parse("/sub").unwrap(), ExecCgroup { controller: None, path: "sub".into() });
        for bad in ["", "../x", "a/../../x", "memory:", "memory:.."] {
            assert!(ExecCgroup::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
    use super::*;

    #[test]
    fn each_hierarchy_is_used_through_one_mount_preferring_sys_fs_cgroup_and_its_root() {
        let mountinfo = "\
40 30 0:35 /mnt /tmp/early-memory ro,relatime shared:9 - cgroup cgroup rw,memory
41 30 0:36 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
42 30 0:35 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
43 30 0:37 / /sys/fs/cgroup/unified rw,nosuid shared:12 - cgroup2 cgroup2 rw,nsdelegate
50 60 0:36 / /tmp/x/cpu ro,relatime shared:13 - cgroup cgroup rw,cpuacct,cpu
51 60 0:37 / /tmp/x/unified ro,relatime shared:14 - cgroup2 cgroup2 rw,nsdelegate
";
        let chosen = one_mount_per_hierarchy(cgroup_mounts(mountinfo));
        let points: Vec<&Path> = chosen.iter().map(|h| h.mountpoint.as_path()).collect();
        assert_eq!(
            points,
            [
                Path::new("/sys/fs/cgroup/memory"),
                Path::new("/sys/fs/cgroup/cpu,cpuacct"),
                Path::new("/sys/fs/cgroup/unified")
            ]
        );
        // Outside /sys/fs/cgroup (a container's or a test's own mounts): the one with the root.
        let elsewhere = "\
40 30 0:35 /sub /a ro - cgroup cgroup rw,memory
41 30 0:35 / /b rw - cgroup cgroup rw,memory
";
        let chosen = one_mount_per_hierarchy(cgroup_mounts(elsewhere));
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].mountpoint, Path::new("/b"));
    }

    #[test]
    fn dotdot_in_cgroups_path_is_refused() {
        assert!(clean_cgroups_path(Path::new("/a/../../etc")).is_err());
        assert_eq!(clean_cgroups_path(Path::new("/a/b")).unwrap(), (true, PathBuf::from("a/b")));
        assert_eq!(clean_cgroups_path(Path::new("a/./b")).unwrap(), (false, PathBuf::from("a/b")));
    }
}
