//! The `#[repr(C)]` types shared by the walker host and its plugins (ABI v1).
//!
//! Rules every type here follows, so that a plugin binary keeps working when the
//! host gains features:
//! - New fields are only ever appended; a struct that can grow carries `struct_size`.
//! - Function pointers are nullable (`Option<unsafe extern "C" fn ...>`): a null one
//!   means "not provided" and the caller skips it.
//! - Closed sets of values (status, column type, log level, ...) are `u32`/`i32`
//!   newtypes with associated constants, never Rust enums, so an unknown value coming
//!   from C is not undefined behaviour: it is rejected.
//! - No callback ever unwinds across the boundary: errors are status codes, and the
//!   message travels through [`WalkerHostApi::set_error`].

use abi_stable::StableAbi;
use std::ffi::{c_char, c_void};

/// Major version of the ABI. The host loads only plugins with the same major.
pub const WALKER_ABI_MAJOR: u32 = 1;
/// Minor version of the ABI. The host loads plugins whose minor is at most its own.
pub const WALKER_ABI_MINOR: u32 = 6;

/// Name of the symbol every plugin exports: `const WalkerPluginDescriptor *walker_plugin_entry(void)`.
pub const WALKER_PLUGIN_ENTRY_SYMBOL: &str = "walker_plugin_entry";
/// Name of the optional symbol Rust plugins export (the SDK's export macro does it):
/// it returns the `abi_stable` type layout of [`WalkerPluginDescriptor`] the plugin was
/// built with, which the host compares with its own before calling anything.
pub const WALKER_PLUGIN_LAYOUT_SYMBOL: &str = "walker_plugin_layout";

/// Number of 64-bit words in a resource-manager subscription mask (256 rmgr ids:
/// the built-in ones and the custom range 128..=255).
pub const WALKER_RMGR_MASK_WORDS: usize = 4;

/// Result of every callback and of the host services that can fail.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WalkerStatus(pub i32);

impl WalkerStatus {
    /// The call succeeded.
    pub const OK: WalkerStatus = WalkerStatus(0);
    /// The call failed; the message was passed to [`WalkerHostApi::set_error`].
    pub const ERROR: WalkerStatus = WalkerStatus(1);
    /// The plugin panicked (Rust SDK) and the panic was caught at the boundary.
    pub const PANIC: WalkerStatus = WalkerStatus(2);
    /// An argument was invalid (unknown name, wrong type, buffer too small, ...).
    /// From `call`: the SQL function's arguments are wrong (the host raises SQLSTATE
    /// 22023; every other failing status of `call` raises 38000).
    pub const INVALID: WalkerStatus = WalkerStatus(3);
    /// The requested item (setting, view) does not exist.
    pub const NOT_FOUND: WalkerStatus = WalkerStatus(4);
    /// ABI 1.2. A service request is not done yet.
    pub const PENDING: WalkerStatus = WalkerStatus(5);
    /// ABI 1.2. A wait was interrupted (the backend's query was cancelled or it is
    /// terminating); return at once, the host raises the interrupt.
    pub const INTERRUPTED: WalkerStatus = WalkerStatus(6);
    /// ABI 1.3. From `on_backend` at statement start: the statement must not run; the
    /// host raises the error described in the [`WalkerVerdict`].
    pub const REJECTED: WalkerStatus = WalkerStatus(7);
    /// ABI 1.4. From [`WalkerHostApi::lock_timed`]: the lock was not obtained within
    /// the wait (its holder has kept it too long; the host logged who holds it). The
    /// caller does not hold the lock and must not touch the region.
    pub const BUSY: WalkerStatus = WalkerStatus(8);

    /// True for [`WalkerStatus::OK`].
    pub fn is_ok(self) -> bool {
        self == WalkerStatus::OK
    }
}

/// SQL type of a view column. Values are passed in [`WalkerValue`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct WalkerType(pub u32);

impl WalkerType {
    /// `int8`, value in [`WalkerValue::int_value`].
    pub const INT8: WalkerType = WalkerType(1);
    /// `float8`, value in [`WalkerValue::float_value`].
    pub const FLOAT8: WalkerType = WalkerType(2);
    /// `text`, UTF-8 in [`WalkerValue::str_ptr`] / [`WalkerValue::str_len`].
    pub const TEXT: WalkerType = WalkerType(3);
    /// `bool`, value in [`WalkerValue::bool_value`].
    pub const BOOL: WalkerType = WalkerType(4);
    /// `pg_lsn`, value in [`WalkerValue::lsn_value`].
    pub const LSN: WalkerType = WalkerType(5);
    /// `timestamptz`, microseconds since the Unix epoch in [`WalkerValue::int_value`].
    pub const TIMESTAMPTZ: WalkerType = WalkerType(6);
    /// `jsonb`, JSON text in [`WalkerValue::str_ptr`] / [`WalkerValue::str_len`].
    pub const JSONB: WalkerType = WalkerType(7);
}

/// Severity of a message sent through [`WalkerHostApi::log`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WalkerLogLevel(pub u32);

impl WalkerLogLevel {
    /// Server `DEBUG1`.
    pub const DEBUG: WalkerLogLevel = WalkerLogLevel(1);
    /// Server `LOG`.
    pub const INFO: WalkerLogLevel = WalkerLogLevel(2);
    /// Server `WARNING`.
    pub const WARNING: WalkerLogLevel = WalkerLogLevel(3);
}

/// When a plugin-defined setting may change (the server's GUC contexts).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WalkerSettingContext(pub u32);

impl WalkerSettingContext {
    /// Only at server start.
    pub const POSTMASTER: WalkerSettingContext = WalkerSettingContext(1);
    /// In the configuration file, applied on reload.
    pub const SIGHUP: WalkerSettingContext = WalkerSettingContext(2);
    /// Also by superusers with `SET`.
    pub const SUSET: WalkerSettingContext = WalkerSettingContext(3);
    /// Also by any user with `SET`.
    pub const USERSET: WalkerSettingContext = WalkerSettingContext(4);
}

/// Unit of an integer setting, so operators can write `'64MB'` or `'5min'`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct WalkerSettingUnit(pub u32);

