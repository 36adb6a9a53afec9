//! The autosizer against a real server: `max_wal_size` and its source are read back from
//! `pg_settings` and `postgresql.auto.conf`, forced checkpoints from the checkpointer's
//! own counter (`pg_stat_bgwriter.checkpoints_req` up to 16,
//! `pg_stat_checkpointer.num_requested` from 17), notifications through a LISTEN
//! client. Windows are shortened (`autosizer.window`) so decisions come in seconds;
//! `checkpoint_timeout` is the server's minimum, 30 s.

mod common;

use common::Background;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// A WAL generator: about 5 MB of WAL per round, one round a second.
const FORCING: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS gen (id bigserial, v text)",
    "INSERT INTO gen (v) SELECT repeat('x', 200) FROM generate_series(1, 20000)",
    "SELECT pg_sleep(0.5)",
    "TRUNCATE gen",
];

fn cluster(name: &str, conf: &[(&str, &str)], command_line: &[(&str, &str)]) -> Cluster {
    let mut b = Cluster::builder(name)
        .plugins("autosizer")
        .conf("checkpoint_timeout", "30s")
        .conf("checkpoint_completion_target", "0.9")
        .conf("autosizer.window", "2s")
        .conf("walker.naptime", "50ms")
        // The autosizer never waits for the services worker on its dispatch thread: a
        // callback that did (up to 20 s per change before) would be cut off.
        .conf("walker.plugin_timeout", "1s");
    for (k, v) in conf {
        b = b.conf(k, v);
    }
    for (k, v) in command_line {
        b = b.command_line(k, v);
    }
    let c = b.start();
    c.exec("CREATE EXTENSION walker");
    // The services worker publishes the server's settings; then decisions can start.
    c.wait_until(
        "the autosizer sees the server's settings",
        Duration::from_secs(30),
        || c.query_one("SELECT walker.autosizer_status()->>'max_wal_size_mb' IS NOT NULL") == "t",
    );
    c
}

fn max_wal_mb(c: &Cluster) -> i64 {
    c.query_one("SELECT setting::int8 FROM pg_settings WHERE name = 'max_wal_size'")
        .parse()
        .unwrap()
}

/// Requested checkpoints, from the checkpointer view of the running major.
fn checkpoints_req(c: &Cluster) -> i64 {
    common::checkpoints_requested(c)
}

fn auto_conf(c: &Cluster) -> String {
    std::fs::read_to_string(c.data_dir().join("postgresql.auto.conf")).unwrap_or_default()
}

fn history(c: &Cluster, action: &str) -> Vec<(i64, i64)> {
    c.query(&format!(
        "SELECT old_mb, new_mb FROM walker.autosizer_history WHERE action = '{action}' ORDER BY at"
    ))
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
    .collect()
}

/// A psql session that LISTENs and stays connected, printing notifications.
struct Listener {
    child: Child,
}

