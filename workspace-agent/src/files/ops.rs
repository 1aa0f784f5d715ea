//! Changing and reading files: create, delete, rename/move, read and write.
//!
//! Every operation takes client paths, resolves them through [`Workspace::resolve_path`] and
//! runs on the blocking pool. Writes are atomic (a temporary file in the same folder renamed
//! over the target), so readers, the watcher and a crash never see half a file. Delete and
//! rename act on a symbolic link itself, never on what it points to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::content::read_up_to;
use super::hidden::TEMP_PREFIX;
use super::workspace::FinalLink;
use super::{Content, FileError, TEXT_LIMIT, Workspace, WorkspacePath, classify};

/// Largest upload or download, in bytes (64 MiB): both are held in memory whole.
pub const TRANSFER_LIMIT: u64 = 64 * 1024 * 1024;

impl Workspace {
    /// Creates a new file holding `initial_text`; fails if anything exists at `path`. Missing
    /// parent folders are created.
    pub async fn create_file(&self, path: &str, initial_text: &str) -> Result<(), FileError> {
        let (path, text) = (WorkspacePath::parse(path)?, initial_text.to_owned());
        self.blocking(move |ws| {
            let full = ws.resolve_path(&path, FinalLink::Follow)?;
            create_parents(ws, &path)?;
            // `create_new` is O_EXCL: it also refuses an existing (even dangling) link.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&full)
                .map_err(|e| FileError::io(path.as_str(), e))?;
            file.write_all(text.as_bytes())
                .map_err(|e| FileError::io(path.as_str(), e))
        })
        .await
    }

    /// Creates a folder; fails if anything exists at `path`. Missing parents are created.
    pub async fn create_dir(&self, path: &str) -> Result<(), FileError> {
        let path = WorkspacePath::parse(path)?;
        self.blocking(move |ws| {
            let full = ws.resolve_path(&path, FinalLink::Follow)?;
            create_parents(ws, &path)?;
            fs::create_dir(&full).map_err(|e| FileError::io(path.as_str(), e))
        })
        .await
    }

    /// Deletes a file, link or folder. A folder with contents is refused with
    /// [`FileError::DirectoryNotEmpty`] unless `allow_non_empty_dir` (the caller's role check).
    pub async fn delete(&self, path: &str, allow_non_empty_dir: bool) -> Result<(), FileError> {
        let path = WorkspacePath::parse(path)?;
        self.blocking(move |ws| {
            let full = ws.resolve_path(&path, FinalLink::Keep)?;
            let meta = fs::symlink_metadata(&full).map_err(|e| FileError::io(path.as_str(), e))?;
            let result = if !meta.is_dir() {
                fs::remove_file(&full)
            } else if allow_non_empty_dir {
                // Does not follow links inside the folder (std guarantees this since 1.58.1).
                fs::remove_dir_all(&full)
            } else {
                fs::remove_dir(&full)
            };
            result.map_err(|e| FileError::io(path.as_str(), e))
        })
        .await
    }

    /// Renames or moves `from` to `to` (any folder in the workspace); fails if `to` exists or
    /// if a folder would move into itself. The target's folder must exist.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let (from, to) = (WorkspacePath::parse(from)?, WorkspacePath::parse(to)?);
        self.blocking(move |ws| rename_blocking(ws, &from, &to))
            .await
    }

    /// Reads a text file; [`FileError::NotText`] for anything [`classify`] calls binary.
    pub async fn read_text(&self, path: &str) -> Result<String, FileError> {
        let path = WorkspacePath::parse(path)?;
        self.blocking(move |ws| {
            let bytes = read_limited(ws, &path, TEXT_LIMIT as u64, |_| {
                FileError::NotText(path.to_string())
            })?;
            match classify(&bytes) {
                Content::Text => {
                    String::from_utf8(bytes).map_err(|_| FileError::NotText(path.to_string()))
                }
                _ => Err(FileError::NotText(path.to_string())),
            }
        })
        .await
    }

    /// Replaces (or creates) a file's contents with `text`, atomically. Missing parent folders
    /// are created. A file's permissions are kept.
    pub async fn write_text(&self, path: &str, text: &str) -> Result<(), FileError> {
        self.write_bytes(path, text.as_bytes()).await
    }

    /// Reads any file whole, for download; at most [`TRANSFER_LIMIT`] bytes.
    pub async fn read_bytes(&self, path: &str) -> Result<Vec<u8>, FileError> {
        let path = WorkspacePath::parse(path)?;
        self.blocking(move |ws| {
            read_limited(ws, &path, TRANSFER_LIMIT, |size| FileError::TooLarge {
                path: path.to_string(),
                size,
                max: TRANSFER_LIMIT,
            })
        })
        .await
    }

    /// Replaces (or creates) a file with `bytes`, atomically, for upload; at most
    /// [`TRANSFER_LIMIT`] bytes.
    pub async fn write_bytes(&self, path: &str, bytes: &[u8]) -> Result<(), FileError> {
        let path = WorkspacePath::parse(path)?;
        if bytes.len() as u64 > TRANSFER_LIMIT {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
                max: TRANSFER_LIMIT,
            });
        }
        let bytes = bytes.to_vec();
        self.blocking(move |ws| {
            let full = ws.resolve_path(&path, FinalLink::Follow)?;
            create_parents(ws, &path)?;
            // Writing through a link (already checked to stay inside) updates its target,
            // rather than replacing the link with a file.
            let target = match fs::symlink_metadata(&full) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    fs::canonicalize(&full).map_err(|e| FileError::io(path.as_str(), e))?
                }
                _ => full,
            };
            write_atomic(&target, &bytes).map_err(|e| FileError::io(path.as_str(), e))
        })
        .await
    }
}

