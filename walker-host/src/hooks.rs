//! The executor, utility and transaction hooks that turn statements and transaction
//! ends into backend events for plugins (ABI 1.3), and raise a plugin's rejection.
//!
//! Installed in the postmaster (so every server process inherits them) only when a
//! loaded plugin asks for backend events. Each hook calls the previous one, so other
//! extensions' hooks keep working.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr};
use walker_abi::{
    WalkerBackendEvent, WalkerBackendEventKind as Kind, WalkerBackendType, WalkerStatementKind,
};
use walker_core::backend::{self, Outcome, Rejection};
use walker_core::registry::{self, PluginSlot};

/// The server's `ERROR` log level (elog.h).
const ERROR_LEVEL: c_int = 21;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_FINISH: pg_sys::ExecutorFinish_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

thread_local! {
    /// How deep the executor or utility processing is nested right now (0: the
    /// statement the client sent).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Names looked up in this process: the database's, and roles' by OID.
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

#[derive(Default)]
struct Names {
    database: Option<String>,
    roles: Vec<(u32, String)>,
}

/// The plugins that asked for backend events (fixed after `_PG_init`), and are usable.
fn listeners() -> Vec<&'static PluginSlot> {
    static WANTING: std::sync::OnceLock<Vec<&'static PluginSlot>> = std::sync::OnceLock::new();
    WANTING
        .get_or_init(|| {
            registry::all()
                .into_iter()
                .filter(|s| s.wants_backend_events())
                .collect()
        })
        .iter()
        .copied()
        .filter(|s| s.usable())
        .collect()
}

