//! containerd-shim-berth-v2 under real containerd 1.6: a private containerd per test finds our shim
//! as `io.containerd.berth.v2` (installed in its opt plugin's `bin/`, which containerd puts first
//! on its PATH), the busybox image is imported from an oci-archive, ctr's FIFOs and the
//! container's cgroup live in the test's scratch directory. Each test checks what a ctr user sees:
//! output, exit codes, terminal, stdin, pause/resume, metrics, events, a containerd restart and a
//! killed shim. The last test installs our shim as containerd's runc shim and has it drive runc,
//! which proves that the shim only speaks runc's command line to its runtime.

use berth_integration::engines::berth::{self};
use berth_integration::engines::containerd::{Containerd, CTR};
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok, Background, Outcome, HANG_GUARD};
use berth_integration::engines::scratch::Scratch;
use berth_integration::engines::workload::{self, DETACHED, EXEC_PROBE, TERM_EXIT};
use berth_integration::{host_mounts_containing, runtime_bin, unique_id, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The containerd namespace of the tests' containers.
const NS: &str = "berth-it-shim";
/// The runtime name that makes containerd run `containerd-shim-berth-v2`.
const BERTH_SHIM: &str = "io.containerd.berth.v2";

/// Our shim binary, built next to berth-runtime by `cargo test --workspace`.
fn shim_bin() -> PathBuf {
    let bin = runtime_bin().with_file_name("containerd-shim-berth-v2");
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// The runtime root the shim gives berth-runtime for [`NS`] (like the runc shim's
/// `/run/containerd/runc/<namespace>`).
fn shim_root() -> PathBuf {
    Path::new("/run/containerd/berth").join(NS)
}

/// Removes the shim's runtime root for [`NS`] once no test uses it any more (it is shared by the
/// tests running in parallel, so only an empty one goes).
struct SharedRootGuard;

impl Drop for SharedRootGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(shim_root());
        // Its parent too, if nothing else (another namespace) uses it.
        let _ = std::fs::remove_dir("/run/containerd/berth");
    }
}

/// A private containerd with our shim installed under `shim_name` and the busybox image.
struct Env {
    containerd: Containerd,
    fifo_dir: PathBuf,
    scratch: Scratch,
    _root: SharedRootGuard,
}

impl Env {
    /// containerd with our shim as `containerd-shim-berth-v2`.
    fn start(label: &str) -> Env {
        Env::with_shim_named(label, "containerd-shim-berth-v2")
    }

    fn with_shim_named(label: &str, shim_name: &str) -> Env {
        let mut scratch = Scratch::new(label);
        let fifo_dir = scratch.subdir("fifo");
        scratch.sweep_berth_root(&shim_root());
        let image = BusyboxImage::build(&scratch.subdir("image"));
        let dir = scratch.path().join("containerd");
        // containerd's opt plugin (path <dir>/opt in the harness's config) puts <dir>/opt/bin
        // first on containerd's PATH, where containerd looks up containerd-shim-<name>-v2. A
        // symlink: the shim finds berth-runtime next to its real path.
        let opt_bin = dir.join("opt/bin");
        std::fs::create_dir_all(&opt_bin).expect("creating opt/bin");
        std::os::unix::fs::symlink(shim_bin(), opt_bin.join(shim_name)).expect("installing the shim");
        let containerd = Containerd::start(&dir);
        containerd.import(NS, &image.oci_archive());
        Env { containerd, fifo_dir, scratch, _root: SharedRootGuard }
    }

    fn ctr(&self) -> Command {
        self.containerd.ctr(NS)
    }

    /// `ctr run OPTIONS --runtime <runtime> IMAGE ID ARGS`, FIFOs and cgroup in the scratch dir.
    fn run_with(&self, runtime: &str, options: &[&str], id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.arg("run")
            .args(options)
            .args(["--runtime", runtime, "--fifo-dir"])
            .arg(&self.fifo_dir)
            .arg("--cgroup")
            .arg(format!("{}/{id}", self.scratch.cgroup_parent()))
            .args([IMAGE_REF, id])
            .args(args);
        cmd
    }

    /// `ctr run` with our shim.
    fn run(&self, options: &[&str], id: &str, args: &[&str]) -> Command {
        self.run_with(BERTH_SHIM, options, id, args)
    }

