//! `huddle-gateway`: Huddle's front door.
//!
//! One process runs two servers: the pingora proxy on `--listen` (everything browsers reach)
//! and the gateway's own axum server on `--internal-listen` (REST API and pages, reached through
//! the proxy; the snapshot store, reached by agents). The shared parts — store, registry,
//! runtime, idle sweep — live on one tokio runtime of their own, which pingora's worker
//! runtimes call into.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

/// mimalloc instead of glibc's malloc: proxying small requests allocates and frees per request
/// on every worker thread, and glibc's arenas showed as ~10 % of the gateway's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::Parser as _;
use huddle_gateway::auth::Keys;
use huddle_gateway::config::{Config, RuntimeKind};
use huddle_gateway::gc::Sweeper;
use huddle_gateway::proxy::Gateway;
use huddle_gateway::ratelimit::RateLimiter;
use huddle_gateway::registry::Registry;
use huddle_gateway::revoke::Revocable;
use huddle_gateway::runtime::{
    DockerLauncher, KubernetesRuntime, Launcher, LocalRuntime, ProcessLauncher, Runtime,
};
use huddle_gateway::sessions::Sessions;
use huddle_gateway::store::Store;
use huddle_gateway::{api, watch};
use huddle_protocol::token::{MIN_KEY_LEN, TokenKey};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};

fn main() -> anyhow::Result<()> {
    huddle_telemetry::init();
    let config = Config::parse();
    let core = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("huddle-core")
        .enable_all()
        .build()
        .context("starting the gateway's runtime")?;
    let sessions = core.block_on(build(&config))?;

    let internal = core
        .block_on(tokio::net::TcpListener::bind(config.internal_listen))
        .with_context(|| format!("cannot listen on {}", config.internal_listen))?;
    let internal_addr = internal.local_addr()?;
    let api_state = api::ApiState {
        sessions: sessions.clone(),
        public_url: config.public_url.clone(),
        domain: config.domain(),
        open_creation: config.open_creation,
        invite_ttl: config.invite_ttl,
        default_idle_timeout: config.default_idle_timeout,
        secure_cookies: config.secure_cookies(),
        web_dir: huddle_web::has_page(&config.web_dir, huddle_web::LANDING_PAGE)
            .then(|| config.web_dir.clone()),
    };
    core.spawn(async move {
        if let Err(error) = axum::serve(internal, api::router(api_state)).await {
            tracing::error!(%error, "the internal server stopped");
        }
    });
    let revocable = Revocable::default();
    core.spawn(watch::run(sessions.clone(), revocable.clone()));
    core.spawn(sessions.activity.clone().run_flusher(
        sessions.registry.clone(),
        sessions.store.clone(),
        config.activity_flush,
    ));
    core.spawn(Sweeper::new(sessions.clone(), config.stop_warning).run(config.gc_interval));

    let opt = Opt {
        upgrade: config.upgrade,
        ..Opt::default()
    };
    let server_conf = ServerConf {
        threads: config.threads.max(1),
        upgrade_sock: config.upgrade_socket.display().to_string(),
        pid_file: config.data_dir().join("gateway.pid").display().to_string(),
        grace_period_seconds: Some(config.grace_seconds),
        graceful_shutdown_timeout_seconds: Some(config.grace_seconds),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();
    let gateway = Gateway {
        sessions: sessions.clone(),
        domain: config.domain(),
        public_url: config.public_url.clone(),
        internal: internal_addr,
        secure: config.secure_cookies(),
        limiter: RateLimiter::new(config.api_rate),
        revocable,
        max_body_bytes: config.max_body_bytes,
    };
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    server.add_service(background_service(
        "stop local agents on exit",
        StopOnExit {
            runtime: Arc::clone(&sessions.runtime),
            core: core.handle().clone(),
        },
    ));
    tracing::info!(listen = %config.listen, internal = %internal_addr, runtime = ?config.runtime, "huddle-gateway started");
    println!("Huddle is running: open {}", config.public_url);
    server.run_forever()
}

/// Connects the store, registry and runtime.
async fn build(config: &Config) -> anyhow::Result<Sessions> {
    let data_dir = config.data_dir();
    let local = config.runtime != RuntimeKind::Kubernetes;
    if local {
        tokio::fs::create_dir_all(&data_dir)
            .await
            .with_context(|| format!("creating {}", data_dir.display()))?;
    }
    let master = match &config.token_key {
        Some(key) => TokenKey::new(key.as_bytes().to_vec()).context("HUDDLE_TOKEN_KEY")?,
        None if local => TokenKey::new(local_key(&data_dir).await?).context("the generated key")?,
        None => anyhow::bail!(
            "HUDDLE_TOKEN_KEY is required with the Kubernetes runtime (the operator derives each session's key from the same one)"
        ),
    };
    let keys = Keys::new(master, config.admin_token.clone());
    let database_url = match &config.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", data_dir.join("huddle.db").display()),
    };
    let store = Store::connect(&database_url)
        .await
        .context("connecting to the database")?;
    let replica = config.replica.clone().unwrap_or_else(random_name);
    let registry = match &config.redis_url {
        Some(url) => Registry::redis(url, replica)
            .await
            .context("connecting to Redis")?,
        None => Registry::in_memory(replica),
    };
    let runtime: Arc<dyn Runtime> = match config.runtime {
        RuntimeKind::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?;
            Arc::new(KubernetesRuntime::new(client, &config.session_namespace))
        }
        RuntimeKind::Process => {
            let program = config
                .agent_binary
                .clone()
                .unwrap_or_else(ProcessLauncher::default_program);
            let launcher: Arc<dyn Launcher> =
                Arc::new(ProcessLauncher::new(program, data_dir.join("logs")));
            Arc::new(LocalRuntime::new(
                store.clone(),
                keys.clone(),
                launcher,
                data_dir,
            ))
        }
        RuntimeKind::Docker => {
            let launcher: Arc<dyn Launcher> = Arc::new(
                DockerLauncher::connect(&config.docker_host, config.agent_image.clone()).await?,
            );
            Arc::new(LocalRuntime::new(
                store.clone(),
                keys.clone(),
                launcher,
                data_dir,
            ))
        }
    };
    let namespace = match config.runtime {
        RuntimeKind::Kubernetes => config.session_namespace.clone(),
        _ => "local".to_owned(),
    };
    Ok(Sessions::new(store, registry, runtime, keys, namespace))
}

/// The one-machine master key: generated once, kept in the data folder, readable by us only.
async fn local_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("token.key");
    if let Ok(key) = tokio::fs::read(&path).await
        && key.len() >= MIN_KEY_LEN
    {
        return Ok(key);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes())?;
    Ok(key.into_bytes())
}

fn random_name() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("gateway-{suffix}")
}

/// Stops the agents the gateway started itself when the gateway exits.
struct StopOnExit {
    runtime: Arc<dyn Runtime>,
    core: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl BackgroundService for StopOnExit {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = shutdown.changed().await;
        let runtime = Arc::clone(&self.runtime);
        let _ = self
            .core
            .spawn(async move { runtime.shutdown().await })
            .await;
    }
}
