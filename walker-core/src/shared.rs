//! The host's shared-memory layout and the lock-free or spin-locked types in it.
//!
//! Everything here is plain data with atomics, usable from any thread of any server
//! process (dispatch threads must not take PostgreSQL's LWLocks, which belong to a
//! process's main thread). The region is zeroed before use, so every type is valid at
//! all-zero bytes.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

pub use crate::spinlock::{
    current_ids, remember_thread_ids, Backoff, Holder, RwSpinLock, SharedMessage, MAX_SLEEP,
    MESSAGE_CAPACITY,
};

/// Alignment of every block in the layout (one cache line).
pub const ALIGN: usize = 64;

/// Rounds `n` up to [`ALIGN`], saturating.
pub fn align_up(n: usize) -> usize {
    n.saturating_add(ALIGN - 1) / ALIGN * ALIGN
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
