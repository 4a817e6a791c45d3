//! Relays a container's stdio between the user and an Attach or Exec stream: output to our
//! stdout/stderr, our stdin to the process (with `-i`), window sizes (with `-t`), until the
//! process exits or the user detaches.

use std::io::{self, IsTerminal, Read, Write};

use anyhow::{bail, Result};
use berth_proto::tasks::{AttachInput, AttachOutput, ExecInput, ExecOutput, KillTaskRequest};
use berth_proto::tasks_ttrpc::TasksClient;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use ttrpc::proto::Codec;
use ttrpc::r#async::{CSReceiver, CSSender};

use crate::daemon::ctx;
use crate::terminal::{self, DetachKeys, RawMode};

/// docker's stream numbers.
const STDERR: u32 = 2;

/// What one message from berthd means to the relay.
pub enum Event {
    /// Bytes of the process's stdout (1) or stderr (2).
    Output { stream: u32, data: Vec<u8> },
    /// The process exited with this status; nothing follows.
    Exited(i32),
    /// Attached or started: nothing to show.
    Ready,
}

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// The user typed the detach keys; the process goes on.
    Detached,
}

/// The messages of one stdio stream kind (Attach or Exec).
pub trait StdioStream {
    type Input: Codec + Send + Sync;
    type Output: Codec;
    fn stdin_data(data: Vec<u8>) -> Self::Input;
    fn close_stdin() -> Self::Input;
    fn resize(width: u32, height: u32) -> Self::Input;
    fn event(output: Self::Output) -> Event;
}

/// Tasks.Attach's messages.
pub struct Attach;

impl StdioStream for Attach {
    type Input = AttachInput;
    type Output = AttachOutput;
    fn stdin_data(data: Vec<u8>) -> AttachInput {
        AttachInput { data, ..Default::default() }
    }
    fn close_stdin() -> AttachInput {
        AttachInput { close_stdin: true, ..Default::default() }
    }
    fn resize(width: u32, height: u32) -> AttachInput {
        AttachInput { width, height, ..Default::default() }
    }
    fn event(output: AttachOutput) -> Event {
        if output.exited {
            Event::Exited(output.exit_code)
        } else if !output.data.is_empty() {
            Event::Output { stream: output.stream, data: output.data }
        } else {
            Event::Ready
        }
    }
}

/// Tasks.Exec's messages.
pub struct Exec;

impl StdioStream for Exec {
    type Input = ExecInput;
    type Output = ExecOutput;
    fn stdin_data(data: Vec<u8>) -> ExecInput {
        ExecInput { data, ..Default::default() }
    }
    fn close_stdin() -> ExecInput {
        ExecInput { close_stdin: true, ..Default::default() }
    }
    fn resize(width: u32, height: u32) -> ExecInput {
        ExecInput { width, height, ..Default::default() }
    }
    fn event(output: ExecOutput) -> Event {
        if output.exited {
            Event::Exited(output.exit_code)
        } else if !output.data.is_empty() {
            Event::Output { stream: output.stream, data: output.data }
        } else {
            Event::Ready
        }
    }
}

/// What the user's side of the relay carries.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Forward our stdin (`-i`).
    pub stdin: bool,
    /// The process has a terminal (`-t`): raw mode, window sizes, detach keys.
    pub tty: bool,
    /// The keys that detach (`--detach-keys`) when the process has a terminal.
    pub detach_keys: DetachKeys,
}

impl Relay {
    /// Refuses `-it` without a terminal to read from, as docker does.
    pub fn check(&self) -> Result<()> {
        if self.stdin && self.tty && !io::stdin().is_terminal() {
            bail!("the input device is not a TTY");
        }
        Ok(())
    }

