//! The autosizer's history as an SVG: one bar per measuring window (its WAL scaled to
//! one `checkpoint_timeout`, the demand), `max_wal_size` over time as a step line,
//! windows with checkpoints forced by WAL volume in red and marked with their count,
//! and the history's changes as vertical lines. Hovering a bar gives the window's
//! numbers.

use crate::model::{HistoryEntry, Window, MB};
use crate::report::at;
use walker_abi::svg::{self, Doc};

const W: u32 = 880;
const H: u32 = 440;
const X0: f64 = 72.0;
const X1: f64 = 860.0;
const Y0: f64 = 64.0;
const Y1: f64 = 360.0;
/// A window without a forced checkpoint.
const CALM: &str = "#6baed6";
/// A window with at least one.
const FORCED: &str = "#de2d26";
/// The `max_wal_size` line.
const SIZE: &str = "#253494";

/// What the picture shows besides the windows.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// `max_wal_size` now (MB), for windows that did not record it.
    pub max_wal_size_mb: Option<u64>,
    /// The walk is through this LSN.
    pub through_lsn: u64,
}

fn mb_of(bytes: u64) -> f64 {
    bytes as f64 / MB as f64
}

/// The picture of `windows` (oldest first) and `history`.
pub fn render(frame: &Frame, windows: &[Window], history: &[HistoryEntry]) -> String {
    let title = "autosizer: WAL per checkpoint_timeout in each window against max_wal_size";
    let mut d = Doc::new(W, H, title);
    d.text(
        X0,
        20.0,
        "start",
        r#"font-size="14" font-weight="bold""#,
        title,
    );
    let lsn = format!(
        "{:X}/{:X}",
        frame.through_lsn >> 32,
        frame.through_lsn as u32
    );
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        d.text(
            X0,
            40.0,
            "start",
            r##"fill="#444444""##,
            &format!("no measuring window has closed yet (through LSN {lsn}): one closes every autosizer.window"),
        );
        return d.finish();
    };
    let forced: u32 = windows.iter().map(|w| w.forced).sum();
    d.text(
        X0,
        40.0,
        "start",
        r##"fill="#444444""##,
        &format!(
            "{} windows, {} .. {}; checkpoints forced by WAL volume: {forced}; through LSN {lsn}",
            windows.len(),
            at(first.start_us),
            at(last.end_us)
        ),
    );
    let size_of = |w: &Window| w.max_wal_size_mb.or(frame.max_wal_size_mb);
    let top = windows
        .iter()
        .map(|w| mb_of(w.demand).max(size_of(w).unwrap_or(0) as f64))
        .fold(1.0, f64::max);
    let ticks = svg::ticks(top * 1.05, 5);
    let y_max = *ticks.last().unwrap_or(&1.0);
    let (t0, t1) = (first.start_us, last.end_us.max(first.start_us + 1));
    let x = |t: i64| X0 + (X1 - X0) * (t.clamp(t0, t1) - t0) as f64 / (t1 - t0) as f64;
    let y = |mb: f64| Y1 - (Y1 - Y0) * (mb / y_max).clamp(0.0, 1.0);
    // Axes with MB ticks.
    for t in &ticks {
        d.line(X0, y(*t), X1, y(*t), "#e5e5e5");
        d.text(
            X0 - 6.0,
            y(*t) + 4.0,
            "end",
            "",
            &format!("{} MB", svg::count(*t)),
        );
    }
    d.line(X0, Y1, X1, Y1, "#666666");
    d.text(X0, Y1 + 16.0, "start", "", &at(t0));
    d.text(X1, Y1 + 16.0, "end", "", &at(t1));
    for w in windows {
        let (xa, xb) = (x(w.start_us), x(w.end_us));
        let top_y = y(mb_of(w.demand));
        let hover = format!(
            "{} .. {}: {} MB written, demand {} MB per checkpoint_timeout; checkpoints forced {}, timed {}, requested {}; max_wal_size {}",
            at(w.start_us),
            at(w.end_us),
            w.bytes / MB,
            w.demand / MB,
            w.forced,
            w.timed,
            w.requested,
            size_of(w).map_or("unknown".to_string(), |s| format!("{s} MB"))
        );
        d.rect(
            xa + 0.5,
            top_y,
            (xb - xa - 1.0).max(1.0),
            Y1 - top_y,
            if w.forced > 0 { FORCED } else { CALM },
            &hover,
        );
        if w.forced > 0 {
            d.text(
                (xa + xb) / 2.0,
                top_y - 4.0,
                "middle",
                &format!(r#"fill="{FORCED}" font-size="11""#),
                &format!("{}×", w.forced),
            );
        }
    }
    // max_wal_size as a step line over the windows that know it.
    let mut points = String::new();
    for w in windows {
        if let Some(s) = size_of(w) {
            let ys = y(s as f64);
            points.push_str(&format!(
                "{:.1},{ys:.1} {:.1},{ys:.1} ",
                x(w.start_us),
                x(w.end_us)
            ));
        }
    }
    if !points.is_empty() {
        d.raw(&format!(
            r#"<polyline points="{}" fill="none" stroke="{SIZE}" stroke-width="2"><title>max_wal_size</title></polyline>"#,
            points.trim_end()
        ));
    }
    for h in history.iter().filter(|h| h.at_us >= t0 && h.at_us <= t1) {
        let hx = x(h.at_us);
        d.raw(&format!(
            r##"<line x1="{hx:.1}" y1="{Y0}" x2="{hx:.1}" y2="{Y1}" stroke="#31a354" stroke-dasharray="4 3"><title>{}</title></line>"##,
            svg::escape(&format!(
                "{}: {} {} MB to {} MB: {}",
                at(h.at_us),
                h.action.name(),
                h.old_mb,
                h.new_mb,
                h.reason
            ))
        ));
        d.text(
            hx + 3.0,
            Y0 + 10.0,
            "start",
            r##"fill="#31a354" font-size="11""##,
            &format!("{} {} MB", h.action.name(), h.new_mb),
        );
    }
    // Legend.
    let ly = Y1 + 40.0;
    d.rect(X0, ly - 10.0, 12.0, 12.0, CALM, "");
    d.text(
        X0 + 16.0,
        ly,
        "start",
        "",
        "demand of a window (WAL per checkpoint_timeout)",
    );
    d.rect(X0, ly + 8.0, 12.0, 12.0, FORCED, "");
    d.text(
        X0 + 16.0,
        ly + 18.0,
        "start",
        "",
        "a window with checkpoints forced by WAL volume (n×)",
    );
    d.line(X0 + 400.0, ly - 4.0, X0 + 424.0, ly - 4.0, SIZE);
    d.text(X0 + 430.0, ly, "start", "", "max_wal_size");
    d.raw(&format!(
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#31a354" stroke-dasharray="4 3"/>"##,
        X0 + 400.0,
        ly + 14.0,
        X0 + 424.0,
        ly + 14.0
    ));
    d.text(
        X0 + 430.0,
        ly + 18.0,
        "start",
        "",
        "a change or recommendation (history)",
    );
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn window(start: i64, mb: u64, forced: u32, size: Option<u64>) -> Window {
        Window {
            start_us: start * S,
            end_us: (start + 10) * S,
            bytes: mb * MB,
            demand: 3 * mb * MB,
            forced,
            timed: 0,
            requested: 0,
            checkpointer_requested: None,
            max_wal_size_mb: size,
        }
    }

    fn hovers(s: &str) -> Vec<&str> {
        s.split("<rect")
            .skip(1)
            .filter_map(|r| r.split("<title>").nth(1))
            .filter_map(|t| t.split("</title>").next())
            .collect()
    }

    #[test]
    fn one_bar_per_window_with_its_numbers_and_the_size_line() {
        let ws = [window(0, 20, 0, Some(64)), window(10, 40, 2, Some(64))];
        let frame = Frame {
            max_wal_size_mb: Some(240),
            through_lsn: 0x2_0000_0010,
        };
        let h = HistoryEntry {
            at_us: 20 * S,
            action: crate::model::HistoryAction::Grow,
            old_mb: 64,
            new_mb: 240,
            reason: "r<".into(),
            measurements: serde_json::Value::Null,
            min_old_mb: None,
            min_new_mb: None,
        };
        let s = render(&frame, &ws, &[h]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(
            hovers(&s),
            [
                "1970-01-01T00:00:00Z .. 1970-01-01T00:00:10Z: 20 MB written, demand 60 MB per checkpoint_timeout; checkpoints forced 0, timed 0, requested 0; max_wal_size 64 MB",
                "1970-01-01T00:00:10Z .. 1970-01-01T00:00:20Z: 40 MB written, demand 120 MB per checkpoint_timeout; checkpoints forced 2, timed 0, requested 0; max_wal_size 64 MB",
            ]
        );
        assert!(s.contains("through LSN 2/10"));
        assert!(s.contains("checkpoints forced by WAL volume: 2;"));
        assert!(s.contains(">2×</text>"));
        assert!(s.contains("grow 64 MB to 240 MB: r&lt;"));
        // Ticks up to 126 MB (120 × 1.05): 0, 50, 100, 150. 64 MB is at
        // 360 - 296 × 64/150 = 233.7.
        assert!(
            s.contains("<polyline points=\"72.0,233.7 466.0,233.7 466.0,233.7 860.0,233.7\""),
            "{s}"
        );
    }

    #[test]
    fn no_window_yet_says_so() {
        let s = render(
            &Frame {
                max_wal_size_mb: None,
                through_lsn: 0,
            },
            &[],
            &[],
        );
        assert!(s.contains("no measuring window has closed yet"));
    }
}
