//! The files someone has open: their OT documents, who follows each, the last cursor of every
//! person in it, and what the disk holds, so edits are written back (debounced) and a change
//! made on disk by something else becomes an op for everyone.

use huddle_protocol::messages::{Position, Range as WireRange, ServerMessage};
use ropey::Rope;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::ot::cursor::{LineCol, index_to_line_col, line_col_to_index};
use crate::ot::{Component, Range, Selection, TextOperation};
use crate::room::presence::ConnId;

/// Edits are written to disk once the file has been quiet this long...
pub const WRITE_BACK_QUIET: Duration = Duration::from_millis(300);
/// ...or at the latest this long after the first unsaved edit, even during non-stop typing.
pub const WRITE_BACK_MAX_DELAY: Duration = Duration::from_secs(2);

/// How many recent revisions' texts are kept to place cursors sent against them. Rope clones
/// share structure, so this costs little memory.
pub const TEXT_HISTORY: usize = 200;

/// One open file.
pub struct OpenDoc {
    pub doc: crate::ot::Document,
    /// Texts of the latest revisions, oldest first.
    texts: VecDeque<(u64, Rope)>,
    pub followers: HashSet<ConnId>,
    /// Latest selection of each person, at the revision it was sent for, with their colour.
    pub cursors: HashMap<String, (u64, Selection, String)>,
    /// The text as the disk has it (last read or written by us): a watcher event whose content
    /// equals this is our own write, not somebody else's change.
    pub on_disk: String,
    /// The revision whose text `on_disk` is: a disk change is an op on top of it.
    pub disk_rev: u64,
    dirty: Option<(Instant, Instant)>,
    /// The revision last broadcast in a checksum message.
    pub checksummed_rev: u64,
}

impl OpenDoc {
    pub fn new(text: String) -> Self {
        let doc = crate::ot::Document::new(&text);
        Self {
            texts: VecDeque::from([(0, doc.text().clone())]),
            doc,
            followers: HashSet::new(),
            cursors: HashMap::new(),
            on_disk: text,
            disk_rev: 0,
            dirty: None,
            checksummed_rev: 0,
        }
    }

    /// A document brought back from a snapshot at its revision.
    pub fn restored(state: &crate::snapshot::DocumentState) -> Self {
        let clients = state
            .clients
            .iter()
            .map(|(client, seq, rev)| (crate::ot::ClientId(client.clone()), *seq, *rev));
        let doc = crate::ot::Document::restored(&state.text, state.rev, clients);
        Self {
            texts: VecDeque::from([(state.rev, doc.text().clone())]),
            doc,
            followers: HashSet::new(),
            cursors: HashMap::new(),
            on_disk: state.text.clone(),
            disk_rev: state.rev,
            dirty: None,
            checksummed_rev: state.rev,
        }
    }

    /// The full text at the current revision, for `client`: what `open` answers and what a
    /// client too far behind receives to start over.
    pub fn document_message(&self, file: &str, client: &crate::ot::ClientId) -> ServerMessage {
        let (rev, text) = self.doc.snapshot();
        ServerMessage::Document {
            file: file.to_owned(),
            rev,
            text,
            checksum: self.doc.checksum(),
            last_seq: self.doc.last_seq(client),
        }
    }

    /// What a client that had the file at revision `since` needs to catch up: the text at
    /// `since`, then every op applied after it, in order. `None` when that text or history is
    /// no longer kept (the client then gets the current document instead).
    pub fn catch_up(
        &self,
        file: &str,
        client: &crate::ot::ClientId,
        since: u64,
    ) -> Option<Vec<ServerMessage>> {
        let text = self.text_at(since)?;
        let history = self.doc.history_since(since).ok()?;
        let mut messages = vec![ServerMessage::Document {
            file: file.to_owned(),
            rev: since,
            text: text.to_string(),
            checksum: crate::ot::checksum::checksum_rope(text),
            last_seq: self.doc.last_seq(client),
        }];
        messages.extend(history.map(|applied| ServerMessage::Op {
            file: file.to_owned(),
            rev: applied.rev,
            client_id: applied.client_id.0.clone(),
            seq: applied.seq,
            // A text operation is plain data; serializing it cannot fail.
            op: serde_json::to_value(&applied.op).unwrap_or_default(),
        }));
        Some(messages)
    }

    /// Records an applied edit: its text for cursor placement, and the file for write-back.
    pub fn applied(&mut self, now: Instant) {
        self.texts
            .push_back((self.doc.rev(), self.doc.text().clone()));
        while self.texts.len() > TEXT_HISTORY {
            self.texts.pop_front();
        }
        self.touched(now);
    }

    /// The text at revision `rev`, if still kept.
    pub fn text_at(&self, rev: u64) -> Option<&Rope> {
        self.texts
            .iter()
            .find(|(r, _)| *r == rev)
            .map(|(_, text)| text)
    }

