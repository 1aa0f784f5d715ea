//! Checks `transform` against `golden/transform.json`, the cases the TypeScript client is
//! tested against too, so both sides provably make the same choices (ties included).

use serde::Deserialize;

use super::operation::TextOperation;

#[derive(Deserialize)]
struct Case {
    name: String,
    doc: String,
    a: TextOperation,
    b: TextOperation,
    a_prime: TextOperation,
    b_prime: TextOperation,
    result: String,
}

const GOLDEN: &str = include_str!("golden/transform.json");

#[test]
fn transform_matches_golden_cases() {
    let cases: Vec<Case> = serde_json::from_str(GOLDEN).unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let (ap, bp) = TextOperation::transform(&c.a, &c.b).unwrap();
        assert_eq!(ap, c.a_prime, "{}: a'", c.name);
        assert_eq!(bp, c.b_prime, "{}: b'", c.name);
        let via_a = bp.apply_str(&c.a.apply_str(&c.doc).unwrap()).unwrap();
        let via_b = ap.apply_str(&c.b.apply_str(&c.doc).unwrap()).unwrap();
        assert_eq!(via_a, c.result, "{}: a then b'", c.name);
        assert_eq!(via_b, c.result, "{}: b then a'", c.name);
    }
}

#[test]
fn golden_ops_are_in_canonical_wire_form() {
    // The file must read the same after a round trip, so a TypeScript implementation that
    // compares JSON directly agrees with it.
    let raw: Vec<serde_json::Value> = serde_json::from_str(GOLDEN).unwrap();
    for case in raw {
        for key in ["a", "b", "a_prime", "b_prime"] {
            let op: TextOperation = serde_json::from_value(case[key].clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&op).unwrap(),
                case[key],
                "{}: {key}",
                case["name"]
            );
        }
    }
}
