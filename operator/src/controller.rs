//! Wires the reconcile function into a kube-runtime `Controller<Session>` that also watches
//! the pods, services, key Secrets and claims Sessions own, so a change to any of them (a pod
//! becoming ready, crashing, or being deleted by hand) reconciles its Session.

use futures::StreamExt as _;
use huddle_crds::names;
use huddle_crds::session::Session;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use std::future::Future;
use std::sync::Arc;
use tracing::{debug, warn};

use crate::context::Context;
use crate::reconcile::{Error, reconcile};

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let (sessions, pods, services, secrets, claims) = match &ctx.config.watch_namespace {
        Some(namespace) => (
            Api::<Session>::namespaced(client.clone(), namespace),
            Api::<Pod>::namespaced(client.clone(), namespace),
            Api::<Service>::namespaced(client.clone(), namespace),
            Api::<Secret>::namespaced(client.clone(), namespace),
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace),
        ),
        None => (
            Api::<Session>::all(client.clone()),
            Api::<Pod>::all(client.clone()),
            Api::<Service>::all(client.clone()),
            Api::<Secret>::all(client.clone()),
            Api::<PersistentVolumeClaim>::all(client.clone()),
        ),
    };
    // Only our own objects: a cluster's other pods are none of our business, and watching them
    // would cost memory in every replica.
    let ours = watcher::Config::default().labels(&format!(
        "{}={}",
        names::APP_MANAGED_BY_LABEL,
        names::OPERATOR_NAME
    ));

    let mut controller = Controller::new(sessions, watcher::Config::default())
        .owns(pods, ours.clone())
        .owns(services, ours.clone());
    // Secrets only when there are keys to hand out: then a deleted or edited key Secret is put
    // back at once, and an operator without a key needs no access to Secrets at all.
    if ctx.config.token_key.is_some() {
        controller = controller.owns(secrets, ours.clone());
    }
    controller
        .owns(claims, ours)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_and_count, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(session = %object, "reconciled"),
                Err(error) => debug!(%error, "reconcile did not run"),
            }
        })
        .await;
}

async fn reconcile_and_count(session: Arc<Session>, ctx: Arc<Context>) -> Result<Action, Error> {
    let object = ObjectRef::from_obj(session.as_ref());
    let action = reconcile(session, ctx.clone()).await?;
    ctx.succeeded(&object);
    Ok(action)
}

/// Retries a failed reconcile with exponential back-off per Session.
fn error_policy(session: Arc<Session>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.kind());
    let wait = ctx.backoff(ObjectRef::from_obj(session.as_ref()));
    warn!(session = %ObjectRef::from_obj(session.as_ref()), %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
