//! The server's copy of one shared file: the authority that puts concurrent edits in one order.
//!
//! Every client sends an operation together with the revision it was made against
//! (`base_rev`). The server transforms it over everything applied since then, applies it, and
//! gives it the next revision number; that transformed operation is what everyone receives.
//! Only a bounded window of past operations is kept: a client further behind than that cannot be
//! caught up by transformation and must reload from a snapshot.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use ropey::Rope;
use serde::{Deserialize, Serialize};

use super::checksum::checksum_rope;
use super::cursor::Selection;
use super::operation::{OtError, TextOperation};

/// How many applied operations the server keeps for transforming late-arriving ones. At typing
/// speed across ten people that is minutes of editing; a client offline longer reloads.
pub const HISTORY_LIMIT: usize = 1000;

/// A participant's connection-independent identity for editing: it stays the same across
/// reconnects so that a resent operation can be recognised as the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        ClientId(s.to_owned())
    }
}

/// One applied operation, as kept in history and as broadcast: `rev` is the revision it
/// produced (so it applies to the document at `rev - 1`). Its author recognises its own
/// `(client_id, seq)` as the acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOp {
    pub rev: u64,
    pub client_id: ClientId,
    pub seq: u64,
    pub op: TextOperation,
}

/// What [`Document::receive`] did with an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied as revision `rev` (the new current revision), in the transformed form
    /// `op_transformed`, which is what must be broadcast.
    Applied {
        rev: u64,
        op_transformed: TextOperation,
    },
    /// This `(client_id, seq)` was applied before; nothing changed. `rev` is the revision it
    /// produced when it is the client's latest op (the normal resend case); for an even older
    /// seq only "applied by now" is known and `rev` is the current revision. The client learns
    /// of the op itself from the history it is sent on reconnect.
    Duplicate { rev: u64 },
}

/// Why an operation was refused. The document is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("revision {base_rev} is older than the kept history (oldest {oldest}); reload")]
    TooFarBehind { base_rev: u64, oldest: u64 },
    #[error("revision {base_rev} is in the future (current {current})")]
    FutureRevision { base_rev: u64, current: u64 },
    #[error(transparent)]
    Op(#[from] OtError),
}

/// Server-side state of one file.
#[derive(Debug, Clone)]
pub struct Document {
    text: Rope,
    rev: u64,
    history: VecDeque<AppliedOp>,
    history_limit: usize,
    /// Per client: the last applied `seq` and the revision it became. One op is in flight per
    /// client and seqs only grow, so "seq <= last" is exactly "already applied".
    last_seq: HashMap<ClientId, (u64, u64)>,
}

impl Document {
    /// A document brought back from a snapshot: `text` at revision `rev`, remembering each
    /// client's last applied `(seq, rev)` so a resend after the session wakes up is still
    /// recognised. No history is kept from before: a client further behind than `rev` reloads.
    pub fn restored(
        text: &str,
        rev: u64,
        clients: impl IntoIterator<Item = (ClientId, u64, u64)>,
    ) -> Self {
        let mut document = Self::new(text);
        document.rev = rev;
        document.last_seq = clients
            .into_iter()
            .map(|(client, seq, applied_rev)| (client, (seq, applied_rev)))
            .collect();
        document
    }

    /// Every client's last applied `(seq, rev)`, for a snapshot.
    pub fn clients(&self) -> impl Iterator<Item = (&ClientId, u64, u64)> {
        self.last_seq
            .iter()
            .map(|(client, (seq, rev))| (client, *seq, *rev))
    }

    /// A document with `text` at revision 0, keeping [`HISTORY_LIMIT`] operations.
    pub fn new(text: &str) -> Self {
        Self::with_history_limit(text, HISTORY_LIMIT)
    }

    /// Same, with another history bound (tests use small ones to exercise `TooFarBehind`).
    pub fn with_history_limit(text: &str, history_limit: usize) -> Self {
        Document {
            text: Rope::from_str(text),
            rev: 0,
            history: VecDeque::new(),
            history_limit,
            last_seq: HashMap::new(),
        }
    }

