//! The host API table handed to every plugin, and the services behind it that need no
//! PostgreSQL call: logging queue, errors, shared regions and locks, setting snapshots,
//! clock, rmgr names. Defining a setting needs the server: the host installs a
//! [`Definer`] for that.

use crate::locks::{self, LockError};
use crate::registry::PluginSlot;
use crate::settings::{Setting, SettingDef, SettingKind, Value};
use crate::shared::RwSpinLock;
use std::ffi::{c_char, c_void, CStr};
use walker_abi::sdk::c_str;
use walker_abi::*;

pub use crate::host_context::{
    drain_logs, queue_log, rmgr_name_of, set_definer, set_rmgr_names, Definer, HostContext,
    LogLine, LOG_QUEUE_CAPACITY, PROCESS_HOST,
};

/// Copies `s` into a caller's buffer; `INVALID` when it does not fit.
///
/// # Safety
/// `buf` must be writable for `cap` bytes; `len_out` null or writable.
unsafe fn copy_out(s: &str, buf: *mut u8, cap: usize, len_out: *mut usize) -> WalkerStatus {
    if !len_out.is_null() {
        // SAFETY: caller's contract.
        unsafe { *len_out = s.len() };
    }
    if s.len() > cap || (buf.is_null() && !s.is_empty()) {
        return WalkerStatus::INVALID;
    }
    if !s.is_empty() {
        // SAFETY: `buf` holds `cap >= s.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len()) };
    }
    WalkerStatus::OK
}

/// Copies the longest prefix of `s` that fits `cap` bytes, cut at a character
/// boundary, into `buf`, and the full length to `len_out` (`service_result`'s rule:
/// a message too long for the buffer arrives cut, never as nothing).
///
/// # Safety
/// `buf` must be null or writable for `cap` bytes; `len_out` null or writable.
unsafe fn copy_out_cut(s: &str, buf: *mut u8, cap: usize, len_out: *mut usize) {
    if !len_out.is_null() {
        // SAFETY: caller's contract.
        unsafe { *len_out = s.len() };
    }
    if buf.is_null() {
        return;
    }
    let n = walker_abi::text::cut_utf8(s, cap).len();
    // SAFETY: `buf` holds `cap >= n` bytes.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), buf, n) };
}

// Every message `service_result` hands out fits the ABI's bound.
const _: () = assert!(crate::shared::MESSAGE_CAPACITY <= walker_abi::WALKER_SERVICE_MESSAGE_MAX);
const _: () = assert!(UNANSWERED.len() <= walker_abi::WALKER_SERVICE_MESSAGE_MAX);

/// # Safety
/// `p` must be null or valid for `len` bytes.
unsafe fn str_from(p: *const u8, len: usize) -> String {
    if p.is_null() || len == 0 {
        String::new()
    } else {
        // SAFETY: caller's contract.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p, len) }).into_owned()
    }
}

unsafe extern "C" fn api_log(
    plugin: *mut WalkerPlugin,
    level: WalkerLogLevel,
    msg: *const u8,
    len: usize,
) {
    // SAFETY: handles come from the host; `msg` is valid for `len` per the ABI.
    let (slot, message) = unsafe { (PluginSlot::from_handle(plugin), str_from(msg, len)) };
    let host = slot.map_or(&PROCESS_HOST, |s| s.host());
    let plugin = slot.map(|s| s.name.clone()).unwrap_or_else(|| "?".into());
    host.queue_log(LogLine {
        plugin,
        level,
        message,
    });
}

unsafe extern "C" fn api_set_error(plugin: *mut WalkerPlugin, msg: *const u8, len: usize) {
    // SAFETY: as in `api_log`.
    let (slot, message) = unsafe { (PluginSlot::from_handle(plugin), str_from(msg, len)) };
    if let Some(s) = slot {
        s.set_pending_error(message);
    }
}

unsafe extern "C" fn api_shmem_region(
    plugin: *mut WalkerPlugin,
    size_out: *mut usize,
) -> *mut c_void {
    // SAFETY: handles come from the host.
    let Some(slot) = (unsafe { PluginSlot::from_handle(plugin) }) else {
        return std::ptr::null_mut();
    };
    let (p, n) = slot.region();
    if !size_out.is_null() {
        // SAFETY: the ABI requires a writable pointer or null.
        unsafe { *size_out = n };
    }
    p as *mut c_void
}

