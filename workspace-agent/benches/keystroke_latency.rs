//! Keystroke-to-peer latency over loopback WebSockets: real agents, real clients, in-process.
//!
//! ```sh
//! cargo bench -p huddle-agent --bench keystroke_latency
//! ```
//!
//! Each scenario starts `rooms` agents (one `AppState` per session, as in production: one agent
//! per session pod) on 127.0.0.1:0, each with a temporary workspace holding one file, and
//! connects ten WebSocket clients to each. Every client joins with a signed token, opens the
//! file, and then types one character at a time at a steady rate (see `SCENARIOS`) at the end
//! of its own line, all clients of all rooms staggered evenly over the period so they take
//! turns. Edits go through the
//! reference OT `Client` (one op in flight, later keystrokes composed), so every op the agent
//! gets is valid and transformed like a browser's. For every op that reaches a *peer* the
//! receiver records the time since its author handed the op to its WebSocket (matched on
//! `(client_id, seq)`). At the end all texts in a room must be equal.
//!
//! The baseline is the same clients and the same traffic over a plain relay: a
//! tokio-tungstenite server per room that forwards every text frame to all connections of the
//! room (author included, like the agent's broadcast), with no parsing, no OT and no room task.
//! Both run in this process on the same runtime (two worker threads on the benchmark machine),
//! so clients and servers share the CPU. Clients, the relay and the agent all set TCP_NODELAY
//! (the agent does since this bench showed Nagle's algorithm cost it a 35 ms p99).

use anyhow::{Context as _, Result, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use huddle_agent::app::{AppState, Settings};
use huddle_agent::ot::{AppliedOp, Client, ClientId, Submission, TextOperation};
use huddle_protocol::Role;
use huddle_protocol::messages::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use huddle_protocol::token::{Claims, TokenKey};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const KEY: [u8; 32] = [42; 32];
const SESSION: &str = "bench";
const FILE: &str = "main.rs";
const USERS: usize = 10;
/// Rooms, and one keystroke per client per this period. 10 keystrokes/s is a fast typist
/// typing without pause; with ten of them in each of 100 rooms, clients and agents together
/// outrun two cores, so 100 rooms also run at 2 keystrokes/s per client (a room of ten where
/// about two type at a time).
const SCENARIOS: [(usize, Duration); 3] = [
    (1, Duration::from_millis(100)),
    (100, Duration::from_millis(100)),
    (100, Duration::from_millis(500)),
];
const TYPING: Duration = Duration::from_secs(5);
/// After typing stops, how long clients keep reading for the last ops and acks.
const DRAIN: Duration = Duration::from_secs(2);
/// Sends a heartbeat this often, well inside the agent's zombie timeout.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Highest seq a client can reach in one run (50 keystrokes), with room to spare.
const MAX_SEQ: usize = 256;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Nanoseconds since the first call: one clock for every task of the process.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// When each `(client, seq)` of one room was handed to the author's socket (0 = not yet).
struct SendTimes(Vec<AtomicU64>);

impl SendTimes {
    fn new() -> Arc<Self> {
        Arc::new(Self(
            (0..USERS * MAX_SEQ).map(|_| AtomicU64::new(0)).collect(),
        ))
    }

    fn slot(&self, client: usize, seq: u64) -> Option<&AtomicU64> {
        let seq = usize::try_from(seq).ok()?;
        (seq < MAX_SEQ).then(|| &self.0[client * MAX_SEQ + seq])
    }

    fn record(&self, client: usize, seq: u64) {
        if let Some(slot) = self.slot(client, seq) {
            slot.store(now_ns(), Ordering::Release);
        }
    }

    fn since(&self, client: usize, seq: u64) -> Option<u64> {
        let sent = self.slot(client, seq)?.load(Ordering::Acquire);
        (sent != 0).then(|| now_ns().saturating_sub(sent))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    /// The agent exactly as `huddle_agent::serve` runs it.
    Agent,
    Relay,
}

/// What a client saw.
#[derive(Default)]
struct Observed {
    /// Send-to-arrival of peers' ops, nanoseconds.
    latencies: Vec<u64>,
    keystrokes: u64,
    ops_sent: u64,
    /// Final text (agent runs), to check the room converged.
    text: Option<String>,
}

fn token(key: &TokenKey, user: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    key.sign(&Claims {
        sid: SESSION.into(),
        name: format!("user{user}"),
        role: Role::Editor,
        exp: now + 3600,
        uid: format!("uid-{user}"),
    })
}

fn initial_text() -> String {
    (0..USERS)
        .map(|i| format!("// line of user {i}\n"))
        .collect()
}

/// One agent on loopback; dropping `stop` shuts it down.
struct Running {
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
    _stop: watch::Sender<()>,
}

async fn start_agent() -> Result<Running> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(FILE), initial_text())?;
    let state = AppState::start(Settings {
        session_id: SESSION.into(),
        workspace: dir.path().to_path_buf(),
        key: TokenKey::new(KEY)?,
        shell: Some("/bin/sh".into()),
        restore: None,
    })
    .await
    .context("starting an agent (100 rooms need 100 inotify instances)")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(());
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    let router = huddle_agent::http::router(state);
    tokio::spawn(huddle_agent::serve(listener, router, shutdown));
    Ok(Running {
        addr,
        _dir: Some(dir),
        _stop: stop,
    })
}

