//! The budget's table capacities are settings read at server start (issue 15 item
//! 13): with `budget.max_scopes = 64` the scope table holds 64 scopes and evicts once
//! they are used, as the README's settings table says; a value out of range is
//! refused, naming the setting and its range.

mod common;

use common::wait_caught_up;
use std::time::Duration;
use walker_tests::Cluster;

fn cluster(name: &str, extra: &[(&str, &str)]) -> Cluster {
    let mut b = Cluster::builder(name)
        .plugins("budget")
        .autovacuum(false)
        .conf("walker.naptime", "50ms");
    for (k, v) in extra {
        b = b.conf(k, v);
    }
    let c = b.start();
    c.exec("CREATE EXTENSION walker;");
    c.wait_until("the policies are loaded", Duration::from_secs(30), || {
        c.query_one("SELECT policies_loaded FROM walker.budget_counters") == "t"
    });
    c
}

fn number(c: &Cluster, sql: &str) -> i64 {
    c.query_one(sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn evicted(c: &Cluster) -> i64 {
    number(c, "SELECT scopes_evicted FROM walker.budget_counters")
}

/// One session of `role` writing once under each of `names` application names.
fn write_as(c: &Cluster, role: &str, prefix: &str, names: usize) {
    let mut sql = String::new();
    for i in 0..names {
        sql.push_str(&format!(
            "SET application_name = '{prefix}_{i}'; INSERT INTO t VALUES ({i});\n"
        ));
    }
    c.psql_as(role, "postgres", &sql).unwrap();
}

#[test]
fn the_scope_table_holds_budget_max_scopes() {
    let c = cluster("capacity_scopes", &[("budget.max_scopes", "64")]);
    assert_eq!(c.query_one("SHOW budget.max_scopes"), "64");
    let mut roles = String::from("CREATE TABLE t (id int);");
    for r in 0..16 {
        roles.push_str(&format!("CREATE ROLE r{r} LOGIN; GRANT INSERT ON t TO r{r};"));
    }
    c.exec(&roles);
    wait_caught_up(&c);
    let moved = |c: &Cluster| {
        number(
            c,
            "SELECT scopes_evicted + scopes_full FROM walker.budget_counters",
        )
    };

    // 16 roles with 3 application names each: 48 session scopes (a role keeps up to
    // 64 / 8 = 8), which with the others fit in 64: nothing is evicted.
    for r in 0..16 {
        write_as(&c, &format!("r{r}"), &format!("a{r}"), 3);
    }
    wait_caught_up(&c);
    let rows_a = number(&c, "SELECT count(*) FROM walker.budget_scopes");
    assert!(
        (48..64).contains(&rows_a),
        "48 session scopes and the few others fit ({rows_a})"
    );
    assert_eq!(moved(&c), 0, "below budget.max_scopes nothing is evicted");

    // 48 more: the table fills to exactly 64 scopes, and every new scope beyond the
    // free slots evicts a least recently used one (or, when every candidate still
    // has transactions in the map, is charged to the evicted scope): the counters
    // move by at least 48 - (64 - rows_a).
    c.exec("CHECKPOINT");
    wait_caught_up(&c);
    for r in 0..16 {
        write_as(&c, &format!("r{r}"), &format!("b{r}"), 3);
    }
    wait_caught_up(&c);
    let rows_b = number(&c, "SELECT count(*) FROM walker.budget_scopes");
    assert_eq!(rows_b, 64, "the scope table holds budget.max_scopes scopes");
    let want = 48 - (64 - rows_a);
    let got = moved(&c);
    assert!(
        got >= want,
        "48 new scopes with {} free slots: at least {want} evictions or refusals ({got})",
        64 - rows_a
    );
    eprintln!(
        "budget.max_scopes = 64: {rows_a} scopes after 48 names, none evicted; {rows_b} after 96, scopes_evicted + scopes_full = {got} (at least {want})"
    );
}

#[test]
fn a_capacity_out_of_range_is_refused() {
    let c = cluster("capacity_range", &[]);
    assert_eq!(c.query_one("SHOW budget.max_scopes"), "1024");
    assert_eq!(c.query_one("SHOW budget.max_profiles"), "4096");
    assert_eq!(c.query_one("SHOW budget.max_decisions"), "512");
    let err = c
        .psql("postgres", "ALTER SYSTEM SET budget.max_scopes = 10")
        .expect_err("10 scopes is below the range");
    assert!(
        err.contains("budget.max_scopes") && err.contains("64 .. 262144"),
        "the refusal names the setting and its range: {err}"
    );
    let err = c
        .psql("postgres", "SET budget.max_decisions = 1024")
        .expect_err("a capacity is not changed in a session");
    assert!(
        err.contains("budget.max_decisions") && err.contains("restart"),
        "{err}"
    );
    // In the configuration file: the server says why and keeps the default.
    c.set_conf("budget.max_profiles", "100");
    c.restart();
    let log = c.server_log();
    assert!(
        log.contains("100 is outside the valid range for parameter \"budget.max_profiles\" (256 .. 1048576)"),
        "the log names the refused value and the range"
    );
    assert_eq!(c.query_one("SHOW budget.max_profiles"), "4096");
}
