//! The results file: a [`Report`] as pretty JSON through `serde_json`, keys in the
//! order the structs below declare them (serialised straight to text, never through
//! a sorted map).

use crate::report::{Metric, Outcome, Report};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// A number as the results file writes it: whole values below 10^15 as integers,
/// non-finite ones as `null`, the rest as floating point.
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        if !n.is_finite() {
            s.serialize_none()
        } else if n.fract() == 0.0 && n.abs() < 1e15 {
            s.serialize_i64(n as i64)
        } else {
            s.serialize_f64(n)
        }
    }
}

/// (name, value) pairs as a JSON object, in their order.
struct Pairs<'a>(&'a [(String, String)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct MetricJson<'a> {
    name: &'a str,
    unit: &'a str,
    median: Option<Num>,
    min: Option<Num>,
    max: Option<Num>,
    values: Vec<Num>,
}

impl<'a> MetricJson<'a> {
    fn of(x: &'a Metric) -> Self {
        let s = x.summary();
        MetricJson {
            name: &x.name,
            unit: &x.unit,
            median: s.map(|s| Num(s.median)),
            min: s.map(|s| Num(s.min)),
            max: s.map(|s| Num(s.max)),
            values: x.values.iter().map(|&v| Num(v)).collect(),
        }
    }
}

/// A figure's outcome: a `metrics` array or a `not_measured` reason, in place.
#[derive(Serialize)]
enum OutcomeJson<'a> {
    #[serde(rename = "metrics")]
    Metrics(Vec<MetricJson<'a>>),
    #[serde(rename = "not_measured")]
    NotMeasured(&'a str),
}

#[derive(Serialize)]
struct FigureJson<'a> {
    number: u8,
    title: &'a str,
    method: &'a [String],
    facts: Pairs<'a>,
    #[serde(flatten)]
    outcome: OutcomeJson<'a>,
    seconds: Num,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    cpu: &'a str,
    cores: usize,
    memory_bytes: u64,
    kernel: &'a str,
    load_at_start: &'a str,
    load_at_end: &'a str,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    size: &'a str,
    repetitions: usize,
    started: &'a str,
    seconds: Num,
    machine: MachineJson<'a>,
    postgres: &'a str,
    commit: &'a str,
    dirty: bool,
    build_profile: &'a str,
    libraries: &'a [String],
    libraries_changed: Option<&'a str>,
    plugins: &'a [String],
    settings: Pairs<'a>,
    figures: Vec<FigureJson<'a>>,
}

/// The report as indented JSON text (two spaces per level), ending in a newline.
pub fn pretty(r: &Report) -> String {
    let m = &r.machine;
    let doc = ReportJson {
        size: r.size.name,
        repetitions: r.size.reps,
        started: &r.started,
        seconds: Num(r.seconds),
        machine: MachineJson {
            cpu: &m.cpu,
            cores: m.cores,
            memory_bytes: m.memory_bytes,
            kernel: &m.kernel,
            load_at_start: &m.load_at_start,
            load_at_end: &r.load_at_end,
        },
        postgres: &m.postgres,
        commit: &m.commit,
        dirty: m.dirty,
        build_profile: &r.build_profile,
        libraries: &r.libraries,
        libraries_changed: r.libraries_changed.as_deref(),
        plugins: &r.plugins,
        settings: Pairs(&r.settings),
        figures: r
            .figures
            .iter()
            .map(|f| FigureJson {
                number: f.number,
                title: &f.title,
                method: &f.method,
                facts: Pairs(&f.facts),
                outcome: match &f.outcome {
                    Outcome::Measured(ms) => {
                        OutcomeJson::Metrics(ms.iter().map(MetricJson::of).collect())
                    }
                    Outcome::NotMeasured(why) => OutcomeJson::NotMeasured(why),
                },
                seconds: Num(f.seconds),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("a report always serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::report::Figure;
    use crate::sizes::Size;

    fn sample(changed: Option<String>, settings: Vec<(String, String)>) -> Report {
        Report {
            size: Size::named("smoke").unwrap(),
            machine: Machine {
                cpu: "CPU \"x\" é".into(),
                cores: 2,
                memory_bytes: 8 << 30,
                kernel: "6.1".into(),
                postgres: "postgres (PostgreSQL) 15.8".into(),
                commit: "abc".into(),
                dirty: true,
                load_at_start: "0.5".into(),
            },
            build_profile: "release".into(),
            plugins: vec!["garbagemap".into(), "budget".into()],
            libraries: vec![],
            libraries_changed: changed,
            settings,
            started: "2026-12-01 00:00:00 UTC".into(),
            seconds: 718.25,
            load_at_end: "1.0".into(),
            figures: vec![
                Figure {
                    number: 1,
                    title: "Walk\tthroughput\n".into(),
                    method: vec!["a \\ b".into(), "\u{1}".into()],
                    facts: vec![("k".into(), "v".into()), ("a".into(), "b".into())],
                    outcome: Outcome::Measured(vec![
                        Metric::new("m", "MiB/s", vec![1.0, 2.5, 123456.789, 0.1, f64::NAN]),
                        Metric::new("empty", "ratio", vec![]),
                        Metric::new("neg", "s", vec![-3.0, -0.25]),
                    ]),
                    seconds: 12.0,
                },
                Figure {
                    number: 4,
                    title: "t".into(),
                    method: vec![],
                    facts: vec![],
                    outcome: Outcome::NotMeasured("why".into()),
                    seconds: f64::INFINITY,
                },
            ],
        }
    }

    /// The expected files were written by the hand-made JSON writer this module
    /// replaced, from the same two reports: the output is unchanged, byte for byte.
    #[test]
    fn same_bytes_as_the_former_writer() {
        assert_eq!(
            pretty(&sample(None, vec![])),
            include_str!("testdata/results_empty_settings.json")
        );
        assert_eq!(
            pretty(&sample(Some("lib".into()), vec![("x".into(), "1".into())])),
            include_str!("testdata/results_with_settings.json")
        );
    }
}
