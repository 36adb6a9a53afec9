//! The executor, utility and transaction hooks that turn statements and transaction
//! ends into backend events for plugins (ABI 1.3), and raise a plugin's rejection.
//!
//! Installed in the postmaster (so every server process inherits them) only when a
//! loaded plugin asks for backend events. The hooks themselves are C trampolines
//! (`hooks.c`): the server's work and other extensions' hooks run below C frames only,
//! so their errors reach the client exactly as without walker. The trampolines call
//! the functions here before or after that work, never around it.

use crate::pg_version;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use walker_abi::{
    WalkerBackendEvent, WalkerBackendEventKind as Kind, WalkerBackendType, WalkerSessionReset,
    WalkerStatementKind,
};
use walker_core::backend::{self, Outcome};
use walker_core::registry::{self, PluginSlot};
use walker_core::utility_class::{self, Utility};

unsafe extern "C" {
    /// Installs the executor and utility hook trampolines (`hooks.c`).
    fn walker_hooks_install();
    /// How deep the executor or utility processing is nested right now (0: the
    /// statement the client sent); kept by `hooks.c`, restored when an error unwinds.
    static walker_hook_depth: c_int;
}

thread_local! {
    /// Names looked up in this process: the database's, and roles' by OID.
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

#[derive(Default)]
struct Names {
    database: Option<String>,
    roles: Vec<(u32, String)>,
}

/// The plugins that asked for backend events (fixed after `_PG_init`).
fn wanting() -> &'static [&'static PluginSlot] {
    static WANTING: std::sync::OnceLock<Vec<&'static PluginSlot>> = std::sync::OnceLock::new();
    WANTING.get_or_init(|| {
        registry::all()
            .into_iter()
            .filter(|s| s.wants_backend_events())
            .collect()
    })
}

/// The plugins that asked for backend events and are usable: borrowed when all of them
/// are (every event of a healthy server), a filtered copy otherwise.
fn listeners() -> Cow<'static, [&'static PluginSlot]> {
    let all = wanting();
    if all.iter().all(|s| s.usable()) {
        Cow::Borrowed(all)
    } else {
        Cow::Owned(all.iter().copied().filter(|s| s.usable()).collect())
    }
}

