//! What the autosizer knows and decides, without a server: checkpoints classified from
//! their redo pointers and times, WAL demand per window, the sizing algorithms, and
//! the guards (maximum, floor, free space, shrink rules, cooldown, hourly cap).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Bytes in a megabyte (the unit of `max_wal_size`).
pub const MB: u64 = 1 << 20;
/// Closed windows kept (the demand algorithms look at these).
pub const WINDOWS_KEPT: usize = 48;
/// Most history entries kept, whatever the retention.
pub const HISTORY_CAP: usize = 500;
/// The adaptive algorithm's weight of a window whose demand is above the average.
pub const EWMA_RISE: f64 = 0.5;
/// ... and below it (it decays slowly).
pub const EWMA_DECAY: f64 = 0.1;
/// A checkpoint starting this close to `checkpoint_timeout` after the previous one is
/// timed (checkpoint times have whole-second resolution).
pub const TIMED_SLACK_US: i64 = 2_000_000;

/// How the recommended size is computed (`autosizer.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// The peak WAL demand of the kept windows (default).
    Demand,
    /// An average of the demand that rises fast and decays slowly.
    Adaptive,
    /// A percentile (`autosizer.percentile`) of the kept windows' demand.
    Percentile,
    /// pg_walrus / pg_walsizer: the size times (forced checkpoints + 1).
    Multiplicative,
    /// The size plus one floor's worth per forced checkpoint.
    Additive,
}

impl Algorithm {
    /// Setting values, in the order of the enum setting's options.
    pub const NAMES: [&'static str; 5] = [
        "demand",
        "adaptive",
        "percentile",
        "multiplicative",
        "additive",
    ];

    /// The algorithm of option `i`.
    pub fn from_index(i: usize) -> Algorithm {
        match i {
            1 => Algorithm::Adaptive,
            2 => Algorithm::Percentile,
            3 => Algorithm::Multiplicative,
            4 => Algorithm::Additive,
            _ => Algorithm::Demand,
        }
    }

    fn uses_demand(self) -> bool {
        matches!(
            self,
            Algorithm::Demand | Algorithm::Adaptive | Algorithm::Percentile
        )
    }
}

/// The autosizer's settings, read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Config {
    /// `autosizer.enabled`.
    pub enabled: bool,
    /// `autosizer.algorithm`.
    pub algorithm: Algorithm,
    /// `autosizer.maximum` (MB): never grow past it.
    pub maximum_mb: u64,
    /// `autosizer.floor` (MB; 0: the size configured when the autosizer first ran).
    pub floor_mb: u64,
    /// `autosizer.threshold`: forced checkpoints in a window that call for growth.
    pub threshold: u32,
    /// `autosizer.headroom`: fraction added on top of the demand.
    pub headroom: f64,
    /// `autosizer.percentile` (1..100) for the percentile algorithm.
    pub percentile: f64,
    /// `autosizer.shrink`: whether it may shrink at all.
    pub shrink: bool,
    /// `autosizer.shrink_factor`: the most a shrink keeps (size × factor).
    pub shrink_factor: f64,
    /// `autosizer.shrink_windows`: quiet windows (no forced checkpoint) before a shrink.
    pub shrink_windows: u32,
    /// `autosizer.cooldown` (s) between changes.
    pub cooldown_s: u64,
    /// `autosizer.max_changes_per_hour`.
    pub max_changes_per_hour: u32,
    /// `autosizer.dry_run`: recommend and record, change nothing.
    pub dry_run: bool,
    /// `autosizer.history_retention` (s).
    pub retention_s: u64,
    /// `autosizer.window` (s; 0: `checkpoint_timeout`).
    pub window_s: u64,
    /// `autosizer.max_wal_share`: the largest share of pg_wal's filesystem
    /// `max_wal_size` may have (0 < share <= 1).
    pub max_wal_share: f64,
}

/// Why the settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl Config {
    /// Checks relations between settings the server's own range checks cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.floor_mb > 0 && self.floor_mb > self.maximum_mb {
            return Err(ConfigError(format!(
                "autosizer.floor ({} MB) is above autosizer.maximum ({} MB); lower the floor or raise the maximum",
                self.floor_mb, self.maximum_mb
            )));
        }
        Ok(())
    }
}

/// What the server shows, as the autosizer needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// `max_wal_size` in MB.
    pub max_wal_size_mb: u64,
    /// Where `max_wal_size` comes from (`pg_settings.source`).
    pub source: String,
    /// The file that set it, if any.
    pub sourcefile: String,
    /// `checkpoint_timeout` in seconds.
    pub checkpoint_timeout_s: u64,
    /// `checkpoint_completion_target`.
    pub completion_target: f64,
    /// `wal_segment_size` in bytes.
    pub segment_bytes: u64,
    /// Free bytes on the filesystem of `pg_wal`, when known.
    pub free_bytes: Option<u64>,
    /// Size in bytes of the filesystem of `pg_wal`, when known.
    #[serde(default)]
    pub fs_total_bytes: Option<u64>,
    /// Why the filesystem of `pg_wal` could not be measured, if it could not.
    #[serde(default)]
    pub fs_error: Option<String>,
    /// `min_wal_size` in MB, when the server published it.
    #[serde(default)]
    pub min_wal_size_mb: Option<u64>,
    /// `pg_settings.source` of `min_wal_size` (empty when unknown).
    #[serde(default)]
    pub min_source: String,
    /// The checkpointer's (timed, requested) counters, when published.
    pub checkpointer: Option<(u64, u64)>,
}

impl Facts {
    fn seg(&self) -> u64 {
        self.segment_bytes.max(MB)
    }
    fn seg_mb(&self) -> u64 {
        (self.seg() / MB).max(1)
    }
}

/// PostgreSQL's `CheckPointSegments` for a size: whole segments in `max_wal_size`
/// divided by `1 + checkpoint_completion_target`, at least 1.
pub fn checkpoint_segments(
    max_wal_size_mb: u64,
    completion_target: f64,
    segment_bytes: u64,
) -> u64 {
    let segs = max_wal_size_mb.saturating_mul(MB) / segment_bytes.max(1);
    ((segs as f64 / (1.0 + completion_target)).floor() as u64).max(1)
}

/// The least redo-to-redo distance of a checkpoint the server requested for WAL
/// volume: it asks once a new segment is `CheckPointSegments - 1` segments past the
/// redo pointer's, which is at least `CheckPointSegments - 2` whole segments (and at
/// least one) of WAL.
pub fn forced_distance(facts: &Facts) -> u64 {
    let cps = checkpoint_segments(facts.max_wal_size_mb, facts.completion_target, facts.seg());
    cps.saturating_sub(2).max(1).saturating_mul(facts.seg())
}

/// Why a checkpoint happened, as its distance and time from the previous one tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointKind {
    /// Forced by WAL volume (`max_wal_size` too small).
    Wal,
    /// `checkpoint_timeout` elapsed.
    Timed,
    /// Requested with little WAL: CHECKPOINT, a backup, CREATE DATABASE, ...
    Requested,
    /// At shutdown.
    Shutdown,
}

/// Classifies a checkpoint from the previous one's (redo, start time) and its own.
pub fn classify(
    prev: (u64, i64),
    redo: u64,
    time_us: i64,
    shutdown: bool,
    facts: &Facts,
) -> CheckpointKind {
    if shutdown {
        return CheckpointKind::Shutdown;
    }
    let interval = time_us.saturating_sub(prev.1);
    let timeout = (facts.checkpoint_timeout_s as i64).saturating_mul(1_000_000);
    if interval.saturating_add(TIMED_SLACK_US) >= timeout {
        return CheckpointKind::Timed;
    }
    if redo.saturating_sub(prev.0) >= forced_distance(facts) {
        CheckpointKind::Wal
    } else {
        CheckpointKind::Requested
    }
}

