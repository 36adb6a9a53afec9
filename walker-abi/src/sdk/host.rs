//! [`Host`]: the host's service table bound to this plugin (logging, clock, server
//! information, pauses). Settings, shared memory and service requests are in their
//! own modules.

use super::{PluginError, PluginResult};
use crate::types::*;
use std::ffi::{c_char, CString};

/// The host services, bound to this plugin.
#[derive(Clone, Copy)]
pub struct Host {
    pub(super) api: *const WalkerHostApi,
    pub(super) plugin: *mut WalkerPlugin,
}

// SAFETY: the host API table is immutable and valid for the process; the host's
// services are documented as callable from any thread it calls the plugin on.
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NUL bytes were replaced")
}

/// Longest setting name [`with_cname`] passes without allocating.
const STACK_NAME: usize = 128;

/// Calls `f` with `name` as a NUL-terminated string: copied to the stack when it is
/// short and has no NUL byte (setting names, read at every backend event that needs
/// them), else through [`cstring`].
pub(super) fn with_cname<R>(name: &str, f: impl FnOnce(*const c_char) -> R) -> R {
    let b = name.as_bytes();
    if b.len() < STACK_NAME && !b.contains(&0) {
        // Only the name and its NUL are written (not the whole buffer).
        let mut buf = std::mem::MaybeUninit::<[u8; STACK_NAME]>::uninit();
        let p = buf.as_mut_ptr() as *mut u8;
        // SAFETY: `b.len() + 1 <= STACK_NAME` bytes are written inside the buffer, and
        // `f` reads the string up to its NUL only.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
            p.add(b.len()).write(0);
        }
        f(p as *const c_char)
    } else {
        let c = cstring(name);
        f(c.as_ptr())
    }
}

impl Host {
    /// Binds the raw table and handle (the SDK does this in `init`).
    ///
    /// # Safety
    /// `api` must point to a host API table valid for the process.
    pub unsafe fn from_raw(api: *const WalkerHostApi, plugin: *mut WalkerPlugin) -> Self {
        Host { api, plugin }
    }

    pub(super) fn api(&self) -> &WalkerHostApi {
        // SAFETY: `from_raw`'s contract: the table lives for the process.
        unsafe { &*self.api }
    }

    /// Writes a message to the server log.
    pub fn log(&self, level: WalkerLogLevel, msg: &str) {
        if let Some(f) = self.api().log {
            // SAFETY: `msg` is valid for its length during the call.
            unsafe { f(self.plugin, level, msg.as_ptr(), msg.len()) }
        }
    }

    /// Logs at `LOG` level.
    pub fn info(&self, msg: &str) {
        self.log(WalkerLogLevel::INFO, msg)
    }

    /// Logs at `WARNING` level.
    pub fn warning(&self, msg: &str) {
        self.log(WalkerLogLevel::WARNING, msg)
    }

    pub(super) fn set_error(&self, msg: &str) {
        if let Some(f) = self.api().set_error {
            // SAFETY: `msg` is valid for its length during the call.
            unsafe { f(self.plugin, msg.as_ptr(), msg.len()) }
        }
    }

    /// The host's clock in microseconds since the Unix epoch: the wall clock, or in a
    /// host replaying WAL written earlier (`pg_walker walk`) the newest record time it
    /// read (see `WalkerHostApi::now_micros`).
    pub fn now_micros(&self) -> i64 {
        match self.api().now_micros {
            // SAFETY: no arguments.
            Some(f) => unsafe { f() },
            None => 0,
        }
    }

    /// A number that changes whenever this plugin's settings may read differently in
    /// this process (ABI 1.6): keep values read on a hot path with it, and read them
    /// again when it differs. `None` when the host cannot tell (read them each time).
    /// Read it before the settings it guards.
    pub fn settings_generation(&self) -> Option<u64> {
        let f = self
            .api()
            .settings_generation
            .filter(|_| self.has(WALKER_HOST_API_V1_6_SIZE as usize))?;
        // SAFETY: the handle is the one the host gave this plugin.
        let g = unsafe { f(self.plugin) };
        (g != 0).then_some(g)
    }

