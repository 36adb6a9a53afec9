//! Figures 2 and 3: pgbench TPC-B with walker and all plugins against the same
//! cluster without walker, alternating; the worker's CPU per GiB of WAL; and walker's
//! lag behind the flush LSN sampled during the runs with it. The pair of clusters and
//! the alternation serve figures 6 (short statements) and 8 (idle CPU) too.

use super::{Context, GIB, MIB};
use crate::lag::{self, Sample};
use crate::probe::{self, QUERY};
use crate::report::{Figure, Metric, Outcome};
use crate::session::Session;
use crate::{lsn, process, workload};
use std::path::Path;
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

/// One side of a comparison: a cluster with walker (and its worker's pid) or without.
pub struct Side {
    /// The cluster.
    pub cluster: Cluster,
    /// A session on its database `postgres`.
    pub session: Session,
    /// The walker worker's pid, on the side with walker.
    pub worker: Option<u32>,
}

impl Side {
    /// Starts a cluster named `name`, with walker and `plugins` (`None`: without
    /// walker in `shared_preload_libraries`), and `pgbench -i -s scale` on it.
    pub fn start(name: &str, plugins: Option<&[String]>, scale: u32) -> Result<Side, String> {
        let cluster = match plugins {
            Some(p) => workload::builder(name).plugins(&p.join(",")).start(),
            None => workload::builder(name).preload_walker(false).start(),
        };
        let what = format!("the cluster {name}");
        let mut session = Session::open(cluster.port(), "postgres", &what)?;
        let worker = match plugins {
            Some(p) => {
                session.query("CREATE EXTENSION walker", QUERY)?;
                probe::wait_plugins(&mut session, p, Duration::from_secs(60))?;
                Some(probe::wait_worker(
                    &mut session,
                    "idle",
                    Duration::from_secs(60),
                )?)
            }
            None => None,
        };
        workload::init(&cluster, scale)?;
        Ok(Side {
            cluster,
            session,
            worker,
        })
    }
}

/// What pgbench runs, and what runs before each run.
pub enum Load<'a> {
    /// The built-in TPC-B for `size.load_seconds`, after [`workload::BETWEEN_RUNS`].
    TpcB,
    /// A custom script for `seconds`, with `-D` variables, after `between`.
    Script {
        /// The script file.
        file: &'a Path,
        /// Seconds of each run.
        seconds: u32,
        /// `-D name=value` variables.
        vars: Vec<(&'a str, String)>,
        /// SQL run before each run (vacuum, truncate, checkpoint).
        between: &'a str,
    },
}

/// What one pgbench run measured.
pub struct Run {
    /// pgbench's TPS.
    pub tps: f64,
    /// WAL the run wrote (insert LSN difference).
    pub wal_bytes: u64,
    /// Worker CPU seconds (with walker), until it processed the run's WAL.
    pub cpu: Option<f64>,
    /// Lag samples, when sampled.
    pub samples: Vec<Sample>,
}

