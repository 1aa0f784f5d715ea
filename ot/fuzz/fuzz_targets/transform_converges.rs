//! The OT algebra on fuzzer-chosen documents and operations:
//!
//! - TP1: `b'(a(doc)) == a'(b(doc))` for `(a', b') = transform(a, b)`, and
//!   `compose(a, b') == compose(b, a')`;
//! - `compose(a, c)(doc) == c(a(doc))` for `c` made on top of `a`;
//! - building from components normalizes exactly as the builder does;
//! - a rope and a `&str` give the same result;
//! - operations over different lengths are refused, never a panic.

#![no_main]

use arbitrary::Arbitrary;
use huddle_ot::{Component, TextOperation};
use huddle_ot_fuzz::{FuzzText, char_len};
use libfuzzer_sys::fuzz_target;
use ropey::Rope;

/// One step of an operation, before it is fitted to a document.
#[derive(Debug, Arbitrary)]
enum Step {
    Retain(u8),
    Insert(FuzzText),
    Delete(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    doc: Vec<FuzzText>,
    a: Vec<Step>,
    b: Vec<Step>,
    c: Vec<Step>,
}

/// The components of `steps` made valid on a document of `len` code points: counts are cut to
/// what is left and the rest of the document is retained at the end.
fn fit(steps: &[Step], len: usize) -> Vec<Component> {
    let mut left = len;
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Retain(n) => {
                let n = usize::from(*n).min(left);
                left -= n;
                out.push(Component::Retain(n));
            }
            Step::Delete(n) => {
                let n = usize::from(*n).min(left);
                left -= n;
                out.push(Component::Delete(n));
            }
            Step::Insert(FuzzText(s)) => out.push(Component::Insert(s.clone())),
        }
    }
    out.push(Component::Retain(left));
    out
}

/// Builds the op both ways (which must agree) and checks its lengths against `doc`.
fn build(steps: &[Step], doc: &str) -> TextOperation {
    let components = fit(steps, char_len(doc));
    let mut built = TextOperation::new();
    for c in &components {
        match c {
            Component::Retain(n) => built.retain(*n),
            Component::Insert(s) => built.insert(s),
            Component::Delete(n) => built.delete(*n),
        };
    }
    let from = TextOperation::from_components(components).expect("fitted op is valid");
    assert_eq!(from, built, "from_components and the builder normalize differently");
    assert_eq!(built.base_len(), char_len(doc));
    // Zero-length components are filtered out, counts merged (an insert always precedes the
    // delete it touches), so a valid op never has two neighbours of one kind.
    for pair in built.components().windows(2) {
        let same = std::mem::discriminant(&pair[0]) == std::mem::discriminant(&pair[1]);
        assert!(!same, "not normalized: {:?}", built.components());
        assert!(
            !matches!(pair, [Component::Delete(_), Component::Insert(_)]),
            "delete before insert: {:?}",
            built.components()
        );
    }
    built
}

/// `op` applied to `doc`, checked against a rope and the op's target length.
fn apply(op: &TextOperation, doc: &str) -> String {
    let out = op.apply_str(doc).expect("op applies to its own document");
    assert_eq!(char_len(&out), op.target_len());
    let mut rope = Rope::from_str(doc);
    op.apply(&mut rope).expect("op applies to its own rope");
    assert_eq!(rope.to_string(), out, "rope and str disagree");
    out
}

fuzz_target!(|input: Input| {
    let doc: String = input.doc.iter().map(|t| t.0.as_str()).collect();
    let a = build(&input.a, &doc);
    let b = build(&input.b, &doc);

    let after_a = apply(&a, &doc);
    let after_b = apply(&b, &doc);

    // TP1.
    let (a2, b2) = TextOperation::transform(&a, &b).expect("same base length");
    let left = apply(&b2, &after_a);
    let right = apply(&a2, &after_b);
    assert_eq!(left, right, "TP1 fails for {a:?} and {b:?} on {doc:?}");
    let ab2 = TextOperation::compose(&a, &b2).expect("a then b' compose");
    let ba2 = TextOperation::compose(&b, &a2).expect("b then a' compose");
    assert_eq!(apply(&ab2, &doc), left);
    assert_eq!(ab2, ba2, "both orders must compose to the same op");

    // Compose agrees with sequential application.
    let c = build(&input.c, &after_a);
    let after_c = apply(&c, &after_a);
    let ac = TextOperation::compose(&a, &c).expect("c is made on top of a");
    assert_eq!(apply(&ac, &doc), after_c, "compose differs from a then c");
    let mut identity = TextOperation::new();
    identity.retain(ac.target_len());
    assert_eq!(TextOperation::compose(&ac, &identity).as_ref(), Ok(&ac));

    // Mismatched lengths are errors.
    if c.base_len() != a.base_len() {
        assert!(TextOperation::transform(&a, &c).is_err());
    }
    if a.base_len() != a.target_len() {
        assert!(TextOperation::compose(&a, &a).is_err());
    }
});
