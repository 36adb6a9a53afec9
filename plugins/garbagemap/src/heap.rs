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
/// The most bytes live since the last [`trim_after_burst`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// How far the live bytes must have fallen below their peak before
/// [`trim_after_burst`] asks the C allocator to give free memory back.
pub const TRIM_AFTER: usize = 256 << 10;

/// The system allocator, counting live bytes.
pub struct Counting;

/// Bytes the plugin has allocated and not freed.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn grew(now: usize) {
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// After a burst (a big transaction's held changes, a snapshot buffer) freed at least
/// [`TRIM_AFTER`] bytes, gives the free memory back to the system: glibc keeps freed
/// chunks of a thread's arena resident, so without this the worker's resident memory
/// keeps every burst's peak. Returns whether it trimmed. Called when the walk caught up.
pub fn trim_after_burst() -> bool {
    let live = live_bytes();
    if !burst_ended(PEAK.load(Ordering::Relaxed), live) {
        return false;
    }
    PEAK.store(live, Ordering::Relaxed);
    release_free_memory();
    true
}

/// Whether live bytes fell at least [`TRIM_AFTER`] below `peak`.
fn burst_ended(peak: usize, live: usize) -> bool {
    peak.saturating_sub(live) >= TRIM_AFTER
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the
    // system; it takes the arenas' own locks and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's
// contract; the counter is a relaxed atomic that never affects the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on to System as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size());
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
            grew(LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size);
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

    #[test]
    fn a_burst_is_a_fall_of_trim_after_below_the_peak() {
        assert!(!burst_ended(10 << 20, 10 << 20));
        assert!(!burst_ended((10 << 20) + TRIM_AFTER - 1, 10 << 20));
        assert!(burst_ended((10 << 20) + TRIM_AFTER, 10 << 20));
        assert!(!burst_ended(0, 1 << 20), "live above a stale peak");
    }
}
