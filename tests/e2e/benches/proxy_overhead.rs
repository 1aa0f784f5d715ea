//! What the gateway's proxy costs, in one run: the same upstream reached directly (the
//! baseline), through nginx configured as the same reverse proxy, and through the gateway (a
//! session's public forwarded port, `port-<N>-<id>.<domain>`, process runtime).
//!
//! - HTTP: `wrk -t1 -c64 -d10s` against `GET /` (a 64-byte body): requests/s and latency
//!   percentiles (from a wrk Lua `done()` hook), plus the CPU time the proxy's processes and the
//!   upstream spent per request.
//! - WebSocket: 1,000 connections open at once through each arm, each sending a timestamped
//!   text message every 100 ms for 5 s to an echo server; round-trip latency p50/p99.
//!
//! The upstream (axum, its own 2-thread runtime) and the WebSocket clients (another 2-thread
//! runtime) run in this process; nginx and the gateway get 2 workers each. The CI machine has
//! 2 cores, shared by the load generator, the proxy and the upstream, so a proxied arm competes
//! for the CPU the direct arm has to itself: the ratios are the point, not absolute figures.
//!
//!   cargo build --release -p huddle-gateway -p huddle-agent
//!   cargo bench -p huddle-e2e --bench proxy_overhead
//!
//! Needs `wrk` and `nginx` (scripts/install-deps.sh), and about 2 open files per WebSocket: the
//! bench raises its own soft limit with `prlimit` when it can (else run `ulimit -n 65536`).
//!
//! Environment: `BENCH_HTTP_SECONDS` (10), `BENCH_HTTP_CONNECTIONS` (64),
//! `BENCH_WS_CONNECTIONS` (1000), `BENCH_WS_SECONDS` (5), `BENCH_WS_INTERVAL_MS` (100),
//! `BENCH_ARMS` (`direct,nginx,gateway,nginx-self,gateway-self`: the arms to run; the `-self`
//! arms ask nginx and the gateway for `/healthz`, which they answer without the upstream),
//! `BENCH_WORKERS` (2: nginx's workers and the gateway's threads).
//! The gateway's log is written to `$HUDDLE_ARTIFACTS/bench-proxy-gateway.log`, at level `warn`
//! unless `BENCH_GATEWAY_LOG` says otherwise (a `RUST_LOG` filter).

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::{SinkExt as _, StreamExt as _, TryStreamExt as _};
use huddle_test_harness::{artifacts_dir, free_local_addr, workspace_binary};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const DOMAIN: &str = "huddle.test";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// The upstream's `GET /` body: 64 bytes.
const BODY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// nginx's worker processes and the gateway's proxy threads (`BENCH_WORKERS`, default 2: the
/// machine's cores).
fn workers() -> usize {
    std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}
