//! What the voice SFU costs and how much latency it adds: a room of ten people talking at once.
//!
//! ```sh
//! cargo bench -p huddle-agent --bench voice_sfu
//! ```
//!
//! Ten Rust WebRTC clients (this process, `tests/support`) join voice the way the browser does
//! and each publish synthetic Opus: 50 packets/s of 100 bytes, each payload carrying its
//! publisher, its number and the time it was written. The agent runs as it ships, in a child
//! process (this binary again, started with `HUDDLE_VOICE_BENCH_AGENT=1`), so its CPU time is
//! its own: `utime + stime` of `/proc/<pid>/stat` over a 10 s window in steady state, divided
//! by the packets the subscribers received in that window (every one forwarded by the agent:
//! 10 publishers x 9 subscribers = 90 streams, 4,500 packets/s).
//!
//! Figures are set against two published anchors for audio SFUs on one core: LiveKit's
//! ~75,000 forwarded audio packets/s, and mediasoup's ~500 consumers (one forwarded stream to
//! one subscriber each).
//!
//! Latency is write-to-read: from the publisher handing a packet to its WebRTC stack to a
//! subscriber's stack handing it over, both in this process on one clock. Two baselines run in
//! this process with the same clients' code and no agent:
//! - one direct pair (two streams): the floor of the WebRTC stack on loopback, unloaded; the
//!   SFU's figure minus this one bounds from above what the SFU adds (a second hop through
//!   SRTP, the agent's ingest and egress tasks, and 4,500 packets/s of load);
//! - a full mesh of 45 direct connections carrying the same 90 streams: the same traffic
//!   without an SFU, where each publisher encrypts and sends nine copies and all 90
//!   connections share this process's two threads.

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context as _, Result, bail, ensure};
use huddle_agent::voice::VoiceConfig;
use huddle_protocol::Role;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::media::{self, Mic, Output, Received};
use support::voice_client::{VoiceClient, everyone_hears_everyone};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

const PEOPLE: u8 = 10;
const STREAMS: u64 = PEOPLE as u64 * (PEOPLE as u64 - 1);
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
/// Published single-core anchors.
const LIVEKIT_AUDIO_PPS_PER_CORE: f64 = 75_000.0;
const MEDIASOUP_CONSUMERS_PER_CORE: f64 = 500.0;
const CHILD_VAR: &str = "HUDDLE_VOICE_BENCH_AGENT";

/// One phase's measurements.
struct Phase {
    /// Packets the subscribers received in the window.
    packets: u64,
    window: Duration,
    latencies: Vec<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.packets as f64 / self.window.as_secs_f64()
    }

    fn p(&self, q: f64) -> f64 {
        media::quantile_ms(&self.latencies, q)
    }
}

/// Records the clients' packets and latencies over [`MEASURE`], after [`WARM_UP`].
async fn measure(listeners: &[Arc<Received>], mut during: impl FnMut(bool)) -> Phase {
    tokio::time::sleep(WARM_UP).await;
    let before: u64 = listeners.iter().map(|r| r.total()).sum();
    for received in listeners {
        received.record_latencies(true);
    }
    let start = Instant::now();
    during(true);
    tokio::time::sleep(MEASURE).await;
    during(false);
    let window = start.elapsed();
    let mut latencies = Vec::new();
    for received in listeners {
        latencies.extend(received.record_latencies(false));
    }
    let after: u64 = listeners.iter().map(|r| r.total()).sum();
    latencies.sort_unstable();
    Phase {
        packets: after - before,
        window,
        latencies,
    }
}

/// CPU seconds used so far by process `pid` (all its threads, living and gone).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The agent, as shipped, in a child process; stops when this is dropped.
struct ChildAgent {
    child: Child,
    addr: SocketAddr,
}

impl ChildAgent {
    fn start() -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("the agent said {line:?}"))?
            .parse()?;
        Ok(Self { child, addr })
    }
}

impl Drop for ChildAgent {
    fn drop(&mut self) {
        // Closing its stdin tells the child to exit.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child: an agent on 127.0.0.1 until stdin closes.
fn child_main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let agent = support::start_agent(VoiceConfig::default()).await?;
        println!("listening {}", agent.addr);
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await?;
        drop(agent);
        Ok(())
    })
}

struct SfuRun {
    phase: Phase,
    cpu: f64,
    setup: Duration,
}

