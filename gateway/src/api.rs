//! The gateway's own HTTP server (axum): the REST API, the landing page, the session pages under
//! `/s/<id>/_huddle/`, and the snapshot store agents restore from. It listens on the internal
//! address; browsers reach it only through the proxy, which adds rate limits and headers.
//!
//! | route | who | answer |
//! |---|---|---|
//! | `GET /`, `/assets/…` | anyone | landing page (the built UI's, or a plain built-in one) |
//! | `POST /api/sessions` | anyone if creation is open, else admin | 201 with owner, editor and viewer links |
//! | `GET /api/sessions` | admin | every live session |
//! | `GET /api/sessions/{id}` | admin, participant | phase, ports |
//! | `POST /api/sessions/{id}/hibernate` | admin, owner | snapshot, then sleep |
//! | `POST /api/sessions/{id}/wake` | admin, participant | start waking |
//! | `DELETE /api/sessions/{id}` | admin, owner | 204 |
//! | `PUT /api/sessions/{id}/ports/{port}` | admin, owner | `{"visibility": "public"\|"private"}` |
//! | `POST /api/sessions/{id}/invites` | admin, owner | a new editor or viewer link |
//! | `GET /s/{id}/_huddle/me` | participant (cookie) | who you are, and your token for the agent |
//! | `GET /s/{id}/_huddle/port-auth?port=N&next=/p` | participant (cookie) | signed redirect to the port's host |
//! | `GET /internal/snapshots/{namespace}/{id}` | the session's agent | its newest snapshot (404: none) |
//!
//! API callers authenticate with `Authorization: Bearer <token>`: the admin token, or a
//! participant token of the session in the path. A forged or expired token is a 401, always.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use huddle_protocol::Role;
use huddle_protocol::token::Claims;
use serde::{Deserialize, Serialize};

use crate::auth::{self, Keys};
use crate::pages;
use crate::route::port_host_name;
use crate::runtime::{Phase, SessionRequest, StopReason};
use crate::sessions::{SessionError, Sessions};
use crate::store::{SessionId, SessionPort, Visibility, new_session_id, parse_session_id};

/// Largest API request body.
pub const API_BODY_LIMIT: usize = 1024 * 1024;
/// Most ports one session may forward (the CRD's limit too).
pub const MAX_PORTS: usize = 20;
/// Shortest idle timeout a session may ask for.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub sessions: Sessions,
    pub public_url: url::Url,
    pub domain: String,
    pub open_creation: bool,
    pub invite_ttl: Duration,
    pub default_idle_timeout: Duration,
    pub secure_cookies: bool,
    /// The built UI whose landing page `/` shows, when there is one.
    pub web_dir: Option<std::path::PathBuf>,
}

impl ApiState {
    fn keys(&self) -> &Keys {
        &self.sessions.keys
    }

    fn base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    fn session_url(&self, id: &SessionId) -> String {
        format!("{}/s/{id}/", self.base())
    }

    fn link(&self, id: &SessionId, token: &str) -> String {
        format!("{}?token={token}", self.session_url(id))
    }

    fn port_url(&self, id: &SessionId, port: u16) -> String {
        let scheme = self.public_url.scheme();
        let host = port_host_name(&self.domain, port, id);
        match self.public_url.port() {
            Some(p) => format!("{scheme}://{host}:{p}/"),
            None => format!("{scheme}://{host}/"),
        }
    }

    fn ports_json(&self, id: &SessionId, ports: &[SessionPort]) -> Vec<PortInfo> {
        ports
            .iter()
            .map(|p| PortInfo {
                port: p.port,
                visibility: p.visibility,
                url: self.port_url(id, p.port),
            })
            .collect()
    }
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    let landing_page = match &state.web_dir {
        Some(dir) => huddle_web::router(dir, huddle_web::LANDING_PAGE),
        None => Router::new().route("/", get(landing)),
    };
    Router::new()
        .route("/api/sessions", post(create).get(list))
        .route("/api/sessions/{id}", get(show).delete(delete))
        .route("/api/sessions/{id}/hibernate", post(hibernate))
        .route("/api/sessions/{id}/wake", post(wake))
        .route("/api/sessions/{id}/ports/{port}", put(set_port))
        .route("/api/sessions/{id}/invites", post(invite))
        .route("/s/{id}/_huddle/me", get(me))
        .route("/s/{id}/_huddle/port-auth", get(port_auth))
        .route("/internal/snapshots/{namespace}/{id}", get(snapshot))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .with_state(state)
        .merge(landing_page)
}

