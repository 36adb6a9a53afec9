//! The dead-tuple map: which line pointers hold dead tuples or are dead, per block,
//! summed per block range, with pending per-transaction changes until the
//! transaction's fate is known.
//!
//! Bounds: at most `max_relations` relations and `max_ranges` ranges are tracked, and
//! at most `max_pending` changes wait for their transaction. Past a bound the least
//! recently changed relations (or ranges) are evicted, a tenth of the bound at a
//! time, and counted; pending changes past their bound are counted as unattributed.

use crate::blockmap::BlockMap;
use crate::decode::{Event, Item, RelKey, VmChange};
use crate::pending::{Changes, Fate};
use crate::vismap::{VisBits, VmBit};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// Line pointers per heap page (`MaxHeapTuplesPerPage` for 8 kB pages is 291).
pub const MAX_ITEMS: usize = 292;
const WORDS: usize = MAX_ITEMS.div_ceil(64);

/// One bit per line pointer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bits([u64; WORDS]);

impl Bits {
    /// u64 words of a bitmap.
    pub const WORDS: usize = WORDS;

    /// Whether line pointer `i` is set.
    pub fn get(&self, i: u16) -> bool {
        let i = i as usize;
        i < MAX_ITEMS && self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// The bitmap's u64 words, line pointer `i` at bit `i % 64` of word `i / 64`.
    pub fn words(&self) -> &[u64; WORDS] {
        &self.0
    }

    /// Line pointers set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Writes the bitmap as u16 words, low first, into `out` (`4 * WORDS` long).
    pub fn write_u16s(&self, out: &mut [u16]) {
        for (i, o) in out.iter_mut().take(WORDS * 4).enumerate() {
            *o = (self.0[i / 4] >> (16 * (i % 4))) as u16;
        }
    }

    /// The bitmap [`Bits::write_u16s`] wrote.
    pub fn from_u16s(words: &[u16]) -> Bits {
        let mut b = Bits::default();
        for (i, w) in words.iter().take(WORDS * 4).enumerate() {
            b.0[i / 4] |= u64::from(*w) << (16 * (i % 4));
        }
        b
    }

    /// Sets or clears line pointer `i`.
    pub fn set(&mut self, i: u16, v: bool) {
        let i = i as usize;
        if i < MAX_ITEMS {
            if v {
                self.0[i / 64] |= 1 << (i % 64);
            } else {
                self.0[i / 64] &= !(1 << (i % 64));
            }
        }
    }
}

/// The dead items of one block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockItems {
    /// Tuples whose deleter committed or whose inserter aborted.
    pub dead_tuples: Bits,
    /// `LP_DEAD` line pointers.
    pub dead_lps: Bits,
}

impl BlockItems {
    /// Nothing dead.
    pub fn is_empty(&self) -> bool {
        self.dead_tuples == Bits::default() && self.dead_lps == Bits::default()
    }
}

/// One block range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Dead items per block.
    pub blocks: BlockMap,
    /// Dead tuples in the range.
    pub dead_tuples: u64,
    /// Dead line pointers in the range.
    pub dead_lps: u64,
    /// Tuples inserted (by any transaction).
    pub inserts: u64,
    /// Tuples updated (old versions).
    pub updates: u64,
    /// Tuples deleted.
    pub deletes: u64,
    /// LSN of the last prune record.
    pub last_prune_lsn: u64,
    /// LSN of the last vacuum record.
    pub last_vacuum_lsn: u64,
    /// LSN of the last change.
    pub last_change_lsn: u64,
    /// Visibility-map bits of the range's blocks, as the WAL set and cleared them.
    pub vm: VisBits,
}

impl Range {
    /// Blocks marked all-visible.
    pub fn all_visible(&self) -> u64 {
        self.vm.count(VmBit::AllVisible)
    }
    /// Blocks marked all-frozen.
    pub fn all_frozen(&self) -> u64 {
        self.vm.count(VmBit::AllFrozen)
    }
}

/// One relation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rel {
    /// Ranges by index (block / range size).
    pub ranges: BTreeMap<u32, Range>,
    /// LSN of the last change.
    pub last_change_lsn: u64,
}

impl Rel {
    /// Dead tuples in the relation.
    pub fn dead_tuples(&self) -> u64 {
        self.ranges.values().map(|r| r.dead_tuples).sum()
    }
    /// Dead line pointers in the relation.
    pub fn dead_lps(&self) -> u64 {
        self.ranges.values().map(|r| r.dead_lps).sum()
    }
}

/// Limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Blocks per range.
    pub range_blocks: u32,
    /// Most relations tracked.
    pub max_relations: usize,
    /// Most ranges tracked.
    pub max_ranges: usize,
    /// Most changes waiting for their transaction.
    pub max_pending: usize,
}

/// What happened to what did not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Relations evicted to stay within `max_relations`.
    pub evicted_relations: u64,
    /// Ranges evicted to stay within `max_ranges` (not counting those of evicted relations).
    pub evicted_ranges: u64,
    /// Dead tuples forgotten with evicted relations and ranges.
    pub evicted_dead_tuples: u64,
    /// Changes not held because the pending bound was reached (their fate is unknown to the map).
    pub unattributed: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// Relations removed because they were dropped, rewritten or their database dropped.
    pub dropped_relations: u64,
}

/// Most emptied change lists [`Tracker`] keeps for reuse.
const SPARE_CHANGES: usize = 64;
/// Largest change list (in changes) kept for reuse; bigger ones are freed.
const SPARE_CAPACITY: usize = 64;

