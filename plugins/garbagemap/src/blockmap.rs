//! The dead line pointers of one block range, packed.
//!
//! Most blocks of a range hold a few dead items, so each block is stored as a list of
//! its dead item numbers (two bytes each, the high bit telling a dead line pointer
//! from a dead tuple) in one arena per range, found through a sorted index of 8-byte
//! entries (block; start and length packed in one word). A block with more dead items
//! than its two bitmaps take is stored as the bitmaps instead. A block with six dead
//! tuples costs 8 + 12 bytes instead of the 80 bytes of its bitmaps plus a tree node's
//! share.
//!
//! Memory stays close to what is live: both vectors grow by an eighth (not double), a
//! block that grows while it is the arena's last grows in place (the common case: a
//! transaction's dead items arrive block after block), and the words blocks left
//! behind are reclaimed once they are a quarter of the arena.

use crate::tracker::{Bits, BlockItems, MAX_ITEMS};

/// Marks a dead line pointer (else a dead tuple) in an item entry.
const LP_FLAG: u16 = 0x8000;
/// u16 words of a block stored as its two bitmaps.
const BITMAP_WORDS: usize = 2 * Bits::WORDS * 4;
/// Bits of a slot's packed word that hold the length.
const LEN_BITS: u32 = 6;
/// The length that marks a block stored as bitmaps (lists are at most
/// [`BITMAP_WORDS`] long).
const BITMAP_LEN: u32 = (1 << LEN_BITS) - 1;
/// Arena words a slot can address.
const MAX_ARENA: usize = 1 << (32 - LEN_BITS);

const _: () = assert!(BITMAP_WORDS < BITMAP_LEN as usize);
// A range's live words always fit (at most 2^20 blocks of BITMAP_WORDS each), so a
// compaction makes room for any block.
const _: () = assert!((1 << 20) * BITMAP_WORDS < MAX_ARENA);

/// One block's place in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    block: u32,
    /// `start << LEN_BITS | len`, len being the item count or [`BITMAP_LEN`].
    packed: u32,
}

impl Slot {
    fn new(block: u32, start: usize, len: u32) -> Slot {
        debug_assert!(start < MAX_ARENA && len <= BITMAP_LEN);
        Slot {
            block,
            packed: ((start as u32) << LEN_BITS) | len,
        }
    }

    fn start(&self) -> usize {
        (self.packed >> LEN_BITS) as usize
    }

    fn len(&self) -> u32 {
        self.packed & BITMAP_LEN
    }

    fn is_bitmap(&self) -> bool {
        self.len() == BITMAP_LEN
    }

    fn words(&self) -> usize {
        if self.is_bitmap() {
            BITMAP_WORDS
        } else {
            self.len() as usize
        }
    }
}

/// Makes room for `extra` more elements, growing by an eighth rather than doubling.
fn reserve<T>(v: &mut Vec<T>, extra: usize) {
    if v.len() + extra > v.capacity() {
        v.reserve_exact(extra.max(v.capacity() / 8).max(4));
    }
}

/// A block's items as arena words: a list, or the two bitmaps.
struct Encoded {
    words: [u16; BITMAP_WORDS],
    n: usize,
    len: u32,
}

impl Encoded {
    fn empty() -> Encoded {
        Encoded {
            words: [0; BITMAP_WORDS],
            n: 0,
            len: 0,
        }
    }

