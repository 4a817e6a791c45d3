//! What proves that an engine's container really runs under berth-runtime, and that berth let go
//! of it afterwards; plus the gate a container waits at while the test looks at it.
//!
//! The proof: the engine gives the runtime a `--root` (or none: berth's default), and the
//! container's directory there holds berth's state, which runc's does not look like, naming the
//! very pid the engine reports; `berth-runtime state` reads it back. A test that ran runc instead
//! fails here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// berth-runtime's state root when the engine passes no `--root` (podman does not).
pub const DEFAULT_ROOT: &str = "/run/berth";

/// How long berth may take to forget a removed container: a hang guard, not a timing check.
const RELEASE_GUARD: Duration = Duration::from_secs(30);

/// `berth-runtime --root ROOT state ID` as JSON, or what went wrong.
pub fn state(root: &Path, id: &str) -> Result<Value, String> {
    let out = super::process::try_run(
        Command::new(crate::runtime_bin()).arg("--root").arg(root).args(["state", id]),
        super::process::HANG_GUARD,
    )?;
    if out.code != 0 {
        return Err(out.to_string());
    }
    serde_json::from_str(&out.stdout).map_err(|e| format!("state of {id} is not JSON ({e}): {}", out.stdout))
}

/// The status berth reports for `id`, if it knows the container.
pub fn status(root: &Path, id: &str) -> Option<String> {
    state(root, id).ok().and_then(|v| v["status"].as_str().map(str::to_string))
}

/// Asserts that `id` is a live berth-runtime container in `root` whose init is `pid`, the pid the
/// engine reports for it.
pub fn assert_runs_under_berth(root: &Path, id: &str, pid: i32) {
    let file = root.join(id).join("state.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("no berth-runtime state at {} ({e}): the engine did not run {id} with berth-runtime", file.display())
    });
    let on_disk: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", file.display()));
    // runc's state.json has init_process_pid/init_process_start and no ociVersion.
    for key in ["ociVersion", "init_start_time", "bundle", "cgroup"] {
        assert!(on_disk.get(key).is_some(), "{} is not berth-runtime's state (no `{key}`): {text}", file.display());
    }
    assert_eq!(on_disk["pid"].as_i64(), Some(i64::from(pid)), "berth's init pid differs from the engine's");

    let reported = state(root, id).unwrap_or_else(|e| panic!("berth-runtime state {id}: {e}"));
    let status = reported["status"].as_str().unwrap_or_default();
    assert!(matches!(status, "running" | "paused"), "berth-runtime says {id} is {status:?}: {reported}");
    assert_eq!(reported["pid"].as_i64(), Some(i64::from(pid)), "berth-runtime state of {id}: {reported}");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "init {pid} of {id} is not running");
}

/// Asserts that berth forgot `id`: no state in `root` and no cgroup directory named `cgroup_leaf`
/// (the container's own cgroup) in any hierarchy. Waits a little, since some engines delete the
/// runtime container just after their command returns.
pub fn assert_released(root: &Path, id: &str, cgroup_leaf: &str) {
    let state_dir = root.join(id);
    let deadline = Instant::now() + RELEASE_GUARD;
    while state_dir.exists() || !crate::cgroup_dirs_named(cgroup_leaf).is_empty() {
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!state_dir.exists(), "berth-runtime state of {id} left behind: {}", state_dir.display());
    crate::assert_no_cgroup(cgroup_leaf);
}

/// `delete --force` for every container in `root` whose bundle lies under `dir`: the teardown's
/// net for containers an engine failed to remove. Returns what it deleted.
pub fn force_delete_under(root: &Path, dir: &Path) -> Vec<String> {
    let mut deleted = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(e.path().join("state.json")) else { continue };
        let bundle = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["bundle"].as_str().map(PathBuf::from))
            .unwrap_or_default();
        if !bundle.starts_with(dir) {
            continue;
        }
        let mut cmd = Command::new(crate::runtime_bin());
        cmd.arg("--root").arg(root).args(["delete", "--force", &id]);
        match super::process::try_run(&mut cmd, super::process::HANG_GUARD) {
            Ok(out) if out.code == 0 => {
                deleted.push(format!("deleted berth container {id} left in {}", root.display()))
            }
            Ok(out) => eprintln!("teardown: {out}"),
            Err(e) => eprintln!("teardown: {e}"),
        }
    }
    deleted
}

/// A host directory mounted into a container at [`Gate::MOUNT_POINT`]; the container's script runs
/// [`Gate::WAIT`] and stays alive until the test calls [`Gate::open`]. It lets a test look at a
/// foreground container (`run --rm`) before letting it finish, with no sleeps.
pub struct Gate {
    dir: PathBuf,
}

impl Gate {
    /// Where the container sees the gate directory.
    pub const MOUNT_POINT: &'static str = "/gate";
    /// Shell for the container: wait until the gate opens.
    pub const WAIT: &'static str = "until [ -e /gate/open ]; do sleep 0.05; done";

    /// A closed gate in `dir` (created).
    pub fn new(dir: PathBuf) -> Gate {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Gate { dir }
    }

    /// The host side of the gate, to bind-mount at [`Gate::MOUNT_POINT`].
    pub fn host_dir(&self) -> &Path {
        &self.dir
    }

    /// Lets the container go on.
    pub fn open(&self) {
        std::fs::write(self.dir.join("open"), b"").expect("opening the gate");
    }
}
