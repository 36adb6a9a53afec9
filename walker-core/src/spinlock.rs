//! The spin-locked primitives of the host's shared memory: the reader-writer lock
//! every region and message is guarded by, and the short messages kept under one.
//! Usable from any thread of any server process (they never call PostgreSQL); valid
//! at all-zero bytes. The layout that places them is `shared`.

use crate::clock::now_micros;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// A reader-writer lock living in shared memory, usable from any thread of any
/// server process (it never calls PostgreSQL).
///
/// State word: bit 31 is the writer, bits 16..=30 count waiting writers, bits 0..=15
/// count readers. Writers are preferred: a reader does not enter while a writer holds
/// the lock or waits for it, so a stream of view readers cannot starve the dispatch
/// thread that writes. Waiters spin briefly, then sleep in the kernel on the lock word
/// (a futex, shared between processes) until a release wakes them, at most
/// [`MAX_SLEEP`] at a time; they never busy-wait for long, and a released lock does not
/// wait out a sleep: on a machine with fewer cores than busy processes, yielding and
/// timed sleeps left waiters behind a lock that had long been free.
///
/// The methods here are the raw lock. Plugin regions are taken through
/// [`crate::locks`], which records every hold in the process so that a holder that
/// errors, exits or returns from a callback still holding it cannot leave it held, and
/// which bounds every wait.
#[repr(C)]
#[derive(Default)]
pub struct RwSpinLock {
    state: AtomicU32,
    /// Process id of the exclusive holder (0: none), for reports.
    owner_pid: AtomicI32,
    /// Kernel thread id of the exclusive holder (0: none), for reports.
    owner_tid: AtomicI32,
    /// When the exclusive hold began, microseconds since the Unix epoch (0: none).
    held_since: AtomicI64,
    /// Waits that gave up at their bound.
    pub timeouts: AtomicU64,
    /// Holds the host released on a holder's behalf (it exited, errored, or a
    /// callback returned still holding the lock).
    pub forced_releases: AtomicU64,
    /// Waiters asleep on `state` now (a release wakes them only when there are some).
    sleepers: AtomicU32,
}

const WRITER: u32 = 1 << 31;
const WAITER_ONE: u32 = 1 << 16;
const WAITERS: u32 = 0x7fff << 16;
const READERS: u32 = 0xffff;

/// True when a lock word `s` keeps a waiter for `exclusive` (or shared) mode out: a
/// writer needs no holder at all, a reader no writer holding or waiting and room in
/// the reader count.
fn blocks(s: u32, exclusive: bool) -> bool {
    if exclusive {
        s & (WRITER | READERS) != 0
    } else {
        s & (WRITER | WAITERS) != 0 || s & READERS == READERS
    }
}

/// Longest single sleep of a waiter.
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_millis(5);

/// Who holds a lock exclusively, as far as the lock word knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Process id of the exclusive holder (0: no exclusive holder).
    pub pid: i32,
    /// Its kernel thread id.
    pub tid: i32,
    /// Microseconds since the Unix epoch when the hold began (0: not held exclusively).
    pub since_micros: i64,
    /// Readers holding it now.
    pub readers: u32,
    /// Writers waiting for it now.
    pub waiting_writers: u32,
}

/// Backoff of a waiter: a few spins, then sleeps on the lock word until it changes
/// (at most [`MAX_SLEEP`] each).
#[derive(Default)]
pub struct Backoff {
    rounds: u32,
}

/// Spins before a waiter sleeps.
const SPINS: u32 = 64;

impl Backoff {
    /// Waits for `lock` (in `exclusive` mode or not) a little: spins at first, then
    /// sleeps until a release changes its word or [`MAX_SLEEP`] passed. Returns early
    /// whenever the word changed, so the caller tries again and checks its own bounds.
    pub fn snooze(&mut self, lock: &RwSpinLock, exclusive: bool) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds < SPINS {
            std::hint::spin_loop();
        } else {
            lock.sleep_while_unavailable(exclusive, MAX_SLEEP);
        }
    }
}