fn region_lock(plugin: *mut WalkerPlugin) -> Option<(&'static PluginSlot, &'static RwSpinLock)> {
    // SAFETY: handles come from the host.
    let slot = unsafe { PluginSlot::from_handle(plugin) }?;
    Some((slot, &slot.region_header()?.lock))
}

/// Reports a lock wait that gave up: the plugin's last error and (at most once a
/// second per plugin) a warning in the server log, both naming the holder.
pub fn report_lock_failure(slot: &PluginSlot, e: &LockError) {
    if !matches!(e, LockError::TimedOut { .. }) {
        return;
    }
    let now = now_micros();
    let msg = format!(
        "plugin \"{}\": {}; a plugin must hold its lock only briefly (see the lock rule in the README), or remove it from walker.plugins",
        slot.name,
        e.describe(now)
    );
    if let Some(sh) = slot.shared() {
        sh.last_error.set(&msg);
        let last = sh
            .lock_reported_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < 1_000_000 {
            return;
        }
        sh.lock_reported_at
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }
    slot.host().queue_log(LogLine {
        plugin: slot.name.clone(),
        level: WalkerLogLevel::WARNING,
        message: msg,
    });
}

unsafe extern "C" fn api_lock_shared(plugin: *mut WalkerPlugin) {
    if let Some((_, l)) = region_lock(plugin) {
        locks::acquire_unbounded(l, false)
    }
}
unsafe extern "C" fn api_unlock_shared(plugin: *mut WalkerPlugin) {
    if let Some((_, l)) = region_lock(plugin) {
        locks::release(l, false);
    }
}
unsafe extern "C" fn api_lock_exclusive(plugin: *mut WalkerPlugin) {
    if let Some((_, l)) = region_lock(plugin) {
        locks::acquire_unbounded(l, true)
    }
}
unsafe extern "C" fn api_unlock_exclusive(plugin: *mut WalkerPlugin) {
    if let Some((_, l)) = region_lock(plugin) {
        locks::release(l, true);
    }
}

unsafe extern "C" fn api_lock_timed(
    plugin: *mut WalkerPlugin,
    exclusive: bool,
    wait_ms: u32,
) -> WalkerStatus {
    let Some((slot, l)) = region_lock(plugin) else {
        return WalkerStatus::INVALID;
    };
    match locks::acquire(
        l,
        exclusive,
        std::time::Duration::from_millis(wait_ms as u64),
    ) {
        Ok(()) => WalkerStatus::OK,
        Err(e @ LockError::TimedOut { .. }) => {
            report_lock_failure(slot, &e);
            slot.set_pending_error(e.describe(now_micros()));
            WalkerStatus::BUSY
        }
        Err(_) => WalkerStatus::INTERRUPTED,
    }
}