    /// `ctr task exec --exec-id EXEC ID ARGS`.
    fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.args(["task", "exec", "--exec-id", exec_id, "--fifo-dir"]).arg(&self.fifo_dir).arg(id).args(args);
        cmd
    }

    /// The task's pid and status; panics if ctr does not list it.
    fn task(&self, id: &str) -> (i32, String) {
        self.containerd.task(NS, id).unwrap_or_else(|| panic!("ctr tasks ls does not list {id}"))
    }

    fn wait_task_status(&self, id: &str, status: &str) {
        wait_until(&format!("task {id} to be {status}"), HANG_GUARD, || {
            self.containerd.task(NS, id).is_some_and(|(_, s)| s == status)
        });
    }

    /// The task's bundle (containerd's state dir for it).
    fn bundle(&self, id: &str) -> PathBuf {
        self.scratch.path().join("containerd/state/io.containerd.runtime.v2.task").join(NS).join(id)
    }

    /// The running task's shim: its pid (the parent of the container's init, which the
    /// subreaper shim inherited) and its ttrpc socket (from the bundle's `address` file).
    fn shim_of(&self, id: &str) -> (i32, PathBuf) {
        let (pid, _) = self.task(id);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("init's /proc stat");
        let after_comm = &stat[stat.rfind(')').expect("stat comm") + 2..];
        let ppid: i32 = after_comm.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("ppid");
        let address = std::fs::read_to_string(self.bundle(id).join("address")).expect("the shim's address file");
        let socket = PathBuf::from(address.trim().strip_prefix("unix://").expect("a unix:// address"));
        (ppid, socket)
    }

    /// Asserts that the task's shim is our binary and the container is berth-runtime's.
    fn assert_berth_shim_runs(&self, id: &str) {
        let (shim, socket) = self.shim_of(id);
        let exe = std::fs::read_link(format!("/proc/{shim}/exe")).expect("shim exe");
        assert_eq!(exe, shim_bin().canonicalize().expect("shim path"), "task {id} is not served by our shim");
        assert!(socket.starts_with("/run/containerd/s/"), "the shim's socket {} is not containerd's", socket.display());
        berth::assert_runs_under_berth(&shim_root(), id, self.task(id).0);
    }

    /// Asserts that containerd, berth-runtime and the shim kept nothing of `id`: no task, no
    /// container, no runtime state, no rootfs mount, no shim process or socket, no FIFOs.
    fn assert_forgotten(&self, id: &str, shim: Option<(i32, PathBuf)>) {
        self.assert_forgotten_but_fifos(id, shim);
        let fifos: Vec<_> = std::fs::read_dir(&self.fifo_dir).expect("fifo dir").flatten().map(|e| e.path()).collect();
        assert!(fifos.is_empty(), "FIFOs left behind: {fifos:?}");
    }

    /// [`Env::assert_forgotten`] without the FIFO check: ctr removes its FIFOs only when it
    /// removes the task itself, not when containerd cleaned up after a dead shim.
    fn assert_forgotten_but_fifos(&self, id: &str, shim: Option<(i32, PathBuf)>) {
        assert!(self.containerd.task(NS, id).is_none(), "task {id} still listed");
        let containers = run_ok(self.ctr().args(["containers", "ls", "-q"]));
        assert!(!containers.lines().any(|l| l.trim() == id), "container {id} still listed: {containers}");
        berth::assert_released(&shim_root(), id, id);
        let mounts = host_mounts_containing(&format!("/{id}/rootfs"));
        assert!(mounts.is_empty(), "rootfs of {id} still mounted: {mounts:?}");
        if let Some((pid, socket)) = shim {
            wait_until(&format!("shim {pid} to exit"), HANG_GUARD, || !Path::new(&format!("/proc/{pid}")).exists());
            assert!(!socket.exists(), "the shim left its socket {}", socket.display());
        }
    }

    /// `ctr events` into a file, subscribed once this returns; the events stop with the
    /// returned process.
    fn subscribe_events(&self) -> (Background, PathBuf) {
        let events_file = self.scratch.path().join("events.txt");
        let mut events_cmd = self.ctr();
        events_cmd.arg("events");
        let events =
            Background::spawn(&mut through_shell(&format!("exec \"$@\" > '{}'", events_file.display()), &events_cmd));
        // ctr events subscribes asynchronously: create and remove probe containers until it shows one.
        wait_until("ctr events to be subscribed", HANG_GUARD, || {
            let probe = unique_id("shim-ev-probe");
            run_ok(self.ctr().args(["containers", "create", IMAGE_REF, &probe]));
            run_ok(self.ctr().args(["containers", "rm", &probe]));
            std::fs::read_to_string(&events_file).is_ok_and(|t| t.contains("shim-ev-probe"))
        });
        (events, events_file)
    }

    /// `ctr task rm ID` and `ctr containers rm ID`; returns what task rm said (it reports a
    /// non-zero exit code from the shim's DeleteResponse).
    fn remove(&self, id: &str) -> Outcome {
        let out = run(self.ctr().args(["task", "rm", id]));
        assert_eq!(out.code, 0, "{out}");
        run_ok(self.ctr().args(["containers", "rm", id]));
        out
    }
}

