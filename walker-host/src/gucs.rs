//! The host's own settings (`walker.*`) and the definer that turns plugin-declared
//! settings into server settings (`<plugin>.*`).

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::ffi::{c_char, CStr, CString};
use walker_abi::{WalkerSettingContext, WalkerSettingUnit};
use walker_core::settings::{c_default, SettingDef, SettingKind, Storage};

/// `walker.plugins`: comma-separated plugin library names, loaded at server start.
pub static PLUGINS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `walker.enabled`: when off, the worker pauses (and catches up when turned on).
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `walker.naptime`: the longest the worker sleeps on its latch when caught up (ms):
/// while WAL flows it naps 5 ms, and each nap that finds nothing doubles up to this.
pub static NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(200);
/// `walker.batch_records`: most records in one batch handed to the dispatch threads.
pub static BATCH_RECORDS: GucSetting<i32> = GucSetting::<i32>::new(2048);
/// `walker.queue_batches`: batches each plugin's queue holds before the reader waits.
pub static QUEUE_BATCHES: GucSetting<i32> = GucSetting::<i32>::new(4);
/// `walker.max_retained_wal` (MB): most WAL walker's slot may hold back; -1 = no limit.
pub static MAX_RETAINED_WAL_MB: GucSetting<i32> = GucSetting::<i32>::new(10240);

/// `walker.plugin_timeout` (ms): the longest one plugin callback (one record's
/// `on_record`, `on_idle`, a snapshot's `save_state`, `shutdown`) may run. Past it the
/// plugin is cut off: state `stalled`, then `failed`, with the callback and LSN in its
/// `last_error`; the other plugins walk on. Range 100 ms .. 1 h, default 5 s.
pub static PLUGIN_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5_000);

/// `walker.snapshot_interval` (s): how often plugins with state save a snapshot, besides
/// at every checkpoint record and at shutdown; 0 = only then.
pub static SNAPSHOT_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(60);

/// `walker.database`: the database the services worker connects to (it applies settings
/// plugins ask for, sends their notifications and reads the checkpointer's counters);
/// empty: no services worker.
pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// `walker.lock_timeout` (ms): the longest any wait for a plugin's shared-memory lock
/// lasts (a backend reading a view or calling a plugin function, a statement admitted
/// by a plugin, a dispatch thread). A wait that reaches it fails with the holder
/// named; a hold already older than it fails later waiters at once.
pub static LOCK_TIMEOUT_MS: GucSetting<i32> =
    GucSetting::<i32>::new(walker_core::locks::DEFAULT_LOCK_TIMEOUT_MS as i32);

