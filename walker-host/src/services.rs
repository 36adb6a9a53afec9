//! The services worker: a server process connected to `walker.database` that carries
//! out what plugins ask of the server and publishes the facts they read.
//!
//! Plugins run on the walker worker's dispatch threads, which must not call PostgreSQL,
//! and the walker worker itself has no database connection (it only reads WAL). This
//! worker does, so it can run transactions: it applies settings with the server's own
//! ALTER SYSTEM, reloads the configuration and checks the value took effect; sends
//! notifications with `pg_notify`; and every second publishes the watched settings (as
//! `pg_settings` shows them) and the checkpointer's counters. If it cannot connect (the
//! database does not exist) it stops with the server's error in the log, the walker
//! keeps walking, and plugins' requests fail with a message naming `walker.database`.

use crate::{gucs, logging, pg_version, shmem, slot};
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgTryBuilder};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;
use walker_abi::WalkerServiceKind;
use walker_core::host_api::now_micros;
use walker_core::services::{self, PublishClock, Request, Services};

/// How long the worker sleeps between looks at the clock when nothing wakes it (a
/// queued request sets its latch).
const NAP: Duration = Duration::from_secs(1);

/// Registers the services worker (from `_PG_init`), unless `walker.database` is empty.
pub fn register() {
    if gucs::database().is_none() {
        return;
    }
    BackgroundWorkerBuilder::new("walker services")
        .set_type("walker services")
        .set_function("walker_services_main")
        .set_library("walker")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// Entry point of the services worker.
#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn walker_services_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let Some(host) = shmem::host() else { return };
    let Some(db) = gucs::database() else { return };
    // A database that does not exist ends this process with FATAL (logged); the
    // postmaster retries every 10 s, and requests fail with a message meanwhile.
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    let svc = &host.services;
    svc.fail_running(now_micros());
    // SAFETY: reading the process id global on the main thread.
    svc.worker_pid
        .store(unsafe { pg_sys::MyProcPid }, Ordering::Release);
    // SAFETY: registering a callback on the main thread; it runs at this process's exit
    // (FATAL included), so no other process signals a reused process id.
    unsafe { pg_sys::before_shmem_exit(Some(forget_pid), pg_sys::Datum::from(0usize)) };
    pgrx::log!("walker: services worker started in database \"{db}\"");
    let mut clock = PublishClock::default();
    let mut publish_error: Option<String> = None;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way to reload settings in a background worker.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            clock.invalidate();
        }
        if BackgroundWorker::sigterm_received() {
            break;
        }
        while let Some(req) = svc.take_next(now_micros()) {
            let (ok, message) = execute(&req);
            if !ok {
                pgrx::warning!("walker: service request {} failed: {message}", req.id);
            }
            svc.finish(req.id, ok, &message, now_micros());
            clock.invalidate();
        }
        // SAFETY: reads the insert position under the server's own lock; main thread.
        let lsn = unsafe { pg_sys::GetXLogInsertRecPtr() };
        if clock.due(now_micros(), lsn) {
            match in_transaction(|| publish(svc)) {
                Err(e) if publish_error.as_ref() != Some(&e) => {
                    pgrx::warning!("walker: could not publish server facts: {e}");
                    publish_error = Some(e);
                }
                Err(_) => {}
                Ok(()) => publish_error = None,
            }
            clock.published(now_micros(), lsn);
        }
        logging::drain();
        if !BackgroundWorker::wait_latch(Some(NAP)) {
            break;
        }
    }
    svc.worker_pid.store(0, Ordering::Release);
}

/// Clears the services worker's process id at exit (`before_shmem_exit`).
#[pgrx::pg_guard]
extern "C-unwind" fn forget_pid(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if let Some(host) = shmem::host() {
        host.services.worker_pid.store(0, Ordering::Release);
    }
}

/// The `search_path` every transaction of this worker runs with: nothing a database
/// owner or a schema's creator controls comes before the catalog.
const PINNED_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";
/// How long one transaction of this worker may run (a plugin's SQL included).
const STATEMENT_TIMEOUT_MS: i32 = 30_000;
/// How long it may wait for a lock.
const LOCK_TIMEOUT: &CStr = c"5s";

// `utils/timeout.h`, which pgrx does not bind. `TimeoutId` is a C enum: STATEMENT_TIMEOUT
// is its fourth member (3) in PostgreSQL 15, 16 and 17.
const STATEMENT_TIMEOUT_ID: std::ffi::c_int = 3;
extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
}

