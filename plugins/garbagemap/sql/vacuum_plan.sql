-- garbagemap's own SQL (ABI 1.3 `sql`), run by walker.refresh_views() as the
-- extension's owner with @extschema@ replaced by walker's schema; idempotent.
--
-- walker.garbagemap_vacuum_plan: for each relation of the reading database with dead
-- items in garbagemap's map, the action that removes them and what it costs in
-- blocks (the main fork's and its indexes' sizes now), beside what the statistics system counts (n_dead_tup, n_live_tup) and
-- autovacuum's trigger for the relation (autovacuum_vacuum_threshold +
-- autovacuum_vacuum_scale_factor * reltuples, reloptions first, capped on 18 by
-- autovacuum_vacuum_max_threshold; reltuples below 0, never counted, taken as 0, as
-- autovacuum does).
--
-- Actions, first match:
--   'pg_repack or pg_squeeze (REPACK (CONCURRENTLY) on PostgreSQL 19)': more dead
--     tuples and line pointers than live tuples in at least 128 blocks (1 MB): VACUUM
--     would leave the file at its size; a rewrite writes the live share only;
--   'VACUUM (INDEX_CLEANUP off)': an anti-wraparound VACUUM is due (age of relfrozenxid
--     at least autovacuum_freeze_max_age) and the indexes are larger than the heap
--     blocks VACUUM reads: it prunes, freezes and sets the visibility map without
--     reading the indexes, leaving the dead line pointers for a later VACUUM;
--   'VACUUM': otherwise; it reads the blocks that are not all-visible, and each index
--     once per pass.
--
-- Where the dead tuples sit (garbagemap.range_blocks-block ranges; `range_advice`):
-- VACUUM already skips the all-visible blocks, so it is range-limited by itself when
-- the dead tuples are concentrated (80% of them in at most a fifth of the relation's
-- ranges, ranked as walker.garbagemap_cumulative ranks them) and at most a fifth of
-- the ranges hold a block that is not all-visible: it reads those ranges only. When
-- they are concentrated but much of the rest is not all-visible, this VACUUM reads
-- that too and the next one reads only what changed since; when they are spread and
-- most blocks are not all-visible, no range-limited approach helps. A range counts as
-- all-visible when garbagemap saw every one of its blocks set all-visible in the WAL
-- (ranges it tracks no change of count as not all-visible: VACUUM may read them).
--
-- The query is the body of a function (a string, so it records no dependency on the
-- views it reads): walker.refresh_views() may then replace garbagemap's views when
-- their columns change without this view standing in the way.
--
-- A function of an earlier garbagemap with other columns cannot be replaced in
-- place: it and its view go first (they are the extension's, so they leave it first
-- when this runs outside the extension's own script).
DO $drop$
BEGIN
    IF (SELECT p.proargnames FROM pg_catalog.pg_proc p
        WHERE p.oid = pg_catalog.to_regprocedure('@extschema@.garbagemap_vacuum_plan_rows()'))
       IS DISTINCT FROM ARRAY['relation', 'action', 'vacuum_heap_blocks', 'vacuum_index_blocks',
                              'repack_heap_blocks', 'dead_tuples', 'dead_line_pointers', 'n_dead_tup',
                              'n_live_tup', 'relpages', 'all_visible_blocks', 'autovacuum_threshold',
                              'over_autovacuum_threshold', 'autovacuum_enabled', 'cost', 'ranges',
                              'dead_ranges', 'ranges_for_80pct', 'vacuum_ranges', 'vacuum_heap_pct',
                              'concentrated', 'range_advice']::text[]
       AND pg_catalog.to_regprocedure('@extschema@.garbagemap_vacuum_plan_rows()') IS NOT NULL THEN
        BEGIN
            DROP VIEW IF EXISTS @extschema@.garbagemap_vacuum_plan;
            DROP FUNCTION @extschema@.garbagemap_vacuum_plan_rows();
        EXCEPTION WHEN dependent_objects_still_exist THEN
            IF pg_catalog.to_regclass('@extschema@.garbagemap_vacuum_plan') IS NOT NULL THEN
                ALTER EXTENSION walker DROP VIEW @extschema@.garbagemap_vacuum_plan;
                DROP VIEW @extschema@.garbagemap_vacuum_plan;
            END IF;
            ALTER EXTENSION walker DROP FUNCTION @extschema@.garbagemap_vacuum_plan_rows();
            DROP FUNCTION @extschema@.garbagemap_vacuum_plan_rows();
        END;
    END IF;
END
$drop$;
CREATE OR REPLACE FUNCTION @extschema@.garbagemap_vacuum_plan_rows()
RETURNS TABLE (relation regclass, action text, vacuum_heap_blocks bigint,
               vacuum_index_blocks bigint, repack_heap_blocks bigint, dead_tuples bigint,
               dead_line_pointers bigint, n_dead_tup bigint, n_live_tup bigint,
               relpages bigint, all_visible_blocks bigint, autovacuum_threshold bigint,
               over_autovacuum_threshold boolean, autovacuum_enabled boolean, cost text,
               ranges bigint, dead_ranges bigint, ranges_for_80pct bigint,
               vacuum_ranges bigint, vacuum_heap_pct numeric, concentrated boolean,
               range_advice text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $plan$
WITH here AS (
    SELECT a.relation, a.database, a.tablespace, a.relfilenode, a.dead_tuples, a.dead_line_pointers
    FROM @extschema@.garbagemap_advice a
    WHERE a.relation IS NOT NULL
      AND a.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                        WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
), hm AS MATERIALIZED (
    SELECT h.database, h.tablespace, h.relfilenode, h.first_block, h.dead_tuples,
           h.dead_line_pointers, h.all_visible_blocks
    FROM @extschema@.garbagemap_heatmap h
), vm AS (
    SELECT h.database, h.relfilenode, pg_catalog.sum(h.all_visible_blocks)::bigint AS all_visible_blocks
    FROM hm h
    GROUP BY h.database, h.relfilenode
), top80 AS (
    -- The fewest ranges holding 80% of a relation's dead tuples: the first rank of
    -- the cumulative view whose running count reaches 80% of the total.
    SELECT k.database, k.tablespace, k.relfilenode,
           pg_catalog.min(k.rank) FILTER (WHERE k.cumulative_dead_tuples * 5
                                          >= k.total * 4
                                          AND k.total > 0) AS ranges_for_80pct
    FROM (SELECT u.database, u.tablespace, u.relfilenode, u.rank, u.cumulative_dead_tuples,
                 pg_catalog.max(u.cumulative_dead_tuples) OVER (PARTITION BY u.database, u.tablespace, u.relfilenode) AS total
          FROM @extschema@.garbagemap_cumulative u) k
    GROUP BY k.database, k.tablespace, k.relfilenode
), facts AS (
    SELECT here.relation, here.database, here.tablespace, here.relfilenode,
           here.dead_tuples, here.dead_line_pointers,
           pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::bigint AS relpages,
           GREATEST(c.reltuples, 0::real)::bigint AS reltuples,
           s.n_dead_tup, s.n_live_tup,
           COALESCE(vm.all_visible_blocks, 0) AS all_visible_blocks,
           (SELECT COALESCE(pg_catalog.sum(pg_catalog.pg_relation_size(x.indexrelid)), 0)::bigint
                   / pg_catalog.current_setting('block_size')::bigint
              FROM pg_catalog.pg_index x
             WHERE x.indrelid = c.oid) AS index_blocks,
           pg_catalog.age(c.relfrozenxid) AS xid_age,
           COALESCE(o.threshold, pg_catalog.current_setting('autovacuum_vacuum_threshold'))::float8 AS base,
           COALESCE(o.scale_factor, pg_catalog.current_setting('autovacuum_vacuum_scale_factor'))::float8 AS scale,
           NULLIF(COALESCE(o.max_threshold,
                           pg_catalog.current_setting('autovacuum_vacuum_max_threshold', true)), '')::float8 AS max_threshold,
           pg_catalog.current_setting('autovacuum')::boolean AND COALESCE(o.enabled, 'true')::boolean AS autovacuum_enabled,
           COALESCE(o.freeze_max_age, pg_catalog.current_setting('autovacuum_freeze_max_age'))::bigint AS freeze_max_age
    FROM here
    JOIN pg_catalog.pg_class c ON c.oid = here.relation::pg_catalog.oid
    LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
    LEFT JOIN vm ON vm.database = here.database AND vm.relfilenode = here.relfilenode
    LEFT JOIN LATERAL (
        SELECT pg_catalog.max(t.option_value) FILTER (WHERE t.option_name = 'autovacuum_vacuum_threshold') AS threshold,
               pg_catalog.max(t.option_value) FILTER (WHERE t.option_name = 'autovacuum_vacuum_scale_factor') AS scale_factor,
               pg_catalog.max(t.option_value) FILTER (WHERE t.option_name = 'autovacuum_vacuum_max_threshold') AS max_threshold,
               pg_catalog.max(t.option_value) FILTER (WHERE t.option_name = 'autovacuum_enabled') AS enabled,
               pg_catalog.max(t.option_value) FILTER (WHERE t.option_name = 'autovacuum_freeze_max_age') AS freeze_max_age
        FROM pg_catalog.pg_options_to_table(c.reloptions) t
    ) o ON true
), ranged AS (
    -- Per relation: its ranges now, those with dead items, and those whose every
    -- block garbagemap saw set all-visible (the last range may be short).
    SELECT f.*,
           (f.relpages + rb.range_blocks - 1)
               / rb.range_blocks AS ranges,
           (SELECT pg_catalog.count(*) FROM hm h
             WHERE (h.database, h.tablespace, h.relfilenode) = (f.database, f.tablespace, f.relfilenode)
               AND h.dead_tuples + h.dead_line_pointers > 0) AS dead_ranges,
           (SELECT pg_catalog.count(*) FROM hm h
             WHERE (h.database, h.tablespace, h.relfilenode) = (f.database, f.tablespace, f.relfilenode)
               AND h.first_block < f.relpages
               AND h.all_visible_blocks >= LEAST(rb.range_blocks, f.relpages - h.first_block)) AS all_visible_ranges,
           t.ranges_for_80pct
    FROM facts f
    CROSS JOIN (SELECT GREATEST(s.range_blocks, 1) AS range_blocks
                FROM @extschema@.garbagemap_status s) rb
    LEFT JOIN top80 t ON (t.database, t.tablespace, t.relfilenode) = (f.database, f.tablespace, f.relfilenode)
), costed AS (
    SELECT f.*,
           GREATEST(f.ranges - f.all_visible_ranges, 0) AS vacuum_ranges,
           COALESCE(f.ranges_for_80pct * 5 <= f.ranges, false) AS concentrated,
           CASE WHEN f.max_threshold OPERATOR(pg_catalog.>=) 0
                THEN LEAST(f.base + f.scale * f.reltuples, f.max_threshold)
                ELSE f.base + f.scale * f.reltuples END AS threshold,
           GREATEST(f.relpages - f.all_visible_blocks, 0) AS heap_blocks,
           COALESCE(f.n_live_tup, f.reltuples) AS live,
           f.dead_tuples + f.dead_line_pointers AS dead
    FROM ranged f
), decided AS (
    SELECT c.*,
           CASE WHEN c.dead OPERATOR(pg_catalog.>) c.live AND c.relpages OPERATOR(pg_catalog.>=) 128
                THEN 'pg_repack or pg_squeeze (REPACK (CONCURRENTLY) on PostgreSQL 19)'
                WHEN c.xid_age OPERATOR(pg_catalog.>=) c.freeze_max_age AND c.index_blocks OPERATOR(pg_catalog.>) c.heap_blocks
                THEN 'VACUUM (INDEX_CLEANUP off)'
                ELSE 'VACUUM' END AS action,
           pg_catalog.ceil(c.relpages::numeric * c.live
                           / GREATEST(c.live + c.dead, 1))::bigint AS rewrite_blocks,
           pg_catalog.round(100 * c.heap_blocks::numeric / GREATEST(c.relpages, 1), 1) AS heap_pct
    FROM costed c
)
SELECT d.relation,
       d.action,
       d.heap_blocks AS vacuum_heap_blocks,
       d.index_blocks AS vacuum_index_blocks,
       d.rewrite_blocks AS repack_heap_blocks,
       d.dead_tuples,
       d.dead_line_pointers,
       d.n_dead_tup,
       d.n_live_tup,
       d.relpages,
       d.all_visible_blocks,
       d.threshold::bigint AS autovacuum_threshold,
       COALESCE(d.n_dead_tup OPERATOR(pg_catalog.>) d.threshold, false) AS over_autovacuum_threshold,
       d.autovacuum_enabled,
       CASE d.action
         WHEN 'VACUUM' THEN pg_catalog.format(
           'reads %s of %s heap blocks (%s all-visible skipped) and %s index blocks per pass',
           d.heap_blocks, d.relpages, d.all_visible_blocks, d.index_blocks)
         WHEN 'VACUUM (INDEX_CLEANUP off)' THEN pg_catalog.format(
           'reads %s heap blocks and no index block; leaves the dead line pointers until a VACUUM that reads the %s index blocks',
           d.heap_blocks, d.index_blocks)
         ELSE pg_catalog.format(
           'writes about %s of %s heap blocks (the live share) and rebuilds %s index blocks, needing that much free space; VACUUM would read %s blocks and leave the file at %s',
           d.rewrite_blocks, d.relpages, d.index_blocks, d.heap_blocks, d.relpages)
       END
       || CASE WHEN NOT d.autovacuum_enabled THEN '; autovacuum is off for it'
               WHEN COALESCE(d.n_dead_tup OPERATOR(pg_catalog.>) d.threshold, false) THEN '; autovacuum will vacuum it (n_dead_tup above its threshold)'
               ELSE pg_catalog.format('; autovacuum waits until n_dead_tup exceeds %s', d.threshold::bigint) END AS cost,
       d.ranges,
       d.dead_ranges,
       d.ranges_for_80pct,
       d.vacuum_ranges,
       d.heap_pct AS vacuum_heap_pct,
       d.concentrated,
       CASE
         WHEN d.ranges_for_80pct IS NULL THEN
           'no dead tuples, only dead line pointers: VACUUM reads the blocks that are not all-visible'
         WHEN d.concentrated AND d.vacuum_ranges * 5 <= d.ranges THEN pg_catalog.format(
           'range-limited already: 80%% of the dead tuples sit in %s of %s ranges and the rest is all-visible, so a plain VACUUM reads only %s ranges (%s blocks, %s%% of the relation)',
           d.ranges_for_80pct, d.ranges, d.vacuum_ranges, d.heap_blocks, d.heap_pct)
         WHEN d.concentrated THEN pg_catalog.format(
           '80%% of the dead tuples sit in %s of %s ranges, but %s ranges (%s blocks, %s%% of the relation) are not all-visible and VACUUM reads them all; once it has set them all-visible, the next VACUUM reads only the ranges changed since',
           d.ranges_for_80pct, d.ranges, d.vacuum_ranges, d.heap_blocks, d.heap_pct)
         WHEN d.heap_blocks * 2 > d.relpages THEN pg_catalog.format(
           'spread: 80%% of the dead tuples take %s of %s ranges and %s%% of the relation is not all-visible (%s blocks in %s ranges): VACUUM reads most of it and no range-limited approach helps',
           d.ranges_for_80pct, d.ranges, d.heap_pct, d.heap_blocks, d.vacuum_ranges)
         ELSE pg_catalog.format(
           'spread: 80%% of the dead tuples take %s of %s ranges; VACUUM reads the %s ranges that are not all-visible (%s blocks, %s%% of the relation)',
           d.ranges_for_80pct, d.ranges, d.vacuum_ranges, d.heap_blocks, d.heap_pct)
       END AS range_advice
FROM decided d
$plan$;
REVOKE ALL ON FUNCTION @extschema@.garbagemap_vacuum_plan_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.garbagemap_vacuum_plan_rows() TO walker_monitor;
CREATE OR REPLACE VIEW @extschema@.garbagemap_vacuum_plan AS
SELECT * FROM @extschema@.garbagemap_vacuum_plan_rows();
COMMENT ON VIEW @extschema@.garbagemap_vacuum_plan IS
    'garbagemap: per relation of this database with dead items, the action (VACUUM, VACUUM (INDEX_CLEANUP off), pg_repack/pg_squeeze) and its cost in blocks, beside n_dead_tup and autovacuum''s threshold';
REVOKE ALL ON @extschema@.garbagemap_vacuum_plan FROM PUBLIC;
GRANT SELECT ON @extschema@.garbagemap_vacuum_plan TO walker_monitor;
