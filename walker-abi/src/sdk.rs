//! The safe Rust SDK for writing walker plugins.
//!
//! Implement [`Plugin`] for a type and call [`export_plugin!`](crate::export_plugin)
//! once in the crate (a `cdylib`). The macro exports the entry symbol and the layout
//! symbol; every callback goes through a trampoline here that catches panics, so a
//! plugin never unwinds into the host: a panic becomes [`WalkerStatus::PANIC`] with the
//! panic message, and the host marks the plugin failed while the others go on. A panic
//! poisons the instance in its process: every later callback there fails at once with
//! a message naming the callback that panicked and the panic.

use crate::types::*;
use std::any::Any;
use std::ffi::{c_char, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// What kind of failure a [`PluginError`] is; it decides the SQLSTATE a failing SQL
/// function raises ([`Plugin::call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// The callback failed for a reason other than its arguments (SQLSTATE 38000,
    /// external_routine_exception). What [`PluginError::new`] and the `From`
    /// conversions make.
    #[default]
    Failed,
    /// The caller passed wrong arguments (SQLSTATE 22023, invalid_parameter_value);
    /// [`PluginError::invalid_argument`].
    InvalidArgument,
}

impl ErrorKind {
    /// The status `call` returns for an error of this kind: `INVALID` for an invalid
    /// argument, `ERROR` otherwise.
    fn status(self) -> WalkerStatus {
        match self {
            ErrorKind::InvalidArgument => WalkerStatus::INVALID,
            ErrorKind::Failed => WalkerStatus::ERROR,
        }
    }
}

/// Error a plugin callback returns; its message reaches `walker.plugins.last_error`
/// (or the caller of a SQL function). The second field is its [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError(pub String, pub ErrorKind);

impl PluginError {
    /// An error with this message, of kind [`ErrorKind::Failed`].
    pub fn new(msg: impl fmt::Display) -> Self {
        PluginError(msg.to_string(), ErrorKind::Failed)
    }

    /// An error saying the caller's arguments are wrong ([`ErrorKind::InvalidArgument`]).
    pub fn invalid_argument(msg: impl fmt::Display) -> Self {
        PluginError(msg.to_string(), ErrorKind::InvalidArgument)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.1
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(s: String) -> Self {
        PluginError(s, ErrorKind::Failed)
    }
}

impl From<&str> for PluginError {
    fn from(s: &str) -> Self {
        PluginError(s.to_string(), ErrorKind::Failed)
    }
}

/// Result of a plugin callback.
pub type PluginResult<T = ()> = Result<T, PluginError>;

/// A view the plugin declares: `walker.<plugin>_<name>`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// Lower-case SQL identifier.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Column names and types, in order.
    pub columns: Vec<(&'static str, WalkerType)>,
}

/// A SQL function the plugin answers: `walker.<plugin>_<name>(args jsonb DEFAULT '{}')`
/// (ABI 1.2), through [`Plugin::call`].
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Lower-case SQL identifier.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Result type: [`WalkerType::JSONB`] or [`WalkerType::TEXT`].
    pub result: WalkerType,
    /// Who may call it: [`WalkerAccess::MONITOR`], [`WalkerAccess::ADMIN`], or
    /// [`WalkerAccess::ROLE`] (the plugin's own role, [`PluginInfo::role`]).
    pub access: WalkerAccess,
}

/// An event in a server process running SQL ([`Plugin::on_backend`], ABI 1.3).
#[derive(Debug, Clone, Copy)]
pub struct BackendEvent<'a> {
    /// Which event.
    pub kind: WalkerBackendEventKind,
    /// The statement's kind (statement events).
    pub statement: WalkerStatementKind,
    /// The process's kind.
    pub backend_type: WalkerBackendType,
    /// 0 for a statement the client sent, more for nested ones.
    pub nesting_level: u32,
    /// The statement cannot write to tables.
    pub read_only: bool,
    /// Process id.
    pub pid: i32,
    /// Current database OID.
    pub database: u32,
    /// Current user OID.
    pub role: u32,
    /// Query id (0 when none is computed).
    pub query_id: u64,
    /// Top-level transaction id, 0 when none yet.
    pub top_xid: u32,
    /// The current (sub)transaction's id, 0 when none yet.
    pub xid: u32,
    /// The process's WAL records so far.
    pub wal_records: u64,
    /// The process's full-page images so far.
    pub wal_fpi: u64,
    /// The process's WAL bytes so far.
    pub wal_bytes: u64,
    /// `application_name`.
    pub application_name: &'a str,
    /// Name of the current user.
    pub role_name: &'a str,
    /// Name of the current database.
    pub database_name: &'a str,
    /// Command tag of a statement event.
    pub command: &'a str,
    /// ABI 1.5. The statement writes no WAL of its own: never make it wait or refuse it
    /// ([`WalkerBackendEvent::never_writes`]).
    pub never_writes: bool,
    /// ABI 1.5. What the statement does to the session's state
    /// ([`WalkerBackendEvent::session_reset`]).
    pub session_reset: WalkerSessionReset,
}

impl<'a> BackendEvent<'a> {
    /// Reads the host's event.
    ///
    /// # Safety
    /// The event's pointers must be valid for their lengths for `'a`.
    pub unsafe fn from_raw(raw: &'a WalkerBackendEvent) -> Self {
        // SAFETY: the caller's contract.
        let text = |p: *const u8, n: usize| -> &'a str {
            if p.is_null() || n == 0 {
                ""
            } else {
                // SAFETY: the caller's contract (valid for `n` bytes for `'a`).
                std::str::from_utf8(unsafe { std::slice::from_raw_parts(p, n) }).unwrap_or("")
            }
        };
        let has = |offset: usize, size: usize| raw.struct_size as usize >= offset + size;
        BackendEvent {
            kind: raw.kind,
            statement: raw.statement,
            backend_type: raw.backend_type,
            nesting_level: raw.nesting_level,
            read_only: raw.read_only,
            pid: raw.pid,
            database: raw.database,
            role: raw.role,
            query_id: raw.query_id,
            top_xid: raw.top_xid,
            xid: raw.xid,
            wal_records: raw.wal_records,
            wal_fpi: raw.wal_fpi,
            wal_bytes: raw.wal_bytes,
            application_name: text(raw.application_name, raw.application_name_len),
            role_name: text(raw.role_name, raw.role_name_len),
            database_name: text(raw.database_name, raw.database_name_len),
            command: text(raw.command, raw.command_len),
            // Fields a host older than 1.5 did not fill read as their zero value.
            never_writes: has(std::mem::offset_of!(WalkerBackendEvent, never_writes), 1)
                && raw.never_writes,
            session_reset: if has(std::mem::offset_of!(WalkerBackendEvent, session_reset), 4) {
                raw.session_reset
            } else {
                WalkerSessionReset::NONE
            },
        }
    }
}

