//! The SQL surface. Each function is a thin shell: it checks that walker is preloaded,
//! gathers plain Rust values from walker-core and shared memory, and raises
//! [`WalkerError`]s with their SQLSTATE and hint.

use crate::errors::WalkerError;
use crate::{logging, shmem, wal};
use pgrx::prelude::*;
use std::sync::atomic::Ordering;
use walker_abi::metrics::MetricsWriter;
use walker_core::negotiate::{sql_type, Access};
use walker_core::persistence::keeps_state;
use walker_core::registry;
use walker_core::rows::{format_lsn, format_timestamptz};
use walker_core::shared::PluginState;

fn host() -> &'static walker_core::shared::HostShared {
    let h = shmem::host().unwrap_or_else(|| WalkerError::NotPreloaded.raise());
    crate::locks_edge::ensure_exit_callback();
    crate::locks_edge::refresh();
    h
}

fn lsn_text(l: u64) -> Option<String> {
    (l != 0).then(|| format_lsn(l))
}

/// One row: the worker's state and position.
#[pg_extern(name = "_status", volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn status() -> TableIterator<
    'static,
    (
        name!(state, String),
        name!(pid, Option<i32>),
        name!(started_at, Option<String>),
        name!(start_lsn, Option<String>),
        name!(read_lsn, Option<String>),
        name!(processed_lsn, Option<String>),
        name!(flush_lsn, Option<String>),
        name!(lag_bytes, Option<i64>),
        name!(records, i64),
        name!(bytes, i64),
        name!(records_per_sec, f64),
        name!(starts, i64),
        name!(last_error, Option<String>),
        name!(shmem_bytes, i64),
        name!(slot_lsn, Option<String>),
        name!(retained_bytes, Option<i64>),
        name!(gaps, i64),
        name!(last_gap, Option<String>),
        name!(crash_restarts, i64),
        name!(services_pid, Option<i32>),
        name!(service_requests, i64),
        name!(service_failures, i64),
        name!(services_last_error, Option<String>),
        name!(max_retained_bytes, Option<i64>),
        name!(invalid_wal_lsn, Option<String>),
        name!(invalid_wal_error, Option<String>),
        name!(invalid_wal_reports, i64),
    ),
