//! berth: the docker-like command line client of berthd. It holds no state: every command is one
//! or a few ttrpc calls to berthd, which normalises the names users type.

mod build_context;
mod commands;
mod container_flags;
mod daemon;
mod exit_code;
mod humanize;
mod progress;
mod reference;
mod resolve;
mod signals;
mod stdio;
mod table;
mod template;
mod terminal;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::attach::AttachArgs;
use commands::build::{BuildArgs, ImportArgs};
use commands::commit::{CommitArgs, DiffArgs};
use commands::cp::CpArgs;
use commands::events::EventsArgs;
use commands::exec::ExecArgs;
use commands::export::ExportArgs;
use commands::history::HistoryArgs;
use commands::image_prune::ImagePruneArgs;
use commands::images::ImagesArgs;
use commands::inspect::InspectArgs;
use commands::inspect_container::{ContainerInspectArgs, InspectAnyArgs};
use commands::kill::KillArgs;
use commands::load::LoadArgs;
use commands::login::{LoginArgs, LogoutArgs};
use commands::logs::LogsArgs;
use commands::pause::PauseArgs;
use commands::prune::PruneArgs;
use commands::ps::PsArgs;
use commands::pull::PullArgs;
use commands::push::PushArgs;
use commands::rename::RenameArgs;
use commands::restart::RestartArgs;
use commands::rm::RmArgs;
use commands::rmi::RmiArgs;
use commands::run::{CreateArgs, RunArgs};
use commands::save::SaveArgs;
use commands::start::StartArgs;
use commands::stats::StatsArgs;
use commands::stop::StopArgs;
use commands::system::SystemCommand;
use commands::tag::TagArgs;
use commands::top::TopArgs;
use commands::update::UpdateArgs;
use commands::volume::VolumeCommand;
use commands::wait::WaitArgs;
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
    /// List containers.
    Ps(PsArgs),
    /// Return low-level information on containers or images.
    Inspect(InspectAnyArgs),
    #[command(flatten)]
    Container(ContainerOperation),
    /// Manage containers.
    #[command(subcommand, name = "container")]
    ContainerGroup(ContainerCommand),
    #[command(flatten)]
    Image(ImageOperation),
    /// Manage images.
    #[command(subcommand, name = "image")]
    ImageGroup(ImageCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// Manage berthd.
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Show berthd's events as they happen.
    Events(EventsArgs),
    /// Show the client's and berthd's versions.
    Version,
    /// Display system-wide information.
    Info,
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// A verb berth does not have (yet): said so, with no guess at a similar one.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

/// The container commands, under docker's top-level names (and `berth container …`).
#[derive(Subcommand, Debug)]
enum ContainerOperation {
    /// Create and run a new container from an image.
    Run(Box<RunArgs>),
    /// Create a new container.
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(RestartArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(WaitArgs),
    /// Pause all processes within one or more containers.
    Pause(PauseArgs),
    /// Unpause all processes within one or more containers.
    Unpause(PauseArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(StatsArgs),
    /// Update configuration of one or more containers.
    Update(UpdateArgs),
    /// List port mappings or a specific mapping for the container.
    Port(commands::port::PortArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(DiffArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(CpArgs),
    /// Export a container's filesystem as a tar archive.
    Export(ExportArgs),
}

impl ContainerOperation {
    /// Whether failures exit as docker's `run`/`create`/`start`/`exec` do (125, 126, 127).
    fn has_process_exit_codes(&self) -> bool {
        matches!(self, Self::Run(_) | Self::Create(_) | Self::Start(_) | Self::Exec(_))
    }
}

/// `berth container …`: docker's management-command spellings of the container commands.
#[derive(Subcommand, Debug)]
enum ContainerCommand {
    #[command(flatten)]
    Operation(ContainerOperation),
    /// List containers.
    #[command(visible_alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// Display detailed information on one or more containers.
    Inspect(ContainerInspectArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    /// A `container` verb berth does not have: said so, with no guess at a similar one.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
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
    /// Show the history of an image.
    History(HistoryArgs),
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Remove unused images (`berth image prune`; docker has no top-level `prune`).
    #[command(skip)]
    Prune(ImagePruneArgs),
    /// Display detailed information on images (`berth image inspect`; the top-level `inspect`
    /// also finds containers).
    #[command(skip)]
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
    /// Show the history of an image.
    History(HistoryArgs),
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Remove unused images.
    Prune(ImagePruneArgs),
    /// An `image` verb berth does not have: said so, with no guess at a similar one.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
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
            ImageCommand::History(args) => ImageOperation::History(args),
            ImageCommand::Build(args) => ImageOperation::Build(args),
            ImageCommand::Import(args) => ImageOperation::Import(args),
            ImageCommand::Prune(args) => ImageOperation::Prune(args),
            ImageCommand::Unknown(_) => unreachable!("run reports unknown image verbs"),
        }
    }
}

/// Whether `argv` asks for a verb that exits as docker's `run` does (125 for a bad flag too).
fn is_process_verb(argv: &[String]) -> bool {
    let mut words = argv.iter().skip(1);
    let mut verb = None;
    while let Some(word) = words.next() {
        match word.as_str() {
            "-H" | "--host" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            "container" => {}
            w => {
                verb = Some(w);
                break;
            }
        }
    }
    matches!(verb, Some("run" | "create" | "start" | "exec"))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => {
            // Nothing is left to tell anyone if the terminal itself fails.
            let _ = err.print();
            return match err.use_stderr() {
                false => ExitCode::SUCCESS,
                true if is_process_verb(&argv) => ExitCode::from(exit_code::BERTH_FAILED),
                true => ExitCode::from(err.exit_code().clamp(0, 255) as u8),
            };
        }
    };
    let process_exit_codes = match &cli.command {
        Command::Container(operation) | Command::ContainerGroup(ContainerCommand::Operation(operation)) => {
            operation.has_process_exit_codes()
        }
        _ => false,
    };
    // One thread: a command is a handful of calls, and starting fast matters more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            daemon::print_error(&anyhow::Error::from(err).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(status) => ExitCode::from(status),
        Err(err) if daemon::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<exit_code::Reported>().is_some() => {
            ExitCode::from(err.downcast_ref::<exit_code::Reported>().map_or(1, |r| r.0))
        }
        Err(err) => {
            daemon::print_error(&err);
            if process_exit_codes {
                ExitCode::from(exit_code::of_error(&err))
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs the command; its exit status.
async fn run(cli: Cli) -> Result<u8> {
    let env_host = std::env::var(daemon::HOST_ENV).ok();
    let address = daemon::select_host(cli.host.as_deref(), env_host.as_deref());
    match cli.command {
        Command::Container(operation) | Command::ContainerGroup(ContainerCommand::Operation(operation)) => {
            run_container_operation(&address, &operation).await
        }
        Command::Ps(args) | Command::ContainerGroup(ContainerCommand::Ls(args)) => {
            commands::ps::run(&Berthd::connect(&address)?, &args).await.map(|()| 0)
        }
        Command::Inspect(args) => {
            commands::inspect_container::run(&Berthd::connect(&address)?, &args).await.map(|()| 0)
        }
        Command::ContainerGroup(ContainerCommand::Inspect(args)) => {
            commands::inspect_container::run(&Berthd::connect(&address)?, &(&args).into()).await.map(|()| 0)
        }
        Command::ContainerGroup(ContainerCommand::Prune(args)) => {
            commands::prune::run(&Berthd::connect(&address)?, &args).await.map(|()| 0)
        }
        Command::Unknown(argv) => anyhow::bail!(unknown_verb("", &argv)),
        Command::ContainerGroup(ContainerCommand::Unknown(argv)) => anyhow::bail!(unknown_verb("container ", &argv)),
        Command::ImageGroup(ImageCommand::Unknown(argv)) => anyhow::bail!(unknown_verb("image ", &argv)),
        Command::System(SystemCommand::Unknown(argv)) => anyhow::bail!(unknown_verb("system ", &argv)),
        Command::Volume(VolumeCommand::Unknown(argv)) => anyhow::bail!(unknown_verb("volume ", &argv)),
        other => run_other(other, &address).await.map(|()| 0),
    }
}

fn unknown_verb(group: &str, argv: &[String]) -> daemon::UnknownCommand {
    daemon::UnknownCommand(format!("{group}{}", argv.first().map_or("", String::as_str)))
}

async fn run_container_operation(address: &str, operation: &ContainerOperation) -> Result<u8> {
    let berthd = || Berthd::connect(address);
    let done = |result: Result<()>| result.map(|()| 0);
    match operation {
        ContainerOperation::Run(args) => {
            // Flags are checked before berthd is reached: a bad value is the user's to fix first.
            let config = args.create_config()?;
            commands::run::run(&berthd()?, args, &config).await
        }
        ContainerOperation::Create(args) => {
            let config = args.create_config()?;
            commands::run::create(&berthd()?, args, &config).await
        }
        ContainerOperation::Start(args) => commands::start::run(&berthd()?, args).await,
        ContainerOperation::Attach(args) => commands::attach::run(&berthd()?, args).await,
        ContainerOperation::Exec(args) => commands::exec::run(&berthd()?, args).await,
        ContainerOperation::Stop(args) => done(commands::stop::run(&berthd()?, args).await),
        ContainerOperation::Restart(args) => done(commands::restart::run(&berthd()?, args).await),
        ContainerOperation::Kill(args) => done(commands::kill::run(&berthd()?, args).await),
        ContainerOperation::Rm(args) => done(commands::rm::run(&berthd()?, args).await),
        ContainerOperation::Wait(args) => done(commands::wait::run(&berthd()?, args).await),
        ContainerOperation::Pause(args) => done(commands::pause::pause(&berthd()?, args).await),
        ContainerOperation::Unpause(args) => done(commands::pause::unpause(&berthd()?, args).await),
        ContainerOperation::Rename(args) => done(commands::rename::run(&berthd()?, args).await),
        ContainerOperation::Commit(args) => done(commands::commit::run(&berthd()?, args).await),
        ContainerOperation::Diff(args) => done(commands::commit::diff(&berthd()?, args).await),
        ContainerOperation::Logs(args) => done(commands::logs::run(&berthd()?, args).await),
        ContainerOperation::Top(args) => done(commands::top::run(&berthd()?, args).await),
        ContainerOperation::Stats(args) => done(commands::stats::run(&berthd()?, args).await),
        ContainerOperation::Update(args) => done(commands::update::run(&berthd()?, args).await),
        ContainerOperation::Port(args) => done(commands::port::run(&berthd()?, args).await),
        ContainerOperation::Cp(args) => done(commands::cp::run(&berthd()?, args).await),
        ContainerOperation::Export(args) => done(commands::export::run(&berthd()?, args).await),
    }
}

async fn run_other(command: Command, address: &str) -> Result<()> {
    match command {
        Command::Image(operation) => run_image_operation(&Berthd::connect(address)?, &operation).await,
        Command::ImageGroup(command) => run_image_operation(&Berthd::connect(address)?, &command.into()).await,
        Command::System(command) => commands::system::run(&Berthd::connect(address)?, &command).await,
        Command::Volume(command) => commands::volume::run(&Berthd::connect(address)?, &command).await,
        Command::Network(command) => commands::network::run(&Berthd::connect(address)?, &command).await,
        Command::Events(args) => commands::events::run(&Berthd::connect(address)?, &args).await,
        Command::Version => commands::version::run(address).await,
        Command::Info => commands::info::run(&Berthd::connect(address)?).await,
        Command::Login(args) => commands::login::login(&Berthd::connect(address)?, &args).await,
        Command::Logout(args) => commands::login::logout(&Berthd::connect(address)?, &args).await,
        Command::Ps(_)
        | Command::Inspect(_)
        | Command::Container(_)
        | Command::ContainerGroup(_)
        | Command::Unknown(_) => {
            unreachable!("handled by run")
        }
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
        ImageOperation::History(args) => commands::history::run(berthd, args).await,
        ImageOperation::Build(args) => commands::build::run(berthd, args).await,
        ImageOperation::Import(args) => commands::build::import(berthd, args).await,
        ImageOperation::Prune(args) => commands::image_prune::run(berthd, args).await,
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

    #[test]
    fn unknown_verbs_are_not_guessed_at() {
        for verb in ["psx", "swarm", "plugin"] {
            let cli = Cli::try_parse_from(["berth", verb, "ls"]).expect("parses");
            let Command::Unknown(argv) = cli.command else { panic!("expected an unknown command") };
            assert_eq!(argv[0], verb);
        }
    }

    #[test]
    fn unknown_verbs_in_groups_are_not_guessed_at() {
        let cli = Cli::try_parse_from(["berth", "container", "psx"]).expect("parses");
        assert!(matches!(cli.command, Command::ContainerGroup(ContainerCommand::Unknown(_))));
        let cli = Cli::try_parse_from(["berth", "image", "lss"]).expect("parses");
        assert!(matches!(cli.command, Command::ImageGroup(ImageCommand::Unknown(_))));
        let cli = Cli::try_parse_from(["berth", "system", "dff"]).expect("parses");
        assert!(matches!(cli.command, Command::System(SystemCommand::Unknown(_))));
    }

    #[test]
    fn unknown_flags_are_not_taken_for_the_image() {
        assert!(Cli::try_parse_from(["berth", "run", "--bogus", "busybox"]).is_err());
        let cli = Cli::try_parse_from(["berth", "run", "busybox", "ls", "--bogus"]).expect("parses");
        let Command::Container(ContainerOperation::Run(run)) = cli.command else { panic!("expected run") };
        assert_eq!(run.create_config().expect("config").cmd, Some(vec!["ls".to_string(), "--bogus".to_string()]));
    }

    #[test]
    fn process_verbs_are_found_past_global_flags() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(is_process_verb(&argv(&["berth", "run", "--bogus"])));
        assert!(is_process_verb(&argv(&["berth", "-H", "unix:///x", "container", "exec", "-z"])));
        assert!(!is_process_verb(&argv(&["berth", "ps", "--bogus"])));
        assert!(!is_process_verb(&argv(&["berth", "-H", "run"])));
    }

    #[test]
    fn container_subcommands_are_the_top_level_commands() {
        let cli = Cli::try_parse_from(["berth", "container", "run", "-d", "busybox", "sleep", "9"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::ContainerGroup(ContainerCommand::Operation(ContainerOperation::Run(_)))
        ));
        let cli = Cli::try_parse_from(["berth", "exec", "-it", "web", "sh", "-c", "ls -l"]).expect("parses");
        assert!(matches!(cli.command, Command::Container(ContainerOperation::Exec(_))));
    }
}