    /// Raw mode for the relay's lifetime when the user types into a terminal process.
    pub fn raw_mode(&self) -> Result<Option<RawMode>> {
        if self.stdin && self.tty && io::stdin().is_terminal() {
            RawMode::enable().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// docker's `--sig-proxy`: without a terminal, the signals that would end this client go to
/// the container's process instead (with a terminal, ctrl-c is a key it reads).
pub struct SignalProxy {
    pub tasks: TasksClient,
    pub container: String,
}

/// The signals a user sends a foreground client: SIGINT, SIGTERM, SIGHUP, SIGQUIT.
struct ProxiedSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    quit: Signal,
}

impl ProxiedSignals {
    fn listen() -> io::Result<ProxiedSignals> {
        Ok(ProxiedSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The number of the next signal received.
    async fn next(&mut self) -> u32 {
        tokio::select! {
            _ = self.interrupt.recv() => SignalKind::interrupt().as_raw_value() as u32,
            _ = self.terminate.recv() => SignalKind::terminate().as_raw_value() as u32,
            _ = self.hangup.recv() => SignalKind::hangup().as_raw_value() as u32,
            _ = self.quit.recv() => SignalKind::quit().as_raw_value() as u32,
        }
    }
}

/// Relays until the process exits (its status) or the user detaches. The caller has sent the
/// stream's first message and holds raw mode if any.
pub async fn relay<S: StdioStream>(
    sender: CSSender<S::Input>,
    mut receiver: CSReceiver<S::Output>,
    relay: Relay,
    proxy: Option<SignalProxy>,
) -> Result<Ending>
where
    <S::Input as Codec>::E: std::fmt::Display,
    <S::Output as Codec>::E: std::fmt::Display,
{
    let mut stdin = relay.stdin.then(spawn_stdin_reader);
    let mut window_changes = if relay.tty { Some(signal(SignalKind::window_change())?) } else { None };
    let mut detach_keys = relay.detach_keys.clone();
    let mut proxied = match &proxy {
        Some(_) => Some(ProxiedSignals::listen()?),
        None => None,
    };
    loop {
        tokio::select! {
            output = receiver.recv() => match output {
                Ok(output) => match S::event(output) {
                    Event::Output { stream, data } => write_output(stream, &data, relay.tty)?,
                    Event::Exited(code) => return Ok(Ending::Exited(code)),
                    // A terminal's size again once attached, in case the first message's was not used.
                    Event::Ready if relay.tty => send_window_size::<S>(&sender).await?,
                    Event::Ready => {}
                },
                Err(ttrpc::Error::Eof | ttrpc::Error::RemoteClosed) => {
                    bail!("berthd ended the stream before the container's process exited")
                }
                Err(err) => return Err(err.into()),
            },
            chunk = next_chunk(&mut stdin) => match chunk {
                Some(bytes) => {
                    let (bytes, detached) = if relay.tty { detach_keys.scan(&bytes) } else { (bytes, false) };
                    if !bytes.is_empty() {
                        sender.send(&S::stdin_data(bytes)).await?;
                    }
                    if detached {
                        // Closing our side detaches; the process goes on.
                        let _ = sender.close_send().await;
                        return Ok(Ending::Detached);
                    }
                }
                None => {
                    stdin = None;
                    sender.send(&S::close_stdin()).await?;
                }
            },
            Some(()) = next_signal(&mut window_changes) => send_window_size::<S>(&sender).await?,
            Some(number) = next_proxied(&mut proxied) => {
                if let Some(proxy) = &proxy {
                    let request = KillTaskRequest { id: proxy.container.clone(), signal: number, ..Default::default() };
                    // The container may have exited meanwhile; its exit arrives on the stream.
                    let _ = proxy.tasks.kill(ctx(), &request).await;
                }
            }
        }
    }
}

async fn send_window_size<S: StdioStream>(sender: &CSSender<S::Input>) -> Result<()>
where
    <S::Input as Codec>::E: std::fmt::Display,
{
    if let Some((width, height)) = terminal::window_size() {
        sender.send(&S::resize(width, height)).await?;
    }
    Ok(())
}

/// The next chunk of stdin; `None` at its end; pending forever once stdin is not relayed.
async fn next_chunk(stdin: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match stdin {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_proxied(signals: &mut Option<ProxiedSignals>) -> Option<u32> {
    match signals {
        Some(signals) => Some(signals.next().await),
        None => std::future::pending().await,
    }
}

async fn next_signal(signals: &mut Option<Signal>) -> Option<()> {
    match signals {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads stdin on its own thread (a terminal's reads block) and hands the chunks over; the
/// channel closes at end of input.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buffer = vec![0; 32 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    });
    receiver
}

/// The process's bytes to our stdout, or stderr for its stderr (a terminal has only stdout).
fn write_output(stream: u32, data: &[u8], tty: bool) -> io::Result<()> {
    if stream == STDERR && !tty {
        let mut err = io::stderr().lock();
        err.write_all(data)?;
        err.flush()
    } else {
        let mut out = io::stdout().lock();
        out.write_all(data)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach_event(output: AttachOutput) -> Event {
        Attach::event(output)
    }

    #[test]
    fn attach_outputs_are_ready_then_data_then_exit() {
        assert!(matches!(attach_event(AttachOutput { attached: true, ..Default::default() }), Event::Ready));
        let data = AttachOutput { data: b"hi\n".to_vec(), stream: 2, ..Default::default() };
        assert!(matches!(attach_event(data), Event::Output { stream: 2, data } if data == b"hi\n"));
        let exited = AttachOutput { exited: true, exit_code: 3, ..Default::default() };
        assert!(matches!(attach_event(exited), Event::Exited(3)));
    }

    #[test]
    fn exec_outputs_are_started_then_data_then_exit() {
        let started = ExecOutput { started: true, exec_id: "e1".into(), ..Default::default() };
        assert!(matches!(Exec::event(started), Event::Ready));
        let data = ExecOutput { data: b"x".to_vec(), stream: 1, ..Default::default() };
        assert!(matches!(Exec::event(data), Event::Output { stream: 1, .. }));
        // An exit that carries the last bytes too still ends the relay with its code.
        let exited = ExecOutput { exited: true, exit_code: 127, ..Default::default() };
        assert!(matches!(Exec::event(exited), Event::Exited(127)));
    }

    #[test]
    fn inputs_carry_stdin_its_end_and_sizes() {
        assert_eq!(Attach::stdin_data(b"ls\n".to_vec()).data, b"ls\n");
        assert!(Attach::close_stdin().close_stdin);
        let resize = Exec::resize(80, 24);
        assert_eq!((resize.width, resize.height), (80, 24));
        assert!(resize.data.is_empty() && !resize.close_stdin);
    }
}
