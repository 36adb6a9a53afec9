//! Integration tests of the walker host against real PostgreSQL clusters: exact
//! per-rmgr totals against pg_walinspect, bad plugins, permissions, pause/resume.

mod common;

use common::{assert_exact, wait_caught_up, WORKLOAD};
use std::collections::BTreeMap;
use std::time::Duration;
use walker_tests::Cluster;

#[test]
fn rmgr_stats_equals_pg_walinspect() {
    let c = Cluster::builder("exact").plugins("rmgr_stats").start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec(WORKLOAD);
    wait_caught_up(&c);
    let stats = assert_exact(&c);
    // The workload must have exercised what it claims to.
    for rmgr in [
        "Heap",
        "Heap2",
        "Btree",
        "Transaction",
        "XLOG",
        "Storage",
        "Sequence",
    ] {
        assert!(
            stats.get(rmgr).is_some_and(|s| s.0 > 0),
            "no {rmgr} records in {stats:?}"
        );
    }
    assert!(
        stats.values().any(|s| s.2 > 0),
        "no full-page images after the CHECKPOINT"
    );

    // The host's own view agrees with the plugin and the server.
    let st = c.query("SELECT state, pid IS NOT NULL, lag_bytes >= 0, records > 0, start_lsn <= processed_lsn FROM walker.status");
    assert_eq!(st[0][1..], ["t", "t", "t", "t"], "{st:?}");
    let p = c.query("SELECT state, records > 0, errors, abi_version, views::text FROM walker.plugins WHERE name = 'rmgr_stats'");
    assert_eq!(p[0], ["running", "t", "0", "1.6", "{rmgr_stats_rmgrs}"]);
}

#[test]
fn pause_and_resume_lose_nothing() {
    let c = Cluster::builder("pause").plugins("rmgr_stats").start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec("CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 1000);");
    wait_caught_up(&c);
    c.exec("ALTER SYSTEM SET walker.enabled = off; SELECT pg_reload_conf();");
    c.wait_until("the worker pauses", Duration::from_secs(30), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    let before = c.query_one("SELECT processed_lsn FROM walker.status");
    c.exec("INSERT INTO t SELECT generate_series(1, 20000);");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        c.query_one("SELECT processed_lsn FROM walker.status"),
        before,
        "paused, yet walking"
    );
    c.exec("ALTER SYSTEM SET walker.enabled = on; SELECT pg_reload_conf();");
    wait_caught_up(&c);
    assert_exact(&c);
}