    pub fn rev(&self) -> u64 {
        self.rev
    }

    pub fn text(&self) -> &Rope {
        &self.text
    }

    /// The revision and full text, for a client joining or reloading.
    pub fn snapshot(&self) -> (u64, String) {
        (self.rev, self.text.to_string())
    }

    /// CRC-32 of the text (see [`super::checksum`]).
    pub fn checksum(&self) -> u32 {
        checksum_rope(&self.text)
    }

    /// The last `seq` applied for `client` (sent with a snapshot so a reloading client knows
    /// whether its in-flight operation made it).
    pub fn last_seq(&self, client: &ClientId) -> Option<u64> {
        self.last_seq.get(client).map(|&(seq, _)| seq)
    }

    /// Oldest revision a client may still send an operation against.
    pub fn oldest_rev(&self) -> u64 {
        self.rev - self.history.len() as u64
    }

    /// The operations applied after `rev`, in order: what a reconnecting client at `rev` must
    /// receive to catch up.
    pub fn history_since(
        &self,
        rev: u64,
    ) -> Result<impl ExactSizeIterator<Item = &AppliedOp>, DocError> {
        let start = self.history_index(rev)?;
        Ok(self.history.range(start..))
    }

    /// Index into `history` of the first op applied after `base_rev`.
    fn history_index(&self, base_rev: u64) -> Result<usize, DocError> {
        if base_rev > self.rev {
            return Err(DocError::FutureRevision {
                base_rev,
                current: self.rev,
            });
        }
        let oldest = self.oldest_rev();
        if base_rev < oldest {
            return Err(DocError::TooFarBehind { base_rev, oldest });
        }
        usize::try_from(base_rev - oldest).map_err(|_| DocError::TooFarBehind { base_rev, oldest })
    }

    /// Accepts `op`, made by `client_id` against revision `base_rev`, as that client's
    /// operation number `seq`.
    pub fn receive(
        &mut self,
        client_id: &ClientId,
        seq: u64,
        base_rev: u64,
        op: TextOperation,
    ) -> Result<Outcome, DocError> {
        // Dedupe first: a resend of an applied op may carry a base_rev that has since left the
        // history, and must still be recognised rather than refused.
        if let Some(&(last, applied_rev)) = self.last_seq.get(client_id)
            && seq <= last
        {
            return Ok(Outcome::Duplicate {
                rev: if seq == last { applied_rev } else { self.rev },
            });
        }
        op.check_size()?;
        let start = self.history_index(base_rev)?;
        // The op must fit the document as it was at base_rev; checked before any transform so a
        // wrong op is named as such rather than as a transform failure.
        let len_then = match self.history.get(start) {
            Some(first) => first.op.base_len(),
            None => self.text.len_chars(),
        };
        if op.base_len() != len_then {
            return Err(OtError::BaseLenMismatch {
                expected: len_then,
                actual: op.base_len(),
            }
            .into());
        }
        let mut op = op;
        for past in self.history.range(start..) {
            // The incoming op is the first argument: see `TextOperation::transform`.
            op = TextOperation::transform(&op, &past.op)?.0;
        }
        op.apply(&mut self.text)?;
        self.rev += 1;
        self.last_seq.insert(client_id.clone(), (seq, self.rev));
        self.history.push_back(AppliedOp {
            rev: self.rev,
            client_id: client_id.clone(),
            seq,
            op: op.clone(),
        });
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        Ok(Outcome::Applied {
            rev: self.rev,
            op_transformed: op,
        })
    }

