//! Shared by the agent's tests (`tests/voice.rs`, `tests/collaboration.rs`) and the voice
//! benchmark (`benches/voice_sfu.rs`): a real agent on loopback, signed participant tokens, and a Rust
//! WebRTC client that joins voice over the agent's WebSocket the way the browser does.
//!
//! Each user of this module uses part of it, hence `#[allow(dead_code)]` where it is declared.

pub mod media;
pub mod voice_client;

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use huddle_agent::app::{AppState, Settings};
use huddle_agent::voice::VoiceConfig;
use huddle_protocol::Role;
use huddle_protocol::messages::ServerMessage;
use huddle_protocol::token::{Claims, TokenKey};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub const KEY: [u8; 32] = [42; 32];
pub const SESSION: &str = "voice";
/// How long any single expected thing may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running agent; its workspace (if it is in this process) is removed when this is dropped.
pub struct Agent {
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Agent {
    /// An agent running elsewhere (another process), listening on `addr`.
    pub fn at(addr: SocketAddr) -> Self {
        Self { addr, _dir: None }
    }
}

/// Starts an agent on 127.0.0.1 with `voice` (loopback only unless it says otherwise).
pub async fn start_agent(voice: VoiceConfig) -> Result<Agent> {
    let dir = tempfile::tempdir()?;
    let state = AppState::start_with_voice(
        Settings {
            session_id: SESSION.into(),
            workspace: dir.path().to_path_buf(),
            key: TokenKey::new(KEY)?,
            shell: Some("/bin/sh".into()),
            restore: None,
        },
        voice,
    )
    .await?;
    Ok(Agent {
        addr: serve(state).await?,
        _dir: Some(dir),
    })
}

/// Serves the agent's routes for `state` on a fresh 127.0.0.1 port, in the background, until
/// the test process ends; returns the address.
pub async fn serve(state: AppState) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(huddle_agent::serve(
        listener,
        huddle_agent::http::router(state),
        std::future::pending(),
    ));
    Ok(addr)
}

/// Sends the agent's and webrtc's logs to the test output when `RUST_LOG` is set.
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Participant `index`'s name; their user id is [`user_id`].
pub fn name(index: u8) -> String {
    format!("p{index}")
}

pub fn user_id(index: u8) -> String {
    format!("uid-{}", name(index))
}

/// The participant a user id belongs to.
pub fn index_of(user_id: &str) -> Option<u8> {
    user_id.strip_prefix("uid-p")?.parse().ok()
}

/// The next protocol message on an agent WebSocket (or its read half), skipping control
/// frames; a close, or nothing within `wait`, is an error.
pub async fn next_server_message<S>(stream: &mut S, wait: Duration) -> Result<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(wait, stream.next())
            .await
            .context("no message from the agent")?
            .context("the agent closed the connection")??;
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Close(frame) => bail!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// A token for participant `index`.
pub fn token(index: u8, role: Role) -> String {
    signed_token(SESSION, &name(index), &user_id(index), role)
}

/// A token for `session` naming `name` with user id `uid`, valid for an hour.
pub fn signed_token(session: &str, name: &str, uid: &str, role: Role) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    TokenKey::new(KEY)
        .map(|key| {
            key.sign(&Claims {
                sid: session.into(),
                name: name.into(),
                role,
                exp: now + 3600,
                uid: uid.into(),
            })
        })
        .unwrap_or_default()
}
