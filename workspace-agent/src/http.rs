//! The agent's HTTP routes.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` once the server runs; the operator's liveness and readiness probe |
//! | `GET /` | `huddle-agent <version>` |
//!
//! Any other path is `404 Not Found`.

use axum::Router;
use axum::routing::get;
use huddle_crds::names;
use tower_http::trace::TraceLayer;

/// The agent's banner: its name and the crate version it was built from.
pub const BANNER: &str = concat!("huddle-agent ", env!("CARGO_PKG_VERSION"));

/// Builds the router with every route the agent serves.
pub fn router() -> Router {
    Router::new()
        .route("/", get(banner))
        .route(names::AGENT_HEALTH_PATH, get(healthz))
        .layer(TraceLayer::new_for_http())
}

async fn banner() -> &'static str {
    BANNER
}

async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        assert_eq!(get("/healthz").await, (StatusCode::OK, "ok".to_owned()));
    }

    #[tokio::test]
    async fn root_shows_name_and_version() {
        let (status, body) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("huddle-agent {}", env!("CARGO_PKG_VERSION")));
    }

    #[tokio::test]
    async fn unknown_path_is_not_found() {
        assert_eq!(get("/no-such-path").await.0, StatusCode::NOT_FOUND);
    }
}
