//! `berth load`: a tar archive (file or stdin) streamed to Transfer.Import in 1 MiB chunks.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_proto::images::Chunk;

use crate::daemon::{ctx, Berthd};
use crate::reference::FamiliarName;

/// Bytes per Import message: well under ttrpc's 4 MiB message limit.
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

/// Load images from a tar archive (`docker save` or OCI layout).
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Read from this file instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Accepted for docker compatibility; berth prints no progress for load.
    #[arg(short, long, hide = true)]
    quiet: bool,
}

/// Sends the archive and prints `Loaded image: NAME` for each image berthd imported.
pub async fn run(berthd: &Berthd, args: &LoadArgs) -> Result<()> {
    let mut source: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?),
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(stdin.lock())
        }
    };
    let mut sender = berthd.transfer().import(ctx()).await?;
    let mut buffer = vec![0; CHUNK_SIZE];
    loop {
        let filled = fill(&mut source, &mut buffer).context("reading the archive")?;
        if filled == 0 {
            break;
        }
        let chunk = Chunk { data: buffer[..filled].to_vec(), ..Default::default() };
        if let Err(send_err) = sender.send(&chunk).await {
            // berthd may have stopped reading because it failed: its status says why.
            return Err(match sender.close_and_recv().await {
                Err(status) => status.into(),
                Ok(_) => send_err.into(),
            });
        }
        if filled < buffer.len() {
            break;
        }
    }
    let response = sender.close_and_recv().await?;
    let mut out = io::stdout().lock();
    for image in &response.images {
        writeln!(out, "Loaded image: {}", FamiliarName::parse(&image.name))?;
    }
    Ok(())
}

/// Reads until `buffer` is full or the input ends; returns how many bytes it holds.
pub fn fill(source: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// The blocking side of an upload (`cp` into a container, a build context): cuts what is
/// written into chunks of at most `CHUNK_SIZE` for the async sender.
pub(crate) struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>) -> ChunkSender {
        ChunkSender { tx, buf: Vec::with_capacity(CHUNK_SIZE) }
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "berthd stopped receiving the upload"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 3 bytes per read, like a pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_are_filled_across_short_reads() {
        let mut source = Trickle(b"0123456789");
        let mut buffer = [0; 8];
        assert_eq!(fill(&mut source, &mut buffer).expect("read"), 8);
        assert_eq!(&buffer, b"01234567");
        assert_eq!(fill(&mut source, &mut buffer).expect("read"), 2);
        assert_eq!(fill(&mut source, &mut buffer).expect("read"), 0);
    }
}
