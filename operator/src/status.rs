//! What a Session's status should say, given what the operator sees of its pod. A pure
//! function of its inputs, following the Kubernetes API conventions for conditions: a fixed
//! set of types in a fixed order, `lastTransitionTime` changing only when a condition's status
//! does, and `message` taken from the first condition that is not true.

use huddle_crds::session::{PortStatus, Session, SessionPhase, SessionState, SessionStatus};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use crate::config::Config;

/// Condition types, in the order they appear in status.
pub const POD_SCHEDULED: &str = "PodScheduled";
pub const AGENT_READY: &str = "AgentReady";
pub const READY: &str = "Ready";
pub const STATE_PERSISTED: &str = "StatePersisted";

/// Annotation the gateway sets on a Session once its snapshot is durably stored; its value
/// identifies the snapshot.
pub const SNAPSHOT_ANNOTATION: &str = "huddle.dev/snapshot";
/// Annotation the gateway sets to say why it hibernated a session (`Idle`, `MaxLifetime`).
pub const STOP_REASON_ANNOTATION: &str = "huddle.dev/stop-reason";

/// Container waiting reasons that a restart will not fix: the spec must change.
const FATAL_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// An agent that crashed this many times in a row is reported Failed (it keeps being
/// restarted with back-off in case the cause is outside the spec).
const CRASH_LOOP_FAILED_AFTER: i32 = 3;

/// One condition as computed now, before transition times are settled.
struct Observed {
    type_: &'static str,
    status: &'static str,
    reason: String,
    message: String,
}

impl Observed {
    fn new(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: if status { "True" } else { "False" },
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The status the operator should write for `session`, whose pod is `pod` (if any).
pub fn desired_status(
    session: &Session,
    pod: Option<&Pod>,
    config: &Config,
    now: Timestamp,
) -> SessionStatus {
    let previous = session.status.clone().unwrap_or_default();
    let name = session.name_any();
    let generation = session.metadata.generation;
    let live_pod = pod.filter(|pod| pod.metadata.deletion_timestamp.is_none());

    let (phase, mut observed) = match session.spec.state {
        SessionState::Running => running(live_pod),
        SessionState::Hibernated => hibernated(pod),
    };
    observed.push(state_persisted(session));

    let conditions: Vec<Condition> = observed
        .into_iter()
        .map(|condition| settle(condition, &previous.conditions, generation, now))
        .collect();
    let message = conditions
        .iter()
        .find(|condition| condition.status == "False")
        .map(|condition| format!("{}: {}", condition.reason, condition.message));

    let stop_reason = match session.spec.state {
        SessionState::Hibernated => Some(
            session
                .annotations()
                .get(STOP_REASON_ANNOTATION)
                .cloned()
                .unwrap_or_else(|| "UserRequest".to_owned()),
        ),
        SessionState::Running => previous.stop_reason.clone(),
    };

    let running_pod_ip = live_pod
        .filter(|_| phase == SessionPhase::Running || phase == SessionPhase::Starting)
        .and_then(|pod| pod.status.as_ref()?.pod_ip.clone());

    SessionStatus {
        phase: Some(phase),
        conditions,
        message,
        stop_reason,
        observed_generation: generation,
        pod_ip: running_pod_ip,
        url: Some(config.session_url(&name)),
        ports: session
            .spec
            .ports
            .iter()
            .map(|port| PortStatus {
                port: port.port,
                name: port.name.clone(),
                visibility: port.visibility,
                url: config.port_url(&name, port.port),
            })
            .collect(),
        // Owned by the gateway; never written by the operator.
        participants: None,
        last_activity_time: None,
    }
}

fn running(pod: Option<&Pod>) -> (SessionPhase, Vec<Observed>) {
    let Some(pod) = pod else {
        return (
            SessionPhase::Pending,
            vec![
                Observed::new(
                    POD_SCHEDULED,
                    false,
                    "PodNotCreated",
                    "creating the workspace pod",
                ),
                Observed::new(
                    AGENT_READY,
                    false,
                    "PodNotCreated",
                    "waiting for the workspace pod",
                ),
                Observed::new(
                    READY,
                    false,
                    "PodNotCreated",
                    "waiting for the workspace pod",
                ),
            ],
        );
    };
    let status = pod.status.clone().unwrap_or_default();
    let pod_condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|condition| condition.type_ == type_)
    };

