//! Visibility-map bits from the WAL: which heap blocks a record marks all-visible or
//! all-frozen, and which it clears ([`visibility`]).
//!
//! What sets and clears the bits on PostgreSQL 15 to 18 (read from `heapam_xlog.h`,
//! `visibilitymapdefs.h` and the heap redo routines):
//!
//! | record | effect on the heap block's bits |
//! |---|---|
//! | `XLOG_HEAP2_VISIBLE` (heap block is reference 1, the VM page reference 0) | sets `flags & 3` (all-visible 1, all-frozen 2); also COPY FREEZE's pages |
//! | heap insert, multi-insert with `XLH_INSERT_ALL_VISIBLE_CLEARED` | clears both |
//! | heap delete with `XLH_DELETE_ALL_VISIBLE_CLEARED` | clears both |
//! | (HOT) update with `XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED` / `..._NEW_...` | clears both on the old / new block |
//! | heap lock, lock-updated with `XLH_LOCK_ALL_FROZEN_CLEARED` | clears all-frozen only |
//! | storage truncate, relation drop or new relfilenode | blocks past the end, or all, lose both ([`crate::Event`]) |
//!
//! 17 and 18's merged prune records carry no visibility-map flags (VACUUM still
//! writes `XLOG_HEAP2_VISIBLE` after pruning); PostgreSQL 19 moves the setting into
//! the prune record, one reason [`crate::format::FIRST_UNKNOWN`] is 19.

use crate::{u16_at, DecodeError, Rec, RelKey, RM_HEAP2_ID, RM_HEAP_ID};

/// `VISIBILITYMAP_ALL_VISIBLE`.
pub const VM_ALL_VISIBLE: u8 = 0x01;
/// `VISIBILITYMAP_ALL_FROZEN`.
pub const VM_ALL_FROZEN: u8 = 0x02;
/// `VISIBILITYMAP_VALID_BITS`: both.
pub const VM_VALID_BITS: u8 = VM_ALL_VISIBLE | VM_ALL_FROZEN;

const XLOG_HEAP_INSERT: u8 = 0x00;
const XLOG_HEAP_DELETE: u8 = 0x10;
const XLOG_HEAP_UPDATE: u8 = 0x20;
const XLOG_HEAP_HOT_UPDATE: u8 = 0x40;
const XLOG_HEAP_LOCK: u8 = 0x60;
const XLOG_HEAP2_VISIBLE: u8 = 0x40;
const XLOG_HEAP2_MULTI_INSERT: u8 = 0x50;
const XLOG_HEAP2_LOCK_UPDATED: u8 = 0x60;
const OPMASK: u8 = 0x70;
const XLH_INSERT_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
const XLH_DELETE_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
const XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED: u8 = 1 << 0;
const XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED: u8 = 1 << 1;
const XLH_LOCK_ALL_FROZEN_CLEARED: u8 = 0x01;
/// `offsetof(xl_heap_visible, flags)`.
const VISIBLE_FLAGS_AT: usize = 4;
/// `offsetof(flags)` in `xl_heap_delete`, `xl_heap_update`, `xl_heap_lock` and
/// `xl_heap_lock_updated` (after a 4-byte xid, a 2-byte offset and the infobits).
const FLAGS_AFTER_XID_AT: usize = 7;
/// `offsetof(xl_heap_insert, flags)`.
const INSERT_FLAGS_AT: usize = 2;

/// One change of one heap block's visibility-map bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmChange {
    /// Relation (its main fork's identity).
    pub rel: RelKey,
    /// Heap block whose bits change.
    pub block: u32,
    /// Bits set (`VM_ALL_VISIBLE`, `VM_ALL_FROZEN`), ORed into the current ones.
    pub set: u8,
    /// Bits cleared.
    pub clear: u8,
}

/// The visibility-map changes of one record: at most two (an update clears the old
/// and the new block).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmChanges([Option<VmChange>; 2]);

impl VmChanges {
    fn push(&mut self, c: VmChange) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some(c);
        }
    }

    /// The changes, in record order.
    pub fn iter(&self) -> impl Iterator<Item = VmChange> + '_ {
        self.0.iter().flatten().copied()
    }

    /// No change.
    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }
}

