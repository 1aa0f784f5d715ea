//! The model of the tree and its comparison with the disk.
//!
//! Every event is emitted together with the matching change to the model, so the events are
//! always consistent with each other: replayed in order onto the starting tree they give the
//! model, and the model follows the disk at every path a hint pointed to.

use std::collections::{BTreeMap, HashSet};
use std::io;

use super::FileEvent;
use super::batch::Batch;
use crate::files::hidden::{descends_into, join_rel};
use crate::files::tree::read_children;
use crate::files::{EntryKind, FileError, Workspace};

/// Most entries the model tracks; beyond it new paths go unreported (memory stays bounded in a
/// workspace that fills with, say, a huge `node_modules`).
const MAX_TRACKED: usize = 500_000;

/// Adding and removing inotify watches, one folder at a time ("" is the root).
pub(crate) trait DirWatches {
    fn watch(&mut self, rel: &str) -> Result<(), String>;
    fn unwatch(&mut self, rel: &str);
}

/// What one flush has done so far.
#[derive(Default)]
struct Flush {
    events: Vec<FileEvent>,
    /// Created in this flush: their contents are new, so no `Modified` for them.
    created: HashSet<String>,
}

pub(crate) struct Reconciler {
    workspace: Workspace,
    model: BTreeMap<String, EntryKind>,
    warned_full: bool,
}

impl Reconciler {
    pub(crate) fn new(workspace: Workspace) -> Self {
        Self {
            workspace,
            model: BTreeMap::new(),
            warned_full: false,
        }
    }

    /// Watches every folder and fills the model, reporting nothing. Each folder is watched
    /// before it is read, so nothing created meanwhile is missed.
    pub(crate) fn start(&mut self, watches: &mut dyn DirWatches) -> Result<(), FileError> {
        watches.watch("").map_err(FileError::Watch)?;
        let mut flush = Flush::default();
        self.add_children("", watches, &mut flush);
        Ok(())
    }

    /// Turns a batch of hints into events, updating the model.
    pub(crate) fn flush(
        &mut self,
        mut batch: Batch,
        watches: &mut dyn DirWatches,
    ) -> Vec<FileEvent> {
        let mut flush = Flush::default();
        if batch.rescan {
            // Events were lost: compare everything (renames then look like delete + create).
            self.diff_dir("", &batch, watches, &mut flush);
            return flush.events;
        }
        for (from, to) in std::mem::take(&mut batch.renames) {
            self.rename(from, to, &mut batch, watches, &mut flush);
        }
        for path in std::mem::take(&mut batch.dirty) {
            self.reconcile(&path, &batch, watches, &mut flush);
        }
        flush.events
    }

    /// Applies a paired rename to the model when it can be expressed as one; otherwise leaves
    /// both paths to [`Self::reconcile`] (as delete + create).
    fn rename(
        &mut self,
        from: String,
        to: String,
        batch: &mut Batch,
        watches: &mut dyn DirWatches,
        flush: &mut Flush,
    ) {
        let kind = self.model.get(&from).copied();
        let expressible =
            from != to && !to.starts_with(&format!("{from}/")) && self.parent_is_dir(&to);
        let Some(kind) = kind.filter(|_| expressible) else {
            batch.moved(from);
            batch.changed(to);
            return;
        };
        if self.model.contains_key(&to) {
            self.remove(&to, watches, flush); // replaced by the rename
        }
        let moved = self.subtree(&from);
        // All unwatches before any watch: inotify identifies a watch by inode, and the moved
        // folders are the same inodes.
        for (path, kind) in &moved {
            self.model.remove(path);
            if *kind == EntryKind::Dir {
                watches.unwatch(path);
            }
        }
        for (path, kind) in moved {
            let new = format!("{to}{}", &path[from.len()..]);
            if kind == EntryKind::Dir && descends_into(name(&new)) {
                // May fail if it moved again; reconciling `to` sorts that out.
                let _ = watches.watch(&new);
            }
            self.model.insert(new, kind);
        }
        flush.events.push(FileEvent::Renamed {
            from,
            to: to.clone(),
        });
        if kind == EntryKind::Dir {
            batch.deep.insert(to.clone());
        }
        batch.dirty.insert(to);
    }

    /// Brings the model at `path` in line with the disk.
    fn reconcile(
        &mut self,
        path: &str,
        batch: &Batch,
        watches: &mut dyn DirWatches,
        flush: &mut Flush,
    ) {
        if !self.parent_is_dir(path) {
            return; // below something unknown (or a link): not part of the tree
        }
        let Ok(disk) = self.disk_kind(path) else {
            return; // cannot tell now; a later hint or rescan will
        };
        let model = self.model.get(path).copied();
        self.compare(path, model, disk, batch, watches, flush);
    }

