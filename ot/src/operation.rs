//! Text operations: the unit of change in collaborative editing.
//!
//! An operation walks the whole document from start to end as a list of components: keep `n`
//! characters (retain), insert a string, or remove `n` characters (delete). Walking the *whole*
//! document (rather than "insert at position p") is what makes `compose` and `transform` simple
//! linear merges of two component lists, exactly as in ot.js, whose wire format we share with the
//! TypeScript client.
//!
//! All lengths and positions are in Unicode scalar values (Rust `char`s, "code points"), never in
//! bytes or UTF-16 units, so the server and a browser agree on every index regardless of
//! encoding. (The TypeScript side must count with `Array.from(s).length`, not `s.length`.)

use std::fmt;

use ropey::Rope;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most text, in UTF-8 bytes, one operation may insert. A keystroke or a paste is far below
/// this; the limit keeps a single hostile message from growing a document without bound.
pub const MAX_INSERT_BYTES: usize = 1024 * 1024;

/// Largest length an operation may have or imply: 2^53 - 1, the largest integer a browser's
/// `JSON.parse` reads exactly. Anything longer could not round-trip to the web client (and no
/// document is that long); the fuzzer found that a delete of 2^63 parsed but could not be sent.
pub const MAX_LENGTH: usize = (1 << 53) - 1;

/// Why an operation could not be built, applied, composed or transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtError {
    #[error("operation expects a document of {expected} characters, but it has {actual}")]
    BaseLenMismatch { expected: usize, actual: usize },
    #[error(
        "cannot compose: the first operation produces {first_target} characters, \
         the second expects {second_base}"
    )]
    ComposeMismatch {
        first_target: usize,
        second_base: usize,
    },
    #[error("cannot transform operations over different documents ({a} and {b} characters)")]
    TransformMismatch { a: usize, b: usize },
    #[error("operation inserts {bytes} bytes, more than the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("operation lengths exceed 2^53 - 1")]
    LengthOverflow,
}

/// One step of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// Keep this many characters unchanged.
    Retain(usize),
    /// Insert this text at the current position (never empty in a built operation).
    Insert(String),
    /// Remove this many characters at the current position.
    Delete(usize),
}

/// A normalized sequence of [`Component`]s.
///
/// Normalized means: no zero-length components, no two adjacent components of the same kind,
/// and an insert always comes before a delete at the same position. Two operations with the same
/// effect therefore have the same components, so `==` compares effects and the JSON form is
/// canonical. The builder methods ([`retain`](Self::retain), [`insert`](Self::insert),
/// [`delete`](Self::delete)) maintain this, so there is no way to build a non-normalized one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextOperation {
    ops: Vec<Component>,
    base_len: usize,
    target_len: usize,
    /// Inserted UTF-8 bytes, kept so the size limit is O(1) to check.
    insert_bytes: usize,
}

/// Length of `s` in code points.
pub(crate) fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Splits `s` after its first `n` code points (or at its end if it is shorter).
fn split_chars(s: &str, n: usize) -> (&str, &str) {
    match s.char_indices().nth(n) {
        Some((byte, _)) => s.split_at(byte),
        None => (s, ""),
    }
}

impl TextOperation {
    /// The empty operation (over the empty document).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an operation from components, normalizing them and checking lengths and size.
    /// This is the door for anything that did not come from the builder methods.
    pub fn from_components(
        components: impl IntoIterator<Item = Component>,
    ) -> Result<Self, OtError> {
        let mut op = Self::new();
        for c in components {
            // Checked here so the builder methods below may add freely.
            match &c {
                Component::Retain(n) => {
                    op.base_len.checked_add(*n).ok_or(OtError::LengthOverflow)?;
                    op.target_len
                        .checked_add(*n)
                        .ok_or(OtError::LengthOverflow)?;
                }
                Component::Delete(n) => {
                    op.base_len.checked_add(*n).ok_or(OtError::LengthOverflow)?;
                }
                Component::Insert(s) => {
                    let bytes = op.insert_bytes.saturating_add(s.len());
                    if bytes > MAX_INSERT_BYTES {
                        return Err(OtError::TooLarge {
                            bytes,
                            limit: MAX_INSERT_BYTES,
                        });
                    }
                    // Bytes bound code points from above, so this check is conservative.
                    op.target_len
                        .checked_add(s.len())
                        .ok_or(OtError::LengthOverflow)?;
                }
            }
            op.push(c);
            if op.base_len > MAX_LENGTH || op.target_len > MAX_LENGTH {
                return Err(OtError::LengthOverflow);
            }
        }
        Ok(op)
    }

