//! berth-runtime: the runc-compatible command line. It parses, logs and maps errors to exit
//! codes; the library does the work.

use anyhow::{bail, Context, Result};
use berth_runtime::container::{self, create::CreateOptions};
use berth_runtime::logging;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "berth-runtime", version, about = "berth's OCI runtime (runc-compatible command line)")]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/berth")]
    root: PathBuf,
    /// Write log lines to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::Format,
    /// Log debug messages too.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not supported: fails with a clear error).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Path to criu (accepted for runc compatibility; checkpoint/restore are not supported).
    #[arg(long, global = true, hide = true)]
    criu: Option<PathBuf>,
    /// Rootless mode (runc compatibility; only `false`/`auto` are accepted).
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct CreateArgs {
    /// Bundle directory (containing config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write init's pid to this file.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (with process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on a ramdisk).
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (from 3 up) to the process.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=65536))]
    preserve_fds: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container: set it up and leave it waiting for `start`.
    Create {
        /// Container id.
        id: String,
        #[command(flatten)]
        args: CreateArgs,
    },
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Print the OCI state of a container.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container's init (or all its processes).
    Kill {
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Container id.
        id: String,
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container; without --detach, wait for it and delete it.
    Run {
        /// Container id.
        id: String,
        #[command(flatten)]
        args: CreateArgs,
        /// Return after starting.
        #[arg(short, long)]
        detach: bool,
    },
    /// List containers.
    List {
        /// Output format.
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// Run a new process in a running container.
    Exec {
        /// Container id.
        id: String,
        /// The command and its arguments (unless --process).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// A process.json replacing the container's process.
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Unix socket to send the pty master to.
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
        /// Write the process's pid to this file.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Extra environment, KEY=VALUE.
        #[arg(short, long)]
        env: Vec<String>,
        /// Working directory in the container.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// uid[:gid] to run as.
        #[arg(short, long)]
        user: Option<String>,
        /// Add a capability (e.g. CAP_NET_ADMIN).
        #[arg(short, long)]
        cap: Vec<String>,
        /// Set no_new_privs.
        #[arg(long)]
        no_new_privs: bool,
        /// Pass this many extra fds (from 3 up) to the process.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=65536))]
        preserve_fds: i32,
        /// Run in an existing sub-cgroup of the container's: [CONTROLLER:]PATH (repeatable).
        #[arg(long = "cgroup", value_parser = berth_runtime::cgroups::ExecCgroup::parse)]
        cgroups: Vec<berth_runtime::cgroups::ExecCgroup>,
        /// Allow exec in a paused container (the process runs once the container is resumed).
        #[arg(long)]
        ignore_paused: bool,
    },
    /// List the processes of a container.
    Ps {
        /// Container id.
        id: String,
        /// `table` (host ps output filtered to the container) or `json` (pids).
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Options passed to ps in table mode (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change the cgroup resources of a running container.
    Update {
        /// Container id.
        id: String,
        /// A linux.resources JSON file, or - for stdin (the flags are then not allowed).
        #[arg(short, long)]
        resources: Option<PathBuf>,
        #[command(flatten)]
        flags: container::update::UpdateFlags,
    },
    /// Print the container's resource usage and OOM events as JSON lines.
    Events {
        /// Container id.
        id: String,
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Stats interval (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Print the OCI features document of this build.
    Features,
    /// runc commands this build does not have yet: they fail with an error naming them.
    #[command(external_subcommand)]
    Unsupported(Vec<String>),
    /// Write a default config.json.
    Spec {
        /// Bundle directory to write it in.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
}

/// The shipped runtime is a static musl binary (scripts/build.sh). musl's allocator maps
/// and unmaps memory for most allocations of a few kB, ~250 of the ~1300 system calls of a `run`;
/// dlmalloc keeps its memory. The runtime forks its container init only while single-threaded,
/// so dlmalloc's global lock is never inherited held.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    let cli = Cli::parse();
    // Commands that only print end quietly when their reader goes away, like runc; every other
    // one keeps Rust's ignored SIGPIPE, so a closed stdout or a hook that does not read its
    // stdin cannot kill it halfway.
    if matches!(
        cli.command,
        Command::State { .. } | Command::List { .. } | Command::Ps { .. } | Command::Events { .. } | Command::Features
    ) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // Before the log file takes the next free fd: a --preserve-fds range must name fds the
    // caller really passed, never one the runtime opened itself.
    let preserve_fds = match &cli.command {
        Command::Create { args, .. } | Command::Run { args, .. } => Some(args.preserve_fds),
        Command::Exec { preserve_fds, .. } => Some(*preserve_fds),
        _ => None,
    };
    if let Some(n) = preserve_fds {
        if let Err(e) = berth_runtime::container::create::check_preserved_fds(n) {
            eprintln!("berth-runtime: {e:#}");
            std::process::exit(1);
        }
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "berth-runtime: opening log {}: {e}",
            cli.log.as_deref().unwrap_or(std::path::Path::new("")).display()
        );
        std::process::exit(1);
    }
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            logging::error(&msg);
            if logging::has_file() {
                eprintln!("berth-runtime: {msg}");
            }
            std::process::exit(1);
        }
    }
}

fn create_options(id: String, a: CreateArgs) -> CreateOptions {
    CreateOptions {
        id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported by berth-runtime; use the cgroupfs driver");
    }
    if cli.rootless.as_deref().is_some_and(|r| r != "false" && r != "auto") {
        bail!(
            "--rootless {}: rootless containers are not supported by berth-runtime yet",
            cli.rootless.unwrap_or_default()
        );
    }
    let root = cli.root;
    match cli.command {
        Command::Create { id, args } => {
            berth_runtime::clone_binary::ensure_cloned()?;
            // Fds the caller leaked to us reach neither hooks nor the container (init re-opens
            // the --preserve-fds range for the container process only).
            berth_runtime::init::mark_cloexec_from(3)?;
            container::create::create(&root, &create_options(id, args))?;
            Ok(0)
        }
        Command::Run { id, args, detach } => {
            berth_runtime::clone_binary::ensure_cloned()?;
            berth_runtime::init::mark_cloexec_from(3)?;
            container::run::run(&root, &create_options(id, args), detach)
        }
        Command::Start { id } => container::start::start(&root, &id).map(|_| 0),
        Command::State { id } => {
            let state = container::state::state(&root, &id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            let sig = berth_runtime::signal::parse(&signal)?;
            container::kill::kill(&root, &id, sig, all).map(|_| 0)
        }
        Command::Delete { id, force } => container::delete::delete(&root, &id, force).map(|_| 0),
        Command::List { format, quiet } => {
            let all = container::list::list(&root)?;
            print_list(&all, &format, quiet)?;
            Ok(0)
        }
        Command::Exec {
            id,
            command,
            process,
            tty,
            console_socket,
            detach,
            pid_file,
            env,
            cwd,
            user,
            cap,
            no_new_privs,
            preserve_fds,
            cgroups,
            ignore_paused,
        } => {
            berth_runtime::clone_binary::ensure_cloned()?;
            berth_runtime::init::mark_cloexec_from(3)?;
            let opts = container::exec::ExecOptions {
                id,
                process_file: process,
                args: command,
                tty,
                console_socket,
                detach,
                pid_file,
                env,
                cwd,
                user,
                caps: cap,
                no_new_privs,
                preserve_fds,
                cgroups,
                ignore_paused,
            };
            container::exec::exec(&root, &opts)
        }
        Command::Ps { id, format, ps_args } => {
            if format == "json" {
                println!("{}", serde_json::to_string(&container::ps::pids(&root, &id)?)?);
            } else {
                print!("{}", container::ps::table(&root, &id, &ps_args)?);
            }
            Ok(0)
        }
        Command::Update { id, resources, flags } => {
            let source = match resources {
                Some(file) => {
                    if flags.to_json()?.as_object().is_some_and(|o| !o.is_empty()) {
                        bail!("update: --resources cannot be combined with resource flags");
                    }
                    container::update::Source::File(file)
                }
                None => container::update::Source::Flags(Box::new(flags)),
            };
            container::update::update(&root, &id, &source).map(|_| 0)
        }
        Command::Events { id, stats, interval } => {
            let interval = container::events::parse_interval(&interval)?;
            container::events::events(&root, &id, stats, interval).map(|_| 0)
        }
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&berth_runtime::features::document())?);
            Ok(0)
        }
        Command::Pause { id } => container::pause::pause(&root, &id).map(|_| 0),
        Command::Resume { id } => container::pause::resume(&root, &id).map(|_| 0),
        Command::Unsupported(args) => {
            let name = args.first().map(String::as_str).unwrap_or_default();
            match name {
                "checkpoint" | "restore" => {
                    bail!("`{name}` is not supported by this build of berth-runtime yet")
                }
                _ => bail!("unknown command {name:?} (see berth-runtime --help)"),
            }
        }
        Command::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists; remove it first", path.display());
            }
            let spec = berth_runtime::spec::default_spec();
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
    }
}

fn print_list(all: &[serde_json::Value], format: &str, quiet: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if quiet {
        for c in all {
            writeln!(out, "{}", c["id"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    if format == "json" {
        writeln!(out, "{}", serde_json::to_string(all)?)?;
        return Ok(());
    }
    writeln!(out, "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED")?;
    for c in all {
        writeln!(
            out,
            "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
            c["id"].as_str().unwrap_or_default(),
            c["pid"].as_i64().unwrap_or_default(),
            c["status"].as_str().unwrap_or_default(),
            c["bundle"].as_str().unwrap_or_default(),
            c["created"].as_str().unwrap_or_default(),
            c["owner"].as_str().unwrap_or_default()
        )?;
    }
    Ok(())
}
