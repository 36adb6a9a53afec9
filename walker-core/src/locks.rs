//! Plugin region locks with owners and bounds.
//!
//! Every hold of a plugin's region lock taken through the host API is recorded in a
//! process-local table (which lock, which mode, which thread). That table is what
//! makes the lock safe inside someone else's server:
//!
//! - **No lock outlives its holder.** When the process exits (including on an ERROR
//!   or FATAL in its main thread while a dispatch thread holds a lock), the host's
//!   exit callback calls [`release_all_at_exit`], which gives the holders a short
//!   grace period and then releases whatever this process still holds. After a plugin
//!   callback returns, the host calls [`release_held_by_this_thread`]: a callback that
//!   returns still holding its lock has it released and is reported.
//! - **No waiter waits forever.** [`acquire`] waits at most the given bound (and the
//!   bound [`lock_timeout`] the host sets from `walker.lock_timeout`), stops at once
//!   when the installed interrupt check says the backend was cancelled or is
//!   terminating, and fails at once when the current exclusive hold is already older
//!   than the bound (a stuck holder costs each later waiter nothing).
//!
//! The rule for plugin authors (also in the ABI docs and the README): hold the lock
//! only to copy data in or out of the region, at most a few milliseconds; never wait,
//! sleep, do I/O, call another host service that may wait, or take the lock again
//! while holding it; release it before the callback returns.

use crate::shared::{Backoff, Holder, RwSpinLock};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default of `walker.lock_timeout` in milliseconds.
pub const DEFAULT_LOCK_TIMEOUT_MS: u32 = 1000;

static LOCK_TIMEOUT_MS: AtomicU32 = AtomicU32::new(DEFAULT_LOCK_TIMEOUT_MS);
static EXITING: AtomicBool = AtomicBool::new(false);

/// Answers whether the calling thread's wait must stop: true when it is a backend's
/// main thread whose query was cancelled or which must exit. Installed by the host.
pub type InterruptCheck = fn() -> bool;
static INTERRUPT_CHECK: std::sync::OnceLock<InterruptCheck> = std::sync::OnceLock::new();

/// Installs the host's interrupt check (once per process; later calls are ignored).
pub fn set_interrupt_check(f: InterruptCheck) {
    let _ = INTERRUPT_CHECK.set(f);
}

fn interrupted() -> bool {
    INTERRUPT_CHECK.get().is_some_and(|f| f())
}

/// Sets the longest wait for a plugin lock (`walker.lock_timeout`, from the main thread).
pub fn set_lock_timeout(ms: u32) {
    LOCK_TIMEOUT_MS.store(ms.max(1), Ordering::Relaxed);
}

/// The longest wait for a plugin lock.
pub fn lock_timeout() -> Duration {
    Duration::from_millis(LOCK_TIMEOUT_MS.load(Ordering::Relaxed) as u64)
}

/// True once the process started exiting ([`release_all_at_exit`]).
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Mode of a recorded hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Readers.
    Shared,
    /// A writer.
    Exclusive,
    /// A writer waiting (counted in the lock word so that readers hold back).
    Waiting,
}

struct Hold {
    lock: usize,
    mode: Mode,
    thread: std::thread::ThreadId,
}

static HELD: Mutex<Vec<Hold>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Hold>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

fn addr(lock: &RwSpinLock) -> usize {
    lock as *const RwSpinLock as usize
}

fn undo(lock: usize, mode: Mode) {
    // SAFETY: recorded addresses are of locks in shared memory, mapped for the life of
    // the process.
    let l = unsafe { &*(lock as *const RwSpinLock) };
    match mode {
        Mode::Shared => l.unlock_shared(),
        Mode::Exclusive => l.unlock_exclusive(),
        Mode::Waiting => l.remove_waiting_writer(),
    }
}

/// Why a lock was not obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// The bound passed; who held it then.
    TimedOut {
        /// How long the caller waited.
        waited: Duration,
        /// The holder at the end of the wait.
        holder: Holder,
    },
    /// The backend was cancelled or must exit.
    Interrupted,
    /// The process is exiting: its holds were released and no new one is granted.
    Exiting,
}

