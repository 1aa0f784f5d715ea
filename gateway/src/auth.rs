//! Who a request is from: signed tokens, the cookies that carry them, and the admin key.
//!
//! Every session has its own signing key, derived from the gateway's master key (see
//! `huddle_protocol::token`), so an agent — and anyone with a shell in its pod — can only
//! mint tokens for its own session.
//!
//! Cookies:
//! - `huddle_session` on the session domain, `Path=/s/<id>/`: the participant's token, set when
//!   an invite or owner link (`?token=`) is opened, so the token leaves the URL at once.
//! - `huddle_port` on one port host (`port-<N>-<id>.<domain>`, no `Domain` attribute, so no
//!   other host sees it): set after a signed redirect from the session domain, see
//!   [`PORT_GRANT_TTL`].

use huddle_protocol::Role;
use huddle_protocol::token::{Claims, TokenError, TokenKey};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::SessionId;

/// The participant cookie on the session domain.
pub const SESSION_COOKIE: &str = "huddle_session";
/// The participant cookie on a port host.
pub const PORT_COOKIE: &str = "huddle_port";
/// How long a port grant (the signed redirect from the session domain to a port host) lives:
/// long enough for one redirect, too short to be worth stealing.
pub const PORT_GRANT_TTL: Duration = Duration::from_secs(60);
/// How long a port cookie lives (it is re-issued by another redirect after that).
pub const PORT_COOKIE_TTL: Duration = Duration::from_secs(12 * 3600);
/// Prefix of a port grant's `name` claim, so a grant is never taken for a participant token.
const GRANT_PREFIX: &str = "port-grant:";

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The gateway's keys.
#[derive(Clone, Debug)]
pub struct Keys {
    master: TokenKey,
    admin_token: Option<String>,
}

impl Keys {
    pub fn new(master: TokenKey, admin_token: Option<String>) -> Self {
        Self {
            master,
            admin_token: admin_token.filter(|token| !token.is_empty()),
        }
    }

    /// The key that signs session `id`'s tokens (the agent holds the same one).
    pub fn session_key(&self, id: &SessionId) -> TokenKey {
        huddle_protocol::token::session_key(&self.master, id.as_str()).1
    }

    /// The text form of session `id`'s key, as the agent reads it from `HUDDLE_TOKEN_KEY`.
    pub fn session_key_text(&self, id: &SessionId) -> String {
        huddle_protocol::token::session_key(&self.master, id.as_str()).0
    }

    /// Signs a participant token.
    pub fn issue(
        &self,
        id: &SessionId,
        name: &str,
        role: Role,
        uid: &str,
        ttl: Duration,
    ) -> String {
        let claims = Claims {
            sid: id.to_string(),
            name: name.to_owned(),
            role,
            exp: now_unix().saturating_add(ttl.as_secs()),
            uid: uid.to_owned(),
        };
        self.session_key(id).sign(&claims)
    }

    /// Checks a participant token for session `id`. Port grants are refused here.
    pub fn verify(&self, id: &SessionId, token: &str) -> Result<Claims, TokenError> {
        let claims = self
            .session_key(id)
            .verify(token, id.as_str(), now_unix())?;
        if claims.name.starts_with(GRANT_PREFIX) {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }

    /// A short-lived grant that lets `claims`' holder open `port` of the session.
    pub fn issue_port_grant(&self, id: &SessionId, claims: &Claims, port: u16) -> String {
        let grant = Claims {
            sid: id.to_string(),
            name: format!("{GRANT_PREFIX}{port}"),
            role: claims.role,
            exp: now_unix().saturating_add(PORT_GRANT_TTL.as_secs()),
            uid: claims.uid.clone(),
        };
        self.session_key(id).sign(&grant)
    }

    /// Checks a port grant for `port` of session `id` and returns the participant token to keep
    /// in that port host's cookie.
    pub fn redeem_port_grant(
        &self,
        id: &SessionId,
        port: u16,
        grant: &str,
    ) -> Result<String, TokenError> {
        let claims = self
            .session_key(id)
            .verify(grant, id.as_str(), now_unix())?;
        if claims.name != format!("{GRANT_PREFIX}{port}") {
            return Err(TokenError::Malformed);
        }
        Ok(self.issue(
            id,
            &format!("port {port}"),
            claims.role,
            &claims.uid,
            PORT_COOKIE_TTL,
        ))
    }

    /// Whether `bearer` is the admin token (compared in constant time).
    pub fn is_admin(&self, bearer: &str) -> bool {
        self.admin_token
            .as_deref()
            .is_some_and(|admin| constant_time_eq(admin.as_bytes(), bearer.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Removes cookie `name` from a `Cookie` header value; `None` when nothing is left.
pub fn without_cookie(header: &str, name: &str) -> Option<String> {
    let rest: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(key, _)| key != name))
        .collect();
    (!rest.is_empty()).then(|| rest.join("; "))
}

/// A `Set-Cookie` value: HttpOnly (scripts never see tokens), SameSite=Lax (sent on top-level
/// navigation from elsewhere, e.g. an invite link in chat, but not on cross-site subrequests).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    )
}

/// The value of query parameter `name` (not percent-decoded: tokens are base64url and ids are
/// base32, neither needs it).
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The query without parameter `name`.
pub fn without_query_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}

/// A redirect target taken from a request: only a path on the same host, never `//host` or a
/// scheme, so links cannot bounce people to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.contains(['\r', '\n']) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::new_session_id;

