//! What differs between PostgreSQL majors in the WAL records walker's plugins decode,
//! and the one check every plugin makes at start: [`Format::for_server`].
//!
//! The differences, per major (read from each major's `heapam_xlog.h`, `xact.h` and
//! `pg_control.h`):
//!
//! | what | 15 | 16 | 17 | 18 |
//! |---|---|---|---|---|
//! | `sizeof(xl_xact_stats_item)` | 12 | 12 | 12 | 16 (`objid_lo`, `objid_hi`) |
//! | heap2 0x10 / 0x20 / 0x30 | PRUNE / VACUUM / FREEZE_PAGE | same (PRUNE adds `isCatalogRel`) | PRUNE_ON_ACCESS / PRUNE_VACUUM_SCAN / PRUNE_VACUUM_CLEANUP (`xl_heap_prune`, flags-driven block data) | same as 17 |
//! | online checkpoint's redo pointer | insert position at its start | same | the `XLOG_CHECKPOINT_REDO` record | same as 17 |
//! | visibility-map bits set by | `XLOG_HEAP2_VISIBLE` | same | same (prune records carry no VM flags) | same |
//! | heap visibility-map block reference | no | no | from 17.11 | from 18.6 |
//! | data checksums at initdb | off | off | off | on (hint-bit full-page images) |
//!
//! `CheckPoint.redo` (byte 0) and `CheckPoint.time` (byte 64) hold for all four. The
//! visibility-map reference and the hint-bit images need no format switch: the
//! decoders select block references by id *and* fork, never by count or position,
//! and treat `XLOG_FPI_FOR_HINT` as a record that changes no tuple.

/// The oldest server this crate decodes (`server_version_num`).
pub const OLDEST: u32 = 150_000;
/// The first server this crate does not decode: PostgreSQL 19 changed
/// `xl_heap_prune` to `{u16 flags}` and stopped emitting `XLOG_HEAP2_VISIBLE`.
pub const FIRST_UNKNOWN: u32 = 190_000;

/// How heap2 records 0x10, 0x20 and 0x30 are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneLayout {
    /// 15 and 16: PRUNE `{xid; u16 nredirected; u16 ndead}` with the offsets in block
    /// 0's data, VACUUM `{u16 nunused}`, FREEZE_PAGE (no tuple dies).
    Separate,
    /// 17 and 18: PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN and PRUNE_VACUUM_CLEANUP, all
    /// `xl_heap_prune {u8 reason; u8 flags}` with flags-driven block 0 data.
    Merged,
}

/// What differs between PostgreSQL majors in the records decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// The server's `server_version_num` this format was chosen for.
    pub server_version_num: u32,
    /// Its major (15, 16, ...).
    pub major: u32,
    /// `sizeof(xl_xact_stats_item)`: 12 on 15, 16 and 17; 16 on 18.
    pub stats_item: usize,
    /// Layout of heap2 pruning and vacuum records.
    pub prune: PruneLayout,
    /// The server writes `XLOG_CHECKPOINT_REDO` (17 on): an online checkpoint's redo
    /// pointer is that record's LSN.
    pub checkpoint_redo_record: bool,
}

/// A server whose WAL this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("walker-decode reads the WAL of PostgreSQL 15 to 18; this server is {major} (server_version_num {server_version_num})")]
pub struct UnsupportedServer {
    /// What the server said.
    pub server_version_num: u32,
    /// Its major.
    pub major: u32,
}

impl Format {
    /// The format of the server whose `server_version_num` is `v` (e.g. 170011), or
    /// why there is none. The one version check of every plugin that decodes WAL.
    pub fn for_server(v: u32) -> Result<Format, UnsupportedServer> {
        let major = v / 10_000;
        if !(OLDEST..FIRST_UNKNOWN).contains(&v) {
            return Err(UnsupportedServer {
                server_version_num: v,
                major,
            });
        }
        Ok(Format {
            server_version_num: v,
            major,
            stats_item: if major >= 18 { 16 } else { 12 },
            prune: if major >= 17 {
                PruneLayout::Merged
            } else {
                PruneLayout::Separate
            },
            checkpoint_redo_record: major >= 17,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_major_from_15_to_18_and_nothing_else() {
        let f = |v| {
            Format::for_server(v)
                .map(|f| (f.major, f.stats_item, f.prune, f.checkpoint_redo_record))
        };
        assert_eq!(f(150_015), Ok((15, 12, PruneLayout::Separate, false)));
        assert_eq!(f(160_015), Ok((16, 12, PruneLayout::Separate, false)));
        assert_eq!(f(170_011), Ok((17, 12, PruneLayout::Merged, true)));
        assert_eq!(f(180_006), Ok((18, 16, PruneLayout::Merged, true)));
        for v in [140_020, 190_000, 190_001, 0] {
            let e = Format::for_server(v).unwrap_err();
            assert_eq!(e.server_version_num, v);
            assert!(e.to_string().contains("15 to 18"), "{e}");
        }
    }
}