    fn compare(
        &mut self,
        path: &str,
        model: Option<EntryKind>,
        disk: Option<EntryKind>,
        batch: &Batch,
        watches: &mut dyn DirWatches,
        flush: &mut Flush,
    ) {
        match (model, disk) {
            (None, None) => {}
            (None, Some(kind)) => self.add(path, kind, watches, flush),
            (Some(_), None) => self.remove(path, watches, flush),
            (Some(old), Some(new)) if old != new => {
                self.remove(path, watches, flush);
                self.add(path, new, watches, flush);
            }
            (Some(EntryKind::Dir), Some(EntryKind::Dir)) => {
                // A folder that was deleted and made again (or renamed) is a new inode: watch
                // it afresh, and compare its contents, whose events may be lost.
                if (batch.touched.contains(path) || batch.deep.contains(path))
                    && descends_into(name(path))
                {
                    let _ = watches.watch(path);
                    self.diff_dir(path, batch, watches, flush);
                }
            }
            (Some(_), Some(_)) => {
                if batch.touched.contains(path) && !flush.created.contains(path) {
                    flush.events.push(FileEvent::Modified {
                        path: path.to_owned(),
                    });
                }
            }
        }
    }

    /// Compares a folder's contents, recursively, with the disk.
    fn diff_dir(
        &mut self,
        dir: &str,
        batch: &Batch,
        watches: &mut dyn DirWatches,
        flush: &mut Flush,
    ) {
        let Ok(children) = read_children(&self.workspace, dir) else {
            return;
        };
        let on_disk: BTreeMap<String, EntryKind> = children
            .into_iter()
            .map(|child| (join_rel(dir, &child.name), child.kind))
            .collect();
        let gone: Vec<String> = self
            .children(dir)
            .filter(|path| !on_disk.contains_key(path))
            .collect();
        for path in gone {
            self.remove(&path, watches, flush);
        }
        for (path, kind) in on_disk {
            let model = self.model.get(&path).copied();
            // Folders present on both sides are compared in depth.
            let both_dirs = model == Some(EntryKind::Dir) && kind == EntryKind::Dir;
            if both_dirs {
                if descends_into(name(&path)) {
                    let _ = watches.watch(&path);
                    self.diff_dir(&path, batch, watches, flush);
                }
            } else {
                self.compare(&path, model, Some(kind), batch, watches, flush);
            }
        }
    }

    /// Records a new entry and, for a folder, watches it and records its contents.
    fn add(
        &mut self,
        path: &str,
        kind: EntryKind,
        watches: &mut dyn DirWatches,
        flush: &mut Flush,
    ) {
        if self.model.len() >= MAX_TRACKED {
            if !self.warned_full {
                self.warned_full = true;
                tracing::warn!(
                    max = MAX_TRACKED,
                    "workspace too large: new files go unreported"
                );
            }
            return;
        }
        self.model.insert(path.to_owned(), kind);
        flush.created.insert(path.to_owned());
        flush.events.push(FileEvent::Created {
            path: path.to_owned(),
            kind,
        });
        if kind == EntryKind::Dir && descends_into(name(path)) {
            self.add_children(path, watches, flush);
        }
    }

    fn add_children(&mut self, dir: &str, watches: &mut dyn DirWatches, flush: &mut Flush) {
        if let Err(error) = watches.watch(dir) {
            tracing::warn!(dir, %error, "cannot watch folder; its changes go unreported");
        }
        if let Ok(children) = read_children(&self.workspace, dir) {
            for child in children {
                self.add(&join_rel(dir, &child.name), child.kind, watches, flush);
            }
        }
    }

    /// Forgets an entry and everything under it.
    fn remove(&mut self, path: &str, watches: &mut dyn DirWatches, flush: &mut Flush) {
        for (sub, kind) in self.subtree(path) {
            self.model.remove(&sub);
            if kind == EntryKind::Dir {
                watches.unwatch(&sub);
            }
        }
        flush.events.push(FileEvent::Deleted {
            path: path.to_owned(),
        });
    }

    /// `path` and everything under it, from the model.
    fn subtree(&self, path: &str) -> Vec<(String, EntryKind)> {
        // Keys under `path/` sort between `path/` and `path0` ('0' follows '/').
        let below = self
            .model
            .range(format!("{path}/")..format!("{path}0"))
            .map(|(p, k)| (p.clone(), *k));
        self.model
            .get_key_value(path)
            .map(|(p, k)| (p.clone(), *k))
            .into_iter()
            .chain(below)
            .collect()
    }

    /// The direct children of `dir` in the model.
    fn children<'a>(&'a self, dir: &'a str) -> Box<dyn Iterator<Item = String> + 'a> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = prefix.len();
        let range = if dir.is_empty() {
            self.model.range::<String, _>(..)
        } else {
            self.model.range(prefix.clone()..format!("{dir}0"))
        };
        Box::new(
            range
                .map(|(p, _)| p)
                .filter(move |p| !p[start..].contains('/'))
                .cloned(),
        )
    }

    /// Whether the folder holding `path` is a folder of the tree (the root always is).
    fn parent_is_dir(&self, path: &str) -> bool {
        match path.rsplit_once('/') {
            None => true,
            Some((parent, _)) => {
                self.model.get(parent) == Some(&EntryKind::Dir) && descends_into(name(parent))
            }
        }
    }

    /// What is at `path` on disk now (links not followed); `Err` when it cannot be told.
    fn disk_kind(&self, path: &str) -> io::Result<Option<EntryKind>> {
        match std::fs::symlink_metadata(self.workspace.abs(path)) {
            Ok(meta) if meta.file_type().is_symlink() => Ok(Some(EntryKind::Symlink)),
            Ok(meta) if meta.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The model, for tests.
    #[cfg(test)]
    pub(crate) fn model(&self) -> &BTreeMap<String, EntryKind> {
        &self.model
    }
}

/// The last name of a relative path.
fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
