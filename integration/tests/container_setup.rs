//! What a process sees from inside a real container: its namespaces, its root filesystem and
//! mounts, /dev, masked and read-only paths, hostname and sysctls. Every assertion is made on
//! what the container itself printed (or, for escapes, on what the host still has afterwards).

use berth_integration::{host_mounts_containing, unique_id, Bundle, Runtime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prints `ns_<type>=<readlink /proc/self/ns/<type>>` for every namespace type.
const NS_FACTS: &str =
    "for n in pid net mnt ipc uts cgroup user time; do echo \"ns_$n=$(readlink /proc/self/ns/$n)\"; done";

/// Prints the container's mountinfo, each line prefixed with `mi: `.
const MOUNTINFO: &str = "sed 's/^/mi: /' /proc/self/mountinfo";

fn sh_bundle(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

/// Runs the bundle in the foreground, asserts it exited 0 and left nothing behind; its stdout.
fn run_ok(rt: &Runtime, bundle: &Bundle, prefix: &str) -> String {
    let id = unique_id(prefix);
    let (code, out, err) = rt.run_container(bundle, &id);
    assert_eq!(code, 0, "container {id} failed\nstdout: {out}\nstderr: {err}");
    rt.assert_gone(&id);
    out
}

/// The value of the first `key=value` line of `out`.
fn fact<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    out.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

/// `readlink /proc/self/ns/<kind>` of the test process (the host's namespaces).
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

/// The host's hostname.
fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

fn host_ns_of(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

/// One line of /proc/self/mountinfo.
#[derive(Debug)]
struct MountInfo {
    root: String,
    mount_point: String,
    options: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    super_options: Vec<String>,
}

impl MountInfo {
    fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    fn has_super(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }

    fn tag(&self, prefix: &str) -> bool {
        self.optional.iter().any(|o| o.starts_with(prefix))
    }
}

/// The `mi: ` lines of a container's output (see [`MOUNTINFO`]).
fn mountinfo(out: &str) -> Vec<MountInfo> {
    out.lines()
        .filter_map(|l| l.strip_prefix("mi: "))
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-").unwrap_or_else(|| panic!("bad mountinfo line {l}"));
            MountInfo {
                root: fields[3].to_string(),
                mount_point: fields[4].to_string(),
                options: fields[5].split(',').map(str::to_string).collect(),
                optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
                fstype: fields[sep + 1].to_string(),
                super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
            }
        })
        .collect()
}

/// The topmost mount at `mount_point`.
fn mount_at<'a>(mounts: &'a [MountInfo], mount_point: &str) -> &'a MountInfo {
    mounts.iter().rev().find(|m| m.mount_point == mount_point).unwrap_or_else(|| {
        panic!("nothing mounted at {mount_point}: {:#?}", mounts.iter().map(|m| &m.mount_point).collect::<Vec<_>>())
    })
}

fn is_mounted(mounts: &[MountInfo], mount_point: &str) -> bool {
    mounts.iter().any(|m| m.mount_point == mount_point)
}

fn namespaces(config: &mut Value) -> &mut Vec<Value> {
    config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces")
}

fn remove_ns(config: &mut Value, typ: &str) {
    namespaces(config).retain(|n| n["type"] != typ);
}

fn set_ns(config: &mut Value, typ: &str, path: Option<&str>) {
    remove_ns(config, typ);
    let ns = match path {
        Some(p) => json!({"type": typ, "path": p}),
        None => json!({"type": typ}),
    };
    namespaces(config).push(ns);
}

fn add_mount(config: &mut Value, mount: Value) {
    config["mounts"].as_array_mut().expect("mounts").push(mount);
}

/// A tmpfs the test mounts on the host (in a directory it owns); lazily unmounted on drop.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(path: &Path, shared: bool) -> HostTmpfs {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "berth-it"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", path.display());
        let guard = HostTmpfs(path.to_path_buf());
        if shared {
            let ok = std::process::Command::new("mount").arg("--make-shared").arg(path).status().unwrap().success();
            assert!(ok, "mount --make-shared {}", path.display());
        }
        guard
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2 reads a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `create` (the container's stdout going to a file), then `start`; waits for it to stop,
/// deletes it and returns its stdout. `between` runs on the host after create, before start.
fn create_start_collect(rt: &Runtime, bundle: &Bundle, prefix: &str, between: impl FnOnce()) -> String {
    let id = unique_id(prefix);
    let output = rt.create_with_output(bundle, &id);
    between();
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
    output.stdout()
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

#[test]
fn new_pid_namespace_makes_the_process_pid_1() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "echo pid=$$; echo pid1=$(cat /proc/1/comm); echo maxpid=$(ls /proc | grep '^[0-9]' | sort -n | tail -1); \
         {NS_FACTS}"
    ));
    let out = run_ok(&rt, &bundle, "pidns");
    assert_eq!(fact(&out, "pid"), "1");
    // /proc is the container's: pid 1 there is the container's own shell, not the host's init.
    assert_eq!(fact(&out, "pid1"), "sh");
    // Only the shell and its short-lived children exist in the namespace.
    let maxpid: u32 = fact(&out, "maxpid").parse().unwrap();
    assert!(maxpid < 20, "the container sees pid {maxpid}:\n{out}");
    assert_ne!(fact(&out, "ns_pid"), host_ns("pid"));
    assert!(fact(&out, "ns_pid").starts_with("pid:["));
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!("echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '); {NS_FACTS}"));
    let out = run_ok(&rt, &bundle, "netns");
    assert_eq!(fact(&out, "ifaces"), "lo");
    assert_ne!(fact(&out, "ns_net"), host_ns("net"));
}

#[test]
fn loopback_is_up_in_a_new_network_namespace_and_left_alone_in_a_joined_one() {
    let rt = Runtime::new();
    let bundle = sh_bundle("ip link show lo");
    let out = run_ok(&rt, &bundle, "netlo");
    assert!(out.contains(",UP") || out.contains("<UP"), "lo is not up: {out}");

    // A namespace joined by path is its owner's: its lo (down, as the kernel made it) stays so.
    let holder = berth_integration::NamespaceHolder::new("net", "net");
    bundle.edit(|c| set_ns(c, "network", Some(holder.ns_path("net").to_str().expect("utf-8"))));
    let out = run_ok(&rt, &bundle, "netlo");
    assert!(out.contains("lo:") && !out.contains(",UP"), "lo of a joined namespace changed: {out}");
}

#[test]
fn new_mount_ipc_and_uts_namespaces_are_private_to_the_container() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!("echo hostname=$(hostname); {NS_FACTS}; {MOUNTINFO}"));
    let out = run_ok(&rt, &bundle, "mntipcuts");
    assert_ne!(fact(&out, "ns_mnt"), host_ns("mnt"));
    assert_ne!(fact(&out, "ns_ipc"), host_ns("ipc"));
    assert_ne!(fact(&out, "ns_uts"), host_ns("uts"));
    assert_eq!(fact(&out, "hostname"), "berth");
    assert_ne!(host_hostname(), "berth", "the container's hostname leaked to the host");
    // The mount table is the container's: "/" is the bundle's rootfs and no host mount is seen.
    let mounts = mountinfo(&out);
    let root = mount_at(&mounts, "/");
    assert_eq!(Path::new(&root.root), bundle.rootfs(), "{root:?}");
    assert!(!is_mounted(&mounts, bundle.rootfs().to_str().unwrap()));
    assert!(host_mounts_containing(bundle.path().to_str().unwrap()).is_empty(), "container mounts leaked to the host");
}