/// The whole map.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Limits.
    pub limits: Limits,
    /// Relations.
    ///
    /// Hashed with Fx rather than SipHash: the keys are relfilenodes and
    /// transaction ids from the WAL, and the map is looked up several times per
    /// record (SipHash was a tenth of garbagemap's time).
    pub rels: FxHashMap<RelKey, Rel>,
    pending: FxHashMap<u32, Changes>,
    pending_len: usize,
    prepared: FxHashSet<u32>,
    /// Emptied change lists of ended transactions, kept for the next ones (at most
    /// [`SPARE_CHANGES`]): most transactions hold a few changes, and reusing their
    /// vectors saves two allocations and a few reallocations per transaction.
    spare: Vec<Changes>,
    /// Counters.
    pub counters: Counters,
    n_ranges: usize,
}

impl Tracker {
    /// An empty map.
    pub fn new(limits: Limits) -> Tracker {
        Tracker {
            limits,
            rels: FxHashMap::default(),
            pending: FxHashMap::default(),
            pending_len: 0,
            prepared: FxHashSet::default(),
            spare: Vec::new(),
            counters: Counters::default(),
            n_ranges: 0,
        }
    }

    /// Ranges tracked.
    pub fn n_ranges(&self) -> usize {
        self.n_ranges
    }

    /// Changes waiting for their transaction.
    pub fn n_pending(&self) -> usize {
        self.pending_len
    }

    /// Transactions with pending changes.
    pub fn n_pending_xacts(&self) -> usize {
        self.pending.len()
    }

    fn range_of(&self, block: u32) -> u32 {
        block / self.limits.range_blocks.max(1)
    }

    /// The range of `item`, created when missing (evicting to stay within bounds).
    fn range_mut(&mut self, rel: RelKey, block: u32, lsn: u64) -> &mut Range {
        let idx = self.range_of(block);
        if self.rels.len() < self.limits.max_relations.max(1)
            && self.n_ranges < self.limits.max_ranges.max(1)
        {
            // Below both bounds nothing is evicted: one lookup of each map, creating
            // what is missing.
            let n_ranges = &mut self.n_ranges;
            let r = self.rels.entry(rel).or_default();
            r.last_change_lsn = lsn;
            let range = r.ranges.entry(idx).or_insert_with(|| {
                *n_ranges += 1;
                Range::default()
            });
            range.last_change_lsn = lsn;
            return range;
        }
        // At a bound, a range already tracked needs no eviction either.
        let (has_rel, exists) = match self.rels.get(&rel) {
            Some(r) => (true, r.ranges.contains_key(&idx)),
            None => (false, false),
        };
        if exists {
            let r = self.rels.get_mut(&rel).expect("looked up above");
            r.last_change_lsn = lsn;
            let range = r.ranges.get_mut(&idx).expect("looked up above");
            range.last_change_lsn = lsn;
            return range;
        }
        if !has_rel && self.rels.len() >= self.limits.max_relations.max(1) {
            self.evict_relations();
        }
        let exists = self
            .rels
            .get(&rel)
            .is_some_and(|r| r.ranges.contains_key(&idx));
        if !exists && self.n_ranges >= self.limits.max_ranges.max(1) {
            self.evict_ranges(rel);
        }
        let r = self.rels.entry(rel).or_default();
        r.last_change_lsn = lsn;
        let n_ranges = &mut self.n_ranges;
        let range = r.ranges.entry(idx).or_insert_with(|| {
            *n_ranges += 1;
            Range::default()
        });
        range.last_change_lsn = lsn;
        range
    }

    /// Evicts the least recently changed tenth of the relations.
    fn evict_relations(&mut self) {
        let n = (self.limits.max_relations / 10).max(1);
        let mut by_age: Vec<(u64, RelKey)> = self
            .rels
            .iter()
            .map(|(k, r)| (r.last_change_lsn, *k))
            .collect();
        by_age.sort();
        for (_, k) in by_age.into_iter().take(n) {
            if let Some(r) = self.rels.remove(&k) {
                self.n_ranges -= r.ranges.len();
                self.counters.evicted_relations += 1;
                self.counters.evicted_dead_tuples += r.dead_tuples();
            }
        }
    }

    /// Evicts the least recently changed tenth of the ranges (never from `keep`'s
    /// newest range being created).
    fn evict_ranges(&mut self, keep: RelKey) {
        let n = (self.limits.max_ranges / 10).max(1);
        let mut by_age: Vec<(u64, RelKey, u32)> = self
            .rels
            .iter()
            .flat_map(|(k, r)| {
                r.ranges
                    .iter()
                    .map(move |(i, g)| (g.last_change_lsn, *k, *i))
            })
            .collect();
        by_age.sort();
        for (_, k, i) in by_age.into_iter().take(n) {
            let Some(rel) = self.rels.get_mut(&k) else {
                continue;
            };
            if let Some(g) = rel.ranges.remove(&i) {
                self.n_ranges -= 1;
                self.counters.evicted_ranges += 1;
                self.counters.evicted_dead_tuples += g.dead_tuples;
            }
            if rel.ranges.is_empty() && k != keep {
                self.rels.remove(&k);
            }
        }
    }

    fn mark_dead(&mut self, item: Item, lsn: u64) {
        let range = self.range_mut(item.rel, item.block, lsn);
        if range.blocks.add_dead_tuple(item.block, item.offset) {
            range.dead_tuples = range.dead_tuples.saturating_add(1);
        }
    }

