//! `pg_walker walk` and `show` against a real cluster (issue 19 item 2): the same LSN
//! range walked by the in-server walker and by pg_walker over a copy of the cluster's
//! pg_wal gives equal view rows (rmgr_stats, garbagemap and budget's accounting by
//! database, relation and rmgr, compared with the server's SQL views); a walk in two
//! halves gives the same totals as one walk, equal to `pg_waldump --stats`, as does a
//! walk without plugins; the autosizer recommends from the WAL's clock and the server
//! settings given; a plugin that dereferences NULL kills pg_walker only, while
//! the server keeps answering. `pg_walker follow` over the replication protocol:
//! a live cluster under pgbench, pg_walker killed midway and restarted, gives the
//! totals of `pg_get_wal_stats` over the whole range; a followed standby's promotion
//! is followed onto the new timeline; wrong conninfo, a missing slot and a server
//! that allows no replication are clear errors.

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
    // budget's accounting by the WAL alone (sessions name scopes only in a server).
    ("budget", "databases"),
    ("budget", "relations"),
    ("budget", "rmgrs"),
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
        .plugins("rmgr_stats, garbagemap, budget")
        .autovacuum(false)
        .conf("wal_keep_size", "4GB")
        .conf("max_wal_size", "4GB")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec(common::WORKLOAD);
    // A commit 1.5 s after the workload's: the WAL's times span more than the
    // autosizer's 1 s window of step 4, however fast the workload ran.
    c.exec("SELECT pg_sleep(1.5)");
    c.exec("CREATE TABLE pgw_tick(i int); INSERT INTO pgw_tick VALUES (1)");
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
        "rmgr_stats,garbagemap,budget",
        &["--start", &since, "--end", &through],
    );
    for (p, v) in VIEWS {
        assert_eq!(
            walker_rows(&full, p, v),
            server[&format!("{p}.{v}")],
            "view {p}.{v}: pg_walker over {since}..{through} differs from the server's SQL view"
        );
    }

    // garbagemap's SVG heat maps, drawn by the plugin's svg function into a file per
    // relation: the server's walker.garbagemap_svg pictures, but for the title (the
    // server names the relation from its catalog, pg_walker has none).
    let svgs = full.join("svg");
    let listed = parse_csv(&ok(
        "show garbagemap relations --svg-dir",
        pg_walker(&[
            "show",
            "garbagemap",
            "relations",
            "--svg-dir",
            svgs.to_str().unwrap(),
            "--format",
            "csv",
            "--state-dir",
            full.to_str().unwrap(),
            "--plugin-dir",
            &pkglibdir(),
        ]),
    ));
    let pictures: usize = c
        .query_one("SELECT count(*) FROM walker.garbagemap_svg")
        .parse()
        .unwrap();
    assert!(pictures > 0, "the server draws heat maps");
    assert_eq!(
        listed.len() - 1,
        pictures,
        "a file per relation: {listed:?}"
    );
    // Both with the relation's name in the heading and title replaced by X.
    let untitled = |e: &str| {
        format!(
            "regexp_replace({e}, '(<title>|font-weight=\"bold\">)[^<]*(: dead tuples and dead line pointers per block range)', '\\1X\\2', 'g')"
        )
    };
    let differing = c.query_one(&format!(
        "SELECT count(*) FROM walker.garbagemap_svg g WHERE {} IS DISTINCT FROM {}",
        untitled("g.svg"),
        untitled(&format!(
            "pg_read_file('{}/' || g.database || '_' || g.tablespace || '_' || g.relfilenode || '.svg')",
            svgs.display()
        ))
    ));
    assert_eq!(
        differing, "0",
        "pg_walker's pictures differ from the server's"
    );

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

    // Without plugins the records are only read and counted: pg_waldump's totals.
    let counted = ok(
        "walk without plugins",
        pg_walker(&[
            "walk",
            "--wal-dir",
            wal.to_str().unwrap(),
            "--start",
            &since,
            "--end",
            &through,
        ]),
    );
    let dumped = common::waldump_stats(&wal, &["-s", &since, "-e", &through]);
    let (records, rec, fpi) = dumped
        .values()
        .fold((0, 0, 0), |t, v| (t.0 + v.0, t.1 + v.1, t.2 + v.2));
    assert_eq!(
        counted.trim(),
        format!(
            "{records} records, {} bytes of which {fpi} bytes of full-page images, from {since} to {through}",
            rec + fpi
        ),
        "pg_walker walk without plugins vs pg_waldump --stats over {since}..{through}"
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
    // 4. The autosizer outside a server: the server settings it reads are given with
    // units (--set server.NAME=VALUE), its windows are timed by the WAL's clock (within
    // the server's lifetime, not at the time of the walk), and it only recommends.
    let upto = c.query_one("SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_secs(2));
    let sizer = scratch("pgw-sizer");
    let facts = [
        "--set",
        "server.max_wal_size=32MB",
        "--set",
        "server.min_wal_size=32MB",
        "--set",
        "server.checkpoint_timeout=5min",
        "--set",
        "server.checkpoint_completion_target=0.9",
        "--set",
        "autosizer.window=1s",
    ];
    let mut range = vec!["--start", &since, "--end", &through];
    range.extend(facts);
    walk(&wal, &sizer, "autosizer", &range);
    let show = |view: &str| {
        let mut args = vec![
            "show",
            "autosizer",
            view,
            "--format",
            "csv",
            "--state-dir",
            sizer.to_str().unwrap(),
        ];
        let dir = pkglibdir();
        args.extend(["--plugin-dir", &dir]);
        args.extend(facts);
        let mut rows = parse_csv(&ok(&format!("show autosizer {view}"), pg_walker(&args)));
        let header = rows.remove(0);
        (header, rows)
    };
    let (header, windows) = show("windows");
    let col = |h: &[String], n: &str| h.iter().position(|x| x == n).unwrap();
    assert!(!windows.is_empty(), "the workload spans 1 s windows");
    let (end_at, mb) = (col(&header, "end_at"), col(&header, "max_wal_size_mb"));
    for w in &windows {
        assert_eq!(w[mb], "32", "server.max_wal_size=32MB is 32 MB: {w:?}");
        assert_eq!(
            c.query_one(&format!(
                "SELECT '{}'::timestamptz BETWEEN pg_postmaster_start_time() AND '{upto}'",
                w[end_at]
            )),
            "t",
            "a window ends at a time of the WAL, before {upto}: {w:?}"
        );
    }
    let (header, history) = show("history");
    let (action, reason) = (col(&header, "action"), col(&header, "reason"));
    assert!(
        history.iter().all(|h| h[action] != "failed"),
        "no change tried without a server: {history:?}"
    );
    assert!(
        history
            .iter()
            .any(|h| h[action] == "recommend" && h[reason].contains("pg_walker")),
        "32 MB is too small for the workload: a recommendation that names why it is not applied: {history:?}"
    );

    for d in [wal, full, halves, crash_state, sizer] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// SIGSEGV's number (11 on Linux, every architecture walker builds on).
fn libc_sigsegv() -> i32 {
    11
}

/// `pg_walker follow` against the cluster on `port`, with `args` after the plugins
/// and state directory options.
fn follow_command(port: u16, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg_walker"));
    cmd.arg("follow")
        .arg(format!("host=127.0.0.1 port={port} user=postgres"))
        .args(["--plugins", "rmgr_stats", "--plugin-dir", &pkglibdir()])
        .arg("--state-dir")
        .arg(state)
        .args(args);
    cmd
}

/// The LSN of the state directory's position file, once there is one.
fn saved_lsn(state: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state.join("pg_walker.position")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("lsn = ").map(|v| v.trim().to_string()))
}

/// rmgr_stats' rows in `state`, with the range they cover (since, through).
fn followed_stats(state: &Path) -> (String, String, common::Stats) {
    let rows = walker_rows(state, "rmgr_stats", "rmgrs");
    assert!(!rows.is_empty(), "pg_walker's rmgr_stats saw no records");
    let (since, through) = (rows[0][6].clone(), rows[0][7].clone());
    (since, through, rmgr_totals(&rows))
}

/// Runs pgbench against `c` for `seconds` in the background.
fn pgbench(c: &Cluster, seconds: u32) -> std::process::Child {
    walker_tests::client_command("pgbench", c.port(), "postgres")
        .args([
            "-n",
            "-c",
            "2",
            "-j",
            "1",
            "-T",
            &seconds.to_string(),
            "postgres",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run pgbench")
}

fn pgbench_init(c: &Cluster) {
    let out = walker_tests::client_command("pgbench", c.port(), "postgres")
        .args(["-i", "-q", "-s", "2", "postgres"])
        .output()
        .expect("run pgbench -i");
    assert!(
        out.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of `GET path` from `addr` (empty when nothing answers yet).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the sample `name` (with its labels) in a Prometheus text (0 when absent).
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn follow_resumes_exactly_after_kill_9() {
    let c = Cluster::builder("pgw_follow")
        .preload_walker(false)
        .conf("max_wal_size", "4GB")
        .start();
    c.exec("CREATE EXTENSION pg_walinspect");
    pgbench_init(&c);
    let state = scratch("pgw-follow");
    let load = pgbench(&c, 40);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut first = follow_command(
        c.port(),
        &state,
        &[
            "--slot",
            "pgw",
            "--create-slot",
            "--metrics-addr",
            &metrics_addr,
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("run pg_walker follow");
    // Midway: once the plugin's state was saved once (every 10 s) and more WAL came.
    c.wait_until(
        "pg_walker follow saves rmgr_stats' state",
        Duration::from_secs(180),
        || state.join("rmgr_stats.snapshot").exists(),
    );
    // The Prometheus text over HTTP: the host's counters and the plugin's.
    let mut text = String::new();
    c.wait_until(
        "pg_walker serves its metrics",
        Duration::from_secs(60),
        || {
            text = http_get(&metrics_addr, "/metrics");
            metric_value(&text, "walker_plugin_records_total{plugin=\"rmgr_stats\"}") > 0.0
        },
    );
    assert!(
        metric_value(&text, "pg_walker_received_bytes_total") > 0.0
            && metric_value(&text, "pg_walker_records_total") > 0.0
            && text.contains("# TYPE pg_walker_saved_lsn gauge"),
        "{text}"
    );
    let saved = saved_lsn(&state);
    first.kill().expect("kill -9 pg_walker");
    let status = first.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "pg_walker was killed, not finished"
    );
    // The slot keeps what the state directory does not reflect yet.
    let restart =
        c.query_one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgw'");
    if let Some(saved) = &saved {
        assert_eq!(
            c.query_one(&format!("SELECT '{restart}'::pg_lsn <= '{saved}'::pg_lsn")),
            "t",
            "the slot's restart_lsn {restart} is past the saved position {saved}"
        );
    }
    let mut load = load;
    assert!(load.wait().unwrap().success(), "pgbench ran");
    let end = c.query_one("SELECT pg_current_wal_flush_lsn()");
    let out = follow_command(c.port(), &state, &["--slot", "pgw", "--end", &end])
        .output()
        .expect("run pg_walker follow again");
    ok("follow (resumed)", out);
    let (since, through, ours) = followed_stats(&state);
    assert!(
        ours.get("Heap").is_some_and(|h| h.0 > 1000),
        "pgbench's Heap records: {ours:?}"
    );
    assert_eq!(
        c.query_one(&format!("SELECT '{through}'::pg_lsn <= '{end}'::pg_lsn AND '{end}'::pg_lsn - '{through}'::pg_lsn < 65536")),
        "t",
        "the records processed end at --end {end} (through {through})"
    );
    assert_eq!(
        ours,
        common::walinspect_stats(&c, &since, &through),
        "pg_walker follow, killed and resumed, over {since}..{through} differs from pg_get_wal_stats"
    );
    // The slot let go of what the state reflects.
    assert_eq!(
        c.query_one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgw'"),
        saved_lsn(&state).unwrap(),
        "the slot's restart_lsn is the saved position"
    );

    // A third run with no --end follows new WAL until SIGTERM, then saves and exits 0.
    let third = follow_command(
        c.port(),
        &state,
        &["--slot", "pgw", "--metrics-addr", &metrics_addr],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run pg_walker follow a third time");
    c.exec("INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 5000)");
    let flushed = c.query_one("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn");
    c.wait_until(
        "the third run reads the new WAL",
        Duration::from_secs(120),
        || {
            metric_value(&http_get(&metrics_addr, "/metrics"), "pg_walker_read_lsn")
                >= flushed.parse::<f64>().unwrap()
        },
    );
    let pid = third.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let out = third.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "SIGTERM ends follow cleanly: {}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("stopping (signal received)"), "{stderr}");
    let (since2, through2, all) = followed_stats(&state);
    assert_eq!(since2, since, "the same plugin state, continued");
    assert_eq!(
        c.query_one(&format!(
            "SELECT '{through2}'::pg_lsn - '0/0'::pg_lsn >= {flushed}"
        )),
        "t",
        "the state reflects the new WAL"
    );
    assert_eq!(
        all,
        common::walinspect_stats(&c, &since2, &through2),
        "three runs (one killed, one to --end, one stopped by SIGTERM) over {since2}..{through2} differ from pg_get_wal_stats"
    );
    assert_eq!(
        c.query_one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgw'"),
        saved_lsn(&state).unwrap(),
        "after SIGTERM the slot's restart_lsn is the saved position"
    );
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn follow_errors_name_cause_and_fix() {
    let c = Cluster::builder("pgw_follow_err")
        .preload_walker(false)
        .start();
    let state = scratch("pgw-follow-err");
    let err = |cmd: &mut Command| {
        let out = cmd.output().expect("run pg_walker follow");
        assert_eq!(
            out.status.code(),
            Some(1),
            "pg_walker follow fails: {out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Nothing listens there: a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = err(&mut follow_command(free, &state, &[]));
    assert!(
        e.contains(&format!("cannot connect to 127.0.0.1:{free}"))
            && e.contains("check host and port"),
        "{e}"
    );
    let e = err(&mut follow_command(c.port(), &state, &["--slot", "nosuch"]));
    assert!(
        e.contains("\"nosuch\" does not exist") && e.contains("--create-slot"),
        "{e}"
    );
    // A role without REPLICATION.
    c.exec("CREATE ROLE plain LOGIN");
    let e = err(Command::new(env!("CARGO_BIN_EXE_pg_walker")).args([
        "follow",
        &format!("host=127.0.0.1 port={} user=plain", c.port()),
        "--plugins",
        "rmgr_stats",
        "--plugin-dir",
        &pkglibdir(),
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    assert!(e.contains("REPLICATION"), "{e}");
    // Password authentication: SCRAM-SHA-256 and MD5 for replication connections
    // (pg_hba.conf lines ahead of the harness's trust lines), a wrong password.
    c.exec("CREATE EXTENSION pg_walinspect");
    c.exec("CREATE ROLE scram_user LOGIN REPLICATION PASSWORD 'sesame'");
    c.exec(
        "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN REPLICATION PASSWORD 'sesame'",
    );
    let hba = c.data_dir().join("pg_hba.conf");
    let trust = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host replication scram_user 127.0.0.1/32 scram-sha-256\nhost replication md5_user 127.0.0.1/32 md5\n{trust}"),
    )
    .unwrap();
    c.reload();
    let as_user = |user: &str, password: &str, dir: &Path, range: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg_walker"));
        cmd.arg("follow")
            .arg(format!(
                "host=127.0.0.1 port={} user={user} password='{password}'",
                c.port()
            ))
            .args(["--plugins", "rmgr_stats", "--plugin-dir", &pkglibdir()])
            .arg("--state-dir")
            .arg(dir)
            .args(range);
        cmd
    };
    let e = err(&mut as_user("scram_user", "wrong", &state, &[]));
    assert!(
        e.contains("password authentication failed") && e.contains("check the password"),
        "{e}"
    );
    for user in ["scram_user", "md5_user"] {
        let from = c.query_one("SELECT pg_current_wal_flush_lsn()");
        c.exec("CREATE TABLE IF NOT EXISTS auth_check (a int); INSERT INTO auth_check SELECT generate_series(1, 1000)");
        let to = c.query_one("SELECT pg_current_wal_flush_lsn()");
        let dir = scratch(&format!("pgw-auth-{user}"));
        ok(
            &format!("follow as {user}"),
            as_user(user, "sesame", &dir, &["--start", &from, "--end", &to])
                .output()
                .unwrap(),
        );
        let (since, through, ours) = followed_stats(&dir);
        assert_eq!(
            ours,
            common::walinspect_stats(&c, &since, &through),
            "follow as {user} over {since}..{through} differs from pg_get_wal_stats"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    // A server that allows no replication connection at all.
    c.set_conf("max_wal_senders", "0");
    c.restart();
    let e = err(&mut follow_command(c.port(), &state, &[]));
    assert!(e.contains("max_wal_senders"), "{e}");
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn follow_continues_on_the_promoted_standbys_timeline() {
    let primary = Cluster::builder("pgw_tl_primary")
        .preload_walker(false)
        .conf("max_wal_size", "4GB")
        .start();
    primary.exec("CREATE EXTENSION pg_walinspect");
    primary.exec("CREATE TABLE t (id int, v text)");
    let standby = Cluster::builder("pgw_tl_standby")
        .preload_walker(false)
        .standby_of(&primary)
        .start();
    let state = scratch("pgw-follow-tl");
    let log = state.join("first-run.log");
    std::fs::create_dir_all(&state).unwrap();
    let mut first = follow_command(standby.port(), &state, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run pg_walker follow");
    standby.wait_until(
        "pg_walker follows the standby",
        Duration::from_secs(60),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("following")),
    );
    primary.exec("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g");
    let flushed = primary.query_one("SELECT pg_current_wal_flush_lsn()");
    standby.wait_until(
        "the standby replays the primary's WAL",
        Duration::from_secs(120),
        || standby.query_one(&format!("SELECT pg_last_wal_replay_lsn() >= '{flushed}'")) == "t",
    );
    drop(primary);
    standby.promote();
    standby.exec("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 50000) g");
    standby.exec("CHECKPOINT");
    let end = standby.query_one("SELECT pg_current_wal_flush_lsn()");
    standby.wait_until(
        "pg_walker follows the new timeline",
        Duration::from_secs(120),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("following timeline 2")),
    );
    // The first run goes on past the switch (still running): stop it (kill -9); the
    // second resumes from its saved state and stops at --end.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended at the switch:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    first.kill().unwrap();
    let _ = first.wait();
    let out = follow_command(standby.port(), &state, &["--end", &end])
        .output()
        .expect("run pg_walker follow again");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok("follow (after the promotion)", out);
    let (since, through, ours) = followed_stats(&state);
    // The range spans the switch the promoted server's history file records.
    let history =
        std::fs::read_to_string(standby.data_dir().join("pg_wal/00000002.history")).unwrap();
    let switch = history
        .split('\t')
        .nth(1)
        .expect("a switch point")
        .to_string();
    assert_eq!(
        standby.query_one(&format!(
            "SELECT '{since}'::pg_lsn < '{switch}'::pg_lsn AND '{switch}'::pg_lsn < '{through}'::pg_lsn"
        )),
        "t",
        "the range {since}..{through} spans the switch at {switch}"
    );
    assert!(
        ours.get("Heap").is_some_and(|h| h.0 >= 100_000),
        "both timelines' inserts: {ours:?}\n{stderr}"
    );
    assert_eq!(
        ours,
        common::walinspect_stats(&standby, &since, &through),
        "pg_walker follow across the promotion over {since}..{through} differs from pg_get_wal_stats on the promoted server"
    );
    let _ = std::fs::remove_dir_all(state);
}
