//! containerd 1.6 drives berth-runtime through containerd's own runc shim, as `ctr run
//! --runc-binary` selects it: a private containerd per test, the busybox image imported from an
//! oci-archive, the shim's runtime root and ctr's fifos inside the test's scratch directory.
//! Each test checks what a ctr user sees and that berth-runtime, not runc, ran the container.

use berth_integration::engines::berth::{self, Gate};
use berth_integration::engines::containerd::Containerd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok, Background, HANG_GUARD};
use berth_integration::engines::scratch::Scratch;
use berth_integration::engines::workload::{self, DETACHED, EXEC_PROBE, TERM_EXIT};
use berth_integration::{cgroup_dirs_named, runtime_bin, unique_id, wait_until};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The containerd namespace of the tests' containers.
const NS: &str = "berth-it";

/// A private containerd with the busybox image, and where its runc shim keeps berth's state.
struct Ctr {
    containerd: Containerd,
    /// `--runc-root`: the shim runs the runtime with `--root <runc_root>/<namespace>`.
    runc_root: PathBuf,
    fifo_dir: PathBuf,
    scratch: Scratch,
}

impl Ctr {
    fn start() -> Ctr {
        let mut scratch = Scratch::new("ctr");
        let runc_root = scratch.subdir("runc");
        let fifo_dir = scratch.subdir("fifo");
        scratch.sweep_berth_root(&runc_root.join(NS));
        let image = BusyboxImage::build(&scratch.subdir("image"));
        let containerd = Containerd::start(&scratch.path().join("containerd"));
        containerd.import(NS, &image.oci_archive());
        Ctr { containerd, runc_root, fifo_dir, scratch }
    }

    /// berth-runtime's `--root` for this namespace.
    fn berth_root(&self) -> PathBuf {
        self.runc_root.join(NS)
    }

    fn ctr(&self) -> Command {
        self.containerd.ctr(NS)
    }

    /// `ctr run OPTIONS` with berth-runtime as the runc shim's binary, the container in cgroup
    /// `<scratch parent>/<id>` (and `gate` mounted, if any), running `args` in the busybox image.
    fn run(&self, options: &[&str], gate: Option<&Gate>, id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.arg("run")
            .args(options)
            .args(["--runtime", "io.containerd.runc.v2", "--runc-binary"])
            .arg(runtime_bin())
            .arg("--runc-root")
            .arg(&self.runc_root)
            .arg("--fifo-dir")
            .arg(&self.fifo_dir)
            .arg("--cgroup")
            .arg(format!("{}/{id}", self.scratch.cgroup_parent()));
        if let Some(gate) = gate {
            let (src, dst) = (gate.host_dir().display(), Gate::MOUNT_POINT);
            cmd.arg("--mount").arg(format!("type=bind,src={src},dst={dst},options=rbind:rw"));
        }
        cmd.args([IMAGE_REF, id]).args(args);
        cmd
    }

    /// The task's pid and ctr's status for it; panics if ctr does not list it.
    fn task(&self, id: &str) -> (i32, String) {
        self.containerd.task(NS, id).unwrap_or_else(|| panic!("ctr tasks ls does not list {id}"))
    }

    /// Waits until ctr reports `status` for task `id`; `guard` only keeps a hang from blocking the
    /// test forever.
    fn wait_task_status(&self, id: &str, status: &str, guard: Duration) {
        wait_until(&format!("task {id} to be {status}"), guard, || {
            self.containerd.task(NS, id).is_some_and(|(_, s)| s == status)
        });
    }

    fn assert_berth_status(&self, id: &str, want: &str) {
        assert_eq!(berth::status(&self.berth_root(), id).as_deref(), Some(want), "berth-runtime's status of {id}");
    }

    /// Asserts that neither containerd nor berth keeps anything of `id`, and that ctr's fifos are gone.
    fn assert_forgotten(&self, id: &str) {
        assert!(self.containerd.task(NS, id).is_none(), "task {id} still listed");
        let containers = run_ok(self.ctr().args(["containers", "ls", "-q"]));
        assert!(!containers.lines().any(|l| l.trim() == id), "container {id} still listed: {containers}");
        berth::assert_released(&self.berth_root(), id, id);
        let fifos: Vec<_> = std::fs::read_dir(&self.fifo_dir).expect("fifo dir").flatten().map(|e| e.path()).collect();
        assert!(fifos.is_empty(), "ctr left fifos behind: {fifos:?}");
    }
}

