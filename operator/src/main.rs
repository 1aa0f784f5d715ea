//! `huddle-operator`: the Kubernetes operator of Huddle.
//!
//! It will run a kube-runtime `Controller<Session>` that owns each session's Pod and Service
//! (and PersistentVolumeClaim when asked), writes the Session's status and conditions, and
//! records Events. That controller arrives with the `Session` custom resource. Until then the
//! operator does the first thing it will always do: connect to the cluster the way it will run
//! (in-cluster service account, or the local kubeconfig) and report the API server's version,
//! so that its image, RBAC and cluster wiring can be checked end to end.

mod telemetry;

use anyhow::Context as _;
use huddle_crds::names;
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();

    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration found (in-cluster or kubeconfig)")?;
    let version = client
        .apiserver_version()
        .await
        .context("could not reach the Kubernetes API server")?;
    info!(
        operator = names::OPERATOR_NAME,
        operator_version = env!("CARGO_PKG_VERSION"),
        server_version = %version.git_version,
        server_platform = %version.platform,
        "connected to the Kubernetes API server"
    );
    Ok(())
}
