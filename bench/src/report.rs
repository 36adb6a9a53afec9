//! The results: figures with their measurements, written as a table on stdout, as
//! Markdown and as JSON.

use crate::machine::Machine;
use crate::sizes::Size;
use crate::stats::{summarize, Summary};

/// One measured quantity: a value per repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What it is, e.g. `walker (no plugin) / pg_waldump`.
    pub name: String,
    /// Unit, e.g. `MiB/s`, `ratio`.
    pub unit: String,
    /// One value per repetition, in order.
    pub values: Vec<f64>,
}

impl Metric {
    /// A metric from its values.
    pub fn new(name: impl Into<String>, unit: &str, values: Vec<f64>) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.to_string(),
            values,
        }
    }

    /// Median and spread of the values.
    pub fn summary(&self) -> Option<Summary> {
        summarize(&self.values)
    }
}

/// What became of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its metrics.
    Measured(Vec<Metric>),
    /// Why it was not measured.
    NotMeasured(String),
}

/// One figure of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// 1 to 8 (see `figures`).
    pub number: u8,
    /// Short title.
    pub title: String,
    /// How it was measured, one sentence or paragraph each.
    pub method: Vec<String>,
    /// Facts about this run of it (sizes, positions), as (name, value).
    pub facts: Vec<(String, String)>,
    /// The measurements.
    pub outcome: Outcome,
    /// Wall-clock seconds the figure took.
    pub seconds: f64,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The size run.
    pub size: Size,
    /// Machine, PostgreSQL, commit.
    pub machine: Machine,
    /// How the installed walker was built.
    pub build_profile: String,
    /// "All shipped plugins".
    pub plugins: Vec<String>,
    /// The installed libraries measured, with their modification times.
    pub libraries: Vec<String>,
    /// Set when an installed library changed during the run: which.
    pub libraries_changed: Option<String>,
    /// Settings every cluster shares, as (name, value).
    pub settings: Vec<(String, String)>,
    /// When the run started (UTC).
    pub started: String,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// 1-minute load average when the run ended.
    pub load_at_end: String,
    /// The figures, in order.
    pub figures: Vec<Figure>,
}

/// A number with as many decimals as its size deserves.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "n/a".to_string()
    } else if a >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn metric_row(m: &Metric) -> Vec<String> {
    match m.summary() {
        Some(s) => vec![
            m.name.clone(),
            fmt_num(s.median),
            format!("{} – {}", fmt_num(s.min), fmt_num(s.max)),
            s.n.to_string(),
            m.unit.clone(),
        ],
        None => vec![
            m.name.clone(),
            "n/a".into(),
            "".into(),
            "0".into(),
            m.unit.clone(),
        ],
    }
}

const HEADER: [&str; 5] = ["metric", "median", "spread (min – max)", "n", "unit"];