    fn hold(&mut self, xid: u32, item: Item, fate: Fate) {
        if xid == 0 {
            // Without a transaction id the change cannot be attributed.
            self.counters.unattributed += 1;
            return;
        }
        if self.pending_len >= self.limits.max_pending {
            self.counters.unattributed += 1;
            return;
        }
        let spare = &mut self.spare;
        self.pending
            .entry(xid)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(item, fate);
        self.pending_len += 1;
    }

    fn settle(&mut self, xid: u32, committed: bool, lsn: u64) {
        let Some(mut changes) = self.pending.remove(&xid) else {
            return;
        };
        self.pending_len -= changes.len();
        for (item, fate) in changes.iter() {
            let dies = matches!(
                (fate, committed),
                (Fate::DiesOnCommit, true) | (Fate::DiesOnAbort, false)
            );
            if dies {
                self.mark_dead(item, lsn);
            }
        }
        if self.spare.len() < SPARE_CHANGES && changes.capacity() <= SPARE_CAPACITY {
            changes.clear();
            self.spare.push(changes);
        }
    }

    fn clear_page(&mut self, rel: RelKey, block: u32) {
        let idx = self.range_of(block);
        if let Some(range) = self.rels.get_mut(&rel).and_then(|r| r.ranges.get_mut(&idx)) {
            edit_block(range, block, |b| *b = BlockItems::default());
        }
    }

    fn drop_rel(&mut self, rel: RelKey) {
        if let Some(r) = self.rels.remove(&rel) {
            self.n_ranges -= r.ranges.len();
            self.counters.dropped_relations += 1;
        }
    }

    /// Applies a visibility-map change of the record at `lsn`. Setting a bit tracks
    /// the block's range; clearing one of a range not tracked changes nothing.
    pub fn apply_visibility(&mut self, c: VmChange, lsn: u64) {
        let rb = self.limits.range_blocks.max(1);
        let offset = c.block % rb;
        if c.set != 0 {
            self.range_mut(c.rel, c.block, lsn)
                .vm
                .change(offset, rb, c.set, c.clear);
            return;
        }
        let idx = self.range_of(c.block);
        if let Some(range) = self
            .rels
            .get_mut(&c.rel)
            .and_then(|r| r.ranges.get_mut(&idx))
        {
            range.vm.change(offset, rb, 0, c.clear);
        }
    }

    /// Applies one event of the record at `lsn`.
    pub fn apply(&mut self, e: Event, lsn: u64) {
        match e {
            Event::Insert {
                xid,
                rel,
                block,
                offsets,
                init_page,
            } => {
                if init_page {
                    self.clear_page(rel, block);
                }
                self.range_mut(rel, block, lsn).inserts += offsets.len() as u64;
                for offset in offsets {
                    self.hold(xid, Item { rel, block, offset }, Fate::DiesOnAbort);
                }
            }
            Event::Delete { xid, item, now } => {
                self.range_mut(item.rel, item.block, lsn).deletes += 1;
                if now {
                    self.mark_dead(item, lsn);
                } else {
                    self.hold(xid, item, Fate::DiesOnCommit);
                }
            }
            Event::Update {
                xid,
                old,
                new,
                new_init_page,
                ..
            } => {
                if new_init_page {
                    self.clear_page(new.rel, new.block);
                }
                self.range_mut(old.rel, old.block, lsn).updates += 1;
                self.range_mut(new.rel, new.block, lsn).inserts += 1;
                self.hold(xid, old, Fate::DiesOnCommit);
                self.hold(xid, new, Fate::DiesOnAbort);
            }
            Event::Prune {
                rel,
                block,
                redirected,
                dead,
                unused,
            } => {
                let range = self.range_mut(rel, block, lsn);
                range.last_prune_lsn = lsn;
                edit_block(range, block, |b| {
                    for o in redirected.iter().chain(unused.iter()) {
                        b.dead_tuples.set(*o, false);
                        b.dead_lps.set(*o, false);
                    }
                    for o in dead {
                        b.dead_tuples.set(o, false);
                        b.dead_lps.set(o, true);
                    }
                });
            }
            Event::Vacuum { rel, block, unused } => {
                let range = self.range_mut(rel, block, lsn);
                range.last_vacuum_lsn = lsn;
                edit_block(range, block, |b| {
                    for o in unused {
                        b.dead_tuples.set(o, false);
                        b.dead_lps.set(o, false);
                    }
                });
            }
            Event::PageState {
                rel,
                block,
                flags,
                vacuum,
            } => {
                let range = self.range_mut(rel, block, lsn);
                if vacuum {
                    range.last_vacuum_lsn = lsn;
                } else {
                    range.last_prune_lsn = lsn;
                }
                edit_block(range, block, |b| {
                    for o in 1..MAX_ITEMS as u16 {
                        // 0 unused, 1 normal, 2 redirect, 3 dead; past pd_lower: unused.
                        match flags.get(o as usize - 1).copied().unwrap_or(0) {
                            3 => {
                                b.dead_tuples.set(o, false);
                                b.dead_lps.set(o, true);
                            }
                            1 => b.dead_lps.set(o, false),
                            _ => {
                                b.dead_tuples.set(o, false);
                                b.dead_lps.set(o, false);
                            }
                        }
                    }
                });
            }
            Event::End {
                committed,
                xid,
                subxacts,
                dropped,
                prepared,
            } => {
                for x in std::iter::once(xid).chain(subxacts) {
                    self.settle(x, committed, lsn);
                }
                if prepared {
                    self.prepared.remove(&xid);
                }
                for rel in dropped {
                    self.drop_rel(rel);
                }
            }
            Event::Prepare { xid } => {
                self.prepared.insert(xid);
            }
            Event::Truncate { rel, blocks } => {
                let first_cut = self.range_of(blocks);
                let Some(r) = self.rels.get_mut(&rel) else {
                    return;
                };
                let gone: Vec<u32> = r.ranges.range(first_cut..).map(|(i, _)| *i).collect();
                for i in gone {
                    let range = r.ranges.get_mut(&i).expect("listed");
                    let (tuples, lps) = range.blocks.remove_from(blocks);
                    range.dead_tuples -= tuples;
                    range.dead_lps -= lps;
                    let first = i.saturating_mul(self.limits.range_blocks.max(1));
                    range
                        .vm
                        .clear_from(blocks.saturating_sub(first), self.limits.range_blocks);
                    if i * self.limits.range_blocks.max(1) >= blocks {
                        r.ranges.remove(&i);
                        self.n_ranges -= 1;
                    }
                }
                r.last_change_lsn = lsn;
            }
            Event::Create { rel } => self.drop_rel(rel),
            Event::DropDatabase { db } => {
                let gone: Vec<RelKey> = self.rels.keys().filter(|k| k.db == db).copied().collect();
                for k in gone {
                    self.drop_rel(k);
                }
            }
            Event::ServerRestart => {
                // Transactions that were running when the server stopped never write
                // an end record: they aborted. Prepared ones survive; while any is
                // pending, nothing is settled (its subtransactions are not known here).
                if self.prepared.is_empty() {
                    let xids: Vec<u32> = self.pending.keys().copied().collect();
                    for x in xids {
                        self.settle(x, false, lsn);
                    }
                }
            }
        }
    }
}

