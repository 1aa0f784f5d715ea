//! Messages between a participant's browser and the session's agent, one JSON object per
//! WebSocket text frame, tagged by `type`. Versioned: the first message is `join` with
//! [`PROTOCOL_VERSION`]; an agent refuses versions it does not speak.
//!
//! Positions are Unicode code points. Text operations travel in the ot.js array form
//! (`[retain, "insert", -delete, ...]`) and are checked by the agent's OT module, which is why
//! they are carried here as raw JSON.

use serde::{Deserialize, Serialize};

use crate::Role;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest WebSocket message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most people in one session.
pub const MAX_PARTICIPANTS: usize = 10;
/// How often a client sends `heartbeat`.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 15;
/// A participant silent for this long is considered gone.
pub const ZOMBIE_AFTER_SECS: u64 = 30;

/// A browser → agent message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message on a connection. `client_id` is stable across reconnects of one tab, so
    /// resent ops are recognized.
    Join {
        version: u32,
        token: String,
        client_id: String,
    },
    Heartbeat,
    /// Start following a file: the agent answers with `document`. A client that already had
    /// the file at revision `since` (reconnecting, or reloading with unsent edits) gets the
    /// text at `since` and every op after it instead, ending with a `checksum`, so its
    /// unacknowledged edits can be transformed and resent. If that history is gone, the
    /// `document` is the current one (and its `rev` is not `since`).
    Open {
        file: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    Close {
        file: String,
    },
    /// An edit to `file` made on top of revision `base_rev`; `seq` counts this client's ops.
    Op {
        file: String,
        base_rev: u64,
        seq: u64,
        op: serde_json::Value,
    },
    /// Where this participant's cursors and selections are, as of revision `rev`.
    Cursor {
        file: String,
        rev: u64,
        ranges: Vec<Range>,
    },
    /// Which file this participant looks at and the first line on screen, so others can
    /// follow them.
    Viewport {
        file: String,
        top_line: u32,
    },
    CreateFile {
        path: String,
    },
    CreateDir {
        path: String,
    },
    Delete {
        path: String,
    },
    /// Rename or move.
    Rename {
        from: String,
        to: String,
    },
    TerminalOpen {
        cols: u16,
        rows: u16,
    },
    /// Start receiving a terminal's output: the agent answers with `terminal_snapshot`.
    TerminalAttach {
        id: u32,
    },
    /// Keystrokes, as xterm.js reports them.
    TerminalInput {
        id: u32,
        data: String,
    },
    TerminalResize {
        id: u32,
        cols: u16,
        rows: u16,
    },
    TerminalClose {
        id: u32,
    },
    /// Enter the voice room: the client follows with its `voice_offer` (its microphone track).
    VoiceJoin,
    VoiceLeave,
    /// SDP offer from the client: the first negotiation, or a retry after one failed.
    VoiceOffer {
        sdp: String,
    },
    /// The client's answer to the agent's (re)negotiation offer.
    VoiceAnswer {
        sdp: String,
    },
    /// A trickled ICE candidate (`RTCIceCandidateInit`); `candidate` empty ends gathering.
    VoiceCandidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
    /// Mute or unmute this participant's microphone; the agent stops forwarding a muted
    /// publisher's packets.
    VoiceMute {
        muted: bool,
    },
}

/// A selection from `anchor` to `head` (equal for a plain cursor), in line/column code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub anchor: Position,
    pub head: Position,
}

/// Zero-based line and column (in code points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// An agent → browser message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `join`: who you are, who is here, the files and terminals.
    Welcome {
        version: u32,
        you: Participant,
        participants: Vec<Participant>,
        tree: Vec<TreeEntry>,
        terminals: Vec<u32>,
    },
    ParticipantJoined {
        participant: Participant,
    },
    ParticipantLeft {
        user_id: String,
    },
    /// A file's full text at a revision (on `open`, or to resynchronize a client).
    Document {
        file: String,
        rev: u64,
        text: String,
        checksum: u32,
        /// The last of this client's ops applied to the file, so after a reconnect it knows
        /// whether its in-flight op needs resending.
        last_seq: Option<u64>,
    },
    /// An op applied as revision `rev`. The author recognizes its own `(client_id, seq)` as
    /// the acknowledgement.
    Op {
        file: String,
        rev: u64,
        client_id: String,
        seq: u64,
        op: serde_json::Value,
    },
    Cursor {
        file: String,
        rev: u64,
        user_id: String,
        color: String,
        ranges: Vec<Range>,
    },
    /// Someone else's [`ClientMessage::Viewport`].
    Viewport {
        user_id: String,
        file: String,
        top_line: u32,
    },
    /// CRC-32 of a file's text at `rev`, so clients can detect divergence.
    Checksum {
        file: String,
        rev: u64,
        checksum: u32,
    },
    /// A file or folder was created, deleted, renamed or changed (by anyone, or on disk).
    FileChanged {
        change: FileChange,
    },
    TerminalOpened {
        id: u32,
        cols: u16,
        rows: u16,
    },
    /// From the gateway: something is about to happen to the whole session (it will be saved
    /// and stopped at `at`, Unix seconds).
    Notice {
        kind: NoticeKind,
        message: String,
        at: u64,
    },
    /// Screen and scrollback to paint before the output stream (base64), for a terminal of
    /// `cols` x `rows`; sent again after a resize, or when this connection fell behind.
    TerminalSnapshot {
        id: u32,
        cols: u16,
        rows: u16,
        data: String,
    },
    /// Output bytes (base64).
    TerminalOutput {
        id: u32,
        data: String,
    },
    TerminalExited {
        id: u32,
        code: Option<u32>,
    },
    /// The agent's SDP offer: sent when people join or leave voice, so the client receives
    /// (or stops receiving) their audio. Each forwarded track's stream id is its publisher's
    /// user id.
    VoiceOffer {
        sdp: String,
    },
    /// The agent's answer to a client `voice_offer`.
    VoiceAnswer {
        sdp: String,
    },
    VoiceCandidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
    /// Someone's voice state changed (joined, left, muted, unmuted); sent to everyone.
    VoiceState {
        user_id: String,
        voice: Option<VoiceState>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A participant's state in the voice room; the agent's is authoritative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceState {
    pub muted: bool,
}

/// Someone in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: String,
    pub name: String,
    pub role: Role,
    /// CSS colour chosen by the agent, distinct within the session.
    pub color: String,
    /// In the voice room, and whether muted; absent when not in voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceState>,
}

