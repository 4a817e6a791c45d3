//! `berth export`: Containers.Export's tar of a container's root filesystem (without its volumes),
//! into a file (`-o`: a temp file beside it, renamed when complete, removed on failure or Ctrl-C,
//! as `save` writes) or into stdout when that is not a terminal.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use berth_proto::containers::ExportContainerRequest;

use super::cp::{copy_chunks, validate_output_path};
use super::save::{interrupted, partial_file};
use crate::daemon::{ctx, Berthd, PlainMessage};

/// Export a container's filesystem as a tar archive.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Container name or id.
    container: String,
}

pub async fn run(berthd: &Berthd, args: &ExportArgs) -> Result<()> {
    let request = ExportContainerRequest { id: args.container.clone(), ..Default::default() };
    let Some(path) = &args.output else {
        let mut stdout = io::stdout().lock();
        if stdout.is_terminal() {
            return Err(
                PlainMessage("cowardly refusing to save to a terminal. Use the -o flag or redirect".into()).into()
            );
        }
        let mut stream = berthd.containers().export(ctx(), &request).await?;
        copy_chunks(&mut stream, &mut stdout).await?;
        stdout.flush()?;
        return Ok(());
    };
    if let Err(e) = validate_output_path(&path.to_string_lossy()) {
        return Err(PlainMessage(format!("failed to export container: {e}")).into());
    }
    // Dropping `partial` (on error, or when Ctrl-C cancels the write) removes it.
    let mut partial = partial_file(path)?;
    let shown = partial.path().display().to_string();
    let write = async {
        let mut stream = berthd.containers().export(ctx(), &request).await?;
        let mut writer = BufWriter::new(partial.as_file_mut());
        copy_chunks(&mut stream, &mut writer).await.with_context(|| format!("writing {shown}"))?;
        let file = writer.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {shown}"))?;
        file.sync_all().with_context(|| format!("syncing {shown}"))
    };
    tokio::select! {
        result = write => result,
        () = interrupted() => Err(anyhow!("interrupted")),
    }?;
    partial.persist(path).with_context(|| format!("renaming {shown} to {}", path.display()))?;
    Ok(())
}
