//! `berth cp` and `berth export` through a private berthd: copies out of and into running and
//! stopped containers (content, modes, times, owners, symlinks, `-L`, `/.`, tar streams on
//! stdin/stdout, volumes), confinement of hostile symlinks inside the container in both
//! directions, export's listing, and docker 20.10's messages and exit codes for what fails. After
//! every command nothing may be left: no mount and no temp directory of berthd's. Run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, Outcome};
use berth_integration::engines::scratch::Scratch;

/// What the container writes into its own /etc/shadow, to tell it from the host's.
const CONTAINER_SHADOW: &str = "the container's shadow\n";
/// The container's files: /d/f (751, 12:34, mtime 1000000000), /d/h hard-linked to it, /d/l -> f,
/// /evil -> /, a file in its volume at /vol, and its own /etc/shadow. Idempotent, for a container
/// started again.
const SETUP: &str = "mkdir -p /d && echo hi > /d/f && chmod 751 /d/f && chown 12:34 /d/f && \
                     touch -d @1000000000 /d/f && ln -f /d/f /d/h && ln -sfn f /d/l && ln -sfn / /evil && \
                     echo in-volume > /vol/v && printf \"the container's shadow\\n\" > /etc/shadow";

/// The busybox image, built once per test binary under cargo's tmp directory.
fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-cp-image")))
}

fn daemon() -> Berthd {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", busybox().docker_archive().to_str().expect("utf-8 path")]);
    b
}

/// `sh -c SETUP` in container `name` (with a volume at /vol), run to its end: an exited container.
fn exited_container(b: &Berthd, name: &str) {
    b.ok(&["run", "--name", name, "-v", "/vol", IMAGE_REF, "sh", "-c", SETUP]);
}

/// The same, left running once its files are in place.
fn running_container(b: &Berthd, name: &str) {
    let script = format!("{SETUP} && touch /ready && exec sleep 1000");
    b.ok(&["run", "-d", "--name", name, "-v", "/vol", IMAGE_REF, "sh", "-c", &script]);
    for _ in 0..200 {
        if b.berth(&["exec", name, "test", "-e", "/ready"]).code == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("container {name} did not get ready");
}

/// `berth args…` with binary stdout (a tar), which must succeed.
fn berth_bytes(b: &Berthd, args: &[&str]) -> Vec<u8> {
    let out = b.berth_cmd(args).stdin(Stdio::null()).output().expect("running berth");
    assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `berth args…` in `dir` with `stdin` as its input.
fn berth_in(b: &Berthd, dir: &Path, args: &[&str], stdin: Stdio) -> Outcome {
    let mut cmd = b.berth_cmd(args);
    cmd.current_dir(dir).stdin(stdin);
    run(&mut cmd)
}

/// One tar entry as a test looks at it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: String,
    data: Vec<u8>,
}

fn entries(tar: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("entry data");
        out.push(Entry {
            name: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            kind: header.entry_type().as_byte() as char,
            mode: header.mode().expect("mode"),
            uid: header.uid().expect("uid"),
            gid: header.gid().expect("gid"),
            mtime: header.mtime().expect("mtime"),
            link: entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default(),
            data,
        });
    }
    out
}

fn entry<'a>(all: &'a [Entry], name: &str) -> &'a Entry {
    all.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no entry {name} in {all:#?}"))
}

/// What berthd may have left: mounts of its own (a running container's rootfs aside) and
/// anything in its temp directory, seen from the test and from berthd's mount namespace.
fn assert_nothing_left(b: &Berthd) {
    let dir = b.dir().display().to_string();
    for mountinfo in ["/proc/self/mountinfo".to_string(), format!("/proc/{}/mountinfo", b.pid())] {
        let text = std::fs::read_to_string(&mountinfo).expect("mountinfo");
        let stray: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir) && !m.ends_with("/rootfs"))
            .collect();
        assert!(stray.is_empty(), "mounts left in {mountinfo}: {stray:?}");
    }
    let tmp: Vec<_> =
        std::fs::read_dir(b.root().join("tmp")).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "left in berthd's tmp: {tmp:?}");
}

