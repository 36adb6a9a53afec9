//! Decoding WAL records, for walker's shipped plugins and for third-party Rust
//! plugins (a plain library: no PostgreSQL headers, no server, no walker host; it
//! reads the bytes of a record as walker hands it to a plugin). What it decodes:
//!
//! - the records that create, kill or free heap tuples and those that end
//!   transactions, into [`Event`]s ([`decode`]; garbagemap, budget);
//! - checkpoints ([`checkpoint`], [`is_checkpoint`]; the autosizer, the host's
//!   snapshot trigger) and the end time of a transaction ([`xact_end_time_us`]);
//! - visibility-map bits set and cleared per heap block ([`visibility`]; garbagemap);
//! - the standby's running-transactions record ([`oldest_running_xid`]; budget);
//! - the resource-manager ids and record types these use ([`RM_HEAP_ID`], ...), the
//!   one copy of them in the repository.
//!
//! To use it from a plugin, depend on `walker-decode` next to `walker-abi`, pick the
//! [`Format`] of the running server once (`Format::for_server(server_version_num)`,
//! e.g. from the `server_version_num` setting) and pass each record's resource
//! manager, info byte, main data and blocks ([`Rec`], [`Block`]).
//!
//! Layouts are those of PostgreSQL 15 to 18 (`heapam_xlog.h`, `xact.h`,
//! `storage_xlog.h`, `dbcommands_xlog.h`, `pg_control.h`); [`Format`] (module
//! [`format`](mod@format)) carries everything that differs between them and is chosen at run time
//! from the server's version with [`Format::for_server`]. All integers are
//! little-endian host order as the server wrote them.

/// A relation's physical identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelKey {
    /// Database OID (0 for shared relations).
    pub db: u32,
    /// Tablespace OID.
    pub ts: u32,
    /// Relation file number.
    pub rel: u32,
}

/// A tuple's place: relation, block, line pointer (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    /// Relation.
    pub rel: RelKey,
    /// Block number.
    pub block: u32,
    /// Line pointer number.
    pub offset: u16,
}

/// What one WAL record means for dead tuples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Tuples inserted by `xid` (dead if it aborts). `init_page`: the page was
    /// (re)initialised first.
    Insert {
        /// The inserting transaction.
        xid: u32,
        /// The relation.
        rel: RelKey,
        /// The block.
        block: u32,
        /// Line pointers of the new tuples.
        offsets: Vec<u16>,
        /// The page was (re)initialised first.
        init_page: bool,
    },
    /// The tuple deleted by `xid` (dead if it commits); `now`: dead at once
    /// (a speculative insertion taken back).
    Delete {
        /// The deleting transaction.
        xid: u32,
        /// The tuple.
        item: Item,
        /// Dead at once (a speculative insertion taken back).
        now: bool,
    },
    /// `old` replaced by `new` by `xid`: old dead if it commits, new dead if it aborts.
    Update {
        /// The updating transaction.
        xid: u32,
        /// The old version.
        old: Item,
        /// The new version.
        new: Item,
        /// The new version's page was (re)initialised first.
        new_init_page: bool,
        /// A heap-only update (the new version on the old one's page, no index entry).
        hot: bool,
    },
    /// Pruning of one page: redirected roots, items now dead, items now unused.
    Prune {
        /// The relation.
        rel: RelKey,
        /// The block.
        block: u32,
        /// Line pointers redirected to their chain's live member.
        redirected: Vec<u16>,
        /// Line pointers now dead (storage freed, pointer kept for the indexes).
        dead: Vec<u16>,
        /// Line pointers now unused.
        unused: Vec<u16>,
    },
    /// VACUUM freed these dead line pointers.
    Vacuum {
        /// The relation.
        rel: RelKey,
        /// The block.
        block: u32,
        /// Dead line pointers now unused.
        unused: Vec<u16>,
    },
    /// A prune or vacuum record carried the whole page instead of its offsets: the
    /// line pointer flags after it (index 0 is line pointer 1).
    PageState {
        /// The relation.
        rel: RelKey,
        /// The block.
        block: u32,
        /// Line pointer flags after the record (`lp_flags`; index 0 is line pointer 1).
        flags: Vec<u8>,
        /// The record was VACUUM freeing dead line pointers (its second pass), not a prune.
        vacuum: bool,
    },
    /// A transaction ended. `xid` is the (sub)transaction the record ends, with
    /// `subxacts`; `dropped` relations are removed on commit (and on abort, those
    /// created by the transaction).
    End {
        /// Committed (else aborted).
        committed: bool,
        /// The (sub)transaction the record ends.
        xid: u32,
        /// Its subtransactions ending with it.
        subxacts: Vec<u32>,
        /// Relations whose files go with it.
        dropped: Vec<RelKey>,
        /// The end of a prepared transaction (COMMIT/ROLLBACK PREPARED).
        prepared: bool,
    },
    /// A transaction was prepared for two-phase commit: it stays pending.
    Prepare {
        /// The prepared transaction.
        xid: u32,
    },
    /// The main fork was truncated to `blocks` blocks.
    Truncate {
        /// The relation.
        rel: RelKey,
        /// Blocks left.
        blocks: u32,
    },
    /// A relation file was created (a reused number starts empty).
    Create {
        /// The relation.
        rel: RelKey,
    },
    /// A database was dropped.
    DropDatabase {
        /// The database's OID.
        db: u32,
    },
    /// The server shut down or finished crash recovery: transactions without an end
    /// record (other than prepared ones) are aborted.
    ServerRestart,
}

pub mod format;
pub use format::{Format, PruneLayout, UnsupportedServer};
pub mod visibility;
pub use visibility::{
    visibility, VmChange, VmChanges, VM_ALL_FROZEN, VM_ALL_VISIBLE, VM_VALID_BITS,
};

/// Resource manager ids.
pub const RM_XLOG_ID: u8 = 0;
/// XLOG record type (high bits of `info`): a checkpoint written at shutdown.
pub const XLOG_CHECKPOINT_SHUTDOWN: u8 = 0x00;
/// XLOG record type: an online checkpoint.
pub const XLOG_CHECKPOINT_ONLINE: u8 = 0x10;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// True for a checkpoint record, online or shutdown (not 17's
/// `XLOG_CHECKPOINT_REDO`, which only marks where the next checkpoint's redo starts).
pub fn is_checkpoint(rmid: u8, info: u8) -> bool {
    rmid == RM_XLOG_ID
        && matches!(
            info & 0xf0,
            XLOG_CHECKPOINT_SHUTDOWN | XLOG_CHECKPOINT_ONLINE
        )
}

