//! A session's state as one stream, so a hibernated session comes back as it was: a tar
//! archive holding
//!
//! - `manifest.json`: format version, session, open documents (path, revision, each client's
//!   last applied op) and terminals (size);
//! - `workspace/…`: every file of the workspace, symlinks as links (never followed);
//! - `documents/<n>.txt`: the text of each open document at its revision (authoritative over
//!   the file on disk, which may lag by the write-back debounce);
//! - `terminals/<id>.txt`: each terminal's screen and scrollback as text.
//!
//! Restoring writes the files back into an empty workspace (every path checked by
//! [`crate::files::Workspace::resolve`], so an archive cannot write outside it), reopens the
//! documents at their revisions so reconnecting clients continue without reloading and their
//! resends are still de-duplicated, and shows each terminal's old scrollback above a new shell.

mod archive;
mod manifest;

pub use archive::{read_archive, write_archive};
pub use manifest::{DocumentState, MANIFEST_VERSION, Manifest, Restored, TerminalState};

/// Snapshot or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("snapshot format {found} is not supported (this agent reads {MANIFEST_VERSION})")]
    Version { found: u32 },
    #[error("snapshot has no manifest")]
    NoManifest,
    #[error("snapshot entry {path:?} is not allowed: {reason}")]
    BadEntry { path: String, reason: String },
    #[error("fetching the snapshot: {0}")]
    Fetch(String),
}
