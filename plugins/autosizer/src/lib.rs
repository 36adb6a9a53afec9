//! # autosizer: keeps `max_wal_size` right, from the WAL itself
//!
//! A walker plugin. From the checkpoint records it tells checkpoints forced by WAL
//! volume from timed and requested ones (their redo distance and interval); from the
//! LSNs and times of the records it measures the WAL written per window, scaled to one
//! `checkpoint_timeout`. An algorithm turns that into a size, and `min_wal_size` beside
//! it (recycled segments that carry the demand between checkpoints); guards (maximum,
//! `autosizer.max_wal_share` of pg_wal's filesystem, floor, free space on pg_wal, shrink
//! rules, cooldown, hourly cap, dry run) decide whether to apply them, which the host's
//! services worker does with ALTER SYSTEM and a reload.
//! Every change or dry-run decision lands in the history and is announced with NOTIFY
//! on channel [`CHANNEL`].
//!
//! The model lives on this plugin's dispatch thread; a JSON copy of what the SQL
//! functions and views show is published into shared memory every second.

pub mod decode;
pub mod fs;
pub mod model;
pub mod picture;
pub mod report;

use decode::{decode, Event};
use model::{
    Action, Algorithm, Config, Decision, Facts, HistoryAction, HistoryEntry, Model, Restraint,
    Window,
};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use walker_abi::{
    Host, Plugin, PluginError, PluginInfo, PluginResult, Record, RowSink, ServiceOutcome,
    SharedState, Value, ViewDef, WalkerServiceKind, WalkerSettingContext, WalkerSettingField,
    WalkerSettingUnit, WalkerType, ALL_RMGRS,
};

/// The NOTIFY channel of every change and dry-run decision (payload: JSON).
pub const CHANNEL: &str = "walker_autosizer";
/// Bytes of the published JSON.
const BLOB_CAP: usize = 512 * 1024;
/// Bytes of an analyze/reset answer.
const ANSWER_CAP: usize = 64 * 1024;
/// How long an apply may wait for the services worker before it counts as unanswered
/// (µs). The dispatch thread never waits for it: it submits the change and collects the
/// outcome at a later record or idle round.
const APPLY_WAIT_US: i64 = 20_000_000;
/// Notifications whose outcome is still to be collected (the services queue has 16
/// slots for all plugins; older ones are forgotten by the host after 10 minutes).
const NOTIFY_PENDING_CAP: usize = 16;
/// How long a backend waits for the dispatch thread to run an analyze or reset (ms).
const ASK_WAIT_MS: u64 = 30_000;
/// How often the published copy and the server facts are refreshed (µs).
const REFRESH_US: i64 = 1_000_000;

/// The shared-memory region: requests from backends and the published JSON.
#[repr(C)]
pub struct Region {
    analyze_requested: AtomicU64,
    analyze_done: AtomicU64,
    analyze_apply: AtomicU32,
    reset_requested: AtomicU64,
    reset_done: AtomicU64,
    blob_len: AtomicU32,
    answer_len: AtomicU32,
    blob: [u8; BLOB_CAP],
    answer: [u8; ANSWER_CAP],
}

// SAFETY: repr(C), atomics and byte arrays only, valid at all-zero bytes.
unsafe impl SharedState for Region {}

/// The plugin.
pub struct Autosizer {
    lane: Mutex<Lane>,
    /// The running server's WAL format (checkpoint records).
    format: walker_decode::Format,
}

#[derive(Default)]
struct Lane {
    model: Model,
    facts: Option<Facts>,
    config: Option<Config>,
    /// When settings and facts were last read (µs; 0: never).
    refreshed_at: i64,
    published_at: i64,
    through_lsn: u64,
    last_decision: Option<Decision>,
    config_error: Option<String>,
    /// The change handed to the services worker, its outcome not yet collected. One at
    /// a time: decisions wait until it is done.
    pending: Option<PendingApply>,
    /// Notifications handed to the services worker, outcomes not yet collected.
    notifies: std::collections::VecDeque<u64>,
}

/// A setting the autosizer changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// `max_wal_size`.
    MaxWalSize,
    /// `min_wal_size`.
    MinWalSize,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::MaxWalSize => "max_wal_size",
            Setting::MinWalSize => "min_wal_size",
        }
    }
}

/// One setting's request to the services worker, and its outcome once collected (the
/// host hands an outcome out once).
struct SettingRequest {
    setting: Setting,
    id: u64,
    outcome: Option<ServiceOutcome>,
}

/// A change of `max_wal_size` and/or `min_wal_size` the services worker is carrying out.
struct PendingApply {
    /// The requests, in the order they were queued (the worker takes them in order).
    requests: Vec<SettingRequest>,
    /// The decision it carries out.
    decision: Decision,
    /// History retention at the time (s).
    retention_s: u64,
    /// When it was decided and submitted (µs).
    decided_at: i64,
    /// The admin's analyze waiting for the outcome (its request number).
    analyze_seq: Option<u64>,
}

