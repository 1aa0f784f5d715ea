//! [`Workspace`]: the root folder and the disk half of path safety.
//!
//! [`WorkspacePath`] already refuses `..` and absolute paths, so the only remaining way out of
//! the root is a symbolic link (made in the terminal, or shipped in a cloned repository). Every
//! existing name along a path is therefore checked: if it is a link, where it leads (fully
//! canonicalized) must be inside the root. Links that lead nowhere (dangling, loops) are refused
//! too, because creating a file through a dangling link would create its target, wherever that is.
//!
//! Limits: the check and the later operation are separate system calls, so a process that
//! already runs inside the workspace (the shared terminal) could swap a folder for a link in
//! between. Such a process can touch those files itself anyway; the check protects against
//! clients that only have the API.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileError, WorkspacePath};

/// The shared folder. Cheap to clone; operations live in [`ops`](super::ops),
/// [`tree`](super::tree) and [`watch`](super::watch).
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Canonical (absolute, no links), so "is under the root" is a plain prefix test.
    root: Arc<Path>,
}

/// Whether [`Workspace::resolve_path`] checks a link in the last name (reads and writes go
/// through it) or leaves it alone (delete and rename act on the link itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FinalLink {
    Follow,
    Keep,
}

impl Workspace {
    /// Opens the workspace at `root`, which must be an existing folder.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, FileError> {
        let given = root.as_ref();
        let root_error = |source| FileError::Root {
            path: given.display().to_string(),
            source,
        };
        let root = std::fs::canonicalize(given).map_err(root_error)?;
        if !root.is_dir() {
            return Err(root_error(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a folder",
            )));
        }
        Ok(Self { root: root.into() })
    }

    /// The canonical root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Turns a client's relative path into the absolute path to use, or refuses it: absolute
    /// paths, `..`, NUL, empty or overlong paths, and symbolic links anywhere along the path
    /// (the last name included) that lead outside the root. The path need not exist.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, FileError> {
        let path = WorkspacePath::parse(relative)?;
        self.resolve_path(&path, FinalLink::Follow)
    }

    /// [`Self::resolve`] for an already parsed path.
    pub(crate) fn resolve_path(
        &self,
        path: &WorkspacePath,
        final_link: FinalLink,
    ) -> Result<PathBuf, FileError> {
        let mut full = self.root.to_path_buf();
        let mut names = path.names().peekable();
        while let Some(name) = names.next() {
            full.push(name);
            let is_last = names.peek().is_none();
            match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if !(is_last && final_link == FinalLink::Keep) {
                        self.check_link(&full, path)?;
                    }
                }
                Ok(_) => {}
                // Nothing exists from here on (or a file is used as a folder): no link can be
                // followed below, and the operation itself will report the problem.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    full.extend(names);
                    break;
                }
                Err(e) => return Err(FileError::io(path.as_str(), e)),
            }
        }
        Ok(full)
    }

    /// Refuses a link unless where it finally leads is inside the root.
    fn check_link(&self, link: &Path, path: &WorkspacePath) -> Result<(), FileError> {
        match std::fs::canonicalize(link) {
            Ok(target) if target.starts_with(&self.root) => Ok(()),
            _ => Err(FileError::SymlinkEscape(path.to_string())),
        }
    }

    /// The absolute path of a relative one, without any check: for paths the module produced
    /// itself from directory listings ("" is the root).
    pub(crate) fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    /// Runs blocking file-system work off the async runtime.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, FileError>
    where
        T: Send + 'static,
        F: FnOnce(&Workspace) -> Result<T, FileError> + Send + 'static,
    {
        let workspace = self.clone();
        tokio::task::spawn_blocking(move || work(&workspace))
            .await
            .map_err(|e| FileError::Task(e.to_string()))?
    }
}
