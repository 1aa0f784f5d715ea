//! Sessions on this machine, without Kubernetes: the store holds each session's wanted state
//! and ports, and a [`Launcher`] starts its agent (as a process, or a container through the
//! Docker API). A woken session's agent starts on an empty workspace and the gateway pushes
//! the latest snapshot into it (`PUT /internal/restore`) before anyone is let in.

mod docker;
mod process;

pub use docker::DockerLauncher;
pub use process::ProcessLauncher;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use huddle_protocol::Role;

use super::{Phase, Result, Runtime, RuntimeError, SessionRequest, SessionView, StopReason};
use crate::auth::Keys;
use crate::store::{SessionId, SessionState, SnapshotMeta, Store, Visibility};

/// How long a starting agent may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a launcher needs to start one agent.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub id: SessionId,
    /// The workspace folder on this machine (created, empty or not).
    pub workspace: PathBuf,
    /// `HUDDLE_TOKEN_KEY` for the agent: the session's own key.
    pub token_key: String,
    /// Files to create in a new workspace (path → text).
    pub files: std::collections::BTreeMap<String, String>,
}

/// A started agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// Where the agent's HTTP server listens.
    pub agent: SocketAddr,
    /// Where the session's forwarded ports listen.
    pub host: IpAddr,
}

/// Starts and stops agents.
#[async_trait]
pub trait Launcher: Send + Sync + 'static {
    /// Starts `spec.id`'s agent; returns once it has an address (not necessarily healthy).
    async fn start(&self, spec: &LaunchSpec) -> Result<Launched>;
    /// Whether the agent started for `id` is still running.
    async fn is_running(&self, id: &SessionId) -> bool;
    /// Stops `id`'s agent gracefully (it saves open documents), then forcibly.
    async fn stop(&self, id: &SessionId) -> Result<()>;
    /// Stops every agent this launcher started.
    async fn stop_all(&self);
}

#[derive(Debug, Clone)]
enum Agent {
    Starting,
    Ready(Launched),
    Failed(String),
}

/// Sessions whose agents the gateway starts itself.
pub struct LocalRuntime {
    store: Store,
    keys: Keys,
    launcher: Arc<dyn Launcher>,
    workspaces: PathBuf,
    agents: Arc<Mutex<HashMap<SessionId, Agent>>>,
    http: reqwest::Client,
}

impl LocalRuntime {
    pub fn new(store: Store, keys: Keys, launcher: Arc<dyn Launcher>, data_dir: PathBuf) -> Self {
        Self {
            store,
            keys,
            launcher,
            workspaces: data_dir.join("workspaces"),
            agents: Arc::default(),
            http: reqwest::Client::new(),
        }
    }

    fn workspace(&self, id: &SessionId) -> PathBuf {
        self.workspaces.join(id.as_str())
    }

    fn agent(&self, id: &SessionId) -> Option<Agent> {
        self.agents.lock().ok()?.get(id).cloned()
    }

    fn set_agent(agents: &Mutex<HashMap<SessionId, Agent>>, id: &SessionId, agent: Option<Agent>) {
        if let Ok(mut agents) = agents.lock() {
            match agent {
                Some(agent) => agents.insert(id.clone(), agent),
                None => agents.remove(id),
            };
        }
    }

    async fn remove_workspace(&self, id: &SessionId) -> Result<()> {
        let workspace = self.workspace(id);
        if workspace.exists() {
            tokio::fs::remove_dir_all(&workspace)
                .await
                .map_err(|error| {
                    RuntimeError::Launch(format!("removing the workspace: {error}"))
                })?;
        }
        Ok(())
    }

    /// Starts `id`'s agent in the background unless it is already starting or running.
    fn start_agent(&self, id: &SessionId, files: std::collections::BTreeMap<String, String>) {
        {
            let Ok(mut agents) = self.agents.lock() else {
                return;
            };
            if matches!(agents.get(id), Some(Agent::Starting | Agent::Ready(_))) {
                return;
            }
            agents.insert(id.clone(), Agent::Starting);
        }
        let workspace = self.workspace(id);
        // A workspace folder that is missing means a new or a woken session: a woken one gets
        // its snapshot pushed in. One that exists is a session that was running when the gateway
        // stopped: its files are all there.
        let fresh = !workspace.exists();
        let spec = LaunchSpec {
            id: id.clone(),
            workspace,
            token_key: self.keys.session_key_text(id),
            files,
        };
        let launcher = Arc::clone(&self.launcher);
        let agents = Arc::clone(&self.agents);
        let store = self.store.clone();
        let keys = self.keys.clone();
        let http = self.http.clone();
        tokio::spawn(async move {
            let id = spec.id.clone();
            let outcome = async {
                if fresh {
                    write_template(&spec.workspace, &spec.files).await?;
                }
                let launched = launcher.start(&spec).await?;
                wait_healthy(&http, launched.agent).await?;
                if fresh {
                    restore_latest(&http, &store, &keys, &id, launched.agent).await?;
                }
                Ok::<_, RuntimeError>(launched)
            }
            .await;
            match outcome {
                Ok(launched) => {
                    tracing::info!(session = %id, agent = %launched.agent, "agent ready");
                    Self::set_agent(&agents, &id, Some(Agent::Ready(launched)));
                }
                Err(error) => {
                    tracing::error!(session = %id, %error, "agent failed to start");
                    let _ = launcher.stop(&id).await;
                    Self::set_agent(&agents, &id, Some(Agent::Failed(error.to_string())));
                }
            }
        });
    }
}

