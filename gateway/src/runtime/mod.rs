//! Where session agents run, behind one interface: Kubernetes (`Session` resources that the
//! operator turns into pods) or this machine (agents started by the gateway itself, as
//! processes or containers).
//!
//! The proxy only ever asks a runtime for a [`SessionView`]: the addresses it may forward to
//! come from there and nowhere else, so a request can never steer the gateway to an address
//! that is not the session's own pod (or agent).

mod kubernetes;
mod local;

pub use kubernetes::KubernetesRuntime;
pub use local::{DockerLauncher, LaunchSpec, Launched, Launcher, LocalRuntime, ProcessLauncher};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::{SessionId, SessionPort, SnapshotMeta, Timestamp, Visibility};

/// How far a session is from being usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", content = "message", rename_all = "lowercase")]
pub enum Phase {
    /// The agent answers.
    Ready,
    /// Wanted running; the pod or process is on its way.
    Starting,
    /// Asleep; its state is in the database.
    Hibernated,
    /// It could not start; the message says why.
    Failed(String),
}

/// What the gateway needs to know to route to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: SessionId,
    pub phase: Phase,
    /// The agent's address, once ready.
    pub agent: Option<SocketAddr>,
    /// The pod's (or container's) address, where forwarded ports listen.
    pub host: Option<IpAddr>,
    pub ports: Vec<SessionPort>,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub created_at: Timestamp,
}

impl SessionView {
    /// The declared port `port`, if any.
    pub fn port(&self, port: u16) -> Option<SessionPort> {
        self.ports.iter().copied().find(|p| p.port == port)
    }

    /// The address of forwarded port `port`: only a declared port of a ready session.
    pub fn port_addr(&self, port: u16) -> Option<SocketAddr> {
        self.port(port)?;
        (self.phase == Phase::Ready)
            .then_some(self.host)
            .flatten()
            .map(|host| SocketAddr::new(host, port))
    }
}

/// A session to start.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub id: SessionId,
    pub owner_name: String,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub ports: Vec<SessionPort>,
    /// Files to start the workspace with (path → text).
    pub files: std::collections::BTreeMap<String, String>,
}

/// Why a session was put to sleep, as recorded on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Idle,
    MaxLifetime,
    Requested,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::MaxLifetime => "MaxLifetime",
            Self::Requested => "Requested",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("session not found")]
    NotFound,
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("starting the agent: {0}")]
    Launch(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// One place sessions run.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Starts a new session (its row is already in the store).
    async fn create(&self, request: &SessionRequest) -> Result<()>;

    /// The session as it is now; `None` if it does not exist.
    async fn view(&self, id: &SessionId) -> Result<Option<SessionView>>;

    /// Asks for the session to run (waking it, restoring its latest snapshot).
    async fn wake(&self, id: &SessionId) -> Result<()>;

    /// Puts a session to sleep. Called only after `snapshot` is durably stored.
    async fn hibernate(
        &self,
        id: &SessionId,
        snapshot: &SnapshotMeta,
        reason: StopReason,
    ) -> Result<()>;

    /// Removes the session and everything it runs.
    async fn delete(&self, id: &SessionId) -> Result<()>;

    /// Records a port's visibility where the runtime keeps it.
    async fn set_port_visibility(
        &self,
        id: &SessionId,
        port: u16,
        visibility: Visibility,
    ) -> Result<()>;

    /// Stops everything this runtime started on this machine (the gateway is exiting).
    async fn shutdown(&self) {}
}
