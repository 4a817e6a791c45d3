//! The daemon: opens the stores under `--root`, takes the instance lock, serves the ttrpc API on
//! `<state>/berthd.sock` until SIGTERM or SIGINT.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};

use crate::config::Config;
use crate::container::ContainerStore;
use crate::events::Events;
use crate::image::registry::{RegistryClient, RegistryOptions};
use crate::network::Networks;
use crate::service;
use crate::store::content::ContentStore;
use crate::store::meta::Metadata;
use crate::store::snapshot::{Kind, Snapshotter};
use crate::task::Tasks;
use crate::volume::Volumes;

/// Everything the services share.
pub struct Berthd {
    pub cfg: Config,
    pub content: ContentStore,
    pub meta: Metadata,
    pub snapshots: Snapshotter,
    pub registry: RegistryClient,
    pub events: Events,
    pub containers: ContainerStore,
    pub volumes: Volumes,
    pub tasks: Tasks,
    pub networks: Networks,
    /// Garbage collection holds it exclusively; transfers take it shared only for the instant
    /// they add a resource to their lease (see `lease`), naming an image and a load's local
    /// phase too. Nothing holds it while waiting on a registry or a client.
    pub gc_lock: tokio::sync::RwLock<()>,
}

impl Berthd {
    /// Opens (creating if needed) the stores under `cfg.root`.
    pub fn open(cfg: Config) -> anyhow::Result<Berthd> {
        let content = ContentStore::open(&cfg.root.join("content"))
            .with_context(|| format!("opening the content store in {}", cfg.root.display()))?;
        let meta = Metadata::open(&cfg.root.join("metadata.redb"))
            .with_context(|| format!("opening {}", cfg.root.join("metadata.redb").display()))?;
        let snapshots = Snapshotter::new(&cfg.root, meta.db())
            .with_context(|| format!("opening the snapshotter in {}", cfg.root.display()))?;
        // Unpacks a killed daemon left half done: nothing refers to them, and no pull runs yet.
        for info in snapshots.list().context("listing snapshots")? {
            if info.kind == Kind::Active && info.key.starts_with(crate::image::pull::EXTRACT_PREFIX) {
                tracing::info!(key = %info.key, "removing an interrupted unpack");
                snapshots.remove(&info.key).with_context(|| format!("removing interrupted unpack {:?}", info.key))?;
            }
        }
        crate::store::lease::delete_stale(&meta)?;
        let containers = ContainerStore::new(meta.db()).context("opening the container store")?;
        let volumes = Volumes::open(meta.db(), &cfg.root).context("opening the volume store")?;
        let tasks = Tasks::new(&cfg.socket());
        let networks = Networks::open(meta.db(), &cfg.state, cfg.cni_plugin_dirs.clone(), &cfg.bridge)
            .context("setting up networks")?;
        let registry = RegistryClient::new(RegistryOptions {
            insecure: cfg.insecure_registries.clone(),
            auth_file: cfg.auth_file.clone(),
        })
        .context("setting up the registry client")?;
        Ok(Berthd {
            cfg,
            content,
            meta,
            snapshots,
            registry,
            events: Events::default(),
            containers,
            volumes,
            tasks,
            networks,
            gc_lock: tokio::sync::RwLock::new(()),
        })
    }
}

/// Creates `dir` (and parents) with `mode` if missing.
fn make_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Takes `<dir>/berthd.lock` exclusively, without waiting: a second berthd on the same root (or
/// state dir) is refused, naming the running one's pid.
fn lock_dir(dir: &Path, what: &str) -> anyhow::Result<Flock<fs::File>> {
    let path = dir.join("berthd.lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            use std::io::{Seek, Write};
            lock.set_len(0)
                .and_then(|()| lock.rewind())
                .and_then(|()| writeln!(lock, "{}", std::process::id()))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(lock)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = fs::read_to_string(&path).unwrap_or_default();
            bail!("another berthd (pid {}) is running on {what} {}", pid.trim(), dir.display())
        }
        Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    make_dir(&cfg.root, 0o700)?;
    make_dir(&cfg.state, 0o711)?;
    let _root_lock = lock_dir(&cfg.root, "root")?;
    let _state_lock = if cfg.state != cfg.root { Some(lock_dir(&cfg.state, "state dir")?) } else { None };
    let socket = cfg.socket();
    let d = Arc::new(tokio::task::block_in_place(|| Berthd::open(cfg.clone()))?);

    // We hold both locks: a socket left here is a dead daemon's.
    match fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", socket.display())),
    }
    let mut server = ttrpc::asynchronous::Server::new()
        .bind(&format!("unix://{}", socket.display()))
        .with_context(|| format!("listening on {}", socket.display()))?;
    for services in service::all(&d) {
        server = server.register_service(services);
    }
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", socket.display()))?;
    // Shims keep containers running while berthd is away: reconnect to them, and record the
    // exits that happened meanwhile, before the first client is answered (they wait in the
    // listen backlog; shims retry the events they forward).
    if let Err(e) = Tasks::recover(&d).await {
        tracing::warn!("recovering containers: {e:#}");
    }
    if let Err(e) = crate::build::recover(&d).await {
        tracing::warn!("clearing what interrupted builds left: {e:#}");
    }
    server.start().await.with_context(|| format!("serving on {}", socket.display()))?;
    crate::memory::spawn_trimmer();
    tracing::info!(
        root = %d.cfg.root.display(),
        socket = %socket.display(),
        pid = std::process::id(),
        "berthd {} serving",
        env!("CARGO_PKG_VERSION")
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    // Stop accepting and close the connections (a transfer in flight is cut off; a pull resumes
    // next time), bounded in time.
    match tokio::time::timeout(std::time::Duration::from_secs(10), server.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("closing the listener: {e}"),
        Err(_) => tracing::warn!("connections still open after 10 s; exiting anyway"),
    }
    // A collection in progress finishes first (transfers take the lock only for instants).
    if tokio::time::timeout(std::time::Duration::from_secs(30), d.gc_lock.write()).await.is_err() {
        tracing::warn!("garbage collection still running after 30 s; exiting anyway");
    }
    let _ = fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(())
}
