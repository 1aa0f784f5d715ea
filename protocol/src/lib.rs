//! Huddle's wire types, defined once and imported by every side that speaks them: the agent,
//! the gateway and the tests. The browser's TypeScript mirrors [`messages`].
//!
//! - [`messages`]: browser <-> agent WebSocket messages, versioned.
//! - [`token`]: the signed participant tokens the gateway issues and the agent checks.

pub mod messages;
pub mod token;

use serde::{Deserialize, Serialize};

/// What a participant may do in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created the session: everything an editor can, plus deleting non-empty folders.
    Owner,
    /// Edits files and types in terminals.
    Editor,
    /// Reads only.
    Viewer,
}

impl Role {
    /// May change files and type into terminals.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Owner | Self::Editor)
    }

    /// May delete a folder that still has something in it.
    pub fn can_delete_non_empty(self) -> bool {
        self == Self::Owner
    }
}
