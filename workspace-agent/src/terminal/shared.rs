//! The state every handle of one terminal shares: the emulator, the exit status, and the
//! broadcast queue of output — kept under one lock so that a snapshot and the queue position
//! a viewer starts reading from always agree (nothing lost, nothing shown twice).

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::config::TerminalSize;
use super::snapshot::{self, Snapshot};

/// What travels through the broadcast queue, in PTY order.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Output(Bytes),
    /// Viewers resynchronise with a snapshot at the new size.
    Resized,
    Exited(u32),
}

pub(crate) struct Shared {
    state: Mutex<State>,
    // Sent to only while `state` is locked; see the module comment.
    events: broadcast::Sender<Event>,
}

pub(crate) struct State {
    pub(crate) parser: vt100::Parser,
    pub(crate) exit_code: Option<u32>,
}

/// A consistent starting point for a viewer: the snapshot, the exit code if the shell already
/// exited, and a receiver positioned right after the snapshot.
pub(crate) struct Start {
    pub(crate) snapshot: Snapshot,
    pub(crate) exit_code: Option<u32>,
    pub(crate) events: broadcast::Receiver<Event>,
}

impl Shared {
    pub(crate) fn new(size: TerminalSize, scrollback_lines: usize, queue: usize) -> Self {
        let parser = vt100::Parser::new(nonzero(size.rows), nonzero(size.cols), scrollback_lines);
        // broadcast::channel panics on a zero capacity.
        let (events, _) = broadcast::channel(queue.max(1));
        Self {
            state: Mutex::new(State {
                parser,
                exit_code: None,
            }),
            events,
        }
    }

    /// The lock, even if a thread panicked while holding it: the emulator's state is still a
    /// usable picture of the terminal, and a viewer is better served by it than by a panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the reader thread for every chunk the shell prints.
    pub(crate) fn output(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.parser.process(bytes);
        // An error only means nobody is watching right now; the emulator has the output.
        let _ = self
            .events
            .send(Event::Output(Bytes::copy_from_slice(bytes)));
    }

    /// Called with the lock held by [`super::Terminal::resize`], after the PTY was resized.
    pub(crate) fn resized(&self, state: &mut State, size: TerminalSize) {
        state
            .parser
            .set_size(nonzero(size.rows), nonzero(size.cols));
        let _ = self.events.send(Event::Resized);
    }

    /// Called once the shell has exited and its last output was read. Idempotent.
    pub(crate) fn exited(&self, code: u32) {
        let mut state = self.lock();
        if state.exit_code.is_none() {
            state.exit_code = Some(code);
            let _ = self.events.send(Event::Exited(code));
        }
    }

    pub(crate) fn start(&self) -> Start {
        let state = self.lock();
        Start {
            snapshot: snapshot::render(state.parser.screen()),
            exit_code: state.exit_code,
            events: self.events.subscribe(),
        }
    }

    pub(crate) fn size(&self) -> TerminalSize {
        let (rows, cols) = self.lock().parser.screen().size();
        TerminalSize {
            rows: rows.get(),
            cols: cols.get(),
        }
    }
}

/// `TerminalSize` is validated to 1..=MAX_DIMENSION, so the fallback is never taken; it keeps
/// this free of `unwrap`.
fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}
