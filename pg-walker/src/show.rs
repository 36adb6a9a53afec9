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
pub fn collect(
    plugin: &str,
    view: &str,
    common: &Common,
    svg_dir: Option<&Path>,
) -> Result<Table, String> {
    let server =
        crate::config::install(crate::config::load(common.config.as_deref(), &common.sets)?)?;
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
    let slots = host::load(&[plugin.to_string()], &dir, major, server, None)?;
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
    let table = Table {
        columns: slot.views[index].columns.clone(),
        rows,
    };
    let Some(dir) = svg_dir else {
        return Ok(table);
    };
    let svg = slot
        .functions
        .iter()
        .position(|f| f.name == "svg" && f.result == WalkerType::TEXT)
        .ok_or_else(|| {
            format!("--svg-dir: plugin \"{plugin}\" has no svg function to draw with (garbagemap has one)")
        })?;
    let out = write_svgs(&table, dir, |args| {
        walker_core::functions::call(slot, svg, args)
            .map_err(|e| format!("{plugin}.svg({args}) failed: {e}"))
    });
    host::drain_logs();
    out
}

/// Draws a picture per row of `t` (a view whose rows name relations by `database`,
/// `tablespace` and `relfilenode`, such as garbagemap's `relations`) with `draw` (the
/// plugin's `svg` function, as the server's `walker.garbagemap_svg` view calls it), into
/// `dir` as `<database>_<tablespace>_<relfilenode>.svg`; returns those columns with the
/// file written, for printing.
pub fn write_svgs(
    t: &Table,
    dir: &Path,
    mut draw: impl FnMut(&str) -> Result<String, String>,
) -> Result<Table, String> {
    let col = |name: &str| t.columns.iter().position(|(n, _)| n == name);
    let (Some(d), Some(ts), Some(r)) = (col("database"), col("tablespace"), col("relfilenode"))
    else {
        return Err(
            "--svg-dir needs a view whose rows name relations (columns database, tablespace, relfilenode), e.g. garbagemap relations".into(),
        );
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--svg-dir {}: cannot create it: {e}", dir.display()))?;
    let mut columns: Vec<(String, WalkerType)> =
        [d, ts, r].iter().map(|&i| t.columns[i].clone()).collect();
    columns.push(("file".into(), WalkerType::TEXT));
    let mut rows = Vec::new();
    for row in &t.rows {
        let key: Vec<String> = [d, ts, r]
            .iter()
            .map(|&i| row.get(i).cloned().flatten().unwrap_or_default())
            .collect();
        if key
            .iter()
            .any(|k| k.is_empty() || k.parse::<i64>().is_err())
        {
            continue;
        }
        let args = format!(
            "{{\"database\": {}, \"tablespace\": {}, \"relfilenode\": {}}}",
            key[0], key[1], key[2]
        );
        let svg = draw(&args)?;
        let path = dir.join(format!("{}_{}_{}.svg", key[0], key[1], key[2]));
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut out: Vec<Option<String>> = key.into_iter().map(Some).collect();
        out.push(Some(path.display().to_string()));
        rows.push(out);
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
    fn a_picture_per_relation_row() {
        let t = Table {
            columns: vec![
                ("database".into(), WalkerType::INT8),
                ("tablespace".into(), WalkerType::INT8),
                ("relfilenode".into(), WalkerType::INT8),
                ("dead".into(), WalkerType::INT8),
            ],
            rows: vec![
                vec![
                    Some("5".into()),
                    Some("1663".into()),
                    Some("16384".into()),
                    Some("9".into()),
                ],
                vec![
                    Some("5".into()),
                    Some("1663".into()),
                    None,
                    Some("1".into()),
                ],
            ],
        };
        let dir = std::env::temp_dir().join(format!("pgw-svg-{}", std::process::id()));
        let mut asked = Vec::new();
        let out = write_svgs(&t, &dir, |a| {
            asked.push(a.to_string());
            Ok("<svg/>".into())
        })
        .unwrap();
        assert_eq!(
            asked,
            [r#"{"database": 5, "tablespace": 1663, "relfilenode": 16384}"#]
        );
        let f = dir.join("5_1663_16384.svg");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "<svg/>");
        assert_eq!(
            out.rows,
            [vec![
                Some("5".into()),
                Some("1663".into()),
                Some("16384".into()),
                Some(f.display().to_string())
            ]]
        );
        assert!(write_svgs(&tests::t(), &dir, |_| Ok(String::new()))
            .unwrap_err()
            .contains("database, tablespace, relfilenode"));
        assert_eq!(
            write_svgs(&t, &dir, |_| Err("evicted".into())).unwrap_err(),
            "evicted"
        );
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