/// `sh -c 'SCRIPT' sh CMD...`: runs `cmd` through a shell snippet (a pipe into it, a redirect).
fn through_shell(script: &str, cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(script).arg("sh").arg(cmd.get_program()).args(cmd.get_args());
    sh
}

#[test]
fn ctr_run_rm_with_the_berth_shim_passes_output_and_exit_codes() {
    let env = Env::start("shim-rm");
    let id = unique_id("shim-hello");
    let out = run(&mut env.run(&["--rm"], &id, &["echo", "hello from the shim"]));
    assert_eq!((out.code, out.stdout.as_str()), (0, "hello from the shim\n"), "{out}");
    env.assert_forgotten(&id, None);

    let id = unique_id("shim-exit");
    let out = run(&mut env.run(&["--rm"], &id, &["sh", "-c", "echo out; echo err >&2; exit 7"]));
    assert_eq!(out.code, 7, "the exit code was not passed on: {out}");
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.contains("err"), "stderr: {out}");
    env.assert_forgotten(&id, None);

    // Without a pid namespace of its own, the kernel leaves the init's children running when it
    // exits: the exit is still reported although a child holds the output pipe, and nothing of
    // the task survives its removal.
    let id = unique_id("shim-hostpid");
    let marker = format!("{}", 40_000 + std::process::id() % 20_000);
    let script = format!("sleep {marker} & echo started");
    let host_pid_ns = format!("pid:/proc/{}/ns/pid", std::process::id());
    let out = run(&mut env.run(&["--rm", "--with-ns", &host_pid_ns], &id, &["sh", "-c", &script]));
    assert_eq!((out.code, out.stdout.as_str()), (0, "started\n"), "{out}");
    wait_until("the init's orphaned child to be killed", HANG_GUARD, || !sleep_running(&marker));
    env.assert_forgotten(&id, None);
}

/// The host's processes that have a command line (not zombies, not kernel threads): pid and
/// NUL-separated arguments.
fn host_processes() -> impl Iterator<Item = (i32, Vec<u8>)> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| {
        let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok().filter(|c| !c.is_empty())?;
        Some((pid, cmdline))
    })
}

/// Whether a `sleep SECONDS` process runs on the host.
fn sleep_running(seconds: &str) -> bool {
    host_processes().any(|(_, c)| c == format!("sleep\0{seconds}\0").as_bytes())
}

/// The pids of the host's processes with `needle` in their command line.
fn pids_with_arg(needle: &str) -> Vec<i32> {
    host_processes()
        .filter(|(_, c)| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(pid, _)| pid)
        .collect()
}

#[test]
fn detached_task_execs_is_listed_killed_and_removed_through_the_berth_shim() {
    let env = Env::start("shim-detached");
    let id = unique_id("shim-d");
    run_ok(&mut env.run(&["-d"], &id, &["sh", "-c", DETACHED]));
    env.wait_task_status(&id, "RUNNING");
    env.assert_berth_shim_runs(&id);
    let shim = env.shim_of(&id);

    let out = run(&mut env.exec(&id, "probe", &["sh", "-c", EXEC_PROBE]));
    workload::assert_exec_outcome(&out, DETACHED);
    // A signal is reported as 128 + n (an exec: the container's init ignores its own SIGKILL).
    let out = run(&mut env.exec(&id, "killed", &["sh", "-c", "kill -9 $$"]));
    assert_eq!(out.code, 137, "{out}");

    let ps = run_ok(env.ctr().args(["task", "ps", &id]));
    let (pid, _) = env.task(&id);
    assert!(ps.lines().skip(1).any(|l| l.split_whitespace().next() == Some(&pid.to_string())), "task ps: {ps}");

    // Plain kill is SIGTERM, on which the init exits 7.
    run_ok(env.ctr().args(["task", "kill", &id]));
    env.wait_task_status(&id, "STOPPED");
    let rm = env.remove(&id);
    assert!(rm.stderr.contains(&format!("exit code {TERM_EXIT}")), "task rm did not see exit code 7: {rm}");
    env.assert_forgotten(&id, Some(shim));
}

