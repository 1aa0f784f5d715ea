//! Tests of the files module on real temporary folders.

mod classify;
mod ops;
mod reconcile;
mod traversal;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{EntryKind, FileEvent, Workspace};

/// A temporary folder holding the workspace root `root/` and a sibling `outside/` with a
/// secret, which no operation may reach.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) outside: PathBuf,
    pub(super) ws: Workspace,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    let ws = Workspace::open(&root).unwrap();
    let root = ws.root().to_path_buf();
    let outside = std::fs::canonicalize(outside).unwrap();
    Fixture {
        _dir: dir,
        root,
        outside,
        ws,
    }
}

/// Everything under `dir` (links not followed): path → file bytes, link target, or folder.
pub(super) fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let kind = item.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("link {}", target.display()));
            } else if kind.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(rel, format!("file {}", String::from_utf8_lossy(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The tree as path → kind, as the watcher's events should rebuild it.
pub(super) async fn kinds(ws: &Workspace) -> BTreeMap<String, EntryKind> {
    let tree = ws.list_tree().await.unwrap();
    assert!(!tree.truncated);
    tree.entries.into_iter().map(|e| (e.path, e.kind)).collect()
}

/// Applies one event to a path → kind map, checking it makes sense there.
pub(super) fn replay(tree: &mut BTreeMap<String, EntryKind>, event: &FileEvent) {
    let parent_ok = |tree: &BTreeMap<String, EntryKind>, path: &str| match path.rsplit_once('/') {
        None => true,
        Some((parent, _)) => tree.get(parent) == Some(&EntryKind::Dir),
    };
    let subtree = |tree: &BTreeMap<String, EntryKind>, path: &str| -> Vec<String> {
        tree.keys()
            .filter(|p| *p == path || p.starts_with(&format!("{path}/")))
            .cloned()
            .collect()
    };
    match event {
        FileEvent::Created { path, kind } => {
            assert!(
                parent_ok(tree, path),
                "{event:?} without its folder in {tree:?}"
            );
            assert!(
                tree.insert(path.clone(), *kind).is_none(),
                "{event:?} exists in {tree:?}"
            );
        }
        FileEvent::Deleted { path } => {
            assert!(tree.contains_key(path), "{event:?} missing in {tree:?}");
            for p in subtree(tree, path) {
                tree.remove(&p);
            }
        }
        FileEvent::Renamed { from, to } => {
            assert!(tree.contains_key(from), "{event:?} missing in {tree:?}");
            assert!(
                !tree.contains_key(to),
                "{event:?} target exists in {tree:?}"
            );
            assert!(
                parent_ok(tree, to),
                "{event:?} without target folder in {tree:?}"
            );
            for p in subtree(tree, from) {
                let kind = tree.remove(&p).unwrap();
                tree.insert(format!("{to}{}", &p[from.len()..]), kind);
            }
        }
        FileEvent::Modified { path } => {
            assert!(tree.contains_key(path), "{event:?} missing in {tree:?}");
        }
    }
}
