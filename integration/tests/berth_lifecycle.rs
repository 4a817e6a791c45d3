//! Container lifecycle through `berth` and berthd as a user sees it: a terminal session with
//! detach and attach, berthd and shim crashes, restart policies, many containers at once, and
//! containerd's runc shim in place of berth's. Run as root, with the binaries of this build.

use berth_integration::engines::berthd::berth_bin;
use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{describe, run};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a test waits for something berthd does in the background (an exit recorded, a
/// restart): a hang guard, not a performance check.
const SETTLE: Duration = Duration::from_secs(15);

/// The busybox image's docker-archive, built once per test binary under cargo's tmp directory.
fn busybox_archive() -> PathBuf {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE
        .get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-lifecycle-image")))
        .docker_archive()
}

/// A private berthd with `localhost/busybox:latest` loaded.
fn berthd_with_busybox() -> Berthd {
    let b = Berthd::start();
    let archive = busybox_archive();
    b.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
    b
}

/// `berth run -d args…`: the new container's full id.
fn run_detached(b: &Berthd, args: &[&str]) -> String {
    let mut full = vec!["run", "-d"];
    full.extend_from_slice(args);
    let id = b.ok(&full).trim().to_string();
    assert_eq!(id.len(), 64, "run -d printed no container id: {id:?}");
    id
}

/// `berth inspect -f TEMPLATE container`, trimmed.
fn inspect(b: &Berthd, container: &str, template: &str) -> String {
    b.ok(&["inspect", "-f", template, container]).trim().to_string()
}

/// Polls `done` every 100 ms until it returns `Some`; panics naming `what` after `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True while `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Processes whose command line contains every one of `needles`: (pid, command line).
fn processes_matching(needles: &[&str]) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if needles.iter().all(|n| cmdline.contains(n)) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// The shim serving container `id` (a cmdline with `-id <id>`): (pid, command line).
fn shim_of(id: &str) -> (u32, String) {
    let id_arg = format!("-id {id} ");
    let shims = processes_matching(&["containerd-shim", &id_arg]);
    assert_eq!(shims.len(), 1, "shim processes of {id}: {shims:?}");
    shims.into_iter().next().expect("one shim")
}

/// Resident memory of `pid` in KiB (VmRSS), 0 if it is gone.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The numbers N of the `lineN` lines in `output`, in order.
fn line_numbers(output: &str) -> Vec<u64> {
    output.lines().filter_map(|l| l.trim().strip_prefix("line")?.parse().ok()).collect()
}

/// Runs `berth args…` on `threads` threads for each of `items`; every call must succeed.
/// Returns the stdout of each, in no particular order.
fn berth_concurrently(
    b: &Berthd,
    threads: usize,
    items: &[String],
    args: impl Fn(&str) -> Vec<String> + Sync,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let outputs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let args = args(item);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = b.ok(&args);
                    outputs.lock().expect("outputs lock").push(out);
                }
            });
        }
    });
    outputs.into_inner().expect("outputs lock")
}

/// Removes `ids` (`rm -f`) and asserts they left nothing behind.
fn remove_and_check_leftovers(b: &Berthd, ids: &[String]) {
    for id in ids {
        b.ok(&["rm", "-f", id]);
    }
    let left = b.leftovers(ids);
    assert!(left.is_empty(), "containers left behind: {left:#?}");
}