    let scheduled = pod_condition("PodScheduled");
    if scheduled.is_none_or(|condition| condition.status != "True") {
        // Unschedulable is reported, not failed: capacity may appear.
        let (reason, message) = match scheduled {
            Some(condition) => (
                condition
                    .reason
                    .clone()
                    .unwrap_or_else(|| "Pending".to_owned()),
                condition
                    .message
                    .clone()
                    .unwrap_or_else(|| "waiting for the scheduler".to_owned()),
            ),
            None => ("Pending".to_owned(), "waiting for the scheduler".to_owned()),
        };
        return (
            SessionPhase::Pending,
            vec![
                Observed::new(POD_SCHEDULED, false, &reason, message),
                Observed::new(
                    AGENT_READY,
                    false,
                    "PodNotScheduled",
                    "waiting for the pod to be scheduled",
                ),
                Observed::new(
                    READY,
                    false,
                    "PodNotScheduled",
                    "waiting for the pod to be scheduled",
                ),
            ],
        );
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.node_name.clone())
        .unwrap_or_default();
    let scheduled = Observed::new(
        POD_SCHEDULED,
        true,
        "Scheduled",
        format!("scheduled on {node}"),
    );

    let ready = pod_condition("Ready").is_some_and(|condition| condition.status == "True");
    if ready {
        return (
            SessionPhase::Running,
            vec![
                scheduled,
                Observed::new(
                    AGENT_READY,
                    true,
                    "AgentReady",
                    "the agent answers its health check",
                ),
                Observed::new(READY, true, "Ready", "participants can connect"),
            ],
        );
    }

    let agent = status
        .container_statuses
        .iter()
        .flatten()
        .find(|container| container.name == "agent");
    let (failed, reason, message) = agent_not_ready(agent, status.phase.as_deref());
    (
        if failed {
            SessionPhase::Failed
        } else {
            SessionPhase::Starting
        },
        vec![
            scheduled,
            Observed::new(AGENT_READY, false, &reason, message),
            Observed::new(READY, false, "AgentNotReady", "waiting for the agent"),
        ],
    )
}

/// Why the agent is not ready, and whether that needs a spec change (Failed).
fn agent_not_ready(
    agent: Option<&ContainerStatus>,
    pod_phase: Option<&str>,
) -> (bool, String, String) {
    if pod_phase == Some("Failed") {
        return (
            false,
            "PodFailed".into(),
            "the workspace pod failed; it is being replaced".into(),
        );
    }
    let Some(agent) = agent else {
        return (
            false,
            "ContainerCreating".into(),
            "starting the agent container".into(),
        );
    };
    let waiting = agent
        .state
        .as_ref()
        .and_then(|state| state.waiting.as_ref());
    if let Some(waiting) = waiting {
        let reason = waiting
            .reason
            .clone()
            .unwrap_or_else(|| "Waiting".to_owned());
        let message = waiting
            .message
            .clone()
            .unwrap_or_else(|| format!("agent container is {reason}"));
        let fatal = FATAL_WAITING_REASONS.contains(&reason.as_str())
            || (reason == "CrashLoopBackOff" && agent.restart_count >= CRASH_LOOP_FAILED_AFTER);
        return (fatal, reason, message);
    }
    if agent
        .state
        .as_ref()
        .and_then(|state| state.running.as_ref())
        .is_some()
    {
        return (
            false,
            "AgentStarting".into(),
            "the agent is starting".into(),
        );
    }
    (
        false,
        "AgentNotReady".into(),
        "the agent is not answering its health check".into(),
    )
}

