//! Agents as containers through the Docker API (Docker, or podman's compatible service), with
//! bollard: one container per session on the engine's bridge network, so each session has its
//! own address and its forwarded ports are its own.
//!
//! Each container is `huddle-<session id>`, labelled like the Kubernetes runtime's pods, runs
//! the agent image as the unprivileged workspace user with no capabilities and no way to gain
//! privileges, and sees its workspace folder on this machine at `/workspace`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, Mount, MountType,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use huddle_crds::names;

use super::{LaunchSpec, Launched, Launcher};
use crate::runtime::{Result, RuntimeError};
use crate::store::SessionId;

/// The unprivileged user (and group) the agent runs as; the image's `nonroot`.
const AGENT_UID: u32 = 65532;
/// Where the workspace folder appears inside the container.
const WORKSPACE_PATH: &str = "/workspace";
/// How long an agent gets to save its documents after SIGTERM before it is killed.
const STOP_GRACE_SECONDS: i32 = 10;
/// Processes and threads one session may have (a fork bomb stays inside its session).
const PIDS_LIMIT: i64 = 4096;
/// Memory one session may use, builds and dev servers included.
const MEMORY_LIMIT_BYTES: i64 = 4 << 30;
/// Seconds a request to the engine may take; above the stop grace period.
const ENGINE_TIMEOUT_SECONDS: u64 = 60;
/// How long the engine has to answer when the gateway connects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `app.kubernetes.io/managed-by` on our containers.
const MANAGED_BY: &str = "huddle-gateway";

/// Starts agent containers.
pub struct DockerLauncher {
    docker: Docker,
    image: String,
    /// Sessions whose containers this launcher started and has not stopped.
    started: Mutex<HashSet<SessionId>>,
}

/// The container of session `id`.
fn container_name(id: &SessionId) -> String {
    format!("huddle-{id}")
}

fn launch_error(what: impl std::fmt::Display, error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Launch(format!("{what}: {error}"))
}