    /// The server's `PG_VERSION_NUM` (e.g. 150008), when the host tells it (ABI 1.1).
    pub fn server_version_num(&self) -> Option<u32> {
        let end = std::mem::offset_of!(WalkerHostApi, server_version_num)
            + std::mem::size_of::<Option<unsafe extern "C" fn() -> u32>>();
        let f = self.api().server_version_num.filter(|_| self.has(end))?;
        // SAFETY: a host service without arguments.
        Some(unsafe { f() }).filter(|&v| v != 0)
    }

    /// True when the host's table reaches the end of field `end_offset` (a field of a
    /// later minor than the host's is absent).
    pub(super) fn has(&self, end_offset: usize) -> bool {
        self.api().struct_size as usize >= end_offset
    }

    pub(super) fn has_v1_2(&self) -> bool {
        self.has(WALKER_HOST_API_V1_2_SIZE as usize)
    }

    /// Asks the host to publish server setting `name` for [`Host::server_setting`]
    /// (ABI 1.2). Only in `init`.
    pub fn watch_setting(&self, name: &str) -> PluginResult {
        let f = self
            .api()
            .watch_setting
            .filter(|_| self.has_v1_2())
            .ok_or_else(|| {
                PluginError::new("this walker host is older than ABI 1.2 (no server settings)")
            })?;
        let c = cstring(name);
        // SAFETY: a NUL-terminated name; the host copies it.
        let st = unsafe { f(self.plugin, c.as_ptr()) };
        self.status(st, "watch_setting", name)
    }

    /// One field of a watched server setting as `pg_settings` shows it (ABI 1.2);
    /// `None` when unknown or not published yet.
    pub fn server_setting(&self, name: &str, field: WalkerSettingField) -> Option<String> {
        let f = self.api().server_setting.filter(|_| self.has_v1_2())?;
        let c = cstring(name);
        let mut buf = vec![0u8; 512];
        let mut len = 0usize;
        // SAFETY: `buf` is writable for its length.
        let st = unsafe {
            f(
                self.plugin,
                c.as_ptr(),
                field,
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        (st.is_ok() && len <= buf.len()).then(|| String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// The checkpointer's counters as last published (ABI 1.2).
    pub fn checkpointer_stats(&self) -> Option<WalkerCheckpointerStats> {
        let f = self.api().checkpointer_stats.filter(|_| self.has_v1_2())?;
        let mut out = WalkerCheckpointerStats::default();
        // SAFETY: `out` is writable.
        unsafe { f(self.plugin, &mut out) }.is_ok().then_some(out)
    }

    /// Sleeps up to `ms` (ABI 1.2); false when a backend's wait was interrupted (return
    /// at once: the host raises the cancel).
    pub fn pause(&self, ms: u32) -> bool {
        match self.api().pause.filter(|_| self.has_v1_2()) {
            // SAFETY: a host service with a plain argument.
            Some(f) => (unsafe { f(ms) }) == WalkerStatus::OK,
            None => {
                std::thread::sleep(std::time::Duration::from_millis(ms as u64));
                true
            }
        }
    }

    /// The server's name for resource manager `rmid`, when it has one.
    pub fn rmgr_name(&self, rmid: u8) -> Option<String> {
        let f = self.api().rmgr_name?;
        let mut buf = [0u8; 64];
        let mut len = 0usize;
        // SAFETY: `buf` is writable for its length.
        let st = unsafe { f(rmid, buf.as_mut_ptr(), buf.len(), &mut len) };
        if st.is_ok() && len <= buf.len() {
            Some(String::from_utf8_lossy(&buf[..len]).into_owned())
        } else {
            None
        }
    }
}
