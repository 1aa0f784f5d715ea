//! The voice task: who is in voice, each one's peer connection, and the negotiation state that
//! keeps at most one agent offer outstanding per participant.
//!
//! Every change that adds or removes forwarded tracks marks the affected connections as
//! needing an offer; [`VoiceRoom::settle`] then sends one to each of them that has no offer
//! outstanding, and again when the answer to the previous one comes back.

use huddle_protocol::messages::{ClientMessage, MAX_PARTICIPANTS, ServerMessage, VoiceState};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::candidate::{first_mid, with_public_ips};
use super::config::VoiceConfig;
use super::error::VoiceError;
use super::forward::{Publisher, Subscriber, Target};
use super::peer::{self, PeerEvent, PeerEventKind};
use super::ports::Ports;
use super::{Command, Event};
use crate::room::presence::ConnId;

/// Remote candidates kept for a connection whose offer has not been applied yet.
const MAX_EARLY_CANDIDATES: usize = 64;

/// Someone in voice.
struct Member {
    conn: ConnId,
    /// Everyone has been told this person is in voice (after their first offer was answered).
    announced: bool,
    publisher: Publisher,
    peer: Option<Peer>,
    /// Candidates that arrived before the offer they belong to was applied.
    early_candidates: Vec<RTCIceCandidateInit>,
}

/// A member's connection and its negotiation state.
struct Peer {
    id: u64,
    pc: Arc<dyn PeerConnection>,
    port: u16,
    subscriber: Subscriber,
    /// The first media section's mid, which outgoing candidates are tagged with.
    mid: Option<String>,
    /// A remote description has been applied (candidates can be added, offers can be made).
    negotiated: bool,
    offer_outstanding: bool,
    needs_offer: bool,
    /// Other people's voices sent on this connection, by publisher.
    outgoing: BTreeMap<String, Outgoing>,
}