#[test]
fn cp_out_of_running_and_exited_containers_keeps_content_modes_times_and_links() {
    let b = daemon();
    running_container(&b, "running");
    exited_container(&b, "exited");
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.Status}}", "exited"]), "exited\n");
    for name in ["running", "exited"] {
        let host = tempfile::tempdir().expect("tempdir");
        let at = |p: &str| host.path().join(p);
        let copy = |src: &str, dst: &Path| b.ok(&["cp", &format!("{name}:{src}"), dst.to_str().expect("utf-8")]);

        // A directory: a new name takes its content; modes and times kept; files owned by the
        // user running cp (docker's client does not chown).
        copy("/d", &at("d1"));
        let f = std::fs::metadata(at("d1/f")).expect("d1/f");
        assert_eq!(std::fs::read_to_string(at("d1/f")).expect("read"), "hi\n");
        assert_eq!((f.permissions().mode() & 0o7777, f.mtime(), f.uid(), f.gid()), (0o751, 1_000_000_000, 0, 0));
        assert_eq!(std::fs::read_link(at("d1/l")).expect("a symlink kept as a link"), Path::new("f"));
        let h = std::fs::metadata(at("d1/h")).expect("d1/h");
        assert_eq!(h.ino(), f.ino(), "hard links stay linked");
        // Into an existing directory, under its own name.
        copy("/d", host.path());
        assert!(at("d/f").is_file());
        // `/.`: the directory's contents.
        std::fs::create_dir(at("contents")).expect("mkdir");
        copy("/d/.", &at("contents"));
        assert!(at("contents/f").is_file() && at("contents/l").is_symlink());
        // -L follows the link; without it the link itself comes out.
        b.ok(&["cp", "-L", &format!("{name}:/d/l"), at("followed").to_str().expect("utf-8")]);
        assert_eq!(std::fs::read_to_string(at("followed")).expect("followed"), "hi\n");
        assert!(!at("followed").is_symlink());
        copy("/d/l", &at("link"));
        assert!(at("link").is_symlink());

        // To stdout: a tar with the container's owners, modes and times.
        let tar = entries(&berth_bytes(&b, &["cp", &format!("{name}:/d"), "-"]));
        let names: Vec<&str> = tar.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["d/", "d/f", "d/h", "d/l"]);
        assert_eq!((entry(&tar, "d/h").kind, entry(&tar, "d/h").link.as_str()), ('1', "d/f"));
        let f = entry(&tar, "d/f");
        assert_eq!(
            (f.kind, f.mode, f.uid, f.gid, f.mtime, &f.data[..]),
            ('0', 0o751, 12, 34, 1_000_000_000, &b"hi\n"[..])
        );
        assert_eq!((entry(&tar, "d/l").kind, entry(&tar, "d/l").link.as_str()), ('2', "f"));
        let tar = entries(&berth_bytes(&b, &["cp", &format!("{name}:/d/."), "-"]));
        let names: Vec<&str> = tar.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["./", "./f", "./h", "./l"]);

        // The volume is seen where the container sees it, running or not.
        let tar = entries(&berth_bytes(&b, &["cp", &format!("{name}:/vol/v"), "-"]));
        assert_eq!(entry(&tar, "v").data, b"in-volume\n");

        // /evil -> / inside the container: its own /etc/shadow, never the host's.
        let tar = entries(&berth_bytes(&b, &["cp", &format!("{name}:/evil/etc/shadow"), "-"]));
        assert_eq!(entry(&tar, "shadow").data, CONTAINER_SHADOW.as_bytes());
        b.ok(&["cp", &format!("{name}:/evil/etc/shadow"), at("shadow").to_str().expect("utf-8")]);
        assert_eq!(std::fs::read_to_string(at("shadow")).expect("shadow"), CONTAINER_SHADOW);
        assert_nothing_left(&b);
    }
    // A paused container's files are reachable too.
    b.ok(&["pause", "running"]);
    let tar = entries(&berth_bytes(&b, &["cp", "running:/d/f", "-"]));
    assert_eq!(entry(&tar, "f").data, b"hi\n");
    b.ok(&["unpause", "running"]);
    b.remove_all_containers();
    assert_nothing_left(&b);
}