#[test]
fn bad_plugins_never_stop_the_server() {
    let plugins = "rmgr_stats, does_not_exist, fx_no_entry, fx_wrong_major, fx_too_small, fixture_bad_layout, \
                   fx_init_error, fixture_panicky, fx_c_counter, bad/name";
    let c = Cluster::builder("badplugins")
        .plugins(plugins)
        .fixtures_in_library_path(true)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec(WORKLOAD);
    wait_caught_up(&c);
    c.wait_until(
        "the panicking plugin is marked failed",
        Duration::from_secs(30),
        || {
            c.query_one("SELECT state FROM walker.plugins WHERE name = 'fixture_panicky'")
                == "failed"
        },
    );
    let rows = c
        .query("SELECT name, state, coalesce(last_error, ''), errors, records FROM walker.plugins");
    let by_name: BTreeMap<String, Vec<String>> =
        rows.into_iter().map(|r| (r[0].clone(), r)).collect();
    let expect = |name: &str, state: &str, needles: &[&str]| {
        let r = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from walker.plugins: {by_name:?}"));
        assert_eq!(r[1], state, "state of {name}: {r:?}");
        for n in needles {
            assert!(r[2].contains(n), "message of {name} lacks {n:?}: {}", r[2]);
        }
    };
    expect("rmgr_stats", "running", &[]);
    expect(
        "does_not_exist",
        "not loaded",
        &["not found", "dynamic_library_path", "walker.plugins"],
    );
    expect(
        "fx_no_entry",
        "not loaded",
        &["walker_plugin_entry", "not a walker plugin"],
    );
    expect(
        "fx_wrong_major",
        "not loaded",
        &["ABI 2.0", "ABI 1.6", "rebuild"],
    );
    expect("fx_too_small", "not loaded", &["16 bytes", "rebuild"]);
    expect(
        "fixture_bad_layout",
        "not loaded",
        &["layout check", "rebuild the plugin against walker-abi 1.6"],
    );
    expect(
        "fx_init_error",
        "failed",
        &[
            "init failed",
            "fixture init refuses to start: missing configuration",
        ],
    );
    expect(
        "fixture_panicky",
        "failed",
        &["panicked", "fixture panic on purpose", "on_record at LSN"],
    );
    expect("fx_c_counter", "running", &[]);
    expect("bad/name", "not loaded", &["path separator"]);
    let panicky = &by_name["fixture_panicky"];
    assert_eq!(
        (panicky[3].as_str(), panicky[4].as_str()),
        ("1", "50"),
        "one error, after 50 records"
    );

    // The good plugins kept working: the Rust one exactly, the C one counting the same records.
    let stats = assert_exact(&c);
    let c_counter = c.query("SELECT records, bytes FROM walker.fx_c_counter_totals");
    let ours: i64 = c_counter[0][0].parse().unwrap();
    assert!(ours > 0, "the C plugin counted nothing");
    let total: i64 = stats.values().map(|s| s.0).sum();
    assert!(
        ours >= total,
        "the C plugin counts from the same start, so at least as many records: {ours} < {total}"
    );

    // Each failure was logged with the plugin's name, and the server is still up.
    let log = c.server_log();
    assert!(
        log.contains("walker: plugin \"fx_wrong_major\" not loaded"),
        "log lacks the load failure"
    );
    assert_eq!(c.query_one("SELECT 1"), "1");
    // Asking a broken plugin for rows names the cause.
    let err = c
        .psql(
            "postgres",
            "SELECT * FROM walker.plugin_view_rows('fx_wrong_major', 'x')",
        )
        .unwrap_err();
    assert!(
        err.contains("not usable") && err.contains("ABI 2.0"),
        "{err}"
    );
    let err = c
        .psql(
            "postgres",
            "SELECT * FROM walker.plugin_view_rows('nope', 'x')",
        )
        .unwrap_err();
    assert!(
        err.contains("not listed in walker.plugins") && err.contains("HINT"),
        "{err}"
    );
}

#[test]
fn only_walker_monitor_members_read_the_views() {
    let c = Cluster::builder("roles").plugins("rmgr_stats").start();
    c.exec("CREATE EXTENSION walker; CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; GRANT walker_monitor TO bob;");
    for view in ["walker.status", "walker.plugins", "walker.rmgr_stats_rmgrs"] {
        let err = c
            .psql_as("alice", "postgres", &format!("SELECT count(*) FROM {view}"))
            .unwrap_err();
        assert!(
            err.contains("permission denied"),
            "alice read {view}: {err}"
        );
        c.psql_as("bob", "postgres", &format!("SELECT count(*) FROM {view}"))
            .unwrap_or_else(|e| panic!("bob cannot read {view}: {e}"));
    }
    let err = c
        .psql_as(
            "alice",
            "postgres",
            "SELECT * FROM walker.plugin_view_rows('rmgr_stats', 'rmgrs')",
        )
        .unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    let err = c
        .psql_as("bob", "postgres", "SELECT walker.refresh_views()")
        .unwrap_err();
    assert!(
        err.contains("permission denied"),
        "a monitor must not manage: {err}"
    );
    c.exec("GRANT walker_admin TO alice");
    c.psql_as("alice", "postgres", "SELECT count(*) FROM walker.status")
        .expect("admins are monitors too");
}

