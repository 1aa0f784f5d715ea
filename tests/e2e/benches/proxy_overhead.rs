//! What the gateway's proxy costs: the same upstream reached directly, through nginx configured
//! as the same reverse proxy, and through the gateway (a public forwarded port), in one run.
//!
//! - HTTP: `wrk` requests/s and p99 latency against a small fixed response.
//! - WebSocket: 1,000 concurrent connections, each sending a timestamped message every 200 ms;
//!   round-trip latency p50/p99 of the echoes.
//!
//! The machine has 2 cores, shared by wrk (or the WebSocket clients), the proxy and the
//! upstream, so the absolute numbers are small; the ratios are the point.
//!
//!   cargo build --release -p huddle-gateway -p huddle-agent
//!   cargo bench -p huddle-e2e --bench proxy_overhead
//!
//! Environment: `BENCH_SECONDS` (per wrk run, default 8), `BENCH_CONNECTIONS` (wrk, 50),
//! `BENCH_WS` (WebSocket connections, 1000).

use anyhow::{Context as _, Result, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use huddle_test_harness::{Process, free_local_addr};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const DOMAIN: &str = "huddle.test";
const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const BODY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// nginx and the gateway each get this many worker threads/processes.
const WORKERS: usize = 2;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One way to reach the upstream.
struct Arm {
    name: &'static str,
    addr: SocketAddr,
    host: String,
}

async fn start_upstream() -> Result<SocketAddr> {
    use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { BODY }))
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
    Ok(addr)
}

