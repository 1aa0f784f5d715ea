//! What the tree and the watcher leave out.
//!
//! The contents of `.git` folders churn on every git command and mean nothing in the UI (the
//! `.git` folder itself is still listed, so a repository is visible). Our own temporary files
//! from atomic writes are transient and would otherwise flash up as created-then-renamed.

/// Name of git's folder; listed, but never entered or watched.
pub(crate) const GIT_DIR: &str = ".git";

/// Prefix of the temporary files written before an atomic rename (see `ops`).
pub(crate) const TEMP_PREFIX: &str = ".huddle-tmp-";

/// Whether the tree and the watcher should descend into a folder with this name.
pub(crate) fn descends_into(name: &str) -> bool {
    name != GIT_DIR
}

/// Whether the entry at `rel` (a normalized relative path) is left out of the tree and events:
/// anything inside a `.git` folder, and our temporary files.
pub(crate) fn is_hidden(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return part.starts_with(TEMP_PREFIX);
        }
        if !descends_into(part) {
            return true;
        }
    }
    false
}

/// `parent/name`, or just `name` at the root (whose relative path is "").
pub(crate) fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}
