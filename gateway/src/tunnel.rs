//! WebSocket tunnels: the gateway relays WebSocket upgrades itself once the proxy has routed
//! and authorized them.
//!
//! Why not pingora's proxy loop: pingora 0.9.1 tears an upgraded connection down when it reads
//! the upstream's `101` before it has consumed the upgrade request's (empty) end of body
//! (cloudflare/pingora#946, fix proposed in #947). A fast upstream under load makes that
//! ordering likely: the proxy benchmark lost 2–7 of 1,000 WebSockets right after their
//! handshake in every run. Here the handshake goes upstream as one write, its answer comes back
//! through pingora's downstream session (which switches the connection to pass-through on a
//! `101`), and then bytes are copied both ways until either side ends.
//!

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long the upstream may take to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head accepted from the upstream.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest body of a refused handshake relayed to the client (the rest is cut).
const MAX_REFUSAL_BODY: usize = 1024 * 1024;
/// Read size on the upstream side.
const READ_CHUNK: usize = 16 * 1024;
/// Headers that describe the client's connection (hop-by-hop), or that would make the upstream
/// answer `100 Continue` to a request without a body.
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "expect",
    "connection",
];
/// How long a client may leave the gateway's writes unread before its WebSocket is cut.
pub const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the upstream may keep a tunnel open after the client has finished sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a tunnel failed before anything was sent to the client (the caller answers then).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the upstream refused the connection: {0}")]
    Connect(std::io::Error),
    #[error("the upstream did not answer the handshake: {0}")]
    Upstream(String),
}

/// Whether pingora's downstream request is a WebSocket upgrade this module relays: an HTTP/1
/// `GET` with `Upgrade: websocket` and no body. Other upgrades stay with pingora.
pub fn is_websocket(session: &Session) -> bool {
    // Most requests are not upgrades: decide that first.
    if !session.is_upgrade_req() {
        return false;
    }
    let req = session.req_header();
    let websocket = req
        .headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        });
    websocket
        && req.method == pingora::http::Method::GET
        && !crate::proxy::declares_body(req)
        && !session.as_downstream().is_http2()
}

/// Opens the connection to the upstream (TCP_NODELAY, like pingora's own connections).
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, HandshakeError> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| {
            HandshakeError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting timed out",
            ))
        })?
        .map_err(HandshakeError::Connect)?;
    stream.set_nodelay(true).map_err(HandshakeError::Connect)?;
    Ok(stream)
}

/// The handshake as the upstream gets it: the rewritten request with the client's connection
/// headers (and those its `Connection` header names) replaced by a plain `Connection: upgrade`.
pub fn request_bytes(request: &RequestHeader) -> Vec<u8> {
    let named_by_connection: Vec<String> = request
        .headers
        .get_all("connection")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| name != "upgrade")
        .collect();
    let target = request
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(request.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &request.headers {
        let name = name.as_str();
        if HOP_BY_HOP.contains(&name) || named_by_connection.iter().any(|named| named == name) {
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: upgrade\r\n\r\n");
    head
}

/// The upstream's answer to the handshake: its head, and any bytes that followed it.
pub struct Answer {
    pub response: ResponseHeader,
    pub rest: BytesMut,
    framing: Framing,
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

impl Answer {
    pub fn switched(&self) -> bool {
        self.response.status.as_u16() == 101
    }
}

/// Sends the handshake and reads the upstream's answer head.
pub async fn handshake(
    upstream: &mut TcpStream,
    request: &RequestHeader,
) -> Result<Answer, HandshakeError> {
    let exchange = async {
        upstream
            .write_all(&request_bytes(request))
            .await
            .map_err(|e| HandshakeError::Upstream(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let read = upstream
                .read_buf(&mut buf)
                .await
                .map_err(|e| HandshakeError::Upstream(e.to_string()))?;
            if read == 0 {
                return Err(HandshakeError::Upstream(
                    "the connection closed before the answer".into(),
                ));
            }
            while let Some(answer) = parse_head(&mut buf)? {
                // `100 Continue` or `103 Early Hints` come before the real answer: skip them.
                if answer.response.status.is_informational() && !answer.switched() {
                    buf = answer.rest;
                    continue;
                }
                return Ok(answer);
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(HandshakeError::Upstream(
                    "the answer's head is too large".into(),
                ));
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::Upstream("no answer in time".into()))?
}

fn parse_head(buf: &mut BytesMut) -> Result<Option<Answer>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut parsed = httparse::Response::new(&mut headers);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(HandshakeError::Upstream(format!("bad answer: {error}"))),
    };
    let status = parsed.code.unwrap_or(502);
    let invalid = |what: &str| HandshakeError::Upstream(format!("bad answer: {what}"));
    let mut response =
        ResponseHeader::build(status, Some(parsed.headers.len())).map_err(|_| invalid("status"))?;
    let mut framing = Framing::UntilClose;
    for header in parsed.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            framing = Framing::Chunked;
        } else if header.name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked)
        {
            let length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("content-length"))?;
            framing = Framing::Length(length);
        }
        response
            .append_header(header.name.to_owned(), header.value)
            .map_err(|_| invalid("header"))?;
    }
    if matches!(status, 204 | 304) || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    let rest = buf.split_off(length);
    Ok(Some(Answer {
        response,
        rest,
        framing,
    }))
}

