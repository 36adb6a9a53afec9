//! The server edge of plugin region locks (`walker_core::locks`): the exit callback
//! that releases what a process still holds, the interrupt check a backend's waits
//! honour, the host-side wait before a backend calls into a plugin, and the hidden
//! fault injection the tests use.

use crate::errors::WalkerError;
use crate::gucs;
use pgrx::pg_sys;
use std::cell::Cell;
use std::time::{Duration, Instant};
use walker_core::host_api::{now_micros, report_lock_failure};
use walker_core::locks::{self, LockError};
use walker_core::registry::PluginSlot;

/// How long the exit callback lets other threads finish their critical sections
/// before it releases their holds.
const EXIT_GRACE: Duration = Duration::from_millis(100);

thread_local! {
    static EXIT_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True on a process's main thread (the only one that may call PostgreSQL).
fn main_thread() -> bool {
    let (pid, tid) = walker_core::shared::current_ids();
    pid == tid
}

/// The interrupt check of lock waits: a backend's main thread whose query was
/// cancelled or which must exit stops waiting. Reads the server's flags only (never
/// processes them: the host does, in its own frames, after the plugin returned).
fn backend_interrupted() -> bool {
    if !main_thread() {
        return false;
    }
    // SAFETY: reading sig_atomic_t globals of this process on its main thread.
    unsafe {
        pg_sys::InterruptPending != 0
            && (pg_sys::QueryCancelPending != 0 || pg_sys::ProcDiePending != 0)
    }
}

/// Installs the interrupt check and the lock bound (from `_PG_init`).
pub fn install() {
    locks::set_interrupt_check(backend_interrupted);
    refresh();
}

/// Copies `walker.lock_timeout` for every thread of the process (main thread: at start,
/// after a reload in the worker, and on every walker SQL call in a backend).
pub fn refresh() {
    locks::set_lock_timeout(gucs::LOCK_TIMEOUT_MS.get().max(1) as u32);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    let forced = locks::release_all_at_exit(EXIT_GRACE);
    if forced > 0 {
        pgrx::log!("walker: released {forced} plugin lock hold(s) this process still had at exit");
    }
}

/// Registers, once per process, the exit callback that releases every plugin lock
/// hold the process (any of its threads) still has when it exits, whether by ERROR,
/// FATAL, SIGTERM or a clean return. Main thread only.
pub fn ensure_exit_callback() {
    if EXIT_CALLBACK.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: registering an exit callback on the main thread, as extensions do.
    unsafe { pg_sys::before_shmem_exit(Some(at_exit), pg_sys::Datum::from(0usize)) };
}

/// In a backend, before calling one of `slot`'s callbacks that takes its lock: waits
/// in host code, on the latch and honouring cancel and terminate, until no writer
/// holds the lock. Raises a clear error when the lock stays held past
/// `walker.lock_timeout` (or has already been held longer).
pub fn wait_for_region(slot: &PluginSlot) {
    let Some(header) = slot.region_header() else {
        return;
    };
    let lock = &header.lock;
    let bound = locks::lock_timeout();
    let start = Instant::now();
    loop {
        if !lock.held_exclusively() {
            return;
        }
        let holder = lock.holder();
        let held = Duration::from_micros(
            u64::try_from(now_micros().saturating_sub(holder.since_micros)).unwrap_or(0),
        );
        let waited = start.elapsed();
        if waited >= bound || (holder.since_micros != 0 && held > bound) {
            let e = LockError::TimedOut { waited, holder };
            report_lock_failure(slot, &e);
            crate::logging::drain();
            WalkerError::LockBusy {
                plugin: slot.name.clone(),
                reason: e.describe(now_micros()),
            }
            .raise()
        }
        crate::sql::backend_wait(5);
        // Cancel and terminate are processed here, in host frames.
        pg_sys::check_for_interrupts!();
    }
}

/// The hidden fault injection `walker.debug_error_holding_lock = '<plugin>'`: on the
/// worker's first start, a thread of the worker takes that plugin's lock exclusively
/// (as a dispatch thread does around `on_record`) and keeps it, and then the worker's
/// main thread raises an ERROR. The worker exits on it and is restarted; the exit
/// callback must release the lock. Superuser-only; for tests.
pub fn maybe_inject_error(starts: u64) {
    let Some(name) = gucs::debug_error_holding_lock() else {
        return;
    };
    if starts != 1 {
        return;
    }
    let Some(slot) = walker_core::registry::find(&name) else {
        return;
    };
    let Some(header) = slot.region_header() else {
        return;
    };
    let lock = &header.lock;
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = walker_core::dispatch::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name(format!("walker:{name}:inject"))
            .spawn(move || {
                let got = locks::acquire(lock, true, Duration::from_secs(10)).is_ok();
                let _ = tx.send(got);
                if got {
                    // Holds the lock until the process ends.
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })
    });
    if spawned.is_err() {
        return;
    }
    let held = rx.recv_timeout(Duration::from_secs(15)).unwrap_or(false);
    pgrx::error!(
        "walker: injected ERROR (walker.debug_error_holding_lock = '{name}'): the worker exits while one of its threads holds plugin \"{name}\"'s lock (held: {held})"
    );
}
