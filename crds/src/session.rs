//! The `Session` custom resource (`huddle.dev/v1alpha1`): one collaborative coding session.
//!
//! `spec` is what the user (or the gateway) wants; `status` is what the operator observed. The
//! schema carries descriptions for `kubectl explain`, and OpenAPI and CEL rules so the API
//! server itself rejects a bad spec with a message that names the field.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest Session name: the pod, service and volume claim are named after it with a
/// suffix, and a service name is a 63-character DNS label.
pub const MAX_NAME_LENGTH: usize = 52;
/// Most ports a session may forward.
pub const MAX_PORTS: usize = 20;
/// Default for `spec.idleTimeout`.
pub const DEFAULT_IDLE_TIMEOUT: &str = "30m";

/// A collaborative coding session: one workspace pod shared by up to ten people through the
/// Huddle gateway.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "huddle.dev",
    version = "v1alpha1",
    kind = "Session",
    plural = "sessions",
    singular = "session",
    shortname = "hs",
    category = "huddle",
    namespaced,
    status = "SessionStatus",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Participants", type_ = "integer", json_path = ".status.participants"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = "1"
    ),
    doc = "A collaborative coding session: one workspace pod shared by up to ten people through the Huddle gateway.",
    validation = Rule::new("size(self.metadata.name) <= 52").message(
        "metadata.name must be at most 52 characters: the session's pod and service are named after it"
    ),
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// Desired state. `Running` keeps a workspace pod up; `Hibernated` removes it once the
    /// gateway has saved the session's state, and setting `Running` again brings it back.
    #[serde(default)]
    pub state: SessionState,

    /// Container image of the workspace agent. Defaults to the operator's configured image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("image must not be empty"))]
    pub image: Option<String>,

    /// Who created the session (a user name or e-mail); informational, shown to participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,

    /// How long the session may sit idle, with nobody connected, before it is hibernated. A
    /// Go duration such as `30m` or `1h30m`; must be positive. Defaults to 30m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "idle_timeout_schema")]
    pub idle_timeout: Option<Duration>,

    /// Hard limit on the session's running time since creation, after which it is hibernated
    /// whatever its activity. A positive Go duration such as `8h`; unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_positive_duration_schema")]
    pub max_lifetime: Option<Duration>,

    /// CPU and memory requests and limits of the workspace container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// A persistent volume for the workspace, kept while the session is hibernated and deleted
    /// with the session. Without it the workspace lives in the pod and is saved to the gateway's
    /// database on hibernation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Ports of the workspace forwarded by the gateway as `port-<port>-<session>.<domain>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["port".into()]))]
    pub ports: Vec<SessionPort>,

    /// Extra environment variables for the workspace container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// What the workspace starts with when it is first created: a git repository or a set of
    /// files. Ignored when the session is restored from a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WorkspaceTemplate>,
}

/// Desired state of a session.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum SessionState {
    /// A workspace pod is running.
    #[default]
    Running,
    /// State saved, no pod.
    Hibernated,
}

/// A persistent volume for the workspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a Kubernetes quantity such as `10Gi`.
    pub size: Quantity,
    /// Storage class of the volume claim; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// A forwarded port of the workspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPort {
    /// Port number inside the workspace, 1-65535. Unique within the session.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Who may open the port's URL: `private` (session participants only, the default) or
    /// `public` (anyone with the URL).
    #[serde(default)]
    pub visibility: PortVisibility,
    /// A name shown in the UI, such as `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub name: Option<String>,
}

/// Who may reach a forwarded port.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum PortVisibility {
    /// Only the session's participants, through the gateway's signed cookie.
    #[default]
    Private,
    /// Anyone who has the URL.
    Public,
}

/// The initial content of a workspace: exactly one of `git` or `files`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.git) != has(self.files)").message("template needs exactly one of git or files"))]
pub struct WorkspaceTemplate {
    /// A git repository cloned into the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitTemplate>,
    /// Files written into the workspace: relative path to UTF-8 content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(path, !path.startsWith('/') && !path.split('/').exists(p, p == '..'))").message("template file paths must be relative and stay inside the workspace"))]
    pub files: Option<BTreeMap<String, String>>,
}

