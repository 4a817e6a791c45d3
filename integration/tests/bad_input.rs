//! Bad input to every command: each case fails with a clear message on stderr and a non-zero
//! exit, and leaves nothing behind (no state dir, no cgroup, no mount, no process, no fifo, and
//! nothing created outside the state root).

use berth_integration::{assert_no_cgroup, cgroup_dirs_named, host_mounts_containing, unique_id, Bundle, Runtime};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// stderr with the text log format's `\"` escapes undone, so messages can be matched as written.
fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).replace("\\\"", "\"")
}

/// Asserts `out` is a failure whose stderr contains every one of `wants`; returns stderr.
fn assert_fails(out: &Output, what: &str, wants: &[&str]) -> String {
    let stderr = stderr_of(out);
    assert!(
        !out.status.success(),
        "{what}: succeeded but must fail\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    for want in wants {
        assert!(stderr.contains(want), "{what}: stderr does not say {want:?}:\n{stderr}");
    }
    stderr
}

/// Processes that still belong to a test: the bundle path in their cmdline, root or cwd, or
/// `needle` (a unique container id) in their cgroup.
fn processes_mentioning(bundle: &Path, id: Option<&str>) -> Vec<String> {
    let me = std::process::id().to_string();
    let bundle = bundle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let p = e.path();
        let cmdline = std::fs::read(p.join("cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " "));
        let cmdline = cmdline.unwrap_or_default();
        let link = |name: &str| std::fs::read_link(p.join(name)).map(|l| l.display().to_string()).unwrap_or_default();
        let cgroup = std::fs::read_to_string(p.join("cgroup")).unwrap_or_default();
        let hit = cmdline.contains(&bundle)
            || link("root").contains(&bundle)
            || link("cwd").contains(&bundle)
            || id.is_some_and(|id| cgroup.lines().any(|l| l.ends_with(&format!("/{id}"))));
        if hit {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn files_named(dir: &Path, name: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if e.file_name() == name {
            out.push(path.display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files_named(&path, name, out);
        }
    }
}

/// Nothing of a failed operation remains: the state root holds only `keep`, and there is no
/// cgroup, mount, process or exec fifo of container `id` / bundle `bundle`.
fn assert_nothing_left(rt: &Runtime, bundle: &Path, id: Option<&str>, keep: &[&str]) {
    let entries: Vec<String> = std::fs::read_dir(rt.root())
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let extra: Vec<&String> = entries.iter().filter(|e| !keep.contains(&e.as_str())).collect();
    assert!(extra.is_empty(), "left in the state root: {extra:?}");
    if let Some(id) = id {
        assert!(!rt.root().join(id).exists(), "state dir of {id} left behind");
        assert_no_cgroup(id);
        assert!(host_mounts_containing(id).is_empty(), "mounts left: {:?}", host_mounts_containing(id));
    }
    let mounts = host_mounts_containing(bundle.to_str().unwrap());
    assert!(mounts.is_empty(), "mounts of the bundle left: {mounts:?}");
    let procs = processes_mentioning(bundle, id);
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let mut fifos = Vec::new();
    files_named(rt.root(), "exec.fifo", &mut fifos);
    files_named(bundle, "exec.fifo", &mut fifos);
    let stray: Vec<&String> = fifos.iter().filter(|f| !keep.iter().any(|k| f.contains(&format!("/{k}/")))).collect();
    assert!(stray.is_empty(), "exec fifos left: {stray:?}");
}

/// `create` of `bundle` fails naming every one of `wants`, and leaves nothing; so does `run`.
fn assert_create_refused(bundle: &Bundle, what: &str, wants: &[&str]) {
    let rt = Runtime::new();
    for cmd in ["create", "run"] {
        let id = unique_id("bad");
        let out = rt.run(&[cmd, "--bundle", bundle.path().to_str().unwrap(), &id]);
        assert_fails(&out, &format!("{what} ({cmd})"), wants);
        assert_nothing_left(&rt, bundle.path(), Some(&id), &[]);
    }
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn malformed_config_json_is_refused() {
    let bundle = Bundle::new(&["true"]);
    std::fs::write(bundle.path().join("config.json"), b"{ \"ociVersion\": \"1.0.2\", ").unwrap();
    assert_create_refused(&bundle, "truncated JSON", &["config.json is not valid JSON"]);

    // The message names the field (top-level section) and what was wrong with it.
    for (what, edit, wants) in [
        ("args as a string", serde_json::json!({"process": {"args": "sh"}}), ["\"process\"", "invalid type: string"]),
        ("root as a number", serde_json::json!({"root": 5}), ["\"root\"", "invalid type: integer"]),
        ("uid as a string", serde_json::json!({"process": {"user": {"uid": "root"}}}), ["\"process\"", "expected u32"]),
        (
            "mounts as an object",
            serde_json::json!({"mounts": {"destination": "/x"}}),
            ["\"mounts\"", "invalid type: map"],
        ),
        ("ociVersion as a number", serde_json::json!({"ociVersion": 1}), ["ociVersion", "not a string"]),
    ] {
        let bundle = Bundle::new(&["true"]);
        bundle.edit(|c| merge(c, &edit));
        assert_create_refused(&bundle, what, &[&["config.json"][..], &wants[..]].concat());
    }

    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["process"]["args"] = serde_json::json!([]));
    assert_create_refused(&bundle, "empty process.args", &["process.args must not be empty"]);
    bundle.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    assert_create_refused(&bundle, "no process", &["config.json has no process"]);
}

/// Shallow-recursive JSON merge of `patch` into `value`.
fn merge(value: &mut serde_json::Value, patch: &serde_json::Value) {
    match (value, patch) {
        (serde_json::Value::Object(v), serde_json::Value::Object(p)) => {
            for (k, pv) in p {
                match v.get_mut(k) {
                    Some(existing) if existing.is_object() && pv.is_object() => merge(existing, pv),
                    _ => {
                        v.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (v, p) => *v = p.clone(),
    }
}

#[test]
fn missing_config_json_and_missing_rootfs_are_refused() {
    let bundle = Bundle::new(&["true"]);
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    assert_create_refused(&bundle, "missing config.json", &["config.json", "No such file"]);

    let bundle = Bundle::new(&["true"]);
    std::fs::remove_dir_all(bundle.rootfs()).unwrap();
    assert_create_refused(&bundle, "missing rootfs", &["rootfs", "No such file"]);

    let rt = Runtime::new();
    let id = unique_id("nobundle");
    let missing = std::env::temp_dir().join(unique_id("berth-no-bundle"));
    let out = rt.run(&["create", "--bundle", missing.to_str().unwrap(), &id]);
    assert_fails(&out, "missing bundle", &["bundle", "No such file"]);
    assert_nothing_left(&rt, &missing, Some(&id), &[]);
    assert!(!missing.exists());
}

#[test]
fn unknown_namespace_type_is_refused() {
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "bogus"})));
    assert_create_refused(&bundle, "namespace type bogus", &["\"linux\"", "unknown variant `bogus`"]);
}

#[test]
fn oci_version_2_is_refused_and_1_0_to_1_3_are_accepted() {
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["ociVersion"] = "2.0.0".into());
    assert_create_refused(&bundle, "ociVersion 2.0.0", &["unsupported ociVersion 2.0.0"]);

    let rt = Runtime::new();
    for version in ["1.0.0", "1.0.2", "1.3.0"] {
        bundle.edit(|c| c["ociVersion"] = version.into());
        let id = unique_id("version");
        let (code, stdout, stderr) = rt.run_container(&bundle, &id);
        assert_eq!(code, 0, "ociVersion {version}: {stdout}{stderr}");
        rt.assert_gone(&id);
    }
}

#[test]
fn invalid_signals_are_refused_and_the_container_is_untouched() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = unique_id("badsig");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let state = rt.ok(&["state", &id]);
    let pid = serde_json::from_str::<serde_json::Value>(&state).unwrap()["pid"].as_i64().unwrap();
    for sig in ["NOPE", "999", "SIG", "SIGNOPE", "0x9", ""] {
        let out = rt.run(&["kill", &id, sig]);
        assert_fails(&out, &format!("kill {sig:?}"), &["invalid signal"]);
        assert_eq!(rt.status(&id), "created", "kill {sig:?} changed the container");
        assert!(alive(pid), "kill {sig:?} killed init");
    }
    // Still a working container.
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn invalid_ids_are_refused_by_every_command_and_create_nothing() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let escape = unique_id("berth-escape");
    let escape_id = format!("../{escape}");
    let long = "a".repeat(2000);
    let ids = [escape_id.as_str(), "../x", "a/b", "", ".", "..", "a b", long.as_str(), "/abs"];
    let b = bundle.path().to_str().unwrap();
    for id in ids {
        for args in [
            vec!["create", "--bundle", b, id],
            vec!["run", "--bundle", b, id],
            vec!["state", id],
            vec!["start", id],
            vec!["kill", id, "KILL"],
            vec!["delete", id],
            vec!["delete", "--force", id],
        ] {
            let out = rt.run(&args);
            assert_fails(&out, &format!("{args:?}"), &["invalid container id"]);
            assert_nothing_left(&rt, bundle.path(), None, &[]);
        }
    }
    let parent = rt.root().parent().unwrap();
    assert!(!parent.join(&escape).exists(), "create made {}", parent.join(&escape).display());
    assert!(cgroup_dirs_named(&escape).is_empty(), "cgroups made for {escape}");
}

#[test]
fn duplicate_create_fails_and_leaves_the_existing_container_alone() {
    let rt = Runtime::new();
    let first = Bundle::new(&["sleep", "60"]);
    let second = Bundle::new(&["sleep", "61"]);
    let id = unique_id("dup");
    rt.ok(&["create", "--bundle", first.path().to_str().unwrap(), &id]);
    let state_before = std::fs::read(rt.root().join(&id).join("state.json")).unwrap();
    let pid = serde_json::from_str::<serde_json::Value>(&rt.ok(&["state", &id])).unwrap()["pid"].as_i64().unwrap();

    for cmd in ["create", "run"] {
        let out = rt.run(&[cmd, "--bundle", second.path().to_str().unwrap(), &id]);
        assert_fails(&out, &format!("duplicate {cmd}"), &["already exists"]);
        // Nothing of the second attempt, everything of the first.
        assert_nothing_left(&rt, second.path(), None, &[&id]);
        assert_eq!(std::fs::read(rt.root().join(&id).join("state.json")).unwrap(), state_before);
        assert!(rt.root().join(&id).join("exec.fifo").exists(), "the existing container lost its exec fifo");
        assert_eq!(rt.status(&id), "created");
        assert!(alive(pid), "the existing container's init died");
        assert!(!cgroup_dirs_named(&id).is_empty(), "the existing container lost its cgroup");
    }
    rt.ok(&["start", &id]);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"sleep\x0060\0"), "the existing container runs {cmdline:?}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    assert_nothing_left(&rt, first.path(), Some(&id), &[]);
}

#[test]
fn start_of_stopped_or_missing_and_delete_of_missing() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let id = unique_id("stopped");
    rt.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let out = rt.run(&["start", &id]);
    assert_fails(&out, "start of a stopped container", &["stopped"]);
    assert_eq!(rt.status(&id), "stopped");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);

    let missing = unique_id("missing");
    let out = rt.run(&["start", &missing]);
    assert_fails(&out, "start of a missing container", &["does not exist"]);
    let out = rt.run(&["state", &missing]);
    assert_fails(&out, "state of a missing container", &["does not exist"]);
    let out = rt.run(&["kill", &missing, "KILL"]);
    assert_fails(&out, "kill of a missing container", &["does not exist"]);
    let out = rt.run(&["delete", &missing]);
    assert_fails(&out, "delete of a missing container", &["does not exist"]);
    // Like runc: --force makes a missing container a success.
    rt.ok(&["delete", "--force", &missing]);
    assert_nothing_left(&rt, bundle.path(), Some(&missing), &[]);
    assert_nothing_left(&rt, bundle.path(), Some(&id), &[]);
}

