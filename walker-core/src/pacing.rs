//! How long the worker sleeps once it has read all the WAL written so far.
//!
//! While WAL is flowing the worker comes back after a short nap, so its lag behind the
//! flush position stays within a few milliseconds; each nap that finds nothing new
//! doubles, up to `walker.naptime`, so an idle server costs a handful of wake-ups per
//! second.

/// The nap while WAL is flowing (ms).
pub const FLOWING_NAP_MS: u64 = 5;

/// The next nap (ms) after one that lasted `previous_ms`: the short one when the last
/// read found records, else twice the previous, between [`FLOWING_NAP_MS`] and
/// `longest_ms` (`walker.naptime`).
pub fn next_nap_ms(previous_ms: u64, found_records: bool, longest_ms: u64) -> u64 {
    let longest = longest_ms.max(FLOWING_NAP_MS);
    if found_records {
        FLOWING_NAP_MS
    } else {
        previous_ms.saturating_mul(2).clamp(FLOWING_NAP_MS, longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_while_flowing_doubling_to_the_naptime_when_idle() {
        assert_eq!(next_nap_ms(200, true, 200), 5);
        let mut nap = 5;
        let mut seen = Vec::new();
        for _ in 0..8 {
            nap = next_nap_ms(nap, false, 200);
            seen.push(nap);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 200, 200, 200]);
        // A naptime shorter than the flowing nap is not undercut.
        assert_eq!(next_nap_ms(5, false, 1), 5);
        assert_eq!(next_nap_ms(0, false, 200), 5);
        assert_eq!(next_nap_ms(u64::MAX, false, 200), 200);
    }
}