/// Changes the line pointers of one block with `f`, keeping the range's sums right
/// and dropping the block once nothing in it is dead.
fn edit_block(range: &mut Range, block: u32, f: impl FnOnce(&mut BlockItems)) {
    let (tuples, lps) = range.blocks.edit(block, f);
    range.dead_tuples = range.dead_tuples.saturating_add_signed(tuples);
    range.dead_lps = range.dead_lps.saturating_add_signed(lps);
}

fn count(b: &Bits) -> u64 {
    b.0.iter().map(|w| u64::from(w.count_ones())).sum()
}

// ---------------------------------------------------------------------------------
// Snapshot encoding: the map, pending changes included, as little-endian integers.
// ---------------------------------------------------------------------------------

/// Version of the snapshot layout. 3 adds each range's visibility-map words (a
/// count, 0 when no bit is set, then the words); 2 writes each block's dead items
/// as a list of item numbers (as the map holds them), 1 wrote two bitmaps per block
/// (84 bytes a block, so a snapshot buffer took four times the map). All are read;
/// ranges from 1 and 2 start with no visibility-map bit.
pub const SNAPSHOT_FORMAT: u32 = 3;

/// In format 2, the item count that announces a block written as its two bitmaps.
const SNAPSHOT_BITMAPS: u16 = u16::MAX;
/// In format 2, marks a dead line pointer (else a dead tuple) in a block's list.
const SNAPSHOT_LP: u16 = 0x8000;
/// In format 2, blocks with more dead items than this are written as bitmaps.
const SNAPSHOT_MAX_LIST: u32 = (2 * Bits::WORDS * 8 / 2) as u32;

struct Writer<'a>(&'a mut Vec<u8>);
impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn rel(&mut self, r: RelKey) {
        self.u32(r.db);
        self.u32(r.ts);
        self.u32(r.rel);
    }
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("garbagemap snapshot ends early".into());
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn rel(&mut self) -> Result<RelKey, String> {
        Ok(RelKey {
            db: self.u32()?,
            ts: self.u32()?,
            rel: self.u32()?,
        })
    }
    /// One block's dead items as snapshot `format` wrote them.
    fn block_items(&mut self, format: u32) -> Result<BlockItems, String> {
        let n = if format == 1 {
            SNAPSHOT_BITMAPS
        } else {
            self.u16()?
        };
        if n == SNAPSHOT_BITMAPS {
            return Ok(BlockItems {
                dead_tuples: self.bits()?,
                dead_lps: self.bits()?,
            });
        }
        let mut b = BlockItems::default();
        for _ in 0..n {
            let w = self.u16()?;
            let o = w & !SNAPSHOT_LP;
            if usize::from(o) >= MAX_ITEMS {
                return Err(format!("garbagemap snapshot names item {o} of a block"));
            }
            if w & SNAPSHOT_LP != 0 {
                b.dead_lps.set(o, true);
            } else {
                b.dead_tuples.set(o, true);
            }
        }
        Ok(b)
    }

    fn bits(&mut self) -> Result<Bits, String> {
        let mut b = Bits::default();
        for w in b.0.iter_mut() {
            *w = self.u64()?;
        }
        Ok(b)
    }
}

