//! The current host loads and runs plugins built against every released minor of
//! ABI 1: the C fixture `tests/fixtures/c-frozen/fx_abi.c` compiled against each
//! frozen header (`walker-abi/include/frozen/walker_plugin_1.N.h`) as fx_abi_1_N.
//! Each one's record counts equal pg_walinspect's over the range it covers, before
//! and after a restart (snapshots from 1.1 on), and what its minor added works:
//! the server version (1.1), its SQL function (1.2), backend events (1.3), runs of
//! records (1.5), the settings generation (1.6, checked by the fixture at each of its
//! backend events); and what its minor lacks stays off.

mod common;

use common::{wait_caught_up, WORKLOAD};
use walker_tests::Cluster;

const MINORS: [u32; 7] = [0, 1, 2, 3, 4, 5, 6];

fn name(minor: u32) -> String {
    format!("fx_abi_1_{minor}")
}

/// One fixture's view: records, bytes, first_lsn, last_end_lsn, server_version,
/// runs, probe_statements.
fn totals(c: &Cluster, minor: u32) -> Vec<String> {
    let rows = c.query(&format!(
        "SELECT records, bytes, first_lsn, last_end_lsn, server_version, runs, probe_statements FROM walker.{}_totals",
        name(minor)
    ));
    assert_eq!(rows.len(), 1, "{}: one row: {rows:?}", name(minor));
    rows.into_iter().next().unwrap()
}

/// The fixture's records and bytes equal PostgreSQL's own count over the range it
/// says it covers; returns its row.
fn assert_counts_exact(c: &Cluster, minor: u32) -> Vec<String> {
    let t = totals(c, minor);
    assert!(
        t[0].parse::<i64>().unwrap() > 0,
        "{} counted nothing: {t:?}",
        name(minor)
    );
    let theirs = c.query(&format!(
        "SELECT sum(count)::int8, sum(record_size + fpi_size)::int8 FROM pg_get_wal_stats('{}', '{}')",
        t[2], t[3]
    ));
    assert_eq!(
        (&t[0], &t[1]),
        (&theirs[0][0], &theirs[0][1]),
        "{} over {}..{}: (records, bytes) differ from pg_get_wal_stats",
        name(minor),
        t[2],
        t[3]
    );
    t
}

#[test]
fn plugins_built_against_every_released_minor_load_and_run() {
    let plugins: Vec<String> = MINORS.iter().map(|&m| name(m)).collect();
    let c = Cluster::builder("frozenabi")
        .plugins(&plugins.join(", "))
        // pg_walinspect reads the whole range the counts cover, across the restart:
        // keep the WAL the slot would let go.
        .conf("wal_keep_size", "1GB")
        .fixtures_in_library_path(true)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec(WORKLOAD);
    // Backend events: three statements at nesting level 0 from the probe client.
    c.exec("SET application_name = 'fx_abi_probe';\nSELECT 1;\nSELECT 2;\nSELECT 3;");
    wait_caught_up(&c);

    let server_version = c.query_one("SELECT current_setting('server_version_num')");
    let mut before = Vec::new();
    for minor in MINORS {
        let p = c.query(&format!(
            "SELECT state, abi_version, errors, coalesce(last_error, '') FROM walker.plugins WHERE name = '{}'",
            name(minor)
        ));
        assert_eq!(
            p[0],
            ["running", &format!("1.{minor}"), "0", ""],
            "{} in walker.plugins",
            name(minor)
        );
        let t = assert_counts_exact(&c, minor);
        let records: i64 = t[0].parse().unwrap();
        // 1.1: the server version; 0 (never asked) before.
        let expected_version = if minor >= 1 {
            server_version.as_str()
        } else {
            "0"
        };
        assert_eq!(t[4], expected_version, "{} server_version", name(minor));
        // 1.5: runs of records in one call each; older plugins get one call per record.
        let runs: i64 = t[5].parse().unwrap();
        if minor >= 5 {
            assert!(
                runs > 0 && runs < records,
                "{}: {runs} runs for {records} records",
                name(minor)
            );
        } else {
            assert_eq!(runs, 0, "{} has no on_records", name(minor));
        }
        // 1.3: backend events.
        let expected_probe = if minor >= 3 { "3" } else { "0" };
        assert_eq!(t[6], expected_probe, "{} probe statements", name(minor));
        // 1.2: the SQL function, exactly where the minor has it.
        let function = c.query_one(&format!(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'walker' AND p.proname = '{}_totals'",
            name(minor)
        ));
        if minor >= 2 {
            assert_eq!(function, "1", "{} declares one function", name(minor));
            let n: i64 = c
                .query_one(&format!(
                    "SELECT (walker.{}_totals()->>'records')::int8",
                    name(minor)
                ))
                .parse()
                .unwrap();
            assert!(
                n >= records,
                "{}_totals() says {n}, the view said {records} before",
                name(minor)
            );
        } else {
            assert_eq!(function, "0", "{} has no functions", name(minor));
        }
        before.push(t);
    }

    // Snapshots (1.1 on): after a restart the state goes on from where it was, and
    // the counts stay exact across the restart.
    c.restart();
    c.exec("CREATE TABLE after_restart (a int PRIMARY KEY); INSERT INTO after_restart SELECT generate_series(1, 5000); UPDATE after_restart SET a = -a WHERE a % 4 = 0;");
    wait_caught_up(&c);
    for minor in MINORS {
        let t = assert_counts_exact(&c, minor);
        let old = &before[minor as usize];
        let snapshots = c.query_one(&format!(
            "SELECT snapshots_written > 0 FROM walker.plugins WHERE name = '{}'",
            name(minor)
        ));
        if minor >= 1 {
            assert_eq!(
                t[2],
                old[2],
                "{} restored its snapshot: same first_lsn",
                name(minor)
            );
            assert!(
                t[0].parse::<i64>().unwrap() > old[0].parse::<i64>().unwrap(),
                "{} went on counting: {t:?} after {old:?}",
                name(minor)
            );
            assert_eq!(snapshots, "t", "{} wrote snapshots", name(minor));
        } else {
            assert_eq!(snapshots, "f", "1.0 has no snapshots");
        }
    }
}