const VIEW_HISTORY: usize = 0;
const VIEW_WINDOWS: usize = 1;
const FN_STATUS: usize = 0;
const FN_RECOMMENDATION: usize = 1;
const FN_ANALYZE: usize = 2;
const FN_RESET: usize = 3;
const FN_METRICS: usize = 4;
const FN_SVG: usize = 5;

/// Server settings the autosizer reads.
const WATCHED: [&str; 6] = [
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "checkpoint_completion_target",
    "wal_segment_size",
    "data_directory",
];

fn read_config(host: &Host) -> PluginResult<Config> {
    let int = |n: &str| host.get_int(n).map(|v| v.max(0) as u64);
    Ok(Config {
        enabled: host.get_bool("enabled")?,
        algorithm: Algorithm::from_index(host.get_enum("algorithm")?),
        maximum_mb: int("maximum")?,
        floor_mb: int("floor")?,
        threshold: int("threshold")? as u32,
        headroom: host.get_real("headroom")?,
        percentile: host.get_real("percentile")?,
        shrink: host.get_bool("shrink")?,
        shrink_factor: host.get_real("shrink_factor")?,
        shrink_windows: int("shrink_windows")? as u32,
        cooldown_s: int("cooldown")?,
        max_changes_per_hour: int("max_changes_per_hour")? as u32,
        dry_run: host.get_bool("dry_run")?,
        retention_s: int("history_retention")?.saturating_mul(60),
        window_s: int("window")?,
        max_wal_share: host.get_real("max_wal_share")?,
    })
}

/// The server facts, once the services worker has published them.
fn read_facts(host: &Host) -> Option<Facts> {
    let get = |n: &str| host.server_setting(n, WalkerSettingField::VALUE);
    let num = |n: &str| get(n).and_then(|v| v.parse::<f64>().ok());
    let fs = match get("data_directory") {
        Some(d) => fs::sizes(&format!("{d}/pg_wal")),
        None => Err("data_directory is not published yet".to_string()),
    };
    let fs_error = fs.as_ref().err().cloned();
    let fs = fs.ok();
    Some(Facts {
        max_wal_size_mb: num("max_wal_size")? as u64,
        source: host
            .server_setting("max_wal_size", WalkerSettingField::SOURCE)
            .unwrap_or_default(),
        sourcefile: host
            .server_setting("max_wal_size", WalkerSettingField::SOURCE_FILE)
            .unwrap_or_default(),
        checkpoint_timeout_s: num("checkpoint_timeout")? as u64,
        completion_target: num("checkpoint_completion_target")?,
        segment_bytes: num("wal_segment_size")? as u64,
        free_bytes: fs.map(|s| s.free_bytes),
        fs_total_bytes: fs.map(|s| s.total_bytes),
        fs_error,
        min_wal_size_mb: num("min_wal_size").map(|v| v as u64),
        min_source: host
            .server_setting("min_wal_size", WalkerSettingField::SOURCE)
            .unwrap_or_default(),
        checkpointer: host.checkpointer_stats().map(|c| (c.timed, c.requested)),
    })
}

impl Autosizer {
    fn lane(&self) -> std::sync::MutexGuard<'_, Lane> {
        self.lane.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings and the server facts, read again at most every [`REFRESH_US`]
    /// (or when `force`d): they change only on a reload or a publication, and every
    /// commit record comes through here. `None` when no decision can be made.
    fn refresh(&self, host: &Host, lane: &mut Lane, now: i64, force: bool) -> Option<Config> {
        if force || lane.refreshed_at == 0 || now.saturating_sub(lane.refreshed_at) >= REFRESH_US {
            if let Some(f) = read_facts(host) {
                lane.model.note_facts(&f);
                lane.facts = Some(f);
            }
            lane.config = Self::checked_config(host, lane);
            lane.refreshed_at = now;
        }
        lane.config
    }

    /// Reads and checks the settings; the reason goes to `config_error` (and, once per
    /// new reason, to the log).
    fn checked_config(host: &Host, lane: &mut Lane) -> Option<Config> {
        let cfg = match read_config(host) {
            Ok(c) => c,
            Err(e) => {
                lane.config_error = Some(e.0);
                return None;
            }
        };
        match cfg.validate() {
            Ok(()) => {
                lane.config_error = None;
                Some(cfg)
            }
            Err(e) => {
                if lane.config_error.as_deref() != Some(&e.0) {
                    host.warning(&format!(
                        "{}; the autosizer changes nothing until it is fixed",
                        e.0
                    ));
                }
                lane.config_error = Some(e.0);
                None
            }
        }
    }

