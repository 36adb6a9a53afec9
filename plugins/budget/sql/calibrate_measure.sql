-- Records the step calibrate_round.sql just ran: the prediction admission made for it
-- (this backend's first decision since :t0) and the WAL the server wrote since :lsn0
-- (pg_current_wal_insert_lsn(): measured by the server, not by the budget; it
-- includes the statement's commit record and any other session's WAL, so run the
-- calibration on a quiet server or a copy).
INSERT INTO walker_calibrate.results (step, round, predicted, actual)
SELECT :'step', :round,
       (SELECT d.predicted_bytes FROM walker.budget_decisions d
         WHERE d.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
           AND d.at OPERATOR(pg_catalog.>=) :'t0'::timestamptz
         ORDER BY d.at LIMIT 1),
       pg_catalog.pg_current_wal_insert_lsn() OPERATOR(pg_catalog.-) :'lsn0'::pg_lsn;
