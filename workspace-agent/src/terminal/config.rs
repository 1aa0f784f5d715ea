//! What to run in a new terminal and at which size, with the defaults a session wants.

use std::path::{Path, PathBuf};

use super::error::TerminalError;

/// Largest accepted number of rows or columns. Far beyond any real screen; it bounds the
/// emulator's memory (rows x cols cells, plus scrollback) against a hostile resize.
pub const MAX_DIMENSION: u16 = 1000;

/// Rows and columns of a terminal, validated to `1..=MAX_DIMENSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

impl TerminalSize {
    pub fn new(rows: u16, cols: u16) -> Result<Self, TerminalError> {
        let valid = 1..=MAX_DIMENSION;
        if valid.contains(&rows) && valid.contains(&cols) {
            Ok(Self { rows, cols })
        } else {
            Err(TerminalError::InvalidSize { rows, cols })
        }
    }
}

impl Default for TerminalSize {
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

/// How to start a terminal. `TerminalConfig::default()` runs the user's shell in the agent's
/// working directory at 24x80.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// Program to run; `None` means the user's shell (see [`default_shell`]).
    pub program: Option<String>,
    pub args: Vec<String>,
    /// Working directory; `None` keeps the agent's. It must exist: portable-pty would silently
    /// fall back to `$HOME`, which for a workspace is the wrong place to be.
    pub cwd: Option<PathBuf>,
    /// Added to (or overriding) the agent's own environment.
    pub env: Vec<(String, String)>,
    pub size: TerminalSize,
    /// Lines of scrollback the server keeps for late joiners.
    pub scrollback_lines: usize,
    /// Output chunks a viewer may fall behind by before it is resynchronised with a snapshot.
    pub output_queue: usize,
    /// Output shown before the shell's own: a restored session's old scrollback, so the
    /// people who come back see what the terminal showed when it went to sleep.
    pub preamble: Option<bytes::Bytes>,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            program: None,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            size: TerminalSize::default(),
            scrollback_lines: 500,
            // A read is at most 8 KiB, so a viewer may be up to ~2 MiB behind before resync.
            output_queue: 256,
            preamble: None,
        }
    }
}

impl TerminalConfig {
    /// The program that will actually run.
    pub(crate) fn program(&self) -> String {
        self.program.clone().unwrap_or_else(default_shell)
    }
}

/// `$SHELL` when it names an existing file, else `/bin/bash`, else `/bin/sh` (present on every
/// image we run on, including minimal ones).
pub fn default_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|shell| !shell.is_empty() && Path::new(shell).is_file())
        .or_else(|| {
            let bash = "/bin/bash";
            Path::new(bash).is_file().then(|| bash.to_owned())
        })
        .unwrap_or_else(|| "/bin/sh".to_owned())
}
