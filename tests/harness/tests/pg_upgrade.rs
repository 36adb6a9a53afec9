//! `pg_upgrade` from the previous supported major to the one under test, with walker
//! and every shipped plugin: the upgrade succeeds with walker preloaded in the new
//! cluster, the new cluster starts walker cleanly on its own WAL (a new physical slot
//! `walker`: pg_upgrade never carries physical slots), and no plugin state of the old
//! cluster is applied to the new WAL: the old snapshots stay in the old data
//! directory, and copied over by hand they are refused (another system identifier)
//! with a WARNING and the plugin starting empty.
//!
//! The old major's walker must be installed (`./walker test` installs every major it
//! tests in turn, the older first; alone: `./walker install --pg <previous>`). Where
//! there is no older major to upgrade from (15, 16: see [`UPGRADE_SOURCES`]) the test
//! says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use walker_tests::{clusters_dir, pg_bindir, Cluster};

const PLUGINS: &str = "rmgr_stats, garbagemap, autosizer, budget";
/// The supported majors a cluster can be pg_upgraded from. Not 15: Debian's 15.20
/// (15.20-0+deb12u1, the one bookworm ships here) gives every column of every
/// cluster, from initdb on, an attribute option `pg_attver` that 16 and later reject,
/// so pg_upgrade from it fails restoring the first table ("unrecognized parameter
/// \"pg_attver\""), with or without walker.
const UPGRADE_SOURCES: [u32; 3] = [16, 17, 18];
const DEBIAN_MAJOR: u32 = 15;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A server program of `bindir`, as the `postgres` OS user when we are root.
fn server(bindir: &Path, program: &str, cwd: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bindir.join(program));
        c
    } else {
        Command::new(bindir.join(program))
    };
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The major of the binaries in `bindir` (`postgres -V`: "postgres (PostgreSQL) 16.15").
fn major_of(bindir: &Path) -> u32 {
    let out = run(
        Command::new(bindir.join("postgres")).arg("-V"),
        "postgres -V",
    );
    out.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the major from {out:?}"))
}

fn bindir_of(major: u32) -> PathBuf {
    if major == DEBIAN_MAJOR {
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
    } else {
        let prefix = std::env::var("WALKER_PG_PREFIX").unwrap_or_else(|_| "/opt/walker-pg".into());
        PathBuf::from(format!("{prefix}/{major}/bin"))
    }
}

/// A directory owned by the server's OS user, for a data directory or pg_upgrade's
/// working directory.
fn server_dir(name: &str) -> PathBuf {
    let dir = clusters_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres:postgres").arg(&dir);
        run(&mut chown, "chown");
    }
    dir
}

/// initdb as the harness does (pg_upgrade needs equal encodings and locales), with
/// walker preloaded: pg_upgrade's check LOADs the old cluster's libraries in the new
/// one, and a library defining postmaster settings loads only when preloaded.
fn initdb(bindir: &Path, dir: &Path, port: u16) {
    // 18 turns data checksums on by default; pg_upgrade needs both clusters alike.
    let checksums: &[&str] = if major_of(bindir) >= 18 {
        &["--no-data-checksums"]
    } else {
        &[]
    };
    let mut cmd = server(bindir, "initdb", Path::new("/"));
    cmd.args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ])
    .args(checksums)
    .arg("-D")
    .arg(dir);
    run(&mut cmd, "initdb");
    let conf = format!(
        "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
         fsync = off\nshared_buffers = '32MB'\nmax_connections = 20\nautovacuum = off\n\
         shared_preload_libraries = 'walker'\nwalker.plugins = '{PLUGINS}'\n"
    );
    let path = dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&path).expect("postgresql.conf");
    text.push_str(&conf);
    std::fs::write(&path, text).expect("write postgresql.conf");
}

fn pg_ctl(bindir: &Path, dir: &Path, action: &str) {
    let mut cmd = server(bindir, "pg_ctl", Path::new("/"));
    cmd.arg("-D").arg(dir).arg("-l").arg(dir.join("server.log"));
    cmd.args(["-w", "-t", "60", "-m", "fast", action]);
    run(&mut cmd, &format!("pg_ctl {action}"));
}