/// Runs `cmd` with a terminal on its stdin (ctr -t needs one): script(1) provides it.
fn in_a_terminal(cmd: &Command) -> Outcome {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    run(Command::new("script").args(["-qec", &line, "/dev/null"]))
}

#[test]
fn terminal_task_and_exec_get_a_pty_and_their_exit_codes_through_the_berth_shim() {
    let env = Env::start("shim-tty");
    let id = unique_id("shim-tty");
    let out = in_a_terminal(&env.run(&["--rm", "-t"], &id, &["sh", "-c", "tty; echo tty-ok; exit 3"]));
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stdout.contains("/dev/pts/"), "the process has no pty: {out}");
    assert!(out.stdout.contains("tty-ok"), "{out}");
    env.assert_forgotten(&id, None);

    let id = unique_id("shim-tty-exec");
    run_ok(&mut env.run(&["-d"], &id, &["sleep", "300"]));
    env.wait_task_status(&id, "RUNNING");
    let shim = env.shim_of(&id);
    let mut exec = env.ctr();
    exec.args(["task", "exec", "-t", "--exec-id", "tty", "--fifo-dir"]).arg(&env.fifo_dir).arg(&id);
    exec.args(["sh", "-c", "tty; echo exec-tty-ok; exit 2"]);
    let out = in_a_terminal(&exec);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("/dev/pts/") && out.stdout.contains("exec-tty-ok"), "{out}");
    run_ok(env.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    env.wait_task_status(&id, "STOPPED");
    env.remove(&id);
    env.assert_forgotten(&id, Some(shim));
}

/// `ctr task exec [-t] --exec-id EXEC ID ARGS`.
fn exec_cmd(env: &Env, id: &str, exec_id: &str, tty: bool, args: &[&str]) -> Command {
    let mut exec = env.ctr();
    exec.args(["task", "exec"]);
    if tty {
        exec.arg("-t");
    }
    exec.args(["--exec-id", exec_id, "--fifo-dir"]).arg(&env.fifo_dir).arg(id).args(args);
    exec
}

#[test]
fn every_short_exec_prints_its_output_with_a_terminal_and_with_stdin() {
    let env = Env::start("shim-short-exec");
    let id = unique_id("shim-short");
    run_ok(&mut env.run(&["-d"], &id, &["sleep", "300"]));
    env.wait_task_status(&id, "RUNNING");
    let shim = env.shim_of(&id);
    let mut lost = Vec::new();
    for n in 0..20 {
        let line = format!("hello-{n}");
        let out = in_a_terminal(&exec_cmd(&env, &id, &format!("tty-{n}"), true, &["echo", &line]));
        if out.code != 0 || !out.stdout.contains(&line) {
            lost.push(format!("exec -t #{n}: {out}"));
        }
        // Without a terminal, with stdin still being written when the process exits.
        let exec = exec_cmd(&env, &id, &format!("stdin-{n}"), false, &["echo", &line]);
        let out = run(&mut through_shell("yes | \"$@\"", &exec));
        if out.code != 0 || out.stdout != format!("{line}\n") {
            lost.push(format!("exec with stdin #{n}: {out}"));
        }
    }
    assert!(lost.is_empty(), "{} of 40 execs lost their output:\n{}", lost.len(), lost.join("\n"));
    run_ok(env.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    env.wait_task_status(&id, "STOPPED");
    env.remove(&id);
    env.assert_forgotten(&id, Some(shim));
}

/// The stdin FIFO ctr made for exec `exec_id` (in a directory of its own under `fifo_dir`).
fn exec_stdin_fifo(fifo_dir: &Path, exec_id: &str) -> Option<PathBuf> {
    std::fs::read_dir(fifo_dir)
        .ok()?
        .flatten()
        .map(|dir| dir.path().join(format!("{exec_id}-stdin")))
        .find(|fifo| fifo.exists())
}

/// Opens `fifo` for writing without waiting: fails (ENXIO) unless someone reads it.
fn open_fifo_writer(fifo: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo)
}

/// The pid of the ctr process whose command line names `exec_id`.
fn ctr_pid(exec_id: &str) -> i32 {
    let argv0 = format!("{CTR}\0");
    host_processes()
        .find(|(_, c)| c.starts_with(argv0.as_bytes()) && c.windows(exec_id.len()).any(|w| w == exec_id.as_bytes()))
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("no ctr process for exec {exec_id}"))
}

