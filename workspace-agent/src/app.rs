//! The running agent's shared state: the room, the workspace and the token key, built once at
//! start-up and handed to every handler.

use huddle_protocol::token::TokenKey;
use std::path::PathBuf;
use std::sync::Arc;

use crate::files::{self, WatchGuard, Workspace};
use crate::room::Room;
use crate::terminal::{TerminalConfig, Terminals};

/// Most terminals one session may have open.
pub const MAX_TERMINALS: usize = 8;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub room: Room,
    pub workspace: Workspace,
    pub key: TokenKey,
    pub session_id: Arc<str>,
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
}

/// What the state is built from.
pub struct Settings {
    pub session_id: String,
    pub workspace: PathBuf,
    pub key: TokenKey,
    /// The shell terminals run; the user's default when unset.
    pub shell: Option<String>,
}

impl AppState {
    /// Opens the workspace, starts its watcher and the room. Must run inside a Tokio runtime.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        let workspace_error = |source| StartError::Workspace {
            path: settings.workspace.clone(),
            source,
        };
        let workspace = Workspace::open(&settings.workspace).map_err(workspace_error)?;
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
        let room = Room::start(
            &settings.session_id,
            settings.key.clone(),
            workspace.clone(),
            events,
            terminals,
            template,
        );
        Ok(Self {
            room,
            workspace,
            key: settings.key,
            session_id: settings.session_id.into(),
            _watch: Arc::new(watch),
        })
    }
}
