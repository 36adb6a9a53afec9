//! How long the worker sleeps once it has read all the WAL written so far.
//!
//! While WAL is flowing the worker comes back after a short nap, so its lag behind the
//! flush position stays within a few milliseconds; each nap that finds nothing new
//! doubles, up to `walker.naptime`, so an idle server costs a handful of wake-ups per
//! second.
//!
//! Plugins hear that the walker caught up (`on_idle`, where they publish, settle and
//! tick) at once when WAL stops flowing, but at most every [`IDLE_WHILE_FLOWING_MS`]
//! while it flows: each batch already reaches them, and a publication of their whole
//! state after every 5 ms nap cost more than the records themselves.

/// The nap while WAL is flowing (ms).
pub const FLOWING_NAP_MS: u64 = 5;

/// While WAL flows, plugins hear that the walker caught up at most this often (ms).
pub const IDLE_WHILE_FLOWING_MS: u64 = 100;

/// Whether plugins are told the walker caught up, after a read that found records
/// (`found_records`) or not, `since_last_ms` after they were last told (`None`: never).
/// Always when the read found nothing (WAL stopped flowing), else when
/// [`IDLE_WHILE_FLOWING_MS`] passed.
pub fn idle_due(found_records: bool, since_last_ms: Option<u64>) -> bool {
    !found_records || since_last_ms.is_none_or(|ms| ms >= IDLE_WHILE_FLOWING_MS)
}

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
    fn caught_up_at_once_when_wal_stops_at_most_every_100_ms_while_it_flows() {
        assert!(idle_due(false, Some(0)), "nothing new: told at once");
        assert!(idle_due(false, None));
        assert!(idle_due(true, None), "never told before: told");
        assert!(
            !idle_due(true, Some(5)),
            "flowing, 5 ms after the last: not yet"
        );
        assert!(!idle_due(true, Some(99)));
        assert!(idle_due(true, Some(100)), "flowing, 100 ms after: told");
        // Naps of 5 ms while WAL flows for a second: told 10 times, not 200.
        let (mut since, mut told) = (None::<u64>, 0);
        for _ in 0..200 {
            if idle_due(true, since) {
                told += 1;
                since = Some(0);
            }
            since = since.map(|s| s + 5);
        }
        assert_eq!(told, 10);
    }

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
