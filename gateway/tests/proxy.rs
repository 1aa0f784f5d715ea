//! The gateway as browsers meet it: the real binary with the process runtime, real agents, real
//! WebSockets, on loopback. See `support` for the setup.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::{SinkExt as _, StreamExt as _};
use huddle_protocol::Role;
use huddle_protocol::token::{Claims, TokenKey, session_key};
use reqwest::Method;
use serde_json::json;
use support::{ADMIN, Created, DOMAIN, Gateway, Options, port_host, recv_type, send_json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// The gateway's generated master key (one-machine mode keeps it in the data folder).
fn master_key(gateway: &Gateway) -> Result<TokenKey> {
    let key = std::fs::read(gateway.data.join("token.key"))?;
    Ok(TokenKey::new(key)?)
}

fn claims(id: &str, role: Role, exp: u64) -> Claims {
    Claims {
        sid: id.into(),
        name: "mallory".into(),
        role,
        exp,
        uid: "m".into(),
    }
}

#[tokio::test]
async fn path_routing_links_cookies_and_websocket() -> Result<()> {
    let gateway = Gateway::start("gateway-paths", Options::default()).await?;
    let created = gateway.create(json!({"owner": "Ada"})).await?;
    let id = &created.id;
    assert_eq!(id.len(), 26);
    assert_eq!(created.url, gateway.url(&format!("/s/{id}/")));
    let owner_token = Created::token(&created.owner_link);
    gateway.wait_ready(id, &owner_token).await?;

    // The owner link puts the token in a cookie scoped to the session and drops it from the URL.
    let response = gateway.client(&[]).get(&created.owner_link).send().await?;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], format!("/s/{id}/"));
    let set_cookie = response.headers()["set-cookie"].to_str()?.to_owned();
    assert!(
        set_cookie.contains(&format!("Path=/s/{id}/")),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = support::cookie_from(&response, "huddle_session").context("cookie")?;

    // With the cookie, the session's pages reach the agent, with the gateway's headers.
    let page = gateway
        .client(&[])
        .get(gateway.url(&format!("/s/{id}/version")))
        .header("cookie", format!("huddle_session={cookie}"))
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await?.starts_with("huddle-agent"));
    // Without the trailing slash: a redirect, so relative URLs resolve.
    let bare = gateway
        .client(&[])
        .get(gateway.url(&format!("/s/{id}")))
        .send()
        .await?;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], format!("/s/{id}/"));

    // An editor invite names nobody: opening it makes a personal participant with a name.
    let editor_link = format!("{}&name=Grace%20H", created.editor_link);
    let editor_cookie = gateway.open_link(&editor_link).await?;
    let (status, me) = {
        let response = gateway
            .client(&[])
            .get(gateway.url(&format!("/s/{id}/_huddle/me")))
            .header("cookie", format!("huddle_session={editor_cookie}"))
            .send()
            .await?;
        (
            response.status(),
            response.json::<serde_json::Value>().await?,
        )
    };
    assert_eq!(status, 200);
    assert_eq!(me["role"], "editor");
    assert_eq!(me["name"], "Grace H");
    assert_eq!(me["uid"].as_str().map(str::len), Some(16));

    // The WebSocket goes through, and the agent knows who is who.
    let (mut owner_ws, welcome) = gateway.join(id, &owner_token, "tab-owner").await?;
    assert_eq!(welcome["you"]["role"], "owner");
    let editor_token = me["token"].as_str().context("token")?.to_owned();
    let (_editor_ws, welcome) = gateway.join(id, &editor_token, "tab-editor").await?;
    assert_eq!(welcome["you"]["name"], "Grace H");
    let joined = recv_type(&mut owner_ws, "participant_joined").await?;
    assert_eq!(joined["participant"]["name"], "Grace H");

    // An edit through the gateway is acknowledged.
    send_json(
        &mut owner_ws,
        json!({"type": "create_file", "path": "notes.txt"}),
    )
    .await?;
    recv_type(&mut owner_ws, "file_changed").await?;
    let (rev, text) = support::open_document(&mut owner_ws, "notes.txt").await?;
    assert_eq!(text, "");
    send_json(
        &mut owner_ws,
        json!({"type": "op", "file": "notes.txt", "base_rev": rev, "seq": 1, "op": ["hello"]}),
    )
    .await?;
    let ack = recv_type(&mut owner_ws, "op").await?;
    assert_eq!(
        (ack["client_id"].as_str(), ack["seq"].as_u64()),
        (Some("tab-owner"), Some(1))
    );

    // The participant is recorded.
    let (status, _) = gateway
        .api(
            Method::GET,
            &format!("/api/sessions/{id}"),
            &owner_token,
            None,
        )
        .await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_get_401_and_change_nothing() -> Result<()> {
    let gateway = Gateway::start("gateway-tokens", Options::default()).await?;
    let a = gateway.create(json!({})).await?;
    let b = gateway.create(json!({})).await?;
    let owner_a = Created::token(&a.owner_link);
    gateway.wait_ready(&a.id, &owner_a).await?;
    let master = master_key(&gateway)?;
    let now = huddle_gateway::auth::now_unix();

    let forged_with_other_key =
        TokenKey::new([7u8; 32])?.sign(&claims(&a.id, Role::Owner, now + 600));
    let signed_with_master = master.sign(&claims(&a.id, Role::Owner, now + 600));
    let (_, key_a) = session_key(&master, &a.id);
    let expired = key_a.sign(&claims(&a.id, Role::Owner, now - 1));
    let other_session = Created::token(&b.owner_link);
    let mut tampered = owner_a.clone();
    tampered.insert(
        3,
        if tampered.as_bytes()[3] == b'A' {
            'B'
        } else {
            'A'
        },
    );
    let bad_tokens = [
        ("forged", forged_with_other_key),
        ("master key", signed_with_master),
        ("expired", expired),
        ("other session", other_session),
        ("tampered", tampered),
        ("garbage", "not-a-token".to_owned()),
        ("huge", "x".repeat(10_000)),
    ];
    for (what, token) in &bad_tokens {
        // API: read and delete.
        let (status, body) = gateway
            .api(Method::GET, &format!("/api/sessions/{}", a.id), token, None)
            .await?;
        assert_eq!(status, 401, "{what}: {body}");
        let (status, _) = gateway
            .api(
                Method::DELETE,
                &format!("/api/sessions/{}", a.id),
                token,
                None,
            )
            .await?;
        assert_eq!(status, 401, "{what}");
        // Proxy: bearer, cookie and link.
        let response = gateway
            .client(&[])
            .get(gateway.url(&format!("/s/{}/", a.id)))
            .bearer_auth(token)
            .send()
            .await?;
        assert_eq!(response.status(), 401, "{what}");
        let response = gateway
            .client(&[])
            .get(gateway.url(&format!("/s/{}/", a.id)))
            .header("cookie", format!("huddle_session={token}"))
            .send()
            .await?;
        assert_eq!(response.status(), 401, "{what}");
        assert!(support::cookie_from(&response, "huddle_session").is_none());
        let response = gateway
            .client(&[])
            .get(gateway.url(&format!("/s/{}/?token={token}", a.id)))
            .send()
            .await?;
        assert_eq!(response.status(), 401, "{what}");
        assert!(response.headers().get("set-cookie").is_none(), "{what}");
    }
    // A viewer may look but not delete.
    let viewer_cookie = gateway.open_link(&a.viewer_link).await?;
    let (status, _) = gateway
        .api(
            Method::DELETE,
            &format!("/api/sessions/{}", a.id),
            &viewer_cookie,
            None,
        )
        .await?;
    assert_eq!(status, 403);
    // Nothing changed: the session still runs, and answers its owner.
    gateway.wait_ready(&a.id, &owner_a).await?;
    // Listing needs the admin token.
    let (status, _) = gateway
        .api(Method::GET, "/api/sessions", &owner_a, None)
        .await?;
    assert_eq!(status, 401);
    let (status, list) = gateway
        .api(Method::GET, "/api/sessions", ADMIN, None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test]
async fn unknown_sessions_and_ssrf_attempts_go_nowhere() -> Result<()> {
    let gateway = Gateway::start("gateway-ssrf", Options::default()).await?;
    let app_port = support::start_app_server().await?;
    let created = gateway
        .create(json!({"ports": [{"port": app_port, "visibility": "public"}]}))
        .await?;
    let id = &created.id;
    let owner = Created::token(&created.owner_link);
    gateway.wait_ready(id, &owner).await?;
    let unknown = huddle_gateway::store::new_session_id()?.to_string();

    // Unknown ids: 404, before any token is asked for.
    let response = gateway
        .client(&[])
        .get(gateway.url(&format!("/s/{unknown}/")))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    assert!(response.text().await?.contains("No such session"));

    // Raw requests with chosen Host headers and request targets.
    let cases = [
        (format!("127.0.0.1:{app_port}"), "/".to_owned()),
        (format!("localhost:{app_port}"), "/".to_owned()),
        (format!("port-{app_port}-{id}.evil.test"), "/".to_owned()),
        (
            format!("port-{app_port}-{id}.{DOMAIN}.evil.test"),
            "/".to_owned(),
        ),
        (format!("port-22-{id}.{DOMAIN}"), "/".to_owned()),
        (
            format!("port-{app_port}-{unknown}.{DOMAIN}"),
            "/".to_owned(),
        ),
        (format!("port-0{app_port}-{id}.{DOMAIN}"), "/".to_owned()),
        (DOMAIN.to_owned(), format!("http://127.0.0.1:{app_port}/")),
        (DOMAIN.to_owned(), "/s/../api/sessions".to_owned()),
        (DOMAIN.to_owned(), format!("/s/{}/", id.to_uppercase())),
    ];
    for (host, target) in cases {
        let (status, body) = raw_get(gateway.addr, &host, &target).await?;
        assert!(
            !body.contains("hello from"),
            "{host} {target} reached the app: {body}"
        );
        assert!(status == 404 || status == 400, "{host} {target}: {status}");
    }
    // The declared public port itself works, so the cases above were refused for their own sake.
    let (status, body) = raw_get(gateway.addr, &port_host(id, app_port), "/").await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("hello from {app_port}")));
    Ok(())
}

