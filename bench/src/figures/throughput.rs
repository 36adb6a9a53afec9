//! Figure 1: walk throughput. walker catches up over a WAL backlog with no plugin,
//! with rmgr_stats and with all shipped plugins, alternating with `pg_waldump --stats`
//! and `pg_get_wal_stats` over the same range.

use super::{Context, MIB};
use crate::plugins::RMGR_STATS;
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::{lsn, process, workload};
use std::process::Command;
use std::time::{Duration, Instant};
use walker_tests::{pg_bindir, Cluster};

/// A stopped cluster whose walker slot holds a WAL backlog from `start` to `end`.
struct Backlog {
    source: Cluster,
    start: u64,
    end: u64,
}

impl Backlog {
    fn bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// Builds the backlog: walker preloaded but paused (`walker.enabled = off`, so its
/// slot keeps the WAL), `pgbench -i`, then TPC-B until enough WAL is written.
fn build_backlog(ctx: &Context) -> Result<Backlog, String> {
    let size = &ctx.size;
    let source = workload::builder("backlog")
        .conf("walker.enabled", "off")
        .start();
    let mut s = Session::open(source.port(), "postgres", "the backlog cluster")?;
    s.query("CREATE EXTENSION walker", QUERY)?;
    s.query("CREATE EXTENSION pg_walinspect", QUERY)?;
    let slot = "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'walker'";
    probe::poll(
        "walker to create its replication slot",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || Ok(s.query(slot, QUERY)?.first().is_some_and(|l| !l.is_empty())),
    )?;
    let start = lsn::parse(&s.value(slot, QUERY)?)?;
    workload::init(&source, size.backlog_scale)?;
    let chunk = if size.backlog_bytes <= 64 << 20 {
        2
    } else {
        10
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let now = lsn::parse(&s.value("SELECT pg_current_wal_lsn()", QUERY)?)?;
        if now - start >= size.backlog_bytes {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the backlog reached only {:.0} MiB of {:.0} MiB in 15 minutes",
                (now - start) as f64 / MIB,
                size.backlog_bytes as f64 / MIB
            ));
        }
        workload::tpcb(&source, chunk, size.clients)?;
    }
    let end = probe::mark(&mut s)?;
    drop(s);
    source.stop();
    Ok(Backlog { source, start, end })
}

/// One walk: a copy of the backlog cluster with `plugins`, started paused; the time
/// from `walker.enabled = on` (reload) until walker has processed the backlog's end.
fn walk(ctx: &Context, b: &Backlog, plugins: &[String]) -> Result<f64, String> {
    let c = workload::builder("walk")
        .copy_of(&b.source)
        .plugins(&plugins.join(","))
        .conf("walker.enabled", "off")
        .start();
    let what = format!("the walk cluster with plugins [{}]", plugins.join(", "));
    let mut s = Session::open(c.port(), "postgres", &what)?;
    probe::wait_worker(&mut s, "paused", Duration::from_secs(60))?;
    probe::wait_plugins(&mut s, plugins, Duration::from_secs(60))?;
    c.set_conf("walker.enabled", "on");
    let t0 = Instant::now();
    s.query("SELECT pg_reload_conf()", QUERY)?;
    probe::wait_processed(&mut s, b.end, ctx.size.walk_timeout)
        .map_err(|e| format!("{what}: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let started_at = lsn::parse(&s.value("SELECT start_lsn FROM walker.status", QUERY)?)?;
    if started_at > b.start + (1 << 20) {
        return Err(format!(
            "{what}: walker started at {}, after the backlog's start {}",
            lsn::format(started_at),
            lsn::format(b.start)
        ));
    }
    Ok(secs)
}

/// The record count of `pg_waldump --stats` (its `Total` line).
pub fn parse_waldump_total(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()? == "Total").then_some(())?;
        words.next()?.parse().ok()
    })
}

/// `pg_waldump --stats` over the backlog: (seconds, records).
fn waldump(b: &Backlog) -> Result<(f64, u64), String> {
    let mut cmd = Command::new(pg_bindir().join("pg_waldump"));
    cmd.arg("--stats")
        .arg("-p")
        .arg(b.source.data_dir().join("pg_wal"))
        .args(["-s", &lsn::format(b.start), "-e", &lsn::format(b.end)]);
    let t0 = Instant::now();
    let out = process::run(cmd, "pg_waldump --stats", Duration::from_secs(600))?;
    let secs = t0.elapsed().as_secs_f64();
    let records = parse_waldump_total(&out)
        .ok_or_else(|| format!("pg_waldump --stats printed no Total line:\n{out}"))?;
    Ok((secs, records))
}

/// `pg_get_wal_stats` over the backlog on a running copy: (seconds, records).
fn walinspect(s: &mut Session, b: &Backlog) -> Result<(f64, u64), String> {
    let sql = format!(
        "SELECT sum(count) FROM pg_get_wal_stats('{}', '{}')",
        lsn::format(b.start),
        lsn::format(b.end)
    );
    let t0 = Instant::now();
    let v = s.value(&sql, Duration::from_secs(600))?;
    let secs = t0.elapsed().as_secs_f64();
    Ok((secs, v.parse().map_err(|e| format!("{sql}: {v:?}: {e}"))?))
}

