//! Shared regions whose tables are sized at server start.
//!
//! A plugin whose capacities are settings lays its region out as a fixed header `H`
//! followed by tables whose lengths it reads from its settings in `init`:
//! [`RegionLayout`] gives the bytes to ask for in `shmem_size`, and
//! [`crate::Host::with_exclusive_tables`] / [`crate::Host::with_shared_tables`] hand
//! the header and a [`Tables`] / [`TablesRef`] from which the plugin takes its tables
//! as slices, in the same order and with the same lengths every time (store the
//! lengths in the header at `shmem_init`, so every process carves alike). The slices
//! are disjoint, aligned and inside the region; no `unsafe` is needed in the plugin.

use crate::sdk::{PluginError, PluginResult, SharedState};
use std::marker::PhantomData;
use std::mem::{align_of, size_of};

/// Plain data that may be an element of a table carved from the region's tail.
///
/// # Safety
/// Besides [`SharedState`]'s rules, every byte pattern must be a valid value (only
/// integers, floats, and arrays or `#[repr(C)]` structs of them: no `bool`, `char`,
/// Rust enums or references), so that bytes a differently carved table left behind
/// can never be an invalid value.
pub unsafe trait SharedTable: SharedState {}

// SAFETY: plain integers: all-zero and every byte pattern are valid values.
unsafe impl SharedState for u32 {}
// SAFETY: as above.
unsafe impl SharedTable for u32 {}
// SAFETY: as above.
unsafe impl SharedState for u64 {}
// SAFETY: as above.
unsafe impl SharedTable for u64 {}

/// Bytes of a region made of a header and tables (for `shmem_size`).
///
/// Each table is counted with room to align its first element whatever the address
/// the previous one ended at (at most `align - 1` bytes), so the size holds whatever
/// alignment the host's region has beyond the header's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionLayout {
    size: Option<usize>,
}

impl RegionLayout {
    /// A region holding a header `H`.
    pub fn new<H: SharedState>() -> RegionLayout {
        RegionLayout {
            size: Some(size_of::<H>()),
        }
    }

    /// Adds a table of `n` elements `E`.
    pub fn table<E: SharedTable>(self, n: usize) -> RegionLayout {
        let size = self.size.and_then(|s| {
            s.checked_add(align_of::<E>() - 1)?
                .checked_add(size_of::<E>().checked_mul(n)?)
        });
        RegionLayout { size }
    }

    /// The bytes, or `None` when they overflow `usize`.
    pub fn size(self) -> Option<usize> {
        self.size
    }
}

/// Where the next table of `n` elements `E` starts in a tail at address `addr` of
/// `len` bytes, and the bytes it takes from the tail (padding included).
fn carve<E>(addr: usize, len: usize, n: usize) -> PluginResult<(usize, usize)> {
    let pad = addr.wrapping_neg() % align_of::<E>();
    let bytes = size_of::<E>()
        .checked_mul(n)
        .and_then(|b| b.checked_add(pad))
        .filter(|&b| b <= len)
        .ok_or_else(|| {
            PluginError::new(format!(
                "the shared-memory region has {len} bytes left, too few for a table of {n} elements of {} bytes: shmem_size must count every table (RegionLayout) and the tables must be taken with the lengths it counted",
                size_of::<E>()
            ))
        })?;
    Ok((pad, bytes))
}

/// The region's tail under the exclusive lock: take the tables from it in order.
pub struct Tables<'a> {
    ptr: *mut u8,
    len: usize,
    region: PhantomData<&'a mut [u8]>,
}

