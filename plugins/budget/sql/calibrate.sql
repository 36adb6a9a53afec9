-- WAL budget calibration: how well the budget predicts the WAL of typical statements,
-- to run before turning on queue or reject policies. For each kind of statement
-- (insert-heavy, HOT update, indexed update, wide rows, COPY, CREATE INDEX) it runs
-- one statement per round, measures the WAL the server wrote for it
-- (pg_current_wal_insert_lsn() before and after) and compares it with the prediction
-- the admission made at its start (walker.budget_decisions).
--
--   psql -X -d <the database walker.database names> -f calibrate.sql
--   psql -X -v rows=1000 -v rounds=3 ... -f calibrate.sql    (small)
--   ./walker calibrate [--pg N] [--small] [-- psql connection options]
--
-- Run it as a member of walker_admin and walker_monitor that may create a schema, on
-- a quiet server (other sessions' WAL counts as the statements'), with
-- budget.enabled on. It creates schema walker_calibrate (dropped at the end unless
-- -v keep=1) and, for its own application_name walker_calibrate, an observe policy
-- with a rate no run reaches and the highest priority, dropped at the end: its
-- statements are decided on (and charged) there, never against your policies.
--
-- Columns: first_predicted is the prediction of the first run, before the budget knew
-- the query (its class's profile, else the default: budget.default_write_prediction,
-- budget.default_utility_prediction); predicted and actual are averages over the
-- later runs; ratio = predicted / actual (1.00 is exact, below 1 under-predicts: a
-- reject policy lets such statements start with less budget than they use); error is
-- the mean of |predicted - actual| / actual.
\set ON_ERROR_STOP 1
\set QUIET on
\if :{?rows}
\else
\set rows 20000
\endif
\if :{?rounds}
\else
\set rounds 5
\endif
SELECT greatest(:rows / 10, 1) AS wide_rows, 1 AS round,
       pg_catalog.current_setting('budget.enabled')::bool AS budget_enabled \gset
\if :budget_enabled
\else
\echo 'budget.enabled is off: the budget decides nothing, so there are no predictions to calibrate. Turn it on (ALTER SYSTEM SET budget.enabled = on; SELECT pg_reload_conf()).'
\quit
\endif
SET application_name = 'walker_calibrate';
SET client_min_messages = warning;

DROP SCHEMA IF EXISTS walker_calibrate CASCADE;
CREATE SCHEMA walker_calibrate;
CREATE TABLE walker_calibrate.results (step text, round int, predicted bigint, actual numeric);
CREATE TABLE walker_calibrate.narrow (id int PRIMARY KEY, n int, v text) WITH (fillfactor = 50);
CREATE INDEX ON walker_calibrate.narrow (n);
INSERT INTO walker_calibrate.narrow SELECT g, g % 100, 'row ' || g FROM generate_series(1, :rows) g;
VACUUM (ANALYZE) walker_calibrate.narrow;
CREATE TABLE walker_calibrate.inserted (id int PRIMARY KEY, n int, v text);
CREATE INDEX ON walker_calibrate.inserted (n);
CREATE TABLE walker_calibrate.wide (id int, payload text);
CREATE TABLE walker_calibrate.copied (id int, v text);

SELECT walker.budget_create_policy('application', 'walker_calibrate',
           1000000000000000, 1000000000000000, 'observe', 2147483647) AS policy_id \gset
SELECT walker.budget_sync(60000) AS generation \gset

\ir calibrate_round.sql

SELECT walker.budget_drop_policy(:policy_id) AS dropped \gset
\echo
\echo 'WAL budget calibration (bytes per statement):'
SELECT step AS statement,
       max(predicted) FILTER (WHERE round = 1) AS first_predicted,
       round(avg(predicted) FILTER (WHERE round > 1)) AS predicted,
       round(avg(actual) FILTER (WHERE round > 1)) AS actual,
       round(avg(predicted / nullif(actual, 0)) FILTER (WHERE round > 1), 2) AS ratio,
       round(avg(abs(predicted - actual) / nullif(actual, 0)) FILTER (WHERE round > 1), 2) AS error,
       count(*) FILTER (WHERE round > 1) AS runs
  FROM walker_calibrate.results
 GROUP BY step ORDER BY step;
\if :{?keep}
\else
DROP SCHEMA walker_calibrate CASCADE;
\endif
