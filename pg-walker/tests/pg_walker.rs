//! `pg_walker walk` and `show` against a real cluster (issue 19 item 2): the same LSN
//! range walked by the in-server walker and by pg_walker over a copy of the cluster's
//! pg_wal gives equal view rows (rmgr_stats and garbagemap, compared with the server's
//! SQL views); a walk in two halves gives the same totals as one walk, equal to
//! `pg_waldump --stats`; a plugin that dereferences NULL kills pg_walker only, while
//! the server keeps answering.

#[path = "../../tests/harness/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use walker_tests::Cluster;

/// Columns left out of the comparison: garbagemap's `heap_bytes` is the memory its
/// map takes in the process that holds it (allocation history, not WAL).
const NOT_FROM_WAL: &[&str] = &["heap_bytes"];

/// The views compared with the server's (none has floating-point columns, whose text
/// forms differ between Rust and PostgreSQL's float8out).
const VIEWS: &[(&str, &str)] = &[
    ("rmgr_stats", "rmgrs"),
    ("garbagemap", "relations"),
    ("garbagemap", "heatmap"),
    ("garbagemap", "status"),
];

type Rows = Vec<Vec<String>>;

fn pg_walker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pg_walker"))
        .args(args)
        .output()
        .expect("run pg_walker")
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "pg_walker {what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server's library directory (where `./walker test` installed the plugins).
fn pkglibdir() -> String {
    let out = Command::new(walker_tests::pg_bindir().join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .expect("run pg_config");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A scratch directory under the clusters' directory, empty.
fn scratch(name: &str) -> PathBuf {
    let d = walker_tests::clusters_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies the segment files and history files of `pg_wal` into `to`.
fn copy_wal(pg_wal: &Path, to: &Path) {
    for e in std::fs::read_dir(pg_wal).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Parses CSV as pg_walker writes it (quoted fields may hold commas and quotes).
fn parse_csv(text: &str) -> Rows {
    let mut rows = Vec::new();
    for line in text.lines() {
        let (mut row, mut field, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => row.push(std::mem::take(&mut field)),
                (c, _) => field.push(c),
            }
        }
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The plugin's columns of a view as the server's SQL view gives them (the SQL view
/// may add columns of its own, such as relation names from the catalogs), sorted.
fn server_rows(c: &Cluster, plugin: &str, view: &str) -> Rows {
    let columns = c.query_one(&format!(
        "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal) FROM walker.plugin_view_columns() WHERE plugin = '{plugin}' AND view = '{view}' AND column_name <> ALL ('{{{}}}')",
        NOT_FROM_WAL.join(",")
    ));
    let mut rows = c.query(&format!("SELECT {columns} FROM walker.{plugin}_{view}"));
    rows.sort();
    rows
}

/// A view's rows as `pg_walker show` gives them from `state` (without the header
/// line), sorted.
fn walker_rows(state: &Path, plugin: &str, view: &str) -> Rows {
    let mut rows = parse_csv(&ok(
        &format!("show {plugin} {view}"),
        pg_walker(&[
            "show",
            plugin,
            view,
            "--format",
            "csv",
            "--state-dir",
            state.to_str().unwrap(),
            "--plugin-dir",
            &pkglibdir(),
        ]),
    ));
    let header = rows.remove(0);
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !NOT_FROM_WAL.contains(&header[i].as_str()))
        .collect();
    let mut rows: Rows = rows
        .into_iter()
        .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
        .collect();
    rows.sort();
    rows
}

fn walk(wal: &Path, state: &Path, plugins: &str, range: &[&str]) {
    let mut args = vec![
        "walk",
        "--wal-dir",
        wal.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--plugins",
        plugins,
    ];
    let dir = pkglibdir();
    args.extend(["--plugin-dir", &dir]);
    args.extend(range);
    ok("walk", pg_walker(&args));
}

/// Every compared view of the server, read while walker stands still (the same
/// processed position before and after, twice in a row).
fn settled_server_views(c: &Cluster) -> BTreeMap<String, Rows> {
    let mut last: Option<(String, BTreeMap<String, Rows>)> = None;
    let mut result = None;
    c.wait_until(
        "walker's views stand still",
        Duration::from_secs(120),
        || {
            let before = c.query_one("SELECT processed_lsn FROM walker.status");
            let views: BTreeMap<String, Rows> = VIEWS
                .iter()
                .map(|(p, v)| (format!("{p}.{v}"), server_rows(c, p, v)))
                .collect();
            let after = c.query_one("SELECT processed_lsn FROM walker.status");
            let now = (after.clone(), views);
            let same = before == after && last.as_ref() == Some(&now);
            last = Some(now);
            if same {
                result = last.clone();
            } else {
                std::thread::sleep(Duration::from_millis(500));
            }
            same
        },
    );
    result.expect("settled").1
}

/// rmgr_stats' rows as (rmgr name -> records, record bytes, FPI bytes).
fn rmgr_totals(rows: &Rows) -> common::Stats {
    rows.iter()
        .map(|r| {
            (
                r[1].clone(),
                (
                    r[2].parse().unwrap(),
                    r[3].parse().unwrap(),
                    r[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn pg_walker_gives_the_servers_rows_resumes_and_crashes_alone() {
    let c = Cluster::builder("pg_walker")
        .plugins("rmgr_stats, garbagemap")
        .autovacuum(false)
        .conf("wal_keep_size", "4GB")
        .conf("max_wal_size", "4GB")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec(common::WORKLOAD);
    common::wait_caught_up(&c);
    let server = settled_server_views(&c);
    let rmgrs = &server["rmgr_stats.rmgrs"];
    assert!(
        rmgrs.iter().any(|r| r[1] == "Heap"),
        "the workload's Heap records: {rmgrs:?}"
    );
    let (since, through) = (rmgrs[0][6].clone(), rmgrs[0][7].clone());
    assert!(
        !server["garbagemap.relations"].is_empty(),
        "garbagemap saw relations"
    );

    let wal = scratch("pgw-wal");
    copy_wal(&c.data_dir().join("pg_wal"), &wal);

    // 1. The range walker's slot started at, walked by pg_walker: the same rows.
    let full = scratch("pgw-full");
    walk(
        &wal,
        &full,
        "rmgr_stats,garbagemap",
        &["--start", &since, "--end", &through],
    );
    for (p, v) in VIEWS {
        assert_eq!(
            walker_rows(&full, p, v),
            server[&format!("{p}.{v}")],
            "view {p}.{v}: pg_walker over {since}..{through} differs from the server's SQL view"
        );
    }

    // 2. Half, then the rest: the same totals as one walk, and as pg_waldump's.
    let halves = scratch("pgw-halves");
    let mid = c.query_one(&format!(
        "SELECT '{since}'::pg_lsn + ('{through}'::pg_lsn - '{since}'::pg_lsn) / 2"
    ));
    walk(
        &wal,
        &halves,
        "rmgr_stats",
        &["--start", &since, "--end", &mid],
    );
    let first_half = rmgr_totals(&walker_rows(&halves, "rmgr_stats", "rmgrs"));
    walk(&wal, &halves, "rmgr_stats", &["--end", &through]);
    let resumed = rmgr_totals(&walker_rows(&halves, "rmgr_stats", "rmgrs"));
    let once = rmgr_totals(&walker_rows(&full, "rmgr_stats", "rmgrs"));
    assert_ne!(first_half, resumed, "the second half added records");
    assert_eq!(
        resumed, once,
        "two halves differ from one walk over {since}..{through}"
    );
    assert_eq!(
        resumed,
        common::waldump_stats(&wal, &["-s", &since, "-e", &through]),
        "pg_walker (in two halves) vs pg_waldump --stats over {since}..{through}"
    );

    // 3. A plugin that dereferences NULL kills pg_walker, not the server.
    let started = c.query_one("SELECT pg_postmaster_start_time()");
    let crash_state = scratch("pgw-crash");
    let fixtures = walker_tests::fixtures_dir();
    let out = pg_walker(&[
        "walk",
        "--wal-dir",
        wal.to_str().unwrap(),
        "--state-dir",
        crash_state.to_str().unwrap(),
        "--plugins",
        "fx_c_null",
        "--plugin-dir",
        fixtures.to_str().unwrap(),
        "--set",
        "fx_c_null.at=100",
    ]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc_sigsegv()),
        "pg_walker with fx_c_null: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.query_one("SELECT 1"), "1", "the server answers");
    assert_eq!(
        c.query_one("SELECT pg_postmaster_start_time()"),
        started,
        "the server did not restart"
    );
    assert_eq!(
        c.query_one("SELECT state FROM walker.plugins WHERE name = 'rmgr_stats'"),
        "running",
        "the server's walker keeps running"
    );
    for d in [wal, full, halves, crash_state] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// SIGSEGV's number (11 on Linux, every architecture walker builds on).
fn libc_sigsegv() -> i32 {
    11
}