impl WalkerSettingUnit {
    /// A plain number.
    pub const NONE: WalkerSettingUnit = WalkerSettingUnit(0);
    /// Bytes.
    pub const BYTES: WalkerSettingUnit = WalkerSettingUnit(1);
    /// Kilobytes.
    pub const KB: WalkerSettingUnit = WalkerSettingUnit(2);
    /// Megabytes.
    pub const MB: WalkerSettingUnit = WalkerSettingUnit(3);
    /// Milliseconds.
    pub const MS: WalkerSettingUnit = WalkerSettingUnit(4);
    /// Seconds.
    pub const S: WalkerSettingUnit = WalkerSettingUnit(5);
    /// Minutes.
    pub const MIN: WalkerSettingUnit = WalkerSettingUnit(6);
}

/// Opaque handle the host gives each plugin; pass it back to every host service.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerPlugin {
    _opaque: [u8; 0],
}

/// One block reference of a WAL record.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct WalkerBlockRef {
    /// Block reference id within the record (0..=32).
    pub block_id: u8,
    /// Fork number: 0 main, 1 free space map, 2 visibility map, 3 init.
    pub fork: u8,
    /// The record carries a full-page image of this block.
    pub has_image: bool,
    /// Redo applies the image (rather than keeping it only for consistency checks).
    pub apply_image: bool,
    /// The record carries per-block data (`data`, `data_len`).
    pub has_data: bool,
    /// Tablespace OID.
    pub tablespace: u32,
    /// Database OID (0 for shared relations).
    pub database: u32,
    /// Relation file number.
    pub relfilenode: u32,
    /// Block number within the fork.
    pub block: u32,
    /// Bytes of the full-page image as stored in the record (after hole removal and
    /// compression); 0 without an image.
    pub image_len: u32,
    /// Per-block data, valid only during the callback; null when `data_len` is 0.
    pub data: *const u8,
    /// Length of `data`.
    pub data_len: u32,
}

/// One WAL record, as handed to [`WalkerPluginDescriptor::on_record`].
/// All pointers are valid only during the callback.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct WalkerRecord {
    /// Size of this struct as filled by the host (never smaller than ABI 1.0's).
    pub struct_size: u32,
    /// Resource manager id (`pg_waldump`'s rmgr, 0..=255).
    pub rmid: u8,
    /// The record's `xl_info` byte (the rmgr-specific record type in the high bits).
    pub info: u8,
    /// Timeline the record was read from.
    pub timeline: u32,
    /// Start of the record.
    pub lsn: u64,
    /// End of the record: where the next record starts (modulo page headers).
    pub end_lsn: u64,
    /// Transaction id that wrote the record (0 when none).
    pub xid: u32,
    /// Top-level transaction id when `xid` is a subtransaction and the record says so
    /// (0 otherwise).
    pub toplevel_xid: u32,
    /// Total length of the record in bytes (`xl_tot_len`), full-page images included.
    pub total_len: u32,
    /// Bytes of full-page images in the record (sum of the blocks' `image_len`).
    pub fpi_len: u32,
    /// Main data of the record; null when `main_data_len` is 0.
    pub main_data: *const u8,
    /// Length of `main_data`.
    pub main_data_len: u32,
    /// The record's block references.
    pub blocks: *const WalkerBlockRef,
    /// Number of entries in `blocks`.
    pub n_blocks: u32,

    // ---- ABI 1.1 ----
    /// ABI 1.1. One entry per entry of `blocks`: the whole page the block's full-page
    /// image restores (`page_size` bytes, hole filled with zeros, decompressed), or
    /// null when the block has no image. A record with an image may omit the block's
    /// data; the page then tells what the record did.
    pub block_images: *const *const u8,
    /// ABI 1.1. Bytes of each page in `block_images` (the server's block size).
    pub page_size: u32,
}

/// One column of a plugin-declared view.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct WalkerColumn {
    /// Column name: a lower-case SQL identifier, NUL-terminated.
    pub name: *const c_char,
    /// Column type.
    pub ty: WalkerType,
}

/// A view a plugin declares; it appears in SQL as `walker.<plugin>_<name>`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct WalkerView {
    /// View name: a lower-case SQL identifier, NUL-terminated.
    pub name: *const c_char,
    /// One-line description (becomes the view's comment); may be null.
    pub description: *const c_char,
    /// The columns, in order.
    pub columns: *const WalkerColumn,
    /// Number of entries in `columns`.
    pub n_columns: u32,
}

/// One value of a view row. Which field is read depends on `ty`, which must equal the
/// declared column type (or `is_null` must be set).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct WalkerValue {
    /// Type of the value; must match the column.
    pub ty: WalkerType,
    /// SQL NULL; the other fields are ignored.
    pub is_null: bool,
    /// `bool` value.
    pub bool_value: bool,
    /// `int8` value, or `timestamptz` in microseconds since the Unix epoch.
    pub int_value: i64,
    /// `pg_lsn` value.
    pub lsn_value: u64,
    /// `float8` value.
    pub float_value: f64,
    /// UTF-8 bytes of a `text` or `jsonb` value (not NUL-terminated).
    pub str_ptr: *const u8,
    /// Length of `str_ptr`.
    pub str_len: usize,
}

impl Default for WalkerValue {
    /// A value with no type set and every field zero (fill in `ty` and one field).
    fn default() -> Self {
        WalkerValue {
            ty: WalkerType(0),
            is_null: false,
            bool_value: false,
            int_value: 0,
            lsn_value: 0,
            float_value: 0.0,
            str_ptr: std::ptr::null(),
            str_len: 0,
        }
    }
}

/// Where a plugin writes the rows of a view, in [`WalkerPluginDescriptor::view_rows`].
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerRowSink {
    /// Host context; pass it back to `emit`.
    pub ctx: *mut c_void,
    /// Adds one row of `n_values` values (one per declared column, in order).
    /// Returns `INVALID` when the count or a type does not match the declaration.
    pub emit: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            values: *const WalkerValue,
            n_values: u32,
        ) -> WalkerStatus,
    >,
}

