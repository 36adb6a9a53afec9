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
}
