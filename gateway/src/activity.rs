//! Activity and open connections seen through this replica's proxy.
//!
//! The proxy calls [`Activity::touch`] for every participant message and request (cheap: one
//! map insert) and holds a [`ConnectionGuard`] per open participant WebSocket. A flusher writes
//! both out at most once per flush interval: activity to the registry and the database (so the
//! idle sweep still sees it when Redis is down), connection counts to the registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::registry::Registry;
use crate::store::{SessionId, Store, Timestamp};

#[derive(Default)]
struct State {
    /// Latest activity per session not yet written out.
    pending: HashMap<SessionId, Timestamp>,
    /// Open participant connections per session on this replica.
    connections: HashMap<SessionId, u64>,
}

/// This replica's activity and connection counts. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Activity {
    state: Arc<Mutex<State>>,
}

/// One open participant connection; dropping it closes the count.
pub struct ConnectionGuard {
    activity: Activity,
    id: SessionId,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Ok(mut state) = self.activity.state.lock()
            && let Some(count) = state.connections.get_mut(&self.id)
        {
            *count = count.saturating_sub(1);
        }
    }
}

impl Activity {
    /// Records that a participant of `id` did something now.
    pub fn touch(&self, id: &SessionId) {
        if let Ok(mut state) = self.state.lock() {
            state.pending.insert(id.clone(), Timestamp::now());
        }
    }

    /// Counts an open participant connection until the guard is dropped.
    pub fn connect(&self, id: &SessionId) -> ConnectionGuard {
        if let Ok(mut state) = self.state.lock() {
            *state.connections.entry(id.clone()).or_insert(0) += 1;
            state.pending.insert(id.clone(), Timestamp::now());
        }
        ConnectionGuard {
            activity: self.clone(),
            id: id.clone(),
        }
    }

    /// Open connections to `id` on this replica.
    pub fn local_connections(&self, id: &SessionId) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.connections.get(id).copied())
            .unwrap_or(0)
    }

    /// Writes pending activity and the connection counts out once.
    pub async fn flush(&self, registry: &Registry, store: &Store) {
        let (pending, connections) = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let pending = std::mem::take(&mut state.pending);
            let connections = state.connections.clone();
            // Sessions with nobody left are reported once as zero, then forgotten.
            state.connections.retain(|_, count| *count > 0);
            (pending, connections)
        };
        for (id, at) in pending {
            if let Err(error) = registry.record_activity(&id, at).await {
                tracing::debug!(session = %id, %error, "activity not written to the registry");
            }
            match store.touch_activity(&id, at).await {
                Ok(_) | Err(crate::store::StoreError::SessionNotFound(_)) => {}
                Err(error) => tracing::warn!(session = %id, %error, "activity not stored"),
            }
        }
        if let Err(error) = registry.report_connections(&connections).await {
            tracing::debug!(%error, "connection counts not written to the registry");
        }
    }

    /// Flushes every `interval`, forever.
    pub async fn run_flusher(self, registry: Registry, store: Store, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush(&registry, &store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::new_session_id;

    #[test]
    fn guards_count_connections() {
        let activity = Activity::default();
        let id = new_session_id().unwrap();
        let first = activity.connect(&id);
        let second = activity.connect(&id);
        assert_eq!(activity.local_connections(&id), 2);
        drop(first);
        assert_eq!(activity.local_connections(&id), 1);
        drop(second);
        assert_eq!(activity.local_connections(&id), 0);
    }
}