    /// Sends a notification with the decision; its outcome is collected later
    /// ([`Autosizer::collect`]), never waited for.
    fn notify(
        &self,
        host: &Host,
        lane: &mut Lane,
        entry: &HistoryEntry,
        applied: bool,
        dry_run: bool,
    ) {
        let payload = report::notification(entry, applied, dry_run);
        match host.request_service(WalkerServiceKind::NOTIFY, CHANNEL, &payload) {
            Ok(id) => {
                if lane.notifies.len() >= NOTIFY_PENDING_CAP {
                    lane.notifies.pop_front();
                }
                lane.notifies.push_back(id);
            }
            Err(e) => host.warning(&format!("could not notify channel {CHANNEL}: {e}")),
        }
    }

    /// Collects what the services worker finished: the pending change (recorded,
    /// announced, and answered to a waiting analyze) and the notifications. Never waits.
    fn collect(&self, host: &Host, lane: &mut Lane, now: i64) -> PluginResult {
        lane.notifies
            .retain(|&id| match host.service_result(id, 0) {
                ServiceOutcome::Pending => true,
                ServiceOutcome::Failed(m) => {
                    host.warning(&format!("could not notify channel {CHANNEL}: {m}"));
                    false
                }
                _ => false,
            });
        let Some(p) = lane.pending.as_mut() else {
            return Ok(());
        };
        let waited_out = now.saturating_sub(p.decided_at) >= APPLY_WAIT_US;
        let mut open = false;
        for r in p.requests.iter_mut().filter(|r| r.outcome.is_none()) {
            match host.service_result(r.id, 0) {
                ServiceOutcome::Pending if !waited_out => open = true,
                other => r.outcome = Some(other),
            }
        }
        if open {
            return Ok(());
        }
        let Some(p) = lane.pending.take() else {
            return Ok(());
        };
        let outcomes = p
            .requests
            .into_iter()
            .map(|r| (r.setting, r.outcome.unwrap_or(ServiceOutcome::Unknown)))
            .collect();
        let out = self.finish_apply(
            host,
            lane,
            p.decision,
            p.decided_at,
            p.retention_s,
            outcomes,
        );
        lane.published_at = 0;
        if let Some(seq) = p.analyze_seq {
            let text = out.to_string();
            host.with_exclusive(|r: &mut Region| {
                write_answer(r, &text);
                r.analyze_done.store(seq, Ordering::Release);
            })?;
        }
        Ok(())
    }

    /// Records the outcome of a change (one outcome per setting requested): history,
    /// log, notification. Returns the decision's report with `applied` (and `error`).
    fn finish_apply(
        &self,
        host: &Host,
        lane: &mut Lane,
        d: Decision,
        now: i64,
        retention_s: u64,
        outcomes: Vec<(Setting, ServiceOutcome)>,
    ) -> serde_json::Value {
        let mut out = report::decision(&d);
        out["applied"] = false.into();
        let reason = report::full_reason(&d);
        let shown = |want: fn(&ServiceOutcome) -> Option<&String>| {
            outcomes
                .iter()
                .filter_map(|(s, o)| want(o).map(|m| format!("{}: {m}", s.name())))
                .collect::<Vec<_>>()
        };
        let succeeded = shown(|o| match o {
            ServiceOutcome::Succeeded(m) => Some(m),
            _ => None,
        });
        let failed = outcomes.iter().find_map(|(s, o)| match o {
            ServiceOutcome::Failed(m) => Some((*s, m.clone())),
            _ => None,
        });
        let unanswered = outcomes.iter().find_map(|(s, o)| match o {
            ServiceOutcome::Succeeded(_) | ServiceOutcome::Failed(_) => None,
            other => Some((*s, format!("{other:?}"))),
        });
        let set_anyway = if succeeded.is_empty() {
            String::new()
        } else {
            format!("; set: {}", succeeded.join("; "))
        };
        let action = HistoryAction::from(d.history_action());
        match (failed, unanswered) {
            (None, None) => {
                lane.model.applied(now);
                if let Some(f) = lane.facts.as_mut() {
                    f.max_wal_size_mb = d.recommended_mb;
                    if let Some(m) = d.min.as_ref().filter(|_| d.changes_min()) {
                        f.min_wal_size_mb = Some(m.recommended_mb);
                    }
                }
                let e = d.history_entry(
                    now,
                    action,
                    format!("{reason}; the server now shows {}", succeeded.join("; ")),
                );
                host.info(&reason);
                self.notify(host, lane, &e, true, false);
                lane.model.remember(e, retention_s);
                out["applied"] = true.into();
            }
            (Some((setting, msg)), _) => {
                host.warning(&format!(
                    "could not set {}: {msg}; the autosizer now only recommends",
                    setting.name()
                ));
                lane.model.blocked = Some(match setting {
                    Setting::MaxWalSize => msg.clone(),
                    Setting::MinWalSize => format!("min_wal_size: {msg}"),
                });
                let e = d.history_entry(
                    now,
                    HistoryAction::Failed,
                    format!("{reason}; not applied: {msg}{set_anyway}"),
                );
                self.notify(host, lane, &e, false, false);
                lane.model.remember(e, retention_s);
                out["error"] = msg.into();
            }
            (None, Some((setting, other))) => {
                let msg = format!(
                    "the services worker gave no answer within {} s ({} {other})",
                    APPLY_WAIT_US / 1_000_000,
                    setting.name()
                );
                host.warning(&msg);
                let e = d.history_entry(
                    now,
                    HistoryAction::Failed,
                    format!("{reason}; {msg}{set_anyway}"),
                );
                lane.model.remember(e, retention_s);
                out["error"] = msg.into();
            }
        }
        lane.last_decision = Some(d);
        out
    }

