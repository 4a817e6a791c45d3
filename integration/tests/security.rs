//! Known container-escape classes, reproduced: each test makes the attack for real and shows it
//! fails, and is written so that it fails loudly if the protection were removed.
//!
//! - CVE-2019-5736: overwriting the runtime binary through `/proc/<pid>/exe`.
//! - CVE-2024-21626: a host fd leaked into the container, used as the process cwd.
//! - Symlinks in the rootfs (or in the bundle) that would send a mount or the root outside.

use berth_integration::{host_mounts_containing, runtime_bin, unique_id, wait_until, Bundle, Runtime};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What `readlink /proc/<pid>/exe` shows for a process running the runtime's sealed memfd copy.
const MEMFD_EXE: &str = "/memfd:berth-runtime";

fn init_pid(rt: &Runtime, id: &str) -> i32 {
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", id])).expect("state json");
    state["pid"].as_i64().expect("pid") as i32
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        !matches!(state, Some('Z') | Some('X') | None)
    })
}

fn open_raw(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).expect("path without NUL");
    // SAFETY: open(2) on a valid NUL-terminated path; the fd returned is owned by nobody else.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open(2) and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn seals(fd: &OwnedFd) -> i32 {
    // SAFETY: F_GET_SEALS on an open fd takes no pointers.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) }
}

/// How a runtime process's exe is kept from being written.
#[derive(Debug, PartialEq)]
enum Protection {
    /// A copy in a memfd with every write seal (the fallback).
    SealedMemfd,
    /// The binary seen through a private overlayfs with no upper layer (runc 1.2's way).
    ReadOnlyOverlay,
}

impl Protection {
    /// What writing to the exe gives once no process runs it any more.
    fn errno_after_exit(&self) -> i32 {
        match self {
            Protection::SealedMemfd => libc::EPERM,
            Protection::ReadOnlyOverlay => libc::EROFS,
        }
    }
}

/// Checks that `held` (an fd of a runtime process's exe) is not the host binary `bin` and tells
/// which protection it has; panics if it has none.
fn protection_of(held: &OwnedFd, bin: &Path) -> Protection {
    use std::os::unix::fs::MetadataExt;
    let exe = File::from(held.try_clone().unwrap()).metadata().unwrap();
    let host = std::fs::metadata(bin).unwrap();
    assert_ne!((exe.dev(), exe.ino()), (host.dev(), host.ino()), "the process runs the host binary itself");
    assert_eq!(exe.len(), host.len(), "the copy is not the whole runtime binary");
    let s = seals(held);
    if s >= 0 {
        let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        assert_eq!(s & want, want, "memfd seals are {s:#x}");
        return Protection::SealedMemfd;
    }
    // SAFETY: fstatfs/fstatvfs fill the zeroed structs they are given, for an open fd.
    let (fs, vfs) = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        let mut vfs: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::fstatfs(held.as_raw_fd(), &mut fs), 0, "fstatfs");
        assert_eq!(libc::fstatvfs(held.as_raw_fd(), &mut vfs), 0, "fstatvfs");
        (fs, vfs)
    };
    assert_eq!(fs.f_type, 0x794c_7630, "the exe is neither a sealed memfd nor on overlayfs");
    assert_ne!(vfs.f_flag & libc::ST_RDONLY, 0, "the exe's overlay is not read-only");
    Protection::ReadOnlyOverlay
}

/// The protection this host should give: the private overlay where the kernel has overlayfs.
fn expected_protection() -> Protection {
    let fss = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fss.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        Protection::ReadOnlyOverlay
    } else {
        Protection::SealedMemfd
    }
}

