//! Volumes through a private berthd: `berth volume …`, `-v`/`--mount`/`--volumes-from`, the
//! image's VOLUME, copy-up of the image's files, read-only mounts, data surviving containers and
//! a berthd restart, in-use refusals, `rm -v` and `run --rm`, and bad input that must leave
//! nothing behind. Everything is checked from inside containers or under berthd's root. Run as
//! root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::{single_image_oci_archive, BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok};
use berth_integration::engines::scratch::Scratch;
use serde_json::Value;

/// An image whose config declares `VOLUME /data` and whose /data holds files with owners, modes
/// and a symlink, for copy-up.
const VOLUME_IMAGE: &str = "localhost/volumes-test:latest";
/// What the image's /data/hello holds.
const HELLO: &str = "from the image";

/// The busybox image, built once per test binary under cargo's tmp directory.
fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-volumes-image")))
}

/// An OCI archive of [`VOLUME_IMAGE`]: busybox plus a layer with /data, and `Volumes` in its
/// config (umoci), named by its index.json entry.
fn volume_image_archive() -> PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-volumes-image-vol");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating the image dir");
            let layout = dir.join("oci");
            run_ok(Command::new("cp").arg("-a").arg(busybox().layout()).arg(&layout));
            let image = |tag: &str| format!("{}:{tag}", layout.display());
            let bundle = dir.join("bundle");
            run_ok(Command::new("umoci").args(["unpack", "--image", &image("latest")]).arg(&bundle));
            let data = bundle.join("rootfs/data");
            std::fs::create_dir_all(data.join("sub")).expect("mkdir /data/sub");
            std::fs::write(data.join("hello"), HELLO).expect("writing /data/hello");
            std::os::unix::fs::chown(data.join("hello"), Some(1234), Some(5678)).expect("chown");
            run_ok(Command::new("chmod").arg("0640").arg(data.join("hello")));
            run_ok(Command::new("chmod").arg("1777").arg(data.join("sub")));
            std::os::unix::fs::symlink("/etc/passwd", data.join("link")).expect("symlink");
            std::fs::hard_link(data.join("hello"), data.join("hello2")).expect("hard link");
            run_ok(Command::new("umoci").args(["repack", "--image", &image("vol")]).arg(&bundle));
            run_ok(Command::new("umoci").args(["config", "--image", &image("vol"), "--config.volume", "/data"]));
            let archive = dir.join("vol.tar");
            single_image_oci_archive(&layout, "vol", VOLUME_IMAGE, &archive);
            archive
        })
        .clone()
}

/// A berthd with both images loaded.
fn daemon() -> Berthd {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", busybox().docker_archive().to_str().expect("utf-8 path")]);
    b.ok(&["load", "-q", "-i", volume_image_archive().to_str().expect("utf-8 path")]);
    b
}

