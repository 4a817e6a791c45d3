//! The image side of the `berth` CLI against berthd and a registry on 127.0.0.1: `images`
//! templates and filters, `image inspect --format`, `image history` and `image prune`, read from
//! the busybox image the fixture builds (its config has a `created` time and two history entries,
//! one an empty layer).

use berth_integration::engines::berthd::Berthd;
use berth_integration::engines::registry::{busybox_image, Registry};
use serde_json::Value;

/// The busybox layout's `latest` config, as JSON, and its digest (docker's image ID).
fn busybox_config() -> (Value, String) {
    let layout = busybox_image().layout();
    let read = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("reading a layout blob");
        serde_json::from_slice(&bytes).expect("layout blob is JSON")
    };
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
        .expect("index.json is JSON");
    let manifest = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("a latest manifest");
    let manifest = read(manifest["digest"].as_str().expect("manifest digest"));
    let config_digest = manifest["config"]["digest"].as_str().expect("config digest").to_string();
    (read(&config_digest), config_digest)
}

/// A berthd with the registry's busybox pulled; the name it was pulled as.
fn pulled_busybox(registry: &Registry) -> (Berthd, String) {
    registry.push_busybox();
    let b = Berthd::start();
    let name = format!("{}/busybox:latest", registry.host());
    b.ok(&["pull", &name]);
    (b, name)
}

#[test]
fn images_format_templates_filters_and_no_trunc_show_the_pulled_image() {
    let registry = Registry::start();
    let (b, name) = pulled_busybox(&registry);
    let (config, id) = busybox_config();
    let short = &id["sha256:".len().."sha256:".len() + 12];

    assert_eq!(b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), format!("{name}\n"));
    assert_eq!(b.ok(&["images", "--format", "{{.ID}} {{.Size}}"]).split(' ').next(), Some(short));
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));
    assert!(b.ok(&["images", "-a", "--no-trunc"]).contains(&id));
    let table = b.ok(&["images", "--format", "table {{.Repository}}\\t{{.ID}}"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"), "{table}");
    assert!(lines[1].ends_with(short), "{table}");

    // CREATED is the config's own time, which inspect shows too.
    let created = config["created"].as_str().expect("config created");
    let json: Value = serde_json::from_str(b.ok(&["images", "--format", "{{json .}}"]).trim()).expect("json line");
    let (date, time) = (&created[..10], &created[11..19]);
    assert_eq!(json["CreatedAt"], format!("{date} {time} +0000 UTC"), "{json}");
    assert_eq!(b.ok(&["image", "inspect", "--format", "{{.Created}}", &name]), format!("{created}\n"));

    b.ok(&["tag", &name, "localhost/other:v2"]);
    let listed = |filter: &str| b.ok(&["images", "--filter", filter, "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(listed("reference=localhost/*"), "localhost/other:v2\n");
    assert_eq!(listed("reference=*/busybox"), format!("{name}\n"));
    assert_eq!(listed("dangling=true"), "");
    assert_eq!(listed("dangling=false").lines().count(), 2);
    assert_eq!(listed("label=nope"), "");
    assert_eq!(listed(&format!("before={name}")), "");
    let bad = b.berth(&["images", "--filter", "colour=red"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("invalid filter 'colour'"), "{bad}");
}

#[test]
fn image_inspect_format_and_history_read_the_config() {
    let registry = Registry::start();
    let (b, name) = pulled_busybox(&registry);
    let (config, id) = busybox_config();

    assert_eq!(b.ok(&["image", "inspect", "--format", "{{.Id}}", &name]), format!("{id}\n"));
    assert_eq!(b.ok(&["image", "inspect", "-f", "{{.Config.Cmd}}", &name]), "[sh]\n");
    let config_json: Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "--format", "{{json .Config}}", &name])).expect("json");
    // The image's own fields, and docker's empty ones where the image has none.
    for (key, value) in config["config"].as_object().expect("the image has a config") {
        assert_eq!(&config_json[key], value, "Config.{key}");
    }
    assert_eq!(config_json["Domainname"], "", "docker's Config shows its empty fields");
    assert_eq!(config_json["Tty"], false);

    let history = b.ok(&["image", "history", &name]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "header and two entries: {history}");
    assert!(lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY") && lines[0].contains("COMMENT"));
    assert!(lines[1].starts_with(&id[7..19]) && lines[1].contains("make-busybox-image.sh: config"), "{history}");
    assert!(lines[1].contains(" 0B "), "the empty layer's size: {history}");
    assert!(lines[2].starts_with("<missing>") && lines[2].contains("busybox-static rootfs"), "{history}");
    assert!(!lines[2].contains(" 0B "), "the layer's size: {history}");
    assert_eq!(b.ok(&["history", "-q", "--no-trunc", &name]), format!("{id}\n<missing>\n"));
    assert_eq!(
        b.ok(&["image", "history", "--format", "{{.CreatedBy}}", &name]),
        "make-busybox-image.sh: config\nmake-busybox-image.sh: busybox-static rootfs\n"
    );
}

#[test]
fn image_prune_removes_dangling_images_and_with_all_every_unused_one() {
    let registry = Registry::start();
    let (b, name) = pulled_busybox(&registry);
    let (_, id) = busybox_config();

    assert_eq!(b.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n");
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1, "a tagged image is not dangling");

    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("untagged: {name}\n")), "{out}");
    assert!(out.contains(&format!("deleted: {id}\n")), "{out}");
    let reclaimed = out.lines().last().expect("a last line");
    assert!(reclaimed.starts_with("Total reclaimed space: ") && reclaimed != "Total reclaimed space: 0B", "{out}");
    assert_eq!(b.ok(&["images", "-q"]), "");
}