/// The classic CVE-2019-5736 write: reopen a read-only fd of the exe for writing through
/// /proc/self/fd and write to it. The bytes written are the ones already there, so that even if
/// the protection were gone this test could not corrupt the binary it checks.
fn write_through_reopen(readable: &OwnedFd) -> std::io::Result<()> {
    let w = open_raw(&format!("/proc/self/fd/{}", readable.as_raw_fd()), libc::O_WRONLY)?;
    let mut head = [0u8; 4];
    // SAFETY: pread into a valid 4-byte buffer.
    let n = unsafe { libc::pread(readable.as_raw_fd(), head.as_mut_ptr().cast(), head.len(), 0) };
    assert_eq!(n, 4, "reading the exe: {}", std::io::Error::last_os_error());
    // SAFETY: pwrite from a valid 4-byte buffer.
    let n = unsafe { libc::pwrite(w.as_raw_fd(), head.as_ptr().cast(), head.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The host binary as it is now: its bytes and mtime.
fn snapshot(bin: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = std::fs::read(bin).expect("reading the runtime binary");
    let mtime = std::fs::metadata(bin).and_then(|m| m.modified()).expect("mtime");
    (bytes, mtime)
}

/// Copies the dynamic loader and libraries `bin` needs into `rootfs` at the same paths, the way
/// any glibc-based image would have them, so the runtime can actually run inside the container.
fn install_dynamic_deps(bin: &Path, rootfs: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("running ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(lib) = lib.filter(|l| l.starts_with('/')) else { continue };
        let dest = rootfs.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir for library");
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("copying {lib}: {e}"));
    }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo(3) on a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// CVE-2019-5736: the container's entrypoint is a script `#!/proc/self/exe`, so init's execve runs
/// *the runtime binary* as the container's pid 1. Every way to write to it then fails, from inside
/// the container and from outside, while it runs and after it exits, because what it runs is a
/// protected copy (a private read-only overlay or a sealed memfd), never the host file.
#[test]
fn runtime_reexecuted_inside_the_container_is_a_protected_copy_and_the_host_binary_is_untouched() {
    let rt = Runtime::new();
    let bin = runtime_bin();
    // The interpreter line gives the runtime `--root /evil` and process.args[1..] follow: a log
    // on a fifo makes the runtime block in logging::init until the test reads it.
    let bundle = Bundle::new(&["/evil", "--log", "/blockfifo", "state", "no-such-container"]);
    let rootfs = bundle.rootfs();
    std::fs::write(rootfs.join("evil"), "#!/proc/self/exe --root\n").unwrap();
    std::fs::set_permissions(rootfs.join("evil"), std::fs::Permissions::from_mode(0o755)).unwrap();
    mkfifo(&rootfs.join("blockfifo"));
    install_dynamic_deps(&bin, &rootfs);
    let before = snapshot(&bin);

    let id = unique_id("cve-2019-5736");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let pid = init_pid(&rt, &id);
    rt.ok(&["start", &id]);
    // init has exec'd the script: pid 1 of the container is now the runtime.
    wait_until("the runtime to run as the container's pid 1", Duration::from_secs(10), || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"/proc/self/exe\0--root\0/evil\0"))
    });
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, bin, "the container's pid 1 runs the host binary");

    // The attack from inside the container: another process in its namespaces (what an exec or
    // a fork of the entrypoint would be) looks at /proc/1/exe and writes to it.
    let inside = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "-p", "-r", "-w", "/bin/busybox", "sh", "-c"])
        .arg(
            "readlink /proc/1/exe; \
             if dd if=/proc/1/exe of=/proc/1/exe bs=4 count=1 conv=notrunc 2>/dev/null; then echo WROTE; fi; \
             exec 3</proc/1/exe; \
             if dd if=/proc/self/fd/3 of=/proc/self/fd/3 bs=4 count=1 conv=notrunc 2>/dev/null; then echo WROTE; fi",
        )
        .output()
        .expect("running nsenter");
    let inside_out = String::from_utf8_lossy(&inside.stdout);
    assert!(inside.status.success(), "nsenter failed: {}", String::from_utf8_lossy(&inside.stderr));
    assert_eq!(inside_out.lines().next(), Some(&*exe.to_string_lossy()), "inside the container /proc/1/exe");
    assert!(!inside_out.contains("WROTE"), "a container process wrote to the runtime's exe: {inside_out}");

    // From the host: a direct open for writing fails, and so does the reopen trick.
    let err =
        open_raw(&format!("/proc/{pid}/exe"), libc::O_WRONLY).expect_err("opened the running runtime for writing");
    assert!(matches!(err.raw_os_error(), Some(libc::ETXTBSY) | Some(libc::EPERM) | Some(libc::EROFS)), "{err}");
    let held = open_raw(&format!("/proc/{pid}/exe"), libc::O_RDONLY).unwrap();
    let protection = protection_of(&held, &bin);
    assert_eq!(protection, expected_protection());
    assert!(write_through_reopen(&held).is_err(), "wrote to the running runtime's exe through /proc/self/fd");

    // Let the runtime inside go on: it really ran (it logs its error into the fifo) and exits.
    let fifo = open_raw(rootfs.join("blockfifo").to_str().unwrap(), libc::O_RDONLY | libc::O_NONBLOCK).unwrap();
    let mut log = Vec::new();
    wait_until("the runtime in the container to log", Duration::from_secs(10), || {
        let mut buf = [0u8; 4096];
        // SAFETY: read into a valid buffer.
        let n = unsafe { libc::read(fifo.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            log.extend_from_slice(&buf[..n as usize]);
        }
        String::from_utf8_lossy(&log).contains("does not exist")
    });
    wait_until("the container's pid 1 to exit", Duration::from_secs(10), || !alive(pid));
    // The runtime is gone (no ETXTBSY any more): what is left is the seal or the overlay.
    let err = write_through_reopen(&held).expect_err("wrote to the runtime's exe after it exited");
    assert_eq!(err.raw_os_error(), Some(protection.errno_after_exit()), "{err}");
    drop(held);

    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
    let after = snapshot(&bin);
    assert!(before.0 == after.0, "the host runtime binary {} changed", bin.display());
    assert_eq!(before.1, after.1, "the host runtime binary's mtime changed");
}

