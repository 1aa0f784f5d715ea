//! `huddle-agent`: runs the session pod's agent server until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use huddle_agent::app::{AppState, RestoreFrom, Settings};
use huddle_agent::config::{Config, DRAIN_TIMEOUT};
use huddle_agent::{http, serve, shutdown};
use huddle_protocol::token::TokenKey;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{info, warn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    huddle_telemetry::init();
    let config = Config::from_env()?;
    let key = match &config.token_key {
        Some(key) => TokenKey::new(key.as_bytes()).context("HUDDLE_TOKEN_KEY")?,
        None => {
            // Fail closed: a random key nobody knows, so no token is valid.
            warn!("HUDDLE_TOKEN_KEY is not set: nobody will be able to join this session");
            TokenKey::new(random_key()?).context("generating a key")?
        }
    };
    let state = AppState::start_with_voice(
        Settings {
            session_id: config.session_id.clone(),
            workspace: config.workspace.clone(),
            key,
            shell: config.shell.clone(),
            restore: config.restore_url.clone().map(RestoreFrom::Url),
        },
        config.voice.clone(),
    )
    .await?;

    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    info!(
        addr = %listener.local_addr()?,
        version = env!("CARGO_PKG_VERSION"),
        "huddle-agent listening"
    );

    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(
        listener,
        http::router(state).merge(huddle_web::router(&config.web_dir, huddle_web::IDE_PAGE)),
        async {
            // An error only means `stop` was dropped, which also means: stop.
            let _ = stopped.await;
        },
    ));

    tokio::select! {
        result = &mut server => {
            // The server ended without being asked to: that is a failure.
            result.context("server task failed")?.context("server failed")?;
            anyhow::bail!("server stopped unexpectedly");
        }
        () = shutdown::signal() => {}
        () = async {
            match config.parent_pid {
                Some(parent) => shutdown::parent_gone(parent).await,
                None => std::future::pending().await,
            }
        } => {}
    }

    info!("shutting down; waiting up to {DRAIN_TIMEOUT:?} for open connections");
    let _ = stop.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result
            .context("server task failed")?
            .context("server failed")?,
        Err(_) => warn!("open connections did not finish in time; exiting anyway"),
    }
    info!("stopped");
    Ok(())
}

fn random_key() -> anyhow::Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(key)
}
