//! The objects a Session owns, built from its spec: the workspace Pod, its Service, and the
//! PersistentVolumeClaim when the session asks for storage. Pure functions, so what the
//! operator applies can be tested without a cluster.

use huddle_crds::names;
use huddle_crds::session::Session;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource as _, ResourceExt as _};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

use crate::config::Config;

/// Annotation on the pod holding a hash of the pod spec it was created from. Pods are
/// immutable where it matters, so a changed hash means the pod is replaced.
pub const SPEC_HASH_ANNOTATION: &str = "huddle.dev/spec-hash";
/// Where the workspace lives inside the pod.
pub const WORKSPACE_PATH: &str = "/workspace";
/// The unprivileged user (and group) the workspace runs as.
pub const WORKSPACE_UID: i64 = 65532;

/// Name of every object a session owns: `<session>-workspace`. Session names are at most 52
/// characters (enforced by the CRD), so this fits a 63-character DNS label.
pub fn owned_name(session: &Session) -> String {
    format!("{}-workspace", session.name_any())
}

/// Labels on everything a session owns; the Service selects its pod by them.
pub fn labels(session: &Session) -> BTreeMap<String, String> {
    [
        (names::APP_NAME_LABEL, names::APP_NAME.to_owned()),
        (
            names::APP_COMPONENT_LABEL,
            names::AGENT_COMPONENT.to_owned(),
        ),
        (names::APP_MANAGED_BY_LABEL, names::OPERATOR_NAME.to_owned()),
        (names::SESSION_LABEL, session.name_any()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

fn owner_reference(session: &Session) -> Option<OwnerReference> {
    session.controller_owner_ref(&())
}

fn metadata(session: &Session) -> ObjectMeta {
    ObjectMeta {
        name: Some(owned_name(session)),
        namespace: session.namespace(),
        labels: Some(labels(session)),
        owner_references: owner_reference(session).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// The workspace pod. Non-root, every capability dropped, the runtime's default seccomp
/// profile, and no service-account token: the workspace runs code its users type.
pub fn pod(session: &Session, config: &Config) -> Pod {
    let spec = &session.spec;
    let name = session.name_any();
    let namespace = session.namespace().unwrap_or_default();

    let mut env = vec![
        env_var("HUDDLE_SESSION_ID", &name),
        env_var("HUDDLE_SESSION_NAMESPACE", &namespace),
        env_var(
            "HUDDLE_AGENT_ADDR",
            &format!("0.0.0.0:{}", names::AGENT_PORT),
        ),
        env_var("HUDDLE_WORKSPACE", WORKSPACE_PATH),
        env_var("HOME", WORKSPACE_PATH),
    ];
    if let Some(url) = config.restore_url_for(&namespace, &name) {
        env.push(env_var("HUDDLE_RESTORE_URL", &url));
    }
    if config.token_key.is_some() {
        // From the session's Secret, never a literal: whoever may read pods may not read keys.
        env.push(EnvVar {
            name: "HUDDLE_TOKEN_KEY".to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: owned_name(session),
                    key: TOKEN_KEY_SECRET_KEY.to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
        if config.ice_servers.is_some() {
            env.push(EnvVar {
                name: "HUDDLE_ICE_SERVERS".to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: owned_name(session),
                        key: ICE_SERVERS_SECRET_KEY.to_owned(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
    }
    // The agent seeds an empty workspace from the template (git clone or inline files); the
    // spec's JSON form is what it parses. Serializing plain strings cannot fail.
    if let Some(template) = &spec.template
        && let Ok(json) = serde_json::to_string(template)
    {
        env.push(env_var("HUDDLE_TEMPLATE", &json));
    }
    env.extend(spec.env.iter().cloned());

    let mut ports = vec![ContainerPort {
        name: Some(names::AGENT_PORT_NAME.to_owned()),
        container_port: i32::from(names::AGENT_PORT),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }];
    // A session may declare the agent's own port (to forward the agent itself); it is listed
    // once, as the agent's: a duplicate makes the API server refuse the apply.
    ports.extend(declared_ports(session).map(|port| ContainerPort {
        container_port: port.port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }));

    let health = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(names::AGENT_HEALTH_PATH.to_owned()),
            port: IntOrString::String(names::AGENT_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };

    let workspace_volume = match &spec.storage {
        Some(_) => Volume {
            name: "workspace".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: owned_name(session),
                read_only: None,
            }),
            ..Volume::default()
        },
        None => Volume {
            name: "workspace".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    };

    let container = Container {
        name: "agent".to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| config.agent_image.clone()),
        ),
        image_pull_policy: Some(config.agent_image_pull_policy.clone()),
        env: Some(env),
        ports: Some(ports),
        // Readiness gates "Running": the agent answers only once it has restored the
        // workspace. Liveness restarts an agent that stops answering.
        readiness_probe: Some(health(1, 3)),
        liveness_probe: Some(health(10, 3)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "workspace".to_owned(),
            mount_path: WORKSPACE_PATH.to_owned(),
            ..VolumeMount::default()
        }]),
        working_dir: Some(WORKSPACE_PATH.to_owned()),
        ..Container::default()
    };

    let pod_spec = PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        restart_policy: Some("Always".to_owned()),
        termination_grace_period_seconds: Some(10),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(WORKSPACE_UID),
            run_as_group: Some(WORKSPACE_UID),
            fs_group: Some(WORKSPACE_UID),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![workspace_volume]),
        ..PodSpec::default()
    };

    let mut meta = metadata(session);
    meta.annotations = Some(BTreeMap::from([(
        SPEC_HASH_ANNOTATION.to_owned(),
        spec_hash(&pod_spec),
    )]));
    Pod {
        metadata: meta,
        spec: Some(pod_spec),
        status: None,
    }
}

/// The hash recorded in [`SPEC_HASH_ANNOTATION`].
pub fn spec_hash(spec: &PodSpec) -> String {
    // Serializing a PodSpec cannot fail: it is plain data with string keys.
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The hash a live pod was created from, if it carries one.
pub fn live_spec_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(SPEC_HASH_ANNOTATION)
        .map(String::as_str)
}

/// The session's declared ports, without the agent's own port (always exposed, once).
fn declared_ports(session: &Session) -> impl Iterator<Item = &huddle_crds::session::SessionPort> {
    session
        .spec
        .ports
        .iter()
        .filter(|port| port.port != i32::from(names::AGENT_PORT))
}

/// The session's Service: the agent port and every forwarded port, selecting the session's
/// pod. The gateway reaches the agent through it.
pub fn service(session: &Session) -> Service {
    let mut ports = vec![ServicePort {
        name: Some(names::AGENT_PORT_NAME.to_owned()),
        port: i32::from(names::AGENT_PORT),
        target_port: Some(IntOrString::String(names::AGENT_PORT_NAME.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }];
    ports.extend(declared_ports(session).map(|port| ServicePort {
        name: Some(format!("port-{}", port.port)),
        port: port.port,
        target_port: Some(IntOrString::Int(port.port)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }));
    let selector = labels(session)
        .into_iter()
        .filter(|(key, _)| key == names::SESSION_LABEL || key == names::APP_COMPONENT_LABEL)
        .collect();
    Service {
        metadata: metadata(session),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The workspace's volume claim, when the session asks for storage.
pub fn volume_claim(session: &Session) -> Option<PersistentVolumeClaim> {
    let storage = session.spec.storage.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: metadata(session),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}

/// The key in the session's Secret that holds its signing key.
pub const TOKEN_KEY_SECRET_KEY: &str = "token-key";

/// The key in the session's Secret that holds the ICE servers for voice.
pub const ICE_SERVERS_SECRET_KEY: &str = "ice-servers";

/// The session's Secret: under [`TOKEN_KEY_SECRET_KEY`], the text form of its own signing key,
/// derived from the master key by `huddle_protocol::token::session_key`, which the gateway
/// calls too. The pod reads it into `HUDDLE_TOKEN_KEY`; the master key never leaves the
/// operator. With ICE servers configured, they are under [`ICE_SERVERS_SECRET_KEY`] (TURN
/// credentials are secrets too).
pub fn token_secret(
    session: &Session,
    master: &huddle_protocol::token::TokenKey,
    ice_servers: Option<&str>,
) -> Secret {
    let (key, _) = huddle_protocol::token::session_key(master, &session.name_any());
    let mut data = BTreeMap::from([(
        TOKEN_KEY_SECRET_KEY.to_owned(),
        ByteString(key.into_bytes()),
    )]);
    if let Some(servers) = ice_servers {
        data.insert(
            ICE_SERVERS_SECRET_KEY.to_owned(),
            ByteString(servers.as_bytes().to_vec()),
        );
    }
    Secret {
        metadata: metadata(session),
        type_: Some("Opaque".to_owned()),
        // `data`, not the write-only `stringData`: what is applied is what is stored, so a
        // repeated apply changes nothing (and wakes no watch).
        data: Some(data),
        ..Secret::default()
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use huddle_crds::session::{SessionPort, SessionSpec, StorageSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn session(spec: SessionSpec) -> Session {
        let mut session = Session::new("s1", spec);
        session.metadata.namespace = Some("team".into());
        session.metadata.uid = Some("uid-1".into());
        session
    }

    fn config() -> Config {
        Config::parse_from([
            "huddle-operator",
            "--agent-image",
            "agent:1",
            "--restore-url",
            "http://gw/{namespace}/{name}",
        ])
    }

    #[test]
    fn the_session_key_comes_from_its_own_secret() {
        let session = session(SessionSpec::default());
        // Without a master key: no key at all.
        let env = pod(&session, &config()).spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert!(env.iter().all(|e| e.name != "HUDDLE_TOKEN_KEY"));

        let mut config = config();
        config.token_key = Some("m".repeat(32));
        let master = config.master_key().unwrap().unwrap();
        let env = pod(&session, &config).spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(
            secret_ref(&env, "HUDDLE_TOKEN_KEY"),
            ("s1-workspace", TOKEN_KEY_SECRET_KEY)
        );

        let secret = token_secret(&session, &master, None);
        assert_eq!(secret.metadata.name.as_deref(), Some("s1-workspace"));
        assert_eq!(secret.metadata.labels.as_ref(), Some(&labels(&session)));
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Session", "uid-1", Some(true))
        );
        assert_eq!(secret.string_data, None);
        let data = secret.data.unwrap();
        assert_eq!(data.len(), 1);
        let text = String::from_utf8(data[TOKEN_KEY_SECRET_KEY].0.clone()).unwrap();
        assert_eq!(text, huddle_protocol::token::session_key(&master, "s1").0);
        assert_ne!(text, "m".repeat(32));
        // Another session's Secret holds another key.
        let other = token_secret(&Session::new("s2", SessionSpec::default()), &master, None);
        assert_ne!(
            other.data.unwrap()[TOKEN_KEY_SECRET_KEY].0,
            text.into_bytes()
        );
    }

    #[test]
    fn pod_is_locked_down() {
        let pod = pod(&session(SessionSpec::default()), &config());
        let spec = pod.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        let pod_security = spec.security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(WORKSPACE_UID));
        let container = &spec.containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            security.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let probe = container.readiness_probe.as_ref().unwrap();
        assert_eq!(
            probe.http_get.as_ref().unwrap().path.as_deref(),
            Some(names::AGENT_HEALTH_PATH)
        );
    }

    #[test]
    fn pod_is_owned_by_its_session_and_tells_the_agent_who_it_is() {
        let pod = pod(&session(SessionSpec::default()), &config());
        assert_eq!(pod.metadata.name.as_deref(), Some("s1-workspace"));
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Session", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("HUDDLE_SESSION_ID").as_deref(), Some("s1"));
        assert_eq!(
            value("HUDDLE_RESTORE_URL").as_deref(),
            Some("http://gw/team/s1")
        );
    }

    #[test]
    fn template_is_handed_to_the_agent() {
        use huddle_crds::session::WorkspaceTemplate;
        let with_template = session(SessionSpec {
            template: Some(WorkspaceTemplate {
                git: None,
                files: Some(BTreeMap::from([("README.md".into(), "hi".into())])),
            }),
            ..SessionSpec::default()
        });
        let env = pod(&with_template, &config()).spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let template = env.iter().find(|e| e.name == "HUDDLE_TEMPLATE").unwrap();
        assert_eq!(
            template.value.as_deref(),
            Some(r#"{"files":{"README.md":"hi"}}"#)
        );
    }

    #[test]
    fn image_comes_from_spec_or_config() {
        let default = pod(&session(SessionSpec::default()), &config());
        assert_eq!(
            default.spec.unwrap().containers[0].image.as_deref(),
            Some("agent:1")
        );
        let custom = pod(
            &session(SessionSpec {
                image: Some("mine:2".into()),
                ..SessionSpec::default()
            }),
            &config(),
        );
        assert_eq!(
            custom.spec.unwrap().containers[0].image.as_deref(),
            Some("mine:2")
        );
    }

    #[test]
    fn spec_change_changes_hash() {
        let a = pod(&session(SessionSpec::default()), &config());
        let b = pod(
            &session(SessionSpec {
                image: Some("other:1".into()),
                ..SessionSpec::default()
            }),
            &config(),
        );
        assert_ne!(live_spec_hash(&a), live_spec_hash(&b));
        assert_eq!(
            live_spec_hash(&a),
            live_spec_hash(&pod(&session(SessionSpec::default()), &config()))
        );
    }

    #[test]
    fn service_exposes_agent_and_declared_ports() {
        let declared = |port| SessionPort {
            port,
            visibility: Default::default(),
            name: None,
        };
        // The agent's own port declared too: listed once, as the agent's.
        let with_ports = session(SessionSpec {
            ports: vec![declared(3000), declared(i32::from(names::AGENT_PORT))],
            ..SessionSpec::default()
        });
        let container_ports: Vec<i32> = pod(&with_ports, &config()).spec.unwrap().containers[0]
            .ports
            .clone()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(container_ports, vec![i32::from(names::AGENT_PORT), 3000]);
        let svc = service(&with_ports);
        let spec = svc.spec.unwrap();
        let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![i32::from(names::AGENT_PORT), 3000]);
        assert_eq!(
            spec.selector
                .unwrap()
                .get(names::SESSION_LABEL)
                .map(String::as_str),
            Some("s1")
        );
    }

    #[test]
    fn storage_makes_a_claim_and_mounts_it() {
        let with_storage = session(SessionSpec {
            storage: Some(StorageSpec {
                size: Quantity("1Gi".into()),
                storage_class_name: Some("fast".into()),
            }),
            ..SessionSpec::default()
        });
        let claim = volume_claim(&with_storage).unwrap();
        assert_eq!(
            claim.spec.unwrap().storage_class_name.as_deref(),
            Some("fast")
        );
        let volumes = pod(&with_storage, &config()).spec.unwrap().volumes.unwrap();
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "s1-workspace"
        );
        assert!(volume_claim(&session(SessionSpec::default())).is_none());
    }

    /// The Secret and key that env var `name` is read from; it is never a literal in the spec.
    fn secret_ref<'a>(env: &'a [EnvVar], name: &str) -> (&'a str, &'a str) {
        let var = env.iter().find(|e| e.name == name).unwrap();
        assert_eq!(
            var.value, None,
            "{name} must never be a literal in the pod spec"
        );
        let selector = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        (selector.name.as_str(), selector.key.as_str())
    }

    #[test]
    fn ice_servers_reach_the_pod_through_its_secret_only() {
        let session = session(SessionSpec::default());
        let mut config = config();
        config.token_key = Some("m".repeat(32));
        config.ice_servers = Some(
            r#"[{"urls":["turn:turn.example:3478"],"username":"u","credential":"c"}]"#.to_owned(),
        );
        let master = config.master_key().unwrap().unwrap();
        let env = pod(&session, &config).spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(
            secret_ref(&env, "HUDDLE_ICE_SERVERS"),
            ("s1-workspace", ICE_SERVERS_SECRET_KEY)
        );
        let secret = token_secret(&session, &master, config.ice_servers.as_deref());
        let data = secret.data.unwrap();
        assert_eq!(
            data[ICE_SERVERS_SECRET_KEY].0,
            config.ice_servers.clone().unwrap().into_bytes()
        );
        // Without ICE servers, neither the variable nor the key.
        let env = pod(&session, &{
            let mut c = config.clone();
            c.ice_servers = None;
            c
        })
        .spec
        .unwrap()
        .containers[0]
            .env
            .clone()
            .unwrap();
        assert!(env.iter().all(|e| e.name != "HUDDLE_ICE_SERVERS"));
    }
}
