//! What a snapshot says about itself, besides the files.

use serde::{Deserialize, Serialize};

/// The archive format this agent writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub session_id: String,
    pub documents: Vec<DocumentEntry>,
    pub terminals: Vec<TerminalEntry>,
}

/// An open document as listed in the manifest; its text is `documents/<index>.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEntry {
    pub path: String,
    pub rev: u64,
    /// `(client_id, last seq, revision it produced)` per client.
    pub clients: Vec<(String, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalEntry {
    pub id: u32,
    pub cols: u16,
    pub rows: u16,
}

/// An open document with its text, as the room hands it over and gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentState {
    pub path: String,
    pub rev: u64,
    pub text: String,
    pub clients: Vec<(String, u64, u64)>,
}

/// A terminal with its screen and scrollback as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalState {
    pub id: u32,
    pub cols: u16,
    pub rows: u16,
    pub scrollback: String,
}

/// What a restore brought back, besides the files it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    pub documents: Vec<DocumentState>,
    pub terminals: Vec<TerminalState>,
}
