//! What the gateway does to sessions, in one place for the API, the proxy and the idle sweep:
//! look them up (through the caches), create, wake, hibernate, delete, change a port's
//! visibility. Every change is announced so all replicas drop what they cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_protocol::Role;
use huddle_protocol::messages::NoticeKind;

use crate::activity::Activity;
use crate::auth::Keys;
use crate::registry::Registry;
use crate::runtime::{Phase, Runtime, RuntimeError, SessionRequest, SessionView, StopReason};
use crate::store::{
    AuditEvent, NewSession, SessionId, SessionPort, SnapshotMeta, Store, StoreError, Timestamp,
    Visibility,
};

/// Largest snapshot the gateway takes from an agent.
pub const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("the session is not running, so it cannot be snapshotted")]
    NotRunning,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("talking to the agent: {0}")]
    Agent(String),
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// The gateway's sessions. Cloning is cheap.
#[derive(Clone)]
pub struct Sessions {
    pub store: Store,
    pub registry: Registry,
    pub runtime: Arc<dyn Runtime>,
    pub keys: Keys,
    pub activity: Activity,
    http: reqwest::Client,
    views: Arc<Mutex<HashMap<SessionId, (SessionView, Instant)>>>,
    view_ttl: Duration,
    /// The `namespace` recorded with new sessions (`local` on one machine).
    namespace: String,
}

impl Sessions {
    pub fn new(
        store: Store,
        registry: Registry,
        runtime: Arc<dyn Runtime>,
        keys: Keys,
        namespace: String,
    ) -> Self {
        // Without a shared registry every change is made here, and announced here, so cached
        // views only need a long safety net; with Redis, a change announced while this replica's
        // subscription was reconnecting is picked up within seconds.
        let view_ttl = if registry.is_shared() {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(30)
        };
        Self {
            store,
            registry,
            runtime,
            keys,
            activity: Activity::default(),
            http: reqwest::Client::new(),
            views: Arc::default(),
            view_ttl,
            namespace,
        }
    }

    /// The session's view, from this replica's cache, the shared registry or the runtime.
    /// Only ready views are cached: a starting or sleeping session is asked about afresh.
    pub async fn view(&self, id: &SessionId) -> Result<Option<SessionView>> {
        if let Some(view) = self.cached(id) {
            return Ok(Some(view));
        }
        match self.registry.cached_view(id).await {
            Ok(Some(view)) => {
                self.remember(&view);
                return Ok(Some(view));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(session = %id, %error, "registry lookup failed; asking the runtime")
            }
        }
        self.fresh_view(id).await
    }

    /// The session's view straight from the runtime (after a stale address failed).
    pub async fn fresh_view(&self, id: &SessionId) -> Result<Option<SessionView>> {
        self.forget(id);
        let view = self.runtime.view(id).await?;
        if let Some(view) = &view
            && view.phase == Phase::Ready
        {
            self.remember(view);
            if let Err(error) = self.registry.cache_view(view).await {
                tracing::debug!(session = %id, %error, "view not cached in the registry");
            }
        }
        Ok(view)
    }

    fn cached(&self, id: &SessionId) -> Option<SessionView> {
        let views = self.views.lock().ok()?;
        let (view, at) = views.get(id)?;
        (at.elapsed() < self.view_ttl).then(|| view.clone())
    }

    fn remember(&self, view: &SessionView) {
        if view.phase != Phase::Ready {
            return;
        }
        if let Ok(mut views) = self.views.lock() {
            views.insert(view.id.clone(), (view.clone(), Instant::now()));
        }
    }

    /// Drops this replica's cached view of `id`.
    pub fn forget(&self, id: &SessionId) {
        if let Ok(mut views) = self.views.lock() {
            views.remove(id);
        }
    }

    /// Drops every cached view (after missing change announcements).
    pub fn forget_all(&self) {
        if let Ok(mut views) = self.views.lock() {
            views.clear();
        }
    }

    /// Tells every replica that `id` changed.
    pub async fn announce(&self, id: &SessionId) {
        self.forget(id);
        if let Err(error) = self.registry.announce_change(id).await {
            tracing::warn!(session = %id, %error, "change not announced to other replicas");
        }
    }

    /// Creates a session: its row, its ports, then its pod or agent.
    pub async fn create(&self, request: SessionRequest, actor: &str) -> Result<()> {
        self.store
            .create_session(NewSession {
                id: request.id.clone(),
                namespace: self.namespace.clone(),
                owner_name: request.owner_name.clone(),
                created_at: Timestamp::now(),
                idle_timeout: request.idle_timeout,
                max_lifetime: request.max_lifetime,
            })
            .await?;
        self.store.set_ports(&request.id, &request.ports).await?;
        if let Err(error) = self.runtime.create(&request).await {
            // Without a pod or agent the row is an orphan: remove it so nothing points to it.
            let _ = self.store.delete_session(&request.id, actor).await;
            return Err(error.into());
        }
        self.audit(
            &request.id,
            actor,
            "session.create",
            serde_json::json!({
                "ports": request.ports,
            }),
        )
        .await;
        Ok(())
    }