/// The services the host offers a plugin. Handed to `init`; valid for the life of the
/// process. Every function may be called from any plugin callback and any thread the
/// host calls the plugin on; none of them calls into PostgreSQL from a foreign thread.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerHostApi {
    /// Size of this table as the host filled it: a field is present when its end
    /// offset is at most `struct_size`.
    pub struct_size: u32,
    /// The host's ABI major.
    pub abi_major: u32,
    /// The host's ABI minor.
    pub abi_minor: u32,

    /// Writes a message to the server log (prefixed with the plugin's name). Messages from
    /// threads other than the server's are queued and written by the main thread.
    pub log: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            level: WalkerLogLevel,
            msg: *const u8,
            len: usize,
        ),
    >,
    /// Records the message that explains the error status the current callback is about
    /// to return.
    pub set_error:
        Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin, msg: *const u8, len: usize)>,

    /// The plugin's shared-memory region (the size it asked for in `shmem_size`), the
    /// same address in every server process; null before `shmem_init` or when it asked
    /// for none. The region's size is written to `size_out` when not null.
    pub shmem_region: Option<
        unsafe extern "C" fn(plugin: *mut WalkerPlugin, size_out: *mut usize) -> *mut c_void,
    >,
    /// Takes the region's lock in shared mode (readers), waiting until it is free.
    ///
    /// The lock rule (every region lock call): hold the lock only to copy data into or
    /// out of the region, a few milliseconds at most; inside it never wait, sleep, do
    /// I/O, log, call a host service that may wait (`service_result`, `pause`), or take
    /// the lock again; release it before the callback returns. The host enforces the
    /// rule: a callback that returns holding the lock has it released and fails; a
    /// process that exits holding it has it released; waits are bounded by
    /// `walker.lock_timeout`. Writers are preferred: a reader does not enter while a
    /// writer waits. Prefer [`WalkerHostApi::lock_timed`] (ABI 1.4), which can report
    /// that the lock is busy; this call cannot and waits as long as it takes (in a
    /// backend the host waits, cancellably and bounded, for the lock to be free
    /// before calling the plugin).
    pub lock_shared: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin)>,
    /// Releases a shared lock. Releasing a lock the host already released on the
    /// caller's behalf does nothing.
    pub unlock_shared: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin)>,
    /// Takes the region's lock in exclusive mode (writers); see `lock_shared` for the rule.
    pub lock_exclusive: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin)>,
    /// Releases an exclusive lock (see `unlock_shared`).
    pub unlock_exclusive: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin)>,

    /// Defines the integer setting `<plugin>.<name>`. Only during `init`.
    pub define_int: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            description: *const c_char,
            default_value: i64,
            min_value: i64,
            max_value: i64,
            unit: WalkerSettingUnit,
            context: WalkerSettingContext,
        ) -> WalkerStatus,
    >,
    /// Defines the floating-point setting `<plugin>.<name>`. Only during `init`.
    pub define_real: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            description: *const c_char,
            default_value: f64,
            min_value: f64,
            max_value: f64,
            context: WalkerSettingContext,
        ) -> WalkerStatus,
    >,
    /// Defines the boolean setting `<plugin>.<name>`. Only during `init`.
    pub define_bool: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            description: *const c_char,
            default_value: bool,
            context: WalkerSettingContext,
        ) -> WalkerStatus,
    >,
    /// Defines the string setting `<plugin>.<name>`. Only during `init`.
    pub define_string: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            description: *const c_char,
            default_value: *const c_char,
            context: WalkerSettingContext,
        ) -> WalkerStatus,
    >,
    /// Defines the enum setting `<plugin>.<name>` whose values are `options`
    /// (lower-case words); it reads back as the index of the chosen option.
    pub define_enum: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            description: *const c_char,
            default_index: u32,
            options: *const *const c_char,
            n_options: u32,
            context: WalkerSettingContext,
        ) -> WalkerStatus,
    >,
    /// Reads an integer setting of this plugin (`name` without the prefix).
    pub get_int: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            out: *mut i64,
        ) -> WalkerStatus,
    >,
    /// Reads a floating-point setting.
    pub get_real: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            out: *mut f64,
        ) -> WalkerStatus,
    >,
    /// Reads a boolean setting.
    pub get_bool: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            out: *mut bool,
        ) -> WalkerStatus,
    >,
    /// Reads an enum setting as the index of its option.
    pub get_enum: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            out: *mut u32,
        ) -> WalkerStatus,
    >,
    /// Reads a string setting into `buf` (not NUL-terminated); its full length goes to
    /// `len_out`. Returns `INVALID` when `cap` is too small (and still sets `len_out`).
    pub get_string: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            buf: *mut u8,
            cap: usize,
            len_out: *mut usize,
        ) -> WalkerStatus,
    >,

    /// The host's clock in microseconds since the Unix epoch: the wall clock, except in
    /// a host replaying WAL written earlier (`pg_walker walk`), where it is the newest
    /// commit, abort or checkpoint time read so far (0 before the first), so that what
    /// a plugin measures by it is measured in the WAL's own time.
    pub now_micros: Option<unsafe extern "C" fn() -> i64>,
    /// Name of resource manager `rmid` as the server knows it (`Heap`, `Transaction`,
    /// ...), into `buf`; its length goes to `len_out`. `NOT_FOUND` for an unused id.
    pub rmgr_name: Option<
        unsafe extern "C" fn(
            rmid: u8,
            buf: *mut u8,
            cap: usize,
            len_out: *mut usize,
        ) -> WalkerStatus,
    >,

    // ---- ABI 1.1 ----
    /// ABI 1.1. The server's `PG_VERSION_NUM` (e.g. 150008 for 15.8): record layouts
    /// differ between PostgreSQL majors.
    pub server_version_num: Option<unsafe extern "C" fn() -> u32>,

    // ---- ABI 1.2 ----
    /// ABI 1.2. Asks the host to publish a server setting (`max_wal_size`, ...) for
    /// `server_setting`. Only during `init`; `NOT_FOUND` when the name is too long
    /// or the table of watched settings is full.
    pub watch_setting: Option<
        unsafe extern "C" fn(plugin: *mut WalkerPlugin, name: *const c_char) -> WalkerStatus,
    >,
    /// ABI 1.2. One field of a watched server setting as `pg_settings` shows it, into
    /// `buf` (not NUL-terminated; the full length goes to `len_out`; `INVALID` when
    /// `cap` is too small). `NOT_FOUND` when the setting is not watched, does not exist
    /// or has not been published yet (the host's services worker publishes every
    /// second and after each change it applies).
    pub server_setting: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            name: *const c_char,
            field: WalkerSettingField,
            buf: *mut u8,
            cap: usize,
            len_out: *mut usize,
        ) -> WalkerStatus,
    >,
    /// ABI 1.2. The checkpointer's counters (`pg_stat_bgwriter`) as the services worker
    /// last published them; `NOT_FOUND` before the first publication.
    pub checkpointer_stats: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            out: *mut WalkerCheckpointerStats,
        ) -> WalkerStatus,
    >,
    /// ABI 1.2. Queues a request the host carries out in its services worker (a server
    /// process connected to `walker.database`): change a server setting or send a
    /// notification. Any thread. The request's id goes to `id_out`; `ERROR` (with the
    /// reason in the log) when the queue is full, `INVALID` when the request is
    /// malformed or too long.
    pub request_service: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            request: *const WalkerServiceRequest,
            id_out: *mut u64,
        ) -> WalkerStatus,
    >,
    /// ABI 1.2. The outcome of request `id`, waiting up to `wait_ms` for it: `OK` or
    /// `ERROR` when done (the host's message, e.g. the reason ALTER SYSTEM was refused,
    /// goes to `buf`, not NUL-terminated, its full length to `len_out`; the request is
    /// then forgotten, so it cannot be asked again). A message is at most
    /// [`WALKER_SERVICE_MESSAGE_MAX`] bytes: a buffer of that size always receives it
    /// whole. When `cap` is smaller, the host copies the longest prefix that fits, cut
    /// at a UTF-8 character boundary, and `len_out` still tells the full length (the
    /// status stays the outcome). `PENDING` when
    /// not done yet, `NOT_FOUND` for an unknown id, `INTERRUPTED` when a backend's wait
    /// was interrupted. On dispatch threads keep `wait_ms` short (it holds up records).
    pub service_result: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            id: u64,
            wait_ms: u32,
            buf: *mut u8,
            cap: usize,
            len_out: *mut usize,
        ) -> WalkerStatus,
    >,
    /// ABI 1.2. Sleeps up to `ms` milliseconds: in a backend (inside `call`) on its latch,
    /// returning `INTERRUPTED` at once when its query is cancelled or it must exit;
    /// elsewhere a plain sleep. `OK` otherwise.
    pub pause: Option<unsafe extern "C" fn(ms: u32) -> WalkerStatus>,

    // ---- ABI 1.4 ----
    /// ABI 1.4. Takes the region's lock, exclusive (writers) or shared (readers),
    /// waiting at most `wait_ms` and at most the host's `walker.lock_timeout` (ten
    /// times it on a dispatch thread; `u32::MAX`: the host's bound). `OK`: held, release it with `unlock_exclusive` /
    /// `unlock_shared`. `BUSY`: not obtained in time (the host logs and reports the
    /// holder; a hold already older than the bound fails at once). `INTERRUPTED`: a
    /// backend's query was cancelled or it must exit, or the process is exiting;
    /// return from the callback promptly. `INVALID`: the plugin has no region. Not
    /// held in any status but `OK`. The rule of `lock_shared` applies.
    pub lock_timed: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            exclusive: bool,
            wait_ms: u32,
        ) -> WalkerStatus,
    >,

    // ---- ABI 1.6 ----
    /// ABI 1.6. A number that changes whenever the values this process's getters
    /// (`get_int` ...) return for the plugin's settings may have changed (a reload,
    /// `SET`, `RESET`, the end of a transaction that set one): while it stays the same,
    /// settings read before read the same. A plugin that reads its settings on a hot
    /// path (every statement) keeps them with the number and reads them again only when
    /// it differs. Read it before the settings. 0: the host cannot tell; read them.
    pub settings_generation: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin) -> u64>,
}

