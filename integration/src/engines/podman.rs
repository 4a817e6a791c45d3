//! podman 4.3 (Debian's) isolated in a directory of its own: storage, runroot, tmpdir, events file,
//! network config and its containers.conf/storage.conf/registries.conf all inside it; cgroupfs
//! manager (no systemd here), file events (no journald), no network.
//!
//! Two things on the development machines need care. Root lacks CAP_SYS_RESOURCE, so the default
//! container rlimits (nofile and nproc 1048576) cannot be set: containers.conf caps them at the
//! host's hard limits. And image copies (`podman load`) write containers/image's blob-info cache
//! to /var/lib/containers/cache, a path no option moves for root: loads run in a private mount
//! namespace whose /var/lib is an empty tmpfs.
//!
//! conmon runs in a cgroup `<cgroup parent>/conmon` that podman creates and never removes; the
//! scratch directory's sweep does.
//!
//! podman passes the runtime no `--root`: berth-runtime keeps podman's containers in its default
//! root. (`--runtime-flag root=...` does not work around that: podman 4.3 drops runtime flags
//! from `delete`, which then misses the container and leaves it behind, with runc too.)

use super::process::{run_ok, try_run, HANG_GUARD};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// podman.
pub const PODMAN: &str = "/usr/bin/podman";
/// The container monitor podman runs the runtime under.
pub const CONMON: &str = "/usr/bin/conmon";

/// podman has no ceiling of its own for nproc, but lowers its own RLIMIT_NPROC to this.
const NPROC_CEILING: u64 = 32768;

/// podman with its state under one directory, running containers with a given runtime binary.
/// Dropping it removes every container it still has.
pub struct Podman {
    dir: PathBuf,
    runtime: PathBuf,
}

impl Podman {
    /// Writes the configuration under `dir` (created); every container will run `runtime`.
    pub fn new(dir: &Path, runtime: &Path) -> Podman {
        for bin in [PODMAN, CONMON] {
            super::engine_binary(bin);
        }
        for sub in ["root", "runroot", "tmp", "volumes", "networks"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        let d = dir.display();
        let nofile = hard_limit(libc::RLIMIT_NOFILE, 1 << 20);
        let nproc = hard_limit(libc::RLIMIT_NPROC, NPROC_CEILING).min(NPROC_CEILING);
        let containers_conf = format!(
            r#"[containers]
netns = "none"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
image_copy_tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"

[network]
network_config_dir = "{d}/networks"
"#
        );
        let storage_conf =
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n");
        for (name, text) in [
            ("containers.conf", containers_conf),
            ("storage.conf", storage_conf),
            ("registries.conf", "unqualified-search-registries = []\n".to_string()),
        ] {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        }
        Podman { dir: dir.to_path_buf(), runtime: runtime.to_path_buf() }
    }

    /// `podman` with this instance's environment and global flags, ready for a subcommand.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(PODMAN);
        self.configure(&mut cmd);
        cmd
    }

    /// `podman load` of an oci-archive or docker-archive, in a private mount namespace whose
    /// /var/lib is an empty tmpfs (see the module doc).
    pub fn load(&self, archive: &Path) {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=16m,mode=0755 berth-no-blob-cache /var/lib && exec \"$@\"")
            .arg("sh")
            .arg(PODMAN);
        self.configure(&mut cmd);
        run_ok(cmd.arg("load").arg("--quiet").arg("--input").arg(archive));
    }

    /// `podman inspect --format FORMAT ID`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        run_ok(self.command().args(["inspect", "--format", format, id])).trim().to_string()
    }

    /// Like [`Self::inspect`], but `None` if the engine does not know `id` (yet).
    pub fn try_inspect(&self, id: &str, format: &str) -> Option<String> {
        let out = try_run(self.command().args(["inspect", "--format", format, id]), HANG_GUARD).ok()?;
        (out.code == 0).then(|| out.stdout.trim().to_string())
    }

    /// Removes every container, running or not; reports what it removed. Best effort, for teardown.
    pub fn remove_everything(&self) -> Vec<String> {
        let ids = try_run(self.command().args(["ps", "--all", "--quiet", "--no-trunc"]), HANG_GUARD)
            .map(|out| out.stdout.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut removed = Vec::new();
        for id in ids {
            match try_run(self.command().args(["rm", "--force", "--time", "0", &id]), HANG_GUARD) {
                Ok(out) if out.code == 0 => removed.push(format!("removed podman container {id}")),
                Ok(out) => eprintln!("teardown: {out}"),
                Err(e) => eprintln!("teardown: {e}"),
            }
        }
        removed
    }

    /// The environment and global flags that keep podman inside `dir`, with berth as its runtime.
    fn configure(&self, cmd: &mut Command) {
        let d = &self.dir;
        // podman reads $DOCKER_CONFIG/config.json for registry auth and fails if it is missing.
        for var in ["DOCKER_CONFIG", "DOCKER_HOST", "REGISTRY_AUTH_FILE", "CONTAINER_HOST", "CONTAINER_CONNECTION"] {
            cmd.env_remove(var);
        }
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("TMPDIR", d.join("tmp"));
        let flags: [(&str, OsString); 7] = [
            ("--root", d.join("root").into()),
            ("--runroot", d.join("runroot").into()),
            ("--tmpdir", d.join("tmp").into()),
            ("--runtime", self.runtime.clone().into()),
            ("--cgroup-manager", "cgroupfs".into()),
            ("--events-backend", "file".into()),
            ("--storage-driver", "overlay".into()),
        ];
        for (flag, value) in flags {
            cmd.arg(flag).arg(value);
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for r in self.remove_everything() {
            eprintln!("teardown of podman {}: {r}", self.dir.display());
        }
    }
}

/// The hard limit of `resource`, or `unlimited` when it has none.
fn hard_limit(resource: libc::__rlimit_resource_t, unlimited: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid, writable rlimit for getrlimit to fill in.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if lim.rlim_max == libc::RLIM_INFINITY {
        unlimited
    } else {
        lim.rlim_max
    }
}
