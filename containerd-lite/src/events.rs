//! The daemon's event bus: every change publishes an envelope; `Events.Subscribe` streams them.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::system::Envelope;
use tokio::sync::broadcast;

/// The namespace berthd's events carry (one namespace today, as `ctr`'s default).
pub const NAMESPACE: &str = "default";

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Envelope>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(256).0 }
    }
}

impl Events {
    /// Publishes `event` (a JSON object) under `topic`, e.g. "/images/create". Nobody listening
    /// is fine.
    pub fn publish(&self, topic: &str, event: serde_json::Value) {
        let envelope = Envelope {
            timestamp: now_nanos(),
            namespace: NAMESPACE.into(),
            topic: topic.into(),
            event: event.to_string(),
            ..Default::default()
        };
        tracing::debug!(topic, event = %envelope.event, "event");
        let _ = self.tx.send(envelope);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}

pub fn now_nanos() -> i64 {
    nanos(SystemTime::now())
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}
