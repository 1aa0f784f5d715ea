//! Proves the test cluster is a real one: the scheduler places a Deployment's pod on the real
//! kubelet, containerd runs the locally built agent image, the pod gets an address on the CNI
//! bridge that answers HTTP, and deleting the Deployment makes the controller-manager's
//! garbage collector remove its ReplicaSet and pod through owner references.

use anyhow::{Context as _, Result, ensure};
use huddle_test_harness::{TestEnv, TestNamespace, poll_until, wait_for_object_gone};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use std::time::Duration;

const APP: &str = "smoke-agent";

fn deployment(image: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": APP },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": APP } },
            "template": {
                "metadata": { "labels": { "app": APP } },
                "spec": {
                    "containers": [{
                        "name": "agent",
                        "image": image,
                        // Images are imported into containerd; there is no registry.
                        "imagePullPolicy": "Never",
                        "ports": [{ "containerPort": 8080 }],
                        "readinessProbe": {
                            "httpGet": { "path": "/healthz", "port": 8080 },
                            "periodSeconds": 1
                        },
                        "securityContext": {
                            "runAsNonRoot": true,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                            "seccompProfile": { "type": "RuntimeDefault" }
                        }
                    }]
                }
            }
        }
    }))?)
}

/// The pod once it is Running and Ready with an address.
fn ready_pod_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let running = status.phase.as_deref() == Some("Running");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True");
    if running && ready {
        status.pod_ip.clone()
    } else {
        None
    }
}

#[tokio::test]
async fn deployment_runs_answers_and_is_garbage_collected() -> Result<()> {
    let env = TestEnv::from_env()?;
    let client = env.kube_client().await?;
    let namespace = TestNamespace::create(&client, "smoke").await?;
    let ns = namespace.name();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let by_app = ListParams::default().labels(&format!("app={APP}"));

    deployments
        .create(&PostParams::default(), &deployment(&env.agent_image)?)
        .await
        .context("creating the Deployment")?;

    let (pod_name, pod_ip) = poll_until(
        "the pod to be Running and Ready",
        Duration::from_secs(90),
        || async {
            let list = pods.list(&by_app).await?;
            Ok(list
                .items
                .iter()
                .find_map(|pod| Some((pod.name_any(), ready_pod_ip(pod)?))))
        },
    )
    .await?;
    let pod = pods.get(&pod_name).await?;
    ensure!(
        pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref())
            == Some(env.node_name.as_str()),
        "pod was not scheduled onto the test node {}",
        env.node_name
    );

    // The pod answers over HTTP on its own address, from outside the pod.
    let http = env.http_client()?;
    let health = http
        .get(format!("http://{pod_ip}:8080/healthz"))
        .send()
        .await?;
    ensure!(
        health.status().is_success(),
        "GET /healthz on the pod answered {}",
        health.status()
    );
    ensure!(health.text().await? == "ok", "unexpected /healthz body");
    let banner = http
        .get(format!("http://{pod_ip}:8080/version"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        banner.starts_with("huddle-agent "),
        "unexpected banner from the pod: {banner:?}"
    );

    // The pod belongs to the Deployment only through the ReplicaSet's owner references, so
    // its removal below is the garbage collector's work, not the Deployment controller's.
    let replica_set = replica_sets
        .list(&by_app)
        .await?
        .items
        .into_iter()
        .next()
        .context("no ReplicaSet")?;
    let pod_owner = pod.owner_references().first().context("pod has no owner")?;
    ensure!(
        pod_owner.kind == "ReplicaSet" && pod_owner.uid == replica_set.uid().unwrap_or_default()
    );
    let rs_owner = replica_set
        .owner_references()
        .first()
        .context("ReplicaSet has no owner")?;
    ensure!(rs_owner.kind == "Deployment" && rs_owner.name == APP);

    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    deployments.delete(APP, &background).await?;
    wait_for_object_gone(&deployments, APP, Duration::from_secs(30)).await?;
    wait_for_object_gone(
        &replica_sets,
        &replica_set.name_any(),
        Duration::from_secs(60),
    )
    .await?;
    wait_for_object_gone(&pods, &pod_name, Duration::from_secs(60)).await?;
    ensure!(
        pods.list(&by_app).await?.items.is_empty(),
        "pods left after the Deployment was deleted"
    );
    // Gone from the API means the kubelet stopped it: nothing answers at its address any more.
    let after = http
        .get(format!("http://{pod_ip}:8080/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    ensure!(
        after.is_err(),
        "the deleted pod's address still answers: {after:?}"
    );

    namespace.delete().await
}
