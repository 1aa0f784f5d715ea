//! Signed participant tokens. The gateway issues them (owner link, editor and viewer invites);
//! the agent checks them on join. A token is `base64url(claims JSON) "." base64url(HMAC-SHA256)`
//! with a key both sides share; the claims carry the session, the person's name, their role and
//! an expiry, so a token cannot be moved to another session, upgraded, or used after it expires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Role;

/// Longest token accepted, so a huge string is refused before any decoding work.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Shortest signing key accepted: 256 bits.
pub const MIN_KEY_LEN: usize = 32;

/// Domain separation for [`TokenKey::for_session`].
const SESSION_KEY_LABEL: &[u8] = b"huddle session key v1\0";

/// Session `session_id`'s key in the two forms its holders need: the text an agent is given in
/// `HUDDLE_TOKEN_KEY` (unpadded base64url of the 32 bytes [`TokenKey::for_session`] derives),
/// and the [`TokenKey`] that text stands for.
///
/// The contract: an agent reads `HUDDLE_TOKEN_KEY` as a string and signs with its UTF-8 bytes
/// (`TokenKey::new(text.into_bytes())`), so the key a session's tokens are signed with is the
/// *text*, not the raw derived bytes. The operator puts the text in the session's Secret; the
/// gateway signs with the returned key. Both call this function, so they cannot disagree.
pub fn session_key(master: &TokenKey, session_id: &str) -> (String, TokenKey) {
    let text = URL_SAFE_NO_PAD.encode(&master.for_session(session_id).key);
    // 43 characters of base64url: always over MIN_KEY_LEN.
    let key = TokenKey {
        key: text.clone().into_bytes(),
    };
    (text, key)
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970): the `now` of
/// [`TokenKey::verify`] and the base of [`Claims::exp`].
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The session the token opens.
    pub sid: String,
    /// Display name.
    pub name: String,
    /// What the bearer may do.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// A stable id for the person (so two tabs of one person are one participant); the
    /// gateway picks it.
    pub uid: String,
}

impl Claims {
    /// Claims for `name` (participant id `uid`) in session `sid`, valid for `ttl_secs` from
    /// now.
    pub fn new(
        sid: impl Into<String>,
        name: impl Into<String>,
        uid: impl Into<String>,
        role: Role,
        ttl_secs: u64,
    ) -> Self {
        Self {
            sid: sid.into(),
            name: name.into(),
            role,
            exp: now_unix().saturating_add(ttl_secs),
            uid: uid.into(),
        }
    }
}

/// Why a token was refused. Messages are safe to show to the client: they never echo the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is for another session")]
    WrongSession,
    #[error("signing key must be at least {MIN_KEY_LEN} bytes")]
    WeakKey,
}