#[test]
fn new_cgroup_namespace_shows_root_cgroup_paths_inside() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!("sed 's/^/cg: /' /proc/self/cgroup; {NS_FACTS}"));
    let out = run_ok(&rt, &bundle, "cgns");
    assert_ne!(fact(&out, "ns_cgroup"), host_ns("cgroup"));
    let lines: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("cg: ")).collect();
    assert!(!lines.is_empty(), "{out}");
    for line in lines {
        assert!(line.ends_with(":/"), "cgroup path is not the namespace root: {line}");
    }
}

#[test]
fn namespaces_absent_from_config_are_the_hosts() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '); \
         sed 's/^/cg: /' /proc/self/cgroup; {NS_FACTS}"
    ));
    bundle.edit(|c| {
        for typ in ["network", "ipc", "uts", "cgroup"] {
            remove_ns(c, typ);
        }
        c.as_object_mut().unwrap().remove("hostname");
    });
    let id = unique_id("hostns");
    let (code, out, err) = rt.run_container(&bundle, &id);
    assert_eq!(code, 0, "{out}\n{err}");
    rt.assert_gone(&id);
    for (ns, kind) in [("ns_net", "net"), ("ns_ipc", "ipc"), ("ns_uts", "uts"), ("ns_cgroup", "cgroup")] {
        assert_eq!(fact(&out, ns), host_ns(kind), "{kind} namespace is not the host's");
    }
    // Namespaces still in the config are new.
    assert_ne!(fact(&out, "ns_mnt"), host_ns("mnt"));
    assert_ne!(fact(&out, "ns_pid"), host_ns("pid"));
    // The host's interfaces are all there.
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let mut host_ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    host_ifaces.sort();
    assert_eq!(fact(&out, "ifaces").trim(), host_ifaces.join(" "));
    // Without a cgroup namespace the container sees its real cgroup path, ending in its id.
    let v1_line = out.lines().filter_map(|l| l.strip_prefix("cg: ")).find(|l| l.contains(":pids:"));
    if let Some(line) = v1_line {
        assert!(line.ends_with(&format!("/{id}")), "pids cgroup seen as {line}");
    }
}

#[test]
fn user_namespace_maps_container_root_to_the_host_range() {
    let rt = Runtime::new();
    let shared = tempfile::Builder::new().prefix("berth-it-userns-").tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let bundle = sh_bundle(&format!(
        "echo uid_map=$(cat /proc/self/uid_map); echo gid_map=$(cat /proc/self/gid_map); \
         echo uid=$(id -u); echo gid=$(id -g); echo busybox_owner=$(stat -c %u /bin/busybox); \
         echo null=$(stat -c '%F %t %T' /dev/null); touch /out/made-in-userns && echo made=yes; {NS_FACTS}"
    ));
    // The rootfs belongs to host root, which is unmapped (nobody) in the namespace: the mount
    // point must exist already, container root cannot create it.
    std::fs::create_dir(bundle.rootfs().join("out")).unwrap();
    let src = shared.path().to_str().unwrap().to_string();
    bundle.edit(|c| {
        set_ns(c, "user", None);
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        add_mount(c, json!({"destination": "/out", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    });
    let out = run_ok(&rt, &bundle, "userns");
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(squeeze(fact(&out, "uid_map")), "0 100000 65536");
    assert_eq!(squeeze(fact(&out, "gid_map")), "0 100000 65536");
    assert_eq!(fact(&out, "uid"), "0");
    assert_eq!(fact(&out, "gid"), "0");
    assert_eq!(fact(&out, "busybox_owner"), "65534", "host root should be unmapped (nobody) inside");
    assert_eq!(fact(&out, "null"), "character special file 1 3");
    assert_eq!(fact(&out, "made"), "yes");
    assert_ne!(fact(&out, "ns_user"), host_ns("user"));
    // What container root creates is owned by the mapped host ids.
    let meta = std::fs::metadata(shared.path().join("made-in-userns")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
}

#[test]
fn time_namespace_applies_monotonic_and_boottime_offsets() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "sed 's/^/off: /' /proc/self/timens_offsets; echo uptime=$(cut -d' ' -f1 /proc/uptime); {NS_FACTS}"
    ));
    bundle.edit(|c| {
        set_ns(c, "time", None);
        c["linux"]["timeOffsets"] =
            json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 172800, "nanosecs": 0}});
    });
    let host_uptime =
        || -> f64 { std::fs::read_to_string("/proc/uptime").unwrap().split(' ').next().unwrap().parse().unwrap() };
    let before = host_uptime();
    let out = run_ok(&rt, &bundle, "timens");
    let after = host_uptime();
    assert_ne!(fact(&out, "ns_time"), host_ns("time"));
    let offsets: Vec<Vec<&str>> =
        out.lines().filter_map(|l| l.strip_prefix("off: ")).map(|l| l.split_whitespace().collect()).collect();
    assert!(offsets.contains(&vec!["monotonic", "86400", "0"]), "{offsets:?}");
    assert!(offsets.contains(&vec!["boottime", "172800", "0"]), "{offsets:?}");
    // /proc/uptime is CLOCK_BOOTTIME: two days ahead of the host's inside.
    let inside: f64 = fact(&out, "uptime").parse().unwrap();
    assert!(inside >= before + 172800.0 && inside <= after + 172800.0, "uptime {inside}, host {before}..{after}");
}

#[test]
fn namespaces_given_by_path_are_joined() {
    let rt = Runtime::new();
    // A helper container, only created: its init holds its namespaces.
    let helper = Bundle::new(&["sleep", "60"]);
    let helper_id = unique_id("nshelper");
    rt.ok(&["create", "--bundle", helper.path().to_str().unwrap(), &helper_id]);
    let state: Value = serde_json::from_str(&rt.ok(&["state", &helper_id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();

    let bundle = sh_bundle(&format!("echo pid=$$; {NS_FACTS}"));
    bundle.edit(|c| {
        set_ns(c, "network", Some(&format!("/proc/{pid}/ns/net")));
        set_ns(c, "ipc", Some(&format!("/proc/{pid}/ns/ipc")));
        set_ns(c, "pid", Some(&format!("/proc/{pid}/ns/pid")));
    });
    let out = run_ok(&rt, &bundle, "nsjoin");
    for (fact_name, kind) in [("ns_net", "net"), ("ns_ipc", "ipc"), ("ns_pid", "pid")] {
        assert_eq!(fact(&out, fact_name), host_ns_of(pid, kind), "{kind} namespace was not joined");
        assert_ne!(fact(&out, fact_name), host_ns(kind));
    }
    // The helper's init is pid 1 of the joined pid namespace.
    assert_ne!(fact(&out, "pid"), "1");
    // Namespaces without a path are new, not the helper's.
    assert_ne!(fact(&out, "ns_uts"), host_ns_of(pid, "uts"));
    assert_ne!(fact(&out, "ns_mnt"), host_ns_of(pid, "mnt"));

    rt.ok(&["delete", "--force", &helper_id]);
    rt.assert_gone(&helper_id);
}

// ---------------------------------------------------------------------------------------------
// Root filesystem and mounts
// ---------------------------------------------------------------------------------------------

#[test]
fn readonly_root_refuses_writes_while_a_tmpfs_mount_stays_writable() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "w=$(touch /probe 2>&1); echo root_write=$?:$w; \
         echo tmp-data > /tmp/probe && echo tmp_write=$(cat /tmp/probe); {MOUNTINFO}"
    ));
    bundle.edit(|c| add_mount(c, json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})));
    let out = run_ok(&rt, &bundle, "roroot");
    let root_write = fact(&out, "root_write");
    assert!(!root_write.starts_with("0:"), "writing to / succeeded");
    assert!(root_write.contains("Read-only file system"), "{root_write}");
    assert_eq!(fact(&out, "tmp_write"), "tmp-data");
    let mounts = mountinfo(&out);
    assert!(mount_at(&mounts, "/").has("ro"));
    assert!(mount_at(&mounts, "/tmp").has("rw"));
    assert!(!bundle.rootfs().join("probe").exists());
}