fn inspect(b: &Berthd, name: &str) -> Value {
    let out = b.ok(&["inspect", "--type", "container", name]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect {name}: {e}: {out}"));
    v[0].clone()
}

/// The volume directories under berthd's root.
fn volume_dirs(b: &Berthd) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(b.root().join("volumes"))
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn volume_names(b: &Berthd) -> Vec<String> {
    b.ok(&["volume", "ls", "-q"]).lines().map(String::from).collect()
}

/// Removes every container and checks nothing of theirs is left.
fn assert_clean(b: &Berthd) {
    b.remove_all_containers();
    let left = b.leftovers(&[]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn an_empty_volume_gets_the_images_files_unless_nocopy() {
    let b = daemon();
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "filled:/data",
        VOLUME_IMAGE,
        "sh",
        "-c",
        "cat /data/hello; echo; stat -c '%u:%g %a' /data/hello; readlink /data/link; stat -c %a /data/sub; \
         [ /data/hello -ef /data/hello2 ] && echo hard-linked",
    ]);
    assert_eq!(out, format!("{HELLO}\n1234:5678 640\n/etc/passwd\n1777\nhard-linked\n"));
    let on_host = b.root().join("volumes/filled/_data/hello");
    assert_eq!(std::fs::read_to_string(&on_host).expect("the volume's copy on the host"), HELLO);
    // A volume with content is not filled again.
    b.ok(&["run", "--rm", "-v", "filled:/data", VOLUME_IMAGE, "sh", "-c", "echo changed > /data/hello"]);
    assert_eq!(b.ok(&["run", "--rm", "-v", "filled:/data", VOLUME_IMAGE, "cat", "/data/hello"]), "changed\n");

    assert_eq!(b.ok(&["run", "--rm", "-v", "bare:/data:nocopy", VOLUME_IMAGE, "ls", "-A", "/data"]), "");
    let mount = "type=volume,src=bare2,dst=/data,volume-nocopy";
    assert_eq!(b.ok(&["run", "--rm", "--mount", mount, VOLUME_IMAGE, "ls", "-A", "/data"]), "");
    let mount = "type=volume,src=copied,dst=/data,volume-label=made=by-mount";
    assert_eq!(b.ok(&["run", "--rm", "--mount", mount, VOLUME_IMAGE, "cat", "/data/hello"]), HELLO);
    assert_eq!(b.ok(&["volume", "inspect", "-f", "{{.Labels.made}}", "copied"]), "by-mount\n");
    assert_clean(&b);
}

#[test]
fn the_images_volume_is_an_anonymous_volume_that_run_rm_removes() {
    let b = daemon();
    b.ok(&["create", "--name", "withvol", "-v", "/extra", VOLUME_IMAGE, "cat", "/data/hello"]);
    let object = inspect(&b, "withvol");
    assert_eq!(object["Config"]["Volumes"], serde_json::json!({"/data": {}, "/extra": {}}));
    assert_eq!(object["HostConfig"]["Binds"], Value::Null, "anonymous volumes are no binds");
    let mut mounts = object["Mounts"].as_array().expect("Mounts").clone();
    mounts.retain(|m| m["Destination"] == "/data");
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let name = mounts[0]["Name"].as_str().expect("Name").to_string();
    assert_eq!(name.len(), 64, "an anonymous volume has a random name: {name}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Driver"], "local");
    assert_eq!(mounts[0]["RW"], true);
    assert_eq!(mounts[0]["Source"], b.root().join("volumes").join(&name).join("_data").display().to_string());
    assert_eq!(b.ok(&["start", "-a", "withvol"]), HELLO);
    assert_eq!(volume_names(&b).len(), 2, "the image's and -v /extra: {:?}", volume_names(&b));
    assert!(volume_names(&b).contains(&name));

    // A mount at the path replaces the image's volume.
    let mut expected = volume_names(&b);
    b.ok(&["run", "--rm", "-v", "mine:/data", VOLUME_IMAGE, "true"]);
    expected.push("mine".to_string());
    expected.sort();
    assert_eq!(volume_names(&b), expected);

    // run --rm takes its anonymous volumes along (the image's and `-v /scratch`); named ones stay.
    assert_eq!(b.ok(&["run", "--rm", "-v", "/scratch", VOLUME_IMAGE, "cat", "/data/hello"]), HELLO);
    assert_eq!(volume_dirs(&b), expected);
    assert_clean(&b);
}

#[test]
fn rm_v_removes_anonymous_volumes_but_not_named_ones() {
    let b = daemon();
    b.ok(&["create", "--name", "c1", "-v", "/anon", "-v", "keep:/named", IMAGE_REF, "true"]);
    assert_eq!(volume_dirs(&b).len(), 2, "{:?}", volume_dirs(&b));
    let anonymous = inspect(&b, "c1")["Mounts"]
        .as_array()
        .expect("Mounts")
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .map(|m| m["Name"].as_str().expect("Name").to_string())
        .expect("the anonymous mount");
    b.ok(&["rm", "-v", "c1"]);
    assert_eq!(volume_dirs(&b), ["keep"]);
    assert!(!b.root().join("volumes").join(&anonymous).exists());

    // Without -v, the anonymous volume stays.
    b.ok(&["create", "--name", "c2", "-v", "/anon", IMAGE_REF, "true"]);
    b.ok(&["rm", "c2"]);
    assert_eq!(volume_dirs(&b).len(), 2, "{:?}", volume_dirs(&b));
    assert_clean(&b);
}

