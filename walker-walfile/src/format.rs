//! The on-disk facts of PostgreSQL's WAL that this crate reads, per major. Read from
//! `access/xlog_internal.h`, `access/xlogrecord.h` and `access/rmgrlist.h` of 15, 16,
//! 17 and 18: only the page magic differs between them; every layout, flag and
//! built-in resource manager below is the same in all four.

/// A PostgreSQL major whose WAL this crate reads, told by its page magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Major {
    /// PostgreSQL 15 (`XLOG_PAGE_MAGIC` 0xD110).
    Pg15,
    /// PostgreSQL 16 (0xD113).
    Pg16,
    /// PostgreSQL 17 (0xD116).
    Pg17,
    /// PostgreSQL 18 (0xD118).
    Pg18,
}

impl Major {
    /// Every major this crate reads, oldest first.
    pub const ALL: [Major; 4] = [Major::Pg15, Major::Pg16, Major::Pg17, Major::Pg18];

    /// The `XLOG_PAGE_MAGIC` of this major's WAL pages.
    pub const fn page_magic(self) -> u16 {
        match self {
            Major::Pg15 => 0xD110,
            Major::Pg16 => 0xD113,
            Major::Pg17 => 0xD116,
            Major::Pg18 => 0xD118,
        }
    }

    /// The major whose pages carry `magic`, if this crate reads it.
    pub fn from_page_magic(magic: u16) -> Option<Major> {
        Major::ALL.into_iter().find(|m| m.page_magic() == magic)
    }

    /// The major's number (15, 16, ...).
    pub const fn number(self) -> u32 {
        match self {
            Major::Pg15 => 15,
            Major::Pg16 => 16,
            Major::Pg17 => 17,
            Major::Pg18 => 18,
        }
    }
}

/// `XLOG_BLCKSZ`: the size of a WAL page. PostgreSQL can be built with another; this
/// crate reads only the default (the long page header says which a segment has).
pub const WAL_PAGE_SIZE: usize = 8192;
/// `BLCKSZ` of a default build: the size of a data page a full-page image restores.
pub const DEFAULT_BLOCK_SIZE: usize = 8192;
/// Smallest WAL segment size `initdb --wal-segsize` accepts (1 MiB).
pub const MIN_SEGMENT_SIZE: u32 = 1 << 20;
/// Largest (1 GiB).
pub const MAX_SEGMENT_SIZE: u32 = 1 << 30;

/// `SizeOfXLogShortPHD`: the page header of every page but a segment's first.
pub const SHORT_PAGE_HEADER: usize = 24;
/// `SizeOfXLogLongPHD`: the page header of a segment's first page.
pub const LONG_PAGE_HEADER: usize = 40;
/// `XLP_FIRST_IS_CONTRECORD`: the page starts with the rest of a record.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `XLP_LONG_HEADER`: the page has the long header.
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `XLP_ALL_FLAGS`: every page-header flag PostgreSQL defines.
pub const XLP_ALL_FLAGS: u16 = 0x000F;

/// `SizeOfXLogRecord`: the fixed record header.
pub const RECORD_HEADER: usize = 24;
/// `offsetof(XLogRecord, xl_crc)`: the header bytes the CRC covers.
pub const RECORD_CRC_OFFSET: usize = 20;
/// `MAXIMUM_ALIGNOF` on the 64-bit platforms PostgreSQL writes WAL on.
pub const MAXALIGN: u64 = 8;
/// `XLogRecordMaxSize` (1020 MiB): no valid record is longer.
pub const MAX_RECORD_SIZE: u32 = 1020 * 1024 * 1024;

/// `XLR_MAX_BLOCK_ID`: the highest block reference id.
pub const XLR_MAX_BLOCK_ID: u8 = 32;
/// `XLR_BLOCK_ID_DATA_SHORT`: main data with a 1-byte length.
pub const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
/// `XLR_BLOCK_ID_DATA_LONG`: main data with a 4-byte length.
pub const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
/// `XLR_BLOCK_ID_ORIGIN`: the replication origin (2 bytes).
pub const XLR_BLOCK_ID_ORIGIN: u8 = 253;
/// `XLR_BLOCK_ID_TOPLEVEL_XID`: the top-level transaction (4 bytes).
pub const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;

