//! berth: the docker-like command line client of berthd. It holds no state: every command is one
//! or a few ttrpc calls to berthd, which normalises the names users type.

mod commands;
mod daemon;
mod humanize;
mod progress;
mod reference;
mod resolve;
mod table;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::events::EventsArgs;
use commands::images::ImagesArgs;
use commands::inspect::InspectArgs;
use commands::load::LoadArgs;
use commands::pull::PullArgs;
use commands::push::PushArgs;
use commands::rmi::RmiArgs;
use commands::save::SaveArgs;
use commands::system::SystemCommand;
use commands::tag::TagArgs;
use daemon::Berthd;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "A docker-like client for berthd")]
struct Cli {
    /// berthd's socket [default: $BERTH_HOST, else unix:///run/berth/berthd.sock].
    #[arg(short = 'H', long, global = true, value_name = "ADDRESS")]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Image(ImageOperation),
    /// Manage images.
    #[command(subcommand, name = "image")]
    ImageGroup(ImageCommand),
    /// Manage berthd.
    #[command(subcommand)]
    System(SystemCommand),
    /// Show berthd's events as they happen.
    Events(EventsArgs),
    /// Show the client's and berthd's versions.
    Version,
}

/// The image commands, under docker's top-level names.
#[derive(Subcommand, Debug)]
enum ImageOperation {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(TagArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
    /// Display detailed information on images.
    Inspect(InspectArgs),
}

/// `berth image …`: docker's management-command spellings of the image commands.
#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Display detailed information on images.
    Inspect(InspectArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(TagArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
}

impl From<ImageCommand> for ImageOperation {
    fn from(command: ImageCommand) -> ImageOperation {
        match command {
            ImageCommand::Inspect(args) => ImageOperation::Inspect(args),
            ImageCommand::Ls(args) => ImageOperation::Images(args),
            ImageCommand::Pull(args) => ImageOperation::Pull(args),
            ImageCommand::Push(args) => ImageOperation::Push(args),
            ImageCommand::Rm(args) => ImageOperation::Rmi(args),
            ImageCommand::Tag(args) => ImageOperation::Tag(args),
            ImageCommand::Save(args) => ImageOperation::Save(args),
            ImageCommand::Load(args) => ImageOperation::Load(args),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: a command is a handful of calls, and starting fast matters more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            daemon::print_error(&anyhow::Error::from(err).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if daemon::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            daemon::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let env_host = std::env::var(daemon::HOST_ENV).ok();
    let address = daemon::select_host(cli.host.as_deref(), env_host.as_deref());
    match cli.command {
        Command::Image(operation) => run_image_operation(&Berthd::connect(&address)?, &operation).await,
        Command::ImageGroup(command) => run_image_operation(&Berthd::connect(&address)?, &command.into()).await,
        Command::System(command) => commands::system::run(&Berthd::connect(&address)?, &command).await,
        Command::Events(args) => commands::events::run(&Berthd::connect(&address)?, &args).await,
        Command::Version => commands::version::run(&address).await,
    }
}

async fn run_image_operation(berthd: &Berthd, operation: &ImageOperation) -> Result<()> {
    match operation {
        ImageOperation::Pull(args) => commands::pull::run(berthd, args).await,
        ImageOperation::Push(args) => commands::push::run(berthd, args).await,
        ImageOperation::Images(args) => commands::images::run(berthd, args).await,
        ImageOperation::Rmi(args) => commands::rmi::run(berthd, args).await,
        ImageOperation::Tag(args) => commands::tag::run(berthd, args).await,
        ImageOperation::Save(args) => commands::save::run(berthd, args).await,
        ImageOperation::Load(args) => commands::load::run(berthd, args).await,
        ImageOperation::Inspect(args) => commands::inspect::run(berthd, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn host_flag_is_accepted_before_and_after_the_command() {
        for argv in [["berth", "-H", "unix:///x.sock", "images"], ["berth", "images", "-H", "unix:///x.sock"]] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            assert_eq!(cli.host.as_deref(), Some("unix:///x.sock"));
        }
    }

    #[test]
    fn image_subcommands_are_the_top_level_commands() {
        let cli = Cli::try_parse_from(["berth", "image", "rm", "-f", "busybox"]).expect("parses");
        let Command::ImageGroup(image) = cli.command else { panic!("expected `image`") };
        assert!(matches!(ImageOperation::from(image), ImageOperation::Rmi(_)));
    }
}