/// A created container's init (waiting on the exec fifo) is the runtime itself: it must run from
/// a protected copy, which nobody can write, and it must not be the host binary. Both ways are
/// checked: the private overlay, and the sealed memfd the runtime falls back to when overlayfs
/// cannot take its directory (here: a directory name with a ':', which overlayfs options cannot
/// carry).
#[test]
fn created_init_runs_from_a_copy_that_cannot_be_written_overlay_or_sealed_memfd() {
    let colon_dir = tempfile::Builder::new().prefix("berth-it-bin:").tempdir().unwrap();
    let colon_bin = colon_dir.path().join("berth-runtime");
    std::fs::copy(runtime_bin(), &colon_bin).unwrap();
    for (bin, want) in [(runtime_bin(), expected_protection()), (colon_bin, Protection::SealedMemfd)] {
        let root = tempfile::Builder::new().prefix("berth-it-root-").tempdir().unwrap();
        // Output through files: a created init keeps the runtime's stdio open (it is the
        // container's), so pipes would not reach EOF before the container goes.
        let rt = |args: &[&str]| {
            let (out, err) = (tempfile::NamedTempFile::new().unwrap(), tempfile::NamedTempFile::new().unwrap());
            let status = Command::new(&bin)
                .arg("--root")
                .arg(root.path())
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(out.reopen().unwrap())
                .stderr(err.reopen().unwrap())
                .status()
                .unwrap();
            assert!(status.success(), "{args:?}: {}", std::fs::read_to_string(err.path()).unwrap_or_default());
            std::fs::read_to_string(out.path()).unwrap()
        };
        let before = snapshot(&bin);
        let bundle = Bundle::new(&["true"]);
        let id = unique_id("sealed");
        rt(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let state: serde_json::Value = serde_json::from_str(&rt(&["state", &id])).expect("state json");
        let pid = state["pid"].as_i64().expect("pid") as i32;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_ne!(exe, bin, "init runs the host binary");
        if want == Protection::SealedMemfd {
            assert!(exe.to_string_lossy().starts_with(MEMFD_EXE), "init runs {}", exe.display());
        }

        let err = open_raw(&format!("/proc/{pid}/exe"), libc::O_WRONLY).expect_err("opened init's exe for writing");
        assert!(matches!(err.raw_os_error(), Some(libc::ETXTBSY) | Some(libc::EPERM) | Some(libc::EROFS)), "{err}");
        let held = open_raw(&format!("/proc/{pid}/exe"), libc::O_RDONLY).unwrap();
        assert_eq!(protection_of(&held, &bin), want, "runtime {}", bin.display());
        assert!(write_through_reopen(&held).is_err(), "wrote to init's exe through /proc/self/fd");

        rt(&["delete", &id]);
        assert!(!root.path().join(&id).exists(), "state of {id} left behind");
        berth_integration::assert_no_cgroup(&id);
        wait_until("init to exit", Duration::from_secs(10), || !alive(pid));
        let err = write_through_reopen(&held).expect_err("wrote to init's exe after it exited");
        assert_eq!(err.raw_os_error(), Some(want.errno_after_exit()), "{err}");
        let after = snapshot(&bin);
        assert!(before.0 == after.0 && before.1 == after.1, "the host runtime binary changed");
    }
}

/// Host fds the runtime's caller leaked (no CLOEXEC) that point at sensitive host places.
struct Leaks {
    marker_dir: tempfile::TempDir,
    marker: String,
    fds: Vec<OwnedFd>,
}

impl Leaks {
    fn new() -> Leaks {
        let marker_dir = tempfile::Builder::new().prefix("berth-it-host-").tempdir().unwrap();
        let marker = unique_id("HOST-MARKER");
        std::fs::write(marker_dir.path().join(&marker), b"host secret").unwrap();
        let dir = libc::O_RDONLY | libc::O_DIRECTORY;
        let mut fds = Vec::new();
        for (path, flags) in [
            ("/", dir),
            (marker_dir.path().to_str().unwrap(), dir),
            (&*marker_dir.path().join(&marker).to_string_lossy(), libc::O_RDWR),
            ("/sys/fs/cgroup", dir),
        ] {
            let fd = open_raw(path, flags).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // Move it high, so that dup2 to 3.. in the child cannot clobber another source.
            // SAFETY: F_DUPFD_CLOEXEC on an open fd; the new fd is owned by the OwnedFd below.
            let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
            assert!(high >= 200, "F_DUPFD_CLOEXEC: {}", std::io::Error::last_os_error());
            // SAFETY: `high` was just created and is owned by nobody else.
            fds.push(unsafe { OwnedFd::from_raw_fd(high) });
        }
        Leaks { marker_dir, marker, fds }
    }

    /// `berth-runtime run` with the leaked fds open as 3, 4, 5, 6 (not close-on-exec).
    fn run(&self, rt: &Runtime, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let stdout = tempfile::NamedTempFile::new().unwrap();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let sources: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        let mut cmd = rt.command(&["run", "--bundle", bundle.path().to_str().unwrap(), id]);
        cmd.stdout(stdout.reopen().unwrap()).stderr(stderr.reopen().unwrap());
        // SAFETY: the closure only calls dup2(2), which is async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for (i, src) in sources.iter().enumerate() {
                    if libc::dup2(*src, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let status = cmd.status().expect("running berth-runtime");
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(stdout.path()).unwrap(),
            std::fs::read_to_string(stderr.path()).unwrap(),
        )
    }
}

/// The container's process sees only stdin, stdout and stderr, even when the runtime itself was
/// started with more fds open (without close-on-exec) that point at host directories and files.
#[test]
fn host_fds_leaked_to_the_runtime_do_not_reach_the_container() {
    let rt = Runtime::new();
    let leaks = Leaks::new();
    let bundle =
        Bundle::new(&["sh", "-c", "ls /proc/$$/fd; echo ---; for f in /proc/$$/fd/*; do readlink $f; done; exit 0"]);
    let id = unique_id("fdleak");
    let (code, stdout, stderr) = leaks.run(&rt, &bundle, &id);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let (fds, targets) = stdout.split_once("---").expect("output");
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "fds open in the container: {stdout}");
    assert!(!targets.contains(&leaks.marker), "{stdout}");
    rt.assert_gone(&id);
}

