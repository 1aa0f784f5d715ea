//! The agent's HTTP routes. Handlers are thin: they check the token and hand over to the
//! workspace or the room.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` once the server runs; the operator's liveness and readiness probe |
//! | `GET /version` | `huddle-agent <version>` |
//! | `GET /`, `/assets/…` | the browser UI (see `web`) |
//! | `GET /ws` | the participants' WebSocket (see `ws`) |
//! | `GET /files/{path}` | download a file (any role) |
//! | `PUT /files/{path}` | upload a file (owner or editor), at most `TRANSFER_LIMIT` bytes |
//! | `GET /voice/config` | `{"iceServers": [...]}`: the STUN/TURN servers the browser's voice connection uses (any role) |
//! | `PUT /internal/restore` | restore a snapshot into this agent before anyone joined (owner token; 409 if the workspace is not empty) |
//! | `GET /internal/snapshot` | the session's state as one tar stream (owner token; the gateway uses it before hibernating) |
//! | `POST /internal/notice` | `{kind, message, at}` shown to everyone connected as a `notice` (owner token; the gateway's stop warnings) |
//!
//! File and voice routes take the participant token as `Authorization: Bearer <token>` or
//! `?token=` (so a download can be a plain link).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use huddle_crds::names;
use huddle_protocol::messages::ErrorCode;
use huddle_protocol::token::Claims;
use serde::Deserialize;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::files::{FileError, TRANSFER_LIMIT};

/// Largest snapshot accepted by `PUT /internal/restore`.
pub const RESTORE_LIMIT: usize = 4 * 1024 * 1024 * 1024;

/// The agent's banner: its name and the crate version it was built from.
pub const BANNER: &str = concat!("huddle-agent ", env!("CARGO_PKG_VERSION"));

/// Builds the router with every route the agent serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(banner))
        .route(names::AGENT_HEALTH_PATH, get(healthz))
        .route("/ws", get(crate::ws::upgrade))
        .route("/files/{*path}", get(download).put(upload))
        .route("/voice/config", get(voice_config))
        .route("/internal/snapshot", get(snapshot))
        .route("/internal/notice", axum::routing::post(notice))
        .route(
            "/internal/restore",
            axum::routing::put(restore).layer(DefaultBodyLimit::max(RESTORE_LIMIT)),
        )
        .layer(DefaultBodyLimit::max(TRANSFER_LIMIT as usize))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn banner() -> &'static str {
    BANNER
}

async fn healthz() -> &'static str {
    "ok"
}

/// An HTTP error with the protocol's error code in a small JSON body.
pub struct ApiError(StatusCode, ErrorCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.1, "message": self.2 });
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<FileError> for ApiError {
    fn from(error: FileError) -> Self {
        let code = crate::room::file_error_code(&error);
        let status = match code {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, code, error.to_string())
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<Claims, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let token = bearer.or(query.token.as_deref()).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a participant token is required".into(),
        )
    })?;
    state
        .key
        .verify(token, &state.session_id, huddle_protocol::token::now_unix())
        .map_err(|error| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                error.to_string(),
            )
        })
}

/// Like [`authenticate`], for the routes only the owner (in practice: the gateway) may use.
fn authenticate_owner(
    state: &AppState,
    headers: &HeaderMap,
    query: &TokenQuery,
    refusal: &str,
) -> Result<Claims, ApiError> {
    let claims = authenticate(state, headers, query)?;
    if claims.role != huddle_protocol::Role::Owner {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            refusal.to_owned(),
        ));
    }
    Ok(claims)
}

async fn download(
    State(state): State<AppState>,
    Path(path): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers, &query)?;
    let bytes = state.workspace.read_bytes(&path).await?;
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or("download")
        .replace('"', "");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let claims = authenticate(&state, &headers, &query)?;
    if !claims.role.can_write() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "viewers cannot upload".into(),
        ));
    }
    state.workspace.write_bytes(&path, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The browser's `RTCConfiguration` for voice: the ICE servers from `HUDDLE_ICE_SERVERS`.
/// Served only to participants, as TURN credentials are in it.
async fn voice_config(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers, &query)?;
    let body = serde_json::json!({ "iceServers": state.voice.ice_servers });
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response())
}

/// Streams a snapshot: the room saves open documents and hands over their revisions and the
/// terminals' screens, then the workspace is packed while the response is being sent.
async fn snapshot(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate_owner(
        &state,
        &headers,
        &query,
        "only the owner may take a snapshot",
    )?;
    let captured = state.room.capture().await.ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "the room is shutting down".into(),
        )
    })?;
    let (reader, writer) = tokio::io::duplex(64 * 1024);
    let root = state.workspace.root().to_path_buf();
    let session_id = state.session_id.to_string();
    tokio::task::spawn_blocking(move || {
        let writer = tokio_util::io::SyncIoBridge::new(writer);
        if let Err(error) = crate::snapshot::write_archive(
            &root,
            &session_id,
            &captured.documents,
            &captured.terminals,
            writer,
        ) {
            // The stream ends early; the reader sees a truncated archive and fails, which is
            // what must happen: a partial snapshot is never taken for a whole one.
            tracing::error!(%error, "writing the snapshot failed");
        }
    });
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        )],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Notice {
    kind: huddle_protocol::messages::NoticeKind,
    message: String,
    at: u64,
}

/// Passes a warning from the gateway (the session is about to be saved and stopped) to
/// everyone connected.
async fn notice(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authenticate_owner(&state, &headers, &query, "only the owner may send notices")?;
    let notice: Notice = serde_json::from_slice(&body).map_err(|error| {
        ApiError(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            error.to_string(),
        )
    })?;
    let message = huddle_protocol::messages::ServerMessage::Notice {
        kind: notice.kind,
        message: notice.message.chars().take(1000).collect(),
        at: notice.at,
    };
    if !state
        .room
        .send(crate::room::Command::Broadcast { message })
        .await
    {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "the room is shutting down".into(),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Restores a snapshot pushed by the gateway into a fresh agent: the workspace must be empty
/// and nobody may have joined, so nothing anyone did is overwritten.
async fn restore(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authenticate_owner(&state, &headers, &query, "only the owner may restore")?;
    let conflict =
        |message: String| ApiError(StatusCode::CONFLICT, ErrorCode::AlreadyExists, message);
    if !state.workspace.list_tree().await?.entries.is_empty() {
        return Err(conflict(
            "the workspace is not empty; restore only into a fresh agent".into(),
        ));
    }
    let workspace = state.workspace.clone();
    let restored = tokio::task::spawn_blocking(move || {
        crate::snapshot::read_archive(body.as_ref(), &workspace)
    })
    .await
    .map_err(|error| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            error.to_string(),
        )
    })?
    .map_err(|error| {
        ApiError(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            error.to_string(),
        )
    })?;
    state.room.restore(restored).await.map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT)
}