/// A closed measuring window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start (µs since the Unix epoch).
    pub start_us: i64,
    /// End.
    pub end_us: i64,
    /// WAL bytes written in it.
    pub bytes: u64,
    /// Its WAL rate scaled to one `checkpoint_timeout`: the WAL one checkpoint cycle needs.
    pub demand: u64,
    /// Checkpoints forced by WAL volume.
    pub forced: u32,
    /// Timed checkpoints.
    pub timed: u32,
    /// Requested checkpoints with little WAL.
    pub requested: u32,
    /// Increase of the checkpointer's requested counter, when known (it also counts
    /// CHECKPOINT, backups, CREATE DATABASE).
    pub checkpointer_requested: Option<u64>,
    /// `max_wal_size` (MB) when the window closed (absent in windows saved before
    /// it was recorded).
    #[serde(default)]
    pub max_wal_size_mb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenWindow {
    start_us: i64,
    start_lsn: u64,
    forced: u32,
    timed: u32,
    requested: u32,
    checkpointer_requested: Option<u64>,
}

/// What a decision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Raise `max_wal_size`.
    Grow,
    /// Lower it.
    Shrink,
    /// Leave it.
    Hold,
}

impl Action {
    /// The word the history, NOTIFY and the JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Action::Grow => "grow",
            Action::Shrink => "shrink",
            Action::Hold => "hold",
        }
    }
}

/// What a history entry records; stored (in snapshots) and shown as its lower-case
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    /// `max_wal_size` (or `min_wal_size` alone) was raised.
    Grow,
    /// It was lowered.
    Shrink,
    /// Neither setting changes: what [`Decision::history_action`] of a decision to
    /// hold converts to; the autosizer records only changes, so no entry has it.
    Hold,
    /// A change recommended, not applied (dry run, or recommend-only).
    Recommend,
    /// A change that could not be applied.
    Failed,
}

impl HistoryAction {
    /// The word the history view, NOTIFY and the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            HistoryAction::Grow => "grow",
            HistoryAction::Shrink => "shrink",
            HistoryAction::Hold => "hold",
            HistoryAction::Recommend => "recommend",
            HistoryAction::Failed => "failed",
        }
    }
}

impl From<Action> for HistoryAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Grow => HistoryAction::Grow,
            Action::Shrink => HistoryAction::Shrink,
            Action::Hold => HistoryAction::Hold,
        }
    }
}

/// Why a change is not carried out now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restraint {
    /// `autosizer.enabled` is off.
    Disabled,
    /// `autosizer.dry_run` is on.
    DryRun,
    /// Applying is impossible (ALTER SYSTEM disabled, an overriding source, ...).
    RecommendOnly(String),
    /// Within the cooldown after the last change.
    Cooldown,
    /// The hourly cap is reached.
    HourlyCap,
}

/// Why `setting` cannot be changed by ALTER SYSTEM when it comes from `source`
/// (`pg_settings.source`): ALTER SYSTEM writes `postgresql.auto.conf`, which a value
/// from a source of higher priority (the server's command line) or from a host without
/// a server (`pg_walker`) overrides. `None` for the default, a configuration file or an
/// unknown (empty) source.
pub fn fixed_source(setting: &str, source: &str) -> Option<String> {
    match source {
        "" | "default" | "configuration file" => None,
        other => Some(format!(
            "{setting} is set by \"{other}\", which ALTER SYSTEM does not override"
        )),
    }
}

/// What a decision does to `min_wal_size`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinDecision {
    /// Raise, lower or leave it.
    pub action: Action,
    /// `min_wal_size` now (MB).
    pub current_mb: u64,
    /// The size to set (MB); equal to current when holding.
    pub recommended_mb: u64,
    /// What the rule asks for before the limits (MB).
    pub rule_mb: u64,
    /// The demand per checkpoint cycle the rule was given (bytes).
    pub demand_bytes: u64,
    /// Why.
    pub reason: String,
    /// Why a change is only recommended, never applied: `min_wal_size` comes from a
    /// source ALTER SYSTEM does not override ([`fixed_source`]). `max_wal_size` is
    /// still applied.
    pub fixed: Option<String>,
}

impl MinDecision {
    /// True when `min_wal_size` should change, whether or not it can be.
    pub fn wants_change(&self) -> bool {
        self.action != Action::Hold
    }
}

/// A decision and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// What the algorithm and guards call for.
    pub action: Action,
    /// `max_wal_size` now (MB).
    pub current_mb: u64,
    /// The size to set (MB); equal to current when holding.
    pub recommended_mb: u64,
    /// Why.
    pub reason: String,
    /// What keeps it from being applied now, if anything.
    pub restraint: Option<Restraint>,
    /// The measurements it rests on.
    pub measurements: serde_json::Value,
    /// What it does to `min_wal_size` (`None`: the server's value or the demand is not
    /// known yet).
    pub min: Option<MinDecision>,
    /// `autosizer.max_wal_share` of pg_wal's filesystem (MB, whole segments), when the
    /// filesystem's size is known.
    pub cap_mb: Option<u64>,
}

impl Decision {
    /// True when `min_wal_size` is to change (it should, and its source lets ALTER
    /// SYSTEM change it).
    pub fn changes_min(&self) -> bool {
        self.min
            .as_ref()
            .is_some_and(|m| m.wants_change() && m.fixed.is_none())
    }

    /// The change of `min_wal_size` that is only recommended, if any: it should change
    /// but its source does not let ALTER SYSTEM change it.
    pub fn recommended_min(&self) -> Option<&MinDecision> {
        self.min
            .as_ref()
            .filter(|m| m.wants_change() && m.fixed.is_some())
    }

    /// True when either setting is to change.
    pub fn changes(&self) -> bool {
        self.action != Action::Hold || self.changes_min()
    }

    /// True when the change should be applied now.
    pub fn applies(&self) -> bool {
        self.changes() && self.restraint.is_none()
    }

    /// The history entry recording this decision at `at_us`: `action` (what became of
    /// it), the recommended sizes as the new ones (`min_wal_size` as it is when only
    /// recommended, since no change of it is tried), and `reason`.
    pub fn history_entry(&self, at_us: i64, action: HistoryAction, reason: String) -> HistoryEntry {
        HistoryEntry {
            at_us,
            action,
            old_mb: self.current_mb,
            new_mb: self.recommended_mb,
            reason,
            measurements: self.measurements.clone(),
            min_old_mb: self.min.as_ref().map(|m| m.current_mb),
            min_new_mb: self.min.as_ref().map(|m| {
                if m.fixed.is_some() {
                    m.current_mb
                } else {
                    m.recommended_mb
                }
            }),
        }
    }

