//! `berth exec`: a new process in a running container (Tasks.Exec), its stdio relayed like
//! `run`'s; exits with the process's status.

use anyhow::{bail, Context, Result};
use berth_proto::container_config::ExecConfig;
use berth_proto::tasks::ExecInput;

use crate::container_flags::{parse_env_file, resolve_env};
use crate::daemon::{ctx, Berthd};
use crate::exit_code;
use crate::stdio::{self, Ending, Relay};
use crate::terminal;
use crate::terminal::DetachKeys;

/// Execute a command in a running container.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching (ctrl-p,ctrl-q by default).
    #[arg(long = "detach-keys", default_value = "")]
    detach_keys: String,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir")]
    workdir: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    privileged: bool,
    /// Container name or id.
    container: String,
    /// COMMAND [ARG...]
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

impl ExecArgs {
    fn exec_config(&self) -> Result<ExecConfig> {
        let (width, height) = if self.tty { terminal::window_size().unwrap_or_default() } else { (0, 0) };
        let lookup_env = |key: &str| std::env::var(key).ok();
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file).with_context(|| format!("open {file}"))?;
            env.extend(parse_env_file(&text, &lookup_env).with_context(|| format!("in env file {file}"))?);
        }
        env.extend(self.env.iter().filter_map(|e| resolve_env(e, &lookup_env)));
        Ok(ExecConfig {
            container: self.container.clone(),
            cmd: self.command.clone(),
            env,
            user: self.user.clone(),
            working_dir: self.workdir.clone(),
            tty: self.tty,
            attach_stdin: self.interactive && !self.detach,
            detach: self.detach,
            privileged: self.privileged,
            width,
            height,
        })
    }
}

/// Runs the process; attached, exits with its status.
pub async fn run(berthd: &Berthd, args: &ExecArgs) -> Result<u8> {
    let relay = Relay {
        stdin: args.interactive && !args.detach,
        tty: args.tty,
        detach_keys: DetachKeys::parse(&args.detach_keys)?,
    };
    relay.check()?;
    let _raw_mode = if args.detach { None } else { relay.raw_mode()? };
    let mut stream = berthd.tasks().exec(ctx()).await?;
    let first = ExecInput { config: serde_json::to_vec(&args.exec_config()?)?, ..Default::default() };
    stream.send(&first).await?;
    if args.detach {
        let started = stream.recv().await?;
        if !started.started {
            bail!("berthd did not report the process started");
        }
        return Ok(0);
    }
    let (sender, receiver) = stream.split();
    match stdio::relay::<stdio::Exec>(sender, receiver, relay, None).await? {
        Ending::Exited(code) => Ok(exit_code::of_process(code)),
        Ending::Detached => Ok(0),
    }
}
