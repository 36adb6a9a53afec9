//! `pg_walker walk`: the WAL files of a directory read into record batches by
//! walker-walfile and dispatched to the plugins by walker-core's dispatcher, as the
//! server's worker does; plugin state saved in the state directory as it goes and at
//! the end, with the position the walk stopped at.

use crate::args::Common;
use crate::host;
use crate::position::{self, Position};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use walker_core::batch::BatchBuilder;
use walker_core::dispatch::Dispatcher;
use walker_core::persistence::{self, SnapshotConfig, Started};
use walker_core::rows::format_lsn;
use walker_walfile::{Fault, Options, WalReader};

/// Records per batch.
const BATCH_RECORDS: usize = 4096;
/// Bytes of record data a batch reserves at first.
const BATCH_BYTES: usize = 1 << 22;
/// Records between two updates of the progress line of a walk without plugins.
const PROGRESS_EVERY: u64 = 4096;
/// Batches queued per plugin.
const QUEUE_BATCHES: usize = 4;
/// How often plugin state is saved during a walk (a killed walk resumes from there).
const SAVE_EVERY: Duration = Duration::from_secs(10);
/// A plugin callback running this long is cut off (as `walker.plugin_timeout`).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a walk did.
#[derive(Debug)]
pub struct Outcome {
    /// Where it started.
    pub start: u64,
    /// End of the last record read.
    pub end: u64,
    /// Records read.
    pub records: u64,
    /// Plugins that failed or were cut off, with why.
    pub failed: Vec<(String, String)>,
}

/// Refuses a `--start` after the WAL some plugin's restored state reflects: the
/// records between would be skipped.
pub fn refuse_skip(
    slots: &[&'static walker_core::registry::PluginSlot],
    started: &[Started],
    s: u64,
    state_dir: &Path,
) -> Result<(), String> {
    for (slot, how) in slots.iter().zip(started) {
        if let Some(after) = how.resume_after().filter(|&a| a < s) {
            return Err(format!(
                "plugin \"{}\" state in {} reflects the WAL up to {}, and --start {} would skip the records between: omit --start to resume, or use a new --state-dir",
                slot.name,
                state_dir.display(),
                format_lsn(after),
                format_lsn(s)
            ));
        }
    }
    Ok(())
}

/// Moves the plugins' clock to the newest commit, abort or checkpoint time in
/// `batch`, before the plugins see its records.
fn note_wal_times(batch: &walker_core::batch::Batch, major: walker_walfile::format::Major) {
    let Ok(fmt) = walker_decode::Format::for_server(host::version_num(major)) else {
        return;
    };
    let newest = batch.records().iter().rev().find_map(|r| {
        // SAFETY: `r` is a record of `batch`, which owns its data and outlives this use.
        let rec = unsafe { walker_abi::sdk::Record::from_raw(r) };
        walker_decode::record_time_us(r.rmid, r.info, rec.main_data(), fmt)
    });
    if let Some(t) = newest {
        walker_core::host_api::PROCESS_HOST.note_wal_time(t);
    }
}

/// What a walk without plugins counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Where it started.
    pub start: u64,
    /// End of the last record read.
    pub end: u64,
    /// Records read.
    pub records: u64,
    /// Their total length (headers, data, images), as pg_waldump's record totals.
    pub bytes: u64,
    /// Of which full-page images.
    pub fpi_bytes: u64,
}