/// Sleeps while `word` holds `seen`, at most `timeout` (Linux futex, like
/// [`current_ids`]'s `gettid`: walker runs on Linux only; the word may be in memory
/// shared between processes). Returns at once if it no longer holds `seen`; may return early for no
/// reason.
fn futex_wait(word: &AtomicU32, seen: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the call; FUTEX_WAIT only
    // reads it (compared with `seen` in the kernel) and `ts` outlives the call. Not
    // FUTEX_PRIVATE: the word may be shared with other processes.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every thread of any process asleep in [`futex_wait`] on `word`.
fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only uses its
    // address to find the sleepers.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

thread_local! {
    /// (pid, tid) of the calling thread once looked up; (0, 0) before that, and again
    /// in the child of a `fork` (see [`forget_ids_in_child`]).
    static THREAD_IDS: std::cell::Cell<(i32, i32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Runs in the child of every `fork` of a process that cached its ids (registered with
/// `pthread_atfork`): the child's only thread is a copy of the forking one, whose
/// cached ids are the parent's. Only a thread-local store: async-signal-safe.
extern "C" fn forget_ids_in_child() {
    // `try_with`: no panic if the thread-local is being torn down.
    let _ = THREAD_IDS.try_with(|c| c.set((0, 0)));
}

/// Registers [`forget_ids_in_child`] once per process (and its children, which inherit
/// the registration); false when the registration failed (then nothing is cached).
fn fork_reset_registered() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: registers a handler that only resets a thread-local cell.
        unsafe { libc::pthread_atfork(None, None, Some(forget_ids_in_child)) == 0 }
    })
}

/// Remembers the calling thread's process and thread ids now (the worker's dispatch
/// threads, at their start); [`current_ids`] also does it on first use.
pub fn remember_thread_ids() {
    let _ = current_ids();
}

/// (pid, tid) of the calling thread. Looked up with two system calls once per thread
/// and process, then cached: a backend takes plugin region locks several times per
/// statement, and each lock records its holder. A process's main thread may fork (the
/// postmaster forks every backend): the child drops the copy it inherited at the fork.
pub fn current_ids() -> (i32, i32) {
    let cached = THREAD_IDS.with(|c| c.get());
    if cached.0 != 0 {
        return cached;
    }
    // SAFETY: plain system calls without arguments.
    let ids = unsafe { (libc::getpid(), libc::gettid()) };
    if fork_reset_registered() {
        THREAD_IDS.with(|c| c.set(ids));
    }
    ids
}

impl RwSpinLock {
    /// One attempt at a shared hold; never waits. Fails while a writer holds the lock
    /// or waits for it (writer preference).
    pub fn try_lock_shared(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        !blocks(s, false)
            && self
                .state
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// One attempt at an exclusive hold; never waits. `registered` says the caller
    /// counted itself as a waiting writer ([`RwSpinLock::add_waiting_writer`]), which
    /// the hold then takes back.
    pub fn try_lock_exclusive(&self, registered: bool) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if blocks(s, true) {
            return false;
        }
        let next = if registered {
            (s | WRITER).wrapping_sub(WAITER_ONE)
        } else {
            s | WRITER
        };
        if self
            .state
            .compare_exchange(s, next, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let (pid, tid) = current_ids();
        self.owner_pid.store(pid, Ordering::Relaxed);
        self.owner_tid.store(tid, Ordering::Relaxed);
        self.held_since.store(now_micros(), Ordering::Release);
        true
    }

    /// Counts a writer as waiting, so that new readers hold back. False when the count
    /// is saturated (the writer then waits without preference).
    pub fn add_waiting_writer(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                (s & WAITERS != WAITERS).then(|| s + WAITER_ONE)
            })
            .is_ok()
    }

    /// Takes back [`RwSpinLock::add_waiting_writer`] (the writer gave up).
    pub fn remove_waiting_writer(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |s| {
                (s & WAITERS != 0).then(|| s - WAITER_ONE)
            });
        // Readers held back by this writer's preference may go now.
        self.wake_sleepers();
    }

    /// Takes the lock in shared mode, waiting as long as it takes (host-internal
    /// critical sections only: they are a few instructions long).
    pub fn lock_shared(&self) {
        let mut b = Backoff::default();
        while !self.try_lock_shared() {
            b.snooze(self, false);
        }
    }

    /// Releases a shared hold (never below zero readers).
    pub fn unlock_shared(&self) {
        let before = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |s| {
                (s & READERS != 0).then(|| s - 1)
            });
        // Only the last reader's release lets a writer in, and only a release from a
        // full reader count lets a reader in: the others wake nobody who could go.
        if let Ok(s) = before {
            if s & READERS == 1 || s & READERS == READERS {
                self.wake_sleepers();
            }
        }
    }

    /// Sleeps while the lock is not available in `exclusive` mode (or shared) and its
    /// word does not change, at most `timeout`; a release (or a writer giving up)
    /// wakes it.
    pub fn sleep_while_unavailable(&self, exclusive: bool, timeout: std::time::Duration) {
        // Counted before the word is read, and every release changes the word before
        // it reads the count (both sequentially consistent): either this sees the
        // release's word (and the kernel refuses to sleep on a stale one), or the
        // release sees this sleeper and wakes it.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let seen = self.state.load(Ordering::SeqCst);
        if blocks(seen, exclusive) {
            futex_wait(&self.state, seen, timeout);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the waiters asleep on the lock word, if any (after a release that may let
    /// one in).
    fn wake_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            futex_wake_all(&self.state);
        }
    }

    /// Takes the lock in exclusive mode, waiting as long as it takes (host-internal
    /// critical sections only).
    pub fn lock_exclusive(&self) {
        let mut b = Backoff::default();
        let registered = self.add_waiting_writer();
        while !self.try_lock_exclusive(registered) {
            b.snooze(self, true);
        }
    }

    /// Releases an exclusive hold (waiting writers stay counted).
    pub fn unlock_exclusive(&self) {
        self.owner_pid.store(0, Ordering::Relaxed);
        self.owner_tid.store(0, Ordering::Relaxed);
        self.held_since.store(0, Ordering::Relaxed);
        self.state.fetch_and(!WRITER, Ordering::SeqCst);
        self.wake_sleepers();
    }

    /// True while some writer holds the lock.
    pub fn held_exclusively(&self) -> bool {
        self.state.load(Ordering::Acquire) & WRITER != 0
    }

    /// Who holds the lock now.
    pub fn holder(&self) -> Holder {
        let s = self.state.load(Ordering::Acquire);
        let writer = s & WRITER != 0;
        Holder {
            pid: if writer {
                self.owner_pid.load(Ordering::Relaxed)
            } else {
                0
            },
            tid: if writer {
                self.owner_tid.load(Ordering::Relaxed)
            } else {
                0
            },
            since_micros: if writer {
                self.held_since.load(Ordering::Acquire)
            } else {
                0
            },
            readers: s & READERS,
            waiting_writers: (s & WAITERS) >> 16,
        }
    }
}