/// Every WebSocket message is a 20-digit send time (ns) and this.
const WS_TAG: &str = " huddle-bench";
/// Seconds of wrk before each measured run (connection pools, caches).
const WARM_UP_SECONDS: u64 = 2;
/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/100 s (USER_HZ on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Connections the upstream has accepted: a proxy that reuses its upstream connections opens
/// a handful per run, one that does not opens one per request.
static UPSTREAM_CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn upstream_connections() -> u64 {
    UPSTREAM_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// wrk's Lua hook: one JSON line with the summary, latencies in microseconds.
const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,' ..
    '"status":%.0f,"timeout":%.0f,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

struct Settings {
    http_seconds: u64,
    http_connections: u64,
    ws_connections: u64,
    ws_seconds: u64,
    ws_interval: Duration,
    /// The arms to run (`BENCH_ARMS`, comma-separated; all three by default).
    arms: Vec<String>,
}

impl Settings {
    fn from_env() -> Self {
        fn number(name: &str, default: u64) -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(default)
        }
        Self {
            http_seconds: number("BENCH_HTTP_SECONDS", 10),
            http_connections: number("BENCH_HTTP_CONNECTIONS", 64),
            ws_connections: number("BENCH_WS_CONNECTIONS", 1000),
            ws_seconds: number("BENCH_WS_SECONDS", 5),
            ws_interval: Duration::from_millis(number("BENCH_WS_INTERVAL_MS", 100)),
            arms: std::env::var("BENCH_ARMS")
                .unwrap_or_else(|_| "direct,nginx,gateway,nginx-self,gateway-self".to_owned())
                .split(',')
                .map(|arm| arm.trim().to_owned())
                .collect(),
        }
    }

    fn wants(&self, arm: &str) -> bool {
        self.arms.iter().any(|wanted| wanted == arm)
    }

    /// Open files this process (and each proxy) needs: the WebSocket clients and the
    /// upstream's side of each, wrk's connections, and room for everything else.
    fn open_files(&self) -> u64 {
        2 * (self.ws_connections + self.http_connections) + 1024
    }
}

fn main() -> Result<()> {
    let settings = Settings::from_env();
    raise_open_file_limit(settings.open_files())?;
    // The upstream gets a runtime of its own so the WebSocket clients' tasks do not queue
    // behind its connections (or the other way round).
    let upstream_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("upstream")
        .enable_all()
        .build()?;
    let upstream = upstream_runtime.block_on(start_upstream())?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()?;
    let result = clients.block_on(bench(&settings, upstream));
    clients.shutdown_timeout(Duration::from_secs(1));
    upstream_runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn bench(settings: &Settings, upstream: SocketAddr) -> Result<()> {
    println!(
        "==> upstream on {upstream}: GET / ({} bytes), GET /ws (echo)",
        BODY.len()
    );
    let mut arms = Vec::new();
    if settings.wants("direct") {
        arms.push(Arm::new("direct", upstream, None));
    }

    let gateway = if settings.wants("gateway") {
        println!(
            "==> gateway: starting huddle-gateway (process runtime, {} threads)",
            workers()
        );
        Some(start_gateway(upstream).await)
    } else {
        None
    };
    let (gateway, host) = match gateway.transpose() {
        Ok(Some(gateway)) => {
            println!("==> gateway ready on {}: {}", gateway.addr, gateway.host);
            let host = gateway.host.clone();
            (Ok(Some(gateway)), host)
        }
        Ok(None) => (Ok(None), placeholder_host(upstream)),
        Err(error) => {
            println!("==> gateway FAILED: {error:#}");
            // nginx and the direct arm still run, with a Host of the same shape.
            (Err(error), placeholder_host(upstream))
        }
    };

    let nginx = if settings.wants("nginx") {
        println!(
            "==> nginx: starting with {} workers, proxying {host}",
            workers()
        );
        Some(start_nginx(upstream, &host, settings).await)
    } else {
        None
    };
    match &nginx {
        None => {}
        Some(Ok(nginx)) => {
            println!("==> nginx ready on {}", nginx.addr);
            arms.push(Arm::new("nginx", nginx.addr, Some(nginx.process.pid())));
            if settings.wants("nginx-self") {
                arms.push(Arm::answering_itself(
                    "nginx-self",
                    nginx.addr,
                    nginx.process.pid(),
                ));
            }
        }
        Some(Err(error)) => {
            println!("==> nginx FAILED: {error:#}");
            arms.push(Arm::failed("nginx", error));
        }
    }
    match &gateway {
        Ok(None) => {}
        Ok(Some(gateway)) => {
            arms.push(Arm::new(
                "gateway",
                gateway.addr,
                Some(gateway.process.pid()),
            ));
            if settings.wants("gateway-self") {
                arms.push(Arm::answering_itself(
                    "gateway-self",
                    gateway.addr,
                    gateway.process.pid(),
                ));
            }
        }
        Err(error) => arms.push(Arm::failed("gateway", error)),
    }

    let scratch = tempfile::tempdir()?;
    let script = scratch.path().join("report.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    for arm in &mut arms {
        if arm.failure.is_some() {
            continue;
        }
        println!(
            "==> HTTP {}: wrk -t1 -c{} -d{}s (after {WARM_UP_SECONDS} s warm-up)",
            arm.name, settings.http_connections, settings.http_seconds
        );
        let result = run_wrk(
            arm,
            &host,
            &script,
            WARM_UP_SECONDS,
            settings.http_connections,
        )
        .and_then(|_| {
            run_wrk(
                arm,
                &host,
                &script,
                settings.http_seconds,
                settings.http_connections,
            )
        });
        match result {
            Ok(figures) => arm.http = Some(figures),
            Err(error) => {
                println!("==> HTTP {} FAILED: {error:#}", arm.name);
                arm.failure = Some(format!("HTTP: {error:#}"));
            }
        }
    }

    for arm in &mut arms {
        if arm.failure.is_some() || !arm.websocket {
            continue;
        }
        println!(
            "==> WebSocket {}: {} connections, a message every {} ms each for {} s",
            arm.name,
            settings.ws_connections,
            settings.ws_interval.as_millis(),
            settings.ws_seconds
        );
        match run_websockets(arm, &host, settings).await {
            Ok(figures) => {
                // The figures of the connections that worked are still reported.
                if let Some(problem) = figures.problem(settings.ws_connections) {
                    println!("==> WebSocket {} FAILED: {problem}", arm.name);
                    arm.failure = Some(format!("WebSocket: {problem}"));
                }
                arm.ws = Some(figures);
            }
            Err(error) => {
                println!("==> WebSocket {} FAILED: {error:#}", arm.name);
                arm.failure = Some(format!("WebSocket: {error:#}"));
            }
        }
        // Let the closed connections drain before the next arm.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    println!("==> stopping nginx and the gateway");
    drop(nginx);
    if let Ok(Some(gateway)) = gateway {
        gateway.process.stop();
    }

    report(settings, &host, &arms);
    let failed: Vec<String> = arms
        .iter()
        .filter_map(|arm| Some(format!("{}: {}", arm.name, arm.failure.as_ref()?)))
        .collect();
    if !failed.is_empty() {
        bail!("{} arm(s) failed:\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}

/// A Host of the gateway's shape, for arms run without the gateway.
fn placeholder_host(upstream: SocketAddr) -> String {
    format!("port-{}-{}.{DOMAIN}", upstream.port(), "a".repeat(26))
}

/// One way of reaching the upstream, and what it measured.
struct Arm {
    name: &'static str,
    addr: SocketAddr,
    /// The HTTP path wrk asks for: `/` through to the upstream, or `/healthz`, which nginx and
    /// the gateway answer themselves (their floor: the cost of serving a request at all).
    path: &'static str,
    /// Whether the WebSocket part runs through this arm.
    websocket: bool,
    /// The proxy's main process (its CPU time is counted with its children's).
    proxy_pid: Option<u32>,
    failure: Option<String>,
    http: Option<HttpFigures>,
    ws: Option<WsFigures>,
}

impl Arm {
    fn new(name: &'static str, addr: SocketAddr, proxy_pid: Option<u32>) -> Self {
        Self {
            name,
            addr,
            path: "/",
            websocket: true,
            proxy_pid,
            failure: None,
            http: None,
            ws: None,
        }
    }

    /// The same proxy answering `/healthz` itself, HTTP only.
    fn answering_itself(name: &'static str, addr: SocketAddr, proxy_pid: u32) -> Self {
        Self {
            path: "/healthz",
            websocket: false,
            ..Self::new(name, addr, Some(proxy_pid))
        }
    }

    fn failed(name: &'static str, error: &anyhow::Error) -> Self {
        let mut arm = Self::new(name, SocketAddr::from(([127, 0, 0, 1], 0)), None);
        arm.failure = Some(format!("{error:#}"));
        arm
    }

    fn proxy_cpu_seconds(&self) -> Option<f64> {
        self.proxy_pid.map(tree_cpu_seconds)
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream, nginx and the gateway

async fn start_upstream() -> Result<SocketAddr> {
    use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
    use axum::serve::ListenerExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Like the proxies, the upstream sends small writes at once (no Nagle).
    let listener = listener.tap_io(|tcp| {
        UPSTREAM_CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { BODY }))
        .route(
            "/ws",
            axum::routing::get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        let echo = match message {
                            WsMessage::Text(_) | WsMessage::Binary(_) => message,
                            WsMessage::Close(_) => break,
                            _ => continue,
                        };
                        if socket.send(echo).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("upstream server stopped: {error}");
        }
    });
    Ok(addr)
}

/// nginx as a tuned reverse proxy, the configuration one would deploy: as many workers as the
/// gateway has threads, `reuseport` listeners, a keep-alive pool to the upstream over HTTP/1.1,
/// client and upstream connections kept for the whole run (the gateway does not close them
/// after N requests either), the standard WebSocket upgrade map (`Connection: ""` for plain
/// requests so upstream connections are reused), the same forwarded headers the gateway sets,
/// and no access log.
fn nginx_config(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    host: &str,
    files: u64,
) -> String {
    let dir = dir.display();
    let workers = workers();
    format!(
        r#"worker_processes {workers};
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile {files};
events {{
    worker_connections {files};
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' '';
    }}
    upstream session_port {{
        server {upstream};
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 75s;
    }}
    server {{
        listen {listen} reuseport;
        server_name {host};
        location = /healthz {{
            return 200 "ok";
        }}
        location / {{
            proxy_pass http://session_port;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"#
    )
}

struct Nginx {
    process: Managed,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start_nginx(upstream: SocketAddr, host: &str, settings: &Settings) -> Result<Nginx> {
    let dir = tempfile::tempdir()?;
    let addr = free_local_addr()?;
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        nginx_config(dir.path(), addr, upstream, host, settings.open_files()),
    )?;
    let log = dir.path().join("error.log");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(&log)
        .arg("-c")
        .arg(&config)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx (scripts/install-deps.sh installs it)")?;
    let mut process = Managed::new("nginx", child, log, Duration::from_secs(5));
    let client = client_for(host, addr)?;
    let url = format!("http://{host}:{}/", addr.port());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(&url).send().await {
            ensure!(
                response.status() == 200,
                "nginx answered {}",
                response.status()
            );
            return Ok(Nginx {
                process,
                addr,
                _dir: dir,
            });
        }
        if process.exited() || Instant::now() > deadline {
            bail!("nginx did not start:\n{}", process.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Gateway {
    process: Managed,
    addr: SocketAddr,
    /// `port-<upstream port>-<session id>.huddle.test`
    host: String,
    _data: tempfile::TempDir,
}

/// Starts the gateway with agents as local processes, creates a session that forwards the
/// upstream's port publicly, and waits until that port answers through the gateway.
async fn start_gateway(upstream: SocketAddr) -> Result<Gateway> {
    let binary = workspace_binary("huddle-gateway").context(
        "the gateway arm needs `cargo build --release -p huddle-gateway -p huddle-agent`",
    )?;
    let addr = free_local_addr()?;
    let internal = free_local_addr()?;
    let data = tempfile::tempdir()?;
    let log = artifacts_dir()?.join("bench-proxy-gateway.log");
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(&binary)
        .args(["--runtime", "process"])
        .args(["--listen", &addr.to_string()])
        .args(["--internal-listen", &internal.to_string()])
        .args(["--public-url", &format!("http://{DOMAIN}:{}", addr.port())])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--threads", &workers().to_string()])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_GATEWAY_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        // Settings the contract leaves to defaults, given as environment variables so an
        // older or newer gateway ignores them: a private upgrade socket (not the shared
        // /tmp default) and a short grace period on SIGTERM.
        .env("HUDDLE_UPGRADE_SOCKET", data.path().join("upgrade.sock"))
        .env("HUDDLE_GRACE_SECONDS", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut process = Managed::new("gateway", child, log, Duration::from_secs(15));

    let client = client_for(DOMAIN, addr)?;
    let base = format!("http://{DOMAIN}:{}", addr.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = client.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status() == 200) {
            break;
        }
        if process.exited() || Instant::now() > deadline {
            bail!(
                "the gateway did not answer /healthz:\n{}",
                process.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let response = client
        .post(format!("{base}/api/sessions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"ports": [{"port": upstream.port(), "visibility": "public"}]}))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status == 201, "POST /api/sessions: {status}: {text}");
    let created: Value = serde_json::from_str(&text).context("POST /api/sessions")?;
    let id = created["id"]
        .as_str()
        .with_context(|| format!("no session id in {text}"))?;
    let host = format!("port-{}-{id}.{DOMAIN}", upstream.port());

    // The gateway starts the session's agent first, answering 503 meanwhile.
    let client = client_for(&host, addr)?;
    let url = format!("http://{host}:{}/", addr.port());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match client.get(&url).send().await {
            Ok(response) if response.status() == 200 => {
                let body = response.text().await?;
                ensure!(
                    body == BODY,
                    "unexpected body through the gateway: {body:?}"
                );
                break;
            }
            Ok(response) => response.status().to_string(),
            Err(error) => error.to_string(),
        };
        if process.exited() || Instant::now() > deadline {
            bail!(
                "the forwarded port never answered 200 (last: {last}):\n{}",
                process.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Gateway {
        process,
        addr,
        host,
        _data: data,
    })
}

/// An HTTP client that sends `host` as the Host header and connects to `addr`.
fn client_for(host: &str, addr: SocketAddr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .resolve(host, addr)
        .timeout(Duration::from_secs(5))
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// HTTP with wrk

struct HttpFigures {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// wrk's read, write and timeout errors.
    socket_errors: u64,
    /// CPU time of the proxy's processes per request (nginx master and workers; the gateway
    /// and its agent).
    proxy_cpu_us: Option<f64>,
    /// CPU time of this process's threads (the upstream) per request.
    upstream_cpu_us: f64,
    /// Connections the upstream accepted during the run.
    upstream_connections: u64,
}

fn run_wrk(
    arm: &Arm,
    host: &str,
    script: &Path,
    seconds: u64,
    connections: u64,
) -> Result<HttpFigures> {
    let proxy_before = arm.proxy_cpu_seconds();
    // This process's own threads: the upstream (the WebSocket clients are idle meanwhile).
    let upstream_before = cpu_seconds(std::process::id());
    let connections_before = upstream_connections();
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .args(["-H", &format!("Host: {host}")])
        .arg(format!("http://{}{}", arm.addr, arm.path))
        .stdin(Stdio::null())
        .output()
        .context("running wrk (scripts/install-deps.sh installs it)")?;
    let upstream_cpu = cpu_seconds(std::process::id()) - upstream_before;
    let upstream_connections = upstream_connections() - connections_before;
    let proxy_cpu = arm
        .proxy_cpu_seconds()
        .zip(proxy_before)
        .map(|(after, before)| after - before);
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed ({}): {text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("BENCH_JSON "))
        .with_context(|| format!("no summary from wrk:\n{text}"))?;
    let summary: HashMap<String, f64> = serde_json::from_str(line)?;
    let get = |key: &str| summary.get(key).copied().unwrap_or(0.0);
    ensure!(
        get("status") == 0.0,
        "{} of {} responses were not 2xx/3xx",
        get("status"),
        get("requests")
    );
    ensure!(
        get("connect") == 0.0,
        "{} connect errors:\n{text}",
        get("connect")
    );
    let requests = get("requests");
    ensure!(requests > 0.0, "no responses:\n{text}");
    Ok(HttpFigures {
        requests_per_second: requests / (get("duration_us") / 1e6),
        p50_ms: get("p50_us") / 1000.0,
        p99_ms: get("p99_us") / 1000.0,
        max_ms: get("max_us") / 1000.0,
        socket_errors: (get("read") + get("write") + get("timeout")) as u64,
        proxy_cpu_us: proxy_cpu.map(|s| s * 1e6 / requests),
        upstream_cpu_us: upstream_cpu * 1e6 / requests,
        upstream_connections,
    })
}

// ---------------------------------------------------------------------------------------------
// WebSocket echoes

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct WsFigures {
    /// Seconds to open all connections (at most 32 handshakes at a time).
    open_seconds: f64,
    /// Round-trip times in ms, sorted.
    samples: Vec<f64>,
    /// Proxy CPU time per echoed message (both directions).
    proxy_cpu_us: Option<f64>,
    /// Connections that ended with an error (their echoes are not in `samples`), and the first
    /// error.
    dropped: usize,
    first_error: Option<String>,
    /// Messages sent on the other connections that were never echoed.
    lost: u64,
}

impl WsFigures {
    /// Why the arm fails despite having figures.
    fn problem(&self, count: u64) -> Option<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.first_error {
            problems.push(format!(
                "{} of {count} connections dropped (first: {error})",
                self.dropped
            ));
        }
        if self.lost > 0 {
            problems.push(format!("{} messages never echoed", self.lost));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

async fn open_socket(url: String, host: String) -> Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("host", host.parse()?);
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(request, None, true),
    )
    .await
    .context("WebSocket handshake timed out")??;
    Ok(socket)
}

async fn run_websockets(arm: &Arm, host: &str, settings: &Settings) -> Result<WsFigures> {
    let count = settings.ws_connections;
    let url = format!("ws://{}/ws", arm.addr);
    let opening = Instant::now();
    let sockets: Vec<Socket> = futures::stream::iter(0..count)
        .map(|_| open_socket(url.clone(), host.to_owned()))
        .buffer_unordered(32)
        .try_collect()
        .await
        .context("opening the WebSockets")?;
    let open_seconds = opening.elapsed().as_secs_f64();

    // Every connection sends at the same rate; their first messages are spread evenly over
    // one interval so the load is steady.
    let base = Instant::now();
    let start = base + Duration::from_millis(200);
    let stop = start + Duration::from_secs(settings.ws_seconds);
    let interval = settings.ws_interval;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let first = start + interval.mul_f64(i as f64 / count as f64);
            tokio::spawn(echo_loop(socket, base, first, interval, stop))
        })
        .collect();
    tokio::time::sleep_until(start.into()).await;
    let cpu_start = arm.proxy_cpu_seconds();
    tokio::time::sleep_until(stop.into()).await;
    let cpu_stop = arm.proxy_cpu_seconds();

    let mut samples = Vec::new();
    let mut lost = 0;
    let mut errors = Vec::new();
    for task in tasks {
        match task.await? {
            Ok(connection) => {
                lost += connection.sent - connection.samples.len() as u64;
                samples.extend(connection.samples);
            }
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    ensure!(
        !samples.is_empty(),
        "no echoes; {} of {count} connections failed, first: {}",
        errors.len(),
        errors.first().map_or("none", String::as_str)
    );
    samples.sort_by(f64::total_cmp);
    let proxy_cpu_us = cpu_stop
        .zip(cpu_start)
        .map(|(after, before)| (after - before) * 1e6 / samples.len() as f64);
    Ok(WsFigures {
        open_seconds,
        samples,
        proxy_cpu_us,
        dropped: errors.len(),
        first_error: errors.into_iter().next(),
        lost,
    })
}

struct Connection {
    sent: u64,
    samples: Vec<f64>,
}

/// Sends a message stamped with its send time every `interval` from `first` until `stop`, and
/// times each echo; then waits (up to 5 s) for the missing echoes and closes.
async fn echo_loop(
    socket: Socket,
    base: Instant,
    first: Instant,
    interval: Duration,
    stop: Instant,
) -> Result<Connection> {
    let (mut tx, mut rx) = socket.split();
    let mut ticks = tokio::time::interval_at(first.into(), interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let give_up = tokio::time::sleep_until((stop + Duration::from_secs(5)).into());
    tokio::pin!(give_up);
    let mut sent = 0u64;
    let mut samples = Vec::new();
    let outcome: Result<()> = async {
        loop {
            let sending = Instant::now() < stop;
            if !sending && samples.len() as u64 == sent {
                break;
            }
            tokio::select! {
                _ = ticks.tick(), if sending => {
                    let now = Instant::now();
                    if now < stop {
                        let stamp = now.duration_since(base).as_nanos();
                        tx.send(Message::text(format!("{stamp:020}{WS_TAG}"))).await?;
                        sent += 1;
                    }
                }
                message = rx.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let now = Instant::now().duration_since(base).as_nanos();
                        let stamp: u128 = text
                            .split(' ')
                            .next()
                            .and_then(|stamp| stamp.parse().ok())
                            .with_context(|| format!("unexpected echo {:?}", text.as_str()))?;
                        samples.push(now.saturating_sub(stamp) as f64 / 1e6);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => bail!("closed by the other side"),
                },
                () = &mut give_up => break,
            }
        }
        Ok(())
    }
    .await;
    outcome.with_context(|| {
        format!(
            "{:.2} s into the run, after {sent} messages sent and {} echoed",
            Instant::now()
                .saturating_duration_since(first)
                .as_secs_f64(),
            samples.len()
        )
    })?;
    let _ = tx.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = rx.next().await {}
    })
    .await;
    Ok(Connection { sent, samples })
}

// ---------------------------------------------------------------------------------------------
// The report

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".to_owned(),
    }
}

/// CPU time in µs, or "-" for the direct arm (no proxy).
fn cpu_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} µs"))
}

fn report(settings: &Settings, host: &str, arms: &[Arm]) {
    let find = |name: &str| arms.iter().find(|arm| arm.name == name);
    let http = |name: &str| find(name).and_then(|arm| arm.http.as_ref());
    let ws = |name: &str| find(name).and_then(|arm| arm.ws.as_ref());

    println!(
        "\nHTTP: wrk -t1 -c{} -d{}s --latency -H 'Host: {host}' http://127.0.0.1:<port>/ ({}-byte body)",
        settings.http_connections,
        settings.http_seconds,
        BODY.len()
    );
    println!("(the -self arms: GET /healthz, answered by the proxy itself without the upstream)");
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>7} {:>13} {:>16} {:>12}",
        "arm",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "proxy CPU/req",
        "upstream CPU/req",
        "upstream TCP"
    );
    for arm in arms {
        match &arm.http {
            Some(f) => println!(
                "{:<12} {:>9.0} {:>8.3} {:>8.3} {:>8.2} {:>7} {:>13} {:>13.1} µs {:>12}",
                arm.name,
                f.requests_per_second,
                f.p50_ms,
                f.p99_ms,
                f.max_ms,
                f.socket_errors,
                cpu_cell(f.proxy_cpu_us),
                f.upstream_cpu_us,
                f.upstream_connections
            ),
            None => println!(
                "{:<12} FAILED: {}",
                arm.name,
                arm.failure.as_deref().unwrap_or("")
            ),
        }
    }
    for (a, b) in [
        ("gateway", "direct"),
        ("nginx", "direct"),
        ("gateway", "nginx"),
        ("gateway-self", "nginx-self"),
        ("gateway-self", "nginx"),
    ] {
        if http(a).is_none() || http(b).is_none() {
            continue;
        }
        let rps = |name| http(name).map(|f| f.requests_per_second);
        let p50 = |name| http(name).map(|f| f.p50_ms);
        let p99 = |name| http(name).map(|f| f.p99_ms);
        let cpu = |name| http(name).and_then(|f| f.proxy_cpu_us);
        println!(
            "{a}/{b}: req/s {}, p50 {}, p99 {}{}",
            ratio(rps(a), rps(b)),
            ratio(p50(a), p50(b)),
            ratio(p99(a), p99(b)),
            if b.starts_with("nginx") {
                format!(", proxy CPU/req {}", ratio(cpu(a), cpu(b)))
            } else {
                String::new()
            }
        );
    }

    println!(
        "\nWebSocket: {} connections at once, each a {}-byte message every {} ms for {} s, echoed",
        settings.ws_connections,
        20 + WS_TAG.len(),
        settings.ws_interval.as_millis(),
        settings.ws_seconds
    );
    println!(
        "{:<8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>13}",
        "arm", "open s", "dropped", "messages", "p50 ms", "p99 ms", "max ms", "proxy CPU/msg"
    );
    for arm in arms.iter().filter(|arm| arm.websocket) {
        match &arm.ws {
            Some(f) => println!(
                "{:<8} {:>8.2} {:>8} {:>9} {:>8.3} {:>8.3} {:>8.2} {:>13}",
                arm.name,
                f.open_seconds,
                f.dropped,
                f.samples.len(),
                percentile(&f.samples, 0.5),
                percentile(&f.samples, 0.99),
                percentile(&f.samples, 1.0),
                cpu_cell(f.proxy_cpu_us)
            ),
            None => println!(
                "{:<8} FAILED: {}",
                arm.name,
                arm.failure.as_deref().unwrap_or("")
            ),
        }
    }
    for (a, b) in [
        ("gateway", "direct"),
        ("nginx", "direct"),
        ("gateway", "nginx"),
    ] {
        let p = |name, q| ws(name).map(|f| percentile(&f.samples, q));
        println!(
            "{a}/{b}: p50 {}, p99 {}",
            ratio(p(a, 0.5), p(b, 0.5)),
            ratio(p(a, 0.99), p(b, 0.99)),
        );
    }

    // The issue's goal: within 10 % of direct, ahead of nginx.
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some(g), Some(d), Some(n)) = (http("gateway"), http("direct"), http("nginx")) {
        println!(
            "\ngoal, HTTP: within 10 % of direct (req/s ≥ 0.90×, p99 ≤ 1.10×): {}; ahead of nginx (req/s ≥, p99 ≤): {}",
            verdict(
                g.requests_per_second >= 0.9 * d.requests_per_second && g.p99_ms <= 1.1 * d.p99_ms
            ),
            verdict(g.requests_per_second >= n.requests_per_second && g.p99_ms <= n.p99_ms),
        );
    }
    if let (Some(g), Some(d), Some(n)) = (ws("gateway"), ws("direct"), ws("nginx")) {
        let p = |f: &WsFigures, q| percentile(&f.samples, q);
        println!(
            "goal, WebSocket: within 10 % of direct (p50, p99 ≤ 1.10×): {}; ahead of nginx (p50, p99 ≤): {}",
            verdict(p(g, 0.5) <= 1.1 * p(d, 0.5) && p(g, 0.99) <= 1.1 * p(d, 0.99)),
            verdict(p(g, 0.5) <= p(n, 0.5) && p(g, 0.99) <= p(n, 0.99)),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A process this bench started. Stopping it (or dropping it) sends SIGTERM and waits, then
/// SIGKILL; the processes it had started (nginx's workers, the gateway's agents) are stopped
/// too if they outlive it.
struct Managed {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
    patience: Duration,
}

impl Managed {
    fn new(name: &'static str, child: Child, log: PathBuf, patience: Duration) -> Self {
        Self {
            name,
            child: Some(child),
            log,
            patience,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let descendants = descendants(pid);
        signal(pid, "TERM");
        if !wait_for_exit(&mut child, self.patience) {
            eprintln!(
                "{} did not exit within {:?} of SIGTERM; killing it",
                self.name, self.patience
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        let survivors: Vec<_> = descendants
            .into_iter()
            .filter(|&(pid, started)| start_time(pid) == Some(started))
            .collect();
        for &(pid, _) in &survivors {
            signal(pid, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while survivors
            .iter()
            .any(|&(pid, started)| start_time(pid) == Some(started))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &(pid, started) in &survivors {
            if start_time(pid) == Some(started) {
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn wait_for_exit(child: &mut Child, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Fields of `/proc/<pid>/stat` after the command name (the first is the state, field 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// When the process started (ticks since boot): tells a process from a later one that reused
/// its id.
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// User and system CPU seconds of a running process (all its threads).
fn cpu_seconds(pid: u32) -> f64 {
    let Some(fields) = stat_fields(pid) else {
        return 0.0;
    };
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND
}

/// Every running descendant of `pid`, with its start time.
fn descendants(pid: u32) -> Vec<(u32, u64)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                && let Some(parent) = parent(child)
            {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for &child in children.get(&next).into_iter().flatten() {
            if let Some(started) = start_time(child) {
                found.push((child, started));
            }
            queue.push(child);
        }
    }
    found
}

/// CPU seconds of a process and all its running descendants.
fn tree_cpu_seconds(pid: u32) -> f64 {
    cpu_seconds(pid)
        + descendants(pid)
            .iter()
            .map(|&(child, _)| cpu_seconds(child))
            .sum::<f64>()
}

/// The soft and hard limits on open files of this process.
fn open_file_limits() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits")?;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .context("no open-file limit in /proc/self/limits")?;
    let mut words = line.split_whitespace().map(|w| match w {
        "unlimited" => Ok(u64::MAX),
        w => w.parse::<u64>().map_err(|e| anyhow!("{w:?}: {e}")),
    });
    let soft = words.next().context("soft limit")??;
    let hard = words.next().context("hard limit")??;
    Ok((soft, hard))
}

/// Raises this process's soft limit on open files to `need` (the children started later
/// inherit it), with util-linux's `prlimit`; raising the hard limit too needs root.
fn raise_open_file_limit(need: u64) -> Result<()> {
    let (soft, hard) = open_file_limits()?;
    if soft >= need {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    let target = need.max(65536);
    for limits in [
        format!("{target}:{}", hard.max(target)),
        format!("{}:{hard}", target.min(hard)),
    ] {
        let _ = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={limits}")])
            .stderr(Stdio::null())
            .status();
        if open_file_limits()?.0 >= need {
            break;
        }
    }
    let (raised, _) = open_file_limits()?;
    ensure!(
        raised >= need,
        "this run needs {need} open files and the limit is {raised} (hard {hard}); run `ulimit -n {target}` first"
    );
    println!("==> open-file limit raised from {soft} to {raised} (prlimit)");
    Ok(())
}