/// Creates the missing folders above `path` (each one resolved, so not through a bad link).
fn create_parents(ws: &Workspace, path: &WorkspacePath) -> Result<(), FileError> {
    if let Some(parent) = path.parent() {
        let full = ws.resolve_path(&parent, FinalLink::Follow)?;
        fs::create_dir_all(&full).map_err(|e| FileError::io(parent.as_str(), e))?;
    }
    Ok(())
}

fn rename_blocking(
    ws: &Workspace,
    from: &WorkspacePath,
    to: &WorkspacePath,
) -> Result<(), FileError> {
    if to.is_within(from) {
        return Err(if to == from {
            FileError::AlreadyExists(to.to_string())
        } else {
            FileError::MoveIntoItself {
                from: from.to_string(),
                to: to.to_string(),
            }
        });
    }
    let from_full = ws.resolve_path(from, FinalLink::Keep)?;
    let to_full = ws.resolve_path(to, FinalLink::Keep)?;
    let from_meta =
        fs::symlink_metadata(&from_full).map_err(|e| FileError::io(from.as_str(), e))?;
    // std's rename replaces an existing target; a UI move must not. (Checked, then renamed: a
    // process racing in between could still lose a file; RENAME_NOREPLACE would close that.)
    match fs::symlink_metadata(&to_full) {
        Ok(_) => return Err(FileError::AlreadyExists(to.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FileError::io(to.as_str(), e)),
    }
    if from_meta.is_dir() {
        // The lexical check misses `to` reaching into `from` through a link in its parents.
        if let Some(parent) = to_full.parent()
            && let (Ok(parent), Ok(from_canon)) =
                (fs::canonicalize(parent), fs::canonicalize(&from_full))
            && parent.starts_with(&from_canon)
        {
            return Err(FileError::MoveIntoItself {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
    }
    fs::rename(&from_full, &to_full).map_err(|e| match e.kind() {
        // The source exists (checked above), so a missing path is the target's folder.
        io::ErrorKind::NotFound => {
            FileError::NotFound(to.parent().map(|p| p.to_string()).unwrap_or_default())
        }
        _ => FileError::io(from.as_str(), e),
    })
}

/// Opens the regular file at `path` and reads it whole, or fails with `too_big(size)` when it
/// has more than `limit` bytes.
fn read_limited(
    ws: &Workspace,
    path: &WorkspacePath,
    limit: u64,
    too_big: impl FnOnce(u64) -> FileError,
) -> Result<Vec<u8>, FileError> {
    let full = ws.resolve_path(path, FinalLink::Follow)?;
    let io_err = |e| FileError::io(path.as_str(), e);
    // Checked before opening: opening a FIFO would block until someone writes to it.
    let meta = fs::metadata(&full).map_err(io_err)?;
    if meta.is_dir() {
        return Err(FileError::IsADirectory(path.to_string()));
    }
    if !meta.is_file() {
        return Err(FileError::NotAFile(path.to_string()));
    }
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut file = File::open(&full).map_err(io_err)?;
    // The file may have grown since the check.
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let bytes = read_up_to(&mut file, limit).map_err(io_err)?;
    if bytes.len() > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Writes `bytes` to a temporary file next to `target`, then renames it over `target`.
fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir: PathBuf = target
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent folder"))?;
    if target.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a folder"));
    }
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(&dir)?;
    temp.write_all(bytes)?;
    // The temp file is created 0600; keep an existing file's mode (an executable script stays
    // executable), and give a new one the usual 0644.
    let permissions = match fs::metadata(target) {
        Ok(meta) => meta.permissions(),
        Err(_) => fs::Permissions::from_mode(0o644),
    };
    temp.as_file().set_permissions(permissions)?;
    temp.as_file().sync_all()?;
    temp.persist(target).map_err(|e| e.error)?;
    Ok(())
}