/// An API error: a status and a JSON body `{"code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such session")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => Self::not_found(),
            SessionError::NotRunning => {
                Self::new(StatusCode::CONFLICT, "not_running", error.to_string())
            }
            SessionError::Runtime(crate::runtime::RuntimeError::NotFound) => Self::not_found(),
            SessionError::Runtime(crate::runtime::RuntimeError::Invalid(message)) => {
                Self::bad_request(message)
            }
            SessionError::Store(crate::store::StoreError::PortNotFound(_, port)) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("port {port} is not declared"),
            ),
            other => {
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    other.to_string(),
                )
            }
        }
    }
}

/// Who is calling.
enum Caller {
    Admin,
    Participant(Claims),
}

impl Caller {
    fn actor(&self) -> String {
        match self {
            Self::Admin => "admin".into(),
            Self::Participant(claims) => format!("user:{}", claims.uid),
        }
    }

    fn is_owner(&self) -> bool {
        match self {
            Self::Admin => true,
            Self::Participant(claims) => claims.role == Role::Owner,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| auth::cookie_value(value, auth::SESSION_COOKIE))
}

/// The caller of a request about session `id` (a bearer token or the session cookie).
fn caller(state: &ApiState, headers: &HeaderMap, id: &SessionId) -> Result<Caller, ApiError> {
    if let Some(token) = bearer(headers) {
        if state.keys().is_admin(token) {
            return Ok(Caller::Admin);
        }
        return verify(state, id, token);
    }
    match session_cookie(headers) {
        Some(token) => verify(state, id, token),
        None => Err(ApiError::unauthorized("a token is required")),
    }
}

/// The session `id` names and its caller, who must be its owner (or the admin).
fn owner(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    refusal: &str,
) -> Result<(SessionId, Caller), ApiError> {
    let id = parse_id(id)?;
    let caller = caller(state, headers, &id)?;
    if !caller.is_owner() {
        return Err(ApiError::forbidden(refusal.to_owned()));
    }
    Ok((id, caller))
}

fn verify(state: &ApiState, id: &SessionId, token: &str) -> Result<Caller, ApiError> {
    state
        .keys()
        .verify(id, token)
        .map(Caller::Participant)
        .map_err(|error| ApiError::unauthorized(error.to_string()))
}

fn parse_id(id: &str) -> Result<SessionId, ApiError> {
    parse_session_id(id).map_err(|_| ApiError::not_found())
}

async fn landing() -> Response {
    page_response(StatusCode::OK, pages::landing())
}

async fn not_found() -> Response {
    page_response(
        StatusCode::NOT_FOUND,
        pages::error("Not found", "There is nothing at this address."),
    )
}

/// An HTML page with the pages' Content-Security-Policy.
pub fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(pages::PAGE_CSP),
    );
    response
}

/// `POST /api/sessions` body. Everything is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateSession {
    owner: Option<String>,
    idle_timeout: Option<String>,
    max_lifetime: Option<String>,
    #[serde(default)]
    ports: Vec<PortRequest>,
    #[serde(default)]
    files: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortRequest {
    port: u32,
    #[serde(default)]
    visibility: Visibility,
}

#[derive(Debug, Serialize)]
struct PortInfo {
    port: u16,
    visibility: Visibility,
    url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    id: SessionId,
    url: String,
    owner_link: String,
    editor_link: String,
    viewer_link: String,
    ports: Vec<PortInfo>,
}

