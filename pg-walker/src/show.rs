//! `pg_walker show`: a plugin's view over the state a walk saved, printed as an
//! aligned table, CSV or JSON.

use crate::args::{Common, Format};
use crate::host;
use crate::position;
use std::path::Path;
use walker_abi::WalkerType;
use walker_core::persistence::{SnapshotConfig, Started};
use walker_walfile::format::Major;

/// A view's column names and types, and its rows as text (`None`: NULL).
#[derive(Debug)]
pub struct Table {
    /// Columns: name and type.
    pub columns: Vec<(String, WalkerType)>,
    /// Rows.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Loads `plugin`, restores its saved state and collects `view`.
pub fn collect(plugin: &str, view: &str, common: &Common) -> Result<Table, String> {
    crate::config::install(crate::config::load(common.config.as_deref(), &common.sets)?);
    let pos = position::read(&common.state_dir)?.ok_or_else(|| {
        format!(
            "no walk or follow saved its state in {}: run `pg_walker walk --state-dir {}` (or follow) first",
            common.state_dir.display(),
            common.state_dir.display()
        )
    })?;
    let major = Major::ALL
        .into_iter()
        .find(|&m| host::version_num(m) == pos.version_num)
        .ok_or_else(|| {
            format!(
                "the state directory names version {}, which pg_walker does not read",
                pos.version_num
            )
        })?;
    let dir = host::plugin_dir(common.plugin_dir.as_deref())?;
    let slots = host::load(&[plugin.to_string()], &dir, major)?;
    let slot = slots[0];
    let index = slot
        .views
        .iter()
        .position(|v| v.name == view)
        .ok_or_else(|| {
            let names: Vec<&str> = slot.views.iter().map(|v| v.name.as_str()).collect();
            format!(
                "plugin \"{plugin}\" has no view \"{view}\" (its views: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let cfg = SnapshotConfig {
        dir: common.state_dir.clone(),
        system_id: pos.system_id,
    };
    match host::restore(&slots, &cfg)[0] {
        Started::Restored(_) => {}
        Started::Continues(_) => {
            return Err(format!(
                "plugin \"{plugin}\" keeps no snapshots, so no state outlives a walk: its views are empty here"
            ))
        }
        Started::Empty | Started::Failed => {
            return Err(format!(
                "no usable state of plugin \"{plugin}\" in {} (walk with --plugins {plugin} first; see above for why a snapshot was refused)",
                common.state_dir.display()
            ))
        }
    }
    let rows = walker_core::rows::collect_view(slot, index)
        .map_err(|m| format!("view {plugin}.{view} failed: {m}"))?;
    host::drain_logs();
    Ok(Table {
        columns: slot.views[index].columns.clone(),
        rows,
    })
}

/// Writes each row's `svg` column (a view such as garbagemap's `svg`, drawn by the
/// plugin's own code) into `dir` as `<the row's other columns joined by _>.svg`, and
/// returns those columns with the file written, for printing.
pub fn write_svgs(t: &Table, dir: &Path) -> Result<Table, String> {
    let Some(col) = t
        .columns
        .iter()
        .position(|(n, ty)| n == "svg" && *ty == WalkerType::TEXT)
    else {
        return Err(
            "--svg-dir: this view has no svg column (garbagemap's view svg has one)".into(),
        );
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--svg-dir {}: cannot create it: {e}", dir.display()))?;
    let mut columns: Vec<(String, WalkerType)> = t
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != col)
        .map(|(_, c)| c.clone())
        .collect();
    columns.push(("file".into(), WalkerType::TEXT));
    let mut rows = Vec::new();
    for r in &t.rows {
        let rest: Vec<Option<String>> = r
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != col)
            .map(|(_, v)| v.clone())
            .collect();
        let stem: String = rest
            .iter()
            .map(|v| v.as_deref().unwrap_or("null"))
            .collect::<Vec<_>>()
            .join("_")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!(
            "{}.svg",
            if stem.is_empty() { "view".into() } else { stem }
        ));
        let svg = r.get(col).cloned().flatten().unwrap_or_default();
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut row = rest;
        row.push(Some(path.display().to_string()));
        rows.push(row);
    }
    Ok(Table { columns, rows })
}

/// Formats a table.
pub fn render(t: &Table, format: Format) -> String {
    match format {
        Format::Table => aligned(t),
        Format::Csv => csv(t),
        Format::Json => json(t),
    }
}

fn aligned(t: &Table) -> String {
    let mut width: Vec<usize> = t.columns.iter().map(|(n, _)| n.chars().count()).collect();
    for r in &t.rows {
        for (w, v) in width.iter_mut().zip(r) {
            *w = (*w).max(v.as_deref().unwrap_or("").chars().count());
        }
    }
    let numeric = |ty: WalkerType| matches!(ty, WalkerType::INT8 | WalkerType::FLOAT8);
    let mut out = String::new();
    let head: Vec<String> = t
        .columns
        .iter()
        .zip(&width)
        .map(|((n, _), w)| format!("{n:^w$}"))
        .collect();
    out.push_str(head.join(" | ").trim_end());
    out.push('\n');
    out.push_str(
        &width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for r in &t.rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&t.columns)
            .zip(&width)
            .map(|((v, (_, ty)), w)| {
                let v = v.as_deref().unwrap_or("");
                if numeric(*ty) {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "({} row{})\n",
        t.rows.len(),
        if t.rows.len() == 1 { "" } else { "s" }
    ));
    out
}

fn csv_field(v: &str) -> String {
    if v.is_empty() || v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn csv(t: &Table) -> String {
    let mut out = t
        .columns
        .iter()
        .map(|(n, _)| csv_field(n))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in &t.rows {
        // NULL is an empty unquoted field; an empty string is "".
        let cells: Vec<String> = r
            .iter()
            .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_value(v: &str, ty: WalkerType) -> String {
    match ty {
        WalkerType::INT8 => v.to_string(),
        // NaN and the infinities have no JSON number.
        WalkerType::FLOAT8 if v.parse::<f64>().is_ok_and(f64::is_finite) => v.to_string(),
        WalkerType::BOOL => (v == "t" || v == "true").to_string(),
        WalkerType::JSONB => v.to_string(),
        _ => json_string(v),
    }
}

fn json(t: &Table) -> String {
    let rows: Vec<String> = t
        .rows
        .iter()
        .map(|r| {
            let fields: Vec<String> = r
                .iter()
                .zip(&t.columns)
                .map(|(v, (n, ty))| {
                    let v = v
                        .as_deref()
                        .map_or("null".to_string(), |v| json_value(v, *ty));
                    format!("{}:{v}", json_string(n))
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("[{}]\n", rows.join(",\n "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Table {
        Table {
            columns: vec![
                ("rmgr".into(), WalkerType::TEXT),
                ("records".into(), WalkerType::INT8),
                ("ok".into(), WalkerType::BOOL),
            ],
            rows: vec![
                vec![Some("Heap".into()), Some("12".into()), Some("t".into())],
                vec![Some("a,\"b\"".into()), None, Some("f".into())],
            ],
        }
    }

    #[test]
    fn svg_column_to_files() {
        let t = Table {
            columns: vec![
                ("database".into(), WalkerType::INT8),
                ("relfilenode".into(), WalkerType::INT8),
                ("svg".into(), WalkerType::TEXT),
            ],
            rows: vec![
                vec![
                    Some("5".into()),
                    Some("16384".into()),
                    Some("<svg>a</svg>".into()),
                ],
                vec![Some("5".into()), None, Some("<svg>b</svg>".into())],
            ],
        };
        let dir = std::env::temp_dir().join(format!("pgw-svg-{}", std::process::id()));
        let out = write_svgs(&t, &dir).unwrap();
        assert_eq!(out.columns.last().unwrap().0, "file");
        assert_eq!(
            std::fs::read_to_string(dir.join("5_16384.svg")).unwrap(),
            "<svg>a</svg>"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("5_null.svg")).unwrap(),
            "<svg>b</svg>"
        );
        assert_eq!(
            out.rows[0][2].as_deref(),
            Some(dir.join("5_16384.svg").to_str().unwrap())
        );
        assert!(write_svgs(&super::tests::t(), &dir)
            .unwrap_err()
            .contains("no svg column"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn formats() {
        assert_eq!(
            render(&t(), Format::Table),
            "rmgr  | records | ok\n------+---------+---\nHeap  |      12 | t\na,\"b\" |         | f\n(2 rows)\n"
        );
        assert_eq!(
            render(&t(), Format::Csv),
            "rmgr,records,ok\nHeap,12,t\n\"a,\"\"b\"\"\",,f\n"
        );
        assert_eq!(
            render(&t(), Format::Json),
            "[{\"rmgr\":\"Heap\",\"records\":12,\"ok\":true},\n {\"rmgr\":\"a,\\\"b\\\"\",\"records\":null,\"ok\":false}]\n"
        );
    }
}