/// A statement refused at its start: the error the host raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// SQLSTATE: five characters `0-9`, `A-Z`.
    pub sqlstate: [u8; 5],
    /// Error message.
    pub message: String,
    /// Error detail (may be empty).
    pub detail: String,
    /// Error hint (may be empty).
    pub hint: String,
}

/// What [`Plugin::on_backend`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go on.
    Proceed,
    /// Refuse the statement (statement start only).
    Reject(Rejection),
    /// A wait was interrupted ([`Host::pause`] returned false): the host raises the
    /// interrupt (cancel or termination).
    Interrupted,
}

/// What became of a service request ([`Host::service_result`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// Carried out; the host's message (e.g. the value the server now shows).
    Succeeded(String),
    /// Refused or failed; the reason.
    Failed(String),
    /// Not done yet.
    Pending,
    /// No such request (never made, or its outcome was already collected).
    Unknown,
    /// The backend's wait was interrupted (cancel or termination): return at once.
    Interrupted,
}

/// What a plugin declares about itself.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Version, free text.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Resource managers whose records the plugin receives (see [`mask_of`], [`ALL_RMGRS`]).
    pub rmgrs: [u64; WALKER_RMGR_MASK_WORDS],
    /// Views.
    pub views: Vec<ViewDef>,
    /// The plugin keeps state across restarts through snapshots: the host calls
    /// [`Plugin::save_state`] and [`Plugin::load_state`] (ABI 1.1).
    pub snapshots: bool,
    /// SQL functions, answered by [`Plugin::call`] (ABI 1.2).
    pub functions: Vec<FunctionDef>,
    /// The host calls [`Plugin::on_backend`] in processes running SQL (ABI 1.3).
    pub backend_events: bool,
    /// SQL the host runs after creating the plugin's views and functions; idempotent
    /// (ABI 1.3, [`WalkerPluginDescriptor::sql`]).
    pub sql: Option<&'static str>,
    /// The plugin's own role, created by the host; [`WalkerAccess::ROLE`] functions
    /// are granted to it (ABI 1.3).
    pub role: Option<&'static str>,
}

impl Default for PluginInfo {
    /// Nothing declared: no version or description, no resource managers (no
    /// records), no views, snapshots, functions, backend events, SQL or role. A plugin
    /// sets what it offers and takes the rest with `..PluginInfo::default()`, so
    /// fields added to `PluginInfo` later need no change to it.
    fn default() -> Self {
        PluginInfo {
            version: "",
            description: "",
            rmgrs: [0; WALKER_RMGR_MASK_WORDS],
            views: Vec::new(),
            snapshots: false,
            functions: Vec::new(),
            backend_events: false,
            sql: None,
            role: None,
        }
    }
}

/// A plugin. One type per shared library, exported with [`export_plugin!`](crate::export_plugin).
///
/// `init` runs once in the postmaster; the value it returns lives for the process and
/// is inherited by every server process, so per-process state belongs in it only when
/// it is read-only after `init`. Shared, changing state belongs in the shared-memory
/// region ([`Host::with_exclusive`], [`Host::with_shared`]).
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Version, description, subscriptions and views.
    fn describe() -> PluginInfo;
    /// Defines settings and builds the plugin.
    fn init(host: &Host) -> PluginResult<Self>;
    /// Bytes of shared memory needed.
    fn shmem_size(&self, _host: &Host) -> usize {
        0
    }
    /// Initialises the shared region (which the host zeroed when `found` is false).
    fn shmem_init(&self, _host: &Host, _found: bool) -> PluginResult {
        Ok(())
    }
    /// One record of a subscribed resource manager.
    fn on_record(&self, _host: &Host, _record: &Record<'_>) -> PluginResult {
        Ok(())
    }
    /// A run of consecutive records in WAL order (ABI 1.5): by default, each record
    /// of a subscribed resource manager goes to [`Plugin::on_record`]. Override it to
    /// take the shared-memory lock (or publish) once per run instead of once per
    /// record; a failure names the record it failed at ([`RecordsError`]).
    fn on_records(&self, host: &Host, records: &Records<'_>) -> Result<(), RecordsError> {
        for (i, r) in records.iter() {
            self.on_record(host, &r)
                .map_err(|e| RecordsError::at(i, e))?;
        }
        Ok(())
    }
    /// The walker caught up; `lsn` is the end of the last record delivered.
    fn on_idle(&self, _host: &Host, _lsn: u64) -> PluginResult {
        Ok(())
    }
    /// The worker is stopping.
    fn shutdown(&self, _host: &Host) -> PluginResult {
        Ok(())
    }
    /// Emits the rows of view number `view` (index into `describe().views`).
    fn view_rows(&self, _host: &Host, _view: usize, _sink: &mut RowSink<'_>) -> PluginResult {
        Ok(())
    }
    /// Appends the whole state to `out` (called only when `describe().snapshots`).
    /// Runs between records on the dispatch thread; include a format version of your own
    /// so a later release can read (or refuse) what this one wrote.
    fn save_state(&self, _host: &Host, _out: &mut Vec<u8>) -> PluginResult {
        Ok(())
    }
    /// Replaces the state with a snapshot [`Plugin::save_state`] wrote, which reflects
    /// every record up to `lsn`; with `None`, resets it to empty. Runs in the worker
    /// before any record is delivered. An error makes the host start the plugin empty.
    fn load_state(&self, _host: &Host, _state: Option<&[u8]>, _lsn: u64) -> PluginResult {
        Ok(())
    }
    /// An event in a server process running SQL (when `describe().backend_events`),
    /// on its main thread: statement start (return [`Admission::Reject`] to refuse it,
    /// or wait with [`Host::pause`] first), statement end, transaction end. Keep it
    /// short: it runs for every statement, nested ones included.
    fn on_backend(&self, _host: &Host, _event: &BackendEvent<'_>) -> PluginResult<Admission> {
        Ok(Admission::Proceed)
    }
    /// When [`Plugin::on_backend`] then fails or panics, refuse the statement rather
    /// than let it run (asked before each statement-start event).
    fn fail_closed(&self, _host: &Host) -> bool {
        false
    }
    /// Answers SQL function number `function` (index into `describe().functions`) in
    /// the calling backend: `args` is the JSON text of its argument object; the result
    /// is JSON or text per the function's declared type. An error becomes the SQL
    /// error the caller sees.
    fn call(&self, _host: &Host, _function: usize, _args: &str) -> PluginResult<String> {
        Err(PluginError::new("this plugin declares no functions"))
    }
}

