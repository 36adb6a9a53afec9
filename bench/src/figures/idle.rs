//! Figure 8: the CPU walker's background processes use on an idle cluster.

use super::overhead::Side;
use super::Context;
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::{lsn, process};
use std::thread;
use std::time::{Duration, Instant};

/// Most repetitions of this figure (each is a whole idle window).
const MAX_REPS: usize = 1;

/// How long the worker is left alone before the window opens: its naps double from
/// 5 ms to `walker.naptime` (200 ms) once no WAL comes, well within this.
const SETTLE: Duration = Duration::from_secs(2);

/// CPU seconds used per second of wall clock, in % of a core.
pub fn share_of_core(cpu_seconds: f64, wall_seconds: f64) -> f64 {
    if wall_seconds > 0.0 {
        100.0 * cpu_seconds / wall_seconds
    } else {
        f64::NAN
    }
}

/// Runs figure 8 on `side` (the cluster with walker and all plugins, after figure 2's
/// and 6's runs).
pub fn run(ctx: &Context, side: &mut Side) -> Result<Figure, String> {
    let started = Instant::now();
    let pid = side
        .worker
        .ok_or("figure 8 needs the cluster with walker")?;
    let s = &mut side.session;
    let services: u32 = s
        .value(
            "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'walker services'",
            QUERY,
        )?
        .parse()
        .map_err(|e| format!("the services worker's pid: {e}"))?;
    let secs = f64::from(ctx.size.idle_seconds);
    let (mut worker_cpu, mut services_cpu, mut wal) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ctx.size.reps_up_to(MAX_REPS) {
        probe::wait_caught_up(s, Duration::from_secs(600))?;
        let now = probe::wait_worker(s, "idle", Duration::from_secs(60))?;
        if now != pid {
            return Err(format!(
                "the walker worker restarted (pid {pid}, now {now})"
            ));
        }
        thread::sleep(SETTLE);
        let lsn0 = lsn::parse(&s.value("SELECT pg_current_wal_insert_lsn()", QUERY)?)?;
        let w0 = process::cpu_seconds(pid, ctx.ticks)?;
        let v0 = match services {
            0 => None,
            p => Some(process::cpu_seconds(p, ctx.ticks)?),
        };
        let t0 = Instant::now();
        thread::sleep(Duration::from_secs(u64::from(ctx.size.idle_seconds)));
        let w1 = process::cpu_seconds(pid, ctx.ticks)?;
        let v1 = match services {
            0 => None,
            p => Some(process::cpu_seconds(p, ctx.ticks)?),
        };
        let wall = t0.elapsed().as_secs_f64();
        let lsn1 = lsn::parse(&s.value("SELECT pg_current_wal_insert_lsn()", QUERY)?)?;
        worker_cpu.push(share_of_core(w1 - w0, wall));
        if let (Some(a), Some(b)) = (v0, v1) {
            services_cpu.push(share_of_core(b - a, wall));
        }
        wal.push(lsn1.saturating_sub(lsn0) as f64);
    }
    let mut metrics = vec![Metric::new(
        "walker worker CPU, idle",
        "% of a core",
        worker_cpu.clone(),
    )];
    metrics.push(Metric::new(
        format!("walker worker CPU over {secs:.0} s idle"),
        "CPU s",
        worker_cpu.iter().map(|p| p * secs / 100.0).collect(),
    ));
    if !services_cpu.is_empty() {
        metrics.push(Metric::new(
            "walker services worker CPU, idle",
            "% of a core",
            services_cpu,
        ));
    }
    metrics.push(Metric::new("WAL written during the window", "bytes", wal));
    Ok(Figure {
        number: 8,
        title: "Idle CPU".to_string(),
        method: vec![format!(
            "On figure 2's cluster with walker and all plugins, after its runs: once walker has \
             caught up and its worker is idle, {} s without any client, then a window of {secs:.0} s \
             with no client (only this benchmark's two queries of the insert LSN around it). CPU is \
             utime + stime (all threads) from /proc/<pid>/stat of the walker worker and of the \
             walker services worker (`pg_stat_activity.backend_type`) at the window's ends, over the \
             window's wall-clock time; the resolution is one clock tick (1/{} s) over the window. \
             WAL written during the window (e.g. a checkpoint's) is given, since the worker reads it.",
            SETTLE.as_secs(),
            ctx.ticks
        )],
        facts: Vec::new(),
        outcome: Outcome::Measured(metrics),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_of_a_core() {
        // 0.05 CPU s over 10 s: 0.5% of a core; 2 s over 1 s: both cores.
        assert!((share_of_core(0.05, 10.0) - 0.5).abs() < 1e-12);
        assert_eq!(share_of_core(2.0, 1.0), 200.0);
        assert!(share_of_core(1.0, 0.0).is_nan());
    }
}
