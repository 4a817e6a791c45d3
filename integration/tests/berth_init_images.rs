//! `berth run --init` with this build's static berth-init as the container's PID 1 (signals
//! forwarded, exit codes passed through, orphans reaped), and images that containers use: `rmi`
//! refuses them as docker does, `rmi -f` only untags, `system prune` keeps what containers need.
//! Run as root, offline: the only image is the locally loaded busybox.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::image::{BusyboxImage, IMAGE_REF};
use berth_integration::engines::process::Background;

/// The busybox image archive, built once per test binary under cargo's tmp directory.
fn image_archive() -> PathBuf {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE
        .get_or_init(|| BusyboxImage::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-init-images")))
        .docker_archive()
}

/// A private berthd with `localhost/busybox:latest` loaded.
fn daemon() -> Berthd {
    let b = Berthd::start();
    b.ok(&["load", "-q", "-i", image_archive().to_str().expect("utf-8 path")]);
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

/// `berth inspect -f TEMPLATE NAME`, trimmed.
fn inspect(b: &Berthd, name: &str, template: &str) -> String {
    b.ok(&["inspect", "-f", template, name]).trim().to_string()
}

/// The state letter of every process in container `id` (`S`, `R`, `Z`…), with its pid and name,
/// read from the container's own /proc.
fn process_states(b: &Berthd, id: &str) -> Vec<String> {
    b.ok(&["exec", id, "sh", "-c", "cat /proc/[0-9]*/stat"])
        .lines()
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            let state = rest.split_whitespace().next()?;
            Some(format!("{state} {head})"))
        })
        .collect()
}

/// Polls `done` every 100 ms until it returns true; panics naming `what` after `timeout`.
fn poll(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn init_is_pid_1_and_runs_the_command_as_its_child() {
    let b = daemon();
    let out = b.ok(&[
        "run",
        "--rm",
        "--init",
        IMAGE_REF,
        "sh",
        "-c",
        "echo pid=$$; echo ppid=$(cut -d' ' -f4 /proc/$$/stat); tr '\\0' ' ' </proc/1/cmdline; echo",
    ]);
    let line = |key: &str| out.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("no {key} in {out}"));
    assert_ne!(line("pid="), "1", "sh is PID 1 under --init: {out}");
    assert_eq!(line("ppid="), "1", "sh's parent is not PID 1: {out}");
    assert!(out.contains("/sbin/berth-init -- sh -c"), "PID 1 is not berth-init: {out}");
}

#[test]
fn init_passes_exit_codes_through() {
    let b = daemon();
    let out = b.berth(&["run", "--rm", "--init", IMAGE_REF, "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "exit code under --init: {out}");
    let out = b.berth(&["run", "--rm", "--init", IMAGE_REF, "sh", "-c", "kill -USR1 $$"]);
    assert_eq!(out.code, 128 + libc::SIGUSR1, "a command killed by SIGUSR1 under --init: {out}");
    let out = b.berth(&["run", "--rm", "--init", IMAGE_REF, "/no/such/command"]);
    assert_eq!(out.code, 127, "a missing command under --init: {out}");
    assert!(out.stderr.contains("/no/such/command"), "no message for the missing command: {out}");
}

#[test]
fn stop_of_a_shell_under_init_forwards_sigterm_without_waiting_for_the_timeout() {
    let b = daemon();
    let id = run_detached(&b, &["--init", IMAGE_REF, "sh", "-c", "sleep 1000"]);
    let started = Instant::now();
    b.ok(&["stop", "-t", "5", &id]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stop -t 5 under --init took {took:?}: SIGTERM was not forwarded");
    assert_eq!(inspect(&b, &id, "{{.State.ExitCode}}"), "143", "sh killed by the forwarded SIGTERM");
}

#[test]
fn init_reaps_orphaned_zombies_that_a_plain_pid_1_leaves() {
    let b = daemon();
    // The subshell's `sleep 0.2` is orphaned at once and exits: only the container's PID 1 can
    // reap it, and a PID 1 that is `sleep 60` never does.
    let orphan_maker = ["sh", "-c", "(sleep 0.2 &); exec sleep 60"];
    let plain = run_detached(&b, &[&[IMAGE_REF][..], &orphan_maker[..]].concat());
    let init = run_detached(&b, &[&["--init", IMAGE_REF][..], &orphan_maker[..]].concat());
    std::thread::sleep(Duration::from_millis(1500));
    // Without an init the zombie shows: the check below can see one.
    poll("the zombie without --init", Duration::from_secs(10), || {
        process_states(&b, &plain).iter().any(|p| p.starts_with('Z'))
    });
    let states = process_states(&b, &init);
    assert!(!states.iter().any(|p| p.starts_with('Z')), "zombies under --init: {states:?}");
    assert!(states.iter().any(|p| p.contains("(berth-init)")), "no berth-init in {states:?}");
}

/// `berth image inspect NAME`'s `Id` (the config digest).
fn image_id(b: &Berthd, name: &str) -> String {
    let out = b.ok(&["image", "inspect", name]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {out}"));
    v[0]["Id"].as_str().unwrap_or_else(|| panic!("no Id in {out}")).to_string()
}

/// The names `berth images` lists, as `REPOSITORY:TAG`.
fn image_names(b: &Berthd) -> Vec<String> {
    b.ok(&["images", "--format", "json"])
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("images line is not JSON ({e}): {line}"));
            format!("{}:{}", v["Repository"].as_str().unwrap_or("?"), v["Tag"].as_str().unwrap_or("?"))
        })
        .collect()
}

#[test]
fn rmi_of_the_last_name_of_an_image_a_container_uses_is_refused_and_rmi_f_only_untags() {
    let b = daemon();
    b.ok(&["run", "--name", "user", IMAGE_REF, "echo", "ran"]);
    let container = inspect(&b, "user", "{{.Id}}");
    let image = image_id(&b, IMAGE_REF);

    let out = b.berth(&["rmi", IMAGE_REF]);
    assert_eq!(out.code, 1, "rmi of an image a stopped container uses: {out}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"{IMAGE_REF}\" (must force) - container {} is using its referenced image {}",
            &container[..12],
            &image["sha256:".len()..][..12]
        ),
        "{out}"
    );
    assert_eq!(image_names(&b), [IMAGE_REF], "the refused rmi removed something");

    // Another name of the same image is not the last one: it goes without force.
    b.ok(&["tag", IMAGE_REF, "localhost/other:1"]);
    let out = b.ok(&["rmi", "localhost/other:1"]);
    assert_eq!(out.trim(), "Untagged: localhost/other:1", "rmi of a second name");

    // -f removes the name only; neither gc nor a prune takes what the container runs from.
    let out = b.ok(&["rmi", "-f", IMAGE_REF]);
    assert_eq!(out.trim(), format!("Untagged: {IMAGE_REF}"), "rmi -f of an image in use deleted more than its name");
    assert!(image_names(&b).is_empty(), "rmi -f left the name");
    b.ok(&["system", "prune", "-f"]);
    let out = b.ok(&["start", "-a", "user"]);
    assert_eq!(out.trim(), "ran", "the container of an untagged, pruned image did not run again");
}

