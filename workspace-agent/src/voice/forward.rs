//! The data plane: RTP packets from each publisher to every other person in voice, never
//! decoded, never sent back to their publisher.
//!
//! Each publisher has one ingest task reading its microphone track. It drops packets while the
//! publisher is muted (renumbering the rest so subscribers see no loss), strips header
//! extensions (their ids were negotiated on the publisher's connection, not the subscriber's),
//! and offers a copy to each of its [`Target`]s without waiting. Each subscriber has one egress
//! task draining a bounded queue into its own connection: a subscriber whose connection cannot
//! keep up loses its own packets and slows nobody else.

use rtc::rtp;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use webrtc::media_stream::track_local::TrackLocal as _;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Packets queued for one subscriber: about half a second of nine people talking.
pub const EGRESS_QUEUE: usize = 256;

/// Marks a target whose payload type is not negotiated yet (RTP payload types are 7 bits).
const NOT_NEGOTIATED: u16 = u16::MAX;

/// One publisher's audio as one subscriber receives it: a local track on the subscriber's
/// connection, whose stream id is the publisher's user id.
pub struct Target {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// The payload type the subscriber's connection negotiated for it, once it has.
    payload_type: AtomicU16,
    egress: mpsc::Sender<Egress>,
}

impl Target {
    /// A target writing to `track` (whose encoding has `ssrc`) through `subscriber`'s queue.
    pub fn new(track: Arc<TrackLocalStaticRTP>, ssrc: u32, subscriber: &Subscriber) -> Arc<Self> {
        Arc::new(Self {
            track,
            ssrc,
            payload_type: AtomicU16::new(NOT_NEGOTIATED),
            egress: subscriber.queue.clone(),
        })
    }

    /// The subscriber answered an offer carrying this track: packets may flow.
    pub fn negotiated(&self, payload_type: u8) {
        self.payload_type
            .store(u16::from(payload_type), Ordering::Release);
    }

    /// The track is about to be removed: packets still queued for it are dropped.
    pub fn retire(&self) {
        self.payload_type.store(NOT_NEGOTIATED, Ordering::Release);
    }

    fn payload_type(&self) -> Option<u8> {
        u8::try_from(self.payload_type.load(Ordering::Acquire)).ok()
    }

