//! The file tree the UI shows: a bounded, sorted listing of the whole workspace.
//!
//! Order is depth-first, each folder followed by its contents, and within a folder subfolders
//! before files, each group by name: exactly the order of rows in a tree view. Symbolic links
//! are listed but never followed (no cycles, no escapes). `.git` is listed, its contents not.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use super::content::classify_file;
use super::hidden::{descends_into, is_hidden, join_rel};
use super::workspace::FinalLink;
use super::{Content, FileError, MAX_PATH_BYTES, TEXT_LIMIT, Workspace, WorkspacePath};

/// Most entries one listing returns; the rest is cut off and [`Tree::truncated`] set.
pub const MAX_TREE_ENTRIES: usize = 20_000;

/// Most bytes one listing reads to classify files; later files are [`Content::Unknown`], which
/// the client resolves by opening them ([`Workspace::read_text`] decides for itself).
const CLASSIFY_BUDGET: u64 = 64 * 1024 * 1024;

/// What an entry is. Links are reported as such, not as what they point to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One row of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes, for files; 0 otherwise.
    pub size: u64,
    pub content: Content,
}

/// A listing of the workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
    /// True when [`MAX_TREE_ENTRIES`] was reached and entries are missing.
    pub truncated: bool,
}

/// A folder's child, as read from disk.
pub(crate) struct Child {
    pub(crate) name: String,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    /// A regular file (not a FIFO, socket or device, which are listed but never opened).
    pub(crate) regular: bool,
}

/// The visible children of the folder at `rel`, subfolders first, then by name. Names that are
/// not UTF-8 are skipped: they cannot be named on the wire.
pub(crate) fn read_children(workspace: &Workspace, rel: &str) -> io::Result<Vec<Child>> {
    let mut children = Vec::new();
    for item in fs::read_dir(workspace.abs(rel))? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        let child_rel = join_rel(rel, &name);
        if is_hidden(&child_rel) || child_rel.len() > MAX_PATH_BYTES {
            continue;
        }
        // `DirEntry::metadata` does not follow links.
        let Ok(meta) = item.metadata() else {
            continue; // deleted meanwhile
        };
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Symlink
        } else if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        children.push(Child {
            name,
            kind,
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
            regular: meta.is_file(),
        });
    }
    children.sort_by(|a, b| {
        (b.kind == EntryKind::Dir)
            .cmp(&(a.kind == EntryKind::Dir))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(children)
}

impl Workspace {
    /// Lists the whole workspace (see the module doc for order and limits).
    pub async fn list_tree(&self) -> Result<Tree, FileError> {
        self.blocking(list_tree_blocking).await
    }
}

impl Workspace {
    /// The tree row for one path (a link is described, not followed): what a client needs to
    /// show a `Created` entry.
    pub async fn entry(&self, path: &str) -> Result<Entry, FileError> {
        let path = WorkspacePath::parse(path)?;
        self.blocking(move |ws| {
            let full = ws.resolve_path(&path, FinalLink::Keep)?;
            let meta = fs::symlink_metadata(&full).map_err(|e| FileError::io(path.as_str(), e))?;
            let (kind, size, content) = if meta.file_type().is_symlink() {
                (EntryKind::Symlink, 0, Content::Unknown)
            } else if meta.is_dir() {
                (EntryKind::Dir, 0, Content::Unknown)
            } else if !meta.is_file() {
                (EntryKind::File, 0, Content::Unknown) // FIFO, socket, device: never opened
            } else if meta.len() > TEXT_LIMIT as u64 {
                (EntryKind::File, meta.len(), Content::Binary)
            } else {
                let content = classify_file(&full).unwrap_or(Content::Unknown);
                (EntryKind::File, meta.len(), content)
            };
            Ok(Entry {
                path: path.to_string(),
                kind,
                size,
                content,
            })
        })
        .await
    }
}

fn list_tree_blocking(workspace: &Workspace) -> Result<Tree, FileError> {
    let mut tree = Tree::default();
    let mut budget = CLASSIFY_BUDGET;
    let root_children = read_children(workspace, "").map_err(|e| FileError::io("", e))?;
    // An explicit stack of folder iterators rather than recursion: depth is bounded only by
    // the path length limit.
    let mut stack = vec![(String::new(), root_children.into_iter())];
    while let Some((dir, children)) = stack.last_mut() {
        let Some(child) = children.next() else {
            stack.pop();
            continue;
        };
        if tree.entries.len() >= MAX_TREE_ENTRIES {
            tree.truncated = true;
            break;
        }
        let path = join_rel(dir, &child.name);
        let content = match child.kind {
            EntryKind::File if !child.regular => Content::Unknown,
            EntryKind::File if child.size > TEXT_LIMIT as u64 => Content::Binary,
            EntryKind::File if child.size <= budget => {
                budget -= child.size;
                classify_file(&workspace.abs(&path)).unwrap_or(Content::Unknown)
            }
            _ => Content::Unknown,
        };
        tree.entries.push(Entry {
            path: path.clone(),
            kind: child.kind,
            size: child.size,
            content,
        });
        if child.kind == EntryKind::Dir && descends_into(&child.name) {
            // An unreadable folder is listed, empty.
            if let Ok(grandchildren) = read_children(workspace, &path) {
                stack.push((path, grandchildren.into_iter()));
            }
        }
    }
    Ok(tree)
}
