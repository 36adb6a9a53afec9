//! Figures 2 and 3: pgbench TPC-B with walker and all plugins against the same
//! cluster without walker, alternating; the worker's CPU per GiB of WAL; and walker's
//! lag behind the flush LSN sampled during the runs with it.

use super::{Context, GIB, MIB};
use crate::lag::{self, Sample};
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::{lsn, process, workload};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use walker_tests::Cluster;

/// Samples the flush LSN (and walker's processed LSN, with walker) on its own
/// connection every interval until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Vec<Sample>, String>>,
}

impl Sampler {
    fn start(port: u16, walker: bool, every: Duration) -> Result<Sampler, String> {
        let mut s = Session::open(port, "postgres", "the lag sampler")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sql = if walker {
            "SELECT pg_current_wal_flush_lsn() || '|' || coalesce((SELECT processed_lsn FROM walker.status), '0/0')"
        } else {
            // The same load on the server without walker: one query per interval.
            "SELECT pg_current_wal_flush_lsn() || '|' || pg_current_wal_flush_lsn()"
        };
        let thread = thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            let mut next = t0;
            while !flag.load(Ordering::Relaxed) {
                let t_ms = t0.elapsed().as_secs_f64() * 1000.0;
                let row = s.value(sql, QUERY)?;
                let (f, p) = row.split_once('|').unwrap_or((&row, "0/0"));
                samples.push(Sample {
                    t_ms,
                    flush: lsn::parse(f)?,
                    processed: lsn::parse(p)?,
                });
                next += every;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(samples)
        });
        Ok(Sampler { stop, thread })
    }

    fn finish(self) -> Result<Vec<Sample>, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| "the lag sampler panicked".to_string())?
    }
}

/// One side of the comparison.
struct Side {
    cluster: Cluster,
    session: Session,
    /// The walker worker's pid, on the side with walker.
    worker: Option<u32>,
}

/// What one pgbench run measured.
struct Run {
    tps: f64,
    wal_bytes: u64,
    /// Worker CPU seconds (with walker).
    cpu: Option<f64>,
    samples: Vec<Sample>,
}

fn one_run(ctx: &Context, side: &mut Side) -> Result<Run, String> {
    let size = &ctx.size;
    let s = &mut side.session;
    s.query(workload::BETWEEN_RUNS, Duration::from_secs(600))?;
    let catch_up = Duration::from_secs(600);
    let cpu0 = match side.worker {
        Some(pid) => {
            probe::wait_caught_up(s, catch_up)?;
            Some(process::cpu_seconds(pid, ctx.ticks)?)
        }
        None => None,
    };
    let lsn0 = lsn::parse(&s.value("SELECT pg_current_wal_lsn()", QUERY)?)?;
    let sampler = Sampler::start(
        side.cluster.port(),
        side.worker.is_some(),
        size.sample_interval,
    )?;
    let tps = workload::tpcb(&side.cluster, size.load_seconds, size.clients);
    let samples = sampler.finish()?;
    let tps = tps?;
    let lsn1 = lsn::parse(&s.value("SELECT pg_current_wal_lsn()", QUERY)?)?;
    let cpu = match (side.worker, cpu0) {
        (Some(pid), Some(cpu0)) => {
            probe::wait_caught_up(s, catch_up)?;
            let now = probe::wait_worker(s, "idle", Duration::from_secs(60))?;
            if now != pid {
                return Err(format!(
                    "the walker worker restarted during the run (pid {pid}, now {now}); see {}",
                    side.cluster.log_path().display()
                ));
            }
            Some(process::cpu_seconds(pid, ctx.ticks)? - cpu0)
        }
        _ => None,
    };
    Ok(Run {
        tps,
        wal_bytes: lsn1.saturating_sub(lsn0),
        cpu,
        samples,
    })
}

/// Starts both clusters and initialises pgbench on each.
fn sides(ctx: &Context) -> Result<(Side, Side), String> {
    let with = workload::builder("with-walker")
        .plugins(&ctx.plugin_list())
        .start();
    let without = workload::builder("without-walker")
        .preload_walker(false)
        .start();
    let mut ws = Session::open(with.port(), "postgres", "the cluster with walker")?;
    ws.query("CREATE EXTENSION walker", QUERY)?;
    probe::wait_plugins(&mut ws, &ctx.plugins, Duration::from_secs(60))?;
    let pid = probe::wait_worker(&mut ws, "idle", Duration::from_secs(60))?;
    let wo = Session::open(without.port(), "postgres", "the cluster without walker")?;
    for c in [&with, &without] {
        workload::init(c, ctx.size.load_scale)?;
    }
    Ok((
        Side {
            cluster: with,
            session: ws,
            worker: Some(pid),
        },
        Side {
            cluster: without,
            session: wo,
            worker: None,
        },
    ))
}

