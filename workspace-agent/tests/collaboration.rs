//! The agent as participants meet it: a real server on loopback, real WebSocket clients, a
//! real PTY running /bin/sh, a real temporary workspace on disk.

#[allow(dead_code)]
mod support;

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use futures::SinkExt as _;
use huddle_agent::app::{AppState, RestoreFrom, Settings};
use huddle_agent::ot::{AppliedOp, Client, ClientId, TextOperation};
use huddle_protocol::Role;
use huddle_protocol::messages::{
    ClientMessage, ErrorCode, FileChange, PROTOCOL_VERSION, Position, Range, ServerMessage,
};
use huddle_protocol::token::{Claims, TokenKey};
use std::net::SocketAddr;
use std::time::Duration;
use support::KEY;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SESSION: &str = "s1";
const WAIT: Duration = Duration::from_secs(10);

struct Agent {
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

async fn start_agent(files: &[(&str, &str)]) -> Result<Agent> {
    start_agent_restoring(files, None).await
}

async fn start_agent_restoring(
    files: &[(&str, &str)],
    restore: Option<RestoreFrom>,
) -> Result<Agent> {
    start_agent_keyed(files, TokenKey::new(KEY)?, restore).await
}

async fn start_agent_keyed(
    files: &[(&str, &str)],
    key: TokenKey,
    restore: Option<RestoreFrom>,
) -> Result<Agent> {
    let dir = tempfile::tempdir()?;
    for (path, text) in files {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    let state = AppState::start(Settings {
        session_id: SESSION.into(),
        workspace: dir.path().to_path_buf(),
        key,
        shell: Some("/bin/sh".into()),
        restore,
    })
    .await?;
    Ok(Agent {
        addr: support::serve(state).await?,
        dir,
    })
}

fn token(name: &str, role: Role) -> String {
    support::signed_token(SESSION, name, &format!("uid-{name}"), role)
}

/// One participant's WebSocket.
struct Peer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    client_id: String,
}

impl Peer {
    async fn connect(agent: &Agent) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", agent.addr)).await?;
        Ok(Self {
            ws,
            client_id: String::new(),
        })
    }

    /// Connects and joins; returns the peer and the welcome.
    async fn join(agent: &Agent, name: &str, role: Role) -> Result<(Self, ServerMessage)> {
        let mut peer = Self::connect(agent).await?;
        peer.client_id = format!("tab-{name}");
        let join = ClientMessage::Join {
            version: PROTOCOL_VERSION,
            token: token(name, role),
            client_id: peer.client_id.clone(),
        };
        peer.send(&join).await?;
        let welcome = peer.recv().await?;
        ensure!(
            matches!(welcome, ServerMessage::Welcome { .. }),
            "expected welcome, got {welcome:?}"
        );
        Ok((peer, welcome))
    }

