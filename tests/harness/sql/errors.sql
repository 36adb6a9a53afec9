-- One statement (or a short sequence) per line, each run in a session of its own as
-- the bootstrap superuser ("SET ROLE r;" first acts as r). The sql_surface test prints
-- for each whether it succeeded or the SQLSTATE and first line of its error; the
-- expected output is in tests/harness/expected/sql_surface.out. Lines starting with
-- "--" and empty lines are skipped.

-- The host's functions, with arguments that name nothing.
SELECT walker.plugin_call('no_such_plugin', 'status', '{}')
SELECT walker.plugin_call('budget', 'no_such_function', '{}')
SELECT walker.plugin_call('budget', 'check_policy', 'not json')
SELECT walker.plugin_call('budget', 'check_policy', '{"scope_kind": "planet"}')
SELECT count(*) FROM walker.plugin_view_rows('no_such_plugin', 'rmgrs')
SELECT count(*) FROM walker.plugin_view_rows('rmgr_stats', 'no_such_view')
SELECT count(*) >= 0 FROM walker.plugin_view_rows('rmgr_stats', 'rmgrs')
SELECT walker.prometheus() LIKE '%walker_records_total%'

-- Plugin functions with bad arguments.
SELECT walker.garbagemap_svg('{"relation": "no_such_table"}')
SELECT walker.budget_create_policy('role', 'w', 1000, 1000, 'sometimes')
SELECT walker.budget_create_policy('role', 'w', 0, 1000)
SELECT walker.budget_create_policy('planet', 'w', 1000, 1000)
SELECT walker.budget_create_policy('role', repeat('w', 65), 1000, 1000)
SELECT walker.budget_set_mode(424242, 'observe')
SELECT walker.budget_drop_policy(424242)
SELECT walker.budget_sync(-1) >= 0
BEGIN; SELECT walker.budget_create_policy('role', 'w', 1000, 1000); SELECT walker.budget_sync();

-- Who may do what.
SET ROLE walker_monitor; SELECT count(*) >= 0 FROM walker.status
SET ROLE walker_monitor; SELECT count(*) >= 0 FROM walker.rmgr_stats_rmgrs
SET ROLE walker_monitor; SELECT walker.budget_svg() LIKE '<svg %</svg>'
SET ROLE walker_monitor; SELECT count(*) > 0, bool_and(svg LIKE '<svg %</svg>') FROM walker.garbagemap_svg
SET ROLE walker_monitor; SELECT count(*) >= 0 FROM walker.garbagemap_vacuum_plan
SET ROLE walker_monitor; SELECT walker.refresh_views()
SET ROLE walker_monitor; SELECT walker.drop_slot()
SET ROLE walker_monitor; SELECT walker.budget_create_policy('role', 'w', 1000, 1000)
SET ROLE walker_admin; SELECT count(*) > 0 FROM walker.refresh_views()
SET ROLE surface_nobody; SELECT count(*) FROM walker.status
SET ROLE surface_nobody; SELECT walker.prometheus()
SET ROLE surface_nobody; SELECT walker.plugin_call('budget', 'policy_status', '{}')
SET ROLE surface_nobody; SELECT walker.budget_sync()
SET ROLE surface_nobody; SELECT walker.budget_svg()
SET ROLE surface_nobody; SELECT count(*) FROM walker.garbagemap_svg