/// ABI 1.2. Which field of a server setting [`WalkerHostApi::server_setting`] reads.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerSettingField(pub u32);

impl WalkerSettingField {
    /// The value in the setting's base unit without the unit (`pg_settings.setting`).
    pub const VALUE: WalkerSettingField = WalkerSettingField(0);
    /// The base unit (`MB`, `s`, `8kB`, or empty).
    pub const UNIT: WalkerSettingField = WalkerSettingField(1);
    /// Where the value comes from (`default`, `configuration file`, `command line`, ...).
    pub const SOURCE: WalkerSettingField = WalkerSettingField(2);
    /// The file that set it, when a file did (else empty).
    pub const SOURCE_FILE: WalkerSettingField = WalkerSettingField(3);
    /// The value the server started with or was reloaded to before any session
    /// change (`pg_settings.reset_val`).
    pub const RESET_VALUE: WalkerSettingField = WalkerSettingField(4);
}

/// ABI 1.2. The checkpointer's counters, as `pg_stat_bgwriter` shows them.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkerCheckpointerStats {
    /// Checkpoints started because `checkpoint_timeout` elapsed (`checkpoints_timed`).
    pub timed: u64,
    /// Checkpoints requested: by WAL volume, but also by `CHECKPOINT`, backups,
    /// `CREATE DATABASE` (`checkpoints_req`).
    pub requested: u64,
    /// When the host read them, microseconds since the Unix epoch.
    pub read_at_micros: i64,
}

/// ABI 1.2. What a [`WalkerServiceRequest`] asks for.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerServiceKind(pub u32);

