//! Idle sessions are saved to the database and stopped, and a visit brings them back exactly as
//! they were. Real gateway, real agents, real SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result};
use huddle_test_harness::poll_until;
use reqwest::Method;
use serde_json::json;
use support::{Created, Gateway, Options, TempPostgres, recv_type, send_json};

/// Edits a new file through the gateway and uploads a binary one; returns the document's
/// revision and text, and the binary's bytes.
async fn make_some_work(
    gateway: &Gateway,
    id: &str,
    owner: &str,
) -> Result<(u64, String, Vec<u8>)> {
    let (mut ws, _) = gateway.join(id, owner, "tab-1").await?;
    send_json(
        &mut ws,
        json!({"type": "create_file", "path": "src/main.rs"}),
    )
    .await?;
    recv_type(&mut ws, "file_changed").await?;
    let (mut rev, _) = support::open_document(&mut ws, "src/main.rs").await?;
    let edits = ["fn main() {\n", "    println!(\"héllo 👋\");\n", "}\n"];
    let mut length = 0usize;
    for (seq, text) in edits.iter().enumerate() {
        let op = if length == 0 {
            json!([text])
        } else {
            json!([length, text])
        };
        send_json(
            &mut ws,
            json!({"type": "op", "file": "src/main.rs", "base_rev": rev, "seq": seq + 1, "op": op}),
        )
        .await?;
        let ack = recv_type(&mut ws, "op").await?;
        rev = ack["rev"].as_u64().context("rev")?;
        length += text.chars().count();
    }
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let response = gateway
        .client(&[])
        .put(gateway.url(&format!("/s/{id}/files/data/blob.bin")))
        .bearer_auth(owner)
        .body(binary.clone())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
    Ok((rev, edits.concat(), binary))
}

