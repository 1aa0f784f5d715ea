//! One participant's WebSocket: authenticate with `join`, then relay messages to the room in
//! the order they arrive, and the room's (and attached terminals') messages back.
//!
//! Frames over [`MAX_MESSAGE_BYTES`] get an error message and change nothing; frames far over
//! it (more than [`HARD_FRAME_LIMIT`]) are cut off by the WebSocket layer, which closes the
//! connection.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt as _, StreamExt as _};
use huddle_protocol::messages::{ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, ServerMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::debug;

use crate::app::AppState;
use crate::room::presence::ConnId;
use crate::room::{Command, OUTBOX_CAPACITY};
use crate::terminal::{Snapshot, TerminalOutput};

/// Frames larger than this are refused by the WebSocket layer itself.
pub const HARD_FRAME_LIMIT: usize = 4 * MAX_MESSAGE_BYTES;
/// A connection must send `join` this soon.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Terminal output queued per connection and terminal before the terminal's own lag handling
/// (a fresh snapshot) takes over.
const TERMINAL_QUEUE: usize = 256;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub async fn upgrade(ws: WebSocketUpgrade, State(app): State<AppState>) -> Response {
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| connection(socket, app))
}

fn text(message: &ServerMessage) -> Message {
    // Server messages are plain data; serializing them cannot fail.
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(message).unwrap_or_default(),
    ))
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    let _ = socket
        .send(text(&ServerMessage::Error {
            code,
            message: message.clone(),
        }))
        .await;
    let reason: String = message.chars().take(100).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
}

async fn connection(mut socket: WebSocket, app: AppState) {
    let conn: ConnId = NEXT_CONN.fetch_add(1, Ordering::Relaxed);

    // 1. The first message must be `join`, soon.
    let first = match tokio::time::timeout(JOIN_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(_) => return,
        Err(_) => return refuse(socket, ErrorCode::Unauthorized, "join within 10 s".into()).await,
    };
    let (version, token, client_id) = match ClientMessage::parse(first.as_str()) {
        Ok(ClientMessage::Join {
            version,
            token,
            client_id,
        }) => (version, token, client_id),
        Ok(_) => {
            return refuse(
                socket,
                ErrorCode::Unauthorized,
                "the first message must be join".into(),
            )
            .await;
        }
        Err((code, message)) => return refuse(socket, code, message).await,
    };
    let (outbox, mut outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (reply, joined) = oneshot::channel();
    let command = Command::Join {
        conn,
        token,
        version,
        client_id,
        outbox,
        reply,
    };
    if !app.room.send(command).await {
        return;
    }
    match joined.await {
        Ok(Ok(_claims)) => {}
        Ok(Err((code, message))) => return refuse(socket, code, message).await,
        Err(_) => return,
    }

    // 2. Relay both ways until either side ends.
    let (mut sink, mut stream) = socket.split();
    let (terminal_tx, mut terminal_rx) = mpsc::channel::<ServerMessage>(TERMINAL_QUEUE);
    let writer = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = outbox_rx.recv() => message,
                message = terminal_rx.recv() => message,
            };
            let Some(message) = message else { break };
            if sink.send(text(&message)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut attached = JoinSet::new();
    let errors = app.room.clone();
    while let Some(Ok(frame)) = stream.next().await {
        let message = match frame {
            Message::Text(text) => ClientMessage::parse(text.as_str()),
            Message::Binary(_) => Err((
                ErrorCode::Malformed,
                "binary frames are not part of the protocol".into(),
            )),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match message {
            Ok(ClientMessage::TerminalAttach { id }) => {
                attach(&app, conn, id, terminal_tx.clone(), &mut attached).await;
            }
            Ok(message) => {
                if !app.room.send(Command::Message { conn, message }).await {
                    break;
                }
            }
            Err((code, message)) => {
                // Reported through the room so it is ordered with everything else.
                errors
                    .send(Command::Error {
                        conn,
                        code,
                        message,
                    })
                    .await;
            }
        }
    }
    debug!(conn, "connection closed");
    attached.abort_all();
    app.room.send(Command::Left { conn }).await;
    writer.abort();
}

/// Streams terminal `id` to this connection: a snapshot of its screen and scrollback, then
/// its output; a fresh snapshot whenever this connection fell behind.
async fn attach(
    app: &AppState,
    conn: ConnId,
    id: u32,
    out: mpsc::Sender<ServerMessage>,
    tasks: &mut JoinSet<()>,
) {
    let (snapshot, mut subscription) = match app.room.terminals.subscribe(id) {
        Ok(pair) => pair,
        Err(error) => {
            app.room
                .send(Command::Error {
                    conn,
                    code: ErrorCode::NotFound,
                    message: error.to_string(),
                })
                .await;
            return;
        }
    };
    tasks.spawn(async move {
        let first = snapshot_message(id, &snapshot);
        if out.send(first).await.is_err() {
            return;
        }
        while let Some(output) = subscription.next().await {
            let message = match output {
                TerminalOutput::Chunk(bytes) => ServerMessage::TerminalOutput {
                    id,
                    data: STANDARD.encode(bytes),
                },
                TerminalOutput::Resync(snapshot) => snapshot_message(id, &snapshot),
                TerminalOutput::Exited(code) => {
                    let _ = out
                        .send(ServerMessage::TerminalExited {
                            id,
                            code: Some(code),
                        })
                        .await;
                    return;
                }
            };
            if out.send(message).await.is_err() {
                return;
            }
        }
    });
}

fn snapshot_message(id: u32, snapshot: &Snapshot) -> ServerMessage {
    ServerMessage::TerminalSnapshot {
        id,
        cols: snapshot.size.cols,
        rows: snapshot.size.rows,
        data: STANDARD.encode(&snapshot.bytes),
    }
}