/// Creates a new workspace folder with the session's starting files. Paths are relative and
/// stay inside the folder (the API checked them too; this is the last line).
async fn write_template(
    workspace: &std::path::Path,
    files: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let io =
        |error: std::io::Error| RuntimeError::Launch(format!("preparing the workspace: {error}"));
    tokio::fs::create_dir_all(workspace).await.map_err(io)?;
    for (path, text) in files {
        let relative = std::path::Path::new(path);
        if !crate::api::is_safe_relative_path(path) {
            return Err(RuntimeError::Invalid(format!(
                "template path {path:?} leaves the workspace"
            )));
        }
        let target = workspace.join(relative);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        tokio::fs::write(&target, text).await.map_err(io)?;
    }
    Ok(())
}

async fn wait_healthy(http: &reqwest::Client, agent: SocketAddr) -> Result<()> {
    let url = format!("http://{agent}{}", huddle_crds::names::AGENT_HEALTH_PATH);
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
        if answer.is_ok_and(|response| response.status().is_success()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(RuntimeError::Launch(format!(
                "the agent did not answer {url} within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pushes the session's newest snapshot, if it has one, into its fresh agent.
async fn restore_latest(
    http: &reqwest::Client,
    store: &Store,
    keys: &Keys,
    id: &SessionId,
    agent: SocketAddr,
) -> Result<()> {
    let Some((meta, data)) = store.latest_snapshot(id).await? else {
        return Ok(());
    };
    let token = keys.issue(
        id,
        "huddle-gateway",
        Role::Owner,
        "gateway",
        Duration::from_secs(300),
    );
    let response = http
        .put(format!("http://{agent}/internal/restore"))
        .bearer_auth(token)
        .body(data)
        .send()
        .await
        .map_err(|error| RuntimeError::Launch(format!("restoring the snapshot: {error}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(RuntimeError::Launch(format!(
            "the agent refused snapshot {}: {status} {body}",
            meta.id
        )));
    }
    tracing::info!(session = %id, snapshot = meta.id, bytes = meta.size_bytes, "snapshot restored");
    Ok(())
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn create(&self, request: &SessionRequest) -> Result<()> {
        self.start_agent(&request.id, request.files.clone());
        Ok(())
    }

    async fn view(&self, id: &SessionId) -> Result<Option<SessionView>> {
        let Some(session) = self.store.get_session(id).await? else {
            return Ok(None);
        };
        let ports = self.store.ports(id).await?;
        let (phase, launched) = match session.state {
            SessionState::Hibernated => (Phase::Hibernated, None),
            SessionState::Running => match self.agent(id) {
                Some(Agent::Ready(launched)) if self.launcher.is_running(id).await => {
                    (Phase::Ready, Some(launched))
                }
                Some(Agent::Failed(message)) => (Phase::Failed(message), None),
                Some(Agent::Starting) => (Phase::Starting, None),
                // Not started since the gateway started, or it exited: start it.
                Some(Agent::Ready(_)) | None => {
                    Self::set_agent(&self.agents, id, None);
                    self.start_agent(id, Default::default());
                    (Phase::Starting, None)
                }
            },
        };
        Ok(Some(SessionView {
            id: id.clone(),
            phase,
            agent: launched.map(|l| l.agent),
            host: launched.map(|l| l.host),
            ports,
            idle_timeout: session.idle_timeout,
            max_lifetime: session.max_lifetime,
            created_at: session.created_at,
        }))
    }

    async fn wake(&self, id: &SessionId) -> Result<()> {
        if self.store.get_session(id).await?.is_none() {
            return Err(RuntimeError::NotFound);
        }
        self.store.set_state(id, SessionState::Running).await?;
        if matches!(self.agent(id), Some(Agent::Failed(_))) {
            Self::set_agent(&self.agents, id, None);
        }
        self.start_agent(id, Default::default());
        Ok(())
    }

    async fn hibernate(
        &self,
        id: &SessionId,
        snapshot: &SnapshotMeta,
        reason: StopReason,
    ) -> Result<()> {
        self.store.set_state(id, SessionState::Hibernated).await?;
        self.launcher.stop(id).await?;
        Self::set_agent(&self.agents, id, None);
        // The snapshot is committed (the caller checked): the files may go.
        self.remove_workspace(id).await?;
        tracing::info!(session = %id, snapshot = snapshot.id, reason = reason.as_str(), "session hibernated");
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.launcher.stop(id).await?;
        Self::set_agent(&self.agents, id, None);
        self.remove_workspace(id).await?;
        Ok(())
    }

    async fn set_port_visibility(
        &self,
        _id: &SessionId,
        _port: u16,
        _visibility: Visibility,
    ) -> Result<()> {
        // The store is this runtime's record of ports; the caller already wrote it there.
        Ok(())
    }

    async fn shutdown(&self) {
        self.launcher.stop_all().await;
    }
}
