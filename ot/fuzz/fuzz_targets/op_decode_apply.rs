//! Bytes off the wire → `TextOperation` (ot.js JSON) → applied to a document.
//!
//! Whatever parses must apply to a document of its base length (giving exactly its target
//! length, the same through a `&str` and a rope), be refused by any other document, and
//! survive serialize → parse unchanged.

#![no_main]

use huddle_ot::{OtError, TextOperation};
use huddle_ot_fuzz::{char_len, sample_text};
use libfuzzer_sys::fuzz_target;
use ropey::Rope;

/// Documents longer than this are not built (a parsed op may claim any base length).
const MAX_DOC: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(op) = serde_json::from_str::<TextOperation>(json) else {
        return;
    };

    // Round trip: the wire form of an accepted op is accepted again and means the same op.
    let wire = serde_json::to_string(&op)
        .unwrap_or_else(|e| panic!("accepted op {op:?} does not serialize: {e}"));
    let again: TextOperation = serde_json::from_str(&wire)
        .unwrap_or_else(|e| panic!("serialized op {wire} does not parse: {e}"));
    assert_eq!(again, op, "round trip through {wire} changed the op");
    assert_eq!(serde_json::to_string(&again).ok().as_deref(), Some(&*wire));

    // A document of the right length: must apply.
    if op.base_len() <= MAX_DOC {
        let doc = sample_text(op.base_len());
        let out = op
            .apply_str(&doc)
            .unwrap_or_else(|e| panic!("{wire} on a document of its base length: {e}"));
        assert_eq!(char_len(&out), op.target_len(), "{wire}: wrong target length");
        let mut rope = Rope::from_str(&doc);
        op.apply(&mut rope)
            .unwrap_or_else(|e| panic!("{wire} on a rope of its base length: {e}"));
        assert_eq!(rope.to_string(), out, "{wire}: rope and str disagree");
        // Identity ops compose away.
        let mut id_before = TextOperation::new();
        id_before.retain(op.base_len());
        let mut id_after = TextOperation::new();
        id_after.retain(op.target_len());
        assert_eq!(TextOperation::compose(&id_before, &op).as_ref(), Ok(&op));
        assert_eq!(TextOperation::compose(&op, &id_after).as_ref(), Ok(&op));
    }

    // A document of some other length, derived from the input: must be refused, untouched.
    let n = data.len() % 48;
    let doc = sample_text(n);
    let result = op.apply_str(&doc);
    let mut rope = Rope::from_str(&doc);
    let rope_result = op.apply(&mut rope);
    if n == op.base_len() {
        let out = result.unwrap_or_else(|e| panic!("{wire} on {doc:?}: {e}"));
        assert_eq!(rope_result, Ok(()));
        assert_eq!(rope.to_string(), out);
    } else {
        let refused = OtError::BaseLenMismatch {
            expected: op.base_len(),
            actual: n,
        };
        assert_eq!(result, Err(refused.clone()));
        assert_eq!(rope_result, Err(refused));
        assert_eq!(rope.to_string(), doc, "a refused op changed the rope");
    }
});