/// Plain data that may live in the shared-memory region.
///
/// # Safety
/// The type must be `#[repr(C)]`, contain no pointers or references (the region is
/// mapped in many processes), and all-zero bytes must be a valid value (the host
/// zeroes the region before `shmem_init`).
pub unsafe trait SharedState: Sized + 'static {}

/// The Rust type a plugin setting reads as: `i64` (integer), `f64` (floating
/// point), `bool`, `String`, and `usize` for an enum setting (the index of its
/// option).
pub trait SettingValue: Sized {
    /// Reads setting `name` of this plugin through the host.
    fn read(host: &Host, name: &str) -> PluginResult<Self>;
}

impl SettingValue for i64 {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_int(name)
    }
}

impl SettingValue for f64 {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_real(name)
    }
}

impl SettingValue for bool {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_bool(name)
    }
}

impl SettingValue for String {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_string(name)
    }
}

impl SettingValue for usize {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_enum(name)
    }
}

/// A setting of this plugin, returned by the `Host::define_*` call that declared
/// it: keep it in the plugin and read the current value with [`Setting::get`], so
/// the name is written once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T: SettingValue> {
    name: String,
    value: std::marker::PhantomData<fn() -> T>,
}

impl<T: SettingValue> Setting<T> {
    fn new(name: &str) -> Self {
        Setting {
            name: name.to_string(),
            value: std::marker::PhantomData,
        }
    }

    /// The setting's name without the plugin's prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The setting's current value in this process.
    pub fn get(&self, host: &Host) -> PluginResult<T> {
        T::read(host, &self.name)
    }
}

/// The host services, bound to this plugin.
#[derive(Clone, Copy)]
pub struct Host {
    api: *const WalkerHostApi,
    plugin: *mut WalkerPlugin,
}

// SAFETY: the host API table is immutable and valid for the process; the host's
// services are documented as callable from any thread it calls the plugin on.
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

/// A column value for [`RowSink::row`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// `int8`.
    Int8(i64),
    /// `float8`.
    Float8(f64),
    /// `text`.
    Text(&'a str),
    /// `bool`.
    Bool(bool),
    /// `pg_lsn`.
    Lsn(u64),
    /// `timestamptz`, microseconds since the Unix epoch.
    TimestampTz(i64),
    /// `jsonb`, as JSON text.
    Jsonb(&'a str),
}

impl Value<'_> {
    fn to_abi(self) -> WalkerValue {
        let mut v = WalkerValue::default();
        match self {
            Value::Null => v.is_null = true,
            Value::Int8(i) => {
                v.ty = WalkerType::INT8;
                v.int_value = i;
            }
            Value::Float8(f) => {
                v.ty = WalkerType::FLOAT8;
                v.float_value = f;
            }
            Value::Text(s) => {
                v.ty = WalkerType::TEXT;
                v.str_ptr = s.as_ptr();
                v.str_len = s.len();
            }
            Value::Bool(b) => {
                v.ty = WalkerType::BOOL;
                v.bool_value = b;
            }
            Value::Lsn(l) => {
                v.ty = WalkerType::LSN;
                v.lsn_value = l;
            }
            Value::TimestampTz(t) => {
                v.ty = WalkerType::TIMESTAMPTZ;
                v.int_value = t;
            }
            Value::Jsonb(s) => {
                v.ty = WalkerType::JSONB;
                v.str_ptr = s.as_ptr();
                v.str_len = s.len();
            }
        }
        v
    }
}

/// Where [`Plugin::view_rows`] writes rows.
pub struct RowSink<'a> {
    sink: &'a WalkerRowSink,
}

impl RowSink<'_> {
    /// Adds one row; the values must match the declared columns in number and type.
    pub fn row(&mut self, values: &[Value<'_>]) -> PluginResult {
        let abi: Vec<WalkerValue> = values.iter().map(|v| v.to_abi()).collect();
        let emit = self
            .sink
            .emit
            .ok_or_else(|| PluginError::new("the host's row sink has no emit function"))?;
        // SAFETY: `abi` holds `abi.len()` initialised values whose string pointers
        // borrow from `values`, alive for the duration of the call.
        let status = unsafe { emit(self.sink.ctx, abi.as_ptr(), abi.len() as u32) };
        if status.is_ok() {
            Ok(())
        } else {
            Err(PluginError::new(
                "the host refused the row: the values do not match the view's declared columns",
            ))
        }
    }
}

/// A run of consecutive records for [`Plugin::on_records`], borrowed for the call.
pub struct Records<'a> {
    raw: &'a [WalkerRecord],
    mask: &'a [u64; WALKER_RMGR_MASK_WORDS],
    /// Index of the record [`Records::iter`] yielded last (named when a panic ends
    /// the call).
    current: std::cell::Cell<usize>,
}

impl<'a> Records<'a> {
    /// Wraps a run of records; [`Records::iter`] yields those whose resource manager
    /// is in `mask`.
    ///
    /// # Safety
    /// Every record's pointers must be valid for `'a` with the lengths it states.
    pub unsafe fn from_raw(
        raw: &'a [WalkerRecord],
        mask: &'a [u64; WALKER_RMGR_MASK_WORDS],
    ) -> Self {
        Records {
            raw,
            mask,
            current: std::cell::Cell::new(0),
        }
    }

    /// The records of subscribed resource managers, with their index in the run.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Record<'a>)> + '_ {
        let mask = self.mask;
        self.raw
            .iter()
            .enumerate()
            .filter(move |(_, r)| mask_has(mask, r.rmid))
            .map(|(i, raw)| {
                self.current.set(i);
                (i, Record { raw })
            })
    }

    /// Records in the run, subscribed or not.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True for an empty run.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Why [`Plugin::on_records`] stopped: the record (index in the run) and the error.
#[derive(Debug)]
pub struct RecordsError {
    /// Index of the failing record in the run.
    pub index: usize,
    /// What went wrong.
    pub error: PluginError,
}

