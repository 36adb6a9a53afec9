//! Figure 4: admission overhead of the budget plugin (observe mode) on pgbench
//! select-only and TPC-B, against the same cluster without it.

use super::Context;
use crate::plugins::{self, BUDGET};
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::workload;
use std::time::{Duration, Instant};

/// Most repetitions of this figure (it must leave the full run within its time).
const MAX_REPS: usize = 3;

/// Runs figure 4, or reports why it cannot: the budget plugin must be among the
/// shipped plugins and installed.
pub fn run(ctx: &Context) -> Result<Figure, String> {
    let started = Instant::now();
    let outcome = if !ctx.has(BUDGET) || !plugins::installed(BUDGET) {
        Outcome::NotMeasured("budget plugin not built".to_string())
    } else {
        Outcome::Measured(measure(ctx)?)
    };
    Ok(Figure {
        number: 4,
        title: "Admission overhead (budget plugin, observe mode)".to_string(),
        method: vec![
            "pgbench select-only (`-S`) and TPC-B, fixed clients and duration, alternating \
             between a cluster with walker and the budget plugin, whose one policy (role \
             postgres, observe mode, a rate no run reaches) every writing statement goes \
             through, and the same cluster without walker; TPS and the ratio with / without \
             per pair. A SELECT is governed too (it could write through a function), but one \
             predicted to write nothing passes on a per-session read pass renewed once a \
             second without touching the shared region, so select-only shows the hooks and \
             that pass; TPC-B adds admission, xid publication and accounting."
                .to_string(),
        ],
        facts: vec![(
            "workload".into(),
            format!(
                "pgbench -i -s {}; each run `pgbench -n [-S] -T {} -c {c} -j {c}`; {} repetitions",
                ctx.size.load_scale,
                ctx.size.admission_seconds,
                ctx.size.reps_up_to(MAX_REPS),
                c = ctx.size.clients
            ),
        )],
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The policy every statement of the benchmark goes through: role `postgres`, observe
/// mode, a rate no run reaches (so the admission path runs in full and never blocks).
pub const POLICY: &str =
    "SELECT walker.budget_create_policy('role', 'postgres', 1000000000000, 1000000000000, 'observe')";

/// Alternating pgbench runs (select-only, then TPC-B) on a cluster with walker and
/// the budget plugin in observe mode and on the same cluster without walker.
fn measure(ctx: &Context) -> Result<Vec<Metric>, String> {
    let size = &ctx.size;
    let with = workload::builder("with-budget").plugins(BUDGET).start();
    let without = workload::builder("without-budget")
        .preload_walker(false)
        .start();
    let mut ws = Session::open(
        with.port(),
        "postgres",
        "the cluster with the budget plugin",
    )?;
    ws.query("CREATE EXTENSION walker", QUERY)?;
    probe::wait_plugins(&mut ws, &[BUDGET.to_string()], Duration::from_secs(60))?;
    ws.query(POLICY, QUERY)?;
    // The policy takes effect once committed and loaded.
    ws.query("SELECT walker.budget_sync(60000)", QUERY)?;
    let mut wo = Session::open(without.port(), "postgres", "the cluster without walker")?;
    for c in [&with, &without] {
        workload::init(c, size.load_scale)?;
    }
    let statements0: f64 = ws
        .value("SELECT statements FROM walker.budget_counters", QUERY)?
        .parse()
        .map_err(|e| format!("budget_counters.statements: {e}"))?;
    let (mut s_with, mut s_without, mut t_with, mut t_without) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..size.reps_up_to(MAX_REPS) {
        let order = if rep % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for budget in order {
            let (c, s) = if budget {
                (&with, &mut ws)
            } else {
                (&without, &mut wo)
            };
            s.query(workload::BETWEEN_RUNS, Duration::from_secs(600))?;
            let sel = workload::select_only(c, size.admission_seconds, size.clients)?;
            let tpcb = workload::tpcb(c, size.admission_seconds, size.clients)?;
            if budget {
                s_with.push(sel);
                t_with.push(tpcb);
            } else {
                s_without.push(sel);
                t_without.push(tpcb);
            }
        }
    }
    let statements1: f64 = ws
        .value("SELECT statements FROM walker.budget_counters", QUERY)?
        .parse()
        .map_err(|e| format!("budget_counters.statements: {e}"))?;
    let ratio = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>();
    Ok(vec![
        Metric::new(
            "select-only TPS with budget (observe)",
            "tx/s",
            s_with.clone(),
        ),
        Metric::new("select-only TPS without walker", "tx/s", s_without.clone()),
        Metric::new(
            "select-only with / without",
            "ratio",
            ratio(&s_with, &s_without),
        ),
        Metric::new("TPC-B TPS with budget (observe)", "tx/s", t_with.clone()),
        Metric::new("TPC-B TPS without walker", "tx/s", t_without.clone()),
        Metric::new("TPC-B with / without", "ratio", ratio(&t_with, &t_without)),
        Metric::new(
            "writing statements through the observe policy",
            "statements",
            vec![statements1 - statements0],
        ),
    ])
}