    fn push(&mut self, c: Component) {
        match c {
            Component::Retain(n) => self.retain(n),
            Component::Insert(s) => self.insert(&s),
            Component::Delete(n) => self.delete(n),
        };
    }

    /// Appends "keep `n` characters".
    pub fn retain(&mut self, n: usize) -> &mut Self {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        self.target_len += n;
        if let Some(Component::Retain(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Component::Retain(n));
        }
        self
    }

    /// Appends "insert `s`". An insert right after a delete is moved in front of it (the two
    /// orders have the same effect; fixing one keeps the form canonical, as ot.js does).
    pub fn insert(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self;
        }
        self.target_len += char_len(s);
        self.insert_bytes += s.len();
        let len = self.ops.len();
        match self.ops.as_mut_slice() {
            [.., Component::Insert(last)] => last.push_str(s),
            [.., Component::Insert(before), Component::Delete(_)] => before.push_str(s),
            [.., Component::Delete(_)] => {
                self.ops.insert(len - 1, Component::Insert(s.to_owned()));
            }
            _ => self.ops.push(Component::Insert(s.to_owned())),
        }
        self
    }

    /// Appends "remove `n` characters".
    pub fn delete(&mut self, n: usize) -> &mut Self {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        if let Some(Component::Delete(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Component::Delete(n));
        }
        self
    }

    /// The components, normalized.
    pub fn components(&self) -> &[Component] {
        &self.ops
    }

    /// Length (code points) of the document this operation applies to.
    pub fn base_len(&self) -> usize {
        self.base_len
    }

    /// Length (code points) of the document it produces.
    pub fn target_len(&self) -> usize {
        self.target_len
    }

    /// UTF-8 bytes of inserted text.
    pub fn insert_bytes(&self) -> usize {
        self.insert_bytes
    }

    /// True when applying it changes nothing (only retains, or nothing at all).
    pub fn is_noop(&self) -> bool {
        self.ops.iter().all(|c| matches!(c, Component::Retain(_)))
    }

    /// Checks the [`MAX_INSERT_BYTES`] limit. Deserialization already enforces it; call this on
    /// operations built in-process before accepting them from a client.
    pub fn check_size(&self) -> Result<(), OtError> {
        if self.insert_bytes > MAX_INSERT_BYTES {
            return Err(OtError::TooLarge {
                bytes: self.insert_bytes,
                limit: MAX_INSERT_BYTES,
            });
        }
        Ok(())
    }

    /// Applies the operation to a rope in place. The length is checked first, so on error the
    /// rope is unchanged.
    pub fn apply(&self, rope: &mut Rope) -> Result<(), OtError> {
        let actual = rope.len_chars();
        if actual != self.base_len {
            return Err(OtError::BaseLenMismatch {
                expected: self.base_len,
                actual,
            });
        }
        let mut pos = 0;
        for c in &self.ops {
            // The try_ variants cannot fail after the length check; they are used so that a
            // broken invariant surfaces as an error rather than a panic in the server.
            let broken = |_| OtError::BaseLenMismatch {
                expected: self.base_len,
                actual,
            };
            match c {
                Component::Retain(n) => pos += n,
                Component::Insert(s) => {
                    rope.try_insert(pos, s).map_err(broken)?;
                    pos += char_len(s);
                }
                Component::Delete(n) => rope.try_remove(pos..pos + n).map_err(broken)?,
            }
        }
        Ok(())
    }

    /// Applies the operation to a string, returning the new string.
    pub fn apply_str(&self, text: &str) -> Result<String, OtError> {
        let actual = char_len(text);
        if actual != self.base_len {
            return Err(OtError::BaseLenMismatch {
                expected: self.base_len,
                actual,
            });
        }
        let mut out = String::with_capacity(text.len() + self.insert_bytes);
        let mut rest = text;
        for c in &self.ops {
            match c {
                Component::Retain(n) => {
                    let (keep, after) = split_chars(rest, *n);
                    out.push_str(keep);
                    rest = after;
                }
                Component::Insert(s) => out.push_str(s),
                Component::Delete(n) => rest = split_chars(rest, *n).1,
            }
        }
        Ok(out)
    }

    /// The single operation with the effect of `a` followed by `b`.
    ///
    /// Used by the client to fold local edits made while waiting for an ack into one buffer.
    pub fn compose(a: &Self, b: &Self) -> Result<Self, OtError> {
        if a.target_len != b.base_len {
            return Err(OtError::ComposeMismatch {
                first_target: a.target_len,
                second_base: b.base_len,
            });
        }
        let mut out = Self::new();
        let mut i1 = a.ops.iter().cloned();
        let mut i2 = b.ops.iter().cloned();
        let (mut o1, mut o2) = (i1.next(), i2.next());
        loop {
            match (o1.take(), o2.take()) {
                (None, None) => break,
                // What `a` deletes, `b` never sees.
                (Some(Component::Delete(n)), other) => {
                    out.delete(n);
                    o1 = i1.next();
                    o2 = other;
                }
                // What `b` inserts, `a` never saw.
                (other, Some(Component::Insert(s))) => {
                    out.insert(&s);
                    o1 = other;
                    o2 = i2.next();
                }
                // Unreachable after the length check; kept as an error, never a panic.
                (None, Some(_)) | (Some(_), None) => {
                    return Err(OtError::ComposeMismatch {
                        first_target: a.target_len,
                        second_base: b.base_len,
                    });
                }
                (Some(Component::Retain(n1)), Some(Component::Retain(n2))) => {
                    let m = n1.min(n2);
                    out.retain(m);
                    (o1, o2) = leftovers(n1, n2, Component::Retain, Component::Retain);
                    o1 = o1.or_else(|| i1.next());
                    o2 = o2.or_else(|| i2.next());
                }
                (Some(Component::Retain(n1)), Some(Component::Delete(n2))) => {
                    out.delete(n1.min(n2));
                    (o1, o2) = leftovers(n1, n2, Component::Retain, Component::Delete);
                    o1 = o1.or_else(|| i1.next());
                    o2 = o2.or_else(|| i2.next());
                }
                (Some(Component::Insert(s)), Some(Component::Retain(n2))) => {
                    let (head, tail) = split_chars(&s, n2);
                    out.insert(head);
                    let l = char_len(head);
                    o1 = if tail.is_empty() {
                        i1.next()
                    } else {
                        Some(Component::Insert(tail.to_owned()))
                    };
                    o2 = if l < n2 {
                        Some(Component::Retain(n2 - l))
                    } else {
                        i2.next()
                    };
                }
                // `b` deletes what `a` inserted: the two cancel out.
                (Some(Component::Insert(s)), Some(Component::Delete(n2))) => {
                    let (head, tail) = split_chars(&s, n2);
                    let l = char_len(head);
                    o1 = if tail.is_empty() {
                        i1.next()
                    } else {
                        Some(Component::Insert(tail.to_owned()))
                    };
                    o2 = if l < n2 {
                        Some(Component::Delete(n2 - l))
                    } else {
                        i2.next()
                    };
                }
            }
        }
        Ok(out)
    }

    /// Transforms two concurrent operations over the same document into `(a', b')` such that
    /// `apply(apply(doc, a), b') == apply(apply(doc, b), a')` (TP1).
    ///
    /// Tie-break (ot.js): when both insert at the same position, `a`'s text ends up first.
    /// The server passes the *incoming* client operation as `a` and the already-applied history
    /// operation as `b`, and the client passes its own unacknowledged operation as `a` and the
    /// server's operation as `b`: on both sides the operation the server sequenced later is `a`,
    /// so both make the same choice and converge.
    pub fn transform(a: &Self, b: &Self) -> Result<(Self, Self), OtError> {
        if a.base_len != b.base_len {
            return Err(OtError::TransformMismatch {
                a: a.base_len,
                b: b.base_len,
            });
        }
        let mut a_prime = Self::new();
        let mut b_prime = Self::new();
        let mut i1 = a.ops.iter().cloned();
        let mut i2 = b.ops.iter().cloned();
        let (mut o1, mut o2) = (i1.next(), i2.next());
        loop {
            match (o1.take(), o2.take()) {
                (None, None) => break,
                // Inserts go through untouched; the other side retains over them. `a` is matched
                // first, which is the tie-break.
                (Some(Component::Insert(s)), other) => {
                    b_prime.retain(char_len(&s));
                    a_prime.insert(&s);
                    o1 = i1.next();
                    o2 = other;
                }
                (other, Some(Component::Insert(s))) => {
                    a_prime.retain(char_len(&s));
                    b_prime.insert(&s);
                    o1 = other;
                    o2 = i2.next();
                }
                (None, Some(_)) | (Some(_), None) => {
                    return Err(OtError::TransformMismatch {
                        a: a.base_len,
                        b: b.base_len,
                    });
                }
                (Some(Component::Retain(n1)), Some(Component::Retain(n2))) => {
                    let m = n1.min(n2);
                    a_prime.retain(m);
                    b_prime.retain(m);
                    (o1, o2) = leftovers(n1, n2, Component::Retain, Component::Retain);
                }
                // Both deleted the same text: neither needs to delete it again.
                (Some(Component::Delete(n1)), Some(Component::Delete(n2))) => {
                    (o1, o2) = leftovers(n1, n2, Component::Delete, Component::Delete);
                }
                (Some(Component::Delete(n1)), Some(Component::Retain(n2))) => {
                    a_prime.delete(n1.min(n2));
                    (o1, o2) = leftovers(n1, n2, Component::Delete, Component::Retain);
                }
                (Some(Component::Retain(n1)), Some(Component::Delete(n2))) => {
                    b_prime.delete(n1.min(n2));
                    (o1, o2) = leftovers(n1, n2, Component::Retain, Component::Delete);
                }
            }
            o1 = o1.or_else(|| i1.next());
            o2 = o2.or_else(|| i2.next());
        }
        Ok((a_prime, b_prime))
    }
}

