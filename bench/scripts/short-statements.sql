-- Figure 6 of walker-bench: many short statements, DDL and errors.
-- One pgbench "transaction" is the whole script. Server-side errors are caught by
-- PL/pgSQL EXCEPTION blocks (an aborted subtransaction each), so pgbench's clients
-- never see them: pgbench 15 ends a client at its first error.
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO bench_short (aid, delta) VALUES (:aid, :delta);
BEGIN;
CREATE TEMP TABLE bench_short_tmp (id int PRIMARY KEY, v int) ON COMMIT DROP;
INSERT INTO bench_short_tmp VALUES (:aid, :delta);
COMMIT;
DO $$ BEGIN PERFORM 1 / 0; EXCEPTION WHEN division_by_zero THEN NULL; END $$;
DO $$ BEGIN INSERT INTO bench_short_unique VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END $$;