#[test]
fn relative_root_path_is_resolved_against_the_bundle() {
    let rt = Runtime::new();
    let bundle = sh_bundle("cat /marker");
    std::fs::create_dir_all(bundle.path().join("images/v1")).unwrap();
    std::fs::rename(bundle.rootfs(), bundle.path().join("images/v1/rootfs")).unwrap();
    std::fs::write(bundle.path().join("images/v1/rootfs/marker"), "nested-rootfs\n").unwrap();
    bundle.edit(|c| c["root"]["path"] = json!("images/v1/rootfs"));
    // The runtime runs from the test's cwd, not from the bundle.
    assert_ne!(std::env::current_dir().unwrap(), bundle.path());
    let out = run_ok(&rt, &bundle, "relroot");
    assert_eq!(out, "nested-rootfs\n");
}

#[test]
fn bind_and_rbind_mounts_honour_ro_rw_and_recursion() {
    let rt = Runtime::new();
    let src = tempfile::Builder::new().prefix("berth-it-bindsrc-").tempdir().unwrap();
    std::fs::write(src.path().join("file"), "from-host\n").unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    let _sub = HostTmpfs::mount(&src.path().join("sub"), false);
    std::fs::write(src.path().join("sub/inner"), "inner\n").unwrap();
    let rw = tempfile::Builder::new().prefix("berth-it-bindrw-").tempdir().unwrap();

    let bundle = sh_bundle(&format!(
        "echo bind_file=$(cat /mnt/bind/file); echo bind_sub=$(ls /mnt/bind/sub | wc -l); \
         echo rbind_inner=$(cat /mnt/rbind/sub/inner); \
         w=$(touch /mnt/bind/x 2>&1); echo bind_write=$?:$w; \
         w=$(touch /mnt/rbind/x 2>&1); echo rbind_write=$?:$w; \
         echo file_bind=$(cat /etc/hostfile); \
         echo from-container > /mnt/rw/written && echo rw_write=ok; {MOUNTINFO}"
    ));
    let (s, f, r) = (
        src.path().to_str().unwrap().to_string(),
        src.path().join("file").to_str().unwrap().to_string(),
        rw.path().to_str().unwrap().to_string(),
    );
    bundle.edit(|c| {
        add_mount(c, json!({"destination": "/mnt/bind", "type": "bind", "source": s, "options": ["bind", "ro"]}));
        add_mount(c, json!({"destination": "/mnt/rbind", "source": s, "options": ["rbind", "ro", "nosuid", "nodev"]}));
        add_mount(c, json!({"destination": "/etc/hostfile", "type": "bind", "source": f, "options": ["bind", "ro"]}));
        add_mount(c, json!({"destination": "/mnt/rw", "type": "bind", "source": r, "options": ["bind", "rw"]}));
    });
    let out = run_ok(&rt, &bundle, "bind");
    assert_eq!(fact(&out, "bind_file"), "from-host");
    assert_eq!(fact(&out, "bind_sub"), "0", "a plain bind must not carry the submount");
    assert_eq!(fact(&out, "rbind_inner"), "inner", "rbind must carry the submount");
    for key in ["bind_write", "rbind_write"] {
        assert!(fact(&out, key).contains("Read-only file system"), "{key}: {}", fact(&out, key));
    }
    assert_eq!(fact(&out, "file_bind"), "from-host");
    assert_eq!(fact(&out, "rw_write"), "ok");
    assert_eq!(std::fs::read_to_string(rw.path().join("written")).unwrap(), "from-container\n");

    let mounts = mountinfo(&out);
    assert!(mount_at(&mounts, "/mnt/bind").has("ro"));
    assert!(!is_mounted(&mounts, "/mnt/bind/sub"));
    let rbind = mount_at(&mounts, "/mnt/rbind");
    assert!(rbind.has("ro") && rbind.has("nosuid") && rbind.has("nodev"), "{rbind:?}");
    assert_eq!(mount_at(&mounts, "/mnt/rbind/sub").fstype, "tmpfs");
    assert!(mount_at(&mounts, "/etc/hostfile").has("ro"));
    assert!(mount_at(&mounts, "/mnt/rw").has("rw"));
}

#[test]
fn recursive_mount_options_apply_to_every_submount_like_runc() {
    let rt = Runtime::new();
    let src = tempfile::Builder::new().prefix("berth-it-rattr-").tempdir().unwrap();
    std::fs::write(src.path().join("file"), "top\n").unwrap();
    std::os::unix::fs::symlink("file", src.path().join("link")).unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    let _sub = HostTmpfs::mount(&src.path().join("sub"), false);
    std::fs::write(src.path().join("sub/inner"), "inner\n").unwrap();
    std::os::unix::fs::symlink("inner", src.path().join("sub/link")).unwrap();

    let bundle = sh_bundle(&format!(
        "w=$(touch /mnt/r/sub/x 2>&1); echo sub_write=$?:$w; \
         w=$(cat /mnt/r/sub/link 2>&1); echo sub_link=$?:$w; echo sub_readlink=$(readlink /mnt/r/sub/link); \
         echo plain_link=$(cat /mnt/plain/link); w=$(cat /mnt/nosym/link 2>&1); echo nosym_link=$?:$w; {MOUNTINFO}"
    ));
    let s = src.path().to_str().unwrap().to_string();
    bundle.edit(|c| {
        add_mount(
            c,
            json!({"destination": "/mnt/r", "type": "bind", "source": s,
                   "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"]}),
        );
        add_mount(c, json!({"destination": "/mnt/plain", "type": "bind", "source": s, "options": ["rbind"]}));
        add_mount(
            c,
            json!({"destination": "/mnt/nosym", "type": "bind", "source": s, "options": ["bind", "nosymfollow"]}),
        );
    });
    let out = run_ok(&rt, &bundle, "rattr");
    // The non-recursive nosymfollow, on the bind mount itself.
    assert!(fact(&out, "nosym_link").contains("Too many levels"), "{}", fact(&out, "nosym_link"));
    assert!(fact(&out, "sub_write").contains("Read-only file system"), "{}", fact(&out, "sub_write"));
    // nosymfollow: a symlink is not followed (ELOOP) but can still be read.
    assert!(fact(&out, "sub_link").contains("Too many levels of symbolic links"), "{}", fact(&out, "sub_link"));
    assert_eq!(fact(&out, "sub_readlink"), "inner");
    assert_eq!(fact(&out, "plain_link"), "top");
    let mounts = mountinfo(&out);
    for point in ["/mnt/r", "/mnt/r/sub"] {
        let m = mount_at(&mounts, point);
        for opt in ["ro", "nosuid", "nodev", "noexec", "noatime", "nosymfollow"] {
            assert!(m.has(opt), "{point} lacks {opt}: {m:?}");
        }
    }
    let plain = mount_at(&mounts, "/mnt/plain/sub");
    assert!(plain.has("rw") && !plain.has("nosymfollow"), "{plain:?}");
}