    async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.send_raw(&serde_json::to_string(message)?).await
    }

    async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<ServerMessage> {
        support::next_server_message(&mut self.ws, WAIT).await
    }

    /// Reads messages until `pick` returns something, skipping the rest.
    async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            let message = self
                .recv()
                .await
                .with_context(|| format!("waiting for {what}"))?;
            if let Some(value) = pick(&message) {
                return Ok(value);
            }
        }
    }

    async fn error(&mut self) -> Result<(ErrorCode, String)> {
        self.until("an error", |m| match m {
            ServerMessage::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
    }

    async fn open(&mut self, file: &str) -> Result<(u64, String)> {
        self.send(&ClientMessage::Open {
            file: file.into(),
            since: None,
        })
        .await?;
        self.until("the document", |m| match m {
            ServerMessage::Document {
                file: f, rev, text, ..
            } if f == file => Some((*rev, text.clone())),
            _ => None,
        })
        .await
    }

    /// Opens a terminal and returns its id once the agent announces it.
    async fn open_terminal(&mut self, cols: u16, rows: u16) -> Result<u32> {
        self.send(&ClientMessage::TerminalOpen { cols, rows })
            .await?;
        self.until("a terminal", |m| match m {
            ServerMessage::TerminalOpened { id, .. } => Some(*id),
            _ => None,
        })
        .await
    }

    /// The next terminal snapshot: size and decoded text.
    async fn terminal_snapshot(&mut self) -> Result<(u16, u16, String)> {
        let (cols, rows, data) = self
            .until("a terminal snapshot", |m| match m {
                ServerMessage::TerminalSnapshot {
                    cols, rows, data, ..
                } => Some((*cols, *rows, data.clone())),
                _ => None,
            })
            .await?;
        let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data)?)?;
        Ok((cols, rows, text))
    }

    /// Reads the terminal's output (snapshots and chunks) until it contains `needle`.
    async fn terminal_until(&mut self, id: u32, screen: &mut String, needle: &str) -> Result<()> {
        while !screen.contains(needle) {
            let message = self
                .recv()
                .await
                .with_context(|| format!("waiting for {needle:?} in terminal"))?;
            match message {
                ServerMessage::TerminalOutput { id: i, data } if i == id => {
                    screen.push_str(&String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD.decode(data)?,
                    ));
                }
                ServerMessage::TerminalSnapshot { id: i, data, .. } if i == id => {
                    *screen = String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD.decode(data)?,
                    )
                    .into_owned();
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn health_and_banner() -> Result<()> {
    let agent = start_agent(&[]).await?;
    let health = reqwest::get(format!("http://{}/healthz", agent.addr)).await?;
    assert_eq!(health.text().await?, "ok");
    let banner = reqwest::get(format!("http://{}/version", agent.addr))
        .await?
        .text()
        .await?;
    assert!(banner.starts_with("huddle-agent "));
    Ok(())
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_are_refused() -> Result<()> {
    let agent = start_agent(&[]).await?;
    let forged = TokenKey::new([1u8; 32])?.sign(&Claims {
        sid: SESSION.into(),
        name: "mallory".into(),
        role: Role::Owner,
        exp: u64::MAX,
        uid: "m".into(),
    });
    let expired = TokenKey::new(KEY)?.sign(&Claims {
        sid: SESSION.into(),
        name: "late".into(),
        role: Role::Owner,
        exp: 1,
        uid: "l".into(),
    });
    for (token, expected) in [
        (forged, "signature"),
        (expired, "expired"),
        ("garbage".to_owned(), "malformed"),
    ] {
        let mut peer = Peer::connect(&agent).await?;
        peer.send(&ClientMessage::Join {
            version: PROTOCOL_VERSION,
            token,
            client_id: "c".into(),
        })
        .await?;
        let (code, message) = peer.error().await?;
        assert_eq!(code, ErrorCode::Unauthorized);
        assert!(message.contains(expected), "{message}");
    }
    // A message before join is refused too.
    let mut peer = Peer::connect(&agent).await?;
    peer.send(&ClientMessage::Open {
        file: "a".into(),
        since: None,
    })
    .await?;
    assert_eq!(peer.error().await?.0, ErrorCode::Unauthorized);
    // And a version we do not speak.
    let mut peer = Peer::connect(&agent).await?;
    peer.send(&ClientMessage::Join {
        version: 99,
        token: token("x", Role::Editor),
        client_id: "c".into(),
    })
    .await?;
    assert_eq!(peer.error().await?.0, ErrorCode::UnsupportedVersion);
    Ok(())
}

#[tokio::test]
async fn presence_colours_late_joiners_and_the_eleventh_person() -> Result<()> {
    let agent = start_agent(&[]).await?;
    let (mut first, _) = Peer::join(&agent, "p0", Role::Owner).await?;
    let mut peers = Vec::new();
    for i in 1..10 {
        let (peer, welcome) = Peer::join(&agent, &format!("p{i}"), Role::Editor).await?;
        let ServerMessage::Welcome { participants, .. } = welcome else {
            bail!("no welcome")
        };
        assert_eq!(
            participants.len(),
            i + 1,
            "late joiner sees everyone already here"
        );
        peers.push(peer);
    }
    let joined = first
        .until("p9 joining", |m| match m {
            ServerMessage::ParticipantJoined { participant } if participant.name == "p9" => {
                Some(participant.clone())
            }
            _ => None,
        })
        .await?;
    assert_eq!(joined.role, Role::Editor);
    let (_, welcome) = Peer::join(&agent, "p1", Role::Editor).await?; // a second tab is fine
    let ServerMessage::Welcome { participants, .. } = welcome else {
        bail!("no welcome")
    };
    let colours: std::collections::HashSet<_> =
        participants.iter().map(|p| p.color.clone()).collect();
    assert_eq!(colours.len(), 10, "ten people, ten colours");

    let mut eleventh = Peer::connect(&agent).await?;
    eleventh
        .send(&ClientMessage::Join {
            version: PROTOCOL_VERSION,
            token: token("p10", Role::Editor),
            client_id: "c".into(),
        })
        .await?;
    let (code, message) = eleventh.error().await?;
    assert_eq!(code, ErrorCode::RoomFull);
    assert!(message.contains("at most 10"), "{message}");

    drop(peers.pop());
    let left = first
        .until("p9 leaving", |m| match m {
            ServerMessage::ParticipantLeft { user_id } => Some(user_id.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(left, "uid-p9");
    Ok(())
}

#[tokio::test]
async fn malformed_messages_get_an_error_and_change_nothing() -> Result<()> {
    let agent = start_agent(&[("a.txt", "abc")]).await?;
    let (mut peer, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    let (rev, _) = peer.open("a.txt").await?;
    for bad in [
        "not json",
        r#"{"type":"launch_missiles"}"#,
        r#"{"type":"op","file":"a.txt","base_rev":0,"seq":1}"#,
        r#"{"type":"op","file":"a.txt","base_rev":0,"seq":1,"op":[99,"x"]}"#,
        r#"{"type":"op","file":"a.txt","base_rev":7,"seq":1,"op":[3,"x"]}"#,
        r#"{"type":"op","file":"a.txt","base_rev":0,"seq":1,"op":"nonsense"}"#,
    ] {
        peer.send_raw(bad).await?;
        let (code, _) = peer.error().await?;
        assert!(
            matches!(code, ErrorCode::Malformed | ErrorCode::BadOp),
            "{bad}: {code:?}"
        );
    }
    let oversized = format!(
        r#"{{"type":"open","file":"{}"}}"#,
        "x".repeat(huddle_protocol::messages::MAX_MESSAGE_BYTES)
    );
    peer.send_raw(&oversized).await?;
    assert_eq!(peer.error().await?.0, ErrorCode::TooLarge);
    // Still connected, and the document is untouched.
    assert_eq!(peer.open("a.txt").await?, (rev, "abc".to_owned()));
    assert_eq!(
        std::fs::read_to_string(agent.dir.path().join("a.txt"))?,
        "abc"
    );
    Ok(())
}

/// Drives one participant's OT client over the socket.
struct Editor {
    peer: Peer,
    client: Client,
    file: String,
}

impl Editor {
    async fn open(agent: &Agent, name: &str, file: &str) -> Result<Self> {
        let (mut peer, _) = Peer::join(agent, name, Role::Editor).await?;
        let (rev, text) = peer.open(file).await?;
        let client = Client::new(ClientId(peer.client_id.clone()), rev, &text);
        Ok(Self {
            peer,
            client,
            file: file.into(),
        })
    }

    async fn submit(&mut self, submission: Option<huddle_agent::ot::Submission>) -> Result<()> {
        if let Some(sub) = submission {
            self.peer
                .send(&ClientMessage::Op {
                    file: self.file.clone(),
                    base_rev: sub.base_rev,
                    seq: sub.seq,
                    op: serde_json::to_value(&sub.op)?,
                })
                .await?;
        }
        Ok(())
    }

    async fn type_at(&mut self, at: usize, text: &str) -> Result<()> {
        let len = self.client.text().len_chars();
        let op = TextOperation::from_components([
            huddle_agent::ot::Component::Retain(at.min(len)),
            huddle_agent::ot::Component::Insert(text.into()),
            huddle_agent::ot::Component::Retain(len - at.min(len)),
        ])?;
        let submission = self.client.apply_local(op)?;
        self.submit(submission).await
    }

    /// Handles one incoming message; returns false when nothing arrived in `idle`.
    async fn pump(&mut self, idle: Duration) -> Result<bool> {
        let Ok(frame) = tokio::time::timeout(idle, self.peer.recv()).await else {
            return Ok(false);
        };
        if let ServerMessage::Op {
            rev,
            client_id,
            seq,
            op,
            ..
        } = frame?
        {
            let applied = AppliedOp {
                rev,
                client_id: ClientId(client_id),
                seq,
                op: serde_json::from_value(op)?,
            };
            let next = self.client.apply_server(&applied)?;
            self.submit(next).await?;
        }
        Ok(true)
    }

    fn synchronized(&self) -> bool {
        matches!(self.client.state(), huddle_agent::ot::State::Synchronized)
    }
}

#[tokio::test]
async fn two_users_typing_into_one_file_converge_and_it_reaches_the_disk() -> Result<()> {
    let agent = start_agent(&[("notes.md", "hello\n")]).await?;
    let mut ada = Editor::open(&agent, "ada", "notes.md").await?;
    let mut bob = Editor::open(&agent, "bob", "notes.md").await?;
    for i in 0..40 {
        ada.type_at(0, &format!("a{i}é")).await?;
        bob.type_at(usize::MAX, &format!("b{i}😀")).await?;
        // Let some messages through, not all: ops cross in flight.
        ada.pump(Duration::from_millis(1)).await?;
        bob.pump(Duration::from_millis(1)).await?;
    }
    for _ in 0..2000 {
        let a = ada.pump(Duration::from_millis(50)).await?;
        let b = bob.pump(Duration::from_millis(50)).await?;
        if !a && !b && ada.synchronized() && bob.synchronized() {
            break;
        }
    }
    assert!(
        ada.synchronized() && bob.synchronized(),
        "edits left unacknowledged"
    );
    let text = ada.client.text().to_string();
    assert_eq!(
        text,
        bob.client.text().to_string(),
        "the two users diverged"
    );
    for i in 0..40 {
        assert!(
            text.contains(&format!("a{i}é")) && text.contains(&format!("b{i}😀")),
            "lost edit {i} in {text:?}"
        );
    }
    // A third user opening now gets the same text; and the file on disk follows (debounced).
    let (_, fresh) = Peer::join(&agent, "cy", Role::Viewer)
        .await?
        .0
        .open("notes.md")
        .await?;
    assert_eq!(fresh, text);
    let path = agent.dir.path().join("notes.md");
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_to_string(&path)? != text {
        ensure!(
            std::time::Instant::now() < deadline,
            "edits never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn cursors_arrive_with_colour_and_stay_put_while_others_type() -> Result<()> {
    let agent = start_agent(&[("a.txt", "line one\nline two\n")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    let (mut bob, _) = Peer::join(&agent, "bob", Role::Editor).await?;
    ada.open("a.txt").await?;
    bob.open("a.txt").await?;
    // Ada types at the start of line 2 (revision 0 -> 1)...
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!([9, "NEW ", 9]),
    })
    .await?;
    // ...while Bob, still at revision 0, puts his cursor on "two".
    let at = |line, column| Position { line, column };
    bob.send(&ClientMessage::Cursor {
        file: "a.txt".into(),
        rev: 0,
        ranges: vec![Range {
            anchor: at(1, 5),
            head: at(1, 8),
        }],
    })
    .await?;
    let (color, ranges) = ada
        .until("bob's cursor", |m| match m {
            ServerMessage::Cursor {
                user_id,
                color,
                ranges,
                ..
            } if user_id == "uid-bob" => Some((color.clone(), ranges.clone())),
            _ => None,
        })
        .await?;
    assert!(color.starts_with('#'));
    // Transformed through Ada's insert: still on "two", now four columns further right.
    assert_eq!(
        ranges,
        vec![Range {
            anchor: at(1, 9),
            head: at(1, 12)
        }]
    );
    // A cursor outside the document is refused.
    bob.send(&ClientMessage::Cursor {
        file: "a.txt".into(),
        rev: 1,
        ranges: vec![Range {
            anchor: at(40, 0),
            head: at(40, 0),
        }],
    })
    .await?;
    assert_eq!(bob.error().await?.0, ErrorCode::Malformed);
    Ok(())
}

#[tokio::test]
async fn a_viewer_can_read_but_not_edit_type_or_change_files() -> Result<()> {
    let agent = start_agent(&[("a.txt", "abc")]).await?;
    let (mut owner, _) = Peer::join(&agent, "own", Role::Owner).await?;
    let id = owner.open_terminal(80, 24).await?;
    let (mut viewer, _) = Peer::join(&agent, "vic", Role::Viewer).await?;
    let (rev, text) = viewer.open("a.txt").await?;
    assert_eq!(text, "abc");
    let refused = [
        ClientMessage::Op {
            file: "a.txt".into(),
            base_rev: rev,
            seq: 1,
            op: serde_json::json!([3, "!"]),
        },
        ClientMessage::TerminalInput {
            id,
            data: "touch pwned\n".into(),
        },
        ClientMessage::TerminalResize {
            id,
            cols: 10,
            rows: 10,
        },
        ClientMessage::TerminalOpen { cols: 80, rows: 24 },
        ClientMessage::CreateFile {
            path: "new.txt".into(),
        },
        ClientMessage::Delete {
            path: "a.txt".into(),
        },
        ClientMessage::Rename {
            from: "a.txt".into(),
            to: "b.txt".into(),
        },
    ];
    for message in refused {
        viewer.send(&message).await?;
        let (code, _) = viewer.error().await?;
        assert_eq!(code, ErrorCode::Forbidden, "{message:?}");
    }
    // The viewer can still watch the terminal.
    viewer.send(&ClientMessage::TerminalAttach { id }).await?;
    let mut screen = String::new();
    owner.send(&ClientMessage::TerminalAttach { id }).await?;
    owner
        .send(&ClientMessage::TerminalInput {
            id,
            data: "echo visible-to-all\n".into(),
        })
        .await?;
    viewer
        .terminal_until(id, &mut screen, "visible-to-all")
        .await?;
    // Nothing changed on disk.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::read_to_string(agent.dir.path().join("a.txt"))?,
        "abc"
    );
    assert!(!agent.dir.path().join("pwned").exists() && !agent.dir.path().join("new.txt").exists());
    // Upload is refused for a viewer, download allowed.
    let http = reqwest::Client::new();
    let url = format!("http://{}/files/a.txt", agent.addr);
    let upload = http
        .put(&url)
        .bearer_auth(token("vic", Role::Viewer))
        .body("x")
        .send()
        .await?;
    assert_eq!(upload.status(), 403);
    let download = http
        .get(format!("{url}?token={}", token("vic", Role::Viewer)))
        .send()
        .await?;
    assert_eq!(download.bytes().await?.as_ref(), b"abc");
    let anonymous = http.get(&url).send().await?;
    assert_eq!(anonymous.status(), 401);
    Ok(())
}

#[tokio::test]
async fn the_terminal_echoes_in_order_and_a_late_joiner_sees_the_screen() -> Result<()> {
    let agent = start_agent(&[]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    let id = ada.open_terminal(100, 30).await?;
    ada.send(&ClientMessage::TerminalAttach { id }).await?;
    let mut screen = String::new();
    ada.send(&ClientMessage::TerminalInput {
        id,
        data: "stty -echo\n".into(),
    })
    .await?;
    ada.send(&ClientMessage::TerminalInput {
        id,
        data: "echo ready\n".into(),
    })
    .await?;
    ada.terminal_until(id, &mut screen, "ready").await?;
    for i in 0..100 {
        ada.send(&ClientMessage::TerminalInput {
            id,
            data: format!("echo n-{i}\n"),
        })
        .await?;
    }
    ada.terminal_until(id, &mut screen, "n-99").await?;
    let mut last = 0;
    for i in 0..100 {
        let at = screen[last..]
            .find(&format!("n-{i}\r\n"))
            .with_context(|| format!("n-{i} missing or out of order"))?;
        last += at;
    }
    // A late joiner gets the current screen as a snapshot, at the terminal's size.
    let (mut bob, welcome) = Peer::join(&agent, "bob", Role::Viewer).await?;
    let ServerMessage::Welcome { terminals, .. } = welcome else {
        bail!("no welcome")
    };
    assert_eq!(terminals, vec![id]);
    bob.send(&ClientMessage::TerminalAttach { id }).await?;
    let (cols, rows, snapshot) = bob.terminal_snapshot().await?;
    assert_eq!((cols, rows), (100, 30));
    assert!(
        snapshot.contains("n-99") && snapshot.contains("n-50"),
        "snapshot lacks recent output"
    );
    Ok(())
}

#[tokio::test]
async fn paths_cannot_leave_the_workspace() -> Result<()> {
    let agent = start_agent(&[("a.txt", "abc")]).await?;
    let (mut owner, _) = Peer::join(&agent, "own", Role::Owner).await?;
    let attempts = [
        ClientMessage::Open {
            file: "../../etc/passwd".into(),
            since: None,
        },
        ClientMessage::Open {
            file: "/etc/passwd".into(),
            since: None,
        },
        ClientMessage::CreateFile {
            path: "../escape.txt".into(),
        },
        ClientMessage::CreateDir {
            path: "a/../../x".into(),
        },
        ClientMessage::Rename {
            from: "a.txt".into(),
            to: "/tmp/stolen.txt".into(),
        },
        ClientMessage::Delete { path: "..".into() },
    ];
    for attempt in attempts {
        owner.send(&attempt).await?;
        let (code, message) = owner.error().await?;
        assert_eq!(code, ErrorCode::InvalidPath, "{attempt:?}: {message}");
    }
    let http = reqwest::Client::new();
    let traversal = http
        .get(format!(
            "http://{}/files/..%2F..%2Fetc%2Fpasswd",
            agent.addr
        ))
        .bearer_auth(token("own", Role::Owner))
        .send()
        .await?;
    assert!(
        traversal.status().is_client_error(),
        "{}",
        traversal.status()
    );
    assert!(agent.dir.path().join("a.txt").exists());
    assert!(
        !agent
            .dir
            .path()
            .parent()
            .context("no parent")?
            .join("escape.txt")
            .exists()
    );
    Ok(())
}

#[tokio::test]
async fn files_made_in_the_terminal_appear_in_the_tree_and_disk_edits_become_ops() -> Result<()> {
    let agent = start_agent(&[("code.py", "print('hi')\n")]).await?;
    let (mut ada, welcome) = Peer::join(&agent, "ada", Role::Owner).await?;
    let ServerMessage::Welcome { tree, .. } = welcome else {
        bail!("no welcome")
    };
    assert!(tree.iter().any(|e| e.path == "code.py" && !e.binary));
    let (rev, _) = ada.open("code.py").await?;
    let id = ada.open_terminal(80, 24).await?;
    ada.send(&ClientMessage::TerminalInput {
        id,
        data: "mkdir src && printf 'x' > src/new.txt && printf '\\000\\001' > blob.bin\n".into(),
    })
    .await?;
    let mut created = Vec::new();
    while !(created
        .iter()
        .any(|(p, _): &(String, bool)| p == "src/new.txt")
        && created.iter().any(|(p, _)| p == "blob.bin"))
    {
        let entry = ada
            .until("created files", |m| match m {
                ServerMessage::FileChanged {
                    change: FileChange::Created { entry },
                } => Some((entry.path.clone(), entry.binary)),
                _ => None,
            })
            .await?;
        created.push(entry);
    }
    assert!(
        created.contains(&("blob.bin".into(), true)),
        "binary not marked: {created:?}"
    );
    // A binary is not opened for editing.
    ada.send(&ClientMessage::Open {
        file: "blob.bin".into(),
        since: None,
    })
    .await?;
    assert_eq!(ada.error().await?.0, ErrorCode::Forbidden);
    // Changing the open file on disk becomes an op from the disk for everyone following it.
    ada.send(&ClientMessage::TerminalInput {
        id,
        data: "printf \"print('bye')\\n\" > code.py\n".into(),
    })
    .await?;
    let (new_rev, client_id) = ada
        .until("the disk's op", |m| match m {
            ServerMessage::Op { rev, client_id, .. } => Some((*rev, client_id.clone())),
            _ => None,
        })
        .await?;
    assert_eq!((new_rev, client_id.as_str()), (rev + 1, "disk"));
    assert_eq!(ada.open("code.py").await?.1, "print('bye')\n");
    Ok(())
}

/// Every file under `root` (relative path → bytes, mode, or symlink target), to compare trees.
fn tree(root: &std::path::Path) -> Result<std::collections::BTreeMap<String, (Vec<u8>, u32)>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                out.insert(
                    relative,
                    (
                        std::fs::read_link(&path)?
                            .to_string_lossy()
                            .as_bytes()
                            .to_vec(),
                        0,
                    ),
                );
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    relative,
                    (std::fs::read(&path)?, meta.permissions().mode() & 0o777),
                );
            }
        }
    }
    Ok(out)
}

#[tokio::test]
async fn a_snapshot_restores_files_documents_and_terminals_and_resends_stay_exactly_once()
-> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let a = start_agent(&[
        ("a.txt", "one\n"),
        ("src/main.rs", "fn main() {}\n"),
        (".git/HEAD", "ref: refs/heads/main\n"),
    ])
    .await?;
    std::fs::write(a.dir.path().join("blob.bin"), [0u8, 159, 146, 150, 255])?;
    std::fs::write(a.dir.path().join("run.sh"), "#!/bin/sh\necho hi\n")?;
    std::fs::set_permissions(
        a.dir.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::os::unix::fs::symlink("src/main.rs", a.dir.path().join("link.rs"))?;

    let (mut ada, _) = Peer::join(&a, "ada", Role::Owner).await?;
    ada.open("a.txt").await?;
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!([4, "two\n"]),
    })
    .await?;
    // Op 2 is sent and its acknowledgement "lost": the session goes to sleep right after.
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 1,
        seq: 2,
        op: serde_json::json!([8, "three\n"]),
    })
    .await?;
    let id = ada.open_terminal(90, 20).await?;
    ada.send(&ClientMessage::TerminalAttach { id }).await?;
    ada.send(&ClientMessage::TerminalInput {
        id,
        data: "echo before-sleep\n".into(),
    })
    .await?;
    let mut screen = String::new();
    ada.terminal_until(id, &mut screen, "before-sleep\r\n")
        .await?;

    let http = reqwest::Client::new();
    let url = format!("http://{}/internal/snapshot", a.addr);
    assert_eq!(http.get(&url).send().await?.status(), 401);
    assert_eq!(
        http.get(&url)
            .bearer_auth(token("vic", Role::Viewer))
            .send()
            .await?
            .status(),
        403
    );
    let archive = http
        .get(&url)
        .bearer_auth(token("ada", Role::Owner))
        .send()
        .await?;
    assert_eq!(archive.status(), 200);
    let archive = archive.bytes().await?;
    let file = a
        .dir
        .path()
        .parent()
        .context("no parent")?
        .join(format!("snapshot-{}.tar", std::process::id()));
    std::fs::write(&file, &archive)?;

    let b = start_agent_restoring(&[], Some(RestoreFrom::File(file.clone()))).await?;
    std::fs::remove_file(&file)?;
    // Files come back byte for byte, with modes and links.
    assert_eq!(tree(b.dir.path())?, tree(a.dir.path())?);
    assert_eq!(
        std::fs::read_to_string(b.dir.path().join("a.txt"))?,
        "one\ntwo\nthree\n"
    );

    // The document continues at its revision; the client learns op 2 was applied, and a resend
    // of it is acknowledged without being applied twice.
    let (mut back, welcome) = Peer::join(&b, "ada", Role::Owner).await?;
    let ServerMessage::Welcome { terminals, .. } = welcome else {
        bail!("no welcome")
    };
    back.send(&ClientMessage::Open {
        file: "a.txt".into(),
        since: None,
    })
    .await?;
    let (rev, text, last_seq) = back
        .until("document", |m| match m {
            ServerMessage::Document {
                rev,
                text,
                last_seq,
                ..
            } => Some((*rev, text.clone(), *last_seq)),
            _ => None,
        })
        .await?;
    assert_eq!(
        (rev, text.as_str(), last_seq),
        (2, "one\ntwo\nthree\n", Some(2))
    );
    back.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 1,
        seq: 2,
        op: serde_json::json!([8, "three\n"]),
    })
    .await?;
    let ack = back
        .until("ack", |m| match m {
            ServerMessage::Op { seq, rev, .. } => Some((*seq, *rev)),
            _ => None,
        })
        .await?;
    assert_eq!(ack, (2, 2));
    assert_eq!(
        back.open("a.txt").await?,
        (2, "one\ntwo\nthree\n".to_owned())
    );

    // The terminal shows what it showed before the session slept.
    assert_eq!(terminals.len(), 1);
    back.send(&ClientMessage::TerminalAttach { id: terminals[0] })
        .await?;
    let (cols, rows, shown) = back.terminal_snapshot().await?;
    assert_eq!((cols, rows), (90, 20));
    assert!(
        shown.contains("before-sleep") && shown.contains("session restored"),
        "{shown:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_reconnecting_client_learns_its_op_landed_and_its_resend_is_not_applied_twice()
-> Result<()> {
    let agent = start_agent(&[("a.txt", "x")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    ada.open("a.txt").await?;
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!([1, "y"]),
    })
    .await?;
    // The connection dies before the acknowledgement is read.
    drop(ada);
    let (mut again, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    again
        .send(&ClientMessage::Open {
            file: "a.txt".into(),
            since: None,
        })
        .await?;
    let (rev, last_seq) = again
        .until("document", |m| match m {
            ServerMessage::Document { rev, last_seq, .. } => Some((*rev, *last_seq)),
            _ => None,
        })
        .await?;
    assert_eq!((rev, last_seq), (1, Some(1)));
    // A client that resends anyway is acknowledged, and nothing is applied twice.
    again
        .send(&ClientMessage::Op {
            file: "a.txt".into(),
            base_rev: 0,
            seq: 1,
            op: serde_json::json!([1, "y"]),
        })
        .await?;
    let ack = again
        .until("ack", |m| match m {
            ServerMessage::Op { seq, .. } => Some(*seq),
            _ => None,
        })
        .await?;
    assert_eq!(ack, 1);
    assert_eq!(again.open("a.txt").await?, (1, "xy".to_owned()));
    Ok(())
}

#[tokio::test]
async fn only_the_owner_deletes_a_non_empty_folder_and_terminals_are_independent() -> Result<()> {
    let agent = start_agent(&[("dir/file.txt", "keep me")]).await?;
    let (mut editor, _) = Peer::join(&agent, "ed", Role::Editor).await?;
    editor
        .send(&ClientMessage::Delete { path: "dir".into() })
        .await?;
    assert_eq!(editor.error().await?.0, ErrorCode::Forbidden);
    assert!(agent.dir.path().join("dir/file.txt").exists());
    let (mut owner, _) = Peer::join(&agent, "own", Role::Owner).await?;
    owner
        .send(&ClientMessage::Delete { path: "dir".into() })
        .await?;
    let deleted = owner
        .until("deletion", |m| match m {
            ServerMessage::FileChanged {
                change: FileChange::Deleted { path },
            } => Some(path.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(deleted, "dir");
    assert!(!agent.dir.path().join("dir").exists());

    // Two terminals, each with its own shell.
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(owner.open_terminal(80, 24).await?);
    }
    assert_ne!(ids[0], ids[1]);
    for (n, id) in ids.iter().enumerate() {
        owner
            .send(&ClientMessage::TerminalAttach { id: *id })
            .await?;
        owner
            .send(&ClientMessage::TerminalInput {
                id: *id,
                data: format!("cd /tmp && echo term-{n}-$PWD\n"),
            })
            .await?;
    }
    let mut screen = String::new();
    owner
        .terminal_until(ids[1], &mut screen, "term-1-/tmp")
        .await?;
    Ok(())
}

#[tokio::test]
async fn followers_get_a_periodic_checksum_of_the_text() -> Result<()> {
    let agent = start_agent(&[("a.txt", "abc")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    ada.open("a.txt").await?;
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!([3, "déf"]),
    })
    .await?;
    let (rev, checksum) = ada
        .until("a checksum", |m| match m {
            ServerMessage::Checksum { rev, checksum, .. } => Some((*rev, *checksum)),
            _ => None,
        })
        .await?;
    assert_eq!(rev, 1);
    assert_eq!(checksum, huddle_agent::ot::checksum::checksum_str("abcdéf"));
    Ok(())
}

#[tokio::test]
async fn a_client_too_far_behind_gets_a_fresh_copy() -> Result<()> {
    let agent = start_agent(&[("a.txt", "")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    let (mut bob, _) = Peer::join(&agent, "bob", Role::Editor).await?;
    ada.open("a.txt").await?;
    bob.open("a.txt").await?;
    // Bob types more than the server keeps history for, one acknowledged op at a time.
    let ops = huddle_agent::ot::document::HISTORY_LIMIT as u64 + 5;
    for seq in 1..=ops {
        let len = seq - 1;
        let op = if len == 0 {
            serde_json::json!(["b"])
        } else {
            serde_json::json!([len, "b"])
        };
        bob.send(&ClientMessage::Op {
            file: "a.txt".into(),
            base_rev: len,
            seq,
            op,
        })
        .await?;
        bob.until("ack", |m| match m {
            ServerMessage::Op {
                seq: s, client_id, ..
            } if *s == seq && client_id == "tab-bob" => Some(()),
            _ => None,
        })
        .await?;
    }
    // Ada, still at revision 0, sends an edit: it cannot be transformed any more.
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!(["a"]),
    })
    .await?;
    let (rev, text) = ada
        .until("a fresh copy", |m| match m {
            ServerMessage::Document { rev, text, .. } => Some((*rev, text.clone())),
            _ => None,
        })
        .await?;
    assert_eq!(rev, ops);
    assert_eq!(text, "b".repeat(ops as usize));
    assert_eq!(ada.error().await?.0, ErrorCode::Resync);
    Ok(())
}

#[tokio::test]
async fn a_snapshot_can_be_pushed_into_a_fresh_agent_once() -> Result<()> {
    let a = start_agent(&[("notes.txt", "from a\n")]).await?;
    let http = reqwest::Client::new();
    let owner = token("own", Role::Owner);
    let archive = http
        .get(format!("http://{}/internal/snapshot", a.addr))
        .bearer_auth(&owner)
        .send()
        .await?
        .bytes()
        .await?;

    let b = start_agent(&[]).await?;
    let url = format!("http://{}/internal/restore", b.addr);
    let viewer = http
        .put(&url)
        .bearer_auth(token("vic", Role::Viewer))
        .body(archive.clone())
        .send()
        .await?;
    assert_eq!(viewer.status(), 403);
    let garbage = http
        .put(&url)
        .bearer_auth(&owner)
        .body("not a tar")
        .send()
        .await?;
    assert_eq!(garbage.status(), 400);
    assert_eq!(
        std::fs::read_dir(b.dir.path())?.count(),
        0,
        "a failed restore left files behind"
    );
    let pushed = http
        .put(&url)
        .bearer_auth(&owner)
        .body(archive.clone())
        .send()
        .await?;
    assert_eq!(pushed.status(), 204);
    assert_eq!(
        std::fs::read_to_string(b.dir.path().join("notes.txt"))?,
        "from a\n"
    );
    let again = http
        .put(&url)
        .bearer_auth(&owner)
        .body(archive)
        .send()
        .await?;
    assert_eq!(
        again.status(),
        409,
        "a second restore must not overwrite the session"
    );
    Ok(())
}

#[tokio::test]
async fn a_notice_from_the_owner_reaches_everyone_and_others_cannot_send_one() -> Result<()> {
    let agent = start_agent(&[]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    let (mut bob, _) = Peer::join(&agent, "bob", Role::Viewer).await?;
    let http = reqwest::Client::new();
    let url = format!("http://{}/internal/notice", agent.addr);
    // Not the owner: refused, and nobody hears it (it would arrive before the owner's).
    let refused = http
        .post(&url)
        .bearer_auth(token("ada", Role::Editor))
        .json(&serde_json::json!({"kind": "shutdown", "message": "from an editor", "at": 1}))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    let error: serde_json::Value = refused.json().await?;
    assert_eq!(error["code"], "forbidden");
    let unauthenticated = http
        .post(&url)
        .json(&serde_json::json!({"kind": "shutdown", "message": "from nobody", "at": 1}))
        .send()
        .await?;
    assert_eq!(unauthenticated.status(), 401);
    for body in [
        r#"{"kind":"reboot","message":"m","at":1}"#,
        "not json",
        "{}",
    ] {
        let malformed = http
            .post(&url)
            .bearer_auth(token("gw", Role::Owner))
            .body(body)
            .send()
            .await?;
        assert_eq!(malformed.status(), 400, "{body}");
        let error: serde_json::Value = malformed.json().await?;
        assert_eq!(error["code"], "malformed", "{body}");
        assert!(error["message"].is_string(), "{error}");
    }
    let sent = http
        .post(&url)
        .bearer_auth(token("gw", Role::Owner))
        .json(&serde_json::json!({"kind": "idle_stop", "message": "saving soon", "at": 1234}))
        .send()
        .await?;
    assert_eq!(sent.status(), 204);
    for participant in [&mut ada, &mut bob] {
        let notice = participant
            .until("the notice", |m| {
                matches!(m, ServerMessage::Notice { .. }).then(|| m.clone())
            })
            .await?;
        assert_eq!(
            notice,
            ServerMessage::Notice {
                kind: huddle_protocol::messages::NoticeKind::IdleStop,
                message: "saving soon".into(),
                at: 1234,
            }
        );
    }
    Ok(())
}

/// A stand-in for the gateway's snapshot store: serves `archive` at `/snapshots/s1` only to a
/// bearer of an owner token that `key` verifies for [`SESSION`], 401 to anyone else, 404 for
/// other paths. Returns its address and the claims of every token it accepted.
async fn snapshot_store(
    key: TokenKey,
    archive: axum::body::Bytes,
) -> Result<(SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<Claims>>>)> {
    use axum::http::{HeaderMap, StatusCode, header};
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = accepted.clone();
    let app = axum::Router::new().route(
        &format!("/snapshots/{SESSION}"),
        axum::routing::get(move |headers: HeaderMap| {
            let key = key.clone();
            let archive = archive.clone();
            let seen = seen.clone();
            async move {
                let claims = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .and_then(|token| {
                        key.verify(token, SESSION, huddle_protocol::token::now_unix())
                            .ok()
                    })
                    .filter(|claims| claims.role == Role::Owner);
                match claims {
                    Some(claims) => {
                        seen.lock().map(|mut seen| seen.push(claims)).ok();
                        Ok(archive)
                    }
                    None => Err(StatusCode::UNAUTHORIZED),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, accepted))
}

#[tokio::test]
async fn a_new_agent_fetches_its_snapshot_with_a_token_signed_by_its_own_session_key() -> Result<()>
{
    // The gateway's side of the contract: it derives the session's key from its master key and
    // verifies with it; the agent was handed the key's text (HUDDLE_TOKEN_KEY).
    let master = TokenKey::new([7u8; 32])?;
    let (agent_key_text, gateway_key) = huddle_protocol::token::session_key(&master, SESSION);

    let a = start_agent(&[("notes.txt", "from a\n"), ("src/lib.rs", "pub fn f() {}\n")]).await?;
    let archive = reqwest::Client::new()
        .get(format!("http://{}/internal/snapshot", a.addr))
        .bearer_auth(token("own", Role::Owner))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let (store, accepted) = snapshot_store(gateway_key, archive).await?;
    let url = format!("http://{store}/snapshots/{SESSION}");

    let b = start_agent_keyed(
        &[],
        TokenKey::new(agent_key_text.into_bytes())?,
        Some(RestoreFrom::Url(url.clone())),
    )
    .await?;
    assert_eq!(
        std::fs::read_to_string(b.dir.path().join("notes.txt"))?,
        "from a\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.dir.path().join("src/lib.rs"))?,
        "pub fn f() {}\n"
    );
    let claims = accepted
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    assert_eq!(claims.len(), 1);
    assert_eq!(
        (claims[0].name.as_str(), claims[0].uid.as_str()),
        ("huddle-agent", "agent")
    );
    let now = huddle_protocol::token::now_unix();
    assert!(
        claims[0].exp > now && claims[0].exp <= now + 300,
        "a short-lived token"
    );

    // An agent holding another session's key (or the master itself) gets a 401, and a failed
    // restore stops the agent instead of serving an empty workspace.
    let (other_session_text, _) = huddle_protocol::token::session_key(&master, "s2");
    for key in [
        TokenKey::new(other_session_text.into_bytes())?,
        TokenKey::new([7u8; 32])?,
    ] {
        let error = match start_agent_keyed(&[], key, Some(RestoreFrom::Url(url.clone()))).await {
            Ok(_) => bail!("an agent with the wrong key restored"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("401"), "{error}");
    }
    assert_eq!(accepted.lock().map(|seen| seen.len()).unwrap_or(0), 1);

    // Nothing stored for the session (404): the agent starts fresh.
    let fresh = start_agent_keyed(
        &[],
        TokenKey::new(KEY)?,
        Some(RestoreFrom::Url(format!("http://{store}/snapshots/none"))),
    )
    .await?;
    assert_eq!(std::fs::read_dir(fresh.dir.path())?.count(), 0);
    Ok(())
}

#[tokio::test]
async fn reopening_since_a_revision_replays_what_was_missed_then_a_checksum() -> Result<()> {
    let agent = start_agent(&[("a.txt", "ab")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    assert_eq!(ada.open("a.txt").await?, (0, "ab".to_owned()));
    let (mut bob, _) = Peer::join(&agent, "bob", Role::Editor).await?;
    bob.open("a.txt").await?;
    // Ada sends an op and loses her connection before its ack; Bob edits meanwhile.
    ada.send(&ClientMessage::Op {
        file: "a.txt".into(),
        base_rev: 0,
        seq: 1,
        op: serde_json::json!([2, "!"]),
    })
    .await?;
    drop(ada);
    for (seq, op) in [
        (1, serde_json::json!(["<", 3])),
        (2, serde_json::json!([4, ">"])),
    ] {
        let base_rev = bob
            .until("the previous op", |m| match m {
                ServerMessage::Op { rev, .. } => Some(*rev),
                _ => None,
            })
            .await?;
        bob.send(&ClientMessage::Op {
            file: "a.txt".into(),
            base_rev,
            seq,
            op,
        })
        .await?;
    }
    bob.until("bob's second ack", |m| match m {
        ServerMessage::Op {
            seq: 2, client_id, ..
        } if client_id == "tab-bob" => Some(()),
        _ => None,
    })
    .await?;

    // Ada comes back at revision 0: she gets the text at 0, the three ops (hers first, her
    // ack), then the checksum of revision 3.
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Editor).await?;
    ada.send(&ClientMessage::Open {
        file: "a.txt".into(),
        since: Some(0),
    })
    .await?;
    let mut seen = Vec::new();
    loop {
        match ada.recv().await? {
            ServerMessage::Document { rev, text, .. } => {
                seen.push(format!("document {rev} {text}"))
            }
            ServerMessage::Op {
                rev,
                client_id,
                seq,
                ..
            } => seen.push(format!("op {rev} {client_id} {seq}")),
            ServerMessage::Checksum { rev, checksum, .. } => {
                assert_eq!(checksum, huddle_agent::ot::checksum::checksum_str("<ab!>"));
                seen.push(format!("checksum {rev}"));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "document 0 ab",
            "op 1 tab-ada 1",
            "op 2 tab-bob 1",
            "op 3 tab-bob 2",
            "checksum 3"
        ]
    );

    // Asked from a revision the agent no longer knows, it answers with the current document.
    let (mut late, _) = Peer::join(&agent, "cy", Role::Viewer).await?;
    late.send(&ClientMessage::Open {
        file: "a.txt".into(),
        since: Some(99),
    })
    .await?;
    let document = late
        .until("document", |m| match m {
            ServerMessage::Document { rev, text, .. } => Some((*rev, text.clone())),
            _ => None,
        })
        .await?;
    assert_eq!(document, (3, "<ab!>".to_owned()));
    Ok(())
}

#[tokio::test]
async fn viewports_reach_everyone_else_and_oversized_ones_are_refused() -> Result<()> {
    let agent = start_agent(&[("a.txt", "x")]).await?;
    let (mut ada, _) = Peer::join(&agent, "ada", Role::Viewer).await?;
    let (mut bob, _) = Peer::join(&agent, "bob", Role::Editor).await?;
    ada.send(&ClientMessage::Viewport {
        file: "a.txt".into(),
        top_line: 40,
    })
    .await?;
    let seen = bob
        .until("ada's viewport", |m| match m {
            ServerMessage::Viewport {
                user_id,
                file,
                top_line,
            } => Some((user_id.clone(), file.clone(), *top_line)),
            _ => None,
        })
        .await?;
    assert_eq!(seen, ("uid-ada".to_owned(), "a.txt".to_owned(), 40));
    ada.send(&ClientMessage::Viewport {
        file: "a".repeat(5000),
        top_line: 0,
    })
    .await?;
    assert_eq!(ada.error().await?.0, ErrorCode::Malformed);
    Ok(())
}