#[test]
fn cp_into_running_and_stopped_containers_keeps_owners_modes_and_names() {
    let b = daemon();
    running_container(&b, "running");
    exited_container(&b, "exited");
    b.ok(&["create", "--name", "created", "-v", "/vol", IMAGE_REF, "true"]);
    b.ok(&["create", "--name", "nobody", "--user", "nobody", IMAGE_REF, "true"]);
    let src = tempfile::tempdir().expect("tempdir");
    let at = |p: &str| src.path().join(p);
    std::fs::create_dir_all(at("tree/sub")).expect("mkdir");
    std::fs::write(at("tree/a"), "a\n").expect("write");
    std::fs::write(at("tree/sub/s"), "s\n").expect("write");
    std::os::unix::fs::symlink("a", at("tree/la")).expect("symlink");
    std::os::unix::fs::chown(at("tree/a"), Some(1000), Some(2000)).expect("chown");
    std::fs::set_permissions(at("tree/a"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    run(Command::new("touch").args(["-d", "@1100000000"]).arg(at("tree/a")));
    let file = at("tree/a").display().to_string();
    let tree = at("tree").display().to_string();
    let host_probe = format!("/tmp/berth-cp-escape-{}", std::process::id());
    // The created container gets its hostile link from cp itself.
    std::os::unix::fs::symlink("/", at("evil")).expect("symlink");
    b.ok(&["cp", at("evil").to_str().expect("utf-8"), "created:/"]);

    for name in ["running", "exited", "created"] {
        let to = |path: &str| format!("{name}:{path}");
        b.ok(&["cp", &file, &to("/tmp/")]);
        b.ok(&["cp", &file, &to("/tmp/renamed")]);
        b.ok(&["cp", &tree, &to("/newtree")]);
        b.ok(&["cp", &tree, &to("/tmp")]);
        // A tar on stdin, extracted into a directory.
        let tar = Command::new("tar").arg("-cf").arg("-").arg("-C").arg(at("tree")).arg(".").output().expect("tar");
        let out = berth_in(&b, src.path(), &["cp", "-", &to("/stdin")], Stdio::null());
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (1, format!("destination \"{name}:/stdin\" must be a directory\n").as_str())
        );
        let mut child = b.berth_cmd(&["cp", "-", &to("/tmp/")]).stdin(Stdio::piped()).spawn().expect("berth cp -");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), &tar.stdout).expect("writing the tar");
        drop(child.stdin.take());
        assert!(child.wait().expect("berth cp -").success());
        // A gzipped one too, as docker takes it.
        let gz = Command::new("gzip").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("gzip");
        let gz = {
            let mut gz = gz;
            std::io::Write::write_all(gz.stdin.as_mut().expect("stdin"), &tar.stdout).expect("gzip input");
            drop(gz.stdin.take());
            gz.wait_with_output().expect("gzip").stdout
        };
        let mut child = b.berth_cmd(&["cp", "-", &to("/")]).stdin(Stdio::piped()).spawn().expect("berth cp -");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), &gz).expect("writing the tar.gz");
        drop(child.stdin.take());
        assert!(child.wait().expect("berth cp -").success());
        // Through the container's /evil -> /: into the container, not the host.
        b.ok(&["cp", &file, &to(&format!("/evil{host_probe}"))]);
        assert!(!Path::new(&host_probe).exists(), "cp wrote through /evil onto the host");
        // Into the volume.
        b.ok(&["cp", &file, &to("/vol/")]);
        // Failures leave nothing behind either.
        let out = b.berth(&["cp", &file, &to("/tmp/a/x")]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (1, "Error response from daemon: extraction point is not a directory\n")
        );
        let out = b.berth(&["cp", &file, &to("/nope/x")]);
        assert_eq!((out.code, out.stderr), (1, format!("Error: No such container:path: {name}:/nope\n")));
        assert_nothing_left(&b);

        let mut tar = Vec::new();
        for dir in ["/tmp", "/newtree", "/vol", "/sub"] {
            tar.extend(entries(&berth_bytes(&b, &["cp", &to(dir), "-"])));
        }
        let a = entry(&tar, "tmp/a");
        // docker 20.10 keeps the source's numeric owner (its docs say root; its daemon does not).
        assert_eq!((a.mode, a.uid, a.gid, a.mtime, &a.data[..]), (0o640, 1000, 2000, 1_100_000_000, &b"a\n"[..]));
        assert_eq!(entry(&tar, "tmp/renamed").data, b"a\n");
        assert_eq!(entry(&tar, "newtree/sub/s").data, b"s\n");
        assert_eq!(entry(&tar, "sub/s").data, b"s\n", "the gzipped tar landed in /");
        assert_eq!(entry(&tar, "newtree/la").link, "a");
        assert_eq!(entry(&tar, "tmp/tree/a").uid, 1000);
        assert_eq!(entry(&tar, "tmp/sub/s").data, b"s\n");
        assert_eq!(entry(&tar, &host_probe[1..]).data, b"a\n");
        assert_eq!(entry(&tar, "vol/a").data, b"a\n");
        assert_nothing_left(&b);
    }
    // -L follows a local symlink; a file may not replace a directory.
    b.ok(&["cp", "-L", at("tree/la").to_str().expect("utf-8"), "running:/tmp/followed"]);
    let tar = entries(&berth_bytes(&b, &["cp", "running:/tmp/followed", "-"]));
    assert_eq!((entry(&tar, "followed").kind, &entry(&tar, "followed").data[..]), ('0', &b"a\n"[..]));
    std::fs::write(at("sub"), "not a directory").expect("write");
    let out = b.berth(&["cp", at("sub").to_str().expect("utf-8"), "running:/newtree"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("cannot overwrite directory with non-directory"), "{out}");
    assert_nothing_left(&b);
    // A read-only container refuses, running or not, but for its writable volumes.
    b.ok(&["create", "--name", "readonly", "--read-only", "-v", "/rw", IMAGE_REF, "true"]);
    let out = b.berth(&["cp", &file, "readonly:/tmp/"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error response from daemon: container rootfs is marked read-only\n")
    );
    b.ok(&["cp", &file, "readonly:/rw/"]);
    assert_nothing_left(&b);
    // -a: the container's configured user, as its own /etc/passwd resolves it.
    b.ok(&["cp", "-a", &file, "nobody:/tmp/"]);
    let tar = entries(&berth_bytes(&b, &["cp", "nobody:/tmp/a", "-"]));
    assert_eq!((entry(&tar, "a").uid, entry(&tar, "a").gid), (65534, 65534));
    b.ok(&["cp", &file, "nobody:/tmp/plain"]);
    let tar = entries(&berth_bytes(&b, &["cp", "nobody:/tmp/plain", "-"]));
    assert_eq!((entry(&tar, "plain").uid, entry(&tar, "plain").gid), (1000, 2000));
    b.remove_all_containers();
    assert_nothing_left(&b);
}

#[test]
fn export_tars_the_root_filesystem_without_volumes() {
    let b = daemon();
    b.ok(&["create", "--name", "created", IMAGE_REF, "true"]);
    let names = |tar: &[u8]| entries(tar).into_iter().map(|e| e.name).collect::<Vec<_>>();
    let created = names(&berth_bytes(&b, &["export", "created"]));
    for expected in ["bin/", "bin/busybox", "bin/sh", "etc/", "etc/passwd"] {
        assert!(created.contains(&expected.to_string()), "{expected} missing from {created:?}");
    }
    assert!(!created.iter().any(|n| n.starts_with('/') || n.starts_with("./")), "{created:?}");

    running_container(&b, "running");
    let script = "echo written > /written";
    b.ok(&["exec", "running", "sh", "-c", script]);
    let tar = entries(&berth_bytes(&b, &["export", "running"]));
    assert_eq!(entry(&tar, "written").data, b"written\n");
    assert_eq!(entry(&tar, "d/f").mode, 0o751);
    assert!(tar.iter().any(|e| e.name == "vol/"), "the volume's mountpoint is part of the rootfs");
    assert!(!tar.iter().any(|e| e.name == "vol/v"), "a volume's content is not exported");
    assert!(!tar.iter().any(|e| e.name.starts_with("proc/") && e.name != "proc/"), "no procfs in an export");

    // Not onto a terminal (the pseudo-terminal `script` gives it).
    let command =
        format!("{} -H {} export running", berth_integration::engines::berthd::berth_bin().display(), b.host());
    let out = run(Command::new("script").args(["-qec", &command, "/dev/null"]));
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stdout.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"), "{out}");

    b.ok(&["stop", "-t", "0", "running"]);
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("running.tar");
    b.ok(&["export", "-o", file.to_str().expect("utf-8"), "running"]);
    let tar = entries(&std::fs::read(&file).expect("the export"));
    assert_eq!(entry(&tar, "written").data, b"written\n");
    assert!(!tar.iter().any(|e| e.name == "vol/v"));
    // A failed export leaves no partial file.
    let failed = b.berth(&["export", "-o", out.path().join("nope.tar").to_str().expect("utf-8"), "nope"]);
    assert_eq!((failed.code, failed.stderr.as_str()), (1, "Error response from daemon: No such container: nope\n"));
    let left: Vec<_> = std::fs::read_dir(out.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["running.tar"]);
    assert_nothing_left(&b);
    b.remove_all_containers();
    assert_nothing_left(&b);
}

/// What a user sees of a failed command.
fn seen(out: &Outcome) -> (i32, String) {
    (out.code, out.stderr.clone())
}

#[test]
fn cp_and_export_errors_match_docker_20_10() {
    let b = daemon();
    let scratch = Scratch::new("cp");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    dockerd.load(&busybox().docker_archive());
    let script = format!("{SETUP} && touch /ready && exec sleep 1000");
    let runs: [&[&str]; 2] = [
        &["run", "-d", "--network", "none", "--name", "ctr", "-v", "/vol", IMAGE_REF, "sh", "-c", &script],
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "ro",
            "--read-only",
            "-v",
            "/rw",
            "-v",
            "rov:/rov:ro",
            IMAGE_REF,
            "sleep",
            "1000",
        ],
    ];
    for args in runs {
        b.ok(args);
        assert_eq!(run(dockerd.docker().args(args)).code, 0);
    }
    for _ in 0..200 {
        let ready = |mut cmd: Command| run(cmd.args(["exec", "ctr", "test", "-e", "/ready"])).code == 0;
        if ready(b.berth_cmd(&[])) && ready(dockerd.docker()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The same local files for both, in a directory each runs in.
    let local = scratch.subdir("local");
    std::fs::create_dir_all(local.join("src/sub")).expect("mkdir");
    std::fs::write(local.join("src/a"), "a\n").expect("write");
    std::fs::create_dir_all(local.join("out/dir/f")).expect("mkdir");
    std::fs::write(local.join("out/file"), "x").expect("write");

    let cases: &[&[&str]] = &[
        &["cp", "ctr:/nope", "out/x"],
        &["cp", "nope:/nope", "out/x"],
        &["cp", "ctr:/d/nope/x", "out/x"],
        &["cp", "ctr:/d/f", "/nonexist/x"],
        &["cp", "ctr:/d/f", "out/newdir/"],
        &["cp", "ctr:/d", "out/file"],
        &["cp", "ctr:/d/f", "out/dir"],
        &["cp", "src/a", "ctr:/nope/x"],
        &["cp", "src/a", "ctr:/d/f/x"],
        &["cp", "src/a", "ctr:/nope/"],
        &["cp", "src", "ctr:/d/f"],
        &["cp", "/nonexist", "ctr:/d"],
        &["cp", "src/a", "nope:/d"],
        &["cp", "-", "ctr:/d/f"],
        &["cp", "src/a", "ro:/a"],
        &["cp", "src/a", "ro:/rov/a"],
        &["cp", "ctr:/a", "ro:/a"],
        &["cp", "src/a", "out/b"],
        &["export", "nope"],
        &["export", "-o", "/nonexist/x", "ctr"],
    ];
    for args in cases {
        let ours = berth_in(&b, &local, args, Stdio::null());
        let theirs = run(dockerd.docker().args(*args).current_dir(&local).stdin(Stdio::null()));
        assert_ne!(theirs.code, 0, "docker {args:?} was expected to fail: {theirs}");
        assert_eq!(seen(&ours), seen(&theirs), "berth {args:?} (left) differs from docker (right)");
        assert_nothing_left(&b);
    }
    // What works on both: into a writable volume of a read-only container.
    for args in [&["cp", "src/a", "ro:/rw/a"][..], &["cp", "src/a", "ctr:/d/f"][..]] {
        assert_eq!(berth_in(&b, &local, args, Stdio::null()).code, 0);
        assert_eq!(run(dockerd.docker().args(args).current_dir(&local)).code, 0);
    }
    b.remove_all_containers();
    assert_nothing_left(&b);
}

#[test]
fn a_container_swapping_a_directory_for_a_symlink_to_root_never_gets_cp_onto_the_host() {
    let b = daemon();
    // /x/real flips between a directory and a symlink to / as fast as the container can.
    let flipper = "mkdir -p /x/real && touch /ready && while true; do mv /x/real /x/dir; ln -s / /x/real; \
                   rm /x/real; mv /x/dir /x/real; done";
    b.ok(&["run", "-d", "--name", "racer", IMAGE_REF, "sh", "-c", flipper]);
    for _ in 0..200 {
        if b.berth(&["exec", "racer", "test", "-e", "/ready"]).code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let src = tempfile::tempdir().expect("tempdir");
    let name = format!("berth-cp-race-{}", std::process::id());
    let file = src.path().join(&name);
    std::fs::write(&file, "raced").expect("write");
    let mut landed = 0;
    for _ in 0..40 {
        // Some copies fail while the directory is away; none may write outside the container.
        if b.berth(&["cp", file.to_str().expect("utf-8"), "racer:/x/real/"]).code == 0 {
            landed += 1;
        }
        let out = b.berth_cmd(&["cp", "racer:/x/real/etc/hostname", "-"]).output().expect("berth cp");
        if out.status.success() {
            let tar = entries(&out.stdout);
            let host = std::fs::read("/etc/hostname").unwrap_or_default();
            assert!(tar.iter().all(|e| e.data != host || host.is_empty()), "read the host's /etc/hostname");
        }
    }
    assert!(landed > 0, "no copy got through at all");
    assert!(!Path::new("/").join(&name).exists(), "cp wrote onto the host's /");
    b.remove_all_containers();
    assert_nothing_left(&b);
}
