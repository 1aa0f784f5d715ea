//! The running agent's shared state: the room, the workspace and the token key, built once at
//! start-up and handed to every handler.

use huddle_protocol::Role;
use huddle_protocol::token::{Claims, TokenKey};
use std::path::PathBuf;
use std::sync::Arc;

use crate::files::{self, WatchGuard, Workspace};
use crate::room::Room;
use crate::snapshot::{Restored, SnapshotError, read_archive};
use crate::terminal::{TerminalConfig, TerminalSize, Terminals};
use crate::voice::VoiceConfig;

/// How long the token the agent fetches its snapshot with is valid.
const RESTORE_TOKEN_TTL_SECS: u64 = 300;

/// Most terminals one session may have open.
pub const MAX_TERMINALS: usize = 8;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub room: Room,
    pub workspace: Workspace,
    pub key: TokenKey,
    pub session_id: Arc<str>,
    /// Voice settings; browsers read their ICE servers from `GET /voice/config`.
    pub voice: Arc<VoiceConfig>,
    /// Keeps the disk watcher running as long as the agent serves.
    _watch: Arc<WatchGuard>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("workspace {path}: {source}")]
    Workspace {
        path: PathBuf,
        #[source]
        source: files::FileError,
    },
    #[error("restoring the snapshot: {0}")]
    Restore(#[from] SnapshotError),
    #[error("a terminal from the snapshot: {0}")]
    Terminal(#[from] crate::terminal::TerminalError),
}

/// Where a session's previous state comes from.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// An HTTP(S) URL (the gateway's snapshot store). 404 means there is nothing to restore.
    Url(String),
    /// A snapshot archive on disk.
    File(PathBuf),
}

/// What the state is built from.
pub struct Settings {
    pub session_id: String,
    pub workspace: PathBuf,
    pub key: TokenKey,
    /// The shell terminals run; the user's default when unset.
    pub shell: Option<String>,
    /// A snapshot to restore into the (empty) workspace before serving.
    pub restore: Option<RestoreFrom>,
}

impl AppState {
    /// Opens the workspace, starts its watcher and the room, with voice on loopback only
    /// ([`VoiceConfig::default`]). Must run inside a Tokio runtime.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        Self::start_with_voice(settings, VoiceConfig::default()).await
    }

    /// Like [`AppState::start`], with the given voice settings.
    pub async fn start_with_voice(
        settings: Settings,
        voice: VoiceConfig,
    ) -> Result<Self, StartError> {
        let workspace_error = |source| StartError::Workspace {
            path: settings.workspace.clone(),
            source,
        };
        let workspace = Workspace::open(&settings.workspace).map_err(workspace_error)?;
        // Restore before the watcher starts, so the restored files are the starting tree and
        // not a burst of "created" events.
        let restored = match &settings.restore {
            Some(from) => restore(from, &workspace, &settings.key, &settings.session_id).await?,
            None => Restored::default(),
        };
        let (watch, events) = files::watch(&workspace).await.map_err(workspace_error)?;
        let template = TerminalConfig {
            program: settings.shell.clone(),
            cwd: Some(workspace.root().to_path_buf()),
            env: vec![
                ("HOME".into(), workspace.root().display().to_string()),
                ("TERM".into(), "xterm-256color".into()),
            ],
            ..TerminalConfig::default()
        };
        let terminals = Terminals::new(MAX_TERMINALS);
        for terminal in &restored.terminals {
            terminals.create(restored_terminal(&template, terminal)?)?;
        }
        let room = Room::start(
            &settings.session_id,
            settings.key.clone(),
            workspace.clone(),
            events,
            terminals,
            template,
            restored.documents,
            voice.clone(),
        );
        Ok(Self {
            room,
            workspace,
            key: settings.key,
            session_id: settings.session_id.into(),
            voice: Arc::new(voice),
            _watch: Arc::new(watch),
        })
    }
}

/// Fetches and unpacks a snapshot into `workspace`.
///
/// The gateway's snapshot store serves a session's snapshot only to a holder of that session's
/// key: the agent proves it with a short owner token it signs itself.
async fn restore(
    from: &RestoreFrom,
    workspace: &Workspace,
    key: &TokenKey,
    session_id: &str,
) -> Result<Restored, SnapshotError> {
    let bytes = match from {
        RestoreFrom::File(path) => tokio::fs::read(path).await?,
        RestoreFrom::Url(url) => {
            let token = key.sign(&Claims::new(
                session_id,
                "huddle-agent",
                "agent",
                Role::Owner,
                RESTORE_TOKEN_TTL_SECS,
            ));
            // `Client::new()` panics without a trust store; an image without one must fail
            // this restore with a message, not crash the agent.
            let client = reqwest::Client::builder()
                .build()
                .map_err(|error| SnapshotError::Fetch(error.to_string()))?;
            let response = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|error| SnapshotError::Fetch(error.to_string()))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                tracing::info!(%url, "no snapshot to restore; starting fresh");
                return Ok(Restored::default());
            }
            let response = response
                .error_for_status()
                .map_err(|error| SnapshotError::Fetch(error.to_string()))?;
            response
                .bytes()
                .await
                .map_err(|error| SnapshotError::Fetch(error.to_string()))?
                .to_vec()
        }
    };
    let workspace = workspace.clone();
    let restored = tokio::task::spawn_blocking(move || read_archive(bytes.as_slice(), &workspace))
        .await
        .map_err(|error| SnapshotError::Fetch(error.to_string()))??;
    tracing::info!(
        documents = restored.documents.len(),
        terminals = restored.terminals.len(),
        "restored the session from its snapshot"
    );
    Ok(restored)
}

/// A terminal to stand in for one from a snapshot: the old screen and scrollback above a fresh
/// shell. The processes are gone; what they printed is not.
pub fn restored_terminal(
    template: &TerminalConfig,
    terminal: &crate::snapshot::TerminalState,
) -> Result<TerminalConfig, crate::terminal::TerminalError> {
    // Lines need CR LF for the emulator.
    let preamble = format!(
        "{}\r\n[huddle: session restored]\r\n",
        terminal.scrollback.trim_end().replace('\n', "\r\n")
    );
    Ok(TerminalConfig {
        size: TerminalSize::new(terminal.rows, terminal.cols)?,
        preamble: Some(preamble.into()),
        ..template.clone()
    })
}