fn listing_of_host_root() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir("/").unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// CVE-2024-21626: process.cwd names a leaked fd (`/proc/self/fd/N`) or goes through a symlink to
/// `..` or to an absolute host path. The cwd must never end up outside the container's root: the
/// create fails with a cwd error, or the cwd resolves inside.
#[test]
fn cwd_cannot_point_outside_the_container() {
    let rt = Runtime::new();
    let leaks = Leaks::new();
    // Prints the cwd as the kernel sees it, then what is there.
    let bundle = Bundle::new(&["sh", "-c", "readlink /proc/self/cwd; echo ---; ls -a"]);
    let rootfs = bundle.rootfs();
    std::os::unix::fs::symlink("../../../../../../../../..", rootfs.join("up")).unwrap();
    std::os::unix::fs::symlink("/", rootfs.join("hostroot")).unwrap();
    std::os::unix::fs::symlink(leaks.marker_dir.path(), rootfs.join("hostdir")).unwrap();
    let host_root = listing_of_host_root();
    let outside = |stdout: &str| {
        let (cwd, listing) = stdout.split_once("---").unwrap_or((stdout, ""));
        let mut names: Vec<String> =
            listing.split_whitespace().filter(|n| *n != "." && *n != "..").map(String::from).collect();
        names.sort();
        cwd.contains("unreachable")
            || cwd.contains(&leaks.marker_dir.path().to_string_lossy().into_owned())
            || listing.contains(&leaks.marker)
            || names == host_root
            || listing.contains("cgroup.procs")
            || listing.contains("memory")
    };

    // Leaked fds (3..6 are the caller's, above them whatever the runtime holds while setting up).
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        bundle.edit(|c| c["process"]["cwd"] = cwd.clone().into());
        let id = unique_id("cwdfd");
        let (code, stdout, stderr) = leaks.run(&rt, &bundle, &id);
        if code != 0 {
            assert!(stderr.contains("cwd"), "cwd {cwd}: failed without naming the cwd: {stderr}");
        } else {
            assert!(!outside(&stdout), "cwd {cwd} is outside the container: {stdout}");
        }
        rt.assert_gone(&id);
    }

    // Symlinks that would leave the root resolve inside it.
    for (cwd, want_cwd, want_entry) in
        [("/up", "/", "bin"), ("/hostroot/etc", "/etc", "passwd"), ("/up/../hostroot", "/", "bin")]
    {
        bundle.edit(|c| c["process"]["cwd"] = cwd.into());
        let id = unique_id("cwdlink");
        let (code, stdout, stderr) = leaks.run(&rt, &bundle, &id);
        assert_eq!(code, 0, "cwd {cwd}: stdout: {stdout}\nstderr: {stderr}");
        let (got, listing) = stdout.split_once("---").unwrap();
        assert_eq!(got.trim(), want_cwd, "cwd {cwd}: {stdout}");
        assert!(listing.split_whitespace().any(|n| n == want_entry), "cwd {cwd}: {stdout}");
        assert!(!outside(&stdout), "cwd {cwd} is outside the container: {stdout}");
        if cwd.ends_with("/etc") && Path::new("/etc/os-release").exists() {
            assert!(!listing.contains("os-release"), "cwd {cwd} is the host's /etc: {stdout}");
        }
        rt.assert_gone(&id);
    }

    // An absolute host path that does not exist in the rootfs: not found there, or created there.
    bundle.edit(|c| c["process"]["cwd"] = "/hostdir".into());
    let id = unique_id("cwdhost");
    let (code, stdout, stderr) = leaks.run(&rt, &bundle, &id);
    if code != 0 {
        assert!(stderr.contains("cwd"), "failed without naming the cwd: {stderr}");
    } else {
        assert!(!outside(&stdout), "cwd /hostdir is the host's directory: {stdout}");
    }
    rt.assert_gone(&id);
    let host_entries: Vec<_> = std::fs::read_dir(leaks.marker_dir.path()).unwrap().flatten().collect();
    assert_eq!(host_entries.len(), 1, "the host directory was changed: {host_entries:?}");
}