    /// The history's action: `max_wal_size`'s when it changes, else `min_wal_size`'s
    /// when that is to change.
    pub fn history_action(&self) -> Action {
        match (&self.action, &self.min) {
            (Action::Hold, Some(m)) if self.changes_min() => m.action,
            (a, _) => *a,
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When (µs since the Unix epoch).
    pub at_us: i64,
    /// What happened.
    pub action: HistoryAction,
    /// Size before (MB).
    pub old_mb: u64,
    /// Size after, or recommended (MB).
    pub new_mb: u64,
    /// Why (and, for a failure, what the server said).
    pub reason: String,
    /// The measurements behind the decision.
    pub measurements: serde_json::Value,
    /// `min_wal_size` before (MB), when the server's value was known.
    #[serde(default)]
    pub min_old_mb: Option<u64>,
    /// `min_wal_size` after, or recommended (MB), when known.
    #[serde(default)]
    pub min_new_mb: Option<u64>,
}

/// Counts of checkpoints seen, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCounts {
    /// Forced by WAL volume.
    pub wal: u64,
    /// Timed.
    pub timed: u64,
    /// Requested with little WAL.
    pub requested: u64,
    /// Shutdown.
    pub shutdown: u64,
}

/// Everything the autosizer remembers (saved in walker's snapshots).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `max_wal_size` when the autosizer first saw the server: the default floor.
    pub initial_mb: Option<u64>,
    last_checkpoint: Option<(u64, i64)>,
    open: Option<OpenWindow>,
    /// Closed windows, oldest first.
    pub windows: VecDeque<Window>,
    /// The adaptive algorithm's average demand.
    pub ewma: Option<f64>,
    /// Consecutive closed windows without a forced checkpoint.
    pub quiet_windows: u32,
    /// When changes were applied (the last hour's).
    pub changes: VecDeque<i64>,
    /// The history, oldest first.
    pub history: VecDeque<HistoryEntry>,
    /// Why the autosizer only recommends (an apply was refused), until `reset`.
    pub blocked: Option<String>,
    /// Checkpoints seen.
    pub checkpoints: CheckpointCounts,
    /// Decisions held back by the cooldown.
    pub deferred_cooldown: u64,
    /// Decisions held back by the hourly cap.
    pub deferred_hourly_cap: u64,
    /// Latest time seen (µs).
    pub last_time_us: i64,
}

