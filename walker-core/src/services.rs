//! What plugins ask of the server, and what the server tells them (ABI 1.2).
//!
//! Plugins run on dispatch threads, which must not call PostgreSQL. Requests that need
//! the server (change a setting with ALTER SYSTEM, send a notification) are queued here,
//! in shared memory, and carried out by the host's services worker: a server process
//! connected to a database, whose main thread may call anything. Its answers come back
//! the same way. The services worker also publishes facts the plugins read: the server
//! settings they watch and the checkpointer's counters.
//!
//! Everything is plain data and spin locks, valid at all-zero bytes.

use crate::spinlock::{RwSpinLock, SharedMessage};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use walker_abi::text::cut_utf8;
use walker_abi::{WalkerServiceKind, WalkerSettingField};

/// Requests that can wait at once (over all plugins).
pub const SERVICE_SLOTS: usize = 16;
/// Bytes of a request's name plus value (a notification payload may be 7999 bytes).
pub const SERVICE_TEXT: usize = 8192;
/// Server settings the plugins may watch together.
pub const MAX_WATCHED: usize = 32;
/// Bytes kept of each field of a watched setting.
pub const FACT_TEXT: usize = 256;
/// Fields published per watched setting (value, unit, source, source file, reset value).
pub const FACT_FIELDS: usize = 5;
/// A request the services worker has not taken after this long fails (microseconds),
/// when the worker is not running.
pub const UNANSWERED_AFTER_US: i64 = 15_000_000;
/// A finished request nobody asked about is forgotten after this long (microseconds).
pub const FORGOTTEN_AFTER_US: i64 = 600_000_000;
/// How often the services worker publishes the facts while the server writes WAL
/// (microseconds).
pub const PUBLISH_BUSY_US: i64 = 1_000_000;
/// How often it publishes them while the server writes nothing (microseconds). The
/// watched settings change only at a reload, which publishes at once; the checkpointer's
/// counters change at checkpoints, which write WAL, except timed checkpoints skipped for
/// lack of activity, which PostgreSQL 15 and 16 count too.
pub const PUBLISH_IDLE_US: i64 = 60_000_000;

/// Why a request cannot be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The kind is not one this host knows.
    #[error("unknown service kind {0}; this host knows 1 (set a server setting), 2 (notify) and 3 (run SQL)")]
    UnknownKind(u32),
    /// Name plus value do not fit.
    #[error("the request's name and value are {0} bytes; at most {SERVICE_TEXT} fit")]
    TooLong(usize),
    /// The name is empty.
    #[error("the request has an empty name (a setting name or a notification channel is needed)")]
    EmptyName,
    /// Every slot holds a request.
    #[error("{SERVICE_SLOTS} service requests are already waiting; the services worker is behind or not running")]
    Full,
    /// The setting is not one plugins may change.
    #[error("plugins may not change server setting \"{0}\"; walker applies only {list} for plugins (SETTABLE in walker-core/src/services.rs); set it by hand", list = SETTABLE.join(", "))]
    NotSettable(String),
}

/// The server settings plugins may change with a set-server-setting request (ALTER
/// SYSTEM and a reload run by the superuser services worker): the autosizer's. Any other
/// name is refused when queued and again when carried out, so a plugin cannot use the
/// worker to change, say, `shared_preload_libraries`, `archive_command` or
/// `log_min_messages`.
pub const SETTABLE: &[&str] = &["max_wal_size", "min_wal_size"];

/// Whether plugins may change setting `name` (compared case-insensitively, trimmed,
/// as the server compares setting names).
pub fn check_settable(name: &str) -> Result<(), ServiceError> {
    let n = name.trim().to_ascii_lowercase();
    if SETTABLE.contains(&n.as_str()) {
        Ok(())
    } else {
        Err(ServiceError::NotSettable(name.to_string()))
    }
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum SlotState {
    Free = 0,
    Queued = 1,
    Running = 2,
    Succeeded = 3,
    Failed = 4,
}

impl SlotState {
    fn from_u32(v: u32) -> SlotState {
        match v {
            1 => SlotState::Queued,
            2 => SlotState::Running,
            3 => SlotState::Succeeded,
            4 => SlotState::Failed,
            _ => SlotState::Free,
        }
    }
}

/// A request as the services worker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its id (unique while the server runs).
    pub id: u64,
    /// Index of the plugin that asked.
    pub plugin: u32,
    /// What to do.
    pub kind: WalkerServiceKind,
    /// Setting name or channel.
    pub name: String,
    /// Setting value or payload.
    pub value: String,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: whether it succeeded, and the host's message.
    Done {
        /// It succeeded.
        ok: bool,
        /// What the services worker reported.
        message: String,
    },
    /// Queued or running.
    Pending,
    /// No such request for this plugin (never made, or already collected).
    Unknown,
}

