//! The gateway's container runtime end to end: agents as containers through podman's Docker
//! API, reached through the proxy at their own container addresses, hibernated and restored.
//! Needs `HUDDLE_TEST_DOCKER_HOST` (set by `scripts/test`, see `tests/podman/podman.sh`).

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result};
use huddle_test_harness::poll_until;
use reqwest::Method;
use serde_json::json;
use support::{Created, Gateway, Options, recv_type, send_json};

fn docker_options() -> Result<Options> {
    let host = std::env::var("HUDDLE_TEST_DOCKER_HOST").context(
        "HUDDLE_TEST_DOCKER_HOST is not set: run inside the test cluster with podman up \
         (scripts/test does; or tests/cluster/cluster.sh up, then \
         tests/cluster/cluster.sh exec -- bash tests/podman/podman.sh up and \
         eval \"$(bash tests/podman/podman.sh env)\")",
    )?;
    let image = std::env::var("HUDDLE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "localhost/huddle-agent:dev".to_owned());
    Ok(Options {
        extra: vec![
            "--runtime=docker".into(),
            format!("--docker-host={host}"),
            format!("--agent-image={image}"),
        ],
        ..Options::default()
    })
}

#[tokio::test]
async fn container_sessions_are_proxied_hibernated_and_restored() -> Result<()> {
    let gateway = Gateway::start("gateway-docker", docker_options()?).await?;
    let created = gateway
        .create(json!({"files": {"README.md": "hello\n"}}))
        .await?;
    let (id, owner) = (created.id.clone(), Created::token(&created.owner_link));
    gateway.wait_ready(&id, &owner).await?;

    // Edits through the gateway land in the container's bind-mounted workspace.
    let (mut ws, _) = gateway.join(&id, &owner, "tab").await?;
    let (rev, text) = support::open_document(&mut ws, "README.md").await?;
    assert_eq!(text, "hello\n");
    send_json(
        &mut ws,
        json!({"type": "op", "file": "README.md", "base_rev": rev, "seq": 1, "op": [6, "from a container\n"]}),
    )
    .await?;
    let ack = recv_type(&mut ws, "op").await?;
    drop(ws);

    let response = gateway
        .client(&[])
        .post(gateway.url(&format!("/api/sessions/{id}/hibernate")))
        .bearer_auth(&owner)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "hibernate: {}",
        response.text().await?
    );
    assert!(!gateway.data.join("workspaces").join(&id).exists());

    // A visit starts a new container, which gets the snapshot pushed in.
    let (status, _) = gateway
        .api(
            Method::POST,
            &format!("/api/sessions/{id}/wake"),
            &owner,
            None,
        )
        .await?;
    assert_eq!(status, 202);
    poll_until(
        "the woken container answers",
        Duration::from_secs(60),
        || {
            let gateway = &gateway;
            let (id, owner) = (&id, &owner);
            async move { Ok(gateway.wait_ready(id, owner).await.ok()) }
        },
    )
    .await?;
    let (mut ws, _) = gateway.join(&id, &owner, "tab-2").await?;
    let (restored_rev, restored) = support::open_document(&mut ws, "README.md").await?;
    assert_eq!(restored, "hello\nfrom a container\n");
    assert_eq!(Some(restored_rev), ack["rev"].as_u64());

    let (status, _) = gateway
        .api(Method::DELETE, &format!("/api/sessions/{id}"), &owner, None)
        .await?;
    assert_eq!(status, 204);
    Ok(())
}
