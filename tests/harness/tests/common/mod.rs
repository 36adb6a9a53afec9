//! Helpers shared by the integration tests: a workload, waiting for walker to catch
//! up, and rmgr-stats' counts compared with pg_walinspect's.
#![allow(dead_code)]

pub mod budget;

use std::collections::BTreeMap;
use std::time::Duration;
use walker_tests::Cluster;

/// A workload touching the main resource managers: tables with indexes, inserts,
/// updates, deletes, a COPY, an aborted transaction, a sequence, DDL.
pub const WORKLOAD: &str = r#"
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL DEFAULT 0);
CREATE INDEX accounts_owner ON accounts (owner);
CREATE TABLE events (id bigserial PRIMARY KEY, account int, payload jsonb, at timestamptz DEFAULT now());
CREATE INDEX events_account ON events (account);
INSERT INTO accounts SELECT g, 'owner' || (g % 97), g * 10 FROM generate_series(1, 20000) g;
UPDATE accounts SET balance = balance + 1 WHERE id % 3 = 0;
UPDATE accounts SET owner = owner || '-x' WHERE id % 11 = 0;
DELETE FROM accounts WHERE id % 7 = 0;
INSERT INTO events (account, payload) SELECT g % 500, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
COPY events (account, payload) FROM stdin;
1	{"copy": 1}
2	{"copy": 2}
3	{"copy": 3}
\.
BEGIN;
INSERT INTO accounts SELECT g, 'aborted', 0 FROM generate_series(100001, 103000) g;
UPDATE events SET payload = '{}' WHERE id < 1000;
ROLLBACK;
CHECKPOINT;
UPDATE accounts SET balance = 0 WHERE id < 500;
VACUUM accounts;
DROP TABLE events;
"#;

/// Waits until walker has processed everything written so far. The target is the end
/// of a record written now (a logical message), which walker reaches exactly once the
/// WAL writer has flushed it; the flush LSN itself may point past the last record.
pub fn wait_caught_up(c: &Cluster) {
    wait_reaches(
        c,
        c,
        "walker catches up with the flush LSN",
        "SELECT processed_lsn FROM walker.status",
    );
}

/// Waits until the LSN `lsn_query` returns on `reader` reaches the end of a record
/// written now on `writer` (the same server, or the primary of a standby).
pub fn wait_reaches(writer: &Cluster, reader: &Cluster, what: &str, lsn_query: &str) {
    let target = writer.query_one("SELECT pg_logical_emit_message(false, 'walker-test', 'sync')");
    reader.wait_until(what, Duration::from_secs(60), || {
        reader.query_one(&format!(
            "SELECT coalesce(({lsn_query}) >= '{target}'::pg_lsn, false)"
        )) == "t"
    });
}

pub type Stats = BTreeMap<String, (i64, i64, i64)>;

/// rmgr-stats' counts and the LSN range they cover, read in one snapshot.
pub fn plugin_stats(c: &Cluster) -> (String, String, Stats) {
    let rows = c.query("SELECT rmgr, records, record_bytes, fpi_bytes, since_lsn, through_lsn FROM walker.rmgr_stats_rmgrs");
    assert!(!rows.is_empty(), "rmgr_stats saw no records");
    let (since, through) = (rows[0][4].clone(), rows[0][5].clone());
    let mut stats = Stats::new();
    for r in rows {
        assert_eq!(
            (&r[4], &r[5]),
            (&since, &through),
            "one snapshot, one range"
        );
        stats.insert(
            r[0].clone(),
            (
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
                r[3].parse().unwrap(),
            ),
        );
    }
    (since, through, stats)
}

/// PostgreSQL's own per-rmgr statistics for the same range.
pub fn walinspect_stats(c: &Cluster, since: &str, through: &str) -> Stats {
    // By position: PostgreSQL 15 names the first column "resource_manager/record_type",
    // later majors "resource_manager". Columns: name, count, count %, record_size,
    // record_size %, fpi_size, ...
    c.query(&format!(
        "SELECT * FROM pg_get_wal_stats('{since}', '{through}') WHERE count > 0"
    ))
    .into_iter()
    .map(|r| {
        (
            r[0].clone(),
            (
                r[1].parse().unwrap(),
                r[3].parse().unwrap(),
                r[5].parse().unwrap(),
            ),
        )
    })
    .collect()
}

pub fn assert_exact(c: &Cluster) -> Stats {
    let (since, through, ours) = plugin_stats(c);
    let theirs = walinspect_stats(c, &since, &through);
    assert_eq!(
        ours, theirs,
        "rmgr_stats over {since}..{through} differs from pg_get_wal_stats"
    );
    ours
}

/// rmgr-stats' counts on `c` equal pg_walinspect's on `reference` (another server
/// with the same WAL, e.g. the primary of a standby) over the plugin's range.
pub fn assert_exact_against(c: &Cluster, reference: &Cluster) -> Stats {
    let (since, through, ours) = plugin_stats(c);
    let theirs = walinspect_stats(reference, &since, &through);
    assert_eq!(
        ours,
        theirs,
        "rmgr_stats on {} over {since}..{through} differs from pg_get_wal_stats on {}",
        c.name(),
        reference.name()
    );
    ours
}