struct Outgoing {
    sender: Arc<dyn RtpSender>,
    target: Arc<Target>,
    state: TrackState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrackState {
    /// Added; the next offer carries it.
    Pending,
    /// In the outstanding offer.
    Offered,
    /// Answered: packets flow.
    Live,
}

pub(super) struct VoiceRoom {
    config: VoiceConfig,
    events: mpsc::Sender<Event>,
    peer_events: mpsc::UnboundedSender<PeerEvent>,
    members: BTreeMap<String, Member>,
    conns: HashMap<ConnId, String>,
    ports: Ports,
    next_peer: u64,
    /// Participants to take out of voice, with the reason they are told.
    failed: Vec<(String, VoiceError)>,
}

impl VoiceRoom {
    pub(super) fn new(
        config: VoiceConfig,
        events: mpsc::Sender<Event>,
        peer_events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Self {
        Self {
            ports: Ports::new(config.udp_ports.clone()),
            config,
            events,
            peer_events,
            members: BTreeMap::new(),
            conns: HashMap::new(),
            next_peer: 1,
            failed: Vec::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        queued: Arc<AtomicUsize>,
        mut peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        self.command(command).await;
                    }
                    None => break,
                },
                Some(event) = peer_events.recv() => self.peer_event(event).await,
            }
            self.settle().await;
        }
        // The room is gone: the agent is shutting down.
        let users: Vec<String> = self.members.keys().cloned().collect();
        for user_id in users {
            self.remove(&user_id).await;
        }
    }

    async fn command(&mut self, command: Command) {
        let (conn, user_id, message) = match command {
            Command::Left { conn } => {
                if let Some(user_id) = self.user_of(conn) {
                    self.remove(&user_id).await;
                }
                return;
            }
            Command::Client {
                conn,
                user_id,
                message,
            } => (conn, user_id, message),
        };
        let result = match message {
            ClientMessage::VoiceJoin => self.join(conn, &user_id).await,
            ClientMessage::VoiceLeave => {
                if let Some(user_id) = self.user_of(conn) {
                    info!(%user_id, "left voice");
                    self.remove(&user_id).await;
                }
                Ok(())
            }
            ClientMessage::VoiceOffer { sdp } => self.offer(conn, sdp).await,
            ClientMessage::VoiceAnswer { sdp } => self.answer(conn, sdp).await,
            ClientMessage::VoiceCandidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                self.remote_candidate(
                    conn,
                    RTCIceCandidateInit {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                        username_fragment: None,
                        url: None,
                    },
                )
                .await;
                Ok(())
            }
            ClientMessage::VoiceMute { muted } => self.mute(conn, muted).await,
            // The room only hands over voice messages.
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.refuse(conn, error).await;
        }
    }

    fn user_of(&self, conn: ConnId) -> Option<String> {
        self.conns.get(&conn).cloned()
    }

    /// Tells `conn` why its voice message failed, taking it out of voice if it was a failure.
    async fn refuse(&mut self, conn: ConnId, error: VoiceError) {
        if error.ends_voice()
            && let Some(user_id) = self.user_of(conn)
        {
            self.remove(&user_id).await;
        }
        if error.ends_voice() {
            warn!(conn, %error, "voice failed");
        } else {
            info!(conn, %error, "voice refused");
        }
        self.send(conn, super::failed(&error)).await;
    }

    async fn join(&mut self, conn: ConnId, user_id: &str) -> Result<(), VoiceError> {
        if let Some(existing) = self.members.get(user_id) {
            // A fresh start: the same tab retrying, or another tab of the same person taking
            // over (one voice per person, as the browser maps tracks to people).
            let old_conn = existing.conn;
            self.remove(user_id).await;
            if old_conn != conn {
                self.send(old_conn, super::failed(&VoiceError::MovedToAnotherTab))
                    .await;
            }
        }
        if self.members.len() >= MAX_PARTICIPANTS {
            return Err(VoiceError::Full);
        }
        info!(%user_id, "joining voice");
        self.members.insert(
            user_id.to_owned(),
            Member {
                conn,
                announced: false,
                publisher: Publisher::new(user_id),
                peer: None,
                early_candidates: Vec::new(),
            },
        );
        self.conns.insert(conn, user_id.to_owned());
        Ok(())
    }

    async fn offer(&mut self, conn: ConnId, sdp: String) -> Result<(), VoiceError> {
        let user_id = self.user_of(conn).ok_or(VoiceError::NotInVoice)?;
        if self
            .members
            .get(&user_id)
            .and_then(|member| member.peer.as_ref())
            .is_some_and(|peer| peer.offer_outstanding)
        {
            // Glare: both sides offered at once. The agent is the impolite side and keeps its
            // offer; the participant, receiving it, rolls its own back, answers, and offers
            // again if it still needs to (see the module docs).
            debug!(%user_id, "colliding offer ignored; the agent's offer stands");
            return Ok(());
        }
        let offer = RTCSessionDescription::offer(sdp).map_err(VoiceError::BadOffer)?;
        if self
            .members
            .get(&user_id)
            .is_some_and(|member| member.peer.is_none())
        {
            let peer = self.connect(&user_id).await?;
            if let Some(member) = self.members.get_mut(&user_id) {
                member.peer = Some(peer);
            }
        }
        let Some(member) = self.members.get_mut(&user_id) else {
            return Err(VoiceError::NotInVoice);
        };
        let Some(peer) = member.peer.as_mut() else {
            return Err(VoiceError::NotInVoice);
        };
        peer.pc
            .set_remote_description(offer)
            .await
            .map_err(VoiceError::BadOffer)?;
        peer.negotiated = true;
        for candidate in std::mem::take(&mut member.early_candidates) {
            if let Err(error) = peer.pc.add_ice_candidate(candidate).await {
                debug!(%user_id, %error, "ignoring a remote candidate");
            }
        }
        let answer = peer
            .pc
            .create_answer(None)
            .await
            .map_err(VoiceError::Negotiation)?;
        peer.pc
            .set_local_description(answer.clone())
            .await
            .map_err(VoiceError::Negotiation)?;
        if peer.mid.is_none() {
            peer.mid = first_mid(&answer.sdp);
        }
        let first_time = !member.announced;
        member.announced = true;
        let muted = member.publisher.is_muted();
        self.send(conn, ServerMessage::VoiceAnswer { sdp: answer.sdp })
            .await;
        if first_time {
            info!(%user_id, "in voice");
            self.announce(&user_id, Some(VoiceState { muted })).await;
            // Everyone already talking, on the next offer.
            let publishers: Vec<String> = self
                .members
                .iter()
                .filter(|(other, member)| *other != &user_id && member.publisher.is_publishing())
                .map(|(other, _)| other.clone())
                .collect();
            for publisher in publishers {
                self.forward(&publisher, &user_id).await;
            }
        }
        Ok(())
    }

    async fn connect(&mut self, user_id: &str) -> Result<Peer, VoiceError> {
        let id = self.next_peer;
        self.next_peer += 1;
        let (pc, port) = peer::connect(
            &self.config,
            &mut self.ports,
            user_id,
            id,
            self.peer_events.clone(),
        )
        .await?;
        Ok(Peer {
            id,
            pc,
            port,
            subscriber: Subscriber::start(user_id),
            mid: None,
            negotiated: false,
            offer_outstanding: false,
            needs_offer: false,
            outgoing: BTreeMap::new(),
        })
    }

    async fn answer(&mut self, conn: ConnId, sdp: String) -> Result<(), VoiceError> {
        let Some(user_id) = self.user_of(conn) else {
            debug!(conn, "voice answer from someone not in voice; ignored");
            return Ok(());
        };
        let Some(peer) = self
            .members
            .get_mut(&user_id)
            .and_then(|member| member.peer.as_mut())
        else {
            return Ok(());
        };
        if !peer.offer_outstanding {
            // An answer meant for a connection this participant has since replaced.
            debug!(%user_id, "voice answer with no offer outstanding; ignored");
            return Ok(());
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(VoiceError::BadAnswer)?;
        peer.pc
            .set_remote_description(answer)
            .await
            .map_err(VoiceError::BadAnswer)?;
        peer.offer_outstanding = false;
        for outgoing in peer.outgoing.values_mut() {
            if outgoing.state != TrackState::Offered {
                continue;
            }
            outgoing.state = TrackState::Live;
            match negotiated_payload_type(&outgoing.sender).await {
                Some(payload_type) => outgoing.target.negotiated(payload_type),
                None => debug!(%user_id, "a forwarded track was not accepted"),
            }
        }
        Ok(())
    }

    async fn remote_candidate(&mut self, conn: ConnId, candidate: RTCIceCandidateInit) {
        // An empty candidate only says the browser has no more; nothing to do.
        if candidate.candidate.trim().is_empty() {
            return;
        }
        let Some(user_id) = self.user_of(conn) else {
            return;
        };
        let Some(member) = self.members.get_mut(&user_id) else {
            return;
        };
        let Some(peer) = member.peer.as_mut().filter(|peer| peer.negotiated) else {
            if member.early_candidates.len() < MAX_EARLY_CANDIDATES {
                member.early_candidates.push(candidate);
            }
            return;
        };
        // Browsers send candidates the agent cannot use (mDNS names, TCP); they are skipped,
        // as a browser skips ours.
        if let Err(error) = peer.pc.add_ice_candidate(candidate).await {
            debug!(%user_id, %error, "ignoring a remote candidate");
        }
    }

    async fn mute(&mut self, conn: ConnId, muted: bool) -> Result<(), VoiceError> {
        let user_id = self.user_of(conn).ok_or(VoiceError::NotInVoice)?;
        let Some(member) = self.members.get_mut(&user_id) else {
            return Err(VoiceError::NotInVoice);
        };
        member.publisher.set_muted(muted);
        if member.announced {
            info!(%user_id, muted, "voice mute");
            self.announce(&user_id, Some(VoiceState { muted })).await;
        }
        Ok(())
    }

    async fn peer_event(&mut self, event: PeerEvent) {
        let PeerEvent {
            user_id,
            peer,
            kind,
        } = event;
        let Some(member) = self.members.get(&user_id) else {
            return;
        };
        let Some(current) = member.peer.as_ref().filter(|current| current.id == peer) else {
            return;
        };
        let conn = member.conn;
        let mid = current.mid.clone();
        match kind {
            PeerEventKind::Candidate(candidate) => {
                for candidate in with_public_ips(&candidate.candidate, &self.config.public_ips) {
                    self.send(
                        conn,
                        ServerMessage::VoiceCandidate {
                            candidate,
                            sdp_mid: mid.clone(),
                            sdp_mline_index: Some(0),
                        },
                    )
                    .await;
                }
            }
            PeerEventKind::GatheringComplete => {
                self.send(
                    conn,
                    ServerMessage::VoiceCandidate {
                        candidate: String::new(),
                        sdp_mid: mid,
                        sdp_mline_index: Some(0),
                    },
                )
                .await;
            }
            PeerEventKind::State(state) => {
                debug!(%user_id, %state, "voice connection state");
                match state {
                    RTCPeerConnectionState::Connected => current.subscriber.set_connected(true),
                    // The agent closes only connections it has already let go of, so this one
                    // was ended by the other side.
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        current.subscriber.set_connected(false);
                        self.failed.push((user_id, VoiceError::ConnectionFailed));
                    }
                    _ => {}
                }
            }
            PeerEventKind::Track(track) => self.publish(&user_id, track).await,
        }
    }

    /// `user_id`'s microphone arrived: forward it to everyone else in voice.
    async fn publish(&mut self, user_id: &str, track: Arc<dyn TrackRemote>) {
        if track.kind().await != RtpCodecKind::Audio {
            return;
        }
        let Some(member) = self.members.get_mut(user_id) else {
            return;
        };
        let first = !member.publisher.is_publishing();
        member.publisher.publish(track);
        if !first {
            // A new track for the same person (the browser renegotiated): same targets.
            return;
        }
        info!(%user_id, "publishing voice");
        let subscribers: Vec<String> = self
            .members
            .iter()
            .filter(|(other, member)| *other != user_id && member.announced)
            .map(|(other, _)| other.clone())
            .collect();
        for subscriber in subscribers {
            self.forward(user_id, &subscriber).await;
        }
    }

    /// Adds `publisher`'s voice to `subscriber`'s connection; the next offer carries it.
    async fn forward(&mut self, publisher: &str, subscriber: &str) {
        if publisher == subscriber {
            return;
        }
        let Some(publisher_peer) = self
            .members
            .get(publisher)
            .and_then(|member| member.peer.as_ref())
            .map(|peer| peer.id)
        else {
            return;
        };
        let Some(pc) = self
            .members
            .get(subscriber)
            .and_then(|member| member.peer.as_ref())
            .filter(|peer| !peer.outgoing.contains_key(publisher))
            .map(|peer| Arc::clone(&peer.pc))
        else {
            return;
        };
        let ssrc = peer::random_ssrc();
        let track = peer::forwarded_track(publisher, publisher_peer, ssrc);
        let added = pc
            .add_transceiver_from_track(
                Arc::clone(&track) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: Vec::new(),
                    send_encodings: Vec::new(),
                }),
            )
            .await;
        let sender = match added {
            Ok(transceiver) => transceiver.sender().await.ok().flatten(),
            Err(error) => {
                self.failed
                    .push((subscriber.to_owned(), VoiceError::Negotiation(error)));
                return;
            }
        };
        let Some(sender) = sender else {
            warn!(%subscriber, "a new transceiver has no sender");
            return;
        };
        let Some(peer) = self
            .members
            .get_mut(subscriber)
            .and_then(|member| member.peer.as_mut())
        else {
            return;
        };
        let target = Target::new(track, ssrc, &peer.subscriber);
        peer.outgoing.insert(
            publisher.to_owned(),
            Outgoing {
                sender,
                target: Arc::clone(&target),
                state: TrackState::Pending,
            },
        );
        peer.needs_offer = true;
        if let Some(member) = self.members.get(publisher) {
            member.publisher.add_target(subscriber, target);
        }
    }

    /// Takes `user_id` out of voice: closes their connection, removes their voice from
    /// everyone else (who are then offered the change), and tells everyone.
    async fn remove(&mut self, user_id: &str) {
        let Some(member) = self.members.remove(user_id) else {
            return;
        };
        self.conns.remove(&member.conn);
        for other in self.members.values_mut() {
            other.publisher.remove_target(user_id);
            let Some(peer) = other.peer.as_mut() else {
                continue;
            };
            if let Some(outgoing) = peer.outgoing.remove(user_id) {
                outgoing.target.retire();
                if let Err(error) = peer.pc.remove_track(&outgoing.sender).await {
                    debug!(%error, "could not remove a forwarded track");
                }
                peer.needs_offer = true;
            }
        }
        if let Some(peer) = member.peer {
            self.ports.release(peer.port);
            let pc = peer.pc;
            // Closing waits up to ~100 ms for the driver; nobody needs to wait for that.
            tokio::spawn(async move {
                if let Err(error) = pc.close().await {
                    debug!(%error, "closing a voice connection");
                }
            });
        }
        if member.announced {
            self.announce(user_id, None).await;
        }
    }

    /// Sends an offer to every connection with changes to negotiate and none outstanding, and
    /// takes out of voice whoever failed along the way (which may need more offers).
    async fn settle(&mut self) {
        loop {
            let due: Vec<String> = self
                .members
                .iter()
                .filter(|(_, member)| {
                    member.peer.as_ref().is_some_and(|peer| {
                        peer.needs_offer && !peer.offer_outstanding && peer.negotiated
                    })
                })
                .map(|(user_id, _)| user_id.clone())
                .collect();
            for user_id in due {
                if let Err(error) = self.renegotiate(&user_id).await {
                    self.failed.push((user_id, error));
                }
            }
            let Some((user_id, error)) = self.failed.pop() else {
                break;
            };
            if let Some(conn) = self.members.get(&user_id).map(|member| member.conn) {
                warn!(%user_id, %error, "taking a participant out of voice");
                self.remove(&user_id).await;
                self.send(conn, super::failed(&error)).await;
            }
        }
    }

    async fn renegotiate(&mut self, user_id: &str) -> Result<(), VoiceError> {
        let Some(member) = self.members.get_mut(user_id) else {
            return Ok(());
        };
        let conn = member.conn;
        let Some(peer) = member.peer.as_mut() else {
            return Ok(());
        };
        let offer = peer
            .pc
            .create_offer(None)
            .await
            .map_err(VoiceError::Negotiation)?;
        peer.pc
            .set_local_description(offer.clone())
            .await
            .map_err(VoiceError::Negotiation)?;
        peer.needs_offer = false;
        peer.offer_outstanding = true;
        for outgoing in peer.outgoing.values_mut() {
            if outgoing.state == TrackState::Pending {
                outgoing.state = TrackState::Offered;
            }
        }
        debug!(%user_id, tracks = peer.outgoing.len(), "offering voice tracks");
        self.send(conn, ServerMessage::VoiceOffer { sdp: offer.sdp })
            .await;
        Ok(())
    }

    async fn announce(&self, user_id: &str, voice: Option<VoiceState>) {
        let _ = self
            .events
            .send(Event::State {
                user_id: user_id.to_owned(),
                voice,
            })
            .await;
    }

    async fn send(&self, conn: ConnId, message: ServerMessage) {
        // Fails only when the room is gone, and then nobody is listening.
        let _ = self.events.send(Event::Send { conn, message }).await;
    }
}