fn psql(bindir: &Path, port: u16, sql: &str) -> String {
    let mut cmd = Command::new(bindir.join("psql"));
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-X",
        "-q",
        "-At",
    ])
    .args(["-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql]);
    run(&mut cmd, &format!("psql: {sql}")).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn pg_upgrade_from_the_previous_major_starts_walker_afresh() {
    let new_bin = pg_bindir();
    let new_major = major_of(&new_bin);
    let Some(&old_major) = UPGRADE_SOURCES.iter().rev().find(|&&m| m < new_major) else {
        eprintln!(
            "PostgreSQL {new_major}: no older supported major to pg_upgrade from (sources: {UPGRADE_SOURCES:?}, see UPGRADE_SOURCES)"
        );
        return;
    };
    let old_bin = bindir_of(old_major);
    let old_lib = run(
        Command::new(old_bin.join("pg_config")).arg("--pkglibdir"),
        "pg_config --pkglibdir",
    );
    assert!(
        Path::new(old_lib.trim()).join("walker.so").is_file(),
        "walker is not installed for PostgreSQL {old_major} ({}/walker.so): run ./walker install --pg {old_major}",
        old_lib.trim()
    );

    // The old cluster: walker with every plugin, a table with dead tuples, snapshots.
    let old_dir = server_dir("pg_upgrade_old");
    let old_port = free_port();
    initdb(&old_bin, &old_dir, old_port);
    pg_ctl(&old_bin, &old_dir, "start");
    psql(&old_bin, old_port, "CREATE EXTENSION walker");
    psql(
        &old_bin,
        old_port,
        "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 10000); DELETE FROM t WHERE a % 2 = 0",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        psql(&old_bin, old_port, "CHECKPOINT");
        let dead = psql(
            &old_bin,
            old_port,
            "SELECT coalesce(sum(dead_tuples), 0) FROM walker.garbagemap_relations WHERE relation = 't'::regclass",
        );
        let saved = psql(
            &old_bin,
            old_port,
            "SELECT count(*) FROM walker.plugins WHERE snapshots AND snapshot_lsn >= (SELECT last_change_lsn FROM walker.garbagemap_relations WHERE relation = 't'::regclass)",
        );
        if dead == "5000" && saved != "0" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old cluster's garbagemap never counted t's 5000 dead tuples in a snapshot (dead {dead})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let old_sysid = psql(
        &old_bin,
        old_port,
        "SELECT system_identifier FROM pg_control_system()",
    );
    let old_end = psql(&old_bin, old_port, "SELECT pg_current_wal_lsn()");
    pg_ctl(&old_bin, &old_dir, "stop");
    let old_snapshots: Vec<PathBuf> = std::fs::read_dir(old_dir.join("walker"))
        .expect("the old cluster's $PGDATA/walker")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "snapshot"))
        .collect();
    assert!(
        !old_snapshots.is_empty(),
        "the old cluster wrote no snapshot"
    );

    // pg_upgrade into a new cluster that preloads walker, as the README says.
    let upgraded = server_dir("pg_upgrade_new");
    let new_port = free_port();
    initdb(&new_bin, &upgraded, new_port);
    let work = server_dir("pg_upgrade_work");
    let mut upgrade = server(&new_bin, "pg_upgrade", &work);
    upgrade
        .arg("-b")
        .arg(&old_bin)
        .arg("-B")
        .arg(&new_bin)
        .arg("-d")
        .arg(&old_dir)
        .arg("-D")
        .arg(&upgraded)
        .args(["-p", &old_port.to_string(), "-P", &new_port.to_string()])
        .args(["-U", "postgres", "--copy"]);
    let report = run(&mut upgrade, "pg_upgrade");
    eprintln!(
        "pg_upgrade {old_major} -> {new_major}: {}",
        report.lines().last().unwrap_or("")
    );
    assert!(
        !upgraded.join("walker").join("garbagemap.snapshot").exists(),
        "pg_upgrade copied walker's snapshots (it copies relations, pg_xact and pg_multixact only)"
    );

    // The new cluster walks its own WAL with a new slot and empty plugins.
    let new = Cluster::builder("pg_upgrade_started")
        .copy_of_dir(&upgraded)
        .plugins(PLUGINS)
        .autovacuum(false)
        .start();
    new.wait_until(
        "walker walks the new cluster's WAL",
        Duration::from_secs(60),
        || {
            new.query_one("SELECT state FROM walker.status") == "walking"
                || new.query_one("SELECT state FROM walker.status") == "idle"
        },
    );
    assert_eq!(
        new.query_one("SELECT installed_version = default_version FROM pg_available_extensions WHERE name = 'walker'"),
        "t",
        "pg_upgrade keeps the extension's version: ALTER EXTENSION walker UPDATE when the new cluster's walker is newer"
    );
    assert_ne!(
        new.query_one("SELECT system_identifier FROM pg_control_system()"),
        old_sysid,
        "pg_upgrade made a new system identifier"
    );
    let slot = new.query_one(&format!(
        "SELECT format('%s %s', slot_type, restart_lsn >= '{old_end}'::pg_lsn) FROM pg_replication_slots WHERE slot_name = 'walker'"
    ));
    assert_eq!(
        slot, "physical t",
        "walker's slot in the new cluster is a new physical one past the old cluster's end of WAL {old_end}"
    );
    let starts = new.query("SELECT name, started_empty, start FROM walker.plugins ORDER BY name");
    for row in &starts {
        assert_eq!(
            row[1], "t",
            "plugin {} did not start empty after pg_upgrade: {}",
            row[0], row[2]
        );
    }
    let dead_t = "SELECT coalesce(sum(dead_tuples), 0) FROM walker.garbagemap_relations WHERE relation = 't'::regclass";
    assert_eq!(
        new.query_one(dead_t),
        "0",
        "garbagemap applied state of the old cluster"
    );

    // An operator who copies the old snapshots over: refused, with a WARNING.
    new.stop();
    let target = new.data_dir().join("walker");
    for s in &old_snapshots {
        let mut cp = Command::new("cp");
        cp.arg("-p").arg(s).arg(&target);
        run(&mut cp, "copy of an old snapshot");
        if is_root() {
            let mut chown = Command::new("chown");
            chown
                .arg("postgres:postgres")
                .arg(target.join(s.file_name().expect("name")));
            run(&mut chown, "chown");
        }
    }
    new.start_again();
    new.wait_until("the plugins started", Duration::from_secs(60), || {
        new.query_one("SELECT count(*) FROM walker.plugins WHERE state = 'running'") == "4"
    });
    for s in &old_snapshots {
        let plugin = s.file_stem().expect("stem").to_string_lossy().into_owned();
        let row = new.query(&format!(
            "SELECT started_empty, start FROM walker.plugins WHERE name = '{plugin}'"
        ));
        assert_eq!(
            row[0][0], "t",
            "{plugin} restored the old cluster's snapshot: {}",
            row[0][1]
        );
        assert!(
            row[0][1].contains("another cluster"),
            "{plugin}'s start does not name the other cluster: {}",
            row[0][1]
        );
        assert!(
            target.join(format!("{plugin}.snapshot.refused")).exists(),
            "{plugin}'s refused snapshot was not kept"
        );
    }
    let log = new.server_log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARNING") && l.contains("another cluster")),
        "no WARNING about the old cluster's snapshots in the log:\n{log}"
    );
    assert_eq!(
        new.query_one(dead_t),
        "0",
        "garbagemap applied state of the old cluster"
    );

    // And it counts what the new cluster's WAL says.
    new.exec("DELETE FROM t WHERE a % 4 = 1");
    new.wait_until(
        "garbagemap counts the 2500 new dead tuples",
        Duration::from_secs(60),
        || new.query_one(dead_t) == "2500",
    );
    common::wait_caught_up(&new);
    drop(new);
    for dir in [&old_dir, &upgraded, &work] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