/// Reads the records of `wal_dir` from `start` (default: the first) to `end` (default:
/// the end of the files), checks and decodes each as a walk with plugins does, and
/// counts them (records, bytes, page-image bytes: what `pg_waldump --stats` totals):
/// the reader's own cost, and a check of the files. With no plugin to hand them to,
/// records are not gathered into batches and page images are measured, not restored.
/// Keeps no state.
pub fn count(wal_dir: &Path, start: Option<u64>, end: Option<u64>) -> Result<Count, String> {
    // No plugin reads pages: the images are measured, not restored (as pg_waldump does).
    let opts = Options {
        restore_images: false,
        ..Options::default()
    };
    let mut reader = WalReader::open(wal_dir, opts).map_err(|e| e.to_string())?;
    let first = reader
        .first_lsn()
        .ok_or_else(|| format!("{} holds no WAL segment files", wal_dir.display()))?;
    reader.set_end(end);
    let at = reader
        .seek(start.unwrap_or(first))
        .map_err(|e| format!("cannot start in {}: {e}", wal_dir.display()))?;
    let mut c = Count {
        start: at,
        end: at,
        ..Count::default()
    };
    let mut progress = crate::progress::Progress::new();
    loop {
        match reader.read_measured() {
            Ok(Some(r)) => {
                c.records += 1;
                c.bytes = c.bytes.saturating_add(u64::from(r.total_len));
                c.fpi_bytes = c.fpi_bytes.saturating_add(u64::from(r.fpi_len));
                c.end = r.end_lsn;
                if c.records.is_multiple_of(PROGRESS_EVERY) {
                    progress.update(c.records, reader.position());
                }
            }
            Ok(None) => break,
            Err(e) if e.fault.is_end_of_wal() && end.is_none() => break,
            Err(e) => {
                progress.finish();
                return Err(format!("reading stopped at {}: {e}", format_lsn(c.end)));
            }
        }
    }
    progress.update(c.records, reader.position());
    progress.finish();
    Ok(c)
}

