//! A stream of byte chunks (what a streaming RPC carries) read as one `Read`, on the blocking
//! side of a channel: berthd reads uploads with it, the CLI what `cp` receives.

use std::io::{self, Read};

use tokio::sync::mpsc;

/// The blocking side of import: the received chunks as one byte stream. An error from the
/// stream is an error here, so a cut-short upload never reads as a complete archive.
pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Vec<u8>>>) -> ChunkReader {
        ChunkReader { rx, chunk: Vec::new(), pos: 0 }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_reader_joins_chunks_and_fails_on_a_stream_error() {
        let (tx, rx) = mpsc::channel(8);
        tx.blocking_send(Ok(b"ab".to_vec())).unwrap();
        tx.blocking_send(Ok(Vec::new())).unwrap();
        tx.blocking_send(Ok(b"c".to_vec())).unwrap();
        drop(tx);
        let mut all = Vec::new();
        ChunkReader::new(rx).read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abc");

        let (tx, rx) = mpsc::channel(8);
        tx.blocking_send(Ok(b"ab".to_vec())).unwrap();
        tx.blocking_send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "gone"))).unwrap();
        let err = ChunkReader::new(rx).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
