//! Prometheus for real (issue 18 item 1): Debian's `prometheus-postgres-exporter` runs
//! with `ops/prometheus/walker-queries.yaml` against a cluster with walker and the
//! shipped plugins, connected as a login role that is only a member of
//! `walker_monitor`; Debian's `prometheus` scrapes it every second. The series are read
//! back through Prometheus' HTTP API and compared with what walker's views show (values
//! stable while idle, or bounded by view reads before and after) and with a hand-derived
//! count (the rows deleted). `promtool` checks the alert rules and runs their unit tests.
//!
//! Binaries come from `./walker setup` (apt packages `prometheus`,
//! `prometheus-postgres-exporter`); a missing one fails the test naming it.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use walker_tests::{workspace_dir, Cluster};

const EXPORTER: &str = "prometheus-postgres-exporter";
const PROMETHEUS: &str = "prometheus";
const PROMTOOL: &str = "promtool";
/// Rows the workload deletes: the dead tuples garbagemap must count in table `t`.
const DELETED: i64 = 1234;

fn ops_dir() -> PathBuf {
    workspace_dir().join("ops/prometheus")
}

/// The path of `bin` on PATH, or a failure that says how to get it.
fn binary(bin: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{bin} not found on PATH: run ./walker setup (it installs the apt packages prometheus and prometheus-postgres-exporter)")
        })
}

/// A port nobody listens on now (the process we start binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