    /// Carries out a decision: apply, record, announce. `manual`: an admin's analyze,
    /// which the cooldown and the hourly cap do not hold back.
    fn act(
        &self,
        host: &Host,
        lane: &mut Lane,
        cfg: &Config,
        d: Decision,
        now: i64,
        manual: bool,
    ) -> serde_json::Value {
        let mut out = report::decision(&d);
        out["applied"] = false.into();
        let restraint = match (&d.restraint, manual) {
            (Some(Restraint::Cooldown | Restraint::HourlyCap), true) => None,
            (r, _) => r.clone(),
        };
        if !d.changes() {
            lane.last_decision = Some(d);
            return out;
        }
        match restraint {
            None => {
                if lane.pending.is_some() {
                    // One change at a time: this one is decided again once the
                    // change in flight is done.
                    out["note"] = "a change of max_wal_size or min_wal_size is being applied; analyze again once it is in the history".into();
                    lane.last_decision = Some(d);
                    return out;
                }
                // max_wal_size first, then min_wal_size: the worker takes them in order.
                let mut wanted = Vec::new();
                if d.action != Action::Hold {
                    wanted.push((Setting::MaxWalSize, d.recommended_mb));
                }
                if let Some(m) = d.min.as_ref().filter(|_| d.changes_min()) {
                    wanted.push((Setting::MinWalSize, m.recommended_mb));
                }
                let requests: Vec<SettingRequest> = wanted
                    .into_iter()
                    .map(|(setting, mb)| {
                        match host.request_service(
                            WalkerServiceKind::SET_SERVER_SETTING,
                            setting.name(),
                            &mb.to_string(),
                        ) {
                            Ok(id) => SettingRequest {
                                setting,
                                id,
                                outcome: None,
                            },
                            Err(e) => SettingRequest {
                                setting,
                                id: 0,
                                outcome: Some(ServiceOutcome::Failed(e.0)),
                            },
                        }
                    })
                    .collect();
                if requests.iter().all(|r| r.outcome.is_some()) {
                    let outcomes = requests
                        .into_iter()
                        .map(|r| (r.setting, r.outcome.unwrap_or(ServiceOutcome::Unknown)))
                        .collect();
                    return self.finish_apply(host, lane, d, now, cfg.retention_s, outcomes);
                }
                out["pending"] = true.into();
                lane.pending = Some(PendingApply {
                    requests,
                    decision: d.clone(),
                    retention_s: cfg.retention_s,
                    decided_at: now,
                    analyze_seq: None,
                });
                lane.last_decision = Some(d);
                return out;
            }
            Some(Restraint::DryRun | Restraint::RecommendOnly(_)) => {
                let why = match &restraint {
                    Some(Restraint::RecommendOnly(m)) => format!("recommend-only ({m})"),
                    _ => "dry run".to_string(),
                };
                // One entry per recommendation and cooldown, not one per window.
                let repeat = lane.model.history.back().is_some_and(|h| {
                    h.action == HistoryAction::Recommend
                        && h.new_mb == d.recommended_mb
                        && now.saturating_sub(h.at_us)
                            < (cfg.cooldown_s as i64).saturating_mul(1_000_000)
                });
                if !repeat {
                    let e = d.history_entry(
                        now,
                        HistoryAction::Recommend,
                        format!(
                            "{why}: would {}: {}",
                            d.history_action().name(),
                            report::full_reason(&d)
                        ),
                    );
                    self.notify(host, lane, &e, false, cfg.dry_run);
                    lane.model.remember(e, cfg.retention_s);
                }
                out["applied"] = false.into();
            }
            Some(Restraint::Cooldown) => lane.model.deferred_cooldown += 1,
            Some(Restraint::HourlyCap) => lane.model.deferred_hourly_cap += 1,
            Some(Restraint::Disabled) => {}
        }
        lane.last_decision = Some(d);
        out
    }

