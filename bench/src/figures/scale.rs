//! Figure 7: how the cost grows. Walk throughput against the number of plugins
//! (figure 1's walks), and budget's cost against the number of scopes.

use super::overhead::{cpu_per_gib, one_run, Load, Side};
use super::Context;
use crate::plugins::{self, BUDGET};
use crate::probe::QUERY;
use crate::report::{Figure, Metric, Outcome};
use crate::workload;
use std::time::Instant;

/// Most repetitions of the scopes runs (they must leave the full run within its time).
const MAX_REPS: usize = 3;

/// The numbers of distinct scopes the budget runs write from.
pub const SCOPES: [u32; 3] = [1, 100, 1000];

/// The script, in `bench/scripts/`.
pub const SCRIPT: &str = "budget-scopes.sql";

/// The order of [`SCOPES`] in repetition `rep`: rotated by one place per repetition,
/// so none always runs first.
pub fn rotation(rep: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| (k + rep) % n).collect()
}

/// A budget counter as a number.
fn counter(side: &mut Side, sql: &str) -> Result<f64, String> {
    let v = side.session.value(sql, QUERY)?;
    v.parse().map_err(|e| format!("{sql}: {v:?}: {e}"))
}

/// Runs figure 7: `walks` is figure 1's series (empty when figure 1 did not run).
pub fn run(ctx: &Context, walks: Vec<Metric>) -> Result<Figure, String> {
    let started = Instant::now();
    let mut metrics = walks;
    let mut facts = Vec::new();
    let mut notes = Vec::new();
    if metrics.is_empty() {
        notes.push("figure 1 did not run (its walks are this figure's first series)".to_string());
    }
    if ctx.has(BUDGET) && plugins::installed(BUDGET) {
        let (m, f) = scopes(ctx)?;
        metrics.extend(m);
        facts.extend(f);
    } else {
        notes.push("the budget plugin is not among the shipped plugins".to_string());
    }
    for n in &notes {
        facts.push(("not measured".to_string(), n.clone()));
    }
    Ok(Figure {
        number: 7,
        title: "Scale".to_string(),
        method: vec![
            "Walk throughput against the number of plugins: figure 1's walks of its backlog with \
             the first 0, 1, 2 and all (4) shipped plugins in `walker.plugins` order (records/s, \
             and the throughput over walker alone's in the same repetition)."
                .to_string(),
            format!(
                "budget's cost against the number of scopes: one cluster with walker and budget alone, \
                 figure 4's policy (role postgres, observe mode, a rate no run reaches: every write \
                 goes through admission), `pgbench -i -s 1`. pgbench runs `bench/scripts/{SCRIPT}`: \
                 per transaction `SET application_name` to one of N values at random (a budget scope \
                 per value) and one UPDATE by primary key, with N = {}. Each repetition runs every N \
                 once, the order rotating; before every run VACUUM, CHECKPOINT and a wait until walker \
                 caught up. So the statements are the same for every N and only the number of scopes \
                 they are charged to differs: TPS(N) / TPS(1) of the same repetition is the backend \
                 side's cost of more scopes, the worker's CPU per GiB the walker side's. A role keeps \
                 at most 128 session scopes (`budget.max_scopes` / 8, at most 128), so above that \
                 the runs also measure eviction: scopes evicted during each N's runs are given.",
                SCOPES.map(|n| n.to_string()).join(", ")
            ),
        ],
        facts,
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Facts of a figure, as (name, value).
type Facts = Vec<(String, String)>;

/// The scopes runs: metrics and facts.
fn scopes(ctx: &Context) -> Result<(Vec<Metric>, Facts), String> {
    let budget = [BUDGET.to_string()];
    let mut side = Side::start("scopes", Some(&budget), 1)?;
    side.session.query(super::admission::POLICY, QUERY)?;
    side.session
        .query("SELECT walker.budget_sync(60000)", QUERY)?;
    let file = workload::script_path(SCRIPT);
    let reps = ctx.size.reps_up_to(MAX_REPS);
    let n = SCOPES.len();
    let (mut tps, mut cpu, mut evicted) = (vec![Vec::new(); n], vec![Vec::new(); n], vec![0.0; n]);
    let evictions = "SELECT scopes_evicted FROM walker.budget_counters";
    for rep in 0..reps {
        for i in rotation(rep, n) {
            let load = Load::Script {
                file: &file,
                seconds: ctx.size.scope_seconds,
                vars: vec![("scale", "1".to_string()), ("apps", SCOPES[i].to_string())],
                between: workload::BETWEEN_RUNS,
            };
            let e0 = counter(&mut side, evictions)?;
            let r = one_run(ctx, &mut side, &load, None)?;
            evicted[i] += counter(&mut side, evictions)? - e0;
            tps[i].push(r.tps);
            cpu[i].push(cpu_per_gib(&r));
        }
    }
    let scopes_now = counter(&mut side, "SELECT count(*) FROM walker.budget_scopes")?;
    let mut metrics = Vec::new();
    for i in 0..n {
        let label = format!(
            "budget, {} scope{}",
            SCOPES[i],
            if SCOPES[i] == 1 { "" } else { "s" }
        );
        metrics.push(Metric::new(format!("{label}: TPS"), "tx/s", tps[i].clone()));
        if i > 0 {
            metrics.push(Metric::new(
                format!("{label}: TPS / 1 scope"),
                "ratio",
                tps[i].iter().zip(&tps[0]).map(|(a, b)| a / b).collect(),
            ));
        }
        metrics.push(Metric::new(
            format!("{label}: worker CPU per GiB of WAL"),
            "CPU s/GiB",
            cpu[i].clone(),
        ));
    }
    let mut facts = vec![(
        "budget scopes runs".to_string(),
        format!(
            "`pgbench -n -f {SCRIPT} -T {} -c {c} -j {c} -D apps=N`, {reps} repetitions",
            ctx.size.scope_seconds,
            c = ctx.size.clients
        ),
    )];
    facts.push((
        "scopes evicted".to_string(),
        SCOPES
            .iter()
            .zip(&evicted)
            .map(|(n, e)| format!("{e:.0} during the runs with {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    facts.push((
        "rows of walker.budget_scopes at the end".to_string(),
        format!("{scopes_now:.0}"),
    ));
    Ok((metrics, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_put_each_first_once() {
        assert_eq!(rotation(0, 3), vec![0, 1, 2]);
        assert_eq!(rotation(1, 3), vec![1, 2, 0]);
        assert_eq!(rotation(2, 3), vec![2, 0, 1]);
        assert_eq!(rotation(3, 3), vec![0, 1, 2]);
    }
}
