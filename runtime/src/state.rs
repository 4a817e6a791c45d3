//! Container state on disk: `<root>/<id>/state.json`, written atomically, guarded by an flock on
//! the container directory so concurrent commands on one id are serialised.

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// File name of the state inside a container directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the exec fifo init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// The container lifecycle status as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still setting the container up.
    Creating,
    /// Set up; init waits on the exec fifo.
    Created,
    /// The user process runs.
    Running,
    /// The cgroup is frozen.
    Paused,
    /// Init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What the runtime keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// runtime-spec version of the state format.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Status recorded by the last command that changed it (`creating` or `created`);
    /// `running` and `stopped` are derived from the init process (see [`State::status`]).
    pub status: Status,
    /// Host pid of init, 0 while creating.
    pub pid: i32,
    /// Start time of init in clock ticks since boot (`/proc/<pid>/stat` field 22): guards
    /// against pid reuse.
    pub init_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Annotations from config.json.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Host uid that created the container.
    pub owner: u32,
    /// Cgroup placement, to join, signal and remove it later.
    pub cgroup: crate::cgroups::CgroupPaths,
    /// config.json as it was at create time (hooks for later phases, the process for exec).
    pub config: serde_json::Value,
    /// Mounts the container made in the host's mount namespace (it had none of its own), in
    /// the order made: `delete` undoes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<PathBuf>,
}

impl State {
    /// The status right now, for a reader that does not hold the container's lock: derived from
    /// the recorded status, the create that may still hold the lock, and the init process.
    pub fn status(&self, dir: &Path) -> Status {
        if self.status == Status::Creating {
            return if lock_held(dir) { Status::Creating } else { Status::Stopped };
        }
        self.live_status(dir)
    }

    /// The status for a holder of the container's lock: a recorded `creating` then means the
    /// create that wrote it died.
    pub fn status_locked(&self, dir: &Path) -> Status {
        if self.status == Status::Creating {
            return Status::Stopped;
        }
        self.live_status(dir)
    }

    fn live_status(&self, dir: &Path) -> Status {
        if !init_alive(self.pid, self.init_start_time) {
            return Status::Stopped;
        }
        // Frozen first: a created container can be paused too.
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// The OCI state document (`runtime state` output, hook stdin).
    pub fn oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped { 0 } else { self.pid };
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status,
            "pid": pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": if self.owner == 0 { String::from("root") } else { self.owner.to_string() },
            "annotations": self.annotations,
        })
    }

    /// The hooks of the saved config, if any.
    pub fn hooks(&self) -> Result<Option<oci_spec::runtime::Hooks>> {
        match self.config.get("hooks") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(h) => serde_json::from_value(h.clone()).map(Some).context("parsing saved hooks"),
        }
    }

    /// Writes `state.json` atomically: a temp file in the same dir, fsync'ed, then renamed.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join(STATE_FILE);
        // One write: serialising straight into the file would issue a syscall per token.
        let bytes = serde_json::to_vec(self).context("serialising state")?;
        // 0600: the config holds the process env, which often carries secrets.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming state to {}", path.display()))?;
        Ok(())
    }

    /// Reads `state.json` from a container dir.
    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// True when `pid` is alive, not a zombie, and is the same process that was recorded.
pub fn init_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some((state, start)) => state != 'Z' && state != 'X' && start == start_time,
        None => false,
    }
}

/// `(state, starttime)` from `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Validates a container id before it is used as a path component: non-empty, at most 1024
/// bytes, only `[A-Za-z0-9_+.-]`, and not `.` or `..` (the runc rule).
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container id: must not be empty");
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        bail!("invalid container id {id:?}");
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))) {
        bail!("invalid container id {id:?}: character {c:?} is not allowed (use [A-Za-z0-9_+.-])");
    }
    Ok(())
}

/// True when some command holds the container's lock (a create in progress holds it throughout).
fn lock_held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir) else { return false };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// A container directory held under an exclusive flock for the life of this value.
pub struct LockedDir {
    /// `<root>/<id>`.
    pub path: PathBuf,
    _lock: Flock<File>,
}

impl LockedDir {
    /// Creates `<root>/<id>` (failing if it exists) and locks it.
    pub fn create(root: &Path, id: &str) -> Result<LockedDir> {
        validate_id(id)?;
        if !root.exists() {
            // 0700 like runc: other users must not list containers or reach their fifos.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .with_context(|| format!("creating root {}", root.display()))?;
        }
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!("container with id {id} already exists"),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Self::lock(path)
    }

    /// Locks the existing `<root>/<id>`; "does not exist" when there is no such container.
    pub fn open(root: &Path, id: &str) -> Result<LockedDir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() {
            bail!("container {id} does not exist");
        }
        let locked = match Self::lock(path) {
            Err(_) if !root.join(id).exists() => bail!("container {id} does not exist"),
            other => other?,
        };
        // A delete that held the lock while we waited has removed the container.
        if !locked.path.join(STATE_FILE).exists() {
            bail!("container {id} does not exist");
        }
        Ok(locked)
    }

    fn lock(path: PathBuf) -> Result<LockedDir> {
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(LockedDir { path, _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_path_syntax_are_refused() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "x\0y", &"a".repeat(1025)] {
            assert!(validate_id(id).is_err(), "{id:?} accepted");
        }
        for id in ["abc", "a.b-c_d+e", "0123456789abcdef"] {
            validate_id(id).unwrap();
        }
    }

    #[test]
    fn own_process_is_alive_and_matches_its_start_time() {
        let me = std::process::id() as i32;
        let (_, start) = proc_stat(me).unwrap();
        assert!(init_alive(me, start));
        assert!(!init_alive(me, start + 1));
    }
}