    /// Runs what time brings: window ends, backend requests, publication.
    fn tick(&self, host: &Host, lane: &mut Lane, time_us: i64, now: i64) -> PluginResult {
        self.collect(host, lane, now)?;
        let cfg = self.refresh(host, lane, now, false);
        if let (Some(cfg), Some(facts)) = (cfg.as_ref(), lane.facts.as_ref()) {
            if lane
                .model
                .observe_time(time_us, lane.through_lsn, cfg, facts)
                .is_some()
            {
                let d = lane.model.decide(cfg, facts, now);
                self.act(host, lane, cfg, d, now, false);
                lane.published_at = 0;
            }
        }
        self.answer_requests(host, lane, cfg.as_ref(), now)?;
        if now.saturating_sub(lane.published_at) >= REFRESH_US {
            self.publish(host, lane, cfg.as_ref(), now)?;
        }
        Ok(())
    }

    /// Runs an analyze or reset a backend asked for.
    fn answer_requests(
        &self,
        host: &Host,
        lane: &mut Lane,
        cfg: Option<&Config>,
        now: i64,
    ) -> PluginResult {
        let (analyze, reset) = host.with_shared(|r: &Region| {
            (
                (
                    r.analyze_requested.load(Ordering::Acquire),
                    r.analyze_done.load(Ordering::Acquire),
                    r.analyze_apply.load(Ordering::Acquire) != 0,
                ),
                (
                    r.reset_requested.load(Ordering::Acquire),
                    r.reset_done.load(Ordering::Acquire),
                ),
            )
        })?;
        if reset.0 > reset.1 {
            lane.model = Model::default();
            lane.last_decision = None;
            if let Some(f) = lane.facts.as_ref() {
                lane.model.note_facts(f);
            }
            host.info("reset: history, windows and recommend-only state cleared");
            let answer =
                serde_json::json!({"reset": true, "initial_mb": lane.model.initial_mb}).to_string();
            self.publish(host, lane, cfg, now)?;
            host.with_exclusive(|r: &mut Region| {
                write_answer(r, &answer);
                r.reset_done.store(reset.0, Ordering::Release);
            })?;
        }
        let waiting = lane.pending.as_ref().and_then(|p| p.analyze_seq);
        if analyze.0 > analyze.1 && waiting != Some(analyze.0) {
            let answer = match (cfg, lane.facts.clone()) {
                (Some(cfg), Some(facts)) => {
                    let d = lane.model.decide(cfg, &facts, now);
                    if analyze.2 {
                        self.act(host, lane, cfg, d, now, true)
                    } else {
                        let mut v = report::decision(&d);
                        v["applied"] = false.into();
                        v
                    }
                }
                (None, _) => {
                    serde_json::json!({"error": lane.config_error.clone().unwrap_or_default()})
                }
                (_, None) => serde_json::json!({"error": report::NO_FACTS}),
            };
            self.publish(host, lane, cfg, now)?;
            if answer.get("pending") == Some(&serde_json::Value::Bool(true)) {
                // Answered when the services worker is done (see `collect`).
                if let Some(p) = lane.pending.as_mut() {
                    p.analyze_seq = Some(analyze.0);
                }
                return Ok(());
            }
            let text = answer.to_string();
            host.with_exclusive(|r: &mut Region| {
                write_answer(r, &text);
                r.analyze_done.store(analyze.0, Ordering::Release);
            })?;
        }
        Ok(())
    }

    fn publish(
        &self,
        host: &Host,
        lane: &mut Lane,
        cfg: Option<&Config>,
        now: i64,
    ) -> PluginResult {
        lane.published_at = now;
        let blob = report::published(
            &lane.model,
            cfg,
            lane.facts.as_ref(),
            lane.last_decision.as_ref(),
            lane.config_error.as_deref(),
            lane.through_lsn,
            now,
        );
        let mut text = blob.to_string();
        if text.len() > BLOB_CAP {
            // Keep the status and the recommendation; drop old history until it fits.
            let mut m = lane.model.clone();
            while text.len() > BLOB_CAP && !m.history.is_empty() {
                let n = m.history.len().div_ceil(2);
                m.history.drain(..n);
                text = report::published(
                    &m,
                    cfg,
                    lane.facts.as_ref(),
                    lane.last_decision.as_ref(),
                    lane.config_error.as_deref(),
                    lane.through_lsn,
                    now,
                )
                .to_string();
            }
        }
        host.with_exclusive(|r: &mut Region| {
            let n = text.len().min(BLOB_CAP);
            r.blob[..n].copy_from_slice(&text.as_bytes()[..n]);
            r.blob_len.store(n as u32, Ordering::Release);
        })
    }

