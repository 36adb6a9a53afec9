//! The budget plugin against a real server. Bytes are compared with `pg_walinspect`
//! over the exact LSN range the plugin's totals cover (`as_of_lsn` of two readings);
//! the rule for records with several block references is the plugin's documented one
//! (the first block reference), applied to `pg_walinspect`'s `block_ref` text too.

mod common;

use common::{budget, wait_caught_up};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use walker_tests::Cluster;

fn cluster(name: &str) -> Cluster {
    cluster_with(name, true)
}

fn cluster_with(name: &str, autovacuum: bool) -> Cluster {
    let c = budget::start(
        budget::builder(name)
            .autovacuum(autovacuum)
            .conf("wal_log_hints", "on"),
    );
    // Refreshing again (as after a change of walker.plugins) keeps everything.
    c.exec("SELECT walker.refresh_views()");
    c
}

/// Reads `sql` (which must select `as_of_lsn` first) until two readings of the counters'
/// `as_of_lsn` around it agree, so every row reflects the same records.
fn consistent(c: &Cluster, sql: &str) -> (String, Vec<Vec<String>>) {
    for _ in 0..50 {
        let before = c.query_one("SELECT as_of_lsn FROM walker.budget_counters");
        let rows = c.query(sql);
        let after = c.query_one("SELECT as_of_lsn FROM walker.budget_counters");
        if before == after {
            return (before, rows);
        }
    }
    panic!("the budget's totals kept moving");
}

type Sums = BTreeMap<String, i64>;

fn sums(rows: &[Vec<String>]) -> Sums {
    rows.iter()
        .map(|r| (r[0].clone(), r[1].parse::<i64>().unwrap()))
        .collect()
}

fn diff(after: &Sums, before: &Sums) -> Sums {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v != 0)
        .collect()
}

/// Everything the exactness test compares, read at one `as_of_lsn`.
const READING: &str = "
SELECT 'db:' || database, bytes FROM walker.budget_databases
UNION ALL SELECT 'rel:' || tablespace || '/' || database || '/' || relfilenode, bytes FROM walker.budget_relations
UNION ALL SELECT 'norel', no_relation_bytes FROM walker.budget_counters
UNION ALL SELECT 'total', bytes FROM walker.budget_counters
UNION ALL SELECT 'pending', pending_bytes FROM walker.budget_counters
UNION ALL SELECT 'owed', claim_owed_bytes FROM walker.budget_counters
UNION ALL SELECT 'scopes', sum(bytes)::int8 FROM walker.budget_scopes";

/// The same sums from pg_walinspect over [from, to).
fn walinspect(c: &Cluster, from: &str, to: &str) -> Sums {
    let q = format!(
        "WITH r AS (
           SELECT record_length::int8 AS len, regexp_match(block_ref, 'rel (\\d+)/(\\d+)/(\\d+)') AS b
           FROM pg_get_wal_records_info('{from}', '{to}'))
         SELECT 'db:' || b[2], sum(len)::int8 FROM r WHERE b IS NOT NULL GROUP BY b[2]
         UNION ALL SELECT 'rel:' || b[1] || '/' || b[2] || '/' || b[3], sum(len)::int8 FROM r WHERE b IS NOT NULL GROUP BY b[1], b[2], b[3]
         UNION ALL SELECT 'norel', coalesce(sum(len), 0)::int8 FROM r WHERE b IS NULL
         UNION ALL SELECT 'total', coalesce(sum(len), 0)::int8 FROM r"
    );
    sums(&c.query(&q))
}

