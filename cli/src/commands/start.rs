//! `berth start`: Tasks.Start for each container, or with `-a`/`-i` one container started through
//! an Attach so none of its output is lost (exits with its status).

use anyhow::{bail, Result};
use berth_proto::tasks::StartTaskRequest;

use crate::commands::attach::{attach, AttachTo};
use crate::commands::container::{each, get, CreatedWith};
use crate::daemon::{ctx, Berthd};
use crate::exit_code;
use crate::stdio::{Ending, Relay};
use crate::terminal::DetachKeys;

/// Start one or more stopped containers.
#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short, long)]
    attach: bool,
    /// Override the key sequence for detaching (ctrl-p,ctrl-q by default).
    #[arg(long = "detach-keys", default_value = "")]
    detach_keys: String,
    /// Attach container's STDIN.
    #[arg(short, long)]
    interactive: bool,
    /// Container names or ids.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// Starts the containers; attached, exits with the container's status.
pub async fn run(berthd: &Berthd, args: &StartArgs) -> Result<u8> {
    if !args.attach && !args.interactive {
        let tasks = berthd.tasks();
        each(&args.containers, |id| {
            let tasks = &tasks;
            async move {
                tasks.start(ctx(), &StartTaskRequest { id, ..Default::default() }).await?;
                Ok(())
            }
        })
        .await?;
        return Ok(0);
    }
    let [name] = args.containers.as_slice() else {
        bail!("you cannot start and attach multiple containers at once");
    };
    let container = get(berthd, name).await?;
    let created_with = CreatedWith::of(&container);
    let relay = Relay {
        stdin: args.interactive && created_with.open_stdin,
        tty: created_with.tty,
        detach_keys: DetachKeys::parse(&args.detach_keys)?,
    };
    match attach(berthd, &AttachTo { id: &container.id, start: true, sig_proxy: true }, relay).await? {
        Ending::Exited(code) => Ok(exit_code::of_process(code)),
        Ending::Detached => Ok(0),
    }
}
