//! The disk watcher: discrete file events for changes made by anyone, UI or terminal.
//!
//! inotify reports low-level noise (open, modify, close-write, half renames, one event per
//! write). The watcher turns it into what a file tree needs:
//!
//! - [`batch`]: raw notify events become *hints*, "this path may have changed", collected
//!   until the disk has been quiet for [`QUIET`] (or [`MAX_DELAY`] has passed);
//! - [`reconcile`]: a model of the tree (path → kind) is compared with the disk at each hinted
//!   path, and each difference becomes one [`FileEvent`]. A `git checkout` that unlinks and
//!   rewrites a file is one `Modified`; a file created and deleted within the window is nothing;
//!   events that inotify cannot give (files created in a new folder before it was watched) are
//!   found by scanning the new folder;
//! - [`backend`]: notify (inotify, one non-recursive watch per folder so `.git` is never
//!   watched) and the thread that runs the loop.
//!
//! Replaying the events in order onto the tree as it was when watching began gives the tree on
//! disk; every `Created` names a path the model did not have, every `Deleted` or `Renamed` one
//! it had.

mod backend;
pub(crate) mod batch;
pub(crate) mod reconcile;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{EntryKind, FileError, Workspace};

/// How long the disk must be quiet before a batch of changes is reported.
pub const QUIET: Duration = Duration::from_millis(75);
/// The longest a change waits while the disk never goes quiet (a long build).
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// One change in the tree. Paths are relative and `/`-separated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileEvent {
    /// A new entry. A new folder's contents follow as their own `Created` events.
    Created { path: String, kind: EntryKind },
    /// An entry and, for a folder, everything in it.
    Deleted { path: String },
    /// An entry (with its contents) now at `to`.
    Renamed { from: String, to: String },
    /// A file's contents changed.
    Modified { path: String },
}

/// Keeps the watcher running; dropping it stops it (so does dropping the receiver).
#[derive(Debug)]
pub struct WatchGuard {
    stop: Arc<AtomicBool>,
    wake: std::sync::mpsc::SyncSender<backend::Msg>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the thread if it is idle; if the queue is full it is busy and sees `stop`.
        let _ = self.wake.try_send(backend::Msg::Stop);
    }
}

/// Starts watching `workspace`. Every change on disk after this returns is reported.
pub async fn watch(
    workspace: &Workspace,
) -> Result<(WatchGuard, mpsc::Receiver<FileEvent>), FileError> {
    workspace.blocking(|ws| backend::spawn(ws.clone())).await
}
