//! The host's shared-memory layout and the lock-free or spin-locked types in it.
//!
//! Everything here is plain data with atomics, usable from any thread of any server
//! process (dispatch threads must not take PostgreSQL's LWLocks, which belong to a
//! process's main thread). The region is zeroed before use, so every type is valid at
//! all-zero bytes.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Alignment of every block in the layout (one cache line).
pub const ALIGN: usize = 64;

/// Rounds `n` up to [`ALIGN`], saturating.
pub fn align_up(n: usize) -> usize {
    n.saturating_add(ALIGN - 1) / ALIGN * ALIGN
}

/// A reader-writer lock living in shared memory, usable from any thread of any
/// server process (it never calls PostgreSQL).
///
/// State word: bit 31 is the writer, bits 16..=30 count waiting writers, bits 0..=15
/// count readers. Writers are preferred: a reader does not enter while a writer holds
/// the lock or waits for it, so a stream of view readers cannot starve the dispatch
/// thread that writes. Waiters spin briefly, then yield, then sleep with exponential
/// backoff (at most [`MAX_SLEEP`]); they never busy-wait for long.
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
}

const WRITER: u32 = 1 << 31;
const WAITER_ONE: u32 = 1 << 16;
const WAITERS: u32 = 0x7fff << 16;
const READERS: u32 = 0xffff;

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

/// Backoff of a waiter: a few spins, a few yields, then sleeps doubling up to
/// [`MAX_SLEEP`].
#[derive(Default)]
pub struct Backoff {
    rounds: u32,
}

impl Backoff {
    /// Waits a little longer than last time.
    pub fn snooze(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds < 64 {
            std::hint::spin_loop();
        } else if self.rounds < 72 {
            std::thread::yield_now();
        } else {
            let exp = (self.rounds - 72).min(8);
            let d = std::time::Duration::from_micros(20u64 << exp).min(MAX_SLEEP);
            std::thread::sleep(d);
        }
    }
}

thread_local! {
    /// (pid, tid) of a thread that never forks, remembered by
    /// [`remember_thread_ids`]; (0, 0) elsewhere.
    static THREAD_IDS: std::cell::Cell<(i32, i32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Remembers the calling thread's process and thread ids, so that taking a lock on it
/// costs no system call. Only for threads that never fork (the worker's dispatch
/// threads): a process's main thread may fork, and a child would inherit stale ids.
pub fn remember_thread_ids() {
    // SAFETY: plain system calls without arguments.
    let ids = unsafe { (libc::getpid(), libc::gettid()) };
    THREAD_IDS.with(|c| c.set(ids));
}

/// (pid, tid) of the calling thread.
pub fn current_ids() -> (i32, i32) {
    let cached = THREAD_IDS.with(|c| c.get());
    if cached.0 != 0 {
        return cached;
    }
    // SAFETY: plain system calls without arguments.
    unsafe { (libc::getpid(), libc::gettid()) }
}

fn now_micros() -> i64 {
    crate::host_api::now_micros()
}

impl RwSpinLock {
    /// One attempt at a shared hold; never waits. Fails while a writer holds the lock
    /// or waits for it (writer preference).
    pub fn try_lock_shared(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & (WRITER | WAITERS) == 0
            && s & READERS < READERS
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
        if s & (WRITER | READERS) != 0 {
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
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                (s & WAITERS != 0).then(|| s - WAITER_ONE)
            });
    }

    /// Takes the lock in shared mode, waiting as long as it takes (host-internal
    /// critical sections only: they are a few instructions long).
    pub fn lock_shared(&self) {
        let mut b = Backoff::default();
        while !self.try_lock_shared() {
            b.snooze();
        }
    }

    /// Releases a shared hold (never below zero readers).
    pub fn unlock_shared(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |s| {
                (s & READERS != 0).then(|| s - 1)
            });
    }

    /// Takes the lock in exclusive mode, waiting as long as it takes (host-internal
    /// critical sections only).
    pub fn lock_exclusive(&self) {
        let mut b = Backoff::default();
        let registered = self.add_waiting_writer();
        while !self.try_lock_exclusive(registered) {
            b.snooze();
        }
    }

    /// Releases an exclusive hold (waiting writers stay counted).
    pub fn unlock_exclusive(&self) {
        self.owner_pid.store(0, Ordering::Relaxed);
        self.owner_tid.store(0, Ordering::Relaxed);
        self.held_since.store(0, Ordering::Relaxed);
        self.state.fetch_and(!WRITER, Ordering::Release);
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

/// What a plugin is doing, as `walker.plugins` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PluginState {
    /// The library could not be loaded or its ABI was refused.
    NotLoaded = 0,
    /// Loaded; the worker has not started delivering records.
    Loaded = 1,
    /// Receiving records.
    Running = 2,
    /// Returned an error or panicked (in `init` or later); no longer called.
    Failed = 3,
    /// The worker stopped.
    Stopped = 4,
    /// A callback overran `walker.plugin_timeout`: the plugin is being cut off (no more
    /// records; its position no longer holds the walk back). Becomes `Failed` at the
    /// worker's next round.
    Stalled = 5,
}

impl PluginState {
    /// The SQL-visible word.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::NotLoaded => "not loaded",
            PluginState::Loaded => "loaded",
            PluginState::Running => "running",
            PluginState::Failed => "failed",
            PluginState::Stopped => "stopped",
            PluginState::Stalled => "stalled",
        }
    }

    fn from_u32(v: u32) -> PluginState {
        match v {
            1 => PluginState::Loaded,
            2 => PluginState::Running,
            3 => PluginState::Failed,
            4 => PluginState::Stopped,
            5 => PluginState::Stalled,
            _ => PluginState::NotLoaded,
        }
    }
}