/// The payload type `sender`'s connection negotiated for it.
async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>) -> Option<u8> {
    let parameters = sender.get_parameters().await.ok()?;
    parameters
        .rtp_parameters
        .codecs
        .first()
        .map(|codec| codec.payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> (VoiceRoom, mpsc::Receiver<Event>) {
        let (events, received) = mpsc::channel(64);
        let (peer_events, _) = mpsc::unbounded_channel();
        (
            VoiceRoom::new(VoiceConfig::default(), events, peer_events),
            received,
        )
    }

    #[tokio::test]
    async fn an_eleventh_person_is_refused() {
        let (mut room, _events) = room();
        for i in 0..MAX_PARTICIPANTS {
            room.join(i as ConnId, &format!("u{i}")).await.unwrap();
        }
        let refused = room.join(99, "u99").await.unwrap_err();
        assert!(matches!(refused, VoiceError::Full), "{refused}");
        assert!(refused.to_string().contains("at most 10"), "{refused}");
        assert!(!refused.ends_voice());
    }

    #[tokio::test]
    async fn another_tab_takes_voice_over_and_the_first_is_told() {
        let (mut room, mut events) = room();
        room.join(1, "ada").await.unwrap();
        room.join(2, "ada").await.unwrap();
        assert_eq!(room.members.len(), 1);
        assert_eq!(room.user_of(2).as_deref(), Some("ada"));
        assert_eq!(room.user_of(1), None);
        match events.try_recv() {
            Ok(Event::Send {
                conn: 1,
                message: ServerMessage::Error { message, .. },
            }) => assert!(message.contains("another tab"), "{message}"),
            _ => panic!("the first tab was not told"),
        }
    }

    #[tokio::test]
    async fn an_offer_before_joining_or_a_bad_one_is_refused() {
        let (mut room, _events) = room();
        let error = room.offer(1, "v=0".into()).await.unwrap_err();
        assert!(matches!(error, VoiceError::NotInVoice));
        room.join(1, "ada").await.unwrap();
        let error = room.offer(1, "not sdp".into()).await.unwrap_err();
        assert!(matches!(error, VoiceError::BadOffer(_)), "{error}");
        assert!(error.ends_voice());
    }
}
