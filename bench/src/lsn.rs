//! WAL positions: PostgreSQL's `X/Y` text form (two hexadecimal halves) and `u64`.

/// Parses `X/Y` (each half up to 8 hexadecimal digits) into a byte position.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (hi, lo) = text
        .split_once('/')
        .ok_or_else(|| format!("not an LSN (X/Y): {text:?}"))?;
    let half = |h: &str| {
        if h.is_empty() || h.len() > 8 {
            return Err(format!("not an LSN (X/Y): {text:?}"));
        }
        u32::from_str_radix(h, 16).map_err(|_| format!("not an LSN (X/Y): {text:?}"))
    };
    Ok((u64::from(half(hi)?) << 32) | u64::from(half(lo)?))
}

/// Formats a byte position the way PostgreSQL does (`%X/%X`).
pub fn format(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("0/0"), Ok(0));
        assert_eq!(parse("0/16B3748"), Ok(0x16B_3748));
        assert_eq!(parse("1/0"), Ok(1 << 32));
        assert_eq!(parse("A/FF"), Ok(0xA_0000_00FF));
        assert_eq!(parse(" 2/10\n"), Ok((2 << 32) + 16));
        assert_eq!(format(0x16B_3748), "0/16B3748");
        assert_eq!(format((1 << 32) + 0xA), "1/A");
        assert_eq!(format(u64::MAX), "FFFFFFFF/FFFFFFFF");
        for l in [0, 1, 0xFFFF_FFFF, 1 << 32, 0x1234_5678_9ABC_DEF0] {
            assert_eq!(parse(&format(l)), Ok(l));
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "12", "/1", "1/", "x/1", "1/123456789", "-1/0"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