/// Mount destinations that go through symlinks to absolute or `..` paths are resolved inside the
/// rootfs: the mount and any directory it needs land there, nothing is created or mounted on the
/// host, and a symlink to a path missing in the rootfs never makes it appear on the host.
#[test]
fn mount_destinations_through_symlinks_stay_inside_the_rootfs() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "cat /proc/self/mountinfo; echo ---; cat /up-link/*/source-marker"]);
    let rootfs = bundle.rootfs();
    std::os::unix::fs::symlink("/tmp", rootfs.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../tmp", rootfs.join("up-link")).unwrap();
    let source = tempfile::Builder::new().prefix("berth-it-src-").tempdir().unwrap();
    std::fs::write(source.path().join("source-marker"), "from-the-bind-source\n").unwrap();
    let (u1, u2) = (unique_id("berth-abs"), unique_id("berth-up"));
    let (d1, d2) = (format!("/abs-link/{u1}"), format!("/up-link/{u2}"));
    bundle.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": d1, "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(serde_json::json!({
            "destination": d2, "type": "bind", "source": source.path(), "options": ["rbind", "ro"]
        }));
    });

    let id = unique_id("mntlink");
    let output = rt.create_with_output(&bundle, &id);
    // While the container exists with its mounts in place: nothing on the host.
    for u in [&u1, &u2] {
        assert!(!Path::new("/tmp").join(u).exists(), "/tmp/{u} was created on the host");
        assert!(host_mounts_containing(u).is_empty(), "mounted on the host: {:?}", host_mounts_containing(u));
        assert!(rootfs.join("tmp").join(u).is_dir(), "the mount point was not created inside the rootfs");
    }
    assert!(host_mounts_containing(bundle.path().to_str().unwrap()).is_empty());
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let stdout = output.stdout();
    let mount_points: Vec<&str> = stdout.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(mount_points.contains(&format!("/tmp/{u1}").as_str()), "tmpfs not at /tmp/{u1} inside: {stdout}");
    assert!(mount_points.contains(&format!("/tmp/{u2}").as_str()), "bind not at /tmp/{u2} inside: {stdout}");
    assert!(stdout.ends_with("---\nfrom-the-bind-source\n"), "{stdout}");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);

    // A symlink to an absolute path that exists nowhere in the rootfs.
    let u3 = unique_id("berth-dangling");
    let bundle2 = Bundle::new(&["true"]);
    std::os::unix::fs::symlink(format!("/{u3}"), bundle2.rootfs().join("dangling")).unwrap();
    std::os::unix::fs::symlink(format!("/tmp/{u3}/deeper"), bundle2.rootfs().join("dangling-deep")).unwrap();
    for dest in ["/dangling", "/dangling-deep/x"] {
        bundle2.edit(|c| {
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        });
        let id = unique_id("mntdangling");
        let (code, _, stderr) = rt.run_container(&bundle2, &id);
        if code != 0 {
            assert!(stderr.contains(dest), "the error does not name the mount {dest}: {stderr}");
        }
        rt.assert_gone(&id);
        bundle2.edit(|c| {
            c["mounts"].as_array_mut().unwrap().pop();
        });
    }
    assert!(!Path::new("/").join(&u3).exists(), "/{u3} was created on the host");
    assert!(!Path::new("/tmp").join(&u3).exists(), "/tmp/{u3} was created on the host");
    assert!(host_mounts_containing(&u3).is_empty());
}

