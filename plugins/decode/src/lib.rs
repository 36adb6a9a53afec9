//! Decoding the WAL records the shipped plugins read: those that create, kill or free
//! heap tuples and those that end transactions, into [`Event`]s (garbagemap, budget),
//! and the standby's running-transactions record (budget).
//!
//! Layouts are those of PostgreSQL 15 and 16 (`heapam_xlog.h`, `xact.h`,
//! `storage_xlog.h`, `dbcommands_xlog.h`); [`Format`] carries what differs between
//! them. All integers are little-endian host order as the server wrote them.

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
        xid: u32,
        rel: RelKey,
        block: u32,
        offsets: Vec<u16>,
        init_page: bool,
    },
    /// The tuple deleted by `xid` (dead if it commits); `now`: dead at once
    /// (a speculative insertion taken back).
    Delete { xid: u32, item: Item, now: bool },
    /// `old` replaced by `new` by `xid`: old dead if it commits, new dead if it aborts.
    Update {
        xid: u32,
        old: Item,
        new: Item,
        new_init_page: bool,
        hot: bool,
    },
    /// Pruning of one page: redirected roots, items now dead, items now unused.
    Prune {
        rel: RelKey,
        block: u32,
        redirected: Vec<u16>,
        dead: Vec<u16>,
        unused: Vec<u16>,
    },
    /// VACUUM freed these dead line pointers.
    Vacuum {
        rel: RelKey,
        block: u32,
        unused: Vec<u16>,
    },
    /// A prune or vacuum record carried the whole page instead of its offsets: the
    /// line pointer flags after it (index 0 is line pointer 1).
    PageState {
        rel: RelKey,
        block: u32,
        flags: Vec<u8>,
        vacuum: bool,
    },
    /// A transaction ended. `xid` is the (sub)transaction the record ends, with
    /// `subxacts`; `dropped` relations are removed on commit (and on abort, those
    /// created by the transaction).
    End {
        committed: bool,
        xid: u32,
        subxacts: Vec<u32>,
        dropped: Vec<RelKey>,
        prepared: bool,
    },
    /// A transaction was prepared for two-phase commit: it stays pending.
    Prepare { xid: u32 },
    /// The main fork was truncated to `blocks` blocks.
    Truncate { rel: RelKey, blocks: u32 },
    /// A relation file was created (a reused number starts empty).
    Create { rel: RelKey },
    /// A database was dropped.
    DropDatabase { db: u32 },
    /// The server shut down or finished crash recovery: transactions without an end
    /// record (other than prepared ones) are aborted.
    ServerRestart,
}

/// What differs between PostgreSQL majors in the records decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// `sizeof(xl_xact_stats_item)`: 12 on 15, 16 from 16 on.
    pub stats_item: usize,
}

impl Format {
    /// The format of PostgreSQL `major`, when this plugin knows it.
    pub fn for_major(major: u32) -> Option<Format> {
        match major {
            15 => Some(Format { stats_item: 12 }),
            16 => Some(Format { stats_item: 16 }),
            _ => None,
        }
    }
}

/// Resource manager ids.
pub const RM_XLOG_ID: u8 = 0;
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
    fn block(&self, id: u8) -> Option<&Block<'a>> {
        self.blocks.iter().find(|b| b.id == id)
    }
}

/// Why a record could not be decoded (it is counted, never silently skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: record too short or inconsistent")]
pub struct DecodeError {
    /// Which record.
    pub what: &'static str,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
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
const XLOG_HEAP2_PRUNE: u8 = 0x10;
const XLOG_HEAP2_VACUUM: u8 = 0x20;
const XLOG_HEAP2_MULTI_INSERT: u8 = 0x50;
const XLH_DELETE_IS_SUPER: u8 = 1 << 3;
const XLOG_XACT_OPMASK: u8 = 0x70;
const XLOG_XACT_HAS_INFO: u8 = 0x80;
const XLOG_XACT_COMMIT: u8 = 0x00;
const XLOG_XACT_PREPARE: u8 = 0x10;
const XLOG_XACT_ABORT: u8 = 0x20;
const XLOG_XACT_COMMIT_PREPARED: u8 = 0x30;
const XLOG_XACT_ABORT_PREPARED: u8 = 0x40;
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
const XLOG_CHECKPOINT_SHUTDOWN: u8 = 0x00;
const XLOG_END_OF_RECOVERY: u8 = 0x90;

/// Decodes one record; `Ok(None)` for records that do not matter here.
pub fn decode(r: &Rec<'_>, fmt: Format) -> Result<Option<Event>, DecodeError> {
    match r.rmid {
        RM_HEAP_ID => heap(r),
        RM_HEAP2_ID => heap2(r),
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
        Some(b) if b.fork == 0 => Ok(Some(b)),
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
            let old_b = r.block(1).unwrap_or(new_b);
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

fn heap2(r: &Rec<'_>) -> Result<Option<Event>, DecodeError> {
    let op = r.info & XLOG_HEAP_OPMASK;
    if matches!(op, XLOG_HEAP2_PRUNE | XLOG_HEAP2_VACUUM) {
        // With a full-page image the record may carry no offsets: read the page.
        if let Some(b) = r.block(0).filter(|b| b.fork == 0 && b.data.is_empty()) {
            if let Some(page) = b.image {
                let flags = page_flags(page).ok_or(DecodeError {
                    what: "heap page image",
                })?;
                return Ok(Some(Event::PageState {
                    rel: b.rel,
                    block: b.block,
                    flags,
                    vacuum: op == XLOG_HEAP2_VACUUM,
                }));
            }
        }
    }
    match op {
        XLOG_HEAP2_PRUNE => {
            let e = DecodeError { what: "heap prune" };
            let Some(b) = main_block(r, 0, "heap prune")? else {
                return Ok(None);
            };
            let nredirected = u16_at(r.main, 4).ok_or(e.clone())? as usize;
            let ndead = u16_at(r.main, 6).ok_or(e.clone())? as usize;
            let all = offsets(b.data);
            if all.len() < 2 * nredirected + ndead {
                return Err(e);
            }
            // Redirected pairs (from, to): `from` stops being a tuple; `to` stays.
            let redirected = all[..2 * nredirected].chunks(2).map(|p| p[0]).collect();
            let dead = all[2 * nredirected..2 * nredirected + ndead].to_vec();
            let unused = all[2 * nredirected + ndead..].to_vec();
            Ok(Some(Event::Prune {
                rel: b.rel,
                block: b.block,
                redirected,
                dead,
                unused,
            }))
        }
        XLOG_HEAP2_VACUUM => {
            let e = DecodeError {
                what: "heap vacuum",
            };
            let Some(b) = main_block(r, 0, "heap vacuum")? else {
                return Ok(None);
            };
            let n = u16_at(r.main, 0).ok_or(e.clone())? as usize;
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
        XLOG_HEAP2_MULTI_INSERT => {
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
                offsets(r.main.get(4..4 + 2 * n as usize).ok_or(e)?)
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

    const REL: RelKey = RelKey {
        db: 5,
        ts: 1663,
        rel: 16384,
    };
    const PG15: Format = Format { stats_item: 12 };

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
        for fmt in [
            Format::for_major(15).unwrap(),
            Format::for_major(16).unwrap(),
        ] {
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
}