/// A workload that runs in a loop on another thread until stopped, ignoring errors
/// (the server may crash under it on purpose).
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

/// One round of the background workload: bulk and single-row writes, updates,
/// deletes, an abort, and a checkpoint now and then.
pub const ROUND: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bg (id bigserial PRIMARY KEY, v text, n int)",
    "INSERT INTO bg (v, n) SELECT repeat('x', 120), g FROM generate_series(1, 20000) g",
    "UPDATE bg SET n = n + 1 WHERE id % 5 = 0",
    "BEGIN; DELETE FROM bg WHERE id % 3 = 0; ROLLBACK",
    "DELETE FROM bg WHERE id % 13 = 0",
    "INSERT INTO bg (v, n) VALUES ('one', 1)",
    "CHECKPOINT",
];

impl Background {
    /// Starts looping [`ROUND`] on `port` (as postgres, database postgres).
    pub fn start(c: &Cluster) -> Background {
        Background::start_with(c, ROUND)
    }

    /// Starts looping `round` (one statement per psql call) on the cluster.
    pub fn start_with(c: &Cluster, round: &'static [&'static str]) -> Background {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let port = c.port();
        let thread = std::thread::spawn(move || {
            let mut done = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for stmt in round {
                    if flag.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let ok = walker_tests::client_command("psql", port, "postgres")
                        .args(["-X", "-q", "-d", "postgres", "-c", stmt])
                        .env("PGCONNECT_TIMEOUT", "5")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if ok {
                        done += 1;
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            done
        });
        Background {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; returns how many statements succeeded.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until the server accepts queries again (after a crash restart).
pub fn wait_accepting(c: &Cluster) {
    c.wait_until(
        "the server accepts connections",
        Duration::from_secs(60),
        || c.psql("postgres", "SELECT 1").is_ok(),
    );
}

/// The server's `server_version_num` (e.g. 170011): tests that differ per major ask
/// the server rather than assume.
pub fn server_version_num(c: &Cluster) -> u32 {
    c.query_one("SHOW server_version_num")
        .parse()
        .expect("server_version_num is a number")
}

/// pg_walinspect's names of the heap2 records that prune on access and those VACUUM
/// writes (its first and second pass) on the server's major: PRUNE and VACUUM up to
/// 16, PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN and PRUNE_VACUUM_CLEANUP from 17.
pub fn prune_record_types(c: &Cluster) -> (&'static [&'static str], &'static [&'static str]) {
    if server_version_num(c) >= 170_000 {
        (
            &["PRUNE_ON_ACCESS"],
            &["PRUNE_VACUUM_SCAN", "PRUNE_VACUUM_CLEANUP"],
        )
    } else {
        (&["PRUNE"], &["PRUNE", "VACUUM"])
    }
}

/// Per heap2 record type of `types` in [from, to): (records without a full-page
/// image, records with one), read with pg_walinspect in database postgres.
pub fn heap2_records(
    c: &Cluster,
    from: &str,
    to: &str,
    types: &[&str],
) -> BTreeMap<String, (i64, i64)> {
    let list = types
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    c.query(&format!(
        "SELECT record_type, count(*) FILTER (WHERE fpi_length = 0), count(*) FILTER (WHERE fpi_length > 0)
         FROM pg_get_wal_records_info('{from}', '{to}')
         WHERE resource_manager = 'Heap2' AND record_type IN ({list}) GROUP BY 1"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

/// The checkpointer's count of requested checkpoints, from the view of the running
/// major: `pg_stat_bgwriter.checkpoints_req` up to 16, `pg_stat_checkpointer.num_requested`
/// from 17.
pub fn checkpoints_requested(c: &Cluster) -> i64 {
    let sql = if server_version_num(c) >= 170_000 {
        "SELECT num_requested FROM pg_stat_checkpointer"
    } else {
        "SELECT checkpoints_req FROM pg_stat_bgwriter"
    };
    c.query_one(sql).parse().expect("a count")
}

/// `pg_waldump --stats` over `dir` with the range arguments `range` (`-s`, `-e`, `-t`):
/// per rmgr with records, (records, record bytes, full-page-image bytes).
pub fn waldump_stats(dir: &std::path::Path, range: &[&str]) -> Stats {
    let out = std::process::Command::new(walker_tests::pg_bindir().join("pg_waldump"))
        .arg("-p")
        .arg(dir)
        .args(range)
        .arg("--stats")
        .output()
        .expect("run pg_waldump");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pg_waldump failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows: `Name  N (%)  record size (%)  FPI size (%)  combined (%)`.
    let mut stats = Stats::new();
    for line in text.lines().skip(3) {
        let mut clean = String::new();
        let mut depth = 0;
        for ch in line.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => clean.push(c),
                _ => {}
            }
        }
        let f: Vec<&str> = clean.split_whitespace().collect();
        if f.len() < 4 || f[0] == "Total" || f[0].starts_with('-') {
            continue;
        }
        let n: i64 = f[1].parse().expect("a count");
        if n > 0 {
            stats.insert(
                f[0].to_string(),
                (
                    n,
                    f[2].parse().expect("bytes"),
                    f[3].parse().expect("bytes"),
                ),
            );
        }
    }
    assert!(
        !stats.is_empty(),
        "pg_waldump printed no statistics:\n{text}"
    );
    stats
}
