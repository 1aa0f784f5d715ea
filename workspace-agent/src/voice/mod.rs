//! Voice: an audio SFU (selective forwarding unit) in the agent, on the `webrtc` crate (0.21).
//!
//! Anyone in the session may be in voice, viewers included: talking is not editing. At most
//! ten people (the session's own limit) are in voice at once, and one tab per person: a second
//! tab that joins takes voice over from the first, which is told so.
//!
//! # Flow
//!
//! Signalling rides the participant's WebSocket (`huddle_protocol::messages`):
//!
//! 1. The browser sends `voice_join`, then `voice_offer` with its microphone (a `sendrecv` or
//!    `sendonly` audio section; `recvonly` works too, for someone without a microphone).
//! 2. The agent opens one peer connection for that participant, answers with `voice_answer`,
//!    and both sides trickle `voice_candidate`s (an empty candidate ends the agent's).
//! 3. Once answered, the participant is in voice: everyone gets `voice_state`. The agent then
//!    offers the participant everyone else's voice (`voice_offer` from the agent, answered with
//!    `voice_answer`): one `sendonly` audio section per person, whose MediaStream id is that
//!    person's user id. When the participant's microphone track arrives, the agent adds it to
//!    everyone else's connection the same way.
//! 4. Leaving (`voice_leave`, the WebSocket closing, or the room evicting a silent connection)
//!    closes the participant's connection, removes their track from everyone else's (the
//!    section becomes `inactive` in the next offer) and tells everyone (`voice_state` with no
//!    voice). Sections are not reused: each person who joins while someone is in voice adds
//!    one to that someone's connection, which keeps it, inactive once they left, until it ends.
//!
//! Browsers take their STUN/TURN servers from `GET /voice/config` (see `crate::http` and
//! [`config`]).
//!
//! Packets are forwarded as RTP, never decoded (`forward`); a publisher's packets never go
//! back to it. Mute is decided here: `voice_mute` makes the agent drop that publisher's
//! packets, then everyone gets `voice_state`, so a muted participant is silent even if their
//! browser keeps sending.
//!
//! # Negotiation and glare
//!
//! The participant always makes the first offer; after that the agent offers whenever the set of
//! forwarded tracks changes. At most one agent offer is outstanding per participant: changes
//! made meanwhile are batched into the next offer, sent when the answer arrives.
//!
//! If the participant's offer arrives while an agent offer is outstanding (both offered at
//! once), **the agent is the impolite side** of WebRTC's "perfect negotiation": it ignores the
//! participant's offer and keeps its own. The participant, receiving the agent's offer while its
//! own is unanswered, rolls its own back, answers, and then offers again if it still needs to.
//! A browser does the rollback by itself: `setRemoteDescription(offer)` in `have-local-offer`
//! rolls back implicitly, so a client that simply applies every agent offer is already the
//! polite side. (The other choice, a polite agent, would break exactly such a client: both
//! sides would roll back, and each would then get an answer to an offer it withdrew.) The
//! agent sends no offer before a participant's first one is answered, so a first offer never
//! collides.
//!
//! A negotiation that fails (SDP that does not parse or apply, an ICE connection that fails)
//! takes the participant out of voice with an `error` of code `voice_failed`; `voice_join`
//! followed by a new offer starts again. Nothing else in the session is affected.
//!
//! # Threads and tasks
//!
//! The room task never waits on WebRTC: it hands voice messages to this module's own task
//! ([`Voice`]) and gets back [`Event`]s (messages to send, voice states to record and
//! broadcast) on a channel it polls with everything else. The voice task owns the membership
//! and negotiation state and awaits WebRTC calls, which only wait for a connection's driver.
//! Each peer connection's driver is its own Tokio task (webrtc spawns it), reporting through
//! an unbounded channel. The data plane is one ingest task per publisher and one egress task
//! per subscriber, joined by bounded queues that drop rather than wait.

mod candidate;
pub mod config;
mod error;
mod forward;
mod peer;
mod ports;
mod room;

pub use config::{IceServer, VoiceConfig, VoiceConfigError};
pub use error::VoiceError;
pub use peer::{OPUS_PAYLOAD_TYPE, audio_peer_connection, audio_track, opus};

use huddle_protocol::messages::{ClientMessage, ErrorCode, ServerMessage, VoiceState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

use crate::room::presence::ConnId;

/// Voice messages waiting for the voice task before new ones are refused as busy.
const MAX_QUEUED: usize = 1024;
/// Events waiting for the room task.
const EVENT_QUEUE: usize = 1024;

/// What the room asks of the voice task.
pub enum Command {
    /// A voice message from `conn`, which belongs to `user_id`.
    Client {
        conn: ConnId,
        user_id: String,
        message: ClientMessage,
    },
    /// The connection is gone (closed, evicted, or too slow).
    Left { conn: ConnId },
}

/// What the voice task tells the room.
#[derive(Debug)]
pub enum Event {
    /// A message for one connection.
    Send {
        conn: ConnId,
        message: ServerMessage,
    },
    /// Someone's voice state changed: record it and tell everyone.
    State {
        user_id: String,
        voice: Option<VoiceState>,
    },
}

/// The room's handle to the voice task.
///
/// Commands travel on an unbounded channel so that a departure is never lost, and their
/// number is capped here instead: past `MAX_QUEUED` (1024), voice messages are refused.
pub struct Voice {
    commands: mpsc::UnboundedSender<Command>,
    queued: Arc<AtomicUsize>,
}

impl Voice {
    /// Starts the voice task. Its events arrive on the returned receiver; it stops when this
    /// handle is dropped, closing every connection.
    pub fn start(config: VoiceConfig) -> (Self, mpsc::Receiver<Event>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (peer_events, peer_events_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let room = room::VoiceRoom::new(config, events, peer_events);
        tokio::spawn(room.run(commands_rx, Arc::clone(&queued), peer_events_rx));
        (Self { commands, queued }, events_rx)
    }

    /// Hands a voice message from `conn` (of `user_id`) to the voice task.
    pub fn message(
        &self,
        conn: ConnId,
        user_id: &str,
        message: ClientMessage,
    ) -> Result<(), (ErrorCode, String)> {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            return Err(to_wire(&VoiceError::Busy));
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.commands
            .send(Command::Client {
                conn,
                user_id: user_id.to_owned(),
                message,
            })
            .map_err(|_| to_wire(&VoiceError::Busy))
    }

    /// `conn` is gone: whatever voice it had ends.
    pub fn left(&self, conn: ConnId) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _ = self.commands.send(Command::Left { conn });
    }
}

fn to_wire(error: &VoiceError) -> (ErrorCode, String) {
    (ErrorCode::VoiceFailed, error.to_string())
}

/// The `error` message for a voice failure.
fn failed(error: &VoiceError) -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::VoiceFailed,
        message: error.to_string(),
    }
}
