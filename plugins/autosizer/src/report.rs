//! What the SQL functions, the history view, NOTIFY and Prometheus show: JSON and text
//! built from the model (pure).

use crate::model::{
    Action, Config, Decision, Facts, HistoryAction, HistoryEntry, Model, Restraint, MB,
};
use serde_json::{json, Value};
use walker_abi::dates::UtcTime;
use walker_abi::Envelope;

/// The saved state's envelope (format 1: JSON of the model follows, `AUTOSIZER1\n`).
pub const STATE: Envelope = Envelope {
    tag: "AUTOSIZER",
    current: 1,
    oldest: 1,
};
/// Why nothing is decided before the services worker published the server's settings.
pub const NO_FACTS: &str = "waiting for the server's settings: the walker services worker publishes them (see walker.status.services_pid; it connects to walker.database)";

/// `us` (µs since the Unix epoch) as an ISO 8601 UTC time, to the second.
pub fn at(us: i64) -> String {
    UtcTime::from_unix_micros(us).iso8601()
}

fn restraint_text(r: &Option<Restraint>) -> Option<String> {
    r.as_ref().map(|r| match r {
        Restraint::Disabled => "autosizer.enabled is off".to_string(),
        Restraint::DryRun => "dry run (autosizer.dry_run)".to_string(),
        Restraint::RecommendOnly(m) => format!("recommend-only: {m}"),
        Restraint::Cooldown => "within autosizer.cooldown of the last change".to_string(),
        Restraint::HourlyCap => "autosizer.max_changes_per_hour reached".to_string(),
    })
}

/// What a decision changes and why, in one line: `max_wal_size`'s change (or that it
/// stays), then `min_wal_size`'s when it changes.
pub fn full_reason(d: &Decision) -> String {
    let mut s = if d.action == Action::Hold {
        format!("max_wal_size stays {} MB: {}", d.current_mb, d.reason)
    } else {
        format!(
            "max_wal_size {} MB -> {} MB: {}",
            d.current_mb, d.recommended_mb, d.reason
        )
    };
    if let Some(m) = d.min.as_ref().filter(|_| d.changes_min()) {
        s.push_str(&format!(
            "; min_wal_size {} MB -> {} MB: {}",
            m.current_mb, m.recommended_mb, m.reason
        ));
    }
    if let Some(m) = d.recommended_min() {
        s.push_str(&format!(
            "; min_wal_size {} MB -> {} MB recommended, not set ({}): {}",
            m.current_mb,
            m.recommended_mb,
            m.fixed.as_deref().unwrap_or_default(),
            m.reason
        ));
    }
    s
}

/// A decision as JSON: current, recommended, action, reason, what holds it back, numbers;
/// `min_wal_size` beside it; the cap from pg_wal's filesystem.
pub fn decision(d: &Decision) -> Value {
    json!({
        "current_mb": d.current_mb,
        "recommended_mb": d.recommended_mb,
        "action": d.action.name(),
        "reason": d.reason,
        "min_wal_size": d.min.as_ref().map(|m| json!({
            "current_mb": m.current_mb,
            "recommended_mb": m.recommended_mb,
            "rule_mb": m.rule_mb,
            "demand_bytes": m.demand_bytes,
            "action": m.action.name(),
            "reason": m.reason,
            "held_back_by": m.fixed,
        })),
        "cap_mb": d.cap_mb,
        "held_back_by": restraint_text(&d.restraint),
        "measurements": d.measurements,
    })
}

/// The status's account of `autosizer.max_wal_share`: the filesystem, the cap, and
/// whether the current and recommended `max_wal_size` are within it, in words.
pub fn wal_share(cfg: Option<&Config>, facts: Option<&Facts>, rec: Option<&Decision>) -> Value {
    let fs_error = facts.and_then(|f| f.fs_error.as_deref());
    let share = cfg.map(|c| c.max_wal_share);
    let total = facts.and_then(|f| f.fs_total_bytes);
    let cap = rec.and_then(|d| d.cap_mb);
    let current = facts.map(|f| f.max_wal_size_mb);
    let recommended = rec.map(|d| d.recommended_mb);
    let within = |v: Option<u64>| v.zip(cap).map(|(v, c)| v <= c);
    let note = match (cap, current, recommended) {
        (None, _, _) => format!(
            "no cap: the size of pg_wal's filesystem is unknown ({})",
            fs_error.unwrap_or("the server's settings are not published yet")
        ),
        (Some(c), Some(cur), _) if cur > c => format!(
            "max_wal_size {cur} MB exceeds autosizer.max_wal_share {} of pg_wal's filesystem ({} MB): the autosizer recommends {c} MB",
            share.unwrap_or_default(),
            total.unwrap_or(0) / MB
        ),
        (Some(c), _, Some(r)) if r == c => format!(
            "the recommendation is capped at autosizer.max_wal_share {} of pg_wal's filesystem ({} MB): {c} MB",
            share.unwrap_or_default(),
            total.unwrap_or(0) / MB
        ),
        (Some(c), _, _) => format!(
            "max_wal_size and the recommendation are within autosizer.max_wal_share {} of pg_wal's filesystem ({} MB): {c} MB",
            share.unwrap_or_default(),
            total.unwrap_or(0) / MB
        ),
    };
    json!({
        "share": share,
        "filesystem_bytes": total,
        "cap_mb": cap,
        "max_wal_size_within": within(current),
        "recommended_within": within(recommended),
        "error": fs_error,
        "note": note,
    })
}

