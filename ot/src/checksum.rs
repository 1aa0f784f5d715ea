//! The document checksum broadcast periodically so clients can detect divergence.
//!
//! CRC-32 (IEEE 802.3, the zlib/PNG polynomial, as computed by `crc32fast`) over the UTF-8 bytes
//! of the whole text. Chosen because it is fast (SIMD in `crc32fast`), stable forever (a fixed
//! standard, unlike `std`'s randomly seeded hashers), and a TypeScript client can compute the
//! same value with a 20-line table implementation over `new TextEncoder().encode(text)`. It is a
//! divergence detector, not a security check: 32 bits are plenty to notice a bug.

use ropey::Rope;

/// CRC-32 of a rope's UTF-8 bytes, streamed chunk by chunk (no copy of the text).
pub fn checksum_rope(rope: &Rope) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for chunk in rope.chunks() {
        hasher.update(chunk.as_bytes());
    }
    hasher.finalize()
}

/// CRC-32 of a string's UTF-8 bytes; equal to [`checksum_rope`] of the same text.
pub fn checksum_str(text: &str) -> u32 {
    crc32fast::hash(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The standard CRC-32 check value, and the empty string.
        assert_eq!(checksum_str("123456789"), 0xCBF4_3926);
        assert_eq!(checksum_str(""), 0);
        // UTF-8 bytes, not code points: "é" is C3 A9.
        assert_eq!(checksum_str("é"), crc32fast::hash(&[0xC3, 0xA9]));
    }

    #[test]
    fn rope_and_str_agree_across_chunks() {
        let text = "漢字😀e\u{301}\n".repeat(2000);
        assert_eq!(checksum_rope(&Rope::from_str(&text)), checksum_str(&text));
    }
}