/// One pgbench run of `load` on `side`, sampling the lag every `sample` if given.
pub fn one_run(
    ctx: &Context,
    side: &mut Side,
    load: &Load,
    sample: Option<Duration>,
) -> Result<Run, String> {
    let size = &ctx.size;
    let s = &mut side.session;
    let between = match load {
        Load::TpcB => workload::BETWEEN_RUNS,
        Load::Script { between, .. } => between,
    };
    s.query(between, Duration::from_secs(600))?;
    let catch_up = Duration::from_secs(600);
    let cpu0 = match side.worker {
        Some(pid) => {
            probe::wait_caught_up(s, catch_up)?;
            Some(process::cpu_seconds(pid, ctx.ticks)?)
        }
        None => None,
    };
    let lsn0 = lsn::parse(&s.value("SELECT pg_current_wal_lsn()", QUERY)?)?;
    let sampler = match sample {
        Some(every) => Some(Sampler::start(
            side.cluster.port(),
            side.worker.is_some(),
            every,
        )?),
        None => None,
    };
    let tps = match load {
        Load::TpcB => workload::tpcb(&side.cluster, size.load_seconds, size.clients),
        Load::Script {
            file,
            seconds,
            vars,
            ..
        } => workload::script(&side.cluster, file, *seconds, size.clients, vars),
    };
    let samples = match sampler {
        Some(sampler) => sampler.finish()?,
        None => Vec::new(),
    };
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

/// The two clusters figures 2, 3, 6 and 8 share: with walker and all plugins, and
/// without walker, both initialised by `pgbench -i -s <load scale>`.
pub struct Pair {
    /// With walker and all plugins.
    pub with: Side,
    /// Without walker.
    pub without: Side,
}

impl Pair {
    /// Starts both clusters.
    pub fn start(ctx: &Context) -> Result<Pair, String> {
        Ok(Pair {
            with: Side::start("with-walker", Some(&ctx.plugins), ctx.size.load_scale)?,
            without: Side::start("without-walker", None, ctx.size.load_scale)?,
        })
    }

    /// Runs `load` `reps` times on each side, one side at a time, alternating which
    /// goes first (with, without; without, with; ...); returns (with, without) pairs.
    pub fn alternate(
        &mut self,
        ctx: &Context,
        load: &Load,
        reps: usize,
        sample: Option<Duration>,
    ) -> Result<Vec<(Run, Run)>, String> {
        let mut out = Vec::with_capacity(reps);
        for rep in 0..reps {
            out.push(if rep % 2 == 0 {
                let a = one_run(ctx, &mut self.with, load, sample)?;
                (a, one_run(ctx, &mut self.without, load, sample)?)
            } else {
                let b = one_run(ctx, &mut self.without, load, sample)?;
                (one_run(ctx, &mut self.with, load, sample)?, b)
            });
        }
        Ok(out)
    }
}

/// Worker CPU seconds per GiB of WAL of a run with walker (0 CPU when not measured).
pub fn cpu_per_gib(run: &Run) -> f64 {
    run.cpu.unwrap_or(0.0) / (run.wal_bytes as f64 / GIB)
}

/// Runs the figures of `wanted` among 2, 3 (TPC-B runs), 6 (short statements) and
/// 8 (idle CPU) on one [`Pair`] of clusters.
pub fn run(ctx: &Context, wanted: &[u8]) -> Result<Vec<Figure>, String> {
    let started = Instant::now();
    let mut pair = Pair::start(ctx)?;
    let mut figures = Vec::new();
    if wanted.iter().any(|n| [2, 3].contains(n)) {
        let (a, b) = tpcb(ctx, &mut pair, started)?;
        figures.push(a);
        figures.push(b);
    }
    if wanted.contains(&6) {
        figures.push(super::short::run(ctx, &mut pair)?);
    }
    if wanted.contains(&8) {
        figures.push(super::idle::run(ctx, &mut pair.with)?);
    }
    Ok(figures)
}

/// Figures 2 and 3: TPC-B on both sides of `pair`, sampling the lag.
fn tpcb(ctx: &Context, pair: &mut Pair, started: Instant) -> Result<(Figure, Figure), String> {
    let size = &ctx.size;
    let runs = pair.alternate(ctx, &Load::TpcB, size.reps, Some(size.sample_interval))?;
    let (mut tps_with, mut tps_without, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wal_with, mut wal_without) = (Vec::new(), Vec::new());
    let (mut cpu_gib, mut cpu_share) = (Vec::new(), Vec::new());
    let mut lags = Vec::new();
    let (mut n_samples, mut intervals) = (0, Vec::new());
    for (a, b) in &runs {
        tps_with.push(a.tps);
        tps_without.push(b.tps);
        ratio.push(a.tps / b.tps);
        wal_with.push(a.wal_bytes as f64 / MIB);
        wal_without.push(b.wal_bytes as f64 / MIB);
        cpu_gib.push(cpu_per_gib(a));
        cpu_share.push(100.0 * a.cpu.unwrap_or(0.0) / f64::from(size.load_seconds));
        n_samples += a.samples.len();
        lags.push(lag::summarize(&a.samples).ok_or("the lag sampler took no samples")?);
        intervals.extend(lag::intervals(&a.samples));
    }
    let achieved = crate::stats::median(&intervals).unwrap_or(f64::NAN);
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
            Metric::new("worker CPU per GiB of WAL", "CPU s/GiB", cpu_gib),
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
             the processed position (resolution: the sampling interval, fine enough to show a p99 \
             under 50 ms; it was 100 ms until 2026-11-30). A sample is taken when the previous one \
             returned and its interval has passed, so under load the achieved interval can be \
             longer (given below). p50 and p99 are per run; the table shows their median and \
             spread over the runs.",
            size.sample_interval.as_millis()
        )],
        facts: vec![
            ("workload".into(), setup),
            ("samples".into(), n_samples.to_string()),
            (
                "sampling interval achieved".into(),
                format!("median {} ms", crate::report::fmt_num(achieved)),
            ),
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
