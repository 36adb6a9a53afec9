//! The context a host gives the plugins it runs: how settings are defined, where their
//! log lines wait, the resource-manager names, the server version, and why service
//! requests fail when nothing takes them. Each plugin slot points to its host's
//! context; a process has one ([`PROCESS_HOST`]: the server's processes, or
//! `pg_walker`), and tests make their own. It depends on nothing but settings, so the
//! registry and the host API both use it without importing each other.

use crate::settings::{SettingDef, Storage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use walker_abi::WalkerLogLevel;

/// Defines a setting in the server (installed by the host; runs on the main thread
/// during `init`).
pub type Definer = fn(&SettingDef, Storage) -> Result<(), String>;

/// A message a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Plugin name.
    pub plugin: String,
    /// Severity.
    pub level: WalkerLogLevel,
    /// Text.
    pub message: String,
}

/// Most queued log lines kept; older ones are dropped and counted.
pub const LOG_QUEUE_CAPACITY: usize = 10_000;

struct LogQueue {
    lines: Vec<LogLine>,
    dropped: u64,
}

/// What the host that runs the plugins gives them, in one place: how settings are
/// defined, where logged lines wait, the resource-manager names, the server version,
/// and why service requests fail when nothing takes them. Each plugin slot points to
/// its host's context ([`PluginSlot::host`]); a process has one, [`PROCESS_HOST`]
/// (the server's processes, or `pg_walker`), and tests make their own.
pub struct HostContext {
    definer: OnceLock<Definer>,
    log: Mutex<LogQueue>,
    rmgr_names: RwLock<Vec<Option<String>>>,
    server_version: AtomicU32,
    no_services: OnceLock<&'static str>,
    given_settings: OnceLock<BTreeMap<String, String>>,
    wal_clock: AtomicBool,
    wal_time_us: AtomicI64,
}

impl HostContext {
    /// A context with nothing installed yet.
    pub const fn new() -> HostContext {
        HostContext {
            definer: OnceLock::new(),
            log: Mutex::new(LogQueue {
                lines: Vec::new(),
                dropped: 0,
            }),
            rmgr_names: RwLock::new(Vec::new()),
            server_version: AtomicU32::new(0),
            no_services: OnceLock::new(),
            given_settings: OnceLock::new(),
            wal_clock: AtomicBool::new(false),
            wal_time_us: AtomicI64::new(0),
        }
    }

    /// Installs the setting definer (once; later calls change nothing).
    pub fn set_definer(&self, d: Definer) {
        let _ = self.definer.set(d);
    }

    /// The installed setting definer, if any.
    pub fn definer(&self) -> Option<Definer> {
        self.definer.get().copied()
    }

    /// Queues a log line (any thread).
    pub fn queue_log(&self, line: LogLine) {
        let mut q = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if q.lines.len() >= LOG_QUEUE_CAPACITY {
            q.lines.remove(0);
            q.dropped = q.dropped.saturating_add(1);
        }
        q.lines.push(line);
    }

    /// Takes the queued lines and the count of lines dropped since the last call.
    pub fn drain_logs(&self) -> (Vec<LogLine>, u64) {
        let mut q = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = std::mem::take(&mut q.dropped);
        (std::mem::take(&mut q.lines), dropped)
    }

    /// Sets the resource-manager names.
    pub fn set_rmgr_names(&self, names: Vec<Option<String>>) {
        *self.rmgr_names.write().unwrap_or_else(|e| e.into_inner()) = names;
    }

    /// Name of `rmid`, when known.
    pub fn rmgr_name_of(&self, rmid: u8) -> Option<String> {
        self.rmgr_names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(rmid as usize)
            .cloned()
            .flatten()
    }

    /// Records the server's `PG_VERSION_NUM`.
    pub fn set_server_version(&self, v: u32) {
        self.server_version.store(v, Ordering::Relaxed);
    }

    /// The recorded `PG_VERSION_NUM` (0 before the host set it).
    pub fn server_version(&self) -> u32 {
        self.server_version.load(Ordering::Relaxed)
    }

    /// Sets what `request_service` tells a plugin when there is no services queue
    /// (once; the default says walker is not preloaded).
    pub fn set_no_services_reason(&self, why: &'static str) {
        let _ = self.no_services.set(why);
    }

    /// What a service request is told when there is no services queue.
    pub fn no_services_reason(&self) -> &'static str {
        self.no_services
            .get()
            .copied()
            .unwrap_or("service requests need walker in shared_preload_libraries")
    }

    /// Gives the server settings plugins read with `server_setting` when no server
    /// publishes them (a host without a server: `pg_walker --set server.NAME=VALUE`),
    /// by lower-case name, each value in the setting's base unit (once).
    pub fn set_given_settings(&self, settings: BTreeMap<String, String>) {
        let _ = self.given_settings.set(settings);
    }

    /// A server setting the host was given (see [`HostContext::set_given_settings`]).
    pub fn given_setting(&self, name: &str) -> Option<&str> {
        let name = name.trim().to_ascii_lowercase();
        self.given_settings.get()?.get(&name).map(String::as_str)
    }

    /// Makes the plugins' clock the WAL's (a host replaying WAL that was written
    /// earlier): from then on [`HostContext::now_micros`] is the newest record time
    /// noted ([`HostContext::note_wal_time`]), so what plugins measure by the clock
    /// (windows, intervals, cool-downs) is measured in the WAL's time.
    pub fn use_wal_clock(&self) {
        self.wal_clock.store(true, Ordering::Release);
    }

    /// Notes a record's time (µs since the Unix epoch): the WAL clock never goes back.
    pub fn note_wal_time(&self, time_us: i64) {
        self.wal_time_us.fetch_max(time_us, Ordering::AcqRel);
    }

    /// The plugins' clock (µs since the Unix epoch): the wall clock, or with
    /// [`HostContext::use_wal_clock`] the newest record time noted (0 before one was).
    pub fn now_micros(&self) -> i64 {
        if self.wal_clock.load(Ordering::Acquire) {
            self.wal_time_us.load(Ordering::Acquire)
        } else {
            crate::clock::now_micros()
        }
    }
}

impl Default for HostContext {
    fn default() -> Self {
        HostContext::new()
    }
}

/// This process's host context: every plugin slot's unless a test gives it another.
pub static PROCESS_HOST: HostContext = HostContext::new();

/// Installs the server-side setting definer in [`PROCESS_HOST`].
pub fn set_definer(d: Definer) {
    PROCESS_HOST.set_definer(d);
}

/// Queues a log line in [`PROCESS_HOST`] (any thread).
pub fn queue_log(line: LogLine) {
    PROCESS_HOST.queue_log(line);
}

/// Takes [`PROCESS_HOST`]'s queued lines and the count of lines dropped since the last
/// call (main thread: it writes them to the server log).
pub fn drain_logs() -> (Vec<LogLine>, u64) {
    PROCESS_HOST.drain_logs()
}

/// Sets [`PROCESS_HOST`]'s resource-manager names (the host reads them from the server
/// on its main thread).
pub fn set_rmgr_names(names: Vec<Option<String>>) {
    PROCESS_HOST.set_rmgr_names(names);
}

/// Name of `rmid` in [`PROCESS_HOST`], when known.
pub fn rmgr_name_of(rmid: u8) -> Option<String> {
    PROCESS_HOST.rmgr_name_of(rmid)
}
