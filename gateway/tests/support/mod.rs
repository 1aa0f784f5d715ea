//! A real gateway process for a test: the `huddle-gateway` binary with the process runtime,
//! starting real `huddle-agent` processes, on loopback ports of its own, with its own data
//! folder. Requests go to it with the Host headers a browser would send (the domain is
//! `huddle.test`, resolved to the gateway's loopback address by the test's HTTP client).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use huddle_test_harness::{Process, free_local_addr, poll_until};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const DOMAIN: &str = "huddle.test";
pub const ADMIN: &str = "test-admin-token-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(30);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Options for [`Gateway::start`].
#[derive(Default, Clone)]
pub struct Options {
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub extra: Vec<String>,
    /// Reuse this data folder (a restarted gateway).
    pub data_dir: Option<std::path::PathBuf>,
}

pub struct Gateway {
    pub process: Process,
    pub addr: SocketAddr,
    pub internal: SocketAddr,
    pub data: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// What `POST /api/sessions` answers.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub id: String,
    pub url: String,
    pub owner_link: String,
    pub editor_link: String,
    pub viewer_link: String,
}

impl Created {
    /// The token in a link (`…?token=<token>`).
    pub fn token(link: &str) -> String {
        link.split("token=").nth(1).unwrap_or_default().to_owned()
    }
}

impl Gateway {
    pub async fn start(name: &str, options: Options) -> Result<Self> {
        let addr = free_local_addr()?;
        let internal = free_local_addr()?;
        let (data, dir) = match &options.data_dir {
            Some(path) => (path.clone(), None),
            // Under the artifacts folder, so the agents' logs (`logs/<id>.log`) outlive a
            // failed run.
            None => {
                let path = huddle_test_harness::artifacts_dir()?.join(format!("{name}-data"));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path)?;
                (path, None)
            }
        };
        let mut args = vec![
            "--runtime=process".to_owned(),
            format!("--listen={addr}"),
            format!("--internal-listen={internal}"),
            format!("--public-url=http://{DOMAIN}:{}", addr.port()),
            format!("--data-dir={}", data.display()),
            format!("--admin-token={ADMIN}"),
            format!("--upgrade-socket={}", data.join("upgrade.sock").display()),
            "--gc-interval=1s".to_owned(),
            "--activity-flush=1s".to_owned(),
            "--stop-warning=3s".to_owned(),
            "--api-rate=200".to_owned(),
        ];
        if let Some(url) = &options.database_url {
            args.push(format!("--database-url={url}"));
        }
        if let Some(url) = &options.redis_url {
            args.push(format!("--redis-url={url}"));
        }
        // Options given by the test win over the defaults above.
        let flag = |arg: &str| arg.split('=').next().unwrap_or("").to_owned();
        let overridden: Vec<String> = options.extra.iter().map(|a| flag(a)).collect();
        args.retain(|arg| !overridden.contains(&flag(arg)));
        args.extend(options.extra.iter().cloned());
        let process = Process::start("huddle-gateway", name, &args)?;
        let gateway = Self {
            process,
            addr,
            internal,
            data,
            _dir: dir,
        };
        let client = gateway.client(&[]);
        poll_until("the gateway answers /healthz", WAIT, || {
            let client = client.clone();
            let url = gateway.url("/healthz");
            async move {
                Ok(client
                    .get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ()))
            }
        })
        .await
        .with_context(|| gateway.process.log_tail(40))?;
        Ok(gateway)
    }

    /// `http://huddle.test:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{DOMAIN}:{}{path}", self.addr.port())
    }

    /// `http://port-<N>-<id>.huddle.test:<port><path>`.
    pub fn port_url(&self, id: &str, port: u16, path: &str) -> String {
        format!("http://{}:{}{path}", port_host(id, port), self.addr.port())
    }

    /// An HTTP client that resolves the domain (and the given port hosts) to the gateway and
    /// does not follow redirects, so each step can be checked.
    pub fn client(&self, port_hosts: &[String]) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(DOMAIN, self.addr)
            .timeout(Duration::from_secs(30));
        for host in port_hosts {
            builder = builder.resolve(host, self.addr);
        }
        builder.build().unwrap_or_default()
    }

    /// Creates a session through the API as the admin.
    pub async fn create(&self, body: Value) -> Result<Created> {
        let response = self
            .client(&[])
            .post(self.url("/api/sessions"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status == 201, "create answered {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// Opens a link like a browser: the gateway answers with a cookie and a redirect.
    /// Returns the session cookie's value.
    pub async fn open_link(&self, link: &str) -> Result<String> {
        let response = self.client(&[]).get(link).send().await?;
        ensure!(
            response.status() == 303,
            "opening the link answered {}",
            response.status()
        );
        cookie_from(&response, "huddle_session").context("no session cookie")
    }

    /// Waits until `GET /s/<id>/` with `token` reaches the agent (its banner).
    pub async fn wait_ready(&self, id: &str, token: &str) -> Result<()> {
        let client = self.client(&[]);
        let url = self.url(&format!("/s/{id}/version"));
        poll_until(
            "the session's agent answers through the gateway",
            WAIT,
            || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let response = client.get(&url).bearer_auth(token).send().await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let body = r.text().await.unwrap_or_default();
                            Ok(body.starts_with("huddle-agent").then_some(()))
                        }
                        _ => Ok(None),
                    }
                }
            },
        )
        .await
        .with_context(|| self.process.log_tail(40))
    }

    /// A WebSocket to the session's agent through the gateway, joined with `token`.
    pub async fn join(&self, id: &str, token: &str, client_id: &str) -> Result<(Ws, Value)> {
        let mut ws = self
            .websocket(&format!("/s/{id}/ws?token={token}"), DOMAIN, None)
            .await?;
        send_json(
            &mut ws,
            json!({"type": "join", "version": 1, "token": token, "client_id": client_id}),
        )
        .await?;
        let welcome = recv_type(&mut ws, "welcome").await?;
        Ok((ws, welcome))
    }

    /// A raw WebSocket through the gateway with a given Host and optional Cookie header.
    pub async fn websocket(&self, path: &str, host: &str, cookie: Option<&str>) -> Result<Ws> {
        let mut request = format!("ws://{}{path}", self.addr).into_client_request()?;
        request
            .headers_mut()
            .insert("host", format!("{host}:{}", self.addr.port()).parse()?);
        if let Some(cookie) = cookie {
            request.headers_mut().insert("cookie", cookie.parse()?);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(ws)
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .client(&[])
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

pub fn port_host(id: &str, port: u16) -> String {
    format!("port-{port}-{id}.{DOMAIN}")
}

/// The value of cookie `name` in a response's Set-Cookie headers.
pub fn cookie_from(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?;
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

pub async fn send_json(ws: &mut Ws, value: Value) -> Result<()> {
    ws.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

/// The next message of type `kind`, skipping others (presence, checksums, …).
pub async fn recv_type(ws: &mut Ws, kind: &str) -> Result<Value> {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text)?;
                    if value["type"] == kind {
                        return Ok(value);
                    }
                    if value["type"] == "error" && kind != "error" {
                        bail!("the agent answered an error: {value}");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("the WebSocket failed: {error}"),
                None => bail!("the WebSocket closed"),
            }
        }
    })
    .await
    .with_context(|| format!("no {kind:?} message"))?
}