/// nginx as a tuned reverse proxy: keep-alive upstream pool, HTTP/1.1, WebSocket upgrade
/// headers, no access log, as many workers as the gateway has threads.
fn start_nginx(upstream: SocketAddr, host: &str) -> Result<(Child, SocketAddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let listen = free_local_addr()?;
    let prefix = dir.path();
    std::fs::create_dir_all(prefix.join("logs"))?;
    let config = format!(
        r#"worker_processes {WORKERS};
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream app {{ server {upstream}; keepalive 64; }}
    server {{
        listen {listen} reuseport;
        server_name {host};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"#,
        prefix = prefix.display()
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, config)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx (scripts/install-deps.sh installs nginx-light)")?;
    Ok((child, listen, dir))
}

/// The gateway with the process runtime; a session forwarding the upstream's port publicly.
async fn start_gateway(
    upstream: SocketAddr,
) -> Result<(Process, SocketAddr, String, tempfile::TempDir)> {
    let addr = free_local_addr()?;
    let internal = free_local_addr()?;
    let data = tempfile::tempdir()?;
    let args = vec![
        "--runtime=process".to_owned(),
        format!("--listen={addr}"),
        format!("--internal-listen={internal}"),
        format!("--public-url=http://{DOMAIN}:{}", addr.port()),
        format!("--data-dir={}", data.path().display()),
        format!("--admin-token={ADMIN}"),
        format!("--threads={WORKERS}"),
        format!(
            "--upgrade-socket={}",
            data.path().join("upgrade.sock").display()
        ),
    ];
    let process = Process::start("huddle-gateway", "bench-proxy-gateway", &args)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve(DOMAIN, addr)
        .build()?;
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("http://{DOMAIN}:{}/healthz", addr.port()))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(up, "the gateway did not start: {}", process.log_tail(20));
    let created: Value = client
        .post(format!("http://{DOMAIN}:{}/api/sessions", addr.port()))
        .bearer_auth(ADMIN)
        .json(&json!({"ports": [{"port": upstream.port(), "visibility": "public"}]}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("no session id")?;
    let host = format!("port-{}-{id}.{DOMAIN}", upstream.port());
    let port_client = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, addr)
        .build()?;
    for _ in 0..600 {
        let response = port_client
            .get(format!("http://{host}:{}/", addr.port()))
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == 200) {
            return Ok((process, addr, host, data));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the session never became ready: {}", process.log_tail(20))
}

/// wrk's requests/s and latency percentiles (ms).
struct HttpFigures {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_latency(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn run_wrk(arm: &Arm, seconds: u64, connections: u64) -> Result<HttpFigures> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Host: {}", arm.host)])
        .arg(format!("http://{}/", arm.addr))
        .output()
        .context("running wrk (scripts/install-deps.sh installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {text}");
    ensure!(
        !text.contains("Non-2xx"),
        "{}: wrk saw errors:\n{text}",
        arm.name
    );
    let mut figures = HttpFigures {
        requests_per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => {
                figures.requests_per_second =
                    words.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
            }
            Some("50%") => figures.p50_ms = words.next().and_then(parse_latency).unwrap_or(0.0),
            Some("99%") => figures.p99_ms = words.next().and_then(parse_latency).unwrap_or(0.0),
            _ => {}
        }
    }
    ensure!(
        figures.requests_per_second > 0.0,
        "no figures from wrk:\n{text}"
    );
    Ok(figures)
}

/// Round-trip times (ms) of echoes on `count` WebSockets open at once.
async fn run_websockets(arm: &Arm, count: u64, seconds: u64) -> Result<Vec<f64>> {
    let mut sockets = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut request = format!("ws://{}/ws", arm.addr).into_client_request()?;
        request.headers_mut().insert("host", arm.host.parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("{}: opening WebSocket {}", arm.name, sockets.len()))?;
        sockets.push(ws);
    }
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            // Spread the connections over the interval so the load is steady.
            tokio::time::sleep(Duration::from_micros((i as u64 % 200) * 1000)).await;
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let payload = format!("{:?}", sent.duration_since(started));
                if tx
                    .send(Message::Text(payload.clone().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                loop {
                    match rx.next().await {
                        Some(Ok(Message::Text(text))) if text.as_str() == payload => {
                            mine.push(sent.elapsed().as_secs_f64() * 1000.0);
                            break;
                        }
                        Some(Ok(_)) => {}
                        _ => return mine,
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = tx.send(Message::Close(None)).await;
            mine
        }));
    }
    for task in tasks {
        let mine = task.await?;
        samples.lock().await.extend(mine);
    }
    let mut samples = Arc::try_unwrap(samples)
        .map_err(|_| anyhow::anyhow!("samples still shared"))?
        .into_inner();
    samples.sort_by(f64::total_cmp);
    ensure!(!samples.is_empty(), "{}: no echoes", arm.name);
    Ok(samples)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> Result<()> {
    let seconds = env_number("BENCH_SECONDS", 8);
    let connections = env_number("BENCH_CONNECTIONS", 50);
    let websockets = env_number("BENCH_WS", 1000);
    println!("==> starting the upstream, nginx and the gateway");
    let upstream = start_upstream().await?;
    let (_gateway, gateway_addr, gateway_host, _gateway_data) = start_gateway(upstream).await?;
    let (mut nginx, nginx_addr, _nginx_dir) = start_nginx(upstream, &gateway_host)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arms = [
        Arm {
            name: "direct",
            addr: upstream,
            host: gateway_host.clone(),
        },
        Arm {
            name: "nginx",
            addr: nginx_addr,
            host: gateway_host.clone(),
        },
        Arm {
            name: "gateway",
            addr: gateway_addr,
            host: gateway_host.clone(),
        },
    ];

    let mut http = Vec::new();
    for arm in &arms {
        println!(
            "==> HTTP through {}: wrk -t1 -c{connections} -d{seconds}s",
            arm.name
        );
        // A short warm-up so connection pools and caches are filled.
        run_wrk(arm, 1, connections)?;
        http.push(run_wrk(arm, seconds, connections)?);
    }
    let mut ws = Vec::new();
    for arm in &arms {
        println!(
            "==> WebSocket through {}: {websockets} connections, 5 s",
            arm.name
        );
        ws.push(run_websockets(arm, websockets, 5).await?);
    }
    let _ = nginx.kill();
    let _ = nginx.wait();

    println!("\nHTTP (wrk, {connections} connections, {seconds} s, 64-byte body)");
    println!(
        "{:<8} {:>10} {:>9} {:>9}",
        "arm", "req/s", "p50 ms", "p99 ms"
    );
    for (arm, figures) in arms.iter().zip(&http) {
        println!(
            "{:<8} {:>10.0} {:>9.2} {:>9.2}",
            arm.name, figures.requests_per_second, figures.p50_ms, figures.p99_ms
        );
    }
    let (direct, nginx, gateway) = (&http[0], &http[1], &http[2]);
    println!(
        "ratios: gateway/direct req/s {:.2}, p99 {:.2}; nginx/direct req/s {:.2}, p99 {:.2}; gateway/nginx req/s {:.2}, p99 {:.2}",
        gateway.requests_per_second / direct.requests_per_second,
        gateway.p99_ms / direct.p99_ms,
        nginx.requests_per_second / direct.requests_per_second,
        nginx.p99_ms / direct.p99_ms,
        gateway.requests_per_second / nginx.requests_per_second,
        gateway.p99_ms / nginx.p99_ms,
    );
    println!("\nWebSocket ({websockets} concurrent connections, one message per 200 ms each)");
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9}",
        "arm", "messages", "p50 ms", "p99 ms", "max ms"
    );
    for (arm, samples) in arms.iter().zip(&ws) {
        println!(
            "{:<8} {:>9} {:>9.2} {:>9.2} {:>9.2}",
            arm.name,
            samples.len(),
            percentile(samples, 0.5),
            percentile(samples, 0.99),
            percentile(samples, 1.0)
        );
    }
    let p = |i: usize, q: f64| percentile(&ws[i], q);
    println!(
        "ratios: gateway/direct p50 {:.2}, p99 {:.2}; gateway/nginx p50 {:.2}, p99 {:.2}",
        p(2, 0.5) / p(0, 0.5),
        p(2, 0.99) / p(0, 0.99),
        p(2, 0.5) / p(1, 0.5),
        p(2, 0.99) / p(1, 0.99),
    );
    Ok(())
}
