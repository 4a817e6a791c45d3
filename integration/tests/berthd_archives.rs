//! `berth save` / `berth load` against real peers: an archive berthd writes is loaded by a second
//! berthd and by a private dockerd 20.10 (whose container then runs from it), and an archive
//! dockerd's `docker save` writes is loaded by berthd. Run as root.

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::process::{run_ok, try_run, Background};
use berth_integration::engines::registry::Registry;
use berth_integration::engines::scratch::Scratch;
use berth_integration::runtime_bin;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The name dockerd knows berth-runtime by.
const RUNTIME_NAME: &str = "berth";

fn images(b: &Berthd) -> Vec<Value> {
    b.ok(&["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("images line is not JSON ({e}): {l}")))
        .collect()
}

/// `berth image inspect NAME`'s `Id` (the config digest).
fn image_id(b: &Berthd, name: &str) -> String {
    let out = b.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {out}"));
    v[0]["Id"].as_str().unwrap_or_else(|| panic!("no Id in {out}")).to_string()
}

#[test]
fn saved_archive_loads_into_berthd_and_docker_and_docker_save_loads_into_berthd() {
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    let a = Berthd::start();
    a.ok(&["pull", "-q", &name]);
    let id = image_id(&a, &name);

    let mut scratch = Scratch::new("bsave");
    let archive = scratch.path().join("busybox.tar");
    a.ok(&["save", "-o", archive.to_str().expect("utf-8 path"), &name]);
    assert!(archive.metadata().is_ok_and(|m| m.len() > 100_000), "save wrote no archive");

    // Another berthd loads it: same image id, unpacked, named as saved.
    let b = Berthd::start();
    let out = b.ok(&["load", "-i", archive.to_str().expect("utf-8 path")]);
    assert!(out.contains(&format!("Loaded image: {name}")), "berth load said: {out}");
    assert_eq!(image_id(&b, &name), id, "image id after load");
    let listed = images(&b);
    assert_eq!(listed.len(), 1, "images after load: {listed:?}");
    assert!(
        b.root().join("snapshots").read_dir().is_ok_and(|mut d| d.next().is_some()),
        "load did not unpack the image"
    );

    // dockerd 20.10 loads berthd's archive and runs a container from it.
    let dockerd =
        Dockerd::start(&scratch.path().join("docker"), scratch.cgroup_parent(), &[(RUNTIME_NAME, &runtime_bin())]);
    scratch.sweep_berth_root(&dockerd.runtime_root());
    dockerd.load(&archive);
    assert_eq!(dockerd.inspect(&name, "{{.Id}}"), id, "docker's image id of berth's archive");
    let out =
        run_ok(dockerd.docker().args(["run", "--rm", "--runtime", RUNTIME_NAME, "--network", "none", &name]).args([
            "sh",
            "-c",
            "echo loaded-by-docker; ls /bin/busybox",
        ]));
    assert!(out.contains("loaded-by-docker") && out.contains("/bin/busybox"), "docker run said: {out}");

    // And the other way: docker save's archive loads into a fresh berthd.
    let docker_archive = scratch.path().join("docker-save.tar");
    run_ok(dockerd.docker().arg("save").arg("-o").arg(&docker_archive).arg(&name));
    let c = Berthd::start();
    let out = c.ok(&["load", "-i", docker_archive.to_str().expect("utf-8 path")]);
    assert!(out.contains(&format!("Loaded image: {name}")), "berth load of docker save said: {out}");
    assert_eq!(image_id(&c, &name), id, "image id of docker's archive in berthd");

    // A truncated archive is refused and names nothing.
    let bytes = std::fs::read(&archive).expect("reading the archive");
    let cut = scratch.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("writing the cut archive");
    let d = Berthd::start();
    let out = d.berth(&["load", "-i", cut.to_str().expect("utf-8 path")]);
    assert_ne!(out.code, 0, "a truncated archive loaded: {out}");
    assert!(images(&d).is_empty(), "a failed load named an image");
}

#[test]
fn a_stalled_load_blocks_neither_rmi_nor_shutdown() {
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    let mut b = Berthd::start();
    b.ok(&["pull", "-q", &name]);
    let copy = format!("{}/copy:1", registry.host());
    b.ok(&["tag", &name, &copy]);
    let scratch = tempfile::tempdir().expect("tempdir");
    let archive = scratch.path().join("busybox.tar");
    b.ok(&["save", "-o", archive.to_str().expect("utf-8 path"), &name]);
    let bytes = std::fs::read(&archive).expect("reading the archive");

    // A load whose client sends half the archive and then stalls, its input held open.
    let fifo = scratch.path().join("stalled");
    run_ok(std::process::Command::new("mkfifo").arg(&fifo));
    let load = Background::spawn(&mut b.berth_cmd(&["load", "-i", fifo.to_str().expect("utf-8 path")]));
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).expect("opening the fifo");
    std::io::Write::write_all(&mut writer, &bytes[..bytes.len() / 2]).expect("writing half the archive");

    // Garbage collection (rmi runs it) does not wait for the stalled client.
    let started = Instant::now();
    let out = try_run(&mut b.berth_cmd(&["rmi", &copy]), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("rmi during a stalled load: {e}"));
    assert_eq!(out.code, 0, "rmi during a stalled load: {out}");
    assert!(started.elapsed() < Duration::from_secs(20), "rmi took {:?}", started.elapsed());

    // Nor does SIGTERM: the daemon exits and removes its socket (Daemon::stop would SIGKILL it
    // after 30 s; it must not come to that).
    let started = Instant::now();
    b.stop();
    assert!(started.elapsed() < Duration::from_secs(20), "berthd took {:?} to stop", started.elapsed());
    assert!(!b.socket().exists(), "the socket outlived the daemon");
    drop(writer);
    let out = load.wait();
    assert_ne!(out.code, 0, "the cut-off load succeeded: {out}");
}

/// Uploads in parallel arrive whole: each `load` streams its archive in 1 MiB frames, and the
/// frames of one stream (its close too) must reach berthd's handler in order even when many
/// streams and a loaded machine interleave them. (With upstream ttrpc 0.8.6 the close could
/// overtake the last frames, and a load now and then failed with "size mismatch".)
#[test]
fn parallel_loads_all_arrive_whole() {
    let source = Berthd::start();
    let registry = Registry::start();
    registry.push_busybox();
    let name = format!("{}/busybox:latest", registry.host());
    source.ok(&["pull", "-q", &name]);
    let scratch = Scratch::new("bload");
    let archive = scratch.path().join("busybox.tar");
    source.ok(&["save", "-o", archive.to_str().expect("utf-8 path"), &name]);
    let b = Berthd::start();
    for round in 0..3 {
        let loads: Vec<std::process::Child> = (0..8)
            .map(|_| {
                b.berth_cmd(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawning berth load")
            })
            .collect();
        for load in loads {
            let out = load.wait_with_output().expect("waiting for berth load");
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert_eq!(image_id(&b, &name), image_id(&source, &name));
}