/// Rows as a Markdown table (numbers right-aligned).
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", header.join(" | "));
    for (i, _) in header.iter().enumerate() {
        out.push_str(if i == 0 || i + 1 == header.len() {
            "---|"
        } else {
            "---:|"
        });
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

/// Rows as an aligned plain-text table.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if i > 0 && i + 1 < cells.len() {
                s.push_str(&format!("{pad}{c}  "));
            } else {
                s.push_str(&format!("{c}{pad}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule.iter().map(String::as_str).collect::<Vec<_>>()));
    for r in rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

impl Report {
    fn header_rows(&self) -> Vec<(String, String)> {
        let m = &self.machine;
        let size = &self.size;
        vec![
            ("started".into(), self.started.clone()),
            (
                "size".into(),
                format!("{} ({} repetitions)", size.name, size.reps),
            ),
            (
                "machine".into(),
                format!(
                    "{}, {} cores, {}, Linux {}",
                    m.cpu,
                    m.cores,
                    gib(m.memory_bytes),
                    m.kernel
                ),
            ),
            ("PostgreSQL".into(), m.postgres.clone()),
            (
                "commit".into(),
                format!(
                    "{}{}",
                    m.commit,
                    if m.dirty {
                        " (work tree with uncommitted changes)"
                    } else {
                        ""
                    }
                ),
            ),
            ("walker build".into(), self.build_profile.clone()),
            (
                "installed libraries".into(),
                match &self.libraries_changed {
                    None => self.libraries.join(", "),
                    Some(now) => format!(
                        "{} (REPLACED DURING THE RUN, now: {now})",
                        self.libraries.join(", ")
                    ),
                },
            ),
            ("all shipped plugins".into(), self.plugins.join(", ")),
            (
                "load average (1 min)".into(),
                format!("{} at start, {} at end", m.load_at_start, self.load_at_end),
            ),
            ("duration".into(), format!("{:.0} s", self.seconds)),
        ]
    }

    /// The report as Markdown (the results file).
    pub fn markdown(&self) -> String {
        let mut out = format!("# walker benchmark ({})\n\n", self.size.name);
        let rows: Vec<Vec<String>> = self
            .header_rows()
            .into_iter()
            .map(|(k, v)| vec![k, v])
            .collect();
        out.push_str(&markdown_table(&["", ""], &rows));
        out.push_str("\nSettings of every cluster: ");
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("`{k} = {v}`"))
            .collect();
        out.push_str(&settings.join(", "));
        out.push_str(".\n");
        for f in &self.figures {
            out.push_str(&format!("\n## {}. {}\n\n", f.number, f.title));
            for m in &f.method {
                out.push_str(m);
                out.push_str("\n\n");
            }
            for (k, v) in &f.facts {
                out.push_str(&format!("- {k}: {v}\n"));
            }
            if !f.facts.is_empty() {
                out.push('\n');
            }
            match &f.outcome {
                Outcome::Measured(metrics) => {
                    let rows: Vec<Vec<String>> = metrics.iter().map(metric_row).collect();
                    out.push_str(&markdown_table(&HEADER, &rows));
                }
                Outcome::NotMeasured(why) => out.push_str(&format!("**not measured: {why}**\n")),
            }
        }
        out
    }

    /// The tables for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.header_rows() {
            out.push_str(&format!("{k:>22}: {v}\n"));
        }
        for f in &self.figures {
            out.push_str(&format!(
                "\n{}. {} ({:.0} s)\n",
                f.number, f.title, f.seconds
            ));
            for (k, v) in &f.facts {
                out.push_str(&format!("   {k}: {v}\n"));
            }
            match &f.outcome {
                Outcome::Measured(metrics) => {
                    let rows: Vec<Vec<String>> = metrics.iter().map(metric_row).collect();
                    out.push_str(&text_table(&HEADER, &rows));
                }
                Outcome::NotMeasured(why) => out.push_str(&format!("not measured: {why}\n")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_sensible_digits() {
        assert_eq!(fmt_num(123456.7), "123457");
        assert_eq!(fmt_num(42.0), "42");
        assert_eq!(fmt_num(8.0), "8");
        assert_eq!(fmt_num(123.45), "123.5");
        assert_eq!(fmt_num(1.23456), "1.23");
        assert_eq!(fmt_num(0.98765), "0.988");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }

    #[test]
    fn tables() {
        let rows = vec![vec![
            "walker / pg_waldump".to_string(),
            "1.50".to_string(),
            "1.20 – 1.80".to_string(),
            "3".to_string(),
            "ratio".to_string(),
        ]];
        assert_eq!(
            markdown_table(&HEADER, &rows),
            "| metric | median | spread (min – max) | n | unit |\n|---|---:|---:|---:|---|\n| walker / pg_waldump | 1.50 | 1.20 – 1.80 | 3 | ratio |\n"
        );
        let text = text_table(
            &["a", "b", "c"],
            &[vec!["xx".into(), "1".into(), "u".into()]],
        );
        assert_eq!(text, "a   b  c\n--  -  -\nxx  1  u\n");
    }

    #[test]
    fn metric_rows_summarize() {
        let m = Metric::new("tps", "tx/s", vec![3.5, 1.25, 2.5]);
        assert_eq!(
            metric_row(&m),
            vec!["tps", "2.50", "1.25 – 3.50", "3", "tx/s"]
        );
    }
}
