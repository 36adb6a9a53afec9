//! Backend events ([`Plugin::on_backend`](super::Plugin::on_backend)) and the plugin's
//! verdict on them.

use crate::types::*;

/// An event in a server process running SQL
/// ([`Plugin::on_backend`](super::Plugin::on_backend), ABI 1.3).
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

/// What [`Plugin::on_backend`](super::Plugin::on_backend) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go on.
    Proceed,
    /// Refuse the statement (statement start only).
    Reject(Rejection),
    /// A wait was interrupted ([`Host::pause`](super::Host::pause) returned false):
    /// the host raises the interrupt (cancel or termination).
    Interrupted,
}
