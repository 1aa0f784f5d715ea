//! One participant's peer connection with the agent: how it is built (Opus only, RTCP reports,
//! no mDNS, sockets on the configured addresses and ports) and how its events reach the voice
//! task.
//!
//! webrtc runs each connection's driver as its own Tokio task and calls the event handler from
//! it, so the handler only tags each event with who it is about and passes it on through an
//! unbounded channel: it never waits on the voice task, which may itself be waiting on that
//! driver.

use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder, configure_rtcp_reports,
};

use super::config::VoiceConfig;
use super::error::VoiceError;
use super::ports::Ports;

/// The Opus payload type the agent offers (the one browsers use).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Opus as browsers send it: 48 kHz, two channels in the SDP, in-band FEC.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

/// What a connection's driver reported.
pub enum PeerEventKind {
    /// A local candidate to trickle to the browser.
    Candidate(RTCIceCandidateInit),
    /// No more local candidates.
    GatheringComplete,
    State(RTCPeerConnectionState),
    /// The participant's microphone.
    Track(Arc<dyn TrackRemote>),
}

/// A driver event, tagged with the participant and the connection it came from (a participant
/// who retried has a new connection, and the old one's last words are ignored).
pub struct PeerEvent {
    pub user_id: String,
    pub peer: u64,
    pub kind: PeerEventKind,
}

struct Handler {
    user_id: String,
    peer: u64,
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl Handler {
    fn emit(&self, kind: PeerEventKind) {
        // Closed only while the agent shuts down.
        let _ = self.events.send(PeerEvent {
            user_id: self.user_id.clone(),
            peer: self.peer,
            kind,
        });
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(candidate) => self.emit(PeerEventKind::Candidate(candidate)),
            Err(error) => tracing::debug!(%error, "could not serialize a local candidate"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.emit(PeerEventKind::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.emit(PeerEventKind::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.emit(PeerEventKind::Track(track));
    }
}

/// Opens a connection for `user_id` on the first usable port; returns it with its port.
pub async fn connect(
    config: &VoiceConfig,
    ports: &mut Ports,
    user_id: &str,
    peer: u64,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> Result<(Arc<dyn PeerConnection>, u16), VoiceError> {
    let handler: Arc<dyn PeerConnectionEventHandler> = Arc::new(Handler {
        user_id: user_id.to_owned(),
        peer,
        events,
    });
    for port in ports.candidates() {
        let addrs: Vec<SocketAddr> = config
            .bind_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        // Another process may hold a port of the range: skip it rather than fail the join.
        if port != 0
            && !addrs
                .iter()
                .all(|addr| std::net::UdpSocket::bind(addr).is_ok())
        {
            continue;
        }
        match audio_peer_connection(addrs, Arc::clone(&handler)).await {
            Ok(pc) => {
                ports.take(port);
                return Ok((pc, port));
            }
            Err(error) if port != 0 => {
                tracing::debug!(port, %error, "could not open a voice connection on this port");
            }
            Err(error) => return Err(VoiceError::Connect(error)),
        }
    }
    Err(VoiceError::NoPort)
}

/// A voice peer connection on `addrs`: Opus only, RTCP reports, no mDNS. The agent's side of
/// every participant's connection, and what the tests' clients use as a browser stand-in.
pub async fn audio_peer_connection(
    addrs: Vec<SocketAddr>,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    // Sender and receiver reports only: NACK and transport-wide congestion control are for
    // video, and audio at 50 packets/s needs neither.
    let registry = configure_rtcp_reports(Registry::new());
    // mDNS would bind 5353 for every connection to resolve `.local` candidates, which browsers
    // stop sending once the microphone is allowed.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// A local track carrying `publisher`'s voice on a subscriber's connection: its stream id is the
/// publisher's user id (the browser maps tracks to people by it), sent with `ssrc`.
pub fn forwarded_track(publisher: &str, peer: u64, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    audio_track(
        publisher.to_owned(),
        format!("{publisher}-voice-{peer}"),
        format!("voice of {publisher}"),
        ssrc,
    )
}

/// A local Opus track in media stream `stream_id`, sent with `ssrc`.
pub fn audio_track(
    stream_id: String,
    track_id: String,
    label: String,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id,
        track_id,
        label,
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus(),
            ..Default::default()
        }],
    )))
}

/// A random SSRC for a forwarded track.
pub fn random_ssrc() -> u32 {
    let mut bytes = [0u8; 4];
    // Without randomness an SSRC only needs to differ from the subscriber's own, which a
    // counter-like value from the clock does as well.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        return nanos | 1;
    }
    u32::from_be_bytes(bytes)
}