/// After consuming `min(n1, n2)` from two counted components, what is left of each
/// (`None` when one is used up).
fn leftovers(
    n1: usize,
    n2: usize,
    k1: fn(usize) -> Component,
    k2: fn(usize) -> Component,
) -> (Option<Component>, Option<Component>) {
    use std::cmp::Ordering::*;
    match n1.cmp(&n2) {
        Less => (None, Some(k2(n2 - n1))),
        Equal => (None, None),
        Greater => (Some(k1(n1 - n2)), None),
    }
}

// ----- wire format (ot.js): [retain: positive int, insert: string, delete: negative int] -----

impl Serialize for TextOperation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.ops.len()))?;
        for c in &self.ops {
            match c {
                Component::Retain(n) => seq.serialize_element(&(*n as u64))?,
                Component::Insert(s) => seq.serialize_element(s)?,
                Component::Delete(n) => {
                    let n = i64::try_from(*n)
                        .map_err(|_| serde::ser::Error::custom("delete too long for the wire"))?;
                    seq.serialize_element(&-n)?
                }
            }
        }
        seq.end()
    }
}

/// One wire element, decoded strictly: integers and strings only, no zero, no empty string.
struct WireComponent(Component);

impl<'de> Deserialize<'de> for WireComponent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireComponent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-zero integer or a non-empty string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v == 0 {
                    return Err(E::custom("zero-length component"));
                }
                let n = usize::try_from(v)
                    .ok()
                    .filter(|n| *n <= MAX_LENGTH)
                    .ok_or_else(|| E::custom("retain longer than 2^53 - 1"))?;
                Ok(WireComponent(Component::Retain(n)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v >= 0 {
                    return self.visit_u64(v.unsigned_abs());
                }
                let n = usize::try_from(v.unsigned_abs())
                    .ok()
                    .filter(|n| *n <= MAX_LENGTH)
                    .ok_or_else(|| E::custom("delete longer than 2^53 - 1"))?;
                Ok(WireComponent(Component::Delete(n)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.is_empty() {
                    return Err(E::custom("empty insert"));
                }
                if v.len() > MAX_INSERT_BYTES {
                    return Err(E::custom("insert too large"));
                }
                Ok(WireComponent(Component::Insert(v.to_owned())))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for TextOperation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextOperation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of operation components")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut comps = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                let mut bytes = 0usize;
                while let Some(WireComponent(c)) = seq.next_element()? {
                    // Stop early rather than buffer an oversized message in full.
                    if let Component::Insert(s) = &c {
                        bytes = bytes.saturating_add(s.len());
                        if bytes > MAX_INSERT_BYTES {
                            return Err(de::Error::custom(OtError::TooLarge {
                                bytes,
                                limit: MAX_INSERT_BYTES,
                            }));
                        }
                    }
                    comps.push(c);
                }
                TextOperation::from_components(comps).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> TextOperation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn lengths_a_browser_cannot_represent_are_refused() {
        // Found by the op_decode_apply fuzz target: these parsed but could not be serialized.
        for json in [
            "[-9223372036854775808]",
            "[2,-9223372036854775808]",
            "[9007199254740992]",
            "[-4503599627370496,-4503599627370496]",
        ] {
            assert!(
                serde_json::from_str::<TextOperation>(json).is_err(),
                "{json} accepted"
            );
        }
        let largest = op("[-9007199254740991]");
        let wire = serde_json::to_string(&largest).unwrap();
        assert_eq!(
            serde_json::from_str::<TextOperation>(&wire).unwrap(),
            largest
        );
    }

    #[test]
    fn builder_normalizes() {
        let mut o = TextOperation::new();
        o.retain(2)
            .retain(0)
            .retain(1)
            .delete(2)
            .insert("ab")
            .insert("")
            .insert("c")
            .delete(1);
        assert_eq!(
            o.components(),
            &[
                Component::Retain(3),
                Component::Insert("abc".into()),
                Component::Delete(3)
            ]
        );
        assert_eq!(o.base_len(), 6);
        assert_eq!(o.target_len(), 6);
    }

    #[test]
    fn lengths_count_code_points() {
        let mut o = TextOperation::new();
        o.insert("😀é\u{301}漢");
        assert_eq!(o.target_len(), 4); // emoji, e, combining acute, CJK
        assert_eq!(o.insert_bytes(), "😀é\u{301}漢".len());
    }

    #[test]
    fn apply_rope_and_str_agree_on_non_ascii() {
        let doc = "a😀b\u{301}c漢字";
        let o = op(r#"[1, -1, "🎉x", 3, -1, 1]"#);
        let expected = "a🎉xb\u{301}c字";
        assert_eq!(o.apply_str(doc).unwrap(), expected);
        let mut rope = Rope::from_str(doc);
        o.apply(&mut rope).unwrap();
        assert_eq!(rope.to_string(), expected);
    }

    #[test]
    fn apply_rejects_wrong_length_and_leaves_rope_alone() {
        let o = op("[3]");
        let mut rope = Rope::from_str("ab");
        assert_eq!(
            o.apply(&mut rope),
            Err(OtError::BaseLenMismatch {
                expected: 3,
                actual: 2
            })
        );
        assert_eq!(rope.to_string(), "ab");
        assert!(o.apply_str("abcd").is_err());
    }

    #[test]
    fn compose_example() {
        let a = op(r#"[1, "X", -1, 1]"#); // "abc" -> "aXc"
        let b = op(r#"[2, "😀", 1]"#); // "aXc" -> "aX😀c"
        let ab = TextOperation::compose(&a, &b).unwrap();
        assert_eq!(ab.apply_str("abc").unwrap(), "aX😀c");
        assert_eq!(ab, op(r#"[1, "X😀", -1, 1]"#));
        assert!(TextOperation::compose(&b, &b).is_err());
    }

    #[test]
    fn compose_insert_then_delete_cancels() {
        let a = op(r#"["héllo"]"#);
        let b = op(r#"[1, -3, 1]"#);
        assert_eq!(TextOperation::compose(&a, &b).unwrap(), op(r#"["ho"]"#));
    }

    #[test]
    fn transform_tie_puts_first_argument_first() {
        let a = op(r#"[1, "A", 1]"#);
        let b = op(r#"[1, "B", 1]"#);
        let (ap, bp) = TextOperation::transform(&a, &b).unwrap();
        let left = ap.apply_str(&b.apply_str("xy").unwrap()).unwrap();
        let right = bp.apply_str(&a.apply_str("xy").unwrap()).unwrap();
        assert_eq!(left, "xABy");
        assert_eq!(left, right);
    }

    #[test]
    fn transform_overlapping_deletes() {
        let a = op("[1, -3, 1]"); // delete "bcd" of "abcde"
        let b = op("[2, -3]"); // delete "cde"
        let (ap, bp) = TextOperation::transform(&a, &b).unwrap();
        assert_eq!(ap, op("[1, -1]"));
        assert_eq!(bp, op("[1, -1]"));
        assert!(TextOperation::transform(&a, &op("[4]")).is_err());
    }

    #[test]
    fn wire_round_trip() {
        let o = op(r#"[3, "ab", -2, 5]"#);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"[3,"ab",-2,5]"#);
        assert_eq!(o.base_len(), 10);
        assert_eq!(o.target_len(), 10);
    }

    #[test]
    fn wire_accepts_unnormalized_input_and_normalizes_it() {
        let o = op(r#"[1, 2, -1, "a", "b", -1]"#);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"[3,"ab",-2]"#);
    }

    #[test]
    fn wire_rejects_malformed() {
        for bad in [
            "[0]",
            r#"[""]"#,
            "[1.5]",
            "[true]",
            "[null]",
            "[[1]]",
            r#"{"a":1}"#,
            "1",
            "\"a\"",
            "[18446744073709551616]",
            "[-9223372036854775809]",
            "[1,",
            "[9223372036854775807, 9223372036854775807, 9223372036854775807]",
        ] {
            assert!(
                serde_json::from_str::<TextOperation>(bad).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn wire_rejects_too_large_insert() {
        let big = "x".repeat(MAX_INSERT_BYTES / 2 + 1);
        let json = serde_json::to_string(&[&big, &big]).unwrap();
        assert!(serde_json::from_str::<TextOperation>(&json).is_err());
        let one = serde_json::to_string(&[&big]).unwrap();
        assert!(serde_json::from_str::<TextOperation>(&one).is_ok());
        let comps = vec![Component::Insert(big.clone()), Component::Insert(big)];
        assert!(matches!(
            TextOperation::from_components(comps),
            Err(OtError::TooLarge { .. })
        ));
    }

    #[test]
    fn noop_detection() {
        assert!(op("[5]").is_noop());
        assert!(op("[]").is_noop());
        assert!(!op("[-1]").is_noop());
    }
}