/// The baseline: forwards every text frame to every connection of the room, author included.
async fn start_relay() -> Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(());
    let peers: Arc<Mutex<Vec<mpsc::Sender<Message>>>> = Arc::default();
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => break,
                },
                _ = stopped.changed() => break,
            };
            let peers = peers.clone();
            connections.spawn(async move {
                let _ = stream.set_nodelay(true);
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                // Same shape as the agent: a writer task per connection fed by a channel.
                let (tx, mut rx) = mpsc::channel::<Message>(4096);
                if let Ok(mut peers) = peers.lock() {
                    peers.push(tx);
                }
                let writer = tokio::spawn(async move {
                    while let Some(message) = rx.recv().await {
                        if sink.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(frame)) = stream.next().await {
                    if let Message::Text(text) = frame {
                        let targets: Vec<_> = match peers.lock() {
                            Ok(peers) => peers.clone(),
                            Err(_) => break,
                        };
                        for peer in targets {
                            let _ = peer.send(Message::Text(text.clone())).await;
                        }
                    }
                }
                writer.abort();
            });
        }
        connections.abort_all();
    });
    Ok(Running {
        addr,
        _dir: None,
        _stop: stop,
    })
}

async fn send(ws: &mut Ws, message: &impl serde::Serialize) -> Result<()> {
    ws.send(Message::Text(serde_json::to_string(message)?.into()))
        .await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no message within 30 s")?
            .context("connection closed")??;
        if let Message::Text(text) = frame {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
}

/// Joins and opens the file; returns the client's OT state.
async fn join_agent(ws: &mut Ws, key: &TokenKey, user: usize) -> Result<Client> {
    let client_id = format!("c{user}");
    send(
        ws,
        &ClientMessage::Join {
            version: PROTOCOL_VERSION,
            token: token(key, user),
            client_id: client_id.clone(),
        },
    )
    .await?;
    match recv(ws).await? {
        ServerMessage::Welcome { .. } => {}
        other => bail!("expected welcome, got {other:?}"),
    }
    send(
        ws,
        &ClientMessage::Open {
            file: FILE.into(),
            since: None,
        },
    )
    .await?;
    loop {
        if let ServerMessage::Document {
            file, rev, text, ..
        } = recv(ws).await?
            && file == FILE
        {
            return Ok(Client::new(ClientId(client_id), rev, &text));
        }
    }
}

/// One keystroke: a character at the end of this user's own line.
fn keystroke(client: &Client, user: usize, n: u64) -> Result<TextOperation> {
    let text = client.text();
    let at = text.line_to_char(user + 1) - 1;
    let ch = char::from(b'a' + (n % 26) as u8);
    let op = TextOperation::from_components([
        huddle_agent::ot::Component::Retain(at),
        huddle_agent::ot::Component::Insert(ch.to_string()),
        huddle_agent::ot::Component::Retain(text.len_chars() - at),
    ])?;
    Ok(op)
}

fn user_of(client_id: &str) -> Option<usize> {
    client_id.strip_prefix('c')?.parse().ok()
}

async fn submit(
    ws: &mut Ws,
    times: &SendTimes,
    user: usize,
    sub: Option<Submission>,
    seen: &mut Observed,
) -> Result<()> {
    if let Some(sub) = sub {
        let message = ClientMessage::Op {
            file: FILE.into(),
            base_rev: sub.base_rev,
            seq: sub.seq,
            op: serde_json::to_value(&sub.op)?,
        };
        let text = serde_json::to_string(&message)?;
        times.record(user, sub.seq);
        ws.send(Message::Text(text.into())).await?;
        seen.ops_sent += 1;
    }
    Ok(())
}

/// Who a participant is and how it types.
struct Seat {
    server: Server,
    addr: SocketAddr,
    user: usize,
    /// One keystroke per this period.
    every: Duration,
    /// This client's place among all clients of all rooms, for staggering.
    slot: usize,
    slots: usize,
}

/// One participant: connect, join, wait for everyone, type for `TYPING`, read until `DRAIN`.
async fn participant(
    seat: Seat,
    times: Arc<SendTimes>,
    ready: Arc<Barrier>,
    mut start: watch::Receiver<Option<tokio::time::Instant>>,
) -> Result<Observed> {
    let Seat {
        server,
        addr,
        user,
        every,
        slot,
        slots,
    } = seat;
    let key = TokenKey::new(KEY)?;
    // Browsers set TCP_NODELAY on their sockets; so do these clients.
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/ws"), None, true).await?;
    let mut client = match server {
        Server::Agent => Some(join_agent(&mut ws, &key, user).await?),
        Server::Relay => None,
    };
    // Everyone (all rooms) is connected and has the document before anyone types.
    ready.wait().await;
    let begin = (*start.wait_for(Option::is_some).await?).context("no start time")?;
    // Keystrokes are spread evenly over the period across every client of every room, so
    // rooms do not all type in the same instant (users in different sessions are not in step).
    let stagger = every.mul_f64(slot as f64 / slots as f64);
    let mut ticks = tokio::time::interval_at(begin + stagger, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut heartbeat = tokio::time::interval_at(begin + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
    let typing_ends = begin + TYPING;
    let drain_ends = typing_ends + DRAIN;
    let mut seen = Observed::default();
    let mut relay_seq = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick(), if tokio::time::Instant::now() < typing_ends => {
                seen.keystrokes += 1;
                match &mut client {
                    Some(client) => {
                        let op = keystroke(client, user, seen.keystrokes)?;
                        let sub = client.apply_local(op)?;
                        submit(&mut ws, &times, user, sub, &mut seen).await?;
                    }
                    None => {
                        // The relay gets the message the agent would broadcast for this op.
                        relay_seq += 1;
                        let message = ServerMessage::Op {
                            file: FILE.into(),
                            rev: relay_seq,
                            client_id: format!("c{user}"),
                            seq: relay_seq,
                            op: serde_json::json!([40 + user, "x", 200]),
                        };
                        let text = serde_json::to_string(&message)?;
                        times.record(user, relay_seq);
                        ws.send(Message::Text(text.into())).await?;
                        seen.ops_sent += 1;
                    }
                }
            }
            _ = heartbeat.tick(), if client.is_some() => {
                send(&mut ws, &ClientMessage::Heartbeat).await?;
            }
            _ = tokio::time::sleep_until(drain_ends) => break,
            frame = ws.next() => {
                let Some(frame) = frame else { bail!("user {user}: connection closed") };
                let Message::Text(text) = frame? else { continue };
                let message: ServerMessage = serde_json::from_str(text.as_str())?;
                let ServerMessage::Op { rev, client_id, seq, op, .. } = message else {
                    continue;
                };
                let author = user_of(&client_id).context("unexpected client id")?;
                if author != user
                    && let Some(ns) = times.since(author, seq)
                {
                    seen.latencies.push(ns);
                }
                if let Some(client) = &mut client {
                    let applied = AppliedOp {
                        rev,
                        client_id: ClientId(client_id),
                        seq,
                        op: serde_json::from_value(op)?,
                    };
                    let sub = client.apply_server(&applied)?;
                    submit(&mut ws, &times, user, sub, &mut seen).await?;
                }
            }
        }
    }
    if let Some(client) = &client {
        ensure!(
            matches!(client.state(), huddle_agent::ot::State::Synchronized),
            "user {user}: edits still unacknowledged after the drain"
        );
        seen.text = Some(client.text().to_string());
    }
    let _ = ws.close(None).await;
    Ok(seen)
}

struct Summary {
    samples: usize,
    p50: f64,
    p99: f64,
    max: f64,
    keystrokes: u64,
    ops_sent: u64,
    setup: Duration,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1e6
}

async fn scenario(server: Server, rooms: usize, every: Duration) -> Result<Summary> {
    let setup_start = Instant::now();
    let mut servers = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        servers.push(match server {
            Server::Agent => start_agent().await?,
            Server::Relay => start_relay().await?,
        });
    }
    let ready = Arc::new(Barrier::new(rooms * USERS + 1));
    let (start_tx, start) = watch::channel(None);
    let mut tasks = JoinSet::new();
    for (room, running) in servers.iter().enumerate() {
        let times = SendTimes::new();
        for user in 0..USERS {
            let (times, ready, start) = (times.clone(), ready.clone(), start.clone());
            let addr = running.addr;
            tasks.spawn(async move {
                let seat = Seat {
                    server,
                    addr,
                    user,
                    every,
                    slot: user * rooms + room,
                    slots: rooms * USERS,
                };
                let seen = participant(seat, times, ready, start).await;
                (room, seen)
            });
        }
    }
    tokio::time::timeout(Duration::from_secs(90), ready.wait())
        .await
        .context("clients did not all join within 90 s")?;
    let setup = setup_start.elapsed();
    start_tx.send_replace(Some(
        tokio::time::Instant::now() + Duration::from_millis(200),
    ));
    let mut latencies = Vec::new();
    let (mut keystrokes, mut ops_sent) = (0, 0);
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); rooms];
    while let Some(joined) = tasks.join_next().await {
        let (room, seen) = joined?;
        let seen = seen.with_context(|| format!("{server:?} room {room}"))?;
        latencies.extend(seen.latencies);
        keystrokes += seen.keystrokes;
        ops_sent += seen.ops_sent;
        texts[room].extend(seen.text);
    }
    if server != Server::Relay {
        for (room, texts) in texts.iter().enumerate() {
            ensure!(
                texts.len() == USERS && texts.iter().all(|t| *t == texts[0]),
                "room {room}: the participants' texts diverged"
            );
        }
    }
    drop(servers);
    latencies.sort_unstable();
    Ok(Summary {
        samples: latencies.len(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: percentile(&latencies, 100.0),
        keystrokes,
        ops_sent,
        setup,
    })
}

