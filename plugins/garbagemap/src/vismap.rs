//! The visibility-map bits of one block range, as the WAL set and cleared them: one
//! all-visible and one all-frozen bit per block, nothing allocated while no block of
//! the range has a bit set (16 bytes in the range either way; 32 bytes of heap for a
//! 128-block range with bits).

use crate::decode::{VM_ALL_FROZEN, VM_ALL_VISIBLE};

/// Both bits of every block of a range: `words_per_bit` words of all-visible bits,
/// then as many of all-frozen bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisBits(Option<Box<[u64]>>);

/// Which bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmBit {
    /// `VISIBILITYMAP_ALL_VISIBLE`.
    AllVisible,
    /// `VISIBILITYMAP_ALL_FROZEN`.
    AllFrozen,
}

fn words_per_bit(range_blocks: u32) -> usize {
    (range_blocks.max(1) as usize).div_ceil(64)
}

impl VisBits {
    /// Sets then clears bits (`VM_ALL_VISIBLE`, `VM_ALL_FROZEN`) of the block at
    /// `offset` in a range of `range_blocks` blocks.
    pub fn change(&mut self, offset: u32, range_blocks: u32, set: u8, clear: u8) {
        let per = words_per_bit(range_blocks);
        let (w, bit) = (offset as usize / 64, 1u64 << (offset % 64));
        if w >= per {
            return;
        }
        if set != 0 && self.0.is_none() {
            self.0 = Some(vec![0; 2 * per].into_boxed_slice());
        }
        let Some(words) = self.0.as_mut() else {
            return;
        };
        for (mask, half) in [(VM_ALL_VISIBLE, 0), (VM_ALL_FROZEN, per)] {
            if set & mask != 0 {
                words[half + w] |= bit;
            }
            if clear & mask != 0 {
                words[half + w] &= !bit;
            }
        }
        if clear != 0 {
            self.release_if_empty();
        }
    }

    /// Clears both bits of the blocks from `offset` on (a truncation).
    pub fn clear_from(&mut self, offset: u32, range_blocks: u32) {
        let per = words_per_bit(range_blocks);
        let Some(words) = self.0.as_mut() else {
            return;
        };
        for half in [0, per] {
            for (i, word) in words[half..half + per].iter_mut().enumerate() {
                let first = (i * 64) as u64;
                let keep = u64::from(offset).saturating_sub(first);
                if keep < 64 {
                    *word &= (1u64 << keep) - 1;
                }
            }
        }
        self.release_if_empty();
    }

    fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|w| w.iter().all(|x| *x == 0)) {
            self.0 = None;
        }
    }

    /// Blocks with `bit` set.
    pub fn count(&self, bit: VmBit) -> u64 {
        let Some(words) = self.0.as_ref() else {
            return 0;
        };
        let per = words.len() / 2;
        let half = match bit {
            VmBit::AllVisible => &words[..per],
            VmBit::AllFrozen => &words[per..],
        };
        half.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether the block at `offset` has `bit`.
    pub fn get(&self, offset: u32, bit: VmBit) -> bool {
        let Some(words) = self.0.as_ref() else {
            return false;
        };
        let per = words.len() / 2;
        let w = offset as usize / 64;
        let half = if bit == VmBit::AllVisible { 0 } else { per };
        w < per && words[half + w] & (1 << (offset % 64)) != 0
    }

    /// The words (empty when no bit is set), for snapshots.
    pub fn words(&self) -> &[u64] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// The bits [`VisBits::words`] gave for a range of `range_blocks` blocks, or why
    /// they do not fit it.
    pub fn from_words(words: Vec<u64>, range_blocks: u32) -> Result<VisBits, String> {
        if words.is_empty() {
            return Ok(VisBits(None));
        }
        let want = 2 * words_per_bit(range_blocks);
        if words.len() != want {
            return Err(format!(
                "garbagemap snapshot holds {} visibility-map words for a range, {want} expected for {range_blocks} blocks",
                words.len()
            ));
        }
        let mut v = VisBits(Some(words.into_boxed_slice()));
        v.release_if_empty();
        Ok(v)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.words().len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmBit::{AllFrozen, AllVisible};

    #[test]
    fn set_clear_count_and_nothing_held_when_empty() {
        let mut v = VisBits::default();
        assert_eq!(v.heap_bytes(), 0);
        v.change(0, 128, VM_ALL_VISIBLE | VM_ALL_FROZEN, 0);
        v.change(127, 128, VM_ALL_VISIBLE, 0);
        v.change(64, 128, VM_ALL_VISIBLE, 0);
        v.change(128, 128, VM_ALL_VISIBLE, 0); // outside the range: ignored
        assert_eq!((v.count(AllVisible), v.count(AllFrozen)), (3, 1));
        assert_eq!(v.heap_bytes(), 32, "two bits per block, 128 blocks");
        assert!(v.get(127, AllVisible) && !v.get(127, AllFrozen) && v.get(0, AllFrozen));
        // A lock clears all-frozen only; an insert clears both.
        v.change(0, 128, 0, VM_ALL_FROZEN);
        assert_eq!((v.count(AllVisible), v.count(AllFrozen)), (3, 0));
        v.change(64, 128, 0, VM_ALL_VISIBLE | VM_ALL_FROZEN);
        assert_eq!(v.count(AllVisible), 2);
        // A clear of an untracked block allocates nothing.
        let mut e = VisBits::default();
        e.change(5, 128, 0, 3);
        assert_eq!(e, VisBits::default());
        // Truncation to 65 blocks: 0 and 64 stay (64 was cleared), 127 goes.
        v.change(64, 128, 3, 0);
        v.clear_from(65, 128);
        assert_eq!((v.count(AllVisible), v.count(AllFrozen)), (2, 1));
        v.clear_from(0, 128);
        assert_eq!(v, VisBits::default(), "all clear: released");
        // Odd range sizes.
        let mut o = VisBits::default();
        o.change(2, 3, 1, 0);
        assert_eq!(o.words(), &[4, 0]);
        assert_eq!(VisBits::from_words(vec![4, 0], 3), Ok(o));
        assert!(VisBits::from_words(vec![4], 3).is_err());
        assert_eq!(VisBits::from_words(vec![0, 0], 3), Ok(VisBits::default()));
    }
}
