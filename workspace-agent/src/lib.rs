//! `huddle-agent`: the process inside each Huddle session pod.
//!
//! It serves everything a session's participants share, over HTTP and one WebSocket per
//! participant (axum): the room and its presence ([`room`]), OT-edited documents ([`ot`]),
//! shared terminals ([`terminal`]), the file tree and its watcher ([`files`]). Voice, snapshot
//! and restore, and the web UI come next.
//!
//! The binary (`src/main.rs`) reads [`config::Config`], binds, and calls [`serve`] until
//! SIGTERM or Ctrl-C.

pub mod app;
pub mod config;
pub mod files;
pub mod http;
/// The OT core lives in its own crate; re-exported here as the agent serves it.
pub use huddle_ot as ot;
pub mod room;
pub mod shutdown;
pub mod snapshot;
pub mod terminal;
pub mod ws;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the agent's HTTP routes on `listener` until `shutdown` resolves, then stops accepting
/// and waits for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