/// Per-plugin counters and state in shared memory.
#[repr(C)]
pub struct PluginShared {
    state: AtomicU32,
    /// Records delivered to the plugin.
    pub records: AtomicU64,
    /// Callbacks that returned an error or panicked.
    pub errors: AtomicU64,
    /// End LSN of the last record the plugin processed.
    pub processed_lsn: AtomicU64,
    /// Last error message.
    pub last_error: SharedMessage,
    /// Where the plugin's state could be rebuilt from after a crash: its last durable
    /// snapshot (or the empty start) for a plugin with snapshots, else `processed_lsn`.
    /// walker's slot never moves past the lowest of these.
    pub durable_lsn: AtomicU64,
    /// LSN of the last snapshot written or restored (0: none).
    pub snapshot_lsn: AtomicU64,
    /// When that snapshot was written, microseconds since the Unix epoch.
    pub snapshot_at: AtomicI64,
    /// Snapshots written since shared memory was created.
    pub snapshots: AtomicU64,
    /// 1 when the plugin started empty although it keeps snapshots.
    pub started_empty: AtomicU32,
    /// How the plugin's state started: restored from which snapshot, or empty and why.
    pub start_note: SharedMessage,
    /// When a lock wait on the plugin's region last gave up and was logged
    /// (microseconds since the Unix epoch), to log at most once a second.
    pub lock_reported_at: AtomicI64,
}

impl PluginShared {
    /// Current state.
    pub fn state(&self) -> PluginState {
        PluginState::from_u32(self.state.load(Ordering::Acquire))
    }
    /// Sets the state.
    pub fn set_state(&self, s: PluginState) {
        self.state.store(s as u32, Ordering::Release);
    }
}

/// What the worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    /// Not running.
    Stopped = 0,
    /// Starting up.
    Starting = 1,
    /// Reading WAL.
    Walking = 2,
    /// Caught up, waiting for more WAL.
    Idle = 3,
    /// `walker.enabled` is off.
    Paused = 4,
}

