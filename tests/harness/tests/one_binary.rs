//! One plugin binary for every major: the plugin libraries the server under test
//! loads are byte for byte the files the workspace built once (`target/debug`), the
//! same files `./walker test` installs into every major's library directory, and each
//! runs there. `./walker test` runs this on every supported major.

use std::path::PathBuf;
use std::process::Command;
use walker_tests::{pg_bindir, workspace_dir, Cluster};

/// (cargo package's library file, installed name) of the shipped plugins.
const PLUGINS: [(&str, &str); 4] = [
    ("librmgr_stats.so", "rmgr_stats"),
    ("libgarbagemap.so", "garbagemap"),
    ("libautosizer.so", "autosizer"),
    ("libbudget.so", "budget"),
];

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_dir().join(d)
            }
        }
        _ => workspace_dir().join("target"),
    }
}

fn pg_config(arg: &str) -> String {
    let out = Command::new(pg_bindir().join("pg_config"))
        .arg(arg)
        .output()
        .expect("run pg_config");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_plugins_loaded_are_the_workspace_build_on_this_major() {
    let pkglibdir = PathBuf::from(pg_config("--pkglibdir"));
    for (built, name) in PLUGINS {
        let ours = target_dir().join("debug").join(built);
        let theirs = pkglibdir.join(format!("{name}.so"));
        let a = std::fs::read(&ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
        let b = std::fs::read(&theirs).unwrap_or_else(|e| panic!("{}: {e}", theirs.display()));
        assert!(
            a == b,
            "{} is not the workspace's {} (run ./walker test, which installs the one build into every major)",
            theirs.display(),
            ours.display()
        );
    }
    let names: Vec<&str> = PLUGINS.iter().map(|(_, n)| *n).collect();
    let c = Cluster::builder("one_binary")
        .plugins(&names.join(", "))
        .start();
    c.exec("CREATE EXTENSION walker");
    // The server is the major pg_config names (the one ./walker test selected).
    let version = pg_config("--version");
    let major: String = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(|ch| ch.is_ascii_digit())
        .collect();
    assert_eq!(
        c.query_one("SELECT current_setting('server_version_num')::int / 10000"),
        major
    );
    c.wait_until(
        "every plugin runs",
        std::time::Duration::from_secs(30),
        || {
            let rows = c.query(
                "SELECT name, state, coalesce(last_error, '') FROM walker.plugins ORDER BY name",
            );
            rows.len() == PLUGINS.len() && rows.iter().all(|r| r[1] == "running")
        },
    );
}