/// Pins this worker's session settings for the transaction about to run: `search_path`
/// (whatever `ALTER DATABASE ... SET`, `ALTER ROLE ... SET` or an earlier plugin
/// statement left), `statement_timeout` and `lock_timeout`. Session-level, with the
/// highest source, so it replaces any value set before; it is redone at the start of
/// every transaction.
fn pin_session() {
    let statement = CString::new(format!("{STATEMENT_TIMEOUT_MS}ms")).unwrap_or_default();
    // SAFETY: setting GUCs of this process on its main thread, inside a transaction;
    // the strings outlive the calls (the server copies them). A background worker has
    // no client loop arming statement_timeout, so the timer is armed here (the
    // handler is registered by InitPostgres) and disarmed in `in_transaction`.
    unsafe {
        for (name, value) in [
            (c"search_path", PINNED_SEARCH_PATH),
            (c"statement_timeout", statement.as_c_str()),
            (c"lock_timeout", LOCK_TIMEOUT),
        ] {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
            );
        }
        enable_timeout_after(STATEMENT_TIMEOUT_ID, STATEMENT_TIMEOUT_MS);
    }
}

/// Refuses to work in a database whose owner is not a superuser: its owner could steer
/// what this worker runs as superuser (settings of the database, objects in it). The
/// message names the cause and the fix.
fn check_database() -> Result<(), String> {
    let row = one_row(
            "SELECT d.datname::pg_catalog.text, r.rolname::pg_catalog.text, r.rolsuper \
             FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) d.datdba \
             WHERE d.oid OPERATOR(pg_catalog.=) $1",
            // SAFETY: reading the connected database's id on the main thread.
            &[unsafe { pg_sys::MyDatabaseId }.into()],
    )?;
    match row {
        Some((Some(_), Some(_), Some(true))) => Ok(()),
        Some((Some(db), owner, _)) => Err(format!(
            "the services worker refuses database \"{db}\" (walker.database): its owner \"{}\" is not a superuser, and the owner of a database can steer SQL that this worker runs as superuser there; make a superuser own it (ALTER DATABASE {db} OWNER TO postgres) or set walker.database to a database a superuser owns, then restart the server",
            owner.unwrap_or_default()
        )),
        _ => Err("the services worker cannot read its database's owner from pg_database".into()),
    }
}

/// Refuses to run a plugin's SQL unless schema `walker` is the schema of extension
/// walker, owned by a superuser, and nobody but superusers may create in it: the
/// plugins' SQL names `walker.<function>`, which must be walker's own.
fn check_walker_schema() -> Result<(), String> {
    let row = one_row(
            "SELECT (SELECT e.extname::pg_catalog.text FROM pg_catalog.pg_extension e \
                     WHERE e.extnamespace OPERATOR(pg_catalog.=) n.oid \
                       AND e.extname OPERATOR(pg_catalog.=) 'walker'), \
                    r.rolname::pg_catalog.text, \
                    r.rolsuper AND NOT EXISTS (\
                        SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a \
                        LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee \
                        WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' \
                          AND NOT coalesce(g.rolsuper, false)) \
             FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner \
             WHERE n.nspname OPERATOR(pg_catalog.=) 'walker'",
            &[],
    )?;
    let fix = "drop that schema and run CREATE EXTENSION walker as a superuser";
    match row {
        Some((Some(_), _, Some(true))) => Ok(()),
        Some((None, Some(owner), _)) => Err(format!(
            "the services worker refuses to run a plugin's SQL: schema \"walker\" (owner \"{owner}\") was not created by CREATE EXTENSION walker, so the functions the SQL names are not walker's; {fix}"
        )),
        Some((Some(_), Some(owner), _)) => Err(format!(
            "the services worker refuses to run a plugin's SQL: schema \"walker\" is owned by \"{owner}\" or lets a role that is not a superuser create in it, who could replace the functions the SQL names; make a superuser own it and REVOKE CREATE ON SCHEMA walker from every other role"
        )),
        _ => Err(
            "the services worker cannot run a plugin's SQL: extension walker is not created in this database; run CREATE EXTENSION walker here as a superuser"
                .into(),
        ),
    }
}

