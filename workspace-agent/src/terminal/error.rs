//! Everything that can go wrong with a shared terminal, as one error type the WebSocket layer
//! can turn into a message for the participant who caused it.

use std::path::PathBuf;

use super::config::MAX_DIMENSION;
use super::registry::TerminalId;

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("invalid terminal size {rows}x{cols}: rows and columns must be 1..={MAX_DIMENSION}")]
    InvalidSize { rows: u16, cols: u16 },

    // portable-pty reports `anyhow::Error`, which is not a `std::error::Error`, so it is carried
    // as a value and printed with its chain (`{:#}`).
    #[error("could not open a pty: {0:#}")]
    OpenPty(anyhow::Error),

    #[error("could not start `{program}` in the terminal: {error:#}")]
    Spawn {
        program: String,
        error: anyhow::Error,
    },

    #[error("terminal working directory {0:?} is not a directory")]
    BadWorkingDirectory(PathBuf),

    #[error("could not resize the pty: {0:#}")]
    Resize(anyhow::Error),

    #[error("could not start a terminal thread")]
    Thread(#[source] std::io::Error),

    #[error("the terminal's shell has exited (code {code})")]
    Exited { code: u32 },

    #[error("the terminal no longer accepts input")]
    InputClosed,

    #[error("the terminal is not reading its input; try again later")]
    InputBacklogged,

    #[error("at most {max} terminals may be open in a session")]
    TooManyTerminals { max: usize },

    #[error("no terminal with id {0}")]
    NotFound(TerminalId),
}
