//! Figure 6: many short statements with DDL and errors (a custom pgbench script),
//! with walker and all plugins against the same cluster without walker, on figure
//! 2's pair of clusters and with its alternation.

use super::overhead::{cpu_per_gib, Load, Pair};
use super::Context;
use crate::probe::QUERY;
use crate::report::{Figure, Metric, Outcome};
use crate::workload;
use std::time::Instant;

/// Most repetitions of this figure (it must leave the full run within its time).
const MAX_REPS: usize = 3;

/// The script, in `bench/scripts/`.
pub const SCRIPT: &str = "short-statements.sql";

/// Tables the script writes (created on both sides before the first run).
const SETUP: &str = "CREATE TABLE IF NOT EXISTS bench_short (aid int, delta int); \
CREATE TABLE IF NOT EXISTS bench_short_unique (id int PRIMARY KEY); \
INSERT INTO bench_short_unique VALUES (1) ON CONFLICT DO NOTHING";

/// Before every run: the script's temporary tables leave dead catalog rows
/// (autovacuum is off), so the whole database is vacuumed.
const BETWEEN: &str = "VACUUM; TRUNCATE bench_short; CHECKPOINT";

/// Runs figure 6 on `pair`.
pub fn run(ctx: &Context, pair: &mut Pair) -> Result<Figure, String> {
    let started = Instant::now();
    for side in [&mut pair.with, &mut pair.without] {
        side.session.query(SETUP, QUERY)?;
    }
    let file = workload::script_path(SCRIPT);
    let load = Load::Script {
        file: &file,
        seconds: ctx.size.short_seconds,
        vars: vec![("scale", ctx.size.load_scale.to_string())],
        between: BETWEEN,
    };
    let reps = ctx.size.reps_up_to(MAX_REPS);
    let runs = pair.alternate(ctx, &load, reps, None)?;
    let col = |f: &dyn Fn(&(super::overhead::Run, super::overhead::Run)) -> f64| {
        runs.iter().map(f).collect::<Vec<_>>()
    };
    let mib = |b: u64| b as f64 / super::MIB;
    let metrics = vec![
        Metric::new(
            "TPS with walker + all plugins",
            "scripts/s",
            col(&|r| r.0.tps),
        ),
        Metric::new("TPS without walker", "scripts/s", col(&|r| r.1.tps)),
        Metric::new("TPS with / without", "ratio", col(&|r| r.0.tps / r.1.tps)),
        Metric::new(
            "worker CPU per GiB of WAL",
            "CPU s/GiB",
            col(&|r| cpu_per_gib(&r.0)),
        ),
        Metric::new(
            "WAL per run with walker",
            "MiB",
            col(&|r| mib(r.0.wal_bytes)),
        ),
        Metric::new(
            "WAL per run without walker",
            "MiB",
            col(&|r| mib(r.1.wal_bytes)),
        ),
    ];
    Ok(Figure {
        number: 6,
        title: "Short statements with DDL and errors".to_string(),
        method: vec![
            format!(
                "On figure 2's two clusters (with walker and all plugins, without walker), with the \
                 same alternation (one cluster at a time, which goes first alternating per \
                 repetition), pgbench runs the script `bench/scripts/{SCRIPT}`: per script run a \
                 SELECT, an UPDATE and an INSERT by primary key (autocommit), a transaction that \
                 creates a temporary table with a primary key (`ON COMMIT DROP`: a CREATE and a DROP) \
                 and inserts a row into it, and two DO blocks whose statement fails and is caught by \
                 an EXCEPTION clause: a division by zero and a unique violation (a heap insert, then \
                 an aborted subtransaction). pgbench 15 ends a client at its first error, so the \
                 errors stay on the server side. Before every run: VACUUM of the whole database \
                 (the temporary tables leave dead catalog rows; autovacuum is off), TRUNCATE of the \
                 script's log table, CHECKPOINT, and on the walker side a wait until it caught up."
            ),
            "TPS counts script runs per second (pgbench's tps, without connection time); the ratio \
             is with / without per repetition (< 1: walker costs throughput). Worker CPU as in \
             figure 2."
                .to_string(),
        ],
        facts: vec![
            (
                "workload".into(),
                format!(
                    "pgbench -i -s {}; each run `pgbench -n -f {SCRIPT} -T {} -c {c} -j {c}`",
                    ctx.size.load_scale,
                    ctx.size.short_seconds,
                    c = ctx.size.clients
                ),
            ),
            ("repetitions".into(), reps.to_string()),
        ],
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    })
}