#[test]
fn tmpfs_mount_data_sets_mode_size_and_flags() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!("echo mode=$(stat -c %a /scratch); {MOUNTINFO}"));
    bundle.edit(|c| {
        add_mount(
            c,
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "noexec", "mode=1770", "size=2m"]}),
        )
    });
    let out = run_ok(&rt, &bundle, "tmpfs");
    assert_eq!(fact(&out, "mode"), "1770");
    let mounts = mountinfo(&out);
    let m = mount_at(&mounts, "/scratch");
    assert_eq!(m.fstype, "tmpfs");
    assert!(m.has("nosuid") && m.has("nodev") && m.has("noexec"), "{m:?}");
    assert!(m.has_super("size=2048k") && m.has_super("mode=1770"), "{m:?}");
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_the_directory_it_hides() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "cd /etc-like && for f in passwd secret sub sub/deep link; do \
           echo \"entry $f $(stat -c '%a %u:%g %Y' $f)\"; done; \
         echo root=$(stat -c '%a %u:%g' .); echo link=$(readlink link); echo deep=$(cat sub/deep); \
         echo new > sub/added && echo wrote=$(cat sub/added); {MOUNTINFO}"
    ));
    let dir = bundle.rootfs().join("etc-like");
    std::fs::create_dir(&dir).expect("mkdir etc-like");
    std::fs::write(dir.join("passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    std::fs::write(dir.join("secret"), "s\n").expect("secret");
    std::fs::create_dir(dir.join("sub")).expect("sub");
    std::fs::write(dir.join("sub/deep"), "deep-content\n").expect("deep");
    symlink("passwd", dir.join("link")).expect("link");
    let chmod = |p: &str, mode: u32| {
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod("secret", 0o640);
    chmod("sub", 0o710);
    chmod(".", 0o751);
    std::os::unix::fs::chown(dir.join("secret"), Some(1234), Some(5678)).expect("chown");
    std::os::unix::fs::chown(&dir, Some(42), Some(43)).expect("chown");
    // Old times, set last: a copy that does not keep them shows the time of the copy.
    for (p, t) in [("passwd", "200001010000"), ("secret", "200102030405"), ("sub/deep", "200203040506")] {
        let ok = std::process::Command::new("touch").args(["-h", "-t", t]).arg(dir.join(p)).status().expect("touch");
        assert!(ok.success());
    }
    let ok = std::process::Command::new("touch").args(["-t", "200304050607"]).arg(dir.join("sub")).status().unwrap();
    assert!(ok.success());
    let host_stat = |p: &str| {
        let out = std::process::Command::new("stat").args(["-c", "%a %u:%g %Y"]).arg(dir.join(p)).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let expected: Vec<String> =
        ["passwd", "secret", "sub", "sub/deep", "link"].iter().map(|p| format!("entry {p} {}", host_stat(p))).collect();
    bundle.edit(|c| {
        add_mount(
            c,
            json!({"destination": "/etc-like", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "tmpcopyup"]}),
        )
    });
    let out = run_ok(&rt, &bundle, "tmpcopyup");
    let entries: Vec<&str> = out.lines().filter(|l| l.starts_with("entry ")).collect();
    assert_eq!(entries, expected, "copied entries differ from the rootfs's:\n{out}");
    assert_eq!(fact(&out, "root"), "751 42:43", "{out}");
    assert_eq!((fact(&out, "link"), fact(&out, "deep"), fact(&out, "wrote")), ("passwd", "deep-content", "new"));
    let mounts = mountinfo(&out);
    let m = mount_at(&mounts, "/etc-like");
    assert_eq!(m.fstype, "tmpfs", "{m:?}");
    assert!(m.has("nosuid") && m.has("nodev"), "{m:?}");
    // The container wrote to the tmpfs, not to the rootfs below it.
    assert!(!dir.join("sub/added").exists(), "a write inside the tmpfs reached the rootfs");
}

#[test]
fn personality_linux32_makes_the_container_a_32_bit_machine() {
    let rt = Runtime::new();
    let bundle = sh_bundle("echo machine=$(uname -m)");
    assert_eq!(fact(&run_ok(&rt, &bundle, "persona"), "machine"), std::env::consts::ARCH);
    bundle.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let out = run_ok(&rt, &bundle, "persona");
    let machine = fact(&out, "machine");
    assert_ne!(machine, std::env::consts::ARCH, "{out}");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(machine, "i686");
    }
    bundle.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    assert_eq!(fact(&run_ok(&rt, &bundle, "persona"), "machine"), std::env::consts::ARCH);
    // Flags are refused by name, not ignored.
    bundle.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}));
    let id = unique_id("persona");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0, "personality flags were accepted");
    assert!(err.contains("personality flags"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn io_priority_is_set_for_the_container_process() {
    let rt = Runtime::new();
    let bundle = sh_bundle("echo ioprio=$(ionice)");
    bundle.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}));
    assert_eq!(fact(&run_ok(&rt, &bundle, "ioprio"), "ioprio"), "best-effort: prio 6");
    bundle.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    assert_eq!(fact(&run_ok(&rt, &bundle, "ioprio"), "ioprio"), "idle");
    bundle.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}));
    let id = unique_id("ioprio");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0, "priority 8 was accepted");
    assert!(err.contains("out of range"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn scheduler_policy_and_nice_are_set_for_the_container_process() {
    let rt = Runtime::new();
    // /proc/self/stat of awk itself: field 19 is the nice value, 41 the policy (3 = SCHED_BATCH).
    let bundle = sh_bundle("awk '{print \"nice=\" $19; print \"policy=\" $41}' /proc/self/stat");
    bundle.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let out = run_ok(&rt, &bundle, "sched");
    assert_eq!((fact(&out, "policy"), fact(&out, "nice")), ("3", "7"), "{out}");
    bundle.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}));
    assert_eq!(fact(&run_ok(&rt, &bundle, "sched"), "policy"), "5");
    bundle.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 30}));
    let id = unique_id("sched");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0, "nice 30 was accepted");
    assert!(err.contains("out of range"), "{err}");
    rt.assert_gone(&id);
}

