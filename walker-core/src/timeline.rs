//! Timelines: whether a snapshot's (timeline, LSN) lies on the current timeline's
//! history. After point-in-time recovery or a promotion the server continues on a
//! new timeline that branched off its parent at a switch point; WAL the parent wrote
//! after that point belongs to an abandoned future, and a snapshot reflecting it must
//! not be restored.

use crate::rows::format_lsn;

/// One timeline of a history, as `pg_wal/<tli>.history` and `readTimeLineHistory`
/// give it: WAL from `begin` up to `end` (the switch point to its child; `u64::MAX`
/// for the current timeline) belongs to `tli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSpan {
    /// Timeline id.
    pub tli: u32,
    /// First LSN of the timeline in this history (0 for the first one).
    pub begin: u64,
    /// Switch point to the next timeline of the history (`u64::MAX`: current).
    pub end: u64,
}

/// The timeline of `lsn` in `history`: the oldest timeline whose span holds it (at a
/// switch point, the parent, which every descendant shares). `None` when no span
/// holds it (an empty history).
pub fn timeline_of(history: &[TimelineSpan], lsn: u64) -> Option<u32> {
    history
        .iter()
        .filter(|s| s.begin <= lsn && lsn <= s.end)
        .map(|s| s.tli)
        .min()
}

/// Whether a state reflecting the WAL up to `lsn` on timeline `tli` is valid on the
/// server whose current timeline has `history`: true when the history passes through
/// `tli` at least up to `lsn` (its switch to the next timeline is at or after `lsn`).
/// `tli == 0` (a snapshot of format 1, written before timelines were recorded) and an
/// empty history (unknown) are accepted: they cannot be checked.
pub fn check(history: &[TimelineSpan], tli: u32, lsn: u64) -> Result<(), String> {
    if tli == 0 || history.is_empty() {
        return Ok(());
    }
    let current = history.iter().map(|s| s.tli).max().unwrap_or(0);
    let Some(span) = history.iter().find(|s| s.tli == tli) else {
        return Err(format!(
            "it was taken on timeline {tli} at {}, which is not in the history of this server's timeline {current} ({}): the server was restored or promoted from a different branch of the WAL",
            format_lsn(lsn),
            describe(history)
        ));
    };
    if lsn > span.end {
        let next = history
            .iter()
            .filter(|s| s.begin == span.end && s.tli != tli)
            .map(|s| s.tli)
            .min()
            .unwrap_or(current);
        return Err(format!(
            "it reflects WAL up to {} on timeline {tli}, but this server's history left timeline {tli} at {} for timeline {next} (point-in-time recovery or promotion to an earlier point): the WAL it reflects after {} belongs to an abandoned timeline",
            format_lsn(lsn),
            format_lsn(span.end),
            format_lsn(span.end)
        ));
    }
    Ok(())
}

/// The history of timeline `current` from the text of its history file
/// (`pg_wal/<current as %08X>.history`; `None` for timeline 1, which has none).
/// Each line of the file is `parent-tli<TAB>switch-point<TAB>reason`, oldest first:
/// the parent's WAL ends at the switch point, where the next timeline begins. Lines
/// that are empty or start with `#` are skipped; a malformed line is an error.
pub fn parse_history(current: u32, text: Option<&str>) -> Result<Vec<TimelineSpan>, String> {
    let mut spans = Vec::new();
    let mut begin = 0u64;
    for (n, line) in text.unwrap_or("").lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let bad = || {
            format!(
                "line {} of the history file of timeline {current} is malformed: {line:?}",
                n + 1
            )
        };
        let tli: u32 = fields.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let end = fields
            .next()
            .and_then(crate::rows::parse_lsn)
            .ok_or_else(bad)?;
        if end < begin || tli >= current {
            return Err(bad());
        }
        spans.push(TimelineSpan { tli, begin, end });
        begin = end;
    }
    spans.push(TimelineSpan {
        tli: current,
        begin,
        end: u64::MAX,
    });
    Ok(spans)
}

