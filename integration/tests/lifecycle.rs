//! The runc lifecycle contract: create leaves init waiting, start releases it, statuses are right
//! at every step, delete removes everything.

use berth_integration::{Bundle, Runtime};
use std::time::Duration;

#[test]
fn create_start_state_kill_delete_report_each_status() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = berth_integration::unique_id("life");
    let pid_file = bundle.path().join("init.pid");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), "--pid-file", pid_file.to_str().unwrap(), &id]);
    assert_eq!(rt.status(&id), "created");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
    // init is waiting on the fifo, not running the user program yet.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmdline.starts_with(b"sleep"), "init ran the program before start");

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"sleep\x0060"), "init is not running sleep 60: {cmdline:?}");

    let out = rt.run(&["delete", &id]);
    assert!(!out.status.success(), "delete of a running container must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not stopped"));

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", Duration::from_secs(5));
    let out = rt.run(&["kill", &id, "TERM"]);
    assert!(!out.status.success(), "kill of a stopped container must fail without --all");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
}

#[test]
fn run_returns_the_exit_code_and_removes_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let id = berth_integration::unique_id("exit");
    let (code, stdout, stderr) = rt.run_container(&bundle, &id);
    assert_eq!(code, 7);
    assert_eq!(stdout, "out\n");
    assert_eq!(stderr, "err\n");
    rt.assert_gone(&id);
}

#[test]
fn foreground_run_forwards_signals_and_reports_death_as_128_plus_the_signal() {
    let rt = Runtime::new();
    // The container's init traps TERM and says so: proves the signal was forwarded to it. It says
    // when the trap is set: before that, a TERM to a pid namespace's init is simply ignored.
    // Realtime signals too: 34 (glibc's SIGRTMIN, which musl reserves for itself) and 40.
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo got-34' 34; trap 'echo got-40' 40; trap 'echo got-term; exit 3' TERM; echo trapped; \
         while :; do sleep 0.05; done",
    ]);
    let id = berth_integration::unique_id("sig");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut run = rt
        .command(&["run", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(out.reopen().unwrap())
        .spawn()
        .unwrap();
    let output_has = |what: &str| std::fs::read_to_string(out.path()).is_ok_and(|o| o.contains(what));
    berth_integration::wait_until("the container's trap", Duration::from_secs(30), || output_has("trapped"));
    for sig in [34, 40] {
        // SAFETY: kill(2) on the pid of our own child process.
        unsafe { libc::kill(run.id() as i32, sig) };
        berth_integration::wait_until(&format!("signal {sig} in the container"), Duration::from_secs(10), || {
            output_has(&format!("got-{sig}"))
        });
    }
    // SAFETY: kill(2) on the pid of our own child process.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "trapped\ngot-34\ngot-40\ngot-term\n");
    rt.assert_gone(&id);

    // A container killed by a signal it cannot catch: 128 + 9.
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = berth_integration::unique_id("sig");
    let mut run = rt.command(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]).spawn().unwrap();
    rt.wait_status(&id, "running", Duration::from_secs(10));
    rt.ok(&["kill", &id, "9"]);
    assert_eq!(run.wait().unwrap().code(), Some(128 + 9));
    rt.assert_gone(&id);
}

#[test]
fn delete_of_a_created_container_kills_init_and_cleans_up() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let id = berth_integration::unique_id("delcreated");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    assert!(!alive, "init {pid} still alive after delete");
}

#[test]
fn list_shows_containers_and_skips_foreign_entries() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = berth_integration::unique_id("list");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    std::fs::write(rt.root().join("berthd.sock"), b"").unwrap();
    std::fs::create_dir(rt.root().join("not-a-container")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 1, "{json}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "created");
    let table = rt.ok(&["list"]);
    assert!(table.lines().any(|l| l.starts_with(&id) && l.contains("created")), "{table}");
    rt.ok(&["delete", "--force", &id]);
    std::fs::remove_dir(rt.root().join("not-a-container")).unwrap();
    std::fs::remove_file(rt.root().join("berthd.sock")).unwrap();
}