/// One request's place in the queue.
#[repr(C)]
struct ServiceSlot {
    state: AtomicU32,
    plugin: AtomicU32,
    kind: AtomicU32,
    name_len: AtomicU32,
    value_len: AtomicU32,
    id: AtomicU64,
    changed_at: AtomicI64,
    text: UnsafeCell<[u8; SERVICE_TEXT]>,
    message: SharedMessage,
}

/// A watched setting's published fields.
#[repr(C)]
struct Fact {
    present: AtomicU32,
    lens: [AtomicU32; FACT_FIELDS],
    text: UnsafeCell<[[u8; FACT_TEXT]; FACT_FIELDS]>,
}

/// The queue and the facts, in the host's shared memory.
#[repr(C)]
pub struct Services {
    lock: RwSpinLock,
    next_id: AtomicU64,
    /// Process id of the services worker (0 when it is not running).
    pub worker_pid: AtomicI32,
    /// Requests carried out successfully since the server started.
    pub succeeded: AtomicU64,
    /// Requests that failed.
    pub failed: AtomicU64,
    /// Why the last request failed.
    pub last_error: SharedMessage,
    slots: [ServiceSlot; SERVICE_SLOTS],
    facts_lock: RwSpinLock,
    facts_at: AtomicI64,
    checkpoints_timed: AtomicU64,
    checkpoints_requested: AtomicU64,
    facts: [Fact; MAX_WATCHED],
}

// SAFETY: the byte arrays are only touched under `lock` (slots) or `facts_lock` (facts).
unsafe impl Sync for Services {}

