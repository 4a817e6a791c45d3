//! podman 4.3 drives berth-runtime (`podman --runtime <berth-runtime>`, under conmon): an isolated
//! podman per test, the busybox image loaded from an oci-archive, the containers' cgroups under the
//! test's own parent. podman gives the runtime no `--root`, so berth keeps these containers in its
//! default root. Each test checks what a podman user sees and that berth-runtime, not runc, ran the
//! container.

use berth_integration::engines::berth::{self, Gate, DEFAULT_ROOT};
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::podman::Podman;
use berth_integration::engines::process::{run, run_ok, Background, HANG_GUARD};
use berth_integration::engines::scratch::Scratch;
use berth_integration::engines::workload::{self, DETACHED, DETACHED_LOG, EXEC_PROBE, TERM_EXIT};
use berth_integration::{cgroup_dirs_named, runtime_bin, unique_id};
use std::path::Path;
use std::process::Command;

/// An isolated podman with the busybox image.
struct Pod {
    podman: Podman,
    scratch: Scratch,
}

impl Pod {
    fn start() -> Pod {
        let mut scratch = Scratch::new("pod");
        scratch.sweep_berth_root(berth_root());
        let image = BusyboxImage::build(&scratch.subdir("image"));
        let podman = Podman::new(&scratch.subdir("podman"), &runtime_bin());
        podman.load(&image.oci_archive());
        Pod { podman, scratch }
    }

    /// `podman run OPTIONS` without network, in the test's cgroup parent (with `gate` mounted, if
    /// any), running `args` in the busybox image.
    fn run(&self, options: &[&str], gate: Option<&Gate>, args: &[&str]) -> Command {
        let mut cmd = self.podman.command();
        cmd.arg("run").args(options).args(["--network", "none", "--cgroup-parent", self.scratch.cgroup_parent()]);
        if let Some(gate) = gate {
            cmd.arg("--volume").arg(format!("{}:{}", gate.host_dir().display(), Gate::MOUNT_POINT));
        }
        cmd.arg(IMAGE_REF).args(args);
        cmd
    }

    fn pid(&self, id: &str) -> i32 {
        let pid = self.podman.inspect(id, "{{.State.Pid}}");
        pid.parse().unwrap_or_else(|e| panic!("podman's pid of {id}, {pid:?}: {e}"))
    }

    fn assert_status(&self, id: &str, podman_status: &str, berth_status: &str) {
        assert_eq!(self.podman.inspect(id, "{{.State.Status}}"), podman_status, "podman's status of {id}");
        assert_eq!(berth::status(berth_root(), id).as_deref(), Some(berth_status), "berth's status of {id}");
    }

    /// Asserts that neither podman nor berth keeps anything of container `id`.
    fn assert_forgotten(&self, id: &str) {
        let left = run_ok(self.podman.command().args(["ps", "--all", "--quiet", "--no-trunc"]));
        assert!(!left.contains(id), "podman still lists {id}: {left}");
        berth::assert_released(berth_root(), id, &cgroup_leaf(id));
    }
}

/// podman gives the runtime no `--root`: berth keeps its containers in its default root.
fn berth_root() -> &'static Path {
    Path::new(DEFAULT_ROOT)
}

/// podman's cgroupfs manager names a container's cgroup `libpod-<id>`.
fn cgroup_leaf(id: &str) -> String {
    format!("libpod-{id}")
}

#[test]
fn podman_run_rm_with_berth_runtime_propagates_output_and_exit_code() {
    let pod = Pod::start();
    let gate = Gate::new(pod.scratch.subdir("gate"));
    let cidfile = pod.scratch.path().join("rm.cid");
    let cid_option = cidfile.to_str().expect("utf-8 path");
    let mut run = Background::spawn(&mut pod.run(
        &["--rm", "--cidfile", cid_option],
        Some(&gate),
        &["sh", "-c", &workload::foreground()],
    ));

    let mut id = String::new();
    run.wait_for("podman to report the container running", HANG_GUARD, || {
        id = std::fs::read_to_string(&cidfile).unwrap_or_default().trim().to_string();
        !id.is_empty() && pod.podman.try_inspect(&id, "{{.State.Status}}").as_deref() == Some("running")
    });
    berth::assert_runs_under_berth(berth_root(), &id, pod.pid(&id));
    assert_eq!(pod.podman.inspect(&id, "{{.OCIRuntime}}"), runtime_bin().to_string_lossy());
    assert!(!cgroup_dirs_named(&cgroup_leaf(&id)).is_empty(), "the container has no cgroup of its own");

    gate.open();
    workload::assert_foreground_outcome(&run.wait());
    pod.assert_forgotten(&id);
}

#[test]
fn podman_exec_pause_stop_and_rm_work_on_a_detached_berth_container() {
    let pod = Pod::start();
    let name = unique_id("pod-d");
    let id = run_ok(&mut pod.run(&["--detach", "--name", &name], None, &["sh", "-c", DETACHED])).trim().to_string();
    assert_eq!(pod.podman.inspect(&name, "{{.Id}}"), id);
    pod.assert_status(&id, "running", "running");
    berth::assert_runs_under_berth(berth_root(), &id, pod.pid(&id));

    // exec: output and exit code come back through conmon.
    workload::assert_exec_outcome(&run(pod.podman.command().args(["exec", &name, "sh", "-c", EXEC_PROBE])), DETACHED);

    run_ok(pod.podman.command().args(["pause", &name]));
    pod.assert_status(&id, "paused", "paused");
    run_ok(pod.podman.command().args(["unpause", &name]));
    pod.assert_status(&id, "running", "running");

    let logs = run_ok(pod.podman.command().args(["logs", &name]));
    assert_eq!(logs.trim_end(), DETACHED_LOG, "podman logs");

    // stop sends SIGTERM, and SIGKILL only after the timeout: the script's own exit code, not 137.
    run_ok(pod.podman.command().args(["stop", "--time", "30", &name]));
    assert_eq!(pod.podman.inspect(&name, "{{.State.Status}}"), "exited");
    assert_eq!(pod.podman.inspect(&name, "{{.State.ExitCode}}"), TERM_EXIT.to_string(), "exit code after podman stop");

    run_ok(pod.podman.command().args(["rm", &name]));
    pod.assert_forgotten(&id);
}