impl Tracker {
    /// Appends the snapshot bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        crate::snapshot::ENVELOPE.begin(out);
        let mut w = Writer(out);
        w.u32(self.limits.range_blocks);
        let c = &self.counters;
        for v in [
            c.evicted_relations,
            c.evicted_ranges,
            c.evicted_dead_tuples,
            c.unattributed,
            c.undecodable,
            c.dropped_relations,
        ] {
            w.u64(v);
        }
        w.u32(self.rels.len() as u32);
        for (k, r) in &self.rels {
            w.rel(*k);
            w.u64(r.last_change_lsn);
            w.u32(r.ranges.len() as u32);
            for (i, g) in &r.ranges {
                w.u32(*i);
                for v in [
                    g.inserts,
                    g.updates,
                    g.deletes,
                    g.last_prune_lsn,
                    g.last_vacuum_lsn,
                    g.last_change_lsn,
                ] {
                    w.u64(v);
                }
                w.u32(g.blocks.len() as u32);
                for (b, items) in g.blocks.iter() {
                    w.u32(b);
                    let n = items.dead_tuples.count() + items.dead_lps.count();
                    if n > SNAPSHOT_MAX_LIST {
                        w.u16(SNAPSHOT_BITMAPS);
                        items
                            .dead_tuples
                            .0
                            .iter()
                            .chain(items.dead_lps.0.iter())
                            .for_each(|x| w.u64(*x));
                    } else {
                        w.u16(n as u16);
                        for o in 0..MAX_ITEMS as u16 {
                            if items.dead_tuples.get(o) {
                                w.u16(o);
                            }
                            if items.dead_lps.get(o) {
                                w.u16(o | SNAPSHOT_LP);
                            }
                        }
                    }
                }
                let vm = g.vm.words();
                w.u32(vm.len() as u32);
                vm.iter().for_each(|x| w.u64(*x));
            }
        }
        w.u32(self.pending.len() as u32);
        for (x, changes) in &self.pending {
            w.u32(*x);
            w.u32(changes.len() as u32);
            for (item, fate) in changes.iter() {
                w.rel(item.rel);
                w.u32(item.block);
                w.u16(item.offset);
                w.u8(matches!(fate, Fate::DiesOnAbort) as u8);
            }
        }
        w.u32(self.prepared.len() as u32);
        self.prepared.iter().for_each(|x| w.u32(*x));
    }

    /// Reads a snapshot written by [`Tracker::encode`]. The range size must match (a
    /// different `garbagemap.range_blocks` makes the map start empty); the other
    /// limits apply from now on.
    pub fn decode(bytes: &[u8], limits: Limits) -> Result<Tracker, String> {
        let (format, body) = crate::snapshot::open(bytes)?;
        let mut r = Reader(body);
        let range_blocks = r.u32()?;
        if range_blocks != limits.range_blocks {
            return Err(format!(
                "the snapshot was taken with garbagemap.range_blocks = {range_blocks}, the setting is now {}",
                limits.range_blocks
            ));
        }
        let mut t = Tracker::new(limits);
        let c = &mut t.counters;
        for v in [
            &mut c.evicted_relations,
            &mut c.evicted_ranges,
            &mut c.evicted_dead_tuples,
            &mut c.unattributed,
            &mut c.undecodable,
            &mut c.dropped_relations,
        ] {
            *v = r.u64()?;
        }
        for _ in 0..r.u32()? {
            let k = r.rel()?;
            let mut rel = Rel {
                last_change_lsn: r.u64()?,
                ranges: BTreeMap::new(),
            };
            for _ in 0..r.u32()? {
                let i = r.u32()?;
                let mut g = Range {
                    inserts: r.u64()?,
                    updates: r.u64()?,
                    deletes: r.u64()?,
                    last_prune_lsn: r.u64()?,
                    last_vacuum_lsn: r.u64()?,
                    last_change_lsn: r.u64()?,
                    ..Range::default()
                };
                for _ in 0..r.u32()? {
                    let b = r.u32()?;
                    let items = r.block_items(format)?;
                    g.dead_tuples += count(&items.dead_tuples);
                    g.dead_lps += count(&items.dead_lps);
                    g.blocks.set(b, &items);
                }
                if format >= 3 {
                    let n = r.u32()? as usize;
                    if n > r.0.len() / 8 {
                        return Err("garbagemap snapshot ends early".into());
                    }
                    let words = (0..n)
                        .map(|_| r.u64())
                        .collect::<Result<Vec<u64>, String>>()?;
                    g.vm = VisBits::from_words(words, range_blocks)?;
                }
                rel.ranges.insert(i, g);
                t.n_ranges += 1;
            }
            t.rels.insert(k, rel);
        }
        for _ in 0..r.u32()? {
            let x = r.u32()?;
            let n = r.u32()? as usize;
            let mut changes = Changes::default();
            for _ in 0..n {
                let item = Item {
                    rel: r.rel()?,
                    block: r.u32()?,
                    offset: r.u16()?,
                };
                let fate = if r.u8()? == 1 {
                    Fate::DiesOnAbort
                } else {
                    Fate::DiesOnCommit
                };
                changes.push(item, fate);
            }
            t.pending_len += changes.len();
            t.pending.insert(x, changes);
        }
        for _ in 0..r.u32()? {
            t.prepared.insert(r.u32()?);
        }
        if !r.0.is_empty() {
            return Err(format!(
                "{} bytes after the end of the garbagemap snapshot",
                r.0.len()
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RelKey = RelKey {
        db: 5,
        ts: 1663,
        rel: 100,
    };
    const LIMITS: Limits = Limits {
        range_blocks: 4,
        max_relations: 100,
        max_ranges: 100,
        max_pending: 1000,
    };

    fn it(block: u32, offset: u16) -> Item {
        Item {
            rel: A,
            block,
            offset,
        }
    }

    fn end(committed: bool, xid: u32, subxacts: Vec<u32>) -> Event {
        Event::End {
            committed,
            xid,
            subxacts,
            dropped: vec![],
            prepared: false,
        }
    }

    fn dead(t: &Tracker) -> (u64, u64) {
        t.rels
            .get(&A)
            .map(|r| (r.dead_tuples(), r.dead_lps()))
            .unwrap_or((0, 0))
    }

    #[test]
    fn fate_decides_which_version_dies() {
        let mut t = Tracker::new(LIMITS);
        // Committed delete: the old tuple dies.
        t.apply(
            Event::Delete {
                xid: 10,
                item: it(0, 1),
                now: false,
            },
            1,
        );
        assert_eq!(dead(&t), (0, 0), "nothing dead before the commit");
        t.apply(end(true, 10, vec![]), 2);
        assert_eq!(dead(&t), (1, 0));
        // Aborted insert: the new tuple dies; aborted delete: nothing.
        t.apply(
            Event::Insert {
                xid: 11,
                rel: A,
                block: 0,
                offsets: vec![2, 3],
                init_page: false,
            },
            3,
        );
        t.apply(
            Event::Delete {
                xid: 11,
                item: it(0, 4),
                now: false,
            },
            4,
        );
        t.apply(end(false, 11, vec![]), 5);
        assert_eq!(dead(&t), (3, 0));
        // Committed update: old dies; aborted update: new dies (block 5 is range 1).
        t.apply(
            Event::Update {
                xid: 12,
                old: it(0, 5),
                new: it(5, 1),
                new_init_page: false,
                hot: false,
            },
            6,
        );
        t.apply(end(true, 12, vec![]), 7);
        t.apply(
            Event::Update {
                xid: 13,
                old: it(5, 1),
                new: it(5, 2),
                new_init_page: false,
                hot: true,
            },
            8,
        );
        t.apply(end(false, 13, vec![]), 9);
        assert_eq!(dead(&t), (5, 0));
        let r = &t.rels[&A];
        assert_eq!((r.ranges[&0].dead_tuples, r.ranges[&1].dead_tuples), (4, 1));
        assert_eq!(t.n_pending(), 0);
    }

    #[test]
    fn subtransactions_and_two_phase() {
        let mut t = Tracker::new(LIMITS);
        // Top 20 with subxacts 21 (rolled back to its savepoint) and 22 (kept).
        t.apply(
            Event::Delete {
                xid: 20,
                item: it(0, 1),
                now: false,
            },
            1,
        );
        t.apply(
            Event::Delete {
                xid: 21,
                item: it(0, 2),
                now: false,
            },
            2,
        );
        t.apply(
            Event::Insert {
                xid: 21,
                rel: A,
                block: 0,
                offsets: vec![3],
                init_page: false,
            },
            3,
        );
        t.apply(end(false, 21, vec![]), 4); // ROLLBACK TO SAVEPOINT
        assert_eq!(dead(&t), (1, 0), "the rolled-back insert is dead at once");
        t.apply(
            Event::Delete {
                xid: 22,
                item: it(0, 4),
                now: false,
            },
            5,
        );
        t.apply(end(true, 20, vec![22]), 6);
        assert_eq!(
            dead(&t),
            (3, 0),
            "rows 1 and 4 deleted, row 3's insert rolled back; row 2's delete undone"
        );
        // Prepared 30 stays pending across a restart, then commits.
        t.apply(
            Event::Delete {
                xid: 30,
                item: it(1, 1),
                now: false,
            },
            7,
        );
        t.apply(Event::Prepare { xid: 30 }, 8);
        t.apply(Event::ServerRestart, 9);
        assert_eq!(dead(&t), (3, 0));
        t.apply(
            Event::End {
                committed: true,
                xid: 30,
                subxacts: vec![],
                dropped: vec![],
                prepared: true,
            },
            10,
        );
        assert_eq!(dead(&t), (4, 0));
        // A transaction cut off by a restart aborted.
        t.apply(
            Event::Insert {
                xid: 40,
                rel: A,
                block: 1,
                offsets: vec![2],
                init_page: false,
            },
            11,
        );
        t.apply(Event::ServerRestart, 12);
        assert_eq!(dead(&t), (5, 0));
    }

    #[test]
    fn prune_and_vacuum_move_items() {
        let mut t = Tracker::new(LIMITS);
        for o in 1..=4 {
            t.apply(
                Event::Delete {
                    xid: 50,
                    item: it(0, o),
                    now: false,
                },
                1,
            );
        }
        t.apply(end(true, 50, vec![]), 2);
        assert_eq!(dead(&t), (4, 0));
        // Item 1 redirected (root of a HOT chain), 2 and 3 dead, 4 unused; 7 (a
        // redirect we did not track) becomes dead too.
        t.apply(
            Event::Prune {
                rel: A,
                block: 0,
                redirected: vec![1],
                dead: vec![2, 3, 7],
                unused: vec![4],
            },
            3,
        );
        assert_eq!(dead(&t), (0, 3));
        assert_eq!(t.rels[&A].ranges[&0].last_prune_lsn, 3);
        t.apply(
            Event::Vacuum {
                rel: A,
                block: 0,
                unused: vec![2, 3, 7],
            },
            4,
        );
        assert_eq!(dead(&t), (0, 0));
        // A dead tuple is not counted twice.
        t.apply(
            Event::Delete {
                xid: 0,
                item: it(0, 9),
                now: true,
            },
            5,
        );
        t.apply(
            Event::Delete {
                xid: 0,
                item: it(0, 9),
                now: true,
            },
            6,
        );
        assert_eq!(dead(&t), (1, 0));
    }

    #[test]
    fn a_page_image_sets_the_line_pointers() {
        let mut t = Tracker::new(LIMITS);
        for o in 1..=3 {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: it(0, o),
                    now: true,
                },
                1,
            );
        }
        // After the prune: 1 still a (recently) dead tuple, 2 dead, 3 unused, 4 dead.
        t.apply(
            Event::PageState {
                rel: A,
                block: 0,
                flags: vec![1, 3, 0, 3],
                vacuum: false,
            },
            2,
        );
        assert_eq!(dead(&t), (1, 2));
        t.apply(
            Event::PageState {
                rel: A,
                block: 0,
                flags: vec![1, 0, 0, 0],
                vacuum: true,
            },
            3,
        );
        assert_eq!(dead(&t), (1, 0));
        assert_eq!(t.rels[&A].ranges[&0].last_vacuum_lsn, 3);
    }

    #[test]
    fn truncate_drop_and_page_init() {
        let mut t = Tracker::new(LIMITS);
        for b in 0..10 {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: it(b, 1),
                    now: true,
                },
                1,
            );
        }
        assert_eq!((dead(&t).0, t.n_ranges()), (10, 3));
        // Truncate to 5 blocks: blocks 5..9 go; range 1 (blocks 4..7) keeps block 4.
        t.apply(Event::Truncate { rel: A, blocks: 5 }, 2);
        assert_eq!((dead(&t).0, t.n_ranges()), (5, 2));
        // A re-initialised page starts empty.
        t.apply(
            Event::Insert {
                xid: 60,
                rel: A,
                block: 4,
                offsets: vec![1],
                init_page: true,
            },
            3,
        );
        assert_eq!(dead(&t).0, 4);
        t.apply(
            Event::End {
                committed: true,
                xid: 61,
                subxacts: vec![],
                dropped: vec![A],
                prepared: false,
            },
            4,
        );
        assert!(t.rels.is_empty());
        assert_eq!((t.n_ranges(), t.counters.dropped_relations), (0, 1));
    }

    #[test]
    fn bounds_evict_the_oldest_and_count() {
        let limits = Limits {
            range_blocks: 1,
            max_relations: 10,
            max_ranges: 1000,
            max_pending: 2,
        };
        let mut t = Tracker::new(limits);
        for r in 0..25u32 {
            let rel = RelKey {
                db: 1,
                ts: 1,
                rel: r,
            };
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: Item {
                        rel,
                        block: 0,
                        offset: 1,
                    },
                    now: true,
                },
                u64::from(r) + 1,
            );
        }
        assert!(t.rels.len() <= 10);
        assert_eq!(t.rels.len() as u64 + t.counters.evicted_relations, 25);
        assert_eq!(t.counters.evicted_dead_tuples, t.counters.evicted_relations);
        // The newest relations are the ones kept.
        assert!(t.rels.contains_key(&RelKey {
            db: 1,
            ts: 1,
            rel: 24
        }));
        // Ranges.
        let limits = Limits {
            range_blocks: 1,
            max_relations: 100,
            max_ranges: 20,
            max_pending: 2,
        };
        let mut t = Tracker::new(limits);
        for b in 0..50 {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: it(b, 1),
                    now: true,
                },
                u64::from(b) + 1,
            );
        }
        assert!(t.n_ranges() <= 20);
        assert_eq!(t.n_ranges() as u64 + t.counters.evicted_ranges, 50);
        // Pending past its bound is unattributed, not dropped silently.
        for o in 1..=3 {
            t.apply(
                Event::Delete {
                    xid: 70,
                    item: it(0, o + 1),
                    now: false,
                },
                100,
            );
        }
        assert_eq!((t.n_pending(), t.counters.unattributed), (2, 1));
    }

    #[test]
    fn snapshots_hold_item_lists_and_the_bitmap_format_still_reads() {
        let mut t = Tracker::new(LIMITS);
        // Block 0: six dead tuples; block 1: 50 dead tuples and a dead line pointer
        // (written as bitmaps).
        for o in 1..=6 {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: it(0, o),
                    now: true,
                },
                1,
            );
        }
        for o in 1..=50 {
            t.apply(
                Event::Delete {
                    xid: 0,
                    item: it(1, o),
                    now: true,
                },
                2,
            );
        }
        t.apply(
            Event::Prune {
                rel: A,
                block: 1,
                redirected: vec![],
                dead: vec![60],
                unused: vec![],
            },
            3,
        );
        let mut b = Vec::new();
        t.encode(&mut b);
        // Header 16 ("GARBAGEMAP3\n", range_blocks) + counters 48 + relation count 4,
        // relation 12 + 8 + 4, range 4 + 48 + 4, block 0: 4 + 2 + 6 * 2, block 1:
        // 4 + 2 + 80, the range's
        // visibility-map word count (0: no bit set) 4, pending and prepared counts 8
        // (format 1: 84 bytes for each block).
        assert!(b.starts_with(b"GARBAGEMAP3\n"));
        assert_eq!(b.len(), 16 + 48 + 4 + 24 + 56 + 18 + 86 + 4 + 8);
        let back = Tracker::decode(&b, LIMITS).unwrap();
        assert_eq!(back.rels, t.rels);
        assert_eq!(back.rels[&A].ranges[&0].dead_tuples, 56);
        assert_eq!(back.rels[&A].ranges[&0].dead_lps, 1);

        // Format 1, written by hand: block 2 of range 0 with dead tuple 3.
        let mut v1 = Vec::new();
        let mut w = Writer(&mut v1);
        w.u32(1);
        w.u32(LIMITS.range_blocks);
        (0..6).for_each(|_| w.u64(0));
        w.u32(1);
        w.rel(A);
        w.u64(9);
        w.u32(1);
        w.u32(0);
        (0..6).for_each(|_| w.u64(0));
        w.u32(1);
        w.u32(2);
        w.u64(1 << 3);
        (0..2 * Bits::WORDS - 1).for_each(|_| w.u64(0));
        w.u32(0);
        w.u32(0);
        let old = Tracker::decode(&v1, LIMITS).unwrap();
        let g = &old.rels[&A].ranges[&0];
        assert_eq!((g.dead_tuples, g.dead_lps), (1, 0));
        assert!(g.blocks.get(2).dead_tuples.get(3));

        // Format 2 is format 3 without the visibility-map word counts: the snapshot
        // above, its version changed and the count (the 4 bytes before pending's
        // and prepared's counts) taken out, reads back the same map.
        let bare = |format: u32| [&format.to_le_bytes()[..], &b[12..]].concat();
        // Format 3 as written before the envelope (a u32 header) still reads.
        assert_eq!(Tracker::decode(&bare(3), LIMITS).unwrap().rels, t.rels);
        let mut v2 = bare(2);
        let at = v2.len() - 12;
        assert_eq!(v2[at..at + 4], [0, 0, 0, 0]);
        v2.drain(at..at + 4);
        assert_eq!(Tracker::decode(&v2, LIMITS).unwrap().rels, t.rels);
    }

    #[test]
    fn visibility_bits_follow_the_wal_and_survive_snapshots() {
        use crate::decode::VmChange;
        let vm = |block: u32, set: u8, clear: u8| VmChange {
            rel: A,
            block,
            set,
            clear,
        };
        let mut t = Tracker::new(LIMITS);
        // VACUUM marks blocks 0..=6 all-visible, 2 also all-frozen (ranges of 4).
        for b in 0..=6 {
            t.apply_visibility(vm(b, 1, 0), 1);
        }
        t.apply_visibility(vm(2, 3, 0), 1);
        let counts = |t: &Tracker| {
            t.rels[&A]
                .ranges
                .iter()
                .map(|(i, g)| (*i, g.all_visible(), g.all_frozen()))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&t), vec![(0, 4, 1), (1, 3, 0)]);
        // A lock clears all-frozen, an insert both; a clear of an untracked
        // relation creates nothing.
        t.apply_visibility(vm(2, 0, 2), 2);
        t.apply_visibility(vm(5, 0, 3), 2);
        t.apply_visibility(
            VmChange {
                rel: RelKey { rel: 1, ..A },
                ..vm(0, 0, 3)
            },
            2,
        );
        assert_eq!(counts(&t), vec![(0, 4, 0), (1, 2, 0)]);
        assert_eq!(t.rels.len(), 1);
        // Snapshots keep them.
        let mut b = Vec::new();
        t.encode(&mut b);
        assert_eq!(counts(&Tracker::decode(&b, LIMITS).unwrap()), counts(&t));
        // Truncation to 5 blocks keeps block 4 of range 1, drops 6.
        t.apply(Event::Truncate { rel: A, blocks: 5 }, 3);
        assert_eq!(counts(&t), vec![(0, 4, 0), (1, 1, 0)]);
        // A new relfilenode (or a drop) forgets them.
        t.apply(Event::Create { rel: A }, 4);
        assert!(t.rels.is_empty());
    }

    #[test]
    fn snapshot_round_trip() {
        let mut t = Tracker::new(LIMITS);
        t.apply(
            Event::Delete {
                xid: 10,
                item: it(0, 1),
                now: false,
            },
            1,
        );
        t.apply(end(true, 10, vec![]), 2);
        t.apply(
            Event::Prune {
                rel: A,
                block: 0,
                redirected: vec![],
                dead: vec![1],
                unused: vec![],
            },
            3,
        );
        t.apply(
            Event::Insert {
                xid: 11,
                rel: A,
                block: 6,
                offsets: vec![2],
                init_page: false,
            },
            4,
        );
        t.apply(Event::Prepare { xid: 11 }, 5);
        let mut b = Vec::new();
        t.encode(&mut b);
        let back = Tracker::decode(&b, LIMITS).unwrap();
        assert_eq!(back.rels, t.rels);
        assert_eq!((back.n_pending(), back.n_ranges()), (1, 2));
        let mut back = back;
        back.apply(
            Event::End {
                committed: false,
                xid: 11,
                subxacts: vec![],
                dropped: vec![],
                prepared: true,
            },
            6,
        );
        assert_eq!(back.rels[&A].dead_tuples(), 1);
        assert!(Tracker::decode(&b[..b.len() - 1], LIMITS).is_err());
        let other = Limits {
            range_blocks: 8,
            ..LIMITS
        };
        assert!(Tracker::decode(&b, other)
            .unwrap_err()
            .contains("range_blocks"));
    }
}
