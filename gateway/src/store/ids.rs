//! Session ids: 128 random bits, written as 26 characters of lowercase base32.
//!
//! An id appears in URL paths (`/s/<id>/…`) and in DNS labels (`port-<N>-<id>.<domain>`), so it
//! must be a valid, case-insensitive DNS label character sequence and short enough that the
//! longest port prefix still fits a 63-character label: `port-65535-` (11) + 26 = 37.
//!
//! The alphabet is RFC 4648 base32 lowercased (`a-z`, `2-7`). 26 characters hold 130 bits; the
//! two spare bits are zero bits at the *front*, so the first character only takes the values
//! 0-7 (`a`-`h`). An id therefore always starts with a letter, which Kubernetes requires of a
//! Service name (a DNS-1035 label) and the session's Service is named after its id. Parsing
//! accepts exactly that form and nothing else, so the gateway can refuse odd ids (uppercase,
//! dots, percent-escapes, other lengths) before they reach a lookup, a log line or an upstream
//! address.

use std::fmt;
use std::str::FromStr;

/// Length of an encoded id: ceil(128 / 5).
pub const SESSION_ID_LEN: usize = 26;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A well-formed session id. The only ways to get one are [`new_session_id`] and
/// [`parse_session_id`] (or `str::parse`), so holding one means the format was checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_session_id(&text).map_err(serde::de::Error::custom)
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_session_id(s)
    }
}

/// Why a string is not a session id. Deliberately does not echo the input: it may be
/// attacker-controlled and arbitrarily long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSessionId {
    #[error("a session id has {SESSION_ID_LEN} characters, this one has {0}")]
    Length(usize),
    #[error("a session id uses only the characters a-z and 2-7")]
    Character,
    #[error("a session id encodes exactly 128 bits; its first character is one of a-h")]
    Padding,
}

/// The OS random number generator failed; no id can be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

/// A fresh session id: 128 bits from the OS random number generator.
pub fn new_session_id() -> Result<SessionId, RandomError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(SessionId(encode(&bytes)))
}

/// Accepts exactly the form [`new_session_id`] produces: 26 characters of `a-z2-7` whose first
/// character carries no bits beyond the 128 (so every id has one spelling and starts with a
/// letter).
pub fn parse_session_id(s: &str) -> Result<SessionId, InvalidSessionId> {
    if s.len() != SESSION_ID_LEN {
        return Err(InvalidSessionId::Length(s.len()));
    }
    let mut first = None;
    for b in s.bytes() {
        let value = value_of(b).ok_or(InvalidSessionId::Character)?;
        first.get_or_insert(value);
    }
    // 26 * 5 = 130 bits: the first character holds 2 bits of zero padding and 3 real bits.
    if first.is_some_and(|value| value >= 8) {
        return Err(InvalidSessionId::Padding);
    }
    Ok(SessionId(s.to_owned()))
}

fn value_of(b: u8) -> Option<u8> {
    match b {
        b'a'..=b'z' => Some(b - b'a'),
        b'2'..=b'7' => Some(b - b'2' + 26),
        _ => None,
    }
}

fn encode(bytes: &[u8; 16]) -> String {
    let bits = u128::from_be_bytes(*bytes);
    // Most significant first: the first character takes the top 3 bits (so it is a-h), each
    // of the other 25 the next 5.
    let mut out = String::with_capacity(SESSION_ID_LEN);
    for i in 0..SESSION_ID_LEN {
        let shift = 125 - 5 * i as u32;
        let mask = if i == 0 { 0b111 } else { 0b1_1111 };
        let index = (bits >> shift) & mask;
        out.push(char::from(ALPHABET[index as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_26_lowercase_base32_characters() {
        for _ in 0..1000 {
            let id = new_session_id().unwrap();
            assert_eq!(id.as_str().len(), SESSION_ID_LEN);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                "{id}"
            );
            assert_eq!(parse_session_id(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn ids_fit_a_dns_label_with_the_longest_port_prefix() {
        let id = new_session_id().unwrap();
        let label = format!("port-65535-{id}");
        assert_eq!(label.len(), 37);
        assert!(label.len() <= 63);
        // A DNS label: letters, digits and hyphens, starting with a letter, not ending in '-'.
        assert!(
            label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        );
        assert!(!label.ends_with('-'));
    }

    #[test]
    fn one_hundred_thousand_ids_are_distinct() {
        let ids: HashSet<SessionId> = (0..100_000).map(|_| new_session_id().unwrap()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn encoding_is_base32_of_the_bits_with_the_padding_in_front() {
        // Known values: all zeros, all ones, and one bit set at each end.
        assert_eq!(encode(&[0; 16]), "a".repeat(26));
        assert_eq!(encode(&[0xff; 16]), format!("h{}", "7".repeat(25)));
        let mut top = [0u8; 16];
        top[0] = 0x80;
        assert_eq!(encode(&top), format!("e{}", "a".repeat(25)));
        let mut bottom = [0u8; 16];
        bottom[15] = 0x01;
        assert_eq!(encode(&bottom), format!("{}b", "a".repeat(25)));
    }

    #[test]
    fn every_id_starts_with_a_letter() {
        for _ in 0..10_000 {
            let id = new_session_id().unwrap();
            assert!(matches!(id.as_str().as_bytes()[0], b'a'..=b'h'), "{id}");
        }
    }

    #[test]
    fn parse_rejects_everything_else() {
        let good = new_session_id().unwrap().to_string();
        let mut upper = good.clone();
        upper.make_ascii_uppercase();
        let cases = [
            (String::new(), InvalidSessionId::Length(0)),
            (good[..25].to_owned(), InvalidSessionId::Length(25)),
            (format!("{good}a"), InvalidSessionId::Length(27)),
            (upper, InvalidSessionId::Character),
            (format!("{}0", &good[..25]), InvalidSessionId::Character),
            (format!("{}1", &good[..25]), InvalidSessionId::Character),
            (format!("{}8", &good[..25]), InvalidSessionId::Character),
            (format!("{}=", &good[..25]), InvalidSessionId::Character),
            (format!(".{}", &good[1..]), InvalidSessionId::Character),
            (format!("-{}", &good[1..]), InvalidSessionId::Character),
            (format!("%2e{}", &good[3..]), InvalidSessionId::Character),
            (format!("{}/", &good[..25]), InvalidSessionId::Character),
            // 26 bytes, but not 26 characters of ASCII
            (format!("é{}", &good[2..]), InvalidSessionId::Character),
            // the first character's 2 padding bits must be zero: 'i' = 8, '2' = 26
            (format!("i{}", "a".repeat(25)), InvalidSessionId::Padding),
            (format!("2{}", "a".repeat(25)), InvalidSessionId::Padding),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_session_id(&input), Err(expected), "{input:?}");
        }
        assert!(parse_session_id(&format!("h{}", "7".repeat(25))).is_ok());
        assert!("not-an-id".parse::<SessionId>().is_err());
    }
}
