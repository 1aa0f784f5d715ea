//! The idle sweep. One gateway replica at a time (the registry's leader lock) looks at every
//! running session:
//!
//! - past its `maxLifetime`: snapshot and stop, whoever is connected (warned a minute before);
//! - idle past its `idleTimeout` with nobody connected: snapshot and stop. If people are
//!   connected but idle they are warned a minute before; they keep it alive by doing anything.
//!
//! "Snapshot and stop" is [`Sessions::hibernate`]: the snapshot is committed to the database
//! before the session is told to stop, so a database outage leaves the session running and the
//! next sweep tries again. Unknown connection counts (Redis down) mean no idle stop at all.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use huddle_protocol::messages::NoticeKind;

use crate::runtime::StopReason;
use crate::sessions::Sessions;
use crate::store::{Session, SessionId, SessionState, Timestamp};

/// What one sweep did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub hibernated: Vec<SessionId>,
    pub warned: Vec<SessionId>,
    pub failed: Vec<SessionId>,
}

pub struct Sweeper {
    sessions: Sessions,
    warning: Duration,
    warned: Mutex<HashSet<(SessionId, &'static str)>>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Sweeper {
    pub fn new(sessions: Sessions, warning: Duration) -> Self {
        Self {
            sessions,
            warning,
            warned: Mutex::default(),
        }
    }

    /// Sweeps every `interval`, forever.
    pub async fn run(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = self.sweep().await;
            if report != SweepReport::default() {
                tracing::info!(?report, "idle sweep");
            }
        }
    }

    /// One sweep, if this replica leads.
    pub async fn sweep(&self) -> SweepReport {
        let mut report = SweepReport::default();
        match self.sessions.registry.try_lead().await {
            Ok(true) => {}
            Ok(false) => return report,
            Err(error) => {
                tracing::warn!(%error, "cannot tell who sweeps (registry unreachable); not sweeping");
                return report;
            }
        }
        // Counts written by this replica since the last flush must be visible to itself.
        self.sessions
            .activity
            .flush(&self.sessions.registry, &self.sessions.store)
            .await;
        let sessions = match self.sessions.store.list_sessions().await {
            Ok(sessions) => sessions,
            Err(error) => {
                tracing::warn!(%error, "cannot list sessions; not sweeping");
                return report;
            }
        };
        for session in sessions {
            if session.state == SessionState::Running {
                self.consider(&session, &mut report).await;
            }
        }
        report
    }

    async fn consider(&self, session: &Session, report: &mut SweepReport) {
        let id = &session.id;
        let now = Timestamp::now().as_unix_millis();
        if let Some(lifetime) = session.max_lifetime {
            let end = session
                .created_at
                .as_unix_millis()
                .saturating_add(millis(lifetime));
            if now >= end {
                self.stop(id, StopReason::MaxLifetime, report).await;
                return;
            }
            if now >= end - millis(self.warning) {
                self.warn_once(
                    id,
                    NoticeKind::MaxLifetime,
                    "This session reaches its time limit and will be saved and stopped.",
                    end,
                    report,
                )
                .await;
            }
        }
        let registry_activity = match self.sessions.registry.last_activity(id).await {
            Ok(activity) => activity.map(Timestamp::as_unix_millis),
            Err(error) => {
                tracing::debug!(session = %id, %error, "registry activity unknown; using the database's");
                None
            }
        };
        let last = session
            .last_activity_at
            .as_unix_millis()
            .max(session.created_at.as_unix_millis())
            .max(registry_activity.unwrap_or(i64::MIN));
        let idle_end = last.saturating_add(millis(session.idle_timeout));
        let connections = match self.sessions.registry.connections(id).await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(session = %id, %error, "connection count unknown; not stopping it");
                return;
            }
        };
        if now >= idle_end && connections == 0 {
            self.stop(id, StopReason::Idle, report).await;
        } else if now >= idle_end - millis(self.warning) && connections > 0 {
            self.warn_once(id, NoticeKind::IdleStop, "Nobody has typed for a while: this session will be saved and stopped unless someone does something.", idle_end, report)
                .await;
        } else if let Ok(mut warned) = self.warned.lock() {
            // Active again: a later idle period gets its own warning.
            warned.remove(&(id.clone(), "idle"));
        }
    }

    async fn warn_once(
        &self,
        id: &SessionId,
        kind: NoticeKind,
        message: &str,
        at_millis: i64,
        report: &mut SweepReport,
    ) {
        let tag = if kind == NoticeKind::MaxLifetime {
            "lifetime"
        } else {
            "idle"
        };
        let first = self
            .warned
            .lock()
            .map(|mut warned| warned.insert((id.clone(), tag)))
            .unwrap_or(false);
        if !first {
            return;
        }
        let at = u64::try_from(at_millis / 1000).unwrap_or(0);
        match self.sessions.notify(id, kind, message, at).await {
            Ok(()) => report.warned.push(id.clone()),
            Err(error) => tracing::warn!(session = %id, %error, "stop warning not delivered"),
        }
    }

    async fn stop(&self, id: &SessionId, reason: StopReason, report: &mut SweepReport) {
        match self.sessions.hibernate(id, reason, "gc").await {
            Ok(meta) => {
                tracing::info!(session = %id, reason = reason.as_str(), snapshot = meta.id, bytes = meta.size_bytes, "hibernated");
                if let Ok(mut warned) = self.warned.lock() {
                    warned.retain(|(warned_id, _)| warned_id != id);
                }
                report.hibernated.push(id.clone());
            }
            Err(error) => {
                tracing::warn!(session = %id, reason = reason.as_str(), %error, "not hibernated; it keeps running");
                report.failed.push(id.clone());
            }
        }
    }
}
