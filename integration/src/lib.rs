//! Fixtures for berth's end-to-end tests: an OCI bundle made from Debian's `busybox-static` (by
//! `fixtures/make-busybox-bundle.sh`), a private runtime root per test, and checks that a test
//! left nothing behind. The tests run as root and create real containers. [`engines`] has what
//! the interop tests need to drive berth-runtime with real containerd, podman and dockerd.

pub mod engines;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `berth-runtime` binary of this build (`target/<profile>/berth-runtime`), or
/// `$BERTH_RUNTIME`.
pub fn runtime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
        return PathBuf::from(p);
    }
    let profile_dir = profile_dir();
    let bin = profile_dir.join("berth-runtime");
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// The cargo target directory of this build (test binaries live in target/<profile>/deps/).
fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target/").to_path_buf()
}

/// `target/<profile>`: test binaries live in its deps/.
pub(crate) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(2).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// True when `/sys/fs/cgroup` is the unified cgroup v2 hierarchy (a v1 or hybrid host has v1
/// controllers there).
pub fn host_is_v2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("reading /proc/self/mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
}

/// Panics unless running as root: these tests create namespaces, mounts and cgroups.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the integration tests need root (run scripts/test.sh as root)");
}

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// An OCI bundle with a busybox rootfs in a temporary directory.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// Makes a bundle whose process runs `args` (no terminal).
    pub fn new(args: &[&str]) -> Bundle {
        require_root();
        let dir = tempfile::Builder::new().prefix("berth-it-bundle-").tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-busybox-bundle.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .env("ARGS", serde_json::to_string(args).expect("args json"))
            // Built once, copied for every bundle (cargo clean removes it).
            .env("ROOTFS_TEMPLATE", target_dir().join("tmp/busybox-rootfs"))
            .output()
            .expect("running make-busybox-bundle.sh");
        assert!(out.status.success(), "make-busybox-bundle.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        Bundle { dir }
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// config.json as JSON.
    pub fn config(&self) -> Value {
        let text = std::fs::read(self.path().join("config.json")).expect("reading config.json");
        serde_json::from_slice(&text).expect("parsing config.json")
    }

    /// Changes config.json.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) -> &Self {
        let mut config = self.config();
        f(&mut config);
        std::fs::write(self.path().join("config.json"), serde_json::to_vec_pretty(&config).expect("json"))
            .expect("writing config.json");
        self
    }
}

