//! The walker background worker: reads WAL on its main thread, hands batches to the
//! dispatch threads, keeps `walker.status` current, sleeps on its latch when caught up.

use crate::{gucs, logging, shmem, wal};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::pg_sys;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use walker_core::batch::BatchBuilder;
use walker_core::dispatch::Dispatcher;
use walker_core::host_api::{now_micros, set_rmgr_names};
use walker_core::registry;
use walker_core::shared::{HostShared, WorkerState};

/// Most bytes of record data copied into one batch.
const BATCH_BYTES: usize = 8 << 20;

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
    run(host);
    // Exit code 1: the postmaster restarts the worker unless the server is shutting
    // down, so a stray SIGTERM (pg_terminate_backend) never stops walking for good.
    // SAFETY: ends the process the PostgreSQL way, running its exit callbacks.
    unsafe { pg_sys::proc_exit(1) };
}

struct Rate {
    since: Instant,
    records: u64,
}

fn publish(host: &HostShared, dispatcher: &Dispatcher, reader: &wal::WalReader) {
    let read = reader.position();
    host.read_lsn.store(read, Ordering::Release);
    let processed = dispatcher.processed_lsn().unwrap_or(read);
    host.processed_lsn.store(processed, Ordering::Release);
}

fn run(host: &'static HostShared) {
    host.set_worker_state(WorkerState::Starting);
    // SAFETY: reading the process id global on the main thread.
    host.worker_pid.store(unsafe { pg_sys::MyProcPid }, Ordering::Relaxed);
    host.started_at.store(now_micros(), Ordering::Relaxed);
    host.starts.fetch_add(1, Ordering::Relaxed);
    set_rmgr_names(wal::rmgr_names());
    // SAFETY: the worker's main thread is where settings change.
    unsafe { registry::refresh_settings() };

    let slots = registry::all();
    let dispatcher = match Dispatcher::start(&slots, gucs::QUEUE_BATCHES.get() as usize) {
        Ok(d) => d,
        Err(e) => {
            pgrx::warning!("walker: could not start dispatch threads: {e}");
            host.set_worker_state(WorkerState::Stopped);
            return;
        }
    };
    pgrx::log!("walker: worker started with {} running plugin(s)", dispatcher.len());

    let mut reader = wal::WalReader::new();
    // Resume where this server's walk left off (a restarted worker keeps shared
    // memory), else at the last checkpoint's redo pointer.
    let resume = host.processed_lsn.load(Ordering::Acquire);
    let wanted = if resume != 0 { resume } else { wal::redo_lsn() };
    let mut stopping = false;
    let mut positioned = false;
    let mut rate = Rate { since: Instant::now(), records: host.records.load(Ordering::Relaxed) };

    while !stopping {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way to reload settings in a background worker.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // SAFETY: main thread.
            unsafe { registry::refresh_settings() };
        }
        if BackgroundWorker::sigterm_received() {
            break;
        }
        let naptime = Duration::from_millis(gucs::NAPTIME_MS.get().max(10) as u64);
        if !gucs::ENABLED.get() {
            host.set_worker_state(WorkerState::Paused);
            stopping = !BackgroundWorker::wait_latch(Some(naptime));
            continue;
        }
        if !positioned {
            match reader.seek(wanted) {
                Some(first) => {
                    positioned = true;
                    if host.start_lsn.load(Ordering::Acquire) == 0 {
                        host.start_lsn.store(first, Ordering::Release);
                    }
                    host.read_lsn.store(first, Ordering::Release);
                    if host.processed_lsn.load(Ordering::Acquire) == 0 {
                        host.processed_lsn.store(first, Ordering::Release);
                    }
                }
                None => {
                    host.set_worker_state(WorkerState::Idle);
                    stopping = !BackgroundWorker::wait_latch(Some(naptime));
                    continue;
                }
            }
        }

        let mut batch = BatchBuilder::new();
        let max_records = gucs::BATCH_RECORDS.get().max(1) as usize;
        let mut caught_up = false;
        let mut bytes = 0u64;
        while batch.len() < max_records && batch.data_bytes() < BATCH_BYTES {
            match reader.read(&mut batch) {
                wal::Read::Record => {}
                wal::Read::EndOfWal => {
                    caught_up = true;
                    break;
                }
                wal::Read::Error(msg) => {
                    let m = format!("reading WAL after {}: {msg}", walker_core::rows::format_lsn(reader.position()));
                    pgrx::warning!("walker: {m}");
                    host.last_error.set(&m);
                    caught_up = true;
                    break;
                }
            }
        }
        let n = batch.len() as u64;
        if n > 0 {
            let batch = Arc::new(batch.finish());
            for r in batch.records() {
                bytes = bytes.saturating_add(r.total_len as u64);
            }
            host.set_worker_state(WorkerState::Walking);
            let delivered = dispatcher.send(batch, Duration::from_millis(100), || {
                if BackgroundWorker::sigterm_received() {
                    stopping = true;
                }
                stopping
            });
            if !delivered {
                break;
            }
            host.records.fetch_add(n, Ordering::Relaxed);
            host.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        publish(host, &dispatcher, &reader);
        host.flush_lsn.store(wal::durable_lsn(), Ordering::Relaxed);
        let elapsed = rate.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let now = host.records.load(Ordering::Relaxed);
            host.set_rate(now.saturating_sub(rate.records) as f64 / elapsed.as_secs_f64());
            rate = Rate { since: Instant::now(), records: now };
        }
        logging::drain();
        if caught_up {
            dispatcher.idle(reader.position());
            host.set_worker_state(WorkerState::Idle);
            stopping = !BackgroundWorker::wait_latch(Some(naptime));
        }
    }

    pgrx::log!("walker: worker stopping at {}", walker_core::rows::format_lsn(reader.position()));
    dispatcher.stop();
    publish_final(host, &reader);
    logging::drain();
}

fn publish_final(host: &HostShared, reader: &wal::WalReader) {
    host.read_lsn.store(reader.position(), Ordering::Release);
    let processed = registry::all()
        .iter()
        .filter(|s| s.usable())
        .filter_map(|s| s.shared())
        .filter(|s| s.state() != walker_core::shared::PluginState::Failed)
        .map(|s| s.processed_lsn.load(Ordering::Acquire))
        .min()
        .unwrap_or(reader.position());
    if processed != 0 {
        host.processed_lsn.store(processed, Ordering::Release);
    }
    host.set_worker_state(WorkerState::Stopped);
    host.worker_pid.store(0, Ordering::Relaxed);
}
