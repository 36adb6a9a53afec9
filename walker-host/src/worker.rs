//! The walker background worker: reads WAL on its main thread, hands batches to the
//! dispatch threads, moves its replication slot behind the slowest plugin, keeps
//! `walker.status` current, and sleeps on its latch when caught up.

use crate::{gucs, logging, shmem, slot, wal};
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::{pg_sys, PgTryBuilder};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use walker_core::batch::BatchBuilder;
use walker_core::dispatch::Dispatcher;
use walker_core::host_api::{now_micros, set_rmgr_names};
use walker_core::persistence::{self, SnapshotConfig, StartFacts, Started};
use walker_core::registry;
use walker_core::retention::{oldest_available, release_point};
use walker_core::rows::format_lsn;
use walker_core::shared::{HostShared, PluginState, WorkerState};

/// Most bytes of record data copied into one batch.
const BATCH_BYTES: usize = 8 << 20;
/// Records a new batch has room for before it grows (a walk through a backlog fills
/// batches; a caught-up worker sends small ones, which should not cost large buffers).
const PRESIZED_RECORDS: usize = 1024;
/// Bytes a new batch has room for before it grows.
const PRESIZED_BYTES: usize = 1 << 20;

/// How filling a batch ended.
enum Filled {
    /// It holds as many records or bytes as a batch may.
    Full,
    /// The WAL written so far ends here.
    EndOfWal,
    /// The record at `lsn` was read but not decoded ([`wal::Read::Skipped`]).
    Skipped { lsn: u64, end: u64 },
    /// Reading failed (the reader's message, or an ERROR caught).
    Failed(String),
}
/// The longest one plugin callback may hold up the worker's exit (see `run`).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// How often invalid WAL the reader keeps failing on is logged and counted.
const BAD_WAL_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the slot is written to disk while walking.
const SLOT_SAVE_INTERVAL: Duration = Duration::from_secs(10);

/// Registers the worker (from `_PG_init`).
pub fn register() {
    BackgroundWorkerBuilder::new("walker")
        .set_type("walker")
        .set_function("walker_worker_main")
        .set_library("walker")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Entry point of the background worker.
#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn walker_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let Some(host) = shmem::host() else {
        pgrx::warning!("walker: shared memory is not initialised; the worker exits");
        return;
    };
    // An ERROR that escapes the walk is recorded for walker.status before the worker
    // exits; the postmaster restarts it after the restart interval.
    PgTryBuilder::new(AssertUnwindSafe(|| run(host)))
        .catch_others(|e| {
            if let Some(host) = shmem::host() {
                let msg = format!(
                    "the worker stopped on an error and restarts in 5 s: {}",
                    slot::caught_message(&e)
                );
                host.last_error.set(&msg);
                host.set_worker_state(WorkerState::Stopped);
                host.worker_pid.store(0, Ordering::Relaxed);
            }
            e.rethrow()
        })
        .execute();
    // Exit code 1: the postmaster restarts the worker unless the server is shutting
    // down, so a stray SIGTERM never stops walking for good.
    // SAFETY: ends the process the PostgreSQL way, running its exit callbacks.
    unsafe { pg_sys::proc_exit(1) };
}

/// Records a WAL range walker could not read, and moves every plugin's position past it.
fn record_gap(host: &HostShared, from: u64, to: u64, why: &str) {
    let msg = format!("{} .. {}: {why}", format_lsn(from), format_lsn(to));
    pgrx::warning!("walker: skipped WAL {msg}");
    host.gaps.fetch_add(1, Ordering::Relaxed);
    host.last_gap.set(&msg);
    for s in registry::all() {
        if let Some(sh) = s.shared() {
            sh.processed_lsn.fetch_max(to, Ordering::AcqRel);
        }
    }
    host.processed_lsn.fetch_max(to, Ordering::AcqRel);
}