/// The NOTIFY payload of a history entry.
pub fn notification(e: &HistoryEntry, applied: bool, dry_run: bool) -> String {
    let mut v = json!({
        "at": at(e.at_us),
        "action": e.action,
        "old_mb": e.old_mb,
        "new_mb": e.new_mb,
        "applied": applied,
        "dry_run": dry_run,
        "reason": e.reason,
    });
    let mut text = v.to_string();
    // pg_notify payloads must stay under 8000 bytes.
    if text.len() > 7900 {
        v["reason"] = Value::String(e.reason.chars().take(1000).collect());
        text = v.to_string();
    }
    text
}

fn mode(
    model: &Model,
    cfg: Option<&Config>,
    facts: Option<&Facts>,
    config_error: Option<&str>,
) -> (&'static str, Option<String>) {
    let recommend_only = model.recommend_only(facts);
    match (cfg, config_error) {
        (_, Some(e)) => ("misconfigured", Some(e.to_string())),
        (None, None) => ("misconfigured", None),
        (Some(c), None) if !c.enabled => ("disabled", Some("autosizer.enabled is off".into())),
        (Some(_), None) if recommend_only.is_some() => ("recommend-only", recommend_only),
        (Some(c), None) if c.dry_run => ("dry run", Some("autosizer.dry_run is on".into())),
        _ => ("apply", None),
    }
}

fn metrics(model: &Model, facts: Option<&Facts>, rec: Option<&Decision>, mode: &str) -> String {
    // The SDK's one writer: label values are escaped as the format requires.
    let mut w = walker_abi::metrics::MetricsWriter::new();
    let mut m = |name: &str, kind: &str, help: &str, samples: Vec<(Vec<(&str, &str)>, f64)>| {
        w.metric(name, kind, help, &samples);
    };
    if let Some(f) = facts {
        m(
            "walker_autosizer_max_wal_size_bytes",
            "gauge",
            "max_wal_size as the server shows it.",
            vec![(vec![], (f.max_wal_size_mb * MB) as f64)],
        );
    }
    if let Some(mb) = facts.and_then(|f| f.min_wal_size_mb) {
        m(
            "walker_autosizer_min_wal_size_bytes",
            "gauge",
            "min_wal_size as the server shows it.",
            vec![(vec![], (mb * MB) as f64)],
        );
    }
    if let Some(d) = rec {
        m(
            "walker_autosizer_recommended_bytes",
            "gauge",
            "The size the autosizer recommends now.",
            vec![(vec![], (d.recommended_mb * MB) as f64)],
        );
        if let Some(min) = d.min.as_ref() {
            m(
                "walker_autosizer_recommended_min_wal_size_bytes",
                "gauge",
                "The min_wal_size the autosizer recommends now.",
                vec![(vec![], (min.recommended_mb * MB) as f64)],
            );
        }
        if let Some(cap) = d.cap_mb {
            m(
                "walker_autosizer_wal_share_cap_bytes",
                "gauge",
                "The most max_wal_size may be: autosizer.max_wal_share of pg_wal's filesystem.",
                vec![(vec![], (cap * MB) as f64)],
            );
        }
    }
    let c = &model.checkpoints;
    m(
        "walker_autosizer_checkpoints_total",
        "counter",
        "Checkpoints seen in the WAL, by why they happened.",
        vec![
            (vec![("kind", "wal")], c.wal as f64),
            (vec![("kind", "timed")], c.timed as f64),
            (vec![("kind", "requested")], c.requested as f64),
            (vec![("kind", "shutdown")], c.shutdown as f64),
        ],
    );
    let count = |a: HistoryAction| model.history.iter().filter(|h| h.action == a).count() as f64;
    m(
        "walker_autosizer_history_entries",
        "gauge",
        "History entries kept, by action.",
        [
            HistoryAction::Grow,
            HistoryAction::Shrink,
            HistoryAction::Recommend,
            HistoryAction::Failed,
        ]
        .into_iter()
        .map(|a| (vec![("action", a.name())], count(a)))
        .collect(),
    );
    m(
        "walker_autosizer_deferred_total",
        "counter",
        "Changes held back, by why.",
        vec![
            (vec![("why", "cooldown")], model.deferred_cooldown as f64),
            (
                vec![("why", "hourly_cap")],
                model.deferred_hourly_cap as f64,
            ),
        ],
    );
    m(
        "walker_autosizer_quiet_windows",
        "gauge",
        "Consecutive windows without a forced checkpoint.",
        vec![(vec![], model.quiet_windows as f64)],
    );
    if let Some(w) = model.windows.back() {
        m(
            "walker_autosizer_demand_bytes",
            "gauge",
            "WAL per checkpoint_timeout in the last window.",
            vec![(vec![], w.demand as f64)],
        );
    }
    m(
        "walker_autosizer_mode_info",
        "gauge",
        "1 for the autosizer's current mode (apply, dry run, recommend-only, disabled, misconfigured).",
        vec![(vec![("mode", mode)], 1.0)],
    );
    m("walker_autosizer_applying", "gauge", "1 when the autosizer applies its decisions, 0 when it only recommends (dry run, recommend-only, disabled, misconfigured).", vec![(vec![], if mode == "apply" { 1.0 } else { 0.0 })]);
    w.finish()
}