    fn touched(&mut self, now: Instant) {
        self.dirty = Some(match self.dirty {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// The text to write now, if the debounce says so.
    pub fn due_for_write(&self, now: Instant) -> bool {
        match self.dirty {
            Some((first, last)) => {
                now.saturating_duration_since(last) >= WRITE_BACK_QUIET
                    || now.saturating_duration_since(first) >= WRITE_BACK_MAX_DELAY
            }
            None => false,
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.is_some()
    }

    /// After a successful write of `text`, the document's text at `rev`.
    pub fn written(&mut self, text: String, rev: u64) {
        self.on_disk = text;
        self.disk_rev = rev;
        if self.doc.rev() == rev {
            self.dirty = None;
        }
    }
}

/// The op turning `old` into `new`: keep the common prefix and suffix, replace the middle.
/// One replace per disk change is what a `git checkout` or `sed -i` amounts to.
pub fn diff_op(old: &str, new: &str) -> TextOperation {
    let old_chars: Vec<char> = old.chars().collect();
    let new_chars: Vec<char> = new.chars().collect();
    let prefix = old_chars
        .iter()
        .zip(&new_chars)
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = old_chars.len().min(new_chars.len()) - prefix;
    let suffix = old_chars
        .iter()
        .rev()
        .zip(new_chars.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let deleted = old_chars.len() - prefix - suffix;
    let inserted: String = new_chars[prefix..new_chars.len() - suffix].iter().collect();
    let mut components = Vec::new();
    if prefix > 0 {
        components.push(Component::Retain(prefix));
    }
    if !inserted.is_empty() {
        components.push(Component::Insert(inserted));
    }
    if deleted > 0 {
        components.push(Component::Delete(deleted));
    }
    if suffix > 0 {
        components.push(Component::Retain(suffix));
    }
    TextOperation::from_components(components).unwrap_or_default()
}

/// Wire ranges (line/column) to a selection of code-point offsets in `rope`.
pub fn selection_from_wire(rope: &Rope, ranges: &[WireRange]) -> Option<Selection> {
    let index = |p: Position| {
        line_col_to_index(
            rope,
            LineCol {
                line: p.line as usize,
                col: p.column as usize,
            },
        )
        .ok()
    };
    let ranges = ranges
        .iter()
        .map(|r| {
            Some(Range {
                anchor: index(r.anchor)?,
                head: index(r.head)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Selection { ranges })
}

/// A selection back to wire ranges.
pub fn selection_to_wire(rope: &Rope, selection: &Selection) -> Vec<WireRange> {
    let position = |index: usize| {
        let at = index_to_line_col(rope, index.min(rope.len_chars()))
            .unwrap_or(LineCol { line: 0, col: 0 });
        Position {
            line: u32::try_from(at.line).unwrap_or(u32::MAX),
            column: u32::try_from(at.col).unwrap_or(u32::MAX),
        }
    };
    selection
        .ranges
        .iter()
        .map(|r| WireRange {
            anchor: position(r.anchor),
            head: position(r.head),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(old: &str, new: &str) {
        let op = diff_op(old, new);
        assert_eq!(op.apply_str(old).unwrap(), new, "{old:?} -> {new:?}");
    }

    #[test]
    fn diffs_reproduce_the_new_text() {
        check("", "");
        check("", "abc");
        check("abc", "");
        check("hello world", "hello brave world");
        check("aaaa", "aa");
        check("line1\nline2\n", "line1\nchanged\nline2\n");
        check("héllo 😀 wörld", "héllo 🎉 wörld");
    }

    #[test]
    fn debounce_waits_for_quiet_or_max_delay() {
        let mut doc = OpenDoc::new("x".into());
        let start = Instant::now();
        doc.applied(start);
        assert!(!doc.due_for_write(start + Duration::from_millis(100)));
        assert!(doc.due_for_write(start + WRITE_BACK_QUIET));
        // Typing every 100 ms still gets written after the max delay.
        let mut now = start;
        while now < start + WRITE_BACK_MAX_DELAY {
            now += Duration::from_millis(100);
            doc.applied(now);
        }
        assert!(doc.due_for_write(now));
    }

    #[test]
    fn wire_ranges_round_trip() {
        let rope = Rope::from_str("ab\ncdé\n");
        let wire = vec![WireRange {
            anchor: Position { line: 1, column: 1 },
            head: Position { line: 1, column: 3 },
        }];
        let selection = selection_from_wire(&rope, &wire).unwrap();
        assert_eq!(selection.ranges[0], Range { anchor: 4, head: 6 });
        assert_eq!(selection_to_wire(&rope, &selection), wire);
        let outside = vec![WireRange {
            anchor: Position { line: 9, column: 0 },
            head: Position { line: 9, column: 0 },
        }];
        assert!(selection_from_wire(&rope, &outside).is_none());
    }
}