impl WalkerServiceKind {
    /// `ALTER SYSTEM SET <name> = '<value>'`, then a configuration reload, then a
    /// check that the server now takes the value from `postgresql.auto.conf`. Refused
    /// (with the reason) when ALTER SYSTEM is disabled, the file cannot be written, or
    /// a source of higher priority (the command line, ...) sets the setting.
    pub const SET_SERVER_SETTING: WalkerServiceKind = WalkerServiceKind(1);
    /// `pg_notify(<name>, <value>)` in its own transaction in `walker.database`:
    /// channel `name`, payload `value` (at most 7999 bytes).
    pub const NOTIFY: WalkerServiceKind = WalkerServiceKind(2);
    /// ABI 1.3. Runs the SQL statement `value` in its own transaction in
    /// `walker.database`, as the bootstrap superuser; `name` is a short label for the
    /// log. The outcome's message is the first column of the first row as text (empty
    /// when there is none), or the error.
    pub const SQL: WalkerServiceKind = WalkerServiceKind(3);
}

/// ABI 1.2. A request for [`WalkerHostApi::request_service`]. The host copies it.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerServiceRequest {
    /// What to do.
    pub kind: WalkerServiceKind,
    /// Setting name or notification channel (UTF-8, not NUL-terminated).
    pub name: *const u8,
    /// Length of `name`.
    pub name_len: usize,
    /// Setting value or notification payload (UTF-8, not NUL-terminated).
    pub value: *const u8,
    /// Length of `value`.
    pub value_len: usize,
}

/// ABI 1.2. A SQL function a plugin offers: `walker.<plugin>_<name>(args jsonb
/// DEFAULT '{}')`, answered by [`WalkerPluginDescriptor::call`] in the calling backend.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerFunction {
    /// Function name (lower-case letters, digits, `_`), NUL-terminated.
    pub name: *const c_char,
    /// One-line description, NUL-terminated; may be null.
    pub description: *const c_char,
    /// Result type: [`WalkerType::JSONB`] or [`WalkerType::TEXT`].
    pub result: WalkerType,
    /// Who may call it. (ABI 1.2 called this byte `admin_only`: 0 and 1 keep their
    /// meaning.)
    pub access: WalkerAccess,
}

/// Who may call a plugin's SQL function ([`WalkerFunction::access`]).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerAccess(pub u8);

impl WalkerAccess {
    /// Members of `walker_monitor` (and so of `walker_admin`).
    pub const MONITOR: WalkerAccess = WalkerAccess(0);
    /// Members of `walker_admin` only.
    pub const ADMIN: WalkerAccess = WalkerAccess(1);
    /// ABI 1.3. Members of the plugin's own role ([`WalkerPluginDescriptor::role`]) and
    /// of `walker_admin`.
    pub const ROLE: WalkerAccess = WalkerAccess(2);
}

