//! docker's `import`: a filesystem tar (plain, gzip or zstd) as a one-layer image, with the
//! config `--change` instructions make.

use std::io::{self, Read, Seek, Write};

use std::sync::Arc;
use tokio::io::AsyncWriteExt;

use anyhow::{anyhow, Context, Result};
use berth_proto::build::ImportFilesystemInput;
use serde_json::json;
use ttrpc::asynchronous::ServerStreamReceiver;

use crate::build::Invalid;
use crate::daemon::Berthd;
use crate::image::draft::{self, Draft, History};
use crate::image::Platform;
use crate::store::lease::TransferLease;
use crate::store::meta::Image;

/// Receives the tar and makes the image; returns its record.
pub async fn import_filesystem(
    d: &Arc<Berthd>,
    mut input: ServerStreamReceiver<ImportFilesystemInput>,
) -> Result<Image> {
    let _activity = crate::memory::activity();
    let first = input
        .recv()
        .await
        .map_err(|e| anyhow!("receiving the import options: {e}"))?
        .ok_or_else(|| Invalid("nothing to import".into()))?;
    let platform = match first.platform.as_str() {
        "" => Platform::host(),
        p => p.parse::<Platform>().map_err(|e| Invalid(format!("{e}")))?,
    };
    if !first.reference.is_empty() {
        draft::record_name(Some(&first.reference), &crate::store::digest::Digest::sha256(b""))
            .map_err(|e| Invalid(format!("{e:#}")))?;
    }
    let config = crate::build::changes::apply_changes(json!({}), &first.changes)?;
    // Spooled first: the upload may be slow, and nothing is stored until it is whole.
    let tmp = d.cfg.root.join("tmp");
    let spool = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        tempfile::tempfile_in(&tmp).context("creating a spool file")
    })
    .await??;
    let mut spool = tokio::fs::File::from_std(spool);
    spool.write_all(&first.data).await.context("spooling the import")?;
    loop {
        match input.recv().await {
            Ok(Some(message)) => spool.write_all(&message.data).await.context("spooling the import")?,
            Ok(None) => break,
            Err(e) => return Err(anyhow!("receiving the tar: {e}")),
        }
    }
    spool.flush().await.context("spooling the import")?;
    let mut spool = spool.into_std().await;
    let lease = TransferLease::new(d, "import").await?;
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        spool.rewind().context("rewinding the spool")?;
        let tar = decompressed(spool)?;
        let mut draft = Draft::scratch(&platform);
        let layer = draft::store_layer(&d, &lease, |out| copy_counting(tar, out))?;
        if layer.is_none() {
            return Err(Invalid("the imported tar holds no files".into()).into());
        }
        let created = draft::now_rfc3339();
        let comment = if first.comment.is_empty() { "Imported from -".to_string() } else { first.comment.clone() };
        draft.add_step(&d, &lease, layer, History { created: created.clone(), comment, ..Default::default() })?;
        draft.config["created"] = json!(created);
        draft.config["config"] = config;
        let stored = draft.store(&d, &lease)?;
        let names: Vec<String> = Some(first.reference).filter(|r| !r.is_empty()).into_iter().collect();
        draft::name_image(&d, &names, &stored.manifest)?
            .into_iter()
            .map(|(_, i)| i)
            .next()
            .context("no image was named")
    })
    .await?
}

/// The tar inside `file`: gzip and zstd are undone, anything else is read as it is.
fn decompressed(mut file: std::fs::File) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).context("reading the import")?;
    file.rewind().context("rewinding the spool")?;
    let reader = io::BufReader::new(file);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::with_buffer(reader).context("reading zstd")?),
        _ => Box::new(reader),
    })
}

/// Copies the tar to `out`, checking it is one; returns how many entries it has.
fn copy_counting(tar: Box<dyn Read>, out: &mut dyn Write) -> Result<usize> {
    struct Tee<'a> {
        inner: Box<dyn Read>,
        out: &'a mut dyn Write,
    }
    impl Read for Tee<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.out.write_all(&buf[..n])?;
            Ok(n)
        }
    }
    let mut tee = Tee { inner: tar, out };
    let mut count = 0;
    {
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries().map_err(|e| Invalid(format!("the import is not a tar: {e}")))? {
            entry.map_err(|e| Invalid(format!("the import is not a tar: {e}")))?;
            count += 1;
        }
    }
    // The rest (end-of-archive blocks and padding) belongs to the layer too.
    io::copy(&mut tee.inner, tee.out).context("copying the import")?;
    Ok(count)
}
