//! The workspace's files: a safe view of the folder a session shares.
//!
//! - [`path`]: [`WorkspacePath`], a validated `/`-separated relative path (no `..`, no NUL, ...);
//! - [`workspace`]: [`Workspace`], the canonical root and [`Workspace::resolve`], which also
//!   refuses symbolic links that lead outside the root;
//! - [`content`]: [`classify`], text vs binary decided from the bytes;
//! - [`tree`]: [`Workspace::list_tree`], the bounded, sorted listing the UI shows;
//! - [`ops`]: create, delete, rename/move, read and write (writes are atomic);
//! - [`watch`]: the disk watcher, which turns inotify noise into discrete [`FileEvent`]s so that
//!   changes made in the terminal (a `git checkout`, a build) reach the UI like UI changes do.
//!
//! The module is role-agnostic: the caller decides who may do what (viewers change nothing, only
//! the owner deletes non-empty folders). What it guarantees is that no path given to it reaches
//! outside the workspace root.

pub mod content;
pub mod error;
mod hidden;
pub mod ops;
pub mod path;
pub mod tree;
pub mod watch;
pub mod workspace;

#[cfg(test)]
mod tests;

pub use content::{Content, TEXT_LIMIT, classify};
pub use error::FileError;
pub use ops::TRANSFER_LIMIT;
pub use path::{MAX_NAME_BYTES, MAX_PATH_BYTES, WorkspacePath};
pub use tree::{Entry, EntryKind, MAX_TREE_ENTRIES, Tree};
pub use watch::{FileEvent, WatchGuard, watch};
pub use workspace::Workspace;
