//! Test harness for walker's integration tests: throw-away PostgreSQL clusters of the
//! major `WALKER_PG_BINDIR` points at (`./walker test` sets it for each major).
//!
//! Every [`Cluster`] gets its own data directory under
//! `<workspace>/target/walker-clusters/<name>-<pid>-<counter>` and its own TCP port on
//! 127.0.0.1 (no Unix sockets), so tests may run in parallel. Clusters are kept
//! small (`shared_buffers = 32MB`, `max_connections = 20`, `fsync = off`).
//!
//! When the tests run as root, `initdb` and `pg_ctl` run as the `postgres` OS user
//! through `runuser -u postgres --` (the server refuses to run as root) and the data
//! directory is chowned to it; `psql` runs as the caller (TCP, trust authentication).
//!
//! Environment:
//! - `WALKER_FIXTURES_DIR`: where the fixture plugins are (see [`fixtures_dir`]).
//! - `WALKER_KEEP_CLUSTERS`: when set, clusters are stopped but their directories
//!   are kept. A cluster dropped while its thread panics is always kept.
//! - `WALKER_PG_BINDIR`: PostgreSQL binaries of the major under test (default
//!   `/usr/lib/postgresql/15/bin`, else `pg_config --bindir`).

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Where the fixture plugins (`fx_*.so`, `fixture_*.so`) are: `$WALKER_FIXTURES_DIR`,
/// else `<workspace>/target/walker-fixtures` (where `./walker test` builds them).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("WALKER_FIXTURES_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_dir().join("target").join("walker-fixtures"),
    }
}

/// Directory holding the clusters' data directories.
pub fn clusters_dir() -> PathBuf {
    workspace_dir().join("target").join("walker-clusters")
}

/// Directory of the PostgreSQL binaries.
pub fn pg_bindir() -> PathBuf {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR
        .get_or_init(|| {
            if let Some(d) = std::env::var_os("WALKER_PG_BINDIR").filter(|d| !d.is_empty()) {
                return PathBuf::from(d);
            }
            let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
            if debian.join("postgres").is_file() {
                return debian;
            }
            let out = Command::new("pg_config")
                .arg("--bindir")
                .output()
                .expect("PostgreSQL 15 not found: no /usr/lib/postgresql/15/bin and no pg_config on PATH (run ./walker setup)");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

fn is_root() -> bool {
    // No libc dependency: the effective uid is in /proc/self/status ("Uid: real effective ...").
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
            })
            .unwrap_or(false)
    })
}

/// A command for a server binary (`initdb`, `pg_ctl`): as the `postgres` OS user when
/// we are root, else as ourselves.
fn server_command(bin: &str) -> Command {
    let path = pg_bindir().join(bin);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    };
    // The postgres user may not be able to enter the caller's working directory.
    cmd.current_dir("/");
    cmd.stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Ports handed out by this process and not yet released.
fn ports_in_use() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A free TCP port on 127.0.0.1 (asks the kernel, never twice the same in this process).
fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("cannot bind 127.0.0.1:0 to find a free port");
        if ports_in_use()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("could not find a free port");
}

