//! Errors: every fault in the bytes names the WAL position it was found at and the
//! file it was read from. Bad bytes are errors, never panics.

use crate::format::{fmt_lsn, Major};
use std::path::PathBuf;

/// A fault found reading WAL, where it was found.
#[derive(Debug, thiserror::Error)]
#[error("{fault} (at WAL position {}{})", fmt_lsn(*.lsn), .file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default())]
pub struct WalError {
    /// The WAL position of the page or record at fault.
    pub lsn: u64,
    /// The segment file it was read from, when one was open.
    pub file: Option<PathBuf>,
    /// What is wrong.
    #[source]
    pub fault: Fault,
}

impl WalError {
    /// A fault at `lsn` in `file`.
    pub fn new(lsn: u64, file: Option<PathBuf>, fault: Fault) -> WalError {
        WalError { lsn, file, fault }
    }
}

/// How a full-page image is compressed (`bimg_info` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `BKPIMAGE_COMPRESS_PGLZ`: PostgreSQL's own LZ format.
    Pglz,
    /// `BKPIMAGE_COMPRESS_LZ4`: an LZ4 block.
    Lz4,
    /// `BKPIMAGE_COMPRESS_ZSTD`: a zstd frame.
    Zstd,
}

/// What is wrong with a block reference's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFault {
    /// Block ids must increase within a record.
    OutOfOrder,
    /// An id that is neither a block (0 to 32) nor a known special id.
    InvalidId,
    /// `BKPBLOCK_HAS_DATA` set with a data length of 0.
    DataFlagWithoutData,
    /// A data length without `BKPBLOCK_HAS_DATA`.
    DataWithoutFlag,
    /// `BKPIMAGE_HAS_HOLE` with an empty hole, a hole at offset 0 or a full-size image.
    BadHole,
    /// No hole but a hole offset or length.
    HoleWithoutFlag,
    /// A compressed image as long as a page.
    CompressedFullSize,
    /// An uncompressed image without a hole that is not a page long.
    UncompressedWrongSize,
    /// `BKPBLOCK_SAME_REL` on the first block of a record.
    SameRelWithoutPrevious,
    /// The record ends inside the block headers.
    HeadersTruncated,
}

/// What is wrong with a full-page image's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFault {
    /// More than one compression bit, or a bit this crate does not know.
    UnknownCompression(u8),
    /// The image does not decompress.
    Decompress(Compression),
    /// It decompresses to the wrong length.
    WrongLength {
        /// How it was compressed.
        method: Compression,
        /// Bytes it gave.
        got: usize,
        /// Bytes a page less its hole needs.
        want: usize,
    },
    /// Hole offset plus length exceed the page.
    HoleOutsidePage,
}

