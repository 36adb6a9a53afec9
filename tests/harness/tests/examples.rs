//! The examples a third party starts from, built and loaded the way a third party
//! would: the C plugin `examples/c-rmgr-counter` (compiled against
//! `walker_plugin.h` alone by `./walker test`, like the C fixtures), and the Rust
//! template `examples/plugin-template`, copied into a directory under `target/` and
//! built there with `cargo build --offline`, `walker-abi` its only walker dependency.
//! Each is loaded into a cluster and its view compared with pg_walinspect.

mod common;

use common::{wait_caught_up, walinspect_stats, WORKLOAD};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use walker_tests::{fixtures_dir, workspace_dir, Cluster};

/// Starts a cluster with `plugin` (from the fixtures directory), runs the workload
/// and waits until walker caught up.
fn cluster_with(name: &str, plugin: &str) -> Cluster {
    let c = Cluster::builder(name)
        .plugins(plugin)
        .fixtures_in_library_path(true)
        .start();
    c.exec("CREATE EXTENSION walker; CREATE EXTENSION pg_walinspect;");
    c.exec(WORKLOAD);
    wait_caught_up(&c);
    let p = c.query(&format!(
        "SELECT state, abi_version, errors FROM walker.plugins WHERE name = '{plugin}'"
    ));
    assert_eq!(p[0], ["running", "1.6", "0"], "{plugin} in walker.plugins");
    c
}

#[test]
fn the_c_example_counts_what_pg_walinspect_counts() {
    let c = cluster_with("cexample", "c_rmgr_counter");
    let rows = c.query(
        "SELECT rmgr, records, bytes, since_lsn, through_lsn FROM walker.c_rmgr_counter_rmgrs",
    );
    assert!(!rows.is_empty(), "the C example counted nothing");
    let (since, through) = (rows[0][3].clone(), rows[0][4].clone());
    let mut ours = BTreeMap::new();
    for r in &rows {
        assert_eq!(
            (&r[3], &r[4]),
            (&since, &through),
            "one range for every row"
        );
        ours.insert(
            r[0].clone(),
            (r[1].parse::<i64>().unwrap(), r[2].parse::<i64>().unwrap()),
        );
    }
    let theirs: BTreeMap<String, (i64, i64)> = walinspect_stats(&c, &since, &through)
        .into_iter()
        .map(|(rmgr, (count, record_size, fpi_size))| (rmgr, (count, record_size + fpi_size)))
        .collect();
    assert_eq!(
        ours, theirs,
        "c_rmgr_counter over {since}..{through} differs from pg_get_wal_stats"
    );
}

/// Copies the files of directory `from` into `to` (recursively, skipping `target`).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs cargo in `dir` with `target` as its target directory; panics with its
/// output when it fails.
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_out_of_tree_rust_plugin_builds_offline_and_loads() {
    let ws = workspace_dir();
    // Inside target/ (never outside the worktree); the crate's own target directory
    // stays between runs, so only the first build is cold.
    let base = ws.join("target/tmp/out-of-tree-plugin");
    let dir = base.join("my-walker-plugin");
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&ws.join("examples/plugin-template"), &dir);
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let template_path = "walker-abi = { path = \"../../walker-abi\" }";
    assert!(
        text.contains(template_path),
        "the template names walker-abi by {template_path}"
    );
    let abi = ws.join("walker-abi");
    std::fs::write(
        &manifest,
        text.replace(
            template_path,
            &format!("walker-abi = {{ path = {:?} }}", abi.to_str().unwrap()),
        ),
    )
    .unwrap();
    // The workspace's lock file: the same crate versions, all in the local registry.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target: PathBuf = base.join("target");

    cargo(&dir, &target, &["build", "--offline", "--quiet"]);
    // walker-abi is its only walker dependency.
    let tree = cargo(
        &dir,
        &target,
        &[
            "tree",
            "--offline",
            "--prefix",
            "none",
            "--edges",
            "normal,build",
            "--format",
            "{p}",
        ],
    );
    let walker: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("walker"))
        .map(|l| l.split(' ').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        walker,
        ["walker-abi"],
        "walker packages in the template's tree:\n{tree}"
    );

    let built = target.join("debug/libmy_walker_plugin.so");
    let installed = fixtures_dir().join("my_walker_plugin.so");
    std::fs::copy(&built, &installed)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), installed.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let c = cluster_with("outoftree", "my_walker_plugin");
    let t = c
        .query("SELECT records, bytes, since_lsn, through_lsn FROM walker.my_walker_plugin_totals");
    let (since, through) = (&t[0][2], &t[0][3]);
    let (count, bytes) = walinspect_stats(&c, since, through)
        .values()
        .fold((0i64, 0i64), |(n, b), &(count, record_size, fpi_size)| {
            (n + count, b + record_size + fpi_size)
        });
    assert!(count > 0, "no WAL over {since}..{through}");
    assert_eq!(
        (
            t[0][0].parse::<i64>().unwrap(),
            t[0][1].parse::<i64>().unwrap()
        ),
        (count, bytes),
        "my_walker_plugin over {since}..{through} differs from pg_get_wal_stats"
    );
}
