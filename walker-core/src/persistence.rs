//! The host's side of plugin snapshots: deciding whether a snapshot file may be
//! trusted, restoring it through the plugin's `load_state`, and saving the state a
//! plugin's `save_state` writes. No PostgreSQL calls: the worker passes in what it
//! knows about the server (system identifier, slot, end of WAL).

use crate::clock::now_micros;
use crate::registry::PluginSlot;
use crate::rows::{format_lsn, format_timestamptz};
use crate::snapshot::{self, SnapshotHeader};
use crate::timeline::{self, TimelineSpan};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Where snapshots live and which cluster writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Directory of the snapshot files (`$PGDATA/walker`).
    pub dir: PathBuf,
    /// The cluster's system identifier.
    pub system_id: u64,
}

/// What the worker knows at start that decides whether a snapshot can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartFacts {
    /// walker's replication slot did not exist and was created by this start: the WAL
    /// after an existing snapshot's LSN is not known to be kept.
    pub slot_created: bool,
    /// End of the WAL this server has (flush or replay position).
    pub wal_end: u64,
}

static HISTORY: std::sync::RwLock<Vec<TimelineSpan>> = std::sync::RwLock::new(Vec::new());

/// Sets the current timeline's history (the worker's main thread, at start and when
/// the timeline changes): snapshots are checked against it and saved with the
/// timeline of their LSN.
pub fn set_history(history: Vec<TimelineSpan>) {
    *HISTORY.write().unwrap_or_else(|e| e.into_inner()) = history;
}

/// The current timeline's history, as last set.
pub fn history() -> Vec<TimelineSpan> {
    HISTORY.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What to do with a plugin's snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Restore this state.
    Restore(SnapshotHeader, Vec<u8>),
    /// There is no snapshot: start empty.
    NoSnapshot,
    /// The snapshot cannot be used (why): start empty, keep the file aside.
    Refuse(String),
}

/// Decides from a snapshot file's contents (`Ok(None)`: no file), the start facts and
/// the current timeline's history.
pub fn choose(
    file: Result<Option<Vec<u8>>, String>,
    plugin: &str,
    system_id: u64,
    facts: StartFacts,
    history: &[TimelineSpan],
) -> Choice {
    let bytes = match file {
        Ok(Some(b)) => b,
        Ok(None) => return Choice::NoSnapshot,
        Err(e) => return Choice::Refuse(format!("it cannot be read: {e}")),
    };
    let (header, payload) = match snapshot::decode(&bytes, plugin, system_id) {
        Ok((h, p)) => (h, p.to_vec()),
        Err(e) => return Choice::Refuse(e.to_string()),
    };
    if facts.slot_created {
        return Choice::Refuse(format!(
            "walker's replication slot was created anew at this start, so the WAL after the snapshot's LSN {} may be gone (the file came with a base backup, or the slot was dropped)",
            format_lsn(header.lsn)
        ));
    }
    if header.lsn > facts.wal_end {
        return Choice::Refuse(format!(
            "it reflects WAL up to {}, beyond the end of this server's WAL at {} (the data directory was restored from an older backup, or the server switched timelines before that point)",
            format_lsn(header.lsn),
            format_lsn(facts.wal_end)
        ));
    }
    if let Err(why) = timeline::check(history, header.timeline, header.lsn) {
        return Choice::Refuse(why);
    }
    Choice::Restore(header, payload)
}

/// How a plugin's state started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Restored from a snapshot reflecting the WAL up to this LSN.
    Restored(u64),
    /// Empty (no snapshot, or refused): records are delivered from the walk's start.
    Empty,
    /// The plugin keeps no snapshots; it continues after this LSN (0: from the walk's start).
    Continues(u64),
    /// `load_state` failed even for an empty state: the plugin was marked failed.
    Failed,
}

impl Started {
    /// The LSN records are delivered after, when the plugin has one.
    pub fn resume_after(&self) -> Option<u64> {
        match self {
            Started::Restored(l) => Some(*l),
            Started::Continues(l) if *l != 0 => Some(*l),
            _ => None,
        }
    }
}

/// True when the plugin keeps snapshots.
pub fn keeps_state(slot: &PluginSlot) -> bool {
    slot.desc
        .as_ref()
        .is_some_and(|d| d.save_state.is_some() && d.load_state.is_some())
}

fn load(slot: &'static PluginSlot, state: Option<&[u8]>, lsn: u64) -> Result<(), String> {
    let Some(f) = slot.desc.as_ref().and_then(|d| d.load_state) else {
        return Ok(());
    };
    let (ptr, len) = state
        .map(|s| (s.as_ptr(), s.len()))
        .unwrap_or((std::ptr::null(), 0));
    // SAFETY: negotiated callback; `ptr` is null or `len` readable bytes for the call.
    let st = unsafe { f(slot.handle(), ptr, len, lsn) };
    slot.check(st, "load_state")
}

