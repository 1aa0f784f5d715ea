//! The session's room: one task that owns everything participants share (presence, open
//! documents, the file tree, terminals) and handles every message in the order it arrives. One
//! owner and one queue make "in server-arrival order" true by construction, with no locks.
//!
//! Connections talk to the room through a [`Room`] handle; the room talks back through each
//! connection's bounded outbox. A connection whose outbox is full is too slow to keep up with
//! the edits and is disconnected; it reconnects and resynchronizes, rather than stalling
//! everyone else.

pub mod docs;
pub mod presence;

use huddle_protocol::messages::{
    ClientMessage, EntryKind as WireKind, ErrorCode, FileChange, PROTOCOL_VERSION, Participant,
    ServerMessage, TreeEntry,
};
use huddle_protocol::token::{Claims, TokenKey};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::files::{Content, Entry, EntryKind, FileError, FileEvent, Workspace};
use crate::ot::{ClientId, DocError, Outcome, TextOperation};
use crate::snapshot::{DocumentState, TerminalState};
use crate::terminal::{TerminalConfig, TerminalError, TerminalSize, Terminals};
use crate::voice::{self, Voice, VoiceConfig};
use docs::OpenDoc;
use presence::{ConnId, Joined, Presence};

/// Messages a connection may have queued before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 4096;
/// How often the room checks heartbeats, writes back documents and sends checksums.
const TICK: Duration = Duration::from_millis(100);
/// How often each open document's checksum is broadcast (when it changed).
const CHECKSUM_EVERY: Duration = Duration::from_secs(5);

/// The client id the room uses for edits that come from the disk.
const DISK_CLIENT: &str = "disk";
/// Longest file path a `viewport` message may name (Linux's PATH_MAX).
const MAX_VIEWPORT_PATH: usize = 4096;

/// Something for the room to do.
pub enum Command {
    Join {
        conn: ConnId,
        token: String,
        version: u32,
        client_id: String,
        outbox: mpsc::Sender<ServerMessage>,
        reply: oneshot::Sender<Result<Claims, (ErrorCode, String)>>,
    },
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    Left {
        conn: ConnId,
    },
    /// Save every open document to disk and hand over what a snapshot needs.
    Capture {
        reply: oneshot::Sender<Captured>,
    },
    /// Bring back a snapshot's documents and terminals; only into an untouched room.
    Restore {
        restored: crate::snapshot::Restored,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Tell everyone connected (a warning from the gateway).
    Broadcast {
        message: ServerMessage,
    },
    /// A frame from `conn` that could not be used; tell it why.
    Error {
        conn: ConnId,
        code: ErrorCode,
        message: String,
    },
}

/// The room's part of a snapshot: open documents at their revisions and terminal screens.
pub struct Captured {
    pub documents: Vec<DocumentState>,
    pub terminals: Vec<TerminalState>,
}

/// A handle to the room task.
#[derive(Clone)]
pub struct Room {
    commands: mpsc::Sender<Command>,
    pub session_id: Arc<str>,
    pub terminals: Terminals,
}

impl Room {
    /// Starts the room for `session_id` over `workspace`, and its voice task.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        session_id: &str,
        key: TokenKey,
        workspace: Workspace,
        file_events: mpsc::Receiver<FileEvent>,
        terminals: Terminals,
        terminal_template: TerminalConfig,
        restored: Vec<DocumentState>,
        voice: VoiceConfig,
    ) -> Self {
        let (commands, inbox) = mpsc::channel(1024);
        let (voice, voice_events) = Voice::start(voice);
        let docs = restored
            .iter()
            .map(|state| (state.path.clone(), OpenDoc::restored(state)))
            .collect();
        let state = State {
            session_id: session_id.to_owned(),
            key,
            workspace,
            terminals: terminals.clone(),
            terminal_template,
            presence: Presence::default(),
            outboxes: HashMap::new(),
            docs,
            last_checksums: Instant::now(),
            voice,
        };
        tokio::spawn(state.run(inbox, file_events, voice_events));
        Self {
            commands,
            session_id: session_id.into(),
            terminals,
        }
    }

