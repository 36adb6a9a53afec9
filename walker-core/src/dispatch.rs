//! Dispatch: one thread per running plugin, fed batches over a bounded channel, so a
//! slow plugin slows the walk (back-pressure) instead of growing memory, and a failing
//! plugin is cut off without touching the others. These threads never call
//! PostgreSQL; they only call plugins and touch shared-memory atomics.
//!
//! The worker's main thread never blocks on a lane: a message a lane's full queue
//! cannot take waits in that lane's backlog (at most one batch, the reader reads no
//! more until every backlog is empty) and is handed over by [`Dispatcher::pump`], whose
//! wait is bounded. Each lane writes when its current callback started into its crash
//! ledger entry ([`crate::crash::LaneEntry`]); the main thread reads it in
//! [`Dispatcher::watch`] and cuts off a plugin whose callback overran
//! `walker.plugin_timeout`: the plugin becomes `stalled`, its lane is abandoned (no
//! more messages, no longer counted in the processed and durable positions, so the
//! slot moves on), and at the next watch it is `failed`. A thread stuck in a plugin
//! cannot be killed: it is left behind, never joined, and exits if the callback ever
//! returns.

use crate::batch::Batch;
use crate::crash::{monotonic_us, Callback, InCallback, LaneEntry};
use crate::persistence::{self, keeps_state, SaveError, SnapshotConfig};
use crate::registry::PluginSlot;
use crate::rows::format_lsn;
use crate::shared::{PluginShared, PluginState};
use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use walker_abi::{mask_has, WALKER_RMGR_MASK_WORDS};

/// A message to a dispatch thread.
enum Msg {
    Batch(Arc<Batch>),
    Idle(u64),
    /// Save a snapshot of the state (plugins with snapshots).
    Save,
    Stop,
}

/// What a lane needs besides its slot.
struct LaneCtx {
    slot: &'static PluginSlot,
    snapshots: Option<Arc<SnapshotConfig>>,
    watch: &'static LaneEntry,
    /// Set by the main thread when it abandons the lane.
    cut: Arc<AtomicBool>,
}

impl LaneCtx {
    /// Runs one plugin callback with its start time published for the watch (and the
    /// crash ledger). Returns `None` when the lane was cut off meanwhile: the main
    /// thread owns the plugin's state from then on, and the lane must exit.
    fn call<R>(&self, cb: Callback, lsn: u64, f: impl FnOnce() -> R) -> Option<R> {
        self.watch
            .enter(cb, lsn, crate::crash::monotonic_coarse_us());
        let r = f();
        self.watch.leave();
        (!self.cut.load(Ordering::Acquire)).then_some(r)
    }
}

/// How a lane's loop ended.
enum LaneEnd {
    /// Stop received (or the channel closed): save and shut down.
    Stop,
    /// The plugin failed: no more calls.
    Failed,
    /// Cut off by the main thread: exit at once, touch nothing.
    Cut,
}

/// Names an `on_record` call in messages, formatted only when one is written.
struct OnRecordAt(u64);

impl std::fmt::Display for OnRecordAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "on_record at LSN {}", format_lsn(self.0))
    }
}