#[test]
fn containers_share_a_volume_whose_data_outlives_them_and_a_restart() {
    let mut b = daemon();
    b.ok(&["run", "-d", "--name", "reader", "-v", "shared:/s", IMAGE_REF, "sleep", "1000"]);
    b.ok(&["run", "--rm", "-v", "shared:/s", IMAGE_REF, "sh", "-c", "echo hi > /s/f"]);
    assert_eq!(b.ok(&["exec", "reader", "cat", "/s/f"]), "hi\n");

    // In use, running or not: refused, with -f too.
    let id = inspect(&b, "reader")["Id"].as_str().expect("Id").to_string();
    for args in [&["volume", "rm", "shared"][..], &["volume", "rm", "-f", "shared"][..]] {
        let out = b.berth(args);
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(out.stderr, format!("Error response from daemon: remove shared: volume is in use - [{id}]\n"));
    }
    b.ok(&["stop", "-t", "0", "reader"]);
    assert_eq!(b.berth(&["volume", "rm", "shared"]).code, 1);
    b.ok(&["rm", "reader"]);

    assert_eq!(b.ok(&["run", "--rm", "-v", "shared:/s", IMAGE_REF, "cat", "/s/f"]), "hi\n");
    b.restart();
    assert_eq!(volume_names(&b), ["shared"]);
    assert_eq!(b.ok(&["run", "--rm", "-v", "shared:/s", IMAGE_REF, "cat", "/s/f"]), "hi\n");
    assert_eq!(b.ok(&["volume", "rm", "shared"]), "shared\n");
    assert!(volume_dirs(&b).is_empty());
    assert_clean(&b);
}