#[test]
fn database_relation_and_scope_bytes_equal_pg_walinspect() {
    // Without autovacuum, so nothing but the test writes around the crash below.
    let c = cluster_with("budget_exact", false);
    c.exec("CREATE DATABASE other");
    c.psql("other", "CREATE TABLE o (id int PRIMARY KEY, v text)")
        .unwrap();
    c.exec("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_v ON t (v)");
    wait_caught_up(&c);
    let (from, before) = consistent(&c, READING);
    let before = sums(&before);
    // Inserts, updates, deletes, an abort, a savepoint rolled back and one released,
    // full-page images after a checkpoint, hint-bit images from a SELECT, VACUUM,
    // and the same in a second database.
    c.exec(
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;
         CHECKPOINT;
         UPDATE t SET v = v || 'x' WHERE id % 3 = 0;
         DELETE FROM t WHERE id % 10 = 0;
         BEGIN; INSERT INTO t SELECT g, 'a' FROM generate_series(10001, 11000) g; ROLLBACK;
         BEGIN;
         INSERT INTO t VALUES (20001, 'kept');
         SAVEPOINT s1; INSERT INTO t SELECT g, 's' FROM generate_series(20002, 20500) g; ROLLBACK TO s1;
         SAVEPOINT s2; INSERT INTO t SELECT g, 'r' FROM generate_series(20501, 21000) g; RELEASE s2;
         COMMIT;
         CHECKPOINT;
         SELECT count(*) FROM t;
         VACUUM t;
         CREATE TABLE d (a int); INSERT INTO d SELECT generate_series(1, 1000);
         DROP TABLE d;",
    );
    c.psql(
        "other",
        "INSERT INTO o SELECT g, repeat('o', 100) FROM generate_series(1, 3000) g; UPDATE o SET v = 'u' WHERE id < 100;",
    )
    .unwrap();
    wait_caught_up(&c);
    // Transactions that ended without a backend publishing them get a grace period.
    std::thread::sleep(Duration::from_millis(2500));
    c.exec("SELECT pg_logical_emit_message(false, 'budget-test', 'tick')");
    wait_caught_up(&c);
    let (to, after) = consistent(&c, READING);
    let after = sums(&after);
    let ours = diff(&after, &before);
    let theirs = walinspect(&c, &from, &to);
    assert!(theirs["total"] > 1_000_000, "a real workload: {theirs:?}");
    // Per database, per relation, records without a block reference, and the total.
    let pick = |s: &Sums| -> Sums {
        s.iter()
            .filter(|(k, _)| {
                k.starts_with("db:") || k.starts_with("rel:") || *k == "norel" || *k == "total"
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(pick(&ours), pick(&theirs), "from {from} to {to}");
    // Every byte is in exactly one scope, or still pending (in-flight transactions);
    // xid-less bytes a backend claimed before the walker read them are owed.
    assert_eq!(
        ours.get("scopes").copied().unwrap_or(0) + ours.get("pending").copied().unwrap_or(0)
            - ours.get("owed").copied().unwrap_or(0),
        theirs["total"],
        "{ours:?}"
    );
    // SELECT-triggered hint-bit images (no xid) are in the background scope of this database.
    let bg: i64 = c
        .query_one("SELECT coalesce(sum(fpi_bytes), 0) FROM walker.budget_scopes WHERE origin = 'background' AND database_name = '' AND database = (SELECT oid FROM pg_database WHERE datname = 'postgres')")
        .parse()
        .unwrap();
    assert!(bg > 0, "background page images of database postgres");

    // The totals survive a crash exactly: the worker resumes from its last snapshot and
    // reads the WAL after it again, counting nothing twice and losing nothing. (The
    // transaction map is not durable: transactions replayed after the snapshot are
    // charged to the unattributed scope instead of their session's.)
    let q = "SELECT as_of_lsn, c.bytes, (SELECT sum(bytes) FROM walker.budget_scopes) + c.pending_bytes - c.claim_owed_bytes,
                    (SELECT bytes || '/' || records FROM walker.budget_relations WHERE relation = 't'::regclass)
             FROM walker.budget_counters c";
    let (b_lsn, b) = consistent(&c, q);
    c.exec("CHECKPOINT");
    c.crash();
    c.start_again();
    wait_caught_up(&c);
    let (a_lsn, a) = consistent(&c, q);
    let n = |r: &Vec<Vec<String>>, i: usize| r[0][i].parse::<i64>().unwrap();
    assert_eq!(a[0][3], b[0][3], "table t after the crash");
    assert_eq!(
        n(&a, 1) - n(&b, 1),
        walinspect(&c, &b_lsn, &a_lsn)["total"],
        "WAL read across the crash"
    );
    assert_eq!(
        n(&a, 2),
        n(&a, 1),
        "every byte in one scope or pending after the crash"
    );
}

/// Runs one transaction as `user` with `application_name`; returns its xid.
fn write_as(c: &Cluster, user: &str, app: &str, rows: u32) -> String {
    c.psql_as(
        user,
        "postgres",
        &format!(
            "SET application_name = '{app}';
             BEGIN;
             SELECT pg_current_xact_id();
             INSERT INTO shared_t SELECT g, repeat('w', 50) FROM generate_series(1, {rows}) g;
             COMMIT;"
        ),
    )
    .unwrap()
}

#[test]
fn each_role_and_application_is_charged_its_own_wal() {
    let c = cluster("budget_scopes");
    c.exec(
        "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
         CREATE TABLE shared_t (id int, v text);
         GRANT INSERT ON shared_t TO alice, bob;
         GRANT CREATE ON SCHEMA public TO alice;",
    );
    c.psql_as(
        "alice",
        "postgres",
        "CREATE TABLE alice_t (a int); INSERT INTO alice_t VALUES (1);",
    )
    .unwrap();
    wait_caught_up(&c);
    let q = "SELECT as_of_lsn, role_name || '/' || application, bytes FROM walker.budget_scopes WHERE role_name IN ('alice', 'bob')";
    let read = |q: &str| {
        let (lsn, rows) = consistent(&c, q);
        let m: Sums = rows
            .iter()
            .map(|r| (r[1].clone(), r[2].parse::<i64>().unwrap()))
            .collect();
        (lsn, m)
    };
    let (from, before) = read(q);
    let xa = write_as(&c, "alice", "app_a", 1000);
    let xb = write_as(&c, "bob", "app_b", 6000);
    let xa2 = write_as(&c, "alice", "app_b", 300);
    // A DROP TABLE: its commit record lists the dropped statistics before the
    // invalidations (12-byte items up to 17, 16 on 18).
    let xd = c
        .psql_as(
            "alice",
            "postgres",
            "SET application_name = 'app_drop'; BEGIN; SELECT pg_current_xact_id(); DROP TABLE alice_t; COMMIT;",
        )
        .unwrap();
    wait_caught_up(&c);
    let (to, after) = read(q);
    let charged = diff(&after, &before);
    let by_xid = |xids: &[&str]| -> i64 {
        c.query_one(&format!(
            "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info('{from}', '{to}') WHERE xid::text IN ({})",
            xids.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(",")
        ))
        .parse()
        .unwrap()
    };
    let commits: i64 = c
        .query_one(&format!(
            "SELECT count(*) FROM pg_get_wal_records_info('{from}', '{to}') WHERE xid::text IN ('{xa}', '{xb}', '{xa2}') AND resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'"
        ))
        .parse()
        .unwrap();
    assert_eq!(commits, 3, "the commit records are in the range");
    assert_eq!(charged.get("alice/app_a").copied(), Some(by_xid(&[&xa])));
    assert_eq!(charged.get("bob/app_b").copied(), Some(by_xid(&[&xb])));
    assert_eq!(charged.get("alice/app_b").copied(), Some(by_xid(&[&xa2])));
    assert_eq!(charged.get("alice/app_drop").copied(), Some(by_xid(&[&xd])));
    // Each commit record ended its transaction: one transaction per scope.
    let ended = c.query(
        "SELECT role_name || '/' || application, transactions FROM walker.budget_scopes WHERE role_name IN ('alice', 'bob') AND application LIKE 'app_%' ORDER BY 1",
    );
    assert_eq!(
        ended,
        [
            ["alice/app_a", "1"],
            ["alice/app_b", "1"],
            ["alice/app_drop", "1"],
            ["bob/app_b", "1"]
        ]
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert!(
        charged["bob/app_b"] > 4 * charged["alice/app_a"],
        "{charged:?}"
    );
}

fn last_action(c: &Cluster, role: &str) -> (String, i64) {
    let r = c.query(&format!(
        "SELECT action, wait_ms FROM walker.budget_decisions WHERE role_name = '{role}' ORDER BY at DESC LIMIT 1"
    ));
    (r[0][0].clone(), r[0][1].parse().unwrap())
}

/// Makes `role`'s policy bucket go deep into debt: one admitted statement writing
/// several hundred kilobytes, charged once the walker has read it.
fn spend(c: &Cluster, role: &str, policy: &str) {
    budget::spend(c, role, policy, 3000, 100_000);
}

#[test]
fn reject_queue_observe_and_shadow_act_as_documented() {
    let c = cluster("budget_modes");
    c.exec(
        "CREATE ROLE rej LOGIN; CREATE ROLE que LOGIN;
         CREATE TABLE spend (id int, v text); GRANT INSERT, SELECT ON spend TO rej, que;",
    );
    let p_rej =
        c.query_one("SELECT walker.budget_create_policy('role', 'rej', 1000, 2000, 'reject')");
    let p_que =
        c.query_one("SELECT walker.budget_create_policy('role', 'que', 200000, 200000, 'queue')");
    budget::sync(&c);

    // Reject: in debt, the next write is refused with WB001, the policy and the numbers.
    spend(&c, "rej", &p_rej);
    let err = c
        .psql_as(
            "rej",
            "postgres",
            "\\set VERBOSITY verbose\nINSERT INTO spend VALUES (1, 'x')",
        )
        .unwrap_err();
    assert_eq!(budget::sqlstate_of(&err), "WB001", "{err}");
    assert!(err.contains(&format!("policy {p_rej} (role rej)")), "{err}");
    assert!(
        err.contains("1000 bytes/s with a burst of 2000 bytes"),
        "{err}"
    );
    assert_eq!(last_action(&c, "rej").0, "reject");
    // A read that writes nothing is not refused in debt.
    assert!(c
        .psql_as("rej", "postgres", "SELECT count(*) FROM spend")
        .is_ok());

    // Observe and shadow never block, and say what happened.
    c.exec(&format!(
        "SELECT walker.budget_set_mode({p_rej}, 'observe')"
    ));
    budget::sync(&c);
    let t = Instant::now();
    c.psql_as("rej", "postgres", "INSERT INTO spend VALUES (2, 'x')")
        .unwrap();
    assert_eq!(last_action(&c, "rej").0, "observe_over");
    c.exec(&format!("SELECT walker.budget_set_mode({p_rej}, 'shadow')"));
    budget::sync(&c);
    c.psql_as("rej", "postgres", "INSERT INTO spend VALUES (3, 'x')")
        .unwrap();
    assert_eq!(last_action(&c, "rej").0, "shadow_would_block");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "observe and shadow did not wait"
    );

    // Queue: the write waits for the bucket to refill (a debt of several hundred
    // kilobytes at 200 kB/s), then runs. Deep enough that it is not repaid before the
    // statement arrives on a slow machine.
    budget::spend(&c, "que", &p_que, 6000, 300_000);
    let debt: f64 = c
        .query_one(&format!(
            "SELECT -tokens FROM walker.budget_buckets WHERE policy_id = {p_que}"
        ))
        .parse()
        .unwrap();
    let t = Instant::now();
    c.psql_as("que", "postgres", "INSERT INTO spend VALUES (4, 'queued')")
        .unwrap();
    let waited = t.elapsed();
    let (action, wait_ms) = last_action(&c, "que");
    assert_eq!(action, "queued");
    let expected_ms = debt / 200.0;
    assert!(
        wait_ms as f64 >= expected_ms * 0.5 && waited >= Duration::from_millis(wait_ms as u64),
        "waited {waited:?}, recorded {wait_ms} ms, debt {debt} bytes"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM spend WHERE v = 'queued'"),
        "1"
    );

    // A cancel during the wait cancels the statement. The debt is deep (several MB at
    // 200 kB/s: a wait of ten seconds or more), so the statement is still queued when
    // the cancel arrives however slow the machine is.
    budget::spend(&c, "que", &p_que, 30_000, 2_000_000);
    let victim = walker_tests::client_command("psql", c.port(), "que")
        .args([
            "-X",
            "-q",
            "-At",
            "-d",
            "postgres",
            "-c",
            "INSERT INTO spend VALUES (5, 'cancelled')",
        ])
        // Named by the connection, not by a SET: a SET is itself a statement the
        // policy would queue first (under the session's old name).
        .env("PGAPPNAME", "victim")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.wait_until("the statement waits in the queue", Duration::from_secs(20), || {
        c.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'victim' AND state = 'active' AND wait_event_type = 'Extension'") == "1"
    });
    c.exec("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'");
    let out = victim.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert_eq!(last_action(&c, "que").0, "cancelled");
    assert_eq!(
        c.query_one("SELECT count(*) FROM spend WHERE v = 'cancelled'"),
        "0"
    );
    assert_eq!(
        c.query_one(&format!(
            "SELECT reserved FROM walker.budget_buckets WHERE policy_id = {p_que}"
        )),
        "0"
    );
}

#[test]
fn three_roles_and_invalid_policies() {
    let c = cluster("budget_roles");
    c.exec(
        "CREATE ROLE mon LOGIN IN ROLE walker_monitor;
         CREATE ROLE adm LOGIN IN ROLE walker_admin;
         CREATE ROLE setter LOGIN IN ROLE walker_budget_tenant_setter;
         CREATE ROLE nobody LOGIN;
         CREATE TABLE tt (id int); GRANT INSERT ON tt TO setter;",
    );
    let denied = |user: &str, sql: &str| {
        let e = c
            .psql_as(user, "postgres", &format!("\\set VERBOSITY verbose\n{sql}"))
            .unwrap_err();
        assert_eq!(budget::sqlstate_of(&e), "42501", "{user}: {sql}: {e}");
    };
    let create = "SELECT walker.budget_create_policy('tenant', 'acme', 1000, 1000, 'observe')";
    let set = "SELECT walker.budget_set_tenant('{\"tenant\": \"acme\"}')";
    // Nothing mutating for PUBLIC, monitors or tenant setters.
    for user in ["nobody", "mon", "setter"] {
        denied(user, create);
        denied(user, "SELECT walker.budget_reset()");
        denied(user, "INSERT INTO walker.budget_policies (scope_kind, scope_value, rate_bytes_per_sec, burst_bytes, mode) VALUES ('role', 'x', 1, 1, 'off')");
    }
    for user in ["nobody", "mon"] {
        denied(user, set);
        denied(
            user,
            "SELECT walker.plugin_call('budget', 'set_tenant', '{\"tenant\": \"x\"}')",
        );
    }
    denied("nobody", "SELECT * FROM walker.budget_scopes");
    assert!(c
        .psql_as(
            "mon",
            "postgres",
            "SELECT count(*) FROM walker.budget_scopes"
        )
        .is_ok());
    // The tenant setter sets its session's tenant; the tenant's WAL is charged to it.
    c.psql_as(
        "setter",
        "postgres",
        &format!("{set}; INSERT INTO tt SELECT generate_series(1, 100);"),
    )
    .unwrap();
    wait_caught_up(&c);
    c.wait_until("the tenant's scope is charged", Duration::from_secs(10), || {
        c.query_one("SELECT count(*) FROM walker.budget_scopes WHERE tenant = 'acme' AND role_name = 'setter' AND bytes > 0") == "1"
    });

    // The admin creates a policy; invalid ones are refused with the reason and change nothing.
    let id = c.psql_as("adm", "postgres", create).unwrap();
    // The admin waits for the committed change to be loaded.
    c.psql_as("adm", "postgres", "SELECT walker.budget_sync(60000)")
        .unwrap();
    assert_eq!(
        c.query_one(&format!(
            "SELECT count(*) FROM walker.budget_buckets WHERE policy_id = {id}"
        )),
        "1"
    );
    let state = || {
        (
            c.query_one("SELECT count(*) FROM walker.budget_policies"),
            c.query_one("SELECT string_agg(policy_id || mode || rate_bytes_per_sec || burst_bytes, ',') FROM walker.budget_buckets"),
        )
    };
    let before = state();
    for (sql, why) in [
        (
            "SELECT walker.budget_create_policy('role', 'x', 0, 10, 'reject')",
            "rate_bytes_per_sec must be greater than 0",
        ),
        (
            "SELECT walker.budget_create_policy('role', 'x', 100, 50, 'reject')",
            "burst_bytes must be at least rate_bytes_per_sec",
        ),
        (
            "SELECT walker.budget_create_policy('user', 'x', 100, 100, 'reject')",
            "unknown scope_kind \"user\"",
        ),
        (
            "SELECT walker.budget_create_policy('role', 'x', 100, 100, 'block')",
            "unknown mode \"block\"",
        ),
        (
            &format!("SELECT walker.budget_update_policy({id}, rate_bytes_per_sec => -5)"),
            "rate_bytes_per_sec must be greater than 0",
        ),
        (
            &format!("SELECT walker.budget_set_mode({id}, 'sometimes')"),
            "unknown mode \"sometimes\"",
        ),
        (
            "SELECT walker.budget_set_mode(987654, 'reject')",
            "no WAL budget policy with id 987654",
        ),
    ] {
        let e = c.psql_as("adm", "postgres", sql).unwrap_err();
        assert!(e.contains(why), "{sql}: {e}");
        assert_eq!(state(), before, "{sql} changed nothing");
    }
    // Policies are managed only in walker.database.
    c.exec("CREATE DATABASE elsewhere");
    c.psql("elsewhere", "CREATE EXTENSION walker").unwrap();
    let e = c.psql("elsewhere", create).unwrap_err();
    assert!(e.contains("live in database \"postgres\""), "{e}");
    // After a restart the services worker loads the table again.
    c.restart();
    c.wait_until("the policies are loaded again", Duration::from_secs(30), || {
        c.query_one(&format!("SELECT count(*) FROM walker.budget_buckets WHERE policy_id = {id} AND mode = 'observe'")) == "1"
    });
}

/// A failing plugin function raises the SQLSTATE of its kind of failure: wrong
/// arguments 22023 (invalid_parameter_value), any other failure 38000
/// (external_routine_exception).
#[test]
fn function_failures_raise_the_sqlstate_of_their_kind() {
    let c = cluster("budget_sqlstates");
    let sqlstate = |sql: &str| {
        let e = c
            .psql("postgres", &format!("\\set VERBOSITY verbose\n{sql}"))
            .unwrap_err();
        (budget::sqlstate_of(&e).to_string(), e)
    };
    let long = "x".repeat(65); // a tenant name is 1 to 64 bytes
    for sql in [
        format!("SELECT walker.budget_set_tenant('{{\"tenant\": \"{long}\"}}')"),
        "SELECT walker.plugin_call('budget', 'set_tenant', '{}')".to_string(),
        "SELECT walker.plugin_call('budget', 'check_policy', '{\"scope_kind\": \"tenant\"}')"
            .to_string(),
        "SELECT walker.budget_check('{\"scope_kind\": \"tenant\", \"scope_value\": \"a\", \"rate_bytes_per_sec\": 0, \"burst_bytes\": 1, \"mode\": \"reject\"}')"
            .to_string(),
    ] {
        let (state, e) = sqlstate(&sql);
        assert_eq!(state, "22023", "{sql}: {e}");
    }
    // Not the arguments' fault: loading policies in a transaction that changed them.
    let sql = "BEGIN;
        SELECT walker.plugin_call('budget', 'policy_changed', '{\"xid\": 1}');
        SELECT walker.plugin_call('budget', 'load_policies', '{}');";
    let (state, e) = sqlstate(sql);
    assert_eq!(state, "38000", "{e}");
    assert!(e.contains("has not committed"), "{e}");
}
