//! Durability against real clusters: plugin state snapshots across crashes (immediate
//! shutdowns, a killed worker), refused snapshot files, a streaming standby and its
//! promotion. Every check compares rmgr-stats with pg_walinspect over the plugin's
//! whole range: nothing missed, nothing counted twice.

mod common;

use common::{
    assert_exact, assert_exact_against, plugin_stats, wait_accepting, wait_caught_up, wait_reaches,
    Background, WORKLOAD,
};
use std::time::Duration;
use walker_tests::Cluster;

/// WAL the server keeps regardless of walker's slot, so that pg_walinspect can still
/// read the whole range the plugin counted when the test compares.
const KEEP: &str = "4GB";

/// Waits until every plugin with snapshots has one at or after the current end of WAL.
fn wait_snapshot(c: &Cluster) {
    wait_caught_up(c);
    c.exec("CHECKPOINT");
    let target = c.query_one("SELECT pg_current_wal_flush_lsn()");
    c.wait_until("the plugins save a snapshot after the checkpoint", Duration::from_secs(60), || {
        c.query_one(&format!(
            "SELECT bool_and(snapshot_lsn >= '{target}'::pg_lsn) FROM walker.plugins WHERE snapshots AND state = 'running'"
        )) == "t"
    });
}

/// A cluster with rmgr-stats saving a snapshot every second, after `workload`,
/// with a first snapshot written; also the start of the plugin's counts.
fn snapshotting_cluster(name: &str, workload: Option<&str>) -> (Cluster, String) {
    let c = Cluster::builder(name)
        .plugins("rmgr_stats")
        .conf("walker.snapshot_interval", "1s")
        .conf("wal_keep_size", KEEP)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    if let Some(w) = workload {
        c.exec(w);
    }
    wait_snapshot(&c);
    let (since, _, _) = plugin_stats(&c);
    (c, since)
}

fn plugin_row(c: &Cluster, name: &str, cols: &str) -> Vec<String> {
    c.query(&format!(
        "SELECT {cols} FROM walker.plugins WHERE name = '{name}'"
    ))
    .into_iter()
    .next()
    .unwrap_or_default()
}

#[test]
fn immediate_shutdowns_lose_and_repeat_nothing() {
    let (c, since) = snapshotting_cluster("crash", Some(WORKLOAD));

    // Crash at different points of a running workload; each restart restores the
    // last snapshot and replays the WAL after it.
    for (round, delay_ms) in [300u64, 1200, 2500].into_iter().enumerate() {
        let bg = Background::start(&c);
        std::thread::sleep(Duration::from_millis(delay_ms));
        c.crash();
        bg.stop();
        c.start_again();
        wait_caught_up(&c);
        let row = plugin_row(&c, "rmgr_stats", "state, started_empty, start");
        assert_eq!(row[..2], ["running", "f"], "round {round}: {row:?}");
        assert!(
            row[2].starts_with("restored the snapshot"),
            "round {round}: {row:?}"
        );
        assert_exact(&c);
    }
    let (since_after, _, stats) = plugin_stats(&c);
    assert_eq!(
        since_after, since,
        "the counts span every crash since the first start"
    );
    assert!(
        stats["Heap"].0 > 100_000,
        "the crashes interrupted real work: {stats:?}"
    );
    assert!(
        c.server_log()
            .contains("terminating connection because of unexpected SIGQUIT signal")
            || c.server_log().contains("database system was interrupted"),
        "the shutdowns were immediate"
    );
}

#[test]
fn a_killed_worker_loses_and_repeats_nothing() {
    let (c, since) = snapshotting_cluster("sigkill", None);
    let bg = Background::start(&c);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = c.query_one("SELECT pid FROM walker.status");
    c.signal(&pid, "KILL");
    // The postmaster treats the dead worker as a crash: every backend restarts and
    // shared memory is created anew.
    std::thread::sleep(Duration::from_millis(500));
    wait_accepting(&c);
    std::thread::sleep(Duration::from_millis(1500));
    bg.stop();
    wait_caught_up(&c);
    let st = c.query(
        "SELECT crash_restarts, pid <> $$PID$$::int FROM walker.status"
            .replace("$$PID$$", &pid)
            .as_str(),
    );
    assert_eq!(st[0], ["1", "t"], "one crash restart, a new worker");
    let row = plugin_row(&c, "rmgr_stats", "started_empty, start");
    assert!(
        row[0] == "f" && row[1].starts_with("restored the snapshot"),
        "{row:?}"
    );
    assert_eq!(plugin_stats(&c).0, since);
    assert_exact(&c);
}

