//! The process-local list of plugins: one slot per `walker.plugins` entry, created in
//! the postmaster and inherited by every server process it forks.

use crate::host_context::{HostContext, PROCESS_HOST};
use crate::negotiate::{FunctionInfo, ViewInfo};
use crate::settings::Setting;
use crate::shared::{PluginShared, PluginState, RegionHeader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use walker_abi::{
    WalkerHostApi, WalkerPlugin, WalkerPluginDescriptor, WalkerStatus, WALKER_SHMEM_SIZE_FAILED,
};

/// One listed plugin.
pub struct PluginSlot {
    /// Position in `walker.plugins`.
    pub index: usize,
    /// Name as listed (prefix of its settings and views).
    pub name: String,
    /// Library file, when found.
    pub path: Option<PathBuf>,
    /// Version the plugin declares.
    pub version: String,
    /// ABI version the plugin was built for, when its descriptor could be read.
    pub abi: Option<(u32, u32)>,
    /// The negotiated descriptor, when loaded.
    pub desc: Option<WalkerPluginDescriptor>,
    /// Declared views.
    pub views: Vec<ViewInfo>,
    /// Declared SQL functions (ABI 1.2).
    pub functions: Vec<FunctionInfo>,
    /// The plugin's own SQL, run after its views and functions are created (ABI 1.3).
    pub sql: Option<String>,
    /// The plugin's own role (ABI 1.3).
    pub role: Option<String>,
    /// Why it is not usable (load or init failure); `None` when usable.
    load_error: Mutex<Option<(PluginState, String)>>,
    initialising: AtomicBool,
    region: AtomicPtr<u8>,
    region_size: AtomicUsize,
    region_header: AtomicPtr<RegionHeader>,
    shared: AtomicPtr<PluginShared>,
    pending_error: Mutex<Option<String>>,
    settings: Mutex<Vec<&'static Setting>>,
    /// [`crate::settings::assignments`] when the settings were last refreshed.
    refreshed_at: AtomicU64,
    /// The host that runs it.
    host: &'static HostContext,
    _library: Option<libloading::Library>,
}

// SAFETY: the descriptor's pointers target immutable process-lifetime data of the
// loaded library (kept open by `_library`); all mutable fields are atomics or mutexes.
unsafe impl Send for PluginSlot {}
// SAFETY: as above.
unsafe impl Sync for PluginSlot {}

impl PluginSlot {
    /// A slot for a plugin that could not be loaded.
    pub fn not_loaded(
        index: usize,
        name: &str,
        path: Option<PathBuf>,
        abi: Option<(u32, u32)>,
        error: String,
    ) -> PluginSlot {
        let mut s = PluginSlot::new(index, name, path, None, Vec::new(), String::new(), None);
        s.abi = abi;
        *s.load_error.get_mut().unwrap() = Some((PluginState::NotLoaded, error));
        s
    }

    /// A slot for a loaded plugin.
    pub fn new(
        index: usize,
        name: &str,
        path: Option<PathBuf>,
        desc: Option<WalkerPluginDescriptor>,
        views: Vec<ViewInfo>,
        version: String,
        library: Option<libloading::Library>,
    ) -> PluginSlot {
        let abi = desc.as_ref().map(|d| (d.abi_major, d.abi_minor));
        PluginSlot {
            index,
            name: name.to_string(),
            path,
            version,
            abi,
            desc,
            views,
            functions: Vec::new(),
            sql: None,
            role: None,
            load_error: Mutex::new(None),
            initialising: AtomicBool::new(false),
            region: AtomicPtr::new(std::ptr::null_mut()),
            region_size: AtomicUsize::new(0),
            region_header: AtomicPtr::new(std::ptr::null_mut()),
            shared: AtomicPtr::new(std::ptr::null_mut()),
            pending_error: Mutex::new(None),
            settings: Mutex::new(Vec::new()),
            refreshed_at: AtomicU64::new(0),
            host: &PROCESS_HOST,
            _library: library,
        }
    }

    /// Sets the declared SQL functions.
    pub fn with_functions(mut self, functions: Vec<FunctionInfo>) -> PluginSlot {
        self.functions = functions;
        self
    }

    /// Sets the plugin's own SQL and role.
    pub fn with_sql_and_role(mut self, sql: Option<String>, role: Option<String>) -> PluginSlot {
        self.sql = sql;
        self.role = role;
        self
    }

    /// True when the plugin wants backend events (ABI 1.3).
    pub fn wants_backend_events(&self) -> bool {
        self.desc.as_ref().is_some_and(|d| d.on_backend.is_some())
    }

    /// The handle passed to the plugin.
    pub fn handle(&'static self) -> *mut WalkerPlugin {
        self as *const PluginSlot as *mut WalkerPlugin
    }

    /// The slot behind a handle.
    ///
    /// # Safety
    /// `h` must be a handle from [`PluginSlot::handle`] (or null).
    pub unsafe fn from_handle(h: *mut WalkerPlugin) -> Option<&'static PluginSlot> {
        // SAFETY: handles are addresses of leaked, never-freed slots.
        unsafe { (h as *const PluginSlot).as_ref() }
    }

    /// The context of the host that runs this plugin.
    pub fn host(&self) -> &'static HostContext {
        self.host
    }

    /// Runs this plugin in `host` instead of the process's (tests: each its own log
    /// queue, definer and names). Only before it is registered or initialised.
    pub fn in_host(mut self, host: &'static HostContext) -> PluginSlot {
        self.host = host;
        self
    }

    /// The load or init error, when the plugin is unusable.
    pub fn load_error(&self) -> Option<(PluginState, String)> {
        self.load_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when loaded and initialised: callbacks may be called.
    pub fn usable(&self) -> bool {
        self.desc.is_some() && self.load_error().is_none()
    }

    /// Calls the plugin's `init` with the host API table `api` (the host's
    /// `host_api::HOST_API`). On failure the slot is marked failed.
    pub fn init(&'static self, api: &'static WalkerHostApi) -> Result<(), String> {
        let Some(desc) = self.desc.as_ref() else {
            return Err("not loaded".into());
        };
        let Some(init) = desc.init else { return Ok(()) };
        self.initialising.store(true, Ordering::SeqCst);
        // SAFETY: `init` comes from a negotiated descriptor; the API table is static.
        let st = unsafe { init(api, self.handle()) };
        self.initialising.store(false, Ordering::SeqCst);
        match self.check(st, "init") {
            Ok(()) => Ok(()),
            Err(msg) => {
                *self.load_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((PluginState::Failed, msg.clone()));
                Err(msg)
            }
        }
    }

    /// The bytes of shared memory the plugin asks for (`None`: it has no
    /// `shmem_size`, or it is not usable). A plugin that reports a failure
    /// ([`WALKER_SHMEM_SIZE_FAILED`], e.g. a panic caught by the SDK) is refused: it
    /// becomes unusable with the message it gave, which is also returned.
    pub fn shmem_size(&'static self) -> Result<Option<usize>, String> {
        let Some(f) = self
            .desc
            .as_ref()
            .filter(|_| self.usable())
            .and_then(|d| d.shmem_size)
        else {
            return Ok(None);
        };
        // SAFETY: negotiated callback, called in the postmaster after init.
        let size = unsafe { f(self.handle()) };
        if size != WALKER_SHMEM_SIZE_FAILED {
            return Ok(Some(size));
        }
        let msg = self
            .check(WalkerStatus::ERROR, "shmem_size")
            .err()
            .unwrap_or_else(|| "shmem_size failed".into());
        *self.load_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((PluginState::Failed, msg.clone()));
        Err(msg)
    }

    /// True while `init` runs (settings may be defined only then).
    pub fn initialising(&self) -> bool {
        self.initialising.load(Ordering::SeqCst)
    }

    /// Marks the slot as inside `init` or not (tests that call the host API directly).
    #[cfg(test)]
    pub(crate) fn set_initialising(&self, on: bool) {
        self.initialising.store(on, Ordering::SeqCst);
    }

    /// Stores the message a callback reports with `set_error`.
    pub fn set_pending_error(&self, msg: String) {
        *self.pending_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    /// Turns a callback's status into a result, with the message it reported.
    ///
    /// A callback that returns still holding its region lock has the lock released
    /// here (this is called on the thread that made the call) and counts as failed:
    /// the lock rule says a hold never outlives the callback.
    ///
    /// `callback` names the call in messages; it is formatted only when there is one
    /// to write (this runs after every record).
    pub fn check(&self, st: WalkerStatus, callback: impl std::fmt::Display) -> Result<(), String> {
        let msg = self
            .pending_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let leaked = self
            .region_header()
            .map(|h| crate::locks::release_held_by_this_thread(&h.lock))
            .unwrap_or_default();
        if !leaked.is_empty() {
            let modes: Vec<String> = leaked
                .iter()
                .map(|m| format!("{m:?}").to_lowercase())
                .collect();
            return Err(format!(
                "{callback} returned holding its shared-memory lock ({}); the host released it. A plugin must release its lock before a callback returns",
                modes.join(", ")
            ));
        }
        if st.is_ok() {
            return Ok(());
        }
        let what = match st {
            WalkerStatus::PANIC => "panicked",
            WalkerStatus::INVALID => "reported invalid input",
            WalkerStatus::NOT_FOUND => "reported not found",
            _ => "failed",
        };
        Err(match msg {
            Some(m) => format!("{callback} {what}: {m}"),
            None => format!("{callback} {what} (status {}) without a message", st.0),
        })
    }

    /// Attaches the shared counters and region (after shared memory exists).
    pub fn attach_shared(
        &self,
        shared: *mut PluginShared,
        header: *mut RegionHeader,
        region: *mut u8,
        size: usize,
    ) {
        self.shared.store(shared, Ordering::Release);
        self.region_header.store(header, Ordering::Release);
        self.region.store(region, Ordering::Release);
        self.region_size.store(size, Ordering::Release);
    }

    /// Shared counters, once attached.
    pub fn shared(&self) -> Option<&'static PluginShared> {
        // SAFETY: the pointer is null or points into shared memory mapped for the life
        // of the process.
        unsafe { self.shared.load(Ordering::Acquire).as_ref() }
    }

    /// The region and its size (null, 0 when none).
    pub fn region(&self) -> (*mut u8, usize) {
        (
            self.region.load(Ordering::Acquire),
            self.region_size.load(Ordering::Acquire),
        )
    }

    /// The region's header (its lock), when the plugin has a region.
    pub fn region_header(&self) -> Option<&'static RegionHeader> {
        // SAFETY: as for `shared`.
        unsafe { self.region_header.load(Ordering::Acquire).as_ref() }
    }

    /// Current state: the load/init failure, else the shared state. Shared state
    /// that is still all-zero (after a start, before the worker started the plugin's
    /// lane) reads as loaded: "not loaded" comes only from a load failure, which this
    /// process knows.
    pub fn state(&self) -> PluginState {
        if let Some((s, _)) = self.load_error() {
            return s;
        }
        match self.shared().map(|s| s.state()) {
            None | Some(PluginState::NotLoaded) => PluginState::Loaded,
            Some(s) => s,
        }
    }

    /// Last error: the load/init failure, else the shared last error.
    pub fn last_error(&self) -> Option<String> {
        if let Some((_, m)) = self.load_error() {
            return Some(m);
        }
        self.shared().and_then(|s| s.last_error.get())
    }

    /// Marks the plugin failed at run time with `msg`. Not while the process exits:
    /// a callback that fails then fails because its lock is no longer granted, which
    /// is the exit's doing, not the plugin's.
    pub fn fail(&self, msg: &str) {
        if crate::locks::exiting() {
            return;
        }
        if let Some(s) = self.shared() {
            s.errors.fetch_add(1, Ordering::Relaxed);
            s.last_error.set(msg);
            s.set_state(PluginState::Failed);
        }
    }

    /// Adds a defined setting.
    pub fn add_setting(&self, s: &'static Setting) {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    /// Finds a setting by its short name.
    pub fn setting(&self, name: &str) -> Option<&'static Setting> {
        self.setting_bytes(name.as_bytes())
    }

    /// The setting whose name is `name` (its bytes: the host API's getters compare a
    /// plugin's C string without validating it as UTF-8 first; names are ASCII).
    pub fn setting_bytes(&self, name: &[u8]) -> Option<&'static Setting> {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .find(|s| s.def.name.as_bytes() == name)
    }

    /// Copies this plugin's settings' server values into their snapshots (without
    /// copying the list: hooks do this at every backend event).
    ///
    /// # Safety
    /// Call only on the thread the server changes settings on.
    pub unsafe fn refresh_settings(&self) {
        // Nothing was assigned since the last refresh: the snapshots hold the values
        // (hooks call this at every backend event).
        let now = crate::settings::assignments();
        if self.refreshed_at.load(Ordering::Acquire) == now {
            return;
        }
        for s in self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            // SAFETY: forwarded from the caller.
            unsafe { s.refresh() };
        }
        self.refreshed_at.store(now, Ordering::Release);
    }

    /// Which copy of the server's values the settings' snapshots hold: the assignment
    /// count at the last [`PluginSlot::refresh_settings`] that copied them (0: never
    /// refreshed). While it stays the same, the snapshots are unchanged.
    pub fn settings_generation(&self) -> u64 {
        self.refreshed_at.load(Ordering::Acquire)
    }

    /// All settings.
    pub fn settings(&self) -> Vec<&'static Setting> {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A host's plugins, in `walker.plugins` order. A process has one,
