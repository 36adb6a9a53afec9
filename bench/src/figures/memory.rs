//! Figure 5: memory. Shared memory reserved by the host and by each plugin at default
//! settings, the worker's resident memory, and garbagemap's bytes per tracked range.

use super::{Context, MIB};
use crate::plugins::GARBAGEMAP;
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::{lsn, process, workload};
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

/// garbagemap's state once it published everything written so far: ranges tracked
/// and its live heap bytes (`None` from a garbagemap that does not count them).
fn map_state(s: &mut Session) -> Result<(f64, Option<f64>), String> {
    let target = probe::wait_caught_up(s, Duration::from_secs(600))?;
    let sql = format!(
        "SELECT through_lsn >= '{}'::pg_lsn, ranges, to_jsonb(g) ->> 'heap_bytes' \
         FROM walker.garbagemap_status g",
        lsn::format(target)
    );
    let mut row = String::new();
    probe::poll(
        "garbagemap to publish its map up to the end of the WAL",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            row = s.value(&sql, QUERY)?;
            Ok(row.starts_with('t'))
        },
    )?;
    let fields: Vec<&str> = row.split('|').collect();
    let ranges = fields
        .get(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("walker.garbagemap_status: no range count in {row:?}"))?;
    let heap = fields.get(2).and_then(|v| v.parse().ok());
    Ok((ranges, heap))
}

/// What garbagemap's memory grew by per range between two states: the worker's
/// RssAnon and (when counted) the plugin's live heap bytes.
struct PerRange {
    ranges: f64,
    rss: f64,
    heap: Option<f64>,
}

/// One measuring point: RssAnon and garbagemap's state.
struct Point {
    ranges: f64,
    anon: f64,
    heap: Option<f64>,
}

impl Point {
    fn now(s: &mut Session, pid: u32) -> Result<Point, String> {
        let (ranges, heap) = map_state(s)?;
        let (_, anon) = process::rss_bytes(pid)?;
        Ok(Point {
            ranges,
            anon: anon as f64,
            heap,
        })
    }

    /// Growth from `base` to `self`, per range added.
    fn per_range_since(&self, base: &Point) -> Result<PerRange, String> {
        let added = self.ranges - base.ranges;
        if added <= 0.0 {
            return Err(format!(
                "garbagemap tracked no new ranges ({} before, {} after)",
                base.ranges, self.ranges
            ));
        }
        Ok(PerRange {
            ranges: added,
            rss: (self.anon - base.anon) / added,
            heap: self.heap.zip(base.heap).map(|(a, b)| (a - b) / added),
        })
    }
}

/// Private memory the worker gains per garbagemap range: RssAnon and ranges after a
/// warm-up table, then after a second table of the same shape (so the allocator's
/// high-water mark from decoding and pending changes is already reached).
fn bytes_per_range(s: &mut Session, pid: u32, table_mb: u32) -> Result<PerRange, String> {
    s.query("SELECT walker.refresh_views()", QUERY)?;
    let rows = u64::from(table_mb) * 7400;
    let mut fill = |table: &str| -> Result<Point, String> {
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
        Point::now(s, pid)
    };
    let warm = fill("bench_map_warm")?;
    let second = fill("bench_map")?;
    s.query("DROP TABLE bench_map_warm; DROP TABLE bench_map", QUERY)?;
    probe::wait_caught_up(s, Duration::from_secs(120))?;
    second.per_range_since(&warm)
}

