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
/// postmaster) it loads the plugins, reserves shared memory and registers the worker;
/// loaded any other way it only defines the settings, and the SQL functions explain
/// that walker must be preloaded.
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

extension_sql!(
    r#"
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'walker_monitor') THEN
        CREATE ROLE walker_monitor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'walker_admin') THEN
        CREATE ROLE walker_admin NOLOGIN;
    END IF;
END
$roles$;
GRANT walker_monitor TO walker_admin;
"#,
    name = "roles",
    bootstrap
);

extension_sql!(
    r#"
CREATE VIEW @extschema@.status AS
SELECT state, pid, started_at::timestamptz AS started_at, start_lsn::pg_lsn AS start_lsn,
       read_lsn::pg_lsn AS read_lsn, processed_lsn::pg_lsn AS processed_lsn,
       flush_lsn::pg_lsn AS flush_lsn, lag_bytes, records, bytes, records_per_sec,
       starts, last_error, shmem_bytes,
       current_setting('walker.enabled')::bool AS enabled,
       'walker'::text AS slot_name, slot_lsn::pg_lsn AS slot_lsn, retained_bytes, gaps, last_gap,
       crash_restarts, services_pid, service_requests, service_failures, services_last_error,
       max_retained_bytes, invalid_wal_lsn::pg_lsn AS invalid_wal_lsn, invalid_wal_error,
       invalid_wal_reports
FROM @extschema@._status();
COMMENT ON VIEW @extschema@.status IS 'The walker worker: state, WAL positions, lag, throughput, its replication slot and the WAL gaps it could not read.';

CREATE VIEW @extschema@.plugins AS
SELECT name, version, abi_version, state, records, errors, processed_lsn::pg_lsn AS processed_lsn,
       last_error, library, views, snapshots, snapshot_lsn::pg_lsn AS snapshot_lsn,
       snapshot_at::timestamptz AS snapshot_at, snapshots_written, started_empty, start
FROM @extschema@._plugins();
COMMENT ON VIEW @extschema@.plugins IS 'Every plugin listed in walker.plugins: state, counters, last error, snapshots and how its state started.';

-- A plugin function's arguments: a "relation" (a name or regclass text) also gets the
-- "database", "tablespace" and "relfilenode" its WAL records carry.
CREATE FUNCTION @extschema@.with_relation(args jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
    -- No SET search_path: the relation name resolves as the caller sees it; every
    -- catalog object is qualified.
    SELECT CASE WHEN args ? 'relation' THEN
        args || (SELECT pg_catalog.jsonb_build_object(
                     'database', d.oid::int8,
                     'tablespace', (CASE WHEN c.reltablespace = 0 THEN d.dattablespace ELSE c.reltablespace END)::int8,
                     'relfilenode', pg_catalog.pg_relation_filenode(c.oid)::int8)
                 FROM pg_catalog.pg_class c, pg_catalog.pg_database d
                 WHERE c.oid = (args->>'relation')::pg_catalog.regclass
                   AND d.datname = pg_catalog.current_database())
    ELSE args END
$fn$;

-- (Re)creates walker.<plugin>_<view> for every view the loaded plugins declare, and
-- walker.<plugin>_<function>(args jsonb) for every SQL function they declare.
-- Run it after changing walker.plugins and restarting; CREATE EXTENSION runs it once.
CREATE FUNCTION @extschema@.refresh_views() RETURNS SETOF text SECURITY DEFINER
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    v record;
    f record;
    p record;
    o record;
    rel text;
    fname text;
    body text;
BEGIN
    FOR v IN
        SELECT plugin, view, min(description) AS description,
               string_agg(format('r[%s]::%s AS %I', ordinal, column_type, column_name), ', ' ORDER BY ordinal) AS cols,
               min(ordinal) FILTER (WHERE column_name = 'database' AND column_type = 'int8') AS db_col,
               min(ordinal) FILTER (WHERE column_name = 'tablespace' AND column_type = 'int8') AS ts_col,
               min(ordinal) FILTER (WHERE column_name = 'relfilenode' AND column_type = 'int8') AS rfn_col
        FROM @extschema@.plugin_view_columns()
        GROUP BY plugin, view ORDER BY plugin, view
    LOOP
        -- A view naming a relation by (database, tablespace, relfilenode) also gets
        -- `relation`, resolved in the database reading it (NULL for other databases).
        IF v.db_col IS NOT NULL AND v.ts_col IS NOT NULL AND v.rfn_col IS NOT NULL THEN
            v.cols := v.cols || format(
                ', CASE WHEN r[%1$s]::oid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))'
                ' THEN pg_filenode_relation(r[%2$s]::oid, r[%3$s]::oid) END AS relation',
                v.db_col, v.ts_col, v.rfn_col);
        END IF;
        rel := format('@extschema@.%I', v.plugin || '_' || v.view);
        BEGIN
            EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM @extschema@.plugin_view_rows(%L, %L) AS r',
                           rel, v.cols, v.plugin, v.view);
        EXCEPTION WHEN invalid_table_definition OR feature_not_supported OR datatype_mismatch THEN
            -- The plugin changed its columns: replace the view.
            EXECUTE format('DROP VIEW %s', rel);
            EXECUTE format('CREATE VIEW %s AS SELECT %s FROM @extschema@.plugin_view_rows(%L, %L) AS r',
                           rel, v.cols, v.plugin, v.view);
        END;
        EXECUTE format('COMMENT ON VIEW %s IS %L', rel, v.description);
        EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', rel);
        EXECUTE format('GRANT SELECT ON %s TO walker_monitor', rel);
        IF NOT EXISTS (SELECT 1 FROM pg_depend
                       WHERE classid = 'pg_class'::regclass AND objid = rel::regclass
                         AND refclassid = 'pg_extension'::regclass AND deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION walker ADD VIEW %s', rel);
        END IF;
        RETURN NEXT rel;
    END LOOP;
    -- A plugin's own role (ABI 1.3): created once, NOLOGIN; it may call the functions
    -- the plugin grants it, through plugin_call.
    FOR p IN SELECT * FROM @extschema@.plugin_sql() WHERE role IS NOT NULL LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p.role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', p.role);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA @extschema@ TO %I', p.role);
        EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.plugin_call(text, text, text),'
                       ' @extschema@.with_relation(jsonb) TO %I', p.role);
        RETURN NEXT 'role ' || p.role;
    END LOOP;
    -- Each SQL function a plugin declares: walker.<plugin>_<function>(args jsonb).
    FOR f IN SELECT * FROM @extschema@.plugin_functions() ORDER BY plugin, function LOOP
        fname := format('@extschema@.%I', f.plugin || '_' || f.function);
        body := format('SELECT @extschema@.plugin_call(%L, %L, @extschema@.with_relation(args)::text)::%s',
                       f.plugin, f.function, f.result_type);
        BEGIN
            EXECUTE format('CREATE OR REPLACE FUNCTION %s(args jsonb DEFAULT ''{}'') RETURNS %s'
                           ' LANGUAGE sql VOLATILE AS %L', fname, f.result_type, body);
        EXCEPTION WHEN invalid_function_definition THEN
            -- The plugin changed the result type: replace the function.
            EXECUTE format('DROP FUNCTION %s(jsonb)', fname);
            EXECUTE format('CREATE FUNCTION %s(args jsonb DEFAULT ''{}'') RETURNS %s'
                           ' LANGUAGE sql VOLATILE AS %L', fname, f.result_type, body);
        END;
        EXECUTE format('COMMENT ON FUNCTION %s(jsonb) IS %L', fname, f.description);
        EXECUTE format('REVOKE ALL ON FUNCTION %s(jsonb) FROM PUBLIC', fname);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s(jsonb) TO %I', fname, f.access);
        IF f.access NOT IN ('walker_admin', 'walker_monitor') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s(jsonb) TO walker_admin', fname);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_depend
                       WHERE classid = 'pg_proc'::regclass
                         AND objid = format('%s(jsonb)', fname)::regprocedure
                         AND refclassid = 'pg_extension'::regclass AND deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION walker ADD FUNCTION %s(jsonb)', fname);
        END IF;
        RETURN NEXT fname || '(jsonb)';
    END LOOP;
    -- A plugin's own SQL (ABI 1.3), after its views and functions; then whatever it
    -- created in this schema joins the extension, as the views do.
    FOR p IN SELECT * FROM @extschema@.plugin_sql() WHERE sql IS NOT NULL ORDER BY plugin LOOP
        EXECUTE replace(p.sql, '@' || 'extschema' || '@', '@extschema@');
        RETURN NEXT 'sql of plugin ' || p.plugin;
    END LOOP;
    FOR o IN
        SELECT 'TABLE' AS kind, c.oid::regclass::text AS name FROM pg_class c
        WHERE c.relnamespace = '@extschema@'::regnamespace AND c.relkind IN ('r', 'v')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 'FUNCTION', pr.oid::regprocedure::text FROM pg_proc pr
        WHERE pr.pronamespace = '@extschema@'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = pr.oid AND d.deptype = 'e')
    LOOP
        IF o.kind = 'TABLE' AND (SELECT relkind FROM pg_class WHERE oid = o.name::regclass) = 'v' THEN
            EXECUTE format('ALTER EXTENSION walker ADD VIEW %s', o.name);
        ELSE
            EXECUTE format('ALTER EXTENSION walker ADD %s %s', o.kind, o.name);
        END IF;
    END LOOP;
END
$fn$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO walker_monitor;
GRANT SELECT ON @extschema@.status, @extschema@.plugins TO walker_monitor;
GRANT EXECUTE ON FUNCTION @extschema@._status(), @extschema@._plugins(),
    @extschema@.plugin_view_columns(), @extschema@.plugin_view_rows(text, text),
    @extschema@.plugin_functions(), @extschema@.plugin_sql(), @extschema@.plugin_call(text, text, text),
    @extschema@.prometheus(), @extschema@.with_relation(jsonb) TO walker_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.refresh_views(), @extschema@.drop_slot() TO walker_admin;
COMMENT ON FUNCTION @extschema@.drop_slot() IS 'Drops walker''s replication slot and its snapshots ($PGDATA/walker), for removing walker; the worker walks no more until the server restarts.';

SELECT @extschema@.refresh_views();
"#,
    name = "views",
    finalize
);
