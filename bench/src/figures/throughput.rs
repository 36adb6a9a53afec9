//! Figure 1: walk throughput. walker catches up over a WAL backlog with 0, 1, 2 and
//! all shipped plugins and with budget alone, alternating with `pg_waldump --stats`
//! and `pg_get_wal_stats` over the same range. The walks by number of plugins are
//! also figure 7's first series.

use super::{Context, MIB};
use crate::plugins::BUDGET;
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
        workload::tpcb_prepared(&source, chunk, size.clients)?;
    }
    let end = probe::mark(&mut s)?;
    drop(s);
    source.stop();
    Ok(Backlog { source, start, end })
}

/// One walk: a copy of the backlog cluster with `plugins`, started paused; the time
/// from `walker.enabled = on` (reload) until walker has processed the backlog's end,
/// and with budget, its counters then (`ended_full`, `unattributed_transactions`).
fn walk(ctx: &Context, b: &Backlog, plugins: &[String]) -> Result<(f64, Option<String>), String> {
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
    let counters = if plugins.iter().any(|p| p == BUDGET) {
        // The backlog cluster created the extension without budget: its views appear
        // once refreshed.
        s.query("SELECT walker.refresh_views()", QUERY)?;
        Some(s.value(
            "SELECT 'ended_full ' || ended_full || ', unattributed_transactions ' || \
             unattributed_transactions FROM walker.budget_counters",
            QUERY,
        )?)
    } else {
        None
    };
    Ok((secs, counters))
}

/// One kind of walk: a name and its `walker.plugins`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// As the results name it.
    pub name: String,
    /// `walker.plugins`, in order.
    pub plugins: Vec<String>,
    /// Added in 2026-11 (2 plugins, budget alone): runs at most [`EXTRA_REPS`]
    /// repetitions, so the full run keeps within its time.
    pub extra: bool,
}

/// Most repetitions of the extra variants.
pub const EXTRA_REPS: usize = 3;

/// How many of the shipped plugins the walks of figure 7's series load (the first
/// ones, in `walker.plugins` order), besides all of them.
const SERIES: [usize; 3] = [0, 1, 2];

/// Figure 1's walks for the shipped `plugins`: the first 0, 1 and 2 of them and all of
/// them (figure 7's series, in that order), then budget alone (the catch-up after a
/// pause of issue 16 item 3) when it is shipped and not already one of those.
pub fn variants(plugins: &[String]) -> Vec<Variant> {
    let mut out: Vec<Variant> = Vec::new();
    let mut add = |name: String, list: &[String], extra: bool| {
        if !out.iter().any(|v| v.plugins == list) {
            out.push(Variant {
                name,
                plugins: list.to_vec(),
                extra,
            });
        }
    };
    for n in SERIES.into_iter().filter(|&n| n < plugins.len()) {
        let first = &plugins[..n];
        let name = match n {
            0 => "walker, no plugin".to_string(),
            _ => format!("walker + {}", first.join(", ")),
        };
        add(name, first, n > 1);
    }
    add(
        format!("walker + all plugins ({})", plugins.join(", ")),
        plugins,
        false,
    );
    if plugins.iter().any(|p| p == BUDGET) {
        add(
            "walker + budget alone".to_string(),
            &[BUDGET.to_string()],
            true,
        );
    }
    out
}

/// The variants of [`variants`] that are figure 7's series: the first N plugins.
pub fn in_series(v: &Variant, plugins: &[String]) -> bool {
    plugins.starts_with(&v.plugins)
}

/// Figure 7's walk series from figure 1's walks: per variant with the first N
/// plugins, its records/s and its throughput over walker alone's in the same
/// repetition (the same range, so the inverse ratio of the times).
pub fn series_metrics(
    variants: &[Variant],
    walks: &[Vec<f64>],
    records: u64,
    plugins: &[String],
) -> Vec<Metric> {
    let alone = variants
        .iter()
        .position(|v| v.plugins.is_empty())
        .map(|i| &walks[i]);
    let mut out = Vec::new();
    for (v, times) in variants.iter().zip(walks) {
        if !in_series(v, plugins) {
            continue;
        }
        let n = v.plugins.len();
        let label = if n == 0 {
            "0 plugins".to_string()
        } else {
            format!(
                "{n} plugin{} ({})",
                if n == 1 { "" } else { "s" },
                v.plugins.join(", ")
            )
        };
        out.push(Metric::new(
            format!("walk, {label}: records/s"),
            "records/s",
            times.iter().map(|t| records as f64 / t).collect(),
        ));
        if let Some(alone) = alone.filter(|_| n > 0) {
            out.push(Metric::new(
                format!("walk, {label} / 0 plugins"),
                "ratio",
                times.iter().zip(alone).map(|(t, a)| a / t).collect(),
            ));
        }
    }
    out
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

/// The plugins `pg_walker` walks the backlog with (issue 19's figure: against
/// `pg_waldump --stats` over the same files).
pub const PG_WALKER_PLUGINS: &str = "rmgr_stats";

/// The `pg_walker` binary the bench runs (`WALKER_PG_WALKER`, set by `./walker bench`),
/// when there is one.
fn pg_walker_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("WALKER_PG_WALKER")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
}

