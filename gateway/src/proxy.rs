//! The pingora proxy: one `ProxyHttp` implementation, one method per phase.
//!
//! - `request_filter` decides the route, checks who is asking, finds the session and either
//!   answers itself (health, redirects, sign-in, "waking up", errors) or picks the upstream.
//!   WebSocket upgrades are then relayed by [`crate::tunnel`], not by pingora's proxy loop.
//! - `upstream_peer` connects to that upstream; a connection refused by a stale address drops
//!   the cached view and tries once more with a fresh one (`fail_to_connect`).
//! - `upstream_request_filter` rewrites the path and strips the gateway's own cookies.
//! - `request_body_filter` counts activity and enforces the body limit.
//! - `response_filter` adds security headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use huddle_protocol::token::Claims;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::activity::ConnectionGuard;
use crate::auth::{self, now_unix};
use crate::pages;
use crate::ratelimit::RateLimiter;
use crate::revoke::{Registration, Revocable};
use crate::route::{Route, classify};
use crate::runtime::Phase;
use crate::sessions::Sessions;
use crate::store::{NewParticipant, SessionId, Timestamp, Visibility};
use crate::tunnel;

/// Path on a port host that turns a grant into that host's cookie.
pub const PORT_AUTH_PATH: &str = "/_huddle/port-auth";
/// Largest API request accepted at the proxy (the API checks too).
const API_BODY_LIMIT: u64 = crate::api::API_BODY_LIMIT as u64;

/// What the proxy needs.
pub struct Gateway {
    pub sessions: Sessions,
    pub domain: String,
    pub public_url: url::Url,
    pub internal: SocketAddr,
    pub secure: bool,
    pub limiter: RateLimiter,
    pub revocable: Revocable,
    pub max_body_bytes: u64,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    route: Option<Route>,
    upstream: Option<SocketAddr>,
    /// Path and query to send upstream, when it differs from the request's.
    upstream_path: Option<String>,
    /// The participant's token, passed to the agent as a bearer token.
    agent_token: Option<String>,
    /// The session whose activity this request is.
    active_session: Option<SessionId>,
    _connection: Option<ConnectionGuard>,
    /// Set for anonymous requests to a public port: their socket can be cut.
    revocable_port: Option<(SessionId, u16)>,
    _registration: Option<Registration>,
    retried: bool,
    body_bytes: u64,
    body_limit: u64,
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|value| value.to_str().ok())
}

fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| auth::cookie_value(value, name))
}