#[test]
fn default_special_filesystems_are_mounted_with_their_flags() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "echo pts=$(ls /dev/pts | tr '\\n' ' '); echo self=$(readlink /proc/self); \
         echo cgroup_files=$(ls /sys/fs/cgroup | wc -l); {MOUNTINFO}"
    ));
    let out = run_ok(&rt, &bundle, "specialfs");
    let mounts = mountinfo(&out);
    assert_eq!(mount_at(&mounts, "/proc").fstype, "proc");
    assert_eq!(fact(&out, "self").len(), 1, "/proc is not the container's pid namespace");

    let sys = mount_at(&mounts, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has(flag), "/sys lacks {flag}: {sys:?}");
    }
    let dev = mount_at(&mounts, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(dev.has("nosuid") && dev.has_super("mode=755"), "{dev:?}");
    let pts = mount_at(&mounts, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert!(pts.has("nosuid") && pts.has("noexec"), "{pts:?}");
    assert!(pts.has_super("ptmxmode=666") && pts.has_super("mode=620") && pts.has_super("gid=5"), "{pts:?}");
    // newinstance: none of the host's ptys are visible.
    assert_eq!(fact(&out, "pts").trim(), "ptmx");
    let shm = mount_at(&mounts, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.has("nosuid") && shm.has("nodev") && shm.has("noexec"), "{shm:?}");
    let mq = mount_at(&mounts, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    assert!(mq.has("nosuid") && mq.has("nodev") && mq.has("noexec"), "{mq:?}");

    let cg = mount_at(&mounts, "/sys/fs/cgroup");
    assert!(cg.has("ro") && cg.has("nosuid") && cg.has("nodev") && cg.has("noexec"), "{cg:?}");
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cg.fstype, "cgroup2");
    } else {
        // cgroup v1: a read-only tmpfs holding one read-only mount per hierarchy.
        assert_eq!(cg.fstype, "tmpfs");
        let hierarchies: Vec<&MountInfo> = mounts.iter().filter(|m| m.fstype == "cgroup").collect();
        assert!(!hierarchies.is_empty(), "no cgroup hierarchy mounted");
        for h in &hierarchies {
            assert!(h.mount_point.starts_with("/sys/fs/cgroup/"), "{h:?}");
            assert!(h.has("ro") && h.has("nosuid") && h.has("nodev") && h.has("noexec"), "{h:?}");
        }
        assert!(hierarchies.iter().any(|h| h.mount_point == "/sys/fs/cgroup/pids"));
    }
    assert_ne!(fact(&out, "cgroup_files"), "0");
}

#[test]
fn mount_propagation_options_show_in_mountinfo_and_govern_host_mounts() {
    let rt = Runtime::new();
    // A shared mount on the host (created by this test) as the source of rslave/rprivate binds.
    let dir = tempfile::Builder::new().prefix("berth-it-prop-").tempdir().unwrap();
    let shared_src = dir.path().join("shared");
    std::fs::create_dir(&shared_src).unwrap();
    let _shared = HostTmpfs::mount(&shared_src, true);
    std::fs::create_dir(shared_src.join("late")).unwrap();
    let plain_src = dir.path().join("plain");
    std::fs::create_dir(&plain_src).unwrap();

    let bundle = sh_bundle(&format!(
        "echo slave_late=$(cat /mnt/slave/late/hello 2>&1); echo private_late=$(ls /mnt/private/late | wc -l); \
         {MOUNTINFO}"
    ));
    let (shared_s, plain_s) = (shared_src.to_str().unwrap().to_string(), plain_src.to_str().unwrap().to_string());
    bundle.edit(|c| {
        add_mount(c, json!({"destination": "/mnt/slave", "source": shared_s, "options": ["rbind", "rslave"]}));
        add_mount(c, json!({"destination": "/mnt/private", "source": shared_s, "options": ["rbind", "rprivate"]}));
        add_mount(c, json!({"destination": "/mnt/shared", "source": plain_s, "options": ["bind", "rshared"]}));
    });
    let mut late = None;
    let out = create_start_collect(&rt, &bundle, "prop", || {
        // After create, before start: a new host mount propagates only into the slave.
        late = Some(HostTmpfs::mount(&shared_src.join("late"), false));
        std::fs::write(shared_src.join("late/hello"), "propagated\n").unwrap();
    });
    drop(late);

    let mounts = mountinfo(&out);
    let slave = mount_at(&mounts, "/mnt/slave");
    assert!(slave.tag("master:") && !slave.tag("shared:"), "{slave:?}");
    assert_eq!(fact(&out, "slave_late"), "propagated");
    assert!(is_mounted(&mounts, "/mnt/slave/late"));
    let private = mount_at(&mounts, "/mnt/private");
    assert!(private.optional.is_empty(), "{private:?}");
    assert_eq!(fact(&out, "private_late"), "0");
    assert!(!is_mounted(&mounts, "/mnt/private/late"));
    let shared = mount_at(&mounts, "/mnt/shared");
    assert!(shared.tag("shared:"), "{shared:?}");
}

#[test]
fn a_mount_made_in_an_rshared_volume_appears_on_the_host_with_rootfs_propagation_rshared() {
    let rt = Runtime::new();
    // Declared first, dropped last: the mounts below go before their directories.
    let dir = tempfile::Builder::new().prefix("berth-it-bidir-").tempdir().unwrap();
    let vol = dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    // A shared mount point on the host (a Bidirectional volume), in this test's scratch dir.
    let _vol = HostTmpfs::mount(&vol, true);
    std::fs::create_dir(vol.join("sub")).unwrap();
    // Unmounts what the container mounts there, whatever happens.
    let _inner = HostTmpfs(vol.join("sub"));

    let bundle = sh_bundle("mount -t tmpfs -o size=1m from-container /vol/sub && echo inside > /vol/sub/marker");
    let vol_s = vol.to_str().unwrap().to_string();
    bundle.edit(|c| {
        c["linux"]["rootfsPropagation"] = json!("rshared");
        add_mount(c, json!({"destination": "/vol", "source": vol_s, "options": ["rbind", "rshared"]}));
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_ADMIN"));
        }
    });
    run_ok(&rt, &bundle, "bidir");
    let marker = std::fs::read_to_string(vol.join("sub/marker"));
    assert_eq!(marker.ok().as_deref(), Some("inside\n"), "the container's mount did not reach the host");
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sub = format!(" {} ", vol.join("sub").display());
    assert!(host.lines().any(|l| l.contains(&sub) && l.contains("from-container")), "not on the host:\n{host}");
}

#[test]
fn rootfs_propagation_sets_the_propagation_of_the_container_root() {
    let rt = Runtime::new();
    let bundle = sh_bundle(MOUNTINFO);
    // Default (rslave): the container's / is not shared with anything.
    let out = run_ok(&rt, &bundle, "rootprop");
    let mounts = mountinfo(&out);
    assert!(!mount_at(&mounts, "/").tag("shared:"), "{:?}", mount_at(&mounts, "/"));

    bundle.edit(|c| c["linux"]["rootfsPropagation"] = json!("shared"));
    let out = run_ok(&rt, &bundle, "rootprop");
    let mounts = mountinfo(&out);
    assert!(mount_at(&mounts, "/").tag("shared:"), "{:?}", mount_at(&mounts, "/"));

    bundle.edit(|c| c["linux"]["rootfsPropagation"] = json!("private"));
    let out = run_ok(&rt, &bundle, "rootprop");
    let mounts = mountinfo(&out);
    assert!(mount_at(&mounts, "/").optional.is_empty(), "{:?}", mount_at(&mounts, "/"));
}

// ---------------------------------------------------------------------------------------------
// /dev
// ---------------------------------------------------------------------------------------------

