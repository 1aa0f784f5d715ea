//! The terminals of one session, by id, with a cap on how many may be open at once (each is a
//! shell, three threads and up to a few MiB of queued output).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::config::{TerminalConfig, TerminalSize};
use super::error::TerminalError;
use super::snapshot::Snapshot;
use super::subscription::Subscription;
use super::terminal::Terminal;

pub type TerminalId = u32;

/// A line of [`Terminals::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalInfo {
    pub id: TerminalId,
    pub size: TerminalSize,
    pub exit_code: Option<u32>,
}

/// Cheap to clone: clones share the same terminals.
#[derive(Debug, Clone)]
pub struct Terminals {
    max: usize,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    // Ids are never reused within a session, so a late message for a closed terminal cannot
    // reach a newer one.
    next_id: TerminalId,
    open: BTreeMap<TerminalId, Arc<Terminal>>,
}

impl Default for Terminals {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX)
    }
}

impl Terminals {
    pub const DEFAULT_MAX: usize = 8;

    pub fn new(max: usize) -> Self {
        Self {
            max,
            state: Arc::new(Mutex::new(State {
                next_id: 1,
                open: BTreeMap::new(),
            })),
        }
    }

    /// Starts a terminal. Exited terminals still count until they are closed, so that their
    /// last screen stays readable.
    pub fn create(
        &self,
        config: TerminalConfig,
    ) -> Result<(TerminalId, Arc<Terminal>), TerminalError> {
        // The lock is held across the spawn (a fork and exec) so two concurrent creates cannot
        // both pass the limit.
        let mut state = self.lock();
        if state.open.len() >= self.max {
            return Err(TerminalError::TooManyTerminals { max: self.max });
        }
        let terminal = Arc::new(Terminal::spawn(config)?);
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1).max(1);
        state.open.insert(id, Arc::clone(&terminal));
        Ok((id, terminal))
    }

    pub fn get(&self, id: TerminalId) -> Option<Arc<Terminal>> {
        self.lock().open.get(&id).cloned()
    }

    fn find(&self, id: TerminalId) -> Result<Arc<Terminal>, TerminalError> {
        self.get(id).ok_or(TerminalError::NotFound(id))
    }

    /// [`Terminal::try_write`] by id: never waits, so a room's message loop cannot stall.
    pub fn write(&self, id: TerminalId, bytes: impl Into<Bytes>) -> Result<(), TerminalError> {
        self.find(id)?.try_write(bytes)
    }

    pub fn resize(&self, id: TerminalId, rows: u16, cols: u16) -> Result<(), TerminalError> {
        self.find(id)?.resize(rows, cols)
    }

    pub fn subscribe(&self, id: TerminalId) -> Result<(Snapshot, Subscription), TerminalError> {
        Ok(self.find(id)?.subscribe())
    }

    pub fn ids(&self) -> Vec<TerminalId> {
        self.lock().open.keys().copied().collect()
    }

    /// Removes the terminal and hangs up its shell; viewers still attached see it exit.
    pub fn close(&self, id: TerminalId) -> Result<(), TerminalError> {
        let terminal = self
            .lock()
            .open
            .remove(&id)
            .ok_or(TerminalError::NotFound(id))?;
        terminal.kill();
        Ok(())
    }

    pub fn list(&self) -> Vec<TerminalInfo> {
        let open: Vec<_> = self
            .lock()
            .open
            .iter()
            .map(|(id, terminal)| (*id, Arc::clone(terminal)))
            .collect();
        // Asked outside the registry lock: each takes the terminal's own lock.
        open.into_iter()
            .map(|(id, terminal)| TerminalInfo {
                id,
                size: terminal.size(),
                exit_code: terminal.exit_code(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