/// The pids `ctr task ps` lists.
fn listed_pids(ps_output: &str) -> Vec<i32> {
    ps_output.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

/// A number at `path` (keys separated by '.') of a JSON document, or 0.
fn json_u64(v: &Value, path: &str) -> u64 {
    path.split('.').fold(v, |v, key| &v[key]).as_u64().unwrap_or(0)
}

#[test]
fn ctr_run_rm_runs_berth_under_the_runc_shim_and_propagates_output_and_exit_code() {
    let ctr = Ctr::start();
    let id = unique_id("ctr-rm");
    let gate = Gate::new(ctr.scratch.subdir("gate"));
    let mut run = Background::spawn(&mut ctr.run(&["--rm"], Some(&gate), &id, &["sh", "-c", &workload::foreground()]));

    run.wait_for("ctr to report the task running", HANG_GUARD, || {
        ctr.containerd.task(NS, &id).is_some_and(|(_, status)| status == "RUNNING")
    });
    let (pid, _) = ctr.task(&id);
    berth::assert_runs_under_berth(&ctr.berth_root(), &id, pid);
    assert!(!cgroup_dirs_named(&id).is_empty(), "the container has no cgroup of its own");
    let options = std::fs::read_to_string(
        ctr.scratch
            .path()
            .join("containerd/state/io.containerd.runtime.v2.task")
            .join(NS)
            .join(&id)
            .join("options.json"),
    )
    .expect("the shim's options.json");
    assert!(
        options.contains(&*runtime_bin().to_string_lossy()),
        "the runc shim was not told to use berth-runtime: {options}"
    );

    gate.open();
    workload::assert_foreground_outcome(&run.wait());
    ctr.assert_forgotten(&id);
}

#[test]
fn ctr_task_ps_pause_resume_exec_metrics_kill_and_rm_work_on_a_berth_container() {
    let ctr = Ctr::start();
    let id = unique_id("ctr-d");
    run_ok(&mut ctr.run(&["--detach", "--null-io"], None, &id, &["sh", "-c", DETACHED]));
    ctr.wait_task_status(&id, "RUNNING", HANG_GUARD);
    let (pid, _) = ctr.task(&id);
    berth::assert_runs_under_berth(&ctr.berth_root(), &id, pid);

    // ps: the shim asks the runtime (`ps --format json`) for the container's pids.
    let ps = run_ok(ctr.ctr().args(["tasks", "ps", &id]));
    assert!(listed_pids(&ps).contains(&pid), "ctr tasks ps does not list init {pid}:\n{ps}");

    run_ok(ctr.ctr().args(["tasks", "pause", &id]));
    assert_eq!(ctr.task(&id).1, "PAUSED");
    ctr.assert_berth_status(&id, "paused");
    run_ok(ctr.ctr().args(["tasks", "resume", &id]));
    assert_eq!(ctr.task(&id).1, "RUNNING");
    ctr.assert_berth_status(&id, "running");

    // exec into the resumed container: output and exit code come back through the shim.
    let fifo_dir = ctr.fifo_dir.to_str().expect("utf-8 path");
    let exec = ["tasks", "exec", "--fifo-dir", fifo_dir, "--exec-id", "probe", &id, "sh", "-c", EXEC_PROBE];
    workload::assert_exec_outcome(&run(ctr.ctr().args(exec)), DETACHED);

    // metrics: the shim reads the cgroups berth put the container in.
    let metrics: Value = serde_json::from_str(&run_ok(ctr.ctr().args(["tasks", "metrics", "--format", "json", &id])))
        .expect("ctr tasks metrics --format json");
    assert!(json_u64(&metrics, "pids.current") >= 1, "no pids counted: {metrics}");
    assert!(json_u64(&metrics, "memory.usage.usage") > 0, "no memory usage: {metrics}");
    let table = run_ok(ctr.ctr().args(["tasks", "metrics", &id]));
    assert!(table.contains("pids.current") && table.contains("memory.usage_in_bytes"), "metrics table:\n{table}");

    // kill (SIGTERM by default) and remove: ctr tasks rm reports the exit code.
    run_ok(ctr.ctr().args(["tasks", "kill", &id]));
    ctr.wait_task_status(&id, "STOPPED", HANG_GUARD);
    ctr.assert_berth_status(&id, "stopped");
    let rm = run(ctr.ctr().args(["tasks", "rm", &id]));
    assert_eq!(rm.code, 0, "{rm}");
    let exit = format!("exit code {TERM_EXIT}");
    assert!(rm.stderr.contains(&exit), "ctr tasks rm does not report {exit}: {rm}");
    run_ok(ctr.ctr().args(["containers", "rm", &id]));
    ctr.assert_forgotten(&id);
}

#[test]
fn ctr_tasks_kill_sigkill_stops_a_paused_berth_task() {
    let ctr = Ctr::start();
    let id = unique_id("ctr-p");
    run_ok(&mut ctr.run(&["--detach"], None, &id, &["sleep", "1000"]));
    ctr.wait_task_status(&id, "RUNNING", HANG_GUARD);
    let (pid, _) = ctr.task(&id);
    berth::assert_runs_under_berth(&ctr.berth_root(), &id, pid);
    run_ok(ctr.ctr().args(["tasks", "pause", &id]));
    assert_eq!(ctr.task(&id).1, "PAUSED");

    // ctr does not resume first (docker and podman do): the runtime's kill must thaw the frozen
    // cgroup for SIGKILL to land, as runc's does. A SIGKILLed sleep is gone in milliseconds; the
    // bound only keeps a frozen task from hanging the test.
    run_ok(ctr.ctr().args(["tasks", "kill", "--signal", "SIGKILL", &id]));
    ctr.wait_task_status(&id, "STOPPED", Duration::from_secs(20));
    let rm = run(ctr.ctr().args(["tasks", "rm", &id]));
    assert_eq!(rm.code, 0, "{rm}");
    assert!(rm.stderr.contains("exit code 137"), "ctr tasks rm does not report SIGKILL's 137: {rm}");
    run_ok(ctr.ctr().args(["containers", "rm", &id]));
    ctr.assert_forgotten(&id);
}
