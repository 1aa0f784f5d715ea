//! Wake-up time: from the first request to a hibernated session until it is usable (its agent
//! answers through the gateway and a participant's WebSocket has the restored document open).
//!
//! Baseline, in the same process: a new session, from `POST /api/sessions` to the same point.
//! The difference is what restoring the snapshot costs on top of starting an agent.
//!
//! The gateway runs with its one-machine runtime (agents as processes, SQLite), so this measures
//! the gateway and agent, not a cluster's pod start (see `session_startup` for that).
//!
//!   cargo build --release -p huddle-gateway -p huddle-agent
//!   cargo bench -p huddle-e2e --bench wake_up

use anyhow::{Context as _, Result, ensure};
use futures::{SinkExt as _, StreamExt as _};
use huddle_test_harness::{Process, free_local_addr};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const DOMAIN: &str = "huddle.test";
const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const ROUNDS: usize = 10;
/// Workspace size restored on every wake: this many files of `FILE_BYTES`.
const FILES: usize = 200;
const FILE_BYTES: usize = 4096;

struct Gateway {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://{DOMAIN}:{}{path}", self.addr.port())
    }

    /// Creates a session with `FILES` files; returns its id and owner token.
    async fn create(&self) -> Result<(String, String)> {
        let files: serde_json::Map<String, Value> = (0..FILES)
            .map(|i| {
                (
                    format!("src/file{i}.txt"),
                    Value::String("x".repeat(FILE_BYTES)),
                )
            })
            .collect();
        let response = self
            .client
            .post(self.url("/api/sessions"))
            .bearer_auth(ADMIN)
            .json(&json!({"files": files}))
            .send()
            .await?;
        ensure!(response.status() == 201, "create: {}", response.status());
        let created: Value = response.json().await?;
        let id = created["id"].as_str().context("id")?.to_owned();
        let token = created["ownerLink"]
            .as_str()
            .and_then(|l| l.split("token=").nth(1))
            .context("link")?
            .to_owned();
        Ok((id, token))
    }

    /// Polls until the session is usable: the agent answers, a WebSocket joins and opens a file.
    async fn until_usable(&self, id: &str, token: &str) -> Result<()> {
        loop {
            let response = self
                .client
                .get(self.url(&format!("/s/{id}/version")))
                .bearer_auth(token)
                .send()
                .await?;
            if response.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut request =
            format!("ws://{}/s/{id}/ws?token={token}", self.addr).into_client_request()?;
        request
            .headers_mut()
            .insert("host", format!("{DOMAIN}:{}", self.addr.port()).parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("opening the WebSocket")?;
        let join = json!({"type": "join", "version": 1, "token": token, "client_id": "bench"});
        ws.send(Message::Text(join.to_string().into()))
            .await
            .context("sending join")?;
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message? {
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == "welcome" {
                    let open = json!({"type": "open", "file": "src/file0.txt"});
                    ws.send(Message::Text(open.to_string().into()))
                        .await
                        .context("sending open")?;
                }
                ensure!(value["type"] != "error", "the agent answered {value}");
                if value["type"] == "document" {
                    ensure!(
                        value["text"].as_str().map(str::len) == Some(FILE_BYTES),
                        "wrong text"
                    );
                    return Ok(());
                }
            }
        }
        anyhow::bail!("the WebSocket closed")
    }

    async fn hibernate(&self, id: &str, token: &str) -> Result<()> {
        let response = self
            .client
            .post(self.url(&format!("/api/sessions/{id}/hibernate")))
            .bearer_auth(token)
            .send()
            .await?;
        ensure!(
            response.status() == 200,
            "hibernate: {}",
            response.text().await?
        );
        Ok(())
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let median = samples[samples.len() / 2].as_secs_f64() * 1000.0;
    let p90 = samples[samples.len() * 9 / 10].as_secs_f64() * 1000.0;
    println!(
        "{label:<44} median {median:7.1} ms   p90 {p90:7.1} ms   (n={})",
        samples.len()
    );
    median
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr = free_local_addr()?;
    let internal = free_local_addr()?;
    let data = tempfile::tempdir()?;
    let args = vec![
        "--runtime=process".to_owned(),
        format!("--listen={addr}"),
        format!("--internal-listen={internal}"),
        format!("--public-url=http://{DOMAIN}:{}", addr.port()),
        format!("--data-dir={}", data.path().display()),
        format!("--admin-token={ADMIN}"),
        format!(
            "--upgrade-socket={}",
            data.path().join("upgrade.sock").display()
        ),
    ];
    let _process = Process::start("huddle-gateway", "bench-wake-up", &args)?;
    let gateway = Gateway {
        addr,
        client: reqwest::Client::builder()
            .no_proxy()
            .resolve(DOMAIN, addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    for _ in 0..200 {
        if gateway
            .client
            .get(gateway.url("/healthz"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("==> wake-up: {ROUNDS} rounds, workspace of {FILES} files x {FILE_BYTES} bytes\n");
    let mut fresh = Vec::new();
    let mut woken = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (id, token) = gateway.create().await?;
        gateway.until_usable(&id, &token).await?;
        fresh.push(started.elapsed());

        gateway.hibernate(&id, &token).await?;
        let started = Instant::now();
        gateway.until_usable(&id, &token).await?;
        woken.push(started.elapsed());
    }
    let baseline = summary("new session: create → usable (baseline)", fresh);
    let wake = summary("hibernated: first request → usable", woken);
    println!("\nratio wake / new: {:.2}", wake / baseline);
    Ok(())
}