> {
    let h = host();
    let pid = h.worker_pid.load(Ordering::Relaxed);
    let started = h.started_at.load(Ordering::Relaxed);
    let processed = h.processed_lsn.load(Ordering::Acquire);
    let flush = wal::durable_lsn();
    let slot_lsn = h.slot_lsn.load(Ordering::Relaxed);
    let lag = (processed != 0)
        .then(|| i64::try_from(flush.saturating_sub(processed)).unwrap_or(i64::MAX));
    let row = (
        h.worker_state().as_str().to_string(),
        (pid != 0).then_some(pid),
        (started != 0).then(|| format_timestamptz(started)),
        lsn_text(h.start_lsn.load(Ordering::Acquire)),
        lsn_text(h.read_lsn.load(Ordering::Acquire)),
        lsn_text(processed),
        lsn_text(flush),
        lag,
        i64::try_from(h.records.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        i64::try_from(h.bytes.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        h.rate(),
        i64::try_from(h.starts.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        h.last_error.get(),
        i64::try_from(shmem::total_bytes()).unwrap_or(i64::MAX),
        lsn_text(slot_lsn),
        (slot_lsn != 0).then(|| i64::try_from(flush.saturating_sub(slot_lsn)).unwrap_or(i64::MAX)),
        i64::try_from(h.gaps.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        h.last_gap.get(),
        i64::try_from(h.crash_restarts.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        Some(h.services.worker_pid.load(Ordering::Relaxed)).filter(|&p| p != 0),
        i64::try_from(
            h.services
                .succeeded
                .load(Ordering::Relaxed)
                .saturating_add(h.services.failed.load(Ordering::Relaxed)),
        )
        .unwrap_or(i64::MAX),
        i64::try_from(h.services.failed.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        h.services.last_error.get(),
        crate::gucs::max_retained_bytes().map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        lsn_text(h.bad_wal_lsn.load(Ordering::Acquire)),
        (h.bad_wal_lsn.load(Ordering::Acquire) != 0)
            .then(|| h.bad_wal_message.get())
            .flatten(),
        i64::try_from(h.bad_wal_total.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
    );
    TableIterator::new(vec![row])
}

/// One row per plugin listed in `walker.plugins`.
#[pg_extern(name = "_plugins", volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn plugins() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(version, Option<String>),
        name!(abi_version, Option<String>),
        name!(state, String),
        name!(records, i64),
        name!(errors, i64),
        name!(processed_lsn, Option<String>),
        name!(last_error, Option<String>),
        name!(library, Option<String>),
        name!(views, Vec<String>),
        name!(snapshots, bool),
        name!(snapshot_lsn, Option<String>),
        name!(snapshot_at, Option<String>),
        name!(snapshots_written, i64),
        name!(started_empty, bool),
        name!(start, Option<String>),
    ),
> {
    let _ = host();
    let rows: Vec<_> = registry::all()
        .into_iter()
        .map(|s| {
            let shared = s.shared();
            let load =
                |f: fn(&walker_core::shared::PluginShared) -> u64| shared.map(f).unwrap_or(0);
            (
                s.name.clone(),
                (!s.version.is_empty()).then(|| s.version.clone()),
                s.abi.map(|(a, b)| format!("{a}.{b}")),
                s.state().as_str().to_string(),
                i64::try_from(load(|x| x.records.load(Ordering::Relaxed))).unwrap_or(i64::MAX),
                i64::try_from(load(|x| x.errors.load(Ordering::Relaxed))).unwrap_or(i64::MAX),
                lsn_text(load(|x| x.processed_lsn.load(Ordering::Acquire))),
                s.last_error(),
                s.path.as_ref().map(|p| p.display().to_string()),
                s.views
                    .iter()
                    .map(|v| format!("{}_{}", s.name, v.name))
                    .collect(),
                keeps_state(s),
                lsn_text(load(|x| x.snapshot_lsn.load(Ordering::Acquire))),
                shared
                    .map(|x| x.snapshot_at.load(Ordering::Acquire))
                    .filter(|&t| t != 0)
                    .map(format_timestamptz),
                i64::try_from(load(|x| x.snapshots.load(Ordering::Relaxed))).unwrap_or(i64::MAX),
                shared.is_some_and(|x| x.started_empty.load(Ordering::Acquire) != 0),
                shared.and_then(|x| x.start_note.get()),
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Columns of every view the loaded plugins declare (used to create the views).
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn plugin_view_columns() -> TableIterator<
    'static,
    (
        name!(plugin, String),
        name!(view, String),
        name!(description, String),
        name!(ordinal, i32),
        name!(column_name, String),
        name!(column_type, String),
    ),
> {
    // Without preloading there are no plugins: an empty list, so CREATE EXTENSION works.
    let mut rows = Vec::new();
    if shmem::host().is_some() {
        for s in registry::all().into_iter().filter(|s| s.usable()) {
            for v in &s.views {
                for (i, (c, t)) in v.columns.iter().enumerate() {
                    let ty = sql_type(*t).unwrap_or("text");
                    rows.push((
                        s.name.clone(),
                        v.name.clone(),
                        v.description.clone(),
                        i as i32 + 1,
                        c.clone(),
                        ty.to_string(),
                    ));
                }
            }
        }
    }
    TableIterator::new(rows)
}

/// The rows of a plugin's view, each as the text form of its columns.
#[pg_extern(volatile, parallel_unsafe)]
fn plugin_view_rows(plugin: &str, view: &str) -> SetOfIterator<'static, Vec<Option<String>>> {
    let _ = host();
    let slot = registry::find(plugin)
        .unwrap_or_else(|| WalkerError::UnknownPlugin(plugin.to_string()).raise());
    let Some(desc) = slot.desc.as_ref().filter(|_| slot.usable()) else {
        let reason = slot.last_error().unwrap_or_else(|| "not loaded".into());
        WalkerError::PluginUnusable {
            name: plugin.to_string(),
            reason,
        }
        .raise()
    };
    let Some(index) = slot.views.iter().position(|v| v.name == view) else {
        let available = slot.views.iter().map(|v| v.name.clone()).collect();
        WalkerError::UnknownView {
            plugin: plugin.to_string(),
            view: view.to_string(),
            available,
        }
        .raise()
    };
    if desc.view_rows.is_none() {
        return SetOfIterator::new(Vec::new());
    }
    // SAFETY: this backend's main thread is where its settings change.
    unsafe { registry::refresh_settings() };
    walker_core::host_api::set_rmgr_names(wal::rmgr_names());
    crate::locks_edge::wait_for_region(slot);
    let rows = walker_core::rows::collect_view(slot, index);
    logging::drain();
    match rows {
        Ok(rows) => SetOfIterator::new(rows),
        Err(reason) => WalkerError::ViewFailed {
            plugin: plugin.to_string(),
            view: view.to_string(),
            reason,
        }
        .raise(),
    }
}

/// Every SQL function the loaded plugins declare (used to create the wrappers).
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn plugin_functions() -> TableIterator<
    'static,
    (
        name!(plugin, String),
        name!(function, String),
        name!(description, String),
        name!(result_type, String),
        name!(access, String),
    ),
> {
    let mut rows = Vec::new();
    if shmem::host().is_some() {
        for s in registry::all().into_iter().filter(|s| s.usable()) {
            for f in &s.functions {
                rows.push((
                    s.name.clone(),
                    f.name.clone(),
                    f.description.clone(),
                    sql_type(f.result).unwrap_or("text").to_string(),
                    match f.access {
                        Access::Monitor => "walker_monitor".to_string(),
                        Access::Admin => "walker_admin".to_string(),
                        Access::Role => s.role.clone().unwrap_or_else(|| "walker_admin".into()),
                    },
                ));
            }
        }
    }
    TableIterator::new(rows)
}

/// Each loaded plugin's own SQL and role (ABI 1.3), for `refresh_views`.
#[pg_extern(volatile, parallel_unsafe)]
fn plugin_sql() -> TableIterator<
    'static,
    (
        name!(plugin, String),
        name!(role, Option<String>),
        name!(sql, Option<String>),
    ),
> {
    let mut rows = Vec::new();
    if shmem::host().is_some() {
        for s in registry::all().into_iter().filter(|s| s.usable()) {
            if s.sql.is_some() || s.role.is_some() {
                rows.push((s.name.clone(), s.role.clone(), s.sql.clone()));
            }
        }
    }
    TableIterator::new(rows)
}

/// True when the current user has the privileges of role `name` (superusers do).
pub(crate) fn has_role(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: catalog lookups on a backend's main thread, inside a transaction.
    unsafe {
        let role = pg_sys::get_role_oid(c.as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), role)
    }
}

/// The role a function with `access` of plugin `slot` needs.
fn access_role(slot: &walker_core::registry::PluginSlot, access: Access) -> String {
    match access {
        Access::Monitor => "walker_monitor".to_string(),
        Access::Admin => "walker_admin".to_string(),
        Access::Role => slot.role.clone().unwrap_or_else(|| "walker_admin".into()),
    }
}

/// True when the current user may call a function with `access` of plugin `slot`:
/// monitor functions need walker_monitor (walker_admin is a member), admin functions
/// walker_admin, and a plugin's role functions that role or walker_admin. A plugin's
/// role (which may call plugin_call) reaches only its own plugin's role functions.
fn may_call(slot: &walker_core::registry::PluginSlot, access: Access) -> bool {
    match access {
        Access::Monitor => has_role("walker_monitor"),
        Access::Admin => has_role("walker_admin"),
        Access::Role => has_role("walker_admin") || slot.role.as_deref().is_some_and(has_role),
    }
}

/// Waits on this backend's latch for up to `ms`; false when an interrupt is pending.
pub(crate) fn backend_wait(ms: u32) -> bool {
    // SAFETY: waiting on the backend's own latch on its main thread, as any extension
    // does; the interrupt flags are plain globals, read without processing them.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
        !(pg_sys::InterruptPending != 0
            && (pg_sys::QueryCancelPending != 0 || pg_sys::ProcDiePending != 0))
    }
}

/// Calls function `index` of a plugin in this backend, its waits on the backend's latch.
fn call_here(
    slot: &'static walker_core::registry::PluginSlot,
    index: usize,
    args: &str,
) -> Result<String, walker_core::functions::CallError> {
    crate::locks_edge::wait_for_region(slot);
    walker_core::services::with_waiter(backend_wait, || {
        walker_core::functions::call(slot, index, args)
    })
}

/// Calls a plugin's SQL function; the `walker.<plugin>_<function>(args)` wrappers call this.
#[pg_extern(volatile, parallel_unsafe)]
fn plugin_call(plugin: &str, function: &str, args: &str) -> String {
    let _ = host();
    let slot = registry::find(plugin)
        .unwrap_or_else(|| WalkerError::UnknownPlugin(plugin.to_string()).raise());
    if !slot.usable() {
        let reason = slot.last_error().unwrap_or_else(|| "not loaded".into());
        WalkerError::PluginUnusable {
            name: plugin.to_string(),
            reason,
        }
        .raise()
    }
    let index = walker_core::functions::find(slot, function)
        .unwrap_or_else(|e| WalkerError::Call(e).raise());
    let access = slot.functions[index].access;
    if !may_call(slot, access) {
        WalkerError::NotAllowed {
            function: format!("{plugin}_{function}"),
            role: access_role(slot, access),
        }
        .raise()
    }
    // SAFETY: this backend's main thread is where its settings change.
    unsafe { registry::refresh_settings() };
    let r = call_here(slot, index, args);
    logging::drain();
    pg_sys::check_for_interrupts!();
    r.unwrap_or_else(|e| WalkerError::Call(e).raise())
}

/// One family through the SDK's one writer (label values escaped as the format
/// requires, the same writer every plugin uses).
fn metric(
    out: &mut MetricsWriter,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, f64)],
) {
    out.metric(name, kind, help, samples);
}

/// The walker's metrics in the Prometheus text exposition format, followed by those of
/// every plugin that declares a text function named `metrics`.
#[pg_extern(volatile, parallel_unsafe)]
fn prometheus() -> String {
    let h = host();
    let mut out = MetricsWriter::new();
    let one = |v: u64| vec![(vec![], v as f64)];
    let processed = h.processed_lsn.load(Ordering::Acquire);
    let flush = wal::durable_lsn();
    metric(
        &mut out,
        "walker_records_total",
        "counter",
        "WAL records the walker read.",
        &one(h.records.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_bytes_total",
        "counter",
        "Bytes of WAL records the walker read.",
        &one(h.bytes.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_processed_lsn",
        "gauge",
        "End of the last record every plugin processed, as a byte position.",
        &one(processed),
    );
    metric(
        &mut out,
        "walker_lag_bytes",
        "gauge",
        "WAL flushed but not yet processed by every plugin.",
        &one(flush.saturating_sub(processed)),
    );
    metric(
        &mut out,
        "walker_retained_bytes",
        "gauge",
        "WAL walker's replication slot holds back.",
        &one(match h.slot_lsn.load(Ordering::Relaxed) {
            0 => 0,
            slot => flush.saturating_sub(slot),
        }),
    );
    metric(
        &mut out,
        "walker_max_retained_bytes",
        "gauge",
        "walker.max_retained_wal in bytes: past it the slot releases WAL walker has not read and records a gap (-1: no bound). Alert when walker_retained_bytes approaches it.",
        &[(
            vec![],
            crate::gucs::max_retained_bytes().map_or(-1.0, |b| b as f64),
        )],
    );
    metric(
        &mut out,
        "walker_invalid_wal_total",
        "counter",
        "Reports of invalid WAL the reader kept failing on below the end of the WAL (one per retry interval).",
        &one(h.bad_wal_total.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_invalid_wal_lsn",
        "gauge",
        "LSN of the invalid WAL record the reader is stuck on, as a byte position (0: none).",
        &one(h.bad_wal_lsn.load(Ordering::Acquire)),
    );
    metric(
        &mut out,
        "walker_worker_starts_total",
        "counter",
        "Times the walker worker started.",
        &one(h.starts.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_gaps_total",
        "counter",
        "WAL ranges the walker could not read.",
        &one(h.gaps.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_service_requests_total",
        "counter",
        "Requests the services worker carried out, by outcome.",
        &[
            (
                vec![("outcome", "succeeded")],
                h.services.succeeded.load(Ordering::Relaxed) as f64,
            ),
            (
                vec![("outcome", "failed")],
                h.services.failed.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    let plugins = registry::all();
    let per = |f: fn(&walker_core::shared::PluginShared) -> u64| -> Vec<(Vec<(&str, &str)>, f64)> {
        plugins
            .iter()
            .map(|s| {
                (
                    vec![("plugin", s.name.as_str())],
                    s.shared().map(f).unwrap_or(0) as f64,
                )
            })
            .collect()
    };
    metric(
        &mut out,
        "walker_plugin_records_total",
        "counter",
        "Records delivered to each plugin.",
        &per(|x| x.records.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_plugin_errors_total",
        "counter",
        "Errors each plugin returned.",
        &per(|x| x.errors.load(Ordering::Relaxed)),
    );
    metric(
        &mut out,
        "walker_plugin_up",
        "gauge",
        "1 when the plugin is usable, else 0.",
        &plugins
            .iter()
            .map(|s| {
                (
                    vec![("plugin", s.name.as_str())],
                    if s.usable() { 1.0 } else { 0.0 },
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        &mut out,
        "walker_plugin_running",
        "gauge",
        "1 when the plugin is receiving records (state running in walker.plugins), else 0.",
        &plugins
            .iter()
            .map(|s| {
                (
                    vec![("plugin", s.name.as_str())],
                    if s.state() == PluginState::Running {
                        1.0
                    } else {
                        0.0
                    },
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        &mut out,
        "walker_plugin_state_info",
        "gauge",
        "1 for each plugin's current state in walker.plugins.",
        &plugins
            .iter()
            .map(|s| {
                (
                    vec![("plugin", s.name.as_str()), ("state", s.state().as_str())],
                    1.0,
                )
            })
            .collect::<Vec<_>>(),
    );
    for s in plugins.into_iter().filter(|s| s.usable()) {
        let Some(i) = s
            .functions
            .iter()
            .position(|f| f.name == "metrics" && f.result == walker_abi::WalkerType::TEXT)
        else {
            continue;
        };
        // The function's declared access holds here as in plugin_call: a plugin's
        // metrics that need walker_admin (or its own role) are left out for others.
        if !may_call(s, s.functions[i].access) {
            out.comment(&format!(
                "walker plugin \"{}\" metrics left out: they need role {}",
                s.name,
                access_role(s, s.functions[i].access)
            ));
            continue;
        }
        match call_here(s, i, "{}") {
            Ok(text) => {
                out.append(&text);
            }
            Err(e) => {
                out.comment(&format!("walker plugin \"{}\" metrics failed: {e}", s.name));
            }
        }
    }
    logging::drain();
    out.finish()
}