fn percentile_of(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    // Nearest rank: the smallest value with at least p% of the values at or below it.
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Rounds `mb` up to whole segments.
fn round_up(mb: u64, seg_mb: u64) -> u64 {
    mb.div_ceil(seg_mb).saturating_mul(seg_mb)
}

/// Rounds `mb` down to whole segments (at least two, PostgreSQL's minimum).
fn round_down(mb: u64, seg_mb: u64) -> u64 {
    (mb / seg_mb).max(2).saturating_mul(seg_mb)
}

/// The `min_wal_size` (MB) whose recycled segments carry the WAL from one checkpoint's
/// redo pointer to the end of the next checkpoint, when `demand` bytes are written per
/// checkpoint cycle.
///
/// After each checkpoint PostgreSQL renames old segments into future ones (recycles)
/// up to segment `redo segment + min_wal_size in segments - 1` at least (more when its
/// own estimate of the distance between checkpoints is larger, never past
/// `max_wal_size`'s). The next recycling happens when the next checkpoint ends: the
/// WAL written until then is the demand times `1 + checkpoint_completion_target` (the
/// next checkpoint starts one cycle on and spreads its writes over that fraction of
/// another). That WAL reaches at most `ceil(bytes / segment)` segments past the redo
/// pointer's (the redo pointer may sit at the end of its segment), so it needs that
/// plus one segment, times `1 + headroom`; at least two segments (PostgreSQL's least
/// `min_wal_size`).
pub fn min_size_for(demand: u64, facts: &Facts, headroom: f64) -> u64 {
    let bytes = demand as f64 * (1.0 + facts.completion_target) * (1.0 + headroom.max(0.0));
    let segs = ((bytes / facts.seg() as f64).ceil() as u64)
        .saturating_add(1)
        .max(2);
    segs.saturating_mul(facts.seg_mb())
}

/// The largest `max_wal_size` (MB, whole segments) within `share` of a filesystem of
/// `total_bytes`: never fewer than two segments (PostgreSQL's least size).
pub fn share_cap_mb(total_bytes: u64, share: f64, seg_mb: u64) -> u64 {
    let mb = (total_bytes as f64 * share.clamp(0.0, 1.0) / MB as f64).floor() as u64;
    round_down(mb, seg_mb.max(1))
}

/// The `max_wal_size` (MB) under which a demand of `demand` bytes per checkpoint cycle
/// never forces a checkpoint: the demand's segments plus two (the request comes one
/// segment early and the redo pointer may sit at a segment's end), times
/// `1 + checkpoint_completion_target`, plus `headroom`, in whole segments.
pub fn size_for(demand: u64, facts: &Facts, headroom: f64) -> u64 {
    let seg = facts.seg();
    let segs = demand.div_ceil(seg).saturating_add(2);
    let bytes =
        segs as f64 * seg as f64 * (1.0 + facts.completion_target) * (1.0 + headroom.max(0.0));
    round_up((bytes / MB as f64).ceil() as u64, facts.seg_mb())
}

impl Model {
    /// Window length (µs).
    fn window_us(cfg: &Config, facts: &Facts) -> i64 {
        let s = if cfg.window_s > 0 {
            cfg.window_s
        } else {
            facts.checkpoint_timeout_s.max(1)
        };
        (s as i64).saturating_mul(1_000_000)
    }

    /// Learns the operator's size the first time facts are known.
    pub fn note_facts(&mut self, facts: &Facts) {
        if self.initial_mb.is_none() {
            self.initial_mb = Some(facts.max_wal_size_mb);
        }
    }

    /// The floor in force (MB).
    pub fn floor_mb(&self, cfg: &Config, facts: &Facts) -> u64 {
        if cfg.floor_mb > 0 {
            cfg.floor_mb
        } else {
            self.initial_mb.unwrap_or(facts.max_wal_size_mb)
        }
    }

    /// A checkpoint record; returns its kind (`None` for the first one seen).
    pub fn observe_checkpoint(
        &mut self,
        redo: u64,
        time_us: i64,
        shutdown: bool,
        facts: &Facts,
    ) -> Option<CheckpointKind> {
        let kind = match self.last_checkpoint {
            None if shutdown => Some(CheckpointKind::Shutdown),
            None => None,
            Some(prev) => Some(classify(prev, redo, time_us, shutdown, facts)),
        };
        self.last_checkpoint = Some((redo, time_us));
        if let Some(k) = kind {
            let c = &mut self.checkpoints;
            match k {
                CheckpointKind::Wal => c.wal += 1,
                CheckpointKind::Timed => c.timed += 1,
                CheckpointKind::Requested => c.requested += 1,
                CheckpointKind::Shutdown => c.shutdown += 1,
            }
            if let Some(w) = self.open.as_mut() {
                match k {
                    CheckpointKind::Wal => w.forced += 1,
                    CheckpointKind::Timed => w.timed += 1,
                    CheckpointKind::Requested => w.requested += 1,
                    CheckpointKind::Shutdown => {}
                }
            }
        }
        kind
    }

    /// The WAL had reached `lsn` at `time_us`; closes the open window when it is over
    /// and returns it.
    pub fn observe_time(
        &mut self,
        time_us: i64,
        lsn: u64,
        cfg: &Config,
        facts: &Facts,
    ) -> Option<Window> {
        if time_us < self.last_time_us {
            // Commit times of concurrent transactions may come slightly out of order.
            return None;
        }
        self.last_time_us = time_us;
        let len = Self::window_us(cfg, facts);
        let Some(open) = self.open.as_ref() else {
            self.open = Some(OpenWindow {
                start_us: time_us,
                start_lsn: lsn,
                forced: 0,
                timed: 0,
                requested: 0,
                checkpointer_requested: facts.checkpointer.map(|c| c.1),
            });
            return None;
        };
        if time_us.saturating_sub(open.start_us) < len {
            return None;
        }
        let duration = time_us.saturating_sub(open.start_us).max(1);
        let bytes = lsn.saturating_sub(open.start_lsn);
        let timeout_us = facts.checkpoint_timeout_s.max(1) as f64 * 1e6;
        let demand = (bytes as f64 * timeout_us / duration as f64) as u64;
        let w = Window {
            start_us: open.start_us,
            end_us: time_us,
            bytes,
            demand,
            forced: open.forced,
            timed: open.timed,
            requested: open.requested,
            checkpointer_requested: open
                .checkpointer_requested
                .zip(facts.checkpointer.map(|c| c.1))
                .map(|(a, b)| b.saturating_sub(a)),
            max_wal_size_mb: Some(facts.max_wal_size_mb),
        };
        self.ewma = Some(match self.ewma {
            None => demand as f64,
            Some(e) if demand as f64 > e => e + EWMA_RISE * (demand as f64 - e),
            Some(e) => e + EWMA_DECAY * (demand as f64 - e),
        });
        if w.forced == 0 {
            // A long quiet stretch counts as the windows it spans.
            let spanned = (duration / len).max(1) as u32;
            self.quiet_windows = self.quiet_windows.saturating_add(spanned);
        } else {
            self.quiet_windows = 0;
        }
        self.windows.push_back(w.clone());
        while self.windows.len() > WINDOWS_KEPT {
            self.windows.pop_front();
        }
        self.open = Some(OpenWindow {
            start_us: time_us,
            start_lsn: lsn,
            forced: 0,
            timed: 0,
            requested: 0,
            checkpointer_requested: facts.checkpointer.map(|c| c.1),
        });
        Some(w)
    }

    /// What the algorithm recommends now (MB), before guards; with the statistic used.
    fn target(&self, cfg: &Config, facts: &Facts, floor: u64) -> (u64, String) {
        let current = facts.max_wal_size_mb;
        let demands: Vec<u64> = self.windows.iter().map(|w| w.demand).collect();
        let forced = self.windows.back().map(|w| w.forced).unwrap_or(0);
        match cfg.algorithm {
            Algorithm::Demand => {
                let peak = demands.iter().copied().max().unwrap_or(0);
                (
                    size_for(peak, facts, cfg.headroom),
                    format!("peak demand {} MB per checkpoint_timeout", peak / MB),
                )
            }
            Algorithm::Percentile => {
                let p = percentile_of(&demands, cfg.percentile);
                (
                    size_for(p, facts, cfg.headroom),
                    format!(
                        "p{} demand {} MB per checkpoint_timeout",
                        cfg.percentile,
                        p / MB
                    ),
                )
            }
            Algorithm::Adaptive => {
                let e = self.ewma.unwrap_or(0.0) as u64;
                (
                    size_for(e, facts, cfg.headroom),
                    format!("adaptive demand {} MB per checkpoint_timeout", e / MB),
                )
            }
            Algorithm::Multiplicative if forced >= cfg.threshold.max(1) => (
                current.saturating_mul(forced as u64 + 1),
                format!("{forced} forced checkpoints: size × {}", forced + 1),
            ),
            Algorithm::Additive if forced >= cfg.threshold.max(1) => (
                current.saturating_add((forced as u64).saturating_mul(floor.max(facts.seg_mb()))),
                format!(
                    "{forced} forced checkpoints: size + {forced} × {} MB",
                    floor.max(facts.seg_mb())
                ),
            ),
            Algorithm::Multiplicative | Algorithm::Additive => (
                current,
                format!(
                    "{forced} forced checkpoints, below the threshold {}",
                    cfg.threshold
                ),
            ),
        }
    }

    /// Decides what to do now: `max_wal_size` (within the maximum and the share of
    /// pg_wal's filesystem), then `min_wal_size` beside it, then what holds the change
    /// back.
    pub fn decide(&self, cfg: &Config, facts: &Facts, now_us: i64) -> Decision {
        let cap = facts
            .fs_total_bytes
            .map(|t| share_cap_mb(t, cfg.max_wal_share, facts.seg_mb()));
        let mut d = self.decide_max(cfg, facts, cap);
        d.cap_mb = cap;
        d.measurements["cap_mb"] = serde_json::json!(cap);
        d.measurements["fs_total_bytes"] = serde_json::json!(facts.fs_total_bytes);
        d.measurements["max_wal_share"] = serde_json::json!(cfg.max_wal_share);
        d.min = self.decide_min(cfg, facts, d.recommended_mb);
        if let Some(m) = &d.min {
            d.measurements["min_wal_size"] = serde_json::json!({
                "current_mb": m.current_mb,
                "recommended_mb": m.recommended_mb,
                "rule_mb": m.rule_mb,
                "demand_bytes": m.demand_bytes,
                "action": m.action.name(),
                "held_back_by": m.fixed,
            });
        }
        if d.changes() {
            d.restraint = self.restraint(cfg, facts, now_us);
        }
        d
    }

    /// The demand the sizes are made for: the algorithm's statistic (the peak for the
    /// algorithms that count forced checkpoints).
    fn demand_basis(&self, cfg: &Config) -> u64 {
        let demands: Vec<u64> = self.windows.iter().map(|w| w.demand).collect();
        match cfg.algorithm {
            Algorithm::Percentile => percentile_of(&demands, cfg.percentile),
            Algorithm::Adaptive => self.ewma.unwrap_or(0.0) as u64,
            _ => demands.iter().copied().max().unwrap_or(0),
        }
    }

    /// What to do with `min_wal_size`, given the `max_wal_size` the decision leaves
    /// (`max_mb`): raised to [`min_size_for`] the demand (never above `max_mb`, where
    /// PostgreSQL stops recycling anyway); lowered when it is above `max_mb`, or under
    /// the shrink rules (`autosizer.shrink` and its quiet windows).
    fn decide_min(&self, cfg: &Config, facts: &Facts, max_mb: u64) -> Option<MinDecision> {
        let current = facts.min_wal_size_mb?;
        self.windows.back()?;
        let seg_mb = facts.seg_mb();
        let basis = self.demand_basis(cfg);
        let rule = min_size_for(basis, facts, cfg.headroom);
        let want = rule.min(round_down(max_mb, seg_mb));
        let why = format!(
            "recycled segments must carry (1 + checkpoint_completion_target) × {} MB of demand per checkpoint_timeout, plus headroom {}: {rule} MB{}",
            basis / MB,
            cfg.headroom,
            if want < rule { format!(", at most max_wal_size {max_mb} MB") } else { String::new() }
        );
        let (action, new, reason) = if want > current {
            (Action::Grow, want, why)
        } else if want < current && current > max_mb {
            (
                Action::Shrink,
                want,
                format!("min_wal_size {current} MB is above max_wal_size {max_mb} MB; {why}"),
            )
        } else if want < current && cfg.shrink && self.quiet_windows >= cfg.shrink_windows {
            (
                Action::Shrink,
                want,
                format!(
                    "{} quiet windows (needs {}); {why}",
                    self.quiet_windows, cfg.shrink_windows
                ),
            )
        } else {
            (Action::Hold, current, why)
        };
        Some(MinDecision {
            action,
            current_mb: current,
            recommended_mb: new,
            rule_mb: rule,
            demand_bytes: basis,
            reason,
            fixed: fixed_source("min_wal_size", &facts.min_source),
        })
    }

    /// Why the autosizer only recommends, if it does: an earlier change failed
    /// ([`Model::blocked`]), or `max_wal_size` comes from a source ALTER SYSTEM does not
    /// override ([`fixed_source`]), so no change is tried.
    pub fn recommend_only(&self, facts: Option<&Facts>) -> Option<String> {
        self.blocked
            .clone()
            .or_else(|| facts.and_then(|f| fixed_source("max_wal_size", &f.source)))
    }

    /// What keeps a change from being applied now, if anything.
    fn restraint(&self, cfg: &Config, facts: &Facts, now_us: i64) -> Option<Restraint> {
        if !cfg.enabled {
            Some(Restraint::Disabled)
        } else if let Some(why) = self.recommend_only(Some(facts)) {
            Some(Restraint::RecommendOnly(why))
        } else if cfg.dry_run {
            Some(Restraint::DryRun)
        } else if self.changes.back().is_some_and(|&t| {
            now_us.saturating_sub(t) < (cfg.cooldown_s as i64).saturating_mul(1_000_000)
        }) {
            Some(Restraint::Cooldown)
        } else if self.changes_last_hour(now_us) >= cfg.max_changes_per_hour as usize {
            Some(Restraint::HourlyCap)
        } else {
            None
        }
    }

    /// What to do with `max_wal_size` (no restraint yet); `cap`: the share of pg_wal's
    /// filesystem it may have (MB), when known.
    fn decide_max(&self, cfg: &Config, facts: &Facts, cap: Option<u64>) -> Decision {
        let current = facts.max_wal_size_mb;
        let seg_mb = facts.seg_mb();
        let floor = self.floor_mb(cfg, facts);
        let last = self.windows.back();
        let forced = last.map(|w| w.forced).unwrap_or(0);
        let (target, basis) = self.target(cfg, facts, floor);
        let needed = size_for(
            match cfg.algorithm {
                Algorithm::Demand => self.windows.iter().map(|w| w.demand).max().unwrap_or(0),
                _ => last.map(|w| w.demand).unwrap_or(0),
            },
            facts,
            0.0,
        );
        let mut measurements = serde_json::json!({
            "windows": self.windows.len(),
            "last_window": last,
            "forced_in_last_window": forced,
            "quiet_windows": self.quiet_windows,
            "ewma_demand_bytes": self.ewma.map(|e| e as u64),
            "checkpoint_segments": checkpoint_segments(current, facts.completion_target, facts.seg()),
            "forced_checkpoint_distance_bytes": forced_distance(facts),
            "needed_without_headroom_mb": needed,
            "algorithm_target_mb": target,
            "floor_mb": floor,
            "maximum_mb": cfg.maximum_mb,
            "free_bytes": facts.free_bytes,
            "checkpointer": facts.checkpointer.map(|(t, r)| serde_json::json!({"timed": t, "requested": r})),
        });
        let hold = |reason: String, measurements: serde_json::Value| Decision {
            action: Action::Hold,
            current_mb: current,
            recommended_mb: current,
            reason,
            restraint: None,
            measurements,
            min: None,
            cap_mb: None,
        };
        if let Some(cap) = cap.filter(|&c| current > c) {
            // The operator's limit: lowered to it whatever the shrink rules and the
            // floor say.
            return Decision {
                action: Action::Shrink,
                current_mb: current,
                recommended_mb: cap,
                reason: format!(
                    "max_wal_size {current} MB exceeds autosizer.max_wal_share {} of pg_wal's filesystem ({} MB): lower it to {cap} MB",
                    cfg.max_wal_share,
                    facts.fs_total_bytes.unwrap_or(0) / MB
                ),
                restraint: None,
                measurements,
                min: None,
                cap_mb: None,
            };
        }
        if last.is_none() {
            return hold("no complete window yet".into(), measurements);
        }
        let pressure = forced >= cfg.threshold.max(1);
        let (action, mut new, mut reason) = if pressure
            || (cfg.algorithm.uses_demand() && needed > current)
        {
            let mut new = round_up(target, seg_mb);
            let mut why = if pressure {
                format!("{forced} checkpoints forced by WAL volume in the last window (threshold {}); {basis}", cfg.threshold)
            } else {
                format!("{basis} needs {needed} MB before checkpoints are forced")
            };
            if new <= current {
                // Forced checkpoints although the algorithm sees enough room: grow by half.
                new = round_up(current.saturating_add(current / 2), seg_mb);
                why.push_str(
                    "; the algorithm's size is not above the current one, so grow by half",
                );
            }
            (Action::Grow, new, why)
        } else if cfg.shrink && self.quiet_windows >= cfg.shrink_windows && current > floor {
            let by_factor = round_down((current as f64 * cfg.shrink_factor) as u64, seg_mb);
            let keep = if cfg.algorithm.uses_demand() {
                round_up(target, seg_mb)
            } else {
                0
            };
            let new = by_factor.max(floor).max(keep);
            (
                Action::Shrink,
                new,
                format!(
                    "{} quiet windows without a forced checkpoint (needs {}); shrink by factor {} to no less than the floor {floor} MB{}",
                    self.quiet_windows,
                    cfg.shrink_windows,
                    cfg.shrink_factor,
                    if keep > 0 { format!(" and the {basis} ({keep} MB)") } else { String::new() }
                ),
            )
        } else {
            return hold(
                format!("no forced checkpoints and enough room ({basis})"),
                measurements,
            );
        };
        if action == Action::Grow {
            if new > cfg.maximum_mb {
                new = round_down(cfg.maximum_mb, seg_mb).max(current);
                reason.push_str(&format!(
                    "; capped at autosizer.maximum {} MB",
                    cfg.maximum_mb
                ));
            }
            if let Some(cap) = cap.filter(|&c| new > c) {
                new = cap.max(current);
                reason.push_str(&format!(
                    "; capped at autosizer.max_wal_share {} of pg_wal's filesystem ({} MB): {cap} MB",
                    cfg.max_wal_share,
                    facts.fs_total_bytes.unwrap_or(0) / MB
                ));
            }
            if let Some(free) = facts.free_bytes {
                // Never let the growth take more than half the free space of pg_wal.
                let allowed = current.saturating_add(free / 2 / MB);
                if new > allowed {
                    new = round_down(allowed, seg_mb).max(current);
                    reason.push_str(&format!(
                        "; capped by the free space on pg_wal's filesystem ({} MB free)",
                        free / MB
                    ));
                }
            }
            if new <= current {
                return hold(format!("{reason}; no room to grow"), measurements);
            }
        } else if new >= current {
            return hold(format!("{reason}; nothing to shrink"), measurements);
        }
        measurements["proposed_mb"] = serde_json::json!(new);
        Decision {
            action,
            current_mb: current,
            recommended_mb: new,
            reason,
            restraint: None,
            measurements,
            min: None,
            cap_mb: None,
        }
    }

    /// Changes applied in the hour before `now_us`.
    pub fn changes_last_hour(&self, now_us: i64) -> usize {
        self.changes
            .iter()
            .filter(|&&t| now_us.saturating_sub(t) < 3_600_000_000)
            .count()
    }

    /// Records an applied change.
    pub fn applied(&mut self, now_us: i64) {
        self.changes.push_back(now_us);
        while self
            .changes
            .front()
            .is_some_and(|&t| now_us.saturating_sub(t) >= 3_600_000_000)
        {
            self.changes.pop_front();
        }
        self.quiet_windows = 0;
    }

    /// Adds a history entry and drops entries past the retention or the cap.
    pub fn remember(&mut self, entry: HistoryEntry, retention_s: u64) {
        let now = entry.at_us;
        self.history.push_back(entry);
        let keep_from = now.saturating_sub((retention_s as i64).saturating_mul(1_000_000));
        while self.history.front().is_some_and(|e| e.at_us < keep_from)
            || self.history.len() > HISTORY_CAP
        {
            self.history.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(max_mb: u64) -> Facts {
        Facts {
            max_wal_size_mb: max_mb,
            source: "configuration file".into(),
            sourcefile: String::new(),
            checkpoint_timeout_s: 30,
            completion_target: 0.9,
            segment_bytes: 16 * MB,
            free_bytes: None,
            fs_total_bytes: None,
            fs_error: None,
            min_wal_size_mb: None,
            min_source: "configuration file".into(),
            checkpointer: None,
        }
    }

    fn cfg() -> Config {
        Config {
            enabled: true,
            algorithm: Algorithm::Demand,
            maximum_mb: 65536,
            floor_mb: 0,
            threshold: 1,
            headroom: 0.25,
            percentile: 90.0,
            shrink: false,
            shrink_factor: 0.75,
            shrink_windows: 3,
            cooldown_s: 60,
            max_changes_per_hour: 4,
            dry_run: false,
            retention_s: 86_400,
            window_s: 10,
            max_wal_share: 0.5,
        }
    }

    const S: i64 = 1_000_000;

    #[test]
    fn checkpoint_segments_match_postgres() {
        // 1024 MB = 64 segments; 64 / 1.9 = 33.68 -> 33.
        assert_eq!(checkpoint_segments(1024, 0.9, 16 * MB), 33);
        // 32 MB = 2 segments; 2 / 1.9 -> 1 (never below 1).
        assert_eq!(checkpoint_segments(32, 0.9, 16 * MB), 1);
        // 96 MB = 6 segments; 6 / 1.5 = 4.
        assert_eq!(checkpoint_segments(96, 0.5, 16 * MB), 4);
        // The forced distance is CheckPointSegments - 2 segments (at least one).
        assert_eq!(forced_distance(&facts(1024)), 31 * 16 * MB);
        assert_eq!(forced_distance(&facts(32)), 16 * MB);
    }

    #[test]
    fn classification() {
        let f = facts(1024); // forced distance 496 MB, timeout 30 s
        let prev = (0u64, 100 * S);
        assert_eq!(
            classify(prev, 600 * MB, 110 * S, false, &f),
            CheckpointKind::Wal
        );
        assert_eq!(
            classify(prev, MB, 110 * S, false, &f),
            CheckpointKind::Requested
        );
        // 29 s later (within the 2 s slack of 30 s) is timed, whatever the distance.
        assert_eq!(
            classify(prev, 600 * MB, 129 * S, false, &f),
            CheckpointKind::Timed
        );
        assert_eq!(
            classify(prev, MB, 127 * S, false, &f),
            CheckpointKind::Requested
        );
        assert_eq!(
            classify(prev, MB, 110 * S, true, &f),
            CheckpointKind::Shutdown
        );
    }

    #[test]
    fn size_for_hand_derived() {
        let f = facts(32);
        // 60 MB per cycle = 3.75 -> 4 segments, + 2 = 6 segments = 96 MB;
        // × 1.9 = 182.4 MB; × 1.25 = 228 MB -> 15 segments = 240 MB.
        assert_eq!(size_for(60 * MB, &f, 0.25), 240);
        // Without headroom: 182.4 -> 183 -> 12 segments = 192 MB.
        assert_eq!(size_for(60 * MB, &f, 0.0), 192);
        // No demand: 2 segments × 1.9 = 60.8 -> 61 -> 64 MB.
        assert_eq!(size_for(0, &f, 0.0), 64);
    }

    #[test]
    fn min_size_for_hand_derived() {
        let f = facts(32);
        // 60 MB per cycle × 1.9 = 114 MB × 1.25 = 142.5 MB = 8.9 segments -> 9, + 1 for
        // a redo pointer at a segment's end = 10 segments = 160 MB.
        assert_eq!(min_size_for(60 * MB, &f, 0.25), 160);
        // Without headroom: 114 MB = 7.1 segments -> 8, + 1 = 9 = 144 MB.
        assert_eq!(min_size_for(60 * MB, &f, 0.0), 144);
        // No demand: 0 + 1 segment, raised to PostgreSQL's least, two = 32 MB.
        assert_eq!(min_size_for(0, &f, 0.25), 32);
        // 1 GB segments (initdb --wal-segsize=1024), completion target 0.5: 3000 MB
        // × 1.5 = 4500 MB = 4.4 segments -> 5, + 1 = 6 GB.
        let mut g = facts(32);
        g.segment_bytes = 1024 * MB;
        g.completion_target = 0.5;
        assert_eq!(min_size_for(3000 * MB, &g, 0.0), 6 * 1024);
    }

    #[test]
    fn share_cap_hand_derived() {
        // Half of 10 GiB = 5120 MB = 320 segments.
        assert_eq!(share_cap_mb(10 * 1024 * MB, 0.5, 16), 5120);
        // A tenth of 1000 MB = 100 MB -> 6 segments = 96 MB.
        assert_eq!(share_cap_mb(1000 * MB, 0.1, 16), 96);
        // 1% of 1000 MB = 10 MB: fewer than two segments; PostgreSQL's least, 32 MB.
        assert_eq!(share_cap_mb(1000 * MB, 0.01, 16), 32);
        // A 258 GB filesystem (264,212,480 kB blocks × 1 kB), the whole of it: 258020 MB
        // -> 16126 segments = 258016 MB.
        assert_eq!(share_cap_mb(264_212_480 * 1024, 1.0, 16), 258_016);
    }

    #[test]
    fn min_wal_size_rises_with_demand_beside_max() {
        let (c, mut f) = (cfg(), facts(32));
        f.min_wal_size_mb = Some(32);
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 20, 0); // demand 60 MB per 30 s
        let d = m.decide(&c, &f, 10 * S);
        // max: 240 (size_for_hand_derived); min: 160 (min_size_for_hand_derived).
        assert_eq!((d.action, d.recommended_mb), (Action::Grow, 240));
        let min = d.min.clone().unwrap();
        assert_eq!(
            (min.action, min.current_mb, min.recommended_mb),
            (Action::Grow, 32, 160)
        );
        assert!(d.applies());
        // max_wal_size already large (holds), min_wal_size still too small: min alone.
        f.max_wal_size_mb = 1024;
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
        assert!(d.changes_min() && d.applies());
        assert_eq!(d.history_action(), Action::Grow);
        assert_eq!(d.min.unwrap().recommended_mb, 160);
        // Never above the max_wal_size the decision leaves: 128 MB max, rule 160.
        f.max_wal_size_mb = 128;
        let mut c2 = c;
        c2.maximum_mb = 128;
        let d = m.decide(&c2, &f, 10 * S);
        assert_eq!(d.recommended_mb, 128);
        let min = d.min.unwrap();
        assert_eq!((min.rule_mb, min.recommended_mb), (160, 128));
        // Above the need: kept while shrinking is off, lowered when it is on and the
        // windows are quiet (the last one is: no forced checkpoint).
        f.max_wal_size_mb = 1024;
        f.min_wal_size_mb = Some(512);
        assert_eq!(m.decide(&c, &f, 10 * S).min.unwrap().action, Action::Hold);
        let mut c3 = c;
        c3.shrink = true;
        c3.shrink_windows = 1;
        let min = m.decide(&c3, &f, 10 * S).min.unwrap();
        assert_eq!((min.action, min.recommended_mb), (Action::Shrink, 160));
        // Above max_wal_size: lowered even with shrinking off.
        f.min_wal_size_mb = Some(2048);
        let min = m.decide(&c, &f, 10 * S).min.unwrap();
        assert_eq!((min.action, min.recommended_mb), (Action::Shrink, 160));
        // Unknown min_wal_size: nothing said about it.
        f.min_wal_size_mb = None;
        assert_eq!(m.decide(&c, &f, 10 * S).min, None);
    }

    #[test]
    fn a_min_wal_size_from_the_command_line_is_only_recommended() {
        let (c, mut f) = (cfg(), facts(32));
        f.min_wal_size_mb = Some(32);
        f.min_source = "command line".into();
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 20, 0); // demand 60 MB per 30 s
        let d = m.decide(&c, &f, 10 * S);
        // max_wal_size (configuration file) still grows and is applied: 240 MB.
        assert_eq!((d.action, d.recommended_mb), (Action::Grow, 240));
        assert_eq!(m.recommend_only(Some(&f)), None);
        assert!(d.applies() && !d.changes_min());
        // min_wal_size: 160 MB recommended, held back by its source.
        let min = d.recommended_min().unwrap();
        assert_eq!((min.action, min.recommended_mb), (Action::Grow, 160));
        assert_eq!(
            min.fixed.as_deref(),
            Some("min_wal_size is set by \"command line\", which ALTER SYSTEM does not override")
        );
        // The history of the applied change keeps min_wal_size as it is.
        let e = d.history_entry(10 * S, HistoryAction::Grow, String::new());
        assert_eq!((e.old_mb, e.new_mb), (32, 240));
        assert_eq!((e.min_old_mb, e.min_new_mb), (Some(32), Some(32)));
        // With max_wal_size large enough, nothing is applied at all: the history's
        // action is max_wal_size's hold, and the min recommendation stays.
        f.max_wal_size_mb = 1024;
        let d = m.decide(&c, &f, 10 * S);
        assert!(!d.changes() && !d.applies());
        assert_eq!(d.history_action(), Action::Hold);
        assert_eq!(d.recommended_min().unwrap().recommended_mb, 160);
        // From a configuration file, the same demand changes it.
        f.min_source = "configuration file".into();
        assert!(m.decide(&c, &f, 10 * S).changes_min());
    }

    #[test]
    fn share_of_the_filesystem_caps_max_wal_size() {
        let mut c = cfg();
        let mut f = facts(32);
        f.min_wal_size_mb = Some(32);
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 20, 0); // wants 240
                                                    // A 1000 MB filesystem, a tenth: 96 MB.
        f.fs_total_bytes = Some(1000 * MB);
        c.max_wal_share = 0.1;
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(
            (d.action, d.recommended_mb, d.cap_mb),
            (Action::Grow, 96, Some(96))
        );
        assert!(
            d.reason.contains("autosizer.max_wal_share 0.1"),
            "{}",
            d.reason
        );
        // min_wal_size stays within the capped max: rule 160, at most 96.
        assert_eq!(d.min.unwrap().recommended_mb, 96);
        // A current size above the cap is lowered to it, shrink off and floor 32 or not.
        f.max_wal_size_mb = 400;
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(
            (d.action, d.recommended_mb),
            (Action::Shrink, 96),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("exceeds autosizer.max_wal_share"),
            "{}",
            d.reason
        );
        // Exactly at the cap: hold, with the cap named.
        f.max_wal_size_mb = 96;
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(d.action, Action::Hold);
        assert!(
            d.reason.contains("max_wal_share") && d.reason.contains("no room"),
            "{}",
            d.reason
        );
        // Unknown filesystem size: no cap.
        f.fs_total_bytes = None;
        assert_eq!(m.decide(&c, &f, 10 * S).cap_mb, None);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile_of(&v, 90.0), 90);
        assert_eq!(percentile_of(&v, 91.0), 100);
        assert_eq!(percentile_of(&v, 50.0), 50);
        assert_eq!(percentile_of(&v, 1.0), 10);
        assert_eq!(percentile_of(&[], 50.0), 0);
    }

    /// Feeds one 10 s window writing `mb` MB with `forced` WAL-forced checkpoints.
    fn window(
        m: &mut Model,
        c: &Config,
        f: &Facts,
        start: i64,
        lsn: &mut u64,
        mb: u64,
        forced: u32,
    ) -> Window {
        if m.open.is_none() {
            m.observe_time(start, *lsn, c, f);
        }
        let mut redo = m.last_checkpoint.map(|c| c.0).unwrap_or(*lsn);
        for i in 0..forced {
            redo += forced_distance(f) + MB;
            if m.last_checkpoint.is_none() {
                m.last_checkpoint = Some((*lsn, start));
            }
            m.observe_checkpoint(redo, start + (i as i64 + 1) * S, false, f);
        }
        *lsn += mb * MB;
        m.observe_time(start + 10 * S, *lsn, c, f)
            .expect("window closes")
    }

    #[test]
    fn windows_measure_demand_per_timeout() {
        let (c, f) = (cfg(), facts(32));
        let mut m = Model::default();
        let mut lsn = 0;
        // 20 MB in 10 s is 60 MB per 30 s checkpoint_timeout.
        let w = window(&mut m, &c, &f, 0, &mut lsn, 20, 0);
        assert_eq!((w.bytes, w.demand), (20 * MB, 60 * MB));
        // Not over until 10 s passed.
        assert_eq!(m.observe_time(15 * S, lsn, &c, &f), None);
        assert_eq!(m.quiet_windows, 1);
    }

    #[test]
    fn demand_grows_before_checkpoints_are_forced() {
        let (c, f) = (cfg(), facts(32));
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 20, 0);
        let d = m.decide(&c, &f, 10 * S);
        // Needs 192 MB (see size_for_hand_derived) > 32: grow to 240.
        assert_eq!(
            (d.action, d.recommended_mb, d.restraint.clone()),
            (Action::Grow, 240, None)
        );
        assert!(d.applies());
    }

    #[test]
    fn manual_checkpoints_with_little_wal_do_not_grow() {
        let (c, f) = (cfg(), facts(1024));
        let mut m = Model::default();
        m.note_facts(&f);
        m.observe_time(0, 0, &c, &f);
        m.observe_checkpoint(0, 0, false, &f);
        for i in 1..=5 {
            assert_eq!(
                m.observe_checkpoint(i * MB, i as i64 * S, false, &f),
                Some(CheckpointKind::Requested)
            );
        }
        m.observe_time(10 * S, 6 * MB, &c, &f).unwrap();
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
        assert_eq!(m.checkpoints.requested, 5);
    }

    #[test]
    fn multiplicative_and_additive() {
        let f = facts(64);
        let mut c = cfg();
        c.threshold = 2;
        for (alg, want) in [
            (Algorithm::Multiplicative, 64 * 3),
            (Algorithm::Additive, 64 + 2 * 64),
        ] {
            c.algorithm = alg;
            let mut m = Model::default();
            m.note_facts(&f);
            let mut lsn = 0;
            window(&mut m, &c, &f, 0, &mut lsn, 1, 1);
            assert_eq!(
                m.decide(&c, &f, 10 * S).action,
                Action::Hold,
                "1 forced < threshold 2"
            );
            window(&mut m, &c, &f, 10 * S, &mut lsn, 1, 2);
            let d = m.decide(&c, &f, 20 * S);
            assert_eq!(
                (d.action, d.recommended_mb),
                (Action::Grow, want),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn adaptive_rises_fast_and_decays_slowly() {
        let (mut c, f) = (cfg(), facts(32));
        c.algorithm = Algorithm::Adaptive;
        let mut m = Model::default();
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 10, 0); // demand 30 MB
        assert_eq!(m.ewma, Some((30 * MB) as f64));
        window(&mut m, &c, &f, 10 * S, &mut lsn, 30, 0); // demand 90: 30 + 0.5 × 60 = 60
        assert_eq!(m.ewma, Some((60 * MB) as f64));
        window(&mut m, &c, &f, 20 * S, &mut lsn, 0, 0); // demand 0: 60 - 0.1 × 60 = 54
        assert_eq!(m.ewma.map(|e| (e / MB as f64).round()), Some(54.0));
    }

    #[test]
    fn guards_maximum_free_space_cooldown_cap_dry_run() {
        let mut c = cfg();
        let mut f = facts(32);
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        window(&mut m, &c, &f, 0, &mut lsn, 20, 0); // wants 240
        c.maximum_mb = 100;
        let d = m.decide(&c, &f, 10 * S);
        assert_eq!(
            d.recommended_mb, 96,
            "capped at the maximum, in whole segments"
        );
        c.maximum_mb = 65536;
        f.free_bytes = Some(100 * MB); // half is 50 MB: 32 + 50 = 82 -> 80
        assert_eq!(m.decide(&c, &f, 10 * S).recommended_mb, 80);
        f.free_bytes = Some(20 * MB); // 32 + 10 -> 32: no room
        assert_eq!(m.decide(&c, &f, 10 * S).action, Action::Hold);
        f.free_bytes = None;
        m.applied(10 * S);
        assert_eq!(
            m.decide(&c, &f, 20 * S).restraint,
            Some(Restraint::Cooldown)
        );
        assert_eq!(
            m.decide(&c, &f, 71 * S).restraint,
            None,
            "60 s cooldown over"
        );
        for t in [100, 200, 300] {
            m.applied(t * S);
        }
        assert_eq!(
            m.decide(&c, &f, 400 * S).restraint,
            Some(Restraint::HourlyCap),
            "4 changes within the hour"
        );
        assert_eq!(
            m.decide(&c, &f, 3_611 * S).restraint,
            None,
            "the first one left the hour"
        );
        c.dry_run = true;
        assert_eq!(
            m.decide(&c, &f, 4_000 * S).restraint,
            Some(Restraint::DryRun)
        );
        m.blocked = Some("ALTER SYSTEM is disabled".into());
        assert!(matches!(
            m.decide(&c, &f, 4_000 * S).restraint,
            Some(Restraint::RecommendOnly(_))
        ));
    }

    #[test]
    fn a_size_alter_system_cannot_override_is_only_recommended_from_the_start() {
        let c = cfg();
        let mut f = facts(256);
        let mut m = Model::default();
        m.note_facts(&f);
        let mut lsn = 0;
        // A window whose demand needs more than 256 MB: a change is due.
        window(&mut m, &c, &f, 10 * S, &mut lsn, 600, 3);
        assert!(m.decide(&c, &f, 20 * S).changes());
        assert_eq!(
            m.decide(&c, &f, 20 * S).restraint,
            None,
            "a configuration file"
        );
        f.source = "command line".into();
        assert_eq!(
            m.decide(&c, &f, 20 * S).restraint,
            Some(Restraint::RecommendOnly(
                "max_wal_size is set by \"command line\", which ALTER SYSTEM does not override"
                    .into()
            ))
        );
        f.source = "pg_walker (no server)".into();
        assert!(matches!(
            m.decide(&c, &f, 20 * S).restraint,
            Some(Restraint::RecommendOnly(ref w)) if w.contains("pg_walker")
        ));
        f.source = "default".into();
        assert_eq!(m.decide(&c, &f, 20 * S).restraint, None);
    }

    #[test]
    fn shrinks_only_when_enabled_after_quiet_windows_and_never_below_floor() {
        let mut c = cfg();
        let f0 = facts(256);
        let mut m = Model::default();
        m.note_facts(&f0); // floor 256 (the operator's size)
        let mut f = facts(1024); // grown since
        let mut lsn = 0;
        for i in 0..3 {
            window(&mut m, &c, &f, i * 10 * S, &mut lsn, 0, 0);
        }
        assert_eq!(m.quiet_windows, 3);
        assert_eq!(
            m.decide(&c, &f, 30 * S).action,
            Action::Hold,
            "shrink is off by default"
        );
        c.shrink = true;
        let d = m.decide(&c, &f, 30 * S);
        // 1024 × 0.75 = 768, above the floor 256 and the demand's 64.
        assert_eq!(
            (d.action, d.recommended_mb),
            (Action::Shrink, 768),
            "{}",
            d.reason
        );
        f.max_wal_size_mb = 300;
        // 300 × 0.75 = 225 -> 224, below the floor: 256.
        assert_eq!(m.decide(&c, &f, 30 * S).recommended_mb, 256);
        f.max_wal_size_mb = 256;
        assert_eq!(
            m.decide(&c, &f, 30 * S).action,
            Action::Hold,
            "at the floor"
        );
        // An explicit floor wins over the operator's size.
        c.floor_mb = 512;
        f.max_wal_size_mb = 1024;
        assert_eq!(m.decide(&c, &f, 30 * S).recommended_mb, 768);
        c.floor_mb = 900;
        assert_eq!(m.decide(&c, &f, 30 * S).recommended_mb, 900);
    }

    #[test]
    fn config_rejects_floor_above_maximum() {
        let mut c = cfg();
        c.floor_mb = 2048;
        c.maximum_mb = 1024;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("above autosizer.maximum"));
    }

    #[test]
    fn a_history_entry_carries_the_decision() {
        let d = Decision {
            action: Action::Grow,
            current_mb: 1024,
            recommended_mb: 1536,
            reason: "forced checkpoints".into(),
            restraint: None,
            measurements: serde_json::json!({"wal_mb": 3}),
            min: Some(MinDecision {
                action: Action::Grow,
                current_mb: 80,
                recommended_mb: 96,
                rule_mb: 96,
                demand_bytes: 0,
                reason: String::new(),
                fixed: None,
            }),
            cap_mb: None,
        };
        let e = d.history_entry(42, HistoryAction::Recommend, "why".into());
        assert_eq!(
            e,
            HistoryEntry {
                at_us: 42,
                action: HistoryAction::Recommend,
                old_mb: 1024,
                new_mb: 1536,
                reason: "why".into(),
                measurements: serde_json::json!({"wal_mb": 3}),
                min_old_mb: Some(80),
                min_new_mb: Some(96),
            }
        );
    }

    #[test]
    fn history_actions_keep_the_words_snapshots_hold() {
        // Entries as releases that stored the action as a string wrote them.
        for (word, action) in [
            ("grow", HistoryAction::Grow),
            ("shrink", HistoryAction::Shrink),
            ("recommend", HistoryAction::Recommend),
            ("failed", HistoryAction::Failed),
        ] {
            let stored = format!(
                r#"{{"at_us":7,"action":"{word}","old_mb":1,"new_mb":2,"reason":"r","measurements":null}}"#
            );
            let e: HistoryEntry = serde_json::from_str(&stored).unwrap();
            assert_eq!((e.action, e.action.name()), (action, word));
            let back = serde_json::to_value(&e).unwrap();
            assert_eq!(back["action"], word);
        }
        assert!(serde_json::from_str::<HistoryAction>(r#""resize""#).is_err());
    }

    #[test]
    fn history_keeps_retention_and_cap() {
        let mut m = Model::default();
        let e = |t: i64| HistoryEntry {
            at_us: t,
            action: HistoryAction::Grow,
            old_mb: 1,
            new_mb: 2,
            reason: String::new(),
            measurements: serde_json::Value::Null,
            min_old_mb: None,
            min_new_mb: None,
        };
        m.remember(e(0), 100);
        m.remember(e(50 * S), 100);
        m.remember(e(101 * S), 100);
        assert_eq!(
            m.history.iter().map(|h| h.at_us / S).collect::<Vec<_>>(),
            vec![50, 101]
        );
        for i in 0..HISTORY_CAP as i64 + 10 {
            m.remember(e(200 * S + i), 1_000_000);
        }
        assert_eq!(m.history.len(), HISTORY_CAP);
    }
}
