//! Captures the WAL records of a small, known workload from the running server (the
//! `fx_capture` C fixture plugin writes them as the host hands them to plugins) and
//! checks them into `walker-decode/tests/fixtures/pg<major>/records.txt`, with the
//! server version, the relations and the transaction ids the decoder's unit tests
//! (`walker-decode/tests/captured.rs`) compare with.
//!
//! Not part of the ordinary run: `./walker test --pg N --test capture -- --ignored`
//! rewrites the fixture of major N.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use walker_tests::Cluster;

/// Runs `sql` in one session and returns the single value it prints last.
fn one(c: &Cluster, sql: &str) -> String {
    let out = c.psql("postgres", sql).unwrap_or_else(|e| panic!("{e}"));
    out.lines().last().unwrap_or_default().trim().to_string()
}

#[test]
#[ignore = "rewrites walker-decode/tests/fixtures; run with --ignored"]
fn capture_records_of_a_known_workload() {
    let c = Cluster::builder("capture")
        .plugins("fx_capture")
        .fixtures_in_library_path(true)
        .autovacuum(false)
        .conf("max_prepared_transactions", "2")
        .start();
    let file = c.data_dir().join("captured.txt");
    c.set_conf("fx_capture.path", &file.display().to_string());
    c.restart();
    let version = common::server_version_num(&c);
    let major = version / 10_000;
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE t (id int, pad text) WITH (autovacuum_enabled = off)");
    let rel = |name: &str| {
        c.query_one(&format!(
            "SELECT coalesce(nullif(reltablespace, 0), (SELECT dattablespace FROM pg_database WHERE datname = current_database())) || '/' || (SELECT oid FROM pg_database WHERE datname = current_database()) || '/' || pg_relation_filenode(oid) FROM pg_class WHERE relname = '{name}'"
        ))
    };
    let t = rel("t");
    // t's TOAST table and its index (dropped with t).
    let toast =
        c.query_one("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 't'");
    let toast_name = toast.rsplit('.').next().unwrap().to_string();
    let t_toast = rel(&toast_name);
    let t_toast_index = rel(&format!("{toast_name}_index"));
    let start = c.query_one("SELECT pg_current_wal_insert_lsn()");
    let xact = |sql: &str| {
        one(
            &c,
            &format!("BEGIN; {sql}; SELECT pg_current_xact_id(); COMMIT;"),
        )
    };
    let insert = xact("INSERT INTO t SELECT g, 'row' FROM generate_series(1, 10) g");
    let delete = xact("DELETE FROM t WHERE id IN (2, 3)");
    let update = xact("UPDATE t SET pad = 'upd' WHERE id = 4");
    let aborted = one(
        &c,
        "BEGIN; DELETE FROM t WHERE id = 5; SELECT pg_current_xact_id(); ROLLBACK;",
    );
    let copy = xact("COPY t (id) FROM PROGRAM 'seq 21 23'");
    c.exec("VACUUM t");
    c.exec("CHECKPOINT");
    let delete2 = xact("DELETE FROM t WHERE id = 6");
    // The next VACUUM is the page's first change after this checkpoint: its record
    // carries the page image (or, with data checksums, a hint-bit image precedes it).
    c.exec("CHECKPOINT");
    c.exec("VACUUM t");
    let drop = xact("DROP TABLE t");
    let prepared_p = one(
        &c,
        "BEGIN; CREATE TABLE p (a int); SELECT pg_current_xact_id() || ' ' || (SELECT dattablespace FROM pg_database WHERE datname = 'postgres') || '/' || (SELECT oid FROM pg_database WHERE datname = 'postgres') || '/' || pg_relation_filenode('p'); PREPARE TRANSACTION 'cap';",
    );
    let (prepared, p) = prepared_p.split_once(' ').expect("xid and relation");
    let (prepared, p) = (prepared.to_string(), p.to_string());
    c.exec("ROLLBACK PREPARED 'cap'");
    c.exec("CHECKPOINT");
    let end = c.query_one("SELECT pg_current_wal_insert_lsn()");
    common::wait_reaches(
        &c,
        &c,
        "walker reads the workload",
        "SELECT processed_lsn FROM walker.status",
    );

    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    let (from, to) = (lsn(&start), lsn(&end));
    let xids: BTreeSet<&str> = [
        &insert, &delete, &update, &aborted, &copy, &delete2, &drop, &prepared,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    let t_file = t.rsplit('/').next().unwrap().to_string();
    let captured = std::fs::read_to_string(&file).expect("fx_capture wrote its file");
    let mut kept = String::new();
    for line in captured.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let at = u64::from_str_radix(f[0], 16).unwrap();
        if at < from || at >= to {
            continue;
        }
        let (rmid, info) = (f[1], u8::from_str_radix(f[2], 16).unwrap());
        let ours = match rmid {
            "0" => true,
            // Transaction ends of the workload's transactions, and the prepared
            // one's rollback (written by another transaction).
            "1" => xids.contains(f[3]) || info & 0x70 == 0x40,
            _ => f[6..].iter().any(|b| {
                b.split(':').nth(2).and_then(|r| r.rsplit('/').next()) == Some(t_file.as_str())
            }),
        };
        if ours {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let mut head = String::new();
    writeln!(head, "# captured by tests/harness/tests/capture.rs (fx_capture) from PostgreSQL server_version_num {version}").unwrap();
    writeln!(head, "server_version_num {version}").unwrap();
    writeln!(head, "rel t {t}").unwrap();
    writeln!(head, "rel t_toast {t_toast}").unwrap();
    writeln!(head, "rel t_toast_index {t_toast_index}").unwrap();
    writeln!(head, "rel p {p}").unwrap();
    for (name, x) in [
        ("insert", &insert),
        ("delete", &delete),
        ("update", &update),
        ("aborted", &aborted),
        ("copy", &copy),
        ("delete2", &delete2),
        ("drop", &drop),
        ("prepared", &prepared),
    ] {
        writeln!(head, "xid {name} {x}").unwrap();
    }
    let dir = walker_tests::workspace_dir()
        .join("walker-decode/tests/fixtures")
        .join(format!("pg{major}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("records.txt"), head + &kept).unwrap();
    assert!(
        kept.lines().count() > 20,
        "the workload's records were captured:\n{kept}"
    );
}