/// A refused handshake's body, decoded and capped, so that it can be relayed with a length.
pub async fn refusal_body(upstream: &mut TcpStream, answer: &mut Answer) -> Bytes {
    let read = async {
        let mut raw = std::mem::take(&mut answer.rest);
        let want = match answer.framing {
            Framing::Length(length) => usize::try_from(length).unwrap_or(usize::MAX),
            _ => usize::MAX,
        }
        .min(MAX_REFUSAL_BODY);
        loop {
            if matches!(answer.framing, Framing::Chunked)
                && let Some(body) = decode_chunked(&raw)
            {
                return body;
            }
            if raw.len() >= want || raw.len() > MAX_REFUSAL_BODY {
                break;
            }
            match upstream.read_buf(&mut raw).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if matches!(answer.framing, Framing::Chunked) {
            // Cut short or over the cap: what decodes is all there is.
            return decode_chunked_prefix(&raw);
        }
        raw.truncate(want);
        raw.freeze()
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .unwrap_or_default()
}

/// The body of a complete chunked message, or `None` while the terminating chunk is missing.
fn decode_chunked(raw: &[u8]) -> Option<Bytes> {
    let (body, complete) = decode_chunks(raw);
    complete.then_some(body)
}

fn decode_chunked_prefix(raw: &[u8]) -> Bytes {
    decode_chunks(raw).0
}

/// Decodes chunks from the start of `raw`: the data so far and whether the last chunk was seen.
fn decode_chunks(raw: &[u8]) -> (Bytes, bool) {
    let mut body = BytesMut::new();
    let mut at = 0;
    while let Ok(httparse::Status::Complete((header, size))) =
        httparse::parse_chunk_size(&raw[at..])
    {
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size == 0 {
            return (body.freeze(), true);
        }
        let start = at + header;
        let Some(end) = start
            .checked_add(size)
            .filter(|&end| end.checked_add(2).is_some_and(|after| after <= raw.len()))
        else {
            let available = raw.len().saturating_sub(start).min(size);
            body.extend_from_slice(&raw[start..start + available]);
            break;
        };
        body.extend_from_slice(&raw[start..end]);
        at = end + 2;
    }
    (body.freeze(), false)
}

/// Copies bytes both ways after a `101` until either side ends. `on_client_data` runs for every
/// chunk the client sends (its activity).
///
/// One task does both directions. A client chunk the upstream cannot take at once is held, and
/// the client is not read again until it is written; meanwhile the upstream is still read, so
/// a busy upstream holds the client back without either side wedging the other.
pub async fn relay(
    session: &mut Session,
    mut upstream: TcpStream,
    leftover: BytesMut,
    on_client_data: impl Fn(),
) -> pingora::Result<()> {
    // A client that stops reading must not hold the tunnel (and the upstream) forever.
    session.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    // A client going away is how WebSockets end: not an error to report.
    if !leftover.is_empty()
        && session
            .write_response_body(Some(leftover.freeze()), false)
            .await
            .is_err()
    {
        return Ok(());
    }
    let mut held: Option<Bytes> = None;
    // Set once the client has finished sending: the upstream then has this long to finish.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        tokio::select! {
            from_client = session.read_request_body(), if drain_deadline.is_none() && held.is_none() => {
                match from_client {
                    Ok(Some(chunk)) => {
                        on_client_data();
                        match write_now(&upstream, chunk) {
                            Ok(rest) => held = rest,
                            Err(_) => return Ok(()),
                        }
                    }
                    // The client finished sending (or went away): tell the upstream, which may
                    // still answer.
                    Ok(None) | Err(_) => {
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                        let _ = upstream.shutdown().await;
                    }
                }
            }
            writable = upstream.writable(), if held.is_some() => {
                if writable.is_err() {
                    return Ok(());
                }
                if let Some(chunk) = held.take() {
                    match write_now(&upstream, chunk) {
                        Ok(rest) => held = rest,
                        Err(_) => return Ok(()),
                    }
                }
            }
            readable = upstream.readable() => {
                if readable.is_err() {
                    return Ok(());
                }
                match upstream.try_read_buf(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {
                        let chunk = buf.split().freeze();
                        if session.write_response_body(Some(chunk), false).await.is_err() {
                            return Ok(());
                        }
                        if buf.capacity() < READ_CHUNK / 4 {
                            buf.reserve(READ_CHUNK);
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Ok(()),
                }
            }
            () = sleep_until(drain_deadline), if drain_deadline.is_some() => return Ok(()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Writes as much of `chunk` as the socket takes without waiting; returns what is left.
fn write_now(upstream: &TcpStream, mut chunk: Bytes) -> std::io::Result<Option<Bytes>> {
    while !chunk.is_empty() {
        match upstream.try_write(&chunk) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                let _ = chunk.split_to(written);
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(Some(chunk)),
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_keeps_the_upgrade_and_drops_the_clients_connection_headers() {
        let mut request = RequestHeader::build("GET", b"/ws?x=1", None).unwrap();
        request.insert_header("host", "port-1-a.example").unwrap();
        request
            .insert_header("connection", "keep-alive, Upgrade")
            .unwrap();
        request.insert_header("keep-alive", "300").unwrap();
        request.append_header("connection", "X-Hop").unwrap();
        request.insert_header("x-hop", "1").unwrap();
        request.insert_header("expect", "100-continue").unwrap();
        request.insert_header("upgrade", "websocket").unwrap();
        request.insert_header("sec-websocket-key", "abc==").unwrap();
        let text = String::from_utf8(request_bytes(&request)).unwrap();
        assert!(text.starts_with("GET /ws?x=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nhost: port-1-a.example\r\n"), "{text}");
        assert!(text.contains("\r\nupgrade: websocket\r\n"), "{text}");
        assert!(text.contains("\r\nsec-websocket-key: abc==\r\n"), "{text}");
        assert!(!text.contains("keep-alive"), "{text}");
        assert!(!text.contains("x-hop"), "{text}");
        assert!(!text.contains("expect"), "{text}");
        assert!(text.ends_with("\r\nconnection: upgrade\r\n\r\n"), "{text}");
    }

    #[test]
    fn answer_heads_parse_with_their_framing_and_keep_what_follows() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"[..],
        );
        let answer = parse_head(&mut buf).unwrap().unwrap();
        assert!(answer.switched());
        assert_eq!(answer.response.headers["upgrade"], "websocket");
        assert_eq!(&answer.rest[..], b"\x81\x02hi");

        let mut partial = BytesMut::from(&b"HTTP/1.1 403 Forbidden\r\nContent-Len"[..]);
        assert!(parse_head(&mut partial).unwrap().is_none());

        let mut refused =
            BytesMut::from(&b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nno"[..]);
        let answer = parse_head(&mut refused).unwrap().unwrap();
        assert!(!answer.switched());
        assert!(matches!(answer.framing, Framing::Length(4)));

        let mut not_modified = BytesMut::from(&b"HTTP/1.1 304 Not Modified\r\n\r\n"[..]);
        let answer = parse_head(&mut not_modified).unwrap().unwrap();
        assert!(matches!(answer.framing, Framing::Length(0)));

        let mut garbage = BytesMut::from(&b"SSH-2.0-OpenSSH\r\n\r\n"[..]);
        assert!(parse_head(&mut garbage).is_err());
        let mut bad_length =
            BytesMut::from(&b"HTTP/1.1 400 Bad\r\nContent-Length: lots\r\n\r\n"[..]);
        assert!(parse_head(&mut bad_length).is_err());
    }

    #[tokio::test]
    async fn informational_answers_before_the_switch_are_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            socket
                .write_all(
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                      HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\nxy",
                )
                .await
                .unwrap();
        });
        let mut upstream = connect(addr).await.unwrap();
        let request = RequestHeader::build("GET", b"/ws", None).unwrap();
        let answer = handshake(&mut upstream, &request).await.unwrap();
        assert!(answer.switched());
        assert_eq!(&answer.rest[..], b"xy");
    }

    #[test]
    fn chunked_refusals_decode_whole_or_as_far_as_they_go() {
        let whole = b"4\r\nnot \r\n7\r\nallowed\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(whole).as_deref(), Some(&b"not allowed"[..]));
        let cut = b"4\r\nnot \r\n7\r\nall";
        assert_eq!(decode_chunked(cut), None);
        assert_eq!(&decode_chunked_prefix(cut)[..], b"not all");
        assert_eq!(&decode_chunked_prefix(b"zz\r\n")[..], b"");
        // A chunk size near usize::MAX is cut short, not an overflow.
        assert_eq!(decode_chunked(b"FFFFFFFFFFFFFFEC\r\nab"), None);
        assert_eq!(&decode_chunked_prefix(b"FFFFFFFFFFFFFFEC\r\nab")[..], b"ab");
    }
}
