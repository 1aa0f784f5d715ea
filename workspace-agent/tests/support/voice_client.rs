//! A participant in voice, as the browser is one: a WebSocket joined to the agent, and one
//! peer connection with a microphone track (`sendrecv`, like `addTrack`). One task owns both:
//! it answers the agent's offers, applies its answers, trickles candidates both ways, and
//! passes every message on to the test. It is the polite side of a collision, as a browser
//! is: an agent offer arriving while its own is unanswered makes it roll its own back, answer,
//! and offer again.

use anyhow::{Context as _, Result, bail};
use futures::{SinkExt as _, StreamExt as _};
use huddle_protocol::Role;
use huddle_protocol::messages::{ClientMessage, PROTOCOL_VERSION, ServerMessage, VoiceState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use super::media::{self, Mic, Output, Received};
use super::{Agent, WAIT, token, user_id};

/// What the test asks of a client's task.
enum Action {
    Send(ClientMessage),
    /// `voice_join`, then an offer with the microphone.
    JoinVoice,
    /// A new offer from the client (a renegotiation).
    Offer,
    /// Handle the agent offer held back (see [`VoiceClient::hold_offers`]), if any.
    Release,
    Close,
}

pub struct VoiceClient {
    pub index: u8,
    pub user_id: String,
    /// The agent's `welcome`.
    pub welcome: ServerMessage,
    pub received: Arc<Received>,
    actions: mpsc::UnboundedSender<Action>,
    messages: mpsc::UnboundedReceiver<ServerMessage>,
    hold_offers: Arc<AtomicBool>,
    mic: Mic,
    task: JoinHandle<()>,
}

struct Handler {
    me: u8,
    received: Arc<Received>,
    actions: mpsc::UnboundedSender<Action>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self
                .actions
                .send(Action::Send(ClientMessage::VoiceCandidate {
                    candidate: init.candidate,
                    sdp_mid: None,
                    sdp_mline_index: Some(0),
                }));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.received.listen(self.me, None, track);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Release,
        );
    }
}

impl VoiceClient {
    /// Joins the session as participant `index` and waits for the welcome; not in voice yet.
    pub async fn connect(agent: &Agent, index: u8, role: Role) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", agent.addr)).await?;
        let (mut sink, mut stream) = ws.split();
        let join = ClientMessage::Join {
            version: PROTOCOL_VERSION,
            token: token(index, role),
            client_id: format!("tab-{index}"),
        };
        sink.send(Message::Text(serde_json::to_string(&join)?.into()))
            .await?;
        let welcome = next_message(&mut stream).await?;
        if !matches!(welcome, ServerMessage::Welcome { .. }) {
            bail!("participant {index} was not welcomed: {welcome:?}");
        }

        let received = Arc::new(Received::default());
        let (actions, actions_rx) = mpsc::unbounded_channel();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(Handler {
            me: index,
            received: Arc::clone(&received),
            actions: actions.clone(),
            connected: Arc::clone(&connected),
        });
        let pc = media::peer_connection(handler).await?;
        let ssrc = media::random_ssrc()?;
        let track = media::mic_track(index, ssrc);
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        let mut output = Output::new(track, ssrc);
        output.connected = connected;
        let payload_type = Arc::clone(&output.payload_type);
        let mic = Mic::start(index, vec![output]);
        let hold_offers = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(
            Session {
                pc,
                sender,
                payload_type,
                sink,
                messages: messages_tx,
                hold_offers: Arc::clone(&hold_offers),
                held: None,
            }
            .run(stream, actions_rx),
        );
        Ok(Self {
            index,
            user_id: user_id(index),
            welcome,
            received,
            actions,
            messages,
            hold_offers,
            mic,
            task,
        })
    }

    pub fn send(&self, message: ClientMessage) {
        let _ = self.actions.send(Action::Send(message));
    }

    pub fn join_voice(&self) {
        let _ = self.actions.send(Action::JoinVoice);
    }

    /// Sends a new offer of the client's own (renegotiation).
    pub fn offer(&self) {
        let _ = self.actions.send(Action::Offer);
    }

    /// Closes the WebSocket (and the peer connection).
    pub fn close(&self) {
        let _ = self.actions.send(Action::Close);
    }

    /// Holds the agent's offers back instead of answering them (the latest is kept), as if
    /// they were still on their way; releasing handles the one held.
    pub fn hold_offers(&self, hold: bool) {
        self.hold_offers.store(hold, Ordering::Release);
        if !hold {
            let _ = self.actions.send(Action::Release);
        }
    }

    /// The sequence number this client's next packet will carry.
    pub fn next_seq(&self) -> u32 {
        self.mic.next_seq()
    }

    /// Waits for a message `pick` accepts, dropping the ones before it.
    pub async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .with_context(|| {
                    format!("participant {}: timed out waiting for {what}", self.index)
                })?
                .with_context(|| {
                    format!(
                        "participant {}: connection ended waiting for {what}",
                        self.index
                    )
                })?;
            if let Some(value) = pick(&message) {
                return Ok(value);
            }
        }
    }

    /// Waits for `user_id`'s voice state to become `voice`.
    pub async fn voice_state(&mut self, user: &str, voice: Option<VoiceState>) -> Result<()> {
        self.until(&format!("{user}'s voice state {voice:?}"), |m| match m {
            ServerMessage::VoiceState { user_id, voice: v } if user_id == user && *v == voice => {
                Some(())
            }
            _ => None,
        })
        .await
    }

    /// Messages received so far that `pick` accepts, without waiting.
    pub fn drain<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> Vec<T> {
        let mut found = Vec::new();
        while let Ok(message) = self.messages.try_recv() {
            if let Some(value) = pick(&message) {
                found.push(value);
            }
        }
        found
    }
}