/// Runs a walk.
pub fn run(
    wal_dir: &Path,
    start: Option<u64>,
    end: Option<u64>,
    plugins: &[String],
    common: &Common,
) -> Result<Outcome, String> {
    let server =
        crate::config::install(crate::config::load(common.config.as_deref(), &common.sets)?)?;
    std::fs::create_dir_all(&common.state_dir).map_err(|e| {
        format!(
            "cannot create the state directory {}: {e}",
            common.state_dir.display()
        )
    })?;
    let saved = position::read(&common.state_dir)?;
    let mut reader = WalReader::open(wal_dir, Options::default()).map_err(|e| e.to_string())?;
    // The first record the files hold (and, from its page, the cluster and major).
    let first_lsn = reader
        .first_lsn()
        .ok_or_else(|| format!("{} holds no WAL segment files", wal_dir.display()))?;
    let first = reader.seek(first_lsn).map_err(|e| {
        format!(
            "no record found in the first segment of {}: {e}",
            wal_dir.display()
        )
    })?;
    let (Some(system_id), Some(major)) = (reader.system_identifier(), reader.major()) else {
        return Err(format!(
            "{} begins with no long page header",
            wal_dir.display()
        ));
    };
    if let Some(p) = saved.filter(|p| p.system_id != system_id) {
        return Err(format!(
            "the state in {} belongs to the cluster with system identifier {}, the WAL in {} to {system_id}: use another --state-dir",
            common.state_dir.display(),
            p.system_id,
            wal_dir.display()
        ));
    }
    persistence::set_history(reader.dir().history().to_vec());
    let dir = host::plugin_dir(common.plugin_dir.as_deref())?;
    let segment = u64::from(reader.dir().segment_size());
    let slots = host::load(plugins, &dir, major, server, Some(segment))?;
    // The WAL was written earlier: plugins measure time by its records' times.
    walker_core::host_api::PROCESS_HOST.use_wal_clock();
    let cfg = SnapshotConfig {
        dir: common.state_dir.clone(),
        system_id,
    };
    let started = host::restore(&slots, &cfg);
    // Plugins starting empty read from --start, else from the first record.
    let fallback = start.unwrap_or(first);
    if let Some(s) = start {
        refuse_skip(&slots, &started, s, &common.state_dir)?;
    }
    let begin = persistence::walk_start(&started, fallback);
    for (s, how) in slots.iter().zip(&started) {
        if let (Started::Empty, Some(sh)) = (how, s.shared()) {
            sh.durable_lsn.store(begin, Ordering::Release);
        }
    }
    if let Some(e) = end.filter(|&e| e < begin) {
        return Err(format!(
            "--end {} is before where this walk resumes, {} (the state directory's position)",
            format_lsn(e),
            format_lsn(begin)
        ));
    }
    reader.set_end(end);
    let every_restored = started.iter().all(|s| matches!(s, Started::Restored(_)));
    let at = match reader.seek(begin) {
        Ok(at) => at,
        // The state already reflects every record the files hold.
        Err(e) if every_restored && matches!(e.fault, Fault::NoRecordAfter) => {
            return Ok(Outcome {
                start: begin,
                end: begin,
                records: 0,
                failed: Vec::new(),
            });
        }
        Err(e) => {
            return Err(format!(
                "cannot start at {} in {}: {e} (the WAL from there is not in the directory)",
                format_lsn(begin),
                wal_dir.display()
            ))
        }
    };
    let mut dispatcher = Dispatcher::start(&slots, QUEUE_BATCHES, Some(Arc::new(cfg)))
        .map_err(|e| format!("could not start dispatch threads: {e}"))?;
    let mut records = 0u64;
    let mut last_end = begin;
    let mut saved_at = Instant::now();
    let mut read_error = None;
    let mut progress = crate::progress::Progress::new();
    'walk: loop {
        let mut batch = BatchBuilder::with_capacity(BATCH_RECORDS, BATCH_BYTES);
        let mut done = false;
        while batch.len() < BATCH_RECORDS {
            match reader.read_into(&mut batch) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) if e.fault.is_end_of_wal() && end.is_none() => {
                    done = true;
                    break;
                }
                Err(e) => {
                    read_error = Some(e.to_string());
                    done = true;
                    break;
                }
            }
        }
        let batch = batch.finish();
        note_wal_times(&batch, major);
        if !batch.records().is_empty() {
            records = records.saturating_add(batch.records().len() as u64);
            last_end = last_end.max(batch.end_lsn);
            dispatcher.send(Arc::new(batch));
        }
        progress.update(records, reader.position());
        loop {
            for m in dispatcher.watch(PLUGIN_TIMEOUT) {
                eprintln!("pg_walker: {m}");
            }
            host::drain_logs();
            if dispatcher.ready() {
                break;
            }
            if dispatcher.is_empty() {
                break 'walk;
            }
            dispatcher.pump(Duration::from_millis(100));
        }
        if saved_at.elapsed() >= SAVE_EVERY {
            dispatcher.save();
            saved_at = Instant::now();
        }
        if done || dispatcher.is_empty() {
            break;
        }
    }
    progress.finish();
    if read_error.is_none() {
        // Caught up with the files: once the lanes applied every batch, they hear it
        // (`on_idle`) as they do from the server's worker when it reaches the end of WAL.
        while dispatcher.processed_lsn().is_some_and(|p| p < last_end) {
            for m in dispatcher.watch(PLUGIN_TIMEOUT) {
                eprintln!("pg_walker: {m}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        dispatcher.idle(reader.position());
    }
    let (durable, cut) = dispatcher.stop(PLUGIN_TIMEOUT);
    for m in cut {
        eprintln!("pg_walker: {m}");
    }
    host::drain_logs();
    let failed = host::failed(&slots);
    // The position is where every plugin that is still good has its state.
    if let Some(lsn) = durable {
        position::write(
            &common.state_dir,
            &Position {
                system_id,
                version_num: host::version_num(major),
                lsn,
            },
        )?;
    }
    if let Some(e) = read_error {
        return Err(format!(
            "reading stopped at {}: {e} (the state up to there is saved)",
            format_lsn(last_end)
        ));
    }
    Ok(Outcome {
        start: at,
        end: last_end,
        records,
        failed,
    })
}
