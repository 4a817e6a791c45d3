//! `berth save`: Transfer.Export's chunks into a file (written to a fresh temp file beside it,
//! renamed when complete, removed on failure or Ctrl-C) or into stdout when that is not a terminal.

use std::ffi::OsString;
use std::fs::Permissions;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use berth_proto::images::{Chunk, ExportRequest};
use tempfile::NamedTempFile;
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
    // Dropping `partial` (on error, or when Ctrl-C cancels the write) removes it.
    let mut partial = partial_file(path)?;
    tokio::select! {
        result = write_archive(berthd, request, &mut partial) => result,
        () = interrupted() => Err(anyhow!("interrupted")),
    }?;
    let shown = partial.path().display().to_string();
    partial.persist(path).with_context(|| format!("renaming {shown} to {}", path.display()))?;
    Ok(())
}

/// A new, exclusively created temp file beside `path` (so the rename stays on one filesystem),
/// named `.FILE.XXXXXX.tmp`: whatever the user already has there is never opened or removed.
pub(crate) fn partial_file(path: &Path) -> Result<NamedTempFile> {
    let dir = parent_dir(path);
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_else(|| "berth-save".as_ref()));
    prefix.push(".");
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        // As File::create would: 0666 less the umask, not tempfile's 0600.
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// The directory `path` is in; `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes the export stream into `partial` and syncs it.
async fn write_archive(berthd: &Berthd, request: &ExportRequest, partial: &mut NamedTempFile) -> Result<()> {
    let shown = partial.path().display().to_string();
    let mut stream = berthd.transfer().export(ctx(), request).await?;
    let mut writer = BufWriter::new(partial.as_file_mut());
    copy_chunks(&mut stream, &mut writer).await.with_context(|| format!("writing {shown}"))?;
    let file = writer.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {shown}"))?;
    file.sync_all().with_context(|| format!("syncing {shown}"))?;
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
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn partial_archive_is_a_new_file_beside_the_target_and_leaves_user_files_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("busybox.tar");
        let users = dir.path().join("busybox.tar.tmp");
        fs::write(&users, b"mine").expect("write the user's file");

        let partial = partial_file(&target).expect("partial file");
        assert_eq!(partial.path().parent(), Some(dir.path()));
        let name = partial.path().file_name().expect("name").to_string_lossy().into_owned();
        assert!(name.starts_with(".busybox.tar.") && name.ends_with(".tmp"), "{name}");
        drop(partial);

        assert_eq!(fs::read(&users).expect("read the user's file"), b"mine");
        let left: Vec<_> = fs::read_dir(dir.path()).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        assert_eq!(left, [users], "a dropped partial file is removed");
    }

    #[test]
    fn partial_archive_of_a_bare_name_goes_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("out.tar")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/out.tar")), Path::new("/"));
        assert_eq!(parent_dir(Path::new("a/b/out.tar")), Path::new("a/b"));
    }
}
