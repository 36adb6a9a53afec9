//! walker's slot is bounded and removable, and bad WAL is loud (issue 13, items 5, 6).

mod common;

use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// Total bytes and oldest segment of pg_wal, as the server lists it.
fn waldir(c: &Cluster) -> (i64, String) {
    let r = c.query(
        "SELECT sum(size)::int8, min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'",
    );
    (r[0][0].parse().unwrap(), r[0][1].clone())
}

/// Writes `n` WAL segments' worth of switches.
fn write_segments(c: &Cluster, n: usize) {
    for i in 0..n {
        c.exec(&format!(
            "INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g; SELECT pg_switch_wal(); -- {i}"
        ));
    }
}

#[test]
fn drop_slot_removes_the_slot_and_the_snapshots_and_pg_wal_shrinks() {
    let c = Cluster::builder("slot_drop")
        .plugins("rmgr_stats,fx_c_counter")
        .fixtures_in_library_path(true)
        .conf("walker.naptime", "50ms")
        .conf("walker.max_retained_wal", "1GB")
        .conf("min_wal_size", "32MB")
        .conf("max_wal_size", "64MB")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE filler (id int, v text)");
    common::wait_caught_up(&c);
    // The bound is shown next to what is retained, in the view and the metrics.
    assert_eq!(
        c.query_one("SELECT max_retained_bytes FROM walker.status"),
        (1024i64 << 20).to_string()
    );
    let prom = c.query_one("SELECT walker.prometheus()");
    assert!(
        prom.contains(&format!("walker_max_retained_bytes {}", 1024i64 << 20)),
        "{prom}"
    );
    // A snapshot exists (fx_c_counter keeps state).
    c.exec("CHECKPOINT");
    c.wait_until("a snapshot was written", Duration::from_secs(30), || {
        c.query_one("SELECT snapshots_written > 0 FROM walker.plugins WHERE name = 'fx_c_counter'")
            == "t"
    });

    // Paused, walker holds the WAL written meanwhile.
    c.set_conf("walker.enabled", "off");
    c.reload();
    c.wait_until("walker paused", Duration::from_secs(10), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    let slot_lsn =
        c.query_one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'walker'");
    write_segments(&c, 8);
    c.exec("CHECKPOINT");
    let (held_bytes, held_oldest) = waldir(&c);
    let slot_seg = c.query_one(&format!("SELECT pg_walfile_name('{slot_lsn}')"));
    assert!(held_oldest <= slot_seg, "{held_oldest} > {slot_seg}");
    let retained: i64 = c
        .query_one("SELECT retained_bytes FROM walker.status")
        .parse()
        .unwrap();
    assert!(retained > 7 * (16 << 20), "retained {retained}");

    // A non-admin may not drop it.
    c.exec("CREATE ROLE mallory LOGIN");
    let e = c
        .psql_as("mallory", "postgres", "SELECT walker.drop_slot()")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");

    let t = Instant::now();
    let out = c.query_one("SELECT walker.drop_slot()");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(out.contains("dropped replication slot \"walker\""), "{out}");
    assert!(out.contains("removed"), "{out}");
    assert_eq!(
        c.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walker'"),
        "0"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM pg_ls_dir('.') AS f WHERE f = 'walker'"),
        "0",
        "the snapshot directory is gone"
    );
    c.exec("CHECKPOINT");
    c.exec("SELECT pg_switch_wal()");
    c.exec("CHECKPOINT");
    let (bytes, oldest) = waldir(&c);
    assert!(oldest > slot_seg, "pg_wal still starts at {oldest}");
    assert!(
        bytes < held_bytes,
        "pg_wal did not shrink: {bytes} >= {held_bytes}"
    );
    eprintln!(
        "pg_wal: {held_bytes} bytes from {held_oldest} before, {bytes} bytes from {oldest} after"
    );
    // The worker does not create it again while the server runs.
    std::thread::sleep(Duration::from_secs(1));
    c.set_conf("walker.enabled", "on");
    c.reload();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        c.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walker'"),
        "0"
    );
    let st = c.query("SELECT state, last_error FROM walker.status");
    assert_eq!(st[0][0], "stopped");
    assert!(st[0][1].contains("walker.drop_slot()"), "{:?}", st);

    // DROP EXTENSION says what remains: nothing of the slot now.
    let stderr = drop_extension(&c);
    assert!(
        stderr.contains("DROP EXTENSION leaves no replication slot and no snapshot directory"),
        "{stderr}"
    );
}