/// Bytes kept of an error message in shared memory.
pub const MESSAGE_CAPACITY: usize = 1000;

/// A short message (the last error) in shared memory.
#[repr(C)]
pub struct SharedMessage {
    lock: RwSpinLock,
    len: AtomicU32,
    bytes: std::cell::UnsafeCell<[u8; MESSAGE_CAPACITY]>,
}

// SAFETY: `bytes` is only accessed under `lock` (exclusive for writes, shared for reads).
unsafe impl Sync for SharedMessage {}

impl SharedMessage {
    /// Replaces the message (cut at a character boundary to fit).
    pub fn set(&self, msg: &str) {
        let n = walker_abi::text::cut_utf8(msg, MESSAGE_CAPACITY).len();
        self.lock.lock_exclusive();
        // SAFETY: the exclusive lock excludes every other reader and writer.
        unsafe { (&mut *self.bytes.get())[..n].copy_from_slice(&msg.as_bytes()[..n]) };
        self.len.store(n as u32, Ordering::Relaxed);
        self.lock.unlock_exclusive();
    }

    /// Reads the message; `None` when none was set.
    pub fn get(&self) -> Option<String> {
        self.lock.lock_shared();
        let n = (self.len.load(Ordering::Relaxed) as usize).min(MESSAGE_CAPACITY);
        // SAFETY: the shared lock excludes writers.
        let s = String::from_utf8_lossy(unsafe { &(&*self.bytes.get())[..n] }).into_owned();
        self.lock.unlock_shared();
        if n == 0 {
            None
        } else {
            Some(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An hour: a waiter that only its timeout could end would hang the test.
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[test]
    fn a_waiter_does_not_sleep_on_a_lock_it_may_take() {
        let l = RwSpinLock::default();
        // Free: neither mode sleeps (an hour's timeout would hang the test).
        l.sleep_while_unavailable(true, HOUR);
        l.sleep_while_unavailable(false, HOUR);
        // A reader holds it: another reader may enter, so it does not sleep either.
        assert!(l.try_lock_shared());
        l.sleep_while_unavailable(false, HOUR);
        l.unlock_shared();
        // A waiting writer alone does not keep a writer out.
        assert!(l.add_waiting_writer());
        l.sleep_while_unavailable(true, HOUR);
        l.remove_waiting_writer();
        assert_eq!(l.sleepers.load(Ordering::SeqCst), 0);
    }

    /// Starts a thread that sleeps on `l` with an hour's timeout and returns, once it
    /// counts as a sleeper (asleep in the kernel or about to be: a release must end
    /// its wait either way), a receiver that hears when it woke.
    fn sleeper(l: &'static RwSpinLock, exclusive: bool) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            l.sleep_while_unavailable(exclusive, HOUR);
            let _ = tx.send(());
        });
        while l.sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        rx
    }

    #[test]
    fn releases_wake_the_waiters_asleep_on_the_lock() {
        let ended = |rx: &std::sync::mpsc::Receiver<()>| {
            rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok()
        };
        // A writer holds it: a reader sleeps until the writer's release.
        let l: &'static RwSpinLock = Box::leak(Box::default());
        assert!(l.try_lock_exclusive(false));
        let r = sleeper(l, false);
        l.unlock_exclusive();
        assert!(ended(&r), "the reader was not woken by the release");
        // Readers hold it: a writer sleeps until the last reader's release.
        assert!(l.try_lock_shared() && l.try_lock_shared());
        let w = sleeper(l, true);
        l.unlock_shared();
        l.unlock_shared();
        assert!(ended(&w), "the writer was not woken by the releases");
        // A waiting writer holds readers back: it gives up, and they wake.
        assert!(l.add_waiting_writer());
        let r = sleeper(l, false);
        l.remove_waiting_writer();
        assert!(
            ended(&r),
            "the reader was not woken when the writer gave up"
        );
    }

    #[test]
    fn a_release_wakes_a_waiter_of_another_process() {
        // SAFETY: a fresh anonymous shared mapping of one lock, unmapped below; all
        // zero bytes are a free lock.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<RwSpinLock>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: the mapping is live, aligned (page) and large enough.
        let l = unsafe { &*(map as *const RwSpinLock) };
        assert!(l.try_lock_exclusive(false));
        // SAFETY: the child only sleeps on the shared lock word and `_exit`s.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            l.sleep_while_unavailable(false, HOUR);
            let free = !l.held_exclusively();
            // SAFETY: leaves the child at once, without the test harness's code.
            unsafe { libc::_exit(if free { 0 } else { 1 }) };
        }
        while l.sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        l.unlock_exclusive();
        let mut status = 0;
        // SAFETY: waits for the child just forked (woken by the release, not by its
        // hour-long timeout, or this test hangs).
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        // SAFETY: unmaps the mapping made above; `l` is not used after.
        unsafe { libc::munmap(map, std::mem::size_of::<RwSpinLock>()) };
    }

    #[test]
    fn cached_ids_are_the_kernels_and_a_forked_child_gets_its_own() {
        // SAFETY: plain system calls without arguments.
        let kernel = || unsafe { (libc::getpid(), libc::gettid()) };
        assert_eq!(current_ids(), kernel());
        // Cached now: the same answer again.
        assert_eq!(current_ids(), kernel());
        // SAFETY: the child only reads ids and a thread-local, then `_exit`s.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            // SAFETY: a plain system call without arguments.
            let parent = unsafe { libc::getppid() };
            let ok = current_ids() == kernel() && current_ids().0 != parent;
            // SAFETY: leaves the child at once, without running the test harness's code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child saw its parent's cached ids (status {status})"
        );
        assert_eq!(current_ids(), kernel());
    }
}
