//! Removing walker: `walker.drop_slot()` drops walker's replication slot and its
//! snapshots, and `DROP EXTENSION walker` says (NOTICE) what remains and how to
//! remove it.

use crate::errors::WalkerError;
use crate::{shmem, slot, wal};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use walker_core::rows::format_lsn;

/// How long `drop_slot` waits for the worker to release the slot.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// The slot as `pg_replication_slots` would show it: (restart LSN, active pid).
fn slot_state() -> Option<(u64, i32)> {
    // SAFETY: a lookup of the shared slot array under ReplicationSlotControlLock
    // (taken by the call), then a read of two fields under the slot's spinlock; main
    // thread of a backend.
    unsafe {
        if pg_sys::max_replication_slots == 0 {
            return None;
        }
        let s = pg_sys::SearchNamedReplicationSlot(slot::SLOT_NAME.as_ptr(), true);
        if s.is_null() {
            return None;
        }
        pg_sys::SpinLockAcquire(&raw mut (*s).mutex);
        let out = ((*s).data.restart_lsn, (*s).active_pid);
        pg_sys::SpinLockRelease(&raw mut (*s).mutex);
        Some(out)
    }
}

fn snapshot_dir() -> std::path::PathBuf {
    // SAFETY: DataDir is set in every backend; main thread.
    let d = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) }
        .to_string_lossy()
        .into_owned();
    std::path::PathBuf::from(d).join("walker")
}

fn retained(restart: u64) -> u64 {
    wal::durable_lsn().saturating_sub(restart)
}

/// Drops walker's replication slot `walker` and its snapshot directory
/// `$PGDATA/walker`, for an operator removing walker. A running walker worker is
/// asked to release the slot first; it then walks no more until the server restarts
/// (remove walker from `shared_preload_libraries` before that, or it creates a new
/// slot at the next start). Returns what was removed. Superusers and members of
/// `walker_admin` only.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_slot() -> String {
    // SAFETY: privilege checks on a backend's main thread, inside a transaction.
    let allowed = unsafe { pg_sys::superuser() } || crate::sql::has_role("walker_admin");
    if !allowed {
        WalkerError::NotAllowed {
            function: "drop_slot".into(),
            role: "walker_admin".into(),
        }
        .raise()
    }
    let mut done = Vec::new();
    if let Some(h) = shmem::host() {
        h.slot_drop_requested.store(1, Ordering::Release);
        let pid = h.worker_pid.load(Ordering::Acquire);
        if pid != 0 {
            // SAFETY: SIGUSR1 sets a server process's latch (procsignal handler).
            unsafe { libc::kill(pid, libc::SIGUSR1) };
        }
        let start = Instant::now();
        while h.worker_pid.load(Ordering::Acquire) != 0
            && h.slot_released.load(Ordering::Acquire) == 0
            && slot_state().is_some_and(|(_, active)| active != 0)
        {
            if start.elapsed() >= RELEASE_WAIT {
                WalkerError::DropSlot(format!(
                    "the walker worker (pid {}) did not release replication slot \"walker\" within {} s (walker.status: {})",
                    h.worker_pid.load(Ordering::Acquire),
                    RELEASE_WAIT.as_secs(),
                    h.worker_state().as_str()
                ))
                .raise()
            }
            crate::sql::backend_wait(50);
            pg_sys::check_for_interrupts!();
        }
        done.push(
            "the walker worker released the slot and walks no more until the server restarts"
                .to_string(),
        );
    }
    match slot_state() {
        Some((_, active)) if active != 0 => WalkerError::DropSlot(format!(
            "replication slot \"walker\" is in use by process {active}"
        ))
        .raise(),
        Some((restart, _)) => {
            // SAFETY: the server's own drop of an inactive slot, on the main thread;
            // an ERROR (the slot became active meanwhile) propagates to the caller.
            unsafe { pg_sys::ReplicationSlotDrop(slot::SLOT_NAME.as_ptr(), true) };
            done.push(format!(
                "dropped replication slot \"walker\" (restart LSN {}, {} bytes of WAL retained; the next checkpoint removes them)",
                format_lsn(restart),
                retained(restart)
            ));
        }
        None => done.push("there is no replication slot \"walker\"".into()),
    }
    let dir = snapshot_dir();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let n = entries.count();
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                WalkerError::DropSlot(format!("cannot remove {}: {e}", dir.display())).raise()
            }
            done.push(format!("removed {} ({n} file(s))", dir.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            done.push(format!("there is no {}", dir.display()))
        }
        Err(e) => WalkerError::DropSlot(format!("cannot read {}: {e}", dir.display())).raise(),
    }
    done.join("; ")
}

/// The `object_access_hook` installed before ours (set once, in `_PG_init`).
static PREV_OBJECT_ACCESS: std::sync::OnceLock<pg_sys::object_access_hook_type> =
    std::sync::OnceLock::new();

/// Installs the hook that tells, at `DROP EXTENSION walker`, what remains (from
/// `_PG_init`, whether or not walker is preloaded).
pub fn install_hook() {
    // SAFETY: hook chaining in _PG_init on the main thread.
    unsafe {
        let _ = PREV_OBJECT_ACCESS.set(pg_sys::object_access_hook);
        pg_sys::object_access_hook = Some(object_access);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: chaining to the hook installed before ours.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS.get().copied().flatten() {
            prev(access, class_id, object_id, sub_id, arg);
        }
    }
    if access != pg_sys::ObjectAccessType::OAT_DROP || class_id != pg_sys::ExtensionRelationId {
        return;
    }
    // SAFETY: a catalog lookup by oid inside the dropping transaction; main thread.
    let name = unsafe {
        let n = pg_sys::get_extension_name(object_id);
        if n.is_null() {
            return;
        }
        std::ffi::CStr::from_ptr(n).to_string_lossy().into_owned()
    };
    if name != "walker" {
        return;
    }
    let slot = match slot_state() {
        Some((restart, active)) => format!(
            "replication slot \"walker\" (restart LSN {}, retaining {} bytes of WAL{})",
            format_lsn(restart),
            retained(restart),
            if active != 0 {
                format!(", in use by process {active}")
            } else {
                String::new()
            }
        ),
        None => "no replication slot".into(),
    };
    let dir = snapshot_dir();
    let snaps = if dir.exists() {
        format!("the snapshot directory {}", dir.display())
    } else {
        "no snapshot directory".into()
    };
    pgrx::notice!(
        "walker: DROP EXTENSION leaves {slot} and {snaps}. To remove walker completely: remove walker from shared_preload_libraries and restart, then run SELECT pg_drop_replication_slot('walker') and delete {}; or, before DROP EXTENSION, call SELECT walker.drop_slot()",
        dir.display()
    );
}
