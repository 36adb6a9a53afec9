//! # walker
//!
//! The PostgreSQL extension that reads the server's WAL once, in a background worker,
//! and hands every record to plugins loaded from `walker.plugins`. This crate is the
//! thin server edge; the logic lives in `walker-core`, the contract in `walker-abi`.

use pgrx::prelude::*;

mod errors;
mod gucs;
mod hooks;
mod locks_edge;
mod logging;
mod pg_version;
mod removal;
mod services;
mod shmem;
mod slot;
mod sql;
mod startup;
mod wal;
mod worker;

pub use services::walker_services_main;
pub use worker::walker_worker_main;

pgrx::pg_module_magic!();

/// Called when the library is loaded. Under `shared_preload_libraries` (in the
/// postmaster) it loads the plugins, reserves shared memory and registers the worker,
/// except in pg_upgrade's binary-upgrade mode; loaded any other way it only defines
/// the settings, and the SQL functions explain that walker must be preloaded.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    never_capture_backtraces();
    walker_core::host_api::set_server_version(pg_sys::PG_VERSION_NUM);
    gucs::define();
    locks_edge::install();
    removal::install_hook();
    // SAFETY: reading a server global in _PG_init, on the main thread.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    // pg_upgrade starts both clusters in binary-upgrade mode (`postgres -b`) to dump
    // the old one and restore into the new one; a worker connected to
    // walker.database there makes pg_restore's DROP DATABASE fail. walker walks the
    // upgraded cluster's WAL once it is started normally.
    // SAFETY: reading a server global in _PG_init, on the main thread.
    if unsafe { pg_sys::IsBinaryUpgrade } {
        pgrx::log!(
            "walker: binary-upgrade mode (pg_upgrade): no plugins, hooks or workers in this server; walker starts when the cluster is started normally"
        );
        return;
    }
    // The crash ledger is mapped here, in the postmaster, so that it outlives crash
    // restarts (see walker_core::crash); a refusal only costs the crash-loop guard.
    if let Err(e) = walker_core::crash::create() {
        pgrx::warning!(
            "walker: {e}; a plugin that crashes the server will not be left out at the next start"
        );
    }
    startup::load_plugins();
    gucs::reserve_prefix("walker");
    shmem::install_hooks();
    hooks::install();
    worker::register();
    services::register();
}

/// Makes sure no Rust backtrace ever reaches a client or the log through walker's own
/// errors, whatever `RUST_BACKTRACE` says in the server's environment (pgrx's panic
/// hook captures one for every error it reports, which is slow and puts kilobytes
/// into DETAIL).
///
/// The standard library decides once per process whether backtraces are captured and
/// caches the answer in this library's own copy of it; asking once with
/// `RUST_LIB_BACKTRACE=0` fixes the answer to "no" for walker only. The environment
/// is then put back as it was, so other extensions and the server see no change.
/// Server processes forked later inherit the cached answer.
fn never_capture_backtraces() {
    let previous = std::env::var_os("RUST_LIB_BACKTRACE");
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    let _ = std::backtrace::Backtrace::capture();
    match previous {
        Some(v) => std::env::set_var("RUST_LIB_BACKTRACE", v),
        None => std::env::remove_var("RUST_LIB_BACKTRACE"),
    }
}

extension_sql_file!("../sql/roles.sql", name = "roles", bootstrap);

extension_sql_file!("../sql/views.sql", name = "views", finalize);
