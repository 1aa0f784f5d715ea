//! The one error type of the files module.
//!
//! Messages name paths relative to the workspace root (as the client sent them), never the
//! absolute location on disk, so they can be shown to users as they are.

use std::io;

/// Why a file operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("a file or folder name is needed, but the path is empty")]
    EmptyPath,
    #[error("path {0:?} is absolute; paths are relative to the workspace root")]
    AbsolutePath(String),
    #[error("path {0:?} contains `..`, which is not allowed")]
    ParentComponent(String),
    #[error("path contains a NUL byte")]
    NulByte,
    #[error("path is {len} bytes long; the limit is {max}")]
    PathTooLong { len: usize, max: usize },
    #[error("a name in the path is {len} bytes long; the limit is {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("{0:?} goes through a symbolic link that leads outside the workspace or nowhere")]
    SymlinkEscape(String),
    #[error("{0:?} already exists")]
    AlreadyExists(String),
    #[error("{0:?} does not exist")]
    NotFound(String),
    #[error("folder {0:?} is not empty")]
    DirectoryNotEmpty(String),
    #[error("{0:?} is not a folder")]
    NotADirectory(String),
    #[error("{0:?} is a folder")]
    IsADirectory(String),
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
    #[error(
        "{0:?} is not editable text (binary, not UTF-8, or over {limit} bytes); download it instead",
        limit = crate::files::TEXT_LIMIT
    )]
    NotText(String),
    #[error("{path:?} is {size} bytes; the limit is {max}")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("cannot move folder {from:?} into itself ({to:?})")]
    MoveIntoItself { from: String, to: String },
    #[error("workspace root {path:?} is unusable: {source}")]
    Root { path: String, source: io::Error },
    #[error("cannot watch the workspace: {0}")]
    Watch(String),
    #[error("{path:?}: {source}")]
    Io { path: String, source: io::Error },
    #[error("file task failed: {0}")]
    Task(String),
}

impl FileError {
    /// Maps an I/O error on `path` (a relative path, for the message) to the specific variant
    /// when there is one, so callers can match on `NotFound`, `AlreadyExists`, ...
    pub(crate) fn io(path: &str, source: io::Error) -> Self {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound => Self::NotFound(path),
            io::ErrorKind::AlreadyExists => Self::AlreadyExists(path),
            io::ErrorKind::DirectoryNotEmpty => Self::DirectoryNotEmpty(path),
            io::ErrorKind::NotADirectory => Self::NotADirectory(path),
            io::ErrorKind::IsADirectory => Self::IsADirectory(path),
            _ => Self::Io { path, source },
        }
    }
}