impl Services {
    /// Queues a request of `plugin` (its index) at time `now` (microseconds).
    pub fn submit(
        &self,
        plugin: u32,
        kind: WalkerServiceKind,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<u64, ServiceError> {
        if ![
            WalkerServiceKind::SET_SERVER_SETTING,
            WalkerServiceKind::NOTIFY,
            WalkerServiceKind::SQL,
        ]
        .contains(&kind)
        {
            return Err(ServiceError::UnknownKind(kind.0));
        }
        if name.is_empty() {
            return Err(ServiceError::EmptyName);
        }
        if kind == WalkerServiceKind::SET_SERVER_SETTING {
            check_settable(name)?;
        }
        let total = name.len().saturating_add(value.len());
        if total > SERVICE_TEXT {
            return Err(ServiceError::TooLong(total));
        }
        self.lock.lock_exclusive();
        let free = self.slots.iter().position(|s| {
            let st = SlotState::from_u32(s.state.load(Ordering::Relaxed));
            st == SlotState::Free
                || (matches!(st, SlotState::Succeeded | SlotState::Failed)
                    && now.saturating_sub(s.changed_at.load(Ordering::Relaxed))
                        > FORGOTTEN_AFTER_US)
        });
        let result = match free {
            None => Err(ServiceError::Full),
            Some(i) => {
                let s = &self.slots[i];
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                // SAFETY: the exclusive lock excludes every other access to the text.
                let text = unsafe { &mut *s.text.get() };
                text[..name.len()].copy_from_slice(name.as_bytes());
                text[name.len()..total].copy_from_slice(value.as_bytes());
                s.name_len.store(name.len() as u32, Ordering::Relaxed);
                s.value_len.store(value.len() as u32, Ordering::Relaxed);
                s.plugin.store(plugin, Ordering::Relaxed);
                s.kind.store(kind.0, Ordering::Relaxed);
                s.id.store(id, Ordering::Relaxed);
                s.changed_at.store(now, Ordering::Relaxed);
                s.message.set("");
                s.state.store(SlotState::Queued as u32, Ordering::Release);
                Ok(id)
            }
        };
        self.lock.unlock_exclusive();
        if result.is_ok() {
            self.wake_worker();
        }
        result
    }

    /// Wakes the services worker (it sleeps on its latch between looks at the queue):
    /// SIGUSR1, which a server process connected to a database handles by setting its
    /// latch. A plain system call, so any thread of any server process may send it. The
    /// worker clears its process id before it exits, so the signal never reaches a
    /// process that reused the id of a worker that is gone.
    fn wake_worker(&self) {
        let pid = self.worker_pid.load(Ordering::Acquire);
        if pid > 0 {
            // SAFETY: kill(2) with a positive pid and a signal number; no memory is shared.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
        }
    }

    /// The services worker takes the oldest queued request (marking it running).
    pub fn take_next(&self, now: i64) -> Option<Request> {
        self.lock.lock_exclusive();
        let next = self
            .slots
            .iter()
            .filter(|s| s.state.load(Ordering::Relaxed) == SlotState::Queued as u32)
            .min_by_key(|s| s.id.load(Ordering::Relaxed));
        let req = next.map(|s| {
            let n = s.name_len.load(Ordering::Relaxed) as usize;
            let v = s.value_len.load(Ordering::Relaxed) as usize;
            // SAFETY: under the exclusive lock.
            let text = unsafe { &*s.text.get() };
            s.state.store(SlotState::Running as u32, Ordering::Release);
            s.changed_at.store(now, Ordering::Relaxed);
            Request {
                id: s.id.load(Ordering::Relaxed),
                plugin: s.plugin.load(Ordering::Relaxed),
                kind: WalkerServiceKind(s.kind.load(Ordering::Relaxed)),
                name: String::from_utf8_lossy(&text[..n]).into_owned(),
                value: String::from_utf8_lossy(&text[n..n + v]).into_owned(),
            }
        });
        self.lock.unlock_exclusive();
        req
    }

    /// The services worker reports the outcome of request `id`.
    pub fn finish(&self, id: u64, ok: bool, message: &str, now: i64) {
        self.lock.lock_exclusive();
        if let Some(s) = self.slots.iter().find(|s| {
            s.id.load(Ordering::Relaxed) == id
                && s.state.load(Ordering::Relaxed) == SlotState::Running as u32
        }) {
            s.message.set(message);
            s.changed_at.store(now, Ordering::Relaxed);
            let st = if ok {
                SlotState::Succeeded
            } else {
                SlotState::Failed
            };
            s.state.store(st as u32, Ordering::Release);
        }
        self.lock.unlock_exclusive();
        if ok {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.last_error.set(message);
        }
    }

    /// A starting services worker fails the requests its predecessor was carrying out.
    pub fn fail_running(&self, now: i64) {
        let running: Vec<u64> = self
            .slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) == SlotState::Running as u32)
            .map(|s| s.id.load(Ordering::Relaxed))
            .collect();
        for id in running {
            self.finish(
                id,
                false,
                "the services worker stopped while carrying out this request (see the server log); it may or may not have taken effect",
                now,
            );
        }
    }

    /// What became of request `id` of `plugin`; a finished request is handed out once.
    /// A request still queued after [`UNANSWERED_AFTER_US`] while no services worker
    /// runs fails with `unanswered` as the reason.
    pub fn outcome(&self, plugin: u32, id: u64, now: i64, unanswered: &str) -> Outcome {
        self.lock.lock_exclusive();
        let slot = self.slots.iter().find(|s| {
            s.id.load(Ordering::Relaxed) == id
                && s.plugin.load(Ordering::Relaxed) == plugin
                && s.state.load(Ordering::Relaxed) != SlotState::Free as u32
        });
        let out = match slot {
            None => Outcome::Unknown,
            Some(s) => match SlotState::from_u32(s.state.load(Ordering::Relaxed)) {
                SlotState::Succeeded | SlotState::Failed => {
                    let ok = s.state.load(Ordering::Relaxed) == SlotState::Succeeded as u32;
                    let message = s.message.get().unwrap_or_default();
                    s.state.store(SlotState::Free as u32, Ordering::Release);
                    Outcome::Done { ok, message }
                }
                SlotState::Queued
                    if self.worker_pid.load(Ordering::Acquire) == 0
                        && now.saturating_sub(s.changed_at.load(Ordering::Relaxed))
                            > UNANSWERED_AFTER_US =>
                {
                    s.state.store(SlotState::Free as u32, Ordering::Release);
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    self.last_error.set(unanswered);
                    Outcome::Done {
                        ok: false,
                        message: unanswered.to_string(),
                    }
                }
                _ => Outcome::Pending,
            },
        };
        self.lock.unlock_exclusive();
        out
    }

    /// Publishes watched setting number `i` (`None`: it does not exist).
    pub fn publish_setting(&self, i: usize, fields: Option<[&str; FACT_FIELDS]>) {
        let Some(f) = self.facts.get(i) else { return };
        self.facts_lock.lock_exclusive();
        match fields {
            None => f.present.store(0, Ordering::Relaxed),
            Some(fields) => {
                // SAFETY: the exclusive facts lock excludes every other access.
                let text = unsafe { &mut *f.text.get() };
                for (k, v) in fields.iter().enumerate() {
                    let v = cut_utf8(v, FACT_TEXT);
                    text[k][..v.len()].copy_from_slice(v.as_bytes());
                    f.lens[k].store(v.len() as u32, Ordering::Relaxed);
                }
                f.present.store(1, Ordering::Relaxed);
            }
        }
        self.facts_lock.unlock_exclusive();
    }

    /// One field of watched setting number `i`, when published.
    pub fn setting_field(&self, i: usize, field: WalkerSettingField) -> Option<String> {
        let f = self.facts.get(i)?;
        let k = field.0 as usize;
        if k >= FACT_FIELDS {
            return None;
        }
        self.facts_lock.lock_shared();
        let out = (f.present.load(Ordering::Relaxed) == 1).then(|| {
            let n = (f.lens[k].load(Ordering::Relaxed) as usize).min(FACT_TEXT);
            // SAFETY: the shared facts lock excludes writers.
            String::from_utf8_lossy(unsafe { &(&*f.text.get())[k][..n] }).into_owned()
        });
        self.facts_lock.unlock_shared();
        out
    }

    /// Publishes the checkpointer's counters read at `now`.
    pub fn publish_checkpointer(&self, timed: u64, requested: u64, now: i64) {
        self.facts_lock.lock_exclusive();
        self.checkpoints_timed.store(timed, Ordering::Relaxed);
        self.checkpoints_requested
            .store(requested, Ordering::Relaxed);
        self.facts_at.store(now, Ordering::Relaxed);
        self.facts_lock.unlock_exclusive();
    }

    /// The checkpointer's counters (timed, requested, read at), once published.
    pub fn checkpointer(&self) -> Option<(u64, u64, i64)> {
        self.facts_lock.lock_shared();
        let at = self.facts_at.load(Ordering::Relaxed);
        let out = (at != 0).then(|| {
            (
                self.checkpoints_timed.load(Ordering::Relaxed),
                self.checkpoints_requested.load(Ordering::Relaxed),
                at,
            )
        });
        self.facts_lock.unlock_shared();
        out
    }
}

