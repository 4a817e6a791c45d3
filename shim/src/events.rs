//! Task events to containerd: `Forward` to the ttrpc events service at `TTRPC_ADDRESS`, or, when
//! containerd gave no ttrpc address, `<publish-binary> publish` with the event on stdin. Events
//! go through a queue to one thread, so no caller blocks on containerd (which may be down and
//! restarting while the shim runs). The connection is made per batch and dropped when the queue
//! is empty: the sync ttrpc client polls every 10 ms while connected.

use crate::reaper::Reaper;
use containerd_shim_protos::api::{Envelope, ForwardRequest};
use containerd_shim_protos::events::task;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::EventsClient;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long an event is retried before it is dropped: a containerd restart (the case this
/// covers) takes seconds; the runc shim keeps trying about as long.
const RETRY_WINDOW: Duration = Duration::from_secs(15);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

enum Msg {
    Event(Envelope),
    Flush(Sender<()>),
}

/// Where events go.
#[derive(Clone)]
pub enum Sink {
    /// containerd's ttrpc address.
    Ttrpc(String),
    /// `containerd --address A publish --topic T --namespace NS`.
    Binary { binary: String, address: String },
}

/// The event queue; see the module doc.
pub struct Publisher {
    namespace: String,
    tx: Mutex<Sender<Msg>>,
}

/// A message's protobuf full name, as containerd's typeurl writes it in an `Any` (the bare name,
/// no `type.googleapis.com/`). Spelled out rather than read from the reflection descriptors,
/// which would build every descriptor of the file on the heap of a process meant to stay small.
pub trait TypeName {
    /// `package.Message`.
    const NAME: &'static str;
}

macro_rules! type_names {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl TypeName for $ty { const NAME: &'static str = $name; })*
    };
}

type_names! {
    task::TaskCreate => "containerd.events.TaskCreate",
    task::TaskStart => "containerd.events.TaskStart",
    task::TaskExit => "containerd.events.TaskExit",
    task::TaskDelete => "containerd.events.TaskDelete",
    task::TaskExecAdded => "containerd.events.TaskExecAdded",
    task::TaskExecStarted => "containerd.events.TaskExecStarted",
    task::TaskPaused => "containerd.events.TaskPaused",
    task::TaskResumed => "containerd.events.TaskResumed",
    task::TaskOOM => "containerd.events.TaskOOM",
    containerd_shim_protos::shim::oci::ProcessDetails => "containerd.runc.v1.ProcessDetails",
    containerd_shim_protos::cgroups::metrics::Metrics => "io.containerd.cgroups.v1.Metrics",
}

/// A protobuf `Any` the way containerd's typeurl names gogo messages.
pub fn to_any<M: Message + TypeName>(msg: &M) -> Any {
    let mut any = Any::new();
    any.type_url = <M as TypeName>::NAME.to_string();
    any.value = msg.write_to_bytes().unwrap_or_default();
    any
}

/// A protobuf timestamp.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

impl Publisher {
    /// Starts the publishing thread.
    pub fn start(namespace: &str, sink: Sink, reaper: Option<Arc<Reaper>>) -> std::io::Result<Arc<Publisher>> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || run(rx, sink, reaper))?;
        Ok(Arc::new(Publisher { namespace: namespace.to_string(), tx: Mutex::new(tx) }))
    }

    /// Queues `event` under `topic` (`/tasks/exit`, ...).
    pub fn publish<M: Message + TypeName>(&self, topic: &str, event: &M) {
        let mut env = Envelope::new();
        env.timestamp = MessageField::some(timestamp(SystemTime::now()));
        env.namespace = self.namespace.clone();
        env.topic = topic.to_string();
        env.event = MessageField::some(to_any(event));
        crate::log::debug(&format!("publishing {topic}"));
        let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(Msg::Event(env));
    }

    /// Waits (at most `timeout`) until everything queued so far was sent or dropped.
    pub fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = channel();
        if self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }
}

fn run(rx: Receiver<Msg>, sink: Sink, reaper: Option<Arc<Reaper>>) {
    while let Ok(first) = rx.recv() {
        // One connection per batch: everything queued now, then disconnect (see the module doc).
        let mut client: Option<EventsClient> = None;
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Flush(done) => {
                    let _ = done.send(());
                }
                Msg::Event(env) => deliver(&sink, &mut client, &env, reaper.as_deref()),
            }
            next = rx.try_recv().ok();
        }
    }
}