/// Signs and verifies tokens with one shared key.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let key = key.into();
        if key.len() < MIN_KEY_LEN {
            return Err(TokenError::WeakKey);
        }
        Ok(Self { key })
    }

    /// Session `session_id`'s own key: the 32 bytes HMAC-SHA256(master, "huddle session key
    /// v1\0" || session id).
    ///
    /// Why: the gateway and the operator hold one master key; each session pod gets only its
    /// own derived key, so someone with a shell in one session pod cannot mint tokens for any
    /// other session (HMAC cannot be inverted to the master, nor one session's key turned into
    /// another's). Agents are handed this key as text: see [`session_key`] for the form every
    /// holder uses.
    pub fn for_session(&self, session_id: &str) -> TokenKey {
        let mut mac = self.mac();
        mac.update(SESSION_KEY_LABEL);
        mac.update(session_id.as_bytes());
        TokenKey {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// Issues a token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        // Claims are plain strings and numbers; serializing them cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks signature, expiry (against `now`, Unix seconds) and session, and returns the
    /// claims. The signature is checked first and in constant time, before the payload is
    /// parsed, so a forged token never reaches the JSON parser.
    pub fn verify(&self, token: &str, session_id: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.sid != session_id {
            return Err(TokenError::WrongSession);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> TokenKey {
        TokenKey::new([byte; 32]).unwrap()
    }

    #[test]
    fn session_key_derivation_is_pinned() {
        // Computed independently (Python's hmac): a change here breaks every deployed pair of
        // gateway and operator that do not upgrade together.
        let (text, key) = session_key(&master(1), "dxq7tqwh5jdyzdcnzkeqxwzl2a");
        assert_eq!(text, "2FODRC9hdEF-ignJUbgdMHgL1ItnLkd6V9LMSsGMbT8");
        assert_eq!(key.key, text.as_bytes());
        assert_eq!(
            master(1)
                .for_session("dxq7tqwh5jdyzdcnzkeqxwzl2a")
                .key
                .len(),
            32
        );
    }

    #[test]
    fn session_keys_are_deterministic_and_differ_per_session_and_master() {
        let derived = |m: u8, sid: &str| master(m).for_session(sid).key;
        assert_eq!(derived(1, "a"), derived(1, "a"));
        assert_ne!(derived(1, "a"), derived(1, "b"));
        assert_ne!(derived(1, "a"), derived(2, "a"));
    }

    #[test]
    fn a_token_signed_with_one_session_key_fails_with_another() {
        let claims = Claims::new("a", "n", "u", Role::Owner, 60);
        let token = master(1).for_session("a").sign(&claims);
        assert_eq!(
            master(1).for_session("b").verify(&token, "a", now_unix()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            master(1).for_session("a").verify(&token, "a", now_unix()),
            Ok(claims)
        );
    }

    #[test]
    fn claims_new_expires_after_the_ttl() {
        let before = now_unix();
        let claims = Claims::new("s", "Ada", "u1", Role::Editor, 300);
        assert!((before + 300..=now_unix() + 300).contains(&claims.exp));
        assert_eq!(
            (
                claims.sid.as_str(),
                claims.name.as_str(),
                claims.uid.as_str()
            ),
            ("s", "Ada", "u1")
        );
    }

    #[test]
    fn the_agents_text_key_verifies_what_the_gateway_signs() {
        let one = master(1);
        let (text_a, key_a) = session_key(&one, "a");
        assert_ne!(session_key(&one, "b").0, text_a);
        assert_ne!(session_key(&master(2), "a").0, text_a);
        // The agent's view of the key (its text's bytes) verifies what the gateway signs.
        let agent = TokenKey::new(text_a.as_bytes()).unwrap();
        let claims = Claims {
            sid: "a".into(),
            name: "n".into(),
            role: Role::Owner,
            exp: u64::MAX,
            uid: "u".into(),
        };
        let token = key_a.sign(&claims);
        assert_eq!(agent.verify(&token, "a", 0), Ok(claims.clone()));
        // Session b's key, or the master itself, does not.
        let (_, key_b) = session_key(&one, "b");
        assert!(key_b.verify(&token, "a", 0).is_err());
        assert!(one.verify(&token, "a", 0).is_err());
    }

    fn key() -> TokenKey {
        TokenKey::new([7u8; 32]).unwrap()
    }

    fn claims(role: Role) -> Claims {
        Claims {
            sid: "s1".into(),
            name: "Ada".into(),
            role,
            exp: 2_000,
            uid: "u1".into(),
        }
    }

    #[test]
    fn round_trip() {
        let token = key().sign(&claims(Role::Editor));
        assert_eq!(key().verify(&token, "s1", 1_000), Ok(claims(Role::Editor)));
    }

    #[test]
    fn expired_wrong_session_and_other_key() {
        let token = key().sign(&claims(Role::Owner));
        assert_eq!(key().verify(&token, "s1", 2_000), Err(TokenError::Expired));
        assert_eq!(
            key().verify(&token, "s2", 1_000),
            Err(TokenError::WrongSession)
        );
        let other = TokenKey::new([8u8; 32]).unwrap();
        assert_eq!(
            other.verify(&token, "s1", 1_000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_viewer_cannot_upgrade_itself() {
        let token = key().sign(&claims(Role::Viewer));
        let (_, signature) = token.split_once('.').unwrap();
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Role::Owner)).unwrap());
        let forged = format!("{forged_payload}.{signature}");
        assert_eq!(
            key().verify(&forged, "s1", 1_000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for token in [
            "",
            ".",
            "abc",
            "a.b.c",
            "!!!.???",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(key().verify(token, "s1", 0).is_err(), "{token:?} accepted");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(TokenKey::new([1u8; 16]).unwrap_err(), TokenError::WeakKey);
    }
}