/// What a pty's master can read now (its slave's output).
fn terminal_output(master: std::os::fd::OwnedFd) -> String {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::io::Read;
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("a non-blocking pty master");
    let mut output = Vec::new();
    // EAGAIN: nothing more; EIO: the slave was closed and everything was read.
    let _ = std::fs::File::from(master).read_to_end(&mut output);
    String::from_utf8_lossy(&output).into_owned()
}

fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; `pid` is a ctr this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
}

/// containerd's CRI writes an exec's stdin FIFO itself and, with a terminal, stops reading the
/// output as soon as a write fails: a shim that closed the FIFO at the exit cost the output. As
/// the runc shim, ours reads it (and drops what comes after the exit) until the exec is deleted.
#[test]
fn an_exec_reads_its_stdin_fifo_after_its_exit_until_it_is_deleted() {
    use std::io::Write;
    let env = Env::start("shim-exec-stdin");
    let (_events, events_file) = env.subscribe_events();
    let id = unique_id("shim-keep-stdin");
    run_ok(&mut env.run(&["-d"], &id, &["sleep", "300"]));
    env.wait_task_status(&id, "RUNNING");
    let shim = env.shim_of(&id);
    for tty in [false, true] {
        let exec_id = unique_id(if tty { "tty" } else { "pipe" });
        let mut exec = exec_cmd(&env, &id, &exec_id, tty, &["sh", "-c", "read line; echo got-$line"]);
        // ctr's own stdin stays open and silent, as a terminal nobody types into (a pty of the
        // test's, not script(1): script stops itself when its child is stopped).
        let (mut ctr, terminal, silent_pipe) = if tty {
            let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
            (Background::spawn_with_stdin(&mut exec, std::fs::File::from(pty.slave)), Some(pty.master), None)
        } else {
            let (silent, writer) = std::io::pipe().expect("a pipe");
            (Background::spawn_with_stdin(&mut exec, silent), None, Some(writer))
        };
        // The test is the second writer of the stdin FIFO, as containerd's CRI is its writer.
        let mut client = None;
        ctr.wait_for("the shim to read the exec's stdin FIFO", HANG_GUARD, || {
            client = exec_stdin_fifo(&env.fifo_dir, &exec_id).and_then(|fifo| open_fifo_writer(&fifo).ok());
            client.is_some()
        });
        let mut client = client.expect("the stdin FIFO's writer");
        // A stopped ctr cannot delete the exec after its exit.
        let pid = ctr_pid(&exec_id);
        send_signal(pid, libc::SIGSTOP);
        client.write_all(b"go\n").expect("writing the exec's stdin");
        let exit_event = |t: &str| t.lines().any(|l| l.contains("/tasks/exit") && l.contains(&exec_id));
        wait_until("the exec's exit event", HANG_GUARD, || {
            std::fs::read_to_string(&events_file).is_ok_and(|t| exit_event(&t))
        });
        let late = client.write_all(b"after the exit\n");
        send_signal(pid, libc::SIGCONT);
        assert!(late.is_ok(), "exec {exec_id} (terminal: {tty}): stdin closed at its exit: {late:?}");
        let out = ctr.wait();
        drop(silent_pipe);
        // With -t, ctr writes the output to its terminal.
        let output = terminal.map_or_else(|| out.stdout.clone(), terminal_output);
        assert!(out.code == 0 && output.contains("got-go"), "exec {exec_id} (terminal: {tty}): {output:?} {out}");
        // ctr deleted the exec: the shim closes the FIFO.
        wait_until("the shim to close the deleted exec's stdin FIFO", HANG_GUARD, || client.write_all(b"x").is_err());
    }
    run_ok(env.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    env.wait_task_status(&id, "STOPPED");
    env.remove(&id);
    env.assert_forgotten(&id, Some(shim));
}

/// containerd stops a task with SIGKILL to its init alone. An init in a shared pid namespace (a
/// pod's, the host's) leaves its children running, and they hold the output: the shim kills
/// them before it drains the output, so the exit is reported with nothing left running.
#[test]
fn a_killed_init_in_a_shared_pid_namespace_takes_its_children_down_before_its_exit() {
    let env = Env::start("shim-stop-children");
    let id = unique_id("shim-children");
    let log = env.scratch.path().join("children.log");
    let tag = format!("child-of-{id}");
    // Children that keep writing stdout and stderr: the output never idles for the drain's grace
    // period, so the copy ends only at EOF, when every child is dead.
    let script =
        format!("while :; do echo {tag}; sleep 0.1; done & while :; do echo {tag} >&2; sleep 0.1; done & wait");
    let host_pid_ns = format!("pid:/proc/{}/ns/pid", std::process::id());
    let uri = format!("file://{}", log.display());
    run_ok(&mut env.run(&["-d", "--log-uri", &uri, "--with-ns", &host_pid_ns], &id, &["sh", "-c", &script]));
    env.wait_task_status(&id, "RUNNING");
    let shim = env.shim_of(&id);
    wait_until("both children to write", HANG_GUARD, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.matches(&tag).count() >= 2)
    });
    assert!(pids_with_arg(&tag).len() >= 3, "the init and its two children do not run");

    run_ok(env.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    // STOPPED: the exit is final, which the shim makes it only once the output was copied.
    env.wait_task_status(&id, "STOPPED");
    let left = pids_with_arg(&tag);
    assert!(left.is_empty(), "the exit of {id} was reported while its children {left:?} still ran");
    let rm = env.remove(&id);
    assert!(rm.stderr.contains("exit code 137"), "{rm}");
    env.assert_forgotten(&id, Some(shim));
}

