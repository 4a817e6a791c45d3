//! The parent/init handshake over a `SOCK_SEQPACKET` socketpair: one message per datagram, so
//! no framing is needed, and EOF tells the parent that init died.

use anyhow::{bail, Context, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::OwnedFd;

/// A message between the runtime and the container's init.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// parent → init: cgroup joined, id maps written, state (with init's pid) saved; go on.
    Go,
    /// init → parent: mounts are done; run prestart and createRuntime hooks now.
    RunCreateRuntimeHooks,
    /// parent → init: those hooks ran.
    HooksDone,
    /// init → parent: fully set up, about to block on the exec fifo.
    Ready,
    /// init → parent: setup failed with this message.
    Error(String),
    /// parent → init (or exec's child): the container process state for the seccomp agent
    /// (SCMP_ACT_NOTIFY), sent before `Go`.
    AgentState(String),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Go => b"G".to_vec(),
            Message::RunCreateRuntimeHooks => b"H".to_vec(),
            Message::HooksDone => b"D".to_vec(),
            Message::Ready => b"R".to_vec(),
            Message::Error(msg) => [b"E".as_slice(), msg.as_bytes()].concat(),
            Message::AgentState(state) => [b"A".as_slice(), state.as_bytes()].concat(),
        }
    }

    fn decode(buf: &[u8]) -> Result<Message> {
        Ok(match buf.first() {
            Some(b'G') => Message::Go,
            Some(b'H') => Message::RunCreateRuntimeHooks,
            Some(b'D') => Message::HooksDone,
            Some(b'R') => Message::Ready,
            Some(b'E') => Message::Error(String::from_utf8_lossy(&buf[1..]).into_owned()),
            Some(b'A') => {
                Message::AgentState(String::from_utf8(buf[1..].to_vec()).context("agent state is not UTF-8")?)
            }
            _ => bail!("unexpected sync message {buf:?}"),
        })
    }
}

/// The largest message: what `recv` reads in one datagram.
const MAX_MESSAGE: usize = 65536;

/// One end of the socketpair.
pub struct SyncSocket(pub OwnedFd);

/// Creates the pair `(parent end, init end)`, both close-on-exec.
pub fn pair() -> Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .context("socketpair for init sync")?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    /// Sends one message.
    pub fn send(&self, msg: &Message) -> Result<()> {
        let mut buf = msg.encode();
        if buf.len() > MAX_MESSAGE {
            // An error's text is cut (it is read lossily); anything else must arrive whole.
            if !matches!(msg, Message::Error(_)) {
                bail!("sync message of {} bytes is larger than the {MAX_MESSAGE} the other side reads", buf.len());
            }
            buf.truncate(MAX_MESSAGE);
        }
        nix::unistd::write(&self.0, &buf).context("writing to sync socket")?;
        Ok(())
    }

    /// Receives one message; `None` at EOF (the other side is gone).
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match nix::unistd::read(&self.0, &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Message::decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("reading from sync socket"),
            }
        }
    }

    /// Receives the container process state for the seccomp agent.
    pub fn expect_agent_state(&self) -> Result<String> {
        match self.recv()? {
            Some(Message::AgentState(state)) => Ok(state),
            Some(Message::Error(e)) => bail!("{e}"),
            Some(other) => bail!("sync: expected the seccomp agent's state, got {other:?}"),
            None => bail!("sync: the other side exited before the seccomp agent's state"),
        }
    }

    /// Receives and checks for one expected message; an `Error` from the other side or EOF
    /// becomes an error here.
    pub fn expect(&self, want: Message) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Message::Error(e)) => bail!("{e}"),
            Some(other) => bail!("sync: expected {want:?}, got {other:?}"),
            None => bail!("sync: the other side exited before {want:?}"),
        }
    }
}