impl RecordsError {
    /// The record at `index` failed with `error`.
    pub fn at(index: usize, error: impl Into<PluginError>) -> Self {
        RecordsError {
            index,
            error: error.into(),
        }
    }
}

/// A WAL record, borrowed for the duration of [`Plugin::on_record`].
pub struct Record<'a> {
    raw: &'a WalkerRecord,
}

impl<'a> Record<'a> {
    /// The page restored from the full-page image of block reference number `i`
    /// (index into [`Record::blocks`]), when it has one and the host provides pages
    /// (ABI 1.1).
    pub fn block_image(&self, i: usize) -> Option<&'a [u8]> {
        let r = self.raw();
        let end = std::mem::offset_of!(WalkerRecord, page_size) + std::mem::size_of::<u32>();
        if (r.struct_size as usize) < end || r.block_images.is_null() || i >= r.n_blocks as usize {
            return None;
        }
        // SAFETY: the host passes `n_blocks` image pointers, each null or `page_size`
        // readable bytes, valid for the callback.
        unsafe {
            let p = *r.block_images.add(i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, r.page_size as usize))
        }
    }

    /// Wraps a raw record.
    ///
    /// # Safety
    /// `raw`'s pointers must be valid for `'a` with the lengths it states.
    pub unsafe fn from_raw(raw: &'a WalkerRecord) -> Self {
        Record { raw }
    }
    /// The raw struct.
    pub fn raw(&self) -> &'a WalkerRecord {
        self.raw
    }
    /// Start LSN.
    pub fn lsn(&self) -> u64 {
        self.raw.lsn
    }
    /// End LSN.
    pub fn end_lsn(&self) -> u64 {
        self.raw.end_lsn
    }
    /// Resource manager id.
    pub fn rmid(&self) -> u8 {
        self.raw.rmid
    }
    /// `xl_info`.
    pub fn info(&self) -> u8 {
        self.raw.info
    }
    /// Writing transaction (0 when none).
    pub fn xid(&self) -> u32 {
        self.raw.xid
    }
    /// Top-level transaction when known (0 otherwise).
    pub fn toplevel_xid(&self) -> u32 {
        self.raw.toplevel_xid
    }
    /// Total record length, images included.
    pub fn total_len(&self) -> u32 {
        self.raw.total_len
    }
    /// Bytes of full-page images.
    pub fn fpi_len(&self) -> u32 {
        self.raw.fpi_len
    }
    /// Main data.
    pub fn main_data(&self) -> &'a [u8] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(self.raw.main_data, self.raw.main_data_len as usize) }
    }
    /// Block references.
    pub fn blocks(&self) -> &'a [WalkerBlockRef] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(self.raw.blocks, self.raw.n_blocks as usize) }
    }
    /// Per-block data of `block`.
    pub fn block_data(&self, block: &WalkerBlockRef) -> &'a [u8] {
        // SAFETY: guaranteed by `from_raw`'s contract.
        unsafe { slice_or_empty(block.data, block.data_len as usize) }
    }
}

/// # Safety
/// `ptr` must be valid for `len` elements when `len > 0`.
unsafe fn slice_or_empty<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `ptr` is valid for `len` elements.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NUL bytes were replaced")
}

impl Host {
    /// Binds the raw table and handle (the SDK does this in `init`).
    ///
    /// # Safety
    /// `api` must point to a host API table valid for the process.
    pub unsafe fn from_raw(api: *const WalkerHostApi, plugin: *mut WalkerPlugin) -> Self {
        Host { api, plugin }
    }