fn lane_main(ctx: LaneCtx, rx: Receiver<Msg>) {
    crate::crash::prepare_lane_thread();
    // Lanes never fork: their ids can be remembered (no system call per lock).
    crate::shared::remember_thread_ids();
    ctx.watch.bind_current_thread();
    let slot = ctx.slot;
    let Some(desc) = slot.desc.as_ref() else {
        return;
    };
    let Some(shared) = slot.shared() else { return };
    let handle = slot.handle();
    shared.set_state(PluginState::Running);
    // After a worker restart the walk resumes at the slowest plugin's position; a
    // plugin that had got further must not see its records twice.
    let resume_after = shared.processed_lsn.load(Ordering::Acquire);
    let save = |ctx: &LaneCtx| -> Option<bool> {
        let Some(cfg) = ctx.snapshots.as_deref() else {
            return Some(true);
        };
        let lsn = shared.processed_lsn.load(Ordering::Acquire);
        ctx.call(Callback::SaveState, lsn, || save_lane(slot, cfg))
    };
    let mut end = LaneEnd::Stop;
    'msgs: for msg in rx.iter() {
        match msg {
            Msg::Batch(batch) => {
                // Records are in LSN order: skip those the plugin saw before a restart.
                let all = batch.records();
                let run = &all[all.partition_point(|r| r.end_lsn <= resume_after)..];
                if let (Some(on_records), Some(first)) = (desc.on_records, run.first()) {
                    let mut failed_at = 0u32;
                    // SAFETY: `on_records` comes from a negotiated descriptor; the run
                    // and everything it points to live in `batch`.
                    let Some(st) = ctx.call(Callback::OnRecords, first.lsn, || unsafe {
                        on_records(handle, run.as_ptr(), run.len() as u32, &mut failed_at)
                    }) else {
                        end = LaneEnd::Cut;
                        break 'msgs;
                    };
                    let failed = run.get(failed_at as usize).unwrap_or(first);
                    let checked = slot.check(st, OnRecordAt(failed.lsn));
                    // Delivered: the whole run, or up to the failing record, which
                    // counts (as on_record counts the record it failed on).
                    let upto = match checked {
                        Ok(()) => run.len(),
                        Err(_) => (failed_at as usize + 1).min(run.len()),
                    };
                    let n = run[..upto]
                        .iter()
                        .filter(|r| mask_has(&desc.rmgr_mask, r.rmid))
                        .count();
                    shared.records.fetch_add(n as u64, Ordering::Relaxed);
                    if let Err(m) = checked {
                        slot.fail(&m);
                        end = LaneEnd::Failed;
                        break 'msgs;
                    }
                } else if let Some(on_record) = desc.on_record {
                    let mut delivered = 0u64;
                    for rec in run {
                        if !mask_has(&desc.rmgr_mask, rec.rmid) {
                            continue;
                        }
                        // SAFETY: `on_record` comes from a negotiated descriptor; the
                        // record and everything it points to live in `batch`.
                        let Some(st) = ctx.call(Callback::OnRecord, rec.lsn, || unsafe {
                            on_record(handle, rec)
                        }) else {
                            end = LaneEnd::Cut;
                            break 'msgs;
                        };
                        delivered += 1;
                        if let Err(m) = slot.check(st, OnRecordAt(rec.lsn)) {
                            shared.records.fetch_add(delivered, Ordering::Relaxed);
                            slot.fail(&m);
                            end = LaneEnd::Failed;
                            break 'msgs;
                        }
                    }
                    shared.records.fetch_add(delivered, Ordering::Relaxed);
                }
                shared
                    .processed_lsn
                    .fetch_max(batch.end_lsn, Ordering::AcqRel);
            }
            Msg::Idle(lsn) => {
                if let Some(on_idle) = desc.on_idle {
                    // SAFETY: negotiated callback.
                    let Some(st) =
                        ctx.call(Callback::OnIdle, lsn, || unsafe { on_idle(handle, lsn) })
                    else {
                        end = LaneEnd::Cut;
                        break;
                    };
                    if let Err(m) = slot.check(st, "on_idle") {
                        slot.fail(&m);
                        end = LaneEnd::Failed;
                        break;
                    }
                }
            }
            Msg::Save => match save(&ctx) {
                None => {
                    end = LaneEnd::Cut;
                    break;
                }
                Some(false) => {
                    end = LaneEnd::Failed;
                    break;
                }
                Some(true) => {}
            },
            Msg::Stop => break,
        }
    }
    if !matches!(end, LaneEnd::Stop) {
        // Failed or cut off: the plugin is not called again; the lane ends.
        return;
    }
    match save(&ctx) {
        Some(true) => {}
        Some(false) | None => return,
    }
    if let Some(shutdown) = desc.shutdown {
        // SAFETY: negotiated callback.
        let Some(st) = ctx.call(Callback::Shutdown, 0, || unsafe { shutdown(handle) }) else {
            return;
        };
        if let Err(m) = slot.check(st, "shutdown") {
            slot.fail(&m);
            return;
        }
    }
    shared.set_state(PluginState::Stopped);
}