/// Sets up a plugin's state at worker start (on the worker's main thread, before the
/// dispatch threads start). Returns how it started; warnings go to `warn`.
pub fn restore(
    slot: &'static PluginSlot,
    cfg: &SnapshotConfig,
    facts: StartFacts,
    warn: &mut dyn FnMut(String),
) -> Started {
    let Some(shared) = slot.shared() else {
        return Started::Failed;
    };
    if !keeps_state(slot) {
        return Started::Continues(shared.processed_lsn.load(Ordering::Acquire));
    }
    let path = snapshot::path_of(&cfg.dir, &slot.name);
    let file = snapshot::read(&path).map_err(|e| e.to_string());
    let why_empty = match choose(file, &slot.name, cfg.system_id, facts, &history()) {
        Choice::Restore(h, payload) => match load(slot, Some(&payload), h.lsn) {
            Ok(()) => {
                shared.processed_lsn.store(h.lsn, Ordering::Release);
                shared.durable_lsn.store(h.lsn, Ordering::Release);
                shared.snapshot_lsn.store(h.lsn, Ordering::Release);
                shared.snapshot_at.store(h.written_at, Ordering::Release);
                shared.started_empty.store(0, Ordering::Release);
                shared.start_note.set(&format!(
                    "restored the snapshot of {} at {} ({} bytes)",
                    format_timestamptz(h.written_at),
                    format_lsn(h.lsn),
                    payload.len()
                ));
                return Started::Restored(h.lsn);
            }
            Err(m) => Some(format!(
                "snapshot {} refused by the plugin: {m}",
                path.display()
            )),
        },
        Choice::NoSnapshot => None,
        Choice::Refuse(why) => {
            let kept = snapshot::refused_path_of(&cfg.dir, &slot.name);
            let kept_note = match std::fs::rename(&path, &kept) {
                Ok(()) => format!("; the file is kept as {}", kept.display()),
                Err(_) => String::new(),
            };
            Some(format!(
                "snapshot {} refused: {why}{kept_note}",
                path.display()
            ))
        }
    };
    if let Err(m) = load(slot, None, 0) {
        let msg = format!("could not start with an empty state: {m}");
        slot.fail(&msg);
        warn(format!("plugin \"{}\" {msg}", slot.name));
        return Started::Failed;
    }
    shared.processed_lsn.store(0, Ordering::Release);
    shared.snapshot_lsn.store(0, Ordering::Release);
    shared.started_empty.store(1, Ordering::Release);
    match why_empty {
        Some(why) => {
            let note = format!("started empty: {why}");
            shared.start_note.set(&note);
            shared.last_error.set(&note);
            warn(format!(
                "plugin \"{}\" {note}; it counts from the walk's start on",
                slot.name
            ));
        }
        None => shared.start_note.set("started empty: no snapshot yet"),
    }
    Started::Empty
}

/// Where the walk starts: the lowest position some plugin resumes after, or `fallback`
/// when some plugin has none (it starts empty or fresh). `fallback` alone without plugins.
pub fn walk_start(started: &[Started], fallback: u64) -> u64 {
    let mut start: Option<u64> = None;
    for s in started {
        let p = match s {
            Started::Failed => continue,
            other => other.resume_after().unwrap_or(fallback),
        };
        start = Some(start.map_or(p, |x: u64| x.min(p)));
    }
    start.unwrap_or(fallback)
}

/// Why a save did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    /// The plugin's `save_state` failed: the plugin is broken.
    #[error("{0}")]
    Plugin(String),
    /// The file could not be written: the plugin keeps running and walker retries.
    #[error("could not write snapshot {path}: {error}; walker keeps the WAL since the last snapshot and retries (check the data directory's free space and permissions)")]
    Io {
        /// The snapshot file.
        path: String,
        /// The operating system's message.
        error: String,
    },
}

