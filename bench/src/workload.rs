//! pgbench, and the cluster settings every benchmark cluster shares.

use crate::process;

use std::path::{Path, PathBuf};
use std::time::Duration;
use walker_tests::{client_command, Cluster, ClusterBuilder};

/// Settings of every benchmark cluster, besides the harness's own (`fsync = off`,
/// `max_connections = 20`, TCP on 127.0.0.1): as (name, value).
pub const SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "128MB"),
    ("autovacuum", "off"),
    ("walker.max_retained_wal", "-1"),
];

/// Settings the report lists: the harness's and [`SETTINGS`].
pub fn reported_settings() -> Vec<(String, String)> {
    [("fsync", "off"), ("max_connections", "20")]
        .iter()
        .chain(SETTINGS)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A cluster builder with [`SETTINGS`] (walker preloaded unless told otherwise).
pub fn builder(name: &str) -> ClusterBuilder {
    SETTINGS
        .iter()
        .fold(Cluster::builder(name), |b, (k, v)| b.conf(k, v))
}

/// Runs pgbench against database `postgres` of `c` with `args`; its standard output
/// (where the summary is) or an error naming `what`.
pub fn pgbench(
    c: &Cluster,
    args: &[&str],
    what: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut cmd = client_command("pgbench", c.port(), "postgres");
    cmd.args(args).arg("postgres");
    process::run(cmd, what, timeout)
}

/// `pgbench -i -q -s <scale>` (initialises the TPC-B tables).
pub fn init(c: &Cluster, scale: u32) -> Result<(), String> {
    let scale = scale.to_string();
    pgbench(
        c,
        &["-i", "-q", "-s", &scale],
        &format!("pgbench -i -s {scale} on {}", c.name()),
        Duration::from_secs(600),
    )
    .map(|_| ())
}

/// `pgbench -n -T <seconds> -c <clients> -j <clients>` (TPC-B); returns the TPS.
pub fn tpcb(c: &Cluster, seconds: u32, clients: u32) -> Result<f64, String> {
    tpcb_with(c, &[], seconds, clients)
}

/// TPC-B with prepared statements (`-M prepared`): the same records, written with
/// less parsing and planning per transaction (figure 1 builds its backlog so).
pub fn tpcb_prepared(c: &Cluster, seconds: u32, clients: u32) -> Result<f64, String> {
    tpcb_with(c, &["-M", "prepared"], seconds, clients)
}

/// `pgbench -n -T <seconds> -c <clients> -j <clients>` with `extra` arguments (TPC-B
/// unless they choose another script); returns the TPS.
fn tpcb_with(c: &Cluster, extra: &[&str], seconds: u32, clients: u32) -> Result<f64, String> {
    let (t, n) = (seconds.to_string(), clients.to_string());
    let what = format!("pgbench {} -T {t} -c {n} on {}", extra.join(" "), c.name());
    let mut args = vec!["-n", "-T", &t, "-c", &n, "-j", &n];
    args.extend(extra);
    let out = pgbench(
        c,
        &args,
        &what,
        Duration::from_secs(u64::from(seconds) + 120),
    )?;
    parse_tps(&out).ok_or_else(|| format!("{what}: no tps line in its output:\n{out}"))
}

/// `pgbench -n -S -T <seconds> -c <clients> -j <clients>` (select-only); returns the TPS.
pub fn select_only(c: &Cluster, seconds: u32, clients: u32) -> Result<f64, String> {
    tpcb_with(c, &["-S"], seconds, clients)
}

/// `pgbench -n -f <file> -T <seconds> -c <clients> -j <clients>` with `-D name=value`
/// for each of `vars` (a custom script); returns the TPS.
pub fn script(
    c: &Cluster,
    file: &Path,
    seconds: u32,
    clients: u32,
    vars: &[(&str, String)],
) -> Result<f64, String> {
    let file_arg = file.display().to_string();
    let defines: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut extra = vec!["-f", file_arg.as_str()];
    for d in &defines {
        extra.extend(["-D", d.as_str()]);
    }
    tpcb_with(c, &extra, seconds, clients)
}

/// A pgbench script of `bench/scripts/`.
pub fn script_path(name: &str) -> PathBuf {
    walker_tests::workspace_dir()
        .join("bench")
        .join("scripts")
        .join(name)
}

/// The `tps = N (without initial connection time)` figure of pgbench's summary.
pub fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("tps = ")?;
        if !rest.contains("without initial connection time") {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What `pgbench` does before a run (vacuum the tables, empty the history), plus a
/// checkpoint, so every run starts from the same state (the first change of each
/// page after a checkpoint writes a full-page image).
pub const BETWEEN_RUNS: &str = "VACUUM pgbench_branches; VACUUM pgbench_tellers; \
VACUUM pgbench_accounts; TRUNCATE pgbench_history; CHECKPOINT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_from_pgbench_output() {
        let out = "transaction type: <builtin: TPC-B (sort of)>\n\
                   number of failed transactions: 0 (0.000%)\n\
                   latency average = 3.351 ms\n\
                   initial connection time = 6.215 ms\n\
                   tps = 1193.592417 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(1193.592417));
        assert_eq!(
            parse_tps("tps = 5 (including connections establishing)"),
            None
        );
        assert_eq!(parse_tps("nothing"), None);
    }
}
