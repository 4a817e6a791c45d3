//! berthd's settings: command-line flags over an optional TOML file over the defaults.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_STATE: &str = "/run/berth";
pub const DEFAULT_CONFIG: &str = "/etc/berth/berthd.toml";
/// Where Debian's containernetworking-plugins and upstream's release put CNI plugins.
pub const DEFAULT_CNI_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// The socket's name under the state dir.
pub const SOCKET_NAME: &str = "berthd.sock";

/// berthd — berth's manager daemon: content, images, snapshots.
#[derive(Debug, clap::Parser)]
#[command(name = "berthd", version)]
pub struct Args {
    /// Persistent data: content, snapshots, metadata [default: /var/lib/berth]
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Runtime state: the API socket [default: /run/berth]
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// TOML config file (keys: root, state, insecure_registries, auth_file, log_level, bridge,
    /// cni_plugin_dirs)
    /// [default: /etc/berth/berthd.toml when it exists]
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// A registry (host[:port]) that may be reached over plain HTTP; repeatable. Loopback
    /// registries always may.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Registry credentials, a docker-style config.json [default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json]
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// tracing filter, e.g. info or berthd=debug [default: info; env RUST_LOG]
    #[arg(long)]
    pub log_level: Option<String>,
    /// The default bridge network's device, or `none` for no default bridge network (containers
    /// then default to `--network none`) [default: berth0]
    #[arg(long)]
    pub bridge: Option<String>,
    /// A directory of CNI plugins; repeatable [default: /usr/lib/cni, /opt/cni/bin]
    #[arg(long = "cni-plugin-dir")]
    pub cni_plugin_dirs: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    root: Option<PathBuf>,
    state: Option<PathBuf>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    auth_file: Option<PathBuf>,
    log_level: Option<String>,
    bridge: Option<String>,
    #[serde(default)]
    cni_plugin_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub state: PathBuf,
    pub insecure_registries: Vec<String>,
    pub auth_file: Option<PathBuf>,
    pub log_level: String,
    /// The default bridge's device, or `none`.
    pub bridge: String,
    /// Where CNI plugins are looked up, in order.
    pub cni_plugin_dirs: Vec<PathBuf>,
}

impl Config {
    pub fn socket(&self) -> PathBuf {
        self.state.join(SOCKET_NAME)
    }

    /// berth's reaping init for `--init` (a static binary, it runs in any image): beside
    /// berthd's executable, else on PATH.
    pub fn init_binary(&self) -> Option<PathBuf> {
        let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("berth-init")));
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("berth-init")).collect::<Vec<_>>())
            .unwrap_or_default();
        beside.into_iter().chain(on_path).find(|p| p.is_file())
    }

    pub fn resolve(args: Args) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => File::default(),
        };
        let mut insecure = file.insecure_registries;
        insecure.extend(args.insecure_registries);
        let cfg = Config {
            root: args.root.or(file.root).unwrap_or_else(|| DEFAULT_ROOT.into()),
            state: args.state.or(file.state).unwrap_or_else(|| DEFAULT_STATE.into()),
            insecure_registries: insecure,
            auth_file: args.auth_file.or(file.auth_file),
            log_level: args.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            bridge: args.bridge.or(file.bridge).unwrap_or_else(|| crate::network::DEFAULT_BRIDGE.into()),
            cni_plugin_dirs: match (args.cni_plugin_dirs, file.cni_plugin_dirs) {
                (a, _) if !a.is_empty() => a,
                (_, f) if !f.is_empty() => f,
                _ => DEFAULT_CNI_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            },
        };
        for (what, p) in [("root", &cfg.root), ("state", &cfg.state)] {
            anyhow::ensure!(p.is_absolute(), "--{what} must be an absolute path, got {}", p.display());
        }
        Ok(cfg)
    }
}

fn read_file(path: &Path) -> anyhow::Result<File> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berthd.toml");
        std::fs::write(&file, "root = \"/srv/berth\"\nstate = \"/run/b\"\ninsecure_registries = [\"reg:5000\"]\n")
            .unwrap();
        let args = Args::parse_from([
            "berthd",
            "--config",
            file.to_str().unwrap(),
            "--state",
            "/run/other",
            "--insecure-registry",
            "r2",
        ]);
        let cfg = Config::resolve(args).unwrap();
        assert_eq!(cfg.root, Path::new("/srv/berth"));
        assert_eq!(cfg.state, Path::new("/run/other"));
        assert_eq!(cfg.socket(), Path::new("/run/other/berthd.sock"));
        assert_eq!(cfg.insecure_registries, ["reg:5000", "r2"]);

        let cfg = Config::resolve(Args::parse_from(["berthd", "--config", "/nonexistent"]));
        assert!(cfg.is_err());
        std::fs::write(&file, "rooot = \"/x\"\n").unwrap();
        let err = Config::resolve(Args::parse_from(["berthd", "-c", file.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("rooot"), "{err:#}");
        let err = Config::resolve(Args::parse_from(["berthd", "--root", "rel"])).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }
}