#[test]
fn stdin_reaches_the_task_and_100mb_of_output_arrive_complete() {
    let env = Env::start("shim-io");
    let id = unique_id("shim-stdin");
    let ctr = env.run(&["--rm"], &id, &["sh", "-c", "read line; echo got:$line; wc -l"]);
    let out = run(&mut through_shell("printf 'hi\\ntwo\\nthree\\n' | \"$@\"", &ctr));
    assert_eq!((out.code, out.stdout.as_str()), (0, "got:hi\n2\n"), "{out}");
    env.assert_forgotten(&id, None);

    let id = unique_id("shim-big");
    let file = env.scratch.path().join("big.out");
    const SIZE: u64 = 100_000_000;
    let ctr = env.run(&["--rm"], &id, &["sh", "-c", &format!("yes 0123456789abcdef | head -c {SIZE}; echo; echo END")]);
    let out = run(&mut through_shell(&format!("\"$@\" > '{}'", file.display()), &ctr));
    assert_eq!(out.code, 0, "{out}");
    let len = std::fs::metadata(&file).expect("output file").len();
    assert_eq!(len, SIZE + "\nEND\n".len() as u64, "output lost or duplicated");
    let text = std::fs::read(&file).expect("output");
    // 100_000_000 bytes = 5882352 whole lines of 17 bytes, then the first 16 bytes of one more.
    assert!(text.ends_with(b"\n0123456789abcdef\nEND\n"), "the output's end is wrong");
    let _ = std::fs::remove_file(&file);
    env.assert_forgotten(&id, None);
}

#[test]
fn file_and_binary_log_uris_get_the_output() {
    let env = Env::start("shim-logs");
    let log = env.scratch.path().join("task.log");
    let id = unique_id("shim-file");
    let uri = format!("file://{}", log.display());
    let out =
        run(&mut env.run(&["--rm", "--log-uri", &uri], &id, &["sh", "-c", "echo to-out; echo to-err >&2; exit 4"]));
    assert_eq!(out.code, 4, "{out}");
    let text = std::fs::read_to_string(&log).expect("the log file");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["to-err", "to-out"], "log file: {text:?}");
    env.assert_forgotten(&id, None);

    // A logging binary as containerd's runc shim starts one: fd 3 = stdout, fd 4 = stderr, fd 5
    // closed when ready; the URI's query as arguments; the container in the environment.
    let dir = env.scratch.subdir("logger");
    let logger = dir.join("logger.sh");
    let d = dir.display();
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\nexec 5>&-\ncat <&3 >{d}/out &\ncat <&4 >{d}/err &\n\
             echo \"$CONTAINER_ID $CONTAINER_NAMESPACE $*\" >{d}/args\nwait\ntouch {d}/done\n"
        ),
    )
    .expect("writing the logger");
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod logger");
    let id = unique_id("shim-binary");
    let uri = format!("binary://{}?tag=web&verbose", logger.display());
    let out = run(&mut env.run(&["--rm", "--log-uri", &uri], &id, &["sh", "-c", "echo b-out; echo b-err >&2; exit 5"]));
    assert_eq!(out.code, 5, "{out}");
    wait_until("the logger to finish", HANG_GUARD, || dir.join("done").exists());
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!((read("out").as_str(), read("err").as_str()), ("b-out\n", "b-err\n"));
    assert_eq!(read("args"), format!("{id} {NS} tag web verbose\n"));
    env.assert_forgotten(&id, None);
}

