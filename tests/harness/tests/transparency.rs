//! walker never changes what clients see: a script of failing statements
//! (`sql/client_errors.sql`: syntax errors with positions, COPY errors, PL/pgSQL
//! errors with context and custom SQLSTATEs, trigger and SQL-function errors,
//! constraint violations with their schema/table/column/constraint/datatype fields, a
//! deferred constraint at COMMIT, a serialization failure, statement_timeout, a
//! cancel, errors in transactions with savepoints, failing utility statements,
//! notices and warnings) gives exactly the same psql output, with
//! `VERBOSITY verbose` and `SHOW_CONTEXT always`, on a server with walker and every
//! shipped plugin (budget's hooks governing the session) as on a server without
//! walker; also with `RUST_BACKTRACE=1` in the server's environment and with
//! `pg_stat_statements` loaded before and after walker.

use std::path::PathBuf;
use std::process::Stdio;
use walker_tests::{client_command, Cluster, ClusterBuilder};

const ALL_PLUGINS: &str = "rmgr_stats, garbagemap, autosizer, budget";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql/client_errors.sql")
}

/// What psql printed: standard output and standard error, each whole.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    stdout: String,
    stderr: String,
}

fn run_script(c: &Cluster) -> Seen {
    let out = client_command("psql", c.port(), "postgres")
        .args(["-X", "-d", "postgres", "-f"])
        .arg(script())
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    Seen {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The first lines where `got` differs from `want`, for the failure message.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let at = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let show = |lines: &[&str]| lines[at.min(lines.len())..(at + 8).min(lines.len())].join("\n");
    format!(
        "first difference at line {}:\n--- without walker ---\n{}\n--- with walker ---\n{}",
        at + 1,
        show(&w),
        show(&g)
    )
}

fn assert_same(what: &str, want: &Seen, got: &Seen) {
    assert!(
        want.stdout == got.stdout,
        "{what}: standard output differs; {}",
        first_difference(&want.stdout, &got.stdout)
    );
    assert!(
        want.stderr == got.stderr,
        "{what}: errors and notices differ; {}",
        first_difference(&want.stderr, &got.stderr)
    );
}

/// A cluster with walker, every shipped plugin, and a budget policy that governs the
/// script's session (observe mode: it decides on every writing statement, never
/// blocks).
fn with_walker(builder: ClusterBuilder) -> Cluster {
    let c = builder.plugins(ALL_PLUGINS).start();
    c.exec("CREATE EXTENSION walker");
    c.exec(
        "SELECT walker.budget_create_policy('role', 'postgres', 1000000000, 2000000000, 'observe')",
    );
    // A policy change takes effect once committed and loaded: wait for it.
    c.exec("SELECT walker.budget_sync(60000)");
    c
}

/// Decisions budget took for the script's statements: the hooks were on the path.
fn governed_statements(c: &Cluster) -> i64 {
    c.query_one("SELECT coalesce(sum(admitted + observed_over), 0) FROM walker.budget_buckets")
        .parse()
        .expect("a count")
}

#[test]
fn clients_see_the_same_errors_notices_and_results_with_and_without_walker() {
    let plain = Cluster::builder("transp_plain")
        .preload_walker(false)
        .server_env("RUST_BACKTRACE", "1")
        .start();
    let want = run_script(&plain);
    drop(plain);
    // The script really fails where it should: a sample of what it must show.
    for expected in [
        "ERROR:  42601: syntax error at or near \"WHERE\"",
        "LINE 1: SELECT * FROM WHERE;",
        "CONTEXT:  COPY items, line 2, column qty: \"not-a-number\"",
        "ERROR:  P0099: application error",
        "SCHEMA NAME:  app",
        "CONSTRAINT NAME:  items_name_len",
        "DATATYPE NAME:  positive",
        "PL/pgSQL function app.inner_fail(integer) line 4 at RAISE",
        "ERROR:  40001: could not serialize access due to concurrent update",
        "ERROR:  57014: canceling statement due to statement timeout",
        "ERROR:  57014: canceling statement due to user request",
        "ERROR:  23503: insert or update on table \"children\" violates foreign key constraint",
        "ERROR:  XX123: rethrown",
    ] {
        assert!(
            want.stderr.contains(expected),
            "the script's output without walker lacks {expected:?}:\n{}",
            want.stderr
        );
    }
    assert!(!want.stderr.contains("stack backtrace"), "{}", want.stderr);

    let variants: [(&str, ClusterBuilder); 4] = [
        (
            "walker",
            Cluster::builder("transp_walker").server_env("RUST_BACKTRACE", "0"),
        ),
        (
            "walker with RUST_BACKTRACE=1",
            Cluster::builder("transp_bt").server_env("RUST_BACKTRACE", "1"),
        ),
        (
            "pg_stat_statements before walker",
            Cluster::builder("transp_pgss1")
                .conf("shared_preload_libraries", "pg_stat_statements, walker")
                .server_env("RUST_BACKTRACE", "1"),
        ),
        (
            "pg_stat_statements after walker",
            Cluster::builder("transp_pgss2")
                .conf("shared_preload_libraries", "walker, pg_stat_statements"),
        ),
    ];
    for (what, builder) in variants {
        let c = with_walker(builder);
        let before = governed_statements(&c);
        let got = run_script(&c);
        assert_same(what, &want, &got);
        let after = governed_statements(&c);
        assert!(
            after - before >= 20,
            "{what}: budget governed only {} of the script's statements (the hooks were not on the path)",
            after - before
        );
        let plugins = c.query("SELECT name, state FROM walker.plugins ORDER BY name");
        assert!(
            plugins.iter().all(|r| r[1] == "running"),
            "{what}: every plugin still runs: {plugins:?}"
        );
    }
}
