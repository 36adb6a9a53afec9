//! The budget's top writers as an SVG: one horizontal bar per scope of
//! `walker.budget_scopes`, the [`TOP`] largest by WAL bytes, split into full-page
//! images and the rest, on a shared byte axis, with the scope's names and its bytes
//! beside it; hovering a bar gives the scope's row.

use crate::report::Cell;
use walker_abi::svg::{self, Doc};

/// Scopes drawn at most; the others are summed into one line under them.
pub const TOP: usize = 15;
const W: u32 = 880;
const LABEL_W: f64 = 320.0;
const X0: f64 = 16.0 + LABEL_W;
const X1: f64 = 780.0;
const Y0: f64 = 64.0;
const BAR_H: f64 = 20.0;
const GAP: f64 = 6.0;
const FPI: &str = "#fc8d59";
const REST: &str = "#4575b4";

/// One scope: its names and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// `session`, `background`, `cluster`, `unattributed` or `evicted`.
    pub origin: String,
    /// Tenant, role, database and application names (empty when unknown).
    pub names: [String; 4],
    /// WAL records.
    pub records: u64,
    /// WAL bytes.
    pub bytes: u64,
    /// Of which full-page images.
    pub fpi_bytes: u64,
    /// Transactions.
    pub transactions: u64,
}

impl Writer {
    /// From a row of the scopes view (origin, tenant, role, role_name, database,
    /// database_name, application, records, bytes, fpi_bytes, transactions, ...).
    pub fn from_row(r: &[Cell]) -> Option<Writer> {
        let t = |i: usize| match r.get(i) {
            Some(Cell::Text(s)) => s.clone(),
            _ => String::new(),
        };
        let n = |i: usize| match r.get(i) {
            Some(Cell::Int(v)) => u64::try_from(*v).unwrap_or(0),
            _ => 0,
        };
        matches!(r.first(), Some(Cell::Text(_))).then(|| Writer {
            origin: t(0),
            names: [t(1), t(3), t(5), t(6)],
            records: n(7),
            bytes: n(8),
            fpi_bytes: n(9),
            transactions: n(10),
        })
    }

    /// `session: tenant acme, role alice, database shop, application pgbench`.
    pub fn label(&self) -> String {
        self.named(["tenant", "role", "database", "application"])
    }

    /// The same in fewer characters, for the axis: `session: role alice, db shop, app
    /// pgbench`.
    pub fn short_label(&self) -> String {
        self.named(["tenant", "role", "db", "app"])
    }

    fn named(&self, keys: [&str; 4]) -> String {
        let parts: Vec<String> = keys
            .iter()
            .zip(&self.names)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if parts.is_empty() {
            self.origin.clone()
        } else {
            format!("{}: {}", self.origin, parts.join(", "))
        }
    }
}