/// Everything the backends read: status, recommendation, history, metrics.
pub fn published(
    model: &Model,
    cfg: Option<&Config>,
    facts: Option<&Facts>,
    last: Option<&Decision>,
    config_error: Option<&str>,
    through_lsn: u64,
    now: i64,
) -> Value {
    let (mode, mode_reason) = mode(model, cfg, facts, config_error);
    let rec = cfg.zip(facts).map(|(c, f)| model.decide(c, f, now));
    let recommendation = match (&rec, facts) {
        (Some(d), _) => decision(d),
        (None, None) => json!({"error": NO_FACTS}),
        (None, Some(_)) => json!({"error": config_error.unwrap_or("settings unreadable")}),
    };
    let status = json!({
        "mode": mode,
        "mode_reason": mode_reason,
        "settings": cfg,
        "max_wal_size_mb": facts.map(|f| f.max_wal_size_mb),
        "max_wal_size_source": facts.map(|f| if f.sourcefile.is_empty() { f.source.clone() } else { format!("{} {}", f.source, f.sourcefile) }),
        "checkpoint_timeout_s": facts.map(|f| f.checkpoint_timeout_s),
        "checkpoint_completion_target": facts.map(|f| f.completion_target),
        "pg_wal_free_bytes": facts.and_then(|f| f.free_bytes),
        "min_wal_size_mb": facts.and_then(|f| f.min_wal_size_mb),
        "recommended_min_wal_size_mb": rec.as_ref().and_then(|d| d.min.as_ref()).map(|m| m.recommended_mb),
        "max_wal_share": wal_share(cfg, facts, rec.as_ref()),
        "initial_mb": model.initial_mb,
        "floor_mb": cfg.zip(facts).map(|(c, f)| model.floor_mb(c, f)),
        "checkpoints": model.checkpoints,
        "checkpointer": facts.and_then(|f| f.checkpointer).map(|(t, r)| json!({"timed": t, "requested": r})),
        "windows": model.windows.len(),
        "last_window": model.windows.back(),
        "quiet_windows": model.quiet_windows,
        "changes_last_hour": model.changes_last_hour(now),
        "last_change_at": model.changes.back().map(|&t| at(t)),
        "deferred_by_cooldown": model.deferred_cooldown,
        "deferred_by_hourly_cap": model.deferred_hourly_cap,
        "last_decision": last.map(decision),
        "history_entries": model.history.len(),
        "through_lsn": format!("{:X}/{:X}", through_lsn >> 32, through_lsn as u32),
        "notify_channel": crate::CHANNEL,
    });
    json!({
        "status": status,
        "recommendation": recommendation,
        "history": model.history,
        "windows": model.windows,
        "through_lsn": through_lsn,
        "metrics": metrics(model, facts, rec.as_ref(), mode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_envelope_keeps_its_bytes() {
        // What every release so far wrote before the model's JSON.
        let mut out = Vec::new();
        STATE.begin(&mut out);
        assert_eq!(out, b"AUTOSIZER1\n");
        assert_eq!(STATE.open(b"AUTOSIZER1\n{}"), Ok((1, &b"{}"[..])));
        assert!(STATE.open(b"AUTOSIZER2\n{}").is_err());
    }

    #[test]
    fn timestamps_are_iso_utc() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // 2026-11-21 12:34:56 UTC = 1795264496 s.
        assert_eq!(at(1_795_264_496_000_000), "2026-11-21T12:34:56Z");
        assert_eq!(at(951_782_400_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn notification_is_json_and_short() {
        let e = HistoryEntry {
            at_us: 0,
            action: HistoryAction::Grow,
            old_mb: 32,
            new_mb: 240,
            reason: "x".repeat(10_000),
            measurements: Value::Null,
            min_old_mb: None,
            min_new_mb: None,
        };
        let n = notification(&e, true, false);
        assert!(n.len() < 8000);
        let v: Value = serde_json::from_str(&n).unwrap();
        assert_eq!(
            (
                v["old_mb"].as_u64(),
                v["new_mb"].as_u64(),
                v["applied"].as_bool()
            ),
            (Some(32), Some(240), Some(true))
        );
    }
}