    fn of(items: &BlockItems) -> Encoded {
        let mut e = Encoded::empty();
        let count = (items.dead_tuples.count() + items.dead_lps.count()) as usize;
        if count > BITMAP_WORDS {
            let (t, l) = e.words.split_at_mut(BITMAP_WORDS / 2);
            items.dead_tuples.write_u16s(t);
            items.dead_lps.write_u16s(l);
            e.n = BITMAP_WORDS;
            e.len = BITMAP_LEN;
            return e;
        }
        // The set bits in item order, a dead tuple before a dead line pointer of the
        // same item: one step per dead item, not per possible item.
        let (t, l) = (items.dead_tuples.words(), items.dead_lps.words());
        for (w, (&tw, &lw)) in t.iter().zip(l).enumerate() {
            let mut both = tw | lw;
            while both != 0 {
                let bit = both.trailing_zeros();
                both &= both - 1;
                let offset = (w * 64) as u16 + bit as u16;
                if tw & (1 << bit) != 0 {
                    e.words[e.n] = offset;
                    e.n += 1;
                }
                if lw & (1 << bit) != 0 {
                    e.words[e.n] = offset | LP_FLAG;
                    e.n += 1;
                }
            }
        }
        e.len = e.n as u32;
        e
    }

    fn words(&self) -> &[u16] {
        &self.words[..self.n]
    }
}

/// Dead items per block of one range.
#[derive(Debug, Clone, Default)]
pub struct BlockMap {
    index: Vec<Slot>,
    arena: Vec<u16>,
    /// Arena words no block uses any more (reclaimed when they are a quarter of it).
    garbage: usize,
}

/// Equal when the same blocks hold the same items, however they are laid out.
impl PartialEq for BlockMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for BlockMap {}

impl BlockMap {
    /// Blocks with a dead item.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No block has a dead item.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The highest block with a dead item.
    pub fn last_block(&self) -> Option<u32> {
        self.index.last().map(|s| s.block)
    }

    /// Heap bytes this map holds.
    pub fn heap_bytes(&self) -> usize {
        self.index.capacity() * std::mem::size_of::<Slot>() + self.arena.capacity() * 2
    }

    fn find(&self, block: u32) -> Result<usize, usize> {
        self.index.binary_search_by_key(&block, |s| s.block)
    }

    fn decode(&self, s: &Slot) -> BlockItems {
        let words = &self.arena[s.start()..s.start() + s.words()];
        let mut b = BlockItems::default();
        if s.is_bitmap() {
            let (t, l) = words.split_at(BITMAP_WORDS / 2);
            b.dead_tuples = Bits::from_u16s(t);
            b.dead_lps = Bits::from_u16s(l);
        } else {
            for &w in words {
                let offset = w & !LP_FLAG;
                if w & LP_FLAG != 0 {
                    b.dead_lps.set(offset, true);
                } else {
                    b.dead_tuples.set(offset, true);
                }
            }
        }
        b
    }

    /// The dead items of `block` (empty when it has none).
    pub fn get(&self, block: u32) -> BlockItems {
        match self.find(block) {
            Ok(i) => self.decode(&self.index[i]),
            Err(_) => BlockItems::default(),
        }
    }

    /// Appends `e` to the arena (compacting first when a slot could not address its
    /// end); returns where it starts.
    fn append(&mut self, e: &Encoded) -> usize {
        if self.arena.len() + e.n > MAX_ARENA {
            self.compact();
        }
        reserve(&mut self.arena, e.n);
        let start = self.arena.len();
        self.arena.extend_from_slice(e.words());
        start
    }

    /// Replaces the dead items of `block`; a block without any is dropped.
    pub fn set(&mut self, block: u32, items: &BlockItems) {
        let at = self.find(block);
        self.set_at(at, block, items);
    }

    /// [`BlockMap::set`] with `at`, what [`BlockMap::find`] gave for `block`.
    fn set_at(&mut self, at: Result<usize, usize>, block: u32, items: &BlockItems) {
        if items.is_empty() {
            if let Ok(i) = at {
                self.garbage += self.index[i].words();
                self.index.remove(i);
            }
            self.compact_when_due();
        } else {
            self.place(at, block, &Encoded::of(items));
        }
    }

