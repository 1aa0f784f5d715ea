//! Text or binary, decided from the bytes.
//!
//! A file is text (editable in the shared editor) iff it is valid UTF-8, contains no NUL byte
//! (UTF-8 allows NUL, but no text file has one and many binaries are otherwise ASCII-clean), and
//! is at most [`TEXT_LIMIT`] bytes: OT on larger documents is too slow for a shared session.
//! Everything else is downloadable only.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Largest text file, in bytes (2 MiB).
pub const TEXT_LIMIT: usize = 2 * 1024 * 1024;

/// What a file holds, as far as the UI is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Editable text.
    Text,
    /// Downloadable only.
    Binary,
    /// Not looked at (folders, links, unreadable files, or the listing's read budget ran out).
    Unknown,
}

/// Classifies a whole file's bytes.
pub fn classify(bytes: &[u8]) -> Content {
    if bytes.len() > TEXT_LIMIT || bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
        Content::Binary
    } else {
        Content::Text
    }
}

/// Reads at most `limit + 1` bytes: enough to tell "fits" from "too big" without reading a
/// huge file (or one that keeps growing) whole.
pub(crate) fn read_up_to(file: &mut File, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Classifies the regular file at `path`.
pub(crate) fn classify_file(path: &Path) -> io::Result<Content> {
    let mut file = File::open(path)?;
    Ok(classify(&read_up_to(&mut file, TEXT_LIMIT)?))
}