#[test]
fn damaged_snapshots_are_refused_and_the_plugin_starts_empty() {
    let c = Cluster::builder("badsnap")
        .plugins("rmgr_stats, fx_c_counter")
        .fixtures_in_library_path(true)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec("CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 5000);");
    wait_snapshot(&c);
    let dir = c.data_dir().join("walker");
    let ours = dir.join("rmgr_stats.snapshot");
    let other = dir.join("fx_c_counter.snapshot");

    type Damage<'a> = &'a dyn Fn(&mut Vec<u8>);
    let cases: [(&str, Damage, &str); 3] = [
        (
            "bit flip",
            &|b: &mut Vec<u8>| {
                let i = b.len() - 10;
                b[i] ^= 0x04;
            },
            "damaged (checksum",
        ),
        (
            "truncated",
            &|b: &mut Vec<u8>| b.truncate(b.len() / 2),
            "truncated",
        ),
        (
            "another plugin's",
            &|b: &mut Vec<u8>| *b = std::fs::read(&other).unwrap(),
            "belongs to plugin \"fx_c_counter\"",
        ),
    ];
    for (what, damage, needle) in cases {
        c.stop(); // a clean stop writes both snapshots
        let mut bytes = std::fs::read(&ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
        damage(&mut bytes);
        std::fs::write(&ours, &bytes).unwrap();
        c.start_again();
        c.exec("INSERT INTO t SELECT generate_series(1, 1000);");
        wait_caught_up(&c);
        let row = plugin_row(&c, "rmgr_stats", "state, started_empty, start, last_error");
        assert_eq!(row[..2], ["running", "t"], "{what}: {row:?}");
        assert!(
            row[2].contains("refused") && row[2].contains(needle) && row[2].contains(".refused"),
            "{what}: {row:?}"
        );
        assert_eq!(row[2], row[3], "{what}: the refusal is the last error too");
        assert!(
            dir.join("rmgr_stats.snapshot.refused").exists(),
            "{what}: the refused file is kept"
        );
        // The C plugin's snapshot was fine: restored.
        let cc = plugin_row(&c, "fx_c_counter", "started_empty, start");
        assert!(
            cc[0] == "f" && cc[1].starts_with("restored"),
            "{what}: {cc:?}"
        );
        // The plugin counts exactly from its new start, and the server is up.
        assert_exact(&c);
        assert!(
            c.server_log().contains(needle),
            "{what}: the refusal is logged"
        );
    }
}

#[test]
fn a_standby_walks_the_replayed_wal_and_carries_on_after_promotion() {
    // wal_keep_size: the primary keeps the WAL the standby's walker counted, so
    // pg_walinspect on the primary can read the same range (its own walker's slot
    // moves on and the workload's CHECKPOINT would otherwise recycle it).
    let primary = Cluster::builder("primary")
        .plugins("rmgr_stats")
        .conf("wal_keep_size", KEEP)
        .start();
    primary.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    let standby = Cluster::builder("standby")
        .plugins("rmgr_stats")
        .standby_of(&primary)
        .start();
    primary.exec(WORKLOAD);
    // Wait until the standby replayed a record written now, and its walker passed it.
    wait_reaches(
        &primary,
        &standby,
        "the standby's walker reaches the primary's last record",
        "SELECT processed_lsn FROM walker.status",
    );
    assert_eq!(standby.query_one("SELECT pg_is_in_recovery()"), "t");
    // The primary's snapshot came with the base backup; the standby's new slot cannot
    // vouch for the WAL after it, so the standby counts from its own start.
    let row = plugin_row(&standby, "rmgr_stats", "state, start");
    assert_eq!(row[0], "running");
    let stats = assert_exact_against(&standby, &primary);
    assert!(
        stats.get("Heap").is_some_and(|s| s.0 > 1000),
        "the standby saw the workload: {stats:?}"
    );

    standby.promote();
    assert_eq!(standby.query_one("SELECT pg_is_in_recovery()"), "f");
    standby.exec("CREATE TABLE after_promotion (a int); INSERT INTO after_promotion SELECT generate_series(1, 10000);");
    wait_caught_up(&standby);
    let timeline = standby.query_one("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)");
    assert_eq!(timeline, "00000002", "promoted onto a new timeline");
    // Across the timeline switch: exact against the promoted server's own WAL.
    let (since, through, _) = plugin_stats(&standby);
    assert!(since < through);
    assert_exact(&standby);
}

#[test]
fn a_terminated_worker_restarts_by_itself_and_carries_on() {
    let (c, since) = snapshotting_cluster("sigterm", None);
    let bg = Background::start(&c);
    std::thread::sleep(Duration::from_millis(1000));
    let pid = c.query_one("SELECT pid FROM walker.status");
    // SIGTERM alone is not a crash: the worker saves snapshots, exits, and the
    // postmaster starts it again after its restart interval; shared memory stays.
    c.signal(&pid, "TERM");
    c.wait_until("the worker restarts", Duration::from_secs(30), || {
        c.query_one("SELECT starts >= 2 AND pid IS NOT NULL FROM walker.status") == "t"
    });
    std::thread::sleep(Duration::from_millis(1000));
    bg.stop();
    wait_caught_up(&c);
    assert_eq!(
        c.query("SELECT starts, crash_restarts FROM walker.status")[0],
        ["2", "0"]
    );
    let row = plugin_row(&c, "rmgr_stats", "started_empty, start");
    assert!(
        row[0] == "f" && row[1].starts_with("restored the snapshot"),
        "{row:?}"
    );
    assert_eq!(plugin_stats(&c).0, since);
    assert_exact(&c);
}
