//! One viewer's stream of a terminal's output.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use super::shared::{Event, Shared, Start};
use super::snapshot::Snapshot;

/// What a viewer is told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOutput {
    /// Bytes the shell printed, to be written into the viewer's terminal as they are.
    Chunk(Bytes),
    /// Replace the viewer's terminal with this snapshot (it starts with a full reset; open it
    /// at `snapshot.size`) and continue with the chunks that follow. Sent when the viewer fell
    /// behind and missed output, and after a resize, which changes the size every viewer needs.
    Resync(Snapshot),
    /// The shell exited with this code; nothing follows.
    Exited(u32),
}

pub struct Subscription {
    shared: Arc<Shared>,
    events: tokio::sync::broadcast::Receiver<Event>,
    // Set when the exit is known from a snapshot rather than from the queue.
    pending_exit: Option<u32>,
    finished: bool,
}

impl Subscription {
    pub(crate) fn new(shared: Arc<Shared>, start: Start) -> (Snapshot, Self) {
        let subscription = Self {
            shared,
            events: start.events,
            pending_exit: start.exit_code,
            finished: false,
        };
        (start.snapshot, subscription)
    }

    /// A snapshot of now, and a fresh receiver positioned right after it: the old queue may
    /// hold output the snapshot already shows, which must not be shown twice.
    fn restart(&mut self) -> Snapshot {
        let start = self.shared.start();
        self.events = start.events;
        self.pending_exit = start.exit_code;
        start.snapshot
    }

    /// The next thing to show, or `None` after [`TerminalOutput::Exited`].
    ///
    /// Cancel-safe: it only awaits the broadcast receiver, which is.
    pub async fn next(&mut self) -> Option<TerminalOutput> {
        if self.finished {
            return None;
        }
        if let Some(code) = self.pending_exit.take() {
            self.finished = true;
            return Some(TerminalOutput::Exited(code));
        }
        match self.events.recv().await {
            Ok(Event::Output(bytes)) => Some(TerminalOutput::Chunk(bytes)),
            Ok(Event::Resized) => Some(TerminalOutput::Resync(self.restart())),
            Ok(Event::Exited(code)) => {
                self.finished = true;
                Some(TerminalOutput::Exited(code))
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "terminal viewer fell behind; sending a snapshot");
                Some(TerminalOutput::Resync(self.restart()))
            }
            // Only if every sender is gone, which `Shared` prevents while we hold it.
            Err(RecvError::Closed) => {
                self.finished = true;
                None
            }
        }
    }
}
