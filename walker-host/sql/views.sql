-- Run last by CREATE EXTENSION walker (pgrx `finalize`): the views over the host's
-- functions, refresh_views() (which creates the plugins' views and functions) and the
-- grants.
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
    before oid[];
    superuser_session bool := coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), false);
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
        PERFORM @extschema@.own_object('pg_class'::regclass, to_regclass(rel));
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
        PERFORM @extschema@.own_role(p.role);
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
        PERFORM @extschema@.own_object('pg_proc'::regclass, to_regprocedure(fname || '(jsonb)'));
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
    -- It runs as the superuser who owns this function, so only in a superuser's
    -- session: walker_admin may refresh views and functions, but cannot make plugin SQL
    -- run as superuser again (with settings, temporary objects and a transaction of
    -- its choosing).
    IF NOT superuser_session THEN
        IF EXISTS (SELECT 1 FROM @extschema@.plugin_sql() WHERE sql IS NOT NULL) THEN
            RAISE NOTICE 'plugins'' own SQL was not run: only a superuser''s session runs it'
                USING HINT = 'Run SELECT walker.refresh_views() as a superuser after adding or upgrading a plugin that has SQL.';
        END IF;
        RETURN;
    END IF;
    -- Objects of this schema that are not the extension's now were not made by this
    -- call: they are never adopted below.
    before := ARRAY(SELECT c.oid FROM pg_class c WHERE c.relnamespace = '@extschema@'::regnamespace
                    UNION ALL SELECT pr.oid FROM pg_proc pr WHERE pr.pronamespace = '@extschema@'::regnamespace);
    FOR p IN SELECT * FROM @extschema@.plugin_sql() WHERE sql IS NOT NULL ORDER BY plugin LOOP
        EXECUTE replace(p.sql, '@' || 'extschema' || '@', '@extschema@');
        RETURN NEXT 'sql of plugin ' || p.plugin;
    END LOOP;
    -- Nothing a plugin's SQL made is left to PUBLIC unless the plugin granted it
    -- explicitly: functions get EXECUTE for PUBLIC by default (a NULL proacl).
    FOR o IN SELECT pr.oid::regprocedure::text AS name FROM pg_proc pr
             WHERE pr.pronamespace = '@extschema@'::regnamespace AND pr.proacl IS NULL
               AND pr.oid <> ALL (before) LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', o.name);
    END LOOP;
    FOR o IN
        SELECT 'TABLE' AS kind, c.oid::regclass::text AS name FROM pg_class c
        WHERE c.relnamespace = '@extschema@'::regnamespace AND c.relkind IN ('r', 'v')
          AND c.oid <> ALL (before) AND c.relowner = current_user::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 'FUNCTION', pr.oid::regprocedure::text FROM pg_proc pr
        WHERE pr.pronamespace = '@extschema@'::regnamespace
          AND pr.oid <> ALL (before) AND pr.proowner = current_user::regrole
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
