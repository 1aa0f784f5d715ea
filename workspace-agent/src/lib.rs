//! `huddle-agent`: the process inside each Huddle session pod.
//!
//! It will serve everything a session's participants share, over HTTP and WebSocket (axum):
//! rooms and presence, OT-edited documents, shared terminals, the file tree and its watcher,
//! the voice SFU (webrtc), snapshot and restore, and the web UI itself. Today it serves the
//! endpoints the rest of Huddle relies on first: the health check the operator probes and a
//! version banner.
//!
//! The binary (`src/main.rs`) reads [`config::Config`], binds, and calls [`serve`] until
//! SIGTERM or Ctrl-C.

pub mod config;
pub mod http;
pub mod shutdown;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the agent's HTTP routes on `listener` until `shutdown` resolves, then stops accepting
/// and waits for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router())
        .with_graceful_shutdown(shutdown)
        .await
}
