//! Helpers shared by the fuzz targets: documents and text that stress code-point handling.

use arbitrary::{Arbitrary, Unstructured};

/// Characters the targets build text from: ASCII, 2- and 3-byte UTF-8, a combining mark, astral
/// emoji (4 bytes, 2 UTF-16 units), CJK, a ZWJ sequence piece and newlines. Positions are code
/// points, so every one of these must count as exactly one.
pub const ALPHABET: [char; 12] = [
    'a', 'b', 'c', ' ', '\n', 'é', '\u{301}', '漢', '字', '😀', '🎉', '\u{200d}',
];

/// The first `n` code points of a fixed mixed-script text, repeated as needed.
pub fn sample_text(n: usize) -> String {
    const SAMPLE: &str = "héllo 😀 wörld\n漢字かな e\u{301} 👩\u{200d}💻 🎉\n";
    SAMPLE.chars().cycle().take(n).collect()
}

/// Text chosen by the fuzzer: mostly from [`ALPHABET`] (so multi-byte characters are common),
/// sometimes any string at all.
#[derive(Debug)]
pub struct FuzzText(pub String);

impl<'a> Arbitrary<'a> for FuzzText {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.ratio(1, 8)? {
            return Ok(FuzzText(String::arbitrary(u)?));
        }
        let len = u.int_in_range(0..=12)?;
        let mut s = String::new();
        for _ in 0..len {
            s.push(*u.choose(&ALPHABET)?);
        }
        Ok(FuzzText(s))
    }
}

/// Code-point length, as the OT module counts.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}