/// When a transaction ended (microseconds since the Unix epoch), from a commit or
/// abort record (prepared ones included: `xact_time` leads their main data on
/// every major); `None` for every other record and for a record too short.
pub fn xact_end_time_us(rmid: u8, info: u8, main: &[u8]) -> Option<i64> {
    if rmid != RM_XACT_ID {
        return None;
    }
    match info & XLOG_XACT_OPMASK {
        XLOG_XACT_COMMIT
        | XLOG_XACT_ABORT
        | XLOG_XACT_COMMIT_PREPARED
        | XLOG_XACT_ABORT_PREPARED => {
            let pg = i64::from_le_bytes(main.get(0..8)?.try_into().ok()?);
            Some(pg.saturating_add(PG_EPOCH_OFFSET_US))
        }
        _ => None,
    }
}
/// Transactions.
pub const RM_XACT_ID: u8 = 1;
/// Storage manager.
pub const RM_SMGR_ID: u8 = 2;
/// Databases.
pub const RM_DBASE_ID: u8 = 4;
/// Standby (running transactions, locks).
pub const RM_STANDBY_ID: u8 = 8;
/// Heap, second half.
pub const RM_HEAP2_ID: u8 = 9;
/// Heap.
pub const RM_HEAP_ID: u8 = 10;

/// The block reference of a record, as the decoder needs it.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Block reference id.
    pub id: u8,
    /// Fork (0 = main).
    pub fork: u8,
    /// Relation.
    pub rel: RelKey,
    /// Block number.
    pub block: u32,
    /// Per-block data.
    pub data: &'a [u8],
    /// The page the block's full-page image restores, when it has one.
    pub image: Option<&'a [u8]>,
}

/// The parts of a record the decoder reads.
#[derive(Debug, Clone)]
pub struct Rec<'a> {
    /// Resource manager.
    pub rmid: u8,
    /// `xl_info`.
    pub info: u8,
    /// Transaction id of the record.
    pub xid: u32,
    /// Main data.
    pub main: &'a [u8],
    /// Block references.
    pub blocks: Vec<Block<'a>>,
}

impl<'a> Rec<'a> {
    /// The block reference with id `id`, whatever its fork.
    fn block(&self, id: u8) -> Option<&Block<'a>> {
        self.blocks.iter().find(|b| b.id == id)
    }

    /// The main-fork block reference with id `id`. From 17.11 and 18.6 heap records
    /// also reference the visibility-map page (fork 2) under an id of its own, so a
    /// reference is chosen by id and fork, never by count or position.
    pub(crate) fn main_fork_block(&self, id: u8) -> Option<&Block<'a>> {
        self.block(id).filter(|b| b.fork == MAIN_FORK)
    }
}

/// `MAIN_FORKNUM`.
pub const MAIN_FORK: u8 = 0;
/// `VISIBILITYMAP_FORKNUM`.
pub const VISIBILITY_MAP_FORK: u8 = 2;

/// Why a record could not be decoded (it is counted, never silently skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: record too short or inconsistent")]
pub struct DecodeError {
    /// Which record.
    pub what: &'static str,
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn offsets(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn rel_at(b: &[u8], off: usize) -> Option<RelKey> {
    Some(RelKey {
        ts: u32_at(b, off)?,
        db: u32_at(b, off + 4)?,
        rel: u32_at(b, off + 8)?,
    })
}

const XLOG_HEAP_OPMASK: u8 = 0x70;
const XLOG_HEAP_INIT_PAGE: u8 = 0x80;
const XLOG_HEAP_INSERT: u8 = 0x00;
const XLOG_HEAP_DELETE: u8 = 0x10;
const XLOG_HEAP_UPDATE: u8 = 0x20;
const XLOG_HEAP_HOT_UPDATE: u8 = 0x40;
/// 15 and 16.
const XLOG_HEAP2_PRUNE: u8 = 0x10;
const XLOG_HEAP2_VACUUM: u8 = 0x20;
/// 17 on.
const XLOG_HEAP2_PRUNE_ON_ACCESS: u8 = 0x10;
const XLOG_HEAP2_PRUNE_VACUUM_SCAN: u8 = 0x20;
const XLOG_HEAP2_PRUNE_VACUUM_CLEANUP: u8 = 0x30;
const XLOG_HEAP2_MULTI_INSERT: u8 = 0x50;
const XLH_DELETE_IS_SUPER: u8 = 1 << 3;
/// Mask of the record type in a transaction record's `info`.
pub const XLOG_XACT_OPMASK: u8 = 0x70;
const XLOG_XACT_HAS_INFO: u8 = 0x80;
/// Transaction record type: commit.
pub const XLOG_XACT_COMMIT: u8 = 0x00;
/// Transaction record type: prepare (two-phase).
pub const XLOG_XACT_PREPARE: u8 = 0x10;
/// Transaction record type: abort.
pub const XLOG_XACT_ABORT: u8 = 0x20;
/// Transaction record type: commit of a prepared transaction.
pub const XLOG_XACT_COMMIT_PREPARED: u8 = 0x30;
/// Transaction record type: abort of a prepared transaction.
pub const XLOG_XACT_ABORT_PREPARED: u8 = 0x40;
const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
const XACT_XINFO_HAS_RELFILENODES: u32 = 1 << 2;
const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;
const XLOG_SMGR_CREATE: u8 = 0x10;
const XLOG_SMGR_TRUNCATE: u8 = 0x20;
const SMGR_TRUNCATE_HEAP: u32 = 0x0001;
const XLOG_DBASE_DROP: u8 = 0x20;
const XLOG_END_OF_RECOVERY: u8 = 0x90;

/// Decodes one record; `Ok(None)` for records that do not matter here.
pub fn decode(r: &Rec<'_>, fmt: Format) -> Result<Option<Event>, DecodeError> {
    match r.rmid {
        RM_HEAP_ID => heap(r),
        RM_HEAP2_ID => heap2(r, fmt),
        RM_XACT_ID => xact(r, fmt),
        RM_SMGR_ID => smgr(r),
        RM_DBASE_ID if r.info & 0xf0 == XLOG_DBASE_DROP => {
            let db = u32_at(r.main, 0).ok_or(DecodeError {
                what: "database drop",
            })?;
            Ok(Some(Event::DropDatabase { db }))
        }
        RM_XLOG_ID
            if matches!(
                r.info & 0xf0,
                XLOG_CHECKPOINT_SHUTDOWN | XLOG_END_OF_RECOVERY
            ) =>
        {
            Ok(Some(Event::ServerRestart))
        }
        _ => Ok(None),
    }
}

/// `XLOG_CHECKPOINT_REDO` (17 on): written where an online checkpoint starts; its
/// LSN is that checkpoint's redo pointer. Main data: the `wal_level` (an `int`).
pub const XLOG_CHECKPOINT_REDO: u8 = 0xE0;
/// `XLOG_FPI_FOR_HINT`: a page image written because a hint bit changed (every
/// major; frequent on 18, whose initdb enables data checksums). No tuple changes.
pub const XLOG_FPI_FOR_HINT: u8 = 0xA0;
/// `CheckPoint.time` (a `pg_time_t`, seconds) sits after redo (8), two timeline ids
/// (8), fullPageWrites (1; from 17 followed by `int wal_level`, in what was padding),
/// nextXid (8) and seven 4-byte ids (28, padded to 32): byte 64 on 15 to 18.
const CHECKPOINT_TIME_OFFSET: usize = 64;

/// A checkpoint record's redo pointer and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// `CheckPoint.redo`: where replay of this checkpoint starts. For an online
    /// checkpoint of 17 on, the LSN of its `XLOG_CHECKPOINT_REDO` record; before, the
    /// insert position when it started. Either way WAL volume between two
    /// checkpoints is the distance between their redo pointers.
    pub redo: u64,
    /// `CheckPoint.time`, seconds since the Unix epoch.
    pub time_s: i64,
    /// A shutdown (or end-of-recovery) checkpoint.
    pub shutdown: bool,
}

/// Decodes `XLOG_CHECKPOINT_ONLINE` and `XLOG_CHECKPOINT_SHUTDOWN`; `None` for
/// every other record (including 17's `XLOG_CHECKPOINT_REDO`, which carries no
/// pointer of its own) and for a record too short to hold a `CheckPoint`. `_fmt` is
/// the running major's format: the fields read here sit at the same offsets on 15 to
/// 18 (19 adds a field to `CheckPoint`, the reason the format is passed).
pub fn checkpoint(rmid: u8, info: u8, main: &[u8], _fmt: Format) -> Option<Checkpoint> {
    if rmid != RM_XLOG_ID {
        return None;
    }
    if !is_checkpoint(rmid, info) {
        return None;
    }
    let op = info & 0xf0;
    let redo = u64::from_le_bytes(main.get(0..8)?.try_into().ok()?);
    let time = main.get(CHECKPOINT_TIME_OFFSET..CHECKPOINT_TIME_OFFSET + 8)?;
    Some(Checkpoint {
        redo,
        time_s: i64::from_le_bytes(time.try_into().ok()?),
        shutdown: op == XLOG_CHECKPOINT_SHUTDOWN,
    })
}

/// The time a record carries (µs since the Unix epoch): a commit's or abort's end time,
/// or a checkpoint's time (whole seconds); `None` for every other record.
pub fn record_time_us(rmid: u8, info: u8, main: &[u8], fmt: Format) -> Option<i64> {
    xact_end_time_us(rmid, info, main)
        .or_else(|| checkpoint(rmid, info, main, fmt).map(|c| c.time_s.saturating_mul(1_000_000)))
}

/// `XLOG_RUNNING_XACTS` (standby rmgr).
const XLOG_RUNNING_XACTS: u8 = 0x10;

/// The oldest transaction still running when a running-transactions record was
/// written (`xl_running_xacts.oldestRunningXid`, after `xcnt`, `subxcnt`,
/// `subxid_overflow` and `nextXid`): every transaction before it has ended, with an
/// end record or by a crash.
pub fn oldest_running_xid(rmid: u8, info: u8, main: &[u8]) -> Option<u32> {
    if rmid == RM_STANDBY_ID && info & 0xf0 == XLOG_RUNNING_XACTS {
        u32_at(main, 16)
    } else {
        None
    }
}

fn main_block<'a>(
    r: &'a Rec<'_>,
    id: u8,
    what: &'static str,
) -> Result<Option<&'a Block<'a>>, DecodeError> {
    match r.block(id) {
        Some(b) if b.fork == MAIN_FORK => Ok(Some(b)),
        Some(_) => Ok(None),
        None => Err(DecodeError { what }),
    }
}