/// Saves a plugin's state as reflecting the WAL up to `lsn` (on its dispatch thread,
/// between batches). Does nothing for a plugin without snapshots.
pub fn save(slot: &'static PluginSlot, cfg: &SnapshotConfig, lsn: u64) -> Result<(), SaveError> {
    let Some(f) = slot.desc.as_ref().and_then(|d| d.save_state) else {
        return Ok(());
    };
    let Some(shared) = slot.shared() else {
        return Ok(());
    };
    let mut buf: Vec<u8> = Vec::new();
    let sink = crate::functions::vec_sink(&mut buf);
    // SAFETY: negotiated callback; the sink and its buffer outlive the call.
    let st = unsafe { f(slot.handle(), &sink) };
    slot.check(st, "save_state").map_err(SaveError::Plugin)?;
    let (major, minor) = slot.abi.unwrap_or((0, 0));
    let header = SnapshotHeader {
        plugin: slot.name.clone(),
        plugin_version: slot.version.clone(),
        abi: (major, minor),
        system_id: cfg.system_id,
        lsn,
        timeline: timeline::timeline_of(&history(), lsn).unwrap_or(0),
        written_at: now_micros(),
    };
    let path = snapshot::path_of(&cfg.dir, &slot.name);
    snapshot::write_atomic(&path, &snapshot::encode(&header, &buf)).map_err(|e| SaveError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    shared.snapshot_lsn.store(lsn, Ordering::Release);
    shared
        .snapshot_at
        .store(header.written_at, Ordering::Release);
    shared.snapshots.fetch_add(1, Ordering::Relaxed);
    shared.durable_lsn.fetch_max(lsn, Ordering::AcqRel);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lsn: u64, plugin: &str, sysid: u64) -> Vec<u8> {
        let h = SnapshotHeader {
            plugin: plugin.into(),
            plugin_version: "1".into(),
            abi: (1, 1),
            system_id: sysid,
            lsn,
            timeline: 1,
            written_at: 0,
        };
        snapshot::encode(&h, b"payload")
    }

    const FACTS: StartFacts = StartFacts {
        slot_created: false,
        wal_end: 0x5000,
    };

    #[test]
    fn a_good_snapshot_is_restored() {
        match choose(Ok(Some(file(0x4000, "p", 9))), "p", 9, FACTS, &[]) {
            Choice::Restore(h, payload) => {
                assert_eq!(h.lsn, 0x4000);
                assert_eq!(payload, b"payload");
            }
            other => panic!("{other:?}"),
        }
        // A snapshot exactly at the end of WAL is fine too.
        assert!(matches!(
            choose(Ok(Some(file(0x5000, "p", 9))), "p", 9, FACTS, &[]),
            Choice::Restore(..)
        ));
    }

    #[test]
    fn refusals_name_the_cause() {
        assert_eq!(choose(Ok(None), "p", 9, FACTS, &[]), Choice::NoSnapshot);
        let Choice::Refuse(m) = choose(Ok(Some(file(0x4000, "q", 9))), "p", 9, FACTS, &[]) else {
            panic!()
        };
        assert!(m.contains("belongs to plugin \"q\""), "{m}");
        let Choice::Refuse(m) = choose(Ok(Some(file(0x6000, "p", 9))), "p", 9, FACTS, &[]) else {
            panic!()
        };
        assert!(m.contains("0/6000") && m.contains("0/5000"), "{m}");
        let created = StartFacts {
            slot_created: true,
            ..FACTS
        };
        let Choice::Refuse(m) = choose(Ok(Some(file(0x4000, "p", 9))), "p", 9, created, &[]) else {
            panic!()
        };
        assert!(m.contains("created anew"), "{m}");
        let Choice::Refuse(m) = choose(Err("permission denied".into()), "p", 9, FACTS, &[]) else {
            panic!()
        };
        assert!(m.contains("permission denied"), "{m}");
    }

    #[test]
    fn a_snapshot_from_an_abandoned_timeline_is_refused() {
        // PITR to 0/3000 on timeline 2: the snapshot of timeline 1 at 0/4000 is past
        // the switch point although this server's WAL (0/5000) reaches beyond it.
        let h = [
            TimelineSpan {
                tli: 2,
                begin: 0x3000,
                end: u64::MAX,
            },
            TimelineSpan {
                tli: 1,
                begin: 0,
                end: 0x3000,
            },
        ];
        let Choice::Refuse(m) = choose(Ok(Some(file(0x4000, "p", 9))), "p", 9, FACTS, &h) else {
            panic!()
        };
        assert!(m.contains("abandoned timeline"), "{m}");
        assert!(matches!(
            choose(Ok(Some(file(0x2000, "p", 9))), "p", 9, FACTS, &h),
            Choice::Restore(..)
        ));
    }

    #[test]
    fn the_walk_starts_at_the_lowest_resume_point() {
        let fallback = 0x1000;
        assert_eq!(walk_start(&[], fallback), fallback);
        assert_eq!(
            walk_start(
                &[Started::Restored(0x3000), Started::Continues(0x2000)],
                fallback
            ),
            0x2000
        );
        // A plugin starting empty or fresh needs the fallback start.
        assert_eq!(
            walk_start(&[Started::Restored(0x3000), Started::Empty], fallback),
            fallback
        );
        assert_eq!(
            walk_start(
                &[Started::Restored(0x3000), Started::Continues(0)],
                fallback
            ),
            fallback
        );
        // Failed plugins do not hold the walk back.
        assert_eq!(
            walk_start(&[Started::Restored(0x3000), Started::Failed], fallback),
            0x3000
        );
    }
}
