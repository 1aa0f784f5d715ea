//! The reconcile function: makes a Session's owned objects match its spec, then writes what it
//! saw to the Session's status. Idempotent: it reads the world, applies what is missing, and
//! never assumes what an earlier run did, so a restarted operator converges to the same state.

use huddle_crds::names;
use huddle_crds::session::{Session, SessionPhase, SessionState, SessionStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, instrument};

use crate::context::Context;
use crate::resources;
use crate::status::{self, READY};

/// Errors a reconcile can end with; each is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Session has no namespace")]
    NoNamespace,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// A short label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoNamespace => "no_namespace",
            Self::Kube(kube::Error::Api(_)) => "api",
            Self::Kube(_) => "client",
        }
    }
}

/// While a session is on its way somewhere, look again soon even without a watch event (pod
/// probes flip without changing anything we own in a way that always wakes us).
const REQUEUE_SETTLING: Duration = Duration::from_secs(5);
/// A settled session is still looked at now and then, to repair anything missed.
const REQUEUE_SETTLED: Duration = Duration::from_secs(300);

#[instrument(skip(session, ctx), fields(session = %session.name_any(), namespace = session.namespace().unwrap_or_default()))]
pub async fn reconcile(session: Arc<Session>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = session.namespace().ok_or(Error::NoNamespace)?;
    if session.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the pod, service, Secret and
        // claim.
        return Ok(Action::await_change());
    }
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace);
    let name = resources::owned_name(&session);

    if let Some(claim) = resources::volume_claim(&session) {
        apply(
            &Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &namespace),
            &name,
            &claim,
        )
        .await?;
    }
    apply(
        &Api::<Service>::namespaced(ctx.client.clone(), &namespace),
        &name,
        &resources::service(&session),
    )
    .await?;

    // The session's key, before the pod that reads it (a pod whose secretKeyRef names a
    // missing Secret would not start). `main` refused a key that is too short.
    if let Some(master) = ctx.config.master_key().ok().flatten() {
        apply(
            &Api::<Secret>::namespaced(ctx.client.clone(), &namespace),
            &name,
            &resources::token_secret(
                &session,
                &master,
                ctx.config.ice_servers_for(&session.name_any()).as_deref(),
            ),
        )
        .await?;
    }

    let mut pod = pods.get_opt(&name).await?;
    match session.spec.state {
        SessionState::Running => {
            let desired = resources::pod(&session, &ctx.config);
            if let Some(live) = &pod {
                if replace_pod(live, &desired) {
                    delete_pod(&pods, live, "spec changed or pod failed").await?;
                    // The replacement is created once this one is gone (its deletion wakes us).
                } else if live.metadata.deletion_timestamp.is_none() {
                    // Already as desired; nothing to write.
                }
            } else {
                pod = Some(apply(&pods, &name, &desired).await?);
                info!(pod = %name, "created workspace pod");
            }
        }
        SessionState::Hibernated => {
            if let Some(live) = &pod
                && live.metadata.deletion_timestamp.is_none()
            {
                delete_pod(&pods, live, "session hibernated").await?;
            }
        }
    }

    let status = status::desired_status(&session, pod.as_ref(), &ctx.config, Timestamp::now());
    record_transition(&session, &status, &ctx).await;
    write_status(&session, &namespace, &status, &ctx).await?;

    Ok(match status.phase {
        Some(SessionPhase::Running | SessionPhase::Hibernated) => Action::requeue(REQUEUE_SETTLED),
        _ => Action::requeue(REQUEUE_SETTLING),
    })
}

/// A live pod must be replaced when it was made from another spec, or when it failed for good
/// (evicted, or its restart policy gave up), since a pod never leaves the Failed phase.
fn replace_pod(live: &Pod, desired: &Pod) -> bool {
    if live.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let failed = live.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
    failed || resources::live_spec_hash(live) != resources::live_spec_hash(desired)
}

async fn delete_pod(pods: &Api<Pod>, live: &Pod, why: &str) -> Result<(), Error> {
    // The precondition makes sure we delete the pod we looked at, not a replacement that
    // another replica created in between.
    let params = DeleteParams {
        preconditions: live.uid().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&live.name_any(), &params).await {
        Ok(_) => {
            info!(pod = %live.name_any(), why, "deleting workspace pod");
            Ok(())
        }
        Err(kube::Error::Api(response)) if response.code == 404 || response.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Server-side apply with the operator's field manager. `force` takes ownership of fields a
/// person may have edited by hand: the operator is the source of truth for what it owns.
async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K, Error>
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut object = object.clone();
    // Apply patches must carry apiVersion and kind.
    let value = serde_json::json!({
        "apiVersion": K::api_version(&Default::default()),
        "kind": K::kind(&Default::default()),
    });
    let mut body = serde_json::to_value(&object).map_err(kube::Error::SerdeError)?;
    if let (Some(body), Some(header)) = (body.as_object_mut(), value.as_object()) {
        body.extend(header.clone());
    }
    object = api
        .patch(
            name,
            &PatchParams::apply(names::OPERATOR_NAME).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(object)
}

async fn write_status(
    session: &Session,
    namespace: &str,
    status: &SessionStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if session.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api = Api::<Session>::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": "huddle.dev/v1alpha1",
        "kind": "Session",
        "status": status,
    });
    api.patch_status(
        &session.name_any(),
        &PatchParams::apply(names::OPERATOR_NAME).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Publishes an Event when the phase changes, and observes time-to-Ready for new sessions.
async fn record_transition(session: &Session, status: &SessionStatus, ctx: &Context) {
    let previous = session.status.as_ref();
    let old_phase = previous.and_then(|status| status.phase);
    let Some(new_phase) = status.phase else {
        return;
    };
    if !ctx.first_time_moving(ObjectRef::from_obj(session), old_phase, new_phase) {
        return;
    }
    // A session that never stopped and reaches Ready for the first time: the time since its
    // creation is how long a user waited for a new workspace.
    let first_ready = new_phase == SessionPhase::Running
        && previous.is_none_or(|p| p.stop_reason.is_none())
        && !previous
            .into_iter()
            .flat_map(|p| &p.conditions)
            .any(|c| c.type_ == READY && c.status == "True");
    if first_ready && let Some(created) = &session.metadata.creation_timestamp {
        let waited = Timestamp::now().duration_since(created.0);
        ctx.metrics.observe_ready(waited.as_secs_f64());
    }

    let warning = matches!(new_phase, SessionPhase::Failed)
        || status
            .conditions
            .first()
            .is_some_and(|c| c.reason == "Unschedulable");
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: new_phase.as_str().to_owned(),
        note: Some(match &status.message {
            Some(message) => format!(
                "{} → {}: {message}",
                old_phase.map_or("New", |p| p.as_str()),
                new_phase.as_str()
            ),
            None => format!(
                "{} → {}",
                old_phase.map_or("New", |p| p.as_str()),
                new_phase.as_str()
            ),
        }),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &session.object_ref(&())).await {
        // An Event is a courtesy; failing to record one must not fail the reconcile.
        tracing::warn!(%error, "could not publish event");
    }
}
