//! Acts on session changes announced by any replica: drops the cached view and cuts anonymous
//! connections to ports that are no longer public.

use tokio::sync::broadcast::error::RecvError;

use crate::revoke::Revocable;
use crate::runtime::Phase;
use crate::sessions::Sessions;
use crate::store::{SessionId, Visibility};

/// Runs until the change channel closes.
pub async fn run(sessions: Sessions, revocable: Revocable) {
    let mut changes = sessions.registry.changes();
    loop {
        match changes.recv().await {
            Ok(id) => apply(&sessions, &revocable, &id).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed session changes; dropping every cached view");
                sessions.forget_all();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn apply(sessions: &Sessions, revocable: &Revocable, id: &SessionId) {
    sessions.forget(id);
    let ports = revocable.ports_of(id);
    if ports.is_empty() {
        return;
    }
    // Without a definite answer, cut: a port that might have become private must not stay open.
    let view = sessions.fresh_view(id).await.ok().flatten();
    for port in ports {
        let still_public = view.as_ref().is_some_and(|view| {
            view.phase == Phase::Ready
                && view
                    .port(port)
                    .is_some_and(|p| p.visibility == Visibility::Public)
        });
        if !still_public {
            let cut = revocable.revoke(id, port);
            tracing::info!(session = %id, port, cut, "closed connections to a port that is no longer public");
        }
    }
}
