//! `berth save` / `berth load` against real peers: an archive berthd writes is loaded by a second
//! berthd and by a private dockerd 20.10 (whose container then runs from it), and an archive
//! dockerd's `docker save` writes is loaded by berthd. Run as root.

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::docker::Dockerd;
use berth_integration::engines::process::run_ok;
use berth_integration::engines::registry::Registry;
use berth_integration::engines::scratch::Scratch;
use berth_integration::runtime_bin;
use serde_json::Value;

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