/// Runs DROP EXTENSION walker through psql; its stderr (the notices).
fn drop_extension(c: &Cluster) -> String {
    let r = walker_tests::client_command("psql", c.port(), "postgres")
        .args(["-X", "-d", "postgres", "-c", "DROP EXTENSION walker"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "{stderr}");
    stderr
}

#[test]
fn drop_extension_names_the_slot_it_leaves() {
    let c = Cluster::builder("slot_drop_ext")
        .plugins("rmgr_stats")
        .conf("walker.naptime", "50ms")
        .start();
    c.exec("CREATE EXTENSION walker");
    common::wait_caught_up(&c);
    let stderr = drop_extension(&c);
    assert!(
        stderr.contains("DROP EXTENSION leaves replication slot \"walker\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("pg_drop_replication_slot('walker')"),
        "{stderr}"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walker'"),
        "1",
        "the notice is right: the slot remains"
    );
}

/// Retention stays bounded while the worker does not walk (paused).
#[test]
fn retention_is_enforced_while_paused() {
    let c = Cluster::builder("slot_paused_bound")
        .plugins("rmgr_stats")
        .conf("walker.naptime", "50ms")
        .conf("walker.max_retained_wal", "48MB")
        .conf("min_wal_size", "32MB")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE filler (id int, v text)");
    c.set_conf("walker.enabled", "off");
    c.reload();
    c.wait_until("walker paused", Duration::from_secs(10), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    write_segments(&c, 10);
    c.wait_until("retention released past the bound", Duration::from_secs(20), || {
        let held: i64 = c
            .query_one("SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = 'walker'")
            .parse::<f64>()
            .unwrap() as i64;
        held <= 48 << 20
    });
    assert!(c.query_one("SELECT gaps FROM walker.status") != "0");
}

/// Retention stays bounded while a plugin is stuck in `on_record` and the reader
/// waits for it (before: the worker blocked in the hand-over and nothing moved the
/// slot, so pg_wal grew without bound).
#[test]
fn retention_is_enforced_while_a_plugin_is_stuck() {
    let c = Cluster::builder("slot_stuck_bound")
        .plugins("rmgr_stats,fx_lock_sleeper")
        .fixtures_in_library_path(true)
        .conf("walker.naptime", "50ms")
        .conf("walker.max_retained_wal", "64MB")
        .conf("fx_lock_sleeper.hold_at", "100")
        // The plugin stays stuck (not cut off by the stall timeout).
        .conf("walker.plugin_timeout", "10min")
        .conf("min_wal_size", "32MB")
        .conf("max_wal_size", "64MB")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE filler (id int, v text)");
    write_segments(&c, 12);
    c.wait_until("retention released past the bound", Duration::from_secs(30), || {
        let held: f64 = c
            .query_one("SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = 'walker'")
            .parse()
            .unwrap();
        held <= (64 << 20) as f64 && c.query_one("SELECT gaps > 0 FROM walker.status") == "t"
    });
    // The next checkpoint removes what the slot released (twice: the first one's
    // own WAL may still be needed by the second's redo).
    c.exec("CHECKPOINT");
    c.exec("SELECT pg_switch_wal()");
    c.exec("CHECKPOINT");
    let (bytes, _) = waldir(&c);
    eprintln!("pg_wal while a plugin is stuck: {bytes} bytes");
    // Bound + the segments max_wal_size keeps + one in progress.
    assert!(bytes <= (64 + 64 + 32) << 20, "pg_wal holds {bytes} bytes");
}

/// Corrupt WAL ahead of walker (written while it was paused): the reader's message
/// and LSN are in walker.status, the log repeats it every retry interval, and the
/// metrics count it.
#[test]
fn invalid_wal_is_reported_on_every_retry() {
    let c = Cluster::builder("slot_bad_wal")
        .plugins("rmgr_stats")
        .conf("walker.naptime", "50ms")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE EXTENSION pg_walinspect");
    c.exec("CREATE TABLE t (id int, v text)");
    common::wait_caught_up(&c);
    c.set_conf("walker.enabled", "off");
    c.reload();
    c.wait_until("walker paused", Duration::from_secs(10), || {
        c.query_one("SELECT state FROM walker.status") == "paused"
    });
    let from = c.query_one("SELECT processed_lsn FROM walker.status");
    for i in 0..20 {
        c.exec(&format!("INSERT INTO t VALUES ({i}, 'row {i}')"));
    }
    c.exec("SELECT pg_switch_wal()");
    // The tenth record after walker's position, found by the server's own reader.
    let rec = c.query(&format!(
        "SELECT start_lsn, (pg_walfile_name_offset(start_lsn)).file_name, (pg_walfile_name_offset(start_lsn)).file_offset
         FROM pg_get_wal_records_info('{from}', pg_current_wal_flush_lsn()) ORDER BY start_lsn OFFSET 10 LIMIT 1"
    ));
    let (lsn, file, offset) = (&rec[0][0], &rec[0][1], rec[0][2].parse::<u64>().unwrap());
    // Overwrite the record's CRC (bytes 20..24 of its header); the page header is
    // untouched, so the reader meets an invalid record, not a missing page.
    let path = c.data_dir().join("pg_wal").join(file);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(offset + 20)).unwrap();
        f.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
        f.sync_all().unwrap();
    }
    c.set_conf("walker.enabled", "on");
    c.reload();
    c.wait_until(
        "walker.status reports the invalid record",
        Duration::from_secs(20),
        || c.query_one("SELECT invalid_wal_lsn IS NOT NULL FROM walker.status") == "t",
    );
    // The reader stopped right before the record (its start, or the end of the one
    // before it when a page header lies between).
    assert_eq!(
        c.query_one(&format!(
            "SELECT '{lsn}'::pg_lsn - invalid_wal_lsn BETWEEN 0 AND 40 FROM walker.status"
        )),
        "t"
    );
    let err = c.query_one("SELECT invalid_wal_error FROM walker.status");
    assert!(err.contains(&format!("in record at {lsn}")), "{err}");
    assert!(err.contains("checksum"), "the reader's own message: {err}");
    // Repeated in the log on every retry interval (5 s), and counted.
    c.wait_until("three reports in the log", Duration::from_secs(30), || {
        c.server_log()
            .matches(&format!("in record at {lsn}"))
            .count()
            >= 3
    });
    let reports: i64 = c
        .query_one("SELECT invalid_wal_reports FROM walker.status")
        .parse()
        .unwrap();
    assert!(reports >= 3, "{reports}");
    let prom = c.query_one("SELECT walker.prometheus()");
    let line = prom
        .lines()
        .find(|l| l.starts_with("walker_invalid_wal_total "))
        .unwrap_or_else(|| panic!("{prom}"));
    assert!(line.split(' ').nth(1).unwrap().parse::<f64>().unwrap() >= 3.0);
    // walker does not walk past it on its own: processed stays before the record.
    assert_eq!(
        c.query_one(&format!(
            "SELECT processed_lsn <= '{lsn}'::pg_lsn FROM walker.status"
        )),
        "t"
    );
}
