//! The one writer of the Prometheus text exposition format (version 0.0.4) that the host
//! and every plugin use, so that no label value can break a line.
//!
//! A label value is written with `\` as `\\`, `"` as `\"` and a line feed as `\n`, as
//! the format requires; a carriage return becomes `\r`-free (`\\r`), so a value taken
//! from a tenant, role, database or application name can never start a metric line
//! of its own. Metric and label names come from code; characters the format does not
//! allow in them become `_`. HELP text escapes `\` and line feeds.

use std::fmt::Write;

/// Escapes a label value for the text exposition format.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            // Not an escape the format defines, but a bare CR would let some readers
            // see a line break: written as the two characters `\r` (escaped `\`).
            '\r' => out.push_str("\\\\r"),
            c => out.push(c),
        }
    }
    out
}

/// A metric or label name, with characters the format does not allow replaced by `_`.
fn name(n: &str, colon: bool) -> String {
    let mut out: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN` included).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// Builds a Prometheus text exposition: families (HELP and TYPE) and their samples.
#[derive(Debug, Default, Clone)]
pub struct MetricsWriter {
    out: String,
}

impl MetricsWriter {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts family `metric` of `kind` (counter, gauge, …) with its `help` text.
    pub fn family(&mut self, metric: &str, kind: &str, help: &str) -> &mut Self {
        let m = name(metric, true);
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {m} {help}");
        let _ = writeln!(self.out, "# TYPE {m} {}", name(kind, false));
        self
    }

    /// One sample of `metric` with `labels` (name, value) and `v`.
    pub fn sample(&mut self, metric: &str, labels: &[(&str, &str)], v: f64) -> &mut Self {
        self.out.push_str(&name(metric, true));
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(
                    self.out,
                    "{}=\"{}\"",
                    name(k, false),
                    escape_label_value(val)
                );
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
        self
    }

    /// A family and its samples at once.
    pub fn metric(
        &mut self,
        metric: &str,
        kind: &str,
        help: &str,
        samples: &[(Vec<(&str, &str)>, f64)],
    ) -> &mut Self {
        self.family(metric, kind, help);
        for (labels, v) in samples {
            self.sample(metric, labels, *v);
        }
        self
    }

    /// A comment line (`# ...`); line breaks in `text` become spaces.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.out, "# {}", text.replace(['\n', '\r'], " "));
        self
    }

    /// Appends an exposition another writer made (a plugin's `metrics` text), ending it
    /// with a line feed.
    pub fn append(&mut self, text: &str) -> &mut Self {
        self.out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.out.push('\n');
        }
        self
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_start_a_line() {
        let evil = "a\"} 1\nevil_metric 42\n# x\\";
        let mut w = MetricsWriter::new();
        w.family("m", "gauge", "help\nwith break");
        w.sample("m", &[("tenant", evil), ("role", "r")], 1.0);
        let text = w.finish();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(
            text.lines().nth(2).unwrap(),
            r#"m{tenant="a\"} 1\nevil_metric 42\n# x\\",role="r"} 1"#
        );
        assert!(!text.lines().any(|l| l.starts_with("evil_metric")));
        assert_eq!(text.lines().next().unwrap(), r"# HELP m help\nwith break");
    }

    #[test]
    fn names_and_values_follow_the_format() {
        let mut w = MetricsWriter::new();
        w.sample("9 bad-name", &[("la bel", "v")], f64::INFINITY);
        w.sample("ok:name", &[], f64::NAN);
        assert_eq!(w.as_str(), "_9_bad_name{la_bel=\"v\"} +Inf\nok:name NaN\n");
        assert_eq!(escape_label_value("x\ry"), "x\\\\ry");
    }
}