impl<'a> Tables<'a> {
    /// The tail of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be valid for reads and writes for `'a`, initialised, and
    /// accessed by nothing else for `'a`.
    pub(crate) unsafe fn from_raw(ptr: *mut u8, len: usize) -> Tables<'a> {
        Tables {
            ptr,
            len,
            region: PhantomData,
        }
    }

    /// Bytes not taken yet.
    pub fn remaining(&self) -> usize {
        self.len
    }

    /// Takes the next table: `n` elements `E`, aligned.
    pub fn take<E: SharedTable>(&mut self, n: usize) -> PluginResult<&'a mut [E]> {
        let (pad, bytes) = carve::<E>(self.ptr as usize, self.len, n)?;
        // SAFETY: `pad + n * size_of::<E>()` bytes are inside the tail (checked by
        // `carve`), the start is aligned for `E`, the bytes are initialised and every
        // byte pattern is an `E` (`SharedTable`); the tail moves past them, so no
        // other slice taken from it overlaps, and `from_raw`'s contract gives `'a`.
        let table = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(pad) as *mut E, n) };
        // SAFETY: `bytes <= len`, so the new start is inside (or one past) the tail.
        self.ptr = unsafe { self.ptr.add(bytes) };
        self.len -= bytes;
        Ok(table)
    }
}

/// The region's tail under the shared lock: take the tables from it in order.
pub struct TablesRef<'a> {
    ptr: *const u8,
    len: usize,
    region: PhantomData<&'a [u8]>,
}

impl<'a> TablesRef<'a> {
    /// The tail of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be valid for reads for `'a`, initialised, and written by
    /// nothing for `'a`.
    pub(crate) unsafe fn from_raw(ptr: *const u8, len: usize) -> TablesRef<'a> {
        TablesRef {
            ptr,
            len,
            region: PhantomData,
        }
    }

    /// Bytes not taken yet.
    pub fn remaining(&self) -> usize {
        self.len
    }

    /// Takes the next table: `n` elements `E`, aligned.
    pub fn take<E: SharedTable>(&mut self, n: usize) -> PluginResult<&'a [E]> {
        let (pad, bytes) = carve::<E>(self.ptr as usize, self.len, n)?;
        // SAFETY: as in `Tables::take`, for reads only.
        let table = unsafe { std::slice::from_raw_parts(self.ptr.add(pad) as *const E, n) };
        // SAFETY: `bytes <= len`.
        self.ptr = unsafe { self.ptr.add(bytes) };
        self.len -= bytes;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Head {
        a: u64,
        b: u32,
    }
    // SAFETY: test type, plain integers.
    unsafe impl SharedState for Head {}

    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Pair {
        x: u64,
        y: u32,
    }
    // SAFETY: test type, plain integers.
    unsafe impl SharedState for Pair {}
    // SAFETY: as above.
    unsafe impl SharedTable for Pair {}

    #[test]
    fn the_layout_counts_the_header_each_table_and_its_worst_padding() {
        // Head: 8 + 4 + 4 padding = 16. u32 table of 3: 3 alignment slack + 12.
        // Pair (16 bytes, align 8) table of 2: 7 slack + 32.
        let l = RegionLayout::new::<Head>().table::<u32>(3).table::<Pair>(2);
        assert_eq!(l.size(), Some(16 + 3 + 12 + 7 + 32));
        assert_eq!(RegionLayout::new::<Head>().size(), Some(16));
        assert_eq!(
            RegionLayout::new::<Head>().table::<Pair>(usize::MAX).size(),
            None
        );
    }

    #[test]
    fn tables_are_aligned_disjoint_and_bounded() {
        let mut buf = vec![0u64; 16]; // 128 bytes, 8-aligned
        let base = buf.as_mut_ptr() as *mut u8;
        // SAFETY: the test's buffer, used only through `t` below.
        let mut t = unsafe { Tables::from_raw(base, 128) };
        let a = t.take::<u32>(3).unwrap(); // bytes 0..12
        assert_eq!(t.remaining(), 116);
        let b = t.take::<Pair>(2).unwrap(); // padded to 16, bytes 16..48
        assert_eq!(b.as_ptr() as usize - base as usize, 16);
        assert_eq!(t.remaining(), 80);
        a[2] = 7;
        b[1].y = 9;
        assert_eq!(a, &[0, 0, 7]);
        assert_eq!(b[0], Pair::default());
        assert!(t.take::<Pair>(6).is_err(), "80 bytes hold 5 pairs, not 6");
        assert_eq!(t.remaining(), 80, "a refused take takes nothing");
        assert_eq!(t.take::<Pair>(5).unwrap().len(), 5);
        assert_eq!(t.remaining(), 0);
        assert!(t.take::<u32>(1).is_err());
    }
}
