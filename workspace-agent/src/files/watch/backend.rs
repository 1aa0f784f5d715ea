//! notify and the watcher thread.
//!
//! notify calls back on its own thread; the callback only queues the raw event (bounded: if
//! the queue is full it sets a flag and the next flush compares the whole tree, as it does when
//! the kernel's own queue overflows). The watcher runs on a plain thread because everything it
//! does (stat, read_dir, adding watches) blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TrySendError};
use std::time::Instant;

use notify::{Config, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::batch::Batch;
use super::reconcile::{DirWatches, Reconciler};
use super::{FileEvent, MAX_DELAY, QUIET, WatchGuard};
use crate::files::{FileError, Workspace};

/// Raw events queued between notify's thread and ours.
const RAW_CAPACITY: usize = 65_536;
/// File events queued for the consumer; when it lags, the watcher waits (and raw events pile
/// up, then overflow into a rescan), so memory stays bounded.
const EVENT_CAPACITY: usize = 4_096;
/// Recursion in the reconciler follows folder depth, which only the path length limits.
const THREAD_STACK: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub(crate) enum Msg {
    Raw(notify::Result<notify::Event>),
    Stop,
}

/// One non-recursive inotify watch per folder of the tree: notify's recursive mode would also
/// watch `.git` (thousands of folders) and follow no rules of ours.
struct NotifyDirs {
    watcher: RecommendedWatcher,
    workspace: Workspace,
}

impl DirWatches for NotifyDirs {
    fn watch(&mut self, rel: &str) -> Result<(), String> {
        self.watcher
            .watch(&self.workspace.abs(rel), RecursiveMode::NonRecursive)
            .map_err(|e| e.to_string())
    }

    fn unwatch(&mut self, rel: &str) {
        // Fails when inotify already dropped the watch (folder deleted): nothing to do.
        let _ = self.watcher.unwatch(&self.workspace.abs(rel));
    }
}

/// Starts the watcher thread and waits until every folder is watched. Blocking.
pub(crate) fn spawn(
    workspace: Workspace,
) -> Result<(WatchGuard, mpsc::Receiver<FileEvent>), FileError> {
    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Msg>(RAW_CAPACITY);
    let overflow = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();

    let handler_tx = raw_tx.clone();
    let handler_overflow = overflow.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Err(TrySendError::Full(_)) = handler_tx.try_send(Msg::Raw(event)) {
            handler_overflow.store(true, Ordering::Relaxed);
        }
    };
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name("huddle-files-watch".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            // Links are never followed: they could lead outside the root.
            let config = Config::default().with_follow_symlinks(false);
            let watcher = match RecommendedWatcher::new(handler, config) {
                Ok(watcher) => watcher,
                Err(e) => {
                    let _ = ready_tx.send(Err(FileError::Watch(e.to_string())));
                    return;
                }
            };
            let mut dirs = NotifyDirs {
                watcher,
                workspace: workspace.clone(),
            };
            let mut reconciler = Reconciler::new(workspace.clone());
            if let Err(e) = reconciler.start(&mut dirs) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            Loop {
                workspace,
                raw_rx,
                events_tx,
                overflow,
                stop: thread_stop,
            }
            .run(&mut reconciler, &mut dirs);
        })
        .map_err(|e| FileError::Watch(e.to_string()))?;

    match ready_rx.recv() {
        Ok(Ok(())) => Ok((WatchGuard { stop, wake: raw_tx }, events_rx)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FileError::Watch("the watcher thread ended".into())),
    }
}

struct Loop {
    workspace: Workspace,
    raw_rx: Receiver<Msg>,
    events_tx: mpsc::Sender<FileEvent>,
    overflow: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Loop {
    fn run(self, reconciler: &mut Reconciler, dirs: &mut NotifyDirs) {
        while let Some(mut batch) = self.collect() {
            if self.overflow.swap(false, Ordering::Relaxed) {
                batch.rescan = true;
            }
            for event in reconciler.flush(batch, dirs) {
                if self.events_tx.blocking_send(event).is_err() {
                    return; // nobody listens any more
                }
            }
        }
    }

    /// Waits for a relevant event, then gathers more until the disk is quiet. `None`: stop.
    fn collect(&self) -> Option<Batch> {
        let mut batch = Batch::default();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            let Ok(Msg::Raw(event)) = self.raw_rx.recv() else {
                return None;
            };
            if self.absorb(&mut batch, event) {
                break;
            }
        }
        let started = Instant::now();
        let mut last = started;
        loop {
            let deadline = (last + QUIET).min(started + MAX_DELAY);
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.raw_rx.recv_timeout(wait) {
                Ok(Msg::Raw(event)) => {
                    if self.absorb(&mut batch, event) {
                        last = Instant::now();
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        (!self.stop.load(Ordering::Relaxed)).then_some(batch)
    }

    fn absorb(&self, batch: &mut Batch, event: notify::Result<notify::Event>) -> bool {
        match event {
            Ok(event) => batch.absorb(self.workspace.root(), &event),
            Err(error) => {
                // Not knowing what was missed, compare everything.
                tracing::warn!(%error, "file watcher error; rescanning the workspace");
                batch.rescan = true;
                true
            }
        }
    }
}