    fn keys() -> Keys {
        Keys::new(
            TokenKey::new([9u8; 32]).unwrap(),
            Some("admin-secret".into()),
        )
    }

    #[test]
    fn tokens_are_per_session() {
        let keys = keys();
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        let token = keys.issue(&a, "ada", Role::Editor, "u1", Duration::from_secs(60));
        let claims = keys.verify(&a, &token).unwrap();
        assert_eq!((claims.name.as_str(), claims.role), ("ada", Role::Editor));
        assert!(keys.verify(&b, &token).is_err());
        // Signed with the master key itself rather than the session's: refused.
        let forged = TokenKey::new([9u8; 32]).unwrap().sign(&claims);
        assert_eq!(keys.verify(&a, &forged), Err(TokenError::BadSignature));
        let expired = keys.issue(&a, "ada", Role::Owner, "u1", Duration::ZERO);
        assert_eq!(keys.verify(&a, &expired), Err(TokenError::Expired));
    }

    #[test]
    fn port_grants_only_open_their_port() {
        let keys = keys();
        let id = new_session_id().unwrap();
        let token = keys.issue(&id, "ada", Role::Viewer, "u1", Duration::from_secs(60));
        let claims = keys.verify(&id, &token).unwrap();
        let grant = keys.issue_port_grant(&id, &claims, 3000);
        // A grant is not a participant token, and only opens the port it names.
        assert!(keys.verify(&id, &grant).is_err());
        assert!(keys.redeem_port_grant(&id, 3001, &grant).is_err());
        let cookie = keys.redeem_port_grant(&id, 3000, &grant).unwrap();
        let cookie_claims = keys.verify(&id, &cookie).unwrap();
        assert_eq!(
            (cookie_claims.role, cookie_claims.uid.as_str()),
            (Role::Viewer, "u1")
        );
    }

    #[test]
    fn admin_token() {
        let keys = keys();
        assert!(keys.is_admin("admin-secret"));
        assert!(!keys.is_admin("admin-secreT"));
        assert!(!keys.is_admin(""));
        assert!(!Keys::new(TokenKey::new([1u8; 32]).unwrap(), Some(String::new())).is_admin(""));
    }

    #[test]
    fn cookies_and_queries() {
        let header = "a=1; huddle_session=tok.en; b=2";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("tok.en"));
        assert_eq!(cookie_value(header, "huddle"), None);
        assert_eq!(
            without_cookie(header, SESSION_COOKIE).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without_cookie("huddle_session=x", SESSION_COOKIE), None);
        assert_eq!(query_value("x=1&token=abc", "token"), Some("abc"));
        assert_eq!(without_query_param("x=1&token=abc&y", "token"), "x=1&y");
        let cookie = set_cookie("n", "v", "/s/x/", Duration::from_secs(5), true);
        assert_eq!(
            cookie,
            "n=v; Path=/s/x/; Max-Age=5; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn redirect_targets_stay_on_the_host() {
        assert_eq!(safe_next(Some("/app?x=1")), "/app?x=1");
        for bad in [
            "//evil.test/",
            "https://evil.test/",
            "/\\evil.test",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