fn heap(r: &Rec<'_>) -> Result<Option<Event>, DecodeError> {
    let init_page = r.info & XLOG_HEAP_INIT_PAGE != 0;
    match r.info & XLOG_HEAP_OPMASK {
        XLOG_HEAP_INSERT => {
            let e = DecodeError {
                what: "heap insert",
            };
            let Some(b) = main_block(r, 0, "heap insert")? else {
                return Ok(None);
            };
            let off = u16_at(r.main, 0).ok_or(e)?;
            Ok(Some(Event::Insert {
                xid: r.xid,
                rel: b.rel,
                block: b.block,
                offsets: vec![off],
                init_page,
            }))
        }
        XLOG_HEAP_DELETE => {
            let e = DecodeError {
                what: "heap delete",
            };
            let Some(b) = main_block(r, 0, "heap delete")? else {
                return Ok(None);
            };
            let off = u16_at(r.main, 4).ok_or(e.clone())?;
            let flags = *r.main.get(7).ok_or(e)?;
            let item = Item {
                rel: b.rel,
                block: b.block,
                offset: off,
            };
            Ok(Some(Event::Delete {
                xid: r.xid,
                item,
                now: flags & XLH_DELETE_IS_SUPER != 0,
            }))
        }
        op @ (XLOG_HEAP_UPDATE | XLOG_HEAP_HOT_UPDATE) => {
            let e = DecodeError {
                what: "heap update",
            };
            let Some(new_b) = main_block(r, 0, "heap update")? else {
                return Ok(None);
            };
            // The old tuple is on block 1 when it moved to another page, else on block 0.
            let old_b = r.main_fork_block(1).unwrap_or(new_b);
            let old_off = u16_at(r.main, 4).ok_or(e.clone())?;
            let new_off = u16_at(r.main, 12).ok_or(e)?;
            Ok(Some(Event::Update {
                xid: r.xid,
                old: Item {
                    rel: old_b.rel,
                    block: old_b.block,
                    offset: old_off,
                },
                new: Item {
                    rel: new_b.rel,
                    block: new_b.block,
                    offset: new_off,
                },
                new_init_page: init_page,
                hot: op == XLOG_HEAP_HOT_UPDATE,
            }))
        }
        _ => Ok(None),
    }
}

/// Line pointer flags of a heap page: `lp_flags` of each `ItemIdData` (4 bytes after
/// the 24-byte page header, up to `pd_lower`).
pub fn page_flags(page: &[u8]) -> Option<Vec<u8>> {
    let lower = u16_at(page, 12)? as usize;
    if lower < 24 || lower > page.len() {
        return None;
    }
    Some(
        (24..lower)
            .step_by(4)
            .filter_map(|o| u32_at(page, o))
            .map(|v| ((v >> 15) & 3) as u8)
            .collect(),
    )
}