/// Shortens `s` to `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The picture of `writers` as of `as_of_lsn`.
pub fn render(writers: &[Writer], as_of_lsn: u64) -> String {
    let mut ws: Vec<&Writer> = writers.iter().collect();
    ws.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.label().cmp(&b.label()))
    });
    let total: u64 = ws.iter().fold(0u64, |s, w| s.saturating_add(w.bytes));
    let (shown, rest) = ws.split_at(ws.len().min(TOP));
    let rest_bytes: u64 = rest.iter().fold(0u64, |s, w| s.saturating_add(w.bytes));
    let lines = shown.len() + usize::from(!rest.is_empty());
    let plot_h = (lines.max(1) as f64) * (BAR_H + GAP);
    let height = (Y0 + plot_h + 70.0).ceil() as u32;
    let title = "budget: WAL written per scope, the largest writers first";
    let mut d = Doc::new(W, height, title);
    d.text(
        16.0,
        20.0,
        "start",
        r#"font-size="14" font-weight="bold""#,
        title,
    );
    d.text(
        16.0,
        40.0,
        "start",
        r##"fill="#444444""##,
        &format!(
            "{} scopes, {} of WAL in all (exact record bytes); as of LSN {:X}/{:X}",
            ws.len(),
            svg::bytes(total),
            as_of_lsn >> 32,
            as_of_lsn as u32
        ),
    );
    if ws.is_empty() {
        d.text(
            16.0,
            Y0 + 14.0,
            "start",
            "",
            "no WAL charged to any scope yet",
        );
        return d.finish();
    }
    let max = shown.first().map_or(1, |w| w.bytes).max(rest_bytes).max(1);
    let ticks = svg::byte_ticks(max, 5);
    let x_max = ticks.last().copied().unwrap_or(1).max(1) as f64;
    let x = |b: u64| X0 + (X1 - X0) * (b as f64 / x_max).clamp(0.0, 1.0);
    let y_axis = Y0 + plot_h;
    for t in &ticks {
        let tx = x(*t);
        d.line(tx, Y0 - 4.0, tx, y_axis, "#e5e5e5");
        d.text(tx, y_axis + 14.0, "middle", "", &svg::bytes(*t));
    }
    for (i, w) in shown.iter().enumerate() {
        let y = Y0 + i as f64 * (BAR_H + GAP);
        let fpi = w.fpi_bytes.min(w.bytes);
        let hover = format!(
            "{}: {} bytes of WAL ({} full-page images), {} records, {} transactions",
            w.label(),
            w.bytes,
            fpi,
            w.records,
            w.transactions
        );
        d.text(X0 - 6.0, y + 14.0, "end", "", &clip(&w.short_label(), 50));
        d.rect(X0, y, x(w.bytes - fpi) - X0, BAR_H, REST, &hover);
        d.rect(
            x(w.bytes - fpi),
            y,
            x(w.bytes) - x(w.bytes - fpi),
            BAR_H,
            FPI,
            &hover,
        );
        d.text(
            x(w.bytes) + 4.0,
            y + 14.0,
            "start",
            "",
            &svg::bytes(w.bytes),
        );
    }
    if !rest.is_empty() {
        let y = Y0 + shown.len() as f64 * (BAR_H + GAP);
        let label = format!("{} other scopes", rest.len());
        d.text(X0 - 6.0, y + 14.0, "end", "", &label);
        d.rect(
            X0,
            y,
            x(rest_bytes) - X0,
            BAR_H,
            "#bbbbbb",
            &format!("{label}: {rest_bytes} bytes of WAL"),
        );
        d.text(
            x(rest_bytes) + 4.0,
            y + 14.0,
            "start",
            "",
            &svg::bytes(rest_bytes),
        );
    }
    let ly = y_axis + 40.0;
    d.rect(X0, ly - 10.0, 12.0, 12.0, REST, "");
    d.text(
        X0 + 16.0,
        ly,
        "start",
        "",
        "WAL records without full-page images",
    );
    d.rect(X0 + 280.0, ly - 10.0, 12.0, 12.0, FPI, "");
    d.text(X0 + 296.0, ly, "start", "", "full-page images");
    d.finish()
}

/// One point of the history: a scope's WAL in the interval ending `at` (µs since the
/// Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// End of the interval.
    pub at: i64,
    /// WAL bytes in it.
    pub bytes: u64,
}

/// `walker.budget_history` as series: every scope together, and each scope that was
/// among an interval's largest writers (by its label).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The intervals' ends, oldest first.
    pub times: Vec<i64>,
    /// Every scope together, per interval.
    pub all: Vec<Point>,
    /// Per scope label, the intervals it was named in.
    pub scopes: Vec<(String, Vec<Point>)>,
}

impl History {
    /// From the rows of the history view (sampled_at, rank, origin, tenant, role_name,
    /// database_name, application, bytes, as_of_lsn), oldest first.
    pub fn from_rows(rows: &[Vec<Cell>]) -> History {
        let mut h = History::default();
        for r in rows {
            let (Some(Cell::Time(at)), Some(Cell::Int(rank)), Some(Cell::Int(bytes))) =
                (r.first(), r.get(1), r.get(7))
            else {
                continue;
            };
            let p = Point {
                at: *at,
                bytes: u64::try_from(*bytes).unwrap_or(0),
            };
            if *rank == 0 {
                h.times.push(*at);
                h.all.push(p);
                continue;
            }
            let t = |i: usize| match r.get(i) {
                Some(Cell::Text(s)) => s.clone(),
                _ => String::new(),
            };
            let label = Writer {
                origin: t(2),
                names: [t(3), t(4), t(5), t(6)],
                records: 0,
                bytes: 0,
                fpi_bytes: 0,
                transactions: 0,
            }
            .short_label();
            match h.scopes.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push(p),
                None => h.scopes.push((label, vec![p])),
            }
        }
        // The scopes that wrote most over the whole history first.
        h.scopes.sort_by(|a, b| {
            let sum = |v: &[Point]| v.iter().fold(0u64, |s, p| s.saturating_add(p.bytes));
            sum(&b.1).cmp(&sum(&a.1)).then_with(|| a.0.cmp(&b.0))
        });
        h
    }
}

/// Line colours of the scopes, in order (more scopes share the last one).
const SERIES: [&str; 8] = [
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#999999",
];

