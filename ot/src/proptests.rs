//! Property tests of the algebra the protocol relies on: TP1 convergence of `transform`,
//! `compose` agreeing with sequential application, the wire format, and hostile input.

use proptest::prelude::*;
use ropey::Rope;

use super::cursor::{Bias, transform_index};
use super::operation::TextOperation;

/// Characters that stress code-point handling: ASCII, 2- and 3-byte UTF-8, a combining mark,
/// astral emoji (2 UTF-16 units), and newlines.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'e'),
        1 => Just('é'),
        1 => Just('\u{301}'),
        1 => Just('漢'),
        1 => Just('😀'),
        1 => Just('\n'),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// A random operation over a document of `len` characters, built from a list of choices.
fn op_for(len: usize) -> impl Strategy<Value = TextOperation> {
    prop::collection::vec((0u8..3, 1usize..6, text(4)), 0..8).prop_map(move |steps| {
        let mut op = TextOperation::new();
        let mut left = len;
        for (kind, n, s) in steps {
            match kind {
                0 => {
                    let n = n.min(left);
                    op.retain(n);
                    left -= n;
                }
                1 => {
                    op.insert(&s);
                }
                _ => {
                    let n = n.min(left);
                    op.delete(n);
                    left -= n;
                }
            }
        }
        op.retain(left);
        op
    })
}

fn doc_and_two_ops() -> impl Strategy<Value = (String, TextOperation, TextOperation)> {
    text(30).prop_flat_map(|doc| {
        let len = doc.chars().count();
        (Just(doc), op_for(len), op_for(len))
    })
}

fn doc_and_sequential_ops() -> impl Strategy<Value = (String, TextOperation, TextOperation)> {
    text(30)
        .prop_flat_map(|doc| {
            let len = doc.chars().count();
            (Just(doc), op_for(len))
        })
        .prop_flat_map(|(doc, a)| {
            let len = a.target_len();
            (Just(doc), Just(a), op_for(len))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn transform_converges_tp1((doc, a, b) in doc_and_two_ops()) {
        let (ap, bp) = TextOperation::transform(&a, &b).unwrap();
        let left = bp.apply_str(&a.apply_str(&doc).unwrap()).unwrap();
        let right = ap.apply_str(&b.apply_str(&doc).unwrap()).unwrap();
        prop_assert_eq!(&left, &right);
        // The rope path agrees with the string path.
        let mut rope = Rope::from_str(&doc);
        a.apply(&mut rope).unwrap();
        bp.apply(&mut rope).unwrap();
        prop_assert_eq!(rope.to_string(), left);
    }

    #[test]
    fn compose_equals_sequential_apply((doc, a, b) in doc_and_sequential_ops()) {
        let ab = TextOperation::compose(&a, &b).unwrap();
        let sequential = b.apply_str(&a.apply_str(&doc).unwrap()).unwrap();
        prop_assert_eq!(ab.apply_str(&doc).unwrap(), sequential);
        prop_assert_eq!(ab.base_len(), a.base_len());
        prop_assert_eq!(ab.target_len(), b.target_len());
    }

    #[test]
    fn wire_round_trip((_doc, a, _b) in doc_and_two_ops()) {
        let json = serde_json::to_string(&a).unwrap();
        let back: TextOperation = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn transformed_cursor_stays_in_bounds((doc, a, _b) in doc_and_two_ops(), at in 0usize..40) {
        let _ = doc;
        for bias in [Bias::Before, Bias::After] {
            prop_assert!(transform_index(at, &a, bias) <= a.target_len());
        }
    }
}

/// JSON values likely to hit edge cases of the decoder: odd numbers, nesting, wrong types.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from("")),
        ".{0,5}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 16, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(".{0,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn malformed_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(op) = serde_json::from_slice::<TextOperation>(&bytes) {
            let _ = op.apply_str("");
        }
    }

    #[test]
    fn arbitrary_json_values_never_panic(value in json_value(), doc in text(10)) {
        let json = serde_json::to_string(&value).unwrap();
        if let Ok(op) = serde_json::from_str::<TextOperation>(&json) {
            // Whatever decodes is usable: apply either works or reports a length mismatch.
            let mut rope = Rope::from_str(&doc);
            let _ = op.apply(&mut rope);
            let _ = op.apply_str(&doc);
            let _ = TextOperation::transform(&op, &op);
            let _ = TextOperation::compose(&op, &op);
        }
    }
}