/// A private `--root` for one test; on drop, force-deletes whatever the test left and removes it.
pub struct Runtime {
    root: tempfile::TempDir,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A new empty state root.
    pub fn new() -> Runtime {
        require_root();
        Runtime { root: tempfile::Builder::new().prefix("berth-it-root-").tempdir().expect("tempdir") }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A command `berth-runtime --root <root> ARGS...` with null stdin.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root").arg(self.root()).args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `berth-runtime --root <root> ARGS...` and returns its output. Output goes through
    /// files, not pipes: a container's init inherits the runtime's stdio (the runc contract), so
    /// a pipe would stay open for as long as the container lives.
    pub fn run(&self, args: &[&str]) -> Output {
        let stdout = tempfile::tempfile().expect("stdout file");
        let stderr = tempfile::tempfile().expect("stderr file");
        let status = self
            .command(args)
            .stdout(stdout.try_clone().expect("dup"))
            .stderr(stderr.try_clone().expect("dup"))
            .status()
            .expect("running berth-runtime");
        Output { status, stdout: read_all(stdout), stderr: read_all(stderr) }
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth-runtime {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run --bundle B ID` in the foreground: (exit code, stdout, stderr).
    pub fn run_container(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let b = bundle.path().to_str().expect("utf-8 bundle path");
        let out = self.run(&["run", "--bundle", b, id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `create --bundle B ID` with the container's stdout and stderr going to temporary files
    /// (its init inherits the runtime's stdio); asserts that create succeeded. The returned files
    /// keep collecting what the container writes after `start`.
    pub fn create_with_output(&self, bundle: &Bundle, id: &str) -> ContainerOutput {
        let output = ContainerOutput {
            stdout: tempfile::NamedTempFile::new().expect("stdout file"),
            stderr: tempfile::NamedTempFile::new().expect("stderr file"),
        };
        let status = self
            .command(&["create", "--bundle", bundle.path().to_str().expect("utf-8 bundle path"), id])
            .stdout(output.stdout.reopen().expect("reopening the stdout file"))
            .stderr(output.stderr.reopen().expect("reopening the stderr file"))
            .status()
            .expect("running berth-runtime");
        assert!(status.success(), "create of {id} failed: {}", output.stderr());
        output
    }

    /// The `status` field of `state ID`.
    pub fn status(&self, id: &str) -> String {
        status_field(&self.ok(&["state", id]))
    }

    /// Waits until `state ID` succeeds and reports status `want`; panics after `timeout`. A
    /// failing `state` counts as not yet there (a foreground `run` creates the container only
    /// after a while).
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) {
        let mut last = String::from("no state yet");
        let reached = poll_until(timeout, || {
            let out = self.run(&["state", id]);
            last = if out.status.success() {
                status_field(&String::from_utf8_lossy(&out.stdout))
            } else {
                format!("state failed: {}", String::from_utf8_lossy(&out.stderr).trim_end())
            };
            last == want
        });
        assert!(reached, "container {id} did not become {want} within {timeout:?} (last seen: {last})");
    }

    /// Asserts that nothing of container `id` remains: no state dir, no cgroup in any
    /// hierarchy, no process whose cgroup names it.
    pub fn assert_gone(&self, id: &str) {
        assert!(!self.root().join(id).exists(), "state dir of {id} left behind");
        assert_no_cgroup(id);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.root()) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "--force", &id]);
            }
        }
    }
}

/// Where a container made by [`Runtime::create_with_output`] writes its stdout and stderr.
pub struct ContainerOutput {
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

impl ContainerOutput {
    /// Everything the container has written to its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout.path()).expect("reading the container's stdout")
    }

    /// Everything the container (and `create`) has written to its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).expect("reading the container's stderr")
    }
}

/// Calls `done` every 10 ms until it returns true; panics naming `what` if that takes longer
/// than `timeout`.
pub fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(timeout, done), "timed out after {timeout:?} waiting for {what}");
}

/// Calls `done` every 10 ms until it returns true (then true) or `timeout` has passed (then
/// false).
fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The `status` field of `state` output.
fn status_field(state_json: &str) -> String {
    let v: Value = serde_json::from_str(state_json).expect("state json");
    v["status"].as_str().unwrap_or_default().to_string()
}

fn read_all(mut file: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut buf = Vec::new();
    file.seek(std::io::SeekFrom::Start(0)).expect("seek");
    file.read_to_end(&mut buf).expect("read");
    buf
}

/// Asserts no cgroup directory named `id` exists in any mounted hierarchy.
pub fn assert_no_cgroup(id: &str) {
    let left = cgroup_dirs_named(id);
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// Cgroup directories named `id` under /sys/fs/cgroup, six levels deep: the runtime nests a
/// container under its own cgroup, which can itself be deep (e.g. `memory:/process_api/<hash>`).
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name() == name {
                    out.push(e.path());
                }
                walk(&e.path(), name, depth - 1, out);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 6, &mut found);
    found
}

/// Mount points on the host whose path contains `needle`.
pub fn host_mounts_containing(needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.contains(needle)).map(str::to_string).collect()
}

/// A process (`unshare --<kind> sleep 300`) holding a fresh namespace of one kind for a test to
/// join by path; killed and reaped on drop.
pub struct NamespaceHolder {
    child: std::process::Child,
}

impl NamespaceHolder {
    /// Starts the holder and waits until it is in its new namespace (`kind` as in
    /// `/proc/PID/ns/<kind>` and unshare's `--<option>`: e.g. ("net", "net"), ("uts", "uts")).
    pub fn new(ns_file: &str, unshare_option: &str) -> NamespaceHolder {
        let child = Command::new("unshare")
            .arg(format!("--{unshare_option}"))
            .args(["sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .expect("running unshare");
        let holder = NamespaceHolder { child };
        let host = std::fs::read_link(format!("/proc/self/ns/{ns_file}")).expect("reading our namespace");
        wait_until("the holder to enter its namespace", Duration::from_secs(10), || {
            std::fs::read_link(holder.ns_path(ns_file)).is_ok_and(|ns| ns != host)
        });
        holder
    }

    /// `/proc/PID/ns/<ns_file>` of the holder.
    pub fn ns_path(&self, ns_file: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{ns_file}", self.child.id()))
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
