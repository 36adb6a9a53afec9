//! Compiles `src/hooks.c` (the executor and utility hook trampolines) against the
//! server headers of the PostgreSQL major this build targets.
//!
//! The `pg_config` is the one pgrx uses: `$PGRX_PG_CONFIG_PATH` (set by `cargo pgrx
//! install`), else the entry for the selected `pgNN` feature in
//! `$PGRX_HOME/config.toml` (default `~/.pgrx`), written by `cargo pgrx init`.

use std::path::PathBuf;
use std::process::Command;

/// The PostgreSQL major selected by the crate's `pgNN` feature.
fn feature_major() -> Option<u32> {
    (13..=19).find(|m| std::env::var_os(format!("CARGO_FEATURE_PG{m}")).is_some())
}

/// The `pgNN = "path"` entry of pgrx's config.toml.
fn configured_pg_config(major: u32) -> Option<PathBuf> {
    let home = std::env::var_os("PGRX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgrx")))?;
    let text = std::fs::read_to_string(home.join("config.toml")).ok()?;
    let key = format!("pg{major}");
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| PathBuf::from(v.trim().trim_matches('"')))
    })
}

fn pg_config_output(pg_config: &PathBuf, arg: &str) -> String {
    let out = Command::new(pg_config)
        .arg(arg)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} {arg}: {e} (run ./walker setup)",
                pg_config.display()
            )
        });
    assert!(
        out.status.success(),
        "{} {arg} failed: {}",
        pg_config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=src/hooks.c");
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PGRX_HOME");
    let major = feature_major();
    let pg_config = std::env::var_os("PGRX_PG_CONFIG_PATH")
        .map(PathBuf::from)
        .or_else(|| major.and_then(configured_pg_config))
        .unwrap_or_else(|| PathBuf::from("pg_config"));
    let version = pg_config_output(&pg_config, "--version");
    if let Some(m) = major {
        let found: Option<u32> = version
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split(['.', 'b', 'r']).next())
            .and_then(|v| v.parse().ok());
        assert_eq!(
            found,
            Some(m),
            "{} is {version}, but walker is being built for PostgreSQL {m} (feature pg{m}); \
             run `cargo pgrx init --pg{m} <its pg_config>` or build with the matching feature",
            pg_config.display()
        );
    }
    let include = pg_config_output(&pg_config, "--includedir-server");
    cc::Build::new()
        .file("src/hooks.c")
        .include(&include)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers")
        .warnings(true)
        .compile("walker_hooks");
}
