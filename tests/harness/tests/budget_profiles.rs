//! The budget's learned profiles and predictor (issue 15 item 13, pg_wal_budget
//! parity): profiles survive a clean restart and an immediate stop (they are in the
//! plugin's snapshot), and the predictor's parameters are settings.
//!
//! A prediction is read where admission uses it: `walker.budget_decisions.predicted_bytes`
//! of a statement an observe policy governs.

mod common;

use common::{budget, wait_caught_up};
use std::time::Duration;
use walker_tests::Cluster;

fn cluster(name: &str) -> Cluster {
    let c = budget::start(budget::builder(name).conf("walker.snapshot_interval", "1s"));
    c.exec("CREATE ROLE p LOGIN; CREATE TABLE t (id int, v text); GRANT INSERT, SELECT ON t TO p;");
    c
}

/// An observe policy on role p, loaded (polled in shared memory).
fn observe_p(c: &Cluster) {
    c.exec("SELECT walker.budget_create_policy('role', 'p', 1000000000, 1000000000, 'observe')");
    c.wait_until("the policy is loaded", Duration::from_secs(60), || {
        c.query_one("SELECT count(*) FROM walker.budget_buckets") == "1"
    });
}

/// Waits until the budget saved a snapshot at or after the current end of WAL.
fn wait_snapshot(c: &Cluster) {
    wait_caught_up(c);
    let target = c.query_one("SELECT pg_current_wal_insert_lsn()");
    c.wait_until("budget saves a snapshot", Duration::from_secs(60), || {
        c.query_one(&format!(
            "SELECT snapshot_lsn >= '{target}'::pg_lsn FROM walker.plugins WHERE name = 'budget'"
        )) == "t"
    });
}

/// Role p's profile of [`INSERT`] (query id, statements, average, largest): of p's
/// INSERT profiles per query, the one with the largest statement.
fn profile(c: &Cluster) -> Vec<String> {
    let rows = c.query(
        "SELECT query_id, statements, avg_bytes, max_bytes FROM walker.budget_profiles
         WHERE role_name = 'p' AND statement = 'insert' AND query_id IS NOT NULL
         ORDER BY max_bytes DESC LIMIT 1",
    );
    assert_eq!(rows.len(), 1, "an INSERT profile for p");
    rows[0].clone()
}

const INSERT: &str = "INSERT INTO t SELECT g, repeat('v', 50) FROM generate_series(1, 200) g";

/// Runs p's INSERT and returns the prediction admission made for it.
fn insert_predicted(c: &Cluster) -> i64 {
    let before: i64 = c
        .query_one("SELECT count(*) FROM walker.budget_decisions WHERE role_name = 'p'")
        .parse()
        .unwrap();
    c.psql_as("p", "postgres", INSERT).unwrap();
    let rows = c.query(
        "SELECT predicted_bytes FROM walker.budget_decisions WHERE role_name = 'p' ORDER BY at",
    );
    assert_eq!(rows.len() as i64, before + 1, "one decision for the INSERT");
    rows.last().unwrap()[0].parse().unwrap()
}

fn wait_running(c: &Cluster) {
    c.wait_until("budget runs again", Duration::from_secs(60), || {
        c.query_one("SELECT state FROM walker.plugins WHERE name = 'budget'") == "running"
    });
    wait_caught_up(c);
    c.wait_until(
        "the policy is loaded again",
        Duration::from_secs(60),
        || c.query_one("SELECT count(*) FROM walker.budget_buckets") == "1",
    );
}