/// Sends one HTTP/1.1 GET with exactly this Host and request target; returns status and body.
async fn raw_get(addr: std::net::SocketAddr, host: &str, target: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {text:?}"))?;
    Ok((status, text))
}

#[tokio::test]
async fn private_ports_need_a_signed_redirect_and_going_private_cuts_websockets() -> Result<()> {
    let gateway = Gateway::start("gateway-ports", Options::default()).await?;
    let app_port = support::start_app_server().await?;
    let created = gateway
        .create(json!({"ports": [{"port": app_port}]}))
        .await?;
    let id = created.id.clone();
    let owner = Created::token(&created.owner_link);
    gateway.wait_ready(&id, &owner).await?;
    let host = port_host(&id, app_port);
    let client = gateway.client(std::slice::from_ref(&host));

    // Private by default: a stranger is sent to sign in on the session domain.
    let response = client
        .get(gateway.port_url(&id, app_port, "/?q=1"))
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    let to_auth = response.headers()["location"].to_str()?.to_owned();
    assert!(
        to_auth.starts_with(&gateway.url(&format!("/s/{id}/_huddle/port-auth?port={app_port}"))),
        "{to_auth}"
    );
    // Not signed in there either: refused.
    let response = client.get(&to_auth).send().await?;
    assert_eq!(response.status(), 401);

    // A participant: session cookie → signed grant → the port host's own cookie.
    let session_cookie = gateway.open_link(&created.viewer_link).await?;
    let response = client
        .get(&to_auth)
        .header("cookie", format!("huddle_session={session_cookie}"))
        .send()
        .await?;
    assert_eq!(response.status(), 303);
    let to_grant = response.headers()["location"].to_str()?.to_owned();
    assert!(to_grant.starts_with(&gateway.port_url(&id, app_port, "/_huddle/port-auth?grant=")));
    let response = client.get(&to_grant).send().await?;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/?q=1");
    let set_cookie = response.headers()["set-cookie"].to_str()?.to_owned();
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain="),
        "host-only: {set_cookie}"
    );
    let port_cookie = support::cookie_from(&response, "huddle_port").context("port cookie")?;
    let response = client
        .get(gateway.port_url(&id, app_port, "/"))
        .header("cookie", format!("huddle_port={port_cookie}; theirs=1"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    // The app sees its own cookies, never the gateway's.
    assert_eq!(
        response.text().await?,
        format!("hello from {app_port}; cookies: theirs=1")
    );

    // A grant is single-purpose: not for another port, not a session token, not forgeable.
    let grant = to_grant
        .split("grant=")
        .nth(1)
        .and_then(|g| g.split('&').next())
        .unwrap_or("");
    let (status, _) = gateway
        .api(Method::GET, &format!("/api/sessions/{id}"), grant, None)
        .await?;
    assert_eq!(status, 401);
    let forged = client
        .get(gateway.port_url(&id, app_port, "/_huddle/port-auth?grant=abc.def&next=/"))
        .send()
        .await?;
    assert_eq!(forged.status(), 401);

    // Public: anyone, including a WebSocket.
    let (status, body) = gateway
        .api(
            Method::PUT,
            &format!("/api/sessions/{id}/ports/{app_port}"),
            &owner,
            Some(json!({"visibility": "public"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ports"][0]["visibility"], "public");
    let response = client
        .get(gateway.port_url(&id, app_port, "/"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let mut stranger = gateway.websocket("/ws", &host, None).await?;
    stranger.send(Message::Text("ping".into())).await?;
    let echo = tokio::time::timeout(Duration::from_secs(5), stranger.next()).await?;
    assert!(
        matches!(echo, Some(Ok(Message::Text(ref t))) if t.as_str() == "ping"),
        "{echo:?}"
    );
    // A participant's WebSocket on the same port.
    let mut member = gateway
        .websocket("/ws", &host, Some(&format!("huddle_port={port_cookie}")))
        .await?;

    // Private again: the stranger's open socket is cut at once; the participant's is not.
    let (status, _) = gateway
        .api(
            Method::PUT,
            &format!("/api/sessions/{id}/ports/{app_port}"),
            &owner,
            Some(json!({"visibility": "private"})),
        )
        .await?;
    assert_eq!(status, 200);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stranger.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stranger's WebSocket stayed open");
    member.send(Message::Text("still here".into())).await?;
    let echo = tokio::time::timeout(Duration::from_secs(5), member.next()).await?;
    assert!(matches!(echo, Some(Ok(Message::Text(ref t))) if t.as_str() == "still here"));
    let response = client
        .get(gateway.port_url(&id, app_port, "/"))
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    // Only the owner may change visibility; unknown ports are not created.
    let viewer_token = session_cookie.clone();
    let (status, _) = gateway
        .api(
            Method::PUT,
            &format!("/api/sessions/{id}/ports/{app_port}"),
            &viewer_token,
            Some(json!({"visibility": "public"})),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, _) = gateway
        .api(
            Method::PUT,
            &format!("/api/sessions/{id}/ports/9"),
            &owner,
            Some(json!({"visibility": "public"})),
        )
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

/// Sends `text` and expects it back.
async fn echo(ws: &mut support::Ws, text: &str) -> Result<()> {
    ws.send(Message::Text(text.to_owned().into())).await?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
        Some(Ok(Message::Text(echo))) if echo.as_str() == text => Ok(()),
        other => anyhow::bail!("{text}: {other:?}"),
    }
}

/// A gateway with a ready session that forwards a test app's port publicly: the gateway, the
/// app's port, the session and its owner token.
async fn public_app_session(name: &str) -> Result<(Gateway, u16, Created, String)> {
    let gateway = Gateway::start(name, Options::default()).await?;
    let app_port = support::start_app_server().await?;
    let created = gateway
        .create(json!({"ports": [{"port": app_port, "visibility": "public"}]}))
        .await?;
    let owner = Created::token(&created.owner_link);
    gateway.wait_ready(&created.id, &owner).await?;
    Ok((gateway, app_port, created, owner))
}

/// Hundreds of WebSockets opened at once through a forwarded port to a fast upstream all stay
/// open and echo (pingora's own upgrade handling lost a few per thousand right after the `101`,
/// cloudflare/pingora#946), a megabyte-sized message crosses both ways, and a refused upgrade
/// reaches the client as the app's own answer, body included.
#[tokio::test]
async fn websockets_at_once_large_messages_and_refused_upgrades() -> Result<()> {
    const SOCKETS: usize = 600;
    let (gateway, app_port, created, _owner) = public_app_session("gateway-many-sockets").await?;
    let host = port_host(&created.id, app_port);

    // Open them all (32 handshakes at a time) and keep them; each echoes once on the way.
    let outcomes: Vec<Result<support::Ws>> = futures::stream::iter(0..SOCKETS)
        .map(|n| {
            let gateway = &gateway;
            let host = host.clone();
            async move {
                let mut ws = gateway.websocket("/ws", &host, None).await?;
                echo(&mut ws, &format!("socket {n}")).await?;
                Ok(ws)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {SOCKETS} WebSockets failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    // All open at once: every one still echoes.
    let mut sockets: Vec<support::Ws> = outcomes.into_iter().filter_map(Result::ok).collect();
    assert_eq!(sockets.len(), SOCKETS);
    let again: Vec<Result<()>> = futures::future::join_all(
        sockets
            .iter_mut()
            .enumerate()
            .map(|(n, ws)| async move { echo(ws, &format!("again {n}")).await }),
    )
    .await;
    let failed = again.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed, 0,
        "{failed} of {SOCKETS} open WebSockets stopped echoing"
    );
    drop(sockets);

    let mut ws = gateway.websocket("/ws", &host, None).await?;
    let large: String = (0..1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    ws.send(Message::Text(large.clone().into())).await?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
        Some(Ok(Message::Text(echo))) => assert!(echo.as_str() == large, "the echo differs"),
        other => anyhow::bail!("no echo of the large message: {other:?}"),
    }

    for (path, body) in [
        ("/ws-refused", "no sockets here"),
        ("/ws-refused-chunked", "no sockets here either"),
    ] {
        let refused = gateway.websocket(path, &host, None).await.err();
        let response = match refused
            .as_ref()
            .and_then(|e| e.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        {
            Some(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
            other => anyhow::bail!("{path}: expected the app's refusal, got {other:?}"),
        };
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(
            response.body().as_deref(),
            Some(body.as_bytes()),
            "{path}: the app's body"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    Ok(())
}

#[tokio::test]
async fn websockets_stay_open_while_idle() -> Result<()> {
    let (gateway, app_port, created, owner) = public_app_session("gateway-idle-socket").await?;
    // A forwarded app's socket with no traffic at all, and a participant's socket with only the
    // protocol's heartbeats, for longer than the usual 60-second proxy timeouts.
    let mut app = gateway
        .websocket("/ws", &port_host(&created.id, app_port), None)
        .await?;
    let (mut ws, _) = gateway.join(&created.id, &owner, "tab").await?;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        send_json(&mut ws, json!({"type": "heartbeat"})).await?;
    }
    send_json(&mut ws, json!({"type": "create_file", "path": "late.txt"})).await?;
    let change = recv_type(&mut ws, "file_changed").await?;
    assert_eq!(change["change"]["entry"]["path"], "late.txt");
    app.send(Message::Text("after 75 s".into())).await?;
    let echo = tokio::time::timeout(Duration::from_secs(5), app.next()).await?;
    assert!(
        matches!(echo, Some(Ok(Message::Text(ref t))) if t.as_str() == "after 75 s"),
        "{echo:?}"
    );
    Ok(())
}

#[tokio::test]
async fn limits_on_the_api() -> Result<()> {
    let gateway = Gateway::start(
        "gateway-limits",
        Options {
            extra: vec!["--api-rate=5".into()],
            ..Options::default()
        },
    )
    .await?;
    // Over the body limit: refused before it reaches the API.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = gateway
        .client(&[])
        .post(gateway.url("/api/sessions"))
        .bearer_auth(ADMIN)
        .body(big)
        .send()
        .await?;
    assert_eq!(response.status(), 413);
    // Malformed and unknown fields: 400, nothing created.
    for body in [
        r#"{"ports":[{"port":0}]}"#,
        r#"{"evil":true}"#,
        "{",
        r#"{"files":{"../x":"y"}}"#,
    ] {
        let response = gateway
            .client(&[])
            .post(gateway.url("/api/sessions"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{body}");
    }
    let (_, list) = gateway
        .api(Method::GET, "/api/sessions", ADMIN, None)
        .await?;
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(0));
    // 5 per second, bursts of 15: 40 requests sent at once meet the limit. (One after another
    // they would depend on how fast the machine answers: slow enough, and the bucket refills.)
    let statuses = futures::future::join_all(
        (0..40).map(|_| gateway.api(Method::GET, "/api/sessions", ADMIN, None)),
    )
    .await;
    let mut limited = 0;
    for outcome in statuses {
        if outcome?.0 == 429 {
            limited += 1;
        }
    }
    ensure!(limited >= 20, "only {limited} of 40 requests were limited");
    Ok(())
}

#[tokio::test]
async fn graceful_upgrade_hands_over_the_socket_without_refusing_anyone() -> Result<()> {
    let old = Gateway::start(
        "gateway-upgrade-old",
        Options {
            extra: vec!["--grace-seconds=2".into()],
            ..Options::default()
        },
    )
    .await?;
    let created = old.create(json!({})).await?;

    // Requests keep flowing while the binary is replaced, each on a new connection: the point is
    // that the listening socket never refuses anyone. (A kept-alive connection that the old
    // gateway closes as it drains can race with a request sent on it; HTTP clients retry those,
    // RFC 9112 section 9.3.1, so this client does not keep any.)
    let client = reqwest::Client::builder()
        .resolve(DOMAIN, old.addr)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = old.url("/healthz");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, failed)
        }
    });

    // The new gateway waits for the listening socket; SIGQUIT makes the old one hand it over.
    let internal = huddle_test_harness::free_local_addr()?;
    let args = vec![
        "--runtime=process".to_owned(),
        format!("--listen={}", old.addr),
        format!("--internal-listen={internal}"),
        format!("--public-url=http://{DOMAIN}:{}", old.addr.port()),
        format!("--data-dir={}", old.data.display()),
        format!("--admin-token={ADMIN}"),
        format!(
            "--upgrade-socket={}",
            old.data.join("upgrade.sock").display()
        ),
        "--upgrade".to_owned(),
    ];
    let mut new =
        huddle_test_harness::Process::start("huddle-gateway", "gateway-upgrade-new", &args)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = std::process::Command::new("kill")
        .args(["-QUIT", &old.process.pid().to_string()])
        .status()?;
    ensure!(status.success());
    let mut old_process = old.process;
    huddle_test_harness::poll_until("the old gateway exits", Duration::from_secs(30), || {
        let exited = old_process.has_exited();
        async move { Ok(exited.then_some(())) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = poller.await?;
    assert!(
        failed.is_empty(),
        "{} requests failed during the upgrade: {failed:?}",
        failed.len()
    );
    assert!(ok > 50, "only {ok} requests ran");
    assert!(!new.has_exited(), "{}", new.log_tail(30));

    // The new gateway serves the same sessions from the same database.
    let owner = Created::token(&created.owner_link);
    let client = reqwest::Client::builder()
        .resolve(DOMAIN, old.addr)
        .build()?;
    let response = client
        .get(format!(
            "http://{DOMAIN}:{}/api/sessions/{}",
            old.addr.port(),
            created.id
        ))
        .bearer_auth(&owner)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    Ok(())
}
