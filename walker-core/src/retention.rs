//! How much WAL walker may hold back, and what to do past the bound.
//!
//! walker's replication slot keeps every WAL segment it has not processed. The
//! operator bounds that (`walker.max_retained_wal`); past the bound walker releases
//! the WAL it has not read, records the gap (from, to, why) and goes on from there.

/// Where to continue after releasing WAL beyond the bound, or `None` within it.
///
/// `processed` is where walking would continue, `durable` the end of WAL written so
/// far, `bound` the most bytes that may lie between (`None`: unbounded). The new
/// position keeps exactly `bound` bytes behind `durable`, rounded up to a segment
/// start so that no partial segment is kept for nothing.
pub fn release_point(
    processed: u64,
    durable: u64,
    bound: Option<u64>,
    segment_size: u64,
) -> Option<u64> {
    let bound = bound?;
    let held = durable.saturating_sub(processed);
    if held <= bound {
        return None;
    }
    let keep_from = durable.saturating_sub(bound);
    let seg = segment_size.max(1);
    let rounded = keep_from.div_ceil(seg).saturating_mul(seg);
    Some(rounded.min(durable).max(processed))
}

/// First byte of WAL still on disk, given the last removed segment number.
pub fn oldest_available(last_removed_segno: u64, segment_size: u64) -> u64 {
    last_removed_segno
        .saturating_add(1)
        .saturating_mul(segment_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    #[test]
    fn within_the_bound_nothing_is_released() {
        assert_eq!(release_point(100, 100 + SEG, Some(SEG), SEG), None);
        assert_eq!(release_point(100, 10 * SEG, None, SEG), None, "unbounded");
        assert_eq!(
            release_point(5 * SEG, 3 * SEG, Some(0), SEG),
            None,
            "ahead of durable"
        );
    }

    #[test]
    fn past_the_bound_keeps_bound_bytes_rounded_to_a_segment() {
        // 10 segments written, walker at 1 segment, bound 4 segments: keep from
        // segment 6 (10 - 4), already a segment start.
        assert_eq!(
            release_point(SEG, 10 * SEG, Some(4 * SEG), SEG),
            Some(6 * SEG)
        );
        // Durable mid-segment: 10.5 segments - 4 = 6.5 -> round up to 7.
        assert_eq!(
            release_point(SEG, 10 * SEG + SEG / 2, Some(4 * SEG), SEG),
            Some(7 * SEG)
        );
        // A zero bound releases everything up to durable.
        assert_eq!(
            release_point(SEG, 3 * SEG + 5, Some(0), SEG),
            Some(3 * SEG + 5)
        );
    }

    #[test]
    fn oldest_segment_start() {
        assert_eq!(oldest_available(0, SEG), SEG);
        assert_eq!(oldest_available(2, SEG), 3 * SEG);
        assert_eq!(oldest_available(u64::MAX, SEG), u64::MAX);
    }
}