impl LockError {
    /// A sentence naming the holder, for messages and the log.
    pub fn describe(&self, now_micros: i64) -> String {
        match self {
            LockError::TimedOut { waited, holder } => {
                let by = if holder.pid != 0 {
                    let held_ms = now_micros.saturating_sub(holder.since_micros).max(0) / 1000;
                    format!(
                        "held exclusively by process {} (thread {}) for {held_ms} ms",
                        holder.pid, holder.tid
                    )
                } else if holder.readers > 0 {
                    format!("held by {} reader(s)", holder.readers)
                } else {
                    "held by writers taking turns".to_string()
                };
                format!(
                    "its shared-memory lock was not obtained within {} ms: {by}",
                    waited.as_millis()
                )
            }
            LockError::Interrupted => {
                "the wait for its shared-memory lock was interrupted (query cancelled or backend terminating)".into()
            }
            LockError::Exiting => {
                "the process is exiting; its shared-memory lock is no longer granted".into()
            }
        }
    }
}

/// How many times [`lock_timeout`] a thread other than a process's main thread (a
/// dispatch thread) may wait: a wait that gives up fails its plugin there, so it gets
/// more room than a backend, whose statement must never hang.
pub const DISPATCH_WAIT_FACTOR: u32 = 10;

fn on_main_thread() -> bool {
    let (pid, tid) = crate::shared::current_ids();
    pid == tid
}

thread_local! {
    /// Holds this thread has recorded in [`HELD`] and not yet removed itself: when
    /// zero, [`release_held_by_this_thread`] has nothing to look for. (Another thread
    /// releasing on this one's behalf leaves it too high, which only costs a lookup.)
    static MY_HOLDS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static MY_THREAD: std::thread::ThreadId = std::thread::current().id();
}

fn this_thread() -> std::thread::ThreadId {
    MY_THREAD.with(|t| *t)
}

fn count_hold(added: bool) {
    MY_HOLDS.with(|c| {
        c.set(if added {
            c.get().saturating_add(1)
        } else {
            c.get().saturating_sub(1)
        })
    });
}