async fn state_of(gateway: &Gateway, id: &str, token: &str) -> Result<String> {
    let (status, body) = gateway
        .api(Method::GET, &format!("/api/sessions/{id}"), token, None)
        .await?;
    anyhow::ensure!(status == 200, "{status}: {body}");
    Ok(body["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// After a visit wakes it, the session has the same document (text and revision) and files.
async fn check_restored(
    gateway: &Gateway,
    id: &str,
    owner: &str,
    rev: u64,
    text: &str,
    binary: &[u8],
) -> Result<()> {
    // The first visit wakes it and shows the waking page.
    let response = gateway
        .client(&[])
        .get(gateway.url(&format!("/s/{id}/")))
        .bearer_auth(owner)
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    assert!(response.text().await?.contains("Waking up"));
    gateway.wait_ready(id, owner).await?;
    let (mut ws, _) = gateway.join(id, owner, "tab-2").await?;
    let (restored_rev, restored_text) = support::open_document(&mut ws, "src/main.rs").await?;
    assert_eq!(restored_text, text);
    assert_eq!(restored_rev, rev);
    let download = gateway
        .client(&[])
        .get(gateway.url(&format!("/s/{id}/files/data/blob.bin")))
        .bearer_auth(owner)
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(download.as_ref(), binary);
    Ok(())
}

#[tokio::test]
async fn idle_session_is_saved_stopped_and_restored_on_visit() -> Result<()> {
    let gateway = Gateway::start("gateway-gc", Options::default()).await?;
    let created = gateway.create(json!({"idleTimeout": "10s"})).await?;
    let (id, owner) = (created.id.clone(), Created::token(&created.owner_link));
    gateway.wait_ready(&id, &owner).await?;
    let (rev, text, binary) = make_some_work(&gateway, &id, &owner).await?;
    let workspace = gateway.data.join("workspaces").join(&id);
    assert!(workspace.join("data/blob.bin").exists());

    // Everyone left; ten idle seconds later the sweep saves and stops it.
    poll_until(
        "the idle session hibernates",
        Duration::from_secs(60),
        || {
            let gateway = &gateway;
            let (id, owner) = (&id, &owner);
            async move { Ok((state_of(gateway, id, owner).await? == "hibernated").then_some(())) }
        },
    )
    .await
    .with_context(|| gateway.process.log_tail(60))?;
    // The session reads as hibernated as soon as that is recorded, before its agent has finished
    // stopping (it gets up to 10 s to save); the files go right after.
    poll_until(
        "the workspace is removed after the snapshot",
        Duration::from_secs(15),
        || {
            let gone = !workspace.exists();
            async move { Ok(gone.then_some(())) }
        },
    )
    .await?;

    check_restored(&gateway, &id, &owner, rev, &text, &binary).await
}

#[tokio::test]
async fn postgres_down_during_the_sweep_loses_nothing() -> Result<()> {
    let mut postgres = TempPostgres::start()?;
    let gateway = Gateway::start(
        "gateway-gc-postgres",
        Options {
            database_url: Some(postgres.url()),
            ..Options::default()
        },
    )
    .await?;
    let created = gateway.create(json!({"idleTimeout": "10s"})).await?;
    let (id, owner) = (created.id.clone(), Created::token(&created.owner_link));
    gateway.wait_ready(&id, &owner).await?;
    let (rev, text, binary) = make_some_work(&gateway, &id, &owner).await?;

    // The database goes away before the session is due; the sweeps that follow cannot store a
    // snapshot, so the session must keep running with its files.
    postgres.stop()?;
    tokio::time::sleep(Duration::from_secs(18)).await;
    let (mut ws, _) = gateway.join(&id, &owner, "tab-3").await?;
    let (live_rev, live_text) = support::open_document(&mut ws, "src/main.rs").await?;
    assert_eq!((live_rev, live_text.as_str()), (rev, text.as_str()));
    drop(ws);
    assert!(
        gateway
            .data
            .join("workspaces")
            .join(&id)
            .join("data/blob.bin")
            .exists()
    );

    // The database comes back: the next sweeps save and stop it, and a visit restores it.
    postgres.resume()?;
    poll_until(
        "the session hibernates once the database is back",
        Duration::from_secs(60),
        || {
            let gateway = &gateway;
            let (id, owner) = (&id, &owner);
            async move {
                Ok(
                    (state_of(gateway, id, owner).await.ok().as_deref() == Some("hibernated"))
                        .then_some(()),
                )
            }
        },
    )
    .await
    .with_context(|| gateway.process.log_tail(60))?;
    check_restored(&gateway, &id, &owner, rev, &text, &binary).await
}

#[tokio::test]
async fn people_are_warned_before_the_lifetime_ends_and_then_it_is_saved() -> Result<()> {
    // The tests' gateway warns 3 s ahead (`--stop-warning=3s`).
    let gateway = Gateway::start("gateway-lifetime", Options::default()).await?;
    let created = gateway
        .create(json!({"maxLifetime": "15s", "idleTimeout": "1h"}))
        .await?;
    let (id, owner) = (created.id.clone(), Created::token(&created.owner_link));
    gateway.wait_ready(&id, &owner).await?;
    let (mut ws, _) = gateway.join(&id, &owner, "tab").await?;
    send_json(&mut ws, json!({"type": "create_file", "path": "kept.txt"})).await?;
    recv_type(&mut ws, "file_changed").await?;

    // Someone is connected and active, and still: a warning, then the stop.
    let notice = recv_type(&mut ws, "notice").await?;
    assert_eq!(notice["kind"], "max_lifetime");
    let at = notice["at"].as_u64().context("at")?;
    let now = huddle_gateway::auth::now_unix();
    assert!(at >= now && at <= now + 5, "stop at {at}, now {now}");
    poll_until(
        "the session is stopped at its lifetime",
        Duration::from_secs(30),
        || {
            let gateway = &gateway;
            let (id, owner) = (&id, &owner);
            async move { Ok((state_of(gateway, id, owner).await? == "hibernated").then_some(())) }
        },
    )
    .await
    .with_context(|| gateway.process.log_tail(40))?;
    // Its files were saved first.
    let (status, _) = gateway
        .api(Method::GET, "/api/sessions", support::ADMIN, None)
        .await?;
    assert_eq!(status, 200);
    let store = huddle_gateway::store::Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        gateway.data.join("huddle.db").display()
    ))
    .await?;
    let id_parsed = huddle_gateway::store::parse_session_id(&id)?;
    let (_, snapshot) = store
        .latest_snapshot(&id_parsed)
        .await?
        .context("no snapshot")?;
    let listing = String::from_utf8_lossy(&snapshot);
    assert!(listing.contains("kept.txt"), "the snapshot lacks kept.txt");
    Ok(())
}