fn hibernated(pod: Option<&Pod>) -> (SessionPhase, Vec<Observed>) {
    let (phase, message) = match pod {
        Some(_) => (SessionPhase::Hibernating, "removing the workspace pod"),
        None => (
            SessionPhase::Hibernated,
            "the session is hibernated; opening its URL wakes it",
        ),
    };
    (
        phase,
        vec![
            Observed::new(POD_SCHEDULED, false, "Hibernated", message),
            Observed::new(AGENT_READY, false, "Hibernated", message),
            Observed::new(READY, false, "Hibernated", message),
        ],
    )
}

fn state_persisted(session: &Session) -> Observed {
    if session.spec.storage.is_some() {
        return Observed::new(
            STATE_PERSISTED,
            true,
            "PersistentVolume",
            "the workspace lives on a persistent volume claim",
        );
    }
    match (
        session.spec.state,
        session.annotations().get(SNAPSHOT_ANNOTATION),
    ) {
        (SessionState::Hibernated, Some(snapshot)) => Observed::new(
            STATE_PERSISTED,
            true,
            "SnapshotStored",
            format!("snapshot {snapshot} is stored"),
        ),
        (SessionState::Hibernated, None) => Observed::new(
            STATE_PERSISTED,
            false,
            "NoSnapshot",
            "hibernated without a stored snapshot; the workspace will start empty",
        ),
        (SessionState::Running, _) => Observed {
            type_: STATE_PERSISTED,
            status: "Unknown",
            reason: "LiveInPod".to_owned(),
            message:
                "the workspace lives in the running pod; it is saved when the session hibernates"
                    .to_owned(),
        },
    }
}

