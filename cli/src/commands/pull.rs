//! `berth pull`: Transfer.Pull, with progress, then docker's summary lines.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::images::PullRequest;

use crate::daemon::{ctx, Berthd};
use crate::progress::{self, status, Direction, Outcome};
use crate::reference::FamiliarName;

/// Download an image from a registry.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Pull for this platform (os/arch[/variant]) instead of this host's.
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image's full name.
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

/// Pulls `args.name` and prints docker's summary, or only the name with `-q`.
pub async fn run(berthd: &Berthd, args: &PullArgs) -> Result<()> {
    let request = PullRequest {
        reference: args.name.clone(),
        platform: args.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut stream = berthd.transfer().pull(ctx(), &request).await?;
    let outcome = progress::follow(&mut stream, Direction::Pull, args.quiet).await?;
    let name = progress::final_name(&outcome, &args.name)?;
    let mut out = io::stdout().lock();
    if !args.quiet {
        let familiar = FamiliarName::parse(&name);
        if let Some(digest) = outcome.image.target.as_ref().map(|t| t.digest.as_str()).filter(|d| !d.is_empty()) {
            writeln!(out, "Digest: {digest}")?;
        }
        if downloaded(&outcome) {
            writeln!(out, "Status: Downloaded newer image for {familiar}")?;
        } else {
            writeln!(out, "Status: Image is up to date for {familiar}")?;
        }
    }
    writeln!(out, "{name}")?;
    Ok(())
}

/// Whether the pull fetched or unpacked anything: berthd's final status says so; without one,
/// whether any layer moved bytes.
pub fn downloaded(outcome: &Outcome) -> bool {
    match outcome.status.as_str() {
        status::DOWNLOADED => true,
        status::UP_TO_DATE => false,
        _ => outcome.transferred,
    }
}
