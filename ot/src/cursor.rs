//! Cursors and selections: keeping a position pointing at the same text while others edit.
//!
//! Positions are code-point indexes into the document (the same unit as operations). Editors
//! speak (line, column); the conversions at the bottom translate on a rope.

use ropey::Rope;
use serde::{Deserialize, Serialize};

use super::operation::{Component, TextOperation};

/// Which side of text inserted exactly at a position the position ends up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    /// Stay in front of the inserted text.
    Before,
    /// Move past the inserted text (what ot.js `Selection.transform` does for every cursor).
    After,
}

/// Where `index` (a position in the document before `op`) is after `op`.
///
/// Same walk as ot.js `transformIndex`: inserts before the position push it right, deletes
/// before it pull it left (by at most the part before it), and text inserted exactly at the
/// position is decided by `bias`. A position past the end is treated as the end.
pub fn transform_index(index: usize, op: &TextOperation, bias: Bias) -> usize {
    let index = index.min(op.base_len());
    let mut new_index = index;
    // Characters of the old document walked over so far.
    let mut pos = 0usize;
    for c in op.components() {
        match c {
            Component::Retain(n) => {
                pos += n;
                if pos > index {
                    break;
                }
            }
            Component::Insert(s) => {
                if pos < index || bias == Bias::After {
                    new_index += s.chars().count();
                } else {
                    break;
                }
            }
            Component::Delete(n) => {
                new_index -= (pos + n).min(index) - pos;
                pos += n;
                if pos > index {
                    break;
                }
            }
        }
    }
    new_index
}

/// One selected range; `anchor == head` is a plain cursor. `head` is where the caret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub anchor: usize,
    pub head: usize,
}

impl Range {
    pub fn cursor(at: usize) -> Self {
        Range {
            anchor: at,
            head: at,
        }
    }
}

/// A (multi-)selection, as ot.js has it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Selection {
    pub ranges: Vec<Range>,
}

impl Selection {
    pub fn cursor(at: usize) -> Self {
        Selection {
            ranges: vec![Range::cursor(at)],
        }
    }

    /// Transforms every endpoint through `op`. `own` says whether `op` was made by the owner of
    /// this selection: the author typed at its own caret, so text inserted there goes before its
    /// caret ([`Bias::After`]); somebody else's caret at the same spot stays put in front of the
    /// new text ([`Bias::Before`]) instead of being dragged along by another user's typing.
    /// (ot.js uses `After` for everyone; call [`transform_index`] directly for that.)
    pub fn transform(&self, op: &TextOperation, own: bool) -> Self {
        let bias = if own { Bias::After } else { Bias::Before };
        Selection {
            ranges: self
                .ranges
                .iter()
                .map(|r| Range {
                    anchor: transform_index(r.anchor, op, bias),
                    head: transform_index(r.head, op, bias),
                })
                .collect(),
        }
    }
}

/// A position as editors show it: 0-based line, and column in code points within the line.
/// Lines end at '\n' only (ropey is built without its CR/Unicode line-break features), as
/// `text.split("\n")` counts them in the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("index {index} is past the end of the document ({len} characters)")]
    Index { index: usize, len: usize },
    #[error("line {line} does not exist (the document has {lines} lines)")]
    Line { line: usize, lines: usize },
    #[error("column {col} is past the end of line {line} ({len} characters)")]
    Column { line: usize, col: usize, len: usize },
}

/// Code points on `line`, not counting its '\n'.
fn line_len(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let len = slice.len_chars();
    if len > 0 && slice.char(len - 1) == '\n' {
        len - 1
    } else {
        len
    }
}

/// (line, column) of a code-point index; the end of the document is a valid position.
pub fn index_to_line_col(rope: &Rope, index: usize) -> Result<LineCol, PositionError> {
    let len = rope.len_chars();
    let line = rope
        .try_char_to_line(index)
        .map_err(|_| PositionError::Index { index, len })?;
    let start = rope
        .try_line_to_char(line)
        .map_err(|_| PositionError::Index { index, len })?;
    Ok(LineCol {
        line,
        col: index - start,
    })
}