/// Whether the request says a body follows it.
pub(crate) fn declares_body(req: &RequestHeader) -> bool {
    req.headers.contains_key("transfer-encoding")
        || req
            .headers
            .get("content-length")
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The client's IP address (none for a Unix-socket client).
fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn host(req: &RequestHeader) -> &str {
    header(req, "host")
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// A response the gateway writes itself.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn page(status: u16, html: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(html),
            headers: vec![("content-security-policy", pages::PAGE_CSP.to_owned())],
        }
    }

    fn json(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        Self {
            status,
            content_type: "application/json",
            body: Bytes::from(body),
            headers: Vec::new(),
        }
    }

    fn redirect(status: u16, location: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::new(),
            headers: vec![("location", location)],
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl Gateway {
    async fn reply(&self, session: &mut Session, reply: Reply) -> Result<bool> {
        let mut response = ResponseHeader::build(reply.status, Some(8))?;
        response.insert_header("content-type", reply.content_type)?;
        response.insert_header("content-length", reply.body.len().to_string())?;
        response.insert_header("cache-control", "no-store")?;
        for (name, value) in reply.headers {
            response.append_header(name, value)?;
        }
        self.security_headers(&mut response, true)?;
        // A request body the gateway did not read would be taken for the next request: close
        // the connection then. Bodiless requests keep it.
        if declares_body(session.req_header()) {
            session.set_keepalive(None);
        }
        session
            .write_response_header(Box::new(response), reply.body.is_empty())
            .await?;
        if !reply.body.is_empty() {
            session.write_response_body(Some(reply.body), true).await?;
        }
        Ok(true)
    }

    /// Answers 413 when the declared body is over this request's limit; returns whether it did.
    async fn refuse_oversized(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        declared_length: Option<u64>,
    ) -> Result<bool> {
        if declared_length.is_none_or(|len| len <= ctx.body_limit) {
            return Ok(false);
        }
        let reply = Reply::json(413, "too_large", "the request body is too large");
        self.reply(session, reply).await
    }

    fn security_headers(&self, response: &mut ResponseHeader, ours: bool) -> Result<()> {
        let mut set_default = |name: &'static str, value: &'static str| -> Result<()> {
            if ours || response.headers.get(name).is_none() {
                response.insert_header(name, value)?;
            }
            Ok(())
        };
        set_default("x-content-type-options", "nosniff")?;
        // Links carry tokens until the gateway moves them into a cookie: never leak the URL.
        set_default("referrer-policy", "no-referrer")?;
        if ours {
            set_default("x-frame-options", "DENY")?;
        }
        if self.secure {
            set_default("strict-transport-security", "max-age=31536000")?;
        }
        Ok(())
    }

    fn base_url(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// Routes a request for the session's agent (`/s/<id>/…`).
    async fn agent_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        id: SessionId,
        path: String,
    ) -> Result<bool> {
        let req = session.req_header();
        let query = req.uri.query().unwrap_or("").to_owned();
        let upgrade = session.is_upgrade_req();

        // An invite or owner link: move the token into a cookie and out of the URL.
        if let Some(token) = auth::query_value(&query, "token")
            && !upgrade
        {
            let token = token.to_owned();
            let name = auth::query_value(&query, "name").map(crate::api::percent_decode);
            return self
                .redeem_link(session, &id, &path, &query, &token, name)
                .await;
        }
        // Unknown first (404), then who is asking (401), then whether it is awake.
        let Some(view) = self.find_session(session, &id).await? else {
            return Ok(true);
        };
        let req = session.req_header();
        let bearer = header(req, "authorization").and_then(|v| v.strip_prefix("Bearer "));
        let token = auth::query_value(&query, "token")
            .or(bearer)
            .or_else(|| cookie(req, auth::SESSION_COOKIE))
            .map(str::to_owned);
        let Some(token) = token else {
            return self
                .reply(
                    session,
                    unauthorized("Open the link you were given to join this session."),
                )
                .await;
        };
        if let Err(error) = self.sessions.keys.verify(&id, &token) {
            return self
                .reply(
                    session,
                    unauthorized(&format!("Your link cannot be used: {error}.")),
                )
                .await;
        }
        let Some(agent) = self.ready_session(session, &id, view).await? else {
            return Ok(true);
        };
        let mut upstream_path = path;
        let rest = auth::without_query_param(&query, "token");
        if !rest.is_empty() {
            upstream_path = format!("{upstream_path}?{rest}");
        }
        ctx.upstream = Some(agent);
        ctx.upstream_path = Some(upstream_path);
        ctx.agent_token = Some(token);
        ctx.active_session = Some(id.clone());
        if upgrade {
            ctx._connection = Some(self.sessions.activity.connect(&id));
        } else {
            self.sessions.activity.touch(&id);
        }
        Ok(false)
    }

    /// The session's view; `None` once a 404 (unknown) or 503 (lookup failed) was answered.
    async fn find_session(
        &self,
        session: &mut Session,
        id: &SessionId,
    ) -> Result<Option<crate::runtime::SessionView>> {
        match self.sessions.view(id).await {
            Ok(Some(view)) => Ok(Some(view)),
            Ok(None) => self.reply(session, not_found()).await.map(|_| None),
            Err(error) => {
                tracing::warn!(session = %id, %error, "looking the session up failed");
                let reply = unavailable("The session cannot be looked up right now.");
                self.reply(session, reply).await.map(|_| None)
            }
        }
    }

    /// Opens an invite or owner link: an invite (which names nobody) becomes a personal token;
    /// either way the token goes into the session cookie and the browser is sent to the same
    /// address without it.
    async fn redeem_link(
        &self,
        session: &mut Session,
        id: &SessionId,
        path: &str,
        query: &str,
        token: &str,
        name: Option<String>,
    ) -> Result<bool> {
        let claims = match self.sessions.keys.verify(id, token) {
            Ok(claims) => claims,
            Err(error) => {
                return self
                    .reply(
                        session,
                        unauthorized(&format!("This link cannot be used: {error}.")),
                    )
                    .await;
            }
        };
        let personal = if claims.uid.is_empty() {
            self.personal_token(id, &claims, name).await
        } else {
            token.to_owned()
        };
        let rest = auth::without_query_param(&auth::without_query_param(query, "token"), "name");
        let mut location = format!("/s/{id}{path}");
        if !rest.is_empty() {
            location = format!("{location}?{rest}");
        }
        let max_age = Duration::from_secs(claims.exp.saturating_sub(now_unix()));
        let cookie = auth::set_cookie(
            auth::SESSION_COOKIE,
            &personal,
            &format!("/s/{id}/"),
            max_age,
            self.secure,
        );
        self.reply(
            session,
            Reply::redirect(303, location).with("set-cookie", cookie),
        )
        .await
    }

    async fn personal_token(
        &self,
        id: &SessionId,
        invite: &Claims,
        name: Option<String>,
    ) -> String {
        let mut uid_bytes = [0u8; 8];
        let _ = getrandom::fill(&mut uid_bytes);
        let uid: String = uid_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let name = name
            .map(|n| {
                n.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("Guest {}", &uid[..4]));
        let role = match invite.role {
            huddle_protocol::Role::Owner => crate::store::Role::Owner,
            huddle_protocol::Role::Editor => crate::store::Role::Editor,
            huddle_protocol::Role::Viewer => crate::store::Role::Viewer,
        };
        let participant = NewParticipant {
            user_id: uid.clone(),
            name: name.clone(),
            role,
            invited_at: Timestamp::now(),
        };
        if let Err(error) = self.sessions.store.add_participant(id, participant).await {
            tracing::warn!(session = %id, %error, "participant not recorded");
        }
        let ttl = Duration::from_secs(invite.exp.saturating_sub(now_unix()));
        self.sessions.keys.issue(id, &name, invite.role, &uid, ttl)
    }

    /// The agent's address if the session is ready; otherwise answers (waking up, failed) and
    /// returns `None`. A sleeping session is woken.
    async fn ready_session(
        &self,
        session: &mut Session,
        id: &SessionId,
        view: crate::runtime::SessionView,
    ) -> Result<Option<SocketAddr>> {
        match (&view.phase, view.agent) {
            (Phase::Ready, Some(agent)) => Ok(Some(agent)),
            (Phase::Hibernated, _) => {
                if let Err(error) = self.sessions.wake(id, "visitor").await {
                    tracing::warn!(session = %id, %error, "waking the session failed");
                    self.reply(
                        session,
                        unavailable("The session could not be woken; try again."),
                    )
                    .await?;
                    return Ok(None);
                }
                self.reply(session, waking(&Phase::Hibernated)).await?;
                Ok(None)
            }
            (Phase::Failed(message), _) => {
                let message = format!("The session failed to start: {message}");
                self.reply(
                    session,
                    Reply::page(502, pages::error("Session failed", &message)),
                )
                .await?;
                Ok(None)
            }
            (phase, _) => {
                self.reply(session, waking(phase)).await?;
                Ok(None)
            }
        }
    }

    /// Routes a request for a forwarded port (`port-<N>-<id>.<domain>`).
    async fn port_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        id: SessionId,
        port: u16,
    ) -> Result<bool> {
        let Some(view) = self.find_session(session, &id).await? else {
            return Ok(true);
        };
        let Some(declared) = view.port(port) else {
            return self
                .reply(
                    session,
                    Reply::page(
                        404,
                        pages::error("Not forwarded", "This session does not forward that port."),
                    ),
                )
                .await;
        };
        let req = session.req_header();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().unwrap_or("").to_owned();
        if path == PORT_AUTH_PATH {
            return self.redeem_port_grant(session, &id, port, &query).await;
        }
        let participant = cookie(req, auth::PORT_COOKIE)
            .is_some_and(|token| self.sessions.keys.verify(&id, token).is_ok());
        if !participant && declared.visibility == Visibility::Private {
            let wants_page = req.method == pingora::http::Method::GET && !session.is_upgrade_req();
            if !wants_page {
                return self
                    .reply(
                        session,
                        Reply::json(
                            401,
                            "unauthorized",
                            "this port is private to the session's participants",
                        ),
                    )
                    .await;
            }
            let next = if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            };
            let location = format!(
                "{}/s/{id}/_huddle/port-auth?port={port}&next={}",
                self.base_url(),
                crate::api::percent_encode(&next)
            );
            return self.reply(session, Reply::redirect(302, location)).await;
        }
        let Some(addr) = view.port_addr(port) else {
            if self.ready_session(session, &id, view).await?.is_some() {
                // Ready but without a pod address: nothing to forward to.
                return self
                    .reply(session, unavailable("The session has no address yet."))
                    .await;
            }
            return Ok(true);
        };
        ctx.upstream = Some(addr);
        ctx.active_session = Some(id.clone());
        self.sessions.activity.touch(&id);
        // A stranger's WebSocket on a public port must be cut if the port goes private. Plain
        // requests need nothing: each one is checked, and they keep the pooled connections.
        if !participant && session.is_upgrade_req() {
            ctx.revocable_port = Some((id, port));
        }
        Ok(false)
    }

    async fn redeem_port_grant(
        &self,
        session: &mut Session,
        id: &SessionId,
        port: u16,
        query: &str,
    ) -> Result<bool> {
        let grant = auth::query_value(query, "grant").unwrap_or("");
        match self.sessions.keys.redeem_port_grant(id, port, grant) {
            Ok(token) => {
                let next = auth::safe_next(
                    auth::query_value(query, "next")
                        .map(crate::api::percent_decode)
                        .as_deref(),
                );
                let cookie = auth::set_cookie(
                    auth::PORT_COOKIE,
                    &token,
                    "/",
                    auth::PORT_COOKIE_TTL,
                    self.secure,
                );
                self.reply(
                    session,
                    Reply::redirect(303, next).with("set-cookie", cookie),
                )
                .await
            }
            Err(error) => {
                self.reply(
                    session,
                    unauthorized(&format!("This sign-in link cannot be used: {error}.")),
                )
                .await
            }
        }
    }

    /// Answers the request itself (`true`) or picks its upstream in `ctx` (`false`).
    async fn route_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: Route,
        declared_length: Option<u64>,
    ) -> Result<bool> {
        let req = session.req_header();
        match route {
            Route::Health => {
                let reply = Reply {
                    status: 200,
                    content_type: "text/plain",
                    body: Bytes::from_static(b"ok"),
                    headers: Vec::new(),
                };
                self.reply(session, reply).await
            }
            Route::NotFound => {
                self.reply(
                    session,
                    Reply::page(
                        404,
                        pages::error("Not found", "There is nothing at this address."),
                    ),
                )
                .await
            }
            Route::AddSlash { id } => {
                let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                self.reply(session, Reply::redirect(308, format!("/s/{id}/{query}")))
                    .await
            }
            Route::Internal => {
                if req.uri.path().starts_with("/api/") || req.uri.path() == "/api" {
                    ctx.body_limit = API_BODY_LIMIT;
                    if let Some(client) = client_ip(session)
                        && !self.limiter.allow(client)
                    {
                        return self
                            .reply(
                                session,
                                Reply::json(429, "rate_limited", "too many requests; slow down")
                                    .with("retry-after", "1".into()),
                            )
                            .await;
                    }
                }
                if self.refuse_oversized(session, ctx, declared_length).await? {
                    return Ok(true);
                }
                ctx.upstream = Some(self.internal);
                Ok(false)
            }
            Route::Agent { id, path } => {
                if self.refuse_oversized(session, ctx, declared_length).await? {
                    return Ok(true);
                }
                self.agent_request(session, ctx, id, path).await
            }
            Route::Port { id, port } => {
                if self.refuse_oversized(session, ctx, declared_length).await? {
                    return Ok(true);
                }
                self.port_request(session, ctx, id, port).await
            }
        }
    }

    /// The upstream after the first address was stale: the session looked up again, once.
    async fn fresh_upstream(&self, ctx: &Ctx) -> Option<SocketAddr> {
        let id = ctx.active_session.as_ref()?;
        let view = self.sessions.fresh_view(id).await.ok().flatten()?;
        match &ctx.route {
            Some(Route::Port { port, .. }) => view.port_addr(*port),
            _ if view.phase == Phase::Ready => view.agent,
            _ => None,
        }
    }

    /// Whether a failed connection may be retried with a fresh lookup (the address was from a
    /// session, not the gateway's own server); marks the retry as taken.
    fn take_retry(&self, ctx: &mut Ctx) -> bool {
        let retry = !ctx.retried
            && ctx.active_session.is_some()
            && !matches!(ctx.route, Some(Route::Internal));
        if retry {
            if let Some(id) = &ctx.active_session {
                self.sessions.forget(id);
            }
            ctx.retried = true;
            ctx.upstream = None;
        }
        retry
    }

    /// The request as the upstream gets it: forwarded-for headers, the rewritten path, the
    /// gateway's cookies removed and the participant's token as a bearer token.
    fn rewrite_upstream_request(
        &self,
        client: Option<IpAddr>,
        upstream: &mut RequestHeader,
        ctx: &Ctx,
    ) -> Result<()> {
        if let Some(client) = client {
            upstream.insert_header("x-forwarded-for", client.to_string())?;
        }
        upstream.insert_header("x-forwarded-proto", self.public_url.scheme())?;
        if let Some(path) = &ctx.upstream_path {
            let uri = path
                .parse()
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "rewritten path"))?;
            upstream.set_uri(uri);
        }
        // The gateway's cookies are the gateway's: the session's programs never see them (its
        // own server reads them).
        if matches!(ctx.route, Some(Route::Internal)) {
            return Ok(());
        }
        let cookies: Vec<String> = upstream
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                auth::without_cookie(v, auth::SESSION_COOKIE)
                    .and_then(|v| auth::without_cookie(&v, auth::PORT_COOKIE))
            })
            .collect();
        upstream.remove_header("cookie");
        for value in cookies {
            upstream.append_header("cookie", value)?;
        }
        if let Some(token) = &ctx.agent_token
            && upstream.headers.get("authorization").is_none()
        {
            upstream.insert_header("authorization", format!("Bearer {token}"))?;
        }
        Ok(())
    }

    /// Relays a routed WebSocket upgrade (see [`crate::tunnel`]) until either side ends.
    async fn tunnel(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let mut request = session.req_header().clone();
        self.rewrite_upstream_request(client_ip(session), &mut request, ctx)?;
        let mut upstream = loop {
            let Some(addr) = ctx.upstream else {
                return self
                    .bad_gateway(session, "the session is not reachable")
                    .await;
            };
            match tunnel::connect(addr).await {
                Ok(stream) => break stream,
                Err(error) if self.take_retry(ctx) => {
                    tracing::info!(session = ?ctx.active_session, %error, "stale session address; looking it up again");
                    ctx.upstream = self.fresh_upstream(ctx).await;
                }
                Err(error) => return self.bad_gateway(session, &error.to_string()).await,
            }
        };
        if let Some((id, port)) = &ctx.revocable_port {
            match self.revocable.register(id, *port, &upstream) {
                Ok(registration) => ctx._registration = Some(registration),
                Err(error) => return self.bad_gateway(session, &error.to_string()).await,
            }
        }
        let mut answer = match tunnel::handshake(&mut upstream, &request).await {
            Ok(answer) => answer,
            Err(error) => return self.bad_gateway(session, &error.to_string()).await,
        };
        let ours = matches!(ctx.route, Some(Route::Internal));
        if !answer.switched() {
            // Refused: relay the answer as a plain response with a known length.
            let body = tunnel::refusal_body(&mut upstream, &mut answer).await;
            let mut response = answer.response;
            for framing in [
                "transfer-encoding",
                "content-length",
                "connection",
                "keep-alive",
            ] {
                response.remove_header(framing);
            }
            if !matches!(response.status.as_u16(), 204 | 304) {
                response.insert_header("content-length", body.len().to_string())?;
            }
            self.security_headers(&mut response, ours)?;
            session
                .write_response_header(Box::new(response), body.is_empty())
                .await?;
            if !body.is_empty() {
                session.write_response_body(Some(body), true).await?;
            }
            return Ok(());
        }
        let mut response = answer.response;
        // A 101 has no body: a length here would only keep pingora from sending it at once.
        for framing in ["transfer-encoding", "content-length"] {
            response.remove_header(framing);
        }
        self.security_headers(&mut response, ours)?;
        session
            .write_response_header(Box::new(response), false)
            .await?;
        let activity = self.sessions.activity.clone();
        let id = ctx.active_session.clone();
        let last_touch = std::cell::Cell::new(None::<std::time::Instant>);
        tunnel::relay(session, upstream, answer.rest, move || {
            // A participant's message (an edit, a keystroke, a heartbeat) is activity; once a
            // second is plenty for an idle clock counted in minutes.
            let now = std::time::Instant::now();
            if last_touch
                .get()
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
                && let Some(id) = &id
            {
                last_touch.set(Some(now));
                activity.touch(id);
            }
        })
        .await
    }

    async fn bad_gateway(&self, session: &mut Session, why: &str) -> Result<()> {
        tracing::warn!(error = why, "WebSocket not relayed");
        let page = pages::error("Bad gateway", "The session did not accept the connection.");
        self.reply(session, Reply::page(502, page))
            .await
            .map(|_| ())
    }
}

