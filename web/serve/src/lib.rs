//! Serves Huddle's browser UI: the files Vite built from `web/` (in `web/dist`), as they are.
//! The agent serves the IDE (`index.html`) and the gateway the landing page (`landing.html`);
//! both from the same build.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the page, never cached (it names the current assets) |
//! | `GET /assets/{file}` | the built scripts, styles, fonts and workers; cached for a year, since their names carry a content hash |
//!
//! The pages reach everything else relative to where they are, so the same build works at
//! `/` and at `/s/<id>/` behind the gateway.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::path::{Path, PathBuf};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the UI may load: only its own files and its own WebSocket. Styles allow inline
/// attributes because the editor positions everything with them.
pub const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Where a packaged binary finds the UI when `HUDDLE_WEB_DIR` is not set.
pub const DEFAULT_WEB_DIR: &str = "/usr/share/huddle/web";

/// The IDE page the agent serves.
pub const IDE_PAGE: &str = "index.html";
/// The landing page the gateway serves.
pub const LANDING_PAGE: &str = "landing.html";

/// True when `dir` holds a build with `page` in it.
pub fn has_page(dir: &Path, page: &str) -> bool {
    dir.join(page).is_file()
}

/// `GET /` answering `page` from the build in `dir`, and `GET /assets/…`.
pub fn router(dir: &Path, page: &str) -> Router {
    let page = dir.join(page);
    let assets = Router::new()
        .fallback_service(ServeDir::new(dir.join("assets")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ));
    Router::new()
        .route("/", get(move || serve_page(page.clone())))
        .nest("/assets", assets)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(UI_CSP),
        ))
}

async fn serve_page(path: PathBuf) -> Response {
    match tokio::fs::read_to_string(&path).await {
        Ok(html) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
            Html(html),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the web UI is not built");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(
                    "<!doctype html><title>Huddle</title><p>The web UI is not built: run \
                     <code>scripts/build-web.sh</code> and set <code>HUDDLE_WEB_DIR</code> \
                     to <code>web/dist</code>.",
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(router: &Router, path: &str) -> (StatusCode, String, Response) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (status, text, Response::from_parts(parts, Body::empty()))
    }

    #[tokio::test]
    async fn serves_the_page_and_assets_with_their_caching_and_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>ide").unwrap();
        std::fs::write(dir.path().join("assets/app-1234.js"), "go()").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        let router = router(dir.path(), IDE_PAGE);

        let (status, body, response) = get(&router, "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<p>ide"));
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(response.headers()[header::CONTENT_SECURITY_POLICY], UI_CSP);

        let (status, body, response) = get(&router, "/assets/app-1234.js").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "go()"));
        assert!(
            response.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );

        for path in [
            "/assets/../secret.txt",
            "/assets/%2e%2e/secret.txt",
            "/secret.txt",
            "/assets/missing.js",
        ] {
            let (status, body, _) = get(&router, path).await;
            assert!(status.is_client_error(), "{path}: {status}");
            assert!(!body.contains("no"), "{path} leaked: {body}");
        }
    }

    #[tokio::test]
    async fn a_missing_build_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_page(dir.path(), IDE_PAGE));
        let (status, body, _) = get(&router(dir.path(), IDE_PAGE), "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("scripts/build-web.sh"));
    }
}
