//! PostgreSQL's LZ format (pglz), decompression only, written from the format:
//! a control byte gives, low bit first, the kind of the next eight items; a 0 bit is
//! one literal byte, a 1 bit a back-reference of two or three bytes: the first byte's
//! low nibble is the length less 3 (15 means "18 plus a third byte"), its high nibble
//! and the second byte a 12-bit distance back into the output (1 to 4095). A
//! reference may overlap the bytes it produces.

/// Why pglz data does not decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PglzFault {
    /// A back-reference of distance 0 or before the output's start.
    BadReference,
    /// The input ends inside an item.
    Truncated,
    /// The output is not exactly the expected length, or input is left over.
    WrongLength,
}

/// Decompresses `src` into all of `dst`: the input must fill `dst` exactly and be
/// used up, as PostgreSQL requires of a full-page image.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<(), PglzFault> {
    let mut sp = 0usize;
    let mut dp = 0usize;
    while sp < src.len() && dp < dst.len() {
        let mut ctrl = src[sp];
        sp += 1;
        for _ in 0..8 {
            if sp >= src.len() || dp >= dst.len() {
                break;
            }
            if ctrl & 1 == 1 {
                let (Some(&b0), Some(&b1)) = (src.get(sp), src.get(sp + 1)) else {
                    return Err(PglzFault::Truncated);
                };
                let mut len = usize::from(b0 & 0x0f) + 3;
                let off = (usize::from(b0 & 0xf0) << 4) | usize::from(b1);
                sp += 2;
                if len == 18 {
                    let Some(&extra) = src.get(sp) else {
                        return Err(PglzFault::Truncated);
                    };
                    len += usize::from(extra);
                    sp += 1;
                }
                if off == 0 || off > dp {
                    return Err(PglzFault::BadReference);
                }
                let len = len.min(dst.len() - dp);
                // Byte by byte: the reference may overlap what it writes.
                for i in 0..len {
                    dst[dp + i] = dst[dp + i - off];
                }
                dp += len;
            } else {
                dst[dp] = src[sp];
                dp += 1;
                sp += 1;
            }
            ctrl >>= 1;
        }
    }
    if dp != dst.len() || sp != src.len() {
        return Err(PglzFault::WrongLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_references_and_overlap_by_hand() {
        // ctrl 0b0000_1000: three literals "abc", then a reference: length 3+3 = 6,
        // distance 3 -> "abcabc" (overlapping), total "abcabcabc".
        let src = [0b0000_1000, b'a', b'b', b'c', 0x03, 0x03];
        let mut dst = [0u8; 9];
        decompress(&src, &mut dst).unwrap();
        assert_eq!(&dst, b"abcabcabc");
        // A run: one literal, then length 18 + 100 at distance 1.
        let src = [0b0000_0010, b'z', 0x0f, 0x01, 100];
        let mut dst = [0u8; 119];
        decompress(&src, &mut dst).unwrap();
        assert!(dst.iter().all(|&b| b == b'z'));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let mut dst = [0u8; 9];
        // A reference before the start.
        assert_eq!(
            decompress(&[0b1, 0x03, 0x05], &mut dst),
            Err(PglzFault::BadReference)
        );
        // Cut inside a reference.
        assert_eq!(
            decompress(&[0b10, b'a', 0x03], &mut dst),
            Err(PglzFault::Truncated)
        );
        // Too short an output.
        assert_eq!(
            decompress(&[0, b'a'], &mut dst),
            Err(PglzFault::WrongLength)
        );
        // Input left over once the output is full.
        let mut one = [0u8; 1];
        assert_eq!(
            decompress(&[0, b'a', b'b'], &mut one),
            Err(PglzFault::WrongLength)
        );
        // Every 3-byte input over a small output: no panic.
        for a in 0..=255u8 {
            for b in [0u8, 1, 0x0f, 0x10, 0xff] {
                for c in [0u8, 1, 3, 0xff] {
                    let _ = decompress(&[a, b, c], &mut dst);
                }
            }
        }
    }
}