/// [`PROCESS_REGISTRY`] (what the free functions below use); tests make their own.
pub struct Registry {
    slots: RwLock<Vec<&'static PluginSlot>>,
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Registry {
        Registry {
            slots: RwLock::new(Vec::new()),
        }
    }

    /// Adds a slot for the life of the process.
    pub fn register(&self, slot: PluginSlot) -> &'static PluginSlot {
        let s: &'static PluginSlot = Box::leak(Box::new(slot));
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
        s
    }

    /// Every slot, in registration order.
    pub fn all(&self) -> Vec<&'static PluginSlot> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The slot of plugin `name`.
    pub fn find(&self, name: &str) -> Option<&'static PluginSlot> {
        self.all().into_iter().find(|s| s.name == name)
    }

    /// Copies every setting's server value into its snapshot.
    ///
    /// # Safety
    /// Call only on the thread the server changes settings on.
    pub unsafe fn refresh_settings(&self) {
        for slot in self.all() {
            // SAFETY: forwarded from the caller.
            unsafe { slot.refresh_settings() };
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

/// This process's plugins.
pub static PROCESS_REGISTRY: Registry = Registry::new();

/// Adds a slot to [`PROCESS_REGISTRY`] for the life of the process.
pub fn register(slot: PluginSlot) -> &'static PluginSlot {
    PROCESS_REGISTRY.register(slot)
}

/// Every slot of [`PROCESS_REGISTRY`], in `walker.plugins` order.
pub fn all() -> Vec<&'static PluginSlot> {
    PROCESS_REGISTRY.all()
}

