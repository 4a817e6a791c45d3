//! `berth run` and `berth create`: the image pulled if missing (Transfer.Pull, with progress),
//! Containers.Create from the flags, then for `run` either
//! Tasks.Start (`-d`) or an Attach that starts the container and relays its stdio until it exits.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use berth_proto::container_config::CreateConfig;
use berth_proto::containers::CreateContainerRequest;
use berth_proto::images::{GetImageRequest, PullRequest};
use berth_proto::tasks::StartTaskRequest;
use ttrpc::Code;

use crate::commands::attach::{attach, AttachTo};
use crate::commands::pull::downloaded;
use crate::container_flags::ContainerFlags;
use crate::daemon::{ctx, Berthd, NoSuchImage};
use crate::exit_code::{self, BeforeStart};
use crate::progress::{self, Direction};
use crate::reference::{with_default_tag, FamiliarName};
use crate::resolve::{resolve, ImageArg};
use crate::stdio::{Ending, Relay};
use crate::terminal::DetachKeys;

/// Create and run a new container from an image.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Override the key sequence for detaching (ctrl-p,ctrl-q by default).
    #[arg(long = "detach-keys", default_value = "")]
    detach_keys: String,
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
pub async fn create(berthd: &Berthd, args: &CreateArgs, config: &CreateConfig) -> Result<u8> {
    let id = create_with_cidfile(berthd, config, args.flags.cidfile.as_deref()).await?;
    writeln!(io::stdout(), "{id}")?;
    Ok(0)
}

/// Creates and starts the container; attached, exits with its status.
pub async fn run(berthd: &Berthd, args: &RunArgs, config: &CreateConfig) -> Result<u8> {
    let id = create_with_cidfile(berthd, config, args.flags.cidfile.as_deref()).await?;
    if args.detach {
        berthd.tasks().start(ctx(), &StartTaskRequest { id: id.clone(), ..Default::default() }).await?;
        writeln!(io::stdout(), "{id}")?;
        return Ok(0);
    }
    let relay = Relay {
        stdin: args.flags.interactive,
        tty: args.flags.tty,
        detach_keys: DetachKeys::parse(&args.detach_keys)?,
    };
    match attach(berthd, &AttachTo { id: &id, start: true, sig_proxy: args.sig_proxy }, relay).await? {
        Ending::Exited(code) => Ok(exit_code::of_process(code)),
        Ending::Detached => Ok(0),
    }
}

/// [`create_container`], with `--cidfile`: the file is made first (it must not exist, so two
/// runs cannot share it), holds the id afterwards, and is removed if the create fails.
async fn create_with_cidfile(berthd: &Berthd, config: &CreateConfig, cidfile: Option<&Path>) -> Result<String> {
    let Some(path) = cidfile else {
        return create_container(berthd, config).await;
    };
    let mut file = OpenOptions::new().write(true).create_new(true).open(path).with_context(|| {
        format!("Container ID file found, make sure the other container isn't running or delete {}", path.display())
    })?;
    match create_container(berthd, config).await {
        Ok(id) => {
            file.write_all(id.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(err) => {
            // Nothing was created: leave no stale id file.
            let _ = std::fs::remove_file(path);
            Err(err)
        }
    }
}

/// Containers.Create, after pulling the image as docker's client does (so the user sees the
/// progress); prints berthd's warnings; returns the full id.
async fn create_container(berthd: &Berthd, config: &CreateConfig) -> Result<String> {
    pull_if_needed(berthd, config).await.context(BeforeStart)?;
    let request = CreateContainerRequest { config: serde_json::to_vec(config)?, ..Default::default() };
    let response = berthd.containers().create(ctx(), &request).await.context(BeforeStart)?;
    let mut err = io::stderr().lock();
    for warning in &response.warnings {
        writeln!(err, "WARNING: {warning}")?;
    }
    Ok(response.container.into_option().unwrap_or_default().id)
}

/// `--pull missing` (the default) pulls an image not stored here, `always` every time, `never`
/// leaves it to berthd to say it is missing. Progress bars go to a terminal's stderr and the
/// summary to stderr: stdout is the container's (or `-d`'s id).
async fn pull_if_needed(berthd: &Berthd, config: &CreateConfig) -> Result<()> {
    match config.pull.as_deref().unwrap_or("missing") {
        "never" => return Ok(()),
        "always" => {}
        _ => {
            if is_stored(berthd, &config.image).await? {
                return Ok(());
            }
            writeln!(io::stderr(), "Unable to find image '{}' locally", with_default_tag(&config.image))?;
        }
    }
    let request = PullRequest {
        reference: config.image.clone(),
        platform: config.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut stream = berthd.transfer().pull(ctx(), &request).await?;
    let quiet = !(io::stdout().is_terminal() && io::stderr().is_terminal());
    let outcome = progress::follow(&mut stream, Direction::Pull, quiet).await?;
    let name = progress::final_name(&outcome, &config.image)?;
    let mut err = io::stderr().lock();
    if let Some(digest) = outcome.image.target.as_ref().map(|t| t.digest.as_str()).filter(|d| !d.is_empty()) {
        writeln!(err, "Digest: {digest}")?;
    }
    let familiar = FamiliarName::parse(&name);
    if downloaded(&outcome) {
        writeln!(err, "Status: Downloaded newer image for {familiar}")?;
    } else {
        writeln!(err, "Status: Image is up to date for {familiar}")?;
    }
    Ok(())
}

/// Whether an image of that name (or id prefix) is stored here.
async fn is_stored(berthd: &Berthd, image: &str) -> Result<bool> {
    let images = berthd.images();
    match resolve(&images, image).await {
        Ok(ImageArg::Id { .. }) => Ok(true),
        Ok(ImageArg::Name(name)) => match images.get(ctx(), &GetImageRequest { name, ..Default::default() }).await {
            Ok(_) => Ok(true),
            Err(ttrpc::Error::RpcStatus(status)) if status.code() == Code::NOT_FOUND => Ok(false),
            Err(err) => Err(err.into()),
        },
        Err(err) if err.downcast_ref::<NoSuchImage>().is_some() => Ok(false),
        Err(err) => Err(err),
    }
}