/// Installs the hooks when a loaded plugin wants backend events, and asks the server
/// to compute query ids. In the postmaster, from `_PG_init`.
pub fn install() {
    if listeners().is_empty() {
        return;
    }
    // SAFETY: _PG_init in the postmaster, main thread: saving and replacing the
    // server's hook pointers is the documented way to install hooks.
    unsafe {
        pg_sys::EnableQueryId();
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_EXECUTOR_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// Restores the nesting depth when dropped (also when an error unwinds).
struct Nested(u32);

impl Nested {
    fn enter() -> Nested {
        let d = DEPTH.with(|c| c.get());
        DEPTH.with(|c| c.set(d.saturating_add(1)));
        Nested(d)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.with(|c| c.set(self.0));
    }
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

fn owned(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string from the server.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// The names of the current database and user; looked up only when `lookup` (inside
/// a healthy transaction), else the ones already known (or empty).
fn names(role: u32, lookup: bool) -> (String, String) {
    NAMES.with(|n| {
        let mut n = n.borrow_mut();
        if n.database.is_none() && lookup {
            // SAFETY: catalog lookup on the main thread inside a transaction.
            n.database = Some(owned(unsafe {
                pg_sys::get_database_name(pg_sys::MyDatabaseId)
            }));
        }
        let known = n
            .roles
            .iter()
            .find(|(o, _)| *o == role)
            .map(|(_, s)| s.clone());
        let role_name = match known {
            Some(s) => s,
            None if lookup => {
                // SAFETY: catalog lookup on the main thread inside a transaction; noerr.
                let s = owned(unsafe { pg_sys::GetUserNameFromId(role.into(), true) });
                if n.roles.len() >= 64 {
                    n.roles.clear();
                }
                n.roles.push((role, s.clone()));
                s
            }
            None => String::new(),
        };
        (n.database.clone().unwrap_or_default(), role_name)
    })
}

/// What differs between the events; the rest is read from the process.
struct Statement {
    kind: Kind,
    statement: WalkerStatementKind,
    read_only: bool,
    query_id: u64,
    command: String,
}

impl Statement {
    /// A transaction event (no statement).
    fn transaction(kind: Kind) -> Statement {
        Statement {
            kind,
            statement: WalkerStatementKind::OTHER,
            read_only: false,
            query_id: 0,
            command: String::new(),
        }
    }
}

/// Builds the event and asks the plugins.
fn dispatch(s: Statement, in_healthy_transaction: bool) -> Outcome {
    let slots = listeners();
    if slots.is_empty() {
        return Outcome::Proceed;
    }
    // SAFETY: the process's main thread, where its settings change.
    unsafe { registry::refresh_settings() };
    // SAFETY: process globals read on the main thread.
    let (pid, database, role, top_xid, xid, wal, app) = unsafe {
        (
            pg_sys::MyProcPid,
            pg_sys::MyDatabaseId.to_u32(),
            pg_sys::GetUserId().to_u32(),
            pg_sys::GetTopTransactionIdIfAny().into_inner(),
            pg_sys::GetCurrentTransactionIdIfAny().into_inner(),
            pg_sys::pgWalUsage,
            owned(pg_sys::application_name),
        )
    };
    let (database_name, role_name) = names(role, in_healthy_transaction);
    let event = WalkerBackendEvent {
        struct_size: std::mem::size_of::<WalkerBackendEvent>() as u32,
        kind: s.kind,
        statement: s.statement,
        backend_type: backend_type(),
        nesting_level: DEPTH.with(|c| c.get()),
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
    };
    let (outcome, failures) = walker_core::services::with_waiter(crate::sql::backend_wait, || {
        backend::dispatch(&slots, &event)
    });
    for f in failures {
        pgrx::warning!("walker plugin \"{}\": {}", f.plugin, f.message);
    }
    outcome
}

/// Raises a plugin's rejection as an ERROR with the plugin's SQLSTATE.
///
/// pgrx's error reporting knows only the server's predefined SQLSTATEs, so this calls
/// the server's `errstart`/`errfinish` itself. `errfinish` jumps to the server's
/// error handler: every value with a destructor is dropped before it.
fn raise(r: Rejection) -> ! {
    #[allow(improper_ctypes)]
    unsafe extern "C-unwind" {
        fn errstart(elevel: c_int, domain: *const c_char) -> bool;
        fn errcode(sqlerrcode: c_int) -> c_int;
        fn errmsg_internal(fmt: *const c_char, ...) -> c_int;
        fn errdetail_internal(fmt: *const c_char, ...) -> c_int;
        fn errhint(fmt: *const c_char, ...) -> c_int;
        fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
    }
    let six = |c: u8| ((c.wrapping_sub(b'0')) & 0x3F) as c_int;
    let s = r.sqlstate;
    let code =
        six(s[0]) | (six(s[1]) << 6) | (six(s[2]) << 12) | (six(s[3]) << 18) | (six(s[4]) << 24);
    let pstr = |t: &str| {
        let clean: Vec<u8> = t.bytes().filter(|b| *b != 0).chain([0]).collect();
        // SAFETY: copies a NUL-terminated buffer into the current memory context.
        unsafe { pg_sys::pstrdup(clean.as_ptr() as *const c_char) }
    };
    let message = pstr(&r.message);
    let detail = (!r.detail.is_empty()).then(|| pstr(&r.detail));
    let hint = (!r.hint.is_empty()).then(|| pstr(&r.hint));
    drop(r);
    // SAFETY: the server's ereport(ERROR, ...) sequence on the main thread; the
    // strings are palloc'd and "%s" formats them verbatim. Nothing with a destructor
    // is alive in this frame, and the hook frames this jumps over hold none either.
    unsafe {
        if errstart(ERROR_LEVEL, std::ptr::null()) {
            errcode(code);
            errmsg_internal(c"%s".as_ptr(), message);
            if let Some(d) = detail {
                errdetail_internal(c"%s".as_ptr(), d);
            }
            if let Some(h) = hint {
                errhint(c"%s".as_ptr(), h);
            }
            errfinish(
                c"hooks.rs".as_ptr(),
                line!() as c_int,
                c"walker_backend_hook".as_ptr(),
            );
        }
    }
    unreachable!("ereport(ERROR) returned")
}

/// Acts on the plugins' answer at statement start: raise their error, process a
/// pending cancel, or return.
fn settle(outcome: Outcome) {
    match outcome {
        Outcome::Proceed => {}
        Outcome::Reject(r) => raise(r),
        Outcome::Interrupted => {
            pg_sys::check_for_interrupts!();
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
            p.queryId,
            op == pg_sys::CmdType::CMD_SELECT && !p.hasModifyingCTE && p.rowMarks.is_null(),
        ),
        None => (0, false),
    };
    Statement {
        kind,
        statement,
        read_only,
        query_id,
        command: command.to_string(),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(qd: *mut pg_sys::QueryDesc, eflags: c_int) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int == 0 {
        settle(dispatch(
            executor_statement(qd, Kind::STATEMENT_START),
            true,
        ));
    }
    // SAFETY: calling the previous hook or the standard function with the server's
    // own arguments.
    unsafe {
        match PREV_EXECUTOR_START {
            Some(f) => f(qd, eflags),
            None => pg_sys::standard_ExecutorStart(qd, eflags),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    qd: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    let _nested = Nested::enter();
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_EXECUTOR_RUN {
            Some(f) => f(qd, direction, count, execute_once),
            None => pg_sys::standard_ExecutorRun(qd, direction, count, execute_once),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_finish(qd: *mut pg_sys::QueryDesc) {
    let _nested = Nested::enter();
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_EXECUTOR_FINISH {
            Some(f) => f(qd),
            None => pg_sys::standard_ExecutorFinish(qd),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(qd: *mut pg_sys::QueryDesc) {
    // SAFETY: reading the executor's flags of a valid QueryDesc.
    let explain_only = unsafe { (*qd).estate.as_ref() }
        .is_some_and(|e| e.es_top_eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0);
    if !explain_only {
        let _ = dispatch(executor_statement(qd, Kind::STATEMENT_END), true);
    }
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_EXECUTOR_END {
            Some(f) => f(qd),
            None => pg_sys::standard_ExecutorEnd(qd),
        }
    }
}

/// A utility statement's event, or `None` for transaction control (`BEGIN`,
/// `COMMIT`, ...), which is never refused.
fn utility_statement(pstmt: *mut pg_sys::PlannedStmt, kind: Kind) -> Option<Statement> {
    // SAFETY: the server passes a valid PlannedStmt wrapping the utility node.
    let (node, query_id) = unsafe { ((*pstmt).utilityStmt, (*pstmt).queryId) };
    if node.is_null() {
        return None;
    }
    // SAFETY: reading the node tag of a valid node.
    if unsafe { (*node).type_ } == pg_sys::NodeTag::T_TransactionStmt {
        return None;
    }
    // SAFETY: the server's command tag of a valid parse node; the name is static.
    let command = owned(unsafe { pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node)) });
    Some(Statement {
        kind,
        statement: WalkerStatementKind::UTILITY,
        read_only: false,
        query_id,
        command,
    })
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    if let Some(s) = utility_statement(pstmt, Kind::STATEMENT_START) {
        settle(dispatch(s, true));
    }
    {
        let _nested = Nested::enter();
        // SAFETY: as in executor_start.
        unsafe {
            match PREV_PROCESS_UTILITY {
                Some(f) => f(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                ),
                None => pg_sys::standard_ProcessUtility(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                ),
            }
        }
    }
    // Some utility statements (COMMIT inside a procedure, VACUUM) end the transaction
    // they started in; the end event then reports what the process knows now.
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
        pg_sys::XactEvent::XACT_EVENT_ABORT => {
            DEPTH.with(|c| c.set(0));
            Kind::ABORT
        }
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
