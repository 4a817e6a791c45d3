//! `berth save`: Transfer.Export's chunks into a file (written as FILE.tmp, renamed when
//! complete, removed on failure or Ctrl-C) or into stdout when that is not a terminal.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use berth_proto::images::{Chunk, ExportRequest};
use ttrpc::r#async::ClientStreamReceiver;

use crate::daemon::{ctx, Berthd};

/// Archive layouts berthd writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save`'s: manifest.json and layers (with OCI layout files too).
    Docker,
    /// An OCI image layout.
    Oci,
}

impl ArchiveFormat {
    /// The name ExportRequest.format carries.
    fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Docker => "docker",
            ArchiveFormat::Oci => "oci",
        }
    }
}

/// Save images to a tar archive (to stdout by default).
#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Archive layout.
    #[arg(long, value_enum, default_value_t = ArchiveFormat::Docker)]
    format: ArchiveFormat,
    /// Save the manifests of this platform (os/arch[/variant]) only.
    #[arg(long)]
    platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// Writes the archive of `args.images` to the output file or stdout.
pub async fn run(berthd: &Berthd, args: &SaveArgs) -> Result<()> {
    let request = ExportRequest {
        names: args.images.clone(),
        format: args.format.as_str().to_string(),
        platform: args.platform.clone().unwrap_or_default(),
        ..Default::default()
    };
    match &args.output {
        Some(path) => save_to_file(berthd, &request, path).await,
        None => {
            let mut stdout = io::stdout().lock();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut stream = berthd.transfer().export(ctx(), &request).await?;
            copy_chunks(&mut stream, &mut stdout).await?;
            stdout.flush()?;
            Ok(())
        }
    }
}

async fn save_to_file(berthd: &Berthd, request: &ExportRequest, path: &Path) -> Result<()> {
    let partial = partial_path(path);
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let result = tokio::select! {
        result = write_archive(berthd, request, file, &partial, path) => result,
        () = interrupted() => Err(anyhow!("interrupted")),
    };
    if result.is_err() {
        // Best effort: the error that brought us here is the one to report.
        let _ = fs::remove_file(&partial);
    }
    result
}

async fn write_archive(
    berthd: &Berthd,
    request: &ExportRequest,
    file: File,
    partial: &Path,
    path: &Path,
) -> Result<()> {
    let mut stream = berthd.transfer().export(ctx(), request).await?;
    let mut writer = BufWriter::new(file);
    copy_chunks(&mut stream, &mut writer).await.with_context(|| format!("writing {}", partial.display()))?;
    let file =
        writer.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", partial.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", partial.display()))?;
    fs::rename(partial, path).with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    Ok(())
}

/// Copies every chunk of the export stream to `out`, until berthd ends it.
async fn copy_chunks(stream: &mut ClientStreamReceiver<Chunk>, out: &mut impl Write) -> Result<()> {
    while let Some(chunk) = stream.recv().await? {
        out.write_all(&chunk.data)?;
    }
    Ok(())
}

/// Resolves on Ctrl-C; never, if the handler cannot be installed.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `FILE.tmp`, beside FILE so the rename stays on one filesystem.
fn partial_path(path: &Path) -> PathBuf {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".tmp");
    PathBuf::from(partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_archive_sits_beside_the_target() {
        assert_eq!(partial_path(Path::new("/tmp/busybox.tar")), PathBuf::from("/tmp/busybox.tar.tmp"));
        assert_eq!(partial_path(Path::new("out")), PathBuf::from("out.tmp"));
    }
}