async fn through_the_sfu() -> Result<SfuRun> {
    let agent = ChildAgent::start()?;
    let pid = agent.child.id();
    let setup = Instant::now();
    let remote = support::Agent::at(agent.addr);
    let mut clients = Vec::new();
    for index in 0..PEOPLE {
        clients.push(VoiceClient::connect(&remote, index, Role::Editor).await?);
    }
    for client in &clients {
        client.join_voice();
    }
    everyone_hears_everyone(&clients, Duration::from_secs(60)).await?;
    let setup = setup.elapsed();
    let listeners: Vec<Arc<Received>> = clients.iter().map(|c| Arc::clone(&c.received)).collect();
    let mut cpu_start = 0.0;
    let mut cpu = 0.0;
    let phase = measure(&listeners, |starting| {
        let now = cpu_seconds(pid).unwrap_or(f64::NAN);
        if starting {
            cpu_start = now;
        } else {
            cpu = now - cpu_start;
        }
    })
    .await;
    for client in &clients {
        ensure!(client.received.own() == 0, "a client heard itself");
        ensure!(
            client.received.misattributed() == 0,
            "a track carried the wrong person"
        );
    }
    drop(clients);
    drop(agent);
    Ok(SfuRun { phase, cpu, setup })
}

/// One end of a direct connection in the mesh.
struct MeshHandler {
    me: u8,
    other: u8,
    received: Arc<Received>,
    gathered: mpsc::UnboundedSender<()>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for MeshHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Release,
        );
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.received.listen(self.me, Some(self.other), track);
    }
}

/// A mesh end: its connection, its microphone output on it, and its gathering signal.
struct End {
    pc: Arc<dyn PeerConnection>,
    output: Output,
    sender: Arc<dyn RtpSender>,
    gathered: mpsc::UnboundedReceiver<()>,
}

async fn end(me: u8, other: u8, received: &Arc<Received>) -> Result<End> {
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    let connected = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(MeshHandler {
        me,
        other,
        received: Arc::clone(received),
        gathered: gathered_tx,
        connected: Arc::clone(&connected),
    });
    let pc = media::peer_connection(handler).await?;
    let ssrc = media::random_ssrc()?;
    let track = media::mic_track(me, ssrc);
    let mut output = Output::new(Arc::clone(&track), ssrc);
    output.connected = connected;
    let sender = pc.add_track(track as Arc<dyn TrackLocal>).await?;
    Ok(End {
        pc,
        output,
        sender,
        gathered,
    })
}

async fn gathered(end: &mut End) -> Result<String> {
    tokio::time::timeout(Duration::from_secs(10), end.gathered.recv())
        .await
        .context("ICE gathering did not complete")?;
    Ok(end
        .pc
        .local_description()
        .await
        .context("no local description")?
        .sdp)
}

/// Connects `a` and `b` directly, without trickle (candidates travel in the SDP).
async fn connect_pair(a: &mut End, b: &mut End) -> Result<()> {
    let offer = a.pc.create_offer(None).await?;
    a.pc.set_local_description(offer).await?;
    let offer = gathered(a).await?;
    b.pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let answer = b.pc.create_answer(None).await?;
    b.pc.set_local_description(answer).await?;
    let answer = gathered(b).await?;
    a.pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    for end in [&*a, &*b] {
        let payload_type = media::negotiated_payload_type(&end.sender)
            .await
            .context("no payload type negotiated")?;
        end.output
            .payload_type
            .store(u16::from(payload_type), Ordering::Release);
    }
    Ok(())
}

struct MeshRun {
    phase: Phase,
    setup: Duration,
}

/// `people` clients, each directly connected to each other one.
async fn peer_to_peer(people: u8) -> Result<MeshRun> {
    let setup = Instant::now();
    let listeners: Vec<Arc<Received>> = (0..people).map(|_| Arc::default()).collect();
    let mut outputs: Vec<Vec<Output>> = (0..people).map(|_| Vec::new()).collect();
    let mut connections = Vec::new();
    for a in 0..people {
        for b in a + 1..people {
            let mut end_a = end(a, b, &listeners[usize::from(a)]).await?;
            let mut end_b = end(b, a, &listeners[usize::from(b)]).await?;
            connect_pair(&mut end_a, &mut end_b).await?;
            for (index, end) in [(a, end_a), (b, end_b)] {
                connections.push(Arc::clone(&end.pc));
                outputs[usize::from(index)].push(end.output);
            }
        }
    }
    let mics: Vec<Mic> = outputs
        .into_iter()
        .enumerate()
        .map(|(index, outputs)| Mic::start(index as u8, outputs))
        .collect();
    media::eventually(
        "the mesh to carry every stream",
        Duration::from_secs(60),
        || {
            listeners
                .iter()
                .all(|r| r.publishers().len() == usize::from(people) - 1)
        },
    )
    .await?;
    let setup = setup.elapsed();
    let phase = measure(&listeners, |_| {}).await;
    drop(mics);
    for pc in connections {
        let _ = pc.close().await;
    }
    Ok(MeshRun { phase, setup })
}