    fn published(&self, host: &Host) -> PluginResult<serde_json::Value> {
        let text = host.with_shared(|r: &Region| {
            let n = (r.blob_len.load(Ordering::Acquire) as usize).min(BLOB_CAP);
            String::from_utf8_lossy(&r.blob[..n]).into_owned()
        })?;
        if text.is_empty() {
            return Err(PluginError::new("nothing published yet: the walker worker has not run the autosizer (see walker.status and walker.plugins)"));
        }
        serde_json::from_str(&text)
            .map_err(|e| PluginError::new(format!("published state unreadable: {e}")))
    }

    /// Asks the dispatch thread for an analyze or reset and waits for its answer.
    fn ask(&self, host: &Host, reset: bool, apply: bool) -> PluginResult<String> {
        let seq = host.with_exclusive(|r: &mut Region| {
            if reset {
                r.reset_requested.fetch_add(1, Ordering::AcqRel) + 1
            } else {
                r.analyze_apply.store(apply as u32, Ordering::Release);
                r.analyze_requested.fetch_add(1, Ordering::AcqRel) + 1
            }
        })?;
        let start = std::time::Instant::now();
        loop {
            let done = host.with_shared(|r: &Region| {
                let done = if reset {
                    r.reset_done.load(Ordering::Acquire)
                } else {
                    r.analyze_done.load(Ordering::Acquire)
                };
                (done >= seq).then(|| {
                    let n = (r.answer_len.load(Ordering::Acquire) as usize).min(ANSWER_CAP);
                    String::from_utf8_lossy(&r.answer[..n]).into_owned()
                })
            })?;
            if let Some(a) = done {
                return Ok(a);
            }
            if start.elapsed().as_millis() as u64 >= ASK_WAIT_MS {
                return Err(PluginError::new("the walker worker did not answer within 30 s; is it running and caught up? (see walker.status)"));
            }
            if !host.pause(50) {
                return Err(PluginError::new("cancelled"));
            }
        }
    }
}

/// The windows in the published state (none before the first publication).
fn windows_of(p: &serde_json::Value) -> PluginResult<Vec<Window>> {
    match p.get("windows") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(w) => serde_json::from_value(w.clone())
            .map_err(|e| PluginError::new(format!("published windows unreadable: {e}"))),
    }
}

fn write_answer(r: &mut Region, text: &str) {
    let n = text.len().min(ANSWER_CAP);
    r.answer[..n].copy_from_slice(&text.as_bytes()[..n]);
    r.answer_len.store(n as u32, Ordering::Release);
}

impl Plugin for Autosizer {
    fn describe() -> PluginInfo {
        use WalkerType as T;
        let f = |name, description, result, admin_only: bool| walker_abi::FunctionDef {
            name,
            description,
            result,
            access: if admin_only {
                walker_abi::WalkerAccess::ADMIN
            } else {
                walker_abi::WalkerAccess::MONITOR
            },
        };
        PluginInfo {
            version: env!("CARGO_PKG_VERSION"),
            description: "keeps max_wal_size right, from the WAL itself",
            rmgrs: ALL_RMGRS,
            views: vec![ViewDef {
                name: "history",
                description: "every change and dry-run decision of the autosizer: time, action, old and new max_wal_size, reason, measurements, old and new min_wal_size",
                columns: vec![
                    ("at", T::TIMESTAMPTZ),
                    ("action", T::TEXT),
                    ("old_mb", T::INT8),
                    ("new_mb", T::INT8),
                    ("reason", T::TEXT),
                    ("measurements", T::JSONB),
                    ("min_old_mb", T::INT8),
                    ("min_new_mb", T::INT8),
                ],
            }, ViewDef {
                name: "windows",
                description: "the measuring windows kept (the last 48): start, end, WAL written, demand (WAL per checkpoint_timeout), checkpoints by kind, max_wal_size when it closed",
                columns: vec![
                    ("start_at", T::TIMESTAMPTZ),
                    ("end_at", T::TIMESTAMPTZ),
                    ("bytes", T::INT8),
                    ("demand_bytes", T::INT8),
                    ("forced", T::INT8),
                    ("timed", T::INT8),
                    ("requested", T::INT8),
                    ("max_wal_size_mb", T::INT8),
                ],
            }],
            snapshots: true,
            functions: vec![
                f("status", "the autosizer's mode, settings, measurements and counters", T::JSONB, false),
                f("recommendation", "current and recommended max_wal_size and min_wal_size, the action, the reason, the cap from pg_wal's filesystem and the numbers behind it", T::JSONB, false),
                f("analyze", "decides now; with {\"apply\": true} also applies the decision (cooldown and hourly cap do not hold it back)", T::JSONB, true),
                f("reset", "forgets the history, windows and recommend-only state", T::JSONB, true),
                f("metrics", "the autosizer's metrics in the Prometheus text format", T::TEXT, false),
                f("svg", "an SVG of the windows kept: demand per window, max_wal_size over time, forced checkpoints and changes marked", T::TEXT, false),
            ],
            backend_events: false,
            sql: None,
            role: None,
        }
    }

