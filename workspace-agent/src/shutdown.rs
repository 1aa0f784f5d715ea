//! The signals that stop the agent: SIGTERM (what the kubelet and `docker stop` send) and
//! Ctrl-C.
//!
//! The agent often runs as PID 1 of its container, and the kernel delivers no default action
//! for signals to PID 1: without a handler, SIGTERM would be ignored and the pod would only stop
//! when SIGKILL comes at the end of the grace period. So both are handled explicitly.

use tracing::{info, warn};

/// Resolves when the process receives SIGTERM or Ctrl-C (SIGINT).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => info!("received Ctrl-C"),
        () = terminate => info!("received SIGTERM"),
    }
}

/// Resolves when the agent's parent is no longer `parent` (it died and the agent was adopted).
/// The one-machine gateway starts agents as its children; if it is killed without a chance to
/// stop them, they must not live on unseen.
#[cfg(unix)]
pub async fn parent_gone(parent: u32) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if std::os::unix::process::parent_id() != parent {
            info!(parent, "the process that started this agent is gone");
            return;
        }
    }
}