/// A process this test started, stopped (by its own pid) when dropped.
struct Process {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Process {
    fn start(what: &'static str, mut cmd: Command, log: PathBuf) -> Process {
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what} ({cmd:?}): {e}"));
        Process { child, what, log }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.what, self.log_tail());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body of `GET path` on 127.0.0.1:`port`, or why not.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").ok_or("no HTTP header end")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{}: {body}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

/// The values of PromQL `query` now, one per series, from Prometheus' HTTP API.
fn prom_values(port: u16, query: &str) -> Result<Vec<f64>, String> {
    let body = http_get(port, &format!("/api/v1/query?query={}", encode(query)))?;
    if !body.contains("\"status\":\"success\"") {
        return Err(body);
    }
    // Each sample is "value":[<time>,"<value>"].
    let mut out = Vec::new();
    for part in body.split("\"value\":[").skip(1) {
        let v = part
            .split_once(",\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(v, _)| v)
            .ok_or_else(|| format!("unexpected answer: {body}"))?;
        out.push(v.parse::<f64>().map_err(|e| format!("{v}: {e}"))?);
    }
    Ok(out)
}

/// The one value of `query`, waiting (generously) until Prometheus has scraped it.
fn prom_value(port: u16, query: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match prom_values(port, query) {
            Ok(v) if v.len() == 1 => return v[0],
            Ok(v) if v.len() > 1 => panic!("{query}: {} series, expected one", v.len()),
            other => {
                if Instant::now() >= deadline {
                    panic!("Prometheus never answered {query} with one series: {other:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the newest scrape of `query` equals `want` (a value the views show that
/// can only change once, e.g. right after the exporter started).
fn prom_settles(port: u16, query: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = f64::NAN;
    while Instant::now() < deadline {
        last = prom_value(port, query);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{query}: Prometheus shows {last}, the views {want}");
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs_f64()
}

/// Metric names of the samples (not comments) of a text exposition.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn run_promtool(args: &[&str], dir: &Path) {
    let out = Command::new(binary(PROMTOOL))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("could not run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool {}:\n{text}", args.join(" "));
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
}

/// `promtool check metrics` (Prometheus's own linter of metric names, units, types
/// and help) finds nothing to say about `text`, the exposition of `what`.
fn assert_promtool_lints_clean(what: &str, text: &str) {
    let mut child = Command::new(binary(PROMTOOL))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("could not run promtool");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
        stdin.write_all(b"\n").expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool check metrics");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {what} (exit {:?}):\n{said}\n--- the exposition:\n{text}",
        out.status.code()
    );
}

/// The shipped rules are valid and every alert's unit test passes.
#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let dir = ops_dir();
    run_promtool(&["check", "rules", "walker-alerts.yml"], &dir);
    run_promtool(&["test", "rules", "walker-alerts.test.yml"], &dir);
    // Every alert of the rules file has a unit test.
    let rules = fs::read_to_string(dir.join("walker-alerts.yml")).unwrap();
    let tests = fs::read_to_string(dir.join("walker-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 6, "alerts in walker-alerts.yml: {alerts:?}");
    for a in alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {a}\n        exp_alerts:\n          - exp_labels"
            )),
            "alert {a} has no unit test that expects it to fire"
        );
        assert!(
            tests.contains(&format!("alertname: {a}\n        exp_alerts: []")),
            "alert {a} has no unit test that expects it to stay quiet"
        );
    }
}

/// The exporter with the shipped queries, scraped by Prometheus, shows what the views
/// show.
#[test]
fn exporter_and_prometheus_scrape_what_the_views_show() {
    let exporter_bin = binary(EXPORTER);
    let prometheus_bin = binary(PROMETHEUS);

    let c = Cluster::builder("prometheus")
        .plugins("garbagemap,autosizer,budget")
        .autovacuum(false)
        .start();
    c.exec("CREATE EXTENSION walker");
    // Least privilege: a login role whose only membership is walker_monitor.
    c.exec("CREATE ROLE metrics_exporter LOGIN PASSWORD 'exporter-secret' IN ROLE walker_monitor");
    assert_eq!(
        c.query_one(
            "SELECT string_agg(m.roleid::regrole::text, ',') FROM pg_auth_members m \
             WHERE m.member = 'metrics_exporter'::regrole"
        ),
        "walker_monitor"
    );
    assert_eq!(
        c.query_one("SELECT rolsuper OR rolcreaterole OR rolbypassrls FROM pg_roles WHERE rolname = 'metrics_exporter'"),
        "f"
    );
    // Three transactions (one psql -c would be one): the deleted rows are dead tuples
    // of committed inserts.
    c.exec("CREATE TABLE t (id int, v text)");
    c.exec("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5000) g");
    c.exec(&format!("DELETE FROM t WHERE id <= {DELETED}"));
    common::wait_caught_up(&c);

    // Config, TSDB and logs under the cluster's directory: kept with it when the test
    // fails, removed with it when it passes (the processes stop first: declared later).
    let work = c.data_dir().join("prometheus-test");
    fs::create_dir_all(work.join("data")).unwrap();

    let exporter_port = free_port();
    let mut exporter_cmd = Command::new(exporter_bin);
    exporter_cmd
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "host=127.0.0.1 port={} user=metrics_exporter password=exporter-secret dbname=postgres sslmode=disable",
                c.port()
            ),
        )
        .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
        .arg(format!("--extend.query-path={}", ops_dir().join("walker-queries.yaml").display()))
        .arg("--disable-default-metrics")
        .arg("--disable-settings-metrics")
        // 0.11.1's bgwriter collector reads pg_stat_bgwriter columns PostgreSQL 17 moved
        // to pg_stat_checkpointer (it logs "collector failed" there): not walker's.
        .arg("--no-collector.bgwriter");
    let mut exporter = Process::start("the exporter", exporter_cmd, work.join("exporter.log"));

    // The exporter itself: the queries file loaded without error, and no query failed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        exporter.check_alive();
        match http_get(exporter_port, "/metrics") {
            Ok(m) if m.contains("walker_records_total") => break m,
            other if Instant::now() >= deadline => panic!(
                "the exporter never served walker_records_total: {other:?}\n{}",
                exporter.log_tail()
            ),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pg_exporter_user_queries_load_error{") && l.ends_with(" 0")),
        "the exporter did not load walker-queries.yaml:\n{}",
        exporter.log_tail()
    );
    let log = fs::read_to_string(&exporter.log).unwrap_or_default();
    assert!(
        !log.contains("level=error"),
        "the exporter logged errors (a query failed or was refused):\n{log}"
    );

    // Every family walker.prometheus() writes, the exporter writes (walker_plugin_up
    // says "loaded", which the views do not show; walker_plugin_running replaces it).
    let ours = sample_names(&c.query_one("SELECT walker.prometheus()"));
    let exported = sample_names(&metrics);
    let missing: Vec<_> = ours
        .iter()
        .filter(|n| *n != "walker_plugin_up" && !exported.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "walker.prometheus() families the exporter lacks: {missing:?}"
    );
    // Names, units, types and help follow Prometheus's conventions, as its own
    // linter reads them: walker.prometheus(), and walker's families as the exporter
    // serves them from walker-queries.yaml.
    assert_promtool_lints_clean(
        "SELECT walker.prometheus()",
        &c.query_one("SELECT walker.prometheus()"),
    );
    let walker_families: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("walker_")
                || l.starts_with("# HELP walker_")
                || l.starts_with("# TYPE walker_")
        })
        .collect();
    assert_promtool_lints_clean(
        "the exporter's walker_* families",
        &walker_families.join("\n"),
    );