#[test]
fn missing_executable_fails_at_create_time() {
    let bundle = Bundle::new(&["nope"]);
    assert_create_refused(&bundle, "args[0] not in PATH", &["exec: \"nope\": executable file not found in $PATH"]);
    let bundle = Bundle::new(&["/bin/nope"]);
    assert_create_refused(&bundle, "args[0] missing", &["/bin/nope"]);
}

#[test]
fn a_program_that_cannot_be_executed_is_refused_with_its_cause_like_runc() {
    for (program, cause) in [
        ("/nope", "exec: \"/nope\": stat /nope: no such file or directory"),
        ("/etc/passwd", "exec: \"/etc/passwd\": permission denied"),
        ("/etc", "exec: \"/etc\": is a directory"),
    ] {
        let bundle = Bundle::new(&[program]);
        assert_create_refused(&bundle, program, &[cause]);
    }
}

#[test]
fn failing_bind_mount_is_reported_and_unwound() {
    let bundle = Bundle::new(&["true"]);
    let source = std::env::temp_dir().join(unique_id("berth-no-such-source"));
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/mnt/data", "type": "bind", "source": source, "options": ["rbind"]
        }))
    });
    assert_create_refused(&bundle, "missing bind source", &["/mnt/data", source.to_str().unwrap()]);
    assert!(!source.exists(), "the missing bind source was created on the host");
    assert!(!bundle.rootfs().join("mnt/data").exists(), "the mount point was created for a missing source");
}

#[test]
fn unsupported_features_are_named() {
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
    assert_create_refused(&bundle, "seccomp notify as the default action", &["SCMP_ACT_NOTIFY", "default action"]);

    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["resources"] = serde_json::json!({"network": {"classID": 1048577}}));
    assert_create_refused(&bundle, "net_cls class id", &["linux.resources.network", "not supported"]);

    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["netDevices"] = serde_json::json!({"eth9": {"name": "eth0"}}));
    assert_create_refused(&bundle, "netDevices", &["linux.netDevices", "not supported"]);

    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let id = unique_id("systemd");
    let b = bundle.path().to_str().unwrap();
    for args in
        [vec!["--systemd-cgroup", "create", "--bundle", b, &id], vec!["run", "--systemd-cgroup", "--bundle", b, &id]]
    {
        let out = rt.run(&args);
        assert_fails(&out, "--systemd-cgroup", &["--systemd-cgroup", "not supported"]);
        assert_nothing_left(&rt, bundle.path(), Some(&id), &[]);
    }
}