/// True when a callback that started at `started_us` has run past `timeout_us` at
/// `now_us` (all on the monotonic clock).
pub fn overdue(started_us: i64, now_us: i64, timeout_us: i64) -> bool {
    started_us != 0 && now_us.saturating_sub(started_us) >= timeout_us
}

/// The plugin's `last_error` when it is cut off.
pub fn cut_message(what: &InCallback, timeout: Duration) -> String {
    format!(
        "{} did not return within walker.plugin_timeout ({}); the plugin was cut off and gets no more records (its thread is left behind); fix the plugin or raise walker.plugin_timeout, then restart the server",
        what.callback.describe(what.lsn),
        human_duration(timeout)
    )
}

/// "5 s", "250 ms".
fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One lane, as the main thread keeps it.
struct Lane {
    slot: &'static PluginSlot,
    /// `None` once the lane is cut off (the thread sees its channel closed).
    tx: Option<Sender<Msg>>,
    /// Messages the lane's full queue could not take yet, oldest first.
    backlog: VecDeque<Msg>,
    thread: Option<JoinHandle<()>>,
    watch: &'static LaneEntry,
    cut: Arc<AtomicBool>,
}

impl Lane {
    fn live(&self) -> bool {
        self.tx.is_some()
    }

    /// Moves the backlog into the queue while it has room; true when it is empty.
    fn flush(&mut self) -> bool {
        self.flush_until(None)
    }