/// Turns an observation into a condition, keeping the previous `lastTransitionTime` when the
/// status did not change.
fn settle(
    observed: Observed,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|condition| condition.type_ == observed.type_ && condition.status == observed.status)
        .map(|condition| condition.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: observed.type_.to_owned(),
        status: observed.status.to_owned(),
        reason: observed.reason,
        message: observed.message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use huddle_crds::session::SessionSpec;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, PodCondition, PodSpec, PodStatus,
    };

    fn config() -> Config {
        Config::parse_from(["huddle-operator", "--public-url", "https://h.example"])
    }

    fn session(state: SessionState) -> Session {
        let mut session = Session::new(
            "s1",
            SessionSpec {
                state,
                ..SessionSpec::default()
            },
        );
        session.metadata.generation = Some(3);
        session
    }

    fn pod(conditions: &[(&str, &str, Option<&str>)], waiting: Option<(&str, i32)>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.0.0.9".into()),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(type_, status, reason)| PodCondition {
                            type_: (*type_).into(),
                            status: (*status).into(),
                            reason: reason.map(Into::into),
                            message: Some("0/1 nodes are available".into()),
                            ..PodCondition::default()
                        })
                        .collect(),
                ),
                container_statuses: waiting.map(|(reason, restarts)| {
                    vec![ContainerStatus {
                        name: "agent".into(),
                        restart_count: restarts,
                        state: Some(ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(reason.into()),
                                message: None,
                            }),
                            ..ContainerState::default()
                        }),
                        ..ContainerStatus::default()
                    }]
                }),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn types(status: &SessionStatus) -> Vec<(&str, &str)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn no_pod_is_pending_with_ordered_conditions() {
        let status = desired_status(&session(SessionState::Running), None, &config(), now());
        assert_eq!(status.phase, Some(SessionPhase::Pending));
        assert_eq!(
            types(&status),
            vec![
                (POD_SCHEDULED, "False"),
                (AGENT_READY, "False"),
                (READY, "False"),
                (STATE_PERSISTED, "Unknown")
            ]
        );
        assert_eq!(
            status.message.as_deref(),
            Some("PodNotCreated: creating the workspace pod")
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.url.as_deref(), Some("https://h.example/s/s1/"));
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
    }

    #[test]
    fn unschedulable_is_pending_with_the_schedulers_message() {
        let pod = pod(&[("PodScheduled", "False", Some("Unschedulable"))], None);
        let status = desired_status(
            &session(SessionState::Running),
            Some(&pod),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Pending));
        assert_eq!(
            status.message.as_deref(),
            Some("Unschedulable: 0/1 nodes are available")
        );
    }

    #[test]
    fn scheduled_but_not_ready_is_starting() {
        let pod = pod(
            &[("PodScheduled", "True", None), ("Ready", "False", None)],
            Some(("ContainerCreating", 0)),
        );
        let status = desired_status(
            &session(SessionState::Running),
            Some(&pod),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Starting));
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.conditions[1].reason, "ContainerCreating");
    }

    #[test]
    fn ready_pod_is_running_with_its_ip() {
        let pod = pod(
            &[("PodScheduled", "True", None), ("Ready", "True", None)],
            None,
        );
        let status = desired_status(
            &session(SessionState::Running),
            Some(&pod),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Running));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.9"));
        assert_eq!(status.message, None);
    }

    #[test]
    fn missing_image_and_crash_loops_fail() {
        let missing = pod(
            &[("PodScheduled", "True", None)],
            Some(("ErrImageNeverPull", 0)),
        );
        let status = desired_status(
            &session(SessionState::Running),
            Some(&missing),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Failed));
        let crashing_once = pod(
            &[("PodScheduled", "True", None)],
            Some(("CrashLoopBackOff", 1)),
        );
        let status = desired_status(
            &session(SessionState::Running),
            Some(&crashing_once),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Starting));
        let crashing = pod(
            &[("PodScheduled", "True", None)],
            Some(("CrashLoopBackOff", 3)),
        );
        let status = desired_status(
            &session(SessionState::Running),
            Some(&crashing),
            &config(),
            now(),
        );
        assert_eq!(status.phase, Some(SessionPhase::Failed));
    }

    #[test]
    fn hibernating_then_hibernated() {
        let pod = pod(
            &[("PodScheduled", "True", None), ("Ready", "True", None)],
            None,
        );
        let hibernating = desired_status(
            &session(SessionState::Hibernated),
            Some(&pod),
            &config(),
            now(),
        );
        assert_eq!(hibernating.phase, Some(SessionPhase::Hibernating));
        assert_eq!(hibernating.pod_ip, None);
        assert_eq!(hibernating.stop_reason.as_deref(), Some("UserRequest"));
        let hibernated = desired_status(&session(SessionState::Hibernated), None, &config(), now());
        assert_eq!(hibernated.phase, Some(SessionPhase::Hibernated));
        assert_eq!(hibernated.conditions[3].reason, "NoSnapshot");
    }

    #[test]
    fn snapshot_annotation_marks_state_persisted() {
        let mut session = session(SessionState::Hibernated);
        session
            .annotations_mut()
            .insert(SNAPSHOT_ANNOTATION.into(), "snap-7".into());
        session
            .annotations_mut()
            .insert(STOP_REASON_ANNOTATION.into(), "Idle".into());
        let status = desired_status(&session, None, &config(), now());
        assert_eq!(status.conditions[3].status, "True");
        assert_eq!(status.stop_reason.as_deref(), Some("Idle"));
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut session = session(SessionState::Running);
        let first = desired_status(&session, None, &config(), now());
        session.status = Some(first.clone());
        let later = Timestamp::from_second(1_800_000_100).unwrap();
        let pod = pod(
            &[("PodScheduled", "True", None), ("Ready", "False", None)],
            Some(("ContainerCreating", 0)),
        );
        let second = desired_status(&session, Some(&pod), &config(), later);
        // PodScheduled flipped to True: new time. AgentReady stayed False: old time.
        assert_eq!(second.conditions[0].last_transition_time, Time(later));
        assert_eq!(second.conditions[1].last_transition_time, Time(now()));
    }
}