fn unauthorized(message: &str) -> Reply {
    Reply::page(401, pages::error("Not signed in", message))
}

fn not_found() -> Reply {
    Reply::page(
        404,
        pages::error(
            "No such session",
            "This session does not exist, or it was deleted.",
        ),
    )
}

fn unavailable(message: &str) -> Reply {
    Reply::page(503, pages::error("Unavailable", message)).with("retry-after", "2".into())
}

fn waking(phase: &Phase) -> Reply {
    Reply::page(503, pages::waking(crate::api::phase_message(phase)))
        .with("retry-after", "2".into())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if session.is_upgrade_req() {
            // pingora stops reading a quiet client after 60 s; a WebSocket may rightly be quiet
            // for much longer (a forwarded app's socket, an idle terminal).
            session.set_read_timeout(None);
        }
        let req = session.req_header();
        let route = classify(&self.domain, host(req), req.uri.path());
        ctx.route = Some(route.clone());
        ctx.body_limit = self.max_body_bytes;
        let declared_length = header(req, "content-length").and_then(|v| v.parse::<u64>().ok());

        let answered = self
            .route_request(session, ctx, route, declared_length)
            .await?;
        if answered {
            return Ok(true);
        }
        if tunnel::is_websocket(session) {
            self.tunnel(session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.retried && ctx.upstream.is_none() {
            ctx.upstream = self.fresh_upstream(ctx).await;
        }
        let upstream = ctx.upstream.ok_or_else(|| {
            Error::explain(ErrorType::HTTPStatus(502), "the session is not reachable")
        })?;
        let mut peer = HttpPeer::new(upstream, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        if let Some((id, port)) = &ctx.revocable_port {
            let (connector, registration) = self.revocable.connector(id, *port);
            peer.options.custom_l4 = Some(Arc::new(connector));
            // Its own pool group: a pooled connection would bypass the connector.
            let mut group = [0u8; 8];
            let _ = getrandom::fill(&mut group);
            peer.group_key = u64::from_le_bytes(group);
            ctx._registration = Some(registration);
        }
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut error: Box<Error>,
    ) -> Box<Error> {
        if self.take_retry(ctx) {
            tracing::info!(session = ?ctx.active_session, %error, "stale session address; looking it up again");
            error.set_retry(true);
        }
        error
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.rewrite_upstream_request(client_ip(session), upstream, ctx)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(chunk) = body else {
            return Ok(());
        };
        if session.was_upgraded() {
            // A participant's message (an edit, a keystroke, a heartbeat): activity.
            if let Some(id) = &ctx.active_session {
                self.sessions.activity.touch(id);
            }
            return Ok(());
        }
        ctx.body_bytes += chunk.len() as u64;
        if ctx.body_bytes > ctx.body_limit {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body over the limit",
            ));
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let ours = matches!(ctx.route, Some(Route::Internal));
        self.security_headers(response, ours)
    }
}
