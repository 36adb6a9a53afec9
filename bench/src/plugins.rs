//! Which plugins the benchmark loads: "all shipped plugins" as the `walker` script
//! lists them, else every known one whose library is installed.

use crate::process;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use walker_tests::pg_bindir;

/// Plugins this repository ships or will ship, in the order they are loaded.
pub const KNOWN: &[&str] = &["rmgr_stats", "garbagemap", "autosizer", "budget"];

/// The admission-control plugin figure 4 measures.
pub const BUDGET: &str = "budget";
/// The dead-tuple map whose bytes per range figure 5 measures.
pub const GARBAGEMAP: &str = "garbagemap";

/// The server's library directory (`pg_config --pkglibdir`).
pub fn pkglibdir() -> Result<PathBuf, String> {
    let mut cmd = Command::new(pg_bindir().join("pg_config"));
    cmd.arg("--pkglibdir");
    let out = process::run(cmd, "pg_config --pkglibdir", Duration::from_secs(30))?;
    Ok(PathBuf::from(out.trim()))
}

/// Whether `<pkglibdir>/<name>.so` exists.
pub fn installed(name: &str) -> bool {
    pkglibdir().is_ok_and(|d| d.join(format!("{name}.so")).is_file())
}

/// `<name>.so <modification time>` of each installed library in `names` (to tell
/// which build a run measured, and whether it was replaced during the run).
pub fn stamps(names: &[String]) -> Vec<String> {
    let dir = pkglibdir().unwrap_or_default();
    names
        .iter()
        .map(|n| {
            let file = format!("{n}.so");
            let when = std::fs::metadata(dir.join(&file))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or("missing".to_string(), |d| {
                    crate::clock::format_utc(d.as_secs() as i64).1
                });
            format!("{file} {when}")
        })
        .collect()
}

/// Splits a comma- or space-separated list of plugin names.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// "All shipped plugins": `explicit` (from `--plugins` or `WALKER_BENCH_PLUGINS`) when
/// given, else every [`KNOWN`] plugin whose library is installed. Every plugin must
/// be installed.
pub fn all_plugins(explicit: Option<&str>) -> Result<Vec<String>, String> {
    let list = match explicit {
        Some(text) => parse_list(text),
        None => KNOWN
            .iter()
            .filter(|n| installed(n))
            .map(|n| n.to_string())
            .collect(),
    };
    if let Some(missing) = list.iter().find(|n| !installed(n)) {
        return Err(format!(
            "plugin {missing} is not installed ({}/{missing}.so missing); run ./walker install",
            pkglibdir()?.display()
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(
            parse_list(" rmgr_stats, garbagemap budget,,"),
            vec!["rmgr_stats", "garbagemap", "budget"]
        );
        assert!(parse_list("").is_empty());
    }
}
