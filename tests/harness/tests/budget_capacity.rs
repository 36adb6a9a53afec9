//! The budget's table capacities are settings read at server start (issue 15 item
//! 13): with `budget.max_scopes = 64` the scope table holds 64 scopes and evicts once
//! they are used, as the README's settings table says; with `budget.max_policies = 2`
//! a third policy is refused when created and, when a row gets into the table anyway,
//! the load is refused with the two in force; a value out of range is refused, naming
//! the setting and its range.

mod common;

use common::{budget, wait_caught_up};
use std::time::Duration;
use walker_tests::Cluster;

fn cluster(name: &str, extra: &[(&str, &str)]) -> Cluster {
    let mut b = budget::builder(name).autovacuum(false);
    for (k, v) in extra {
        b = b.conf(k, v);
    }
    budget::start(b)
}

fn number(c: &Cluster, sql: &str) -> i64 {
    c.query_one(sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
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
        roles.push_str(&format!(
            "CREATE ROLE r{r} LOGIN; GRANT INSERT ON t TO r{r};"
        ));
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
    assert_eq!(c.query_one("SHOW budget.max_policies"), "64");
    let err = c
        .psql("postgres", "ALTER SYSTEM SET budget.max_policies = 0")
        .expect_err("no policy table is below the range");
    assert!(
        err.contains("budget.max_policies") && err.contains("1 .. 16384"),
        "the refusal names the setting and its range: {err}"
    );
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
        log.contains(
            "100 is outside the valid range for parameter \"budget.max_profiles\" (256 .. 1048576)"
        ),
        "the log names the refused value and the range"
    );
    assert_eq!(c.query_one("SHOW budget.max_profiles"), "4096");
}

#[test]
fn the_policy_table_holds_budget_max_policies() {
    let c = cluster("capacity_policies", &[("budget.max_policies", "2")]);
    assert_eq!(c.query_one("SHOW budget.max_policies"), "2");
    let loaded = |c: &Cluster| number(c, "SELECT policies FROM walker.budget_counters");
    c.exec(
        "SELECT walker.budget_create_policy('role', 'a', 1000, 1000); \
         SELECT walker.budget_create_policy('role', 'b', 1000, 1000);",
    );
    c.query_one("SELECT walker.budget_sync()");
    assert_eq!(loaded(&c), 2);

    // A third would never be in force: refused when created, naming the setting.
    let err = c
        .psql(
            "postgres",
            "\\set VERBOSITY verbose\nSELECT walker.budget_create_policy('role', 'c', 1000, 1000)",
        )
        .expect_err("a third policy with budget.max_policies = 2");
    assert_eq!(budget::sqlstate_of(&err), "53400", "{err}");
    assert!(err.contains("budget.max_policies"), "{err}");
    assert_eq!(number(&c, "SELECT count(*) FROM walker.budget_policies"), 2);

    // A row that got in past the functions (a superuser's INSERT): the load is
    // refused with the cause and the fix, and the two loaded policies stay in force.
    c.exec(
        "INSERT INTO walker.budget_policies (scope_kind, scope_value, rate_bytes_per_sec, burst_bytes, mode) \
         VALUES ('role', 'c', 1000, 1000, 'observe')",
    );
    let err = c
        .psql("postgres", "SELECT walker.budget_reload()")
        .expect_err("three rows do not fit two slots");
    assert!(
        err.contains("holds 3 policies") && err.contains("at most 2 (budget.max_policies)"),
        "{err}"
    );
    assert_eq!(loaded(&c), 2);

    // Raised (at a restart), all three are loaded.
    c.set_conf("budget.max_policies", "3");
    c.restart();
    c.wait_until(
        "the three policies are loaded",
        Duration::from_secs(60),
        || loaded(&c) == 3,
    );
    eprintln!("budget.max_policies = 2: third policy refused ({err}); 3 after raising it");
}
