//! Policy changes of the budget plugin are transactional (issue 15 item 10): a change
//! takes effect once its transaction commits, loaded from the committed table; a
//! rolled-back create or drop has no effect; an admin's open transaction is never
//! loaded, even when another admin's committed change is.
//!
//! What is loaded is read from `walker.budget_buckets` (shared memory), what governs a
//! statement from `walker.budget_decisions`; what is committed from the table itself.
//! Each check first waits until a load happened after the change
//! (`budget_counters.policy_loads` grew), so the load that would carry a wrong change
//! has certainly happened.

mod common;

use common::budget;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::Duration;
use walker_tests::Cluster;

fn cluster(name: &str) -> Cluster {
    budget::start(budget::builder(name))
}

/// Policy ids in shared memory.
fn loaded(c: &Cluster) -> Vec<String> {
    c.query("SELECT policy_id FROM walker.budget_buckets ORDER BY policy_id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

fn loads(c: &Cluster) -> i64 {
    c.query_one("SELECT policy_loads FROM walker.budget_counters")
        .parse()
        .unwrap()
}

/// Waits until shared memory was loaded again since `before` loads.
fn loaded_since(c: &Cluster, before: i64) {
    c.wait_until(
        "the policies are loaded again",
        Duration::from_secs(60),
        || loads(c) > before,
    );
}

/// Commits a new observe policy on a role nobody uses and waits (without
/// `budget_sync`, by polling shared memory) until it is loaded: every change committed
/// or rolled back before it has then been through a load. Returns its id.
fn marker(c: &Cluster, n: u32) -> String {
    let id = c.query_one(&format!(
        "SELECT walker.budget_create_policy('role', 'marker{n}', 1000, 1000, 'observe')"
    ));
    c.wait_until(
        "the committed marker policy is loaded",
        Duration::from_secs(60),
        || loaded(c).contains(&id),
    );
    id
}

/// A psql session kept open (for a transaction left open across other sessions' work).
struct Open {
    child: Child,
}

impl Open {
    fn new(c: &Cluster, app: &str) -> Open {
        let child = walker_tests::client_command("psql", c.port(), "postgres")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
            .env("PGAPPNAME", app)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Open { child }
    }

    fn send(&mut self, sql: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn policy_changes_take_effect_at_commit_from_the_committed_table() {
    let c = cluster("budget_txn_policies");
    c.exec("CREATE ROLE w LOGIN; CREATE TABLE t (id int, v text); GRANT INSERT, SELECT ON t TO w;");

    // A committed create is loaded (polled, no help from budget_sync).
    let kept =
        c.query_one("SELECT walker.budget_create_policy('role', 'w', 1000, 1000, 'observe')");
    c.wait_until(
        "the committed policy is loaded",
        Duration::from_secs(60),
        || loaded(&c).contains(&kept),
    );

    // A create rolled back: in the table never, in shared memory never, and the role
    // it named is not governed.
    c.exec("CREATE ROLE x LOGIN; GRANT INSERT, SELECT ON t TO x;");
    let before = loads(&c);
    c.exec(
        "BEGIN;
         SELECT walker.budget_create_policy('role', 'x', 1000, 1000, 'reject');
         ROLLBACK;",
    );
    loaded_since(&c, before);
    assert_eq!(
        c.query_one("SELECT count(*) FROM walker.budget_policies WHERE scope_value = 'x'"),
        "0"
    );
    let committed: Vec<String> = c
        .query("SELECT id FROM walker.budget_policies ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        loaded(&c),
        committed,
        "shared memory holds the committed table"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM walker.budget_buckets WHERE scope_value = 'x'"),
        "0",
        "a rolled-back create was loaded"
    );
    c.psql_as("x", "postgres", "INSERT INTO t VALUES (1, 'x')")
        .unwrap();
    assert_eq!(
        c.query_one("SELECT count(*) FROM walker.budget_decisions WHERE role_name = 'x'"),
        "0",
        "the rolled-back policy governed a statement"
    );

    // A drop rolled back keeps the policy (and its statements governed).
    let before = loads(&c);
    c.exec(&format!(
        "BEGIN; SELECT walker.budget_drop_policy({kept}); ROLLBACK;"
    ));
    loaded_since(&c, before);
    assert!(
        loaded(&c).contains(&kept),
        "a rolled-back drop unloaded policy {kept}"
    );
    c.psql_as("w", "postgres", "INSERT INTO t VALUES (2, 'w')")
        .unwrap();
    assert_eq!(
        c.query_one(&format!(
            "SELECT count(*) FROM walker.budget_decisions WHERE role_name = 'w' AND policy_id = {kept}"
        )),
        "1"
    );

    // A mode change rolled back keeps the mode.
    let before = loads(&c);
    c.exec(&format!(
        "BEGIN; SELECT walker.budget_set_mode({kept}, 'reject'); ROLLBACK;"
    ));
    loaded_since(&c, before);
    assert_eq!(
        c.query_one(&format!(
            "SELECT mode FROM walker.budget_buckets WHERE policy_id = {kept}"
        )),
        "observe"
    );

    // Two admins: A's change stays unloaded while A's transaction is open, even though
    // B's committed change is loaded meanwhile; once A commits, A's is loaded too.
    let mut a = Open::new(&c, "admin_a");
    a.send("BEGIN;");
    a.send("SELECT walker.budget_create_policy('role', 'admin_a', 1000, 1000, 'observe');");
    c.wait_until("admin A's transaction is open", Duration::from_secs(30), || {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'admin_a' AND state = 'idle in transaction'",
        ) == "1"
    });
    let b = marker(&c, 1);
    assert!(loaded(&c).contains(&b));
    assert_eq!(
        c.query_one("SELECT count(*) FROM walker.budget_buckets WHERE scope_value = 'admin_a'"),
        "0",
        "an uncommitted change was loaded"
    );
    assert_eq!(
        c.query_one("SELECT policy_changes_waiting FROM walker.budget_counters"),
        "1",
        "admin A's open transaction waits"
    );
    // In A's transaction, waiting for the load is refused with the reason.
    a.send("\\set ON_ERROR_STOP 0");
    a.send("SAVEPOINT s; SELECT walker.budget_sync(1000); ROLLBACK TO SAVEPOINT s;");
    a.send("COMMIT;");
    let a_out = a.finish();
    let a_id: String = a_out.lines().next().unwrap_or("").to_string();
    assert!(!a_id.is_empty(), "admin A's create returned {a_out:?}");
    // After the commit, budget_sync returns once A's change is loaded.
    c.exec("SELECT walker.budget_sync(60000)");
    assert!(
        loaded(&c).contains(&a_id),
        "admin A's committed policy {a_id} is not loaded after budget_sync"
    );
    assert_eq!(
        c.query_one("SELECT policy_changes_waiting FROM walker.budget_counters"),
        "0"
    );

    // A drop committed is unloaded; budget_sync waits for it.
    c.exec(&format!("SELECT walker.budget_drop_policy({kept})"));
    c.exec("SELECT walker.budget_sync(60000)");
    assert!(!loaded(&c).contains(&kept));
}

#[test]
fn budget_sync_refuses_inside_the_changing_transaction() {
    let c = cluster("budget_txn_sync");
    let e = c
        .psql(
            "postgres",
            "BEGIN;
             SELECT walker.budget_create_policy('role', 'y', 1000, 1000, 'observe');
             SELECT walker.budget_sync(1000);",
        )
        .unwrap_err();
    assert!(
        e.contains("this transaction changed WAL budget policies"),
        "{e}"
    );
    let e = c
        .psql(
            "postgres",
            "BEGIN;
             SELECT walker.budget_create_policy('role', 'y', 1000, 1000, 'observe');
             SELECT walker.budget_reload();",
        )
        .unwrap_err();
    assert!(e.contains("would load uncommitted changes"), "{e}");
    // Nothing of either attempt is loaded.
    c.exec("SELECT walker.budget_sync(60000)");
    // An announcement of a transaction id no transaction has does not block
    // budget_sync and is dropped after a few loads.
    c.exec("SELECT walker.budget_policy_changed('{\"xid\": 999999999999}')");
    c.exec("SELECT walker.budget_sync(60000)");
    c.wait_until(
        "the bogus announcement is dropped",
        Duration::from_secs(60),
        || c.query_one("SELECT policy_changes_waiting FROM walker.budget_counters") == "0",
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM walker.budget_buckets"),
        "0"
    );
}
