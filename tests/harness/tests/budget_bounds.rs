//! The budget's bounds against a real server: a flood of scopes from one unprivileged
//! role leaves other roles governed and attributed (issue 15 item 7), and a worker
//! restarted on an error charges the records it replays to policy buckets only once
//! (item 12). Bytes are compared with `pg_walinspect`.

mod common;

use common::{budget, wait_caught_up};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;
use walker_tests::Cluster;

fn cluster(name: &str, plugins: &str, extra: &[(&str, &str)]) -> Cluster {
    let mut b = budget::builder(name)
        .plugins(plugins)
        .autovacuum(false)
        .conf("wal_keep_size", "1GB");
    for (k, v) in extra {
        b = b.conf(k, v);
    }
    budget::start(b)
}

/// Bytes of the records of transaction `xid` in [`from`, `to`).
fn xid_bytes(c: &Cluster, from: &str, to: &str, xid: &str) -> i64 {
    c.query_one(&format!(
        "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info('{from}', '{to}') WHERE xid::text = '{xid}'"
    ))
    .parse()
    .unwrap()
}

fn counter(c: &Cluster, col: &str) -> i64 {
    c.query_one(&format!("SELECT {col} FROM walker.budget_counters"))
        .parse()
        .unwrap()
}

#[test]
fn a_flood_of_application_names_leaves_other_roles_governed_and_attributed() {
    let c = cluster("bounds_flood", "budget", &[]);
    c.exec(
        "CREATE ROLE flood LOGIN; CREATE ROLE w LOGIN;
         CREATE TABLE t (id int, v text); GRANT INSERT ON t TO flood, w;",
    );
    let policy =
        c.query_one("SELECT walker.budget_create_policy('role', 'w', 1000, 2000, 'reject')");
    // One unprivileged session, 1,100 application names, each with a write (each
    // write makes a scope), as fast as psql sends them.
    let mut flood = String::new();
    for i in 0..1100 {
        flood.push_str(&format!(
            "SET application_name = 'flood_{i}'; INSERT INTO t VALUES ({i}, 'f');\n"
        ));
    }
    c.psql_as("flood", "postgres", &flood).unwrap();
    wait_caught_up(&c);
    // Role w, from a fresh application name: its transaction is attributed exactly
    // and charged to its policy.
    let from = c.query_one("SELECT pg_current_wal_lsn()");
    let xid = c
        .psql_as(
            "w",
            "postgres",
            "SET application_name = 'fresh_w_1';
             BEGIN;
             SELECT pg_current_xact_id();
             INSERT INTO t SELECT g, repeat('w', 100) FROM generate_series(1, 3000) g;
             COMMIT;",
        )
        .unwrap();
    let xid = xid.trim().to_string();
    wait_caught_up(&c);
    let to = c.query_one("SELECT pg_current_wal_lsn()");
    let want = xid_bytes(&c, &from, &to, &xid);
    assert!(want > 100_000, "the write is in the WAL ({want})");
    c.wait_until("w's scope is charged", Duration::from_secs(30), || {
        c.query_one(
            "SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes WHERE role_name = 'w' AND application = 'fresh_w_1'",
        ) == want.to_string()
    });
    c.wait_until("w's bucket is in debt", Duration::from_secs(30), || {
        c.query_one(&format!(
            "SELECT tokens < -100000 FROM walker.budget_buckets WHERE policy_id = {policy}"
        )) == "t"
    });
    // Another fresh name: the reject policy refuses it.
    let err = c
        .psql_as(
            "w",
            "postgres",
            "\\set VERBOSITY verbose\nSET application_name = 'fresh_w_2';\nINSERT INTO t VALUES (1, 'x')",
        )
        .expect_err("refused while over budget");
    assert!(err.contains("WB001"), "{err}");
    let rows = c.query("SELECT count(*) FROM t WHERE v = 'x'");
    assert_eq!(rows[0][0], "0");
    // What the flood cost is counted.
    let evicted = counter(&c, "scopes_evicted");
    assert!(evicted >= 1, "the flood evicted scopes ({evicted})");
    let flood_scopes: i64 = c
        .query_one("SELECT count(*) FROM walker.budget_scopes WHERE role_name = 'flood'")
        .parse()
        .unwrap();
    assert!(
        flood_scopes <= 256,
        "one role keeps at most its bound of scopes ({flood_scopes})"
    );
    let folded: i64 = c
        .query_one(
            "SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes WHERE origin = 'evicted'",
        )
        .parse()
        .unwrap();
    assert!(
        folded > 0,
        "evicted totals are folded into the evicted scope"
    );
    eprintln!(
        "scope flood: {evicted} scopes evicted, {flood_scopes} of flood's kept, {folded} bytes folded; w charged {want} bytes (pg_walinspect) and refused"
    );
}

