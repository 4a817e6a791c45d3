//! `berth attach`: the user's stdio joined to a running container's (Tasks.Attach), and the same
//! relay for `run` and `start -a`, which ask berthd to start the container once attached.

use anyhow::{bail, Result};
use berth_proto::tasks::AttachInput;

use crate::commands::container::{get, CreatedWith};
use crate::daemon::{ctx, Berthd};
use crate::exit_code;
use crate::stdio::{self, Ending, Relay, SignalProxy};
use crate::terminal;
use crate::terminal::DetachKeys;

/// Attach local standard input, output, and error streams to a running container.
#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// Override the key sequence for detaching (ctrl-p,ctrl-q by default).
    #[arg(long = "detach-keys", default_value = "")]
    detach_keys: String,
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process (non-TTY mode only).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Container name or id (prefix).
    container: String,
}

/// Which container, whether berthd starts it once attached, and whether our signals go to it.
pub struct AttachTo<'a> {
    pub id: &'a str,
    pub start: bool,
    pub sig_proxy: bool,
}

/// Attaches to a running container until it exits (its status) or the user detaches (0).
pub async fn run(berthd: &Berthd, args: &AttachArgs) -> Result<u8> {
    let container = get(berthd, &args.container).await?;
    let status = container.state.as_ref().map(|s| s.status.as_str()).unwrap_or_default();
    if status != "running" && status != "paused" {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let created_with = CreatedWith::of(&container);
    let relay = Relay {
        stdin: created_with.open_stdin && !args.no_stdin,
        tty: created_with.tty,
        detach_keys: DetachKeys::parse(&args.detach_keys)?,
    };
    match attach(berthd, &AttachTo { id: &container.id, start: false, sig_proxy: args.sig_proxy }, relay).await? {
        Ending::Exited(code) => Ok(exit_code::of_process(code)),
        Ending::Detached => Ok(0),
    }
}

/// Opens Tasks.Attach for `to` and relays stdio (in raw mode with a terminal).
pub async fn attach(berthd: &Berthd, to: &AttachTo<'_>, relay: Relay) -> Result<Ending> {
    relay.check()?;
    let _raw_mode = relay.raw_mode()?;
    let stream = berthd.tasks().attach(ctx()).await?;
    let (width, height) = if relay.tty { terminal::window_size().unwrap_or_default() } else { (0, 0) };
    let first = AttachInput {
        id: to.id.to_string(),
        start: to.start,
        stdin: relay.stdin,
        stdout: true,
        stderr: true,
        width,
        height,
        ..Default::default()
    };
    stream.send(&first).await?;
    let (sender, receiver) = stream.split();
    let proxy =
        (to.sig_proxy && !relay.tty).then(|| SignalProxy { tasks: berthd.tasks(), container: to.id.to_string() });
    stdio::relay::<stdio::Attach>(sender, receiver, relay, proxy).await
}
