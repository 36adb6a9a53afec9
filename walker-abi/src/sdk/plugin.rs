//! The [`Plugin`] trait a plugin implements, and the [`SharedState`] marker for its
//! shared-memory region.

use super::{
    Admission, BackendEvent, Host, PluginError, PluginInfo, PluginResult, Record, Records,
    RecordsError, RowSink,
};

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
    /// so a later release can read (or refuse) what this one wrote ([`crate::Envelope`]).
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