/// A psql session kept open (its transaction stays in progress across a worker
/// restart).
struct OpenSession {
    child: std::process::Child,
}

impl OpenSession {
    fn start(c: &Cluster, user: &str) -> OpenSession {
        let child = walker_tests::client_command("psql", c.port(), user)
            .args(["-X", "-q", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        OpenSession { child }
    }

    fn send(&mut self, sql: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let st = self.child.wait().unwrap();
        assert!(st.success(), "the open session ended with {st}");
    }
}

#[test]
fn records_replayed_after_a_worker_error_are_charged_to_buckets_once() {
    // Snapshots only at checkpoints: the worker's error restart replays from the one
    // taken below.
    let c = cluster(
        "bounds_replay",
        "rmgr_stats,budget",
        &[("walker.snapshot_interval", "0")],
    );
    c.exec(
        "CREATE ROLE w LOGIN; CREATE ROLE w2 LOGIN;
         CREATE TABLE t (id int, v text); GRANT INSERT ON t TO w, w2;",
    );
    // Observe: never blocks, charges every byte.
    let policy = c.query_one(
        "SELECT walker.budget_create_policy('role', 'w', 1000000000, 1000000000, 'observe')",
    );
    wait_caught_up(&c);
    c.exec("CHECKPOINT");
    let target = c.query_one("SELECT pg_current_wal_flush_lsn()");
    c.wait_until("budget saves a snapshot", Duration::from_secs(60), || {
        c.query_one(&format!(
            "SELECT snapshot_lsn >= '{target}'::pg_lsn FROM walker.plugins WHERE name = 'budget'"
        )) == "t"
    });
    let charged = || -> i64 {
        c.query_one(&format!(
            "SELECT charged_bytes FROM walker.budget_buckets WHERE policy_id = {policy}"
        ))
        .parse()
        .unwrap()
    };
    let before = charged();
    let from = c.query_one("SELECT pg_current_wal_lsn()");
    // A transaction that ends between the snapshot and the error: read again after
    // the restart, it is still charged to its own scope.
    let xid2 = c
        .psql_as(
            "w2",
            "postgres",
            "SET application_name = 'ended_before_the_error';
             BEGIN;
             SELECT pg_current_xact_id();
             INSERT INTO t SELECT g, repeat('c', 100) FROM generate_series(1, 1000) g;
             COMMIT;",
        )
        .unwrap()
        .trim()
        .to_string();
    // A transaction of w stays open across the restart; two statements, so the
    // walker charges its records while it is open.
    let mut s = OpenSession::start(&c, "w");
    s.send("BEGIN; INSERT INTO t SELECT g, repeat('a', 100) FROM generate_series(1, 2000) g;");
    s.send("INSERT INTO t SELECT g, repeat('b', 100) FROM generate_series(1, 2000) g;");
    s.send("SELECT 'inserted';");
    c.wait_until("the open transaction wrote", Duration::from_secs(30), || {
        c.query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = 'w' AND state = 'idle in transaction' AND backend_xid IS NOT NULL") == "1"
    });
    let xid = c.query_one("SELECT backend_xid FROM pg_stat_activity WHERE usename = 'w'");
    wait_caught_up(&c);
    c.wait_until(
        "the open transaction is charged",
        Duration::from_secs(30),
        || charged() > before + 100_000,
    );
    eprintln!(
        "replay: snapshots before the error: {:?}",
        c.query("SELECT name, snapshot_lsn FROM walker.plugins")
    );
    // The worker stops on an error and restarts from the checkpoint's snapshot. Its
    // dispatch threads try to save a snapshot while the process exits, racing with
    // the exit; a read-only snapshot directory makes the test deterministic, as when
    // the exit wins (the server runs as another user than the tests).
    let dir = c.data_dir().join("walker");
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(0o555);
    let first = c.query_one("SELECT pid FROM walker.status");
    c.set_conf("walker.debug_error_holding_lock", "rmgr_stats");
    c.reload();
    c.wait_until("the worker restarted", Duration::from_secs(60), || {
        let p = c.query_one("SELECT coalesce(pid::text, '') FROM walker.status");
        !p.is_empty() && p != first
    });
    assert!(c.server_log().contains("injected ERROR"));
    mode(0o700);
    eprintln!(
        "replay: from {from}, budget {}",
        c.query_one("SELECT start || ' snapshot ' || snapshot_lsn FROM walker.plugins WHERE name = 'budget'")
    );
    let start = c.query_one("SELECT start FROM walker.plugins WHERE name = 'budget'");
    assert!(start.starts_with("restored the snapshot"), "{start}");
    // The replay covers the test's transactions only if the snapshot is the
    // checkpoint's (taken before `from`).
    let restored = start
        .split(" at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_default();
    assert_eq!(
        c.query_one(&format!("SELECT '{restored}'::pg_lsn <= '{from}'::pg_lsn")),
        "t",
        "the worker restarted from a snapshot taken after the test's transactions ({start}); the replay did not cover them"
    );
    s.send("COMMIT;");
    s.finish();
    wait_caught_up(&c);
    let to = c.query_one("SELECT pg_current_wal_lsn()");
    let want = xid_bytes(&c, &from, &to, &xid);
    assert!(want > 200_000, "the transaction is in the WAL ({want})");
    c.wait_until("the commit is charged", Duration::from_secs(30), || {
        c.query_one(
            "SELECT count(*) FROM walker.budget_scopes WHERE role_name = 'w' AND transactions > 0",
        ) == "1"
    });
    eprintln!(
        "replay: bucket charged {} bytes for a transaction of {want} bytes (pg_walinspect)",
        charged() - before
    );
    assert_eq!(
        charged() - before,
        want,
        "the bucket is charged the transaction's WAL once (pg_walinspect), after a replay"
    );
    assert_eq!(
        c.query_one("SELECT bytes FROM walker.budget_scopes WHERE role_name = 'w'")
            .parse::<i64>()
            .unwrap(),
        want,
        "the scope's total, restored from the snapshot and replayed, is exact too"
    );
    let want2 = xid_bytes(&c, &from, &to, &xid2);
    assert!(
        want2 > 100_000,
        "the ended transaction is in the WAL ({want2})"
    );
    let got2: i64 = c
        .query_one(
            "SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes WHERE role_name = 'w2'",
        )
        .parse()
        .unwrap();
    eprintln!("replay: scope of a transaction ended before the error: {got2} bytes of {want2}");
    assert_eq!(
        got2, want2,
        "a transaction that ended before the error is charged to its scope again after the replay, not to the unattributed scope"
    );
}

/// `SELECT as_of_lsn, <cols>` from the counters, read until two readings agree.
fn counters_at(c: &Cluster, cols: &str) -> Vec<String> {
    for _ in 0..50 {
        let a = c.query(&format!(
            "SELECT as_of_lsn, {cols} FROM walker.budget_counters"
        ));
        let b = c.query(&format!(
            "SELECT as_of_lsn, {cols} FROM walker.budget_counters"
        ));
        if a == b {
            return a[0].clone();
        }
    }
    panic!("the budget's counters kept moving");
}

#[test]
fn a_subtransaction_flood_while_walker_is_paused_is_counted_and_every_byte_lands_once() {
    let c = cluster("bounds_subxacts", "budget", &[]);
    c.exec("CREATE ROLE sx LOGIN; CREATE TABLE t (id int); GRANT INSERT ON t TO sx;");
    wait_caught_up(&c);
    let before = counters_at(&c, "bytes, xid_map_full, unattributed_transactions");
    c.set_conf("walker.enabled", "off");
    c.reload();
    c.wait_until("walker pauses", Duration::from_secs(30), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    // 7,000 subtransactions that write and roll back, each published by the backend
    // when it aborts; nothing is read meanwhile, so nothing leaves the map.
    c.psql_as(
        "sx",
        "postgres",
        "DO $$ BEGIN
           FOR i IN 1..7000 LOOP
             BEGIN INSERT INTO t VALUES (i); RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END;
           END LOOP;
         END $$;",
    )
    .unwrap();
    // The map keeps at most 3/4 of its 8,192 slots.
    let mapped: i64 = c
        .query_one("SELECT mapped_transactions FROM walker.budget_counters")
        .parse()
        .unwrap();
    assert_eq!(mapped, 6144, "the map is full");
    let full: i64 = counter(&c, "xid_map_full") - before[2].parse::<i64>().unwrap();
    assert!(
        full > 7000 - 6144,
        "every refused publication is counted ({full})"
    );
    c.set_conf("walker.enabled", "on");
    c.reload();
    wait_caught_up(&c);
    // Unpublished aborts wait out their grace, then everything is charged and the
    // map drains.
    c.wait_until(
        "the map drains and nothing is pending",
        Duration::from_secs(60),
        || {
            c.query_one(
                "SELECT mapped_transactions = 0 AND pending_bytes = 0 FROM walker.budget_counters",
            ) == "t"
        },
    );
    let after = counters_at(&c, "bytes, xid_map_full, unattributed_transactions");
    let read = after[1].parse::<i64>().unwrap() - before[1].parse::<i64>().unwrap();
    let inspected: i64 = c
        .query_one(&format!(
            "SELECT sum(record_length) FROM pg_get_wal_records_info('{}', '{}')",
            before[0], after[0]
        ))
        .parse()
        .unwrap();
    assert_eq!(read, inspected, "every record read once (pg_walinspect)");
    // Every byte is in exactly one scope; the subtransactions that found no place in
    // the map went to the unattributed scope, the others to sx.
    let (scopes, total): (i64, i64) = {
        let r = c.query("SELECT (SELECT sum(bytes) FROM walker.budget_scopes)::int8, bytes FROM walker.budget_counters");
        (r[0][0].parse().unwrap(), r[0][1].parse().unwrap())
    };
    assert_eq!(scopes, total);
    let unattributed = after[3].parse::<i64>().unwrap() - before[3].parse::<i64>().unwrap();
    // 856 subtransactions found the map full, and so did the top-level transaction
    // when the DO statement ended.
    assert_eq!(
        unattributed,
        7000 - 6144 + 1,
        "the transactions the map refused are unattributed"
    );
    let sx: i64 = c
        .query_one(
            "SELECT coalesce(sum(bytes), 0) FROM walker.budget_scopes WHERE role_name = 'sx'",
        )
        .parse()
        .unwrap();
    assert!(sx > 0, "the mapped subtransactions are charged to sx");
    eprintln!(
        "subtransaction flood: {full} refused publications, {unattributed} unattributed transactions, {sx} bytes charged to sx, {read} bytes read"
    );
}