/// The scale series: one table of 8 kB ranges (`garbagemap.range_blocks = 1`), a few
/// rows per block (fillfactor 10) and a third of them deleted, grown until garbagemap
/// tracks each of `targets` ranges; memory per range added since a warm-up table of
/// the same shape.
fn scale_series(s: &mut Session, pid: u32, targets: &[u32]) -> Result<Vec<PerRange>, String> {
    // Rows come 10000 per transaction and are deleted 2000 blocks per transaction (a
    // TID range scan), so pending changes stay small whatever the table's size.
    let grow = |s: &mut Session, table: &str, blocks: u32| -> Result<(), String> {
        s.query(
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (id int, pad text) WITH (fillfactor = 10); \
                 DO $$ DECLARE next int; first bigint; last bigint; BEGIN \
                   SELECT coalesce(max(id), 0) INTO next FROM {table}; \
                   first := pg_relation_size('{table}') / 8192; \
                   WHILE pg_relation_size('{table}') < {blocks}::bigint * 8192 LOOP \
                     INSERT INTO {table} SELECT g, repeat('x', 100) \
                       FROM generate_series(next + 1, next + 10000) g; \
                     next := next + 10000; COMMIT; \
                   END LOOP; \
                   last := pg_relation_size('{table}') / 8192; \
                   FOR i IN first / 2000 .. last / 2000 LOOP \
                     DELETE FROM {table} WHERE ctid >= format('(%s,0)', i * 2000)::tid \
                       AND ctid < format('(%s,0)', (i + 1) * 2000)::tid AND id % 3 = 0; \
                     COMMIT; \
                   END LOOP; END $$",
            ),
            Duration::from_secs(600),
        )?;
        Ok(())
    };
    grow(s, "bench_scale_warm", 1000)?;
    let base = Point::now(s, pid)?;
    let mut out = Vec::new();
    for &target in targets {
        // The map also tracks the warm-up table's ranges.
        grow(s, "bench_scale", target)?;
        out.push(Point::now(s, pid)?.per_range_since(&base)?);
    }
    s.query("DROP TABLE bench_scale_warm; DROP TABLE bench_scale", QUERY)?;
    Ok(out)
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
    let (mut per_range, mut heap_per_range, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        for (i, (_, plugins)) in configs.iter().enumerate() {
            let (mut s, pid) = restart_with(&c, plugins)?;
            shmem[i].push(probe::shmem_bytes(&mut s)? as f64);
            if i + 1 == configs.len() {
                let (vm, a) = process::rss_bytes(pid)?;
                rss.push(vm as f64 / MIB);
                anon.push(a as f64 / MIB);
                if ctx.has(GARBAGEMAP) {
                    let p = bytes_per_range(&mut s, pid, ctx.size.map_table_mb)?;
                    per_range.push(p.rss);
                    heap_per_range.extend(p.heap);
                    ranges.push(p.ranges);
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
        if !heap_per_range.is_empty() {
            metrics.push(Metric::new(
                "garbagemap heap bytes per tracked range",
                "bytes",
                heap_per_range,
            ));
        }
        metrics.push(Metric::new(
            "ranges added by the second table",
            "ranges",
            ranges,
        ));
        // The scale series, once: one restart with one-block ranges and room for them.
        c.set_conf("garbagemap.range_blocks", "1");
        c.set_conf("garbagemap.max_ranges", "1048576");
        let (mut s, pid) = restart_with(&c, &ctx.plugins)?;
        for (target, p) in
            ctx.size
                .map_series
                .iter()
                .zip(scale_series(&mut s, pid, ctx.size.map_series)?)
        {
            metrics.push(Metric::new(
                format!("scale, {target} ranges: RssAnon per range"),
                "bytes",
                vec![p.rss],
            ));
            if let Some(h) = p.heap {
                metrics.push(Metric::new(
                    format!("scale, {target} ranges: heap bytes per range"),
                    "bytes",
                    vec![h],
                ));
            }
            metrics.push(Metric::new(
                format!("scale, {target} ranges: ranges added"),
                "ranges",
                vec![p.ranges],
            ));
        }
        method.push(format!(
            "garbagemap's bytes per tracked range: with all plugins, a {mb} MB table is written \
             (100-byte rows, 10000 per transaction) and every tenth row deleted, so every block \
             of every range has dead tuples; after walker caught up, a second table of the same \
             shape. The figure is the \
             worker's RssAnon growth over the second table divided by the ranges it added \
             (`walker.garbagemap_status.ranges`), at the default 128 blocks per range. \
             garbagemap's shared memory is a fixed table (its share above) whatever it tracks. \
             Heap bytes are garbagemap's own live allocations over the same two points \
             (`walker.garbagemap_status.heap_bytes`, counted by its allocator): what the map \
             holds, where RssAnon also holds what the C allocator kept after frees.",
            mb = ctx.size.map_table_mb
        ));
        method.push(format!(
            "Scale series (once, after the repetitions): restarted with all plugins, \
             `garbagemap.range_blocks = 1` (a range is one 8 kB block, so many ranges are \
             cheap to write) and `garbagemap.max_ranges = 1048576` (nothing evicted). A \
             1000-block warm-up table, then one table (fillfactor 10, 100-byte rows, \
             written 10000 rows per transaction, every third row deleted 2000 blocks per \
             transaction) grown until garbagemap tracks about {targets} ranges beyond the \
             warm-up; at each point the RssAnon and heap growth since the warm-up, per \
             range added. These ranges hold one block each; the figure above is for \
             128-block ranges.",
            targets = ctx
                .size
                .map_series
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
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