    /// Like [`Lane::flush`], waiting for room until `deadline` when there is one:
    /// woken as soon as the lane takes a message, never later than the deadline.
    fn flush_until(&mut self, deadline: Option<Instant>) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            self.backlog.clear();
            return true;
        };
        while let Some(m) = self.backlog.pop_front() {
            let sent = match deadline {
                None => tx.try_send(m).map_err(|e| match e {
                    TrySendError::Full(m) => (m, false),
                    TrySendError::Disconnected(m) => (m, true),
                }),
                Some(d) => tx.send_deadline(m, d).map_err(|e| match e {
                    SendTimeoutError::Timeout(m) => (m, false),
                    SendTimeoutError::Disconnected(m) => (m, true),
                }),
            };
            match sent {
                Ok(()) => {}
                Err((m, false)) => {
                    self.backlog.push_front(m);
                    return false;
                }
                Err((_, true)) => {
                    // The thread ended (failed plugin): nothing more to hand over.
                    self.backlog.clear();
                    return true;
                }
            }
        }
        true
    }

    /// Abandons the lane: no more messages, not counted in positions, never joined.
    fn cut_off(&mut self, msg: &str) {
        self.cut.store(true, Ordering::Release);
        self.tx = None;
        self.backlog.clear();
        // Dropping the handle detaches the thread.
        self.thread = None;
        if let Some(s) = self.slot.shared() {
            s.errors.fetch_add(1, Ordering::Relaxed);
            s.last_error.set(msg);
            s.set_state(PluginState::Stalled);
        }
    }
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
            slot.host().queue_log(crate::host_api::LogLine {
                plugin: slot.name.clone(),
                level: walker_abi::WalkerLogLevel::WARNING,
                message: m,
            });
            true
        }
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
            let watch = crate::crash::lane_entry(slot.index);
            let cut = Arc::new(AtomicBool::new(false));
            let ctx = LaneCtx {
                slot,
                snapshots: snapshots.clone(),
                watch,
                cut: cut.clone(),
            };
            let thread = with_signals_blocked(|| {
                std::thread::Builder::new()
                    .name(format!("walker:{}", slot.name))
                    .spawn(move || lane_main(ctx, rx))
            })?;
            lanes.push(Lane {
                slot,
                tx: Some(tx),
                backlog: VecDeque::new(),
                thread: Some(thread),
                watch,
                cut,
            });
        }
        Ok(Dispatcher { lanes })
    }

    /// Number of lanes still fed (not cut off).
    pub fn len(&self) -> usize {
        self.lanes.iter().filter(|l| l.live()).count()
    }

    /// No lane is fed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands a batch to every lane without waiting: a lane whose queue is full keeps it
    /// in its backlog (see [`Dispatcher::ready`], [`Dispatcher::pump`]).
    pub fn send(&mut self, batch: Arc<Batch>) {
        self.post(|_| Some(Msg::Batch(batch.clone())));
    }

    /// Asks every lane with snapshots to save one after the batches already queued,
    /// without waiting, like [`Dispatcher::send`].
    pub fn save(&mut self) {
        self.post(|slot| keeps_state(slot).then_some(Msg::Save));
    }

    fn post(&mut self, make: impl Fn(&PluginSlot) -> Option<Msg>) {
        for lane in self.lanes.iter_mut().filter(|l| l.live()) {
            if let Some(m) = make(lane.slot) {
                lane.backlog.push_back(m);
                lane.flush();
            }
        }
    }

    /// True when every lane took everything handed to it: the reader may read more.
    pub fn ready(&self) -> bool {
        self.lanes.iter().all(|l| l.backlog.is_empty())
    }

    /// Hands backlogs over as queues make room, waiting at most `wait` in all. The
    /// wait ends as soon as every backlog is handed over: a lane taking a message
    /// wakes it (it used to poll every 5 ms, and a lane that emptied its queue in
    /// less sat idle for the rest, which capped a walk with plugins at a few
    /// batches per 5 ms).
    pub fn pump(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            // Every lane with room takes its backlog; then wait on the first full one.
            let mut full = None;
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                if !lane.flush() && full.is_none() {
                    full = Some(i);
                }
            }
            let Some(i) = full else { return };
            if !self.lanes[i].flush_until(Some(deadline)) {
                return;
            }
        }
    }

    /// Tells every lane the walk caught up at `lsn` (skipped for lanes whose queue is full).
    pub fn idle(&self, lsn: u64) {
        for lane in &self.lanes {
            if let (Some(tx), true) = (lane.tx.as_ref(), lane.backlog.is_empty()) {
                let _ = tx.try_send(Msg::Idle(lsn));
            }
        }
    }

    /// Cuts off every lane whose current callback has run for `timeout` or longer
    /// (state `stalled`), and marks lanes cut off at an earlier watch `failed`.
    /// Returns a message per plugin cut off now, for the server log.
    pub fn watch(&mut self, timeout: Duration) -> Vec<String> {
        let now = monotonic_us();
        let timeout_us = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
        let mut cut = Vec::new();
        for lane in &mut self.lanes {
            if !lane.live() {
                if let Some(s) = lane.slot.shared() {
                    if s.state() == PluginState::Stalled {
                        s.set_state(PluginState::Failed);
                    }
                }
                continue;
            }
            let Some(now_in) = lane.watch.current() else {
                continue;
            };
            if overdue(now_in.started_us, now, timeout_us) {
                let msg = cut_message(&now_in, timeout);
                lane.cut_off(&msg);
                cut.push(format!("plugin \"{}\": {msg}", lane.slot.name));
            }
        }
        cut
    }

    /// The resource managers some lane's plugin asked for (the union of their
    /// masks): the reader copies only their records into batches. Lanes cut off or
    /// failed still count (the mask only ever narrows at a restart).
    pub fn wanted_rmgrs(&self) -> [u64; WALKER_RMGR_MASK_WORDS] {
        let mut mask = [0u64; WALKER_RMGR_MASK_WORDS];
        for d in self.lanes.iter().filter_map(|l| l.slot.desc.as_ref()) {
            for (m, w) in mask.iter_mut().zip(d.rmgr_mask) {
                *m |= w;
            }
        }
        mask
    }

    /// Lowest processed LSN among running lanes; `None` when no lane is running.
    pub fn processed_lsn(&self) -> Option<u64> {
        self.lanes
            .iter()
            .filter(|l| l.live())
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
            .filter(|l| l.live())
            .filter_map(|l| Some((l.slot, l.slot.shared()?)))
            .filter(|(_, s)| s.state() == PluginState::Running)
            .map(|(slot, s)| durable_of(slot, s))
            .min()
    }

    /// Sends stop to every lane and waits until each has drained its queue and run
    /// its `shutdown` (after a last snapshot). A lane whose callback overruns `timeout`
    /// meanwhile is cut off and left behind, so this returns within about `timeout`
    /// after the queues drained. Returns the lowest durable position (see
    /// [`Dispatcher::durable_lsn`]) among the lanes that neither failed nor were cut
    /// off (`None` when there are none), and the messages of lanes cut off.
    pub fn stop(mut self, timeout: Duration) -> (Option<u64>, Vec<String>) {
        for lane in self.lanes.iter_mut().filter(|l| l.live()) {
            lane.backlog.push_back(Msg::Stop);
            lane.flush();
        }
        let mut cut = Vec::new();
        loop {
            cut.extend(self.watch(timeout));
            let mut running = false;
            for lane in &mut self.lanes {
                lane.flush();
                if let Some(t) = lane.thread.as_ref() {
                    if t.is_finished() {
                        if let Some(t) = lane.thread.take() {
                            let _ = t.join();
                        }
                    } else {
                        running = true;
                    }
                }
            }
            if !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let durable = self
            .lanes
            .iter()
            .filter(|l| l.live())
            .filter_map(|l| Some((l.slot, l.slot.shared()?)))
            .filter(|(_, s)| !matches!(s.state(), PluginState::Failed | PluginState::Stalled))
            .map(|(slot, s)| durable_of(slot, s))
            .min();
        (durable, cut)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, RecordHead};
    use crate::shared::PluginShared;
    use std::sync::atomic::AtomicU64;
    use walker_abi::{WalkerPlugin, WalkerPluginDescriptor, WalkerRecord, WalkerStatus};

    /// Records the "good" test plugin saw.
    static GOOD_SEEN: AtomicU64 = AtomicU64::new(0);
    /// The "stuck" plugin blocks at its second record until this is set.
    static RELEASE: AtomicBool = AtomicBool::new(false);
    static STUCK_SEEN: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn good(_: *mut WalkerPlugin, _: *const WalkerRecord) -> WalkerStatus {
        GOOD_SEEN.fetch_add(1, Ordering::SeqCst);
        WalkerStatus::OK
    }

    unsafe extern "C" fn stuck(_: *mut WalkerPlugin, _: *const WalkerRecord) -> WalkerStatus {
        if STUCK_SEEN.fetch_add(1, Ordering::SeqCst) == 1 {
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        WalkerStatus::OK
    }

    type OnRecord = unsafe extern "C" fn(*mut WalkerPlugin, *const WalkerRecord) -> WalkerStatus;

    type OnRecords =
        unsafe extern "C" fn(*mut WalkerPlugin, *const WalkerRecord, u32, *mut u32) -> WalkerStatus;

    fn slot(index: usize, name: &str, f: OnRecord) -> &'static PluginSlot {
        slot_with_runs(index, name, f, None)
    }

    fn slot_with_runs(
        index: usize,
        name: &str,
        f: OnRecord,
        runs: Option<OnRecords>,
    ) -> &'static PluginSlot {
        slot_with_mask(index, name, f, runs, [u64::MAX; 4])
    }

    fn slot_with_mask(
        index: usize,
        name: &str,
        f: OnRecord,
        runs: Option<OnRecords>,
        mask: [u64; 4],
    ) -> &'static PluginSlot {
        // SAFETY: every descriptor field is an integer, a pointer or an Option of a
        // function pointer: all-zero is "nothing declared".
        let mut d: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        d.rmgr_mask = mask;
        d.on_record = Some(f);
        d.on_records = runs;
        let s = PluginSlot::new(index, name, None, Some(d), Vec::new(), "1".into(), None);
        let s: &'static PluginSlot = Box::leak(Box::new(s));
        // SAFETY: all-zero is a valid PluginShared (atomics and messages).
        let shared: &'static mut PluginShared = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        s.attach_shared(shared, std::ptr::null_mut(), std::ptr::null_mut(), 0);
        s
    }

    fn batch(first: u64, n: u64) -> Arc<Batch> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            let lsn = first + i * 100;
            let h = RecordHead {
                lsn,
                end_lsn: lsn + 100,
                rmid: 10,
                total_len: 100,
                ..Default::default()
            };
            b.start_record(h, b"");
            b.finish_record();
        }
        Arc::new(b.finish())
    }

    #[test]
    fn overdue_and_messages() {
        assert!(!overdue(0, 10_000_000, 1), "not in a callback");
        assert!(!overdue(1_000, 5_999, 5_000));
        assert!(overdue(1_000, 6_000, 5_000));
        assert!(overdue(1, i64::MAX, i64::MAX - 1), "no overflow");
        let m = cut_message(
            &InCallback {
                callback: Callback::OnRecord,
                lsn: 0x1_0000_1234,
                started_us: 1,
            },
            Duration::from_secs(5),
        );
        assert!(
            m.starts_with("on_record at LSN 1/1234 did not return within walker.plugin_timeout (5 s); the plugin was cut off"),
            "{m}"
        );
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
    }

    #[test]
    fn a_stuck_lane_is_cut_off_and_the_others_walk_on_without_the_main_thread_blocking() {
        // Indexes past the crash ledger's entries: process-local watch entries.
        let good = slot(1000, "good", good);
        let stuck = slot(1001, "stuck", stuck);
        let mut d = Dispatcher::start(&[good, stuck], 1, None).unwrap();
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut first = 0x1000u64;
        // Feed 20 batches of 10 records; the main thread keeps going round, never waiting
        // more than the pump's bound.
        while sent < 20 {
            let round = Instant::now();
            let _ = d.watch(timeout);
            if d.ready() {
                d.send(batch(first, 10));
                first += 1000;
                sent += 1;
            } else {
                d.pump(Duration::from_millis(20));
            }
            assert!(
                round.elapsed() < Duration::from_millis(200),
                "a round blocked"
            );
            assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        }
        let stuck_state = stuck.shared().unwrap().state();
        assert!(
            matches!(stuck_state, PluginState::Stalled | PluginState::Failed),
            "{stuck_state:?}"
        );
        let _ = d.watch(timeout);
        assert_eq!(stuck.shared().unwrap().state(), PluginState::Failed);
        let err = stuck.last_error().unwrap();
        // The second record of the first batch: 0x1000 + 100.
        assert!(
            err.starts_with(
                "on_record at LSN 0/1064 did not return within walker.plugin_timeout (300 ms)"
            ),
            "{err}"
        );
        assert_eq!(d.len(), 1, "one lane still fed");
        // The good lane got everything; the positions ignore the stuck lane.
        let end = first - 1000 + 10 * 100;
        let (durable, cut) = d.stop(timeout);
        assert!(cut.is_empty(), "cut at the watch, not at stop: {cut:?}");
        assert_eq!(GOOD_SEEN.load(Ordering::SeqCst), 200);
        assert_eq!(durable, Some(end));
        assert_eq!(good.shared().unwrap().state(), PluginState::Stopped);
        // The abandoned thread exits when its callback returns, calling nothing more.
        RELEASE.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(STUCK_SEEN.load(Ordering::SeqCst), 2);
        assert_eq!(stuck.shared().unwrap().state(), PluginState::Failed);
    }

    /// Runs the "runs" plugin saw, and records in them.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    static RUN_RECORDS: AtomicU64 = AtomicU64::new(0);

    /// Takes runs; fails at the record whose LSN is 0x5000 + 3 * 100.
    unsafe extern "C" fn runs(
        _: *mut WalkerPlugin,
        records: *const WalkerRecord,
        n: u32,
        failed_at: *mut u32,
    ) -> WalkerStatus {
        RUNS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the host passes `n` records.
        let run = unsafe { std::slice::from_raw_parts(records, n as usize) };
        for (i, r) in run.iter().enumerate() {
            if r.lsn == 0x5000 + 300 {
                // SAFETY: the host passes a writable u32.
                unsafe { *failed_at = i as u32 };
                return WalkerStatus::ERROR;
            }
            RUN_RECORDS.fetch_add(1, Ordering::SeqCst);
        }
        WalkerStatus::OK
    }

    #[test]
    fn a_plugin_with_on_records_gets_one_call_per_batch_and_its_failure_names_the_record() {
        let s = slot_with_runs(1003, "runs", good, Some(runs));
        let mut disp = Dispatcher::start(&[s], 1, None).unwrap();
        disp.send(batch(0x1000, 10));
        disp.send(batch(0x2000, 10));
        disp.send(batch(0x5000, 10));
        let (_, cut) = disp.stop(Duration::from_secs(5));
        assert!(cut.is_empty());
        assert_eq!(
            RUNS.load(Ordering::SeqCst),
            3,
            "one call per batch, on_record unused"
        );
        assert_eq!(RUN_RECORDS.load(Ordering::SeqCst), 23);
        let sh = s.shared().unwrap();
        assert_eq!(sh.state(), PluginState::Failed);
        // Counted: the 20 records of the first two runs, the 3 before the failure and
        // the one it failed on.
        assert_eq!(sh.records.load(Ordering::SeqCst), 24);
        let err = s.last_error().unwrap();
        assert!(err.starts_with("on_record at LSN 0/512C failed"), "{err}");
    }

    /// Records the heap-only plugin saw.
    static HEAP_SEEN: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn heap_only(_: *mut WalkerPlugin, r: *const WalkerRecord) -> WalkerStatus {
        // SAFETY: the host passes a valid record.
        assert_eq!(unsafe { (*r).rmid }, 10, "only its resource manager");
        HEAP_SEEN.fetch_add(1, Ordering::SeqCst);
        WalkerStatus::OK
    }

    #[test]
    fn records_no_plugin_asked_for_are_passed_and_the_lane_still_reaches_their_end() {
        // Heap (10) and, from a second plugin, Transaction (1): the union.
        let s = slot_with_mask(1004, "heap-only", heap_only, None, [1 << 10, 0, 0, 0]);
        let other = slot_with_mask(1005, "xact-only", good, None, [1 << 1, 0, 0, 0]);
        let both = Dispatcher::start(&[s, other], 1, None).unwrap();
        assert_eq!(both.wanted_rmgrs(), [(1 << 10) | (1 << 1), 0, 0, 0]);
        both.stop(Duration::from_secs(5));

        let mut disp = Dispatcher::start(&[s], 1, None).unwrap();
        let mut b = BatchBuilder::new().wanting(disp.wanted_rmgrs());
        // A heap record, then an XLOG checkpoint (rmid 0, info 0x10) and a
        // Transaction record that no loaded plugin reads.
        for (lsn, rmid, info) in [(0x1000u64, 10u8, 0u8), (0x1064, 0, 0x10), (0x10c8, 1, 0)] {
            let h = RecordHead {
                lsn,
                end_lsn: lsn + 100,
                rmid,
                info,
                total_len: 100,
                ..Default::default()
            };
            if b.wants(rmid) {
                b.start_record(h, b"");
                b.finish_record();
            } else {
                b.pass_record(&h);
            }
        }
        let batch = Arc::new(b.finish());
        assert_eq!(batch.records().len(), 1);
        assert!(batch.has_checkpoint());
        disp.send(batch);
        let (_, cut) = disp.stop(Duration::from_secs(5));
        assert!(cut.is_empty());
        assert_eq!(HEAP_SEEN.load(Ordering::SeqCst), 1);
        let sh = s.shared().unwrap();
        assert_eq!(sh.records.load(Ordering::SeqCst), 1);
        assert_eq!(
            sh.processed_lsn.load(Ordering::SeqCst),
            0x10c8 + 100,
            "processed up to the end of the last record read, passed or not"
        );
    }

    static STOP_RELEASE: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" fn stuck_at_once(
        _: *mut WalkerPlugin,
        _: *const WalkerRecord,
    ) -> WalkerStatus {
        while !STOP_RELEASE.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        WalkerStatus::OK
    }

    #[test]
    fn stop_returns_within_the_timeout_when_a_lane_is_stuck() {
        let s = slot(1002, "stuck-at-stop", stuck_at_once);
        let mut d = Dispatcher::start(&[s], 1, None).unwrap();
        d.send(batch(0x2000, 3));
        d.send(batch(0x3000, 3));
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        let (durable, cut) = d.stop(Duration::from_millis(200));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(durable, None, "a cut-off lane holds nothing back");
        assert_eq!(cut.len(), 1, "{cut:?}");
        assert!(cut[0].contains("on_record at LSN 0/2000"), "{cut:?}");
        STOP_RELEASE.store(true, Ordering::SeqCst);
    }
}
