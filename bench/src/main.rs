//! `walker-bench`: the benchmark suite of the walker extension (see `--help` and the
//! README's Performance section). It measures the walker installed in the server's
//! library directory on throw-away clusters, prints the tables and writes them to
//! `bench/results/` as Markdown and JSON.

mod args;
mod clock;
mod figures;
mod lag;
mod lsn;
mod machine;
mod plugins;
mod probe;
mod process;
mod report;
mod results_json;
mod session;
mod sizes;
mod stats;
mod workload;

use figures::Context;
use report::{Figure, Report};
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

/// Runs `f` (one figure), turning a panic (the cluster harness panics on failures,
/// with the server log) into an error naming the figure.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what} failed: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(format!("{what} failed: {msg}"))
        }
    }
}

fn write_results(report: &Report, out: &PathBuf) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (date, _) = clock::format_utc(clock::now_unix());
    let stem = out.join(format!("{date}-{}", report.size.name));
    let md = stem.with_extension("md");
    let js = stem.with_extension("json");
    let mut files = vec![(md, report.markdown()), (js, results_json::pretty(report))];
    if report.size.name == "full" {
        files.push((out.join("latest.md"), report.markdown()));
    }
    for (path, text) in &files {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn run(args: &args::Args) -> Result<(), String> {
    let started = Instant::now();
    let (_, started_at) = clock::format_utc(clock::now_unix());
    let machine = machine::Machine::detect();
    let ctx = Context {
        size: args.size.clone(),
        plugins: plugins::all_plugins(args.plugins.as_deref())?,
        ticks: process::clock_ticks()?,
    };
    if ctx.plugins.is_empty() {
        return Err("no walker plugin is installed; run ./walker install".to_string());
    }
    let libraries: Vec<String> = std::iter::once("walker".to_string())
        .chain(ctx.plugins.iter().cloned())
        .collect();
    let stamps = plugins::stamps(&libraries);
    eprintln!(
        "walker-bench: size {} ({} repetitions), plugins {}, build {}",
        ctx.size.name,
        ctx.size.reps,
        ctx.plugin_list(),
        args.build_profile
    );
    let mut figures: Vec<Figure> = Vec::new();
    let mut step = |n: u8, what: &str, f: &dyn Fn() -> Result<Vec<Figure>, String>| {
        if !args.runs(n) {
            return Ok(());
        }
        eprintln!("walker-bench: {what} ...");
        let t = Instant::now();
        let done = guarded(what, f)?;
        eprintln!(
            "walker-bench: {what} done in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        figures.extend(done);
        Ok::<(), String>(())
    };
    let walk_series = RefCell::new(Vec::new());
    step(1, "figure 1 (walk throughput)", &|| {
        let (figure, series) = figures::throughput::run(&ctx)?;
        *walk_series.borrow_mut() = series;
        Ok(vec![figure])
    })?;
    // Figures 2, 3, 6 and 8 share one pair of clusters (with and without walker).
    let paired: Vec<u8> = [2, 3, 6, 8].into_iter().filter(|&n| args.runs(n)).collect();
    if let Some(&first) = paired.first() {
        step(
            first,
            "figures 2, 3, 6 and 8 (overhead, lag, short statements, idle CPU)",
            &|| figures::overhead::run(&ctx, &paired),
        )?;
    }
    step(4, "figure 4 (admission)", &|| {
        figures::admission::run(&ctx).map(|f| vec![f])
    })?;
    step(5, "figure 5 (memory)", &|| {
        figures::memory::run(&ctx).map(|f| vec![f])
    })?;
    step(7, "figure 7 (scale)", &|| {
        figures::scale::run(&ctx, walk_series.take()).map(|f| vec![f])
    })?;
    figures.sort_by_key(|f| f.number);

    let report = Report {
        size: ctx.size.clone(),
        machine,
        build_profile: args.build_profile.clone(),
        plugins: ctx.plugins.clone(),
        libraries_changed: Some(plugins::stamps(&libraries))
            .filter(|now| *now != stamps)
            .map(|now| now.join(", ")),
        libraries: stamps,
        settings: workload::reported_settings(),
        started: started_at,
        seconds: started.elapsed().as_secs_f64(),
        load_at_end: machine::load_average(),
        figures,
    };
    println!("{}", report.text());
    let out = args.out.clone().unwrap_or_else(|| {
        let results = walker_tests::workspace_dir().join("bench").join("results");
        if ctx.size.name == "smoke" {
            results.join("smoke")
        } else {
            results
        }
    });
    for path in write_results(&report, &out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&argv, std::env::var("WALKER_BENCH_PLUGINS").ok()) {
        Ok(a) => a,
        Err(msg) if msg.starts_with("usage") => {
            print!("{msg}");
            return;
        }
        Err(msg) => {
            eprintln!("walker-bench: {msg}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("walker-bench: error: {e}");
        std::process::exit(1);
    }
}