/// Runs figure 1.
pub fn run(ctx: &Context) -> Result<Figure, String> {
    let started = Instant::now();
    let b = build_backlog(ctx)?;
    let built = started.elapsed().as_secs_f64();
    let inspect_cluster = workload::builder("walinspect")
        .copy_of(&b.source)
        .preload_walker(false)
        .start();
    let mut insp = Session::open(
        inspect_cluster.port(),
        "postgres",
        "the pg_walinspect cluster",
    )?;

    let mut variants: Vec<(String, Vec<String>)> = vec![("walker, no plugin".into(), vec![])];
    if ctx.has(RMGR_STATS) {
        variants.push(("walker + rmgr_stats".into(), vec![RMGR_STATS.to_string()]));
    }
    variants.push((
        format!("walker + all plugins ({})", ctx.plugins.join(", ")),
        ctx.plugins.clone(),
    ));

    let reps = ctx.size.reps;
    let mut walks = vec![Vec::new(); variants.len()];
    let (mut dump, mut insp_t) = (Vec::new(), Vec::new());
    let (mut dump_records, mut insp_records) = (0, 0);
    // Each repetition runs every variant and both tools once; the order rotates by one
    // place per repetition so none always goes first.
    let tasks = variants.len() + 2;
    for rep in 0..reps {
        for k in 0..tasks {
            match (k + rep) % tasks {
                i if i < variants.len() => walks[i].push(walk(ctx, &b, &variants[i].1)?),
                i if i == variants.len() => {
                    let (t, n) = waldump(&b)?;
                    dump.push(t);
                    dump_records = n;
                }
                _ => {
                    let (t, n) = walinspect(&mut insp, &b)?;
                    insp_t.push(t);
                    insp_records = n;
                }
            }
        }
    }

    let mib = b.bytes() as f64 / MIB;
    let rates = |times: &[f64], records: u64| {
        (
            times.iter().map(|t| records as f64 / t).collect::<Vec<_>>(),
            times.iter().map(|t| mib / t).collect::<Vec<_>>(),
        )
    };
    let mut metrics = Vec::new();
    let mut add_rates = |name: &str, times: &[f64], records: u64| {
        let (r, m) = rates(times, records);
        metrics.push(Metric::new(format!("{name}: records/s"), "records/s", r));
        metrics.push(Metric::new(format!("{name}: MiB/s"), "MiB/s", m));
    };
    for ((name, _), times) in variants.iter().zip(&walks) {
        add_rates(name, times, dump_records);
    }
    add_rates("pg_waldump --stats", &dump, dump_records);
    add_rates("pg_get_wal_stats", &insp_t, insp_records);
    // Same byte range, so the throughput ratio is the inverse ratio of the times,
    // pairing each walk with the reference runs of its own repetition.
    let ratio = |walker: &[f64], reference: &[f64]| {
        walker
            .iter()
            .zip(reference)
            .map(|(w, r)| r / w)
            .collect::<Vec<_>>()
    };
    for ((name, _), times) in variants.iter().zip(&walks) {
        metrics.push(Metric::new(
            format!("{name} / pg_waldump"),
            "ratio",
            ratio(times, &dump),
        ));
        metrics.push(Metric::new(
            format!("{name} / pg_get_wal_stats"),
            "ratio",
            ratio(times, &insp_t),
        ));
    }

    Ok(Figure {
        number: 1,
        title: "Walk throughput".to_string(),
        method: vec![
            "A cluster with walker preloaded but paused (`walker.enabled = off`, its slot keeps \
             the WAL) runs `pgbench -i` and then TPC-B until the backlog is written, and stops. \
             Each repetition runs, one after the other: one walk per variant (no plugin, \
             rmgr_stats, all shipped plugins), `pg_waldump --stats -s START -e END` on the \
             stopped cluster's `pg_wal`, and `SELECT sum(count) FROM pg_get_wal_stats(START, END)` \
             on a running copy of it; the order rotates by one place per repetition."
                .to_string(),
            "A walk starts a fresh copy (`cp -a`) of the stopped cluster, still paused, with the \
             variant's `walker.plugins`; once the worker reports `paused` and every plugin \
             `running`, the clock starts at `walker.enabled = on` plus `pg_reload_conf()` and \
             stops when `walker.status.processed_lsn` reaches END (polled every 20 ms). So the \
             time excludes server start, plugin loading and shared-memory setup, and includes \
             waking the worker (SIGHUP sets its latch)."
                .to_string(),
            "Records/s divide pg_waldump's record count of the range (walker's variants too: the \
             same records) or pg_get_wal_stats' own count by the time; MiB/s divide END - START. \
             A ratio is walker's throughput over the reference tool's, per repetition (> 1: \
             walker is faster). All WAL is in the page cache (copied or read just before)."
                .to_string(),
        ],
        facts: vec![
            (
                "backlog".into(),
                format!(
                    "{mib:.1} MiB of WAL, {dump_records} records (pg_waldump; pg_get_wal_stats: {insp_records}), {} .. {}",
                    lsn::format(b.start),
                    lsn::format(b.end)
                ),
            ),
            (
                "workload".into(),
                format!(
                    "pgbench -i -s {} then TPC-B with {} clients; built in {built:.0} s",
                    ctx.size.backlog_scale, ctx.size.clients
                ),
            ),
        ],
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waldump_total() {
        let out = "Type                                           N      (%)          Record size      (%)\n\
                   ----                                           -      ---          -----------      ---\n\
                   XLOG                                          12 (  0.01)                 1234 (  0.02)\n\
                                                           --------                      --------\n\
                   Total                                     123456                      98765432 [43.21%]\n";
        assert_eq!(parse_waldump_total(out), Some(123_456));
        assert_eq!(parse_waldump_total("nothing"), None);
    }
}