#[test]
fn default_devices_exist_as_char_devices_with_their_numbers() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "for d in null zero full random urandom tty; do echo $d=$(stat -c '%F %t %T %a' /dev/$d); done; \
         echo hi > /dev/null && echo null_write=ok; echo zero_read=$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' '); \
         w=$(echo x 2>&1 > /dev/full); echo full_write=$?",
    );
    let out = run_ok(&rt, &bundle, "devices");
    for (name, major, minor) in
        [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
    {
        assert_eq!(fact(&out, name), format!("character special file {major:x} {minor:x} 666"), "/dev/{name}");
    }
    assert_eq!(fact(&out, "null_write"), "ok");
    assert_eq!(fact(&out, "zero_read"), "00000000");
    assert_ne!(fact(&out, "full_write"), "0", "writing /dev/full must fail (ENOSPC)");
}

#[test]
fn linux_devices_are_created_with_type_numbers_mode_and_owner() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "echo mynull=$(stat -c '%F %t %T %a %u %g' /dev/mynull); w=$(echo hi 2>&1 > /dev/mynull); echo mynull_write=$?:$w; \
         echo myfifo=$(stat -c '%F %a' /dev/myfifo); echo nested=$(stat -c '%F %t %T' /dev/sub/myzero); \
         echo zero=$(head -c 2 /dev/sub/myzero | od -An -tx1 | tr -d ' ')",
    );
    bundle.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001},
            {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640},
            {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5}
        ])
    });
    let out = run_ok(&rt, &bundle, "linuxdev");
    assert_eq!(fact(&out, "mynull"), "character special file 1 3 600 1000 1001");
    // Container root has no CAP_DAC_OVERRIDE: mode 0600 and owner 1000 are enforced.
    let write = fact(&out, "mynull_write");
    assert!(!write.starts_with("0:") && write.contains("Permission denied"), "{write}");
    assert_eq!(fact(&out, "myfifo"), "fifo 640");
    assert_eq!(fact(&out, "nested"), "character special file 1 5");
    assert_eq!(fact(&out, "zero"), "0000");
}

#[test]
fn linux_devices_are_allowed_in_the_device_cgroup_under_a_deny_all_rule_like_runc() {
    let rt = Runtime::new();
    // /dev/fuse's numbers: opening it is harmless, and it is not among the default devices.
    let bundle = sh_bundle("echo dev=$(stat -c '%F %t %T' /dev/test1); echo open=$(: < /dev/test1 && echo ok)");
    bundle.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/test1", "type": "c", "major": 10, "minor": 229}]);
        c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    });
    let out = run_ok(&rt, &bundle, "devcg");
    assert_eq!(fact(&out, "dev"), "character special file a e5");
    assert_eq!(fact(&out, "open"), "ok");

    // `update` rewrites the device rules whole: the listed device stays allowed.
    bundle.edit(|c| c["process"]["args"] = json!(["sleep", "60"]));
    let id = unique_id("devcgupd");
    rt.ok(&["run", "--detach", "--bundle", bundle.path().to_str().expect("utf-8"), &id]);
    let resources = bundle.path().join("resources.json");
    std::fs::write(&resources, r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).expect("resources.json");
    rt.ok(&["update", "--resources", resources.to_str().expect("utf-8"), &id]);
    let out = rt.ok(&["exec", &id, "sh", "-c", ": < /dev/test1 && echo ok"]);
    assert_eq!(out, "ok\n");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
}

#[test]
fn dev_has_private_pts_ptmx_link_shm_and_fd_links() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "echo ptmx=$(readlink /dev/ptmx); echo pts_ptmx=$(stat -c '%F %t %T' /dev/pts/ptmx); \
         echo shm_mode=$(stat -c %a /dev/shm); echo shm-data > /dev/shm/f && echo shm=$(cat /dev/shm/f); \
         for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done; \
         echo fd_list=$(ls /dev/fd/ | head -3 | tr '\\n' ' '); echo via-dev-stdout >> /dev/stdout",
    );
    let out = run_ok(&rt, &bundle, "devlinks");
    assert_eq!(fact(&out, "ptmx"), "pts/ptmx");
    assert_eq!(fact(&out, "pts_ptmx"), "character special file 5 2");
    assert_eq!(fact(&out, "shm_mode"), "1777");
    assert_eq!(fact(&out, "shm"), "shm-data");
    assert_eq!(fact(&out, "fd"), "/proc/self/fd");
    assert_eq!(fact(&out, "stdin"), "/proc/self/fd/0");
    assert_eq!(fact(&out, "stdout"), "/proc/self/fd/1");
    assert_eq!(fact(&out, "stderr"), "/proc/self/fd/2");
    assert!(out.lines().any(|l| l == "via-dev-stdout"), "{out}");
    assert!(fact(&out, "fd_list").starts_with("0 1 2"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Masked and read-only paths, identity, sysctls
// ---------------------------------------------------------------------------------------------

#[test]
fn masked_paths_are_unreadable_inside_container() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "for f in /proc/kcore /proc/timer_list /proc/keys /etc/passwd; do \
           if [ -e $f ]; then echo \"size$f=$(cat $f | wc -c)\"; fi; done; \
         echo firmware=$(ls -A /sys/firmware | wc -l); echo secret=$(ls -A /var/secret | wc -l); \
         w=$(touch /var/secret/new 2>&1); echo secret_write=$?:$w",
    );
    std::fs::create_dir_all(bundle.rootfs().join("var/secret")).unwrap();
    std::fs::write(bundle.rootfs().join("var/secret/key"), "hunter2\n").unwrap();
    bundle.edit(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.push(json!("/var/secret"));
        masked.push(json!("/etc/passwd"));
    });
    let out = run_ok(&rt, &bundle, "masked");
    // Kernel files that exist on the host read as empty (kcore is absent on some kernels).
    let mut checked = 0;
    for f in ["/proc/kcore", "/proc/timer_list", "/proc/keys"] {
        if Path::new(f).exists() {
            assert_eq!(fact(&out, &format!("size{f}")), "0", "{f} is readable");
            checked += 1;
        }
    }
    assert!(checked > 0, "no masked /proc file exists on this host");
    assert_eq!(fact(&out, "size/etc/passwd"), "0");
    assert_eq!(fact(&out, "secret"), "0", "a masked directory must look empty");
    assert!(!fact(&out, "secret_write").starts_with("0:"), "masked dir is writable");
    if std::fs::read_dir("/sys/firmware").is_ok_and(|mut d| d.next().is_some()) {
        assert_eq!(fact(&out, "firmware"), "0");
    }
}

#[test]
fn readonly_paths_refuse_writes_inside_container() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "w=$(echo 1 2>&1 > /proc/sys/kernel/ns_last_pid); echo sys_write=$?:$w; \
         w=$(touch /var/ro/x 2>&1); echo ro_write=$?:$w; touch /var/rw/x && echo rw_write=ok",
    );
    std::fs::create_dir_all(bundle.rootfs().join("var/ro")).unwrap();
    std::fs::create_dir_all(bundle.rootfs().join("var/rw")).unwrap();
    bundle.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/var/ro"));
    });
    let out = run_ok(&rt, &bundle, "ropaths");
    for key in ["sys_write", "ro_write"] {
        let v = fact(&out, key);
        assert!(!v.starts_with("0:") && v.contains("Read-only file system"), "{key}: {v}");
    }
    assert_eq!(fact(&out, "rw_write"), "ok");
    assert!(!bundle.rootfs().join("var/ro/x").exists());
}

