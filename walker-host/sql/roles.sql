-- Run first by CREATE EXTENSION walker (pgrx `bootstrap`): walker's roles, and the
-- checks that nothing is adopted that walker did not create.
-- Nothing is adopted that walker did not create. CREATE EXTENSION takes an existing
-- schema "walker" as it is, so it must be empty and a superuser's; roles named
-- walker_* are cluster-wide and may predate walker, so walker marks the roles it
-- creates (a comment) and refuses unmarked ones.
CREATE FUNCTION @extschema@.own_role(role_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    marker constant text := 'walker: created by CREATE EXTENSION walker';
    r record;
BEGIN
    SELECT a.oid, a.rolsuper, a.rolcanlogin, pg_catalog.shobj_description(a.oid, 'pg_authid') AS note
      INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) role_name;
    IF NOT FOUND THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
        EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', role_name, marker);
    ELSIF r.note IS DISTINCT FROM marker OR r.rolsuper OR r.rolcanlogin THEN
        RAISE EXCEPTION 'role "%" already exists and was not created by walker', role_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'walker grants its privileges to the roles it creates and marks them with the comment "' || marker || '"; this role has no such mark (or is a superuser or can log in), and whoever created it could hold it.',
                  HINT = pg_catalog.format('Drop the role (DROP ROLE %I) and run the command again; or, as a superuser who made it for walker on purpose, mark it: COMMENT ON ROLE %I IS %L.', role_name, role_name, marker);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.own_role(text) FROM PUBLIC;

-- Refuses to replace object `id` (of catalog `catalog`) unless it is the extension's.
CREATE FUNCTION @extschema@.own_object(catalog regclass, id oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_depend d, pg_catalog.pg_extension e
            WHERE d.classid OPERATOR(pg_catalog.=) catalog AND d.objid OPERATOR(pg_catalog.=) id
              AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
              AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND e.extname OPERATOR(pg_catalog.=) 'walker'
              AND d.deptype OPERATOR(pg_catalog.=) 'e') THEN
        RAISE EXCEPTION '% already exists and is not part of extension walker',
                pg_catalog.pg_describe_object(catalog, id, 0)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'walker does not take over objects it did not create: drop or rename it, then run walker.refresh_views() again.';
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.own_object(regclass, oid) FROM PUBLIC;

DO $roles$
DECLARE
    s record;
BEGIN
    SELECT n.nspname, o.rolname, o.rolsuper,
           EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                     AND d.refobjid OPERATOR(pg_catalog.=) n.oid
                     AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass
                     -- what this script made so far is the extension's
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend m, pg_catalog.pg_extension x
                                     WHERE m.classid OPERATOR(pg_catalog.=) d.classid
                                       AND m.objid OPERATOR(pg_catalog.=) d.objid
                                       AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                       AND m.refobjid OPERATOR(pg_catalog.=) x.oid
                                       AND x.extname OPERATOR(pg_catalog.=) 'walker')) AS used
      INTO s FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace;
    IF NOT s.rolsuper OR s.used THEN
        RAISE EXCEPTION 'schema "%" already exists (owner "%") and was not created by CREATE EXTENSION walker', s.nspname, s.rolname
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'walker''s schema must be empty and owned by a superuser when the extension is created: the services worker runs SQL in it as a superuser, and a schema created by someone else could hold their functions.',
                  HINT = pg_catalog.format('Drop schema %I (after checking what it holds) and run CREATE EXTENSION walker again.', s.nspname);
    END IF;
    PERFORM @extschema@.own_role('walker_monitor');
    PERFORM @extschema@.own_role('walker_admin');
END
$roles$;
GRANT walker_monitor TO walker_admin;
