//! [`WorkspacePath`]: the lexical half of path safety.
//!
//! Paths arrive from clients as `/`-separated strings relative to the workspace root. Parsing
//! rejects everything that could name a place outside the root without looking at the disk
//! (absolute paths, `..`) and everything the kernel would choke on (NUL, overlong names), and
//! normalizes the rest (`a//b/./c` is `a/b/c`). Symbolic links need the disk; see
//! [`Workspace::resolve`](super::Workspace::resolve).

use std::fmt;

use super::FileError;

/// Longest accepted path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted single name, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A normalized, non-empty path relative to the workspace root: names joined by single `/`,
/// none of them empty, `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// Validates and normalizes a path from the wire.
    pub fn parse(raw: &str) -> Result<Self, FileError> {
        // Length first, so later messages never echo a huge string.
        if raw.len() > MAX_PATH_BYTES {
            return Err(FileError::PathTooLong {
                len: raw.len(),
                max: MAX_PATH_BYTES,
            });
        }
        if raw.contains('\0') {
            return Err(FileError::NulByte);
        }
        if raw.starts_with('/') {
            return Err(FileError::AbsolutePath(raw.to_owned()));
        }
        let mut names = Vec::new();
        for name in raw.split('/') {
            match name {
                "" | "." => continue,
                // Refused rather than resolved: `a/../b` is legal but has no use in a UI, and
                // resolving `..` lexically goes wrong when `a` is a symbolic link.
                ".." => return Err(FileError::ParentComponent(raw.to_owned())),
                name if name.len() > MAX_NAME_BYTES => {
                    return Err(FileError::NameTooLong {
                        len: name.len(),
                        max: MAX_NAME_BYTES,
                    });
                }
                name => names.push(name),
            }
        }
        if names.is_empty() {
            return Err(FileError::EmptyPath);
        }
        Ok(Self(names.join("/")))
    }

    /// The normalized path, e.g. `src/main.rs`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names from the root down.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last name.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The containing folder, or `None` for an entry directly under the root.
    pub fn parent(&self) -> Option<WorkspacePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| Self(parent.to_owned()))
    }

    /// Whether `self` is `ancestor` or lies inside it (by whole names: `ab` is not inside `a`).
    pub fn is_within(&self, ancestor: &WorkspacePath) -> bool {
        self.0 == ancestor.0
            || (self.0.starts_with(&ancestor.0)
                && self.0.as_bytes().get(ancestor.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for WorkspacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