impl WorkerState {
    /// The SQL-visible word.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Stopped => "stopped",
            WorkerState::Starting => "starting",
            WorkerState::Walking => "walking",
            WorkerState::Idle => "idle",
            WorkerState::Paused => "paused",
        }
    }
    fn from_u32(v: u32) -> Self {
        match v {
            1 => WorkerState::Starting,
            2 => WorkerState::Walking,
            3 => WorkerState::Idle,
            4 => WorkerState::Paused,
            _ => WorkerState::Stopped,
        }
    }
}

/// Host-wide state in shared memory.
#[repr(C)]
pub struct HostShared {
    /// [`HostShared::MAGIC`] once initialised.
    pub magic: AtomicU64,
    worker_state: AtomicU32,
    /// Worker's process id (0 when not running).
    pub worker_pid: AtomicI32,
    /// When the worker started, microseconds since the Unix epoch.
    pub started_at: AtomicI64,
    /// LSN the worker started reading at.
    pub start_lsn: AtomicU64,
    /// End of the last record read.
    pub read_lsn: AtomicU64,
    /// End of the last record every running plugin processed.
    pub processed_lsn: AtomicU64,
    /// Flush (or replay) LSN the worker last saw.
    pub flush_lsn: AtomicU64,
    /// Records read since start.
    pub records: AtomicU64,
    /// Bytes of records read since start.
    pub bytes: AtomicU64,
    /// Records per second over the last measuring interval, as `f64` bits.
    pub rate_bits: AtomicU64,
    /// Times the worker started (1 after the first start).
    pub starts: AtomicU64,
    /// Last read error.
    pub last_error: SharedMessage,
    /// Restart LSN of walker's replication slot (0 without a slot).
    pub slot_lsn: AtomicU64,
    /// WAL ranges walker could not read (released past the retention bound, or removed).
    pub gaps: AtomicU64,
    /// The last gap: range and reason.
    pub last_gap: SharedMessage,
    /// Times shared memory was created anew after a crash of some server process (the
    /// postmaster's crash restarts), so the worker's restarts survive them in the view.
    pub crash_restarts: AtomicU64,
    /// Requests to the services worker and the facts it publishes (ABI 1.2).
    pub services: crate::services::Services,
    /// Set by `walker.drop_slot()`: the worker releases its slot, stops walking and
    /// does not create the slot again until the server restarts.
    pub slot_drop_requested: AtomicU32,
    /// Set by the worker once it released its slot after a drop request.
    pub slot_released: AtomicU32,
    /// LSN of an invalid WAL record the reader keeps failing on, below the end of the
    /// WAL (so it will not become valid); 0 when the reader is not stuck.
    pub bad_wal_lsn: AtomicU64,
    /// Times the reader failed on invalid WAL (each retry counts).
    pub bad_wal_total: AtomicU64,
    /// The reader's message for that record.
    pub bad_wal_message: SharedMessage,
}

impl HostShared {
    /// Marks an initialised header.
    pub const MAGIC: u64 = 0x5741_4c4b_4552_0001; // "WALKER" v1

    /// Current worker state.
    pub fn worker_state(&self) -> WorkerState {
        WorkerState::from_u32(self.worker_state.load(Ordering::Acquire))
    }
    /// Sets the worker state.
    pub fn set_worker_state(&self, s: WorkerState) {
        self.worker_state.store(s as u32, Ordering::Release);
    }
    /// Records per second.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
    /// Sets records per second.
    pub fn set_rate(&self, r: f64) {
        self.rate_bits.store(r.to_bits(), Ordering::Relaxed);
    }
}

/// Header in front of each plugin's region.
#[repr(C)]
pub struct RegionHeader {
    /// The region's lock (the host API's lock_shared / lock_exclusive).
    pub lock: RwSpinLock,
    /// Size of the region after the header.
    pub size: AtomicU64,
}

/// Offsets of everything in the host's shared-memory segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Offset of [`HostShared`] (always 0).
    pub host: usize,
    /// Offset of plugin `i`'s [`PluginShared`].
    pub plugin_shared: Vec<usize>,
    /// Offset of plugin `i`'s [`RegionHeader`], when it asked for shared memory.
    pub region_header: Vec<Option<usize>>,
    /// Offset of plugin `i`'s region, when it asked for shared memory.
    pub region: Vec<Option<usize>>,
    /// Size plugin `i` asked for (0 when none).
    pub region_sizes: Vec<usize>,
    /// Total bytes.
    pub total: usize,
}