/// When the services worker publishes the facts again: at once after a reload or a
/// request (`invalidate`), every [`PUBLISH_BUSY_US`] while WAL is written, and every
/// [`PUBLISH_IDLE_US`] otherwise. Reading `pg_settings` and the checkpointer's view in a
/// transaction is most of what an idle server pays for walker, so it is not done every
/// second when nothing can have changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishClock {
    /// When the facts were last published (microseconds), `None` when due at once.
    last_at: Option<i64>,
    /// The server's WAL insert position at that publication.
    last_lsn: u64,
}

impl PublishClock {
    /// The facts are due at the next look, whatever the time.
    pub fn invalidate(&mut self) {
        self.last_at = None;
    }

    /// Whether the facts are due at time `now` with the WAL insert position at `lsn`.
    pub fn due(&self, now: i64, lsn: u64) -> bool {
        match self.last_at {
            None => true,
            Some(at) => {
                let age = now.saturating_sub(at);
                age >= PUBLISH_IDLE_US || (age >= PUBLISH_BUSY_US && lsn != self.last_lsn)
            }
        }
    }

    /// Records a publication at time `now`, WAL insert position `lsn`.
    pub fn published(&mut self, now: i64, lsn: u64) {
        self.last_at = Some(now);
        self.last_lsn = lsn;
    }
}

static SERVICES: std::sync::atomic::AtomicPtr<Services> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Makes `s` (in the host's shared memory) the process's service queue.
pub fn attach(s: &'static Services) {
    SERVICES.store(s as *const Services as *mut Services, Ordering::Release);
}

/// The process's service queue, once shared memory exists.
pub fn get() -> Option<&'static Services> {
    // SAFETY: null or set by `attach` from a `'static` reference.
    unsafe { SERVICES.load(Ordering::Acquire).as_ref() }
}

