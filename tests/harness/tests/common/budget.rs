//! Helpers the budget suites share: a cluster with budget loaded and its policies
//! read, psql's SQLSTATE, waiting for policy changes to load, and driving a policy's
//! bucket into debt.

use super::wait_caught_up;
use std::time::Duration;
use walker_tests::{Cluster, ClusterBuilder};

/// A cluster named `name` with budget loaded, the worker napping 50 ms and query ids
/// on (budget's profiles key on them); add settings to it, then [`start`].
pub fn builder(name: &str) -> ClusterBuilder {
    Cluster::builder(name)
        .plugins("budget")
        .conf("walker.naptime", "50ms")
        .conf("compute_query_id", "on")
}

/// Starts `b`, creates walker's and pg_walinspect's extensions and waits until the
/// policies were loaded once.
pub fn start(b: ClusterBuilder) -> Cluster {
    let c = b.start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    wait_policies_loaded(&c);
    c
}

/// Waits until the policy table was loaded since the server started.
pub fn wait_policies_loaded(c: &Cluster) {
    c.wait_until("the policies are loaded", Duration::from_secs(30), || {
        c.query_one("SELECT policies_loaded FROM walker.budget_counters") == "t"
    });
}

/// The SQLSTATE of an error psql printed with `VERBOSITY verbose` ("ERROR:  WB001:
/// message"); empty when there is none.
pub fn sqlstate_of(err: &str) -> &str {
    err.split("ERROR:")
        .nth(1)
        .map(|s| s.trim())
        .and_then(|s| s.get(..5))
        .unwrap_or("")
}

/// Waits until every committed policy change is loaded (changes take effect after
/// their transaction commits).
pub fn sync(c: &Cluster) {
    c.exec("SELECT walker.budget_sync(60000)");
}

/// Writes `rows` rows into table `spend` as `role` (admitted: its bucket is not in
/// debt yet), then waits until the bucket of `policy` owes more than `debt` bytes.
pub fn spend(c: &Cluster, role: &str, policy: &str, rows: u32, debt: u64) {
    c.psql_as(
        role,
        "postgres",
        &format!("INSERT INTO spend SELECT g, repeat('s', 100) FROM generate_series(1, {rows}) g"),
    )
    .unwrap();
    wait_caught_up(c);
    in_debt(c, policy, debt);
}

/// Waits until the bucket of `policy` owes more than `debt` bytes.
pub fn in_debt(c: &Cluster, policy: &str, debt: u64) {
    c.wait_until("the bucket is in debt", Duration::from_secs(30), || {
        c.query_one(&format!(
            "SELECT tokens < -{debt} FROM walker.budget_buckets WHERE policy_id = {policy}"
        )) == "t"
    });
}