#[test]
fn slot_keeps_unread_wal_and_the_bound_releases_it() {
    let c = Cluster::builder("retention")
        .plugins("rmgr_stats")
        .conf("max_wal_size", "64MB")
        .conf("min_wal_size", "32MB")
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    wait_caught_up(&c);
    let slot =
        c.query("SELECT slot_type, active FROM pg_replication_slots WHERE slot_name = 'walker'");
    assert_eq!(
        slot,
        vec![vec!["physical".to_string(), "t".to_string()]],
        "walker holds its slot"
    );

    // Paused while WAL is written and checkpoints run: the slot keeps every segment,
    // and walking resumes exactly where it stopped.
    c.exec("ALTER SYSTEM SET walker.enabled = off; SELECT pg_reload_conf();");
    c.wait_until("the worker pauses", Duration::from_secs(30), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    let held_from =
        c.query_one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'walker'");
    c.exec("CREATE TABLE big (a int, b text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g; CHECKPOINT;");
    let oldest_kept =
        c.query_one("SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'");
    let needed = c.query_one(&format!("SELECT pg_walfile_name('{held_from}')"));
    assert!(
        oldest_kept <= needed,
        "segment {needed} was removed although the slot holds it (oldest kept {oldest_kept})"
    );
    c.exec("ALTER SYSTEM SET walker.enabled = on; SELECT pg_reload_conf();");
    wait_caught_up(&c);
    assert_exact(&c);
    assert_eq!(c.query_one("SELECT gaps FROM walker.status"), "0");

    // A bound smaller than the WAL written while paused: walker releases it, reports
    // the gap with its range, and walks on after it.
    c.exec("ALTER SYSTEM SET walker.enabled = off; ALTER SYSTEM SET walker.max_retained_wal = '16MB'; SELECT pg_reload_conf();");
    c.wait_until("the worker pauses", Duration::from_secs(30), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    c.exec(
        "INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(1, 300000) g; CHECKPOINT;",
    );
    // The bound may be crossed several times during the insert: one gap each time.
    c.wait_until("walker releases the WAL past the bound", Duration::from_secs(30), || {
        c.query_one("SELECT gaps >= 1 AND retained_bytes <= 16 * 1024 * 1024 + 16 * 1024 * 1024 FROM walker.status") == "t"
    });
    let gap = c.query_one("SELECT last_gap FROM walker.status");
    assert!(
        gap.contains("walker.max_retained_wal") && gap.contains(" .. "),
        "{gap}"
    );
    assert!(
        c.server_log().contains("walker: skipped WAL"),
        "the gap is logged"
    );
    c.exec("ALTER SYSTEM SET walker.enabled = on; SELECT pg_reload_conf();");
    wait_caught_up(&c);
}

/// A server that does not preload walker: `LOAD 'walker'` and `CREATE EXTENSION walker`
/// must not end the session (the server raised FATAL "cannot create PGC_POSTMASTER
/// variables after startup" for walker's server-start settings, dropping the
/// connection), and what cannot work says to preload walker. Compared with the same
/// server's answer to a plain query in the same session.
#[test]
fn without_preload_the_session_lives_and_is_told_to_preload() {
    let c = Cluster::builder("nopreload").preload_walker(false).start();
    let loaded = c.psql("postgres", "LOAD 'walker'; SELECT 'session lives'");
    assert_eq!(loaded, Ok("session lives".to_string()), "LOAD 'walker'");
    let created = c.psql(
        "postgres",
        "CREATE EXTENSION walker; SELECT 'session lives'",
    );
    assert_eq!(
        created,
        Ok("session lives".to_string()),
        "CREATE EXTENSION walker"
    );
    let status = c
        .psql("postgres", "SELECT * FROM walker.status")
        .expect_err("walker.status cannot answer without the worker");
    assert!(
        status.starts_with("ERROR:")
            && status.contains("not loaded through shared_preload_libraries")
            && status.contains("HINT:  Add walker to shared_preload_libraries"),
        "{status}"
    );
    assert_eq!(c.query_one("SELECT 'server lives'"), "server lives");
}