impl Layout {
    /// Lays out the host header, one [`PluginShared`] per listed plugin, and a region
    /// for each plugin whose size is `Some(n)` with `n > 0`.
    pub fn compute(region_sizes: &[Option<usize>]) -> Layout {
        let mut off = align_up(std::mem::size_of::<HostShared>());
        let mut plugin_shared = Vec::new();
        for _ in region_sizes {
            plugin_shared.push(off);
            off = off.saturating_add(align_up(std::mem::size_of::<PluginShared>()));
        }
        let mut region_header = Vec::new();
        let mut region = Vec::new();
        for s in region_sizes {
            match s {
                Some(n) if *n > 0 => {
                    region_header.push(Some(off));
                    off = off.saturating_add(align_up(std::mem::size_of::<RegionHeader>()));
                    region.push(Some(off));
                    off = off.saturating_add(align_up(*n));
                }
                _ => {
                    region_header.push(None);
                    region.push(None);
                }
            }
        }
        let region_sizes = region_sizes.iter().map(|s| s.unwrap_or(0)).collect();
        Layout {
            host: 0,
            plugin_shared,
            region_header,
            region,
            region_sizes,
            total: off,
        }
    }

    /// Size plugin `i` asked for.
    pub fn region_size(&self, i: usize) -> usize {
        self.region_sizes.get(i).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn layout_is_aligned_and_disjoint() {
        let l = Layout::compute(&[Some(100), None, Some(1), Some(0)]);
        let host = align_up(std::mem::size_of::<HostShared>());
        let ps = align_up(std::mem::size_of::<PluginShared>());
        assert_eq!(
            l.plugin_shared,
            vec![host, host + ps, host + 2 * ps, host + 3 * ps]
        );
        let first_region_header = host + 4 * ps;
        let rh = align_up(std::mem::size_of::<RegionHeader>());
        assert_eq!(l.region_header[0], Some(first_region_header));
        assert_eq!(l.region[0], Some(first_region_header + rh));
        assert_eq!(l.region[1], None);
        // 100 bytes round up to 128.
        assert_eq!(l.region_header[2], Some(first_region_header + rh + 128));
        assert_eq!(l.region[3], None, "a zero-byte request gets no region");
        assert_eq!(l.total, first_region_header + rh + 128 + rh + 64);
        for o in l.plugin_shared.iter().chain(l.region.iter().flatten()) {
            assert_eq!(o % ALIGN, 0);
        }
    }

    #[test]
    fn align_saturates() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 64);
        assert_eq!(align_up(64), 64);
        // Saturates at the largest multiple of 64 instead of overflowing.
        assert_eq!(align_up(usize::MAX), usize::MAX - 63);
    }

    #[test]
    fn message_is_cut_at_char_boundary() {
        // SAFETY: all-zero is a valid SharedMessage.
        let m: Box<SharedMessage> = Box::new(unsafe { std::mem::zeroed() });
        assert_eq!(m.get(), None);
        m.set("boom");
        assert_eq!(m.get().as_deref(), Some("boom"));
        let long = "é".repeat(MESSAGE_CAPACITY); // 2 bytes each
        m.set(&long);
        let got = m.get().unwrap();
        assert_eq!(got.len(), MESSAGE_CAPACITY);
        assert!(got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn rw_lock_excludes_writers() {
        let lock = Arc::new(RwSpinLock::default());
        let counter = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (lock, counter) = (lock.clone(), counter.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..10_000 {
                    lock.lock_exclusive();
                    // Non-atomic read-modify-write under the lock.
                    let v = counter.load(Ordering::Relaxed);
                    counter.store(v + 1, Ordering::Relaxed);
                    lock.unlock_exclusive();
                    lock.lock_shared();
                    lock.unlock_shared();
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 40_000);
    }
}
