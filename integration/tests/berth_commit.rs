//! Images from containers through a private berthd: `berth diff` and `berth commit`, checked
//! against what was changed inside the container, against a private dockerd 20.10 doing the
//! same, by running the new image, and by moving it to docker with `save`/`load`. Run as root.

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::{run, run_ok};
use berth_integration::engines::scratch::Scratch;

/// The busybox image, built once per test binary under cargo's tmp directory.
fn busybox() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-commit-image")))
}

fn daemon() -> Berthd {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", busybox().docker_archive().to_str().expect("utf-8 path")]);
    b
}

/// Changes every kind of entry: a modified file, a new tree, a deleted file and directory, an
/// emptied-and-refilled directory (opaque in overlayfs), a symlink, a mode change.
const CHANGES: &str = "echo extra >> /etc/passwd && mkdir -p /new/sub && echo hi > /new/sub/f && \
     ln -s /new/sub/f /new/link && rm /etc/group && rm -r /var && chmod 700 /tmp && \
     rm -r /usr && mkdir /usr && echo y > /usr/y";

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn diff_lists_what_the_container_changed_as_docker_does() {
    let b = daemon();
    let scratch = Scratch::new("commit-diff");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    dockerd.load(&busybox().docker_archive());
    let args = ["run", "--name", "c1", "--network", "none", IMAGE_REF, "sh", "-c", CHANGES];
    b.ok(&args);
    run_ok(dockerd.docker().args(args));

    let ours = sorted_lines(&b.ok(&["diff", "c1"]));
    let theirs = sorted_lines(&run_ok(dockerd.docker().args(["diff", "c1"])));
    assert_eq!(ours, theirs, "berth diff (left) and docker diff (right)");
    for expected in ["C /etc/passwd", "A /new/sub/f", "D /etc/group", "D /var", "C /tmp"] {
        assert!(ours.iter().any(|l| l == expected), "{expected:?} missing from {ours:?}");
    }
    // A container that changed nothing shows nothing (its mount points are not changes).
    b.ok(&["run", "--name", "c2", "--network", "none", IMAGE_REF, "true"]);
    assert_eq!(b.ok(&["diff", "c2"]), "");

    for verb in [&["diff", "nosuch"][..], &["commit", "nosuch"][..]] {
        let (ours, theirs) = (b.berth(verb), run(dockerd.docker().args(verb)));
        assert_eq!((ours.code, ours.stderr.trim()), (theirs.code, theirs.stderr.trim()), "berth {verb:?}");
    }
}