/// Installs the hooks when a loaded plugin wants backend events, and asks the server
/// to compute query ids. In the postmaster, from `_PG_init`.
pub fn install() {
    if listeners().is_empty() {
        return;
    }
    // SAFETY: _PG_init in the postmaster, main thread: hooks.c saves and replaces the
    // server's hook pointers, the documented way to install hooks; the transaction
    // callbacks are registered the same way.
    unsafe {
        pg_sys::EnableQueryId();
        walker_hooks_install();
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// The nesting depth `hooks.c` keeps.
fn nesting_depth() -> u32 {
    // SAFETY: a plain int written only by this process's main thread, in hooks.c.
    let d = unsafe { walker_hook_depth };
    d.max(0) as u32
}

fn backend_type() -> WalkerBackendType {
    // SAFETY: reading a process global on the main thread.
    match unsafe { pg_sys::MyBackendType } {
        pg_sys::BackendType::B_BACKEND => WalkerBackendType::CLIENT,
        pg_sys::BackendType::B_AUTOVAC_WORKER => WalkerBackendType::AUTOVACUUM,
        pg_sys::BackendType::B_BG_WORKER => WalkerBackendType::BACKGROUND_WORKER,
        _ => WalkerBackendType::OTHER,
    }
}

/// A server string borrowed as UTF-8 (copied only when it is not valid UTF-8).
///
/// # Safety
/// `p` is null or a NUL-terminated string that stays valid and unchanged for `'a`.
unsafe fn text<'a>(p: *const c_char) -> Cow<'a, str> {
    if p.is_null() {
        Cow::Borrowed("")
    } else {
        // SAFETY: the caller's contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy()
    }
}

fn owned(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string from the server.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Looks up the names of the current database and of `role` when `lookup` (inside a
/// healthy transaction) and they are not known yet; then calls `f` with the names
/// known (empty when not), borrowed from the process's cache.
fn with_names<R>(role: u32, lookup: bool, f: impl FnOnce(&str, &str) -> R) -> R {
    NAMES.with(|n| {
        // `try_borrow_mut`: a borrow left behind (an error unwinding through `f`) costs
        // the lookups, never a panic.
        if let Some(mut n) = lookup.then(|| n.try_borrow_mut().ok()).flatten() {
            if n.database.is_none() {
                // SAFETY: catalog lookup on the main thread inside a transaction.
                n.database = Some(owned(unsafe {
                    pg_sys::get_database_name(pg_sys::MyDatabaseId)
                }));
            }
            if !n.roles.iter().any(|(o, _)| *o == role) {
                // SAFETY: catalog lookup on the main thread inside a transaction; noerr.
                let s = owned(unsafe { pg_sys::GetUserNameFromId(role.into(), true) });
                if n.roles.len() >= 64 {
                    n.roles.clear();
                }
                n.roles.push((role, s));
            }
        }
        let Ok(n) = n.try_borrow() else {
            return f("", "");
        };
        let role_name = n
            .roles
            .iter()
            .find(|(o, _)| *o == role)
            .map_or("", |(_, s)| s.as_str());
        f(n.database.as_deref().unwrap_or(""), role_name)
    })
}

/// What differs between the events; the rest is read from the process.
struct Statement {
    kind: Kind,
    statement: WalkerStatementKind,
    read_only: bool,
    never_writes: bool,
    session_reset: WalkerSessionReset,
    query_id: u64,
    command: Cow<'static, str>,
}

impl Statement {
    /// A transaction event (no statement).
    fn transaction(kind: Kind) -> Statement {
        Statement {
            kind,
            statement: WalkerStatementKind::OTHER,
            read_only: false,
            never_writes: false,
            session_reset: WalkerSessionReset::NONE,
            query_id: 0,
            command: Cow::Borrowed(""),
        }
    }
}

/// Builds the event and asks the plugins.
fn dispatch(s: Statement, in_healthy_transaction: bool) -> Outcome {
    let slots = listeners();
    if slots.is_empty() {
        return Outcome::Proceed;
    }
    // Only the listeners' settings: the other plugins read theirs in the worker or
    // in walker's SQL functions, which refresh them there.
    for slot in slots.iter() {
        // SAFETY: the process's main thread, where its settings change.
        unsafe { slot.refresh_settings() };
    }
    // SAFETY: process globals read on the main thread. `application_name` is borrowed:
    // nothing changes the setting while the plugins are called (they run no SQL).
    let (pid, database, role, top_xid, xid, wal, app) = unsafe {
        (
            pg_sys::MyProcPid,
            pg_sys::MyDatabaseId.to_u32(),
            pg_sys::GetUserId().to_u32(),
            pg_sys::GetTopTransactionIdIfAny().into_inner(),
            pg_sys::GetCurrentTransactionIdIfAny().into_inner(),
            pg_sys::pgWalUsage,
            text(pg_sys::application_name),
        )
    };
    let (outcome, failures) =
        with_names(role, in_healthy_transaction, |database_name, role_name| {
            let event = WalkerBackendEvent {
                struct_size: std::mem::size_of::<WalkerBackendEvent>() as u32,
                kind: s.kind,
                statement: s.statement,
                backend_type: backend_type(),
                nesting_level: nesting_depth(),
                read_only: s.read_only,
                pid,
                database,
                role,
                query_id: s.query_id,
                top_xid,
                xid,
                wal_records: wal.wal_records.max(0) as u64,
                wal_fpi: wal.wal_fpi.max(0) as u64,
                wal_bytes: wal.wal_bytes,
                application_name: app.as_ptr(),
                application_name_len: app.len(),
                role_name: role_name.as_ptr(),
                role_name_len: role_name.len(),
                database_name: database_name.as_ptr(),
                database_name_len: database_name.len(),
                command: s.command.as_ptr(),
                command_len: s.command.len(),
                never_writes: s.never_writes,
                session_reset: s.session_reset,
            };
            walker_core::services::with_waiter(crate::sql::backend_wait, || {
                backend::dispatch(&slots, &event)
            })
        });
    for f in failures {
        pgrx::warning!("walker plugin \"{}\": {}", f.plugin, f.message);
    }
    outcome
}

/// A plugin's rejection as `hooks.c` raises it (`WalkerHookVerdict` there): the
/// SQLSTATE encoded as the server does, and strings palloc'd in the statement's
/// memory context (detail and hint may be null).
#[repr(C)]
pub struct HookVerdict {
    sqlerrcode: c_int,
    message: *mut c_char,
    detail: *mut c_char,
    hint: *mut c_char,
}

/// `hooks.c`'s answers at statement start.
const HOOK_PROCEED: c_int = 0;
const HOOK_REJECT: c_int = 1;
const HOOK_INTERRUPTED: c_int = 2;

/// The server's encoding of a five-character SQLSTATE (`MAKE_SQLSTATE`).
fn encode_sqlstate(s: [u8; 5]) -> c_int {
    let six = |c: u8| (c.wrapping_sub(b'0') & 0x3F) as c_int;
    six(s[0]) | (six(s[1]) << 6) | (six(s[2]) << 12) | (six(s[3]) << 18) | (six(s[4]) << 24)
}

/// Copies `t` (without NUL bytes) into the current memory context.
fn palloc_text(t: &str) -> *mut c_char {
    let clean: Vec<u8> = t.bytes().filter(|b| *b != 0).chain([0]).collect();
    // SAFETY: copies a NUL-terminated buffer into the current memory context (main
    // thread, inside a statement).
    unsafe { pg_sys::pstrdup(clean.as_ptr() as *const c_char) }
}

/// Turns the plugins' answer at statement start into `hooks.c`'s: a rejection is
/// written to `out` for the C side to raise (so no Rust frame is alive when the
/// server's error handling jumps).
fn answer(outcome: Outcome, out: *mut HookVerdict) -> c_int {
    match outcome {
        Outcome::Proceed => HOOK_PROCEED,
        Outcome::Interrupted => HOOK_INTERRUPTED,
        Outcome::Reject(r) => {
            let verdict = HookVerdict {
                sqlerrcode: encode_sqlstate(r.sqlstate),
                message: palloc_text(&r.message),
                detail: if r.detail.is_empty() {
                    std::ptr::null_mut()
                } else {
                    palloc_text(&r.detail)
                },
                hint: if r.hint.is_empty() {
                    std::ptr::null_mut()
                } else {
                    palloc_text(&r.hint)
                },
            };
            // SAFETY: `out` points to the C caller's zeroed verdict on its stack.
            unsafe { out.write(verdict) };
            HOOK_REJECT
        }
    }
}

fn executor_statement(qd: *mut pg_sys::QueryDesc, kind: Kind) -> Statement {
    // SAFETY: the executor passes a valid QueryDesc with its planned statement.
    let (op, stmt) = unsafe { ((*qd).operation, (*qd).plannedstmt) };
    let (statement, command) = match op {
        pg_sys::CmdType::CMD_SELECT => (WalkerStatementKind::SELECT, "SELECT"),
        pg_sys::CmdType::CMD_INSERT => (WalkerStatementKind::INSERT, "INSERT"),
        pg_sys::CmdType::CMD_UPDATE => (WalkerStatementKind::UPDATE, "UPDATE"),
        pg_sys::CmdType::CMD_DELETE => (WalkerStatementKind::DELETE, "DELETE"),
        pg_sys::CmdType::CMD_MERGE => (WalkerStatementKind::MERGE, "MERGE"),
        pg_sys::CmdType::CMD_UTILITY => (WalkerStatementKind::UTILITY, ""),
        _ => (WalkerStatementKind::OTHER, ""),
    };
    // SAFETY: as above; a null planned statement is tolerated.
    let (query_id, read_only) = match unsafe { stmt.as_ref() } {
        Some(p) => (
            pg_version::query_id(p),
            op == pg_sys::CmdType::CMD_SELECT && !p.hasModifyingCTE && p.rowMarks.is_null(),
        ),
        None => (0, false),
    };
    Statement {
        kind,
        statement,
        read_only,
        never_writes: false,
        session_reset: WalkerSessionReset::NONE,
        query_id,
        command: Cow::Borrowed(command),
    }
}

/// Statement start of an executor run (called by `hooks.c` before the server's
/// `ExecutorStart`). EXPLAIN without ANALYZE is not an event.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn walker_rs_executor_start(
    qd: *mut pg_sys::QueryDesc,
    eflags: c_int,
    out: *mut HookVerdict,
) -> c_int {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0 {
        return HOOK_PROCEED;
    }
    answer(
        dispatch(executor_statement(qd, Kind::STATEMENT_START), true),
        out,
    )
}

/// Statement end of an executor run (called by `hooks.c` before the server's
/// `ExecutorEnd`).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn walker_rs_executor_end(qd: *mut pg_sys::QueryDesc) {
    // SAFETY: reading the executor's flags of a valid QueryDesc.
    let explain_only = unsafe { (*qd).estate.as_ref() }
        .is_some_and(|e| e.es_top_eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0);
    if !explain_only {
        let _ = dispatch(executor_statement(qd, Kind::STATEMENT_END), true);
    }
}

/// True when an `EXPLAIN` option list runs the statement: `ANALYZE` present and not
/// explicitly false (a value the server will refuse counts as on: the cautious side).
///
/// # Safety
/// `options` is null or a valid `List` of `DefElem` nodes.
unsafe fn explain_analyzes(options: *mut pg_sys::List) -> bool {
    // SAFETY: the caller's contract; the list holds DefElem pointers.
    let list = unsafe { pgrx::PgList::<pg_sys::DefElem>::from_pg(options) };
    let analyzes = list.iter_ptr().any(|d| {
        // SAFETY: a valid DefElem of the parse tree.
        let (name, arg) = unsafe { ((*d).defname, (*d).arg) };
        if owned(name) != "analyze" {
            return false;
        }
        if arg.is_null() {
            return true;
        }
        // SAFETY: `arg` is a valid value node; its tag says which struct it is.
        unsafe {
            match (*arg).type_ {
                pg_sys::NodeTag::T_Boolean => (*(arg as *mut pg_sys::Boolean)).boolval,
                pg_sys::NodeTag::T_Integer => (*(arg as *mut pg_sys::Integer)).ival != 0,
                pg_sys::NodeTag::T_String => {
                    !utility_class::is_false_word(&owned((*(arg as *mut pg_sys::String)).sval))
                }
                _ => true,
            }
        }
    });
    analyzes
}

/// True when `query` (a cursor's analyzed query) is a plain `SELECT`: no
/// data-modifying `WITH`, no row locks.
///
/// # Safety
/// `query` is null or a valid node.
unsafe fn plain_select(query: *mut pg_sys::Node) -> bool {
    // SAFETY: the caller's contract; the cast follows the node's tag.
    unsafe {
        if query.is_null() || (*query).type_ != pg_sys::NodeTag::T_Query {
            return false;
        }
        let q = &*(query as *mut pg_sys::Query);
        q.commandType == pg_sys::CmdType::CMD_SELECT && !q.hasModifyingCTE && q.rowMarks.is_null()
    }
}

/// Reads a utility parse node into what [`utility_class::classify`] needs.
///
/// # Safety
/// `node` is a valid utility parse node.
unsafe fn utility_of(node: *mut pg_sys::Node) -> Utility {
    // SAFETY: the caller's contract; each cast follows the node's tag.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_VariableSetStmt => {
                let v = &*(node as *mut pg_sys::VariableSetStmt);
                Utility::Set {
                    reset_all: v.kind == pg_sys::VariableSetKind::VAR_RESET_ALL,
                    session_authorization: !v.name.is_null()
                        && owned(v.name) == "session_authorization",
                }
            }
            pg_sys::NodeTag::T_VariableShowStmt => Utility::Show,
            pg_sys::NodeTag::T_DiscardStmt => Utility::Discard {
                all: (*(node as *mut pg_sys::DiscardStmt)).target
                    == pg_sys::DiscardMode::DISCARD_ALL,
            },
            pg_sys::NodeTag::T_ListenStmt => Utility::Listen,
            pg_sys::NodeTag::T_UnlistenStmt => Utility::Unlisten,
            pg_sys::NodeTag::T_NotifyStmt => Utility::Notify,
            pg_sys::NodeTag::T_PrepareStmt => Utility::Prepare,
            pg_sys::NodeTag::T_DeallocateStmt => Utility::Deallocate,
            pg_sys::NodeTag::T_ClosePortalStmt => Utility::Close,
            pg_sys::NodeTag::T_ExplainStmt => Utility::Explain {
                analyze: explain_analyzes((*(node as *mut pg_sys::ExplainStmt)).options),
            },
            pg_sys::NodeTag::T_DeclareCursorStmt => Utility::DeclareCursor {
                plain_select: plain_select((*(node as *mut pg_sys::DeclareCursorStmt)).query),
            },
            pg_sys::NodeTag::T_FetchStmt => Utility::Fetch,
            pg_sys::NodeTag::T_CopyStmt => Utility::Copy {
                from: (*(node as *mut pg_sys::CopyStmt)).is_from,
            },
            _ => Utility::Other,
        }
    }
}