    /// Stores `e` as the items of `block` (`at`: what [`BlockMap::find`] gave).
    fn place(&mut self, at: Result<usize, usize>, block: u32, e: &Encoded) {
        match at {
            Ok(i) => {
                let old = self.index[i];
                let (start, had) = (old.start(), old.words());
                if e.n <= had {
                    self.arena[start..start + e.n].copy_from_slice(e.words());
                    self.garbage += had - e.n;
                    self.index[i] = Slot::new(block, start, e.len);
                } else if start + had == self.arena.len() && start + e.n <= MAX_ARENA {
                    // The arena's last block grows in place.
                    self.arena.truncate(start);
                    reserve(&mut self.arena, e.n);
                    self.arena.extend_from_slice(e.words());
                    self.index[i] = Slot::new(block, start, e.len);
                } else {
                    // The old words become garbage (also when the append
                    // compacted, which kept them as the slot's words then).
                    let start = self.append(e);
                    self.index[i] = Slot::new(block, start, e.len);
                    self.garbage += had;
                }
            }
            Err(i) => {
                let start = self.append(e);
                reserve(&mut self.index, 1);
                self.index.insert(i, Slot::new(block, start, e.len));
            }
        }
        self.compact_when_due();
    }

    fn compact_when_due(&mut self) {
        if self.garbage > 64 && self.garbage * 4 > self.arena.len() {
            self.compact();
        }
    }

    /// Marks item `offset` of `block` a dead tuple unless it is already dead (a dead
    /// tuple or a dead line pointer); true when it was not. The same as an
    /// [`BlockMap::edit`] that sets the bit, without building the block's bitmaps:
    /// a transaction's end marks each of its dead versions so.
    pub fn add_dead_tuple(&mut self, block: u32, offset: u16) -> bool {
        if usize::from(offset) >= MAX_ITEMS {
            return false;
        }
        let at = self.find(block);
        let slot = match at {
            Ok(i) => self.index[i],
            Err(_) => {
                let mut e = Encoded::empty();
                e.words[0] = offset;
                e.n = 1;
                e.len = 1;
                self.place(at, block, &e);
                return true;
            }
        };
        let words = &mut self.arena[slot.start()..slot.start() + slot.words()];
        if slot.is_bitmap() {
            // Tuples' bitmap, then line pointers', as u16 words low first.
            let (word, bit) = (usize::from(offset / 16), 1u16 << (offset % 16));
            let lps = BITMAP_WORDS / 2;
            if (words[word] | words[lps + word]) & bit != 0 {
                return false;
            }
            // Still more items than a list holds: it stays a bitmap, as set writes it.
            words[word] |= bit;
            return true;
        }
        if words.iter().any(|&w| w & !LP_FLAG == offset) {
            return false;
        }
        let n = words.len();
        if n + 1 > BITMAP_WORDS {
            // Past a list's length: the bitmap form.
            let mut b = self.decode(&slot);
            b.dead_tuples.set(offset, true);
            self.set_at(at, block, &b);
            return true;
        }
        let pos = words.partition_point(|&w| w & !LP_FLAG < offset);
        let mut e = Encoded::empty();
        e.words[..pos].copy_from_slice(&words[..pos]);
        e.words[pos] = offset;
        e.words[pos + 1..=n].copy_from_slice(&words[pos..]);
        e.n = n + 1;
        e.len = e.n as u32;
        self.place(at, block, &e);
        true
    }

    /// Changes the dead items of `block` with `f`; returns the change in dead tuples
    /// and dead line pointers.
    pub fn edit(&mut self, block: u32, f: impl FnOnce(&mut BlockItems)) -> (i64, i64) {
        let at = self.find(block);
        let old = match at {
            Ok(i) => self.decode(&self.index[i]),
            Err(_) => BlockItems::default(),
        };
        let mut b = old;
        f(&mut b);
        if b == old {
            return (0, 0);
        }
        let (t0, l0) = (old.dead_tuples.count(), old.dead_lps.count());
        let (t1, l1) = (b.dead_tuples.count(), b.dead_lps.count());
        self.set_at(at, block, &b);
        (i64::from(t1) - i64::from(t0), i64::from(l1) - i64::from(l0))
    }