/// Shared path of every `define_*`: builds the definition, asks the server, keeps the setting.
///
/// # Safety
/// `plugin` must be a host handle; `name`, `description` null or NUL-terminated.
unsafe fn define(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    build: impl FnOnce(&str, &str, &str) -> Result<SettingDef, crate::settings::SettingError>,
) -> WalkerStatus {
    // SAFETY: caller's contract.
    let Some(slot) = (unsafe { PluginSlot::from_handle(plugin) }) else {
        return WalkerStatus::INVALID;
    };
    // SAFETY: caller's contract.
    let (name, description) =
        unsafe { (c_str(name).unwrap_or(""), c_str(description).unwrap_or("")) };
    let fail = |msg: String| {
        slot.set_pending_error(msg);
        WalkerStatus::INVALID
    };
    if !slot.initialising() {
        return fail(
            crate::settings::SettingError::NotDuringInit(format!("{}.{name}", slot.name))
                .to_string(),
        );
    }
    if slot.setting(name).is_some() {
        return fail(
            crate::settings::SettingError::Duplicate(format!("{}.{name}", slot.name)).to_string(),
        );
    }
    let def = match build(&slot.name, name, description) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    let setting: &'static Setting = Box::leak(Box::new(Setting::new(def)));
    if let Some(definer) = slot.host().definer() {
        if let Err(e) = definer(&setting.def, setting.storage()) {
            return fail(
                crate::settings::SettingError::Server(setting.def.full_name.clone(), e).to_string(),
            );
        }
    }
    slot.add_setting(setting);
    WalkerStatus::OK
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn api_define_int(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    default_value: i64,
    min_value: i64,
    max_value: i64,
    unit: WalkerSettingUnit,
    context: WalkerSettingContext,
) -> WalkerStatus {
    // SAFETY: forwarded ABI contract.
    unsafe {
        define(plugin, name, description, |p, n, d| {
            SettingDef::int(
                p,
                n,
                d,
                (default_value, min_value, max_value),
                unit,
                context,
            )
        })
    }
}

unsafe extern "C" fn api_define_real(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    default: f64,
    min: f64,
    max: f64,
    context: WalkerSettingContext,
) -> WalkerStatus {
    // SAFETY: forwarded ABI contract.
    unsafe {
        define(plugin, name, description, |p, n, d| {
            SettingDef::new(p, n, d, SettingKind::Real { default, min, max }, context)
        })
    }
}

unsafe extern "C" fn api_define_bool(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    default: bool,
    context: WalkerSettingContext,
) -> WalkerStatus {
    // SAFETY: forwarded ABI contract.
    unsafe {
        define(plugin, name, description, |p, n, d| {
            SettingDef::new(p, n, d, SettingKind::Bool { default }, context)
        })
    }
}

unsafe extern "C" fn api_define_string(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    default: *const c_char,
    context: WalkerSettingContext,
) -> WalkerStatus {
    // SAFETY: ABI contract: NUL-terminated or null.
    let default = unsafe { c_str(default) }.unwrap_or("").to_string();
    // SAFETY: forwarded ABI contract.
    unsafe {
        define(plugin, name, description, |p, n, d| {
            SettingDef::new(p, n, d, SettingKind::Str { default }, context)
        })
    }
}

unsafe extern "C" fn api_define_enum(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    description: *const c_char,
    default: u32,
    options: *const *const c_char,
    n_options: u32,
    context: WalkerSettingContext,
) -> WalkerStatus {
    let mut opts = Vec::new();
    if !options.is_null() {
        for i in 0..n_options as usize {
            // SAFETY: ABI contract: `n_options` NUL-terminated strings.
            opts.push(unsafe { c_str(*options.add(i)) }.unwrap_or("").to_string());
        }
    }
    // SAFETY: forwarded ABI contract.
    unsafe {
        define(plugin, name, description, |p, n, d| {
            SettingDef::new(
                p,
                n,
                d,
                SettingKind::Enum {
                    default,
                    options: opts,
                },
                context,
            )
        })
    }
}

/// # Safety
/// `plugin` a host handle; `name` null or NUL-terminated.
unsafe fn lookup(plugin: *mut WalkerPlugin, name: *const c_char) -> Option<Value> {
    // SAFETY: caller's contract.
    let slot = unsafe { PluginSlot::from_handle(plugin) }?;
    if name.is_null() {
        return None;
    }
    // SAFETY: caller's contract: a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    slot.setting_bytes(name).map(|s| s.value())
}

macro_rules! getter {
    ($fn:ident, $ty:ty, $pat:pat => $val:expr) => {
        unsafe extern "C" fn $fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            out: *mut $ty,
        ) -> WalkerStatus {
            // SAFETY: ABI contract.
            match unsafe { lookup(plugin, name) } {
                None => WalkerStatus::NOT_FOUND,
                Some($pat) if !out.is_null() => {
                    // SAFETY: `out` is writable per the ABI.
                    unsafe { *out = $val };
                    WalkerStatus::OK
                }
                Some(_) => WalkerStatus::INVALID,
            }
        }
    };
}

getter!(api_get_int, i64, Value::Int(v) => v);
getter!(api_get_real, f64, Value::Real(v) => v);
getter!(api_get_bool, bool, Value::Bool(v) => v);
getter!(api_get_enum, u32, Value::Enum(v) => v);