/// `root.path` that leads to the host's `/` (a symlink in the bundle, relative or absolute, or
/// `/` itself) is refused: the container must never run on the host root.
#[test]
fn root_path_leading_to_the_host_root_is_refused() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["/bin/busybox", "ls", "/"]);
    std::os::unix::fs::symlink("/", bundle.path().join("rootfs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", bundle.path().join("rootfs-up")).unwrap();
    let abs_link: PathBuf = bundle.path().join("rootfs-link");
    let host_root = listing_of_host_root();
    for root in ["rootfs-link", abs_link.to_str().unwrap(), "/", "rootfs-up", "rootfs-link/tmp/.."] {
        bundle.edit(|c| c["root"]["path"] = root.into());
        for no_pivot in [false, true] {
            let id = unique_id("rootlink");
            let b = bundle.path().to_str().unwrap();
            let mut args = vec!["run", "--bundle", b];
            if no_pivot {
                args.push("--no-pivot");
            }
            args.push(&id);
            let out = rt.run(&args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut names: Vec<String> = stdout.split_whitespace().map(String::from).collect();
            names.sort();
            assert!(names != host_root, "root.path {root:?} ran the container on the host root");
            assert!(!out.status.success(), "root.path {root:?} (no_pivot={no_pivot}) was accepted: {stdout}");
            assert!(stderr.contains("root.path"), "root.path {root:?}: unclear error: {stderr}");
            rt.assert_gone(&id);
        }
    }
    assert!(host_mounts_containing(bundle.path().to_str().unwrap()).is_empty());
}

#[test]
fn a_dev_bound_in_from_the_host_is_left_untouched() {
    let rt = Runtime::new();
    // A stand-in for the host's /dev: a null node with the host's usual mode and a ptmx node.
    let fake_dev = tempfile::tempdir().unwrap();
    let mknod = |name: &str, mode: u32, minor_major: (u32, u32)| {
        let path = CString::new(fake_dev.path().join(name).as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mknod(2) with a valid NUL-terminated path.
        let r =
            unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | mode, libc::makedev(minor_major.0, minor_major.1)) };
        assert_eq!(r, 0, "mknod {name}");
    };
    mknod("null", 0o600, (1, 3));
    mknod("ptmx", 0o666, (5, 2));
    let before: Vec<String> = list(fake_dev.path());
    let bundle = Bundle::new(&["sh", "-c", "ls /dev >/dev/null"]);
    bundle.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        mounts.push(serde_json::json!({"destination": "/dev", "type": "bind",
            "source": fake_dev.path(), "options": ["rbind", "rw"]}));
    });
    let id = unique_id("devbind");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(list(fake_dev.path()), before, "the runtime added or removed entries in a bound /dev");
    let ptmx = std::fs::symlink_metadata(fake_dev.path().join("ptmx")).unwrap();
    assert!(!ptmx.file_type().is_symlink(), "ptmx was replaced by a symlink");
    let null = std::fs::metadata(fake_dev.path().join("null")).unwrap();
    assert_eq!(null.permissions().mode() & 0o777, 0o600, "the mode of null changed");
    rt.assert_gone(&id);
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn container_state_is_private_to_root() {
    let rt = Runtime::new();
    let root = rt.root().join("nested-root");
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| c["process"]["env"] = serde_json::json!(["PATH=/bin", "SECRET=hunter2"]));
    let id = unique_id("private");
    let out = Command::new(runtime_bin())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700, "state root");
    assert_eq!(mode(&root.join(&id)), 0o700, "container dir");
    assert_eq!(mode(&root.join(&id).join("state.json")), 0o600, "state.json holds the env");
    let status =
        Command::new(runtime_bin()).arg("--root").arg(&root).args(["delete", "--force", &id]).status().unwrap();
    assert!(status.success());
}

