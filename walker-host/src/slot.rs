//! walker's physical replication slot: it keeps the WAL the worker has not processed
//! yet, so nothing is removed while walker is behind, paused or restarting.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::ffi::CStr;

/// Name of the slot (visible in `pg_replication_slots`).
pub const SLOT_NAME: &CStr = c"walker";

/// Text of an error the server raised.
pub fn caught_message(e: &CaughtError) -> String {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.message().to_string(),
        CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
    }
}

/// Takes (creating it when missing) the slot for this worker. Returns its restart LSN,
/// which for a new slot is the last checkpoint's redo pointer, and whether it was
/// created now.
pub fn acquire() -> Result<(u64, bool), String> {
    PgTryBuilder::new(|| {
        // SAFETY: main thread of a background worker with shared-memory access; the
        // slot functions raise ERRORs, which PgTryBuilder turns into Err.
        unsafe {
            if pg_sys::max_replication_slots == 0 {
                return Err("max_replication_slots is 0, so walker cannot keep the WAL it has not read; set max_replication_slots to at least 1 and restart".to_string());
            }
            let mut created = false;
            if pg_sys::SearchNamedReplicationSlot(SLOT_NAME.as_ptr(), true).is_null() {
                created = true;
                crate::pg_version::create_physical_slot(SLOT_NAME);
                pg_sys::ReplicationSlotReserveWal();
                pg_sys::ReplicationSlotMarkDirty();
                pg_sys::ReplicationSlotSave();
                pgrx::log!("walker: created replication slot \"walker\" to keep the WAL it has not read");
            } else if pg_sys::MyReplicationSlot.is_null() {
                crate::pg_version::acquire_slot(SLOT_NAME);
            }
            Ok((restart_lsn(), created))
        }
    })
    .catch_others(|e| Err(format!("cannot use replication slot \"walker\": {}", caught_message(&e))))
    .execute()
}

/// The held slot's restart LSN (0 without one).
pub fn restart_lsn() -> u64 {
    // SAFETY: the slot is ours (active_pid = this process); reading under its spinlock.
    unsafe {
        let s = pg_sys::MyReplicationSlot;
        if s.is_null() {
            return 0;
        }
        pg_sys::SpinLockAcquire(&raw mut (*s).mutex);
        let l = (*s).data.restart_lsn;
        pg_sys::SpinLockRelease(&raw mut (*s).mutex);
        l
    }
}

/// Moves the slot forward to `lsn` (never back) and lets the server recycle WAL
/// before it; writes the slot to disk when `save`.
pub fn advance(lsn: u64, save: bool) {
    // SAFETY: as in `restart_lsn`; the remaining calls are the server's own sequence
    // for moving a physical slot, on the main thread.
    unsafe {
        let s = pg_sys::MyReplicationSlot;
        if s.is_null() || lsn == 0 {
            return;
        }
        pg_sys::SpinLockAcquire(&raw mut (*s).mutex);
        let moved = lsn > (*s).data.restart_lsn;
        if moved {
            (*s).data.restart_lsn = lsn;
        }
        pg_sys::SpinLockRelease(&raw mut (*s).mutex);
        if moved {
            pg_sys::ReplicationSlotMarkDirty();
        }
        // Save before computing the server's WAL horizon: from PostgreSQL 18 the
        // horizon follows a persistent slot's *saved* restart LSN, so computing first
        // would keep the WAL of the old position until the next save and checkpoint.
        if save {
            pg_sys::ReplicationSlotSave();
        }
        if moved || save {
            pg_sys::ReplicationSlotsComputeRequiredLSN();
        }
    }
}

/// Releases the slot (at a clean exit; the server also does it when the process ends).
pub fn release() {
    // SAFETY: releasing the slot this process holds, on the main thread.
    unsafe {
        if !pg_sys::MyReplicationSlot.is_null() {
            pg_sys::ReplicationSlotSave();
            pg_sys::ReplicationSlotRelease();
        }
    }
}