fn heap2(r: &Rec<'_>, fmt: Format) -> Result<Option<Event>, DecodeError> {
    let op = r.info & XLOG_HEAP_OPMASK;
    // The records that free line pointers, and whether each is VACUUM's second pass.
    let frees = match (fmt.prune, op) {
        (PruneLayout::Separate, XLOG_HEAP2_PRUNE) => Some(false),
        (PruneLayout::Separate, XLOG_HEAP2_VACUUM) => Some(true),
        (PruneLayout::Merged, XLOG_HEAP2_PRUNE_ON_ACCESS | XLOG_HEAP2_PRUNE_VACUUM_SCAN) => {
            Some(false)
        }
        (PruneLayout::Merged, XLOG_HEAP2_PRUNE_VACUUM_CLEANUP) => Some(true),
        _ => None,
    };
    if let Some(vacuum) = frees {
        // With a full-page image the record carries no offsets: read the page.
        if let Some(b) = r
            .main_fork_block(0)
            .filter(|b| b.data.is_empty() && b.image.is_some())
        {
            let page = b.image.unwrap_or_default();
            let flags = page_flags(page).ok_or(DecodeError {
                what: "heap page image",
            })?;
            return Ok(Some(Event::PageState {
                rel: b.rel,
                block: b.block,
                flags,
                vacuum,
            }));
        }
    }
    match (fmt.prune, op) {
        (PruneLayout::Separate, XLOG_HEAP2_PRUNE) => {
            let e = DecodeError { what: "heap prune" };
            let Some(b) = main_block(r, 0, "heap prune")? else {
                return Ok(None);
            };
            let nredirected = usize::from(u16_at(r.main, 4).ok_or(e.clone())?);
            let ndead = usize::from(u16_at(r.main, 6).ok_or(e.clone())?);
            let all = offsets(b.data);
            let redirect_end = nredirected.checked_mul(2).ok_or(e.clone())?;
            let dead_end = redirect_end.checked_add(ndead).ok_or(e.clone())?;
            if all.len() < dead_end {
                return Err(e);
            }
            // Redirected pairs (from, to): `from` stops being a tuple; `to` stays.
            let redirected = all[..redirect_end].chunks(2).map(|p| p[0]).collect();
            let dead = all[redirect_end..dead_end].to_vec();
            let unused = all[dead_end..].to_vec();
            Ok(Some(Event::Prune {
                rel: b.rel,
                block: b.block,
                redirected,
                dead,
                unused,
            }))
        }
        (PruneLayout::Separate, XLOG_HEAP2_VACUUM) => {
            let e = DecodeError {
                what: "heap vacuum",
            };
            let Some(b) = main_block(r, 0, "heap vacuum")? else {
                return Ok(None);
            };
            let n = usize::from(u16_at(r.main, 0).ok_or(e.clone())?);
            let unused = offsets(b.data);
            if unused.len() < n {
                return Err(e);
            }
            Ok(Some(Event::Vacuum {
                rel: b.rel,
                block: b.block,
                unused: unused[..n].to_vec(),
            }))
        }
        (
            PruneLayout::Merged,
            XLOG_HEAP2_PRUNE_ON_ACCESS
            | XLOG_HEAP2_PRUNE_VACUUM_SCAN
            | XLOG_HEAP2_PRUNE_VACUUM_CLEANUP,
        ) => {
            let Some(b) = main_block(r, 0, "heap prune")? else {
                return Ok(None);
            };
            let p = prune_items(r.main, b.data)?;
            if op == XLOG_HEAP2_PRUNE_VACUUM_CLEANUP && p.redirected.is_empty() && p.dead.is_empty()
            {
                return Ok(Some(Event::Vacuum {
                    rel: b.rel,
                    block: b.block,
                    unused: p.unused,
                }));
            }
            Ok(Some(Event::Prune {
                rel: b.rel,
                block: b.block,
                redirected: p.redirected,
                dead: p.dead,
                unused: p.unused,
            }))
        }
        (_, XLOG_HEAP2_MULTI_INSERT) => {
            let e = DecodeError {
                what: "heap multi-insert",
            };
            let Some(b) = main_block(r, 0, "heap multi-insert")? else {
                return Ok(None);
            };
            let n = u16_at(r.main, 2).ok_or(e.clone())?;
            let init_page = r.info & XLOG_HEAP_INIT_PAGE != 0;
            let offs = if init_page {
                (1..=n).collect()
            } else {
                offsets(r.main.get(4..4 + 2 * usize::from(n)).ok_or(e)?)
            };
            Ok(Some(Event::Insert {
                xid: r.xid,
                rel: b.rel,
                block: b.block,
                offsets: offs,
                init_page,
            }))
        }
        _ => Ok(None),
    }
}

/// `xl_heap_prune.flags` (17 on): which sub-records block 0's data holds.
const XLHP_HAS_CONFLICT_HORIZON: u8 = 1 << 3;
const XLHP_HAS_FREEZE_PLANS: u8 = 1 << 4;
const XLHP_HAS_REDIRECTIONS: u8 = 1 << 5;
const XLHP_HAS_DEAD_ITEMS: u8 = 1 << 6;
const XLHP_HAS_NOW_UNUSED_ITEMS: u8 = 1 << 7;
/// `offsetof(xlhp_freeze_plans, plans)`: `u16 nplans` and 2 bytes of padding.
const FREEZE_PLANS_HEADER: usize = 4;
/// `sizeof(xlhp_freeze_plan)`: xmax (4), two infomasks (4), frzflags (1, padded to
/// 2), ntuples (2).
const FREEZE_PLAN_SIZE: usize = 12;

/// The item lists of a 17+ prune record (`xl_heap_prune` and block 0's data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneItems {
    /// Conflict horizon, when the record has one.
    pub conflict_xid: Option<u32>,
    /// Tuples frozen (the offsets after the plans; no tuple dies by freezing).
    pub frozen: Vec<u16>,
    /// Redirected roots (the `from` of each pair; the `to` stays a tuple).
    pub redirected: Vec<u16>,
    /// Items now `LP_DEAD`.
    pub dead: Vec<u16>,
    /// Items now `LP_UNUSED`.
    pub unused: Vec<u16>,
}

/// Reads a `xlhp_prune_items` (`u16 n` + `n * per` offsets) at `*at`, advancing it.
fn prune_list(data: &[u8], at: &mut usize, per: usize) -> Result<Vec<u16>, DecodeError> {
    let e = DecodeError {
        what: "heap prune items",
    };
    let n = usize::from(u16_at(data, *at).ok_or(e.clone())?);
    let start = at.checked_add(2).ok_or(e.clone())?;
    let end = n
        .checked_mul(per)
        .and_then(|c| c.checked_mul(2))
        .and_then(|len| start.checked_add(len))
        .ok_or(e.clone())?;
    let list = offsets(data.get(start..end).ok_or(e)?);
    *at = end;
    Ok(list)
}