#[test]
fn learned_profiles_survive_a_restart_and_an_immediate_stop() {
    let c = cluster("budget_profiles_restart");
    observe_p(&c);
    // Learn: the first INSERT is predicted from the class default; the next ones from
    // the query's own profile.
    for _ in 0..4 {
        insert_predicted(&c);
    }
    let learned = profile(&c);
    let avg: f64 = learned[2].parse().unwrap();
    assert!(avg > 1000.0, "200 rows write kilobytes: {learned:?}");

    // A clean restart: the profile is back as it was, and the next INSERT is predicted
    // from it (not from the default for writes, 8 kB).
    wait_snapshot(&c);
    c.restart();
    wait_running(&c);
    assert_eq!(profile(&c), learned, "after a clean restart");
    let predicted = insert_predicted(&c);
    assert_eq!(predicted, avg as i64, "the prediction after the restart");

    // An immediate stop (no shutdown snapshot): the last periodic snapshot's profile.
    let learned = profile(&c);
    wait_snapshot(&c);
    c.crash();
    c.start_again();
    wait_running(&c);
    assert_eq!(profile(&c), learned, "after an immediate stop");
    let avg: f64 = learned[2].parse().unwrap();
    assert_eq!(insert_predicted(&c), avg as i64);
}

/// Sets budget settings and waits until a new session sees them.
fn set(c: &Cluster, settings: &[(&str, &str)]) {
    for (k, v) in settings {
        c.set_conf(k, v);
    }
    c.reload();
    for (k, v) in settings {
        c.wait_until("the setting is reloaded", Duration::from_secs(30), || {
            c.query_one(&format!("SHOW {k}")) == *v
        });
    }
}

#[test]
fn the_predictor_and_its_parameters_are_settings() {
    let c = cluster("budget_predictor");
    observe_p(&c);
    c.exec("GRANT UPDATE ON t TO p");

    // Nothing learned yet for MERGE on this server: its prediction is the default for
    // writes.
    set(&c, &[("budget.default_write_prediction", "3kB")]);
    c.psql_as(
        "p",
        "postgres",
        "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'm')",
    )
    .unwrap();
    assert_eq!(
        c.query_one(
            "SELECT predicted_bytes FROM walker.budget_decisions WHERE role_name = 'p' ORDER BY at DESC LIMIT 1"
        ),
        "3072"
    );

    // The cap.
    for _ in 0..2 {
        insert_predicted(&c);
    }
    set(&c, &[("budget.max_prediction", "2kB")]);
    assert_eq!(insert_predicted(&c), 2048);
    set(&c, &[("budget.max_prediction", "0")]);

    // statement_class: a new INSERT query (no profile of its own) is predicted from
    // the class's profile for the scope, like any other INSERT of p.
    set(&c, &[("budget.predictor", "statement_class")]);
    c.psql_as("p", "postgres", "INSERT INTO t VALUES (-1, 'other')")
        .unwrap();
    let class_avg: f64 = c
        .query_one(
            "SELECT avg_bytes FROM walker.budget_profiles WHERE role_name = 'p' AND statement = 'insert' AND query_id IS NULL",
        )
        .parse()
        .unwrap();
    let predicted = insert_predicted(&c);
    assert_eq!(
        predicted, class_avg as i64,
        "statement_class uses the class's profile"
    );
    // profile_ewma: the INSERT's own profile (200 rows), not the class's mix.
    set(&c, &[("budget.predictor", "profile_ewma")]);
    let own: f64 = profile(&c)[2].parse().unwrap();
    assert_eq!(insert_predicted(&c), own as i64);

    // ewma_alpha = 1: the profile is the last statement's WAL; a 1-row run of the same
    // query (same query id, constants differ) after 200-row runs.
    set(&c, &[("budget.ewma_alpha", "1")]);
    c.psql_as(
        "p",
        "postgres",
        "INSERT INTO t SELECT g, repeat('v', 50) FROM generate_series(1, 1) g",
    )
    .unwrap();
    let p = profile(&c);
    let (avg, max): (f64, f64) = (p[2].parse().unwrap(), p[3].parse().unwrap());
    assert!(
        avg < max / 5.0,
        "alpha 1 keeps only the last (small) statement: {p:?}"
    );

    // Invalid values are refused with the choices.
    let e = c
        .psql("postgres", "ALTER SYSTEM SET budget.predictor = 'magic'")
        .unwrap_err();
    assert!(
        e.contains("profile_ewma") && e.contains("statement_class"),
        "{e}"
    );
    let e = c
        .psql("postgres", "ALTER SYSTEM SET budget.ewma_alpha = 0")
        .unwrap_err();
    assert!(e.contains("ewma_alpha"), "{e}");
}
