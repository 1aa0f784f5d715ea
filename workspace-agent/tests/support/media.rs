//! Synthetic voice: Opus-sized RTP packets at 50 per second whose payload says who sent them,
//! which one they are and when (`[publisher][seq: u32][sent: u64 ns]`, then filler), and
//! bookkeeping of what each listener received.

use anyhow::Result;
use bytes::{BufMut as _, Bytes, BytesMut};
use rtc::rtp;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal as _;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, PeerConnectionEventHandler};
use webrtc::rtp_transceiver::RtpSender;

/// One packet per 20 ms frame.
pub const FRAME: Duration = Duration::from_millis(20);
/// A typical Opus voice frame at 32-40 kbit/s.
pub const PAYLOAD_LEN: usize = 100;
/// Samples per frame at 48 kHz.
const FRAME_SAMPLES: u32 = 960;
const HEADER_LEN: usize = 13;

/// Nanoseconds since the first call: one clock for every task of this process.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub fn payload(publisher: u8, seq: u32, sent_ns: u64) -> Bytes {
    let mut bytes = BytesMut::with_capacity(PAYLOAD_LEN);
    bytes.put_u8(publisher);
    bytes.put_u32(seq);
    bytes.put_u64(sent_ns);
    bytes.resize(PAYLOAD_LEN, 0xa5);
    bytes.freeze()
}

/// `(publisher, seq, sent_ns)` from a payload made by [`payload`].
pub fn parse(payload: &[u8]) -> Option<(u8, u32, u64)> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    let seq = u32::from_be_bytes(payload[1..5].try_into().ok()?);
    let sent = u64::from_be_bytes(payload[5..13].try_into().ok()?);
    Some((payload[0], seq, sent))
}

/// A peer connection as a browser would make it for voice (Opus, RTCP reports), on 127.0.0.1:
/// the agent's own voice connection setup.
pub async fn peer_connection(
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(huddle_agent::voice::audio_peer_connection(vec![addr], handler).await?)
}

/// A microphone track: add it to a connection, then [`Mic::start`] it.
pub fn mic_track(publisher: u8, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    huddle_agent::voice::audio_track(
        format!("mic-{publisher}-{ssrc}"),
        format!("mic-track-{publisher}-{ssrc}"),
        "microphone".to_owned(),
        ssrc,
    )
}

/// Where a microphone's packets go: a track and the payload type its connection negotiated
/// (`u16::MAX` until it has).
pub struct Output {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: Arc<AtomicU16>,
    /// The connection is up (SRTP has keys), as a browser waits for before sending.
    pub connected: Arc<AtomicBool>,
}

