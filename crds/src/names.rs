//! Names that more than one part of Huddle relies on: label keys and values, the agent's port
//! and health path.
//!
//! The operator writes these onto the objects it owns, the gateway and the tests select by them,
//! and the agent serves on them. Change one here and every side changes with it.

/// The Kubernetes API group of Huddle's custom resources.
pub const API_GROUP: &str = "huddle.dev";

/// Recommended label: the application's name. Its value on every Huddle object is [`APP_NAME`].
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";
/// Recommended label: which part of the application an object belongs to.
pub const APP_COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Recommended label: the tool that manages an object. Its value is [`OPERATOR_NAME`].
pub const APP_MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The name of the `Session` an object (pod, service, volume claim) belongs to.
pub const SESSION_LABEL: &str = "huddle.dev/session";

/// Value of [`APP_NAME_LABEL`] on everything Huddle creates.
pub const APP_NAME: &str = "huddle";
/// Value of [`APP_COMPONENT_LABEL`] on a session's pod and service.
pub const AGENT_COMPONENT: &str = "workspace-agent";
/// The operator's name: the value of [`APP_MANAGED_BY_LABEL`] and its server-side-apply field
/// manager.
pub const OPERATOR_NAME: &str = "huddle-operator";

/// The port the workspace agent listens on inside the session pod.
pub const AGENT_PORT: u16 = 8080;
/// The name of [`AGENT_PORT`] on the pod and the service.
pub const AGENT_PORT_NAME: &str = "http";
/// The agent's liveness and readiness path; it answers 200 once the agent serves.
pub const AGENT_HEALTH_PATH: &str = "/healthz";

/// Set on a Session by the gateway once a snapshot of it is durably stored (`<snapshot id>:<sha256>`);
/// the operator reports it as the `StatePersisted` condition.
pub const SNAPSHOT_ANNOTATION: &str = "huddle.dev/snapshot";

/// Set on a Session by the gateway when it puts the session to sleep (`Idle`, `MaxLifetime`,
/// `Requested`); the operator copies it to `status.stopReason`.
pub const STOP_REASON_ANNOTATION: &str = "huddle.dev/stop-reason";

/// Name of every object a session owns (pod, service, volume claim, secret):
/// `<session>-workspace`.
pub fn workspace_object_name(session: &str) -> String {
    format!("{session}-workspace")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label value, or the name part of a label key: at most 63 characters, alphanumeric at
    /// both ends, `-`, `_`, `.` allowed inside.
    fn is_label_name(name: &str) -> bool {
        name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }

    /// A label key: an optional DNS-subdomain prefix and `/`, then a label name.
    fn is_label_key(key: &str) -> bool {
        match key.split_once('/') {
            None => is_label_name(key),
            Some((prefix, name)) => {
                prefix.len() <= 253
                    && prefix.split('.').all(|part| {
                        part.starts_with(|c: char| c.is_ascii_alphanumeric())
                            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                            && part
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    })
                    && is_label_name(name)
            }
        }
    }

    #[test]
    fn label_keys_are_valid() {
        for key in [
            APP_NAME_LABEL,
            APP_COMPONENT_LABEL,
            APP_MANAGED_BY_LABEL,
            SESSION_LABEL,
        ] {
            assert!(is_label_key(key), "{key} is not a valid label key");
        }
    }

    #[test]
    fn label_values_are_valid() {
        for value in [APP_NAME, AGENT_COMPONENT, OPERATOR_NAME] {
            assert!(is_label_name(value), "{value} is not a valid label value");
        }
    }

    #[test]
    fn session_label_is_in_our_api_group() {
        assert!(SESSION_LABEL.starts_with(&format!("{API_GROUP}/")));
    }

    #[test]
    fn health_path_is_absolute() {
        assert!(AGENT_HEALTH_PATH.starts_with('/'));
    }
}