/// Takes `lock` in the given mode (`Shared` or `Exclusive`), waiting at most `wait`
/// and at most [`lock_timeout`] (on a process's main thread) or
/// [`DISPATCH_WAIT_FACTOR`] times it (other threads). Records the hold for [`release`].
pub fn acquire(lock: &RwSpinLock, exclusive: bool, wait: Duration) -> Result<(), LockError> {
    let cap = if on_main_thread() {
        lock_timeout()
    } else {
        lock_timeout().saturating_mul(DISPATCH_WAIT_FACTOR)
    };
    let bound = wait.min(cap);
    // The clock is read only once a first attempt failed.
    let mut start: Option<Instant> = None;
    let me = this_thread();
    let a = addr(lock);
    let mut backoff = Backoff::default();
    let mut registered = false;
    let give_up = |registered: bool, e: LockError| {
        if registered {
            let mut h = held();
            if let Some(i) = h
                .iter()
                .position(|x| x.lock == a && x.thread == me && x.mode == Mode::Waiting)
            {
                h.swap_remove(i);
                count_hold(false);
                lock.remove_waiting_writer();
            }
        }
        if matches!(e, LockError::TimedOut { .. }) {
            lock.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        Err(e)
    };
    loop {
        {
            let mut h = held();
            if EXITING.load(Ordering::Acquire) {
                drop(h);
                return give_up(false, LockError::Exiting);
            }
            if exclusive {
                if !registered && lock.add_waiting_writer() {
                    registered = true;
                    h.push(Hold {
                        lock: a,
                        mode: Mode::Waiting,
                        thread: me,
                    });
                    count_hold(true);
                }
                if lock.try_lock_exclusive(registered) {
                    if registered {
                        if let Some(i) = h
                            .iter()
                            .position(|x| x.lock == a && x.thread == me && x.mode == Mode::Waiting)
                        {
                            h.swap_remove(i);
                            count_hold(false);
                        }
                    }
                    h.push(Hold {
                        lock: a,
                        mode: Mode::Exclusive,
                        thread: me,
                    });
                    count_hold(true);
                    return Ok(());
                }
            } else if lock.try_lock_shared() {
                h.push(Hold {
                    lock: a,
                    mode: Mode::Shared,
                    thread: me,
                });
                count_hold(true);
                return Ok(());
            }
        }
        let waited = start.get_or_insert_with(Instant::now).elapsed();
        let holder = lock.holder();
        // A hold already older than the bound is stuck: fail at once.
        let stuck = holder.since_micros != 0
            && crate::clock::now_micros().saturating_sub(holder.since_micros)
                > i64::try_from(bound.as_micros()).unwrap_or(i64::MAX);
        if waited >= bound || stuck {
            return give_up(registered, LockError::TimedOut { waited, holder });
        }
        if interrupted() {
            return give_up(registered, LockError::Interrupted);
        }
        backoff.snooze(lock, exclusive);
    }
}

/// Takes `lock` waiting as long as it takes (the ABI 1.0 calls, which cannot report
/// failure), still recorded so that it is released when the holder exits. A process
/// that is exiting parks the calling thread instead of granting it: it would otherwise
/// run its critical section unprotected.
pub fn acquire_unbounded(lock: &RwSpinLock, exclusive: bool) {
    loop {
        match acquire(lock, exclusive, Duration::from_secs(3600)) {
            Ok(()) => return,
            Err(LockError::Exiting) => loop {
                std::thread::sleep(Duration::from_secs(1));
            },
            Err(_) => {}
        }
    }
}

/// Releases a hold this thread took through [`acquire`]. False when there was none
/// (the host already released it on this thread's behalf): then nothing changes.
pub fn release(lock: &RwSpinLock, exclusive: bool) -> bool {
    let me = this_thread();
    let a = addr(lock);
    let mode = if exclusive {
        Mode::Exclusive
    } else {
        Mode::Shared
    };
    let mut h = held();
    match h
        .iter()
        .rposition(|x| x.lock == a && x.thread == me && x.mode == mode)
    {
        Some(i) => {
            h.remove(i);
            count_hold(false);
            undo(a, mode);
            true
        }
        None => false,
    }
}

/// Releases every hold of `lock` by the calling thread (after a plugin callback
/// returned); the modes released, empty when it held none.
pub fn release_held_by_this_thread(lock: &RwSpinLock) -> Vec<Mode> {
    if MY_HOLDS.with(|c| c.get()) == 0 {
        // The common case after every callback: nothing held, nothing to scan.
        return Vec::new();
    }
    let me = this_thread();
    let a = addr(lock);
    let mut h = held();
    let mut out = Vec::new();
    h.retain(|x| {
        if x.lock == a && x.thread == me {
            count_hold(false);
            undo(a, x.mode);
            if x.mode != Mode::Waiting {
                lock.forced_releases.fetch_add(1, Ordering::Relaxed);
                out.push(x.mode);
            }
            false
        } else {
            true
        }
    });
    out
}

/// Holds recorded in this process now (shared, exclusive).
pub fn holds() -> (usize, usize) {
    let h = held();
    (
        h.iter().filter(|x| x.mode == Mode::Shared).count(),
        h.iter().filter(|x| x.mode == Mode::Exclusive).count(),
    )
}

/// Called once when the process exits (the host's exit callback, on the main thread):
/// no new hold is granted, holders get up to `grace` to finish, then every hold left
/// is released. Returns how many were released on the holders' behalf.
pub fn release_all_at_exit(grace: Duration) -> usize {
    EXITING.store(true, Ordering::Release);
    let start = Instant::now();
    while start.elapsed() < grace {
        if held().iter().all(|x| x.mode == Mode::Waiting) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut h = held();
    let mut forced = 0;
    for x in h.drain(..) {
        undo(x.lock, x.mode);
        if x.mode != Mode::Waiting {
            forced += 1;
            // SAFETY: as in `undo`.
            unsafe { &*(x.lock as *const RwSpinLock) }
                .forced_releases
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    forced
}

#[cfg(test)]
pub(crate) fn reset_for_tests() {
    EXITING.store(false, Ordering::Release);
    held().clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    // The table is process-wide: tests that use it run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn leak() -> &'static RwSpinLock {
        Box::leak(Box::new(RwSpinLock::default()))
    }

    #[test]
    fn a_thread_that_ends_holding_the_lock_is_released_at_exit() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        reset_for_tests();
        let lock = leak();
        let (tx, rx) = std::sync::mpsc::channel();
        // A "dispatch thread" takes the lock and never gives it back.
        std::thread::spawn(move || {
            acquire(lock, true, Duration::from_secs(1)).unwrap();
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        });
        rx.recv().unwrap();
        assert!(lock.held_exclusively());
        // Another process's backend would wait for it: bounded.
        let t = Instant::now();
        let e = acquire(lock, false, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, LockError::TimedOut { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(lock.timeouts.load(Ordering::Relaxed), 1);
        // The main thread errors and the process exits: the hold is released.
        assert_eq!(release_all_at_exit(Duration::from_millis(20)), 1);
        assert!(!lock.held_exclusively());
        assert_eq!(lock.holder().readers, 0);
        assert_eq!(lock.forced_releases.load(Ordering::Relaxed), 1);
        // A raw taker (another process) gets it now.
        assert!(lock.try_lock_shared());
        lock.unlock_shared();
        reset_for_tests();
    }

    #[test]
    fn a_callback_returning_with_the_lock_is_caught() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        reset_for_tests();
        let lock = leak();
        acquire(lock, false, Duration::from_millis(10)).unwrap();
        acquire(lock, false, Duration::from_millis(10)).unwrap();
        assert_eq!(lock.holder().readers, 2);
        assert_eq!(
            release_held_by_this_thread(lock),
            vec![Mode::Shared, Mode::Shared]
        );
        assert_eq!(lock.holder().readers, 0);
        // The plugin's late unlock changes nothing (never below zero, never another's hold).
        assert!(!release(lock, false));
        assert!(acquire(lock, true, Duration::from_millis(10)).is_ok());
        assert!(release(lock, true));
        assert!(!lock.held_exclusively());
        reset_for_tests();
    }

    #[test]
    fn writers_are_not_starved_by_readers() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        reset_for_tests();
        let lock: &'static RwSpinLock = leak();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        // Four readers overlapping their holds, so that the lock is never free of
        // readers: a reader-preferring lock never lets the writer in.
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (stop, reads) = (stop.clone(), reads.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    lock.lock_shared();
                    std::thread::sleep(Duration::from_micros(200));
                    lock.unlock_shared();
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        for _ in 0..20 {
            acquire(lock, true, Duration::from_millis(500)).expect("writer got in");
            release(lock, true);
        }
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        assert!(took < Duration::from_secs(2), "20 writes took {took:?}");
        assert!(reads.load(Ordering::Relaxed) > 0);
        reset_for_tests();
    }

    #[test]
    fn an_interrupted_waiter_returns_at_once_and_unregisters() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        reset_for_tests();
        let lock = leak();
        lock.lock_exclusive();
        static CANCEL: AtomicBool = AtomicBool::new(false);
        set_interrupt_check(|| CANCEL.load(Ordering::Relaxed));
        CANCEL.store(true, Ordering::Relaxed);
        let t = Instant::now();
        assert_eq!(
            acquire(lock, true, Duration::from_secs(10)),
            Err(LockError::Interrupted)
        );
        assert!(t.elapsed() < Duration::from_millis(200));
        CANCEL.store(false, Ordering::Relaxed);
        assert_eq!(lock.holder().waiting_writers, 0, "the waiter unregistered");
        lock.unlock_exclusive();
        assert!(lock.try_lock_shared());
        lock.unlock_shared();
        reset_for_tests();
    }

    #[test]
    fn a_stuck_hold_fails_later_waiters_at_once() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        reset_for_tests();
        let lock = leak();
        lock.lock_exclusive();
        std::thread::sleep(Duration::from_millis(60));
        let t = Instant::now();
        let e = acquire(lock, false, Duration::from_millis(50)).unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(20), "{:?}", t.elapsed());
        let LockError::TimedOut { holder, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(holder.pid, std::process::id() as i32);
        lock.unlock_exclusive();
        reset_for_tests();
    }
}
