//! A private Docker registry (Debian's `docker-registry`, distribution 2.8) on 127.0.0.1 and a
//! free port, storing into a temporary directory, optionally behind htpasswd basic auth; and
//! skopeo to push the busybox image into it. Stopped, and its directory removed, on drop.

use super::image::BusyboxImage;
use super::process::{run_ok, Daemon};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The registry daemon.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
/// apache2-utils' htpasswd, for the bcrypt password file.
pub const HTPASSWD: &str = "/usr/bin/htpasswd";
/// skopeo, to push images into the registry and inspect them.
pub const SKOPEO: &str = "/usr/bin/skopeo";

/// How long the registry may take to answer `GET /v2/` after it was started: a hang guard.
const START_GUARD: Duration = Duration::from_secs(30);

/// A running registry. Fields drop in order: the daemon stops before its directory goes.
pub struct Registry {
    daemon: Daemon,
    port: u16,
    credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that requires basic auth as `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user.to_string(), password.to_string())))
    }

    fn launch(credentials: Option<(String, String)>) -> Registry {
        // skopeo runs in a private mount namespace (see `skopeo`).
        crate::require_root();
        super::engine_binary(DOCKER_REGISTRY);
        let dir = tempfile::Builder::new().prefix("berth-it-registry-").tempdir().expect("registry tempdir");
        let port = free_port();
        let d = dir.path().display();
        let auth = match &credentials {
            Some((user, password)) => {
                super::engine_binary(HTPASSWD);
                let line = run_ok(Command::new(HTPASSWD).args(["-Bbn", user, password]));
                std::fs::write(dir.path().join("htpasswd"), line).expect("writing htpasswd");
                format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {d}/htpasswd\n")
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {d}/data\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      \
             enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}"
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("writing the registry config");
        let mut daemon = Daemon::spawn(
            "docker-registry",
            Command::new(DOCKER_REGISTRY).arg("serve").arg(&config_path).env("PATH", super::DAEMON_PATH),
            &dir.path().join("registry.log"),
        );
        let want = if credentials.is_some() { 401 } else { 200 };
        daemon.wait_ready(START_GUARD, || v2_status(port) == Some(want));
        Registry { daemon, port, credentials, dir }
    }

    /// `127.0.0.1:PORT`, the registry part of references into it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (config, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the registry process.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// `user:password` for skopeo's `--creds`, if the registry requires auth.
    fn creds_arg(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// Pushes tag `tag` of the OCI layout `layout` as `<host>/<repository>` with skopeo (which
    /// copies the OCI manifest unchanged); returns the manifest digest the registry reports.
    pub fn push_oci(&self, layout: &Path, tag: &str, repository: &str) -> String {
        self.copy_oci(layout, tag, repository, &[])
    }

    /// Like [`Registry::push_oci`] for a tag that names an image index: `skopeo copy --all`
    /// pushes every manifest of the index and the index itself; returns the index digest.
    pub fn push_oci_index(&self, layout: &Path, tag: &str, repository: &str) -> String {
        self.copy_oci(layout, tag, repository, &["--all"])
    }

    /// `skopeo copy [extra…] oci:<layout>:<tag> docker://<host>/<repository>`; the manifest
    /// digest the registry then reports.
    fn copy_oci(&self, layout: &Path, tag: &str, repository: &str, extra: &[&str]) -> String {
        let dest = format!("docker://{}/{repository}", self.host());
        let mut args = vec!["copy".to_string(), "-q".into(), "--dest-tls-verify=false".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        if let Some(creds) = self.creds_arg() {
            args.extend(["--dest-creds".into(), creds]);
        }
        args.extend([format!("oci:{}:{tag}", layout.display()), dest]);
        run_ok(&mut self.skopeo(&args));
        self.digest_of(repository)
    }

    /// Pushes the busybox image's `latest` as `<host>/busybox:latest`; returns the manifest
    /// digest.
    pub fn push_busybox(&self) -> String {
        self.push_oci(&busybox_image().layout(), "latest", "busybox:latest")
    }

    /// The manifest digest of `<host>/<repository>` by `skopeo inspect`.
    pub fn digest_of(&self, repository: &str) -> String {
        let mut args = vec!["inspect".to_string(), "--tls-verify=false".into()];
        if let Some(creds) = self.creds_arg() {
            args.extend(["--creds".into(), creds]);
        }
        args.push(format!("docker://{}/{repository}", self.host()));
        let out = run_ok(&mut self.skopeo(&args));
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo inspect output is not JSON ({e}): {out}"));
        v["Digest"].as_str().unwrap_or_else(|| panic!("no Digest in skopeo inspect output: {out}")).to_string()
    }

    /// skopeo with `args`. As root, containers/image writes a blob-info cache to
    /// /var/lib/containers/cache whatever the flags; a private mount namespace whose /var/lib is
    /// an empty tmpfs keeps the host untouched (as `make-busybox-image.sh` does).
    fn skopeo(&self, args: &[String]) -> Command {
        super::engine_binary(SKOPEO);
        let tmp = self.dir.path().join("skopeo-tmp");
        std::fs::create_dir_all(&tmp).expect("creating skopeo's tmpdir");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=16m,mode=0755 berth-no-blob-cache /var/lib && exec skopeo \"$@\"")
            .arg("skopeo")
            .arg("--tmpdir")
            .arg(&tmp)
            .args(args);
        cmd
    }

    /// The last lines of the registry's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}

/// The busybox image, built once per test process into `target/tmp/busybox-image` (the build
/// script skips work when that directory already holds a complete build).
pub fn busybox_image() -> &'static BusyboxImage {
    static IMAGE: OnceLock<BusyboxImage> = OnceLock::new();
    IMAGE.get_or_init(|| BusyboxImage::build(&crate::target_dir().join("tmp/busybox-image")))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port");
    listener.local_addr().expect("local_addr").port()
}

/// The HTTP status of `GET /v2/` on 127.0.0.1:`port`, or None if nothing answers.
fn v2_status(port: u16) -> Option<u16> {
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