/// The first row of `sql` (three columns: text, text, bool), if any.
#[allow(clippy::type_complexity)]
fn one_row(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<(Option<String>, Option<String>, Option<bool>)>, String> {
    Spi::connect(|c| {
        let rows = c.select(sql, Some(1), args)?;
        if rows.is_empty() {
            return Ok(None);
        }
        rows.first().get_three::<String, String, bool>().map(Some)
    })
    .map_err(|e: pgrx::spi::Error| e.to_string())
}

/// Runs `f` in a transaction of its own; an ERROR inside aborts it and comes back as
/// its message. Every transaction first pins the session ([`pin_session`]) and checks
/// the database ([`check_database`]).
fn in_transaction<R>(f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    // SAFETY: the worker's main thread, connected, outside any transaction; queries
    // need an active snapshot.
    unsafe {
        pg_sys::StartTransactionCommand();
        pin_session();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let r = PgTryBuilder::new(AssertUnwindSafe(|| {
        check_database()?;
        f()
    }))
    .catch_others(|e| Err(slot::caught_message(&e)))
    .execute();
    // SAFETY: ends the transaction started above, committing only on success (an
    // abort releases the snapshot too); the statement timer is disarmed first.
    unsafe {
        disable_timeout(STATEMENT_TIMEOUT_ID, false);
        if r.is_ok() {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
    }
    r
}

/// One setting as `pg_settings` shows it.
struct Shown {
    setting: String,
    unit: String,
    source: String,
    sourcefile: String,
    sourceline: Option<i32>,
    reset_val: String,
    context: String,
}

fn show(name: &str) -> Result<Option<Shown>, String> {
    Ok(show_all(&[name.to_owned()])?.remove(name))
}

/// The settings `names` (lower-case) as `pg_settings` shows them, by name, read with one
/// query (the view builds every setting's row each time it is read).
fn show_all(names: &[String]) -> Result<HashMap<String, Shown>, String> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT name, setting, coalesce(unit, ''), source, coalesce(sourcefile, ''), sourceline, \
             coalesce(reset_val, ''), context FROM pg_catalog.pg_settings \
             WHERE name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])",
            None,
            &[names.to_vec().into()],
        )?;
        let mut out = HashMap::with_capacity(names.len());
        for row in rows {
            let name = row.get::<String>(1)?.unwrap_or_default();
            out.insert(
                name,
                Shown {
                    setting: row.get::<String>(2)?.unwrap_or_default(),
                    unit: row.get::<String>(3)?.unwrap_or_default(),
                    source: row.get::<String>(4)?.unwrap_or_default(),
                    sourcefile: row.get::<String>(5)?.unwrap_or_default(),
                    sourceline: row.get::<i32>(6)?,
                    reset_val: row.get::<String>(7)?.unwrap_or_default(),
                    context: row.get::<String>(8)?.unwrap_or_default(),
                },
            );
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(|e| e.to_string())
}

/// Publishes every watched setting and the checkpointer's counters.
fn publish(svc: &Services) -> Result<(), String> {
    let names = services::watched();
    let mut shown = show_all(&names)?;
    for (i, name) in names.iter().enumerate() {
        match shown.remove(name) {
            Some(s) => svc.publish_setting(
                i,
                Some([&s.setting, &s.unit, &s.source, &s.sourcefile, &s.reset_val]),
            ),
            None => svc.publish_setting(i, None),
        }
    }
    let counts = Spi::connect(|c| {
        let row = c
            .select(pg_version::CHECKPOINTER_COUNTS, Some(1), &[])?
            .first()
            .get_two::<i64, i64>()?;
        Ok::<_, pgrx::spi::Error>(row)
    })
    .map_err(|e| e.to_string())?;
    if let (Some(t), Some(r)) = counts {
        svc.publish_checkpointer(t.max(0) as u64, r.max(0) as u64, now_micros());
    }
    Ok(())
}

/// Carries out one request: (succeeded, message).
fn execute(req: &Request) -> (bool, String) {
    let r = match req.kind {
        WalkerServiceKind::SET_SERVER_SETTING => set_server_setting(&req.name, &req.value),
        WalkerServiceKind::NOTIFY => in_transaction(|| {
            Spi::run_with_args(
                "SELECT pg_catalog.pg_notify($1, $2)",
                &[req.name.as_str().into(), req.value.as_str().into()],
            )
            .map_err(|e| e.to_string())?;
            Ok(format!("notified channel \"{}\"", req.name))
        }),
        WalkerServiceKind::SQL => in_transaction(|| {
            // Runs with the services worker's privileges (the bootstrap superuser):
            // only plugins, which the operator chose to load, queue these, and only
            // against walker's own schema.
            check_walker_schema()?;
            Spi::connect_mut(|c| {
                let rows = c.update(&req.value, Some(1), &[])?;
                let first = if rows.is_empty() {
                    None
                } else {
                    rows.first().get::<String>(1).ok().flatten()
                };
                Ok::<_, pgrx::spi::Error>(first.unwrap_or_default())
            })
            .map_err(|e| e.to_string())
        }),
        other => Err(format!("unknown service kind {}", other.0)),
    };
    match r {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    }
}

/// Sources that `postgresql.auto.conf` overrides (lower priority than a file).
fn file_overrides(source: &str) -> bool {
    matches!(
        source,
        "default" | "environment variable" | "configuration file"
    )
}