    let prom_port = free_port();
    let config = work.join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: walker\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            ops_dir().join("walker-alerts.yml").display()
        ),
    )
    .unwrap();
    let mut prometheus_cmd = Command::new(prometheus_bin);
    prometheus_cmd
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            work.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let mut prometheus = Process::start("prometheus", prometheus_cmd, work.join("prometheus.log"));

    // The scrape works: Prometheus sees the target up.
    let deadline = Instant::now() + Duration::from_secs(90);
    while prom_values(prom_port, "up{job=\"walker\"} == 1").map_or(true, |v| v.len() != 1) {
        prometheus.check_alive();
        exporter.check_alive();
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the exporter:\n{}\n{}",
            prometheus.log_tail(),
            exporter.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Stable while idle: the views' values, and the hand-derived dead tuples.
    let view = |sql: &str| -> f64 {
        c.query_one(sql)
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    prom_settles(
        prom_port,
        "walker_garbagemap_relation_dead_tuples{relation=\"t\"}",
        DELETED as f64,
    );
    assert_eq!(
        view("SELECT dead_tuples FROM walker.garbagemap_relations WHERE relation = 't'::regclass"),
        DELETED as f64
    );
    prom_settles(
        prom_port,
        "walker_max_retained_bytes",
        view("SELECT max_retained_bytes FROM walker.status"),
    );
    prom_settles(
        prom_port,
        "walker_autosizer_max_wal_size_bytes",
        view("SELECT setting::int8 * 1048576 FROM pg_settings WHERE name = 'max_wal_size'"),
    );
    let mode = c.query_one("SELECT walker.autosizer_status()->>'mode'");
    prom_settles(
        prom_port,
        &format!("walker_autosizer_mode_info{{mode=\"{mode}\"}}"),
        1.0,
    );
    for plugin in ["garbagemap", "autosizer", "budget"] {
        assert_eq!(
            c.query_one(&format!(
                "SELECT state FROM walker.plugins WHERE name = '{plugin}'"
            )),
            "running"
        );
        prom_settles(
            prom_port,
            &format!("walker_plugin_running{{plugin=\"{plugin}\"}}"),
            1.0,
        );
        prom_settles(
            prom_port,
            &format!("walker_plugin_state_info{{plugin=\"{plugin}\",state=\"running\"}}"),
            1.0,
        );
        prom_settles(
            prom_port,
            &format!("walker_plugin_errors_total{{plugin=\"{plugin}\"}}"),
            view(&format!(
                "SELECT errors FROM walker.plugins WHERE name = '{plugin}'"
            )),
        );
    }
    prom_settles(
        prom_port,
        "walker_gaps_total",
        view("SELECT gaps FROM walker.status"),
    );
    prom_settles(
        prom_port,
        "walker_worker_starts_total",
        view("SELECT starts FROM walker.status"),
    );
    prom_settles(
        prom_port,
        "walker_budget_statements_total{action=\"reject\"}",
        view("SELECT rejected FROM walker.budget_counters"),
    );

    // Counters that may move (checkpoints, the exporter's own sessions): bounded by the
    // views read before and after the scrape Prometheus answers with.
    for (query, sql) in [
        ("walker_records_total", "SELECT records FROM walker.status"),
        ("walker_bytes_total", "SELECT bytes FROM walker.status"),
        (
            "walker_plugin_records_total{plugin=\"budget\"}",
            "SELECT records FROM walker.plugins WHERE name = 'budget'",
        ),
        (
            "walker_budget_wal_bytes_total",
            "SELECT bytes FROM walker.budget_counters",
        ),
    ] {
        let before = view(sql);
        let read_at = unix_now();
        // A scrape that started after `before` was read (Prometheus stamps a sample with
        // its scrape's start).
        let deadline = Instant::now() + Duration::from_secs(90);
        let got = loop {
            if prom_value(prom_port, &format!("timestamp({query})")) > read_at {
                break prom_value(prom_port, query);
            }
            assert!(
                Instant::now() < deadline,
                "{query}: no scrape after {read_at}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let after = view(sql);
        println!("{query}: view before {before}, Prometheus {got}, view after {after}");
        assert!(
            before <= got && got <= after,
            "{query}: Prometheus shows {got}, outside the views' {before}..={after}"
        );
    }

    // The rules load into the running Prometheus; none fires on a healthy server.
    let rules = http_get(prom_port, "/api/v1/rules").unwrap();
    assert!(
        rules.contains("WalkerRetainedWalNearBound"),
        "rules not loaded: {rules}"
    );
    assert_eq!(
        prom_values(prom_port, "ALERTS{alertstate=\"firing\"}").unwrap(),
        Vec::<f64>::new()
    );
}

mod common;