/// `pg_walker walk` over the stopped backlog cluster's `pg_wal` from START to END.
fn walk_command(bin: &std::path::Path, b: &Backlog) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("walk")
        .arg("--wal-dir")
        .arg(b.source.data_dir().join("pg_wal"))
        .args([
            "--start",
            &lsn::format(b.start),
            "--end",
            &lsn::format(b.end),
        ]);
    cmd
}

/// `pg_walker walk` over the stopped backlog cluster's `pg_wal` from START to END with
/// [`PG_WALKER_PLUGINS`], in a fresh state directory (so it walks it all): seconds.
/// Then its rmgr_stats totals must count the same records as `pg_waldump`.
fn pg_walker_walk(bin: &std::path::Path, b: &Backlog, records: u64) -> Result<f64, String> {
    let state = b
        .source
        .data_dir()
        .with_file_name(format!("pg_walker-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut cmd = walk_command(bin, b);
    cmd.args(["--plugins", PG_WALKER_PLUGINS])
        .arg("--plugin-dir")
        .arg(pkglibdir()?)
        .arg("--state-dir")
        .arg(&state);
    let t0 = Instant::now();
    process::run(cmd, "pg_walker walk", Duration::from_secs(600))?;
    let secs = t0.elapsed().as_secs_f64();
    let mut show = Command::new(bin);
    show.args(["show", "rmgr_stats", "rmgrs", "--format", "csv"])
        .arg("--plugin-dir")
        .arg(pkglibdir()?)
        .arg("--state-dir")
        .arg(&state);
    let out = process::run(show, "pg_walker show", Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&state);
    let counted = count_column_sum(&out, "records")
        .ok_or_else(|| format!("pg_walker show rmgr_stats printed no records column:\n{out}"))?;
    if counted != records {
        return Err(format!(
            "pg_walker counted {counted} records over the backlog, pg_waldump {records}"
        ));
    }
    Ok(secs)
}

/// `pg_walker walk` without plugins over the same files: it reads and counts the records
/// (the reader's own cost); seconds. Its count must be pg_waldump's.
fn pg_walker_count(bin: &std::path::Path, b: &Backlog, records: u64) -> Result<f64, String> {
    let cmd = walk_command(bin, b);
    let t0 = Instant::now();
    let out = process::run(cmd, "pg_walker walk (no plugin)", Duration::from_secs(600))?;
    let secs = t0.elapsed().as_secs_f64();
    let counted: Option<u64> = out.split_whitespace().next().and_then(|n| n.parse().ok());
    if counted != Some(records) {
        return Err(format!(
            "pg_walker walk without plugins printed {out:?} over the backlog; pg_waldump counted {records} records"
        ));
    }
    Ok(secs)
}

/// Both pg_walker walks of a repetition: without plugins, then with
/// [`PG_WALKER_PLUGINS`]; seconds each.
fn pg_walker_walks(bin: &std::path::Path, b: &Backlog, records: u64) -> Result<(f64, f64), String> {
    Ok((
        pg_walker_count(bin, b, records)?,
        pg_walker_walk(bin, b, records)?,
    ))
}

/// The sum of column `name` of a CSV table with a header line.
pub fn count_column_sum(csv: &str, name: &str) -> Option<u64> {
    let mut lines = csv.lines();
    let col = lines.next()?.split(',').position(|h| h.trim() == name)?;
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').nth(col)?.trim().parse::<u64>().ok())
        .sum()
}

/// The server's plugin directory (`pg_config --pkglibdir`), where `./walker` installed
/// the plugins.
fn pkglibdir() -> Result<std::path::PathBuf, String> {
    let mut cmd = Command::new(pg_bindir().join("pg_config"));
    cmd.arg("--pkglibdir");
    Ok(std::path::PathBuf::from(
        process::run(cmd, "pg_config --pkglibdir", Duration::from_secs(30))?.trim(),
    ))
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

/// Runs figure 1; also returns figure 7's walk series ([`series_metrics`]).
pub fn run(ctx: &Context) -> Result<(Figure, Vec<Metric>), String> {
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

    let variants = variants(&ctx.plugins);

    let reps = ctx.size.reps;
    let mut walks = vec![Vec::new(); variants.len()];
    let (mut dump, mut insp_t) = (Vec::new(), Vec::new());
    let (mut dump_records, mut insp_records) = (0, 0);
    let mut budget_counters: Vec<(String, String)> = Vec::new();
    // Each repetition runs every variant (the extra ones in the first EXTRA_REPS
    // repetitions) and both tools once; the order rotates by one place per repetition
    // so none always goes first.
    let (dump_task, insp_task, walker_cli_task) =
        (variants.len(), variants.len() + 1, variants.len() + 2);
    let cli = pg_walker_binary();
    let (mut cli0_t, mut cli_t) = (Vec::new(), Vec::new());
    // pg_walker's check needs pg_waldump's count: its walk follows pg_waldump's first run.
    let mut pending_cli = 0usize;
    for rep in 0..reps {
        let tasks: Vec<usize> = (0..variants.len())
            .filter(|&i| !variants[i].extra || rep < EXTRA_REPS)
            .chain([dump_task, insp_task])
            .chain(cli.as_ref().map(|_| walker_cli_task))
            .collect();
        for k in 0..tasks.len() {
            match tasks[(k + rep) % tasks.len()] {
                i if i == dump_task => {
                    let (t, n) = waldump(&b)?;
                    dump.push(t);
                    dump_records = n;
                    if let Some(bin) = cli.as_ref() {
                        for _ in 0..std::mem::take(&mut pending_cli) {
                            let (bare, with) = pg_walker_walks(bin, &b, dump_records)?;
                            cli0_t.push(bare);
                            cli_t.push(with);
                        }
                    }
                }
                i if i == walker_cli_task => match cli.as_ref() {
                    Some(bin) if dump_records > 0 => {
                        let (bare, with) = pg_walker_walks(bin, &b, dump_records)?;
                        cli0_t.push(bare);
                        cli_t.push(with);
                    }
                    _ => pending_cli += 1,
                },
                i if i == insp_task => {
                    let (t, n) = walinspect(&mut insp, &b)?;
                    insp_t.push(t);
                    insp_records = n;
                }
                i => {
                    let (secs, counters) = walk(ctx, &b, &variants[i].plugins)?;
                    walks[i].push(secs);
                    if let Some(c) = counters {
                        // The same every time (the same records): keep one per variant.
                        budget_counters.retain(|(name, _)| *name != variants[i].name);
                        budget_counters.push((variants[i].name.clone(), c));
                    }
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
    for (v, times) in variants.iter().zip(&walks) {
        add_rates(&v.name, times, dump_records);
    }
    let cli0_name = "pg_walker walk, no plugin";
    let cli_name = format!("pg_walker walk + {PG_WALKER_PLUGINS}");
    if !cli_t.is_empty() {
        add_rates(cli0_name, &cli0_t, dump_records);
        add_rates(&cli_name, &cli_t, dump_records);
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
    for (v, times) in variants.iter().zip(&walks) {
        let name = &v.name;
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
    if !cli_t.is_empty() {
        // Each pg_walker walk is paired with the pg_waldump run of its repetition.
        metrics.push(Metric::new(
            format!("{cli0_name} / pg_waldump"),
            "ratio",
            ratio(&cli0_t, &dump),
        ));
        metrics.push(Metric::new(
            format!("{cli_name} / pg_waldump"),
            "ratio",
            ratio(&cli_t, &dump),
        ));
    }

    let series = series_metrics(&variants, &walks, dump_records, &ctx.plugins);
    let figure = Figure {
        number: 1,
        title: "Walk throughput".to_string(),
        method: vec![
            "A cluster with walker preloaded but paused (`walker.enabled = off`, its slot keeps \
             the WAL) runs `pgbench -i` and then TPC-B until the backlog is written, and stops \
             (with prepared statements since 2026-11-30: the same records, written faster). \
             Each repetition runs, one after the other: one walk per variant (no plugin, the \
             first one and the first two shipped plugins, all of them, budget alone; the first two \
             and budget alone, added later, in the first 3 repetitions only), `pg_waldump --stats -s START -e END` on the \
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
            format!(
                "`pg_walker walk` (issue 19: the plugins outside the server) reads the same \
                 files as pg_waldump (the stopped cluster's `pg_wal`, `--start START --end \
                 END`) once per repetition without plugins (it reads and counts the records, \
                 which must be pg_waldump's count) and then with `--plugins \
                 {PG_WALKER_PLUGINS}` in a fresh state directory (its rmgr_stats totals must \
                 count pg_waldump's records); each time is the whole process (plugin loading \
                 included)."
            ),
            "Budget alone is the catch-up after a pause (issue 16 item 3): the backlog's \
             transactions ran while budget was not loaded, so none was published to it; on the \
             walk each one waits, ends unpublished and is settled to its database's \
             `unattributed` scope, with the ended-transaction queue at its bound (16,384) for \
             most of the walk (budget's counters at the end of each walk with it are given below)."
                .to_string(),
        ],
        facts: [
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
                    "pgbench -i -s {} then TPC-B (`-M prepared`) with {} clients; built in {built:.0} s",
                    ctx.size.backlog_scale, ctx.size.clients
                ),
            ),
        ]
        .into_iter()
        .chain(
            budget_counters
                .into_iter()
                .map(|(name, c)| (format!("budget counters after a walk ({name})"), c)),
        )
        .collect(),
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((figure, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_column_is_summed_by_its_header() {
        let csv = "rmgr_id,rmgr,records,record_bytes\n0,XLOG,12,300\n10,Heap,30,900\n\n";
        assert_eq!(count_column_sum(csv, "records"), Some(42));
        assert_eq!(count_column_sum(csv, "nope"), None);
        assert_eq!(count_column_sum("records\n1\nx\n", "records"), None);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn variants_by_number_of_plugins_and_budget_alone() {
        let all = names(&["rmgr_stats", "garbagemap", "autosizer", "budget"]);
        let v = variants(&all);
        let lists: Vec<Vec<String>> = v.iter().map(|v| v.plugins.clone()).collect();
        assert_eq!(
            lists,
            vec![
                names(&[]),
                names(&["rmgr_stats"]),
                names(&["rmgr_stats", "garbagemap"]),
                all.clone(),
                names(&["budget"]),
            ]
        );
        assert_eq!(v[0].name, "walker, no plugin");
        assert_eq!(v[2].name, "walker + rmgr_stats, garbagemap");
        assert_eq!(v[4].name, "walker + budget alone");
        // The variants added later run at most EXTRA_REPS repetitions.
        let extra: Vec<bool> = v.iter().map(|x| x.extra).collect();
        assert_eq!(extra, vec![false, false, true, false, true]);
        assert_eq!(
            v.iter().filter(|x| in_series(x, &all)).count(),
            4,
            "0, 1, 2 and 4 plugins"
        );
        // Budget alone is not repeated when it is the whole list; no duplicates.
        let b = names(&["budget"]);
        let lists: Vec<Vec<String>> = variants(&b).into_iter().map(|v| v.plugins).collect();
        assert_eq!(lists, vec![names(&[]), b.clone()]);
        // Two plugins: 0, 1 and all (2).
        assert_eq!(variants(&names(&["a", "b"])).len(), 3);
    }

    #[test]
    fn series_ratios_pair_repetitions() {
        let all = names(&["a", "b"]);
        let v = variants(&all);
        // Walk times per variant (0, a, all), two repetitions; 1000 records.
        let walks = vec![vec![1.0, 2.0], vec![2.0, 2.0], vec![4.0, 8.0]];
        let m = series_metrics(&v, &walks, 1000, &all);
        let get = |name: &str| m.iter().find(|x| x.name == name).unwrap().values.clone();
        assert_eq!(get("walk, 0 plugins: records/s"), vec![1000.0, 500.0]);
        assert_eq!(get("walk, 1 plugin (a) / 0 plugins"), vec![0.5, 1.0]);
        assert_eq!(get("walk, 2 plugins (a, b): records/s"), vec![250.0, 125.0]);
        assert_eq!(get("walk, 2 plugins (a, b) / 0 plugins"), vec![0.25, 0.25]);
        assert_eq!(m.len(), 5);
    }

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
