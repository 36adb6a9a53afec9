-- Figure 7 of walker-bench: budget's cost against the number of scopes. Each
-- transaction sets application_name to one of :apps values (a budget scope each:
-- tenant, role, database, application) and makes one governed write.
\set app random(1, :apps)
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
SET application_name = 'bench_scope_:app';
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