/// One entry of the workspace tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Binary files are offered for download, never opened for editing.
    pub binary: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
}

/// Why the gateway sends a [`ServerMessage::Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Nobody has done anything for a while: the session will be saved and stopped.
    IdleStop,
    /// The session reaches its `maxLifetime`.
    MaxLifetime,
    /// The session is being shut down for another reason.
    Shutdown,
}

/// A discrete change to the workspace tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileChange {
    Created { entry: TreeEntry },
    Deleted { path: String },
    Renamed { from: String, to: String },
    Modified { path: String },
}

/// Machine-readable error kinds; `message` says the rest in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, an unknown `type`, or missing fields.
    Malformed,
    UnsupportedVersion,
    /// Missing, forged or expired token; or a message before `join`.
    Unauthorized,
    RoomFull,
    /// The role does not allow this (a viewer editing, typing, or changing files).
    Forbidden,
    TooLarge,
    InvalidPath,
    NotFound,
    AlreadyExists,
    /// The op does not fit the document, or cannot be transformed.
    BadOp,
    /// The client is too far behind; a fresh `document` follows.
    Resync,
    /// Voice negotiation failed (bad SDP, no connection); the message says why. Send
    /// `voice_join` again to retry.
    VoiceFailed,
    Internal,
}

impl ClientMessage {
    /// Parses one frame, mapping every failure to a message that can be sent back.
    pub fn parse(text: &str) -> Result<Self, (ErrorCode, String)> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err((
                ErrorCode::TooLarge,
                format!("message exceeds {MAX_MESSAGE_BYTES} bytes"),
            ));
        }
        serde_json::from_str(text)
            .map_err(|error| (ErrorCode::Malformed, format!("malformed message: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parses() {
        let message =
            ClientMessage::parse(r#"{"type":"join","version":1,"token":"t","client_id":"c"}"#)
                .unwrap();
        assert_eq!(
            message,
            ClientMessage::Join {
                version: 1,
                token: "t".into(),
                client_id: "c".into()
            }
        );
    }

    #[test]
    fn unknown_types_and_fields_are_malformed() {
        for text in [
            r#"{"type":"explode"}"#,
            r#"{"type":"open"}"#,
            r#"{"type":"open","file":"a","extra":1}"#,
            r#"not json"#,
            r#"[]"#,
        ] {
            let (code, _) = ClientMessage::parse(text).unwrap_err();
            assert_eq!(code, ErrorCode::Malformed, "{text}");
        }
    }

    #[test]
    fn oversized_is_too_large() {
        let text = format!(
            r#"{{"type":"open","file":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            ClientMessage::parse(&text).unwrap_err().0,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn notices_round_trip() {
        let notice = ServerMessage::Notice {
            kind: NoticeKind::MaxLifetime,
            message: "saving in 60 s".into(),
            at: 1_700_000_000,
        };
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "notice",
                "kind": "max_lifetime",
                "message": "saving in 60 s",
                "at": 1_700_000_000u64
            })
        );
        assert_eq!(
            serde_json::from_value::<ServerMessage>(json).unwrap(),
            notice
        );
        for (kind, text) in [
            (NoticeKind::IdleStop, "idle_stop"),
            (NoticeKind::MaxLifetime, "max_lifetime"),
            (NoticeKind::Shutdown, "shutdown"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
        }
    }

    #[test]
    fn server_messages_are_tagged() {
        let json = serde_json::to_value(ServerMessage::ParticipantLeft {
            user_id: "u".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "participant_left", "user_id": "u"})
        );
    }
}