impl Listener {
    fn start(c: &Cluster, channel: &str, seconds: u32) -> Listener {
        let mut child = walker_tests::client_command("psql", c.port(), "postgres")
            .args(["-X", "-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql starts");
        let mut script = format!("LISTEN {channel};\n");
        // psql prints notifications after each statement it runs.
        for _ in 0..seconds * 2 {
            script.push_str("SELECT pg_sleep(0.5);\n");
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        Listener { child }
    }

    fn output(mut self) -> String {
        let _ = self.child.kill();
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn grows_when_wal_forces_checkpoints_then_forcing_stops() {
    let c = cluster(
        "sizer-grow",
        &[
            ("max_wal_size", "32MB"),
            ("min_wal_size", "32MB"),
            ("autosizer.cooldown", "0"),
        ],
        &[],
    );
    assert_eq!(max_wal_mb(&c), 32);
    let listener = Listener::start(&c, "walker_autosizer", 120);
    let load = Background::start_with(&c, FORCING);
    c.wait_until("max_wal_size grows", Duration::from_secs(90), || {
        max_wal_mb(&c) > 32
    });
    let grown = max_wal_mb(&c);
    assert!(
        auto_conf(&c).contains(&format!("max_wal_size = '{grown}'")),
        "postgresql.auto.conf holds the new size:\n{}",
        auto_conf(&c)
    );
    let source = c.query_one(
        "SELECT source || ' ' || sourcefile FROM pg_settings WHERE name = 'max_wal_size'",
    );
    assert!(
        source.starts_with("configuration file") && source.ends_with("postgresql.auto.conf"),
        "{source}"
    );
    // The history is published right after the server confirmed the change.
    c.wait_until(
        "the grow is in the history",
        Duration::from_secs(10),
        || !history(&c, "grow").is_empty(),
    );
    let grows = history(&c, "grow");
    assert_eq!(grows.first().map(|g| g.0), Some(32), "history: {grows:?}");
    // It may grow before any checkpoint is forced: the demand predicts it.
    let reason = c.query_one(
        "SELECT reason FROM walker.autosizer_history WHERE action = 'grow' ORDER BY at LIMIT 1",
    );
    assert!(reason.contains("checkpoint"), "{reason}");
    // Once the size fits the load, the checkpointer's requested count stops rising: a
    // 20 s stretch without a requested checkpoint (within 90 s; the size may still
    // be raised once more meanwhile).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut quiet = false;
    while Instant::now() < deadline && !quiet {
        let before = checkpoints_req(&c);
        std::thread::sleep(Duration::from_secs(20));
        quiet = checkpoints_req(&c) == before;
    }
    let rounds = load.stop();
    assert!(rounds > 0);
    assert!(
        quiet,
        "checkpoints were still requested; max_wal_size is {} MB, history {:?}",
        max_wal_mb(&c),
        history(&c, "grow")
    );
    let heard = listener.output();
    assert!(
        heard.contains("Asynchronous notification \"walker_autosizer\"")
            && heard.contains("\"action\":\"grow\""),
        "the LISTEN client heard no grow notification:\n{heard}"
    );
    // The recommendation explains itself; Prometheus has the plugin's metrics.
    let rec = c.query_one("SELECT walker.autosizer_recommendation() ? 'measurements'");
    assert_eq!(rec, "t");
    let metrics = c.query_one("SELECT walker.prometheus()");
    assert!(
        metrics.contains("walker_autosizer_checkpoints_total{kind=\"wal\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("walker_records_total"), "{metrics}");
    // It never overran walker.plugin_timeout (1 s here) while changes were applied.
    assert_eq!(
        c.query("SELECT state, errors FROM walker.plugins WHERE name = 'autosizer'")[0],
        ["running", "0"]
    );
}

#[test]
fn manual_checkpoints_with_little_wal_do_not_grow() {
    let c = cluster(
        "sizer-manual",
        &[("max_wal_size", "1GB"), ("autosizer.cooldown", "0")],
        &[],
    );
    let req_before = checkpoints_req(&c);
    for i in 0..8 {
        c.exec(&format!(
            "CREATE TABLE IF NOT EXISTS m (v int); INSERT INTO m VALUES ({i}); CHECKPOINT"
        ));
        std::thread::sleep(Duration::from_millis(700));
    }
    // Let a few windows close.
    common::wait_caught_up(&c);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        checkpoints_req(&c) >= req_before + 8,
        "the checkpointer counted them as requested"
    );
    let counts = c.query_one(
        "SELECT (s->'checkpoints'->>'requested')::int8 >= 7 AND (s->'checkpoints'->>'wal')::int8 = 0 FROM walker.autosizer_status() s",
    );
    assert_eq!(
        counts,
        "t",
        "{}",
        c.query_one("SELECT walker.autosizer_status()->'checkpoints'")
    );
    assert_eq!(max_wal_mb(&c), 1024);
    assert!(history(&c, "grow").is_empty());
    // An admin's analyze agrees: hold, nothing applied.
    let a = c.query_one("SELECT a->>'action' || ' ' || (a->>'applied') FROM walker.autosizer_analyze('{\"apply\": true}') a");
    assert_eq!(a, "hold false");
    assert!(!auto_conf(&c).contains("max_wal_size"));
}

#[test]
fn dry_run_recommends_and_records_but_changes_nothing() {
    let c = cluster(
        "sizer-dry",
        &[
            ("max_wal_size", "32MB"),
            ("min_wal_size", "32MB"),
            ("autosizer.dry_run", "on"),
        ],
        &[],
    );
    let load = Background::start_with(&c, FORCING);
    c.wait_until("a dry-run recommendation", Duration::from_secs(90), || {
        !history(&c, "recommend").is_empty()
    });
    load.stop();
    let rec = history(&c, "recommend");
    assert!(rec[0].0 == 32 && rec[0].1 > 32, "{rec:?}");
    assert_eq!(max_wal_mb(&c), 32);
    assert!(!auto_conf(&c).contains("max_wal_size"), "{}", auto_conf(&c));
    assert_eq!(
        c.query_one("SELECT walker.autosizer_status()->>'mode'"),
        "dry run"
    );
}

#[test]
fn shrinks_only_when_enabled_and_never_below_the_floor() {
    let c = cluster(
        "sizer-shrink",
        &[
            ("max_wal_size", "1GB"),
            ("autosizer.floor", "400MB"),
            ("autosizer.shrink_windows", "1"),
            ("autosizer.cooldown", "0"),
            ("autosizer.max_changes_per_hour", "100"),
        ],
        &[],
    );
    // Shrinking is off by default: quiet windows pass, nothing changes.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(max_wal_mb(&c), 1024);
    assert!(history(&c, "shrink").is_empty());
    c.exec("ALTER SYSTEM SET autosizer.shrink = on; SELECT pg_reload_conf()");
    c.wait_until(
        "max_wal_size shrinks to the floor",
        Duration::from_secs(60),
        || max_wal_mb(&c) == 400,
    );
    // The server shows the value as soon as it reloads; the history entry follows
    // once the services worker has reported success to the autosizer.
    c.wait_until(
        "the last shrink is in the history",
        Duration::from_secs(10),
        || history(&c, "shrink").last().is_some_and(|h| h.1 == 400),
    );
    // 1024 × 0.75 = 768, × 0.75 = 576, × 0.75 = 432, then the floor 400.
    let shrinks = history(&c, "shrink");
    assert_eq!(
        shrinks,
        vec![(1024, 768), (768, 576), (576, 432), (432, 400)]
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(max_wal_mb(&c), 400, "never below the floor");
    assert_eq!(history(&c, "shrink").len(), 4);
}

#[test]
fn cooldown_and_hourly_cap_hold() {
    // Every 1 s window is quiet and wants a shrink; the guards allow 3 changes, 4 s apart.
    let c = cluster(
        "sizer-limits",
        &[
            ("max_wal_size", "4GB"),
            ("autosizer.floor", "64MB"),
            ("autosizer.shrink", "on"),
            ("autosizer.shrink_windows", "1"),
            ("autosizer.window", "1s"),
            ("autosizer.cooldown", "4s"),
            ("autosizer.max_changes_per_hour", "3"),
        ],
        &[],
    );
    c.wait_until("three shrinks", Duration::from_secs(60), || {
        history(&c, "shrink").len() >= 3
    });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(history(&c, "shrink").len(), 3, "the hourly cap holds");
    let gaps = c.query(
        "SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY at)) FROM walker.autosizer_history WHERE action = 'shrink' ORDER BY at OFFSET 1",
    );
    for g in gaps {
        let secs: f64 = g[0].parse().unwrap();
        assert!(secs >= 4.0, "changes {secs} s apart, cooldown 4 s");
    }
    let held = c.query_one(
        "SELECT (s->>'deferred_by_cooldown')::int8 > 0 AND (s->>'deferred_by_hourly_cap')::int8 > 0 FROM walker.autosizer_status() s",
    );
    assert_eq!(
        held,
        "t",
        "{}",
        c.query_one("SELECT walker.autosizer_status()")
    );
    // 4096 × 0.75³ = 1728.
    assert_eq!(max_wal_mb(&c), 1728);
}

#[test]
fn an_overriding_source_makes_it_recommend_only() {
    let c = cluster(
        "sizer-override",
        &[
            ("autosizer.floor", "64MB"),
            ("autosizer.shrink", "on"),
            ("autosizer.shrink_windows", "1"),
            ("autosizer.cooldown", "0"),
        ],
        &[("max_wal_size", "2GB")],
    );
    c.wait_until("recommend-only", Duration::from_secs(60), || {
        c.query_one("SELECT walker.autosizer_status()->>'mode'") == "recommend-only"
    });
    let why = c.query_one("SELECT walker.autosizer_status()->>'mode_reason'");
    assert!(
        why.contains("command line") && why.contains("max_wal_size"),
        "{why}"
    );
    assert_eq!(max_wal_mb(&c), 2048);
    assert!(
        !auto_conf(&c).contains("max_wal_size"),
        "nothing written: {}",
        auto_conf(&c)
    );
    // The source is known before any change: the shrink is recommended, never tried.
    c.wait_until("a recommendation", Duration::from_secs(90), || {
        !history(&c, "recommend").is_empty()
    });
    assert_eq!(history(&c, "failed").len(), 0, "no change was tried");
    assert_eq!(
        c.query_one("SELECT service_failures FROM walker.status"),
        "0",
        "no ALTER SYSTEM was sent"
    );
    assert_eq!(max_wal_mb(&c), 2048);
    // reset forgets the history (the source still keeps it recommend-only).
    let before = c.query_one("SELECT clock_timestamp()");
    assert_eq!(
        c.query_one("SELECT walker.autosizer_reset()->>'reset'"),
        "true"
    );
    assert_eq!(
        c.query_one(&format!(
            "SELECT count(*) FROM walker.autosizer_history WHERE at < '{before}'"
        )),
        "0"
    );
}

#[test]
fn bad_settings_and_arguments_give_clear_errors() {
    let c = cluster("sizer-bad", &[("max_wal_size", "1GB")], &[]);
    let e = c
        .psql("postgres", "ALTER SYSTEM SET autosizer.maximum = -5")
        .unwrap_err();
    assert!(
        e.contains("-5")
            && e.contains("outside the valid range")
            && e.contains("autosizer.maximum"),
        "{e}"
    );
    let e = c
        .psql("postgres", "ALTER SYSTEM SET autosizer.algorithm = 'magic'")
        .unwrap_err();
    assert!(
        e.contains("invalid value") && e.contains("demand") && e.contains("multiplicative"),
        "{e}"
    );
    let e = c
        .psql("postgres", "ALTER SYSTEM SET autosizer.shrink_factor = 1.5")
        .unwrap_err();
    assert!(e.contains("outside the valid range"), "{e}");
    // A floor above the maximum: the server cannot check that; the autosizer says so
    // and changes nothing.
    c.exec("ALTER SYSTEM SET autosizer.floor = '2GB'; ALTER SYSTEM SET autosizer.maximum = '1GB'; SELECT pg_reload_conf()");
    c.wait_until("misconfigured", Duration::from_secs(30), || {
        c.query_one("SELECT walker.autosizer_status()->>'mode'") == "misconfigured"
    });
    let why = c.query_one("SELECT walker.autosizer_status()->>'mode_reason'");
    assert!(
        why.contains("autosizer.floor (2048 MB) is above autosizer.maximum (1024 MB)"),
        "{why}"
    );
    // The warning reaches the log when the walker worker's main thread writes the
    // plugins' queued lines, a moment after the status shows it.
    c.wait_until(
        "the warning in the server log",
        Duration::from_secs(10),
        || {
            c.server_log()
                .contains("autosizer.floor (2048 MB) is above autosizer.maximum")
        },
    );
    // Bad arguments and missing privileges.
    let e = c
        .psql(
            "postgres",
            "SELECT walker.autosizer_analyze('{\"apply\": \"yes\"}')",
        )
        .unwrap_err();
    assert!(e.contains("\"apply\" must be true or false"), "{e}");
    let e = c
        .psql(
            "postgres",
            "SELECT walker.autosizer_analyze('{\"aply\": true}')",
        )
        .unwrap_err();
    assert!(e.contains("unknown argument \"aply\""), "{e}");
    c.exec("CREATE ROLE watcher LOGIN IN ROLE walker_monitor; CREATE ROLE nobody LOGIN");
    assert!(c
        .psql_as("watcher", "postgres", "SELECT walker.autosizer_status()")
        .is_ok());
    let e = c
        .psql_as("watcher", "postgres", "SELECT walker.autosizer_analyze()")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    let e = c
        .psql_as("nobody", "postgres", "SELECT walker.autosizer_status()")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
}

#[test]
fn a_stuck_services_worker_never_holds_up_the_dispatch_thread() {
    let c = cluster(
        "sizer-stuck-services",
        &[
            ("max_wal_size", "1GB"),
            ("autosizer.floor", "400MB"),
            ("autosizer.shrink", "on"),
            ("autosizer.shrink_windows", "1"),
            ("autosizer.cooldown", "0"),
        ],
        &[],
    );
    // The services worker stops taking requests (it looks alive: its pid is set).
    let pid = c.query_one("SELECT services_pid FROM walker.status");
    c.signal(&pid, "STOP");
    struct Resume<'a>(&'a Cluster, String);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            self.0.signal(&self.1, "CONT");
        }
    }
    let _resume = Resume(&c, pid);
    // A quiet window wants a shrink; the change is queued and never carried out. Within
    // walker.plugin_timeout (1 s) the dispatch thread is back: the autosizer is not cut
    // off, and walks on with the others.
    let started = Instant::now();
    c.wait_until(
        "the unanswered change is in the history",
        Duration::from_secs(60),
        || !history(&c, "failed").is_empty(),
    );
    println!(
        "the unanswered change was recorded as failed {:.1} s after the services worker stopped",
        started.elapsed().as_secs_f64()
    );
    let reason = c.query_one(
        "SELECT reason FROM walker.autosizer_history WHERE action = 'failed' ORDER BY at LIMIT 1",
    );
    assert!(
        reason.contains("the services worker gave no answer within 20 s"),
        "{reason}"
    );
    assert_eq!(max_wal_mb(&c), 1024, "nothing was applied");
    c.exec("CREATE TABLE after (a int); INSERT INTO after SELECT generate_series(1, 1000);");
    common::wait_caught_up(&c);
    assert_eq!(
        c.query("SELECT state, errors FROM walker.plugins WHERE name = 'autosizer'")[0],
        ["running", "0"]
    );
}

fn setting_mb(c: &Cluster, name: &str) -> i64 {
    c.query_one(&format!(
        "SELECT setting::int8 FROM pg_settings WHERE name = '{name}'"
    ))
    .parse()
    .unwrap()
}

/// The size of the filesystem holding the cluster's pg_wal, from `stat -f` (coreutils):
/// total blocks × fundamental block size.
fn wal_filesystem_bytes(c: &Cluster) -> u64 {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%b %S"])
        .arg(c.data_dir().join("pg_wal"))
        .output()
        .expect("stat runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    n[0] * n[1]
}

#[test]
fn max_wal_size_above_the_filesystem_share_is_lowered_to_it() {
    let c = cluster(
        "sizer-share",
        &[
            ("autosizer.max_wal_share", "0.01"),
            ("autosizer.cooldown", "0"),
        ],
        &[],
    );
    // Hand-derived: 1% of the filesystem in MB, rounded down to whole 16 MB segments.
    let fs = wal_filesystem_bytes(&c);
    let cap = fs / 100 / (1 << 20) / 16 * 16;
    println!("pg_wal's filesystem: {fs} bytes; 1% in whole segments: {cap} MB");
    // The operator sets twice the cap (the autosizer lowers it whatever its floor).
    c.exec(&format!(
        "ALTER SYSTEM SET max_wal_size = '{}MB'; SELECT pg_reload_conf()",
        cap * 2
    ));
    c.wait_until(
        "max_wal_size is lowered to the share",
        Duration::from_secs(60),
        || setting_mb(&c, "max_wal_size") == cap as i64,
    );
    let status = |path: &str| {
        c.query_one(&format!(
            "SELECT walker.autosizer_status()->'max_wal_share'->>'{path}'"
        ))
    };
    assert_eq!(status("filesystem_bytes"), fs.to_string());
    assert_eq!(status("cap_mb"), cap.to_string());
    assert_eq!(status("share"), "0.01");
    c.wait_until(
        "the status shows the lowered size within the share",
        Duration::from_secs(10),
        || status("max_wal_size_within") == "t" || status("max_wal_size_within") == "true",
    );
    let shrinks = history(&c, "shrink");
    assert_eq!(shrinks, vec![(cap as i64 * 2, cap as i64)]);
    let reason = c.query_one(
        "SELECT reason FROM walker.autosizer_history WHERE action = 'shrink' ORDER BY at LIMIT 1",
    );
    assert!(
        reason.contains("exceeds autosizer.max_wal_share 0.01"),
        "{reason}"
    );
    // The recommendation names the cap and stays within it.
    let rec = c.query_one(
        "SELECT (r->>'cap_mb') || ' ' || ((r->>'recommended_mb')::int8 <= (r->>'cap_mb')::int8) FROM walker.autosizer_recommendation() r",
    );
    assert_eq!(rec, format!("{cap} true"));
}

#[test]
fn min_wal_size_grows_beside_max_wal_size() {
    let c = cluster(
        "sizer-min",
        &[
            ("max_wal_size", "32MB"),
            ("min_wal_size", "32MB"),
            ("autosizer.cooldown", "0"),
        ],
        &[],
    );
    let load = Background::start_with(&c, FORCING);
    c.wait_until("min_wal_size grows", Duration::from_secs(90), || {
        setting_mb(&c, "min_wal_size") > 32
    });
    let rounds = load.stop();
    assert!(rounds > 0);
    let min = setting_mb(&c, "min_wal_size");
    assert!(
        auto_conf(&c).contains(&format!("min_wal_size = '{min}'")),
        "postgresql.auto.conf holds the new min_wal_size:\n{}",
        auto_conf(&c)
    );
    assert_eq!(min % 16, 0, "whole segments: {min}");
    // The history has the change that set it, beside max_wal_size's.
    c.wait_until(
        "the change is in the history",
        Duration::from_secs(10),
        || {
            c.query_one(&format!(
                "SELECT count(*) FROM walker.autosizer_history WHERE min_new_mb = {min} AND min_old_mb < {min} AND action = 'grow'"
            )) != "0"
        },
    );
    // Let the settings settle (no change in flight), then: min_wal_size never above
    // max_wal_size, and the status shows what the server shows.
    common::wait_caught_up(&c);
    std::thread::sleep(Duration::from_secs(3));
    let (min, max) = (
        setting_mb(&c, "min_wal_size"),
        setting_mb(&c, "max_wal_size"),
    );
    assert!(min <= max, "min_wal_size {min} MB, max_wal_size {max} MB");
    c.wait_until(
        "the status shows the server's min_wal_size",
        Duration::from_secs(10),
        || {
            c.query_one("SELECT walker.autosizer_status()->>'min_wal_size_mb'")
                == setting_mb(&c, "min_wal_size").to_string()
        },
    );
    // The rule by hand, from the demand the change recorded: (1 + 0.9) × demand ×
    // (1 + 0.25 headroom) in 16 MB segments rounded up, plus one segment, at most the
    // max_wal_size set with it.
    let row = c.query(&format!(
        "SELECT (measurements->'min_wal_size'->>'demand_bytes')::float8, new_mb FROM walker.autosizer_history WHERE min_new_mb = {min} AND action = 'grow' ORDER BY at LIMIT 1"
    ));
    let demand: f64 = row[0][0].parse().unwrap();
    let max_then: i64 = row[0][1].parse().unwrap();
    let segs = (demand * 1.9 * 1.25 / (16.0 * 1048576.0)).ceil() as i64 + 1;
    assert_eq!(
        min,
        (segs.max(2) * 16).min(max_then),
        "demand {demand} bytes per checkpoint_timeout"
    );
}

#[test]
fn a_min_wal_size_on_the_command_line_is_recommended_while_max_wal_size_grows() {
    // min_wal_size from the server's command line: ALTER SYSTEM cannot change it, so
    // the autosizer recommends it and still applies max_wal_size (from the file).
    let c = cluster(
        "sizer-min-fixed",
        &[("max_wal_size", "32MB"), ("autosizer.cooldown", "0")],
        &[("min_wal_size", "32MB")],
    );
    let load = Background::start_with(&c, FORCING);
    c.wait_until("max_wal_size grows", Duration::from_secs(90), || {
        max_wal_mb(&c) > 32
    });
    c.wait_until(
        "min_wal_size is recommended above 32 MB",
        Duration::from_secs(60),
        || {
            c.query_one(
                "SELECT coalesce((walker.autosizer_recommendation()->'min_wal_size'->>'recommended_mb')::int8, 0) > 32",
            ) == "t"
        },
    );
    let rounds = load.stop();
    assert!(rounds > 0);
    let held =
        c.query_one("SELECT walker.autosizer_recommendation()->'min_wal_size'->>'held_back_by'");
    assert_eq!(
        held,
        "min_wal_size is set by \"command line\", which ALTER SYSTEM does not override"
    );
    // The server's own view: min_wal_size unchanged, from the command line, and never
    // written to postgresql.auto.conf; max_wal_size was.
    assert_eq!(
        c.query_one("SELECT setting || ' ' || source FROM pg_settings WHERE name = 'min_wal_size'"),
        "32 command line"
    );
    let conf = auto_conf(&c);
    assert!(
        !conf.contains("min_wal_size") && conf.contains("max_wal_size"),
        "{conf}"
    );
    // Nothing failed: no failed change, no service failure, the autosizer still applies.
    assert_eq!(history(&c, "failed").len(), 0);
    assert_eq!(
        c.query_one("SELECT service_failures FROM walker.status"),
        "0"
    );
    assert_eq!(
        c.query_one("SELECT walker.autosizer_status()->>'mode'"),
        "apply"
    );
    // The applied changes keep min_wal_size as it was.
    assert_eq!(
        c.query_one(
            "SELECT count(*) FROM walker.autosizer_history WHERE action = 'grow' AND min_new_mb IS DISTINCT FROM min_old_mb"
        ),
        "0"
    );
}