#[test]
fn hostname_and_domainname_are_set_inside_only() {
    let rt = Runtime::new();
    let bundle = sh_bundle("echo hostname=$(hostname); echo domainname=$(cat /proc/sys/kernel/domainname)");
    bundle.edit(|c| {
        c["hostname"] = json!("berth-it-host");
        c["domainname"] = json!("example.test");
    });
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let out = run_ok(&rt, &bundle, "uts");
    assert_eq!(fact(&out, "hostname"), "berth-it-host");
    assert_eq!(fact(&out, "domainname"), "example.test");
    assert_ne!(host_hostname(), "berth-it-host");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(), host_domain);
}

#[test]
fn hostname_and_uts_sysctls_are_set_in_a_uts_namespace_joined_by_path_like_runc() {
    let rt = Runtime::new();
    let holder = berth_integration::NamespaceHolder::new("uts", "uts");
    let bundle = sh_bundle("echo hostname=$(hostname); echo domainname=$(cat /proc/sys/kernel/domainname)");
    bundle.edit(|c| {
        set_ns(c, "uts", Some(holder.ns_path("uts").to_str().expect("utf-8")));
        c["hostname"] = json!("berth-joined-uts");
        c["linux"]["sysctl"] = json!({"kernel.domainname": "joined.test"});
    });
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").expect("host domainname");
    let out = run_ok(&rt, &bundle, "utsjoin");
    assert_eq!(fact(&out, "hostname"), "berth-joined-uts");
    assert_eq!(fact(&out, "domainname"), "joined.test");
    // Set in the joined namespace, which keeps them; the host's are untouched.
    let seen = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", holder.ns_path("uts").display()))
        .arg("hostname")
        .output()
        .expect("running nsenter");
    assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), "berth-joined-uts");
    assert_ne!(host_hostname(), "berth-joined-uts");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/domainname").expect("host domainname"), host_domain);

    // Joining the runtime's own UTS namespace by path would rename the host: still refused.
    bundle.edit(|c| set_ns(c, "uts", Some("/proc/self/ns/uts")));
    let id = unique_id("utshost");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains("UTS namespace"), "{err}");
    assert_ne!(host_hostname(), "berth-joined-uts");
    rt.assert_gone(&id);
}

#[test]
fn sysctls_apply_inside_the_container_namespaces_only() {
    let rt = Runtime::new();
    let bundle = sh_bundle(
        "echo ip_forward=$(cat /proc/sys/net/ipv4/ip_forward); echo shmmax=$(cat /proc/sys/kernel/shmmax); \
         w=$(echo 0 2>&1 > /proc/sys/net/ipv4/ip_forward); echo sys_write=$?:$w",
    );
    bundle.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096"}));
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let (host_fwd, host_shmmax) = (read("/proc/sys/net/ipv4/ip_forward"), read("/proc/sys/kernel/shmmax"));
    assert_ne!(host_shmmax.trim(), "4096");
    let out = run_ok(&rt, &bundle, "sysctl");
    assert_eq!(fact(&out, "ip_forward"), "1");
    assert_eq!(fact(&out, "shmmax"), "4096");
    // /proc/sys is still read-only for the process afterwards.
    assert!(fact(&out, "sys_write").contains("Read-only file system"), "{out}");
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), host_fwd);
    assert_eq!(read("/proc/sys/kernel/shmmax"), host_shmmax);
}