    fn api(&self) -> &WalkerHostApi {
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

    fn set_error(&self, msg: &str) {
        if let Some(f) = self.api().set_error {
            // SAFETY: `msg` is valid for its length during the call.
            unsafe { f(self.plugin, msg.as_ptr(), msg.len()) }
        }
    }

    /// The region's address and size.
    fn region_raw(&self) -> PluginResult<(*mut c_void, usize)> {
        let f = self
            .api()
            .shmem_region
            .ok_or_else(|| PluginError::new("host offers no shared memory"))?;
        let mut size = 0usize;
        // SAFETY: `size` is a valid out pointer.
        let ptr = unsafe { f(self.plugin, &mut size) };
        if ptr.is_null() {
            return Err(PluginError::new("no shared-memory region: shmem_size returned 0 or shared memory is not initialised"));
        }
        Ok((ptr, size))
    }

    fn region<T: SharedState>(&self) -> PluginResult<*mut T> {
        let (ptr, size) = self.region_raw()?;
        if size < std::mem::size_of::<T>()
            || !(ptr as usize).is_multiple_of(std::mem::align_of::<T>())
        {
            return Err(PluginError::new(format!(
                "shared-memory region of {size} bytes cannot hold the plugin's state of {} bytes",
                std::mem::size_of::<T>()
            )));
        }
        Ok(ptr as *mut T)
    }

    /// Runs `f` on the shared state under the region's shared lock.
    ///
    /// The lock rule: `f` only copies data in or out of the region (a few
    /// milliseconds at most); it never waits, sleeps, does I/O or calls a host service
    /// that may wait. On a host with ABI 1.4 the wait for the lock is bounded by
    /// `walker.lock_timeout` and by the backend's cancel: an `Err` then says the lock
    /// was busy or the wait was interrupted, and `f` did not run.
    pub fn with_shared<T: SharedState, R>(&self, f: impl FnOnce(&T) -> R) -> PluginResult<R> {
        let ptr = self.region::<T>()?;
        let guard = LockGuard::new(self, false)?;
        // SAFETY: the region holds a `T` (checked size and alignment; zeroed or
        // initialised by `shmem_init`), and writers are excluded by the lock.
        let out = f(unsafe { &*ptr });
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on the shared state under the region's exclusive lock (the rule and
    /// the errors of [`Host::with_shared`] apply).
    pub fn with_exclusive<T: SharedState, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<T>()?;
        let guard = LockGuard::new(self, true)?;
        // SAFETY: as in `with_shared`, and every other accessor is excluded by the lock.
        let out = f(unsafe { &mut *ptr });
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on a region laid out as a header `H` followed by tables
    /// ([`crate::RegionLayout`]), under the exclusive lock: `f` gets the header and
    /// the tail, from which it takes its tables ([`crate::Tables::take`]). The rule
    /// and the errors of [`Host::with_shared`] apply.
    pub fn with_exclusive_tables<H: SharedState, R>(
        &self,
        f: impl FnOnce(&mut H, crate::Tables<'_>) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<H>()?;
        let (_, size) = self.region_raw()?;
        let guard = LockGuard::new(self, true)?;
        let head = std::mem::size_of::<H>();
        // SAFETY: the region holds an `H` at its start (checked size and alignment)
        // followed by `size - head` initialised bytes (the host zeroed the region);
        // the header and the tail do not overlap, and every other accessor is
        // excluded by the lock for the call.
        let out = unsafe {
            let tail = crate::Tables::from_raw((ptr as *mut u8).add(head), size - head);
            f(&mut *ptr, tail)
        };
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on a region laid out as a header `H` followed by tables, under the
    /// shared lock (see [`Host::with_exclusive_tables`]).
    pub fn with_shared_tables<H: SharedState, R>(
        &self,
        f: impl FnOnce(&H, crate::TablesRef<'_>) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<H>()?;
        let (_, size) = self.region_raw()?;
        let guard = LockGuard::new(self, false)?;
        let head = std::mem::size_of::<H>();
        // SAFETY: as in `with_exclusive_tables`; writers are excluded by the lock.
        let out = unsafe {
            let tail = crate::TablesRef::from_raw((ptr as *const u8).add(head), size - head);
            f(&*ptr, tail)
        };
        drop(guard);
        Ok(out)
    }

    fn status(&self, st: WalkerStatus, what: &str, name: &str) -> PluginResult {
        match st {
            WalkerStatus::OK => Ok(()),
            WalkerStatus::NOT_FOUND => Err(PluginError::new(format!(
                "{what} \"{name}\": no such setting of this plugin"
            ))),
            _ => Err(PluginError::new(format!(
                "{what} \"{name}\" failed (status {})",
                st.0
            ))),
        }
    }

    /// Defines an integer setting `<plugin>.<name>`; the handle reads it
    /// ([`Setting::get`]) without repeating the name.
    #[allow(clippy::too_many_arguments)]
    pub fn define_int(
        &self,
        name: &str,
        description: &str,
        default: i64,
        min: i64,
        max: i64,
        unit: WalkerSettingUnit,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<i64>> {
        let f = self
            .api()
            .define_int
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default,
                min,
                max,
                unit,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a floating-point setting `<plugin>.<name>`; the handle reads it.
    pub fn define_real(
        &self,
        name: &str,
        description: &str,
        default: f64,
        min: f64,
        max: f64,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<f64>> {
        let f = self
            .api()
            .define_real
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default,
                min,
                max,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a boolean setting `<plugin>.<name>`; the handle reads it.
    pub fn define_bool(
        &self,
        name: &str,
        description: &str,
        default: bool,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<bool>> {
        let f = self
            .api()
            .define_bool
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe { f(self.plugin, n.as_ptr(), d.as_ptr(), default, context) };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a string setting `<plugin>.<name>`; the handle reads it.
    pub fn define_string(
        &self,
        name: &str,
        description: &str,
        default: &str,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<String>> {
        let f = self
            .api()
            .define_string
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d, v) = (cstring(name), cstring(description), cstring(default));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe { f(self.plugin, n.as_ptr(), d.as_ptr(), v.as_ptr(), context) };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines an enum setting `<plugin>.<name>`; the handle reads it as an index into
    /// `options`.
    pub fn define_enum(
        &self,
        name: &str,
        description: &str,
        default: usize,
        options: &[&str],
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<usize>> {
        let f = self
            .api()
            .define_enum
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        let opts: Vec<CString> = options.iter().map(|o| cstring(o)).collect();
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        // SAFETY: all strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default as u32,
                ptrs.as_ptr(),
                ptrs.len() as u32,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Reads an integer setting of this plugin.
    pub fn get_int(&self, name: &str) -> PluginResult<i64> {
        let f = self
            .api()
            .get_int
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut out = 0i64;
        // SAFETY: valid string and out pointer.
        let st = unsafe { f(self.plugin, n.as_ptr(), &mut out) };
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads a floating-point setting of this plugin.
    pub fn get_real(&self, name: &str) -> PluginResult<f64> {
        let f = self
            .api()
            .get_real
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut out = 0f64;
        // SAFETY: valid string and out pointer.
        let st = unsafe { f(self.plugin, n.as_ptr(), &mut out) };
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads a boolean setting of this plugin.
    pub fn get_bool(&self, name: &str) -> PluginResult<bool> {
        let f = self
            .api()
            .get_bool
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut out = false;
        // SAFETY: valid string and out pointer.
        let st = unsafe { f(self.plugin, n.as_ptr(), &mut out) };
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads an enum setting of this plugin as the option's index.
    pub fn get_enum(&self, name: &str) -> PluginResult<usize> {
        let f = self
            .api()
            .get_enum
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut out = 0u32;
        // SAFETY: valid string and out pointer.
        let st = unsafe { f(self.plugin, n.as_ptr(), &mut out) };
        self.status(st, "reading setting", name)
            .map(|_| out as usize)
    }

    /// Reads a string setting of this plugin.
    pub fn get_string(&self, name: &str) -> PluginResult<String> {
        let f = self
            .api()
            .get_string
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0usize;
            // SAFETY: `buf` is writable for `buf.len()` bytes.
            let st = unsafe {
                f(
                    self.plugin,
                    n.as_ptr(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut len,
                )
            };
            if st == WalkerStatus::INVALID && len > buf.len() {
                buf.resize(len, 0);
                continue;
            }
            self.status(st, "reading setting", name)?;
            buf.truncate(len);
            return String::from_utf8(buf)
                .map_err(|e| PluginError::new(format!("setting \"{name}\" is not UTF-8: {e}")));
        }
    }

    /// Wall-clock time in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> i64 {
        match self.api().now_micros {
            // SAFETY: no arguments.
            Some(f) => unsafe { f() },
            None => 0,
        }
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
    fn has(&self, end_offset: usize) -> bool {
        self.api().struct_size as usize >= end_offset
    }

    fn has_v1_2(&self) -> bool {
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

    /// Queues a request for the host's services worker (ABI 1.2); its id.
    pub fn request_service(
        &self,
        kind: WalkerServiceKind,
        name: &str,
        value: &str,
    ) -> PluginResult<u64> {
        let f = self
            .api()
            .request_service
            .filter(|_| self.has_v1_2())
            .ok_or_else(|| {
                PluginError::new("this walker host is older than ABI 1.2 (no services)")
            })?;
        let req = WalkerServiceRequest {
            kind,
            name: name.as_ptr(),
            name_len: name.len(),
            value: value.as_ptr(),
            value_len: value.len(),
        };
        let mut id = 0u64;
        // SAFETY: the request's buffers are valid for the call; the host copies them.
        let st = unsafe { f(self.plugin, &req, &mut id) };
        self.status(st, "request_service", name)?;
        Ok(id)
    }

    /// The outcome of request `id`, waiting up to `wait_ms` (ABI 1.2).
    pub fn service_result(&self, id: u64, wait_ms: u32) -> ServiceOutcome {
        let Some(f) = self.api().service_result.filter(|_| self.has_v1_2()) else {
            return ServiceOutcome::Unknown;
        };
        // The host's messages fit this buffer whole (the ABI's bound).
        let mut buf = vec![0u8; WALKER_SERVICE_MESSAGE_MAX];
        let mut len = 0usize;
        // SAFETY: `buf` is writable for its length.
        let st = unsafe {
            f(
                self.plugin,
                id,
                wait_ms,
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        let msg = service_message(&buf, len);
        match st {
            WalkerStatus::OK => ServiceOutcome::Succeeded(msg),
            WalkerStatus::ERROR => ServiceOutcome::Failed(msg),
            WalkerStatus::PENDING => ServiceOutcome::Pending,
            WalkerStatus::INTERRUPTED => ServiceOutcome::Interrupted,
            _ => ServiceOutcome::Unknown,
        }
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

struct LockGuard<'h> {
    host: &'h Host,
    exclusive: bool,
}

impl<'h> LockGuard<'h> {
    fn new(host: &'h Host, exclusive: bool) -> PluginResult<Self> {
        let timed = host
            .api()
            .lock_timed
            .filter(|_| host.has(WALKER_HOST_API_V1_4_SIZE as usize));
        if let Some(f) = timed {
            // SAFETY: the handle is the one the host gave this plugin.
            let st = unsafe { f(host.plugin, exclusive, u32::MAX) };
            return match st {
                WalkerStatus::OK => Ok(LockGuard { host, exclusive }),
                WalkerStatus::BUSY => Err(PluginError::new(
                    "the plugin's shared-memory lock was not obtained within walker.lock_timeout (the server log names its holder)",
                )),
                WalkerStatus::INTERRUPTED => Err(PluginError::new(
                    "the wait for the plugin's shared-memory lock was interrupted",
                )),
                other => Err(PluginError::new(format!(
                    "taking the plugin's shared-memory lock failed (status {})",
                    other.0
                ))),
            };
        }
        let f = if exclusive {
            host.api().lock_exclusive
        } else {
            host.api().lock_shared
        };
        if let Some(f) = f {
            // SAFETY: the handle is the one the host gave this plugin.
            unsafe { f(host.plugin) }
        }
        Ok(LockGuard { host, exclusive })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let f = if self.exclusive {
            self.host.api().unlock_exclusive
        } else {
            self.host.api().unlock_shared
        };
        if let Some(f) = f {
            // SAFETY: releases the lock taken in `new`.
            unsafe { f(self.host.plugin) }
        }
    }
}

/// The message `service_result` left in `buf`, whose full length is `len`. A message
/// longer than the buffer (a host that breaks the ABI's bound) arrives cut, or not at
/// all from hosts that copy nothing when it does not fit: the text says so instead of
/// handing out NUL bytes.
fn service_message(buf: &[u8], len: usize) -> String {
    if len <= buf.len() {
        return String::from_utf8_lossy(&buf[..len]).into_owned();
    }
    let kept = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let note = format!(
        "(the host's message is {len} bytes, more than the {} it may send; {} kept)",
        buf.len(),
        kept
    );
    if kept == 0 {
        note
    } else {
        format!("{} {note}", String::from_utf8_lossy(&buf[..kept]))
    }
}

// ---------------------------------------------------------------------------------
// Export machinery: used by `export_plugin!`, not by plugin authors directly.
// ---------------------------------------------------------------------------------

struct Instance {
    host: Host,
    plugin: Box<dyn Any + Send + Sync>,
    /// Set by the first panic in a callback of this process: why every later callback
    /// fails at once (a panic may have left the plugin's state half-changed).
    poisoned: OnceLock<String>,
}

static INSTANCE: OnceLock<Instance> = OnceLock::new();

struct DescriptorHolder {
    desc: WalkerPluginDescriptor,
    // Keep the C strings and arrays the descriptor points into alive.
    _strings: Vec<CString>,
    _columns: Vec<Vec<WalkerColumn>>,
    _views: Vec<WalkerView>,
    _functions: Vec<WalkerFunction>,
}

// SAFETY: the holder is immutable after construction and its pointers target data it owns.
unsafe impl Sync for DescriptorHolder {}
// SAFETY: as above.
unsafe impl Send for DescriptorHolder {}

static DESCRIPTOR: OnceLock<DescriptorHolder> = OnceLock::new();

/// The text of a panic's payload.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

/// The message a poisoned instance answers every callback with.
fn poisoned_message(callback: &str, panic: &str) -> String {
    format!(
        "the plugin panicked earlier in {callback}: {panic}; it serves nothing until the server restarts"
    )
}

/// Runs a callback body, turning errors and panics into a status and a message.
///
/// A poisoned instance (`inst`) fails at once without running `body`; a panic
/// poisons it. An error returns `ERROR` whatever its kind ([`tramp_call`] reports
/// the kind).
fn guarded(
    inst: Option<&Instance>,
    host: Option<Host>,
    callback: &str,
    body: impl FnOnce() -> PluginResult,
) -> WalkerStatus {
    if let Some(why) = inst.and_then(|i| i.poisoned.get()) {
        if let Some(h) = host {
            h.set_error(why);
        }
        return WalkerStatus::ERROR;
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => WalkerStatus::OK,
        Ok(Err(e)) => {
            if let Some(h) = host {
                h.set_error(&e.0);
            }
            WalkerStatus::ERROR
        }
        Err(payload) => {
            let text = panic_text(payload.as_ref());
            if let Some(i) = inst {
                let _ = i.poisoned.set(poisoned_message(callback, text));
            }
            if let Some(h) = host {
                h.set_error(&format!("plugin panicked: {text}"));
            }
            WalkerStatus::PANIC
        }
    }
}

/// The common prologue of every callback after `init`: finds the instance of `P`
/// and runs `body` [`guarded`].
fn run<P: Plugin>(
    callback: &str,
    body: impl FnOnce(&'static Host, &'static P) -> PluginResult,
) -> WalkerStatus {
    let inst = INSTANCE.get();
    let live = inst.and_then(|i| Some((&i.host, i.plugin.downcast_ref::<P>()?)));
    guarded(inst, inst.map(|i| i.host), callback, || {
        let (h, p) = live.ok_or_else(|| {
            PluginError::new(format!(
                "plugin callback {callback} before a successful init"
            ))
        })?;
        body(h, p)
    })
}

unsafe extern "C" fn tramp_init<P: Plugin>(
    api: *const WalkerHostApi,
    plugin: *mut WalkerPlugin,
) -> WalkerStatus {
    if api.is_null() {
        return WalkerStatus::INVALID;
    }
    // SAFETY: the host passes a table valid for the process.
    let host = unsafe { Host::from_raw(api, plugin) };
    guarded(None, Some(host), "init", || {
        let p = P::init(&host)?;
        INSTANCE
            .set(Instance {
                host,
                plugin: Box::new(p),
                poisoned: OnceLock::new(),
            })
            .map_err(|_| PluginError::new("init called twice"))
    })
}

/// A panic or a missing instance returns [`WALKER_SHMEM_SIZE_FAILED`] with the reason
/// passed to `set_error`; the host refuses the plugin.
unsafe extern "C" fn tramp_shmem_size<P: Plugin>(_plugin: *mut WalkerPlugin) -> usize {
    let mut size = 0;
    let st = run::<P>("shmem_size", |h, p| {
        size = p.shmem_size(h);
        Ok(())
    });
    if st.is_ok() {
        size
    } else {
        WALKER_SHMEM_SIZE_FAILED
    }
}

unsafe extern "C" fn tramp_shmem_init<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    _region: *mut c_void,
    _size: usize,
    found: bool,
) -> WalkerStatus {
    run::<P>("shmem_init", |h, p| p.shmem_init(h, found))
}

unsafe extern "C" fn tramp_on_record<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    record: *const WalkerRecord,
) -> WalkerStatus {
    run::<P>("on_record", |h, p| {
        if record.is_null() {
            return Err(PluginError::new("null record"));
        }
        // SAFETY: the host passes a record valid for the duration of the call.
        let rec = unsafe { Record::from_raw(&*record) };
        p.on_record(h, &rec)
    })
}

unsafe extern "C" fn tramp_on_records<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    records: *const WalkerRecord,
    n: u32,
    failed_at: *mut u32,
) -> WalkerStatus {
    let mut failed = 0usize;
    let st = run::<P>("on_records", |h, p| {
        if records.is_null() && n > 0 {
            return Err(PluginError::new("null records"));
        }
        let raw = if n == 0 {
            &[][..]
        } else {
            // SAFETY: the host passes `n` records valid for the duration of the call.
            unsafe { std::slice::from_raw_parts(records, n as usize) }
        };
        // SAFETY: the descriptor is built once and lives for the process.
        let mask = unsafe { &(*descriptor::<P>()).rmgr_mask };
        // SAFETY: the host's records point into its batch, alive during the call.
        let run = unsafe { Records::from_raw(raw, mask) };
        let r = catch_unwind(AssertUnwindSafe(|| p.on_records(h, &run)));
        failed = run.current.get();
        match r {
            Ok(r) => r.map_err(|e| {
                failed = e.index;
                e.error
            }),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    });
    if !failed_at.is_null() {
        // SAFETY: the host passes a writable u32 (or null).
        unsafe { *failed_at = failed.min(u32::MAX as usize) as u32 };
    }
    st
}

unsafe extern "C" fn tramp_on_idle<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    lsn: u64,
) -> WalkerStatus {
    run::<P>("on_idle", |h, p| p.on_idle(h, lsn))
}

unsafe extern "C" fn tramp_shutdown<P: Plugin>(_plugin: *mut WalkerPlugin) -> WalkerStatus {
    run::<P>("shutdown", |h, p| p.shutdown(h))
}

unsafe extern "C" fn tramp_view_rows<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    view: u32,
    sink: *const WalkerRowSink,
) -> WalkerStatus {
    run::<P>("view_rows", |h, p| {
        if sink.is_null() {
            return Err(PluginError::new("null row sink"));
        }
        let mut rows = RowSink {
            // SAFETY: the host passes a sink valid for the duration of the call.
            sink: unsafe { &*sink },
        };
        p.view_rows(h, view as usize, &mut rows)
    })
}

unsafe extern "C" fn tramp_save_state<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    sink: *const WalkerStateSink,
) -> WalkerStatus {
    run::<P>("save_state", |h, p| {
        let mut out = Vec::new();
        p.save_state(h, &mut out)?;
        // SAFETY: the host passes a sink valid for the duration of the call.
        unsafe { write_to_sink(sink, "state", &out) }
    })
}

/// Hands `bytes` to a host sink in one write; `what` names them in errors.
///
/// # Safety
/// `sink` must be null or a sink valid for the call.
unsafe fn write_to_sink(sink: *const WalkerStateSink, what: &str, bytes: &[u8]) -> PluginResult {
    // SAFETY: caller's contract.
    let sink =
        unsafe { sink.as_ref() }.ok_or_else(|| PluginError::new(format!("null {what} sink")))?;
    let write = sink
        .write
        .ok_or_else(|| PluginError::new(format!("{what} sink without write")))?;
    // SAFETY: `bytes` is valid for its length; the sink's context is the host's.
    let st = unsafe { write(sink.ctx, bytes.as_ptr(), bytes.len()) };
    if st.is_ok() {
        Ok(())
    } else {
        Err(PluginError::new(format!(
            "the host refused the {what} (status {})",
            st.0
        )))
    }
}

unsafe extern "C" fn tramp_load_state<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    data: *const u8,
    len: usize,
    lsn: u64,
) -> WalkerStatus {
    run::<P>("load_state", |h, p| {
        let state = if data.is_null() {
            None
        } else {
            // SAFETY: the host passes `len` readable bytes at `data` for the call.
            Some(unsafe { std::slice::from_raw_parts(data, len) })
        };
        p.load_state(h, state, lsn)
    })
}

/// An [`ErrorKind::InvalidArgument`] error returns `INVALID` (SQLSTATE 22023 in the
/// host), any other `ERROR` (38000).
unsafe extern "C" fn tramp_call<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    function: u32,
    args: *const u8,
    len: usize,
    out: *const WalkerStateSink,
) -> WalkerStatus {
    let mut kind = ErrorKind::Failed;
    let st = run::<P>("call", |h, p| {
        let args = if args.is_null() || len == 0 {
            "{}".to_string()
        } else {
            // SAFETY: the host passes `len` readable bytes at `args` for the call.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(args, len) }).into_owned()
        };
        let result = p
            .call(h, function as usize, &args)
            .inspect_err(|e| kind = e.kind())?;
        // SAFETY: the host passes a sink valid for the duration of the call.
        unsafe { write_to_sink(out, "result", result.as_bytes()) }
    });
    if st == WalkerStatus::ERROR {
        kind.status()
    } else {
        st
    }
}

/// Copies `text` into `buf`, cut at a character boundary; returns the length kept.
fn copy_cut(buf: &mut [u8], text: &str) -> u32 {
    let mut n = text.len().min(buf.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    n as u32
}

unsafe extern "C" fn tramp_on_backend<P: Plugin>(
    _plugin: *mut WalkerPlugin,
    event: *const WalkerBackendEvent,
    verdict: *mut WalkerVerdict,
) -> WalkerStatus {
    let mut admission = Admission::Proceed;
    let st = run::<P>("on_backend", |h, p| {
        if event.is_null() || verdict.is_null() {
            return Err(PluginError::new("null backend event or verdict"));
        }
        // SAFETY: the host passes an event and a verdict valid for the call.
        let (raw, verdict) = unsafe { (&*event, &mut *verdict) };
        if raw.kind == WalkerBackendEventKind::STATEMENT_START {
            verdict.fail_closed = p.fail_closed(h);
        }
        // SAFETY: as above.
        let ev = unsafe { BackendEvent::from_raw(raw) };
        admission = p.on_backend(h, &ev)?;
        if let Admission::Reject(r) = &admission {
            verdict.sqlstate = r.sqlstate;
            verdict.message_len = copy_cut(&mut verdict.message, &r.message);
            verdict.detail_len = copy_cut(&mut verdict.detail, &r.detail);
            verdict.hint_len = copy_cut(&mut verdict.hint, &r.hint);
        }
        Ok(())
    });
    match (st, admission) {
        (WalkerStatus::OK, Admission::Reject(_)) => WalkerStatus::REJECTED,
        (WalkerStatus::OK, Admission::Interrupted) => WalkerStatus::INTERRUPTED,
        (st, _) => st,
    }
}

/// Builds (once) and returns the descriptor of plugin type `P`.
#[doc(hidden)]
pub fn descriptor<P: Plugin>() -> *const WalkerPluginDescriptor {
    let holder = DESCRIPTOR.get_or_init(|| {
        let info = P::describe();
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = cstring(s);
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let version = keep(info.version);
        let description = keep(info.description);
        let mut columns: Vec<Vec<WalkerColumn>> = Vec::new();
        let mut views: Vec<WalkerView> = Vec::new();
        for v in &info.views {
            let cols: Vec<WalkerColumn> = v
                .columns
                .iter()
                .map(|(n, t)| WalkerColumn {
                    name: keep(n),
                    ty: *t,
                })
                .collect();
            views.push(WalkerView {
                name: keep(v.name),
                description: keep(v.description),
                columns: cols.as_ptr(),
                n_columns: cols.len() as u32,
            });
            columns.push(cols);
        }
        let functions: Vec<WalkerFunction> = info
            .functions
            .iter()
            .map(|f| WalkerFunction {
                name: keep(f.name),
                description: keep(f.description),
                result: f.result,
                access: f.access,
            })
            .collect();
        let sql = info.sql.map_or(std::ptr::null(), &mut keep);
        let role = info.role.map_or(std::ptr::null(), &mut keep);
        let desc = WalkerPluginDescriptor {
            abi_major: WALKER_ABI_MAJOR,
            abi_minor: WALKER_ABI_MINOR,
            struct_size: std::mem::size_of::<WalkerPluginDescriptor>() as u32,
            version,
            description,
            rmgr_mask: info.rmgrs,
            views: views.as_ptr(),
            n_views: views.len() as u32,
            init: Some(tramp_init::<P>),
            shmem_size: Some(tramp_shmem_size::<P>),
            shmem_init: Some(tramp_shmem_init::<P>),
            on_record: Some(tramp_on_record::<P>),
            on_idle: Some(tramp_on_idle::<P>),
            shutdown: Some(tramp_shutdown::<P>),
            view_rows: Some(tramp_view_rows::<P>),
            save_state: if info.snapshots {
                Some(tramp_save_state::<P>)
            } else {
                None
            },
            load_state: if info.snapshots {
                Some(tramp_load_state::<P>)
            } else {
                None
            },
            functions: functions.as_ptr(),
            n_functions: functions.len() as u32,
            call: (!functions.is_empty()).then_some(tramp_call::<P> as _),
            on_backend: info.backend_events.then_some(tramp_on_backend::<P> as _),
            sql,
            role,
            on_records: Some(tramp_on_records::<P>),
        };
        DescriptorHolder {
            desc,
            _strings: strings,
            _columns: columns,
            _views: views,
            _functions: functions,
        }
    });
    &holder.desc
}

/// The `abi_stable` layout of the descriptor (and, through its pointers, of every ABI
/// type) as this crate was compiled.
pub fn descriptor_layout() -> &'static abi_stable::type_layout::TypeLayout {
    <WalkerPluginDescriptor as abi_stable::StableAbi>::LAYOUT
}

/// Reads a NUL-terminated string the ABI passes; `None` for null or non-UTF-8.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// Exports a [`Plugin`] implementation as this shared library's walker plugin.
///
/// ```ignore
/// struct MyPlugin;
/// impl walker_abi::Plugin for MyPlugin { /* ... */ }
/// walker_abi::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        /// The walker plugin entry point.
        #[no_mangle]
        pub extern "C" fn walker_plugin_entry() -> *const $crate::WalkerPluginDescriptor {
            $crate::sdk::descriptor::<$ty>()
        }

        /// The ABI layout this plugin was built against.
        #[no_mangle]
        pub extern "C" fn walker_plugin_layout(
        ) -> &'static $crate::abi_stable::type_layout::TypeLayout {
            $crate::sdk::descriptor_layout()
        }
    };
}

#[cfg(test)]
#[path = "sdk_tests.rs"]
mod tests;
