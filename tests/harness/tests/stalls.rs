//! Misbehaving plugins against real clusters (issue 13, items 3 and 4): a C plugin that
//! blocks forever in `on_record` at record N (`fx_c_block`), and one that dereferences
//! NULL there (`fx_c_null`), each loaded with rmgr_stats. For each: the server stays
//! up or comes back exactly once (crash lines of the server log), statements never
//! hang (every write runs under a statement_timeout), rmgr_stats stays exact against
//! pg_walinspect over a range after the bad record, the bad plugin's state and
//! `last_error` name the callback and the LSN (checked against the fixture's own record
//! of where it stopped, and against pg_walinspect), `pg_ctl stop -m fast` takes seconds,
//! and pg_wal stays under `walker.max_retained_wal` while a plugin is stuck.

mod common;

use common::{assert_exact, wait_accepting, wait_caught_up, Background, WORKLOAD};
use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// WAL the server keeps regardless of walker's slot, so pg_walinspect can read the
/// whole range rmgr_stats counted.
const KEEP: &str = "4GB";

/// Runs `sql` under a statement_timeout: a write that hangs fails the test instead of
/// hanging it.
fn write(c: &Cluster, sql: &str) {
    let t = Instant::now();
    if let Err(e) = c.psql(
        "postgres",
        &format!("SET statement_timeout = '60s';\n{sql}"),
    ) {
        panic!("a write failed after {:?}: {sql}\n{e}", t.elapsed());
    }
}

/// Lines of the server log that report a server process killed by a signal (each one
/// is a crash restart of the whole server).
fn crash_lines(c: &Cluster) -> usize {
    c.server_log()
        .lines()
        .filter(|l| l.contains("terminated by signal"))
        .count()
}

fn plugin(c: &Cluster, name: &str) -> (String, String) {
    let r = c.query(&format!(
        "SELECT state, coalesce(last_error, '') FROM walker.plugins WHERE name = '{name}'"
    ));
    (r[0][0].clone(), r[0][1].clone())
}

/// Times `pg_ctl stop -m fast`.
fn timed_stop(c: &Cluster) -> Duration {
    let t = Instant::now();
    c.stop();
    t.elapsed()
}

/// Enough WAL to pass the fixtures' record N (a few thousand records).
const FIRST: &str = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, 20000) g;";

#[test]
fn a_plugin_blocked_in_on_record_is_cut_off_and_the_rest_walk_on() {
    let c = Cluster::builder("stall")
        .plugins("rmgr_stats, fx_c_block")
        .fixtures_in_library_path(true)
        .conf("fx_c_block.at", "3000")
        .conf("walker.plugin_timeout", "2s")
        .conf("wal_keep_size", KEEP)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    let t0 = Instant::now();
    write(&c, FIRST);
    // The fixture records where it blocked; the host cuts it off after 2 s.
    c.wait_until("the fixture blocks", Duration::from_secs(60), || {
        c.query_one("SELECT blocked_lsn <> '0/0' FROM walker.fx_c_block_state") == "t"
    });
    let blocked_at = Instant::now();
    let blocked_lsn = c.query_one("SELECT blocked_lsn FROM walker.fx_c_block_state");
    c.wait_until("the plugin is cut off", Duration::from_secs(30), || {
        matches!(plugin(&c, "fx_c_block").0.as_str(), "stalled" | "failed")
    });
    let cut_after = blocked_at.elapsed();
    println!(
        "fx_c_block blocked at {blocked_lsn} ({:?} after the first write); cut off {:.2} s after it was seen blocked (walker.plugin_timeout = 2 s)",
        blocked_at.duration_since(t0),
        cut_after.as_secs_f64()
    );
    assert!(
        cut_after < Duration::from_secs(10),
        "cut off after {cut_after:?}"
    );
    c.wait_until("stalled becomes failed", Duration::from_secs(10), || {
        plugin(&c, "fx_c_block").0 == "failed"
    });
    let (_, err) = plugin(&c, "fx_c_block");
    let want =
        format!("on_record at LSN {blocked_lsn} did not return within walker.plugin_timeout (2 s)");
    assert!(err.starts_with(&want), "last_error: {err}\nwanted: {want}");
    assert!(err.contains("cut off"), "{err}");

    // The others walk on, exactly, over a range well past the bad record.
    write(&c, WORKLOAD);
    let bg = Background::start(&c);
    std::thread::sleep(Duration::from_secs(3));
    assert!(bg.stop() > 0, "statements ran while the plugin was stuck");
    wait_caught_up(&c);
    let (state, _) = plugin(&c, "rmgr_stats");
    assert_eq!(state, "running");
    let stats = assert_exact(&c);
    let (since, through) = {
        let r = c.query("SELECT since_lsn, through_lsn FROM walker.rmgr_stats_rmgrs LIMIT 1");
        (r[0][0].clone(), r[0][1].clone())
    };
    assert_eq!(
        c.query_one(&format!(
            "SELECT '{since}'::pg_lsn < '{blocked_lsn}'::pg_lsn AND '{through}'::pg_lsn > '{blocked_lsn}'::pg_lsn + 10000000"
        )),
        "t",
        "rmgr_stats' exact range {since}..{through} spans the bad record {blocked_lsn} and 10 MB after it"
    );
    assert!(stats["Heap"].0 > 20_000, "{stats:?}");
    // The status is honest: no gap was needed, the worker walks.
    assert_eq!(c.query_one("SELECT gaps FROM walker.status"), "0");

    // The stuck thread is still there; the server stops in seconds anyway.
    let stop = timed_stop(&c);
    println!(
        "pg_ctl stop -m fast with fx_c_block's thread stuck: {:.2} s",
        stop.as_secs_f64()
    );
    assert!(stop < Duration::from_secs(15), "stop took {stop:?}");
    assert_eq!(crash_lines(&c), 0, "the server never crashed");
}

