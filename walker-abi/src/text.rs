//! Cutting UTF-8 text to a byte bound, for the fixed-size buffers of the ABI and of
//! shared memory (messages, names, verdicts), so that a cut never splits a character.

/// The longest prefix of `s` that is at most `max` bytes long and ends at a character
/// boundary (all of `s` when it fits).
pub fn cut_utf8(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// Copies the longest prefix of `s` that fits `buf` ([`cut_utf8`]) to the start of
/// `buf`; returns its length in bytes.
pub fn copy_cut(buf: &mut [u8], s: &str) -> usize {
    let kept = cut_utf8(s, buf.len());
    buf[..kept.len()].copy_from_slice(kept.as_bytes());
    kept.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_between_characters() {
        // "é" is 2 bytes (C3 A9), "€" 3 (E2 82 AC).
        assert_eq!(cut_utf8("abc", 10), "abc");
        assert_eq!(cut_utf8("abc", 2), "ab");
        assert_eq!(cut_utf8("abc", 0), "");
        assert_eq!(cut_utf8("aé", 2), "a");
        assert_eq!(cut_utf8("aé", 3), "aé");
        assert_eq!(cut_utf8("€", 2), "");
        assert_eq!(cut_utf8("x€y", 3), "x");
        assert_eq!(cut_utf8("x€y", 4), "x€");
    }

    #[test]
    fn copies_the_cut_prefix() {
        let mut buf = [0xFFu8; 4];
        assert_eq!(copy_cut(&mut buf, "ab€"), 2);
        assert_eq!(buf, [b'a', b'b', 0xFF, 0xFF]);
        assert_eq!(copy_cut(&mut buf, "€"), 3);
        assert_eq!(buf, [0xE2, 0x82, 0xAC, 0xFF]);
        assert_eq!(copy_cut(&mut [], "abc"), 0);
    }
}