    fn init(host: &Host) -> PluginResult<Self> {
        let version = host
            .server_version_num()
            .ok_or("the walker host does not tell the server version; upgrade walker")?;
        let format = walker_decode::Format::for_server(version).map_err(|e| {
            PluginError::new(format!(
                "autosizer: {e}; remove autosizer from walker.plugins"
            ))
        })?;
        for name in WATCHED {
            host.watch_setting(name)?;
        }
        let ctx = WalkerSettingContext::SIGHUP;
        let none = WalkerSettingUnit::NONE;
        host.define_bool(
            "enabled",
            "Whether the autosizer decides and applies (off: it only measures).",
            true,
            ctx,
        )?;
        host.define_enum("algorithm", "How the size is computed: demand (peak WAL per checkpoint_timeout), adaptive, percentile, multiplicative or additive.", 0, &Algorithm::NAMES, ctx)?;
        host.define_int(
            "maximum",
            "Largest max_wal_size the autosizer sets.",
            64 * 1024,
            32,
            i32::MAX as i64,
            WalkerSettingUnit::MB,
            ctx,
        )?;
        host.define_int("floor", "Smallest max_wal_size a shrink sets (0: the size configured when the autosizer first ran).", 0, 0, i32::MAX as i64, WalkerSettingUnit::MB, ctx)?;
        host.define_int(
            "threshold",
            "Checkpoints forced by WAL volume within one window that call for growth.",
            1,
            1,
            1000,
            none,
            ctx,
        )?;
        host.define_real(
            "headroom",
            "Fraction added on top of the measured demand.",
            0.25,
            0.0,
            10.0,
            ctx,
        )?;
        host.define_real(
            "percentile",
            "Percentile of the windows' demand the percentile algorithm covers.",
            90.0,
            1.0,
            100.0,
            ctx,
        )?;
        host.define_bool(
            "shrink",
            "Whether the autosizer may lower max_wal_size (never below the floor).",
            false,
            ctx,
        )?;
        host.define_real(
            "shrink_factor",
            "The most a shrink keeps: the size times this factor.",
            0.75,
            0.1,
            0.99,
            ctx,
        )?;
        host.define_int(
            "shrink_windows",
            "Consecutive windows without a forced checkpoint before a shrink.",
            5,
            1,
            10_000,
            none,
            ctx,
        )?;
        host.define_int(
            "cooldown",
            "Least time between two changes.",
            300,
            0,
            7 * 86_400,
            WalkerSettingUnit::S,
            ctx,
        )?;
        host.define_int(
            "max_changes_per_hour",
            "Most changes within any hour.",
            4,
            1,
            1000,
            none,
            ctx,
        )?;
        host.define_bool(
            "dry_run",
            "Recommend and record (history, NOTIFY) but change nothing.",
            false,
            ctx,
        )?;
        host.define_int(
            "history_retention",
            "How long history entries are kept (at most 500 entries).",
            7 * 24 * 60,
            1,
            365 * 24 * 60,
            WalkerSettingUnit::MIN,
            ctx,
        )?;
        host.define_int(
            "window",
            "Length of a measuring window (0: checkpoint_timeout).",
            0,
            0,
            86_400,
            WalkerSettingUnit::S,
            ctx,
        )?;
        host.define_real(
            "max_wal_share",
            "Largest share of pg_wal's filesystem max_wal_size may have: recommendations are capped at it, a larger max_wal_size is lowered to it.",
            0.5,
            0.01,
            1.0,
            ctx,
        )?;
        Ok(Autosizer {
            lane: Mutex::new(Lane::default()),
            format,
        })
    }

    fn shmem_size(&self, _host: &Host) -> usize {
        std::mem::size_of::<Region>()
    }

    fn on_record(&self, host: &Host, r: &Record<'_>) -> PluginResult {
        let mut guard = self.lane();
        let lane = &mut *guard;
        lane.through_lsn = r.end_lsn();
        match decode(r.rmid(), r.info(), r.main_data(), self.format) {
            Some(Event::Checkpoint {
                redo,
                time_us,
                shutdown,
            }) => {
                let now = host.now_micros();
                self.refresh(host, lane, now, false);
                if let Some(facts) = lane.facts.as_ref() {
                    lane.model
                        .observe_checkpoint(redo, time_us, shutdown, facts);
                }
                self.tick(host, lane, time_us, now)
            }
            Some(Event::Time(t)) => self.tick(host, lane, t, host.now_micros()),
            None => Ok(()),
        }
    }