/// What a plugin tells the host about itself. Returned by the plugin's
/// `walker_plugin_entry` symbol; must stay valid for the life of the process.
///
/// The host reads `abi_major`, `abi_minor` and `struct_size` first; it accepts the
/// plugin when the major equals its own, the minor is at most its own and
/// `struct_size` covers at least ABI 1.0's fields. It then copies
/// `min(struct_size, its own size)` bytes into a zeroed descriptor, so fields a newer
/// plugin added are ignored and fields an older plugin lacks read as null.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerPluginDescriptor {
    /// [`WALKER_ABI_MAJOR`] the plugin was built with.
    pub abi_major: u32,
    /// [`WALKER_ABI_MINOR`] the plugin was built with.
    pub abi_minor: u32,
    /// `sizeof(WalkerPluginDescriptor)` as the plugin was built.
    pub struct_size: u32,
    /// Plugin version, free text (e.g. `1.2.0`), NUL-terminated; may be null.
    pub version: *const c_char,
    /// One-line description; may be null.
    pub description: *const c_char,
    /// Resource managers whose records `on_record` receives: bit `rmid % 64` of word
    /// `rmid / 64`.
    pub rmgr_mask: [u64; WALKER_RMGR_MASK_WORDS],
    /// The views the plugin fills through `view_rows`.
    pub views: *const WalkerView,
    /// Number of entries in `views`.
    pub n_views: u32,

    /// Called once in the postmaster at server start, before anything else: keep
    /// `host` and `plugin`, define settings.
    pub init: Option<
        unsafe extern "C" fn(host: *const WalkerHostApi, plugin: *mut WalkerPlugin) -> WalkerStatus,
    >,
    /// Bytes of shared memory the plugin needs (0 for none). Called once in the
    /// postmaster after `init`; settings can be read. [`WALKER_SHMEM_SIZE_FAILED`]
    /// (`SIZE_MAX`) reports a failure: the plugin passes the reason to `set_error`
    /// first, and the host refuses the plugin with that message (hosts before this
    /// rule would try to reserve `SIZE_MAX` bytes, which the server refuses at start).
    pub shmem_size: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin) -> usize>,
    /// Called in the postmaster when shared memory is (re)created: initialise `region`.
    /// `found` is true when the region already existed.
    pub shmem_init: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            region: *mut c_void,
            size: usize,
            found: bool,
        ) -> WalkerStatus,
    >,
    /// Called in the walker worker, on one of its dispatch threads, for every record of
    /// a subscribed resource manager, in WAL order.
    pub on_record: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            record: *const WalkerRecord,
        ) -> WalkerStatus,
    >,
    /// Called on the dispatch thread when the walker has caught up with the WAL
    /// written so far: at once when WAL stops flowing, at most every 100 ms while it
    /// flows; `lsn` is the end of the last record delivered.
    pub on_idle: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin, lsn: u64) -> WalkerStatus>,
    /// Called on the dispatch thread when the worker stops.
    pub shutdown: Option<unsafe extern "C" fn(plugin: *mut WalkerPlugin) -> WalkerStatus>,
    /// Called in any server process reading the view number `view` (index into
    /// `views`): emit each row into `sink`.
    pub view_rows: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            view: u32,
            sink: *const WalkerRowSink,
        ) -> WalkerStatus,
    >,

    // ---- ABI 1.1 ----
    /// ABI 1.1. Writes the plugin's whole state into `sink` (any number of `write`
    /// calls). Called on the dispatch thread between records, so the state reflects
    /// every record delivered so far; the host stores it with that LSN in a snapshot
    /// file (at checkpoints, on an interval and at shutdown) and moves walker's
    /// replication slot only past WAL that a snapshot covers. A plugin provides both
    /// `save_state` and `load_state`, or neither.
    pub save_state: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            sink: *const WalkerStateSink,
        ) -> WalkerStatus,
    >,
    /// ABI 1.1. Replaces the plugin's state, in the worker before any record is
    /// delivered: with the bytes of its last snapshot (`data`, `len`), which reflect
    /// every record up to `lsn`; or, when `data` is null, with an empty state (no
    /// snapshot, or one the host refused). Records ending at or before `lsn` are not
    /// delivered again.
    pub load_state: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            data: *const u8,
            len: usize,
            lsn: u64,
        ) -> WalkerStatus,
    >,

    // ---- ABI 1.2 ----
    /// ABI 1.2. The SQL functions the plugin answers through `call`.
    pub functions: *const WalkerFunction,
    /// ABI 1.2. Number of entries in `functions`.
    pub n_functions: u32,
    /// ABI 1.2. Called in the backend running `walker.<plugin>_<function>(args)`, on its
    /// main thread: `function` indexes `functions`, `args` is the JSON text of the
    /// argument object (`len` bytes), and the result (JSON or text, per the function's
    /// declared type) is written into `out`. The plugin may read its shared memory and
    /// queue and await service requests. A failure returns a status with a message
    /// (through `set_error`): `INVALID` when the arguments are wrong (the host raises
    /// SQLSTATE 22023, invalid_parameter_value), any other status when the function
    /// failed for another reason (SQLSTATE 38000, external_routine_exception).
    pub call: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            function: u32,
            args: *const u8,
            len: usize,
            out: *const WalkerStateSink,
        ) -> WalkerStatus,
    >,

    // ---- ABI 1.3 ----
    /// ABI 1.3. Called in server processes that run SQL (client backends, background
    /// workers, autovacuum), on their main thread, at each [`WalkerBackendEventKind`]:
    /// statement start and end (nested statements too, with their `nesting_level`) and
    /// transaction end. At statement start the plugin may wait (through the host's
    /// `pause`, returning `INTERRUPTED` when it reports an interrupt) or refuse the
    /// statement: it fills `verdict` and returns `REJECTED`. `ERROR` or `PANIC` let the
    /// statement run (the host logs the message), unless the plugin set
    /// `verdict.fail_closed` first. The host installs its executor, utility and
    /// transaction hooks only when a loaded plugin provides this callback.
    pub on_backend: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            event: *const WalkerBackendEvent,
            verdict: *mut WalkerVerdict,
        ) -> WalkerStatus,
    >,
    /// ABI 1.3. SQL the host runs each time it creates the plugin's views and
    /// functions (`CREATE EXTENSION walker`, `walker.refresh_views()`), after them, as
    /// the extension's owner, with `@extschema@` replaced by walker's schema: tables,
    /// functions and grants of the plugin's own. It must be idempotent
    /// (`CREATE ... IF NOT EXISTS`, `CREATE OR REPLACE`). NUL-terminated; may be null.
    pub sql: *const c_char,
    /// ABI 1.3. A role the host creates (`NOLOGIN`) for this plugin: its
    /// [`WalkerAccess::ROLE`] functions are granted to it. A lower-case identifier
    /// starting with `walker_`, NUL-terminated; may be null.
    pub role: *const c_char,
    // ---- ABI 1.5 ----
    /// ABI 1.5. When set, the host calls it instead of `on_record`, once per run of
    /// consecutive records in WAL order (a batch the reader read): `records[0..n]`.
    /// The run holds the records of every resource manager some loaded plugin asked
    /// for, so also records outside this plugin's `rmgr_mask`: the plugin skips those
    /// (the SDK does). Records no loaded plugin asked for are not in any run. It lets
    /// a plugin take its lock, or publish, once per run instead of once per record. On
    /// failure the plugin stores the index of the record that failed in `failed_at`
    /// (the host names its LSN) and returns the error as `on_record` would.
    /// `walker.plugin_timeout` applies to the whole call;
    /// a run holds at most `walker.batch_records` records. May be null.
    pub on_records: Option<
        unsafe extern "C" fn(
            plugin: *mut WalkerPlugin,
            records: *const WalkerRecord,
            n: u32,
            failed_at: *mut u32,
        ) -> WalkerStatus,
    >,
}

/// ABI 1.3. When [`WalkerPluginDescriptor::on_backend`] is called.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerBackendEventKind(pub u32);

impl WalkerBackendEventKind {
    /// Before a statement runs (executor start or utility command); the plugin may
    /// wait or reject it.
    pub const STATEMENT_START: WalkerBackendEventKind = WalkerBackendEventKind(1);
    /// After a statement ran to completion (not after an error).
    pub const STATEMENT_END: WalkerBackendEventKind = WalkerBackendEventKind(2);
    /// The transaction is about to write its commit (or prepare) record.
    pub const PRE_COMMIT: WalkerBackendEventKind = WalkerBackendEventKind(3);
    /// The transaction aborted (its abort record, if any, is written).
    pub const ABORT: WalkerBackendEventKind = WalkerBackendEventKind(4);
    /// A subtransaction aborted (`ROLLBACK TO SAVEPOINT`, an exception block);
    /// `xid` is its transaction id (0 when it had none), written in its abort record.
    pub const SUBXACT_ABORT: WalkerBackendEventKind = WalkerBackendEventKind(5);
}

/// ABI 1.3. What kind of statement a [`WalkerBackendEvent`] is about.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerStatementKind(pub u32);

impl WalkerStatementKind {
    /// Not a statement event, or a kind the host does not name.
    pub const OTHER: WalkerStatementKind = WalkerStatementKind(0);
    /// `SELECT` (including `SELECT ... FOR UPDATE`).
    pub const SELECT: WalkerStatementKind = WalkerStatementKind(1);
    /// `INSERT`.
    pub const INSERT: WalkerStatementKind = WalkerStatementKind(2);
    /// `UPDATE`.
    pub const UPDATE: WalkerStatementKind = WalkerStatementKind(3);
    /// `DELETE`.
    pub const DELETE: WalkerStatementKind = WalkerStatementKind(4);
    /// `MERGE`.
    pub const MERGE: WalkerStatementKind = WalkerStatementKind(5);
    /// A utility command (DDL, `COPY`, `VACUUM`, `CHECKPOINT`, ...); `command` names it.
    pub const UTILITY: WalkerStatementKind = WalkerStatementKind(6);
}

