//! Figure 4: admission overhead of the budget plugin (observe mode) on pgbench
//! select-only and TPC-B, against the same cluster without it.

use super::Context;
use crate::plugins::{self, BUDGET};
use crate::report::{Figure, Metric, Outcome};
use std::time::Instant;

/// Runs figure 4, or reports why it cannot: the budget plugin must be among the
/// shipped plugins and installed.
pub fn run(ctx: &Context) -> Result<Figure, String> {
    let started = Instant::now();
    let outcome = if !ctx.has(BUDGET) || !plugins::installed(BUDGET) {
        Outcome::NotMeasured("budget plugin not built".to_string())
    } else {
        match measure(ctx)? {
            Some(metrics) => Outcome::Measured(metrics),
            None => Outcome::NotMeasured(
                "the budget plugin is installed, but its measurement (figures::admission::measure) is not written yet".to_string(),
            ),
        }
    };
    Ok(Figure {
        number: 4,
        title: "Admission overhead (budget plugin, observe mode)".to_string(),
        method: vec![
            "pgbench select-only (`-S`) and TPC-B, fixed clients and duration, alternating \
             between a cluster with the budget plugin in observe mode and the same cluster \
             without it; TPS and the ratio with / without per pair."
                .to_string(),
        ],
        facts: Vec::new(),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The measurement, once the budget plugin exists: the one function to write. Expected
/// metrics: TPS with and without for `-S` and TPC-B, and the two ratios (see
/// `overhead::run` for the alternation and `workload::tpcb`).
fn measure(_ctx: &Context) -> Result<Option<Vec<Metric>>, String> {
    Ok(None)
}