#[test]
fn no_pivot_runs_the_process_in_the_rootfs() {
    let rt = Runtime::new();
    let bundle = sh_bundle(&format!(
        "echo pid=$$; cat /marker; echo root=$(ls / | tr '\\n' ' '); echo hostname=$(hostname); {MOUNTINFO}"
    ));
    std::fs::write(bundle.rootfs().join("marker"), "marker=in-rootfs\n").unwrap();
    let id = unique_id("nopivot");
    let out = rt.run(&["run", "--no-pivot", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    rt.assert_gone(&id);
    assert_eq!(fact(&stdout, "pid"), "1");
    assert_eq!(fact(&stdout, "marker"), "in-rootfs");
    assert_eq!(fact(&stdout, "hostname"), "berth");
    let mut expected: Vec<String> = std::fs::read_dir(bundle.rootfs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(fact(&stdout, "root").trim(), expected.join(" "));
    let mounts = mountinfo(&stdout);
    let root = mount_at(&mounts, "/");
    assert_eq!(Path::new(&root.root), bundle.rootfs());
    assert!(root.has("ro"));
}

// ---------------------------------------------------------------------------------------------
// Escapes through symlinks
// ---------------------------------------------------------------------------------------------

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

#[test]
fn mount_destinations_through_symlinks_resolve_inside_the_rootfs() {
    let rt = Runtime::new();
    // The trap: a host directory that the rootfs's symlinks name. Nothing may appear in it.
    let trap = tempfile::Builder::new().prefix("berth-it-trap-").tempdir_in("/tmp").unwrap();
    let trap_name = trap.path().file_name().unwrap().to_str().unwrap().to_string();
    let src = tempfile::Builder::new().prefix("berth-it-src-").tempdir().unwrap();
    std::fs::write(src.path().join("file"), "bound\n").unwrap();

    let bundle =
        sh_bundle(&format!("echo abs_file=$(cat /abs/file-made); echo rel_dir=$(cat /rel/dir-made/file); {MOUNTINFO}"));
    let rootfs = bundle.rootfs();
    std::fs::create_dir(rootfs.join("tmp").join(&trap_name)).unwrap();
    // Absolute, and relative with more `..` than the rootfs is deep: on the host both name the trap.
    std::os::unix::fs::symlink(format!("/tmp/{trap_name}"), rootfs.join("abs")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../../tmp/{trap_name}"), rootfs.join("rel")).unwrap();
    assert_eq!(std::fs::canonicalize(rootfs.join("rel")).unwrap(), std::fs::canonicalize(trap.path()).unwrap());
    let (dir_src, file_src) =
        (src.path().to_str().unwrap().to_string(), src.path().join("file").to_str().unwrap().to_string());
    bundle.edit(|c| {
        add_mount(c, json!({"destination": "/abs/tmpfs-made", "type": "tmpfs", "source": "tmpfs"}));
        add_mount(c, json!({"destination": "/abs/file-made", "type": "bind", "source": file_src, "options": ["bind"]}));
        add_mount(c, json!({"destination": "/rel/dir-made", "type": "bind", "source": dir_src, "options": ["rbind"]}));
    });
    let out = run_ok(&rt, &bundle, "symdest");
    assert!(dir_is_empty(trap.path()), "the runtime created something in the host directory {trap_name}");
    assert!(host_mounts_containing(&trap_name).is_empty());
    // Inside, the mounts are where the links point when resolved in the rootfs.
    assert_eq!(fact(&out, "abs_file"), "bound");
    assert_eq!(fact(&out, "rel_dir"), "bound");
    let mounts = mountinfo(&out);
    assert_eq!(mount_at(&mounts, &format!("/tmp/{trap_name}/tmpfs-made")).fstype, "tmpfs");
    assert!(is_mounted(&mounts, &format!("/tmp/{trap_name}/file-made")));
    assert!(is_mounted(&mounts, &format!("/tmp/{trap_name}/dir-made")));
    for made in ["tmpfs-made", "file-made", "dir-made"] {
        assert!(rootfs.join("tmp").join(&trap_name).join(made).exists(), "{made} not created in the rootfs");
    }
}

#[test]
fn mount_destination_through_a_symlink_dangling_in_the_rootfs_never_touches_the_host() {
    let rt = Runtime::new();
    // The link's target exists on the host only.
    let trap = tempfile::Builder::new().prefix("berth-it-trap-").tempdir_in("/tmp").unwrap();
    let trap_name = trap.path().file_name().unwrap().to_str().unwrap().to_string();
    let bundle = sh_bundle(MOUNTINFO);
    std::os::unix::fs::symlink(format!("/tmp/{trap_name}"), bundle.rootfs().join("dangling")).unwrap();
    bundle.edit(|c| add_mount(c, json!({"destination": "/dangling/made", "type": "tmpfs", "source": "tmpfs"})));
    let id = unique_id("dangling");
    let (code, out, err) = rt.run_container(&bundle, &id);
    rt.assert_gone(&id);
    assert!(dir_is_empty(trap.path()), "the runtime created something in the host directory {trap_name}");
    assert!(host_mounts_containing(&trap_name).is_empty());
    if code == 0 {
        // Created inside the rootfs instead.
        assert!(is_mounted(&mountinfo(&out), &format!("/tmp/{trap_name}/made")), "{out}");
    } else {
        assert!(err.contains("dangling"), "{err}");
    }
}

#[test]
fn root_path_symlinks_out_of_the_bundle_never_give_the_host_root() {
    let rt = Runtime::new();
    let bundle = sh_bundle("if test -f /config.json; then echo root=bundle; else echo root=elsewhere; fi");
    // Followed on the host, these links would make the host's / the container's root (and the
    // container would run: the host has a /bin/sh). Resolved inside the bundle they name the
    // bundle directory itself, given a /bin so the shell is found; refusing them is fine too.
    std::os::unix::fs::symlink("rootfs/bin", bundle.path().join("bin")).unwrap();
    std::os::unix::fs::symlink("/", bundle.path().join("hostroot")).unwrap();
    std::os::unix::fs::symlink("../..", bundle.path().join("updir")).unwrap();
    for link in ["hostroot", "updir"] {
        bundle.edit(|c| c["root"]["path"] = json!(link));
        let id = unique_id("rootlink");
        let (code, out, err) = rt.run_container(&bundle, &id);
        rt.assert_gone(&id);
        if code == 0 {
            assert_eq!(fact(&out, "root"), "bundle", "root.path {link}: {out}");
        } else {
            assert!(out.is_empty(), "root.path {link}: the container ran: {out}");
            assert!(err.contains("root.path"), "root.path {link}: unclear error: {err}");
        }
    }
    // A link that stays inside the bundle is an ordinary root.path.
    std::os::unix::fs::symlink("rootfs", bundle.path().join("current")).unwrap();
    std::fs::write(bundle.rootfs().join("in-rootfs"), "the rootfs\n").unwrap();
    bundle.edit(|c| {
        c["root"]["path"] = json!("current");
        c["process"]["args"] = json!(["cat", "/in-rootfs"]);
    });
    assert_eq!(run_ok(&rt, &bundle, "rootlink"), "the rootfs\n");
}

/// Mount points on and under `dir` in the test's (the host's) mount namespace.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| Path::new(p).starts_with(&dir))
        .collect()
}

/// A config without a mount namespace runs in the host's (as runc allows): the container's
/// mounts are made on the host on and under its rootfs, it is chrooted into the rootfs (read-only
/// as `runc spec` asks, through a bind of its own), and `delete` takes those mounts down again. A
/// propagation, which would change the host's own mounts, is refused.
#[test]
fn a_config_without_a_mount_namespace_runs_in_the_hosts_and_delete_undoes_its_mounts() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "echo mnt=$(readlink /proc/self/ns/mnt); echo pid=$(readlink /proc/self/ns/pid); \
         echo root=$(ls /bin/busybox); echo tmp=$(grep -c ' /tmp ' /proc/self/mountinfo); \
         if touch /x 2>/dev/null; then echo ro=no; else echo ro=yes; fi",
    ]);
    bundle.edit(|c| {
        remove_ns(c, "mount");
        add_mount(c, json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    });
    let rootfs = bundle.rootfs();
    let before = host_mounts_under(&rootfs);
    let id = unique_id("nomntns");
    let output = rt.create_with_output(&bundle, &id);
    let during = host_mounts_under(&rootfs);
    let made: Vec<&String> = during.iter().filter(|m| !before.contains(m)).collect();
    assert!(made.iter().any(|m| m.ends_with("/proc")), "no proc mount under the rootfs on the host: {made:?}");
    assert!(made.iter().any(|m| m.ends_with("/tmp")), "no /tmp mount under the rootfs on the host: {made:?}");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let out = output.stdout();
    assert_eq!(fact(&out, "mnt"), host_ns("mnt"), "{out}");
    assert_ne!(fact(&out, "pid"), host_ns("pid"), "{out}");
    assert_eq!(fact(&out, "root"), "/bin/busybox", "{out}");
    assert_eq!(fact(&out, "tmp"), "1", "{out}");
    assert_eq!(fact(&out, "ro"), "yes", "{out}");
    // Only the rootfs's own bind is read-only, not the host mount it is on.
    std::fs::write(bundle.path().join("host-writable"), "x").expect("the bundle's mount is writable");
    rt.ok(&["delete", &id]);
    rt.assert_gone(&id);
    assert_eq!(host_mounts_under(&rootfs), before, "mounts left under the rootfs after delete");
    std::fs::write(rootfs.join("host-writable"), "x").expect("the rootfs is writable again after delete");

    // An exec'd process enters the same root (there is no mount namespace to join).
    bundle.edit(|c| c["process"]["args"] = json!(["sleep", "30"]));
    let id = unique_id("nomntns-exec");
    let _output = rt.create_with_output(&bundle, &id);
    rt.ok(&["start", &id]);
    let seen = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls /bin/busybox; if test -d /work -o -d /root/.cargo; then echo host-root; fi",
    ]);
    assert_eq!(seen.trim(), "/bin/busybox", "the exec'd process is not in the container's root: {seen}");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_gone(&id);
    assert_eq!(host_mounts_under(&rootfs), before, "mounts left under the rootfs after delete --force");

    // Refused, with nothing left: a propagation would change the host's mounts.
    bundle.edit(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    let id = unique_id("nomntns-bad");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0);
    assert!(err.contains("rootfsPropagation needs a mount namespace"), "{err}");
    rt.assert_gone(&id);
    assert_eq!(host_mounts_under(&rootfs), before, "mounts left under the rootfs after a refused create");
    bundle.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("rootfsPropagation");
    });

    // A create that fails after init mounted things leaves none of them on the host.
    bundle.edit(|c| {
        add_mount(c, json!({"destination": "/nonexistent-source", "type": "bind", "source": "/no/such/path"}));
    });
    let id = unique_id("nomntns-fail");
    let (code, _, err) = rt.run_container(&bundle, &id);
    assert_ne!(code, 0, "{err}");
    rt.assert_gone(&id);
    assert_eq!(host_mounts_under(&rootfs), before, "mounts left under the rootfs after a failed create");
}
