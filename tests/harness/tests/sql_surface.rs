//! The SQL surface tier: what `CREATE EXTENSION walker` (with every shipped plugin)
//! puts in the database, and how each entry point fails, compared line by line with a
//! reviewed expected output (`tests/harness/expected/sql_surface.out`), as
//! PostgreSQL's own regression tests do. The statements are in
//! `tests/harness/sql/surface.sql` (relations, view columns, functions with their
//! security, settings and grants, roles) and `tests/harness/sql/errors.sql` (one call
//! per line: success, or SQLSTATE and message). A change of the surface shows as a
//! diff; after reviewing it, `WALKER_BLESS=1` rewrites the expected file.
//! `expected/sql_surface.pg<major>.out`, when present, takes precedence for that
//! major.

mod common;

use std::path::PathBuf;
use std::time::Duration;
use walker_tests::Cluster;

fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The outcome of one line of errors.sql: `ok`, or `SQLSTATE: message` from psql's
/// verbose error (`ERROR:  42501: permission denied ...`).
fn outcome(result: Result<String, String>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            let line = e
                .lines()
                .find(|l| l.starts_with("ERROR:"))
                .unwrap_or(e.lines().next().unwrap_or(""));
            line.trim_start_matches("ERROR:").trim().to_string()
        }
    }
}

/// The lines that differ, as a short unified listing (`-` expected, `+` got).
fn diff(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i), g.get(i));
        if a != b && shown < 40 {
            shown += 1;
            if let Some(a) = a {
                out.push_str(&format!("line {}: - {a}\n", i + 1));
            }
            if let Some(b) = b {
                out.push_str(&format!("line {}: + {b}\n", i + 1));
            }
        }
    }
    out
}

#[test]
fn the_sql_surface_matches_the_expected_output() {
    let c = Cluster::builder("sql_surface")
        .plugins("rmgr_stats, garbagemap, autosizer, budget")
        .autovacuum(false)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE ROLE surface_nobody;");
    c.wait_until(
        "the budget policies are loaded",
        Duration::from_secs(60),
        || c.query_one("SELECT policies_loaded FROM walker.budget_counters") == "t",
    );

    let sql = harness_dir().join("sql");
    let surface = std::fs::read_to_string(sql.join("surface.sql")).expect("surface.sql");
    let mut got = c
        .psql("postgres", &surface)
        .unwrap_or_else(|e| panic!("surface.sql failed: {e}"));
    got.push_str("\n== errors: statement -> outcome\n");
    let errors = std::fs::read_to_string(sql.join("errors.sql")).expect("errors.sql");
    for line in errors.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        let run = c.psql("postgres", &format!("\\set VERBOSITY verbose\n{line}"));
        got.push_str(&format!("{line}\n  -> {}\n", outcome(run)));
    }

    let expected_dir = harness_dir().join("expected");
    let major = common::server_version_num(&c) / 10_000;
    let per_major = expected_dir.join(format!("sql_surface.pg{major}.out"));
    let path = if per_major.exists() {
        per_major
    } else {
        expected_dir.join("sql_surface.out")
    };
    if std::env::var_os("WALKER_BLESS").is_some() {
        std::fs::write(&path, &got).expect("write the expected output");
        eprintln!("wrote {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == got,
        "walker's SQL surface on PostgreSQL {major} differs from {}:\n{}\nReview the change; if it is intended, rewrite the file with WALKER_BLESS=1 ./walker test --pg {major} --test sql_surface",
        path.display(),
        diff(&expected, &got)
    );
}