/// Decodes the flags-driven layout of PostgreSQL 17 and 18's prune records: main data
/// `{u8 reason; u8 flags}` (+ an unaligned conflict xid), block 0's data in flag order:
/// freeze plans, redirections, dead items, now-unused items, frozen offsets.
pub fn prune_items(main: &[u8], data: &[u8]) -> Result<PruneItems, DecodeError> {
    let e = DecodeError { what: "heap prune" };
    let flags = *main.get(1).ok_or(e.clone())?;
    let mut p = PruneItems::default();
    if flags & XLHP_HAS_CONFLICT_HORIZON != 0 {
        p.conflict_xid = Some(u32_at(main, 2).ok_or(e.clone())?);
    }
    let mut at = 0usize;
    let mut frozen_total = 0usize;
    if flags & XLHP_HAS_FREEZE_PLANS != 0 {
        let nplans = usize::from(u16_at(data, 0).ok_or(e.clone())?);
        at = FREEZE_PLANS_HEADER;
        for _ in 0..nplans {
            // ntuples is the plan's last field.
            let ntuples = u16_at(data, at.saturating_add(FREEZE_PLAN_SIZE - 2)).ok_or(e.clone())?;
            frozen_total = frozen_total.saturating_add(usize::from(ntuples));
            at = at.checked_add(FREEZE_PLAN_SIZE).ok_or(e.clone())?;
        }
    }
    if flags & XLHP_HAS_REDIRECTIONS != 0 {
        let pairs = prune_list(data, &mut at, 2)?;
        p.redirected = pairs.chunks(2).map(|c| c[0]).collect();
    }
    if flags & XLHP_HAS_DEAD_ITEMS != 0 {
        p.dead = prune_list(data, &mut at, 1)?;
    }
    if flags & XLHP_HAS_NOW_UNUSED_ITEMS != 0 {
        p.unused = prune_list(data, &mut at, 1)?;
    }
    if frozen_total > 0 {
        let end = frozen_total
            .checked_mul(2)
            .and_then(|len| at.checked_add(len))
            .ok_or(e.clone())?;
        p.frozen = offsets(data.get(at..end).ok_or(e)?);
    }
    Ok(p)
}

/// Reads a counted array header (`int n`) at `off` and returns (n, offset after `n * size` bytes).
fn counted(
    b: &[u8],
    off: usize,
    size: usize,
    e: &DecodeError,
) -> Result<(usize, usize), DecodeError> {
    let n = u32_at(b, off).ok_or(e.clone())? as usize;
    let end = off
        .checked_add(4)
        .and_then(|x| x.checked_add(n.checked_mul(size)?))
        .ok_or(e.clone())?;
    if end > b.len() {
        return Err(e.clone());
    }
    Ok((n, end))
}

fn xact(r: &Rec<'_>, fmt: Format) -> Result<Option<Event>, DecodeError> {
    let op = r.info & XLOG_XACT_OPMASK;
    let committed = match op {
        XLOG_XACT_COMMIT | XLOG_XACT_COMMIT_PREPARED => true,
        XLOG_XACT_ABORT | XLOG_XACT_ABORT_PREPARED => false,
        XLOG_XACT_PREPARE => return Ok(Some(Event::Prepare { xid: r.xid })),
        _ => return Ok(None),
    };
    let e = DecodeError {
        what: if committed {
            "transaction commit"
        } else {
            "transaction abort"
        },
    };
    let b = r.main;
    let mut off = 8; // xact_time
    let xinfo = if r.info & XLOG_XACT_HAS_INFO != 0 {
        let x = u32_at(b, off).ok_or(e.clone())?;
        off += 4;
        x
    } else {
        0
    };
    if xinfo & XACT_XINFO_HAS_DBINFO != 0 {
        off += 8;
    }
    let mut subxacts = Vec::new();
    if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
        let (n, end) = counted(b, off, 4, &e)?;
        subxacts = (0..n)
            .map(|i| u32_at(b, off + 4 + 4 * i).unwrap_or(0))
            .collect();
        off = end;
    }
    let mut dropped = Vec::new();
    if xinfo & XACT_XINFO_HAS_RELFILENODES != 0 {
        let (n, end) = counted(b, off, 12, &e)?;
        dropped = (0..n).filter_map(|i| rel_at(b, off + 4 + 12 * i)).collect();
        off = end;
    }
    if xinfo & XACT_XINFO_HAS_DROPPED_STATS != 0 {
        off = counted(b, off, fmt.stats_item, &e)?.1;
    }
    if committed && xinfo & XACT_XINFO_HAS_INVALS != 0 {
        off = counted(b, off, 16, &e)?.1;
    }
    let mut xid = r.xid;
    let prepared = xinfo & XACT_XINFO_HAS_TWOPHASE != 0;
    if prepared {
        xid = u32_at(b, off).ok_or(e)?;
    }
    Ok(Some(Event::End {
        committed,
        xid,
        subxacts,
        dropped,
        prepared,
    }))
}