/// A tiny HTTP + WebSocket server a session "runs" on a loopback port (the process runtime's
/// forwarded ports are this machine's): `GET /` answers `hello from <port>`, `/ws` echoes.
pub async fn start_app_server() -> Result<u16> {
    use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move |headers: axum::http::HeaderMap| async move {
                // Shows which cookies reached the app, so tests can check none of ours do.
                let cookies = headers
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                format!("hello from {port}; cookies: {cookies}")
            }),
        )
        // A route that refuses WebSockets the way many apps do: a plain answer with a body,
        // once with a length and once chunked.
        .route(
            "/ws-refused",
            axum::routing::get(|| async { (axum::http::StatusCode::FORBIDDEN, "no sockets here") }),
        )
        .route(
            "/ws-refused-chunked",
            axum::routing::get(|| async {
                let parts = ["no sockets ", "here either"]
                    .map(|part| Ok::<_, std::convert::Infallible>(part.to_owned()));
                (
                    axum::http::StatusCode::FORBIDDEN,
                    axum::body::Body::from_stream(futures::stream::iter(parts)),
                )
            }),
        )
        .route(
            "/ws",
            axum::routing::get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        if let AxumMessage::Text(text) = message
                            && socket.send(AxumMessage::Text(text)).await.is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// Reads the text of `file` by opening it on a joined WebSocket.
pub async fn open_document(ws: &mut Ws, file: &str) -> Result<(u64, String)> {
    send_json(ws, json!({"type": "open", "file": file})).await?;
    let document = recv_type(ws, "document").await?;
    Ok((
        document["rev"].as_u64().unwrap_or_default(),
        document["text"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Counts rows per key in a list of JSON objects (helper for audit checks).
pub fn count_by(values: &[Value], key: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for value in values {
        *counts
            .entry(value[key].as_str().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// A PostgreSQL server of the test's own (Debian's binaries), so the test can stop it and
/// start it again without disturbing other tests.
pub struct TempPostgres {
    pub port: u16,
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    server: Option<std::process::Child>,
}

fn as_postgres(program: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(program);
    command
}

impl TempPostgres {
    pub fn start() -> Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .max()
            .context("PostgreSQL is not installed (scripts/install-deps.sh installs it)")?;
        let dir = tempfile::Builder::new().prefix("huddle-pg").tempdir()?;
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir.path())
            .status()?;
        ensure!(chown.success(), "chown failed");
        let data = dir.path().join("data");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "huddle", "--auth=trust", "-E", "UTF8"])
            .output()?;
        ensure!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_local_addr()?.port();
        let mut postgres = Self {
            port,
            bin,
            dir,
            server: None,
        };
        postgres.resume()?;
        Ok(postgres)
    }

    pub fn url(&self) -> String {
        format!("postgres://huddle@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same data and port, and waits until it accepts.
    pub fn resume(&mut self) -> Result<()> {
        let child = as_postgres(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        self.server = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("postgres did not start")
    }

    /// Stops the server at once (SIGQUIT: immediate shutdown, as close to a crash as is polite).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.server.take() {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
