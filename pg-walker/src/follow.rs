//! `pg_walker follow`: the plugins fed from a server's WAL as it is written, over the
//! physical replication protocol (as a standby or pg_receivewal receives it). The WAL
//! received is kept as segment files in `STATE_DIR/wal` and read from there by
//! walker-walfile's reader, the one `walk` uses; plugin state is saved in the state
//! directory as `walk` saves it, then the position; status updates tell the server
//! what is saved, so a replication slot keeps the WAL the state does not reflect yet.
//! A run killed at any point resumes exactly: it streams again from the start of the
//! segment holding the saved position and each plugin skips what its state has.
//! When the server ends the timeline (a promotion), the next one is followed.
//! SIGINT and SIGTERM stop it as `--end` does, saving first.

use crate::args::Common;
use crate::conninfo;
use crate::host;
use crate::pgwire::{Conn, Message, QueryError};
use crate::position::{self, Position};
use crate::received::{self, SegmentWriter};
use crate::stream::{self, FromServer};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use walker_core::batch::BatchBuilder;
use walker_core::dispatch::Dispatcher;
use walker_core::persistence::{self, SnapshotConfig, Started};
use walker_core::rows::{format_lsn, parse_lsn};
use walker_core::timeline::{parse_history, TimelineSpan};
use walker_walfile::format::{Major, LONG_PAGE_HEADER};
use walker_walfile::{Fault, Options, WalReader};

/// Records per batch.
const BATCH_RECORDS: usize = 4096;
/// Bytes of record data a batch reserves at first.
const BATCH_BYTES: usize = 1 << 22;
/// Batches queued per plugin.
const QUEUE_BATCHES: usize = 4;
/// How often plugin state is saved (a killed run resumes from there; the slot keeps
/// the WAL after it).
const SAVE_EVERY: Duration = Duration::from_secs(10);
/// How often the server hears how far pg_walker got, without being asked (well
/// inside the server's default `wal_sender_timeout`, 60 s).
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// A plugin callback running this long is cut off (as `walker.plugin_timeout`).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the receive loop waits for the server before reading records.
const RECEIVE_SLICE: Duration = Duration::from_millis(100);
/// WAL received before the records are read, at most.
const RECEIVE_CHUNK: u64 = 8 << 20;

/// What `follow` was asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// libpq-style connection string.
    pub conninfo: String,
    /// Physical replication slot to stream from.
    pub slot: Option<String>,
    /// Create the slot when it does not exist.
    pub create_slot: bool,
    /// Where to start when the state directory has nothing (default: the slot's
    /// `restart_lsn`, else the server's current flush position).
    pub start: Option<u64>,
    /// Stop once every record ending at or before this is processed (default: never).
    pub end: Option<u64>,
    /// Serve the Prometheus text here (`HOST:PORT`).
    pub metrics_addr: Option<String>,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// Where it started reading.
    pub start: u64,
    /// End of the last record read.
    pub end: u64,
    /// Records read.
    pub records: u64,
    /// Timeline switches followed.
    pub switches: u32,
    /// Plugins that failed or were cut off, with why.
    pub failed: Vec<(String, String)>,
}

fn command_error(what: &str, e: QueryError) -> String {
    format!("the server refused {what}: {e}")
}

/// The major of a `server_version` such as `17.2 (Debian 17.2-1)` or `18beta1`.
pub fn major_of(server_version: &str) -> Result<Major, String> {
    let digits: String = server_version
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let n: u32 = digits.parse().unwrap_or(0);
    Major::ALL
        .into_iter()
        .find(|m| m.number() == n)
        .ok_or_else(|| {
            format!(
                "the server runs PostgreSQL {server_version}: pg_walker reads the WAL of PostgreSQL 15 to 18"
            )
        })
}

/// A size setting as SHOW prints it (`16MB`, `1GB`, `1024kB`) in bytes.
pub fn parse_size(s: &str) -> Option<u32> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let unit = match s[split..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    u32::try_from(n.checked_mul(unit)?).ok()
}

/// A slot name as the server accepts them (lower-case letters, digits, underscores).
fn check_slot_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "--slot {name}: a slot name is 1 to 63 lower-case letters, digits and underscores"
        ));
    }
    Ok(())
}