/// ABI 1.3. What kind of server process an event comes from.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerBackendType(pub u32);

impl WalkerBackendType {
    /// Any other process.
    pub const OTHER: WalkerBackendType = WalkerBackendType(0);
    /// A client connection.
    pub const CLIENT: WalkerBackendType = WalkerBackendType(1);
    /// An autovacuum worker.
    pub const AUTOVACUUM: WalkerBackendType = WalkerBackendType(2);
    /// A background worker (walker's services worker among them).
    pub const BACKGROUND_WORKER: WalkerBackendType = WalkerBackendType(3);
}

/// ABI 1.3. An event in a server process running SQL, for
/// [`WalkerPluginDescriptor::on_backend`]. Pointers are valid only during the call.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct WalkerBackendEvent {
    /// Size of this struct as filled by the host.
    pub struct_size: u32,
    /// Which event.
    pub kind: WalkerBackendEventKind,
    /// The statement's kind (statement events only).
    pub statement: WalkerStatementKind,
    /// The process's kind.
    pub backend_type: WalkerBackendType,
    /// 0 for a statement the client sent; 1 and more for statements run by functions
    /// or by other statements.
    pub nesting_level: u32,
    /// The statement cannot write to tables by itself: a plain `SELECT` (which may
    /// still write through the functions it calls), and (ABI 1.5) utility commands
    /// that read like one: every statement with [`WalkerBackendEvent::never_writes`]
    /// set, `DECLARE CURSOR` over a plain `SELECT`, `FETCH`/`MOVE`, `COPY ... TO`.
    /// Other utility commands are never read-only here.
    pub read_only: bool,
    /// Process id.
    pub pid: i32,
    /// Current database OID.
    pub database: u32,
    /// OID of the current user (the role whose privileges the statement runs with).
    pub role: u32,
    /// The statement's query id (0 when the server computes none).
    pub query_id: u64,
    /// The transaction's top-level transaction id, 0 when it has none yet.
    pub top_xid: u32,
    /// The current (sub)transaction's id, 0 when it has none yet (equals `top_xid`
    /// outside subtransactions).
    pub xid: u32,
    /// The process's WAL counters so far (`pg_stat_wal` style): records written.
    pub wal_records: u64,
    /// Full-page images written.
    pub wal_fpi: u64,
    /// WAL bytes written.
    pub wal_bytes: u64,
    /// `application_name` (UTF-8, not NUL-terminated).
    pub application_name: *const u8,
    /// Length of `application_name`.
    pub application_name_len: usize,
    /// Name of `role`.
    pub role_name: *const u8,
    /// Length of `role_name`.
    pub role_name_len: usize,
    /// Name of `database`.
    pub database_name: *const u8,
    /// Length of `database_name`.
    pub database_name_len: usize,
    /// The command tag (`INSERT`, `CREATE TABLE`, ...) of a statement event.
    pub command: *const u8,
    /// Length of `command`.
    pub command_len: usize,

    // ---- ABI 1.5 ----
    /// ABI 1.5. The statement writes no WAL of its own, so a plugin must never make it
    /// wait or refuse it: `SET`, `SHOW`, `RESET`, `DISCARD` (every form), `LISTEN`,
    /// `UNLISTEN`, `PREPARE`, `DEALLOCATE`, `CLOSE`, and `EXPLAIN` without `ANALYZE`.
    /// (Transaction control, `BEGIN` to `ROLLBACK`, is not a statement event at all.)
    /// `read_only` is set too, so plugins older than 1.5 leave them alone as well.
    pub never_writes: bool,
    /// ABI 1.5. What the statement does to the session's state: a plugin that keeps
    /// per-session state a later client of a pooled connection must not inherit
    /// drops it at this statement's end.
    pub session_reset: WalkerSessionReset,
}

/// ABI 1.5. A statement that resets session state ([`WalkerBackendEvent::session_reset`]).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkerSessionReset(pub u32);

impl WalkerSessionReset {
    /// Leaves the session's state alone.
    pub const NONE: WalkerSessionReset = WalkerSessionReset(0);
    /// `RESET ALL` or `DISCARD ALL`: the session returns to its state at connection.
    pub const ALL: WalkerSessionReset = WalkerSessionReset(1);
    /// `SET SESSION AUTHORIZATION` or `RESET SESSION AUTHORIZATION`: another user takes
    /// over the session.
    pub const AUTHORIZATION: WalkerSessionReset = WalkerSessionReset(2);
}

/// The longest message [`WalkerHostApi::service_result`] hands out, in bytes: a buffer
/// of this size always receives the whole message.
pub const WALKER_SERVICE_MESSAGE_MAX: usize = 8192;

/// What [`WalkerPluginDescriptor::shmem_size`] returns to report a failure (the reason
/// goes to `set_error` first): `SIZE_MAX`. The host refuses the plugin.
pub const WALKER_SHMEM_SIZE_FAILED: usize = !0;

/// ABI 1.3. Bytes of [`WalkerVerdict::message`].
pub const WALKER_VERDICT_MESSAGE: usize = 512;
/// ABI 1.3. Bytes of [`WalkerVerdict::detail`].
pub const WALKER_VERDICT_DETAIL: usize = 1024;
/// ABI 1.3. Bytes of [`WalkerVerdict::hint`].
pub const WALKER_VERDICT_HINT: usize = 512;