/// A git repository to seed the workspace from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitTemplate {
    /// Clone URL (https).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("git url must be an http(s) URL"))]
    pub url: String,
    /// Branch, tag or commit to check out; the default branch when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// What the operator observed of a session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// Where the session is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// The latest observations, in this order: PodScheduled, AgentReady, Ready,
    /// StatePersisted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The message of the first condition that is not true: what the session waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the session last stopped (for example `Idle`, `MaxLifetime`, `UserRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Address of the workspace pod.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podIP")]
    pub pod_ip: Option<String>,
    /// The URL participants open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Forwarded ports with their URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStatus>,
    /// Number of people connected, as reported by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<i32>,
    /// When a participant last did something (typed, ran a command, spoke), as reported by the
    /// gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<Time>,
}

/// Lifecycle phase of a session.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SessionPhase {
    /// Accepted; no pod scheduled yet.
    Pending,
    /// Pod scheduled, agent not ready yet.
    Starting,
    /// Agent ready; participants can connect.
    Running,
    /// Asked to hibernate; the pod is being removed.
    Hibernating,
    /// No pod; state saved.
    Hibernated,
    /// The session cannot run without a change to its spec (for example its image cannot be
    /// found, or its agent keeps crashing).
    Failed,
}

impl SessionPhase {
    /// The phase as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Hibernating => "Hibernating",
            Self::Hibernated => "Hibernated",
            Self::Failed => "Failed",
        }
    }
}

/// A forwarded port and where to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortStatus {
    /// Port number inside the workspace.
    pub port: i32,
    /// The port's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `private` or `public`.
    pub visibility: PortVisibility,
    /// The URL that reaches the port through the gateway.
    pub url: String,
}

impl SessionSpec {
    /// `idleTimeout`, or its default when unset (the API server fills in the default on
    /// create, so this matters only for objects built in code).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or_else(default_idle_timeout)
    }
}

fn default_idle_timeout() -> Duration {
    // A constant that parses; checked by the `default_idle_timeout_parses` test.
    DEFAULT_IDLE_TIMEOUT
        .parse()
        .unwrap_or_else(|_| std::time::Duration::from_secs(30 * 60).into())
}

/// A Go duration string, validated by the API server: the pattern rejects signs and unknown
/// units, the CEL rule rejects zero.
fn idle_timeout_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "default": DEFAULT_IDLE_TIMEOUT,
        "pattern": DURATION_PATTERN,
        "x-kubernetes-validations": [{
            "rule": "duration(self) > duration('0s')",
            "message": "must be a positive duration such as 30m or 1h30m"
        }]
    })
}

fn optional_positive_duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": DURATION_PATTERN,
        "x-kubernetes-validations": [{
            "rule": "duration(self) > duration('0s')",
            "message": "must be a positive duration such as 8h"
        }]
    })
}

/// An unsigned Go duration: one or more number-unit pairs such as `1h30m` or `1.5s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt as _;

    #[test]
    fn default_idle_timeout_parses() {
        let parsed: Duration = DEFAULT_IDLE_TIMEOUT.parse().unwrap();
        assert_eq!(parsed, std::time::Duration::from_secs(1800));
        assert_eq!(default_idle_timeout(), parsed);
    }

    #[test]
    fn name_limit_in_rule_matches_constant() {
        let crd = serde_json::to_string(&Session::crd()).unwrap();
        assert!(crd.contains(&format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}")));
        assert!(crd.contains(&format!("\"maxItems\":{MAX_PORTS}")));
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let session: Session = serde_json::from_value(serde_json::json!({
            "apiVersion": "huddle.dev/v1alpha1",
            "kind": "Session",
            "metadata": {"name": "a"},
            "spec": {}
        }))
        .unwrap();
        assert_eq!(session.spec.state, SessionState::Running);
        assert_eq!(
            session.spec.idle_timeout(),
            std::time::Duration::from_secs(1800)
        );
        assert!(session.spec.ports.is_empty());
    }

    #[test]
    fn ports_and_visibility_round_trip() {
        let spec: SessionSpec = serde_json::from_value(serde_json::json!({
            "state": "Hibernated",
            "idleTimeout": "1h30m",
            "ports": [{"port": 3000, "visibility": "public", "name": "web"}, {"port": 5432}]
        }))
        .unwrap();
        assert_eq!(spec.state, SessionState::Hibernated);
        assert_eq!(spec.ports[0].visibility, PortVisibility::Public);
        assert_eq!(spec.ports[1].visibility, PortVisibility::Private);
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(spec.idle_timeout(), std::time::Duration::from_secs(5400));
        assert_eq!(back["ports"][1]["visibility"], "private");
    }

    #[test]
    fn unknown_visibility_is_rejected_by_serde_too() {
        let result: Result<SessionPort, _> =
            serde_json::from_value(serde_json::json!({"port": 1, "visibility": "open"}));
        assert!(result.is_err());
    }
}