#[test]
fn pause_resume_metrics_oom_and_events_through_the_berth_shim() {
    let env = Env::start("shim-events");
    let (_events, events_file) = env.subscribe_events();
    let id = unique_id("shim-ev");
    run_ok(&mut env.run(&["-d"], &id, &["sleep", "300"]));
    env.wait_task_status(&id, "RUNNING");
    env.assert_berth_shim_runs(&id);
    let shim = env.shim_of(&id);
    run_ok(env.ctr().args(["task", "pause", &id]));
    assert_eq!(env.task(&id).1, "PAUSED");
    assert_eq!(berth::status(&shim_root(), &id).as_deref(), Some("paused"));
    run_ok(env.ctr().args(["task", "resume", &id]));
    assert_eq!(env.task(&id).1, "RUNNING");
    // Paused behind the shim's back, with the runtime itself: containerd still sees it.
    let root = shim_root();
    let runtime = |verb: &str| {
        run_ok(Command::new(runtime_bin()).arg("--root").arg(&root).args([verb, id.as_str()]));
    };
    runtime("pause");
    assert_eq!(env.task(&id).1, "PAUSED");
    runtime("resume");
    assert_eq!(env.task(&id).1, "RUNNING");

    let metrics: Value = serde_json::from_str(&run_ok(env.ctr().args(["task", "metrics", "--format", "json", &id])))
        .expect("metrics JSON");
    assert!(metrics["pids"]["current"].as_u64().unwrap_or(0) >= 1, "no pids in the metrics: {metrics}");
    assert!(metrics["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0, "no memory usage: {metrics}");
    assert!(metrics["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "no cpu usage: {metrics}");

    let out = run(&mut env.exec(&id, "ev-exec", &["true"]));
    assert_eq!(out.code, 0, "{out}");
    run_ok(env.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    env.wait_task_status(&id, "STOPPED");
    env.remove(&id);

    // Every task event, with this container's id, in lifecycle order.
    let topics = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let ours = || -> Vec<String> {
        std::fs::read_to_string(&events_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"container_id\":\"{id}\"")))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")).map(str::to_string))
            .collect()
    };
    wait_until("the delete event", HANG_GUARD, || ours().iter().any(|t| t == "/tasks/delete"));
    assert_eq!(ours(), topics, "events of {id}");
    let text = std::fs::read_to_string(&events_file).unwrap_or_default();
    let exit_137 = format!("\"container_id\":\"{id}\",\"id\":\"{id}\"");
    assert!(
        text.lines().any(|l| l.contains("/tasks/exit") && l.contains(&exit_137) && l.contains("\"exit_status\":137")),
        "no TaskExit with status 137 for the init of {id}:\n{text}"
    );
    env.assert_forgotten(&id, Some(shim));

    // An OOM kill in the container's memory cgroup is a TaskOOM event.
    let oom = unique_id("shim-oom");
    let out = run(&mut env.run(
        &["--rm", "--memory-limit", "20000000"],
        &oom,
        &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=60M count=1; echo dd=$?"],
    ));
    assert_eq!(out.stdout.trim(), "dd=137", "dd was not OOM-killed: {out}");
    wait_until("the OOM event", HANG_GUARD, || {
        std::fs::read_to_string(&events_file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("/tasks/oom") && l.contains(&format!("\"container_id\":\"{oom}\"")))
    });
    env.assert_forgotten(&oom, None);
}

/// The pid of the containerd daemon whose config is in `config_dir`, from /proc.
fn containerd_pid(config_dir: &Path) -> i32 {
    let needle = config_dir.join("config.toml");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == Path::new("/usr/bin/containerd"))
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*needle.to_string_lossy()))
        })
        .expect("our containerd's pid")
}

