//! Snapshots know their timeline (issue 13, item 7): a snapshot taken on timeline 1
//! after the point a point-in-time recovery went back to is refused on the new
//! timeline, with the reason in walker.plugins.start; one taken before it is restored.

mod common;

use std::time::Duration;
use walker_tests::Cluster;

fn snapshot_lsn(c: &Cluster) -> String {
    c.query_one("SELECT snapshot_lsn FROM walker.plugins WHERE name = 'fx_c_counter'")
}

fn workload(c: &Cluster, table: &str) {
    c.exec(&format!(
        "CREATE TABLE {table} (id int, v text); INSERT INTO {table} SELECT g, 'x' FROM generate_series(1, 3000) g"
    ));
}

#[test]
fn a_snapshot_from_an_abandoned_timeline_is_refused_after_pitr() {
    let builder = |name: &str| {
        Cluster::builder(name)
            .plugins("fx_c_counter")
            .fixtures_in_library_path(true)
            .conf("walker.naptime", "50ms")
    };
    // Timeline 1: a first snapshot, then a cold base backup.
    let p = builder("tl_primary").start();
    p.exec("CREATE EXTENSION walker");
    workload(&p, "a");
    common::wait_caught_up(&p);
    p.stop();
    let backup = walker_tests::clusters_dir().join(format!("tl-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&backup);
    p.copy_files_to(&backup);
    p.start_again();
    let s1 = snapshot_lsn(&p);
    assert!(!s1.is_empty(), "a snapshot at shutdown");

    // More WAL on timeline 1; the recovery target lies in the middle of it; a
    // snapshot after the target.
    workload(&p, "b");
    let target = p.query_one("SELECT pg_current_wal_insert_lsn()");
    workload(&p, "c");
    common::wait_caught_up(&p);
    p.stop();
    let s2 = std::fs::read(p.data_dir().join("walker/fx_c_counter.snapshot")).unwrap();
    // The LSN in the file's header (bytes 40..48, little-endian; see snapshot.rs).
    let l = u64::from_le_bytes(s2[40..48].try_into().unwrap());
    let s2_lsn = format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff);
    p.start_again();
    assert_eq!(
        p.query_one(&format!("SELECT '{s2_lsn}'::pg_lsn > '{target}'::pg_lsn")),
        "t"
    );
    p.stop();

    // Point-in-time recovery of the backup to the target: timeline 2 branches there.
    let c = builder("tl_pitr")
        .copy_of_dir(&backup)
        .recover_to(&p, &target)
        .start();
    c.wait_until("promoted", Duration::from_secs(60), || {
        c.query_one("SELECT pg_is_in_recovery()") == "f"
    });
    assert_eq!(
        c.query_one("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)::int"),
        "2",
        "the recovered cluster is on timeline 2"
    );
    // Its own snapshot (timeline 1, before the branch point) is valid.
    let start = c.query_one("SELECT start FROM walker.plugins WHERE name = 'fx_c_counter'");
    assert!(start.starts_with("restored"), "{start}");
    // Timeline 2 writes past the abandoned snapshot's LSN, so only the timeline tells
    // the snapshot is not of this WAL.
    while c.query_one(&format!("SELECT pg_current_wal_lsn() > '{s2_lsn}'::pg_lsn")) != "t" {
        workload(
            &c,
            &format!("t{}", c.query_one("SELECT count(*) FROM pg_class")),
        );
    }
    common::wait_caught_up(&c);
    c.stop();
    // The abandoned timeline's snapshot is put in place (a file restored from another
    // copy of the data directory).
    let path = c.data_dir().join("walker/fx_c_counter.snapshot");
    std::fs::write(&path, &s2).unwrap();
    let mut chown = std::process::Command::new("chown");
    chown.arg("postgres:postgres").arg(&path);
    let _ = chown.status();
    c.start_again();
    c.wait_until("the worker started", Duration::from_secs(30), || {
        c.query_one("SELECT coalesce(start, '') FROM walker.plugins WHERE name = 'fx_c_counter'")
            .starts_with("started")
            || c.query_one(
                "SELECT coalesce(start, '') FROM walker.plugins WHERE name = 'fx_c_counter'",
            )
            .starts_with("restored")
    });
    let start = c.query_one("SELECT start FROM walker.plugins WHERE name = 'fx_c_counter'");
    assert!(start.starts_with("started empty"), "accepted: {start}");
    assert!(start.contains("abandoned timeline"), "{start}");
    assert!(start.contains(&s2_lsn), "{start}");
    assert!(start.contains("timeline 2"), "{start}");
    let _ = std::fs::remove_dir_all(&backup);
}
