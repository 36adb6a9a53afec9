//! How the budget admits statements (issue 15, items 6, 8 and 9), on a real server:
//! statements that cannot write are never governed, writes through a `SELECT` are
//! charged to the writer and governed, a procedure's transactions are admitted one by
//! one, and a session's tenant is reset with the session and bound to roles.

mod common;

use common::{budget, wait_caught_up};
use std::time::{Duration, Instant};
use walker_tests::Cluster;

fn cluster(name: &str) -> Cluster {
    // A short wait, so a statement that queues shows it quickly.
    budget::start(budget::builder(name).conf("budget.max_queue_wait", "3s"))
}

fn decisions(c: &Cluster, role: &str) -> String {
    c.query_one(&format!(
        "SELECT count(*) || ':' || coalesce(string_agg(action, ',' ORDER BY at), '') FROM walker.budget_decisions WHERE role_name = '{role}'"
    ))
}

/// What drivers and poolers send to set a session up or tear it down, and reads
/// (a `SELECT`, a cursor, `COPY ... TO`) whose scope's reads never wrote.
const SESSION_STATEMENTS: &str = "
SET work_mem = '8MB';
SHOW work_mem;
RESET work_mem;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
LISTEN budget_channel;
UNLISTEN budget_channel;
PREPARE budget_p AS INSERT INTO spend VALUES ($1, 'prepared');
DEALLOCATE budget_p;
EXPLAIN INSERT INTO spend VALUES (0, 'explained');
EXPLAIN (ANALYZE false) INSERT INTO spend VALUES (0, 'explained');
BEGIN;
SAVEPOINT a;
SELECT count(*) FROM spend;
RELEASE a;
COMMIT;
BEGIN;
ROLLBACK;
BEGIN;
DECLARE budget_cursor CURSOR FOR SELECT * FROM spend;
FETCH 10 FROM budget_cursor;
MOVE 10 IN budget_cursor;
CLOSE budget_cursor;
COMMIT;
COPY (SELECT id FROM spend LIMIT 5) TO STDOUT;
DISCARD PLANS;
DISCARD ALL;
RESET ALL;
";

