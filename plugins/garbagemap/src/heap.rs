//! The plugin's live heap bytes, counted by its allocator.
//!
//! garbagemap is a shared library with its own Rust runtime, so its global allocator
//! sees every allocation the plugin makes (the map, pending changes, decoded records,
//! snapshot buffers) and nothing of the host's or other plugins'. [`Counting`] passes
//! each call to the system allocator and keeps the bytes currently allocated, which
//! `walker.garbagemap_status.heap_bytes` shows: what the plugin holds, exactly, as
//! opposed to the worker's resident memory, which also holds what the C allocator
//! keeps after a free.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
pub struct Counting;

/// Bytes the plugin has allocated and not freed.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's
// contract; the counter is a relaxed atomic that never affects the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on to System as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator (hence System) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was returned by System with `layout`; the caller guarantees
        // `new_size` is valid for `layout.align()`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_held() {
        // lib.rs installs this allocator in the test binary too. Other tests allocate
        // on other threads meanwhile, so a 16 MiB block is checked with a wide margin.
        let n = 1 << 24;
        let before = live_bytes();
        let v: Vec<u8> = Vec::with_capacity(n);
        let during = live_bytes();
        drop(v);
        let after = live_bytes();
        assert!(during >= before + n / 2, "{before} -> {during}");
        assert!(during >= after + n / 2, "{during} -> {after}");
    }
}