    /// Queues `packet` for the subscriber; false when its queue is full (the packet is lost).
    fn offer(self: &Arc<Self>, packet: rtp::Packet) -> bool {
        match self.egress.try_send(Egress {
            target: Arc::clone(self),
            packet,
        }) {
            Ok(()) => true,
            // Closed means the subscriber is leaving; it no longer matters.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }
}

/// A packet on its way to one subscriber.
pub struct Egress {
    target: Arc<Target>,
    packet: rtp::Packet,
}

/// One subscriber's queue and the task draining it into the subscriber's connection.
pub struct Subscriber {
    queue: mpsc::Sender<Egress>,
    /// The connection is up (DTLS done): before that, SRTP has no keys to send with.
    connected: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Subscriber {
    pub fn start(user_id: &str) -> Self {
        let (queue, mut packets) = mpsc::channel::<Egress>(EGRESS_QUEUE);
        let connected = Arc::new(AtomicBool::new(false));
        let user_id = user_id.to_owned();
        let up = Arc::clone(&connected);
        let task = tokio::spawn(async move {
            while let Some(Egress { target, mut packet }) = packets.recv().await {
                if !up.load(Ordering::Acquire) {
                    continue;
                }
                let Some(payload_type) = target.payload_type() else {
                    continue;
                };
                packet.header.ssrc = target.ssrc;
                packet.header.payload_type = payload_type;
                if let Err(error) = target.track.write_rtp(packet).await {
                    debug!(subscriber = %user_id, %error, "could not forward a packet");
                }
            }
        });
        Self {
            queue,
            connected,
            task,
        }
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renumbers a stream from which packets are dropped on purpose (while muted), so that the
/// receiver sees a talk-spurt gap in timestamps and no loss. Gaps the network made stay gaps.
#[derive(Debug, Default)]
pub struct SequenceRewriter {
    dropped: u16,
    in_gap: bool,
}

impl SequenceRewriter {
    /// One packet dropped on purpose.
    pub fn drop_one(&mut self) {
        self.dropped = self.dropped.wrapping_add(1);
        self.in_gap = true;
    }

    /// The outgoing header for a forwarded packet: renumbered, and marked as the start of a
    /// talk spurt (RFC 3551 §4.1) when it ends a gap.
    pub fn rewrite(&mut self, header: &mut rtp::header::Header) {
        header.sequence_number = header.sequence_number.wrapping_sub(self.dropped);
        if std::mem::take(&mut self.in_gap) {
            header.marker = true;
        }
    }
}

/// The subscribers a publisher's packets go to, replaced whole on change so the ingest task
/// reads a snapshot without holding a lock while it forwards.
type Targets = RwLock<Arc<Vec<(String, Arc<Target>)>>>;

/// One publisher: whether it is muted, who receives it, and the task reading its track.
pub struct Publisher {
    user_id: String,
    muted: Arc<AtomicBool>,
    targets: Arc<Targets>,
    ingest: Option<JoinHandle<()>>,
}

impl Publisher {
    pub fn new(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            muted: Arc::new(AtomicBool::new(false)),
            targets: Arc::default(),
            ingest: None,
        }
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Release);
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Acquire)
    }

    /// Whether a microphone track is being read.
    pub fn is_publishing(&self) -> bool {
        self.ingest.is_some()
    }

    /// Starts forwarding `track`, replacing any track read before.
    pub fn publish(&mut self, track: Arc<dyn TrackRemote>) {
        if let Some(old) = self.ingest.take() {
            old.abort();
        }
        self.ingest = Some(tokio::spawn(ingest(
            self.user_id.clone(),
            track,
            Arc::clone(&self.muted),
            Arc::clone(&self.targets),
        )));
    }

    /// Sends this publisher's packets to `subscriber` through `target` as well.
    pub fn add_target(&self, subscriber: &str, target: Arc<Target>) {
        debug_assert_ne!(subscriber, self.user_id, "a publisher never hears itself");
        if subscriber == self.user_id {
            return;
        }
        self.update_targets(|targets| {
            targets.retain(|(user, _)| user != subscriber);
            targets.push((subscriber.to_owned(), target));
        });
    }

    pub fn remove_target(&self, subscriber: &str) {
        self.update_targets(|targets| targets.retain(|(user, _)| user != subscriber));
    }

    fn update_targets(&self, change: impl FnOnce(&mut Vec<(String, Arc<Target>)>)) {
        let mut current = self.targets.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::clone(&current);
        change(&mut next);
        *current = Arc::new(next);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.abort();
        }
    }
}

/// Packets that found a subscriber's queue full, over all subscribers (logged now and then).
static QUEUE_FULL: AtomicU64 = AtomicU64::new(0);

async fn ingest(
    user_id: String,
    track: Arc<dyn TrackRemote>,
    muted: Arc<AtomicBool>,
    targets: Arc<Targets>,
) {
    let mut rewriter = SequenceRewriter::default();
    while let Some(event) = track.poll().await {
        let mut packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        if muted.load(Ordering::Acquire) {
            rewriter.drop_one();
            continue;
        }
        rewriter.rewrite(&mut packet.header);
        strip(&mut packet);
        let snapshot = Arc::clone(&targets.read().unwrap_or_else(PoisonError::into_inner));
        for (subscriber, target) in snapshot.iter() {
            if !target.offer(packet.clone()) {
                let lost = QUEUE_FULL.fetch_add(1, Ordering::Relaxed);
                if lost.is_multiple_of(1000) {
                    warn!(%subscriber, lost = lost + 1, "a subscriber cannot keep up; dropping audio");
                }
            }
        }
    }
    debug!(publisher = %user_id, "microphone track ended");
}

/// Removes what only made sense on the publisher's connection: header extensions (ids are
/// per connection), contributing sources, padding (the payload no longer includes it).
fn strip(packet: &mut rtp::Packet) {
    let header = &mut packet.header;
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
    header.csrc.clear();
    header.padding = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u16) -> rtp::header::Header {
        rtp::header::Header {
            sequence_number: seq,
            ..Default::default()
        }
    }

    #[test]
    fn renumbers_across_packets_dropped_on_purpose_and_marks_the_new_spurt() {
        let mut rewriter = SequenceRewriter::default();
        let mut out = Vec::new();
        for seq in [65533u16, 65534, 65535, 0, 1, 2, 3] {
            if matches!(seq, 65535 | 0 | 1) {
                rewriter.drop_one();
                continue;
            }
            let mut h = header(seq);
            rewriter.rewrite(&mut h);
            out.push((h.sequence_number, h.marker));
        }
        assert_eq!(
            out,
            vec![(65533, false), (65534, false), (65535, true), (0, false)]
        );
    }

    #[test]
    fn keeps_network_gaps() {
        let mut rewriter = SequenceRewriter::default();
        let mut h = header(10);
        rewriter.rewrite(&mut h);
        let mut later = header(13);
        rewriter.rewrite(&mut later);
        assert_eq!((h.sequence_number, later.sequence_number), (10, 13));
        assert!(!later.marker);
    }
}
