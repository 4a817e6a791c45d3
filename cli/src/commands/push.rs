//! `berth push`: Transfer.Push, with progress, then docker's `<tag>: digest: … size: …` line.

use std::io::{self, Write};

use anyhow::Result;
use berth_proto::images::PushRequest;

use crate::daemon::{ctx, Berthd};
use crate::progress::{self, Direction};
use crate::reference::FamiliarName;

/// Upload an image to a registry.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Push the manifest of this platform (os/arch[/variant]) only.
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image's full name.
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

/// Pushes `args.name` and prints the pushed digest and size, or only the name with `-q`.
pub async fn run(berthd: &Berthd, args: &PushArgs) -> Result<()> {
    let request = PushRequest {
        reference: args.name.clone(),
        platform: args.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut stream = berthd.transfer().push(ctx(), &request).await?;
    let outcome = progress::follow(&mut stream, Direction::Push, args.quiet).await?;
    let name = progress::final_name(&outcome, &args.name)?;
    let mut out = io::stdout().lock();
    if args.quiet {
        writeln!(out, "{name}")?;
    } else if let Some(target) = outcome.image.target.as_ref() {
        let tag = FamiliarName::parse(&name).tag.unwrap_or_else(|| "latest".to_string());
        writeln!(out, "{tag}: digest: {} size: {}", target.digest, target.size)?;
    }
    Ok(())
}