/// Whether `path` is a plain relative path inside a folder: no `..`, no leading `/`, no empty
/// or `.` parts, no NUL or backslash.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && !path.contains(['\0', '\\'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// A checked `POST /api/sessions` body.
struct Valid {
    owner: String,
    idle: Duration,
    lifetime: Option<Duration>,
    ports: Vec<SessionPort>,
    files: BTreeMap<String, String>,
}

fn validate(body: CreateSession, default_idle: Duration) -> Result<Valid, ApiError> {
    let owner = body.owner.unwrap_or_else(|| "Owner".into());
    if owner.trim().is_empty() || owner.chars().count() > 64 || owner.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "owner must be 1-64 printable characters",
        ));
    }
    let idle = match body.idle_timeout.as_deref() {
        Some(text) => crate::config::parse_duration(text).map_err(ApiError::bad_request)?,
        None => default_idle,
    };
    if idle < MIN_IDLE_TIMEOUT {
        return Err(ApiError::bad_request(format!(
            "idleTimeout must be at least {}s",
            MIN_IDLE_TIMEOUT.as_secs()
        )));
    }
    let lifetime = body
        .max_lifetime
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?;
    if lifetime.is_some_and(|l| l < MIN_IDLE_TIMEOUT) {
        return Err(ApiError::bad_request("maxLifetime is too short"));
    }
    if body.ports.len() > MAX_PORTS {
        return Err(ApiError::bad_request(format!("at most {MAX_PORTS} ports")));
    }
    let mut ports: Vec<SessionPort> = Vec::with_capacity(body.ports.len());
    for request in body.ports {
        let port = u16::try_from(request.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!("port {} is not 1-65535", request.port))
            })?;
        if ports.iter().any(|p| p.port == port) {
            return Err(ApiError::bad_request(format!(
                "port {port} is listed twice"
            )));
        }
        ports.push(SessionPort {
            port,
            visibility: request.visibility,
        });
    }
    ports.sort_by_key(|p| p.port);
    for path in body.files.keys() {
        if !is_safe_relative_path(path) {
            return Err(ApiError::bad_request(format!(
                "file path {path:?} leaves the workspace"
            )));
        }
    }
    Ok(Valid {
        owner,
        idle,
        lifetime,
        ports,
        files: body.files,
    })
}

async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let admin = bearer(&headers).is_some_and(|token| state.keys().is_admin(token));
    if bearer(&headers).is_some() && !admin {
        return Err(ApiError::unauthorized(
            "the bearer token is not the admin token",
        ));
    }
    if !admin && !state.open_creation {
        return Err(ApiError::unauthorized(
            "creating sessions needs the admin token",
        ));
    }
    let request: CreateSession = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(error.to_string()))?
    };
    let Valid {
        owner,
        idle,
        lifetime,
        ports,
        files,
    } = validate(request, state.default_idle_timeout)?;
    let id = new_session_id().map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })?;
    state
        .sessions
        .create(
            SessionRequest {
                id: id.clone(),
                owner_name: owner.clone(),
                idle_timeout: idle,
                max_lifetime: lifetime,
                ports: ports.clone(),
                files,
            },
            if admin { "admin" } else { "anonymous" },
        )
        .await?;
    let keys = state.keys();
    let owner_token = keys.issue(&id, &owner, Role::Owner, "owner", state.invite_ttl);
    // Invites name nobody (empty uid): whoever opens one gets a personal token of that role.
    let editor = keys.issue(&id, "", Role::Editor, "", state.invite_ttl);
    let viewer = keys.issue(&id, "", Role::Viewer, "", state.invite_ttl);
    let created = Created {
        url: state.session_url(&id),
        owner_link: state.link(&id, &owner_token),
        editor_link: state.link(&id, &editor),
        viewer_link: state.link(&id, &viewer),
        ports: state.ports_json(&id, &ports),
        id,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    match bearer(&headers) {
        Some(token) if state.keys().is_admin(token) => {}
        _ => {
            return Err(ApiError::unauthorized(
                "listing sessions needs the admin token",
            ));
        }
    }
    let sessions = state
        .sessions
        .store
        .list_sessions()
        .await
        .map_err(SessionError::from)?;
    let list: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "url": state.session_url(&s.id),
                "owner": s.owner_name,
                "state": s.state.as_str(),
                "createdAt": s.created_at.as_unix_millis(),
                "lastActivityAt": s.last_activity_at.as_unix_millis(),
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "sessions": list })).into_response())
}

