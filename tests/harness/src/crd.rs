//! Installing the Session CRD into the test cluster.

use anyhow::Result;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

use crate::poll_until;

/// Applies the Session CRD and waits until the API server serves it. The CRD is read from
/// exactly the YAML the chart ships, so a chart/CRD mismatch fails here.
pub async fn install_crd(client: &kube::Client) -> Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/huddle/crds/sessions.yaml"
    );
    let crd: CustomResourceDefinition = serde_norway::from_str(&std::fs::read_to_string(path)?)?;
    crds.patch(
        "sessions.huddle.dev",
        &PatchParams::apply("huddle-e2e").force(),
        &Patch::Apply(crd),
    )
    .await?;
    poll_until(
        "the Session CRD to be established",
        Duration::from_secs(30),
        || async {
            let crd = crds.get("sessions.huddle.dev").await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}