impl Output {
    pub fn new(track: Arc<TrackLocalStaticRTP>, ssrc: u32) -> Self {
        Self {
            track,
            ssrc,
            payload_type: Arc::new(AtomicU16::new(u16::MAX)),
            connected: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Reads the payload type `sender`'s connection negotiated.
pub async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>) -> Option<u8> {
    let parameters = sender.get_parameters().await.ok()?;
    parameters
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
}

/// A synthetic microphone: one packet every 20 ms to every output whose connection has
/// negotiated, numbered from 0; a packet counts as sent once it reached at least one.
pub struct Mic {
    next_seq: Arc<AtomicU32>,
    task: JoinHandle<()>,
}

impl Mic {
    pub fn start(publisher: u8, outputs: Vec<Output>) -> Self {
        let next_seq = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn({
            let next_seq = Arc::clone(&next_seq);
            async move {
                let mut tick = tokio::time::interval(FRAME);
                let mut timestamp: u32 = 0;
                loop {
                    tick.tick().await;
                    let seq = next_seq.load(Ordering::Acquire);
                    let body = payload(publisher, seq, now_ns());
                    let mut sent = false;
                    for output in &outputs {
                        if !output.connected.load(Ordering::Acquire) {
                            continue;
                        }
                        let Ok(payload_type) =
                            u8::try_from(output.payload_type.load(Ordering::Acquire))
                        else {
                            continue;
                        };
                        let packet = rtp::Packet {
                            header: rtp::header::Header {
                                version: 2,
                                payload_type,
                                sequence_number: seq as u16,
                                timestamp,
                                ssrc: output.ssrc,
                                ..Default::default()
                            },
                            payload: body.clone(),
                        };
                        sent |= output.track.write_rtp(packet).await.is_ok();
                    }
                    if sent {
                        next_seq.store(seq + 1, Ordering::Release);
                        timestamp = timestamp.wrapping_add(FRAME_SAMPLES);
                    }
                }
            }
        });
        Self { next_seq, task }
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u32 {
        self.next_seq.load(Ordering::Acquire)
    }
}

impl Drop for Mic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one listener received.
#[derive(Default)]
pub struct Received {
    inner: Mutex<ReceivedInner>,
}

#[derive(Default)]
struct ReceivedInner {
    from: BTreeMap<u8, HashSet<u32>>,
    /// Stream ids of the tracks that arrived, in order.
    streams: Vec<String>,
    /// Packets whose payload names this listener: its own voice sent back.
    own: u64,
    /// Packets on a track whose stream id is not their publisher's user id.
    misattributed: u64,
    /// Send-to-receive times, nanoseconds, while recording.
    latencies: Vec<u64>,
    recording: bool,
    total: u64,
}

impl Received {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReceivedInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `track` until it ends, recording its packets for listener `me`; `publisher` is
    /// who the track should carry, if the caller knows.
    pub fn listen(
        self: &Arc<Self>,
        me: u8,
        publisher: Option<u8>,
        track: Arc<dyn TrackRemote>,
    ) -> JoinHandle<()> {
        let received = Arc::clone(self);
        tokio::spawn(async move {
            let stream = track.stream_id().await;
            received.lock().streams.push(stream.clone());
            let expected = publisher.or_else(|| super::index_of(&stream));
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let now = now_ns();
                let Some((from, seq, sent)) = parse(&packet.payload) else {
                    continue;
                };
                let mut inner = received.lock();
                inner.total += 1;
                if from == me {
                    inner.own += 1;
                }
                if expected != Some(from) {
                    inner.misattributed += 1;
                }
                inner.from.entry(from).or_default().insert(seq);
                if inner.recording {
                    inner.latencies.push(now.saturating_sub(sent));
                }
            }
        })
    }

    /// How many of `publisher`'s packets numbered in `seqs` arrived.
    pub fn count(&self, publisher: u8, seqs: std::ops::Range<u32>) -> usize {
        self.lock()
            .from
            .get(&publisher)
            .map_or(0, |got| seqs.filter(|seq| got.contains(seq)).count())
    }

    /// The highest sequence number received from `publisher`.
    pub fn max_seq(&self, publisher: u8) -> Option<u32> {
        self.lock()
            .from
            .get(&publisher)
            .and_then(|got| got.iter().max().copied())
    }

    /// Publishers heard from.
    pub fn publishers(&self) -> Vec<u8> {
        self.lock().from.keys().copied().collect()
    }

    pub fn streams(&self) -> Vec<String> {
        self.lock().streams.clone()
    }

    pub fn own(&self) -> u64 {
        self.lock().own
    }

    pub fn misattributed(&self) -> u64 {
        self.lock().misattributed
    }

    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Starts (or stops) recording latencies; returns what was recorded so far and clears it.
    pub fn record_latencies(&self, on: bool) -> Vec<u64> {
        let mut inner = self.lock();
        inner.recording = on;
        std::mem::take(&mut inner.latencies)
    }
}

/// A random SSRC.
pub fn random_ssrc() -> Result<u32> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(u32::from_be_bytes(bytes))
}

/// Polls `ready` every 20 ms until it holds or `within` passes.
pub async fn eventually(
    what: &str,
    within: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    while !ready() {
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "timed out after {within:?} waiting for {what}"
            ));
        }
        tokio::time::sleep(FRAME).await;
    }
    Ok(())
}

/// Sorted copy's `q` quantile (0..=1), in milliseconds.
pub fn quantile_ms(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_ns.len() - 1) as f64 * q).round() as usize;
    sorted_ns[index.min(sorted_ns.len() - 1)] as f64 / 1e6
}