/// Releases WAL past `walker.max_retained_wal` (main thread): records the gap, moves
/// the slot. Returns where the reader must continue, when something was released.
/// Called on every path of the worker (at start before anything else, on every step
/// whether walking, paused or idle, and while the reader waits for a slow plugin), so
/// the bound holds whenever the worker runs.
fn release_retention(host: &HostShared) -> Option<u64> {
    let processed = host.processed_lsn.load(Ordering::Acquire);
    // Nothing processed yet (at start): the slot's position is what is held.
    let held_from = match processed {
        0 => slot::restart_lsn(),
        p => p,
    };
    if held_from == 0 {
        return None;
    }
    let durable = wal::durable_lsn();
    // SAFETY: reading a server global on the main thread.
    let seg = unsafe { pg_sys::wal_segment_size } as u64;
    let to = release_point(held_from, durable, gucs::max_retained_bytes(), seg)?;
    let why = format!("walker held back more than walker.max_retained_wal ({} MB); the WAL in between was released unread", gucs::MAX_RETAINED_WAL_MB.get());
    record_gap(host, held_from, to, &why);
    slot::advance(to, true);
    host.slot_lsn.store(slot::restart_lsn(), Ordering::Relaxed);
    Some(to)
}

/// Lowest position among the plugins still receiving records (or `read` without any).
fn processed_position(dispatcher: &Dispatcher, read: u64) -> u64 {
    dispatcher.processed_lsn().unwrap_or(read)
}

/// `walker.naptime` in ms (at least 10): the longest nap once caught up.
fn naptime_ms() -> u64 {
    gucs::NAPTIME_MS.get().max(10) as u64
}

struct Walk {
    host: &'static HostShared,
    dispatcher: Dispatcher,
    reader: wal::WalReader,
    /// Where to (re)position the reader; `None` when positioned.
    seek_to: Option<u64>,
    stopping: bool,
    rate_since: Instant,
    rate_records: u64,
    slot_saved: Instant,
    /// When plugins last saved snapshots.
    snapshot_saved: Instant,
    /// A snapshot is due (after a checkpoint record or a gap).
    snapshot_due: bool,
    /// A record skipped because it crashed the worker, to record as a gap once the
    /// batch before it is handed over: (start, end, crashes, signal).
    skipped: Option<(u64, u64, u32, u32)>,
    /// When invalid WAL was last logged (`None`: the reader is not stuck on any).
    bad_wal_reported: Option<Instant>,
    /// The last nap once caught up (ms; see `walker_core::pacing`).
    idle_nap_ms: u64,
    /// When plugins were last told the walker caught up.
    idle_told: Option<Instant>,
}

impl Walk {
    fn nap(&mut self, state: WorkerState) {
        self.nap_for(state, naptime_ms());
    }