#[test]
fn a_committed_image_holds_the_changes_and_the_containers_config() {
    let b = daemon();
    let scratch = Scratch::new("commit-img");
    let dockerd = Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[]);
    dockerd.load(&busybox().docker_archive());
    let args = [
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        "-e",
        "FOO=bar",
        "-w",
        "/new",
        "-u",
        "0:0",
        "--label",
        "k=v",
        IMAGE_REF,
        "sh",
        "-c",
        CHANGES,
    ];
    b.ok(&args);
    run_ok(dockerd.docker().args(args));
    let commit = ["commit", "-a", "someone <a@b>", "-m", "the message", "c1", "localhost/committed:v1"];
    let id = b.ok(&commit).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "commit prints the image id: {id:?}");
    run_ok(dockerd.docker().args(commit));

    // The image's config: the container's, as docker makes it.
    for field in [
        ".Config.Env",
        ".Config.Cmd",
        ".Config.Entrypoint",
        ".Config.WorkingDir",
        ".Config.User",
        ".Config.Labels",
        ".Author",
        ".Comment",
    ] {
        let format = format!("{{{{json {field}}}}}");
        let args = ["image", "inspect", "-f", &format, "localhost/committed:v1"];
        assert_eq!(b.ok(&args), run_ok(dockerd.docker().args(args)), "image {field}");
    }
    assert_eq!(b.ok(&["image", "inspect", "-f", "{{.Id}}", "localhost/committed:v1"]).trim(), id);
    let history = b.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "localhost/committed:v1"]);
    assert!(history.lines().next().is_some_and(|l| l.ends_with("|the message") && l.contains(CHANGES)), "{history}");

    // Running it shows the changes, in berth and in docker after save/load.
    let probe = "cat /new/sub/f; readlink /new/link; tail -1 /etc/passwd; test -e /etc/group || echo nogroup; \
                 test -e /var || echo novar; stat -c %a /tmp; ls /usr; pwd; echo $FOO";
    let ours = b.ok(&["run", "--rm", "--network", "none", "localhost/committed:v1", "sh", "-c", probe]);
    assert_eq!(ours, "hi\n/new/sub/f\nextra\nnogroup\nnovar\n700\ny\n/new\nbar\n");
    let theirs = run_ok(dockerd.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/committed:v1",
        "sh",
        "-c",
        probe,
    ]));
    assert_eq!(ours, theirs, "berth's image (left) and docker's commit (right) run alike");
    let archive = scratch.path().join("committed.tar");
    b.ok(&["save", "-o", archive.to_str().expect("utf-8"), "localhost/committed:v1"]);
    run_ok(dockerd.docker().args(["rmi", "localhost/committed:v1"]));
    dockerd.load(&archive);
    let loaded = run_ok(dockerd.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/committed:v1",
        "sh",
        "-c",
        probe,
    ]));
    assert_eq!(loaded, ours, "berth's image saved and loaded into docker");

    // --change sets the new image's config as a Dockerfile instruction would.
    let changes = [
        "commit",
        "-c",
        "ENV EXTRA=1",
        "-c",
        "CMD [\"cat\", \"/new/sub/f\"]",
        "-c",
        "EXPOSE 8080",
        "-c",
        "WORKDIR /new/sub",
        "c1",
        "localhost/changed:1",
    ];
    b.ok(&changes);
    run_ok(dockerd.docker().args(changes));
    for field in [".Config.Env", ".Config.Cmd", ".Config.ExposedPorts", ".Config.WorkingDir"] {
        let format = format!("{{{{json {field}}}}}");
        let args = ["image", "inspect", "-f", &format, "localhost/changed:1"];
        let parse = |t: String| serde_json::from_str::<serde_json::Value>(&t).expect("JSON");
        assert_eq!(parse(b.ok(&args)), parse(run_ok(dockerd.docker().args(args))), "--change {field}");
    }
    let bad = ["commit", "-c", "RUN true", "c1"];
    let (ours, theirs) = (b.berth(&bad), run(dockerd.docker().args(bad)));
    assert_eq!((ours.code, ours.stderr.trim()), (theirs.code, theirs.stderr.trim()));

    // Without a name the image is untagged, and listed as docker lists one.
    let untagged = b.ok(&["commit", "c1"]).trim().to_string();
    let listed = b.ok(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(listed.lines().any(|l| l == format!("<none>:<none> {untagged}")), "{listed}");
    b.ok(&["rmi", &untagged]);
}

#[test]
fn commit_pauses_a_running_container_and_resumes_it() {
    let b = daemon();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "none",
        IMAGE_REF,
        "sh",
        "-c",
        "echo 1 > /state; trap 'exit 0' TERM; echo ready > /ready; while :; do sleep 0.1; done",
    ]);
    berth_integration::wait_until("the container is ready", std::time::Duration::from_secs(10), || {
        b.berth(&["exec", "live", "cat", "/ready"]).code == 0
    });
    b.ok(&["commit", "live", "localhost/live:1"]);
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.Status}}", "live"]).trim(), "running");
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/live:1", "cat", "/state"]), "1\n");
    // berth reads a running container's layer frozen only: --pause=false is refused by name.
    let unpaused = b.berth(&["commit", "--pause=false", "live", "localhost/live:2"]);
    assert!(unpaused.code != 0 && unpaused.stderr.contains("--pause=false"), "{unpaused}");
    // diff pauses it too, and resumes it.
    assert!(b.ok(&["diff", "live"]).contains("A /state"));
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.Status}}", "live"]).trim(), "running");
    b.ok(&["rm", "-f", "live"]);
    // The image outlives the container.
    assert_eq!(b.ok(&["run", "--rm", "--network", "none", "localhost/live:1", "cat", "/state"]), "1\n");
}
