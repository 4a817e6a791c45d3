//! `berth run` and `berth create`: Containers.Create from the flags, then for `run` either
//! Tasks.Start (`-d`) or an Attach that starts the container and relays its stdio until it exits.

use std::io::{self, Write};

use anyhow::{Context, Result};
use berth_proto::container_config::CreateConfig;
use berth_proto::containers::CreateContainerRequest;
use berth_proto::tasks::StartTaskRequest;

use crate::commands::attach::{attach, AttachTo};
use crate::container_flags::ContainerFlags;
use crate::daemon::{ctx, Berthd};
use crate::exit_code::{self, BeforeStart};
use crate::stdio::{Ending, Relay};

/// Create and run a new container from an image.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID.
    #[arg(short, long)]
    detach: bool,
    /// Proxy received signals to the process (non-TTY mode only).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    #[command(flatten)]
    flags: ContainerFlags,
}

/// Create a new container.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    flags: ContainerFlags,
}

impl RunArgs {
    /// The container these flags ask for (files such as `--env-file` read now).
    pub fn create_config(&self) -> Result<CreateConfig> {
        self.flags.create_config()
    }
}

impl CreateArgs {
    /// The container these flags ask for (files such as `--env-file` read now).
    pub fn create_config(&self) -> Result<CreateConfig> {
        self.flags.create_config()
    }
}

/// Creates the container and prints its id.
pub async fn create(berthd: &Berthd, config: &CreateConfig) -> Result<u8> {
    let id = create_container(berthd, config).await?;
    writeln!(io::stdout(), "{id}")?;
    Ok(0)
}

/// Creates and starts the container; attached, exits with its status.
pub async fn run(berthd: &Berthd, args: &RunArgs, config: &CreateConfig) -> Result<u8> {
    let id = create_container(berthd, config).await?;
    if args.detach {
        berthd.tasks().start(ctx(), &StartTaskRequest { id: id.clone(), ..Default::default() }).await?;
        writeln!(io::stdout(), "{id}")?;
        return Ok(0);
    }
    let relay = Relay { stdin: args.flags.interactive, tty: args.flags.tty };
    match attach(berthd, &AttachTo { id: &id, start: true, sig_proxy: args.sig_proxy }, relay).await? {
        Ending::Exited(code) => Ok(exit_code::of_process(code)),
        Ending::Detached => Ok(0),
    }
}

/// Containers.Create; prints berthd's warnings; returns the full id.
async fn create_container(berthd: &Berthd, config: &CreateConfig) -> Result<String> {
    let request = CreateContainerRequest { config: serde_json::to_vec(config)?, ..Default::default() };
    let response = berthd.containers().create(ctx(), &request).await.context(BeforeStart)?;
    let mut err = io::stderr().lock();
    for warning in &response.warnings {
        writeln!(err, "WARNING: {warning}")?;
    }
    Ok(response.container.into_option().unwrap_or_default().id)
}