    /// Asks for a sleeping session to run again.
    pub async fn wake(&self, id: &SessionId, actor: &str) -> Result<()> {
        self.runtime.wake(id).await.map_err(|error| match error {
            RuntimeError::NotFound => SessionError::NotFound,
            other => other.into(),
        })?;
        match self
            .store
            .set_state(id, crate::store::SessionState::Running)
            .await
        {
            Ok(()) | Err(StoreError::SessionNotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        // Waking counts as activity, or the sweep could put it straight back to sleep.
        self.activity.touch(id);
        let _ = self.registry.record_activity(id, Timestamp::now()).await;
        let _ = self.store.touch_activity(id, Timestamp::now()).await;
        self.audit(id, actor, "session.wake", serde_json::json!({}))
            .await;
        self.announce(id).await;
        Ok(())
    }

    /// Snapshots a running session into the database and then puts it to sleep. If the
    /// snapshot cannot be stored the session keeps running: nothing is removed before the
    /// snapshot is durable.
    pub async fn hibernate(
        &self,
        id: &SessionId,
        reason: StopReason,
        actor: &str,
    ) -> Result<SnapshotMeta> {
        let view = self.fresh_view(id).await?.ok_or(SessionError::NotFound)?;
        let agent = match (&view.phase, view.agent) {
            (Phase::Ready, Some(agent)) => agent,
            _ => return Err(SessionError::NotRunning),
        };
        let data = self.take_snapshot(id, agent).await?;
        let meta = self.store.put_snapshot(id, &data).await?;
        self.runtime.hibernate(id, &meta, reason).await?;
        match self
            .store
            .set_state(id, crate::store::SessionState::Hibernated)
            .await
        {
            Ok(()) | Err(StoreError::SessionNotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        self.audit(
            id,
            actor,
            "session.hibernate",
            serde_json::json!({
                "reason": reason.as_str(),
                "snapshot": meta.id,
                "bytes": meta.size_bytes,
                "sha256": meta.sha256_hex(),
            }),
        )
        .await;
        self.announce(id).await;
        Ok(meta)
    }

    async fn take_snapshot(&self, id: &SessionId, agent: std::net::SocketAddr) -> Result<Vec<u8>> {
        let token = self.keys.issue(
            id,
            "huddle-gateway",
            Role::Owner,
            "gateway",
            Duration::from_secs(300),
        );
        let response = self
            .http
            .get(format!("http://{agent}/internal/snapshot"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|error| SessionError::Agent(error.to_string()))?;
        if !response.status().is_success() {
            return Err(SessionError::Agent(format!(
                "snapshot answered {}",
                response.status()
            )));
        }
        let mut data = Vec::new();
        let mut stream = response.bytes_stream();
        use futures::StreamExt as _;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|error| SessionError::Agent(format!("snapshot cut short: {error}")))?;
            if (data.len() + chunk.len()) as u64 > MAX_SNAPSHOT_BYTES {
                return Err(SessionError::Agent(format!(
                    "snapshot is over {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            data.extend_from_slice(&chunk);
        }
        // The agent streams a tar; one cut short would lose files, so the end-of-archive
        // marker (two zero blocks) must be there.
        if data.len() < 1024 || data[data.len() - 1024..].iter().any(|b| *b != 0) {
            return Err(SessionError::Agent(
                "the snapshot is not a complete archive".into(),
            ));
        }
        Ok(data)
    }

    /// Tells everyone connected to the session that it is about to stop.
    pub async fn notify(
        &self,
        id: &SessionId,
        kind: NoticeKind,
        message: &str,
        at: u64,
    ) -> Result<()> {
        let view = self.view(id).await?.ok_or(SessionError::NotFound)?;
        let Some(agent) = view.agent else {
            return Err(SessionError::NotRunning);
        };
        let token = self.keys.issue(
            id,
            "huddle-gateway",
            Role::Owner,
            "gateway",
            Duration::from_secs(60),
        );
        let response = self
            .http
            .post(format!("http://{agent}/internal/notice"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "kind": kind, "message": message, "at": at }))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|error| SessionError::Agent(error.to_string()))?;
        if !response.status().is_success() {
            return Err(SessionError::Agent(format!(
                "notice answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    /// Deletes a session and everything it runs.
    pub async fn delete(&self, id: &SessionId, actor: &str) -> Result<()> {
        self.runtime.delete(id).await?;
        match self.store.delete_session(id, actor).await {
            Ok(()) | Err(StoreError::SessionNotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        self.announce(id).await;
        Ok(())
    }

    /// Changes who may open a declared port; open connections that lose access are cut by
    /// every replica when it hears of the change.
    pub async fn set_port_visibility(
        &self,
        id: &SessionId,
        port: u16,
        visibility: Visibility,
        actor: &str,
    ) -> Result<Vec<SessionPort>> {
        self.runtime
            .set_port_visibility(id, port, visibility)
            .await?;
        match self.store.set_port_visibility(id, port, visibility).await {
            Ok(()) => {}
            // Kubernetes sessions made with kubectl keep their ports only on the resource.
            Err(StoreError::PortNotFound(..) | StoreError::SessionNotFound(_))
                if matches!(self.store.get_session(id).await, Ok(None)) => {}
            Err(error) => return Err(error.into()),
        }
        self.audit(
            id,
            actor,
            "session.port-visibility",
            serde_json::json!({
                "port": port,
                "visibility": visibility,
            }),
        )
        .await;
        self.announce(id).await;
        let view = self.fresh_view(id).await?.ok_or(SessionError::NotFound)?;
        Ok(view.ports)
    }

    async fn audit(&self, id: &SessionId, actor: &str, action: &str, detail: serde_json::Value) {
        let event = AuditEvent {
            session_id: Some(id.clone()),
            at: Timestamp::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
        };
        if let Err(error) = self.store.audit(&event).await {
            tracing::warn!(session = %id, %error, action, "audit event not stored");
        }
    }
}
