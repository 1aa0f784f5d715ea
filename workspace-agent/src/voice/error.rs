//! What can go wrong in voice, as one error type whose message is sent to the participant
//! (`error` with code `voice_failed`).

use huddle_protocol::messages::MAX_PARTICIPANTS;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("voice is full: at most {MAX_PARTICIPANTS} people can be in voice at once")]
    Full,
    #[error("not in voice: send voice_join first")]
    NotInVoice,
    #[error("voice is busy; try again in a moment")]
    Busy,
    #[error("the voice offer was refused: {0}")]
    BadOffer(#[source] webrtc::error::Error),
    #[error("the voice answer was refused: {0}")]
    BadAnswer(#[source] webrtc::error::Error),
    #[error("voice negotiation failed: {0}")]
    Negotiation(#[source] webrtc::error::Error),
    #[error("could not open a voice connection: {0}")]
    Connect(#[source] webrtc::error::Error),
    #[error("no free UDP port for voice in HUDDLE_VOICE_UDP_PORTS")]
    NoPort,
    #[error("the voice connection failed (no ICE route to the agent); send voice_join to retry")]
    ConnectionFailed,
    #[error("voice moved to another tab")]
    MovedToAnotherTab,
}

impl VoiceError {
    /// Whether the participant is taken out of voice: a failed negotiation or connection
    /// leaves nothing worth keeping, and `voice_join` starts afresh. Refusals change nothing.
    pub fn ends_voice(&self) -> bool {
        !matches!(self, Self::Full | Self::NotInVoice | Self::Busy)
    }
}