/// Code-point index of a (line, column). The column may be the line's length (the caret after
/// its last character) but not more.
pub fn line_col_to_index(rope: &Rope, at: LineCol) -> Result<usize, PositionError> {
    let lines = rope.len_lines();
    if at.line >= lines {
        return Err(PositionError::Line {
            line: at.line,
            lines,
        });
    }
    let len = line_len(rope, at.line);
    if at.col > len {
        return Err(PositionError::Column {
            line: at.line,
            col: at.col,
            len,
        });
    }
    let start = rope
        .try_line_to_char(at.line)
        .map_err(|_| PositionError::Line {
            line: at.line,
            lines,
        })?;
    Ok(start + at.col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> TextOperation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inserts_and_deletes_before_move_the_index() {
        let o = op(r#"["😀😀", 5]"#);
        assert_eq!(transform_index(3, &o, Bias::Before), 5);
        let o = op("[1, -2, 2]");
        assert_eq!(transform_index(0, &o, Bias::Before), 0);
        assert_eq!(transform_index(2, &o, Bias::Before), 1); // inside the deleted range
        assert_eq!(transform_index(4, &o, Bias::Before), 2);
        assert_eq!(transform_index(5, &o, Bias::Before), 3); // end of document
    }

    #[test]
    fn insert_at_the_index_follows_bias() {
        let o = op(r#"[2, "漢字", 1]"#);
        assert_eq!(transform_index(2, &o, Bias::Before), 2);
        assert_eq!(transform_index(2, &o, Bias::After), 4);
        let s = Selection {
            ranges: vec![Range { anchor: 1, head: 2 }],
        };
        assert_eq!(
            s.transform(&o, false).ranges,
            vec![Range { anchor: 1, head: 2 }]
        );
        assert_eq!(
            s.transform(&o, true).ranges,
            vec![Range { anchor: 1, head: 4 }]
        );
    }

    #[test]
    fn insert_after_a_delete_at_the_index() {
        // "abcd", delete "bc" and insert "X" there; a cursor after "c" lands after or before X.
        let o = op(r#"[1, "X", -2, 1]"#);
        assert_eq!(o.apply_str("abcd").unwrap(), "aXd");
        assert_eq!(transform_index(3, &o, Bias::Before), 2);
        assert_eq!(transform_index(1, &o, Bias::Before), 1);
        assert_eq!(transform_index(1, &o, Bias::After), 2);
    }

    #[test]
    fn index_past_end_is_clamped() {
        assert_eq!(transform_index(99, &op(r#"[2, "x"]"#), Bias::Before), 2);
        assert_eq!(transform_index(99, &op(r#"[2, "x"]"#), Bias::After), 3);
        assert_eq!(transform_index(99, &op("[1, -1]"), Bias::After), 1);
    }

    #[test]
    fn line_col_round_trip_with_non_ascii() {
        let rope = Rope::from_str("héllo\n😀e\u{301}x\n\n漢");
        let cases = [
            (0, LineCol { line: 0, col: 0 }),
            (5, LineCol { line: 0, col: 5 }),
            (6, LineCol { line: 1, col: 0 }),
            (9, LineCol { line: 1, col: 3 }),
            (11, LineCol { line: 2, col: 0 }),
            (12, LineCol { line: 3, col: 0 }),
            (13, LineCol { line: 3, col: 1 }),
        ];
        for (index, lc) in cases {
            assert_eq!(index_to_line_col(&rope, index), Ok(lc), "index {index}");
            assert_eq!(line_col_to_index(&rope, lc), Ok(index), "{lc:?}");
        }
        assert!(index_to_line_col(&rope, 14).is_err());
        assert_eq!(
            line_col_to_index(&rope, LineCol { line: 0, col: 6 }),
            Err(PositionError::Column {
                line: 0,
                col: 6,
                len: 5
            })
        );
        assert_eq!(
            line_col_to_index(&rope, LineCol { line: 4, col: 0 }),
            Err(PositionError::Line { line: 4, lines: 4 })
        );
    }

    #[test]
    fn only_newline_breaks_lines() {
        let rope = Rope::from_str("a\r\nb\u{2028}c\rd");
        assert_eq!(rope.len_lines(), 2);
        // The '\r' of a CRLF belongs to the line's content.
        assert_eq!(line_col_to_index(&rope, LineCol { line: 0, col: 2 }), Ok(2));
        assert_eq!(index_to_line_col(&rope, 3), Ok(LineCol { line: 1, col: 0 }));
    }
}
