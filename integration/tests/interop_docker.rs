//! dockerd 20.10 drives berth-runtime, added with `--add-runtime berth=<berth-runtime>` and chosen
//! with `docker run --runtime berth`: a private dockerd (on a private containerd) per test, the
//! busybox image loaded from a docker-archive, no network. Each test checks what a docker user sees
//! and that berth-runtime, not runc, ran the container.

use berth_integration::engines::berth::{self, Gate};
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok, Background, HANG_GUARD};
use berth_integration::engines::scratch::Scratch;
use berth_integration::engines::workload::{self, DETACHED, DETACHED_LOG, EXEC_PROBE, TERM_EXIT};
use berth_integration::{cgroup_dirs_named, runtime_bin, unique_id};
use std::process::Command;

/// The name dockerd knows berth-runtime by.
const RUNTIME_NAME: &str = "berth";

/// A private dockerd with berth-runtime added and the busybox image loaded.
struct Docker {
    dockerd: Dockerd,
    scratch: Scratch,
}

impl Docker {
    fn start() -> Docker {
        let mut scratch = Scratch::new("dock");
        let image = BusyboxImage::build(&scratch.subdir("image"));
        let dockerd =
            Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[(RUNTIME_NAME, &runtime_bin())]);
        scratch.sweep_berth_root(&dockerd.runtime_root());
        dockerd.load(&image.docker_archive());
        Docker { dockerd, scratch }
    }

    /// `docker run --runtime berth --network none OPTIONS` (with `gate` mounted, if any), running
    /// `args` in the busybox image.
    fn run(&self, options: &[&str], gate: Option<&Gate>, args: &[&str]) -> Command {
        let mut cmd = self.dockerd.docker();
        cmd.arg("run").args(["--runtime", RUNTIME_NAME, "--network", "none"]).args(options);
        if let Some(gate) = gate {
            cmd.arg("--volume").arg(format!("{}:{}", gate.host_dir().display(), Gate::MOUNT_POINT));
        }
        cmd.arg(IMAGE_REF).args(args);
        cmd
    }

    fn pid(&self, id: &str) -> i32 {
        let pid = self.dockerd.inspect(id, "{{.State.Pid}}");
        pid.parse().unwrap_or_else(|e| panic!("docker's pid of {id}, {pid:?}: {e}"))
    }

    fn assert_status(&self, id: &str, docker_status: &str, berth_status: &str) {
        assert_eq!(self.dockerd.inspect(id, "{{.State.Status}}"), docker_status, "docker's status of {id}");
        let berth = berth::status(&self.dockerd.runtime_root(), id);
        assert_eq!(berth.as_deref(), Some(berth_status), "berth's status of {id}");
    }

    /// Asserts that neither docker nor berth keeps anything of container `id`.
    fn assert_forgotten(&self, id: &str) {
        let left = run_ok(self.dockerd.docker().args(["ps", "--all", "--quiet", "--no-trunc"]));
        assert!(!left.contains(id), "docker still lists {id}: {left}");
        // With the cgroupfs driver, dockerd names a container's cgroup after its id.
        berth::assert_released(&self.dockerd.runtime_root(), id, id);
    }
}

#[test]
fn docker_run_rm_with_berth_runtime_propagates_output_and_exit_code() {
    let docker = Docker::start();
    let gate = Gate::new(docker.scratch.subdir("gate"));
    let cidfile = docker.scratch.path().join("rm.cid");
    let cid_option = cidfile.to_str().expect("utf-8 path");
    let mut run = Background::spawn(&mut docker.run(
        &["--rm", "--cidfile", cid_option],
        Some(&gate),
        &["sh", "-c", &workload::foreground()],
    ));

    let root = docker.dockerd.runtime_root();
    let mut id = String::new();
    run.wait_for("docker to report the container running", HANG_GUARD, || {
        id = std::fs::read_to_string(&cidfile).unwrap_or_default().trim().to_string();
        !id.is_empty() && docker.dockerd.try_inspect(&id, "{{.State.Status}}").as_deref() == Some("running")
    });
    berth::assert_runs_under_berth(&root, &id, docker.pid(&id));
    assert_eq!(docker.dockerd.inspect(&id, "{{.HostConfig.Runtime}}"), RUNTIME_NAME);
    assert!(!cgroup_dirs_named(&id).is_empty(), "the container has no cgroup of its own");

    gate.open();
    workload::assert_foreground_outcome(&run.wait());
    docker.assert_forgotten(&id);
}

#[test]
fn docker_exec_pause_stop_and_rm_work_on_a_detached_berth_container() {
    let docker = Docker::start();
    let name = unique_id("dock-d");
    let id = run_ok(&mut docker.run(&["--detach", "--name", &name], None, &["sh", "-c", DETACHED])).trim().to_string();
    assert_eq!(docker.dockerd.inspect(&name, "{{.Id}}"), id);
    docker.assert_status(&id, "running", "running");
    berth::assert_runs_under_berth(&docker.dockerd.runtime_root(), &id, docker.pid(&id));

    // exec: output and exit code come back through containerd's shim.
    workload::assert_exec_outcome(
        &run(docker.dockerd.docker().args(["exec", &name, "sh", "-c", EXEC_PROBE])),
        DETACHED,
    );

    // top: dockerd asks the shim, which asks the runtime (`ps --format json`), for the pids.
    let pid = docker.pid(&id).to_string();
    let top = run_ok(docker.dockerd.docker().args(["top", &name]));
    assert!(top.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(&pid)), "docker top lacks {pid}:\n{top}");

    run_ok(docker.dockerd.docker().args(["pause", &name]));
    docker.assert_status(&id, "paused", "paused");
    run_ok(docker.dockerd.docker().args(["unpause", &name]));
    docker.assert_status(&id, "running", "running");

    let logs = run_ok(docker.dockerd.docker().args(["logs", &name]));
    assert_eq!(logs.trim_end(), DETACHED_LOG, "docker logs");

    // stop sends SIGTERM, and SIGKILL only after the timeout: the script's own exit code, not 137.
    run_ok(docker.dockerd.docker().args(["stop", "--time", "30", &name]));
    assert_eq!(docker.dockerd.inspect(&name, "{{.State.Status}}"), "exited");
    assert_eq!(
        docker.dockerd.inspect(&name, "{{.State.ExitCode}}"),
        TERM_EXIT.to_string(),
        "exit code after docker stop"
    );

    run_ok(docker.dockerd.docker().args(["rm", &name]));
    docker.assert_forgotten(&id);
}
