-- Statements whose errors, notices and results a client sees. Run through psql
-- against a server with walker and every shipped plugin and against one without
-- walker: the two outputs must be identical (tests/harness/tests/transparency.rs).
-- Nothing here may depend on the cluster (ports, OIDs, paths, times).
\set VERBOSITY verbose
\set SHOW_CONTEXT always
\pset pager off
SET client_min_messages = notice;

-- Objects the failures need.
CREATE SCHEMA app;
CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
CREATE TABLE app.items (
    id int PRIMARY KEY,
    name text NOT NULL,
    qty int CHECK (qty >= 0),
    amount app.positive,
    CONSTRAINT items_name_len CHECK (length(name) < 20)
);
CREATE TABLE app.parents (id int PRIMARY KEY);
CREATE TABLE app.children (
    id int PRIMARY KEY,
    parent int REFERENCES app.parents (id) DEFERRABLE INITIALLY DEFERRED
);
INSERT INTO app.items VALUES (1, 'one', 1, 1), (2, 'two', 2, 2);
SELECT * FROM app.items ORDER BY id;

CREATE FUNCTION app.inner_fail(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF n > 1 THEN
        RAISE EXCEPTION 'inner failure at %', n USING DETAIL = 'the detail', HINT = 'the hint';
    END IF;
    RETURN n;
END $$;
CREATE FUNCTION app.outer_fail(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE r int;
BEGIN
    RAISE NOTICE 'outer called with %', n;
    r := app.inner_fail(n + 1);
    RETURN r;
END $$;
CREATE FUNCTION app.custom_state() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'application error' USING ERRCODE = 'P0099', DETAIL = 'custom detail',
        HINT = 'custom hint', SCHEMA = 'app', TABLE = 'items', COLUMN = 'qty',
        CONSTRAINT = 'app_rule', DATATYPE = 'int4';
END $$;
CREATE FUNCTION app.sql_fail(int) RETURNS int LANGUAGE sql AS $$
    SELECT 1 / ($1 - $1);
$$;
CREATE FUNCTION app.check_qty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.qty > 100 THEN
        RAISE EXCEPTION 'qty % too large for item %', NEW.qty, NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER items_check BEFORE INSERT OR UPDATE ON app.items
    FOR EACH ROW EXECUTE FUNCTION app.check_qty();
CREATE FUNCTION app.loud() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'a notice' USING DETAIL = 'notice detail';
    RAISE WARNING 'a warning' USING HINT = 'warning hint';
    RAISE INFO 'some info';
    RETURN 42;
END $$;
CREATE PROCEDURE app.commit_loop() LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 10..12 LOOP
        INSERT INTO app.items VALUES (i, 'loop' || i, i, i);
        COMMIT;
    END LOOP;
    INSERT INTO app.items VALUES (10, 'duplicate', 1, 1);
END $$;

-- Syntax and name errors (cursor position, LINE and ^).
SELECT * FROM WHERE;
SELECT nope FROM app.items;
SELECT *
  FROM app.items
 WHERE missing_column = 1;
SELECT 1 +;
INSERT INTO app.missing VALUES (1);

-- COPY: an unknown column, and bad data lines (CONTEXT: COPY items, line N).
COPY app.items (id, nope) TO STDOUT;
COPY app.items (id, name, qty, amount) FROM STDIN;
20	twenty	5	5
21	twenty-one	not-a-number	1
\.
COPY app.items (id, name, qty, amount) FROM STDIN;
22	twenty-two	5	-3
\.
COPY app.items (id, name, qty, amount) FROM STDIN WITH (FORMAT csv);
23,"unterminated
\.

-- PL/pgSQL: RAISE with detail and hint, nested functions (CONTEXT lines), a custom
-- SQLSTATE with its fields, notices and warnings.
SELECT app.outer_fail(1);
SELECT app.outer_fail(0);
SELECT app.custom_state();
DO $$ BEGIN PERFORM app.custom_state(); END $$;
DO $$
BEGIN
    BEGIN
        PERFORM app.inner_fail(5);
    EXCEPTION WHEN raise_exception THEN
        RAISE NOTICE 'caught: % (%)', SQLERRM, SQLSTATE;
    END;
    RAISE EXCEPTION USING MESSAGE = 'rethrown', ERRCODE = 'XX123';
END $$;
SELECT app.loud();
DO $$ DECLARE x int; BEGIN SELECT 1 INTO STRICT x FROM generate_series(1, 2); END $$;
DO $$ BEGIN EXECUTE 'SELECT * FROM app.items WHERE nope = 1'; END $$;

-- A SQL function and a trigger.
SELECT app.sql_fail(3);
INSERT INTO app.items VALUES (30, 'big', 500, 1);
UPDATE app.items SET qty = 1000 WHERE id = 1;

-- Constraint violations (schema, table, column, constraint, datatype names).
INSERT INTO app.items VALUES (40, NULL, 1, 1);
INSERT INTO app.items VALUES (41, 'neg', -1, 1);
INSERT INTO app.items VALUES (1, 'dup', 1, 1);
INSERT INTO app.items VALUES (42, 'domain', 1, -5);
INSERT INTO app.items VALUES (43, 'a name that is far too long', 1, 1);
SELECT (-1)::app.positive;
INSERT INTO app.children VALUES (1, 999);
UPDATE app.items SET id = 2 WHERE id = 1;

-- A deferred foreign key failing at COMMIT.
BEGIN;
INSERT INTO app.children VALUES (2, 12345);
SELECT count(*) FROM app.children;
COMMIT;

-- Errors inside explicit transactions, ROLLBACK TO SAVEPOINT and ROLLBACK.
BEGIN;
INSERT INTO app.items VALUES (50, 'fifty', 1, 1);
SAVEPOINT s1;
INSERT INTO app.items VALUES (50, 'again', 1, 1);
SELECT 1;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO app.items VALUES (51, 'fifty-one', 1, 1);
SAVEPOINT s2;
SELECT 1 / 0;
ROLLBACK TO s2;
COMMIT;
SELECT id, name FROM app.items WHERE id >= 50 ORDER BY id;
BEGIN;
SELECT nope;
SELECT 1;
ROLLBACK;
BEGIN;
UPDATE app.items SET qty = -1 WHERE id = 2;
ROLLBACK;

-- A procedure that commits in a loop, then fails.
CALL app.commit_loop();
SELECT id FROM app.items WHERE id BETWEEN 10 AND 12 ORDER BY id;

-- A serialization failure: a second session (dblink) updates the row first.
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('host=127.0.0.1 port=%s dbname=%s user=%s',
    current_setting('port'), current_database(), current_user)) AS connected \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT qty FROM app.items WHERE id = 2;
SELECT dblink_exec('other', 'UPDATE app.items SET qty = qty + 1 WHERE id = 2');
UPDATE app.items SET qty = qty + 10 WHERE id = 2;
ROLLBACK;
SELECT dblink_disconnect('other');
SELECT dblink_exec('host=127.0.0.1 port=1 dbname=none', 'SELECT 1') IS NULL AS unreachable \gset

-- statement_timeout and a cancel.
SET statement_timeout = '100ms';
SELECT pg_sleep(2);
RESET statement_timeout;
SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(1);
SELECT 'still connected' AS state;

-- Utility statements failing below the utility hook.
CREATE TABLE app.items (id int);
DROP TABLE app.nothing;
ALTER TABLE app.items ADD CONSTRAINT qty_small CHECK (qty < 3);
CREATE INDEX ON app.nothing (id);
VACUUM app.nothing;
EXPLAIN SELECT * FROM app.nope;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT app.sql_fail(1);
PREPARE p(int) AS SELECT app.inner_fail($1);
EXECUTE p(7);
DEALLOCATE p;
DEALLOCATE nope;
SET no_such_setting = 1;
SET work_mem = 'lots';
SHOW no_such_setting;
LISTEN "walker transparency";
UNLISTEN *;
DISCARD ALL;

-- Results stay the same.
SELECT id, name, qty, amount FROM app.items ORDER BY id;
DROP SCHEMA app CASCADE;