/// Runs figures 2 and 3.
pub fn run(ctx: &Context) -> Result<(Figure, Figure), String> {
    let started = Instant::now();
    let size = &ctx.size;
    let (mut with, mut without) = sides(ctx)?;
    let (mut tps_with, mut tps_without, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wal_with, mut wal_without) = (Vec::new(), Vec::new());
    let (mut cpu_per_gib, mut cpu_share) = (Vec::new(), Vec::new());
    let mut lags = Vec::new();
    let mut n_samples = 0;
    for rep in 0..size.reps {
        // A B, B A, A B, ...: neither side always runs first.
        let (a, b) = if rep % 2 == 0 {
            let a = one_run(ctx, &mut with)?;
            (a, one_run(ctx, &mut without)?)
        } else {
            let b = one_run(ctx, &mut without)?;
            (one_run(ctx, &mut with)?, b)
        };
        tps_with.push(a.tps);
        tps_without.push(b.tps);
        ratio.push(a.tps / b.tps);
        wal_with.push(a.wal_bytes as f64 / MIB);
        wal_without.push(b.wal_bytes as f64 / MIB);
        let cpu = a.cpu.unwrap_or(0.0);
        cpu_per_gib.push(cpu / (a.wal_bytes as f64 / GIB));
        cpu_share.push(100.0 * cpu / f64::from(size.load_seconds));
        n_samples += a.samples.len();
        lags.push(lag::summarize(&a.samples).ok_or("the lag sampler took no samples")?);
    }
    let col = |f: fn(&lag::Lag) -> f64| lags.iter().map(f).collect::<Vec<_>>();
    let setup = format!(
        "pgbench -i -s {}; each run `pgbench -n -T {} -c {c} -j {c}` (TPC-B)",
        size.load_scale,
        size.load_seconds,
        c = size.clients
    );
    let plugins = ctx.plugins.join(", ");
    let overhead = Figure {
        number: 2,
        title: "Overhead on the server".to_string(),
        method: vec![
            format!(
                "Two clusters with the same settings, one with `shared_preload_libraries = 'walker'` and \
                 `walker.plugins = '{plugins}'`, one without walker. Each repetition runs pgbench on each \
                 of them, one after the other (never both at once), alternating which goes first \
                 (with, without; without, with; ...). Before every run: \
                 VACUUM of the pgbench tables, TRUNCATE pgbench_history, CHECKPOINT, and on the walker \
                 side a wait until walker has caught up."
            ),
            "TPS is pgbench's (without connection time); the ratio is with / without per repetition \
             (< 1: walker costs throughput). Worker CPU is utime + stime of the worker process (all \
             its threads) from /proc/<pid>/stat, from before the run to when walker has processed \
             the run's WAL, divided by the WAL the run wrote (pg_current_wal_lsn difference); its \
             share is that CPU over the run's duration (100% = one core)."
                .to_string(),
        ],
        facts: vec![("workload".into(), setup.clone())],
        outcome: Outcome::Measured(vec![
            Metric::new("TPS with walker + all plugins", "tx/s", tps_with),
            Metric::new("TPS without walker", "tx/s", tps_without),
            Metric::new("TPS with / without", "ratio", ratio),
            Metric::new("worker CPU per GiB of WAL", "CPU s/GiB", cpu_per_gib),
            Metric::new("worker CPU during the run", "% of a core", cpu_share),
            Metric::new("WAL per run with walker", "MiB", wal_with),
            Metric::new("WAL per run without walker", "MiB", wal_without),
        ]),
        seconds: started.elapsed().as_secs_f64(),
    };
    let lag_figure = Figure {
        number: 3,
        title: "Lag under load".to_string(),
        method: vec![format!(
            "During figure 2's runs with walker, a separate connection samples \
             `pg_current_wal_flush_lsn()` and `walker.status.processed_lsn` every {} ms (the runs \
             without walker get the same query load). Lag in bytes is flush - processed; lag in ms \
             is the sample's time minus the time of the first sample whose flush LSN had reached \
             the processed position (resolution: the sampling interval). p50 and p99 are per run; \
             the table shows their median and spread over the runs.",
            size.sample_interval.as_millis()
        )],
        facts: vec![
            ("workload".into(), setup),
            ("samples".into(), n_samples.to_string()),
        ],
        outcome: Outcome::Measured(vec![
            Metric::new("lag p50", "bytes", col(|l| l.p50_bytes)),
            Metric::new("lag p99", "bytes", col(|l| l.p99_bytes)),
            Metric::new("lag max", "bytes", col(|l| l.max_bytes)),
            Metric::new("lag p50", "ms", col(|l| l.p50_ms)),
            Metric::new("lag p99", "ms", col(|l| l.p99_ms)),
            Metric::new("lag max", "ms", col(|l| l.max_ms)),
        ]),
        seconds: 0.0,
    };
    Ok((overhead, lag_figure))
}