/// The visibility-map bits a heap or heap2 record sets or clears (empty for every
/// other record). Blocks are chosen by reference id *and* main fork, so 17.11+ and
/// 18.6+'s visibility-map page references are never taken for heap blocks.
pub fn visibility(r: &Rec<'_>) -> Result<VmChanges, DecodeError> {
    let mut out = VmChanges::default();
    // Clears `bits` of the main-fork block `id` when the flags byte at `at` has `mask`.
    let mut clear_if = |at: usize, mask: u8, id: u8, bits: u8, what: &'static str| {
        let flags = r.main.get(at).copied().ok_or(DecodeError { what })?;
        if let Some(b) = r.main_fork_block(id).filter(|_| flags & mask != 0) {
            out.push(VmChange {
                rel: b.rel,
                block: b.block,
                set: 0,
                clear: bits,
            });
        }
        Ok::<(), DecodeError>(())
    };
    match (r.rmid, r.info & OPMASK) {
        (RM_HEAP2_ID, XLOG_HEAP2_VISIBLE) => {
            let what = "heap visible";
            let flags = r
                .main
                .get(VISIBLE_FLAGS_AT)
                .copied()
                .ok_or(DecodeError { what })?;
            let b = r.main_fork_block(1).ok_or(DecodeError {
                what: "heap visible (no heap block)",
            })?;
            out.push(VmChange {
                rel: b.rel,
                block: b.block,
                set: flags & VM_VALID_BITS,
                clear: 0,
            });
        }
        (RM_HEAP2_ID, XLOG_HEAP2_MULTI_INSERT) => clear_if(
            0,
            XLH_INSERT_ALL_VISIBLE_CLEARED,
            0,
            VM_VALID_BITS,
            "heap multi-insert",
        )?,
        (RM_HEAP2_ID, XLOG_HEAP2_LOCK_UPDATED) => clear_if(
            FLAGS_AFTER_XID_AT,
            XLH_LOCK_ALL_FROZEN_CLEARED,
            0,
            VM_ALL_FROZEN,
            "heap lock updated",
        )?,
        (RM_HEAP_ID, XLOG_HEAP_INSERT) => {
            // The offset comes first; its presence is what makes the record whole.
            u16_at(r.main, 0).ok_or(DecodeError {
                what: "heap insert",
            })?;
            clear_if(
                INSERT_FLAGS_AT,
                XLH_INSERT_ALL_VISIBLE_CLEARED,
                0,
                VM_VALID_BITS,
                "heap insert",
            )?
        }
        (RM_HEAP_ID, XLOG_HEAP_DELETE) => clear_if(
            FLAGS_AFTER_XID_AT,
            XLH_DELETE_ALL_VISIBLE_CLEARED,
            0,
            VM_VALID_BITS,
            "heap delete",
        )?,
        (RM_HEAP_ID, XLOG_HEAP_UPDATE | XLOG_HEAP_HOT_UPDATE) => {
            // The old tuple is on reference 1 when it moved pages, else on 0.
            let old = if r.main_fork_block(1).is_some() { 1 } else { 0 };
            let at = FLAGS_AFTER_XID_AT;
            let what = "heap update";
            clear_if(
                at,
                XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED,
                old,
                VM_VALID_BITS,
                what,
            )?;
            clear_if(
                at,
                XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED,
                0,
                VM_VALID_BITS,
                what,
            )?;
        }
        (RM_HEAP_ID, XLOG_HEAP_LOCK) => clear_if(
            FLAGS_AFTER_XID_AT,
            XLH_LOCK_ALL_FROZEN_CLEARED,
            0,
            VM_ALL_FROZEN,
            "heap lock",
        )?,
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Block, MAIN_FORK, VISIBILITY_MAP_FORK};

    const REL: RelKey = RelKey {
        db: 5,
        ts: 1663,
        rel: 16384,
    };

    fn blk(id: u8, fork: u8, block: u32) -> Block<'static> {
        Block {
            id,
            fork,
            rel: REL,
            block,
            data: &[],
            image: None,
        }
    }

    fn rec<'a>(rmid: u8, info: u8, main: &'a [u8], blocks: Vec<Block<'a>>) -> Rec<'a> {
        Rec {
            rmid,
            info,
            xid: 7,
            main,
            blocks,
        }
    }

    fn changes(r: &Rec<'_>) -> Vec<(u32, u8, u8)> {
        visibility(r)
            .unwrap()
            .iter()
            .map(|c| (c.block, c.set, c.clear))
            .collect()
    }

    #[test]
    fn visible_records_set_the_heap_blocks_bits() {
        // xl_heap_visible {horizon 900; flags VISIBLE|FROZEN|CATALOG_REL (0x04)}; the
        // VM page is reference 0 (fork 2, block 0), the heap page reference 1.
        let main = [0x84, 3, 0, 0, 0x07];
        let r = rec(
            RM_HEAP2_ID,
            0x40,
            &main,
            vec![blk(0, VISIBILITY_MAP_FORK, 0), blk(1, MAIN_FORK, 41)],
        );
        assert_eq!(changes(&r), vec![(41, 3, 0)]);
        let main = [0x84, 3, 0, 0, 0x01];
        let r = rec(
            RM_HEAP2_ID,
            0x40,
            &main,
            vec![blk(0, VISIBILITY_MAP_FORK, 0), blk(1, MAIN_FORK, 2)],
        );
        assert_eq!(changes(&r), vec![(2, 1, 0)]);
        // Without the flags byte, or without the heap block: an error, not a guess.
        let r = rec(RM_HEAP2_ID, 0x40, &main[..4], vec![blk(1, MAIN_FORK, 2)]);
        assert!(visibility(&r).is_err());
        let r = rec(
            RM_HEAP2_ID,
            0x40,
            &main,
            vec![blk(0, VISIBILITY_MAP_FORK, 0)],
        );
        assert!(visibility(&r).is_err());
    }

    #[test]
    fn heap_flags_clear_the_bits() {
        // Insert {offnum 3; flags}: bit 0 clears; INIT_PAGE (0x80) changes nothing.
        for info in [0x00, 0x80] {
            let r = rec(
                RM_HEAP_ID,
                info,
                &[3, 0, 0x01],
                vec![blk(0, MAIN_FORK, 9), blk(1, VISIBILITY_MAP_FORK, 0)],
            );
            assert_eq!(changes(&r), vec![(9, 0, 3)]);
        }
        let r = rec(RM_HEAP_ID, 0x00, &[3, 0, 0x08], vec![blk(0, MAIN_FORK, 9)]);
        assert!(visibility(&r).unwrap().is_empty());
        // Multi-insert {flags; pad; ntuples}.
        let r = rec(
            RM_HEAP2_ID,
            0x50,
            &[0x01, 0, 2, 0],
            vec![blk(0, MAIN_FORK, 4)],
        );
        assert_eq!(changes(&r), vec![(4, 0, 3)]);
        let r = rec(
            RM_HEAP2_ID,
            0x50,
            &[0x20, 0, 2, 0],
            vec![blk(0, MAIN_FORK, 4)],
        );
        assert!(
            visibility(&r).unwrap().is_empty(),
            "ALL_FROZEN_SET is followed by a VISIBLE record"
        );
        // Delete {xmax; offnum; infobits; flags}.
        let r = rec(
            RM_HEAP_ID,
            0x10,
            &[1, 0, 0, 0, 5, 0, 0, 0x01],
            vec![blk(0, MAIN_FORK, 6)],
        );
        assert_eq!(changes(&r), vec![(6, 0, 3)]);
        let r = rec(
            RM_HEAP_ID,
            0x10,
            &[1, 0, 0, 0, 5, 0, 0, 0x08],
            vec![blk(0, MAIN_FORK, 6)],
        );
        assert!(visibility(&r).unwrap().is_empty());
        // A cross-page update clearing both: old on reference 1, new on 0; the VM
        // pages (references 2 and 3, fork 2) are never taken for heap blocks.
        let mut main = [0u8; 14];
        main[7] = 0x03;
        let r = rec(
            RM_HEAP_ID,
            0x20,
            &main,
            vec![
                blk(0, MAIN_FORK, 8),
                blk(1, MAIN_FORK, 2),
                blk(2, VISIBILITY_MAP_FORK, 0),
                blk(3, VISIBILITY_MAP_FORK, 0),
            ],
        );
        assert_eq!(changes(&r), vec![(2, 0, 3), (8, 0, 3)]);
        // A HOT update clearing the old page's bits: same block.
        main[7] = 0x01;
        let r = rec(
            RM_HEAP_ID,
            0x40,
            &main,
            vec![blk(0, MAIN_FORK, 8), blk(2, VISIBILITY_MAP_FORK, 0)],
        );
        assert_eq!(changes(&r), vec![(8, 0, 3)]);
        // Lock and lock-updated clear all-frozen only.
        let lock = [1, 0, 0, 0, 5, 0, 0, 0x01];
        for (rmid, info) in [(RM_HEAP_ID, 0x60), (RM_HEAP2_ID, 0x60)] {
            let r = rec(rmid, info, &lock, vec![blk(0, MAIN_FORK, 11)]);
            assert_eq!(changes(&r), vec![(11, 0, VM_ALL_FROZEN)]);
        }
        // A record too short for its flags is an error.
        let r = rec(
            RM_HEAP_ID,
            0x10,
            &[1, 0, 0, 0, 5, 0],
            vec![blk(0, MAIN_FORK, 6)],
        );
        assert!(visibility(&r).is_err());
        // Other records change nothing.
        let r = rec(RM_HEAP2_ID, 0x10, &[0, 0], vec![blk(0, MAIN_FORK, 6)]);
        assert!(visibility(&r).unwrap().is_empty());
    }
}
