-- budget's own SQL (ABI 1.3 `sql`), run by walker.refresh_views() as the extension's
-- owner with @extschema@ replaced by walker's schema; idempotent. See policy_sql.rs.
CREATE TABLE IF NOT EXISTS @extschema@.budget_policies (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope_kind text NOT NULL
        CHECK (scope_kind IN ('tenant', 'role', 'database', 'application', 'composite')),
    scope_value text NOT NULL CHECK (octet_length(scope_value) BETWEEN 1 AND 64),
    rate_bytes_per_sec bigint NOT NULL CHECK (rate_bytes_per_sec > 0),
    burst_bytes bigint NOT NULL,
    mode text NOT NULL CHECK (mode IN ('off', 'observe', 'shadow', 'queue', 'reject')),
    priority integer NOT NULL DEFAULT 0,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (burst_bytes >= rate_bytes_per_sec)
);
COMMENT ON TABLE @extschema@.budget_policies IS
    'WAL budget policies; change them with walker.budget_create_policy, _update_policy, _set_mode, _disable_policy, _enable_policy, _drop_policy.';
REVOKE ALL ON @extschema@.budget_policies FROM PUBLIC;
GRANT SELECT ON @extschema@.budget_policies TO walker_monitor;
DO $cfg$
BEGIN
    -- Keeps the policies in pg_dump output. The server allows this only inside
    -- CREATE EXTENSION; a table created by a later walker.refresh_views() (budget added
    -- to walker.plugins afterwards) is dumped once ALTER EXTENSION walker UPDATE or a
    -- re-creation of the extension marks it.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                   WHERE e.extname OPERATOR(pg_catalog.=) 'walker'
                     AND '@extschema@.budget_policies'::pg_catalog.regclass OPERATOR(pg_catalog.=) ANY (e.extconfig)) THEN
        BEGIN
            PERFORM pg_catalog.pg_extension_config_dump('@extschema@.budget_policies', '');
        EXCEPTION WHEN feature_not_supported OR object_not_in_prerequisite_state THEN
            RAISE NOTICE 'walker.budget_policies is not marked for pg_dump (only CREATE EXTENSION walker can mark it)';
        END;
    END IF;
END
$cfg$;

CREATE OR REPLACE FUNCTION @extschema@.budget_home() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    home text := current_setting('walker.database');
BEGIN
    IF current_database() OPERATOR(pg_catalog.<>) home THEN
        RAISE EXCEPTION 'WAL budget policies live in database "%" (walker.database), not in "%"', home, current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Connect to database %I to manage policies, or set walker.database.', home);
    END IF;
END
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_reload() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    arg jsonb;
BEGIN
    PERFORM @extschema@.budget_home();
    -- One statement, so the rows and the snapshot go together: the plugin marks
    -- every announced change whose transaction this snapshot sees ended as loaded.
    SELECT jsonb_build_object(
               'policies', coalesce(jsonb_agg(to_jsonb(p) - 'created_at' - 'updated_at' ORDER BY p.id), '[]'::jsonb),
               'snapshot', pg_current_snapshot()::text)
      INTO arg
      FROM @extschema@.budget_policies p;
    PERFORM @extschema@.plugin_call('budget', 'load_policies', arg::text);
    RETURN jsonb_array_length(arg->'policies');
END
$f$;
COMMENT ON FUNCTION @extschema@.budget_reload() IS
    'Loads the committed walker.budget_policies into shared memory and returns how many there are (the services worker does it after each change''s transaction ends, at server start and every minute).';

