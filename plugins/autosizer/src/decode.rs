//! The few WAL records the autosizer reads: checkpoints (redo pointer and start
//! time, decoded by `walker-decode` for the running major) and transaction ends
//! (their timestamp, which dates the WAL around them).

use walker_decode::Format;
pub use walker_decode::{RM_XACT_ID, RM_XLOG_ID};

/// What a record tells the autosizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A checkpoint record: its redo pointer, start time (µs since the Unix epoch),
    /// and whether it was a shutdown checkpoint.
    Checkpoint {
        /// Redo pointer.
        redo: u64,
        /// When the checkpoint started.
        time_us: i64,
        /// Written at shutdown (never forced by WAL).
        shutdown: bool,
    },
    /// A transaction ended at this time (µs since the Unix epoch).
    Time(i64),
}

/// Decodes a record's main data; `None` for anything else. PostgreSQL 17's
/// `XLOG_CHECKPOINT_REDO` is not a checkpoint: the online checkpoint record that
/// follows it carries its LSN as the redo pointer.
pub fn decode(rmid: u8, info: u8, main: &[u8], fmt: Format) -> Option<Event> {
    match rmid {
        RM_XLOG_ID => walker_decode::checkpoint(rmid, info, main, fmt).map(|c| Event::Checkpoint {
            redo: c.redo,
            time_us: c.time_s.saturating_mul(1_000_000),
            shutdown: c.shutdown,
        }),
        RM_XACT_ID => walker_decode::xact_end_time_us(rmid, info, main).map(Event::Time),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_fields_on_every_major() {
        let mut d = vec![0u8; 88];
        d[0..8].copy_from_slice(&0x0000_0001_0200_0028u64.to_le_bytes());
        d[64..72].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        for v in [150_000, 160_000, 170_011, 180_006] {
            let f = Format::for_server(v).unwrap();
            assert_eq!(
                decode(RM_XLOG_ID, 0x10, &d, f),
                Some(Event::Checkpoint {
                    redo: 0x1_0200_0028,
                    time_us: 1_700_000_000_000_000,
                    shutdown: false
                })
            );
            assert!(matches!(
                decode(RM_XLOG_ID, 0x00, &d, f),
                Some(Event::Checkpoint { shutdown: true, .. })
            ));
            // XLOG_SWITCH (0x40), CHECKPOINT_REDO (0xE0, main data: wal_level) and a
            // short record are not checkpoints.
            assert_eq!(decode(RM_XLOG_ID, 0x40, &d, f), None);
            assert_eq!(decode(RM_XLOG_ID, 0xE0, &[2, 0, 0, 0], f), None);
            assert_eq!(decode(RM_XLOG_ID, 0x10, &d[..70], f), None);
        }
    }

    #[test]
    fn commit_time_moves_to_the_unix_epoch() {
        let f = Format::for_server(150_000).unwrap();
        // 2000-01-01 00:00:01 in PostgreSQL's epoch is 946684801 s after 1970.
        let d = 1_000_000i64.to_le_bytes();
        assert_eq!(
            decode(RM_XACT_ID, 0x00, &d, f),
            Some(Event::Time(946_684_801_000_000))
        );
        // The XLOG_XACT_HAS_INFO bit (0x80) does not change the op.
        assert_eq!(
            decode(RM_XACT_ID, 0x80 | 0x20, &d, f),
            Some(Event::Time(946_684_801_000_000))
        );
        // PREPARE (0x10) carries no end time.
        assert_eq!(decode(RM_XACT_ID, 0x10, &d, f), None);
    }
}