    fn on_idle(&self, host: &Host, lsn: u64) -> PluginResult {
        let mut lane = self.lane();
        lane.through_lsn = lane.through_lsn.max(lsn);
        let now = host.now_micros();
        self.tick(host, &mut lane, now, now)
    }

    fn save_state(&self, _host: &Host, out: &mut Vec<u8>) -> PluginResult {
        report::STATE.begin(out);
        serde_json::to_writer(&mut *out, &self.lane().model)
            .map_err(|e| PluginError::new(format!("cannot encode the state: {e}")))
    }

    fn load_state(&self, host: &Host, state: Option<&[u8]>, lsn: u64) -> PluginResult {
        let model = match state {
            None => Model::default(),
            Some(b) => {
                let (_, json) = report::STATE
                    .open(b)
                    .map_err(|e| PluginError::new(e.to_string()))?;
                serde_json::from_slice(json).map_err(|e| {
                    PluginError::new(format!("the snapshot's state is unreadable: {e}"))
                })?
            }
        };
        let mut lane = self.lane();
        *lane = Lane {
            model,
            through_lsn: lsn,
            ..Lane::default()
        };
        let now = host.now_micros();
        let cfg = self.refresh(host, &mut lane, now, true);
        self.publish(host, &mut lane, cfg.as_ref(), now)
    }

    fn view_rows(&self, host: &Host, view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        let p = self.published(host)?;
        if view == VIEW_WINDOWS {
            for w in windows_of(&p)? {
                let n = |v: u64| Value::Int8(i64::try_from(v).unwrap_or(i64::MAX));
                sink.row(&[
                    Value::TimestampTz(w.start_us),
                    Value::TimestampTz(w.end_us),
                    n(w.bytes),
                    n(w.demand),
                    n(w.forced.into()),
                    n(w.timed.into()),
                    n(w.requested.into()),
                    w.max_wal_size_mb.map_or(Value::Null, n),
                ])?;
            }
            return Ok(());
        }
        if view != VIEW_HISTORY {
            return Ok(());
        }
        for h in p["history"].as_array().into_iter().flatten() {
            let e: HistoryEntry =
                serde_json::from_value(h.clone()).map_err(|e| PluginError::new(e.to_string()))?;
            let m = e.measurements.to_string();
            sink.row(&[
                Value::TimestampTz(e.at_us),
                Value::Text(e.action.name()),
                Value::Int8(e.old_mb as i64),
                Value::Int8(e.new_mb as i64),
                Value::Text(&e.reason),
                Value::Jsonb(&m),
                e.min_old_mb.map_or(Value::Null, |v| Value::Int8(v as i64)),
                e.min_new_mb.map_or(Value::Null, |v| Value::Int8(v as i64)),
            ])?;
        }
        Ok(())
    }

    fn call(&self, host: &Host, function: usize, args: &str) -> PluginResult<String> {
        let args: serde_json::Value = serde_json::from_str(args)
            .map_err(|e| PluginError::new(format!("the argument is not JSON: {e}")))?;
        match function {
            FN_STATUS => Ok(self.published(host)?["status"].to_string()),
            FN_RECOMMENDATION => Ok(self.published(host)?["recommendation"].to_string()),
            FN_METRICS => Ok(self.published(host)?["metrics"]
                .as_str()
                .unwrap_or_default()
                .to_string()),
            FN_ANALYZE => {
                let apply = match args.get("apply") {
                    None | Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(PluginError::new(format!(
                            "\"apply\" must be true or false, not {other}"
                        )))
                    }
                };
                if let Some(k) = args
                    .as_object()
                    .and_then(|o| o.keys().find(|k| *k != "apply"))
                {
                    return Err(PluginError::new(format!(
                        "unknown argument \"{k}\"; analyze takes {{\"apply\": true|false}}"
                    )));
                }
                self.ask(host, false, apply)
            }
            FN_RESET => self.ask(host, true, false),
            FN_SVG => {
                let p = self.published(host)?;
                let history: Vec<HistoryEntry> = serde_json::from_value(p["history"].clone())
                    .map_err(|e| PluginError::new(format!("published history unreadable: {e}")))?;
                let frame = picture::Frame {
                    max_wal_size_mb: p["status"]["max_wal_size_mb"].as_u64(),
                    through_lsn: p["through_lsn"].as_u64().unwrap_or(0),
                };
                Ok(picture::render(&frame, &windows_of(&p)?, &history))
            }
            _ => Err(PluginError::new(format!("no function number {function}"))),
        }
    }
}

walker_abi::export_plugin!(Autosizer);
