//! Dispatch: one thread per running plugin, fed batches over a bounded channel, so a
//! slow plugin slows the walk (back-pressure) instead of growing memory, and a failing
//! plugin is cut off without touching the others. These threads never call
//! PostgreSQL; they only call plugins and touch shared-memory atomics.

use crate::batch::Batch;
use crate::persistence::{self, keeps_state, SaveError, SnapshotConfig};
use crate::registry::PluginSlot;
use crate::rows::format_lsn;
use crate::shared::{PluginShared, PluginState};
use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use walker_abi::mask_has;

/// A message to a dispatch thread.
enum Msg {
    Batch(Arc<Batch>),
    Idle(u64),
    /// Save a snapshot of the state (plugins with snapshots).
    Save,
    Stop,
}

struct Lane {
    slot: &'static PluginSlot,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// The dispatch threads.
pub struct Dispatcher {
    lanes: Vec<Lane>,
}

/// Runs `f` with every signal blocked in the calling thread, so that threads spawned
/// inside inherit a full mask: the server's signal handlers (latch, SIGTERM, SIGHUP)
/// must run on the main thread only.
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain libc calls on locally owned signal sets; the old mask is restored.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// Saves a snapshot at the lane's current position; a failing `save_state` fails the
/// plugin, a failing write is reported and retried at the next save.
fn save_lane(slot: &'static PluginSlot, cfg: &SnapshotConfig) -> bool {
    let Some(shared) = slot.shared() else {
        return true;
    };
    let lsn = shared.processed_lsn.load(Ordering::Acquire);
    if lsn == 0 || lsn == shared.snapshot_lsn.load(Ordering::Acquire) {
        return true;
    }
    match persistence::save(slot, cfg, lsn) {
        Ok(()) => true,
        Err(SaveError::Plugin(m)) => {
            slot.fail(&m);
            false
        }
        Err(e @ SaveError::Io { .. }) => {
            let m = e.to_string();
            shared.errors.fetch_add(1, Ordering::Relaxed);
            shared.last_error.set(&m);
            crate::host_api::queue_log(crate::host_api::LogLine {
                plugin: slot.name.clone(),
                level: walker_abi::WalkerLogLevel::WARNING,
                message: m,
            });
            true
        }
    }
}

fn lane_main(slot: &'static PluginSlot, rx: Receiver<Msg>, snapshots: Option<Arc<SnapshotConfig>>) {
    let Some(desc) = slot.desc.as_ref() else {
        return;
    };
    let Some(shared) = slot.shared() else { return };
    let handle = slot.handle();
    shared.set_state(PluginState::Running);
    // After a worker restart the walk resumes at the slowest plugin's position; a
    // plugin that had got further must not see its records twice.
    let resume_after = shared.processed_lsn.load(Ordering::Acquire);
    let mut failed = false;
    for msg in rx.iter() {
        match msg {
            Msg::Batch(batch) => {
                if failed {
                    continue;
                }
                if let Some(on_record) = desc.on_record {
                    let mut delivered = 0u64;
                    for rec in batch.records() {
                        if rec.end_lsn <= resume_after || !mask_has(&desc.rmgr_mask, rec.rmid) {
                            continue;
                        }
                        // SAFETY: `on_record` comes from a negotiated descriptor; the
                        // record and everything it points to live in `batch`.
                        let st = unsafe { on_record(handle, rec) };
                        delivered += 1;
                        if let Err(m) =
                            slot.check(st, &format!("on_record at LSN {}", format_lsn(rec.lsn)))
                        {
                            shared.records.fetch_add(delivered, Ordering::Relaxed);
                            slot.fail(&m);
                            failed = true;
                            break;
                        }
                    }
                    if failed {
                        continue;
                    }
                    shared.records.fetch_add(delivered, Ordering::Relaxed);
                }
                shared
                    .processed_lsn
                    .fetch_max(batch.end_lsn, Ordering::AcqRel);
            }
            Msg::Idle(lsn) => {
                if failed {
                    continue;
                }
                if let Some(on_idle) = desc.on_idle {
                    // SAFETY: negotiated callback.
                    let st = unsafe { on_idle(handle, lsn) };
                    if let Err(m) = slot.check(st, "on_idle") {
                        slot.fail(&m);
                        failed = true;
                    }
                }
            }
            Msg::Save => {
                if let (false, Some(cfg)) = (failed, snapshots.as_deref()) {
                    failed = !save_lane(slot, cfg);
                }
            }
            Msg::Stop => break,
        }
    }
    if let (false, Some(cfg)) = (failed, snapshots.as_deref()) {
        failed = !save_lane(slot, cfg);
    }
    if !failed {
        if let Some(shutdown) = desc.shutdown {
            // SAFETY: negotiated callback.
            let st = unsafe { shutdown(handle) };
            if let Err(m) = slot.check(st, "shutdown") {
                slot.fail(&m);
                return;
            }
        }
        shared.set_state(PluginState::Stopped);
    }
}

impl Dispatcher {
    /// Starts a thread for each usable plugin with shared counters attached. Each
    /// channel holds at most `queue_batches` batches. Plugins with snapshots save them
    /// in `snapshots` (none: never saved).
    pub fn start(
        slots: &[&'static PluginSlot],
        queue_batches: usize,
        snapshots: Option<Arc<SnapshotConfig>>,
    ) -> std::io::Result<Dispatcher> {
        let mut lanes = Vec::new();
        for &slot in slots {
            if !slot.usable() || slot.shared().is_none() {
                continue;
            }
            if slot.shared().map(|s| s.state()) == Some(PluginState::Failed) {
                continue;
            }
            let (tx, rx) = bounded(queue_batches.max(1));
            let cfg = snapshots.clone();
            let thread = with_signals_blocked(|| {
                std::thread::Builder::new()
                    .name(format!("walker:{}", slot.name))
                    .spawn(move || lane_main(slot, rx, cfg))
            })?;
            lanes.push(Lane {
                slot,
                tx,
                thread: Some(thread),
            });
        }
        Ok(Dispatcher { lanes })
    }

    /// Number of running lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// No lanes.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Hands a batch to every lane. Blocks while a lane's queue is full, checking
    /// `interrupted` every `poll`; returns false when interrupted before all lanes took it.
    pub fn send(
        &self,
        batch: Arc<Batch>,
        poll: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> bool {
        self.broadcast(|_| Some(Msg::Batch(batch.clone())), poll, interrupted)
    }

    /// Asks every lane with snapshots to save one after the batches already queued.
    /// Blocks like [`Dispatcher::send`].
    pub fn save(&self, poll: Duration, interrupted: impl FnMut() -> bool) -> bool {
        self.broadcast(
            |slot| keeps_state(slot).then_some(Msg::Save),
            poll,
            interrupted,
        )
    }

    fn broadcast(
        &self,
        make: impl Fn(&PluginSlot) -> Option<Msg>,
        poll: Duration,
        mut interrupted: impl FnMut() -> bool,
    ) -> bool {
        for lane in &self.lanes {
            let Some(mut msg) = make(lane.slot) else {
                continue;
            };
            loop {
                match lane.tx.send_timeout(msg, poll) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout(m)) => {
                        if interrupted() {
                            return false;
                        }
                        msg = m;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => break,
                }
            }
        }
        true
    }

    /// Tells every lane the walk caught up at `lsn` (skipped for lanes whose queue is full).
    pub fn idle(&self, lsn: u64) {
        for lane in &self.lanes {
            let _ = lane.tx.try_send(Msg::Idle(lsn));
        }
    }

    /// Lowest processed LSN among running lanes; `None` when no lane is running.
    pub fn processed_lsn(&self) -> Option<u64> {
        self.lanes
            .iter()
            .filter_map(|l| l.slot.shared())
            .filter(|s| s.state() == PluginState::Running)
            .map(|s| s.processed_lsn.load(Ordering::Acquire))
            .min()
    }

    /// Lowest position among running lanes from which their state could be rebuilt
    /// (their last snapshot for plugins with snapshots): walker's slot keeps the WAL
    /// from there. `None` when no lane is running.
    pub fn durable_lsn(&self) -> Option<u64> {
        self.lanes
            .iter()
            .filter_map(|l| Some((l.slot, l.slot.shared()?)))
            .filter(|(_, s)| s.state() == PluginState::Running)
            .map(|(slot, s)| durable_of(slot, s))
            .min()
    }

    /// Sends stop to every lane and waits until each has drained its queue and run
    /// its `shutdown` (after a last snapshot). Returns the lowest durable position (see
    /// [`Dispatcher::durable_lsn`]) among the lanes that did not fail (`None` when every
    /// lane failed or there were none).
    pub fn stop(mut self) -> Option<u64> {
        for lane in &self.lanes {
            let _ = lane.tx.send(Msg::Stop);
        }
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
        self.lanes
            .iter()
            .filter_map(|l| Some((l.slot, l.slot.shared()?)))
            .filter(|(_, s)| s.state() != PluginState::Failed)
            .map(|(slot, s)| durable_of(slot, s))
            .min()
    }
}

/// Where a plugin's state could be rebuilt from: its last snapshot for a plugin with
/// snapshots, else how far it processed.
fn durable_of(slot: &PluginSlot, s: &PluginShared) -> u64 {
    if keeps_state(slot) {
        s.durable_lsn.load(Ordering::Acquire)
    } else {
        s.processed_lsn.load(Ordering::Acquire)
    }
}