#[test]
fn read_only_mounts_refuse_writes_inside() {
    let b = daemon();
    let out = b.berth(&["run", "--rm", "-v", "rodata:/data:ro", IMAGE_REF, "sh", "-c", "echo x > /data/f"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    let out = b.berth(&["run", "--rm", "--mount", "src=rodata,dst=/data,readonly", IMAGE_REF, "touch", "/data/f"]);
    assert!(out.code != 0 && out.stderr.contains("Read-only file system"), "{out}");
    b.ok(&["create", "--name", "ro", "-v", "rodata:/data:ro", IMAGE_REF, "true"]);
    let mount = &inspect(&b, "ro")["Mounts"][0];
    assert_eq!((mount["Mode"].as_str(), mount["RW"].as_bool()), (Some("ro"), Some(false)), "{mount}");
    assert_clean(&b);
}

#[test]
fn volumes_from_mounts_another_containers_volumes_and_binds() {
    let b = daemon();
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("marker"), "bound").expect("write");
    let bind = format!("{}:/hb", host_dir.path().display());
    b.ok(&["create", "--name", "source", "-v", "vf:/vf", "-v", &bind, IMAGE_REF, "true"]);
    let out =
        b.ok(&["run", "--rm", "--volumes-from", "source", IMAGE_REF, "sh", "-c", "echo a > /vf/x; cat /hb/marker"]);
    assert_eq!(out, "bound");
    assert_eq!(std::fs::read_to_string(b.root().join("volumes/vf/_data/x")).expect("written through"), "a\n");
    let out = b.berth(&["run", "--rm", "--volumes-from", "source:ro", IMAGE_REF, "sh", "-c", "echo b > /vf/y"]);
    assert!(out.code != 0 && out.stderr.contains("Read-only file system"), "{out}");
    let out = b.berth(&["run", "--rm", "--volumes-from", "nosuch", IMAGE_REF, "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("No such container: nosuch"), "{out}");
    // The volume of `source` is not removed with a container that only borrowed it.
    b.ok(&["run", "--name", "borrower", "--volumes-from", "source", IMAGE_REF, "true"]);
    let borrower = inspect(&b, "borrower");
    assert_eq!(borrower["HostConfig"]["VolumesFrom"], serde_json::json!(["source"]));
    let mut destinations: Vec<&str> =
        borrower["Mounts"].as_array().expect("Mounts").iter().filter_map(|m| m["Destination"].as_str()).collect();
    destinations.sort();
    assert_eq!(destinations, ["/hb", "/vf"]);
    b.ok(&["rm", "-v", "borrower"]);
    assert_eq!(volume_dirs(&b), ["vf"]);
    assert_clean(&b);
}

#[test]
fn volume_commands_print_like_docker() {
    let b = daemon();
    assert_eq!(b.ok(&["volume", "create", "--label", "tier=db", "labelled"]), "labelled\n");
    assert_eq!(b.ok(&["volume", "create", "labelled"]), "labelled\n", "an existing name is no error");
    let random = b.ok(&["volume", "create"]).trim().to_string();
    assert!(random.len() == 64 && random.bytes().all(|c| c.is_ascii_hexdigit()), "{random}");
    b.ok(&["create", "--name", "user", "-v", "used:/u", IMAGE_REF, "true"]);

    let ls = b.ok(&["volume", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "DRIVER    VOLUME NAME", "{ls}");
    assert_eq!(lines.len(), 4, "{ls}");
    assert!(lines.contains(&"local     labelled"), "{ls}");
    assert_eq!(b.ok(&["volume", "ls", "-q", "--filter", "label=tier=db"]), "labelled\n");
    assert_eq!(b.ok(&["volume", "ls", "-q", "-f", "dangling=false"]), "used\n");
    assert_eq!(b.ok(&["volume", "ls", "-q", "-f", "name=label"]), "labelled\n");
    let out = b.berth(&["volume", "ls", "-f", "colour=red"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Error response from daemon: Invalid filter 'colour'\n"));

    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "labelled"])).expect("JSON");
    let object = v[0].as_object().expect("an object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]);
    assert_eq!(v[0]["Labels"], serde_json::json!({"tier": "db"}));
    assert_eq!(v[0]["Mountpoint"], b.root().join("volumes/labelled/_data").display().to_string());
    assert_eq!((v[0]["Driver"].as_str(), v[0]["Scope"].as_str()), (Some("local"), Some("local")));
    assert!(Path::new(v[0]["Mountpoint"].as_str().expect("path")).is_dir());
    let out = b.berth(&["volume", "inspect", "nosuch"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Error: No such volume: nosuch\n"));

    std::fs::write(b.root().join("volumes/labelled/_data/blob"), vec![7u8; 2000]).expect("write");
    let pruned = b.ok(&["volume", "prune", "-f"]);
    let mut expected = [random.as_str(), "labelled"];
    expected.sort();
    assert_eq!(pruned, format!("Deleted Volumes:\n{}\n{}\n\nTotal reclaimed space: 2kB\n", expected[0], expected[1]));
    assert_eq!(volume_names(&b), ["used"]);
    let out = b.berth(&["volume", "rm", "nosuch"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("No such volume: nosuch"), "{out}");
    assert_eq!(b.berth(&["volume", "rm", "-f", "nosuch"]).code, 0);
    b.ok(&["volume", "create", "spare"]);
    let pruned = b.ok(&["system", "prune", "--volumes"]);
    assert!(pruned.starts_with("Deleted Volumes:\nspare\n\n"), "{pruned}");
    assert_eq!(volume_names(&b), ["used"]);
    let df = b.ok(&["system", "df"]);
    let volumes_row: Vec<&str> =
        df.lines().find(|l| l.starts_with("Local Volumes")).expect("row").split_whitespace().collect();
    assert_eq!(volumes_row[2..4], ["1", "1"], "{df}");
    assert_clean(&b);
}

#[test]
fn bad_volume_input_is_refused_with_dockers_errors_and_leaves_nothing() {
    let b = daemon();
    let cases: &[(&[&str], &str)] = &[
        (&["volume", "create", "a/b"], "\"a/b\" includes invalid characters for a local volume name"),
        (&["volume", "create", ".."], "includes invalid characters for a local volume name"),
        (&["volume", "create", "-d", "nfs", "x1"], "plugin \"nfs\" not found"),
        (&["run", "--rm", "-v", "a/b:/data", IMAGE_REF, "true"], "includes invalid characters"),
        (
            &["run", "--rm", "-v", "v1:data", IMAGE_REF, "true"],
            "invalid mount path: 'data' mount path must be absolute",
        ),
        (&["run", "--rm", "-v", "v1:/", IMAGE_REF, "true"], "destination can't be '/'"),
        (&["run", "--rm", "-v", "v1:/d", "-v", "v2:/d", IMAGE_REF, "true"], "Duplicate mount point: /d"),
        (&["run", "--rm", "-v", "v1:/d", "--mount", "src=v2,dst=/d/", IMAGE_REF, "true"], "Duplicate mount point: /d"),
        (&["run", "--rm", "-v", "v1:/d:bogus", IMAGE_REF, "true"], "invalid mode: bogus"),
        // Failures after the volume was made take it back.
        (
            &["run", "--rm", "-v", "fresh:/d", "--mount", "type=bind,src=/no/such/dir,dst=/x", IMAGE_REF, "true"],
            "bind source path does not exist: /no/such/dir",
        ),
        (&["run", "--rm", "-v", "fresh:/d", "-u", "ghost", IMAGE_REF, "true"], "ghost"),
        (
            &["run", "--rm", "-v", "fresh:/d", "--volumes-from", "nosuch", IMAGE_REF, "true"],
            "No such container: nosuch",
        ),
    ];
    for (args, message) in cases {
        let out = b.berth(args);
        assert_ne!(out.code, 0, "{args:?}: {out}");
        assert!(out.stderr.contains(message), "{args:?}: want {message:?}: {out}");
    }
    assert!(volume_names(&b).is_empty(), "{:?}", volume_names(&b));
    assert!(volume_dirs(&b).is_empty(), "{:?}", volume_dirs(&b));
    assert!(b.ok(&["ps", "-aq"]).is_empty());
    assert_clean(&b);
}

/// What a user sees of one command: failed or not, stdout, stderr, with container ids replaced.
/// Lines are sorted: docker lists volumes in no particular order (a Go map's).
fn seen(out: &berth_integration::engines::process::Outcome, ids: &[String]) -> (bool, Vec<String>, String) {
    let scrub = |text: &str| ids.iter().fold(text.to_string(), |t, id| t.replace(id.as_str(), "<id>"));
    let mut lines: Vec<String> = scrub(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    (out.code == 0, lines, scrub(&out.stderr))
}

#[test]
fn volume_messages_match_docker_20_10() {
    let b = daemon();
    let scratch = Scratch::new("vols");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    dockerd.load(&busybox().docker_archive());
    let docker = |args: &[&str]| run(dockerd.docker().args(args));

    let create = |args: &[&str]| {
        let args = [&["create", "--network", "none"][..], args, &[IMAGE_REF, "true"]].concat();
        (b.ok(&args).trim().to_string(), run_ok(dockerd.docker().args(&args)).trim().to_string())
    };
    let (berth_id, docker_id) = create(&["--name", "user", "-v", "named1:/n"]);
    create(&["--name", "anon", "-v", "/anon"]);
    create(&["--name", "mnt", "--mount", "type=volume,src=mvol,dst=/m,readonly"]);
    create(&["--name", "mnta", "--mount", "type=volume,dst=/ma"]);
    create(&[
        "--name",
        "mntb",
        "--mount",
        "type=volume,src=mvol2,dst=/mb,volume-nocopy,volume-label=k=v",
        "--mount",
        "type=bind,src=/tmp,dst=/hb,readonly",
        "--mount",
        "type=bind,src=/tmp,dst=/hc,bind-propagation=rslave",
    ]);
    let mounts = "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}} {{.Propagation}}{{end}}";
    // HostConfig.Mounts as JSON values: berth prints an object's keys sorted, docker in its
    // struct's order; both leave empty fields out.
    for name in ["mnt", "mnta", "mntb"] {
        let args = ["inspect", "-f", "{{json .HostConfig.Mounts}}", name];
        let parse = |out: String| serde_json::from_str::<Value>(&out).expect("HostConfig.Mounts is JSON");
        assert_eq!(parse(b.ok(&args)), parse(run_ok(dockerd.docker().args(args))), "HostConfig.Mounts of {name}");
    }
    let steps: &[&[&str]] = &[
        &["inspect", "-f", mounts, "anon"],
        &["inspect", "-f", mounts, "mnta"],
        &["inspect", "-f", mounts, "mnt"],
        &["inspect", "-f", "{{json .HostConfig.Binds}}", "mnt"],
        &["inspect", "-f", "{{json .HostConfig.Binds}}", "user"],
        &["inspect", "-f", "{{json .HostConfig.Binds}}", "anon"],
        &["inspect", "-f", "{{json .HostConfig.Mounts}}", "user"],
        &["rm", "-v", "anon", "mnt", "mnta", "mntb"],
        &["volume", "create", "--label", "a=b", "lab"],
        &["volume", "create", "lab"],
        &["volume", "ls"],
        &["volume", "ls", "-q", "--filter", "label=a=b"],
        &["volume", "ls", "-q", "--filter", "dangling=true"],
        &["volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Links}} {{.Size}}"],
        &["volume", "ls", "--format", "table {{.Name}}\t{{.Labels}}"],
        &["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Options}}", "lab"],
        &["volume", "inspect", "nosuch"],
        &["volume", "rm", "nosuch"],
        &["volume", "rm", "-f", "nosuch"],
        &["volume", "create", "a/b"],
        &["volume", "create", "-d", "nfs", "x1"],
        &["volume", "rm", "named1"],
        &["volume", "rm", "-f", "named1"],
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}} {{.Propagation}}{{end}}",
            "user",
        ],
        &["rm", "user"],
        &["volume", "prune", "-f"],
        &["volume", "ls"],
    ];
    for step in steps {
        let ours = seen(&b.berth(step), std::slice::from_ref(&berth_id));
        let theirs = seen(&docker(step), std::slice::from_ref(&docker_id));
        assert_eq!(ours, theirs, "berth {step:?} (left) differs from docker (right)");
    }
    // docker's run/create wrap the daemon's message ("docker: …\nSee 'docker create --help'.").
    let bad: &[&[&str]] = &[
        &["-v", "v1:/"],
        &["-v", "v1:data"],
        &["-v", "a/b:/d"],
        &["-v", "v1:/d:bogus"],
        &["-v", "/anon:ro"],
        &["-v", "v1:/d", "-v", "v2:/d"],
        &["-v", "v1:/d", "--mount", "src=v2,dst=/d"],
    ];
    for spec in bad {
        let args = [&["create", "--network", "none"][..], spec, &[IMAGE_REF, "true"]].concat();
        let ours = b.berth(&args);
        let theirs = docker(&args);
        assert!(ours.code != 0 && theirs.code != 0, "{spec:?}: {ours}\n{theirs}");
        // berth checks a mode before calling berthd: "Error: …" rather than the daemon's words.
        let message =
            ours.stderr.trim().trim_start_matches("Error response from daemon: ").trim_start_matches("Error: ");
        assert!(theirs.stderr.contains(message), "{spec:?}: berth says {message:?}, docker {:?}", theirs.stderr);
    }
    assert_clean(&b);
}

/// Unmounts its paths (last first) when dropped, so a failing test leaves no host mount.
struct HostMounts(Vec<PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

#[test]
fn bind_propagation_rslave_shows_later_host_mounts_and_the_default_does_not() {
    let b = daemon();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).expect("mkdir");
    let mut host_mounts = HostMounts(Vec::new());
    // A shared mount of its own: what the host shares is what a slave receives.
    run_ok(Command::new("mount").arg("--bind").arg(&source).arg(&source));
    host_mounts.0.push(source.clone());
    run_ok(Command::new("mount").arg("--make-shared").arg(&source));
    let slave = format!("type=bind,src={},dst=/h,bind-propagation=rslave", source.display());
    let private = format!("type=bind,src={},dst=/h", source.display());
    b.ok(&["run", "-d", "--name", "slave", "--mount", &slave, IMAGE_REF, "sleep", "1000"]);
    b.ok(&["run", "-d", "--name", "private", "--mount", &private, IMAGE_REF, "sleep", "1000"]);

    run_ok(Command::new("mount").args(["-t", "tmpfs", "berth-it-propagation"]).arg(source.join("sub")));
    host_mounts.0.push(source.join("sub"));
    std::fs::write(source.join("sub/marker"), "").expect("write");
    assert_eq!(b.ok(&["exec", "slave", "ls", "/h/sub"]), "marker\n");
    assert_eq!(b.ok(&["exec", "private", "ls", "/h/sub"]), "");
    assert_eq!(inspect(&b, "slave")["Mounts"][0]["Propagation"], "rslave");
    assert_eq!(inspect(&b, "private")["Mounts"][0]["Propagation"], "rprivate");
    b.remove_all_containers();
    drop(host_mounts);
    assert_clean(&b);
}