unsafe extern "C" fn api_get_string(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> WalkerStatus {
    // SAFETY: ABI contract.
    match unsafe { lookup(plugin, name) } {
        None => WalkerStatus::NOT_FOUND,
        // SAFETY: ABI contract on `buf`/`len_out`.
        Some(Value::Str(s)) => unsafe { copy_out(&s, buf, cap, len_out) },
        Some(_) => WalkerStatus::INVALID,
    }
}

pub use crate::clock::now_micros;

/// Records the server's `PG_VERSION_NUM` in [`PROCESS_HOST`] (the host, at load).
pub fn set_server_version(v: u32) {
    PROCESS_HOST.set_server_version(v);
}

// The ABI's function has no plugin handle: the process's host answers.
unsafe extern "C" fn api_server_version_num() -> u32 {
    PROCESS_HOST.server_version()
}

unsafe extern "C" fn api_now_micros() -> i64 {
    crate::host_context::PROCESS_HOST.now_micros()
}

unsafe extern "C" fn api_rmgr_name(
    rmid: u8,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> WalkerStatus {
    // The ABI's function has no plugin handle: the process's host answers.
    match PROCESS_HOST.rmgr_name_of(rmid) {
        // SAFETY: ABI contract on `buf`/`len_out`.
        Some(n) => unsafe { copy_out(&n, buf, cap, len_out) },
        None => WalkerStatus::NOT_FOUND,
    }
}

unsafe extern "C" fn api_watch_setting(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
) -> WalkerStatus {
    // SAFETY: ABI contract.
    let (slot, name) = unsafe { (PluginSlot::from_handle(plugin), c_str(name)) };
    let (Some(slot), Some(name)) = (slot, name) else {
        return WalkerStatus::INVALID;
    };
    if !slot.initialising() {
        slot.set_pending_error(format!(
            "watch_setting(\"{name}\") is only allowed during init"
        ));
        return WalkerStatus::INVALID;
    }
    match crate::services::watch(name) {
        Some(_) => WalkerStatus::OK,
        None => WalkerStatus::NOT_FOUND,
    }
}

unsafe extern "C" fn api_server_setting(
    plugin: *mut WalkerPlugin,
    name: *const c_char,
    field: WalkerSettingField,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> WalkerStatus {
    // SAFETY: ABI contract.
    let Some(name) = (unsafe { c_str(name) }) else {
        return WalkerStatus::INVALID;
    };
    let value = match crate::services::get() {
        Some(s) => crate::services::watched_index(name).and_then(|i| s.setting_field(i, field)),
        // No server publishes settings: those the host was given stand in for them.
        // SAFETY: ABI contract on `plugin`.
        None => unsafe { PluginSlot::from_handle(plugin) }
            .and_then(|slot| given_setting_field(slot.host(), name, field)),
    };
    match value {
        // SAFETY: ABI contract on `buf`/`len_out`.
        Some(v) => unsafe { copy_out(&v, buf, cap, len_out) },
        None => WalkerStatus::NOT_FOUND,
    }
}

/// The source (`pg_settings.source`) of a server setting a host without a server was
/// given: plugins that change settings through ALTER SYSTEM see that they cannot.
pub const GIVEN_SOURCE: &str = "pg_walker (no server)";

/// Field `field` of server setting `name` from those `host` was given (a host without
/// a server): the value, its source [`GIVEN_SOURCE`]; no unit (values are given in the
/// base unit), no file.
fn given_setting_field(
    host: &HostContext,
    name: &str,
    field: WalkerSettingField,
) -> Option<String> {
    let value = host.given_setting(name)?;
    match field {
        WalkerSettingField::VALUE | WalkerSettingField::RESET_VALUE => Some(value.to_string()),
        WalkerSettingField::SOURCE => Some(GIVEN_SOURCE.to_string()),
        WalkerSettingField::UNIT | WalkerSettingField::SOURCE_FILE => Some(String::new()),
        _ => None,
    }
}

unsafe extern "C" fn api_checkpointer_stats(
    _plugin: *mut WalkerPlugin,
    out: *mut WalkerCheckpointerStats,
) -> WalkerStatus {
    match crate::services::get().and_then(|s| s.checkpointer()) {
        Some((timed, requested, at)) if !out.is_null() => {
            // SAFETY: `out` is writable per the ABI.
            unsafe {
                *out = WalkerCheckpointerStats {
                    timed,
                    requested,
                    read_at_micros: at,
                }
            };
            WalkerStatus::OK
        }
        Some(_) => WalkerStatus::INVALID,
        None => WalkerStatus::NOT_FOUND,
    }
}

unsafe extern "C" fn api_request_service(
    plugin: *mut WalkerPlugin,
    request: *const WalkerServiceRequest,
    id_out: *mut u64,
) -> WalkerStatus {
    // SAFETY: ABI contract.
    let Some(slot) = (unsafe { PluginSlot::from_handle(plugin) }) else {
        return WalkerStatus::INVALID;
    };
    // SAFETY: ABI contract: null or a valid request.
    let Some(req) = (unsafe { request.as_ref() }) else {
        return WalkerStatus::INVALID;
    };
    // SAFETY: the request's buffers are valid for their lengths per the ABI.
    let (name, value) = unsafe {
        (
            str_from(req.name, req.name_len),
            str_from(req.value, req.value_len),
        )
    };
    let Some(services) = crate::services::get() else {
        slot.set_pending_error(slot.host().no_services_reason().into());
        return WalkerStatus::ERROR;
    };
    match services.submit(slot.index as u32, req.kind, &name, &value, now_micros()) {
        Ok(id) => {
            if !id_out.is_null() {
                // SAFETY: writable per the ABI.
                unsafe { *id_out = id };
            }
            WalkerStatus::OK
        }
        Err(e) => {
            let invalid = !matches!(e, crate::services::ServiceError::Full);
            slot.host().queue_log(LogLine {
                plugin: slot.name.clone(),
                level: WalkerLogLevel::WARNING,
                message: format!("service request refused: {e}"),
            });
            slot.set_pending_error(e.to_string());
            if invalid {
                WalkerStatus::INVALID
            } else {
                WalkerStatus::ERROR
            }
        }
    }
}

/// Sets what `request_service` tells a plugin of [`PROCESS_HOST`] when this process has
/// no services queue (a host without a server says why; the default says walker is not
/// preloaded).
pub fn set_no_services_reason(why: &'static str) {
    PROCESS_HOST.set_no_services_reason(why);
}

/// The reason a request fails when no services worker takes it.
pub const UNANSWERED: &str = "the walker services worker is not running, so nothing carried out this request: it connects to the database named by walker.database (see the server log for why it stopped; set walker.database to an existing database and restart)";

unsafe extern "C" fn api_service_result(
    plugin: *mut WalkerPlugin,
    id: u64,
    wait_ms: u32,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> WalkerStatus {
    use crate::services::Outcome;
    // SAFETY: ABI contract.
    let Some(slot) = (unsafe { PluginSlot::from_handle(plugin) }) else {
        return WalkerStatus::INVALID;
    };
    let Some(services) = crate::services::get() else {
        return WalkerStatus::NOT_FOUND;
    };
    let start = std::time::Instant::now();
    loop {
        match services.outcome(slot.index as u32, id, now_micros(), UNANSWERED) {
            Outcome::Unknown => return WalkerStatus::NOT_FOUND,
            Outcome::Done { ok, message } => {
                // SAFETY: ABI contract on `buf`/`len_out`. The status is the outcome
                // whether or not the message fit (`len_out` tells its length).
                unsafe { copy_out_cut(&message, buf, cap, len_out) };
                return if ok {
                    WalkerStatus::OK
                } else {
                    WalkerStatus::ERROR
                };
            }
            Outcome::Pending => {
                let waited = start.elapsed().as_millis() as u64;
                if waited >= wait_ms as u64 {
                    return WalkerStatus::PENDING;
                }
                let step = (wait_ms as u64 - waited).min(20) as u32;
                if !crate::services::pause(step) {
                    return WalkerStatus::INTERRUPTED;
                }
            }
        }
    }
}

unsafe extern "C" fn api_pause(ms: u32) -> WalkerStatus {
    if crate::services::pause(ms) {
        WalkerStatus::OK
    } else {
        WalkerStatus::INTERRUPTED
    }
}

/// The generation of the plugin's settings snapshots in this process: it advances
/// each time they are copied again from the server's values (after an assignment).
unsafe extern "C" fn api_settings_generation(plugin: *mut WalkerPlugin) -> u64 {
    // SAFETY: ABI contract: a host handle.
    unsafe { PluginSlot::from_handle(plugin) }.map_or(0, |slot| slot.settings_generation())
}

/// The table every plugin receives.
pub static HOST_API: WalkerHostApi = WalkerHostApi {
    struct_size: std::mem::size_of::<WalkerHostApi>() as u32,
    abi_major: WALKER_ABI_MAJOR,
    abi_minor: WALKER_ABI_MINOR,
    log: Some(api_log),
    set_error: Some(api_set_error),
    shmem_region: Some(api_shmem_region),
    lock_shared: Some(api_lock_shared),
    unlock_shared: Some(api_unlock_shared),
    lock_exclusive: Some(api_lock_exclusive),
    unlock_exclusive: Some(api_unlock_exclusive),
    define_int: Some(api_define_int),
    define_real: Some(api_define_real),
    define_bool: Some(api_define_bool),
    define_string: Some(api_define_string),
    define_enum: Some(api_define_enum),
    get_int: Some(api_get_int),
    get_real: Some(api_get_real),
    get_bool: Some(api_get_bool),
    get_enum: Some(api_get_enum),
    get_string: Some(api_get_string),
    now_micros: Some(api_now_micros),
    rmgr_name: Some(api_rmgr_name),
    server_version_num: Some(api_server_version_num),
    watch_setting: Some(api_watch_setting),
    server_setting: Some(api_server_setting),
    checkpointer_stats: Some(api_checkpointer_stats),
    request_service: Some(api_request_service),
    service_result: Some(api_service_result),
    pause: Some(api_pause),
    lock_timed: Some(api_lock_timed),
    settings_generation: Some(api_settings_generation),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_out_reports_needed_length() {
        let mut buf = [0u8; 4];
        let mut len = 0;
        assert_eq!(
            // SAFETY: valid buffers.
            unsafe { copy_out("hello", buf.as_mut_ptr(), 4, &mut len) },
            WalkerStatus::INVALID
        );
        assert_eq!(len, 5);
        assert_eq!(
            // SAFETY: valid buffers.
            unsafe { copy_out("hey", buf.as_mut_ptr(), 4, &mut len) },
            WalkerStatus::OK
        );
        assert_eq!((&buf[..3], len), (&b"hey"[..], 3));
    }

    #[test]
    fn service_message_too_long_arrives_cut_at_a_character_boundary() {
        let mut buf = [0u8; 7];
        let mut len = 0;
        // é is 2 bytes: 7 bytes hold "abcdé" and half of the next é, which is left out.
        let msg = "abcdééé";
        // SAFETY: valid buffers.
        unsafe { copy_out_cut(msg, buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(len, msg.len());
        assert_eq!(std::str::from_utf8(&buf[..6]).unwrap(), "abcdé");
        assert_eq!(buf[6], 0);
        let mut buf = [0u8; 16];
        // SAFETY: valid buffers.
        unsafe { copy_out_cut("hey", buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!((&buf[..3], len), (&b"hey"[..], 3));
    }

    #[test]
    fn log_queue_is_bounded() {
        let host = HostContext::new();
        for i in 0..LOG_QUEUE_CAPACITY + 5 {
            host.queue_log(LogLine {
                plugin: "p".into(),
                level: WalkerLogLevel::INFO,
                message: i.to_string(),
            });
        }
        let (lines, dropped) = host.drain_logs();
        assert_eq!(lines.len(), LOG_QUEUE_CAPACITY);
        assert_eq!(dropped, 5);
        assert_eq!(lines[0].message, "5");
        assert!(host.drain_logs().0.is_empty());
    }

    #[test]
    fn without_a_server_the_given_settings_answer_and_the_clock_can_be_the_wals() {
        let host: &'static HostContext = Box::leak(Box::new(HostContext::new()));
        host.set_given_settings(
            [("max_wal_size".to_string(), "1024".to_string())]
                .into_iter()
                .collect(),
        );
        let slot: &'static PluginSlot = Box::leak(Box::new(
            PluginSlot::new(0, "given", None, None, Vec::new(), "1".into(), None).in_host(host),
        ));
        let read = |name: &std::ffi::CStr, field| {
            let mut buf = [0u8; 64];
            let mut len = 0usize;
            // SAFETY: a slot's handle, a NUL-terminated name, a buffer and its length.
            let st = unsafe {
                api_server_setting(
                    slot.handle(),
                    name.as_ptr(),
                    field,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut len,
                )
            };
            (st, String::from_utf8_lossy(&buf[..len]).into_owned())
        };
        assert!(crate::services::get().is_none(), "no server in unit tests");
        assert_eq!(
            read(c"MAX_WAL_SIZE", WalkerSettingField::VALUE),
            (WalkerStatus::OK, "1024".to_string())
        );
        assert_eq!(
            read(c"max_wal_size", WalkerSettingField::SOURCE),
            (WalkerStatus::OK, GIVEN_SOURCE.to_string())
        );
        assert_eq!(
            read(c"checkpoint_timeout", WalkerSettingField::VALUE).0,
            WalkerStatus::NOT_FOUND
        );
        // The process's host was given nothing.
        assert_eq!(PROCESS_HOST.given_setting("max_wal_size"), None);

        let wall = crate::clock::now_micros();
        assert!(host.now_micros() >= wall, "the wall clock by default");
        host.use_wal_clock();
        assert_eq!(host.now_micros(), 0, "no record time read yet");
        host.note_wal_time(1_700_000_000_000_000);
        host.note_wal_time(1_600_000_000_000_000);
        assert_eq!(
            host.now_micros(),
            1_700_000_000_000_000,
            "the WAL clock never goes back"
        );
    }

    fn refuse(def: &SettingDef, _: crate::settings::Storage) -> Result<(), String> {
        Err(format!("{} refused", def.full_name))
    }

    #[test]
    fn a_plugin_logs_and_defines_through_its_own_host() {
        let host: &'static HostContext = Box::leak(Box::new(HostContext::new()));
        host.set_definer(refuse);
        host.set_no_services_reason("no server here");
        let slot: &'static PluginSlot = Box::leak(Box::new(
            PluginSlot::new(0, "own", None, None, Vec::new(), "1".into(), None).in_host(host),
        ));
        let msg = "hello";
        // SAFETY: a slot's handle and a message valid for its length.
        unsafe { api_log(slot.handle(), WalkerLogLevel::INFO, msg.as_ptr(), msg.len()) };
        let (lines, _) = host.drain_logs();
        assert_eq!(
            lines,
            vec![LogLine {
                plugin: "own".into(),
                level: WalkerLogLevel::INFO,
                message: "hello".into()
            }]
        );
        assert!(
            !PROCESS_HOST
                .drain_logs()
                .0
                .iter()
                .any(|l| l.plugin == "own"),
            "nothing reached the process's queue"
        );
        // Its host's definer answers (and refuses) the definition.
        slot.set_initialising(true);
        // SAFETY: a slot's handle and NUL-terminated strings.
        let st = unsafe {
            api_define_bool(
                slot.handle(),
                c"flag".as_ptr(),
                c"a flag".as_ptr(),
                false,
                WalkerSettingContext::SIGHUP,
            )
        };
        slot.set_initialising(false);
        let err = slot.check(st, "init").unwrap_err();
        assert!(err.contains("own.flag refused"), "{err}");
        assert_eq!(host.no_services_reason(), "no server here");
        assert_ne!(PROCESS_HOST.no_services_reason(), "no server here");
    }

    #[test]
    fn rmgr_names_lookup() {
        set_rmgr_names(vec![Some("XLOG".into()), None]);
        assert_eq!(rmgr_name_of(0).as_deref(), Some("XLOG"));
        assert_eq!(rmgr_name_of(1), None);
        assert_eq!(rmgr_name_of(200), None);
    }
}
