//! The scratch directory an engine test keeps all its state in, and a cgroup parent of its own.
//! Dropped last, it sweeps what the engines and the runtime should have removed but did not:
//! berth-runtime containers whose bundle is inside it, processes in its cgroups or naming its
//! directory (shims, conmon), mounts under it (dockerd bind-mounts its data-root onto itself), its
//! cgroups, and finally the directory itself. What it had to sweep is reported on stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A directory under /tmp plus a cgroup parent name, both unique to one test.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    cgroup_parent: String,
    berth_roots: Vec<PathBuf>,
}

impl Scratch {
    /// A new scratch directory `/tmp/berth-it-<label>-XXXXXX` and cgroup parent
    /// `/berth-it-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Scratch {
        crate::require_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-it-{label}-"))
            .tempdir()
            .expect("creating the scratch directory");
        let cgroup_parent = format!("/berth-it-{label}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        Scratch { dir: Some(dir), cgroup_parent, berth_roots: Vec::new() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(tempfile::TempDir::path).expect("scratch directory already removed")
    }

    /// `<dir>/<name>`, created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        p
    }

    /// The cgroup parent for this test's containers, absolute (`/berth-it-...`), so that what
    /// they leave behind is found and removed in every hierarchy.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Makes the sweep `delete --force` the berth-runtime containers in `root` whose bundle is in
    /// this directory: an engine gives its runtime a root of its own (or none: berth's default).
    pub fn sweep_berth_root(&mut self, root: &Path) {
        self.berth_roots.push(root.to_path_buf());
    }

    fn sweep(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let path = dir.path().to_path_buf();
        let mut swept = Vec::new();
        for root in &self.berth_roots {
            swept.extend(super::berth::force_delete_under(root, &path));
        }
        swept.extend(kill_cgroup_members(&self.cgroup_parent));
        swept.extend(kill_processes_naming(&path));
        swept.extend(unmount_under(&path));
        swept.extend(remove_cgroups(&self.cgroup_parent));
        for s in &swept {
            eprintln!("teardown of {}: {s}", path.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&path) {
            eprintln!("teardown: cannot remove {}: {e}", path.display());
        }
        // TempDir's own removal now finds nothing to do.
        drop(dir);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// The cgroup hierarchies: every directory directly under /sys/fs/cgroup (one per v1 controller
/// mount, plus `unified`), or /sys/fs/cgroup itself on a pure v2 host.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect()
}

/// `dir` and every cgroup below it, deepest first.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(cgroup_tree(&e.path()));
        }
    }
    out.push(dir.to_path_buf());
    out
}

fn cgroup_procs(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILLs every process still in the cgroup trees named `parent` after a grace period in which
/// they may exit on their own (conmon finishing its cleanup), thawing frozen ones so the signal
/// lands, and waits for them to go.
fn kill_cgroup_members(parent: &str) -> Vec<String> {
    let rel = parent.trim_start_matches('/');
    let trees: Vec<PathBuf> = hierarchies().iter().map(|h| h.join(rel)).filter(|p| p.is_dir()).collect();
    let members = || -> Vec<i32> {
        let mut pids: Vec<i32> = trees.iter().flat_map(|t| cgroup_tree(t)).flat_map(|c| cgroup_procs(&c)).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    if wait_until(Duration::from_secs(5), || members().is_empty()) {
        return Vec::new();
    }
    let pids = members();
    for &pid in &pids {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for cgroup in trees.iter().flat_map(|t| cgroup_tree(t)) {
        let _ = std::fs::write(cgroup.join("freezer.state"), "THAWED");
        let _ = std::fs::write(cgroup.join("cgroup.freeze"), "0");
    }
    wait_until(Duration::from_secs(10), || members().is_empty());
    vec![format!("killed processes left in cgroup {parent}: {pids:?}")]
}

/// SIGKILLs every process whose command line names a path inside `dir` (shims, conmon, a daemon
/// that outlived its stop) after a grace period in which they may exit on their own (a shim
/// shutting down after its task was deleted), and waits for them to go; reports what it killed.
pub fn kill_processes_naming(dir: &Path) -> Vec<String> {
    // Everything they name is inside the directory; the slash keeps a longer sibling from matching.
    let mut needle = dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let me = std::process::id();
    let find = || -> Vec<(u32, String)> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
            if cmdline.windows(needle.len()).any(|w| w == needle.as_slice()) {
                let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                found.push((pid, shown.trim_end().to_string()));
            }
        }
        found
    };
    if wait_until(Duration::from_secs(5), || find().is_empty()) {
        return Vec::new();
    }
    let procs = find();
    for (pid, _) in &procs {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    if !procs.is_empty() {
        wait_until(Duration::from_secs(10), || find().is_empty());
    }
    procs.into_iter().map(|(pid, cmd)| format!("killed stray process {pid}: {cmd}")).collect()
}

/// Unmounts everything mounted at or under `dir`, deepest first (lazily if busy).
fn unmount_under(dir: &Path) -> Vec<String> {
    let mut done = Vec::new();
    // Mounts can be stacked on one point: go round until none is left.
    for _ in 0..20 {
        let mut points = crate::host_mounts_containing(&dir.to_string_lossy());
        points.retain(|m| Path::new(m).starts_with(dir));
        if points.is_empty() {
            break;
        }
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let Ok(c) = std::ffi::CString::new(m.as_str()) else { continue };
            // SAFETY: c is a valid NUL-terminated path that outlives the calls.
            let rc = unsafe { libc::umount2(c.as_ptr(), 0) };
            // SAFETY: as above.
            if rc != 0 && unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!("teardown: cannot unmount {m}: {}", std::io::Error::last_os_error());
            }
            done.push(format!("unmounted {m}"));
        }
    }
    done
}

/// Removes the cgroup trees named `parent` in every hierarchy, deepest first. Reports the cgroups
/// found below the parent (which is ours to remove), once per path whatever the hierarchies.
fn remove_cgroups(parent: &str) -> Vec<String> {
    let rel = parent.trim_start_matches('/');
    let mut left = std::collections::BTreeSet::new();
    for hierarchy in hierarchies() {
        let tree = hierarchy.join(rel);
        if !tree.is_dir() {
            continue;
        }
        for cgroup in cgroup_tree(&tree) {
            if let Err(e) = std::fs::remove_dir(&cgroup) {
                eprintln!("teardown: cannot remove cgroup {}: {e}", cgroup.display());
            }
            if let Ok(below) = cgroup.strip_prefix(&hierarchy) {
                if cgroup != tree {
                    left.insert(format!("/{}", below.display()));
                }
            }
        }
    }
    left.into_iter().map(|c| format!("removed cgroup {c} (in every hierarchy that had it)")).collect()
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
