//! The host's shared memory: sized in `shmem_request_hook` from what each plugin asks
//! for, created in `shmem_startup_hook`, where each plugin initialises its region.

use pgrx::pg_sys;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::OnceLock;
use walker_core::registry;
use walker_core::shared::{HostShared, Layout, PluginShared, RegionHeader};

static LAYOUT: OnceLock<Layout> = OnceLock::new();
/// The `shmem_request_hook` installed before ours (set once, in `_PG_init`).
static PREV_REQUEST: OnceLock<pg_sys::shmem_request_hook_type> = OnceLock::new();
/// The `shmem_startup_hook` installed before ours (set once, in `_PG_init`).
static PREV_STARTUP: OnceLock<pg_sys::shmem_startup_hook_type> = OnceLock::new();
/// The start of walker's segment in this process (null: none).
static BASE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// Times this process created the segment (the postmaster: once at start, once more
/// after every crash of a server process).
static CREATED: AtomicU64 = AtomicU64::new(0);
/// `AddinShmemInitLock`'s index in `MainLWLockArray` (lwlocknames.txt, 15 to 18).
const ADDIN_SHMEM_INIT_LOCK: usize = 21;

/// Installs the hooks (from `_PG_init`).
pub fn install_hooks() {
    // SAFETY: hook chaining in _PG_init, on the postmaster's main thread.
    unsafe {
        let _ = PREV_REQUEST.set(pg_sys::shmem_request_hook);
        pg_sys::shmem_request_hook = Some(request);
        let _ = PREV_STARTUP.set(pg_sys::shmem_startup_hook);
        pg_sys::shmem_startup_hook = Some(startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn request() {
    // SAFETY: chaining to the previous hook, as installed.
    unsafe {
        if let Some(prev) = PREV_REQUEST.get().copied().flatten() {
            prev();
        }
    }
    // SAFETY: postmaster main thread, where settings change.
    unsafe { registry::refresh_settings() };
    let sizes: Vec<Option<usize>> = registry::all()
        .into_iter()
        .map(|slot| {
            slot.shmem_size().unwrap_or_else(|m| {
                pgrx::warning!("walker: plugin \"{}\" refused: {m}", slot.name);
                None
            })
        })
        .collect();
    let layout = LAYOUT.get_or_init(|| Layout::compute(&sizes));
    // SAFETY: inside shmem_request_hook, as PostgreSQL 15 requires.
    unsafe { pg_sys::RequestAddinShmemSpace(layout.total) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn startup() {
    // SAFETY: chaining to the previous hook, as installed.
    unsafe {
        if let Some(prev) = PREV_STARTUP.get().copied().flatten() {
            prev();
        }
    }
    let Some(layout) = LAYOUT.get() else { return };
    let mut found = false;
    // SAFETY: standard shared-memory initialisation under AddinShmemInitLock; the
    // segment is sized by our request hook and every offset lies within it.
    unsafe {
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(ADDIN_SHMEM_INIT_LOCK)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let base = pg_sys::ShmemInitStruct(c"walker".as_ptr(), layout.total, &mut found) as *mut u8;
        if !found {
            std::ptr::write_bytes(base, 0, layout.total);
            let host = &*(base as *const HostShared);
            host.crash_restarts
                .store(CREATED.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            host.magic.store(HostShared::MAGIC, Ordering::Release);
        }
        BASE.store(base, Ordering::Release);
        let ledger = walker_core::crash::ledger();
        if let (Some(l), false) = (ledger, found) {
            // Whatever ran before a crash restart is gone; its crash marks stay.
            l.reset_after_restart();
        }
        walker_core::services::attach(&(*(base as *const HostShared)).services);
        for slot in registry::all() {
            let i = slot.index;
            let shared = base.add(layout.plugin_shared[i]) as *mut PluginShared;
            let (header, region, size) = match (layout.region_header[i], layout.region[i]) {
                (Some(h), Some(r)) => {
                    let size = layout.region_size(i);
                    let header = base.add(h) as *mut RegionHeader;
                    (*header).size.store(size as u64, Ordering::Relaxed);
                    (header, base.add(r), size)
                }
                _ => (std::ptr::null_mut(), std::ptr::null_mut(), 0),
            };
            slot.attach_shared(shared, header, region, size);
            if !slot.usable() {
                continue;
            }
            // A plugin that crashed the server in one of its callbacks stays out until
            // the server is restarted (the crash ledger outlives crash restarts). Its
            // region is still initialised below: its views keep answering.
            if let (Some(c), false) = (
                ledger.and_then(|l| l.lane(i)).and_then(|e| e.crash()),
                found,
            ) {
                let m = walker_core::crash::crash_message(&c);
                slot.fail(&m);
                pgrx::warning!("walker: plugin \"{}\" {m}", slot.name);
            }
            if let (Some(f), false) = (
                slot.desc.as_ref().and_then(|d| d.shmem_init),
                region.is_null(),
            ) {
                let st = f(slot.handle(), region as *mut std::ffi::c_void, size, found);
                if let Err(m) = slot.check(st, "shmem_init") {
                    slot.fail(&m);
                    pgrx::warning!("walker: plugin \"{}\" failed: {m}", slot.name);
                }
            }
        }
        pg_sys::LWLockRelease(lock);
    }
    crate::logging::drain();
}

/// The host's shared state, when shared memory exists (walker was preloaded).
pub fn host() -> Option<&'static HostShared> {
    // SAFETY: BASE is null or the start of our segment, mapped for the process's life
    // and initialised (magic set) before use.
    unsafe {
        let base = BASE.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        let h = &*(base as *const HostShared);
        (h.magic.load(Ordering::Acquire) == HostShared::MAGIC).then_some(h)
    }
}

/// Total bytes of shared memory the host reserved.
pub fn total_bytes() -> usize {
    LAYOUT.get().map(|l| l.total).unwrap_or(0)
}