    pub async fn send(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// Hands a restored snapshot's documents and terminals to a room nobody has used yet.
    pub async fn restore(&self, restored: crate::snapshot::Restored) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        if !self.send(Command::Restore { restored, reply }).await {
            return Err("the room is shutting down".into());
        }
        done.await
            .map_err(|_| "the room is shutting down".to_owned())?
    }

    /// Saves open documents and returns what a snapshot needs from the room.
    pub async fn capture(&self) -> Option<Captured> {
        let (reply, captured) = oneshot::channel();
        if !self.send(Command::Capture { reply }).await {
            return None;
        }
        captured.await.ok()
    }
}

struct State {
    session_id: String,
    key: TokenKey,
    workspace: Workspace,
    terminals: Terminals,
    terminal_template: TerminalConfig,
    presence: Presence,
    outboxes: HashMap<ConnId, mpsc::Sender<ServerMessage>>,
    docs: HashMap<String, OpenDoc>,
    last_checksums: Instant,
    /// The voice SFU's task; it reports back through the `voice_events` the room polls.
    voice: Voice,
}

impl State {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut file_events: mpsc::Receiver<FileEvent>,
        mut voice_events: mpsc::Receiver<voice::Event>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                Some(event) = file_events.recv() => self.file_event(event).await,
                Some(event) = voice_events.recv() => self.voice_event(event),
                _ = tick.tick() => self.tick().await,
            }
        }
        // Every handle dropped: the agent is shutting down. Save what is unsaved.
        self.write_back(true).await;
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Join {
                conn,
                token,
                version,
                client_id,
                outbox,
                reply,
            } => {
                let result = self.join(conn, &token, version, &client_id, outbox).await;
                let _ = reply.send(result);
            }
            Command::Message { conn, message } => {
                self.presence.seen(conn, Instant::now());
                if let Err((code, message)) = self.message(conn, message).await {
                    self.send(conn, ServerMessage::Error { code, message });
                }
            }
            Command::Left { conn } => self.leave(conn),
            Command::Restore { restored, reply } => {
                let _ = reply.send(self.restore(restored));
            }
            Command::Capture { reply } => {
                self.write_back(true).await;
                let _ = reply.send(self.capture());
            }
            Command::Broadcast { message } => self.broadcast(message),
            Command::Error {
                conn,
                code,
                message,
            } => {
                self.presence.seen(conn, Instant::now());
                self.send(conn, ServerMessage::Error { code, message });
            }
        }
    }

    async fn join(
        &mut self,
        conn: ConnId,
        token: &str,
        version: u32,
        client_id: &str,
        outbox: mpsc::Sender<ServerMessage>,
    ) -> Result<Claims, (ErrorCode, String)> {
        if version != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!("this agent speaks protocol version {PROTOCOL_VERSION}, not {version}"),
            ));
        }
        if client_id.is_empty() || client_id.len() > 128 || client_id == DISK_CLIENT {
            return Err((
                ErrorCode::Malformed,
                "client_id must be 1-128 characters".into(),
            ));
        }
        let claims = self
            .key
            .verify(token, &self.session_id, huddle_protocol::token::now_unix())
            .map_err(|error| (ErrorCode::Unauthorized, error.to_string()))?;
        let joined = self
            .presence
            .join(
                conn,
                &claims.uid,
                client_id,
                &claims.name,
                claims.role,
                Instant::now(),
            )
            .map_err(|message| (ErrorCode::RoomFull, message))?;
        self.outboxes.insert(conn, outbox);
        let tree = match self.workspace.list_tree().await {
            Ok(tree) => tree.entries.iter().map(wire_entry).collect(),
            Err(error) => {
                warn!(%error, "could not list the workspace");
                Vec::new()
            }
        };
        let you = match joined {
            Joined::NewParticipant(participant) => {
                info!(user = %participant.name, role = ?participant.role, "participant joined");
                self.broadcast_except(
                    conn,
                    ServerMessage::ParticipantJoined {
                        participant: participant.clone(),
                    },
                );
                participant
            }
            Joined::AnotherTab(participant) => participant,
        };
        let welcome = ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you,
            participants: self.presence.participants(),
            tree,
            terminals: self.terminals.ids(),
        };
        self.send(conn, welcome);
        Ok(claims)
    }

    fn leave(&mut self, conn: ConnId) {
        self.voice.left(conn);
        self.outboxes.remove(&conn);
        for doc in self.docs.values_mut() {
            doc.followers.remove(&conn);
        }
        if let Some(user_id) = self.presence.leave(conn) {
            for doc in self.docs.values_mut() {
                doc.cursors.remove(&user_id);
            }
            info!(%user_id, "participant left");
            self.broadcast(ServerMessage::ParticipantLeft { user_id });
        }
    }

    /// What the voice task reports: a message for one connection, or someone's new voice
    /// state, kept with their presence (late joiners see it in `welcome`) and sent to everyone.
    fn voice_event(&mut self, event: voice::Event) {
        match event {
            voice::Event::Send { conn, message } => self.send(conn, message),
            voice::Event::State { user_id, voice } => {
                self.presence.set_voice(&user_id, voice);
                self.broadcast(ServerMessage::VoiceState { user_id, voice });
            }
        }
    }

    fn who(&self, conn: ConnId) -> Result<(String, String, Participant), (ErrorCode, String)> {
        let connection = self
            .presence
            .connection(conn)
            .ok_or((ErrorCode::Unauthorized, "join first".to_owned()))?;
        let participant = self
            .presence
            .participant(&connection.user_id)
            .cloned()
            .ok_or((ErrorCode::Unauthorized, "join first".to_owned()))?;
        Ok((
            connection.user_id.clone(),
            connection.client_id.clone(),
            participant,
        ))
    }

    fn require_writer(participant: &Participant) -> Result<(), (ErrorCode, String)> {
        if participant.role.can_write() {
            Ok(())
        } else {
            Err((
                ErrorCode::Forbidden,
                "viewers cannot change the session".to_owned(),
            ))
        }
    }

    async fn message(
        &mut self,
        conn: ConnId,
        message: ClientMessage,
    ) -> Result<(), (ErrorCode, String)> {
        let (user_id, client_id, participant) = self.who(conn)?;
        match message {
            ClientMessage::Join { .. } => Err((ErrorCode::Malformed, "already joined".into())),
            ClientMessage::Heartbeat => Ok(()),
            ClientMessage::Open { file, since } => self.open(conn, &client_id, &file, since).await,
            ClientMessage::Close { file } => {
                if let Some(doc) = self.docs.get_mut(&file) {
                    doc.followers.remove(&conn);
                }
                Ok(())
            }
            ClientMessage::Op {
                file,
                base_rev,
                seq,
                op,
            } => {
                Self::require_writer(&participant)?;
                self.op(conn, &client_id, &file, base_rev, seq, op)
            }
            ClientMessage::Cursor { file, rev, ranges } => self.cursor(
                conn,
                &user_id,
                &client_id,
                &participant.color,
                &file,
                rev,
                &ranges,
            ),
            ClientMessage::Viewport { file, top_line } => {
                // Only relayed, never used as a path here; bounded so it cannot be used to
                // amplify traffic.
                if file.len() > MAX_VIEWPORT_PATH {
                    return Err((ErrorCode::Malformed, "viewport path too long".into()));
                }
                self.broadcast_except(
                    conn,
                    ServerMessage::Viewport {
                        user_id,
                        file,
                        top_line,
                    },
                );
                Ok(())
            }
            ClientMessage::CreateFile { path } => {
                Self::require_writer(&participant)?;
                self.workspace
                    .create_file(&path, "")
                    .await
                    .map_err(file_error)
            }
            ClientMessage::CreateDir { path } => {
                Self::require_writer(&participant)?;
                self.workspace.create_dir(&path).await.map_err(file_error)
            }
            ClientMessage::Delete { path } => {
                Self::require_writer(&participant)?;
                let allow_non_empty = participant.role.can_delete_non_empty();
                self.workspace
                    .delete(&path, allow_non_empty)
                    .await
                    .map_err(file_error)
            }
            ClientMessage::Rename { from, to } => {
                Self::require_writer(&participant)?;
                self.workspace.rename(&from, &to).await.map_err(file_error)
            }
            ClientMessage::TerminalOpen { cols, rows } => {
                Self::require_writer(&participant)?;
                let size = TerminalSize::new(rows, cols)
                    .map_err(|error| (ErrorCode::Malformed, error.to_string()))?;
                let config = TerminalConfig {
                    size,
                    ..self.terminal_template.clone()
                };
                let (id, _) = self
                    .terminals
                    .create(config)
                    .map_err(|error| (ErrorCode::Internal, error.to_string()))?;
                self.broadcast(ServerMessage::TerminalOpened { id, cols, rows });
                Ok(())
            }
            // Attaching streams output straight from the terminal to the connection, outside
            // the room (see `ws`); reaching here means the id is unknown.
            ClientMessage::TerminalAttach { id } => {
                Err((ErrorCode::NotFound, format!("no terminal {id}")))
            }
            ClientMessage::TerminalInput { id, data } => {
                Self::require_writer(&participant)?;
                self.terminals
                    .write(id, data.into_bytes())
                    .map_err(terminal_error)
            }
            ClientMessage::TerminalResize { id, cols, rows } => {
                Self::require_writer(&participant)?;
                self.terminals
                    .resize(id, rows, cols)
                    .map_err(terminal_error)
            }
            ClientMessage::TerminalClose { id } => {
                Self::require_writer(&participant)?;
                self.terminals.close(id).map_err(terminal_error)?;
                self.broadcast(ServerMessage::TerminalExited { id, code: None });
                Ok(())
            }
            // Anyone may be in voice, viewers included: talking is not editing.
            ClientMessage::VoiceJoin
            | ClientMessage::VoiceLeave
            | ClientMessage::VoiceOffer { .. }
            | ClientMessage::VoiceAnswer { .. }
            | ClientMessage::VoiceCandidate { .. }
            | ClientMessage::VoiceMute { .. } => self.voice.message(conn, &user_id, message),
        }
    }

    async fn open(
        &mut self,
        conn: ConnId,
        client_id: &str,
        file: &str,
        since: Option<u64>,
    ) -> Result<(), (ErrorCode, String)> {
        if !self.docs.contains_key(file) {
            let text = self.workspace.read_text(file).await.map_err(file_error)?;
            self.docs.insert(file.to_owned(), OpenDoc::new(text));
        }
        let Some(doc) = self.docs.get_mut(file) else {
            return Err((ErrorCode::Internal, "document vanished".into()));
        };
        doc.followers.insert(conn);
        let client = ClientId(client_id.to_owned());
        let mut answer = since
            .and_then(|since| doc.catch_up(file, &client, since))
            .unwrap_or_else(|| vec![doc.document_message(file, &client)]);
        if since.is_some() {
            // The end of a catch-up: the client may now resend what is still unacknowledged.
            answer.push(ServerMessage::Checksum {
                file: file.to_owned(),
                rev: doc.doc.rev(),
                checksum: doc.doc.checksum(),
            });
        }
        let rev = doc.doc.rev();
        let cursors: Vec<ServerMessage> = doc
            .cursors
            .iter()
            .filter_map(|(user_id, (cursor_rev, selection, color))| {
                let current = doc
                    .doc
                    .transform_selection(&ClientId(String::new()), *cursor_rev, selection)
                    .ok()?;
                Some(ServerMessage::Cursor {
                    file: file.to_owned(),
                    rev,
                    user_id: user_id.clone(),
                    color: color.clone(),
                    ranges: docs::selection_to_wire(doc.doc.text(), &current),
                })
            })
            .collect();
        for message in answer {
            self.send(conn, message);
        }
        for cursor in cursors {
            self.send(conn, cursor);
        }
        Ok(())
    }

    fn op(
        &mut self,
        conn: ConnId,
        client_id: &str,
        file: &str,
        base_rev: u64,
        seq: u64,
        op: serde_json::Value,
    ) -> Result<(), (ErrorCode, String)> {
        let op: TextOperation =
            serde_json::from_value(op).map_err(|error| (ErrorCode::BadOp, error.to_string()))?;
        let doc = self
            .docs
            .get_mut(file)
            .ok_or((ErrorCode::NotFound, format!("{file} is not open")))?;
        let client = ClientId(client_id.to_owned());
        match doc.doc.receive(&client, seq, base_rev, op) {
            Ok(Outcome::Applied {
                rev,
                op_transformed,
            }) => {
                doc.applied(Instant::now());
                self.broadcast_op(file, rev, client_id, seq, &op_transformed);
                Ok(())
            }
            Ok(Outcome::Duplicate { rev }) => {
                // Already applied (a resend after reconnect): acknowledge to the author only.
                debug!(%client_id, seq, "duplicate op");
                self.send(
                    conn,
                    ServerMessage::Op {
                        file: file.to_owned(),
                        rev,
                        client_id: client_id.to_owned(),
                        seq,
                        op: serde_json::Value::Array(Vec::new()),
                    },
                );
                Ok(())
            }
            Err(DocError::TooFarBehind { .. }) => {
                let document = doc.document_message(file, &client);
                self.send(conn, document);
                Err((
                    ErrorCode::Resync,
                    format!("{file}: too far behind; sent a fresh copy"),
                ))
            }
            Err(error) => Err((ErrorCode::BadOp, error.to_string())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cursor(
        &mut self,
        conn: ConnId,
        user_id: &str,
        client_id: &str,
        color: &str,
        file: &str,
        rev: u64,
        ranges: &[huddle_protocol::messages::Range],
    ) -> Result<(), (ErrorCode, String)> {
        let doc = self
            .docs
            .get_mut(file)
            .ok_or((ErrorCode::NotFound, format!("{file} is not open")))?;
        if rev > doc.doc.rev() || ranges.len() > 100 {
            return Err((
                ErrorCode::Malformed,
                "cursor revision or range count out of range".into(),
            ));
        }
        // Ranges are positions in the text as the client had it at `rev`; bring them up to now.
        let text_then = doc.text_at(rev).ok_or((
            ErrorCode::Resync,
            format!("{file}: revision {rev} is too old for a cursor"),
        ))?;
        let selection = docs::selection_from_wire(text_then, ranges).ok_or((
            ErrorCode::Malformed,
            "cursor outside the document".to_owned(),
        ))?;
        let current = doc
            .doc
            .transform_selection(&ClientId(client_id.to_owned()), rev, &selection)
            .map_err(|error| (ErrorCode::Resync, error.to_string()))?;
        let now_rev = doc.doc.rev();
        doc.cursors.insert(
            user_id.to_owned(),
            (now_rev, current.clone(), color.to_owned()),
        );
        let message = ServerMessage::Cursor {
            file: file.to_owned(),
            rev: now_rev,
            user_id: user_id.to_owned(),
            color: color.to_owned(),
            ranges: docs::selection_to_wire(doc.doc.text(), &current),
        };
        self.send_to_followers(file, message, Some(conn));
        Ok(())
    }

    async fn file_event(&mut self, event: FileEvent) {
        let change = match &event {
            FileEvent::Modified { path } => {
                self.disk_changed(path).await;
                FileChange::Modified { path: path.clone() }
            }
            FileEvent::Deleted { path } => {
                self.docs.remove(path);
                FileChange::Deleted { path: path.clone() }
            }
            FileEvent::Renamed { from, to } => {
                if let Some(doc) = self.docs.remove(from) {
                    self.docs.insert(to.clone(), doc);
                }
                FileChange::Renamed {
                    from: from.clone(),
                    to: to.clone(),
                }
            }
            FileEvent::Created { path, .. } => match self.workspace.entry(path).await {
                Ok(entry) => FileChange::Created {
                    entry: wire_entry(&entry),
                },
                Err(_) => return,
            },
        };
        self.broadcast(ServerMessage::FileChanged { change });
    }

    /// A watched file changed on disk. If it is open and the change is not our own write,
    /// the difference becomes an op from the "disk" client on top of the revision the disk last
    /// matched, transformed against edits made since like any other op: the terminal,
    /// `git checkout` and the editors end up agreeing, and unsaved edits are kept.
    async fn disk_changed(&mut self, path: &str) {
        let Some(doc) = self.docs.get(path) else {
            return;
        };
        let Ok(on_disk) = self.workspace.read_text(path).await else {
            return;
        };
        if on_disk == doc.on_disk {
            return;
        }
        let Some(doc) = self.docs.get_mut(path) else {
            return;
        };
        let disk = ClientId(DISK_CLIENT.to_owned());
        let seq = doc.doc.last_seq(&disk).map_or(1, |s| s + 1);
        let mut result = doc.doc.receive(
            &disk,
            seq,
            doc.disk_rev,
            docs::diff_op(&doc.on_disk, &on_disk),
        );
        if let Err(DocError::TooFarBehind { .. }) = result {
            // The disk's base left the history: take the disk as it is now.
            let current = doc.doc.text().to_string();
            result = doc
                .doc
                .receive(&disk, seq, doc.doc.rev(), docs::diff_op(&current, &on_disk));
        }
        doc.on_disk = on_disk;
        match result {
            Ok(Outcome::Applied {
                rev,
                op_transformed,
            }) => {
                doc.applied(Instant::now());
                doc.disk_rev = rev;
                self.broadcast_op(path, rev, DISK_CLIENT, seq, &op_transformed);
            }
            Ok(Outcome::Duplicate { .. }) => {}
            Err(error) => warn!(%path, %error, "could not apply a disk change"),
        }
    }

    fn restore(&mut self, restored: crate::snapshot::Restored) -> Result<(), String> {
        if !self.presence.is_empty() || !self.docs.is_empty() || !self.terminals.ids().is_empty() {
            return Err("the session is already in use; restore only into a fresh agent".into());
        }
        for terminal in &restored.terminals {
            let config = crate::app::restored_terminal(&self.terminal_template, terminal)
                .map_err(|error| error.to_string())?;
            self.terminals
                .create(config)
                .map_err(|error| error.to_string())?;
        }
        for state in &restored.documents {
            self.docs
                .insert(state.path.clone(), OpenDoc::restored(state));
        }
        info!(
            documents = restored.documents.len(),
            terminals = restored.terminals.len(),
            "restored a snapshot"
        );
        Ok(())
    }

    fn capture(&self) -> Captured {
        let documents = self
            .docs
            .iter()
            .map(|(path, doc)| DocumentState {
                path: path.clone(),
                rev: doc.doc.rev(),
                text: doc.doc.text().to_string(),
                clients: doc
                    .doc
                    .clients()
                    .map(|(client, seq, rev)| (client.0.clone(), seq, rev))
                    .collect(),
            })
            .collect();
        let terminals = self
            .terminals
            .list()
            .into_iter()
            .filter(|info| info.exit_code.is_none())
            .filter_map(|info| {
                let terminal = self.terminals.get(info.id)?;
                Some(TerminalState {
                    id: info.id,
                    cols: info.size.cols,
                    rows: info.size.rows,
                    scrollback: terminal.scrollback_text(),
                })
            })
            .collect();
        Captured {
            documents,
            terminals,
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        for conn in self.presence.zombies(now) {
            info!(conn, "evicting a connection silent for too long");
            self.leave(conn);
        }
        self.write_back(false).await;
        if now.saturating_duration_since(self.last_checksums) >= CHECKSUM_EVERY {
            self.last_checksums = now;
            self.checksums();
        }
    }

    fn checksums(&mut self) {
        let mut messages = Vec::new();
        for (file, doc) in &mut self.docs {
            if doc.checksummed_rev != doc.doc.rev() {
                doc.checksummed_rev = doc.doc.rev();
                let message = ServerMessage::Checksum {
                    file: file.clone(),
                    rev: doc.doc.rev(),
                    checksum: doc.doc.checksum(),
                };
                messages.extend(doc.followers.iter().map(|c| (*c, message.clone())));
            }
        }
        for (conn, message) in messages {
            self.send(conn, message);
        }
    }

    /// Writes documents whose debounce expired (or all dirty ones when `all`).
    async fn write_back(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<(String, String, u64)> = self
            .docs
            .iter()
            .filter(|(_, doc)| doc.is_dirty() && (all || doc.due_for_write(now)))
            .map(|(file, doc)| (file.clone(), doc.doc.text().to_string(), doc.doc.rev()))
            .collect();
        for (file, text, rev) in due {
            match self.workspace.write_text(&file, &text).await {
                Ok(()) => {
                    if let Some(doc) = self.docs.get_mut(&file) {
                        doc.written(text, rev);
                    }
                }
                Err(error) => warn!(%file, %error, "could not write a document back"),
            }
        }
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        let Some(outbox) = self.outboxes.get(&conn) else {
            return;
        };
        if outbox.try_send(message).is_err() {
            // Full (too slow) or closed: either way this connection is done; it will
            // reconnect and get fresh documents.
            warn!(conn, "connection cannot keep up; disconnecting it");
            self.leave(conn);
        }
    }

    /// Sends an applied op to everyone following `file`; its author takes it as the ack.
    fn broadcast_op(
        &mut self,
        file: &str,
        rev: u64,
        client_id: &str,
        seq: u64,
        op: &TextOperation,
    ) {
        let message = ServerMessage::Op {
            file: file.to_owned(),
            rev,
            client_id: client_id.to_owned(),
            seq,
            // A text operation is plain data; serializing it cannot fail.
            op: serde_json::to_value(op).unwrap_or_default(),
        };
        self.send_to_followers(file, message, None);
    }

    /// Sends `message` to everyone following `file`, except `except`.
    fn send_to_followers(&mut self, file: &str, message: ServerMessage, except: Option<ConnId>) {
        let Some(doc) = self.docs.get(file) else {
            return;
        };
        let followers: Vec<ConnId> = doc
            .followers
            .iter()
            .copied()
            .filter(|c| Some(*c) != except)
            .collect();
        for follower in followers {
            self.send(follower, message.clone());
        }
    }

    fn broadcast(&mut self, message: ServerMessage) {
        let conns: Vec<ConnId> = self.presence.connection_ids().collect();
        for conn in conns {
            self.send(conn, message.clone());
        }
    }

    fn broadcast_except(&mut self, except: ConnId, message: ServerMessage) {
        let conns: Vec<ConnId> = self
            .presence
            .connection_ids()
            .filter(|c| *c != except)
            .collect();
        for conn in conns {
            self.send(conn, message.clone());
        }
    }
}

fn terminal_error(error: TerminalError) -> (ErrorCode, String) {
    let code = match error {
        TerminalError::NotFound(_) => ErrorCode::NotFound,
        TerminalError::InvalidSize { .. } => ErrorCode::Malformed,
        TerminalError::InputBacklogged => ErrorCode::TooLarge,
        _ => ErrorCode::Internal,
    };
    (code, error.to_string())
}

fn file_error(error: FileError) -> (ErrorCode, String) {
    (file_error_code(&error), error.to_string())
}

/// The protocol's name for a file error.
pub fn file_error_code(error: &FileError) -> ErrorCode {
    match error {
        FileError::EmptyPath
        | FileError::AbsolutePath { .. }
        | FileError::ParentComponent { .. }
        | FileError::NulByte
        | FileError::PathTooLong { .. }
        | FileError::NameTooLong { .. }
        | FileError::SymlinkEscape { .. }
        | FileError::MoveIntoItself { .. } => ErrorCode::InvalidPath,
        FileError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
        FileError::NotFound { .. } => ErrorCode::NotFound,
        FileError::TooLarge { .. } => ErrorCode::TooLarge,
        FileError::DirectoryNotEmpty { .. }
        | FileError::NotADirectory { .. }
        | FileError::IsADirectory { .. }
        | FileError::NotAFile { .. }
        | FileError::NotText { .. } => ErrorCode::Forbidden,
        _ => ErrorCode::Internal,
    }
}

/// A tree entry as the protocol shows it. Symlinks are listed as files that cannot be
/// opened (their target is never followed).
pub fn wire_entry(entry: &Entry) -> TreeEntry {
    TreeEntry {
        path: entry.path.clone(),
        kind: match entry.kind {
            EntryKind::Dir => WireKind::Dir,
            EntryKind::File | EntryKind::Symlink => WireKind::File,
        },
        size: entry.size,
        binary: entry.kind == EntryKind::Symlink || entry.content != Content::Text,
    }
}