#[test]
fn rmi_of_an_image_a_running_container_uses_is_refused() {
    let b = daemon();
    let container = run_detached(&b, &[IMAGE_REF, "sleep", "60"]);
    let out = b.berth(&["rmi", IMAGE_REF]);
    assert_eq!(out.code, 1, "rmi of an image a running container uses: {out}");
    assert!(
        out.stderr.contains(&format!("(must force) - container {} is using its referenced image", &container[..12])),
        "{out}"
    );
    assert_eq!(image_names(&b), [IMAGE_REF], "the refused rmi removed something");
}

#[test]
fn events_show_a_run_rm_as_docker_container_events() {
    let b = daemon();
    b.ok(&["run", "-d", "--name", "warm", IMAGE_REF, "sleep", "60"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("events.txt");
    let events = b.berth_cmd(&["events", "--filter", "type=container"]);
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("exec \"$@\" > '{}'", seen.display()))
        .arg("sh")
        .arg(events.get_program())
        .args(events.get_args());
    let _events = Background::spawn(&mut sh);
    let lines = || std::fs::read_to_string(&seen).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>();
    // The subscription is made asynchronously: rename a container until its event shows.
    let mut name = "warm".to_string();
    poll("the first event", Duration::from_secs(20), || {
        let next = format!("warm{}", name.len());
        b.ok(&["rename", &name, &next]);
        name = next;
        std::thread::sleep(Duration::from_millis(200));
        lines().iter().any(|l| l.contains(" container rename "))
    });

    let out = b.berth(&["run", "--rm", "--name", "web", IMAGE_REF, "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{out}");
    poll("the destroy event of run --rm", Duration::from_secs(20), || {
        lines().iter().any(|l| l.contains(" container destroy ") && l.contains("name=web"))
    });
    let web: Vec<Vec<String>> = lines()
        .iter()
        .filter(|l| l.ends_with("name=web)"))
        .map(|l| l.splitn(5, ' ').map(String::from).collect())
        .collect();
    let actions: Vec<&str> = web
        .iter()
        .map(|fields| fields[2].as_str())
        .filter(|a| ["create", "start", "die", "destroy"].contains(a))
        .collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "events of run --rm: {:?}", lines());
    for fields in &web {
        let [time, kind, _, id, attributes] = &fields[..] else { panic!("not docker's layout: {fields:?}") };
        assert!(
            time.len() == "2026-12-03T04:00:00.000000000Z".len() && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "time {time}"
        );
        assert_eq!(kind, "container");
        assert!(id.len() == 64 && id == &web[0][3], "actor {id} of {fields:?}");
        assert!(attributes.contains(&format!("image={IMAGE_REF}")), "no image in {attributes}");
        if fields[2] == "die" {
            assert!(attributes.starts_with("(exitCode=3, image="), "die attributes {attributes}");
        }
    }
    assert!(
        lines().iter().all(|l| l.split(' ').nth(1) == Some("container")),
        "the type filter let through: {:?}",
        lines()
    );
}
