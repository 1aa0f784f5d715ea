//! Time-limited TURN credentials for a session's voice, in the TURN REST API convention that
//! coturn checks with `--use-auth-secret`: username `<expiry unix seconds>:<session>`,
//! credential `base64(HMAC-SHA1(shared secret, username))`. The shared secret stays with the
//! operator; each session's Secret gets only credentials for that session, which expire.
//!
//! The expiry is the end of the week after the current one, so the credentials are the same
//! for every reconcile within a week (applying the Secret again changes nothing) and are
//! always valid for at least a week.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::Value;

/// Credentials change once per window and stay valid for one more.
const WINDOW_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("the ICE servers are not a JSON array of objects: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the ICE servers are not a JSON array of objects")]
    NotAnArray,
}

/// `ice_servers` (RTCIceServer JSON) with credentials added to every TURN server that has
/// none, for `session` at `now` (Unix seconds).
pub fn with_credentials(
    ice_servers: &str,
    secret: &str,
    session: &str,
    now: i64,
) -> Result<String, TurnError> {
    let mut servers: Value = serde_json::from_str(ice_servers)?;
    let list = servers.as_array_mut().ok_or(TurnError::NotAnArray)?;
    let expiry = (now.div_euclid(WINDOW_SECS) + 2) * WINDOW_SECS;
    let username = format!("{expiry}:{session}");
    let credential = credential(secret, &username);
    for server in list {
        let server = server.as_object_mut().ok_or(TurnError::NotAnArray)?;
        if is_turn(server.get("urls")) && !server.contains_key("username") {
            server.insert("username".into(), Value::String(username.clone()));
            server.insert("credential".into(), Value::String(credential.clone()));
        }
    }
    Ok(servers.to_string())
}

fn is_turn(urls: Option<&Value>) -> bool {
    let turn = |url: &Value| {
        url.as_str()
            .is_some_and(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    };
    match urls {
        Some(Value::Array(urls)) => urls.iter().any(turn),
        Some(url) => turn(url),
        None => false,
    }
}

fn credential(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_servers_without_credentials_get_session_credentials() {
        let servers = r#"[
            {"urls": ["turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp"]},
            {"urls": "turn:other.example", "username": "static", "credential": "kept"},
            {"urls": ["stun:stun.example"]}
        ]"#;
        let now = 1_800_000_000;
        let out: Value =
            serde_json::from_str(&with_credentials(servers, "s3cret", "abc", now).unwrap())
                .unwrap();
        let username = out[0]["username"].as_str().unwrap();
        let (expiry, session) = username.split_once(':').unwrap();
        let expiry: i64 = expiry.parse().unwrap();
        assert_eq!(session, "abc");
        assert!(expiry - now >= WINDOW_SECS && expiry - now <= 2 * WINDOW_SECS);
        // What coturn computes from the same secret and username (RFC 2104 HMAC-SHA1, base64).
        assert_eq!(out[0]["credential"], credential("s3cret", username));
        assert_eq!(
            credential("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
        assert_eq!(out[1]["username"], "static");
        assert_eq!(out[1]["credential"], "kept");
        assert!(
            out[2].get("username").is_none(),
            "STUN needs no credentials"
        );
        // The same within the window: applying the Secret again changes nothing.
        assert_eq!(
            with_credentials(servers, "s3cret", "abc", now).unwrap(),
            with_credentials(servers, "s3cret", "abc", now + 60).unwrap()
        );
    }

    #[test]
    fn malformed_ice_servers_are_an_error() {
        for bad in ["{}", "not json", "[1]"] {
            assert!(with_credentials(bad, "s", "abc", 0).is_err(), "{bad}");
        }
    }
}