async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    caller(&state, &headers, &id)?;
    let view = state
        .sessions
        .fresh_view(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let connections = state.sessions.registry.connections(&id).await.ok();
    Ok(axum::Json(serde_json::json!({
        "id": id,
        "url": state.session_url(&id),
        "status": view.phase,
        "ports": state.ports_json(&id, &view.ports),
        "idleTimeoutSeconds": view.idle_timeout.as_secs(),
        "maxLifetimeSeconds": view.max_lifetime.map(|l| l.as_secs()),
        "connections": connections,
    }))
    .into_response())
}

async fn hibernate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, caller) = owner(
        &state,
        &headers,
        &id,
        "only the owner may put the session to sleep",
    )?;
    let meta = state
        .sessions
        .hibernate(&id, StopReason::Requested, &caller.actor())
        .await?;
    Ok(axum::Json(serde_json::json!({
        "snapshot": { "id": meta.id, "bytes": meta.size_bytes, "sha256": meta.sha256_hex() },
    }))
    .into_response())
}

async fn wake(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let caller = caller(&state, &headers, &id)?;
    state.sessions.wake(&id, &caller.actor()).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (id, caller) = owner(
        &state,
        &headers,
        &id,
        "only the owner may delete the session",
    )?;
    if state.sessions.view(&id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    state.sessions.delete(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortChange {
    visibility: Visibility,
}

async fn set_port(
    State(state): State<ApiState>,
    Path((id, port)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (id, caller) = owner(
        &state,
        &headers,
        &id,
        "only the owner may change who can open a port",
    )?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request("the port must be 1-65535"))?;
    let change: PortChange =
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let ports = state
        .sessions
        .set_port_visibility(&id, port, change.visibility, &caller.actor())
        .await?;
    Ok(axum::Json(serde_json::json!({ "ports": state.ports_json(&id, &ports) })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    role: Role,
    ttl: Option<String>,
}

async fn invite(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (id, _) = owner(&state, &headers, &id, "only the owner may invite")?;
    let request: InviteRequest =
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(error.to_string()))?;
    if request.role == Role::Owner {
        return Err(ApiError::bad_request("invites are for editors and viewers"));
    }
    let ttl = request
        .ttl
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or(state.invite_ttl)
        .min(state.invite_ttl);
    if state.sessions.view(&id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let token = state.keys().issue(&id, "", request.role, "", ttl);
    Ok(axum::Json(
        serde_json::json!({ "link": state.link(&id, &token), "expiresInSeconds": ttl.as_secs() }),
    )
    .into_response())
}

async fn me(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let token = session_cookie(&headers)
        .or_else(|| bearer(&headers))
        .ok_or_else(|| ApiError::unauthorized("open your session link first"))?;
    let claims = state
        .keys()
        .verify(&id, token)
        .map_err(|error| ApiError::unauthorized(error.to_string()))?;
    let mut response = axum::Json(serde_json::json!({
        "sessionId": id,
        "name": claims.name,
        "role": claims.role,
        "uid": claims.uid,
        "expiresAt": claims.exp,
        "token": token,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
struct PortAuthQuery {
    port: u16,
    next: Option<String>,
}

/// Step one of opening a private port: the session cookie proves who you are; you are sent to
/// the port's host with a short-lived signed grant, which that host turns into its own cookie.
async fn port_auth(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<PortAuthQuery>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let id = parse_id(&id).map_err(IntoResponse::into_response)?;
    let denied = |message: &str| {
        page_response(
            StatusCode::UNAUTHORIZED,
            pages::error("Sign in first", message),
        )
    };
    let Some(token) = session_cookie(&headers) else {
        return Err(denied(
            "Open your session link first, then this port again.",
        ));
    };
    let claims = state
        .keys()
        .verify(&id, token)
        .map_err(|_| denied("Your session link has expired; ask the owner for a new one."))?;
    let view = state
        .sessions
        .view(&id)
        .await
        .map_err(|error| ApiError::from(error).into_response())?;
    if view.and_then(|v| v.port(query.port)).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this port is not forwarded",
        )
        .into_response());
    }
    let grant = state.keys().issue_port_grant(&id, &claims, query.port);
    let next = auth::safe_next(query.next.as_deref());
    let target = format!(
        "{}{}?grant={grant}&next={}",
        state.port_url(&id, query.port),
        crate::proxy::PORT_AUTH_PATH.trim_start_matches('/'),
        percent_encode(&next)
    );
    Ok(Redirect::to(&target).into_response())
}

/// Percent-encodes everything but unreserved characters (for a path carried in a query).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The newest snapshot of a session, for its (new) agent to restore. The agent proves it is the
/// session's own with a token signed by the session's key.
async fn snapshot(
    State(state): State<ApiState>,
    Path((_namespace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let token = bearer(&headers).ok_or_else(|| ApiError::unauthorized("a token is required"))?;
    let claims = state
        .keys()
        .verify(&id, token)
        .map_err(|error| ApiError::unauthorized(error.to_string()))?;
    if claims.role != Role::Owner {
        return Err(ApiError::forbidden(
            "only the session's agent may fetch its snapshot",
        ));
    }
    match state
        .sessions
        .store
        .latest_snapshot(&id)
        .await
        .map_err(SessionError::from)?
    {
        Some((meta, data)) => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-tar"),
                ),
                (
                    header::ETAG,
                    HeaderValue::from_str(&format!("\"{}\"", meta.sha256_hex()))
                        .unwrap_or(HeaderValue::from_static("\"\"")),
                ),
            ],
            data,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no snapshot",
        )),
    }
}

/// Waking a session through the API is also what the proxy does on a visit; this keeps the
/// phase names in one place for the pages.
pub fn phase_message(phase: &Phase) -> &'static str {
    match phase {
        Phase::Ready => "ready",
        Phase::Starting => "Starting the workspace…",
        Phase::Hibernated => "Restoring your session from its last save…",
        Phase::Failed(_) => "The session failed to start.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        for good in ["a.txt", "src/main.rs", "a/b/c"] {
            assert!(is_safe_relative_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(!is_safe_relative_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn percent_round_trip() {
        let path = "/app?x=1&y=ä b";
        assert_eq!(percent_decode(&percent_encode(path)), path);
        assert_eq!(percent_decode("%zz%2F"), "%zz/");
    }

    #[test]
    fn create_validation() {
        let day = Duration::from_secs(86_400);
        let body: CreateSession = serde_json::from_str(
            r#"{"ports":[{"port":8080,"visibility":"public"},{"port":3000}],"idleTimeout":"5m"}"#,
        )
        .unwrap();
        let Valid { idle, ports, .. } = validate(body, day).unwrap();
        assert_eq!(idle, Duration::from_secs(300));
        assert_eq!(ports[0].port, 3000);
        assert_eq!(ports[0].visibility, Visibility::Private);
        for bad in [
            r#"{"ports":[{"port":0}]}"#,
            r#"{"ports":[{"port":70000}]}"#,
            r#"{"ports":[{"port":3000},{"port":3000}]}"#,
            r#"{"idleTimeout":"1s"}"#,
            r#"{"files":{"../x":"y"}}"#,
            r#"{"owner":""}"#,
        ] {
            let body: CreateSession = serde_json::from_str(bad).unwrap();
            assert!(validate(body, day).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CreateSession>(r#"{"evil":1}"#).is_err());
    }
}