#[test]
fn statements_that_cannot_write_run_in_debt_under_reject_and_queue() {
    let c = cluster("budget_adm_session");
    c.exec(
        "CREATE ROLE rej LOGIN; CREATE ROLE que LOGIN;
         CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO rej, que;",
    );
    let p_rej =
        c.query_one("SELECT walker.budget_create_policy('role', 'rej', 1000, 2000, 'reject')");
    let p_que =
        c.query_one("SELECT walker.budget_create_policy('role', 'que', 1000, 2000, 'queue')");
    // Policy changes take effect once committed and loaded.
    c.exec("SELECT walker.budget_sync(60000)");
    // Hundreds of kilobytes of debt at 1,000 bytes/s: minutes before either bucket
    // has room again.
    budget::spend(&c, "rej", &p_rej, 3000, 100_000);
    budget::spend(&c, "que", &p_que, 3000, 100_000);

    // Reject: every session statement runs (psql stops at the first error).
    let before = decisions(&c, "rej");
    c.psql_as(
        "rej",
        "postgres",
        &format!("\\set VERBOSITY verbose\n{SESSION_STATEMENTS}"),
    )
    .unwrap_or_else(|e| panic!("a session statement was refused in debt: {e}"));
    assert_eq!(decisions(&c, "rej"), before, "no decision for them");
    // ... while a write is still refused.
    let err = c
        .psql_as(
            "rej",
            "postgres",
            "\\set VERBOSITY verbose\nINSERT INTO spend VALUES (1, 'x')",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");
    // So is EXPLAIN ANALYZE of a write: it runs the write.
    let err = c
        .psql_as(
            "rej",
            "postgres",
            "\\set VERBOSITY verbose\nEXPLAIN ANALYZE INSERT INTO spend VALUES (1, 'x')",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");

    // Queue: none of them waits (a wait would last budget.max_queue_wait, 3 s, and be
    // recorded as queue_timeout) ...
    let before = decisions(&c, "que");
    c.psql_as("que", "postgres", SESSION_STATEMENTS).unwrap();
    assert_eq!(decisions(&c, "que"), before, "no decision for them");
    // ... while a write waits its full budget.max_queue_wait, then runs.
    let t = Instant::now();
    c.psql_as("que", "postgres", "INSERT INTO spend VALUES (2, 'queued')")
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
    let last = decisions(&c, "que");
    assert!(last.ends_with("queue_timeout"), "{last}");
}

/// Reads `role`'s session-scope bytes and every scope's (with pending bytes, less
/// what backends claimed that the walker has not read yet) at one `as_of_lsn`.
fn scope_bytes(c: &Cluster, role: &str) -> (String, i64, i64) {
    for _ in 0..50 {
        let q = format!(
            "SELECT c.as_of_lsn,
                    (SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes WHERE role_name = '{role}' AND origin = 'session'),
                    (SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes) + c.pending_bytes - c.claim_owed_bytes
             FROM walker.budget_counters c"
        );
        let r = c.query(&q);
        let again = c.query_one("SELECT as_of_lsn FROM walker.budget_counters");
        if r[0][0] == again {
            let n = |i: usize| r[0][i].parse::<i64>().unwrap();
            return (r[0][0].clone(), n(1), n(2));
        }
    }
    panic!("the budget's totals kept moving");
}

const MESSAGE: &str = "SELECT pg_logical_emit_message(false, 'p', repeat('x', 1000000))";

#[test]
fn a_logical_message_from_a_select_is_charged_to_the_writer() {
    let c = cluster("budget_adm_message");
    c.exec(
        "CREATE ROLE w LOGIN; CREATE ROLE wx LOGIN;
         CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO w;
         DO $$ DECLARE f regprocedure; BEGIN
           -- PostgreSQL 17 added a `flush` argument: grant every signature.
           FOR f IN SELECT oid FROM pg_proc WHERE proname = 'pg_logical_emit_message' LOOP
             EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO w, wx', f);
           END LOOP;
         END $$;",
    );
    let p_w = c.query_one("SELECT walker.budget_create_policy('role', 'w', 1000, 2000, 'reject')");
    c.exec("SELECT walker.budget_sync(60000)");
    // A read w ran before: its profile says it writes nothing.
    c.psql_as("w", "postgres", "SELECT count(*) FROM spend")
        .unwrap();
    // A non-transactional logical message (no xid) from a SELECT: charged to w.
    wait_caught_up(&c);
    let (from, w0, all0) = scope_bytes(&c, "w");
    c.psql_as("w", "postgres", MESSAGE)
        .unwrap_or_else(|e| panic!("the first message is admitted (the bucket is full): {e}"));
    wait_caught_up(&c);
    let (to, w1, all1) = scope_bytes(&c, "w");
    let message: i64 = c
        .query_one(&format!(
            "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info('{from}', '{to}')
             WHERE resource_manager = 'LogicalMessage' AND record_length > 1000000"
        ))
        .parse()
        .unwrap();
    assert!(
        message > 1_000_000,
        "the message is in the range: {message}"
    );
    assert_eq!(w1 - w0, message, "w's scope is charged the message record");
    // And nothing twice: every byte read is in exactly one scope, whichever of the
    // backend's claim and the walker's read of the record came first.
    let total: i64 = c
        .query_one(&format!(
            "SELECT sum(record_length) FROM pg_get_wal_records_info('{from}', '{to}')"
        ))
        .parse()
        .unwrap();
    assert_eq!(all1 - all0, total, "every byte in one scope");
    assert!(
        c.query_one("SELECT claimed_bytes FROM walker.budget_counters")
            .parse::<i64>()
            .unwrap()
            >= message
    );
    // In a transaction that has an xid, the server stamps it on a non-transactional
    // message too: charged through the transaction to its writer (wx, no policy).
    let (from, wx0, _) = scope_bytes(&c, "wx");
    let xid = c
        .psql_as(
            "wx",
            "postgres",
            "BEGIN; SELECT pg_current_xact_id();
             SELECT 1 FROM pg_logical_emit_message(false, 'p', repeat('y', 100000));
             COMMIT;",
        )
        .unwrap();
    let xid = xid.lines().next().unwrap().to_string();
    wait_caught_up(&c);
    let (to, wx1, _) = scope_bytes(&c, "wx");
    let (with_xid, messages): (i64, i64) = {
        let r = c.query(&format!(
            "SELECT coalesce(sum(record_length), 0),
                    count(*) FILTER (WHERE resource_manager = 'LogicalMessage' AND record_length > 100000)
             FROM pg_get_wal_records_info('{from}', '{to}') WHERE xid::text = '{xid}'"
        ));
        (r[0][0].parse().unwrap(), r[0][1].parse().unwrap())
    };
    assert_eq!(messages, 1, "the message carries the transaction's xid");
    assert_eq!(wx1 - wx0, with_xid, "wx is charged its transaction");
    budget::in_debt(&c, &p_w, 900_000);
    // The next over-budget statement is refused: a write, and the same message again
    // (its query learned that it writes a megabyte).
    for sql in ["INSERT INTO spend VALUES (1, 'x')", MESSAGE] {
        let err = c
            .psql_as("w", "postgres", &format!("\\set VERBOSITY verbose\n{sql}"))
            .unwrap_err();
        assert_eq!(budget::sqlstate_of(&err), "WB001", "{sql}: {err}");
    }
    // A read whose profile says it writes nothing still runs in debt ...
    c.psql_as("w", "postgres", "SELECT count(*) FROM spend")
        .unwrap_or_else(|e| panic!("a known read is refused in debt: {e}"));
    // ... but a read w never ran is predicted from w's reads, which wrote a megabyte.
    let err = c
        .psql_as(
            "w",
            "postgres",
            "\\set VERBOSITY verbose\nSELECT max(id) FROM spend",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");
}

#[test]
fn a_select_of_a_writing_function_is_governed() {
    let c = cluster("budget_adm_function");
    c.exec(
        "CREATE ROLE f LOGIN;
         CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO f;
         CREATE FUNCTION write_rows(n int) RETURNS int LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO spend SELECT g, repeat('f', 100) FROM generate_series(1, n) g;
           RETURN n;
         END $$;",
    );
    let p_f = c.query_one("SELECT walker.budget_create_policy('role', 'f', 1000, 2000, 'reject')");
    c.exec("SELECT walker.budget_sync(60000)");
    c.psql_as("f", "postgres", "SELECT write_rows(3000)")
        .unwrap_or_else(|e| panic!("the first call is admitted: {e}"));
    wait_caught_up(&c);
    budget::in_debt(&c, &p_f, 100_000);
    let err = c
        .psql_as(
            "f",
            "postgres",
            "\\set VERBOSITY verbose\nSELECT write_rows(3000)",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");
    assert_eq!(
        c.query_one("SELECT count(*) FROM spend"),
        "3000",
        "the refused call wrote nothing"
    );
}

#[test]
fn a_procedure_that_commits_is_admitted_per_transaction() {
    let c = cluster("budget_adm_call");
    c.exec(
        "CREATE ROLE p LOGIN;
         CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO p;
         CREATE PROCEDURE write_in_steps(steps int) LANGUAGE plpgsql AS $$
         BEGIN
           FOR i IN 1..steps LOOP
             INSERT INTO spend SELECT g, repeat('p', 100) FROM generate_series(1, 500) g;
             COMMIT;
             PERFORM pg_sleep(0.2);
           END LOOP;
         END $$;",
    );
    let p_p = c.query_one("SELECT walker.budget_create_policy('role', 'p', 1000, 2000, 'reject')");
    c.exec("SELECT walker.budget_sync(60000)");
    // Once the walker has charged its first transactions (each step waits 0.2 s, so
    // long before step 100), the next transaction is refused and the CALL ends.
    let err = c
        .psql_as(
            "p",
            "postgres",
            "\\set VERBOSITY verbose\nCALL write_in_steps(100)",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");
    let steps: i64 = c
        .query_one("SELECT count(*) / 500 FROM spend")
        .parse()
        .unwrap();
    assert!(
        (1..100).contains(&steps),
        "committed steps before the refusal: {steps}"
    );
    let last = c.query_one(&format!(
        "SELECT action FROM walker.budget_decisions WHERE policy_id = {p_p} ORDER BY at DESC LIMIT 1"
    ));
    assert_eq!(last, "reject");
}

fn tenant_of(out: &str) -> String {
    out.lines().last().unwrap_or("").to_string()
}

#[test]
fn the_tenant_ends_with_the_session_and_is_bound_to_roles() {
    let c = cluster("budget_adm_tenant");
    c.exec(
        "CREATE ROLE ts1 LOGIN IN ROLE walker_budget_tenant_setter;
         CREATE ROLE ts2 LOGIN IN ROLE walker_budget_tenant_setter;",
    );
    let set = |t: &str| format!("SELECT walker.budget_set_tenant('{{\"tenant\": \"{t}\"}}');");
    let current = "SELECT walker.budget_current_tenant()->>'tenant' IS NULL;";
    // DISCARD ALL, RESET ALL and SET/RESET SESSION AUTHORIZATION each clear it, so a
    // pooled connection's next client does not inherit it.
    for reset in [
        "DISCARD ALL;",
        "RESET ALL;",
        "SET SESSION AUTHORIZATION ts2; RESET SESSION AUTHORIZATION;",
    ] {
        let out = c
            .psql(
                "postgres",
                &format!("{set_acme} SELECT walker.budget_current_tenant()->>'tenant'; {reset} {current}", set_acme = set("acme")),
            )
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"acme"), "{reset}: {out}");
        assert_eq!(tenant_of(&out), "t", "{reset} clears the tenant: {out}");
    }
    // A plain SET keeps it.
    let out = c
        .psql(
            "postgres",
            &format!("{} SET work_mem = '8MB'; {current}", set("acme")),
        )
        .unwrap();
    assert_eq!(tenant_of(&out), "f", "{out}");

    // The allowlist binds tenants to roles.
    c.set_conf("budget.tenant_roles", "'acme:ts1, beta:ts2'");
    c.reload();
    c.wait_until(
        "the allowlist is in effect",
        Duration::from_secs(10),
        || c.psql_as("ts2", "postgres", &set("acme")).is_err(),
    );
    c.psql_as("ts1", "postgres", &set("acme"))
        .unwrap_or_else(|e| panic!("ts1 may claim acme: {e}"));
    c.psql_as("ts2", "postgres", &set("beta"))
        .unwrap_or_else(|e| panic!("ts2 may claim beta: {e}"));
    let e = c.psql_as("ts2", "postgres", &set("acme")).unwrap_err();
    assert!(
        e.contains("role \"ts2\" may not claim tenant \"acme\"")
            && e.contains("budget.tenant_roles"),
        "{e}"
    );
    // An exempt tenant the list does not name cannot be claimed either.
    c.exec("SELECT walker.budget_create_policy('tenant', 'vip', 1000, 1000, 'off')");
    c.exec("SELECT walker.budget_sync(60000)");
    let e = c.psql_as("ts1", "postgres", &set("vip")).unwrap_err();
    assert!(e.contains("may not claim tenant \"vip\""), "{e}");
    // A malformed list says where.
    c.set_conf("budget.tenant_roles", "'acme:ts1, beta'");
    c.reload();
    c.wait_until(
        "the malformed list is read",
        Duration::from_secs(10),
        || {
            c.psql_as("ts1", "postgres", &set("acme"))
                .is_err_and(|e| e.contains("entry 2 (\"beta\")"))
        },
    );
}

/// A reload that changes a budget setting reaches a session that is already open, in
/// both directions (the host copies a plugin's settings for backend events only after
/// the server assigned one: a missed assignment would leave the old value in force).
#[test]
fn a_reloaded_setting_reaches_an_open_session() {
    let c = cluster("budget_adm_reload");
    c.exec("CREATE ROLE rel LOGIN; CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO rel;");
    let p = c.query_one("SELECT walker.budget_create_policy('role', 'rel', 1000, 2000, 'reject')");
    budget::sync(&c);
    budget::spend(&c, "rel", &p, 3000, 100_000);
    // One session (psql goes on after an error here): a write as `rel` before, while
    // and after `budget.enabled` is off; each reload is processed before the session's
    // next statement (after the sleep).
    let out = c
        .psql(
            "postgres",
            "\\set ON_ERROR_STOP 0
             SET ROLE rel;
             INSERT INTO spend VALUES (-1, 'enabled');
             RESET ROLE;
             ALTER SYSTEM SET budget.enabled = off;
             SELECT pg_reload_conf();
             SELECT pg_sleep(1);
             SET ROLE rel;
             INSERT INTO spend VALUES (-2, 'disabled');
             RESET ROLE;
             ALTER SYSTEM RESET budget.enabled;
             SELECT pg_reload_conf();
             SELECT pg_sleep(1);
             SET ROLE rel;
             INSERT INTO spend VALUES (-3, 'enabled again');
             RESET ROLE;
             SELECT 'written: ' || string_agg(v, ',' ORDER BY id) FROM spend WHERE id < 0;",
        )
        .expect("the script runs to its end");
    let last = out.lines().last().unwrap_or("");
    assert_eq!(
        last, "written: disabled",
        "only the write made while budget.enabled was off passes: {out}"
    );
}
