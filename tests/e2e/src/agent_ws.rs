//! A participant's WebSocket to a session's agent, reached through a gateway: join, send, and
//! wait for a message of a given type; and whether the agent answers at all.

use anyhow::{Context as _, Result, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a join may wait for its welcome.
const WELCOME: Duration = Duration::from_secs(30);

/// Whether `response` (to `GET /s/<id>/version` through a gateway) is the agent's banner: the
/// session's agent is up and reached.
pub async fn is_agent_banner(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) if r.status() == 200 => r
            .text()
            .await
            .unwrap_or_default()
            .starts_with("huddle-agent"),
        _ => false,
    }
}

/// Joins session `id` through the gateway at `addr`, sending `host` as the Host header.
pub async fn join(
    addr: SocketAddr,
    host: &str,
    id: &str,
    token: &str,
    client_id: &str,
) -> Result<Ws> {
    let mut request = format!("ws://{addr}/s/{id}/ws?token={token}").into_client_request()?;
    request.headers_mut().insert("host", host.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    send(
        &mut ws,
        json!({"type": "join", "version": 1, "token": token, "client_id": client_id}),
    )
    .await?;
    recv(&mut ws, "welcome", WELCOME).await?;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, value: Value) -> Result<()> {
    ws.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

/// The next message of type `kind` (others are skipped; an `error` fails).
pub async fn recv(ws: &mut Ws, kind: &str, timeout: Duration) -> Result<Value> {
    recv_where(ws, kind, timeout, |_| true).await
}

/// The next message of type `kind` that `matches`.
pub async fn recv_where(
    ws: &mut Ws,
    kind: &str,
    timeout: Duration,
    matches: impl Fn(&Value) -> bool,
) -> Result<Value> {
    tokio::time::timeout(timeout, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text)?;
                    if value["type"] == kind && matches(&value) {
                        return Ok(value);
                    }
                    ensure!(value["type"] != "error", "the agent answered {value}");
                }
                Some(Ok(_)) => {}
                other => bail!("the WebSocket ended: {other:?}"),
            }
        }
    })
    .await
    .with_context(|| format!("no {kind:?} within {timeout:?}"))?
}