#[test]
fn info_counts_images_and_containers_and_names_the_root_dir() {
    let registry = Registry::start();
    let (b, name) = pulled_busybox(&registry);
    b.ok(&["tag", &name, "localhost/other:v2"]);
    let info = b.ok(&["info"]);
    for line in [
        " Containers: 0\n",
        "  Running: 0\n",
        "  Stopped: 0\n",
        " Images: 1\n",
        " Storage Driver: overlayfs\n",
        " Default Runtime: io.containerd.berth.v2\n",
    ] {
        assert!(info.contains(line), "no {line:?} in:\n{info}");
    }
    assert!(info.contains(&format!(" Berth Root Dir: {}\n", b.root().display())), "{info}");
    assert!(info.contains(&format!(" CPUs: {}\n", std::thread::available_parallelism().map_or(1, usize::from))));
    assert_eq!(b.ok(&["system", "info"]), info);
}

#[test]
fn login_checks_credentials_with_the_registry_stores_them_for_pulls_and_logout_removes_them() {
    let registry = Registry::start_with_auth("u", "p");
    registry.push_busybox();
    let host = registry.host();
    let dir = tempfile::tempdir().expect("auth file dir");
    let auth_file = dir.path().join("config.json");
    let b = Berthd::start_with(&["--auth-file", auth_file.to_str().expect("utf-8 path")]);
    let name = format!("{host}/busybox:latest");

    let wrong = b.berth(&["login", "-u", "u", "-p", "wrong", &host]);
    assert_ne!(wrong.code, 0, "{wrong}");
    let expected =
        format!("Error response from daemon: login attempt to http://{host}/v2/ failed with status: 401 Unauthorized");
    assert!(wrong.stderr.contains(&expected), "{wrong}");
    assert!(!auth_file.exists(), "a failed login wrote the auth file");

    let mut login = b.berth_cmd(&["login", "-u", "u", "--password-stdin", &host]);
    login.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = login.spawn().expect("spawning berth login");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"p\n").expect("writing the password");
    let out = child.wait_with_output().expect("berth login");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let config: Value = serde_json::from_slice(&std::fs::read(&auth_file).expect("auth file")).expect("json");
    assert_eq!(config["auths"][&host]["auth"], "dTpw", "base64 of u:p: {config}");

    // The daemon uses the new credentials at once, without a restart.
    b.ok(&["pull", &name]);

    assert_eq!(b.ok(&["logout", &host]), format!("Removing login credentials for {host}\n"));
    let config: Value = serde_json::from_slice(&std::fs::read(&auth_file).expect("auth file")).expect("json");
    assert!(config["auths"].get(&host).is_none(), "{config}");
    assert_eq!(b.ok(&["logout", &host]), format!("Not logged in to {host}\n"));
    b.ok(&["rmi", &name]);
    let denied = b.berth(&["pull", &name]);
    assert_ne!(denied.code, 0, "pulled after logout: {denied}");
}

#[test]
fn pull_progress_shows_human_sizes_and_system_df_counts_each_image_once() {
    let registry = Registry::start();
    registry.push_busybox();
    let b = Berthd::start();
    let name = format!("{}/busybox:latest", registry.host());
    let out = b.ok(&["pull", &name]);
    let downloading = out.lines().find(|l| l.contains(": Downloading ")).unwrap_or_else(|| panic!("{out}"));
    let sizes = downloading.split(": Downloading ").nth(1).expect("sizes");
    let (current, total) = sizes.split_once('/').unwrap_or_else(|| panic!("not current/total: {downloading}"));
    assert!(current.ends_with('B') && total.ends_with("MB"), "{downloading}");

    b.ok(&["tag", &name, "localhost/other:v2"]);
    let df = b.ok(&["system", "df"]);
    let lines: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], "{df}");
    assert_eq!(&lines[1][..3], ["Images", "1", "0"], "two names, one image: {df}");
    assert_eq!(lines[1][3], lines[1][4], "an unused image is reclaimable: {df}");
    assert_eq!(lines[1][5], "(100%)", "{df}");
    assert_eq!(lines[2], ["Containers", "0", "0", "0B", "0B"], "{df}");
    assert_eq!(lines[3][..2], ["Local", "Volumes"], "{df}");
    assert_eq!(lines[4][..2], ["Build", "Cache"], "{df}");
}

#[test]
fn events_since_replays_what_berthd_kept_and_until_ends_the_stream() {
    let registry = Registry::start();
    let (b, name) = pulled_busybox(&registry);
    // Whole seconds: the pull's events happened before now + 1.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 1;
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let started = std::time::Instant::now();
    let past = b.ok(&["events", "--since", "10m", "--until", &now.to_string()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "an until in the past ends at once");
    let familiar = name.clone();
    assert!(past.lines().any(|l| l.contains(" image ") && l.contains(&familiar)), "{past}");

    let later = (now + 3).to_string();
    b.ok(&["tag", &name, "localhost/other:v2"]);
    let out = b.ok(&["events", "--since", &now.to_string(), "--until", &later, "--filter", "type=image"]);
    assert!(out.contains("localhost/other:v2"), "the tag since then: {out}");
    let none = b.ok(&["events", "--since", &(now + 1000).to_string(), "--until", &later]);
    assert_eq!(none, "", "nothing since a future time");
}