/// `walker.debug_error_holding_lock` (hidden, for tests): a plugin name; on the
/// worker's first start a thread of the worker takes that plugin's lock and the worker
/// then raises an ERROR, to show that the exit releases the lock. Empty: off.
pub static DEBUG_ERROR_HOLDING_LOCK: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// The `walker.debug_error_holding_lock` value, when set.
pub fn debug_error_holding_lock() -> Option<String> {
    DEBUG_ERROR_HOLDING_LOCK
        .get()
        .map(|c| c.to_string_lossy().trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Defines the `walker.*` settings: all of them under `shared_preload_libraries`; the
/// ones a reload may change when the library is loaded any other way (`LOAD`, `CREATE
/// EXTENSION` in a server that does not preload walker), because the server ends the
/// session (FATAL) of a library that defines a server-start setting after startup.
pub fn define() {
    // SAFETY: reading a server global on the main thread, in _PG_init.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        define_server_start();
    }
    GucRegistry::define_int_guc(
        c"walker.lock_timeout",
        c"Longest wait for a plugin's shared-memory lock.",
        c"A wait that reaches it fails with the holder named in the error and the log; a hold already older than it fails later waiters at once. Plugins must hold their lock only briefly.",
        &LOCK_TIMEOUT_MS,
        1,
        600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"walker.debug_error_holding_lock",
        c"For tests: makes the walker worker raise an ERROR while one of its threads holds the named plugin's lock (first worker start only).",
        c"",
        &DEBUG_ERROR_HOLDING_LOCK,
        GucContext::Sighup,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"walker.enabled",
        c"Whether the walker worker reads WAL; when off it pauses and catches up later.",
        c"",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"walker.naptime",
        c"The longest the walker worker sleeps once caught up with the WAL (while WAL flows it naps 5 ms, doubling while nothing new arrives).",
        c"",
        &NAPTIME_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"walker.batch_records",
        c"Most WAL records the walker hands to its plugins in one batch.",
        c"",
        &BATCH_RECORDS,
        1,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"walker.max_retained_wal",
        c"Most WAL walker's replication slot may hold back while walker is behind or paused (-1: no limit).",
        c"Past it, walker releases the WAL it has not read, reports the gap in walker.status and the log, and goes on.",
        &MAX_RETAINED_WAL_MB,
        -1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"walker.plugin_timeout",
        c"Longest time one plugin callback may run before the plugin is cut off.",
        c"A plugin whose callback (on_record, on_idle, save_state, shutdown) runs longer is marked stalled, then failed, with the callback and LSN in walker.plugins.last_error; its thread is abandoned and the other plugins walk on. Fix the plugin (or raise this) and restart the server to run it again.",
        &PLUGIN_TIMEOUT_MS,
        100,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"walker.snapshot_interval",
        c"How often plugins that keep state save a snapshot, besides at checkpoints and shutdown (0: only then).",
        c"walker's replication slot keeps the WAL since the oldest snapshot, so a shorter interval retains less WAL and replays less after a crash.",
        &SNAPSHOT_INTERVAL_S,
        0,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

/// The settings that change only at a server start.
fn define_server_start() {
    GucRegistry::define_string_guc(
        c"walker.database",
        c"Database the walker services worker connects to (empty: no services worker).",
        c"The services worker carries out what plugins ask of the server (ALTER SYSTEM and a reload, NOTIFY) and publishes the settings and checkpointer counters they read. Notifications are sent in this database.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"walker.plugins",
        c"Plugins the walker loads at server start (library names, comma-separated).",
        c"Each name is a shared library in dynamic_library_path ($libdir by default); names with a path separator are refused.",
        &PLUGINS,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"walker.queue_batches",
        c"Batches each plugin's queue holds before the WAL reader waits for it.",
        c"",
        &QUEUE_BATCHES,
        1,
        1024,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

/// `walker.plugin_timeout` as a duration.
pub fn plugin_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(PLUGIN_TIMEOUT_MS.get().max(100) as u64)
}

/// The retention bound in bytes (`None`: unbounded).
pub fn max_retained_bytes() -> Option<u64> {
    let mb = MAX_RETAINED_WAL_MB.get();
    (mb >= 0).then(|| (mb as u64).saturating_mul(1 << 20))
}

/// The `walker.database` value, when not empty.
pub fn database() -> Option<String> {
    DATABASE
        .get()
        .map(|c| c.to_string_lossy().trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The `walker.plugins` value ("" when unset).
pub fn plugins_value() -> String {
    PLUGINS
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Marks a prefix reserved, so misspelt settings under it are reported.
pub fn reserve_prefix(prefix: &str) {
    let c = CString::new(prefix).expect("identifiers have no NUL");
    // SAFETY: called in _PG_init on the main thread with a valid C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c.as_ptr()) };
}

fn leak(s: &str) -> *const c_char {
    CString::new(s.replace('\0', " "))
        .expect("NULs replaced")
        .into_raw()
}

fn context(c: WalkerSettingContext) -> pg_sys::GucContext::Type {
    match c {
        WalkerSettingContext::POSTMASTER => pg_sys::GucContext::PGC_POSTMASTER,
        WalkerSettingContext::SUSET => pg_sys::GucContext::PGC_SUSET,
        WalkerSettingContext::USERSET => pg_sys::GucContext::PGC_USERSET,
        _ => pg_sys::GucContext::PGC_SIGHUP,
    }
}

fn unit_flags(u: WalkerSettingUnit) -> i32 {
    (match u {
        WalkerSettingUnit::BYTES => pg_sys::GUC_UNIT_BYTE,
        WalkerSettingUnit::KB => pg_sys::GUC_UNIT_KB,
        WalkerSettingUnit::MB => pg_sys::GUC_UNIT_MB,
        WalkerSettingUnit::MS => pg_sys::GUC_UNIT_MS,
        WalkerSettingUnit::S => pg_sys::GUC_UNIT_S,
        WalkerSettingUnit::MIN => pg_sys::GUC_UNIT_MIN,
        _ => 0,
    }) as i32
}

/// Defines a plugin setting in the server. Installed as walker-core's definer; runs
/// in the postmaster during a plugin's `init`. A server error becomes `Err`, so a
/// plugin's bad definition cannot stop the server.
// The server calls a setting's assign hook whenever it gives the variable a value
// (its definition, SET, RESET, a reload, the end of a transaction that changed it):
// each tells walker-core, so the per-event refresh of the plugins' settings copies
// values only after a change.
unsafe extern "C-unwind" fn assigned_int(_new: std::ffi::c_int, _extra: *mut std::ffi::c_void) {
    walker_core::settings::note_assigned();
}
unsafe extern "C-unwind" fn assigned_real(_new: f64, _extra: *mut std::ffi::c_void) {
    walker_core::settings::note_assigned();
}
unsafe extern "C-unwind" fn assigned_bool(_new: bool, _extra: *mut std::ffi::c_void) {
    walker_core::settings::note_assigned();
}
unsafe extern "C-unwind" fn assigned_string(_new: *const c_char, _extra: *mut std::ffi::c_void) {
    walker_core::settings::note_assigned();
}
unsafe extern "C-unwind" fn assigned_enum(_new: std::ffi::c_int, _extra: *mut std::ffi::c_void) {
    walker_core::settings::note_assigned();
}

pub fn define_plugin_setting(def: &SettingDef, storage: Storage) -> Result<(), String> {
    let def = def.clone();
    PgTryBuilder::new(move || {
        let name = leak(&def.full_name);
        let desc = leak(&def.description);
        let ctx = context(def.context);
        // SAFETY: all strings are leaked (they must live for the process), the storage
        // pointers are leaked by walker-core, and we are in _PG_init on the main thread.
        unsafe {
            match (&def.kind, storage) {
                (
                    SettingKind::Int {
                        default,
                        min,
                        max,
                        unit,
                    },
                    Storage::Int(p),
                ) => pg_sys::DefineCustomIntVariable(
                    name,
                    desc,
                    std::ptr::null(),
                    p,
                    *default,
                    *min,
                    *max,
                    ctx,
                    unit_flags(*unit),
                    None,
                    Some(assigned_int),
                    None,
                ),
                (SettingKind::Real { default, min, max }, Storage::Real(p)) => {
                    pg_sys::DefineCustomRealVariable(
                        name,
                        desc,
                        std::ptr::null(),
                        p,
                        *default,
                        *min,
                        *max,
                        ctx,
                        0,
                        None,
                        Some(assigned_real),
                        None,
                    )
                }
                (SettingKind::Bool { default }, Storage::Bool(p)) => {
                    pg_sys::DefineCustomBoolVariable(
                        name,
                        desc,
                        std::ptr::null(),
                        p,
                        *default,
                        ctx,
                        0,
                        None,
                        Some(assigned_bool),
                        None,
                    )
                }
                (SettingKind::Str { .. }, Storage::Str(p)) => {
                    let boot = c_default(&def)
                        .map(|c| c.into_raw() as *const c_char)
                        .unwrap_or(std::ptr::null());
                    pg_sys::DefineCustomStringVariable(
                        name,
                        desc,
                        std::ptr::null(),
                        p,
                        boot,
                        ctx,
                        0,
                        None,
                        Some(assigned_string),
                        None,
                    )
                }
                (SettingKind::Enum { default, options }, Storage::Enum(p)) => {
                    let mut entries: Vec<pg_sys::config_enum_entry> = options
                        .iter()
                        .enumerate()
                        .map(|(i, o)| pg_sys::config_enum_entry {
                            name: leak(o),
                            val: i as i32,
                            hidden: false,
                        })
                        .collect();
                    entries.push(pg_sys::config_enum_entry {
                        name: std::ptr::null(),
                        val: 0,
                        hidden: false,
                    });
                    let entries: &'static [pg_sys::config_enum_entry] =
                        Box::leak(entries.into_boxed_slice());
                    pg_sys::DefineCustomEnumVariable(
                        name,
                        desc,
                        std::ptr::null(),
                        p,
                        *default as i32,
                        entries.as_ptr(),
                        ctx,
                        0,
                        None,
                        Some(assigned_enum),
                        None,
                    )
                }
                _ => return Err("internal error: setting kind and storage differ".to_string()),
            }
        }
        Ok(())
    })
    .catch_others(|e| Err(format!("the server refused the setting: {e:?}")))
    .execute()
}

/// Reads a server setting by name (main thread only).
pub fn server_setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption with missing_ok returns null or a valid string; main thread.
    let p = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null, NUL-terminated.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}