    /// Drops the blocks from `first` on; returns the dead tuples and dead line
    /// pointers they held.
    pub fn remove_from(&mut self, first: u32) -> (u64, u64) {
        let cut = self.index.partition_point(|s| s.block < first);
        let mut gone = (0, 0);
        for s in &self.index[cut..] {
            let b = self.decode(s);
            gone.0 += u64::from(b.dead_tuples.count());
            gone.1 += u64::from(b.dead_lps.count());
            self.garbage += s.words();
        }
        self.index.truncate(cut);
        if self.index.is_empty() {
            *self = BlockMap::default();
        } else {
            self.compact();
        }
        gone
    }

    /// Every block with its dead items, in block order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, BlockItems)> + '_ {
        self.index.iter().map(|s| (s.block, self.decode(s)))
    }

    /// Rewrites the arena without the words no block uses, and gives back the
    /// vectors' spare capacity.
    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for s in &mut self.index {
            let (start, words) = (s.start(), s.words());
            *s = Slot::new(s.block, arena.len(), s.len());
            arena.extend_from_slice(&self.arena[start..start + words]);
        }
        self.arena = arena;
        self.index.shrink_to_fit();
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(tuples: &[u16], lps: &[u16]) -> BlockItems {
        let mut b = BlockItems::default();
        for &t in tuples {
            b.dead_tuples.set(t, true);
        }
        for &l in lps {
            b.dead_lps.set(l, true);
        }
        b
    }

    #[test]
    fn blocks_keep_their_items_in_block_order_and_empty_ones_go() {
        let mut m = BlockMap::default();
        m.set(7, &items(&[1, 5, 291], &[2]));
        m.set(3, &items(&[4], &[]));
        m.set(9, &items(&[], &[]));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(7), items(&[1, 5, 291], &[2]));
        assert_eq!(m.get(8), BlockItems::default());
        let blocks: Vec<u32> = m.iter().map(|(b, _)| b).collect();
        assert_eq!(blocks, [3, 7]);
        // Four item words and one for block 3.
        assert_eq!(m.arena.len(), 5);
        m.set(3, &BlockItems::default());
        assert_eq!((m.len(), m.last_block()), (1, Some(7)));
    }

    #[test]
    fn edits_report_their_change_and_grown_blocks_move() {
        let mut m = BlockMap::default();
        assert_eq!(m.edit(10, |b| b.dead_tuples.set(3, true)), (1, 0));
        assert_eq!(m.edit(11, |b| b.dead_tuples.set(1, true)), (1, 0));
        // Block 10 grows past its one word: moved to the arena's end.
        assert_eq!(
            m.edit(10, |b| {
                b.dead_tuples.set(3, false);
                b.dead_lps.set(3, true);
                b.dead_lps.set(4, true);
            }),
            (-1, 2)
        );
        assert_eq!(m.get(10), items(&[], &[3, 4]));
        assert_eq!(m.get(11), items(&[1], &[]));
        assert_eq!(m.edit(10, |_| {}), (0, 0));
        assert_eq!(m.garbage, 1);
    }

    #[test]
    fn a_full_block_is_stored_as_bitmaps_and_compaction_keeps_everything() {
        let mut m = BlockMap::default();
        let all: Vec<u16> = (1..=200).collect();
        m.set(0, &items(&all, &[250]));
        assert_eq!(m.arena.len(), BITMAP_WORDS);
        assert_eq!(m.get(0), items(&all, &[250]));
        // Churn: many rewrites of growing blocks leave garbage that is reclaimed.
        for round in 0..50u16 {
            for b in 1..20u32 {
                m.set(b, &items(&(0..=round % 30).collect::<Vec<_>>(), &[]));
            }
        }
        assert!(
            m.garbage * 4 <= m.arena.len().max(260),
            "{} of {}",
            m.garbage,
            m.arena.len()
        );
        assert_eq!(m.get(0), items(&all, &[250]));
        assert_eq!(m.get(5), items(&(0..=49 % 30).collect::<Vec<_>>(), &[]));
    }

    #[test]
    fn a_range_holds_little_more_than_its_items() {
        // 128 blocks, six dead tuples each, arriving as a committed DELETE settles:
        // item after item, block after block (issue 16: memory per range).
        let mut m = BlockMap::default();
        for block in 0..128u32 {
            for k in 0..6u16 {
                m.edit(block, |b| b.dead_tuples.set(1 + 10 * k, true));
            }
        }
        // Live: 128 index entries of 8 bytes, 768 items of 2 bytes = 2560 bytes; an
        // eighth more of spare capacity at most.
        let live = 128 * 8 + 768 * 2;
        assert!(
            m.heap_bytes() <= live + live / 8,
            "{} bytes",
            m.heap_bytes()
        );
        assert_eq!(m.garbage, 0, "blocks grew in place");
        // Prunes later turn them into line pointers and VACUUM frees them.
        for block in (0..128u32).step_by(2) {
            m.edit(block, |b| *b = BlockItems::default());
        }
        assert!(
            m.heap_bytes() <= live,
            "{} bytes after half the blocks went",
            m.heap_bytes()
        );
        assert_eq!(m.get(1).dead_tuples.count(), 6);
    }

    #[test]
    fn removing_from_a_block_drops_the_tail_with_its_counts() {
        let mut m = BlockMap::default();
        m.set(1, &items(&[1], &[]));
        m.set(5, &items(&[1, 2], &[3]));
        m.set(9, &items(&[], &[7, 8]));
        assert_eq!(m.remove_from(5), (2, 3));
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove_from(0), (1, 0));
        assert!(m.is_empty() && m.arena.is_empty());
    }

    #[test]
    fn a_list_names_each_item_in_order_a_dead_tuple_before_a_dead_line_pointer() {
        // Items at word edges (63, 64, 127, 128, 291) and one item both ways.
        let b = items(&[0, 5, 63, 64, 200, 291], &[5, 127, 128, 290]);
        let e = Encoded::of(&b);
        let want = [
            0,
            5,
            5 | LP_FLAG,
            63,
            64,
            127 | LP_FLAG,
            128 | LP_FLAG,
            200,
            290 | LP_FLAG,
            291,
        ];
        assert_eq!(e.words(), want);
        assert_eq!(e.len, want.len() as u32);
        let mut m = BlockMap::default();
        m.set(1, &b);
        assert_eq!(m.get(1), b);
    }

    #[test]
    fn adding_a_dead_tuple_equals_the_edit_that_sets_it() {
        // A fixed pseudo-random walk over a few blocks and items, lists growing past
        // the bitmap length and line pointers mixed in, against the general edit.
        let (mut fast, mut slow) = (BlockMap::default(), BlockMap::default());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut bitmaps = false;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let block = (x % 7) as u32;
            let offset = ((x >> 8) % 300) as u16;
            if step % 5 == 0 {
                // Some items become dead line pointers, some blocks are emptied.
                let f = |b: &mut BlockItems| {
                    if offset.is_multiple_of(97) {
                        *b = BlockItems::default();
                    } else {
                        b.dead_tuples.set(offset, false);
                        b.dead_lps.set(offset, true);
                    }
                };
                assert_eq!(fast.edit(block, f), slow.edit(block, f));
                continue;
            }
            let before = slow.get(block);
            let (t, _) = slow.edit(block, |b| {
                if !b.dead_tuples.get(offset) && !b.dead_lps.get(offset) {
                    b.dead_tuples.set(offset, true);
                }
            });
            assert_eq!(
                fast.add_dead_tuple(block, offset),
                t == 1,
                "step {step}: {before:?}"
            );
            assert_eq!(fast.get(block), slow.get(block), "step {step}");
            bitmaps |= fast.index.iter().any(Slot::is_bitmap);
        }
        assert_eq!(fast, slow);
        assert!(bitmaps, "some block was stored as bitmaps");
    }
}