/// Whether the engine answered "no such container" (or image).
fn is_not_found(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerLauncher {
    /// Connects to the engine at `docker_host` (`unix:///…`, `tcp://…` or `http://…`) and checks
    /// that it answers, agreeing on an API version both sides speak (podman's is older).
    pub async fn connect(docker_host: &str, image: String) -> Result<Self> {
        let no_engine = |error: &dyn std::fmt::Display| {
            RuntimeError::Launch(format!(
                "no Docker API engine at {docker_host} ({error}); start one (Docker, or \
                 `podman system service --time=0 {docker_host}`) or point --docker-host / \
                 DOCKER_HOST at it"
            ))
        };
        let docker = if let Some(path) = docker_host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, ENGINE_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
        } else if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
            Docker::connect_with_http(
                docker_host,
                ENGINE_TIMEOUT_SECONDS,
                bollard::API_DEFAULT_VERSION,
            )
        } else {
            return Err(RuntimeError::Invalid(format!(
                "Docker host {docker_host:?}: expected unix:///path/to/socket or tcp://host:port"
            )));
        }
        .map_err(|error| no_engine(&error))?;
        let answered = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let docker = docker.negotiate_version().await?;
            let version = docker.version().await?;
            Ok::<_, DockerError>((docker, version))
        })
        .await
        .map_err(|_| no_engine(&format_args!("no answer within {CONNECT_TIMEOUT:?}")))?;
        let (docker, version) = answered.map_err(|error| no_engine(&error))?;
        // Not fatal: the image may be loaded after the gateway started.
        if let Err(error) = docker.inspect_image(&image).await {
            tracing::warn!(%image, %error, "the agent image is not in the container engine yet");
        }
        tracing::info!(
            host = docker_host,
            engine = version.version.as_deref().unwrap_or("unknown"),
            api = %docker.client_version(),
            %image,
            "connected to the container engine"
        );
        Ok(Self {
            docker,
            image,
            started: Mutex::default(),
        })
    }

    fn started(&self) -> MutexGuard<'_, HashSet<SessionId>> {
        // The set is only ever inserted into or removed from: a panic elsewhere cannot leave it
        // half-changed, so a poisoned lock is still good.
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes `name` whatever its state; a missing container is fine.
    async fn remove(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(launch_error(format!("removing container {name}"), error)),
        }
    }

    /// Stops `name` gracefully (SIGTERM, then SIGKILL after the grace period) and removes it.
    async fn stop_and_remove(&self, name: &str) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECONDS)
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => tracing::info!(container = name, "agent container stopped"),
            Err(error) if is_not_found(&error) => return Ok(()),
            // Removing by force still ends it; say why it was not graceful.
            Err(error) => tracing::warn!(container = name, %error, "stopping the agent container"),
        }
        self.remove(name).await
    }

    fn create_body(&self, spec: &LaunchSpec, workspace: &Path) -> ContainerCreateBody {
        let labels = HashMap::from([
            (names::APP_NAME_LABEL.to_owned(), names::APP_NAME.to_owned()),
            (
                names::APP_COMPONENT_LABEL.to_owned(),
                names::AGENT_COMPONENT.to_owned(),
            ),
            (
                names::APP_MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            ),
            (names::SESSION_LABEL.to_owned(), spec.id.to_string()),
        ]);
        let env = vec![
            format!("HUDDLE_AGENT_ADDR=0.0.0.0:{}", names::AGENT_PORT),
            format!("HUDDLE_SESSION_ID={}", spec.id),
            format!("HUDDLE_WORKSPACE={WORKSPACE_PATH}"),
            format!("HUDDLE_TOKEN_KEY={}", spec.token_key),
        ];
        let host_config = HostConfig {
            // A mount, not a `host:container` bind string, so no character of the path can
            // change its meaning.
            mounts: Some(vec![Mount {
                typ: Some(MountType::BIND),
                source: Some(workspace.to_string_lossy().into_owned()),
                target: Some(WORKSPACE_PATH.to_owned()),
                read_only: Some(false),
                ..Mount::default()
            }]),
            network_mode: Some("bridge".to_owned()),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            pids_limit: Some(PIDS_LIMIT),
            memory: Some(MEMORY_LIMIT_BYTES),
            // The gateway decides when an agent runs.
            auto_remove: Some(false),
            ..HostConfig::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            user: Some(format!("{AGENT_UID}:{AGENT_UID}")),
            env: Some(env),
            labels: Some(labels),
            working_dir: Some(WORKSPACE_PATH.to_owned()),
            stop_timeout: Some(i64::from(STOP_GRACE_SECONDS)),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        }
    }

    async fn inspect(
        &self,
        name: &str,
    ) -> std::result::Result<ContainerInspectResponse, DockerError> {
        self.docker.inspect_container(name, None).await
    }
}

/// The container's address on its network (the first network that gave it one).
fn container_ip(inspect: &ContainerInspectResponse) -> Option<IpAddr> {
    let networks = inspect.network_settings.as_ref()?.networks.as_ref()?;
    let mut networks: Vec<_> = networks.iter().collect();
    networks.sort_by(|a, b| a.0.cmp(b.0));
    networks
        .into_iter()
        .filter_map(|(_, endpoint)| endpoint.ip_address.as_deref())
        .find_map(|ip| ip.parse().ok())
}

/// Creates the workspace folder if needed and hands it to the agent's user. A folder that
/// already belongs to that user was handed over before, and everything in it was written by the
/// agent; a new one (created here, or by the gateway with the session's starting files) is
/// handed over with its contents. Symbolic links are never followed: `lchown` changes the link
/// itself, so a link in a workspace cannot make the gateway give away a file outside it.
fn prepare_workspace(workspace: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::create_dir_all(workspace)?;
    let workspace = std::fs::canonicalize(workspace)?;
    let meta = std::fs::symlink_metadata(&workspace)?;
    if meta.uid() != AGENT_UID || meta.gid() != AGENT_UID {
        chown_tree(&workspace)?;
    }
    Ok(workspace)
}