/// ALTER SYSTEM SET `name` = `value`, reload, and check the server now takes the value
/// from `postgresql.auto.conf`.
fn set_server_setting(name: &str, value: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    // Also checked when the request is queued; checked again where it is carried out.
    services::check_settable(&name).map_err(|e| e.to_string())?;
    in_transaction(|| {
        let Some(before) = show(&name)? else {
            return Err(format!("the server has no setting \"{name}\""));
        };
        if matches!(before.context.as_str(), "internal" | "postmaster") {
            return Err(format!(
                "{name} can only change at a server restart (context {}); walker applies only settings a reload changes",
                before.context
            ));
        }
        if let Some(allow) = show("allow_alter_system")? {
            if allow.setting == "off" {
                return Err(format!(
                    "ALTER SYSTEM is disabled on this server (allow_alter_system = off, from {}), so {name} cannot be changed; set it by hand or turn allow_alter_system on",
                    where_from(&allow)
                ));
            }
        }
        if !file_overrides(&before.source) {
            return Err(format!(
                "{name} is set by a source that ALTER SYSTEM cannot override ({}); remove it there to let walker manage it",
                where_from(&before)
            ));
        }
        alter_system(&name, value);
        Ok(())
    })?;
    // SAFETY: signalling the postmaster to reload, as pg_reload_conf() does, then
    // reloading this process's own settings; main thread.
    unsafe {
        if libc::kill(pg_sys::PostmasterPid, libc::SIGHUP) != 0 {
            return Err("could not signal the postmaster to reload its configuration".into());
        }
        pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
    }
    let after = in_transaction(|| show(&name))?
        .ok_or_else(|| format!("the server has no setting \"{name}\" after the reload"))?;
    let from_auto =
        after.source == "configuration file" && after.sourcefile.ends_with("postgresql.auto.conf");
    let value_differs = value.chars().all(|c| c.is_ascii_digit()) && after.setting != value;
    if !from_auto || value_differs {
        return Err(format!(
            "ALTER SYSTEM wrote {name} = {value}, but after the reload the server shows {} {} from {}; something of higher priority overrides postgresql.auto.conf",
            after.setting,
            after.unit,
            where_from(&after)
        ));
    }
    Ok(format!(
        "{name} = {}{} (from {})",
        after.setting,
        after.unit,
        where_from(&after)
    ))
}

fn where_from(s: &Shown) -> String {
    match (s.sourcefile.is_empty(), s.sourceline) {
        (false, Some(l)) => format!("{} {}:{l}", s.source, s.sourcefile),
        (false, None) => format!("{} {}", s.source, s.sourcefile),
        _ => s.source.clone(),
    }
}

/// Runs ALTER SYSTEM SET `name` = '`value`' through the server's own function, with the
/// statement built as a parse tree (no SQL text is assembled).
fn alter_system(name: &str, value: &str) {
    let name_c = CString::new(name).unwrap_or_default();
    let value_c = CString::new(value).unwrap_or_default();
    // SAFETY: builds nodes in the current (transaction) memory context exactly as the
    // grammar would for `ALTER SYSTEM SET name = 'value'`, and hands them to
    // AlterSystemSetConfigFile on the main thread of a connected superuser worker.
    unsafe {
        let constant =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::A_Const>()) as *mut pg_sys::A_Const;
        (*constant).type_ = pg_sys::NodeTag::T_A_Const;
        (*constant).val.sval.type_ = pg_sys::NodeTag::T_String;
        (*constant).val.sval.sval = pg_sys::pstrdup(value_c.as_ptr());
        (*constant).isnull = false;
        (*constant).location = -1;
        let set = pg_sys::palloc0(std::mem::size_of::<pg_sys::VariableSetStmt>())
            as *mut pg_sys::VariableSetStmt;
        (*set).type_ = pg_sys::NodeTag::T_VariableSetStmt;
        (*set).kind = pg_sys::VariableSetKind::VAR_SET_VALUE;
        (*set).name = pg_sys::pstrdup(name_c.as_ptr());
        (*set).args = pg_sys::lappend(std::ptr::null_mut(), constant as *mut std::ffi::c_void);
        (*set).is_local = false;
        let stmt = pg_sys::palloc0(std::mem::size_of::<pg_sys::AlterSystemStmt>())
            as *mut pg_sys::AlterSystemStmt;
        (*stmt).type_ = pg_sys::NodeTag::T_AlterSystemStmt;
        (*stmt).setstmt = set;
        pg_sys::AlterSystemSetConfigFile(stmt);
    }
}