-- Announces that this transaction changes the table; the walker side loads the
-- committed table once the transaction ended (nothing changes when it rolled back).
CREATE OR REPLACE FUNCTION @extschema@.budget_changed() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT NULL::void FROM (SELECT @extschema@.plugin_call('budget', 'policy_changed',
        jsonb_build_object('xid', pg_current_xact_id()::text::numeric)::text)) AS announced
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_sync(timeout_ms integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    st jsonb := @extschema@.plugin_call('budget', 'policy_status', '{}')::jsonb;
    -- The announced changes whose transactions ended before this call (as this
    -- call's snapshot sees them, the way the plugin judges a load): committed ones
    -- must be loaded (rolled-back ones are covered by the same load).
    targets text[] := ARRAY(
        SELECT x FROM jsonb_array_elements_text(st->'waiting') AS w(x)
        WHERE x::xid8 OPERATOR(pg_catalog.<) pg_snapshot_xmax(pg_current_snapshot())
          AND NOT x::xid8 OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot()))));
    deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(timeout_ms, 0) / 1000.0);
BEGIN
    IF (st->>'changed_in_transaction')::boolean THEN
        RAISE EXCEPTION 'this transaction changed WAL budget policies: they are loaded after it commits'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'Commit, then call walker.budget_sync() in a new transaction.';
    END IF;
    LOOP
        IF (st->>'loaded')::boolean AND NOT EXISTS (
               SELECT 1 FROM jsonb_array_elements_text(st->'waiting') AS w(x)
               WHERE x OPERATOR(pg_catalog.=) ANY (targets)) THEN
            RETURN (st->>'generation')::bigint;
        END IF;
        IF clock_timestamp() >= deadline THEN
            RAISE EXCEPTION 'the WAL budget policies were not loaded within % ms (changes of transactions % not loaded yet)',
                timeout_ms, st->'waiting'
                USING ERRCODE = 'lock_not_available',
                      HINT = 'Is the walker worker running (walker.status) and its services worker (the server log says why a load failed)? Call walker.budget_sync() again with a longer timeout.';
        END IF;
        PERFORM pg_sleep(0.02);
        st := @extschema@.plugin_call('budget', 'policy_status', '{}')::jsonb;
    END LOOP;
END
$f$;
COMMENT ON FUNCTION @extschema@.budget_sync(integer) IS
    'Waits (up to timeout_ms) until every policy change committed before the call is loaded; returns the loaded policy generation.';

CREATE OR REPLACE FUNCTION @extschema@.budget_check(spec jsonb) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $f$
    SELECT NULL::void FROM (SELECT @extschema@.plugin_call('budget', 'check_policy', spec::text)) AS checked
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_create_policy(
    scope_kind text, scope_value text, rate_bytes_per_sec bigint, burst_bytes bigint,
    mode text DEFAULT 'observe', priority integer DEFAULT 0) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
#variable_conflict use_variable
DECLARE
    new_id bigint;
    room integer := current_setting('budget.max_policies', true)::integer;
    have bigint;