    /// Brings a selection `client` made at revision `rev` up to the current revision, so a
    /// cursor sent while others were typing lands where its owner meant it.
    pub fn transform_selection(
        &self,
        client: &ClientId,
        rev: u64,
        selection: &Selection,
    ) -> Result<Selection, DocError> {
        let mut sel = selection.clone();
        for past in self.history_since(rev)? {
            sel = sel.transform(&past.op, past.client_id == *client);
        }
        Ok(sel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> TextOperation {
        serde_json::from_str(json).unwrap()
    }

    fn id(s: &str) -> ClientId {
        ClientId::from(s)
    }

    #[test]
    fn applies_and_transforms_concurrent_ops() {
        let mut doc = Document::new("ab");
        // Both made against revision 0.
        let r1 = doc.receive(&id("x"), 1, 0, op(r#"[1, "X", 1]"#)).unwrap();
        assert_eq!(
            r1,
            Outcome::Applied {
                rev: 1,
                op_transformed: op(r#"[1, "X", 1]"#)
            }
        );
        let r2 = doc.receive(&id("y"), 1, 0, op(r#"[2, "Y😀"]"#)).unwrap();
        assert_eq!(
            r2,
            Outcome::Applied {
                rev: 2,
                op_transformed: op(r#"[3, "Y😀"]"#)
            }
        );
        assert_eq!(doc.snapshot(), (2, "aXbY😀".to_owned()));
        assert_eq!(doc.history_since(0).unwrap().len(), 2);
        assert_eq!(doc.history_since(2).unwrap().len(), 0);
    }

    #[test]
    fn incoming_insert_wins_the_tie() {
        let mut doc = Document::new("");
        doc.receive(&id("x"), 1, 0, op(r#"["first"]"#)).unwrap();
        doc.receive(&id("y"), 1, 0, op(r#"["second"]"#)).unwrap();
        assert_eq!(doc.snapshot().1, "secondfirst");
    }

    #[test]
    fn resend_is_not_applied_twice() {
        let mut doc = Document::new("");
        doc.receive(&id("x"), 1, 0, op(r#"["a"]"#)).unwrap();
        doc.receive(&id("y"), 1, 1, op(r#"[1, "b"]"#)).unwrap();
        assert_eq!(
            doc.receive(&id("x"), 1, 0, op(r#"["a"]"#)),
            Ok(Outcome::Duplicate { rev: 1 })
        );
        assert_eq!(doc.snapshot(), (2, "ab".to_owned()));
        // The next seq is applied normally.
        assert!(matches!(
            doc.receive(&id("x"), 2, 2, op("[2]")),
            Ok(Outcome::Applied { rev: 3, .. })
        ));
        assert_eq!(doc.last_seq(&id("x")), Some(2));
    }

    #[test]
    fn refuses_bad_revisions_and_lengths() {
        let mut doc = Document::new("abc");
        assert_eq!(
            doc.receive(&id("x"), 1, 1, op("[3]")),
            Err(DocError::FutureRevision {
                base_rev: 1,
                current: 0
            })
        );
        assert!(matches!(
            doc.receive(&id("x"), 1, 0, op("[2]")),
            Err(DocError::Op(OtError::BaseLenMismatch {
                expected: 3,
                actual: 2
            }))
        ));
        let mut doc = Document::with_history_limit("", 2);
        for seq in 1..=3u64 {
            let mut o = TextOperation::new();
            o.retain(seq as usize - 1).insert("z");
            doc.receive(&id("x"), seq, seq - 1, o).unwrap();
        }
        assert_eq!(doc.oldest_rev(), 1);
        assert_eq!(
            doc.receive(&id("y"), 1, 0, op(r#"["q"]"#)),
            Err(DocError::TooFarBehind {
                base_rev: 0,
                oldest: 1
            })
        );
        assert!(doc.history_since(0).is_err());
        // Against revision 1 (length 1) it is still accepted.
        assert!(doc.receive(&id("y"), 1, 1, op(r#"["q", 1]"#)).is_ok());
        assert_eq!(doc.snapshot(), (4, "qzzz".to_owned()));
    }

    #[test]
    fn checksum_matches_text() {
        let mut doc = Document::new("漢");
        doc.receive(&id("x"), 1, 0, op(r#"[1, "😀"]"#)).unwrap();
        assert_eq!(doc.checksum(), crc32fast::hash("漢😀".as_bytes()));
    }
}