#[test]
fn while_a_plugin_is_stuck_retention_reloads_and_shutdown_are_acted_on() {
    // A long timeout keeps the plugin stuck (not yet cut off) for the whole test.
    let c = Cluster::builder("stuck")
        .plugins("rmgr_stats, fx_c_block")
        .fixtures_in_library_path(true)
        .conf("fx_c_block.at", "500")
        .conf("walker.plugin_timeout", "10min")
        .conf("walker.max_retained_wal", "64MB")
        .conf("min_wal_size", "32MB")
        .conf("max_wal_size", "64MB")
        .start();
    c.exec("CREATE EXTENSION walker;");
    write(&c, FIRST);
    c.wait_until("the fixture blocks", Duration::from_secs(60), || {
        c.query_one("SELECT blocked_lsn <> '0/0' FROM walker.fx_c_block_state") == "t"
    });
    assert_eq!(
        plugin(&c, "fx_c_block").0,
        "running",
        "stuck, not cut off yet"
    );

    // A reload is acted on: walker.enabled = off pauses the worker.
    c.exec("ALTER SYSTEM SET walker.enabled = off; SELECT pg_reload_conf();");
    c.wait_until("the worker pauses", Duration::from_secs(20), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    c.exec("ALTER SYSTEM SET walker.enabled = on; SELECT pg_reload_conf();");
    c.wait_until("the worker resumes", Duration::from_secs(20), || {
        c.query_one("SELECT state FROM walker.status") != "paused"
    });

    // Write several times the bound; the retained WAL stays under it.
    let bound: i64 = 64 << 20;
    let seg: i64 = 16 << 20;
    let mut worst_retained = 0i64;
    let mut worst_dir = 0i64;
    let mut worst_live = 0i64;
    for round in 0..6 {
        write(&c, "INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(100000 + 1, 100000 + 150000) g ON CONFLICT DO NOTHING; DELETE FROM t WHERE id > 100000;");
        // Give the worker a round to release, then checkpoint to remove segments.
        std::thread::sleep(Duration::from_millis(700));
        write(&c, "CHECKPOINT;");
        // pg_wal's segment files up to the one being written hold WAL; those after it
        // are recycled files the server keeps for later (up to max_wal_size), with or
        // without walker.
        let r = c.query(
            "SELECT (pg_current_wal_lsn() - restart_lsn)::int8, \
                    (SELECT sum(size)::int8 FROM pg_ls_waldir()), \
                    (SELECT sum(size)::int8 FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' \
                       AND name <= pg_walfile_name(pg_current_wal_lsn())) \
             FROM pg_replication_slots WHERE slot_name = 'walker'",
        );
        let n = |i: usize| -> i64 { r[0][i].parse().unwrap() };
        let (retained, dir, live) = (n(0), n(1), n(2));
        println!(
            "round {round}: walker's slot retains {:.1} MB; pg_wal holds {:.1} MB of WAL up to the current segment, {:.1} MB with the recycled segments (bound 64 MB)",
            retained as f64 / 1048576.0,
            live as f64 / 1048576.0,
            dir as f64 / 1048576.0
        );
        worst_retained = worst_retained.max(retained);
        worst_dir = worst_dir.max(dir);
        worst_live = worst_live.max(live);
    }
    let written: i64 = c
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .parse()
        .unwrap();
    assert!(written > 3 * bound, "wrote {written} bytes of WAL in all");
    // The slot moves at most a segment past the bound before the next release.
    assert!(
        worst_retained <= bound + seg,
        "the slot retained {worst_retained} bytes"
    );
    // pg_wal's WAL up to the current segment: under the bound, give or take the
    // segment being written.
    assert!(
        worst_live <= bound + seg,
        "pg_wal held {worst_live} bytes of WAL up to the current segment"
    );
    // All of pg_wal: the retained WAL plus what the server keeps itself (max_wal_size 64MB of
    // recycled segments) and the segment being written.
    assert!(
        worst_dir <= bound + (64 << 20) + seg,
        "pg_wal held {worst_dir} bytes"
    );
    let gaps: i64 = c
        .query_one("SELECT gaps FROM walker.status")
        .parse()
        .unwrap();
    assert!(gaps >= 1, "the release is recorded as a gap");
    assert!(c
        .query_one("SELECT last_gap FROM walker.status")
        .contains("walker.max_retained_wal"));
    assert_eq!(plugin(&c, "fx_c_block").0, "running", "still stuck");

    let stop = timed_stop(&c);
    println!(
        "pg_ctl stop -m fast with fx_c_block stuck in on_record (plugin_timeout 10min): {:.2} s",
        stop.as_secs_f64()
    );
    assert!(stop < Duration::from_secs(15), "stop took {stop:?}");
    assert_eq!(crash_lines(&c), 0, "the server never crashed");
}

#[test]
fn a_plugin_that_crashes_the_server_is_left_out_after_one_restart() {
    let c = Cluster::builder("nullderef")
        .plugins("rmgr_stats, fx_c_null")
        .fixtures_in_library_path(true)
        .conf("fx_c_null.at", "3000")
        .conf("wal_keep_size", KEEP)
        .conf("walker.snapshot_interval", "1s")
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    let t0 = Instant::now();
    // The crash restart kills this session too: its failure is expected.
    let _ = c.psql(
        "postgres",
        &format!("SET statement_timeout = '60s';\n{FIRST}"),
    );
    c.wait_until("the server crashed once", Duration::from_secs(60), || {
        crash_lines(&c) >= 1
    });
    let crashed_after = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    wait_accepting(&c);
    let back_after = t0.elapsed();
    println!(
        "fx_c_null crashed the server {:.2} s after the first write; accepting again after {:.2} s",
        crashed_after.as_secs_f64(),
        back_after.as_secs_f64()
    );
    let (state, err) = plugin(&c, "fx_c_null");
    assert_eq!(state, "failed", "{err}");
    assert!(
        err.starts_with("crashed (signal 11, SIGSEGV) in on_record at LSN "),
        "{err}"
    );
    assert!(err.contains("restart the server"), "{err}");
    // The LSN is that of a real record (pg_walinspect reads one starting there).
    let lsn = err
        .trim_start_matches("crashed (signal 11, SIGSEGV) in on_record at LSN ")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        c.query_one(&format!(
            "SELECT start_lsn = '{lsn}'::pg_lsn FROM pg_get_wal_record_info('{lsn}')"
        )),
        "t",
        "{lsn} is a record's start"
    );

    // Everything else walks on, exactly, and the server does not crash again.
    write(
        &c,
        FIRST
            .replace("TABLE t", "TABLE t2")
            .replace("INTO t ", "INTO t2 ")
            .as_str(),
    );
    write(&c, WORKLOAD);
    let bg = Background::start(&c);
    std::thread::sleep(Duration::from_secs(4));
    assert!(bg.stop() > 0);
    wait_caught_up(&c);
    assert_eq!(plugin(&c, "rmgr_stats").0, "running");
    let stats = assert_exact(&c);
    let through = c.query_one("SELECT through_lsn FROM walker.rmgr_stats_rmgrs LIMIT 1");
    assert_eq!(
        c.query_one(&format!(
            "SELECT '{through}'::pg_lsn > '{lsn}'::pg_lsn + 10000000"
        )),
        "t",
        "rmgr_stats' exact range reaches 10 MB past the bad record"
    );
    assert!(stats["Heap"].0 > 20_000, "{stats:?}");
    assert_eq!(crash_lines(&c), 1, "exactly one crash restart");
    assert_eq!(c.query_one("SELECT crash_restarts FROM walker.status"), "1");
    assert!(c.server_log().contains("fx_c_null\" crashed (signal 11"));

    let stop = timed_stop(&c);
    println!(
        "pg_ctl stop -m fast after the crash: {:.2} s",
        stop.as_secs_f64()
    );
    assert!(stop < Duration::from_secs(15), "stop took {stop:?}");
    assert_eq!(crash_lines(&c), 1);
}