fn print(label: &str, s: &Summary, baseline: Option<&Summary>) {
    let ratio = |a: f64, b: f64| format!("{:.2}x", a / b);
    let (r50, r99) = baseline.map_or(("-".to_owned(), "-".to_owned()), |b| {
        (ratio(s.p50, b.p50), ratio(s.p99, b.p99))
    });
    println!(
        "  {label:<26} p50 {:>7.3} ms ({r50:>6})  p99 {:>7.3} ms ({r99:>6})  max {:>8.3} ms  \
         {} samples, {} keystrokes in {} ops, setup {:.1} s",
        s.p50,
        s.p99,
        s.max,
        s.samples,
        s.keystrokes,
        s.ops_sent,
        s.setup.as_secs_f64()
    );
}

async fn run(rooms: usize, every: Duration) -> Result<()> {
    println!(
        "{rooms} room(s) x {USERS} users, {:.0} keystrokes/s each for {} s; ratio = agent / relay",
        1.0 / every.as_secs_f64(),
        TYPING.as_secs()
    );
    let relay = scenario(Server::Relay, rooms, every).await?;
    let agent = scenario(Server::Agent, rooms, every).await?;
    print("plain WebSocket relay", &relay, None);
    print("huddle agent (as shipped)", &agent, Some(&relay));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    now_ns();
    let started = Instant::now();
    // `cargo bench` passes `--bench`; a bare number runs only that many rooms.
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    for (rooms, every) in SCENARIOS {
        if only.is_none_or(|n| n == rooms) {
            run(rooms, every).await?;
        }
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