    fn nap_for(&mut self, state: WorkerState, ms: u64) {
        self.host.set_worker_state(state);
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(ms))) {
            self.stopping = true;
        }
    }

    /// Releases WAL past the retention bound: the slot moves, the gap is recorded, the
    /// reader continues after it.
    fn enforce_retention(&mut self) {
        if let Some(to) = release_retention(self.host) {
            self.seek_to = Some(to);
            self.snapshot_due = true;
        }
    }

    /// Recovers from a read error: if the WAL at the reader's position is gone, record
    /// the gap and continue at the oldest WAL still on disk.
    fn recover(&mut self, msg: String) {
        let at = self.seek_to.unwrap_or_else(|| self.reader.position());
        self.reader = wal::WalReader::new();
        // SAFETY: reading server state on the main thread.
        let (removed, seg) = unsafe {
            (
                pg_sys::XLogGetLastRemovedSegno(),
                pg_sys::wal_segment_size as u64,
            )
        };
        let oldest = oldest_available(removed, seg);
        if removed > 0 && at < oldest {
            record_gap(self.host, at, oldest, "the WAL was removed before walker read it (walker had no replication slot holding it)");
            slot::advance(oldest, true);
            self.seek_to = Some(oldest);
            self.snapshot_due = true;
        } else {
            self.seek_to = Some(at);
            self.report_bad_wal(at, &msg);
        }
    }

    /// The reader cannot find a record at `at` (the seek found none). Below the end of
    /// the WAL that is invalid WAL, not the end of it: find the reader's message and
    /// report it.
    fn check_bad_wal(&mut self, at: u64) {
        if at >= wal::durable_lsn() {
            return;
        }
        let reader = &mut self.reader;
        let probed = PgTryBuilder::new(AssertUnwindSafe(|| reader.probe(at)))
            .catch_others(|e| Some(slot::caught_message(&e)))
            .execute();
        if let Some(msg) = probed {
            self.report_bad_wal(at, &msg);
        }
    }

    /// Invalid WAL at `at` below the end of the WAL (corrupt WAL, `pg_resetwal`): it
    /// will not become valid by waiting. Shown in `walker.status` at once, logged and
    /// counted every [`BAD_WAL_REPORT_INTERVAL`] while the reader keeps failing on it
    /// (until `walker.max_retained_wal` releases the WAL past it as a gap).
    fn report_bad_wal(&mut self, at: u64, msg: &str) {
        let h = self.host;
        let m = format!("invalid WAL record at {}: {msg}", format_lsn(at));
        let new = h.bad_wal_lsn.swap(at, Ordering::AcqRel) != at;
        h.bad_wal_message.set(&m);
        h.last_error.set(&m);
        let due = self
            .bad_wal_reported
            .is_none_or(|t| t.elapsed() >= BAD_WAL_REPORT_INTERVAL);
        if new || due {
            self.bad_wal_reported = Some(Instant::now());
            h.bad_wal_total.fetch_add(1, Ordering::Relaxed);
            pgrx::warning!(
                "walker: {m}; the WAL up to {} is written, so this record will not become valid. walker retries every {} s and keeps the WAL from here until walker.max_retained_wal is reached, then skips past it as a gap. Check the WAL with pg_waldump; if the server's WAL was reset (pg_resetwal) or restored from elsewhere, call walker.drop_slot() and restart",
                format_lsn(wal::durable_lsn()),
                BAD_WAL_REPORT_INTERVAL.as_secs()
            );
        }
    }

    /// The reader read a record: any invalid-WAL report is over.
    fn clear_bad_wal(&mut self) {
        let was = self.host.bad_wal_lsn.swap(0, Ordering::AcqRel);
        if was != 0 {
            self.bad_wal_reported = None;
            pgrx::log!(
                "walker: reading again after the invalid WAL at {}",
                format_lsn(was)
            );
        }
    }

    fn position(&mut self) -> bool {
        let Some(want) = self.seek_to else {
            return true;
        };
        let reader = &mut self.reader;
        let found = PgTryBuilder::new(AssertUnwindSafe(|| Ok(reader.seek(want))))
            .catch_others(|e| Err(slot::caught_message(&e)))
            .execute();
        match found {
            Ok(Some(first)) => {
                self.seek_to = None;
                let h = self.host;
                if h.start_lsn.load(Ordering::Acquire) == 0 {
                    h.start_lsn.store(first, Ordering::Release);
                }
                h.read_lsn.store(first, Ordering::Release);
                if h.processed_lsn.load(Ordering::Acquire) < first {
                    h.processed_lsn.store(first, Ordering::Release);
                }
                true
            }
            Ok(None) => {
                self.check_bad_wal(want);
                false
            }
            Err(msg) => {
                self.recover(msg);
                false
            }
        }
    }

    fn read_batch(&mut self) -> (BatchBuilder, bool) {
        let max_records = gucs::BATCH_RECORDS.get().max(1) as usize;
        let mut batch =
            BatchBuilder::with_capacity(max_records.min(PRESIZED_RECORDS), PRESIZED_BYTES)
                .wanting(self.dispatcher.wanted_rmgrs());
        // One error trap for the whole batch, not one per record.
        let filled = {
            let b = &mut batch;
            let this = &mut *self;
            PgTryBuilder::new(AssertUnwindSafe(|| this.fill(b, max_records)))
                .catch_others(|e| Filled::Failed(slot::caught_message(&e)))
                .execute()
        };
        match filled {
            Filled::Full => (batch, false),
            Filled::Skipped { lsn, end } => {
                if let Some(s) = self.skipped.as_mut() {
                    s.0 = lsn;
                    s.1 = end;
                }
                (batch, false)
            }
            Filled::EndOfWal => (batch, true),
            Filled::Failed(msg) => {
                // A record the error interrupted is not delivered.
                batch.discard_open_record();
                if batch.is_empty() {
                    self.recover(msg);
                } else {
                    // Deliver what was read; the next round meets the error again.
                    self.seek_to = Some(self.reader.position());
                }
                (batch, true)
            }
        }
    }

    /// Reads records into `batch` until it is full, the WAL ends, a record is skipped
    /// or reading fails.
    fn fill(&mut self, batch: &mut BatchBuilder, max_records: usize) -> Filled {
        loop {
            if batch.len() >= max_records || batch.data_bytes() >= BATCH_BYTES {
                return Filled::Full;
            }
            match self.reader.read(batch) {
                wal::Read::Record => {
                    if batch.len() == 1 {
                        self.clear_bad_wal();
                    }
                }
                wal::Read::Skipped { lsn, end } => return Filled::Skipped { lsn, end },
                wal::Read::EndOfWal => return Filled::EndOfWal,
                wal::Read::Error(msg) => return Filled::Failed(msg),
            }
        }
    }

    fn publish(&mut self) {
        let h = self.host;
        let read = self.reader.position();
        if read != 0 {
            h.read_lsn.store(read, Ordering::Release);
        }
        let read = h.read_lsn.load(Ordering::Acquire);
        let processed = processed_position(&self.dispatcher, read);
        h.processed_lsn.fetch_max(processed, Ordering::AcqRel);
        let save = self.slot_saved.elapsed() >= SLOT_SAVE_INTERVAL;
        if save {
            self.slot_saved = Instant::now();
        }
        // The slot keeps the WAL from the oldest point some plugin's state could be
        // rebuilt from (its last snapshot), never just from what it processed.
        slot::advance(self.dispatcher.durable_lsn().unwrap_or(read), save);
        h.slot_lsn.store(slot::restart_lsn(), Ordering::Relaxed);
        h.flush_lsn.store(wal::durable_lsn(), Ordering::Relaxed);
        wal::refresh_history();
        let elapsed = self.rate_since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let now = h.records.load(Ordering::Relaxed);
            h.set_rate(now.saturating_sub(self.rate_records) as f64 / elapsed.as_secs_f64());
            self.rate_since = Instant::now();
            self.rate_records = now;
        }
        logging::drain();
    }

    /// Asks plugins with state to save a snapshot when one is due: after a checkpoint
    /// record or a gap, and every `walker.snapshot_interval`.
    fn maybe_save(&mut self) {
        let interval = gucs::SNAPSHOT_INTERVAL_S.get();
        let timed =
            interval > 0 && self.snapshot_saved.elapsed() >= Duration::from_secs(interval as u64);
        if self.stopping || !(self.snapshot_due || timed) {
            return;
        }
        // Handed over without waiting: a lane whose queue is full keeps it in its backlog.
        self.dispatcher.save();
        self.snapshot_due = false;
        self.snapshot_saved = Instant::now();
    }

    fn step(&mut self) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way to reload settings in a background worker.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // SAFETY: main thread.
            unsafe { registry::refresh_settings() };
            crate::locks_edge::refresh();
        }
        crate::locks_edge::maybe_inject_error(self.host.starts.load(Ordering::Relaxed));
        if BackgroundWorker::sigterm_received()
            || self.host.slot_drop_requested.load(Ordering::Acquire) != 0
        {
            self.stopping = true;
            return;
        }
        for m in self.dispatcher.watch(gucs::plugin_timeout()) {
            pgrx::warning!("walker: {m}");
        }
        self.enforce_retention();
        if !gucs::ENABLED.get() {
            self.publish();
            return self.nap(WorkerState::Paused);
        }
        if !self.dispatcher.ready() {
            // A lane's queue is full: wait a bounded moment for room, then go round
            // again (signals, the timeout watch and retention are acted on meanwhile).
            self.host.set_worker_state(WorkerState::Walking);
            self.dispatcher.pump(Duration::from_millis(100));
            self.publish();
            return;
        }
        if !self.position() {
            self.publish();
            return self.nap(WorkerState::Idle);
        }
        let (batch, caught_up) = self.read_batch();
        let found = !batch.is_empty();
        if found {
            let batch = Arc::new(batch.finish());
            let (bytes, n) = (batch.read_bytes, batch.read_records);
            self.snapshot_due |= batch.has_checkpoint();
            self.host.set_worker_state(WorkerState::Walking);
            self.dispatcher.send(batch);
            self.host.records.fetch_add(n, Ordering::Relaxed);
            self.host.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some((lsn, end, crashes, signal)) = self.skipped {
            if end != 0 {
                self.skipped = None;
                let why = format!(
                    "the walker worker crashed {crashes} times (signal {signal}, {}) reading the record at {}; it was skipped so the walk goes on. Report it with the output of pg_waldump for this range",
                    walker_core::crash::signal_name(signal),
                    format_lsn(lsn)
                );
                record_gap(self.host, lsn, end, &why);
                self.snapshot_due = true;
            }
        }
        self.maybe_save();
        self.publish();
        if caught_up && !self.stopping {
            let since = self.idle_told.map(|t| t.elapsed().as_millis() as u64);
            if walker_core::pacing::idle_due(found, since) {
                self.dispatcher.idle(self.reader.position());
                self.idle_told = Some(Instant::now());
            }
            // Short naps while WAL flows, the long one only when idle.
            self.idle_nap_ms =
                walker_core::pacing::next_nap_ms(self.idle_nap_ms, found, naptime_ms());
            self.nap_for(WorkerState::Idle, self.idle_nap_ms);
        }
    }
}