impl Drop for VoiceClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Stream = futures::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;
type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

async fn next_message(stream: &mut Stream) -> Result<ServerMessage> {
    super::next_server_message(stream, WAIT).await
}

/// The client's task: the WebSocket, the peer connection, and the signalling between them.
struct Session {
    pc: Arc<dyn PeerConnection>,
    sender: Arc<dyn RtpSender>,
    payload_type: Arc<AtomicU16>,
    sink: Sink,
    messages: mpsc::UnboundedSender<ServerMessage>,
    hold_offers: Arc<AtomicBool>,
    held: Option<String>,
}

impl Session {
    async fn run(mut self, mut stream: Stream, mut actions: mpsc::UnboundedReceiver<Action>) {
        loop {
            let outcome = tokio::select! {
                action = actions.recv() => match action {
                    Some(Action::Close) | None => break,
                    Some(action) => self.act(action).await,
                },
                message = next_message(&mut stream) => match message {
                    Ok(message) => self.receive(message).await,
                    Err(_) => break,
                },
            };
            if let Err(error) = outcome {
                eprintln!("voice client: {error:#}");
            }
        }
        let _ = self.sink.close().await;
        let _ = self.pc.close().await;
    }

    async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.sink
            .send(Message::Text(serde_json::to_string(message)?.into()))
            .await?;
        Ok(())
    }

    async fn act(&mut self, action: Action) -> Result<()> {
        match action {
            Action::Send(message) => self.send(&message).await,
            Action::JoinVoice => {
                self.send(&ClientMessage::VoiceJoin).await?;
                self.offer().await
            }
            Action::Offer => self.offer().await,
            Action::Release => match self.held.take() {
                Some(sdp) => self.answer(sdp).await,
                None => Ok(()),
            },
            Action::Close => Ok(()),
        }
    }

    /// Sends the offer before applying it locally, so no candidate can overtake it.
    async fn offer(&mut self) -> Result<()> {
        let offer = self.pc.create_offer(None).await?;
        self.send(&ClientMessage::VoiceOffer {
            sdp: offer.sdp.clone(),
        })
        .await?;
        self.pc.set_local_description(offer).await?;
        Ok(())
    }

    /// Answers an agent offer; if it collided with our own, ours is rolled back first and sent
    /// again after (as a browser's `negotiationneeded` would).
    async fn answer(&mut self, sdp: String) -> Result<()> {
        let collision = self.pc.pending_local_description().await.is_some();
        if collision {
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await?;
        }
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        self.send(&ClientMessage::VoiceAnswer { sdp: answer.sdp })
            .await?;
        if collision {
            self.offer().await?;
        }
        Ok(())
    }

    async fn receive(&mut self, message: ServerMessage) -> Result<()> {
        match &message {
            ServerMessage::VoiceAnswer { sdp } => {
                let answer = RTCSessionDescription::answer(sdp.clone())?;
                self.pc.set_remote_description(answer).await?;
                if let Some(payload_type) = media::negotiated_payload_type(&self.sender).await {
                    self.payload_type
                        .store(u16::from(payload_type), Ordering::Release);
                }
            }
            ServerMessage::VoiceOffer { sdp } => {
                if self.hold_offers.load(Ordering::Acquire) {
                    self.held = Some(sdp.clone());
                } else {
                    self.answer(sdp.clone()).await?;
                }
            }
            ServerMessage::VoiceCandidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } if !candidate.is_empty() => {
                let init = RTCIceCandidateInit {
                    candidate: candidate.clone(),
                    sdp_mid: sdp_mid.clone(),
                    sdp_mline_index: *sdp_mline_index,
                    ..Default::default()
                };
                if let Err(error) = self.pc.add_ice_candidate(init).await {
                    eprintln!("voice client: candidate refused: {error}");
                }
            }
            _ => {}
        }
        let _ = self.messages.send(message);
        Ok(())
    }
}

/// Waits until every client hears every other one's voice (`count - 1` publishers each).
pub async fn everyone_hears_everyone(clients: &[VoiceClient], within: Duration) -> Result<()> {
    let expected = clients.len() - 1;
    media::eventually("everyone to hear everyone", within, || {
        clients
            .iter()
            .all(|client| client.received.publishers().len() >= expected)
    })
    .await
}