fn describe(history: &[TimelineSpan]) -> String {
    let mut spans: Vec<_> = history.to_vec();
    spans.sort_by_key(|s| s.tli);
    spans
        .iter()
        .map(|s| {
            if s.end == u64::MAX {
                format!("timeline {} from {}", s.tli, format_lsn(s.begin))
            } else {
                format!(
                    "timeline {} from {} to {}",
                    s.tli,
                    format_lsn(s.begin),
                    format_lsn(s.end)
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = u64::MAX;

    fn span(tli: u32, begin: u64, end: u64) -> TimelineSpan {
        TimelineSpan { tli, begin, end }
    }

    /// Timeline 1 from the start; PITR at 0/3000000 created timeline 2; a promotion
    /// of a standby of timeline 2 at 0/5000000 created timeline 3 (hand-written from
    /// the history files 00000002.history "1 0/3000000" and 00000003.history
    /// "1 0/3000000 / 2 0/5000000").
    fn three() -> Vec<TimelineSpan> {
        vec![
            span(3, 0x500_0000, MAX),
            span(2, 0x300_0000, 0x500_0000),
            span(1, 0, 0x300_0000),
        ]
    }

    #[test]
    fn snapshots_on_the_path_are_valid() {
        let h = three();
        assert_eq!(check(&h, 1, 0x100_0000), Ok(()));
        // Exactly at the switch point: every record it reflects is shared.
        assert_eq!(check(&h, 1, 0x300_0000), Ok(()));
        assert_eq!(check(&h, 2, 0x400_0000), Ok(()));
        assert_eq!(check(&h, 3, 0x900_0000), Ok(()));
        // Unknown timeline (format 1) or unknown history: not checkable, accepted.
        assert_eq!(check(&h, 0, 0x900_0000), Ok(()));
        assert_eq!(check(&[], 7, 0x900_0000), Ok(()));
    }

    #[test]
    fn a_snapshot_past_the_switch_point_is_refused() {
        let h = three();
        // Taken on timeline 1 at 0/3800000: timeline 1 was left at 0/3000000.
        let e = check(&h, 1, 0x380_0000).unwrap_err();
        assert!(
            e.contains("0/3800000") && e.contains("left timeline 1 at 0/3000000 for timeline 2"),
            "{e}"
        );
        let e = check(&h, 2, 0x500_0001).unwrap_err();
        assert!(e.contains("for timeline 3"), "{e}");
    }

    #[test]
    fn a_snapshot_of_another_branch_is_refused() {
        // A sibling branch: timeline 4 also branched off 1, this server is on 3.
        let e = check(&three(), 4, 0x310_0000).unwrap_err();
        assert!(
            e.contains("not in the history of this server's timeline 3"),
            "{e}"
        );
        assert!(e.contains("timeline 1 from 0/0 to 0/3000000"), "{e}");
    }

    #[test]
    fn history_files_are_parsed_as_the_server_writes_them() {
        // The file PostgreSQL 15 writes for timeline 3 in the scenario of `three()`.
        let text =
            "1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n";
        let mut h = parse_history(3, Some(text)).unwrap();
        h.sort_by_key(|s| std::cmp::Reverse(s.tli));
        assert_eq!(h, three());
        assert_eq!(parse_history(1, None).unwrap(), vec![span(1, 0, MAX)]);
        assert!(parse_history(2, Some("1\tnot-an-lsn\tx")).is_err());
        assert!(parse_history(2, Some("5\t0/10\tparent after child")).is_err());
    }

    #[test]
    fn the_timeline_of_an_lsn_is_the_oldest_holding_it() {
        let h = three();
        assert_eq!(timeline_of(&h, 0x100), Some(1));
        assert_eq!(
            timeline_of(&h, 0x300_0000),
            Some(1),
            "switch point: the parent"
        );
        assert_eq!(timeline_of(&h, 0x300_0001), Some(2));
        assert_eq!(timeline_of(&h, 0x600_0000), Some(3));
        assert_eq!(timeline_of(&[], 0x600_0000), None);
    }
}