fn release_port(port: u16) {
    ports_in_use()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// A client program of the server's bin directory (`psql`, `pgbench`, ...) set to
/// connect to 127.0.0.1:`port` as `user`, with a 10 s connect timeout and no
/// `PGOPTIONS` or `PGSERVICE` from the environment. Add the database and the rest.
pub fn client_command(program: &str, port: u16, user: &str) -> Command {
    let mut cmd = Command::new(pg_bindir().join(program));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGOPTIONS")
        .env_remove("PGSERVICE");
    cmd
}

/// Quotes a postgresql.conf value unless it is already single-quoted.
fn conf_value(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Configures a [`Cluster`] before it starts; see [`Cluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    name: String,
    preload_walker: bool,
    plugins: Option<String>,
    fixtures_in_library_path: bool,
    conf: Vec<(String, String)>,
    standby_of: Option<u16>,
    command_line: Vec<(String, String)>,
    server_env: Vec<(String, String)>,
    copy_of: Option<PathBuf>,
    recovery_signal: bool,
}

impl ClusterBuilder {
    /// Makes the cluster a streaming standby of `primary`: its data directory comes
    /// from `pg_basebackup -R` (so it has the primary's files and settings) instead of
    /// initdb; this builder's settings are applied on top.
    pub fn standby_of(mut self, primary: &Cluster) -> Self {
        self.standby_of = Some(primary.port);
        self
    }

    /// Starts from a copy (`cp -a`) of `source`'s data directory instead of initdb, so
    /// the new cluster has its data, WAL and replication slots. `source` must be
    /// stopped ([`Cluster::stop`]) when [`ClusterBuilder::start`] runs. The source's
    /// harness settings are replaced by this builder's (port, `walker.plugins`, ...).
    pub fn copy_of(mut self, source: &Cluster) -> Self {
        self.copy_of = Some(source.dir.clone());
        self
    }

    /// Starts from a copy of the data directory `dir` (a copy made with
    /// [`Cluster::copy_files_to`] while its server was stopped: a cold base backup).
    pub fn copy_of_dir(mut self, dir: &Path) -> Self {
        self.copy_of = Some(dir.to_path_buf());
        self
    }

    /// Point-in-time recovery: the cluster starts in archive recovery (a
    /// `recovery.signal` file), fetching WAL from `source`'s `pg_wal`, stops at
    /// `target_lsn` and promotes to a new timeline there.
    pub fn recover_to(mut self, source: &Cluster, target_lsn: &str) -> Self {
        self.recovery_signal = true;
        let from = source.dir.join("pg_wal");
        self.conf.push((
            "restore_command".into(),
            format!("cp {}/%f \"%p\"", from.display()),
        ));
        self.conf
            .push(("recovery_target_lsn".into(), target_lsn.to_string()));
        self.conf
            .push(("recovery_target_action".into(), "promote".into()));
        self
    }

    /// Whether `shared_preload_libraries = 'walker'` (default true).
    pub fn preload_walker(mut self, yes: bool) -> Self {
        self.preload_walker = yes;
        self
    }

    /// Sets `walker.plugins` (comma-separated plugin names).
    pub fn plugins(mut self, plugins: &str) -> Self {
        self.plugins = Some(plugins.to_string());
        self
    }

    /// Adds a postgresql.conf line `key = 'value'` (the value is quoted unless it
    /// already is; PostgreSQL accepts quoted numbers, sizes and booleans). Repeatable;
    /// later lines win, and these come after the harness's defaults, so they can
    /// override them (e.g. `.conf("shared_buffers", "64MB")`).
    pub fn conf(mut self, key: &str, value: &str) -> Self {
        self.conf.push((key.to_string(), value.to_string()));
        self
    }

    /// Passes `-c key=value` on the server's command line (through `pg_ctl -o`), a
    /// source of higher priority than postgresql.conf and postgresql.auto.conf.
    /// Repeatable; kept for restarts.
    pub fn command_line(mut self, key: &str, value: &str) -> Self {
        assert!(
            !value.contains(['\'', '"', ' ', '\\']),
            "command-line values must not need quoting: {value:?}"
        );
        self.command_line.push((key.to_string(), value.to_string()));
        self
    }

    /// Shorthand for `.conf("autovacuum", "on"/"off")` (default on).
    pub fn autovacuum(self, on: bool) -> Self {
        self.conf("autovacuum", if on { "on" } else { "off" })
    }

    /// Sets an environment variable of the server processes (given to `pg_ctl start`,
    /// also on restarts), e.g. `RUST_BACKTRACE=1`.
    pub fn server_env(mut self, key: &str, value: &str) -> Self {
        self.server_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets `dynamic_library_path = '$libdir:<fixtures_dir>'` so the fixture plugins
    /// can be named in `walker.plugins` without installing them.
    pub fn fixtures_in_library_path(mut self, yes: bool) -> Self {
        self.fixtures_in_library_path = yes;
        self
    }

    /// Creates, configures and starts the cluster (waits until it accepts
    /// connections). Panics with the server log when it cannot.
    pub fn start(self) -> Cluster {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let parent = clusters_dir();
        fs::create_dir_all(&parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        stop_orphans(&parent);
        let dir = parent.join(format!("{}-{}-{}", self.name, std::process::id(), n));
        if dir.exists() {
            // A leftover from an earlier run with the same pid: throw it away.
            let _ = stop_dir(&dir, "immediate");
            let _ = fs::remove_dir_all(&dir);
        }
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["postgres:postgres"]).arg(&dir);
            run(chown, "chown of the cluster directory to postgres")
                .unwrap_or_else(|e| panic!("{e}"));
        }

        if let Some(source) = &self.copy_of {
            copy_data_dir(source, &dir).unwrap_or_else(|e| panic!("{e}"));
            if self.recovery_signal {
                write_as_server_file(&dir.join("recovery.signal"), "");
            }
        } else if let Some(primary_port) = self.standby_of {
            // initdb sets these itself; pg_basebackup needs them set.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
            let mut backup = server_command("pg_basebackup");
            backup
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary_port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync", "-D"])
                .arg(&dir);
            run(backup, "pg_basebackup").unwrap_or_else(|e| panic!("{e}"));
            // The primary's pid file and log are not the standby's.
            let _ = fs::remove_file(dir.join("server.log"));
        } else {
            let mut initdb = server_command("initdb");
            initdb
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-D",
                ])
                .arg(&dir);
            run(initdb, "initdb").unwrap_or_else(|e| panic!("{e}"));
        }

        let mut cluster = Cluster {
            name: self.name.clone(),
            dir,
            port: 0,
            stopped: Mutex::new(true),
            options: self
                .command_line
                .iter()
                .map(|(k, v)| format!("-c {k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            env: self.server_env.clone(),
        };
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            cluster.port = port;
            self.write_conf(&cluster);
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    *cluster.stopped.lock().unwrap_or_else(|e| e.into_inner()) = false;
                    return cluster;
                }
                Err(e) => {
                    release_port(port);
                    let log = cluster.server_log();
                    let port_taken =
                        log.contains("could not bind") || log.contains("Address already in use");
                    last_err = format!("{e}\n--- server log tail ---\n{}", tail(&log, 40));
                    if !port_taken {
                        break;
                    }
                    // Someone else took the port between our probe and the bind: retry.
                    let _ = stop_dir(&cluster.dir, "immediate");
                }
            }
        }
        let dir = cluster.dir.clone();
        let _ = stop_dir(&dir, "immediate");
        release_port(cluster.port);
        // Keep the directory for post-mortem.
        std::mem::forget(cluster);
        panic!("cluster at {} did not start: {last_err}", dir.display());
    }

    fn write_conf(&self, cluster: &Cluster) {
        let mut conf = String::new();
        conf.push_str("\n# --- walker test harness ---\n");
        let mut line = |k: &str, v: &str| conf.push_str(&format!("{k} = {}\n", conf_value(v)));
        line("listen_addresses", "127.0.0.1");
        line("port", &cluster.port.to_string());
        line("unix_socket_directories", "");
        line("fsync", "off");
        line("shared_buffers", "32MB");
        line("max_connections", "20");
        line("logging_collector", "off");
        line("log_line_prefix", "%m [%p] %b ");
        line("autovacuum", "on");
        if self.preload_walker {
            line("shared_preload_libraries", "walker");
        }
        if let Some(p) = &self.plugins {
            line("walker.plugins", p);
        }
        if self.fixtures_in_library_path {
            line(
                "dynamic_library_path",
                &format!("$libdir:{}", fixtures_dir().display()),
            );
        }
        for (k, v) in &self.conf {
            line(k, v);
        }
        // Written to a harness-only include file so retries (new port) replace it.
        let include = cluster.dir.join("walker_harness.conf");
        write_as_server_file(&include, &conf);
        let main = cluster.dir.join("postgresql.conf");
        let text = fs::read_to_string(&main)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", main.display()));
        if !text.contains("include 'walker_harness.conf'") {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(&main)
                .unwrap_or_else(|e| panic!("cannot append to {}: {e}", main.display()));
            f.write_all(b"\ninclude 'walker_harness.conf'\n")
                .expect("write postgresql.conf");
        }
    }
}

/// Copies the stopped cluster in `source` into the empty directory `dir` (`cp -a`, so
/// owners and modes are kept), without its log.
fn copy_data_dir(source: &Path, dir: &Path) -> Result<(), String> {
    if source.join("postmaster.pid").exists() {
        return Err(format!(
            "cannot copy the data directory {}: its server is running (stop it first)",
            source.display()
        ));
    }
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(source.join(".")).arg(dir);
    run(cp, "copy of the data directory")?;
    let _ = fs::remove_file(dir.join("server.log"));
    // The server refuses a data directory others may read.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

/// Writes a file in a data directory, owned by postgres when we are root.
fn write_as_server_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres:postgres").arg(path);
        run(chown, "chown").unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Once per process: stops servers left running by test processes that died without
/// dropping their clusters (killed runs), so they do not hold memory and ports. Their
/// directories are kept (remove them with `rm -rf target/walker-clusters`).
fn stop_orphans(parent: &Path) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(entries) = fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // <name>-<pid>-<counter>
            let mut parts = name.rsplitn(3, '-');
            let (_counter, pid) = (parts.next(), parts.next());
            let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if dir.join("postmaster.pid").exists() && stop_dir(&dir, "immediate").is_ok() {
                eprintln!(
                    "walker-tests: stopped an orphaned test server in {}",
                    dir.display()
                );
            }
        }
    });
}

fn stop_dir(dir: &Path, mode: &str) -> Result<(), String> {
    if !dir.join("postmaster.pid").exists() {
        return Ok(());
    }
    let mut cmd = server_command("pg_ctl");
    cmd.arg("-D")
        .arg(dir)
        .args(["-w", "-t", "60", "-m", mode, "stop"]);
    run(cmd, "pg_ctl stop").map(|_| ())
}

/// A running, throw-away PostgreSQL cluster. Dropping it stops the server
/// (`-m immediate`) and deletes its directory (see the crate docs for exceptions).
#[derive(Debug)]
pub struct Cluster {
    name: String,
    dir: PathBuf,
    port: u16,
    stopped: Mutex<bool>,
    /// Server command-line options (`pg_ctl -o`).
    options: String,
    /// Environment of the server processes.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts configuring a cluster; `name` (a short identifier) names its directory.
    pub fn builder(name: &str) -> ClusterBuilder {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "cluster name {name:?} must be non-empty ASCII letters, digits, '_' or '-'"
        );
        ClusterBuilder {
            name: name.to_string(),
            preload_walker: true,
            plugins: None,
            fixtures_in_library_path: false,
            standby_of: None,
            copy_of: None,
            recovery_signal: false,
            conf: Vec::new(),
            command_line: Vec::new(),
            server_env: Vec::new(),
        }
    }

    /// The name given to [`Cluster::builder`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut cmd = server_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "start"]);
        if !self.options.is_empty() {
            cmd.args(["-o", &self.options]);
        }
        // runuser keeps the caller's environment, so these reach the server.
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run(cmd, "pg_ctl start").map(|_| ())
    }

    /// Runs `sql` (on stdin) through `psql` as `user` in database `db`; `Ok` with the
    /// output (unaligned, tuples only, quiet: no command tags; leading/trailing newlines
    /// removed), `Err` with psql's stderr when psql fails (any SQL error stops it).
    pub fn psql_as(&self, user: &str, db: &str, sql: &str) -> Result<String, String> {
        let mut child = client_command("psql", self.port, user)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = sql.to_string();
        // Write from another thread so a large output cannot deadlock us.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
            let _ = stdin.write_all(b"\n");
        });
        let out = child.wait_with_output().map_err(|e| format!("psql: {e}"))?;
        let _ = writer.join();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stdout = stdout.trim_matches(|c| c == '\n' || c == '\r').to_string();
        if out.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if stderr.is_empty() {
                format!("psql exited with {} and no message", out.status)
            } else {
                stderr
            })
        }
    }

    /// [`Cluster::psql_as`] as user `postgres`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.psql_as("postgres", db, sql)
    }

    /// Rows of `sql` in database `postgres`, fields split on `|`. Panics on error.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        match self.psql("postgres", sql) {
            Ok(out) if out.is_empty() => Vec::new(),
            Ok(out) => out
                .lines()
                .map(|l| l.split('|').map(str::to_string).collect())
                .collect(),
            Err(e) => panic!("query failed on cluster {}: {sql}\n{e}", self.name),
        }
    }

    /// The whole output of `sql` (one value, or several lines) in database
    /// `postgres`. Panics on error.
    pub fn query_one(&self, sql: &str) -> String {
        self.psql("postgres", sql)
            .unwrap_or_else(|e| panic!("query failed on cluster {}: {sql}\n{e}", self.name))
    }

    /// Runs `sql` in database `postgres`; panics on error.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.psql("postgres", sql) {
            panic!("statement failed on cluster {}: {sql}\n{e}", self.name);
        }
    }

    /// Copies the data directory to `to` (which must not exist) while the server is
    /// stopped: a cold base backup for [`ClusterBuilder::copy_of_dir`].
    pub fn copy_files_to(&self, to: &Path) {
        assert!(
            !self.dir.join("postmaster.pid").exists(),
            "stop the server before copying its files"
        );
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&self.dir).arg(to);
        run(cp, "copy of the data directory").unwrap_or_else(|e| panic!("{e}"));
    }

    /// The server log so far.
    pub fn server_log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Adds `key = 'value'` to the cluster's configuration (takes effect on
    /// [`Cluster::reload`] or [`Cluster::restart`], as the setting allows).
    pub fn set_conf(&self, key: &str, value: &str) {
        let path = self.dir.join("walker_harness.conf");
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("{key} = {}\n", conf_value(value)));
        write_as_server_file(&path, &text);
    }

    /// Reloads the configuration (`pg_ctl reload`).
    pub fn reload(&self) {
        let mut cmd = server_command("pg_ctl");
        cmd.arg("-D").arg(&self.dir).arg("reload");
        run(cmd, "pg_ctl reload").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Restarts the server (fast shutdown) and waits until it accepts connections.
    pub fn restart(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if !*stopped {
            if let Err(e) = stop_dir(&self.dir, "fast") {
                panic!(
                    "{e}\n--- server log tail ---\n{}",
                    tail(&self.server_log(), 40)
                );
            }
        }
        *stopped = true;
        if let Err(e) = self.pg_ctl_start() {
            panic!(
                "{e}\n--- server log tail ---\n{}",
                tail(&self.server_log(), 40)
            );
        }
        *stopped = false;
    }

    /// Starts the server again after [`Cluster::stop`] (no-op when it runs).
    pub fn start_again(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            if let Err(e) = self.pg_ctl_start() {
                panic!(
                    "{e}\n--- server log tail ---\n{}",
                    tail(&self.server_log(), 40)
                );
            }
            *stopped = false;
        }
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`: no
    /// checkpoint, no clean shutdown of the walker worker).
    pub fn crash(&self) {
        self.stop_mode("immediate");
    }

    fn stop_mode(&self, mode: &str) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if !*stopped {
            if let Err(e) = stop_dir(&self.dir, mode) {
                panic!(
                    "{e}\n--- server log tail ---\n{}",
                    tail(&self.server_log(), 40)
                );
            }
            *stopped = true;
        }
    }

    /// Promotes a standby (`pg_ctl promote`, waiting until it accepts writes).
    pub fn promote(&self) {
        let mut cmd = server_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.dir)
            .args(["-w", "-t", "60", "promote"]);
        run(cmd, "pg_ctl promote").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends `signal` (a `kill` name such as `KILL`) to process `pid` of this server.
    pub fn signal(&self, pid: &str, signal: &str) {
        let mut cmd = Command::new("kill");
        cmd.arg(format!("-{signal}")).arg(pid);
        run(cmd, "kill").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Calls `f` every 100 ms until it returns true; panics after `timeout` with
    /// `what` and the tail of the server log.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if f() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for: {what} (cluster {}, {})\n--- server log tail ---\n{}",
                    self.name,
                    self.dir.display(),
                    tail(&self.server_log(), 60)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = stop_dir(&self.dir, "immediate");
        release_port(self.port);
        if thread::panicking() {
            eprintln!(
                "walker-tests: keeping the directory of failed cluster {}: {}",
                self.name,
                self.dir.display()
            );
            eprintln!("walker-tests: its log: {}", self.log_path().display());
        } else if std::env::var_os("WALKER_KEEP_CLUSTERS").is_some() {
            eprintln!(
                "walker-tests: WALKER_KEEP_CLUSTERS set, keeping {}",
                self.dir.display()
            );
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("walker-tests: could not remove {}: {e}", self.dir.display());
        }
    }
}