/// What is wrong, found at a [`WalError`]'s position.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// The directory or a file in it cannot be read.
    #[error("cannot read the WAL directory or segment file: {0}")]
    Io(#[from] std::io::Error),
    /// No segment file holds this position.
    #[error("no segment file holds this position: looked for {looked_for} in {dir}; copy the missing segment into the directory or start after it")]
    MissingSegment {
        /// The file names tried (one per timeline of the history).
        looked_for: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// The file ends before the page that was needed (a truncated copy).
    #[error("the segment file is truncated: {len} bytes, the page needs {need}; the file is damaged or still being copied")]
    Truncated {
        /// The file's length.
        len: u64,
        /// The length the page needs.
        need: u64,
    },
    /// A page magic of no major from 15 to 18.
    #[error("page magic {magic:#06x} is no PostgreSQL major from 15 to 18 (0xD110, 0xD113, 0xD116, 0xD118): not WAL of a supported server, or a damaged page")]
    BadMagic {
        /// The magic found.
        magic: u16,
    },
    /// A page of another major than the WAL read so far.
    #[error("page of PostgreSQL {} in WAL of PostgreSQL {}: files of two clusters are mixed", .this.number(), .first.number())]
    MixedMajors {
        /// The major read first.
        first: Major,
        /// This page's.
        this: Major,
    },
    /// Unknown page-header flags.
    #[error("page header flags {info:#06x} have bits PostgreSQL does not define")]
    BadPageInfo {
        /// The flags.
        info: u16,
    },
    /// The long-header flag is not set exactly on a segment's first page.
    #[error("page header: long header flag {found} on a page where it must be {}", !.found)]
    LongHeaderMismatch {
        /// Whether the flag was set.
        found: bool,
    },
    /// The page says it is another WAL position (a recycled or misplaced segment).
    #[error("page address {} where {} was expected: a recycled segment, or a file under the wrong name", fmt_lsn(*.found), fmt_lsn(*.expected))]
    BadPageAddress {
        /// The address in the header.
        found: u64,
        /// The page's position.
        expected: u64,
    },
    /// The long header's segment size is not a power of two from 1 MiB to 1 GiB, or
    /// differs from the first segment's.
    #[error("long page header: segment size {found} (expected {expected}: a power of two from 1 MiB to 1 GiB, the same in every segment)")]
    BadSegmentSize {
        /// The size in the header.
        found: u32,
        /// The size expected.
        expected: u32,
    },
    /// The long header's WAL page size is not 8192.
    #[error("long page header: WAL page size {found}; this reader reads only XLOG_BLCKSZ 8192")]
    BadWalPageSize {
        /// The size in the header.
        found: u32,
    },
    /// The long header names another cluster.
    #[error("long page header: system identifier {found} differs from {expected} of the WAL read so far: files of two clusters are mixed")]
    SystemIdMismatch {
        /// The identifier in this header.
        found: u64,
        /// The one read first.
        expected: u64,
    },
    /// A page's timeline goes back, or is newer than its file's.
    #[error("page timeline {page_tli} out of sequence (previous page {previous}, file of timeline {file_tli})")]
    BadPageTimeline {
        /// The page's `xlp_tli`.
        page_tli: u32,
        /// The previous page's.
        previous: u32,
        /// The timeline in the file's name.
        file_tli: u32,
    },
    /// A record continues onto a page that does not start with its rest.
    #[error("a record continues onto the next page, which does not start with its rest (no XLP_FIRST_IS_CONTRECORD)")]
    MissingContrecord,
    /// The continuation's length disagrees with the record's.
    #[error("continuation length {rem_len} where the record has {expected} bytes left")]
    BadContrecordLength {
        /// `xlp_rem_len` of the page.
        rem_len: u32,
        /// What the record's header says remains.
        expected: u32,
    },
    /// `xl_tot_len` shorter than the record header or longer than any record.
    #[error("invalid record length {len} (at least 24, at most 1020 MiB)")]
    BadRecordLength {
        /// The length.
        len: u32,
    },
    /// A resource manager id PostgreSQL never assigns.
    #[error("invalid resource manager id {rmid}")]
    BadRmgr {
        /// The id.
        rmid: u8,
    },
    /// The link to the previous record is wrong.
    #[error("record's previous-record link {} where the previous record starts at {}", fmt_lsn(*.found), fmt_lsn(*.expected))]
    BadPrevLink {
        /// `xl_prev`.
        found: u64,
        /// Where the previous record started.
        expected: u64,
    },
    /// The record's CRC does not match its bytes.
    #[error("record CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// `xl_crc`.
        stored: u32,
        /// Over the bytes read.
        computed: u32,
    },
    /// A block reference's header is invalid.
    #[error("block reference {block_id}: {problem:?}")]
    BadBlock {
        /// The block id.
        block_id: u8,
        /// What is wrong.
        problem: BlockFault,
    },
    /// The headers announce another amount of data than the record holds.
    #[error("record length {total} disagrees with its headers ({headers} header bytes and {data} data bytes)")]
    LengthMismatch {
        /// `xl_tot_len`.
        total: u32,
        /// Bytes of headers decoded.
        headers: u64,
        /// Bytes of data they announce.
        data: u64,
    },
    /// A full-page image cannot be restored.
    #[error("full-page image of block reference {block_id}: {problem:?}")]
    BadImage {
        /// The block id.
        block_id: u8,
        /// What is wrong.
        problem: ImageFault,
    },
    /// The files end before the end position asked for.
    #[error("the segment files end before the end position {}: a segment is missing or incomplete", fmt_lsn(*.end))]
    EndedBefore {
        /// The end position set.
        end: u64,
    },
    /// A `.history` file that does not parse.
    #[error("{0}")]
    BadHistory(String),
    /// A seek position past every record.
    #[error("no record starts at or after this position in the segment files")]
    NoRecordAfter,
    /// The directory holds no segment file.
    #[error("no WAL segment files in {0}: give a pg_wal or an archive directory")]
    NoSegments(PathBuf),
}

impl Fault {
    /// True for what the end of the written WAL looks like when reading without an
    /// end position: a record length of 0 (the zeroed rest of the current segment)
    /// or a page of an older position (a recycled segment not yet overwritten). The
    /// server's own readers stop there too; with an end position set, these are
    /// faults like any other.
    pub fn is_end_of_wal(&self) -> bool {
        matches!(
            self,
            Fault::BadRecordLength { len: 0 } | Fault::BadPageAddress { .. }
        )
    }
}