fn print_latency(label: &str, phase: &Phase) {
    println!(
        "  {label:<34} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  {} samples",
        phase.p(0.5),
        phase.p(0.99),
        phase.p(1.0),
        phase.latencies.len()
    );
}

fn print_versus(label: &str, phase: &Phase, baseline: &Phase) {
    println!(
        "  {label:<34} p50 {:+.3} ms ({:.2}x)  p99 {:+.3} ms ({:.2}x)",
        phase.p(0.5) - baseline.p(0.5),
        phase.p(0.5) / baseline.p(0.5),
        phase.p(0.99) - baseline.p(0.99),
        phase.p(0.99) / baseline.p(0.99)
    );
}

async fn bench() -> Result<()> {
    let started = Instant::now();
    println!(
        "{PEOPLE} people in voice, each sending 50 packets/s of {} bytes: {STREAMS} forwarded streams, {} packets/s",
        media::PAYLOAD_LEN,
        STREAMS * 50
    );
    let own_cpu = cpu_seconds(std::process::id())?;
    let sfu = through_the_sfu().await?;
    let pair = peer_to_peer(2).await?;
    let mesh = peer_to_peer(PEOPLE).await?;
    let own_cpu = cpu_seconds(std::process::id())? - own_cpu;

    let expected = STREAMS as f64 * 50.0;
    let window = sfu.phase.window.as_secs_f64();
    let core_share = sfu.cpu / window;
    let packets_per_cpu_second = sfu.phase.packets as f64 / sfu.cpu;
    let streams_per_core = STREAMS as f64 / core_share;
    println!(
        "agent (child process, release build), {window:.1} s window after {:.1} s of setup:",
        sfu.setup.as_secs_f64()
    );
    println!(
        "  forwarded {} packets = {:.0}/s ({:.1}% of the {expected:.0}/s sent)",
        sfu.phase.packets,
        sfu.phase.rate(),
        100.0 * sfu.phase.rate() / expected
    );
    println!(
        "  CPU {:.2} s = {:.1}% of one core; {:.3}% of a core per forwarded stream",
        sfu.cpu,
        100.0 * core_share,
        100.0 * core_share / STREAMS as f64
    );
    println!(
        "  {packets_per_cpu_second:.0} forwarded packets per CPU-second = {:.3}x LiveKit's ~75,000 audio packets/s per core",
        packets_per_cpu_second / LIVEKIT_AUDIO_PPS_PER_CORE
    );
    println!(
        "  {streams_per_core:.0} forwarded streams per core = {:.3}x mediasoup's ~500 consumers per core",
        streams_per_core / MEDIASOUP_CONSUMERS_PER_CORE
    );
    println!(
        "latency, publisher's write to subscriber's read (SFU vs each baseline: difference, ratio):"
    );
    print_latency("one direct pair (2 streams)", &pair.phase);
    print_latency(
        &format!("full mesh ({STREAMS} direct streams)"),
        &mesh.phase,
    );
    print_latency(&format!("through the agent's SFU ({STREAMS})"), &sfu.phase);
    print_versus("SFU vs one direct pair", &sfu.phase, &pair.phase);
    print_versus("SFU vs full mesh", &sfu.phase, &mesh.phase);
    println!(
        "  (mesh: {} packets = {:.0}/s received, setup {:.1} s; this process, clients and baselines: {:.1} CPU s)",
        mesh.phase.packets,
        mesh.phase.rate(),
        mesh.setup.as_secs_f64(),
        own_cpu
    );
    if sfu.phase.rate() < 0.9 * expected {
        bail!("the SFU delivered under 90% of the packets sent");
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> Result<()> {
    if std::env::var_os(CHILD_VAR).is_some() {
        return child_main();
    }
    media::now_ns();
    tokio::runtime::Runtime::new()?.block_on(bench())
}
