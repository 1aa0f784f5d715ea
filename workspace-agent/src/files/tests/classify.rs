use crate::files::{Content, TEXT_LIMIT, classify};

#[test]
fn ascii_and_multibyte_utf8_are_text() {
    assert_eq!(classify(b""), Content::Text);
    assert_eq!(classify(b"fn main() {}\n"), Content::Text);
    assert_eq!(
        classify("héllo wörld, 日本語, 🎉\n".as_bytes()),
        Content::Text
    );
}

#[test]
fn nul_byte_is_binary() {
    assert_eq!(classify(b"abc\0def"), Content::Binary);
}

#[test]
fn invalid_utf8_is_binary() {
    assert_eq!(classify(&[0x66, 0x6f, 0xff, 0x6f]), Content::Binary);
    // A multi-byte character cut short.
    let cut = &"日".as_bytes()[..2];
    assert_eq!(classify(cut), Content::Binary);
    // PNG signature.
    assert_eq!(
        classify(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]),
        Content::Binary
    );
}

#[test]
fn size_limit_is_inclusive() {
    assert_eq!(classify(&vec![b'a'; TEXT_LIMIT]), Content::Text);
    assert_eq!(classify(&vec![b'a'; TEXT_LIMIT + 1]), Content::Binary);
}