/// The history as a line chart: WAL per interval of every scope together (black) and of
/// each named scope, against time; hovering a point gives the scope, the interval's end
/// and its bytes. A scope is drawn only in the intervals it was among the largest
/// writers of (a gap elsewhere: it wrote less than those named then).
pub fn render_history(h: &History) -> String {
    let title = "budget: WAL per scope over time";
    let legend_h = 18.0 * (h.scopes.len().min(SERIES.len()) as f64 + 1.0);
    let plot_h = 260.0;
    let height = (Y0 + plot_h + 50.0 + legend_h).ceil() as u32;
    let mut d = Doc::new(W, height, title);
    d.text(
        16.0,
        20.0,
        "start",
        r#"font-size="14" font-weight="bold""#,
        title,
    );
    let (first, last) = (h.times.first().copied(), h.times.last().copied());
    let (Some(first), Some(last)) = (first, last) else {
        d.text(16.0, 40.0, "start", r##"fill="#444444""##, "no interval has ended yet (one ends every budget.history_interval while the walker runs)");
        return d.finish();
    };
    let when = |t: i64| {
        let u = walker_abi::dates::UtcTime::from_unix_micros(t);
        format!("{} {}", u.date(), u.time_of_day())
    };
    d.text(
        16.0,
        40.0,
        "start",
        r##"fill="#444444""##,
        &format!(
            "{} intervals, {} to {} UTC; WAL charged per interval (exact record bytes)",
            h.times.len(),
            when(first),
            when(last)
        ),
    );
    let max = h.all.iter().map(|p| p.bytes).max().unwrap_or(0).max(1);
    let ticks = svg::byte_ticks(max, 5);
    let y_max = ticks.last().copied().unwrap_or(1).max(1) as f64;
    let (x0, x1) = (90.0, X1 + 60.0);
    let y_axis = Y0 + plot_h;
    let span = (last - first).max(1) as f64;
    let x = |t: i64| {
        if first == last {
            (x0 + x1) / 2.0
        } else {
            x0 + (x1 - x0) * ((t - first) as f64 / span)
        }
    };
    let y = |b: u64| y_axis - plot_h * (b as f64 / y_max).clamp(0.0, 1.0);
    for t in &ticks {
        let ty = y(*t);
        d.line(x0, ty, x1, ty, "#e5e5e5");
        d.text(x0 - 6.0, ty + 4.0, "end", "", &svg::bytes(*t));
    }
    d.line(x0, y_axis, x1, y_axis, "#666666");
    if first == last {
        d.text(x(first), y_axis + 16.0, "middle", "", &when(first));
    } else {
        d.text(x0, y_axis + 16.0, "start", "", &when(first));
        d.text(x1, y_axis + 16.0, "end", "", &when(last));
    }
    let mut series: Vec<(&str, &str, &[Point])> = vec![("every scope", "#000000", &h.all)];
    for (i, (label, pts)) in h.scopes.iter().enumerate() {
        series.push((label, SERIES[i.min(SERIES.len() - 1)], pts));
    }
    for (label, colour, pts) in &series {
        // A line joins the points of consecutive intervals only.
        for w in pts.windows(2) {
            let consecutive = h
                .times
                .iter()
                .position(|t| *t == w[0].at)
                .is_some_and(|i| h.times.get(i + 1) == Some(&w[1].at));
            if consecutive {
                d.raw(&format!(
                    r#"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="{colour}" stroke-width="2"/>"#,
                    x(w[0].at),
                    y(w[0].bytes),
                    x(w[1].at),
                    y(w[1].bytes)
                ));
            }
        }
        for p in pts.iter() {
            d.raw(&format!(
                r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{colour}"><title>{}</title></circle>"#,
                x(p.at),
                y(p.bytes),
                svg::escape(&format!(
                    "{label}: {} bytes of WAL in the interval ending {} UTC",
                    p.bytes,
                    when(p.at)
                ))
            ));
        }
    }
    let ly = y_axis + 40.0;
    for (i, (label, colour, _)) in series.iter().take(SERIES.len() + 1).enumerate() {
        let yy = ly + 18.0 * i as f64;
        d.rect(x0, yy - 9.0, 14.0, 10.0, colour, "");
        d.text(x0 + 20.0, yy, "start", "", &clip(label, 90));
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(role: &str, bytes: u64, fpi: u64) -> Writer {
        Writer {
            origin: "session".into(),
            names: [String::new(), role.into(), "db".into(), "app".into()],
            records: 3,
            bytes,
            fpi_bytes: fpi,
            transactions: 1,
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
    fn a_row_of_the_scopes_view_reads_back() {
        let row = [
            Cell::Text("session".into()),
            Cell::Text("".into()),
            Cell::Int(10),
            Cell::Text("alice".into()),
            Cell::Int(5),
            Cell::Text("shop".into()),
            Cell::Text("pgbench".into()),
            Cell::Int(7),
            Cell::Int(1000),
            Cell::Int(200),
            Cell::Int(2),
            Cell::Null,
            Cell::Lsn(1),
        ];
        let wr = Writer::from_row(&row).unwrap();
        assert_eq!(
            (wr.records, wr.bytes, wr.fpi_bytes, wr.transactions),
            (7, 1000, 200, 2)
        );
        assert_eq!(
            wr.label(),
            "session: role alice, database shop, application pgbench"
        );
    }

    #[test]
    fn largest_first_split_into_images_and_the_rest_with_a_line_for_the_others() {
        let mut ws: Vec<Writer> = (0..17)
            .map(|i| w(&format!("r{i:02}"), 100 + i, 0))
            .collect();
        ws.push(w("big", 4000, 1000));
        let s = render(&ws, 0x1_0000_0000);
        let h = hovers(&s);
        // Two rectangles (rest, images) per shown scope, then the others' line.
        assert_eq!(h.len(), 2 * TOP + 1, "{h:?}");
        assert_eq!(
            h[0],
            "session: role big, database db, application app: 4000 bytes of WAL (1000 full-page images), 3 records, 1 transactions"
        );
        assert_eq!(h[0], h[1]);
        assert!(h[2].contains("role r16,"), "{}", h[2]);
        // 18 scopes: 15 shown, r00..r02 summed (100 + 101 + 102).
        assert_eq!(h[2 * TOP], "3 other scopes: 303 bytes of WAL");
        assert!(s.contains("18 scopes, 6 kB of WAL in all"), "{s}");
        assert!(s.contains("as of LSN 1/0"));
        // Ticks at whole kB to 4 kB (4096 bytes): the big bar's part without images,
        // 3000 bytes, is 444 × 3000 / 4096 = 325.2 px wide.
        assert!(s.contains(r#"x="336.00" y="64.00" width="325.20""#), "{s}");
        assert!(s.contains(">4 kB</text>"), "{s}");
    }

    #[test]
    fn nothing_charged_says_so() {
        assert!(render(&[], 0).contains("no WAL charged to any scope yet"));
    }
    fn history_row(at: i64, rank: i64, role: &str, bytes: i64) -> Vec<Cell> {
        let t = |s: &str| Cell::Text(s.to_string());
        vec![
            Cell::Time(at),
            Cell::Int(rank),
            t(if rank == 0 { "all" } else { "session" }),
            t(""),
            t(role),
            t("db"),
            t("app"),
            Cell::Int(bytes),
            Cell::Lsn(0),
        ]
    }

    #[test]
    fn the_history_draws_a_line_per_scope_and_gaps_where_it_was_not_named() {
        let m = 60_000_000;
        let rows = vec![
            history_row(m, 0, "", 150),
            history_row(m, 1, "alice", 100),
            history_row(m, 2, "bob", 50),
            history_row(2 * m, 0, "", 30),
            history_row(2 * m, 1, "bob", 30),
            history_row(3 * m, 0, "", 900),
            history_row(3 * m, 1, "alice", 900),
        ];
        let h = History::from_rows(&rows);
        assert_eq!(h.times, vec![m, 2 * m, 3 * m]);
        assert_eq!(
            h.all.iter().map(|p| p.bytes).collect::<Vec<_>>(),
            [150, 30, 900]
        );
        // alice wrote most over the history: first.
        assert_eq!(h.scopes[0].0, "session: role alice, db db, app app");
        assert_eq!(h.scopes[1].1.len(), 2);
        let svg = render_history(&h);
        // A point per scope and interval named, with its hover text.
        assert_eq!(svg.matches("<circle").count(), 3 + 2 + 2);
        assert!(svg.contains("session: role bob, db db, app app: 30 bytes of WAL in the interval ending 1970-01-01 00:02:00 UTC"), "{svg}");
        // Lines: every scope 2 (3 consecutive points), bob 1; alice's two points are
        // not consecutive intervals: no line between them.
        assert_eq!(svg.matches(r#"stroke-width="2""#).count(), 3);
        assert!(render_history(&History::default()).contains("no interval has ended yet"));
    }
}
