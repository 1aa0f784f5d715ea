//! The client half of the protocol (ot.js `Client`), in Rust.
//!
//! It is the reference the TypeScript client follows and what the network simulation runs.
//! A client has at most one operation in flight: while waiting for its acknowledgement, further
//! local edits are composed into a single buffer. That keeps the server's transform work per
//! client linear and makes "the same op" well defined for dedupe after a reconnect.

use ropey::Rope;
use serde::{Deserialize, Serialize};

use super::checksum::checksum_rope;
use super::document::{AppliedOp, ClientId};
use super::operation::{OtError, TextOperation};

/// An operation on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub client_id: ClientId,
    pub seq: u64,
    pub base_rev: u64,
    pub op: TextOperation,
}

/// An operation sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub seq: u64,
    pub op: TextOperation,
}

/// Where the client is in the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing unacknowledged: the local text is the server's text at `rev`.
    Synchronized,
    /// One op sent, waiting for the server to echo its `(client_id, seq)`.
    AwaitingConfirm(InFlight),
    /// As above, plus local edits made meanwhile, composed into one op not yet sent.
    AwaitingWithBuffer(InFlight, TextOperation),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server skipped or repeated a revision: the client cannot continue by transformation
    /// and must reload a snapshot.
    #[error("expected revision {expected} from the server, got {got}")]
    RevisionGap { expected: u64, got: u64 },
    #[error(transparent)]
    Op(#[from] OtError),
}

/// One participant's copy of a document.
#[derive(Debug, Clone)]
pub struct Client {
    id: ClientId,
    /// The last server revision applied here.
    rev: u64,
    /// The seq the next sent op gets; seqs start at 1.
    next_seq: u64,
    state: State,
    text: Rope,
}

impl Client {
    /// A client that has loaded the server's snapshot `(rev, text)`.
    pub fn new(id: ClientId, rev: u64, text: &str) -> Self {
        Client {
            id,
            rev,
            next_seq: 1,
            state: State::Synchronized,
            text: Rope::from_str(text),
        }
    }

    pub fn id(&self) -> &ClientId {
        &self.id
    }