/// A utility statement's event, or `None` for transaction control (`BEGIN`,
/// `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`, `PREPARE TRANSACTION`, ...), which is
/// never an event: ending or structuring a transaction is never refused or queued.
fn utility_statement(pstmt: *mut pg_sys::PlannedStmt, kind: Kind) -> Option<Statement> {
    // SAFETY: the server passes a valid PlannedStmt wrapping the utility node.
    let (node, query_id) = unsafe { ((*pstmt).utilityStmt, pg_version::query_id(&*pstmt)) };
    if node.is_null() {
        return None;
    }
    // SAFETY: reading the node tag of a valid node.
    if unsafe { (*node).type_ } == pg_sys::NodeTag::T_TransactionStmt {
        return None;
    }
    // SAFETY: a valid utility parse node.
    let class = utility_class::classify(unsafe { utility_of(node) });
    // SAFETY: the server's command tag of a valid parse node; the name is a static
    // string of the server's.
    let command = unsafe { text(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node))) };
    Some(Statement {
        kind,
        statement: WalkerStatementKind::UTILITY,
        read_only: class.read_only,
        never_writes: class.never_writes,
        session_reset: class.session_reset,
        query_id,
        command,
    })
}

/// Statement start of a utility statement (called by `hooks.c` before the server's
/// `ProcessUtility`).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn walker_rs_utility_start(
    pstmt: *mut pg_sys::PlannedStmt,
    out: *mut HookVerdict,
) -> c_int {
    match utility_statement(pstmt, Kind::STATEMENT_START) {
        Some(s) => answer(dispatch(s, true), out),
        None => HOOK_PROCEED,
    }
}

/// Statement end of a utility statement (called by `hooks.c` after the server's
/// `ProcessUtility` returned). Some utility statements (COMMIT inside a procedure,
/// VACUUM) end the transaction they started in; the end event then reports what the
/// process knows now.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn walker_rs_utility_end(pstmt: *mut pg_sys::PlannedStmt) {
    if let Some(s) = utility_statement(pstmt, Kind::STATEMENT_END) {
        // SAFETY: reading the server's transaction state on the main thread.
        let healthy = unsafe { pg_sys::IsTransactionState() };
        let _ = dispatch(s, healthy);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    let kind = match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            Kind::PRE_COMMIT
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => Kind::ABORT,
        _ => return,
    };
    let s = Statement::transaction(kind);
    // Catalog lookups are not allowed in an aborting transaction.
    let _ = dispatch(s, kind == Kind::PRE_COMMIT);
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        return;
    }
    let s = Statement::transaction(Kind::SUBXACT_ABORT);
    let _ = dispatch(s, false);
}
