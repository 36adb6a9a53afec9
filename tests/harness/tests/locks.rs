//! Plugin region locks never outlive their holder and never make a backend wait
//! forever (issue 13, item 2).

mod common;

use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// Runs `sql` and returns its result and how long it took; a statement still running
/// after 20 s counts as hung (its psql is left to the cluster's shutdown).
fn timed(c: &Cluster, sql: &str) -> (Result<String, String>, Duration) {
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let (port, sql) = (c.port(), sql.to_string());
    std::thread::spawn(move || {
        let out = walker_tests::client_command("psql", port, "postgres")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "postgres",
                "-c",
                &sql,
            ])
            .output();
        let _ = tx.send(match out {
            Ok(o) if o.status.success() => {
                Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(format!("cannot run psql: {e}")),
        });
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| Err("HUNG: still running after 20 s".to_string()));
    (r, t.elapsed())
}

fn writes_run(c: &Cluster, what: &str) {
    for i in 0..5 {
        let (r, took) = timed(c, &format!("INSERT INTO w VALUES ({i}, 'after {what}')"));
        if i == 0 {
            eprintln!("a write after {what}: {took:?}");
        }
        r.unwrap_or_else(|e| panic!("a write after {what} failed: {e}"));
        assert!(
            took < Duration::from_secs(3),
            "a write after {what} took {took:?}"
        );
    }
}

/// A C plugin that takes its lock in `on_record` at record N and sleeps: views of it
/// fail with a clear error within the bound (and then at once), views of the others
/// answer, a cancelled reader returns promptly, writes with budget loaded run.
#[test]
fn a_plugin_sleeping_with_its_lock_never_hangs_a_backend() {
    let c = Cluster::builder("locks_sleeper")
        .plugins("rmgr_stats,fx_lock_sleeper,budget")
        .fixtures_in_library_path(true)
        .conf("walker.naptime", "50ms")
        .conf("walker.lock_timeout", "1s")
        .conf("fx_lock_sleeper.hold_at", "3000")
        // The plugin stays stuck for the whole test (not cut off by the stall timeout).
        .conf("walker.plugin_timeout", "10min")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE w (id int, v text)");
    c.exec("INSERT INTO w SELECT g, 'x' FROM generate_series(1, 5000) g");
    let worker = c.query_one("SELECT pid FROM walker.status");
    c.wait_until(
        "the fixture holds its lock",
        Duration::from_secs(60),
        || {
            c.psql("postgres", "SELECT 1 FROM walker.fx_lock_sleeper_state")
                .is_err_and(|e| e.contains("cannot be read now"))
        },
    );

    // A reader waits at most walker.lock_timeout, then fails naming the holder and the fix.
    let (r, took) = timed(&c, "SELECT records FROM walker.fx_lock_sleeper_state");
    eprintln!("first reader of the held plugin's view: {took:?}");
    let e = r.expect_err("the view of a plugin holding its lock must fail");
    assert!(took < Duration::from_secs(3), "the reader took {took:?}");
    assert!(
        e.contains("55P03") || e.contains("cannot be read now"),
        "{e}"
    );
    assert!(
        e.contains(&format!("held exclusively by process {worker}")),
        "{e}"
    );
    assert!(e.contains("walker.plugins"), "the hint names the fix: {e}");
    // The hold is older than the bound now: later readers fail at once.
    let (r, took) = timed(&c, "SELECT records FROM walker.fx_lock_sleeper_state");
    assert!(r.is_err());
    eprintln!("next reader (hold older than the bound): {took:?}");
    assert!(took < Duration::from_millis(800), "{took:?}");
    // The plugin is reported.
    let last = c.query_one("SELECT last_error FROM walker.plugins WHERE name = 'fx_lock_sleeper'");
    assert!(last.contains("not obtained within"), "{last}");
    assert!(c.server_log().contains("held exclusively by process"));

    // The other plugins' views answer.
    for v in ["walker.rmgr_stats_rmgrs", "walker.budget_counters"] {
        let (r, took) = timed(&c, &format!("SELECT count(*) FROM {v}"));
        r.unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(took < Duration::from_secs(2), "{v} took {took:?}");
    }
    // Writes with budget loaded run.
    writes_run(&c, "a plugin holds its lock");

    // A reader with a long bound is cancelled promptly (statement_timeout cancels it
    // exactly as pg_cancel_backend does).
    c.set_conf("walker.lock_timeout", "10min");
    c.reload();
    std::thread::sleep(Duration::from_millis(300));
    let (r, took) = timed(
        &c,
        "SET statement_timeout = '300ms'; SELECT records FROM walker.fx_lock_sleeper_state",
    );
    let e = r.expect_err("cancelled");
    eprintln!("reader cancelled by a 300 ms statement_timeout: {took:?}");
    assert!(e.contains("statement timeout"), "{e}");
    assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
    // And by pg_cancel_backend from another session.
    let port_c = &c;
    let reader = std::thread::scope(|s| {
        let h = s.spawn(|| timed(port_c, "SELECT records FROM walker.fx_lock_sleeper_state"));
        std::thread::sleep(Duration::from_millis(700));
        let n = c.query_one(
            "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'SELECT records FROM walker.fx_lock_sleeper_state%' AND pid <> pg_backend_pid()",
        );
        assert_eq!(n, "1");
        h.join().unwrap()
    });
    eprintln!(
        "reader cancelled by pg_cancel_backend after 700 ms: {:?}",
        reader.1
    );
    let e = reader.0.expect_err("cancelled");
    assert!(e.contains("canceling statement due to user request"), "{e}");
    assert!(reader.1 < Duration::from_secs(3), "{:?}", reader.1);
}

/// The walker worker exits on an ERROR while one of its threads holds budget's lock:
/// the exit releases it, so writing statements with budget loaded still run and the
/// views answer (before: every write of the cluster waited on it forever).
#[test]
fn an_error_in_the_worker_releases_the_locks_its_threads_hold() {
    let c = Cluster::builder("locks_worker_error")
        .plugins("rmgr_stats,budget")
        .conf("walker.naptime", "50ms")
        .start();
    c.exec("CREATE EXTENSION walker");
    c.exec("CREATE TABLE w (id int, v text)");
    writes_run(&c, "start");
    let first = c.query_one("SELECT pid FROM walker.status");
    c.set_conf("walker.debug_error_holding_lock", "budget");
    c.reload();
    c.wait_until(
        "the worker raised the injected ERROR",
        Duration::from_secs(30),
        || c.server_log().contains("injected ERROR"),
    );
    assert!(
        c.server_log().contains("held: true"),
        "the injection held the lock"
    );
    // Right after the exit, before the worker is restarted, writes run.
    writes_run(&c, "the worker exited holding the budget lock");
    for v in [
        "walker.budget_counters",
        "walker.rmgr_stats_rmgrs",
        "walker.status",
    ] {
        let (r, took) = timed(&c, &format!("SELECT count(*) FROM {v}"));
        r.unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(took < Duration::from_secs(2), "{v} took {took:?}");
    }
    assert!(
        c.server_log()
            .contains("released 1 plugin lock hold(s) this process still had at exit"),
        "the exit callback released the hold"
    );
    // The worker comes back (the injection is for its first start only) and walks.
    c.wait_until("the worker restarted", Duration::from_secs(30), || {
        let p = c.query_one("SELECT coalesce(pid::text, '') FROM walker.status");
        !p.is_empty() && p != first
    });
    assert_eq!(
        c.query_one("SELECT state FROM walker.plugins WHERE name = 'budget'"),
        "running"
    );
    writes_run(&c, "the restart");
    common::wait_caught_up(&c);
}