/// ABI 1.3. What a plugin decided at statement start. The host zeroes it and sets
/// `struct_size` before each call.
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerVerdict {
    /// Size of this struct as the host allocated it.
    pub struct_size: u32,
    /// When the callback then fails (`ERROR`, `PANIC`), refuse the statement instead
    /// of letting it run.
    pub fail_closed: bool,
    /// SQLSTATE of the error raised for `REJECTED` (five characters `0-9A-Z`); all
    /// zero means `53000` (insufficient resources).
    pub sqlstate: [u8; 5],
    /// Length of `message`.
    pub message_len: u32,
    /// The error message (UTF-8, not NUL-terminated).
    pub message: [u8; WALKER_VERDICT_MESSAGE],
    /// Length of `detail`.
    pub detail_len: u32,
    /// The error detail.
    pub detail: [u8; WALKER_VERDICT_DETAIL],
    /// Length of `hint`.
    pub hint_len: u32,
    /// The error hint.
    pub hint: [u8; WALKER_VERDICT_HINT],
}

/// Where a plugin writes bytes: its state in [`WalkerPluginDescriptor::save_state`]
/// (ABI 1.1), a function's result in [`WalkerPluginDescriptor::call`] (ABI 1.2).
#[repr(C)]
#[derive(StableAbi)]
pub struct WalkerStateSink {
    /// Host context; pass it back to `write`.
    pub ctx: *mut c_void,
    /// Appends `len` bytes to the snapshot.
    pub write:
        Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize) -> WalkerStatus>,
}

// The "1.N size" constants below are literals: the sizes each released minor's
// structs have (on 64-bit targets, the only ones walker supports), as the C compiler
// measures them in that minor's frozen header (`include/frozen/walker_plugin_1.N.h`;
// the `frozen_abi` test checks each against its table). They never follow today's
// structs: a field appended later must not change what "a 1.2 host" means.

/// Size of ABI 1.0's descriptor (up to `view_rows`): a plugin whose `struct_size` is
/// smaller is refused.
pub const WALKER_DESCRIPTOR_V1_0_SIZE: u32 = 136;

/// Size of ABI 1.1's descriptor (with `save_state` and `load_state`).
pub const WALKER_DESCRIPTOR_V1_1_SIZE: u32 = 152;

/// Size of ABI 1.2's descriptor (with `functions` and `call`).
pub const WALKER_DESCRIPTOR_V1_2_SIZE: u32 = 176;

/// Size of ABI 1.3's (and 1.4's) descriptor (with `on_backend`, `sql` and `role`).
pub const WALKER_DESCRIPTOR_V1_3_SIZE: u32 = 200;

/// Size of ABI 1.5's (and 1.6's) descriptor (with `on_records`).
pub const WALKER_DESCRIPTOR_V1_5_SIZE: u32 = 208;

/// Size of ABI 1.0's record struct.
pub const WALKER_RECORD_V1_0_SIZE: u32 = 80;

/// Size of ABI 1.1's (to 1.6's) record struct (with `block_images` and `page_size`).
pub const WALKER_RECORD_V1_1_SIZE: u32 = 96;

/// Size of ABI 1.0's host API table.
pub const WALKER_HOST_API_V1_0_SIZE: u32 = 168;

/// Size of ABI 1.1's host API table.
pub const WALKER_HOST_API_V1_1_SIZE: u32 = 176;

/// Size of ABI 1.2's (and 1.3's) host API table (up to `pause`).
pub const WALKER_HOST_API_V1_2_SIZE: u32 = 224;

/// Size of ABI 1.4's (and 1.5's) host API table (with `lock_timed`).
pub const WALKER_HOST_API_V1_4_SIZE: u32 = 232;

/// Size of ABI 1.6's host API table (with `settings_generation`).
pub const WALKER_HOST_API_V1_6_SIZE: u32 = 240;

/// Size of ABI 1.3's (and 1.4's) backend event (up to `command_len`).
pub const WALKER_BACKEND_EVENT_V1_3_SIZE: u32 = 144;

/// Size of ABI 1.5's (and 1.6's) backend event (with `never_writes` and `session_reset`).
pub const WALKER_BACKEND_EVENT_V1_5_SIZE: u32 = 152;

/// Size of ABI 1.3's (to 1.6's) verdict.
pub const WALKER_VERDICT_V1_3_SIZE: u32 = 2072;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("walker's ABI sizes are those of 64-bit targets; walker supports no other");

/// Signature of the `walker_plugin_entry` symbol.
pub type WalkerPluginEntryFn = unsafe extern "C" fn() -> *const WalkerPluginDescriptor;

/// Signature of the `walker_plugin_layout` symbol (Rust plugins only).
pub type WalkerPluginLayoutFn = extern "C" fn() -> &'static abi_stable::type_layout::TypeLayout;

/// True when `rmid` is set in `mask`.
pub fn mask_has(mask: &[u64; WALKER_RMGR_MASK_WORDS], rmid: u8) -> bool {
    let i = rmid as usize;
    mask[i / 64] & (1u64 << (i % 64)) != 0
}

/// A mask with every resource manager set.
pub const ALL_RMGRS: [u64; WALKER_RMGR_MASK_WORDS] = [u64::MAX; WALKER_RMGR_MASK_WORDS];

/// Builds a mask from a list of rmgr ids.
pub const fn mask_of(rmids: &[u8]) -> [u64; WALKER_RMGR_MASK_WORDS] {
    let mut mask = [0u64; WALKER_RMGR_MASK_WORDS];
    let mut i = 0;
    while i < rmids.len() {
        let r = rmids[i] as usize;
        mask[r / 64] |= 1u64 << (r % 64);
        i += 1;
    }
    mask
}

// SAFETY: WalkerPluginDescriptor holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Sync for WalkerPluginDescriptor {}
// SAFETY: WalkerPluginDescriptor holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Send for WalkerPluginDescriptor {}
// SAFETY: WalkerView holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Sync for WalkerView {}
// SAFETY: WalkerView holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Send for WalkerView {}
// SAFETY: WalkerColumn holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Sync for WalkerColumn {}
// SAFETY: WalkerColumn holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Send for WalkerColumn {}
// SAFETY: WalkerHostApi holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Sync for WalkerHostApi {}
// SAFETY: WalkerHostApi holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Send for WalkerHostApi {}
// SAFETY: WalkerFunction holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Sync for WalkerFunction {}
// SAFETY: WalkerFunction holds raw pointers only to immutable, process-lifetime data
// (static strings, tables and functions), so sharing it across threads is sound.
unsafe impl Send for WalkerFunction {}