#[test]
fn shim_and_task_survive_a_containerd_kill_and_restart() {
    let mut env = Env::start("shim-restart");
    let id = unique_id("shim-restart");
    run_ok(&mut env.run(&["-d"], &id, &["sh", "-c", DETACHED]));
    env.wait_task_status(&id, "RUNNING");
    let (pid, _) = env.task(&id);
    let shim = env.shim_of(&id);

    let dir = env.scratch.path().join("containerd");
    let old = containerd_pid(&dir);
    // SAFETY: kill has no memory-safety preconditions; `old` is the daemon this test started.
    unsafe { libc::kill(old, libc::SIGKILL) };
    // It is this process's child: reap it, so that it is really gone.
    // SAFETY: waitpid writes only to the local status.
    unsafe { libc::waitpid(old, &mut 0, 0) };
    assert!(Path::new(&format!("/proc/{}", shim.0)).exists(), "the shim died with containerd");
    let restarted = Containerd::start(&dir);
    // The killed daemon's handle must not tear down what the restarted one now manages.
    std::mem::forget(std::mem::replace(&mut env.containerd, restarted));

    assert_eq!(env.task(&id), (pid, "RUNNING".to_string()), "containerd lost the task after its restart");
    assert_eq!(env.shim_of(&id), shim, "a new shim serves the task after the restart");
    let out = run(&mut env.exec(&id, "after-restart", &["sh", "-c", EXEC_PROBE]));
    workload::assert_exec_outcome(&out, DETACHED);
    run_ok(env.ctr().args(["task", "kill", &id]));
    env.wait_task_status(&id, "STOPPED");
    let rm = env.remove(&id);
    assert!(rm.stderr.contains(&format!("exit code {TERM_EXIT}")), "{rm}");
    env.assert_forgotten(&id, Some(shim));
}

#[test]
fn a_killed_shim_is_detected_and_cleaned_up_by_delete() {
    let env = Env::start("shim-kill");
    let id = unique_id("shim-killed");
    run_ok(&mut env.run(&["-d"], &id, &["sleep", "300"]));
    env.wait_task_status(&id, "RUNNING");
    env.assert_berth_shim_runs(&id);
    let (init, _) = env.task(&id);
    let shim = env.shim_of(&id);

    // SAFETY: kill has no memory-safety preconditions; shim.0 is the shim of our task.
    unsafe { libc::kill(shim.0, libc::SIGKILL) };
    // containerd notices the closed connection and runs `containerd-shim-berth-v2 delete`.
    wait_until("containerd to drop the task of the dead shim", HANG_GUARD, || env.containerd.task(NS, &id).is_none());
    wait_until("the container's init to be killed", HANG_GUARD, || {
        std::fs::read_to_string(format!("/proc/{init}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    run_ok(env.ctr().args(["containers", "rm", &id]));
    env.assert_forgotten_but_fifos(&id, Some(shim));
}

#[test]
fn the_berth_shim_drives_runc_when_the_runtime_options_name_it() {
    // Installed as containerd's runc shim, ours gets ctr's runc options (BinaryName = runc).
    let env = Env::with_shim_named("shim-runc", "containerd-shim-runc-v2");
    let runc = berth_integration::engines::engine_binary("/usr/sbin/runc");
    let id = unique_id("shim-runc");
    run_ok(&mut env.run_with(
        "io.containerd.runc.v2",
        &["-d", "--runc-binary", &runc.to_string_lossy()],
        &id,
        &["sh", "-c", DETACHED],
    ));
    env.wait_task_status(&id, "RUNNING");
    let shim = env.shim_of(&id);
    let exe = std::fs::read_link(format!("/proc/{}/exe", shim.0)).expect("shim exe");
    assert_eq!(exe, shim_bin().canonicalize().expect("shim path"), "the task is not served by our shim");
    // runc, not berth-runtime, keeps the container: runc reads its own state back.
    let state: Value =
        serde_json::from_str(&run_ok(Command::new(&runc).arg("--root").arg(shim_root()).args(["state", &id])))
            .expect("runc state JSON");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].as_i64(), Some(i64::from(env.task(&id).0)), "{state}");
    let on_disk = std::fs::read_to_string(shim_root().join(&id).join("state.json")).expect("runc's state.json");
    assert!(on_disk.contains("init_process_pid"), "not runc's state: {on_disk}");

    let out = run(&mut env.exec(&id, "via-runc", &["sh", "-c", EXEC_PROBE]));
    workload::assert_exec_outcome(&out, DETACHED);
    run_ok(env.ctr().args(["task", "kill", &id]));
    env.wait_task_status(&id, "STOPPED");
    let rm = env.remove(&id);
    assert!(rm.stderr.contains(&format!("exit code {TERM_EXIT}")), "{rm}");
    assert!(!shim_root().join(&id).exists(), "runc's state of {id} is left");
    wait_until("the shim to exit", HANG_GUARD, || !Path::new(&format!("/proc/{}", shim.0)).exists());
    assert!(!shim.1.exists(), "the shim left its socket");
}