fn smgr(r: &Rec<'_>) -> Result<Option<Event>, DecodeError> {
    match r.info & 0xf0 {
        XLOG_SMGR_CREATE => {
            let e = DecodeError {
                what: "storage create",
            };
            let rel = rel_at(r.main, 0).ok_or(e.clone())?;
            let fork = u32_at(r.main, 12).ok_or(e)?;
            Ok((fork == 0).then_some(Event::Create { rel }))
        }
        XLOG_SMGR_TRUNCATE => {
            let e = DecodeError {
                what: "storage truncate",
            };
            let blocks = u32_at(r.main, 0).ok_or(e.clone())?;
            let rel = rel_at(r.main, 4).ok_or(e.clone())?;
            let flags = u32_at(r.main, 16).ok_or(e)?;
            Ok((flags & SMGR_TRUNCATE_HEAP != 0).then_some(Event::Truncate { rel, blocks }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn oldest_running_xid_is_read_after_four_fields() {
        // xcnt 2, subxcnt 0, overflow false (+3 padding), nextXid 900,
        // oldestRunningXid 880, latestCompletedXid 899, xids.
        let mut m = Vec::new();
        for v in [2u32, 0, 0, 900, 880, 899, 880, 881] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(super::oldest_running_xid(8, 0x10, &m), Some(880));
        assert_eq!(super::oldest_running_xid(8, 0x00, &m), None);
        assert_eq!(super::oldest_running_xid(8, 0x10, &m[..18]), None);
    }

    use super::*;

    #[test]
    fn checkpoints_and_transaction_end_times() {
        // pg_control.h: SHUTDOWN 0x00, ONLINE 0x10, SWITCH 0x40, 17's REDO 0xE0.
        assert!(is_checkpoint(RM_XLOG_ID, 0x00) && is_checkpoint(RM_XLOG_ID, 0x10));
        assert!(!is_checkpoint(RM_XLOG_ID, 0x40) && !is_checkpoint(RM_XLOG_ID, 0xE0));
        assert!(!is_checkpoint(RM_XACT_ID, 0x10));
        // xact_time 1 s after 2000-01-01 is 946684801 s after 1970; the HAS_INFO bit
        // (0x80) does not change the op; PREPARE (0x10) has no end time.
        let t = 1_000_000i64.to_le_bytes();
        for info in [0x00, 0x20, 0x30, 0x40, 0x80 | 0x20] {
            assert_eq!(
                xact_end_time_us(RM_XACT_ID, info, &t),
                Some(946_684_801_000_000)
            );
        }
        assert_eq!(xact_end_time_us(RM_XACT_ID, 0x10, &t), None);
        assert_eq!(xact_end_time_us(RM_XACT_ID, 0x00, &t[..7]), None);
        assert_eq!(xact_end_time_us(RM_XLOG_ID, 0x00, &t), None);
    }

    const REL: RelKey = RelKey {
        db: 5,
        ts: 1663,
        rel: 16384,
    };
    const PG15: Format = Format {
        server_version_num: 150_000,
        major: 15,
        stats_item: 12,
        prune: PruneLayout::Separate,
        checkpoint_redo_record: false,
    };

    fn pg(v: u32) -> Format {
        Format::for_server(v).unwrap()
    }

    fn blk(id: u8, block: u32, data: &[u8]) -> Block<'_> {
        Block {
            id,
            fork: 0,
            rel: REL,
            block,
            data,
            image: None,
        }
    }

    #[test]
    fn a_prune_with_only_an_image_reads_the_page() {
        // A page with 3 line pointers: normal (1), dead (3), unused (0).
        let mut page = vec![0u8; 8192];
        page[12..14].copy_from_slice(&(24u16 + 12).to_le_bytes());
        for (i, flags) in [1u32, 3, 0].iter().enumerate() {
            let v = (8000 - 40 * i as u32) | (flags << 15) | (40 << 17);
            page[24 + 4 * i..28 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let main = [0, 0, 0, 0, 1, 0, 2, 0];
        let b = Block {
            id: 0,
            fork: 0,
            rel: REL,
            block: 2,
            data: &[],
            image: Some(&page),
        };
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0x10,
            xid: 0,
            main: &main,
            blocks: vec![b],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::PageState {
                rel: REL,
                block: 2,
                flags: vec![1, 3, 0],
                vacuum: false
            })
        );
    }

    fn le16(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn heap_insert_delete_update() {
        // xl_heap_insert: offnum 7, flags 0.
        let main = [7, 0, 0];
        let r = Rec {
            rmid: RM_HEAP_ID,
            info: 0x80,
            xid: 900,
            main: &main,
            blocks: vec![blk(0, 3, &[])],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Insert {
                xid: 900,
                rel: REL,
                block: 3,
                offsets: vec![7],
                init_page: true
            })
        );
        // xl_heap_delete: xmax 900, offnum 2, infobits 0, flags IS_SUPER.
        let main = [0x84, 0x03, 0, 0, 2, 0, 0, 1 << 3];
        let r = Rec {
            rmid: RM_HEAP_ID,
            info: 0x10,
            xid: 900,
            main: &main,
            blocks: vec![blk(0, 4, &[])],
        };
        let item = Item {
            rel: REL,
            block: 4,
            offset: 2,
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Delete {
                xid: 900,
                item,
                now: true
            })
        );
        // xl_heap_update: old_xmax, old_offnum 5, infobits, flags, new_xmax, new_offnum 9;
        // new tuple on block 8 (ref 0), old on block 2 (ref 1).
        let mut main = vec![0; 14];
        main[4] = 5;
        main[12] = 9;
        let r = Rec {
            rmid: RM_HEAP_ID,
            info: 0x20,
            xid: 901,
            main: &main,
            blocks: vec![blk(0, 8, &[]), blk(1, 2, &[])],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Update {
                xid: 901,
                old: Item {
                    rel: REL,
                    block: 2,
                    offset: 5
                },
                new: Item {
                    rel: REL,
                    block: 8,
                    offset: 9
                },
                new_init_page: false,
                hot: false
            })
        );
        // A HOT update keeps both on block 0.
        let r = Rec {
            rmid: RM_HEAP_ID,
            info: 0x40,
            xid: 901,
            main: &main,
            blocks: vec![blk(0, 8, &[])],
        };
        let Some(Event::Update { old, hot: true, .. }) = decode(&r, PG15).unwrap() else {
            panic!()
        };
        assert_eq!(old.block, 8);
        // Too short main data is an error, not a guess.
        let r = Rec {
            rmid: RM_HEAP_ID,
            info: 0x20,
            xid: 1,
            main: &main[..10],
            blocks: vec![blk(0, 8, &[])],
        };
        assert!(decode(&r, PG15).is_err());
    }

    #[test]
    fn prune_vacuum_multi_insert() {
        // xl_heap_prune: horizon, nredirected 1, ndead 2; block data: (1->3), 4, 6, unused 7, 8.
        let main = [0, 0, 0, 0, 1, 0, 2, 0];
        let data = le16(&[1, 3, 4, 6, 7, 8]);
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0x10,
            xid: 0,
            main: &main,
            blocks: vec![blk(0, 0, &data)],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Prune {
                rel: REL,
                block: 0,
                redirected: vec![1],
                dead: vec![4, 6],
                unused: vec![7, 8]
            })
        );
        // xl_heap_vacuum: nunused 2; block data 4, 6.
        let data = le16(&[4, 6]);
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0x20,
            xid: 0,
            main: &[2, 0],
            blocks: vec![blk(0, 0, &data)],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Vacuum {
                rel: REL,
                block: 0,
                unused: vec![4, 6]
            })
        );
        // Multi-insert on an initialised page: offsets 1..=3, not in the record.
        let main = [0, 0, 3, 0];
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0xd0,
            xid: 5,
            main: &main,
            blocks: vec![blk(0, 1, &[])],
        };
        let Some(Event::Insert {
            offsets,
            init_page: true,
            ..
        }) = decode(&r, PG15).unwrap()
        else {
            panic!()
        };
        assert_eq!(offsets, vec![1, 2, 3]);
        // Otherwise the offsets follow.
        let mut main = vec![0, 0, 2, 0];
        main.extend(le16(&[10, 11]));
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0x50,
            xid: 5,
            main: &main,
            blocks: vec![blk(0, 1, &[])],
        };
        let Some(Event::Insert {
            offsets,
            init_page: false,
            ..
        }) = decode(&r, PG15).unwrap()
        else {
            panic!()
        };
        assert_eq!(offsets, vec![10, 11]);
    }

    fn commit_bytes(
        xinfo: u32,
        subxacts: &[u32],
        rels: &[RelKey],
        stats: usize,
        invals: usize,
        twophase: Option<u32>,
        fmt: Format,
    ) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.extend(xinfo.to_le_bytes());
        if xinfo & XACT_XINFO_HAS_DBINFO != 0 {
            b.extend([5, 0, 0, 0, 0x7f, 6, 0, 0]);
        }
        if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
            b.extend((subxacts.len() as u32).to_le_bytes());
            subxacts.iter().for_each(|x| b.extend(x.to_le_bytes()));
        }
        if xinfo & XACT_XINFO_HAS_RELFILENODES != 0 {
            b.extend((rels.len() as u32).to_le_bytes());
            for r in rels {
                b.extend(r.ts.to_le_bytes());
                b.extend(r.db.to_le_bytes());
                b.extend(r.rel.to_le_bytes());
            }
        }
        if xinfo & XACT_XINFO_HAS_DROPPED_STATS != 0 {
            b.extend((stats as u32).to_le_bytes());
            b.extend(vec![0xee; stats * fmt.stats_item]);
        }
        if xinfo & XACT_XINFO_HAS_INVALS != 0 {
            b.extend((invals as u32).to_le_bytes());
            b.extend(vec![0xdd; invals * 16]);
        }
        if let Some(x) = twophase {
            b.extend(x.to_le_bytes());
        }
        b
    }

    #[test]
    fn commit_with_everything() {
        let all = XACT_XINFO_HAS_DBINFO
            | XACT_XINFO_HAS_SUBXACTS
            | XACT_XINFO_HAS_RELFILENODES
            | XACT_XINFO_HAS_DROPPED_STATS
            | XACT_XINFO_HAS_INVALS
            | XACT_XINFO_HAS_TWOPHASE;
        for fmt in [pg(150_000), pg(160_015), pg(170_011), pg(180_006)] {
            let main = commit_bytes(all, &[11, 12], &[REL], 2, 3, Some(777), fmt);
            // COMMIT PREPARED with info.
            let r = Rec {
                rmid: RM_XACT_ID,
                info: 0x30 | 0x80,
                xid: 0,
                main: &main,
                blocks: vec![],
            };
            assert_eq!(
                decode(&r, fmt).unwrap(),
                Some(Event::End {
                    committed: true,
                    xid: 777,
                    subxacts: vec![11, 12],
                    dropped: vec![REL],
                    prepared: true
                })
            );
        }
        // A plain abort of a subtransaction: no info, the record's xid.
        let main = [0u8; 8];
        let r = Rec {
            rmid: RM_XACT_ID,
            info: 0x20,
            xid: 55,
            main: &main,
            blocks: vec![],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::End {
                committed: false,
                xid: 55,
                subxacts: vec![],
                dropped: vec![],
                prepared: false
            })
        );
        // A count running past the end is an error.
        let mut main = commit_bytes(XACT_XINFO_HAS_SUBXACTS, &[1], &[], 0, 0, None, PG15);
        main.truncate(main.len() - 1);
        let r = Rec {
            rmid: RM_XACT_ID,
            info: 0x80,
            xid: 1,
            main: &main,
            blocks: vec![],
        };
        assert!(decode(&r, PG15).is_err());
    }

    #[test]
    fn storage_and_server_events() {
        // xl_smgr_truncate: blkno 10, rnode, flags HEAP.
        let mut main = 10u32.to_le_bytes().to_vec();
        main.extend([0x7f, 6, 0, 0, 5, 0, 0, 0, 0, 0x40, 0, 0]);
        main.extend(1u32.to_le_bytes());
        let r = Rec {
            rmid: RM_SMGR_ID,
            info: 0x20,
            xid: 0,
            main: &main,
            blocks: vec![],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            Some(Event::Truncate {
                rel: REL,
                blocks: 10
            })
        );
        let r = Rec {
            rmid: RM_XLOG_ID,
            info: 0x00,
            xid: 0,
            main: &[],
            blocks: vec![],
        };
        assert_eq!(decode(&r, PG15).unwrap(), Some(Event::ServerRestart));
        let r = Rec {
            rmid: RM_XLOG_ID,
            info: 0x10,
            xid: 0,
            main: &[],
            blocks: vec![],
        };
        assert_eq!(
            decode(&r, PG15).unwrap(),
            None,
            "an online checkpoint ends nothing"
        );
    }

    /// Main data of a 17+ prune record: reason, flags, optional conflict xid.
    fn prune_main(flags: u8, xid: Option<u32>) -> Vec<u8> {
        let mut m = vec![2, flags];
        if let Some(x) = xid {
            m.extend(x.to_le_bytes());
        }
        m
    }

    #[test]
    fn merged_prune_records_of_17_and_18() {
        for fmt in [pg(170_011), pg(180_006)] {
            // All sub-records: one freeze plan of 2 tuples, redirect 1->3, dead 4 and
            // 6, unused 7, frozen offsets 9 and 10.
            let flags = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
            let main = prune_main(flags, Some(0x0102_0304));
            let mut data = vec![1, 0, 0, 0]; // nplans 1, padding
            data.extend(777u32.to_le_bytes()); // xmax
            data.extend([0, 0, 0, 0, 0, 0]); // infomask2, infomask, frzflags, pad
            data.extend(2u16.to_le_bytes()); // ntuples
            data.extend(le16(&[1, 1, 3])); // nredirected 1, (1, 3)
            data.extend(le16(&[2, 4, 6])); // ndead 2
            data.extend(le16(&[1, 7])); // nunused 1
            data.extend(le16(&[9, 10])); // frozen
            assert_eq!(
                prune_items(&main, &data).unwrap(),
                PruneItems {
                    conflict_xid: Some(0x0102_0304),
                    frozen: vec![9, 10],
                    redirected: vec![1],
                    dead: vec![4, 6],
                    unused: vec![7],
                }
            );
            for info in [0x10, 0x20] {
                let r = Rec {
                    rmid: RM_HEAP2_ID,
                    info,
                    xid: 0,
                    main: &main,
                    blocks: vec![blk(0, 5, &data)],
                };
                assert_eq!(
                    decode(&r, fmt).unwrap(),
                    Some(Event::Prune {
                        rel: REL,
                        block: 5,
                        redirected: vec![1],
                        dead: vec![4, 6],
                        unused: vec![7]
                    }),
                    "info {info:#x}"
                );
            }
            // PRUNE_VACUUM_CLEANUP: now-unused items only, no conflict horizon.
            let main = prune_main(1 << 7, None);
            let data = le16(&[2, 4, 6]);
            let r = Rec {
                rmid: RM_HEAP2_ID,
                info: 0x30,
                xid: 0,
                main: &main,
                blocks: vec![blk(0, 5, &data)],
            };
            assert_eq!(
                decode(&r, fmt).unwrap(),
                Some(Event::Vacuum {
                    rel: REL,
                    block: 5,
                    unused: vec![4, 6]
                })
            );
            // Freezing alone kills nothing.
            let main = prune_main((1 << 3) | (1 << 4), Some(5));
            let mut data = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
            data.extend(le16(&[3]));
            let r = Rec {
                rmid: RM_HEAP2_ID,
                info: 0x20,
                xid: 0,
                main: &main,
                blocks: vec![blk(0, 5, &data)],
            };
            assert_eq!(
                decode(&r, fmt).unwrap(),
                Some(Event::Prune {
                    rel: REL,
                    block: 5,
                    redirected: vec![],
                    dead: vec![],
                    unused: vec![]
                })
            );
            // A count past the end of the block data is an error, not a guess.
            let main = prune_main(1 << 6, None);
            let short = le16(&[3, 4]);
            let r = Rec {
                rmid: RM_HEAP2_ID,
                info: 0x10,
                xid: 0,
                main: &main,
                blocks: vec![blk(0, 5, &short)],
            };
            assert!(decode(&r, fmt).is_err());
            // A flags byte missing: error.
            let r = Rec {
                rmid: RM_HEAP2_ID,
                info: 0x10,
                xid: 0,
                main: &[2],
                blocks: vec![blk(0, 5, &[])],
            };
            assert!(decode(&r, fmt).is_err());
        }
        // The same bytes on 15/16: 0x30 is FREEZE_PAGE there, which frees nothing.
        let (main, data) = (prune_main(1 << 7, None), le16(&[2, 4, 6]));
        let r = Rec {
            rmid: RM_HEAP2_ID,
            info: 0x30,
            xid: 0,
            main: &main,
            blocks: vec![blk(0, 5, &data)],
        };
        assert_eq!(decode(&r, pg(160_015)).unwrap(), None);
    }

    #[test]
    fn a_merged_prune_with_an_image_reads_the_page() {
        let mut page = vec![0u8; 8192];
        page[12..14].copy_from_slice(&(24u16 + 8).to_le_bytes());
        for (i, flags) in [2u32, 0].iter().enumerate() {
            let v = (3 - i as u32) | (flags << 15);
            page[24 + 4 * i..28 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        for (info, vacuum) in [(0x10, false), (0x20, false), (0x30, true)] {
            let b = Block {
                id: 0,
                fork: 0,
                rel: REL,
                block: 1,
                data: &[],
                image: Some(&page),
            };
            let r = Rec {
                rmid: RM_HEAP2_ID,
                info,
                xid: 0,
                main: &prune_main((1 << 3) | (1 << 5) | (1 << 7), Some(9)),
                blocks: vec![b],
            };
            assert_eq!(
                decode(&r, pg(170_011)).unwrap(),
                Some(Event::PageState {
                    rel: REL,
                    block: 1,
                    flags: vec![2, 0],
                    vacuum
                })
            );
        }
    }

    #[test]
    fn visibility_map_references_are_never_taken_for_heap_pages() {
        // 17.11+/18.6+: a HOT update (old and new on block ref 0) that also
        // references the visibility-map page under id 1.
        let mut main = vec![0; 14];
        main[4] = 5;
        main[12] = 9;
        let vm = Block {
            id: 1,
            fork: VISIBILITY_MAP_FORK,
            rel: REL,
            block: 0,
            data: &[],
            image: None,
        };
        for fmt in [pg(170_011), pg(180_006)] {
            let r = Rec {
                rmid: RM_HEAP_ID,
                info: 0x40,
                xid: 901,
                main: &main,
                blocks: vec![blk(0, 8, &[]), vm],
            };
            let Some(Event::Update { old, new, .. }) = decode(&r, fmt).unwrap() else {
                panic!()
            };
            assert_eq!((old.block, old.offset, new.block, new.offset), (8, 5, 8, 9));
            // A cross-page update: old on ref 1 (main fork), VM page on ref 2.
            let vm2 = Block { id: 2, ..vm };
            let r = Rec {
                rmid: RM_HEAP_ID,
                info: 0x20,
                xid: 901,
                main: &main,
                blocks: vec![blk(0, 8, &[]), blk(1, 2, &[]), vm2],
            };
            let Some(Event::Update { old, .. }) = decode(&r, fmt).unwrap() else {
                panic!()
            };
            assert_eq!(old.block, 2);
            // An insert and a delete with the VM page as a further reference.
            let r = Rec {
                rmid: RM_HEAP_ID,
                info: 0x00,
                xid: 900,
                main: &[7, 0, 0],
                blocks: vec![vm, blk(0, 3, &[])],
            };
            assert!(matches!(
                decode(&r, fmt).unwrap(),
                Some(Event::Insert { block: 3, .. })
            ));
        }
    }

    #[test]
    fn dropped_statistics_items_are_12_bytes_up_to_17_and_16_on_18() {
        // ROLLBACK PREPARED of a transaction that created a table: relation, one
        // dropped-statistics item, then the prepared transaction's xid.
        let xinfo =
            XACT_XINFO_HAS_RELFILENODES | XACT_XINFO_HAS_DROPPED_STATS | XACT_XINFO_HAS_TWOPHASE;
        for (v, item) in [(150_000, 12), (160_015, 12), (170_011, 12), (180_006, 16)] {
            let fmt = pg(v);
            assert_eq!(fmt.stats_item, item, "{v}");
            let main = commit_bytes(xinfo, &[], &[REL], 1, 0, Some(4242), fmt);
            let r = Rec {
                rmid: RM_XACT_ID,
                info: 0x40 | 0x80,
                xid: 0,
                main: &main,
                blocks: vec![],
            };
            assert_eq!(
                decode(&r, fmt).unwrap(),
                Some(Event::End {
                    committed: false,
                    xid: 4242,
                    subxacts: vec![],
                    dropped: vec![REL],
                    prepared: true
                }),
                "{v}"
            );
            // Read with the other size, the same bytes do not give this xid back.
            let wrong = Format {
                stats_item: 28 - item,
                ..fmt
            };
            assert_ne!(decode(&r, wrong).ok().flatten(), decode(&r, fmt).unwrap());
        }
    }

    #[test]
    fn checkpoints_on_every_major() {
        let mut d = vec![0u8; 88];
        d[0..8].copy_from_slice(&0x1_0200_0028u64.to_le_bytes());
        d[64..72].copy_from_slice(&1_700_000_000i64.to_le_bytes());
        for v in [150_000, 160_015, 170_011, 180_006] {
            assert_eq!(
                checkpoint(RM_XLOG_ID, 0x10, &d, pg(v)),
                Some(Checkpoint {
                    redo: 0x1_0200_0028,
                    time_s: 1_700_000_000,
                    shutdown: false
                })
            );
            assert_eq!(
                checkpoint(RM_XLOG_ID, XLOG_CHECKPOINT_REDO, &[2, 0, 0, 0], pg(v)),
                None
            );
        }
    }

    #[test]
    fn a_records_time_is_its_commit_or_checkpoint_time() {
        // A checkpoint at 1,700,000,000 s after 1970; a commit 1 s after 2000-01-01
        // (946,684,801 s after 1970); a heap insert has no time.
        let mut cp = vec![0u8; 88];
        cp[64..72].copy_from_slice(&1_700_000_000i64.to_le_bytes());
        let commit = 1_000_000i64.to_le_bytes();
        assert_eq!(
            record_time_us(RM_XLOG_ID, 0x10, &cp, PG15),
            Some(1_700_000_000_000_000)
        );
        assert_eq!(
            record_time_us(RM_XACT_ID, 0x00, &commit, PG15),
            Some(946_684_801_000_000)
        );
        assert_eq!(record_time_us(RM_HEAP_ID, 0x00, &commit, PG15), None);
        assert_eq!(record_time_us(RM_XLOG_ID, 0x40, &cp, PG15), None);
    }
}
