//! One shared terminal: a shell on a real PTY, its input queue, and handles to watch it.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::mpsc;

use super::config::{TerminalConfig, TerminalSize};
use super::error::TerminalError;
use super::io_threads;
use super::shared::Shared;
use super::snapshot::{self, Snapshot};
use super::subscription::Subscription;

/// Inputs queued ahead of the writer thread. When the shell stops reading, the PTY's buffer
/// fills, the writer blocks, and `write` waits here rather than buffering without bound. Big
/// enough that fast typing and pastes never meet the limit (`try_write`, used by the room,
/// refuses input beyond it instead of dropping it silently); a shell that stopped reading does.
const INPUT_QUEUE: usize = 4096;

/// Terminal type announced to programs; xterm.js understands what xterm-256color promises.
const TERM: &str = "xterm-256color";

pub struct Terminal {
    shared: Arc<Shared>,
    input: mpsc::Sender<Bytes>,
    // `MasterPty` is `Send` but not `Sync`; the mutex makes `Terminal` shareable. Locked only
    // inside the `shared` lock (in `resize`), so the two can never deadlock.
    master: Mutex<Box<dyn MasterPty + Send>>,
    killer: Mutex<Box<dyn ChildKiller + Send + Sync>>,
    program: String,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("program", &self.program)
            .field("size", &self.size())
            .field("exit_code", &self.exit_code())
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// Opens a PTY and starts `config`'s program on it. Needs no async runtime.
    pub fn spawn(config: TerminalConfig) -> Result<Self, TerminalError> {
        // The fields are public, so the size is checked again here.
        let size = TerminalSize::new(config.size.rows, config.size.cols)?;
        let program = config.program();
        let pty = native_pty_system()
            .openpty(pty_size(size))
            .map_err(TerminalError::OpenPty)?;
        let child = pty
            .slave
            .spawn_command(command(&config, &program)?)
            .map_err(|error| TerminalError::Spawn {
                program: program.clone(),
                error,
            })?;
        // Our copy of the slave side must go, or the reader would never see end of file.
        drop(pty.slave);
        let mut killer = child.clone_killer();

        let shared = Arc::new(Shared::new(
            size,
            config.scrollback_lines,
            config.output_queue,
        ));
        if let Some(preamble) = &config.preamble {
            shared.output(preamble);
        }
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        let started = (|| {
            let reader = pty
                .master
                .try_clone_reader()
                .map_err(TerminalError::OpenPty)?;
            let writer = pty.master.take_writer().map_err(TerminalError::OpenPty)?;
            let (drained, drained_rx) = std::sync::mpsc::channel();
            io_threads::spawn_reader(reader, Arc::clone(&shared), drained)
                .map_err(TerminalError::Thread)?;
            io_threads::spawn_writer(writer, input_rx).map_err(TerminalError::Thread)?;
            io_threads::spawn_waiter(child, Arc::clone(&shared), drained_rx)
                .map_err(TerminalError::Thread)
        })();
        if let Err(error) = started {
            // Do not leave a shell running that nobody can reach.
            let _ = killer.kill();
            return Err(error);
        }
        tracing::info!(%program, rows = size.rows, cols = size.cols, "terminal started");
        Ok(Self {
            shared,
            input,
            master: Mutex::new(pty.master),
            killer: Mutex::new(killer),
            program,
        })
    }

    /// Queues `bytes` as input. Inputs are written whole, in the order `write` calls complete
    /// their queueing; callers that need server-arrival order call it from one task per
    /// connection, in arrival order.
    pub async fn write(&self, bytes: impl Into<Bytes>) -> Result<(), TerminalError> {
        if let Some(code) = self.exit_code() {
            return Err(TerminalError::Exited { code });
        }
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(());
        }
        self.input
            .send(bytes)
            .await
            .map_err(|_| TerminalError::InputClosed)
    }

    /// Queues `bytes` without waiting, for callers that must never stall (a room that handles
    /// every participant's messages in one task). Fails if the shell has stopped reading and
    /// [`INPUT_QUEUE`] inputs are already waiting, rather than buffer without bound.
    pub fn try_write(&self, bytes: impl Into<Bytes>) -> Result<(), TerminalError> {
        if let Some(code) = self.exit_code() {
            return Err(TerminalError::Exited { code });
        }
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(());
        }
        self.input.try_send(bytes).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => TerminalError::InputBacklogged,
            mpsc::error::TrySendError::Closed(_) => TerminalError::InputClosed,
        })
    }

    /// Resizes the PTY (the shell gets SIGWINCH) and the server's emulator; viewers receive a
    /// [`super::TerminalOutput::Resync`] at the new size, in order with the output.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), TerminalError> {
        let size = TerminalSize::new(rows, cols)?;
        let mut state = self.shared.lock();
        let (current_rows, current_cols) = state.parser.screen().size();
        if (current_rows.get(), current_cols.get()) == (rows, cols) {
            return Ok(());
        }
        self.master
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resize(pty_size(size))
            .map_err(TerminalError::Resize)?;
        self.shared.resized(&mut state, size);
        Ok(())
    }

    /// A snapshot of the terminal now (scrollback, screen, cursor) and the output that follows
    /// it, taken together so nothing is missed or shown twice.
    pub fn subscribe(&self) -> (Snapshot, Subscription) {
        Subscription::new(Arc::clone(&self.shared), self.shared.start())
    }

    /// Plain text of the scrollback and the screen, for the session snapshot.
    pub fn scrollback_text(&self) -> String {
        snapshot::plain_text(self.shared.lock().parser.screen())
    }

    pub fn size(&self) -> TerminalSize {
        self.shared.size()
    }

    /// The shell's exit code, once it has exited and its last output was read.
    pub fn exit_code(&self) -> Option<u32> {
        self.shared.lock().exit_code
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// Hangs up the shell (SIGHUP, as closing a terminal window does). Viewers then receive
    /// [`super::TerminalOutput::Exited`].
    pub fn kill(&self) {
        // Once reaped, the pid may belong to another process: do not signal it.
        if self.exit_code().is_some() {
            return;
        }
        let mut killer = self.killer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = killer.kill() {
            tracing::debug!(%error, "could not hang up the terminal's shell");
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Variables of the agent's environment that its terminals never inherit.
pub const SECRET_ENV: &[&str] = &["HUDDLE_TOKEN_KEY"];

fn command(config: &TerminalConfig, program: &str) -> Result<CommandBuilder, TerminalError> {
    let mut command = CommandBuilder::new(program);
    command.args(&config.args);
    // Without a cwd portable-pty starts in $HOME; a workspace terminal starts where the agent
    // runs (the workspace root) unless told otherwise.
    let cwd = match &config.cwd {
        Some(cwd) => cwd.clone(),
        None => {
            std::env::current_dir().map_err(|_| TerminalError::BadWorkingDirectory(".".into()))?
        }
    };
    if !cwd.is_dir() {
        return Err(TerminalError::BadWorkingDirectory(cwd));
    }
    command.cwd(cwd);
    // The session's signing key stays with the agent: whoever types in the terminal could
    // otherwise mint an owner token for themselves.
    for secret in SECRET_ENV {
        command.env_remove(secret);
    }
    command.env("TERM", TERM);
    for (key, value) in &config.env {
        if !SECRET_ENV.contains(&key.as_str()) {
            command.env(key, value);
        }
    }
    Ok(command)
}

fn pty_size(size: TerminalSize) -> PtySize {
    PtySize {
        rows: size.rows,
        cols: size.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}