/// Where snapshots live (`$PGDATA/walker`) and this cluster's identity.
fn snapshot_config() -> SnapshotConfig {
    // SAFETY: DataDir is set before any worker starts; GetSystemIdentifier reads the
    // control file copy in shared memory. Main thread.
    let (dir, system_id) = unsafe {
        let d = std::ffi::CStr::from_ptr(pg_sys::DataDir)
            .to_string_lossy()
            .into_owned();
        (
            std::path::PathBuf::from(d).join("walker"),
            pg_sys::GetSystemIdentifier(),
        )
    };
    SnapshotConfig { dir, system_id }
}

fn run(host: &'static HostShared) {
    host.set_worker_state(WorkerState::Starting);
    // SAFETY: reading the process id global on the main thread.
    host.worker_pid
        .store(unsafe { pg_sys::MyProcPid }, Ordering::Relaxed);
    host.started_at.store(now_micros(), Ordering::Relaxed);
    host.starts.fetch_add(1, Ordering::Relaxed);
    // The crash ledger learns which thread is the reader; plugin crashes on the lanes
    // and the reader's own are caught by the fatal-signal handler (walker_core::crash).
    let ledger = walker_core::crash::ledger();
    if let Some(l) = ledger {
        // Threads of an earlier worker process are gone (pthread ids repeat across
        // processes, and a stuck callback's start time would read as overdue).
        l.reset_after_restart();
        l.reader.bind_current_thread();
        walker_core::crash::install_handler();
    }
    // Before any dispatch thread can take a plugin lock: an exit releases its holds.
    crate::locks_edge::ensure_exit_callback();
    set_rmgr_names(wal::rmgr_names());
    // SAFETY: the worker's main thread is where settings change.
    unsafe { registry::refresh_settings() };

    if host.slot_drop_requested.load(Ordering::Acquire) != 0 {
        return stay_stopped_without_slot(host);
    }
    let (slot_lsn, slot_created) = match slot::acquire() {
        Ok(l) => l,
        Err(msg) => {
            pgrx::warning!("walker: {msg}; walking without WAL retention");
            host.last_error.set(&msg);
            (0, false)
        }
    };
    // The bound holds from the first moment, even if the start fails further on.
    release_retention(host);
    let snapshots = snapshot_config();
    if let Err(e) = std::fs::create_dir_all(&snapshots.dir) {
        let msg = format!(
            "cannot create the snapshot directory {}: {e}; plugin state will not survive a restart",
            snapshots.dir.display()
        );
        pgrx::warning!("walker: {msg}");
        host.last_error.set(&msg);
    }
    wal::refresh_history();
    // Each plugin's state: restored from its snapshot, or empty, or (without
    // snapshots) continuing where it was in shared memory.
    let facts = StartFacts {
        slot_created,
        wal_end: wal::durable_lsn(),
    };
    let plugins: Vec<_> = registry::all()
        .into_iter()
        .filter(|s| s.usable() && s.shared().is_some_and(|x| x.state() != PluginState::Failed))
        .collect();
    let started: Vec<Started> = plugins
        .iter()
        .map(|&s| {
            persistence::restore(s, &snapshots, facts, &mut |m| pgrx::warning!("walker: {m}"))
        })
        .collect();
    // Plugins starting empty read from where the slot keeps WAL (else this server's
    // position, else the last checkpoint); the walk starts at the lowest resume point.
    let previous = host.processed_lsn.load(Ordering::Acquire);
    let fallback = [slot_lsn, previous]
        .into_iter()
        .find(|&l| l != 0)
        .unwrap_or_else(wal::redo_lsn);
    let start = persistence::walk_start(&started, fallback);
    for (s, how) in plugins.iter().zip(&started) {
        if let (Started::Empty, Some(sh)) = (how, s.shared()) {
            sh.durable_lsn.store(start, Ordering::Release);
        }
    }
    host.processed_lsn.store(start, Ordering::Release);
    let dispatcher = match Dispatcher::start(
        &registry::all(),
        gucs::QUEUE_BATCHES.get() as usize,
        Some(Arc::new(snapshots)),
    ) {
        Ok(d) => d,
        Err(e) => {
            pgrx::warning!("walker: could not start dispatch threads: {e}");
            host.set_worker_state(WorkerState::Stopped);
            return;
        }
    };
    pgrx::log!(
        "walker: worker started at {} with {} running plugin(s)",
        format_lsn(start),
        dispatcher.len()
    );

    let mut reader = wal::WalReader::new();
    let mut skipped = None;
    if let Some(walker_core::crash::ReaderVerdict::Skip {
        lsn,
        crashes,
        signal,
    }) = ledger.map(|l| l.reader.verdict())
    {
        pgrx::warning!(
            "walker: the worker crashed {crashes} times reading the record at {}; skipping that record",
            format_lsn(lsn)
        );
        reader.skip_record_at(lsn);
        skipped = Some((lsn, 0, crashes, signal));
    }
    let mut walk = Walk {
        host,
        dispatcher,
        reader,
        seek_to: Some(start),
        stopping: false,
        rate_since: Instant::now(),
        rate_records: host.records.load(Ordering::Relaxed),
        slot_saved: Instant::now(),
        snapshot_saved: Instant::now(),
        snapshot_due: false,
        skipped,
        bad_wal_reported: None,
        idle_nap_ms: 0,
        idle_told: None,
    };
    while !walk.stopping {
        walk.step();
    }

    let Walk {
        dispatcher, reader, ..
    } = walk;
    pgrx::log!(
        "walker: worker stopping at {}",
        format_lsn(reader.position())
    );
    // The lanes drain their queues and save a last snapshot; the slot moves to what
    // they made durable.
    // A callback gets at most SHUTDOWN_WAIT at shutdown, whatever walker.plugin_timeout
    // says: the server's fast shutdown waits for this worker.
    let (durable, cut) = dispatcher.stop(gucs::plugin_timeout().min(SHUTDOWN_WAIT));
    for m in cut {
        pgrx::warning!("walker: {m}");
    }
    let durable = durable.unwrap_or(reader.position());
    if host.slot_drop_requested.load(Ordering::Acquire) != 0 {
        slot::release();
        return stay_stopped_without_slot(host);
    }
    slot::advance(durable, true);
    slot::release();
    host.set_worker_state(WorkerState::Stopped);
    host.worker_pid.store(0, Ordering::Relaxed);
    logging::drain();
}

/// After `walker.drop_slot()`: the worker holds no slot and walks no more; it stays
/// (exiting would make the postmaster restart it, which would create the slot again)
/// until the server stops. A server restart with walker still preloaded starts over
/// with a new slot.
fn stay_stopped_without_slot(host: &'static HostShared) {
    host.slot_lsn.store(0, Ordering::Relaxed);
    host.slot_released.store(1, Ordering::Release);
    host.set_worker_state(WorkerState::Stopped);
    host.last_error.set("walker.drop_slot() dropped walker's replication slot: the worker walks no more until the server restarts (remove walker from shared_preload_libraries before that to remove walker)");
    logging::drain();
    while !BackgroundWorker::sigterm_received() {
        BackgroundWorker::wait_latch(Some(Duration::from_secs(1)));
    }
    host.worker_pid.store(0, Ordering::Relaxed);
}