/// The slot of plugin `name` in [`PROCESS_REGISTRY`].
pub fn find(name: &str) -> Option<&'static PluginSlot> {
    PROCESS_REGISTRY.find(name)
}

/// Copies every setting's server value into its snapshot, for [`PROCESS_REGISTRY`].
///
/// # Safety
/// Call only on the thread the server changes settings on.
pub unsafe fn refresh_settings() {
    // SAFETY: forwarded from the caller.
    unsafe { PROCESS_REGISTRY.refresh_settings() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_generation_moves_with_each_copy_of_the_values() {
        use crate::settings::{note_assigned, Setting, SettingDef, Storage, Value};
        use walker_abi::{WalkerSettingContext, WalkerSettingUnit};
        let slot = PluginSlot::new(0, "p", None, None, Vec::new(), "1".into(), None);
        let def = SettingDef::int(
            "p",
            "n",
            "",
            (5, 0, 10),
            WalkerSettingUnit::NONE,
            WalkerSettingContext::SIGHUP,
        );
        let setting: &'static Setting = Box::leak(Box::new(Setting::new(def.unwrap())));
        slot.add_setting(setting);
        assert_eq!(slot.settings_generation(), 0, "never copied");
        // SAFETY: this test thread is the only writer of the setting's variable.
        unsafe { slot.refresh_settings() };
        let first = slot.settings_generation();
        assert_ne!(first, 0);
        // The server assigns a new value: the next copy has a later generation (other
        // tests assign theirs concurrently, which only moves it further).
        let Storage::Int(p) = setting.storage() else {
            panic!("an int setting's storage")
        };
        // SAFETY: as above.
        unsafe { *p = 8 };
        note_assigned();
        // SAFETY: as above.
        unsafe { slot.refresh_settings() };
        let second = slot.settings_generation();
        assert!(second > first, "{second} after {first}");
        assert_eq!(setting.value(), Value::Int(8));
    }

    #[test]
    fn registries_are_separate() {
        let (a, b) = (Registry::new(), Registry::new());
        a.register(PluginSlot::new(
            0,
            "one",
            None,
            None,
            Vec::new(),
            "1".into(),
            None,
        ));
        b.register(PluginSlot::new(
            0,
            "two",
            None,
            None,
            Vec::new(),
            "1".into(),
            None,
        ));
        assert_eq!(
            a.all().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["one"]
        );
        assert!(a.find("two").is_none());
        assert!(b.find("two").is_some());
        assert!(
            find("one").is_none() && find("two").is_none(),
            "nothing in the process's"
        );
    }

    /// A plugin's `shmem_size` that fails the way the SDK reports a caught panic.
    unsafe extern "C" fn panicking_shmem_size(plugin: *mut WalkerPlugin) -> usize {
        let msg = "plugin panicked: cannot size the table";
        let set_error = crate::host_api::HOST_API.set_error.unwrap();
        // SAFETY: the handle the host passed; `msg` is valid for its length.
        unsafe { set_error(plugin, msg.as_ptr(), msg.len()) };
        WALKER_SHMEM_SIZE_FAILED
    }

    unsafe extern "C" fn modest_shmem_size(_plugin: *mut WalkerPlugin) -> usize {
        4096
    }

    fn slot(shmem_size: unsafe extern "C" fn(*mut WalkerPlugin) -> usize) -> &'static PluginSlot {
        // SAFETY: every field of the descriptor is an integer, an array of integers, a
        // raw pointer or an `Option` of a function pointer: all-zero bytes are valid.
        let mut desc: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        desc.shmem_size = Some(shmem_size);
        let slot = PluginSlot::new(0, "probe", None, Some(desc), Vec::new(), "0".into(), None);
        Box::leak(Box::new(slot))
    }

    #[test]
    fn a_failing_shmem_size_refuses_the_plugin_with_its_message() {
        let s = slot(panicking_shmem_size);
        let err = s.shmem_size().unwrap_err();
        assert_eq!(
            err,
            "shmem_size failed: plugin panicked: cannot size the table"
        );
        assert!(!s.usable());
        assert_eq!(s.load_error(), Some((PluginState::Failed, err)));
        assert_eq!(
            s.shmem_size(),
            Ok(None),
            "an unusable plugin is not asked again"
        );
    }

    #[test]
    fn fresh_shared_state_reads_as_loaded_until_the_worker_starts_the_plugin() {
        let s = slot(modest_shmem_size);
        // SAFETY: all-zero is a valid PluginShared (atomics and messages), as shared
        // memory is right after the server created it.
        let shared: &'static mut crate::shared::PluginShared =
            Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        s.attach_shared(shared, std::ptr::null_mut(), std::ptr::null_mut(), 0);
        assert_eq!(s.state(), PluginState::Loaded, "not 'not loaded'");
        s.shared().unwrap().set_state(PluginState::Running);
        assert_eq!(s.state(), PluginState::Running);
    }

    #[test]
    fn shmem_size_passes_a_size_through() {
        let s = slot(modest_shmem_size);
        assert_eq!(s.shmem_size(), Ok(Some(4096)));
        assert!(s.usable());
    }
}
