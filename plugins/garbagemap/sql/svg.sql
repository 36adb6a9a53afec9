-- garbagemap's own SQL, part two (run after vacuum_plan.sql, same rules):
--
-- walker.garbagemap_svg: the heat map of every relation garbagemap publishes, one row
-- each, titled with the relation's name where the reading database resolves it (the
-- plugin has no catalog: this passes the name in, as walker.garbagemap_svg(args)
-- does with the name its caller gives) and with its relfilenode and database
-- elsewhere. Each picture is drawn by the plugin's `svg` function; a relation that
-- leaves the map between the listing and the drawing (dropped, truncated, evicted)
-- is left out, any other failure is raised.
--
-- The columns are those the view had when the host made it from a plugin view
-- (garbagemap before 0.2), so CREATE OR REPLACE VIEW takes it over in place.
CREATE OR REPLACE FUNCTION @extschema@.garbagemap_svg_rows()
RETURNS TABLE (database bigint, tablespace bigint, relfilenode bigint, svg text,
               relation regclass)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $svg$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT g.database AS db, g.tablespace AS ts, g.relfilenode AS rfn, g.relation AS rel
             FROM @extschema@.garbagemap_relations g
             ORDER BY g.database, g.tablespace, g.relfilenode LOOP
        BEGIN
            svg := @extschema@.plugin_call('garbagemap', 'svg',
                (pg_catalog.jsonb_build_object('database', r.db, 'tablespace', r.ts,
                                               'relfilenode', r.rfn)
                 || CASE WHEN r.rel IS NULL THEN '{}'::jsonb
                         ELSE pg_catalog.jsonb_build_object('relation', r.rel::text) END)::text);
        EXCEPTION WHEN external_routine_exception THEN
            IF EXISTS (SELECT 1 FROM @extschema@.garbagemap_relations g
                       WHERE g.database = r.db AND g.tablespace = r.ts AND g.relfilenode = r.rfn) THEN
                RAISE;
            END IF;
            CONTINUE;
        END;
        database := r.db;
        tablespace := r.ts;
        relfilenode := r.rfn;
        relation := r.rel;
        RETURN NEXT;
    END LOOP;
END
$svg$;
REVOKE ALL ON FUNCTION @extschema@.garbagemap_svg_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.garbagemap_svg_rows() TO walker_monitor;
CREATE OR REPLACE VIEW @extschema@.garbagemap_svg AS
SELECT * FROM @extschema@.garbagemap_svg_rows();
COMMENT ON VIEW @extschema@.garbagemap_svg IS
    'garbagemap: the SVG heat map of each relation it publishes, titled with the relation''s name (its relfilenode and database when another database holds it)';
REVOKE ALL ON @extschema@.garbagemap_svg FROM PUBLIC;
GRANT SELECT ON @extschema@.garbagemap_svg TO walker_monitor;
