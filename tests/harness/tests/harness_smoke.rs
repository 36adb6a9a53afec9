//! Self-test of the harness: real clusters, without walker (works before the
//! extension is installed).

use std::time::Duration;
use walker_tests::{fixtures_dir, Cluster};

#[test]
fn two_clusters_at_once_are_independent() {
    let a = Cluster::builder("smoke-a")
        .preload_walker(false)
        .autovacuum(false)
        .start();
    let b = Cluster::builder("smoke-b")
        .preload_walker(false)
        .conf("work_mem", "8MB")
        .start();

    assert_ne!(a.port(), b.port(), "each cluster gets its own port");
    assert_ne!(
        a.data_dir(),
        b.data_dir(),
        "each cluster gets its own directory"
    );
    assert!(a.data_dir().join("PG_VERSION").is_file());
    assert!(b.data_dir().join("PG_VERSION").is_file());

    assert_eq!(a.query_one("SELECT 1"), "1");
    assert_eq!(b.query_one("SELECT 1"), "1");
    assert_eq!(a.query_one("SHOW port"), a.port().to_string());
    assert_eq!(b.query_one("SHOW port"), b.port().to_string());

    // Settings: harness defaults and the builder's extra lines.
    assert_eq!(a.query_one("SHOW shared_buffers"), "32MB");
    assert_eq!(a.query_one("SHOW max_connections"), "20");
    assert_eq!(a.query_one("SHOW fsync"), "off");
    assert_eq!(a.query_one("SHOW autovacuum"), "off");
    assert_eq!(b.query_one("SHOW autovacuum"), "on");
    assert_eq!(b.query_one("SHOW work_mem"), "8MB");
    assert_eq!(a.query_one("SHOW shared_preload_libraries"), "");

    // Data written to one cluster is not in the other.
    a.exec("CREATE TABLE only_in_a (id int PRIMARY KEY, v text); INSERT INTO only_in_a SELECT g, 'x' || g FROM generate_series(1, 3) g");
    assert_eq!(
        a.query("SELECT id, v FROM only_in_a ORDER BY id"),
        vec![
            vec!["1".to_string(), "x1".to_string()],
            vec!["2".into(), "x2".into()],
            vec!["3".into(), "x3".into()]
        ]
    );
    assert!(b
        .query("SELECT 1 FROM pg_class WHERE relname = 'only_in_a'")
        .is_empty());

    // Errors come back as Err with the server's message.
    let err = b.psql("postgres", "SELECT * FROM only_in_a").unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    let err = a
        .psql("postgres", "SELECT 1; SELECT 1/0; SELECT 2")
        .unwrap_err();
    assert!(err.contains("division by zero"), "{err}");

    // Other users and databases.
    a.exec("CREATE ROLE alice LOGIN; CREATE DATABASE other OWNER alice");
    assert_eq!(
        a.psql_as(
            "alice",
            "other",
            "SELECT current_user || '@' || current_database()"
        )
        .unwrap(),
        "alice@other"
    );

    // Reload, restart, stop.
    a.set_conf("work_mem", "16MB");
    a.reload();
    a.wait_until("work_mem reloaded", Duration::from_secs(10), || {
        a.query_one("SHOW work_mem") == "16MB"
    });
    a.restart();
    assert_eq!(a.query_one("SELECT count(*) FROM only_in_a"), "3");
    assert!(a
        .server_log()
        .contains("database system is ready to accept connections"));

    let dir_b = b.data_dir().to_path_buf();
    b.stop();
    assert!(b.psql("postgres", "SELECT 1").is_err());
    drop(b);
    assert!(!dir_b.exists(), "a dropped cluster's directory is removed");

    assert!(fixtures_dir().is_absolute());
}

#[test]
fn wait_until_panics_with_the_log_tail() {
    let c = Cluster::builder("smoke-wait").preload_walker(false).start();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.wait_until(
            "something that never happens",
            Duration::from_millis(300),
            || false,
        )
    }));
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("something that never happens"), "{msg}");
    assert!(msg.contains("server log tail"), "{msg}");
}