#[test]
fn runc_shim_runs_execs_stops_and_propagates_exit_codes() {
    let b = berthd_with_busybox();
    let out = b.ok(&["run", "--rm", "--runtime", "runc", IMAGE_REF, "echo", "via-runc"]);
    assert_eq!(out.trim(), "via-runc");
    let out = b.berth(&["run", "--rm", "--runtime", "runc", IMAGE_REF, "sh", "-c", "exit 9"]);
    assert_eq!(out.code, 9, "exit code through the runc shim: {out}");

    let id = run_detached(&b, &["--runtime", "io.containerd.runc.v2", IMAGE_REF, "sleep", "1000"]);
    let (_, shim) = shim_of(&id);
    assert!(shim.starts_with("/usr/bin/containerd-shim-runc-v2 "), "the container's shim is not runc's: {shim}");
    assert_eq!(inspect(&b, &id, "{{.HostConfig.Runtime}}"), "io.containerd.runc.v2");
    assert_eq!(b.ok(&["exec", &id, "echo", "exec-via-runc"]).trim(), "exec-via-runc");
    b.ok(&["stop", "-t", "1", &id]);
    assert_eq!(inspect(&b, &id, "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    remove_and_check_leftovers(&b, &[id]);
}

#[test]
fn killing_a_shim_marks_its_container_exited_and_ends_its_processes() {
    let b = berthd_with_busybox();
    let id = run_detached(&b, &[IMAGE_REF, "sh", "-c", "sleep 1001 & exec sleep 1000"]);
    let init: u32 = inspect(&b, &id, "{{.State.Pid}}").parse().expect("State.Pid is a number");
    let child = poll("the container's second process", SETTLE, || {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        children.split_whitespace().next().and_then(|pid| pid.parse::<u32>().ok())
    });
    assert!(
        process_alive(init) && process_alive(child),
        "the container's processes {init} and {child} are not running"
    );
    let (shim, _) = shim_of(&id);

    // SAFETY: kill has no memory-safety preconditions; the pid was just read from /proc.
    assert_eq!(unsafe { libc::kill(shim as libc::pid_t, libc::SIGKILL) }, 0, "kill -9 {shim}");

    poll("the container to be seen exited", SETTLE, || {
        (inspect(&b, &id, "{{.State.Status}}") == "exited").then_some(())
    });
    let listed = b.ok(&["ps", "-a", "--no-trunc", "--filter", &format!("id={id}"), "--format", "{{.Status}}"]);
    assert!(listed.trim().starts_with("Exited ("), "ps -a shows the container as: {listed}");
    assert!(b.ok(&["ps", "-q", "--no-trunc"]).trim().is_empty(), "ps still lists a running container");
    poll("the container's processes to be gone", SETTLE, || {
        (!process_alive(init) && !process_alive(child)).then_some(())
    });
    b.ok(&["rm", &id]);
    let left = b.leftovers(&[id]);
    assert!(left.is_empty(), "the container left behind: {left:#?}");
}

#[test]
fn on_failure_restarts_up_to_its_limit_then_stays_exited() {
    let b = berthd_with_busybox();
    let id = run_detached(&b, &["--restart", "on-failure:2", IMAGE_REF, "sh", "-c", "exit 3"]);
    let template = "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}";
    poll("two restarts and a final exit", SETTLE, || (inspect(&b, &id, template) == "2 exited 3").then_some(()));
    // Past the back-off a third start would have had (400 ms), nothing restarts it.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inspect(&b, &id, template), "2 exited 3");
    remove_and_check_leftovers(&b, &[id]);
}

#[test]
fn always_restarts_until_stopped_and_a_manual_kill_counts_as_a_stop() {
    let b = berthd_with_busybox();
    // Its first two runs exit at once; the third stays up, so that `stop` meets a running
    // process (a stop during the back-off between two runs is the next container's case).
    let runs = tempfile::tempdir().expect("tempdir for the run counter");
    let volume = format!("{}:/runs", runs.path().display());
    let script = "n=$(($(cat /runs/n 2>/dev/null || echo 0) + 1)); echo $n > /runs/n; \
                  [ $n -ge 3 ] || exit 0; trap 'exit 0' TERM; touch /runs/trapped; while :; do sleep 0.1; done";
    let restarting = run_detached(&b, &["--restart", "always", "-v", &volume, IMAGE_REF, "sh", "-c", script]);
    let template = "{{.RestartCount}} {{.State.Status}}";
    let trapped = runs.path().join("trapped");
    poll("two restarts of an always container, the third run handling SIGTERM", SETTLE, || {
        (trapped.exists() && inspect(&b, &restarting, template) == "2 running").then_some(())
    });
    b.ok(&["stop", "-t", "5", &restarting]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(inspect(&b, &restarting, template), "2 exited", "an always container after stop");
    assert_eq!(inspect(&b, &restarting, "{{.State.ExitCode}}"), "0");

    // A stop while it waits to be restarted ends the restarts too.
    let bouncing = run_detached(&b, &["--restart", "always", IMAGE_REF, "sh", "-c", "exit 0"]);
    poll("an always container between two runs", SETTLE, || {
        (inspect(&b, &bouncing, "{{.State.Status}}") == "restarting").then_some(())
    });
    b.ok(&["stop", &bouncing]);
    let count = inspect(&b, &bouncing, "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        inspect(&b, &bouncing, "{{.RestartCount}} {{.State.Status}}"),
        format!("{count} exited"),
        "an always container stopped while restarting"
    );

    let killed = run_detached(&b, &["--restart", "always", IMAGE_REF, "sleep", "1000"]);
    b.ok(&["kill", &killed]);
    assert_eq!(b.ok(&["wait", &killed]).trim(), "137");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        inspect(&b, &killed, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"),
        "0 exited 137",
        "an always container restarted after berth kill"
    );
    remove_and_check_leftovers(&b, &[restarting, bouncing, killed]);
}

#[test]
fn containers_outlive_a_berthd_crash_and_exits_meanwhile_are_recorded() {
    let mut b = berthd_with_busybox();
    let counting = "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.2; done";
    let long = run_detached(&b, &[IMAGE_REF, "sh", "-c", counting]);
    let short = run_detached(&b, &[IMAGE_REF, "sh", "-c", "sleep 2; exit 5"]);
    let pid = inspect(&b, &long, "{{.State.Pid}}");
    let last_before = poll("a few lines logged", SETTLE, || {
        line_numbers(&b.ok(&["logs", &long])).last().copied().filter(|n| *n >= 3)
    });

    b.kill9();
    std::thread::sleep(Duration::from_secs(3));
    b.restart();

    assert_eq!(inspect(&b, &long, "{{.State.Status}} {{.State.Pid}}"), format!("running {pid}"));
    assert!(b.ok(&["ps", "-q", "--no-trunc"]).lines().any(|l| l == long), "ps does not list the running container");
    assert_eq!(b.ok(&["exec", &long, "echo", "alive"]).trim(), "alive");
    // The lines written while berthd was down (about 15; fewer on a loaded machine) are in the
    // log, none lost.
    let logged = line_numbers(&b.ok(&["logs", &long]));
    let last = *logged.last().expect("lines logged");
    assert!(last > last_before + 5, "no lines logged while berthd was down: last before {last_before}, now {last}");
    assert_eq!(logged, (0..=last).collect::<Vec<_>>(), "the log has gaps or repeats");
    // logs -f streams lines written from now on.
    let follow = run(Command::new("timeout")
        .arg("3")
        .arg(berth_bin())
        .arg("-H")
        .arg(b.host())
        .args(["logs", "-f", "--tail", "1", &long]));
    assert_eq!(follow.code, 124, "logs -f ended before timeout stopped it: {follow}");
    let followed = line_numbers(&follow.stdout);
    assert!(followed.len() >= 3 && followed[0] >= last, "logs -f after a berthd restart streamed: {follow}");

    // The exit that happened while berthd was down is recorded, with its code, before berthd
    // answers anyone.
    assert_eq!(inspect(&b, &short, "{{.State.Status}} {{.State.ExitCode}}"), "exited 5");
    let status = b.ok(&["ps", "-a", "--no-trunc", "--filter", &format!("id={short}"), "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (5)"), "ps -a shows: {status}");
    assert_eq!(b.ok(&["wait", &short]).trim(), "5");

    // A clean stop and start of berthd leaves the container running too.
    b.restart();
    assert_eq!(inspect(&b, &long, "{{.State.Status}} {{.State.Pid}}"), format!("running {pid}"));
    assert_eq!(b.ok(&["exec", &long, "echo", "alive"]).trim(), "alive");
    remove_and_check_leftovers(&b, &[long, short]);
}

#[test]
fn a_hundred_containers_start_concurrently_and_all_are_removed() {
    const CONTAINERS: usize = 100;
    const THREADS: usize = 20;
    let b = berthd_with_busybox();
    let slots: Vec<String> = (0..CONTAINERS).map(|n| n.to_string()).collect();
    let started = Instant::now();
    // Unnamed: concurrent creates that draw the same generated name get another one.
    let ids = berth_concurrently(&b, THREADS, &slots, |_| {
        ["run", "-d", IMAGE_REF, "sleep", "1000"].map(String::from).to_vec()
    });
    let took = started.elapsed();
    let ids: Vec<String> = ids.iter().map(|id| id.trim().to_string()).collect();
    assert!(ids.iter().all(|id| id.len() == 64), "run -d printed: {ids:?}");

    let running = b.ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(running.lines().count(), CONTAINERS, "ps -q lists: {running}");
    for id in &ids {
        assert!(running.lines().any(|l| l == id), "{id} is not running");
    }
    let socket = b.socket().display().to_string();
    let shims = processes_matching(&["containerd-shim-berth-v2", &socket]);
    let shims_kib: u64 = shims.iter().map(|(pid, _)| rss_kib(*pid)).sum();
    eprintln!(
        "{CONTAINERS} concurrent starts ({THREADS} at a time) took {took:?}; RSS: berthd {} KiB, {} shims {} KiB",
        rss_kib(b.pid()),
        shims.len(),
        shims_kib
    );

    berth_concurrently(&b, THREADS, &ids, |id| ["rm", "-f", id].map(String::from).to_vec());
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty(), "containers left after rm -f");
    let left = b.leftovers(&ids);
    assert!(left.is_empty(), "containers left behind: {left:#?}");
}

/// A pseudo-terminal: the test holds the master side, a `berth` command gets the slave side as
/// its controlling terminal.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// Everything read from the master so far.
    seen: Vec<u8>,
    /// Where the next `expect` starts looking in `seen`.
    cursor: usize,
}

impl Pty {
    fn open(rows: u16, cols: u16) -> Pty {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: master and slave are valid out-pointers; a null name and termios are allowed;
        // size points to a live winsize.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these descriptors; nothing else owns them.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: fcntl on a descriptor we own, with integer arguments only.
        let nonblocking = unsafe {
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
        };
        assert_eq!(nonblocking, 0, "O_NONBLOCK on the pty master: {}", std::io::Error::last_os_error());
        Pty { master, slave, seen: Vec::new(), cursor: 0 }
    }

    /// Sets the window size; the kernel sends SIGWINCH to the terminal's foreground process group.
    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which points to a live one.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Starts `cmd` in a new session whose controlling terminal is this pty.
    fn spawn(&self, cmd: &mut Command) -> Session {
        let slave = || self.slave.try_clone().expect("dup of the pty slave");
        cmd.stdin(slave()).stdout(slave()).stderr(slave());
        // SAFETY: the closure runs between fork and exec and only makes the async-signal-safe
        // calls setsid and ioctl on descriptor 0 (the slave); it touches no parent memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", describe(cmd)));
        Session { child, command: describe(cmd) }
    }

    /// Types `keys` on the terminal.
    fn type_keys(&self, keys: &[u8]) {
        let mut master = std::fs::File::from(self.master.try_clone().expect("dup of the pty master"));
        let mut rest = keys;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !rest.is_empty() {
            match master.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("typing on the pty: {e}"),
            }
        }
    }

    /// Reads the terminal until `needle` appears after what earlier calls matched; false after
    /// `timeout`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let mut master = std::fs::File::from(self.master.try_clone().expect("dup of the pty master"));
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = find(&self.seen[self.cursor..], needle.as_bytes()) {
                self.cursor += at + needle.len();
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pollfd = libc::pollfd { fd: self.master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: pollfd points to one live pollfd, and the count says one.
            unsafe { libc::poll(&mut pollfd, 1, left.as_millis().min(100) as libc::c_int) };
            match master.read(&mut buf) {
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: no process has the slave open any more; nothing more will come.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Types `line` and Enter until `needle` appears (input typed before the other end reads
    /// it, or before a resize took effect, gets another chance); panics after five tries.
    fn run_until(&mut self, line: &str, needle: &str) {
        for _ in 0..5 {
            self.type_keys(format!("{line}\r").as_bytes());
            if self.wait_for(needle, Duration::from_secs(2)) {
                return;
            }
        }
        panic!(
            "typing {line:?} never showed {needle:?}; the terminal showed:\n{}",
            String::from_utf8_lossy(&self.seen)
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A command running on a [`Pty`]; killed and reaped if the test ends before it does.
struct Session {
    child: Child,
    command: String,
}

impl Session {
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {timeout:?}", self.command);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn terminal_session_sizes_detaches_and_reattaches() {
    let b = berthd_with_busybox();
    let mut pty = Pty::open(40, 100);
    let mut session = pty.spawn(&mut b.berth_cmd(&["run", "-it", "--name", "tty", IMAGE_REF, "sh"]));
    pty.run_until("stty size", "40 100");
    // The shell, not the terminal's echo, computes the 3.
    pty.run_until("echo typed-$((1+2))", "typed-3");
    pty.resize(50, 120);
    pty.run_until("stty size", "50 120");

    pty.type_keys(&[0x10, 0x11]);
    let status = session.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "berth run after ctrl-p ctrl-q: {status}");
    let id = inspect(&b, "tty", "{{.Id}}");
    assert_eq!(inspect(&b, &id, "{{.State.Status}}"), "running", "the container after detaching");

    let mut pty = Pty::open(50, 120);
    let mut attached = pty.spawn(&mut b.berth_cmd(&["attach", "tty"]));
    // Quoted so that the terminal's echo of the command does not match.
    pty.run_until("echo ba''ck", "back");
    pty.type_keys(b"exit\r");
    let status = attached.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "berth attach after exit: {status}");
    assert_eq!(inspect(&b, &id, "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    remove_and_check_leftovers(&b, &[id]);
}