/// Waits up to the given milliseconds on the calling backend's latch; false when the
/// backend was interrupted (query cancel, termination). Installed by the host for the
/// duration of a SQL function call on a backend's main thread.
pub type Waiter = fn(u32) -> bool;

thread_local! {
    static WAITER: std::cell::Cell<Option<Waiter>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `w` as this thread's waiter.
pub fn with_waiter<T>(w: Waiter, f: impl FnOnce() -> T) -> T {
    let previous = WAITER.with(|c| c.replace(Some(w)));
    let out = f();
    WAITER.with(|c| c.set(previous));
    out
}

/// Sleeps up to `ms` milliseconds: on the installed waiter (a backend's latch) or with a
/// plain sleep (dispatch threads). False when interrupted.
pub fn pause(ms: u32) -> bool {
    match WAITER.with(|c| c.get()) {
        Some(w) => w(ms),
        None => {
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
            true
        }
    }
}

/// Server settings the plugins asked to watch, in order (process-local: filled in the
/// postmaster during `init`, inherited by every server process).
static WATCHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds `name` to the watched settings (lower-cased); its index, or `None` when the
/// table is full or the name is unusable.
pub fn watch(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name.len() > 63 {
        return None;
    }
    let mut w = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = w.iter().position(|n| *n == name) {
        return Some(i);
    }
    if w.len() >= MAX_WATCHED {
        return None;
    }
    w.push(name);
    Some(w.len() - 1)
}

/// The watched settings, in index order.
pub fn watched() -> Vec<String> {
    WATCHED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Index of watched setting `name`.
pub fn watched_index(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .position(|n| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_published_every_second_while_wal_flows_and_every_minute_when_idle() {
        let mut c = PublishClock::default();
        assert!(c.due(0, 100), "due at once before the first publication");
        c.published(10_000_000, 100);
        assert!(!c.due(10_500_000, 200), "half a second later: not yet");
        assert!(c.due(11_000_000, 200), "a second later, WAL written: due");
        assert!(!c.due(11_000_000, 100), "a second later, no WAL: not due");
        assert!(!c.due(69_999_999, 100), "59.99 s later, no WAL: not due");
        assert!(
            c.due(70_000_000, 100),
            "a minute later: due whatever WAL did"
        );
        c.invalidate();
        assert!(
            c.due(10_000_001, 100),
            "after a reload or a request: due at once"
        );
        c.published(i64::MAX - 5, 7);
        assert!(!c.due(i64::MIN, 7), "a clock going backwards never panics");
    }

    fn services() -> Box<Services> {
        // SAFETY: all-zero bytes are a valid Services (atomics, locks, byte arrays).
        unsafe { Box::new(std::mem::zeroed()) }
    }
    const SET: WalkerServiceKind = WalkerServiceKind::SET_SERVER_SETTING;

    #[test]
    fn request_round_trip() {
        let s = services();
        let id = s.submit(2, SET, "max_wal_size", "2048", 100).unwrap();
        assert_eq!(id, 1);
        assert_eq!(s.outcome(2, id, 200, "x"), Outcome::Pending);
        assert_eq!(
            s.outcome(1, id, 200, "x"),
            Outcome::Unknown,
            "another plugin's id"
        );
        let r = s.take_next(300).unwrap();
        assert_eq!(
            (r.id, r.plugin, r.kind, r.name.as_str(), r.value.as_str()),
            (1, 2, SET, "max_wal_size", "2048")
        );
        assert_eq!(s.take_next(300), None);
        s.finish(id, true, "max_wal_size = 2048 MB", 400);
        assert_eq!(
            s.outcome(2, id, 500, "x"),
            Outcome::Done {
                ok: true,
                message: "max_wal_size = 2048 MB".into()
            }
        );
        assert_eq!(
            s.outcome(2, id, 500, "x"),
            Outcome::Unknown,
            "handed out once"
        );
        assert_eq!(s.succeeded.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bad_requests_are_refused() {
        let s = services();
        assert_eq!(
            s.submit(0, WalkerServiceKind(9), "a", "b", 0),
            Err(ServiceError::UnknownKind(9))
        );
        assert_eq!(s.submit(0, SET, "", "b", 0), Err(ServiceError::EmptyName));
        // Only the settings plugins may change.
        for name in [
            "shared_preload_libraries",
            "archive_command",
            "log_min_messages",
        ] {
            assert_eq!(
                s.submit(0, SET, name, "x", 0),
                Err(ServiceError::NotSettable(name.into()))
            );
        }
        assert!(check_settable(" Max_Wal_Size ").is_ok());
        assert!(ServiceError::NotSettable("x".into())
            .to_string()
            .contains("max_wal_size, min_wal_size"));
        let long = "x".repeat(SERVICE_TEXT);
        assert_eq!(
            s.submit(0, WalkerServiceKind::NOTIFY, "c", &long, 0),
            Err(ServiceError::TooLong(SERVICE_TEXT + 1))
        );
        // Exactly full text fits.
        assert!(s
            .submit(0, WalkerServiceKind::NOTIFY, "c", &long[1..], 0)
            .is_ok());
    }

    #[test]
    fn queue_fills_and_forgotten_results_are_reclaimed() {
        let s = services();
        for i in 0..SERVICE_SLOTS {
            s.submit(0, SET, "max_wal_size", &i.to_string(), 0).unwrap();
        }
        assert_eq!(
            s.submit(0, SET, "max_wal_size", "b", 0),
            Err(ServiceError::Full)
        );
        // Finish the first; its result is kept until the forget interval passes.
        let r = s.take_next(1).unwrap();
        assert_eq!(r.value, "0", "oldest first");
        s.finish(r.id, false, "no", 10);
        assert_eq!(
            s.submit(0, SET, "max_wal_size", "b", 20),
            Err(ServiceError::Full)
        );
        assert!(s
            .submit(0, SET, "max_wal_size", "b", 10 + FORGOTTEN_AFTER_US + 1)
            .is_ok());
        assert_eq!(s.outcome(0, r.id, 0, "x"), Outcome::Unknown);
    }

    #[test]
    fn unanswered_requests_fail_when_no_worker_runs() {
        let s = services();
        let id = s.submit(0, SET, "max_wal_size", "b", 0).unwrap();
        assert_eq!(
            s.outcome(0, id, UNANSWERED_AFTER_US, "gone"),
            Outcome::Pending
        );
        s.worker_pid.store(42, Ordering::Relaxed);
        assert_eq!(
            s.outcome(0, id, UNANSWERED_AFTER_US + 1, "gone"),
            Outcome::Pending,
            "a running worker will get to it"
        );
        s.worker_pid.store(0, Ordering::Relaxed);
        assert_eq!(
            s.outcome(0, id, UNANSWERED_AFTER_US + 1, "gone"),
            Outcome::Done {
                ok: false,
                message: "gone".into()
            }
        );
        assert_eq!(s.last_error.get().as_deref(), Some("gone"));
    }

    #[test]
    fn a_restarted_worker_fails_what_was_running() {
        let s = services();
        let id = s.submit(0, SET, "max_wal_size", "b", 0).unwrap();
        s.take_next(1).unwrap();
        s.fail_running(2);
        assert!(matches!(
            s.outcome(0, id, 3, "x"),
            Outcome::Done { ok: false, .. }
        ));
    }

    #[test]
    fn facts_round_trip() {
        let s = services();
        assert_eq!(s.setting_field(0, WalkerSettingField::VALUE), None);
        s.publish_setting(
            0,
            Some([
                "1024",
                "MB",
                "configuration file",
                "/d/postgresql.auto.conf",
                "1024",
            ]),
        );
        assert_eq!(
            s.setting_field(0, WalkerSettingField::SOURCE).as_deref(),
            Some("configuration file")
        );
        assert_eq!(s.setting_field(0, WalkerSettingField(9)), None);
        s.publish_setting(0, None);
        assert_eq!(s.setting_field(0, WalkerSettingField::VALUE), None);
        assert_eq!(s.checkpointer(), None);
        s.publish_checkpointer(3, 4, 5);
        assert_eq!(s.checkpointer(), Some((3, 4, 5)));
    }

    #[test]
    fn watch_list_dedups_and_bounds() {
        let a = watch("Max_Wal_Size").unwrap();
        assert_eq!(watch("max_wal_size"), Some(a));
        assert_eq!(watched_index("MAX_WAL_SIZE"), Some(a));
        assert_eq!(watch(""), None);
        assert!(watched().contains(&"max_wal_size".to_string()));
    }
}