/// `BKPBLOCK_FORK_MASK`.
pub const BKPBLOCK_FORK_MASK: u8 = 0x0F;
/// `BKPBLOCK_HAS_IMAGE`.
pub const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
/// `BKPBLOCK_HAS_DATA`.
pub const BKPBLOCK_HAS_DATA: u8 = 0x20;
/// `BKPBLOCK_SAME_REL`: the relation is the previous block's.
pub const BKPBLOCK_SAME_REL: u8 = 0x80;

/// `BKPIMAGE_HAS_HOLE`.
pub const BKPIMAGE_HAS_HOLE: u8 = 0x01;
/// `BKPIMAGE_APPLY`.
pub const BKPIMAGE_APPLY: u8 = 0x02;
/// `BKPIMAGE_COMPRESS_PGLZ`.
pub const BKPIMAGE_COMPRESS_PGLZ: u8 = 0x04;
/// `BKPIMAGE_COMPRESS_LZ4`.
pub const BKPIMAGE_COMPRESS_LZ4: u8 = 0x08;
/// `BKPIMAGE_COMPRESS_ZSTD`.
pub const BKPIMAGE_COMPRESS_ZSTD: u8 = 0x10;

/// `RM_XLOG_ID`.
pub const RM_XLOG_ID: u8 = 0;
/// `XLOG_SWITCH`: the rest of the segment is unused.
pub const XLOG_SWITCH: u8 = 0x40;
/// `XLR_INFO_MASK`: the low bits of `xl_info` the record layer uses.
pub const XLR_INFO_MASK: u8 = 0x0F;
/// `RM_MAX_BUILTIN_ID`.
pub const RM_MAX_BUILTIN_ID: u8 = 21;
/// `RM_MIN_CUSTOM_ID`: ids from here to 255 are custom resource managers.
pub const RM_MIN_CUSTOM_ID: u8 = 128;

/// The names of the built-in resource managers by id, as `pg_waldump --stats` and
/// `pg_get_wal_stats` print them.
pub const BUILTIN_RMGR_NAMES: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

/// The name of resource manager `rmid`: a built-in one's, `custom<id>` for a custom
/// one (as PostgreSQL names those it has not loaded), `None` for an invalid id.
pub fn rmgr_name(rmid: u8) -> Option<String> {
    if let Some(n) = BUILTIN_RMGR_NAMES.get(rmid as usize) {
        Some((*n).to_owned())
    } else if rmid >= RM_MIN_CUSTOM_ID {
        Some(format!("custom{rmid:03}"))
    } else {
        None
    }
}

/// A valid resource manager id (`RmgrIdIsValid`).
pub fn rmgr_is_valid(rmid: u8) -> bool {
    rmid <= RM_MAX_BUILTIN_ID || rmid >= RM_MIN_CUSTOM_ID
}

/// `MAXALIGN(x)`, saturating.
pub fn maxalign(x: u64) -> u64 {
    x.saturating_add(MAXALIGN - 1) & !(MAXALIGN - 1)
}

/// An LSN as PostgreSQL prints it (`X/X`).
pub fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// An LSN from PostgreSQL's `X/X` form.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_per_major_round_trips_and_unknown_is_refused() {
        for m in Major::ALL {
            assert_eq!(Major::from_page_magic(m.page_magic()), Some(m));
        }
        assert_eq!(Major::Pg17.page_magic(), 0xD116);
        // 14's magic and 19's are not read.
        assert_eq!(Major::from_page_magic(0xD10D), None);
        assert_eq!(Major::from_page_magic(0xD11A), None);
    }

    #[test]
    fn names_and_lsns() {
        assert_eq!(rmgr_name(10).as_deref(), Some("Heap"));
        assert_eq!(rmgr_name(21).as_deref(), Some("LogicalMessage"));
        assert_eq!(rmgr_name(22), None);
        assert_eq!(rmgr_name(130).as_deref(), Some("custom130"));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(fmt_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(maxalign(17), 24);
        assert_eq!(maxalign(24), 24);
    }
}