BEGIN
    PERFORM @extschema@.budget_home();
    PERFORM @extschema@.budget_check(jsonb_build_object('scope_kind', scope_kind, 'scope_value', scope_value,
        'rate_bytes_per_sec', rate_bytes_per_sec, 'burst_bytes', burst_bytes, 'mode', mode, 'priority', priority));
    -- Every row is loaded (disabled ones too) into a table of budget.max_policies
    -- slots: one more could never take effect. Counted without a lock (a creator
    -- must not wait for another's open transaction): two creators racing for the last
    -- slot can both commit, and then the load refuses the table, naming the setting.
    SELECT count(*) INTO have FROM @extschema@.budget_policies;
    IF room IS NOT NULL AND have >= room THEN
        RAISE EXCEPTION 'walker.budget_policies already holds % policies, as many as budget.max_policies (%) lets shared memory hold', have, room
            USING ERRCODE = 'configuration_limit_exceeded',
                  HINT = 'Drop a policy (walker.budget_drop_policy), or raise budget.max_policies (ALTER SYSTEM, then restart the server).';
    END IF;
    INSERT INTO @extschema@.budget_policies AS p (scope_kind, scope_value, rate_bytes_per_sec, burst_bytes, mode, priority)
    VALUES (scope_kind, scope_value, rate_bytes_per_sec, burst_bytes, mode, priority)
    RETURNING p.id INTO new_id;
    PERFORM @extschema@.budget_changed();
    RETURN new_id;
END
$f$;

-- Changes one policy: NULL arguments keep the current value.
CREATE OR REPLACE FUNCTION @extschema@.budget_change(
    policy_id bigint, new_value text, new_rate bigint, new_burst bigint, new_mode text,
    new_priority integer, new_enabled boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    cur @extschema@.budget_policies;
BEGIN
    PERFORM @extschema@.budget_home();
    SELECT * INTO cur FROM @extschema@.budget_policies p WHERE p.id = policy_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no WAL budget policy with id %', policy_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM walker.budget_policies lists them.';
    END IF;
    cur.scope_value := coalesce(new_value, cur.scope_value);
    cur.rate_bytes_per_sec := coalesce(new_rate, cur.rate_bytes_per_sec);
    cur.burst_bytes := coalesce(new_burst, cur.burst_bytes);
    cur.mode := coalesce(new_mode, cur.mode);
    cur.priority := coalesce(new_priority, cur.priority);
    cur.enabled := coalesce(new_enabled, cur.enabled);
    PERFORM @extschema@.budget_check(to_jsonb(cur) - 'created_at' - 'updated_at');
    UPDATE @extschema@.budget_policies p
       SET scope_value = cur.scope_value, rate_bytes_per_sec = cur.rate_bytes_per_sec,
           burst_bytes = cur.burst_bytes, mode = cur.mode, priority = cur.priority,
           enabled = cur.enabled, updated_at = pg_catalog.now()
     WHERE p.id = policy_id;
    PERFORM @extschema@.budget_changed();
END
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_update_policy(
    policy_id bigint, rate_bytes_per_sec bigint DEFAULT NULL, burst_bytes bigint DEFAULT NULL,
    priority integer DEFAULT NULL, scope_value text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT @extschema@.budget_change(policy_id, scope_value, rate_bytes_per_sec, burst_bytes, NULL, priority, NULL)
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_set_mode(policy_id bigint, mode text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT @extschema@.budget_change(policy_id, NULL, NULL, NULL, mode, NULL, NULL)
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_disable_policy(policy_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT @extschema@.budget_change(policy_id, NULL, NULL, NULL, NULL, NULL, false)
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_enable_policy(policy_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT @extschema@.budget_change(policy_id, NULL, NULL, NULL, NULL, NULL, true)
$f$;

CREATE OR REPLACE FUNCTION @extschema@.budget_drop_policy(policy_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    PERFORM @extschema@.budget_home();
    DELETE FROM @extschema@.budget_policies p WHERE p.id = policy_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no WAL budget policy with id %', policy_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM walker.budget_policies lists them.';
    END IF;
    PERFORM @extschema@.budget_changed();
END
$f$;

DO $grants$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'budget_home()', 'budget_reload()', 'budget_changed()', 'budget_sync(integer)',
        'budget_check(jsonb)',
        'budget_create_policy(text, text, bigint, bigint, text, integer)',
        'budget_change(bigint, text, bigint, bigint, text, integer, boolean)',
        'budget_update_policy(bigint, bigint, bigint, integer, text)',
        'budget_set_mode(bigint, text)', 'budget_disable_policy(bigint)',
        'budget_enable_policy(bigint)', 'budget_drop_policy(bigint)']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION @extschema@.%s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.%s TO walker_admin', f);
    END LOOP;
END
$grants$;

-- In the policies' database, have the table loaded once this transaction commits (the
-- services worker also loads it at each server start).
DO $load$
BEGIN
    IF current_database() OPERATOR(pg_catalog.=) current_setting('walker.database') THEN
        PERFORM @extschema@.budget_changed();
    END IF;
END
$load$;
