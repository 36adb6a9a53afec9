//! The budget's calibration workload (`plugins/budget/sql/calibrate.sql`, issue 15
//! item 13) runs in a small size on a real cluster and prints its table (predicted
//! against actual WAL per kind of statement). Only sanity is asserted: every step wrote
//! WAL (measured by the server's insert LSN, not by the budget), and every run was
//! decided on with a prediction, learned (not zero) after the first round.

mod common;

use common::budget;
use std::process::Stdio;
use walker_tests::{client_command, workspace_dir};

const STEPS: [&str; 6] = [
    "1 insert",
    "2 hot update",
    "3 indexed update",
    "4 wide rows",
    "5 copy",
    "6 create index",
];

#[test]
fn the_calibration_workload_reports_predicted_against_actual_wal() {
    let c = budget::start(budget::builder("budget_calibrate"));
    let sql = workspace_dir().join("plugins/budget/sql/calibrate.sql");
    let out = client_command("psql", c.port(), "postgres")
        .args(["-X", "-P", "pager=off", "-d", "postgres"])
        .args(["-v", "rows=500", "-v", "rounds=3", "-v", "keep=1", "-f"])
        .arg(&sql)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The table, whatever the test runner does with captured output.
    eprintln!("{stdout}");
    assert!(out.status.success(), "calibrate.sql failed:\n{stderr}");
    assert!(
        stdout.contains("WAL budget calibration"),
        "{stdout}\n{stderr}"
    );

    let rows = c.query(
        "SELECT step, round, predicted, actual FROM walker_calibrate.results ORDER BY step, round",
    );
    assert_eq!(rows.len(), STEPS.len() * 3, "{rows:?}");
    for r in &rows {
        assert!(STEPS.contains(&r[0].as_str()), "{r:?}");
        let actual: f64 = r[3].parse().unwrap();
        assert!(actual > 0.0, "the step wrote no WAL: {r:?}");
        assert!(!r[2].is_empty(), "no prediction for the step: {r:?}");
        if r[1] != "1" {
            let predicted: i64 = r[2].parse().unwrap();
            assert!(
                predicted > 0,
                "nothing learned after the first round: {r:?}"
            );
        }
    }
    // The calibration removed its policy.
    assert_eq!(
        c.query_one(
            "SELECT count(*) FROM walker.budget_policies WHERE scope_value = 'walker_calibrate'"
        ),
        "0"
    );
}
