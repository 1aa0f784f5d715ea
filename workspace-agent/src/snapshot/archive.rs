//! Writing and reading the snapshot archive. Blocking I/O: callers run these on a blocking
//! thread.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path};
use tracing::warn;

use super::SnapshotError;
use super::manifest::{
    DocumentEntry, DocumentState, MANIFEST_VERSION, Manifest, Restored, TerminalEntry,
    TerminalState,
};
use crate::files::Workspace;

const WORKSPACE_PREFIX: &str = "workspace";

/// Writes the archive for the workspace at `root` to `out`.
pub fn write_archive(
    root: &Path,
    session_id: &str,
    documents: &[DocumentState],
    terminals: &[TerminalState],
    out: impl Write,
) -> Result<(), SnapshotError> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        session_id: session_id.to_owned(),
        documents: documents
            .iter()
            .map(|d| DocumentEntry {
                path: d.path.clone(),
                rev: d.rev,
                clients: d.clients.clone(),
            })
            .collect(),
        terminals: terminals
            .iter()
            .map(|t| TerminalEntry {
                id: t.id,
                cols: t.cols,
                rows: t.rows,
            })
            .collect(),
    };
    // The manifest first, so a reader learns the format before anything else.
    append_bytes(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    for (index, document) in documents.iter().enumerate() {
        append_bytes(
            &mut tar,
            &format!("documents/{index}.txt"),
            document.text.as_bytes(),
        )?;
    }
    for terminal in terminals {
        append_bytes(
            &mut tar,
            &format!("terminals/{}.txt", terminal.id),
            terminal.scrollback.as_bytes(),
        )?;
    }
    tar.append_dir_all(WORKSPACE_PREFIX, root)?;
    tar.into_inner()?.flush()?;
    Ok(())
}

fn append_bytes(
    tar: &mut tar::Builder<impl Write>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, path, bytes)
}

/// Restores an archive into `workspace` (which should be empty) and returns the documents and
/// terminals to bring back. Entries that would leave the workspace, and special files, are
/// refused.
pub fn read_archive(input: impl Read, workspace: &Workspace) -> Result<Restored, SnapshotError> {
    let mut archive = tar::Archive::new(input);
    let mut manifest: Option<Manifest> = None;
    let mut document_texts = std::collections::HashMap::new();
    let mut terminal_texts = std::collections::HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "manifest.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            let parsed: Manifest = serde_json::from_slice(&bytes)?;
            if parsed.version != MANIFEST_VERSION {
                return Err(SnapshotError::Version {
                    found: parsed.version,
                });
            }
            manifest = Some(parsed);
        } else if let Some(index) = path
            .strip_prefix("documents/")
            .and_then(|n| n.strip_suffix(".txt"))
        {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            document_texts.insert(index.to_owned(), text);
        } else if let Some(id) = path
            .strip_prefix("terminals/")
            .and_then(|n| n.strip_suffix(".txt"))
        {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            terminal_texts.insert(id.to_owned(), text);
        } else if let Some(relative) = workspace_path(&path) {
            restore_entry(&mut entry, workspace, &relative)?;
        } else {
            return Err(SnapshotError::BadEntry {
                path,
                reason: "unknown location in the archive".into(),
            });
        }
    }
    let manifest = manifest.ok_or(SnapshotError::NoManifest)?;

    let mut restored = Restored::default();
    for (index, document) in manifest.documents.into_iter().enumerate() {
        let Some(text) = document_texts.remove(&index.to_string()) else {
            warn!(path = %document.path, "snapshot lists a document without its text");
            continue;
        };
        // The document's text is what participants last saw; make the file match it.
        let target =
            workspace
                .resolve(&document.path)
                .map_err(|error| SnapshotError::BadEntry {
                    path: document.path.clone(),
                    reason: error.to_string(),
                })?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &text)?;
        restored.documents.push(DocumentState {
            path: document.path,
            rev: document.rev,
            text,
            clients: document.clients,
        });
    }
    for terminal in manifest.terminals {
        let scrollback = terminal_texts
            .remove(&terminal.id.to_string())
            .unwrap_or_default();
        restored.terminals.push(TerminalState {
            id: terminal.id,
            cols: terminal.cols,
            rows: terminal.rows,
            scrollback,
        });
    }
    Ok(restored)
}

/// `workspace/a/b` → `a/b`; `workspace` itself → empty; anything else → None.
fn workspace_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(WORKSPACE_PREFIX)?;
    if rest.is_empty() || rest == "/" {
        return Some(String::new());
    }
    Some(rest.strip_prefix('/')?.trim_end_matches('/').to_owned())
}

fn restore_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    workspace: &Workspace,
    relative: &str,
) -> Result<(), SnapshotError> {
    if relative.is_empty() {
        return Ok(());
    }
    let bad = |reason: String| SnapshotError::BadEntry {
        path: relative.to_owned(),
        reason,
    };
    if Path::new(relative)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("not a plain relative path".into()));
    }
    let target = workspace
        .resolve(relative)
        .map_err(|error| bad(error.to_string()))?;
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    match entry.header().entry_type() {
        tar::EntryType::Directory => {
            std::fs::create_dir_all(&target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o700))?;
        }
        tar::EntryType::Regular => {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::File::create(&target)?;
            std::io::copy(entry, &mut file)?;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()?
                .ok_or_else(|| bad("symlink without a target".into()))?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // A link is restored as a link; the agent never follows one out of the workspace.
            std::os::unix::fs::symlink(link, &target)?;
        }
        other => {
            warn!(path = relative, kind = ?other, "skipping a special file in the snapshot");
        }
    }
    Ok(())
}