fn chown_tree(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(AGENT_UID), Some(AGENT_UID))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path())?;
        }
    }
    Ok(())
}

#[async_trait]
impl Launcher for DockerLauncher {
    async fn start(&self, spec: &LaunchSpec) -> Result<Launched> {
        let name = container_name(&spec.id);
        let folder = spec.workspace.clone();
        let workspace = tokio::task::spawn_blocking(move || prepare_workspace(&folder))
            .await
            .map_err(|error| launch_error("preparing the workspace", error))?
            .map_err(|error| {
                launch_error(
                    format!(
                        "preparing the workspace {} for user {AGENT_UID} (the gateway must be \
                         allowed to chown it)",
                        spec.workspace.display()
                    ),
                    error,
                )
            })?;

        // A container left by an earlier gateway (or an earlier start) holds the name.
        self.remove(&name).await?;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), self.create_body(spec, &workspace))
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    RuntimeError::Launch(format!(
                        "image {} is not in the container engine ({error}); load or pull it",
                        self.image
                    ))
                } else {
                    launch_error(format!("creating container {name}"), error)
                }
            })?;
        for warning in &created.warnings {
            tracing::warn!(session = %spec.id, container = %name, warning, "engine warning");
        }
        self.started().insert(spec.id.clone());

        let started = async {
            self.docker
                .start_container(&name, None)
                .await
                .map_err(|error| launch_error(format!("starting container {name}"), error))?;
            let inspect = self
                .inspect(&name)
                .await
                .map_err(|error| launch_error(format!("inspecting container {name}"), error))?;
            let running = inspect
                .state
                .as_ref()
                .and_then(|state| state.running)
                .unwrap_or(false);
            if !running {
                return Err(RuntimeError::Launch(format!(
                    "container {name} exited at once: {}",
                    inspect
                        .state
                        .as_ref()
                        .and_then(|state| state.error.clone())
                        .filter(|error| !error.is_empty())
                        .unwrap_or_else(|| "see its logs".to_owned())
                )));
            }
            container_ip(&inspect).ok_or_else(|| {
                RuntimeError::Launch(format!(
                    "container {name} has no address on a network (is the engine's bridge \
                     network there?)"
                ))
            })
        }
        .await;
        match started {
            Ok(ip) => {
                let agent = SocketAddr::new(ip, names::AGENT_PORT);
                tracing::info!(session = %spec.id, container = %name, %agent, "agent container started");
                Ok(Launched { agent, host: ip })
            }
            Err(error) => {
                if let Err(cleanup) = self.remove(&name).await {
                    tracing::warn!(session = %spec.id, error = %cleanup, "removing a failed container");
                }
                self.started().remove(&spec.id);
                Err(error)
            }
        }
    }

    async fn is_running(&self, id: &SessionId) -> bool {
        match self.inspect(&container_name(id)).await {
            Ok(inspect) => inspect
                .state
                .and_then(|state| state.running)
                .unwrap_or(false),
            Err(error) => {
                if !is_not_found(&error) {
                    tracing::warn!(session = %id, %error, "inspecting the agent container");
                }
                false
            }
        }
    }

    async fn stop(&self, id: &SessionId) -> Result<()> {
        let outcome = self.stop_and_remove(&container_name(id)).await;
        if outcome.is_ok() {
            self.started().remove(id);
        }
        outcome
    }

    async fn stop_all(&self) {
        let ids: Vec<SessionId> = self.started().iter().cloned().collect();
        futures::future::join_all(ids.iter().map(|id| async move {
            if let Err(error) = self.stop(id).await {
                tracing::warn!(session = %id, %error, "stopping the agent container");
            }
        }))
        .await;
    }
}