/// One string column of the first row.
fn column(rows: &[Vec<Option<String>>], i: usize, what: &str) -> Result<Option<String>, String> {
    rows.first()
        .and_then(|r| r.get(i).cloned())
        .ok_or_else(|| format!("the server's answer to {what} has no column {i}"))
}

/// The history of timeline `tli` from the server, written into `wal_dir` as the
/// server names it (the reader follows it there).
fn fetch_history(conn: &mut Conn, tli: u32, wal_dir: &Path) -> Result<Vec<TimelineSpan>, String> {
    if tli <= 1 {
        return parse_history(tli, None);
    }
    let what = format!("TIMELINE_HISTORY {tli}");
    let rows = conn.query(&what).map_err(|e| command_error(&what, e))?;
    let name = column(&rows, 0, &what)?.unwrap_or_default();
    let text = column(&rows, 1, &what)?.unwrap_or_default();
    if name.contains('/') || !name.ends_with(".history") {
        return Err(format!(
            "the server named timeline {tli}'s history \"{name}\""
        ));
    }
    let path = wal_dir.join(&name);
    walker_core::snapshot::write_atomic(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    parse_history(tli, Some(&text)).map_err(|e| format!("timeline {tli}'s history: {e}"))
}

/// The slot's `restart_lsn` (None when it reserves no WAL yet), creating the slot
/// when asked to.
fn prepare_slot(conn: &mut Conn, name: &str, create: bool) -> Result<Option<u64>, String> {
    let what = format!("READ_REPLICATION_SLOT {name}");
    let read = |conn: &mut Conn| -> Result<Option<(String, Option<u64>)>, String> {
        let rows = conn.query(&what).map_err(|e| command_error(&what, e))?;
        let kind = column(&rows, 0, &what)?;
        let restart = column(&rows, 1, &what)?.and_then(|s| parse_lsn(&s));
        Ok(kind.map(|k| (k, restart)))
    };
    let found = match read(conn)? {
        Some(f) => f,
        None if create => {
            let sql = format!("CREATE_REPLICATION_SLOT {name} PHYSICAL RESERVE_WAL");
            conn.query(&sql).map_err(|e| command_error(&sql, e))?;
            eprintln!("pg_walker: created the physical replication slot \"{name}\"");
            read(conn)?.ok_or_else(|| format!("the slot \"{name}\" vanished right after it was created"))?
        }
        None => {
            return Err(format!(
                "the replication slot \"{name}\" does not exist on the server: pass --create-slot, or create it there with SELECT pg_create_physical_replication_slot('{name}', true)"
            ))
        }
    };
    if found.0 != "physical" {
        return Err(format!(
            "the replication slot \"{name}\" is a {} slot: pg_walker follows with a physical slot (use another name)",
            found.0
        ));
    }
    Ok(found.1)
}

/// The timeline of `history` that holds `lsn` (the newest one begun at or before it).
fn timeline_at(history: &[TimelineSpan], lsn: u64, current: u32) -> u32 {
    history
        .iter()
        .filter(|s| s.begin <= lsn)
        .map(|s| s.tli)
        .max()
        .unwrap_or(current)
}

/// The stream of one timeline: the connection in CopyBoth, its writer.
struct Stream {
    writer: SegmentWriter,
    /// The server ended this timeline (CopyDone received).
    ended: bool,
}

fn start_stream(
    conn: &mut Conn,
    slot: Option<&str>,
    wal_dir: &Path,
    seg_size: u32,
    tli: u32,
    from: u64,
) -> Result<Stream, String> {
    let start = received::segment_start(from, seg_size);
    let slot_part = slot.map(|s| format!("SLOT {s} ")).unwrap_or_default();
    let sql = format!(
        "START_REPLICATION {slot_part}PHYSICAL {} TIMELINE {tli}",
        format_lsn(start)
    );
    conn.start_copy(&sql).map_err(|e| {
        format!(
            "{}: {e} (the WAL from {} may be gone from the server: a --slot keeps it)",
            sql,
            format_lsn(start)
        )
    })?;
    Ok(Stream {
        writer: SegmentWriter::new(wal_dir, seg_size, tli, start),
        ended: false,
    })
}

/// Runs `follow`.
pub fn run(req: &Request, plugins: &[String], common: &Common) -> Result<Outcome, String> {
    let server =
        crate::config::install(crate::config::load(common.config.as_deref(), &common.sets)?)?;
    let state = &common.state_dir;
    let wal_dir = state.join("wal");
    std::fs::create_dir_all(&wal_dir).map_err(|e| {
        format!(
            "cannot create {}: {e} (check the path and permissions)",
            wal_dir.display()
        )
    })?;
    let saved = position::read(state)?;
    if let Some(s) = &req.slot {
        check_slot_name(s)?;
    }
    let ci = conninfo::parse(&req.conninfo)?;
    let mut conn = Conn::connect(&ci)?;
    let major = major_of(&conn.server_version)?;
    let rows = conn
        .query("IDENTIFY_SYSTEM")
        .map_err(|e| command_error("IDENTIFY_SYSTEM", e))?;
    let system_id: u64 = column(&rows, 0, "IDENTIFY_SYSTEM")?
        .and_then(|s| s.parse().ok())
        .ok_or("IDENTIFY_SYSTEM gave no system identifier")?;
    let server_tli: u32 = column(&rows, 1, "IDENTIFY_SYSTEM")?
        .and_then(|s| s.parse().ok())
        .ok_or("IDENTIFY_SYSTEM gave no timeline")?;
    let flushed = column(&rows, 2, "IDENTIFY_SYSTEM")?
        .and_then(|s| parse_lsn(&s))
        .ok_or("IDENTIFY_SYSTEM gave no WAL position")?;
    if let Some(p) = saved.filter(|p| p.system_id != system_id) {
        return Err(format!(
            "the state in {} belongs to the cluster with system identifier {}, the server to {system_id}: use another --state-dir",
            state.display(),
            p.system_id
        ));
    }
    let seg_rows = conn
        .query("SHOW wal_segment_size")
        .map_err(|e| command_error("SHOW wal_segment_size", e))?;
    let seg_text = column(&seg_rows, 0, "SHOW wal_segment_size")?.unwrap_or_default();
    let seg_size = parse_size(&seg_text)
        .filter(|s| walker_walfile::segment::valid_segment_size(*s))
        .ok_or_else(|| format!("the server's wal_segment_size is \"{seg_text}\""))?;
    let mut history = fetch_history(&mut conn, server_tli, &wal_dir)?;
    let slot_start = match &req.slot {
        Some(s) => prepare_slot(&mut conn, s, req.create_slot)?,
        None => None,
    };

    let dir = host::plugin_dir(common.plugin_dir.as_deref())?;
    let slots = host::load(plugins, &dir, major, server, Some(u64::from(seg_size)))?;
    persistence::set_history(history.clone());
    let cfg = SnapshotConfig {
        dir: state.clone(),
        system_id,
    };
    let started = host::restore(&slots, &cfg);
    // A plugin with no state yet starts where the state directory stands (a run
    // killed before its first save), else as asked.
    let fallback = req
        .start
        .or(saved.map(|p| p.lsn))
        .or(slot_start)
        .unwrap_or(flushed);
    if let Some(s) = req.start {
        crate::walk::refuse_skip(&slots, &started, s, state)?;
    }
    let begin = persistence::walk_start(&started, fallback);
    for (s, how) in slots.iter().zip(&started) {
        if let (Started::Empty, Some(sh)) = (how, s.shared()) {
            sh.durable_lsn.store(begin, Ordering::Release);
        }
    }
    if let Some(e) = req.end.filter(|&e| e < begin) {
        return Err(format!(
            "--end {} is before where this run resumes, {} (the state directory's position)",
            format_lsn(e),
            format_lsn(begin)
        ));
    }
    if req.end == Some(begin) {
        eprintln!(
            "pg_walker: the state already reflects the WAL up to --end {}",
            format_lsn(begin)
        );
        return Ok(Outcome {
            start: begin,
            end: begin,
            records: 0,
            switches: 0,
            failed: Vec::new(),
        });
    }
    received::clear_segments(&wal_dir)?;
    let tli = timeline_at(
        &history,
        received::segment_start(begin, seg_size),
        server_tli,
    );
    let mut stream = start_stream(
        &mut conn,
        req.slot.as_deref(),
        &wal_dir,
        seg_size,
        tli,
        begin,
    )?;
    let first_byte = stream.writer.end();
    eprintln!(
        "pg_walker: following {} from {} on timeline {tli} (streaming from {}); state in {}",
        ci.address_text(),
        format_lsn(begin),
        format_lsn(first_byte),
        state.display()
    );

    let counters = Arc::new(crate::metrics::Counters::default());
    counters.timeline.store(tli, Ordering::Relaxed);
    if let Some(addr) = &req.metrics_addr {
        crate::metrics::serve(addr, counters.clone(), slots.clone())?;
        eprintln!("pg_walker: metrics at http://{addr}/metrics");
    }
    crate::stop::install()?;
    let mut progress = crate::progress::Progress::new();
    let mut dispatcher = Dispatcher::start(&slots, QUEUE_BATCHES, Some(Arc::new(cfg)))
        .map_err(|e| format!("could not start dispatch threads: {e}"))?;
    let version_num = host::version_num(major);
    let mut reader: Option<WalReader> = None;
    let mut start_at = None;
    let (mut records, mut switches) = (0u64, 0u32);
    // End of the last record handed to the plugins.
    let mut last_end: Option<u64> = None;
    let mut saved_at = Instant::now();
    let mut status_at = Instant::now();
    let mut written = saved.map(|p| p.lsn).unwrap_or(0);
    let mut failure = None;
    let end = req.end;
    'run: loop {
        // 1. Receive for a slice of time or a chunk of WAL.
        let slice = Instant::now();
        let mut got = 0u64;
        let mut reply = false;
        while !stream.ended && got < RECEIVE_CHUNK && slice.elapsed() < RECEIVE_SLICE {
            let wait = RECEIVE_SLICE.saturating_sub(slice.elapsed());
            let m = match conn.recv_within(wait) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            };
            match handle(&m, &mut stream) {
                Ok(Got::Wal(n)) => {
                    got = got.saturating_add(n);
                    counters.received_bytes.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Got::ReplyRequested) => reply = true,
                Ok(Got::Nothing) => {}
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            }
        }
        let available = stream.writer.end();
        counters.received_lsn.store(available, Ordering::Relaxed);
        // 2. Read what arrived.
        if reader.is_none() && available >= first_byte.saturating_add(LONG_PAGE_HEADER as u64) {
            match WalReader::open(&wal_dir, Options::default()) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    failure = Some(e.to_string());
                    break 'run;
                }
            }
        }
        let mut caught_up = false;
        if let Some(r) = reader.as_mut() {
            r.set_available(Some(available));
            if let Err(e) = r.refresh() {
                failure = Some(e.to_string());
                break 'run;
            }
            if start_at.is_none() {
                match r.seek(begin) {
                    Ok(at) => {
                        if let Some(other) = r.system_identifier().filter(|&s| s != system_id) {
                            failure = Some(format!(
                                "the WAL streamed carries system identifier {other}, IDENTIFY_SYSTEM said {system_id}: the server is not what it claims"
                            ));
                            break 'run;
                        }
                        r.set_end(end);
                        start_at = Some(at);
                    }
                    Err(e) if matches!(e.fault, Fault::NoRecordAfter) => {}
                    Err(e) => {
                        failure = Some(format!("cannot start at {}: {e}", format_lsn(begin)));
                        break 'run;
                    }
                }
            }
            if start_at.is_some() {
                loop {
                    let mut batch = BatchBuilder::with_capacity(BATCH_RECORDS, BATCH_BYTES);
                    let mut more = true;
                    while batch.len() < BATCH_RECORDS {
                        match r.read_into(&mut batch) {
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                more = false;
                                break;
                            }
                            Err(e) => {
                                failure = Some(format!(
                                    "reading the WAL received stopped: {e} (the state up to there is saved)"
                                ));
                                more = false;
                                break;
                            }
                        }
                    }
                    let batch = batch.finish();
                    if !batch.records().is_empty() {
                        records = records.saturating_add(batch.records().len() as u64);
                        last_end = Some(last_end.unwrap_or(0).max(batch.end_lsn));
                        dispatcher.send(Arc::new(batch));
                    }
                    if !pump(
                        &mut dispatcher,
                        &mut conn,
                        &mut status_at,
                        available,
                        written,
                    ) {
                        break 'run;
                    }
                    if failure.is_some() {
                        break 'run;
                    }
                    if !more {
                        break;
                    }
                }
                caught_up = true;
                counters.records.store(records, Ordering::Relaxed);
                counters.read_lsn.store(r.position(), Ordering::Relaxed);
                progress.update(records, r.position());
            }
        }
        // 3. Save state, then the position; tell the server.
        if saved_at.elapsed() >= SAVE_EVERY {
            dispatcher.save();
            saved_at = Instant::now();
        }
        if let Some(d) = dispatcher.durable_lsn().filter(|&d| d > written) {
            position::write(
                state,
                &Position {
                    system_id,
                    version_num,
                    lsn: d,
                },
            )?;
            written = d;
            counters.saved_lsn.store(d, Ordering::Relaxed);
            let keep = received::segment_start(d, seg_size) / u64::from(seg_size);
            received::remove_before(&wal_dir, keep.saturating_sub(1), seg_size);
        }
        if reply || status_at.elapsed() >= STATUS_EVERY {
            let apply = dispatcher.processed_lsn().unwrap_or(written);
            if let Err(e) = conn.copy_data(&stream::status_update(
                available,
                written,
                apply,
                SystemTime::now(),
            )) {
                failure = Some(e);
                break 'run;
            }
            status_at = Instant::now();
        }
        // 4. Asked to stop (SIGINT, SIGTERM), or reached --end?
        if crate::stop::requested() {
            progress.finish();
            eprintln!("pg_walker: stopping (signal received): saving the plugins' state");
            break 'run;
        }
        if let (Some(e), Some(r)) = (end, reader.as_ref()) {
            if caught_up && (r.position() >= e || available >= e) {
                break 'run;
            }
        }
        if dispatcher.is_empty() {
            failure = Some("every plugin failed".into());
            break 'run;
        }
        // 5. The server ended the timeline: follow the next one.
        if stream.ended {
            let rows = match conn.end_copy(true) {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(format!("the stream ended: {e}"));
                    break 'run;
                }
            };
            let next = rows.first().and_then(|r| {
                let t: u32 = r.first().cloned().flatten()?.parse().ok()?;
                let at = parse_lsn(&r.get(1).cloned().flatten()?)?;
                Some((t, at))
            });
            let Some((next_tli, next_start)) = next else {
                failure = Some("the server ended the stream (it is shutting down, or stopped being a primary or standby): start pg_walker again once it is back".into());
                break 'run;
            };
            eprintln!(
                "pg_walker: timeline {} ended at {}; following timeline {next_tli}",
                stream_tli(&history, next_start),
                format_lsn(next_start)
            );
            history = match fetch_history(&mut conn, next_tli, &wal_dir) {
                Ok(h) => h,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            };
            persistence::set_history(history.clone());
            stream = match start_stream(
                &mut conn,
                req.slot.as_deref(),
                &wal_dir,
                seg_size,
                next_tli,
                next_start,
            ) {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            };
            switches = switches.saturating_add(1);
            counters.timeline.store(next_tli, Ordering::Relaxed);
            counters.switches.fetch_add(1, Ordering::Relaxed);
        }
    }
    progress.finish();
    // Every batch handed over is applied, then the lanes hear the run caught up.
    if failure.is_none() {
        while let (Some(p), Some(e)) = (dispatcher.processed_lsn(), last_end) {
            if p >= e {
                break;
            }
            for m in dispatcher.watch(PLUGIN_TIMEOUT) {
                eprintln!("pg_walker: {m}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(r) = reader.as_ref() {
            dispatcher.idle(r.position());
        }
    }
    let (durable, cut) = dispatcher.stop(PLUGIN_TIMEOUT);
    for m in cut {
        eprintln!("pg_walker: {m}");
    }
    host::drain_logs();
    if let Some(lsn) = durable {
        position::write(
            state,
            &Position {
                system_id,
                version_num,
                lsn,
            },
        )?;
        written = lsn;
    }
    if failure.is_none() {
        // The slot may let go of what the state now reflects.
        let _ = conn.copy_data(&stream::status_update(
            stream.writer.end(),
            written,
            written,
            SystemTime::now(),
        ));
        let _ = conn.end_copy(stream.ended);
        conn.terminate();
    }
    let failed = host::failed(&slots);
    if let Some(e) = failure {
        return Err(format!("{e} (state saved up to {})", format_lsn(written)));
    }
    Ok(Outcome {
        start: start_at.unwrap_or(begin),
        end: last_end.unwrap_or(begin),
        records,
        switches,
        failed,
    })
}

/// The timeline `history` gives `lsn` before a switch there (for messages).
fn stream_tli(history: &[TimelineSpan], lsn: u64) -> u32 {
    history
        .iter()
        .filter(|s| s.begin < lsn)
        .map(|s| s.tli)
        .max()
        .unwrap_or(1)
}

/// What a message from the server brought.
enum Got {
    Wal(u64),
    ReplyRequested,
    Nothing,
}

fn handle(m: &Message, stream: &mut Stream) -> Result<Got, String> {
    match m.tag {
        b'd' => match stream::parse(&m.body)? {
            FromServer::XLogData { start, data, .. } => {
                stream.writer.write(start, data)?;
                Ok(Got::Wal(data.len() as u64))
            }
            FromServer::Keepalive {
                reply_requested, ..
            } => Ok(if reply_requested {
                Got::ReplyRequested
            } else {
                Got::Nothing
            }),
        },
        b'c' => {
            stream.ended = true;
            Ok(Got::Nothing)
        }
        b'E' => Err(format!(
            "the server stopped the stream: {}",
            crate::pgwire::ServerError::parse(&m.body)
        )),
        b'N' => Ok(Got::Nothing),
        t => Err(format!(
            "the server sent an unexpected message '{}' while streaming",
            t.escape_ascii()
        )),
    }
}

/// Hands the batches over as the lanes make room, watching for plugins that overrun,
/// and keeps the server informed meanwhile. False when no lane is left.
fn pump(
    dispatcher: &mut Dispatcher,
    conn: &mut Conn,
    status_at: &mut Instant,
    received: u64,
    written: u64,
) -> bool {
    loop {
        for m in dispatcher.watch(PLUGIN_TIMEOUT) {
            eprintln!("pg_walker: {m}");
        }
        host::drain_logs();
        if dispatcher.ready() {
            return true;
        }
        if dispatcher.is_empty() {
            return false;
        }
        dispatcher.pump(Duration::from_millis(100));
        if status_at.elapsed() >= STATUS_EVERY {
            let apply = dispatcher.processed_lsn().unwrap_or(written);
            let _ = conn.copy_data(&stream::status_update(
                received,
                written,
                apply,
                SystemTime::now(),
            ));
            *status_at = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sizes_and_slot_names() {
        assert_eq!(
            major_of("17.2 (Debian 17.2-1.pgdg120+1)").unwrap(),
            Major::Pg17
        );
        assert_eq!(major_of("18beta1").unwrap(), Major::Pg18);
        assert!(major_of("14.9").unwrap_err().contains("15 to 18"));
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("1024kB"), Some(1 << 20));
        assert_eq!(parse_size("16 parsecs"), None);
        assert!(check_slot_name("pg_walker_1").is_ok());
        assert!(check_slot_name("Bad-Name")
            .unwrap_err()
            .contains("lower-case"));
    }

    #[test]
    fn the_timeline_of_a_stream_start() {
        let h = parse_history(3, Some("1\t0/3000100\tx\n2\t0/5000000\ty\n")).unwrap();
        assert_eq!(timeline_at(&h, 0x200_0000, 3), 1);
        // The switch segment starts before timeline 2 begins: timeline 1 streams it
        // up to the switch, then the server says where timeline 2 goes on.
        assert_eq!(timeline_at(&h, 0x300_0000, 3), 1);
        assert_eq!(timeline_at(&h, 0x400_0000, 3), 2);
        assert_eq!(timeline_at(&h, 0x500_0000, 3), 3);
        assert_eq!(stream_tli(&h, 0x500_0000), 2);
    }
}
