//! The dead line pointers of one block range, packed.
//!
//! Most blocks of a range hold a few dead items, so each block is stored as a list of
//! its dead item numbers (two bytes each, the high bit telling a dead line pointer
//! from a dead tuple) in one arena per range, found through a sorted index of
//! (block, start, length). A block with more dead items than its two bitmaps take is
//! stored as the bitmaps instead. A block with seven dead tuples costs 8 + 14 bytes
//! instead of the 80 bytes of its bitmaps plus a tree node's share.

use crate::tracker::{BlockItems, Bits, MAX_ITEMS};

/// Marks a dead line pointer (else a dead tuple) in an item entry.
const LP_FLAG: u16 = 0x8000;
/// Marks a block stored as bitmaps in an index entry's length.
const BITMAP_FLAG: u16 = 0x8000;
/// u16 words of a block stored as its two bitmaps.
const BITMAP_WORDS: usize = 2 * Bits::WORDS * 4;

/// One block's place in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    block: u32,
    start: u32,
    /// Items, or [`BITMAP_FLAG`] for a block stored as bitmaps.
    len: u16,
}

impl Slot {
    fn words(&self) -> usize {
        if self.len & BITMAP_FLAG != 0 {
            BITMAP_WORDS
        } else {
            self.len as usize
        }
    }
}

/// Dead items per block of one range.
#[derive(Debug, Clone, Default)]
pub struct BlockMap {
    index: Vec<Slot>,
    arena: Vec<u16>,
    /// Arena words no block uses any more (reclaimed when they outnumber the rest).
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
        let words = &self.arena[s.start as usize..s.start as usize + s.words()];
        let mut b = BlockItems::default();
        if s.len & BITMAP_FLAG != 0 {
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

    fn encode(items: &BlockItems, out: &mut Vec<u16>) -> u16 {
        let n = items.dead_tuples.count() + items.dead_lps.count();
        if n as usize > BITMAP_WORDS {
            items.dead_tuples.push_u16s(out);
            items.dead_lps.push_u16s(out);
            return BITMAP_FLAG;
        }
        for offset in 0..MAX_ITEMS as u16 {
            if items.dead_tuples.get(offset) {
                out.push(offset);
            }
            if items.dead_lps.get(offset) {
                out.push(offset | LP_FLAG);
            }
        }
        n as u16
    }

    /// The dead items of `block` (empty when it has none).
    pub fn get(&self, block: u32) -> BlockItems {
        match self.find(block) {
            Ok(i) => self.decode(&self.index[i]),
            Err(_) => BlockItems::default(),
        }
    }

    /// Replaces the dead items of `block`; a block without any is dropped.
    pub fn set(&mut self, block: u32, items: &BlockItems) {
        let at = self.find(block);
        let mut words = Vec::new();
        let len = if items.is_empty() {
            0
        } else {
            Self::encode(items, &mut words)
        };
        match at {
            Ok(i) => {
                let old = self.index[i];
                if items.is_empty() {
                    self.garbage += old.words();
                    self.index.remove(i);
                } else if words.len() <= old.words() {
                    let start = old.start as usize;
                    self.arena[start..start + words.len()].copy_from_slice(&words);
                    self.garbage += old.words() - words.len();
                    self.index[i].len = len;
                } else {
                    self.garbage += old.words();
                    self.index[i] = Slot {
                        block,
                        start: self.arena.len() as u32,
                        len,
                    };
                    self.arena.extend_from_slice(&words);
                }
            }
            Err(i) if !items.is_empty() => {
                let s = Slot {
                    block,
                    start: self.arena.len() as u32,
                    len,
                };
                self.arena.extend_from_slice(&words);
                self.index.insert(i, s);
            }
            Err(_) => {}
        }
        if self.garbage > 64 && self.garbage * 2 > self.arena.len() {
            self.compact();
        }
    }

    /// Changes the dead items of `block` with `f`; returns the change in dead tuples
    /// and dead line pointers.
    pub fn edit(&mut self, block: u32, f: impl FnOnce(&mut BlockItems)) -> (i64, i64) {
        let mut b = self.get(block);
        let (t0, l0) = (b.dead_tuples.count(), b.dead_lps.count());
        f(&mut b);
        let (t1, l1) = (b.dead_tuples.count(), b.dead_lps.count());
        if (t0, l0) != (t1, l1) || b != self.get(block) {
            self.set(block, &b);
        }
        (i64::from(t1) - i64::from(t0), i64::from(l1) - i64::from(l0))
    }

    /// Drops the blocks from `first` on; returns the dead tuples and dead line
    /// pointers they held.
    pub fn remove_from(&mut self, first: u32) -> (u64, u64) {
        let cut = self.index.partition_point(|s| s.block < first);
        let mut gone = (0, 0);
        for s in self.index.split_off(cut) {
            let b = self.decode(&s);
            gone.0 += u64::from(b.dead_tuples.count());
            gone.1 += u64::from(b.dead_lps.count());
            self.garbage += s.words();
        }
        if self.index.is_empty() {
            *self = BlockMap::default();
        }
        gone
    }

    /// Every block with its dead items, in block order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, BlockItems)> + '_ {
        self.index.iter().map(|s| (s.block, self.decode(s)))
    }

    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for s in &mut self.index {
            let start = s.start as usize;
            let words = if s.len & BITMAP_FLAG != 0 {
                BITMAP_WORDS
            } else {
                s.len as usize
            };
            s.start = arena.len() as u32;
            arena.extend_from_slice(&self.arena[start..start + words]);
        }
        self.arena = arena;
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
        assert!(m.garbage * 2 <= m.arena.len().max(130), "{} of {}", m.garbage, m.arena.len());
        assert_eq!(m.get(0), items(&all, &[250]));
        assert_eq!(m.get(5), items(&(0..=49 % 30).collect::<Vec<_>>(), &[]));
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
}