fn deliver(sink: &Sink, client: &mut Option<EventsClient>, env: &Envelope, reaper: Option<&Reaper>) {
    let deadline = std::time::Instant::now() + RETRY_WINDOW;
    let mut delay = Duration::from_millis(50);
    loop {
        match send(sink, client, env, reaper) {
            Ok(()) => return,
            Err(e) => {
                *client = None;
                if std::time::Instant::now() + delay > deadline {
                    crate::log::error(&format!("dropping event {} after {RETRY_WINDOW:?}: {e:#}", env.topic));
                    return;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn send(sink: &Sink, client: &mut Option<EventsClient>, env: &Envelope, reaper: Option<&Reaper>) -> anyhow::Result<()> {
    use anyhow::Context;
    match sink {
        Sink::Ttrpc(address) => {
            if client.is_none() {
                let addr = if address.contains("://") { address.clone() } else { format!("unix://{address}") };
                let c = ttrpc::Client::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
                *client = Some(EventsClient::new(c));
            }
            let c = client.as_ref().context("no events client")?;
            let mut req = ForwardRequest::new();
            req.envelope = MessageField::some(env.clone());
            c.forward(ttrpc::context::with_duration(RPC_TIMEOUT), &req).context("forwarding the event")?;
            Ok(())
        }
        Sink::Binary { binary, address } => {
            use std::io::Write;
            use std::process::{Command, Stdio};
            let any = env.event.as_ref().context("envelope without event")?;
            let data = any.write_to_bytes().context("encoding the event")?;
            let since = std::time::Instant::now();
            let mut cmd = Command::new(binary);
            cmd.args(["--address", address, "publish", "--topic", &env.topic, "--namespace", &env.namespace])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let spawned = {
                let _spawning = crate::reaper::spawn_guard();
                cmd.spawn()
            };
            let mut child = spawned.with_context(|| format!("running {binary} publish"))?;
            if let Some(r) = reaper {
                r.spawned();
            }
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(&data);
            }
            let status = match reaper {
                Some(r) => r.wait_for(child.id() as i32, since).status,
                None => child.wait().map(|s| s.code().unwrap_or(1) as u32).context("waiting for publish")?,
            };
            anyhow::ensure!(status == 0, "{binary} publish exited with {status}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::MessageFull;

    fn check<M: MessageFull + TypeName>() {
        assert_eq!(<M as TypeName>::NAME, M::descriptor().full_name());
    }

    #[test]
    fn type_names_match_the_protobuf_descriptors() {
        check::<task::TaskCreate>();
        check::<task::TaskStart>();
        check::<task::TaskExit>();
        check::<task::TaskDelete>();
        check::<task::TaskExecAdded>();
        check::<task::TaskExecStarted>();
        check::<task::TaskPaused>();
        check::<task::TaskResumed>();
        check::<task::TaskOOM>();
        check::<containerd_shim_protos::shim::oci::ProcessDetails>();
        check::<containerd_shim_protos::cgroups::metrics::Metrics>();
    }

    /// Without TTRPC_ADDRESS the shim publishes through `<publish-binary> publish`, as containerd's
    /// shims do; the real `containerd publish` delivers the event to a real containerd, whose
    /// `ctr events` shows it.
    #[test]
    fn publish_binary_delivers_events_to_containerd() {
        use berth_integration::engines::containerd::Containerd;
        use berth_integration::engines::process::Background;
        berth_integration::require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let containerd = Containerd::start(&dir.path().join("containerd"));
        let seen = dir.path().join("events.txt");
        let ctr = containerd.ctr("berthtest");
        let mut events = std::process::Command::new("sh");
        events
            .arg("-c")
            .arg(format!("exec \"$@\" events > '{}'", seen.display()))
            .arg("sh")
            .arg(ctr.get_program())
            .args(ctr.get_args());
        let _events = Background::spawn(&mut events);
        let sink =
            Sink::Binary { binary: "/usr/bin/containerd".into(), address: containerd.socket().display().to_string() };
        let publisher = Publisher::start("berthtest", sink, None).expect("starting the publisher");
        // `ctr events` subscribes asynchronously: publish until it shows one.
        for attempt in 0..20 {
            let mut oom = task::TaskOOM::new();
            oom.container_id = format!("publish-binary-{attempt}");
            publisher.publish("/tasks/oom", &oom);
            publisher.flush(Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(500));
            let text = std::fs::read_to_string(&seen).unwrap_or_default();
            if text.lines().any(|l| l.contains("/tasks/oom") && l.contains("publish-binary-")) {
                assert!(text.contains("berthtest"), "event in the wrong namespace: {text}");
                return;
            }
        }
        panic!("containerd never showed the event: {}", std::fs::read_to_string(&seen).unwrap_or_default());
    }
}
