//! Figure 5: memory. Shared memory reserved by the host and by each plugin at default
//! settings, the worker's resident memory, and garbagemap's bytes per tracked range.

use super::{Context, MIB};
use crate::plugins::GARBAGEMAP;
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::{process, workload};
use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// Most repetitions of this figure (its values barely vary).
const MAX_REPS: usize = 3;

/// Restarts `c` with `plugins` and returns a session once the worker is idle, with
/// the worker's pid.
fn restart_with(c: &Cluster, plugins: &[String]) -> Result<(Session, u32), String> {
    c.set_conf("walker.plugins", &plugins.join(","));
    c.restart();
    let what = format!("the memory cluster with plugins [{}]", plugins.join(", "));
    let mut s = Session::open(c.port(), "postgres", &what)?;
    probe::wait_plugins(&mut s, plugins, Duration::from_secs(60))?;
    probe::wait_caught_up(&mut s, Duration::from_secs(120))?;
    let pid = probe::wait_worker(&mut s, "idle", Duration::from_secs(60))?;
    Ok((s, pid))
}

/// Private memory the worker gains per garbagemap range: RssAnon and ranges after a
/// warm-up table, then after a second table of the same shape (so the allocator's
/// high-water mark from decoding and pending changes is already reached).
fn bytes_per_range(s: &mut Session, pid: u32, table_mb: u32) -> Result<(f64, f64), String> {
    s.query("SELECT walker.refresh_views()", QUERY)?;
    let rows = u64::from(table_mb) * 7400;
    let mut fill = |table: &str| -> Result<(f64, f64), String> {
        // Inserted 10000 rows per transaction: garbagemap holds a transaction's
        // changes until it ends, and one huge transaction would leave its peak in RSS.
        s.query(
            &format!(
                "CREATE TABLE {table} (id int, pad text); \
                 DO $$ BEGIN FOR i IN 0..{last_chunk} LOOP \
                   INSERT INTO {table} SELECT g, repeat('x', 100) \
                     FROM generate_series(i * 10000 + 1, least((i + 1) * 10000, {rows})) g; \
                   COMMIT; END LOOP; END $$; \
                 DELETE FROM {table} WHERE id % 10 = 0",
                last_chunk = (rows - 1) / 10000
            ),
            Duration::from_secs(600),
        )?;
        probe::wait_caught_up(s, Duration::from_secs(600))?;
        let ranges: f64 = s
            .value("SELECT ranges FROM walker.garbagemap_status", QUERY)?
            .parse()
            .map_err(|e| format!("walker.garbagemap_status.ranges: {e}"))?;
        let (_, anon) = process::rss_bytes(pid)?;
        Ok((ranges, anon as f64))
    };
    let (r0, m0) = fill("bench_map_warm")?;
    let (r1, m1) = fill("bench_map")?;
    s.query("DROP TABLE bench_map_warm; DROP TABLE bench_map", QUERY)?;
    probe::wait_caught_up(s, Duration::from_secs(120))?;
    if r1 <= r0 {
        return Err(format!(
            "garbagemap tracked no new ranges ({r0} before, {r1} after the second table)"
        ));
    }
    Ok(((m1 - m0) / (r1 - r0), r1 - r0))
}

/// Runs figure 5.
pub fn run(ctx: &Context) -> Result<Figure, String> {
    let started = Instant::now();
    let c = workload::builder("memory").plugins("").start();
    Session::open(c.port(), "postgres", "the memory cluster")?
        .query("CREATE EXTENSION walker", QUERY)?;
    let mut configs: Vec<(String, Vec<String>)> = vec![("host only".into(), vec![])];
    for p in &ctx.plugins {
        configs.push((p.clone(), vec![p.clone()]));
    }
    if ctx.plugins.len() > 1 {
        configs.push(("all plugins".into(), ctx.plugins.clone()));
    }
    let reps = ctx.size.reps.min(MAX_REPS);
    let mut shmem = vec![Vec::new(); configs.len()];
    let (mut rss, mut anon) = (Vec::new(), Vec::new());
    let (mut per_range, mut ranges) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        for (i, (_, plugins)) in configs.iter().enumerate() {
            let (mut s, pid) = restart_with(&c, plugins)?;
            shmem[i].push(probe::shmem_bytes(&mut s)? as f64);
            if i + 1 == configs.len() {
                let (vm, a) = process::rss_bytes(pid)?;
                rss.push(vm as f64 / MIB);
                anon.push(a as f64 / MIB);
                if ctx.has(GARBAGEMAP) {
                    let (b, n) = bytes_per_range(&mut s, pid, ctx.size.map_table_mb)?;
                    per_range.push(b);
                    ranges.push(n);
                }
            }
        }
    }
    let host = shmem[0].clone();
    let mut metrics = vec![Metric::new(
        "shared memory, host only",
        "bytes",
        host.clone(),
    )];
    for ((name, _), values) in configs.iter().zip(&shmem).skip(1) {
        let label = if name == "all plugins" {
            "shared memory, host + all plugins".to_string()
        } else {
            format!("shared memory, {name} (its share)")
        };
        let values = if name == "all plugins" {
            values.clone()
        } else {
            values.iter().zip(&host).map(|(v, h)| v - h).collect()
        };
        metrics.push(Metric::new(label, "bytes", values));
    }
    let last = &configs[configs.len() - 1].0;
    metrics.push(Metric::new(
        format!("worker VmRSS, idle ({last})"),
        "MiB",
        rss,
    ));
    metrics.push(Metric::new(
        format!("worker RssAnon, idle ({last})"),
        "MiB",
        anon,
    ));
    let mut method = vec![
        "One cluster, restarted with each plugin set at default settings, alternating within each \
         repetition: no plugin, each shipped plugin alone, all of them. Shared memory is \
         `walker.status.shmem_bytes` (the host and its plugins); a plugin's share is its set's \
         value minus the host-only value. Resident memory is `VmRSS` (including the shared \
         memory the worker touched) and `RssAnon` (its private memory) from /proc/<pid>/status \
         of the idle worker with the last set, after it caught up with the WAL since start."
            .to_string(),
    ];
    if ctx.has(GARBAGEMAP) {
        metrics.push(Metric::new(
            "garbagemap private memory per tracked range",
            "bytes",
            per_range,
        ));
        metrics.push(Metric::new(
            "ranges added by the second table",
            "ranges",
            ranges,
        ));
        method.push(format!(
            "garbagemap's bytes per tracked range: with all plugins, a {mb} MB table is written \
             (100-byte rows, 10000 per transaction) and every tenth row deleted, so every block \
             of every range has dead tuples; after walker caught up, a second table of the same \
             shape. The figure is the \
             worker's RssAnon growth over the second table divided by the ranges it added \
             (`walker.garbagemap_status.ranges`), at the default 128 blocks per range. \
             garbagemap's shared memory is a fixed table (its share above) whatever it tracks.",
            mb = ctx.size.map_table_mb
        ));
    }
    Ok(Figure {
        number: 5,
        title: "Memory".to_string(),
        method,
        facts: vec![("repetitions".into(), reps.to_string())],
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    })
}
