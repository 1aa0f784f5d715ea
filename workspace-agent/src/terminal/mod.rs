//! Shared terminals: one real PTY per terminal, seen by every participant of the session.
//!
//! Why it is built this way (see "Collaboration protocol" in `DESIGN.md`):
//! - input is written whole and in the order the server receives it, so one writer thread
//!   drains one queue ([`Terminal::write`]);
//! - a late joiner gets the screen and ~500 lines of scrollback rendered from a server-side
//!   terminal emulator (`vt100`), never a raw replay of everything the shell ever printed
//!   ([`Terminal::subscribe`], [`Snapshot`]);
//! - each viewer reads from a bounded broadcast queue; one that falls behind is handed a fresh
//!   snapshot instead of the bytes it missed, so it never stalls the PTY or the other viewers
//!   ([`Subscription::next`]).
//!
//! Who may type or resize is decided by the caller (the WebSocket layer), not here.

mod config;
mod error;
mod io_threads;
mod registry;
mod shared;
mod snapshot;
mod subscription;
// `terminal::terminal`: the module is named for the one type it holds, like its siblings.
#[allow(clippy::module_inception)]
mod terminal;

pub use config::{MAX_DIMENSION, TerminalConfig, TerminalSize, default_shell};
pub use error::TerminalError;
pub use registry::{TerminalId, TerminalInfo, Terminals};
pub use snapshot::Snapshot;
pub use subscription::{Subscription, TerminalOutput};
pub use terminal::Terminal;

#[cfg(test)]
mod tests;