#[test]
fn hooks_run_in_the_runtimes_pid_namespace_even_when_the_container_joins_another() {
    let rt = Runtime::new();
    let sandbox = Bundle::new(&["sleep", "60"]);
    let sandbox_id = unique_id("pidsandbox");
    rt.ok(&["run", "--detach", "--bundle", sandbox.path().to_str().unwrap(), &sandbox_id]);
    let sandbox_pid = init_pid(&rt, &sandbox_id);
    let log = tempfile::NamedTempFile::new().unwrap();
    let bundle = Bundle::new(&["true"]);
    let script = format!("grep NSpid /proc/self/status > {}", log.path().display());
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
        ns.push(serde_json::json!({"type": "pid", "path": format!("/proc/{sandbox_pid}/ns/pid")}));
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    });
    let id = unique_id("pidjoin");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{err}");
    let nspid = std::fs::read_to_string(log.path()).unwrap();
    // One pid: the hook lives only in the host's pid namespace, not also in the sandbox's.
    assert_eq!(nspid.split_whitespace().count(), 2, "hook ran inside the container's pid namespace: {nspid}");
    rt.ok(&["delete", "--force", &sandbox_id]);
    rt.assert_gone(&id);
    rt.assert_gone(&sandbox_id);
}

#[test]
fn masking_refuses_a_dev_null_that_is_not_the_null_device() {
    let rt = Runtime::new();
    // A /dev shared with another container that swapped null for a symlink to something writable.
    let shared_dev = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc/hostname", shared_dev.path().join("null")).unwrap();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        mounts.push(serde_json::json!({"destination": "/dev", "type": "bind",
            "source": shared_dev.path(), "options": ["rbind", "rw"]}));
    });
    let id = unique_id("fakenull");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0, "masked paths were bound from a fake /dev/null");
    assert!(err.contains("not the null device"), "{err}");
    rt.assert_gone(&id);
}
