//! The daemon's event bus: every change publishes an envelope; `Events.Subscribe` streams them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::system::Envelope;
use tokio::sync::broadcast;

/// The namespace berthd's events carry (one namespace today, as `ctr`'s default).
pub const NAMESPACE: &str = "default";

/// How many past envelopes berthd keeps for `events --since` (in memory: a restart forgets them).
pub const HISTORY: usize = 1000;

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Envelope>,
    /// The last [`HISTORY`] envelopes, oldest first. Publishing holds this lock while it sends,
    /// so a replaying subscriber sees each envelope exactly once.
    history: Arc<Mutex<VecDeque<Envelope>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(256).0, history: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY))) }
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
        let mut history = self.lock_history();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(envelope.clone());
        let _ = self.tx.send(envelope);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }

    /// The kept envelopes published at or after `since` (Unix nanoseconds), and a receiver of
    /// every envelope published after them.
    pub fn subscribe_since(&self, since: i64) -> (Vec<Envelope>, broadcast::Receiver<Envelope>) {
        let history = self.lock_history();
        let past = history.iter().filter(|e| e.timestamp >= since).cloned().collect();
        (past, self.tx.subscribe())
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, VecDeque<Envelope>> {
        // The queue stays consistent even if a holder panicked.
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn now_nanos() -> i64 {
    nanos(SystemTime::now())
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_since_a_time_get_the_kept_past_then_what_follows() {
        let events = Events::default();
        for n in 0..HISTORY + 5 {
            events.publish("/test", serde_json::json!({ "n": n }));
        }
        let (all, _) = events.subscribe_since(0);
        assert_eq!(all.len(), HISTORY, "only the last {HISTORY} are kept");
        assert_eq!(all[0].event, r#"{"n":5}"#);
        let cut = all[HISTORY - 2].timestamp;
        let (past, mut rx) = events.subscribe_since(cut);
        assert!(past.iter().all(|e| e.timestamp >= cut) && !past.is_empty());
        events.publish("/test", serde_json::json!({ "n": "live" }));
        assert_eq!(rx.try_recv().expect("the live envelope").event, r#"{"n":"live"}"#);
    }
}