    pub fn rev(&self) -> u64 {
        self.rev
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn text(&self) -> &Rope {
        &self.text
    }

    pub fn checksum(&self) -> u32 {
        checksum_rope(&self.text)
    }

    fn submission(&self, inflight: &InFlight) -> Submission {
        Submission {
            client_id: self.id.clone(),
            seq: inflight.seq,
            base_rev: self.rev,
            op: inflight.op.clone(),
        }
    }

    fn start_sending(&mut self, op: TextOperation) -> Submission {
        let inflight = InFlight {
            seq: self.next_seq,
            op,
        };
        self.next_seq += 1;
        let sub = self.submission(&inflight);
        self.state = State::AwaitingConfirm(inflight);
        sub
    }

    /// The user edited the text: applies `op` locally and returns what to send, if anything
    /// (nothing while another op is in flight; it is buffered instead).
    pub fn apply_local(&mut self, op: TextOperation) -> Result<Option<Submission>, ClientError> {
        op.apply(&mut self.text)?;
        if op.is_noop() {
            return Ok(None);
        }
        let state = std::mem::replace(&mut self.state, State::Synchronized);
        let (state, out) = match state {
            State::Synchronized => return Ok(Some(self.start_sending(op))),
            State::AwaitingConfirm(inflight) => (State::AwaitingWithBuffer(inflight, op), None),
            State::AwaitingWithBuffer(inflight, buffer) => {
                match TextOperation::compose(&buffer, &op) {
                    Ok(buffer) => (State::AwaitingWithBuffer(inflight, buffer), None),
                    Err(e) => {
                        // Unreachable (the buffer ends where the text is); restore, then report.
                        self.state = State::AwaitingWithBuffer(inflight, buffer);
                        return Err(e.into());
                    }
                }
            }
        };
        self.state = state;
        Ok(out)
    }

    /// An operation broadcast by the server (live, or replayed after a reconnect). If it is our
    /// own in-flight op, it is the acknowledgement and the buffer (if any) is sent next;
    /// otherwise it is transformed over our unacknowledged edits and applied.
    pub fn apply_server(&mut self, applied: &AppliedOp) -> Result<Option<Submission>, ClientError> {
        if applied.rev != self.rev + 1 {
            return Err(ClientError::RevisionGap {
                expected: self.rev + 1,
                got: applied.rev,
            });
        }
        let own = |s: &InFlight| applied.client_id == self.id && applied.seq == s.seq;
        let state = std::mem::replace(&mut self.state, State::Synchronized);
        let (state, out) = match state {
            State::AwaitingConfirm(inflight) if own(&inflight) => {
                self.rev += 1;
                (State::Synchronized, None)
            }
            State::AwaitingWithBuffer(inflight, buffer) if own(&inflight) => {
                self.rev += 1;
                return Ok(Some(self.start_sending(buffer)));
            }
            State::Synchronized => {
                if let Err(e) = applied.op.apply(&mut self.text) {
                    return Err(e.into());
                }
                self.rev += 1;
                (State::Synchronized, None)
            }
            State::AwaitingConfirm(inflight) => {
                // Our op is first: the server will transform it as the incoming one.
                let transformed = TextOperation::transform(&inflight.op, &applied.op)
                    .and_then(|(mine, theirs)| theirs.apply(&mut self.text).map(|()| mine));
                match transformed {
                    Ok(mine) => {
                        self.rev += 1;
                        (
                            State::AwaitingConfirm(InFlight {
                                seq: inflight.seq,
                                op: mine,
                            }),
                            None,
                        )
                    }
                    Err(e) => {
                        self.state = State::AwaitingConfirm(inflight);
                        return Err(e.into());
                    }
                }
            }
            State::AwaitingWithBuffer(inflight, buffer) => {
                let transformed = TextOperation::transform(&inflight.op, &applied.op).and_then(
                    |(mine, theirs)| {
                        let (buf, theirs) = TextOperation::transform(&buffer, &theirs)?;
                        theirs.apply(&mut self.text)?;
                        Ok((mine, buf))
                    },
                );
                match transformed {
                    Ok((mine, buf)) => {
                        self.rev += 1;
                        let inflight = InFlight {
                            seq: inflight.seq,
                            op: mine,
                        };
                        (State::AwaitingWithBuffer(inflight, buf), None)
                    }
                    Err(e) => {
                        self.state = State::AwaitingWithBuffer(inflight, buffer);
                        return Err(e.into());
                    }
                }
            }
        };
        self.state = state;
        Ok(out)
    }

    /// After a reconnect (and after asking for the history since [`rev`](Self::rev)): the
    /// in-flight op again, with the same `seq`, against the current revision. If the server had
    /// applied it already, it answers `Duplicate` and the replayed history carries the ack.
    pub fn resend(&self) -> Option<Submission> {
        match &self.state {
            State::Synchronized => None,
            State::AwaitingConfirm(inflight) | State::AwaitingWithBuffer(inflight, _) => {
                Some(self.submission(inflight))
            }
        }
    }

    /// Reloads from a snapshot (the server said we are too far behind). Edits not yet
    /// acknowledged cannot be carried over without the history they were made against; they
    /// are dropped and `true` is returned so the UI can say so. `last_seq` is the server's last
    /// applied seq for this client; sending continues after it.
    pub fn reload(&mut self, rev: u64, text: &str, last_seq: Option<u64>) -> bool {
        let lost = match &self.state {
            State::Synchronized => false,
            State::AwaitingConfirm(inflight) => last_seq.is_none_or(|s| s < inflight.seq),
            State::AwaitingWithBuffer(..) => true,
        };
        self.rev = rev;
        self.text = Rope::from_str(text);
        self.state = State::Synchronized;
        self.next_seq = self.next_seq.max(last_seq.unwrap_or(0) + 1);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> TextOperation {
        serde_json::from_str(json).unwrap()
    }

    fn applied(rev: u64, who: &str, seq: u64, o: &str) -> AppliedOp {
        AppliedOp {
            rev,
            client_id: ClientId::from(who),
            seq,
            op: op(o),
        }
    }

    #[test]
    fn walks_the_states() {
        let mut c = Client::new(ClientId::from("me"), 0, "ab");
        let sub = c.apply_local(op(r#"["1", 2]"#)).unwrap().unwrap();
        assert_eq!((sub.seq, sub.base_rev), (1, 0));
        assert!(matches!(c.state(), State::AwaitingConfirm(_)));
        assert_eq!(c.apply_local(op(r#"[3, "2"]"#)).unwrap(), None);
        assert_eq!(c.apply_local(op(r#"[4, "3"]"#)).unwrap(), None);
        match c.state() {
            State::AwaitingWithBuffer(_, buf) => assert_eq!(buf, &op(r#"[3, "23"]"#)),
            s => panic!("unexpected {s:?}"),
        }
        // Someone else's op arrives first and is transformed in.
        assert_eq!(
            c.apply_server(&applied(1, "you", 1, r#"[1, "é", 1]"#))
                .unwrap(),
            None
        );
        assert_eq!(c.text().to_string(), "1aéb23");
        assert_eq!(c.rev(), 1);
        // The ack sends the buffer, transformed, against revision 2.
        let next = c
            .apply_server(&applied(2, "me", 1, r#"["1", 3]"#))
            .unwrap()
            .unwrap();
        assert_eq!((next.seq, next.base_rev), (2, 2));
        assert_eq!(next.op, op(r#"[4, "23"]"#));
        assert_eq!(c.resend(), Some(next.clone()));
        assert_eq!(
            c.apply_server(&applied(3, "me", 2, r#"[4, "23"]"#))
                .unwrap(),
            None
        );
        assert_eq!(c.state(), &State::Synchronized);
        assert_eq!(c.resend(), None);
    }

    #[test]
    fn refuses_revision_gaps_and_bad_ops() {
        let mut c = Client::new(ClientId::from("me"), 5, "ab");
        assert_eq!(
            c.apply_server(&applied(7, "you", 1, "[2]")),
            Err(ClientError::RevisionGap {
                expected: 6,
                got: 7
            })
        );
        assert!(c.apply_server(&applied(6, "you", 1, "[3]")).is_err());
        assert!(c.apply_local(op("[9]")).is_err());
        assert_eq!(c.text().to_string(), "ab");
        assert_eq!(c.rev(), 5);
    }

    #[test]
    fn reload_reports_lost_edits() {
        let mut c = Client::new(ClientId::from("me"), 0, "");
        c.apply_local(op(r#"["x"]"#)).unwrap();
        assert!(!c.reload(10, "server x", Some(1)));
        assert_eq!(c.text().to_string(), "server x");
        let sub = c.apply_local(op(r#"[8, "y"]"#)).unwrap().unwrap();
        assert_eq!((sub.seq, sub.base_rev), (2, 10));
        assert!(c.reload(12, "other", Some(1)));
    }
}
