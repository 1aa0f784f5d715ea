//! Raw notify events → hints about which paths to look at.
//!
//! A hint does not say what happened, only where to look: the reconciler asks the disk. That
//! makes lost, reordered or duplicated inotify events harmless, except for renames, which the
//! disk cannot tell apart from delete + create; those come from notify's paired rename events.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};

use crate::files::hidden::is_hidden;

/// The hints gathered during one debounce window.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Paired renames, in order.
    pub(crate) renames: Vec<(String, String)>,
    /// Paths whose existence or kind may have changed. Sorted, so parents come first.
    pub(crate) dirty: BTreeSet<String>,
    /// Paths whose contents may have changed.
    pub(crate) touched: HashSet<String>,
    /// Folders to compare whole with the disk (renamed ones may have missed events).
    pub(crate) deep: HashSet<String>,
    /// Events were lost: compare the whole tree.
    pub(crate) rescan: bool,
}

impl Batch {
    /// Something was created, deleted or written at `path`.
    pub(crate) fn changed(&mut self, path: String) {
        self.touched.insert(path.clone());
        self.dirty.insert(path);
    }

    /// Something arrived at or left `path` by a rename.
    pub(crate) fn moved(&mut self, path: String) {
        self.dirty.insert(path);
    }

    /// A rename whose sides may each be out of view (outside the root, or hidden).
    pub(crate) fn renamed(&mut self, from: Option<String>, to: Option<String>) {
        match (from, to) {
            (Some(from), Some(to)) => self.renames.push((from, to)),
            (Some(from), None) => self.moved(from),
            // New contents at `to`, e.g. an editor's or our own atomic save.
            (None, Some(to)) => self.changed(to),
            (None, None) => {}
        }
    }

    /// Adds one raw event; returns whether it was relevant (opens and reads are not, and must
    /// not keep the debounce window open: our own scans cause them).
    pub(crate) fn absorb(&mut self, root: &Path, event: &notify::Event) -> bool {
        let rel = |path: &Path| -> Option<String> {
            let rel = path.strip_prefix(root).ok()?.to_str()?;
            (!rel.is_empty() && !is_hidden(rel)).then(|| rel.to_owned())
        };
        let mut relevant = false;
        if event.need_rescan() {
            self.rescan = true;
            relevant = true;
        }
        match event.kind {
            EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in event.paths.iter().filter_map(|p| rel(p)) {
                    self.changed(path);
                    relevant = true;
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = event.paths.as_slice() {
                    self.renamed(rel(from), rel(to));
                    relevant = true;
                }
            }
            // The halves of a rename (the pair above also comes when both are in view).
            EventKind::Modify(ModifyKind::Name(_)) => {
                for path in event.paths.iter().filter_map(|p| rel(p)) {
                    self.moved(path);
                    relevant = true;
                }
            }
            _ => {}
        }
        relevant
    }
}
