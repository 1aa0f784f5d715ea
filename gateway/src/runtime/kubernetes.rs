//! Sessions as `Session` custom resources: the gateway writes `spec` (state, ports) and
//! annotations; the operator runs the pod and reports `status`.
//!
//! The address the gateway forwards to is the session's pod IP, and it is taken only when the
//! pod named after the session is controlled by that very Session (same UID), carries that IP
//! and is Ready: a Session's status alone (which anyone able to write status could set) does
//! not steer the gateway anywhere.

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use huddle_crds::names;
use huddle_crds::session::{PortVisibility, SessionPort as CrdPort};
use huddle_crds::{Session, SessionPhase, SessionSpec, SessionState};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt as _};

use super::{Phase, Result, Runtime, RuntimeError, SessionRequest, SessionView, StopReason};
use crate::store::{SessionId, SessionPort, SnapshotMeta, Timestamp, Visibility};

/// Field manager for what the gateway writes.
const FIELD_MANAGER: &str = "huddle-gateway";

/// Sessions in one namespace of a cluster.
#[derive(Clone)]
pub struct KubernetesRuntime {
    sessions: Api<Session>,
    pods: Api<Pod>,
}

impl KubernetesRuntime {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            sessions: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
        }
    }

    /// The pod's IP if it is `session`'s own, Ready pod.
    async fn verified_pod_ip(&self, session: &Session) -> Result<Option<IpAddr>> {
        let Some(status_ip) = session.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            return Ok(None);
        };
        let Some(pod) = self
            .pods
            .get_opt(&names::workspace_object_name(&session.name_any()))
            .await?
        else {
            return Ok(None);
        };
        let owned = pod.owner_references().iter().any(|owner| {
            owner.controller == Some(true)
                && owner.kind == "Session"
                && Some(owner.uid.as_str()) == session.metadata.uid.as_deref()
        });
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        let pod_ip = status.and_then(|s| s.pod_ip.as_deref());
        if !owned
            || !ready
            || pod_ip != Some(status_ip)
            || pod.metadata.deletion_timestamp.is_some()
        {
            return Ok(None);
        }
        Ok(status_ip.parse().ok())
    }
}

fn to_crd_port(port: &SessionPort) -> CrdPort {
    CrdPort {
        port: i32::from(port.port),
        visibility: match port.visibility {
            Visibility::Private => PortVisibility::Private,
            Visibility::Public => PortVisibility::Public,
        },
        name: None,
    }
}

fn from_crd_port(port: &CrdPort) -> Option<SessionPort> {
    Some(SessionPort {
        port: u16::try_from(port.port).ok().filter(|p| *p > 0)?,
        visibility: match port.visibility {
            PortVisibility::Private => Visibility::Private,
            PortVisibility::Public => Visibility::Public,
        },
    })
}

#[async_trait]
impl Runtime for KubernetesRuntime {
    async fn create(&self, request: &SessionRequest) -> Result<()> {
        let template =
            (!request.files.is_empty()).then(|| huddle_crds::session::WorkspaceTemplate {
                git: None,
                files: Some(request.files.clone()),
            });
        let session = Session::new(
            request.id.as_str(),
            SessionSpec {
                state: SessionState::Running,
                owner: Some(request.owner_name.clone()),
                idle_timeout: Some(request.idle_timeout.into()),
                max_lifetime: request.max_lifetime.map(Into::into),
                ports: request.ports.iter().map(to_crd_port).collect(),
                template,
                ..SessionSpec::default()
            },
        );
        self.sessions
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                &session,
            )
            .await?;
        Ok(())
    }

    async fn view(&self, id: &SessionId) -> Result<Option<SessionView>> {
        let Some(session) = self.sessions.get_opt(id.as_str()).await? else {
            return Ok(None);
        };
        if session.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let status = session.status.clone().unwrap_or_default();
        let mut host = None;
        let phase = if session.spec.state == SessionState::Hibernated {
            Phase::Hibernated
        } else {
            match status.phase {
                Some(SessionPhase::Failed) => {
                    Phase::Failed(status.message.clone().unwrap_or_else(|| "failed".into()))
                }
                Some(SessionPhase::Running) => match self.verified_pod_ip(&session).await? {
                    Some(ip) => {
                        host = Some(ip);
                        Phase::Ready
                    }
                    None => Phase::Starting,
                },
                _ => Phase::Starting,
            }
        };
        let created_at = session
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |time| {
                Timestamp::from_unix_millis(time.0.as_millisecond())
            });
        Ok(Some(SessionView {
            id: id.clone(),
            phase,
            agent: host.map(|ip| SocketAddr::new(ip, names::AGENT_PORT)),
            host,
            ports: session
                .spec
                .ports
                .iter()
                .filter_map(from_crd_port)
                .collect(),
            idle_timeout: session.spec.idle_timeout().into(),
            max_lifetime: session.spec.max_lifetime.map(Into::into),
            created_at,
        }))
    }

    async fn wake(&self, id: &SessionId) -> Result<()> {
        let patch = serde_json::json!({ "spec": { "state": "Running" } });
        match self
            .sessions
            .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(RuntimeError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    async fn hibernate(
        &self,
        id: &SessionId,
        snapshot: &SnapshotMeta,
        reason: StopReason,
    ) -> Result<()> {
        // One patch: the snapshot that makes the stop safe, why it stopped, and the stop.
        let patch = serde_json::json!({
            "metadata": { "annotations": {
                names::SNAPSHOT_ANNOTATION: format!("{}:{}", snapshot.id, snapshot.sha256_hex()),
                names::STOP_REASON_ANNOTATION: reason.as_str(),
            }},
            "spec": { "state": "Hibernated" },
        });
        self.sessions
            .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        match self.sessions.delete(id.as_str(), &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn set_port_visibility(
        &self,
        id: &SessionId,
        port: u16,
        visibility: Visibility,
    ) -> Result<()> {
        let session = self
            .sessions
            .get_opt(id.as_str())
            .await?
            .ok_or(RuntimeError::NotFound)?;
        let mut ports: Vec<SessionPort> = session
            .spec
            .ports
            .iter()
            .filter_map(from_crd_port)
            .collect();
        let entry = ports
            .iter_mut()
            .find(|p| p.port == port)
            .ok_or_else(|| RuntimeError::Invalid(format!("port {port} is not declared")))?;
        entry.visibility = visibility;
        // A merge patch replaces the whole list; the resourceVersion makes it fail rather than
        // overwrite a concurrent change.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": session.resource_version() },
            "spec": { "ports": ports.iter().map(to_crd_port).collect::<Vec<_>>() },
        });
        self.sessions
            .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}
